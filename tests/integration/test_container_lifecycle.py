"""Devcontainer bridge: a real container daemon in a network namespace
forwards its listening ports to the host daemon (lifecycle, conflicts,
crashes, restarts, authentication)."""

import time

from container_helpers import (  # noqa: F401 - sandbox is a fixture
    TOKEN, WRONG_TOKEN, check_audit_shape, http_body, has_ipv6, port_free_on_host,
    port8080, sandbox, wait_closed, wait_for)


def _body_is(port, expected, **kw):
    return http_body(port, **kw) == expected


def test_container_lifecycle_forward_serve_unforward(port8080, sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    content = "hello from container %s\n" % net.hostname(0)
    free8080 = port_free_on_host(8080)
    server = sandbox.http_server(net, 0, 8080, content)
    cd = sandbox.container_daemon(net, 0, host)
    t0 = time.monotonic()

    hp = cd.wait_forward(8080, timeout=5)
    if free8080 and hp != 8080 and port_free_on_host(8080):
        raise AssertionError("host port 8080 was free, yet the forward went to %d" % hp)
    wait_for(lambda: _body_is(hp, content), max(0.5, 5 - (time.monotonic() - t0)),
             "127.0.0.1:%d to serve the container's file" % hp)
    if has_ipv6():
        wait_for(lambda: _body_is(hp, content, host="::1"), 3, "[::1]:%d to serve the container's file" % hp)

    # status --json shows the container with its forward
    rows = [r for r in sandbox.container_rows(host.state_dir) if r.get("name") == cd.hostname]
    assert len(rows) == 1, "status --json: expected one container row named %s, got %r" % (
        cd.hostname, sandbox.status(host.state_dir))
    row = rows[0]
    assert row["kind"] == "container" and row["state"] == "connected", row
    assert "127.0.0.1:%d" % hp in row["local"].split(","), row
    assert "8080" in row["remote"].rsplit(":", 1)[-1].split(","), row
    fw = [f for f in row["forwards"] if f.get("port") == 8080]
    assert fw and fw[0]["host_port"] == hp, row

    # state file shape
    st = host.state()
    assert st["kind"] == "host" and st["pid"] == host.pid, st
    assert st["control_port"] == host.cp and st["data_port"] == host.dp, st
    c = host.container(cd.container_id)
    assert {"container_id", "hostname", "peer", "since", "forwards"} <= set(c), c
    assert c["hostname"] == cd.hostname and net.addr(0) in c["peer"], c
    f = host.forward(cd.container_id, 8080)
    assert {"container_id", "hostname", "port", "host_port", "protocol", "process_name", "pid",
            "since"} <= set(f), f
    assert f["protocol"] == "Tcp" and f["container_id"] == cd.container_id and f["host_port"] == hp, f

    # the server stops -> the host port stops accepting
    server.terminate()
    wait_closed(hp, 5, "host port %d to stop accepting after the container's server stopped" % hp)
    wait_for(lambda: host.forward(cd.container_id, 8080) is None, 5, "forward gone from the state file")

    host.wait_event("port_unforwarded", 5)
    evs = host.audit()
    check_audit_shape(evs)
    names = [e["event"] for e in evs]
    assert "container_registered" in names, names
    i_fwd = names.index("port_forwarded")
    assert "port_unforwarded" in names[i_fwd + 1:], "port_unforwarded must follow port_forwarded: %s" % names
    actor = "container:%s" % cd.hostname
    for e in evs:
        if e["event"] in ("container_registered", "port_forwarded", "port_unforwarded"):
            assert e["actor"] == actor, e

    # still connected, no forwards
    rows = [r for r in sandbox.container_rows(host.state_dir) if r.get("name") == cd.hostname]
    assert len(rows) == 1 and not [f for f in rows[0]["forwards"] if f.get("port") == 8080], rows


def test_container_conflict_two_containers_same_port(port8080, sandbox):
    net = sandbox.net(2)
    host = sandbox.host_daemon(net.host_addr)
    free8080 = port_free_on_host(8080)
    contents = ["content of %s\n" % net.hostname(i) for i in range(2)]
    for i in range(2):
        sandbox.http_server(net, i, 8080, contents[i])
    cds = [sandbox.container_daemon(net, i, host) for i in range(2)]
    hps = [cd.wait_forward(8080, timeout=10) for cd in cds]
    assert hps[0] != hps[1], "both containers got host port %d" % hps[0]
    # (8080 may have been taken meanwhile by another test run: then it is busy now)
    if free8080 and 8080 not in hps and port_free_on_host(8080):
        raise AssertionError("8080 was free on the host, yet the forwards are %s" % hps)
    if free8080 and 8080 in hps:
        # the later forward is the one remapped
        since = [host.forward(cd.container_id, 8080)["since"] for cd in cds]
        first = 0 if since[0] <= since[1] else 1
        assert hps[first] == 8080, "the first forward (%s) was remapped: %s, since %s" % (
            cds[first].hostname, hps, since)
    for i in range(2):
        wait_for(lambda: http_body(hps[i]) is not None, 5, "host port %d to answer" % hps[i])

    for n in range(20):
        i = n % 2
        body = http_body(hps[i])
        assert body == contents[i], (
            "request %d to host port %d (container %s's forward) got %r, expected %r"
            % (n, hps[i], cds[i].hostname, body, contents[i]))

    rows = {r["name"]: r for r in sandbox.container_rows(host.state_dir)}
    for i in range(2):
        assert cds[i].hostname in rows, rows
        assert "127.0.0.1:%d" % hps[i] in rows[cds[i].hostname]["local"].split(","), rows


def test_container_daemon_killed_drops_forwards(sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    sandbox.echo_server(net, 0, 7101, 7102)
    cd = sandbox.container_daemon(net, 0, host)
    hps = [cd.wait_forward(p) for p in (7101, 7102)]

    t0 = time.monotonic()
    cd.proc.kill9()
    for hp in hps:
        wait_closed(hp, max(0.1, 5 - (time.monotonic() - t0)),
                    "host port %d to close after the container daemon was killed" % hp)
    wait_for(lambda: host.state() is not None and host.container(cd.container_id) is None,
             max(0.1, 5 - (time.monotonic() - t0)), "the state file to drop the container")
    took = time.monotonic() - t0
    assert took < 5, "listeners/state took %.1fs to go" % took
    assert not [r for r in sandbox.container_rows(host.state_dir) if r.get("name") == cd.hostname]
    assert host.proc.alive(), "host daemon died: %s" % host.proc.tail()


def test_container_host_daemon_restart_reannounces(port8080, sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    content = "restart test %s\n" % net.hostname(0)
    sandbox.http_server(net, 0, 8080, content)
    cd = sandbox.container_daemon(net, 0, host)
    hp = cd.wait_forward(8080)
    wait_for(lambda: _body_is(hp, content), 5, "port %d to answer before the restart" % hp)

    host.stop()  # SIGTERM: exit 0, no sanitizer report
    wait_closed(hp, 5, "host port %d to close with the host daemon" % hp)
    assert cd.proc.alive(), "container daemon exited when the host went away: %s" % cd.proc.tail()
    assert not sandbox.container_rows(host.state_dir), (
        "status shows container rows with no host daemon running: %r" % sandbox.status(host.state_dir))

    host2 = sandbox.host_daemon(net.host_addr, cp=host.cp, dp=host.dp, state_dir=host.state_dir)
    cd.host = host2
    hp2 = cd.wait_forward(8080, timeout=10)
    wait_for(lambda: _body_is(hp2, content), 5, "port %d to answer after the restart" % hp2)
    st = host2.state()
    assert st["pid"] == host2.pid, st
    assert host2.container(cd.container_id)["hostname"] == cd.hostname


def test_container_auth_wrong_and_empty_token(port8080, sandbox):
    net = sandbox.net(3)
    host = sandbox.host_daemon(net.host_addr)
    for i in range(3):
        sandbox.http_server(net, i, 8080, "auth test %d\n" % i)

    # wrong token
    bad = sandbox.container_daemon(net, 0, host, token=WRONG_TOKEN)
    bad.proc.any_exit_ok = True  # it may give up (non-zero exit) or keep retrying
    ev = host.wait_event("auth_failed", 10)[0]
    # checked at the end, so that the rest of the test still runs
    actors = [(ev, net.addr(0), bad.hostname)]
    assert host.container(bad.container_id) is None, host.state()
    assert not sandbox.container_rows(host.state_dir), sandbox.status(host.state_dir)

    # empty token: refused locally (no token) or by the host
    n_failed = len(host.events("auth_failed"))
    empty = sandbox.container_daemon(net, 1, host, token="")
    empty.proc.any_exit_ok = True
    wait_for(lambda: (not empty.proc.alive() and empty.proc.returncode != 0)
             or len(host.events("auth_failed")) > n_failed, 10,
             "the empty-token container daemon to give up or be refused")
    assert host.container(empty.container_id) is None, host.state()
    assert not sandbox.container_rows(host.state_dir), sandbox.status(host.state_dir)

    # raw Registers: empty and wrong token
    for tok in ("", WRONG_TOKEN):
        n_failed = len(host.events("auth_failed"))
        fake = sandbox.fake(host)
        ack = fake.register(token=tok)
        assert ack.get("success") is False, "Register with token %r got %r" % (tok, ack)
        ev = host.wait_event("auth_failed", 5, count=n_failed + 1)[-1]
        actors.append((ev, net.host_addr, fake.hostname))
        assert host.container(fake.container_id) is None
        fake.close()
    for e in host.events("auth_failed"):
        assert TOKEN not in e["detail"] and WRONG_TOKEN not in e["detail"], "token in the audit: %r" % e

    # the right token works
    good = sandbox.container_daemon(net, 2, host)
    hp = good.wait_forward(8080)
    wait_for(lambda: http_body(hp) == "auth test 2\n", 5, "the right-token container's port to answer")
    rows = sandbox.container_rows(host.state_dir)
    assert [r["name"] for r in rows] == [good.hostname], rows

    # The actor is who really asked (its address); the name it claimed is
    # only a claim, so it goes into the detail.
    wrong = [(e["actor"], "peer:%s" % addr) for e, addr, hn in actors
             if e["actor"] != "peer:%s" % addr or "hostname %s" % hn not in e["detail"]]
    assert not wrong, ("auth_failed actor must be peer:<address>, the claimed hostname in the "
                       "detail; (got, expected): %r\naudit:\n%s" % (wrong, host.audit_text()))
