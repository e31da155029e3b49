#!/usr/bin/env bash
# check_format.sh [--fix] [repository-root]
#
# Every C and C++ source of the repository is formatted by .clang-format
# (clang-format 14, Debian's clang-format-14).  Without --fix, lists the
# files clang-format would change and fails if there is any; with --fix,
# formats them in place.  Run by `tools/run test` before the builds.
set -euo pipefail

fix=0
if [[ ${1:-} == --fix ]]; then
	fix=1
	shift
fi
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$root"

cf=
for c in clang-format-14 clang-format; do
	if command -v "$c" >/dev/null; then
		cf=$c
		break
	fi
done
if [[ -z $cf ]]; then
	echo "check_format: clang-format-14 is not installed (tools/run deps installs it)" >&2
	exit 2
fi
if ! "$cf" --version | grep -q 'version 14\.'; then
	echo "check_format: $cf is not version 14; other versions format differently" >&2
	exit 2
fi

mapfile -d '' files < <(find runtime include tests tools \
	-type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \) -print0 | sort -z)

if ((fix)); then
	"$cf" -i --style=file "${files[@]}"
	echo "check_format: formatted ${#files[@]} files"
	exit 0
fi

bad=()
for f in "${files[@]}"; do
	if ! "$cf" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
		bad+=("$f")
	fi
done
if ((${#bad[@]} > 0)); then
	echo "check_format: ${#bad[@]} file(s) differ from .clang-format" \
		"(fix with tools/check_format.sh --fix):"
	printf '  %s\n' "${bad[@]}"
	exit 1
fi
echo "check_format: ${#files[@]} files match .clang-format"
