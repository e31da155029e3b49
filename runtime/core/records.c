/* Record caches, the record pool and the task arena (see records.h).
 *
 * The fast paths (a list pop or push on the calling worker's own cache)
 * are inline in records.h; this file has what takes a lock: refilling a
 * cache from the pool or the arena, and handing a full cache's overflow
 * back.
 *
 * Poisoning (ASan builds, records.h): a free record is poisoned where
 * nobody may read it while it waits for its next life, and unpoisoned
 * whole when it is handed out again (weft__record_get,
 * weft__record_task_get and their slow paths; a new record from malloc
 * was never poisoned).  The poisoning happens in the put functions, after
 * the last read of the record by its freer (t->rt), before the record is
 * linked where another thread can take it.  What stays readable, and who
 * reads it:
 *   both kinds   the first two words: the free lists' links (caches and
 *                arena through word 0, the pool's batches through word 1),
 *                written and read by whoever holds the list.
 *   task         park: a late waker (the I/O thread, an offload thread, a
 *                canceller) may CAS a park generation of an ended life
 *                (weft__task_wake_claim reads it, finds another generation and
 *                touches nothing else);
 *                insp_id .. handles (insp_*, ctx, done_cbs, name_lit,
 *                gen, handles): snapshots read insp_* of any record at
 *                any time, handle checks read gen, weft_runtime_destroy's
 *                scan reads handles of every record on the arena's list,
 *                and the next creator reads name_lit;
 *                name: snapshots and the stale-handle report copy it.
 *   group        gen and retains (the tail past the scope): handle checks
 *                read gen; retains survives reuse.
 * Poisoned, for a task: stack..arg but the links (fn, arg, rt; nothing
 * reads a free record's function or runtime), cur_scope up to root_done
 * (the outcome, the reference count, the waiters, the handshake fields:
 * each is read only under a reference, which a free record has none of),
 * the root scope (unlinked from the tree before the end) and the fiber
 * context.  For a group: everything from the third word up to gen (the
 * join word, owner, errors, references and the scope, all read only by
 * the owner, the children or retainers, which a free group has none of).
 * Stack memory has its own pools (stack.c) and is not poisoned here. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/diag.h"
#include "core/group.h"
#include "core/records.h"
#include "core/sched.h"
#include "core/task.h"
#include "core/timer.h"
#include "runtime.h"

/* {======================================================= record pool */

int weft__record_pool_init(weft__record_pool_t *p)
{
	int rc = pthread_mutex_init(&p->lock, NULL);
	if (rc != 0)
		return -rc;
	for (int k = 0; k < WEFT__RECORD_KINDS; k++) {
		p->batches[k] = NULL;
		p->nbatches[k] = 0;
		p->loose[k] = NULL;
	}
	return 0;
}

/* The size of a record of `kind`. */
static size_t record_size(int kind)
{
	return kind == WEFT__RECORD_TASK ? sizeof(struct weft_task)
					 : sizeof(struct weft_group);
}

/* Frees a list of free records of `kind` (unpoisoned first: the allocator
 * may write into what it gets back). */
static void record_free_list(int kind, void *head)
{
	while (head) {
		void *next = *(void **)head;
		weft__record_unpoison(head, record_size(kind));
		weft__free(head);
		head = next;
	}
}

void weft__record_pool_fini(weft__record_pool_t *p)
{
	for (int k = 0; k < WEFT__RECORD_KINDS; k++) {
		void *b = p->batches[k];
		while (b) {
			void *next = ((void **)b)[1];
			record_free_list(k, b);
			b = next;
		}
		record_free_list(k, p->loose[k]);
	}
	pthread_mutex_destroy(&p->lock);
}

void *weft__record_get_slow(enum weft__record_kind kind)
{
	weft__worker_t *w = weft__sched_current();
	if (w == NULL)
		return NULL;
	if (w->records.head[kind] == NULL) {
		/* Refill a whole batch from the runtime's pool. */
		weft__record_pool_t *pool = &w->rt->records;
		pthread_mutex_lock(&pool->lock);
		void *b = pool->batches[kind];
		unsigned n = WEFT__RECORD_BATCH;
		if (b) {
			pool->batches[kind] = ((void **)b)[1];
			pool->nbatches[kind]--;
		} else if ((b = pool->loose[kind]) != NULL) {
			/* No batch: the single records, up to a batch. */
			void *tail = b;
			for (n = 1; n < WEFT__RECORD_BATCH && *(void **)tail;
				n++)
				tail = *(void **)tail;
			pool->loose[kind] = *(void **)tail;
			*(void **)tail = NULL;
		}
		pthread_mutex_unlock(&pool->lock);
		if (b == NULL)
			return NULL;
		w->records.head[kind] = b;
		w->records.len[kind] = n;
	}
	void *p = w->records.head[kind];
	w->records.head[kind] = *(void **)p;
	w->records.len[kind]--;
	weft__record_unpoison(p, record_size(kind));
	return p;
}

void weft__record_put_slow(struct weft_runtime *rt, enum weft__record_kind kind,
	void *p)
{
	weft__worker_t *w = weft__sched_current();
	weft__record_group_poison(p);
	if (w == NULL || w->rt != rt) {
		/* Not rt's worker: to rt's pool, one record (type-stable:
		 * never to malloc while rt lives). */
		weft__record_pool_t *pool = &rt->records;
		pthread_mutex_lock(&pool->lock);
		*(void **)p = pool->loose[kind];
		pool->loose[kind] = p;
		pthread_mutex_unlock(&pool->lock);
		return;
	}
	if (w->records.len[kind] >= WEFT__RECORD_CACHE_MAX) {
		/* Hand the newest WEFT__RECORD_BATCH records to the pool. */
		void *head = w->records.head[kind], *tail = head;
		for (int i = 1; i < WEFT__RECORD_BATCH; i++)
			tail = *(void **)tail;
		w->records.head[kind] = *(void **)tail;
		w->records.len[kind] -= WEFT__RECORD_BATCH;
		*(void **)tail = NULL;
		weft__record_pool_t *pool = &w->rt->records;
		/* Kept however many there are: records go back to malloc
		 * only when the runtime is destroyed (type-stable). */
		pthread_mutex_lock(&pool->lock);
		((void **)head)[1] = pool->batches[kind];
		pool->batches[kind] = head;
		pool->nbatches[kind]++;
		pthread_mutex_unlock(&pool->lock);
	}
	*(void **)p = w->records.head[kind];
	w->records.head[kind] = p;
	w->records.len[kind]++;
}

/* }======================================================= */

/* {======================================================= task arena
 *
 * Task records never go back to malloc while their runtime lives (see
 * records.h): a worker's cache holds free task records as it does group
 * records, but a record of another runtime, a record freed by a plain
 * thread, and a full cache's overflow go to the arena instead of the
 * shared record pool or weft__free, and an empty cache refills a batch
 * from the arena.  The fast paths are the cache's own (owner-only list
 * operations), plus one comparison of the runtime.
 *
 * Chunks.  Records are allocated WEFT__RECORD_CHUNK_BYTES at a time
 * (a header and ~550 records, one weft__calloc), and every chunk is on
 * the arena's list, which is what snapshots scan (records.h,
 * weft__record_arena_first).  A chunk is never freed while the runtime
 * lives, but its pages may be given back:
 *
 * Trimming (weft__record_arena_trim).  After a burst (10^6 tasks at once
 * left ~416 MB of free records until weft_runtime_destroy), an idle
 * worker, before it sleeps, counts the free list's records per chunk
 * (a binary search of the chunks by address); each chunk whose records
 * are all there leaves the free list, is marked released, and the pages
 * inside its records are returned with madvise(MADV_DONTNEED).  The
 * mapping stays: the pages read as zeros until written again.
 *
 * Only memory the workload did not need is given back: a pass runs at
 * most once per TRIM_WINDOW_NS, and releases at most as many records as
 * stayed free through the whole window since the last pass (low_free,
 * the least nfree seen).  A program that bursts every few hundred
 * milliseconds (B3: five rounds of 10^6 spawns per repetition) keeps its
 * records; one that went quiet gets them back within two windows.  A
 * first version trimmed at every idle moment after enough frees, and B3
 * "external" paid ~400,000 page faults per repetition re-touching what
 * the previous round's trim had released.  Bounded: a pass costs
 * O(free records x log chunks) under the arena lock (~10 ms for 10^6
 * free records), at most once a window, paid by a worker with nothing
 * to do, which never waits for the lock.  An idle worker whose pass is
 * not due yet sleeps with a timeout until it is (idle.c), so the last
 * pass is not lost to a sleep; once a pass saw its whole free list
 * eligible and no record came back since, nothing is due.  A released
 * chunk is the first to be used again when the free list runs dry (its
 * records re-initialised), before a new chunk is allocated.
 *
 * Reading a released chunk.  Records are type-stable so that readers
 * without a reference may look at any record at any time; a released
 * chunk's records are still mapped memory, and each field reads either
 * as zero or as the value it had when the chunk was released (a page it
 * shares with the header or with the records' ends is kept; a naturally
 * aligned field is never split between pages).  No record of a released
 * chunk is live, in a cache or on the free list, so:
 *   snapshots   insp_id is 0 (it was 0 in every free record already): the
 *               scan skips the record, and a scan that read a live id
 *               before the task ended re-reads insp_id and drops what it
 *               read (inspect.c does that for any freed record);
 *   handles     a stale handle's tag is compared with gen, now 0 or its
 *               last value.  A record's first life has generation 1 (a
 *               new record starts there, not at 0), so only a handle of
 *               a life whose generation wrapped to 0 mod 2^16 could
 *               match a zero: the wrap-around records.h already accepts
 *               (a handle that stale is not detected).  When the chunk
 *               is used again its records start at gen_floor, above
 *               every generation they had, so old handles stay stale;
 *   late wakes  a late waker compares its park generation with the park
 *               word's: park generations start at 1 (weft__task_park_*
 *               adds one to the word's), so a zero word matches no wake
 *               and is not written (weft__task_wake_claim); reuse starts the
 *               park generations at park_floor, the largest a record of
 *               the chunk had, so no old wake matches a new park;
 *   destroy     handles reads 0 (a free record has no handle);
 *   names       the stale-handle report copies a zero or old name.
 *
 * Segments.  A batch taken from the free list used to be cut by following
 * its links, one record after the other, under the arena's lock: a
 * chain of dependent loads, each a cache miss when another thread freed
 * the record (B3 "external" at 2 workers: the workers free, the
 * spawning thread refills its foreign cache; a sampling profile put a
 * quarter of the spawning thread's time on that loop, and the lock,
 * held that long, sent workers to sleep in the kernel on it).  So the
 * arena remembers the free list's leading runs as they were put there
 * (a worker's overflow batch, a foreign cache's return, a chunk: each
 * put knows its last record and its length), in a ring of the
 * WEFT__RECORD_SEGS newest.  A take uses whole runs that fit without
 * reading them, and walks only when none fits (the first run is longer
 * than it asks for, or none is known), inside that run; what it takes is
 * exactly what the walk took.  A take that gets fewer records than it
 * asked for rather than walk into the next run keeps the takes aligned
 * with the runs: one that walked the remainder made every later take
 * walk that much (B3 external, after a foreign cache's return of a part
 * of a batch: the producer's refills walked cold records).  A full
 * cache gives back exactly WEFT__RECORD_BATCH records, which is what a
 * refill asks for; a chunk is put as runs of a batch, and the trim's
 * rebuild of the list measures its first runs again.
 * A change to the list that is not a put at its front (the trim's
 * rebuild, a foreign cache's records added at the runtime's end)
 * forgets the runs; WEFT_DEBUG builds check each run they take whole.
 *
 * Foreign caches.  A thread that is not a worker of the runtime (a plain
 * thread spawning into a retained group: B3 "external", a portal's
 * foreign thread, a worker of another runtime) has no worker cache; it
 * took the arena's lock for every record.  Now it keeps up to one batch
 * of one runtime's free records in a cache of its own, in TLS
 * (weft__record_fcache), and takes the lock once per batch.  A record in
 * such a cache must neither leak nor outlive its runtime, and TLS is not
 * tied to a runtime: the thread may outlive the runtime, use several, or
 * see a new runtime at a destroyed one's address.  So:
 *   - every cache that holds a runtime's records is listed on that
 *     runtime's arena (`foreign`), and the list and each cache's `rt`
 *     change only under one process-wide lock (fcache_lock, an outer
 *     lock: the arena's is taken inside it);
 *   - weft_runtime_destroy (weft__record_arena_fini) takes the records
 *     of every listed cache back and sets its rt to NULL, so no cache
 *     names a destroyed runtime, and a new runtime at the same address
 *     is never mistaken for it;
 *   - a thread's exit returns its cache's records to their arena (a
 *     pthread key's destructor; a thread that never exits, such as the
 *     main thread leaving through exit(), keeps them until the runtime
 *     is destroyed, which takes them back);
 *   - a thread that asks for another runtime's record first returns
 *     the cached ones to theirs.
 * The owner's fast path reads its cache's rt without the lock (relaxed,
 * an atomic because a destroyer may write it): seeing its own runtime
 * there, it uses head and n, which only the owner touches while the
 * runtime lives; a destroyer writes them only when the owner cannot be
 * using that runtime any more (a thread still calling into a runtime
 * that is being destroyed would use freed memory anyway: weft/runtime.h,
 * rt is invalid after weft_runtime_destroy), after the owner's
 * last spawn reached it through the spawned task's run and the join that
 * ended the runtime's last root.  Freed records do not go to the foreign
 * cache: a plain thread that drops a task's last reference puts it in
 * the arena, as before (rare, and it keeps head's only writers the
 * get path and the destroyer).
 */

/* Records per chunk: the header, then records. */
#define CHUNK_NREC                                                             \
	((WEFT__RECORD_CHUNK_BYTES - sizeof(struct weft__record_chunk)) /      \
		sizeof(struct weft_task))
/* The least time between two trim passes, and the window over which a
 * pass looks for records the workload did not need. */
#define TRIM_WINDOW_NS ((int64_t)1000 * 1000 * 1000)

int weft__record_arena_init(struct weft__record_arena *a)
{
	int rc = pthread_mutex_init(&a->lock, NULL);
	if (rc != 0)
		return -rc;
	a->free = NULL;
	a->nfree = 0;
	a->seg_top = a->nseg = 0;
	atomic_init(&a->chunks, NULL);
	a->sorted = NULL;
	a->nchunks = a->sorted_cap = 0;
	a->released = NULL;
	a->puts_since_trim = 0;
	a->low_free = 0;
	a->trim_at = weft__timer_real_now();
	a->trim_settled = false;
	atomic_init(&a->resident, 0);
	atomic_init(&a->released_total, 0);
	a->foreign = NULL;
	atomic_init(&a->foreign_refills, 0);
	return 0;
}

/* The page-aligned part of c's records: what a release gives back. */
static void record_chunk_pages(struct weft__record_chunk *c, char **lo,
	size_t *len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t b = ((uintptr_t)c->recs + page - 1) & ~(page - 1);
	uintptr_t e = (uintptr_t)(c->recs + c->nrec) & ~(page - 1);
	*lo = (char *)b;
	*len = e > b ? e - b : 0;
}

/* Links c's records into one free list (poisoned: they are free) and
 * returns its head; *tail receives its last record. */
static void *record_chunk_link(struct weft__record_chunk *c, void **tail)
{
	for (size_t i = 0; i < c->nrec; i++) {
		struct weft_task *t = &c->recs[i];
		*(void **)t = i + 1 < c->nrec ? &c->recs[i + 1] : NULL;
		weft__record_task_poison(t);
	}
	*tail = &c->recs[c->nrec - 1];
	return c->recs;
}

/* A new chunk, its records initialised for their first life, or NULL. */
static struct weft__record_chunk *record_chunk_new(void)
{
	struct weft__record_chunk *c = weft__calloc(1,
		WEFT__RECORD_CHUNK_BYTES);
	if (c == NULL)
		return NULL;
	c->recs = (struct weft_task *)(void *)(c + 1);
	c->nrec = CHUNK_NREC;
	weft__record_tag_check(c->recs + c->nrec);
	for (size_t i = 0; i < c->nrec; i++) {
		struct weft_task *t = &c->recs[i];
		/* Generation and user references: never cleared by the reuse
		 * of a record (the generation must survive it, records.h).
		 * Generation 1, not 0: a released chunk reads as zeros (see
		 * the top of this section). */
		atomic_init(&t->gen, 1);
		atomic_init(&t->handles, 0);
		/* The insp_* block is written atomically from now on. */
		atomic_init(&t->insp_id, 0);
		atomic_init(&t->park, 0);
		atomic_init(&t->insp_wait, NULL);
		atomic_init(&t->lock_wait, 0); /* sync/lock.c */
		atomic_init(&t->insp_on, NULL);
		atomic_init(&t->insp_since, 0);
		atomic_init(&t->insp_run, 0);
		atomic_init(&t->insp_pin, 0);
		atomic_init(&t->done_cbs, NULL);
		atomic_init(&t->name_lit, NULL);
	}
	return c;
}

/* Re-initialises the records of released chunk c for new lives.  Stores,
 * not init: scanners may be reading them (they read insp_id, 0 all
 * along, first).  relaxed: the chunk goes back on the free list under
 * the arena's lock, whose release orders these before any taker. */
static void record_chunk_reuse(struct weft__record_chunk *c)
{
	for (size_t i = 0; i < c->nrec; i++) {
		struct weft_task *t = &c->recs[i];
		weft__record_unpoison(t, sizeof *t);
		atomic_store_explicit(&t->gen, c->gen_floor,
			memory_order_relaxed);
		atomic_store_explicit(&t->handles, 0, memory_order_relaxed);
		atomic_store_explicit(&t->insp_id, 0, memory_order_relaxed);
		atomic_store_explicit(&t->park,
			c->park_floor << WEFT__PARK_GEN_SHIFT,
			memory_order_relaxed);
		atomic_store_explicit(&t->insp_wait, NULL,
			memory_order_relaxed);
		atomic_store_explicit(&t->lock_wait, 0, memory_order_relaxed);
		atomic_store_explicit(&t->insp_on, NULL, memory_order_relaxed);
		atomic_store_explicit(&t->insp_since, 0, memory_order_relaxed);
		atomic_store_explicit(&t->insp_run, 0, memory_order_relaxed);
		atomic_store_explicit(&t->insp_pin, 0, memory_order_relaxed);
		atomic_store_explicit(&t->done_cbs, NULL, memory_order_relaxed);
		atomic_store_explicit(&t->name_lit, NULL, memory_order_relaxed);
	}
}

/* Inserts c into a's chunks by address.  Under a's lock. */
static int record_sorted_insert(struct weft__record_arena *a,
	struct weft__record_chunk *c)
{
	if (a->nchunks == a->sorted_cap) {
		size_t cap = a->sorted_cap ? 2 * a->sorted_cap : 16;
		struct weft__record_chunk **s = weft__alloc(cap * sizeof *s);
		if (s == NULL)
			return -ENOMEM;
		if (a->nchunks)
			memcpy(s, a->sorted, a->nchunks * sizeof *s);
		weft__free(a->sorted);
		a->sorted = s;
		a->sorted_cap = cap;
	}
	size_t i = a->nchunks;
	while (i > 0 && (uintptr_t)a->sorted[i - 1] > (uintptr_t)c) {
		a->sorted[i] = a->sorted[i - 1];
		i--;
	}
	a->sorted[i] = c;
	a->nchunks++;
	return 0;
}

/* The index in a->sorted of the chunk holding record p.  Under lock. */
static size_t record_chunk_index(struct weft__record_arena *a, const void *p)
{
	size_t lo = 0, hi = a->nchunks; /* answer in [lo, hi) */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uintptr_t)a->sorted[mid] <= (uintptr_t)p)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Segments: n records ending at tail were put at the front of a's free
 * list.  The oldest known segment is forgotten when the ring is full.
 * Under a's lock. */
static inline void record_seg_push(struct weft__record_arena *a, void *tail,
	size_t n)
{
	a->seg_top = (a->seg_top + 1) % WEFT__RECORD_SEGS;
	a->segs[a->seg_top] = (struct weft__record_seg){ tail, n };
	if (a->nseg < WEFT__RECORD_SEGS)
		a->nseg++;
}

/* The free list's first segment was taken whole.  Under a's lock. */
static inline void record_seg_pop(struct weft__record_arena *a)
{
	a->seg_top = (a->seg_top + WEFT__RECORD_SEGS - 1) % WEFT__RECORD_SEGS;
	a->nseg--;
}

/* The free list is empty: puts a released chunk's records, or a new
 * chunk's, on it.  Under a's lock, which a new chunk's allocation drops
 * for a while.  0 or -ENOMEM. */
static int record_arena_fill(struct weft__record_arena *a)
{
	struct weft__record_chunk *c = a->released;
	void *head, *tail;
	if (c != NULL) {
		a->released = c->next_released;
		c->released = false;
		record_chunk_reuse(c);
		char *lo;
		size_t len;
		record_chunk_pages(c, &lo, &len);
		/* relaxed: a counter (records.h), under the lock. */
		atomic_store_explicit(&a->resident,
			atomic_load_explicit(&a->resident,
				memory_order_relaxed) +
				len,
			memory_order_relaxed);
	} else {
		pthread_mutex_unlock(&a->lock);
		c = record_chunk_new();
		pthread_mutex_lock(&a->lock);
		if (c == NULL)
			return -ENOMEM;
		if (record_sorted_insert(a, c) < 0) {
			weft__free(c);
			return -ENOMEM;
		}
		/* relaxed: `chunks` is only written under the lock, held. */
		c->next = atomic_load_explicit(&a->chunks,
			memory_order_relaxed);
		/* release: pairs with weft__record_arena_first's acquire. */
		atomic_store_explicit(&a->chunks, c, memory_order_release);
		/* relaxed: a counter, under the lock. */
		atomic_store_explicit(&a->resident,
			atomic_load_explicit(&a->resident,
				memory_order_relaxed) +
				WEFT__RECORD_CHUNK_BYTES,
			memory_order_relaxed);
	}
	head = record_chunk_link(c, &tail);
	*(void **)tail = a->free;
	a->free = head;
	a->nfree += c->nrec;
	/* Its runs of a batch, the last first so that the first is on top
	 * (its records are linked in address order): a refill takes a
	 * batch whole instead of walking it. */
	size_t n = c->nrec % WEFT__RECORD_BATCH;
	if (n == 0)
		n = WEFT__RECORD_BATCH;
	for (size_t end = c->nrec; end > 0; end -= n, n = WEFT__RECORD_BATCH)
		record_seg_push(a, &c->recs[end - 1], n);
	return 0;
}

/* Whether a's free list starts with a record's first life (generation 1,
 * never handed out).  That is where one-by-one allocation used to happen:
 * in WEFT_DEBUG builds it is still a fault-injection point, one record at
 * a time (record_arena_take), so that the failure paths of a task's
 * creation stay testable (tests/test_combine.c, test_net.c) although
 * records come in chunks.  Under a's lock, the list not empty. */
static inline bool record_fresh_head(struct weft__record_arena *a)
{
	/* relaxed: a free record's generation, under the lock. */
	return atomic_load_explicit(&((struct weft_task *)a->free)->gen,
		       memory_order_relaxed) == 1;
}

/* Takes up to max records off a's free list (filling it when empty) as a
 * list; *n receives how many.  Under a's lock.  NULL: -ENOMEM. */
static void *record_arena_take(struct weft__record_arena *a, unsigned max,
	unsigned *n)
{
	*n = 0;
	if (a->free == NULL && record_arena_fill(a) < 0)
		return NULL;
#ifdef WEFT_DEBUG
	if (record_fresh_head(a)) {
		void *probe = weft__alloc(1);
		if (probe == NULL)
			return NULL;
		weft__free(probe);
		max = 1;
	}
#endif
	/* Whole known segments first, without following their links (see
	 * "Segments"); a walk only when none fits, which stays inside the
	 * first known segment if there is one (it is longer than max). */
	void *head = a->free, *tail = NULL;
	unsigned k = 0;
	while (a->nseg > 0 && k + a->segs[a->seg_top].n <= max) {
		const struct weft__record_seg *s = &a->segs[a->seg_top];
#ifdef WEFT_DEBUG
		/* The bookkeeping checked: the segment is what it says. */
		void *p = tail ? *(void **)tail : head;
		for (size_t i = 1; i < s->n; i++)
			p = *(void **)p;
		WEFT_ASSERT(p == s->tail, "task arena: a segment's tail moved");
#endif
		tail = s->tail;
		k += (unsigned)s->n;
		record_seg_pop(a);
	}
	void *next = tail ? *(void **)tail : head;
	if (k == 0 && next != NULL) {
		unsigned walked = 1;
		tail = next;
		for (; k + walked < max && *(void **)tail; walked++)
			tail = *(void **)tail;
		k += walked;
		if (a->nseg > 0)
			a->segs[a->seg_top].n -= walked; /* still > 0 */
	}
	a->free = *(void **)tail;
	a->nfree -= k;
	if (a->nfree < a->low_free)
		a->low_free = a->nfree;
	*(void **)tail = NULL;
	*n = k;
	return head;
}

static pthread_mutex_t fcache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fcache_once = PTHREAD_ONCE_INIT;
static pthread_key_t fcache_key;
static bool fcache_key_ok;
/* Zero-initialised: rt NULL, empty.  Only its owner thread uses it but
 * for the destroyer (see above). */
static __thread struct weft__record_fcache fcache;

/* Unlists c and hands its records to `head`'s list *free (+ *nfree);
 * returns the last of them (NULL: there were none), which with the count
 * they added to *nfree makes them a segment.  Under fcache_lock; the
 * caller holds the arena's lock or is its destroyer. */
static void *record_fcache_take(struct weft__record_fcache *c, void **free,
	size_t *nfree)
{
	void *tail = c->head;
	if (c->head != NULL) {
		while (*(void **)tail != NULL)
			tail = *(void **)tail;
		*(void **)tail = *free;
		*free = c->head;
		*nfree += c->n;
	}
	c->head = NULL;
	c->n = 0;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	c->next = NULL;
	c->pprev = NULL;
	/* relaxed: under fcache_lock; the owner's unlocked read of its own
	 * rt is explained at the top of this section. */
	atomic_store_explicit(&c->rt, NULL, memory_order_relaxed);
	return tail;
}

/* Returns c's records to their runtime's arena and unlists c.  Under
 * fcache_lock, c listed (its rt alive: a destroyer would have unlisted
 * it). */
static void record_fcache_return(struct weft__record_fcache *c)
{
	/* relaxed: under fcache_lock. */
	struct weft_runtime *rt = atomic_load_explicit(&c->rt,
		memory_order_relaxed);
	struct weft__record_arena *a = &rt->tasks;
	pthread_mutex_lock(&a->lock);
	/* A put at the front, measured: a segment ("Segments"), so that
	 * the runs after it stay known.  Forgetting them made every refill
	 * after a foreign thread's exit walk the free list record by record
	 * (B3 external: a thread per round, whose exit came before the
	 * next round's refills from a list of cold records). */
	size_t n = c->n;
	void *tail = record_fcache_take(c, &a->free, &a->nfree);
	if (tail != NULL)
		record_seg_push(a, tail, n);
	pthread_mutex_unlock(&a->lock);
}

/* The pthread key's destructor: the thread is exiting. */
static void record_fcache_exit(void *p)
{
	struct weft__record_fcache *c = p;
	pthread_mutex_lock(&fcache_lock);
	/* relaxed: under fcache_lock. */
	if (atomic_load_explicit(&c->rt, memory_order_relaxed) != NULL)
		record_fcache_return(c);
	pthread_mutex_unlock(&fcache_lock);
}

static void record_fcache_once(void)
{
	fcache_key_ok = pthread_key_create(&fcache_key, record_fcache_exit) ==
		0;
}

/* Lists the calling thread's cache c on rt's arena, returning the records
 * it holds of another runtime first.  false if the thread's exit could
 * not be hooked (no key: then records are taken one at a time). */
static bool record_fcache_switch(struct weft__record_fcache *c,
	struct weft_runtime *rt)
{
	pthread_once(&fcache_once, record_fcache_once);
	if (!fcache_key_ok || pthread_setspecific(fcache_key, c) != 0)
		return false;
	pthread_mutex_lock(&fcache_lock);
	/* relaxed: under fcache_lock. */
	if (atomic_load_explicit(&c->rt, memory_order_relaxed) != NULL)
		record_fcache_return(c);
	struct weft__record_arena *a = &rt->tasks;
	c->next = a->foreign;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &a->foreign;
	a->foreign = c;
	/* relaxed: under fcache_lock. */
	atomic_store_explicit(&c->rt, rt, memory_order_relaxed);
	pthread_mutex_unlock(&fcache_lock);
	return true;
}

/* A record from the calling thread's foreign cache for rt, refilled with
 * a batch from the arena when empty.  NULL with *usable false: no cache
 * can be used (the caller takes one record from the arena); NULL with
 * *usable true: out of memory. */
static struct weft_task *record_fcache_get(struct weft_runtime *rt,
	bool *usable)
{
	struct weft__record_fcache *c = &fcache;
	/* relaxed: see the top of this section. */
	*usable = atomic_load_explicit(&c->rt, memory_order_relaxed) == rt ||
		record_fcache_switch(c, rt);
	if (!*usable)
		return NULL;
	if (c->head == NULL) {
		struct weft__record_arena *a = &rt->tasks;
		pthread_mutex_lock(&a->lock);
		c->head = record_arena_take(a, WEFT__RECORD_BATCH, &c->n);
		/* A batch (not a single first life: record_fresh_head).
		 * relaxed: a counter, under the lock. */
		if (c->n > 1)
			atomic_store_explicit(&a->foreign_refills,
				atomic_load_explicit(&a->foreign_refills,
					memory_order_relaxed) +
					1,
				memory_order_relaxed);
		pthread_mutex_unlock(&a->lock);
		if (c->head == NULL)
			return NULL;
	}
	struct weft_task *t = c->head;
	c->head = *(void **)t;
	c->n--;
	/* The next record, for writing: its link is the load above at the
	 * next spawn, a cache miss when a worker freed it on another CPU
	 * (B3 external), and its creation writes most of its lines.  The
	 * whole record, not only the link's line: the creation's stores
	 * otherwise missed one line after the other, and the spawn's first
	 * locked instruction (the group's credit) waited for them all (the
	 * producer's hottest sample in B3 external at 2 workers). */
	if (c->head != NULL)
		for (size_t off = 0; off < sizeof *t; off += 64)
			__builtin_prefetch((char *)c->head + off, 1);
	weft__record_unpoison(t, sizeof *t);
	return t;
}

void weft__record_arena_fini(struct weft__record_arena *a)
{
	/* Records in foreign caches come back first (no cache may name
	 * this runtime once it is gone).  fcache_lock orders this against
	 * the owners' exits and switches. */
	pthread_mutex_lock(&fcache_lock);
	while (a->foreign != NULL)
		record_fcache_take(a->foreign, &a->free, &a->nfree);
	a->nseg = 0; /* as in record_fcache_return */
	pthread_mutex_unlock(&fcache_lock);
	/* Every record should be free now: on the free list or in a released
	 * chunk.  If one is not (still referenced), every chunk is left
	 * allocated, a leak the allocator's census reports, rather than a
	 * use after free. */
	size_t total = 0, free = a->nfree;
	struct weft__record_chunk *c;
	for (c = atomic_load_explicit(&a->chunks, memory_order_relaxed); c;
		c = c->next) {
		total += c->nrec;
		if (c->released)
			free += c->nrec;
	}
	if (free == total) {
		c = atomic_load_explicit(&a->chunks, memory_order_relaxed);
		while (c != NULL) {
			struct weft__record_chunk *next = c->next;
			/* The allocator may write into what it gets back. */
			weft__record_unpoison(c, WEFT__RECORD_CHUNK_BYTES);
			weft__free(c);
			c = next;
		}
	}
	weft__free(a->sorted);
	a->free = NULL;
	pthread_mutex_destroy(&a->lock);
}

size_t weft__record_arena_trim(struct weft__record_arena *a, int64_t *retry)
{
	*retry = 0;
	if (pthread_mutex_trylock(&a->lock) != 0)
		return 0;
	/* Nothing to give back: less than a chunk free, or the last pass
	 * could take every free record and none came back since. */
	if (a->nfree < CHUNK_NREC ||
		(a->trim_settled && a->puts_since_trim == 0)) {
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	int64_t now = weft__timer_real_now();
	if (now - a->trim_at < TRIM_WINDOW_NS) {
		*retry = a->trim_at + TRIM_WINDOW_NS;
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	/* Records that stayed free all window: at most this many go. */
	size_t budget = a->low_free;
	a->trim_settled = budget >= a->nfree;
	a->trim_at = now;
	a->puts_since_trim = 0;
	for (size_t i = 0; i < a->nchunks; i++)
		a->sorted[i]->trim_count = 0;
	for (void *p = a->free; p; p = *(void **)p)
		a->sorted[record_chunk_index(a, p)]->trim_count++;
	size_t released = 0;
	for (size_t i = 0; i < a->nchunks; i++) {
		struct weft__record_chunk *c = a->sorted[i];
		if (c->trim_count != c->nrec || c->nrec > budget) {
			c->trim_count = 0; /* not released by this pass */
			continue;
		}
		budget -= c->nrec;
		/* All free: the generations the next lives start from, above
		 * every one its records had (relaxed: free records; their
		 * last writers' frees are ordered before us by this lock). */
		uint32_t gen = 0;
		uint64_t park = 0;
		for (size_t k = 0; k < c->nrec; k++) {
			uint32_t g = atomic_load_explicit(&c->recs[k].gen,
				memory_order_relaxed);
			uint64_t pg = atomic_load_explicit(&c->recs[k].park,
					      memory_order_relaxed) >>
				WEFT__PARK_GEN_SHIFT;
			gen = g > gen ? g : gen;
			park = pg > park ? pg : park;
		}
		c->gen_floor = gen + 1;
		c->park_floor = park;
		c->released = true;
		c->next_released = a->released;
		a->released = c;
		released++;
	}
	if (released > 0) {
		/* The free list without the released chunks' records.  Its
		 * segments are forgotten (records left them) and measured
		 * again: a batch each, from the front, as many as the ring
		 * holds (without them every refill would walk the rebuilt
		 * list, records freed long ago, record by record). */
		/* The ring is filled front first: the first run on top, at
		 * WEFT__RECORD_SEGS - 1, the next below it. */
		a->nseg = 0;
		a->seg_top = WEFT__RECORD_SEGS - 1;
		size_t kept = 0;
		void **link = &a->free;
		for (void *p = a->free; p; p = *(void **)p) {
			if (a->sorted[record_chunk_index(a, p)]->released) {
				a->nfree--;
				continue;
			}
			*link = p;
			link = (void **)p;
			if (++kept % WEFT__RECORD_BATCH == 0 &&
				a->nseg < WEFT__RECORD_SEGS)
				a->segs[WEFT__RECORD_SEGS - 1 -
					a->nseg++] = (struct weft__record_seg){
					p, WEFT__RECORD_BATCH
				};
		}
		*link = NULL;
		/* Now the pages (the rebuild above read the links in them):
		 * the chunks released by this pass are those all counted. */
		for (size_t i = 0; i < a->nchunks; i++) {
			struct weft__record_chunk *c = a->sorted[i];
			if (c->trim_count != c->nrec)
				continue;
			char *lo;
			size_t len;
			record_chunk_pages(c, &lo, &len);
			if (len != 0)
				(void)madvise(lo, len, MADV_DONTNEED);
			/* relaxed: a counter, under the lock. */
			atomic_store_explicit(&a->resident,
				atomic_load_explicit(&a->resident,
					memory_order_relaxed) -
					len,
				memory_order_relaxed);
		}
		atomic_store_explicit(&a->released_total,
			atomic_load_explicit(&a->released_total,
				memory_order_relaxed) +
				released,
			memory_order_relaxed);
	}
	a->low_free = a->nfree;
	if (!a->trim_settled)
		*retry = now + TRIM_WINDOW_NS;
	pthread_mutex_unlock(&a->lock);
	return released;
}

/* Puts the n free records head..tail (linked through their first word)
 * on a's free list. */
static void record_arena_splice(struct weft__record_arena *a, void *head,
	void *tail, size_t n)
{
	pthread_mutex_lock(&a->lock);
	*(void **)tail = a->free;
	a->free = head;
	a->nfree += n;
	a->puts_since_trim += n;
	record_seg_push(a, tail, n);
	pthread_mutex_unlock(&a->lock);
}

static void record_arena_put_list(struct weft__record_arena *a, void *head)
{
	if (head == NULL)
		return;
	void *tail = head;
	size_t n = 1;
	for (; *(void **)tail != NULL; n++)
		tail = *(void **)tail;
	record_arena_splice(a, head, tail, n);
}

/* Cache empty (or not a worker of rt): a batch of free records from the
 * arena into the worker's cache (or the thread's foreign cache). */
struct weft_task *weft__record_task_get_slow(struct weft_runtime *rt,
	weft__worker_t *w)
{
	struct weft__record_arena *a = &rt->tasks;
	struct weft_task *t;
	if (w == NULL) {
		bool usable;
		t = record_fcache_get(rt, &usable);
		if (t != NULL || usable)
			return t;
	}
	pthread_mutex_lock(&a->lock);
	unsigned n;
	t = record_arena_take(a, w ? WEFT__RECORD_BATCH : 1, &n);
	pthread_mutex_unlock(&a->lock);
	if (t == NULL)
		return NULL;
	/* The rest of the batch into the cache (empty). */
	if (n > 1) {
		w->records.head[WEFT__RECORD_TASK] = *(void **)t;
		w->records.len[WEFT__RECORD_TASK] = n - 1;
	}
	weft__record_unpoison(t, sizeof *t);
	return t;
}

/* Slow path of weft__record_task_put: a plain thread, a worker of another
 * runtime, or a full cache (then t and its newest WEFT__RECORD_BATCH - 1
 * records go to the arena, one batch).  t is poisoned already; rt is its runtime. */
void weft__record_task_put_slow(struct weft_runtime *rt, weft__worker_t *w,
	struct weft_task *t)
{
	void *head = t, *tail = t;
	size_t n = 1;
	if (w != NULL && w->rt == rt) {
		/* t and the newest WEFT__RECORD_BATCH - 1: one batch, which
		 * a refill then takes whole ("Segments"). */
		*(void **)t = w->records.head[WEFT__RECORD_TASK];
		for (; n < WEFT__RECORD_BATCH; n++)
			tail = *(void **)tail;
		w->records.head[WEFT__RECORD_TASK] = *(void **)tail;
		w->records.len[WEFT__RECORD_TASK] -= WEFT__RECORD_BATCH - 1;
	}
	record_arena_splice(&rt->tasks, head, tail, n);
}

/* }======================================================= */

void weft__record_cache_drain(weft__worker_t *w)
{
	/* Task records go back to the arena, not to malloc: the I/O thread
	 * may still wake an ended task's park (ioop.c) until it stops, after
	 * the workers (type-stable records, records.h). */
	record_arena_put_list(&w->rt->tasks,
		w->records.head[WEFT__RECORD_TASK]);
	w->records.head[WEFT__RECORD_TASK] = NULL;
	/* Group records to the pool, for the same reason and for handle
	 * checks (records.h): the runtime's destroyer frees them. */
	for (int k = 0; k < WEFT__RECORD_KINDS; k++) {
		void *head = w->records.head[k];
		if (head != NULL) {
			void *tail = head;
			while (*(void **)tail)
				tail = *(void **)tail;
			weft__record_pool_t *pool = &w->rt->records;
			pthread_mutex_lock(&pool->lock);
			*(void **)tail = pool->loose[k];
			pool->loose[k] = head;
			pthread_mutex_unlock(&pool->lock);
		}
		w->records.head[k] = NULL;
		w->records.len[k] = 0;
	}
}

/* {======================================================= handles */

/* Whether weft__misuse aborts.  Relaxed: a diagnostic switch, not an
 * order between threads. */
#ifdef WEFT_DEBUG
static atomic_bool misuse_abort = true;
#else
static atomic_bool misuse_abort = false;
#endif

bool weft__misuse_set_abort(bool on)
{
	return atomic_exchange_explicit(&misuse_abort, on,
		memory_order_relaxed);
}

void weft__misuse(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* relaxed: see misuse_abort. */
	if (!atomic_load_explicit(&misuse_abort, memory_order_relaxed))
		return;
	weft__diag("%s (API misuse; aborting)", buf);
	abort();
}

/* A stale record's name, copied with atomic word loads (a new life may
 * be writing it: weft__task_name_store). */
static void record_task_name(const struct weft_task *t, char *out)
{
	const uint64_t *src = (const uint64_t *)(const void *)t->name;
	for (size_t i = 0; i < WEFT__TASK_NAME_MAX / sizeof(uint64_t); i++) {
		/* relaxed: diagnostics only. */
		uint64_t x = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
		memcpy(out + i * sizeof x, &x, sizeof x);
	}
	out[WEFT__TASK_NAME_MAX - 1] = '\0';
}

void weft__task_misuse(const weft_task_t *h, const char *call, const char *what)
{
	struct weft_task *t = weft__handle_addr(h);
	char name[WEFT__TASK_NAME_MAX];
	record_task_name(t, name);
	/* t->id: written once at creation, before the handle was given
	 * out; the handle is current (checked by the caller). */
	weft__misuse("%s: task handle %p (task '%s'#%llu) %s", call,
		(const void *)h, name, (unsigned long long)t->id, what);
}

struct weft_task *weft__task_stale(const weft_task_t *h, const char *call)
{
	if (h == NULL)
		return NULL;
	struct weft_task *t = weft__handle_addr(h);
	char name[WEFT__TASK_NAME_MAX];
	record_task_name(t, name);
	/* relaxed: diagnostics only. */
	weft__misuse("%s: task handle %p (task '%s') is stale: its task ended "
		     "and every reference to it was released (released more "
		     "often than retained, or used after its release; record "
		     "generation %u, handle %u)",
		call, (const void *)h, name,
		(unsigned)(uint16_t)atomic_load_explicit(&t->gen,
			memory_order_relaxed),
		(unsigned)((uintptr_t)h >> WEFT__HANDLE_TAG_SHIFT));
	return NULL;
}

struct weft_group *weft__group_stale(const weft_group_t *h, const char *call)
{
	if (h == NULL)
		return NULL;
	struct weft_group *g = weft__handle_addr(h);
	weft__misuse("%s: group handle %p is stale: the group was joined and "
		     "freed (used after weft_group_join without a "
		     "weft_group_retain, or after its last "
		     "weft_group_release; record generation %u, handle %u)",
		call, (const void *)h,
		(unsigned)(uint16_t)atomic_load_explicit(&g->gen,
			memory_order_relaxed),
		(unsigned)((uintptr_t)h >> WEFT__HANDLE_TAG_SHIFT));
	return NULL;
}

/* }======================================================= */
