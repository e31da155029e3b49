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
 *                 allocates more, instead of through malloc's locks.
 *   task arena    per runtime: task records are type-stable (Go's allgs):
 *                 every task record stays a task record until the
 *                 runtime is destroyed, so a snapshot may read a record's
 *                 insp_* fields at any time without a use after free, and
 *                 a late wake of an ended task's park generation (from
 *                 the I/O thread or an offload thread) reads a record, not
 *                 freed memory.  The arena holds the free task records
 *                 beyond the caches and lists every record ever allocated
 *                 for snapshots to scan.
 * Thread: see each function. */
#ifndef WEFT_RUNTIME_CORE_RECORDS_H
#define WEFT_RUNTIME_CORE_RECORDS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/sched.h"
#include "core/task.h"

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
} weft__record_pool_t;

/* 0 or a negative errno.  Thread: the runtime's creator. */
int weft__record_pool_init(weft__record_pool_t *p);
/* Frees every pooled record.  Thread: the runtime's destroyer, after
 * every worker is joined. */
void weft__record_pool_fini(weft__record_pool_t *p);

/* The runtime's task records (see the top of this file). */
struct weft__record_arena {
	pthread_mutex_t lock;
	void *free;   /* free records linked through their first word */
	size_t nfree; /* under lock */
	/* Every record, newest first, linked through insp_all_next; pushed
	 * under lock with a release store, scanned lock-free (acquire). */
	_Atomic(struct weft_task *) all;
};
/* 0 or a negative errno.  Thread: the runtime's creator. */
int weft__record_arena_init(struct weft__record_arena *a);
/* Frees the arena's free records.  Thread: the runtime's destroyer, after
 * every worker drained its cache and the I/O thread stopped.  Records
 * still referenced leak. */
void weft__record_arena_fini(struct weft__record_arena *a);

/* Slow paths of weft__record_get/put (empty or full cache, or not a
 * worker).  Thread: any. */
void *weft__record_get_slow(enum weft__record_kind kind);
void weft__record_put_slow(enum weft__record_kind kind, void *p);

/* A group record (kind WEFT__RECORD_GROUP) from the calling worker's
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
	return p;
}

/* Keeps p (from weft__alloc, sized for `kind`) in the calling worker's
 * cache, or hands it on (pool, free).  Thread: any. */
static inline void weft__record_put(enum weft__record_kind kind, void *p)
{
	weft__worker_t *w = weft__sched_current();
	if (__builtin_expect(w == NULL ||
			    w->records.len[kind] >= WEFT__RECORD_CACHE_MAX,
		    0)) {
		weft__record_put_slow(kind, p);
		return;
	}
	*(void **)p = w->records.head[kind];
	w->records.head[kind] = p;
	w->records.len[kind]++;
}

/* Slow paths of the two below.  Thread: any. */
struct weft_task *weft__record_task_get_slow(struct weft_runtime *rt,
	weft__worker_t *w);
void weft__record_task_put_slow(weft__worker_t *w, struct weft_task *t);

/* A free task record of rt (its insp_* fields initialised once, when it
 * was first allocated), or NULL when none can be had.  w is the calling
 * thread's worker (weft__sched_current(), NULL for a plain thread): the
 * worker cache's fast path serves this runtime's workers only.
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
	if (__builtin_expect(w != NULL && w->rt == t->rt &&
			    w->records.len[WEFT__RECORD_TASK] <
				    WEFT__RECORD_CACHE_MAX,
		    1)) {
		*(void **)t = w->records.head[WEFT__RECORD_TASK];
		w->records.head[WEFT__RECORD_TASK] = t;
		w->records.len[WEFT__RECORD_TASK]++;
		return;
	}
	weft__record_task_put_slow(w, t);
}

/* Empties w's cache when its thread ends: task records to the arena,
 * group records to malloc.  Thread: w's own, at its exit. */
void weft__record_cache_drain(weft__worker_t *w);

#endif
