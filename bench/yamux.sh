#!/usr/bin/env bash
# yamux.sh - devbridge's Yamux (C) beside hashicorp/yamux (Go) and raw TCP,
# in one run, with the same test peer command line (tests/yamux/PEER.md):
#
#   raw    yamux-peer --raw client -> yamux-peer --raw server (one TCP
#          connection per stream: the kernel's cost)
#   go     gopeer --plain client -> gopeer --plain server (Debian's
#          hashicorp/yamux on the bare connection, its default 256 KiB
#          window)
#   c      yamux-peer client -> yamux-peer server (src/proto/yamux, -O2),
#          with the library's default window auto-tuning (256 KiB growing
#          to 4 MiB: --max-window 4194304)
#   c256k  the same with the window fixed at 256 KiB, as Go's
#
# ROUNDS rounds, each running every pair once per measurement in a rotated
# order (a slow period hits all three), for:
#
#   tput1    --bench-throughput TPUT_BYTES --streams 1 (server --accept discard)
#   tput16   --bench-throughput TPUT_BYTES/16 --streams 16 (same total)
#   rr       --bench-rr RR_COUNT --size 32: open, 32-byte echo, close, one
#            after the other; p50 and p99
#   idle     --idle-streams IDLE_N (and 1), server --accept echo: the RSS of
#            both processes after 1 and after IDLE_N open idle streams;
#            per stream = the difference / (IDLE_N - 1), both sides added;
#            per session = the server's RSS with 1 stream minus its RSS
#            while listening (before the connection)
#
# Prints every run, then per pair and measurement the median and the
# spread, and the ratios of the medians C/Go and C/raw.  Loopback only;
# every process it starts is its child, ended by pid.  Not a test.
#
#   bench/yamux.sh                  builds build-bench (release) and the Go peer
#   YAMUX_PEER=build/yamux-peer GOPEER=/path/gopeer bench/yamux.sh
#
# Knobs: ROUNDS (5), TPUT_BYTES (1073741824), RR_COUNT (5000), IDLE_N (1000),
# BUILD (build-bench: meson --buildtype=release, no sanitizer), CPUS (a
# taskset list for every process, e.g. CPUS=0: both ends on one CPU; on a
# VM a wakeup across CPUs can cost tens of microseconds, which a round
# trip pays twice).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-5}"
TPUT_BYTES="${TPUT_BYTES:-1073741824}"
RR_COUNT="${RR_COUNT:-5000}"
IDLE_N="${IDLE_N:-1000}"
BUILD="${BUILD:-$ROOT/build-bench}"
PY=/usr/bin/python3

if [ -z "${YAMUX_PEER:-}" ]; then
	[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
	ninja -C "$BUILD" yamux-peer >/dev/null
	YAMUX_PEER="$BUILD/yamux-peer"
fi
if [ -z "${GOPEER:-}" ]; then
	GOPEER="$("$ROOT/tests/yamux/build-gopeer.sh" "$BUILD/gopeer")"
fi
if grep -q -- '-fsanitize' "$BUILD/build.ninja" 2>/dev/null; then
	echo "yamux.sh: $BUILD is a sanitizer build; use a release one (BUILD=...)" >&2
	exit 2
fi

echo "# yamux bench: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src || echo ', modified');" \
	"$(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# C peer $YAMUX_PEER, Go peer $GOPEER ($(go version 2>/dev/null | cut -d' ' -f3)," \
	"hashicorp/yamux $(dpkg-query -W -f '${Version}' golang-github-hashicorp-yamux-dev 2>/dev/null || echo '?'))"
echo "# ROUNDS=$ROUNDS TPUT_BYTES=$TPUT_BYTES RR_COUNT=$RR_COUNT IDLE_N=$IDLE_N"

echo "# CPUS=${CPUS:-any}"
exec "$PY" - "$YAMUX_PEER" "$GOPEER" "$ROUNDS" "$TPUT_BYTES" "$RR_COUNT" "$IDLE_N" "${CPUS:-}" <<'EOF'
import json, os, select, signal, statistics, subprocess, sys, time

cpeer, gopeer = sys.argv[1], sys.argv[2]
rounds, tput_bytes, rr_count, idle_n = (int(x) for x in sys.argv[3:7])
PIN = ["taskset", "-c", sys.argv[7]] if sys.argv[7] else []
PAIRS = {"raw": (cpeer, ["--raw"]), "go": (gopeer, ["--plain"]),
         "c": (cpeer, ["--max-window", "4194304"]), "c256k": (cpeer, [])}
ORDER = ["raw", "go", "c", "c256k"]
DEADLINE = 300


class Proc:
    def __init__(self, argv):
        self.argv = argv
        self.p = subprocess.Popen(PIN + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.buf = b""

    def event(self, name, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == name:
                    return ev
                if ev.get("event") == "unsupported":
                    raise RuntimeError("%s: unsupported: %r" % (self.argv[0], ev))
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%r: no %s event in %ds" % (self.argv, name, timeout))
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    err = self.p.stderr.read().decode(errors="replace")
                    raise RuntimeError("%r exited %s before %s:\n%s"
                                       % (self.argv, self.p.wait(), name, err[-2000:]))
                self.buf += chunk

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()


def pair(name, server_args, client_args, until, measure_server=None):
    binary, extra = PAIRS[name]
    srv = Proc([binary, "--listen", "127.0.0.1:0"] + extra + server_args)
    cli = None
    try:
        port = srv.event("listening")["port"]
        before = srv.rss_kib()
        cli = Proc([binary, "--connect", "127.0.0.1:%d" % port] + extra + client_args)
        ev = cli.event(until)
        if measure_server:
            ev = dict(ev, server_rss_kib=srv.rss_kib(), server_rss_before_kib=before)
        return ev
    finally:
        if cli:
            cli.stop()
        srv.stop()


def tput(name, streams):
    ev = pair(name, ["--accept", "discard"],
              ["--bench-throughput", str(tput_bytes // streams), "--streams", str(streams)], "bench")
    return {"GiB/s": ev["gib_per_s"]}


def rr(name):
    ev = pair(name, ["--accept", "echo"], ["--bench-rr", str(rr_count), "--size", "32"], "bench")
    return {"p50 us": ev["p50_us"], "p99 us": ev["p99_us"], "mean us": ev["mean_us"]}


def idle(name):
    one = pair(name, ["--accept", "echo"], ["--idle-streams", "1"], "idle", measure_server=True)
    many = pair(name, ["--accept", "echo"], ["--idle-streams", str(idle_n)], "idle",
                measure_server=True)
    per_stream = ((many["rss_kib"] + many["server_rss_kib"]) - (one["rss_kib"] + one["server_rss_kib"])) \
        * 1024 / (idle_n - 1)
    out = {"B/stream (RSS)": per_stream,
           "B/session (server RSS)": (one["server_rss_kib"] - one["server_rss_before_kib"]) * 1024}
    if many.get("session_bytes") is not None and one.get("session_bytes") is not None:
        out["B/stream (own count)"] = (many["session_bytes"] - one["session_bytes"]) / (idle_n - 1)
    return out


MEASURES = [("tput1", lambda n: tput(n, 1)), ("tput16", lambda n: tput(n, 16)), ("rr", rr),
            ("idle", idle)]
res = {}
for rnd in range(rounds):
    for kind, fn in MEASURES:
        for i in range(len(ORDER)):
            name = ORDER[(i + rnd) % len(ORDER)]
            try:
                v = fn(name)
            except RuntimeError as e:
                print("%s %s %d failed: %s" % (kind, name, rnd + 1, e), flush=True)
                continue
            print("%s %s %d %s" % (kind, name, rnd + 1,
                                   " ".join("%s=%.3f" % kv for kv in v.items())), flush=True)
            for k, x in v.items():
                res.setdefault((kind, k), {}).setdefault(name, []).append(x)

print("# load %s at the end" % " ".join(open("/proc/loadavg").read().split()[:3]))
print()
print("%-8s %-22s %12s %12s %12s %12s   %7s %7s %9s" % ("", "", "raw", "go", "c", "c256k", "C/Go",
                                                      "C/raw", "c256k/Go"))
for (kind, k), per in res.items():
    med = {n: statistics.median(xs) for n, xs in per.items()}
    cells = []
    for n in ORDER:
        cells.append("%12.3f" % med[n] if n in med else "%12s" % "-")
    ratio = lambda a, b: ("%7.2f" % (med[a] / med[b])) if a in med and b in med and med[b] else "%7s" % "-"
    print("%-8s %-22s %s   %s %s %9s" % (kind, k, " ".join(cells), ratio("c", "go"), ratio("c", "raw"),
                                          ratio("c256k", "go").strip()))
print()
print("spread (min - max) per pair:")
for (kind, k), per in res.items():
    print("  %-8s %-22s %s" % (kind, k, "  ".join(
        "%s %.3f-%.3f" % (n, min(per[n]), max(per[n])) for n in ORDER if n in per)))
EOF
