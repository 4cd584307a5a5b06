"""Yamux on the wire: a raw Python peer (12-byte headers packed by hand)
against the C test peer `yamux-peer` (tests/yamux/PEER.md), over loopback.

Each test plays one side of one session frame by frame and asserts what the
C side puts on the wire and what it reports on stdout: the ACK of an open
and the echo of data sent before it, the ids and opening frames of its own
opens, window sizes and updates, the errors that end a session (GoAway 1,
EPROTO), what a GoAway does, the backlog, the open and keepalive timeouts,
FIN/RST on WindowUpdate frames and half-close.

"Nothing else was sent" is checked with a Ping: the C session answers
frames in order, so what it queued before reading our Ping is on the wire
before the Ping's ACK.  Every wait has a deadline; every process is ended
by its pid.
"""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from helpers import sanitizer_report, wait_for

DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8
WIN = 256 * 1024
DEADLINE = 10.0
TYPE_NAMES = {DATA: "data", WINDOW_UPDATE: "wu", PING: "ping", GO_AWAY: "goaway"}


def yamux_peer_bin():
    base = os.environ.get("DEVBRIDGE_BIN") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "build", "devbridge")
    return os.path.join(os.path.dirname(base), "yamux-peer")


def hdr(typ, flags, sid, length, version=0):
    return struct.pack(">BBHII", version, typ, flags, sid, length)


class Frame:
    def __init__(self, version, typ, flags, sid, length, payload=b""):
        self.version, self.type, self.flags, self.id, self.length = version, typ, flags, sid, length
        self.payload = payload

    def __repr__(self):
        return "Frame(%s flags=%#x id=%d length=%d%s)" % (
            TYPE_NAMES.get(self.type, self.type), self.flags, self.id, self.length,
            " payload=%r" % self.payload[:32] if self.payload else "")


class Closed(Exception):
    pass


class Raw:
    """The Python end of a Yamux connection."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.ping_seq = 0x5eed0000

    def send(self, typ, flags, sid, length, payload=b"", version=0):
        self.sock.sendall(hdr(typ, flags, sid, length, version) + payload)

    def data(self, flags, sid, payload):
        self.send(DATA, flags, sid, len(payload), payload)

    def _fill(self, deadline):
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise AssertionError("no frame within the deadline; have %d bytes" % len(self.buf))
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk

    def frame(self, timeout=DEADLINE):
        """The next frame; Closed on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 12:
                v, t, f, i, n = struct.unpack(">BBHII", self.buf[:12])
                need = 12 + (n if t == DATA else 0)
                if len(self.buf) >= need:
                    fr = Frame(v, t, f, i, n, self.buf[12:need] if t == DATA else b"")
                    self.buf = self.buf[need:]
                    assert v == 0, fr
                    return fr
            if self.eof:
                raise Closed("EOF with %d bytes of a frame" % len(self.buf))
            self._fill(deadline)

    def expect(self, typ, flags, sid, length=None):
        fr = self.frame()
        assert (fr.type, fr.flags, fr.id) == (typ, flags, sid), fr
        if length is not None:
            assert fr.length == length, fr
        return fr

    def quiet(self):
        """Ping; the ACK must be the next frame (nothing else was sent)."""
        self.ping_seq += 1
        self.send(PING, SYN, 0, self.ping_seq)
        self.expect(PING, ACK, 0, self.ping_seq)

    def until_ping_ack(self):
        """Ping; every frame before its ACK."""
        self.ping_seq += 1
        self.send(PING, SYN, 0, self.ping_seq)
        out = []
        while True:
            fr = self.frame()
            if (fr.type, fr.flags, fr.length) == (PING, ACK, self.ping_seq):
                return out
            out.append(fr)

    def wait_closed(self, timeout=DEADLINE):
        """Frames until the connection ends."""
        out = []
        while True:
            try:
                out.append(self.frame(timeout))
            except Closed:
                return out

    def read_data(self, sid, n, grant=True):
        """n payload bytes of Data on sid (granting window as they come);
        returns (bytes, flags or'ed)."""
        got, flags, ungranted = b"", 0, 0
        while len(got) < n:
            fr = self.frame()
            if fr.type == WINDOW_UPDATE and fr.id == sid and not fr.flags & (FIN | RST):
                continue  # the peer's updates for what we send
            assert fr.type == DATA and fr.id == sid, fr
            got += fr.payload
            flags |= fr.flags
            ungranted += fr.length
            if grant and ungranted >= WIN // 2:
                self.send(WINDOW_UPDATE, 0, sid, ungranted)
                ungranted = 0
        assert len(got) == n, (len(got), n)
        return got, flags


class Peer:
    """A running yamux-peer: stdout events collected by a thread."""

    def __init__(self, args, tmp_path):
        self.args = [yamux_peer_bin()] + args
        self.events = []
        self.lock = threading.Lock()
        self.stderr_path = str(tmp_path / ("peer-%d.err" % id(self)))
        self.err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err)
        self.pid = self.proc.pid
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "bad-line", "line": line.decode(errors="replace")}
            with self.lock:
                self.events.append(ev)

    def find(self, name, **kv):
        with self.lock:
            for ev in self.events:
                if ev.get("event") == name and all(ev.get(k) == v for k, v in kv.items()):
                    return ev
        return None

    def wait(self, name, timeout=DEADLINE, **kv):
        return wait_for(lambda: self.find(name, **kv) or self.exited_early(name), timeout,
                        "yamux-peer event %s %r (events: %r, stderr: %s)"
                        % (name, kv, self.events, self.stderr()))

    def exited_early(self, name):
        if self.proc.poll() is not None:
            self.thread.join(2)
            ev = self.find(name)
            if ev:
                return ev
            raise AssertionError("yamux-peer exited %s before %s; events %r; stderr:\n%s"
                                 % (self.proc.returncode, name, self.events, self.stderr()))
        return None

    def command(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_exit(self, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("yamux-peer did not exit; stderr:\n" + self.stderr())
            try:
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.returncode

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF on stdin is "quit"
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.thread.join(2)
        self.err.close()


@pytest.fixture
def peers(tmp_path):
    started = []

    def start(*args):
        p = Peer(list(args), tmp_path)
        started.append(p)
        return p

    assert os.access(yamux_peer_bin(), os.X_OK), "yamux-peer not built at " + yamux_peer_bin()
    yield start
    reports = []
    for p in started:
        p.stop()
        rep = sanitizer_report(p.stderr())
        if rep or p.proc.returncode in (86, 87):
            reports.append("%r exited %s:\n%s" % (p.args, p.proc.returncode, rep or p.stderr()))
    assert not reports, "\n".join(reports)


@pytest.fixture
def socks():
    opened = []

    def track(s):
        opened.append(s)
        return s

    yield track
    for s in opened:
        s.close()


def connect(port, track):
    s = track(socket.create_connection(("127.0.0.1", port), timeout=DEADLINE))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def c_server(peers, socks, *args):
    """yamux-peer --listen; we are the client (odd ids)."""
    p = peers("--listen", "127.0.0.1:0", *args)
    port = p.wait("listening")["port"]
    raw = Raw(connect(port, socks))
    p.wait("session")
    return p, raw


def c_client(peers, socks, *args):
    """yamux-peer --connect to our listener; we are the server."""
    ls = socks(socket.socket())
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(DEADLINE)
    p = peers("--connect", "127.0.0.1:%d" % ls.getsockname()[1], *args)
    conn, _ = ls.accept()
    socks(conn)
    p.wait("session")
    return p, Raw(conn)


def open_syn(raw, sid, delta=0):
    raw.send(WINDOW_UPDATE, SYN, sid, delta)


def tcp_closed(s, timeout=DEADLINE):
    """The TCP connection ends (EOF or reset) within the timeout, nothing
    read before that; True."""
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        return True
    assert data == b"", data
    return True


def recv_exact(s, n, timeout=DEADLINE):
    s.settimeout(timeout)
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "EOF after %d of %d bytes" % (len(out), n)
        out += chunk
    return out


# --------------------------------------------------------------------------
# opens and ACKs


def test_server_acks_syn_and_echoes_early_data(peers, socks):
    p, raw = c_server(peers, socks)
    open_syn(raw, 1)
    raw.data(0, 1, b"sent before the ACK")
    raw.expect(WINDOW_UPDATE, ACK, 1, 0)
    got, flags = raw.read_data(1, 19)
    assert got == b"sent before the ACK"
    assert flags & ACK == 0  # ACK once
    raw.send(WINDOW_UPDATE, FIN, 1, 0)
    fr = raw.frame()
    assert fr.id == 1 and fr.flags & FIN and not fr.flags & RST, fr
    raw.quiet()  # both FINs: the stream goes without RST
    # Data|SYN opens too
    raw.data(SYN, 3, b"xyz")
    raw.expect(WINDOW_UPDATE, ACK, 3, 0)
    assert raw.read_data(3, 3)[0] == b"xyz"


def test_opens_are_window_update_syn_odd_for_client(peers, socks):
    p, raw = c_client(peers, socks, "--forward-listen", "127.0.0.1:0")
    fport = p.wait("forwarding")["port"]
    for sid in (1, 3, 5):
        connect(fport, socks)
        raw.expect(WINDOW_UPDATE, SYN, sid, 0)


def test_opens_even_for_server(peers, socks):
    p, raw = c_server(peers, socks, "--forward-listen", "127.0.0.1:0")
    fport = p.wait("forwarding")["port"]
    for sid in (2, 4, 6):
        connect(fport, socks)
        raw.expect(WINDOW_UPDATE, SYN, sid, 0)


def test_large_window_in_opening_delta(peers, socks):
    w = 1024 * 1024
    p, raw = c_client(peers, socks, "--forward-listen", "127.0.0.1:0", "--window", str(w))
    t = connect(p.wait("forwarding")["port"], socks)
    raw.expect(WINDOW_UPDATE, SYN, 1, w - WIN)
    raw.send(WINDOW_UPDATE, ACK, 1, 0)
    # that much may come in one frame, unread by the TCP side yet
    blob = os.urandom(w)
    raw.data(0, 1, blob)
    assert recv_exact(t, w) == blob
    ups = raw.until_ping_ack()  # what it read is given back as deltas
    assert all((f.type, f.flags, f.id) == (WINDOW_UPDATE, 0, 1) and f.length >= w // 2
               for f in ups), ups
    assert sum(f.length for f in ups) <= w, ups
    p2, raw2 = c_server(peers, socks, "--window", str(w))
    open_syn(raw2, 1)
    raw2.expect(WINDOW_UPDATE, ACK, 1, w - WIN)


# --------------------------------------------------------------------------
# flow control


def test_window_update_once_half_consumed(peers, socks):
    p, raw = c_server(peers, socks, "--accept", "discard")
    open_syn(raw, 1)
    raw.expect(WINDOW_UPDATE, ACK, 1, 0)
    raw.data(0, 1, b"a" * (WIN // 2 - 1))
    raw.quiet()
    raw.data(0, 1, b"b")
    raw.expect(WINDOW_UPDATE, 0, 1, WIN // 2)
    raw.data(0, 1, b"c" * (WIN // 2))
    raw.expect(WINDOW_UPDATE, 0, 1, WIN // 2)
    # the whole window again, in one frame: updates add up
    raw.data(0, 1, b"d" * WIN)
    frames = [raw.frame()]
    total = frames[0].length
    while total < WIN:
        frames.append(raw.frame())
        total += frames[-1].length
    assert all((f.type, f.flags, f.id) == (WINDOW_UPDATE, 0, 1) for f in frames), frames
    assert total == WIN, frames
    raw.quiet()


def test_send_window_deltas_add(peers, socks):
    p, raw = c_client(peers, socks, "--forward-listen", "127.0.0.1:0")
    t = connect(p.wait("forwarding")["port"], socks)
    raw.expect(WINDOW_UPDATE, SYN, 1, 0)
    raw.send(WINDOW_UPDATE, ACK, 1, 0)
    t.sendall(os.urandom(WIN + 5000))
    got, _ = raw.read_data(1, WIN, grant=False)
    raw.quiet()  # the window is used up
    raw.send(WINDOW_UPDATE, 0, 1, 1000)
    raw.read_data(1, 1000, grant=False)
    raw.quiet()
    raw.send(WINDOW_UPDATE, 0, 1, 1500)
    raw.send(WINDOW_UPDATE, 0, 1, 2500)
    raw.read_data(1, 4000, grant=False)
    raw.quiet()


def test_data_beyond_window_goaway_protocol(peers, socks):
    p, raw = c_server(peers, socks, "--accept", "hold")
    open_syn(raw, 1)
    raw.data(0, 1, b"x" * (WIN + 1))
    frames = raw.wait_closed()
    assert [(f.type, f.id, f.length) for f in frames if f.type == GO_AWAY] == [(GO_AWAY, 0, 1)], \
        frames
    assert frames[-1].type == GO_AWAY, frames
    p.wait("closed", error="EPROTO")
    assert p.wait_exit() == 0


def test_one_frame_of_the_whole_window(peers, socks):
    p, raw = c_server(peers, socks)
    blob = os.urandom(WIN)
    open_syn(raw, 1)
    raw.data(0, 1, blob)
    raw.expect(WINDOW_UPDATE, ACK, 1, 0)
    got, _ = raw.read_data(1, WIN)
    assert got == blob
    raw.quiet()
    assert p.find("closed") is None


# --------------------------------------------------------------------------
# what ends a session, what does not


def test_unknown_stream_data_discarded(peers, socks):
    p, raw = c_server(peers, socks)
    raw.data(0, 99, b"nobody home")
    raw.send(WINDOW_UPDATE, 0, 101, 4096)
    raw.quiet()
    open_syn(raw, 1)
    raw.data(0, 1, b"still here")
    raw.expect(WINDOW_UPDATE, ACK, 1, 0)
    assert raw.read_data(1, 10)[0] == b"still here"
    assert p.find("closed") is None


def test_duplicate_syn_ends_session(peers, socks):
    p, raw = c_server(peers, socks)
    open_syn(raw, 1)
    raw.expect(WINDOW_UPDATE, ACK, 1, 0)
    open_syn(raw, 1)
    frames = raw.wait_closed()
    assert [f.length for f in frames if f.type == GO_AWAY] == [1], frames
    p.wait("closed", error="EPROTO")
    assert p.wait_exit() == 0


def test_bad_version_goaway_protocol(peers, socks):
    p, raw = c_server(peers, socks)
    raw.send(WINDOW_UPDATE, SYN, 1, 0, version=1)
    frames = raw.wait_closed()
    assert [(f.type, f.length) for f in frames] == [(GO_AWAY, 1)], frames
    p.wait("closed", error="EPROTO")


def test_ping_answered_same_value(peers, socks):
    p, raw = c_server(peers, socks)
    for v in (0, 1, 0xdeadbeef, 0xffffffff):
        raw.send(PING, SYN, 0, v)
        raw.expect(PING, ACK, 0, v)
    p.command("stats")
    assert p.wait("stats")["pings_received"] == 4


def test_keepalive_unanswered_ends_etimedout(peers, socks):
    p, raw = c_client(peers, socks, "--keepalive", "100", "--keepalive-timeout", "400")
    fr = raw.expect(PING, SYN, 0)
    raw.send(PING, ACK, 0, fr.length)  # the first one answered
    raw.expect(PING, SYN, 0)  # the next one is not
    t0 = time.monotonic()
    frames = raw.wait_closed()
    assert all(f.type in (PING, GO_AWAY) for f in frames), frames
    p.wait("closed", error="ETIMEDOUT")
    assert time.monotonic() - t0 < 5
    assert p.wait_exit() == 0


def test_goaway_normal_refuses_new_opens_only(peers, socks):
    p, raw = c_client(peers, socks, "--forward-listen", "127.0.0.1:0")
    fport = p.wait("forwarding")["port"]
    a = connect(fport, socks)
    raw.expect(WINDOW_UPDATE, SYN, 1, 0)
    raw.send(WINDOW_UPDATE, ACK, 1, 0)
    raw.send(GO_AWAY, 0, 0, 0)
    raw.quiet()
    b = connect(fport, socks)
    assert tcp_closed(b)
    raw.quiet()  # no SYN for b
    # a goes on both ways
    raw.data(0, 1, b"to a")
    assert recv_exact(a, 4) == b"to a"
    a.sendall(b"from a")
    assert raw.read_data(1, 6)[0] == b"from a"
    p.command("stats")
    st = p.wait("stats")
    assert st["goaway_received"] in (True, 1), st
    assert p.find("closed") is None


def test_goaway_protocol_received_econnaborted(peers, socks):
    p, raw = c_client(peers, socks)
    raw.send(GO_AWAY, 0, 0, 1)
    p.wait("closed", error="ECONNABORTED")
    raw.wait_closed()
    assert p.wait_exit() == 0


# --------------------------------------------------------------------------
# backlog, timeouts, FIN/RST, half-close


def test_backlog_full_rst(peers, socks):
    p, raw = c_server(peers, socks, "--accept", "hold", "--backlog", "4")
    for i in range(5):
        open_syn(raw, 1 + 2 * i)
    fr = raw.frame()
    assert fr.id == 9 and fr.flags & RST and not fr.flags & ACK, fr
    raw.quiet()
    p.command("stats")
    st = p.wait("stats")
    assert st["pending"] == 4, st


def test_open_not_acked_reset(peers, socks):
    p, raw = c_client(peers, socks, "--forward-listen", "127.0.0.1:0", "--open-timeout", "300")
    t = connect(p.wait("forwarding")["port"], socks)
    t0 = time.monotonic()
    raw.expect(WINDOW_UPDATE, SYN, 1, 0)
    fr = raw.frame()
    assert fr.id == 1 and fr.flags & RST, fr
    assert time.monotonic() - t0 >= 0.25
    assert tcp_closed(t)
    raw.quiet()
    assert p.find("closed") is None


def test_fin_and_rst_on_window_update(peers, socks):
    p, raw = c_server(peers, socks, "--verbose")
    open_syn(raw, 1)
    raw.data(0, 1, b"abc")
    raw.send(WINDOW_UPDATE, FIN, 1, 0)
    raw.expect(WINDOW_UPDATE, ACK, 1, 0)
    got, flags = b"", 0
    while not flags & FIN:
        fr = raw.frame()
        assert fr.id == 1 and not fr.flags & RST, fr
        got += fr.payload
        flags |= fr.flags
    assert got == b"abc"
    open_syn(raw, 3)
    raw.expect(WINDOW_UPDATE, ACK, 3, 0)
    raw.send(WINDOW_UPDATE, RST, 3, 0)
    p.wait("stream_end", id=3, error="ECONNRESET")
    raw.quiet()  # nothing back for a reset stream
    p.command("stats")
    assert p.wait("stats")["resets_received"] == 1


def test_half_closed_stream_keeps_sending(peers, socks):
    p, raw = c_client(peers, socks, "--forward-listen", "127.0.0.1:0")
    t = connect(p.wait("forwarding")["port"], socks)
    raw.expect(WINDOW_UPDATE, SYN, 1, 0)
    raw.send(WINDOW_UPDATE, ACK, 1, 0)
    t.sendall(b"request")
    t.shutdown(socket.SHUT_WR)
    got, flags = b"", 0
    while not flags & FIN:
        fr = raw.frame()
        assert fr.id == 1 and not fr.flags & RST, fr
        got += fr.payload
        flags |= fr.flags
    assert got == b"request"
    # the other way goes on after their FIN: more than a window of it
    blob = os.urandom(WIN + WIN // 2)
    raw.data(0, 1, blob[:WIN])
    raw.expect(WINDOW_UPDATE, 0, 1)  # only once the TCP side has read
    t.settimeout(DEADLINE)
    first = recv_exact(t, WIN)
    raw.data(0, 1, blob[WIN:])
    raw.send(WINDOW_UPDATE, FIN, 1, 0)
    rest = b""
    while True:
        chunk = t.recv(65536)
        if not chunk:
            break
        rest += chunk
    assert first + rest == blob
    # the stream is done both ways: no RST
    for fr in raw.until_ping_ack():
        assert fr.type == WINDOW_UPDATE and not fr.flags & RST, fr
