/* The to_thread pool of a runtime (offload.c); see weft/thread.h. */
#ifndef WEFT_RUNTIME_OFFLOAD_H
#define WEFT_RUNTIME_OFFLOAD_H

struct weft_runtime;
struct weft__offload;

/* Waits for every offload thread (including abandoned calls still
 * running) and frees the pool.  Called by weft_runtime_destroy after every
 * root task ended, before the workers stop.  Thread: the destroyer. */
void weft__offload_stop(struct weft_runtime *rt);

#endif
