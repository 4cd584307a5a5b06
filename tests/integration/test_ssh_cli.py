"""The command line as a user (or an agent with --json) sees it."""

import json
import os
import queue
import shlex
import signal
import stat
import threading
import time

import pytest

from helpers import (AUDIT_FIELDS, AUDIT_TS_RE, EVENTS, HEALTH, ISO_Z_RE, MiB, STATES, can_connect,
                     echo_roundtrip, free_port, parse_ts, proc_alive, proc_comm, wait_for)


def _up(db, *names):
    r = db.run("up", *names)
    assert r.returncode == 0, r
    return r


# --------------------------------------------------------------------------
# up / down / restart


def test_up_twice_keeps_one_supervisor(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    _up(db, "web")
    b0 = db.bridge("web")

    r = db.run("up", "web")
    assert r.returncode == 0, r
    assert "already running" in r.output.lower(), r
    b1 = db.bridge("web")
    assert (b1["pid"], b1["ssh_pid"], b1["state"]) == (b0["pid"], b0["ssh_pid"], "connected"), (b0, b1)
    sups = [p for p in db.our_processes() if proc_comm(p) != "ssh"]
    assert sups == [b0["pid"]], "expected exactly one supervisor: %r" % db.describe(sups)
    ssh = db.ssh_processes()
    assert ssh == [b0["ssh_pid"]], "expected exactly one ssh: %r" % db.describe(ssh)


def test_concurrent_up_starts_one_supervisor(db, sshd, echo, tunnel):
    """Two `up` racing: the pid file lock lets only one supervisor live."""
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    import subprocess
    procs = [subprocess.Popen([db.bin, "up", "web"], env=db.env(), cwd=db.tmp, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    db.children.extend(procs)
    codes = [p.wait(timeout=40) for p in procs]
    assert codes == [0, 0], codes
    b = db.wait_state("web", "connected", 5)
    wait_for(lambda: [p for p in db.our_processes() if proc_comm(p) != "ssh"] == [b["pid"]], 5,
             "exactly one supervisor (pid %s)" % b["pid"])
    assert len(db.ssh_processes()) == 1, db.describe(db.our_processes())


def test_down_stops_everything_and_is_idempotent(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    _up(db, "web")
    b0 = db.bridge("web")

    r = db.run("down", "web", timeout=20)
    assert r.returncode == 0, r
    assert r.elapsed < 6.5, "down took %.1fs" % r.elapsed
    b = db.bridge("web")
    assert b["state"] == "stopped" and b["pid"] is None, b
    assert not proc_alive(b0["pid"]) and not proc_alive(b0["ssh_pid"]), b0
    db.wait_no_processes(3, "no processes after down")
    assert db.event_names("web")[-1] == "bridge_stopped", db.audit_text("web")
    wait_for(lambda: not can_connect(remote_port), 5, "remote listener released after down")

    r = db.run("down", "web")
    assert r.returncode == 0, r
    r = db.run("down")  # all
    assert r.returncode == 0, r


def test_restart_gives_a_new_ssh_and_keeps_working(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    _up(db, "web")
    b0 = db.bridge("web")
    r = db.run("restart", "web")
    assert r.returncode == 0, r
    b1 = db.wait_state("web", "connected", 10)
    assert b1["ssh_pid"] != b0["ssh_pid"], (b0, b1)
    assert not proc_alive(b0["ssh_pid"])
    wait_for(lambda: can_connect(remote_port), 5, "forward after restart")
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_foreground_signal_tears_down_exit_0(db, sshd, echo, tunnel, sig):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    p = db.popen("up", "web", "--foreground")
    b = db.wait_state("web", "connected", 20)
    assert p.poll() is None, "--foreground returned while the tunnel is up"
    wait_for(lambda: can_connect(remote_port), 5, "forward while in foreground")
    p.send_signal(sig)
    try:
        rc = p.wait(timeout=10)
    except Exception:
        raise AssertionError("--foreground did not exit within 10s of %s" % sig.name)
    assert rc == 0, (rc, p.stderr.read().decode(errors="replace")[-2000:])
    wait_for(lambda: not proc_alive(b["ssh_pid"]), 5, "ssh to be gone after %s" % sig.name)
    b1 = db.bridge("web")
    assert b1["state"] == "stopped", b1
    assert "bridge_stopped" in db.event_names("web")
    db.wait_no_processes(3, "no processes after --foreground exited")


# --------------------------------------------------------------------------
# --dry-run


def _opts(argv):
    """-o values from an argv, whether written '-o K=V' or '-oK=V'."""
    out = {}
    for i, a in enumerate(argv):
        val = None
        if a == "-o" and i + 1 < len(argv):
            val = argv[i + 1]
        elif a.startswith("-o") and len(a) > 2:
            val = a[2:]
        if val and "=" in val:
            k, v = val.split("=", 1)
            out.setdefault(k.lower(), []).append(v)
        elif val and " " in val:
            k, v = val.split(" ", 1)
            out.setdefault(k.lower(), []).append(v)
    return out


@pytest.mark.parametrize("direction", ["reverse", "local"])
def test_dry_run_prints_exact_ssh_argv_and_starts_nothing(db, sshd, tunnel, direction):
    remote_port, local_port = free_port(), free_port()
    db.write_config({"web": tunnel(sshd, remote_port, local_port, direction=direction)})
    r = db.run("--dry-run", "up", "web")
    assert r.returncode == 0, r
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    ssh_lines = [ln for ln in lines if ln.lstrip().startswith("ssh")]
    assert len(ssh_lines) == 1, "expected one shell-quoted ssh line:\n%s" % r.stdout
    argv = shlex.split(ssh_lines[0])
    assert argv[0] == "ssh", argv
    assert "-N" in argv, argv
    o = _opts(argv)
    expect = {"exitonforwardfailure": "yes", "batchmode": "yes", "serveraliveinterval": "1",
              "serveralivecountmax": "2", "controlmaster": "no", "controlpath": "none",
              "stricthostkeychecking": "yes", "userknownhostsfile": sshd.known_hosts}
    for k, v in expect.items():
        assert o.get(k) == [v], "-o %s=%s expected exactly once in %r" % (k, v, argv)
    assert sshd.client_key in argv, argv
    assert any(str(sshd.port) in a for a in argv), argv
    assert "root@127.0.0.1" in argv or ("-l" in argv and "127.0.0.1" in argv), argv
    if direction == "reverse":
        i = argv.index("-R")
        assert argv[i + 1] == "%d:127.0.0.1:%d" % (remote_port, local_port), argv
        assert "-L" not in argv
    else:
        i = argv.index("-L")
        assert argv[i + 1] == "127.0.0.1:%d:127.0.0.1:%d" % (local_port, remote_port), argv
        assert "-R" not in argv
    assert db.bridge("web")["state"] == "stopped"
    assert not db.our_processes(), db.describe(db.our_processes())
    assert not os.path.exists(os.path.join(db.state_dir, "web.pid"))


# --------------------------------------------------------------------------
# status


def test_status_json_schema_and_human_table(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})

    stopped = db.bridge("web")
    assert stopped["state"] == "stopped" and stopped["pid"] is None, stopped

    _up(db, "web")
    doc = db.status()
    assert set(doc) >= {"bridges"} and isinstance(doc["bridges"], list), doc
    (b,) = doc["bridges"]
    required = {"name", "kind", "state", "pid", "ssh_pid", "since", "local", "remote", "reconnects",
                "health", "last_event", "reason", "direction", "actor"}
    assert required <= set(b), "missing fields: %r" % (required - set(b))
    assert b["name"] == "web"
    assert b["kind"] == "ssh"
    assert b["state"] == "connected" and b["state"] in STATES
    assert isinstance(b["pid"], int) and proc_alive(b["pid"]), b
    assert isinstance(b["ssh_pid"], int) and proc_comm(b["ssh_pid"]) == "ssh", b
    assert isinstance(b["since"], str) and ISO_Z_RE.match(b["since"]), b["since"]
    assert abs(time.time() - parse_ts(b["since"]).timestamp()) < 120, b["since"]
    assert isinstance(b["local"], str) and str(echo.port) in b["local"], b
    assert isinstance(b["remote"], str) and str(remote_port) in b["remote"], b
    assert isinstance(b["reconnects"], int) and b["reconnects"] == 0, b
    assert b["health"] in HEALTH, b
    assert b["last_event"] in EVENTS, b
    assert b["reason"] is None or isinstance(b["reason"], str), b
    assert b["direction"] == "reverse", b
    assert b["actor"] == "tester", b

    r = db.run("status")
    assert r.returncode == 0, r
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    header = next((ln for ln in lines if "NAME" in ln and "STATE" in ln), None)
    assert header is not None, "no header with NAME and STATE:\n%s" % r.stdout
    rows = [ln for ln in lines if ln.split() and ln.split()[0] == "web"]
    assert rows and "connected" in rows[0], r.stdout
    assert "\x1b[" not in r.stdout, "colour codes with --no-color/NO_COLOR and no tty"


def test_state_files_and_permissions(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    _up(db, "web")
    st = os.stat(db.state_dir)
    assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    for suffix in (".pid", ".state", ".log"):
        path = os.path.join(db.state_dir, "web" + suffix)
        assert os.path.isfile(path), path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, (path, oct(os.stat(path).st_mode))
    assert db.read_pidfile("web") == db.bridge("web")["pid"]
    with open(os.path.join(db.state_dir, "web.state")) as f:
        json.load(f)


def test_global_options_anywhere_and_env_aliases(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    _up(db, "web")
    no_env = {"DEVBRIDGE_STATE_DIR": None, "DEVBRIDGE_CONFIG": None}

    # options after the subcommand and after the name
    r = db.run("status", "web", "--json", "--state-dir", db.state_dir, "--config", db.config, env=no_env)
    assert r.returncode == 0, r
    assert r.json()["bridges"][0]["state"] == "connected", r

    # ops-bridge's variable names
    r = db.run("--json", "status", env=dict(no_env, BRIDGE_STATE_DIR=db.state_dir, BRIDGE_CONFIG=db.config))
    assert r.returncode == 0, r
    assert [b["state"] for b in r.json()["bridges"]] == ["connected"], r

    # the other global flags are accepted anywhere too
    r = db.run("status", "-v", "--no-color", "-y", "web")
    assert r.returncode == 0 and "connected" in r.stdout, r

    r = db.run("--version")
    assert r.returncode == 0 and r.stdout.strip(), r
    r = db.run("--help")
    assert r.returncode == 0 and "up" in r.stdout, r


def test_config_check_prints_plan(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    r = db.run("config", "check")
    assert r.returncode == 0, r
    assert "web" in r.stdout and str(remote_port) in r.stdout, r
    assert not db.our_processes()
    r = db.run("--json", "config", "check")
    assert r.returncode == 0, r
    assert "web" in json.dumps(r.json()), r


def test_doctor_ready(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    r = db.run("doctor")
    assert r.returncode == 0, r
    assert "ssh" in r.stdout.lower(), r
    r = db.run("--json", "doctor")
    assert r.returncode == 0, r
    r.json()


# --------------------------------------------------------------------------
# logs


def _check_audit_event(e, name="web"):
    assert set(e) == AUDIT_FIELDS, "audit fields: %r" % e
    assert AUDIT_TS_RE.match(e["ts"]), e["ts"]
    assert e["tunnel"] == name, e
    assert e["event"] in EVENTS, e
    assert e["actor"] == "tester" and e["actor_class"] == "automation", e
    assert e["detail"] is None or isinstance(e["detail"], str), e


def test_audit_log_format_and_logs_n(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    _up(db, "web")
    raw = db.events("web")
    names = [e["event"] for e in raw]
    assert names[:1] == ["bridge_started"] and "bridge_connected" in names, names
    for e in raw:
        _check_audit_event(e)
    ts = [parse_ts(e["ts"]) for e in raw]
    assert ts == sorted(ts), "audit timestamps go backwards: %r" % [e["ts"] for e in raw]

    r = db.run("--json", "logs", "web", "-n", "2")
    assert r.returncode == 0, r
    evs = r.json()["events"]
    assert len(evs) == 2, evs
    for e in evs:
        _check_audit_event(e)
    assert evs == raw[-2:], (evs, raw[-2:])

    r = db.run("logs", "web", "-n", "1")
    assert r.returncode == 0, r
    assert raw[-1]["event"] in r.stdout, r


def test_logs_follow_streams_new_events(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    _up(db, "web")
    b = db.bridge("web")

    p = db.popen("--json", "logs", "web", "-f")
    lines = queue.Queue()

    def reader():
        for raw in p.stdout:
            lines.put(raw.decode(errors="replace"))

    threading.Thread(target=reader, daemon=True).start()
    seen = []

    def drain():
        while True:
            try:
                seen.append(lines.get_nowait())
            except queue.Empty:
                return

    # Synchronise on the follower watching the audit file: it holds the file
    # open or has an inotify instance.  A follower that re-opens the file on
    # every poll shows neither; then go on after a short grace period.
    audit = os.path.realpath(db.audit_path("web"))

    def follower_watching():
        if p.poll() is not None:
            return "exited"
        fd_dir = "/proc/%d/fd" % p.pid
        for fd in os.listdir(fd_dir):
            target = os.readlink(os.path.join(fd_dir, fd))
            if target == audit or "inotify" in target:
                return True
        return False

    try:
        wait_for(follower_watching, 2, "logs -f to watch %s" % audit)
    except AssertionError:
        pass
    assert p.poll() is None, "logs -f exited: rc=%s %r" % (p.returncode, p.stderr.read())
    drain()
    os.kill(b["pid"], signal.SIGHUP)

    def got_reconnecting():
        drain()
        return any(ln.strip() and json.loads(ln).get("event") == "bridge_reconnecting" for ln in seen)

    wait_for(got_reconnecting, 10, "logs -f to stream bridge_reconnecting after SIGHUP")
    for ln in seen:
        if ln.strip():
            _check_audit_event(json.loads(ln))
    p.kill()
    p.wait(timeout=5)
