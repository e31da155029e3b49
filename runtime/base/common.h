/* Small helpers shared by every runtime file: container_of, branch hints,
 * cache-line size and the fiber-function marker, plus the assertions of
 * base/diag.h.  Nothing here owns state. */
#ifndef WEFT_RUNTIME_BASE_COMMON_H
#define WEFT_RUNTIME_BASE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "base/diag.h"

#define WEFT__CACHELINE 64
/* Objects touched by two workers are padded to 128 bytes: the adjacent-line
 * prefetcher on x86_64 pulls cache lines in pairs.  aarch64: 64-byte lines
 * on most cores (Neoverse, Cortex-A), 128 on some (Apple's, ThunderX2),
 * so 128 is the right padding there too. */
#define WEFT__FALSE_SHARING 128

#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

#define WEFT__CONTAINER_OF(ptr, type, member)                                  \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define WEFT__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Reverses a NULL-terminated list linked through `next`, in place:
 * `head` (an lvalue) ends up at the old tail.  For the LIFO lists that
 * lock-free pushes build and whose consumer wants posting order. */
#define WEFT__SLIST_REVERSE(type, head)                                        \
	do {                                                                   \
		type *weft__rev_done = NULL;                                   \
		while (head) {                                                 \
			type *weft__rev_next = (head)->next;                   \
			(head)->next = weft__rev_done;                         \
			weft__rev_done = (head);                               \
			(head) = weft__rev_next;                               \
		}                                                              \
		(head) = weft__rev_done;                                       \
	} while (0)

/* Marks a function that may switch fibers (a checkpoint or a park).  Empty
 * today; it documents the contract and gives a checker something to find. */
#define WEFT_FIBER_FN

/* Symbol visibility for the library's own internal cross-file functions:
 * hidden (the build uses -fvisibility=hidden anyway; this is explicit). */
#define WEFT__HIDDEN __attribute__((visibility("hidden")))

#endif
