#define _GNU_SOURCE /* pthread_setname_np */
/* Workers: the scheduling loop.
 *
 * Design
 * ------
 * Each worker thread runs a loop on its own stack (the "scheduler
 * context") that picks a task and switches into it.  A fiber that parks,
 * yields or exits picks the next task itself (worker_pick, the loop's own
 * choice short of stealing and sleeping) and switches straight into it;
 * only when its worker has nothing queued (or, for a yield, when a
 * deadline is armed: the loop fires due ones) does it switch back to the
 * loop, which steals or sleeps.  Either way, what the fiber could not do
 * while still on its own stack (publish a park, requeue a yield, free an
 * exited fiber's stack: its "post") is done by whatever runs next on the
 * worker, right after the switch (weft__sched_arrived, or the loop), and
 * only then may another worker resume it.  The direct switch halves the
 * jumps of a hand-off (B5: two tasks waking each other) and keeps the
 * return-address predictor in step (see weft__sched_switch_out).
 *
 * Where the next task comes from, in order:
 *   1. every 61st pick, the injection queue first (so wake-ups from the I/O
 *      thread and foreign threads cannot starve behind local work; Go and
 *      Tokio use the same interval);
 *   2. the run-next slot: a task made runnable by the task that just ran
 *      (a child ending wakes its joining parent) runs next, for locality;
 *      at most 3 times in a row while other tasks are queued here, so
 *      two tasks waking each other cannot starve the rest (Tokio's cap);
 *   3. the own deque: newest first (fork-join: depth-first, small memory),
 *      except at the first deque pick after every 61st pick, which takes
 *      the oldest: a task that keeps spawning children and parking on
 *      them (a supervisor restarting a child that fails at once) would
 *      otherwise keep every older task of the deque from ever running
 *      at one worker, where nobody steals them; and except while a
 *      yielded task is queued in it.  A yield puts the task
 *      at the bottom of the deque and remembers its index (fifo_mark);
 *      until that task has left the deque, picks take the oldest task
 *      instead, so every task that was queued on the worker when it
 *      yielded runs (or is stolen) before it does, and yielding tasks
 *      round-robin.  Taking the oldest only once, right after the yield,
 *      was not enough: the next pick, newest first again, took the
 *      yielder back ahead of the tasks still queued before it.  Right
 *      after a yield the injection queue is also tried first (wake-ups
 *      from outside should not wait behind yielding CPU work);
 *   4. the injection queue;
 *   5. stealing the oldest task of a random victim (and up to half of
 *      the rest of its deque, into the own deque), then spinning for a
 *      bounded time, then sleeping (idle.c).
 *
 * Seeded schedules (baton.c, docs/semantics.md rule 47): a worker of a
 * runtime with a seed runs worker_loop_seeded instead of the loop below:
 * one pick per turn of the runtime's baton, never a direct switch
 * (switch_direct is false, so every switch-out comes back to the loop,
 * its scheduling point), steal victims and the run-next slot's place
 * from a generator seeded from the seed, and no spinning or sleeping of
 * idle.c: a worker with nothing to run passes the baton on.
 *
 * Fibers migrate: a parked task is made runnable on whichever worker woke
 * it, so the code of a task never keeps a worker pointer across a switch
 * (weft__sched_current is re-read at every call: a volatile asm read of
 * the thread pointer on x86_64 and aarch64, a call that is never inlined
 * elsewhere; see sched.h).
 *
 * Run slices (core/group.c, "Run time"): a switch-out ends the departing
 * task's slice with one read of its clock (weft__task_slice_charge: a
 * load of the run-time sampler's clock, or the cycle counter in a
 * WEFT_GROUP_CPU_TIME subtree), and the task switched into next starts
 * its slice from that read (a task counted exactly from its own counter
 * read); from the loop a slice starts afresh.  A join that runs children inline charges them
 * to their group as one stretch (core/group.c's group_join, around
 * weft__sched_help_join).
 *
 * Deque items are task records or frames (core/frame.c: a child that
 * its group's owner spawned, not a task yet, tagged in bit 0).  Every
 * place that takes an item to run it as a fiber (worker_pick,
 * weft__sched_steal, idle.c) makes a frame its task record there
 * (weft__sched_item_task); moves between deques keep it a frame; the
 * join's inline pops run the group's own frames in records of the
 * worker's inline pool.
 *
 * A child run inline (weft__sched_help_join) is a plain call on its
 * parent's stack.  If it panics (panic.c), it cannot switch out for good
 * like a fiber: the parent's frames are below its own.  The join that runs
 * children inline sets a jump buffer first (one per join, not per child),
 * which the stack records as its inline_exit; the panicking child, its end
 * done, jumps back there (weft__sched_exit_abandoned) and the join goes
 * on as if it had returned.
 *
 * Invariants
 *   1. Only the owner pushes and pops its deque; thieves only steal.
 *   2. A task is switched into by at most one worker at a time: it is in
 *      exactly one queue or slot between being made runnable and running.
 *   3. `post` is set by the fiber immediately before switching out and
 *      consumed immediately after, on the stack switched to, by the same
 *      thread: every resume point (the loop, weft__sched_arrived after a
 *      switch returns, a new fiber's entry) consumes it first.
 *   4. While `fifo` is set and the deque has not passed fifo_mark, the
 *      deque holds the last yielded (or over-cap run-next) task at index
 *      fifo_mark, and the owner takes only from the top: the tasks above
 *      it are the ones queued before it.  The owner's bottom pops in
 *      between (weft__sched_help_join) put back what is not theirs, at
 *      the same index, or, for the deque's last item, whose pop moved
 *      top past it, one higher, and the mark moves with it: the mark
 *      stays true.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "core/baton.h"
#include "core/frame.h"
#include "core/group.h"
#include "core/inspect.h"
#include "core/records.h"
#include "core/sanitizer.h"
#include "core/sched.h"
#include "core/stack.h"
#include "core/stall.h"
#include "core/task.h"
#include "core/timer.h"
#include "core/trace.h"
#include "runtime.h"

#define WORKER_INJECT_INTERVAL 61
#define WORKER_RUNNEXT_CAP 3

/* Initial-exec: the variable lives in the static TLS block, at the same
 * offset from the thread pointer in every thread (sched.h). */
static __thread weft__worker_t *worker_tls
	__attribute__((tls_model("initial-exec")));

#if WEFT__WORKER_TP_READ
intptr_t weft__sched_tls_off;

/* Before main (or at dlopen), so that no thread can ask for its worker
 * before the offset is known. */
__attribute__((constructor)) static void worker_tls_off_init(void)
{
	weft__sched_tls_off = (intptr_t)((char *)&worker_tls -
		weft__sched_thread_pointer());
}
#endif

/* Not inlinable, and the asm hides the TLS address from the optimiser, so
 * the value is re-read after every switch (gcc would otherwise keep the
 * TLS address in a callee-saved register across the switch). */
__attribute__((noinline)) weft__worker_t *weft__sched_current_slow(void)
{
	weft__worker_t **p = &worker_tls;
	__asm__ volatile("" : "+r"(p));
	return *p;
}

/* {======================================================= queues */

static bool worker_is_ours(weft__worker_t *w, struct weft_task *t)
{
	return w != NULL && w->rt == t->rt;
}

/* The batch of a non-worker thread (see weft__sched_batch_begin).  Only
 * touched by that thread, which never runs fibers, so TLS is safe. */
static __thread struct worker_batch {
	bool active;
	struct weft_task *head, *tail;
	size_t n;
} worker_batch;

void weft__sched_batch_begin(void)
{
	worker_batch.active = true;
}

void weft__sched_batch_end(struct weft_runtime *rt)
{
	struct worker_batch *b = &worker_batch;
	b->active = false;
	if (b->n == 0)
		return;
	/* Counted before the tasks are published: once one runs, the run
	 * may end and a reader expects its wake counted.  relaxed: a
	 * counter (stats.h); one RMW per batch, on the I/O thread. */
	atomic_fetch_add_explicit(&rt->stats.wakes_io, b->n,
		memory_order_relaxed);
	weft__inject_push_list(&rt->inject, b->head, b->tail, b->n);
	b->head = b->tail = NULL;
	b->n = 0;
	weft__idle_notify(rt);
}

/* The injection queue's oldest task, counted; NULL if empty. */
static inline struct weft_task *worker_inject_pop(weft__worker_t *w)
{
	struct weft_task *t = weft__inject_pop(&w->rt->inject);
	if (t)
		weft__stats_inc(&w->stats.inject_pops);
	return t;
}

/* Both functions read t->rt before publishing t: once t is in a queue,
 * another worker may run it to completion and free it.  For the same
 * reason they count before publishing (stats.h). */
void weft__sched_ready_slow(struct weft_task *t)
{
	weft__worker_t *w = weft__sched_current();
	struct weft_runtime *rt = t->rt;
	if (!worker_is_ours(w, t)) {
		struct worker_batch *b = &worker_batch;
		if (w == NULL && b->active) {
			/* The I/O thread: counted per batch (batch_end). */
			t->next = NULL;
			if (b->tail)
				b->tail->next = t;
			else
				b->head = t;
			b->tail = t;
			b->n++;
			return;
		}
		/* A plain thread: a slow path (the notification's fence
		 * follows), so one relaxed RMW on a runtime counter. */
		atomic_fetch_add_explicit(&rt->stats.wakes_thread, 1,
			memory_order_relaxed);
		weft__inject_push(&rt->inject, t);
		weft__idle_notify(rt);
		return;
	}
	weft__sched_count_wake(w, t);
	struct weft_task *old = w->runnext;
	w->runnext = t;
	if (old) {
		if (weft__deque_push(&w->deque, old) < 0)
			weft__inject_push(&w->rt->inject, old);
		weft__idle_notify(w->rt);
	}
}

/* Queues t where any worker may take it (w's deque, else the injection
 * queue) and notifies an idle worker. */
static void worker_queue(weft__worker_t *w, struct weft_task *t)
{
	struct weft_runtime *rt = t->rt;
	if (!worker_is_ours(w, t) || weft__deque_push(&w->deque, t) < 0)
		weft__inject_push(&rt->inject, t);
	weft__idle_notify(rt);
}

/* worker_queue, with the spawn counted; one test of the worker (B1). */
void weft__sched_spawn(struct weft_task *t)
{
	weft__worker_t *w = weft__sched_current();
	struct weft_runtime *rt = t->rt;
	/* Before t is published: then it may run and end at once. */
	if (WEFT__UNLIKELY(rt->trace))
		weft__trace_spawn(rt, w, t);
	if (__builtin_expect(worker_is_ours(w, t), 1)) {
		weft__stats_inc(&w->stats.spawned);
		/* Notify only when the deque goes from empty to not empty: a
		 * worker that went to sleep after the older items were pushed
		 * saw them in its last check (idle.c, invariant 3), and one
		 * that went to sleep before was notified by the push that
		 * made the deque non-empty.  If a thief took the last older
		 * item meanwhile, that thief is awake and looks again after
		 * it; this worker runs the new item itself otherwise.  The
		 * notification's fence is then paid once per burst, not once
		 * per spawn (B1: the deque holds a pending child per level of
		 * the inline recursion). */
		bool had = weft__deque_size_approx(&w->deque) != 0;
		if (weft__deque_push(&w->deque, t) < 0)
			weft__inject_push(&rt->inject, t);
		else if (had)
			return;
	} else {
		/* relaxed: a counter; not a worker, a slow path. */
		atomic_fetch_add_explicit(&rt->stats.spawned, 1,
			memory_order_relaxed);
		weft__inject_push(&rt->inject, t);
	}
	weft__idle_notify(rt);
}

struct weft_task *weft__sched_item_task(weft__worker_t *w, void *item)
{
	struct weft_task *t = weft__frame_item_task(item);
	if (WEFT__UNLIKELY(t == NULL)) {
		t = w->runnext;
		w->runnext = NULL;
	}
	return t;
}

static void worker_after_switch(weft__worker_t *w);
static void worker_after_other(weft__worker_t *w, enum weft__post post);
static inline void worker_after_park(weft__worker_t *w, struct weft_task *t);
static inline void worker_qs_step(weft__worker_t *w);
static inline struct weft_task *worker_pick(weft__worker_t *w, bool on_fiber);
static int worker_give_stack(weft__worker_t *w, struct weft_task *t);
static inline void worker_switch_in(weft__worker_t *w, struct weft_task *t);

/* Performs the post a fiber left on this worker, if any (the scheduler
 * loop clears it when the fiber switched to the loop instead).  A park's
 * post, the one of every hand-off (B5), is inline here; the others go
 * through worker_after_switch. */
static inline __attribute__((always_inline)) void worker_arrived(void)
{
	weft__worker_t *w = weft__sched_current();
	enum weft__post post = w->post;
	/* One compare for the posts of yields and exits, as before the park's
	 * went inline (B6), two for a park's. */
	_Static_assert(WEFT__POST_NONE < WEFT__POST_PARK &&
			WEFT__POST_PARK < WEFT__POST_YIELD &&
			WEFT__POST_YIELD < WEFT__POST_REQUEUE &&
			WEFT__POST_REQUEUE < WEFT__POST_EXIT,
		"a park's post is the lowest but none");
	if (post > WEFT__POST_PARK)
		worker_after_other(w, post);
	else if (post == WEFT__POST_PARK)
		worker_after_park(w, w->post_task);
}

/* The switch-out of self, whose slice was charged: leaves the post,
 * switches to the next task or the loop, and on resuming performs the
 * post left by whoever switched to self.  Always inline, in the two
 * entries below: weft__sched_park is one frame from the primitive to the
 * jump (B5: every frame above the switch costs its entry and exit on
 * both sides of the hand-off). */
static inline __attribute__((always_inline)) void
worker_leave(weft__worker_t *w, struct weft_task *self, enum weft__post post)
{
	/* Offered halves of weft_par calls get tasks before anything else
	 * runs here (core/par.c, invariant 4). */
	if (WEFT__UNLIKELY(w->par.head != 0))
		weft__par_flush(w);
	w->post = post;
	w->post_task = self;
	self->coop_used = 0; /* others get the worker now (see task.h) */
	worker_qs_step(w);   /* even: the fiber is leaving */
	weft__fiber_t *to = &w->sched;
	bool resume = false;
	/* Switch straight to the task the loop would pick next (worker_pick:
	 * never steals nor sleeps), which performs our post on its own stack
	 * (worker_arrived).  A yield picks the oldest task first and is
	 * requeued after (the loop requeues first, so it can pick the
	 * yielder itself when nothing else is queued: that case, and any
	 * deadline in the wheel, which the loop fires at yields, go through
	 * the loop). */
	/* A seeded worker goes back to its loop at every switch-out: that is
	 * its scheduling point, where the baton moves (baton.c); the one
	 * branch a seed costs here when off. */
	bool direct = w->switch_direct;
	if (post == WEFT__POST_YIELD && direct) {
		direct = !weft__timer_any(&w->rt->timer);
		if (direct) {
			w->post = WEFT__POST_REQUEUE;
			w->take_oldest = true;
		}
	}
	if (direct) {
		struct weft_task *next = worker_pick(w, true);
		resume = next && next->stack != NULL;
		if (next && !resume && worker_give_stack(w, next) < 0) {
			w->handoff = next; /* the loop tries again */
			next = NULL;
		} else if (next) {
			worker_switch_in(w, next);
			to = &next->cont;
		}
	}
	if (post == WEFT__POST_EXIT)
		weft__fiber_switch_final(&self->cont, to);
	/* How the jump resumes (fiber_x86_64.S): a parked task resumes
	 * where this one leaves, inside this function, usually under the
	 * same chain of callers (two tasks that park in the same primitive),
	 * so `ret` finds its return address predicted and so do the returns
	 * that follow.  The loop and a new task's trampoline never match:
	 * there the indirect jump predicts better. */
	weft__fiber_switch_inl(&self->cont, to, resume);
	worker_arrived();
}

void weft__sched_switch_out(struct weft_task *self, enum weft__post post)
{
	weft__worker_t *w = weft__sched_current();
	/* Run time (core/group.c, "Run time"): self's slice ends here; a
	 * task switched into next starts its own from the same read (a load
	 * of the sampler's clock, unless counted exactly). */
	weft__task_slice_charge(w, self);
	worker_leave(w, self, post);
}

void weft__sched_exit(struct weft_task *self)
{
	weft__worker_t *w = weft__sched_current();
	/* The end has already charged the task's time to its group, which
	 * may be gone by now (as may a weft_par call's record, core/par.c):
	 * the last few instructions are only cut, never folded, and the
	 * next task's slice starts from the same read. */
	(void)weft__task_slice_cut(w, self->acct);
	worker_leave(w, self, WEFT__POST_EXIT);
}

void weft__sched_park(struct weft_task *self, const char *what, unsigned kind,
	const void *on)
{
	weft__worker_t *w = weft__sched_current();
	/* As in weft__sched_switch_out; the cut leaves the sampler's clock,
	 * as read for it, in slice_start (core/group.c, "Run time"). */
	weft__task_slice_charge(w, self);
	/* Relaxed: introspection only (inspect.c reads insp_wait
	 * atomically, and insp_on and insp_since only while it holds this
	 * park pinned, which orders them through the PARKED hand-off). */
	atomic_store_explicit(&self->insp_wait, what, memory_order_relaxed);
	atomic_store_explicit(&self->insp_on, on, memory_order_relaxed);
	/* When it parked, for the dump's "parked for": the sampler's clock
	 * the cut just read (at most a period early: core/cpuclock.h), so a
	 * park reads one clock; the cycle counter (about 10 ns) when the
	 * sampler is off and its clock stands still. */
	uint64_t since = __builtin_expect(w->rt->cpuclock.period_ns != 0, 1)
		? w->slice_start
		: weft__tick_now();
	atomic_store_explicit(&self->insp_since,
		since << WEFT__WAIT_KIND_BITS | kind, memory_order_relaxed);
	worker_leave(w, self, WEFT__POST_PARK);
	atomic_store_explicit(&self->insp_wait, NULL, memory_order_relaxed);
}

void weft__sched_arrived(void)
{
	worker_arrived();
}

/* Enough stack left to run a child on it?  Half the stack, measured from
 * the current frame down to the lowest usable byte. */
static bool worker_stack_room(struct weft_task *self)
{
	if (self->stack == NULL)
		return false;
	char *here = __builtin_frame_address(0);
	char *lo = self->stack->lo;
	return here > lo && (size_t)(here - lo) > self->stack->size / 2;
}

/* The jump back from a panicking child run inline to the frame of
 * weft__sched_help_join that runs it (weft__sched_exit_abandoned).  gcc's
 * __builtin_setjmp saves three words (frame pointer, stack pointer,
 * resume label) and makes the function keep its registers in its frame;
 * one per weft__sched_help_join that runs a child, not one per child.
 * Its cost, measured on B1 fib at 1 worker (every child runs inline, one
 * per join): about 35 instructions per spawn under callgrind (+3% of
 * ~1100); the wall-clock medians, on a shared and loaded machine, moved
 * less than their run-to-run spread (146 vs 152 ms, 6 alternating runs).
 * Keeping the jump buffer in a small function of its own, or per child,
 * measured worse (the calls around it cost more than the spills).
 * Under TSan, libc's _setjmp/_longjmp instead: TSan intercepts them and
 * unwinds its shadow call stack to the jump's target, which it cannot do
 * for the builtin pair (the abandoned frames would stay on the parent's
 * shadow stack). */
#ifdef WEFT__TSAN
#include <setjmp.h>
typedef jmp_buf inline_jmp_t;
#define INLINE_EXIT_SET(b) _setjmp(b)
#define INLINE_EXIT_JUMP(b) _longjmp(b, 1)
#else
typedef void *inline_jmp_t[5];
#define INLINE_EXIT_SET(b) __builtin_setjmp(b)
#define INLINE_EXIT_JUMP(b) __builtin_longjmp(b, 1)
#endif

/* What the stack's inline_exit points at while a parent runs children
 * inline: where to jump, and which child jumped (written by the jumper). */
struct inline_exit {
	inline_jmp_t buf;
	struct weft_task *child;
};

/* Starts t inline on self's stack: t borrows the parent's stack and its
 * context descriptor (stack bounds, sanitizer fiber handle) for the
 * switches it may make while parked. */
static inline void worker_inline_begin(struct weft_task *self,
	struct weft_task *t)
{
	t->stack = self->stack;
	t->stack_borrowed = true;
	t->cont = self->cont;
	/* An overflow report names the task running at the fault. */
	t->stack->owner_name = t->name;
	weft__worker_t *w = weft__sched_current();
	w->current = t;
	weft__stats_inc(&w->stats.inline_run);
}

/* t, run inline, returned or jumped back after its end (a panic). */
static inline void worker_inline_end(struct weft_task *self,
	struct weft_task *t)
{
	/* Re-read: the child may have parked and resumed elsewhere. */
	weft__sched_current()->current = self;
	self->stack->owner_name = self->name;
	t->stack = NULL;
	/* An owed child run by its group's owner: never counted in the
	 * group's word, so its end did not count down (task.c); it is
	 * settled here (core/group.c, "Owed children"). */
	if (t->owed)
		t->group->owed--;
	/* The run reference; the record may stay for the next inline child
	 * (core/frame.c, "The inline pool").  Re-read the worker: as
	 * above. */
	weft__frame_inline_put(weft__sched_current(), t);
}

/* The next child of g to run inline on the joiner's stack, or NULL.  Always
 * inlined: as a call of its own (twice per join) it cost B1 fib about 35
 * instructions per spawn under callgrind. */
static inline __attribute__((always_inline)) struct weft_task *
worker_inline_next(struct weft_group *g)
{
	/* relaxed: a hint; a stale count only ends the inline runs early
	 * (the join still waits) or costs one more pop. */
	uint64_t word = atomic_load_explicit(&g->word, memory_order_relaxed);
	if (weft__group_count(word) + g->owed <= 0)
		return NULL;
	weft__worker_t *w = weft__sched_current();
	/* The index of the item a pop takes: bottom - 1. */
	int64_t at = weft__deque_next_index(&w->deque) - 1;
	void *item = weft__deque_pop(&w->deque);
	if (item == NULL)
		return NULL;
	struct weft_task *t = item;
	if (weft__frame_is(item)) {
		/* A frame (core/frame.c): g's own is run inline in a record
		 * of the inline pool (NULL: it failed for want of one, and
		 * the join waits on). */
		struct weft__frame *f = weft__frame_of(item);
		if (f->g == g)
			return weft__frame_inline_task(w, f);
	} else if (t->group == g && t->stack == NULL && t->start == NULL) {
		return t;
	}
	/* Not ours to run: put it back.  At the same index, but for
	 * the deque's last item: its pop claimed it by moving top
	 * past it (Chase-Lev's race with the thieves), so it goes
	 * back one index higher.  If it is the yielded task fifo_mark
	 * names, the mark follows it (invariant 4): left behind, it
	 * read as passed, picks went back to newest first, and a
	 * yielding task at the top starved under tasks that keep
	 * spawning and waking each other (a supervisor's restart
	 * storm at one worker). */
	int64_t back = weft__deque_next_index(&w->deque);
	if (weft__deque_push(&w->deque, item) < 0) {
		/* The injection queue links records: a frame
		 * becomes one (or fails, and is done). */
		if ((t = weft__frame_item_task(item)) != NULL) {
			weft__inject_push(&w->rt->inject, t);
			weft__idle_notify(w->rt);
		}
	} else if (w->fifo && w->fifo_mark == at && back != at) {
		w->fifo_mark = back;
	}
	return NULL;
}

void weft__sched_help_join(struct weft_task *self, struct weft_group *g)
{
	/* Every child below runs from this frame, at the same depth: the
	 * room is checked once (B2 runs ten children per join). */
	if (!worker_stack_room(self))
		return;
	struct inline_exit ex;
	ex.child = worker_inline_next(g);
	if (ex.child == NULL)
		return;
	/* Inline runs nest (a child joining its own group runs its
	 * children here too, in a frame above this one): the innermost
	 * one's exit is the stack's, and each puts the outer one back. */
	void *outer = self->stack->inline_exit;
	self->stack->inline_exit = &ex;
	if (INLINE_EXIT_SET(ex.buf) == 0) {
		worker_inline_begin(self, ex.child);
		weft__task_run(ex.child);
	}
	/* Here after the first child, returned or jumped back, and after
	 * every later child that jumped back (ex.child is then the one that
	 * jumped).  No local variable changes after the set but ex, which
	 * lives in memory. */
	worker_inline_end(self, ex.child);
	struct weft_task *t;
	while ((t = worker_inline_next(g)) != NULL) {
		worker_inline_begin(self, t);
		weft__task_run(t);
		worker_inline_end(self, t);
	}
	self->stack->inline_exit = outer;
}

void weft__sched_exit_abandoned(struct weft_task *t)
{
	if (t->stack_borrowed) {
		struct inline_exit *ex = t->stack->inline_exit;
		WEFT_ASSERT(ex != NULL, "an inline child without its exit");
		ex->child = t;
		weft__san_handle_no_return();
		INLINE_EXIT_JUMP(ex->buf);
	}
#ifdef WEFT__TSAN
	/* The abandoned frames stay on the shadow call stack of the stack's
	 * TSan fiber handle: have weft__fiber_init replace the handle
	 * before the stack's next fiber (fiber.c, CONT_TSAN_REUSE). */
	t->stack->tsan_uses = UINT_MAX;
#endif
	weft__sched_exit(t);
	WEFT_ASSERT(0, "an abandoned task was resumed");
	__builtin_unreachable();
}

/* xorshift64*: cheap victim selection, owner-only state. */
static uint64_t worker_rand(weft__worker_t *w)
{
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * UINT64_C(2685821657736338717);
}

/* Puts t (a yielding task, or a run-next task over its cap) at the fair
 * end of w's deque; w takes the oldest tasks until t has left the deque
 * (the essay, item 3).  The task behind which t
 * now waits may run for long without yielding, so t must be stealable by
 * a worker that went to sleep: if one sleeps, notify.  Only then is the
 * idle notification's fence paid, not on every yield (B6).  A worker that
 * goes to sleep concurrently, between its last look at the deques and
 * this relaxed read, is missed only if the read precedes the push's
 * visibility; w's next requeue or spawn notifies it. */
static void worker_requeue(weft__worker_t *w, struct weft_task *t)
{
	int64_t idx = weft__deque_next_index(&w->deque);
	if (weft__deque_push(&w->deque, t) < 0) {
		weft__inject_push(&w->rt->inject, t);
	} else {
		/* Take the oldest until t has left (essay, item 3).  A later
		 * yield moves the mark down: the earlier yielder sits above
		 * it, so it still comes first. */
		w->fifo = true;
		w->fifo_mark = idx;
	}
	w->take_oldest = true;
	/* relaxed: a hint, as explained above. */
	if (atomic_load_explicit(&w->rt->idle.nsleeping, memory_order_relaxed))
		weft__idle_notify(w->rt);
}

/* Most tasks one steal moves beside the one it returns. */
#define WORKER_STEAL_BATCH 128

/* After stealing one task from v, w takes up to half of what v had left
 * (Tokio's steal-half), one single-item steal each, into its own deque.
 * Taking one task at a time left a thief with one task: it then ran
 * alone (a yielding task resumed itself at once and finished long before
 * its peers: B6 fairness was ~100) and came back to steal again.  Each
 * extra item is a plain Chase-Lev steal, so the deque's correctness
 * argument (deque.c) is unchanged; a batch steal with one CAS would race
 * with the owner's CAS-free pops. */
static void worker_steal_more(weft__worker_t *w, weft__worker_t *v)
{
	size_t want = weft__deque_size_approx(&v->deque) / 2;
	if (want > WORKER_STEAL_BATCH)
		want = WORKER_STEAL_BATCH;
	size_t moved = 0;
	while (moved < want) {
		void *item;
		if (weft__deque_steal(&v->deque, &item) != 0)
			break;
		if (weft__deque_push(&w->deque, item) < 0) {
			/* The injection queue links records (core/frame.c). */
			struct weft_task *t = weft__frame_item_task(item);
			if (t != NULL)
				weft__inject_push(&w->rt->inject, t);
			weft__stats_inc(&w->stats.stolen_extra);
			break;
		}
		moved++;
	}
	weft__stats_add(&w->stats.stolen_extra, moved);
	/* Others may now steal from w. */
	if (moved)
		weft__idle_notify(w->rt);
}

struct weft_task *weft__sched_steal(weft__worker_t *w)
{
	struct weft_runtime *rt = w->rt;
	struct weft_task *t = worker_inject_pop(w);
	if (t)
		return t;
	unsigned n = rt->nworkers;
	if (n < 2)
		return NULL;
	unsigned start = (unsigned)(worker_rand(w) % n);
	for (unsigned i = 0; i < n; i++) {
		weft__worker_t *v = &rt->workers[(start + i) % n];
		if (v == w)
			continue;
		void *item;
		for (int tries = 0; tries < 4; tries++) {
			weft__stats_inc(&w->stats.steal_attempts);
			int rc = weft__deque_steal(&v->deque, &item);
			if (rc == 0) {
				weft__stats_inc(&w->stats.steals);
				worker_steal_more(w, v);
				/* A frame becomes its task (core/frame.c). */
				t = weft__sched_item_task(w, item);
				if (WEFT__UNLIKELY(w->trace) && t != NULL)
					weft__trace_steal(w, t, v->index);
				return t;
			}
			if (rc != -EAGAIN)
				break;
		}
	}
	/* Then the halves offered by weft_par calls (core/par.c): a task is
	 * made for one only when it is taken. */
	for (unsigned i = 0; i < n; i++) {
		weft__worker_t *v = &rt->workers[(start + i) % n];
		if (v == w)
			continue;
		struct weft__par *p = weft__par_steal(&v->par);
		if (p == NULL)
			continue;
		weft__stats_inc(&w->stats.steals);
		t = weft__par_task(w, p);
		if (t != NULL) {
			if (WEFT__UNLIKELY(w->trace))
				weft__trace_steal(w, t, v->index);
			return t;
		}
	}
	return NULL;
}

/* A new task's first stack and the context that enters it. */
static int worker_give_stack(weft__worker_t *w, struct weft_task *t)
{
	int rc = weft__stack_get(&w->stacks, &t->stack);
	if (rc < 0)
		return rc;
	t->stack->owner_name = t->name;
	weft__fiber_init(&t->cont, t->stack, weft__task_entry, t);
	/* A fiber exists from its first switch-in to its exit. */
	weft__alloc_census_add(WEFT__CENSUS_FIBER, 1);
	return 0;
}

/* Owner only.  release: everything the worker did before (the fiber it
 * left, its picks) is ordered before a reclaimer's acquire load that
 * sees the new value (weft__io_reclaim).  The load is relaxed: only the
 * owner writes qs. */
static inline void worker_qs_step(weft__worker_t *w)
{
	atomic_store_explicit(&w->qs,
		atomic_load_explicit(&w->qs, memory_order_relaxed) + 1,
		memory_order_release);
}

/* Everything but the jump itself, before w switches into t (from its
 * scheduler loop or straight from a fiber). */
static inline __attribute__((always_inline)) void
worker_switch_in(weft__worker_t *w, struct weft_task *t)
{
	worker_qs_step(w); /* odd: a fiber runs */
	/* t's slice starts at the read that ended the previous one (a
	 * direct switch) or that the loop made (worker_run); a task counted
	 * exactly starts its own on the cycle counter (core/group.c, "Run
	 * time"). */
	if (WEFT__UNLIKELY(t->acct))
		w->exact_start = weft__tick_now();
	w->current = t;
	/* On a direct switch this is the trace's one hook: the departing
	 * task (post_task) leaves and t begins (core/trace.c). */
	if (WEFT__UNLIKELY(w->trace))
		weft__trace_switch_in(w, t);
	weft__stats_inc(&w->stats.tasks_run);
	/* Introspection: the worker it runs on, at every switch-in (first
	 * run, after a park or a yield).  Relaxed: inspect.c reads it
	 * atomically and validates the record by its id. */
	atomic_store_explicit(&t->insp_worker, (int)w->index,
		memory_order_relaxed);
	/* The dump pin (inspect.c, "Reading a parked task"): publish that t
	 * runs from its current park generation on, then look for a dumper
	 * reading its stack: one of the two sees the other's store, so
	 * either the dumper skips t or we wait here, before t's stack
	 * changes.  relaxed park load: only t itself changes the generation,
	 * and it is not running. */
	uint64_t run = atomic_load_explicit(&t->park, memory_order_relaxed) >>
		WEFT__PARK_GEN_SHIFT;
	bool pinned;
	if (WEFT__LIKELY(w->insp_asym)) {
		/* The light half of the asymmetric fence, whose heavy half
		 * (membarrier) the dumper runs between its pin store and its
		 * insp_run load: relaxed store, a compiler barrier that keeps
		 * the load after it, and an acquire load, which also keeps
		 * t's stack untouched until it is done (and pairs with the
		 * dumper's release of the pin). */
		atomic_store_explicit(&t->insp_run, run, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
		pinned = atomic_load_explicit(&t->insp_pin,
			memory_order_acquire);
	} else {
		/* seq_cst store then seq_cst load, against the dumper's
		 * seq_cst pin store then insp_run load. */
		atomic_store_explicit(&t->insp_run, run, memory_order_seq_cst);
		pinned = atomic_load_explicit(&t->insp_pin,
			memory_order_seq_cst);
	}
	if (WEFT__UNLIKELY(pinned))
		weft__inspect_wait_unpinned(t);
	/* After the pin: a dumper holding t pinned reads the image's state
	 * (inspect.c). */
	if (WEFT__UNLIKELY(t->park_image != NULL)) {
		weft__stack_image_restore(t->stack, t->park_image,
			t->park_release, t->name);
		t->park_image = NULL;
	}
	weft__stack_set_running(&w->running_stack, t->stack);
}

/* Sockets a busy worker must not leave unpolled (idle.c, "Polling
 * sockets"): what the poll readies is in the run-next slot.  Looked at
 * where the injection queue is, from the loop or a fiber. */
static inline void worker_poll_sockets(weft__worker_t *w)
{
	weft__idle_poll_busy(&w->rt->idle, w->rt);
}

/* The next task by the order of the essay at the top, short of stealing
 * and sleeping: NULL when there is none on this worker or in the
 * injection queue.  Never blocks, so a fiber that is switching out may
 * call it (weft__sched_switch_out: on_fiber).  What runs on a fiber's
 * stack stays shallow: due deadlines (which cancel scopes) are fired only
 * from the loop. */
static struct weft_task *worker_pick_queues(weft__worker_t *w, bool on_fiber);

/* Inline as far as the run-next slot, which a hand-off takes (B5); the
 * queues are worker_pick_queues. */
static inline __attribute__((always_inline)) struct weft_task *
worker_pick(weft__worker_t *w, bool on_fiber)
{
	struct weft_task *t;
	/* Counted down, not ++tick % 61 (a multiply and a shift per pick):
	 * the same picks, the 61st, 122nd..., from the same start, so a
	 * seeded schedule (docs/semantics.md rule 47) sees the same
	 * interval at the same picks. */
	if (WEFT__UNLIKELY(--w->tick == 0)) {
		w->tick = WORKER_INJECT_INTERVAL;
		w->fair_due = true;
		worker_poll_sockets(w);
		t = worker_inject_pop(w);
		if (t)
			return t;
	}
	if (w->runnext) {
		t = w->runnext;
		w->runnext = NULL;
		if (w->runnext_streak < WORKER_RUNNEXT_CAP) {
			w->runnext_streak++;
			return t;
		}
		/* Cap reached: queue it behind the others, if there are any.
		 * With the deque and the injection queue empty nothing here
		 * waits behind it (a deadline that falls due lands in the
		 * injection queue), and a requeue would cost a push, a steal
		 * back and, with a worker asleep, a wake-up that has it steal
		 * one of two tasks waking each other (B5).  The streak stays
		 * at the cap, so the next pick asks again. */
		if (weft__deque_size_approx(&w->deque) == 0 &&
			!weft__inject_nonempty(&w->rt->inject))
			return t;
		w->runnext_streak = 0;
		worker_requeue(w, t);
	}
	return worker_pick_queues(w, on_fiber);
}

/* worker_pick past the run-next slot: the deque and the injection
 * queue. */
static struct weft_task *worker_pick_queues(weft__worker_t *w, bool on_fiber)
{
	struct weft_task *t;
	w->runnext_streak = 0;
	bool oldest = false;
	if (w->take_oldest) {
		w->take_oldest = false;
		oldest = true;
		/* A yield lets others run.  Deadlines that are due fire here
		 * first (their tasks take the run-next slot): the I/O thread
		 * would fire them a tick later and only once the OS gives it
		 * a CPU, by when this worker would be into its next chunk
		 * (B11: timer lateness under load). */
		worker_poll_sockets(w);
		if (!on_fiber)
			weft__timer_fire_due(&w->rt->timer);
		if (w->runnext) {
			t = w->runnext;
			w->runnext = NULL;
			return t;
		}
		/* Then tasks woken from outside (the I/O thread's sockets,
		 * plain threads), or a worker busy with yielding CPU tasks
		 * would leave them queued for up to 61 picks. */
		t = worker_inject_pop(w);
		if (t)
			return t;
	}
	if (w->fifo) {
		if (weft__deque_passed(&w->deque, w->fifo_mark))
			w->fifo = false;
		else
			oldest = true;
	}
	if (WEFT__UNLIKELY(w->fair_due)) {
		/* Item 3's exception: the oldest, once per interval. */
		w->fair_due = false;
		oldest = true;
	}
	if (oldest) {
		/* Our own top: a steal, which may lose to a thief (retry). */
		void *item;
		int rc;
		while ((rc = weft__deque_steal(&w->deque, &item)) == -EAGAIN)
			;
		/* A frame becomes its task here (core/frame.c; NULL: it
		 * failed and is done). */
		if (rc == 0 && (t = weft__sched_item_task(w, item)) != NULL)
			return t;
	} else if (weft__deque_size_approx(&w->deque) != 0) {
		/* Not on an empty deque: the pop's StoreLoad fence would wait
		 * for the stores of the task that just ended (B3 external,
		 * where every pick finds it empty).  Exact here: only this
		 * worker changes bottom, and top only grows. */
		void *item = weft__deque_pop(&w->deque);
		if (item && (t = weft__sched_item_task(w, item)) != NULL)
			return t;
	}
	return worker_inject_pop(w);
}

static struct weft_task *worker_next(weft__worker_t *w)
{
	struct weft_task *t = worker_pick(w, false);
	return t ? t : weft__idle_find_or_sleep(w);
}

/* }======================================================= */

/* {======================================================= running */

static void worker_fail_unstartable(struct weft_task *t, int rc)
{
	/* No stack for it: it ends with rc without running.  Its argument
	 * stays unreleased; the failure says why. */
	weft_fail(rc, "task '%s' could not start: no stack (%s)", t->name,
		weft_strerror(rc));
	weft__task_finish(t, rc);
	weft__task_unref(t);
}

/* Runs right after a fiber switched out, on the stack it switched to (the
 * scheduler loop's, or the next task's: weft__sched_arrived).  The task
 * that switched out is post_task, which is not always w->current of the
 * switch that ran it: a child run inline by its parent parks or exits on
 * the parent's stack. */
/* The first thing of every post: t's stack is intact. */
static inline void worker_post_check(struct weft_task *t)
{
	if (t->stack && WEFT__UNLIKELY(weft__stack_check(t->stack) < 0)) {
		weft__diag("stack overflow in task '%s' (canary of its %zu-byte"
			   " stack overwritten)",
			t->name, t->stack->size);
		abort();
	}
}

/* The post of a park (t is w->post_task): publishes PARKED.  Inline in
 * worker_arrived, where every hand-off (B5) performs it. */
static inline __attribute__((always_inline)) void
worker_after_park(weft__worker_t *w, struct weft_task *t)
{
	worker_post_check(t);
	w->post = WEFT__POST_NONE;
	w->post_task = NULL;
	/* A sleep that releases its stack: before the park is published,
	 * nobody else can resume t yet.  Not when a waker came first
	 * (relaxed: a hint; the copy back is then wasted work, never
	 * wrong). */
	if (WEFT__UNLIKELY(t->park_release) &&
		!(atomic_load_explicit(&t->park, memory_order_relaxed) &
			WEFT__PARK_WOKEN))
		t->park_image = weft__stack_image_release(t->stack, t->cont.sp);
	/* acq_rel: release publishes the fiber's saved context to whichever
	 * thread resumes it; acquire sees a waker's WOKEN.  Pairs with the
	 * waker's CAS in weft__task_wake_claim (task.h).  An add, not an
	 * or: PARKED is clear here (the park's prepare stored a word
	 * without it, and only this post sets it), so the two agree, and
	 * x86_64 has an add that returns the old value (`lock xadd`) but
	 * no such or (gcc loops on `lock cmpxchg`). */
	weft__stats_inc(&w->stats.parks);
	uint64_t old = atomic_fetch_add_explicit(&t->park, WEFT__PARK_PARKED,
		memory_order_acq_rel);
	/* Woken before it was off its stack: queue it where another worker
	 * can steal it, not in the run-next slot, which only this worker
	 * takes: after a direct switch this worker now runs another task,
	 * which may not switch for long. */
	if (WEFT__UNLIKELY(old & WEFT__PARK_WOKEN)) {
		weft__stats_inc(&w->stats.wakes_early);
		worker_queue(w, t);
	}
}

/* The posts but a park's (worker_after_switch). */
static void worker_after_other(weft__worker_t *w, enum weft__post post)
{
	struct weft_task *t = w->post_task;
	worker_post_check(t);
	w->post = WEFT__POST_NONE;
	w->post_task = NULL;
	switch (post) {
	case WEFT__POST_YIELD: worker_requeue(w, t); break;
	case WEFT__POST_REQUEUE:
		/* The pick that worker_requeue prepares for is done. */
		worker_requeue(w, t);
		w->take_oldest = false;
		break;
	case WEFT__POST_EXIT:
		weft__alloc_census_add(WEFT__CENSUS_FIBER, -1);
		/* An inline child returns into its parent instead of exiting
		 * here: a borrowed stack is never given back. */
		WEFT_ASSERT(!t->stack_borrowed, "inline child exited a fiber");
		weft__stack_put(&w->stacks, t->stack);
		t->stack = NULL;
		weft__task_unref(t);
		break;
	case WEFT__POST_PARK: /* worker_after_park's */
	case WEFT__POST_NONE:
		WEFT_ASSERT(0, "fiber switched out without a reason");
	}
}

static void worker_after_switch(weft__worker_t *w)
{
	enum weft__post post = w->post;
	if (post == WEFT__POST_PARK)
		worker_after_park(w, w->post_task);
	else
		worker_after_other(w, post);
}

/* Switches from the scheduler loop into t until it switches back. */
static WEFT_FIBER_FN void worker_run(weft__worker_t *w, struct weft_task *t)
{
	if (t->stack == NULL) {
		int rc = worker_give_stack(w, t);
		if (rc < 0) {
			w->current = t;
			/* For its finish. */
			w->slice_start = weft__task_sampled_now(w);
			w->exact_start = weft__tick_now();
			worker_fail_unstartable(t, rc);
			w->current = NULL;
			return;
		}
	}
	/* A fresh slice from the loop: the loop's and idle time are
	 * nobody's (core/group.c, "Run time"). */
	w->slice_start = weft__task_sampled_now(w);
	worker_switch_in(w, t);
	weft__fiber_switch(&w->sched, &t->cont);
	/* The fiber that came back (not always t) left for w->post. */
	if (WEFT__UNLIKELY(w->trace))
		weft__trace_switch_out(w);
	weft__stack_set_running(&w->running_stack, NULL);
	w->current = NULL;
	worker_after_switch(w);
}

static void worker_loop(weft__worker_t *w)
{
	for (;;) {
		struct weft_task *t = w->handoff;
		w->handoff = NULL;
		if (t == NULL)
			t = worker_next(w);
		if (t == NULL)
			break;
		worker_run(w, t);
	}
}

/* The loop of a seeded runtime's worker (baton.c): one task per turn of
 * the baton, picked as worker_next does but without spinning or
 * sleeping (a worker that finds nothing passes the baton on). */
static void worker_loop_seeded(weft__worker_t *w)
{
	while (weft__baton_take(w)) {
		/* The choice between the run-next slot and the deque comes
		 * from the seed too: half the time the slot's task goes
		 * behind the deque's, as a displaced one does in
		 * weft__sched_ready, so that replays also explore a woken
		 * task running late. */
		if (w->runnext != NULL && (worker_rand(w) >> 63) != 0) {
			struct weft_task *rn = w->runnext;
			w->runnext = NULL;
			if (weft__deque_push(&w->deque, rn) < 0)
				weft__inject_push(&w->rt->inject, rn);
		}
		struct weft_task *t = worker_pick(w, false);
		if (t == NULL)
			t = weft__sched_steal(w);
		if (t != NULL)
			worker_run(w, t);
		weft__baton_pass(w);
	}
}

static void *worker_main(void *arg)
{
	weft__worker_t *w = arg;
	worker_tls = w;
	/* Signals are for the application's threads, not ours. */
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	weft__stall_thread_mask(w->rt, &all); /* its backtrace signal */
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	weft__fiber_init_thread(&w->sched);
	/* weft_now() of this thread's tasks reads the runtime's clock. */
	weft__timer_bind_thread(&w->rt->timer);
	weft__idle_stats_awake(w); /* busy_ns counts from here */
	/* If the kernel refused the alternate stack (it does not for one
	 * of this size), the thread's overflows are not reported; the
	 * worker runs all the same. */
	(void)weft__stack_thread_init(&w->running_stack, &w->altstack);
	if (!w->switch_direct)
		worker_loop_seeded(w);
	else
		worker_loop(w);
	weft__stack_thread_fini();
	weft__frame_pool_drain(w); /* into the cache, drained next */
	weft__record_cache_drain(w);
	weft__fiber_fini_thread(&w->sched);
	weft__timer_bind_thread(NULL);
	worker_tls = NULL;
	return NULL;
}

/* }======================================================= */

int weft__sched_worker_start(struct weft_runtime *rt, weft__worker_t *w,
	unsigned index)
{
	w->rt = rt;
	/* w->cpu_now was set by weft__cpuclock_start, before any worker. */
	w->index = index;
	w->rng = UINT64_C(0x9E3779B97F4A7C15) * (index + 1) ^
		(uint64_t)(uintptr_t)w;
	w->switch_direct = !rt->baton.on;
	w->insp_asym = rt->insp_asym;
	w->tick = WORKER_INJECT_INTERVAL; /* picks left to the next interval */
	if (rt->baton.on) {
		/* Steal victims from the seed, not from an address (baton.c);
		 * xorshift needs a state other than 0. */
		uint64_t s = rt->cfg.seed ^ ((uint64_t)index << 32);
		w->rng = weft__baton_mix(&s) | 1;
	}
	atomic_init(&w->wake_word, 0);
	atomic_init(&w->qs, 0);
	int rc = weft__deque_init(&w->deque, 8);
	if (rc < 0)
		return rc;
	rc = weft__stack_altstack_alloc(&w->altstack);
	if (rc < 0) {
		weft__deque_fini(&w->deque);
		return rc;
	}
	weft__par_deque_init(&w->par);
	weft__stack_pool_init(&w->stacks, &rt->stacks);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc != 0) {
		weft__stack_pool_fini(&w->stacks);
		weft__stack_altstack_free(&w->altstack);
		weft__deque_fini(&w->deque);
		return rc == EAGAIN ? -EAGAIN : -rc;
	}
	/* "weft-w<index>" in ps, top and gdb (at most 15 characters: the
	 * index is below 1024; the buffer is larger only to keep gcc's
	 * truncation warning quiet), set here rather than by the thread so
	 * that it is in place when weft_runtime_create returns.  Best
	 * effort: a name is a label. */
	char name[24];
	snprintf(name, sizeof name, "weft-w%u", index);
	pthread_setname_np(w->thread, name);
	return 0;
}

void weft__sched_worker_join(weft__worker_t *w)
{
	pthread_join(w->thread, NULL);
}

void weft__sched_worker_fini(weft__worker_t *w)
{
	weft__stack_pool_fini(&w->stacks);
	weft__stack_altstack_free(&w->altstack);
	weft__deque_fini(&w->deque);
}
