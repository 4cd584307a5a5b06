"""SSH: no orphan, no lie (issue 8).

Each test provokes the problem for real: hostile ssh_config files (the
tunnel's own and ~/.ssh/config), a state directory deleted or made
unwritable under a running supervisor, an ssh stopped with SIGSTOP, a
give-up after max_attempts, two racing `up`s.  Everything runs against the
real sshd fixture and the real ssh client.
"""

import os
import pwd
import signal
import shutil
import subprocess
import time

import pytest

from helpers import (MiB, can_connect, echo_roundtrip, free_port, proc_alive, proc_comm, proc_ppid,
                     wait_for)

NOT_CONNECTED = {"starting", "degraded", "reconnecting", "failed", "stopped"}


def _up_connected(db, name="web", env=None):
    r = db.run("up", name, env=env)
    assert r.returncode == 0, r
    b = db.bridge(name)
    assert b["state"] == "connected", b
    return b


def _supervisors(db):
    return [p for p in db.our_processes() if proc_comm(p) != "ssh"]


# --------------------------------------------------------------------------
# hostile ssh_config files


HOSTILE = """\
Host *
  ForkAfterAuthentication yes
  ClearAllForwardings yes
  SessionType default
  StdinNull no
  RequestTTY force
  RemoteCommand sleep 600
  PermitLocalCommand yes
  LocalCommand touch {marker}
  ControlMaster auto
  ControlPath {tmp}/cm-%C
  ControlPersist yes
  ExitOnForwardFailure no
  BatchMode no
  Tunnel yes
  RemoteForward {extra_remote} 127.0.0.1:9
  LocalForward 127.0.0.1:{extra_local} 127.0.0.1:9
"""


def _hostile(db, extra_remote, extra_local):
    return HOSTILE.format(marker=os.path.join(db.tmp, "local-command-ran"), tmp=db.tmp,
                          extra_remote=extra_remote, extra_local=extra_local)


def _assert_supervised(db, b0, remote_port, sshd):
    """One ssh, the supervisor's own child, carrying the tunnel; no fork, no
    LocalCommand, no reconnect loop."""
    ssh = db.ssh_processes()
    assert ssh == [b0["ssh_pid"]], "expected only the supervised ssh: %r" % db.describe(ssh)
    assert proc_ppid(b0["ssh_pid"]) == b0["pid"], "ssh is not the supervisor's child"
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)
    b1 = db.bridge("web")
    assert (b1["state"], b1["ssh_pid"], b1["reconnects"]) == ("connected", b0["ssh_pid"], 0), b1
    names = db.event_names("web")
    assert "bridge_disconnected" not in names and "bridge_reconnecting" not in names, names
    assert not os.path.exists(os.path.join(db.tmp, "local-command-ran")), "LocalCommand ran"


def _assert_down_leaves_nothing(db, remote_port, env=None):
    r = db.run("down", "web", env=env)
    assert r.returncode == 0, r
    db.wait_no_processes(10, "no ssh or supervisor after down")
    wait_for(lambda: not can_connect(remote_port), 10, "remote port %d closed" % remote_port)


def test_hostile_tunnel_ssh_config_cannot_fork_or_drop_the_forward(db, sshd, echo, tunnel):
    remote_port, extra_remote, extra_local = free_port(), free_port(), free_port()
    cfg = os.path.join(db.tmp, "hostile_ssh_config")
    with open(cfg, "w") as f:
        f.write(_hostile(db, extra_remote, extra_local))
    db.write_config({"web": tunnel(sshd, remote_port, echo.port, ssh_config=cfg)})

    # config check shows what the file adds beyond the tunnel's own forward
    r = db.run("config", "check")
    assert r.returncode == 0, r
    assert "remoteforward %d [127.0.0.1]:9" % extra_remote in r.stderr, r
    assert "localforward [127.0.0.1]:%d [127.0.0.1]:9" % extra_local in r.stderr, r
    assert "not managed by devbridge" in r.stderr, r
    doc = db.run("--json", "config", "check").json()
    extra = doc["tunnels"][0]["extra_forwards"]
    assert sorted(extra) == sorted(["remoteforward %d [127.0.0.1]:9" % extra_remote,
                                    "localforward [127.0.0.1]:%d [127.0.0.1]:9" % extra_local]), doc

    b0 = _up_connected(db)
    _assert_supervised(db, b0, remote_port, sshd)
    _assert_down_leaves_nothing(db, remote_port)


def _in_own_home(db, home):
    """Run devbridge in a private mount namespace whose passwd home (ssh reads
    ~/.ssh/config from getpwuid(), not $HOME) is `home`: the supervisors
    started from it inherit the namespace."""
    pw_dir = pwd.getpwuid(os.getuid()).pw_dir
    wrapper = os.path.join(db.tmp, "in-home.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nmount --bind \"$DBTEST_HOME\" %s || exit 99\nexec %s \"$@\"\n"
                % (pw_dir, db.bin))
    os.chmod(wrapper, 0o755)
    return wrapper


def test_hostile_user_ssh_config_in_home_cannot_fork(db, sshd, echo, tunnel):
    if not shutil.which("unshare"):
        pytest.fail("needs unshare (util-linux) for a private ~/.ssh/config")
    remote_port, extra_remote, extra_local = free_port(), free_port(), free_port()
    home = os.path.join(db.tmp, "home")
    os.makedirs(os.path.join(home, ".ssh"), mode=0o700)
    with open(os.path.join(home, ".ssh", "config"), "w") as f:
        f.write(_hostile(db, extra_remote, extra_local))
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    wrapper = _in_own_home(db, home)
    real_bin = db.bin
    env = {"DBTEST_HOME": home}
    db.bin = "/usr/bin/unshare"
    try:
        def run(*args):
            return db.run("--mount", "--propagation", "private", wrapper, *args, env=env)

        r = run("config", "check")
        assert r.returncode == 0, r
        assert "remoteforward %d [127.0.0.1]:9" % extra_remote in r.stderr, r
        r = run("up", "web")
        assert r.returncode == 0, r
        assert "web: connected" in r.stdout, r
    finally:
        db.bin = real_bin
    b0 = db.bridge("web")
    assert b0["state"] == "connected", b0
    _assert_supervised(db, b0, remote_port, sshd)
    _assert_down_leaves_nothing(db, remote_port)


# --------------------------------------------------------------------------
# ssh_options that override the tunnel's own fields


@pytest.mark.parametrize("opt,field", [("Port", "ssh_port"), ("User", "ssh_user"),
                                       ("Hostname", "host"), ("IdentityFile", "ssh_key")])
def test_ssh_options_overriding_a_field_is_a_config_error(db, sshd, tunnel, opt, field):
    text = db.write_config({"web": tunnel(sshd, free_port(), free_port(),
                                          ssh_options={opt: "x"})})
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(opt + ":"))
    for cmd in (("config", "check"), ("up", "web")):
        r = db.run(*cmd)
        assert r.returncode == 3, r
        assert ("%s:%d:7: tunnels.web.ssh_options.%s would override the tunnel's own field: "
                "set tunnels.web.%s instead" % (db.config, line, opt, field)) in r.stderr, r
    assert not db.our_processes()


def test_ssh_options_match_include_and_user_at_host_are_config_errors(db, sshd, tunnel):
    t = tunnel(sshd, free_port(), free_port(), ssh_options={"Match": "all"})
    u = tunnel(sshd, free_port(), free_port(), ssh_options={"Include": "/etc/ssh/x"})
    v = tunnel(sshd, free_port(), free_port(), host="root@127.0.0.1")
    text = db.write_config({"a": t, "b": u, "c": v})
    r = db.run("config", "check")
    assert r.returncode == 3, r
    lines = text.splitlines()
    m = next(i for i, ln in enumerate(lines, 1) if ln.strip().startswith("Match:"))
    assert ("%s:%d:7: tunnels.a.ssh_options.Match: ssh does not accept 'Match' on the command "
            "line" % (db.config, m)) in r.stderr, r
    assert "tunnels.b.ssh_options.Include: ssh does not accept 'Include'" in r.stderr, r
    h = next(i for i, ln in enumerate(lines, 1) if "root@127.0.0.1" in ln)
    assert ("%s:%d:11: tunnels.c: host 'root@127.0.0.1' names a user, which would override "
            "ssh_user" % (db.config, h)) in r.stderr, r


# --------------------------------------------------------------------------
# the state directory deleted under a running supervisor


def test_deleted_state_dir_is_recreated_and_up_does_not_start_a_second(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)
    shutil.rmtree(db.state_dir)

    # the supervisor notices within its 1 s check and locks a new pid file
    b1 = wait_for(lambda: (lambda b: b if b["pid"] == b0["pid"] else None)(db.bridge("web")), 5,
                  "status to see the supervisor again")
    assert b1["state"] == "connected" and b1["ssh_pid"] == b0["ssh_pid"], b1
    assert oct(os.stat(db.state_dir).st_mode & 0o777) == "0o700"
    r = db.run("up", "web")
    assert r.returncode == 0, r
    assert "already running (pid %d)" % b0["pid"] in r.output, r
    assert _supervisors(db) == [b0["pid"]], db.describe(db.our_processes())
    # its diagnostics go to a NAME.out that exists again
    wait_for(lambda: "locked a new one" in open(os.path.join(db.state_dir, "web.out")).read(), 5,
             "NAME.out re-created")
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)
    _assert_down_leaves_nothing(db, remote_port)


def test_deleted_state_dir_then_up_at_once_leaves_one_supervisor(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)
    shutil.rmtree(db.state_dir)
    # This up may lock the new pid file before the old supervisor looks: then
    # its ssh first finds the remote port still held by the old one's (42,
    # retrying), and the old supervisor gives way.
    r = db.run("up", "web")
    assert r.returncode in (0, 42), r

    def one_connected():
        sups = _supervisors(db)
        b = db.bridge("web")
        return b if len(sups) == 1 and sups == [b["pid"]] and b["state"] == "connected" else None

    b = wait_for(one_connected, 15, "exactly one supervisor, connected")
    if b["pid"] != b0["pid"]:
        # the old one gave way, and said so
        assert not proc_alive(b0["pid"])
        assert any("holds it" in (e.get("detail") or "") for e in db.events("web")
                   if e["event"] == "bridge_stopped"), db.audit_text("web")
    assert len(db.ssh_processes()) == 1, db.describe(db.our_processes())
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)
    _assert_down_leaves_nothing(db, remote_port)


# --------------------------------------------------------------------------
# an unwritable state directory (root ignores modes: chattr +i on the
# directory, so no file can be created or renamed in it)


@pytest.fixture
def immutable(db):
    dirs = []

    def make(path):
        r = subprocess.run(["chattr", "+i", path], capture_output=True, text=True)
        assert r.returncode == 0, "chattr +i %s: %s" % (path, r.stderr)
        dirs.append(path)

    def undo():
        while dirs:
            subprocess.run(["chattr", "-i", dirs.pop()], check=True)

    make.undo = undo
    yield make
    undo()


def test_unwritable_state_dir_up_fails_clearly(db, sshd, echo, tunnel, immutable):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    _up_connected(db)
    assert db.run("down", "web").returncode == 0
    immutable(db.state_dir)

    r = db.run("up", "web")
    assert r.returncode == 1, r
    assert ("web: failed: cannot write %s/web.state: Operation not permitted (the state "
            "directory must be writable)" % db.state_dir) in r.stderr, r
    j = db.run("--json", "up", "web")
    assert j.returncode == 1, j
    assert j.json()["error"]["name"] == "error", j
    assert db.bridge("web")["state"] == "stopped"
    # the audit log (an existing file) still takes the failure
    ev = db.events("web")[-1]
    assert ev["event"] == "bridge_failed" and "cannot write" in ev["detail"], ev
    db.wait_no_processes(5, "nothing left running")
    assert not can_connect(remote_port)


def test_unwritable_state_dir_while_running_shows_in_status(db, sshd, echo, tunnel, immutable):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)
    immutable(db.state_dir)
    os.kill(b0["ssh_pid"], signal.SIGKILL)  # a change of state it cannot write

    def flagged():
        b = db.bridge("web")
        return b if b.get("reason") == "state_unwritable" else None

    b = wait_for(flagged, 10, "status to say the state cannot be written")
    assert "cannot write %s/web.state: Operation not permitted" % db.state_dir in b["state_error"], b
    r = db.run("status")
    assert r.returncode == 0, r
    assert "web: its supervisor (pid %d) cannot write" % b0["pid"] in r.stderr, r
    assert "the state shown is the last one it could write" in r.stderr, r

    immutable.undo()
    b = wait_for(lambda: (lambda b: b if b["state"] == "connected" and "state_error" not in b
                          else None)(db.bridge("web")), 10, "fresh state once writable again")
    assert b["ssh_pid"] != b0["ssh_pid"] and b["pid"] == b0["pid"], (b0, b)


# --------------------------------------------------------------------------
# a wedged ssh: SIGSTOP


def test_stopped_ssh_leaves_connected_and_is_replaced(db, sshd, echo, tunnel):
    """interval 1 x count 2: a 2 s ServerAlive window."""
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port)})
    b0 = _up_connected(db)
    t0 = time.monotonic()
    os.kill(b0["ssh_pid"], signal.SIGSTOP)
    try:
        b = db.wait_state("web", NOT_CONNECTED, 2 + 1, what="leave connected within the window")
        left = time.monotonic() - t0
        assert b["state"] == "degraded" and b["health"] == "failing", b
        assert "is stopped" in b["detail"], b
        # nobody resumes it: the supervisor kills it and reconnects
        b1 = db.wait_state("web", "connected", 15, what="a new ssh after the stall")
    finally:
        if proc_alive(b0["ssh_pid"]):
            os.kill(b0["ssh_pid"], signal.SIGCONT)
    took = time.monotonic() - t0
    print("SIGSTOP: degraded after %.1f s, reconnected with a new ssh after %.1f s" % (left, took))
    assert b1["ssh_pid"] != b0["ssh_pid"] and b1["pid"] == b0["pid"], (b0, b1)
    wait_for(lambda: not proc_alive(b0["ssh_pid"]), 5, "the stopped ssh gone")
    evs = db.events("web")
    disc = [e for e in evs if e["event"] == "bridge_disconnected"]
    assert disc and "made no progress" in disc[0]["detail"], db.audit_text("web")
    assert "ssh_stalled" not in (b1.get("reason") or ""), b1
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)
    assert took < 15, took


def test_stopped_ssh_recovers_after_sigcont_and_after_kill(db, sshd, echo, tunnel):
    """interval 3 x count 4: a 12 s window, time to resume it by hand."""
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port, server_alive_interval=3,
                                   server_alive_count_max=4)})
    b0 = _up_connected(db)
    os.kill(b0["ssh_pid"], signal.SIGSTOP)
    try:
        b = db.wait_state("web", "degraded", 3, what="degraded once ssh is stopped")
        assert b["health"] == "failing", b
    finally:
        os.kill(b0["ssh_pid"], signal.SIGCONT)
    b = db.wait_state("web", "connected", 3, what="connected again after SIGCONT")
    assert b["ssh_pid"] == b0["ssh_pid"], (b0, b)
    names = db.event_names("web")
    assert names[-2:] == ["health_check_failed", "health_check_recovered"], names
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)

    # stopped again, then killed: a new ssh
    os.kill(b0["ssh_pid"], signal.SIGSTOP)
    db.wait_state("web", "degraded", 3)
    os.kill(b0["ssh_pid"], signal.SIGKILL)
    b1 = wait_for(lambda: (lambda b: b if b["state"] == "connected" and b["ssh_pid"] != b0["ssh_pid"]
                           else None)(db.bridge("web")), 15, "a new ssh after the kill")
    assert b1["pid"] == b0["pid"], b1
    wait_for(lambda: can_connect(remote_port), 5, "forward back")
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)


def test_down_stops_a_stopped_ssh_at_once(db, sshd, echo, tunnel):
    remote_port = free_port()
    db.write_config({"web": tunnel(sshd, remote_port, echo.port, server_alive_interval=5,
                                   server_alive_count_max=6)})
    b0 = _up_connected(db)
    os.kill(b0["ssh_pid"], signal.SIGSTOP)
    db.wait_state("web", "degraded", 3)
    r = db.run("down", "web")
    assert r.returncode == 0, r
    # SIGCONT after SIGTERM: no 5 s wait for SIGKILL
    assert r.elapsed < 4, r
    db.wait_no_processes(5, "nothing left after down")


# --------------------------------------------------------------------------
# exit codes and messages of up


def test_max_attempts_1_gave_up_exits_41(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port, reconnect={"max_attempts": 1})})
    sshd.kill9()
    r = db.run("up", "web")
    assert r.returncode == 41, r
    assert "gave up after 1 attempt: " in r.stderr, r
    assert "1 attempts" not in r.output, r
    b = db.bridge("web")
    assert (b["state"], b["reason"]) == ("failed", "host_unreachable"), b
    j = db.run("--json", "up", "web")
    assert j.returncode == 41 and j.json()["error"]["name"] == "tunnel_failed", j
    r = db.run("config", "check")
    assert "gives up after 1 failed attempt\n" in r.stdout, r


def test_racing_up_losers_say_already_running_with_the_pid(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    outs = [os.path.join(db.tmp, "race.%d" % i) for i in range(3)]
    procs = []
    for path in outs:
        with open(path, "wb") as f:
            procs.append(subprocess.Popen([db.bin, "up", "web"], env=db.env(), cwd=db.tmp,
                                          stdin=subprocess.DEVNULL, stdout=f,
                                          stderr=subprocess.STDOUT))
    db.children.extend(procs)
    assert [p.wait(timeout=40) for p in procs] == [0, 0, 0]
    b = db.wait_state("web", "connected", 5)
    texts = [open(p).read() for p in outs]
    connected = [t for t in texts if t.startswith("web: connected")]
    losers = [t for t in texts if t not in connected]
    assert len(connected) == 1, texts
    for t in losers:
        assert t == "web: already running (pid %d)\n" % b["pid"], texts
