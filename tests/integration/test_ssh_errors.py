"""Failures a user runs into: taken ports, bad keys, bad host keys, bad
configs, unknown names.  Each one has its own exit code and message."""

import json
import os
import re
import subprocess

import pytest

from helpers import (REPO_ROOT, SSH_KEYGEN, PortBlocker, can_connect, echo_roundtrip, free_port,
                     parse_ts, wait_for, MiB)

CONFIG_DIR = os.path.join(REPO_ROOT, "tests", "configs")
BAD_CONFIGS = [
    "bad_missing_field.yaml",
    "bad_wrong_type.yaml",
    "bad_unknown_key.yaml",
    "bad_actor_class.yaml",
    "bad_duplicate_local_port.yaml",
    "bad_name.yaml",
]
RETRYING = {"reconnecting", "starting"}
REASON_EVENTS = {"bridge_disconnected", "bridge_reconnecting", "bridge_failed"}


# --------------------------------------------------------------------------
# remote port taken


def test_remote_port_taken_exit_42_backoff_then_recovers(db, sshd, echo, tunnel):
    remote_port = free_port()
    # sshd binds -R listeners for "localhost" on both families; with only
    # one family taken the forward half-succeeds, so take both.
    blocker = PortBlocker(remote_port, families=("4", "6"))
    try:
        db.write_config({"web": tunnel(sshd, remote_port, echo.port,
                                       reconnect={"backoff_initial": 0.2, "backoff_max": 2})})
        r = db.run("--json", "up", "web")
        assert r.returncode == 42, r
        doc = r.json()
        text = json.dumps(doc).lower()
        assert "remote port forwarding failed" in text or "remote_forward_failed" in text, doc
        if "error" in doc:
            assert doc["error"].get("code") == 42, doc

        # left retrying in the background, counting its attempts
        b = db.wait_state("web", RETRYING, 5)
        assert b["pid"] is not None, b
        r0 = b["reconnects"]
        b = wait_for(lambda: (lambda x: x if x["reconnects"] >= r0 + 2 else None)(db.bridge("web")),
                     15, "reconnects to grow past %d" % (r0 + 1), interval=0.1)
        assert b["state"] in RETRYING | {"reconnecting"}, b
        reason = (b.get("reason") or "").lower()
        assert "remote_forward_failed" in reason or "remote port forwarding failed" in reason, \
            "status reason should name the taken remote port: %r" % b

        # the gaps between retries grow (exponential backoff)
        def five_retries():
            evs = [e for e in db.events("web") if e["event"] == "bridge_reconnecting"]
            return evs if len(evs) >= 5 else None
        evs = wait_for(five_retries, 20, "5 bridge_reconnecting events")
        times = [parse_ts(e["ts"]) for e in evs[:5]]
        gaps = [(b_ - a_).total_seconds() for a_, b_ in zip(times, times[1:])]
        assert gaps[-1] > 1.5 * gaps[0], "backoff does not grow: gaps %r" % gaps
        assert gaps[-1] + gaps[-2] > gaps[0] + gaps[1], "backoff does not grow: gaps %r" % gaps

        details = [e.get("detail") or "" for e in db.events("web") if e["event"] in REASON_EVENTS]
        assert any("remote port forwarding failed" in d.lower() for d in details), \
            "no disconnected/reconnecting/failed event names the reason: %r" % details
    finally:
        blocker.close()

    db.wait_state("web", "connected", 10, what="connected once the remote port is free")
    wait_for(lambda: can_connect(remote_port), 5, "forward on %d" % remote_port)
    sent, got, n = echo_roundtrip(remote_port, MiB)
    assert (n, got) == (MiB, sent)


# --------------------------------------------------------------------------
# `up` exit codes


def test_auth_failure_exit_43(db, sshd, echo, tunnel, tmp_path):
    other = str(tmp_path / "unauthorized_key")
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    os.chmod(other, 0o600)
    db.write_config({"web": tunnel(sshd, free_port(), echo.port, ssh_key=other)})
    r = db.run("up", "web")
    assert r.returncode == 43, r
    assert db.state("web") != "connected"


def test_host_key_mismatch_exit_46(db, sshd, echo, tunnel, tmp_path):
    wrong = str(tmp_path / "wrong_host")
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", wrong], check=True)
    kh = str(tmp_path / "wrong_known_hosts")
    with open(wrong + ".pub") as f, open(kh, "w") as out:
        out.write("[127.0.0.1]:%d %s\n" % (sshd.port, f.read().strip()))
    db.write_config({"web": tunnel(sshd, free_port(), echo.port, ssh_options={"UserKnownHostsFile": kh})})
    r = db.run("up", "web")
    # README "Exit codes": 46 host_key_failed (host key unknown or changed)
    assert r.returncode == 46, r
    assert db.state("web") != "connected"


def test_host_unreachable_exit_44(db, sshd, echo, tunnel):
    sshd.kill9()  # connection refused on the ssh port
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    r = db.run("up", "web")
    assert r.returncode == 44, r
    assert db.state("web") in RETRYING, "first attempt failed: it should be left retrying"


def test_local_port_in_use_exit_45(db, sshd, echo, tunnel):
    local_port = free_port()
    blocker = PortBlocker(local_port, families=("4",))
    try:
        db.write_config({"web": tunnel(sshd, echo.port, local_port, direction="local")})
        r = db.run("up", "web")
        assert r.returncode == 45, r
    finally:
        blocker.close()


def test_not_connected_within_timeout_exit_47(db, sshd, echo, tunnel):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    sshd.stop_signal()  # TCP connects, the banner never comes
    r = db.run("up", "web", "--timeout", "2", timeout=30)
    assert r.returncode == 47, r
    assert r.elapsed < 10, "up --timeout 2 took %.1fs" % r.elapsed


# --------------------------------------------------------------------------
# invalid configs: exit 3, FILE:LINE:COL, nothing started


def _assert_nothing_started(db):
    if os.path.isdir(db.state_dir):
        pids = [f for f in os.listdir(db.state_dir) if f.endswith(".pid")]
        assert not pids, "pid files written for an invalid config: %r" % pids
    left = db.our_processes()
    assert not left, "processes started for an invalid config: %r" % db.describe(left)


def _assert_diag(res, path, line=None):
    assert res.returncode == 3, res
    m = re.search(re.escape(os.path.basename(path)) + r":(\d+):(\d+): \S", res.stderr)
    assert m, "stderr should carry FILE:LINE:COL: message for %s:\n%s" % (path, res.stderr)
    assert int(m.group(1)) >= 1 and int(m.group(2)) >= 1, m.group(0)
    if line is not None:
        lines = [int(x) for x in re.findall(re.escape(os.path.basename(path)) + r":(\d+):\d+:", res.stderr)]
        assert line in lines, "expected a diagnostic at line %d, got lines %r:\n%s" % (line, lines, res.stderr)


@pytest.mark.parametrize("fname", BAD_CONFIGS)
def test_bad_config_files_exit_3(db_nosshd, fname):
    db = db_nosshd
    path = os.path.join(CONFIG_DIR, fname)
    assert os.path.isfile(path), "missing test config %s" % path

    r = db.run("--config", path, "config", "check")
    _assert_diag(r, path)

    for cmd in (["up"], ["status"], ["up", "--foreground"]):
        r = db.run("--config", path, *cmd, timeout=20)
        _assert_diag(r, path)
    _assert_nothing_started(db)


@pytest.mark.parametrize("fname", BAD_CONFIGS)
def test_bad_config_json_envelope(db_nosshd, fname):
    db = db_nosshd
    path = os.path.join(CONFIG_DIR, fname)
    assert os.path.isfile(path), "missing test config %s" % path
    r = db.run("--json", "--config", path, "config", "check")
    assert r.returncode == 3, r
    err = r.json().get("error")
    assert isinstance(err, dict), r
    assert err.get("code") == 3 and err.get("name") == "invalid_config", err
    assert isinstance(err.get("message"), str) and err["message"], err
    diags = err.get("diagnostics")
    assert isinstance(diags, list) and diags, err
    for d in diags:
        assert {"file", "line", "column", "message"} <= set(d), d
        assert isinstance(d["line"], int) and d["line"] >= 1, d
        assert isinstance(d["column"], int) and d["column"] >= 1, d
        assert os.path.basename(d["file"]) == fname, d
    r = db.run("--json", "--config", path, "up")
    assert r.returncode == 3 and r.json()["error"]["code"] == 3, r
    _assert_nothing_started(db)


def _line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in config" % needle)


@pytest.mark.parametrize("problem", ["mode_0644", "missing"])
def test_bad_ssh_key_exit_3_at_the_key(db, sshd, echo, tunnel, tmp_path, problem):
    key = str(tmp_path / ("key_%s" % problem))
    if problem == "mode_0644":
        with open(sshd.client_key) as src, open(key, "w") as dst:
            dst.write(src.read())
        os.chmod(key, 0o644)
    text = db.write_config({"web": tunnel(sshd, free_port(), echo.port, ssh_key=key)})
    line = _line_of(text, "ssh_key:")
    r = db.run("up", "web")
    _assert_diag(r, db.config, line=line)
    r = db.run("config", "check")
    _assert_diag(r, db.config, line=line)
    _assert_nothing_started(db)


def test_tunnel_name_escaping_state_dir_exit_3(db, sshd, echo, tunnel):
    text = db.write_config({"../x": tunnel(sshd, free_port(), echo.port)})
    r = db.run("config", "check")
    _assert_diag(r, db.config, line=_line_of(text, "../x"))
    r = db.run("up")
    _assert_diag(r, db.config)
    _assert_nothing_started(db)
    assert not os.path.exists(os.path.join(db.tmp, "x.pid"))


# --------------------------------------------------------------------------
# JSON error envelope


@pytest.mark.parametrize("cmd", [["status", "nosuch"], ["up", "nosuch"], ["logs", "nosuch"]])
def test_json_error_envelope_for_unknown_tunnel(db, sshd, echo, tunnel, cmd):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    r = db.run("--json", *cmd)
    assert r.returncode != 0, r
    doc = r.json()
    assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), doc
    err = doc["error"]
    assert err.get("code") == r.returncode, (err, r.returncode)
    assert isinstance(err.get("name"), str) and err["name"], err
    assert "nosuch" in err.get("message", ""), err
    _assert_nothing_started(db)
