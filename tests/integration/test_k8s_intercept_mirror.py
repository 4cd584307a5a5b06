"""`devbridge intercept SVC --mirror` end to end against kubesim --runtime,
as test_k8s_intercept.py does for --steal: the agent pod (the binary under
test) relays each cluster connection to a Ready original pod, and copies
what the client sent through the tunnel to this machine.

Asserted: a client calling the Service's ClusterIP gets the original
pods' answers (greet pods: their name, then the echo), never the laptop's;
the laptop receives the same request bytes (1 MiB intact, and 20 at
once); Ctrl+C restores the Service and removes the agent's objects."""

import hashlib
import json
import os
import signal
import subprocess
import threading

import pytest

from helpers import wait_for
from k8s_helpers import greet_pod, kb, rsim, service  # noqa: F401
from intercept_helpers import TagServer as Laptop, roundtrip

CLUSTER_IP = "10.96.216.20"
ORIGINAL = {"app": "mweb"}
PODS = ("mweb-1", "mweb-2")


@pytest.fixture(scope="module", autouse=True)
def cluster(rsim):  # noqa: F811
    if not rsim.is_sim:
        pytest.skip("needs the agent image on the cluster (deploy/agent/Dockerfile)")
    rsim.apply(*[greet_pod(p, "default", dict(ORIGINAL)) for p in PODS],
               service("mweb", "default", ORIGINAL, [(80, 8080)], CLUSTER_IP))
    rsim.wait_pods_ready("default", *PODS)
    yield rsim


def call(data, timeout=20):
    return roundtrip(CLUSTER_IP, 80, data, timeout)


def from_a_pod(got, data):
    name, _, rest = got.partition(b"\n")
    return name.decode() in PODS and rest == data


def agent_log(rsim, sid):  # noqa: F811
    r = rsim.kubectl("logs", "-l", "devbridge.dev/session=" + sid, "--tail", "50")
    log = open(os.path.join(rsim.dir, "requests.log")).read()
    return r.stdout + r.stderr + "\n--- requests:\n" + log[-3000:]


def svc(rsim):  # noqa: F811
    return json.loads(rsim.kubectl_ok("get", "service", "mweb", "-o", "json"))


def test_mirror_original_answers_laptop_gets_the_bytes(kb, rsim):  # noqa: F811
    laptop = Laptop()
    err = open(os.path.join(kb.tmp, "intercept.err"), "w+")
    p = subprocess.Popen([kb.bin, "--state-dir", kb.state_dir, "intercept", "mweb", "--mirror", "--foreground",
                          "-p", "80:%d" % laptop.port], env=kb.env(), stdout=subprocess.PIPE,
                         stderr=err, text=True)

    def stderr():
        err.flush()
        with open(err.name) as f:
            return f.read()
    try:
        wait_for(lambda: "tunnel up" in stderr() or p.poll() is not None, 60, "tunnel up")
        assert "tunnel up" in stderr(), stderr()
        sid = next(line.split("agent objects created: ")[1].strip()
                   for line in stderr().splitlines() if "agent objects created: " in line)
        s = svc(rsim)
        assert s["spec"]["selector"] == {"devbridge.dev/intercept": sid}
        assert s["metadata"]["annotations"]["devbridge.dev/mode"] == "mirror"
        blob = os.urandom(1 << 20)
        got = call(blob)
        assert from_a_pod(got, blob), (got[:40], agent_log(rsim, sid))
        wait_for(lambda: any(hashlib.sha256(r).digest() == hashlib.sha256(blob).digest()
                             for r in laptop.requests()), 30, "the laptop's 1 MiB copy")
        res = [None] * 20
        ts = [threading.Thread(target=lambda i=i: res.__setitem__(i, call(b"req%d" % i)))
              for i in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert all(from_a_pod(res[i], b"req%d" % i) for i in range(20)), res
        wait_for(lambda: all(b"req%d" % i in laptop.requests() for i in range(20)), 30,
                 "20 copies")
        p.send_signal(signal.SIGINT)
        assert p.wait(60) == 0, stderr()
        assert "selector restored" in stderr(), stderr()
        s = svc(rsim)
        assert s["spec"]["selector"] == ORIGINAL, s["spec"]
        assert not any(k.startswith("devbridge.dev/") for k in
                       s["metadata"].get("annotations", {}))
        assert from_a_pod(call(b"after"), b"after")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        laptop.close()
