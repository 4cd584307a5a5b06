"""`devbridge connect / env / shell / disconnect` against kubesim --runtime:
the real kubectl port-forwards to pods that run as real processes in network
namespaces (tests/kubesim).  Everything is asserted through what a user sees:
exit codes, stdout/--json, status, logs, bridge.env, session.json, and bytes
that go through the local port and come back.

One runtime sim for the module (one per host); each test has its own
--state-dir, HOME, KUBECACHEDIR and a private copy of the kubeconfig, and its
finalizer runs `disconnect -y` and then requires that no kubectl naming that
kubeconfig (and no devbridge of the test) is left.
"""

import os
import random
import re
import shlex
import signal
import socket
import stat
import subprocess
import time

import pytest

from helpers import MiB, PortBlocker, echo_roundtrip, proc_alive, proc_cmdline, \
    wait_for
from k8s_helpers import deployment, echo_pod, greet_pod, kb, rsim, service  # noqa: F401

OTHER = "other"


@pytest.fixture(scope="module", autouse=True)
def cluster(rsim):  # noqa: F811
    """The module's runtime sim, populated:

    default: pod echo (app=echo, :8080); svc echo 80->8080; svc refuser
             81->9999 (nothing listens there); svc noselector (no selector);
             pod phoenix-1 (app=phoenix) behind svc phoenix 80->8080 (test 3
             replaces the pod).
    other:   pod echo-other (app=echo); svc echo and svc echo2, 80->8080.

    ClusterIPs are fixed in 10.96.213.0/24 so that they do not take the
    first addresses another sim on the host would allocate."""
    s = rsim
    s.kubectl_ok("create", "namespace", OTHER)
    s.apply(
        echo_pod("echo", "default", {"app": "echo"}),
        echo_pod("phoenix-1", "default", {"app": "phoenix"}),
        echo_pod("echo-other", OTHER, {"app": "echo"}),
        service("echo", "default", {"app": "echo"}, [(80, 8080)], "10.96.213.10"),
        service("refuser", "default", {"app": "echo"}, [(81, 9999)], "10.96.213.11"),
        service("noselector", "default", None, [(80, 8080)], "10.96.213.12"),
        service("phoenix", "default", {"app": "phoenix"}, [(80, 8080)], "10.96.213.13"),
        service("echo", OTHER, {"app": "echo"}, [(80, 8080)], "10.96.213.20"),
        service("echo2", OTHER, {"app": "echo"}, [(80, 8080)], "10.96.213.21"),
    )
    # user dev may read namespaces, nothing else: reading the service is what
    # RBAC forbids (kubesim's user; not made on a real cluster)
    if s.is_sim:
        s.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": "ns-reader"},
                 "rules": [{"apiGroups": [""], "resources": ["namespaces"],
                            "verbs": ["get", "list"]}]},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": {"name": "dev-ns-reader"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": "ns-reader"},
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                               "name": "dev"}]})
    s.wait_pods_ready("default", "echo", "phoenix-1")
    s.wait_pods_ready(OTHER, "echo-other")
    return s


# --------------------------------------------------------------------------
# helpers


def local_port():
    """A free 127.0.0.1 port below the kernel's ephemeral range, with the two
    above it free too (room for a shift).  Below the ephemeral range, a
    connect() to it while nothing listens can never become a TCP
    self-connection (which would "echo" by itself), and no ephemeral
    socket takes it meanwhile."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    top = max(lo - 10, 12000)
    for _ in range(500):
        p = random.randrange(10000, top)
        if all(bindable(p + i) for i in range(3)):
            return p
    raise RuntimeError("no free port below %d" % lo)


def roundtrip_ok(port, nbytes=MiB, timeout=30):
    sent, got, n = echo_roundtrip(port, nbytes, timeout=timeout)
    assert (n, got) == (nbytes, sent), "echo through 127.0.0.1:%d: %d of %d bytes, sha256 %s" % (
        port, n, nbytes, "match" if got == sent else "differs")
    return True


def roundtrip_works(port, nbytes=64 * 1024):
    try:
        sent, got, n = echo_roundtrip(port, nbytes, timeout=5)
    except (OSError, AssertionError):
        return False
    return n == nbytes and got == sent


def env_vars(prefix, port):
    return {prefix + "_URL": "http://127.0.0.1:%d" % port, prefix + "_HOST": "127.0.0.1",
            prefix + "_PORT": str(port)}


def bridge_vars(d):
    return {k: v for k, v in d.items() if k.startswith("BRIDGE_")}


def assert_no_session(kb, r):
    """A failed pre-check started nothing."""
    assert not os.path.exists(kb.path("session.json")), r
    assert not os.path.exists(kb.path("bridge.env")), r
    assert kb.kubectl_processes() == [], (r, kb.describe(kb.kubectl_processes()))


def bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def has_pair(argv, a, b):
    return any(argv[i] == a and argv[i + 1] == b for i in range(len(argv) - 1))


# The pod behind each service of the module's cluster, and its port (the
# service's targetPort): connect forwards to a Ready pod, not to svc/.
PODS = {("default", "echo"): ("echo", 8080), ("other", "echo2"): ("echo-other", 8080),
        ("other", "echo"): ("echo-other", 8080)}


def assert_kubectl_argv(argv, kubeconfig, ns, svc, local, remote, context=None):
    assert os.path.basename(argv[0]).startswith("kubectl"), argv
    if kubeconfig:
        assert has_pair(argv, "--kubeconfig", kubeconfig), argv
    if context:
        assert has_pair(argv, "--context", context), argv
    assert has_pair(argv, "--namespace", ns), argv
    i = argv.index("port-forward")
    assert has_pair(argv[i:], "--address", "127.0.0.1"), argv
    pod, target = PODS[(ns, svc)]
    assert "pod/%s" % pod in argv[i:], (svc, remote, argv)
    assert "%d:%d" % (local, target) in argv[i:], argv


def check_row(row, name, svc, ns, remote, local, requested):
    assert row["name"] == name
    assert row["kind"] == "k8s", row
    assert row["state"] == "connected", row
    assert row["service"] == svc and row["namespace"] == ns, row
    assert (row["remote_port"], row["local_port"], row["requested_port"]) == (
        remote, local, requested), row
    assert row["local"] == "127.0.0.1:%d" % local, row
    assert row["remote"] == "%s/svc/%s:%d" % (ns, svc, remote), row
    kp = row.get("kubectl_pid")
    assert isinstance(kp, int) and proc_alive(kp), row
    assert (row["pod"], row["target_port"]) == PODS[(ns, svc)], row
    assert "ssh_pid" not in row and "direction" not in row, row
    assert_kubectl_argv(proc_cmdline(kp), None, ns, svc, local, remote)


# --------------------------------------------------------------------------
# 1. two services, one in another namespace (config file), data both ways


def test_connect_two_services_from_config_data_both_ways(kb):
    l1, l2 = local_port(), local_port()
    cfg = os.path.join(kb.tmp, "devbridge.yaml")
    with open(cfg, "w") as f:
        f.write("bridge:\n  kubeconfig: %s\n  namespace: default\n  targets:\n"
                "    - service: echo\n      port: 80\n      local_port: %d\n"
                "    - service: echo2\n      namespace: other\n      port: 80\n"
                "      local_port: %d\n" % (kb.kubeconfig, l1, l2))
    # KUBECONFIG in the environment must not win over bridge.kubeconfig
    r = kb.run("--config", cfg, "--json", "connect",
               env={"KUBECONFIG": os.path.join(kb.tmp, "not-this-one")})
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["kubeconfig"] == kb.kubeconfig, doc
    assert doc["session_file"] == kb.path("session.json"), doc
    assert doc["env_file"] == kb.path("bridge.env"), doc
    assert "error" not in doc, doc
    got = {b["name"]: b for b in doc["bridges"]}
    assert set(got) == {"echo.default.80", "echo2.other.80"}, doc
    for name, ns, svc, port, prefix in (("echo.default.80", "default", "echo", l1, "BRIDGE_ECHO"),
                                        ("echo2.other.80", "other", "echo2", l2, "BRIDGE_ECHO2")):
        b = got[name]
        assert b["result"] == "connected" and b["kind"] == "k8s", b
        assert (b["service"], b["namespace"], b["remote_port"], b["local_port"],
                b["requested_port"]) == (svc, ns, 80, port, port), b
        assert b["local"] == "127.0.0.1:%d" % port and b["remote"] == "%s/svc/%s:80" % (ns, svc), b
        assert b["env_prefix"] == prefix, b

    # bridge.env: the ports to use, mode 0600
    st = os.stat(kb.path("bridge.env"))
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    text = open(kb.path("bridge.env")).read()
    assert text.startswith("# devbridge"), text
    assert "# default/echo (remote :80 \u2192 local :%d)" % l1 in text, text
    assert "# other/echo2 (remote :80 \u2192 local :%d)" % l2 in text, text
    env = kb.bridge_env()
    assert env == dict(env_vars("BRIDGE_ECHO", l1), **env_vars("BRIDGE_ECHO2", l2)), env

    # 1 MiB each way through each bridge, via the ports bridge.env names
    roundtrip_ok(int(env["BRIDGE_ECHO_PORT"]))
    roundtrip_ok(int(env["BRIDGE_ECHO2_PORT"]))

    rows = kb.k8s_rows()
    assert set(rows) == {"echo.default.80", "echo2.other.80"}, rows
    check_row(rows["echo.default.80"], "echo.default.80", "echo", "default", 80, l1, l1)
    check_row(rows["echo2.other.80"], "echo2.other.80", "echo2", "other", 80, l2, l2)
    for row in rows.values():
        assert has_pair(proc_cmdline(row["kubectl_pid"]), "--kubeconfig", kb.kubeconfig), row
    # besides the port-forwards, one endpoints watch per bridge; every
    # kubectl names the kubeconfig and the context explicitly
    forwards = {r["kubectl_pid"] for r in rows.values()}
    others = [p for p in kb.kubectl_processes() if p not in forwards]
    assert forwards <= set(kb.kubectl_processes()), kb.describe(kb.kubectl_processes())
    watched = sorted((argv[argv.index("--namespace") + 1], argv[argv.index("endpoints") + 1])
                     for argv in map(proc_cmdline, others) if "--watch" in argv)
    assert watched == [("default", "echo"), ("other", "echo2")] and len(others) == 2, \
        kb.describe(others)
    for pid in kb.kubectl_processes():
        argv = proc_cmdline(pid)
        assert has_pair(argv, "--kubeconfig", kb.kubeconfig), argv
        assert has_pair(argv, "--context", kb.sim.context), argv

    sess = kb.session()
    assert sess["kubeconfig"] == kb.kubeconfig, sess
    assert "context" in sess and sess["context"] in (None, "", "kubesim"), sess
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", sess["started_at"]), sess
    assert sess["intercepts"] == [], sess
    entries = {e["name"]: e for e in sess["entries"]}
    assert set(entries) == set(rows), sess
    for name, e in entries.items():
        row = rows[name]
        for k in ("service", "namespace", "remote_port", "local_port", "requested_port"):
            assert e[k] == row[k], (k, e, row)
        assert e["origin"] == "standalone", e
        assert e["state"] == "connected", e
        assert isinstance(e["pid"], int) and proc_alive(e["pid"]), e
        assert row.get("pid") in (None, e["pid"]), (e, row)
        assert e["env_prefix"] == ("BRIDGE_ECHO" if name.startswith("echo.") else "BRIDGE_ECHO2")
        assert re.match(r"^\d{4}-\d\d-\d\dT", e["started_at"]), e


# --------------------------------------------------------------------------
# 2. kubectl dies -> the bridge reconnects by itself


def test_kubectl_killed_reconnects(kb):
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % port)
    assert r.returncode == 0, r
    name = "echo.default.80"
    row = kb.row(name)
    k1, sup = row["kubectl_pid"], row.get("pid")
    assert row["state"] == "connected" and proc_alive(k1), row
    assert isinstance(sup, int) and proc_alive(sup), row
    roundtrip_ok(port, 256 * 1024)

    os.kill(k1, signal.SIGKILL)
    seen = set()

    def reconnected():
        b = kb.row(name)
        seen.add(b["state"])
        k = b.get("kubectl_pid")
        if b["state"] == "connected" and isinstance(k, int) and k != k1 and proc_alive(k):
            return b
        return None
    row2 = wait_for(reconnected, 30, "%s connected again with a new kubectl" % name, interval=0.05)
    assert not proc_alive(k1)
    assert row2.get("pid") == sup and proc_alive(sup), (row, row2)
    assert row2["local_port"] == port, row2
    assert kb.bridge_env()["BRIDGE_ECHO_PORT"] == str(port)
    roundtrip_ok(port, MiB)

    ev = kb.events(name)
    first = ev.index("bridge_connected")
    assert "bridge_disconnected" in ev[first:], ev
    disc = first + ev[first:].index("bridge_disconnected")
    assert "bridge_connected" in ev[disc:], ev
    # the reconnecting state was visible, in status or in the audit log
    assert "reconnecting" in seen or "bridge_reconnecting" in ev[disc:], (seen, ev)

    # SIGHUP to the supervisor: reconnect now (a new kubectl, same port)
    k2 = row2["kubectl_pid"]
    os.kill(sup, signal.SIGHUP)
    k1 = k2
    row3 = wait_for(reconnected, 20, "%s reconnected after SIGHUP" % name)
    assert row3["pid"] == sup and row3["local_port"] == port, row3
    wait_for(lambda: not proc_alive(k2), 10, "old kubectl %d gone after SIGHUP" % k2)
    roundtrip_ok(port, 256 * 1024)


# --------------------------------------------------------------------------
# 3. the pod behind the service is replaced -> same local port works again


def test_pod_replaced_traffic_resumes_same_port(kb, cluster):
    """The backing pod is deleted (outage: the service has no pod), then a new
    pod with the service's labels appears: traffic resumes on the same local
    port by itself.  (The new pod is created beforehand with other labels and
    then labelled: kubesim reuses a freed pod IP at once and the host's ARP
    entry for it would stay stale for up to ~45 s; this way the new pod has
    an IP of its own.)"""
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "phoenix:80:%d" % port)
    assert r.returncode == 0, r
    roundtrip_ok(port, 256 * 1024)
    name = "phoenix.default.80"
    k1 = kb.row(name)["kubectl_pid"]

    cluster.apply(echo_pod("phoenix-2", "default", {"app": "phoenix-standby"}))
    cluster.wait_pods_ready("default", "phoenix-2")
    cluster.kubectl_ok("delete", "pod", "phoenix-1", "--timeout=30s")

    # the outage is visible: the bridge is no longer connected, nothing echoes
    def outage():
        roundtrip_works(port, 1024)  # a connection makes kubectl notice, if not yet
        return kb.row(name)["state"] != "connected"
    wait_for(outage, 20, "%s not connected once its pod is gone" % name, interval=0.2)
    assert not roundtrip_works(port)

    cluster.kubectl_ok("label", "pod", "phoenix-2", "app=phoenix", "--overwrite")
    wait_for(lambda: roundtrip_works(port), 40, "echo through 127.0.0.1:%d again" % port,
             interval=0.2)
    roundtrip_ok(port, MiB)
    # traffic can flow a moment before the supervisor's own probe says so
    row = wait_for(lambda: (lambda b: b if b["state"] == "connected" else None)(
        kb.row(name)), 15, "%s connected" % name)
    assert row["local_port"] == port and row["kubectl_pid"] != k1, row
    assert kb.bridge_env()["BRIDGE_PHOENIX_PORT"] == str(port)
    ev = kb.events(name)
    assert ev.count("bridge_connected") >= 2 and "bridge_disconnected" in ev, ev
    assert "bridge_failed" not in ev, ev


# --------------------------------------------------------------------------
# 4. exit codes, each provoked for real


def test_exit_codes(kb, tmp_path):
    port = local_port()
    t = ["-t", "echo:80:%d" % port]

    # 1: kubectl not on PATH
    empty = tmp_path / "emptybin"
    empty.mkdir()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, *t, env={"PATH": str(empty)})
    assert r.returncode == 1 and "kubectl" in r.stderr, r
    assert_no_session(kb, r)

    # 60: kubeconfig missing (flag, and $KUBECONFIG)
    missing = str(tmp_path / "nonexistent" / "kubeconfig")
    r = kb.run("connect", "--kubeconfig", missing, *t)
    assert r.returncode == 60, r
    assert_no_session(kb, r)
    r = kb.run("connect", *t, env={"KUBECONFIG": missing})
    assert r.returncode == 60, r

    # 61: API server not listening / no such context
    closed = local_port()  # nothing listens there
    dead = tmp_path / "dead-kubeconfig"
    # every cluster's server URL, YAML or JSON kubeconfig
    dead.write_text(re.sub(r"(\bserver\"?\s*:\s*\"?)https?://[^\"\s]+",
                           r"\g<1>https://127.0.0.1:%d" % closed, open(kb.kubeconfig).read()))
    r = kb.run("connect", "--kubeconfig", str(dead), *t, timeout=60)
    assert r.returncode == 61, r
    assert_no_session(kb, r)
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "--context", "nosuch", *t)
    assert r.returncode == 61, r
    assert_no_session(kb, r)

    # 62: namespace missing; --json: just the error envelope
    r = kb.run("--json", "connect", "--kubeconfig", kb.kubeconfig, "-n", "nosuchns", *t)
    assert r.returncode == 62, r
    doc = r.json()
    assert list(doc) == ["error"], doc
    assert doc["error"]["code"] == 62 and doc["error"]["name"] == "namespace_not_found", doc
    assert doc["error"]["message"], doc
    assert_no_session(kb, r)

    # 63: no such service; the service has no such port; no selector
    for target in ("nosuchsvc:80", "echo:12345", "noselector:80"):
        r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", target + ":%d" % port)
        assert r.returncode == 63, (target, r)
        assert_no_session(kb, r)

    # 68: user dev may read the namespace but not the service (kubesim's
    # users; a real cluster's are not ours to make)
    if kb.sim.is_sim:
        r = kb.run("--json", "connect", "--kubeconfig", kb.kubeconfig, "--context",
                   "kubesim-dev", *t)
        assert r.returncode == 68, r
        assert r.json()["error"]["name"] == "rbac_insufficient", r
        assert_no_session(kb, r)

    # 64: kubectl forwards, but the pod's port refuses: fails after its retries
    r = kb.run("--json", "connect", "--kubeconfig", kb.kubeconfig, "-t",
               "refuser:81:%d" % port, timeout=40)
    assert r.returncode == 64, r
    assert r.elapsed < 25, r
    doc = r.json()
    assert doc["error"]["code"] == 64 and doc["error"]["name"] == "port_forward_failed", doc
    b = {x["name"]: x for x in doc["bridges"]}["refuser.default.81"]
    assert b["result"] == "failed" and b["code"] == 64, doc
    # given up for good: no kubectl keeps running for it
    wait_for(lambda: not kb.kubectl_processes(), 10, "no kubectl after exit 64")
    assert not roundtrip_works(port)

    # 47: --timeout passes first; the bridge keeps trying in the background
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "--timeout", "2", "--max-attempts", "0",
               "-t", "refuser:81:%d" % port, timeout=30)
    assert r.returncode == 47, r
    assert r.elapsed < 10, r
    row = kb.row("refuser.default.81")
    assert row["state"] in ("starting", "reconnecting"), row
    assert proc_alive(row["pid"]), row
    r = kb.run("--json", "disconnect", "-y")
    assert r.returncode == 0, r
    assert r.json() == {"bridges": [{"name": "refuser.default.81", "result": "stopped"}],
                        "dry_run": False}, r
    wait_for(lambda: not kb.kubectl_processes() and not proc_alive(row["pid"]), 10,
             "bridge and kubectl gone after disconnect")


# --------------------------------------------------------------------------
# 5. a taken local port shifts


def test_taken_local_port_shifts(kb):
    p = local_port()
    blocker = PortBlocker(p, families=("4",))
    try:
        r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % p)
        assert r.returncode == 0, r
        assert "(port %d was in use)" % p in r.stdout, r
        row = kb.row("echo.default.80")
        local = row["local_port"]
        assert local != p and row["requested_port"] == p, row
        assert row["local"] == "127.0.0.1:%d" % local, row
        assert "127.0.0.1:%d connected" % local in r.stdout, r
        env = kb.bridge_env()
        assert env == env_vars("BRIDGE_ECHO", local), env
        assert [e["local_port"] for e in kb.session()["entries"]] == [local]
        assert "port_shifted" in kb.events("echo.default.80")
        roundtrip_ok(int(env["BRIDGE_ECHO_PORT"]))
    finally:
        blocker.close()


# --------------------------------------------------------------------------
# 6. disconnect


def test_disconnect(kb):
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % port)
    assert r.returncode == 0, r
    row = kb.row("echo.default.80")
    kpid = row["kubectl_pid"]

    r = kb.run("--json", "disconnect", "--dry-run")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["dry_run"] is True and [b["name"] for b in doc["bridges"]] == ["echo.default.80"], doc
    r = kb.run("disconnect", "--dry-run")
    assert r.returncode == 0 and "echo.default.80" in r.stdout, r
    assert proc_alive(kpid) and os.path.exists(kb.path("session.json"))
    assert kb.row("echo.default.80")["state"] == "connected"

    # not a terminal, no -y: refused
    r = kb.run("disconnect", stdin_data="y\n")
    assert r.returncode == 2 and "refusing without -y" in r.output, r
    r = kb.run("disconnect")
    assert r.returncode == 2, r
    assert proc_alive(kpid) and os.path.exists(kb.path("bridge.env"))
    assert roundtrip_works(port)

    stop = kb.run("disconnect", "-y")
    assert stop.returncode == 0, stop
    wait_for(lambda: not proc_alive(kpid), 10, "kubectl %d gone" % kpid)
    assert kb.kubectl_processes() == [], kb.describe(kb.kubectl_processes())
    assert not os.path.exists(kb.path("session.json"))
    assert not os.path.exists(kb.path("bridge.env"))
    assert os.path.exists(kb.path("echo.default.80.log"))  # audit kept
    assert "bridge_stopped" in kb.events("echo.default.80")
    assert not any(b.get("state") in ("connected", "starting", "reconnecting")
                   for b in kb.k8s_rows().values())
    assert not roundtrip_works(port)
    # nothing left: a second disconnect is fine and stops nothing
    r = kb.run("--json", "disconnect", "-y")
    assert r.returncode == 0 and r.json() == {"bridges": [], "dry_run": False}, r
    # the same wording as `down`: "NAME: stopped"
    assert "echo.default.80: stopped" in stop.stdout.splitlines(), stop


# --------------------------------------------------------------------------
# 7. env formats, namespace collision, shell


def parse_sh(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^export ([A-Z0-9_]+)='([^']*)'$", line)
        assert m, "not an sh export line: %r" % line
        out[m.group(1)] = m.group(2)
    return out


def parse_fish(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^set -gx ([A-Z0-9_]+) '([^']*)'$", line)
        assert m, "not a fish set line: %r" % line
        out[m.group(1)] = m.group(2)
    return out


def parse_dotenv(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert not line.startswith("# devbridge"), text
            continue
        k, sep, v = line.partition("=")
        assert sep and re.match(r"^[A-Z0-9_]+$", k), "not a dotenv line: %r" % line
        out[k] = v
    return out


def test_env_formats_namespace_collision_and_shell(kb, tmp_path):
    # nothing connected yet: empty output, exit 0
    for args, want in ((("env",), ""), (("env", "--format", "json"), {}), (("--json", "env"), {})):
        r = kb.run(*args)
        assert r.returncode == 0, r
        assert (r.json() if want == {} else r.stdout) == want, r
    r = kb.run("shell", "--", "sh", "-c", "env | grep -c ^BRIDGE_ || true")
    assert r.returncode == 0 and r.stdout.strip() == "0", r
    assert "no active Kubernetes bridges" in r.stderr, r

    l1, l2 = local_port(), local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % l1)
    assert r.returncode == 0, r
    assert ("default/echo:80 -> 127.0.0.1:%d connected (bridge echo.default.80, BRIDGE_ECHO_*)"
            % l1) in r.stdout, r
    r = kb.run("--json", "env")
    assert r.returncode == 0 and r.json() == env_vars("BRIDGE_ECHO", l1), r
    k1 = kb.row("echo.default.80")["kubectl_pid"]
    # the same target again: already running, nothing restarted
    r = kb.run("--json", "connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % l1)
    assert r.returncode == 0, r
    assert [(b["name"], b["result"]) for b in r.json()["bridges"]] == [
        ("echo.default.80", "already_running")], r
    assert kb.row("echo.default.80")["kubectl_pid"] == k1

    # the same service name in another namespace: both get the namespace
    r = kb.run("--json", "connect", "--kubeconfig", kb.kubeconfig, "-t", "other/echo:80:%d" % l2)
    assert r.returncode == 0, r
    b = r.json()["bridges"]
    assert [(x["name"], x["result"], x["env_prefix"]) for x in b] == [
        ("echo.other.80", "connected", "BRIDGE_OTHER_ECHO")], b
    want = dict(env_vars("BRIDGE_DEFAULT_ECHO", l1), **env_vars("BRIDGE_OTHER_ECHO", l2))

    r = kb.run("env", "--format", "json")
    assert r.returncode == 0 and r.json() == want, r
    r = kb.run("--json", "env")
    assert r.returncode == 0 and r.json() == want, r
    r = kb.run("env", "--format", "fish")
    assert r.returncode == 0 and parse_fish(r.stdout) == want, r
    r = kb.run("env", "--format", "dotenv")
    assert r.returncode == 0 and parse_dotenv(r.stdout) == want, r
    assert bridge_vars(kb.bridge_env()) == want
    sh = kb.run("env")
    assert sh.returncode == 0 and parse_sh(sh.stdout) == want, sh
    r2 = kb.run("env", "--format", "sh")
    assert r2.stdout == sh.stdout, r2
    assert re.search(r"^# default/echo", sh.stdout, re.M) and re.search(
        r"^# other/echo", sh.stdout, re.M), sh
    # what a user does with it: eval in a shell
    out = subprocess.run(["/bin/sh", "-c", 'eval "$1"; echo "$BRIDGE_DEFAULT_ECHO_PORT '
                          '$BRIDGE_OTHER_ECHO_URL ${BRIDGE_ECHO_PORT-unset}"', "sh", sh.stdout],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "%d http://127.0.0.1:%d unset" % (l1, l2), out

    # both bridges carry data, reached through their variables
    roundtrip_ok(int(want["BRIDGE_DEFAULT_ECHO_PORT"]), 256 * 1024)
    roundtrip_ok(int(want["BRIDGE_OTHER_ECHO_PORT"]), 256 * 1024)

    r = kb.run("shell", "--", "sh", "-c", "echo $BRIDGE_DEFAULT_ECHO_PORT $BRIDGE_OTHER_ECHO_PORT")
    assert r.returncode == 0, r
    assert r.stdout.strip() == "%d %d" % (l1, l2), r
    assert "injected 6 BRIDGE_* variables from 2 bridges" in r.stderr, r
    r = kb.run("shell", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7, r
    # $SHELL when no command is given
    r = kb.run("shell", env={"SHELL": "/bin/sh"}, stdin_data="echo $BRIDGE_OTHER_ECHO_HOST\n")
    assert r.returncode == 0 and r.stdout.strip() == "127.0.0.1", r

    # `down` of one bridge: it leaves bridge.env and session.json at once,
    # and the other keeps its short name again
    r = kb.run("down", "echo.other.80")
    assert r.returncode == 0, r
    assert bridge_vars(kb.bridge_env()) == env_vars("BRIDGE_ECHO", l1)
    assert [e["name"] for e in kb.session()["entries"]] == ["echo.default.80"]
    r = kb.run("--json", "env")
    assert r.returncode == 0 and r.json() == env_vars("BRIDGE_ECHO", l1), r


# --------------------------------------------------------------------------
# 8. --profile selects another namespace's targets; --dry-run starts nothing


def write_profile_config(kb, l1, l2):
    cfg = os.path.join(kb.tmp, "devbridge.yaml")
    with open(cfg, "w") as f:
        f.write("bridge:\n"
                "  kubeconfig: %s\n"
                "  context: %s\n"
                "  namespace: default\n"
                "  targets:\n"
                "    - service: echo\n"
                "      port: 80\n"
                "      local_port: %d\n"
                "\n"
                "profiles:\n"
                "  other-debug:\n"
                "    bridge:\n"
                "      context: %s\n"
                "      namespace: other\n"
                "      targets:\n"
                "        - service: echo2\n"
                "          port: 80\n"
                "          local_port: %d\n" % (kb.kubeconfig, kb.sim.context, l1,
                                                 kb.sim.context, l2))
    return cfg


def test_profile_selects_other_namespace(kb):
    l1, l2 = local_port(), local_port()
    cfg = write_profile_config(kb, l1, l2)
    # without the profile: default/echo (dry run)
    r = kb.run("--config", cfg, "--json", "--dry-run", "connect")
    assert r.returncode == 0, r
    assert [b["name"] for b in r.json()["bridges"]] == ["echo.default.80"], r

    r = kb.run("--config", cfg, "--profile", "other-debug", "--json", "connect")
    assert r.returncode == 0, r
    doc = r.json()
    assert [(b["name"], b["namespace"], b["result"], b["local_port"]) for b in doc["bridges"]] == [
        ("echo2.other.80", "other", "connected", l2)], doc
    assert set(kb.k8s_rows()) == {"echo2.other.80"}
    check_row(kb.row("echo2.other.80"), "echo2.other.80", "echo2", "other", 80, l2, l2)
    env = kb.bridge_env()
    assert env == env_vars("BRIDGE_ECHO2", l2), env
    roundtrip_ok(int(env["BRIDGE_ECHO2_PORT"]))
    assert not roundtrip_works(l1)


def test_connect_dry_run_starts_nothing(kb):
    port = local_port()
    r = kb.run("--json", "connect", "--dry-run", "--kubeconfig", kb.kubeconfig,
               "-t", "other/echo2:80", "-t", "echo:80:%d" % port)
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["dry_run"] is True, doc
    argv = {b["name"]: b["argv"] for b in doc["bridges"]}
    assert set(argv) == {"echo2.other.80", "echo.default.80"}, doc
    assert_kubectl_argv(argv["echo2.other.80"], kb.kubeconfig, "other", "echo2", 80, 80)
    assert_kubectl_argv(argv["echo.default.80"], kb.kubeconfig, "default", "echo", port, 80)

    r = kb.run("connect", "--dry-run", "--kubeconfig", kb.kubeconfig, "-t", "other/echo2:80")
    assert r.returncode == 0, r
    lines = [l for l in r.stdout.splitlines() if "port-forward" in l]
    assert len(lines) == 1, r
    words = shlex.split(lines[0][lines[0].index("kubectl"):])
    assert_kubectl_argv(words, kb.kubeconfig, "other", "echo2", 80, 80)

    # no --kubeconfig, no $KUBECONFIG: ~/.kube/config
    os.makedirs(os.path.join(kb.home, ".kube"))
    with open(kb.kubeconfig) as src, open(os.path.join(kb.home, ".kube", "config"), "w") as dst:
        dst.write(src.read())
    r = kb.run("--json", "connect", "--dry-run", "-t", "echo:80:%d" % port,
               env={"KUBECONFIG": None})
    assert r.returncode == 0, r
    assert [b["name"] for b in r.json()["bridges"]] == ["echo.default.80"], r

    # the pre-checks still run
    r = kb.run("connect", "--dry-run", "--kubeconfig", kb.kubeconfig, "-t", "nosuchsvc:80")
    assert r.returncode == 63, r

    # and nothing was started
    assert kb.kubectl_processes() == []
    assert kb.our_processes() == [], kb.describe(kb.our_processes())
    assert not os.path.exists(kb.path("session.json"))
    assert not os.path.exists(kb.path("bridge.env"))
    assert not kb.k8s_rows()
    assert not roundtrip_works(port)


# --------------------------------------------------------------------------
# 9. --foreground: stays attached; Ctrl+C tears the bridges down


def test_connect_foreground_ctrl_c(kb):
    port = local_port()
    out_path = os.path.join(kb.tmp, "fg.out")
    with open(out_path, "wb") as out:
        p = subprocess.Popen([kb.bin, "--state-dir", kb.state_dir, "connect", "--foreground",
                              "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % port],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=kb.env(), cwd=kb.tmp)
    try:
        wait_for(lambda: "Ctrl+C stops the bridges" in open(out_path).read()
                 or p.poll() is not None, 30, "connect --foreground attached")
        assert p.poll() is None, open(out_path).read()
        roundtrip_ok(port, 256 * 1024)
        assert bridge_vars(kb.bridge_env()) == env_vars("BRIDGE_ECHO", port)
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0, open(out_path).read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "devbridge: stopped" in open(out_path).read()
    # torn down: no kubectl, nothing listening, no variables advertised
    assert not kb.kubectl_processes()
    assert not roundtrip_works(port)
    assert not os.path.exists(kb.path("bridge.env"))
    assert not kb.k8s_rows()


def test_pod_replaced_forward_renewed_before_a_client_notices(kb, cluster):
    """kubectl only notices that its pod went away when a connection fails.
    The supervisor follows the service's endpoints (and probes through the
    forward every --health-interval): once the pod is replaced, the bridge
    gets a new kubectl on the new pod by itself, and the first client
    connection afterwards works."""
    cluster.apply(echo_pod("renew-1", "default", {"app": "renew"}),
                  echo_pod("renew-2", "default", {"app": "renew-standby"}),
                  service("renew", "default", {"app": "renew"}, [(80, 8080)], "10.96.213.14"))
    cluster.wait_pods_ready("default", "renew-1", "renew-2")
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "--health-interval", "1",
               "-t", "renew:80:%d" % port)
    assert r.returncode == 0, r
    name = "renew.default.80"
    row = kb.row(name)
    assert row["health"] == "ok", row
    k1 = row["kubectl_pid"]

    # the service always has a pod: the new one is labelled, then the old goes
    cluster.kubectl_ok("label", "pod", "renew-2", "app=renew", "--overwrite")
    cluster.kubectl_ok("delete", "pod", "renew-1", "--timeout=30s")
    # no client traffic: the supervisor's own probe finds out and renews
    row = wait_for(lambda: (lambda b: b if b["kubectl_pid"] not in (None, k1) and
                            b["state"] == "connected" else None)(kb.row(name)),
                   30, "%s renewed on the new pod" % name, interval=0.2)
    assert row["local_port"] == port and row["health"] == "ok", row
    assert row["pod"] == "renew-2", row
    ev = kb.events(name)
    assert "bridge_disconnected" in ev, ev
    assert ev.count("bridge_connected") >= 2 and "bridge_failed" not in ev, ev
    # the first client connection after the replacement works
    roundtrip_ok(port, 256 * 1024)


# --------------------------------------------------------------------------
# 10. bad targets: usage errors (exit 2), nothing run


@pytest.mark.parametrize("spec", [":80", "echo", "echo:", "echo:80:", "echo::80", "echo:80:90:1",
                                  "Echo:80", "echo:0", "echo:65536", "echo:8x", "a/b/c:80",
                                  "-bad:80", "ns-/echo:80", "x" * 70 + ":80"])
def test_bad_target_is_a_usage_error(kb, spec):
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", spec)
    assert r.returncode == 2, r
    assert spec[:20] in r.stderr and "kubectl" not in r.stderr, r
    assert not kb.k8s_rows() and not os.path.exists(kb.path("session.json")), r



# --------------------------------------------------------------------------
# 11. the cluster is resolved once: another current context changes nothing


def greeting(port, timeout=5):
    """The pod that answers a new connection through 127.0.0.1:port (greet
    pods send their name first), or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            c.settimeout(timeout)
            data = b""
            while b"\n" not in data:
                d = c.recv(256)
                if not d:
                    return None
                data += d
            return data.split(b"\n", 1)[0].decode()
    except OSError:
        return None


def kubeconfig_with_elsewhere(kb):
    """kb.kubeconfig plus a context `elsewhere` (its own cluster: a port
    nobody listens on) with the same user: `kubectl config use-context
    elsewhere` is what a user does in another terminal."""
    user = kb.sim.kubectl_ok("--kubeconfig", kb.kubeconfig, "config", "view", "--minify", "-o",
                             "jsonpath={.contexts[0].context.user}").strip()
    dead = local_port()
    for args in (("set-cluster", "elsewhere", "--server=https://127.0.0.1:%d" % dead,
                  "--insecure-skip-tls-verify=true"),
                 ("set-context", "elsewhere", "--cluster=elsewhere", "--user=" + user)):
        kb.sim.kubectl_ok("--kubeconfig", kb.kubeconfig, "config", *args)


def test_context_resolved_once_survives_use_context(kb):
    """No --context: connect resolves the current one, records it and gives
    it to every kubectl.  After `kubectl config use-context elsewhere` a
    reconnect still reaches the first cluster, and a second connect (which
    would use `elsewhere`) is refused before it asks any cluster."""
    kubeconfig_with_elsewhere(kb)
    port = local_port()
    r = kb.run("--json", "connect", "-t", "echo:80:%d" % port)  # $KUBECONFIG only
    assert r.returncode == 0, r
    assert (r.json()["context"], r.json()["kubeconfig"]) == (kb.sim.context, kb.kubeconfig), r
    sess = kb.session()
    assert (sess["context"], sess["kubeconfig"]) == (kb.sim.context, kb.kubeconfig), sess
    name = "echo.default.80"
    row = kb.row(name)
    assert (row["context"], row["kubeconfig"]) == (kb.sim.context, kb.kubeconfig), row
    k1 = row["kubectl_pid"]

    kb.sim.kubectl_ok("--kubeconfig", kb.kubeconfig, "config", "use-context", "elsewhere")
    os.kill(k1, signal.SIGKILL)
    row = wait_for(lambda: (lambda b: b if b["state"] == "connected" and
                            b.get("kubectl_pid") not in (None, k1) else None)(kb.row(name)),
                   30, "%s reconnected" % name)
    assert has_pair(proc_cmdline(row["kubectl_pid"]), "--context", kb.sim.context), row
    roundtrip_ok(port, 256 * 1024)
    for pid in kb.kubectl_processes():
        assert has_pair(proc_cmdline(pid), "--context", kb.sim.context), kb.describe([pid])

    t0 = time.monotonic()
    r = kb.run("connect", "-t", "other/echo:80:%d" % local_port())
    assert r.returncode == 1, r
    assert "a session with context %s" % kb.sim.context in r.stderr, r
    assert "elsewhere" in r.stderr and "disconnect" in r.stderr, r
    assert time.monotonic() - t0 < 10, r  # refused before the pre-checks
    assert set(kb.k8s_rows()) == {name}
    # --context '' is no way to ask for the current one
    r = kb.run("connect", "--context", "", "-t", "echo:80")
    assert r.returncode == 2 and "--context" in r.stderr, r


# --------------------------------------------------------------------------
# 12. a supervisor killed with -9


def test_supervisor_killed_is_stopped_supervisor_gone(kb):
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % port)
    assert r.returncode == 0, r
    name = "echo.default.80"
    row = kb.row(name)
    sup = row["pid"]
    assert "BRIDGE_ECHO_PORT" in kb.bridge_env()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not proc_alive(sup), 10, "supervisor gone")
    # its kubectl goes with it (no orphan), and status still shows it
    wait_for(lambda: not kb.kubectl_processes(), 10, "kubectl gone with its supervisor")
    row = kb.row(name)
    assert (row["state"], row["reason"], row["pid"]) == ("stopped", "supervisor_gone", None), row
    assert "kubectl_pid" not in row and row.get("pod") is None, row
    r = kb.run("--no-color", "status")
    assert r.returncode == 0, r
    line = [l for l in r.stdout.splitlines() if l.startswith(name)]
    assert line and "stopped" in line[0] and "supervisor_gone" in line[0], r
    # no variable names a port nobody serves any more
    env = kb.bridge_env() if os.path.exists(kb.path("bridge.env")) else {}
    assert not bridge_vars(env), env
    r = kb.run("--json", "env")
    assert r.returncode == 0 and r.json() == {}, r
    assert not roundtrip_works(port)
    # disconnect clears it
    r = kb.run("--json", "disconnect", "-y")
    assert r.returncode == 0 and r.json()["bridges"] == [{"name": name, "result": "cleared"}], r
    assert not kb.k8s_rows()


# --------------------------------------------------------------------------
# 13. status and check accept Kubernetes bridges, by name or by service


def test_status_and_check_by_bridge_or_service_name(kb, tmp_path):
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % port)
    assert r.returncode == 0, r
    name = "echo.default.80"
    for arg in (name, "echo", "default/echo"):
        r = kb.run("--json", "status", arg)
        assert r.returncode == 0, (arg, r)
        assert [b["name"] for b in r.json()["bridges"]] == [name], (arg, r)
        assert r.json()["bridges"][0]["state"] == "connected", r
    r = kb.run("--json", "check", name)
    assert r.returncode == 0, r
    assert [(c["name"], c["health"]) for c in r.json()["checks"]] == [(name, "ok")], r
    r = kb.run("check", "echo")
    assert r.returncode == 0 and name in r.stdout and "ok" in r.stdout, r
    # unknown names are still 48, with or without a config
    r = kb.run("status", "nosuch")
    assert r.returncode == 48, r
    r = kb.run("check", "nosuch")
    assert r.returncode in (3, 48), r


# --------------------------------------------------------------------------
# 14. a selector that matches nothing; pods that are not Ready yet


def test_selector_matching_no_pod_is_63(kb, cluster):
    cluster.apply(service("nopods", "default", {"app": "nothing-here"}, [(80, 8080)],
                          "10.96.213.30"))
    t0 = time.monotonic()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "nopods:80")
    assert r.returncode == 63, r
    assert "app=nothing-here" in r.stderr and "matches no running pod" in r.stderr, r
    assert time.monotonic() - t0 < 15, r
    assert_no_session(kb, r)


def test_not_ready_pod_waited_for_and_not_exported(kb, cluster):
    """Pods exist but are not Ready: connect waits with the reason (and
    --timeout says what it waits for); env exports nothing until the
    bridge connects, which it does by itself once the pod is Ready."""
    cluster.apply(greet_pod("slow-1", "default", {"app": "slow"}, ready_delay=8),
                  service("slow", "default", {"app": "slow"}, [(80, 8080)], "10.96.213.31"))
    cluster.kubectl_ok("wait", "-n", "default", "--for=jsonpath={.status.phase}=Running",
                       "pod/slow-1", "--timeout=60s")
    port = local_port()
    r = kb.run("--json", "connect", "--kubeconfig", kb.kubeconfig, "--timeout", "2", "-t",
               "slow:80:%d" % port, timeout=30)
    assert r.returncode == 47, r
    b = r.json()["bridges"][0]
    assert b["result"] == "timeout" and "no_ready_pod" in b["message"], b
    assert "not Ready" in b["message"], b
    row = kb.row("slow.default.80")
    assert row["state"] == "starting" and row["reason"] == "no_ready_pod", row
    assert row["detail"] and row.get("kubectl_pid") is None, row
    r = kb.run("--json", "env")
    assert r.returncode == 0 and r.json() == {}, r
    assert not bridge_vars(kb.bridge_env() if os.path.exists(kb.path("bridge.env")) else {})
    cluster.wait_pods_ready("default", "slow-1")
    wait_for(lambda: greeting(port) == "slow-1", 10, "the bridge connected once slow-1 is Ready")
    assert kb.row("slow.default.80")["state"] == "connected"
    assert kb.bridge_env()["BRIDGE_SLOW_PORT"] == str(port)
    r = kb.run("--json", "env")
    assert r.json() == env_vars("BRIDGE_SLOW", port), r


# --------------------------------------------------------------------------
# 15. the Service's selector changes (blue/green): the bridge follows


def test_selector_switch_moves_the_bridge_to_the_new_pods(kb, cluster):
    cluster.apply(greet_pod("blue-1", "default", {"app": "bg", "color": "blue"}),
                  greet_pod("green-1", "default", {"app": "bg", "color": "green"}),
                  service("bg", "default", {"app": "bg", "color": "blue"}, [(80, 8080)],
                          "10.96.213.32"))
    cluster.wait_pods_ready("default", "blue-1", "green-1")
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "bg:80:%d" % port)
    assert r.returncode == 0, r
    assert greeting(port) == "blue-1"
    name = "bg.default.80"
    assert kb.row(name)["pod"] == "blue-1"
    t0 = time.monotonic()
    cluster.kubectl_ok("patch", "service", "bg", "-n", "default", "--type=merge", "-p",
                       '{"spec":{"selector":{"app":"bg","color":"green"}}}')
    wait_for(lambda: greeting(port, timeout=2) == "green-1", 15, "new connections reach green-1",
             interval=0.1)
    took = time.monotonic() - t0
    print("selector switch: new connections reach the new pod after %.2f s" % took)
    assert took < 8, took
    row = wait_for(lambda: (lambda b: b if b["state"] == "connected" else None)(kb.row(name)),
                   10, "%s connected" % name)
    assert row["pod"] == "green-1" and row["local_port"] == port, row
    r = kb.run("--json", "logs", name, "-n", "100")
    details = [e.get("detail", "") for e in r.json()["events"]]
    assert any("blue-1 left the endpoints" in d for d in details), details


# --------------------------------------------------------------------------
# 16. scaled to zero and back


def test_scaled_to_zero_and_back(kb, cluster):
    """Scaled to zero, the bridge leaves `connected` at once (no pod: it
    waits, reason no_ready_pod); scaled back, it does not take the new pod
    while it is Running but not Ready, and reconnects as soon as it is."""
    cluster.apply(deployment("scaler", "default", {"app": "scaler"}, replicas=1, ready_delay=4),
                  service("scaler", "default", {"app": "scaler"}, [(80, 8080)], "10.96.213.33"))
    cluster.kubectl_ok("wait", "-n", "default", "--for=condition=Available", "deployment/scaler",
                       "--timeout=60s")
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "scaler:80:%d" % port)
    assert r.returncode == 0, r
    name = "scaler.default.80"
    first = kb.row(name)["pod"]
    assert first.startswith("scaler-") and greeting(port) == first

    t0 = time.monotonic()
    cluster.kubectl_ok("scale", "-n", "default", "deployment/scaler", "--replicas=0")
    row = wait_for(lambda: (lambda b: b if b["state"] != "connected" else None)(kb.row(name)),
                   10, "%s not connected once scaled to zero" % name, interval=0.1)
    print("scaled to zero: not connected after %.2f s" % (time.monotonic() - t0))
    assert time.monotonic() - t0 < 5
    row = wait_for(lambda: (lambda b: b if b["reason"] == "no_ready_pod" else None)(kb.row(name)),
                   10, "%s waiting for a pod" % name)
    assert row["state"] == "reconnecting" and row.get("kubectl_pid") is None, row
    assert "no Ready pod" in row["detail"] or "matches no running pod" in row["detail"], row

    cluster.kubectl_ok("scale", "-n", "default", "deployment/scaler", "--replicas=1")

    def new_pod_running():
        out = cluster.kubectl_ok("get", "pods", "-n", "default", "-l", "app=scaler", "-o",
                                 "jsonpath={range .items[*]}{.metadata.name} {.status.phase}"
                                 "{\"\\n\"}{end}")
        pods = [l.split() for l in out.splitlines() if l.strip()]
        return [p for p, ph in pods if p != first and ph == "Running"]
    pod = wait_for(new_pod_running, 30, "the new pod Running")[0]
    # Running, not Ready: the bridge keeps waiting (kubectl would take it)
    st = kb.row(name)
    assert st["state"] != "connected" and st.get("pod") is None, st
    cluster.kubectl_ok("wait", "-n", "default", "--for=condition=Ready", "pod/" + pod,
                       "--timeout=60s")
    t1 = time.monotonic()
    wait_for(lambda: greeting(port, timeout=2) == pod, 15, "the bridge on %s" % pod, interval=0.1)
    took = time.monotonic() - t1
    print("scaled back: traffic %.2f s after the pod is Ready" % took)
    assert took < 5, took
    row = wait_for(lambda: (lambda b: b if b["state"] == "connected" else None)(kb.row(name)),
                   10, "%s connected" % name)
    assert row["pod"] == pod and row["local_port"] == port, row
    assert "bridge_failed" not in kb.events(name)


# --------------------------------------------------------------------------
# 17. --timeout bounds the pre-checks; nothing of kubectl outlives them


def test_precheck_timeout_kills_the_credential_plugin(kb, tmp_path):
    """A kubeconfig user whose exec credential plugin hangs: connect gives
    up after --timeout (61) and leaves neither kubectl nor the plugin."""
    # in a directory: kubectl stores the path relative to the kubeconfig,
    # and a bare name would be looked up on PATH
    (tmp_path / "bin").mkdir()
    plugin = tmp_path / "bin" / "slow-credentials"
    marker = "97.%d" % os.getpid()
    plugin.write_text("#!/bin/sh\nsleep %s\necho '{}'\n" % marker)
    plugin.chmod(0o755)
    kc = kb.kubeconfig
    server = kb.sim.kubectl_ok("--kubeconfig", kc, "config", "view", "--minify", "-o",
                               "jsonpath={.contexts[0].context.cluster}").strip()
    # (the context first: /usr/bin/kubectl, a dispatcher, asks the server
    # its version with the user of the context a command names)
    for args in (("set-context", "slow", "--cluster=" + server, "--user=slow"),
                 ("set-credentials", "slow", "--exec-api-version=client.authentication.k8s.io/v1",
                  "--exec-command=%s" % plugin, "--exec-interactive-mode=Never")):
        kb.sim.kubectl_ok("--kubeconfig", kc, "config", *args)
    t0 = time.monotonic()
    r = kb.run("connect", "--kubeconfig", kc, "--context", "slow", "--timeout", "3",
               "-t", "echo:80", timeout=40)
    took = time.monotonic() - t0
    assert r.returncode == 61, r
    assert "--timeout 3" in r.stderr, r
    assert took < 7, (took, r)

    def plugin_left():
        return [p for p in kb.our_processes()
                if any(marker in a or str(plugin) in a for a in proc_cmdline(p))]
    wait_for(lambda: not plugin_left(), 5, "no credential plugin left")
    assert not kb.kubectl_processes(), kb.describe(kb.kubectl_processes())
    assert_no_session(kb, r)


# --------------------------------------------------------------------------
# 18. messages and codes


def test_messages_and_codes(kb, tmp_path, cluster):
    # an empty kubeconfig: says so, not "localhost:8080 refused"
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("")
    r = kb.run("connect", "--kubeconfig", str(empty), "-t", "echo:80")
    assert r.returncode == 61, r
    assert "no current context" in r.stderr and "localhost:8080" not in r.stderr, r
    # control characters in -t are not echoed raw
    r = kb.run("connect", "-t", "ec\x1b[31mho:80")
    assert r.returncode == 2 and "\x1b" not in r.stderr and "ec?[31mho" in r.stderr, r
    # no config, nothing to connect: one clear sentence
    r = kb.run("connect")
    assert r.returncode == 2 and "((" not in r.stderr and "none was found" in r.stderr, r
    # an unknown --profile is a config error (3)
    cfg = os.path.join(kb.tmp, "devbridge.yaml")
    with open(cfg, "w") as f:
        f.write("bridge:\n  namespace: default\n  targets:\n    - service: echo\n      port: 80\n"
                "profiles:\n  staging:\n    bridge:\n      namespace: other\n")
    r = kb.run("--config", cfg, "--profile", "stagin", "connect")
    assert r.returncode == 3 and "did you mean 'staging'" in r.stderr, r
    # status with bridge.targets listed and nothing running
    r = kb.run("--config", cfg, "status")
    assert r.returncode == 0 and "no bridges configured" not in r.stdout, r
    assert "1 Kubernetes target" in r.stdout and "devbridge connect" in r.stdout, r
    # shell --json: a JSON error, not nothing
    r = kb.run("--json", "shell", "--", "true")
    assert r.returncode == 2 and r.json()["error"]["name"] == "usage", r
    # intercept validates; its dry run creates nothing (the real run:
    # test_k8s_intercept*.py)
    r = kb.run("intercept", "echo", "--steal", "--dry-run")
    assert r.returncode == 0 and "nothing was created" in r.stdout, r
    r = kb.run("--help")
    assert "intercept" in r.stdout and "route a Service's cluster traffic here" in r.stdout, r


def test_deleted_pod_is_not_target_refused(kb, cluster):
    cluster.apply(echo_pod("doomed-1", "default", {"app": "doomed"}),
                  service("doomed", "default", {"app": "doomed"}, [(80, 8080)], "10.96.213.34"))
    cluster.wait_pods_ready("default", "doomed-1")
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "doomed:80:%d" % port)
    assert r.returncode == 0, r
    name = "doomed.default.80"
    cluster.kubectl_ok("delete", "pod", "doomed-1", "-n", "default", "--timeout=30s")
    row = wait_for(lambda: (lambda b: b if b["reason"] == "no_ready_pod" else None)(kb.row(name)),
                   15, "%s waiting for a pod" % name)
    assert row["state"] == "reconnecting", row
    ev = kb.run("--json", "logs", name, "-n", "100").json()["events"]
    disc = [e for e in ev if e["event"] == "bridge_disconnected"]
    assert disc and "doomed-1 left the endpoints" in disc[-1]["detail"], ev
    assert not any("refused" in e.get("detail", "") for e in ev), ev


def test_status_table_and_session_header(kb, cluster):
    long_svc = "a-rather-long-service-name-for-the-table"
    cluster.apply(service(long_svc, "default", {"app": "echo"}, [(80, 8080)], "10.96.213.35"))
    l1, l2 = local_port(), local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % l1,
               "-t", "%s:80:%d" % (long_svc, l2))
    assert r.returncode == 0, r
    r = kb.run("--no-color", "status")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Kubernetes session (2 bridges)"), r
    head = dict(l.strip().split(":", 1) for l in lines[1:4])
    assert head["config"].strip() == kb.kubeconfig and head["context"].strip() == kb.sim.context, r
    assert re.match(r"^\d+[smhd]", head["uptime"].strip()), r
    table = lines[lines.index("") + 1:]
    hdr = table[0]
    for row in table[1:]:
        # every column starts where its header does
        for col in ("KIND", "STATE", "LOCAL -> REMOTE", "UPTIME", "HEALTH"):
            i = hdr.index(col)
            assert row[i - 1] == " " and row[i] != " ", (col, hdr, row)
        assert row[hdr.index("KIND"):].startswith("k8s"), (hdr, row)
    doc = kb.status()
    assert (doc["session"]["context"], doc["session"]["kubeconfig"]) == (kb.sim.context,
                                                                         kb.kubeconfig), doc


def test_disconnect_declined_exits_1(kb):
    """Answering anything but y on a terminal stops nothing, and says so
    with exit 1."""
    import pty
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % port)
    assert r.returncode == 0, r
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([kb.bin, "--state-dir", kb.state_dir, "disconnect"], stdin=slave,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kb.env(),
                             cwd=kb.tmp)
        os.write(master, b"n\n")
        out, err = p.communicate(timeout=30)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 1, (out, err)
    assert b"nothing stopped" in err, err
    assert kb.row("echo.default.80")["state"] == "connected"


# --------------------------------------------------------------------------
# 19. the session files' lock is never waited for on a supervisor's loop


def test_session_lock_held_does_not_stall_the_supervisor(kb):
    """Somebody holds session.lock (another writer, stuck): a supervisor
    that reconnects keeps serving its loop (a SIGHUP still reconnects it),
    and bridge.env is brought up to date once the lock is free."""
    import fcntl
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "echo:80:%d" % port)
    assert r.returncode == 0, r
    name = "echo.default.80"
    sup = kb.row(name)["pid"]
    lock = open(kb.path("session.lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = os.stat(kb.path("bridge.env")).st_mtime_ns
        pids = []
        for _ in range(2):
            k = kb.row(name)["kubectl_pid"]
            os.kill(sup, signal.SIGHUP)
            row = wait_for(lambda: (lambda b: b if b["state"] == "connected" and
                                    b.get("kubectl_pid") not in (None, k) else None)(kb.row(name)),
                           20, "%s reconnected while the lock is held" % name)
            pids.append(row["kubectl_pid"])
        assert len(set(pids)) == 2
        roundtrip_ok(port, 64 * 1024)
        assert os.stat(kb.path("bridge.env")).st_mtime_ns == before
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    wait_for(lambda: os.stat(kb.path("bridge.env")).st_mtime_ns != before, 10,
             "bridge.env rewritten once the lock is free")
    assert kb.bridge_env()["BRIDGE_ECHO_PORT"] == str(port)


def test_endpoints_readable_not_watchable(kb, cluster):
    """A user who may read but not watch the endpoints (kubesim's `dev`):
    the bridge still connects to a Ready pod (each retry of the watch reads
    them once), and its log says why the watch ends."""
    if not kb.sim.is_sim:
        return  # kubesim's user dev; a real cluster's users are not ours to make (as for 68)
    ns = "nowatch"
    if cluster.kubectl("get", "namespace", ns).returncode != 0:
        cluster.kubectl_ok("create", "namespace", ns)
        rules = [{"apiGroups": [""], "resources": ["services", "pods"], "verbs": ["get", "list"]},
                 {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list"]},
                 {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}]
        cluster.apply(echo_pod("echo", ns, {"app": "echo"}),
                      service("echo", ns, {"app": "echo"}, [(80, 8080)], "10.96.213.36"),
                      {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                       "metadata": {"name": "nowatch", "namespace": ns}, "rules": rules},
                      {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "nowatch", "namespace": ns},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                   "name": "nowatch"},
                       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                     "name": "dev"}]})
        cluster.wait_pods_ready(ns, "echo")
    port = local_port()
    r = kb.run("connect", "--kubeconfig", kb.kubeconfig, "--context", "kubesim-dev",
               "-t", "%s/echo:80:%d" % (ns, port))
    assert r.returncode == 0, r
    roundtrip_ok(port, 256 * 1024)
    row = kb.row("echo.%s.80" % ns)
    assert row["state"] == "connected" and row["pod"] == "echo", row
    wait_for(lambda: "endpoints watch ended" in open(kb.path("echo.%s.80.out" % ns),
                                                       errors="replace").read(), 10,
             "the log says the watch ended")
    out = open(kb.path("echo.%s.80.out" % ns), errors="replace").read()
    assert "forbidden" in out.lower(), out
