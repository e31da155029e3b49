/* Combinators: gather, race, wait, wait_for, as_completed.
 *
 * Design
 * ------
 * Two problems.  (1) Waiting for the first of several tasks to end, from
 * one fiber, without a thread per task and without missing an end that
 * happens while the waiter is getting ready to park.  (2) Running N
 * functions so that their outcomes come back combined (all results, or
 * the first success), with failures aggregated or kept per slot, and
 * nothing left running when the call returns.
 *
 * (1) Multi-wait.  A task that ends wakes every node on its `waiters` list
 * (weft__task_finish).  multi_park puts one node per watched task on that
 * task's list, every node carrying the same park generation, then parks
 * once: the first finisher's wake ends the park, and the later ones find
 * the generation stale (or the park already WOKEN) and do nothing.  The
 * ordering argument is weft_task_wait's, per task: the waiter lists its
 * node, then re-reads the task's state; the finisher stores its state,
 * then reads the list head; all four are seq_cst, so either the waiter
 * sees the task ended (and does not park) or the finisher sees the node
 * (and wakes the generation).  Before returning, multi_park takes every
 * list's lock and removes its node if still there: the finisher wakes
 * under that lock, so once every lock has been taken no finisher can
 * touch a node again, and the nodes (on the caller's stack or in an
 * iterator) may go away.  Cancellation wakes the same park (it is
 * cancellable), and a deadline is a private scope in the caller's frame
 * (weft__stack_scope_enter) whose cancellation does the same, so there is
 * one park for every reason to stop waiting; callers loop and re-evaluate
 * after every wake (wakes may be spurious).
 *
 * Cost: a park lists one node per still-pending task, O(n) per wake.
 * ALL_COMPLETED needs only the first pending task's end (the others will
 * be waited for next), so it lists one node and never allocates;
 * as_completed over n tasks is O(n^2) lock operations in total.  Rejected:
 * keeping nodes listed across parks (a finisher empties its whole list,
 * and every node's generation would need an update under its lock at each
 * park anyway) and a helper task per watched task (a spawn per handle).
 *
 * (2) Gather and race open a private group owned by the caller and spawn
 * one task per call into it, each with a handle; join then does what a
 * group always does (waits for everything, even when the caller is
 * cancelled, and cancels the children when an enclosing scope is
 * cancelled).  Default gather runs the functions themselves as the tasks:
 * the group's first-failure cancellation and error aggregation are
 * exactly rule 35, and the results are read through the handles.
 * Gather with WEFT_GATHER_RETURN_ERRORS and race must not let a failure
 * cancel the group, so each function runs inside a wrapper task
 * (comb_child) that reports the failure in its slot instead of to the
 * group: the wrapper is the failing task, so it builds the failure leaf
 * itself (message, nested group, logical time, collateral bit), as
 * weft__task_failure_leaf does for a group.  A race winner is decided by
 * one CAS on `winner`; the winner then cancels the group (the losers).  A
 * wrapper that never ran (no stack for it: the worker ended it with
 * -ENOMEM before any code of ours ran) did fail to the group, which
 * cancelled the others (unavoidable, and documented); the caller rebuilds
 * that slot's leaf from the handle and drops join's error group, which
 * holds exactly those failures.
 *
 * Invariants
 *   1. When a multi-wait returns, none of its nodes is on any list.
 *   2. A slot is written only by its own task, before that task ends; the
 *      caller reads it after the group's join (the children's release in
 *      weft__group_child_done pairs with join's acquire), or, for a task
 *      that never ran, reads only its handle.
 *   3. Every failure of a gather reaches exactly one place: the error
 *      group returned, or its slot.  A race drops its losers' outcomes
 *      once somebody won (documented in combine.h).
 *   4. No combinator returns while a task it created is running.
 *      wait_for does not return after a timeout or cancellation until
 *      the task it cancelled has ended.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "cancel.h"
#include "errors.h"
#include "group.h"
#include "rt.h"
#include "task.h"
#include "waitq.h"
#include "weft/combine.h"
#include "weft/time.h"

/* {======================================================= multi-wait */

/* One waiter node and the task it is listed on. */
struct watch {
	struct weft__waiter node;
	struct weft_task *on;       /* NULL: not listed */
};

/* Up to this many watches live on the waiter's stack. */
#define WATCH_SMALL 8

static bool task_pending(const struct weft_task *t)
{
	/* acquire: pairs with the finisher's release (or seq_cst) store of
	 * state, so the outcome fields are readable once it is not
	 * PENDING (task.c invariant 4). */
	return atomic_load_explicit(&t->state, memory_order_acquire) ==
		WEFT_TASK_PENDING;
}

/* Lists w->node on t's waiters and re-reads t's state: returns whether t
 * was still pending after the node became visible. */
static bool watch_list(struct watch *w, struct weft_task *t)
{
	w->on = t;
	weft__spin_lock(&t->waiters_lock);
	w->node.next = atomic_load_explicit(&t->waiters, memory_order_relaxed);
	/* seq_cst, then the seq_cst state load below: pairs with the
	 * finisher's seq_cst state store, then seq_cst head load
	 * (weft__task_finish).  One of the two sees the other. */
	atomic_store_explicit(&t->waiters, &w->node, memory_order_seq_cst);
	weft__spin_unlock(&t->waiters_lock);
	return atomic_load_explicit(&t->state, memory_order_seq_cst) ==
		WEFT_TASK_PENDING;
}

/* Removes w->node from its task's list if the finisher has not emptied
 * the list yet.  Taking the lock also waits out a finisher that is
 * waking the list (it wakes under the lock): afterwards nobody touches
 * the node (invariant 1). */
static void watch_unlist(struct watch *w)
{
	struct weft_task *t = w->on;
	weft__spin_lock(&t->waiters_lock);
	struct weft__waiter *head = atomic_load_explicit(&t->waiters,
		memory_order_relaxed);
	if (head == &w->node) {
		atomic_store_explicit(&t->waiters, w->node.next,
			memory_order_relaxed);
	} else {
		for (struct weft__waiter *p = head; p; p = p->next)
			if (p->next == &w->node) {
				p->next = w->node.next;
				break;
			}
	}
	weft__spin_unlock(&t->waiters_lock);
	w->on = NULL;
}

/* One park of self until one of the tasks h[0..n) ends or, if
 * cancellable, self's innermost scope is cancelled.  At most nwatch
 * pending tasks (the first ones) are watched.  `seen` is how many of h
 * the caller last found ended: if more have ended by now, it does not
 * park at all.  `what` (a static string) names the wait for
 * introspection.  Returns after any wake-up, possibly a spurious one:
 * the caller re-evaluates its condition. */
static WEFT_FIBER_FN void multi_park(struct weft_task *self,
	struct weft_task *const *h, size_t n, size_t seen,
	struct watch *w, size_t nwatch, bool cancellable, const char *what)
{
	uint64_t gen = weft__park_prepare(self, cancellable);
	size_t listed = 0, ended = 0;
	for (size_t i = 0; i < n; i++) {
		if (!task_pending(h[i])) {
			ended++;
		} else if (listed < nwatch) {
			struct watch *x = &w[listed++];
			x->node.task = self;
			x->node.gen = gen;
			if (!watch_list(x, h[i]))
				ended++;
		}
	}
	bool park = listed > 0 && ended <= seen;
	/* After the seq_cst prepare: a canceller stores eff_cancelled then
	 * reads the park word (cancel.c invariant 3). */
	if (park && cancellable && weft__scope_is_cancelled(
		atomic_load_explicit(&self->cur_scope, memory_order_relaxed)))
		park = false;
	if (park)
		weft__park_commit_on(self, what);
	for (size_t k = 0; k < listed; k++)
		watch_unlist(&w[k]);
}

/* Parks self, not cancellably, until t has ended. */
static WEFT_FIBER_FN void wait_shielded(struct weft_task *self,
	struct weft_task *t)
{
	struct watch w;
	while (task_pending(t))
		multi_park(self, &t, 1, 0, &w, 1, false, "wait_for cleanup");
}

/* self's innermost scope was found cancelled during a wait that may have
 * its own deadline scope ss (NULL: none).  Returns -ECANCELED, recording
 * the observation, when the cancellation comes from outside ss; 0 when
 * only ss's own deadline fired.  A scope cancelled from outside is marked
 * before the scopes inside it (parent first), so if ss is cancelled
 * because of its outer scope, that scope already reads as cancelled. */
static int wait_cancel_kind(struct weft_task *self,
	struct weft__stack_scope *ss)
{
	struct weft_scope *outer = ss ? ss->ts.s.outer :
		atomic_load_explicit(&self->cur_scope, memory_order_relaxed);
	if (ss && !weft__scope_is_cancelled(outer))
		return 0;
	weft__scope_note_observed(outer->origin);
	return -ECANCELED;
}

/* Validates handles for a wait by self. */
static int check_handles(struct weft_task *self, weft_task_t *const *h,
	size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (h[i] == NULL)
			return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (h[i] == self || h[i]->rt != self->rt)
			return WEFT_EMISUSE;
	return 0;
}

static int64_t deadline_after(int64_t ns)
{
	int64_t now = weft_now();
	return ns > WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
}

/* }======================================================= */

/* {======================================================= wait */

/* Whether `mode` holds for h[0..n); *ended receives how many have ended. */
static bool wait_met(weft_task_t *const *h, size_t n, weft_wait_mode_t mode,
	size_t *ended)
{
	size_t k = 0;
	bool failed = false;
	for (size_t i = 0; i < n; i++) {
		int s = atomic_load_explicit(&h[i]->state,
			memory_order_acquire);
		if (s == WEFT_TASK_PENDING)
			continue;
		k++;
		failed |= s == WEFT_TASK_FAILED;
	}
	*ended = k;
	switch (mode) {
	case WEFT_WAIT_FIRST_COMPLETED:
		return k > 0;
	case WEFT_WAIT_FIRST_EXCEPTION:
		return failed || k == n;
	default:
		return k == n;
	}
}

int weft_wait(weft_task_t *const *handles, size_t n, weft_wait_mode_t mode,
	int64_t deadline, bool *done)
{
	if (handles == NULL || done == NULL || n == 0 ||
		(mode != WEFT_WAIT_FIRST_COMPLETED &&
		mode != WEFT_WAIT_FIRST_EXCEPTION &&
		mode != WEFT_WAIT_ALL_COMPLETED))
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	int rc = check_handles(self, handles, n);
	if (rc < 0)
		return rc;
	rc = weft__wait_begin(&self);
	if (rc < 0)
		return rc;
	size_t ended;
	if (!wait_met(handles, n, mode, &ended) && deadline > weft_now()) {
		/* ALL_COMPLETED waits for one task at a time (any order
		 * works); the FIRST_* modes watch every pending task. */
		size_t nwatch = mode == WEFT_WAIT_ALL_COMPLETED ? 1 : n;
		struct watch small[WATCH_SMALL], *w = small;
		if (nwatch > WATCH_SMALL) {
			w = weft__calloc(nwatch, sizeof *w);
			if (w == NULL)
				return -ENOMEM;
		}
		struct weft__stack_scope ss;
		bool timed = deadline != WEFT_FOREVER;
		if (timed)
			weft__stack_scope_enter(self, &ss, deadline);
		for (;;) {
			multi_park(self, handles, n, ended, w, nwatch, true,
				"wait");
			if (wait_met(handles, n, mode, &ended))
				break;
			if (weft__scope_is_cancelled(atomic_load_explicit(
				&self->cur_scope, memory_order_relaxed))) {
				/* Own deadline: not an error (rule 34). */
				rc = wait_cancel_kind(self, timed ? &ss : NULL);
				break;
			}
		}
		if (timed)
			weft__stack_scope_exit(self, &ss);
		if (w != small)
			weft__free(w);
	}
	if (rc == 0)
		for (size_t i = 0; i < n; i++)
			done[i] = !task_pending(handles[i]);
	return rc;
}

/* }======================================================= */

/* {======================================================= wait_for */

/* Parks self until h has ended (returns 0), its timeout passed
 * (-ETIMEDOUT) or self was cancelled (-ECANCELED).  h was pending. */
static WEFT_FIBER_FN int wait_for_park(struct weft_task *self,
	struct weft_task *h, int64_t timeout)
{
	struct weft__stack_scope ss;
	bool timed = timeout != WEFT_FOREVER;
	if (timed)
		weft__stack_scope_enter(self, &ss, deadline_after(timeout));
	struct watch w;
	int rc = 0;
	for (;;) {
		multi_park(self, &h, 1, 0, &w, 1, true, "wait_for");
		if (!task_pending(h))
			break;
		if (weft__scope_is_cancelled(atomic_load_explicit(
			&self->cur_scope, memory_order_relaxed))) {
			rc = wait_cancel_kind(self, timed ? &ss : NULL);
			if (rc == 0)
				rc = -ETIMEDOUT;
			break;
		}
	}
	if (timed)
		weft__stack_scope_exit(self, &ss);
	return rc;
}

int weft_wait_for(weft_task_t *h, int64_t timeout, void **value)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	int rc = check_handles(self, &h, 1);
	if (rc < 0)
		return rc;
	/* Cancelled on entry counts as cancelled while waiting: the task is
	 * taken along. */
	rc = weft__wait_begin(&self);
	if (rc == 0) {
		if (!task_pending(h))
			return weft_task_result(h, value);
		rc = timeout <= 0 ? -ETIMEDOUT :
			wait_for_park(self, h, timeout);
		if (rc == 0)
			return weft_task_result(h, value);
	}
	/* Rule 32: never leave the task running behind a timeout or a
	 * cancellation.  The wait is not cancellable (the caller may be
	 * cancelled, which must not cut it short). */
	weft_task_cancel(h);
	wait_shielded(self, h);
	return rc;
}

/* }======================================================= */

/* {======================================================= as_completed */

struct weft_as_completed {
	struct weft_task *owner;
	size_t n;
	/* Tasks not yet yielded are h[0..left), at their original positions
	 * idx[0..left); a yielded one is swapped past `left`.  Owner only. */
	size_t left;
	struct weft_task **h;
	size_t *idx;
	struct watch *w;            /* left watches for a park */
};

int weft_as_completed_open(weft_as_completed_t **out,
	weft_task_t *const *handles, size_t n)
{
	if (out == NULL || (handles == NULL && n > 0))
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	int rc = check_handles(self, handles, n);
	if (rc < 0)
		return rc;
	/* One block: the iterator, then the watches, task pointers and
	 * positions (all 8-byte aligned). */
	_Static_assert(alignof(struct watch) <= alignof(max_align_t),
		"watch alignment");
	size_t head = sizeof(struct weft_as_completed);
	head = (head + alignof(struct watch) - 1) &
		~(alignof(struct watch) - 1);
	if (n > (SIZE_MAX - head) / (sizeof(struct watch) +
		sizeof(struct weft_task *) + sizeof(size_t)))
		return -ENOMEM;
	char *mem = weft__alloc(head + n * (sizeof(struct watch) +
		sizeof(struct weft_task *) + sizeof(size_t)));
	if (mem == NULL)
		return -ENOMEM;
	struct weft_as_completed *it = (struct weft_as_completed *)mem;
	it->owner = self;
	it->n = it->left = n;
	it->w = (struct watch *)(mem + head);
	it->h = (struct weft_task **)(it->w + n);
	it->idx = (size_t *)(it->h + n);
	for (size_t i = 0; i < n; i++) {
		it->h[i] = handles[i];
		it->idx[i] = i;
	}
	*out = it;
	return 0;
}

/* Yields position k of it's pending part. */
static void as_completed_take(weft_as_completed_t *it, size_t k,
	size_t *index, weft_task_t **handle)
{
	if (index)
		*index = it->idx[k];
	if (handle)
		*handle = it->h[k];
	size_t last = --it->left;
	struct weft_task *t = it->h[k];
	size_t i = it->idx[k];
	it->h[k] = it->h[last];
	it->idx[k] = it->idx[last];
	it->h[last] = t;
	it->idx[last] = i;
}

int weft_as_completed_next(weft_as_completed_t *it, size_t *index,
	weft_task_t **handle)
{
	if (it == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (self != it->owner)
		return WEFT_EMISUSE;
	if (it->left == 0)
		return WEFT_EEND;
	int rc = weft__wait_begin(&self);
	if (rc < 0)
		return rc;
	for (;;) {
		/* The ended task with the lowest original index. */
		size_t best = SIZE_MAX;
		for (size_t k = 0; k < it->left; k++)
			if (!task_pending(it->h[k]) && (best == SIZE_MAX ||
				it->idx[k] < it->idx[best]))
				best = k;
		if (best != SIZE_MAX) {
			as_completed_take(it, best, index, handle);
			return 0;
		}
		multi_park(self, it->h, it->left, 0, it->w, it->left, true,
			"as_completed");
		struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		/* Level-triggered, but a task that ended meanwhile wins: the
		 * next call reports the cancellation. */
		if (weft__scope_is_cancelled(cur)) {
			bool any = false;
			for (size_t k = 0; k < it->left && !any; k++)
				any = !task_pending(it->h[k]);
			if (!any) {
				weft__scope_note_observed(cur->origin);
				return -ECANCELED;
			}
		}
	}
}

void weft_as_completed_close(weft_as_completed_t *it)
{
	/* No node is listed between calls (invariant 1): nothing to undo. */
	weft__free(it);
}

/* }======================================================= */

/* {======================================================= gather, race */

struct comb;

/* One call's task.  Written by that task only (wrapper mode), before it
 * ends; read by the caller after the join (invariant 2). */
struct comb_slot {
	struct comb *c;
	size_t i;
	weft_task_t *h;             /* the caller's handle on the task */
	bool ran;                   /* the wrapper started */
	int rc;                     /* what the function returned */
	void *value;                /* its result, when rc == 0 */
	struct weft__leaf *leaf;    /* its failure (NULL: none, or lost) */
};

struct comb {
	const weft_call_t *calls;
	struct comb_slot *slots;
	size_t spawned;             /* slots[0..spawned) have a task */
	struct weft_group *g;
	bool race;
	/* Race: the index of the first task that succeeded, SIZE_MAX until
	 * one did.  CAS by the tasks (acq_rel: exactly one wins), read by
	 * the caller after the join. */
	atomic_size_t winner;
};

/* The failure leaf of the calling task self, which failed with rc: built
 * by the failing task itself, like weft__task_failure_leaf.  Takes over
 * self's nested error group.  NULL when out of memory. */
static struct weft__leaf *child_failure_leaf(struct weft_task *self, int rc)
{
	uint64_t seq = atomic_fetch_add_explicit(&self->rt->error_seq, 1,
		memory_order_relaxed);
	struct weft__leaf *l = weft__leaf_create(rc,
		self->fail_msg ? self->fail_msg : "", self->name, self->id, seq,
		weft__task_root_cancelled(self), self->fail_group);
	if (l)
		self->fail_group = NULL;  /* moved into the leaf */
	return l;
}

/* The wrapper task of gather-with-errors and race: runs the call and
 * reports its outcome through its slot, never as a failure of the group
 * (which would cancel the siblings). */
static int comb_child(void *arg)
{
	struct comb_slot *s = arg;
	struct comb *c = s->c;
	const weft_call_t *call = &c->calls[s->i];
	s->ran = true;
	int rc = call->fn(call->arg);
	/* The task record is fixed; only the worker under it may change. */
	struct weft_task *self = weft__task_current();
	/* What weft__task_finish would do with groups left open, done here
	 * so that the failure lands in the slot. */
	if (atomic_load_explicit(&self->cur_scope, memory_order_relaxed) !=
		&self->root_scope) {
		int r = weft__group_reap_unjoined(self);
		if (r < 0 && rc >= 0)
			rc = weft_fail(r, "task '%s' returned with an open "
				"group or scope", self->name);
	}
	s->rc = rc;
	if (rc == 0) {
		s->value = self->result;
		size_t none = SIZE_MAX;
		if (c->race && atomic_compare_exchange_strong_explicit(
			&c->winner, &none, s->i, memory_order_acq_rel,
			memory_order_acquire))
			weft__scope_cancel(&c->g->scope, WEFT_CANCEL_EXPLICIT,
				"another task won the race", true, self->id);
		return 0;
	}
	if (rc == -ECANCELED)
		return rc;
	s->leaf = child_failure_leaf(self, rc);
	return 0;  /* reported through the slot */
}

/* Spawns every call into a new group owned by self (wrapped or not) and
 * joins it.  Returns 0, -ENOMEM before anything was created (c->slots is
 * then NULL), or the code of the spawn that failed (the tasks created
 * before it were cancelled; c->spawned says how many).  *join_rc and
 * *join_err are weft_group_join's. */
static int comb_run(struct weft_task *self, struct comb *c,
	const weft_call_t *calls, size_t n, bool wrapped, bool race,
	int *join_rc, weft_error_t **join_err)
{
	memset(c, 0, sizeof *c);
	c->calls = calls;
	c->race = race;
	atomic_init(&c->winner, SIZE_MAX);
	c->slots = weft__calloc(n, sizeof *c->slots);
	if (c->slots == NULL)
		return -ENOMEM;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0) {
		weft__free(c->slots);
		c->slots = NULL;
		return rc;
	}
	c->g = g;
	int spawn_rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct comb_slot *s = &c->slots[i];
		s->c = c;
		s->i = i;
		s->rc = -ECANCELED;
		weft_spawn_opts_t o = {
			.name = calls[i].name ? calls[i].name :
				race ? "race" : "gather",
			.handle = &s->h,
		};
		spawn_rc = weft_group_spawn_opts(g,
			wrapped ? comb_child : calls[i].fn,
			wrapped ? (void *)s : calls[i].arg, &o);
		if (spawn_rc < 0) {
			weft__scope_cancel(&g->scope, WEFT_CANCEL_EXPLICIT,
				"a task of the combinator could not be created",
				true, self->id);
			break;
		}
		c->spawned++;
	}
	*join_rc = weft_group_join(g, join_err);
	return spawn_rc;
}

/* For a slot read through its handle (default gather, or a wrapper that
 * never ran): its rc and value. */
static void slot_from_handle(struct comb_slot *s)
{
	void *v = NULL;
	int r = weft_task_result(s->h, &v);
	if (r == 0) {
		s->rc = 0;
		s->value = v;
	} else if (r == WEFT_EFAILED) {
		weft_task_failure(s->h, &s->rc, NULL);
	} else {
		s->rc = -ECANCELED;
	}
}

/* A wrapper that never ran failed to the group (no stack): rebuild its
 * leaf from the handle (the caller holds a reference, and its outcome is
 * published: join returned). */
static void slot_settle_unrun(struct comb_slot *s)
{
	slot_from_handle(s);
	if (s->rc == 0 || s->rc == -ECANCELED)
		return;
	const struct weft_task *t = s->h;
	s->leaf = weft__leaf_create(s->rc, t->fail_msg ? t->fail_msg : "",
		t->name, t->id, t->fail_seq, t->fail_collateral, NULL);
}

static bool slot_failed(const struct comb_slot *s)
{
	return s->rc != 0 && s->rc != -ECANCELED;
}

/* -ECANCELED if the caller (outside the joined group) is cancelled,
 * recording the observation, else 0. */
static int comb_cancelled(struct weft_task *self)
{
	struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	if (!weft__scope_is_cancelled(cur))
		return 0;
	weft__scope_note_observed(cur->origin);
	return -ECANCELED;
}

/* Validation shared by gather and race. */
static int comb_check(const weft_call_t *calls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (calls[i].fn == NULL)
			return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	return 0;
}

int weft_gather(const weft_call_t *calls, size_t n, unsigned flags,
	weft_gather_result_t *results, weft_error_t **err_out)
{
	if ((n > 0 && (calls == NULL || results == NULL)) ||
		(flags & ~WEFT_GATHER_RETURN_ERRORS))
		return -EINVAL;
	int rc = comb_check(calls, n);
	if (rc < 0)
		return rc;
	if (err_out)
		*err_out = NULL;
	for (size_t i = 0; i < n; i++)
		results[i] = (weft_gather_result_t){ .rc = -ECANCELED };
	struct weft_task *self;
	rc = weft__wait_begin(&self);
	if (rc < 0 || n == 0)
		return rc;
	bool keep = flags & WEFT_GATHER_RETURN_ERRORS;
	struct comb c;
	int join_rc;
	weft_error_t *e = NULL;
	int spawn_rc = comb_run(self, &c, calls, n, keep, false, &join_rc, &e);
	if (c.slots == NULL)
		return spawn_rc;
	for (size_t i = 0; i < c.spawned; i++) {
		struct comb_slot *s = &c.slots[i];
		if (!keep)
			slot_from_handle(s);
		else if (!s->ran)
			slot_settle_unrun(s);
		results[i].rc = s->rc;
		results[i].value = s->rc == 0 ? s->value : NULL;
		if (keep && slot_failed(s))
			/* Never NULL: out of memory, it is the "could not be
			 * recorded" group. */
			results[i].error = s->leaf ? weft__error_single(s->leaf)
				: weft__error_from_leaves(NULL, 0, 1);
		weft_task_release(s->h);
	}
	weft__free(c.slots);
	if (!keep) {
		/* The group's own verdict is exactly rule 35's. */
		if (join_rc == WEFT_ECHILD_FAILED) {
			if (err_out)
				*err_out = e;
			else
				weft_error_free(e);
			return join_rc;
		}
		return spawn_rc < 0 ? spawn_rc : join_rc;
	}
	/* Only wrappers that never ran failed to the group; their slots
	 * hold those failures now. */
	weft_error_free(e);
	if (spawn_rc < 0)
		return spawn_rc;
	return comb_cancelled(self);
}

int weft_race(const weft_call_t *calls, size_t n, void **value,
	size_t *winner, weft_error_t **err_out)
{
	if (calls == NULL || n == 0)
		return -EINVAL;
	int rc = comb_check(calls, n);
	if (rc < 0)
		return rc;
	if (err_out)
		*err_out = NULL;
	struct weft_task *self;
	rc = weft__wait_begin(&self);
	if (rc < 0)
		return rc;
	struct comb c;
	int join_rc;
	weft_error_t *e = NULL;
	int spawn_rc = comb_run(self, &c, calls, n, true, true, &join_rc, &e);
	if (c.slots == NULL)
		return spawn_rc;
	weft_error_free(e);  /* only wrappers that never ran: rebuilt below */
	size_t won = atomic_load_explicit(&c.winner, memory_order_acquire);
	/* Chain the failures in call order. */
	struct weft__leaf *head = NULL, **tail = &head;
	size_t leaves = 0, lost = 0;
	for (size_t i = 0; i < c.spawned; i++) {
		struct comb_slot *s = &c.slots[i];
		if (!s->ran)
			slot_settle_unrun(s);
		if (slot_failed(s)) {
			if (s->leaf) {
				*tail = s->leaf;
				tail = &s->leaf->next;
				leaves++;
			} else {
				lost++;
			}
		}
		weft_task_release(s->h);
	}
	if (won != SIZE_MAX) {
		if (value)
			*value = c.slots[won].value;
		if (winner)
			*winner = won;
		rc = 0;
	} else if (spawn_rc < 0) {
		rc = spawn_rc;
	} else if (leaves + lost > 0) {
		weft_error_t *all = weft__error_from_leaves(head, leaves, lost);
		head = NULL;
		if (err_out)
			*err_out = all;
		else
			weft_error_free(all);
		rc = WEFT_ECHILD_FAILED;
	} else {
		rc = comb_cancelled(self);
		if (rc == 0)
			rc = -ECANCELED;  /* every task cancelled itself */
	}
	while (head) {
		struct weft__leaf *next = head->next;
		weft__leaf_free(head);
		head = next;
	}
	weft__free(c.slots);
	return rc;
}

/* }======================================================= */
