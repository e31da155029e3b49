/* Fork-join calls: weft_par (include/weft/par.h, docs/semantics.md rule
 * 52).
 *
 * Design
 * ------
 * Problem: fine-grained fork-join (B1 fib: 15 million splits for fib(35))
 * through a task group pays a group open, a spawn and a join per split:
 * about 780 instructions under callgrind even with lazy frames
 * (core/frame.c), against a few tens for Lace's SPAWN/SYNC.  What a group
 * gives beyond a call (a task record, a name, a cancel scope, a handle,
 * done callbacks) is needed only when the split's second half actually
 * runs elsewhere.  weft_par gives up the rest: its halves are calls of
 * the calling task, and a task is made for the second half only when
 * another worker takes it, or when the caller switches out while it is
 * still offered.
 *
 * The call.  The caller writes a record of the call in its own frame
 * (struct weft__par: the offered half, its own task, its innermost scope
 * and its context), offers it on its worker's deque, calls the first
 * half, and takes the offer back.  If nobody took it, it calls the
 * second half itself: a push, a pop, two calls and no atomic
 * read-modify-write or fence (below).  If somebody took it, it waits for
 * the end of the task made for it, parking if need be (uncancellably:
 * the task writes into the caller's frame; a cancel reaches that task
 * through the caller's scope, under which it runs).  The task that runs
 * a taken half is a task in every way (record, stack, id, name "par",
 * parks, snapshots, dumps) but has no group: its end hands its outcome
 * to the call (weft__par_end) and it is joined by the call's wait.  Its
 * parent in paths and in weft_root_task is the caller; its run time
 * counts in the caller's group.
 *
 * The deque.  A worker's offered halves sit in a split deque (after Lace,
 * van Dijk and van de Pol's "Lace: non-blocking split deque for
 * work-stealing", 2014): [tail, split) is shared, thieves take its
 * oldest entry with a CAS on the word ts = (tail, split); [split, head)
 * is private, and the owner pushes and pops there with plain stores, as
 * in a sequential stack: no fence between its store of head and a
 * thief's read, because thieves never look past split.  Only the owner
 * moves split:
 *   - up (weft__par_expose), when a thief found the shared part empty
 *     and asked (splitreq), or at a push when nothing was shared: then
 *     half of the private part (at least one entry, the oldest) becomes
 *     shared, by a CAS of ts that also publishes the entries' slots;
 *   - down, when a pop reaches the shared part (weft__par_pop_shared): a
 *     CAS of ts to (tail, i) takes entry i back, or, if a thief took it
 *     (tail passed i: tail is then i + 1, since split never exceeds
 *     head), to (i, i).
 * So the owner pays a CAS only when the shared part changes: at one
 * worker, once per new bottom entry; at two, about once per steal.  The
 * Chase-Lev deque (core/deque.c) that holds tasks is not used for this:
 * its pop must order its store of bottom before its read of top with a
 * full fence, and the offers would sit among ready tasks, which a pop
 * that meets one has to put back (sched.c, worker_inline_next).
 *
 * A call's offer must not outlive its task's presence on the worker: the
 * next task there would push above it, and the caller, resumed on
 * another worker, would look for it in the wrong deque.  So every
 * switch-out of a fiber whose worker holds offers (sched.c,
 * worker_leave) gives each of them a task, queued on that worker
 * (weft__par_flush), and the deque is empty whenever a worker switches
 * tasks.  A caller that finds its worker's deque empty at the pop knows
 * its offer was given a task.  The deque's entries are then all of one
 * fiber: its task's calls, and those of the group children it runs
 * inline on the same stack (sched.c, weft__sched_help_join), in stack
 * order.
 *
 * Taking.  A thief's CAS gives it an index; it then reads the slot and
 * marks the call TAKEN (a CAS from OFFERED: the caller may have marked
 * it WAITING first).  Between the CAS and the read, the owner must not
 * rewrite that slot.  A pop never does (it waits for the taken call's
 * end before it returns, and so before any push reaches that index);
 * the flush, which empties the deque and lets the next task push from
 * index 0, first waits until every entry below tail is marked, which
 * for an entry taken a moment ago is a few instructions of the thief's.
 *
 * Memory the taken half's task needs that the caller could drop
 * meanwhile: the scope (the caller cannot leave it before weft_par
 * returns: scopes nest) and the context (a reference taken at the call
 * when there is a context: two atomic increments per call in code that
 * binds task-locals, none otherwise).
 *
 * Rejected: offers in the task deque (above); the record of the call on the heap (an allocation per
 * split); running a taken half on the thief's scheduler stack (it may
 * park); giving the halves identities of their own when run inline
 * (a record per split: what the groups already do).
 *
 * Limits: an offer below entries the owner keeps private waits for the
 * owner's next push or pop to be exposed, so with more than two workers
 * a long first half can hide the offers made inside it.  Nesting deeper
 * than WEFT__PAR_CAP calls offers nothing more.
 *
 * Model: tools/models/par.pml follows the deque's owner (push, expose,
 * pop, pop_shared, flush) and its thieves statement by statement and
 * checks that every offered half runs exactly once; a flush that does
 * not wait for the thieves' marks is its known violation.
 *
 * Invariants
 *   1. tail <= split <= head.  Entries below tail were taken and are not
 *      yet popped; entries in [tail, head) are offered.
 *   2. Only the owner writes slots, head and split; a slot is written
 *      only at an index >= split, and at an index below tail only after
 *      the call there was marked (flush) or ended (pop).
 *   3. Every call ends in exactly one of: taken back by its caller's pop
 *      (and run by the caller), run by a task (DONE), or BACK (no task
 *      could be made; run by the caller).
 *   4. At every switch-in, the worker's deque is empty.
 *   5. A call's record is not touched by its task after the exchange
 *      that sets DONE (or BACK), except that a WAITING caller is woken
 *      with what was read before it.
 */
#include <errno.h>
#include <sched.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/spin.h"
#include "core/cancel.h"
#include "core/idle.h"
#include "core/inspect.h"
#include "core/local.h"
#include "core/par.h"
#include "core/sched.h"
#include "core/task.h"
#include "runtime.h"
#include "weft/par.h"

void weft__par_deque_init(weft__par_deque_t *d)
{
	atomic_init(&d->ts, 0);
	atomic_init(&d->splitreq, 0);
	d->head = 0;
	d->split = 0;
	for (unsigned i = 0; i < WEFT__PAR_CAP; i++)
		atomic_init(&d->slot[i], NULL);
}

__attribute__((noinline, cold)) void weft__par_expose(weft__par_deque_t *d,
	struct weft_runtime *rt)
{
	/* relaxed: a request answered here; a thief that asks again later
	 * sets it again. */
	bool asked = atomic_load_explicit(&d->splitreq, memory_order_relaxed);
	if (asked)
		atomic_store_explicit(&d->splitreq, 0, memory_order_relaxed);
	uint32_t s = d->split;
	uint32_t n = d->head - s; /* private entries, at least the new one */
	/* Half of them, the oldest, and at least one. */
	uint32_t ns = s + (n + 1) / 2;
	/* relaxed: the CAS below re-reads it. */
	uint64_t old = atomic_load_explicit(&d->ts, memory_order_relaxed);
	for (;;) {
		uint32_t t = (uint32_t)old;
		/* Unasked, expose only when nothing is shared (t == s). */
		if (!asked && t < s)
			return;
		/* seq_cst: its release half publishes the slots below ns
		 * (and the calls they point to) to the thief whose acquire
		 * reads this value or a later one of its release sequence;
		 * and it is the producer's store of the idle Dekker pair
		 * (weft__idle_notify fences after it). */
		if (atomic_compare_exchange_weak_explicit(&d->ts, &old,
			    weft__par_ts(t, ns), memory_order_seq_cst,
			    memory_order_relaxed))
			break;
	}
	d->split = ns;
	weft__idle_notify(rt);
}

__attribute__((noinline, cold)) bool weft__par_pop_shared(weft__par_deque_t *d,
	uint32_t i)
{
	/* relaxed: the CAS re-reads it. */
	uint64_t old = atomic_load_explicit(&d->ts, memory_order_relaxed);
	uint32_t t;
	for (;;) {
		t = (uint32_t)old;
		/* t <= i: i is still offered, take it back (split to i).
		 * Else a thief took it (t == i + 1: invariant 1): nothing is
		 * shared any more.  acq_rel: one total order with the
		 * thieves' CASes; nothing else is published either way. */
		uint64_t nw = t <= i ? weft__par_ts(t, i) : weft__par_ts(i, i);
		if (atomic_compare_exchange_weak_explicit(&d->ts, &old, nw,
			    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	d->split = i;
	d->head = i;
	return t <= i;
}

struct weft__par *weft__par_steal(weft__par_deque_t *d)
{
	/* acquire: see weft__par_expose. */
	uint64_t old = atomic_load_explicit(&d->ts, memory_order_acquire);
	for (;;) {
		uint32_t t = (uint32_t)old, s = (uint32_t)(old >> 32);
		if (t >= s) {
			/* Ask the owner to expose more.  relaxed: a hint, read
			 * at its next push; the load first keeps a spinning
			 * thief from writing the line again and again. */
			if (!atomic_load_explicit(&d->splitreq,
				    memory_order_relaxed))
				atomic_store_explicit(&d->splitreq, 1,
					memory_order_relaxed);
			return NULL;
		}
		/* acq_rel: acquire as the load above; release keeps the
		 * release sequence of the owner's exposing CAS going. */
		if (atomic_compare_exchange_weak_explicit(&d->ts, &old,
			    weft__par_ts(t + 1, s), memory_order_acq_rel,
			    memory_order_acquire))
			break;
	}
	/* relaxed: ordered by the acquire above (invariant 2: the owner does
	 * not rewrite it before we mark the call). */
	struct weft__par *p = atomic_load_explicit(&d->slot[(uint32_t)old],
		memory_order_relaxed);
	unsigned st = WEFT__PAR_OFFERED;
	/* release: a flush that waits for this mark reads the slot no more
	 * once it sees it (relaxed on failure: the caller marked it WAITING
	 * first, which stays). */
	atomic_compare_exchange_strong_explicit(&p->state, &st, WEFT__PAR_TAKEN,
		memory_order_release, memory_order_relaxed);
	return p;
}

int weft__par_run(void *arg)
{
	struct weft__par *p = arg;
	return p->fn(p->arg);
}

/* The taker's last touch of p: sets its final state (DONE or BACK) and
 * wakes the caller if it waits (invariant 5). */
static void par_settle(struct weft__par *p, unsigned final)
{
	struct weft_task *caller = p->caller;
	/* acq_rel: release publishes the outcome (rc, leaf, lost) to the
	 * caller's acquire; acquire pairs with its CAS to WAITING (the gen
	 * store before it). */
	unsigned old = atomic_exchange_explicit(&p->state, final,
		memory_order_acq_rel);
	if (old == WEFT__PAR_WAITING)
		/* relaxed: ordered by the exchange.  p may be gone once the
		 * caller runs: nothing is read after the wake. */
		weft__task_wake(caller,
			atomic_load_explicit(&p->gen, memory_order_relaxed));
}

/* Hands p back to its caller, which runs the half itself. */
static void par_back(struct weft__par *p)
{
	par_settle(p, WEFT__PAR_BACK);
}

struct weft_task *weft__par_task(weft__worker_t *w, struct weft__par *p)
{
	struct weft_task *t;
	if (weft__task_create_lit(w->rt, "par", true, weft__par_run, p, &t) <
		0) {
		par_back(p);
		return NULL;
	}
	/* Its parent in snapshots (relaxed: see insp_id); the caller
	 * waits for this task, so its record is this life's. */
	atomic_store_explicit(&t->insp_parent_id, p->caller->id,
		memory_order_relaxed);
	/* The outcome's fields are the taker's until DONE. */
	p->rc = 0;
	p->leaf = NULL;
	p->lost = false;
	if (p->ctx != NULL) {
		weft__local_context_ref(p->ctx);
		t->ctx = p->ctx;
	}
	/* Under the caller's scope at the call, linked lazily as a spawned
	 * child is under its group's (core/frame.h, weft__frame_child_place):
	 * the caller cannot leave that scope before the call returns. */
	t->root_scope.parent = p->scope;
	weft__scope_pull_init(&w->rt->cancel_gen, &t->root_scope, p->scope);
	return t;
}

void weft__par_flush(weft__worker_t *w)
{
	weft__par_deque_t *d = &w->par;
	uint32_t h = d->head;
	/* Claim everything still offered: thieves now see nothing shared.
	 * acq_rel: one total order with their CASes. */
	uint64_t old = atomic_load_explicit(&d->ts, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&d->ts, &old,
		weft__par_ts(0, 0), memory_order_acq_rel, memory_order_relaxed))
		;
	uint32_t t = (uint32_t)old;
	/* Entries below tail were taken: wait until each thief has read its
	 * slot (invariant 2), before the next task may push over it.
	 * acquire: pairs with the thief's marking CAS. */
	for (uint32_t i = 0; i < t; i++) {
		struct weft__par *p = atomic_load_explicit(&d->slot[i],
			memory_order_relaxed);
		for (unsigned spins = 0;
			atomic_load_explicit(&p->state, memory_order_acquire) ==
			WEFT__PAR_OFFERED;
			spins++) {
			if (spins < 64)
				WEFT__CPU_RELAX();
			else
				sched_yield();
		}
	}
	d->head = 0;
	d->split = 0;
	/* The rest get tasks, queued on this worker, oldest first (so the
	 * newest is picked first, as the pops would have taken it). */
	for (uint32_t i = t; i < h; i++) {
		struct weft__par *p = atomic_load_explicit(&d->slot[i],
			memory_order_relaxed);
		/* relaxed: claimed by the CAS above, read by its own caller
		 * (on this fiber) and by the task below, which the queueing
		 * publishes. */
		atomic_store_explicit(&p->state, WEFT__PAR_TAKEN,
			memory_order_relaxed);
		struct weft_task *nt = weft__par_task(w, p);
		if (nt != NULL)
			weft__sched_spawn(nt);
	}
}

/* Waits until p is DONE or BACK, and returns which. */
static unsigned par_wait_end(struct weft_task *self, struct weft__par *p)
{
	/* acquire: the task's outcome (rc, leaf, lost), published by its
	 * exchange. */
	unsigned st = atomic_load_explicit(&p->state, memory_order_acquire);
	while (st != WEFT__PAR_DONE && st != WEFT__PAR_BACK) {
		uint64_t gen = weft__task_park_prepare(self, false);
		/* relaxed: published by the CAS below. */
		atomic_store_explicit(&p->gen, gen, memory_order_relaxed);
		/* seq_cst: release publishes gen to the exchange that reads
		 * WAITING; on failure (acquire) st is reloaded: the half
		 * ended meanwhile, or a thief's mark came first. */
		if (atomic_compare_exchange_strong_explicit(&p->state, &st,
			    WEFT__PAR_WAITING, memory_order_seq_cst,
			    memory_order_acquire)) {
			/* Uncancellable: the task writes into this frame. */
			weft__task_park_commit_obj(self, "par", WEFT__WAIT_NONE,
				NULL);
			st = atomic_load_explicit(&p->state,
				memory_order_acquire);
		}
	}
	return st;
}

void weft__par_failed(struct weft_task *t)
{
	struct weft__par *p = t->arg;
	p->leaf = weft__task_failure_leaf(t);
	p->lost = p->leaf == NULL;
}

void weft__par_end(struct weft_task *t)
{
	struct weft__par *p = t->arg;
	p->rc = t->rc;
	par_settle(p, WEFT__PAR_DONE);
}

void weft__par_abandon(struct weft_task *t)
{
	struct weft__par *p;
	while ((p = t->par) != NULL) {
		t->par = p->outer;
		/* Not run if it is still offered or came back: the caller
		 * is ending. */
		if (p->offered &&
			!weft__par_pop(&weft__sched_current()->par, p) &&
			par_wait_end(t, p) == WEFT__PAR_DONE)
			weft__error_leaf_free(p->leaf);
		if (p->ctx != NULL)
			weft__local_context_unref(p->ctx);
	}
}

/* {======================================================= weft_par */

/* A failure of a half run by the caller self: its leaf, taking the
 * message and nested group the half gave weft_fail / weft_fail_group
 * (NULL: no memory; the failure is counted as lost). */
static struct weft__leaf *par_inline_leaf(struct weft_task *self, int rc)
{
	/* relaxed: a logical clock (as weft__task_finish). */
	uint64_t seq = atomic_fetch_add_explicit(&self->rt->error_seq, 1,
		memory_order_relaxed);
	/* relaxed: our own cur_scope. */
	bool collateral = weft__scope_check(&self->rt->cancel_gen,
		atomic_load_explicit(&self->cur_scope, memory_order_relaxed));
	struct weft__leaf *l = weft__error_leaf_create(rc,
		self->fail_msg ? self->fail_msg : "", "par", self->id, seq,
		collateral, self->fail_group);
	if (l != NULL)
		weft__task_leaf_context(self, l);
	else
		weft_error_free(self->fail_group);
	self->fail_group = NULL;
	weft__free(self->fail_msg);
	self->fail_msg = NULL;
	return l;
}

static bool par_failed(int rc)
{
	return rc != 0 && rc != -ECANCELED;
}

/* Where a call left its fast path (weft_par). */
enum {
	PAR_AFTER_A, /* fa returned ra; the offer is not taken back yet */
	PAR_TAKEN,   /* fa returned 0; the pop found the offer taken */
	PAR_AFTER_B  /* both returned; fb, run here, returned rb */
};

/* The rest of call p from `stage` on: the second half, its wait, the
 * outcome, and the caller put back as it was. */
__attribute__((noinline, cold)) static int par_rest(struct weft__par *p,
	int stage, int ra, int rb, weft_error_t **err_out)
{
	struct weft_task *self = p->caller;
	struct weft__leaf *la = NULL, *lb = NULL;
	bool lost_a = false, lost_b = false;
	if (stage == PAR_AFTER_A) {
		if (par_failed(ra)) {
			/* Now, before fb may call weft_fail on this task. */
			la = par_inline_leaf(self, ra);
			lost_a = la == NULL;
		}
		/* Re-read the worker: fa may have parked and moved. */
		if (!p->offered ||
			weft__par_pop(&weft__sched_current()->par, p)) {
			rb = p->fn(p->arg);
			stage = PAR_AFTER_B;
		} else {
			stage = PAR_TAKEN;
		}
	}
	if (stage == PAR_TAKEN) {
		if (par_wait_end(self, p) == WEFT__PAR_DONE) {
			rb = p->rc;
			lb = p->leaf;
			lost_b = p->lost;
		} else {
			rb = p->fn(p->arg); /* it came back */
			stage = PAR_AFTER_B;
		}
	}
	if (stage == PAR_AFTER_B && par_failed(rb)) {
		lb = par_inline_leaf(self, rb);
		lost_b = lb == NULL;
	}
	self->par = p->outer;
	if (p->ctx != NULL)
		weft__local_context_unref(p->ctx);
	if (p->kept_msg != NULL || p->kept_group != NULL) {
		/* The caller's own, back, unless a half run here left one
		 * (which replaces it, as a later weft_fail would). */
		if (self->fail_msg == NULL && self->fail_group == NULL) {
			self->fail_msg = p->kept_msg;
			self->fail_group = p->kept_group;
		} else {
			weft__free(p->kept_msg);
			weft_error_free(p->kept_group);
		}
	}
	if (la == NULL && lb == NULL && !lost_a && !lost_b)
		return ra == -ECANCELED || rb == -ECANCELED ? -ECANCELED : 0;
	if (la != NULL)
		la->next = lb;
	weft_error_t *e = weft__error_from_leaves(la != NULL ? la : lb,
		(size_t)(la != NULL) + (lb != NULL), (size_t)lost_a + lost_b);
	if (err_out)
		*err_out = e;
	else
		weft_error_free(e);
	return WEFT_ECHILD_FAILED;
}

/* weft_par's refusals: nothing runs. */
static __attribute__((noinline, cold)) int par_refuse(weft_fn fa, weft_fn fb,
	weft_error_t **err_out)
{
	if (err_out)
		*err_out = NULL;
	return fa == NULL || fb == NULL ? -EINVAL : WEFT_ENOTFIBER;
}

/* weft_par when the caller holds a context, kept a failure message or
 * nested group, or its worker's deque is full: the whole call, off the
 * fast path. */
static __attribute__((noinline, cold)) int par_general(weft__worker_t *w,
	struct weft__par *p, weft_fn fa, void *a, weft_error_t **err_out)
{
	struct weft_task *self = p->caller;
	if (p->ctx != NULL)
		weft__local_context_ref(p->ctx);
	p->kept_msg = self->fail_msg;
	p->kept_group = self->fail_group;
	self->fail_msg = NULL;
	self->fail_group = NULL;
	self->par = p;
	p->offered = weft__par_push(&w->par, p, w->rt);
	return par_rest(p, PAR_AFTER_A, fa(a), 0, err_out);
}

int weft_par(weft_fn fa, void *a, weft_fn fb, void *b, weft_error_t **err_out)
{
	/* Three tests and jumps (gcc made one of them with flag ors when
	 * written as one condition). */
	if (WEFT__UNLIKELY(fa == NULL))
		return par_refuse(fa, fb, err_out);
	if (WEFT__UNLIKELY(fb == NULL))
		return par_refuse(fa, fb, err_out);
	weft__worker_t *w = weft__sched_current();
	struct weft_task *self = w ? w->current : NULL;
	if (WEFT__UNLIKELY(self == NULL))
		return par_refuse(fa, fb, err_out);
	if (err_out)
		*err_out = NULL;
	/* After the calls below, everything is read back from p, in this
	 * frame: the fast path keeps little else live across them. */
	struct weft__par p;
	p.fn = fb;
	p.arg = b;
	p.caller = self;
	/* relaxed: our own cur_scope. */
	p.scope = atomic_load_explicit(&self->cur_scope, memory_order_relaxed);
	p.ctx = self->ctx;
	p.outer = self->par;
	atomic_init(&p.state, WEFT__PAR_OFFERED);
	p.kept_msg = NULL;
	p.kept_group = NULL;
	/* One test for the uncommon cases. */
	if (WEFT__UNLIKELY(((uintptr_t)p.ctx | (uintptr_t)self->fail_msg |
				   (uintptr_t)self->fail_group) != 0 ||
		    w->par.head >= WEFT__PAR_CAP))
		return par_general(w, &p, fa, a, err_out);
	self->par = &p;
	p.offered = weft__par_push(&w->par, &p, w->rt);
	int ra = fa(a);
	if (WEFT__UNLIKELY(ra != 0))
		return par_rest(&p, PAR_AFTER_A, ra, 0, err_out);
	/* Re-read the worker: fa may have parked and moved. */
	if (WEFT__UNLIKELY(!weft__par_pop(&weft__sched_current()->par, &p)))
		return par_rest(&p, PAR_TAKEN, 0, 0, err_out);
	int rb = p.fn(p.arg);
	if (WEFT__UNLIKELY(rb != 0))
		return par_rest(&p, PAR_AFTER_B, 0, rb, err_out);
	p.caller->par = p.outer;
	return 0;
}

/* }======================================================= */
