/* Where task and group records come from, and where they go back to: the
 * worker caches, the runtime's record pool, and the task arena.  The
 * general allocator (base/alloc.h) is below all three, and fiber stacks
 * have their own pools (stack.h).
 *
 *   worker cache  per worker, owner-only lists of free records
 *                 (weft__record_cache_t in weft__worker_t), up to
 *                 WEFT__RECORD_CACHE_MAX per kind: the spawn and finish
 *                 paths are a list pop and push.
 *   record pool   per runtime, batches of free group records that flow
 *                 from a worker that frees more than it allocates (a
 *                 thief running a spawner's tasks) back to one that
 *                 allocates more, instead of through malloc's locks, and
 *                 single records freed off the runtime's workers.  Group
 *                 records are type-stable too: they go back to malloc
 *                 only when the runtime is destroyed, so a handle check
 *                 may read a freed group's generation (handles below).
 *   task arena    per runtime: task records are type-stable (Go's allgs):
 *                 every task record stays a task record until the
 *                 runtime is destroyed, so a snapshot may read a record's
 *                 insp_* fields at any time without a use after free, and
 *                 a late wake of an ended task's park generation (from
 *                 the I/O thread or an offload thread) reads a record, not
 *                 freed memory.  The arena allocates records in chunks
 *                 (weft__record_chunk), holds the free task records
 *                 beyond the caches, and lists every chunk for snapshots
 *                 to scan.  An idle worker gives back the pages of
 *                 chunks whose records are all free (madvise: still
 *                 mapped, reading as zeros; records.c says why readers
 *                 stay safe), and a thread that is not a worker keeps a
 *                 batch of records in a foreign cache of its own.
 * Thread: see each function. */
#ifndef WEFT_RUNTIME_CORE_RECORDS_H
#define WEFT_RUNTIME_CORE_RECORDS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/diag.h"
#include "core/group.h"
#include "core/sched.h"
#include "core/task.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define WEFT__RECORD_ASAN 1
#endif

#define WEFT__RECORD_CACHE_MAX 256
/* Records move between a worker cache and the pool or the arena in
 * batches of this many (one lock per batch). */
#define WEFT__RECORD_BATCH 128

/* Runtime-wide pool of record batches.  A batch is a list linked through
 * each record's first word; the batches are linked through the second
 * word of their first record. */
typedef struct weft__record_pool {
	pthread_mutex_t lock;
	void *batches[WEFT__RECORD_KINDS];     /* under lock */
	unsigned nbatches[WEFT__RECORD_KINDS]; /* under lock */
	/* Single records freed by a thread that is not one of the
	 * runtime's workers, linked through their first word; under lock. */
	void *loose[WEFT__RECORD_KINDS];
} weft__record_pool_t;

/* 0 or a negative errno.  Thread: the runtime's creator. */
int weft__record_pool_init(weft__record_pool_t *p);
/* Frees every pooled record.  Thread: the runtime's destroyer, after
 * every worker is joined. */
void weft__record_pool_fini(weft__record_pool_t *p);

/* A thread's cache of one runtime's free task records, for a thread that
 * is not one of that runtime's workers (records.c, "foreign caches"): one
 * per thread, in TLS, holding records of at most one runtime at a time. */
struct weft__record_fcache {
	/* The runtime whose records head holds, or NULL.  Written under
	 * the process-wide foreign-cache lock (records.c) by the owner
	 * thread or by that runtime's destroyer; read by the owner without
	 * it (relaxed: see records.c). */
	_Atomic(struct weft_runtime *) rt;
	void *head; /* free records linked through their first word */
	unsigned n;
	/* On rt's arena's list of foreign caches, under the foreign-cache
	 * lock. */
	struct weft__record_fcache *next, **pprev;
};

/* A block of task records (records.c, "chunks"): one allocation of
 * WEFT__RECORD_CHUNK_BYTES holding this header and nrec records. */
struct weft__record_chunk {
	/* The arena's chunks, newest first; written once, before the chunk
	 * is published with a release store (scanners follow it lock-free). */
	struct weft__record_chunk *next;
	struct weft_task *recs; /* nrec consecutive records */
	size_t nrec;
	/* Under the arena's lock: whether the chunk's pages were returned
	 * (all its records free, none on the free list), and then the
	 * generations its records' next lives start from. */
	bool released;
	struct weft__record_chunk *next_released;
	uint32_t gen_floor;
	uint64_t park_floor;
	size_t trim_count; /* under lock: a trim's count of free records */
};

#define WEFT__RECORD_CHUNK_BYTES ((size_t)256 * 1024)

/* How many of the free list's leading segments an arena knows
 * (records.c, "Segments"): 4096 batches, half a million records, 64 KB
 * of ring.  256 covered the first 32,768 free records only, and a
 * refill past them walked the rest record by record (B3 external at 2
 * workers leaves a few hundred thousand free after a round). */
#define WEFT__RECORD_SEGS 4096

/* A run of the free list put there at once: its last record and its
 * length. */
struct weft__record_seg {
	void *tail;
	size_t n;
};

/* The runtime's task records (see the top of this file). */
struct weft__record_arena {
	pthread_mutex_t lock;
	void *free;   /* free records linked through their first word */
	size_t nfree; /* under lock */
	/* Under lock (records.c, "Segments"): the free list begins with
	 * nseg runs whose last records and lengths are known, the first at
	 * segs[seg_top], the next at the index below it, cyclically. */
	struct weft__record_seg segs[WEFT__RECORD_SEGS];
	unsigned seg_top, nseg;
	/* Every chunk, newest first, linked through next; pushed under lock
	 * with a release store, scanned lock-free (acquire): every record
	 * the runtime ever had is in one (weft__record_arena_first). */
	_Atomic(struct weft__record_chunk *) chunks;
	/* Under lock: the chunks by address (for the trim's lookup of a
	 * record's chunk), and the released ones. */
	struct weft__record_chunk **sorted;
	size_t nchunks, sorted_cap;
	struct weft__record_chunk *released;
	/* Under lock (records.c, trimming): records put on the free list
	 * since the last trim pass, the least nfree since then, when it
	 * ran (real clock, ns), and whether it could take every free
	 * record. */
	size_t puts_since_trim;
	size_t low_free;
	int64_t trim_at;
	bool trim_settled;
	/* Bytes of chunks whose pages are not released (records.c, trim).
	 * relaxed: a counter for tests and diagnostics, written under lock. */
	atomic_size_t resident;
	/* Chunks released so far.  relaxed: as resident. */
	atomic_size_t released_total;
	/* Foreign caches holding this runtime's records, under the
	 * process-wide foreign-cache lock (records.c): the destroyer takes
	 * their records back. */
	struct weft__record_fcache *foreign;
	/* Batches of records taken by threads that are not workers of this
	 * runtime into their foreign caches, one arena lock each (the
	 * single first lives of WEFT_DEBUG builds are not counted:
	 * records.c, record_fresh_head).  relaxed: a counter for tests
	 * (tests/test_inject.c), bumped under lock. */
	atomic_size_t foreign_refills;
};

/* Scanning every task record of an arena, lock-free (snapshots, the
 * destroy's handle check, tools/gdb/weft.py):
 *
 *   for (c = weft__record_arena_first(a); c; c = c->next)
 *       for (t = c->recs; t < c->recs + c->nrec; t++) ...
 *
 * acquire: pairs with the release store that publishes a chunk, whose
 * records were initialised before it.  A record of a released chunk reads
 * as zeros, or as its last values where a page it shares was kept: never
 * live (insp_id 0), no handle (handles 0), and a park word or generation
 * that no waker or handle holds (records.c, "reading a released chunk"). */
static inline struct weft__record_chunk *weft__record_arena_first(
	struct weft__record_arena *a)
{
	return atomic_load_explicit(&a->chunks, memory_order_acquire);
}

/* Returns the pages of the arena's chunks whose records are all free on
 * the arena's free list and were not needed during the last window
 * (records.c, trimming); never blocks (a busy arena lock skips it).
 * Returns the number of chunks released; *retry receives the real-clock
 * time (weft__timer_real_now) at which another call may release more,
 * or 0 when nothing is due.  Thread: an idle worker of the arena's
 * runtime, before it sleeps and when a timed sleep for *retry ends. */
size_t weft__record_arena_trim(struct weft__record_arena *a, int64_t *retry);

/* 0 or a negative errno.  Thread: the runtime's creator. */
int weft__record_arena_init(struct weft__record_arena *a);
/* Takes back the records of every foreign cache holding a's records, then
 * frees the arena's free records.  Thread: the runtime's destroyer, after
 * every worker drained its cache and the I/O thread stopped.  Records
 * still referenced leak. */
void weft__record_arena_fini(struct weft__record_arena *a);

/* {======================================================= poisoning
 *
 * Under ASan, the parts of a free record that nobody may read while it
 * sits in a cache, a batch or the arena are poisoned, and unpoisoned when
 * the record is handed out again, so a use after free through a kept raw
 * pointer is reported ("use-after-poison") instead of reading the next
 * life's data.  Which fields stay readable, and why: records.c.  Without
 * ASan these compile to nothing. */

/* The first two words of a free record are the lists' links (the caches
 * and the arena link through word 0, the pool's batches through word 1):
 * never poisoned. */
#define WEFT__RECORD_LINKS (2 * sizeof(void *))

/* Poisons bytes [from, to) of record p.  Thread: the record's holder. */
static inline void weft__record_poison(void *p, size_t from, size_t to)
{
#ifdef WEFT__RECORD_ASAN
	ASAN_POISON_MEMORY_REGION((char *)p + from, to - from);
#else
	(void)p;
	(void)from;
	(void)to;
#endif
}

/* Unpoisons the whole record p of `size` bytes.  Thread: its holder. */
static inline void weft__record_unpoison(void *p, size_t size)
{
#ifdef WEFT__RECORD_ASAN
	ASAN_UNPOISON_MEMORY_REGION(p, size);
#else
	(void)p;
	(void)size;
#endif
}

/* The dead parts of a free task record (records.c: what stays readable):
 * everything up to the park word but the links, from the park word to
 * the introspection block, and the root scope and the fiber context. */
static inline void weft__record_task_poison(struct weft_task *t)
{
	weft__record_poison(t, WEFT__RECORD_LINKS,
		offsetof(struct weft_task, park));
	weft__record_poison(t,
		offsetof(struct weft_task, park) + sizeof t->park,
		offsetof(struct weft_task, insp_id));
	weft__record_poison(t, offsetof(struct weft_task, root_scope),
		offsetof(struct weft_task, name));
}

/* The dead part of a free group record: all but the links and the tail
 * that survives reuse (gen, retains). */
static inline void weft__record_group_poison(struct weft_group *g)
{
	weft__record_poison(g, WEFT__RECORD_LINKS,
		offsetof(struct weft_group, gen));
}

/* }======================================================= */

/* Slow paths of weft__record_get/put (empty or full cache, or not a
 * worker of rt).  Thread: any. */
void *weft__record_get_slow(enum weft__record_kind kind);
void weft__record_put_slow(struct weft_runtime *rt, enum weft__record_kind kind,
	void *p);

/* A group record (kind WEFT__RECORD_GROUP, the only kind but tasks,
 * which have their own functions below) from the calling worker's
 * cache or the pool, or NULL (not a worker, or none cached or pooled:
 * the caller then uses weft__alloc).  Thread: any (a worker uses its
 * own cache). */
static inline void *weft__record_get(enum weft__record_kind kind)
{
	weft__worker_t *w = weft__sched_current();
	void *p = w ? w->records.head[kind] : NULL;
	if (__builtin_expect(p == NULL, 0))
		return weft__record_get_slow(kind);
	w->records.head[kind] = *(void **)p;
	w->records.len[kind]--;
	weft__record_unpoison(p,
		kind == WEFT__RECORD_TASK ? sizeof(struct weft_task)
					  : sizeof(struct weft_group));
	return p;
}

/* Keeps p (from weft__alloc, sized for `kind`, a record of rt) in the
 * calling worker's cache when it is a worker of rt, or hands it to rt's
 * pool (never to malloc while rt lives).  Thread: any. */
static inline void weft__record_put(struct weft_runtime *rt,
	enum weft__record_kind kind, void *p)
{
	weft__worker_t *w = weft__sched_current();
	if (__builtin_expect(w == NULL || w->rt != rt ||
			    w->records.len[kind] >= WEFT__RECORD_CACHE_MAX,
		    0)) {
		weft__record_put_slow(rt, kind, p);
		return;
	}
	weft__record_group_poison(p);
	*(void **)p = w->records.head[kind];
	w->records.head[kind] = p;
	w->records.len[kind]++;
}

/* Slow paths of the two below.  Thread: any. */
struct weft_task *weft__record_task_get_slow(struct weft_runtime *rt,
	weft__worker_t *w);
void weft__record_task_put_slow(struct weft_runtime *rt, weft__worker_t *w,
	struct weft_task *t);

/* A free task record of rt (its insp_* fields initialised once, when its
 * chunk was allocated or reused), or NULL when none can be had.  w is the
 * calling thread's worker (weft__sched_current(), NULL for a plain
 * thread): the worker cache's fast path serves this runtime's workers
 * only; other threads use their foreign cache (records.c).
 * Thread: any. */
static inline struct weft_task *weft__record_task_get(struct weft_runtime *rt,
	weft__worker_t *w)
{
	struct weft_task *t;
	if (__builtin_expect(w != NULL && w->rt == rt &&
			    (t = w->records.head[WEFT__RECORD_TASK]) != NULL,
		    1)) {
		w->records.head[WEFT__RECORD_TASK] = *(void **)t;
		w->records.len[WEFT__RECORD_TASK]--;
		weft__record_unpoison(t, sizeof *t);
		return t;
	}
	return weft__record_task_get_slow(rt,
		w != NULL && w->rt == rt ? w : NULL);
}

/* Gives t's record back: to the calling worker's cache if it is a worker
 * of t's runtime with room, else to the arena (never to malloc while the
 * runtime lives).  Thread: any. */
static inline void weft__record_task_put(struct weft_task *t)
{
	weft__worker_t *w = weft__sched_current();
	struct weft_runtime *rt = t->rt;
	weft__record_task_poison(t);
	if (__builtin_expect(w != NULL && w->rt == rt &&
			    w->records.len[WEFT__RECORD_TASK] <
				    WEFT__RECORD_CACHE_MAX,
		    1)) {
		*(void **)t = w->records.head[WEFT__RECORD_TASK];
		w->records.head[WEFT__RECORD_TASK] = t;
		w->records.len[WEFT__RECORD_TASK]++;
		return;
	}
	weft__record_task_put_slow(rt, w, t);
}

/* Empties w's cache when its thread ends: task records to the arena,
 * group records to the record pool (both stay records until the runtime
 * is destroyed).  Thread: w's own, at its exit. */
void weft__record_cache_drain(weft__worker_t *w);

/* {======================================================= handles
 *
 * The weft_task_t * and weft_group_t * that users hold are tagged
 * pointers: the record's address in the low 48 bits and the low 16 bits
 * of the record's generation (task.h `gen`, group.h `gen`) in the top
 * 16.  A record's generation is bumped each time it is freed back to the
 * caches, so a handle kept past its record's free (released twice, a
 * group used after its join freed it) no longer matches: every public
 * function untags its handle through weft__task_from_handle /
 * weft__group_from_handle, which report the misuse (weft__misuse) instead
 * of touching a record that now belongs to another task.  Reading a
 * stale record's generation is safe because records are type-stable:
 * task records stay in the task arena, group records in the record pool,
 * until the runtime is destroyed.  The tag wraps after 65536 lives of one
 * record; a handle that stale is not detected.  Internal code passes raw
 * record pointers and never dereferences a handle.
 *
 * x86_64 and aarch64 (the targets of fiber_*.S) give user space at most
 * 48-bit addresses unless a mapping asks for more, which malloc does not:
 * weft__record_tag_check verifies it of every new record. */

_Static_assert(sizeof(void *) == 8, "handle tags need 64-bit pointers");
#define WEFT__HANDLE_TAG_SHIFT 48
#define WEFT__HANDLE_ADDR_MASK ((UINT64_C(1) << WEFT__HANDLE_TAG_SHIFT) - 1)

/* Aborts unless p fits in the untagged part of a handle.  Thread: any. */
static inline void weft__record_tag_check(const void *p)
{
	WEFT_ASSERT(((uintptr_t)p & ~(uintptr_t)WEFT__HANDLE_ADDR_MASK) == 0,
		"a record above 2^48 cannot carry a handle tag");
}

/* The record address of handle h, unchecked. */
static inline void *weft__handle_addr(const void *h)
{
	return (void *)((uintptr_t)h & (uintptr_t)WEFT__HANDLE_ADDR_MASK);
}

/* Whether handle h carries generation gen. */
static inline bool weft__handle_fresh(const void *h, uint32_t gen)
{
	return ((uintptr_t)h >> WEFT__HANDLE_TAG_SHIFT) == (uint16_t)gen;
}

/* The tag handle h carries (the low 16 bits of a generation). */
static inline uint16_t weft__handle_tag(const void *h)
{
	return (uint16_t)((uintptr_t)h >> WEFT__HANDLE_TAG_SHIFT);
}

/* The handle of record p (weft__record_tag_check'ed) in the life whose
 * generation is gen: the task and group handles below, and the socket
 * handles of io/io.h. */
static inline void *weft__handle_make(const void *p, uint32_t gen)
{
	return (void *)((uintptr_t)p |
		((uintptr_t)(uint16_t)gen << WEFT__HANDLE_TAG_SHIFT));
}

/* Reports a misuse of the API: prints "weft: <formatted>" and aborts in
 * abort mode (the default when built with WEFT_DEBUG), else returns, and
 * the caller returns the error its declaration documents.  Thread: any. */
void weft__misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets whether weft__misuse aborts; returns the previous mode.  A
 * process-wide diagnostic switch (tests check both behaviours in one
 * build).  Thread: any. */
bool weft__misuse_set_abort(bool on);

/* The handle users get for t in its current life.  relaxed: the caller
 * holds t (a reference, or t is running), so its generation cannot
 * change meanwhile.  Thread: any. */
static inline weft_task_t *weft__task_handle(struct weft_task *t)
{
	if (t == NULL)
		return NULL;
	return weft__handle_make(t,
		atomic_load_explicit(&t->gen, memory_order_relaxed));
}

/* Reports a misuse of the current handle h: "<call>: task handle <h>
 * (task '<name>'#<id>) <what>".  Thread: any. */
void weft__task_misuse(const weft_task_t *h, const char *call,
	const char *what);

/* The slow path below: NULL h gives NULL; a stale one is reported (call
 * names the public function) and gives NULL in error mode. */
struct weft_task *weft__task_stale(const weft_task_t *h, const char *call);

/* The record behind handle h, or NULL (h NULL, or stale: reported).
 * relaxed load of the generation: a valid handle's holder got it after
 * the tag was read from the record (through whatever handed it over),
 * and the generation changes only when the last reference, including
 * the holder's, is gone, so coherence gives the holder the current
 * value; a stale handle is detected once its record's free is visible
 * to the caller (always, when the misuse is ordered after the free by
 * a join, a wait or a release). */
static inline struct weft_task *weft__task_from_handle(const weft_task_t *h,
	const char *call)
{
	struct weft_task *t = weft__handle_addr(h);
	if (__builtin_expect(t != NULL &&
			    weft__handle_fresh(h,
				    atomic_load_explicit(&t->gen,
					    memory_order_relaxed)),
		    1))
		return t;
	return weft__task_stale(h, call);
}

/* As the three above, for group handles (gen in group.h). */
static inline weft_group_t *weft__group_handle(struct weft_group *g)
{
	if (g == NULL)
		return NULL;
	return weft__handle_make(g,
		atomic_load_explicit(&g->gen, memory_order_relaxed));
}
struct weft_group *weft__group_stale(const weft_group_t *h, const char *call);
static inline struct weft_group *weft__group_from_handle(const weft_group_t *h,
	const char *call)
{
	struct weft_group *g = weft__handle_addr(h);
	if (__builtin_expect(g != NULL &&
			    weft__handle_fresh(h,
				    atomic_load_explicit(&g->gen,
					    memory_order_relaxed)),
		    1))
		return g;
	return weft__group_stale(h, call);
}

/* }======================================================= */

#endif
