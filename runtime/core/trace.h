/* The trace: task events (spawn, run slices, park, wake, steal, end, I/O
 * operations) written as a Chrome trace event file (weft_config_t
 * trace_path) and/or as one stderr line per event (trace_events).  See
 * trace.c for the design.
 *
 * Every hook is called behind one branch on a pointer that is NULL when
 * tracing is off (the worker's `trace`, or the runtime's), so a runtime
 * that does not trace pays one predictable branch per hook:
 *
 *	if (WEFT__UNLIKELY(w->trace))
 *		weft__trace_switch_out(w, self, post);
 */
#ifndef WEFT_RUNTIME_CORE_TRACE_H
#define WEFT_RUNTIME_CORE_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/sched.h"

struct weft_runtime;
struct weft_task;
struct weft__trace;

/* Sets up rt->trace and every worker's `trace` from rt->cfg, opening the
 * file (0, with nothing set, when neither output is asked for).  Before
 * the workers and the I/O thread start.  Errors: -ENOMEM, or the negated
 * errno of opening the file (rt->cfg.message is not written: the caller
 * names the failure).  Thread: the runtime's creator. */
int weft__trace_create(struct weft_runtime *rt);
/* Writes every buffered event and the file's end, closes it and frees
 * rt->trace.  After every worker and the I/O thread were joined.
 * Thread: the runtime's destroyer (or its creator undoing a failure). */
void weft__trace_destroy(struct weft_runtime *rt);
/* Marks the calling thread as rt's I/O thread: its events go to the
 * weft-io track.  Thread: the I/O thread, at its start. */
void weft__trace_bind_io(struct weft_runtime *rt);

/* The hooks.  Each is called only when tracing is on (the caller's
 * branch), on the thread where the event happens. */
/* t is about to be queued by a spawn; not yet visible to anyone else.
 * w: the calling thread's worker, or NULL.  Thread: any. */
void weft__trace_spawn(struct weft_runtime *rt, weft__worker_t *w,
	struct weft_task *t);
/* t runs its function for the first time (a fiber or a child run inline:
 * then its slice begins here, and its parent's pauses).  Thread: the
 * worker running t. */
void weft__trace_start(struct weft_task *t);
/* w switches into t (a first run or a resume): from the loop, or
 * straight from a fiber, which then leaves first: w's post_task, for w's
 * post (a park: its reason is the task's insp_wait).  Thread: w. */
void weft__trace_switch_in(weft__worker_t *w, struct weft_task *t);
/* A fiber switched back to w's loop: w's post_task left for w's post.
 * Thread: w. */
void weft__trace_switch_out(weft__worker_t *w);
/* w stole t from worker `victim`.  Thread: w. */
void weft__trace_steal(weft__worker_t *w, struct weft_task *t, unsigned victim);
/* Runtimes with a trace in this process.  The wake hook's gate: a waker
 * may not read the task's runtime after its claim (the task may run on,
 * end, and its record start a new life), so it tests this instead and
 * the hook finds the trace from the waking thread.  Relaxed: a hint;
 * the hook re-checks (the worker's `trace`, the I/O thread's binding). */
extern atomic_int weft__trace_live;

/* The wake of t's park `gen` was claimed by the calling thread (a worker
 * or the I/O thread of a traced runtime; plain threads' wakes are not
 * recorded).  Only t's atomic fields are read. */
void weft__trace_wake(struct weft_task *t, uint64_t gen);
/* t ends with rc (a child run inline: its slice ends here and its
 * parent's goes on).  Thread: the worker running t. */
void weft__trace_end(struct weft_task *t, int rc);
/* An I/O operation `what` of task id `task` was submitted (done false) or
 * completed with result (done true).  Thread: the I/O thread. */
void weft__trace_io(struct weft_runtime *rt, const char *what, uint64_t task,
	bool done, int result);

#endif
