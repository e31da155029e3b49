/* Fiber stacks: mapping, per-worker pools, overflow detection.
 *
 * Two kinds of stack, chosen by a per-runtime budget:
 *  - guarded: mmap'd one by one with a PROT_NONE guard page below.  An
 *    overflow faults and the SIGSEGV handler names the task.  Each costs two
 *    VMAs, and vm.max_map_count defaults to 65530, so weft lets them use at
 *    most half of it (16382 stacks by default, see
 *    weft__stack_shared_init); the first `max_guarded` stacks are of this
 *    kind.
 *  - slab: carved from large MAP_NORESERVE slabs with no guard page (one
 *    VMA per slab of up to 256 stacks), so 1,000,000 parked fibers fit.
 *    Overflow is caught after the fact by weft__stack_check's canary.
 * A parked stack costs about one touched 4 KiB page: nothing here writes
 * below the top page, and the canary is chosen so that it needs no write
 * (stack.c explains).  Stacks are unmapped only by weft__stack_shared_fini.
 *
 * Pools: each worker has a weft__stack_pool_t, a LIFO cache touched only by
 * its owner (the most recently used, still-faulted stack is reused first).
 * Above POOL_CACHE stacks it spills all but its POOL_KEEP hottest to the
 * runtime-wide weft__stack_shared_t under a mutex, and refills from there
 * in batches.
 * Stacks that sit in the shared pool beyond a watermark get their memory
 * returned to the kernel with MADV_DONTNEED (weft__stack_trim, called by
 * idle workers), up to 64 stacks per process_madvise call where the
 * kernel allows it (one TLB shootdown per batch).
 *
 * Errors: -EINVAL / -ENOMEM, and on failure nothing happened. */
#ifndef WEFT_RUNTIME_CORE_STACK_H
#define WEFT_RUNTIME_CORE_STACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/common.h"
#include "core/sanitizer.h"

typedef struct weft__stack weft__stack_t;

struct weft__stack {
	/* Usable bytes are [lo, lo + size); the stack grows down from
	 * lo + size.  Immutable after creation. */
	void *lo;
	size_t size;
	/* Pool link, owned by whichever pool (local or shared) holds it;
	 * unused while the stack is in use. */
	weft__stack_t *next;
	/* Task name for overflow reports; set by the fiber layer while the
	 * stack is in use, may be NULL.  Reset to NULL by weft__stack_get. */
	const char *owner_name;
	/* The jump buffer (sched.c) of the innermost child running inline on
	 * this stack, through which a panic in that child gets back to its
	 * parent's frame; NULL when none.  Only written by the task running
	 * on the stack (sched.c's worker_run_inline), which sets it before
	 * the child runs and puts the previous value back after. */
	void *inline_exit;
#ifdef WEFT__TSAN
	/* TSan fiber handle bound to this stack: created lazily by
	 * weft__fiber_init, reused by the fibers that run on this stack
	 * (replaced every 256, see fiber.c), destroyed when the stack is
	 * unmapped.  Written only by whoever owns the stack.  TSan builds
	 * only: every stack has a descriptor (B7). */
	void *tsan_fiber;
	/* How many fibers have used tsan_fiber; fiber.c recycles the handle
	 * after a bound (see there).  Owner of the stack only. */
	unsigned tsan_uses;
#endif
	/* Valgrind stack id (0 when not under valgrind). */
	unsigned valgrind_id;
	/* 1 if a guard page sits below lo (individually mapped stack). */
	unsigned char guarded;
	/* How much of the stack is known to be released to the kernel
	 * (STACK_* in stack.c), so idle stacks are not advised twice.
	 * Written by whoever holds the stack (pool owner, or the spilling
	 * worker before it hands the stack to the shared pool). */
	unsigned char released;
	/* Guarded stacks: link in the shared list of all guarded stacks, for
	 * shared_fini.  Written under the shared lock. */
	weft__stack_t *all_next;
};

struct weft__stack_slab; /* stack.c */

/* One per runtime: configuration, the shared overflow pool, the guard-page
 * budget and the list of everything mapped.  Lock: `lock` protects every
 * field below it; the fields above it are immutable after init. */
typedef struct weft__stack_shared {
	size_t stack_size;  /* usable bytes per stack, page multiple */
	size_t page;	    /* system page size */
	size_t slab_stacks; /* stacks per slab */
	/* This process's pidfd for weft__stack_trim's batched release
	 * (stack.c), or -1; closed by shared_fini. */
	int pidfd;
	/* Set once the kernel refused a batched release: one madvise per
	 * stack from then on.  Relaxed: a hint. */
	atomic_bool no_batch;
	pthread_mutex_t lock;
	/* Guard-page budget, in stacks; lowered to nguarded if the kernel
	 * refuses a guarded mapping (out of VMAs). */
	size_t max_guarded;
	weft__stack_t *free; /* overflow pool, LIFO; resident memory */
	/* Length of `free`.  Written under lock; read without it (relaxed) by
	 * idle workers deciding whether to trim, where a stale value only
	 * delays or hastens a trim. */
	atomic_size_t nfree;
	weft__stack_t *cold;	    /* idle stacks whose memory was released */
	size_t ncold;		    /* under lock */
	size_t nguarded;	    /* guarded stacks mapped */
	size_t total;		    /* stacks mapped, both kinds */
	weft__stack_t *guarded_all; /* all guarded stacks, via all_next */
	struct weft__stack_slab *slabs; /* newest first; carving the head */
} weft__stack_shared_t;

/* One per worker: the hot LIFO cache.  Owner thread only. */
typedef struct weft__stack_pool {
	weft__stack_shared_t *shared;
	weft__stack_t *hot;
	size_t count;
} weft__stack_pool_t;

/* Validates and records the configuration.  stack_size is rounded up to
 * the page size; sizes below 16 KiB or above 1 GiB give -EINVAL.  Up to
 * max_guarded stacks get a guard page, the rest come from slabs (0 = all
 * from slabs).  max_guarded is capped at vm.max_map_count / 4 (16382 by
 * default) so guarded stacks use at most half of the process's VMAs; it is
 * lowered further if the kernel refuses a guarded mapping.  Maps nothing
 * yet.  Errors: -EINVAL, -ENOMEM (mutex).  Thread: any. */
WEFT__HIDDEN int weft__stack_shared_init(weft__stack_shared_t *s,
	size_t stack_size, size_t max_guarded);

/* Unmaps every stack.  Every pool must have been fini'd and every stack put
 * back first (asserted).  Thread: any, once nobody else uses s. */
WEFT__HIDDEN void weft__stack_shared_fini(weft__stack_shared_t *s);

/* Thread: the worker that will own p. */
WEFT__HIDDEN void weft__stack_pool_init(weft__stack_pool_t *p,
	weft__stack_shared_t *s);

/* Returns every cached stack to the shared pool.  Thread: owner only. */
WEFT__HIDDEN void weft__stack_pool_fini(weft__stack_pool_t *p);

/* Takes a stack for a new fiber: the hottest cached one, else a batch from
 * the shared pool, else a newly mapped one.  owner_name is reset to NULL.
 * Errors: -ENOMEM (mmap or allocation failure); nothing leaked, *out
 * untouched.  Thread: owner only. */
WEFT__HIDDEN int weft__stack_get(weft__stack_pool_t *p, weft__stack_t **out);

/* Gives back a stack whose fiber has finished (its last switch done).  It
 * becomes the hottest stack of p, whichever pool it came from.
 * Thread: owner of p only. */
WEFT__HIDDEN void weft__stack_put(weft__stack_pool_t *p, weft__stack_t *st);

/* Releases the memory of up to `budget` idle stacks of the shared pool
 * beyond the few kept warm (MADV_DONTNEED of all but the canary page), off
 * the hot path: idle workers call it before they sleep.  Returns how many
 * it released (0: nothing left to trim).  Thread: any. */
WEFT__HIDDEN
size_t weft__stack_trim(weft__stack_shared_t *s, size_t budget);

/* 0 if the stack looks intact; -1 if the canary of an unguarded stack was
 * overwritten, i.e. the fiber overflowed and may have corrupted the stack
 * mapped below it.  The scheduler calls it after each switch out of a
 * fiber (worker_after_switch); on -1 it reports the overflow itself and
 * aborts.  Reads one cache line at the low end.  Inline for a guarded
 * stack (its guard page faults instead: nothing to read), which every
 * switch out of a fiber would otherwise call for.  Thread: any (the fiber
 * must not be running). */
int weft__stack_check_canary(const weft__stack_t *st);
static inline int weft__stack_check(const weft__stack_t *st)
{
	return st->guarded ? 0 : weft__stack_check_canary(st);
}

/* The used top of a parked fiber's stack, copied out so that the pages
 * holding it can go back to the kernel while the fiber stays parked
 * (ARCHITECTURE.md, "Parked-task memory"), and copied back to the same
 * addresses before it runs again, so every pointer into the stack stays
 * valid.  A heap block of its own, sized to what is in use. */
struct weft__stack_image {
	void *sp;	  /* the saved stack pointer: bytes are [sp, top) */
	size_t len;	  /* bytes copied out, a multiple of 8 */
	uint64_t bytes[]; /* words: the copies go a word at a time */
};

/* Copies [sp, top of st) into a new image and releases the pages holding
 * it (MADV_DONTNEED of whole pages, never the canary page).  NULL, and
 * the stack left as it is, when more than WEFT__STACK_IMAGE_MAX bytes are
 * in use (the copies would cost more than the page saves), when the
 * image cannot be allocated, or when the release fails.  The fiber must
 * be off its stack, and nobody may resume it until
 * weft__stack_image_restore.  Thread: the worker that switched the fiber
 * out, before its park is published. */
#define WEFT__STACK_IMAGE_MAX 3072
struct weft__stack_image *weft__stack_image_release(const weft__stack_t *st,
	void *sp);

/* Copies img back (the pages fault in again) and frees it.  WEFT_DEBUG
 * builds first check that no page of the released range was touched
 * meanwhile (any access makes it resident: mincore) and abort naming
 * `call` and the task if one was: somebody read or wrote the stack of a
 * task that promised nobody would.  Thread: the worker about to switch
 * into the fiber. */
void weft__stack_image_restore(const weft__stack_t *st,
	struct weft__stack_image *img, const char *call, const char *name);

/* Records in *slot (the slot the worker's thread registered with
 * weft__stack_thread_init) which stack the thread is about to run on, for
 * the SIGSEGV handler; NULL when back on the thread's own stack.  The
 * scheduler calls it right before every switch into a fiber
 * (worker_switch_in: from its loop, or on the departing fiber's stack for
 * a direct switch), and with NULL when the loop has its thread back.
 * The slot is in the worker, reached through the worker pointer the
 * caller holds, not through a thread-local: the call is inline on every
 * switch, in code that runs on fibers that change threads (a TLS address
 * computed there could outlive a switch).  Thread: the worker. */
static inline void weft__stack_set_running(weft__stack_t **slot,
	weft__stack_t *st)
{
	*slot = st;
	/* seq_cst signal fence: keeps the store before the switch that
	 * follows, as seen by a signal handler on this thread
	 * (handler_on_fault's read); a compiler barrier only. */
	atomic_signal_fence(memory_order_seq_cst);
}

/* A worker's alternate signal stack, on which the overflow handler runs
 * when the fiber stack is exhausted.  Allocated by the thread that starts
 * the worker (weft__sched_worker_start), so that no memory for it is
 * weft_runtime_create's -ENOMEM, not a failure the worker's thread would
 * have nobody to report to. */
typedef struct weft__altstack {
	void *mem;
	size_t size;
} weft__altstack_t;

/* Allocates a's memory.  Errors: -ENOMEM (a is left empty).  Thread: any. */
WEFT__HIDDEN int weft__stack_altstack_alloc(weft__altstack_t *a);

/* Frees a's memory (an empty a is ignored); no thread may have it
 * installed.  Thread: any. */
WEFT__HIDDEN void weft__stack_altstack_free(weft__altstack_t *a);

/* Per worker thread: installs a (allocated) as the alternate signal
 * stack and registers slot (weft__stack_set_running) as the thread's for
 * the overflow handler.  Errors: the negative errno of sigaltstack(2),
 * which refuses only a stack too small or one the thread runs on
 * (nothing installed nor registered: the thread's overflows are not
 * reported; weft__stack_thread_fini may still be called).
 * Thread: the worker itself, on its own stack (not on a fiber). */
WEFT__HIDDEN int weft__stack_thread_init(weft__stack_t **slot,
	const weft__altstack_t *a);

/* Unregisters the thread's slot and restores its previous alternate
 * signal stack (the memory stays the caller's); nothing when thread_init
 * failed.  Thread: the worker itself, on its own stack, after
 * thread_init. */
WEFT__HIDDEN void weft__stack_thread_fini(void);

/* Process-wide SIGSEGV/SIGBUS handler, reference-counted across runtimes:
 * the first acquire installs it (remembering the previous handlers), the
 * last release puts the previous ones back, unless someone replaced ours
 * in between.  Faults that are not stack overflows are passed to the
 * previous handler.  Errors: -EINVAL if sigaction fails.  Thread: any. */
WEFT__HIDDEN int weft__stack_handler_acquire(void);
WEFT__HIDDEN void weft__stack_handler_release(void);

#endif
