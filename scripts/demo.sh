#!/usr/bin/env bash
# devbridge demo: a reverse SSH tunnel to a throw-away sshd on loopback.
#
#   scripts/demo.sh            (uses $DEVBRIDGE_BIN, default build/devbridge)
#
# Builds nothing itself (the Makefile target runs meson/ninja first).  Touches
# no system configuration: the sshd, its keys, the web service, the config
# and the state directory all live in one temp dir removed at exit, and only
# processes this script started are stopped, by pid.
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

cleanup() {
	local rc=$?
	set +e
	if [ "$CONFIG_WRITTEN" = 1 ]; then
		"$BIN" --config "$TMP/devbridge.yaml" --state-dir "$TMP/state" down >/dev/null 2>&1
	fi
	# sshd's per-connection children run in their own sessions: end them by pid too
	if [ -n "$SSHD_PID" ]; then
		for pid in $(ps -o pid= --ppid "$SSHD_PID" 2>/dev/null); do
			kill "$pid" 2>/dev/null
		done
	fi
	for pid in $WEB_PID $SSHD_PID; do
		kill "$pid" 2>/dev/null
	done
	for pid in $WEB_PID $SSHD_PID; do
		wait "$pid" 2>/dev/null
	done
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

# wait_port PORT SECONDS: poll until something accepts on 127.0.0.1:PORT.
wait_port() {
	local port=$1 deadline=$((SECONDS + $2))
	until "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$port" 2>/dev/null; do
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

step "devbridge down"
"$BIN" down

if printf '%s' "$PAGE" | grep -q 'hello through devbridge'; then
	step "ok: fetched 'hello through devbridge' from 127.0.0.1:$REMOTE_PORT through a reverse SSH tunnel to 127.0.0.1:$WEB_PORT"
else
	die "the page fetched through the tunnel is not the demo page"
fi
