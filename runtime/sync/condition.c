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
 * After the wait (granted by notify, or cancelled and dequeued - the
 * waitq grant decides, so a notification is never both consumed and
 * reported as a cancellation), the task re-acquires the Lock ignoring
 * cancellation (weft__lock_acquire_uncancellable: a non-cancellable park,
 * FIFO behind the other waiters).  Trio does the same with a shielded
 * acquire.
 *
 * Lock order: the condition's spin lock before the Lock's spin lock.
 *
 * Lifetime: nwaiting counts tasks from before they release the Lock
 * until they have re-acquired it, so destroy refuses while a waiter may
 * still touch the condition or its own Lock.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "base/alloc.h"
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
	c->q = (weft__waitq_t){ .what = "condition" };
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
	weft__lock_acquire_uncancellable(lock, self);
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
	weft__wakelist_t wl = { 0 };
	size_t woken = 0;
	weft__spin_lock(&c->spin);
	struct weft__wait_node *node;
	while (woken < n && (node = weft__waitq_first(&c->q)) != NULL) {
		weft__waitq_grant(&c->q, node, &wl);
		woken++;
	}
	weft__spin_unlock(&c->spin);
	weft__waitq_flush(&wl);
	return woken > INT_MAX ? INT_MAX : (int)woken;
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
