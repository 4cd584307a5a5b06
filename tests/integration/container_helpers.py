"""Helpers and fixtures for devbridge's devcontainer-bridge integration tests.

"Containers" are real network namespaces: one Linux bridge on the host side
(10.231.K.1/24) and N namespaces attached with veth pairs (10.231.K.2, .3,
...).  Every name carries a random per-test tag so that concurrent runs do
not collide, and teardown deletes everything it created.

Every process is started by us with Popen (inside a namespace through
`ip netns exec NS ...`, which execs the command in place, so the Popen pid is
the program's pid), logs to a file in the test's temp dir, and is ended by
pid at teardown: SIGTERM first; devbridge daemons must then exit 0 and their
stderr must carry no sanitizer report.

Synchronisation is by polling with deadlines (helpers.wait_for), never by
fixed sleeps.  Standard library only.
"""

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import (  # noqa: E402,F401
    can_connect, free_port, has_ipv6, kill_pid, proc_alive, proc_environ, all_pids, wait_for)
from helpers import sanitizer_report as _sanitizer_report  # noqa: E402

MiB = 1024 * 1024
IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"

# Tokens: 64 lowercase hex characters.
TOKEN = "0123456789abcdef" * 4
WRONG_TOKEN = "fedcba9876543210" * 4

SANITIZER_EXIT_CODES = (86, 87)  # the suite's ASAN_OPTIONS / UBSAN_OPTIONS exitcode=

AUDIT_FIELDS = {"ts", "tunnel", "event", "actor", "actor_class", "detail"}
EXIT_HOST_UNREACHABLE = 50
EXIT_URL_REJECTED = 53
EXIT_PORT_IN_USE = 55

_NET_LOCK = "/tmp/devbridge-test-netns.lock"


def sanitizer_report(text):
    """The first sanitizer report in `text` (with some context), or None."""
    return _sanitizer_report(text, before=300)


def _listenable(family, addr, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def port_free_on_host(port):
    """True if a server could listen on `port` on 127.0.0.1 (and ::1 when
    present).  SO_REUSEADDR, as any server uses: connections of earlier
    tests lingering in TIME_WAIT do not make a port busy."""
    if not _listenable(socket.AF_INET, "127.0.0.1", port):
        return False
    if has_ipv6() and not _listenable(socket.AF_INET6, "::1", port):
        return False
    return True


class PortBlocker:
    """Listeners holding `port` on 127.0.0.1 and (if present) ::1."""

    def __init__(self, port):
        self.socks = []
        fams = [(socket.AF_INET, "127.0.0.1")] + ([(socket.AF_INET6, "::1")] if has_ipv6() else [])
        for family, addr in fams:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            s.listen(16)
            self.socks.append(s)

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def sh(*argv, check=True, timeout=20):
    """Run a short setup command (ip ...); raise with its output on failure."""
    p = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("command failed (exit %d): %s\n%s%s" % (
            p.returncode, " ".join(shlex.quote(str(a)) for a in argv),
            p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")))
    return p


# --------------------------------------------------------------------------
# the network: one bridge, N namespaces


class Net:
    """A bridge 10.231.K.1/24 plus `n` namespaces 10.231.K.(i+2) (i from 0).

    Interface and namespace names embed a random tag (names stay <= 15
    characters).  K is chosen, under a lock file, among the /24s no local
    interface uses yet."""

    def __init__(self, n):
        self.tag = "%05x" % random.randrange(16 ** 5)
        self.bridge = "dbr%sb" % self.tag
        self.n = n
        self.k = None
        self.created_links = []
        self.created_ns = []
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    # names -----------------------------------------------------------
    @property
    def host_addr(self):
        return "10.231.%d.1" % self.k

    def ns(self, i):
        return "dbrt%sc%d" % (self.tag, i)

    def addr(self, i):
        return "10.231.%d.%d" % (self.k, i + 2)

    def hostname(self, i):
        return "c%d-%s" % (i + 1, self.tag)

    # setup -----------------------------------------------------------
    def _create(self):
        with open(_NET_LOCK, "a+") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            try:
                used = set(int(m) for m in re.findall(
                    r"\b10\.231\.(\d+)\.", sh(IP, "-4", "-o", "addr", "show").stdout.decode()))
                choices = [k for k in range(1, 255) if k not in used]
                assert choices, "no free 10.231.K.0/24 left for a test network"
                self.k = random.choice(choices)
                sh(IP, "link", "add", self.bridge, "type", "bridge")
                self.created_links.append(self.bridge)
                sh(IP, "addr", "add", "%s/24" % self.host_addr, "dev", self.bridge)
                sh(IP, "link", "set", self.bridge, "up")
            finally:
                fcntl.flock(lk, fcntl.LOCK_UN)
        for i in range(self.n):
            ns = self.ns(i)
            hveth, cveth = "dbr%sh%d" % (self.tag, i), "dbr%sc%d" % (self.tag, i)
            sh(IP, "netns", "add", ns)
            self.created_ns.append(ns)
            sh(IP, "link", "add", hveth, "type", "veth", "peer", "name", cveth)
            self.created_links.append(hveth)
            sh(IP, "link", "set", hveth, "master", self.bridge, "up")
            sh(IP, "link", "set", cveth, "netns", ns)
            sh(IP, "-n", ns, "addr", "add", "%s/24" % self.addr(i), "dev", cveth)
            sh(IP, "-n", ns, "link", "set", cveth, "up")
            sh(IP, "-n", ns, "link", "set", "lo", "up")
            sh(IP, "-n", ns, "route", "add", "default", "via", self.host_addr)

    def destroy(self):
        for ns in reversed(self.created_ns):
            sh(IP, "netns", "del", ns, check=False)
        for link in reversed(self.created_links):
            if sh(IP, "link", "show", link, check=False).returncode == 0:
                sh(IP, "link", "del", link, check=False)
        self.created_ns = []
        self.created_links = []


# --------------------------------------------------------------------------
# processes


class Proc:
    """One process we started; stdout+stderr go to `log`."""

    def __init__(self, name, argv, log, env, cwd, devbridge=False):
        self.name = name
        self.argv = argv
        self.log = log
        self.devbridge = devbridge  # check exit code + sanitizer output at teardown
        self.allowed_exit = {0}     # exit codes acceptable after SIGTERM / on its own
        self.any_exit_ok = False    # exited by itself with any non-sanitizer code is fine
        self.killed = False         # we SIGKILLed it on purpose
        self.checked = False
        with open(log, "ab") as f:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                          env=env, cwd=cwd, close_fds=True)
        self.pid = self.popen.pid
        self.started = time.monotonic()

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def log_text(self):
        """Its output so far, including a rotated LOG.1 (devbridge rotates
        a log file that stderr goes to: DEVBRIDGE_LOG_MAX_BYTES)."""
        text = ""
        for path in (self.log + ".1", self.log):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def tail(self, n=4000):
        return self.log_text()[-n:]

    def kill9(self):
        self.killed = True
        kill_pid(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout=15):
        """SIGTERM, wait; SIGKILL if it does not go.  Returns a list of
        problems (empty when it behaved)."""
        problems = []
        was_running = self.alive()
        if was_running:
            kill_pid(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_pid(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
                problems.append("%s (pid %d) did not exit within %ds of SIGTERM; killed"
                                % (self.name, self.pid, timeout))
                self.killed = True
        if self.devbridge and not self.checked:
            problems += self.check(was_running)
        return problems

    def check(self, was_running=True):
        """Exit code and sanitizer output of an exited devbridge process."""
        self.checked = True
        problems = []
        rc = self.popen.returncode
        report = sanitizer_report(self.log_text())
        if report:
            problems.append("%s (pid %d): sanitizer report in its stderr:\n%s"
                            % (self.name, self.pid, report))
        if rc in SANITIZER_EXIT_CODES:
            problems.append("%s (pid %d) exited %d (sanitizer exit code)" % (self.name, self.pid, rc))
        elif not self.killed and rc not in self.allowed_exit and not (
                self.any_exit_ok and not was_running and rc is not None and rc >= 0):
            problems.append("%s (pid %d) exited %s, expected %s%s; log tail:\n%s"
                            % (self.name, self.pid, rc, sorted(self.allowed_exit),
                               " after SIGTERM" if was_running else " (it exited by itself)",
                               self.tail(2000)))
        return problems


def _clean_env(home, mark):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DEVBRIDGE_", "BRIDGE_", "DCBRIDGE_", "XDG_"))}
    env.update({"HOME": home, "NO_COLOR": "1", "LC_ALL": "C.UTF-8", "DBTEST_MARK": mark})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    return env


class Result:
    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.returncode, self.stdout, self.stderr, self.elapsed = argv, rc, out, err, elapsed

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError("stdout of %s is not one JSON document (%s):\n%r" % (
                " ".join(self.argv), exc, self))

    def __repr__(self):
        return ("<%s -> exit %s in %.2fs\n--- stdout ---\n%s\n--- stderr ---\n%s>" % (
            " ".join(shlex.quote(a) for a in self.argv), self.returncode, self.elapsed,
            self.stdout[-3000:], self.stderr[-3000:]))


# Runs argv[2:] with its own UTS namespace and hostname argv[1] (a
# container has its own hostname; a bare network namespace does not).  Uses
# exec, so the pid stays the program's.
_UTS_WRAPPER = (
    "import ctypes, os, socket, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if libc.unshare(0x04000000) != 0:\n"
    "    sys.exit('unshare(CLONE_NEWUTS): ' + os.strerror(ctypes.get_errno()))\n"
    "socket.sethostname(sys.argv[1])\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n")


ECHO_SERVER = r'''
import ctypes, os, socket, sys, threading
ready, args = sys.argv[1], sys.argv[2:]
if args[:1] == ["--comm"]:  # the process name a port scanner sees
    ctypes.CDLL(None).prctl(15, args[1].encode(), 0, 0, 0)  # PR_SET_NAME
    args = args[2:]
ports = [int(p) for p in args]

def serve(c):
    try:
        while True:
            d = c.recv(262144)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()

def acceptor(l):
    while True:
        try:
            c, _ = l.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(c,), daemon=True).start()

for p in ports:
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", p))
    l.listen(1024)
    threading.Thread(target=acceptor, args=(l,), daemon=True).start()
with open(ready + ".tmp", "w") as f:
    f.write("listening\n")
os.rename(ready + ".tmp", ready)
threading.Event().wait()
'''

BROWSER_SCRIPT = "#!/bin/sh\nprintf '%%s\\n' \"$1\" >> %s\n"


class Sandbox:
    """Everything one test starts: networks, host/container daemons, services,
    fake containers.  teardown() ends them all by pid and returns problems."""

    def __init__(self, tmpdir, binary):
        self.tmp = tmpdir
        self.bin = binary
        self.home = os.path.join(tmpdir, "home")
        self.cwd = os.path.join(tmpdir, "cwd")
        os.makedirs(self.home, exist_ok=True)
        os.makedirs(self.cwd, exist_ok=True)
        self.mark = "dbrtest-%s" % uuid.uuid4().hex
        self.env = _clean_env(self.home, self.mark)
        self.nets = []
        self.procs = []      # every Proc, in start order
        self.fakes = []
        self.extra_pids = []  # daemons we did not spawn directly (ensure)
        self.problems = []
        self._n = 0

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def _next(self, name):
        self._n += 1
        return self.path("%02d-%s.log" % (self._n, name))

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    # networks --------------------------------------------------------
    def net(self, n):
        net = Net(n)
        self.nets.append(net)
        return net

    # processes -------------------------------------------------------
    def spawn(self, name, argv, ns=None, hostname=None, devbridge=False, env=None):
        argv = [str(a) for a in argv]
        if hostname:
            argv = ["/usr/bin/python3", "-c", _UTS_WRAPPER, hostname] + argv
        if ns:
            argv = [IP, "netns", "exec", ns] + argv
        p = Proc(name, argv, self._next(name), dict(self.env, **(env or {})), self.cwd,
                 devbridge=devbridge)
        self.procs.append(p)
        return p

    def echo_server(self, net, i, *ports, comm=None):
        """A threaded echo server on 127.0.0.1:PORT... inside container i
        (process name `comm` if given); returns once it listens."""
        script = self.path("echo_server.py")
        if not os.path.exists(script):
            self.write("echo_server.py", ECHO_SERVER)
        self._n += 1
        ready = self.path("echo-%d.ready" % self._n)
        p = self.spawn("echo-c%d-%s" % (i + 1, "-".join(map(str, ports))),
                       ["/usr/bin/python3", script, ready] + (["--comm", comm] if comm else [])
                       + list(ports), ns=net.ns(i))
        wait_for(lambda: os.path.exists(ready) or (not p.alive() and "exited"), 10,
                 "echo server on %s in %s" % (ports, net.ns(i)))
        assert p.alive(), "echo server in %s exited: %s" % (net.ns(i), p.tail())
        return p

    def http_server(self, net, i, port, content):
        """`python3 -m http.server --bind 127.0.0.1 PORT` in container i,
        serving a directory with whoami.txt = content."""
        self._n += 1
        d = self.path("www-%d" % self._n)
        os.makedirs(d)
        with open(os.path.join(d, "whoami.txt"), "w") as f:
            f.write(content)
        p = self.spawn("http-c%d-%d" % (i + 1, port),
                       ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                        "--directory", d, port], ns=net.ns(i))
        return p

    def browser_script(self):
        out = self.path("browser-opened.txt")
        script = self.write("browser.sh", BROWSER_SCRIPT % shlex.quote(out), mode=0o755)
        return script, out

    def host_daemon(self, bind_addr, **kw):
        h = HostDaemon(self, bind_addr, **kw)
        h.start()
        return h

    def container_daemon(self, net, i, host, **kw):
        return ContainerDaemon(self, net, i, host, **kw)

    def fake(self, host, **kw):
        f = FakeContainer(host.bind_addr, host.cp, host.dp, **kw)
        self.fakes.append(f)
        return f

    def cli(self, *args, ns=None, timeout=30, argv0=None, env=None):
        """Run a short-lived devbridge command (`env`: extra variables); fail
        on a sanitizer report."""
        argv = [argv0 or self.bin] + [str(a) for a in args]
        if ns:
            argv = [IP, "netns", "exec", ns] + argv
        t0 = time.monotonic()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=dict(self.env, **(env or {})),
                           cwd=self.cwd, timeout=timeout)
        r = Result(argv, p.returncode, p.stdout.decode(errors="replace"),
                   p.stderr.decode(errors="replace"), time.monotonic() - t0)
        rep = sanitizer_report(r.stderr)
        assert not rep and r.returncode not in SANITIZER_EXIT_CODES, (
            "sanitizer report from %r" % (r,))
        return r

    def status(self, state_dir):
        r = self.cli("--state-dir", state_dir, "--json", "status")
        assert r.returncode == 0, "status --json failed: %r" % (r,)
        return r.json()

    def container_rows(self, state_dir):
        return container_rows(self.status(state_dir))

    # teardown --------------------------------------------------------
    def teardown(self):
        problems = list(self.problems)
        for f in self.fakes:
            f.close()
        # container daemons first (they are clients), then services, then hosts
        order = ([p for p in self.procs if p.name.startswith("container-daemon")]
                 + [p for p in self.procs if not p.devbridge]
                 + [p for p in self.procs if p.devbridge
                    and not p.name.startswith("container-daemon")])
        for p in order:
            try:
                problems += p.terminate()
            except Exception as exc:  # noqa: BLE001 - teardown goes on
                problems.append("stopping %s: %r" % (p.name, exc))
        for pid, name, log in self.extra_pids:
            if proc_alive(pid):
                kill_pid(pid, signal.SIGTERM)
                try:
                    wait_for(lambda: not proc_alive(pid), 15, "%s (pid %d) to exit" % (name, pid))
                except AssertionError as exc:
                    kill_pid(pid, signal.SIGKILL)
                    problems.append(str(exc))
            try:
                with open(log, errors="replace") as f:
                    rep = sanitizer_report(f.read())
            except OSError:
                rep = None
            if rep:
                problems.append("%s (pid %d): sanitizer report in %s:\n%s" % (name, pid, log, rep))
        # anything else carrying our marker (e.g. a browser script child)
        me = os.getpid()
        for pid in all_pids():
            if pid != me and proc_alive(pid) and ("DBTEST_MARK=" + self.mark).encode() in proc_environ(pid):
                kill_pid(pid, signal.SIGKILL)
        for net in self.nets:
            try:
                net.destroy()
            except Exception as exc:  # noqa: BLE001
                problems.append("deleting network %s: %r" % (net.tag, exc))
        return problems


def container_rows(doc):
    """The rows with kind == "container" anywhere at the top of a status doc."""
    rows = []
    if isinstance(doc, dict):
        for v in doc.values():
            if isinstance(v, list):
                rows += [r for r in v if isinstance(r, dict) and r.get("kind") == "container"]
    elif isinstance(doc, list):
        rows = [r for r in doc if isinstance(r, dict) and r.get("kind") == "container"]
    return rows


# --------------------------------------------------------------------------
# the daemons


class HostDaemon:
    def __init__(self, sb, bind_addr, token=TOKEN, cp=None, dp=None, state_dir=None,
                 browser_cmd=None, heartbeat_ms=None, extra=(), no_auth=False, env=None):
        """token=None: no --auth-token (the daemon resolves its own)."""
        self.sb = sb
        self.env = env
        self.bind_addr = bind_addr
        self.token = token
        self.cp = cp or free_port(both_families=False)
        self.dp = dp or free_port(both_families=False)
        while self.dp == self.cp:
            self.dp = free_port(both_families=False)
        self.state_dir = state_dir or sb.path("host-state-%s" % uuid.uuid4().hex[:6])
        self.browser_cmd = browser_cmd
        self.heartbeat_ms = heartbeat_ms
        self.extra = list(extra)
        self.no_auth = no_auth
        self.proc = None

    def argv(self):
        a = [self.sb.bin, "host-daemon", "--bind-addr", self.bind_addr,
             "--control-port", self.cp, "--data-port", self.dp, "--state-dir", self.state_dir]
        if self.no_auth:
            a.append("--no-auth")
        elif self.token is not None:
            a += ["--auth-token", self.token]
        if self.browser_cmd:
            a += ["--browser-cmd", self.browser_cmd]
        if self.heartbeat_ms:
            a += ["--heartbeat-ms", self.heartbeat_ms]
        return a + self.extra

    def start(self, wait=True):
        self.proc = self.sb.spawn("host-daemon", self.argv(), devbridge=True, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        def ready():
            if not self.proc.alive():
                raise AssertionError("host daemon exited %s before accepting on %s:%d; log:\n%s"
                                     % (self.proc.returncode, self.bind_addr, self.cp, self.proc.tail()))
            return can_connect(self.cp, host=self.bind_addr)
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError("host daemon not accepting on %s:%d within %ss; log:\n%s"
                                     % (self.bind_addr, self.cp, timeout, self.proc.tail()))
            time.sleep(0.05)

    def stop(self):
        """SIGTERM now; assert exit 0 and no sanitizer report."""
        problems = self.proc.terminate()
        assert not problems, "\n".join(problems)

    @property
    def pid(self):
        return self.proc.pid

    # state and audit ---------------------------------------------------
    def state(self):
        try:
            with open(os.path.join(self.state_dir, "host-daemon.state")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def containers(self):
        st = self.state() or {}
        return st.get("containers") or []

    def container(self, cid):
        for c in self.containers():
            if c.get("container_id") == cid:
                return c
        return None

    def forward(self, cid, port):
        c = self.container(cid)
        for f in (c or {}).get("forwards") or []:
            if f.get("port") == port:
                return f
        return None

    def wait_forward(self, cid, port, timeout=10):
        """Wait until container `cid`'s `port` is forwarded and its host port
        accepts; returns the host port."""
        def pred():
            f = self.forward(cid, port)
            if f and isinstance(f.get("host_port"), int) and f["host_port"] > 0 \
                    and can_connect(f["host_port"]):
                return f["host_port"]
            return None
        try:
            return wait_for(pred, timeout, "container %s port %d forwarded (state file)" % (cid, port))
        except AssertionError as exc:
            raise AssertionError("%s\nstate: %s\nhost log:\n%s" % (
                exc, json.dumps(self.state()), self.proc.tail(3000)))

    def audit_path(self):
        return os.path.join(self.state_dir, "host-daemon.log")

    def audit(self):
        try:
            with open(self.audit_path()) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                if i == len(lines) - 1:
                    break  # mid-write
                raise AssertionError("audit line %d is not JSON: %r" % (i + 1, line))
        return out

    def audit_text(self):
        try:
            with open(self.audit_path(), errors="replace") as f:
                return f.read()[-5000:]
        except OSError as exc:
            return "(no audit log: %s)" % exc

    def events(self, name=None):
        return [e for e in self.audit() if name is None or e.get("event") == name]

    def wait_event(self, name, timeout=5, count=1, pred=None):
        def find():
            evs = [e for e in self.events(name) if pred is None or pred(e)]
            return evs if len(evs) >= count else None
        try:
            return wait_for(find, timeout, "%d audit event(s) %s" % (count, name))
        except AssertionError as exc:
            raise AssertionError("%s\naudit:\n%s" % (exc, self.audit_text()))


class ContainerDaemon:
    def __init__(self, sb, net, i, host, token=None, container_id=None, extra=(),
                 scan_ms=50, start=True, env=None, hostname=None):
        self.sb, self.net, self.i, self.host = sb, net, i, host
        self.env = env
        self.token = host.token if token is None else token
        self.container_id = container_id or "cid-%s-%d" % (net.tag, i + 1)
        self.hostname = hostname or net.hostname(i)
        self.extra = [str(a) for a in extra]
        self.scan_ms = scan_ms
        self.proc = None
        if start:
            self.start()

    def argv(self):
        return [self.sb.bin, "container-daemon", "--host-addr", self.net.host_addr,
                "--control-port", self.host.cp, "--data-port", self.host.dp,
                "--auth-token", self.token, "--container-id", self.container_id,
                "--scan-interval-ms", self.scan_ms] + self.extra

    def start(self):
        self.proc = self.sb.spawn("container-daemon-c%d" % (self.i + 1), self.argv(),
                                  ns=self.net.ns(self.i), hostname=self.hostname, devbridge=True,
                                  env=self.env)
        return self

    def wait_registered(self, timeout=10):
        try:
            return wait_for(lambda: self.host.container(self.container_id), timeout,
                            "container %s registered (state file)" % self.container_id)
        except AssertionError as exc:
            raise AssertionError("%s\ncontainer daemon log:\n%s\nhost log:\n%s" % (
                exc, self.proc.tail(2000), self.host.proc.tail(2000)))

    def wait_forward(self, port, timeout=10):
        try:
            return self.host.wait_forward(self.container_id, port, timeout)
        except AssertionError as exc:
            raise AssertionError("%s\ncontainer daemon log:\n%s" % (exc, self.proc.tail(3000)))


# --------------------------------------------------------------------------
# clients


def http_get(port, path="/whoami.txt", host="127.0.0.1", timeout=3):
    """(status, body) of one GET on a fresh connection (no proxies)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def http_body(port, **kw):
    status, body = http_get(port, **kw)
    return body if status == 200 else None


def wait_closed(port, timeout, what, host="127.0.0.1"):
    """Wait until nothing accepts on host:port; returns seconds waited."""
    t0 = time.monotonic()
    wait_for(lambda: not can_connect(port, host=host, timeout=0.3), timeout, what)
    return time.monotonic() - t0


def roundtrip(port, payload, timeout=60, host="127.0.0.1", sock=None):
    """Send payload through an echo service and read as many bytes back,
    sending and receiving at once (no half-close needed).  Returns the
    sha256 of what came back (and its length)."""
    s = sock or socket.create_connection((host, port), timeout=10)
    s.settimeout(timeout)
    err = []

    def sender():
        try:
            s.sendall(payload)
        except OSError as exc:
            err.append(exc)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    h = hashlib.sha256()
    got = 0
    try:
        while got < len(payload):
            chunk = s.recv(min(1 << 20, len(payload) - got))
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
    finally:
        t.join(timeout=10)
        s.close()
    if err:
        raise AssertionError("sending failed after %d bytes echoed: %r" % (got, err[0]))
    return h.hexdigest(), got


def read_closed(sock, timeout):
    """Read (discarding) until EOF/reset; returns (closed?, elapsed, data)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, time.monotonic() - t0, data
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, time.monotonic() - t0, data
        except OSError:
            return True, time.monotonic() - t0, data
        if not chunk:
            return True, time.monotonic() - t0, data
        data += chunk


class FakeContainer:
    """A container daemon spoken by hand: JSON lines on the control port,
    reverse data connections to the data port."""

    def __init__(self, addr, cp, dp, token=TOKEN, container_id=None, hostname=None, connect=True):
        self.addr, self.cp, self.dp, self.token = addr, cp, dp, token
        tag = uuid.uuid4().hex[:8]
        self.container_id = container_id or "fake-%s" % tag
        self.hostname = hostname or "fakehost-%s" % tag
        self.sock = None
        self.buf = b""
        self.seen = []  # every message received, in order
        self.data_socks = []
        self.eof = False
        if connect:
            self.connect()

    def connect(self):
        self.sock = socket.create_connection((self.addr, self.cp), timeout=5)
        self.buf = b""
        self.eof = False
        return self

    def close(self):
        for s in [self.sock] + self.data_socks:
            if s:
                try:
                    s.close()
                except OSError:
                    pass
        self.data_socks = []

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self, timeout=5):
        """The next message (dict), or None on EOF/reset.  Raises
        AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no message from the host daemon within %ss (seen so far: %s)"
                                     % (timeout, self.seen[-10:]))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            raise AssertionError("host daemon sent a line that is not JSON: %r" % line[:500])
        self.seen.append(msg)
        return msg

    def expect(self, mtype, timeout=5, skip=("ConnectRequest", "Ping"), pong=False):
        """Read until a message of `mtype`; messages whose type is in `skip`
        are passed over (Pings answered when `pong`); anything else is
        returned in the second element.  Fails on EOF."""
        deadline = time.monotonic() + timeout
        others = []
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            assert msg is not None, ("control connection closed while waiting for %s (before it: %s)"
                                     % (mtype, others))
            if msg.get("type") == mtype:
                return msg, others
            if msg.get("type") == "Ping" and pong:
                self.send({"type": "Pong"})
            if msg.get("type") not in skip:
                others.append(msg)

    def register(self, version=2, token=None, **kw):
        m = {"type": "Register", "container_id": self.container_id, "hostname": self.hostname,
             "auth_token": self.token if token is None else token}
        if version is not None:
            m["version"] = version
        m.update(kw)
        self.send(m)
        ack, _ = self.expect("RegisterAck")
        return ack

    def forward(self, port):
        self.send(forward_msg(port))
        while True:
            ack, _ = self.expect("ForwardAck")
            if ack.get("port") == port:
                return ack

    def ping(self, timeout=5):
        self.send({"type": "Ping"})
        msg, others = self.expect("Pong", timeout)
        return msg, others

    def list(self, token=None):
        self.send({"type": "ListRequest", "auth_token": self.token if token is None else token})
        return self.expect("ListResponse")

    def wait_connect_request(self, port=None, timeout=5):
        while True:
            msg, _ = self.expect("ConnectRequest", timeout, skip=("Ping",))
            if port is None or msg.get("port") == port:
                return msg

    def data_connect(self, conn_id, first=b""):
        """Open the reverse data connection: ConnectReady line plus `first`
        in the same send."""
        s = socket.create_connection((self.addr, self.dp), timeout=5)
        self.data_socks.append(s)
        s.sendall(json.dumps({"type": "ConnectReady", "conn_id": conn_id}).encode() + b"\n" + first)
        return s


def forward_msg(port):
    return {"type": "Forward", "port": port, "protocol": "Tcp", "process_name": None, "pid": None}


def recv_exact(sock, n, timeout=5):
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        try:
            chunk = sock.recv(n - len(data))
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def random_port_block(n):
    """A container-side port block [base, base+n) below the ephemeral range."""
    return random.randrange(20000, 30000 - n)


# --------------------------------------------------------------------------
# fixtures (import them into a test module to use them)


@pytest.fixture
def sandbox(tmp_path, devbridge_bin):
    sb = Sandbox(str(tmp_path), devbridge_bin)
    yield sb
    problems = sb.teardown()
    assert not problems, "teardown found problems:\n" + "\n\n".join(problems)


@pytest.fixture
def port8080():
    """Tests that forward container port 8080 and check which host port it
    got hold this lock, so that concurrent runs of this suite on one machine
    do not race for host port 8080 (other holders are handled by the
    tests' "if free" checks)."""
    with open("/tmp/devbridge-test-port8080.lock", "a+") as lk:
        deadline = time.monotonic() + 60
        while True:
            try:
                fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError("another test run held the port-8080 lock for 60s")
                time.sleep(0.1)
        try:
            yield 8080
        finally:
            fcntl.flock(lk, fcntl.LOCK_UN)


def check_audit_shape(events):
    for e in events:
        assert AUDIT_FIELDS <= set(e), "audit line lacks fields %s: %r" % (
            sorted(AUDIT_FIELDS - set(e)), e)


@contextlib.contextmanager
def elapsed_at_most(limit, what):
    t0 = time.monotonic()
    yield
    took = time.monotonic() - t0
    assert took <= limit, "%s took %.1fs (limit %ss)" % (what, took, limit)
