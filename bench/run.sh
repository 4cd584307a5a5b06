#!/usr/bin/env bash
# devbridge benchmarks, side by side, in one run (see bench/README.md):
#
#   1. throughput: iperf3 direct vs. through `ssh -N -R` by hand vs. through
#      a devbridge-supervised reverse tunnel (median of ROUNDS, alternating)
#   2. reconnect latency after the sshd is SIGKILLed and restarted
#   3. idle cost of a supervisor: RSS and wakeups, without and with a health check
#   4. CLI latency of `devbridge --json status` (only if hyperfine is installed)
#
#   bench/run.sh          (or `make bench`; binary: $DEVBRIDGE_BIN, default build/devbridge)
#
# Prints a table and writes bench/results.md ($RESULTS_MD).  Touches no system
# configuration: sshd, keys, config and state live in one temp dir removed at
# exit; every process started here is ended by pid.  About 2 minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DEVBRIDGE_BIN:-build/devbridge}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
export DEVBRIDGE_BIN="$BIN"
PY=/usr/bin/python3
SSHD=/usr/sbin/sshd
HELP="$ROOT/bench/bench_helpers.py"
RESULTS_MD="${RESULTS_MD:-$ROOT/bench/results.md}"

TPUT_SECONDS="${TPUT_SECONDS:-5}"           # iperf3 -t
ROUNDS="${ROUNDS:-3}"                       # throughput runs per path
RECONNECT_TRIALS="${RECONNECT_TRIALS:-3}"
IDLE_SECONDS="${IDLE_SECONDS:-30}"
BACKOFF=1                                   # reconnect.backoff_initial = backoff_max
HC_INTERVAL=5                               # health_check.interval_seconds (second tunnel)

step() { printf '==> %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
h() { "$PY" "$HELP" "$@"; }
now() { date +%s.%N; }
rec() { printf '%s\n' "$1" >>"$TMP/records.jsonl"; }

[ -x "$BIN" ] || die "no devbridge binary at $BIN (build it: ninja -C build, or set DEVBRIDGE_BIN)"
[ -x "$SSHD" ] || die "$SSHD not found (apt-get install openssh-server)"
for c in ssh ssh-keygen iperf3 ps; do
	command -v "$c" >/dev/null || die "$c not found (scripts/install-deps.sh --bench)"
done

TMP="$(mktemp -d -t devbridge-bench.XXXXXX)"
SSHD_PID="" IPERF_PID="" HAND_PID="" LISTENER_PID="" CONFIG_WRITTEN=0

# SIGKILL the throw-away sshd and everything below it.  Its per-connection
# children run in sessions of their own (sshd calls setsid), so killing the
# listener's process group alone would leave the tunnel's session alive: stop
# the listener, collect its descendants by pid, then kill them all.
kill_sshd() {
	[ -n "$SSHD_PID" ] || return 0
	kill -STOP "$SSHD_PID" 2>/dev/null || true
	local desc
	desc="$(h descendants "$SSHD_PID")"
	# the group kill only when the listener really leads its own group
	if [ "$(ps -o pgid= -p "$SSHD_PID" | tr -d ' ')" = "$SSHD_PID" ]; then
		kill -9 -- "-$SSHD_PID" 2>/dev/null || true
	fi
	# shellcheck disable=SC2086 # $desc is a list of pids
	kill -9 "$SSHD_PID" $desc 2>/dev/null || true
	wait "$SSHD_PID" 2>/dev/null || true
	SSHD_PID=""
}

start_sshd() {
	# setsid: a session (and process group) of its own, pid == pgid
	setsid "$SSHD" -D -e -f "$TMP/sshd_config" 2>>"$TMP/sshd.log" &
	SSHD_PID=$!
}

cleanup() {
	local rc=$?
	set +e
	if [ "$CONFIG_WRITTEN" = 1 ]; then
		"$BIN" down >/dev/null 2>&1
		# a supervisor `down` could not stop: end it by its pid file
		for f in "$TMP"/state/*.pid; do
			[ -e "$f" ] || continue
			pid="$(cat "$f" 2>/dev/null)"
			[ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q __supervise "/proc/$pid/cmdline" 2>/dev/null &&
				kill "$pid" 2>/dev/null
		done
	fi
	for pid in $HAND_PID $IPERF_PID $LISTENER_PID; do
		kill "$pid" 2>/dev/null
	done
	for pid in $HAND_PID $IPERF_PID $LISTENER_PID; do
		wait "$pid" 2>/dev/null
	done
	kill_sshd
	if [ "$rc" != 0 ]; then
		for f in sshd.log hand-ssh.log iperf3-server.log state/bench.out; do
			[ -s "$TMP/$f" ] && { echo "--- $f (tail)"; tail -5 "$TMP/$f"; } >&2
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup
step "setup in $TMP"
cd "$TMP"
ssh-keygen -q -t ed25519 -N '' -C devbridge-bench-host -f hostkey
ssh-keygen -q -t ed25519 -N '' -C devbridge-bench-client -f clientkey
chmod 600 hostkey clientkey
cp clientkey.pub authorized_keys
read -r SSH_PORT LPORT RPORT RPORT2 HC_LPORT HC_RPORT <<<"$(h free-ports 6)"
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cat hostkey.pub)" >known_hosts

cat >sshd_config <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $TMP/hostkey
AuthorizedKeysFile $TMP/authorized_keys
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel ERROR
EOF

# bench: the tunnel under test, no health check.  benchhc: the same with a
# TCP health check against a local listener that counts the checks.
cat >devbridge.yaml <<EOF
tunnels:
  bench:
    host: 127.0.0.1
    ssh_port: $SSH_PORT
    ssh_user: root
    ssh_key: $TMP/clientkey
    remote_port: $RPORT
    local_port: $LPORT
    actor: bench
    reconnect: {backoff_initial: $BACKOFF, backoff_max: $BACKOFF}
    ssh_options: {UserKnownHostsFile: $TMP/known_hosts}
  benchhc:
    host: 127.0.0.1
    ssh_port: $SSH_PORT
    ssh_user: root
    ssh_key: $TMP/clientkey
    remote_port: $HC_RPORT
    local_port: $HC_LPORT
    actor: bench
    reconnect: {backoff_initial: $BACKOFF, backoff_max: $BACKOFF}
    health_check: {tcp: $HC_LPORT, interval_seconds: $HC_INTERVAL, timeout_seconds: 1}
    ssh_options: {UserKnownHostsFile: $TMP/known_hosts}
actors:
  bench: {class: automation}
EOF
CONFIG_WRITTEN=1
export DEVBRIDGE_CONFIG="$TMP/devbridge.yaml" DEVBRIDGE_STATE_DIR="$TMP/state" HOME="$TMP"
"$BIN" config check >/dev/null || die "config check failed"

mkdir -p /run/sshd
start_sshd
h wait-port "$SSH_PORT" 10 >/dev/null || die "sshd did not start"

# the hand-run reference: devbridge's options (minus its -v, which only feeds
# its stderr parser), no supervisor
HAND_ARGV=(ssh -N -o BatchMode=yes -o ExitOnForwardFailure=yes -o ServerAliveInterval=15
	-o ServerAliveCountMax=3 -o ControlMaster=no -o ControlPath=none
	-o UserKnownHostsFile="$TMP/known_hosts" -i "$TMP/clientkey" -p "$SSH_PORT" -l root
	-R "$RPORT2:127.0.0.1:$LPORT" 127.0.0.1)
step "ssh by hand: -R $RPORT2:127.0.0.1:$LPORT"
"${HAND_ARGV[@]}" 2>hand-ssh.log &
HAND_PID=$!
# readiness: the forward accepts (the iperf3 server is not up yet, so the
# probe only opens and closes a channel)
h wait-port "$RPORT2" 15 >/dev/null || die "hand-run ssh forward not ready"

# benchhc's health-check target, up before the tunnel so no check fails
"$PY" "$HELP" listener "$HC_LPORT" "$TMP/hc-connections.log" & # not via h(): $! must be python
LISTENER_PID=$!
h wait-port "$HC_LPORT" 10 >/dev/null || die "health-check listener did not start"
step "devbridge up bench benchhc"
"$BIN" up bench benchhc >/dev/null || die "devbridge up failed (exit $?)"

iperf3 -s -B 127.0.0.1 -p "$LPORT" >iperf3-server.log 2>&1 &
IPERF_PID=$!
h wait-port "$LPORT" 10 >/dev/null || die "iperf3 server did not start"

SSH_ARGV="$("$BIN" logs bench --json -n 0 | "$PY" -c '
import json, sys
e = [e for e in json.load(sys.stdin)["events"] if e["event"] == "bridge_started"][-1]
print(e["detail"].split(": ", 1)[1])')"
DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" NPROC="$(nproc)" KERNEL="$(uname -r)" \
	CPU="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
	LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)" SSHV="$(ssh -V 2>&1)" \
	IPERFV="$(iperf3 --version | head -1)" DBV="$("$BIN" --version)" \
	HAND="${HAND_ARGV[*]}" SSH_ARGV="$SSH_ARGV" \
	TMP="$TMP" TPUT="$TPUT_SECONDS" "$PY" -c '
import json, os
e = os.environ
print(json.dumps({"kind": "meta", "date": e["DATE"], "nproc": e["NPROC"], "kernel": e["KERNEL"],
  "cpu": e["CPU"], "loadavg": e["LOADAVG"], "ssh_version": e["SSHV"], "iperf_version": e["IPERFV"],
  "devbridge_version": e["DBV"], "bin": e["DEVBRIDGE_BIN"], "ssh_argv": e["SSH_ARGV"],
  "hand_argv": e["HAND"], "tmp": e["TMP"], "tput_seconds": int(e["TPUT"]), "backoff_initial": '"$BACKOFF"'}))' \
	>>records.jsonl

# ---------------------------------------------------------------- 1. throughput
step "throughput: iperf3 -t $TPUT_SECONDS, $ROUNDS rounds of direct / ssh by hand / devbridge"
for round in $(seq "$ROUNDS"); do
	for mode in direct ssh devbridge; do
		case $mode in
		direct) port=$LPORT ;;
		ssh) port=$RPORT2 ;;
		devbridge) port=$RPORT ;;
		esac
		out="iperf-$mode-$round.json"
		iperf3 -c 127.0.0.1 -p "$port" -t "$TPUT_SECONDS" -J >"$out" ||
			die "iperf3 ($mode, port $port) failed: $(h iperf-mbps "$out" 2>&1)"
		mbps="$(h iperf-mbps "$out")"
		printf '    round %s  %-9s %10s Mbit/s\n' "$round" "$mode" "$mbps"
		rec "{\"kind\":\"tput\",\"mode\":\"$mode\",\"round\":$round,\"mbps\":$mbps}"
	done
done
kill "$HAND_PID" 2>/dev/null || true
wait "$HAND_PID" 2>/dev/null || true
HAND_PID=""

# ---------------------------------------------------------------- 3. idle (run second)
# (before the reconnect trials, so both tunnels have been connected longer
# than stable_seconds and that one-shot timer is not in the window)
step "idle cost: ${IDLE_SECONDS}s with both tunnels idle (benchhc checks every ${HC_INTERVAL}s)"
declare -A PID0 CTX0
for t in bench benchhc; do
	read -r sup sshp <<<"$("$BIN" --json status "$t" | "$PY" -c '
import json, sys; b = json.load(sys.stdin)["bridges"][0]; print(b["pid"], b["ssh_pid"])')"
	PID0[$t.supervisor]=$sup
	PID0[$t.ssh]=$sshp
done
for k in "${!PID0[@]}"; do
	CTX0[$k]="$(h ctx "${PID0[$k]}")"
done
W0="$(now)"
sleep "$IDLE_SECONDS"
W1="$(now)"
WINDOW="$("$PY" -c "print(round($W1 - $W0, 3))")"
for k in bench.supervisor bench.ssh benchhc.supervisor benchhc.ssh; do
	# the record on stdout, a one-line summary on stderr
	line="$(h idle-record "${k%.*}" "${k#*.}" "${PID0[$k]}" "${CTX0[$k]}" "$WINDOW")"
	rec "$line"
done
CHECKS="$(awk -v a="$W0" -v b="$W1" '$1 >= a && $1 <= b' hc-connections.log | wc -l)"
printf '    health checks in the window: %s\n' "$CHECKS"
rec "{\"kind\":\"hc\",\"checks\":$CHECKS,\"window_s\":$WINDOW,\"interval\":$HC_INTERVAL}"
for t in bench benchhc; do
	state="$("$BIN" --json status "$t" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["bridges"][0]["state"])')"
	[ "$state" = connected ] || die "$t is $state after the idle window, expected connected"
done
"$BIN" down benchhc >/dev/null

# ---------------------------------------------------------------- 2. reconnect (run third)
step "reconnect: sshd SIGKILLed, restarted on :$SSH_PORT, $RECONNECT_TRIALS trials"
for trial in $(seq "$RECONNECT_TRIALS"); do
	kill_sshd
	TK="$(now)"
	TD="$(h wait-state bench '!connected' 10)" || die "bench still connected 10 s after sshd was killed"
	start_sshd
	T0="$(h wait-port "$SSH_PORT" 10)" || die "sshd did not restart"
	T1="$(h wait-state bench connected 15)" || die "bench not connected 15 s after sshd came back"
	AUDIT="$(h audit-reconnect bench "$T0")"
	line="$(TRIAL=$trial TK=$TK TD=$TD T0=$T0 T1=$T1 AUDIT="$AUDIT" "$PY" -c '
import json, os
e = os.environ
r = {"kind": "reconnect", "trial": int(e["TRIAL"]),
     "detect_s": float(e["TD"]) - float(e["TK"]),
     "t0_to_status_s": float(e["T1"]) - float(e["T0"])}
r.update(json.loads(e["AUDIT"]))
print(json.dumps(r))')"
	rec "$line"
	printf '    trial %s: %s\n' "$trial" "$line"
	sleep 0.5
done

# ---------------------------------------------------------------- 4. CLI latency
if command -v hyperfine >/dev/null; then
	step "CLI latency: hyperfine '$BIN --json status bench'"
	hyperfine -N --warmup 3 --runs 30 --style none --export-json hyperfine.json \
		"$BIN --json status bench" >/dev/null 2>&1 &&
		rec "$("$PY" -c '
import json
r = json.load(open("hyperfine.json"))["results"][0]
print(json.dumps({"kind": "cli", "command": "devbridge --json status bench", "mean_ms": r["mean"] * 1e3,
  "stddev_ms": r["stddev"] * 1e3, "min_ms": r["min"] * 1e3, "runs": len(r["times"])}))')" ||
		echo "    hyperfine failed; skipped"
else
	step "CLI latency: skipped (hyperfine not installed)"
fi

"$BIN" down >/dev/null
rec "{\"kind\":\"end\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"

# ---------------------------------------------------------------- report
h report records.jsonl "$RESULTS_MD"
step "wrote $RESULTS_MD"
"$ROOT/bench/container.sh" # the devcontainer bridge benchmark (root; bench/container-results.md)
"$ROOT/bench/k8s.sh" # the Kubernetes bridge benchmark (root, kubectl; bench/k8s-results.md)
"$ROOT/bench/mcp.sh" # the MCP server against a process per call (bench/mcp-results.md)
