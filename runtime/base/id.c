/* Process-wide id counter (see id.h).  Ids only need to be unique, so the
 * shared counter is relaxed, and threads take blocks of ids so that the
 * spawn path does not write this shared cache line on every task.
 *
 * A process-wide counter, not a runtime's: ids stay unique across the
 * runtimes of one process, so a dump or an error leaf never shows two
 * tasks with one id.  It owns nothing that needs freeing and changes no
 * behaviour, so it is not runtime state. */
#include <stdatomic.h>

#include "base/id.h"

static atomic_ullong id_counter = 1;
#define ID_BLOCK 1024

/* The thread-local block is touched only inside this leaf function, which
 * never switches fibers and cannot be inlined into a caller that does, so
 * no TLS address outlives a switch. */
static __thread uint64_t id_block_next, id_block_end;

__attribute__((noinline)) uint64_t weft__id_next(void)
{
	if (id_block_next == id_block_end) {
		/* relaxed: uniqueness needs only the atomicity of the add. */
		id_block_next = atomic_fetch_add_explicit(&id_counter, ID_BLOCK,
			memory_order_relaxed);
		id_block_end = id_block_next + ID_BLOCK;
	}
	return id_block_next++;
}

uint64_t weft__id_refill(weft__id_block_t *b)
{
	/* relaxed: as in weft__id_next. */
	b->next = atomic_fetch_add_explicit(&id_counter, ID_BLOCK,
		memory_order_relaxed);
	b->end = b->next + ID_BLOCK;
	return b->next++;
}
