"""Devcontainer bridge: `devbridge forward PORT` / `unforward PORT` inside a
container steer its container daemon through a 0600 local socket."""

import hashlib
import os
import shutil
import stat
import tempfile

import pytest

from container_helpers import roundtrip, sandbox  # noqa: F401 - sandbox is a fixture
from helpers import wait_for


def _ports(host, cid):
    return sorted(f["port"] for f in (host.container(cid) or {}).get("forwards", []))


@pytest.fixture
def short_dir():
    d = tempfile.mkdtemp(prefix="dbf")  # short: sun_path holds 108 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_forward_and_unforward_commands(sandbox, short_dir):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    ctl_dir = short_dir
    sock = os.path.join(ctl_dir, "cd.sock")
    # 9100 listens but the filter excludes it; `forward` overrides the filter.
    sandbox.echo_server(net, 0, 9100)
    cd = sandbox.container_daemon(net, 0, host,
                                  extra=["--exclude-ports", "9100", "--control-socket", sock])
    cd.wait_registered()
    wait_for(lambda: os.path.exists(sock), 10, "control socket %s" % sock)
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    assert _ports(host, cd.container_id) == []

    r = sandbox.cli("--json", "forward", "9100", "--control-socket", sock, ns=net.ns(0))
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["port"] == 9100 and doc["forwarded"] is True
    hp = doc["host_port"]
    assert isinstance(hp, int) and hp > 0, doc
    payload = os.urandom(64 * 1024)
    assert roundtrip(hp, payload, timeout=10)[0] == hashlib.sha256(payload).hexdigest()

    r = sandbox.cli("unforward", "9100", "--control-socket", sock, ns=net.ns(0))
    assert r.returncode == 0, r
    assert "no longer forwarded" in r.stdout
    wait_for(lambda: _ports(host, cd.container_id) == [], 10, "9100 unforwarded on the host")
    # ...and it stays unforwarded although it still listens (scans every 50 ms):
    # a later, newly listening port is forwarded meanwhile.
    sandbox.echo_server(net, 0, 9101)
    cd.wait_forward(9101)
    assert _ports(host, cd.container_id) == [9101]


def test_forward_without_daemon_says_so(sandbox, short_dir):
    d = short_dir
    r = sandbox.cli("--json", "forward", "9100", "--control-socket", os.path.join(d, "none.sock"))
    assert r.returncode == 50, r
    err = r.json()["error"]
    assert err["code"] == 50 and "no container daemon" in err["message"]
    r = sandbox.cli("forward", "70000")
    assert r.returncode == 2, r
