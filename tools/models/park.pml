/* park.pml: the park/wake protocol of runtime/core/task.c with the
 * switch-out post of runtime/core/sched.c.
 *
 * Models
 *   task.c   weft__task_park_prepare, weft__task_park_commit(_on),
 *            task_wake_claim behind weft__task_wake and
 *            weft__task_wake_cancel, and weft__task_create's store of the
 *            park word when a record starts a new life.
 *   sched.c  weft__sched_switch_out (the fiber leaves its stack and
 *            whatever runs next on the worker performs its post),
 *            worker_after_switch's WEFT__POST_PARK case (fetch_add PARKED,
 *            weft__sched_spawn when WOKEN was already set), and the
 *            workers that take a runnable task and switch into it.
 *   cancel.c scope_propagate_locked's seq_cst store of eff_cancelled
 *            followed by weft__task_wake_cancel, and the task's
 *            weft__scope_is_cancelled check after the prepare (as in
 *            sync/waitq.c and every cancellable park).
 *
 * Processes and correspondence
 *   task      NPARK parks.  Each: prepare (one seq_cst store of gen + 1,
 *             CANCELLABLE or not, chosen nondeterministically); publish
 *             the generation to its wake source (`src`: a wait node's gen
 *             written under a primitive's lock, an I/O op's word); for a
 *             cancellable park, the seq_cst load of eff_cancelled (set:
 *             return without committing, as waitq returns -ECANCELED);
 *             commit: acquire load of the word, WOKEN set: go on without
 *             switching; else switch out (oncpu = 0: the fiber is off its
 *             stack) leaving the post, and wait to be switched into.
 *             Between the parks the record may end one life and start
 *             another (weft__task_create: relaxed store of gen << SHIFT,
 *             bits cleared), chosen nondeterministically.
 *   post_park worker_after_switch on the stack switched to, one process
 *             per switch-out (w->post is the worker's, consumed before
 *             anything else runs there): fetch_add PARKED (acq_rel), with
 *             the assertion that PARKED was clear (so it is an or); old
 *             WOKEN: weft__sched_spawn (queue).
 *   waker     one wake per park: waits until the task published
 *             generation >= k, then weft__task_wake(k).  If the park k
 *             ended by cancellation meanwhile, this is a stale wake of an
 *             old generation, like an I/O completion arriving late.
 *   canceller eff_cancelled = 1 (seq_cst), then weft__task_wake_cancel.
 *   worker    NWORKERS of them: take the task from the run queues and
 *             switch into it (oncpu = 1).
 *   task_wake_claim: the seq_cst load, then a loop of CAS (seq_cst on
 *   success; the failure reloads), each one Promela step.
 *
 * Abstraction
 *   One task; the run queues (deque, run-next, injection queue) are one
 *   counter `queued`, since which queue holds the task does not matter
 *   here; generations are small numbers (C: 61 bits, never wrapping);
 *   the word is gen * 8 + CANCELLABLE * 4 + PARKED * 2 + WOKEN, as in
 *   task.h.  weft__task_wake_deferred (readied later from a wake list)
 *   is weft__task_wake with a delay before the enqueue, which the
 *   interleavings already cover.
 *
 * Memory model
 *   Promela is sequentially consistent.  The decisions are made by
 *   read-modify-writes of the one park word (the wakers' CAS, the post's
 *   fetch_add), which C11 totally orders whatever their memory order, so
 *   SC loses nothing there; a stale plain load (commit's fast path, the
 *   claim's first load) only makes a CAS fail and retry, or the task
 *   switch out and the fetch_add decide.  The one cross-location pattern
 *   is the park/cancel Dekker pair: prepare's store of the word then the
 *   load of eff_cancelled, against the canceller's store of
 *   eff_cancelled then load of the word.  SC is sound only if all four
 *   are seq_cst in C, and they are: weft__task_park_prepare (store),
 *   weft__scope_is_cancelled (load), scope_propagate_locked (store),
 *   task_wake_claim (load).
 *
 * Properties
 *   - a task is switched into only while it is off its stack and has
 *     PARKED published (never on two workers at once): assertion at the
 *     switch-in;
 *   - it is made runnable at most once per park: assertion at enqueue;
 *   - a wake claims only the generation it names, never a later park:
 *     assertion in the claim (the ghost `claimed_gen`), and a resumed
 *     task finds its own generation woken;
 *   - no lost wake-up: every park ends (by a wake, or by the cancel
 *     check); when nothing can move any more (timeout) the task is done.
 */

#ifndef NPARK
#define NPARK 3
#endif
#ifndef NWORKERS
#define NWORKERS 2
#endif

#define WOKEN 1
#define PARKED 2
#define CANCELLABLE 4
#define GEN(w) ((w) / 8)

byte park = 0;		/* the park word */
byte src = 0;		/* the generation handed to the wake source */
bit cancelled = 0;	/* the task's scope's eff_cancelled */
bit oncpu = 1;		/* the task's fiber is on a stack (running) */
byte queued = 0;	/* times the task sits in a run queue */
byte readied = 0;	/* times made runnable in the current park */
bit task_done = 0;

/* task_wake_claim(t, gen, need_cancel, &ready) then, when ready, the
 * enqueue of weft__task_wake / weft__task_wake_cancel. */
inline wake(gen, need_cancel) {
	byte old;
	old = park;				/* seq_cst load */
	do
	:: old & WOKEN -> break
	:: else ->
		if
		:: need_cancel && !(old & CANCELLABLE) -> break
		:: !need_cancel && GEN(old) != gen -> break
		:: else ->
			if		/* CAS old -> old | WOKEN */
			:: atomic { park == old -> park = old | WOKEN;
				/* the claimed park is the one named */
				assert(need_cancel || GEN(park) == gen) };
				if
				:: old & PARKED -> ready()
				:: else -> skip
				fi;
				break
			:: atomic { park != old -> old = park }
			fi
		fi
	od;
	old = 0
}

/* weft__sched_ready / weft__sched_spawn: the task joins a run queue. */
inline ready() {
	d_step {
		assert(!oncpu && (park & PARKED) && (park & WOKEN));
		readied++;
		assert(readied == 1);
		queued++
	}
}

proctype task() {
	byte k = 1, word;
	bit canc;
	do
	:: k <= NPARK ->
		/* A new life of the record (weft__task_create keeps only
		 * the generation), or the same task parking again. */
		if
		:: k > 1 -> park = GEN(park) * 8	/* relaxed store */
		:: true -> skip
		fi;
		/* weft__task_park_prepare: relaxed load, seq_cst store */
		if
		:: canc = 1
		:: canc = 0
		fi;
		d_step { readied = 0; word = GEN(park) + 1 };
		park = word * 8 + canc * CANCELLABLE;
		src = word;		/* the wake source learns the gen */
		if
		:: canc && cancelled ->	/* weft__scope_is_cancelled */
			goto next
		:: else -> skip
		fi;
		/* weft__task_park_commit_on */
		if
		:: park & WOKEN -> goto next	/* acquire load */
		:: else -> skip
		fi;
		/* weft__sched_switch_out: off the stack, post left */
		atomic { oncpu = 0; run post_park() };
		oncpu == 1;		/* switched into by a worker */
		assert(GEN(park) == word && (park & WOKEN) &&
			(park & PARKED));
next:
		k++
	:: else -> break
	od;
	task_done = 1
}

/* worker_after_switch, WEFT__POST_PARK: run by whatever runs next on the
 * worker the fiber left (one process per switch-out). */
proctype post_park() {
	byte old;
	/* fetch_add of PARKED, acq_rel: the same as an or, since PARKED is
	 * clear here (asserted) */
	atomic { old = park; assert(!(old & PARKED)); park = park + PARKED };
	if
	:: old & WOKEN -> ready()	/* weft__sched_spawn */
	:: else -> skip
	fi
}

proctype waker() {
	byte k = 1, g;
	do
	:: k <= NPARK ->
		src >= k;		/* the wake source exists */
		g = k;
		wake(g, 0);
		k++
	:: else -> break
	od
}

proctype canceller() {
	cancelled = 1;			/* seq_cst store */
	wake(0, 1)
}

proctype worker() {
end_idle:
	do
	:: atomic {
		queued > 0 ->
		queued--;
		assert(!oncpu && (park & PARKED));
		oncpu = 1
	   }
	od
}

/* No lost wake-up: when nothing can move, the task has ended. */
proctype monitor() {
end_wait:
	timeout -> assert(task_done)
}

init {
	atomic {
		run task();
		run waker();
		run canceller();
		byte i = 0;
		do
		:: i < NWORKERS -> run worker(); i++
		:: else -> break
		od;
		run monitor()
	}
}
