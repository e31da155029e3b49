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
/* Never wait for a slot of a group with a child cap (weft_group_opts_t
 * max_children): a spawn that would wait returns -EAGAIN instead. */
#define WEFT_SPAWN_NOWAIT 0x8u
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

/* Group options (weft_group_open_opts; docs/semantics.md rules 50 and
 * 51).  A zero-initialised struct (or NULL) opens a group exactly as
 * weft_group_open does: no cap, no deadline. */
/* `deadline` is set (without the flag it is ignored, so that a zeroed
 * struct means "no deadline" although 0 is a valid time). */
#define WEFT_GROUP_DEADLINE 0x1u
/* Count the run time of the group's subtree exactly (weft_group_cpu_ns,
 * the dump); every group below it is counted exactly too.  Every group is
 * counted anyway, by sampling (weft_config_t.cpu_sample_us): this flag
 * trades the sampler's resolution for a cycle-counter read per switch
 * and two per join that runs children inline, on the subtree's tasks
 * only (about 10 ns each where measured). */
#define WEFT_GROUP_CPU_TIME 0x2u
typedef struct weft_group_opts {
	unsigned flags; /* WEFT_GROUP_* */
	/* Most live children at once (0: no cap).  A child is live from the
	 * spawn (or weft_group_start) that creates it until its function
	 * has returned and its end is recorded; a pending start() counts.
	 * A spawn that finds the cap reached waits for a slot (see
	 * weft_group_spawn_opts). */
	size_t max_children;
	/* Most bytes of fiber stacks the group's subtree may hold (0: no
	 * cap): every live task of the subtree (g's children, the children
	 * of groups they open, and so on) is charged one stack of the
	 * runtime's stack size (weft_config_t.stack_size rounded up to a
	 * page) from its creation to its end, whether it runs on a stack of
	 * its own or inline on its joiner's.  A spawn anywhere in the
	 * subtree that would exceed it fails with -ENOMEM. */
	size_t stack_bytes_max;
	/* With WEFT_GROUP_DEADLINE: an absolute weft_now() time at which the
	 * group is cancelled, its children and everything they spawn
	 * included; every value is valid (WEFT_FOREVER: none, one already
	 * past: cancelled at once).  join then returns -ETIMEDOUT unless a
	 * task failed (as a weft_fail_at scope around the group would). */
	int64_t deadline;
} weft_group_opts_t;

/* What it does: weft_group_open with options (weft_group_opts_t): a cap
 * on live children, a cap on the stack bytes of the group's subtree, a
 * deadline, run-time counting (WEFT_GROUP_CPU_TIME).  The deadline is a private cancel scope entered just outside
 * the group's own scope, so it reaches what the group's scope reaches.
 * Ownership: as weft_group_open; opts is read during the call only.
 * Errors: -EINVAL (NULL out; unknown flags; a stack_bytes_max that is not
 * 0 but below one stack, which could never hold a child), -ENOMEM,
 * WEFT_ENOTFIBER.  Nothing is opened on failure.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_group_open_opts(weft_group_t **out,
	const weft_group_opts_t *opts);

/* What it does: the run time of g's subtree in nanoseconds: the sum of
 * the run slices (from switch-in to switch-out, or to the task's end;
 * wall time, so a slice in which the OS preempted the worker's thread
 * counts whole) of g's children and of every task below them (the
 * children of groups they open).  Not the owner's own time, nor that of
 * groups the owner opens itself.  Sampled (docs/semantics.md rule 51):
 * a slice is charged the sampler periods (weft_config_t.cpu_sample_us,
 * 1 ms by default) that ended while it ran, which is right on average:
 * the error of a total T is of the order of sqrt(T x period), a few
 * percent once T is a few hundred periods.  Exact, from the CPU's cycle
 * counter, when g was opened with WEFT_GROUP_CPU_TIME or by a task of
 * such a subtree.  A slice reaches g when the task ends, and while it
 * runs at its first park or yield after every millisecond or so of run
 * time; a nested group's total reaches g when that group is joined (and
 * the task that joined it then ends or folds again).
 * Errors: -EINVAL (NULL g), WEFT_EMISUSE (stale g), -ENOTSUP (the
 * sampler is off, cpu_sample_us 0, and g is not in a WEFT_GROUP_CPU_TIME
 * subtree).  The first call in the process measures the cycle counter's
 * rate for about 2 ms.
 * Checkpoint: no.  Threads: any thread, while g is alive (before its
 * join, or retained: then the final total). */
WEFT_EXTERN int64_t weft_group_cpu_ns(const weft_group_t *g);

/* What it does: creates a task running fn(arg) as a child of g; it starts
 * soon, on any worker.  The child runs under g's cancel scope (not the
 * spawner's local scopes), with a snapshot of the calling task's
 * task-local context (weft/local.h; opts->context and
 * WEFT_SPAWN_EMPTY_CONTEXT replace it).  A cancelled group still accepts
 * spawns: the child starts cancelled and runs to its first checkpoint (unless
 * WEFT_SPAWN_SKIPPABLE).
 * Budgets (weft_group_opts_t, docs/semantics.md rule 50): when g has a
 * child cap and it is reached, the spawn waits, first come first served,
 * until a child of g ends (g's join waits for it meanwhile); unless
 * WEFT_SPAWN_NOWAIT, or the caller is a plain thread, which get -EAGAIN
 * instead (a plain thread is never blocked).  When g or a group above it has a stack cap that this child
 * would exceed, -ENOMEM.
 * Ownership: arg passes to the task; on failure it stays the caller's.
 * Errors: -EINVAL (NULL g or fn), WEFT_ECLOSED (g is closed: its join has
 * returned, or has seen its last child end with no start pending; until
 * then a spawn into a joining g succeeds and the join waits for the new
 * child too, as Trio's; a joined g must be retained to be used at all),
 * -ECANCELED (WEFT_SPAWN_UNLESS_CANCELLED and g is cancelled; or the
 * caller was cancelled while waiting for a child slot), -EAGAIN (the
 * child cap is reached and the caller may not wait), -ENOMEM (out of
 * memory, or a stack cap), WEFT_EMISUSE (stale g: joined and freed).
 * Nothing is created on failure.  A child that g's owner spawns (no
 * handle, its own context) gets its task record only when it starts
 * (runtime/core/frame.c); if no memory can be had for it or its stack
 * then, it fails with -ENOMEM without running, reported through g like
 * any failed child.
 * Checkpoint: only while waiting for a child slot (a cancellable wait
 * under the caller's scopes; it does not yield otherwise).
 * Threads: weft fiber running in g's runtime (the
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
 * WEFT_ENOTFIBER; budgets as weft_group_spawn_opts (the pending task
 * counts as a live child and is charged a stack).
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
 * (docs/semantics.md rule 12); -ETIMEDOUT when g was opened with a
 * deadline (WEFT_GROUP_DEADLINE), it passed before the join ended and
 * nothing failed.
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
 * one weft_group_release, before weft_runtime_destroy (which refuses,
 * -EBUSY, while one is held: g lives in the runtime's memory).
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
