/* The runtime's one allocator entry point.  Every heap byte weft owns goes
 * through here so that tests can count live allocations and inject failures
 * (the N-th allocation fails), as SQLite and Lua do.
 *
 * The counters and the fault-injection countdown are process-wide atomics:
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
void weft__alloc_census_add(enum weft__alloc_census_kind kind, long delta);
long weft__alloc_census_get(enum weft__alloc_census_kind kind);
long weft__alloc_live_bytes(void);
long weft__alloc_live_count(void);

#endif
