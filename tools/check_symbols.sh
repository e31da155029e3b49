#!/usr/bin/env bash
# check_symbols.sh <shared-library>
#
# Fails unless every symbol the library exports is public weft API: a name
# starting with weft_ but not with weft__ (internal functions use the
# weft__ prefix and must stay hidden: the library is built with hidden
# visibility, and public declarations carry WEFT_EXTERN).  Linker-defined
# markers (_init, _fini, __bss_start, _edata, _end) are ignored.
# Registered as the ctest exported_symbols.
set -euo pipefail

if (($# != 1)); then
	echo "usage: $0 <shared-library>" >&2
	exit 2
fi
lib=$1
if [[ ! -f $lib ]]; then
	echo "check_symbols: $lib does not exist" >&2
	exit 2
fi

# nm -D --defined-only prints "<address> <type> <name>" for each dynamic
# symbol the library defines.
symbols=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sort -u)

good=0
bad=()
while IFS= read -r sym; do
	[[ -z $sym ]] && continue
	case $sym in
	_init | _fini | __bss_start | _edata | _end) ;;
	weft__*) bad+=("$sym") ;;
	weft_*) good=$((good + 1)) ;;
	*) bad+=("$sym") ;;
	esac
done <<<"$symbols"

if ((${#bad[@]} > 0)); then
	echo "check_symbols: $lib exports ${#bad[@]} forbidden symbol(s)" \
		"(only public weft_* names may be exported):"
	printf '  %s\n' "${bad[@]}"
	echo "Declare public functions with WEFT_EXTERN; keep everything else" \
		"static or hidden (in assembly: .hidden <name>)."
	exit 1
fi
echo "check_symbols: OK: $lib exports $good symbol(s), all public weft_*"
