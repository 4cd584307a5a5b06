"""What an intercept agent pod needs from kubesim --runtime, end to end with
the real kubectl: ServiceAccount files mounted in a private mount
namespace, the API reachable from pods (KUBERNETES_SERVICE_HOST/PORT, a
certificate valid for that address), Secrets as env (and the Pending
CreateContainerConfigError while one is missing), ttlSecondsAfterFinished,
the devbridge agent image, runAsUser/runAsGroup, and the ServiceAccount as
the user in requests.log.

    /usr/bin/python3 -m pytest -q tests/kubesim/test_agent_runtime.py

The end-to-end tests need root, iproute2 and /usr/bin/kubectl (skipped
otherwise, and a skip fails under CI=true); the in-process tests at the
end need nothing.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from kubesim import runtime as rtmod, store as storemod  # noqa: E402

KUBECTL = "/usr/bin/kubectl"
NS = "agentrt"
UID = 65532
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def _skip_reason():
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (kubesim --runtime: network and mount namespaces)"
    if not shutil.which("ip"):
        return "needs iproute2 (ip)"
    if not os.path.exists(KUBECTL):
        return "needs %s" % KUBECTL
    return None


needs_runtime = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def wait_for(pred, timeout, what):
    """Poll a condition with a deadline (the condition is the sync)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except (AssertionError, OSError, ValueError, KeyError) as e:
            last = e
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))
        else:
            if last:
                return last
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))
        time.sleep(0.05)


class Sim:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="kubesim-agent-")
        self.dir = os.path.join(self.tmp, "sim")
        self.pods = os.path.join(self.tmp, "pods")
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home)
        self.log_path = os.path.join(self.tmp, "sim.log")
        # DEVBRIDGE_BIN=/usr/bin/echo: the agent image's "devbridge agent
        # ..." prints its arguments; a log_path in ASAN_OPTIONS is dropped
        # for pods, the other options reach them.
        env = dict(os.environ, KUBESIM_POD_LOGS=self.pods, DEVBRIDGE_BIN="/usr/bin/echo",
                   ASAN_OPTIONS="detect_leaks=1:exitcode=86:log_path=/nonexistent/asan")
        env.pop("KUBESIM_AGENT_IMAGE", None)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubesim", "--dir", self.dir, "--runtime"],
                cwd=TESTS, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=env)

        def ready():
            assert self.proc.poll() is None, "kubesim exited: " + self.log()
            with open(os.path.join(self.dir, "ready")) as f:
                return json.load(f)
        self.ready = wait_for(ready, 30, "kubesim ready")
        self.env = dict(os.environ, HOME=self.home, KUBECACHEDIR=os.path.join(self.home, "cache"),
                        KUBECONFIG=os.path.join(self.dir, "kubeconfig"))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def kubectl(self, *args, stdin=None, timeout=60):
        return subprocess.run([KUBECTL] + list(args), env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, stdin=None, timeout=60):
        r = self.kubectl(*args, stdin=stdin, timeout=timeout)
        assert r.returncode == 0, "kubectl %s: %s%s\n--- sim log:\n%s" % (
            " ".join(args), r.stdout, r.stderr, self.log())
        return r.stdout

    def apply(self, *objs):
        return self.ok("apply", "--validate=false", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def get(self, kind, name, ns=NS):
        r = self.kubectl("-n", ns, "get", kind, name, "-o", "json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def pod_of_job(self, job):
        out = json.loads(self.ok("-n", NS, "get", "pods", "-l", "job-name=" + job, "-o", "json"))
        return out["items"][0]["metadata"]["name"] if out["items"] else None

    def pod_log(self, pod, container):
        path = os.path.join(self.pods, "%s_%s_%s.log" % (NS, pod, container))
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def record(self, pod, container):
        with open(os.path.join(self.pods, "%s_%s_%s.json" % (NS, pod, container))) as f:
            return json.load(f)

    def requests(self):
        with open(os.path.join(self.dir, "requests.log")) as f:
            return f.read().splitlines()

    def wait_phase(self, pod, phases, timeout=30):
        def phase():
            p = self.get("pod", pod)
            ph = ((p or {}).get("status") or {}).get("phase")
            return ph if ph in phases else None
        try:
            return wait_for(phase, timeout, "pod %s in %s" % (pod, phases))
        except AssertionError as e:
            raise AssertionError("%s\n--- pod: %s\n--- sim log:\n%s" % (
                e, json.dumps(self.get("pod", pod), indent=1), self.log()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def sim():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    s = Sim()
    try:
        s.ok("create", "namespace", NS)
        yield s
    finally:
        s.stop()


def job(name, containers, sa=None, ttl=None, pod_sc=None, labels=None, automount=None):
    spec = {"restartPolicy": "Never", "containers": containers,
            "terminationGracePeriodSeconds": 1}
    if sa:
        spec["serviceAccountName"] = sa
    if pod_sc:
        spec["securityContext"] = pod_sc
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    js = {"backoffLimit": 0, "template": {"metadata": {"labels": labels or {}}, "spec": spec}}
    if ttl is not None:
        js["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
            "spec": js}


def pod(name, containers, sa=None, pod_sc=None, automount=None):
    spec = {"restartPolicy": "Never", "containers": containers,
            "terminationGracePeriodSeconds": 1}
    if sa:
        spec["serviceAccountName"] = sa
    if pod_sc:
        spec["securityContext"] = pod_sc
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def py(code):
    return [sys.executable, "-c", textwrap.dedent(code)]


RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
              "capabilities": {"drop": ["ALL"]}}
POD_RESTRICTED = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                  "seccompProfile": {"type": "RuntimeDefault"}}

# What an in-cluster client does: token, ca.crt and namespace from the
# mounted directory, the API at KUBERNETES_SERVICE_HOST:PORT verified with
# ca.crt (hostname check on the IP SAN), GET then PUT the Service with the
# resourceVersion it read, and a call RBAC refuses.
CLIENT = r"""
import http.client, json, os, ssl, sys
d = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(d + "/token").read().strip()
ns = open(d + "/namespace").read().strip()
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
host, port = os.environ["KUBERNETES_SERVICE_HOST"], int(os.environ["KUBERNETES_SERVICE_PORT"])
def call(method, path, body=None):
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    hdrs = {"Authorization": "Bearer " + token, "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=hdrs)
    r = c.getresponse()
    out = r.status, json.loads(r.read() or b"null")
    c.close()
    return out
path = "/api/v1/namespaces/%s/services/web" % ns
st, svc = call("GET", path)
assert st == 200, (st, svc)
svc["spec"]["selector"] = {"devbridge.dev/intercept": "0123456789"}
st, put = call("PUT", path, svc)
assert st == 200, (st, put)
st_pods, _ = call("GET", "/api/v1/namespaces/%s/pods" % ns)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
                  "ns": ns, "token": token, "put_selector": put["spec"]["selector"],
                  "pods_status": st_pods, "host": host}), flush=True)
"""

CURL = ("set -e; d=/var/run/secrets/kubernetes.io/serviceaccount; "
        "curl -sS --fail --cacert $d/ca.crt -H \"Authorization: Bearer $(cat $d/token)\" "
        "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/"
        "$(cat $d/namespace)/services/web -o /dev/null -w 'curl %{http_code}\\n'")


@needs_runtime
def test_job_pod_calls_the_api_as_its_service_account(sim):
    sim.apply(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "bot", "namespace": NS}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "bot", "namespace": NS},
         "rules": [{"apiGroups": [""], "resources": ["services"], "resourceNames": ["web"],
                    "verbs": ["get", "update", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "bot", "namespace": NS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bot"},
         "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": NS}]})
    containers = [{"name": "client", "image": "kubesim/pause", "command": py(CLIENT),
                   "securityContext": RESTRICTED}]
    have_curl = shutil.which("curl") is not None
    if have_curl:
        containers.append({"name": "curl", "image": "kubesim/pause",
                           "command": ["/bin/sh", "-c", CURL], "securityContext": RESTRICTED})
    sim.apply(job("client", containers, sa="bot", pod_sc=POD_RESTRICTED))
    r = sim.kubectl("-n", NS, "wait", "--for=condition=complete", "job/client", "--timeout=60s",
                    timeout=75)
    p = sim.pod_of_job("client")
    assert r.returncode == 0, "job: %s%s\n--- client: %s\n--- curl: %s\n--- sim:\n%s" % (
        r.stdout, r.stderr, sim.pod_log(p, "client"), sim.pod_log(p, "curl"), sim.log())
    out = json.loads(sim.pod_log(p, "client").strip().splitlines()[-1])
    assert out["uid"] == UID and out["gid"] == UID and out["groups"] == [], out
    assert out["ns"] == NS and out["token"] == "sa:%s:bot" % NS, out
    assert out["host"] == "10.244.0.1", out
    assert out["put_selector"] == {"devbridge.dev/intercept": "0123456789"}, out
    assert out["pods_status"] == 403, out   # RBAC applies to the ServiceAccount
    if have_curl:
        assert "curl 200" in sim.pod_log(p, "curl"), sim.pod_log(p, "curl")
    svc = sim.get("service", "web")
    assert svc["spec"]["selector"] == {"devbridge.dev/intercept": "0123456789"}
    user = "system:serviceaccount:%s:bot" % NS
    reqs = sim.requests()
    assert "GET /api/v1/namespaces/%s/services/web 200 %s" % (NS, user) in reqs, reqs[-20:]
    assert "PUT /api/v1/namespaces/%s/services/web 200 %s" % (NS, user) in reqs, reqs[-20:]
    assert "GET /api/v1/namespaces/%s/pods 403 %s" % (NS, user) in reqs, reqs[-20:]
    rec = sim.record(p, "client")
    assert rec["uid"] == UID and rec["gid"] == UID and rec["noNewPrivs"] is True, rec
    assert rec["readOnlyRootFilesystem"] is True and rec["runAsNonRoot"] is True, rec
    assert rec["serviceAccountName"] == "bot" and rec["serviceAccountMount"] == SA_MOUNT, rec
    assert "DEVBRIDGE_AGENT_TOKEN" not in rec["env"]


@needs_runtime
def test_secret_env_reaches_the_process(sim):
    sim.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "agent", "namespace": NS},
         "type": "Opaque", "data": {"token": base64.b64encode(b"f" * 64).decode(),
                                    "bad-name!": base64.b64encode(b"x").decode()},
         "stringData": {"mode": "steal"}})
    env = [{"name": "DEVBRIDGE_AGENT_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "agent", "key": "token"}}},
           {"name": "MODE", "valueFrom": {"secretKeyRef": {"name": "agent", "key": "mode"}}},
           {"name": "OPT_KEY", "valueFrom": {"secretKeyRef": {"name": "agent", "key": "nope",
                                                               "optional": True}}},
           {"name": "OPT_SECRET", "valueFrom": {"secretKeyRef": {"name": "nosuch", "key": "k",
                                                                  "optional": True}}},
           {"name": "PLAIN", "value": "v"}]
    c = {"name": "env", "image": "kubesim/pause", "env": env,
         "envFrom": [{"secretRef": {"name": "agent"}, "prefix": "S_"},
                     {"secretRef": {"name": "nosuch", "optional": True}}],
         "command": py("import json, os; print(json.dumps(dict(os.environ)))")}
    sim.apply(pod("envpod", [c]))
    sim.wait_phase("envpod", ("Succeeded",))
    got = json.loads(sim.pod_log("envpod", "env").strip().splitlines()[-1])
    assert got["DEVBRIDGE_AGENT_TOKEN"] == "f" * 64
    assert got["MODE"] == "steal" and got["PLAIN"] == "v"
    assert got["S_token"] == "f" * 64 and got["S_mode"] == "steal"
    assert "S_bad-name!" not in got
    assert "OPT_KEY" not in got and "OPT_SECRET" not in got
    assert got["KUBERNETES_SERVICE_HOST"] == "10.244.0.1"
    assert int(got["KUBERNETES_SERVICE_PORT"]) > 0
    # kubesim's ASAN_OPTIONS, without its log_path
    assert got["ASAN_OPTIONS"] == "detect_leaks=1:exitcode=86"
    assert "DEVBRIDGE_AGENT_TOKEN" in sim.record("envpod", "env")["env"]


@needs_runtime
def test_missing_secret_keeps_the_pod_pending_until_it_exists(sim):
    c = {"name": "c", "image": "kubesim/pause",
         "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}],
         "command": py("import os; print('T=' + os.environ['T'])")}
    sim.apply(pod("waits", [c]))

    def waiting():
        p = sim.get("pod", "waits")
        cs = ((p or {}).get("status") or {}).get("containerStatuses") or []
        w = (cs[0].get("state") or {}).get("waiting") if cs else None
        return (p["status"]["phase"], w) if w and w.get("reason") != "ContainerCreating" else None
    phase, w = wait_for(waiting, 30, "a waiting reason")
    assert phase == "Pending"
    assert w == {"reason": "CreateContainerConfigError", "message": 'secret "later" not found'}, w
    assert "CreateContainerConfigError" in sim.ok("-n", NS, "get", "pod", "waits")
    # the Secret without the key: another reason, still Pending
    sim.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later", "namespace": NS},
               "stringData": {"other": "x"}})

    def key_message():
        r = waiting()
        return r if r and "couldn't find key" in r[1].get("message", "") else None
    phase, w = wait_for(key_message, 30, "the missing key's message")
    assert phase == "Pending"
    assert w["message"] == "couldn't find key token in Secret %s/later" % NS, w
    sim.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later", "namespace": NS},
               "stringData": {"token": "now"}})
    sim.wait_phase("waits", ("Succeeded",))
    assert "T=now" in sim.pod_log("waits", "c")
    # runAsNonRoot with no uid: the kubelet refuses to start the container
    sim.apply(pod("asroot", [{"name": "c", "image": "kubesim/pause"}],
                  pod_sc={"runAsNonRoot": True}))

    def nonroot():
        p = sim.get("pod", "asroot")
        cs = ((p or {}).get("status") or {}).get("containerStatuses") or []
        w = (cs[0].get("state") or {}).get("waiting") if cs else None
        return w if w and w.get("reason") == "CreateContainerConfigError" else None
    w = wait_for(nonroot, 30, "runAsNonRoot refusal")
    assert "runAsNonRoot and image will run as root" in w["message"], w
    sim.ok("-n", NS, "delete", "pod", "asroot", "--wait=false")


@needs_runtime
def test_ttl_seconds_after_finished_deletes_the_job_and_its_pod(sim):
    sim.apply(job("ttl", [{"name": "c", "image": "kubesim/exit", "args": ["0"]}], ttl=1),
              job("ttlfail", [{"name": "c", "image": "kubesim/exit", "args": ["3"]}], ttl=0),
              job("keep", [{"name": "c", "image": "kubesim/exit", "args": ["0"]}]))
    sim.ok("-n", NS, "wait", "--for=condition=complete", "job/keep", "--timeout=60s", timeout=75)
    wait_for(lambda: sim.get("job", "ttl") is None, 30, "job ttl deleted")
    wait_for(lambda: sim.get("job", "ttlfail") is None, 30, "job ttlfail deleted")
    for j in ("ttl", "ttlfail"):
        wait_for(lambda: not json.loads(sim.ok("-n", NS, "get", "pods", "-l", "job-name=" + j,
                                               "-o", "json"))["items"], 30, "pods of " + j)
    # a Job without the field stays
    assert sim.get("job", "keep")["spec"].get("ttlSecondsAfterFinished") is None


@needs_runtime
def test_run_as_user_and_a_private_service_account_mount(sim):
    sim.apply({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "nomount", "namespace": NS},
               "automountServiceAccountToken": False})
    sim.apply(pod("nonroot", [{"name": "c", "image": "kubesim/pause",
                               "securityContext": {"allowPrivilegeEscalation": False}}],
                  pod_sc={"runAsUser": 4321, "runAsGroup": 4322, "fsGroup": 4323,
                          "supplementalGroups": [4324]}),
              pod("nomount", [{"name": "c", "image": "kubesim/pause"}], automount=False),
              pod("samount", [{"name": "c", "image": "kubesim/pause"}], sa="nomount"),
              pod("saover", [{"name": "c", "image": "kubesim/pause"}], sa="nomount",
                  automount=True))
    for name in ("nonroot", "nomount", "samount", "saover"):
        sim.wait_phase(name, ("Running",))
    pid = sim.record("nonroot", "c")["pid"]

    def status():
        with open("/proc/%d/status" % pid) as f:
            st = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        return st if st["Uid"].split()[0] == "4321" else None
    st = wait_for(status, 10, "the container process as uid 4321")
    assert st["Uid"].split() == ["4321"] * 4, st["Uid"]
    assert st["Gid"].split() == ["4322"] * 4, st["Gid"]
    assert sorted(st["Groups"].split()) == ["4323", "4324"], st["Groups"]
    assert st["NoNewPrivs"].strip() == "1"
    # the pod sees its ServiceAccount files, readable by its uid, read-only
    # (through /proc/PID/root: the real path, an absolute symlink such as
    # /var/run -> /run would lead back to the host's root)
    root = "/proc/%d/root" % pid
    real = os.path.realpath(SA_MOUNT)
    with open(root + real + "/token") as f:
        assert f.read() == "sa:%s:default" % NS
    with open(root + real + "/namespace") as f:
        assert f.read() == NS
    with open(root + real + "/ca.crt") as f, open(os.path.join(sim.dir, "ca.crt")) as g:
        assert f.read() == g.read()
    tok = os.stat(root + real + "/token")
    assert tok.st_uid == 4321 and tok.st_mode & 0o777 == 0o644
    with open("/proc/%d/mountinfo" % pid) as f:
        mi = [line.split() for line in f]
    sa = [m for m in mi if m[4].endswith("/secrets/kubernetes.io/serviceaccount")]
    assert len(sa) == 1 and sa[0][5].split(",")[0] == "ro", sa
    # ... and the host does not: the mountpoint is an empty directory here
    assert os.path.isdir(SA_MOUNT) and os.listdir(SA_MOUNT) == []
    with open("/proc/self/mountinfo") as f:
        assert "serviceaccount" not in f.read()
    # automountServiceAccountToken: false on the pod, or on its
    # ServiceAccount (the pod's true wins)
    for name, mounted in (("nomount", False), ("samount", False), ("saover", True)):
        p = sim.record(name, "c")["pid"]
        assert os.path.exists("/proc/%d/root%s/token" % (p, real)) is mounted, name
        assert (sim.record(name, "c")["serviceAccountMount"] is not None) is mounted, name
    for name in ("nonroot", "nomount", "samount", "saover"):
        sim.ok("-n", NS, "delete", "pod", name, "--wait=false")


@needs_runtime
def test_agent_image_runs_devbridge_bin(sim):
    # DEVBRIDGE_BIN=/usr/bin/echo in this sim: "devbridge agent ..." echoes
    c = {"name": "agent", "image": "ghcr.io/devbridge/agent:0.0.1-test",
         "command": ["devbridge", "agent", "--session", "0123456789"],
         "args": ["--port", "80:8080"], "securityContext": RESTRICTED}
    other = {"name": "other", "image": "ghcr.io/devbridge/agent", "args": ["agent", "--x"],
             "securityContext": RESTRICTED}
    sim.apply(job("agent", [c, other], pod_sc=POD_RESTRICTED))
    sim.ok("-n", NS, "wait", "--for=condition=complete", "job/agent", "--timeout=60s", timeout=75)
    p = sim.pod_of_job("agent")
    assert sim.pod_log(p, "agent") == "agent --session 0123456789 --port 80:8080\n"
    assert sim.pod_log(p, "other") == "agent --x\n"
    assert sim.record(p, "agent")["argv"][0] == "/usr/bin/echo"
    assert sim.record(p, "agent")["uid"] == UID


ON_TERM = r"""
import http.client, os, signal, ssl, sys
d = "/var/run/secrets/kubernetes.io/serviceaccount"
got = []
signal.signal(signal.SIGTERM, lambda *a: got.append(1))
print("ready", flush=True)
while not got:
    signal.pause()
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
c = http.client.HTTPSConnection(os.environ["KUBERNETES_SERVICE_HOST"],
                                int(os.environ["KUBERNETES_SERVICE_PORT"]), context=ctx, timeout=10)
c.request("GET", "/api/v1/namespaces/%s/configmaps/after-sigterm" % open(d + "/namespace").read(),
          headers={"Authorization": "Bearer " + open(d + "/token").read()})
print("status", c.getresponse().status, flush=True)
"""


@needs_runtime
def test_sigterm_grace_lets_a_pod_call_the_api_before_it_goes(sim):
    # what the agent does when its pod is deleted: restore through the API
    p = pod("term", [{"name": "c", "image": "kubesim/pause", "command": py(ON_TERM),
                      "securityContext": RESTRICTED}], sa="term", pod_sc=POD_RESTRICTED)
    p["spec"]["terminationGracePeriodSeconds"] = 20
    sim.apply(p)
    sim.wait_phase("term", ("Running",))
    wait_for(lambda: "ready" in sim.pod_log("term", "c"), 20, "the SIGTERM handler")
    sim.ok("-n", NS, "delete", "pod", "term", "--wait=false")
    line = "GET /api/v1/namespaces/%s/configmaps/after-sigterm 403 system:serviceaccount:%s:term" \
        % (NS, NS)
    wait_for(lambda: line in sim.requests(), 20, "the pod's request after SIGTERM")
    wait_for(lambda: "status 403" in sim.pod_log("term", "c"), 20, "the pod's output")


# ------------------------------------------------------------ in-process

def test_agent_image_patterns(monkeypatch):
    monkeypatch.delenv("KUBESIM_AGENT_IMAGE", raising=False)
    ok = rtmod.is_agent_image
    assert ok("ghcr.io/devbridge/agent:1.2.3")
    assert ok("ghcr.io/devbridge/agent")
    assert ok("ghcr.io/devbridge/agent:dev@sha256:" + "0" * 64)
    assert not ok("ghcr.io/devbridge/agentx:1")
    assert not ok("docker.io/library/busybox:1")
    assert not ok("")
    monkeypatch.setenv("KUBESIM_AGENT_IMAGE", "localhost:5000/agent")
    assert ok("localhost:5000/agent:abc") and ok("localhost:5000/agent")
    assert not ok("ghcr.io/devbridge/agent:1")
    monkeypatch.setenv("KUBESIM_AGENT_IMAGE", "my/agent:v1")
    assert ok("my/agent:v1") and not ok("my/agent:v2")


def test_ttl_controller_in_process():
    st = storemod.Store(log=lambda m: None)
    gone = []
    storemod.HOOKS["pod_deleted"].append(lambda s, p: gone.append(p["metadata"]["name"]))
    try:
        j = st.create(storemod.JOB, "default", {
            "metadata": {"name": "t"}, "spec": {"ttlSecondsAfterFinished": 0, "template": {
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
        pods, _ = st.list(storemod.POD, "default", "job-name=t")
        assert len(pods) == 1
        keep = st.create(storemod.JOB, "default", {
            "metadata": {"name": "k"}, "spec": {"template": {
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
        kpods, _ = st.list(storemod.POD, "default", "job-name=k")
        st.update_pod_status("default", kpods[0]["metadata"]["name"], phase="Succeeded")
        # not finished: nothing happens
        assert st.find(storemod.JOB, "default", "t")["metadata"]["uid"] == j["metadata"]["uid"]
        st.update_pod_status("default", pods[0]["metadata"]["name"], phase="Succeeded")
        with st.cond:
            assert st.cond.wait_for(lambda: st.find(storemod.JOB, "default", "t") is None, 10)
        assert pods[0]["metadata"]["name"] in gone
        assert st.find(storemod.POD, "default", pods[0]["metadata"]["name"]) is None
        k = st.find(storemod.JOB, "default", "k")
        assert k["metadata"]["uid"] == keep["metadata"]["uid"]
        assert any(c["type"] == "Complete" for c in k["status"]["conditions"])
    finally:
        storemod.HOOKS["pod_deleted"].pop()
        st.stop()


def test_waiting_reason_in_pod_status():
    st = storemod.Store(log=lambda m: None)
    st.create(storemod.POD, "default", {"metadata": {"name": "p"},
                                         "spec": {"containers": [{"name": "c", "image": "x"}]}})
    p = st.update_pod_status("default", "p", podIP="10.244.0.9", ready=False,
                             waiting=("CreateContainerConfigError", 'secret "s" not found'))
    assert p["status"]["phase"] == "Pending"
    assert p["status"]["containerStatuses"][0]["state"] == {"waiting": {
        "reason": "CreateContainerConfigError", "message": 'secret "s" not found'}}
    st.stop()
