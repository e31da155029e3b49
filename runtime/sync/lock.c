/* Lock: a task-owned mutex with FIFO hand-off.
 *
 * Problem: mutual exclusion between tasks on any workers, where a waiter
 * parks its fiber (never its thread), no waiter starves, a cancelled
 * acquire took nothing, and the uncontended acquire/release costs about
 * what a pthread mutex does: one atomic read-modify-write each, no system
 * call, no spin lock.
 *
 * Approach: one word holds the owner (the task's address) and a WAITERS
 * bit.  A free lock is 0; a broken one (its owner ended holding it) is
 * BROKEN (invariant 4).
 *   - Fast acquire: CAS 0 -> self.  It can only succeed when nobody is
 *     queued, because a queued lock is never 0 (below), so an arriving
 *     task cannot barge past a waiter.
 *   - Fast release: CAS self -> 0.  It fails once WAITERS is set; the
 *     holder then takes the slow path.
 *   - Slow acquire, under `spin`: re-read the word; if it is 0, take it;
 *     else set WAITERS (CAS, racing only with the holder's fast release:
 *     if that wins the word is 0 and we take it) and queue on the wait
 *     queue (waitq.c), counted in nwaiting.
 *   - Slow release, under `spin`: grant the oldest waiter that is not
 *     cancelled (weft__waitq_first, weft__waitq_grant) and store its
 *     address as the new owner, with WAITERS still set if others remain
 *     queued; or store 0 if none can be granted.  The lock never becomes
 *     free while a waiter that is not cancelled is queued: ownership
 *     moves straight from the releaser to it (FIFO hand-off).
 *   - A waiter that is cancelled leaves the queue under `spin` (the
 *     waitq protocol: the grant decides, so a cancelled waiter was never
 *     made owner); if it was the last, it clears WAITERS so that the
 *     holder's release is fast again.
 * While WAITERS is set the word changes only under `spin` (both fast CASes
 * fail on it), which is what makes the plain stores of the slow release
 * and the bit clearing safe.
 *
 * Rejected: letting the lock fall free and waking a waiter to compete for
 * it (a barging, "eventually fair" mutex as in Go before starvation mode
 * or pthreads): cheaper under contention, but a task that releases and
 * re-acquires in a loop can starve the waiters indefinitely, and a Lock
 * promises FIFO order.  The price of hand-off is a lock convoy: under
 * contention every acquire after the first parks.
 *
 * Lifetime: after its fast release CAS, or after unlocking `spin`, the
 * releaser never touches the lock again; a woken waiter re-takes `spin`
 * before returning, so destroy (which takes `spin`) sees it in nwaiting
 * until it is done with the lock.
 *
 * A waiter whose cancellation was requested before a release is passed
 * over (weft__waitq_first): the lock goes to the next waiter, or falls
 * free when only cancelled ones are queued; they leave on their own.
 * A Condition's notify queues waiters too (weft__lock_repark_locked, by
 * the holder, under `spin`): those wait uncancellably and are never
 * passed over (their nodes are marked `reparked`, condition.c).
 *
 * Invariants
 *   1. word == 0 implies every queued waiter is cancelled (and leaving).
 *   2. WAITERS set implies the owner part is not 0.
 *   3. Only the owner can release (the public calls check ownership), and
 *      the owner is the task, not the thread: fibers migrate.
 *   4. The word names a task only while that task lives: the owner lists
 *      `owned` on itself with every acquire (weft__task_own, after the
 *      fast CAS, or when it returns from a granted wait) and unlists it
 *      before every release, and a task that ends with it listed runs
 *      lock_break at its end (weft__task_finish), before its record can
 *      be recycled.  lock_break stores BROKEN, for good, and grants
 *      every queued node with LOCK_NODE_BROKEN, so its waiters return
 *      -EOWNERDEAD instead of waiting for a release that cannot come.
 *      So a record's later task never finds its address in the word
 *      (held, release), and no check of the owner's liveness is needed
 *      on any path: the cost is two pointer updates per acquire and per
 *      release, on the owner's own record and the lock.
 *
 * Rejected for 4: storing the owner's id and checking, in the acquirer,
 * whether the owner's record still has that id.  The fast acquire cannot
 * publish the id together with the word (no double-width CAS), so a
 * checker cannot tell a dead owner from one between its CAS and its id
 * store; and a waiter parked before its owner ended would still need
 * someone to wake it.
 */
#include <errno.h>

#include "base/alloc.h"
#include "core/task.h"
#include "sync/lock.h"

/* {======================================================= internals */

/* aux of a node granted by lock_break instead of a release: the lock is
 * broken, nothing was acquired. */
#define LOCK_NODE_BROKEN ((uintptr_t)1)

static void lock_break(struct weft__owned *o, struct weft_task *owner);

void weft__lock_init(struct weft_lock *l)
{
	atomic_init(&l->word, 0);
	weft__spin_init(&l->spin);
	l->q = (weft__waitq_t){ .what = "lock" };
	l->nwaiting = 0;
	l->owned = (struct weft__owned){ .ended = lock_break };
}

/* The owner `owner` ended holding l (weft__task_finish, as the owner):
 * the lock breaks (invariant 4).  Every queued waiter is granted with
 * LOCK_NODE_BROKEN, cancelled or not, so none waits for a release that
 * cannot come; later acquires find the word BROKEN. */
static void lock_break(struct weft__owned *o, struct weft_task *owner)
{
	struct weft_lock *l = WEFT__CONTAINER_OF(o, struct weft_lock, owned);
	(void)owner;
	weft__wakelist_t wl = { 0 };
	weft__spin_lock(&l->spin);
	/* A plain store: the word holds our address (| WAITERS), and then
	 * only we (releasing, which we no longer do) and code under `spin`
	 * change it.  release: our accesses to l happen before those of a
	 * destroyer whose weft__lock_idle sees BROKEN (acquire). */
	atomic_store_explicit(&l->word, WEFT__LOCK_BROKEN,
		memory_order_release);
	struct weft__wait_node *n;
	while ((n = l->q.head) != NULL) {
		n->aux = LOCK_NODE_BROKEN;
		weft__waitq_grant(&l->q, n, &wl);
	}
	weft__spin_unlock(&l->spin);
	weft__waitq_flush(&wl);
}

bool weft__lock_idle(struct weft_lock *l)
{
	weft__spin_lock(&l->spin);
	/* acquire: pairs with the last holder's release CAS/store, so its
	 * accesses to the lock happen before the caller frees it. */
	uintptr_t w = atomic_load_explicit(&l->word, memory_order_acquire);
	bool idle = (w == 0 || w == WEFT__LOCK_BROKEN) && l->nwaiting == 0;
	weft__spin_unlock(&l->spin);
	return idle;
}

/* Tries 0 -> self, and lists l on self on success (invariant 4).
 * acquire on success: pairs with the release CAS or store that freed the
 * lock, so the previous critical section happens before ours.  relaxed
 * on failure: nothing is taken (the slow path re-reads the word under
 * `spin`). */
static inline bool lock_try_fast(struct weft_lock *l, struct weft_task *self)
{
	uintptr_t expect = 0;
	if (!atomic_compare_exchange_strong_explicit(&l->word, &expect,
		    (uintptr_t)self, memory_order_acquire,
		    memory_order_relaxed))
		return false;
	weft__task_own(self, &l->owned);
	return true;
}

/* The contended acquire (see the essay).  Returns 0 with l held, or
 * -ECANCELED (cancellable only) or -EOWNERDEAD (broken) with nothing
 * acquired. */
static WEFT_FIBER_FN int lock_acquire_slow(struct weft_lock *l,
	struct weft_task *self, bool cancellable)
{
	weft__spin_lock(&l->spin);
	/* relaxed: a first guess for the CASes below, which re-read the word
	 * when it changed; what we acquire comes with them or with `spin`. */
	uintptr_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	for (;;) {
		if (w == WEFT__LOCK_BROKEN) {
			weft__spin_unlock(&l->spin);
			return -EOWNERDEAD;
		}
		if (w == 0) {
			/* Freed by a fast release since our fast attempt.
			 * acquire: as in lock_try_fast (pairs with that
			 * release CAS); relaxed on failure: we loop. */
			if (atomic_compare_exchange_weak_explicit(&l->word, &w,
				    (uintptr_t)self, memory_order_acquire,
				    memory_order_relaxed)) {
				weft__spin_unlock(&l->spin);
				weft__task_own(self, &l->owned);
				return 0;
			}
			continue;
		}
		if (w & WEFT__LOCK_WAITERS)
			break;
		/* relaxed: the bit publishes nothing; it only diverts the
		 * holder's release into the slow path, which takes `spin`
		 * and so sees our queued node. */
		if (atomic_compare_exchange_weak_explicit(&l->word, &w,
			    w | WEFT__LOCK_WAITERS, memory_order_relaxed,
			    memory_order_relaxed))
			break;
	}
	struct weft__wait_node n = { 0 };
	int rc = 0;
	l->nwaiting++;
	if (cancellable)
		rc = weft__waitq_wait(&l->spin, &l->q, &n, self);
	else
		weft__waitq_wait_uncancellable(&l->spin, &l->q, &n, self);
	l->nwaiting--;
	/* Granted: the releaser already stored self as the owner (under
	 * `spin`, which we hold again), unless the lock broke (lock_break
	 * marked the node).  Cancelled as the last waiter: clear WAITERS;
	 * the word cannot change under us while it is set.  relaxed: as when
	 * setting it, the bit publishes nothing; the holder's release CAS
	 * reads the newest word whatever the order (one atomic). */
	if (rc == 0 && n.aux == LOCK_NODE_BROKEN)
		rc = -EOWNERDEAD;
	else if (rc < 0 && l->q.len == 0)
		atomic_fetch_and_explicit(&l->word, ~WEFT__LOCK_WAITERS,
			memory_order_relaxed);
	weft__spin_unlock(&l->spin);
	if (rc == 0)
		weft__task_own(self, &l->owned);
	return rc;
}

void weft__lock_release(struct weft_lock *l, struct weft_task *self)
{
	/* Before the lock can change hands: the node is the owner's. */
	weft__task_disown(self, &l->owned);
	uintptr_t expect = (uintptr_t)self;
	/* release: publishes the critical section to the next fast
	 * acquirer's acquire CAS.  Fails when WAITERS is set. */
	if (atomic_compare_exchange_strong_explicit(&l->word, &expect, 0,
		    memory_order_release, memory_order_relaxed))
		return;
	weft__wakelist_t wl = { 0 };
	weft__spin_lock(&l->spin);
	struct weft__wait_node *n = weft__waitq_first(&l->q);
	uintptr_t next = 0;
	if (n) {
		next = (uintptr_t)n->task;
		weft__waitq_grant(&l->q, n, &wl);
		if (l->q.len)
			next |= WEFT__LOCK_WAITERS;
	}
	/* release: for a fast acquirer when next is 0; the new owner of a
	 * hand-off synchronises through `spin` instead. */
	atomic_store_explicit(&l->word, next, memory_order_release);
	weft__spin_unlock(&l->spin);
	weft__waitq_flush(&wl);
}

void weft__lock_repark_locked(struct weft_lock *l, weft__waitq_t *from,
	struct weft__wait_node *n)
{
	weft__waitq_move(from, &l->q, n);
	l->nwaiting++;
	/* relaxed: as in lock_acquire_slow, the bit publishes nothing; it
	 * diverts the holder's (our caller's) release into the slow path,
	 * which takes `spin` and so sees the moved node.  The owner part is
	 * not 0: the caller holds l (invariant 2). */
	atomic_fetch_or_explicit(&l->word, WEFT__LOCK_WAITERS,
		memory_order_relaxed);
}

int weft__lock_wait_reparked(struct weft_lock *l, struct weft__wait_node *n,
	struct weft_task *self)
{
	weft__spin_lock(&l->spin);
	/* seq_cst reads of `granted` under `spin`, which the releaser held
	 * when it stored it.  The park the node was moved with may still
	 * end first: a cancellation wakes it (it was cancellable), and
	 * then we park again here, uncancellably, with a generation the
	 * releaser reads under `spin`. */
	while (!n->granted) {
		n->gen = weft__task_park_prepare(self, false);
		const char *what = l->q.what;
		weft__spin_unlock(&l->spin);
		weft__task_park_commit_on(self, what);
		weft__spin_lock(&l->spin);
	}
	l->nwaiting--;
	/* aux: written by lock_break before it granted n, under `spin`. */
	bool broken = n->aux == LOCK_NODE_BROKEN;
	weft__spin_unlock(&l->spin);
	if (broken)
		return -EOWNERDEAD;
	weft__task_own(self, &l->owned);
	return 0;
}

int weft__lock_acquire_uncancellable(struct weft_lock *l,
	struct weft_task *self)
{
	if (lock_try_fast(l, self))
		return 0;
	return lock_acquire_slow(l, self, false);
}

/* }======================================================= */

/* {======================================================= public API */

int weft_lock_create(weft_lock_t **out)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_lock *l = weft__alloc(sizeof *l);
	if (l == NULL)
		return -ENOMEM;
	weft__lock_init(l);
	*out = l;
	return 0;
}

int weft_lock_destroy(weft_lock_t *l)
{
	if (l == NULL)
		return -EINVAL;
	if (!weft__lock_idle(l))
		return -EBUSY;
	weft__free(l);
	return 0;
}

int weft_lock_acquire(weft_lock_t *l)
{
	if (l == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (self == NULL)
		return WEFT_ENOTFIBER;
	/* Misuse before cancellation: a cancelled double acquire is still a
	 * bug worth reporting. */
	if (weft__lock_owned_by(l, self))
		return WEFT_EMISUSE;
	if (rc < 0)
		return rc;
	if (WEFT__LIKELY(lock_try_fast(l, self)))
		return 0;
	return lock_acquire_slow(l, self, true);
}

int weft_lock_try_acquire(weft_lock_t *l)
{
	if (l == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (weft__lock_owned_by(l, self))
		return WEFT_EMISUSE;
	if (lock_try_fast(l, self))
		return 0;
	/* relaxed: BROKEN never changes again; a stale other value only
	 * says "held" a moment longer. */
	return atomic_load_explicit(&l->word, memory_order_relaxed) ==
			WEFT__LOCK_BROKEN
		? -EOWNERDEAD
		: -EAGAIN;
}

int weft_lock_release(weft_lock_t *l)
{
	if (l == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (!weft__lock_owned_by(l, self))
		return WEFT_EMISUSE;
	weft__lock_release(l, self);
	return 0;
}

int weft_lock_locked(const weft_lock_t *l)
{
	if (l == NULL)
		return 0;
	/* relaxed: a snapshot; it orders nothing. */
	return atomic_load_explicit(&((struct weft_lock *)l)->word,
		       memory_order_relaxed) != 0;
}

int weft_lock_held(const weft_lock_t *l)
{
	if (l == NULL)
		return 0;
	struct weft_task *self = weft__task_current();
	return self != NULL && weft__lock_owned_by(l, self);
}

size_t weft_lock_waiting(const weft_lock_t *l)
{
	if (l == NULL)
		return 0;
	struct weft_lock *m = (struct weft_lock *)l;
	weft__spin_lock(&m->spin);
	size_t n = m->q.len;
	weft__spin_unlock(&m->spin);
	return n;
}

/* }======================================================= */
