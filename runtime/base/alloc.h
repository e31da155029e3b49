/* The runtime's one allocator entry point.  Every heap byte weft owns goes
 * through here so that tests can count live allocations and inject failures
 * (the N-th allocation fails, as SQLite and Lua do; or the k-th call at a
 * given call site).
 *
 * The counters and the fault-injection countdowns are process-wide atomics:
 * they are diagnostics that hold no resource, so they need no shutdown and
 * do not break the "no hidden globals" rule for runtimes.
 * Thread: any. */
#ifndef WEFT_RUNTIME_BASE_ALLOC_H
#define WEFT_RUNTIME_BASE_ALLOC_H

#include <stddef.h>

/* Returns NULL on failure (real, or injected through
 * weft_debug_fail_alloc).  Never sets errno for the caller to read. */
void *weft__alloc(size_t size);
/* Zeroed allocation; NULL on failure or overflow of n * size. */
void *weft__calloc(size_t n, size_t size);

/* Allocation sites.  In WEFT_DEBUG builds weft__alloc and weft__calloc
 * are macros that pass the caller's __FILE__ and __LINE__ (the line of the
 * macro's name), so that an injected failure is charged to the call site
 * that saw it; tests/test_alloc_sweep.c compares the sites failed so far
 * with the list of call sites in runtime/ and prints the ones never failed.
 * Release builds keep the plain functions: no argument, no bookkeeping. */
#ifdef WEFT_DEBUG
void *weft__alloc_at(size_t size, const char *file, int line);
void *weft__calloc_at(size_t n, size_t size, const char *file, int line);
#define weft__alloc(size) weft__alloc_at((size), __FILE__, __LINE__)
#define weft__calloc(n, size) weft__calloc_at((n), (size), __FILE__, __LINE__)
#endif

/* One call site: file is the compiler's __FILE__ for it (a path ending in
 * runtime/<layer>/<file>.c). */
struct weft__alloc_site {
	const char *file;
	int line;
	long failures; /* injected failures charged to it so far */
	long calls;    /* weft__alloc_reached_sites: calls seen there */
};
/* Copies up to max of the sites failed so far in this process into out
 * (in the order they were first failed) and returns how many there are
 * (may exceed max).  Always 0 without WEFT_DEBUG. */
size_t weft__alloc_failed_sites(struct weft__alloc_site *out, size_t max);

/* Injection by site (WEFT_DEBUG builds; the count of
 * weft_debug_fail_alloc is the other mode, and both may be armed): the
 * k-th call from now made at the site whose file ends in "/<file>" (e.g.
 * "core/local.c") and whose line is `line` fails, and is charged like
 * any injected failure; the calls at other sites are not counted, so
 * which call fails does not depend on what other threads allocate
 * meanwhile.  k <= 0 or a NULL file disarms.  file must stay valid while
 * armed.  Returns 0, or -ENOTSUP without WEFT_DEBUG (no site is known
 * there).  Arm it before starting the code it targets, disarm it after
 * that code's threads are joined. */
int weft__alloc_fail_site(const char *file, int line, long k);

/* Reach tracking (WEFT_DEBUG builds): while on, every allocation call
 * records its site in a table (lock-free, relaxed: it orders nothing and
 * does not hide a data race from TSan); weft__alloc_reached_sites copies
 * the sites recorded since the last weft__alloc_track_reached(true) (the
 * call clears the table), each with its number of calls, and returns how
 * many there are (may exceed max; a site may appear twice when two
 * threads recorded it at once: compare by name).  For the allocation
 * sweep to find which sites a scenario reaches.  Both are no-ops (0)
 * without WEFT_DEBUG.  Switch it with no other thread allocating. */
void weft__alloc_track_reached(int on);
size_t weft__alloc_reached_sites(struct weft__alloc_site *out, size_t max);
/* NULL is ignored. */
void weft__free(void *p);
/* Like weft__alloc but never subject to fault injection: for an
 * allocation whose failure cannot be reported (no caller today). */
void *weft__alloc_nofail_injection(size_t size);

/* Live-object census used by weft_debug_stats (alloc.c).  Each
 * counter is incremented at creation and decremented at destruction of the
 * named object, with relaxed atomics: exact once all threads are joined. */
enum weft__alloc_census_kind {
	WEFT__CENSUS_TASK,
	WEFT__CENSUS_FIBER,
	WEFT__CENSUS_STACK,
	WEFT__CENSUS_GROUP,
	WEFT__CENSUS_SCOPE,
	WEFT__CENSUS_RUNTIME,
	WEFT__CENSUS_COUNT
};
#ifdef WEFT_DEBUG
void weft__alloc_census_add(enum weft__alloc_census_kind kind, long delta);
#else
/* Release builds keep no census: no call left on the spawn, join and
 * switch paths (four per fork-join node). */
static inline void weft__alloc_census_add(enum weft__alloc_census_kind kind,
	long delta)
{
	(void)kind;
	(void)delta;
}
#endif
long weft__alloc_census_get(enum weft__alloc_census_kind kind);
long weft__alloc_live_bytes(void);
long weft__alloc_live_count(void);

#endif
