"""`devbridge mcp` from a raw client: JSON-RPC lines on a pipe, no SDK.

What a client sees: the handshake and version negotiation, the errors
and their codes for bad input (the server stays up), cancellation, stdin
closing mid-call, nothing but JSON-RPC on stdout, resource subscriptions
fed by real state changes, the 2026-07-28 refusal, and `mcp config`.
docs/mcp.md is the contract these hold the server to.
"""

import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from helpers import free_port, proc_alive, sanitizer_report, wait_for

REVISIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
META_VERSION = "io.modelcontextprotocol/protocolVersion"


class Mcp:
    """One server process and a line-by-line reader of its stdout."""

    def __init__(self, db, *args, env=None):
        self.err_path = os.path.join(db.tmp, "mcp.stderr.%d" % time.monotonic_ns())
        self.err = open(self.err_path, "wb")
        if not os.path.exists(db.config):  # no config: an empty one
            env = dict(env or {}, DEVBRIDGE_CONFIG=None)
        self.proc = db.popen(*args, "mcp", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=self.err, env=env)
        self.lines = []  # every stdout line, raw
        self.msgs = queue.Queue()
        self.pending = []  # messages read but not yet asked for
        self.next_id = 1
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw)
            try:
                self.msgs.put(json.loads(raw))
            except ValueError:
                self.msgs.put({"not json": raw})
        self.msgs.put(None)  # EOF

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, msg):
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def start(self, method, params=None, id=None):
        """Send a request; return its id."""
        if id is None:
            id = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return id

    def next(self, pred, timeout=20, what="a message"):
        """The first message (read before or now) for which pred is true."""
        for m in self.pending:
            if pred(m):
                self.pending.remove(m)
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %ss; read: %r\nstderr:\n%s"
                                     % (what, timeout, self.pending[-10:], self.stderr()[-3000:]))
            try:
                m = self.msgs.get(timeout=left)
            except queue.Empty:
                continue
            if m is None:
                self.msgs.put(None)
                raise AssertionError("stdout closed waiting for %s; stderr:\n%s"
                                     % (what, self.stderr()[-3000:]))
            if pred(m):
                return m
            self.pending.append(m)

    def reply(self, id, timeout=20):
        return self.next(lambda m: m.get("id") == id and "method" not in m, timeout,
                         "the reply to %r" % (id,))

    def call(self, method, params=None, timeout=20):
        return self.reply(self.start(method, params), timeout)

    def result(self, method, params=None, timeout=20):
        r = self.call(method, params, timeout)
        assert "result" in r, r
        return r["result"]

    def error(self, method, params=None, code=None):
        r = self.call(method, params)
        assert "error" in r, r
        if code is not None:
            assert r["error"]["code"] == code, r
        return r["error"]

    def initialize(self, version="2025-11-25"):
        res = self.result("initialize", {"protocolVersion": version, "capabilities": {},
                                         "clientInfo": {"name": "raw-test", "version": "1"}})
        self.notify("notifications/initialized")
        return res

    def tool(self, name, args=None, meta=None, timeout=20):
        params = {"name": name, "arguments": {} if args is None else args}
        if meta:
            params["_meta"] = meta
        return self.result("tools/call", params, timeout)

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def close(self, timeout=10):
        """Close stdin; the exit code once the process is gone."""
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        self.err.close()
        report = sanitizer_report(self.stderr())
        assert report is None, report
        return rc


@pytest.fixture
def mcp(db_nosshd):
    servers = []

    def start(*args, env=None):
        m = Mcp(db_nosshd, *args, env=env)
        servers.append(m)
        return m

    yield start
    for m in servers:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()
        if not m.err.closed:
            m.err.close()


def offline_tunnel(db, name="t1"):
    """A tunnel to a port where nothing listens: `up` starts a supervisor
    that keeps retrying, so its state changes without an ssh server."""
    port = free_port(both_families=False)
    key = os.path.join(db.tmp, "id_offline")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    db.write_config({name: {
        "host": "127.0.0.1", "ssh_port": port, "ssh_user": "nobody", "ssh_key": key,
        "remote_port": 9, "local_port": free_port(both_families=False), "actor": "tester",
        "reconnect": {"max_attempts": 0, "backoff_initial": 0.2, "backoff_max": 0.5},
    }})


# --- the handshake ---------------------------------------------------------


@pytest.mark.parametrize("version", REVISIONS)
def test_initialize_answers_the_clients_revision(mcp, version):
    m = mcp()
    res = m.initialize(version)
    assert res["protocolVersion"] == version
    assert res["capabilities"] == {"tools": {"listChanged": False},
                                   "resources": {"subscribe": True, "listChanged": False}}
    assert res["serverInfo"]["name"] == "devbridge"
    assert res["serverInfo"]["version"]
    assert "bridge" in res["instructions"]
    assert m.close() == 0


def test_initialize_unknown_revision_gets_our_newest(mcp):
    m = mcp()
    assert m.initialize("2099-01-01")["protocolVersion"] == REVISIONS[0]
    # once is enough
    m.error("initialize", {"protocolVersion": REVISIONS[0]}, -32600)
    assert m.close() == 0


def test_initialize_without_version_is_invalid_params(mcp):
    m = mcp()
    m.error("initialize", {"capabilities": {}}, -32602)
    assert m.initialize()["protocolVersion"] == REVISIONS[0]
    assert m.close() == 0


def test_request_before_initialize(mcp):
    m = mcp()
    err = m.error("tools/list", None, -32600)
    assert "initialize" in err["message"]
    err = m.error("tools/call", {"name": "bridge_status", "arguments": {}}, -32600)
    assert m.result("ping") == {}  # ping is fine at any time
    m.initialize()
    assert m.result("tools/list")["tools"]
    assert m.close() == 0


# --- bad input: the right code, and the server stays up -------------------


def test_malformed_lines(mcp):
    m = mcp()
    m.initialize()
    cases = [
        (b"{not json\n", -32700, None),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"\n', -32700, None),  # truncated
        (b"[]\n", -32600, None),  # a batch
        (b'[{"jsonrpc":"2.0","id":2,"method":"ping"}]\n', -32600, None),
        (b"42\n", -32600, None),  # not an object
        (b'"ping"\n', -32600, None),
        (b'{"id":3,"method":"ping"}\n', -32600, 3),  # no jsonrpc member
        (b'{"jsonrpc":"1.0","id":4,"method":"ping"}\n', -32600, 4),
        (b'{"jsonrpc":"2.0","id":5,"method":7}\n', -32600, 5),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}\n', -32600, None),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}\n', -32600, None),
        (b'{"jsonrpc":"2.0","id":6,"method":"ping","params":3}\n', -32600, 6),
        (b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":[1]}\n', -32602, 7),
    ]
    for line, code, id in cases:
        m.send_raw(line)
        r = m.next(lambda x: "error" in x, what="the error for %r" % line)
        assert r["error"]["code"] == code, (line, r)
        assert r["id"] == id, (line, r)
        assert r["jsonrpc"] == "2.0"
    # a response to nothing, a blank line and an unknown notification: no reply
    m.send_raw(b'{"jsonrpc":"2.0","id":99,"result":{}}\n\r\n\n')
    m.notify("notifications/whatever", {})
    assert m.result("ping") == {}
    assert not m.pending, m.pending
    assert m.close() == 0


def test_a_response_is_never_answered(mcp):
    """The server sends no requests, so whatever comes without a method but
    with an id, a result or an error is a client's response to nothing:
    dropped, even malformed (an error for id 5 would answer the client's
    own request 5)."""
    m = mcp("-v")
    m.initialize()
    for line in (b'{"jsonrpc":"2.0","id":5}', b'{"jsonrpc":"2.0","id":6,"error":3}',
                 b'{"jsonrpc":"2.0","id":7,"result":{},"error":{}}',
                 b'{"jsonrpc":"1.0","id":8,"result":{}}', b'{"jsonrpc":"2.0","id":1.5,"result":{}}',
                 b'{"jsonrpc":"2.0","result":{}}', b'{"jsonrpc":"2.0","id":9,"result":{}}'):
        m.send_raw(line + b"\n")
    assert m.result("ping") == {}
    assert not m.pending, m.pending
    assert m.stderr().count("malformed") == 6, m.stderr()
    # no method and nothing of a response: an invalid request, as JSON-RPC says
    m.send_raw(b'{"jsonrpc":"2.0"}\n')
    r = m.next(lambda x: "error" in x, what="the error for a message of nothing")
    assert r["id"] is None and r["error"]["code"] == -32600, r
    assert m.close() == 0


def test_unknown_method(mcp):
    m = mcp()
    m.initialize()
    err = m.error("bridges/explode", {}, -32601)
    assert "bridges/explode" in err["message"]
    m.error("prompts/list", None, -32601)  # no prompts capability
    assert m.result("ping") == {}
    assert m.close() == 0


def test_multibyte_peer_text_is_cut_between_characters(mcp):
    """An error quotes at most 256 bytes of the method, tool name, URI or
    argument it refuses, cut between characters: a cut inside one made the
    reply invalid UTF-8, which jansson refuses to build, and the server
    stopped ("out of memory") instead of answering."""
    m = mcp()
    m.initialize()

    def quoted(message, prefix, text):
        assert message.startswith(prefix), message
        q = message[len(prefix):]
        assert text.startswith(q) and 250 <= len(q.encode()) <= 256, message
        return q

    for text in ("é" * 200, "a" + "é" * 200):  # the cut on either byte of an é
        quoted(m.error(text, {}, -32601)["message"], "Method not found: ", text)
        err = m.error("tools/call", {"name": text, "arguments": {}}, -32602)
        quoted(err["message"], "Unknown tool: ", text)
        for uri in (text, "bridge://%s/log" % text):
            err = m.error("resources/read", {"uri": uri}, -32002)
            assert err["data"] == {"uri": uri}, err
            quoted(err["message"], "Resource not found: ", uri)
            m.error("resources/subscribe", {"uri": uri}, -32002)
        res = m.tool("bridge_status", {text * 2: 1})
        env = json.loads(res["content"][0]["text"])
        assert res["isError"] is True and env["error"]["name"] == "usage", env
        assert env["error"]["message"].startswith("invalid arguments: unknown argument '" + text[:60]), env
        assert "(this tool takes 'names')" in env["error"]["message"], env
        assert m.result("ping") == {}
    assert m.close() == 0


def test_huge_line_is_answered_and_discarded(mcp):
    m = mcp()
    m.initialize()
    big = b'{"jsonrpc":"2.0","id":1000,"method":"ping","params":{"x":"' + b"a" * (5 << 20) + b'"}}\n'
    m.send_raw(big)
    r = m.next(lambda x: "error" in x, what="the error for a 5 MiB line")
    assert r["id"] is None and r["error"]["code"] == -32600, r
    assert "4194304" in r["error"]["message"]
    assert m.result("ping") == {}  # the stream goes on after it
    # just under the bound is a message like any other
    ok = b'{"jsonrpc":"2.0","id":1001,"method":"ping","params":{"x":"' + b"b" * ((4 << 20) - 100) + b'"}}\n'
    m.send_raw(ok)
    assert m.reply(1001)["result"] == {}
    assert m.close() == 0


def test_a_client_slow_to_read_loses_nothing(db_nosshd):
    """16 MiB of requests whose replies (37 KB each) the client reads only
    after writing them all: the server stops reading stdin while its
    replies wait (over 1 MiB), so the writer blocks instead of the server
    queueing without end; then every reply comes, in order."""
    db = db_nosshd
    p = db.popen("mcp", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.DEVNULL, env={"DEVBRIDGE_CONFIG": None})
    n = 400
    pad = "x" * (40 << 10)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "slow", "version": "1"}}}
    written = []

    def writer():
        p.stdin.write(json.dumps(init).encode() + b"\n")
        for i in range(1, n + 1):
            p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/list",
                                      "params": {"pad": pad}}).encode() + b"\n")
            written.append(i)
        p.stdin.close()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    # the writer gets stuck well before the end: the server stopped reading
    seen = {"n": -1, "since": time.monotonic()}

    def stuck():
        if len(written) != seen["n"]:
            seen.update(n=len(written), since=time.monotonic())
        return len(written) == n or time.monotonic() - seen["since"] > 0.5

    wait_for(stuck, 20, "the writer to stop advancing")
    held = len(written)
    ids = []
    for raw in p.stdout:
        ids.append(json.loads(raw)["id"])
    t.join(10)
    assert p.wait(timeout=20) == 0
    assert ids == list(range(n + 1))
    assert held < n / 2, "the writer got %d of %d requests in before anything was read" % (held, n)


def test_ping(mcp):
    m = mcp()
    m.initialize()
    for _ in range(3):
        assert m.call("ping")["result"] == {}
    r = m.reply(m.start("ping", id="a string id"))
    assert r == {"jsonrpc": "2.0", "id": "a string id", "result": {}}
    assert m.close() == 0


# --- tools -----------------------------------------------------------------


def test_tools_list(mcp):
    m = mcp()
    m.initialize()
    tools = m.result("tools/list")["tools"]
    names = [t["name"] for t in tools]
    assert "bridge_status" in names and "bridge_wait" in names
    for t in tools:
        assert t["title"] and t["description"], t
        assert t["inputSchema"]["type"] == "object", t
        assert t["outputSchema"]["type"] == "object", t
        ann = t["annotations"]
        for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert isinstance(ann[hint], bool), (t["name"], hint)
    status = tools[names.index("bridge_status")]
    assert status["annotations"]["readOnlyHint"] is True
    assert status["annotations"]["destructiveHint"] is False
    m.error("tools/list", {"cursor": "nope"}, -32602)  # we hand out no cursors
    assert m.close() == 0


def test_tool_result_is_the_json_document(mcp, db_nosshd):
    offline_tunnel(db_nosshd)
    m = mcp()
    m.initialize()
    res = m.tool("bridge_status")
    assert res["isError"] is False
    assert res["content"][0]["type"] == "text"
    assert json.loads(res["content"][0]["text"]) == res["structuredContent"]
    assert res["structuredContent"] == db_nosshd.status()
    assert [b["name"] for b in res["structuredContent"]["bridges"]] == ["t1"]
    assert m.close() == 0


def test_tool_errors(mcp):
    m = mcp()
    m.initialize()
    # unknown tool, malformed call: protocol errors
    err = m.error("tools/call", {"name": "bridge_nope", "arguments": {}}, -32602)
    assert "bridge_nope" in err["message"]
    m.error("tools/call", {"arguments": {}}, -32602)
    m.error("tools/call", {"name": "bridge_status", "arguments": [1]}, -32602)
    m.error("tools/call", {"name": "bridge_status", "arguments": "x"}, -32602)
    # arguments against the inputSchema: tool execution errors (2025-11-25)
    for args, words in [({"names": "t1"}, ["'names'", "an array", "a string"]),
                        ({"names": [3]}, ["'names[0]'", "a string", "an integer"]),
                        ({"nmae": "x"}, ["'nmae'", "'names'"])]:
        res = m.tool("bridge_status", args)
        assert res["isError"] is True, res
        assert "structuredContent" not in res, res
        env = json.loads(res["content"][0]["text"])
        assert env["error"]["code"] == 2 and env["error"]["name"] == "usage", env
        for w in words:
            assert w in env["error"]["message"], (w, env)
    res = m.tool("bridge_wait", {"name": "t1", "timeout": 0})
    assert "between 1 and 50, got 0" in json.loads(res["content"][0]["text"])["error"]["message"]
    # docs/mcp.md's example, word for word
    res = m.tool("bridge_up", {"timeout": 0})
    assert res["content"][0]["text"] == (
        '{"error":{"code":2,"name":"usage","message":"invalid arguments: argument '
        "'timeout': must be between 1 and 45, got 0\"}}"), res
    res = m.tool("bridge_wait", {})
    assert "'name' is required" in json.loads(res["content"][0]["text"])["error"]["message"]
    # the tool's own failure: the --json envelope, no structuredContent
    res = m.tool("bridge_wait", {"name": "ghost"})
    assert res["isError"] is True and "structuredContent" not in res
    env = json.loads(res["content"][0]["text"])
    assert env["error"] == {"code": 48, "name": "unknown_bridge",
                            "message": env["error"]["message"]}, env
    assert m.result("ping") == {}
    assert m.close() == 0


# --- calls off the loop: cancellation, progress, stdin closing ------------


def test_cancel_the_call_in_flight_and_a_queued_one(mcp, db_nosshd):
    offline_tunnel(db_nosshd)  # t1: configured, never started (stopped)
    m = mcp()
    m.initialize()
    slow = m.start("tools/call", {"name": "bridge_wait", "_meta": {"progressToken": "tok"},
                                  "arguments": {"name": "t1", "states": ["connected"],
                                                "timeout": 50}})
    # progress while it waits: only because a token was given
    p = m.next(lambda x: x.get("method") == "notifications/progress", what="progress")
    assert p["params"]["progressToken"] == "tok"
    queued = m.start("tools/call", {"name": "bridge_status", "arguments": {}})
    # the loop answers while the call runs
    t0 = time.monotonic()
    assert m.result("ping") == {}
    assert time.monotonic() - t0 < 2
    m.notify("notifications/cancelled", {"requestId": queued, "reason": "changed my mind"})
    m.notify("notifications/cancelled", {"requestId": slow, "reason": "too slow"})
    # the next call runs, so the slow one has returned; neither got a reply
    res = m.tool("bridge_status")
    assert res["isError"] is False
    got = [x.get("id") for x in m.pending if "method" not in x]
    assert slow not in got and queued not in got, m.pending
    # unknown ids are ignored
    m.notify("notifications/cancelled", {"requestId": 12345})
    assert m.result("ping") == {}
    assert m.close() == 0


def test_no_progress_without_a_token(mcp, db_nosshd):
    offline_tunnel(db_nosshd)
    m = mcp()
    m.initialize()
    res = m.tool("bridge_wait", {"name": "t1", "states": ["connected"], "timeout": 1})
    assert res["isError"] is True  # the timeout, with the status rows
    env = json.loads(res["content"][0]["text"])
    assert env["error"]["name"] == "timeout" and env["bridges"][0]["name"] == "t1", env
    assert not [x for x in m.pending if x.get("method") == "notifications/progress"]
    assert m.close() == 0


def start_wait(m):
    """A call that waits (t1 never connects), seen running: its first
    progress report came."""
    id = m.start("tools/call", {"name": "bridge_wait", "_meta": {"progressToken": 1},
                                "arguments": {"name": "t1", "states": ["connected"],
                                              "timeout": 50}})
    m.next(lambda x: x.get("method") == "notifications/progress", what="the call to run")
    return id


def test_stdin_closed_mid_call(mcp, db_nosshd):
    offline_tunnel(db_nosshd)
    m = mcp("-v")
    m.initialize()
    id = start_wait(m)
    pid = m.proc.pid
    t0 = time.monotonic()
    assert m.close(timeout=10) == 0
    took = time.monotonic() - t0
    assert took < 1.5, "exited %.2fs after stdin closed (the SDK SIGTERMs at 2 s)" % took
    assert not proc_alive(pid)
    assert "stdin closed" in m.stderr()
    # the waiting tool was told to stop, and its answer still went out
    assert [json.loads(x) for x in m.lines if json.loads(x).get("id") == id], m.lines
    # nothing was left running: the ordinary way out, with its teardown
    assert "exiting without tearing down" not in m.stderr()


def test_stdin_closed_while_a_call_cannot_stop(db, sshd, tunnel):
    """bridge_up against a host that hangs waits for its first outcome in
    the app layer, which knows nothing of cancellation: 1.5 s after stdin
    closed the server leaves it and exits anyway, without tearing down
    (the config the call still reads is not freed under it; ASan sees no
    use after free)."""
    db.write_config({"s1": tunnel(sshd, free_port(), free_port())})
    sshd.stop_signal()
    m = Mcp(db, "-v")
    try:
        m.initialize()
        m.start("tools/call", {"name": "bridge_up", "arguments": {"names": ["s1"], "timeout": 30}})
        m.result("ping")  # the call is queued or running; the loop answers
        t0 = time.monotonic()
        assert m.close(timeout=10) == 0
        took = time.monotonic() - t0
        assert 1.3 < took < 2.5, "exited %.2fs after stdin closed" % took
        assert "leaving the call in flight" in m.stderr()
        assert "a call is still running: exiting without tearing down" in m.stderr()
    finally:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()
        sshd.cont()


def test_cancel_a_call_that_cannot_stop_then_the_queue_goes_on(db, sshd, tunnel):
    """bridge_up does not wait on the cancel flag: cancelled, its reply is
    dropped at once, but it holds the single worker until its current step
    ends (here: the first outcome, bounded by its timeout). The call queued
    behind it is answered then, the cancelled one never."""
    db.write_config({"s1": tunnel(sshd, free_port(), free_port())})
    sshd.stop_signal()  # sshd accepts nothing: up waits for its timeout
    m = Mcp(db, "-v")
    try:
        m.initialize()
        t0 = time.monotonic()
        up = m.start("tools/call", {"name": "bridge_up",
                                    "arguments": {"names": ["s1"], "timeout": 2}})
        queued = m.start("tools/call", {"name": "bridge_status", "arguments": {}})
        m.notify("notifications/cancelled", {"requestId": up, "reason": "changed my mind"})
        assert m.result("ping") == {}  # the loop answers meanwhile
        res = m.reply(queued, timeout=15)["result"]
        took = time.monotonic() - t0
        assert res["isError"] is False and res["structuredContent"]["bridges"], res
        assert 1.5 < took < 10, "the queued call was answered %.2fs after the cancel" % took
        # replies go out in order: the cancelled call's would be there by now
        assert not [x for x in m.pending if x.get("id") == up], m.pending
        assert "cancelled: no reply" in m.stderr()
        assert m.close() == 0
    finally:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()
        sshd.cont()


def test_replies_to_what_was_asked_before_stdin_closed(mcp):
    m = mcp()
    m.send_raw(b"".join(json.dumps(x).encode() + b"\n" for x in [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "pipe", "version": "0"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "bridge_status", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/read",
         "params": {"uri": "bridge://status"}},
    ]))
    assert m.close() == 0
    ids = [json.loads(x)["id"] for x in m.lines]
    assert ids == [1, 2, 3], m.lines


def test_stdin_a_file(db_nosshd, tmp_path):
    """`devbridge mcp < requests.jsonl` (epoll refuses files): every
    request answered, then exit."""
    req = tmp_path / "requests.jsonl"
    req.write_text("".join(json.dumps(x) + "\n" for x in [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "file", "version": "0"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "bridge://status"}},
    ]))
    with open(req, "rb") as f:
        p = db_nosshd.popen("mcp", stdin=f, env={"DEVBRIDGE_CONFIG": None})
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert [json.loads(x)["id"] for x in out.splitlines()] == [1, 2, 3]
    p = db_nosshd.popen("mcp", env={"DEVBRIDGE_CONFIG": None})  # stdin /dev/null
    out, err = p.communicate(timeout=20)
    assert (p.returncode, out) == (0, b""), err


def test_sigterm_exits_promptly_mid_call(mcp, db_nosshd):
    offline_tunnel(db_nosshd)
    m = mcp("-v")
    m.initialize()
    start_wait(m)
    m.proc.send_signal(signal.SIGTERM)
    assert m.proc.wait(timeout=5) == 0
    assert "exiting without tearing down" in m.stderr()  # the call was left to the exit


def test_stdout_carries_only_json_rpc(mcp, db_nosshd):
    offline_tunnel(db_nosshd)
    m = mcp("-vv")
    m.initialize()
    m.result("tools/list")
    m.tool("bridge_status")
    m.tool("bridge_status", {"names": 3})
    m.call("resources/read", {"uri": "bridge://t1/log"})
    m.send_raw(b"garbage\n")
    m.next(lambda x: x.get("id") is None and "error" in x)
    assert m.close() == 0
    assert m.lines, "no output"
    for raw in m.lines:
        assert raw.endswith(b"\n")
        msg = json.loads(raw)
        assert msg["jsonrpc"] == "2.0", raw
    err = m.stderr()
    assert "initialize from raw-test" in err and "tools/call bridge_status" in err


# --- resources -------------------------------------------------------------


def test_resources(mcp, db_nosshd):
    offline_tunnel(db_nosshd)
    m = mcp()
    m.initialize()
    uris = [r["uri"] for r in m.result("resources/list")["resources"]]
    assert "bridge://status" in uris
    tpl = m.result("resources/templates/list")["resourceTemplates"]
    assert [t["uriTemplate"] for t in tpl] == ["bridge://{name}/log"]
    c = m.result("resources/read", {"uri": "bridge://status"})["contents"][0]
    assert c["uri"] == "bridge://status" and c["mimeType"] == "application/json"
    assert json.loads(c["text"]) == db_nosshd.status()
    c = m.result("resources/read", {"uri": "bridge://t1/log"})["contents"][0]
    assert json.loads(c["text"]) == {"name": "t1", "events": []}
    db_nosshd.run("up", "t1", "--timeout", "2")  # some events
    c = m.result("resources/read", {"uri": "bridge://t1/log"})["contents"][0]
    r = db_nosshd.run("--json", "logs", "t1", "-n", "100")
    assert json.loads(c["text"]) == r.json() and r.json()["events"], r
    for uri in ("bridge://ghost/log", "bridge://../log", "file:///etc/passwd", "bridge://"):
        err = m.error("resources/read", {"uri": uri}, -32002)
        assert err["data"]["uri"] == uri, err
    m.error("resources/read", {}, -32602)
    assert m.close() == 0


def test_catalog_resources(mcp, db_nosshd):
    cfg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "catalogs", "valid",
                       "config.yaml")
    m = mcp("--config", cfg)
    m.initialize()
    uris = [r["uri"] for r in m.result("resources/list")["resources"]]
    assert uris == ["bridge://status", "catalog://domains", "catalog://targets"]
    for uri, cmd in (("catalog://domains", ["catalog", "list"]), ("catalog://targets", ["targets"])):
        c = m.result("resources/read", {"uri": uri})["contents"][0]
        r = db_nosshd.run("--config", cfg, "--json", *cmd)
        assert r.returncode == 0, r
        assert json.loads(c["text"]) == r.json(), uri
    assert m.close() == 0
    # no catalog_path: not listed; read anyway, the operation's error, its
    # envelope in data
    m = mcp()
    m.initialize()
    uris = [r["uri"] for r in m.result("resources/list")["resources"]]
    assert uris == ["bridge://status"]
    err = m.error("resources/read", {"uri": "catalog://targets"}, -32603)
    assert err["data"]["error"]["name"] == "invalid_config", err
    assert "catalog_path" in err["message"], err
    assert m.close() == 0


def test_subscribe_hears_a_bridge_change_state(mcp, db_nosshd):
    db = db_nosshd
    offline_tunnel(db)
    m = mcp()
    m.initialize()
    assert m.result("resources/subscribe", {"uri": "bridge://status"}) == {}
    assert m.result("resources/subscribe", {"uri": "bridge://t1/log"}) == {}
    m.error("resources/subscribe", {"uri": "nope://x"}, -32002)
    # a real change: a supervisor starts, fails to reach sshd, retries
    r = db.run("up", "t1", "--timeout", "5")
    assert r.returncode != 0, r
    upd = m.next(lambda x: x.get("method") == "notifications/resources/updated"
                 and x["params"]["uri"] == "bridge://status", what="bridge://status updated")
    assert upd["params"] == {"uri": "bridge://status"}
    m.next(lambda x: x.get("method") == "notifications/resources/updated"
           and x["params"]["uri"] == "bridge://t1/log", what="bridge://t1/log updated")
    # what the notification points at says so
    c = m.result("resources/read", {"uri": "bridge://status"})["contents"][0]
    assert json.loads(c["text"])["bridges"][0]["state"] != "stopped"
    # unsubscribed: the log's notifications go on, the status' stop (both
    # would be sent by the same burst)
    assert m.result("resources/unsubscribe", {"uri": "bridge://status"}) == {}
    m.pending.clear()
    assert db.run("down", "t1").returncode == 0
    m.next(lambda x: x.get("method") == "notifications/resources/updated"
           and x["params"]["uri"] == "bridge://t1/log", what="the log's update after down")
    assert not [x for x in m.pending if x.get("params", {}).get("uri") == "bridge://status"]
    assert m.close() == 0


def test_subscribe_hears_sshd_die(tmp_path, db, sshd, tunnel, devbridge_bin):
    db.write_config({"s1": tunnel(sshd, free_port(), free_port())})
    m = Mcp(db)
    try:
        m.initialize()
        assert db.run("up", "s1").returncode == 0
        db.wait_state("s1", "connected", 20)
        m.result("resources/subscribe", {"uri": "bridge://status"})
        sshd.kill9()
        m.next(lambda x: x.get("method") == "notifications/resources/updated", timeout=30,
               what="an update once sshd is gone")
        doc = json.loads(m.result("resources/read", {"uri": "bridge://status"})
                         ["contents"][0]["text"])
        assert doc["bridges"][0]["state"] != "connected", doc
        assert m.close() == 0
    finally:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()


# --- 2026-07-28 ------------------------------------------------------------


def test_2026_07_28_is_refused_with_the_revisions_we_speak(mcp):
    m = mcp()
    modern = {META_VERSION: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    # the dual-era client's probe, and a stateless request without initialize
    for method, params in (("server/discover", {"_meta": modern}),
                           ("tools/list", {"_meta": modern}),
                           ("tools/call", {"_meta": modern, "name": "bridge_status"})):
        err = m.error(method, params, -32022)
        assert err["data"] == {"supported": REVISIONS, "requested": "2026-07-28"}, err
    # a notification in that revision gets nothing (a notification is never answered)
    m.notify("notifications/cancelled", {"_meta": modern, "requestId": 1})
    # the probe without a revision: what initialize offers
    d = m.result("server/discover", {})
    assert d["supportedVersions"] == REVISIONS
    assert d["capabilities"]["resources"]["subscribe"] is True
    # so the client falls back to the handshake
    assert m.initialize("2025-11-25")["protocolVersion"] == "2025-11-25"
    # _meta naming the session's own revision is fine; another is not
    assert m.result("tools/list", {"_meta": {META_VERSION: "2025-11-25"}})["tools"]
    m.error("tools/list", {"_meta": {META_VERSION: "2025-06-18"}}, -32022)
    assert not m.pending, m.pending
    assert m.close() == 0


# --- mcp config and --help -------------------------------------------------


def test_mcp_config(db_nosshd, tmp_path):
    db = db_nosshd
    offline_tunnel(db)
    state = tmp_path / "new" / "dir"
    r = db.run("--config", db.config, "--state-dir", str(state), "--json", "mcp", "config")
    assert r.returncode == 0, r
    entry = r.json()["mcpServers"]["devbridge"]
    assert entry["command"] == os.path.realpath(db.bin)
    assert entry["args"] == ["--config", os.path.realpath(db.config), "mcp"]
    assert entry["env"] == {"DEVBRIDGE_STATE_DIR": str(state)}
    # it only names the directory: the server creates it when it starts
    assert not (tmp_path / "new").exists()
    # --profile goes along (the server's default for the tools' profile)
    r = db.run("--config", db.config, "--profile", "staging", "--json", "mcp", "config")
    assert r.returncode == 0, r
    assert r.json()["mcpServers"]["devbridge"]["args"] == [
        "--config", os.path.realpath(db.config), "--profile", "staging", "mcp"]
    r = db.run("--config", db.config, "--profile", "staging", "mcp", "config")
    assert "--config %s --profile staging mcp" % os.path.realpath(db.config) in r.stdout, r
    r = db.run("--config", db.config, "mcp", "config")
    assert r.returncode == 0, r
    assert "claude mcp add --scope user devbridge" in r.stdout
    assert "-- %s --config %s mcp" % (os.path.realpath(db.bin), os.path.realpath(db.config)) \
        in r.stdout
    assert '"mcpServers"' in r.stdout
    r = db.run("mcp", "bogus")
    assert r.returncode == 2 and "bogus" in r.stderr, r


def test_profile_is_the_tools_default(mcp):
    """`devbridge --profile NAME mcp` (what `mcp config --profile` prints):
    NAME is the profile of k8s_connect and intercept_start when the call
    names none, as --profile is for `connect` and `intercept`."""
    m = mcp("--profile", "ghost")
    m.initialize()
    for tool, args, name in (("k8s_connect", {}, "ghost"), ("intercept_start", {}, "ghost"),
                             ("k8s_connect", {"profile": "mine"}, "mine")):
        res = m.tool(tool, args)
        env = json.loads(res["content"][0]["text"])
        assert res["isError"] is True and "no profile '%s'" % name in env["error"]["message"], env
    assert m.tool("bridge_status")["isError"] is False  # a tool without profile: untouched
    assert m.close() == 0


def test_mcp_help(db_nosshd):
    r = db_nosshd.run("mcp", "--help")
    assert r.returncode == 0, r
    for word in ("2025-11-25", "2024-11-05", "2026-07-28", "-32022", "mcp config",
                 "claude mcp add"):
        assert word in r.stdout, (word, r.stdout)
    r = db_nosshd.run("--help")
    assert "mcp" in r.stdout
