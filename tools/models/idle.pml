/* idle.pml: idle workers' sleep and notify, runtime/core/idle.c.
 *
 * Models
 *   idle.c   weft__idle_find_or_sleep (the spinner limit, the bounded
 *            spin, weft__idle_stop_spinning on success), idle_sleep
 *            (list, stop spinning, fence, last check, unlist or consume
 *            the wake-up), weft__idle_notify (fence, the nspinning and
 *            nsleeping reads, the token CAS 0 -> 1, idle_pop_sleeper,
 *            idle_wake or giving the token back), idle_wake and the futex.
 *   sched.c  the worker loop (worker_main -> worker_next: worker_pick
 *            first, then weft__idle_find_or_sleep), weft__sched_spawn and
 *            weft__sched_ready's publish-then-notify, and
 *            worker_steal_more's notify after moving tasks.
 *
 * Processes and correspondence
 *   worker    NWORKERS of them, forever: take a task if one is queued
 *             (worker_pick, or the steal in the spin loop); running a
 *             task may spawn one (weft__sched_spawn: publish, then
 *             weft__idle_notify), up to SPAWNS in all, and may never
 *             switch out again (a CPU-bound task: its worker is gone for
 *             the others; at most NWORKERS - 1 of them); otherwise the
 *             find_or_sleep loop, statement for statement:
 *               - not spinning and 2 * nspinning < max(busy, 1): fetch_add
 *                 nspinning (seq_cst), spinning = true;
 *               - spinning: up to SPIN steal attempts (the time-bounded
 *                 spin), then idle_sleep; a found task ends the spin
 *                 through weft__idle_stop_spinning (fetch_sub seq_cst;
 *                 the last spinner notifies);
 *               - not spinning: one steal, then idle_sleep;
 *             idle_sleep: work visible -> return; lock, push on the
 *             sleepers list, nsleeping++, unlock; if spinning: fetch_sub
 *             nspinning; fence; work visible: lock, still listed ->
 *             unlist, nsleeping--, unlock, return; not listed -> consume
 *             the wake-up below; wait while wake_word == 0 (futex), then
 *             wake_word = 0, spinning = true.
 *   producer  the I/O thread's wake batch or a plain thread
 *             (weft__sched_ready off the workers): PRODUCED times,
 *             publish one task (injection queue) then weft__idle_notify.
 *   notify    inline, as in C: fence; nspinning != 0 or nsleeping == 0
 *             -> return; CAS nspinning 0 -> 1 or return; lock, pop a
 *             sleeper (nsleeping--), unlock; none: fetch_sub nspinning;
 *             else wake_word[w] = 1 (release) and futex wake.
 *   The mutex `idle->lock` is an atomic block (it protects the list and
 *   nsleeping's updates, which no one reads under it but the holder).
 *
 * Abstraction
 *   All queues (deques, injection queue) are one counter `work`: a steal
 *   or pick takes one if there is one, idle_work_visible reads it.
 *   Queues are checked one at a time in C, so a task moving between
 *   queues (steal-half, a pop pushed back) can be missed by a last
 *   check; each such move is made by an awake worker that keeps the task
 *   or notifies (worker_steal_more), so the abstraction keeps the cases
 *   that matter.  The spin is time-bounded in C; here it is SPIN
 *   attempts.  Shutdown (stopping, weft__idle_wake_all) and the stack
 *   trimming before sleeping are left out.
 *
 * Memory model
 *   Promela is sequentially consistent.  The C code gets the one
 *   ordering that matters from the two seq_cst fences
 *   (WEFT__IDLE_FENCE, checked in weft__idle_notify after the work was
 *   published and in idle_sleep after the listing and the spinning
 *   decrement; TSan builds use a seq_cst RMW of one word instead), which
 *   order the producer's publish before its nspinning/nsleeping loads
 *   and the sleeper's nsleeping increment (relaxed, under the mutex) and
 *   nspinning decrement (seq_cst) before its loads of the queues: the
 *   Dekker pair, sound to model as SC.  Every RMW of nspinning is
 *   seq_cst.  Not covered: worker_requeue (sched.c) reads nsleeping
 *   relaxed without a fence before notifying, so on real hardware a
 *   worker going to sleep at that moment can miss the requeued task;
 *   the task is on the requeuing worker's own deque, which runs it
 *   later, so only parallelism is lost (sched.c says so).
 *
 * Property: no lost notification.  When nothing can move any more
 *   (every worker asleep on its futex or inside a task that never
 *   switches out, the producers done), no task is queued: a worker that
 *   is free never sleeps while a task waits.  Also checked there: no
 *   spinning token is left behind (nspinning == 0 once everybody
 *   sleeps).  The model's only unbounded loops block (a worker with
 *   nothing to do ends asleep after SPIN attempts), so "eventually run"
 *   reduces to that check of the terminal states (the `timeout`
 *   monitor; check.sh's progress run proves there is no infinite
 *   execution).
 *
 * Finding.  As idle.c is today the model reaches every worker asleep
 * with a task queued (two producers, no task that hogs a worker):
 *   1. producer P1 publishes task A, fences, reads nspinning == 0 and
 *      nsleeping == 1 (worker W0 listed), takes the token (CAS 0 -> 1);
 *   2. W0, after its fence, sees A, unlists itself and takes A; P1's
 *      idle_pop_sleeper finds the list empty;
 *   3. W0 and W1 finish, list themselves, fence, find every queue empty
 *      and sleep on their futex words;
 *   4. producer P2 (the I/O thread's batch, a plain thread's ready)
 *      publishes task B, fences, reads nspinning == 1 (P1's token) and
 *      returns: "somebody started spinning: they will find it";
 *   5. P1 gives the token back (fetch_sub) and returns.
 * Nobody spins and both workers sleep with B queued until the next
 * notification, which may never come.  With one producer, a worker
 * spawning through weft__sched_spawn plays P2's part while its task runs
 * on without switching.  The fix, which idle.c now has (NOTIFY_RETRY,
 * the model's default): when idle_pop_sleeper finds nobody,
 * weft__idle_notify gives the token back and starts over (the fence
 * again, then the two loads), so a worker listed since then is woken;
 * the seq_cst fetch_sub then the fence make it the Dekker pair of step
 * 3's listing and fence.  -DNOTIFY_NO_RETRY models the code before the
 * fix; check.sh runs it to show the model still catches the bug.
 */

#ifndef NOTIFY_NO_RETRY
#define NOTIFY_RETRY
#endif

#ifndef NWORKERS
#define NWORKERS 2
#endif
#ifndef PRODUCED
#define PRODUCED 2	/* tasks published from outside the workers */
#endif
#ifndef SPAWNS
#define SPAWNS 1	/* tasks spawned by running tasks */
#endif
#ifndef SPIN
#define SPIN 1		/* steal attempts of one spin */
#endif
#ifndef PRODUCERS
#define PRODUCERS 1	/* threads outside the workers publishing tasks */
#endif
#ifndef HOGS
#define HOGS (NWORKERS - 1)	/* most tasks that never switch out */
#endif

byte work = 0;			/* queued tasks, all queues */
byte spawns = 0;
byte hogs = 0;			/* tasks that never switch out */
byte nspinning = 0;
byte nsleeping = 0;
bit listed[NWORKERS];		/* on the sleepers list */
bit spinning[NWORKERS];		/* w->spinning */
bit wake_word[NWORKERS];
byte producers_done = 0;

/* weft__idle_notify.  With NOTIFY_RETRY, the fix proposed in the
 * header: after giving the token back, look again. */
inline notify() {
	byte who;
	do
	:: nspinning != 0 || nsleeping == 0 -> break	/* after the fence */
	:: else ->
		if
		:: atomic { nspinning == 0 -> nspinning = 1 };	/* CAS */
			atomic {	/* idle_pop_sleeper, under the lock */
				who = 0;
				do
				:: who < NWORKERS && !listed[who] -> who++
				:: who < NWORKERS && listed[who] ->
					listed[who] = 0;
					nsleeping--;
					break
				:: who == NWORKERS -> break
				od
			};
			if
			:: who == NWORKERS ->	/* no sleeper */
				nspinning--;
#ifdef NOTIFY_RETRY
				skip		/* the fence, then again */
#else
				break
#endif
			:: else ->
				wake_word[who] = 1;	/* idle_wake */
				break
			fi
		:: atomic { nspinning != 0 -> skip }; break	/* CAS lost */
		fi
	od;
	who = 0
}

/* weft__idle_stop_spinning(w) */
inline stop_spinning(me) {
	if
	:: spinning[me] ->
		spinning[me] = 0;
		if
		:: atomic { nspinning == 1 -> nspinning = 0 }; notify()
		:: atomic { nspinning != 1 -> nspinning-- }
		fi
	:: else -> skip
	fi
}

/* Running a task: it may spawn one (weft__sched_spawn), and it may run
 * for ever without switching (up to NWORKERS - 1 such tasks), so the
 * other workers must take the rest. */
inline run_task() {
	if
	:: atomic { spawns < SPAWNS -> spawns++; work++ }; notify()
	:: true -> skip
	fi;
	if
	:: atomic { hogs < HOGS -> hogs++ };
end_hog:	false
	:: true -> skip
	fi
}

proctype worker(byte me) {
	byte i;
	bit got;
	assert(me < NWORKERS);
loop:
	/* worker_pick: own deque, run-next, injection queue */
	if
	:: atomic { work > 0 -> work-- }; run_task(); goto loop
	:: atomic { work == 0 -> skip }
	fi;
	/* weft__idle_find_or_sleep */
find:
	if
	:: !spinning[me] ->
		if	/* relaxed hints: the spinner limit */
		:: 2 * nspinning < (NWORKERS - nsleeping > 1 ->
				NWORKERS - nsleeping : 1) ->
			nspinning++;	/* fetch_add, seq_cst */
			spinning[me] = 1
		:: else -> skip
		fi
	:: else -> skip
	fi;
	got = 0;
	if
	:: spinning[me] ->
		i = 0;
		do
		:: i < SPIN ->
			i++;
			if
			:: atomic { work > 0 -> work-- }; got = 1; break
			:: atomic { work == 0 -> skip }
			fi
		:: else -> break
		od;
		if
		:: got -> stop_spinning(me)
		:: else -> skip
		fi
	:: else ->
		if
		:: atomic { work > 0 -> work-- }; got = 1
		:: atomic { work == 0 -> skip }
		fi
	fi;
	if
	:: got -> run_task(); goto loop
	:: else -> skip
	fi;
	/* idle_sleep */
	if
	:: work > 0 -> goto find		/* idle_work_visible */
	:: else -> skip
	fi;
	atomic {				/* under idle->lock */
		assert(!listed[me]);
		listed[me] = 1;
		nsleeping++
	};
	if
	:: spinning[me] -> spinning[me] = 0; nspinning--	/* seq_cst */
	:: else -> skip
	fi;
	/* seq_cst fence */
	if
	:: work > 0 ->				/* idle_work_visible */
		if
		:: atomic { listed[me] -> listed[me] = 0; nsleeping-- };
			goto find
		:: atomic { !listed[me] -> skip }	/* wake-up coming */
		fi
	:: else -> skip
	fi;
end_sleep:
	wake_word[me] == 1;			/* futex wait */
	wake_word[me] = 0;
	spinning[me] = 1;			/* the waker's token */
	goto find
}

proctype producer() {
	byte n = 0;
	do
	:: n < PRODUCED ->
		n++;
		work++;				/* publish */
		notify()
	:: else -> break
	od;
	producers_done++
}

proctype monitor() {
end_wait:
	timeout -> assert(work == 0 && producers_done == PRODUCERS && nspinning == 0)
}

init {
	atomic {
		byte i = 0;
		do
		:: i < NWORKERS -> run worker(i); i++
		:: else -> break
		od;
		i = 0;
		do
		:: i < PRODUCERS -> run producer(); i++
		:: else -> break
		od;
		run monitor()
	}
}
