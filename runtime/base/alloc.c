/* Counting allocator with fault injection (see alloc.h).
 *
 * Counting and injection exist only in builds with WEFT_DEBUG (every test
 * build): the counters are process-wide atomics, and on the spawn path of a
 * release build their cache lines would bounce between workers on every
 * task (~220 ns per transfer between the two vCPUs measured here).  Release
 * builds call malloc/free directly.
 *
 * In debug builds each block carries a 16-byte header holding its size, so
 * frees can be counted without the caller passing sizes; 16 keeps malloc's
 * alignment guarantee.
 *
 * Site coverage (debug builds): the allocation macros of alloc.h pass the
 * caller's file and line, and each injected failure is charged to its site
 * in a small table (alloc_sites).  A test sweeps scenarios over every
 * allocation they make and then asks which sites of the source were never
 * failed: a site whose failure path no test has run shows up by name. */
#include "base/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/debug.h"

#define ALLOC_HEADER 16

/* All counters: relaxed.  They order nothing; tests read them after every
 * thread has been joined, which provides the happens-before edge. */
static atomic_long alloc_live_bytes;
static atomic_long alloc_live_count;
static atomic_long census[WEFT__CENSUS_COUNT];
/* 0 = injection off; otherwise the number of allocations still allowed to
 * succeed plus one (the allocation that takes it from 1 to 0 fails). */
static atomic_long alloc_fail_countdown;
static atomic_long alloc_injected_failures;

/* The sites failed so far, in the order first failed.  Guarded by
 * alloc_sites_lock: it is taken only when a failure is injected (once per
 * weft_debug_fail_alloc) and by the reader, never on a successful
 * allocation.  More sites than the table holds are counted in
 * alloc_sites_dropped and make the reader report the excess. */
#define ALLOC_SITES_MAX 256
static pthread_mutex_t alloc_sites_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__alloc_site alloc_sites[ALLOC_SITES_MAX];
static size_t alloc_sites_count;
static size_t alloc_sites_dropped;

__attribute__((unused)) static void alloc_site_failed(const char *file,
	int line)
{
	pthread_mutex_lock(&alloc_sites_lock);
	size_t i;
	for (i = 0; i < alloc_sites_count; i++)
		if (alloc_sites[i].line == line &&
			(alloc_sites[i].file == file ||
				(file != NULL && alloc_sites[i].file != NULL &&
					strcmp(alloc_sites[i].file, file) ==
						0)))
			break;
	if (i < alloc_sites_count) {
		alloc_sites[i].failures++;
	} else if (i < ALLOC_SITES_MAX) {
		alloc_sites[i] = (struct weft__alloc_site){ file, line, 1 };
		alloc_sites_count++;
	} else {
		alloc_sites_dropped++;
	}
	pthread_mutex_unlock(&alloc_sites_lock);
}

size_t weft__alloc_failed_sites(struct weft__alloc_site *out, size_t max)
{
	pthread_mutex_lock(&alloc_sites_lock);
	size_t n = alloc_sites_count;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = alloc_sites[i];
	n += alloc_sites_dropped;
	pthread_mutex_unlock(&alloc_sites_lock);
	return n;
}

__attribute__((unused)) static int alloc_should_fail(void)
{
	/* relaxed (this load, the CAS and the add below): a countdown; the
	 * CAS's atomicity alone makes exactly one allocation take it to 0. */
	long n = atomic_load_explicit(&alloc_fail_countdown,
		memory_order_relaxed);
	while (n > 0) {
		if (atomic_compare_exchange_weak_explicit(&alloc_fail_countdown,
			    &n, n - 1, memory_order_relaxed,
			    memory_order_relaxed)) {
			if (n == 1) {
				atomic_fetch_add_explicit(
					&alloc_injected_failures, 1,
					memory_order_relaxed);
				return 1;
			}
			return 0;
		}
	}
	return 0;
}

__attribute__((unused)) static void *alloc_raw(size_t size)
{
	if (size > SIZE_MAX - ALLOC_HEADER)
		return NULL;
	unsigned char *p = malloc(size + ALLOC_HEADER);
	if (p == NULL)
		return NULL;
	memcpy(p, &size, sizeof size);
	/* relaxed: counters (see their declaration). */
	atomic_fetch_add_explicit(&alloc_live_bytes, (long)size,
		memory_order_relaxed);
	atomic_fetch_add_explicit(&alloc_live_count, 1, memory_order_relaxed);
	return p + ALLOC_HEADER;
}

#ifdef WEFT_DEBUG

/* The functions below define what alloc.h's macros call. */
#undef weft__alloc
#undef weft__calloc

void *weft__alloc_at(size_t size, const char *file, int line)
{
	if (alloc_should_fail()) {
		alloc_site_failed(file, line);
		return NULL;
	}
	return alloc_raw(size);
}

void *weft__calloc_at(size_t n, size_t size, const char *file, int line)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *p = weft__alloc_at(n * size, file, line);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

/* For a caller that names the function itself, (weft__alloc)(n): its
 * failures are charged to an unnamed site. */
void *weft__alloc(size_t size)
{
	return weft__alloc_at(size, NULL, 0);
}

void *weft__calloc(size_t n, size_t size)
{
	return weft__calloc_at(n, size, NULL, 0);
}

void *weft__alloc_nofail_injection(size_t size)
{
	return alloc_raw(size);
}

void weft__free(void *p)
{
	if (p == NULL)
		return;
	unsigned char *base = (unsigned char *)p - ALLOC_HEADER;
	size_t size;
	memcpy(&size, base, sizeof size);
	/* relaxed: counters (see their declaration). */
	atomic_fetch_sub_explicit(&alloc_live_bytes, (long)size,
		memory_order_relaxed);
	atomic_fetch_sub_explicit(&alloc_live_count, 1, memory_order_relaxed);
	free(base);
}

void weft__alloc_census_add(enum weft__alloc_census_kind kind, long delta)
{
	/* relaxed: a counter (see its declaration). */
	atomic_fetch_add_explicit(&census[kind], delta, memory_order_relaxed);
}

#else /* !WEFT_DEBUG */

void *weft__alloc(size_t size)
{
	return malloc(size);
}

void *weft__alloc_nofail_injection(size_t size)
{
	return malloc(size);
}

void weft__free(void *p)
{
	free(p);
}

void weft__alloc_census_add(enum weft__alloc_census_kind kind, long delta)
{
	(void)kind;
	(void)delta;
}

void *weft__calloc(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *p = weft__alloc(n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

#endif /* WEFT_DEBUG */

/* The getters: relaxed loads of counters; exact once every thread that
 * changed them is joined (the join orders them). */
long weft__alloc_census_get(enum weft__alloc_census_kind kind)
{
	return atomic_load_explicit(&census[kind], memory_order_relaxed);
}

long weft__alloc_live_bytes(void)
{
	return atomic_load_explicit(&alloc_live_bytes, memory_order_relaxed);
}

long weft__alloc_live_count(void)
{
	return atomic_load_explicit(&alloc_live_count, memory_order_relaxed);
}

void weft_debug_fail_alloc(long nth)
{
	/* relaxed: a test arms the countdown before starting the code it
	 * sweeps; thread creation orders the store before those threads. */
	atomic_store_explicit(&alloc_fail_countdown, nth < 0 ? 0 : nth,
		memory_order_relaxed);
}

long weft_debug_injected_failures(void)
{
	return atomic_load_explicit(&alloc_injected_failures,
		memory_order_relaxed);
}

void weft_debug_stats(weft_debug_stats_t *out)
{
	if (out == NULL)
		return;
	out->live_bytes = weft__alloc_live_bytes();
	out->live_allocs = weft__alloc_live_count();
	out->live_tasks = weft__alloc_census_get(WEFT__CENSUS_TASK);
	out->live_fibers = weft__alloc_census_get(WEFT__CENSUS_FIBER);
	out->live_stacks = weft__alloc_census_get(WEFT__CENSUS_STACK);
	out->live_groups = weft__alloc_census_get(WEFT__CENSUS_GROUP);
	out->live_scopes = weft__alloc_census_get(WEFT__CENSUS_SCOPE);
	out->live_runtimes = weft__alloc_census_get(WEFT__CENSUS_RUNTIME);
}
