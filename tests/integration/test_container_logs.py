"""Logs in the state directory stay bounded: past DEVBRIDGE_LOG_MAX_BYTES
(10 MiB by default) a log becomes FILE.1 and a new one starts, for the audit
log (host-daemon.log, NAME.log) and for a daemon's own output when it goes
to a file (NAME.out).  `logs` reads across the rotation, `logs -f` follows
it without losing a line."""

import json
import os
import subprocess
import time

from container_helpers import (  # noqa: F401 - sandbox is a fixture
    random_port_block, sandbox, wait_for)

CAP = 4096


def _events(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def test_container_logs_rotate_and_follow(sandbox):
    net = sandbox.net(0)
    env = {"DEVBRIDGE_LOG_MAX_BYTES": str(CAP)}
    host = sandbox.host_daemon(net.host_addr, env=env)
    audit = host.audit_path()
    fake = sandbox.fake(host)
    assert fake.register().get("success") is True
    host.wait_event("container_registered", 5)  # the log exists: logs -f can start
    follow = subprocess.Popen([sandbox.bin, "--state-dir", host.state_dir, "--json", "logs",
                               "host-daemon", "-n", "0", "-f"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(sandbox.env, **env), universal_newlines=True)
    try:
        base = random_port_block(200)
        ports = list(range(base, base + 150))
        for p in ports:
            assert fake.forward(p)["success"] is True
            fake.send({"type": "Unforward", "port": p})
        wait_for(lambda: any(("port %d " % ports[-1]) in e["detail"] and
                             e["event"] == "port_unforwarded" for e in _events(audit)),
                 10, "the last unforward in the audit log")

        # bounded: the current file and one older generation, each near the cap
        assert os.path.exists(audit + ".1"), os.listdir(host.state_dir)
        for path in (audit, audit + ".1"):
            size = os.path.getsize(path)
            assert size <= CAP + 1024, "%s is %d bytes (cap %d)" % (path, size, CAP)
            assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)
        # `logs` reads both, oldest first, the newest event last
        r = sandbox.cli("--state-dir", host.state_dir, "--json", "logs", "host-daemon", "-n", "0")
        evs = r.json()["events"]
        assert evs == _events(audit + ".1") + _events(audit), "logs -n 0 is not both files in order"
        assert "port %d " % ports[-1] in evs[-1]["detail"], evs[-1]
        r = sandbox.cli("--state-dir", host.state_dir, "--json", "logs", "host-daemon", "-n", "3")
        assert r.json()["events"] == evs[-3:]

        # -f saw every event, across each rotation, once and in order
        want = ["port_forwarded %d" % p for p in ports]

        def followed():
            got = []
            for line in follow_lines:
                try:
                    e = json.loads(line)
                except ValueError:
                    raise AssertionError("logs -f printed a line that is not JSON: %r" % line)
                if e["event"] == "port_forwarded":
                    got.append("port_forwarded %s" % e["detail"].split()[2])
            return got
        follow_lines = []
        pending = [""]
        os.set_blocking(follow.stdout.fileno(), False)

        def caught_up():
            chunk = follow.stdout.read()
            if chunk:
                *whole, pending[0] = (pending[0] + chunk).split("\n")
                follow_lines.extend(whole)
            return followed()[-1:] == want[-1:]
        wait_for(caught_up, 10, "logs -f to show the last forward")
        assert followed() == want, "logs -f lost or repeated lines around a rotation"

        # the daemon's own output (stderr to a file) rotates too: each
        # rejected line is a warning there
        for i in range(60):
            fake.send_raw(b"not json %d\n" % i)
            fake.ping()
        wait_for(lambda: os.path.exists(host.proc.log + ".1"), 10,
                 "the host daemon's output file rotated")
        assert os.path.getsize(host.proc.log) <= CAP + 2048
        fake.close()
    finally:
        follow.terminate()
        follow.wait(timeout=10)
