"""Devcontainer bridge: which container ports get forwarded
(--exclude-ports, --include-ports, devcontainer.json forwardPorts).

A port that must NOT be forwarded is listening before the daemon starts; a
port that must be forwarded is started afterwards and waited for: once the
late port is forwarded, the daemon has scanned the early one several times."""

import hashlib
import os

from container_helpers import roundtrip, sandbox  # noqa: F401 - sandbox is a fixture


def _forwarded_ports(host, cid):
    return sorted(f["port"] for f in (host.container(cid) or {}).get("forwards", []))


def _echo_works(hp):
    payload = os.urandom(32 * 1024)
    return roundtrip(hp, payload, timeout=10)[0] == hashlib.sha256(payload).hexdigest()


def test_container_filter_exclude_ports(sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    sandbox.echo_server(net, 0, 8081, 8082)
    cd = sandbox.container_daemon(net, 0, host, extra=["--exclude-ports", "8081"])
    hp = cd.wait_forward(8082)
    sandbox.echo_server(net, 0, 8083)
    cd.wait_forward(8083)
    assert _forwarded_ports(host, cd.container_id) == [8082, 8083]
    assert _echo_works(hp)


def test_container_filter_include_ports(sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    sandbox.echo_server(net, 0, 9000, 9002, 8090)
    cd = sandbox.container_daemon(net, 0, host, extra=["--include-ports", "9000-9001"])
    hp = cd.wait_forward(9000)
    sandbox.echo_server(net, 0, 9001)
    cd.wait_forward(9001)
    assert _forwarded_ports(host, cd.container_id) == [9000, 9001]
    assert _echo_works(hp)


DEVCONTAINER_JSON = """// devcontainer.json (JSONC)
{
    /* the dev container's name */
    "name": "filter-test",
    // only these two
    "forwardPorts": [3000, /* inline */ "3001"],
    "remoteUser": "root" // trailing comment
}
"""


def test_container_filter_devcontainer_json_forward_ports(sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    dcj = sandbox.write("devcontainer.json", DEVCONTAINER_JSON)
    sandbox.echo_server(net, 0, 3000, 3002)
    cd = sandbox.container_daemon(net, 0, host, extra=["--devcontainer-json", dcj])
    hp = cd.wait_forward(3000)
    sandbox.echo_server(net, 0, 3001)
    cd.wait_forward(3001)
    assert _forwarded_ports(host, cd.container_id) == [3000, 3001]
    assert _echo_works(hp)


def test_container_filter_exclude_process(sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    sandbox.echo_server(net, 0, 8301, comm="secretdb")
    cd = sandbox.container_daemon(net, 0, host, extra=["--exclude-process", "^secret"])
    sandbox.echo_server(net, 0, 8302, comm="webapp")
    hp = cd.wait_forward(8302)
    assert _forwarded_ports(host, cd.container_id) == [8302]
    f = host.forward(cd.container_id, 8302)
    assert f.get("process_name") in (None, "webapp"), f
    assert _echo_works(hp)
