/* Diagnostics for tests and tools: live-object census and allocation fault
 * injection.  These counters are process-wide atomics that hold no
 * resource; every runtime in the process contributes to them.
 *
 * They exist only when the library is built with WEFT_DEBUG (every build
 * tools/run test makes): in other builds weft_debug_stats reports zeros and
 * weft_debug_fail_alloc has no effect, so that the spawn path of a release
 * build touches no process-wide cache line. */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H

#include "weft/export.h"

WEFT_BEGIN_DECLS

typedef struct {
	long live_bytes;    /* heap bytes weft currently holds */
	long live_allocs;   /* heap blocks weft currently holds */
	long live_tasks;    /* task records not yet freed */
	long live_fibers;   /* fibers (execution contexts) not yet freed */
	long live_stacks;   /* fiber stacks mapped (in use or pooled) */
	long live_groups;   /* task groups not yet freed */
	long live_scopes;   /* cancel scopes not yet freed */
	long live_runtimes; /* runtimes not yet destroyed */
} weft_debug_stats_t;

/* What it does: snapshots the census into *out.  Exact only when no weft
 * thread is running (e.g. after weft_runtime_destroy).
 * Ownership: out is the caller's.  Errors: NULL out is ignored.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_debug_stats(weft_debug_stats_t *out);

/* What it does: makes the nth weft heap allocation from now fail (1 = the
 * next one); 0 turns injection off.  Each call that sees the failure must
 * return -ENOMEM and leak nothing.  The count is process-wide: while a
 * runtime runs, its workers and I/O thread allocate too, and the nth
 * allocation may be theirs (a task's spawn, an I/O request), which then
 * fails as it would without memory, reported where that call reports.
 * weft_runtime_create makes every allocation of its own on the calling
 * thread, so around it the count is exact.
 * Errors: negative n is treated as 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_debug_fail_alloc(long nth);

/* What it does: how many allocations injection has failed so far.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN long weft_debug_injected_failures(void);

WEFT_END_DECLS

#endif
