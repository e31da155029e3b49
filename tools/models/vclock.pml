/* vclock.pml: the quiescence check against tasks that start after its
 * decision (runtime/core/timer.c Q6 and timer_wake_waiters,
 * weft__timer_hold in timer.h, weft_runtime_run in runtime/runtime.c,
 * weft_wait_all_tasks_blocked).
 *
 * Models
 *   root     weft_runtime_run: weft__timer_hold(+1) (the count `holds`
 *            and the epoch `hold_epoch`, in the order under test), the
 *            listing under insp_lock, the push on the injection queue,
 *            weft__idle_notify, weft__timer_hold(-1).
 *   worker   one worker, running what is queued: the root, which either
 *            parks for good (an event nobody sets: only the deadlock
 *            check ends it) or spawns a busy sibling and then waits in
 *            weft_wait_all_tasks_blocked (registers with the next
 *            waiter_seq number, parks); the sibling, which runs to its
 *            end; the root again once woken or cancelled.
 *            With the queues empty it lists itself as the (last)
 *            sleeper; taking a task unlists it (woken by a notify, or
 *            its own last look).
 *   post     timer_post_check: check_queued 0 -> 1 queues one check;
 *            made by the worker each time it lists itself as the (last)
 *            sleeper, and by the root's drop of the last hold (Q7).
 *   check    weft__timer_quiesce on the I/O thread, once per posted
 *            check (timer_check_fn clears check_queued first): read the
 *            epoch and waiter_seq;
 *            under the idle lock read holds and the quiet state; when
 *            quiet: wake the waiters registered before the waiter_seq
 *            read, or stand down if only later ones are listed; with no
 *            waiter, nothing holding and no deadline, timer_deadlock:
 *            under insp_lock read the epoch again and cancel every
 *            listed root that has not ended, unless the epoch moved.
 *   Every statement is one seq_cst access, as in C (each access here
 *   is seq_cst or under a lock, which an atomic block stands for).
 *
 * Checked
 *   A root is cancelled as deadlocked only after it ran up to its wait
 *   (a root cancelled while on its way in would end -EDEADLK without
 *   running a line); a waiter is woken only when every other task is
 *   blocked (its busy sibling has ended); and it is woken: in a state
 *   where nothing can move any more (the `timeout` monitor), the root
 *   is not left waiting after its sibling ended, nor parked for good
 *   without being cancelled as deadlocked (either would be a lost
 *   check: the runtime hangs).
 *
 * Known violations (the code before each fix):
 *   -DBUMP_FIRST  the epoch bumped before the count: a check reads the
 *                 new epoch, then the count before the +1, decides
 *                 "quiet, nothing holds" before the root is queued, and
 *                 finds the epoch unchanged when it cancels the root
 *                 listed meanwhile.
 *   -DWAKE_ALL    every listed waiter woken: a decision taken before
 *                 the root came in wakes the root's wait, registered
 *                 after it, while its sibling still runs.
 *   -DNO_RELEASE_POST  the drop of the last hold posts nothing: the root
 *                 is queued, runs, waits, its sibling ends and the
 *                 worker's last check finds the root's hold still taken
 *                 and stands down; the root's thread then drops it, and
 *                 no check ever comes again. */

byte holds = 0;
byte epoch = 0;
bool listed = false;
bool queued = false;     /* the root, in the injection queue */
bool busy_queued = false;
bool busy_done = false;
bool sleeping = false;   /* the worker is on the sleepers list */
bool ran = false;        /* the root ran up to its wait */
bool cancelled = false;
byte wseq = 0;           /* waiter_seq */
bool waiting = false;    /* the root is registered as a waiter */
byte my_seq;             /* its registration's number */
bool woken = false;
bool forever = false;    /* the root parks for good instead of waiting */
bool check_queued = false;
byte pending = 0;        /* checks posted and not made yet */

inline post_check()
{
	atomic {
		if
		:: !check_queued -> check_queued = true; pending++
		:: else -> skip
		fi
	}
}

active proctype root()
{
	bool last;
	/* What the root will do once run (the worker reads it). */
	if
	:: forever = true
	:: skip
	fi;
#ifdef BUMP_FIRST
	epoch++;
	holds++;
#else
	holds++;
	epoch++;
#endif
	atomic { listed = true }           /* insp_lock */
	atomic { queued = true }           /* inject lock */
	atomic { if                        /* notify: pop the sleeper */
		:: sleeping -> sleeping = false
		:: else -> skip
		fi }
	atomic { holds--; last = holds == 0 }
#ifndef NO_RELEASE_POST
	if
	:: last -> post_check()
	:: else -> skip
	fi
#endif
}

active proctype worker()
{
	/* asleep for good is a valid end */
end_idle:
	do
	:: atomic { queued && !ran && forever ->
			queued = false; sleeping = false }
		/* the root: waits on an event nobody sets, no deadline
		 * (test_vclock's blocked_forever: only the deadlock check
		 * ends it) */
		ran = true
	:: atomic { queued && !ran && !forever ->
			queued = false; sleeping = false }
		/* the root: spawns its busy sibling, then waits in
		 * weft_wait_all_tasks_blocked (registers, parks) */
		busy_queued = true;
		atomic { my_seq = wseq; wseq++; waiting = true }
		ran = true
	:: atomic { busy_queued -> busy_queued = false; sleeping = false }
		busy_done = true
	:: atomic { queued && ran -> queued = false; sleeping = false }
		break /* the root, woken, returns */
	:: atomic { !queued && !busy_queued && !sleeping -> sleeping = true }
		post_check() /* the last sleeper */
	od
}

active proctype check()
{
	byte e1, h, snap;
	bool quiet;
end_wait:
	do
	:: atomic { pending > 0 -> pending--; check_queued = false }
		e1 = epoch;
		snap = wseq;
		atomic { h = holds;
			quiet = sleeping && !queued && !busy_queued }
		if
		:: quiet ->
			atomic {
				if
#ifdef WAKE_ALL
				:: waiting ->
#else
				:: waiting && my_seq < snap ->
#endif
					/* Trio: every other task is blocked */
					assert(busy_done);
					waiting = false;
					woken = true;
					queued = true;
					sleeping = false /* its notify */
				:: waiting && my_seq >= snap ->
					skip /* stale: stand down */
				:: !waiting && h == 0 ->
					/* timer_deadlock, no deadline */
					if
					:: epoch == e1 && listed && !cancelled &&
						!woken ->
						assert(ran);
						cancelled = true;
						queued = true; /* woken */
						sleeping = false
					:: else -> skip
					fi
				:: else -> skip /* held: stand down */
				fi
			}
		:: else -> skip
		fi
	od
}

/* Nothing can move any more: the root must not be left waiting after
 * its sibling ended, nor parked for good without the deadlock report. */
active proctype monitor()
{
	timeout -> assert(!(waiting && busy_done) && !(forever && !cancelled))
}
