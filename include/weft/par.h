/* Fork-join calls: weft_par runs two functions, perhaps at once on two
 * workers, and returns when both have returned (docs/semantics.md rule
 * 52).
 *
 * It is the fine-grained counterpart of a task group, for recursive
 * divide-and-conquer code (a parallel sort, a tree walk, B1 fib), where a
 * group's open, spawn and join cost more than the work they split: the
 * two halves are calls of the calling task, not tasks of their own.  The
 * second half is offered to idle workers; when none takes it, the caller
 * calls it itself after the first, and the whole call costs a few tens
 * of instructions more than the two plain calls (Cilk's spawn/sync,
 * rayon's join, Lace's SPAWN/SYNC).  When another worker takes it, that
 * worker runs it as a task made for it (named "par"; it shows in dumps
 * and snapshots, is cancelled with the caller, and may park), while the
 * caller waits for its end once the first half has returned.
 *
 * Typical use:
 *     struct fib_arg { int n; long long r; };
 *     static int fib(void *p)
 *     {
 *             struct fib_arg *x = p;
 *             if (x->n < 2) { x->r = x->n; return 0; }
 *             struct fib_arg a = { x->n - 2, 0 }, b = { x->n - 1, 0 };
 *             int rc = weft_par(fib, &a, fib, &b, NULL);
 *             x->r = a.r + b.r;
 *             return rc;
 *     }
 */
#ifndef WEFT_PAR_H
#define WEFT_PAR_H

#include "weft/error.h"
#include "weft/export.h"
#include "weft/runtime.h"

WEFT_BEGIN_DECLS

/* What it does: calls fa(a) on the calling task, then fb(b) unless
 * another worker took fb meanwhile, and returns once both have returned.
 * fb(b) runs either on the caller's stack after fa(a), or, taken by an
 * idle worker, on a task of its own (named "par") concurrently with
 * fa(a); which one is the scheduler's choice, so fa and fb must not
 * depend on their order.  Nothing is ever skipped: both halves run to
 * their end even when one fails (a failure does not cancel the other
 * half: cancel an enclosing scope for that).
 * The halves run under the caller's cancel scopes as they are at the
 * call, see its task-local context, and may park; what they ask about
 * "the current task" (weft_current_task, weft_fail, task locals bound
 * inside them) is the caller's for a half run by the caller and the
 * "par" task's for a taken half.  A half run by the caller that panics
 * ends the caller (weft_panic); a taken half that panics fails as a task
 * does.  Stack: a half run by the caller uses the caller's stack, as a
 * call does.  Nesting deeper than 256 weft_par calls in one task offers
 * nothing more: the deeper calls run fa then fb.  Offers are shared with
 * idle workers lazily: when one asks, the caller shares some at its next
 * weft_par call; a first half that computes for long without one can
 * hide the offers of the calls around it meanwhile (a weft_yield in it
 * hands them out).
 * Returns: 0 when both halves returned 0; -ECANCELED when a half returned
 * -ECANCELED and none failed; WEFT_ECHILD_FAILED when a half returned any
 * other non-zero code: *err_out then receives one error group with a
 * leaf per failed half (fa's first), each named "par", with the message
 * the half gave weft_fail; out of memory for a leaf, an -ENOMEM leaf
 * stands for it.  A half's return value is its outcome only: results go
 * through the argument.
 * Ownership: a, b and what they point to stay the caller's; they must
 * stay valid until weft_par returns, which it does only after both halves
 * have returned.  The caller owns *err_out (weft_error_free); with a NULL
 * err_out the group is freed.
 * Errors: -EINVAL (fa or fb NULL: nothing runs), WEFT_ENOTFIBER (not
 * called from a weft task: nothing runs).
 * Checkpoint: no (the halves may contain checkpoints).
 * Threads: a weft fiber. */
WEFT_EXTERN int weft_par(weft_fn fa, void *a, weft_fn fb, void *b,
	weft_error_t **err_out);

WEFT_END_DECLS

#endif
