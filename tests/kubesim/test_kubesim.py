"""Tests of kubesim: the real kubectl against a kubesim subprocess, plus
in-process tests of the store, RBAC evaluation and the patch formats.

Run: /usr/bin/python3 -m pytest tests/kubesim   (from the repository root)
"""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(HERE)
sys.path.insert(0, TESTS_DIR)

from kubesim import patch, rbac, store as storemod  # noqa: E402

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


def wait_for(pred, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


# ------------------------------------------------------------ the server

class Sim:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "sim")
        self.home = os.path.join(tmp, "home")
        os.makedirs(self.home)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubesim", "--dir", self.dir, "--port", "0"],
            cwd=TESTS_DIR, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "sim.err"), "w"))
        ready = os.path.join(self.dir, "ready")

        def is_ready():
            if self.proc.poll() is not None:
                raise AssertionError("kubesim exited with %s" % self.proc.returncode)
            try:
                with open(ready) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
        info = wait_for(is_ready, 30, what="kubesim ready file")
        self.port, self.pid = info["port"], info["pid"]
        assert self.pid == self.proc.pid
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        with open(os.path.join(self.dir, "tokens.json")) as f:
            self.tokens = json.load(f)
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)

    def kubectl(self, *args, context=None, check=True, timeout=60, stdin=None):
        env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig,
                   KUBECACHEDIR=os.path.join(self.home, "cache"))
        cmd = [KUBECTL] + (["--context", context] if context else []) + list(args)
        p = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode,
                                                           p.stdout, p.stderr))
        return p

    def http(self, method, path, body=None, token=None, ctype="application/json"):
        """A raw API call; returns (status, decoded JSON or text)."""
        tok = self.tokens["admin"] if token is None else token
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": ctype}
        if tok:
            headers["Authorization"] = "Bearer " + tok
        req = urllib.request.Request("https://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
                code, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, raw = e.code, e.read()
        try:
            return code, json.loads(raw)
        except ValueError:
            return code, raw.decode()

    def set_pod_running(self, ns, name, ip):
        code, obj = self.http("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, name),
                              {"status": {"phase": "Running", "podIP": ip,
                                          "conditions": [{"type": "Ready", "status": "True"}]}},
                              ctype="application/merge-patch+json")
        assert code == 200, obj


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = Sim(str(tmp_path_factory.mktemp("kubesim")))
    try:
        yield s
    finally:
        s.stop()


_counter = [0]


@pytest.fixture
def ns(sim):
    _counter[0] += 1
    name = "t%d" % _counter[0]
    sim.kubectl("create", "ns", name)
    return name


SERVICE_POD = """
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: {ns}
  labels: {{app: web}}
spec:
  containers:
  - name: c
    image: echo
    env:
    - {{name: A, value: "{value}"}}
    ports:
    - {{name: http, containerPort: 8080}}
"""


# ----------------------------------------------------------- kubectl tests

@needs_kubectl
def test_version(sim):
    out = json.loads(sim.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["minor"] == "32"


@needs_kubectl
def test_get_and_create_namespace(sim):
    out = sim.kubectl("get", "ns").stdout
    assert "default" in out and "kube-system" in out
    assert "namespace/made-here created" in sim.kubectl("create", "ns", "made-here").stdout
    got = json.loads(sim.kubectl("get", "ns", "made-here", "-o", "json").stdout)
    assert got["status"]["phase"] == "Active"
    p = sim.kubectl("create", "ns", "made-here", check=False)
    assert p.returncode != 0 and "AlreadyExists" in p.stderr


@needs_kubectl
def test_apply_service_and_pod(sim, ns, tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(SERVICE_POD.format(ns=ns, value="1"))
    out = sim.kubectl("apply", "-f", str(f)).stdout
    assert "service/web created" in out and "pod/web-1 created" in out
    svc = json.loads(sim.kubectl("-n", ns, "get", "svc", "web", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"].startswith("10.96.")
    assert svc["spec"]["ports"][0] == {"name": "http", "port": 80, "targetPort": "http",
                                       "protocol": "TCP"}
    # client-side apply again: a strategic merge patch with last-applied
    f.write_text(SERVICE_POD.format(ns=ns, value="2"))
    out = sim.kubectl("apply", "-f", str(f)).stdout
    assert "service/web unchanged" in out and "pod/web-1 configured" in out
    pod = json.loads(sim.kubectl("-n", ns, "get", "pod", "web-1", "-o", "json").stdout)
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in pod["metadata"]["annotations"]
    table = sim.kubectl("-n", ns, "get", "pods").stdout
    assert "web-1" in table and "Pending" in table


@needs_kubectl
def test_patch_types(sim, ns, tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(SERVICE_POD.format(ns=ns, value="1"))
    sim.kubectl("apply", "-f", str(f))
    sim.kubectl("-n", ns, "patch", "svc", "web", "--type", "merge",
                "-p", '{"metadata":{"labels":{"tier":"fe"}}}')
    sim.kubectl("-n", ns, "patch", "svc", "web", "--type", "json",
                "-p", '[{"op":"add","path":"/spec/ports/-","value":{"name":"https","port":443}}]')
    svc = json.loads(sim.kubectl("-n", ns, "get", "svc", "web", "-o", "json").stdout)
    assert svc["metadata"]["labels"] == {"tier": "fe"}
    assert [p["port"] for p in svc["spec"]["ports"]] == [80, 443]
    # strategic (kubectl's default): env merged by name
    sim.kubectl("-n", ns, "patch", "pod", "web-1",
                "-p", '{"spec":{"containers":[{"name":"c","env":[{"name":"B","value":"3"}]}]}}')
    pod = json.loads(sim.kubectl("-n", ns, "get", "pod", "web-1", "-o", "json").stdout)
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"},
                                                   {"name": "B", "value": "3"}]
    p = sim.kubectl("-n", ns, "patch", "svc", "web", "--type", "json",
                    "-p", '[{"op":"remove","path":"/spec/nope"}]', check=False)
    assert p.returncode != 0


@needs_kubectl
def test_server_side_apply(sim, ns, tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: %s}\n"
                 "data: {a: '1'}\n" % ns)
    assert "serverside-applied" in sim.kubectl("apply", "--server-side", "-f", str(f)).stdout
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: %s}\n"
                 "data: {a: '2', b: '3'}\n" % ns)
    sim.kubectl("apply", "--server-side", "-f", str(f))
    cm = json.loads(sim.kubectl("-n", ns, "get", "cm", "cfg", "-o", "json").stdout)
    assert cm["data"] == {"a": "2", "b": "3"}


@needs_kubectl
def test_protobuf_generators(sim, ns):
    sim.kubectl("-n", ns, "create", "configmap", "c2", "--from-literal=k=v")
    sim.kubectl("-n", ns, "create", "secret", "generic", "s1", "--from-literal=k=v")
    cm = json.loads(sim.kubectl("-n", ns, "get", "cm", "c2", "-o", "json").stdout)
    assert cm["data"] == {"k": "v"}
    sec = json.loads(sim.kubectl("-n", ns, "get", "secret", "s1", "-o", "json").stdout)
    assert sec["data"] == {"k": "dg=="} and sec["type"] == "Opaque"


@needs_kubectl
def test_label_selectors(sim, ns):
    for name, app in (("a1", "x"), ("a2", "y"), ("a3", "x")):
        sim.kubectl("-n", ns, "run", name, "--image=pause", "--labels=app=%s" % app)

    def names(*sel):
        out = sim.kubectl("-n", ns, "get", "pods", *sel, "-o", "name").stdout.split()
        return sorted(n.split("/")[1] for n in out)
    assert names("-l", "app=x") == ["a1", "a3"]
    assert names("-l", "app!=x") == ["a2"]
    assert names("-l", "app in (y,z)") == ["a2"]
    assert names("-l", "app notin (x)") == ["a2"]
    assert names("-l", "app") == ["a1", "a2", "a3"]
    assert names("-l", "!app") == []
    assert names("--field-selector", "metadata.name=a2") == ["a2"]


@needs_kubectl
def test_describe_svc_and_endpoints(sim, ns, tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(SERVICE_POD.format(ns=ns, value="1"))
    sim.kubectl("apply", "-f", str(f))
    sim.set_pod_running(ns, "web-1", "10.244.3.4")
    out = sim.kubectl("-n", ns, "describe", "svc", "web").stdout
    assert "Selector:          app=web" in out
    assert "10.244.3.4:8080" in out
    ep = json.loads(sim.kubectl("-n", ns, "get", "endpoints", "web", "-o", "json").stdout)
    assert ep["subsets"][0]["addresses"][0]["ip"] == "10.244.3.4"


@needs_kubectl
def test_wait_for_ready_uses_watch(sim, ns, tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(SERVICE_POD.format(ns=ns, value="1"))
    sim.kubectl("apply", "-f", str(f))
    env = dict(os.environ, HOME=sim.home, KUBECONFIG=sim.kubeconfig,
               KUBECACHEDIR=os.path.join(sim.home, "cache"))
    waiter = subprocess.Popen([KUBECTL, "-n", ns, "wait", "--for=condition=Ready", "pod/web-1",
                               "--timeout=30s"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        log = os.path.join(sim.dir, "requests.log")
        wait_for(lambda: any("watch=true" in ln and "/namespaces/%s/pods" % ns in ln
                             for ln in open(log)), 30, what="the watch request")
        sim.set_pod_running(ns, "web-1", "10.244.3.5")
        out, err = waiter.communicate(timeout=40)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert "condition met" in out


@needs_kubectl
def test_delete_pod(sim, ns):
    sim.kubectl("-n", ns, "run", "gone", "--image=pause")
    assert 'pod "gone" deleted' in sim.kubectl("-n", ns, "delete", "pod", "gone").stdout
    p = sim.kubectl("-n", ns, "get", "pod", "gone", check=False)
    assert p.returncode != 0
    assert 'Error from server (NotFound): pods "gone" not found' in p.stderr


@needs_kubectl
def test_rbac_can_i_and_forbidden(sim, ns):
    p = sim.kubectl("-n", ns, "auth", "can-i", "get", "services", context="kubesim-dev", check=False)
    assert p.returncode == 1 and p.stdout.strip() == "no"
    p = sim.kubectl("-n", ns, "get", "svc", context="kubesim-dev", check=False)
    assert p.returncode != 0
    assert ('Error from server (Forbidden): services is forbidden: User "dev" cannot list '
            'resource "services" in API group "" in the namespace "%s"' % ns) in p.stderr
    sim.kubectl("-n", ns, "create", "role", "svc-reader", "--verb=get,list", "--resource=services")
    sim.kubectl("-n", ns, "create", "rolebinding", "dev-svc", "--role=svc-reader", "--user=dev")
    p = sim.kubectl("-n", ns, "auth", "can-i", "get", "services", context="kubesim-dev", check=False)
    assert p.returncode == 0 and p.stdout.strip() == "yes"
    p = sim.kubectl("-n", ns, "auth", "can-i", "delete", "services", context="kubesim-dev",
                    check=False)
    assert p.stdout.strip() == "no"
    assert sim.kubectl("-n", ns, "auth", "can-i", "list", "services", "--as", "dev").stdout.strip() == "yes"
    p = sim.kubectl("-n", ns, "auth", "can-i", "create", "pods/portforward", "--as", "dev", check=False)
    assert p.stdout.strip() == "no"
    assert sim.kubectl("-n", ns, "get", "svc", context="kubesim-dev").returncode == 0
    p = sim.kubectl("-n", ns, "get", "pods", context="kubesim-dev", check=False)
    assert 'User "dev" cannot list resource "pods"' in p.stderr
    # not in another namespace
    p = sim.kubectl("-n", "default", "get", "svc", context="kubesim-dev", check=False)
    assert "Forbidden" in p.stderr


@needs_kubectl
def test_service_account_rbac(sim, ns, tmp_path):
    f = tmp_path / "rb.yaml"
    f.write_text("""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pf, namespace: %(ns)s}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["pods/portforward"]
  verbs: ["create"]
  resourceNames: ["only-this"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pf, namespace: %(ns)s}
subjects: [{kind: ServiceAccount, name: bot, namespace: %(ns)s}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pf}
""" % {"ns": ns})
    sim.kubectl("apply", "-f", str(f))
    tok = "sa:%s:bot" % ns
    code, _ = sim.http("GET", "/api/v1/namespaces/%s/pods" % ns, token=tok)
    assert code == 200
    code, st = sim.http("GET", "/api/v1/namespaces/%s/services" % ns, token=tok)
    assert code == 403 and st["reason"] == "Forbidden"
    assert ('User "system:serviceaccount:%s:bot" cannot list resource "services"' % ns) in st["message"]
    sa = "system:serviceaccount:%s:bot" % ns
    assert sim.kubectl("-n", ns, "auth", "can-i", "create", "pods/only-this",
                       "--subresource=portforward", "--as", sa).stdout.strip() == "yes"
    assert sim.kubectl("-n", ns, "auth", "can-i", "create", "pods/other",
                       "--subresource=portforward", "--as", sa, check=False).stdout.strip() == "no"


def test_unauthenticated_is_401(sim):
    code, st = sim.http("GET", "/api/v1/namespaces", token="")
    assert code == 401 and st["reason"] == "Unauthorized"
    code, st = sim.http("GET", "/api/v1/namespaces", token="wrong")
    assert code == 401
    code, ver = sim.http("GET", "/version", token="")
    assert code == 200 and ver["minor"] == "32"


def test_http_errors_and_conflicts(sim):
    code, st = sim.http("GET", "/api/v1/namespaces/default/pods/nope")
    assert code == 404 and st["kind"] == "Status" and st["message"] == 'pods "nope" not found'
    code, st = sim.http("POST", "/api/v1/namespaces/nope-ns/configmaps",
                        {"metadata": {"name": "c"}})
    assert code == 404 and 'namespaces "nope-ns" not found' == st["message"]
    code, cm = sim.http("POST", "/api/v1/namespaces/default/configmaps",
                        {"metadata": {"generateName": "gen-"}, "data": {"a": "1"}})
    assert code == 201 and cm["metadata"]["name"].startswith("gen-")
    path = "/api/v1/namespaces/default/configmaps/" + cm["metadata"]["name"]
    stale = dict(cm, data={"a": "2"})
    code, cm2 = sim.http("PUT", path, stale)
    assert code == 200 and cm2["metadata"]["resourceVersion"] != cm["metadata"]["resourceVersion"]
    code, st = sim.http("PUT", path, dict(stale, data={"a": "3"}))
    assert code == 409 and st["reason"] == "Conflict"
    code, _ = sim.http("DELETE", path)
    assert code == 200
    code, _ = sim.http("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1&timeoutSeconds=1")
    assert code == 200


@needs_kubectl
def test_job_creates_pod(sim, ns):
    sim.kubectl("-n", ns, "create", "job", "j1", "--image=busybox", "--", "echo", "hi")
    out = sim.kubectl("-n", ns, "get", "pods", "-l", "job-name=j1", "-o", "json").stdout
    pods = json.loads(out)["items"]
    assert len(pods) == 1 and pods[0]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    job = json.loads(sim.kubectl("-n", ns, "get", "job", "j1", "-o", "json").stdout)
    assert job["status"]["active"] == 1
    sim.kubectl("-n", ns, "delete", "job", "j1")
    assert json.loads(sim.kubectl("-n", ns, "get", "pods", "-o", "json").stdout)["items"] == []


@needs_kubectl
def test_delete_namespace_and_requests_log(sim):
    sim.kubectl("create", "ns", "doomed")
    sim.kubectl("-n", "doomed", "create", "configmap", "c", "--from-literal=a=b")
    assert 'namespace "doomed" deleted' in sim.kubectl("delete", "ns", "doomed").stdout
    p = sim.kubectl("get", "ns", "doomed", check=False)
    assert "NotFound" in p.stderr
    log = open(os.path.join(sim.dir, "requests.log")).read()
    assert "DELETE /api/v1/namespaces/doomed" in log and " 200 admin" in log


# ------------------------------------------------------- in-process tests

@pytest.fixture
def store():
    s = storemod.Store(log=lambda m: None)
    yield s
    s.stop()


def _pod(name, labels=None, **spec):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": dict({"containers": [{"name": "c", "image": "x",
                                          "ports": [{"name": "http", "containerPort": 8080}]}]},
                         **spec)}


def test_hooks_and_endpoints(store, monkeypatch):
    seen = []
    monkeypatch.setitem(storemod.HOOKS, "pod_created", [lambda st, p: seen.append(("c", p["metadata"]["name"]))])
    monkeypatch.setitem(storemod.HOOKS, "pod_deleted", [lambda st, p: seen.append(("d", p["metadata"]["name"]))])
    store.create(storemod.SERVICE, "default", {"metadata": {"name": "s"},
                                               "spec": {"selector": {"app": "a"},
                                                        "ports": [{"port": 80, "targetPort": "http"}]}})
    store.create(storemod.POD, "default", _pod("p", {"app": "a"}))
    assert seen == [("c", "p")]
    assert store.get(storemod.POD, "default", "p")["status"]["phase"] == "Pending"
    assert "subsets" not in store.get(storemod.ENDPOINTS, "default", "s")
    rv = store.rv
    store.update_pod_status("default", "p", phase="Running", podIP="10.244.0.7", ready=True)
    assert store.rv > rv
    ep = store.get(storemod.ENDPOINTS, "default", "s")
    assert ep["subsets"][0]["addresses"][0]["ip"] == "10.244.0.7"
    assert ep["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    store.delete(storemod.POD, "default", "p")
    assert seen[-1] == ("d", "p")
    assert "subsets" not in store.get(storemod.ENDPOINTS, "default", "s")


def test_job_success_and_deadline(store, monkeypatch):
    created = []
    monkeypatch.setitem(storemod.HOOKS, "pod_created", [lambda st, p: created.append(p)])
    tmpl = {"spec": {"containers": [{"name": "c", "image": "x"}]}}
    store.create(storemod.JOB, "default", {"metadata": {"name": "ok"}, "spec": {"template": tmpl}})
    pod = created[-1]
    assert pod["metadata"]["labels"]["job-name"] == "ok"
    store.update_pod_status("default", pod["metadata"]["name"], phase="Succeeded", exit_code=0)
    job = store.get(storemod.JOB, "default", "ok")
    assert job["status"]["succeeded"] == 1 and job["status"]["conditions"][0]["type"] == "Complete"

    store.create(storemod.JOB, "default", {"metadata": {"name": "slow"},
                                           "spec": {"activeDeadlineSeconds": 1, "template": tmpl}})
    pod = created[-1]
    store.fake_run("default", pod["metadata"]["name"], "10.244.0.8")

    def failed():
        conds = (store.get(storemod.JOB, "default", "slow").get("status") or {}).get("conditions") or []
        return any(c["type"] == "Failed" and c["reason"] == "DeadlineExceeded" for c in conds)
    wait_for(failed, 10, what="job deadline")
    assert store.find(storemod.POD, "default", pod["metadata"]["name"]) is None


def test_rbac_rules(store):
    rr = storemod.resource_by_key("rbac.authorization.k8s.io/clusterroles")
    crb = storemod.resource_by_key("rbac.authorization.k8s.io/clusterrolebindings")
    store.create(rr, None, {"metadata": {"name": "viewer"},
                            "rules": [{"apiGroups": ["", "batch"], "resources": ["pods", "pods/*", "jobs"],
                                       "verbs": ["get", "list", "watch"]}]})
    store.create(crb, None, {"metadata": {"name": "v"}, "roleRef": {"kind": "ClusterRole", "name": "viewer"},
                             "subjects": [{"kind": "Group", "name": "viewers"}]})
    u = rbac.User("ann", ["viewers", "system:authenticated"])
    assert rbac.authorize(store, u, "get", "", "pods", "log", "ns1", "p")[0]
    assert rbac.authorize(store, u, "list", "batch", "jobs", "", "ns1")[0]
    assert not rbac.authorize(store, u, "delete", "", "pods", "", "ns1", "p")[0]
    assert not rbac.authorize(store, rbac.User("bob", []), "get", "", "pods", "", "ns1")[0]
    assert rbac.authorize(store, rbac.User("admin", rbac.ADMIN_GROUPS, True), "delete", "x", "y")[0]
    assert rbac.forbidden_message(u, "get", "", "services", "", "x", None) == \
        'services is forbidden: User "ann" cannot get resource "services" in API group "" in the namespace "x"'


def test_selectors():
    reqs = storemod.parse_label_selector("a=1,b!=2,c in (x, y),d notin (z),e,!f")
    assert storemod.labels_match(reqs, {"a": "1", "c": "x", "e": ""})
    assert not storemod.labels_match(reqs, {"a": "1", "c": "x", "e": "", "f": "1"})
    assert not storemod.labels_match(reqs, {"a": "1", "c": "q", "e": ""})


def test_patches():
    doc = {"spec": {"containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}],
                                    "ports": [{"containerPort": 80, "name": "h"}]},
                                   {"name": "b", "image": "2"}],
                    "volumes": [{"name": "v1"}, {"name": "v2"}]},
           "metadata": {"finalizers": ["f1"]}}
    p = {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
         "spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}],
                                  "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                                 {"name": "b", "$patch": "delete"}],
                  "volumes": [{"name": "v1", "$patch": "delete"}]},
         "metadata": {"finalizers": ["f2"]}}
    out = patch.strategic_merge_patch(doc, p)
    assert out["spec"]["containers"] == [{"name": "a", "image": "1",
                                          "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                                          "ports": [{"containerPort": 80, "name": "h", "protocol": "TCP"}]}]
    assert out["spec"]["volumes"] == [{"name": "v2"}]
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    assert patch.strategic_merge_patch({"a": {"b": 1}}, {"a": {"$patch": "replace", "c": 2}}) == {"a": {"c": 2}}
    assert patch.merge_patch({"a": 1, "b": {"c": 1}}, {"a": None, "b": {"d": 2}}) == {"b": {"c": 1, "d": 2}}
    assert patch.json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/1", "value": 9},
                                            {"op": "replace", "path": "/a/0", "value": 0},
                                            {"op": "copy", "from": "/a", "path": "/b"},
                                            {"op": "test", "path": "/b/1", "value": 9}]) == \
        {"a": [0, 9, 2], "b": [0, 9, 2]}
    with pytest.raises(patch.PatchError):
        patch.json_patch({}, [{"op": "remove", "path": "/x"}])


# ------------------------------------------------------------ deployments

@needs_kubectl
def test_deployment_scale_with_kubectl(sim, ns):
    """`kubectl create deployment` and `kubectl scale` (the scale
    subresource, as kubectl uses it): pods follow spec.replicas, owned by
    the Deployment and named after it; its status counts Ready pods; the
    Endpoints of a Service follow the pods."""
    # (JSON: kubectl's `create deployment` generator sends protobuf)
    sim.kubectl("apply", "--validate=false", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "echo", "image": "kubesim/echo",
                                                        "ports": [{"containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}]}))
    bad = sim.kubectl("-n", ns, "apply", "--validate=false", "-f", "-", check=False,
                      stdin=json.dumps(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
         "spec": {"selector": {"matchLabels": {"app": "x"}},
                  "template": {"metadata": {"labels": {"app": "y"}},
                               "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
    assert bad.returncode != 0 and "does not match template" in bad.stderr, bad.stderr

    def pods():
        out = json.loads(sim.kubectl("-n", ns, "get", "pods", "-l", "app=web", "-o", "json").stdout)
        return sorted(p["metadata"]["name"] for p in out["items"])
    names = wait_for(lambda: len(pods()) == 2 and pods(), what="two pods")
    for n in names:
        assert n.startswith("web-") and len(n.split("-")) == 3, n
        own = json.loads(sim.kubectl("-n", ns, "get", "pod", n, "-o", "json").stdout)
        ref = own["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("Deployment", "web", True)
        assert own["metadata"]["labels"]["pod-template-hash"] == n.split("-")[1]
    # without a runtime the pods stay Pending: no Ready replica, no address
    st = json.loads(sim.kubectl("-n", ns, "get", "deployment", "web", "-o", "json").stdout)
    assert st["status"]["replicas"] == 2 and st["status"]["readyReplicas"] == 0, st["status"]
    sim.set_pod_running(ns, names[0], "10.244.9.1")
    wait_for(lambda: json.loads(sim.kubectl("-n", ns, "get", "deployment", "web", "-o", "json")
                                .stdout)["status"]["readyReplicas"] == 1, what="readyReplicas 1")
    ep = json.loads(sim.kubectl("-n", ns, "get", "endpoints", "web", "-o", "json").stdout)
    assert [a["targetRef"]["name"] for a in ep["subsets"][0]["addresses"]] == [names[0]], ep

    out = sim.kubectl("-n", ns, "scale", "deployment", "web", "--replicas=0").stdout
    assert "deployment.apps/web scaled" in out, out
    wait_for(lambda: pods() == [], what="no pods after scaling to 0")
    ep = json.loads(sim.kubectl("-n", ns, "get", "endpoints", "web", "-o", "json").stdout)
    assert "subsets" not in ep, ep
    sc = json.loads(sim.kubectl("-n", ns, "get", "deployment", "web", "-o", "json").stdout)
    assert sc["spec"]["replicas"] == 0 and sc["status"]["replicas"] == 0, sc

    sim.kubectl("-n", ns, "scale", "deployment", "web", "--replicas=1")
    back = wait_for(lambda: len(pods()) == 1 and pods(), what="one pod again")
    assert back[0] not in names
    # replaced when deleted; the Deployment's deletion takes its pods
    sim.kubectl("-n", ns, "delete", "pod", back[0])
    wait_for(lambda: len(pods()) == 1 and pods() != back, what="a replacement pod")
    sim.kubectl("-n", ns, "delete", "deployment", "web")
    wait_for(lambda: pods() == [], what="the pods deleted with their Deployment")


@needs_kubectl
def test_endpoints_follow_a_selector_change(sim, ns, tmp_path):
    """A Service's selector changed (a blue/green switch): its Endpoints name
    the other pod at once, and a watch sees it."""
    for color, ip in (("blue", "10.244.9.11"), ("green", "10.244.9.12")):
        sim.kubectl("-n", ns, "run", color, "--image=kubesim/echo", "--labels=app=%s" % color,
                    "--port=8080")
        sim.set_pod_running(ns, color, ip)
    sim.kubectl("-n", ns, "apply", "--validate=false", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "blue"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    env = dict(os.environ, HOME=sim.home, KUBECONFIG=sim.kubeconfig,
               KUBECACHEDIR=os.path.join(sim.home, "cache"))
    out = open(tmp_path / "watch.out", "w+")
    w = subprocess.Popen([KUBECTL, "-n", ns, "get", "endpoints", "web", "--watch",
                          "--output-watch-events", "-o", "json"], env=env, stdout=out,
                         stderr=subprocess.DEVNULL)
    try:
        def seen(pod):
            out.seek(0)
            for line in out.read().splitlines():
                ev = json.loads(line)
                for s in ev["object"].get("subsets") or []:
                    if any(a["targetRef"]["name"] == pod for a in s.get("addresses") or []):
                        return ev["type"]
            return None
        assert wait_for(lambda: seen("blue"), what="blue in the watch") == "ADDED"
        sim.kubectl("-n", ns, "patch", "service", "web", "--type=merge", "-p",
                    '{"spec":{"selector":{"app":"green"}}}')
        assert wait_for(lambda: seen("green"), what="green in the watch") == "MODIFIED"
    finally:
        w.kill()
        w.wait()
        out.close()
