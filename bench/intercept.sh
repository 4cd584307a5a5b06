#!/usr/bin/env bash
# devbridge Kubernetes intercept (`devbridge intercept SVC --steal`)
# benchmarks, side by side, in one run, against one kubesim echo pod (see the
# "Kubernetes intercept" section of bench/README.md):
#
#   1. added latency: p50/p99 of small request/response round trips, a fresh
#      connection each, to the pod directly, through the ClusterIP of a
#      Service that is not intercepted, to the laptop's echo server directly,
#      and through the ClusterIP of a Service that `devbridge intercept`
#      routes to that laptop server; rotated rounds
#   2. throughput of 1 MiB and 64 MiB (sent and echoed back) on the same paths
#   3. time from running `intercept` to the first routed request, split by
#      the CLI's progress steps, and the time from SIGINT to its exit
#
#   bench/intercept.sh     (root; binary: $DEVBRIDGE_BIN, default build-bench/devbridge)
#
# Prints the figures and writes bench/intercept-results.md
# ($INTERCEPT_RESULTS_MD).  One kubesim (`python3 -m kubesim --runtime`) in a
# temp dir runs the echo pod and the agent pods ($DEVBRIDGE_BIN's `agent`);
# the intercept, the laptop server and the sim are ended by pid at exit, also
# on failure.  About 2 minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DEVBRIDGE_BIN:-build-bench/devbridge}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
PY=/usr/bin/python3
RESULTS_MD="${INTERCEPT_RESULTS_MD:-$ROOT/bench/intercept-results.md}"

ROUNDS="${ROUNDS:-5}"          # latency and throughput runs per path
RR_N="${RR_N:-300}"            # timed request/response round trips per latency run
RR_SIZE="${RR_SIZE:-64}"       # bytes per request (and response)
RR_WARM=20                     # untimed ones before them
SMALL_REPS="${SMALL_REPS:-10}" # 1 MiB transfers per throughput run
BIG_MIB="${BIG_MIB:-64}"       # the large transfer (one per run)
START_RUNS="${START_RUNS:-5}"  # intercept-to-first-request runs
START_TIMEOUT=60               # seconds each may take at most

CMDLINE=""
[ -n "${DEVBRIDGE_BIN:-}" ] && CMDLINE+="DEVBRIDGE_BIN=$DEVBRIDGE_BIN "
[ "$ROUNDS" != 5 ] && CMDLINE+="ROUNDS=$ROUNDS "
[ "$RR_N" != 300 ] && CMDLINE+="RR_N=$RR_N "
[ "$RR_SIZE" != 64 ] && CMDLINE+="RR_SIZE=$RR_SIZE "
[ "$SMALL_REPS" != 10 ] && CMDLINE+="SMALL_REPS=$SMALL_REPS "
[ "$BIG_MIB" != 64 ] && CMDLINE+="BIG_MIB=$BIG_MIB "
[ "$START_RUNS" != 5 ] && CMDLINE+="START_RUNS=$START_RUNS "
[ -n "${INTERCEPT_RESULTS_MD:-}" ] && CMDLINE+="INTERCEPT_RESULTS_MD=$INTERCEPT_RESULTS_MD "
CMDLINE+="bench/intercept.sh (as root, from $ROOT)"

step() { printf '==> %s\n' "$*"; }
die() { printf 'intercept bench: %s\n' "$*" >&2; exit 1; }
rec() { printf '%s\n' "$1" >>"$TMP/records.jsonl"; }

[ "$(id -u)" = 0 ] || die "needs root (kubesim --runtime: network namespaces, the bridge ksbr0)"
[ -x "$BIN" ] || die "no devbridge binary at $BIN (meson setup build-bench --buildtype=release && ninja -C build-bench, or set DEVBRIDGE_BIN)"
KUBECTL="$(command -v kubectl || true)"
[ -n "$KUBECTL" ] || die "kubectl not found on PATH"
command -v ip >/dev/null || die "ip not found (iproute2)"
[ -f "$ROOT/tests/kubesim/runtime.py" ] || die "tests/kubesim/runtime.py missing"

TMP="$(mktemp -d -t devbridge-intercept-bench.XXXXXX)"
H="$ROOT/bench/intercept_helpers.py"
STATE="$TMP/state"
SIM_PID="" IC_PID="" SRV_PID="" CIPS="" T_START="$(date +%s.%N)"
h() { "$PY" "$H" "$@"; }

for v in $(env | sed -n 's/^\(DEVBRIDGE_[A-Za-z0-9_]*\|KUBE[A-Za-z0-9_]*\|BRIDGE_[A-Za-z0-9_]*\)=.*/\1/p'); do
	unset "$v"
done
export HOME="$TMP/home" KUBECACHEDIR="$TMP/home/kcache" KUBECONFIG="$TMP/sim/kubeconfig" NO_COLOR=1

stop_sim() { # SIGTERM (the sim removes its pods, namespaces and addresses), SIGKILL after 30 s
	[ -n "$SIM_PID" ] || return 0
	kill -TERM "$SIM_PID" 2>/dev/null || true
	for _ in $(seq 300); do
		kill -0 "$SIM_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SIM_PID" 2>/dev/null; then
		echo "intercept bench: the sim did not stop in 30 s; SIGKILL, and removing its namespaces" >&2
		kill -KILL "$SIM_PID" 2>/dev/null || true
		wait "$SIM_PID" 2>/dev/null || true
		for f in /run/kubesim/ks-*.json; do
			[ -e "$f" ] || continue
			grep -q "\"owner\": ${SIM_PID}[,}]" "$f" || continue
			n="$(basename "$f" .json)"
			for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			ip netns del "$n" 2>/dev/null
			ip link del "ksv${n#ks-}" 2>/dev/null
			rm -f "$f"
		done
		for c in $CIPS; do ip addr del "$c/32" dev ksbr0 2>/dev/null; done
	fi
	wait "$SIM_PID" 2>/dev/null || true
	SIM_PID=""
}

stop_intercept() { # SIGINT: the CLI restores the selector and removes the agent
	[ -n "$IC_PID" ] || return 0
	kill -INT "$IC_PID" 2>/dev/null || true
	for _ in $(seq 600); do
		kill -0 "$IC_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$IC_PID" 2>/dev/null || true
	wait "$IC_PID" 2>/dev/null || true
	IC_PID=""
}

cleanup() {
	local rc=$?
	set +e
	stop_intercept
	[ -n "$SRV_PID" ] && { kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; }
	stop_sim
	if [ "$rc" != 0 ]; then
		for f in sim.log intercept.err srv.out; do
			[ -s "$TMP/$f" ] && { echo "--- $f (tail)"; tail -15 "$TMP/$f"; } >&2
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$HOME" "$STATE"
cd "$TMP"

# ---------------------------------------------------------------- setup
OTHER_SIMS="$(pgrep -c -f -- '-m kubesim' || true)"
LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
step "kubesim --runtime in $TMP/sim (agent image runs $BIN)"
(cd "$ROOT/tests" && DEVBRIDGE_BIN="$BIN" exec "$PY" -m kubesim --dir "$TMP/sim" --runtime) >sim.log 2>&1 &
SIM_PID=$!
for _ in $(seq 300); do # 30 s
	[ -s "$TMP/sim/ready" ] && break
	kill -0 "$SIM_PID" 2>/dev/null || die "kubesim exited: $(tail -5 sim.log)"
	sleep 0.1
done
[ -s "$TMP/sim/ready" ] || die "kubesim not ready after 30 s"

# two ClusterIPs of our own in 10.96.217.0/24 (other benches and tests use
# other /24s; a sim removes its service addresses from ksbr0 when it stops)
for _ in $(seq 100); do
	c="10.96.217.$((RANDOM % 240 + 10))"
	ip -4 -o addr show 2>/dev/null | grep -q " $c/" && continue
	case " $CIPS " in *" $c "*) continue ;; esac
	CIPS="$CIPS $c"
	[ "$(echo $CIPS | wc -w)" = 2 ] && break
done
read -r CIP_PLAIN CIP_WEB <<<"$CIPS"
[ -n "${CIP_WEB:-}" ] || die "no two free ClusterIPs in 10.96.217.0/24"
cat >objects.json <<EOF2
{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo", "labels": {"app": "echo"}},
  "spec": {"containers": [{"name": "echo", "image": "kubesim/echo", "ports": [{"containerPort": 8080}]}]}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain"},
  "spec": {"selector": {"app": "echo"}, "clusterIP": "$CIP_PLAIN", "ports": [{"port": 80, "targetPort": 8080}]}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
  "spec": {"selector": {"app": "echo"}, "clusterIP": "$CIP_WEB", "ports": [{"port": 80, "targetPort": 8080}]}}]}
EOF2
"$KUBECTL" apply --validate=false -f objects.json >/dev/null || die "kubectl apply failed"
"$KUBECTL" wait --for=condition=Ready pod/echo --timeout=30s >/dev/null || die "pod echo not Ready in 30 s"
POD_IP="$("$KUBECTL" get pod echo -o 'jsonpath={.status.podIP}')"
[ -n "$POD_IP" ] || die "pod echo has no IP"
step "pod echo at $POD_IP:8080; services plain ($CIP_PLAIN) and web ($CIP_WEB), 80 -> 8080"

read -r L_SRV L_FIRST <<<"$(h free-ports 2)"
h serve "$L_SRV" >srv.out 2>&1 &
SRV_PID=$!
for _ in $(seq 100); do grep -q ready srv.out 2>/dev/null && break; sleep 0.05; done
grep -q ready srv.out || die "the laptop echo server did not start"

IC_ARGV=("$BIN" --state-dir "$STATE" intercept web --steal -p "80:$L_SRV")
step "${IC_ARGV[*]}"
"${IC_ARGV[@]}" >intercept.out 2>intercept.err </dev/null &
IC_PID=$!
for _ in $(seq 600); do # 60 s
	grep -q "tunnel up" intercept.err && break
	kill -0 "$IC_PID" 2>/dev/null || die "intercept exited: $(cat intercept.err)"
	sleep 0.1
done
grep -q "tunnel up" intercept.err || die "no tunnel after 60 s: $(cat intercept.err)"
sed 's/^/    /' intercept.err

declare -A AT=([direct]="$POD_IP 8080" [clusterip]="$CIP_PLAIN 80" [laptop]="127.0.0.1 $L_SRV"
	[intercept]="$CIP_WEB 80")
PATHS=(direct clusterip laptop intercept)
rotate() {
	local n=$(($1 % ${#PATHS[@]}))
	echo "${PATHS[@]:$n}" "${PATHS[@]:0:$n}"
}
h rr "$CIP_WEB" 80 3 8 0 >/dev/null || die "no echo through the intercept"

DESC="$("$PY" -c 'import json,sys; print(json.dumps(dict(zip(["direct","clusterip","laptop","intercept"], sys.argv[1:]))))' \
	"client -> $POD_IP:8080, the pod's own address across ksbr0 (kernel only)" \
	"client -> $CIP_PLAIN:80, Service \`plain\` (same pod, not intercepted): kubesim's ClusterIP proxy -> the pod" \
	"client -> 127.0.0.1:$L_SRV, the laptop's echo server (the one the intercept routes to) directly" \
	"client -> $CIP_WEB:80, Service \`web\` intercepted by \`devbridge intercept web --steal -p 80:$L_SRV\`: ClusterIP proxy -> agent pod -> yamux stream over \`kubectl port-forward\` (kubesim's API server) -> the CLI -> 127.0.0.1:$L_SRV")"
"$PY" - "$DESC" >>records.jsonl <<EOF2
import json, os, subprocess, sys
def out(*a):
    try: return subprocess.run(a, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception: return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
osn = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME=")), "?")
import datetime
print(json.dumps({"kind": "meta", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
  "nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release, "os": osn,
  "dbv": out("$BIN", "--version"), "bin": "$BIN",
  "built": datetime.datetime.fromtimestamp(os.path.getmtime("$BIN"), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
  "head": out("git", "-C", "$ROOT", "rev-parse", "--short", "HEAD"), "kubectlv": out("$KUBECTL", "version", "--client"),
  "pyv": sys.version.split()[0] and "Python " + sys.version.split()[0], "cmd": """$CMDLINE""",
  "loadavg": "$LOADAVG", "other_sims": "$OTHER_SIMS", "rounds": $ROUNDS, "rr_n": $RR_N, "rr_size": $RR_SIZE,
  "rr_warm": $RR_WARM, "paths": ["direct", "clusterip", "laptop", "intercept"], "desc": json.loads(sys.argv[1])}))
EOF2

# ---------------------------------------------------------------- 1. latency
step "1. request/response: $RR_N x $RR_SIZE bytes, fresh connection each, $ROUNDS rounds of ${PATHS[*]}"
for round in $(seq "$ROUNDS"); do
	for path in $(rotate $((round - 1))); do
		read -r addr port <<<"${AT[$path]}"
		line="$(h rr "$addr" "$port" "$RR_N" "$RR_SIZE" "$RR_WARM")" || die "request/response ($path) failed"
		printf '    round %s  %-9s %s\n' "$round" "$path" "$line"
		rec "{\"kind\":\"rr\",\"path\":\"$path\",\"round\":$round,${line#\{}"
	done
done

# ---------------------------------------------------------------- 2. throughput
step "2. throughput: $SMALL_REPS x 1 MiB and 1 x $BIG_MIB MiB per run, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
	for path in $(rotate $((round - 1))); do
		read -r addr port <<<"${AT[$path]}"
		for spec in "1 $SMALL_REPS" "$BIG_MIB 1"; do
			read -r mib reps <<<"$spec"
			line="$(h tputs "$addr" "$port" $((mib * 1024 * 1024)) "$reps")" || die "throughput ($path, $mib MiB) failed"
			printf '    round %s  %-9s %3s MiB %s\n' "$round" "$path" "$mib" "$line"
			rec "{\"kind\":\"tput\",\"path\":\"$path\",\"round\":$round,${line#\{}"
		done
	done
done
stop_intercept
grep -q "selector restored" intercept.err || die "the long intercept did not restore: $(cat intercept.err)"

# ---------------------------------------------------------------- 3. start to first request
step "3. intercept to the first routed request: $START_RUNS runs"
for i in $(seq "$START_RUNS"); do
	line="$(h first "$BIN" "$STATE" web "$L_FIRST" "$CIP_WEB" 80 "$START_TIMEOUT")" || die "intercept run $i failed"
	printf '    run %s  %s\n' "$i" "$line"
	rec "{\"kind\":\"first\",\"run\":$i,${line#\{}"
done

rec "{\"kind\":\"end\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"elapsed_s\":$("$PY" -c "import time; print(round(time.time() - $T_START))")}"
h report records.jsonl "$RESULTS_MD" >/dev/null
step "wrote $RESULTS_MD"
cat "$RESULTS_MD"
