#!/usr/bin/env bash
# The MCP server's cost against the CLI, in one run (see bench/README.md):
#
#   1. tools/call bridge_status round trips through one `devbridge mcp`
#      session, N in a row: with the official SDK's client (as an agent:
#      callTool validates each structuredContent) and with a bare JSON-RPC
#      client (a line out, a line back), p50/p99
#   2. the server's VmRSS idle after the handshake and after the N calls
#   3. `devbridge --json status` run as a process per call, N times, p50/p99
#
#   bench/mcp.sh   (binary: $DEVBRIDGE_BIN, default build/devbridge, the
#                   release build: meson setup build --buildtype=debugoptimized)
#
# The config has three tunnels that are not running (status reads their
# state; no sshd).  Writes bench/mcp-results.md ($MCP_RESULTS_MD).  Every
# process started here is ended by pid; the temp dir is removed at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DEVBRIDGE_BIN:-build/devbridge}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
PY=/usr/bin/python3
N="${N:-500}"
RESULTS_MD="${MCP_RESULTS_MD:-$ROOT/bench/mcp-results.md}"

die() { printf 'bench/mcp: %s\n' "$*" >&2; exit 1; }
step() { printf '==> %s\n' "$*"; }
[ -x "$BIN" ] || die "no devbridge binary at $BIN (meson setup build --buildtype=debugoptimized && ninja -C build)"
command -v node >/dev/null || die "node not found (scripts/install-deps.sh)"
[ -d "$ROOT/tests/mcp/node_modules/@modelcontextprotocol/sdk" ] ||
	die "the MCP SDK is not installed (scripts/install-deps.sh)"

TMP="$(mktemp -d -t devbridge-mcp-bench.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
cat >"$TMP/config.yaml" <<EOF
tunnels:
  web:
    host: 127.0.0.1
    remote_port: 18001
    local_port: 8001
    ssh_user: u
    ssh_key: /k
    actor: bench
  db:
    host: 127.0.0.1
    remote_port: 18002
    local_port: 8002
    ssh_user: u
    ssh_key: /k
    actor: bench
  api:
    host: 127.0.0.1
    remote_port: 18003
    local_port: 8003
    ssh_user: u
    ssh_key: /k
    actor: bench
actors:
  bench: {class: automation}
EOF
export HOME="$TMP" DEVBRIDGE_CONFIG="$TMP/config.yaml" DEVBRIDGE_STATE_DIR="$TMP/state"

SPEC="$("$PY" -c '
import json, os, sys
print(json.dumps({"command": sys.argv[1], "args": ["mcp"], "env": dict(os.environ),
                  "cwd": os.environ["HOME"]}))' "$BIN")"

step "SDK client: $N tools/call bridge_status"
node "$ROOT/tests/mcp/bench_client.mjs" "$SPEC" "$N" >"$TMP/sdk.json"

step "bare JSON-RPC client: $N tools/call bridge_status; then $N x \`devbridge --json status\`"
"$PY" - "$BIN" "$N" "$TMP/sdk.json" "$RESULTS_MD" <<'EOF'
import json, os, platform, select, subprocess, sys, time

binary, n, sdk_path, md = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def pct(ms, p):
    s = sorted(ms)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Raw:
    """One `devbridge mcp` session over pipes: a request line, its reply."""

    def __init__(self):
        self.p = subprocess.Popen([binary, "mcp"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buf = b""
        self.id = 0

    def request(self, method, params=None):
        self.id += 1
        msg = {"jsonrpc": "2.0", "id": self.id, "method": method}
        if params is not None:
            msg["params"] = params
        os.write(self.p.stdin.fileno(), (json.dumps(msg) + "\n").encode())
        while True:
            while b"\n" not in self.buf:
                r, _, _ = select.select([self.p.stdout], [], [], 30)
                assert r, "no reply to %s in 30 s" % method
                chunk = os.read(self.p.stdout.fileno(), 1 << 16)
                assert chunk, "devbridge mcp exited"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            reply = json.loads(line)
            if reply.get("id") == self.id:
                return reply

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


raw = Raw()
raw.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "bench", "version": "0"}})
os.write(raw.p.stdin.fileno(), b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
raw.request("tools/list")
rss_idle = rss_kib(raw.p.pid)
raw_ms = []
for _ in range(n):
    t0 = time.perf_counter()
    r = raw.request("tools/call", {"name": "bridge_status", "arguments": {}})
    raw_ms.append((time.perf_counter() - t0) * 1e3)
    assert not r["result"]["isError"], r
rss_after = rss_kib(raw.p.pid)
raw.close()

proc_ms = []
for _ in range(n):
    t0 = time.perf_counter()
    out = subprocess.run([binary, "--json", "status"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=True).stdout
    proc_ms.append((time.perf_counter() - t0) * 1e3)
json.loads(out)

sdk = json.load(open(sdk_path))
rows = [("MCP tools/call, SDK client (callTool + outputSchema check)", sdk["ms"]),
        ("MCP tools/call, bare JSON-RPC client", raw_ms),
        ("`devbridge --json status`, a process per call", proc_ms)]
p50 = {name: pct(ms, 50) for name, ms in rows}
lines = ["# MCP server benchmark (bench/mcp.sh)", "",
         "`%s`, %d calls each, %s, %d CPUs, load %s." % (
             os.path.basename(binary) + " (release build)", n, platform.machine(),
             os.cpu_count(), open("/proc/loadavg").read().split()[0]),
         "The config has three tunnels that are not running: `bridge_status` reads their "
         "state files, as `status` does. Run: `N=%d bench/mcp.sh`." % n, "",
         "| path | p50 ms | p99 ms | mean ms |", "|---|---:|---:|---:|"]
for name, ms in rows:
    lines.append("| %s | %.3f | %.3f | %.3f |" % (name, pct(ms, 50), pct(ms, 99), sum(ms) / len(ms)))
proc = p50[rows[2][0]]
lines += ["",
          "A process per call takes **%.1fx** the SDK round trip and **%.1fx** the bare one "
          "(p50)." % (proc / p50[rows[0][0]], proc / p50[rows[1][0]]), "",
          "| server VmRSS | KiB |", "|---|---:|",
          "| idle after the handshake (bare client) | %d |" % rss_idle,
          "| after %d calls (bare client) | %d |" % (n, rss_after),
          "| idle after the handshake (SDK client) | %d |" % sdk["rss_idle_kib"],
          "| after %d calls (SDK client) | %d |" % (n, sdk["rss_after_kib"]), ""]
open(md, "w").write("\n".join(lines))
print("\n".join(lines))
EOF
printf '==> wrote %s\n' "$RESULTS_MD"
