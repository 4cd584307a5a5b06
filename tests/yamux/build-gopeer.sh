#!/usr/bin/env bash
# Build the Go Yamux test peer (tests/yamux/gopeer, see PEER.md) into
# OUTDIR/gopeer with Debian's Go and hashicorp/yamux, offline: GOPATH mode
# on /usr/share/gocode, the build cache in OUTDIR.  Skips the build when
# the binary is newer than every source.  Prints the binary's path.
#   needs: golang-go golang-github-hashicorp-yamux-dev (scripts/install-deps.sh)
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
src="$(cd "$(dirname "$0")/gopeer" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
bin="$out/gopeer"
yamux=/usr/share/gocode/src/github.com/hashicorp/yamux

if ! command -v go >/dev/null; then
	echo "$0: no go: apt-get install golang-go (scripts/install-deps.sh)" >&2
	exit 1
fi
if [[ ! -d $yamux ]]; then
	echo "$0: no $yamux: apt-get install golang-github-hashicorp-yamux-dev (scripts/install-deps.sh)" >&2
	exit 1
fi

if [[ -x $bin ]]; then
	newer="$(find "$src" "$yamux" "$0" -newer "$bin" -type f -print -quit)"
	if [[ -z $newer ]]; then
		echo "$bin"
		exit 0
	fi
fi

export GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off
export GOCACHE="$out/go-cache" GOTMPDIR=""
(cd "$src" && go build -o "$bin.tmp" .)
mv -f "$bin.tmp" "$bin"
echo "$bin"
