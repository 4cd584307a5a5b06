"""`devbridge mcp` as an AI agent's client sees it: the official MCP
TypeScript SDK (tests/mcp, `npm ci` by scripts/install-deps.sh) over its
StdioClientTransport, driven by tests/mcp/sdk_client.mjs.

Every tool is listed with its schemas and annotations, called, and its
structuredContent checked against its outputSchema twice: by the SDK's
callTool (it throws on a mismatch) and by an explicit Ajv check.  A
structuredContent must equal the command's --json document, and an error
must carry the code, name and message the CLI's --json envelope gives for
the same input: both are compared with the CLI run here.
"""

import json
import os
import select
import shutil
import subprocess

import pytest

from helpers import REPO_ROOT, free_port, proc_state, sanitizer_report, wait_for
from intercept_helpers import TagServer, roundtrip
from k8s_helpers import echo_pod, kb, rsim, service  # noqa: F401

MCP_DIR = os.path.join(REPO_ROOT, "tests", "mcp")
SDK_CLIENT = os.path.join(MCP_DIR, "sdk_client.mjs")
CATALOGS = os.path.join(REPO_ROOT, "tests", "catalogs")

TOOLS = {
    "bridge_up", "bridge_down", "bridge_restart", "bridge_status", "bridge_logs",
    "bridge_check", "bridge_wait",
    "catalog_list_targets", "catalog_show_target", "catalog_list_domains",
    "catalog_validate", "catalog_show_bridge",
    "k8s_connect", "k8s_disconnect", "k8s_env", "intercept_start", "intercept_stop",
    "container_status",
}
READ_ONLY = {"bridge_status", "bridge_logs", "bridge_check", "bridge_wait", "catalog_list_targets",
             "catalog_show_target", "catalog_list_domains", "catalog_validate",
             "catalog_show_bridge", "k8s_env", "container_status"}
DESTRUCTIVE = {"bridge_down", "bridge_restart", "k8s_disconnect", "intercept_start",
               "intercept_stop"}
OPEN_WORLD = {"bridge_up", "bridge_down", "bridge_restart", "bridge_check", "k8s_connect",
              "k8s_disconnect", "intercept_start", "intercept_stop"}


class SdkClient:
    """One SDK client (a node process) holding one `devbridge mcp` session."""

    def __init__(self, db, args=()):
        assert os.path.isdir(os.path.join(MCP_DIR, "node_modules", "@modelcontextprotocol")), (
            "the MCP SDK is not installed: run scripts/install-deps.sh")
        self.db = db
        self.err_path = os.path.join(db.tmp, "sdk-client.err")
        spec = {"command": db.bin, "args": list(args) + ["mcp"], "env": db.env(), "cwd": db.tmp}
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(["node", SDK_CLIENT, json.dumps(spec)], cwd=MCP_DIR,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        self.buf = b""
        hello = self._read(20)
        assert hello.get("ready"), hello
        self.server_pid = hello["pid"]
        self.tools = {}

    def _read(self, timeout):
        deadline_left = timeout
        while b"\n" not in self.buf:
            r, _, _ = select.select([self.p.stdout], [], [], deadline_left)
            if not r:
                raise AssertionError("the SDK client said nothing for %ss\nstderr:\n%s"
                                     % (timeout, self.stderr()))
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError("the SDK client exited (%s)\nstderr:\n%s"
                                     % (self.p.poll(), self.stderr()))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, op, timeout=70, **kw):
        kw["op"] = op
        self.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.p.stdin.flush()
        return self._read(timeout)

    def list(self):
        r = self.cmd("list")
        assert "tools" in r, r
        self.tools = {t["name"]: t for t in r["tools"]}
        return r["tools"]

    def call(self, name, args=None, progress=False, timeout=70):
        """A tools/call: the CallToolResult, its structuredContent checked
        (the SDK threw otherwise) and checked again explicitly."""
        r = self.cmd("call", timeout=timeout, name=name, args=args or {}, progress=progress)
        assert "result" in r, "%s%r: %r\nstderr:\n%s" % (name, args, r, self.stderr())
        res = r["result"]
        if not res.get("isError"):
            assert "structuredContent" in res, (name, res)
            assert r["valid"] is True, (name, r["errors"], res["structuredContent"])
            # the text content is the same document
            assert json.loads(res["content"][0]["text"]) == res["structuredContent"], res
        self.last_progress = r["progress"]
        return res

    def ok(self, name, args=None, **kw):
        res = self.call(name, args, **kw)
        assert not res.get("isError"), "%s%r failed: %s" % (name, args, res["content"][0]["text"])
        return res["structuredContent"]

    def failed(self, name, args=None):
        """An isError result: the envelope (and partial results) it carries."""
        res = self.call(name, args)
        assert res.get("isError") is True, "%s%r did not fail: %r" % (name, args, res)
        assert "structuredContent" not in res, res
        return json.loads(res["content"][0]["text"])

    def stderr(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def close(self):
        if self.p.poll() is None:
            try:
                self.cmd("close", timeout=15)
            except AssertionError:
                pass
        try:
            self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdin.close()
        self.p.stdout.close()
        self.err.close()
        # The server's own exit status is the SDK's business: its sanitizer
        # reports reach its stderr (inherited: this file).
        report = sanitizer_report(self.stderr())
        assert not report, "sanitizer report from devbridge mcp:\n" + report


@pytest.fixture
def sdk():
    clients = []

    def start(db, *args):
        c = SdkClient(db, args)
        clients.append(c)
        return c

    yield start
    for c in clients:
        c.close()


def offline_tunnel(key="/k"):
    """A tunnel that is never started here (no sshd)."""
    return {"web": {"host": "127.0.0.1", "remote_port": free_port(), "local_port": free_port(),
                    "ssh_user": "u", "ssh_key": key, "actor": "tester"}}


def wait_only_server_left(db, client, timeout, what):
    """No supervisor or ssh of this test alive: only the MCP server."""
    left = {}

    def pred():
        left["pids"] = [p for p in db.our_processes() if p != client.server_pid]
        return not left["pids"]

    try:
        wait_for(pred, timeout, what)
    except AssertionError:
        raise AssertionError("%s; still running:\n%s" % (what, "\n".join(db.describe(left["pids"]))))


def use_catalog(db, name, copy_to=None):
    """The config of fixture catalog `name` (tests/catalogs/NAME), its
    catalog_path made absolute; with copy_to, the catalog is copied there
    first (for a test that changes it) and the config points at the copy."""
    fixture = os.path.join(CATALOGS, name)
    assert os.path.isdir(fixture), "no fixture catalog at %s" % fixture
    catalog = os.path.join(fixture, "catalog")
    if copy_to:
        shutil.copytree(catalog, copy_to)
        catalog = copy_to
    with open(os.path.join(fixture, "config.yaml")) as f:
        text = f.read()
    text = text.replace("catalog_path: catalog", "catalog_path: %s" % catalog)
    with open(db.config, "w") as f:
        f.write(text)


def cli_json(db, *args):
    r = db.run("--json", *args, timeout=60)
    return r.returncode, r.json()


def assert_same_error(client, db, tool, args, *cli_args):
    """The tool fails as the CLI does for the same input: the same
    envelope (code, name, message) and the same partial results."""
    got = client.failed(tool, args)
    code, want = cli_json(db, *cli_args)
    assert code == want["error"]["code"], (code, want)
    assert got == want, "%s%r vs devbridge --json %s:\n%r\n%r" % (tool, args, " ".join(cli_args),
                                                                   got, want)
    return got


# --------------------------------------------------------------------------
# the table


def test_every_tool_is_listed_with_schemas_and_annotations(db_nosshd, sdk):
    db_nosshd.write_config(offline_tunnel())
    c = sdk(db_nosshd)
    tools = c.list()
    assert {t["name"] for t in tools} == TOOLS
    for t in tools:
        name = t["name"]
        assert t.get("title") and len(t.get("description", "")) > 80, t
        ins, outs = t["inputSchema"], t.get("outputSchema")
        assert ins["type"] == "object" and ins["additionalProperties"] is False, name
        for arg, s in ins["properties"].items():
            assert s.get("type") and s.get("description") or s.get("enum"), (name, arg, s)
        assert outs and outs["type"] == "object" and outs.get("properties"), name
        ann = t["annotations"]
        assert ann == {"title": t["title"], "readOnlyHint": name in READ_ONLY,
                       "destructiveHint": name in DESTRUCTIVE,
                       "idempotentHint": ann["idempotentHint"],
                       "openWorldHint": name in OPEN_WORLD}, (name, ann)
        assert isinstance(ann["idempotentHint"], bool)
    idem = {t["name"] for t in tools if t["annotations"]["idempotentHint"]}
    assert {"bridge_up", "bridge_down", "bridge_status", "k8s_connect"} <= idem, idem
    assert "bridge_restart" not in idem and "intercept_start" not in idem, idem


# --------------------------------------------------------------------------
# a real tunnel: up, status, an update when sshd dies, logs, down


def test_bridge_up_status_update_down_against_sshd(db, sshd, echo, tunnel, sdk):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    c = sdk(db)
    c.list()
    assert c.cmd("subscribe", uri="bridge://status") == {"result": {}}

    up = c.ok("bridge_up", {"names": ["web"], "timeout": 20})
    row = up["bridges"][0]
    assert (row["name"], row["result"], row["code"], row["state"]) == (
        "web", "connected", 0, "connected"), row
    assert c.cmd("updated", uri="bridge://status", timeout_ms=10000) == {"updated": True}

    st = c.ok("bridge_status", {"names": ["web"]})
    assert st["bridges"][0]["state"] == "connected", st
    assert st == cli_json(db, "status", "web")[1]
    assert c.ok("bridge_status")["bridges"][0]["pid"] == st["bridges"][0]["pid"]
    # a second up leaves it alone (idempotent)
    again = c.ok("bridge_up", {"names": ["web"]})["bridges"][0]
    assert (again["result"], again["pid"]) == ("already_running", row["pid"]), again
    check = c.ok("bridge_check", {"names": ["web"]})
    assert check == cli_json(db, "check", "web")[1]
    assert check["checks"][0]["health"] == "ok", check

    # sshd gone: the subscribed client hears of it, no polling
    assert c.cmd("subscribe", uri="bridge://status") == {"result": {}}
    sshd.kill9()
    assert c.cmd("updated", uri="bridge://status", timeout_ms=15000) == {"updated": True}
    w = c.ok("bridge_wait", {"name": "web", "states": ["reconnecting", "degraded", "starting",
                                                       "failed"], "timeout": 15}, progress=True)
    assert w["bridges"][0]["state"] != "connected", w
    c.ok("bridge_status", {"names": ["web"]})

    down = c.ok("bridge_down", {"names": ["web"]})
    assert down == {"bridges": [{"name": "web", "result": "stopped"}]}, down
    # the supervisor was the server's child: reaped, not left a zombie
    assert proc_state(row["pid"]) is None, (row["pid"], proc_state(row["pid"]))
    st = c.ok("bridge_status", {"names": ["web"]})
    assert (st["bridges"][0]["state"], st["bridges"][0]["pid"]) == ("stopped", None), st
    logs = c.ok("bridge_logs", {"name": "web", "lines": 50})
    assert logs == cli_json(db, "logs", "web", "-n", "50")[1]
    events = [e["event"] for e in logs["events"]]
    assert "bridge_connected" in events and events[-1] == "bridge_stopped", events
    wait_only_server_left(db, c, 10, "no supervisor or ssh after bridge_down")


def test_bridge_restart_and_wait(db, sshd, echo, tunnel, sdk):
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    c = sdk(db)
    c.list()
    first = c.ok("bridge_up", {"timeout": 20})["bridges"][0]
    again = c.ok("bridge_restart", {"names": ["web"], "timeout": 20})["bridges"][0]
    assert (again["result"], again["state"]) == ("connected", "connected"), again
    assert again["pid"] != first["pid"], (first, again)
    w = c.ok("bridge_wait", {"name": "web"})
    assert w["bridges"][0]["state"] == "connected", w
    assert c.ok("bridge_down")["bridges"][0]["result"] == "stopped"
    wait_only_server_left(db, c, 10, "no supervisor or ssh after bridge_down")


def test_bridge_up_returns_a_tunnel_still_starting(db, sshd, echo, tunnel, sdk):
    """bridge_up waits `timeout` at most: a tunnel not connected by then is
    up's timeout (47, the rows with it), still starting in the background;
    bridge_wait then waits for it."""
    db.write_config({"web": tunnel(sshd, free_port(), echo.port)})
    c = sdk(db)
    c.list()
    sshd.stop_signal()  # the handshake hangs
    got = c.failed("bridge_up", {"names": ["web"], "timeout": 1})
    assert got["error"] == {"code": 47, "name": "timeout",
                            "message": "not every bridge connected"}, got
    row = got["bridges"][0]
    assert (row["result"], row["code"], row["state"]) == ("timeout", 47, "starting"), row
    assert row["pid"], row
    sshd.cont()
    w = c.ok("bridge_wait", {"name": "web", "states": ["connected"], "timeout": 30})
    assert w["bridges"][0]["state"] == "connected", w
    c.ok("bridge_down")


def test_bridge_wait_times_out_with_progress(db_nosshd, sdk):
    db = db_nosshd
    db.write_config(offline_tunnel())
    c = sdk(db)
    c.list()
    res = c.call("bridge_wait", {"name": "web", "states": ["connected"], "timeout": 2},
                 progress=True)
    assert res["isError"] is True, res
    doc = json.loads(res["content"][0]["text"])
    assert doc["error"] == {"code": 47, "name": "timeout",
                            "message": "web: not connected after 2 s (now stopped)"}, doc
    assert doc["bridges"][0]["state"] == "stopped", doc
    assert c.last_progress and all(p["total"] == 2 for p in c.last_progress), c.last_progress
    assert c.last_progress[0]["message"] == "web: stopped", c.last_progress
    # reached at once: no wait
    assert c.ok("bridge_wait", {"name": "web", "states": ["stopped", "failed"]})["bridges"][0][
        "state"] == "stopped"


# --------------------------------------------------------------------------
# tools that need neither ssh nor a cluster, and every error as the CLI's


def test_local_tools_equal_their_commands(db_nosshd, sdk):
    db = db_nosshd
    db.write_config(offline_tunnel())
    c = sdk(db)
    c.list()
    assert c.ok("bridge_status") == cli_json(db, "status")[1]
    assert c.ok("bridge_logs", {"name": "web"}) == cli_json(db, "logs", "web")[1]
    assert c.ok("bridge_down") == cli_json(db, "down")[1]
    assert c.ok("k8s_env") == cli_json(db, "env", "--format", "json")[1] == {}
    assert c.ok("k8s_disconnect") == cli_json(db, "disconnect", "-y")[1]
    assert c.ok("k8s_disconnect", {"dry_run": True}) == cli_json(db, "--dry-run", "disconnect")[1]
    assert c.ok("container_status") == {"bridges": []}


def test_errors_carry_the_cli_envelope(db_nosshd, sdk, tmp_path):
    db = db_nosshd
    db.write_config(offline_tunnel(str(tmp_path / "no-such-key")))
    c = sdk(db)
    c.list()
    same = lambda tool, args, *cli: assert_same_error(c, db, tool, args, *cli)  # noqa: E731
    got = same("bridge_status", {"names": ["wbe"]}, "status", "wbe")
    assert got["error"]["name"] == "unknown_bridge" and "did you mean 'web'" in \
        got["error"]["message"], got
    same("bridge_up", {"names": ["nope"]}, "up", "nope")
    same("bridge_down", {"names": ["nope"]}, "down", "nope")
    same("bridge_restart", {"names": ["nope"]}, "restart", "nope")
    same("bridge_logs", {"name": "nope"}, "logs", "nope")
    same("bridge_check", {"names": ["nope"]}, "check", "nope")
    same("bridge_check", {"names": ["web"]}, "check", "web")  # stopped: 49, with the checks
    same("bridge_wait", {"name": "nope"}, "status", "nope")
    same("intercept_stop", {"service": "api"}, "down", "intercept-api")
    kc = str(tmp_path / "no-kubeconfig")
    got = same("k8s_connect", {"targets": ["api:80"], "kubeconfig": kc},
               "connect", "-t", "api:80", "--kubeconfig", kc)
    assert got["error"]["code"] == 60, got
    got = same("intercept_start", {"service": "api", "mode": "steal", "kubeconfig": kc},
               "intercept", "api", "--steal", "--kubeconfig", kc)
    assert got["error"]["code"] == 60, got
    same("intercept_start", {"service": "Not_A_Service", "mode": "steal"},
         "intercept", "Not_A_Service", "--steal")
    # a key file that is not there: refused before anything runs, as `up`,
    # with the same diagnostics (FILE:LINE:COL) in the envelope
    got = same("bridge_up", {"names": ["web"]}, "up", "web")
    assert got["error"]["code"] == 3 and got["error"]["diagnostics"][0]["line"] > 0, got
    # no catalog_path in this config
    for tool, args, cli in [("catalog_list_domains", {}, ("catalog", "list")),
                            ("catalog_list_targets", {}, ("targets",)),
                            ("catalog_show_target", {"id": "x"}, ("targets", "show", "x")),
                            ("catalog_show_bridge", {"id": "x"}, ("catalog", "show", "x")),
                            ("catalog_validate", {}, ("catalog", "validate"))]:
        got = same(tool, args, *cli)
        assert got["error"]["code"] == 3, got
    # what has no command: bad arguments, refused by the inputSchema
    for tool, args in [("container_status", {"name": "dev"}), ("k8s_env", {"format": "sh"}),
                       ("k8s_disconnect", {"names": "all"}), ("bridge_logs", {"name": 5}),
                       ("bridge_up", {"timeout": 999})]:
        got = c.failed(tool, args)
        assert got["error"]["message"], got
    assert c.failed("container_status", {"name": "dev"})["error"]["code"] == 48
    wait_only_server_left(db, c, 5, "nothing started by the failed calls")


def test_a_failed_stop_says_why(db_nosshd, sdk):
    """bridge_down and intercept_stop's error rows carry the message (the
    only word of why: an agent reads no stderr), as `down --json` does."""
    db = db_nosshd
    db.write_config(offline_tunnel())
    os.makedirs(db.state_dir, exist_ok=True)
    # an intercept's state this version cannot read: its stop fails
    with open(os.path.join(db.state_dir, "intercept-api.state"), "w") as f:
        json.dump({"kind": "intercept", "name": "intercept-api"}, f)
    c = sdk(db)
    c.list()
    want_row = {"name": "intercept-api", "result": "error",
                "message": "intercept-api: not an intercept's state"}
    got = assert_same_error(c, db, "intercept_stop", {"service": "api"}, "down", "intercept-api")
    assert got["bridges"] == [want_row], got
    got = assert_same_error(c, db, "bridge_down", {"names": ["intercept-api"]},
                            "down", "intercept-api")
    assert got["bridges"] == [want_row], got
    assert got["error"]["message"] == "some bridges could not be stopped", got


# --------------------------------------------------------------------------
# the OpsCatalog fixture


def test_catalog_tools_on_the_fixture_catalog(db_nosshd, sdk):
    db = db_nosshd
    use_catalog(db, "valid")
    c = sdk(db)
    c.list()
    domains = c.ok("catalog_list_domains")
    assert domains == cli_json(db, "catalog", "list")[1]
    assert len(domains["domains"]) >= 2, domains
    targets = c.ok("catalog_list_targets")
    assert targets == cli_json(db, "targets")[1]
    d0 = domains["domains"][0]["id"]
    assert c.ok("catalog_list_targets", {"domain": d0}) == cli_json(db, "targets", "--domain",
                                                                    d0)[1]
    t0 = targets["targets"][0]["id"]
    assert c.ok("catalog_show_target", {"id": t0}) == cli_json(db, "targets", "show", t0)[1]
    b0 = domains["bridges"][0]["id"]
    shown = c.ok("catalog_show_bridge", {"id": b0})
    assert shown == cli_json(db, "catalog", "show", b0)[1]
    assert c.ok("catalog_validate") == cli_json(db, "catalog", "validate")[1]
    # a catalog bridge is a tunnel: bridge_status knows it
    assert b0 in {r["name"] for r in c.ok("bridge_status")["bridges"]}
    assert_same_error(c, db, "catalog_show_target", {"id": "nope"}, "targets", "show", "nope")
    assert_same_error(c, db, "catalog_show_bridge", {"id": "nope"}, "catalog", "show", "nope")
    assert_same_error(c, db, "catalog_list_targets", {"domain": "nope"}, "targets", "--domain",
                      "nope")


def test_catalog_validate_error_carries_the_diagnostics(db_nosshd, sdk, tmp_path):
    """The catalog is read afresh by each call: broken after the server
    started, validate finds it."""
    cases = sorted(d for d in os.listdir(CATALOGS) if d != "valid" and
                   os.path.isdir(os.path.join(CATALOGS, d, "catalog")))
    assert cases, "no broken fixture catalogs in tests/catalogs"
    db = db_nosshd
    live = str(tmp_path / "catalog")
    use_catalog(db, "valid", copy_to=live)
    c = sdk(db)
    c.list()
    assert c.ok("catalog_validate")["valid"] is True
    for case in cases:
        shutil.rmtree(live)
        shutil.copytree(os.path.join(CATALOGS, case, "catalog"), live)
        got = assert_same_error(c, db, "catalog_validate", {}, "catalog", "validate")
        assert got["error"]["code"] == 3 and got["diagnostics"], (case, got)
        assert got["valid"] is False, (case, got)


def test_server_starts_on_an_invalid_catalog(db_nosshd, sdk):
    """An invalid catalog is not the server's end: catalog_validate says
    what is wrong, the tools that need the catalog fail as their commands
    do (EXIT_CONFIG, the diagnostics in the envelope); the config proper
    still refuses it (exit 3)."""
    db = db_nosshd
    use_catalog(db, "bad-field")
    c = sdk(db)
    c.list()
    got = assert_same_error(c, db, "catalog_validate", {}, "catalog", "validate")
    assert [(d["line"], d["column"]) for d in got["diagnostics"]] == [(2, 14), (3, 1), (5, 12),
                                                                      (1, 1)], got
    got = assert_same_error(c, db, "bridge_status", {}, "status")
    assert got["error"]["code"] == 3, got
    assert got["error"]["diagnostics"][0]["file"].endswith("ops/bridges/state-hub.yaml"), got
    assert "the catalog does not load" in c.stderr(), c.stderr()
    assert c.cmd("read", uri="bridge://status").get("error", {}).get("code") == -32603

    with open(db.config, "a") as f:
        f.write("tunnels: [\n")
    r = db.run("mcp", timeout=30)
    assert r.returncode == 3 and "invalid YAML" in r.stderr, r


def test_a_bridge_added_while_serving_is_one(db_nosshd, sdk, tmp_path):
    """Each call loads the config and catalog afresh: a bridge file added
    to the catalog is known to bridge_status at once, as to the catalog
    tools."""
    db = db_nosshd
    live = str(tmp_path / "catalog")
    use_catalog(db, "valid", copy_to=live)
    c = sdk(db)
    c.list()
    assert c.failed("bridge_status", {"names": ["jupyter2"]})["error"]["code"] == 48
    bridges = os.path.join(live, "domains", "lab", "bridges")
    with open(os.path.join(bridges, "jupyter.yaml")) as f:
        text = f.read().replace("local_port: 18888", "local_port: 18889")
    with open(os.path.join(bridges, "jupyter2.yaml"), "w") as f:
        f.write(text)
    assert c.ok("catalog_show_bridge", {"id": "jupyter2"})["bridge"]["local_port"] == 18889
    st = c.ok("bridge_status", {"names": ["jupyter2"]})
    assert [(r["name"], r["state"]) for r in st["bridges"]] == [("jupyter2", "stopped")], st
    assert st == cli_json(db, "status", "jupyter2")[1]


def test_sdk_client_waits_for_the_server(db_nosshd, sdk):
    """The session ends cleanly: stdin closed, the server exits by itself."""
    db_nosshd.write_config(offline_tunnel())
    c = sdk(db_nosshd)
    c.list()
    pid = c.server_pid
    assert c.cmd("close", timeout=15) == {"closed": True}
    wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
             open("/proc/%d/stat" % pid).read().split()[2] == "Z", 10, "devbridge mcp to exit")


# --------------------------------------------------------------------------
# a cluster: kubesim --runtime (one per module; ClusterIPs in 10.96.212.0/24,
# apart from the other suites')

K8S_IP = "10.96.212.10"


@pytest.fixture(scope="module")
def cluster(rsim):  # noqa: F811
    if not rsim.is_sim:
        pytest.skip("needs kubesim (the agent image runs the binary under test)")
    rsim.apply(echo_pod("mcp-echo", "default", {"app": "mcp-echo"}),
               service("mcpecho", "default", {"app": "mcp-echo"}, [(80, 8080)], K8S_IP))
    rsim.wait_pods_ready("default", "mcp-echo")
    return rsim


def kb_json(kb, *args):  # noqa: F811
    r = kb.run("--json", *args, timeout=60)
    return r.json()


def test_k8s_connect_env_check_disconnect(cluster, kb, sdk):  # noqa: F811
    c = sdk(kb, "--state-dir", kb.state_dir)
    c.list()
    port = free_port()
    doc = c.ok("k8s_connect", {"targets": ["mcpecho:80:%d" % port], "kubeconfig": kb.kubeconfig,
                               "timeout": 40})
    row = doc["bridges"][0]
    assert (row["name"], row["result"], row["local_port"]) == ("mcpecho.default.80",
                                                               "connected", port), row
    assert "target" not in row and "exported" not in doc, doc  # the terminal's, not --json's
    st = c.ok("bridge_status", {"names": ["mcpecho"]})
    assert st["bridges"][0]["state"] == "connected" and st["session"]["bridges"] == 1, st
    assert c.ok("k8s_env") == kb_json(kb, "env", "--format", "json")
    assert c.ok("k8s_env")["BRIDGE_MCPECHO_PORT"] == str(port)
    assert c.ok("bridge_check", {"names": ["mcpecho"]})["checks"][0]["health"] == "ok"
    again = c.ok("k8s_connect", {"targets": ["mcpecho:80:%d" % port],
                                 "kubeconfig": kb.kubeconfig})
    assert again["bridges"][0]["result"] == "already_running", again
    dry = c.ok("k8s_disconnect", {"dry_run": True})
    assert dry == {"dry_run": True, "bridges": [{"name": "mcpecho.default.80",
                                                 "result": "would_stop"}]}, dry
    assert c.ok("k8s_disconnect") == {"dry_run": False, "bridges": [
        {"name": "mcpecho.default.80", "result": "stopped"}]}
    assert c.ok("k8s_env") == {}
    wait_for(lambda: not kb.kubectl_processes(), 10, "no kubectl after k8s_disconnect")


def test_intercept_start_and_stop(cluster, kb, sdk):  # noqa: F811
    laptop = TagServer()
    try:
        c = sdk(kb, "--state-dir", kb.state_dir)
        c.list()
        doc = c.ok("intercept_start", {"service": "mcpecho", "mode": "steal",
                                       "ports": ["80:%d" % laptop.port],
                                       "kubeconfig": kb.kubeconfig}, progress=True)
        assert (doc["name"], doc["detached"], doc["state"]) == ("intercept-mcpecho", True,
                                                                 "connected"), doc
        assert doc["ports"] == [{"port": 80, "local_port": laptop.port}], doc
        assert c.last_progress, "no progress notification for the steps"
        assert roundtrip_reaches(laptop)
        rows = {r["name"]: r for r in c.ok("bridge_status")["bridges"]}
        assert rows["intercept-mcpecho"]["kind"] == "intercept", rows
        assert rows["intercept-mcpecho"]["state"] == "connected", rows
        again = c.failed("intercept_start", {"service": "mcpecho", "mode": "steal",
                                             "kubeconfig": kb.kubeconfig})
        assert again["error"]["code"] == 69, again
        stop = c.ok("intercept_stop", {"service": "mcpecho"})
        assert stop == {"bridges": [{"name": "intercept-mcpecho", "result": "stopped"}]}, stop
        sel = json.loads(cluster.kubectl_ok("get", "service", "mcpecho", "-o", "json"))
        assert sel["spec"]["selector"] == {"app": "mcp-echo"}, sel["spec"]
    finally:
        laptop.close()


def roundtrip_reaches(laptop):
    got = []

    def ok():
        try:
            got[:] = [roundtrip(K8S_IP, 80, b"hi", 3)]
        except OSError:
            return False
        return got[0] == b"LAPTOP hi"
    return wait_for(ok, 20, "a cluster call reaching the local server", interval=0.2)
