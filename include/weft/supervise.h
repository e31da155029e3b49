/* Supervisors (Erlang/OTP's supervisor, inside weft's structured
 * concurrency: docs/semantics.md rules 48 and 49).
 *
 * A plain group treats a child's failure as fatal to the siblings: it
 * cancels them and reports.  A supervisor runs children that are
 * expected to fail now and then (a connection to a server that goes
 * away) and restarts a failing child according to a policy instead:
 *
 *   strategy (per supervisor), OTP's meanings:
 *     WEFT_SUP_ONE_FOR_ONE   only the child that ended is restarted;
 *     WEFT_SUP_ONE_FOR_ALL   every other child is cancelled (in reverse
 *                            start order, each waited for), then all are
 *                            started again, in order;
 *     WEFT_SUP_REST_FOR_ONE  the children after it (in spec order) are
 *                            cancelled that way, then it and they start
 *                            again, in order;
 *   restart type (per child):
 *     WEFT_SUP_PERMANENT     restarted whenever it ends;
 *     WEFT_SUP_TRANSIENT     restarted only after a failure;
 *     WEFT_SUP_TEMPORARY     never restarted, also not when a sibling's
 *                            restart cancelled it (it is then gone).
 *
 * A child ends normally when it returns 0 (or -ECANCELED without having
 * been cancelled: a group counts that as no failure).  It fails when it
 * returns any other negative code, panics, or leaves a group unjoined:
 * each incarnation of a child runs in a group of its own, opened by a
 * keeper task (named after the child, a child of the supervisor's group)
 * that reports to the supervisor what that group's join returned, so
 * whatever ends a task in a group is a failure the supervisor sees and
 * handles.  The tree is: supervising task, its group, one keeper per
 * running child, the keeper's group, the child.
 *
 * Restart intensity: more than max_restarts restarts within period
 * nanoseconds and the supervisor gives up (OTP's MaxR/MaxT): it cancels
 * its children, waits for them and fails with one WEFT_EINTENSITY entry
 * whose nested group holds the last failures of each child.  One restart
 * is one decision: a ONE_FOR_ALL restart of five children counts once.
 * With a backoff, each restart first waits backoff_initial, doubled for
 * every restart already in the current period, at most backoff_max; the
 * supervisor watches the other children meanwhile (docs/semantics.md
 * rule 48).
 *
 * Children may also be added while it runs (weft_supervisor_add, with
 * the reference opts.self_out gives: OTP's start_child).
 *
 * Why a call that owns a group, not an option of groups: a group's
 * contract (the first failure cancels the siblings, join reports each
 * failure) is what a supervisor replaces, and a restart needs a task to
 * decide, wait for a backoff and start the next child in order.  So the
 * supervisor is that task, on the public group API: groups keep their
 * contract and their fast paths pay nothing for supervision.
 *
 * Typical use (a pool of workers that reconnect after errors):
 *     weft_child_spec_t spec[4];
 *     for (int i = 0; i < 4; i++)
 *             spec[i] = (weft_child_spec_t){ .name = "worker",
 *                     .fn = worker, .arg = &pool };
 *     weft_supervisor_opts_t o;
 *     weft_supervisor_opts_init(&o);  // one-for-one, 3 restarts in 5 s
 *     o.backoff_initial = 100 * WEFT_MSEC;
 *     weft_error_t *err = NULL;
 *     int rc = weft_supervise(spec, 4, &o, &err);  // until cancelled
 *     if (rc == WEFT_ECHILD_FAILED) return weft_fail_group(err);
 */
#ifndef WEFT_SUPERVISE_H
#define WEFT_SUPERVISE_H
#include <stddef.h>
#include <stdint.h>
#include "weft/error.h"
#include "weft/export.h"
#include "weft/runtime.h"
WEFT_BEGIN_DECLS

typedef enum weft_sup_strategy {
	WEFT_SUP_ONE_FOR_ONE = 0,
	WEFT_SUP_ONE_FOR_ALL = 1,
	WEFT_SUP_REST_FOR_ONE = 2
} weft_sup_strategy_t;

typedef enum weft_sup_restart {
	WEFT_SUP_PERMANENT = 0,
	WEFT_SUP_TRANSIENT = 1,
	WEFT_SUP_TEMPORARY = 2
} weft_sup_restart_t;

/* The largest max_restarts (the supervisor keeps one timestamp per
 * allowed restart). */
#define WEFT_SUP_MAX_RESTARTS 65536

/* Failures kept per child for the give-up entry (the newest); older ones
 * are counted and freed, so a restart storm runs in bounded memory. */
#define WEFT_SUP_KEEP_FAILURES 4

/* A running supervisor, as weft_supervisor_add sees it. */
typedef struct weft_supervisor weft_supervisor_t;

/* One child.  Zero-initialised fields give a permanent child started with
 * weft_group_spawn semantics, named "child". */
typedef struct weft_child_spec {
	const char *name; /* copied; NULL = "child" */
	weft_fn fn;	  /* required */
	/* Borrowed for the supervisor's whole run: every (re)start calls
	 * fn(arg) again, so arg must outlive weft_supervise and never
	 * passes to the child. */
	void *arg;
	weft_sup_restart_t restart;
	/* Nonzero: OTP's ordered start.  The child is started as with
	 * weft_group_start and must call weft_task_started(); the next
	 * child (and the supervisor's other work) waits until it did.  A
	 * restart waits for started() again.  A child that returns before
	 * started() ended (its failure, or a normal end: then it counts as
	 * ended normally). */
	int needs_start;
} weft_child_spec_t;

/* Called once for every failure of a child, in the supervisor's task,
 * before the supervisor acts on it (restarting: nonzero if it decided to
 * restart; a cancel of the supervisor may still prevent that restart,
 * and the failure is then in the error group returned, as rule 49
 * says).  failure is borrowed for the call: a one-entry
 * error group (weft_error_format prints it).  A notification for logs; it
 * must not park.  What the error group of weft_supervise holds is
 * independent of it. */
typedef void (*weft_sup_failure_fn)(const char *child,
	const weft_error_t *failure, int restarting, void *arg);

typedef struct weft_supervisor_opts {
	weft_sup_strategy_t strategy;
	/* At most max_restarts restarts within any period ns (0 .. 
	 * WEFT_SUP_MAX_RESTARTS; 0: the first restart gives up).  period:
	 * weft_now() time, so the virtual clock applies; WEFT_FOREVER:
	 * restarts are never forgotten; <= 0: none is remembered, every
	 * restart is allowed (unless max_restarts is 0). */
	int max_restarts;
	int64_t period;
	/* Wait before a restart: backoff_initial (<= 0: none) times 2^k,
	 * k the restarts already within period, capped at backoff_max
	 * (below backoff_initial: no doubling). */
	int64_t backoff_initial;
	int64_t backoff_max;
	weft_sup_failure_fn on_failure; /* may be NULL */
	void *on_failure_arg;
	/* Dynamic children.  If not NULL, *self_out receives a reference
	 * to the supervisor before its first child starts (NULL when
	 * weft_supervise fails before that), for weft_supervisor_add; the
	 * receiver releases it with weft_supervisor_release.  Such a
	 * supervisor runs until it is cancelled or gives up, also with no
	 * child (OTP's supervisor process, which lives on empty). */
	weft_supervisor_t **self_out;
} weft_supervisor_opts_t;

/* What it does: fills o with the defaults: WEFT_SUP_ONE_FOR_ONE, 3
 * restarts within 5 s, no backoff, no on_failure.
 * Errors: NULL is ignored.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_supervisor_opts_init(weft_supervisor_opts_t *o);

/* What it does: runs a supervisor in the calling task: opens a group,
 * starts specs[0..n) in order (a needs_start child is waited for until
 * it called started()), and restarts children as they end, by opts
 * (NULL: the defaults), until
 *   - no child is running or due to restart (every one ended and may
 *     stay ended: transient ones normally, temporary ones at all; a
 *     permanent child never ends for good; never with opts->self_out,
 *     as more may be added): returns 0, or
 *     WEFT_ECHILD_FAILED if a failure was not followed by a restart;
 *   - an enclosing scope is cancelled: the children are cancelled and
 *     waited for, nothing is restarted; returns -ECANCELED, or
 *     WEFT_ECHILD_FAILED if a child failed meanwhile or a failure was
 *     not followed by a restart;
 *   - a restart would exceed the intensity: the children are cancelled
 *     and waited for; returns WEFT_ECHILD_FAILED.
 * Failures (docs/semantics.md rule 49): every failure is reported once,
 * in *err_out, except one that was followed by a restart: that one was
 * handled, and it is reported only if the supervisor gives up, inside
 * the WEFT_EINTENSITY entry (the newest WEFT_SUP_KEEP_FAILURES of each
 * child; the entry's message says how many older ones were dropped).
 * *err_out's entries: the failures of temporary children, failures of
 * children while the supervisor stopped, then the WEFT_EINTENSITY entry
 * (named after the calling task) when it gave up.  A failure to start a
 * child at all (-ENOMEM) is a failure of that child.  A first start that
 * fails is handled like any failure (a restart, not OTP's failed
 * supervisor start): a pool whose server is not up yet retries.
 * The dump (weft_runtime_dump) shows a note on the supervisor's task
 * (strategy, restarts in the period) and on each child's keeper task
 * (its restarts and failures so far and the last failure).
 * Ownership: specs and opts are read during the call only (names are
 * copied) but each spec's arg is borrowed until it returns; the caller
 * owns *err_out (NULL when not WEFT_ECHILD_FAILED; with err_out NULL the
 * errors are freed).
 * Errors: -EINVAL (NULL specs with n > 0, a NULL fn, an unknown strategy
 * or restart type, max_restarts outside 0 .. WEFT_SUP_MAX_RESTARTS),
 * -ENOMEM (nothing started), WEFT_ENOTFIBER; n == 0 returns 0 at once.
 * Out of memory while running (no room to wait on more than 8 children,
 * or no stack for a keeper), the supervisor stops as when giving up,
 * with an -ENOMEM entry instead of WEFT_EINTENSITY.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_supervise(const weft_child_spec_t *specs, size_t n,
	const weft_supervisor_opts_t *opts, weft_error_t **err_out);

/* What it does: adds a child to a running supervisor (OTP's
 * supervisor:start_child): it goes last in spec order and is started at
 * the supervisor's next turn (waited for until started() if
 * needs_start), then supervised as the others.  Returns once the child
 * is queued, not started: a child that must be up first tells its adder
 * itself (an event in its arg).
 * Ownership: spec is read during the call (the name is copied); spec->arg
 * is borrowed until weft_supervise returns.  sup stays the caller's.
 * Errors: -EINVAL (NULL sup, spec or fn, an unknown restart type),
 * WEFT_ECLOSED (the supervisor is stopping or has returned: nothing is
 * added), -ENOMEM.
 * Checkpoint: no; never blocks.
 * Threads: any thread holding a reference to sup. */
WEFT_EXTERN int weft_supervisor_add(weft_supervisor_t *sup,
	const weft_child_spec_t *spec);

/* What it does: drops the reference opts.self_out gave; the supervisor's
 * shared part is freed when weft_supervise has returned too.
 * Ownership: sup is invalid for the caller afterwards.  NULL is ignored.
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_supervisor_release(weft_supervisor_t *sup);

WEFT_END_DECLS
#endif
