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
 *   5. Cycle check (docs/semantics.md rule 46).  A task inside an
 *      acquire's slow path publishes the lock it waits for in its
 *      record (`lock_wait`, with CANCELLABLE) under the lock's `spin`
 *      once it is counted in nwaiting and about to queue, and clears
 *      it under `spin` before it leaves nwaiting; a notify publishes
 *      it for the waiters it moves onto the lock (uncancellable).  A
 *      cycle check (lock_cycle_find) "freezes" a task by CASing
 *      FROZEN into a non-zero lock_wait; the task's clear spins while
 *      FROZEN is set.  So while the checker holds a task frozen:
 *      (a) the task is in the slow path of the lock it names, which is
 *      counted in that lock's nwaiting, so the lock cannot be destroyed
 *      and the checker may read its word; (b) the task runs no user
 *      code, so it can neither release a lock it holds nor end (which
 *      would break them): the owner part of every lock word naming it
 *      stays fixed.  The checker, holding its own lock L0's `spin`
 *      with WAITERS set (so L0's owner U0 is fixed), freezes U0, reads
 *      the lock L1 it waits for, then L1's owner U1, freezes U1, and
 *      re-reads L1's word: if U1 still owns it, that edge is fixed from
 *      now on (b).  And so on, until an owner is the checker itself (a
 *      cycle), or an edge is missing (no cycle).  Every edge of a found
 *      cycle is then fixed at once: each Ui is frozen in the wait for
 *      L(i+1), whose owner U(i+1) is frozen too (or is the checker, who
 *      is running this code): no release can grant Ui.  Only a
 *      cancellation can still end a cancellable Ui's wait, so a Ui
 *      whose scope is already cancelled makes the check answer "no
 *      cycle"; one requested after the check is a new event from
 *      outside the cycle.  So a reported cycle is one at the moment of
 *      the check, never an artefact of reading edges at different
 *      times (no false positive).  Misses: a freeze held by another
 *      checker for long, or a cycle of more than LOCK_CYCLE_MAX tasks,
 *      answers "no cycle"; so do two tasks that close a cycle at the
 *      same moment (each checks before the other has published), and
 *      both park: a plain deadlock, which the quiescence check (rule
 *      44, core/timer.c) reports when nothing else runs.
 *      Spin order: a lock's `spin`, then a task's freeze; a checker
 *      only ever tries a freeze (bounded) and reads lock words without
 *      their `spin`, so checkers cannot deadlock each other or the
 *      tasks they freeze.
 *
 * Rejected for 4: storing the owner's id and checking, in the acquirer,
 * whether the owner's record still has that id.  The fast acquire cannot
 * publish the id together with the word (no double-width CAS), so a
 * checker cannot tell a dead owner from one between its CAS and its id
 * store; and a waiter parked before its owner ended would still need
 * someone to wake it.
 */
#include <errno.h>

#include <stdio.h>

#include "base/alloc.h"
#include "base/diag.h"
#include "core/inspect.h"
#include "core/task.h"
#include "runtime.h"
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
	l->q = (weft__waitq_t){ .what = "lock", .kind = WEFT__WAIT_LOCK };
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

/* {============================================ cycle check (invariant 5) */

/* The longest cycle looked for: a longer chain answers "no cycle". */
#define LOCK_CYCLE_MAX 64
/* Freeze attempts before giving up (another checker holds the freeze;
 * checkers hold freezes only for a bounded walk). */
#define LOCK_FREEZE_TRIES 1024

/* A chain: task[i] holds lock[i] and waits for lock[i + 1]; the last
 * lock (lock[n]) is held by the checker. */
struct lock_cycle {
	size_t n;
	struct weft_task *task[LOCK_CYCLE_MAX];
	struct weft_lock *lock[LOCK_CYCLE_MAX + 1];
};

/* Publishes that t waits for l (invariant 5).  lock_wait is 0 here, and
 * no checker writes a 0 word.  release: pairs with the acquire of a
 * checker's freeze, so the releases of locks t made before are visible
 * to the checker's later reads of those words. */
static void lock_wait_publish(struct weft_task *t, struct weft_lock *l,
	bool cancellable)
{
	atomic_store_explicit(&t->lock_wait,
		(uintptr_t)l | (cancellable ? WEFT__LOCK_WAIT_CANCELLABLE : 0),
		memory_order_release);
}

/* Clears self's lock_wait, waiting while a checker holds it frozen.
 * acquire on the CAS: pairs with the checker's release thaw, so its
 * reads of the lock happen before our nwaiting-- (and a destroy). */
static void lock_wait_clear(struct weft_task *self)
{
	/* relaxed: a first guess for the CAS. */
	uintptr_t v = atomic_load_explicit(&self->lock_wait,
		memory_order_relaxed);
	for (;;) {
		if (v & WEFT__LOCK_WAIT_FROZEN) {
			WEFT__CPU_RELAX();
			v = atomic_load_explicit(&self->lock_wait,
				memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&self->lock_wait, &v,
			    0, memory_order_acquire, memory_order_relaxed))
			return;
	}
}

/* Freezes t if it waits for a lock: returns its lock_wait (without
 * FROZEN), or 0 when it waits for none or the freeze stayed busy (then
 * nothing is frozen).  acquire on success: pairs with the publish. */
static uintptr_t lock_freeze(struct weft_task *t)
{
	for (int i = 0; i < LOCK_FREEZE_TRIES; i++) {
		/* relaxed: a first guess for the CAS. */
		uintptr_t v = atomic_load_explicit(&t->lock_wait,
			memory_order_relaxed);
		if (v == 0)
			return 0;
		if (v & WEFT__LOCK_WAIT_FROZEN) {
			WEFT__CPU_RELAX();
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&t->lock_wait, &v,
			    v | WEFT__LOCK_WAIT_FROZEN, memory_order_acquire,
			    memory_order_relaxed))
			return v;
	}
	return 0;
}

/* Thaws the first n tasks of c.  release: pairs with the acquire of
 * lock_wait_clear (see there). */
static void lock_thaw(struct lock_cycle *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		atomic_fetch_and_explicit(&c->task[i]->lock_wait,
			~WEFT__LOCK_WAIT_FROZEN, memory_order_release);
}

/* The owner part of l's word, or NULL when free or broken.  acquire:
 * pairs with the owner's acq_rel CAS (lock_try_fast; later RMWs of the
 * WAITERS bit continue its release sequence) or a hand-off's release
 * store, so the owner's record initialisation happens before we touch
 * its lock_wait; and, with the freeze's acquire, orders a re-read after
 * the publish of a frozen owner (invariant 5 (b)). */
static struct weft_task *lock_owner(struct weft_lock *l)
{
	uintptr_t w = atomic_load_explicit(&l->word, memory_order_acquire);
	if (w == WEFT__LOCK_BROKEN)
		return NULL;
	return (struct weft_task *)(w & ~WEFT__LOCK_WAITERS);
}

/* Looks for a cycle through self, about to wait for l0 (held by owner):
 * returns true with c filled and every c->task frozen (lock_thaw them),
 * false with nothing frozen.  Thread: self, holding l0->spin with
 * WAITERS set (invariant 5). */
static bool lock_cycle_find(struct weft_lock *l0, struct weft_task *owner,
	struct weft_task *self, struct lock_cycle *c)
{
	c->lock[0] = l0;
	size_t n = 0;
	/* Fixed (WAITERS is set, we hold `spin`), but read again with
	 * acquire (lock_owner): the caller's reads were relaxed. */
	struct weft_task *u = lock_owner(l0);
	if (u != owner)
		return false;
	for (;;) {
		if (n == LOCK_CYCLE_MAX)
			break;
		for (size_t j = 0; j < n; j++)
			if (c->task[j] == u)
				goto none; /* a cycle without self */
		uintptr_t v = lock_freeze(u);
		if (v == 0)
			break;
		c->task[n++] = u;
		/* Re-read with u frozen: now fixed (invariant 5 (b)). */
		if (lock_owner(c->lock[n - 1]) != u)
			break;
		/* A cancellation already requested ends u's wait.  relaxed
		 * load of cur_scope: fixed while u is frozen in its wait
		 * (its scope lives as long); the flag's load is seq_cst. */
		if ((v & WEFT__LOCK_WAIT_CANCELLABLE) &&
			weft__scope_is_cancelled(
				atomic_load_explicit(&u->cur_scope,
					memory_order_relaxed)))
			break;
		struct weft_lock *next = (struct weft_lock *)(v &
			~(WEFT__LOCK_WAIT_CANCELLABLE |
				WEFT__LOCK_WAIT_FROZEN));
		c->lock[n] = next;
		u = lock_owner(next);
		if (u == NULL)
			break;
		if (u == self) {
			c->n = n;
			return true;
		}
	}
none:
	lock_thaw(c, n);
	return false;
}

/* Writes the cycle of c (frozen) into buf: who waits for what, held by
 * whom, and where each task is parked. */
static void lock_cycle_format(const struct lock_cycle *c,
	struct weft_task *self, char *buf, size_t size)
{
	char name[WEFT__TASK_NAME_MAX];
	size_t len = 0;
	weft__task_name_load(self, name);
	/* relaxed: our own id. */
	uint64_t id = atomic_load_explicit(&self->insp_id,
		memory_order_relaxed);
	int k = snprintf(buf, size,
		"deadlock: a cycle of locks; the acquire closing it waits "
		"forever:\n  task '%s' (#%llu) acquires lock %p",
		name, (unsigned long long)id, (void *)c->lock[0]);
	for (size_t i = 0; k >= 0 && (len += (size_t)k) < size && i < c->n;
		i++) {
		struct weft_task *t = c->task[i];
		weft__task_name_load(t, name);
		/* relaxed: t is frozen, so alive (invariant 5 (b)); the
		 * fields are only shown. */
		id = atomic_load_explicit(&t->insp_id, memory_order_relaxed);
		const char *on = atomic_load_explicit(&t->insp_wait,
			memory_order_relaxed);
		k = snprintf(buf + len, size - len,
			", held by\n  task '%s' (#%llu), parked on %s, which "
			"waits for lock %p",
			name, (unsigned long long)id, on ? on : "(parking)",
			(void *)c->lock[i + 1]);
	}
	if (k >= 0 && len < size)
		snprintf(buf + len, size - len, ", held by the first task");
}

/* }======================================================= */

/* Tries 0 -> self, and lists l on self on success (invariant 4).
 * acq_rel on success: the acquire half pairs with the release CAS or
 * store that freed the lock, so the previous critical section happens
 * before ours; the release half publishes our record (its lock_wait
 * initialisation) to a cycle check that reads our address from the
 * word with acquire (invariant 5).  On x86 it is the same locked
 * instruction.  relaxed on failure: nothing is taken (the slow path
 * re-reads the word under `spin`). */
static inline bool lock_try_fast(struct weft_lock *l, struct weft_task *self)
{
	uintptr_t expect = 0;
	if (!atomic_compare_exchange_strong_explicit(&l->word, &expect,
		    (uintptr_t)self, memory_order_acq_rel,
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
	/* Cycle check wanted (invariant 5): cleared once a cycle has been
	 * reported and the acquire waits anyway. */
	weft_deadlock_t mode = self->rt->cfg.deadlock;
	bool check = mode != WEFT_DEADLOCK_OFF;
again:
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
			 * acq_rel: as in lock_try_fast (pairs with that
			 * release CAS); relaxed on failure: we loop. */
			if (atomic_compare_exchange_weak_explicit(&l->word, &w,
				    (uintptr_t)self, memory_order_acq_rel,
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
	/* WAITERS is set: the owner is fixed while we hold `spin`.  A
	 * cancelled acquire returns at once below, so is not checked. */
	struct lock_cycle cyc;
	if (check &&
		!(cancellable &&
			weft__scope_is_cancelled(
				atomic_load_explicit(&self->cur_scope,
					memory_order_relaxed))) &&
		lock_cycle_find(l,
			(struct weft_task *)(w & ~WEFT__LOCK_WAITERS), self,
			&cyc)) {
		/* An uncancellable acquire (a Condition's re-acquire) must
		 * end holding the lock: it reports and waits. */
		bool fails = cancellable && mode == WEFT_DEADLOCK_ERROR;
		/* A failing acquire only returns the error (a caller may
		 * back off and retry, as with a checked mutex); one that
		 * waits anyway says why it will never return. */
		char msg[1024];
		if (!fails)
			lock_cycle_format(&cyc, self, msg, sizeof msg);
		lock_thaw(&cyc, cyc.n);
		/* Nothing queued by us: as a cancelled last waiter, clear
		 * WAITERS if nobody is queued (relaxed: see below). */
		if (fails && l->q.len == 0)
			atomic_fetch_and_explicit(&l->word, ~WEFT__LOCK_WAITERS,
				memory_order_relaxed);
		weft__spin_unlock(&l->spin);
		if (fails)
			return -EDEADLK;
		weft__diag("%s", msg);
		check = false;
		goto again;
	}
	struct weft__wait_node n = { 0 };
	int rc = 0;
	l->nwaiting++;
	lock_wait_publish(self, l, cancellable);
	if (cancellable)
		rc = weft__waitq_wait(&l->spin, &l->q, &n, self);
	else
		weft__waitq_wait_uncancellable(&l->spin, &l->q, &n, self);
	lock_wait_clear(self);
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
	/* Its waiter now waits for l, uncancellably (invariant 5); it
	 * clears this in weft__lock_wait_reparked. */
	lock_wait_publish(n->task, l, false);
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
		weft__task_park_commit_obj(self, what, WEFT__WAIT_LOCK, &l->q);
		weft__spin_lock(&l->spin);
	}
	lock_wait_clear(self);
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

/* {======================================================= dump */

void weft__lock_describe(const void *on, struct weft__wait_desc *d)
{
	struct weft_lock *l = WEFT__CONTAINER_OF((weft__waitq_t *)on,
		struct weft_lock, q);
	d->obj = l;
	weft__spin_lock(&l->spin);
	/* relaxed: under `spin`; a fast acquire or release may change a
	 * word without WAITERS meanwhile, and any value it had will do. */
	uintptr_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	size_t queued = l->q.len;
	/* The owner's id: a record named by the word is a live task's
	 * (invariant 4) and records are type-stable, so the load is safe
	 * even if it has changed hands since (then the id may be stale, or
	 * 0); relaxed: a value for the dump. */
	struct weft_task *owner = w == WEFT__LOCK_BROKEN
		? NULL
		: (struct weft_task *)(w & ~WEFT__LOCK_WAITERS);
	if (owner)
		d->ref_id = atomic_load_explicit(&owner->insp_id,
			memory_order_relaxed);
	weft__spin_unlock(&l->spin);
	snprintf(d->text, sizeof d->text, "%swaiters=%zu",
		w == WEFT__LOCK_BROKEN ? "broken=1 " : "", queued);
}

/* }======================================================= */
