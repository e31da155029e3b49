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

/* weft__waitq_wait_unlock past its first park: n is queued, `lock` held;
 * parks until granted or cancelled (s: self's innermost scope) and
 * returns with the lock released.  Thread: the fiber self. */
WEFT_FIBER_FN int weft__waitq_wait_unlock_slow(weft__spin_t *lock,
	weft__waitq_t *q, struct weft__wait_node *n, struct weft_task *self,
	struct weft_scope *s);

/* Appends n to the tail of q.  Lock held. */
static inline void weft__waitq_push(weft__waitq_t *q, struct weft__wait_node *n)
{
	n->next = NULL;
	n->prev = q->tail;
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->len++;
}

/* As weft__waitq_wait, but `lock` is NOT held on return (whatever the
 * result): a waiter woken by its grant returns without re-taking the lock,
 * which saves a lock round trip per hand-off (channels, ping-pong).  The
 * granter's writes to the node's data (n->data's target, fields of a
 * structure embedding n) made before weft__waitq_grant are visible to the
 * caller on return 0.  Inline as far as the first park and its grant,
 * the whole wait of a hand-off (B5); the rest is out of line.  Thread:
 * the fiber self, after weft__waitq_begin. */
static inline __attribute__((always_inline)) WEFT_FIBER_FN int
weft__waitq_wait_unlock(weft__spin_t *lock, weft__waitq_t *q,
	struct weft__wait_node *n, struct weft_task *self)
{
	/* Reachable by cancellations from now on (lock order: a primitive's
	 * lock before a scope's; no scope code takes a primitive's lock). */
	weft__task_link_root(self);
	/* relaxed: our own cur_scope (as in weft__waitq_begin). */
	struct weft_scope *s = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	n->task = self;
	/* relaxed: n is not queued yet; the lock's release publishes the
	 * store to whoever grants n. */
	atomic_store_explicit(&n->granted, false, memory_order_relaxed);
	n->reparked = false;
	weft__waitq_push(q, n);
	n->gen = weft__task_park_prepare(self, true);
	/* seq_cst load after the seq_cst prepare (waitq.c, "Lost
	 * wake-ups"). */
	if (__builtin_expect(!weft__scope_is_cancelled(s), 1)) {
		/* Read under the lock: q's primitive is ours only while we
		 * are inside the call, which a grant may end. */
		const char *what = q->what ? q->what : "wait queue";
		unsigned kind = q->kind;
		weft__spin_unlock(lock);
		weft__task_park_commit_what(self, what, kind, q);
		/* acquire: pairs with the release in weft__waitq_grant_one,
		 * the granter's last access to n, so everything it wrote for
		 * us before is visible and n is ours again. */
		if (__builtin_expect(atomic_load_explicit(&n->granted,
					     memory_order_acquire),
			    1))
			return 0;
		/* Woken by something else (a cancellation), or the grant is
		 * still being made: the lock decides. */
		weft__spin_lock(lock);
	}
	return weft__waitq_wait_unlock_slow(lock, q, n, self, s);
}

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
static inline void weft__waitq_remove(weft__waitq_t *q,
	struct weft__wait_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		q->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		q->tail = n->prev;
	n->next = n->prev = NULL;
	q->len--;
}

/* Moves n, queued on `from`, to the tail of `to` without waking its
 * task, and sets n->reparked: its waiter, parked in weft__waitq_wait on
 * `from`, returns 0 from that wait at its next wake-up and must then wait
 * for `to`'s grant itself (the Condition's notify and its Lock: Trio's
 * ParkingLot.repark).  Thread: any, holding both queues' locks. */
void weft__waitq_move(weft__waitq_t *from, weft__waitq_t *to,
	struct weft__wait_node *n);

/* Removes n from q, marks it granted and wakes its task: the wait returns
 * 0 even if a cancellation woke the task first (cancel-atomicity: the
 * waiter then got what it waited for).  Returns the task if the caller
 * must make it runnable (weft__sched_ready, after releasing the lock),
 * else NULL.  Inline: a channel's hand-off grants one waiter (B5); the
 * grants of several use weft__waitq_grant.  Lock held.  Any thread. */
static inline struct weft_task *weft__waitq_grant_one(weft__waitq_t *q,
	struct weft__wait_node *n)
{
	weft__waitq_remove(q, n);
	struct weft_task *t = n->task;
	bool ready = weft__task_wake_deferred(t, n->gen);
	/* release: the last access to n.  A waiter that sees it without the
	 * lock (weft__waitq_wait_unlock) may return and pop n's frame at
	 * once; everything written for it before this store is visible to
	 * it.  Waking first is fine: a waiter that wakes before this store
	 * takes the lock and finds `granted` set once we unlock. */
	atomic_store_explicit(&n->granted, true, memory_order_release);
	return ready ? t : NULL;
}

/* weft__waitq_grant_one, with the task to make runnable appended to wl;
 * do that with weft__waitq_flush after releasing the lock.  Lock held.
 * Any thread. */
void weft__waitq_grant(weft__waitq_t *q, struct weft__wait_node *n,
	weft__wakelist_t *wl);

/* Makes every task of wl runnable, in grant order.  Thread: any, with
 * the primitive's lock NOT held. */
void weft__waitq_flush(weft__wakelist_t *wl);

#endif
