"""Devcontainer bridge: the host daemon's own life (idle exit, port
conflicts, `devbridge ensure`)."""

import json
import os
import socket
import time

from container_helpers import (  # noqa: F401 - sandbox is a fixture
    EXIT_PORT_IN_USE, FakeContainer, HostDaemon, can_connect, free_port, proc_alive, sandbox,
    wait_for)


def test_container_host_exit_on_idle(sandbox):
    net = sandbox.net(0)
    host = HostDaemon(sandbox, net.host_addr, extra=["--exit-on-idle", "--idle-timeout", "1"])
    t0 = time.monotonic()
    host.start(wait=False)
    wait_for(lambda: can_connect(host.cp, host=net.host_addr) or not host.proc.alive(), 10,
             "the host daemon to listen")
    wait_for(lambda: not host.proc.alive(), 10, "the idle host daemon to exit by itself")
    took = time.monotonic() - t0
    problems = host.proc.check(was_running=False)
    assert not problems, "\n".join(problems)
    assert host.proc.returncode == 0, host.proc.tail()
    assert took >= 0.9, "exited after %.2fs, before its 1s idle timeout" % took


def test_container_host_ports_taken_exit_55(sandbox):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(4)
        host = HostDaemon(sandbox, "127.0.0.1", cp=blocker.getsockname()[1])
        host.start(wait=False)
        host.proc.allowed_exit = {EXIT_PORT_IN_USE}
        wait_for(lambda: not host.proc.alive(), 10, "the host daemon to give up on a taken port")
        assert host.proc.returncode == EXIT_PORT_IN_USE, (host.proc.returncode, host.proc.tail())
    finally:
        blocker.close()


def test_container_ensure_starts_then_reports_running(sandbox):
    cp = free_port(both_families=False)
    dp = free_port(both_families=False)
    while dp == cp:
        dp = free_port(both_families=False)
    sd = sandbox.path("ensure-state")
    statefile = os.path.join(sd, "host-daemon.state")
    args = ("--state-dir", sd, "ensure", "--control-port", cp, "--data-port", dp)

    r = sandbox.cli(*args, timeout=30)

    def state_pid():
        with open(statefile) as f:
            return json.load(f)["pid"]
    try:
        pid = wait_for(state_pid, 5, "pid in %s" % statefile)
    finally:
        # whatever happens next, teardown stops it by pid and checks its stderr
        p = None
        try:
            p = state_pid()
        except Exception:  # noqa: BLE001
            pass
        if p:
            sandbox.extra_pids.append((p, "host daemon started by ensure", os.path.join(sd, "host-daemon.out")))
    assert r.returncode == 0, r
    assert proc_alive(pid), "the host daemon (pid %d) from ensure is not running" % pid
    assert can_connect(cp, host="127.0.0.1"), "nothing accepts on 127.0.0.1:%d" % cp
    fake = FakeContainer("127.0.0.1", cp, dp)
    try:
        fake.send({"type": "Ping"})
        assert fake.recv(5) == {"type": "Pong"}
    finally:
        fake.close()

    r2 = sandbox.cli(*args, timeout=30)
    assert r2.returncode == 0, r2
    assert "host daemon running" in r2.stdout, r2
    assert state_pid() == pid, "the second ensure replaced the daemon"

    # A third ensure on other ports: the daemon of this state directory runs
    # elsewhere.  Answered at once with 55 and its ports (it used to wait
    # 5 s for a daemon that could not start, then exit 56).
    other = free_port(both_families=False)
    t0 = time.monotonic()
    r3 = sandbox.cli("--state-dir", sd, "ensure", "--control-port", other, timeout=30)
    took = time.monotonic() - t0
    assert r3.returncode == EXIT_PORT_IN_USE, r3
    assert ("already runs (pid %d) on control port %d, data port %d" % (pid, cp, dp)) in r3.stderr, r3
    assert took < 4, "ensure took %.1fs to say a daemon runs elsewhere" % took
    r4 = sandbox.cli("--state-dir", sd, "--json", "ensure", "--control-port", other, timeout=30)
    doc = r4.json()
    assert r4.returncode == EXIT_PORT_IN_USE and doc["error"]["name"] == "port_in_use", r4
    assert doc["host_daemon"] == {"pid": pid, "control_port": cp, "data_port": dp}, doc
    assert state_pid() == pid


def test_container_ensure_reports_why_the_daemon_could_not_start(sandbox):
    """The data port is taken: the daemon ensure starts exits 55 at once,
    and ensure says so with the daemon's own message (no 5 s wait)."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(4)
        cp = free_port(both_families=False)
        t0 = time.monotonic()
        r = sandbox.cli("--state-dir", sandbox.path("ensure2"), "ensure", "--control-port", cp,
                        "--data-port", blocker.getsockname()[1], timeout=30)
        took = time.monotonic() - t0
    finally:
        blocker.close()
    assert r.returncode == EXIT_PORT_IN_USE, r
    assert "could not listen" in r.stderr and "Address already in use" in r.stderr, r
    assert took < 4, "took %.1fs" % took
