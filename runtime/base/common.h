/* Small helpers shared by every runtime file: assertions, container_of,
 * branch hints, cache-line size and the fiber-function marker.  Nothing here
 * owns state. */
#ifndef WEFT_RUNTIME_BASE_COMMON_H
#define WEFT_RUNTIME_BASE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define WEFT__CACHELINE 64
/* Objects touched by two workers are padded to 128 bytes: the adjacent-line
 * prefetcher on x86_64 pulls cache lines in pairs. */
#define WEFT__FALSE_SHARING 128

#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

#define WEFT__CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define WEFT__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Marks a function that may switch fibers (a checkpoint or a park).  Empty
 * today; it documents the contract and gives a checker something to find. */
#define WEFT_FIBER_FN

/* Symbol visibility for the library's own internal cross-file functions:
 * hidden (the build uses -fvisibility=hidden anyway; this is explicit). */
#define WEFT__HIDDEN __attribute__((visibility("hidden")))

/* Always-on assertion for cheap invariants whose violation means memory
 * corruption: prints "weft: <module>: <msg>" with file and line, aborts. */
#define WEFT_ASSERT(cond, msg)                                           \
	do {                                                             \
		if (WEFT__UNLIKELY(!(cond)))                             \
			weft__assert_fail(__FILE__, __LINE__, #cond, msg); \
	} while (0)

/* Debug-only assertion for expensive checks; on in every test build. */
#ifdef WEFT_DEBUG
#define WEFT_DASSERT(cond, msg) WEFT_ASSERT(cond, msg)
#else
#define WEFT_DASSERT(cond, msg) ((void)0)
#endif

__attribute__((noreturn, cold)) void weft__assert_fail(const char *file,
	int line, const char *expr, const char *msg);

/* Prints "weft: <formatted>" to stderr with one write(2) so concurrent
 * diagnostics do not interleave.  Async-signal-safe only for the plain
 * string form (weft__diag_raw). */
void weft__diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void weft__diag_raw(const char *msg);

#endif
