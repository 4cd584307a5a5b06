#!/usr/bin/env bash
# The layering rule (docs/architecture.md, "Layers"):
#   main -> cli|mcp -> app -> {ssh, k8s, container} -> proto -> core
# A file may include headers of its own layer and of the layers below it;
# the worlds never include each other.  Prints each violation as
# FILE:LINE: and exits 1 when there is one.  The build enforces the same
# rule for symbols (one static library per layer, linked in this order).
set -u
cd "$(dirname "$0")/.."
allowed() { # layer -> the layers it may include
	case "$1" in
	core) echo "core" ;;
	proto) echo "proto core" ;;
	ssh) echo "ssh proto core" ;;
	k8s) echo "k8s proto core" ;;
	container) echo "container proto core" ;;
	app) echo "app ssh k8s container proto core" ;;
	cli | mcp) echo "$1 app ssh k8s container proto core" ;;
	esac
}
bad=0
for dir in src/*/; do
	layer=$(basename "$dir")
	ok=$(allowed "$layer")
	if [ -z "$ok" ]; then
		echo "$dir: a directory outside the layer table (scripts/check-layers.sh)"
		bad=1
		continue
	fi
	while IFS=: read -r file line inc; do
		to=${inc%%/*}
		case " $ok " in *" $to "*) ;; *)
			echo "$file:$line: $layer includes $inc (a $layer file may include: $ok)"
			bad=1 ;;
		esac
	done < <(grep -Hn '^#include "[a-z]*/' "$dir"*.[ch] | sed 's/^\([^:]*\):\([0-9]*\):#include "\([^"]*\)".*/\1:\2:\3/')
done
[ "$bad" = 0 ] && echo "layers: ok"
exit "$bad"
