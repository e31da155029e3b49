#!/usr/bin/env bash
# tools/models/check.sh [--deep]: model-check weft's lock-free protocols
# with spin (Promela models in this folder; each file's header says what
# C code it models, how, and what is checked).
#
# For each run: spin -a generates the verifier pan.c, gcc compiles it,
# pan explores every interleaving of the model at the given bounds.
#   safety    -DSAFETY: assertions and invalid end states; the models'
#             "eventually" properties are checked in the states where
#             nothing can move any more (a `timeout` monitor).
#   progress  -DNP, pan -l -f: no non-progress cycle under weak
#             fairness.  The models have no progress labels, so this
#             proves they have no infinite execution at all; that is
#             what makes the terminal-state check of the safety run a
#             liveness check ("eventually runnable", "eventually run").
#   known     a variant that reaches a known violation: the run must
#             fail with the named assertion.  For a bug the C code still
#             has, the variant is the code as it is (the script notices
#             when a change makes it pass: then the fix's variant becomes
#             the model's default); for a fixed bug, the code before the
#             fix, to show the model still catches it.
#
# Known violations (see the headers of idle.pml, sock.pml, vclock.pml and
# par.pml):
#   idle  (fixed in idle.c; -DNOTIFY_NO_RETRY is the code before the fix)
#         a notifier that took the spinning token and found no sleeper
#         gives the token back; a producer that saw the token meanwhile
#         returned without waking anyone, and a worker that went to
#         sleep between the two checked the queues before that
#         producer's task appeared: every worker asleep, a task queued.
#         Fix modelled by NOTIFY_RETRY: weft__idle_notify retries (fence
#         and all) after giving the token back.
#   sock  (fixed in sock.c/io.c; -DCLOSER_NO_REF is the code before)
#         weft__sock_close held no reference: after its fetch_or of
#         CLOSED, a caller leaving the gate last finishes the close and
#         its call_end drops the last reference (free_fn), and then the
#         closer's sock_try_finish loads s->gate from freed memory.  Fix
#         modelled by CLOSER_REF: the closer takes a reference before
#         the fetch_or and drops it after sock_try_finish.
#   vclock (three, all fixed in timer.h/timer.c; -DBUMP_FIRST,
#         -DWAKE_ALL and -DNO_RELEASE_POST are the code before each fix)
#         weft__timer_hold bumped the epoch before the count: a check
#         read the new epoch, then the count before the +1, and took
#         "quiet, nothing holds" while a root was on its way in; the
#         root listed itself, and the check's second epoch read, equal
#         to its first, let it cancel the root as deadlocked before the
#         root ran.  Fix: the count, then the epoch.  And the check woke
#         every weft_wait_all_tasks_blocked waiter, also one registered
#         after its quiet decision (by a root that came in meanwhile,
#         its sibling still running).  Fix: registrations are numbered
#         (waiter_seq) and the check wakes only the earlier ones.  And
#         a check that found a hold taken stood down and posted nothing,
#         while the root's thread dropped that hold after its task had
#         run, parked and the worker gone to sleep: no check ever came
#         again (a hang).  Fix: dropping the last hold posts a check.
#   par   (the design's, never in the code; -DFLUSH_NO_WAIT) a flush that
#         resets weft_par's deque without waiting for the thieves' marks
#         lets a thief read a slot the next task rewrote: a half runs
#         twice or never.
#
# --deep uses larger bounds (about 10 minutes, up to 2 GB of memory).
# Exit status: 0 when every run gave the expected result.  Registered as
# the ctest `models` (label `models`) in the plain build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
deep=0
for a in "$@"; do
	case $a in
	--deep) deep=1 ;;
	-h | --help)
		sed -n '2,40p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "check.sh: unknown argument '$a'" >&2
		exit 2
		;;
	esac
done

for tool in spin gcc; do
	if ! command -v "$tool" >/dev/null; then
		echo "check.sh: '$tool' not found (tools/run deps installs" \
			"spin)" >&2
		exit 1
	fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
total_start=$(date +%s.%N)

# run <kind> <model> <expected assertion (known only) or -> [-Dmacro...]
run() {
	local kind=$1 model=$2 expect=$3
	shift 3
	local dir="$work/$model-$kind-$RANDOM"
	mkdir -p "$dir"
	cp "$here/$model.pml" "$dir/"
	local label="$model $kind${*:+ $*}"
	local cflags=(-O2 -DCOLLAPSE -DMEMLIM=3072) panflags=(-m1000000)
	case $kind in
	safety | known) cflags+=(-DSAFETY) ;;
	progress)
		cflags+=(-DNP -DNFAIR=4)
		panflags+=(-l -f)
		;;
	esac
	local t0 t1 out
	t0=$(date +%s.%N)
	if ! (cd "$dir" && spin -a "$@" "$model.pml" >spin.log 2>&1); then
		echo "FAIL  $label: spin -a failed" >&2
		cat "$dir/spin.log" >&2
		failed=1
		return
	fi
	if ! (cd "$dir" && gcc "${cflags[@]}" -o pan pan.c >gcc.log 2>&1); then
		echo "FAIL  $label: gcc pan.c failed" >&2
		cat "$dir/gcc.log" >&2
		failed=1
		return
	fi
	(cd "$dir" && ./pan "${panflags[@]}" >pan.log 2>&1) || true
	t1=$(date +%s.%N)
	out="$dir/pan.log"
	local errors states secs
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | head -1)
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" |
		head -1)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	if [[ -z $errors ]]; then
		echo "FAIL  $label: pan did not finish" >&2
		tail -20 "$out" >&2
		failed=1
		return
	fi
	if grep -q 'Search not completed' "$out" && [[ $kind != known ]]; then
		echo "FAIL  $label: search not completed (depth or memory)" >&2
		grep -iE 'max search depth|memory|error' "$out" >&2 || true
		failed=1
		return
	fi
	if [[ $kind == known ]]; then
		if ((errors > 0)) && grep -qF "$expect" "$out"; then
			printf 'ok    %-58s known violation reproduced (%ss)\n' \
				"$label" "$secs"
		else
			echo "FAIL  $label: the known violation ($expect) is" \
				"gone: make the fix the model's default" >&2
			grep -E 'violated|errors' "$out" >&2 || true
			failed=1
		fi
		return
	fi
	if ((errors != 0)); then
		echo "FAIL  $label: $errors error(s)" >&2
		grep -E 'violated|error|cycle' "$out" >&2 || true
		(cd "$dir" && spin -t -p -g "$@" "$model.pml" 2>&1 | tail -60) >&2
		failed=1
		return
	fi
	printf 'ok    %-58s %10s states %6ss\n' "$label" "$states" "$secs"
}

if ((deep == 0)); then
	run safety deque - -DNITEMS=3 -DOPS=5 -DNTHIEVES=2 -DROUNDS=1
	run safety park - -DNPARK=3 -DNWORKERS=2
	run progress park - -DNPARK=3 -DNWORKERS=2
	run known idle 'assertion violated' -DNOTIFY_NO_RETRY -DNWORKERS=2 \
		-DPRODUCERS=2 \
		-DSPAWNS=0 -DHOGS=0 -DSPIN=1
	run safety idle - -DNWORKERS=2 -DPRODUCERS=1 \
		-DSPAWNS=1 -DSPIN=1
	run safety idle - -DNWORKERS=2 -DPRODUCERS=2 \
		-DSPAWNS=0 -DHOGS=0 -DSPIN=1
	run progress idle - -DNWORKERS=2 -DPRODUCERS=1 \
		-DSPAWNS=1 -DSPIN=1
	run known sock 'assertion violated  !(freed)' -DCLOSER_NO_REF \
		-DNCALLS=2 -DTRIES=1
	run safety sock - -DNCALLS=2 -DTRIES=1 -DEDGES=2
	run progress sock - -DNCALLS=2 -DTRIES=1 -DEDGES=2
	run known par 'assertion violated' -DFLUSH_NO_WAIT
	run safety par - -DNCALLS=4 -DOPS=7 -DNTHIEVES=2 -DROUNDS=2
	run progress par - -DNCALLS=3 -DOPS=6 -DNTHIEVES=2 -DROUNDS=2
else
	run safety deque - -DNITEMS=4 -DOPS=6 -DNTHIEVES=2 -DROUNDS=1
	run progress deque - -DNITEMS=3 -DOPS=5 -DNTHIEVES=2 -DROUNDS=1
	run safety park - -DNPARK=5 -DNWORKERS=3
	run progress park - -DNPARK=5 -DNWORKERS=3
	run known idle 'assertion violated' -DNOTIFY_NO_RETRY -DNWORKERS=2 \
		-DPRODUCERS=2 \
		-DSPAWNS=0 -DHOGS=0 -DSPIN=1
	run safety idle - -DNWORKERS=3 -DPRODUCERS=1 \
		-DSPAWNS=1 -DSPIN=1
	run safety idle - -DNWORKERS=2 -DPRODUCERS=2 \
		-DSPAWNS=1 -DSPIN=2
	run progress idle - -DNWORKERS=2 -DPRODUCERS=2 \
		-DSPAWNS=1 -DSPIN=1
	run known sock 'assertion violated  !(freed)' -DCLOSER_NO_REF \
		-DNCALLS=2 -DTRIES=2
	run safety sock - -DNCALLS=2 -DTRIES=2 -DEDGES=3
	run progress sock - -DNCALLS=2 -DTRIES=2 -DEDGES=2
	run known par 'assertion violated' -DFLUSH_NO_WAIT
	run safety par - -DNCALLS=5 -DOPS=9 -DNTHIEVES=2 -DROUNDS=3
	run progress par - -DNCALLS=4 -DOPS=7 -DNTHIEVES=2 -DROUNDS=2
fi
# vclock.pml has no bounds to raise: its state space is the whole
# protocol (one root, one worker, a sibling), the same in both modes.
run known vclock 'assertion violated ran' -DBUMP_FIRST
run known vclock 'assertion violated busy_done' -DWAKE_ALL
run known vclock 'assertion violated' -DNO_RELEASE_POST
run safety vclock -
run progress vclock -

total=$(awk -v a="$total_start" -v b="$(date +%s.%N)" \
	'BEGIN { printf "%.0f", b - a }')
if ((failed)); then
	echo "check.sh: FAILED (${total}s)" >&2
	exit 1
fi
echo "check.sh: all models checked (${total}s)"
