"""Devcontainer bridge: `devbridge open URL` from inside a container opens
the URL on the host (rewritten to the forwarded port), with refusals."""

import os
import subprocess
import time

from container_helpers import (  # noqa: F401 - sandbox is a fixture
    EXIT_HOST_UNREACHABLE, EXIT_URL_REJECTED, IP, WRONG_TOKEN, PortBlocker, free_port, port8080,
    sandbox, wait_for)


def _lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def test_container_open_url(port8080, sandbox):
    net = sandbox.net(2)
    script, opened = sandbox.browser_script()
    host = sandbox.host_daemon(net.host_addr, browser_cmd=script)
    # Both containers forward 8080; keep 8080 busy on the host so that both
    # are remapped and every rewrite is visible.
    blocker = None
    try:
        blocker = PortBlocker(8080)
    except OSError:
        pass  # someone else holds it: the forwards are remapped anyway
    try:
        cds, hps = [], []
        for i in range(2):
            sandbox.echo_server(net, i, 8080)
            cds.append(sandbox.container_daemon(net, i, host))
            hps.append(cds[i].wait_forward(8080))
    finally:
        if blocker:
            blocker.close()
    assert hps[0] != hps[1], hps
    cd, hp = cds[0], hps[0]
    ns = net.ns(0)
    where = ["--host-addr", net.host_addr, "--control-port", host.cp, "--auth-token", host.token]

    def open_url(url, argv0=None, i=0):
        return sandbox.cli("open", url, *where, ns=net.ns(i), argv0=argv0, timeout=20)

    r = open_url("http://localhost:8080/cb?code=x")
    assert r.returncode == 0, r
    want = "http://localhost:%d/cb?code=x" % hp
    wait_for(lambda: want in _lines(opened), 5, "the browser to receive %s" % want)

    r = open_url("http://127.0.0.1:8080/other")
    assert r.returncode == 0, r
    want2 = "http://127.0.0.1:%d/other" % hp
    wait_for(lambda: want2 in _lines(opened), 5, "the browser to receive %s" % want2)

    # the second container's 8080 is its own forward (identified by source address)
    r = open_url("http://localhost:8080/from-c2", i=1)
    assert r.returncode == 0, r
    wait_for(lambda: [u for u in _lines(opened) if "/from-c2" in u], 5, "the browser to receive c2's URL")
    got = [u for u in _lines(opened) if "/from-c2" in u]
    assert got == ["http://localhost:%d/from-c2" % hps[1]], (
        "open from container 2 (forward 8080 -> %d; container 1's is %d) opened %r"
        % (hps[1], hps[0], got))

    # refused: another scheme, too long
    r = open_url("ftp://x")
    assert r.returncode == EXIT_URL_REJECTED, r
    r = open_url("http://example.test/" + "a" * 2100)
    assert r.returncode == EXIT_URL_REJECTED, r

    # devbridge-open: the binary under another name behaves as `open`
    bindir = sandbox.path("bin")
    os.makedirs(bindir)
    link = os.path.join(bindir, "devbridge-open")
    os.symlink(sandbox.bin, link)
    r = sandbox.cli("http://localhost:8080/via-symlink?state=s", *where, ns=ns, argv0=link)
    assert r.returncode == 0, r
    want3 = "http://localhost:%d/via-symlink?state=s" % hp
    wait_for(lambda: want3 in _lines(opened), 5, "the browser to receive %s" % want3)
    # everything the refused opens would have shown up before this by now
    assert not [u for u in _lines(opened) if u.startswith("ftp:") or "aaaaaaaa" in u], _lines(opened)

    # the audit shows scheme, host and path, never the query
    evs = host.wait_event("url_opened", 5, count=3)
    for e in evs:
        assert "?" not in e["detail"] and "code=x" not in e["detail"] and "state=s" not in e["detail"], e
    assert any("/cb" in e["detail"] for e in evs), evs

    # no host daemon there -> 50
    r = sandbox.cli("open", "http://localhost:8080/", "--host-addr", net.host_addr,
                    "--control-port", free_port(both_families=False), ns=ns)
    assert r.returncode == EXIT_HOST_UNREACHABLE, r

    # rate limit: 6 opens within one second -> at least one refused
    for attempt in range(3):
        before = len(_lines(opened))
        t0 = time.monotonic()
        procs = [subprocess.Popen([IP, "netns", "exec", ns, sandbox.bin, "open",
                                   "http://localhost:8080/burst%d-%d" % (attempt, k)] + [str(a) for a in where],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=sandbox.env, cwd=sandbox.cwd)
                 for k in range(6)]
        results = []
        for p in procs:
            _, err = p.communicate(timeout=20)
            results.append((p.returncode, err.decode(errors="replace")))
        took = time.monotonic() - t0
        codes = [rc for rc, _ in results]
        assert set(codes) <= {0, EXIT_URL_REJECTED}, results
        assert not [e for _, e in results if "Sanitizer" in e or "runtime error:" in e], results
        ok = codes.count(0)
        wait_for(lambda: len(_lines(opened)) - before >= ok, 5, "%d burst URLs opened" % ok)
        if took <= 1.0:
            assert EXIT_URL_REJECTED in codes, (
                "6 opens within %.2fs were all accepted (limit 5/s): %s" % (took, codes))
            break
        if EXIT_URL_REJECTED in codes:
            break
    else:
        raise AssertionError("could not issue 6 opens within one second (last burst took %.2fs)" % took)
    assert len(_lines(opened)) - before == ok, "refused URLs were opened anyway: %r" % _lines(opened)[before:]

    # checked last, so that everything above runs regardless
    wrong = []
    for e in host.events("url_opened"):
        want_actor = "container:%s" % cds[1 if "/from-c2" in e["detail"] else 0].hostname
        if e["actor"] != want_actor:
            wrong.append((e["actor"], want_actor))
    assert not wrong, ("url_opened actor must be container:<hostname> of the container the "
                       "URL came from; (got, expected): %r" % sorted(set(wrong)))


def test_container_open_needs_the_token(sandbox):
    """OpenUrl is refused without the right token (anything that reaches
    the control port could otherwise open URLs in the host's browser), the
    refusal is audited under the address that asked, and nothing opens."""
    net = sandbox.net(1)
    script, opened = sandbox.browser_script()
    host = sandbox.host_daemon(net.host_addr, browser_cmd=script)
    where = ["--host-addr", net.host_addr, "--control-port", host.cp]
    ns = net.ns(0)

    r = sandbox.cli("open", "http://localhost:9/none", *where, ns=ns)
    assert r.returncode == 54 and "no auth token" in r.stderr, r
    r = sandbox.cli("open", "http://localhost:9/wrong", *where, "--auth-token", WRONG_TOKEN, ns=ns)
    assert r.returncode == 51 and "refused our auth token" in r.stderr, r
    # the token from the environment works, as on every other command
    env_ok = sandbox.cli("--json", "open", "http://localhost:9/env", *where, ns=ns,
                         env={"DEVBRIDGE_AUTH_TOKEN": host.token})
    assert env_ok.returncode == 0 and env_ok.json() == {"opened": True,
                                                        "url": "http://localhost:9/env"}, env_ok
    wait_for(lambda: "http://localhost:9/env" in _lines(opened), 5, "the browser to get /env")

    # a raw client: a seed-style OpenUrl (no token field) gets a plain refusal
    fake = sandbox.fake(host)
    fake.send({"type": "OpenUrl", "url": "http://localhost:9/raw"})
    ack, _ = fake.expect("OpenUrlAck")
    assert ack == {"type": "OpenUrlAck", "success": False}, ack
    fake.close()

    evs = host.wait_event("auth_failed", 5, count=3)
    assert [e["actor"] for e in evs] == ["peer:%s" % net.addr(0)] * 2 + ["peer:%s" % net.host_addr], evs
    assert "without a token" in evs[0]["detail"] and "wrong token" in evs[1]["detail"], evs
    assert all(WRONG_TOKEN not in e["detail"] for e in evs), evs
    opened_now = _lines(opened)
    assert not [u for u in opened_now if "/none" in u or "/wrong" in u or "/raw" in u], opened_now
    # nothing registered: the one URL that opened is audited under the address
    ok = host.events("url_opened")
    assert [e["actor"] for e in ok] == ["peer:%s" % net.addr(0)], ok
