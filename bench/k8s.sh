#!/usr/bin/env bash
# devbridge Kubernetes bridge (`devbridge connect`) benchmarks, side by side,
# in one run, against one kubesim echo service (see the "Kubernetes bridge"
# section of bench/README.md):
#
#   1. throughput (N MiB sent and echoed back) and 1-byte ping-pong latency
#      p50/p99: direct to the pod IP, through a plain `kubectl port-forward`
#      started by hand, through `devbridge connect` (whose clients talk to the
#      kubectl it supervises), and, as controls, through a second identical
#      hand-run kubectl (how far two identical kubectls differ) and through a
#      hand-run kubectl in a session of its own (`setsid`, like devbridge's:
#      the scheduler treats it alike); rounds alternate, the order rotates
#   2. start to first echoed byte: `devbridge connect` (until it returns, then
#      one echoed byte) vs. plain `kubectl port-forward` (until "Forwarding
#      from", then one echoed byte), with devbridge's breakdown from its audit
#      log and the cost of its pre-checks alone (`connect --dry-run`)
#
#   bench/k8s.sh     (root; binary: $DEVBRIDGE_BIN, default build/devbridge)
#
# Prints the figures and writes bench/k8s-results.md ($K8S_RESULTS_MD).
# Starts one kubesim (`python3 -m kubesim --runtime`: the pod is a process in
# a network namespace on the bridge ksbr0) in a temp dir; the sim, the
# kubectl, the devbridge bridges are ended by pid / `disconnect -y` at exit,
# also on failure.  About 1 minute.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DEVBRIDGE_BIN:-build/devbridge}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
PY=/usr/bin/python3
RESULTS_MD="${K8S_RESULTS_MD:-$ROOT/bench/k8s-results.md}"

TPUT_MIB="${TPUT_MIB:-256}"          # bytes per throughput run (sent, and echoed back)
ROUNDS="${ROUNDS:-5}"                # throughput and latency runs per path
PINGS="${PINGS:-2000}"               # timed 1-byte round trips per latency run
WARMUP=200                           # untimed round trips before them
START_RUNS="${START_RUNS:-5}"        # start-to-first-byte runs per tool
DRYRUN_RUNS="${DRYRUN_RUNS:-3}"      # `connect --dry-run` runs (pre-checks alone)

# the command line, for the report: knobs that differ from the defaults, then the script
CMDLINE=""
[ -n "${DEVBRIDGE_BIN:-}" ] && CMDLINE+="DEVBRIDGE_BIN=$DEVBRIDGE_BIN "
[ "$TPUT_MIB" != 256 ] && CMDLINE+="TPUT_MIB=$TPUT_MIB "
[ "$ROUNDS" != 5 ] && CMDLINE+="ROUNDS=$ROUNDS "
[ "$PINGS" != 2000 ] && CMDLINE+="PINGS=$PINGS "
[ "$START_RUNS" != 5 ] && CMDLINE+="START_RUNS=$START_RUNS "
[ "$DRYRUN_RUNS" != 3 ] && CMDLINE+="DRYRUN_RUNS=$DRYRUN_RUNS "
[ -n "${K8S_RESULTS_MD:-}" ] && CMDLINE+="K8S_RESULTS_MD=$K8S_RESULTS_MD "
CMDLINE+="bench/k8s.sh (as root, from $ROOT)"

step() { printf '==> %s\n' "$*"; }
die() { printf 'k8s bench: %s\n' "$*" >&2; exit 1; }
rec() { printf '%s\n' "$1" >>"$TMP/records.jsonl"; }

[ "$(id -u)" = 0 ] || die "needs root (kubesim --runtime: network namespaces, the bridge ksbr0)"
[ -x "$BIN" ] || die "no devbridge binary at $BIN (build it: ninja -C build, or set DEVBRIDGE_BIN)"
KUBECTL="$(command -v kubectl || true)"
[ -n "$KUBECTL" ] || die "kubectl not found on PATH"
command -v ip >/dev/null || die "ip not found (iproute2)"
[ -f "$ROOT/tests/kubesim/runtime.py" ] || die "tests/kubesim/runtime.py missing"

TMP="$(mktemp -d -t devbridge-k8s-bench.XXXXXX)"
H="$ROOT/bench/k8s_helpers.py"
STATE="$TMP/state"
SIM_PID="" KPF_PID="" KPF2_PID="" KPFS_PID="" T_START="$(date +%s.%N)"
h() { "$PY" "$H" "$@"; }

# kubectl and devbridge see only this: their own HOME, discovery cache and
# kubeconfig, no DEVBRIDGE_*/KUBE*/BRIDGE_* from the caller
for v in $(env | sed -n 's/^\(DEVBRIDGE_[A-Za-z0-9_]*\|KUBE[A-Za-z0-9_]*\|BRIDGE_[A-Za-z0-9_]*\)=.*/\1/p'); do
	unset "$v"
done
export HOME="$TMP/home" KUBECACHEDIR="$TMP/home/kcache" KUBECONFIG="$TMP/sim/kubeconfig" NO_COLOR=1
db() { "$BIN" --state-dir "$STATE" "$@"; }

stop_sim() { # SIGTERM (the sim removes its pods, namespaces and addresses), SIGKILL after 30 s
	[ -n "$SIM_PID" ] || return 0
	kill -TERM "$SIM_PID" 2>/dev/null || true
	for _ in $(seq 300); do
		kill -0 "$SIM_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SIM_PID" 2>/dev/null; then
		echo "k8s bench: the sim did not stop in 30 s; SIGKILL, and removing its namespaces" >&2
		kill -KILL "$SIM_PID" 2>/dev/null || true
		wait "$SIM_PID" 2>/dev/null || true
		# what the runtime's reap_stale does for a dead sim, for ours only
		for f in /run/kubesim/ks-*.json; do
			[ -e "$f" ] || continue
			grep -q "\"owner\": ${SIM_PID}[,}]" "$f" || continue
			n="$(basename "$f" .json)"
			for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			ip netns del "$n" 2>/dev/null
			ip link del "ksv${n#ks-}" 2>/dev/null
			rm -f "$f"
		done
		[ -n "${CLUSTER_IP:-}" ] && ip addr del "$CLUSTER_IP/32" dev ksbr0 2>/dev/null
	fi
	wait "$SIM_PID" 2>/dev/null || true
	SIM_PID=""
}

cleanup() {
	local rc=$?
	set +e
	for p in $KPF_PID $KPF2_PID $KPFS_PID; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -d "$STATE" ]; then
		db disconnect -y >/dev/null 2>&1
		# a supervisor (and its kubectl) that disconnect could not stop: by pid
		for f in "$STATE"/*.pid; do
			[ -e "$f" ] || continue
			p="$(head -1 "$f" | tr -dc 0-9)"
			[ -n "$p" ] && kill "$p" 2>/dev/null
		done
	fi
	stop_sim
	if [ "$rc" != 0 ]; then
		for f in sim.log kpf.out kpf2.out kpfs.out; do
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


pod_diag() { # one line: the network of our sim's pod, seen from the host
	local f st ns ip
	for f in /run/kubesim/ks-*.json; do
		[ -e "$f" ] || continue
		grep -q "\"owner\": ${SIM_PID}[,}]" "$f" || continue
		st="$(cat "$f")" ns="$(basename "$f" .json)"
		ip="$(echo "$st" | h json-get ip 2>/dev/null || true)"
		printf 'netns %s ip %s; veth %s; in the netns: listening %s; host neighbour entry: %s; ksbr0 ifindex %s' \
			"$ns" "$ip" "$(ip -o link show "ksv${ns#ks-}" 2>&1 | grep -o 'master [^ ]*\|state [A-Z]*\|does not exist' | tr '\n' ' ')" \
			"$(ip netns exec "$ns" ss -Hltn 2>/dev/null | awk '{print $4}' | tr '\n' ' ')" \
			"$(ip neigh show "$ip" dev ksbr0 2>&1 | head -1)" "$(cat /sys/class/net/ksbr0/ifindex 2>/dev/null || echo none)"
		return 0
	done
	printf 'no netns of this sim recorded in /run/kubesim'
}

# ---------------------------------------------------------------- setup
OTHER_SIMS="$(pgrep -c -f -- '-m kubesim' || true)"
LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
step "kubesim --runtime in $TMP/sim"
(cd "$ROOT/tests" && exec "$PY" -m kubesim --dir "$TMP/sim" --runtime) >sim.log 2>&1 &
SIM_PID=$!
for _ in $(seq 300); do # 30 s
	[ -s "$TMP/sim/ready" ] && break
	kill -0 "$SIM_PID" 2>/dev/null || die "kubesim exited: $(tail -5 sim.log)"
	sleep 0.1
done
[ -s "$TMP/sim/ready" ] || die "kubesim not ready after 30 s"

# a ClusterIP of our own, away from the first addresses other sims on this
# host allocate (and from 10.96.213.0/24, which the integration tests use):
# a sim removes its service addresses from ksbr0 when it stops
CLUSTER_IP=""
for _ in $(seq 50); do
	c="10.96.214.$((RANDOM % 240 + 10))"
	ip -4 -o addr show 2>/dev/null | grep -q " $c/" || { CLUSTER_IP=$c; break; }
done
[ -n "$CLUSTER_IP" ] || die "no free ClusterIP in 10.96.214.0/24"
cat >objects.json <<EOF
{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo", "labels": {"app": "echo"}},
  "spec": {"containers": [{"name": "echo", "image": "kubesim/echo", "ports": [{"containerPort": 8080}]}]}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
  "spec": {"selector": {"app": "echo"}, "clusterIP": "$CLUSTER_IP",
           "ports": [{"port": 80, "targetPort": 8080}]}}]}
EOF
"$KUBECTL" apply --validate=false -f objects.json >/dev/null || die "kubectl apply failed"
# The sim marks a pod Ready once its port accepts a connection from the host,
# and gives up after 15 s.  That has been seen to fail (sim log: "port 8080
# never listened") when other kubesims on the host were starting or stopping
# at the same moment; then note what the pod's network looked like and
# replace the pod, once.
if ! "$KUBECTL" wait --for=condition=Ready pod/echo --timeout=30s >/dev/null 2>&1; then
	diag="$(pod_diag)"
	printf '    pod echo not ready in 30 s (%s); replacing it once\n' "$diag"
	rec "$(NOTE="pod echo was not Ready 30 s after creation (sim log: $(grep -c 'never listened' sim.log) x 'never listened'; $diag; $(pgrep -fc -- '-m kubesim' || true) kubesim processes running); it was deleted and created again" \
		"$PY" -c 'import json,os; print(json.dumps({"kind": "remark", "text": os.environ["NOTE"]}))')"
	"$KUBECTL" delete pod echo --wait=true --timeout=30s >/dev/null || die "cannot delete pod echo"
	"$KUBECTL" apply --validate=false -f objects.json >/dev/null || die "kubectl apply failed"
	"$KUBECTL" wait --for=condition=Ready pod/echo --timeout=30s >/dev/null ||
		die "pod echo not ready in 30 s, twice ($(pod_diag))"
fi
POD_IP="$("$KUBECTL" get pod echo -o 'jsonpath={.status.podIP}')"
[ -n "$POD_IP" ] || die "pod echo has no IP"
step "pod echo at $POD_IP:8080 (kubesim/echo), service echo 80 -> 8080 (ClusterIP $CLUSTER_IP)"

read -r L_KPF L_DB L_FK L_FD L_KPF2 L_KPFS <<<"$(h free-ports 6)"
KPF_ARGV=("$KUBECTL" --namespace default port-forward --address 127.0.0.1 svc/echo "$L_KPF:80")
step "by hand: ${KPF_ARGV[*]}"
"${KPF_ARGV[@]}" >kpf.out 2>&1 </dev/null &
KPF_PID=$!
h wait-line kpf.out "Forwarding from 127.0.0.1:$L_KPF" 30 "$KPF_PID" >/dev/null

step "devbridge connect -t echo:80:$L_DB"
db --json connect -t "echo:80:$L_DB" >connect.json 2>connect.err </dev/null ||
	die "devbridge connect failed ($?): $(cat connect.json connect.err)"
L_DB="$(h json-get bridges 0 local_port <connect.json)"
DB_NAME="$(h json-get bridges 0 name <connect.json)"
db --json status >status.json
SUP_PID="$(h json-get bridges 0 pid <status.json)"
DBK_PID="$(h json-get bridges 0 kubectl_pid <status.json)"
DB_ARGV="$("$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "bridge_started": d = e["detail"]
print(d.split(": ", 1)[1])' "$STATE/$DB_NAME.log")"
step "devbridge bridge $DB_NAME on 127.0.0.1:$L_DB (supervisor $SUP_PID, kubectl $DBK_PID): $DB_ARGV"
KPF2_ARGV=("$KUBECTL" --namespace default port-forward --address 127.0.0.1 svc/echo "$L_KPF2:80")
step "control, by hand: ${KPF2_ARGV[*]}"
"${KPF2_ARGV[@]}" >kpf2.out 2>&1 </dev/null &
KPF2_PID=$!
h wait-line kpf2.out "Forwarding from 127.0.0.1:$L_KPF2" 30 "$KPF2_PID" >/dev/null
h echo1 "$L_KPF2" || die "no echo through kubectl on 127.0.0.1:$L_KPF2"
KPFS_ARGV=("$KUBECTL" --namespace default port-forward --address 127.0.0.1 svc/echo "$L_KPFS:80")
step "in a session of its own, by hand: setsid ${KPFS_ARGV[*]}"
# no job control here, so the background job is no process group leader and
# setsid(1) calls setsid() and execs kubectl itself: $! is kubectl's pid
setsid "${KPFS_ARGV[@]}" >kpfs.out 2>&1 </dev/null &
KPFS_PID=$!
h wait-line kpfs.out "Forwarding from 127.0.0.1:$L_KPFS" 30 "$KPFS_PID" >/dev/null
[ "$(cat "/proc/$KPFS_PID/comm")" = kubectl ] || die "setsid forked: $KPFS_PID is not kubectl"
h echo1 "$L_KPFS" || die "no echo through kubectl on 127.0.0.1:$L_KPFS"
h echo1 "$L_KPF" || die "no echo through kubectl on 127.0.0.1:$L_KPF"
h echo1 "$L_DB" || die "no echo through devbridge on 127.0.0.1:$L_DB"

export POD_IP CLUSTER_IP
DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" NPROC="$(nproc)" KERNEL="$(uname -r)" \
	CPU="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
	OS="$(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release)" LOADAVG="$LOADAVG" \
	DBV="$("$BIN" --version)" BINP="$BIN" BUILT="$(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ)" \
	HEAD="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
	KUBECTLP="$KUBECTL" KUBECTLV="$("$KUBECTL" version --client 2>/dev/null | head -1)" \
	PYV="$("$PY" --version 2>&1)" CMD="$CMDLINE" \
	TPUT_MIB="$TPUT_MIB" PINGS="$PINGS" WARMUP="$WARMUP" \
	OTHER_SIMS="$OTHER_SIMS" KPF_ARGV="$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${KPF_ARGV[@]}")" \
	DB_ARGV="$DB_ARGV" \
	D_DIRECT="client -> $POD_IP:8080, the pod's own address across ksbr0 (kernel only)" \
	D_KUBECTL="client -> 127.0.0.1:$L_KPF, a \`kubectl port-forward svc/echo $L_KPF:80\` started by the script" \
	D_KUBECTL2="client -> 127.0.0.1:$L_KPF2, a second, identical \`kubectl port-forward svc/echo $L_KPF2:80\` started by the script right after devbridge's: the control (A/A), to see how far two identical kubectls differ" \
	D_KUBECTLS="client -> 127.0.0.1:$L_KPFS, \`setsid kubectl port-forward svc/echo $L_KPFS:80\` started by the script: like devbridge's kubectl, in a session (and so a scheduler autogroup) of its own" \
	D_DB="client -> 127.0.0.1:$L_DB, the listening socket of the kubectl that \`devbridge connect -t echo:80:$L_DB\` started and supervises" \
	h meta >>records.jsonl

declare -A AT=([direct]="$POD_IP 8080" [kubectl]="127.0.0.1 $L_KPF" [kubectl-2]="127.0.0.1 $L_KPF2"
	[kubectl-setsid]="127.0.0.1 $L_KPFS" [devbridge]="127.0.0.1 $L_DB")
PATHS=(direct kubectl devbridge kubectl-2 kubectl-setsid)
rotate() { # rotate N: the paths, starting at the N-th
	local n=$(($1 % ${#PATHS[@]}))
	echo "${PATHS[@]:$n}" "${PATHS[@]:0:$n}"
}
P0_KPF="$(h proc "$KPF_PID")" P0_KPF2="$(h proc "$KPF2_PID")" P0_KPFS="$(h proc "$KPFS_PID")" P0_DBK="$(h proc "$DBK_PID")" P0_SUP="$(h proc "$SUP_PID")" W0="$(date +%s.%N)"

# ---------------------------------------------------------------- 1. throughput
step "1. throughput: $TPUT_MIB MiB sent and echoed, $ROUNDS rounds of ${PATHS[*]}"
for round in $(seq "$ROUNDS"); do
	for path in $(rotate $((round - 1))); do
		read -r addr port <<<"${AT[$path]}"
		line="$(h tput "$addr" "$port" $((TPUT_MIB * 1024 * 1024)))" || die "throughput ($path) failed"
		mibps="$(echo "$line" | h json-get mibps)"
		printf '    round %s  %-9s %8.1f MiB/s\n' "$round" "$path" "$mibps"
		rec "{\"kind\":\"tput\",\"path\":\"$path\",\"round\":$round,\"mibps\":$mibps}"
	done
done

# ---------------------------------------------------------------- 2. latency
step "2. latency: $PINGS 1-byte round trips per run ($WARMUP warm-up), $ROUNDS runs per path"
for round in $(seq "$ROUNDS"); do
	for path in $(rotate $((round - 1))); do
		read -r addr port <<<"${AT[$path]}"
		line="$(h pingpong "$addr" "$port" "$PINGS" "$WARMUP")" || die "ping-pong ($path) failed"
		printf '    round %s  %-9s %s\n' "$round" "$path" "$line"
		rec "{\"kind\":\"latency\",\"path\":\"$path\",\"round\":$round,${line#\{}"
	done
done
P1_KPF="$(h proc "$KPF_PID")" P1_KPF2="$(h proc "$KPF2_PID")" P1_KPFS="$(h proc "$KPFS_PID")" P1_DBK="$(h proc "$DBK_PID")" P1_SUP="$(h proc "$SUP_PID")" W1="$(date +%s.%N)"
rec "$(h cpu "$("$PY" -c "print($W1 - $W0)")" "kubectl (by hand)=$P0_KPF=$P1_KPF" "kubectl-2 (by hand)=$P0_KPF2=$P1_KPF2" \
	"kubectl-setsid (by hand)=$P0_KPFS=$P1_KPFS" \
	"kubectl (devbridge's)=$P0_DBK=$P1_DBK" "devbridge supervisor=$P0_SUP=$P1_SUP")"

for p in $KPF_PID $KPF2_PID $KPFS_PID; do
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
done
KPF_PID="" KPF2_PID="" KPFS_PID=""
db disconnect -y >/dev/null || die "devbridge disconnect -y failed"
for _ in $(seq 500); do [ -d "/proc/$DBK_PID" ] || break; sleep 0.01; done

# ---------------------------------------------------------------- 3. start to first byte
step "3. start to first echoed byte: $START_RUNS runs each of kubectl port-forward and devbridge connect"
FK_ARGV=("$KUBECTL" --namespace default port-forward --address 127.0.0.1 svc/echo "$L_FK:80")
h first-kubectl "$L_FK" "${FK_ARGV[@]}" >/dev/null || die "kubectl port-forward (warm-up) failed"
h first-devbridge "$BIN" "$STATE" "$L_FD" "echo:80:$L_FD" >/dev/null || die "devbridge connect (warm-up) failed"
for i in $(seq "$START_RUNS"); do
	line="$(h first-kubectl "$L_FK" "${FK_ARGV[@]}")" || die "kubectl port-forward (run $i) failed"
	printf '    run %s  kubectl   %s\n' "$i" "$line"
	rec "{\"kind\":\"first_kubectl\",\"run\":$i,${line#\{}"
	line="$(h first-devbridge "$BIN" "$STATE" "$L_FD" "echo:80:$L_FD")" || die "devbridge connect (run $i) failed"
	printf '    run %s  devbridge %s\n' "$i" "$line"
	rec "{\"kind\":\"first_devbridge\",\"run\":$i,${line#\{}"
done
step "pre-checks alone: $DRYRUN_RUNS x devbridge connect --dry-run"
for i in $(seq "$DRYRUN_RUNS"); do
	line="$(h dryrun "$BIN" "$STATE" "echo:80:$L_FD")" || die "connect --dry-run failed"
	printf '    run %s  %s\n' "$i" "$line"
	rec "{\"kind\":\"dryrun\",\"run\":$i,${line#\{}"
done

rec "{\"kind\":\"end\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"elapsed_s\":$("$PY" -c "import time; print(round(time.time() - $T_START))")}"

# ---------------------------------------------------------------- report
h report records.jsonl "$RESULTS_MD"
step "wrote $RESULTS_MD"
