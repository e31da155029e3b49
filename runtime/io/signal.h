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

struct weft__io;

/* Opens the watcher of weft_config_t.dump_signal, `signum`, on io's loop:
 * each delivery makes the I/O thread write weft_runtime_dump (text) of
 * io's runtime to stderr.  Saves the signal's disposition as
 * weft_signal_open does.  Returns 0 and *out, or a negative code (the
 * handle is closed then).  Thread: the creator of io, before its thread
 * starts (as every handle of io). */
int weft__signal_dump_open(struct weft__io *io, int signum,
	struct weft_signals **out);

/* Stops w (no dump after this returns), gives the signal its saved
 * disposition back if w was its last weft watcher, and frees w when the
 * loop runs its handle's close callback.  Thread: the I/O thread, or
 * io's stopper after the join (before the loop's last run). */
void weft__signal_dump_close(struct weft_signals *w);

/* Frees the runtime's signal state after the I/O thread stopped (which
 * closed the uv_signal_t handles) and gives the signals of watchers that
 * were never closed their previous disposition back.
 * Thread: the destroyer. */
void weft__signal_fini(struct weft_runtime *rt);

#endif
