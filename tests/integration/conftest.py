"""Fixtures for devbridge's SSH integration tests.

Run with Debian's pytest:  /usr/bin/python3 -m pytest tests/integration
The binary under test is $DEVBRIDGE_BIN, else <repo>/build/devbridge.  A
missing binary is a failure, never a skip.
"""

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import DevBridge, EchoServer, Sshd  # noqa: E402

# Upper bound for any single test (setup + call + teardown each get this).
TEST_TIME_LIMIT = int(os.environ.get("DEVBRIDGE_TEST_TIME_LIMIT", "90"))


class TestTimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeLimit("test exceeded its %ds time limit" % TEST_TIME_LIMIT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIME_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def devbridge_bin():
    path = helpers.devbridge_bin()
    assert os.path.isfile(path) and os.access(path, os.X_OK), (
        "devbridge binary not found or not executable at %s "
        "(set DEVBRIDGE_BIN, or build: meson setup build && ninja -C build)" % path)
    return path


@pytest.fixture
def sshd(tmp_path):
    """A running throw-away sshd on 127.0.0.1 (see helpers.Sshd)."""
    server = Sshd(str(tmp_path / "sshd"))
    server.start()
    yield server
    server.cont()
    server.cleanup()


@pytest.fixture
def db(tmp_path, devbridge_bin, sshd):
    """devbridge sandboxed in this test's temp dir.  Depends on sshd so that
    it is torn down first (`down` while the host is still there), and ends
    every process it started by pid."""
    bridge = DevBridge(str(tmp_path), devbridge_bin)
    yield bridge
    sshd.cont()
    leftovers = bridge.teardown()
    # A leftover after `down` is a bug worth seeing, but teardown already
    # killed it; report without masking the test's own result.
    if leftovers:
        sys.stderr.write("teardown killed leftover processes: %r\n" % sorted(leftovers))
    reports = bridge.sanitizer_reports()
    assert not reports, "sanitizer report from a supervisor:\n" + "\n".join(reports)


@pytest.fixture
def db_nosshd(tmp_path, devbridge_bin):
    """devbridge sandbox for tests that need no ssh server."""
    bridge = DevBridge(str(tmp_path), devbridge_bin)
    yield bridge
    bridge.teardown()
    reports = bridge.sanitizer_reports()
    assert not reports, "sanitizer report from a supervisor:\n" + "\n".join(reports)


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.stop()


def make_tunnel(sshd, remote_port, local_port, direction="reverse", health=None,
                reconnect=None, ssh_options=None, **extra):
    """One tunnel entry as the tests write it (see the contract's example)."""
    t = {
        "host": "127.0.0.1",
        "ssh_port": sshd.port,
        "ssh_user": "root",
        "ssh_key": sshd.client_key,
        "remote_port": remote_port,
        "local_port": local_port,
        "actor": "tester",
        "direction": direction,
        "server_alive_interval": 1,
        "server_alive_count_max": 2,
        "reconnect": {"max_attempts": 0, "backoff_initial": 0.2, "backoff_max": 1,
                      "stable_seconds": 30},
    }
    if reconnect:
        t["reconnect"].update(reconnect)
    if health:
        t["health_check"] = health
    opts = {"UserKnownHostsFile": sshd.known_hosts, "StrictHostKeyChecking": "yes"}
    if ssh_options:
        opts.update(ssh_options)
    t["ssh_options"] = opts
    t.update(extra)
    return t


@pytest.fixture
def tunnel():
    return make_tunnel
