/* Supervisors: restarting failing children by policy (weft/supervise.h,
 * docs/semantics.md rules 48 and 49).
 *
 * Design
 * ------
 * Problem: OTP's supervisor (one-for-one, one-for-all, rest-for-one;
 * permanent, transient, temporary children; at most R restarts in T; an
 * ordered start) inside weft's structured concurrency, where a child's
 * failure normally cancels its siblings, every failure is reported
 * exactly once, and nothing outlives the call that started it.
 *
 * Approach: the supervisor is a call, run by the calling task, that owns
 * one group.  Each incarnation of a child is a keeper task in that group
 * (named after the child) which opens a group of its own, spawns or
 * starts the child's function into it and joins it; the keeper stores
 * what the join returned (an owned error group, or nothing) in the
 * child's record and returns 0.  So a child's failure never reaches the
 * supervisor's group (which would cancel the siblings), and whatever
 * ends a task in a group - a failure code, a panic, a group left
 * unjoined, a nested error group - arrives as the same error group a
 * plain group would have reported, with its message, path and nesting.
 * A needs_start child is started with weft_group_start inside its
 * keeper, and the keeper, itself started by the supervisor with
 * weft_group_start, calls weft_task_started once the child did: the
 * supervisor's start returns when the child is ready (OTP's ordered
 * start), also on a restart.
 *
 * The supervisor waits for the first keeper to end (weft_wait,
 * FIRST_COMPLETED, on the running keepers' handles), reads its child's
 * outcome and decides: no restart (the child stays ended), or a restart:
 * the intensity check (a ring of the last max_restarts restart times),
 * then the strategy's terminations (weft_task_cancel on a keeper, which
 * cancels its group and so its child, then weft_task_wait, in reverse
 * start order), and the starts, in spec order, once the restart's backoff
 * is over: each child due for a restart keeps the time before which it
 * may not start (due_at), and the supervisor's wait ends at the earliest
 * one, so it watches the other children during a backoff (their ends are
 * handled at once); a child due later in spec order waits behind one
 * whose backoff still runs, as the ordered start needs.
 * Every wait of the supervisor is a checkpoint of its own task, which
 * runs inside its group's scope: a cancelled enclosing scope stops the
 * loop at the next one, the group's join cancels and waits for the
 * keepers, and nothing is restarted after that.
 *
 * Where failures go (rule 49): a failure followed by a restart is kept in
 * its child's history (the newest WEFT_SUP_KEEP_FAILURES; older ones are
 * counted and freed, so restart storms run in bounded memory), reported
 * only if the supervisor gives up; a failure not followed by a restart
 * (a temporary child, a child failing while the supervisor stops) goes
 * into the error group returned.
 *
 * Rejected: running the child itself as the supervised task with a
 * wrapper that turns its failure into a slot (as gather.c does) - a
 * panic or a missing join ends the task past the wrapper, fails the
 * supervisor's group and cancels every sibling; the keeper costs one
 * task and one group per incarnation, which a restart can afford.
 * Done callbacks feeding a semaphore instead of weft_wait: the same
 * wake-up, but a callback could still touch the supervisor while its
 * call returns; weft_wait's O(children) scan per event is cheap next to
 * a restart, and the doorbell makes adds one more handle to wait on.
 *
 * Dynamic children: opts.self_out hands out a reference to a small
 * shared record (struct weft_supervisor: a spin lock, a queue of added
 * specs, a closed flag, a reference count).  weft_supervisor_add queues
 * under the lock and sets the current doorbell: an event that a doorbell
 * task in the supervisor's group waits on, and whose handle is one of
 * those the supervisor's weft_wait watches.  When it ends, the
 * supervisor spawns a new doorbell, swaps it in and takes the queue under
 * the lock, then destroys the old event (no add can reach it any more).
 * Children are allocated one by one (the array of pointers grows), since
 * keepers and notes hold their addresses.
 *
 * Introspection: the supervisor lists a note (core/inspect.h) for its own
 * task and one per child, pointed at the child's current keeper, whose
 * text it rewrites (restarts, failures, the last failure) as things
 * happen; the dump copies the texts under the notes' lock.
 *
 * Invariants
 *   1. A child's outcome fields are written by its keeper before the
 *      keeper ends, and read by the supervisor only after it saw the
 *      keeper's end (weft_wait, weft_task_wait, a start that returned
 *      WEFT_ENOTSTARTED, or the group's join), which orders them.
 *   2. A child has a keeper handle exactly while its state is RUNNING.
 *   3. Each failure is in exactly one place: a child's history, the
 *      unhandled list, or freed and counted as dropped.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/spin.h"
#include "core/inspect.h"
#include "core/records.h"
#include "core/task.h"
#include "runtime.h"
#include "weft/combine.h"
#include "weft/group.h"
#include "weft/supervise.h"
#include "weft/sync.h"
#include "weft/task.h"
#include "weft/time.h"

enum sup_state {
	SUP_DUE,     /* to be started by the next start pass */
	SUP_RUNNING, /* a keeper runs (or ended, not yet collected) */
	SUP_FAILED,  /* its start created nothing: out_err says why */
	SUP_IDLE,    /* ended; started again only by a sibling's restart */
	SUP_GONE     /* a temporary child that ended: never again */
};

struct sup;

struct sup_child {
	struct sup *s;
	weft_fn fn;
	void *arg;
	weft_sup_restart_t restart;
	bool needs_start;
	enum sup_state state;
	char name[WEFT_TASK_NAME_MAX];
	weft_task_t *h; /* the keeper, while RUNNING (invariant 2) */
	/* While DUE: the weft_now() time before which it is not started
	 * (its restart's backoff; WEFT_PAST: at once). */
	int64_t due_at;
	/* The incarnation's outcome, written by its keeper (invariant 1):
	 * its failures (NULL: it ended normally or was cancelled). */
	weft_error_t *out_err;
	/* The newest failures followed by a restart, oldest first from
	 * hist_head, hist_n of them. */
	weft_error_t *hist[WEFT_SUP_KEEP_FAILURES];
	size_t hist_head, hist_n;
	uint64_t starts, failures, dropped;
	/* The newest failure in hist waits for its restart: if the
	 * supervisor stops first, it was not followed by one. */
	bool pending;
	char last[96]; /* the last failure, as "CODE: message" */
	struct weft__inspect_note note;
};

/* A child added to a running supervisor, queued until it takes it. */
struct sup_add {
	struct sup_add *next;
	weft_fn fn;
	void *arg;
	weft_sup_restart_t restart;
	bool needs_start;
	char name[WEFT_TASK_NAME_MAX];
};

/* The running supervisor as others see it (weft_supervisor_add): shared
 * between the supervising task and the holders of a reference. */
struct weft_supervisor {
	weft__spin_t lock;
	/* References: the supervising task's, and the one self_out gave
	 * out.  acq_rel: the last release frees, after every other
	 * holder's use. */
	atomic_int refs;
	/* Under lock: set when the supervisor stops (adds are refused);
	 * the children added and not yet taken (FIFO: head and tail); the
	 * doorbell an add sets (NULL once closed). */
	bool closed;
	struct sup_add *head, **tail;
	weft_event_t *bell;
};

struct sup {
	struct weft_runtime *rt;
	struct weft_task *self;
	weft_group_t *g;
	/* The children, in spec order (added ones last), each allocated
	 * on its own: keepers and the notes list hold their addresses. */
	struct sup_child **c;
	size_t n, cap;
	/* weft_wait's arrays, cap + 1 long (the doorbell's slot): the
	 * handles, their children's indexes (SIZE_MAX: the doorbell), and
	 * which ended. */
	weft_task_t **hv;
	size_t *iv;
	bool *done;
	/* Dynamic children (opts.self_out): the shared part, and the
	 * doorbell task, which ends when an add sets the doorbell. */
	struct weft_supervisor *pub;
	weft_task_t *bell_task;
	weft_event_t *bell;
	weft_supervisor_opts_t o;
	/* Times of the newest restarts, at most o.max_restarts of them. */
	int64_t *ring;
	size_t ring_head, ring_n;
	uint64_t restarts;
	weft_error_t *unhandled; /* failures not followed by a restart */
	bool cancelled, gave_up;
	struct weft__inspect_note note;
};

/* {======================================================= notes */

static const char *const strategy_name[] = { "one_for_one", "one_for_all",
	"rest_for_one" };
static const char *const restart_name[] = { "permanent", "transient",
	"temporary" };

static size_t sup_in_period(const struct sup *s, int64_t now);

static void sup_note_self(struct sup *s)
{
	char t[WEFT__NOTE_MAX];
	snprintf(t, sizeof t,
		"supervisor strategy=%s children=%zu restarts=%" PRIu64
		" in_period=%zu max_restarts=%d",
		strategy_name[s->o.strategy], s->n, s->restarts,
		sup_in_period(s, weft_now()), s->o.max_restarts);
	weft__inspect_note_set(s->rt, &s->note, s->self->id, t);
}

static void sup_note_child(struct sup_child *c)
{
	char t[WEFT__NOTE_MAX];
	int k = snprintf(t, sizeof t,
		"supervised restart=%s restarts=%" PRIu64 " failures=%" PRIu64,
		restart_name[c->restart], c->starts ? c->starts - 1 : 0,
		c->failures);
	if (c->last[0] && k > 0 && (size_t)k < sizeof t)
		snprintf(t + k, sizeof t - (size_t)k, " last_failure=%s",
			c->last);
	uint64_t id = c->state == SUP_RUNNING ? weft_task_id(c->h) : 0;
	weft__inspect_note_set(c->s->rt, &c->note, id, t);
}

/* }======================================================= */

/* {======================================================= the keeper */

/* A one-leaf error group for a failure nobody else recorded (seq 0: a
 * new logical time).  Never NULL (out of memory: the static group that
 * says so).  Thread: a weft task. */
static weft_error_t *sup_error_leaf(int code, const char *msg, const char *name,
	uint64_t id, uint64_t seq, bool collateral)
{
	if (seq == 0)
		/* relaxed: the runtime's logical failure clock (as in
		 * gather.c); the RMW alone orders the values. */
		seq = atomic_fetch_add_explicit(&weft__task_current()
							 ->rt->error_seq,
			1, memory_order_relaxed);
	struct weft__leaf *l = weft__error_leaf_create(code, msg, name, id, seq,
		collateral, NULL);
	if (l == NULL)
		return weft__error_from_leaves(NULL, 0, 1);
	return weft__error_single(l);
}

/* The failure of a child whose start failed before started(): a start
 * returns it rather than aggregating it, so it is rebuilt from the
 * handle (the task has ended: its outcome is published).  NULL when it
 * did not fail (it returned 0 or was cancelled). */
static weft_error_t *sup_start_failure(weft_task_t *h)
{
	int code = 0;
	const char *msg = NULL;
	if (weft_task_state(h) != WEFT_TASK_FAILED ||
		weft_task_failure(h, &code, &msg) < 0)
		return NULL;
	const struct weft_task *t = weft__handle_addr(h); /* ours */
	return sup_error_leaf(code, msg ? msg : "", weft_task_name(h),
		weft_task_id(h), t->fail_seq, t->fail_collateral);
}

/* One incarnation of a child: runs it in a group of its own and keeps
 * what the group reports in the child's record (invariant 1).  Never
 * fails itself. */
static WEFT_FIBER_FN int sup_keeper(void *arg)
{
	struct sup_child *c = arg;
	weft_group_t *ig;
	int rc = weft_group_open(&ig);
	if (rc < 0) {
		c->out_err = sup_error_leaf(rc,
			"the supervisor could not open the child's group",
			c->name, 0, 0, false);
		return 0;
	}
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .name = c->name, .handle = &h };
	weft_error_t *early = NULL;
	if (c->needs_start) {
		void *v = NULL;
		rc = weft_group_start_opts(ig, c->fn, c->arg, &o, &v);
		if (rc == 0)
			(void)weft_task_started(v);
		else if (h)
			early = sup_start_failure(h);
		else if (rc != -ECANCELED)
			early = sup_error_leaf(rc,
				"the supervisor could not start the child",
				c->name, 0, 0, false);
	} else {
		rc = weft_group_spawn_opts(ig, c->fn, c->arg, &o);
		if (rc < 0)
			early = sup_error_leaf(rc,
				"the supervisor could not spawn the child",
				c->name, 0, 0, false);
	}
	weft_task_release(h);
	weft_error_t *err = NULL;
	(void)weft_group_join(ig, &err);
	c->out_err = early || err ? weft__error_concat(early, err) : NULL;
	return 0;
}

/* }======================================================= */

/* {======================================================= bookkeeping */

static size_t sup_in_period(const struct sup *s, int64_t now)
{
	if (s->o.period <= 0)
		return 0;
	size_t k = 0;
	size_t cap = (size_t)s->o.max_restarts;
	/* Newest first; times only grow, so the first one outside the
	 * period ends the count.  now - t cannot overflow: both are clock
	 * readings and t <= now. */
	while (k < s->ring_n) {
		int64_t t = s->ring[(s->ring_head + s->ring_n - 1 - k) % cap];
		if (now - t >= s->o.period)
			break;
		k++;
	}
	return k;
}

static void sup_ring_push(struct sup *s, int64_t now)
{
	size_t cap = (size_t)s->o.max_restarts;
	if (s->ring_n == cap) {
		s->ring_head = (s->ring_head + 1) % cap;
		s->ring_n--;
	}
	s->ring[(s->ring_head + s->ring_n) % cap] = now;
	s->ring_n++;
}

/* The wait before a restart with k restarts already in the period. */
static int64_t sup_backoff(const struct sup *s, size_t k)
{
	int64_t d = s->o.backoff_initial;
	if (d <= 0)
		return 0;
	int64_t cap = s->o.backoff_max > d ? s->o.backoff_max : d;
	for (size_t i = 0; i < k && d < cap; i++)
		d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
	return d < cap ? d : cap;
}

static void sup_unhandled(struct sup *s, weft_error_t *e)
{
	s->unhandled = weft__error_concat(s->unhandled, e);
}

/* Records failure e (a one-incarnation error group, taken) of c: kept
 * in c's history when it asked for a restart (keep: also when that
 * restart gives up), else unhandled. */
static void sup_failed_as(struct sup *s, struct sup_child *c, weft_error_t *e,
	bool keep, bool restarting)
{
	c->failures++;
	const char *msg = NULL;
	int code = weft_error_primary(e, &msg);
	snprintf(c->last, sizeof c->last, "%s: %s", weft_err_name(code),
		msg ? msg : "");
	if (s->o.on_failure)
		s->o.on_failure(c->name, e, restarting, s->o.on_failure_arg);
	if (!keep) {
		sup_unhandled(s, e);
		return;
	}
	if (c->hist_n == WEFT_SUP_KEEP_FAILURES) {
		weft_error_free(c->hist[c->hist_head]);
		c->hist_head = (c->hist_head + 1) % WEFT_SUP_KEEP_FAILURES;
		c->hist_n--;
		c->dropped++;
	}
	c->hist[(c->hist_head + c->hist_n) % WEFT_SUP_KEEP_FAILURES] = e;
	c->hist_n++;
	c->pending = true;
}

static void sup_failed(struct sup *s, struct sup_child *c, weft_error_t *e,
	bool restarting)
{
	sup_failed_as(s, c, e, restarting, restarting);
}

/* Takes the outcome of c's ended keeper: releases the handle and
 * returns the incarnation's failures (NULL: none). */
static weft_error_t *sup_collect(struct sup_child *c)
{
	weft_task_release(c->h);
	c->h = NULL;
	weft_error_t *e = c->out_err;
	c->out_err = NULL;
	return e;
}

/* }======================================================= */

/* {======================================================= starting */

/* Starts c's next incarnation.  0: it runs (and, needs_start, is
 * ready); 1: it ended or failed at once (RUNNING with an ended keeper,
 * or FAILED), so the start pass stops there; -ECANCELED. */
static int sup_start(struct sup *s, struct sup_child *c)
{
	c->out_err = NULL;
	c->h = NULL;
	weft_spawn_opts_t o = {
		.name = c->name,
		.flags = WEFT_SPAWN_UNLESS_CANCELLED,
		.handle = &c->h,
	};
	int rc = c->needs_start
		? weft_group_start_opts(s->g, sup_keeper, c, &o, NULL)
		: weft_group_spawn_opts(s->g, sup_keeper, c, &o);
	if (c->h == NULL && rc == -ECANCELED)
		return rc; /* nothing was created: nothing started */
	c->starts++;
	c->pending = false; /* its last failure was followed by a restart */
	if (c->h) {
		/* The keeper exists: it runs, or (a start that failed) has
		 * ended; either way the wait loop collects it. */
		c->state = SUP_RUNNING;
		sup_note_child(c);
		return rc == 0 ? 0 : rc == -ECANCELED ? -ECANCELED : 1;
	}
	c->out_err = sup_error_leaf(rc, "the supervisor could not start it",
		c->name, 0, 0, false);
	c->state = SUP_FAILED;
	return 1;
}

/* Starts the DUE children in spec order, stopping at one that did not
 * come up.  0 or -ECANCELED. */
static int sup_start_due(struct sup *s)
{
	int64_t now = weft_now();
	for (size_t i = 0; i < s->n; i++) {
		struct sup_child *c = s->c[i];
		if (c->state != SUP_DUE)
			continue;
		/* Its backoff is not over: the later ones wait behind it
		 * (starts in spec order, as the ordered start needs). */
		if (c->due_at > now)
			return 0;
		/* Nothing starts once the supervisor is cancelled (the
		 * spawn flag below closes the race with a cancel that comes
		 * after this check). */
		int rc = weft_checkpoint_if_cancelled();
		if (rc < 0)
			return rc;
		rc = sup_start(s, c);
		if (rc == -ECANCELED)
			return rc;
		if (rc == 1)
			return 0;
	}
	return 0;
}

/* }======================================================= */

/* {======================================================= restarting */

/* Cancels the keeper of running child c and waits for it; its outcome
 * counts as that of a child restarted by a sibling.  0 or -ECANCELED
 * (the supervisor itself was cancelled: c stays RUNNING). */
static int sup_terminate(struct sup *s, struct sup_child *c, int64_t at)
{
	(void)weft_task_cancel_with(c->h, "a sibling's restart");
	int rc = weft_task_wait(c->h);
	if (rc < 0)
		return rc;
	weft_error_t *e = sup_collect(c);
	bool again = c->restart != WEFT_SUP_TEMPORARY;
	if (e)
		sup_failed(s, c, e, again);
	c->state = again ? SUP_DUE : SUP_GONE;
	c->due_at = at;
	sup_note_child(c);
	return 0;
}

/* Children[from, n) except `except`, in reverse order: running ones are
 * terminated, the others (but the gone) become due at `at`.  0 or
 * -ECANCELED. */
static int sup_restart_range(struct sup *s, size_t from, size_t except,
	int64_t at)
{
	for (size_t i = s->n; i-- > from;) {
		struct sup_child *c = s->c[i];
		if (i == except || c->state == SUP_GONE)
			continue;
		if (c->state == SUP_RUNNING) {
			int rc = sup_terminate(s, c, at);
			if (rc < 0)
				return rc;
		} else {
			c->state = SUP_DUE;
			c->due_at = at;
		}
	}
	return 0;
}

enum { SUP_GIVE_UP = 1 };

/* Child i ended (its keeper, collected into e, or its start failed).
 * 0, SUP_GIVE_UP, or -ECANCELED. */
static int sup_ended(struct sup *s, size_t i, weft_error_t *e)
{
	struct sup_child *c = s->c[i];
	if (weft_checkpoint_if_cancelled() < 0) {
		/* Stopping: nothing restarts (rule 48). */
		if (e)
			sup_failed(s, c, e, false);
		c->state = SUP_IDLE;
		sup_note_child(c);
		return -ECANCELED;
	}
	bool wants = c->restart == WEFT_SUP_PERMANENT ||
		(c->restart == WEFT_SUP_TRANSIENT && e != NULL);
	int64_t now = weft_now();
	size_t recent = wants ? sup_in_period(s, now) : 0;
	bool give_up = wants && recent >= (size_t)s->o.max_restarts;
	if (e)
		/* A failure that asked for a restart is kept for the
		 * give-up entry even when it is the one that gives up. */
		sup_failed_as(s, c, e, wants, wants && !give_up);
	if (!wants) {
		c->state = c->restart == WEFT_SUP_TEMPORARY ? SUP_GONE
							    : SUP_IDLE;
		sup_note_child(c);
		return 0;
	}
	if (give_up) {
		c->state = SUP_IDLE;
		sup_note_child(c);
		return SUP_GIVE_UP;
	}
	if (s->o.max_restarts > 0)
		sup_ring_push(s, now);
	s->restarts++;
	/* The backoff: the children this restart concerns start at `at`;
	 * the loop keeps watching the others meanwhile (rule 48). */
	int64_t d = sup_backoff(s, recent);
	int64_t at = d <= 0	      ? WEFT_PAST
		: now > INT64_MAX - d ? INT64_MAX
				      : now + d;
	c->state = SUP_DUE;
	c->due_at = at;
	sup_note_child(c);
	int rc = 0;
	if (s->o.strategy == WEFT_SUP_ONE_FOR_ALL)
		rc = sup_restart_range(s, 0, i, at);
	else if (s->o.strategy == WEFT_SUP_REST_FOR_ONE)
		rc = sup_restart_range(s, i + 1, i, at);
	sup_note_self(s);
	return rc < 0 ? rc : 0;
}

/* }======================================================= */

/* {======================================================= the loop */

/* Runs until nothing is left to run (0), the supervisor is cancelled
 * (-ECANCELED), gives up (SUP_GIVE_UP) or cannot wait (-ENOMEM). */
static int sup_take_adds(struct sup *s);

static int sup_loop(struct sup *s)
{
	for (;;) {
		/* Reloaded each turn: taking added children may move them. */
		weft_task_t **hv = s->hv;
		size_t *iv = s->iv;
		bool *done = s->done;
		int rc = sup_start_due(s);
		if (rc < 0)
			return rc;
		size_t m = 0;
		bool again = false, due = false, behind = false;
		bool backoff = false;
		/* The earliest end of a backoff still running: the wait below
		 * ends there at the latest. */
		int64_t next_due = WEFT_FOREVER;
		int64_t now = weft_now();
		for (size_t i = 0; i < s->n && !again; i++) {
			struct sup_child *c = s->c[i];
			if (c->state == SUP_FAILED) {
				weft_error_t *e = c->out_err;
				c->out_err = NULL;
				rc = sup_ended(s, i, e);
				if (rc != 0)
					return rc;
				again = true;
			} else if (c->state == SUP_RUNNING) {
				hv[m] = c->h;
				iv[m++] = i;
			} else if (c->state == SUP_DUE && c->due_at > now) {
				backoff = true;
				if (c->due_at < next_due)
					next_due = c->due_at;
				/* As sup_start_due: later ones wait behind
				 * it. */
				behind = true;
			} else if (c->state == SUP_DUE && !behind) {
				/* Behind one that did not come up: it waits
				 * until that one is dealt with. */
				due = true;
			}
		}
		if (again || (m == 0 && due))
			continue;
		if (s->bell_task) {
			hv[m] = s->bell_task;
			iv[m++] = SIZE_MAX;
		}
		if (m == 0 && !backoff)
			return 0;
		if (m == 0) {
			/* Only backoffs to wait for (one of WEFT_FOREVER:
			 * until cancelled). */
			rc = weft_sleep_until(next_due);
			if (rc < 0)
				return rc;
			continue;
		}
		/* A deadline that passes leaves every done[k] false: the next
		 * turn starts the children whose backoff is over. */
		rc = weft_wait(hv, m, WEFT_WAIT_FIRST_COMPLETED, next_due,
			done);
		if (rc < 0)
			return rc;
		for (size_t k = 0; k < m; k++) {
			if (iv[k] == SIZE_MAX) {
				/* The doorbell: new children (taking them
				 * may grow the arrays: nothing below reads
				 * them past this one). */
				if (done[k] && (rc = sup_take_adds(s)) < 0)
					return rc;
				continue;
			}
			struct sup_child *c = s->c[iv[k]];
			/* A restart of an earlier one may have terminated
			 * this one already (it is no longer RUNNING, or runs
			 * a new keeper). */
			if (!done[k] || c->state != SUP_RUNNING ||
				c->h != hv[k])
				continue;
			rc = sup_ended(s, iv[k], sup_collect(c));
			if (rc != 0)
				return rc;
		}
	}
}

/* The WEFT_EINTENSITY entry: every child's kept failures, nested. */
static weft_error_t *sup_give_up_error(struct sup *s)
{
	char msg[256];
	int k = snprintf(msg, sizeof msg,
		"more than %d restarts within %.3fs (%" PRIu64
		" restarts in all)",
		s->o.max_restarts, (double)s->o.period / 1e9, s->restarts);
	weft_error_t *nested = NULL;
	for (size_t i = 0; i < s->n; i++) {
		struct sup_child *c = s->c[i];
		if (c->failures && k > 0 && (size_t)k < sizeof msg)
			k += snprintf(msg + k, sizeof msg - (size_t)k,
				"; '%s' failed %" PRIu64 " times, %" PRIu64
				" dropped",
				c->name, c->failures, c->dropped);
		for (; c->hist_n; c->hist_n--) {
			nested = weft__error_concat(nested,
				c->hist[c->hist_head]);
			c->hist_head = (c->hist_head + 1) %
				WEFT_SUP_KEEP_FAILURES;
		}
	}
	/* relaxed: the runtime's logical failure clock (as in gather.c). */
	uint64_t seq = atomic_fetch_add_explicit(&s->rt->error_seq, 1,
		memory_order_relaxed);
	struct weft__leaf *l = weft__error_leaf_create(WEFT_EINTENSITY, msg,
		s->self->name, s->self->id, seq, false, nested);
	if (l == NULL) {
		weft_error_free(nested);
		return weft__error_from_leaves(NULL, 0, 1);
	}
	weft__task_leaf_context(s->self, l);
	return weft__error_single(l);
}

static int sup_check(const weft_child_spec_t *specs, size_t n,
	const weft_supervisor_opts_t *o)
{
	if (n > 0 && specs == NULL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (specs[i].fn == NULL ||
			(unsigned)specs[i].restart > WEFT_SUP_TEMPORARY)
			return -EINVAL;
	if ((unsigned)o->strategy > WEFT_SUP_REST_FOR_ONE ||
		o->max_restarts < 0 || o->max_restarts > WEFT_SUP_MAX_RESTARTS)
		return -EINVAL;
	return 0;
}

void weft_supervisor_opts_init(weft_supervisor_opts_t *o)
{
	if (o == NULL)
		return;
	memset(o, 0, sizeof *o);
	o->strategy = WEFT_SUP_ONE_FOR_ONE;
	o->max_restarts = 3;
	o->period = 5 * WEFT_SEC;
}

/* Room for want children (and the doorbell's slot). */
static int sup_grow(struct sup *s, size_t want)
{
	if (want <= s->cap && s->hv)
		return 0;
	size_t cap = s->cap ? s->cap : 4;
	while (cap < want)
		cap *= 2;
	struct sup_child **c = weft__calloc(cap, sizeof *c);
	weft_task_t **hv = weft__calloc(cap + 1, sizeof *hv);
	size_t *iv = weft__calloc(cap + 1, sizeof *iv);
	bool *done = weft__calloc(cap + 1, sizeof *done);
	if (!c || !hv || !iv || !done) {
		weft__free(c);
		weft__free(hv);
		weft__free(iv);
		weft__free(done);
		return -ENOMEM;
	}
	if (s->n)
		memcpy(c, s->c, s->n * sizeof *c);
	weft__free(s->c);
	weft__free(s->hv);
	weft__free(s->iv);
	weft__free(s->done);
	s->c = c;
	s->hv = hv;
	s->iv = iv;
	s->done = done;
	s->cap = cap;
	return 0;
}

/* Appends a child, due to start (room made by sup_grow). */
static int sup_append(struct sup *s, weft_fn fn, void *arg,
	weft_sup_restart_t restart, bool needs_start, const char *name)
{
	struct sup_child *c = weft__calloc(1, sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	c->s = s;
	c->fn = fn;
	c->arg = arg;
	c->restart = restart;
	c->needs_start = needs_start;
	c->state = SUP_DUE;
	c->due_at = WEFT_PAST;
	snprintf(c->name, sizeof c->name, "%s", name ? name : "child");
	s->c[s->n++] = c;
	weft__inspect_note_add(s->rt, &c->note);
	sup_note_child(c);
	return 0;
}

/* The doorbell task: ends when an add (or the supervisor's stop) sets
 * its event. */
static WEFT_FIBER_FN int sup_bell_wait(void *ev)
{
	(void)weft_event_wait(ev);
	return 0;
}

/* Arms a new doorbell (the previous one has ended, or there is none)
 * and takes the children added meanwhile.  0, or -ENOMEM: no doorbell
 * (adds are then refused: the supervisor could not hear them). */
static int sup_take_adds(struct sup *s)
{
	struct weft_supervisor *p = s->pub;
	weft_task_release(s->bell_task);
	s->bell_task = NULL;
	weft_event_t *ev = NULL;
	int rc = weft_event_create(&ev);
	weft_spawn_opts_t o = { .name = "supervisor doorbell",
		.flags = WEFT_SPAWN_SKIPPABLE,
		.handle = &s->bell_task };
	if (rc == 0 &&
		(rc = weft_group_spawn_opts(s->g, sup_bell_wait, ev, &o)) < 0) {
		weft_event_destroy(ev);
		ev = NULL;
	}
	weft__spin_lock(&p->lock);
	struct sup_add *list = p->head;
	p->head = NULL;
	p->tail = &p->head;
	p->bell = ev;
	if (ev == NULL)
		p->closed = true;
	weft__spin_unlock(&p->lock);
	/* No add can reach the old event now, and its task has ended. */
	if (s->bell)
		weft_event_destroy(s->bell);
	s->bell = ev;
	while (list) {
		struct sup_add *a = list;
		list = a->next;
		if (rc == 0 && (rc = sup_grow(s, s->n + 1)) == 0)
			rc = sup_append(s, a->fn, a->arg, a->restart,
				a->needs_start, a->name);
		weft__free(a);
	}
	if (rc == 0)
		sup_note_self(s);
	return rc;
}

/* Refuses further adds and frees the queued ones. */
static void sup_close_pub(struct sup *s)
{
	struct weft_supervisor *p = s->pub;
	if (p == NULL)
		return;
	weft__spin_lock(&p->lock);
	struct sup_add *list = p->head;
	p->head = NULL;
	p->tail = &p->head;
	p->closed = true;
	p->bell = NULL;
	weft__spin_unlock(&p->lock);
	while (list) {
		struct sup_add *a = list;
		list = a->next;
		weft__free(a);
	}
}

void weft_supervisor_release(weft_supervisor_t *p)
{
	/* acq_rel: the last release sees every other holder's use. */
	if (p &&
		atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) ==
			1)
		weft__free(p);
}

int weft_supervisor_add(weft_supervisor_t *p, const weft_child_spec_t *spec)
{
	if (p == NULL || spec == NULL || spec->fn == NULL ||
		(unsigned)spec->restart > WEFT_SUP_TEMPORARY)
		return -EINVAL;
	struct sup_add *a = weft__calloc(1, sizeof *a);
	if (a == NULL)
		return -ENOMEM;
	a->fn = spec->fn;
	a->arg = spec->arg;
	a->restart = spec->restart;
	a->needs_start = spec->needs_start != 0;
	snprintf(a->name, sizeof a->name, "%s",
		spec->name ? spec->name : "child");
	weft__spin_lock(&p->lock);
	bool closed = p->closed;
	if (!closed) {
		*p->tail = a;
		p->tail = &a->next;
		/* Under the lock: the supervisor destroys an event only
		 * after taking it from here. */
		if (p->bell)
			(void)weft_event_set(p->bell);
	}
	weft__spin_unlock(&p->lock);
	if (closed) {
		weft__free(a);
		return WEFT_ECLOSED;
	}
	return 0;
}

static void sup_free(struct sup *s)
{
	for (size_t i = 0; i < s->n; i++)
		weft__free(s->c[i]);
	weft__free(s->c);
	weft__free(s->hv);
	weft__free(s->iv);
	weft__free(s->done);
	weft__free(s->ring);
}

int weft_supervise(const weft_child_spec_t *specs, size_t n,
	const weft_supervisor_opts_t *opts, weft_error_t **err_out)
{
	if (err_out)
		*err_out = NULL;
	weft_supervisor_opts_t dflt;
	weft_supervisor_opts_init(&dflt);
	const weft_supervisor_opts_t *o = opts ? opts : &dflt;
	if (o->self_out)
		*o->self_out = NULL;
	int rc = sup_check(specs, n, o);
	if (rc < 0)
		return rc;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (n == 0 && o->self_out == NULL)
		return 0;
	struct sup s = { .rt = self->rt, .self = self, .o = *o };
	if (o->self_out) {
		s.pub = weft__calloc(1, sizeof *s.pub);
		if (s.pub) {
			weft__spin_init(&s.pub->lock);
			atomic_init(&s.pub->refs, 2);
			s.pub->tail = &s.pub->head;
		}
	}
	if (o->max_restarts > 0)
		s.ring = weft__calloc((size_t)o->max_restarts, sizeof *s.ring);
	if ((o->self_out && !s.pub) || (o->max_restarts > 0 && !s.ring) ||
		(rc = sup_grow(&s, n)) < 0 ||
		(rc = weft_group_open(&s.g)) < 0) {
		sup_free(&s);
		weft__free(s.pub);
		return rc < 0 ? rc : -ENOMEM;
	}
	weft__inspect_note_add(s.rt, &s.note);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = sup_append(&s, specs[i].fn, specs[i].arg, specs[i].restart,
			specs[i].needs_start != 0, specs[i].name);
	if (rc == 0 && s.pub)
		rc = sup_take_adds(&s);
	int setup_rc = rc;
	if (rc == 0) {
		sup_note_self(&s);
		if (s.pub)
			*o->self_out = s.pub;
		rc = sup_loop(&s);
	}
	sup_close_pub(&s);
	if (setup_rc < 0) {
		/* Nothing started (a doorbell may have been spawned). */
		(void)weft_group_cancel(s.g, "the supervisor could not start");
	} else if (rc == SUP_GIVE_UP) {
		s.gave_up = true;
		(void)weft_group_cancel(s.g, "the supervisor gave up");
	} else if (rc == -ECANCELED) {
		s.cancelled = true;
	} else if (rc < 0) {
		/* No memory to wait with or to take an added child: stop as
		 * when giving up, and say why. */
		sup_unhandled(&s,
			sup_error_leaf(rc, "the supervisor could not go on",
				self->name, self->id, 0, false));
		(void)weft_group_cancel(s.g, "the supervisor failed");
	}
	/* Stopping: the join cancels nothing more than the loop's exit did
	 * (an enclosing cancel reached the keepers through the group's
	 * scope), waits for every keeper, and restarts nothing. */
	if (s.bell)
		(void)weft_event_set(s.bell); /* ends the doorbell task */
	weft_error_t *jerr = NULL;
	int jrc = weft_group_join(s.g, &jerr);
	if (jrc == -ECANCELED)
		s.cancelled = true;
	weft_task_release(s.bell_task);
	if (s.bell)
		weft_event_destroy(s.bell);
	for (size_t i = 0; i < s.n; i++) {
		struct sup_child *c = s.c[i];
		if (c->state == SUP_RUNNING) {
			weft_error_t *e = sup_collect(c);
			if (e)
				sup_failed(&s, c, e, false);
		} else if (c->state == SUP_FAILED) {
			sup_failed(&s, c, c->out_err, false);
			c->out_err = NULL;
		}
		c->state = SUP_IDLE;
	}
	/* A failure whose restart the stop prevented was not followed by
	 * one: it is reported as such (unless the give-up entry takes the
	 * whole history). */
	for (size_t i = 0; i < s.n && !s.gave_up; i++) {
		struct sup_child *c = s.c[i];
		if (!c->pending || c->hist_n == 0)
			continue;
		size_t last = (c->hist_head + c->hist_n - 1) %
			WEFT_SUP_KEEP_FAILURES;
		sup_unhandled(&s, c->hist[last]);
		c->hist_n--;
		c->pending = false;
	}
	/* A keeper that could not run at all (no stack) failed to the
	 * group itself. */
	if (jerr)
		sup_unhandled(&s, jerr);
	if (s.gave_up)
		sup_unhandled(&s, sup_give_up_error(&s));
	for (size_t i = 0; i < s.n; i++) {
		struct sup_child *c = s.c[i];
		weft__inspect_note_remove(s.rt, &c->note);
		for (; c->hist_n; c->hist_n--) {
			weft_error_free(c->hist[c->hist_head]);
			c->hist_head = (c->hist_head + 1) %
				WEFT_SUP_KEEP_FAILURES;
		}
	}
	weft__inspect_note_remove(s.rt, &s.note);
	sup_free(&s);
	weft_supervisor_release(s.pub);
	if (setup_rc < 0) {
		weft_supervisor_release(s.pub); /* never given out */
		weft_error_free(s.unhandled);
		return setup_rc;
	}
	if (s.unhandled) {
		if (err_out)
			*err_out = s.unhandled;
		else
			weft_error_free(s.unhandled);
		return WEFT_ECHILD_FAILED;
	}
	return s.cancelled ? -ECANCELED : 0;
}

/* }======================================================= */
