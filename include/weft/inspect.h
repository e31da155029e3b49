/* Introspection (semantics rules 37 and 38): task names and ids, the
 * current and root task, parent groups and children, a snapshot of every
 * live task, a dump of the whole group -> task tree (text or JSON), and
 * done callbacks.
 *
 * Consistency: snapshots and dumps are weakly consistent (Kotlin's
 * DebugProbes contract).  Every task that is live during the whole
 * snapshot appears exactly once, in some state it had during the
 * snapshot; a task that starts or ends meanwhile appears at most once.
 * They may be taken from any thread, including a plain thread while the
 * runtime runs (a debugger, a watchdog), and never stop or slow the
 * tasks beyond the scope locks a dump holds briefly. */
#ifndef WEFT_INSPECT_H
#define WEFT_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/export.h"
#include "weft/group.h"
#include "weft/runtime.h"
#include "weft/task.h"

WEFT_BEGIN_DECLS

/* Longest task name kept, including the terminating NUL. */
#define WEFT_TASK_NAME_MAX 40

/* One live task, copied out of the runtime by a snapshot. */
typedef struct weft_task_info {
	uint64_t id;         /* as weft_task_id */
	uint64_t group_id;   /* id of the group that joins it; 0 for a root */
	char name[WEFT_TASK_NAME_MAX];
	/* What it is parked on ("join", "sleep", "task wait", "start", a
	 * primitive's name such as "lock" or "event"), or NULL while it runs
	 * or waits for a worker.  A static string. */
	const char *parked_on;
	int worker;          /* worker it runs on or last ran on; -1: none */
} weft_task_info_t;

/* What it does: the calling task.
 * Ownership: borrowed: valid while the calling task runs; do not release
 * it.  weft_task_retain turns it into a handle of your own.
 * Errors: NULL outside a weft task.  Checkpoint: no.  Threads: any. */
WEFT_EXTERN weft_task_t *weft_current_task(void);

/* What it does: the root task of the calling task's tree (the task that
 * weft_runtime_run runs), found by following parent groups' owners.
 * Ownership: borrowed: valid while the calling task runs.
 * Errors: NULL outside a weft task.  Checkpoint: no.  Threads: any. */
WEFT_EXTERN weft_task_t *weft_root_task(void);

/* What it does: adds a reference to h, which the caller then gives up
 * with weft_task_release (e.g. to keep weft_current_task() past the
 * task's end, or to hand a handle to someone else).
 * Ownership: h must be a handle the caller holds, or the calling task's
 * own (weft_current_task).
 * Errors: -EINVAL (NULL h).  Checkpoint: no.  Threads: any. */
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

/* What it does: the group that joins the task behind h (NULL for a root
 * task).
 * Ownership: borrowed: valid until the task has finished.
 * Errors: NULL for NULL h.  Checkpoint: no.
 * Threads: any thread holding h. */
WEFT_EXTERN weft_group_t *weft_task_group(const weft_task_t *h);

/* What it does: the group's id (unique in the process, never 0; the
 * group_id of its children in weft_task_info_t).
 * Errors: 0 for NULL g.  Checkpoint: no.
 * Threads: any, while g is alive. */
WEFT_EXTERN uint64_t weft_group_id(const weft_group_t *g);

/* What it does: copies every live task of rt (NULL: the calling task's
 * runtime) into out[0..cap) and sets *count to how many there were (so
 * *count > cap means some were left out: retry with a bigger array).
 * Weakly consistent (see the top of this file); tasks in no particular
 * order.  Costs a scan of every task record the runtime allocated.
 * Errors: -EINVAL (NULL count, or NULL out with cap > 0), WEFT_ENOTFIBER
 * (rt NULL outside a task).
 * Checkpoint: no; never blocks.  Threads: any, while rt exists. */
WEFT_EXTERN int weft_all_tasks(weft_runtime_t *rt, weft_task_info_t *out,
	size_t cap, size_t *count);

/* What it does: as weft_all_tasks, for the live children of g only
 * (tasks spawned into g, and started into it, still running).
 * Errors: -EINVAL (NULL g or count, or NULL out with cap > 0).
 * Checkpoint: no; never blocks.  Threads: any, while g is alive. */
WEFT_EXTERN int weft_group_children(const weft_group_t *g,
	weft_task_info_t *out, size_t cap, size_t *count);

/* Dump formats. */
#define WEFT_DUMP_TEXT 0u
#define WEFT_DUMP_JSON 1u

/* Receives the dump, in pieces (no terminating NUL); returns 0, or a
 * negative code to stop the dump (weft_runtime_dump returns it). */
typedef int (*weft_dump_writer_fn)(void *ctx, const char *data, size_t len);

/* What it does: writes the tree of rt (NULL: the calling task's runtime):
 * each root task, the cancel scopes and groups its tasks have entered,
 * and under each group its live children, recursively.  Per task: id,
 * name, state ("parked"/"active"), what it is parked on, worker, its
 * effective deadline (on weft_now's clock), whether it is effectively
 * cancelled, whether cancelling it was requested, whether its innermost
 * scopes are shielded.  Per group and scope: id, deadline, cancelled,
 * shield.  WEFT_DUMP_TEXT: one indented line per node.  WEFT_DUMP_JSON:
 * one object {"workers":N,"now":ns,"tree":[nodes]}, each node an object
 * with "type" ("task", "group", "scope" or "sleep"), its fields and
 * "children":[...]; a deadline is a number or null.  A task that has not
 * yet entered any scope nor checkpointed is listed under its group.
 * The tree is collected first, under the scope locks and rt's dump lock
 * (which serialises dumps), and written after they are released, so
 * write may do anything except dump rt again.
 * Errors: -EINVAL (NULL write, unknown flags), WEFT_ENOTFIBER (rt NULL
 * outside a task), -ENOMEM, or write's own negative code.
 * Checkpoint: no (it does not park, but may spin briefly on scope locks).
 * Threads: any, while rt exists. */
WEFT_EXTERN int weft_runtime_dump(weft_runtime_t *rt, unsigned flags,
	weft_dump_writer_fn write, void *ctx);

/* What it does: weft_runtime_dump into buf with snprintf semantics: at
 * most size - 1 bytes and a NUL (if size > 0); *len receives the length
 * of the whole dump, so *len >= size means it was cut.
 * Errors: as weft_runtime_dump; -EINVAL also for NULL len, or NULL buf
 * with size > 0.  Checkpoint: no.  Threads: any, while rt exists. */
WEFT_EXTERN int weft_runtime_dump_buf(weft_runtime_t *rt, unsigned flags,
	char *buf, size_t size, size_t *len);

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
 * Errors: -EINVAL (NULL h or fn), -ENOMEM (nothing registered).
 * Checkpoint: no.  Threads: any thread holding h. */
WEFT_EXTERN int weft_task_on_done(weft_task_t *h, weft_done_fn fn,
	void *arg);

WEFT_END_DECLS

#endif
