/* Task groups (Trio's nurseries, AnyIO's task groups).
 *
 * A task opens a group, spawns children into it (they run in parallel on
 * any worker), and joins it.  Join returns only when every child and every
 * pending start() has ended.  The first failure cancels the group; every
 * failure comes back from join in one owned error group.  Cancellation is
 * never a failure.  The owner's body runs inside the group's cancel scope,
 * so cancelling the group cancels the owner's checkpoints too until join.
 *
 * Typical use:
 *     weft_group_t *g;
 *     int rc = weft_group_open(&g);
 *     if (rc < 0) return rc;
 *     weft_group_spawn(g, fetch, url);
 *     weft_error_t *err = NULL;
 *     rc = weft_group_join(g, &err);   // frees g
 *     if (rc == WEFT_ECHILD_FAILED) return weft_fail_group(err);
 */
/* Misuse is caught: a group handle used after the group was freed (after
 * its join, unless retained; after the last weft_group_release of a
 * retained one) is stale, and every function below detects it (the
 * handle carries a generation of the group record, which weft reuses; a
 * handle 65536 reuses stale is not told apart).  Libraries built with
 * WEFT_DEBUG then abort with a message naming the call and the handle;
 * other builds return WEFT_EMISUSE and do nothing. */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include "weft/error.h"
#include "weft/export.h"
#include "weft/runtime.h"
#include "weft/task.h"

WEFT_BEGIN_DECLS

typedef struct weft_group weft_group_t;

/* Spawn flags. */
/* Cancelled before it first ran => it may be skipped entirely.  Only for
 * tasks whose argument owns nothing (docs/semantics.md rule 30). */
#define WEFT_SPAWN_SKIPPABLE 0x1u
/* Refuse with -ECANCELED (creating nothing) if the group is cancelled. */
#define WEFT_SPAWN_UNLESS_CANCELLED 0x2u
/* The task starts with the empty (root) context instead of a snapshot of
 * the spawner's task-local context (weft/local.h); wins over `context`. */
#define WEFT_SPAWN_EMPTY_CONTEXT 0x4u
/* Bits 0x80000000 and up are reserved for weft's own use. */

/* Task-local context snapshot (weft/local.h). */
typedef struct weft_context weft_context_t;

typedef struct weft_spawn_opts {
	const char *name;     /* copied; NULL = "task" */
	unsigned flags;	      /* WEFT_SPAWN_* */
	weft_task_t **handle; /* if not NULL, receives a handle the caller
			       * must weft_task_release */
	/* If not NULL, the task starts with this context (from
	 * weft_context_capture; the task takes its own reference, the
	 * caller keeps theirs) instead of a snapshot of the spawner's. */
	weft_context_t *context;
} weft_spawn_opts_t;

/* What it does: opens a group owned by the calling task and enters its
 * cancel scope.
 * Ownership: *out belongs to the calling task until weft_group_join frees
 * it.  A task that returns without joining its groups aborts the process
 * naming the task and the group's opening site (function, and file:line
 * when weft has libdw and the caller debug information) when the runtime's
 * config has abort_on_missing_join (the default in WEFT_DEBUG builds);
 * otherwise they are cancelled, joined, and reported as
 * WEFT_EMISSINGJOIN.
 * Errors: -EINVAL (NULL out), -ENOMEM, WEFT_ENOTFIBER.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_group_open(weft_group_t **out);

/* What it does: creates a task running fn(arg) as a child of g; it starts
 * soon, on any worker.  The child runs under g's cancel scope (not the
 * spawner's local scopes), with a snapshot of the calling task's
 * task-local context (weft/local.h; opts->context and
 * WEFT_SPAWN_EMPTY_CONTEXT replace it).  A cancelled group still accepts
 * spawns: the child starts cancelled and runs to its first checkpoint (unless
 * WEFT_SPAWN_SKIPPABLE).
 * Ownership: arg passes to the task; on failure it stays the caller's.
 * Errors: -EINVAL (NULL g or fn), WEFT_ECLOSED (g is joined or joining and
 * has no pending start; a joined g must be retained to be used at all),
 * -ECANCELED (WEFT_SPAWN_UNLESS_CANCELLED and g is cancelled), -ENOMEM,
 * WEFT_EMISUSE (stale g: joined and freed).  Nothing is created on
 * failure.
 * Checkpoint: no.  Threads: weft fiber running in g's runtime (the
 * owner, a child, or any other task holding g; another runtime's task
 * gets WEFT_EMISUSE), or a plain thread while g is held alive by a
 * weft_group_retain (the task then starts with an empty task-local
 * context and is queued through the runtime's injection queue). */
WEFT_EXTERN int weft_group_spawn_opts(weft_group_t *g, weft_fn fn, void *arg,
	const weft_spawn_opts_t *opts);

/* What it does: weft_group_spawn_opts with the task named name (copied).
 * Ownership, errors, checkpoint, threads: as weft_group_spawn_opts. */
WEFT_EXTERN int weft_group_spawn_named(weft_group_t *g, const char *name,
	weft_fn fn, void *arg);

/* What it does: weft_group_spawn_named for a name with static storage
 * that never changes (a string literal: what weft_group_spawn passes), so
 * weft may skip copying it when a recycled task record already holds it.
 * Ownership, errors, checkpoint, threads: as weft_group_spawn_opts. */
WEFT_EXTERN int weft_group_spawn_literal(weft_group_t *g, const char *name,
	weft_fn fn, void *arg);

/* Spawns fn(arg) into g, naming the task after the function as written
 * at the call (C has no modules: "fetch", not "module:fetch"). */
#define weft_group_spawn(g, fn, arg)                                           \
	weft_group_spawn_literal((g), #fn, (fn), (arg))

/* What it does: starts fn(arg) and parks the caller until the task calls
 * weft_task_started(value); then *value_out (if not NULL) receives value
 * and the task continues as a child of g.  Before started() the task
 * belongs to the caller: it runs under the caller's cancel scopes, and its
 * failure is returned here, not aggregated into g.  g cannot close while a
 * start is pending.
 * Ownership: as weft_group_spawn_opts; opts->handle (if given) receives a
 * handle also on failure after the task was created.
 * Errors: the task's failure code (its message: weft_task_failure on the
 * handle), WEFT_ENOTSTARTED (it returned without calling started(), even
 * successfully), -ECANCELED (the caller was cancelled first: the task was
 * cancelled and waited for; also when it returned 0 without started()
 * while the caller was cancelled), WEFT_ECLOSED, -EINVAL, -ENOMEM,
 * WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_group_start_opts(weft_group_t *g, weft_fn fn, void *arg,
	const weft_spawn_opts_t *opts, void **value_out);

/* What it does: weft_group_start_opts with the task named name (copied).
 * Ownership, errors, checkpoint, threads: as weft_group_start_opts. */
WEFT_EXTERN int weft_group_start_named(weft_group_t *g, const char *name,
	weft_fn fn, void *arg, void **value_out);

/* Starts fn(arg) in g, naming the task after the function. */
#define weft_group_start(g, fn, arg, value_out)                                \
	weft_group_start_named((g), #fn, (fn), (arg), (value_out))

/* What it does: closes g to new spawns, waits until every child and
 * pending start has ended, leaves g's cancel scope and frees g.
 * g is freed unless it was retained (weft_group_retain).
 * Returns: 0 when no task failed (also when g was cancelled by
 * weft_group_cancel or by its own failure handling: the group absorbs the
 * cancellation it caused); -ECANCELED when an enclosing scope was
 * cancelled and nothing failed; WEFT_ECHILD_FAILED when at least one child
 * (or the owner, through weft_group_fail) failed: *err_out receives every
 * failure exactly once, in one error group the caller owns (if err_out is
 * NULL it is freed); failures that could not be recorded for lack of
 * memory are stood for by an -ENOMEM leaf that says so
 * (docs/semantics.md rule 12).
 * Ownership: g is freed (unless retained); the caller owns *err_out and
 * frees it with weft_error_free.
 * Errors: -EINVAL (NULL g), WEFT_EMISUSE (the caller did not open g, or g was
 * already joined, or g is stale: g is untouched), WEFT_EMISNEST (a cancel
 * scope entered after g is still entered: nothing is done; exit it first).
 * Checkpoint: yes (waiting is not interrupted by cancellation: an outer
 * cancel reaches the children through g's scope instead).
 * Threads: the weft task that opened g. */
WEFT_EXTERN int weft_group_join(weft_group_t *g, weft_error_t **err_out);

/* What it does: keeps g's memory valid after its join, for code that may
 * still try to spawn into it (a listener handing connections to a group it
 * did not open): such spawns then fail with WEFT_ECLOSED instead of
 * touching freed memory.
 * Ownership: the caller holds one more reference to g; each retain needs
 * one weft_group_release.
 * Errors: -EINVAL (NULL g), WEFT_EMISUSE (stale g).  Checkpoint: no.
 * Threads: any thread, while g is alive (before its join, or retained). */
WEFT_EXTERN int weft_group_retain(weft_group_t *g);

/* What it does: drops a reference taken with weft_group_retain; the group
 * is freed when its join has finished and no reference is left.
 * Ownership: the caller gives up that reference.
 * Errors: NULL is ignored.  A release without a matching
 * weft_group_retain (it would drop the owner's reference and free an open
 * group), or of a stale g, is refused and changes nothing; WEFT_DEBUG
 * builds abort naming the call and the group.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_group_release(weft_group_t *g);

/* What it does: the group's id (unique in the process, never 0; the
 * group_id of its children in weft_task_info_t).
 * Errors: 0 for NULL or stale g.  Checkpoint: no.
 * Threads: any thread, while g is alive. */
WEFT_EXTERN uint64_t weft_group_id(const weft_group_t *g);

/* What it does: cancels g's scope: every child and the owner's body see
 * -ECANCELED at their next checkpoint.  Not a failure (join returns 0 if
 * nothing failed).  Idempotent; reason (may be NULL) is copied.
 * Errors: -EINVAL (NULL g), WEFT_EMISUSE (stale g).  Checkpoint: no; never
 * blocks.
 * Threads: any thread, while g is alive (before its join, or retained). */
WEFT_EXTERN int weft_group_cancel(weft_group_t *g, const char *reason);

/* What it does: records a failure of the owner's body (a leaf named after
 * the owner, first if it is the first failure) and cancels g, so join
 * returns WEFT_ECHILD_FAILED with it.
 * Errors: -EINVAL, WEFT_EMISUSE (not the owner, or stale g), -ENOMEM (nothing
 * recorded; g is still cancelled).  Returns code otherwise.
 * Checkpoint: no.  Threads: the weft task that opened g. */
WEFT_EXTERN int weft_group_fail(weft_group_t *g, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

WEFT_END_DECLS

#endif
