"""The intercept agent with `--mode mirror` (docs/intercept.md), run as a
process on this machine against kubesim with the real API, as in
test_k8s_agent.py.  The original pod is a Pod object in kubesim whose
status (patched as a kubelet would) says Running, Ready, podIP 127.0.0.2,
and a TCP server on 127.0.0.2:TARGETPORT stands in for it; the agent
itself listens on 127.0.0.1.  The CLI is the C Yamux test peer with
`--accept forward:` to a "laptop" server.

Asserted: a client of the target port gets the original pod's answer
(never the laptop's), while the laptop receives the stream header and the
same request bytes; the agent found the pod through the API (pods list
with the original selector, as its service account); pods not Ready or
not matching are never dialled; with no session the pod still answers;
with no Ready pod the client is closed; a CLI that stops reading loses the
copy (the agent logs mirror_dropped) while the client's 4 MiB still goes
through intact."""

import hashlib
import json
import os
import socket
import threading

import pytest

from helpers import devbridge_bin, free_port, sanitizer_report, wait_for
from intercept_helpers import TagServer
from k8s_helpers import sim  # noqa: F401  (fixture)
from test_k8s_agent import Proc, roundtrip, yamux_peer_bin

SID = "0123456789"
TOKEN = "t" * 40 + "0123456789abcdef0123456789"
ORIGINAL = {"app": "web", "tier": "backend"}
POD_IP = "127.0.0.2"
SVC_PORT = 0x4142  # the stream header is then b"\xdb\x01AB": a stall-prefix


def ready_pod(sim, name, labels, ip, ready=True, phase="Running"):  # noqa: F811
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "labels": labels},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    r = sim("create", "-f", "-", stdin=json.dumps(pod))
    assert r.returncode == 0, r.stderr
    status = {"status": {"phase": phase, "podIP": ip,
                         "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    r = sim("patch", "pod", name, "--subresource=status", "--type=merge", "-p",
            json.dumps(status))
    assert r.returncode == 0, r.stderr


@pytest.fixture
def mirror(sim, tmp_path):  # noqa: F811
    t80 = free_port(False)
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default",
                        "annotations": {"devbridge.dev/session": SID,
                                        "devbridge.dev/original-selector": json.dumps(ORIGINAL),
                                        "devbridge.dev/mode": "mirror"}},
           "spec": {"selector": {"devbridge.dev/intercept": SID},
                    "ports": [{"name": "http", "port": SVC_PORT, "targetPort": t80}]}}
    name = "devbridge-agent-" + SID
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["services"], "resourceNames": ["web"],
                       "verbs": ["get", "update", "patch"]},
                      {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name, "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]}
    for obj in (svc, role, binding):
        r = sim("create", "-f", "-", stdin=json.dumps(obj))
        assert r.returncode == 0, r.stderr
    simdir = os.path.dirname(sim.kubeconfig)
    ready = json.load(open(os.path.join(simdir, "ready")))
    sadir = tmp_path / "sa"
    sadir.mkdir()
    (sadir / "token").write_text("sa:default:%s\n" % name)
    (sadir / "ca.crt").write_bytes(open(os.path.join(simdir, "ca.crt"), "rb").read())
    ports = {"t80": t80, "control": free_port(False), "health": free_port(False)}
    procs, servers = [], []

    def start():
        env = dict(os.environ, DEVBRIDGE_AGENT_TOKEN=TOKEN, DEVBRIDGE_SA_DIR=str(sadir),
                   KUBERNETES_SERVICE_HOST="127.0.0.1",
                   KUBERNETES_SERVICE_PORT=str(ready["port"]))
        p = Proc([devbridge_bin(), "agent", "--namespace", "default", "--service", "web",
                  "--session", SID, "--port", "%d:%d" % (SVC_PORT, t80), "--mode", "mirror",
                  "--control-port", str(ports["control"]),
                  "--health-port", str(ports["health"]), "--bind-addr", "127.0.0.1",
                  "--grace", "30", "--keepalive", "200", "--keepalive-timeout", "2000"], env)
        procs.append(p)
        p.wait_event("listening")
        return p

    def cli(accept):
        p = Proc([yamux_peer_bin(), "--connect", "127.0.0.1:%d" % ports["control"],
                  "--hello", "DEVBRIDGE-AGENT/1 " + TOKEN, "--accept", accept,
                  "--keepalive", "200", "--keepalive-timeout", "2000"],
                 dict(os.environ), stream="stdout")
        procs.append(p)
        p.wait_event("hello", pred=lambda e: e["reply"] == "OK " + SID)
        return p

    def server(addr, port, tag):
        s = TagServer(tag, addr, port)
        servers.append(s)
        return s

    yield {"start": start, "cli": cli, "server": server, "ports": ports, "sim": sim,
           "log": os.path.join(simdir, "requests.log"), "name": name}
    for p in procs:
        p.stop()
        rep = sanitizer_report(p.text())
        assert not rep, rep
    for s in servers:
        s.close()


HDR = bytes([0xDB, 0x01, SVC_PORT >> 8, SVC_PORT & 0xFF])


def test_original_answers_and_the_laptop_gets_a_copy(mirror):
    sim = mirror["sim"]
    ready_pod(sim, "web-1", dict(ORIGINAL), POD_IP)
    # neither of these may be dialled: not Ready, and another selector
    ready_pod(sim, "web-2", dict(ORIGINAL), "127.0.0.3", ready=False)
    ready_pod(sim, "db-1", {"app": "db"}, "127.0.0.4")
    pod = mirror["server"](POD_IP, mirror["ports"]["t80"], b"POD ")
    laptop = mirror["server"]("127.0.0.1", 0, b"LAPTOP ")
    a = mirror["start"]()
    ev = a.wait_event("pods")
    assert ev["ready"] == "1" and ev["first"] == POD_IP, ev
    mirror["cli"]("forward:127.0.0.1:%d" % laptop.port)
    a.wait_event("session")
    # small, then 1 MiB: the pod's answer, the same bytes at the laptop
    for payload in (b"GET / HTTP/1.0\r\n\r\n", os.urandom(1 << 20)):
        got = roundtrip(mirror["ports"]["t80"], payload)
        assert got == b"POD " + payload, got[:40]
        want = HDR + payload
        wait_for(lambda: want in laptop.requests(), 20, "the laptop's copy")
        assert pod.requests()[-1] == payload
    # 20 at once
    results = [None] * 20

    def one(i):
        results[i] = roundtrip(mirror["ports"]["t80"], b"%d" % i * 1000)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert all(results[i] == b"POD " + b"%d" % i * 1000 for i in range(20)), results
    wait_for(lambda: all(HDR + b"%d" % i * 1000 in laptop.requests() for i in range(20)), 20,
             "20 copies")
    assert not any(e["event"] == "mirror_dropped" for e in a.events()), a.text()
    # the list came through the API as the agent's service account
    log = open(mirror["log"]).read()
    who = "system:serviceaccount:default:" + mirror["name"]
    assert any(line.startswith("GET /api/v1/namespaces/default/pods?labelSelector=") and
               who in line and " 200 " in line for line in log.splitlines()), log[-2000:]
    # SIGTERM: the restore as in steal
    a.p.terminate()
    a.wait_event("restored", timeout=15)
    assert a.p.wait(10) == 0


def test_no_session_still_answers(mirror):
    ready_pod(mirror["sim"], "web-1", dict(ORIGINAL), POD_IP)
    mirror["server"](POD_IP, mirror["ports"]["t80"], b"POD ")
    a = mirror["start"]()
    a.wait_event("pods", pred=lambda e: e["ready"] == "1")
    assert roundtrip(mirror["ports"]["t80"], b"hello") == b"POD hello"


def test_no_ready_pod_closes_the_client(mirror):
    ready_pod(mirror["sim"], "web-2", dict(ORIGINAL), POD_IP, ready=False)
    a = mirror["start"]()
    s = socket.create_connection(("127.0.0.1", mirror["ports"]["t80"]), timeout=5)
    assert s.recv(10) == b""
    s.close()
    a.wait_event("no_ready_pod")
    # a pod that becomes Ready is found by the refresh (every 2 s)
    mirror["server"](POD_IP, mirror["ports"]["t80"], b"POD ")
    r = mirror["sim"]("patch", "pod", "web-2", "--subresource=status", "--type=merge", "-p",
                      json.dumps({"status": {"conditions": [{"type": "Ready",
                                                             "status": "True"}]}}))
    assert r.returncode == 0, r.stderr
    a.wait_event("pods", pred=lambda e: e["ready"] == "1", timeout=15)
    assert roundtrip(mirror["ports"]["t80"], b"again") == b"POD again"


def test_a_stalled_cli_loses_the_copy_not_the_traffic(mirror):
    ready_pod(mirror["sim"], "web-1", dict(ORIGINAL), POD_IP)
    mirror["server"](POD_IP, mirror["ports"]["t80"], b"POD ")
    a = mirror["start"]()
    a.wait_event("pods", pred=lambda e: e["ready"] == "1")
    # the CLI accepts every stream that starts with our header, then never reads it
    mirror["cli"](b"stall-prefix:" + HDR)
    a.wait_event("session")
    blob = os.urandom(4 << 20)
    got = roundtrip(mirror["ports"]["t80"], blob)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(b"POD " + blob).hexdigest()
    ev = a.wait_event("mirror_dropped")
    assert "buffer" in ev["reason"].lower(), ev
