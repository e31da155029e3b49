/* Wait queues.
 *
 * Problem: a primitive must let a task wait for a hand-off (a lock, a
 * permit, a channel item) such that a wait ends in exactly one of two ways:
 * it was granted the thing, or it was cancelled and took nothing - even
 * when the grant and the cancellation happen at the same moment on two
 * other threads.
 *
 * Approach: the waker decides, under the primitive's lock.  A waiter is a
 * node on its own stack, queued under the lock.  A waker passes over the
 * nodes whose scope is cancelled already (weft__waitq_first: a
 * cancellation requested before the grant wins, as in Trio), removes the
 * oldest other node, transfers the thing into it (n->data, or the primitive's
 * state) and sets `granted`, all under the lock, then wakes the task's park
 * generation.  A cancellation only wakes the task (weft__task_wake_cancel
 * from the scope tree, without the primitive's lock).  The woken waiter
 * re-takes the lock and reads `granted`: if set it succeeded, whatever
 * woke it; if not and its scope is cancelled, it removes its node and
 * returns -ECANCELED, and since nobody can grant a node that is no longer
 * queued, nothing was transferred.  Any other wake-up (none is expected)
 * parks again with a new generation.
 *
 * Lost wake-ups: the waiter stores its new park generation in the node
 * and calls weft__task_park_prepare *before* releasing the lock; a waker reads
 * the generation under the lock, so it always wakes the current park.
 * Cancellation uses the same prepare-then-check order as every park
 * (task.c): the prepare store and the canceller's eff_cancelled store are
 * both seq_cst, so either the waiter sees the cancel before parking or the
 * canceller sees the park word and wakes it.
 *
 * Lifetime: after `granted` is set and the lock released, the waiter may
 * return and its node disappear, and its task may finish.  So the waker
 * never touches the node after unlocking, and wakes with
 * weft__task_wake_deferred under the lock: a task it must make runnable
 * cannot run (nor be freed) until the waker readies it from the wake list
 * (or, granting one node with weft__waitq_grant_one, itself).
 * weft__waitq_wait_unlock lets a woken waiter read `granted` without the
 * lock (acquire); the waker therefore stores it (release) as its very last
 * access to the node, after reading the task and generation it wakes.
 */
#include <errno.h>

#include "core/cancel.h"
#include "core/sched.h"
#include "core/task.h"
#include "sync/waitq.h"

int weft__waitq_wait(weft__spin_t *lock, weft__waitq_t *q,
	struct weft__wait_node *n, struct weft_task *self)
{
	/* Reachable by cancellations from now on (lock order: a primitive's
	 * lock before a scope's; no scope code takes a primitive's lock). */
	weft__task_link_root(self);
	/* relaxed: our own cur_scope (as in weft__waitq_begin). */
	struct weft_scope *s = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	n->task = self;
	/* seq_cst (a plain access of an atomic_bool), under the lock, as is
	 * every access to `granted` here: the lock orders them. */
	n->granted = false;
	n->reparked = false;
	weft__waitq_push(q, n);
	for (;;) {
		n->gen = weft__task_park_prepare(self, true);
		/* seq_cst load after the seq_cst prepare: see the essay. */
		if (weft__scope_is_cancelled(s))
			break;
		/* Read under the lock: q may go once we are granted. */
		const char *what = q->what ? q->what : "wait queue";
		weft__spin_unlock(lock);
		weft__task_park_commit_obj(self, what, q->kind, q);
		weft__spin_lock(lock);
		/* seq_cst, under the lock the granter held when it stored;
		 * `reparked` was written under this lock too. */
		if (n->granted || n->reparked)
			return 0;
	}
	weft__waitq_remove(q, n);
	weft__scope_note_observed(weft__scope_origin(s));
	return -ECANCELED;
}

int weft__waitq_wait_unlock_slow(weft__spin_t *lock, weft__waitq_t *q,
	struct weft__wait_node *n, struct weft_task *self, struct weft_scope *s)
{
	/* Here after the inline first park (waitq.h) was cancelled before
	 * it parked, or woke without its grant: either way with the lock. */
	for (;;) {
		/* relaxed: under the lock, which the granter held when it
		 * stored true (the lock orders the two). */
		if (atomic_load_explicit(&n->granted, memory_order_relaxed)) {
			weft__spin_unlock(lock);
			return 0;
		}
		n->gen = weft__task_park_prepare(self, true);
		/* seq_cst load after the seq_cst prepare: see the essay. */
		if (weft__scope_is_cancelled(s))
			break;
		const char *what = q->what ? q->what : "wait queue";
		unsigned kind = q->kind;
		weft__spin_unlock(lock);
		weft__task_park_commit_obj(self, what, kind, q);
		/* acquire: pairs with the release in weft__waitq_grant_one,
		 * the granter's last access to n, so everything it wrote for
		 * us before is visible and n is ours again. */
		if (atomic_load_explicit(&n->granted, memory_order_acquire))
			return 0;
		/* Woken by something else (a cancellation), or the grant is
		 * still being made: the lock decides (the loop's top). */
		weft__spin_lock(lock);
	}
	weft__waitq_remove(q, n);
	weft__scope_note_observed(weft__scope_origin(s));
	weft__spin_unlock(lock);
	return -ECANCELED;
}

void weft__waitq_wait_uncancellable(weft__spin_t *lock, weft__waitq_t *q,
	struct weft__wait_node *n, struct weft_task *self)
{
	n->task = self;
	/* seq_cst (plain accesses of `granted`), all under the lock, as in
	 * weft__waitq_wait.  Never passed over (weft__waitq_grantable): the
	 * park is not cancellable. */
	n->granted = false;
	n->reparked = false;
	weft__waitq_push(q, n);
	/* A non-cancellable park: weft__task_wake_cancel skips it, so only
	 * the granting waker's generation ends it. */
	do {
		n->gen = weft__task_park_prepare(self, false);
		const char *what = q->what ? q->what : "wait queue";
		weft__spin_unlock(lock);
		weft__task_park_commit_obj(self, what, q->kind, q);
		weft__spin_lock(lock);
		/* seq_cst read of `granted`, under the lock (see above). */
	} while (!n->granted);
}

void weft__waitq_move(weft__waitq_t *from, weft__waitq_t *to,
	struct weft__wait_node *n)
{
	weft__waitq_remove(from, n);
	n->reparked = true;
	weft__waitq_push(to, n);
}

void weft__waitq_grant(weft__waitq_t *q, struct weft__wait_node *n,
	weft__wakelist_t *wl)
{
	struct weft_task *t = weft__waitq_grant_one(q, n);
	if (t == NULL)
		return;
	/* t is parked and ours to ready: its run-queue link is free. */
	t->next = NULL;
	if (wl->tail)
		wl->tail->next = t;
	else
		wl->head = t;
	wl->tail = t;
}

void weft__waitq_flush(weft__wakelist_t *wl)
{
	struct weft_task *t = wl->head;
	wl->head = wl->tail = NULL;
	while (t) {
		struct weft_task *next = t->next;
		weft__sched_ready(t);
		t = next;
	}
}
