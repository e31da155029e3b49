/* Two-phase graceful shutdown (weft_shutdown_*, include/weft/signal.h;
 * docs/semantics.md rule 43).
 *
 * Problem: on SIGINT/SIGTERM a service should stop accepting and let its
 * handlers finish, then, after a grace period or at a second signal,
 * cancel whatever is still running; when the handlers finish early, the
 * service's group must be joinable at once.
 *
 * Approach: no task.  The phases are a small state machine on the I/O
 * thread, driven by three events that all arrive there: a signal (a hook
 * watcher of signal.c), weft_shutdown_trigger (a node posted once), and the
 * grace timer (a uv_timer_t, millisecond resolution, which is plenty for a
 * grace period).  Phase one sets the stop event (weft_event_set and
 * weft_group_cancel may be called from any thread) and arms the timer; phase
 * two cancels g (origin WEFT_CANCEL_SIGNAL).  g is retained from open to the
 * free, so a late timer after g's join touches a live (joined) group, where
 * the cancel does nothing.
 *
 * Rejected: a monitor task in g waiting for the signal and then for the
 * grace deadline: it would keep g's join waiting for the whole grace
 * period after the handlers finished (or forever, when no signal comes),
 * so every user would have to cancel it by hand before joining.  A
 * monitor in a second group of the caller's has the same problem one
 * level up, and costs a fiber for something the I/O thread does in two
 * callbacks.
 *
 * Invariants
 *   1. `phase`, the timer and `io_closed` are the I/O thread's.
 *   2. phase only grows: 0 (watching), 1 (stop event set, grace running),
 *      2 (g cancelled).
 *   3. After the close node ran nothing calls into g or the event, and
 *      the I/O thread drops its reference on sd once the timer's handle
 *      (if it was ever initialised) is closed.
 *
 * Memory: sd is a record of the runtime's pool of I/O records (io.h), and
 * the handle users hold is its, so that a call on a closed controller is
 * found and reported naming the call (a second close, a trigger after the
 * close), as for a stream.  Its life's references: the I/O thread's,
 * taken at the open and dropped after the close node ran (invariant 3);
 * one per call in progress; and a posted trigger node's, dropped by the
 * I/O thread once it ran (a trigger racing with the close is then still
 * safe).  The last one destroys the event, releases g and gives the
 * record back.
 */
#define _GNU_SOURCE /* sigabbrev_np (glibc >= 2.32) */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/group.h"
#include "core/records.h"
#include "core/task.h"
#include "io/io.h"
#include "io/ioop.h"
#include "io/signal.h"
#include "runtime.h"
#include "weft/signal.h"
#include "weft/time.h"

struct weft_shutdown {
	struct weft__io_rec rec; /* first: io.h */
	struct weft_runtime *rt;
	weft_group_t *g;	/* the handle, retained until the free */
	struct weft_group *grp; /* its record (a handle is tagged) */
	weft_event_t *stop;	/* set at phase one */
	struct weft_signals *w; /* hook watcher of SIGINT, SIGTERM */
	int64_t grace_ns;
	/* Set by the first weft_shutdown_trigger (exchange), which alone
	 * posts trigger_node. */
	atomic_bool triggered;
	struct weft__ioq_node trigger_node;
	struct weft__ioq_node close_node;
	/* I/O thread only (invariant 1). */
	uv_timer_t timer;
	bool timer_init;
	bool io_closed;
	int phase;  /* invariant 2 */
	int signum; /* the signal that started phase one; 0: the trigger */
};

/* {======================================================= I/O thread */

/* Phase two: cancels g with origin WEFT_CANCEL_SIGNAL and a text that
 * says what started the shutdown ("shutdown (SIGTERM): grace period
 * over"; "weft_shutdown_trigger" when no signal did). */
static void sd_cancel(struct weft_shutdown *sd, const char *why)
{
	sd->phase = 2;
	if (sd->timer_init)
		uv_timer_stop(&sd->timer);
	char text[sizeof((weft_cancel_reason_t *)0)->text];
	const char *abbrev = sd->signum ? sigabbrev_np(sd->signum) : NULL;
	if (abbrev)
		snprintf(text, sizeof text, "shutdown (SIG%s): %s", abbrev,
			why);
	else
		snprintf(text, sizeof text,
			"shutdown (weft_shutdown_trigger): %s", why);
	weft__scope_cancel(&sd->grp->scope, WEFT_CANCEL_SIGNAL, text, false, 0);
}

static void sd_grace_over(uv_timer_t *t)
{
	struct weft_shutdown *sd = t->data;
	if (sd->phase == 1 && !sd->io_closed)
		sd_cancel(sd, "grace period over");
}

/* A shutdown request: a signal or the trigger. */
static void sd_request(struct weft_shutdown *sd, int signum,
	bool second_cancels)
{
	if (sd->io_closed)
		return;
	if (sd->phase == 0) {
		sd->phase = 1;
		sd->signum = signum;
		weft_event_set(sd->stop);
		if (sd->grace_ns == 0) {
			sd_cancel(sd, "no grace period");
			return;
		}
		if (sd->grace_ns == WEFT_FOREVER)
			return;
		if (!sd->timer_init) {
			uv_timer_init(&sd->rt->io->loop, &sd->timer);
			sd->timer.data = sd;
			sd->timer_init = true;
		}
		/* Rounded up: the grace period is never shorter. */
		uint64_t ms = (uint64_t)(sd->grace_ns / WEFT_MSEC) +
			(sd->grace_ns % WEFT_MSEC != 0);
		uv_timer_start(&sd->timer, sd_grace_over, ms, 0);
	} else if (sd->phase == 1 && second_cancels) {
		sd_cancel(sd, "second signal");
	}
}

static void sd_signal_hook(void *arg, int signum)
{
	struct weft_shutdown *sd = arg;
	/* A weft_shutdown_trigger that returned before this signal was sent
	 * started phase one, even if its node is still queued behind this
	 * callback: the signal is then the second (signal.h).  seq_cst: the
	 * trigger's exchange precedes the signal's sending, and the signal
	 * reaches this thread through the kernel and libuv's pipe. */
	if (sd->phase == 0 &&
		atomic_load_explicit(&sd->triggered, memory_order_seq_cst))
		sd_request(sd, 0, false);
	sd_request(sd, signum, true);
}

/* Drops a reference on sd; the last destroys it (see "Memory").  Thread:
 * any, while the runtime's I/O thread runs. */
static void sd_drop(struct weft_shutdown *sd)
{
	if (!weft__io_rec_unref(&sd->rec))
		return;
	int rc = weft_event_destroy(sd->stop);
	WEFT_ASSERT(rc == 0,
		"weft_shutdown_close: a task still waits on the stop event");
	weft__group_release(sd->g);
	weft__io_rec_put(sd->rt, WEFT__IO_REC_SHUTDOWN, &sd->rec);
}

static void sd_trigger_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	(void)rt;
	struct weft_shutdown *sd = WEFT__CONTAINER_OF(n, struct weft_shutdown,
		trigger_node);
	sd_request(sd, 0, false);
	sd_drop(sd); /* the node's */
}

/* The I/O thread's part is over (invariant 3). */
static void sd_free(struct weft_shutdown *sd)
{
	sd_drop(sd);
}

static void sd_timer_closed(uv_handle_t *h)
{
	sd_free(h->data);
}

static void sd_close_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	(void)rt;
	struct weft_shutdown *sd = WEFT__CONTAINER_OF(n, struct weft_shutdown,
		close_node);
	sd->io_closed = true;
	weft__signal_close_io(sd->w); /* the hook is never called again */
	if (sd->timer_init)
		uv_close((uv_handle_t *)&sd->timer, sd_timer_closed);
	else
		sd_free(sd);
}

/* }======================================================= */

/* {======================================================= any thread */

int weft_shutdown_open(weft_shutdown_t **out, weft_group_t *g, int64_t grace_ns)
{
	if (out == NULL || g == NULL || grace_ns < 0)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	/* A handle carries its record's generation in its top bits: the
	 * I/O thread cancels through the record, never the handle. */
	struct weft_group *grp = weft__group_from_handle(g,
		"weft_shutdown_open");
	if (grp == NULL)
		return WEFT_EMISUSE;
	struct weft_shutdown *sd = weft__io_rec_get(self->rt,
		WEFT__IO_REC_SHUTDOWN, sizeof *sd);
	if (sd == NULL)
		return -ENOMEM;
	sd->rt = self->rt;
	sd->g = g;
	sd->grp = grp;
	sd->grace_ns = grace_ns;
	atomic_init(&sd->triggered, false);
	int rc = weft_event_create(&sd->stop);
	if (rc < 0)
		goto fail_sd;
	/* g, stop and grace_ns are published to the I/O thread by the
	 * watcher open's post (a release CAS on the request stack). */
	static const int sigs[] = { SIGINT, SIGTERM };
	rc = weft__signal_open_hook(&sd->w, sigs, WEFT__ARRAY_SIZE(sigs),
		sd_signal_hook, sd);
	if (rc < 0)
		goto fail_event;
	/* Retained after the watcher opened, so that a failure needs no
	 * release.  The hook may run on the I/O thread as soon as the open
	 * started the handles, before this retain and before sd->w is
	 * stored: it reads neither (g is the caller's and alive during this
	 * call, and sd's other fields were published by the open's post). */
	weft__group_retain(g);
	*out = weft__io_rec_handle(&sd->rec);
	return 0;
fail_event:
	weft_event_destroy(sd->stop);
fail_sd:
	/* A life that was never handed out: back as it is. */
	weft__io_rec_put(sd->rt, WEFT__IO_REC_SHUTDOWN, &sd->rec);
	return rc;
}

int weft_shutdown_trigger(weft_shutdown_t *h)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_shutdown *sd = weft__io_rec_check(h,
		"weft_shutdown_trigger", "shutdown controller");
	if (sd == NULL)
		return WEFT_EMISUSE;
	/* acq_rel: only the first trigger posts the node (a node cannot be
	 * queued twice); later ones see true and return.  The RMW's
	 * atomicity is what matters: the node's fields reach the I/O thread
	 * through the post's release, so the ordering pairs with nothing. */
	if (atomic_exchange_explicit(&sd->triggered, true,
		    memory_order_acq_rel)) {
		sd_drop(sd);
		return 0;
	}
	weft_event_set(sd->stop);
	sd->trigger_node.fn = sd_trigger_fn;
	/* The call's reference goes with the node (sd_trigger_fn). */
	weft__ioq_post(sd->rt, &sd->trigger_node);
	return 0;
}

weft_event_t *weft_shutdown_stop_event(weft_shutdown_t *h)
{
	if (h == NULL)
		return NULL;
	struct weft_shutdown *sd = weft__io_rec_check(h,
		"weft_shutdown_stop_event", "shutdown controller");
	if (sd == NULL)
		return NULL;
	/* The event lives as long as sd, which the caller keeps open. */
	weft_event_t *ev = sd->stop;
	sd_drop(sd);
	return ev;
}

int weft_shutdown_close(weft_shutdown_t *h)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_shutdown *sd = weft__io_rec_check(h, "weft_shutdown_close",
		"shutdown controller");
	if (sd == NULL)
		return WEFT_EMISUSE;
	int rc = -EBUSY;
	if (weft_event_waiting(sd->stop) == 0) {
		/* Closes the life (taking the closer's reference) unless a
		 * close racing with this one did first. */
		if (!weft__io_rec_close(h)) {
			sd_drop(sd);
			weft__io_rec_misuse(h, "weft_shutdown_close",
				"shutdown controller");
			return WEFT_EMISUSE;
		}
		sd->close_node.fn = sd_close_fn;
		weft__ioq_post(sd->rt, &sd->close_node);
		sd_drop(sd); /* the closer's */
		rc = 0;
	}
	sd_drop(sd); /* the call's */
	return rc;
}

/* }======================================================= */
