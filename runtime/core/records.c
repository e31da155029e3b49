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
 *                (task_wake_claim reads it, finds another generation and
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
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/diag.h"
#include "core/group.h"
#include "core/records.h"
#include "core/sched.h"
#include "core/task.h"
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
 * operations), plus one comparison of the runtime. */

int weft__record_arena_init(struct weft__record_arena *a)
{
	int rc = pthread_mutex_init(&a->lock, NULL);
	if (rc != 0)
		return -rc;
	a->free = NULL;
	a->nfree = 0;
	atomic_init(&a->all, NULL);
	return 0;
}

void weft__record_arena_fini(struct weft__record_arena *a)
{
	record_free_list(WEFT__RECORD_TASK, a->free);
	a->free = NULL;
	pthread_mutex_destroy(&a->lock);
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
 * arena into the worker's cache, or a new record. */
struct weft_task *weft__record_task_get_slow(struct weft_runtime *rt,
	weft__worker_t *w)
{
	struct weft__record_arena *a = &rt->tasks;
	pthread_mutex_lock(&a->lock);
	struct weft_task *t = a->free;
	if (t) {
		a->free = *(void **)t;
		a->nfree--;
		/* Refill the cache (empty, or we are not rt's worker). */
		for (unsigned i = 1; w && i < WEFT__RECORD_BATCH && a->free;
			i++) {
			void *p = a->free;
			a->free = *(void **)p;
			a->nfree--;
			*(void **)p = w->records.head[WEFT__RECORD_TASK];
			w->records.head[WEFT__RECORD_TASK] = p;
			w->records.len[WEFT__RECORD_TASK]++;
		}
		pthread_mutex_unlock(&a->lock);
		weft__record_unpoison(t, sizeof *t);
		return t;
	}
	pthread_mutex_unlock(&a->lock);
	t = weft__alloc(sizeof *t);
	if (t == NULL)
		return NULL;
	weft__record_tag_check(t);
	/* Generation and user references: never cleared by the reuse of a
	 * record (the generation must survive it, records.h). */
	atomic_init(&t->gen, 0);
	atomic_init(&t->handles, 0);
	/* A new record joins the list of all records.  Its insp_* block is
	 * written atomically from now on; insp_all_next is written once,
	 * here, before the release store that publishes the record. */
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
	t->insp_all_next = NULL;
	pthread_mutex_lock(&a->lock);
	/* relaxed: `all` is only written under the lock, held. */
	t->insp_all_next = atomic_load_explicit(&a->all, memory_order_relaxed);
	/* release: pairs with the acquire in a snapshot's scan. */
	atomic_store_explicit(&a->all, t, memory_order_release);
	pthread_mutex_unlock(&a->lock);
	return t;
}

/* Slow path of weft__record_task_put: a plain thread, a worker of another
 * runtime, or a full cache (then its newest WEFT__RECORD_BATCH records go
 * to the arena with t).  t is poisoned already; rt is its runtime. */
void weft__record_task_put_slow(struct weft_runtime *rt, weft__worker_t *w,
	struct weft_task *t)
{
	void *head = t, *tail = t;
	size_t n = 1;
	if (w != NULL && w->rt == rt) {
		*(void **)t = w->records.head[WEFT__RECORD_TASK];
		for (; n < WEFT__RECORD_BATCH + 1; n++)
			tail = *(void **)tail;
		w->records.head[WEFT__RECORD_TASK] = *(void **)tail;
		w->records.len[WEFT__RECORD_TASK] -= WEFT__RECORD_BATCH;
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
