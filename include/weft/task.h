/* Tasks: what a running task can do to itself (fail with a message, set
 * its result, signal started(), rename itself), task handles (state,
 * result, wait, cancel, retain, release), what a task can learn about
 * itself and others (ids, names, the current and root task, the group
 * that joins it), and done callbacks.  Snapshots of many tasks at once (a
 * group's children, every live task, the dump of the tree) are in
 * weft/inspect.h.
 *
 * A handle observes a task; it never owns it.  Every task belongs to the
 * group it was spawned into, which joins it whether or not a handle exists,
 * and which still aggregates a failure that a handle has seen.
 *
 * Misuse is caught: a handle used after its last reference was released
 * (released twice, used after release) is stale, and every function below
 * that takes one detects it (the handle carries a generation of the task
 * record, which weft reuses; a handle 65536 reuses stale is not told
 * apart).  Libraries built with WEFT_DEBUG then abort with a message
 * naming the call and the handle; other builds return WEFT_EMISUSE from
 * the calls that return an error code and otherwise do nothing (the
 * getters answer as for NULL). */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <stdint.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

typedef struct weft_task weft_task_t;
/* The same typedef as weft/group.h (a repeated typedef is valid C11). */
typedef struct weft_group weft_group_t;

/* Longest task name kept, including the terminating NUL. */
#define WEFT_TASK_NAME_MAX 40

typedef enum weft_task_state {
	WEFT_TASK_PENDING = 0,	  /* created, running or parked */
	WEFT_TASK_CANCELLING = 1, /* cancel requested, not yet finished */
	WEFT_TASK_FINISHED = 2,	  /* returned 0 */
	WEFT_TASK_FAILED = 3,	  /* returned a failure code */
	WEFT_TASK_CANCELLED = 4	  /* returned -ECANCELED */
} weft_task_state_t;

/* What it does: records a failure message for the calling task and returns
 * code, so a task can `return weft_fail(-EIO, "read %s", path);`.  The
 * message (printf format, truncated at 255 bytes) goes into the group's
 * error leaf.  A later call replaces the message.
 * Errors: returns code unchanged; when called outside a weft task it only
 * returns code; out of memory for the message, the leaf's message is
 * empty (an earlier call's message is dropped too).
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What it does: makes err (typically from weft_group_join) the calling
 * task's failure, so it nests in the parent's error group, and returns
 * WEFT_ECHILD_FAILED for the task to return.
 * Ownership: takes err (also on error); NULL err just returns
 * WEFT_ECHILD_FAILED.
 * Errors: WEFT_ENOTFIBER outside a task (err is freed).
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_fail_group(weft_error_t *err);

/* What it does: 1 if the calling task holds an error group given to
 * weft_fail_group, which a failure it returns will carry, else 0.  For
 * wrappers that learn of a failure where they cannot return it and decide
 * later what the task returns: weft.hpp's ~Group, run while an exception
 * unwinds, keeps the children's failures this way, and the task's entry
 * then reports them.
 * Errors: 0 outside a task.  Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_fail_group_pending(void);

/* What it does: sets the calling task's result value, read through its
 * handle with weft_task_result.  weft never dereferences or frees it.
 * Errors: WEFT_ENOTFIBER.  Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_task_set_result(void *value);

/* What it does: signals that the calling task, started with
 * weft_group_start, is ready: the weft_group_start caller resumes with
 * value, and the task moves into the target group (unless the caller was
 * already cancelled).  For a task spawned with weft_group_spawn it does
 * nothing and returns 0 (AnyIO's TASK_STATUS_IGNORED).
 * Errors: WEFT_EALREADY (called twice), WEFT_ENOTFIBER.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_task_started(void *value);

/* What it does: the state of the task behind h (weakly consistent while it
 * runs; exact once the handle's task finished, see weft_task_wait).
 * CANCELLING shows only when the task itself was cancelled
 * (weft_task_cancel, or a weft_group_start caller giving up); a task
 * cancelled through its group or an enclosing scope shows PENDING until
 * it ends (docs/semantics.md rule 17).
 * Errors: NULL gives WEFT_TASK_PENDING.  Checkpoint: no.
 * Threads: any thread. */
WEFT_EXTERN weft_task_state_t weft_task_state(const weft_task_t *h);

/* What it does: reads the task's outcome: on FINISHED returns 0 and sets
 * *value (if not NULL) to the value given to weft_task_set_result.
 * Errors: -EINVAL (NULL h), WEFT_ENOTFINISHED (still running), -ECANCELED (it
 * was cancelled), WEFT_EFAILED (it failed; see weft_task_failure),
 * WEFT_EMISUSE (stale h, see the top of this file).  Reading a failure does
 * not consume it: the group still reports it.
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN int weft_task_result(const weft_task_t *h, void **value);

/* What it does: the failure code and message of a FAILED task.
 * Ownership: *msg stays owned by the handle.
 * Errors: -EINVAL (NULL h), WEFT_ENOTFINISHED (not failed), WEFT_EMISUSE
 * (stale h).
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN int weft_task_failure(const weft_task_t *h, int *code,
	const char **msg);

/* What it does: the value the task passed to weft_task_started (NULL
 * before that, or when it was spawned, not started).
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN void *weft_task_start_value(const weft_task_t *h);

/* What it does: cancels the task's own scope only (its siblings and group
 * are unaffected; a cancelled task never fails its group).  Idempotent;
 * does nothing once the task has finished.
 * Errors: -EINVAL (NULL h), WEFT_EMISUSE (stale h).  Checkpoint: no;
 * never blocks.  Threads: any thread holding h. */
WEFT_EXTERN int weft_task_cancel(weft_task_t *h);

/* What it does: weft_task_cancel with a reason text (asyncio's
 * Task.cancel(msg)): the task's weft_cancel_reason reports origin
 * WEFT_CANCEL_TASK with this text (copied, cut at 95 bytes; NULL gives
 * the default "task cancelled through its handle").  The first
 * cancellation's reason stays: a second call changes nothing.
 * Errors, checkpoint, threads: as weft_task_cancel. */
WEFT_EXTERN int weft_task_cancel_with(weft_task_t *h, const char *reason);

/* What it does: parks the caller until the task has finished (its result
 * is then readable).  It does not consume anything.
 * Errors: -EINVAL, -ECANCELED (the caller's scope was cancelled first; the
 * task keeps running), WEFT_ENOTFIBER, WEFT_EMISUSE (waiting on itself, or
 * stale h).
 * Checkpoint: yes (docs/semantics.md rule 22: a cancelled caller gets
 * -ECANCELED also when the task has already finished).
 * Threads: weft fiber. */
WEFT_EXTERN int weft_task_wait(weft_task_t *h);

/* What it does: the task's id (unique in the process, never 0) and name.
 * Ownership: the name is owned by the handle.
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN uint64_t weft_task_id(const weft_task_t *h);
WEFT_EXTERN const char *weft_task_name(const weft_task_t *h);

/* What it does: gives up the handle.  The task keeps running and is still
 * joined by its group: dropping a handle never detaches a task.
 * Ownership: h is invalid afterwards.  NULL is ignored.  Task records
 * belong to their runtime: release every handle before
 * weft_runtime_destroy (which refuses with -EBUSY otherwise).
 * Errors: releasing more often than the handle was given out and
 * retained (h stale, or the task still running with no handle left) is
 * refused and changes nothing; WEFT_DEBUG builds abort naming the call
 * and the task.
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN void weft_task_release(weft_task_t *h);

/* What it does: the id of the calling task, or 0 outside a weft task.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN uint64_t weft_current_task_id(void);

/* What it does: the calling task.
 * Ownership: borrowed: valid while the calling task runs; do not release
 * it.  weft_task_retain turns it into a handle of your own.
 * Errors: NULL outside a weft task.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN weft_task_t *weft_current_task(void);

/* What it does: the root task of the calling task's tree (the task that
 * weft_runtime_run runs), found by following parent groups' owners.
 * Ownership: borrowed: valid while the calling task runs.
 * Errors: NULL outside a weft task.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN weft_task_t *weft_root_task(void);

/* What it does: adds a reference to h, which the caller then gives up
 * with weft_task_release (e.g. to keep weft_current_task() past the
 * task's end, or to hand a handle to someone else).
 * Ownership: h must be a handle the caller holds, or the calling task's
 * own (weft_current_task).
 * Errors: -EINVAL (NULL h), WEFT_EMISUSE (stale h).  Checkpoint: no.
 * Threads: any thread. */
WEFT_EXTERN int weft_task_retain(weft_task_t *h);

/* What it does: renames the calling task (the name is copied and cut at
 * WEFT_TASK_NAME_MAX - 1 bytes).  Tasks are named after their function by
 * default: weft_group_spawn and weft_group_start use the function's name
 * as written at the call (C has no modules, so no "module:" prefix);
 * weft_runtime_run's root is "main".  Snapshots taken while a rename is
 * under way may show a mix of the two names.
 * Errors: -EINVAL (NULL name), WEFT_ENOTFIBER.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_task_set_name(const char *name);

/* What it does: renames the task behind h, as weft_task_set_name does
 * for the calling task (asyncio's Task.set_name).  Snapshots and the
 * task's own error leaves show the new name from then on; a rename racing
 * another rename of the same task may leave a mix of the two names.
 * Errors: -EINVAL (NULL h or name), WEFT_EMISUSE (stale h), WEFT_ECLOSED
 * (the task has finished: its name is part of its outcome).
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN int weft_task_rename(weft_task_t *h, const char *name);

/* What it does: the group that joins the task behind h (NULL for a root
 * task).
 * Ownership: borrowed: valid until the task has finished.
 * Errors: NULL for NULL h.  Checkpoint: no.
 * Threads: any thread holding h. */
WEFT_EXTERN weft_group_t *weft_task_group(const weft_task_t *h);

/* A done callback: h is the finished task (state and result readable);
 * borrowed for the call. */
typedef void (*weft_done_fn)(weft_task_t *h, void *arg);

/* What it does: calls fn(h, arg) once the task behind h has finished:
 * exactly once, after its outcome is published (weft_task_state and
 * weft_task_result give the final answer inside fn).  Registered before
 * the end, fn runs on the worker that finishes the task, as part of its
 * end, in registration order; registered after, it runs at once in the
 * caller, before this returns.  fn must not block or park (it delays the
 * finishing worker) and must not release h unless it holds a reference
 * of its own.
 * Ownership: the registration keeps the task record alive until fn has
 * run; the caller's handle stays the caller's.
 * Errors: -EINVAL (NULL h or fn), -ENOMEM (nothing registered),
 * WEFT_EMISUSE (stale h).
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN int weft_task_on_done(weft_task_t *h, weft_done_fn fn, void *arg);

/* What it does: unregisters every done callback of h registered with
 * this fn and arg that has not started to run (asyncio's
 * remove_done_callback, which matches the function only: weft also
 * matches arg, so one fn can serve several registrations).  Callbacks
 * the finishing task has already taken run as usual.
 * Returns: how many registrations were removed (0 when none, also once
 * the task has finished).
 * Ownership: each removed registration gives back the reference it held.
 * Errors: -EINVAL (NULL h or fn), WEFT_EMISUSE (stale h).
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN int weft_task_remove_done(weft_task_t *h, weft_done_fn fn,
	void *arg);

WEFT_END_DECLS

#endif
