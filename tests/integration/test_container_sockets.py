"""Devcontainer bridge: host Unix sockets mirrored into containers.

The host daemon watches globs (--watch-socket) for Unix sockets and offers
each one to every registered container; the container daemon mirrors it as a
0600 listener at PREFIX/basename and relays connections to the host socket.

Network namespaces share the filesystem, so every test keeps the host's
sockets (TMP/host) and the containers' mirrors (TMP/mirror) in its own short
directory under /tmp (--container-path-prefix is limited to 64 characters
and socket paths to 107, which pytest's tmp_path may exceed).
"""

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from container_helpers import (  # noqa: F401 - sandbox is a fixture
    IP, MiB, sandbox, wait_for)

SCAN_MS = 100


# --------------------------------------------------------------------------
# host side: a threaded Unix echo server


class UnixEcho:
    """Threaded echo server listening on a Unix socket at `path`.  Echoes
    until the client half-closes, then closes.  stop() closes the listener
    and every connection and unlinks the path."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(path)
        self.lsock.listen(128)
        self.conns = set()
        self.accepted = 0
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.stopped:
                    c.close()
                    return
                self.conns.add(c)
                self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            while True:
                d = c.recv(262144)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(c)
            c.close()

    def stop(self, unlink=True):
        with self.lock:
            self.stopped = True
            conns = list(self.conns)
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        if unlink:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def plain_socket(path):
    """A bound, listening Unix socket that nobody serves (a host socket
    that only has to exist)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    return s


# --------------------------------------------------------------------------
# container side: a client run inside the namespace

CLIENT = r'''
import hashlib, json, os, socket, sys, threading
path, nconn, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def one(out, i):
    payload = os.urandom(size)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    res = {"sent": hashlib.sha256(payload).hexdigest(), "len": size}
    try:
        s.connect(path)
        err = []
        def sender():
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)  # half-close: the echo ends after this
            except OSError as exc:
                err.append(repr(exc))
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        h, got = hashlib.sha256(), 0
        while True:
            d = s.recv(262144)
            if not d:
                break
            h.update(d)
            got += len(d)
        t.join(30)
        res.update(recv=h.hexdigest(), got=got, send_error=err[0] if err else None)
    except OSError as exc:
        res["error"] = repr(exc)
    finally:
        s.close()
    out[i] = res

out = [None] * nconn
ts = [threading.Thread(target=one, args=(out, i), daemon=True) for i in range(nconn)]
for t in ts:
    t.start()
for t in ts:
    t.join(60)
print(json.dumps(out))
'''


def run_client(sb, net, i, path, nconn, size, timeout=45):
    """Connect to `path` from inside container i: nconn concurrent
    connections each sending `size` random bytes, half-closing, reading the
    echo.  Returns one result dict per connection."""
    script = sb.path("unix_client.py")
    if not os.path.exists(script):
        sb.write("unix_client.py", CLIENT)
    argv = [IP, "netns", "exec", net.ns(i), "/usr/bin/python3", script, path, str(nconn), str(size)]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=sb.env, cwd=sb.cwd, timeout=timeout)
    assert p.returncode == 0, "client in %s failed (exit %d):\n%s%s" % (
        net.ns(i), p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
    return json.loads(p.stdout)


def check_echo(results, what):
    bad = [r for r in results
           if r is None or r.get("error") or r.get("send_error")
           or r.get("got") != r.get("len") or r.get("recv") != r.get("sent")]
    assert not bad, "%s: %d of %d connections did not get their bytes back intact: %s" % (
        what, len(bad), len(results), json.dumps(bad[:5]))


# --------------------------------------------------------------------------
# fixtures and small helpers


@pytest.fixture
def sdir():
    """A short per-test directory under /tmp with host/ and mirror/.
    Requested before `sandbox`, so it is removed after the daemons stopped."""
    d = tempfile.mkdtemp(prefix="dbs", dir="/tmp")
    os.makedirs(os.path.join(d, "host"))
    os.makedirs(os.path.join(d, "mirror"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def socket_args(sdir, *globs, extra=()):
    globs = globs or (os.path.join(sdir, "host", "*.sock"),)
    a = []
    for g in globs:
        a += ["--watch-socket", g]
    return a + ["--socket-scan-interval-ms", SCAN_MS,
                "--container-path-prefix", os.path.join(sdir, "mirror")] + list(extra)


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def mirrors(sdir):
    return sorted(os.listdir(os.path.join(sdir, "mirror")))


def diag(host, cd):
    return "\nhost daemon log:\n%s\ncontainer daemon log:\n%s" % (
        host.proc.tail(2500), cd.proc.tail(2500))


def wait_mirror(path, host, cd, timeout=5, what=None):
    try:
        wait_for(lambda: is_socket(path), timeout, what or "mirror %s to appear" % path)
    except AssertionError as exc:
        raise AssertionError(str(exc) + diag(host, cd))


def wait_gone(path, host, cd, timeout=5, what=None):
    try:
        wait_for(lambda: not os.path.lexists(path), timeout, what or "mirror %s to disappear" % path)
    except AssertionError as exc:
        raise AssertionError(str(exc) + diag(host, cd))


def flush_offers(sdir, host, cd):
    """Make sure every socket the host could see so far has been offered and
    the offer handled by the container daemon: a sentinel socket created now
    is found by a scan that also saw everything already present; a second
    sentinel created after the first one's mirror appeared is offered by a
    strictly later scan, on the same ordered control connection.  The
    sentinels are removed again (and their mirrors waited away)."""
    made = []
    try:
        for n in (1, 2):
            hp = os.path.join(sdir, "host", "zz-sentinel-%d.sock" % n)
            made.append((plain_socket(hp), hp))
            wait_mirror(os.path.join(sdir, "mirror", os.path.basename(hp)), host, cd,
                        what="sentinel mirror %d" % n)
    finally:
        for s, hp in made:
            s.close()
            os.unlink(hp)
    for _, hp in made:
        wait_gone(os.path.join(sdir, "mirror", os.path.basename(hp)), host, cd,
                  what="sentinel mirror %s to go" % os.path.basename(hp))


def start_pair(sandbox, sdir, *globs, extra=()):
    # A short HOME: the container daemon keeps a Unix socket in its state
    # dir (HOME/.local/state/devbridge), which under pytest's tmp_path can
    # exceed sun_path's 108 bytes.
    home = os.path.join(sdir, "home")
    os.makedirs(home, exist_ok=True)
    sandbox.env["HOME"] = home
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr, extra=socket_args(sdir, *globs, extra=extra))
    cd = sandbox.container_daemon(net, 0, host)
    cd.wait_registered()
    return net, host, cd


# --------------------------------------------------------------------------
# tests


def test_socket_mirror_relays_data(sdir, sandbox):
    echo = UnixEcho(os.path.join(sdir, "host", "echo.sock"))
    try:
        net, host, cd = start_pair(sandbox, sdir)
        mirror = os.path.join(sdir, "mirror", "echo.sock")
        wait_mirror(mirror, host, cd, timeout=5)
        st = os.lstat(mirror)
        assert stat.S_ISSOCK(st.st_mode), "mirror %s is not a socket: mode %o" % (mirror, st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, "mirror %s has mode %03o, expected 600" % (
            mirror, stat.S_IMODE(st.st_mode))
        assert mirrors(sdir) == ["echo.sock"], mirrors(sdir)

        res = run_client(sandbox, net, 0, mirror, 1, MiB)
        check_echo(res, "1 MiB through %s" % mirror)
        res = run_client(sandbox, net, 0, mirror, 20, 64 * 1024)
        check_echo(res, "20 concurrent x 64 KiB through %s" % mirror)
        assert echo.accepted >= 21, "the host echo server saw %d connections, expected 21" % echo.accepted
    finally:
        echo.stop()


def test_socket_removed_and_recreated(sdir, sandbox):
    hpath = os.path.join(sdir, "host", "echo.sock")
    mirror = os.path.join(sdir, "mirror", "echo.sock")
    echo = UnixEcho(hpath)
    try:
        net, host, cd = start_pair(sandbox, sdir)
        wait_mirror(mirror, host, cd)
        check_echo(run_client(sandbox, net, 0, mirror, 1, 4096), "before removal")

        echo.stop()  # closes and unlinks the host socket
        assert not os.path.lexists(hpath)
        wait_gone(mirror, host, cd, timeout=5,
                  what="mirror to disappear after the host socket was removed")

        echo = UnixEcho(hpath)
        wait_mirror(mirror, host, cd, timeout=5,
                    what="mirror to reappear after the host socket was created again")
        assert stat.S_IMODE(os.lstat(mirror).st_mode) == 0o600, oct(os.lstat(mirror).st_mode)
        check_echo(run_client(sandbox, net, 0, mirror, 1, 256 * 1024), "after re-creation")
        check_echo(run_client(sandbox, net, 0, mirror, 5, 16 * 1024), "after re-creation, 5 at once")
        assert host.proc.alive() and cd.proc.alive()
    finally:
        echo.stop()


def test_socket_symlink_file_and_outside_glob_not_mirrored(sdir, sandbox):
    hostdir = os.path.join(sdir, "host")
    elsewhere = plain_socket(os.path.join(sdir, "elsewhere", "target.sock"))
    outside = plain_socket(os.path.join(sdir, "other", "outside.sock"))
    os.symlink(os.path.join(sdir, "elsewhere", "target.sock"), os.path.join(hostdir, "link.sock"))
    with open(os.path.join(hostdir, "file.sock"), "w") as f:
        f.write("not a socket\n")
    try:
        net, host, cd = start_pair(sandbox, sdir)
        flush_offers(sdir, host, cd)
        assert mirrors(sdir) == [], (
            "only sockets matching the glob may be mirrored (not symlinks, regular files or "
            "sockets outside the globs); mirrors: %s%s" % (mirrors(sdir), diag(host, cd)))
        log = host.proc.log_text()
        for name in ("link.sock", "file.sock", "outside.sock", "target.sock"):
            assert name not in log, "host daemon log mentions %s:%s" % (name, diag(host, cd))
        # the host's files are untouched
        assert os.path.islink(os.path.join(hostdir, "link.sock"))
        with open(os.path.join(hostdir, "file.sock")) as f:
            assert f.read() == "not a socket\n"
    finally:
        elsewhere.close()
        outside.close()


def test_socket_max_forwards(sdir, sandbox):
    names = ["a.sock", "b.sock", "c.sock"]
    socks = [plain_socket(os.path.join(sdir, "host", n)) for n in names]
    try:
        net, host, cd = start_pair(sandbox, sdir, extra=["--max-socket-forwards", 2])
        try:
            wait_for(lambda: len(mirrors(sdir)) >= 2, 5, "two mirrors")
        except AssertionError as exc:
            raise AssertionError("%s; mirrors: %s%s" % (exc, mirrors(sdir), diag(host, cd)))
        # Bounded observation (15 scan intervals): never more than two.
        deadline = time.monotonic() + 15 * SCAN_MS / 1000.0
        while time.monotonic() < deadline:
            m = mirrors(sdir)
            assert len(m) <= 2, "--max-socket-forwards 2, yet mirrors %s%s" % (m, diag(host, cd))
            time.sleep(0.05)
        m = mirrors(sdir)
        assert len(m) == 2 and set(m) <= set(names), m
        assert all(is_socket(os.path.join(sdir, "mirror", n)) for n in m), m
    finally:
        for s in socks:
            s.close()


def test_socket_regular_file_at_mirror_path_untouched(sdir, sandbox):
    mirror = os.path.join(sdir, "mirror", "echo.sock")
    content = "precious user data %s\n" % os.urandom(8).hex()
    with open(mirror, "w") as f:
        f.write(content)
    os.chmod(mirror, 0o644)
    before = os.lstat(mirror)
    echo = UnixEcho(os.path.join(sdir, "host", "echo.sock"))
    try:
        net, host, cd = start_pair(sandbox, sdir)
        flush_offers(sdir, host, cd)
        st = os.lstat(mirror)
        assert stat.S_ISREG(st.st_mode), "the regular file at %s was replaced: mode %o%s" % (
            mirror, st.st_mode, diag(host, cd))
        assert (st.st_ino, stat.S_IMODE(st.st_mode)) == (before.st_ino, 0o644), (before, st)
        with open(mirror) as f:
            assert f.read() == content, "the file's content changed"
        assert mirrors(sdir) == ["echo.sock"], mirrors(sdir)
        assert cd.proc.alive(), cd.proc.tail()
    finally:
        echo.stop()
    # The withdrawal (host socket gone) must not remove the user's file either.
    flush_offers(sdir, host, cd)
    with open(mirror) as f:
        assert f.read() == content, "the file's content changed after the socket was withdrawn"


def test_socket_double_star_glob(sdir, sandbox):
    deep = os.path.join(sdir, "host", "a", "b", "deep.sock")
    os.makedirs(os.path.dirname(deep))
    echo = UnixEcho(deep)
    try:
        net, host, cd = start_pair(sandbox, sdir, os.path.join(sdir, "host", "**", "*.sock"))
        mirror = os.path.join(sdir, "mirror", "deep.sock")
        wait_mirror(mirror, host, cd, timeout=5)
        assert stat.S_IMODE(os.lstat(mirror).st_mode) == 0o600
        check_echo(run_client(sandbox, net, 0, mirror, 2, 128 * 1024), "through the ** mirror")
    finally:
        echo.stop()


def test_socket_mirrors_removed_when_container_daemon_stops(sdir, sandbox):
    socks = [plain_socket(os.path.join(sdir, "host", n)) for n in ("one.sock", "two.sock")]
    try:
        net, host, cd = start_pair(sandbox, sdir)
        paths = [os.path.join(sdir, "mirror", n) for n in ("one.sock", "two.sock")]
        for p in paths:
            wait_mirror(p, host, cd)
        problems = cd.proc.terminate()  # SIGTERM; exit 0, no sanitizer report
        assert not problems, "\n".join(problems)
        left = [p for p in paths if os.path.lexists(p)]
        assert not left, "mirrors left behind by the container daemon after SIGTERM: %s%s" % (
            left, diag(host, cd))
        assert host.proc.alive(), host.proc.tail()
    finally:
        for s in socks:
            s.close()


def test_socket_mirror_follows_host_daemon(sdir, sandbox):
    echo = UnixEcho(os.path.join(sdir, "host", "echo.sock"))
    try:
        net, host, cd = start_pair(sandbox, sdir)
        mirror = os.path.join(sdir, "mirror", "echo.sock")
        wait_mirror(mirror, host, cd)

        host.stop()  # the host connection drops -> the mirror goes
        wait_gone(mirror, host, cd, timeout=5, what="mirror to go when the host daemon stopped")
        assert cd.proc.alive(), cd.proc.tail()

        # a new host daemon: the container registers again and gets it re-offered
        host2 = sandbox.host_daemon(net.host_addr, cp=host.cp, dp=host.dp, state_dir=host.state_dir,
                                    extra=socket_args(sdir))
        cd.host = host2
        cd.wait_registered(timeout=15)
        wait_mirror(mirror, host2, cd, timeout=5, what="mirror re-offered after the new Register")
        check_echo(run_client(sandbox, net, 0, mirror, 1, 64 * 1024), "after the host restart")
    finally:
        echo.stop()
