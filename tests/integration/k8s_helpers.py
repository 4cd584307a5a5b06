"""kubesim for devbridge's Kubernetes tests: fixtures that start the
simulator (tests/kubesim) and run the real kubectl against it.

* `sim`  - kubesim without a runtime (pods stay Pending), per test;
* `rsim` - kubesim --runtime (pods are processes in network namespaces, so
           `kubectl port-forward` reaches real TCP services), per module;
* `kb`   - one test's devbridge sandbox against `rsim` (K8sSandbox): own
           --state-dir, HOME, KUBECACHEDIR and kubeconfig copy; its
           finalizer runs `disconnect -y` and fails the test if a kubectl
           naming that kubeconfig, or a devbridge of the test, is left.

A real cluster instead of kubesim: DEVBRIDGE_TEST_KUBECONFIG=FILE makes
`rsim` a RealCluster on that kubeconfig's current context (`make
test-k8s-real KUBECONFIG=FILE`).  Use a throwaway cluster (kind, minikube):
the tests create pods and services labelled devbridge-test=1 in `default`
and a namespace `other`, and delete them at the end; they refuse to start
if `other` already exists.  Pods run DEVBRIDGE_TEST_ECHO_IMAGE (default
docker.io/alpine/socat) as a TCP echo server.  Checks that need kubesim's
users (RBAC as user `dev`) are skipped there."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import Result, all_pids, devbridge_bin, kill_pid, proc_alive, proc_cmdline, \
    proc_environ, sanitizer_report, wait_for

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBECTL = "/usr/bin/kubectl"
REAL_KUBECONFIG = os.environ.get("DEVBRIDGE_TEST_KUBECONFIG") or None
ECHO_IMAGE = os.environ.get("DEVBRIDGE_TEST_ECHO_IMAGE", "docker.io/alpine/socat:1.8.0.0")
TEST_LABEL = {"devbridge-test": "1"}


@pytest.fixture
def sim(tmp_path):
    d = tmp_path / "sim"
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "kubesim", "--dir", str(d), "--port", "0"],
                            cwd=TESTS_DIR, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "sim.err", "w"))

    def ready():
        assert proc.poll() is None, "kubesim exited: %s" % (tmp_path / "sim.err").read_text()
        try:
            return json.loads((d / "ready").read_text())
        except (OSError, ValueError):
            return None
    wait_for(ready, 30, "kubesim ready")
    env = dict(os.environ, HOME=str(home), KUBECONFIG=str(d / "kubeconfig"),
               KUBECACHEDIR=str(home / "cache"))

    def kubectl(*args, stdin=None):
        return subprocess.run([KUBECTL] + list(args), input=stdin, env=env,
                              capture_output=True, text=True, timeout=60)
    kubectl.env = env
    kubectl.kubeconfig = str(d / "kubeconfig")
    yield kubectl
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(15)



# --------------------------------------------------------------------------
# kubesim with --runtime: pods run as real processes in network namespaces,
# so the real `kubectl port-forward` reaches real TCP services.


def runtime_skip_reason():
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (kubesim --runtime uses network namespaces)"
    if not shutil.which("ip"):
        return "needs iproute2 (ip)"
    if not os.path.exists(KUBECTL):
        return "needs %s" % KUBECTL
    return None


class RuntimeSim:
    """A running `kubesim --runtime`: `kubectl(...)` runs the real kubectl
    against it (admin, its own HOME and discovery cache)."""

    is_sim = True
    context = "kubesim"

    def __init__(self, base):
        self.base = str(base)
        self.dir = os.path.join(self.base, "sim")
        self.home = os.path.join(self.base, "home")
        os.makedirs(self.home, exist_ok=True)
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.log_path = os.path.join(self.base, "sim.log")
        self.proc = None
        self.env = None

    def start(self, timeout=30, env=None):
        """env: extra variables for kubesim (e.g. KUBESIM_AGENT_IMAGE).  The
        agent image runs $DEVBRIDGE_BIN: the binary under test by default."""
        self.pod_logs = os.path.join(self.base, "pods")
        senv = dict(os.environ, KUBESIM_POD_LOGS=self.pod_logs)
        senv.setdefault("DEVBRIDGE_BIN", os.path.abspath(devbridge_bin()))
        senv.update(env or {})
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubesim", "--dir", self.dir, "--port", "0", "--runtime"],
                cwd=TESTS_DIR, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=senv)
        finally:
            logf.close()

        def ready():
            assert self.proc.poll() is None, "kubesim exited: %s" % self.log()
            try:
                with open(os.path.join(self.dir, "ready")) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
        self.ready = wait_for(ready, timeout, "kubesim --runtime ready")
        self.env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig,
                        KUBECACHEDIR=os.path.join(self.home, "cache"))
        return self

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def kubectl(self, *args, stdin=None, timeout=60):
        return subprocess.run([KUBECTL] + list(args), input=stdin, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def kubectl_ok(self, *args, stdin=None, timeout=60):
        r = self.kubectl(*args, stdin=stdin, timeout=timeout)
        assert r.returncode == 0, "kubectl %s: %s%s\n--- sim log:\n%s" % (
            " ".join(args), r.stdout, r.stderr, self.log())
        return r.stdout

    def apply(self, *objs):
        return self.kubectl_ok("apply", "--validate=false", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def wait_pods_ready(self, namespace, *names, timeout=30):
        self.kubectl_ok("wait", "-n", namespace, "--for=condition=Ready",
                        "--timeout=%ds" % timeout, *["pod/" + n for n in names],
                        timeout=timeout + 15)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def echo_pod(name, namespace, labels, port=8080):
    """A TCP echo server on `port`: kubesim's built-in image, or on a real
    cluster socat, Ready once the port accepts (as kubesim does)."""
    c = {"name": "echo", "image": "kubesim/echo", "ports": [{"containerPort": port}]}
    if REAL_KUBECONFIG:
        c.update({"image": ECHO_IMAGE,
                  "args": ["-d", "TCP-LISTEN:%d,fork,reuseaddr" % port, "EXEC:cat"],
                  "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": dict(labels, **TEST_LABEL)},
            "spec": {"containers": [c], "terminationGracePeriodSeconds": 1}}


def greet_container(port=8080, ready_delay=0):
    """A TCP echo that first sends its pod's name and a newline on each
    connection (so a test sees which pod answered); with ready_delay the
    pod is Running that many seconds before it is Ready."""
    c = {"name": "greet", "image": "kubesim/greet", "ports": [{"containerPort": port}]}
    if ready_delay:
        c["env"] = [{"name": "KUBESIM_LISTEN_DELAY", "value": str(ready_delay)}]
    if REAL_KUBECONFIG:
        c.update({"image": ECHO_IMAGE,
                  "args": ["-d", "TCP-LISTEN:%d,fork,reuseaddr" % port,
                           "SYSTEM:echo $HOSTNAME; exec cat"],
                  "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1,
                                     "initialDelaySeconds": ready_delay}})
        c.pop("env", None)
    return c


def greet_pod(name, namespace, labels, port=8080, ready_delay=0):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": dict(labels, **TEST_LABEL)},
            "spec": {"containers": [greet_container(port, ready_delay)],
                     "terminationGracePeriodSeconds": 1}}


def deployment(name, namespace, labels, replicas=1, ready_delay=0):
    """A Deployment of greet pods (see greet_container)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(TEST_LABEL)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels, **TEST_LABEL)},
                                  "spec": {"containers": [greet_container(8080, ready_delay)],
                                           "terminationGracePeriodSeconds": 1}}}}


def service(name, namespace, selector, ports, cluster_ip=None):
    """ports: [(port, targetPort), ...]; selector None = a service without one."""
    spec = {"ports": [{"name": "p%d" % p, "port": p, "targetPort": t} for p, t in ports]}
    if selector is not None:
        spec["selector"] = dict(selector)
    if cluster_ip and not REAL_KUBECONFIG:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(TEST_LABEL)},
            "spec": spec}


class RealCluster(RuntimeSim):
    """The same interface as RuntimeSim over a real cluster's kubeconfig
    (its current context).  Cleans up what the tests created."""

    is_sim = False

    def __init__(self, base, kubeconfig):
        super().__init__(base)
        self.kubeconfig = os.path.join(self.base, "kubeconfig")
        shutil.copyfile(kubeconfig, self.kubeconfig)
        os.chmod(self.kubeconfig, 0o600)

    def start(self, timeout=30, env=None):
        self.env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig,
                        KUBECACHEDIR=os.path.join(self.home, "cache"))
        self.context = self.kubectl_ok("config", "current-context").strip()
        r = self.kubectl("get", "namespace", "other", "-o", "name")
        if r.returncode == 0:
            pytest.skip("namespace 'other' exists in context %s: the tests create and "
                        "delete it; use a throwaway cluster" % self.context)
        return self

    def log(self):
        return "(real cluster, context %s)" % getattr(self, "context", "?")

    def wait_pods_ready(self, namespace, *names, timeout=180):
        super().wait_pods_ready(namespace, *names, timeout=timeout)

    def stop(self):
        if self.env is None:
            return
        self.kubectl("delete", "namespace", "other", "--ignore-not-found", "--wait=false")
        self.kubectl("delete", "deployments,pods,services", "-n", "default", "-l",
                     "devbridge-test=1", "--ignore-not-found", "--wait=false", timeout=120)


@pytest.fixture(scope="module")
def rsim(tmp_path_factory):
    """kubesim started with --runtime, one per test module (one runtime sim
    at a time per host).  The module populates it itself."""
    if REAL_KUBECONFIG:
        if not os.path.exists(KUBECTL):
            pytest.skip("needs %s" % KUBECTL)
        s = RealCluster(tmp_path_factory.mktemp("cluster"), REAL_KUBECONFIG)
        try:
            s.start()
            yield s
        finally:
            s.stop()
        return
    reason = runtime_skip_reason()
    if reason:
        pytest.skip(reason)
    s = RuntimeSim(tmp_path_factory.mktemp("rsim"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


class K8sSandbox:
    """One test's devbridge sandbox against a RuntimeSim: own --state-dir,
    HOME, KUBECACHEDIR and a private copy of the sim's kubeconfig (so every
    kubectl started on this test's behalf names a path unique to the test)."""

    def __init__(self, tmp_path, rsim, binary=None):
        self.tmp = str(tmp_path)
        self.sim = rsim
        self.bin = binary or devbridge_bin()
        self.state_dir = os.path.join(self.tmp, "state")
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home, exist_ok=True)
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        shutil.copyfile(rsim.kubeconfig, self.kubeconfig)
        os.chmod(self.kubeconfig, 0o600)
        self.mark = "DBTEST_MARK=%s" % self.tmp
        # every devbridge of the test (CLI and detached supervisors, which
        # inherit the environment) writes sanitizer reports here
        self.san_dir = os.path.join(self.tmp, "sanitizer")
        os.makedirs(self.san_dir, exist_ok=True)
        self._n = 0

    def env(self, extra=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DEVBRIDGE_", "BRIDGE_", "DCBRIDGE_", "XDG_", "KUBE"))}
        env.update({"HOME": self.home, "KUBECONFIG": self.kubeconfig,
                    "KUBECACHEDIR": os.path.join(self.tmp, "kcache"), "DBTEST_MARK": self.tmp,
                    "NO_COLOR": "1", "LC_ALL": "C.UTF-8"})
        for var, name in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan")):
            opts = [o for o in env.get(var, "").split(":") if o and not o.startswith("log_path=")]
            env[var] = ":".join(opts + ["log_path=" + os.path.join(self.san_dir, name)])
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def run(self, *args, state_dir=None, env=None, stdin_data=None, timeout=60):
        """`devbridge --state-dir D ARGS`; output through files so that a
        detached supervisor holding an inherited fd cannot make us wait."""
        argv = [self.bin, "--state-dir", state_dir or self.state_dir] + [str(a) for a in args]
        self._n += 1
        outp = os.path.join(self.tmp, "out.%d" % self._n)
        errp = os.path.join(self.tmp, "err.%d" % self._n)
        t0 = time.monotonic()
        with open(outp, "wb") as out, open(errp, "wb") as err:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_data is not None
                                 else subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=self.env(env), cwd=self.tmp)
            try:
                if stdin_data is not None:
                    p.communicate(stdin_data.encode(), timeout=timeout)
                else:
                    p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError("%s did not exit within %ss" % (" ".join(argv), timeout))
        elapsed = time.monotonic() - t0
        with open(outp, errors="replace") as o, open(errp, errors="replace") as e:
            res = Result(argv, p.returncode, o.read(), e.read(), elapsed)
        assert not sanitizer_report(res.stderr), "sanitizer report from %r" % (res,)
        mine = [r for r in self.sanitizer_reports() if ".%d:" % p.pid in r]
        assert not mine, "sanitizer report from %r:\n%s" % (res, "\n".join(mine))
        return res

    # ---- views -----------------------------------------------------------

    def status(self):
        r = self.run("--json", "status", timeout=30)
        assert r.returncode == 0, r
        return r.json()

    def k8s_rows(self):
        return {b["name"]: b for b in self.status().get("bridges", []) if b.get("kind") == "k8s"}

    def row(self, name):
        rows = self.k8s_rows()
        assert name in rows, "no k8s bridge %s in status: %r" % (name, rows)
        return rows[name]

    def events(self, name):
        r = self.run("--json", "logs", name, "-n", "1000", timeout=30)
        assert r.returncode == 0, r
        return [e.get("event") for e in r.json().get("events", [])]

    def path(self, name):
        return os.path.join(self.state_dir, name)

    def session(self):
        with open(self.path("session.json")) as f:
            return json.load(f)

    def bridge_env(self):
        """bridge.env parsed: {NAME: value} (comments skipped)."""
        out = {}
        with open(self.path("bridge.env")) as f:
            for line in f.read().splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                k, _, v = line.partition("=")
                out[k] = v
        return out

    # ---- processes ---------------------------------------------------------

    def our_processes(self):
        """Live processes of this test: a kubectl or devbridge whose command
        line names this test's kubeconfig / temp dir, or that carries the
        test's environment marker."""
        me = os.getpid()
        out = []
        for pid in all_pids():
            if pid == me or not proc_alive(pid):
                continue
            cmd = proc_cmdline(pid)
            if any((self.tmp + os.sep) in a for a in cmd) or self.mark.encode() in proc_environ(pid):
                out.append(pid)
        return out

    def kubectl_processes(self):
        """kubectl processes whose command line (or environment) names this
        test's kubeconfig."""
        out = []
        for pid in all_pids():
            if not proc_alive(pid):
                continue
            cmd = proc_cmdline(pid)
            if not cmd or os.path.basename(cmd[0]) not in ("kubectl",) and \
                    not os.path.basename(cmd[0]).startswith("kubectl"):
                continue
            if any(self.kubeconfig in a for a in cmd) or \
                    ("KUBECONFIG=" + self.kubeconfig).encode() in proc_environ(pid):
                out.append(pid)
        return out

    def describe(self, pids):
        return ["%d %s" % (p, " ".join(proc_cmdline(p))[:300]) for p in pids]

    def sanitizer_reports(self):
        """Reports in the sanitizer log dir (log_path) and, in case a
        supervisor's stderr file has one, in the state dir."""
        out = []
        files = [os.path.join(self.san_dir, fn) for fn in sorted(os.listdir(self.san_dir))]
        if os.path.isdir(self.state_dir):
            files += [os.path.join(self.state_dir, fn) for fn in sorted(os.listdir(self.state_dir))
                      if not fn.endswith((".json", ".env", ".log", ".pid", ".state", ".lock"))]
        for path in files:
            fn = os.path.relpath(path, self.tmp)
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if path.startswith(self.san_dir + os.sep) and text.strip():
                out.append("%s: %s" % (fn, text[:3000]))
                continue
            report = sanitizer_report(text)
            if report:
                out.append("%s: %s" % (fn, report))
        return out

    def teardown(self):
        """`disconnect -y`, then: nothing of ours may be left.  Leftovers are
        ended by pid and reported."""
        problems = []
        # supervisors' stderr (STATE_DIR/NAME.out) goes away with disconnect
        reports = self.sanitizer_reports()
        try:
            if os.path.isdir(self.state_dir):
                r = self.run("disconnect", "-y", timeout=30)
                if r.returncode != 0:
                    problems.append("teardown disconnect -y: %r" % (r,))
        except AssertionError as exc:
            problems.append(str(exc))

        left = []

        def gone():
            left[:] = sorted(set(self.kubectl_processes()) | set(self.our_processes()))
            return not left
        try:
            wait_for(gone, 10, "no kubectl/devbridge of the test left")
        except AssertionError:
            problems.append("left running after disconnect -y:\n" + "\n".join(self.describe(left)))
            for p in left:
                kill_pid(p, signal.SIGKILL)
        for rep in self.sanitizer_reports():
            if rep not in reports:
                reports.append(rep)
        problems.extend("sanitizer: " + rep for rep in reports)
        return problems


@pytest.fixture
def kb(tmp_path, rsim):
    """devbridge sandbox for one test against the module's runtime sim."""
    box = K8sSandbox(tmp_path, rsim)
    yield box
    problems = box.teardown()
    assert not problems, "\n".join(problems)
