#!/usr/bin/env bash
# devbridge demo: a reverse SSH tunnel to a throw-away sshd on loopback, then
# a "devcontainer": a network namespace with a web server inside whose port
# devbridge forwards to the host automatically, then a Kubernetes service in
# kubesim (the project's test cluster) reached through `devbridge connect`.
#
#   scripts/demo.sh            (uses $DEVBRIDGE_BIN, default build/devbridge)
#
# Builds nothing itself (the Makefile target runs meson/ninja first).  Touches
# no system configuration: the sshd, its keys, the web services, the config
# and the state directory all live in one temp dir removed at exit, and only
# processes this script started are stopped, by pid.  The container part
# (root and iproute2 only; skipped otherwise) adds one network namespace with
# a random name and one veth pair (10.233.0.1/24 host side, 10.233.0.2/24
# inside), both removed at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DEVBRIDGE_BIN:-build/devbridge}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
PY=/usr/bin/python3
SSHD=/usr/sbin/sshd

step() { printf '==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "no devbridge binary at $BIN (build it: meson setup build && ninja -C build)"
[ -x "$SSHD" ] || die "$SSHD not found (apt-get install openssh-server)"
command -v ssh >/dev/null || die "ssh client not found (apt-get install openssh-client)"
command -v curl >/dev/null || die "curl not found"

TMP="$(mktemp -d -t devbridge-demo.XXXXXX)"
SSHD_PID=""
WEB_PID=""
CONFIG_WRITTEN=0
# the container part
NS=""           # network namespace, once created
VETH_HOST=""    # host end of the veth pair, once created
HD_PID=""       # devbridge host-daemon
CD_PID=""       # devbridge container-daemon (in the namespace)
CWEB_PID=""     # web server in the namespace
SIM_PID=""      # kubesim

cleanup() {
	local rc=$?
	set +e
	if [ "$CONFIG_WRITTEN" = 1 ]; then
		"$BIN" --config "$TMP/devbridge.yaml" --state-dir "$TMP/state" disconnect -y >/dev/null 2>&1
		"$BIN" --config "$TMP/devbridge.yaml" --state-dir "$TMP/state" down >/dev/null 2>&1
	fi
	# sshd's per-connection children run in their own sessions: end them by pid too
	if [ -n "$SSHD_PID" ]; then
		for pid in $(ps -o pid= --ppid "$SSHD_PID" 2>/dev/null); do
			kill "$pid" 2>/dev/null
		done
	fi
	for pid in $CD_PID $CWEB_PID $HD_PID $WEB_PID $SSHD_PID $SIM_PID; do
		kill "$pid" 2>/dev/null
	done
	for pid in $CD_PID $CWEB_PID $HD_PID $WEB_PID $SSHD_PID $SIM_PID; do
		wait "$pid" 2>/dev/null
	done
	# Deleting the namespace destroys its veth end and with it the pair;
	# the host end is deleted by name in case the namespace never got it.
	if [ -n "$NS" ]; then
		ip netns del "$NS" 2>/dev/null
	fi
	if [ -n "$VETH_HOST" ] && ip link show "$VETH_HOST" >/dev/null 2>&1; then
		ip link del "$VETH_HOST" 2>/dev/null
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A TCP port the kernel reports free on 127.0.0.1 (and ::1, where sshd also
# binds remote forwards for "localhost").
free_port() {
	"$PY" - <<'EOF'
import socket
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    try:
        s6 = socket.socket(socket.AF_INET6)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.bind(("::1", port)); s6.close()
    except OSError as e:
        if e.errno not in (97, 99):  # no IPv6 on this machine: fine
            continue
    print(port); break
EOF
}

# wait_port PORT SECONDS [ADDR]: poll until something accepts on ADDR:PORT
# (default 127.0.0.1).
wait_port() {
	local port=$1 deadline=$((SECONDS + $2)) addr=${3:-127.0.0.1}
	until "$PY" -c 'import socket,sys; socket.create_connection((sys.argv[2], int(sys.argv[1])), 0.5).close()' "$port" "$addr" 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

step "generating keys in $TMP"
ssh-keygen -q -t ed25519 -N '' -C devbridge-demo-host -f "$TMP/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C devbridge-demo-client -f "$TMP/client_key"
chmod 600 "$TMP/client_key" "$TMP/host_ed25519"
cp "$TMP/client_key.pub" "$TMP/authorized_keys"

SSH_PORT="$(free_port)"
WEB_PORT="$(free_port)"
REMOTE_PORT="$(free_port)"
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cat "$TMP/host_ed25519.pub")" >"$TMP/known_hosts"

step "starting a throw-away sshd on 127.0.0.1:$SSH_PORT"
cat >"$TMP/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $TMP/host_ed25519
AuthorizedKeysFile $TMP/authorized_keys
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel VERBOSE
ClientAliveInterval 2
ClientAliveCountMax 2
EOF
mkdir -p /run/sshd
"$SSHD" -D -e -f "$TMP/sshd_config" 2>"$TMP/sshd.log" &
SSHD_PID=$!
wait_port "$SSH_PORT" 10 || { cat "$TMP/sshd.log" >&2; die "sshd did not start"; }

step "starting a local web service on 127.0.0.1:$WEB_PORT"
mkdir -p "$TMP/www"
printf '<!doctype html>\n<title>devbridge demo</title>\n<p>hello through devbridge</p>\n' >"$TMP/www/index.html"
"$PY" -m http.server --bind 127.0.0.1 --directory "$TMP/www" "$WEB_PORT" >"$TMP/web.log" 2>&1 &
WEB_PID=$!
wait_port "$WEB_PORT" 10 || die "web service did not start"

step "writing $TMP/devbridge.yaml (reverse tunnel demo-web: remote :$REMOTE_PORT -> local :$WEB_PORT)"
cat >"$TMP/devbridge.yaml" <<EOF
tunnels:
  demo-web:
    host: 127.0.0.1
    ssh_port: $SSH_PORT
    ssh_user: $(id -un)
    ssh_key: $TMP/client_key
    remote_port: $REMOTE_PORT
    local_port: $WEB_PORT
    actor: demo
    direction: reverse
    server_alive_interval: 5
    server_alive_count_max: 3
    reconnect: {max_attempts: 0, backoff_initial: 1, backoff_max: 10}
    health_check: {url: "http://127.0.0.1:$WEB_PORT/", interval_seconds: 5, timeout_seconds: 2}
    ssh_options:
      UserKnownHostsFile: $TMP/known_hosts
      StrictHostKeyChecking: "yes"
actors:
  demo:
    class: human
    description: the README demo
EOF
CONFIG_WRITTEN=1
export DEVBRIDGE_CONFIG="$TMP/devbridge.yaml"
export DEVBRIDGE_STATE_DIR="$TMP/state"

step "devbridge config check"
"$BIN" config check

step "devbridge up demo-web"
"$BIN" up demo-web

step "devbridge status"
"$BIN" status

step "curl http://127.0.0.1:$REMOTE_PORT/ (the sshd side of the tunnel)"
PAGE="$(curl -fsS --max-time 10 "http://127.0.0.1:$REMOTE_PORT/")" || die "fetch through the tunnel failed"
printf '%s\n' "$PAGE"

step "devbridge logs demo-web -n 5"
"$BIN" logs demo-web -n 5

step "devbridge mcp: what an AI agent sees (initialize, then tools/call bridge_status over stdio)"
MCP_OUT="$(printf '%s\n' \
	'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"demo","version":"1"}}}' \
	'{"jsonrpc":"2.0","method":"notifications/initialized"}' \
	'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bridge_status","arguments":{"names":["demo-web"]}}}' |
	"$BIN" mcp)"
printf '%s\n' "$MCP_OUT" | "$PY" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("id") == 1:
        r = m["result"]
        print("server %s %s, protocol %s" % (r["serverInfo"]["name"], r["serverInfo"]["version"], r["protocolVersion"]))
    elif m.get("id") == 2:
        for b in m["result"]["structuredContent"]["bridges"]:
            print("bridge_status: %s %s %s %s health %s" % (b["name"], b["state"], b["local"], b["remote"], b["health"]))
' || die "devbridge mcp did not answer"


# --- the container part: a network namespace as a stand-in devcontainer ---

CONTAINER_RESULT=skipped
CONTAINER_WHY=""
if ! command -v ip >/dev/null; then
	CONTAINER_WHY="no 'ip' command (apt-get install iproute2)"
elif [ "$(id -u)" != 0 ]; then
	CONTAINER_WHY="needs root to create a network namespace (rerun with sudo)"
elif ip -4 -o addr show to 10.233.0.0/24 2>/dev/null | grep -q .; then
	CONTAINER_WHY="10.233.0.0/24 is already in use here ($(ip -4 -o addr show to 10.233.0.0/24 | awk '{print $2; exit}'))"
fi

if [ -z "$CONTAINER_WHY" ]; then
	SUFFIX="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
	step "creating network namespace devbridge-demo-container-$SUFFIX (veth dbd-h-$SUFFIX 10.233.0.1/24 <-> dbd-c-$SUFFIX 10.233.0.2/24)"
	if ip netns add "devbridge-demo-container-$SUFFIX" 2>"$TMP/netns.err"; then
		NS="devbridge-demo-container-$SUFFIX"
	else
		CONTAINER_WHY="cannot create a network namespace here: $(tr '\n' ' ' <"$TMP/netns.err")"
	fi
fi

if [ -z "$CONTAINER_WHY" ]; then
	VETH_HOST="dbd-h-$SUFFIX"
	VETH_NS="dbd-c-$SUFFIX"
	ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
	ip link set "$VETH_NS" netns "$NS"
	ip addr add 10.233.0.1/24 dev "$VETH_HOST"
	ip link set "$VETH_HOST" up
	ip -n "$NS" link set lo up
	ip -n "$NS" addr add 10.233.0.2/24 dev "$VETH_NS"
	ip -n "$NS" link set "$VETH_NS" up
	ip -n "$NS" route add default via 10.233.0.1

	CTL_PORT="$(free_port)"
	DATA_PORT="$(free_port)"
	CWEB_PORT="$(free_port)"
	TOKEN="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
	[ "${#TOKEN}" = 64 ] || die "could not make an auth token"
	STATE="$TMP/state"
	mkdir -p "$STATE"

	step "devbridge host-daemon --bind-addr 10.233.0.1 --control-port $CTL_PORT --data-port $DATA_PORT --auth-token <64 random hex> --state-dir $STATE"
	"$BIN" host-daemon --bind-addr 10.233.0.1 --control-port "$CTL_PORT" --data-port "$DATA_PORT" \
		--auth-token "$TOKEN" --state-dir "$STATE" >"$TMP/host-daemon.out" 2>&1 &
	HD_PID=$!
	wait_port "$CTL_PORT" 10 10.233.0.1 || { cat "$TMP/host-daemon.out" >&2; die "the host daemon did not listen on 10.233.0.1:$CTL_PORT"; }

	step "in the container: a web server on 127.0.0.1:$CWEB_PORT and devbridge container-daemon --host-addr 10.233.0.1"
	mkdir -p "$TMP/cwww"
	printf '<!doctype html>\n<title>devbridge demo container</title>\n<p>hello from inside the container</p>\n' >"$TMP/cwww/index.html"
	# `ip netns exec` execs the command, so $! is the server's own pid.
	ip netns exec "$NS" "$PY" -m http.server --bind 127.0.0.1 --directory "$TMP/cwww" "$CWEB_PORT" >"$TMP/cweb.log" 2>&1 &
	CWEB_PID=$!
	ip netns exec "$NS" "$BIN" container-daemon --host-addr 10.233.0.1 --control-port "$CTL_PORT" \
		--data-port "$DATA_PORT" --auth-token "$TOKEN" --container-id demo-container >"$TMP/container-daemon.out" 2>&1 &
	CD_PID=$!

	# host_port_of PORT: the host port the host daemon forwards to the
	# container's PORT, from its state file (empty until forwarded).
	host_port_of() {
		"$PY" - "$STATE/host-daemon.state" "$1" <<'EOF' 2>/dev/null
import json, sys
try:
    st = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
for c in st.get("containers", []):
    for f in c.get("forwards", []):
        if f.get("port") == int(sys.argv[2]):
            print(f["host_port"]); sys.exit(0)
EOF
	}

	step "waiting for the container's port $CWEB_PORT to be forwarded to the host"
	HOST_PORT=""
	CPAGE=""
	deadline=$((SECONDS + 10))
	while :; do
		[ -n "$HOST_PORT" ] || HOST_PORT="$(host_port_of "$CWEB_PORT")"
		if [ -n "$HOST_PORT" ] && CPAGE="$(curl -fsS --max-time 1 "http://127.0.0.1:$HOST_PORT/" 2>/dev/null)"; then
			break
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			cat "$TMP/host-daemon.out" "$TMP/container-daemon.out" >&2
			die "the container's web server did not answer on the host within 10 s"
		fi
		sleep 0.1
	done

	step "curl http://127.0.0.1:$HOST_PORT/ (on the host; the server listens on 127.0.0.1:$CWEB_PORT in the container)"
	printf '%s\n' "$CPAGE"
	printf '%s' "$CPAGE" | grep -q 'hello from inside the container' || die "the page fetched from the container is not the demo page"

	step "devbridge status (the SSH tunnel and the container side by side)"
	"$BIN" status

	step "stopping the container's web server: the host port closes"
	kill "$CWEB_PID"
	wait "$CWEB_PID" 2>/dev/null || true
	CWEB_PID=""
	# Until the container daemon notices, the host still accepts and the
	# relay fails; wait for the forward to be withdrawn and the port closed.
	deadline=$((SECONDS + 10))
	while [ -n "$(host_port_of "$CWEB_PORT")" ] || curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$HOST_PORT/" 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || die "127.0.0.1:$HOST_PORT is still forwarded 10 s after the server stopped"
		sleep 0.1
	done
	rc=0
	curl -sS --max-time 2 -o /dev/null "http://127.0.0.1:$HOST_PORT/" 2>"$TMP/curl.err" || rc=$?
	printf 'curl http://127.0.0.1:%s/ -> exit %s: %s\n' "$HOST_PORT" "$rc" "$(head -n 1 "$TMP/curl.err")"

	step "the host daemon's audit log ($STATE/host-daemon.log)"
	"$PY" - "$STATE/host-daemon.log" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    print("%s  %-22s %-32s %s" % (e.get("ts", ""), e.get("event", ""), e.get("actor") or "", e.get("detail") or ""))
EOF

	step "stopping the container daemon and the host daemon"
	for pid in $CD_PID $HD_PID; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $CD_PID $HD_PID; do
		wait "$pid" 2>/dev/null || true
	done
	CD_PID=""
	HD_PID=""
	CONTAINER_RESULT=ok
else
	step "skipping the container part: $CONTAINER_WHY"
fi

# --- the Kubernetes part: kubesim (tests/kubesim) as the cluster ---

K8S_RESULT=skipped
K8S_WHY=""
if ! command -v kubectl >/dev/null; then
	K8S_WHY="no kubectl on PATH"
elif [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
	K8S_WHY="kubesim runs pods in network namespaces: needs root and iproute2"
fi

if [ -z "$K8S_WHY" ]; then
	step "starting kubesim, a small Kubernetes API server for tests (pods as processes in network namespaces)"
	mkdir -p "$TMP/kube-home"
	(cd "$ROOT/tests" && exec "$PY" -m kubesim --dir "$TMP/sim" --runtime) >"$TMP/kubesim.log" 2>&1 &
	SIM_PID=$!
	deadline=$((SECONDS + 30))
	until [ -s "$TMP/sim/ready" ]; do
		kill -0 "$SIM_PID" 2>/dev/null || { cat "$TMP/kubesim.log" >&2; die "kubesim exited"; }
		[ "$SECONDS" -lt "$deadline" ] || die "kubesim did not start within 30 s"
		sleep 0.1
	done
	export KUBECONFIG="$TMP/sim/kubeconfig" KUBECACHEDIR="$TMP/kube-home/cache"

	step "kubectl apply: pod web-1 (image kubesim/http) and service web (port 80 -> 8080)"
	kubectl apply --validate=false -f - >/dev/null <<'EOF'
{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
  "spec": {"containers": [{"name": "web", "image": "kubesim/http", "ports": [{"containerPort": 8080}]}]}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}]}
EOF
	kubectl wait --for=condition=Ready pod/web-1 --timeout=30s >/dev/null

	K8S_PORT="$(free_port)"
	step "devbridge connect -t web:80:$K8S_PORT (one supervised kubectl port-forward)"
	"$BIN" connect -t "web:80:$K8S_PORT"

	step "devbridge env"
	"$BIN" env

	step "devbridge shell -- sh -c 'curl -fsS \$BRIDGE_WEB_URL/'"
	KPAGE="$("$BIN" shell -- sh -c 'curl -fsS --max-time 10 "$BRIDGE_WEB_URL/"')" || die "fetch through the Kubernetes bridge failed"
	printf '%s\n' "$KPAGE"
	printf '%s' "$KPAGE" | grep -q 'web-1' || die "the page fetched through the bridge does not name pod web-1"

	step "devbridge status (SSH tunnel and Kubernetes bridge side by side)"
	"$BIN" status

	step "devbridge disconnect -y"
	"$BIN" disconnect -y
	kill "$SIM_PID" 2>/dev/null || true
	wait "$SIM_PID" 2>/dev/null || true
	SIM_PID=""
	K8S_RESULT=ok
else
	step "skipping the Kubernetes part: $K8S_WHY"
fi

step "devbridge down"
"$BIN" down

printf '%s' "$PAGE" | grep -q 'hello through devbridge' || die "the page fetched through the tunnel is not the demo page"
if [ "$K8S_RESULT" = ok ]; then
	step "ok: fetched pod web-1's page from service web in kubesim through devbridge connect (kubectl port-forward)"
else
	step "Kubernetes part skipped: $K8S_WHY"
fi
if [ "$CONTAINER_RESULT" = ok ]; then
	step "ok: fetched 'hello through devbridge' from 127.0.0.1:$REMOTE_PORT through a reverse SSH tunnel to 127.0.0.1:$WEB_PORT, and 'hello from inside the container' from 127.0.0.1:$HOST_PORT, auto-forwarded from port $CWEB_PORT in network namespace $NS"
else
	step "ok: fetched 'hello through devbridge' from 127.0.0.1:$REMOTE_PORT through a reverse SSH tunnel to 127.0.0.1:$WEB_PORT (container part skipped: $CONTAINER_WHY)"
fi
