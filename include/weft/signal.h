/* Signals as something a task awaits, and two-phase graceful shutdown
 * (docs/semantics.md rule 43).
 *
 * A signal watcher catches the signals it names for as long as it is
 * open: each delivery is queued in the watcher until a task takes it with
 * weft_signal_wait (nothing is lost while nobody waits; the count is
 * per watcher, so two watchers of SIGHUP both see every SIGHUP).  While
 * any watcher of a signal is open, the signal's previous disposition
 * (default action, SIG_IGN, or a handler of the application) does not
 * run; when the last weft watcher of that signal closes, the disposition
 * weft found when the first one opened is put back.
 *
 * Delivery: weft's worker and I/O threads block every asynchronous
 * signal, so the kernel delivers a process-directed signal (kill(pid),
 * the terminal's Ctrl-C) to an application thread, typically the one
 * inside weft_runtime_run or weft_run, where libuv's handler forwards it
 * to the runtime's I/O thread.  raise() and pthread_kill() called on a
 * weft thread therefore stay pending forever; use kill(getpid(), sig).
 * The kernel merges a signal sent again before its handler ran: two
 * deliveries count as two only if the handler ran in between.
 *
 * Two-phase shutdown (weft_shutdown_*): the first SIGINT or SIGTERM (or
 * weft_shutdown_trigger) sets a "stop accepting" event and starts a grace
 * period; when it ends, or at a second signal, the service's group is
 * cancelled.  A service that drains within the grace period ends
 * normally.  Typical use, in the task that owns the service:
 *     weft_group_t *g;
 *     weft_shutdown_t *sd;
 *     weft_group_open(&g);
 *     weft_shutdown_open(&sd, g, 10 * WEFT_SEC);
 *     serve(listener, g, weft_shutdown_stop_event(sd));  // until set
 *     weft_group_join(g, &err);   // handlers drain, or are cancelled
 *     weft_shutdown_close(sd);
 */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/export.h"
#include "weft/group.h"
#include "weft/sync.h"

WEFT_BEGIN_DECLS

/* {======================================================= watchers */

/* An open signal watcher (opaque). */
typedef struct weft_signals weft_signals_t;

/* What it does: starts catching the n signals in signums (e.g. SIGINT,
 * SIGTERM, SIGHUP, SIGUSR1) for the calling task's runtime; deliveries
 * from now on are queued in *out for weft_signal_wait.
 * Ownership: the caller owns *out; free it with weft_signal_close.
 * Errors: -EINVAL (NULL out or signums, n == 0 or n > 64, a signal that
 * cannot be caught or must not be: SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
 * SIGFPE, SIGILL, the C library's internal real-time signals, a number
 * outside 1..NSIG-1, or the same signal twice), -ENOMEM, -EMFILE, other
 * -errno from libuv, -ECANCELED (nothing is watched), WEFT_ENOTFIBER.
 * Nothing is watched on failure.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_signal_open(weft_signals_t **out, const int *signums,
	size_t n);

/* What it does: takes one delivery queued in w, parking until one
 * arrives, and returns its signal number.  Deliveries of one signal are
 * taken in order; when several signals of w are queued, they are taken
 * in rotation.  Several tasks may wait on w: each delivery goes to the
 * one that has waited longest.
 * Errors: -EINVAL (NULL), -ECANCELED (cancelled, also by an enclosing
 * scope's deadline: no delivery was taken, the next wait gets it),
 * WEFT_ECLOSED (w was closed while the task waited), WEFT_EMISUSE (w was
 * closed before the call: reported, an abort naming the call in
 * WEFT_DEBUG builds), WEFT_ENOTFIBER.
 * Checkpoint: yes (also when a delivery is already queued).
 * Threads: weft fiber. */
WEFT_EXTERN int weft_signal_wait(weft_signals_t *w);

/* What it does: stops watching: deliveries still queued are dropped,
 * tasks parked in weft_signal_wait on w return WEFT_ECLOSED, and the
 * previous disposition of a signal comes back once no weft watcher of it
 * is left (a signal arriving in between gets the default action for a
 * moment: libuv resets it before weft restores it).  w is freed once no
 * call uses it any more; the call itself never waits.  A watcher still
 * open when its runtime is destroyed is closed by weft_runtime_destroy.
 * Ownership: w is invalid after the call: no new call may start on it.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (w was closed already: reported,
 * an abort naming the call in WEFT_DEBUG builds; nothing changed).
 * Checkpoint: no.  Threads: any thread, while w's runtime exists. */
WEFT_EXTERN int weft_signal_close(weft_signals_t *w);

/* }======================================================= */

/* {======================================================= shutdown */

/* A two-phase shutdown controller (opaque). */
typedef struct weft_shutdown weft_shutdown_t;

/* What it does: watches SIGINT and SIGTERM on behalf of the service run
 * in group g.  Phase one, at the first signal (or weft_shutdown_trigger):
 * the stop event is set (a serve loop stops accepting; handlers finish
 * their work) and a grace period of grace_ns nanoseconds starts (0:
 * none; WEFT_FOREVER: no deadline, only a second signal ends it).  Phase
 * two, when the grace period ends or at the next signal: g is cancelled
 * with origin WEFT_CANCEL_SIGNAL and a reason text naming what started
 * the shutdown ("shutdown (SIGTERM): grace period over", "shutdown
 * (weft_shutdown_trigger): no grace period"), which is not a failure:
 * g's join returns 0 if nothing failed.  Further signals are caught and
 * ignored until close.  No task is involved: the phases run on the
 * runtime's I/O thread, so nothing keeps g's join waiting.
 * Ownership: the caller owns *out and frees it with weft_shutdown_close;
 * g is retained (weft_group_retain) until then, so g may be joined
 * before the close.
 * Errors: -EINVAL (NULL out or g, grace_ns < 0), WEFT_EMISUSE (stale g:
 * joined and freed), -ENOMEM, -ECANCELED, errors of weft_signal_open,
 * WEFT_ENOTFIBER.  Nothing is watched on failure.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_shutdown_open(weft_shutdown_t **out, weft_group_t *g,
	int64_t grace_ns);

/* What it does: starts phase one as a first signal would, if it has not
 * started yet; otherwise does nothing (it never cancels g: cancel g
 * yourself for that).  The stop event is set when the call returns; the
 * grace period starts a moment later, on the I/O thread.  A signal
 * arriving after the call counts as the second.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (sd was closed: reported, an abort
 * naming the call in WEFT_DEBUG builds).
 * Checkpoint: no; never blocks.  Threads: any thread, while sd is open. */
WEFT_EXTERN int weft_shutdown_trigger(weft_shutdown_t *sd);

/* What it does: the "stop accepting" event of sd, set at phase one; wait
 * on it (weft_event_wait) or poll it (weft_event_is_set).
 * Ownership: sd's; valid until weft_shutdown_close; never destroy it.
 * Errors: NULL for a NULL sd, or a closed one (reported as a misuse, an
 * abort naming the call in WEFT_DEBUG builds).
 * Checkpoint: no.  Threads: any thread, while sd is open. */
WEFT_EXTERN weft_event_t *weft_shutdown_stop_event(weft_shutdown_t *sd);

/* What it does: stops sd: the signals are no longer watched (their
 * previous disposition comes back as for weft_signal_close), a running
 * grace period is stopped without cancelling g, g is released, and sd
 * and its event are freed once the I/O thread is done with them; the
 * call itself never waits.  Call it once no task waits on the stop event
 * any more, typically right after g's join.
 * Ownership: sd is invalid after the call (on success).
 * Errors: -EINVAL (NULL), -EBUSY (a task is inside weft_event_wait on
 * the stop event: nothing was done), WEFT_EMISUSE (sd was closed already:
 * reported, an abort naming the call in WEFT_DEBUG builds).
 * Checkpoint: no.  Threads: any thread, while sd's runtime exists. */
WEFT_EXTERN int weft_shutdown_close(weft_shutdown_t *sd);

/* }======================================================= */

WEFT_END_DECLS

#endif
