/* Wait queues: the one way a primitive (event, lock, semaphore, channel,
 * ...) parks a task until another task hands it something, with "a
 * cancelled wait took nothing" built in (see waitq.c for the protocol).
 *
 * A wait queue has no lock of its own: it is protected by the lock of the
 * primitive that embeds it, which also guards the primitive's state, so a
 * waiter's check-then-enqueue and a waker's update-then-grant are atomic
 * with respect to each other. */
#ifndef WEFT_RUNTIME_SYNC_WAITQ_H
#define WEFT_RUNTIME_SYNC_WAITQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/spin.h"
#include "core/cancel.h"
#include "core/inspect.h"
#include "core/task.h"

struct weft_task;

/* One waiting task; lives on the waiter's stack for the whole wait.  All
 * fields are read and written under the primitive's lock, except that
 * weft__waitq_wait_unlock reads `granted` without it (see waitq.c). */
struct weft__wait_node {
	struct weft__wait_node *next, *prev;
	struct weft_task *task;
	uint64_t gen; /* generation of the waiter's current park */
	/* Set by the waker, as its last access to the node (release; pairs
	 * with the waiter's acquire): the wait succeeded. */
	atomic_bool granted;
	/* Set by weft__waitq_move (a Condition's notify moving the waiter
	 * onto its Lock's queue): the node has left the queue it was
	 * queued on, and its waiter now waits for a grant from the other
	 * one, uncancellably, so no waker may pass it over
	 * (weft__waitq_grantable).  Written under both primitives' locks;
	 * read under either. */
	bool reparked;
	/* For the primitive: what the waiter wants or was given (a channel
	 * item buffer, a semaphore count, a borrower token...). */
	void *data;
	uintptr_t aux;
};

/* FIFO of wait nodes.  Zero-initialised is empty (set `what` too). */
typedef struct weft__waitq {
	struct weft__wait_node *head, *tail;
	size_t len;
	/* What a task parked here waits for ("lock", "channel receive"...),
	 * a static string set by the primitive at init, for introspection. */
	const char *what;
	/* The dump's kind of the primitive (WEFT__WAIT_*, core/inspect.h),
	 * set at init with `what`: a parked waiter records the queue's
	 * address with it, and the kind's describer finds the primitive
	 * around the queue. */
	uint8_t kind;
} weft__waitq_t;

/* The dump's describers of the primitives' wait kinds (core/inspect.h:
 * `on` is the waiter's queue, which the primitive embeds; they run while
 * the dump holds a waiter pinned inside the wait, which keeps the
 * primitive alive, and read it under its spin lock).  One per primitive
 * file, listed by the composition root (runtime.c). */
struct weft__wait_desc;
void weft__lock_describe(const void *on, struct weft__wait_desc *d);
void weft__event_describe(const void *on, struct weft__wait_desc *d);
void weft__chan_describe_send(const void *on, struct weft__wait_desc *d);
void weft__chan_describe_recv(const void *on, struct weft__wait_desc *d);
void weft__semaphore_describe(const void *on, struct weft__wait_desc *d);
void weft__limiter_describe(const void *on, struct weft__wait_desc *d);
void weft__condition_describe(const void *on, struct weft__wait_desc *d);

/* Tasks a waker made runnable under a lock, readied after unlocking (so
 * that no scheduler work or futex wake happens inside the critical
 * section).  Zero-initialised is empty. */
typedef struct weft__wakelist {
	struct weft_task *head, *tail;
} weft__wakelist_t;

/* Before taking the primitive's lock to wait: returns -ECANCELED (and
 * records the observation) if the calling task is cancelled, WEFT_ENOTFIBER
 * from a plain thread, else 0 with *self set.  A root scope that is not
 * linked yet and not cancelled (read through the group's scope) stays
 * unlinked, so a call that completes at once never takes that scope's
 * lock; the waits below link it before parking.  Yields first when the
 * task has used its cooperative budget (weft__task_blocking_enter), so it
 * must be called with no lock held.  Thread: any (a weft fiber may yield here; a
 * plain thread gets WEFT_ENOTFIBER).  Inline: every blocking call of a
 * primitive starts here. */
static inline WEFT_FIBER_FN int weft__waitq_begin(struct weft_task **self)
{
	struct weft_task *t = weft__task_current();
	*self = t;
	if (t == NULL)
		return WEFT_ENOTFIBER;
	return weft__task_blocking_enter(t);
}

/* Enqueues n for self at the tail of q and parks until a waker grants it
 * or moves it to another queue (weft__waitq_move; returns 0 in both
 * cases, n->reparked tells which) or self's scope is cancelled first (n
 * is removed, the observation recorded, returns -ECANCELED).  `lock` is held on entry and
 * on return, released while parked.  n->data and n->aux are the caller's;
 * the rest is set here.  Thread: the fiber self, after weft__waitq_begin. */
WEFT_FIBER_FN int weft__waitq_wait(weft__spin_t *lock, weft__waitq_t *q,
	struct weft__wait_node *n, struct weft_task *self);

/* As weft__waitq_wait, but cancellation neither wakes nor ends the wait
 * (the park is not cancellable): returns only once a waker granted n.
 * For a wait that must complete whatever happens, such as a Condition
 * re-acquiring its lock.  Thread: the fiber self. */
WEFT_FIBER_FN void weft__waitq_wait_uncancellable(weft__spin_t *lock,
	weft__waitq_t *q, struct weft__wait_node *n, struct weft_task *self);

/* As weft__waitq_wait, but `lock` is NOT held on return (whatever the
 * result): a waiter woken by its grant returns without re-taking the lock,
 * which saves a lock round trip per hand-off (channels, ping-pong).  The
 * granter's writes to the node's data (n->data's target, fields of a
 * structure embedding n) made before weft__waitq_grant are visible to the
 * caller on return 0.  Thread: the fiber self, after weft__waitq_begin. */
WEFT_FIBER_FN int weft__waitq_wait_unlock(weft__spin_t *lock, weft__waitq_t *q,
	struct weft__wait_node *n, struct weft_task *self);

/* Whether n may still be granted: its wait is uncancellable (its park,
 * or n->reparked), or its scope has not been cancelled.  A waiter whose cancellation was
 * requested is awake already (the cancellation woke it) and will leave
 * the queue with -ECANCELED, taking nothing: a cancellation that came
 * before the grant wins, as in Trio; only one racing with the grant may
 * lose to it.  Thread: any, holding the primitive's lock. */
static inline bool weft__waitq_grantable(const struct weft__wait_node *n)
{
	/* A cancellation wakes a cancellably parked waiter before its
	 * canceller goes on (scope_propagate_locked), so only a waiter whose
	 * current park is cancellable and already woken may have been
	 * cancelled before this grant; an uncancellable wait never is.  The
	 * park word is the line the grant's wake is about to write anyway,
	 * so the common case costs no extra cache miss.  relaxed: the
	 * primitive's lock orders the waiter's prepare (made under it)
	 * before this read, and a cancellation's WOKEN that this read misses
	 * races with the grant, which may then win. */
	uint64_t w = atomic_load_explicit(&n->task->park, memory_order_relaxed);
	uint64_t cancel_woken = (n->gen << WEFT__PARK_GEN_SHIFT) |
		WEFT__PARK_WOKEN | WEFT__PARK_CANCELLABLE;
	if (WEFT__LIKELY((w & ~(uint64_t)WEFT__PARK_PARKED) != cancel_woken))
		return true;
	/* Moved here by a notify: its park is still the cancellable one it
	 * began on the Condition, but it now waits uncancellably (a
	 * cancellation only makes it park again, on this queue). */
	if (n->reparked)
		return true;
	/* Woken: by the cancellation, or spuriously by one that a shield
	 * stops: the waiter's innermost scope (fixed while it waits) decides.
	 * relaxed load of cur_scope: the waiter's own, unchanged while it is
	 * queued; seq_cst load of the flag (weft__scope_is_cancelled). */
	struct weft_scope *s = atomic_load_explicit(&n->task->cur_scope,
		memory_order_relaxed);
	return !weft__scope_is_cancelled(s);
}

/* The oldest waiter of q that may be granted (weft__waitq_grantable), or
 * NULL: the one a waker hands the thing to.  Thread: any, holding the
 * primitive's lock. */
static inline struct weft__wait_node *weft__waitq_first(weft__waitq_t *q)
{
	struct weft__wait_node *n = q->head;
	while (n != NULL && !weft__waitq_grantable(n))
		n = n->next;
	return n;
}

/* Removes n from q.  For a waker that skips or a waiter that leaves;
 * weft__waitq_grant and weft__waitq_wait already remove.  Thread: any,
 * holding the primitive's lock. */
void weft__waitq_remove(weft__waitq_t *q, struct weft__wait_node *n);

/* Moves n, queued on `from`, to the tail of `to` without waking its
 * task, and sets n->reparked: its waiter, parked in weft__waitq_wait on
 * `from`, returns 0 from that wait at its next wake-up and must then wait
 * for `to`'s grant itself (the Condition's notify and its Lock: Trio's
 * ParkingLot.repark).  Thread: any, holding both queues' locks. */
void weft__waitq_move(weft__waitq_t *from, weft__waitq_t *to,
	struct weft__wait_node *n);

/* Removes n from q, marks it granted and wakes its task: the wait returns
 * 0 even if a cancellation woke the task first (cancel-atomicity: the
 * waiter then got what it waited for).  The task is appended to wl if
 * the caller must make it runnable; do that with weft__waitq_flush
 * after releasing the lock.  Lock held.  Any thread. */
void weft__waitq_grant(weft__waitq_t *q, struct weft__wait_node *n,
	weft__wakelist_t *wl);

/* Makes every task of wl runnable, in grant order.  Thread: any, with
 * the primitive's lock NOT held. */
void weft__waitq_flush(weft__wakelist_t *wl);

#endif
