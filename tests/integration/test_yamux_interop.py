"""Yamux interop: devbridge's C session (tests/yamux/yamux_peer.c) against
hashicorp/yamux (Debian's 2019 snapshot, tests/yamux/gopeer) and yamux-js
0.2.0 (tests/yamux/jspeer.js), all three speaking tests/yamux/PEER.md.

Each test runs both ways where the other implementation can express it:
the C peer as client against the Go peer as server, and the other way.
Peers listen on ports from the kernel (--listen 127.0.0.1:0, the
"listening" event), and every peer a test starts is killed and waited for
by pid.  Waiting is always for an event or a state, with a deadline.

The Go snapshot (0.0+git20190923) cannot half-close a stream and then read
(reads return EOF after a local Close), has no reset or refuse call (the Go
peer adds them on the frames, tests/yamux/gopeer/wire.go) and no open
timeout.  yamux-js mishandles FIN (it never sees one) and compares flags
exactly (a frame with two flags is taken for none), and loses bytes of a
frame split over two TCP reads: with it only open, (small) data, reset and
ping are tested, never FIN or combined flags.

Needs: the C peer (yamux-peer beside $DEVBRIDGE_BIN), Debian's golang-go and
golang-github-hashicorp-yamux-dev, node and `npm ci --prefix tests/yamux`
(scripts/install-deps.sh).  A missing one fails the test, never skips it.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib

import pytest

import helpers

REPO = helpers.REPO_ROOT
YAMUX_DIR = os.path.join(REPO, "tests", "yamux")
MiB = 1024 * 1024
WINDOW = 256 * 1024


# --------------------------------------------------------------------------
# the three implementations


@pytest.fixture(scope="session")
def c_peer_bin():
    # YAMUX_PEER_C: another binary to test in the C peer's place.
    path = os.environ.get("YAMUX_PEER_C") or os.path.join(
        os.path.dirname(os.path.abspath(helpers.devbridge_bin())), "yamux-peer")
    assert os.path.isfile(path) and os.access(path, os.X_OK), (
        "C Yamux test peer not found at %s: it is built by meson beside devbridge "
        "(ninja -C build-asan), or set DEVBRIDGE_BIN" % path)
    return path


@pytest.fixture(scope="session")
def go_peer_bin(tmp_path_factory):
    script = os.path.join(YAMUX_DIR, "build-gopeer.sh")
    out = tmp_path_factory.mktemp("gopeer")
    proc = subprocess.run(["bash", script, str(out)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, (
        "building the Go Yamux peer failed (needs golang-go and "
        "golang-github-hashicorp-yamux-dev: scripts/install-deps.sh):\n" + proc.stderr)
    path = proc.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), "build-gopeer.sh printed %r" % path
    return path


@pytest.fixture(scope="session")
def js_peer_cmd():
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node not found (apt-get install nodejs: scripts/install-deps.sh)"
    lib = os.path.join(YAMUX_DIR, "node_modules", "yamux-js", "package.json")
    assert os.path.isfile(lib), (
        "yamux-js is not installed: npm ci --prefix tests/yamux (scripts/install-deps.sh)")
    with open(lib) as f:
        version = json.load(f)["version"]
    assert version == "0.2.0", "tests/yamux/node_modules has yamux-js %s, want 0.2.0" % version
    return [node, os.path.join(YAMUX_DIR, "jspeer.js")]


@pytest.fixture
def impls(c_peer_bin, go_peer_bin):
    return {"c": [c_peer_bin], "go": [go_peer_bin]}


# --------------------------------------------------------------------------
# a running peer


class Peer:
    """One peer process: JSON events from stdout (read by a thread), stdin
    commands, stderr in a file."""

    def __init__(self, kind, argv, logdir, name):
        self.kind = kind
        self.name = name
        self.argv = argv
        self.errpath = os.path.join(logdir, "%s.stderr" % name)
        self.errfile = open(self.errpath, "w")
        self.events = []
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errfile, text=True, bufsize=1,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, daemon=True, name=name)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                try:
                    ev = json.loads(line)
                except ValueError:
                    ev = {"event": "?", "line": line}
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def stderr(self, limit=3000):
        try:
            with open(self.errpath, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        return text[-limit:]

    def describe(self):
        return "%s (%s) pid %d rc %r\n  argv: %s\n  stdout: %s\n  stderr tail:\n%s" % (
            self.name, self.kind, self.pid, self.proc.poll(), " ".join(self.argv),
            "".join(self.lines)[-2000:], self.stderr())

    def wait_event(self, name, timeout=10, since=0, pred=None):
        """The first event `name` (at index >= since) for which pred holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.events):
                    ev = self.events[i]
                    i += 1
                    if ev.get("event") == name and (pred is None or pred(ev)):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    break
                self.cond.wait(left)
        raise AssertionError("no %r event within %.1fs from %s" % (name, timeout, self.describe()))

    def mark(self):
        with self.cond:
            return len(self.events)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stats(self, timeout=5):
        i = self.mark()
        self.send("stats")
        return self.wait_event("stats", timeout, since=i)

    def wait_stats(self, pred, timeout, what):
        """Poll `stats` until pred(stats) holds."""
        last = [None]

        def check():
            last[0] = self.stats()
            return pred(last[0])
        try:
            helpers.wait_for(check, timeout, what, interval=0.05)
        except AssertionError as exc:
            raise AssertionError("%s: last stats %r\n%s" % (exc, last[0], self.describe()))
        return last[0]

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("did not exit within %.1fs: %s" % (timeout, self.describe()))

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        self.errfile.close()


@pytest.fixture
def spawn(tmp_path, impls):
    started = []

    def start(kind, *args, name=None, argv=None):
        cmd = (argv or impls[kind]) + [str(a) for a in args]
        peer = Peer(kind, cmd, str(tmp_path), name or "%s-%d" % (kind, len(started)))
        started.append(peer)
        return peer

    yield start
    reports = []
    for peer in started:
        peer.kill()
        rep = helpers.sanitizer_report(peer.stderr(limit=10 ** 6))
        if rep or peer.proc.returncode in (86, 87):
            reports.append("%s: rc %r\n%s" % (peer.name, peer.proc.returncode, rep))
    assert not reports, "sanitizer report from a peer:\n" + "\n".join(reports)


def listen(spawn, kind, *args, name=None, argv=None):
    peer = spawn(kind, "--listen", "127.0.0.1:0", *args, name=name or kind + "-server", argv=argv)
    port = peer.wait_event("listening")["port"]
    return peer, port


def forwarding_port(peer):
    return peer.wait_event("forwarding")["port"]


def connect(spawn, kind, port, *args, name=None, argv=None):
    peer = spawn(kind, "--connect", "127.0.0.1:%d" % port, *args, name=name or kind + "-client",
                 argv=argv)
    return peer


def check_closed_clean(peer, timeout=10):
    """The peer reports the session's end and exits 0."""
    peer.wait_event("closed", timeout)
    assert peer.wait_exit(timeout) == 0, peer.describe()


# --------------------------------------------------------------------------
# TCP helpers


def tcp(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_to_eof(s):
    buf = bytearray()
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk


def echo_roundtrip(s, data):
    """Send data, read the same number of bytes back (while sending)."""
    out = {}

    def reader():
        try:
            out["data"] = recv_exact(s, len(data))
        except Exception as exc:  # noqa: BLE001 - reported below
            out["error"] = exc
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    s.sendall(data)
    t.join(30)
    assert not t.is_alive(), "echo not read back within 30 s"
    if "error" in out:
        raise out["error"]
    return out["data"]


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def expect_refused(port, what):
    """A TCP connection to `port` is reset or closed with no data at all."""
    try:
        s = tcp(port, timeout=10)
    except ConnectionResetError:
        return  # reset as soon as accepted
    try:
        try:
            s.sendall(b"hello?")
            data = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return
        assert data == b"", "%s: got data %r from a refused stream" % (what, data[:100])
    finally:
        s.close()


def pattern(seed, n):
    """n bytes of a stream's own pattern (fast, deterministic)."""
    block = bytearray()
    i = 0
    while len(block) < 65536:
        block += zlib.crc32(b"%d:%d" % (seed, i)).to_bytes(4, "little")
        i += 1
    block = bytes(block)
    return (block * (n // len(block) + 1))[:n]


# both ways: (client, server)
BOTH_WAYS = [("go", "c"), ("c", "go")]


def ids(pair):
    return "%s-client-%s-server" % pair


# --------------------------------------------------------------------------
# concurrent streams, each echoing 1 MiB


@pytest.mark.parametrize("streams", [1, 16, 256])
@pytest.mark.parametrize("pair", BOTH_WAYS, ids=ids)
def test_check_echo(spawn, pair, streams):
    cli, srv = pair
    server, port = listen(spawn, srv, "--accept", "echo")
    client = connect(spawn, cli, port, "--check-echo", MiB, "--streams", streams)
    ev = client.wait_event("check", timeout=40)
    assert (ev["streams"], ev["ok"], ev["failed"]) == (streams, streams, 0), client.describe()
    assert ev["bytes"] == streams * MiB
    assert client.wait_exit(10) == 0, client.describe()
    # the server sees the session end and exits by itself
    check_closed_clean(server)


def test_burst_of_opens_beyond_the_go_backlog(spawn):
    """600 streams opened at once by the C side: hashicorp resets opens
    beyond its accept backlog (256) instead of waiting, so the C session
    keeps at most 256 opens unanswered and queues the other SYNs
    (yamux_opts.max_opening); every stream must still get its echo."""
    server, port = listen(spawn, "go", "--accept", "echo")
    client = connect(spawn, "c", port, "--check-echo", 4096, "--streams", 600)
    ev = client.wait_event("check", timeout=40)
    assert (ev["ok"], ev["failed"]) == (600, 0), client.describe()
    assert client.wait_exit(10) == 0, client.describe()


# --------------------------------------------------------------------------
# half-close: the reply after a FIN


def test_half_close_then_read_reply(spawn):
    """A TCP client of the C peer's --forward-listen half-closes; the Go
    server echoes and FINs; the TCP client reads the whole echo, then EOF.
    (Only this way: the Go snapshot cannot half-close and then read, so a Go
    --forward-listen would lose the reply.)"""
    server, port = listen(spawn, "go", "--accept", "echo")
    client = connect(spawn, "c", port, "--forward-listen", "127.0.0.1:0")
    fport = forwarding_port(client)
    client.wait_event("session")
    data = pattern(1, 3 * WINDOW + 12345)  # more than a window each way
    for _ in range(3):
        s = tcp(fport)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = recv_to_eof(s)
        finally:
            s.close()
        same = got == data
        assert same, (
            "echo after half-close: %d of %d bytes, equal: %s\n%s\n%s"
            % (len(got), len(data), got == data[:len(got)], client.describe(), server.describe()))


# --------------------------------------------------------------------------
# RST


@pytest.mark.parametrize("pair", BOTH_WAYS, ids=ids)
def test_tcp_reset_resets_the_stream(spawn, pair):
    """A TCP client of the client peer's --forward-listen closes with
    SO_LINGER 0: the stream is reset, and the server side sees the RST."""
    cli, srv = pair
    server, port = listen(spawn, srv, "--accept", "echo", "--verbose")
    client = connect(spawn, cli, port, "--forward-listen", "127.0.0.1:0")
    fport = forwarding_port(client)
    client.wait_event("session")
    s = tcp(fport)
    assert echo_roundtrip(s, b"before the reset") == b"before the reset"
    ev = server.wait_event("stream", pred=lambda e: e.get("dir") == "in")
    sid = ev["id"]
    rst_close(s)
    end = server.wait_event("stream_end", timeout=10, pred=lambda e: e.get("id") == sid)
    assert end["error"] == "ECONNRESET", server.describe()
    server.wait_stats(lambda st: st["resets_received"] >= 1, 5, "the server counts the RST")
    # the session goes on
    s2 = tcp(fport)
    try:
        assert echo_roundtrip(s2, b"after") == b"after"
    finally:
        s2.close()


@pytest.mark.parametrize("pair", BOTH_WAYS, ids=ids)
def test_refused_open_resets_the_tcp_connection(spawn, pair):
    """The server refuses every open (RST): a TCP client of the client's
    --forward-listen is reset or closed without any data."""
    cli, srv = pair
    server, port = listen(spawn, srv, "--accept", "refuse")
    client = connect(spawn, cli, port, "--forward-listen", "127.0.0.1:0")
    fport = forwarding_port(client)
    client.wait_event("session")
    for i in range(3):
        expect_refused(fport, "open %d" % i)
    client.wait_stats(lambda st: st["resets_received"] >= 3, 5, "the client counts the RSTs")
    st = server.stats()
    assert st["streams"] == 0, st


# --------------------------------------------------------------------------
# GoAway


@pytest.mark.parametrize("sender", ["c", "go"])
def test_goaway_refuses_new_opens_keeps_streams(spawn, sender):
    """Both peers open streams (each has --forward-listen, each echoes).
    After `goaway` on one side, the other side's new opens fail; the
    streams already open go on."""
    receiver = "go" if sender == "c" else "c"
    server, port = listen(spawn, sender, "--accept", "echo", "--forward-listen", "127.0.0.1:0")
    sport = forwarding_port(server)
    client = connect(spawn, receiver, port, "--accept", "echo", "--forward-listen", "127.0.0.1:0")
    cport = forwarding_port(client)
    client.wait_event("session")
    server.wait_event("session")
    old = tcp(cport)  # a stream from the receiver, before the GoAway
    try:
        assert echo_roundtrip(old, b"one") == b"one"
        server.send("goaway")
        client.wait_stats(lambda st: st["goaway_received"], 5, "the GoAway arrives")
        expect_refused(cport, "an open after the GoAway")
        assert echo_roundtrip(old, b"two" * 1000) == b"two" * 1000
        # The sender's own opens go on: a GoAway refuses the peer's opens
        # only (hashicorp's rule, and devbridge's).
        mine = tcp(sport)
        try:
            assert echo_roundtrip(mine, b"three") == b"three"
        finally:
            mine.close()
        # and the old stream still goes on
        assert echo_roundtrip(old, b"four") == b"four"
    finally:
        old.close()


# --------------------------------------------------------------------------
# keepalive


@pytest.mark.parametrize("pair", BOTH_WAYS, ids=ids)
def test_keepalive_pings_answered(spawn, pair):
    cli, srv = pair
    server, port = listen(spawn, srv, "--keepalive", 100)
    client = connect(spawn, cli, port, "--keepalive", 100)
    client.wait_event("session")
    for peer in (client, server):
        peer.wait_stats(lambda st: st["pings_answered"] >= 3 and st["pings_received"] >= 3, 5,
                        "%s: keepalive pings answered both ways" % peer.name)


@pytest.mark.parametrize("pair", [("c", "go"), ("go", "c")], ids=lambda p: "%s-pings-stopped-%s" % p)
def test_keepalive_timeout_on_stopped_peer(spawn, pair):
    """The peer stops (SIGSTOP): the pinging side ends the session with
    ETIMEDOUT within the keepalive interval + timeout."""
    pinger, stopped = pair
    server, port = listen(spawn, stopped)
    client = connect(spawn, pinger, port, "--keepalive", 100, "--keepalive-timeout", 500)
    client.wait_stats(lambda st: st["pings_answered"] >= 1, 5, "a first ping answered")
    os.kill(server.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        ev = client.wait_event("closed", timeout=5)
        elapsed = time.monotonic() - t0
        assert ev["error"] == "ETIMEDOUT", client.describe()
        assert elapsed < 3, "keepalive took %.2fs" % elapsed
        assert client.wait_exit(5) == 0
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()


# --------------------------------------------------------------------------
# a stream whose reader stalls holds back only itself


@pytest.mark.parametrize("pair", BOTH_WAYS, ids=ids)
def test_stalled_stream_stalls_only_itself(spawn, pair):
    """The server never reads a stream that starts with STALL: its sender
    gets one window through and no more, while 16 other streams echo."""
    cli, srv = pair
    server, port = listen(spawn, srv, "--accept", "stall-prefix:STALL")
    client = connect(spawn, cli, port, "--forward-listen", "127.0.0.1:0")
    fport = forwarding_port(client)
    client.wait_event("session")

    stalled = tcp(fport)
    stall_data = b"STALL" + pattern(99, MiB - 5)
    sent = {"n": 0}

    def stall_writer():
        try:
            stalled.settimeout(None)
            view = memoryview(stall_data)
            while sent["n"] < len(stall_data):
                sent["n"] += stalled.send(view[sent["n"]:sent["n"] + 65536])
        except OSError:
            pass
    wt = threading.Thread(target=stall_writer, daemon=True)
    wt.start()
    try:
        # the server has the whole window of the stalled stream, no more
        def window_full():
            st = server.stats()
            return st if st.get("bytes_in") is not None and st["bytes_in"] >= WINDOW else None
        st = helpers.wait_for(window_full, 10, "the stalled stream's window filled at the server")

        size = 256 * 1024
        results = {}

        def echo(i):
            s = tcp(fport, timeout=20)
            try:
                data = pattern(i, size)
                results[i] = echo_roundtrip(s, data) == data
            except Exception as exc:  # noqa: BLE001 - reported below
                results[i] = exc
            finally:
                s.close()
        threads = [threading.Thread(target=echo, args=(i,), daemon=True) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(results.get(i) is True for i in range(16)), (
            "echo streams beside a stalled one: %r\n%s\n%s"
            % (results, client.describe(), server.describe()))
        st = server.stats()
        stalled_in = st["bytes_in"] - 16 * size
        # One window, plus at most the prefix the server read to tell (a
        # receiver updates the window only once half of it is consumed).
        assert WINDOW <= stalled_in <= WINDOW + len(b"STALL"), (
            "the stalled stream got %d bytes to the server (window %d)" % (stalled_in, WINDOW))
        # nothing was echoed on the stalled stream
        stalled.settimeout(0.0)
        try:
            assert stalled.recv(1) == b"", "data echoed on the stalled stream"
        except BlockingIOError:
            pass
    finally:
        rst_close(stalled)


# --------------------------------------------------------------------------
# yamux-js: open, data, reset, ping only (it never sees FIN, compares flags
# exactly, loses bytes of frames split over TCP reads: see the top)


def test_js_client_open_data_against_c(spawn, js_peer_cmd):
    server, port = listen(spawn, "c", "--accept", "echo")
    client = connect(spawn, "js", port, "--check-echo", 4096, "--streams", 4, argv=js_peer_cmd)
    ev = client.wait_event("check", timeout=15)
    assert (ev["ok"], ev["failed"]) == (4, 0), client.describe() + server.describe()
    assert client.wait_exit(10) == 0, client.describe()
    check_closed_clean(server)


def test_c_client_open_data_reset_against_js(spawn, js_peer_cmd):
    """C opens (from --forward-listen) to a yamux-js echo; a TCP reset there
    resets the stream, which yamux-js sees."""
    server, port = listen(spawn, "js", "--accept", "echo", "--verbose", argv=js_peer_cmd)
    client = connect(spawn, "c", port, "--forward-listen", "127.0.0.1:0")
    fport = forwarding_port(client)
    client.wait_event("session")
    s = tcp(fport)
    data = pattern(5, 2000)
    assert echo_roundtrip(s, data) == data
    sid = server.wait_event("stream", pred=lambda e: e.get("dir") == "in")["id"]
    rst_close(s)
    end = server.wait_event("stream_end", timeout=10, pred=lambda e: e.get("id") == sid)
    assert end["error"] == "ECONNRESET"
    server.wait_stats(lambda st: st["resets_received"] >= 1 and st["streams"] == 0, 5,
                      "yamux-js dropped the reset stream")


def test_js_refuses_c_open(spawn, js_peer_cmd):
    server, port = listen(spawn, "js", "--accept", "refuse", argv=js_peer_cmd)
    client = connect(spawn, "c", port, "--forward-listen", "127.0.0.1:0")
    fport = forwarding_port(client)
    client.wait_event("session")
    expect_refused(fport, "an open yamux-js refuses")
    client.wait_stats(lambda st: st["resets_received"] >= 1, 5, "the C peer counts the RST")


def test_js_resets_stream_to_c(spawn, js_peer_cmd):
    """A TCP reset at yamux-js's --forward-listen: its RST reaches the C
    server, which ends that stream with ECONNRESET."""
    server, port = listen(spawn, "c", "--accept", "echo", "--verbose")
    client = connect(spawn, "js", port, "--forward-listen", "127.0.0.1:0", argv=js_peer_cmd)
    fport = forwarding_port(client)
    s = tcp(fport)
    assert echo_roundtrip(s, b"x" * 1000) == b"x" * 1000
    sid = server.wait_event("stream", pred=lambda e: e.get("dir") == "in")["id"]
    rst_close(s)
    end = server.wait_event("stream_end", timeout=10, pred=lambda e: e.get("id") == sid)
    assert end["error"] == "ECONNRESET", server.describe()
    server.wait_stats(lambda st: st["resets_received"] >= 1, 5, "the C peer counts the RST")


@pytest.mark.parametrize("js_side", ["client", "server"])
def test_js_ping_both_ways(spawn, js_peer_cmd, js_side):
    if js_side == "server":
        server, port = listen(spawn, "js", argv=js_peer_cmd)
        client = connect(spawn, "c", port)
    else:
        server, port = listen(spawn, "c")
        client = connect(spawn, "js", port, argv=js_peer_cmd)
    client.wait_event("session")
    server.wait_event("session")
    for a, b in ((client, server), (server, client)):
        for _ in range(3):
            i = a.mark()
            a.send("ping")
            ev = a.wait_event("ping", 5, since=i)
            assert isinstance(ev.get("rtt_us"), int) and ev["rtt_us"] >= 0, a.describe()
        b.wait_stats(lambda st: st["pings_received"] >= 3, 5, "%s answered the pings" % b.name)
        a.wait_stats(lambda st: st["pings_answered"] >= 3, 5, "%s saw the answers" % a.name)
    # a clean end: close on one side, the other reports it
    client.send("close")
    check_closed_clean(client)
    check_closed_clean(server)
