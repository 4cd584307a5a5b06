#!/usr/bin/env bash
# relay_ab.sh - the relay of two source trees side by side, in one run:
# bench/relay_bench.c built against core/relay of BASE (a git ref, default
# main) and of the working tree, both -O2, then ROUNDS rounds, each running
# every mode once in a rotated order:
#
#   direct            client -> server, no relay (the kernel's cost)
#   base-splice       BASE's relay_new, splice
#   new-splice        this tree's relay_new, splice
#   base-rw           BASE's relay_new, read/write (no_splice)
#   new-rw            this tree's relay_new, read/write
#   new-ep            this tree's relay_new_ep over two fd endpoints
#                     (only if the tree has relay_ep_fd_new)
#
# for throughput (tput, TPUT_GIB GiB one way per run) and 1-byte ping-pong
# latency (ping, PINGS round trips per run: mean, p50, p99), and the CPU
# time the relay process used for them (per GiB, per round trip: less
# sensitive to other load on the machine than wall-clock figures).  Prints
# every run, then per mode the median and the spread (min-max) and the
# same-run ratios new/base.  Loopback TCP only; every process it starts is a child
# of relay_bench and is waited for.
#
#   bench/relay_ab.sh [BASE]        e.g. bench/relay_ab.sh 81c0100
#
# Knobs: ROUNDS (default 7), TPUT_GIB (2), PINGS (20000), CC (cc).  On a
# shared machine, many short rounds (ROUNDS=25 TPUT_GIB=1 PINGS=5000) give
# better pairs: base and new of a path run back to back in each round, so
# a slow period hits both, and the per-round ratio cancels it; "best" is
# the run with the least interference.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${1:-main}"
ROUNDS="${ROUNDS:-7}"
TPUT_GIB="${TPUT_GIB:-2}"
PINGS="${PINGS:-20000}"
CC="${CC:-cc}"
PY=/usr/bin/python3

TMP="$(mktemp -d -t devbridge-relay-ab.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

CFLAGS=(-std=c11 -D_GNU_SOURCE -O2)
mkdir -p "$TMP/base/src"
git -C "$ROOT" archive "$BASE" src/core | tar -x -C "$TMP/base"
base_src=("$TMP/base/src/core/relay.c" "$TMP/base/src/core/loop.c" "$TMP/base/src/core/util.c")
[ -f "$TMP/base/src/core/buf.c" ] && base_src+=("$TMP/base/src/core/buf.c")
[ -f "$TMP/base/src/core/relay_fd.c" ] && base_src+=("$TMP/base/src/core/relay_fd.c")
"$CC" "${CFLAGS[@]}" -I"$TMP/base/src" "$ROOT/bench/relay_bench.c" "${base_src[@]}" -o "$TMP/base-bench"

new_src=("$ROOT/src/core/relay.c" "$ROOT/src/core/loop.c" "$ROOT/src/core/util.c")
MODES=(direct base-splice new-splice base-rw new-rw)
NEW_FLAGS=()
if [ -f "$ROOT/src/core/relay_fd.c" ]; then
	new_src+=("$ROOT/src/core/relay_fd.c" "$ROOT/src/core/buf.c")
	NEW_FLAGS=(-DWITH_EP)
	MODES+=(new-ep)
fi
"$CC" "${CFLAGS[@]}" "${NEW_FLAGS[@]}" -I"$ROOT/src" "$ROOT/bench/relay_bench.c" "${new_src[@]}" \
	-o "$TMP/new-bench"

echo "# relay A/B: base $BASE ($(git -C "$ROOT" rev-parse --short "$BASE")) vs working tree" \
	"($(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src/core || echo ', modified'))"
echo "# $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
	"ROUNDS=$ROUNDS TPUT_GIB=$TPUT_GIB PINGS=$PINGS"

run() { # run KIND MODE -> one line of relay_bench output
	local kind=$1 mode=$2 bin arg
	case "$mode" in
	direct) bin="$TMP/new-bench" arg=direct ;;
	base-*) bin="$TMP/base-bench" arg=${mode#base-} ;;
	new-*) bin="$TMP/new-bench" arg=${mode#new-} ;;
	esac
	if [ "$kind" = tput ]; then
		"$bin" tput "$arg" "$TPUT_GIB" 2>&1 | tr '\n' ' '
	else
		"$bin" ping "$arg" "$PINGS" 2>&1 | tr '\n' ' '
	fi
}

: >"$TMP/runs"
n=${#MODES[@]}
for round in $(seq "$ROUNDS"); do
	for kind in tput ping; do
		for ((i = 0; i < n; i++)); do
			mode=${MODES[$(((i + round) % n))]}
			line="$(run "$kind" "$mode")"
			printf '%s %s %s %s\n' "$kind" "$mode" "$round" "$line" | tee -a "$TMP/runs"
		done
	done
done
echo "# load $(cut -d' ' -f1-3 /proc/loadavg) at the end"

# The relay's system calls (strace -c on the relay process only, not the
# client and server it forks): with 1-byte round trips they are the same
# for every run, so "no extra syscalls" is checked exactly, not timed.
if [ "${SYSCALLS:-1}" = 1 ] && command -v strace >/dev/null; then
	echo
	echo "relay system calls (strace -c, relay process only):"
	for mode in "${MODES[@]}"; do
		[ "$mode" = direct ] && continue
		case "$mode" in
		base-*) bin="$TMP/base-bench" arg=${mode#base-} ;;
		new-*) bin="$TMP/new-bench" arg=${mode#new-} ;;
		esac
		strace -c -o "$TMP/st-ping" "$bin" ping "$arg" "$PINGS" >/dev/null 2>&1
		strace -c -o "$TMP/st-tput" "$bin" tput "$arg" "$TPUT_GIB" >/dev/null 2>&1
		for k in ping tput; do
			printf '  %-12s %s %s\n' "$mode" "$k" "$(awk 'NF >= 5 && $4 ~ /^[0-9]+$/ &&
				$NF ~ /^(read|write|sendto|recvfrom|splice|epoll_wait|epoll_ctl|pipe2|shutdown|getsockopt|fcntl|close)$/ {
				printf "%s=%s ", $NF, $4 }' "$TMP/st-$k" | tr ' ' '\n' | sort | tr '\n' ' ')"
		done
	done
	echo "  (ping: $PINGS round trips; tput: $TPUT_GIB GiB; whole runs, set-up included;" \
		"tput counts depend on timing)"
fi

"$PY" - "$TMP/runs" "$TPUT_GIB" "$PINGS" <<'EOF'
import re, statistics, sys
runs, byround = {}, {}
for l in open(sys.argv[1]):
    kind, mode, rnd, rest = l.split(" ", 3)
    cpu = re.search(r"relay cpu: user ([\d.]+) s sys ([\d.]+) s", rest)
    cpu = float(cpu.group(1)) + float(cpu.group(2)) if cpu else None
    if kind == "tput":
        v = {"GiB/s": float(re.search(r"([\d.]+) GiB/s", rest).group(1))}
        if cpu is not None:
            v["relay CPU s/GiB"] = cpu / float(sys.argv[2])
    else:
        m = re.search(r"([\d.]+) us/round trip, p50 ([\d.]+) us, p99 ([\d.]+) us", rest)
        v = {"mean us": float(m.group(1)), "p50 us": float(m.group(2)), "p99 us": float(m.group(3))}
        if cpu is not None:
            v["relay CPU us/rt"] = cpu / float(sys.argv[3]) * 1e6
    for k, x in v.items():
        runs.setdefault((kind, k), {}).setdefault(mode, []).append(x)
        byround[(kind, k, mode, rnd)] = x
print()
med = {}
for (kind, k), per in runs.items():
    print(f"{kind} {k}:")
    for mode, xs in per.items():
        med[(kind, k, mode)] = statistics.median(xs)
        q = sorted(xs)
        best = q[-1] if k == "GiB/s" else q[0]
        print(f"  {mode:12s} median {statistics.median(xs):8.3f}  best {best:8.3f}  "
              f"quartiles {q[len(q) // 4]:8.3f} - {q[(3 * len(q)) // 4]:8.3f}  "
              f"spread {q[0]:8.3f} - {q[-1]:8.3f}")
print()
print("same-run ratios new / base: of the medians, and per round (median, spread); > 1 = new is higher")
rounds = sorted({r for (_, _, _, r) in byround}, key=int)
for (kind, k), per in runs.items():
    for path in ("splice", "rw"):
        a, b = med.get((kind, k, "new-" + path)), med.get((kind, k, "base-" + path))
        if a and b:
            pr = [byround[(kind, k, "new-" + path, r)] / byround[(kind, k, "base-" + path, r)]
                  for r in rounds if (kind, k, "new-" + path, r) in byround
                  and (kind, k, "base-" + path, r) in byround]
            print(f"  {kind} {k:8s} {path:6s} {a / b:.3f}   per round {statistics.median(pr):.3f} "
                  f"({min(pr):.3f} - {max(pr):.3f})")
    a, b = med.get((kind, k, "new-ep")), med.get((kind, k, "new-rw"))
    if a and b:
        print(f"  {kind} {k:8s} ep/rw  {a / b:.3f}  (the generic path vs the fd path's read/write)")
EOF
