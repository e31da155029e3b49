#!/usr/bin/env bash
# check_refs.sh <repository-root>
#
# The repository explains itself: code and documents cite nothing a person
# who clones weft does not have.  Fails on
#   - a reference to a document outside the repository: an issue number
#     ("issue 4"), the team's style guide or its items ("style.md",
#     "H8"), research notes, the workload list or peer programs kept
#     outside ("shared/", "research/", "platform.md", "workloads.md",
#     "peers/"), or "semantics.md" without its docs/ folder;
#   - a semantics rule ("rule 30", "rules 32-35") that docs/semantics.md
#     does not define (its rules are headed "**<n>. ...**");
#   - a benchmark id ("B5") that docs/benchmarks.md does not define (its
#     workloads are headed "### B<n> ...").
# Checked: runtime/ include/ tests/ tools/ cmake/ docs/ CMakeLists.txt
# README.md ARCHITECTURE.md .ci/.  Registered as the ctest self_contained;
# a self-test runs it on a generated tree with one of each fault.
set -euo pipefail

if (($# != 1)); then
	echo "usage: $0 <repository-root>" >&2
	exit 2
fi
root=$1
sem=$root/docs/semantics.md
bench=$root/docs/benchmarks.md
for f in "$sem" "$bench"; do
	[[ -f $f ]] || {
		echo "check_refs: $f is missing" >&2
		exit 1
	}
done

# The rule numbers and benchmark ids the documents define.
declare -A rules=() benches=()
while IFS= read -r n; do rules[$n]=1; done < <(
	grep -oE '^\*\*[0-9]+\.' "$sem" | tr -d '*.')
while IFS= read -r n; do benches[$n]=1; done < <(
	grep -oE '^### B[0-9]+' "$bench" | tr -d '#B ')

paths=()
for p in runtime include tests tools cmake docs CMakeLists.txt README.md \
	ARCHITECTURE.md .ci; do
	[[ -e $root/$p ]] && paths+=("$root/$p")
done

outside='([Ii]ssues? ?#?[0-9]|style\.md|\bH[0-9]{1,2}\b|shared/|research/|platform\.md|runtimes\.md|workloads\.md|peers/|layout-review|semantics-survey|(^|[^/])semantics\.md)'
bad=()
# This script names the patterns it forbids; it is not checked itself.
self=$(basename "${BASH_SOURCE[0]}")

while IFS= read -r hit; do
	bad+=("$hit: cites a document outside the repository")
done < <(grep -rnIE --exclude="$self" "$outside" "${paths[@]}" |
	sed "s|^$root/||" | cut -c1-160 || true)

# "rule 12", "rules 32-35", "rules 10 and 11", "rules 1, 2": every number.
while IFS= read -r line; do
	loc=${line%%:*}
	rest=${line#*:}
	lineno=${rest%%:*}
	text=${rest#*:}
	while [[ $text =~ [Rr]ules?[[:space:]]+([0-9]+)(([[:space:]]*(-|–|,|and|or|to)[[:space:]]*[0-9]+)*) ]]; do
		nums="${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
		text=${text#*"${BASH_REMATCH[0]}"}
		range=0
		prev=
		for tok in $(echo "$nums" | tr -- '-–,' ' - '); do
			case $tok in
			-) range=1 ;;
			and | or | to) ;;
			*)
				if ((range)) && [[ -n $prev ]]; then
					for ((k = prev + 1; k <= tok; k++)); do
						[[ -n ${rules[$k]:-} ]] ||
							bad+=("${loc#"$root"/}:$lineno: rule $k is not in docs/semantics.md")
					done
					range=0
				elif [[ -z ${rules[$tok]:-} ]]; then
					bad+=("${loc#"$root"/}:$lineno: rule $tok is not in docs/semantics.md")
				fi
				prev=$tok
				;;
			esac
		done
	done
done < <(grep -rnIE --exclude="$self" '[Rr]ules?[[:space:]]+[0-9]' "${paths[@]}" || true)

while IFS= read -r line; do
	loc=${line%%:*}
	rest=${line#*:}
	lineno=${rest%%:*}
	text=${rest#*:}
	while [[ $text =~ (^|[^A-Za-z0-9_])B([0-9]{1,2})([^A-Za-z0-9_]|$) ]]; do
		n=${BASH_REMATCH[2]}
		text=${text#*"B$n"}
		[[ -n ${benches[$n]:-} ]] ||
			bad+=("${loc#"$root"/}:$lineno: benchmark B$n is not in docs/benchmarks.md")
	done
done < <(grep -rnIE --exclude="$self" '(^|[^A-Za-z0-9_])B[0-9]{1,2}([^A-Za-z0-9_]|$)' "${paths[@]}" || true)

if ((${#bad[@]} > 0)); then
	echo "check_refs: ${#bad[@]} reference(s) that the repository cannot resolve:"
	printf '  %s\n' "${bad[@]}"
	exit 1
fi
echo "check_refs: every reference resolves inside the repository" \
	"(${#rules[@]} rules, ${#benches[@]} benchmarks defined)"
