/* Cancel scopes, checkpoints and sleeping.
 *
 * Design
 * ------
 * Problem: Trio's cancel scopes (level-triggered, nested, shielded, with
 * deadlines, cancellable from any thread) over tasks that run in parallel
 * and migrate between workers, with O(1) checkpoints.
 *
 * Approach: scopes form one tree per root task.  A task's scopes nest on
 * its own stack (`outer` links, owner-only); `parent` links continue across
 * tasks: a group's scope is the parent of its children's root scopes.
 * Cancellation is pushed down eagerly: weft__scope_cancel marks the scope
 * and every descendant not behind a shield as effectively cancelled
 * (eff_cancelled), under each scope's lock, parent before child, and wakes
 * each task whose innermost scope it marks.  A scope linked under an
 * effectively cancelled parent inherits the mark at link time.  So a
 * checkpoint is one load of the innermost scope's flag: seq_cst, as
 * invariant 3 needs (on x86 that is a plain load).
 *
 * Deadlines are filed in the runtime's deadline timer (timer.c), which
 * fires them on the I/O thread or on a worker at a yield: a firing calls
 * weft__scope_cancel with origin DEADLINE.  Sleeping is a private scope
 * whose deadline is the wake-up time, then a cancellable park (Trio's
 * sleep_until is move_on_at + sleep_forever), so there is one timer
 * mechanism for both.
 *
 * Lazy links.  Linking a scope takes its parent's lock, and unlinking it
 * again: four lock round trips per fork-join node (the child's root scope
 * under the group's, the child's own group under its root), paid even by
 * a child that runs inline at its parent's join and never waits.  So a
 * group's scope (weft__scope_push_lazy) and a spawned child's root scope
 * start unlinked: they know their parent, but the parent does not list
 * them.  A chain of unlinked scopes is linked, outermost first
 * (weft__scope_materialize), by the first task of the chain that needs
 * to be reachable: it parks cancellably, enters a user or sleep scope, or
 * reparents under a group (weft__task_link_root is the one hook).  Until
 * then a cancellation from further out stops at the last linked scope,
 * and the unlinked scopes below pull it instead (weft__scope_check): a
 * runtime-wide cancel generation is bumped after every cancellation's
 * marks; each unlinked scope keeps the state it last pulled with the
 * generation it pulled it at (`pull`; inherited from the parent at entry
 * when that is current), and a check whose generation is current costs
 * four loads.  Otherwise it walks up to the first linked scope or
 * shield, takes the outermost cancellation it finds, and marks its own
 * scope with it.  A task inside an unlinked chain is running (or parked
 * uncancellably, at a join), so nobody needs to wake it.  A dump lists a
 * task whose group is not linked at the top level (core/inspect.c).
 *
 * Rejected: walking up the parent chain at every checkpoint (O(depth) per
 * checkpoint: fib's join chain is 60 scopes deep) and per-fiber timers for
 * deadlines (a 1 s scope around 100k sleeping children would arm 100k
 * timers).
 *
 * Invariants
 *   1. eff_cancelled only goes from false to true.
 *   2. If a scope is effectively cancelled, so is every descendant that is
 *      not behind a shield (maintained under the locks, parent first).
 *   3. A task parked cancellably has its innermost scope fixed, and a
 *      canceller marking that scope reads the park word (to wake the task
 *      of every scope it marks) after its seq_cst store, while the task
 *      re-checks the flag after its seq_cst park prepare: no cancellation
 *      is missed.  Wakes may be spurious; every cancellable park loops.
 *   4. A scope's `task` is non-NULL only while the task is inside it; a
 *      canceller that reads it under the scope's lock may wake that task.
 *   5. A timed scope (user or sleep) is released when its last reference
 *      (user or owner, queued timer request, timer wheel) is dropped: a
 *      user scope is freed, the owner of a sleep scope (on its stack) is
 *      woken to leave the frame.
 *   6. An effectively cancelled scope's origin is the outermost cancelled
 *      scope above it on its unshielded path (Trio's "the outer one
 *      wins"): a later cancellation further out replaces the origin of
 *      every scope of its subtree.  A checkpoint marks the origin it reads
 *      as observed; a scope that exits with its own cancellation observed
 *      but an origin further out passes the observation on to that
 *      origin and does not catch: the outermost scope catches.
 *   7. A linked scope's parent is linked (chains link outermost first),
 *      so invariant 2 holds on the linked tree, and a task that sees its
 *      scope linked (acquire) sees every mark inherited at the link.
 *   8. Whoever links a scope S of another task's chain is a task below S
 *      (a descendant of S's task), and ends before S's task may leave S
 *      (a group's join waits for it): the leaver sees S linked and
 *      unlinks it.
 *   9. An unlinked scope's pull word, if its generation is current, is
 *      its effective cancellation: every cancellation marks first and
 *      bumps the generation after (release), and a check loads the
 *      generation (acquire) before the state it compares.  A
 *      cancellation racing a check is seen at the next one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/diag.h"
#include "base/id.h"
#include "core/cancel.h"
#include "core/group.h"
#include "core/sched.h"
#include "core/stack.h"
#include "core/task.h"
#include "core/timer.h"
#include "runtime.h"
#include "weft/time.h"

/* {======================================================= tree */

void weft__scope_init(struct weft_scope *s, enum weft__scope_kind kind,
	unsigned flags)
{
	/* s is zeroed by the caller (it is embedded in a record the caller
	 * just cleared, or calloc'd): only the non-zero fields are set. */
	weft__spin_init(&s->lock);
	s->kind = (uint8_t)kind;
	s->flags = flags;
	atomic_init(&s->cancel_called, false);
	atomic_init(&s->eff_cancelled, false);
	atomic_init(&s->observed, false);
	atomic_init(&s->origin, NULL);
	atomic_init(&s->deadline, WEFT_FOREVER);
	if (kind == WEFT__SCOPE_USER || kind == WEFT__SCOPE_FRAME) {
		struct weft__timed_scope *ts = weft__scope_timed(s);
		atomic_init(&ts->timer_deadline, WEFT_FOREVER);
		atomic_init(&ts->refs, 1);
		atomic_init(&ts->timer_queued, 0);
	}
}

/* Marks s (locked by the caller) and its unshielded subtree as cancelled
 * by `origin`, which is s itself or a scope further out.  A scope that is
 * marked already keeps its mark (invariant 2: so is its subtree) but takes
 * the new origin: a cancellation that arrives from further out than the
 * one it has belongs to the outer scope (Trio's "the outer one wins"),
 * and so does the rest of the subtree.  Called only with an origin from
 * outside the marked subtree (weft__scope_cancel does not re-propagate a
 * scope that is marked already), so every replacement moves outwards. */
static void scope_propagate_locked(struct weft_scope *s,
	struct weft_scope *origin)
{
	/* relaxed: eff_cancelled is only written under s's lock, held. */
	if (atomic_load_explicit(&s->eff_cancelled, memory_order_relaxed)) {
		if (weft__scope_origin(s) == origin)
			return; /* this cancellation marked the subtree */
		/* relaxed: see `origin` (cancel.h); s's task was woken by
		 * the first mark, and a checkpoint reads the new origin.
		 * The subtree takes it too (below). */
		atomic_store_explicit(&s->origin, origin, memory_order_relaxed);
	} else {
		/* relaxed: published by the seq_cst store of eff_cancelled
		 * below. */
		atomic_store_explicit(&s->origin, origin, memory_order_relaxed);
		/* seq_cst: the canceller's half of the park/cancel Dekker
		 * pair (invariant 3): ordered before the park-word read in
		 * weft__task_wake_cancel below; pairs with the seq_cst load
		 * in weft__scope_is_cancelled, whose acquire also sees
		 * origin. */
		atomic_store_explicit(&s->eff_cancelled, true,
			memory_order_seq_cst);
		/* Wake the task inside s if it is parked cancellably.  Not
		 * only when s is its innermost scope: the innermost may be a
		 * shielded one that this cancellation does not reach, and
		 * then the task wakes, finds its scope not cancelled, and
		 * parks again (every cancellable park loops).  Deciding on
		 * t->cur_scope instead would need that field to be seq_cst
		 * on every scope push and pop.  acquire: as in
		 * scope_rt_locked (s's lock orders the read against unlink,
		 * invariant 4). */
		struct weft_task *t = atomic_load_explicit(&s->task,
			memory_order_acquire);
		if (t)
			weft__task_wake_cancel(t);
	}
	for (struct weft_scope *c = s->first_child; c; c = c->next_sib) {
		if (c->flags & WEFT_SCOPE_SHIELD)
			continue;
		weft__spin_lock(&c->lock);
		scope_propagate_locked(c, origin);
		weft__spin_unlock(&c->lock);
	}
}

/* Puts s at the head of parent's children (parent locked by the caller)
 * and gives it parent's effective cancellation unless s is shielded. */
static void scope_insert_locked(struct weft_scope *s, struct weft_scope *parent)
{
	s->prev_sib = NULL;
	s->next_sib = parent->first_child;
	if (parent->first_child)
		parent->first_child->prev_sib = s;
	parent->first_child = s;
	/* relaxed: the parent's lock is held, under which it is written. */
	if (!(s->flags & WEFT_SCOPE_SHIELD) &&
		atomic_load_explicit(&parent->eff_cancelled,
			memory_order_relaxed)) {
		weft__spin_lock(&s->lock);
		scope_propagate_locked(s, weft__scope_origin(parent));
		weft__spin_unlock(&s->lock);
	}
}

/* Takes s off its parent's children (parent locked by the caller). */
static void scope_remove_locked(struct weft_scope *s, struct weft_scope *parent)
{
	if (s->prev_sib)
		s->prev_sib->next_sib = s->next_sib;
	else
		parent->first_child = s->next_sib;
	if (s->next_sib)
		s->next_sib->prev_sib = s->prev_sib;
	s->prev_sib = s->next_sib = NULL;
}

void weft__scope_link(struct weft_scope *s, struct weft_scope *parent,
	struct weft_task *t)
{
	if (parent == NULL) {
		/* A root task's scope: nobody can reach it before its task
		 * runs, so relaxed stores suffice. */
		atomic_store_explicit(&s->task, t, memory_order_relaxed);
		s->parent = NULL;
		atomic_store_explicit(&s->linked, true, memory_order_relaxed);
		return;
	}
	weft__spin_lock(&parent->lock);
	/* Two tasks of one chain may link it at once (scope_materialize):
	 * the first wins, under the parent's lock.  relaxed: written under
	 * that lock. */
	if (atomic_load_explicit(&s->linked, memory_order_relaxed)) {
		weft__spin_unlock(&parent->lock);
		return;
	}
	/* s->task is read by cancellers under s's lock; s is reachable by a
	 * canceller through its parent (locked here, which publishes this
	 * store) or directly, by a user who cancels a weft_scope_t: that
	 * canceller holds only s's lock, and reads t's record (its runtime,
	 * its park word) through the pointer.  release (with the
	 * cancellers' acquire loads): t's record was made by another thread
	 * when t is a frame's child that a thief started (core/frame.c), and
	 * its fields must be visible through the pointer.  A wake of t
	 * after t left s is at worst spurious. */
	atomic_store_explicit(&s->task, t, memory_order_release);
	/* A lazy scope knows its parent already, and tasks below it may be
	 * reading it (scope_pull): write only a new one (a start()ed
	 * child's root, not visible to anyone yet). */
	if (s->parent != parent)
		s->parent = parent;
	scope_insert_locked(s, parent);
	/* release: a task that reads linked with acquire sees the mark
	 * inherited above (invariant 7). */
	atomic_store_explicit(&s->linked, true, memory_order_release);
	weft__spin_unlock(&parent->lock);
}

void weft__scope_unlink(struct weft_scope *s)
{
	struct weft_scope *parent = s->parent;
	if (parent) {
		weft__spin_lock(&parent->lock);
		scope_remove_locked(s, parent);
		/* relaxed: under the parent's lock, as linkers read it. */
		atomic_store_explicit(&s->linked, false, memory_order_relaxed);
		weft__spin_unlock(&parent->lock);
	} else {
		atomic_store_explicit(&s->linked, false, memory_order_relaxed);
	}
	if (s->kind == WEFT__SCOPE_TASK) {
		/* A task's root scope is cancelled directly only by holders of
		 * a reference on the task (a handle, a start() caller), so a
		 * canceller that still reads the old task pointer wakes a live
		 * record that is no longer parked: no lock needed, and a
		 * relaxed store.  Others reach it through the parent, whose
		 * lock we just held. */
		atomic_store_explicit(&s->task, NULL, memory_order_relaxed);
		return;
	}
	weft__spin_lock(&s->lock);
	/* relaxed: under s's lock, as cancellers read it. */
	atomic_store_explicit(&s->task, NULL, memory_order_relaxed);
	weft__spin_unlock(&s->lock);
}

void weft__scope_reparent(struct weft_scope *s, struct weft_scope *new_parent)
{
	/* s (the calling task's root scope, linked by weft__task_start)
	 * moves from one children list to the other and stays `linked`
	 * throughout: tasks below walking their chain (scope_pull,
	 * weft__scope_materialize) stop at a linked scope without reading
	 * its parent, which changes here. */
	struct weft_scope *old = s->parent;
	weft__spin_lock(&old->lock);
	scope_remove_locked(s, old);
	weft__spin_unlock(&old->lock);
	weft__spin_lock(&new_parent->lock);
	s->parent = new_parent;
	scope_insert_locked(s, new_parent);
	weft__spin_unlock(&new_parent->lock);
}

/* }======================================================= */

/* {======================================================= lazy links */

/* The task a scope of kind GROUP or TASK belongs to (the one whose stack
 * holds it); user and frame scopes are linked when entered. */
static struct weft_task *scope_owner(struct weft_scope *s)
{
	if (s->kind == WEFT__SCOPE_GROUP)
		return WEFT__CONTAINER_OF(s, struct weft_group, scope)->owner;
	WEFT_DASSERT(s->kind == WEFT__SCOPE_TASK, "a lazy user scope");
	return WEFT__CONTAINER_OF(s, struct weft_task, root_scope);
}

/* The runtime of s (locked by the caller), for its cancel generation;
 * NULL for a user or sleep scope that no task is inside (nothing can be
 * below it). */
static struct weft_runtime *scope_rt_locked(struct weft_scope *s)
{
	switch (s->kind) {
	case WEFT__SCOPE_GROUP:
		return WEFT__CONTAINER_OF(s, struct weft_group, scope)->rt;
	case WEFT__SCOPE_TASK:
		return WEFT__CONTAINER_OF(s, struct weft_task, root_scope)->rt;
	default: {
		/* acquire: pairs with weft__scope_link's release (t's record
		 * may have been made by another thread); under s's lock
		 * (invariant 4). */
		struct weft_task *t = atomic_load_explicit(&s->task,
			memory_order_acquire);
		return t ? t->rt : NULL;
	}
	}
}

void weft__scope_materialize(struct weft_scope *s)
{
	/* Outermost first (invariant 7): find the outermost unlinked scope
	 * of the chain, link it, and start again.  Quadratic in the number
	 * of unlinked scopes, which is the depth of inline fork-join
	 * nesting; it runs once per chain (a linked scope stays linked
	 * until left). */
	for (;;) {
		struct weft_scope *top = NULL;
		for (struct weft_scope *x = s; x && !weft__scope_linked(x);
			x = x->parent)
			top = x;
		if (top == NULL)
			return;
		weft__scope_link(top, top->parent, scope_owner(top));
	}
}

/* Walks from s (unlinked) up to the first linked scope or shield, as of
 * now, and marks s with the outermost cancellation found (rule 6's
 * origin).  Returns whether s is cancelled. */
static bool scope_pull(struct weft_scope *s, uint64_t gen)
{
	struct weft_scope *origin = NULL;
	for (struct weft_scope *x = s; x; x = x->parent) {
		/* `linked` first: a scope linked meanwhile (by a task of the
		 * chain) inherited its mark before its linked store, so the
		 * flag read after it is the tree's (invariant 7); read the
		 * other way round, a mark inherited between the two reads
		 * would be missed. */
		bool linked = weft__scope_linked(x);
		/* Each scope further out replaces the origin: the outer
		 * one wins. */
		if (weft__scope_is_cancelled(x))
			origin = weft__scope_origin(x);
		if (linked || (x->flags & WEFT_SCOPE_SHIELD))
			break;
	}
	if (origin != NULL) {
		weft__spin_lock(&s->lock);
		scope_propagate_locked(s, origin);
		weft__spin_unlock(&s->lock);
	}
	/* relaxed: see `pull`. */
	atomic_store_explicit(&s->pull, gen << 1 | (origin != NULL),
		memory_order_relaxed);
	return origin != NULL;
}

bool weft__scope_check_slow(struct weft_scope *s, uint64_t gen)
{
	return scope_pull(s, gen);
}

/* After a cancellation's marks: checks of unlinked scopes pull again.
 * rt is the cancelled scope's runtime, read while the scope was surely
 * alive (a woken owner may free a user scope right after the marks). */
static void scope_gen_bump(struct weft_runtime *rt)
{
	/* release: the marks made before are visible to a checker that
	 * reads the new generation with acquire (invariant 9). */
	if (rt)
		atomic_fetch_add_explicit(&rt->cancel_gen, 1,
			memory_order_release);
}

/* }======================================================= */

/* {======================================================= cancel */

/* Longest reason text kept: what fits the public weft_cancel_reason_t. */
#define REASON_MAX (sizeof((weft_cancel_reason_t *)0)->text - 1)

void weft__scope_cancel(struct weft_scope *s, weft_cancel_origin_t origin,
	const char *text, bool text_static, uint64_t by_task)
{
	/* Copy a caller's text outside the lock.  Out of memory, the
	 * cancellation still happens, with a text that says what was lost. */
	char *copy = NULL;
	if (text == NULL) {
		text = "cancelled";
	} else if (!text_static) {
		size_t n = strnlen(text, REASON_MAX);
		copy = weft__alloc(n + 1);
		if (copy) {
			memcpy(copy, text, n);
			copy[n] = '\0';
		}
		text = copy ? copy
			    : "cancelled (reason text lost: out of memory)";
	}
	weft__spin_lock(&s->lock);
	struct weft_runtime *rt = scope_rt_locked(s);
	/* relaxed: cancel_called is only written under s's lock, held. */
	if (!atomic_load_explicit(&s->cancel_called, memory_order_relaxed)) {
		s->reason_origin = (uint8_t)origin;
		s->reason.scope_id = s->id;
		s->reason.task_id = by_task;
		s->reason.text = text;
		s->reason_owned = copy != NULL;
		copy = NULL;
		/* release: the reason is complete before the flag; pairs
		 * with the acquire loads of lock-free readers (scope_exit,
		 * weft_scope_reason, weft_task_state, weft__scope_fini). */
		atomic_store_explicit(&s->cancel_called, true,
			memory_order_release);
	}
	/* A scope effectively cancelled already keeps its origin: itself, or
	 * a scope further out (relaxed: written under s's lock, held). */
	bool marks = !atomic_load_explicit(&s->eff_cancelled,
		memory_order_relaxed);
	if (marks)
		scope_propagate_locked(s, s);
	weft__spin_unlock(&s->lock);
	if (marks)
		scope_gen_bump(rt);
	weft__free(copy); /* cancelled already: the first reason stays */
}

void weft__scope_fini_reason(struct weft_scope *s)
{
	/* cancel_called was read with acquire (weft__scope_fini). */
	if (s->reason_owned) {
		weft__free((char *)s->reason.text);
		s->reason_owned = false;
	}
}

void weft__scope_reason_export(const struct weft_scope *s,
	weft_cancel_reason_t *out)
{
	out->origin = (weft_cancel_origin_t)s->reason_origin;
	out->scope_id = s->reason.scope_id;
	out->task_id = s->reason.task_id;
	snprintf(out->text, sizeof out->text, "%s", s->reason.text);
}

void weft__scope_note_observed(struct weft_scope *s)
{
	/* relaxed: read by s's owner at exit, after its own checkpoints or
	 * after joining the group whose child set it (the join orders it). */
	if (s)
		atomic_store_explicit(&s->observed, true, memory_order_relaxed);
}

void weft__scope_push(struct weft_task *t, struct weft_scope *s)
{
	weft__task_link_root(t);
	/* relaxed: only the task itself writes its cur_scope. */
	struct weft_scope *cur = atomic_load_explicit(&t->cur_scope,
		memory_order_relaxed);
	s->outer = cur;
	s->state = WEFT__SCOPE_ENTERED;
	weft__scope_link(s, cur, t);
	/* relaxed: only the task itself reads its cur_scope. */
	atomic_store_explicit(&t->cur_scope, s, memory_order_relaxed);
}

void weft__scope_push_lazy(struct weft_task *t, struct weft_scope *s)
{
	/* relaxed: only the task itself writes its cur_scope. */
	struct weft_scope *cur = atomic_load_explicit(&t->cur_scope,
		memory_order_relaxed);
	s->outer = cur;
	s->parent = cur;
	s->state = WEFT__SCOPE_ENTERED;
	weft__scope_pull_init(&t->rt->cancel_gen, s, cur);
	/* relaxed: only the task itself reads its cur_scope. */
	atomic_store_explicit(&t->cur_scope, s, memory_order_relaxed);
}

void weft__scope_unref(struct weft_scope *s)
{
	/* acq_rel: the last dropper sees all writes made under other refs
	 * (pairs with every other dropper's release, the owner's in
	 * weft__scope_frame_exit included: waiter and gen). */
	struct weft__timed_scope *ts = weft__scope_timed(s);
	if (atomic_fetch_sub_explicit(&ts->refs, 1, memory_order_acq_rel) ==
		1) {
		if (s->kind == WEFT__SCOPE_FRAME) {
			/* The owner dropped its reference first and is parked
			 * (or parking) until this wake; it cannot leave the
			 * frame holding ss before, so reading ss is safe. */
			struct weft__frame_scope *ss = WEFT__CONTAINER_OF(ts,
				struct weft__frame_scope, ts);
			weft__task_wake(ss->waiter, ss->gen);
			return;
		}
		weft__scope_fini(s);
		/* relaxed: the last reference; the acq_rel above ordered
		 * the owner's exit before this. */
		if (atomic_load_explicit(&ts->inherited,
			    memory_order_relaxed) &&
			ts->inherited_owned)
			weft__free((char *)ts->inherited_reason.text);
		weft__alloc_census_add(WEFT__CENSUS_SCOPE, -1);
		weft__free(ts);
	}
}

void weft__scope_deadline_fired(struct weft_scope *s)
{
	weft__scope_cancel(s, WEFT_CANCEL_DEADLINE, "deadline exceeded", true,
		0);
}

/* Arms or disarms the timer for s according to timer_deadline. */
static void scope_timer_set(struct weft_scope *s, int64_t when)
{
	struct weft__timed_scope *ts = weft__scope_timed(s);
	/* seq_cst: ordered before the seq_cst CAS of timer_queued in
	 * weft__timer_update (see timer_apply_request). */
	int64_t old = atomic_exchange_explicit(&ts->timer_deadline, when,
		memory_order_seq_cst);
	if (old != when && ts->rt != NULL)
		weft__timer_update(ts->rt, ts);
}

/* }======================================================= */

/* {======================================================= enter / exit */

static int scope_enter(struct weft_task *t, struct weft_scope *s, void *site)
{
	weft__scope_timed(s)->rt = t->rt;
	weft__scope_timed(s)->site = site;
	weft__scope_push(t, s);
	/* The stall watchdog reports a shield left open too long. */
	if (WEFT__UNLIKELY(s->flags & WEFT_SCOPE_SHIELD) &&
		t->rt->stall != NULL)
		weft__stall_shield_enter(t->rt, &weft__scope_timed(s)->stall, s,
			t, site);
	/* relaxed: a value; the timer goes by timer_deadline, not this. */
	int64_t d = atomic_load_explicit(&s->deadline, memory_order_relaxed);
	if (d != WEFT_FOREVER) {
		if (d <= weft_now())
			weft__scope_deadline_fired(s);
		else
			scope_timer_set(s, d);
	}
	return 0;
}

/* s, a user scope being exited by its owner, was effectively cancelled by
 * o, a scope further out (alive: s is still linked below it): keeps o's
 * reason for weft_scope_reason's WEFT_CANCEL_PARENT. */
static void scope_keep_inherited(struct weft_scope *s, struct weft_scope *o)
{
	struct weft__timed_scope *ts = weft__scope_timed(s);
	weft_cancel_reason_t r;
	weft__spin_lock(&o->lock);
	weft__scope_reason_export(o, &r);
	weft__spin_unlock(&o->lock);
	size_t n = strlen(r.text) + 1;
	char *copy = weft__alloc(n);
	if (copy)
		memcpy(copy, r.text, n);
	ts->inherited_reason = (struct weft__reason){ r.scope_id, r.task_id,
		copy ? copy : "cancelled (reason text lost: out of memory)" };
	ts->inherited_owned = copy != NULL;
	/* release: the reason before the flag (pairs with the acquire in
	 * weft_scope_reason). */
	atomic_store_explicit(&ts->inherited, true, memory_order_release);
}

static void scope_exit(struct weft_task *t, struct weft_scope *s)
{
	if (WEFT__UNLIKELY(weft__scope_timed(s)->stall.listed))
		weft__stall_shield_exit(t->rt, &weft__scope_timed(s)->stall);
	/* relaxed: see weft__scope_note_observed. */
	bool observed = atomic_load_explicit(&s->observed,
		memory_order_relaxed);
	struct weft_scope *o = weft__scope_origin(s);
	if (observed && o != NULL && o != s) {
		/* A checkpoint saw s's own cancellation, but a scope further
		 * out has been cancelled since: the cancellation belongs to
		 * the outer scope now (Trio's "the outer one wins"), which
		 * catches it, not s. */
		weft__scope_note_observed(o);
		s->caught = false;
	} else {
		/* acquire: pairs with the release in weft__scope_cancel, so
		 * the reason weft_scope_exit checks is complete. */
		s->caught = observed &&
			atomic_load_explicit(&s->cancel_called,
				memory_order_acquire);
	}
	if (s->kind == WEFT__SCOPE_USER && o != NULL && o != s)
		scope_keep_inherited(s, o);
	weft__scope_pop(t, s);
	scope_timer_set(s, WEFT_FOREVER);
}

int weft_scope_create(weft_scope_t **out, int64_t deadline, unsigned flags)
{
	if (out == NULL || (flags & ~(WEFT_SCOPE_SHIELD | WEFT_SCOPE_FAIL)))
		return -EINVAL;
	struct weft__timed_scope *ts = weft__calloc(1, sizeof *ts);
	if (ts == NULL)
		return -ENOMEM;
	struct weft_scope *s = &ts->s;
	weft__scope_init(s, WEFT__SCOPE_USER, flags);
	s->id = weft__id_next();
	/* relaxed: s is not shared yet. */
	atomic_store_explicit(&s->deadline, deadline, memory_order_relaxed);
	weft__alloc_census_add(WEFT__CENSUS_SCOPE, 1);
	/* A deadline already past cancels at once, before entry (Trio's
	 * cancel_called is true for such a scope too). */
	if (deadline != WEFT_FOREVER && deadline <= weft_now())
		weft__scope_deadline_fired(s);
	*out = s;
	return 0;
}

int weft_scope_enter(weft_scope_t *s)
{
	if (s == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	if (s->state != WEFT__SCOPE_CREATED || s->kind != WEFT__SCOPE_USER)
		return WEFT_EMISUSE;
	return scope_enter(t, s, __builtin_return_address(0));
}

#ifdef WEFT_DEBUG
/* Where scope s was entered, for a report: "<site>" as the code address
 * of the public call (user scopes and groups), or what entered it. */
static void scope_site(const struct weft_scope *s, char *buf, size_t n)
{
	void *site = NULL;
	switch ((enum weft__scope_kind)s->kind) {
	case WEFT__SCOPE_USER:
		site = weft__scope_timed((struct weft_scope *)s)->site;
		break;
	case WEFT__SCOPE_GROUP:
		site = WEFT__CONTAINER_OF(s, struct weft_group, scope)
			       ->open_site;
		break;
	case WEFT__SCOPE_TASK: snprintf(buf, n, "the task's start"); return;
	case WEFT__SCOPE_FRAME:
		snprintf(buf, n, "a sleep or timeout inside weft");
		return;
	}
	if (site)
		weft__backtrace_site(site, buf, n);
	else
		snprintf(buf, n, "an unknown place");
}

#endif

void weft__scope_misnest_report(const char *call, struct weft_task *t,
	const struct weft_scope *s)
{
#ifdef WEFT_DEBUG
	/* relaxed: the task's own cur_scope. */
	const struct weft_scope *in = atomic_load_explicit(&t->cur_scope,
		memory_order_relaxed);
	char a[256], b[256];
	scope_site(s, a, sizeof a);
	scope_site(in, b, sizeof b);
	weft__diag("%s: %s #%llu, entered at %s, is not the innermost scope "
		   "of task '%s'#%llu: %s #%llu, entered at %s, is still "
		   "entered (docs/semantics.md rule 24; nothing was exited)",
		call, s->kind == WEFT__SCOPE_GROUP ? "group" : "scope",
		(unsigned long long)s->id, a, t->name,
		(unsigned long long)t->id,
		in->kind == WEFT__SCOPE_GROUP ? "group" : "scope",
		(unsigned long long)in->id, b);
#else
	(void)call;
	(void)t;
	(void)s;
#endif
}

int weft_scope_exit(weft_scope_t *s)
{
	if (s == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	if (s->state != WEFT__SCOPE_ENTERED || s->kind != WEFT__SCOPE_USER)
		return WEFT_EMISUSE;
	/* relaxed: under s's lock, like its writers. */
	weft__spin_lock(&s->lock);
	bool mine = atomic_load_explicit(&s->task, memory_order_relaxed) == t;
	weft__spin_unlock(&s->lock);
	if (!mine)
		return WEFT_EMISUSE;
	/* relaxed: the task's own cur_scope. */
	if (atomic_load_explicit(&t->cur_scope, memory_order_relaxed) != s) {
		weft__scope_misnest_report("weft_scope_exit", t, s);
		return WEFT_EMISNEST;
	}
	scope_exit(t, s);
	if ((s->flags & WEFT_SCOPE_FAIL) && s->caught &&
		s->reason_origin == WEFT_CANCEL_DEADLINE)
		return -ETIMEDOUT;
	return 0;
}

void weft_scope_destroy(weft_scope_t *s)
{
	if (s == NULL)
		return;
	if (s->state == WEFT__SCOPE_ENTERED) {
		struct weft_task *t = weft__task_current();
		/* relaxed: the task's own cur_scope. */
		if (t &&
			atomic_load_explicit(&t->cur_scope,
				memory_order_relaxed) == s)
			scope_exit(t, s);
		else if (t) {
			weft__scope_misnest_report("weft_scope_destroy", t, s);
			WEFT_ASSERT(0,
				"weft_scope_destroy of a scope that is "
				"entered but not innermost");
		} else {
			WEFT_ASSERT(0,
				"weft_scope_destroy of an entered scope "
				"outside its task");
		}
	}
	weft__scope_unref(s);
}

int weft_scope_cancel(weft_scope_t *s, const char *reason)
{
	if (s == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	weft__scope_cancel(s, WEFT_CANCEL_EXPLICIT, reason, false,
		t ? t->id : 0);
	return 0;
}

int weft_scope_set_deadline(weft_scope_t *s, int64_t deadline)
{
	if (s == NULL)
		return -EINVAL;
	/* relaxed: a value (cancel.h); the timer gets timer_deadline. */
	atomic_store_explicit(&s->deadline, deadline, memory_order_relaxed);
	if (s->state == WEFT__SCOPE_EXITED)
		return 0;
	/* A deadline already past cancels at once, entered or not; a future
	 * one is armed only while entered (enter arms it). */
	if (deadline != WEFT_FOREVER && deadline <= weft_now())
		weft__scope_deadline_fired(s);
	else if (s->state == WEFT__SCOPE_ENTERED)
		scope_timer_set(s, deadline);
	return 0;
}

int64_t weft_scope_deadline(const weft_scope_t *s)
{
	/* relaxed: a value, ordering nothing. */
	return s ? atomic_load_explicit(&s->deadline, memory_order_relaxed)
		 : WEFT_FOREVER;
}

int weft_scope_cancel_called(const weft_scope_t *s)
{
	/* acquire: pairs with the release in weft__scope_cancel. */
	return s &&
		atomic_load_explicit(&s->cancel_called, memory_order_acquire);
}

int weft_scope_cancelled_caught(const weft_scope_t *s)
{
	return s && s->caught;
}

int weft_scope_reason(const weft_scope_t *s, weft_cancel_reason_t *out)
{
	if (s == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	/* acquire: pairs with the release in weft__scope_cancel; the reason
	 * is complete and never changes after. */
	if (atomic_load_explicit(&s->cancel_called, memory_order_acquire)) {
		weft__scope_reason_export(s, out);
		return 0;
	}
	if (s->kind != WEFT__SCOPE_USER)
		return 0;
	const struct weft__timed_scope *ts = weft__scope_timed(
		(struct weft_scope *)s);
	/* acquire: pairs with the release in scope_keep_inherited. */
	if (atomic_load_explicit(&ts->inherited, memory_order_acquire)) {
		out->origin = WEFT_CANCEL_PARENT;
		out->scope_id = ts->inherited_reason.scope_id;
		out->task_id = ts->inherited_reason.task_id;
		snprintf(out->text, sizeof out->text, "%s",
			ts->inherited_reason.text);
		return 0;
	}
	/* Still entered, asked by its own task: the origin is a scope
	 * further out that stays alive while s is linked below it.
	 * relaxed: s->task is written by this task (entry and exit) or
	 * under the lock by a start() hand-over that cannot involve a user
	 * scope. */
	struct weft_task *t = weft__task_current();
	if (t == NULL ||
		atomic_load_explicit(&s->task, memory_order_relaxed) != t ||
		!weft__scope_is_cancelled(s))
		return 0;
	struct weft_scope *o = weft__scope_origin(s);
	if (o == NULL || o == s)
		return 0;
	weft__spin_lock(&o->lock);
	weft__scope_reason_export(o, out);
	weft__spin_unlock(&o->lock);
	out->origin = WEFT_CANCEL_PARENT;
	return 0;
}

/* weft_scope_open for the public call whose return address is site. */
static int scope_open(weft_scope_t **out, int64_t deadline, unsigned flags,
	void *site)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	int rc = weft_scope_create(out, deadline, flags);
	if (rc < 0)
		return rc;
	return scope_enter(t, *out, site);
}

int weft_scope_open(weft_scope_t **out, int64_t deadline, unsigned flags)
{
	return scope_open(out, deadline, flags, __builtin_return_address(0));
}

static int64_t scope_after(int64_t ns)
{
	if (ns <= 0)
		return weft_now();
	int64_t now = weft_now();
	return ns > WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
}

int weft_move_on_at(weft_scope_t **out, int64_t deadline)
{
	return scope_open(out, deadline, 0, __builtin_return_address(0));
}

int weft_move_on_after(weft_scope_t **out, int64_t ns)
{
	return scope_open(out, scope_after(ns), 0, __builtin_return_address(0));
}

int weft_fail_at(weft_scope_t **out, int64_t deadline)
{
	return scope_open(out, deadline, WEFT_SCOPE_FAIL,
		__builtin_return_address(0));
}

int weft_fail_after(weft_scope_t **out, int64_t ns)
{
	return scope_open(out, scope_after(ns), WEFT_SCOPE_FAIL,
		__builtin_return_address(0));
}

void weft__scope_frame_enter(struct weft_task *t, struct weft__frame_scope *ss,
	int64_t deadline)
{
	memset(ss, 0, sizeof *ss);
	weft__scope_init(&ss->ts.s, WEFT__SCOPE_FRAME, 0);
	/* relaxed: ss is not shared before scope_enter links it. */
	atomic_store_explicit(&ss->ts.s.deadline, deadline,
		memory_order_relaxed);
	scope_enter(t, &ss->ts.s, NULL);
}

void weft__scope_force_exit(struct weft_task *t, struct weft_scope *s)
{
	scope_exit(t, s);
}

bool weft__scope_frame_exit(struct weft_task *t, struct weft__frame_scope *ss)
{
	scope_exit(t, &ss->ts.s);
	bool caught = ss->ts.s.caught;
	/* Unlinked: no canceller reaches ss any more.  The timer may
	 * still hold a request or wheel reference; if so, its last unref
	 * wakes this park (weft__scope_unref).  The park is not cancellable
	 * and nobody else knows its generation, so only that wake ends it. */
	ss->waiter = t;
	ss->gen = weft__task_park_prepare(t, false);
	/* acq_rel, as in weft__scope_unref: the release publishes waiter and
	 * gen to the last dropper. */
	if (atomic_fetch_sub_explicit(&ss->ts.refs, 1, memory_order_acq_rel) !=
		1)
		weft__task_park_commit(t);
	return caught;
}

/* }======================================================= */

/* {======================================================= checkpoints */

/* The calling task's innermost scope, linked into the tree (so that a
 * cancellation reaches it from now on). */
static struct weft_scope *cancel_cur(struct weft_task *t)
{
	weft__task_link_root(t);
	/* relaxed: the task's own cur_scope. */
	return atomic_load_explicit(&t->cur_scope, memory_order_relaxed);
}

/* -ECANCELED (recording the observation) if t is cancelled, else 0. */
static int cancel_check(struct weft_task *t)
{
	struct weft_scope *s = cancel_cur(t);
	if (!weft__scope_is_cancelled(s))
		return 0;
	weft__scope_note_observed(weft__scope_origin(s));
	return -ECANCELED;
}

int weft_checkpoint_if_cancelled(void)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	return cancel_check(t);
}

int weft_cancel_shielded_checkpoint(void)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	weft__sched_switch_out(t, WEFT__POST_YIELD);
	return 0;
}

int weft_yield(void)
{
	return weft_cancel_shielded_checkpoint();
}

int weft_checkpoint(void)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	int rc = cancel_check(t);
	if (rc < 0)
		return rc;
	weft__sched_switch_out(t, WEFT__POST_YIELD);
	return cancel_check(t);
}

int64_t weft_effective_deadline(void)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_FOREVER;
	struct weft_scope *cur = cancel_cur(t);
	/* Effectively cancelled: every deadline is as good as past.  Not an
	 * observation (no weft__scope_note_observed): it reports, it does
	 * not fail a checkpoint. */
	if (weft__scope_is_cancelled(cur))
		return WEFT_PAST;
	int64_t best = WEFT_FOREVER;
	for (struct weft_scope *s = cur; s; s = s->parent) {
		/* relaxed: a value, ordering nothing. */
		int64_t d = atomic_load_explicit(&s->deadline,
			memory_order_relaxed);
		if (d < best)
			best = d;
		if (s->flags & WEFT_SCOPE_SHIELD)
			break;
	}
	return best;
}

int weft_cancel_reason(weft_cancel_reason_t *out)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	memset(out, 0, sizeof *out);
	struct weft_scope *s = cancel_cur(t);
	struct weft_scope *o = weft__scope_is_cancelled(s)
		? weft__scope_origin(s)
		: NULL;
	if (o == NULL)
		return 0;
	weft__spin_lock(&o->lock);
	weft__scope_reason_export(o, out);
	weft__spin_unlock(&o->lock);
	return 0;
}

/* }======================================================= */

/* {======================================================= sleeping */

int weft_sleep_until_opts(int64_t deadline, unsigned flags)
{
	if (flags & ~(unsigned)WEFT_SLEEP_RELEASE_STACK)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	int rc = cancel_check(t);
	if (rc < 0)
		return rc;
	if (deadline <= weft_now()) {
		weft__sched_switch_out(t, WEFT__POST_YIELD);
		return cancel_check(t);
	}
	/* The deadline is a private scope in this frame: a parked sleeper
	 * costs no heap memory beyond its task record (benchmark B7).  A
	 * sleep that releases its stack (never one running inline on its
	 * parent's, nor inside a weft_par call, whose taken half writes
	 * into the caller's frame: core/par.c) keeps the scope on the heap
	 * instead, since wakers write it while the stack is gone; without
	 * that block it keeps its stack. */
	struct weft__frame_scope frame, *heap = NULL;
	if ((flags & WEFT_SLEEP_RELEASE_STACK) && !t->stack_borrowed &&
		t->stack != NULL && t->par == NULL)
		heap = weft__alloc(sizeof *heap);
	struct weft__frame_scope *ss = heap ? heap : &frame;
	weft__scope_frame_enter(t, ss, deadline);
	/* The worker that switches us out releases the stack (sched.c). */
	t->park_release = heap != NULL ? "weft_sleep_until_opts" : NULL;
	for (;;) {
		weft__task_park_prepare(t, true);
		if (weft__scope_is_cancelled(&ss->ts.s))
			break;
		weft__task_park_commit(t);
	}
	/* Before the exit, which may park again (uncancellably, for the
	 * scope's last references): those parks keep the stack. */
	t->park_release = NULL;
	weft__scope_note_observed(weft__scope_origin(&ss->ts.s));
	weft__scope_frame_exit(t, ss);
	weft__free(heap);
	return cancel_check(t);
}

int weft_sleep_until(int64_t deadline)
{
	return weft_sleep_until_opts(deadline, 0);
}

int weft_sleep(int64_t ns)
{
	return weft_sleep_until(scope_after(ns));
}

/* }======================================================= */
