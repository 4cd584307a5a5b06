"""The intercept agent (`devbridge agent`, docs/intercept.md), run as a
process on this machine against kubesim with the real API: the same
credentials a pod has (a service account token and the cluster CA, in
$DEVBRIDGE_SA_DIR instead of the pod's mount), the Service already
swapped to the agent as the CLI leaves it.  The CLI's side is played by
the C Yamux test peer (`yamux-peer --hello ...`, tests/yamux/PEER.md).

Asserted: the health endpoint; the control port's handshake (a wrong
token is refused and logged without the token); each cluster connection
arrives as a stream headed by its Service port, 1 MiB both ways intact;
a second CLI session replaces the first; and the restore: after the
session is lost (grace period) and on SIGTERM the Service's selector is
exactly the original again, our annotations gone, done by the agent's
service account (kubesim's request log); nothing is touched when the
Service belongs to another session."""

import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest

import intercept_helpers
from helpers import devbridge_bin, free_port, kill_pid, sanitizer_report, wait_for
from k8s_helpers import sim  # noqa: F401  (fixture)

SID = "0123456789"
OTHER_SID = "abcdefabcd"
TOKEN = "t" * 40 + "0123456789abcdef0123456789"
ORIGINAL = {"app": "web", "tier": "backend"}


def yamux_peer_bin():
    return os.path.join(os.path.dirname(devbridge_bin()), "yamux-peer")


class Proc:
    """A process whose stderr (or stdout) lines are collected by a thread."""

    def __init__(self, argv, env, stream="stderr"):
        self.lines = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.other = []
        src, other = (self.p.stderr, self.p.stdout) if stream == "stderr" else \
            (self.p.stdout, self.p.stderr)
        threading.Thread(target=self._read, args=(src, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(other, self.other), daemon=True).start()

    def _read(self, f, into):
        for line in f:
            with self.lock:
                into.append(line.rstrip("\n"))

    def events(self):
        out = []
        with self.lock:
            lines = list(self.lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_event(self, name, timeout=10, pred=None):
        def find():
            for ev in self.events():
                if ev.get("event") == name and (pred is None or pred(ev)):
                    return ev
            assert self.p.poll() is None or name in ("closed", "restored",
                                                     "nothing_to_restore"), \
                "exited %s before %s: %s" % (self.p.poll(), name, self.text())
            return None
        return wait_for(find, timeout, "event %s" % name)

    def text(self):
        with self.lock:
            return "\n".join(self.lines + self.other)

    def stop(self):
        if self.p.poll() is None:
            kill_pid(self.p.pid)
            self.p.wait(10)


@pytest.fixture
def agent(sim, tmp_path):  # noqa: F811
    """The Service swapped to an agent of session SID, the agent's Role,
    and a function that starts the agent."""
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default",
                        "labels": {"keep": "me"},
                        "annotations": {"owner": "team-a",
                                        "devbridge.dev/session": SID,
                                        "devbridge.dev/original-selector": json.dumps(ORIGINAL),
                                        "devbridge.dev/mode": "steal"}},
           "spec": {"selector": {"devbridge.dev/intercept": SID},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                              {"name": "admin", "port": 81, "targetPort": 8081}]}}
    name = "devbridge-agent-" + SID
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["services"], "resourceNames": ["web"],
                       "verbs": ["get", "update", "patch"]}]}
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
    (sadir / "namespace").write_text("default")
    ports = {"t80": free_port(False), "t81": free_port(False), "control": free_port(False),
             "health": free_port(False)}
    procs = []

    def start(grace=1, token=TOKEN, session=SID):
        env = dict(os.environ, DEVBRIDGE_AGENT_TOKEN=token, DEVBRIDGE_SA_DIR=str(sadir),
                   KUBERNETES_SERVICE_HOST="127.0.0.1",
                   KUBERNETES_SERVICE_PORT=str(ready["port"]))
        p = Proc([devbridge_bin(), "agent", "--namespace", "default", "--service", "web",
                  "--session", session, "--port", "80:%d" % ports["t80"],
                  "--port", "81:%d" % ports["t81"], "--control-port", str(ports["control"]),
                  "--health-port", str(ports["health"]), "--bind-addr", "127.0.0.1",
                  "--grace", str(grace), "--keepalive", "200", "--keepalive-timeout", "2000"],
                 env)
        procs.append(p)
        p.wait_event("listening")
        return p

    def cli(token=TOKEN):
        p = Proc([yamux_peer_bin(), "--connect", "127.0.0.1:%d" % ports["control"],
                  "--hello", "DEVBRIDGE-AGENT/1 " + token, "--accept", "echo",
                  "--keepalive", "200", "--keepalive-timeout", "2000"],
                 dict(os.environ), stream="stdout")
        procs.append(p)
        return p

    def service():
        r = sim("get", "service", "web", "-o", "json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    ctx = {"start": start, "cli": cli, "service": service, "ports": ports, "sim": sim,
           "log": os.path.join(simdir, "requests.log"), "name": name}
    yield ctx
    for p in procs:
        p.stop()
        rep = sanitizer_report(p.text())
        assert not rep, rep


def http_get(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: agent\r\n\r\n" % path).encode())
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    return data


def roundtrip(port, payload):
    return intercept_helpers.roundtrip("127.0.0.1", port, payload, 20)


def assert_restored(ctx):
    svc = ctx["service"]()
    assert svc["spec"]["selector"] == ORIGINAL, svc["spec"]
    ann = svc["metadata"].get("annotations", {})
    assert ann == {"owner": "team-a"}, ann
    assert svc["metadata"]["labels"] == {"keep": "me"}
    log = open(ctx["log"]).read()
    who = "system:serviceaccount:default:" + ctx["name"]
    assert any(line.startswith("PUT /api/v1/namespaces/default/services/web ") and who in line
               for line in log.splitlines()), log[-2000:]


def test_health(agent):
    agent["start"]()
    h = agent["ports"]["health"]
    assert http_get(h, "/healthz").startswith(b"HTTP/1.1 200 OK"), http_get(h, "/healthz")
    assert http_get(h, "/healthz").endswith(b"\r\n\r\nok\n")
    assert http_get(h, "/other").startswith(b"HTTP/1.1 404")
    s = socket.create_connection(("127.0.0.1", h), timeout=5)
    s.sendall(b"\x00\x01 not http\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 400")
    s.close()


def test_wrong_token_refused_and_logged(agent):
    a = agent["start"]()
    c = agent["cli"](token="x" * 40)
    c.wait_event("denied")
    assert c.p.wait(10) == 1
    ev = a.wait_event("auth_failed")
    assert ev["peer"].startswith("127.0.0.1"), ev
    # a line that is not the hello at all
    s = socket.create_connection(("127.0.0.1", agent["ports"]["control"]), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert s.recv(100) == b"DENIED\n"
    s.close()
    a.wait_event("auth_failed", pred=lambda e: "hello" in e.get("reason", ""))
    assert "x" * 40 not in a.text() and TOKEN not in a.text()
    assert agent["service"]()["spec"]["selector"] == {"devbridge.dev/intercept": SID}


def test_streams_carry_the_service_port(agent):
    a = agent["start"]()
    c = agent["cli"]()
    c.wait_event("hello", pred=lambda e: e["reply"] == "OK " + SID)
    a.wait_event("session")
    blob = os.urandom(1 << 20)
    for svc_port, key in ((80, "t80"), (81, "t81")):
        got = roundtrip(agent["ports"][key], blob)
        # the CLI side echoes what it gets: the 4-byte header, then the bytes
        assert got[:4] == bytes([0xDB, 0x01, svc_port >> 8, svc_port & 0xFF]), got[:8]
        assert hashlib.sha256(got[4:]).hexdigest() == hashlib.sha256(blob).hexdigest()
    # 20 at once
    results = [None] * 20

    def one(i):
        results[i] = roundtrip(agent["ports"]["t80"], b"%d" % i * 1000)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert all(results[i] == b"\xdb\x01\x00\x50" + b"%d" % i * 1000 for i in range(20))


def test_no_session_no_stream(agent):
    agent["start"]()
    s = socket.create_connection(("127.0.0.1", agent["ports"]["t80"]), timeout=5)
    assert s.recv(10) == b""  # closed at once: nobody to send it to
    s.close()


def test_session_lost_restores_after_grace(agent):
    a = agent["start"](grace=1)
    c = agent["cli"]()
    c.wait_event("hello")
    a.wait_event("session")
    t0 = time.monotonic()
    c.stop()  # SIGKILL: the CLI is gone
    a.wait_event("session_lost")
    a.wait_event("restored", timeout=15)
    assert a.p.wait(10) == 0, a.text()
    assert time.monotonic() - t0 < 5, "restored %.1f s after the CLI died" % (time.monotonic() - t0)
    assert_restored(agent)


def test_new_session_replaces_old_and_keeps_the_service(agent):
    a = agent["start"](grace=1)
    c1 = agent["cli"]()
    c1.wait_event("hello")
    c2 = agent["cli"]()
    c2.wait_event("hello")
    a.wait_event("session", pred=lambda e: e.get("replaces"))
    c1.wait_event("closed")
    assert roundtrip(agent["ports"]["t80"], b"abc") == b"\xdb\x01\x00\x50abc"
    # the replaced session's end starts no restore
    assert not any(e["event"] == "restoring" for e in a.events())
    assert agent["service"]()["spec"]["selector"] == {"devbridge.dev/intercept": SID}


def test_sigterm_restores(agent):
    a = agent["start"](grace=30)
    c = agent["cli"]()
    c.wait_event("hello")
    a.p.terminate()
    a.wait_event("restored", timeout=15)
    assert a.p.wait(10) == 0
    assert_restored(agent)


def test_nothing_to_restore_for_another_session(agent):
    svc = agent["service"]()
    svc["metadata"]["annotations"]["devbridge.dev/session"] = OTHER_SID
    r = agent["sim"]("replace", "-f", "-", stdin=json.dumps(svc))
    assert r.returncode == 0, r.stderr
    a = agent["start"](grace=30)
    a.p.terminate()
    ev = a.wait_event("nothing_to_restore", timeout=15)
    assert OTHER_SID in ev["reason"]
    assert a.p.wait(10) == 0
    after = agent["service"]()
    assert after["spec"]["selector"] == {"devbridge.dev/intercept": SID}
    assert after["metadata"]["annotations"]["devbridge.dev/session"] == OTHER_SID


def test_bad_options(agent):
    env = dict(os.environ)
    env.pop("DEVBRIDGE_AGENT_TOKEN", None)
    base = [devbridge_bin(), "agent", "--namespace", "default", "--service", "web"]
    r = subprocess.run(base + ["--session", SID, "--port", "80:8080"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 54 and "DEVBRIDGE_AGENT_TOKEN" in r.stderr, r.stderr
    env["DEVBRIDGE_AGENT_TOKEN"] = TOKEN
    for args, what in ((["--session", "XYZ", "--port", "80:8080"], "--session"),
                       (["--session", SID, "--port", "80:0"], "--port"),
                       (["--session", SID], "--port")):
        r = subprocess.run(base + args, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and what in r.stderr, (args, r.stderr)
    assert TOKEN not in r.stderr


def test_token_not_in_the_agent_environment(agent):
    a = agent["start"]()
    environ = open("/proc/%d/environ" % a.p.pid, "rb").read()
    assert TOKEN.encode() not in environ
    cmdline = open("/proc/%d/cmdline" % a.p.pid, "rb").read()
    assert TOKEN.encode() not in cmdline
