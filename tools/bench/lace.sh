#!/usr/bin/env bash
# B1's fork-join anchor: Lace's fib, as JSON lines tools/bench/compare
# reads beside weft-bench-fib's (docs/benchmarks.md, B1).
#
# usage: tools/bench/lace.sh LACE_SOURCE_DIR [n] [runs]
#
# Lace (a C work-stealing library) is not a dependency of weft and is not
# fetched here: give the directory of its sources.  They are built once,
# Release, in build/lace (its benchmarks/fib-lace program); then fib(n)
# (default 35) runs `runs` times (default 7) at 1 and at 2 workers, and
# one line per worker count goes to stdout:
#   {"workload":"fib","workers":W,"n":N,"peer":"lace","median_ms":...,
#    "spawns":...,"ns_per_spawn":...}
# with spawns and ns_per_spawn defined as weft-bench-fib's (fib(n+1) - 1
# spawns, median x workers / spawns).  Build output goes to stderr.
set -euo pipefail

src=${1:?usage: tools/bench/lace.sh LACE_SOURCE_DIR [n] [runs]}
n=${2:-35}
runs=${3:-7}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/lace"

if [ ! -f "$src/CMakeLists.txt" ] || [ ! -d "$src/benchmarks/fib" ]; then
	echo "lace.sh: $src does not look like Lace's sources" >&2
	exit 2
fi
case $n in '' | *[!0-9]*)
	echo "lace.sh: n must be a number" >&2
	exit 2
	;;
esac
if [ ! -x "$out/benchmarks/fib-lace" ]; then
	cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release \
		-DLACE_BUILD_BENCHMARKS=ON >&2
	cmake --build "$out" -j2 --target fib-lace >&2
fi

# fib(n+1) - 1: the spawns of weft's fib(n) (one per call with n >= 2).
spawns=$(awk -v n="$n" 'BEGIN { a = 0; b = 1;
	for (i = 0; i < n + 1; i++) { c = a + b; a = b; b = c }
	printf "%d", a - 1 }')

for w in 1 2; do
	times=()
	for _ in $(seq "$runs"); do
		# fib-lace prints "Time: <seconds>".
		t=$("$out/benchmarks/fib-lace" -w "$w" "$n" |
			awk '/^Time:/ { printf "%.3f", $2 * 1000 }')
		[ -n "$t" ] || { echo "lace.sh: no time from fib-lace" >&2; exit 1; }
		times+=("$t")
	done
	printf '%s\n' "${times[@]}" | sort -n | awk -v w="$w" -v n="$n" \
		-v s="$spawns" '{ v[NR] = $1 }
		END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "{\"workload\":\"fib\",\"workers\":%d,\"n\":%d,\"peer\":\"lace\",\"median_ms\":%.3f,\"spawns\":%d,\"ns_per_spawn\":%.3f}\n",
			w, n, m, s, m * 1e6 * w / s }'
done
