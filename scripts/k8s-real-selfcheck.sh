#!/usr/bin/env bash
# Run `make test-k8s-real` (the connect tests in real-cluster mode) against a
# kubesim --runtime that stands in for a real cluster: the real-cluster echo
# image (docker.io/alpine/socat:...) is mapped to the local socat, so the
# pods run what they would run in a cluster.  Keeps the real-cluster path of
# tests/integration/k8s_helpers.py working in CI, where no cluster exists.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
IMAGE="${DEVBRIDGE_TEST_ECHO_IMAGE:-docker.io/alpine/socat:1.8.0.0}"

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v socat >/dev/null ||
	! command -v kubectl >/dev/null; then
	echo "k8s-real-selfcheck: skipped (needs root, iproute2, socat and kubectl)"
	# Under CI a skip is a failure (see conftest.py).
	case "${CI:-}" in 1 | true | TRUE | True | yes) exit 1 ;; esac
	exit 0
fi

TMP="$(mktemp -d -t devbridge-k8s-real.XXXXXX)"
SIM_PID=""
cleanup() {
	local rc=$?
	if [ -n "$SIM_PID" ]; then
		kill "$SIM_PID" 2>/dev/null || true
		wait "$SIM_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT

printf '{"%s": ["%s"]}\n' "${IMAGE%:*}" "$(command -v socat)" >"$TMP/images.json"
(cd "$ROOT/tests" && KUBESIM_IMAGES="$TMP/images.json" exec "$PY" -m kubesim --dir "$TMP/sim" --runtime) \
	>"$TMP/sim.log" 2>&1 &
SIM_PID=$!
deadline=$((SECONDS + 30))
until [ -s "$TMP/sim/ready" ]; do
	kill -0 "$SIM_PID" 2>/dev/null || { cat "$TMP/sim.log" >&2; exit 1; }
	[ "$SECONDS" -lt "$deadline" ] || { echo "kubesim did not start" >&2; exit 1; }
	sleep 0.1
done
make -C "$ROOT" --no-print-directory test-k8s-real KUBECONFIG="$TMP/sim/kubeconfig" PYTEST="${PYTEST:-$PY -m pytest}"
