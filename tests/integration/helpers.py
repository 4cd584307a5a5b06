"""Shared helpers for devbridge's integration tests.

Everything here uses only the standard library.  The real components are a
throw-away OpenSSH sshd (one per test, own temp dir, own keys, own port from
the kernel), the real ssh client (driven by devbridge) and small Python TCP
services standing in for the user's local/remote services.

Synchronisation is by polling (`wait_for`), never by fixed sleeps.
"""

import datetime
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BIN = os.path.join(REPO_ROOT, "build", "devbridge")
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"

MiB = 1024 * 1024

STATES = {"stopped", "starting", "connected", "degraded", "reconnecting", "failed"}
HEALTH = {"ok", "failing", "unknown"}
EVENTS = {
    "bridge_started", "bridge_connected", "bridge_disconnected", "bridge_reconnecting",
    "health_check_failed", "health_check_recovered", "bridge_stopped", "bridge_failed",
}
AUDIT_FIELDS = {"ts", "tunnel", "event", "actor", "actor_class", "detail"}
AUDIT_TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ISO_Z_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# "FILE:LINE:COL: message" (COL optional only in case a checker omits it).
DIAG_RE_TMPL = r"{file}:(\d+):(\d+): \S"

# What a sanitizer report starts with (the suite builds with ASan+UBSan).
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer", "ERROR: ThreadSanitizer")


def sanitizer_report(text, before=200):
    """The first sanitizer report in `text` (with some context), or None."""
    for mark in SANITIZER_MARKS:
        i = text.find(mark)
        if i >= 0:
            return text[max(0, i - before):i + 3000]
    return None


def devbridge_bin():
    return os.environ.get("DEVBRIDGE_BIN") or DEFAULT_BIN


# --------------------------------------------------------------------------
# polling


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll `predicate` until it returns a truthy value; return that value.

    An exception raised by the predicate counts as "not yet" and is kept as
    the last observed value.  On timeout raise AssertionError naming `what`
    and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            value = None
            last = "exception: %r" % (exc,)
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s; last observed: %s"
                                 % (timeout, what, _short(last)))
        time.sleep(interval)


def _short(value, limit=2000):
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "...(truncated)"


# --------------------------------------------------------------------------
# ports


def _bindable(family, addr, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(both_families=True):
    """A TCP port the kernel says is free on 127.0.0.1 (and on ::1 too when
    `both_families`, since sshd binds -R listeners on both for localhost)."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if not both_families or not has_ipv6() or _bindable(socket.AF_INET6, "::1", port):
            return port
    raise RuntimeError("could not find a free port")


_HAS_V6 = None


def has_ipv6():
    global _HAS_V6
    if _HAS_V6 is None:
        _HAS_V6 = _bindable(socket.AF_INET6, "::1", 0)
    return _HAS_V6


def can_connect(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PortBlocker:
    """Listening sockets that occupy `port` on 127.0.0.1 and (if present) ::1."""

    def __init__(self, port, families=("4", "6")):
        self.port = port
        self.socks = []
        for fam in families:
            if fam == "6" and not has_ipv6():
                continue
            family, addr = (socket.AF_INET, "127.0.0.1") if fam == "4" else (socket.AF_INET6, "::1")
            s = socket.socket(family, socket.SOCK_STREAM)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            s.listen(16)
            self.socks.append(s)

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []


# --------------------------------------------------------------------------
# a threaded echo server (the "service" at the far end of a tunnel)


class EchoServer:
    """Threaded TCP echo server on 127.0.0.1.  `port=0` asks the kernel.

    stop() closes the listener and every open connection, so the port is
    refused afterwards; a new EchoServer(port=same) can take it again."""

    def __init__(self, port=0):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.conns = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True,
                                       name="echo-%d" % self.port)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.stopped:
                    conn.close()
                    return
                self.conns.add(conn)
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while True:
                data = conn.recv(256 * 1024)
                if not data:
                    break
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
            conn.close()

    def stop(self):
        self.stopped = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)


def echo_roundtrip(port, nbytes, timeout=60, host="127.0.0.1"):
    """Send `nbytes` random bytes to an echo service reached at port, read
    as many back.  Returns (sha256 sent, sha256 received, bytes received)."""
    payload = os.urandom(nbytes)
    sent_hash = hashlib.sha256(payload).hexdigest()
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(timeout)
    err = []

    def sender():
        try:
            view = memoryview(payload)
            step = 256 * 1024
            for off in range(0, len(view), step):
                sock.sendall(view[off:off + step])
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            err.append(exc)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    h = hashlib.sha256()
    got = 0
    deadline = time.monotonic() + timeout
    try:
        while got < nbytes and time.monotonic() < deadline:
            chunk = sock.recv(min(1 << 20, nbytes - got))
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
    finally:
        t.join(timeout=10)
        sock.close()
    if err:
        raise AssertionError("sending through the tunnel failed after %d bytes echoed: %r" % (got, err[0]))
    return sent_hash, h.hexdigest(), got


class StreamingTransfer:
    """A long-running transfer through an echo tunnel: keeps sending random
    chunks and reading the echo until the connection breaks or stop() is
    called.  `received` counts echoed bytes; `error`/`eof` say how it ended."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(30)
        self.sent = 0
        self.received = 0
        self.error = None
        self.eof = False
        self._stop = threading.Event()
        self.tx = threading.Thread(target=self._send, daemon=True)
        self.rx = threading.Thread(target=self._recv, daemon=True)
        self.tx.start()
        self.rx.start()

    def _send(self):
        chunk = os.urandom(64 * 1024)
        try:
            while not self._stop.is_set():
                self.sock.sendall(chunk)
                self.sent += len(chunk)
        except OSError as exc:
            self.error = self.error or exc

    def _recv(self):
        try:
            while not self._stop.is_set():
                data = self.sock.recv(1 << 20)
                if not data:
                    self.eof = True
                    return
                self.received += len(data)
        except OSError as exc:
            self.error = self.error or exc

    def done(self):
        return not self.rx.is_alive()

    def stop(self):
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.tx.join(timeout=5)
        self.rx.join(timeout=5)


# --------------------------------------------------------------------------
# processes


def proc_state(pid):
    """The one-letter state from /proc/PID/stat, or None if there is no such pid."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # comm may contain spaces/parens: state follows the last ')'
    return data[data.rindex(")") + 2:].split()[0]


def proc_alive(pid):
    """True while pid exists and is not a zombie (a zombie has exited)."""
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def proc_ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2:].split()[1])


def proc_comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def proc_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root):
    """All live descendants of pid `root` (by walking /proc ppid links)."""
    children = {}
    for pid in all_pids():
        pp = proc_ppid(pid)
        if pp is not None:
            children.setdefault(pp, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


# --------------------------------------------------------------------------
# sshd


class Sshd:
    """A throw-away OpenSSH server on 127.0.0.1 with its own keys and config.

    sshd -D forks one child per connection and that child calls setsid(), so
    the connection processes are NOT in the listener's process group.  To
    simulate a dead or hung *host* we therefore signal the listener's group
    and every descendant, by pid."""

    def __init__(self, workdir, port=None):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port(both_families=False)
        self.host_key = os.path.join(self.dir, "host_ed25519")
        self.client_key = os.path.join(self.dir, "client_key")
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.config = os.path.join(self.dir, "sshd_config")
        self.log = os.path.join(self.dir, "sshd.log")
        self.proc = None
        self.stopped_pids = []
        self._keys()
        self._write_config()

    def _keys(self):
        for path in (self.host_key, self.client_key):
            subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "devbridge-test",
                            "-f", path], check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.chmod(self.client_key, 0o600)
        os.chmod(self.host_key, 0o600)
        with open(self.client_key + ".pub") as f:
            pub = f.read().strip()
        with open(self.authorized_keys, "w") as f:
            f.write(pub + "\n")
        with open(self.host_key + ".pub") as f:
            hostpub = f.read().strip()
        with open(self.known_hosts, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, hostpub))

    def _write_config(self):
        lines = [
            "Port %d" % self.port,
            "ListenAddress 127.0.0.1",
            "HostKey %s" % self.host_key,
            "AuthorizedKeysFile %s" % self.authorized_keys,
            "PidFile none",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding yes",
            "LogLevel VERBOSE",
            "ClientAliveInterval 2",
            "ClientAliveCountMax 2",
            "UseDNS no",
            "MaxStartups 100:30:200",
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10):
        assert self.proc is None or self.proc.poll() is not None, "sshd already running"
        os.makedirs("/run/sshd", exist_ok=True)
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True, close_fds=True)
        finally:
            logf.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("sshd exited with %s; log:\n%s" % (self.proc.returncode, self.log_text()))
            return can_connect(self.port)

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return self
            except AssertionError:
                raise
            if time.monotonic() > deadline:
                raise AssertionError("sshd on port %d not accepting within %ss; log:\n%s"
                                     % (self.port, timeout, self.log_text()))
            time.sleep(0.05)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _tree(self):
        if not self.proc:
            return []
        return [self.proc.pid] + descendants(self.proc.pid)

    def connection_pids(self):
        return descendants(self.proc.pid) if self.running() else []

    def kill9(self):
        """The host dies: SIGKILL the listener's group and every descendant."""
        if not self.proc:
            return
        pids = self._tree()
        self._signal(pids, signal.SIGKILL)
        self.proc.wait(timeout=10)
        # connection processes are re-parented away from us: wait by polling
        wait_for(lambda: not any(proc_alive(p) for p in pids), 10, "sshd processes to die")

    def _signal(self, pids, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in pids:
            kill_pid(p, sig)

    def stop_signal(self):
        """The host hangs (no FIN, no RST): SIGSTOP listener and connections."""
        pids = self._tree()
        self.stopped_pids = list(set(self.stopped_pids) | set(pids))
        self._signal(pids, signal.SIGSTOP)

    def cont(self):
        if not self.proc:
            return
        self._signal(list(set(self.stopped_pids) | set(self._tree())), signal.SIGCONT)
        self.stopped_pids = []

    def cleanup(self):
        if not self.proc:
            return
        pids = list(set(self._tree()) | set(self.stopped_pids))
        self._signal(pids, signal.SIGKILL)
        self._signal(pids, signal.SIGCONT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------
# devbridge


def yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if _PLAIN_RE.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


_PLAIN_RE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n", "~"}


def to_yaml(obj, indent=0):
    """Tiny YAML emitter for nested dicts of scalars (enough for our configs).
    Returns the text and keeps key order, so tests can compute line numbers."""
    pad = "  " * indent
    out = []
    for key, value in obj.items():
        if isinstance(value, dict):
            out.append("%s%s:" % (pad, key))
            out.append(to_yaml(value, indent + 1))
        else:
            out.append("%s%s: %s" % (pad, key, yaml_scalar(value)))
    return "\n".join(line for line in out if line != "")


class Result:
    def __init__(self, argv, returncode, stdout, stderr, elapsed):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    @property
    def output(self):
        return self.stdout + self.stderr

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError("stdout of %s is not one JSON document (%s):\n%s\nstderr:\n%s"
                                 % (self.cmd(), exc, self.stdout, self.stderr))

    def cmd(self):
        return " ".join(shlex.quote(a) for a in self.argv)

    def __repr__(self):
        return ("<%s -> exit %s in %.2fs\n--- stdout ---\n%s\n--- stderr ---\n%s>"
                % (self.cmd(), self.returncode, self.elapsed, self.stdout[-3000:], self.stderr[-3000:]))


class DevBridge:
    """Runs the binary under test in one test's sandbox: own HOME, state dir
    and config file.  Records every supervisor / ssh pid it sees so teardown
    can end them by pid."""

    def __init__(self, tmpdir, binary=None):
        self.tmp = tmpdir
        self.bin = binary or devbridge_bin()
        self.home = tmpdir
        self.state_dir = os.path.join(tmpdir, "state")
        self.config = os.path.join(tmpdir, "bridge-config.yaml")
        self.mark = "DBTEST_MARK=%s" % tmpdir
        self.seen_pids = set()
        self.children = []  # Popen objects we started (logs -f, --foreground)
        self._outn = 0

    def env(self, extra=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DEVBRIDGE_", "BRIDGE_", "DCBRIDGE_", "XDG_"))}
        env.update({
            "HOME": self.home,
            "DEVBRIDGE_STATE_DIR": self.state_dir,
            "DEVBRIDGE_CONFIG": self.config,
            "DBTEST_MARK": self.tmp,
            "NO_COLOR": "1",
            "LC_ALL": "C.UTF-8",
        })
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        if extra:
            for k, v in extra.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
        return env

    def run(self, *args, timeout=45, env=None, stdin_data=None):
        """Run devbridge with args; wait for the process itself to exit (its
        output goes to files, so a daemon that keeps an inherited fd cannot
        make us hang)."""
        assert os.path.exists(self.bin), (
            "devbridge binary not found at %s (set DEVBRIDGE_BIN or build it: meson setup build && ninja -C build)"
            % self.bin)
        argv = [self.bin] + [str(a) for a in args]
        self._outn += 1
        out_path = os.path.join(self.tmp, "out.%d" % self._outn)
        err_path = os.path.join(self.tmp, "err.%d" % self._outn)
        t0 = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
                                    stdout=out, stderr=err, env=self.env(env), cwd=self.tmp)
            try:
                if stdin_data:
                    proc.communicate(stdin_data.encode(), timeout=timeout)
                else:
                    proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                with open(out_path, errors="replace") as o, open(err_path, errors="replace") as e:
                    raise AssertionError("%s did not exit within %ss\nstdout:\n%s\nstderr:\n%s"
                                         % (" ".join(argv), timeout, o.read()[-3000:], e.read()[-3000:]))
        elapsed = time.monotonic() - t0
        with open(out_path, errors="replace") as o, open(err_path, errors="replace") as e:
            res = Result(argv, proc.returncode, o.read(), e.read(), elapsed)
        self._note_pids()
        return res

    def popen(self, *args, env=None, **kw):
        assert os.path.exists(self.bin), "devbridge binary not found at %s" % self.bin
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen([self.bin] + [str(a) for a in args], env=self.env(env), cwd=self.tmp, **kw)
        self.children.append(p)
        return p

    # ---- config --------------------------------------------------------

    def write_config(self, tunnels, actors=None, extra_text=""):
        actors = actors or {"tester": {"class": "automation", "description": "test"}}
        doc = {"tunnels": tunnels, "actors": actors}
        text = to_yaml(doc) + "\n" + extra_text
        with open(self.config, "w") as f:
            f.write(text)
        return text

    # ---- state ---------------------------------------------------------

    def status(self, *names):
        r = self.run("--json", "status", *names, timeout=20)
        assert r.returncode == 0, r
        doc = r.json()
        for b in doc.get("bridges", []):
            for key in ("pid", "ssh_pid"):
                if isinstance(b.get(key), int):
                    self.seen_pids.add(b[key])
        return doc

    def bridge(self, name):
        doc = self.status(name)
        found = [b for b in doc["bridges"] if b.get("name") == name]
        assert len(found) == 1, "status --json %s: expected one bridge named %s, got %r" % (name, name, doc)
        return found[0]

    def state(self, name):
        return self.bridge(name)["state"]

    def wait_state(self, name, states, timeout, what=None):
        if isinstance(states, str):
            states = {states}
        last = {}

        def pred():
            b = self.bridge(name)
            last["b"] = b
            return b if b["state"] in states else None

        try:
            return wait_for(pred, timeout, what or "%s state in %s" % (name, sorted(states)), interval=0.1)
        except AssertionError as exc:
            raise AssertionError("%s\naudit:\n%s" % (exc, self.audit_text(name)))

    def audit_path(self, name):
        return os.path.join(self.state_dir, name + ".log")

    def audit_text(self, name):
        try:
            with open(self.audit_path(name), errors="replace") as f:
                return f.read()[-6000:]
        except OSError as exc:
            return "(no audit log: %s)" % exc

    def events(self, name):
        """The raw audit log, parsed (one dict per line)."""
        try:
            with open(self.audit_path(name)) as f:
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
                # the last line may be mid-write; anything else is a bug
                if i == len(lines) - 1:
                    break
                raise AssertionError("audit line %d is not JSON: %r" % (i + 1, line))
        return out

    def event_names(self, name):
        return [e.get("event") for e in self.events(name)]

    def wait_event(self, name, event, timeout, after=0, what=None):
        """Wait for `event` at index >= after in the audit log; returns its index."""
        def pred():
            evs = self.event_names(name)
            for i in range(after, len(evs)):
                if evs[i] == event:
                    return i + 1  # +1 so index 0 is truthy
            return None
        try:
            return wait_for(pred, timeout, what or "audit event %s for %s" % (event, name)) - 1
        except AssertionError as exc:
            raise AssertionError("%s\naudit:\n%s" % (exc, self.audit_text(name)))

    def read_pidfile(self, name):
        try:
            with open(os.path.join(self.state_dir, name + ".pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def read_statefile(self, name):
        try:
            with open(os.path.join(self.state_dir, name + ".state")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _note_pids(self):
        if not os.path.isdir(self.state_dir):
            return
        for fn in os.listdir(self.state_dir):
            if fn.endswith(".pid"):
                p = self.read_pidfile(fn[:-4])
                if p:
                    self.seen_pids.add(p)
            elif fn.endswith(".state"):
                st = self.read_statefile(fn[:-6]) or {}
                for key in ("pid", "ssh_pid"):
                    if isinstance(st.get(key), int):
                        self.seen_pids.add(st[key])

    def our_processes(self):
        """Live processes started on behalf of this test's devbridge: those
        carrying our environment marker, plus ssh clients whose command line
        names a file in our temp dir (in case the supervisor scrubs env)."""
        me = os.getpid()
        out = []
        for pid in all_pids():
            if pid == me or not proc_alive(pid):
                continue
            comm = proc_comm(pid)
            if comm == "sshd":
                continue
            if self.mark.encode() in proc_environ(pid):
                out.append(pid)
                continue
            if comm == "ssh" and any(self.tmp in a for a in proc_cmdline(pid)):
                out.append(pid)
        return out

    def ssh_processes(self):
        return [p for p in self.our_processes() if proc_comm(p) == "ssh"]

    def wait_no_processes(self, timeout, what, only_ssh=False):
        """Wait until none of our devbridge/ssh processes is alive."""
        last = {}

        def pred():
            pids = self.ssh_processes() if only_ssh else self.our_processes()
            last["pids"] = pids
            return not pids

        try:
            wait_for(pred, timeout, what)
        except AssertionError:
            raise AssertionError("timed out after %ss waiting for %s; still running:\n%s"
                                 % (timeout, what, "\n".join(self.describe(last.get("pids", [])))))

    def describe(self, pids):
        return ["%d %s %s" % (p, proc_comm(p), " ".join(proc_cmdline(p))[:200]) for p in pids]

    def sanitizer_reports(self):
        """Sanitizer reports written by detached supervisors (their stderr
        goes to STATE_DIR/NAME.out; they are not our children, so their exit
        status is never seen)."""
        out = []
        if not os.path.isdir(self.state_dir):
            return out
        for fn in sorted(os.listdir(self.state_dir)):
            if not fn.endswith(".out"):
                continue
            try:
                with open(os.path.join(self.state_dir, fn), errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            report = sanitizer_report(text)
            if report:
                out.append("%s: %s" % (fn, report))
        return out

    def teardown(self):
        """Stop everything: `down`, then end leftovers by pid."""
        for p in self.children:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        if os.path.exists(self.bin) and os.path.exists(self.config):
            try:
                self.run("down", timeout=20)
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        self._note_pids()
        leftovers = set(self.our_processes())
        for p in self.seen_pids:
            if proc_alive(p) and (self.mark.encode() in proc_environ(p)
                                  or any(self.tmp in a for a in proc_cmdline(p))):
                leftovers.add(p)
        for p in leftovers:
            kill_pid(p, signal.SIGKILL)
        return leftovers


def parse_ts(ts):
    """Parse an ISO 8601 UTC timestamp ending in Z into an aware datetime."""
    assert ts.endswith("Z"), ts
    body = ts[:-1]
    if "." in body:
        main, frac = body.split(".")
        frac = (frac + "000000")[:6]
        body = main + "." + frac
        fmt = "%Y-%m-%dT%H:%M:%S.%f"
    else:
        fmt = "%Y-%m-%dT%H:%M:%S"
    return datetime.datetime.strptime(body, fmt).replace(tzinfo=datetime.timezone.utc)


def index_after(names, event, start):
    for i in range(start, len(names)):
        if names[i] == event:
            return i
    return None

