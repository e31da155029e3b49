/* Blocking offload and foreign threads (docs/semantics.md rules 39-40;
 * Trio's to_thread / from_thread, AnyIO's BlockingPortal).
 *
 * weft_to_thread runs a blocking C function on a thread of the runtime's
 * own bounded pool while the calling task parks (its worker keeps running
 * other tasks).  The pool creates threads on demand, up to
 * weft_config_t.offload_threads (WEFT_OFFLOAD_THREADS, default 40), and a
 * thread that stays idle for 10 s exits.  That limit counts calls whose
 * function is running (an abandoned call counts until its function
 * returns); further calls wait for a slot in FIFO order.
 *
 * Cancellation (rule 39, AnyIO's to_thread): a call still
 * waiting for a limiter token or a pool slot returns -ECANCELED and its
 * function never runs.  Once the function runs it cannot be interrupted:
 * the task waits for it (the function can poll
 * weft_thread_check_cancelled to stop early), then the call returns
 * -ECANCELED; *result still receives the function's value, so that what
 * it allocated can be freed, but its return code is dropped.  With
 * abandon_on_cancel the call instead returns -ECANCELED at once, the
 * function keeps running and its result is discarded; runtime destroy
 * still waits for it.
 *
 * The function runs with the task-local context of the sending task
 * (weft_local_get works on the offload thread) and can run work back
 * inside the runtime with weft_from_thread_run.  Threads that weft did
 * not start reach a runtime through a portal (weft_portal_open), a handle
 * that a task opens and passes to them.
 *
 * Typical use:
 *     static int read_config(void *path, void **result) {
 *         ... blocking fopen/fread ...; *result = buf; return 0;
 *     }
 *     void *buf;
 *     int rc = weft_to_thread(read_config, path, &buf, NULL);
 */
#ifndef WEFT_THREAD_H
#define WEFT_THREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/export.h"
#include "weft/runtime.h"
#include "weft/sync.h"

WEFT_BEGIN_DECLS

/* {======================================================= to_thread */

/* The function an offload thread runs.  It returns 0 or a negative code
 * (returned by weft_to_thread) and may store a value in *result (which
 * starts as NULL).  Unlike a task (weft_fn), it has no task record to
 * hold a result, hence the out-parameter. */
typedef int (*weft_thread_fn)(void *arg, void **result);

typedef struct weft_to_thread_opts {
	/* If not NULL, a token of this limiter is borrowed (before the pool
	 * slot; the wait is FIFO and cancellable) and held until the
	 * function returns.  With abandon_on_cancel the limiter must outlive
	 * the function, not only the call. */
	weft_limiter_t *limiter;
	/* On cancellation return -ECANCELED at once, even while the function
	 * runs (it keeps running; its result is discarded). */
	bool abandon_on_cancel;
} weft_to_thread_opts_t;

/* What it does: runs fn(arg, &value) on an offload thread of the calling
 * task's runtime and parks the task until fn returns; then *result (if
 * not NULL) receives value.  See the top of this file for the pool limit
 * and cancellation.  opts may be NULL (no limiter, not abandoned).
 * Ownership: arg stays the caller's and must stay valid while fn runs
 * (with abandon_on_cancel: until fn returns, which may be after this call
 * returned).  A value that fn returns for an abandoned call is lost: fn
 * must not hand back anything it expects the caller to free then.
 * Errors: fn's return value; -EINVAL (NULL fn), WEFT_ENOTFIBER,
 * -ECANCELED (cancelled before fn ran: fn never runs; cancelled while
 * it ran: *result holds its value; or abandoned),
 * -ENOMEM, -EAGAIN (no offload thread could be started and none exists),
 * limiter errors (WEFT_EMISUSE...).  *result is written only once fn
 * returned and the call was not abandoned.
 * Checkpoint: yes (waiting for a slot; a running fn is only interrupted
 * with abandon_on_cancel).  Threads: weft fiber. */
WEFT_EXTERN int weft_to_thread(weft_thread_fn fn, void *arg, void **result,
	const weft_to_thread_opts_t *opts);

/* What it does: on an offload thread running fn for weft_to_thread,
 * reports whether the sending task was cancelled meanwhile (fn may then
 * give up early; its result is still returned to the task unless the
 * call was abandoned).
 * Errors: -ECANCELED (cancelled, or abandoned), WEFT_EMISUSE (not on an
 * offload thread running a call); 0 otherwise.
 * Checkpoint: no.  Threads: an offload thread. */
WEFT_EXTERN int weft_thread_check_cancelled(void);

/* What it does: the effective deadline (weft_effective_deadline) of the
 * task that sent the running call, taken when it was sent, on the
 * weft_now() clock; WEFT_FOREVER when it had none or when not called
 * from an offload thread running a call.
 * Checkpoint: no.  Threads: any thread (meaningful on an offload thread). */
WEFT_EXTERN int64_t weft_thread_deadline(void);

/* What it does: runs fn(arg) as a new task inside the runtime, as a child
 * of the task that sent the running offload call (so it sees that task's
 * cancellation and its task-local context), and blocks the calling
 * thread until the task ends; *result (if not NULL) then receives the
 * value it set with weft_task_set_result.
 * Ownership: arg passes to the task while it runs; it stays the caller's.
 * Errors: the task's return value (0, its failure code, -ECANCELED);
 * -EINVAL (NULL fn), WEFT_EMISUSE (called from a weft fiber, which would
 * deadlock, or from a thread that is not running an offload call: use a
 * portal there), -ECANCELED (the call was abandoned: fn does not run),
 * -ENOMEM.
 * Deadlock to avoid (as with Trio's from_thread): the offload thread
 * keeps its pool slot while it waits, so if fn itself calls
 * weft_to_thread and every slot is held by calls waiting here, nothing
 * can progress.  Cap the outer calls with a limiter smaller than the
 * pool's limit (WEFT_OFFLOAD_THREADS) so that nested calls find a slot.
 * Checkpoint: no (the caller is not a fiber).  Threads: an offload
 * thread, inside the weft_thread_fn of a weft_to_thread call. */
WEFT_EXTERN int weft_from_thread_run(weft_fn fn, void *arg, void **result);

/* }======================================================= */

/* {======================================================= portal */

/* A door into a runtime for threads that weft did not start (AnyIO's
 * BlockingPortal).  A task opens it (which opens a task group in that
 * task, with the nesting rules of weft_group_open) and passes it to
 * foreign threads; their calls run as tasks of that group.  The opening
 * task closes it; close waits for the portal's tasks. */
typedef struct weft_portal weft_portal_t;

/* What it does: opens a portal: a task group of the calling task whose
 * tasks are spawned from foreign threads.
 * Ownership: *out is the calling task's; weft_portal_close frees it
 * (unless foreign threads still hold references: weft_portal_retain).
 * Errors: -EINVAL (NULL out), -ENOMEM, WEFT_ENOTFIBER.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_portal_open(weft_portal_t **out);

/* What it does: closes p to new calls (they get WEFT_ECLOSED), cancels
 * its remaining tasks if cancel_remaining, waits until every task of p
 * has ended and drops the opener's reference.
 * Returns: as weft_group_join on p's group: 0, -ECANCELED (an enclosing
 * scope was cancelled), or WEFT_ECHILD_FAILED with every failure of a
 * task spawned with weft_portal_spawn (or started with weft_portal_start,
 * after started()) in *err_out.
 * Ownership: p is freed unless foreign threads still hold references
 * (weft_portal_retain); the caller owns *err_out (if err_out is NULL, the
 * error group is freed).
 * Errors: -EINVAL (NULL p), WEFT_EMISUSE (not the opening task, or closed
 * twice), WEFT_EMISNEST (a scope or group entered after the portal
 * opened is still entered).
 * Checkpoint: yes.  Threads: the weft task that opened p. */
WEFT_EXTERN int weft_portal_close(weft_portal_t *p, bool cancel_remaining,
	weft_error_t **err_out);

/* What it does: keeps p's memory valid after its close, so that a
 * foreign thread that may still call it gets WEFT_ECLOSED instead of a
 * use after free.
 * Ownership: the caller holds one more reference to p; each retain needs
 * one weft_portal_release, before weft_runtime_destroy (which refuses,
 * -EBUSY, while one is held: p lives in the runtime's memory).
 * Errors: -EINVAL (NULL p).  Checkpoint: no.
 * Threads: any thread, while p is alive (open, or retained). */
WEFT_EXTERN int weft_portal_retain(weft_portal_t *p);

/* What it does: drops a reference from weft_portal_retain.
 * Ownership: the caller gives up that reference.
 * Errors: NULL is ignored.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_portal_release(weft_portal_t *p);

/* What it does: runs fn(arg) as a task of p and blocks the calling thread
 * until it ends; *result (if not NULL) receives the value it set with
 * weft_task_set_result.  Its failure comes back here (it does not fail
 * the portal).  timeout_ns (relative, WEFT_FOREVER for none): when it
 * passes, the task is cancelled and waited for.
 * Ownership: arg passes to the task; it stays the caller's.
 * Errors: the task's return value (0, its failure code, -ECANCELED when
 * cancelled by the portal's close); -ETIMEDOUT (the timeout cancelled it;
 * a task that still finished successfully returns 0), -EINVAL (NULL p or
 * fn, negative timeout), WEFT_ECLOSED (p is closed: nothing ran),
 * WEFT_EMISUSE (called from a weft fiber: it would block a worker),
 * -ENOMEM.
 * Checkpoint: no.  Threads: any thread that is not running a weft fiber,
 * while p is alive (open, or retained). */
WEFT_EXTERN int weft_portal_call(weft_portal_t *p, weft_fn fn, void *arg,
	void **result, int64_t timeout_ns);

/* What it does: spawns fn(arg) as a task of p and returns at once; its
 * failure is reported by weft_portal_close (and cancels p's other tasks,
 * as in any group).
 * Ownership: arg passes to the task; on failure it stays the caller's.
 * Errors: -EINVAL (NULL p or fn), WEFT_ECLOSED, -ENOMEM.
 * Checkpoint: no.  Threads: any thread (a task of p's runtime too),
 * while p is alive (open, or retained). */
WEFT_EXTERN int weft_portal_spawn(weft_portal_t *p, weft_fn fn, void *arg);

/* What it does: starts fn(arg) in p as weft_group_start does and blocks
 * the calling thread until the task calls weft_task_started(value): then
 * *start_value (if not NULL) receives value and the task keeps running
 * in p.  timeout_ns (relative, WEFT_FOREVER for none): when it passes
 * before started(), the task is cancelled and waited for.
 * Ownership: as weft_portal_spawn.
 * Errors: the task's failure code before started(), WEFT_ENOTSTARTED (it
 * returned without calling started()), -ETIMEDOUT, -ECANCELED (the
 * portal's close cancelled it), -EINVAL (NULL p or fn, negative timeout),
 * WEFT_ECLOSED, WEFT_EMISUSE (called from a weft fiber), -ENOMEM.
 * Checkpoint: no.  Threads: as weft_portal_call. */
WEFT_EXTERN int weft_portal_start(weft_portal_t *p, weft_fn fn, void *arg,
	void **start_value, int64_t timeout_ns);

/* }======================================================= */

WEFT_END_DECLS

#endif
