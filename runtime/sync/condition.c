/* Condition: a condition variable bound to a Lock (Trio semantics).
 *
 * Problem: wait must release the lock and park "atomically": a notify
 * issued after the waiter released the lock must find it queued.  And,
 * as in Trio, wait must return with the lock held in every case,
 * including cancellation, so that the caller's cleanup runs under the
 * lock it expects to hold.
 *
 * Approach: notify requires the caller to hold the lock (WEFT_EMISUSE
 * otherwise, as in Trio, AnyIO and Python's threading).  wait takes the
 * condition's spin lock, releases the Lock while holding it, and queues
 * itself on the condition's wait queue before dropping the spin lock
 * (weft__waitq_wait).  A notifier needs the Lock, which it can only get
 * after our release, and then the spin lock, which it can only get after
 * we are queued: no notification is lost.  Releasing the Lock may hand
 * it to a waiting task and make that task runnable while the spin lock
 * is held; the only tasks that could then contend for the spin lock are
 * the new holder notifying (which must wait for our queueing anyway) and
 * cancelled waiters leaving, so the hold stays short.
 *
 * Notify does not wake anybody: it moves the oldest waiters that may be
 * granted (weft__waitq_first) from the condition's queue to the tail of
 * the Lock's (weft__lock_repark_locked, under both spin locks), as Trio's
 * Condition.notify reparks them onto its Lock's ParkingLot.  So the
 * notified tasks stay parked, count in weft_lock_waiting, and are handed
 * the Lock one by one, FIFO after the tasks that were already waiting
 * for it, when the notifier (and then each of them) releases it; a task
 * that calls acquire after the notify queues behind them.  Waking them
 * instead, to race for the Lock, let any other task take it first.
 *
 * A moved waiter is still in the park it began on the condition, which
 * is cancellable.  Rather than rewrite its park word, the node is marked
 * (`reparked`) and the Lock's grant never passes a marked node over
 * (weft__waitq_grantable); a cancellation may still wake the task early,
 * and it then parks again on the Lock's queue, uncancellably
 * (weft__lock_wait_reparked), keeping its place.  That is Trio's
 * "re-acquire even when cancelled, then raise Cancelled".
 *
 * A waiter cancelled while still on the condition's queue (the queue's
 * lock decides between that and a notify, so a notification is never
 * both taken and lost) removes its node and re-acquires the Lock
 * ignoring cancellation (weft__lock_acquire_uncancellable: FIFO behind
 * the other waiters).
 *
 * Invariants
 *   1. A node is on exactly one queue: the condition's (guarded by its
 *      spin lock) until a notify moves it, holding both spin locks,
 *      then the Lock's (guarded by the Lock's), where only a grant
 *      removes it.  Its generation is written under the lock of the
 *      queue that holds it, which is the lock its waker reads it under.
 *   2. wait returns 0 only when notified and not cancelled by the time
 *      it holds the Lock again; otherwise -ECANCELED.  Either way it
 *      returns holding the Lock, unless the Lock broke (its owner ended
 *      holding it, lock.c): then it returns -EOWNERDEAD without it.
 *
 * Lock order: the condition's spin lock before the Lock's spin lock.
 *
 * Lifetime: nwaiting counts tasks from before they release the Lock
 * until they have re-acquired it, so destroy refuses while a waiter may
 * still touch the condition or its own Lock; a moved node also counts in
 * the Lock's nwaiting until its grant.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "base/alloc.h"
#include "core/cancel.h"
#include "core/inspect.h"
#include "core/task.h"
#include "sync/lock.h"
#include "sync/waitq.h"
#include "weft/sync.h"

struct weft_condition {
	weft__spin_t spin; /* guards q and nwaiting */
	weft__waitq_t q;
	size_t nwaiting;	/* tasks inside wait (see the essay) */
	struct weft_lock *lock; /* the caller's, or &own; fixed */
	struct weft_lock own;	/* used when created without a lock */
};

int weft_condition_create(weft_condition_t **out, weft_lock_t *lock)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_condition *c = weft__alloc(sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	weft__spin_init(&c->spin);
	c->q = (weft__waitq_t){ .what = "condition",
		.kind = WEFT__WAIT_CONDITION };
	c->nwaiting = 0;
	weft__lock_init(&c->own);
	c->lock = lock ? lock : &c->own;
	*out = c;
	return 0;
}

int weft_condition_destroy(weft_condition_t *c)
{
	if (c == NULL)
		return -EINVAL;
	weft__spin_lock(&c->spin);
	bool busy = c->nwaiting != 0;
	weft__spin_unlock(&c->spin);
	if (busy || (c->lock == &c->own && !weft__lock_idle(&c->own)))
		return -EBUSY;
	weft__free(c);
	return 0;
}

weft_lock_t *weft_condition_lock(weft_condition_t *c)
{
	return c ? c->lock : NULL;
}

int weft_condition_wait(weft_condition_t *c)
{
	if (c == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (self == NULL)
		return WEFT_ENOTFIBER;
	struct weft_lock *lock = c->lock;
	if (!weft__lock_owned_by(lock, self))
		return WEFT_EMISUSE;
	/* Cancelled on entry: the lock was never released. */
	if (rc < 0)
		return rc;
	struct weft__wait_node n = { 0 };
	weft__spin_lock(&c->spin);
	c->nwaiting++;
	weft__lock_release(lock, self);
	rc = weft__waitq_wait(&c->spin, &c->q, &n, self);
	weft__spin_unlock(&c->spin);
	if (rc == 0) {
		/* Notified: n is on the lock's queue (invariant 1). */
		rc = weft__lock_wait_reparked(lock, &n, self);
		/* Invariant 2: a cancellation that came before we had the
		 * lock back is reported.  relaxed: our own cur_scope; the
		 * flag's load is seq_cst (weft__scope_is_cancelled). */
		struct weft_scope *s = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		if (rc == 0 && weft__scope_is_cancelled(s)) {
			weft__scope_note_observed(weft__scope_origin(s));
			rc = -ECANCELED;
		}
	} else {
		/* Cancelled before a notify; -EOWNERDEAD overrides. */
		int arc = weft__lock_acquire_uncancellable(lock, self);
		if (arc < 0)
			rc = arc;
	}
	weft__spin_lock(&c->spin);
	c->nwaiting--;
	weft__spin_unlock(&c->spin);
	return rc;
}

int weft_condition_notify(weft_condition_t *c, size_t n)
{
	if (c == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (!weft__lock_owned_by(c->lock, self))
		return WEFT_EMISUSE;
	size_t moved = 0;
	struct weft_lock *lock = c->lock;
	/* Lock order: the condition's spin lock, then the Lock's. */
	weft__spin_lock(&c->spin);
	weft__spin_lock(&lock->spin);
	struct weft__wait_node *node;
	while (moved < n && (node = weft__waitq_first(&c->q)) != NULL) {
		weft__lock_repark_locked(lock, &c->q, node);
		moved++;
	}
	weft__spin_unlock(&lock->spin);
	weft__spin_unlock(&c->spin);
	/* Nobody to wake: the moved tasks stay parked until our release
	 * (or a later holder's) hands them the lock. */
	return moved > INT_MAX ? INT_MAX : (int)moved;
}

int weft_condition_notify_all(weft_condition_t *c)
{
	return weft_condition_notify(c, SIZE_MAX);
}

size_t weft_condition_waiting(const weft_condition_t *c)
{
	if (c == NULL)
		return 0;
	struct weft_condition *m = (struct weft_condition *)c;
	weft__spin_lock(&m->spin);
	size_t n = m->q.len;
	weft__spin_unlock(&m->spin);
	return n;
}

void weft__condition_describe(const void *on, struct weft__wait_desc *d)
{
	struct weft_condition *c = WEFT__CONTAINER_OF((weft__waitq_t *)on,
		struct weft_condition, q);
	d->obj = c;
	weft__spin_lock(&c->spin);
	size_t queued = c->q.len;
	weft__spin_unlock(&c->spin);
	snprintf(d->text, sizeof d->text, "waiters=%zu", queued);
}
