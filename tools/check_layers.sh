#!/usr/bin/env bash
# check_layers.sh <runtime-dir>
#
# Fails when a runtime file includes a header of a layer above its own, or
# names an internal header without its folder.  The layers, bottom up
# (ARCHITECTURE.md "Code map"):
#
#   base/    may include base/
#   core/    may include base/ core/ and runtime.h
#   sync/    may include base/ core/ sync/ and runtime.h
#   io/      may include base/ core/ sync/ io/ and runtime.h
#   thread/  may include base/ core/ sync/ thread/ and runtime.h
#   tls/     may include tls/ only: libweft-tls is a library of its own
#            above libweft and sees weft's public headers, not its
#            internals (those are hidden from a library that links it)
#   runtime.h (struct weft_runtime, seen by every layer): base/ core/
#   config.c, config.h: base/ and config.h
#   runtime.c (the composition root): anything
#
# Public headers ("weft/...") are allowed everywhere.  libuv (<uv.h>) is
# allowed in io/ only: the core and the primitives never see it.
# Registered as the ctest runtime_layers; a self-test feeds it a tree with
# one upward include and one bare include and expects exactly those two.
set -euo pipefail

if (($# != 1)); then
	echo "usage: $0 <runtime-dir>" >&2
	exit 2
fi
root=$1
[[ -d $root ]] || {
	echo "check_layers: $root is not a directory" >&2
	exit 2
}

# allowed <file relative to root>: the include prefixes it may use.
allowed() {
	case $1 in
	base/*) echo "base/" ;;
	core/*) echo "base/ core/ runtime.h" ;;
	sync/*) echo "base/ core/ sync/ runtime.h" ;;
	io/*) echo "base/ core/ sync/ io/ runtime.h" ;;
	thread/*) echo "base/ core/ sync/ thread/ runtime.h" ;;
	tls/*) echo "tls/" ;;
	runtime.h) echo "base/ core/" ;;
	config.c | config.h) echo "base/ config.h" ;;
	runtime.c) echo "*" ;;
	*) echo "" ;;
	esac
}

bad=()
checked=0
while IFS= read -r -d '' path; do
	rel=${path#"$root"/}
	ok=$(allowed "$rel")
	if [[ -z $ok ]]; then
		bad+=("$rel: not in a layer folder (base core sync io thread tls)")
		continue
	fi
	checked=$((checked + 1))
	lineno=0
	while IFS= read -r line; do
		lineno=$((lineno + 1))
		if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<uv\.h\> ]] &&
			[[ $rel != io/* ]]; then
			bad+=("$rel:$lineno: includes <uv.h> outside io/")
			continue
		fi
		[[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]] ||
			continue
		inc=${BASH_REMATCH[1]}
		[[ $inc == weft/* || $inc == weft.h ]] && continue
		if [[ $inc != */* && $inc != runtime.h && $inc != config.h ]]; then
			bad+=("$rel:$lineno: \"$inc\" names no folder")
			continue
		fi
		[[ $ok == "*" ]] && continue
		pass=0
		for p in $ok; do
			if [[ $p == */ && $inc == "$p"* ]] || [[ $inc == "$p" ]]; then
				pass=1
				break
			fi
		done
		((pass)) || bad+=("$rel:$lineno: \"$inc\" is above its layer (allowed: $ok)")
	done <"$path"
done < <(find "$root" -type f \( -name '*.c' -o -name '*.h' -o -name '*.S' \) -print0 | sort -z)

if ((${#bad[@]} > 0)); then
	echo "check_layers: ${#bad[@]} include(s) break the layering:"
	printf '  %s\n' "${bad[@]}"
	exit 1
fi
echo "check_layers: $checked files, every include within its layer"
