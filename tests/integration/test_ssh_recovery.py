"""Self-healing: dead host, hung host, killed supervisor, SIGHUP, give-up."""

import os
import signal
import time

import pytest

from helpers import (MiB, StreamingTransfer, can_connect, echo_roundtrip, free_port, index_after,
                     proc_alive, wait_for)

# tunnel() sets server_alive_interval 1, server_alive_count_max 2
ALIVE_WINDOW = 1 * 2
SLACK = 3
NOT_CONNECTED = {"starting", "degraded", "reconnecting", "failed", "stopped"}


def _up_connected(db, name="web"):
    r = db.run("up", name)
    assert r.returncode == 0, r
    b = db.bridge(name)
    assert b["state"] == "connected", b
    return b


def _wait_left_connected(db, t0, window, name="web"):
    b = db.wait_state(name, NOT_CONNECTED, window,
                      what="%s to leave 'connected' within %ss" % (name, window))
    return b, time.monotonic() - t0


def _assert_disconnect_reconnect_order(db, name="web"):
    names = db.event_names(name)
    first = index_after(names, "bridge_connected", 0)
    assert first is not None, names
    d = index_after(names, "bridge_disconnected", first + 1)
    assert d is not None, "no bridge_disconnected after the first bridge_connected: %r" % names
    r = index_after(names, "bridge_reconnecting", d + 1)
    assert r is not None, "no bridge_reconnecting after bridge_disconnected: %r" % names
    c = index_after(names, "bridge_connected", r + 1)
    assert c is not None, "no bridge_connected after bridge_reconnecting: %r" % names
    return names


def test_sshd_killed_mid_transfer_then_back(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)

    tr = StreamingTransfer(remote_port)
    try:
        wait_for(lambda: tr.received > MiB, 15, "1 MiB echoed through the tunnel before the kill")
        t0 = time.monotonic()
        sshd.kill9()
        b, took = _wait_left_connected(db, t0, ALIVE_WINDOW + SLACK)
        # what the user of the tunnel sees: the connection breaks
        wait_for(tr.done, 10, "the in-flight transfer to end after the host died")
        assert tr.error is not None or tr.eof
    finally:
        tr.stop()

    sshd.start()  # same port, same host key
    b1 = db.wait_state("web", "connected", 20, what="reconnect after sshd is back")
    assert b1["ssh_pid"] != b0["ssh_pid"], (b0, b1)
    assert b1["reconnects"] >= 1, b1
    assert b1["pid"] == b0["pid"], "the supervisor itself should have survived: %r -> %r" % (b0, b1)
    _assert_disconnect_reconnect_order(db)

    wait_for(lambda: can_connect(remote_port), 5, "forward back on %d" % remote_port)
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent), "data after reconnect"


def test_hung_host_detected_by_server_alive(db, sshd, echo, tunnel):
    """SIGSTOP: no FIN, no RST, TCP still ACKed by the kernel.  Only the
    keepalives through the encrypted channel can notice."""
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)

    t0 = time.monotonic()
    sshd.stop_signal()
    try:
        b, took = _wait_left_connected(db, t0, ALIVE_WINDOW + SLACK)
        db.wait_event("web", "bridge_disconnected", 5)
    finally:
        sshd.cont()

    # once the host answers again the tunnel comes back by itself
    b1 = db.wait_state("web", "connected", 30, what="reconnect after SIGCONT")
    assert b1["ssh_pid"] != b0["ssh_pid"], (b0, b1)
    _assert_disconnect_reconnect_order(db)


def test_supervisor_sigkill_leaves_no_ssh_and_up_works_again(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)
    sup, ssh_pid = b0["pid"], b0["ssh_pid"]
    assert isinstance(sup, int) and proc_alive(sup), b0
    assert isinstance(ssh_pid, int) and proc_alive(ssh_pid), b0

    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not proc_alive(sup), 5, "supervisor %d to die" % sup)
    wait_for(lambda: not proc_alive(ssh_pid), 5,
             "ssh %d (child of the SIGKILLed supervisor) to exit: no orphan ssh" % ssh_pid)
    b = db.wait_state("web", "stopped", 5, what="status 'stopped' for a SIGKILLed supervisor")
    assert b["pid"] is None, b
    db.wait_no_processes(5, "no devbridge/ssh process left after the supervisor was SIGKILLed")
    wait_for(lambda: not can_connect(remote_port), 10, "the remote listener to be released")

    b1 = _up_connected(db)
    assert b1["pid"] != sup, (b0, b1)
    wait_for(lambda: can_connect(remote_port), 5, "forward on %d after the new up" % remote_port)
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_down_while_reconnecting_is_quick_and_clean(db, sshd, echo, tunnel, how):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    _up_connected(db)

    t0 = time.monotonic()
    if how == "killed":
        sshd.kill9()
    else:
        sshd.stop_signal()
    _wait_left_connected(db, t0, ALIVE_WINDOW + SLACK)
    if how == "killed":
        db.wait_state("web", {"reconnecting", "starting"}, 5)

    r = db.run("down", "web", timeout=20)
    assert r.returncode == 0, r
    # ssh gets SIGTERM (SIGKILL after 5 s): a hung connect must not hold `down`
    assert r.elapsed < 6.5, "down took %.1fs while reconnecting" % r.elapsed
    b = db.wait_state("web", "stopped", 3)
    assert b["pid"] is None, b
    db.wait_no_processes(5, "no devbridge/ssh processes left after down")
    assert "bridge_stopped" in db.event_names("web"), db.audit_text("web")


def test_sighup_forces_reconnect(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)
    n0 = len(db.events("web"))

    os.kill(b0["pid"], signal.SIGHUP)
    i = db.wait_event("web", "bridge_reconnecting", 5, after=n0)
    ev = db.events("web")[i]
    assert "SIGHUP" in (ev.get("detail") or "").upper(), "bridge_reconnecting detail should mention SIGHUP: %r" % ev
    db.wait_event("web", "bridge_connected", 10, after=i + 1)
    b1 = db.wait_state("web", "connected", 10)
    assert b1["ssh_pid"] != b0["ssh_pid"], "ssh was not restarted by SIGHUP: %r -> %r" % (b0, b1)
    assert b1["pid"] == b0["pid"], (b0, b1)
    assert not proc_alive(b0["ssh_pid"]), "the old ssh is still running after SIGHUP"

    wait_for(lambda: can_connect(remote_port), 5, "forward after SIGHUP")
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)


def test_max_attempts_exhausted_means_failed(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port,
                                   reconnect={"max_attempts": 2, "backoff_initial": 0.2, "backoff_max": 0.5})})
    sshd.kill9()  # nobody listens on the ssh port any more

    r = db.run("up", "web", "--timeout", 20)
    assert r.returncode != 0, r
    db.wait_state("web", "failed", 15, what="state 'failed' after max_attempts")
    i = db.wait_event("web", "bridge_failed", 5)
    ev = db.events("web")[i]
    assert ev.get("detail"), "bridge_failed should name the reason: %r" % ev
    # a failed bridge is not retried any more
    db.wait_no_processes(5, "no ssh process once the bridge has failed", only_ssh=True)
    n = len(db.events("web"))
    time.sleep(1.5)  # asserting that nothing more happens within a short window
    assert db.state("web") == "failed"
    assert db.event_names("web")[n:].count("bridge_reconnecting") == 0, db.audit_text("web")
