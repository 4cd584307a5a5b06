"""The OpsCatalog (catalog_path, docs/catalog.md) as a user and a script see
it: targets, catalog list/validate/show on tests/catalogs/valid, validate
on one broken catalog per rule (exit 3, the message, the exact
FILE:LINE:COL), an invalid catalog stopping ordinary commands, an inline
tunnel shadowing a bridge, and a catalog bridge up against a real sshd."""

import os
import shutil
import sys

import pytest

from helpers import REPO_ROOT, MiB, can_connect, echo_roundtrip, free_port, wait_for

CATALOGS = os.path.join(REPO_ROOT, "tests", "catalogs")
VALID = os.path.join(CATALOGS, "valid")
sys.path.insert(0, CATALOGS)

from sshd_copy import copy_for_sshd  # noqa: E402


def cat(db, config, *args, json_out=False):
    argv = (["--json"] if json_out else []) + ["--config", config] + list(args)
    return db.run(*argv, timeout=30)


def cfile(root, *parts):
    return os.path.join(root, "catalog", "domains", *parts)


@pytest.fixture
def valid():
    return os.path.join(VALID, "config.yaml")


# --------------------------------------------------------------------------
# every command on the valid catalog, for people and with --json


def test_targets(db_nosshd, valid):
    r = cat(db_nosshd, valid, "targets")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "DOMAIN", "SSH", "PORT", "TAGS"], r
    assert [ln.split()[:2] for ln in lines[1:]] == [["gpu-box", "lab"], ["edge", "ops"],
                                                     ["hub", "ops"]], r
    assert lines[3].split()[2:] == ["ubuntu@hub.example.internal", "2222", "prod,hub"], r

    doc = cat(db_nosshd, valid, "targets", json_out=True).json()
    assert doc["catalog_path"] == os.path.join(VALID, "catalog"), doc
    hub = doc["targets"][2]
    assert hub == {"id": "hub", "domain": "ops", "host": "hub.example.internal",
                   "ssh_user": "ubuntu", "ssh_port": 2222,
                   "ssh_key": os.path.join(db_nosshd.home, ".ssh/id_ops"),
                   "description": "the state hub's host", "tags": ["prod", "hub"],
                   "file": cfile(VALID, "ops", "targets", "hub.yaml")}, hub
    assert doc["targets"][1]["ssh_port"] is None, doc


def test_targets_domain(db_nosshd, valid):
    r = cat(db_nosshd, valid, "targets", "--domain", "lab")
    assert r.returncode == 0, r
    assert [ln.split()[0] for ln in r.stdout.splitlines()[1:]] == ["gpu-box"], r
    doc = cat(db_nosshd, valid, "targets", "-d", "ops", json_out=True).json()
    assert [t["id"] for t in doc["targets"]] == ["edge", "hub"], doc

    r = cat(db_nosshd, valid, "targets", "--domain", "lba")
    assert r.returncode == 57, r
    assert "no domain 'lba' in the catalog (did you mean 'lab'?)" in r.stderr, r
    r = cat(db_nosshd, valid, "targets", "--domain", "lba", json_out=True)
    assert r.returncode == 57, r
    assert r.json()["error"]["name"] == "not_in_catalog", r


def test_targets_show(db_nosshd, valid):
    r = cat(db_nosshd, valid, "targets", "show", "hub")
    assert r.returncode == 0, r
    assert r.stdout.startswith("hub (domain ops, %s)\n" % cfile(VALID, "ops", "targets", "hub.yaml")), r
    assert "  bridges:  state-hub\n" in r.stdout and "  ssh_port: 2222\n" in r.stdout, r

    doc = cat(db_nosshd, valid, "targets", "show", "ops/edge", json_out=True).json()
    assert doc["target"]["id"] == "edge" and doc["target"]["bridges"] == ["edge-metrics"], doc

    r = cat(db_nosshd, valid, "targets", "show", "hbu")
    assert r.returncode == 57, r
    assert "no target 'hbu' in the catalog (did you mean 'hub'?)" in r.stderr, r
    r = cat(db_nosshd, valid, "targets", "show", "nothing-like-it", json_out=True)
    assert r.returncode == 57 and r.json()["error"]["name"] == "not_in_catalog", r


def test_catalog_list(db_nosshd, valid):
    r = cat(db_nosshd, valid, "catalog", "list")
    assert r.returncode == 0, r
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()[1:] if ln.strip()}
    assert rows["lab"][1:4] == ["1", "2", "ml-team"], r
    assert rows["ops"][1:4] == ["2", "1", "platform-team"], r
    assert rows["jupyter"][1:] == ["lab", "gpu-box", "local", "18888", "->", "8888"], r
    assert rows["state-hub"][1:] == ["ops", "hub", "reverse", "8000", "<-", "18000"], r

    doc = cat(db_nosshd, valid, "catalog", "list", json_out=True).json()
    assert [(d["id"], d["targets"], d["bridges"], d["owner"]) for d in doc["domains"]] == [
        ("lab", 1, 2, "ml-team"), ("ops", 2, 1, "platform-team")], doc
    assert doc["domains"][0]["file"] == cfile(VALID, "lab", "domain.yaml"), doc
    assert [b["id"] for b in doc["bridges"]] == ["edge-metrics", "jupyter", "state-hub"], doc


def test_catalog_show(db_nosshd, valid):
    r = cat(db_nosshd, valid, "catalog", "show", "state-hub")
    assert r.returncode == 0, r
    assert "  forward:   reverse: port 18000 on hub.example.internal -> 127.0.0.1:8000 here\n" in r.stdout, r
    assert "  health:    GET http://127.0.0.1:8000/health every 30s\n" in r.stdout, r

    b = cat(db_nosshd, valid, "catalog", "show", "edge-metrics", json_out=True).json()["bridge"]
    assert (b["domain"], b["target"], b["target_domain"], b["host"]) == (
        "lab", "edge", "ops", "edge.example.internal"), b
    assert (b["direction"], b["remote_port"], b["local_port"], b["actor"]) == (
        "reverse", 19100, 9100, "agent.claude"), b
    assert b["health_check"]["tcp_port"] == 9100 and b["shadowed_by_inline"] is False, b
    assert b["file"] == cfile(VALID, "lab", "bridges", "edge-metrics.yaml"), b

    r = cat(db_nosshd, valid, "catalog", "show", "jupiter")
    assert r.returncode == 48, r
    assert "no bridge 'jupiter' in the catalog (did you mean 'jupyter'?)" in r.stderr, r
    r = cat(db_nosshd, valid, "catalog", "show", "jupiter", json_out=True)
    assert r.returncode == 48 and r.json()["error"]["name"] == "unknown_bridge", r


def test_catalog_validate_valid(db_nosshd, valid):
    r = cat(db_nosshd, valid, "catalog", "validate")
    assert r.returncode == 0, r
    assert r.stdout == "%s: valid (2 domains, 3 targets, 3 bridges)\n" % os.path.join(
        VALID, "catalog"), r
    doc = cat(db_nosshd, valid, "catalog", "validate", json_out=True).json()
    assert doc == {"valid": True, "catalog_path": os.path.join(VALID, "catalog"), "domains": 2,
                   "targets": 3, "bridges": 3, "diagnostics": [], "more_diagnostics": 0}, doc


def test_catalog_bridges_are_tunnels(db_nosshd, valid):
    """status and up --dry-run see them with no code of their own."""
    _keys(db_nosshd.home)
    doc = cat(db_nosshd, valid, "status", json_out=True).json()
    assert sorted(b["name"] for b in doc["bridges"]) == ["edge-metrics", "jupyter", "state-hub"], doc
    # each row says where in the catalog it is described
    rows = {b["name"]: b for b in doc["bridges"]}
    assert rows["jupyter"]["catalog"]["domain"] == "lab", rows["jupyter"]
    assert rows["jupyter"]["catalog"]["file"].endswith("domains/lab/bridges/jupyter.yaml"), rows
    r = cat(db_nosshd, valid, "up", "--dry-run", "jupyter", json_out=True)
    assert r.returncode == 0, r
    argv = r.json()["bridges"][0]["argv"]
    assert argv[argv.index("-l") + 1] == "ana", argv
    assert argv[argv.index("-i") + 1] == os.path.join(db_nosshd.home, ".ssh", "id_lab"), argv
    assert argv[argv.index("-L") + 1] == "127.0.0.1:18888:127.0.0.1:8888", argv
    assert argv[-1] == "gpu-box.lab.internal", argv


def test_help(db_nosshd):
    for cmd in ("targets", "catalog"):
        r = db_nosshd.run(cmd, "--help")
        assert r.returncode == 0, r
        assert r.stdout.startswith("usage: devbridge %s" % cmd), r
    r = db_nosshd.run("--help")
    assert "  targets " in r.stdout and "  catalog " in r.stdout, r


def test_no_catalog_path(db_nosshd, tmp_path):
    config = tmp_path / "plain.yaml"
    config.write_text("actors:\n  a:\n    class: human\n")
    for args in (["targets"], ["catalog", "list"], ["catalog", "validate"],
                 ["catalog", "show", "x"], ["targets", "show", "x"]):
        r = cat(db_nosshd, str(config), *args)
        assert r.returncode == 3, r
        assert "the config has no catalog_path" in r.stderr, r
        r = cat(db_nosshd, str(config), *args, json_out=True)
        assert r.json()["error"]["name"] == "invalid_config", r


def test_usage(db_nosshd, valid):
    for args in (["targets", "show"], ["targets", "extra"], ["catalog"], ["catalog", "lst"],
                 ["catalog", "show"], ["targets", "--domain", "lab", "show", "hub"]):
        r = cat(db_nosshd, valid, *args)
        assert r.returncode == 2, r


# --------------------------------------------------------------------------
# validate: one broken catalog per rule


BROKEN = {
    "unknown-target": [
        ("ops/bridges/state-hub.yaml", 1, 9, "target: unknown target 'hubb' (did you mean 'hub'?)"),
    ],
    "duplicate-id": [
        ("ops/targets/hub.yaml", 1, 1, "duplicate target id 'hub': also in domain 'lab' (%s)"
         % cfile(os.path.join(CATALOGS, "duplicate-id"), "lab", "targets", "hub.yaml")),
        ("ops/bridges/web.yaml", 1, 1, "duplicate bridge id 'web': also in domain 'lab' (%s)"
         % cfile(os.path.join(CATALOGS, "duplicate-id"), "lab", "bridges", "web.yaml")),
    ],
    "bad-field": [
        ("ops/bridges/state-hub.yaml", 2, 14, 'remote_port: expected an integer 1-65535, got "99999"'),
        ("ops/bridges/state-hub.yaml", 3, 1, "unknown key 'local_prot' (did you mean 'local_port'?)"),
        ("ops/bridges/state-hub.yaml", 5, 12, "direction: expected 'reverse' or 'local', got \"sideways\""),
        ("ops/bridges/state-hub.yaml", 1, 1, "missing required field 'local_port'"),
    ],
    "command-option": [
        # a catalog is data: nothing in it runs a command or loads code here
        ("ops/targets/hub.yaml", 4, 13, "ssh_config: refused in a catalog: ssh reads the file (-F) as its config"),
        ("ops/targets/hub.yaml", 7, 3, "ssh_options.proxycommand: refused in a catalog: ProxyCommand runs a command"),
        ("ops/targets/hub.yaml", 8, 3, "ssh_options.KnownHostsCommand: refused in a catalog"),
        ("ops/targets/hub.yaml", 9, 3, "ssh_options.PKCS11Provider: refused in a catalog: PKCS11Provider loads a "
         "shared library into ssh, and a catalog is data anyone who can push to it writes, never code run as you; "
         "set it in a tunnel of your own config or in ~/.ssh/config, which you control"),
        ("ops/targets/hub.yaml", 10, 3, "ssh_options.Match: refused in a catalog: Match can run a command"),
    ],
    "undefined-actor": [
        ("ops/bridges/state-hub.yaml", 4, 8, "actor: unknown actor 'agent.claud' (did you mean 'agent.claude'?)"),
    ],
    "local-port-clash": [
        ("ops/bridges/cache.yaml", 3, 13, "local_port: port 16379 is already used by tunnel 'cache-inline' (%s:8)"
         % os.path.join(CATALOGS, "local-port-clash", "config.yaml")),
        ("ops/bridges/db-b.yaml", 3, 13, "local_port: port 15432 is already used by bridge 'db-a' (%s:3)"
         % cfile(os.path.join(CATALOGS, "local-port-clash"), "ops", "bridges", "db-a.yaml")),
    ],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_validate_broken(db_nosshd, name):
    root = os.path.join(CATALOGS, name)
    config = os.path.join(root, "config.yaml")
    want = [(cfile(root, f), line, col, msg) for f, line, col, msg in BROKEN[name]]

    r = cat(db_nosshd, config, "catalog", "validate")
    assert r.returncode == 3, r
    lines = r.stderr.splitlines()
    got = [ln for ln in lines if not ln.startswith("devbridge:")]
    assert [ln.split(": ", 1)[0] for ln in got] == ["%s:%d:%d" % w[:3] for w in want], r
    for ln, w in zip(got, want):
        assert w[3] in ln, (w, ln)
    assert lines[-1] == "devbridge: invalid catalog %s: %d error%s" % (
        os.path.join(root, "catalog"), len(want), "" if len(want) == 1 else "s"), r
    assert r.stdout == "", r

    r = cat(db_nosshd, config, "catalog", "validate", json_out=True)
    assert r.returncode == 3, r
    doc = r.json()
    assert doc["valid"] is False and doc["error"]["name"] == "invalid_config", doc
    assert [(d["file"], d["line"], d["column"]) for d in doc["diagnostics"]] == [w[:3] for w in want], doc
    for d, w in zip(doc["diagnostics"], want):
        assert w[3] in d["message"], (w, d)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_invalid_catalog_stops_ordinary_commands(db_nosshd, name):
    """Nothing starts on an invalid config, and an invalid catalog is one."""
    root = os.path.join(CATALOGS, name)
    config = os.path.join(root, "config.yaml")
    first = BROKEN[name][0]
    for args in (["status"], ["up", "--dry-run"], ["targets"], ["catalog", "list"]):
        r = cat(db_nosshd, config, *args)
        assert r.returncode == 3, r
        assert "%s:%d:%d: " % (cfile(root, first[0]), first[1], first[2]) in r.stderr, r
        assert "nothing was started" in r.stderr, r
    r = cat(db_nosshd, config, "status", json_out=True)
    assert r.returncode == 3, r
    diag = r.json()["error"]["diagnostics"][0]
    assert (diag["file"], diag["line"], diag["column"]) == (cfile(root, first[0]), first[1], first[2]), r


def test_catalog_tree_problems(db_nosshd, tmp_path):
    """Symlinks are not followed, stray files and a missing domain.yaml are
    named, a missing catalog_path is said at the config's key."""
    root = tmp_path / "c"
    shutil.copytree(VALID, str(root))
    bridges = root / "catalog" / "domains" / "lab" / "bridges"
    (bridges / "notes.txt").write_text("not a bridge\n")
    (bridges / ".gitkeep").write_text("")
    outside = tmp_path / "outside.yaml"
    outside.write_text("target: hub\nremote_port: 1\nlocal_port: 2\nactor: agent.claude\n")
    os.symlink(str(outside), str(bridges / "linked.yaml"))
    os.unlink(str(root / "catalog" / "domains" / "ops" / "domain.yaml"))
    config = str(root / "config.yaml")
    r = cat(db_nosshd, config, "catalog", "validate")
    assert r.returncode == 3, r
    assert "%s: a symbolic link: not followed" % (bridges / "linked.yaml") in r.stderr, r
    assert "%s: not a .yaml file" % (bridges / "notes.txt") in r.stderr, r
    assert ".gitkeep" not in r.stderr, r
    assert "%s: missing: every domain has its domain.yaml" % (
        root / "catalog" / "domains" / "ops" / "domain.yaml") in r.stderr, r

    (root / "config.yaml").write_text("catalog_path: nowhere\nactors: {}\n")
    r = cat(db_nosshd, config, "catalog", "validate")
    assert r.returncode == 3, r
    assert "%s:1:15: catalog_path: %s: No such file or directory" % (config, root / "nowhere") in r.stderr, r


# --------------------------------------------------------------------------
# an inline tunnel of a bridge's name wins, and config check says so


def _keys(home):
    os.makedirs(os.path.join(home, ".ssh"), exist_ok=True)
    for k in ("id_ops", "id_lab"):
        path = os.path.join(home, ".ssh", k)
        with open(path, "w") as f:
            f.write("not really a key\n")
        os.chmod(path, 0o600)


def test_inline_tunnel_wins(db_nosshd, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(VALID, str(root))
    _keys(db_nosshd.home)
    config = root / "config.yaml"
    inline = ("tunnels:\n"
              "  jupyter:\n"
              "    host: other.example.internal\n"
              "    ssh_user: me\n"
              "    ssh_key: ~/.ssh/id_ops\n"
              "    direction: local\n"
              "    local_port: 28888\n"
              "    remote_port: 8888\n"
              "    actor: operator.ana\n")
    config.write_text(inline + config.read_text())
    bridge = cfile(str(root), "lab", "bridges", "jupyter.yaml")

    r = cat(db_nosshd, str(config), "config", "check")
    assert r.returncode == 0, r
    warning = ("%s:2:3: warning: tunnel 'jupyter' shadows the catalog bridge of the same name "
               "(%s:1:1): the inline tunnel is the one used" % (config, bridge))
    assert warning in r.stderr.splitlines(), r
    assert "  from the catalog: domain ops, %s\n" % cfile(str(root), "ops", "bridges", "state-hub.yaml") in r.stdout, r

    doc = cat(db_nosshd, str(config), "config", "check", json_out=True).json()
    tunnels = {t["name"]: t for t in doc["tunnels"]}
    assert tunnels["jupyter"]["source"] == "config" and tunnels["jupyter"]["catalog"] is None, tunnels
    assert tunnels["jupyter"]["host"] == "other.example.internal", tunnels
    assert tunnels["state-hub"]["source"] == "catalog", tunnels
    assert tunnels["state-hub"]["catalog"] == {
        "domain": "ops", "file": cfile(str(root), "ops", "bridges", "state-hub.yaml")}, tunnels
    assert [w for w in doc["warnings"] if "shadows" in w["message"]] == [{
        "file": str(config), "line": 2, "column": 3,
        "message": "tunnel 'jupyter' shadows the catalog bridge of the same name (%s:1:1): "
                   "the inline tunnel is the one used" % bridge}], doc

    b = cat(db_nosshd, str(config), "catalog", "show", "jupyter", json_out=True).json()["bridge"]
    assert b["shadowed_by_inline"] is True and b["inline_tunnel"] == "%s:2:3" % config, b
    r = cat(db_nosshd, str(config), "catalog", "show", "jupyter")
    assert "  shadowed:  by the inline tunnel at %s:2:3, which `up jupyter` runs\n" % config in r.stdout, r


# --------------------------------------------------------------------------
# a catalog bridge against a real sshd: up, status, logs, down


def test_catalog_bridge_up_status_down(db, sshd, echo, tmp_path):
    local = free_port()
    copy = copy_for_sshd(str(tmp_path / "c"), sshd.port, "root", sshd.client_key,
                         sshd.known_hosts, ports={"jupyter": (echo.port, local)}, health=False)
    # db's own config (what its helpers load): the copy's, catalog_path absolute
    with open(copy) as f:
        text = f.read().replace("catalog_path: catalog\n", "catalog_path: %s/catalog\n"
                                % os.path.dirname(copy))
    with open(db.config, "w") as f:
        f.write(text)
    r = db.run("catalog", "validate")
    assert r.returncode == 0, r

    r = db.run("up", "jupyter")
    assert r.returncode == 0, r
    row = db.bridge("jupyter")
    assert (row["state"], row["direction"], row["local"]) == ("connected", "local", "127.0.0.1:%d" % local), row
    wait_for(lambda: can_connect(local), 5, "the catalog bridge's local port")
    sent, got, n = echo_roundtrip(local, MiB)
    assert (n, got) == (MiB, sent)

    r = db.run("status")
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("jupyter ")]
    assert line and "connected" in line[0], r
    assert "bridge_connected" in db.event_names("jupyter"), db.audit_text("jupyter")

    r = db.run("--json", "check", "jupyter")
    assert r.returncode == 0, r
    assert [(c["name"], c["health"]) for c in r.json()["checks"]] == [("jupyter", "ok")], r
    r = db.run("restart", "jupyter")
    assert r.returncode == 0, r
    b = db.wait_state("jupyter", "connected", 10)
    assert b["ssh_pid"] != row["ssh_pid"], (row, b)

    r = db.run("down", "jupyter")
    assert r.returncode == 0, r
    assert db.bridge("jupyter")["state"] == "stopped"
    wait_for(lambda: not can_connect(local), 5, "the local port released after down")
    db.wait_no_processes(3, "no processes after down")
