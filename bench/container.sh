#!/usr/bin/env bash
# devbridge devcontainer bridge benchmarks, side by side, in one run (see the
# "Devcontainer bridge" section of bench/README.md):
#
#   1. throughput: iperf3 single stream, direct across the veth vs. through
#      devbridge (host daemon + container daemon) vs. haproxy (tcp, splice)
#      vs. socat (median of ROUNDS, alternating); plus haproxy-x2, two
#      haproxies in a row, the like-for-like reference for devbridge's two relays
#   2. 1-byte ping-pong latency p50/p99, same paths
#   3. connection rate (connect + 1-byte echo + close), same paths
#   4. 10,000 concurrent idle connections through devbridge: RSS per
#      connection of both daemons, errors
#   5. listen-to-answer latency of a new server in the container, and the
#      daemons' CPU use when idle
#
#   bench/container.sh     (root; binary: $DEVBRIDGE_BIN, default build/devbridge)
#
# With DEVBRIDGE_BASE_BIN=/path/to/another/devbridge, a second pair of
# daemons from that binary (a baseline, e.g. built from main) runs beside
# the first in the same namespace, and phases 1-3 measure it as the path
# "devbridge-base", in the same rounds (phase 3 then runs ROUNDS rounds
# too, CONN_ROUNDS): same-run ratios, not figures from another day.  It is
# stopped before phase 4.
#
# Prints a table and writes bench/container-results.md ($CONTAINER_RESULTS_MD).
# Creates one network namespace and one veth pair (10.232.0.1/24 host side,
# 10.232.0.2/24 inside), removed at exit with everything else; every process
# started here is ended by pid.  About 3 minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DEVBRIDGE_BIN:-build/devbridge}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
BASE_BIN="${DEVBRIDGE_BASE_BIN:-}"
case "$BASE_BIN" in /* | "") ;; *) BASE_BIN="$ROOT/$BASE_BIN" ;; esac
PY=/usr/bin/python3
HELP="$ROOT/bench/container_helpers.py"
RESULTS_MD="${CONTAINER_RESULTS_MD:-$ROOT/bench/container-results.md}"

TPUT_SECONDS="${TPUT_SECONDS:-5}"       # iperf3 -t
ROUNDS="${ROUNDS:-3}"                   # throughput and latency runs per path
PINGS="${PINGS:-5000}"                  # timed round trips per latency run
CONN_SECONDS="${CONN_SECONDS:-5}"       # connection rate: at most this long ...
CONN_MAX="${CONN_MAX:-2000}"            # ... or this many connections per path
HOLD_CONNS="${HOLD_CONNS:-10000}"       # concurrent idle connections
LISTEN_TRIALS="${LISTEN_TRIALS:-20}"
PROBE_MS=2                              # listen-to-answer poll interval
IDLE_SECONDS="${IDLE_SECONDS:-20}"

NET=10.232.0
HOST_IP=$NET.1
CTR_IP=$NET.2
P_IPERF_DB=5201 P_IPERF_HAP=5202 P_IPERF_SOCAT=5203 P_IPERF_DIRECT=5204

step() { printf '==> %s\n' "$*"; }
die() { printf 'container bench: %s\n' "$*" >&2; exit 1; }
h() { "$PY" "$HELP" "$@"; }
rec() { printf '%s\n' "$1" >>"$TMP/records.jsonl"; }
inns() { ip netns exec "$NS" "$@"; }

[ "$(id -u)" = 0 ] || die "needs root (network namespace, veth pair)"
[ -x "$BIN" ] || die "no devbridge binary at $BIN (build it: ninja -C build, or set DEVBRIDGE_BIN)"
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || die "no devbridge binary at DEVBRIDGE_BASE_BIN=$BASE_BIN"
for c in ip ss iperf3 haproxy socat cc; do
	command -v "$c" >/dev/null || die "$c not found (scripts/install-deps.sh --bench)"
done
# 10,000 connections = 20,000 fds in each daemon (client side + data
# connection, or data connection + local side), 10,000 in client and server.
# Without CAP_SYS_RESOURCE the hard limit cannot be raised: then take all of
# it, and phase 4 holds as many connections as the daemons' fds allow.
NOFILE_NOTE=""
if ! ulimit -n 65536 2>/dev/null; then
	ulimit -n "$(ulimit -Hn)" || die "cannot raise RLIMIT_NOFILE (ulimit -n)"
	NOFILE_NOTE="RLIMIT_NOFILE could not be raised to 65536 (hard limit $(ulimit -Hn), no CAP_SYS_RESOURCE here): the daemons, client and server ran with $(ulimit -n)"
fi
if ip -4 -o addr show to $NET.0/24 | grep -q .; then
	die "$NET.0/24 is already in use here: $(ip -4 -o addr show to $NET.0/24 | awk '{print $2; exit}')"
fi

SUFFIX="$(printf '%06x' $((($$ * 7919 + RANDOM) % 16777216)))"
NS="devbridge-bench-container-$SUFFIX"
VETH_H="dbb-h-$SUFFIX" VETH_C="dbb-c-$SUFFIX"
TMP="$(mktemp -d -t devbridge-container-bench.XXXXXX)"
STATE="$TMP/state/host-daemon.state"
PIDS=()             # every background process, ended by pid at exit
NS_MADE=0 VETH_MADE=0 HOLD_PID="" T_START="$(date +%s.%N)"

stop_pid() { # stop one of ours, and whatever it forked (socat's children)
	local pid=$1 desc
	[ -d "/proc/$pid" ] || return 0
	desc="$(h descendants "$pid" 2>/dev/null || true)"
	# shellcheck disable=SC2086 # $desc is a list of pids
	kill "$pid" $desc 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	exec 9>&-
	[ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[$i]}"
	done
	[ "$VETH_MADE" = 1 ] && ip link del "$VETH_H" 2>/dev/null
	[ "$NS_MADE" = 1 ] && ip netns del "$NS"
	if [ "$rc" != 0 ]; then
		for f in host-daemon.out container-daemon.out haproxy.log socat-iperf.log socat-echo.log echo.out; do
			[ -s "$TMP/$f" ] && { echo "--- $f (tail)"; tail -5 "$TMP/$f"; } >&2
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # start LOG CMD...: CMD in the background, its pid in $LAST and in PIDS
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	LAST=$!
	PIDS+=("$LAST")
}

forget() { # forget PID: drop an ended process from PIDS (its pid may be reused)
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

wait_listen() { # wait_listen [ns] PORT: until something listens on PORT (10 s)
	local ns_cmd=() port
	if [ "$1" = ns ]; then ns_cmd=(ip netns exec "$NS"); shift; fi
	port=$1
	for _ in $(seq 1000); do
		"${ns_cmd[@]}" ss -Hltn "sport = :$port" | grep -q . && return 0
		sleep 0.01
	done
	die "nothing listens on port $port after 10 s"
}

# ---------------------------------------------------------------- setup
step "setup in $TMP: netns $NS, veth $VETH_H ($HOST_IP) <-> $VETH_C ($CTR_IP)"
cd "$TMP"
mkdir -p state
cc -O2 -Wall -o container_net "$ROOT/bench/container_net.c" || die "cannot build bench/container_net.c"
TOOL="$TMP/container_net"

ip netns add "$NS"
NS_MADE=1
ip link add "$VETH_H" type veth peer name "$VETH_C"
VETH_MADE=1
ip link set "$VETH_C" netns "$NS"
ip addr add "$HOST_IP/24" dev "$VETH_H"
ip link set "$VETH_H" up
ip -n "$NS" addr add "$CTR_IP/24" dev "$VETH_C"
ip -n "$NS" link set "$VETH_C" up
ip -n "$NS" link set lo up
ip -n "$NS" route add default via "$HOST_IP"

# control/data ports on 10.232.0.1 (our own address: any free number will
# do); echo, haproxy and socat ports below the ephemeral range; the
# listen-to-answer ports must be free on the host so they are not remapped
read -r -a PORTS <<<"$(h free-ports $((13 + LISTEN_TRIALS)) 20000 32000)"
CP=${PORTS[0]} DP=${PORTS[1]} P_ECHO=${PORTS[2]}
HAP_IPERF=${PORTS[3]} HAP_ECHO=${PORTS[4]} SOCAT_IPERF=${PORTS[5]} SOCAT_ECHO=${PORTS[6]}
HAP2_IPERF=${PORTS[7]} HAP2_ECHO=${PORTS[8]} NSHAP_IPERF=${PORTS[9]} NSHAP_ECHO=${PORTS[10]}
CP_BASE=${PORTS[11]} DP_BASE=${PORTS[12]}
LISTEN_PORTS=("${PORTS[@]:13}")
TOKEN="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"

step "devbridge host-daemon --bind-addr $HOST_IP --control-port $CP --data-port $DP (state $TMP/state)"
start host-daemon.out "$BIN" host-daemon --bind-addr "$HOST_IP" --control-port "$CP" --data-port "$DP" \
	--auth-token "$TOKEN" --state-dir "$TMP/state"
HOST_PID=$LAST
wait_listen "$DP"
step "in the namespace: devbridge container-daemon --host-addr $HOST_IP --container-id bench"
start container-daemon.out ip netns exec "$NS" "$BIN" container-daemon --host-addr "$HOST_IP" \
	--control-port "$CP" --data-port "$DP" --auth-token "$TOKEN" --container-id bench
CTR_PID=$LAST # ip netns exec execs the command: this is the daemon's pid

step "servers in the namespace: iperf3 on 127.0.0.1:$P_IPERF_DB and $CTR_IP:$P_IPERF_HAP,$P_IPERF_SOCAT,$P_IPERF_DIRECT; echo on 0.0.0.0:$P_ECHO"
start iperf-db.log ip netns exec "$NS" iperf3 -s -B 127.0.0.1 -p $P_IPERF_DB
for p in $P_IPERF_HAP $P_IPERF_SOCAT $P_IPERF_DIRECT; do
	start "iperf-$p.log" ip netns exec "$NS" iperf3 -s -B "$CTR_IP" -p "$p"
done
start echo.out ip netns exec "$NS" "$TOOL" serve 0.0.0.0 "$P_ECHO"
for p in $P_IPERF_HAP $P_IPERF_SOCAT $P_IPERF_DIRECT $P_ECHO; do wait_listen ns "$p"; done
H_IPERF="$(h wait-forward "$STATE" $P_IPERF_DB 10)" || die "no devbridge forward for iperf3 port $P_IPERF_DB"
H_ECHO="$(h wait-forward "$STATE" "$P_ECHO" 10)" || die "no devbridge forward for echo port $P_ECHO"
step "devbridge forwards: 127.0.0.1:$H_IPERF -> iperf3 :$P_IPERF_DB, 127.0.0.1:$H_ECHO -> echo :$P_ECHO"

# the baseline: the same two daemons from DEVBRIDGE_BASE_BIN, their own
# ports and state; its host daemon finds the forwarded ports taken by the
# first one and takes the next free ones (read from its state file)
if [ -n "$BASE_BIN" ]; then
	mkdir -p state-base
	step "baseline $BASE_BIN: host-daemon --control-port $CP_BASE --data-port $DP_BASE, container-daemon --container-id bench-base"
	start host-daemon-base.out "$BASE_BIN" host-daemon --bind-addr "$HOST_IP" --control-port "$CP_BASE" \
		--data-port "$DP_BASE" --auth-token "$TOKEN" --state-dir "$TMP/state-base"
	BASE_HOST_PID=$LAST
	wait_listen "$DP_BASE"
	start container-daemon-base.out ip netns exec "$NS" "$BASE_BIN" container-daemon --host-addr "$HOST_IP" \
		--control-port "$CP_BASE" --data-port "$DP_BASE" --auth-token "$TOKEN" --container-id bench-base
	BASE_CTR_PID=$LAST
	BASE_STATE="$TMP/state-base/host-daemon.state"
	B_IPERF="$(h wait-forward "$BASE_STATE" $P_IPERF_DB 10)" || die "no baseline forward for iperf3 port $P_IPERF_DB"
	B_ECHO="$(h wait-forward "$BASE_STATE" "$P_ECHO" 10)" || die "no baseline forward for echo port $P_ECHO"
	step "baseline forwards: 127.0.0.1:$B_IPERF -> iperf3 :$P_IPERF_DB, 127.0.0.1:$B_ECHO -> echo :$P_ECHO"
fi

# haproxy: the one-relay path (host -> namespace's veth address), and, as a
# like-for-like reference for devbridge's two relays, "haproxy-x2": this
# haproxy -> a second haproxy inside the namespace -> the same servers on
# 127.0.0.1 that devbridge reaches
HAP_COMMON="global
    maxconn 4096
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 120s
    timeout server 120s"
cat >haproxy.cfg <<EOF
$HAP_COMMON
listen iperf
    bind 127.0.0.1:$HAP_IPERF
    server ns $CTR_IP:$P_IPERF_HAP
listen echo
    bind 127.0.0.1:$HAP_ECHO
    server ns $CTR_IP:$P_ECHO
listen iperf-x2
    bind 127.0.0.1:$HAP2_IPERF
    server ns $CTR_IP:$NSHAP_IPERF
listen echo-x2
    bind 127.0.0.1:$HAP2_ECHO
    server ns $CTR_IP:$NSHAP_ECHO
EOF
cat >haproxy-ns.cfg <<EOF
$HAP_COMMON
listen iperf
    bind $CTR_IP:$NSHAP_IPERF
    server local 127.0.0.1:$P_IPERF_DB
listen echo
    bind $CTR_IP:$NSHAP_ECHO
    server local 127.0.0.1:$P_ECHO
EOF
haproxy -c -q -f haproxy.cfg || die "haproxy rejects its config"
haproxy -c -q -f haproxy-ns.cfg || die "haproxy rejects its config (namespace)"
start haproxy.log haproxy -db -f haproxy.cfg
HAP_PID=$LAST
start haproxy-ns.log ip netns exec "$NS" haproxy -db -f haproxy-ns.cfg
start socat-iperf.log socat "TCP-LISTEN:$SOCAT_IPERF,bind=127.0.0.1,fork,reuseaddr,nodelay" \
	"TCP:$CTR_IP:$P_IPERF_SOCAT,nodelay"
start socat-echo.log socat "TCP-LISTEN:$SOCAT_ECHO,bind=127.0.0.1,fork,reuseaddr,nodelay" "TCP:$CTR_IP:$P_ECHO,nodelay"
for p in $HAP_IPERF $HAP_ECHO $HAP2_IPERF $HAP2_ECHO $SOCAT_IPERF $SOCAT_ECHO; do wait_listen "$p"; done
for p in $NSHAP_IPERF $NSHAP_ECHO; do wait_listen ns "$p"; done
sleep 0.2 # haproxy starts its threads after binding
HAP_THREADS="$(awk '/^Threads:/ {print $2}' "/proc/$HAP_PID/status")"

# path -> iperf3 target and echo target (host:port), as seen from the host
declare -A IPERF_AT=([direct]="$CTR_IP $P_IPERF_DIRECT" [devbridge]="127.0.0.1 $H_IPERF"
	[haproxy]="127.0.0.1 $HAP_IPERF" [socat]="127.0.0.1 $SOCAT_IPERF" [haproxy-x2]="127.0.0.1 $HAP2_IPERF")
declare -A ECHO_AT=([direct]="$CTR_IP $P_ECHO" [devbridge]="127.0.0.1 $H_ECHO"
	[haproxy]="127.0.0.1 $HAP_ECHO" [socat]="127.0.0.1 $SOCAT_ECHO" [haproxy-x2]="127.0.0.1 $HAP2_ECHO")
PATHS=(direct devbridge haproxy socat haproxy-x2)
if [ -n "$BASE_BIN" ]; then
	IPERF_AT[devbridge-base]="127.0.0.1 $B_IPERF"
	ECHO_AT[devbridge-base]="127.0.0.1 $B_ECHO"
	PATHS=(direct devbridge devbridge-base haproxy socat haproxy-x2)
fi
rotate() { # rotate N: the paths, starting at the N-th (so no path always runs first)
	local n=$(($1 % ${#PATHS[@]}))
	echo "${PATHS[@]:$n}" "${PATHS[@]:0:$n}"
}

DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" NPROC="$(nproc)" KERNEL="$(uname -r)" \
	CPU="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
	OS="$(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release)" \
	LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)" IPERFV="$(iperf3 --version | head -1)" \
	HAPV="$(haproxy -v | head -1 | cut -d' ' -f1-3), $HAP_THREADS threads" \
	SOCATV="socat $(socat -V | awk '/socat version/ {print $3; exit}')" \
	CCV="$(cc --version | head -1)" DBV="$("$BIN" --version)" BINP="$BIN" BASEP="$BASE_BIN" \
	BASEV="$([ -z "$BASE_BIN" ] || "$BASE_BIN" --version)" \
	BASEBUILT="$([ -z "$BASE_BIN" ] || date -u -r "$BASE_BIN" +%Y-%m-%dT%H:%M:%SZ)" \
	BUILT="$(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ)" \
	HEAD="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
	TPUT="$TPUT_SECONDS" CONN_MAX="$CONN_MAX" CONN_SECONDS="$CONN_SECONDS" PROBE_MS="$PROBE_MS" \
	D_DIRECT="iperf3/echo client -> $CTR_IP:PORT across the veth (kernel only, no relay)" \
	D_DB="client -> 127.0.0.1:H (host daemon) -> data connection over the veth -> container daemon -> 127.0.0.1:PORT in the namespace (two relays)" \
	D_DBB="the same route through the baseline's daemons ($BASE_BIN), running beside the first pair (two relays)" \
	D_HAP="client -> 127.0.0.1:X, haproxy mode tcp, option splice-auto, $HAP_THREADS threads (its default: one per CPU) -> $CTR_IP:PORT (one relay)" \
	D_HAP2="client -> 127.0.0.1:X2, the same haproxy -> $CTR_IP:Z, a second haproxy (same config) inside the namespace -> 127.0.0.1:PORT, the servers devbridge reaches (two relays, like devbridge; a reference, not a target)" \
	D_SOCAT="client -> 127.0.0.1:Y, socat TCP-LISTEN:Y,fork,reuseaddr,nodelay TCP:$CTR_IP:PORT,nodelay (one relay, a forked process per connection)" \
	"$PY" -c '
import json, os
e = os.environ
print(json.dumps({"kind": "meta", "date": e["DATE"], "nproc": e["NPROC"], "kernel": e["KERNEL"],
  "cpu": e["CPU"], "os": e["OS"], "loadavg": e["LOADAVG"], "iperf_version": e["IPERFV"],
  "haproxy_version": e["HAPV"], "socat_version": e["SOCATV"], "cc_version": e["CCV"],
  "devbridge_version": e["DBV"], "bin": e["BINP"], "built": e["BUILT"], "head": e["HEAD"], "tput_seconds": int(e["TPUT"]),
  "base_bin": e["BASEP"], "base_version": e["BASEV"], "base_built": e["BASEBUILT"],
  "conn_max": int(e["CONN_MAX"]), "conn_seconds": float(e["CONN_SECONDS"]), "probe_ms": int(e["PROBE_MS"]),
  "hops": {"direct": 0, "devbridge": 2, "devbridge-base": 2, "haproxy": 1, "socat": 1, "haproxy-x2": 2},
  "path_desc": {"direct": e["D_DIRECT"], "devbridge": e["D_DB"], "devbridge-base": e["D_DBB"], "haproxy": e["D_HAP"], "socat": e["D_SOCAT"],
                "haproxy-x2": e["D_HAP2"]}}))' \
	>>records.jsonl

# ---------------------------------------------------------------- 1. throughput
step "1. throughput: iperf3 -t $TPUT_SECONDS, $ROUNDS rounds of ${PATHS[*]}"
for round in $(seq "$ROUNDS"); do
	for path in $(rotate $((round - 1))); do
		read -r addr port <<<"${IPERF_AT[$path]}"
		out="iperf-$path-$round.json"
		iperf3 -c "$addr" -p "$port" -t "$TPUT_SECONDS" -J >"$out" ||
			die "iperf3 ($path, $addr:$port) failed: $(h iperf-mbps "$out" 2>&1)"
		mbps="$(h iperf-mbps "$out")"
		printf '    round %s  %-9s %10s Mbit/s\n' "$round" "$path" "$mbps"
		rec "{\"kind\":\"tput\",\"path\":\"$path\",\"round\":$round,\"mbps\":$mbps}"
	done
done

# ---------------------------------------------------------------- 2. latency
step "2. latency: $PINGS 1-byte round trips per run, $ROUNDS runs per path"
for round in $(seq "$ROUNDS"); do
	for path in $(rotate $((round - 1))); do
		read -r addr port <<<"${ECHO_AT[$path]}"
		line="$("$TOOL" pingpong "$addr" "$port" "$PINGS" 500)" || die "ping-pong ($path) failed"
		printf '    round %s  %-9s %s\n' "$round" "$path" "$line"
		rec "{\"kind\":\"latency\",\"path\":\"$path\",\"round\":$round,${line#\{}"
	done
done

# ---------------------------------------------------------------- 3. connection rate
# one round unless comparing with a baseline (then ROUNDS, rotated, as above)
CONN_ROUNDS="${CONN_ROUNDS:-$([ -n "$BASE_BIN" ] && echo "$ROUNDS" || echo 1)}"
step "3. connection rate: connect + 1-byte echo + close, $CONN_MAX connections or ${CONN_SECONDS}s per path, $CONN_ROUNDS round(s)"
for round in $(seq "$CONN_ROUNDS"); do
	for path in $(rotate $((round - 1))); do
		read -r addr port <<<"${ECHO_AT[$path]}"
		line="$("$TOOL" connrate "$addr" "$port" "$CONN_SECONDS" "$CONN_MAX")" || die "connrate ($path) failed"
		printf '    round %s  %-9s %s\n' "$round" "$path" "$line"
		rec "{\"kind\":\"connrate\",\"path\":\"$path\",\"round\":$round,${line#\{}"
	done
done

# the baseline has done its part; phases 4 and 5 are about the first pair alone
if [ -n "$BASE_BIN" ]; then
	for p in "$BASE_CTR_PID" "$BASE_HOST_PID"; do
		stop_pid "$p"
		forget "$p"
	done
fi

# ---------------------------------------------------------------- 4. idle connections
step "4. $HOLD_CONNS concurrent idle connections through devbridge (127.0.0.1:$H_ECHO)"
HB="$(h proc "$HOST_PID")" CB="$(h proc "$CTR_PID")" SLAB0="$(h slab)"
# each held connection costs each daemon 2 fds: fit them under the limit,
# keeping 32 spare for the listeners, state-file writes and the pipe pool
HFDS0="$(echo "$HB" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["fds"])')"
CFDS0="$(echo "$CB" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["fds"])')"
FDS0=$((HFDS0 > CFDS0 ? HFDS0 : CFDS0))
FIT=$((($(ulimit -n) - FDS0 - 32) / 2))
if [ "$FIT" -lt "$HOLD_CONNS" ]; then
	note="$NOFILE_NOTE; each daemon already had up to $FDS0 fds open, so phase 4 held $FIT connections, not $HOLD_CONNS (2 fds per connection per daemon)"
	echo "    $note"
	rec "$(NOTE="$note" "$PY" -c 'import json,os; print(json.dumps({"kind": "remark", "text": os.environ["NOTE"]}))')"
	HOLD_CONNS=$FIT
elif [ -n "$NOFILE_NOTE" ]; then
	rec "$(NOTE="$NOFILE_NOTE" "$PY" -c 'import json,os; print(json.dumps({"kind": "remark", "text": os.environ["NOTE"]}))')"
fi
mkfifo hold.in
"$TOOL" hold 127.0.0.1 "$H_ECHO" "$HOLD_CONNS" 90 <hold.in >hold.out 2>hold.err &
HOLD_PID=$!
exec 9<>hold.in # read-write: never blocks; closing it is the EOF
for _ in $(seq 1000); do # 100 s
	[ -s hold.out ] && break
	kill -0 "$HOLD_PID" 2>/dev/null || die "hold client exited: $(cat hold.err)"
	sleep 0.1
done
[ -s hold.out ] || die "hold client did not finish opening in 100 s"
OPENED="$(head -1 hold.out)"
sleep 1 # let both daemons settle
HA="$(h proc "$HOST_PID")" CA="$(h proc "$CTR_PID")" SLAB1="$(h slab)"
printf '    %s\n' "$OPENED"
exec 9>&- # the client closes them all
wait "$HOLD_PID" || true
HOLD_PID=""
CLOSED="$(sed -n 2p hold.out)"
# back to the fds from before, give or take the pipe pool (a few pipes kept)
DRAIN="$(h wait-fds 30 "$HOST_PID:$((HFDS0 + 8))" "$CTR_PID:$((CFDS0 + 8))")" || echo "    daemons still hold extra fds after 30 s" >&2
HC="$(h proc "$HOST_PID")" CC="$(h proc "$CTR_PID")"
rec "$(OPENED="$OPENED" CLOSED="$CLOSED" HB="$HB" HA="$HA" HC="$HC" CB="$CB" CA="$CA" CC="$CC" \
	DRAIN="$DRAIN" N="$HOLD_CONNS" SLAB0="$SLAB0" SLAB1="$SLAB1" "$PY" -c '
import json, os
e = os.environ
o, c = json.loads(e["OPENED"]), json.loads(e["CLOSED"] or "{\"seconds\": null}")
print(json.dumps({"kind": "hold", "wanted": int(e["N"]), "opened": o["opened"], "errors": o["errors"],
  "first_error": o["first_error"], "open_s": o["seconds"], "close_s": c["seconds"],
  "drain_s": json.loads(e["DRAIN"] or "null"), "slab_before_kib": int(e["SLAB0"]), "slab_after_kib": int(e["SLAB1"]),
  "host_before": json.loads(e["HB"]), "host_after": json.loads(e["HA"]), "host_closed": json.loads(e["HC"]),
  "container_before": json.loads(e["CB"]), "container_after": json.loads(e["CA"]),
  "container_closed": json.loads(e["CC"])}))')"
printf '    host daemon VmRSS %s -> %s KiB, container daemon %s -> %s KiB\n' \
	"$(echo "$HB" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"])')" \
	"$(echo "$HA" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"])')" \
	"$(echo "$CB" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"])')" \
	"$(echo "$CA" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"])')"

# ---------------------------------------------------------------- 5. listen -> answer
step "5. listen-to-answer: $LISTEN_TRIALS fresh servers in the namespace, host polls every ${PROBE_MS} ms"
for i in $(seq 0 $((LISTEN_TRIALS - 1))); do
	port=${LISTEN_PORTS[$i]}
	"$TOOL" probe 127.0.0.1 "$port" "$PROBE_MS" 5000 >"probe-$i.out" &
	probe_pid=$!
	# a random 0-59 ms pause, so the server's listen() falls at a random
	# point of the daemon's 50 ms scan cycle (without it, every trial would
	# start a fixed time after the scan that noticed the previous server go)
	sleep "0.0$(printf '%02d' $((RANDOM % 60)))"
	start "listen-$i.out" ip netns exec "$NS" "$TOOL" serve 127.0.0.1 "$port"
	srv_pid=$LAST
	wait "$probe_pid" || true
	ms="$(T0="$(cut -d' ' -f2 "listen-$i.out")" "$PY" -c '
import json, os
p = json.load(open("probe-'"$i"'.out"))
print("null" if p["t1"] is None or not os.environ["T0"] else round((p["t1"] - float(os.environ["T0"])) * 1e3, 3))')"
	printf '    trial %2s  port %s  %s ms\n' "$((i + 1))" "$port" "$ms"
	rec "{\"kind\":\"listen\",\"trial\":$((i + 1)),\"port\":$port,\"ms\":$ms}"
	stop_pid "$srv_pid"
	forget "$srv_pid"
	h wait-unforward "$STATE" "$port" 5 || true
done

# ---------------------------------------------------------------- idle CPU
FWDS="$("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sum(len(c["forwards"]) for c in s["containers"]))' "$STATE")"
step "idle: ${IDLE_SECONDS}s without traffic ($FWDS forwards), CPU of both daemons"
I0H="$(h proc "$HOST_PID")" I0C="$(h proc "$CTR_PID")"
sleep "$IDLE_SECONDS"
I1H="$(h proc "$HOST_PID")" I1C="$(h proc "$CTR_PID")"
for who in host container; do
	if [ $who = host ]; then a=$I0H b=$I1H; else a=$I0C b=$I1C; fi
	line="$(A="$a" B="$b" WHO=$who FWDS="$FWDS" "$PY" -c '
import json, os
a, b = json.loads(os.environ["A"]), json.loads(os.environ["B"])
w = b["mono"] - a["mono"]
t = b["ticks"] - a["ticks"]
print(json.dumps({"kind": "idle", "who": os.environ["WHO"], "window_s": w, "ticks": t, "hz": a["hz"],
  "cpu_pct": t / a["hz"] / w * 100, "ctx": b["ctx"] - a["ctx"], "rss_kib": b["rss_kib"],
  "forwards": int(os.environ["FWDS"])}))')"
	printf '    %s\n' "$line"
	rec "$line"
done

rec "{\"kind\":\"end\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"elapsed_s\":$("$PY" -c "import time; print(round(time.time() - $T_START))")}"

# ---------------------------------------------------------------- report
h report records.jsonl "$RESULTS_MD"
step "wrote $RESULTS_MD"
