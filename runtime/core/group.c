/* Task groups: spawn, join counter, failure aggregation.
 *
 * Design
 * ------
 * Problem: a group's children run on any worker; join must return exactly
 * when the owner reached join and no child or pending start() is left,
 * also when children spawn more children into the group during join; the
 * first failure must cancel the group once; every failure must reach the
 * joiner exactly once.
 *
 * Approach: one 64-bit atomic word {count, JOINING, CLOSED}
 * (docs/semantics.md rule 1).  Spawn is a CAS increment that fails once
 * CLOSED.  A child's end is a CAS decrement; the decrement that takes the
 * count to 0 while JOINING is set also sets CLOSED and wakes the owner.
 * The owner publishes its park generation before setting JOINING
 * (release), so the closing child reads it after its acquire CAS.
 * Failures are leaves allocated by the failing child and appended under
 * a spinlock; the first failure (an atomic exchange on `failed`) cancels
 * the group's scope.  Join turns the list into one weft_error_t.
 *
 * Owed children.  Most children of a fork-join group are spawned by its
 * owner and run inline at its join (B1 fib: every one at 1 worker), so a
 * CAS on the word per spawn and another per end was the common cost.
 * The owner's own spawns (not start()) are "owed" instead: counted in
 * `owed`, an owner-only field, and marked on the task.  At its join the
 * owner runs what it can inline and settles each such child in `owed`
 * (sched.c, worker_inline_end) without touching the word; a child taken
 * by another worker (or by the owner's worker while the owner was
 * parked) counts the word down at its end like any child, which may take
 * the count below 0 before the join; the join then adds what is still
 * owed in the same atomic step that sets JOINING, after which the count
 * is the number of children not ended (invariant 1 holds from there).
 *
 * Credit.  A spawn from outside the owner (a plain thread holding a
 * retain, B3 external; a child spawning into its own group) is counted
 * in the word too, and the word's line is the one every child's end
 * takes with a locked read-modify-write: a spawner feeding two workers
 * paid a contended CAS per spawn there (B3 external's slow repetitions:
 * about 280 ns of the producer's CPU per spawn against 92).  Such a
 * spawn adds WEFT__GROUP_XC_BATCH counts to the word at once instead, one
 * for its child and the rest as credit (`xcredit`, a word of its own on
 * a line of its own), from which the following outside spawns take one
 * count each with a CAS that only spawners touch.  Credit is counted in
 * the word, so it keeps the count above 0; the join revokes it (sets
 * XC_REVOKED, taking what was left) before it sets JOINING, and takes
 * that much off the count in the same atomic step as it sets JOINING.
 * After the revoke outside spawns count in the word one at a time, as
 * before; a refill that lost the race to the revoke (its batch already
 * in the word, its credit refused) gives the rest of its batch back at
 * once, which cannot close the group: its own child is counted and not
 * yet published.  The join's fast path (no child left, no retain) needs
 * no revoke: credit left over would be in the count, and no spawner
 * is left to take any.  The revoking join sets the credit back to 0 once
 * the group closed, for the record's next life, so that an open does
 * not touch the credit's line (B1 opens a group per node).  The owner's spawns never take credit (they are
 * owed), nor does start() (its handshake counts in the word).
 *
 * Budgets (docs/semantics.md rules 50 and 51).  A group opened with a
 * child cap, a stack cap or WEFT_GROUP_CPU_TIME gets a budget record
 * (struct weft__group_budget, inside the group record).
 * Every group keeps `bud`, the budget its children are charged to: its
 * own, else the nearest capped ancestor's (the opener's group's `bud`),
 * and each budget points to the next capped one above it (`up`).  So a
 * group outside every capped subtree has bud == NULL, and a spawn and a
 * child's end pay one branch on it; inside one, a spawn walks only the
 * capped ancestors.  The child cap counts its own children in `live`
 * under the budget's spin lock, not in the join word: owed children
 * (above) never touch the word, and a slot must be handed over, not
 * just counted.  A spawn that finds the cap reached lists a waiter node
 * on its stack and parks cancellably; a child's end hands its slot to
 * the oldest waiter (granted, under the lock; the wake is deferred to
 * after the unlock, before which the waiter cannot run) instead of
 * freeing it, so waiters are served first come first served and a new
 * spawn cannot overtake them (it queues whenever a waiter is listed).
 * A spawn into a budgeted subtree counts itself in the join word first
 * (unless owed: the owner is not joining then), so the group cannot
 * close while the spawn charges or waits for a slot: the budgets it
 * walks (the group's, and those above, which live until their groups
 * close) stay alive, also for a spawner outside the group that holds it
 * through a retain; a failed spawn counts down last.  The stack cap is an
 * atomic sum per budget, raised by a CAS bounded by the cap at each
 * creation and lowered at each end; a spawn that would pass a cap
 * undoes what it charged below it and fails with -ENOMEM.
 *
 * Run time (weft_group_cpu_ns; docs/semantics.md rule 51), for every
 * group.  Each worker cuts its time into slices (w->slice_start): a
 * switch-out ends the departing task's slice and charges it to the
 * task's own record (`cpu`), and the task switched into next starts from
 * the same read, so the slices of a worker form an unbroken chain; a
 * switch-in from the scheduler loop starts a fresh one (the loop's time
 * and idle time are nobody's).  The read is a load of the run-time
 * sampler's clock (core/cpuclock.c: published every period, so most
 * short slices are charged 0 and the one a publication fell into a
 * whole period, right on average), or, for a task of a subtree opened
 * with WEFT_GROUP_CPU_TIME (t->acct, set by the budgeted spawn path
 * from bud->acct), the cycle counter itself: exact, at about 10 ns a
 * read.  Such a task starts its slice on the counter (exact_start) and
 * at its end moves the sampled chain past it, so the two never mix and
 * the sampled chain's differences are never negative (the sampler's
 * clock only grows).  Children run inline at a join are not
 * cut one by one: the join ends the owner's slice before the first and
 * charges the whole inline stretch to g at the end (on g's clock).  A
 * child that parks meanwhile charges the slice up to its switch-out to
 * itself, and a nested join inside it charges it first; either way the
 * time stays in g's subtree, though not always with the child that
 * spent it.  A task folds `cpu` into its group at its end, and at a
 * switch-out once it passes WEFT__CPU_FOLD_TICKS (about a millisecond),
 * so a group's total grows while its children run.  A group's total
 * (cpu_shared + cpu_owed) is added at its join to the owner's `cpu`,
 * which reaches the owner's group when the owner folds: a subtree's time
 * climbs one level per fold, never by walking the ancestors.  Writes
 * that only the owner's stack makes (the inline stretch, owed children
 * run inline) go to cpu_owed with a load and a store (no
 * read-modify-write, as for the join word: "Owed children").
 *
 * Rejected: a mutex + condition variable per group (a parked fiber must
 * not block its worker thread) and separate counters for children and
 * pending starts (two words cannot be checked for "both zero" atomically;
 * Trio's _pending_starts lives beside its child set under one lock).
 *
 * Invariants
 *   1. Once JOINING: count = children created and not yet done, including
 *      pending starts (before it, minus the owed children that ended,
 *      plus the credit), and for a moment the rest of a refill that the
 *      revoke refused, given back before its child is published.
 *   2. CLOSED implies count = 0 and JOINING; nothing is spawned after it.
 *   3. A child's last access to g is weft__group_child_done (g may be freed
 *      right after by the owner).
 *   4. Every failed child's leaf is on the list (or counted in `lost`)
 *      before its child_done: join sees every failure.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/error.h"
#include "base/id.h"
#include "base/tick.h"
#include "core/frame.h"
#include "core/group.h"
#include "core/inspect.h"
#include "core/local.h"
#include "core/records.h"
#include "core/sched.h"
#include "core/task.h"
#include "runtime.h"

/* {======================================================= counter */

/* Count n more children; WEFT_ECLOSED once the group closed. */
static int group_add_n(struct weft_group *g, uint64_t n)
{
	/* relaxed: a first guess; the CAS reloads on failure. */
	uint64_t old = atomic_load_explicit(&g->word, memory_order_relaxed);
	do {
		if (old & WEFT__GROUP_CLOSED)
			return WEFT_ECLOSED;
		/* The CAS's atomicity decides a spawn against the close (it
		 * counts before it or sees CLOSED: invariant 2).  acq_rel,
		 * as every update of the join word: the word's updates stay
		 * one release sequence up to the owner's acquire at close. */
	} while (!atomic_compare_exchange_weak_explicit(&g->word, &old,
		old + n * WEFT__GROUP_ONE, memory_order_acq_rel,
		memory_order_relaxed));
	return 0;
}

/* Count one more child; WEFT_ECLOSED once the group closed. */
static int group_add(struct weft_group *g)
{
	return group_add_n(g, 1);
}

/* Count one more child of a spawn from outside g (see "Credit"): a
 * unit of the credit if there is one, else a batch added to the word at
 * once, the rest of which becomes credit; the word alone once the join
 * revoked the credit.  WEFT_ECLOSED once the group closed. */
static int group_add_outside(struct weft_group *g)
{
	/* relaxed: a first guess; the CAS reloads on failure. */
	uint64_t c = atomic_load_explicit(&g->xcredit, memory_order_relaxed);
	while (c >= WEFT__GROUP_XC_ONE && !(c & WEFT__GROUP_XC_REVOKED)) {
		/* acq_rel: acquire, the batch's add to the word (sequenced
		 * before the refill's release below) happens before this
		 * child, so before its end's decrement; release, as every
		 * update of the credit (it orders nothing else). */
		if (atomic_compare_exchange_weak_explicit(&g->xcredit, &c,
			    c - WEFT__GROUP_XC_ONE, memory_order_acq_rel,
			    memory_order_relaxed))
			return 0;
	}
	if (c & WEFT__GROUP_XC_REVOKED)
		return group_add(g);
	/* Empty: a batch, one count for this child and the rest for the
	 * credit. */
	int rc = group_add_n(g, WEFT__GROUP_XC_BATCH);
	if (rc < 0)
		return rc;
	uint64_t rest = WEFT__GROUP_XC_BATCH - 1;
	/* c: the credit as last read; a CAS that finds it changed (another
	 * spawner's refill) reloads it. */
	while (!(c & WEFT__GROUP_XC_REVOKED)) {
		/* acq_rel: release, the batch's add above before its units
		 * (pairs with the taker's acquire above and the join's
		 * revoke). */
		if (atomic_compare_exchange_weak_explicit(&g->xcredit, &c,
			    c + rest * WEFT__GROUP_XC_ONE, memory_order_acq_rel,
			    memory_order_relaxed))
			return 0;
	}
	/* Revoked meanwhile: the rest goes back to the word.  It cannot
	 * close g: this child's count is in the word and the child is not
	 * published yet.  acq_rel, as every update of the join word. */
	atomic_fetch_sub_explicit(&g->word, rest * WEFT__GROUP_ONE,
		memory_order_acq_rel);
	return 0;
}

void weft__group_child_done(struct weft_group *g)
{
	/* relaxed: a first guess; the CAS reloads on failure. */
	uint64_t old = atomic_load_explicit(&g->word, memory_order_relaxed);
	uint64_t next;
	do {
		/* Below 1 only before the join added the owed children. */
		WEFT_ASSERT(!(old & WEFT__GROUP_JOINING) ||
				weft__group_count(old) > 0,
			"group count underflow");
		next = old - WEFT__GROUP_ONE;
		if (weft__group_count(next) == 0 &&
			(next & WEFT__GROUP_JOINING))
			next |= WEFT__GROUP_CLOSED;
		/* acq_rel: release publishes this child's leaf and outcome
		 * to the owner; acquire reads owner_gen (set before the
		 * owner's release of JOINING). */
	} while (!atomic_compare_exchange_weak_explicit(&g->word, &old, next,
		memory_order_acq_rel, memory_order_relaxed));
	if (next & WEFT__GROUP_CLOSED)
		weft__task_wake(g->owner, g->owner_gen);
}

/* }======================================================= */

/* {======================================================= failures */

static void group_add_leaf(struct weft_group *g, struct weft__leaf *l)
{
	weft__spin_lock(&g->errors_lock);
	if (l == NULL) {
		g->lost++;
	} else {
		if (g->leaves_tail)
			g->leaves_tail->next = l;
		else
			g->leaves_head = l;
		g->leaves_tail = l;
		g->leaves++;
	}
	weft__spin_unlock(&g->errors_lock);
}

static void group_first_failure(struct weft_group *g,
	const struct weft_task *by)
{
	/* acq_rel exchange: exactly one failure cancels the group. */
	if (atomic_exchange_explicit(&g->failed, true, memory_order_acq_rel))
		return;
	/* The reason names the failing task, so that a sibling's collateral
	 * failure can say why it was cancelled (weft_error_format). */
	char name[WEFT__TASK_NAME_MAX];
	weft__task_name_load(by, name);
	char text[sizeof((weft_cancel_reason_t *)0)->text];
	snprintf(text, sizeof text, "task '%s'#%llu failed", name,
		(unsigned long long)by->id);
	weft__scope_cancel(&g->scope, WEFT_CANCEL_GROUP_FAILURE, text, false,
		by->id);
}

void weft__group_child_failed(struct weft_group *g, struct weft_task *t)
{
	group_add_leaf(g, weft__task_failure_leaf(t));
	group_first_failure(g, t);
}

size_t weft__group_frames_pending(struct weft_group *g)
{
	/* relaxed: a snapshot's count (see nframes, taken). */
	unsigned n = atomic_load_explicit(&g->nframes, memory_order_relaxed);
	size_t pending = 0;
	for (unsigned i = 0; i < n && i < WEFT__GROUP_FRAMES; i++)
		pending += !atomic_load_explicit(&g->frames[i].taken,
			memory_order_relaxed);
	/* The caller holds g->scope.lock, under which chunks are listed
	 * and unlisted (before they are freed).  Unused frames of a chunk
	 * are marked taken. */
	for (struct weft__frame_chunk *c = g->fchunks; c; c = c->next)
		for (size_t i = 0; i < WEFT__FRAME_CHUNK_FRAMES; i++)
			pending += !atomic_load_explicit(&c->frames[i].taken,
				memory_order_relaxed);
	return pending;
}

/* Unlists chunk c of g and frees it: nobody reads its frames any more. */
static void group_chunk_free(struct weft_group *g, struct weft__frame_chunk *c)
{
	weft__spin_lock(&g->scope.lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		g->fchunks = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	weft__spin_unlock(&g->scope.lock);
	weft__free(c);
}

void weft__group_chunk_put(struct weft_group *g, struct weft__frame_chunk *c)
{
	/* acq_rel: see `left`. */
	if (atomic_fetch_sub_explicit(&c->left, 1, memory_order_acq_rel) == 1)
		group_chunk_free(g, c);
}

/* The next chunk frame of g, or NULL without memory for a new chunk (the
 * spawn then takes the record path).  The full chunk it leaves is sealed:
 * freed now if every frame of it was taken, else by its last taker.
 * Owner only. */
static struct weft__frame *group_chunk_frame(struct weft_group *g)
{
	struct weft__frame_chunk *c = g->fchunk_cur;
	if (c == NULL || g->fchunk_used == WEFT__FRAME_CHUNK_FRAMES) {
		struct weft__frame_chunk *n = weft__alloc(
			WEFT__FRAME_CHUNK_BYTES);
		if (n == NULL)
			return NULL;
		/* Unused frames are not pending (introspection). */
		for (size_t i = 0; i < WEFT__FRAME_CHUNK_FRAMES; i++)
			atomic_init(&n->frames[i].taken, true);
		atomic_init(&n->left, WEFT__FRAME_CHUNK_OPEN);
		n->prev = NULL;
		weft__spin_lock(&g->scope.lock);
		n->next = g->fchunks;
		if (n->next != NULL)
			n->next->prev = n;
		g->fchunks = n;
		weft__spin_unlock(&g->scope.lock);
		g->fchunk_cur = n;
		g->fchunk_used = 0;
		/* acq_rel: see `left`. */
		unsigned seal = WEFT__FRAME_CHUNK_OPEN -
			(unsigned)WEFT__FRAME_CHUNK_FRAMES;
		if (c != NULL &&
			atomic_fetch_sub_explicit(&c->left, seal,
				memory_order_acq_rel) == seal)
			group_chunk_free(g, c);
		c = n;
	}
	struct weft__frame *f = &c->frames[g->fchunk_used++];
	f->chunk = c;
	return f;
}

/* Frees g's chunks left at its join (the one being filled, and sealed
 * ones still listed: none can be, every frame having been taken, but the
 * list is walked anyway).  The join waited for every child, so no taker
 * reads a chunk any more, and the group's scope has left the tree that
 * introspection walks. */
static __attribute__((noinline)) void group_free_chunks_slow(
	struct weft_group *g)
{
	weft__spin_lock(&g->scope.lock);
	struct weft__frame_chunk *c = g->fchunks;
	g->fchunks = NULL;
	weft__spin_unlock(&g->scope.lock);
	g->fchunk_cur = NULL;
	while (c != NULL) {
		struct weft__frame_chunk *next = c->next;
		weft__free(c);
		c = next;
	}
}

/* Out of line but for the test: the join of every fork-join node pays
 * it (B1: two more registers saved when it was inlined). */
static inline void group_free_chunks(struct weft_group *g)
{
	if (WEFT__UNLIKELY(g->fchunk_cur != NULL))
		group_free_chunks_slow(g);
}

void weft__group_frame_failed(const struct weft__frame_v *f, int rc)
{
	struct weft_group *g = f->g;
	const char *name = f->name ? f->name : "task";
	char msg[96];
	snprintf(msg, sizeof msg, "task '%s' could not start: %s", name,
		weft_strerror(rc));
	/* relaxed: a logical clock that orders nothing else. */
	uint64_t seq = atomic_fetch_add_explicit(&g->rt->error_seq, 1,
		memory_order_relaxed);
	/* NULL (no memory for the leaf either): counted as lost. */
	group_add_leaf(g,
		weft__error_leaf_create(rc, msg, name, 0, seq, false, NULL));
	/* acq_rel exchange: exactly one failure cancels the group (as
	 * group_first_failure, with no task to name but the frame's). */
	if (!atomic_exchange_explicit(&g->failed, true, memory_order_acq_rel))
		weft__scope_cancel(&g->scope, WEFT_CANCEL_GROUP_FAILURE, msg,
			false, 0);
	if (f->ctx)
		weft__local_context_unref(f->ctx);
	/* Its end: an owed child that its owner did not run inline. */
	weft__group_child_done(g);
}

/* }======================================================= */

/* {======================================================= budgets */

/* Hands a child slot of b on: to the oldest waiter (granted; woken after
 * the unlock), or back to the cap.  Thread: any. */
static void budget_slot_put(struct weft__group_budget *b)
{
	weft__spin_lock(&b->lock);
	struct weft__slot_waiter *w = b->head;
	struct weft_task *ready = NULL;
	if (w != NULL) {
		b->head = w->next;
		if (b->head == NULL)
			b->tail = NULL;
		w->granted = true;
		/* The waiter cannot run before weft__sched_ready below, so
		 * its record stays valid (task.h); its node may go as soon
		 * as the lock is dropped, so nothing of it is read after. */
		if (weft__task_wake_deferred(w->task, w->gen))
			ready = w->task;
	} else {
		b->live--;
	}
	weft__spin_unlock(&b->lock);
	if (ready)
		weft__sched_ready(ready);
}

/* Unlists w if it is still listed.  Under b's lock. */
static void budget_unlist(struct weft__group_budget *b,
	struct weft__slot_waiter *w)
{
	struct weft__slot_waiter *prev = NULL;
	for (struct weft__slot_waiter *x = b->head; x; prev = x, x = x->next) {
		if (x != w)
			continue;
		if (prev)
			prev->next = w->next;
		else
			b->head = w->next;
		if (b->tail == w)
			b->tail = prev;
		return;
	}
}

/* Takes a child slot of g's cap, waiting for one if self may wait (see
 * "Budgets"). */
static int budget_slot_take(struct weft_group *g, struct weft__group_budget *b,
	struct weft_task *self, unsigned flags)
{
	weft__spin_lock(&b->lock);
	if (b->head == NULL && b->live < b->max_children) {
		b->live++;
		weft__spin_unlock(&b->lock);
		return 0;
	}
	weft__spin_unlock(&b->lock);
	if (self == NULL || (flags & WEFT_SPAWN_NOWAIT))
		return -EAGAIN;
	/* A checkpoint now: it may wait (rule 22's entry, which may also
	 * yield once for the cooperative budget). */
	int rc = weft__task_blocking_enter(self);
	if (rc < 0)
		return rc;
	weft__task_link_root(self);
	struct weft__slot_waiter node = { .task = self };
	bool listed = false;
	for (;;) {
		uint64_t gen = weft__task_park_prepare(self, true);
		weft__spin_lock(&b->lock);
		if (node.granted) {
			weft__spin_unlock(&b->lock);
			rc = 0;
			break;
		}
		/* relaxed: our own cur_scope.  After the prepare (seq_cst):
		 * a cancellation that marks the scope after this check sees
		 * the park cancellable and wakes us (core/cancel.c,
		 * invariant 3). */
		struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		if (weft__scope_is_cancelled(cur)) {
			if (listed)
				budget_unlist(b, &node);
			weft__spin_unlock(&b->lock);
			weft__scope_note_observed(weft__scope_origin(cur));
			rc = -ECANCELED;
			break;
		}
		if (!listed) {
			if (b->head == NULL && b->live < b->max_children) {
				b->live++;
				weft__spin_unlock(&b->lock);
				return 0;
			}
			node.next = NULL;
			if (b->tail)
				b->tail->next = &node;
			else
				b->head = &node;
			b->tail = &node;
			listed = true;
		}
		node.gen = gen;
		weft__spin_unlock(&b->lock);
		weft__task_park_commit_obj(self, "group slot", WEFT__WAIT_GROUP,
			g);
	}
	return rc;
}

/* Charges a new child of g (see "Budgets"): a child slot of g's own cap,
 * one stack to every capped budget from g->bud up.  0, or an error with
 * nothing charged. */
static int budget_charge(struct weft_group *g, struct weft_task *self,
	unsigned flags)
{
	struct weft__group_budget *own = weft__group_own_budget(g);
	if (own != NULL && own->max_children != 0) {
		int rc = budget_slot_take(g, own, self, flags);
		if (rc < 0)
			return rc;
	}
	size_t sz = g->rt->stacks.stack_size;
	for (struct weft__group_budget *b = g->bud; b; b = b->up) {
		if (b->stack_max == 0)
			continue;
		/* relaxed: a counter bounded by the CAS; it orders nothing. */
		size_t used = atomic_load_explicit(&b->stack_used,
			memory_order_relaxed);
		bool ok;
		do {
			ok = used <= b->stack_max && sz <= b->stack_max - used;
		} while (ok &&
			!atomic_compare_exchange_weak_explicit(&b->stack_used,
				&used, used + sz, memory_order_relaxed,
				memory_order_relaxed));
		if (ok)
			continue;
		for (struct weft__group_budget *x = g->bud; x != b; x = x->up)
			if (x->stack_max != 0)
				atomic_fetch_sub_explicit(&x->stack_used, sz,
					memory_order_relaxed);
		if (own != NULL && own->max_children != 0)
			budget_slot_put(own);
		return -ENOMEM;
	}
	return 0;
}

/* Gives back what budget_charge took for one child of g. */
static void budget_uncharge(struct weft_group *g)
{
	size_t sz = g->rt->stacks.stack_size;
	for (struct weft__group_budget *b = g->bud; b; b = b->up)
		if (b->stack_max != 0)
			/* relaxed: see budget_charge. */
			atomic_fetch_sub_explicit(&b->stack_used, sz,
				memory_order_relaxed);
	struct weft__group_budget *own = weft__group_own_budget(g);
	if (own != NULL && own->max_children != 0)
		budget_slot_put(own);
}

void weft__group_budget_end(struct weft_group *g)
{
	budget_uncharge(g);
}

/* }======================================================= */

/* {======================================================= run time */

/* Adds d ticks to g's cpu_owed (owner only: see cpu_owed). */
static inline void group_cpu_owed_add(struct weft_group *g, uint64_t d)
{
	/* relaxed: counters, one writer at a time (core/group.h). */
	atomic_store_explicit(&g->cpu_owed,
		atomic_load_explicit(&g->cpu_owed, memory_order_relaxed) + d,
		memory_order_relaxed);
}

uint64_t weft__task_slice_cut_exact(weft__worker_t *w)
{
	uint64_t now = weft__tick_now();
	uint64_t d = now - w->exact_start;
	w->exact_start = now;
	w->slice_start = weft__task_sampled_now(w);
	return d;
}

void weft__group_cpu_fold(struct weft_task *t)
{
	struct weft_group *g = weft__task_cpu_group(t);
	if (g != NULL)
		/* relaxed: a counter (see cpu_shared). */
		atomic_fetch_add_explicit(&g->cpu_shared, t->cpu,
			memory_order_relaxed);
	t->cpu = 0;
}

void weft__group_cpu_end(struct weft_group *g, struct weft_task *t)
{
	/* relaxed: counters (see cpu_owed for why a load and a store do). */
	if (t->owed && t->stack_borrowed)
		group_cpu_owed_add(g, t->cpu);
	else
		atomic_fetch_add_explicit(&g->cpu_shared, t->cpu,
			memory_order_relaxed);
	t->cpu = 0;
}

/* g's total so far, in ticks. */
static uint64_t group_cpu_ticks(const struct weft_group *g)
{
	/* relaxed: counters. */
	return atomic_load_explicit(&g->cpu_shared, memory_order_relaxed) +
		atomic_load_explicit(&g->cpu_owed, memory_order_relaxed);
}

int64_t weft_group_cpu_ns(const weft_group_t *gh)
{
	if (gh == NULL)
		return -EINVAL;
	const struct weft_group *g = weft__group_from_handle(gh,
		"weft_group_cpu_ns");
	if (g == NULL)
		return WEFT_EMISUSE;
	if (!weft__group_cpu_counted(g))
		return -ENOTSUP;
	return weft__tick_to_ns(group_cpu_ticks(g));
}

uint64_t weft__group_cpu_ticks(const struct weft_group *g)
{
	return group_cpu_ticks(g);
}

bool weft__group_cpu_counted(const struct weft_group *g)
{
	return (g->bud != NULL && g->bud->acct) ||
		g->rt->cpuclock.period_ns != 0;
}

/* }======================================================= */

/* {======================================================= open / spawn */

/* g's own budget, if the options (validated) ask for a cap. */
static void group_budget_init(struct weft_group *g, const weft_group_opts_t *o)
{
	if (o->max_children != 0 || o->stack_bytes_max != 0 ||
		(o->flags & WEFT_GROUP_CPU_TIME)) {
		struct weft__group_budget *b = &g->budget_rec;
		memset(b, 0, sizeof *b);
		b->g = g;
		b->up = g->bud;
		b->max_children = o->max_children;
		b->stack_max = o->stack_bytes_max;
		/* Timed below a timed budget too: the subtree is. */
		b->acct = (o->flags & WEFT_GROUP_CPU_TIME) ||
			(b->up != NULL && b->up->acct);
		atomic_init(&b->stack_used, 0);
		weft__spin_init(&b->lock);
		g->bud = b;
	}
}

/* Every field of a group record before its scope, as a clear would
 * leave them, but those group_open sets anyway (owner, rt, open_site,
 * bud): stores instead of a clear of the whole head (B1 opens a group per
 * node; the clear was 58 instructions of about 1000).  A field added
 * before `scope` must be added here: the assertion counts them by size. */
_Static_assert(offsetof(struct weft_group, scope) == 120,
	"group_head_init sets every field before scope: update it");
/* What a spawn from outside reads off the join word's cache line (see
 * struct weft_group). */
_Static_assert(offsetof(struct weft_group, owner) >= 64 &&
		offsetof(struct weft_group, rt) >= 64 &&
		offsetof(struct weft_group, bud) >= 64,
	"owner, rt and bud must stay 64 bytes past the join word");
static inline __attribute__((always_inline)) void group_head_init(
	struct weft_group *g)
{
	atomic_init(&g->word, 0);
	g->owner_gen = 0;
	g->owed = 0;
	weft__spin_init(&g->errors_lock);
	g->leaves_head = g->leaves_tail = NULL;
	g->leaves = 0;
	g->lost = 0;
	atomic_init(&g->failed, false);
	atomic_init(&g->refs, 1);
	g->joined = false;
	g->has_deadline = false;
	atomic_init(&g->outside, false);
	atomic_init(&g->nframes, 0);
	g->fchunks = NULL;
	g->fchunk_cur = NULL;
	g->fchunk_used = 0;
}

/* Always inlined: weft_group_open's copy has no options code at all. */
static inline __attribute__((always_inline)) int group_open(weft_group_t **out,
	const weft_group_opts_t *opts, void *site)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	/* The private deadline scope of WEFT_GROUP_DEADLINE, entered first,
	 * so that it is just outside the group's scope. */
	weft_scope_t *ds = NULL;
	if (WEFT__UNLIKELY(opts != NULL)) {
		if (opts->flags &
			~(unsigned)(WEFT_GROUP_DEADLINE | WEFT_GROUP_CPU_TIME))
			return -EINVAL;
		/* A cap below one stack could never hold a child: a unit
		 * mistake, refused rather than failing every spawn. */
		if (opts->stack_bytes_max != 0 &&
			opts->stack_bytes_max < t->rt->stacks.stack_size)
			return -EINVAL;
		if (opts->flags & WEFT_GROUP_DEADLINE) {
			int rc = weft_scope_open(&ds, opts->deadline,
				WEFT_SCOPE_FAIL);
			if (rc < 0)
				return rc;
		}
	}
	struct weft_group *g = weft__record_get(WEFT__RECORD_GROUP);
	if (g == NULL) {
		g = weft__alloc(sizeof *g);
		if (g == NULL) {
			weft_scope_destroy(ds);
			return -ENOMEM;
		}
		/* A new record: its generation starts here and survives
		 * every reuse (records.h, handles); retains is 0 at the end
		 * of every life (each retain was released). */
		weft__record_tag_check(g);
		atomic_init(&g->gen, 0);
		atomic_init(&g->retains, 0);
		/* 0 at every open: set back by each join that revoked it
		 * (group_wait_closed). */
		atomic_init(&g->xcredit, 0);
		memset(&g->scope, 0, WEFT__SCOPE_CLEAR);
		weft__scope_init_embedded(&g->scope, WEFT__SCOPE_GROUP, 0);
	} else {
		weft__scope_renew_embedded(&g->scope, WEFT__SCOPE_GROUP);
	}
	group_head_init(g);
	/* A group is opened by a task, so on a worker, whose id block
	 * spares the TLS access of weft__id_next. */
	g->scope.id = weft__id_next_in(&weft__sched_current()->ids);
	g->owner = t;
	g->rt = t->rt;
	g->open_site = site;
	/* The budget its children are charged to ("Budgets"): inherited
	 * from the opener's group unless opts give it its own. */
	g->bud = t->group ? t->group->bud : NULL;
	if (WEFT__UNLIKELY(opts != NULL)) {
		group_budget_init(g, opts);
		g->has_deadline = ds != NULL;
		g->deadline_scope = ds;
	}
	/* Run time ("Run time"): outside the clear. */
	atomic_store_explicit(&g->cpu_shared, 0, memory_order_relaxed);
	atomic_store_explicit(&g->cpu_owed, 0, memory_order_relaxed);
	/* Not linked: a group whose children all run inline never takes a
	 * scope lock (core/cancel.c, "Lazy links"). */
	weft__scope_push_lazy(t, &g->scope);
	weft__alloc_census_add(WEFT__CENSUS_GROUP, 1);
	/* A group is opened by a task, so on a worker (stats.h). */
	weft__stats_inc(&weft__sched_current()->stats.groups);
	*out = weft__group_handle(g);
	return 0;
}

int weft_group_open(weft_group_t **out)
{
	return group_open(out, NULL, __builtin_return_address(0));
}

int weft_group_open_opts(weft_group_t **out, const weft_group_opts_t *opts)
{
	return group_open(out, opts, __builtin_return_address(0));
}

/* Whether self (NULL: a plain thread) is inside g: its owner, or a task
 * whose scope chain passes through g's scope, which it cannot leave
 * before that task ends. */
static bool group_inside(struct weft_group *g, struct weft_task *self)
{
	if (self == g->owner)
		return true;
	if (self == NULL)
		return false;
	/* relaxed: our own cur_scope. */
	for (struct weft_scope *x = atomic_load_explicit(&self->cur_scope,
		     memory_order_relaxed);
		x; x = x->parent)
		if (x == &g->scope)
			return true;
	return false;
}

/* Whether g's scope is cancelled, as seen by self.  g's scope may not be
 * linked yet (core/cancel.c, "Lazy links"): a task inside g pulls the
 * cancellation through the chain.  Anyone else reads the scope's flag
 * here, a first answer only, and *pull_later says so: walking the chain
 * from outside is safe once the new child is counted, which pins it (the
 * owner cannot leave the scopes above g before the join has waited for
 * that child), and group_new_child pulls then. */
static bool group_cancelled(struct weft_group *g, struct weft_task *self,
	bool *pull_later)
{
	if (!weft__scope_linked(&g->scope)) {
		if (group_inside(g, self))
			return weft__scope_check(&g->rt->cancel_gen, &g->scope);
		*pull_later = true;
	}
	return weft__scope_is_cancelled(&g->scope);
}

/* Creates a child record of g, counted in g: owed, or in the join word
 * (through the credit for a spawn from outside: see "Credit").  On
 * failure nothing exists. */
static inline __attribute__((always_inline)) int
group_create(struct weft_group *g, const char *name, bool literal, weft_fn fn,
	void *arg, bool owe, bool outside, struct weft_task **out)
{
	struct weft_task *t;
	int rc = weft__task_create_lit(g->rt, name, literal, fn, arg, &t);
	if (rc < 0)
		return rc;
	if (owe) {
		g->owed++;
		t->owed = true;
	} else {
		rc = outside ? group_add_outside(g) : group_add(g);
		if (rc < 0) {
			weft__task_unref(t);
			return rc;
		}
	}
	*out = t;
	return 0;
}

/* group_create for a g in a budgeted subtree: charged first (which may
 * wait for a child slot), uncharged on failure.  Counted in the join
 * word before anything else (unless owed: the owner is not joining), so
 * that g cannot close while the spawn charges or waits: the budgets
 * above g live until g's owner ends, which follows g's close, and a
 * spawner outside g (holding it through a retain) would otherwise walk
 * them as they go.  A failure counts down last (child_done: the last
 * touch of g). */
static __attribute__((noinline)) int group_create_budgeted(struct weft_group *g,
	struct weft_task *self, unsigned flags, const char *name, bool literal,
	weft_fn fn, void *arg, bool owe, struct weft_task **out)
{
	int rc;
	if (!owe && (rc = group_add(g)) < 0)
		return rc;
	rc = budget_charge(g, self, flags);
	if (rc == 0) {
		struct weft_task *t;
		rc = weft__task_create_lit(g->rt, name, literal, fn, arg, &t);
		if (rc == 0) {
			if (owe) {
				g->owed++;
				t->owed = true;
			}
			t->acct = g->bud->acct; /* before it is published */
			*out = t;
			return 0;
		}
		budget_uncharge(g);
	}
	if (!owe)
		weft__group_child_done(g);
	return rc;
}

/* Validates and creates the child record, counted in the group behind
 * handle gh (call names the public function, for a stale handle).  On
 * failure nothing exists. */
static int group_new_child(weft_group_t *gh, weft_fn fn, void *arg,
	const weft_spawn_opts_t *opts, const char *name, const char *call,
	bool owe_ok, struct weft_group **gout, struct weft_task **out)
{
	if (gh == NULL || fn == NULL)
		return -EINVAL;
	struct weft_group *g = weft__group_from_handle(gh, call);
	if (g == NULL)
		return WEFT_EMISUSE;
	*gout = g;
	/* NULL on a plain thread: allowed for spawns (the caller holds g
	 * alive with weft_group_retain; the join word's CAS is thread-safe and
	 * weft__sched_spawn uses the injection queue), not for start. */
	struct weft_task *self = weft__task_current();
	if (self != NULL && self->rt != g->rt)
		return WEFT_EMISUSE;
	unsigned flags = opts ? opts->flags : 0;
	bool pull_later = false;
	if ((flags & WEFT_SPAWN_UNLESS_CANCELLED) &&
		group_cancelled(g, self, &pull_later))
		return -ECANCELED;
	bool literal = false;
	if (opts && opts->name) {
		name = opts->name;
		literal = (flags & WEFT__SPAWN_LITERAL_NAME) != 0;
	}
	/* The owner's own spawns are owed (see "Owed children"), except a
	 * start(), whose handshake needs the count; after the join nothing
	 * may be spawned (the word is CLOSED then). */
	bool owe = owe_ok && self == g->owner;
	if (owe && g->joined)
		return WEFT_ECLOSED;
	/* Budgets ("Budgets"): one branch outside every capped subtree. */
	struct weft_task *t;
	int rc = WEFT__UNLIKELY(g->bud != NULL)
		? group_create_budgeted(g, self, flags, name, literal, fn, arg,
			  owe, &t)
		: group_create(g, name, literal, fn, arg, owe, owe_ok && !owe,
			  &t);
	if (rc < 0)
		return rc;
	if (pull_later && weft__scope_check(&g->rt->cancel_gen, &g->scope)) {
		/* From outside g (a task that holds its handle, or a plain
		 * thread holding a retain that no owner's retain linked),
		 * with the child counted: a cancellation from further out
		 * that nobody pulled into g's scope yet is pulled now, so the
		 * spawn is refused as it would be from inside.  Uncounted
		 * again, last (child_done is the last touch of g): nothing
		 * ran, nothing was seen. */
		weft__task_unref(t);
		if (g->bud != NULL)
			budget_uncharge(g);
		weft__group_child_done(g);
		return -ECANCELED;
	}
	/* The task-local context, a snapshot of the spawning task's (rule
	 * 36), not the owner's: no copy, at most one reference increment. */
	struct weft_context *ctx = self ? self->ctx : NULL;
	if (__builtin_expect(opts != NULL &&
			    (opts->context != NULL ||
				    (flags & WEFT_SPAWN_EMPTY_CONTEXT)),
		    0))
		ctx = (flags & WEFT_SPAWN_EMPTY_CONTEXT)
			? NULL
			: weft__local_context_norm(opts->context);
	if (ctx)
		weft__local_context_ref(ctx);
	weft__frame_child_init(g, t, flags, ctx);
	if (opts && opts->handle) {
		/* The run reference and the caller's handle.  Stores, no
		 * read-modify-write: t is not published yet (relaxed; the
		 * spawn publishes it). */
		atomic_store_explicit(&t->refs, 2, memory_order_relaxed);
		atomic_store_explicit(&t->handles, 1, memory_order_relaxed);
		*opts->handle = weft__task_handle(t);
	}
	*out = t;
	return 0;
}

/* The owner's spawn as a frame (core/frame.c), if it can be one: a
 * spawn with nothing that needs a record before the child starts (no
 * handle, no other context than the owner's, no name to copy), outside
 * every budgeted subtree, while g has frames left and the runtime does
 * not trace (a trace names the task at its spawn).  Counted as owed (see
 * "Owed children"), with the context reference taken, before the push
 * publishes it: a thief may run and end it at once.  0, -ECANCELED, or
 * 1 when the spawn must take the record path. */
static inline __attribute__((always_inline)) int
group_spawn_frame(struct weft_group *g, struct weft_task *self, weft_fn fn,
	void *arg, const char *name, unsigned flags)
{
	/* relaxed: the owner's own counter (see nframes). */
	unsigned nf = atomic_load_explicit(&g->nframes, memory_order_relaxed);
	if (g->bud != NULL || g->joined || WEFT__UNLIKELY(g->rt->trace))
		return 1;
	bool pull_later = false; /* stays false: the owner is inside */
	if ((flags & WEFT_SPAWN_UNLESS_CANCELLED) &&
		group_cancelled(g, self, &pull_later))
		return -ECANCELED;
	struct weft__frame *f;
	if (WEFT__LIKELY(nf < WEFT__GROUP_FRAMES))
		f = &g->frames[nf];
	else if ((f = group_chunk_frame(g)) == NULL)
		return 1;
	f->fn = fn;
	f->arg = arg;
	f->g = g;
	f->name = name;
	f->flags = flags;
	struct weft_context *ctx = self->ctx;
	if (ctx)
		weft__local_context_ref(ctx);
	f->ctx = ctx;
	/* relaxed, both: published by the push (see taken, nframes). */
	atomic_store_explicit(&f->taken, false, memory_order_relaxed);
	atomic_store_explicit(&g->nframes, nf + 1, memory_order_relaxed);
	g->owed++;
	if (WEFT__UNLIKELY(weft__frame_push(f) < 0)) {
		/* Never published: undone, and the record path tries. */
		atomic_store_explicit(&g->nframes, nf, memory_order_relaxed);
		atomic_store_explicit(&f->taken, true, memory_order_relaxed);
		if (nf >= WEFT__GROUP_FRAMES)
			g->fchunk_used--;
		g->owed--;
		if (ctx)
			weft__local_context_unref(ctx);
		return 1;
	}
	return 0;
}

/* group_spawn_frame behind a public entry point: when gh is a live group
 * and the caller its owner.  1 also for NULL gh or fn, which the record
 * path reports. */
static inline __attribute__((always_inline)) int
group_spawn_owner_frame(weft_group_t *gh, weft_fn fn, void *arg,
	const char *name, unsigned flags)
{
	if (WEFT__UNLIKELY(gh == NULL || fn == NULL))
		return 1;
	struct weft_group *g = weft__group_from_handle(gh, "weft_group_spawn");
	if (g == NULL)
		return WEFT_EMISUSE;
	struct weft_task *self = weft__task_current();
	if (self != g->owner)
		return 1;
	return group_spawn_frame(g, self, fn, arg, name, flags);
}

/* The spawn with a task record made at once (see group_spawn_frame). */
static int group_spawn_record(weft_group_t *gh, weft_fn fn, void *arg,
	const weft_spawn_opts_t *opts)
{
	struct weft_group *g;
	struct weft_task *t;
	int rc = group_new_child(gh, fn, arg, opts, "task", "weft_group_spawn",
		true, &g, &t);
	if (rc < 0)
		return rc;
	weft__frame_child_place(g, t);
	weft__sched_spawn(t);
	return 0;
}

int weft_group_spawn_opts(weft_group_t *gh, weft_fn fn, void *arg,
	const weft_spawn_opts_t *opts)
{
	/* A frame if nothing in opts needs the record at once. */
	int rc;
	if ((opts == NULL ||
		    (opts->handle == NULL && opts->context == NULL &&
			    !(opts->flags & WEFT_SPAWN_EMPTY_CONTEXT) &&
			    (opts->name == NULL ||
				    (opts->flags &
					    WEFT__SPAWN_LITERAL_NAME)))) &&
		(rc = group_spawn_owner_frame(gh, fn, arg,
			 opts ? opts->name : NULL,
			 opts ? opts->flags & ~WEFT__SPAWN_LITERAL_NAME : 0)) <=
			0)
		return rc;
	return group_spawn_record(gh, fn, arg, opts);
}

int weft_group_spawn_named(weft_group_t *g, const char *name, weft_fn fn,
	void *arg)
{
	weft_spawn_opts_t o = { .name = name };
	return weft_group_spawn_opts(g, fn, arg, &o);
}

int weft_group_spawn_literal(weft_group_t *gh, const char *name, weft_fn fn,
	void *arg)
{
	/* The owner's spawn as a frame without building opts (B1: every
	 * spawn comes this way, through weft_group_spawn); else the record
	 * path, without asking for a frame again. */
	int rc = group_spawn_owner_frame(gh, fn, arg, name, 0);
	if (rc <= 0)
		return rc;
	weft_spawn_opts_t o = { .name = name,
		.flags = name ? WEFT__SPAWN_LITERAL_NAME : 0 };
	return group_spawn_record(gh, fn, arg, &o);
}

int weft_group_start_opts(weft_group_t *gh, weft_fn fn, void *arg,
	const weft_spawn_opts_t *opts, void **value_out)
{
	if (gh != NULL && fn != NULL && weft__task_current() == NULL)
		return WEFT_ENOTFIBER; /* start parks the caller */
	struct weft_group *g;
	struct weft_task *t;
	int rc = group_new_child(gh, fn, arg, opts, "task", "weft_group_start",
		false, &g, &t);
	if (rc < 0)
		return rc;
	struct weft_task *self = weft__task_current();
	/* Our own reference, so the record outlives the child's end until
	 * we have read its outcome.  relaxed: t is not queued yet. */
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	rc = weft__task_start(self, g, t, value_out);
	weft__task_unref(t);
	return rc;
}

int weft_group_start_named(weft_group_t *g, const char *name, weft_fn fn,
	void *arg, void **value_out)
{
	weft_spawn_opts_t o = { .name = name };
	return weft_group_start_opts(g, fn, arg, &o, value_out);
}

/* }======================================================= */

/* {======================================================= join */

/* group_wait_closed past its fast path, with add the join's addition
 * to the word (JOINING, the owed children, minus the credit revoked) and
 * old a first guess of the word: returns once g closed. */
static WEFT_FIBER_FN void group_wait_closed_slow(struct weft_task *self,
	struct weft_group *g, uint64_t old, uint64_t add)
{
	while (weft__group_count(old + add) == 0) {
		/* acq_rel: acquire pairs with the children's release in
		 * child_done (their outcome is visible to the owner). */
		if (atomic_compare_exchange_weak_explicit(&g->word, &old,
			    (old + add) | WEFT__GROUP_CLOSED,
			    memory_order_acq_rel, memory_order_acquire))
			return;
	}
	/* About to park: link the chain, so that dumps show the group and
	 * a child parking later links only its own scopes. */
	weft__task_link_root(self);
	uint64_t gen = weft__task_park_prepare(self, false);
	g->owner_gen = gen;
	/* acq_rel: the release half publishes owner_gen before JOINING
	 * (pairs with child_done's acquire CAS); the acquire half sees the
	 * children's outcomes when the count is already 0. */
	old = atomic_fetch_add_explicit(&g->word, add, memory_order_acq_rel) +
		add;
	for (;;) {
		if (weft__group_count(old) != 0)
			break;
		/* acq_rel, acquire on failure: as in the fast path. */
		if (atomic_compare_exchange_weak_explicit(&g->word, &old,
			    old | WEFT__GROUP_CLOSED, memory_order_acq_rel,
			    memory_order_acquire))
			return;
	}
	weft__task_park_commit_obj(self, "join", WEFT__WAIT_GROUP, g);
	/* acquire: pairs with the closing child's release CAS. */
	WEFT_ASSERT(atomic_load_explicit(&g->word, memory_order_acquire) &
			WEFT__GROUP_CLOSED,
		"group owner woken before close");
}

/* Waits until the group closes.  Not cancellable: an outer cancellation
 * reaches the children through the scope tree. */
static WEFT_FIBER_FN void group_wait_closed(struct weft_task *self,
	struct weft_group *g)
{
	/* The owed children (see "Owed children") join the count here, with
	 * JOINING: those taken by other workers may have ended already (the
	 * count is then below 0), the others end after this. */
	uint64_t add = (uint64_t)g->owed * WEFT__GROUP_ONE |
		WEFT__GROUP_JOINING;
	g->owed = 0;
	/* Fast path (every child ran inline or already ended): close without
	 * preparing a park.  A concurrent spawn makes the CAS fail.  acquire:
	 * pairs with the children's release CAS in child_done. */
	uint64_t old = atomic_load_explicit(&g->word, memory_order_acquire);
	/* No child left and no retain: nobody else may change the word any
	 * more (a spawner is the owner, a live child or a retainer; a
	 * child's retain precedes its end, which the acquire above saw), so
	 * the close is a store, not a locked CAS (B1 closes a group per
	 * node).  relaxed, both: nobody else reads the word from here but
	 * the owner itself. */
	if (weft__group_count(old + add) == 0 &&
		atomic_load_explicit(&g->refs, memory_order_relaxed) == 1) {
		atomic_store_explicit(&g->word,
			(old + add) | WEFT__GROUP_CLOSED, memory_order_relaxed);
		return;
	}
	/* The credit of spawners from outside ("Credit"): revoked before
	 * JOINING is set, and what was left of it is taken off the count in
	 * the same atomic step that sets it.  (The fast path above had
	 * none to take: credit is counted in the word, and no spawner was
	 * left to hold any.)  acq_rel: acquire, the batch adds to the word
	 * that the units taken were part of happen before ours (their
	 * refills' release); release, as every update of the credit. */
	uint64_t c = atomic_fetch_or_explicit(&g->xcredit,
		WEFT__GROUP_XC_REVOKED, memory_order_acq_rel);
	add -= (c >> 1) * WEFT__GROUP_ONE; /* c / WEFT__GROUP_XC_ONE */
	group_wait_closed_slow(self, g, old, add);
	/* Closed: the credit is 0 again for the record's next life (set
	 * here and for a new record, not at every open: B1 opens a group
	 * per node and never touches the credit's line).  Nobody writes it
	 * any more: a refill in flight kept the count above 0 until it gave
	 * its batch back, after its CAS here, and a spawn after the close
	 * finds CLOSED in the word whatever it reads here.  relaxed: the
	 * next opener gets the record through the record caches. */
	atomic_store_explicit(&g->xcredit, 0, memory_order_relaxed);
}

static void group_unref(struct weft_group *g)
{
	/* A count of 1 is the caller's alone (a reference is only added by a
	 * holder: the owner or a retainer, while g is alive), so it needs no
	 * read-modify-write; the load is acquire, to see the writes of the
	 * dropper whose release decrement left the 1.  Otherwise acq_rel:
	 * the last dropper sees every write made under the others. */
	if (atomic_load_explicit(&g->refs, memory_order_acquire) != 1 &&
		atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) !=
			1)
		return;
	weft__scope_fini(&g->scope);
	weft__alloc_census_add(WEFT__CENSUS_GROUP, -1);
	/* A new generation: this life's handles are stale from now on
	 * (records.h).  Only the last dropper writes it: load and store,
	 * relaxed (the next opener gets the record through the caches). */
	atomic_store_explicit(&g->gen,
		atomic_load_explicit(&g->gen, memory_order_relaxed) + 1,
		memory_order_relaxed);
	weft__record_put(g->rt, WEFT__RECORD_GROUP, g);
}

/* g stops counting as an outside waker (see `outside`), if it did. */
static void group_outside_clear(struct weft_group *g)
{
	/* relaxed: see `outside`. */
	if (atomic_exchange_explicit(&g->outside, false, memory_order_relaxed))
		weft__timer_outside(&g->rt->timer, -1);
}

/* Frees what join no longer needs; the record itself lives on while
 * retained. */
static void group_finish(struct weft_group *g)
{
	/* Closed: a retainer can spawn nothing more, so wake nothing.  One
	 * predictable branch when the asleep report is off (never set).
	 * relaxed: see `outside`. */
	if (__builtin_expect(atomic_load_explicit(&g->outside,
				     memory_order_relaxed),
		    0))
		group_outside_clear(g);
	struct weft__leaf *l = g->leaves_head;
	while (l) {
		struct weft__leaf *next = l->next;
		weft__error_leaf_free(l);
		l = next;
	}
	g->leaves_head = g->leaves_tail = NULL;
	g->joined = true;
	group_unref(g);
}

/* Joins g (the owner is the caller and g's scope is innermost). */
static WEFT_FIBER_FN int group_join(struct weft_task *self,
	struct weft_group *g, weft_error_t **err_out)
{
	/* Introspection: a joiner running its children inline is waiting
	 * for the join too (relaxed; see insp_wait). */
	atomic_store_explicit(&self->insp_wait, "join", memory_order_relaxed);
	/* Run time ("Run time"): self's slice ends here; the children run
	 * inline are g's, charged as one stretch after, on g's clock (the
	 * cycle counter when g's subtree is counted exactly). */
	weft__worker_t *w = weft__sched_current();
	weft__task_slice_charge(w, self);
	bool exact = WEFT__UNLIKELY(g->bud != NULL) && g->bud->acct;
	if (WEFT__UNLIKELY(exact))
		w->exact_start = weft__tick_now();
	weft__sched_help_join(self, g);
	/* The stretch since the last switch-in or charge (a child that
	 * parked charged itself up to its switch-out) is g's; only the owner
	 * writes cpu_owed outside its inline children, which are done.
	 * Re-read: a child that parked may have resumed elsewhere. */
	uint64_t d = weft__task_slice_cut(weft__sched_current(), exact);
	if (d != 0)
		group_cpu_owed_add(g, d);
	group_wait_closed(self, g);
	atomic_store_explicit(&self->insp_wait, NULL, memory_order_relaxed);
	weft__scope_pop(self, &g->scope);
	group_free_chunks(g);
	/* The join is a checkpoint of the scope outside the group (relaxed:
	 * our own cur_scope). */
	struct weft_scope *outer = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	int rc = 0;
	if (g->leaves > 0 || g->lost > 0) {
		weft_error_t *e = weft__error_from_leaves(g->leaves_head,
			g->leaves, g->lost);
		g->leaves_head = g->leaves_tail = NULL;
		if (err_out)
			*err_out = e;
		else
			weft_error_free(e);
		rc = WEFT_ECHILD_FAILED;
	} else if (weft__scope_check(&self->rt->cancel_gen, outer)) {
		weft__scope_note_observed(weft__scope_origin(outer));
		rc = -ECANCELED;
	}
	if (WEFT__UNLIKELY(g->has_deadline)) {
		/* The private deadline scope (WEFT_GROUP_DEADLINE) is now
		 * innermost: -ETIMEDOUT when its own deadline cancelled the
		 * group (rc was -ECANCELED for it, and observed it). */
		int r = weft_scope_exit(g->deadline_scope);
		weft_scope_destroy(g->deadline_scope);
		g->has_deadline = false;
		if (r == -ETIMEDOUT && rc == -ECANCELED)
			rc = -ETIMEDOUT;
	}
	/* The subtree's run time climbs one level: to the owner, which
	 * folds it into its own group ("Run time"). */
	self->cpu += group_cpu_ticks(g);
	group_finish(g);
	return rc;
}

int weft_group_join(weft_group_t *gh, weft_error_t **err_out)
{
	if (gh == NULL)
		return -EINVAL;
	struct weft_group *g = weft__group_from_handle(gh, "weft_group_join");
	if (g == NULL)
		return WEFT_EMISUSE;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (self != g->owner || g->joined)
		return WEFT_EMISUSE;
	/* relaxed: our own cur_scope. */
	if (atomic_load_explicit(&self->cur_scope, memory_order_relaxed) !=
		&g->scope) {
		weft__scope_misnest_report("weft_group_join", self, &g->scope);
		return WEFT_EMISNEST;
	}
	if (err_out)
		*err_out = NULL;
	return group_join(self, g, err_out);
}

/* weft_group_retain; `user`: a reference the caller will release with
 * weft_group_release, counted in rt->user_refs (weft takes its own with
 * weft__group_retain). */
static int group_retain(weft_group_t *gh, bool user)
{
	if (gh == NULL)
		return -EINVAL;
	struct weft_group *g = weft__group_from_handle(gh, "weft_group_retain");
	if (g == NULL)
		return WEFT_EMISUSE;
	/* relaxed: the caller holds a reference (see group_unref); retains
	 * orders nothing. */
	/* A group handed out (to a thread, a portal) is linked by its
	 * owner, so that spawns from outside read its cancellation from
	 * its scope's flag (group_cancelled): the owner is inside it, so
	 * the chain cannot be left meanwhile. */
	struct weft_task *self = weft__task_current();
	if (self == g->owner && !g->joined)
		weft__scope_materialize(&g->scope);
	int had = atomic_fetch_add_explicit(&g->retains, 1,
		memory_order_relaxed);
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	/* relaxed: see user_refs (runtime.h). */
	if (user)
		atomic_fetch_add_explicit(&g->rt->user_refs, 1,
			memory_order_relaxed);
	/* The real clock's asleep report (rule 46): an open group handed
	 * out is an outside waker until it closes or the last retain goes.
	 * relaxed: CLOSED only filters; a retain racing the join's end may
	 * count a closed group, until its own release (a missed report,
	 * never a false one).  The +1 comes from a running task, or from a
	 * thread that holds a retain already counted (timer.h). */
	if (__builtin_expect(g->rt->timer.asleep_check, 0) && had == 0 &&
		!(atomic_load_explicit(&g->word, memory_order_relaxed) &
			WEFT__GROUP_CLOSED) &&
		!atomic_exchange_explicit(&g->outside, true,
			memory_order_relaxed))
		weft__timer_outside(&g->rt->timer, 1);
	return 0;
}

/* weft_group_release; `user` as for group_retain. */
static void group_release(weft_group_t *gh, bool user)
{
	struct weft_group *g = weft__group_from_handle(gh,
		"weft_group_release");
	if (g == NULL)
		return;
	/* Only a reference taken with weft_group_retain may be dropped here:
	 * dropping the owner's would free an open group under its owner
	 * (whose join would then wait forever).  relaxed: refs (acq_rel in
	 * group_unref) orders the memory; this count orders nothing. */
	int n = atomic_load_explicit(&g->retains, memory_order_relaxed);
	do {
		if (n <= 0) {
			weft__misuse("weft_group_release: group handle %p "
				     "(group #%llu) released more often than "
				     "retained with weft_group_retain",
				(void *)gh, (unsigned long long)g->scope.id);
			return;
		}
	} while (!atomic_compare_exchange_weak_explicit(&g->retains, &n, n - 1,
		memory_order_relaxed, memory_order_relaxed));
	if (n == 1)
		group_outside_clear(g); /* the last retain: see `outside` */
	/* relaxed: see user_refs (runtime.h); before the unref, which may
	 * free g. */
	if (user)
		atomic_fetch_sub_explicit(&g->rt->user_refs, 1,
			memory_order_relaxed);
	group_unref(g);
}

int weft_group_retain(weft_group_t *gh)
{
	return group_retain(gh, true);
}

void weft_group_release(weft_group_t *gh)
{
	group_release(gh, true);
}

int weft__group_retain(weft_group_t *gh)
{
	return group_retain(gh, false);
}

void weft__group_release(weft_group_t *gh)
{
	group_release(gh, false);
}

int weft_group_cancel(weft_group_t *gh, const char *reason)
{
	if (gh == NULL)
		return -EINVAL;
	struct weft_group *g = weft__group_from_handle(gh, "weft_group_cancel");
	if (g == NULL)
		return WEFT_EMISUSE;
	struct weft_task *t = weft__task_current();
	weft__scope_cancel(&g->scope, WEFT_CANCEL_EXPLICIT, reason, false,
		t ? t->id : 0);
	return 0;
}

int weft_group_fail(weft_group_t *gh, int code, const char *fmt, ...)
{
	if (gh == NULL)
		return -EINVAL;
	struct weft_group *g = weft__group_from_handle(gh, "weft_group_fail");
	if (g == NULL)
		return WEFT_EMISUSE;
	struct weft_task *self = weft__task_current();
	if (self == NULL || self != g->owner || g->joined)
		return WEFT_EMISUSE;
	char msg[256] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	}
	/* relaxed: a logical clock that orders nothing else. */
	uint64_t seq = atomic_fetch_add_explicit(&g->rt->error_seq, 1,
		memory_order_relaxed);
	struct weft__leaf *l = weft__error_leaf_create(code, msg, self->name,
		self->id, seq, weft__scope_check(&g->rt->cancel_gen, &g->scope),
		NULL);
	if (l)
		weft__task_leaf_context(self, l);
	group_add_leaf(g, l);
	group_first_failure(g, self);
	return l ? code : -ENOMEM;
}

/* Called at task exit when scopes are still entered: exits user scopes,
 * cancels and joins groups, innermost first. */
int weft__group_reap_unjoined(struct weft_task *t)
{
	int rc = 0;
	struct weft_scope *s;
	/* relaxed: t is the calling task; its own cur_scope. */
	while ((s = atomic_load_explicit(&t->cur_scope,
			memory_order_relaxed)) != &t->root_scope) {
		if (s->kind == WEFT__SCOPE_GROUP) {
			struct weft_group *g = WEFT__CONTAINER_OF(s,
				struct weft_group, scope);
			/* A panic is the failure; its open groups are
			 * not a second one (rule 45). */
			if (t->rt->cfg.abort_on_missing_join && !t->panicked) {
				char site[256];
				weft__backtrace_site(g->open_site, site,
					sizeof site);
				weft__diag("task '%s' returned without joining "
					   "the group opened at %s (rule 7: "
					   "abort_on_missing_join)",
					t->name, site);
				abort();
			}
			weft__scope_cancel(&g->scope, WEFT_CANCEL_EXPLICIT,
				"group left without join", true, t->id);
			weft_error_t *e = NULL;
			if (group_join(t, g, &e) == WEFT_ECHILD_FAILED) {
				/* Keep the children's failures: they nest
				 * under this task's failure, after any the
				 * task kept already (an inner group reaped
				 * before, or weft_fail_group). */
				t->fail_group =
					weft__error_concat(t->fail_group, e);
			}
		} else {
			/* The user still owns the scope object. */
			weft__scope_force_exit(t, s);
		}
		rc = WEFT_EMISSINGJOIN;
	}
	return rc;
}

/* }======================================================= */

uint64_t weft_group_id(const weft_group_t *gh)
{
	const struct weft_group *g = weft__group_from_handle(gh,
		"weft_group_id");
	return g ? g->scope.id : 0;
}
