/* The work-stealing deque: each worker's queue of ready tasks.  This file
 * owns the deque's arrays (current and retired) and the protocol between the
 * owner worker and the thieves.  It never looks inside an item.
 *
 * Design essay
 * ============
 *
 * The problem.  A fork-join runtime spawns most tasks from running tasks,
 * on the same worker, in bursts whose size nobody bounds.  The worker that
 * spawned a task should run the newest one first (LIFO): that is
 * depth-first execution, which keeps the working set hot and the number of
 * live tasks proportional to the depth of the task tree instead of its
 * width (breadth-first runtimes need gigabytes for skynet's million tasks,
 * B2).
 * An idle worker should take the oldest task of a busy one (FIFO): old
 * tasks sit near the root of the tree and carry the most work, so one steal
 * buys a long run.  So each worker needs a double-ended queue where:
 *   - the owner pushes and pops at the bottom, at a cost of a few
 *     nanoseconds and without a lock (this is the T_1 path: the work-first
 *     principle puts overhead on steals, never on spawn and return);
 *   - any other thread may steal from the top, concurrently with the owner
 *     and with other thieves;
 *   - every pushed item comes out exactly once, through pop or through
 *     steal;
 *   - the capacity grows when a burst overflows it.
 *
 * The approach.  Chase and Lev's deque (SPAA 2005), with the C11 memory
 * orderings that Le, Pop, Cohen and Zappa Nardelli proved correct for weak
 * memory models (PPoPP 2013).  Two signed 64-bit indices, top and bottom,
 * address a power-of-two circular array: the items are at indices
 * [top, bottom), index i in slot i & mask.  The owner alone writes bottom;
 * top only grows, and only by a compare-and-swap.
 *   - push writes the slot at bottom, then publishes it with a release
 *     store of bottom + 1.  No read-modify-write, no fence.
 *   - steal reads top, then bottom; if top < bottom it reads the slot at
 *     top and claims it by CAS-ing top to top + 1.  Losing the CAS means
 *     another thief, or the owner, took that item: -EAGAIN.
 *   - pop first reserves the newest item by storing bottom - 1, then reads
 *     top.  If more than one item remains no thief can reach the reserved
 *     one, and pop takes it with no read-modify-write at all.  If exactly
 *     one remains, the owner and the thieves race for it by CAS on top, like
 *     thieves among themselves.
 * The one delicate spot is pop's store of bottom followed by its load of
 * top, against steal's load of top followed by its load of bottom: a
 * Dekker-style pattern.  Each side needs a StoreLoad (seq_cst) fence
 * between its two accesses.  With both fences, the fences are totally
 * ordered, and whichever comes second sees the other side's first access:
 * either the thief sees the lowered bottom (and finds the deque empty, or
 * the CAS decides), or the owner sees the thief's top (and goes to the CAS
 * for the last item).  Without the fence in pop, x86 may let pop's load of
 * top pass its store of bottom, and the owner and a thief both take the
 * last item.
 *
 * Why C11 <stdatomic.h> and not ck_pr.  Two reasons:
 *   - ThreadSanitizer cannot see ck_pr: its loads, stores and RMWs are
 *     inline asm, so TSan reports every slot and index access as a data
 *     race, or misses real ones.  C11 atomics are instrumented, so the TSan
 *     build checks the happens-before edges this file relies on.
 *   - The StoreLoad fence.  On x86_64, gcc 12 compiles
 *     atomic_thread_fence(memory_order_seq_cst) to `lock orq $0,(%rsp)`,
 *     measured at about 5.9 ns on weft's x86_64 benchmark machines;
 *     ck_pr_fence_store_load and ck_pr_fence_memory emit `mfence`, about
 *     23.7 ns, four times as much.  Pop pays this fence on every call, so
 *     it dominates the owner's cost.  (A note for tuning: gcc's fence
 *     targets (%rsp), which in a leaf function holds the return address,
 *     and the `ret` right after appears to wait for the locked operation;
 *     an asm `lock orq $0,-8(%rsp)` measured about 8 ns less per pop.  Not
 *     done: it would be x86-only inline asm for one instruction.)
 *   Every other ordering below is free on x86 (plain mov); they matter on
 *   weak machines such as aarch64 and to the compiler.  The fence in
 *   steal orders two loads, which x86 keeps in order anyway, but C11
 *   requires it and steals are the rare path, so it stays.
 * TSan models acquire and release on atomic objects, but not fences: its
 * runtime executes a hardware fence and records no synchronisation.  So
 * every happens-before edge that non-atomic data depends on comes from a
 * release/acquire pair on an atomic object, never from a fence: the item's
 * contents travel with bottom (push -> steal), a new array's contents with
 * the array pointer (growth -> steal), and a slot's reuse waits for a
 * thief's read through top (steal's CAS -> push).  The two seq_cst fences
 * only decide which of two atomic outcomes happens (who gets the last
 * item); TSan does not judge that, and the validator in tests/test_deque.c
 * checks it by counting every item.  (This is also why push ends with a
 * release store of bottom where the paper has a release fence and a
 * relaxed store: same code on x86, but TSan sees the store.)
 *
 * Growth and reclamation.  When push finds the array full, the owner
 * allocates one twice as large, copies [top, bottom) into it and publishes
 * it.  The old array cannot be freed then: a thief may have loaded the old
 * pointer and be about to read a slot from it.  Its read is harmless (the
 * owner never writes an array again once it is replaced, so it reads the
 * same item as the new array holds, and the CAS on top still decides who
 * owns it), but the memory must stay mapped.  weft keeps every replaced
 * array on a list owned by the deque and frees them all in
 * weft__deque_fini.  The cost is bounded: capacities double, so the
 * retired arrays together hold fewer slots than the current one, and the
 * deque uses less than twice the memory of its largest array.  Arrays never
 * shrink, which suits a worker's deque: its high-water mark is reached
 * again by the next burst of the same program.
 * Safe memory reclamation (ck_epoch, hazard pointers) was rejected.  It
 * would free old arrays early, but every steal would have to enter and
 * leave an epoch section (or publish a hazard pointer, which itself needs a
 * StoreLoad fence on the thief), every thread that steals would need a
 * registered record, and someone would have to poll for grace periods.
 * That puts work on every steal and a shared domain across workers in
 * exchange for memory that is at most the size of the live array.
 *
 * Rejected approaches.
 *   - ck_ring in SPMC mode (Concurrency Kit has no work-stealing
 *     deque).  It is a FIFO for the owner too: the owner would run its
 *     oldest task first, which is breadth-first execution and its memory
 *     blow-up.  It is also fixed-size: when it is full the owner must stop
 *     and drain or spill it, and its usable capacity is size - 1.
 *   - A mutex around a plain deque.  Every push and pop would take the
 *     lock (two atomic RMWs instead of zero or one fence), the lock's cache
 *     line would bounce between the owner and each thief, and a thief
 *     preempted while holding it, which is common on a 2-vCPU machine with
 *     more threads than cores, stalls the owner for a scheduler slice.
 *   - The THE protocol (Cilk-5).  Its owner fast path is the same as here
 *     (lower the tail, fence, compare with the head), but thieves always
 *     take a lock, and the owner takes it too when it may conflict over
 *     the last item.  Thieves are serialised, and the owner can block
 *     behind a preempted thief.  Chase-Lev resolves the same conflict with
 *     one CAS and no lock, so nobody ever waits for a descheduled thread.
 *   - A fixed ring with overflow to a global queue (Go, Tokio).  It avoids
 *     reclamation entirely, but spawn bursts beyond the ring's size then go
 *     through a shared, locked queue, and the spilled tasks lose their LIFO
 *     position.
 *
 * Invariants.
 *   1. bottom is written by the owner only.  top is written only by a
 *      successful CAS from t to t + 1 (by a thief, or by the owner for the
 *      last item), so it never decreases.
 *   2. Outside weft__deque_pop, top <= bottom, and the items are exactly
 *      indices [top, bottom) of the current array, index i in slot
 *      i & mask.  Inside pop, bottom may briefly be top - 1.
 *   3. Indices are signed 64-bit: pop on an empty deque computes
 *      bottom - 1, which may be -1.  At one push per nanosecond they would
 *      take 292 years to overflow.
 *   4. A slot is written only by push, at index bottom, and only when
 *      bottom - top < capacity for a top read with acquire.  So the slot
 *      for index bottom - capacity has left the deque, and the thief that
 *      claimed it has finished reading it (its CAS happened before the
 *      owner's acquire load of top).  A thief that loses its CAS may read
 *      either item; it discards what it read.
 *   5. Each item leaves the deque exactly once: by the one successful CAS
 *      of top from its index, or by a pop that saw top < its index after
 *      the fence.  No thief can win the CAS for that index then: a thief
 *      whose fence comes after the owner's sees the lowered bottom, and
 *      one whose fence comes before read a top no greater than the one
 *      the owner saw.
 *   6. An array is never written after it is replaced, and stays
 *      allocated until weft__deque_fini.  It is published with a release
 *      store after its slots are filled.  The retired arrays together have
 *      fewer slots than the current array.
 *   7. weft__deque_push either succeeds or changes nothing: a failed
 *      growth allocation leaves top, bottom, the array and the retired list
 *      as they were.
 *   8. The steal path never allocates and never frees. */
#include "core/deque.h"

#include <errno.h>

#include "base/alloc.h"

/* Growth stops (push returns -ENOMEM) before an array of more than 2^40
 * items; the allocation would fail long before on any real machine. */
#define DEQUE_LOG2_MAX 40

/* struct weft__deque_array is in deque.h (push and pop are inline). */

/* Allocates a zeroed array of 2^log2 slots, or returns NULL.  Zeroed
 * because a thief holding a stale top may read a slot outside
 * [top, bottom) of a fresh array just before its CAS fails; it discards
 * the value, and zeroing makes the read well-defined.
 * Thread: owner only (or init). */
static struct weft__deque_array *deque_array_new(unsigned log2)
{
	if (log2 > DEQUE_LOG2_MAX)
		return NULL;
	size_t capacity = (size_t)1 << log2;
	struct weft__deque_array *a = weft__calloc(1,
		sizeof *a + capacity * sizeof a->slot[0]);
	if (a == NULL)
		return NULL;
	a->mask = (int64_t)capacity - 1;
	a->retired_next = NULL;
	return a;
}

int weft__deque_init(weft__deque_t *d, unsigned log2_capacity)
{
	if (log2_capacity < 2 || log2_capacity > 30)
		return -EINVAL;
	struct weft__deque_array *a = deque_array_new(log2_capacity);
	if (a == NULL)
		return -ENOMEM;
	/* Plain initialisation: *d is not shared yet.  Handing *d to other
	 * threads (thread creation, or a release store by the runtime) is the
	 * happens-before edge that publishes these values. */
	atomic_init(&d->top, 0);
	atomic_init(&d->bottom, 0);
	atomic_init(&d->array, a);
	d->retired = NULL;
	return 0;
}

void weft__deque_fini(weft__deque_t *d)
{
	/* Relaxed: the caller guarantees no thief is left (invariant 6 ends
	 * here), and the owner reads its own last store. */
	weft__free(atomic_load_explicit(&d->array, memory_order_relaxed));
	atomic_store_explicit(&d->array, NULL, memory_order_relaxed);
	struct weft__deque_array *r = d->retired;
	while (r != NULL) {
		struct weft__deque_array *next = r->retired_next;
		weft__free(r);
		r = next;
	}
	d->retired = NULL;
}

/* Replaces the full array old by one twice as large holding the same items
 * [t, b), and retires old.  Returns the new array, or NULL (nothing
 * changed) if the allocation failed.  Thieves may keep stealing from old
 * meanwhile; they move top past some of [t, b), and the copies of those
 * items in the new array are simply never read (invariant 2).
 * Thread: owner only. */
static struct weft__deque_array *deque_grow(weft__deque_t *d,
	struct weft__deque_array *old, int64_t t, int64_t b)
{
	unsigned long long capacity = (unsigned long long)old->mask + 1;
	unsigned log2 = (unsigned)__builtin_ctzll(capacity);
	struct weft__deque_array *a = deque_array_new(log2 + 1);
	if (a == NULL)
		return NULL;
	for (int64_t i = t; i < b; i++) {
		/* Relaxed both: the owner reads slots only it wrote, and
		 * the new array is not published yet. */
		void *item = atomic_load_explicit(&old->slot[i & old->mask],
			memory_order_relaxed);
		atomic_store_explicit(&a->slot[i & a->mask], item,
			memory_order_relaxed);
	}
	/* Release: publishes the new array's header and copied slots; pairs
	 * with the acquire load of d->array in weft__deque_steal.  Ordered
	 * before the release store of bottom that follows in push, so a thief
	 * that sees that bottom also sees this array or a newer one. */
	atomic_store_explicit(&d->array, a, memory_order_release);
	old->retired_next = d->retired;
	d->retired = old;
	return a;
}

int weft__deque_push_grow(weft__deque_t *d, void *item, int64_t b, int64_t t,
	struct weft__deque_array *a)
{
	/* weft__deque_push (deque.h) found array a full, with bottom b and
	 * top t as it read them (top with acquire: invariant 4). */
	a = deque_grow(d, a, t, b);
	if (a == NULL)
		return -ENOMEM;
	atomic_store_explicit(&a->slot[b & a->mask], item,
		memory_order_relaxed);
	atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
	return 0;
}

void *weft__deque_pop_last(weft__deque_t *d, int64_t t, int64_t b, void *item)
{
	/* Last item: race the thieves for it.  seq_cst CAS, as in steal, with
	 * which it competes; relaxed on failure (a thief took it, nothing to
	 * read).  Strong, because a spurious failure would lose the item. */
	if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
		    memory_order_seq_cst, memory_order_relaxed))
		item = NULL;
	/* Relaxed: top is now b + 1 either way; restore bottom == top. */
	atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
	return item;
}

int weft__deque_steal(weft__deque_t *d, void **out)
{
	/* Acquire, as in the paper: pairs with the seq_cst CAS on top by
	 * other thieves and the owner, so whatever they did before moving
	 * top happens before this steal's reads. */
	int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
	/* seq_cst fence (StoreLoad): orders the load of top above before the
	 * load of bottom below; pairs with the seq_cst fence in
	 * weft__deque_pop. */
	atomic_thread_fence(memory_order_seq_cst);
	/* Acquire: pairs with the release store of bottom in
	 * weft__deque_push, making the slot and the item's contents
	 * visible. */
	int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
	if (t >= b)
		return -ENOENT;
	/* Acquire (the paper's consume, which gcc implements as acquire):
	 * pairs with the release store of d->array in deque_grow.  Loaded
	 * after bottom, so it is the array that held index t when
	 * bottom was stored, or a newer one holding the same item. */
	struct weft__deque_array *a = atomic_load_explicit(&d->array,
		memory_order_acquire);
	/* Relaxed: ordered by the acquire loads of bottom and array. */
	void *item = atomic_load_explicit(&a->slot[t & a->mask],
		memory_order_relaxed);
	/* seq_cst: claims index t against other thieves and the owner's
	 * last-item CAS; its release half pairs with the acquire load of top
	 * in weft__deque_push (invariant 4).  Relaxed on failure: the item we
	 * read belongs to someone else and is discarded. */
	if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
		    memory_order_seq_cst, memory_order_relaxed))
		return -EAGAIN;
	*out = item;
	return 0;
}
