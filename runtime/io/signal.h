/* Signal watchers of a runtime (signal.c); see weft/signal.h.  The
 * shutdown helper (shutdown.c) builds on the hook form below. */
#ifndef WEFT_RUNTIME_IO_SIGNAL_H
#define WEFT_RUNTIME_IO_SIGNAL_H

#include <stddef.h>

#include "base/common.h"

struct weft_runtime;
struct weft__signals;
struct weft_signals;

/* Called on the I/O thread for each delivery to a hook watcher, instead
 * of queueing it for weft_signal_wait. */
typedef void (*weft__signal_hook_fn)(void *arg, int signum);

/* weft_signal_open for a watcher whose deliveries go to hook(arg, signum)
 * on the I/O thread (no task waits on it).  Same errors.
 * Thread: a weft fiber (it parks until the I/O thread opened it). */
WEFT_FIBER_FN int weft__signal_open_hook(struct weft_signals **out,
	const int *signums, size_t n, weft__signal_hook_fn hook, void *arg);

/* weft_signal_close done directly: stops watching (the hook is never
 * called again once this returns) and frees w once its handles are
 * closed.  Thread: the I/O thread. */
void weft__signal_close_io(struct weft_signals *w);

/* Frees the runtime's signal state after the I/O thread stopped (which
 * closed the uv_signal_t handles) and gives the signals of watchers that
 * were never closed their previous disposition back.
 * Thread: the destroyer. */
void weft__signal_fini(struct weft_runtime *rt);

#endif
