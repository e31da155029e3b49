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
 * alignment guarantee. */
#include "base/alloc.h"

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

void *weft__alloc(size_t size)
{
	if (alloc_should_fail())
		return NULL;
	return alloc_raw(size);
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

#endif /* WEFT_DEBUG */

void *weft__calloc(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *p = weft__alloc(n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

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
