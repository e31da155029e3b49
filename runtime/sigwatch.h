/* Signal watchers of a runtime (signal.c); see weft/signal.h. */
#ifndef WEFT_RUNTIME_SIGWATCH_H
#define WEFT_RUNTIME_SIGWATCH_H

struct weft_runtime;
struct weft__signals;

/* Frees the runtime's signal state after the I/O thread stopped (which
 * closed the uv_signal_t handles).  Thread: the destroyer. */
void weft__signals_fini(struct weft_runtime *rt);

#endif
