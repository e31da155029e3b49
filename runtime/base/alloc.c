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
 * failed: a site whose failure path no test has run shows up by name.
 *
 * Injection by site (debug builds): weft__alloc_fail_site fails the k-th
 * call at one file:line, counting the calls at that site only.  The
 * process-wide count of weft_debug_fail_alloc depends on what the I/O
 * thread and offload threads allocate meanwhile, so a sweep by count may
 * step over a site in one run and not the next; by site, the sweep can
 * aim at each site the count missed.  To know which sites a scenario
 * reaches, reach tracking records every call's site in a lock-free table
 * while switched on.  Both cost one relaxed load per allocation when off
 * (debug builds only; release builds have neither). */
#include "base/alloc.h"

#include <errno.h>
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
		alloc_sites[i] = (struct weft__alloc_site){ file, line, 1, 0 };
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

#ifdef WEFT_DEBUG
/* Injection by site.  fail_site_left: 0 = off; otherwise the calls at
 * the target still allowed to succeed plus one.  The target
 * (fail_site_file, fail_site_line) is stored before the countdown is
 * armed with a release store, and read after an acquire load saw it
 * armed, so a matching thread sees the target it was armed with. */
static _Atomic(const char *) fail_site_file;
static atomic_int fail_site_line;
static atomic_long fail_site_left;

/* Whether the __FILE__ `file` ends in "/<want>". */
static int alloc_file_is(const char *file, const char *want)
{
	if (file == NULL || want == NULL)
		return 0;
	size_t n = strlen(file), m = strlen(want);
	return n > m && file[n - m - 1] == '/' &&
		strcmp(file + n - m, want) == 0;
}

static int alloc_site_should_fail(const char *file, int line)
{
	/* acquire: pairs with the release in weft__alloc_fail_site (the
	 * target's fields). */
	long n = atomic_load_explicit(&fail_site_left, memory_order_acquire);
	if (n <= 0)
		return 0;
	/* relaxed: ordered by the acquire above. */
	if (line !=
			atomic_load_explicit(&fail_site_line,
				memory_order_relaxed) ||
		!alloc_file_is(file,
			atomic_load_explicit(&fail_site_file,
				memory_order_relaxed)))
		return 0;
	/* relaxed (the CAS and the add): a countdown, as in
	 * alloc_should_fail. */
	while (n > 0) {
		if (atomic_compare_exchange_weak_explicit(&fail_site_left, &n,
			    n - 1, memory_order_relaxed,
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

/* Reach tracking: an open-addressing table keyed by (file pointer, line).
 * A slot is claimed by a CAS of its file from NULL, then its line is
 * stored; a thread that looks at a slot between the two sees no match
 * and records the site in another slot (a duplicate the reader merges by
 * name).  All relaxed: the table orders nothing, and the reader runs
 * after the allocating threads are joined.  A full table drops sites. */
#define ALLOC_REACH_MAX 1024
struct alloc_reach_slot {
	_Atomic(const char *) file;
	atomic_int line;
	atomic_long calls;
};
static struct alloc_reach_slot alloc_reach[ALLOC_REACH_MAX];
static atomic_int alloc_reach_on;

static void alloc_reached(const char *file, int line)
{
	/* relaxed: see the table's comment (all accesses below too). */
	if (!atomic_load_explicit(&alloc_reach_on, memory_order_relaxed))
		return;
	if (file == NULL)
		file = "?"; /* (weft__alloc)(n): an unnamed site */
	size_t h = ((uintptr_t)file / 8 * 31u + (unsigned)line) %
		ALLOC_REACH_MAX;
	for (size_t i = 0; i < ALLOC_REACH_MAX;
		i++, h = (h + 1) % ALLOC_REACH_MAX) {
		struct alloc_reach_slot *s = &alloc_reach[h];
		const char *f = atomic_load_explicit(&s->file,
			memory_order_relaxed);
		if (f == NULL) {
			if (!atomic_compare_exchange_strong_explicit(&s->file,
				    &f, file, memory_order_relaxed,
				    memory_order_relaxed))
				continue;
			atomic_store_explicit(&s->line, line,
				memory_order_relaxed);
		} else if (f != file ||
			atomic_load_explicit(&s->line, memory_order_relaxed) !=
				line) {
			continue;
		}
		atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
		return;
	}
}
#endif

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
	alloc_reached(file, line);
	if (alloc_should_fail() || alloc_site_should_fail(file, line)) {
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

int weft__alloc_fail_site(const char *file, int line, long k)
{
	/* relaxed (the target): published by the release store below. */
	atomic_store_explicit(&fail_site_left, 0, memory_order_relaxed);
	if (file == NULL || k <= 0)
		return 0;
	atomic_store_explicit(&fail_site_file, file, memory_order_relaxed);
	atomic_store_explicit(&fail_site_line, line, memory_order_relaxed);
	/* release: pairs with the acquire in alloc_site_should_fail. */
	atomic_store_explicit(&fail_site_left, k, memory_order_release);
	return 0;
}

void weft__alloc_track_reached(int on)
{
	/* relaxed: see the table's comment; the caller switches it with no
	 * other thread allocating. */
	atomic_store_explicit(&alloc_reach_on, 0, memory_order_relaxed);
	if (!on)
		return;
	for (size_t i = 0; i < ALLOC_REACH_MAX; i++) {
		atomic_store_explicit(&alloc_reach[i].file, NULL,
			memory_order_relaxed);
		atomic_store_explicit(&alloc_reach[i].line, 0,
			memory_order_relaxed);
		atomic_store_explicit(&alloc_reach[i].calls, 0,
			memory_order_relaxed);
	}
	atomic_store_explicit(&alloc_reach_on, 1, memory_order_relaxed);
}

size_t weft__alloc_reached_sites(struct weft__alloc_site *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < ALLOC_REACH_MAX; i++) {
		/* relaxed: read after the allocating threads are joined. */
		const char *f = atomic_load_explicit(&alloc_reach[i].file,
			memory_order_relaxed);
		if (f == NULL)
			continue;
		if (n < max)
			out[n] = (struct weft__alloc_site){ f,
				atomic_load_explicit(&alloc_reach[i].line,
					memory_order_relaxed),
				0,
				atomic_load_explicit(&alloc_reach[i].calls,
					memory_order_relaxed) };
		n++;
	}
	return n;
}

#else /* !WEFT_DEBUG */

int weft__alloc_fail_site(const char *file, int line, long k)
{
	(void)file;
	(void)line;
	(void)k;
	return -ENOTSUP;
}

void weft__alloc_track_reached(int on)
{
	(void)on;
}

size_t weft__alloc_reached_sites(struct weft__alloc_site *out, size_t max)
{
	(void)out;
	(void)max;
	return 0;
}

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
