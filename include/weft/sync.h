/* Fiber-aware synchronisation primitives: Event, Lock, Semaphore,
 * CapacityLimiter and Condition (Trio/AnyIO semantics, on N workers).
 *
 * A task that waits parks its fiber, never its worker thread: the worker
 * runs other tasks meanwhile, and the waiter resumes on whichever worker
 * wakes it.  Each object is an opaque heap object that the caller creates
 * and destroys; it is not tied to a runtime, and tasks of any worker may
 * use it at the same time.
 *
 * Rules shared by every blocking call (acquire, wait) below:
 *   - It is a checkpoint: it returns -ECANCELED if the calling task is
 *     already cancelled on entry, even when the resource is free.
 *   - It obeys the deadlines of the enclosing cancel scopes
 *     (weft_move_on_after, weft_fail_after...): the deadline cancels the
 *     scope, which wakes the waiter, which returns -ECANCELED (the scope's
 *     exit then reports -ETIMEDOUT for a fail_after scope).
 *   - It is cancel-atomic (docs/semantics.md rule 42): a call that returns
 *     -ECANCELED acquired nothing.  A cancellation requested before the
 *     grant wins: the waiter is passed over and the resource goes to the
 *     next one (or stays free).  Only when a grant and a cancellation
 *     truly race may the grant win, and the call returns 0.
 *   - A call that need not wait completes without yielding, except every
 *     128th such call in a row (the cooperative budget of
 *     docs/semantics.md rule 22; Trio yields at every call).  Call
 *     weft_checkpoint() in a loop that must switch more often.
 *   - Waiters are served in FIFO order and ownership is handed to the
 *     oldest waiter directly, so a task arriving later never overtakes
 *     one that is queued.
 *
 * Calls documented as usable from any thread may be made from threads
 * that are not weft workers; one that wakes a task makes it runnable in
 * that task's runtime, which must therefore not be destroyed while the
 * call is still running (join such threads before weft_runtime_destroy).
 *
 * Destroying an object that a task is still using (holding, or inside a
 * wait on it, including a woken waiter that has not yet returned) fails
 * with -EBUSY and frees nothing. */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stddef.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

/* {======================================================= Event */

/* A one-shot flag that tasks wait for (Trio's Event): once set it stays
 * set, and every waiter, past and future, proceeds. */
typedef struct weft_event weft_event_t;

/* What it does: creates an event, not set.
 * Ownership: the caller owns *out; free it with weft_event_destroy.
 * Errors: -EINVAL (NULL out), -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_event_create(weft_event_t **out);

/* What it does: frees ev.
 * Ownership: ev is invalid afterwards (on success).
 * Errors: -EINVAL (NULL), -EBUSY (a task is inside weft_event_wait on ev:
 * nothing is freed).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_event_destroy(weft_event_t *ev);

/* What it does: sets ev and wakes every task waiting on it, each exactly
 * once.  Idempotent.  Everything the caller wrote before the call is
 * visible to a waiter once its weft_event_wait returns.
 * Errors: -EINVAL (NULL).
 * Checkpoint: no; never blocks.  Threads: any thread, including threads
 * that are not weft workers. */
WEFT_EXTERN int weft_event_set(weft_event_t *ev);

/* What it does: 1 if ev is set, else 0.
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_event_is_set(const weft_event_t *ev);

/* What it does: parks the calling task until ev is set; returns at once
 * if it already is.
 * Errors: -EINVAL (NULL), -ECANCELED (cancelled before ev was set),
 * WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_event_wait(weft_event_t *ev);

/* What it does: the number of tasks parked in weft_event_wait on ev (a
 * snapshot; Trio's statistics().tasks_waiting).
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN size_t weft_event_waiting(const weft_event_t *ev);

/* }======================================================= */

/* {======================================================= Lock */

/* A mutual-exclusion lock owned by a task (Trio's Lock), with FIFO
 * hand-off: a release gives the lock directly to the oldest waiter, so
 * no waiter starves.  The uncontended acquire and release are one atomic
 * read-modify-write each, with no system call.
 *
 * The lock belongs to the task, not to its thread or its task record: a
 * task that returns while holding a lock breaks it (as in Trio;
 * docs/semantics.md rule 42).  The tasks waiting for it are woken with
 * -EOWNERDEAD, every later acquire gets -EOWNERDEAD, weft_lock_locked
 * stays 1 and nobody holds it (weft_lock_held is 0 in every task,
 * including one that reuses the ended task's record); destroy it when
 * done. */
typedef struct weft_lock weft_lock_t;

/* What it does: creates an unlocked lock.
 * Ownership: the caller owns *out; free it with weft_lock_destroy.
 * Errors: -EINVAL (NULL out), -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_lock_create(weft_lock_t **out);

/* What it does: frees l.
 * Ownership: l is invalid afterwards (on success).
 * Errors: -EINVAL (NULL), -EBUSY (l is held, or a task is waiting for
 * it: nothing is freed).  A broken lock is not held.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_lock_destroy(weft_lock_t *l);

/* What it does: acquires l for the calling task, parking until it is
 * handed over.
 * Errors: -EINVAL (NULL), -ECANCELED (cancelled first: l was not
 * acquired), -EOWNERDEAD (l is broken, or broke while the task waited:
 * its owner ended holding it; nothing acquired), WEFT_EMISUSE (the
 * calling task already holds l; this would otherwise deadlock),
 * -EDEADLK (l is held and waiting would close a cycle of tasks, each
 * parked in an acquire of a Lock (or a Condition's re-acquire) held by
 * the next one, the last holding a lock of the caller: nothing
 * acquired, as with a checked mutex; only with the runtime's config
 * deadlock = WEFT_DEADLOCK_ERROR, the default: _REPORT prints the
 * cycle to stderr and waits, _OFF waits; docs/semantics.md rule 46),
 * WEFT_ENOTFIBER.
 * Checkpoint: yes (docs/semantics.md rule 22: a call that need not wait
 * completes without yielding, except every 128th such call in a row).
 * Threads: weft fiber. */
WEFT_EXTERN int weft_lock_acquire(weft_lock_t *l);

/* What it does: acquires l if it is free and nobody waits for it.
 * Errors: -EINVAL (NULL), -EAGAIN (l is held: nothing changed),
 * -EOWNERDEAD (l is broken), WEFT_EMISUSE (the calling task already holds
 * l), WEFT_ENOTFIBER.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_lock_try_acquire(weft_lock_t *l);

/* What it does: releases l, handing it to the oldest waiter if any.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (the calling task does not hold
 * l: nothing changed), WEFT_ENOTFIBER.
 * Checkpoint: no; never blocks.  Threads: weft fiber (the holder). */
WEFT_EXTERN int weft_lock_release(weft_lock_t *l);

/* What it does: 1 if l is held by some task or broken, else 0 (a
 * snapshot).
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_lock_locked(const weft_lock_t *l);

/* What it does: 1 if the calling task holds l, else 0 (also outside a
 * task).
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_lock_held(const weft_lock_t *l);

/* What it does: the number of tasks parked waiting for l (a snapshot).
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN size_t weft_lock_waiting(const weft_lock_t *l);

/* }======================================================= */

/* {======================================================= Semaphore */

/* A counting semaphore (Trio's/AnyIO's Semaphore) with an optional upper
 * bound.  Permits are not owned: any task or thread may release.  A
 * release with waiters hands the permit directly to the oldest one. */
typedef struct weft_semaphore weft_semaphore_t;

/* What it does: creates a semaphore holding `initial` permits.
 * max_value: the largest value the semaphore may reach (a release beyond
 * it is an error), or 0 for no bound.
 * Ownership: the caller owns *out; free it with weft_semaphore_destroy.
 * Errors: -EINVAL (NULL out, or max_value != 0 and initial > max_value),
 * -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_semaphore_create(weft_semaphore_t **out, size_t initial,
	size_t max_value);

/* What it does: frees s (whatever its value).
 * Ownership: s is invalid afterwards (on success).
 * Errors: -EINVAL (NULL), -EBUSY (a task is inside weft_semaphore_acquire
 * on s: nothing is freed).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_semaphore_destroy(weft_semaphore_t *s);

/* What it does: takes one permit, parking until one is released to the
 * calling task if there is none.
 * Errors: -EINVAL (NULL), -ECANCELED (cancelled first: no permit was
 * taken), WEFT_ENOTFIBER.
 * Checkpoint: yes (docs/semantics.md rule 22: a call that need not wait
 * completes without yielding, except every 128th such call in a row).
 * Threads: weft fiber. */
WEFT_EXTERN int weft_semaphore_acquire(weft_semaphore_t *s);

/* What it does: takes one permit if one is free.
 * Errors: -EINVAL (NULL), -EAGAIN (value 0: nothing changed).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_semaphore_try_acquire(weft_semaphore_t *s);

/* What it does: returns one permit: to the oldest waiter if there is
 * one, else to the value.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (the value would exceed
 * max_value, or SIZE_MAX when there is no bound: nothing changed).
 * Checkpoint: no; never blocks.  Threads: any thread, including threads
 * that are not weft workers. */
WEFT_EXTERN int weft_semaphore_release(weft_semaphore_t *s);

/* What it does: the current number of free permits (a snapshot).
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN size_t weft_semaphore_value(const weft_semaphore_t *s);

/* What it does: the number of tasks parked in weft_semaphore_acquire on s
 * (a snapshot).
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN size_t weft_semaphore_waiting(const weft_semaphore_t *s);

/* }======================================================= */

/* {======================================================= CapacityLimiter */

/* AnyIO's CapacityLimiter: a pool of `total` tokens, each borrowed by one
 * borrower at a time.  A borrower is an opaque pointer that weft only
 * compares (never dereferences): the calling task itself for
 * weft_limiter_acquire (the same pointer as its weft_task_t handle), or
 * any pointer the caller chooses for the *_on_behalf forms (offload
 * threads use those).  A borrower holds at most one token. */
typedef struct weft_limiter weft_limiter_t;

/* A snapshot of a limiter's counters (weft_limiter_stats). */
typedef struct {
	size_t total;	  /* tokens in the pool */
	size_t borrowed;  /* tokens currently borrowed */
	size_t available; /* total - borrowed, or 0 when total < borrowed */
	size_t waiting;	  /* tasks parked in an acquire */
} weft_limiter_stats_t;

/* What it does: creates a limiter with `total` tokens.
 * Ownership: the caller owns *out; free it with weft_limiter_destroy.
 * Errors: -EINVAL (NULL out, total == 0), -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_limiter_create(weft_limiter_t **out, size_t total);

/* What it does: frees l.
 * Ownership: l is invalid afterwards (on success).
 * Errors: -EINVAL (NULL), -EBUSY (a token is borrowed or a task is
 * waiting: nothing is freed).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_limiter_destroy(weft_limiter_t *l);

/* What it does: borrows a token for the calling task (weft_limiter_acquire)
 * or for `borrower` (weft_limiter_acquire_on_behalf), parking until one
 * is free.
 * Errors: -EINVAL (NULL l or borrower), WEFT_EMISUSE (this borrower
 * already holds or waits for a token of l), -ECANCELED (cancelled first:
 * nothing borrowed), -ENOMEM (the borrower table could not grow: nothing
 * borrowed), WEFT_ENOTFIBER.
 * Checkpoint: yes (docs/semantics.md rule 22: a call that need not wait
 * completes without yielding, except every 128th such call in a row).
 * Threads: weft fiber. */
WEFT_EXTERN int weft_limiter_acquire(weft_limiter_t *l);
WEFT_EXTERN int weft_limiter_acquire_on_behalf(weft_limiter_t *l,
	const void *borrower);

/* What it does: borrows a token as above if one is free now.
 * Errors: -EINVAL, WEFT_EMISUSE, -ENOMEM as above; -EAGAIN (no token
 * free, or tasks are already waiting: nothing changed); WEFT_ENOTFIBER
 * (weft_limiter_try_acquire outside a task).
 * Checkpoint: no.  Threads: weft fiber (weft_limiter_try_acquire), any
 * thread (weft_limiter_try_acquire_on_behalf). */
WEFT_EXTERN int weft_limiter_try_acquire(weft_limiter_t *l);
WEFT_EXTERN int weft_limiter_try_acquire_on_behalf(weft_limiter_t *l,
	const void *borrower);

/* What it does: gives back the token of the calling task
 * (weft_limiter_release) or of `borrower`; it goes to the oldest waiter
 * if the limiter is not over its total.
 * Errors: -EINVAL (NULL l or borrower), WEFT_EMISUSE (that borrower holds
 * no token of l: nothing changed), WEFT_ENOTFIBER (weft_limiter_release
 * outside a task).
 * Checkpoint: no; never blocks.  Threads: weft fiber
 * (weft_limiter_release), any thread (weft_limiter_release_on_behalf). */
WEFT_EXTERN int weft_limiter_release(weft_limiter_t *l);
WEFT_EXTERN int weft_limiter_release_on_behalf(weft_limiter_t *l,
	const void *borrower);

/* What it does: changes the number of tokens.  Raising it grants the
 * new tokens to waiters at once (oldest first); lowering it below the
 * number borrowed takes nothing back, it only stops new grants until
 * enough tokens are released.
 * Errors: -EINVAL (NULL, total == 0).
 * Checkpoint: no; never blocks.  Threads: any thread. */
WEFT_EXTERN int weft_limiter_set_total(weft_limiter_t *l, size_t total);

/* What it does: copies a consistent snapshot of l's counters to *out.
 * Errors: -EINVAL (NULL l or out).  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_limiter_stats(const weft_limiter_t *l,
	weft_limiter_stats_t *out);

/* }======================================================= */

/* {======================================================= Condition */

/* A condition variable bound to one Lock (Trio's Condition).  wait and
 * notify require the caller to hold that lock, so a notification cannot
 * slip in between a task's check of its predicate and its wait.
 * Typical use:
 *     weft_lock_acquire(weft_condition_lock(c));
 *     while (!ready && rc == 0)
 *         rc = weft_condition_wait(c);   // lock held again on return
 *     weft_lock_release(weft_condition_lock(c));
 */
typedef struct weft_condition weft_condition_t;

/* What it does: creates a condition using `lock`, or, when lock is NULL,
 * a lock of its own (see weft_condition_lock).
 * Ownership: the caller owns *out; free it with weft_condition_destroy.
 * A given lock stays the caller's and must outlive the condition; an own
 * lock is freed with the condition.
 * Errors: -EINVAL (NULL out), -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_condition_create(weft_condition_t **out,
	weft_lock_t *lock);

/* What it does: frees c (and its own lock, if it created one).
 * Ownership: c is invalid afterwards (on success).
 * Errors: -EINVAL (NULL), -EBUSY (a task is inside weft_condition_wait on
 * c, or c's own lock is held or waited for: nothing is freed).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_condition_destroy(weft_condition_t *c);

/* What it does: the lock c uses.
 * Ownership: owned by the caller (given at creation) or by c.
 * Errors: NULL gives NULL.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN weft_lock_t *weft_condition_lock(weft_condition_t *c);

/* What it does: atomically releases c's lock and parks until notified,
 * then re-acquires the lock before returning - always, also when the
 * wait is cancelled (like Trio): the re-acquire ignores cancellation, so
 * the caller may hold the lock in a cancelled scope.  A notified task
 * waits for the lock in the lock's queue (weft_condition_notify), where
 * a cancellation does not make it lose its place.
 * Returns: 0 when notified and not cancelled by the time it holds the
 * lock again; -ECANCELED when cancelled before a notification, or after
 * it while waiting for the lock (the notification is then spent, as in
 * Trio) - in both cases *with the lock held*: release it as on the
 * normal path.  If the task was already cancelled on entry the lock is
 * never released.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (the calling task does not hold
 * c's lock: nothing changed), -EOWNERDEAD (the lock broke while the task
 * waited: a task returned holding it; the lock is *not* held),
 * WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_condition_wait(weft_condition_t *c);

/* What it does: notifies up to n tasks waiting on c, oldest first,
 * skipping tasks whose cancellation was requested: it moves them, still
 * parked, to the end of the queue of c's lock (Trio's repark), so they
 * count in weft_lock_waiting and the lock is handed to them one by one,
 * in that order, after the tasks already waiting for it and before any
 * task that asks for it later.  Each returns from weft_condition_wait
 * once it has the lock, i.e. after the caller releases it.
 * Returns: the number of tasks notified (0 when none waits).
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (the calling task does not hold
 * c's lock), WEFT_ENOTFIBER.
 * Checkpoint: no; never blocks.  Threads: weft fiber (the lock holder). */
WEFT_EXTERN int weft_condition_notify(weft_condition_t *c, size_t n);

/* What it does: notifies every task waiting on c; as
 * weft_condition_notify.
 * Returns, errors, checkpoint, threads: as weft_condition_notify. */
WEFT_EXTERN int weft_condition_notify_all(weft_condition_t *c);

/* What it does: the number of tasks parked in weft_condition_wait on c
 * waiting for a notification (a snapshot; tasks already notified and
 * waiting to re-acquire the lock count in weft_lock_waiting).
 * Errors: NULL gives 0.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN size_t weft_condition_waiting(const weft_condition_t *c);

/* }======================================================= */

WEFT_END_DECLS

#endif
