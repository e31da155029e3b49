/* Combinators, part 2: gather and race.
 *
 * Design
 * ------
 * Problem: running N functions so that their outcomes come back combined
 * (all results, or the first success), with failures aggregated or kept
 * per slot, and nothing left running when the call returns.
 *
 * Approach.  Gather and race open a private group owned by the caller and spawn
 * one task per call into it, each with a handle; join then does what a
 * group always does (waits for everything, even when the caller is
 * cancelled, and cancels the children when an enclosing scope is
 * cancelled).  Default gather runs the functions themselves as the tasks:
 * the group's first-failure cancellation and error aggregation are
 * exactly docs/semantics.md rule 35, and the results are read through the
 * handles.
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
 *   1. A slot is written only by its own task, before that task ends; the
 *      caller reads it after the group's join (the children's release in
 *      weft__group_child_done pairs with join's acquire), or, for a task
 *      that never ran, reads only its handle.
 *   2. Every failure of a gather reaches exactly one place: the error
 *      group returned, or its slot.  A race drops its losers' outcomes
 *      once somebody won (documented in combine.h).
 *   3. Neither returns while a task it created is running.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "core/cancel.h"
#include "core/group.h"
#include "core/records.h"
#include "core/task.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "weft/combine.h"

/* {======================================================= gather, race */

struct comb;

/* One call's task.  Written by that task only (wrapper mode), before it
 * ends; read by the caller after the join (invariant 1). */
struct comb_slot {
	struct comb *c;
	size_t i;
	weft_task_t *h;		 /* the caller's handle on the task */
	bool ran;		 /* the wrapper started */
	int rc;			 /* what the function returned */
	void *value;		 /* its result, when rc == 0 */
	struct weft__leaf *leaf; /* its failure (NULL: none, or lost) */
};

struct comb {
	const weft_call_t *calls;
	struct comb_slot *slots;
	size_t spawned; /* slots[0..spawned) have a task */
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
	/* relaxed: the runtime's logical failure clock, as in
	 * weft__task_finish; the RMW alone orders the values, and the leaf
	 * reaches the caller through the join. */
	uint64_t seq = atomic_fetch_add_explicit(&self->rt->error_seq, 1,
		memory_order_relaxed);
	struct weft__leaf *l = weft__error_leaf_create(rc,
		self->fail_msg ? self->fail_msg : "", self->name, self->id, seq,
		weft__task_root_cancelled(self), self->fail_group);
	if (l) {
		self->fail_group = NULL; /* moved into the leaf */
		weft__task_leaf_context(self, l);
	}
	return l;
}

/* The wrapper task of gather-with-errors and race: runs the call and
 * reports its outcome through its slot, never as a failure of the group
 * (which would cancel the siblings). */
static WEFT_FIBER_FN int comb_child(void *arg)
{
	struct comb_slot *s = arg;
	struct comb *c = s->c;
	const weft_call_t *call = &c->calls[s->i];
	s->ran = true;
	int rc = call->fn(call->arg);
	/* The task record is fixed; only the worker under it may change. */
	struct weft_task *self = weft__task_current();
	/* What weft__task_finish would do with groups left open, done here
	 * so that the failure lands in the slot.  relaxed: our own
	 * cur_scope, written only by this task. */
	if (atomic_load_explicit(&self->cur_scope, memory_order_relaxed) !=
		&self->root_scope) {
		int r = weft__group_reap_unjoined(self);
		if (r < 0 && rc >= 0)
			rc = weft_fail(r,
				"task '%s' returned with an open "
				"group or scope",
				self->name);
	}
	s->rc = rc;
	if (rc == 0) {
		s->value = self->result;
		size_t none = SIZE_MAX;
		/* acq_rel: one RMW decides the winner; its release publishes
		 * s->value with the index (pairs with the caller's acquire
		 * load, which the join orders anyway).  acquire on failure:
		 * a loser reads nothing through it. */
		if (c->race &&
			atomic_compare_exchange_strong_explicit(&c->winner,
				&none, s->i, memory_order_acq_rel,
				memory_order_acquire))
			weft__scope_cancel(&((struct weft_group *)
							   weft__handle_addr(
								   c->g))
						    ->scope,
				WEFT_CANCEL_EXPLICIT,
				"another task won the race", true, self->id);
		return 0;
	}
	if (rc == -ECANCELED)
		return rc;
	s->leaf = child_failure_leaf(self, rc);
	return 0; /* reported through the slot */
}

/* Spawns every call into a new group owned by self (wrapped or not) and
 * joins it.  Returns 0, -ENOMEM before anything was created (c->slots is
 * then NULL), or the code of the spawn that failed (the tasks created
 * before it were cancelled; c->spawned says how many).  *join_rc and
 * *join_err are weft_group_join's. */
static WEFT_FIBER_FN int comb_run(struct weft_task *self, struct comb *c,
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
			.name = calls[i].name ? calls[i].name
				: race	      ? "race"
					      : "gather",
			.handle = &s->h,
		};
		spawn_rc = weft_group_spawn_opts(g,
			wrapped ? comb_child : calls[i].fn,
			wrapped ? (void *)s : calls[i].arg, &o);
		if (spawn_rc < 0) {
			/* g is a handle (records.h), ours and current. */
			weft__scope_cancel(&((struct weft_group *)
							   weft__handle_addr(g))
						    ->scope,
				WEFT_CANCEL_EXPLICIT,
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
	const struct weft_task *t = weft__handle_addr(s->h); /* ours */
	s->leaf = weft__error_leaf_create(s->rc, t->fail_msg ? t->fail_msg : "",
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
	/* relaxed: our own cur_scope, written only by this task. */
	struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	if (!weft__scope_is_cancelled(cur))
		return 0;
	weft__scope_note_observed(weft__scope_origin(cur));
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
	rc = weft__waitq_begin(&self);
	if (rc < 0 || n == 0)
		return rc;
	weft__task_link_root(self); /* it checks its scope itself below */
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
			results[i].error = s->leaf
				? weft__error_single(s->leaf)
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

int weft_race(const weft_call_t *calls, size_t n, void **value, size_t *winner,
	weft_error_t **err_out)
{
	if (calls == NULL || n == 0)
		return -EINVAL;
	int rc = comb_check(calls, n);
	if (rc < 0)
		return rc;
	if (err_out)
		*err_out = NULL;
	struct weft_task *self;
	rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	weft__task_link_root(self); /* it checks its scope itself below */
	struct comb c;
	int join_rc;
	weft_error_t *e = NULL;
	int spawn_rc = comb_run(self, &c, calls, n, true, true, &join_rc, &e);
	if (c.slots == NULL)
		return spawn_rc;
	weft_error_free(e); /* only wrappers that never ran: rebuilt below */
	/* acquire: pairs with the winner's CAS in comb_child (the join's
	 * acquire already orders it). */
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
			rc = -ECANCELED; /* every task cancelled itself */
	}
	while (head) {
		struct weft__leaf *next = head->next;
		weft__error_leaf_free(head);
		head = next;
	}
	weft__free(c.slots);
	return rc;
}

/* }======================================================= */
