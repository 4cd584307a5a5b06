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
