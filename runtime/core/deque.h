/* The per-worker work-stealing deque (Chase-Lev, with the C11 orderings of
 * Le, Pop, Cohen and Zappa Nardelli, PPoPP 2013).  One owner thread pushes
 * and pops at the bottom (LIFO); any thread may steal from the top (FIFO,
 * oldest first).  The array doubles when full.  The design essay, the
 * memory-ordering argument and the invariants are at the top of deque.c.
 *
 * Items are non-NULL `void *`; the deque never dereferences them.
 *
 * The struct is defined here so that a worker can embed it; its fields are
 * private to deque.c.  It is padded rather than over-aligned, so it may be
 * embedded in memory that weft__alloc returns (16-byte aligned). */
#ifndef WEFT_RUNTIME_CORE_DEQUE_H
#define WEFT_RUNTIME_CORE_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

/* A power-of-two circular array of slots; private to deque.c but for
 * the inline push and pop below. */
struct weft__deque_array {
	/* capacity - 1; capacity is a power of two.  Immutable once the array
	 * is published. */
	int64_t mask;
	/* Next array on the deque's retired list.  Owner only. */
	struct weft__deque_array *retired_next;
	/* Relaxed atomics: the owner writes a slot while thieves may read
	 * other slots of the same array, and the happens-before edges that
	 * order slot accesses come from bottom, top and the array pointer
	 * (see the essay).  Atomic slots make that visible to TSan. */
	_Atomic(void *) slot[];
};

typedef struct weft__deque {
	/* Keeps the owner's neighbouring fields in the embedding struct off
	 * the line that thieves write. */
	char pad_lead[WEFT__FALSE_SHARING];
	/* Index of the oldest item.  Only ever increases, and only by a CAS:
	 * thieves in weft__deque_steal, the owner in weft__deque_pop when it
	 * takes the last item.  Read by everyone. */
	_Atomic int64_t top;
	char pad_top[WEFT__FALSE_SHARING - sizeof(_Atomic int64_t)];
	/* One past the newest item.  Written by the owner only (push, pop);
	 * read by thieves. */
	_Atomic int64_t bottom;
	/* The current array.  Written by the owner only (on growth); read by
	 * thieves, who may keep using an older array for one steal. */
	_Atomic(struct weft__deque_array *) array;
	/* Arrays replaced by growth, linked through their headers, freed by
	 * weft__deque_fini.  Owner only. */
	struct weft__deque_array *retired;
	char pad_tail[WEFT__FALSE_SHARING - 2 * sizeof(_Atomic int64_t) -
		sizeof(struct weft__deque_array *)];
} weft__deque_t;

/* Initialises *d empty, with room for 2^log2_capacity items before the first
 * growth.  Returns 0, -EINVAL if log2_capacity < 2 or > 30, or -ENOMEM.  On
 * failure *d holds nothing that needs weft__deque_fini.
 * Thread: any, before *d is shared with other threads. */
int weft__deque_init(weft__deque_t *d, unsigned log2_capacity);

/* Frees the current array and every retired one.  Items still in the deque
 * are dropped without being looked at: emptying it first is the caller's
 * business.  No thief may be inside, or later enter, weft__deque_steal on *d.
 * Thread: owner only, after every thief has stopped using *d. */
void weft__deque_fini(weft__deque_t *d);

/* Pushes item (non-NULL) at the bottom, doubling the array when it is full.
 * Returns 0, or -ENOMEM if growth failed; then the item was not pushed and
 * the deque is unchanged.
 * Thread: owner only. */
static inline int weft__deque_push(weft__deque_t *d, void *item);

/* Removes and returns the newest item (LIFO), or NULL when the deque is
 * empty or a thief won the race for its last item.
 * Thread: owner only. */
static inline void *weft__deque_pop(weft__deque_t *d);

/* Takes the oldest item (FIFO) into *out.  Returns 0 when it got one,
 * -EAGAIN when it lost a race with another thief or the owner (the deque may
 * still hold items: retry elsewhere or later), or -ENOENT when the deque
 * looked empty.  *out is written only on success.  Never allocates.
 * Thread: any. */
int weft__deque_steal(weft__deque_t *d, void **out);

/* A racy hint of the number of items: exact only when no other thread is
 * pushing, popping or stealing.  Never negative.  Inline: a spawn asks it
 * (B1), and a pick whose run-next streak is at its cap (B5).
 * Thread: any. */
static inline size_t weft__deque_size_approx(const weft__deque_t *d)
{
	/* Relaxed both: a hint; the two loads are not a snapshot. */
	int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
	int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
	return b > t ? (size_t)(b - t) : 0;
}

/* The index the next weft__deque_push will give its item (indices only
 * grow; a pop followed by a push reuses the popped index).  For a worker
 * that must know later whether that item is still queued
 * (weft__deque_passed).  Inline: the join's inline pops ask it (B1).
 * Thread: owner only. */
static inline int64_t weft__deque_next_index(const weft__deque_t *d)
{
	/* relaxed: only the owner writes bottom, and the owner reads it. */
	return atomic_load_explicit(&d->bottom, memory_order_relaxed);
}

/* Whether every item pushed at an index <= idx has left the deque from its
 * top (stolen, or taken by the owner's last-item pop): true once the
 * oldest item still queued, if any, has a greater index.  Items the owner
 * popped from the bottom are not counted: a popped item pushed back gets
 * its old index again (or, when it was the last one, the next index).
 * Inline: a pick after a yield asks it (B6).  Thread: owner only (the
 * answer may go from false to true under it). */
static inline bool weft__deque_passed(const weft__deque_t *d, int64_t idx)
{
	/* relaxed: a hint for the owner's scheduling order (sched.c); top
	 * only grows, so a stale value only answers false a little longer,
	 * and no data is read through it. */
	return atomic_load_explicit(&d->top, memory_order_relaxed) > idx;
}

/* The slow parts of push and pop, out of line (deque.c). */
int weft__deque_push_grow(weft__deque_t *d, void *item, int64_t b, int64_t t,
	struct weft__deque_array *a);
void *weft__deque_pop_last(weft__deque_t *d, int64_t t, int64_t b, void *item);

/* Inline: every spawn pushes and every inline child of a join pops (B1:
 * the call, its register saves and its return were half of a push). */
static inline int weft__deque_push(weft__deque_t *d, void *item)
{
	/* Relaxed: bottom and array are written by this thread only. */
	int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
	/* Acquire: pairs with the CAS (seq_cst, so release) on top in
	 * weft__deque_steal, so a thief's read of a slot happens before the
	 * owner reuses that slot below (deque.c, invariant 4). */
	int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
	/* Relaxed: as bottom above. */
	struct weft__deque_array *a = atomic_load_explicit(&d->array,
		memory_order_relaxed);
	if (WEFT__UNLIKELY(b - t > a->mask))
		return weft__deque_push_grow(d, item, b, t, a);
	/* Relaxed: published by the release store of bottom just below. */
	atomic_store_explicit(&a->slot[b & a->mask], item,
		memory_order_relaxed);
	/* Release: publishes the slot (and whatever the caller wrote into
	 * the item before pushing it); pairs with the acquire load of bottom
	 * in weft__deque_steal. */
	atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
	return 0;
}

/* The StoreLoad fence of pop.  Under TSan the same hardware fence as
 * inline assembly: gcc rejects atomic_thread_fence with -Wtsan where it
 * is inlined into other files, and TSan does not model fences anyway
 * (deque.c's essay), so TSan sees the same as before either way. */
#if defined(__SANITIZE_THREAD__) && defined(__x86_64__)
#define WEFT__DEQUE_FENCE() __asm__ volatile("mfence" ::: "memory")
#elif defined(__SANITIZE_THREAD__) && defined(__aarch64__)
#define WEFT__DEQUE_FENCE() __asm__ volatile("dmb ish" ::: "memory")
#else
#define WEFT__DEQUE_FENCE() atomic_thread_fence(memory_order_seq_cst)
#endif

static inline void *weft__deque_pop(weft__deque_t *d)
{
	/* Relaxed: bottom and array are written by this thread only. */
	int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
	struct weft__deque_array *a = atomic_load_explicit(&d->array,
		memory_order_relaxed);
	/* Relaxed store, made visible before the load of top by the fence:
	 * reserves index b against thieves. */
	atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
	/* seq_cst fence (StoreLoad): orders the store of bottom above before
	 * the load of top below; pairs with the seq_cst fence in
	 * weft__deque_steal between its load of top and its load of bottom
	 * (the Dekker pattern in deque.c's essay).  `lock or` on x86_64. */
	WEFT__DEQUE_FENCE();
	/* Relaxed: ordered by the fence above. */
	int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
	if (t > b) {
		/* Empty.  Relaxed: restores bottom == top; only this thread
		 * writes bottom, and a thief reading the lowered value in
		 * between just sees an empty deque. */
		atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
		return NULL;
	}
	/* Relaxed: this thread wrote the slot. */
	void *item = atomic_load_explicit(&a->slot[b & a->mask],
		memory_order_relaxed);
	/* More than one item: no thief can reach index b (deque.c,
	 * invariant 5). */
	if (WEFT__LIKELY(t < b))
		return item;
	return weft__deque_pop_last(d, t, b, item);
}

#endif
