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

/* Private to deque.c: a power-of-two circular array of slots. */
struct weft__deque_array;

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
int weft__deque_push(weft__deque_t *d, void *item);

/* Removes and returns the newest item (LIFO), or NULL when the deque is
 * empty or a thief won the race for its last item.
 * Thread: owner only. */
void *weft__deque_pop(weft__deque_t *d);

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

#endif
