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
)
if [[ "${1:-}" == "--bench" ]]; then
	pkgs+=(hyperfine haproxy)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
echo "==> installing: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
