/* Cancel scopes, deadlines and checkpoints (Trio semantics).
 *
 * A scope is entered and exited by one task, in LIFO order.  Cancelling a
 * scope (explicitly, or when its deadline passes) cancels everything that
 * runs inside it: the code between enter and exit, the groups opened there
 * and their children, unless a shielded scope stands in between.
 * Cancellation is level-triggered: inside a cancelled scope every
 * checkpoint returns -ECANCELED, every time, until the scope is exited.  A
 * scope's exit consumes only its own cancellation.
 *
 * Typical timeout:
 *     weft_scope_t *s;
 *     weft_fail_after(&s, 2 * WEFT_SEC);
 *     rc = do_work();
 *     int t = weft_scope_exit(s);     // -ETIMEDOUT iff s's deadline hit
 *     weft_scope_destroy(s);
 */
#ifndef WEFT_CANCEL_H
#define WEFT_CANCEL_H

#include <stdint.h>

#include "weft/export.h"

WEFT_BEGIN_DECLS

typedef struct weft_scope weft_scope_t;

/* Scope flags. */
#define WEFT_SCOPE_SHIELD 0x1u /* ignore cancellation from outside */
#define WEFT_SCOPE_FAIL                                                        \
	0x2u /* exit returns -ETIMEDOUT if the own
				* deadline cancelled the body (fail_after) */

/* Why a cancellation happened. */
typedef enum weft_cancel_origin {
	WEFT_CANCEL_NONE = 0,
	WEFT_CANCEL_EXPLICIT = 1, /* weft_scope_cancel / weft_group_cancel */
	WEFT_CANCEL_DEADLINE = 2, /* the scope's deadline passed */
	WEFT_CANCEL_GROUP_FAILURE = 3, /* a task of the group failed */
	WEFT_CANCEL_TASK = 4,	       /* weft_task_cancel on a handle */
	WEFT_CANCEL_START = 5, /* the weft_group_start caller was cancelled */
	/* Phase two of a two-phase shutdown (weft_shutdown_open in
	 * weft/signal.h) cancelled the service's group; the text says what
	 * started it: "shutdown (SIGTERM): grace period over", "shutdown
	 * (weft_shutdown_trigger): no grace period". */
	WEFT_CANCEL_SIGNAL = 6,
	/* weft_scope_reason only: the scope itself was not cancelled, but a
	 * cancellation of a scope further out reached it while it was
	 * entered; scope_id, task_id and text are that cancellation's. */
	WEFT_CANCEL_PARENT = 7,
	/* Under the virtual clock (weft/time.h), every task of the runtime
	 * was blocked with no deadline pending and nothing in flight: the
	 * runtime cancelled each root task (docs/semantics.md rule 44). */
	WEFT_CANCEL_DEADLOCK = 8
} weft_cancel_origin_t;

/* A cancellation's reason.  The text given to a cancelling call is copied
 * (up to 95 bytes); when that copy cannot be allocated the cancellation
 * still happens and the text reads "cancelled (reason text lost: out of
 * memory)". */
typedef struct {
	weft_cancel_origin_t origin;
	uint64_t scope_id; /* the scope that was cancelled */
	uint64_t task_id;  /* the task that cancelled it (0: not a task) */
	char text[96];	   /* the reason text given, or a default */
} weft_cancel_reason_t;

/* What it does: creates a scope, not yet entered.  It may be cancelled
 * before entry (the first checkpoint after entry then fails).
 * deadline: absolute weft_now() time or WEFT_FOREVER; one already past
 * cancels the scope at once, as weft_scope_set_deadline does.
 * Ownership: the caller owns *out; free with weft_scope_destroy.
 * Errors: -EINVAL (NULL out, unknown flags), -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_scope_create(weft_scope_t **out, int64_t deadline,
	unsigned flags);

/* What it does: enters s: it becomes the innermost scope of the calling
 * task.  A scope is single-use.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (already entered once),
 * WEFT_ENOTFIBER.  Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_scope_enter(weft_scope_t *s);

/* What it does: exits s, which must be the calling task's innermost scope,
 * and consumes s's own cancellation.
 * Returns: 0; -ETIMEDOUT when s has WEFT_SCOPE_FAIL and its own deadline
 * cancelled the body (a checkpoint inside returned -ECANCELED because of
 * it) - if the body finished without observing it, 0.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (not entered, or entered by another
 * task), WEFT_EMISNEST (s is not the innermost scope: nothing is exited),
 * WEFT_ENOTFIBER (not in a weft task).
 * Checkpoint: no.  Threads: the weft task that entered s. */
WEFT_EXTERN int weft_scope_exit(weft_scope_t *s);

/* What it does: frees s.  If s is still entered, it is exited first.
 * Returns nothing, unlike the destroy calls of weft/sync.h: destroying a
 * scope cannot be refused (no task waits on a scope; a scope that is the
 * calling task's innermost is exited; one entered but not the caller's
 * innermost is a bug that stops the process with an assertion message,
 * docs/semantics.md rule 24).
 * Ownership: s is invalid afterwards; no other thread may still use it.
 * Checkpoint: no.  Threads: any thread (the entering task if entered). */
WEFT_EXTERN void weft_scope_destroy(weft_scope_t *s);

/* What it does: cancels s with a reason (copied; NULL = "cancelled").
 * Idempotent, non-blocking; tasks parked inside s wake with -ECANCELED, a
 * task running on another worker sees it at its next checkpoint.
 * Errors: -EINVAL (NULL s); never -ENOMEM (out of memory the reason's
 * text is replaced, see weft_cancel_reason_t).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_scope_cancel(weft_scope_t *s, const char *reason);

/* What it does: changes s's deadline (absolute; WEFT_FOREVER = none), also
 * while s is entered; a deadline already past cancels s at once, entered
 * or not yet entered (weft_scope_cancel_called is then 1).  After s was
 * exited only the value changes.
 * Errors: -EINVAL (NULL).  Arming a deadline never allocates (the timer
 * node lives in the scope), so there is no -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_scope_set_deadline(weft_scope_t *s, int64_t deadline);

/* What it does: s's own deadline (WEFT_FOREVER when none or NULL).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int64_t weft_scope_deadline(const weft_scope_t *s);

/* What it does: whether s was cancelled (cancel called or deadline hit);
 * whether s's exit caught its own cancellation (the body observed it,
 * and no scope further out was cancelled by then: when nested scopes are
 * cancelled, the outermost one catches, as in Trio).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_scope_cancel_called(const weft_scope_t *s);
WEFT_EXTERN int weft_scope_cancelled_caught(const weft_scope_t *s);

/* What it does: copies s's cancellation reason into *out: s's own when s
 * was cancelled (weft_scope_cancel, its deadline); otherwise, when a
 * cancellation of a scope further out reached s while it was entered,
 * that one's with origin WEFT_CANCEL_PARENT (known to s's task while s
 * is entered, and to everyone once s has been exited); otherwise origin
 * WEFT_CANCEL_NONE.
 * Errors: -EINVAL (NULL).  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_scope_reason(const weft_scope_t *s,
	weft_cancel_reason_t *out);

/* What it does: create + enter in one call: a scope with an absolute
 * deadline and flags.  weft_move_on_at/after are the silent forms,
 * weft_fail_at/after add WEFT_SCOPE_FAIL (exit gives -ETIMEDOUT).  The
 * relative forms take nanoseconds from now; ns <= 0, negative included,
 * gives a scope whose deadline has already passed, cancelled at once, so
 * its first checkpoint fails (AnyIO's choice; Trio raises an error for a
 * negative timeout instead): weft_move_on_after(&s, -1) moves on at once,
 * weft_fail_after(&s, -1) makes the exit return -ETIMEDOUT if a
 * checkpoint inside saw it.
 * Ownership: the caller owns *out (exit, then destroy).
 * Errors: -EINVAL, -ENOMEM, WEFT_ENOTFIBER (nothing created).
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_scope_open(weft_scope_t **out, int64_t deadline,
	unsigned flags);
WEFT_EXTERN int weft_move_on_at(weft_scope_t **out, int64_t deadline);
WEFT_EXTERN int weft_move_on_after(weft_scope_t **out, int64_t ns);
WEFT_EXTERN int weft_fail_at(weft_scope_t **out, int64_t deadline);
WEFT_EXTERN int weft_fail_after(weft_scope_t **out, int64_t ns);

/* What it does: returns -ECANCELED if the calling task is inside an
 * effectively cancelled scope; otherwise yields to other tasks (in the
 * order weft_yield gives) and checks again.  CPU loops call it to stay
 * cancellable and fair.
 * Errors: -ECANCELED, WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_checkpoint(void);

/* What it does: -ECANCELED if cancelled, else 0; never yields.
 * Checkpoint: yes (observes cancellation, never switches).
 * Threads: weft fiber (WEFT_ENOTFIBER elsewhere). */
WEFT_EXTERN int weft_checkpoint_if_cancelled(void);

/* What it does: yields to other tasks without observing cancellation.
 * Errors: WEFT_ENOTFIBER.  Checkpoint: switches, never cancels.
 * Threads: weft fiber. */
WEFT_EXTERN int weft_cancel_shielded_checkpoint(void);

/* What it does: yields to other runnable tasks; 0 or WEFT_ENOTFIBER.
 * The calling task goes behind every task that was runnable on its
 * worker when it yielded: each of them runs (or is taken by another
 * worker) before it runs again, so tasks that yield round-robin.  Tasks
 * made runnable after the yield may run before it or after it (a task
 * woken meanwhile usually runs first).  Without yields a worker runs its
 * newest queued task first (fork-join order).
 * Checkpoint: switches, never cancels.
 * Threads: weft fiber. */
WEFT_EXTERN int weft_yield(void);

/* What it does: the earliest deadline of the calling task's enclosing
 * scopes up to the first shield, or WEFT_FOREVER (also outside a task).
 * Inside an effectively cancelled scope it is WEFT_PAST, whatever the
 * deadlines say: any deadline-driven work there should stop at once
 * (Trio's -inf).  Reading it does not count as observing the
 * cancellation (weft_scope_cancelled_caught).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int64_t weft_effective_deadline(void);

/* What it does: copies the reason of the calling task's current
 * cancellation (the outermost cancelled scope it is inside;
 * docs/semantics.md rule 29) into *out;
 * origin WEFT_CANCEL_NONE when it is not cancelled.
 * Errors: -EINVAL (NULL), WEFT_ENOTFIBER.  Checkpoint: no.
 * Threads: weft fiber. */
WEFT_EXTERN int weft_cancel_reason(weft_cancel_reason_t *out);

WEFT_END_DECLS

#endif
