/* Combinators: run several functions as tasks and combine their outcomes
 * (gather, race), or wait for tasks that already exist (wait, wait_for,
 * as_completed).  docs/semantics.md rules 32-35; asyncio's gather / wait /
 * wait_for / as_completed and Java's "any successful result", with
 * structured concurrency: nothing outlives the call that started it, and
 * nothing is left running behind the caller's back.
 *
 * Rules shared by every blocking call below:
 *   - It is a checkpoint: it returns -ECANCELED if the calling task is
 *     already cancelled on entry (weft_wait_for also cancels its task then,
 *     see there).
 *   - It obeys the deadlines of the enclosing cancel scopes
 *     (weft_move_on_after, weft_fail_after...): the deadline cancels the
 *     scope, which wakes the caller, which returns -ECANCELED (a fail_after
 *     scope's exit then reports -ETIMEDOUT).
 *   - Handles passed in must belong to the caller's runtime, must not be
 *     the caller's own task (WEFT_EMISUSE: it would wait for itself), and
 *     stay owned by the caller: no call here releases, consumes or detaches
 *     a handle, and a task waited for stays owned by its group.
 *
 * Typical use:
 *     weft_call_t calls[2] = { { fetch, url_a, "a" }, { fetch, url_b, "b" } };
 *     weft_gather_result_t res[2];
 *     weft_error_t *err = NULL;
 *     int rc = weft_gather(calls, 2, 0, res, &err);
 *     if (rc == WEFT_ECHILD_FAILED) return weft_fail_group(err);
 *     use(res[0].value, res[1].value);
 */
#ifndef WEFT_COMBINE_H
#define WEFT_COMBINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/export.h"
#include "weft/runtime.h"
#include "weft/task.h"

WEFT_BEGIN_DECLS

/* One function to run as a task. */
typedef struct weft_call {
	weft_fn fn;	  /* required */
	void *arg;	  /* passed to fn; ownership as for a spawn */
	const char *name; /* task name (copied); NULL = "gather" / "race" */
} weft_call_t;

/* {======================================================= gather */

/* The outcome of one call of weft_gather. */
typedef struct weft_gather_result {
	/* 0 (finished), -ECANCELED (cancelled, or never created), or the
	 * task's failure code. */
	int rc;
	/* What the task gave weft_task_set_result (NULL if it gave nothing);
	 * set only when rc == 0.  weft never dereferences or frees it. */
	void *value;
	/* With WEFT_GATHER_RETURN_ERRORS, for a failed slot: a one-leaf error
	 * group (code, message, task name and id, nested groups) that the
	 * caller owns and frees with weft_error_free.  NULL otherwise. */
	weft_error_t *error;
} weft_gather_result_t;

/* weft_gather flag: every slot receives a value or an error and nothing
 * is cancelled because a task failed (asyncio's return_exceptions=True). */
#define WEFT_GATHER_RETURN_ERRORS 0x1u

/* What it does: runs calls[0..n) as tasks of a private group owned by the
 * caller (in parallel, on any worker), waits for all of them and writes
 * each outcome to results[i], in call order.
 *   Default: the first failure cancels the other tasks (deliberately
 *   unlike asyncio, rule 35) and every failure comes back, exactly once,
 *   in one error group, as from weft_group_join.
 *   WEFT_GATHER_RETURN_ERRORS: a failure cancels nothing; results[i] holds
 *   the value or the error of each task; the call returns 0.  (One
 *   exception, in both modes and in weft_race: a task for which no stack
 *   can be allocated ends with -ENOMEM before it runs, and that failure
 *   cancels the others, as in any group.)
 * Cancelling the caller (any enclosing scope, or its deadline) cancels
 * every task; the call still waits for all of them before it returns.
 * n == 0 returns 0 at once (like asyncio's gather()).
 * Ownership: calls must stay valid until the call returns; each arg passes
 * to its task.  results[] is written once the arguments are valid (every
 * slot starts as { -ECANCELED, NULL, NULL }), on every later return, and
 * the caller owns every results[i].error then.  *err_out (if err_out is
 * not NULL; else the error group is freed) receives the error group on
 * WEFT_ECHILD_FAILED and NULL otherwise.
 * Returns: 0; WEFT_ECHILD_FAILED (default mode: a task failed; results[i].rc
 * says which); -ECANCELED (the caller was cancelled and, in default mode,
 * no task failed; results[] still holds what finished).
 * Errors: -EINVAL (NULL calls or results with n > 0, a NULL fn, unknown
 * flags), WEFT_ENOTFIBER, -ECANCELED (cancelled on entry: nothing was
 * created), -ENOMEM (before anything was created: nothing happened; or
 * while creating task i: the tasks created before it were cancelled and
 * waited for, their outcomes are in results[], and in default mode a
 * failure among them is returned as WEFT_ECHILD_FAILED instead).
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_gather(const weft_call_t *calls, size_t n, unsigned flags,
	weft_gather_result_t *results, weft_error_t **err_out);

/* }======================================================= */

/* {======================================================= race */

/* What it does: runs calls[0..n) as tasks of a private group owned by the
 * caller; the first task to return 0 wins: the others are cancelled, and
 * the call waits for all of them before it returns the winner's value
 * (rule 33; Java's anySuccessfulResultOrThrow).  A failure cancels
 * nothing: the others race on.  If every task failed, the failures come
 * back in one error group, in call order.
 * Once a task has won, the losers' outcomes are dropped: their failures
 * (typically collateral, during cancellation) are not reported, and the
 * value of a loser that also succeeded is discarded, so race functions
 * whose values own resources must release them when cancelled.
 * Ownership: as weft_gather.  *value (if value is not NULL) receives the
 * winner's weft_task_set_result value, *winner (if not NULL) its index;
 * *err_out as weft_gather.
 * Returns: 0 (a task won; also when the caller was cancelled meanwhile:
 * the next checkpoint reports that); WEFT_ECHILD_FAILED (no task won and
 * at least one failed); -ECANCELED (no task won or failed: the caller was
 * cancelled).
 * Errors: -EINVAL (NULL calls, n == 0: nobody could win, a NULL fn),
 * WEFT_ENOTFIBER, -ECANCELED (cancelled on entry: nothing was created),
 * -ENOMEM (as weft_gather; when a task cannot be created and none won, the
 * failures of the others are dropped).
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_race(const weft_call_t *calls, size_t n, void **value,
	size_t *winner, weft_error_t **err_out);

/* }======================================================= */

/* {======================================================= wait */

typedef enum weft_wait_mode {
	/* Return when any task has ended (finished, failed or cancelled). */
	WEFT_WAIT_FIRST_COMPLETED = 0,
	/* Return when any task has failed (a cancelled task is not a
	 * failure), or when all have ended. */
	WEFT_WAIT_FIRST_EXCEPTION = 1,
	/* Return when all tasks have ended. */
	WEFT_WAIT_ALL_COMPLETED = 2
} weft_wait_mode_t;

/* What it does: parks the caller until the condition `mode` holds for the
 * tasks behind handles[0..n), or until `deadline` (absolute, weft_now()
 * time; WEFT_FOREVER = none) passes, and then writes done[i] = true for
 * each task that has ended and false for each still pending (rule 34).  A
 * deadline that passes is not an error: the call returns 0 and the
 * pending tasks show in done[].  Pending tasks are never cancelled: they
 * keep running, owned by their group, which joins them as usual.  The same
 * handle may appear more than once.
 * Ownership: handles stay the caller's; done is the caller's array of n
 * flags, written only on success.
 * Errors: -EINVAL (NULL handles or done, n == 0 (nothing could ever
 * complete, as asyncio), a NULL handle, an unknown mode), WEFT_EMISUSE (a
 * handle of another runtime, or of the caller itself), -ECANCELED (the
 * caller was cancelled before the condition held, including by an
 * enclosing scope's deadline), -ENOMEM (more than 8 handles in a FIRST_*
 * mode need a waiter array: nothing happened), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_wait(weft_task_t *const *handles, size_t n,
	weft_wait_mode_t mode, int64_t deadline, bool *done);

/* What it does: asyncio's gather(*tasks, return_exceptions=True) for tasks
 * that already exist: parks until every task behind handles[0..n) has
 * ended and writes results[i] = { rc, value, NULL }: rc 0 with the
 * task's weft_task_set_result value, -ECANCELED (it was cancelled), or
 * its failure code (the message: weft_task_failure).  Nothing is
 * cancelled.  A failure stays its group's to report: this call gives
 * codes, never error groups, so every failure still reaches exactly one
 * place (its group's join).
 * Ownership: handles stay the caller's; results is the caller's array of
 * n slots, written on 0 and on -ECANCELED.
 * Returns: 0 once all have ended, whatever their outcomes (n == 0: at
 * once); -ECANCELED (the caller was cancelled first: a task still running
 * has rc WEFT_ENOTFINISHED in its slot, and keeps running).
 * Errors: as weft_wait (-EINVAL for NULL handles or results with n > 0),
 * and -ENOMEM (more than 8 handles need a flag array: nothing
 * happened).
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_gather_tasks(weft_task_t *const *handles, size_t n,
	weft_gather_result_t *results);

/* What it does: waits for the task behind h for at most `timeout`
 * nanoseconds from now (WEFT_FOREVER = no limit; <= 0: do not wait) and
 * returns its outcome (rule 32, asyncio 3.12's wait_for):
 *   - if it ends in time: as weft_task_result (0 and *value, -ECANCELED if
 *     it was cancelled, WEFT_EFAILED if it failed);
 *   - if the timeout passes first: cancels the task, waits until it has
 *     ended (shielded: nothing can make this call leave it running), and
 *     returns -ETIMEDOUT;
 *   - if the caller is cancelled first (also on entry, or by an enclosing
 *     deadline): cancels the task too, waits until it has ended, and
 *     returns -ECANCELED.
 * After -ETIMEDOUT or -ECANCELED the task's real outcome is readable
 * through h (it may have finished successfully at the last moment: a
 * value it owns is then the caller's to release).  A task that ignores
 * cancellation (a shield) keeps this call waiting: that is the point.
 * Ownership: h stays the caller's; *value (if value is not NULL) is
 * written only when 0 is returned.
 * Errors: -EINVAL (NULL h), WEFT_EMISUSE (h of another runtime, or the
 * caller's own handle), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_wait_for(weft_task_t *h, int64_t timeout, void **value);

/* }======================================================= */

/* {======================================================= as_completed */

/* An iterator yielding tasks in the order they end. */
typedef struct weft_as_completed weft_as_completed_t;

/* What it does: creates an iterator over the tasks behind handles[0..n)
 * (n may be 0: the first next() returns WEFT_EEND).  The array is copied;
 * the handles themselves must stay valid until weft_as_completed_close.
 * Ownership: the caller owns *out; only the calling task may use it.
 * Errors: -EINVAL (NULL out, NULL handles with n > 0, a NULL handle),
 * WEFT_EMISUSE (a handle of another runtime or of the caller itself),
 * -ENOMEM, WEFT_ENOTFIBER.  Nothing is created on failure.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_as_completed_open(weft_as_completed_t **out,
	weft_task_t *const *handles, size_t n);

/* What it does: parks the caller until one more of the iterator's tasks
 * has ended, and returns its position in the array given to open
 * (*index) and its handle (*handle); either may be NULL.  Each task is
 * yielded exactly once, in the order next() sees the tasks end: when it
 * finds several ended at once (they ended before the call, or while it
 * was waking up), lowest index first.  The task's outcome is then
 * readable through its handle.
 * Ownership: *handle is the caller's own handle from the array given to
 * open (no new reference).
 * Returns: 0; WEFT_EEND once every task has been yielded.
 * Errors: -EINVAL (NULL it), WEFT_EMISUSE (not the task that opened it),
 * -ECANCELED (cancelled before a task ended; nothing is yielded),
 * WEFT_ENOTFIBER.
 * Checkpoint: yes (WEFT_EEND is returned without one).
 * Threads: the weft task that opened it. */
WEFT_EXTERN int weft_as_completed_next(weft_as_completed_t *it, size_t *index,
	weft_task_t **handle);

/* What it does: frees the iterator, also before the end: the tasks not
 * yet yielded are left alone (not cancelled, still owned by their group).
 * Returns nothing: the close cannot be refused and never waits (the done
 * callbacks of tasks still running keep the iterator's memory until they
 * have run).
 * Ownership: it is invalid afterwards; NULL is ignored.
 * Checkpoint: no.  Threads: the weft task that opened it. */
WEFT_EXTERN void weft_as_completed_close(weft_as_completed_t *it);

/* }======================================================= */

WEFT_END_DECLS

#endif
