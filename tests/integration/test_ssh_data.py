"""Bytes through real tunnels: reverse (-R) and local (-L), 10 MiB each way."""

import subprocess

from helpers import MiB, can_connect, echo_roundtrip, free_port, proc_comm, wait_for

PAYLOAD = 10 * MiB


def test_reverse_tunnel_carries_10mib_both_ways(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port, direction="reverse")})

    r = db.run("up", "web")
    assert r.returncode == 0, r
    b = db.bridge("web")
    assert b["state"] == "connected", b
    assert proc_comm(b["ssh_pid"]) == "ssh", b

    # `up` returned "connected": the forward must be usable right now.
    assert can_connect(remote_port), "forward 127.0.0.1:%d not accepting right after up returned 0" % remote_port

    sent, got, n = echo_roundtrip(remote_port, PAYLOAD)
    assert n == PAYLOAD, "echoed %d of %d bytes through the reverse tunnel" % (n, PAYLOAD)
    assert got == sent, "sha256 mismatch through the reverse tunnel"
    assert echo.accepted >= 1, "the local service never saw a connection: bytes did not go through it"


def test_local_tunnel_carries_10mib_both_ways(db, sshd, echo, tunnel):
    # The echo server plays the service on the ssh host's side (remote_port);
    # the user connects to local_port on this machine.
    local_port = free_port()
    db.write_config({"web": tunnel(sshd, echo.port, local_port, direction="local")})

    r = db.run("up", "web")
    assert r.returncode == 0, r
    b = db.bridge("web")
    assert b["state"] == "connected", b
    assert b["direction"] == "local", b
    wait_for(lambda: can_connect(local_port), 2, "local forward on 127.0.0.1:%d" % local_port)

    sent, got, n = echo_roundtrip(local_port, PAYLOAD)
    assert n == PAYLOAD, "echoed %d of %d bytes through the local tunnel" % (n, PAYLOAD)
    assert got == sent, "sha256 mismatch through the local tunnel"
    assert echo.accepted >= 1


def test_two_tunnels_at_once_both_carry_data(db, sshd, tunnel):
    from helpers import EchoServer
    e1, e2 = EchoServer(), EchoServer()
    try:
        rp = free_port()
        lp = free_port()
        db.write_config({
            "rev": tunnel(sshd, rp, e1.port, direction="reverse"),
            "loc": tunnel(sshd, e2.port, lp, direction="local"),
        })
        r = db.run("up")  # no names: every tunnel in the config
        assert r.returncode == 0, r
        doc = db.status()
        states = {b["name"]: b["state"] for b in doc["bridges"]}
        assert states == {"rev": "connected", "loc": "connected"}, doc
        for port, srv in ((rp, e1), (lp, e2)):
            wait_for(lambda: can_connect(port), 2, "forward on %d" % port)
            sent, got, n = echo_roundtrip(port, MiB)
            assert (n, got) == (MiB, sent)
            assert srv.accepted >= 1
    finally:
        e1.stop()
        e2.stop()


def test_up_returns_even_when_stdout_is_a_pipe(db, sshd, echo, tunnel):
    """`out=$(devbridge up)` must not hang: the detached supervisor may not
    keep the caller's stdout/stderr open."""
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    try:
        p = subprocess.run([db.bin, "up", "web"], env=db.env(), cwd=db.tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("`devbridge up` with stdout/stderr on pipes did not finish within 30 s: "
                             "the detached supervisor keeps the caller's stdout/stderr open")
    finally:
        db._note_pids()
    assert p.returncode == 0, (p.stdout, p.stderr)
