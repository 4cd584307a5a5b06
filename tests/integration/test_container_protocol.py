"""Devcontainer bridge: the wire protocol, spoken by a fake container
written with plain sockets (from the root namespace, against a host daemon
bound to the test bridge's address)."""

import hashlib
import json
import os
import socket
import threading
import time
import uuid

from container_helpers import (  # noqa: F401 - sandbox is a fixture
    TOKEN, WRONG_TOKEN, FakeContainer, can_connect, forward_msg, random_port_block, read_closed,
    recv_exact, roundtrip, sandbox, wait_closed, wait_for)


def _registered_fake(sandbox, host, **kw):
    fake = sandbox.fake(host, **kw)
    ack = fake.register()
    assert ack.get("success") is True and ack.get("version") == 2, "RegisterAck: %r" % ack
    return fake


def _forwarded(fake, port):
    ack = fake.forward(port)
    assert ack.get("success") is True and isinstance(ack.get("host_port"), int) \
        and ack["host_port"] > 0, "ForwardAck for %d: %r" % (port, ack)
    return ack["host_port"]


# --------------------------------------------------------------------------
# 7. handshake, data, failures


def test_container_proto_handshake_and_data_both_ways(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = _registered_fake(sandbox, host)
    port = random_port_block(1)
    hp = _forwarded(fake, port)
    wait_for(lambda: host.forward(fake.container_id, port), 5, "the forward in the state file")

    client = socket.create_connection(("127.0.0.1", hp), timeout=5)
    req = fake.wait_connect_request(port)
    assert req.get("port") == port and req.get("conn_id"), req
    uuid.UUID(req["conn_id"])  # a UUID, as the contract says

    # bytes right behind the ConnectReady line, in the same send
    first = b"hello-from-container\x00\xff" * 10
    data = fake.data_connect(req["conn_id"], first=first)
    got = recv_exact(client, len(first))
    assert got == first, "client got %r, expected the bytes sent after ConnectReady" % got[:100]

    msg = os.urandom(300 * 1024)
    client.sendall(msg)
    assert recv_exact(data, len(msg), timeout=10) == msg, "container side did not get the client's bytes"
    back = os.urandom(300 * 1024)
    data.sendall(back)
    assert recv_exact(client, len(back), timeout=10) == back, "client did not get the container's bytes"

    # the container ends the connection -> the client sees EOF
    data.close()
    closed, _, extra = read_closed(client, 5)
    assert closed and not extra, "client not closed after the data connection closed (extra %r)" % extra[:50]
    client.close()

    # a second connection works as well (a new ConnectRequest, new conn_id)
    client2 = socket.create_connection(("127.0.0.1", hp), timeout=5)
    req2 = fake.wait_connect_request(port)
    assert req2["conn_id"] != req["conn_id"]
    data2 = fake.data_connect(req2["conn_id"])
    client2.sendall(b"ping2")
    assert recv_exact(data2, 5) == b"ping2"
    client2.close()
    closed, _, _ = read_closed(data2, 5)
    assert closed, "data connection not closed after the client closed"


def test_container_proto_seed_dialect_register_without_version(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = sandbox.fake(host)
    ack = fake.register(version=None)
    assert ack.get("success") is True, ack
    assert "version" not in ack and "error" not in ack, (
        "a seed (no version) Register must be answered in the seed's dialect: %r" % ack)
    port = random_port_block(1)
    hp = _forwarded(fake, port)
    assert can_connect(hp)


def test_container_proto_connect_failed_closes_client(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = _registered_fake(sandbox, host)
    port = random_port_block(1)
    hp = _forwarded(fake, port)
    client = socket.create_connection(("127.0.0.1", hp), timeout=5)
    req = fake.wait_connect_request(port)
    fake.send({"type": "ConnectFailed", "conn_id": req["conn_id"], "error": "connection refused"})
    closed, took, data = read_closed(client, 5)
    assert closed and not data, "client not closed within 5s of ConnectFailed (got %r)" % data[:50]
    client.close()
    fake.ping()  # control connection still fine


def test_container_proto_no_data_connection_closes_client_after_timeout(sandbox):
    """The pending timeout (10 s by default, --pending-timeout-ms) closes a
    client whose data connection never comes; the default is in the help."""
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr, extra=["--pending-timeout-ms", 1500])
    fake = _registered_fake(sandbox, host)
    port = random_port_block(1)
    hp = _forwarded(fake, port)
    t0 = time.monotonic()
    client = socket.create_connection(("127.0.0.1", hp), timeout=5)
    fake.wait_connect_request(port)  # ... and never answer it
    closed, _, data = read_closed(client, 10)
    took = time.monotonic() - t0
    client.close()
    assert closed, "client still open %.1fs after connecting with no data connection" % took
    assert not data, data[:50]
    assert 1.3 <= took <= 5, "client closed after %.1fs, expected about 1.5s" % took
    assert "no data connection from the container within 1500 ms" in host.proc.log_text()
    help_text = sandbox.cli("host-daemon", "--help").stdout
    assert "--pending-timeout-ms N" in help_text and "default 10000" in help_text, help_text
    fake.ping()  # the control connection is unaffected


def test_container_proto_connect_ready_unknown_conn_id(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = _registered_fake(sandbox, host)
    data = fake.data_connect(str(uuid.uuid4()), first=b"stray bytes")
    closed, _, got = read_closed(data, 5)
    assert closed, "data connection with an unknown conn_id not closed within 5s"
    assert not got, got[:50]
    fake.ping()
    assert host.proc.alive()


def test_container_proto_ping_before_register(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = sandbox.fake(host)
    fake.send({"type": "Ping"})
    msg = fake.recv(5)
    assert msg == {"type": "Pong"}, "first reply to Ping before Register: %r" % (msg,)
    ack = fake.register()
    assert ack.get("success") is True, ack


def _probe_list_after(fake, request):
    """Send `request` then a Ping; return ('closed', msgs) or ('open', msgs)
    with every message that arrived before the Pong."""
    msgs = []
    try:
        fake.send(request)
        fake.send({"type": "Ping"})
    except OSError:
        return "closed", msgs
    while True:
        m = fake.recv(5)
        if m is None:
            return "closed", msgs
        if m.get("type") == "Pong":
            return "open", msgs
        msgs.append(m)


def test_container_proto_list_request_needs_token(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = _registered_fake(sandbox, host)
    port = random_port_block(1)
    hp = _forwarded(fake, port)

    lister = sandbox.fake(host)
    resp, _ = lister.list()
    assert resp.get("socket_forwards") == [], resp
    fws = [f for f in resp.get("forwards", []) if f.get("port") == port]
    assert len(fws) == 1, "ListResponse lacks the forward of %d: %r" % (port, resp)
    assert fws[0]["host_port"] == hp and fws[0]["container_id"] == fake.container_id, fws

    for what, req in (("no token", {"type": "ListRequest"}),
                      ("wrong token", {"type": "ListRequest", "auth_token": WRONG_TOKEN}),
                      ("empty token", {"type": "ListRequest", "auth_token": ""})):
        other = sandbox.fake(host)
        how, msgs = _probe_list_after(other, req)
        leaked = [m for m in msgs if m.get("type") == "ListResponse" and m.get("forwards")]
        assert not leaked, "ListRequest with %s listed the forwards: %r" % (what, leaked)
        other.close()


# --------------------------------------------------------------------------
# 8. bad input


def _long_line(n):
    head, tail = b'{"type":"Ping","pad":"', b'"}'
    return head + b"x" * (n - len(head) - len(tail)) + tail


BAD_LINES = [
    ("a 70,000-byte line", _long_line(70000)),
    ("malformed JSON", b'{"type": "Ping",,}'),
    ("not an object", b'[1,2,3]'),
    ("unknown type", b'{"type":"Nope"}'),
    ("unknown field", b'{"type":"Ping","extra":1}'),
    ("Forward port 0", json.dumps(forward_msg(0)).encode()),
    ("Forward port 70000", json.dumps(forward_msg(70000)).encode()),
    ("Forward port \"80\"", json.dumps(forward_msg("80")).encode()),
]


def test_container_proto_bad_input_rejected_connection_kept(sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    sandbox.echo_server(net, 0, 7300)
    real = sandbox.container_daemon(net, 0, host)
    real_hp = real.wait_forward(7300)

    fake = _registered_fake(sandbox, host)
    good_port = random_port_block(1)
    _forwarded(fake, good_port)

    assert len(BAD_LINES[0][1]) == 70000
    for what, line in BAD_LINES:
        fake.send_raw(line + b"\n")
        fake.send({"type": "ListRequest", "auth_token": TOKEN})
        resp, before = fake.expect("ListResponse")
        assert not [m for m in before if m.get("type") == "Pong"], (
            "%s was acted on as a Ping: %r" % (what, before))
        assert not [m for m in before if m.get("type") == "ForwardAck" and m.get("success")], (
            "%s was accepted: %r" % (what, before))
        ports = sorted(f.get("port") for f in resp["forwards"] if f.get("container_id") == fake.container_id)
        assert ports == [good_port], "after %s the forwards are %r" % (what, ports)
        pong, _ = fake.ping()
        assert pong == {"type": "Pong"}
        # the real container is unaffected
        payload = os.urandom(64 * 1024)
        assert roundtrip(real_hp, payload, timeout=10)[0] == hashlib.sha256(payload).hexdigest(), (
            "the other container's port stopped working after %s" % what)

    # 16 bad lines in a row are tolerated ...
    fake.send_raw(b"{bad json\n" * 16)
    fake.ping()
    # ... 17 close the connection
    fake.send_raw(b"{bad json\n" * 17)
    closed, _, rest = read_closed(fake.sock, 5)
    assert closed, "17 bad lines in a row did not close the connection; got %r" % rest[:200]
    wait_for(lambda: host.container(fake.container_id) is None, 5, "the fake container dropped")

    payload = os.urandom(64 * 1024)
    assert roundtrip(real_hp, payload, timeout=10)[0] == hashlib.sha256(payload).hexdigest()
    assert host.container(real.container_id) is not None


def test_container_proto_version_99_refused(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = sandbox.fake(host)
    ack = fake.register(version=99)
    assert ack.get("success") is False, ack
    assert "99" in str(ack.get("error", "")), "error must name the version: %r" % ack
    assert host.container(fake.container_id) is None
    # a version-2 container still registers fine afterwards
    _registered_fake(sandbox, host)


def test_container_proto_forward_limit_128(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr)
    fake = _registered_fake(sandbox, host)
    base = random_port_block(129)
    ports = list(range(base, base + 129))
    fake.send_raw(b"".join(json.dumps(forward_msg(p)).encode() + b"\n" for p in ports))
    acks = {}
    deadline = time.monotonic() + 30
    while len(acks) < 129:
        m, _ = fake.expect("ForwardAck", max(0.1, deadline - time.monotonic()))
        acks[m.get("port")] = m
    ok = [p for p in ports[:128] if acks[p].get("success") is True and acks[p].get("host_port", 0) > 0]
    assert len(ok) == 128, "only %d of the first 128 forwards succeeded: %r" % (
        len(ok), [acks[p] for p in ports[:128] if p not in ok][:3])
    assert len(set(acks[p]["host_port"] for p in ports[:128])) == 128, "host ports not distinct"
    last = acks[ports[128]]
    assert last.get("success") is False and last.get("host_port") == 0, "129th ForwardAck: %r" % last
    fake.ping()
    wait_for(lambda: len((host.container(fake.container_id) or {}).get("forwards", [])) == 128, 5,
             "128 forwards in the state file")


# --------------------------------------------------------------------------
# 9. heartbeat


def test_container_heartbeat_drops_silent_container(sandbox):
    net = sandbox.net(0)
    host = sandbox.host_daemon(net.host_addr, heartbeat_ms=200)
    silent = _registered_fake(sandbox, host)
    live = _registered_fake(sandbox, host)
    base = random_port_block(2)
    t0 = time.monotonic()
    hp_silent = _forwarded(silent, base)
    hp_live = _forwarded(live, base + 1)

    pings = [0]
    stop = threading.Event()

    def answer():
        while not stop.is_set():
            try:
                m = live.recv(1)
            except AssertionError:
                continue
            except OSError:
                return
            if m is None:
                return
            if m.get("type") == "Ping":
                live.send({"type": "Pong"})
                pings[0] += 1

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        wait_closed(hp_silent, 4, "the silent container's host port %d to close" % hp_silent)
        took = time.monotonic() - t0
        assert took <= 2.5, "silent container dropped only after %.1fs (heartbeat 200 ms x 3)" % took
        wait_for(lambda: host.container(silent.container_id) is None, 3, "silent container gone from state")
        closed, _, _ = read_closed(silent.sock, 3)
        assert closed, "the silent container's control connection was not closed"

        wait_for(lambda: pings[0] >= 10, 6, "the live container to answer 10 Pings")
        assert t.is_alive(), "the live container's control connection was closed"
        assert can_connect(hp_live), "the live container's port %d stopped accepting" % hp_live
        assert host.container(live.container_id) is not None
    finally:
        stop.set()
        t.join(timeout=3)
