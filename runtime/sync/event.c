/* Event: a one-shot flag tasks wait for.
 *
 * The flag is set under the event's spin lock, which also guards the wait
 * queue, so a waiter's "not set yet -> queue myself" and the setter's
 * "set -> grant every queued waiter" are atomic with respect to each
 * other: a waiter either sees the flag or is queued before the setter
 * looks at the queue, and no wake-up is lost.  The setter grants every
 * node (weft__waitq_grant: the grant decides, so a waiter woken by both
 * the set and a cancellation returns 0 - it saw the event) and readies
 * the woken tasks after unlocking.
 *
 * A set flag never goes back, so wait's fast path is one acquire load,
 * without the spin lock.  set is callable from any thread: making a task
 * runnable from a plain thread goes through the runtime's injection
 * queue (weft__sched_ready).
 *
 * Lifetime: nwaiting counts tasks inside wait's slow path until they have
 * re-taken the spin lock for the last time, so destroy (under the same
 * lock) refuses while a woken waiter could still touch the event.  The
 * setter never touches the event after unlocking.
 */
#include <errno.h>
#include <stdio.h>

#include "base/alloc.h"
#include "core/inspect.h"
#include "core/task.h"
#include "sync/waitq.h"
#include "weft/sync.h"

struct weft_event {
	/* false -> true once, under `spin` (release); read lock-free by
	 * wait's fast path and is_set (acquire). */
	atomic_bool set;
	weft__spin_t spin; /* guards q and nwaiting */
	weft__waitq_t q;
	size_t nwaiting; /* tasks inside wait's slow path; under spin */
};

int weft_event_create(weft_event_t **out)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_event *ev = weft__alloc(sizeof *ev);
	if (ev == NULL)
		return -ENOMEM;
	atomic_init(&ev->set, false);
	weft__spin_init(&ev->spin);
	ev->q = (weft__waitq_t){ .what = "event", .kind = WEFT__WAIT_EVENT };
	ev->nwaiting = 0;
	*out = ev;
	return 0;
}

int weft_event_destroy(weft_event_t *ev)
{
	if (ev == NULL)
		return -EINVAL;
	weft__spin_lock(&ev->spin);
	bool busy = ev->nwaiting != 0;
	weft__spin_unlock(&ev->spin);
	if (busy)
		return -EBUSY;
	weft__free(ev);
	return 0;
}

int weft_event_set(weft_event_t *ev)
{
	if (ev == NULL)
		return -EINVAL;
	/* acquire: an earlier set's writes are visible; nothing to do. */
	if (atomic_load_explicit(&ev->set, memory_order_acquire))
		return 0;
	weft__wakelist_t wl = { 0 };
	weft__spin_lock(&ev->spin);
	/* release: publishes the setter's writes to the lock-free readers
	 * (wait's fast path, is_set); queued waiters get them via `spin`. */
	atomic_store_explicit(&ev->set, true, memory_order_release);
	struct weft__wait_node *n;
	while ((n = weft__waitq_first(&ev->q)) != NULL)
		weft__waitq_grant(&ev->q, n, &wl);
	weft__spin_unlock(&ev->spin);
	weft__waitq_flush(&wl);
	return 0;
}

int weft_event_is_set(const weft_event_t *ev)
{
	if (ev == NULL)
		return 0;
	/* acquire: pairs with the release store in weft_event_set. */
	return atomic_load_explicit(&((struct weft_event *)ev)->set,
		memory_order_acquire);
}

int weft_event_wait(weft_event_t *ev)
{
	if (ev == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	/* acquire: pairs with the release store in weft_event_set. */
	if (atomic_load_explicit(&ev->set, memory_order_acquire))
		return 0;
	weft__spin_lock(&ev->spin);
	/* relaxed: under `spin`, which set holds when it stores (the lock
	 * orders the two; a waiter granted later gets set's writes through
	 * `spin` too). */
	if (!atomic_load_explicit(&ev->set, memory_order_relaxed)) {
		struct weft__wait_node n = { 0 };
		ev->nwaiting++;
		rc = weft__waitq_wait(&ev->spin, &ev->q, &n, self);
		ev->nwaiting--;
	}
	weft__spin_unlock(&ev->spin);
	return rc;
}

size_t weft_event_waiting(const weft_event_t *ev)
{
	if (ev == NULL)
		return 0;
	struct weft_event *m = (struct weft_event *)ev;
	weft__spin_lock(&m->spin);
	size_t n = m->q.len;
	weft__spin_unlock(&m->spin);
	return n;
}

void weft__event_describe(const void *on, struct weft__wait_desc *d)
{
	struct weft_event *ev = WEFT__CONTAINER_OF((weft__waitq_t *)on,
		struct weft_event, q);
	d->obj = ev;
	weft__spin_lock(&ev->spin);
	size_t queued = ev->q.len;
	/* relaxed: under `spin`, where it is written. */
	bool set = atomic_load_explicit(&ev->set, memory_order_relaxed);
	weft__spin_unlock(&ev->spin);
	snprintf(d->text, sizeof d->text, "set=%d waiters=%zu", set, queued);
}
