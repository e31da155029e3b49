/* The to_thread pool of a runtime (offload.c) and the helpers portal.c
 * shares with it; see weft/thread.h. */
#ifndef WEFT_RUNTIME_THREAD_OFFLOAD_H
#define WEFT_RUNTIME_THREAD_OFFLOAD_H

#include <stddef.h>

#include "base/common.h"
#include "weft/runtime.h"

struct weft_runtime;
struct weft__offload;

/* Waits for every offload thread (including abandoned calls still
 * running) and frees the pool.  Called by weft_runtime_destroy after every
 * root task ended, before the workers stop.  Thread: the destroyer. */
void weft__offload_stop(struct weft_runtime *rt);

struct weft__wait_desc;
/* The dump's describer of a task waiting in weft_to_thread: on is its
 * call (core/inspect.h).  Thread: any, while the waiter is pinned. */
void weft__offload_describe(const void *on, struct weft__wait_desc *d);

/* Runs fn(arg) as a child task of the calling task (in a private group
 * opened and joined here) and returns what it returned: 0 (then *result,
 * if not NULL, receives its weft_task_set_result value), its failure
 * code, or -ECANCELED; -ENOMEM when it could not be created.  Its failure
 * is not reported anywhere else.  Checkpoint: yes.  Thread: a weft fiber. */
WEFT_FIBER_FN int weft__offload_run_task(weft_fn fn, void *arg, void **result);

/* A snapshot of the pool, for tests: calls holding a slot, calls waiting
 * for one, threads alive, threads idle.  All zero before the first
 * weft_to_thread.  Thread: any, while rt is alive. */
struct weft__offload_stats {
	size_t running;
	size_t waiting;
	size_t threads;
	size_t idle;
};
void weft__offload_stats(struct weft_runtime *rt,
	struct weft__offload_stats *out);

#endif
