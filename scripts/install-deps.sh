#!/usr/bin/env bash
# Install what devbridge needs to build, test, demo and benchmark, from
# Debian's packages only.  Skips the network when everything is present.
set -euo pipefail

pkgs=(
	build-essential meson ninja-build pkg-config clang clang-format
	libyaml-dev libjansson-dev libcurl4-openssl-dev
	openssh-client openssh-server
	python3 python3-pytest curl
	iproute2 procps socat iperf3 openssl
	golang-go golang-github-hashicorp-yamux-dev nodejs
)
# npm: Debian's package, unless a node that bundles its own npm is there
# (NodeSource's nodejs provides and conflicts with Debian's npm).
if ! command -v npm >/dev/null; then
	pkgs+=(npm)
fi
if [[ "${1:-}" == "--bench" ]]; then
	pkgs+=(hyperfine haproxy)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} > 0)); then
	echo "==> installing: ${missing[*]}"
	SUDO=""
	if [[ $(id -u) -ne 0 ]]; then
		SUDO="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# yamux-js for the Yamux interop tests (tests/yamux/package-lock.json).
# Skips the network when node_modules already matches the lock file.
yamux_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/yamux"
if [[ ! -f $yamux_dir/node_modules/.package-lock.json ||
	$yamux_dir/package-lock.json -nt $yamux_dir/node_modules/.package-lock.json ]]; then
	echo "==> npm ci --prefix tests/yamux"
	npm ci --prefix "$yamux_dir" --no-audit --no-fund --loglevel=error >/dev/null
fi

# The official MCP TypeScript SDK for the MCP tests and benchmark
# (tests/mcp/package-lock.json), the same way.
mcp_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/mcp"
if [[ ! -f $mcp_dir/node_modules/.package-lock.json ||
	$mcp_dir/package-lock.json -nt $mcp_dir/node_modules/.package-lock.json ]]; then
	echo "==> npm ci --prefix tests/mcp"
	npm ci --prefix "$mcp_dir" --no-audit --no-fund --loglevel=error >/dev/null
fi
