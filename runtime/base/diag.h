/* Assertions and diagnostics (diag.c): messages to stderr, one write(2)
 * each, so lines from concurrent workers never interleave.
 * Thread: any. */
#ifndef WEFT_RUNTIME_BASE_DIAG_H
#define WEFT_RUNTIME_BASE_DIAG_H

/* Always-on assertion for cheap invariants whose violation means memory
 * corruption: prints "weft: <module>: <msg>" with file and line, aborts. */
#define WEFT_ASSERT(cond, msg)                                                 \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0))                              \
			weft__diag_assert_fail(__FILE__, __LINE__, #cond,      \
				msg);                                          \
	} while (0)

/* Debug-only assertion for expensive checks; on in every test build. */
#ifdef WEFT_DEBUG
#define WEFT_DASSERT(cond, msg) WEFT_ASSERT(cond, msg)
#else
#define WEFT_DASSERT(cond, msg) ((void)0)
#endif

__attribute__((noreturn, cold)) void weft__diag_assert_fail(const char *file,
	int line, const char *expr, const char *msg);

/* Prints "weft: <formatted>" to stderr with one write(2) so concurrent
 * diagnostics do not interleave.  Async-signal-safe only for the plain
 * string form (weft__diag_raw). */
void weft__diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void weft__diag_raw(const char *msg);

#endif
