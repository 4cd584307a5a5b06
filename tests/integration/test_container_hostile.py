"""Devcontainer bridge: hostile and broken peers against the host daemon.
Whatever one peer does, the daemon lives and every other container keeps
its forwards."""

import array
import hashlib
import fcntl
import json
import os
import re
import socket
import subprocess
import termios
import time

from container_helpers import (  # noqa: F401 - sandbox is a fixture
    TOKEN, can_connect, forward_msg, random_port_block, read_closed, roundtrip, sandbox,
    wait_for)

CTL_MAX_OUT = 1024 * 1024  # src/container/ctl.h
PONG = b'{"type":"Pong"}\n'
SIOCOUTQ = 0x5411  # TIOCOUTQ: bytes we sent that the peer has not acked


def _ioctl_int(sock, req):
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), req, buf, True)
    return buf[0]


def _host_queues(host_port, peer_port):
    """(Recv-Q, Send-Q) of the host daemon's end of our connection."""
    out = subprocess.run(["ss", "-tnH", "state", "established", "( sport = :%d and dport = :%d )"
                          % (host_port, peer_port)], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True).stdout.split()
    assert len(out) >= 2, "ss found no such connection: %r" % out
    return int(out[0]), int(out[1])


def _settled_backlog(fake, cp):
    """Bytes the host wrote to the kernel that we have not read, once the
    host has read everything we sent and nothing moves any more."""
    me = fake.sock.getsockname()[1]
    last = None

    def settled():
        nonlocal last
        host_rq, host_sq = _host_queues(cp, me)
        now = (_ioctl_int(fake.sock, SIOCOUTQ), host_rq, host_sq,
               _ioctl_int(fake.sock, termios.FIONREAD))
        same = now == last and now[0] == 0 and now[1] == 0
        last = now
        return now if same else None
    got = wait_for(settled, 10, "the control connection's queues to settle", interval=0.1)
    return got[2] + got[3]


def test_container_hostile_peer_stops_reading(sandbox):
    """REVIEW item 3: a registered container stops reading; the host's
    output queue is filled to just below its cap, then a client connects to
    the container's forward, so that exactly the ConnectRequest overflows.
    That used to free the client twice (ASan: heap-use-after-free; release:
    SIGSEGV, taking every other container's forwards with it)."""
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr, heartbeat_ms=3600000)
    port_b = random_port_block(1)
    sandbox.echo_server(net, 0, port_b)
    good = sandbox.container_daemon(net, 0, host)
    hp_b = good.wait_forward(port_b)

    # The stuck container: a tiny receive buffer, registered, one forward.
    stuck = sandbox.fake(host, connect=False)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((host.bind_addr, host.cp))
    stuck.sock = s
    assert stuck.register().get("success") is True
    port_a = port_b + 1
    ack = stuck.forward(port_a)
    hp_a = ack["host_port"]
    # (no probe connection: its ConnectRequest would go unread)
    assert ack.get("success"), ack
    wait_for(lambda: host.forward(stuck.container_id, port_a), 5, "the forward in the state file")
    assert not stuck.buf, "unread bytes left over: %r" % stuck.buf

    # From here on the stuck container never reads.  Each Ping queues one
    # Pong; the kernel takes what it can, the host's queue holds the rest.
    # The kernel's buffers (the host's send buffer grows to a few MiB) fill
    # first, in steps of half the cap; then the host's own queue is topped
    # up to within one Pong of the cap, from exact counts: what the host
    # was made to write minus what sits in the two kernels' queues.
    ping = b'{"type":"Ping"}\n'
    sent = 0
    for _ in range(64):
        queued = sent * len(PONG) - _settled_backlog(stuck, host.cp)
        assert 0 <= queued <= CTL_MAX_OUT, "queue estimate %d (sent %d pings)" % (queued, sent)
        room = CTL_MAX_OUT - queued
        if room < len(PONG):
            break
        n = room // len(PONG) if queued else CTL_MAX_OUT // 2 // len(PONG)
        s.sendall(ping * n)
        sent += n
    else:
        raise AssertionError("could not bring the host's queue to its cap")
    # A Pong still fits, a ConnectRequest (~90 bytes) no longer does; the
    # container is still registered.
    assert host.container(stuck.container_id), host.state()
    assert "does not read" not in host.proc.log_text()

    clients = [socket.create_connection(("127.0.0.1", hp_a), timeout=5) for _ in range(3)]
    try:
        wait_for(lambda: "does not read its control connection" in host.proc.log_text(), 10,
                 "the host to drop the container that does not read")
        for c in clients:
            closed, _, _ = read_closed(c, 10)
            assert closed, "a client of the dropped container's forward was left open"
    finally:
        for c in clients:
            c.close()
    wait_for(lambda: host.container(stuck.container_id) is None, 5, "the stuck container gone")
    wait_for(lambda: not can_connect(hp_a), 5, "the stuck container's forward closed")
    assert host.proc.alive(), host.proc.tail()

    # The other container's forward keeps working.
    payload = os.urandom(1024 * 1024)
    digest, got = roundtrip(hp_b, payload)
    assert (digest, got) == (hashlib.sha256(payload).hexdigest(), len(payload)), got
    stuck.close()


def test_container_hostile_idle_connections_cannot_lock_out_registrations(sandbox):
    """Silent connections without a token used to fill the 64 unregistered
    slots and get every new connection reset for as long as they stayed.
    Now the oldest is evicted and each is closed after 5 s."""
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection((host.bind_addr, host.cp), timeout=5))
        # a real container registers and forwards through the flood
        port = random_port_block(1)
        sandbox.echo_server(net, 0, port)
        cd = sandbox.container_daemon(net, 0, host)
        hp = cd.wait_forward(port, timeout=10)
        digest, got = roundtrip(hp, b"x" * 65536)
        assert got == 65536
        # so does a client with the token (ListRequest), while idlers keep coming
        for _ in range(64):
            idle.append(socket.create_connection((host.bind_addr, host.cp), timeout=5))
        fake = sandbox.fake(host)
        resp, _ = fake.list()
        assert [f["port"] for f in resp["forwards"]] == [port], resp
        fake.close()
        # at most 64 idlers are still open, and none after the 5 s deadline
        def open_idlers():
            n = 0
            for s in idle:
                s.setblocking(False)
                try:
                    if s.recv(1) != b"":
                        n += 1
                except BlockingIOError:
                    n += 1
                except OSError:
                    pass
            return n
        assert open_idlers() <= 64
        wait_for(lambda: open_idlers() == 0, 10, "the idle connections closed")
    finally:
        for s in idle:
            s.close()
    assert "evicted: too many unregistered connections" in host.proc.log_text()


def test_container_hostile_privileged_and_own_ports_are_remapped(sandbox):
    """A container cannot make the (root) host daemon listen on the host's
    22/80/443 or on the daemon's own ports: they are remapped, and the ack,
    the state (status) and the audit log say so."""
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = sandbox.fake(host)
    assert fake.register().get("success") is True
    ack = fake.forward(80)
    assert ack["success"] is True and ack["host_port"] >= 10080 and ack["remapped"] == "privileged", ack
    own = fake.forward(host.cp)
    assert own["success"] is True and own["host_port"] not in (host.cp, host.dp), own
    assert own["remapped"] == "in_use", own
    wait_for(lambda: host.forward(fake.container_id, 80), 5, "port 80 in the state file")
    f = host.forward(fake.container_id, 80)
    assert f["host_port"] == ack["host_port"] and f["remapped"] == "privileged", f
    rows = sandbox.container_rows(host.state_dir)
    assert [x["remapped"] for x in rows[0]["forwards"] if x["port"] == 80] == ["privileged"], rows
    ev = host.wait_event("port_forwarded", 5, pred=lambda e: "container port 80 " in e["detail"])[0]
    assert "privileged" in ev["detail"] and "--allow-privileged-ports" in ev["detail"], ev
    # a seed container (no version) gets the seed's ForwardAck, nothing more
    seed = sandbox.fake(host)
    assert seed.register(version=None).get("success") is True
    ack1 = seed.forward(443)
    assert set(ack1) == {"type", "port", "success", "host_port"} and ack1["host_port"] >= 10443, ack1
    fake.close()
    seed.close()


def test_container_hostile_privileged_ports_on_request(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr, extra=["--allow-privileged-ports"])
    fake = sandbox.fake(host)
    assert fake.register().get("success") is True
    # some port below 1024 that nothing here listens on
    port = next(p for p in range(900, 1000) if not can_connect(p) and not can_connect(p, host="::1"))
    ack = fake.forward(port)
    assert ack["success"] is True and ack["host_port"] == port and "remapped" not in ack, ack
    fake.close()


def test_container_hostile_rejected_lines_are_answered(sandbox):
    """A line the host rejects gets the refusal its type has in the
    protocol at once, instead of silence until the sender's own timeout."""
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    # Register without a token: refused, audited
    fake = sandbox.fake(host)
    fake.send({"type": "Register", "container_id": "c1", "hostname": "h1", "version": 2})
    ack, _ = fake.expect("RegisterAck")
    assert ack["success"] is False and ack["error"] == "authentication failed", ack
    ev = host.wait_event("auth_failed", 5)[0]
    assert "without a token" in ev["detail"] and ev["actor"] == "peer:%s" % net.host_addr, ev
    assert fake.recv() is None, "the connection stays open after a refused Register"
    fake.close()
    # a Register that does not parse at all
    bad = sandbox.fake(host)
    bad.send({"type": "Register", "container_id": "no spaces", "hostname": "h", "version": 2,
              "auth_token": TOKEN})
    ack, _ = bad.expect("RegisterAck")
    assert ack["success"] is False and "container_id" in ack["error"], ack
    bad.close()

    fake = sandbox.fake(host)
    assert fake.register().get("success") is True
    for port in (0, 70000):
        fake.send(dict(forward_msg(1), port=port))
        ack, _ = fake.expect("ForwardAck")
        assert ack["success"] is False and ack["host_port"] == 0, ack
        assert ack["port"] == (0 if port == 0 else 0) and "port" in ack["error"], ack
    fake.send_raw(b'{"type":"OpenUrl","url":"http://x/' + b"a" * 2100 + b'"}\n')
    ack, _ = fake.expect("OpenUrlAck")
    assert ack == {"type": "OpenUrlAck", "success": False}, ack
    fake.send_raw(b'{"type":"OpenUrl","url":"http://x/\xff\xfe"}\n')
    ack, _ = fake.expect("OpenUrlAck")
    assert ack == {"type": "OpenUrlAck", "success": False}, ack
    # still registered: bad lines cost nothing but themselves
    msg, _ = fake.ping()
    assert msg["type"] == "Pong"
    fake.close()


def test_container_hostile_same_hostname_twice(sandbox):
    """Two live container daemons with the same id and hostname used to
    replace each other's registration every ~100 ms forever.  Now both stay
    registered, the second is shown as NAME-2, both forwards work; a
    reconnect of the same daemon still replaces its old session."""
    net = sandbox.net(2)
    host = sandbox.host_daemon(net.host_addr)
    port = random_port_block(1)
    cds = []
    for i in range(2):
        sandbox.echo_server(net, i, port)
        cds.append(sandbox.container_daemon(net, i, host, container_id="dev", hostname="dev"))
    def both():
        st = host.state() or {}
        cs = st.get("containers") or []
        names = sorted(c["name"] for c in cs if any(f["port"] == port for f in c["forwards"]))
        return names == ["dev", "dev-2"] and cs
    cs = wait_for(both, 10, "both containers registered with their forward")
    for c in cs:
        hp = next(f["host_port"] for f in c["forwards"] if f["port"] == port)
        assert roundtrip(hp, b"y" * 4096)[1] == 4096
    rows = sandbox.container_rows(host.state_dir)
    assert sorted(r["name"] for r in rows) == ["dev", "dev-2"], rows
    # each daemon registered once: nobody replaced anybody
    regs = host.events("container_registered")
    assert len(regs) == 2, regs
    assert "shown as dev-2" in regs[1]["detail"], regs
    assert any("as dev-2" in cd.proc.log_text() for cd in cds)

    # the same daemon again (same instance): its old session is replaced
    a = sandbox.fake(host, container_id="x", hostname="x")
    assert a.register(instance="inst-1").get("success") is True
    b = sandbox.fake(host, container_id="x", hostname="x")
    ack = b.register(instance="inst-1")
    assert ack["success"] is True and ack["name"] == "x", ack
    assert a.recv() is None, "the replaced session's connection stays open"
    # another daemon (another instance) with that id: kept, distinct name
    c = sandbox.fake(host, container_id="x", hostname="x")
    ack = c.register(instance="inst-2")
    assert ack["success"] is True and ack["name"] == "x-2", ack
    msg, _ = b.ping()
    assert msg["type"] == "Pong"
    for f in (a, b, c):
        f.close()


def test_container_hostile_one_token_environment_on_both_sides(sandbox):
    """host-daemon takes DEVBRIDGE_AUTH_TOKEN (and DCBRIDGE_AUTH_TOKEN) as
    the container side does, and logs where the token came from, never the
    token."""
    net = sandbox.net(1)
    for var in ("DEVBRIDGE_AUTH_TOKEN", "DCBRIDGE_AUTH_TOKEN"):
        env = {var: TOKEN}
        host = sandbox.host_daemon(net.host_addr, token=None, env=env)
        port = random_port_block(1)
        sandbox.echo_server(net, 0, port)
        cd = sandbox.container_daemon(net, 0, host, token="", env=env)
        cd.wait_forward(port)
        log = host.proc.log_text()
        assert "auth token from %s" % var in log and TOKEN not in log, log[-2000:]
        assert not os.path.exists(os.path.join(sandbox.home, ".config/devbridge/auth-token"))
        cd.proc.terminate()
        host.stop()
