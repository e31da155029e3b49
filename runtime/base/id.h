/* Process-wide unique ids for tasks, groups and scopes.
 * Thread: any. */
#ifndef WEFT_RUNTIME_BASE_ID_H
#define WEFT_RUNTIME_BASE_ID_H

#include <stdint.h>

/* A new id, never 0 and never handed out before in this process (ids only
 * need uniqueness: they order nothing).  Any thread; never switches
 * fibers. */
uint64_t weft__id_next(void);

/* A block of ids owned by one thread that never shares it (a worker's):
 * ids taken from it are as unique as weft__id_next's, without a TLS
 * access (a call into the TLS resolver in a shared library). */
typedef struct weft__id_block {
	uint64_t next, end;
} weft__id_block_t;

/* Refills b from the process-wide counter and returns its first id. */
uint64_t weft__id_refill(weft__id_block_t *b);

/* A new id from b (refilled when empty).  Thread: b's owner. */
static inline uint64_t weft__id_next_in(weft__id_block_t *b)
{
	if (__builtin_expect(b->next == b->end, 0))
		return weft__id_refill(b);
	return b->next++;
}

#endif
