/* Lock internals shared with condition.c (see lock.c for the design). */
#ifndef WEFT_RUNTIME_SYNC_LOCK_H
#define WEFT_RUNTIME_SYNC_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/spin.h"
#include "core/task.h"
#include "sync/waitq.h"
#include "weft/sync.h"

struct weft_task;

/* Bit 0 of `word`: tasks are queued, so the holder must release through
 * the slow path (which hands the lock over).  Task records are at least
 * 8-byte aligned, so bit 0 of an owner pointer is free. */
#define WEFT__LOCK_WAITERS ((uintptr_t)1)
/* The whole word of a broken lock: its owner ended holding it (lock.c).
 * Never an owner's address (records are 8-byte aligned), never with
 * WAITERS, and never changes again. */
#define WEFT__LOCK_BROKEN ((uintptr_t)2)

struct weft_lock {
	/* The owning task's address | WAITERS, or 0 when free.  Changes:
	 * 0 -> owner (CAS, lock-free acquire); owner -> 0 (CAS, lock-free
	 * release, fails once WAITERS is set); everything involving WAITERS
	 * only under `spin` (see lock.c). */
	_Atomic uintptr_t word;
	weft__spin_t spin; /* guards q and nwaiting */
	weft__waitq_t q;   /* tasks waiting for the hand-off */
	/* Tasks inside an acquire's slow path (queued, or granted and not
	 * yet returned): destroy refuses while it is not 0.  Under spin. */
	size_t nwaiting;
	/* Listed on the owner task while it holds the lock (weft__task_own),
	 * so that its end breaks the lock.  Owner only. */
	struct weft__owned owned;
};

/* Initialises an embedded lock (condition.c).  Thread: any, before l is
 * shared. */
void weft__lock_init(struct weft_lock *l);
/* Whether l may be freed: not held (or broken), nobody in an acquire.  Any thread;
 * nobody may start using l concurrently. */
bool weft__lock_idle(struct weft_lock *l);

/* Whether self holds l.  Thread: the fiber self (the answer is exact only
 * about the calling task; see the relaxed load). */
static inline bool weft__lock_owned_by(const struct weft_lock *l,
	const struct weft_task *self)
{
	/* relaxed: only self ever stores self into the word (directly or
	 * via a hand-off to self, which self observed under the spin lock
	 * before returning from its acquire), so self reads its own value. */
	uintptr_t w = atomic_load_explicit(&((struct weft_lock *)l)->word,
		memory_order_relaxed);
	return (w & ~WEFT__LOCK_WAITERS) == (uintptr_t)self;
}

/* Releases l, held by self (checked by the caller).  Tasks to wake are
 * made runnable before returning.  Thread: the holder. */
void weft__lock_release(struct weft_lock *l, struct weft_task *self);

/* Moves n, a waiter of the Condition queue `from`, to the tail of l's
 * queue (weft__waitq_move), counting it in nwaiting: it will be handed l
 * in FIFO order and is never passed over.  Thread: the holder of l (a
 * notifier), holding the Condition's spin lock and l->spin. */
void weft__lock_repark_locked(struct weft_lock *l, weft__waitq_t *from,
	struct weft__wait_node *n);

/* For self, whose node n weft__lock_repark_locked moved onto l's queue:
 * waits, uncancellably, until n is granted, and returns 0 with l held,
 * or -EOWNERDEAD (l not held) if l broke meanwhile.  Thread: the fiber
 * self, holding no spin lock. */
WEFT_FIBER_FN int weft__lock_wait_reparked(struct weft_lock *l,
	struct weft__wait_node *n, struct weft_task *self);

/* Acquires l for self ignoring cancellation: returns 0 with l held, or
 * -EOWNERDEAD (nothing acquired) when l is or becomes broken.
 * Thread: the fiber self (not holding l). */
WEFT_FIBER_FN int weft__lock_acquire_uncancellable(struct weft_lock *l,
	struct weft_task *self);

#endif
