/* I/O operations: a fiber's request to the I/O thread, with cancellation.
 *
 * Problem: a fiber parks while the I/O thread runs a libuv request for it.
 * Three things can end the park, on two threads: the request completes
 * (I/O thread), the task is cancelled (any thread), or both at once.  The
 * operation lives in the fiber's frame, so the fiber must not return while
 * the I/O thread can still touch it; and a cancelled fiber must not wait
 * forever for a request that nobody stops (a read from a silent peer).
 *
 * Approach: one atomic word per operation, written by both sides with CAS:
 * DONE, or (generation of the fiber's current park << 2) | CANCEL_REQ.
 *   - The fiber stores the generation of each park into the word before
 *     parking; a CAS that finds DONE means "completed, do not park".
 *   - The I/O thread completes by swapping in DONE and waking the
 *     generation it swapped out.  The swap is its last access to the
 *     operation; it then touches only the task record, which is
 *     type-stable, and whose park generations never repeat (task.c), so a
 *     wake that arrives after the fiber moved on is a no-op.
 *   - A cancelled fiber whose operation is still in flight parks again,
 *     uncancellably, sets CANCEL_REQ in the same CAS that publishes the new
 *     generation, and posts the `abort` node.  While CANCEL_REQ is set, the
 *     completion does not set DONE until `abort` has run on the I/O
 *     thread (the node is in the fiber's frame too), and `abort` sets DONE
 *     if the completion came first.  So DONE means "the I/O thread is done
 *     with every part of op".
 * Lost wake-ups cannot happen: the fiber publishes a generation with a CAS
 * on the word and the I/O thread reads the generation with the CAS that
 * sets DONE, so the two are totally ordered: either the fiber's CAS fails
 * (it sees DONE and does not park) or the I/O thread wakes the generation
 * the fiber parks on.
 *
 * Under the virtual clock an operation holds the clock (timer.h,
 * weft__timer_hold) from before its submission until its fiber resumed
 * for the last time: the clock does not jump while the I/O thread or the
 * outside world may still end it (docs/semantics.md rule 44).
 *
 * Rejected: a reference count plus a separate generation field (the I/O
 * thread would read the generation after the fiber may have returned), and
 * a lock in the operation (its unlock store would be the I/O thread's last
 * access to the fiber's frame, with the fiber free to return right after).
 */
#include <errno.h>
#include <stdio.h>
#include <uv.h>

#include "base/common.h"
#include "core/cancel.h"
#include "core/inspect.h"
#include "core/task.h"
#include "core/trace.h"
#include "io/io.h"
#include "io/ioop.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "weft/error.h"

#define IOOP_DONE 1u
#define IOOP_CANCEL_REQ 2u
#define IOOP_GEN_SHIFT 2

/* {======================================================= I/O thread */

/* Sets DONE and wakes the park the fiber published: the I/O thread's last
 * access to op. */
static void ioop_signal_done(struct weft__ioop *op)
{
	struct weft_task *t = op->task;
	/* acq_rel: the release publishes result (written before) to the
	 * fiber's acquire load of DONE; the acquire reads the newest
	 * generation. */
	uint64_t w = atomic_exchange_explicit(&op->word, IOOP_DONE,
		memory_order_acq_rel);
	weft__task_wake(t, w >> IOOP_GEN_SHIFT);
}

void weft__ioop_complete(struct weft__ioop *op, int result)
{
	WEFT_ASSERT(!op->io_completed, "I/O operation completed twice");
	/* While op is ours (the wake below may end it). */
	if (WEFT__UNLIKELY(op->rt->trace))
		weft__trace_io(op->rt, op->what, op->task->id, true, result);
	op->result = result;
	op->io_completed = true;
	struct weft_task *t = op->task;
	/* acquire: pairs with the fiber's release of the word (its publish
	 * CAS, or the request queue's post for the first generation): we
	 * read its newest generation and CANCEL_REQ. */
	uint64_t w = atomic_load_explicit(&op->word, memory_order_acquire);
	for (;;) {
		if (w & IOOP_CANCEL_REQ) {
			/* abort is queued: it finishes op when it runs. */
			if (!op->io_cancel_seen)
				return;
			ioop_signal_done(op);
			return;
		}
		/* acq_rel CAS: as in ioop_signal_done; fails if the fiber
		 * published a new generation or CANCEL_REQ meanwhile. */
		if (atomic_compare_exchange_weak_explicit(&op->word, &w,
			    IOOP_DONE, memory_order_acq_rel,
			    memory_order_acquire))
			break;
	}
	weft__task_wake(t, w >> IOOP_GEN_SHIFT);
}

static void ioop_submit_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	struct weft__ioop *op = WEFT__CONTAINER_OF(n, struct weft__ioop,
		submit);
	if (WEFT__UNLIKELY(rt->trace))
		weft__trace_io(rt, op->what, op->task->id, false, 0);
	op->start(rt->io, op);
}

static void ioop_abort_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	weft__io_t *io = rt->io;
	struct weft__ioop *op = WEFT__CONTAINER_OF(n, struct weft__ioop, abort);
	op->io_cancel_seen = true;
	if (op->io_completed || op->cancel == NULL) {
		/* Completed before the abort arrived, or cannot be stopped:
		 * in the second case the completion finishes op later. */
		if (op->io_completed)
			ioop_signal_done(op);
		return;
	}
	/* May complete op synchronously (then op is gone on return). */
	op->cancel(io, op);
}

/* }======================================================= */

/* {======================================================= fiber */

/* Parks on the generation just stored in op->word until woken; returns
 * the word read after waking (acquire: pairs with the I/O thread's
 * release of DONE, so result is visible). */
static WEFT_FIBER_FN uint64_t ioop_park(struct weft_task *self,
	struct weft__ioop *op)
{
	weft__task_park_commit_obj(self, op->what, WEFT__WAIT_IO, op);
	return atomic_load_explicit(&op->word, memory_order_acquire);
}

/* Publishes a new park generation (plus `flags`) unless op is DONE;
 * returns false if it is. */
static bool ioop_publish(struct weft__ioop *op, uint64_t gen, uint64_t flags,
	uint64_t *w)
{
	do {
		if (*w == IOOP_DONE)
			return false;
		/* acq_rel: the release publishes the park word's new
		 * generation (stored seq_cst by prepare) to the I/O thread's
		 * CAS; the acquire on failure reads DONE and the result. */
	} while (!atomic_compare_exchange_weak_explicit(&op->word, w,
		(gen << IOOP_GEN_SHIFT) | flags, memory_order_acq_rel,
		memory_order_acquire));
	*w = (gen << IOOP_GEN_SHIFT) | flags;
	return true;
}

WEFT_FIBER_FN static int ioop_wait(struct weft_task *self,
	struct weft__ioop *op);

int weft__ioop_run(struct weft__ioop *op)
{
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	weft__timer_t *tm = &self->rt->timer;
	/* Taken and dropped on a worker, the fiber's (timer.c, Q3). */
	weft__timer_hold(tm, 1);
	rc = ioop_wait(self, op);
	weft__timer_hold(tm, -1);
	return rc;
}

/* The operation from its submission to its end.  Thread: the fiber. */
WEFT_FIBER_FN static int ioop_wait(struct weft_task *self,
	struct weft__ioop *op)
{
	int rc;
	/* Reachable by cancellations from now on. */
	weft__task_link_root(self);
	/* relaxed: our own cur_scope, written only by this task. */
	struct weft_scope *s = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	op->task = self;
	op->rt = self->rt;
	op->io_completed = false;
	op->io_cancel_seen = false;
	op->result = 0;
	op->submit.fn = ioop_submit_fn;
	op->abort.fn = ioop_abort_fn;
	uint64_t gen = weft__task_park_prepare(self, true);
	/* Relaxed: published to the I/O thread by the post's release. */
	uint64_t w = gen << IOOP_GEN_SHIFT;
	atomic_store_explicit(&op->word, w, memory_order_relaxed);
	/* self is a task, so this is a worker (core/stats.h). */
	weft__stats_inc(&weft__sched_current()->stats.io_submitted);
	weft__ioq_post(op->rt, &op->submit);
	for (;;) {
		/* seq_cst load after prepare's seq_cst store: a canceller
		 * either is seen here or sees the cancellable park. */
		if (weft__scope_is_cancelled(s))
			break;
		w = ioop_park(self, op);
		if (w == IOOP_DONE)
			return op->result;
		/* Woken by a cancellation (seen at the top of the loop). */
		gen = weft__task_park_prepare(self, true);
		if (!ioop_publish(op, gen, 0, &w))
			return op->result;
	}
	/* Cancelled with the operation in flight: ask the I/O thread to stop
	 * it and wait, uncancellably, until it is done with op. */
	gen = weft__task_park_prepare(self, false);
	if (ioop_publish(op, gen, IOOP_CANCEL_REQ, &w)) {
		weft__ioq_post(op->rt, &op->abort);
		/* Only the I/O thread knows this generation: one wake. */
		while ((w = ioop_park(self, op)) != IOOP_DONE) {
			gen = weft__task_park_prepare(self, false);
			if (!ioop_publish(op, gen, IOOP_CANCEL_REQ, &w))
				break;
		}
	}
	rc = op->result;
	if (rc == -ECANCELED)
		weft__scope_note_observed(weft__scope_origin(s));
	return rc;
}

/* }======================================================= */

int weft__ioop_run_shielded(struct weft__ioop *op)
{
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	weft__timer_t *tm = &self->rt->timer;
	/* Taken and dropped on a worker, the fiber's (timer.c, Q3). */
	weft__timer_hold(tm, 1);
	op->task = self;
	op->rt = self->rt;
	op->cancel = NULL;
	op->io_completed = false;
	op->io_cancel_seen = false;
	op->result = 0;
	op->submit.fn = ioop_submit_fn;
	op->abort.fn = ioop_abort_fn;
	/* Not cancellable: only the completion wakes this park (a stale
	 * wake of an earlier park's generation is a no-op, task.c). */
	uint64_t gen = weft__task_park_prepare(self, false);
	/* Relaxed: published to the I/O thread by the post's release. */
	atomic_store_explicit(&op->word, gen << IOOP_GEN_SHIFT,
		memory_order_relaxed);
	weft__stats_inc(&weft__sched_current()->stats.io_submitted);
	weft__ioq_post(op->rt, &op->submit);
	uint64_t w;
	while ((w = ioop_park(self, op)) != IOOP_DONE) {
		gen = weft__task_park_prepare(self, false);
		if (!ioop_publish(op, gen, 0, &w))
			break;
	}
	weft__timer_hold(tm, -1);
	return op->result;
}

/* {======================================================= dump */

void weft__ioop_describe(const void *on, struct weft__wait_desc *d)
{
	/* The operation is in its waiter's frame, which the dump holds
	 * pinned (core/inspect.h); only the fields written before the park
	 * are read (the I/O thread's are not). */
	const struct weft__ioop *op = on;
	d->obj = op;
	if (op->fd_plus1 > 0)
		snprintf(d->text, sizeof d->text, "fd=%d op=\"%s\"",
			op->fd_plus1 - 1, op->what ? op->what : "?");
	else
		snprintf(d->text, sizeof d->text, "op=\"%s\"",
			op->what ? op->what : "?");
}

/* }======================================================= */
