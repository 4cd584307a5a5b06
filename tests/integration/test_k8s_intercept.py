"""`devbridge intercept SVC --steal` end to end against kubesim --runtime:
the real kubectl creates the agent's objects, kubesim runs the agent Job's
pod (`devbridge agent`, the binary under test, as uid 65532 with the
service account's token mounted), the CLI swaps the selector, tunnels
through a real `kubectl port-forward` to the agent's control port, and a
client calling the Service's ClusterIP gets this machine's answers.  Then
the selector must be exactly the original again: after Ctrl+C (the CLI
restores and removes everything), and after the CLI is SIGKILLed (the
agent restores it alone, through the API, as its service account).  A
killed port-forward is re-established with no restore in between."""

import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from helpers import descendants, proc_cmdline, wait_for
from intercept_helpers import TagServer, roundtrip
from k8s_helpers import echo_pod, kb, rsim, service  # noqa: F401

CLUSTER_IP = "10.96.214.10"
CLUSTER_IP2 = "10.96.214.11"  # web2: two ports
ORIGINAL = {"app": "web"}


@pytest.fixture(scope="module", autouse=True)
def cluster(rsim):  # noqa: F811
    if not rsim.is_sim:
        pytest.skip("needs the agent image on the cluster (deploy/agent/Dockerfile)")
    rsim.apply(echo_pod("web-1", "default", dict(ORIGINAL)),
               echo_pod("web2-1", "default", {"app": "web2"}),
               service("web", "default", ORIGINAL, [(80, 8080)], CLUSTER_IP),
               service("web2", "default", {"app": "web2"}, [(80, 8080), (81, 8081)],
                       CLUSTER_IP2))
    rsim.wait_pods_ready("default", "web-1", "web2-1")
    yield rsim


def Laptop(prefix=b"LAPTOP "):
    """The developer's server: answers `prefix` + everything it read."""
    return TagServer(prefix)


def call(data, timeout=20, ip=CLUSTER_IP, port=80):
    """A cluster client: the Service's ClusterIP, data, half-close, the reply."""
    return roundtrip(ip, port, data, timeout)


class Intercept:
    def __init__(self, kb, laptop, *extra, svc="web"):  # noqa: F811
        self.kb = kb
        self.err = open(os.path.join(kb.tmp, "intercept.err"), "w+")
        ports = ["-p", "80:%d" % laptop.port] if laptop else []
        self.p = subprocess.Popen([kb.bin, "--state-dir", kb.state_dir, "intercept", svc,
                                   "--steal", "--foreground", *ports, *extra],
                                  env=kb.env(), stdout=subprocess.PIPE,
                                  stderr=self.err, text=True)

    def stderr(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def wait_step(self, text, timeout=60):
        def seen():
            return text in self.stderr() or self.p.poll() is not None
        wait_for(seen, timeout, "intercept: %s" % text)
        assert text in self.stderr(), "intercept exited %s:\n%s" % (self.p.poll(), self.stderr())

    def session(self):
        for line in self.stderr().splitlines():
            if "agent objects created: " in line:
                return line.split("agent objects created: ")[1].strip()
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


def svc(rsim):  # noqa: F811
    return json.loads(rsim.kubectl_ok("get", "service", "web", "-o", "json"))


def assert_original(rsim):  # noqa: F811
    s = svc(rsim)
    assert s["spec"]["selector"] == ORIGINAL, s["spec"]
    ann = s["metadata"].get("annotations", {})
    assert not any(k.startswith("devbridge.dev/") for k in ann), ann


def leftovers(rsim, sid):  # noqa: F811
    r = rsim.kubectl_ok("get", "jobs,secrets,roles,rolebindings,serviceaccounts", "-l",
                        "devbridge.dev/session=%s" % sid, "-o", "name")
    return r.split()


@pytest.fixture
def laptop():
    lt = Laptop()
    yield lt
    lt.close()


def test_steal_then_ctrl_c_restores_and_cleans_up(kb, rsim, laptop):  # noqa: F811
    ic = Intercept(kb, laptop)
    try:
        ic.wait_step("tunnel up")
        sid = ic.session()
        assert sid and len(sid) == 10, ic.stderr()
        s = svc(rsim)
        assert s["spec"]["selector"] == {"devbridge.dev/intercept": sid}
        assert s["metadata"]["annotations"]["devbridge.dev/session"] == sid
        # the cluster's clients get this machine's answers: 1 MiB intact
        blob = os.urandom(1 << 20)
        got = call(blob)
        assert got[:7] == b"LAPTOP ", got[:40]
        assert hashlib.sha256(got[7:]).digest() == hashlib.sha256(blob).digest()
        # 50 at once
        res = [None] * 50
        ts = [threading.Thread(target=lambda i=i: res.__setitem__(i, call(b"req%d" % i)))
              for i in range(50)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert res == [b"LAPTOP req%d" % i for i in range(50)]
        ic.p.send_signal(signal.SIGINT)
        assert ic.p.wait(60) == 0, ic.stderr()
        err = ic.stderr()
        assert "selector restored" in err and "agent removed" in err, err
        assert_original(rsim)
        wait_for(lambda: leftovers(rsim, sid) == [], 30, "the agent's objects gone")
        # and the original pod answers again
        assert call(b"x") == b"x"
    finally:
        ic.stop()


def test_sigkill_cli_the_agent_restores(kb, rsim, laptop):  # noqa: F811
    ic = Intercept(kb, laptop)
    try:
        ic.wait_step("tunnel up")
        sid = ic.session()
        assert call(b"hi") == b"LAPTOP hi"
        t0 = time.monotonic()
        ic.p.kill()  # no cleanup by the CLI: its kubectl dies with it
        ic.p.wait(10)
        # grace 10 s: the agent restores it through the API on its own
        wait_for(lambda: svc(rsim)["spec"]["selector"] == ORIGINAL, 30, "the agent's restore")
        took = time.monotonic() - t0
        assert took < 10 + 10, "restored %.1f s after the CLI died" % took
        assert_original(rsim)
        who = "system:serviceaccount:default:devbridge-agent-%s" % sid
        log = open(os.path.join(rsim.dir, "requests.log")).read()
        assert any(line.startswith("PUT /api/v1/namespaces/default/services/web ") and who in line
                   for line in log.splitlines()), log[-3000:]
        assert call(b"y") == b"y"
    finally:
        ic.stop()
        rsim.kubectl("delete", "jobs,secrets,roles,rolebindings,serviceaccounts", "-l",
                     "app.kubernetes.io/managed-by=devbridge", "--ignore-not-found")


def test_port_forward_killed_reconnects_without_restore(kb, rsim, laptop):  # noqa: F811
    ic = Intercept(kb, laptop)
    try:
        ic.wait_step("tunnel up")
        sid = ic.session()
        assert call(b"one") == b"LAPTOP one"
        pf = [p for p in descendants(ic.p.pid) if "port-forward" in proc_cmdline(p)]
        assert pf, "no kubectl port-forward under the CLI"
        os.kill(pf[0], signal.SIGKILL)
        # traffic resumes through a new port-forward, and the selector never
        # went back in between (the agent's grace period covers the gap)
        deadline = time.monotonic() + 30
        while True:
            assert svc(rsim)["spec"]["selector"] == {"devbridge.dev/intercept": sid}
            try:
                if call(b"two", timeout=3) == b"LAPTOP two":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, ic.stderr()
        ic.p.send_signal(signal.SIGINT)
        assert ic.p.wait(60) == 0, ic.stderr()
        assert_original(rsim)
    finally:
        ic.stop()


def test_agent_pod_deleted_cli_restores_and_exits_71(kb, rsim, laptop):  # noqa: F811
    ic = Intercept(kb, laptop)
    try:
        ic.wait_step("tunnel up")
        sid = ic.session()
        assert call(b"a") == b"LAPTOP a"
        pod = json.loads(rsim.kubectl_ok("get", "pods", "-l", "devbridge.dev/session=" + sid,
                                         "-o", "json"))["items"][0]["metadata"]["name"]
        rsim.kubectl_ok("delete", "pod", pod, "--wait=false")
        assert ic.p.wait(60) == 71, ic.stderr()
        err = ic.stderr()
        assert "gone" in err, err
        assert_original(rsim)
        wait_for(lambda: leftovers(rsim, sid) == [], 30, "the agent's objects gone")
        assert call(b"b") == b"b"
    finally:
        ic.stop()


def test_sigstop_cli_the_agent_restores_after_keepalive(kb, rsim, laptop):  # noqa: F811
    """A stopped CLI (laptop asleep) keeps its TCP connection: the agent's
    pings go unanswered, and it restores after the keepalive timeout (30 s)
    and the grace period (10 s)."""
    ic = Intercept(kb, laptop)
    try:
        ic.wait_step("tunnel up")
        assert call(b"z") == b"LAPTOP z"
        t0 = time.monotonic()
        os.kill(ic.p.pid, signal.SIGSTOP)
        wait_for(lambda: svc(rsim)["spec"]["selector"] == ORIGINAL, 60, "the agent's restore")
        took = time.monotonic() - t0
        assert took < 10 + 30 + 10 + 5, "restored %.1f s after SIGSTOP" % took
        assert_original(rsim)
    finally:
        if ic.p.poll() is None:
            os.kill(ic.p.pid, signal.SIGCONT)
        ic.stop()
        rsim.kubectl("delete", "jobs,secrets,roles,rolebindings,serviceaccounts", "-l",
                     "app.kubernetes.io/managed-by=devbridge", "--ignore-not-found")


def test_two_port_service_reaches_two_local_ports(kb, rsim):  # noqa: F811
    """Each stream names its Service port, so a two-port Service reaches the
    right local port for each."""
    a, b = Laptop(b"EIGHTY "), Laptop(b"EIGHTYONE ")
    ic = Intercept(kb, None, "-p", "80:%d" % a.port, "-p", "81:%d" % b.port, svc="web2")
    try:
        ic.wait_step("tunnel up")
        for i in range(5):
            assert call(b"x%d" % i, ip=CLUSTER_IP2, port=80) == b"EIGHTY x%d" % i
            assert call(b"y%d" % i, ip=CLUSTER_IP2, port=81) == b"EIGHTYONE y%d" % i
        ic.p.send_signal(signal.SIGINT)
        assert ic.p.wait(60) == 0, ic.stderr()
        s = json.loads(rsim.kubectl_ok("get", "service", "web2", "-o", "json"))
        assert s["spec"]["selector"] == {"app": "web2"}
    finally:
        ic.stop()
        a.close()
        b.close()
