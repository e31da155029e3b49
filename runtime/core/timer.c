/* weft_now() and the runtime's deadline timer (see timer.h).
 *
 * Design
 * ------
 * One timerfd armed at the next work of a timing wheel of scope deadlines
 * (wheel.c: intrusive, so arming a deadline never allocates and never
 * fails, and O(1)), rather than one libuv timer per deadline: a libuv
 * handle must be closed on the I/O thread with a callback before its
 * memory can go, which would tie every scope's lifetime to a round trip
 * there.  Not a libuv timer either: those count whole milliseconds from a
 * loop time truncated to the millisecond, so a 1 ms sleep lasted about
 * 2 ms; the timerfd takes an absolute CLOCK_MONOTONIC time in nanoseconds
 * (weft_now's clock).  The wheel rounds deadlines up to its 65.536 us
 * tick, so none fires early.
 *
 * Three kinds of thread fire or file deadlines, all under `lock`: the I/O
 * thread when the fd fires, a worker at a yield (weft__timer_fire_due:
 * due deadlines fire at the next yield of any worker, not a tick later
 * and only once the OS gives the I/O thread a CPU), and a thread that
 * moves a deadline (weft__timer_update's direct path).  When the lock is
 * busy, the update goes to the I/O thread as a request instead of
 * waiting: the updater may be a worker on a hot path.
 *
 * The virtual clock (docs/semantics.md rule 44)
 * --------------------------------------------
 * With WEFT_CLOCK_VIRTUAL the runtime's time is `vnow`: it starts at
 * WEFT_VIRTUAL_EPOCH, the timerfd is never armed, and time moves only by
 * jumps to the earliest deadline in the wheel, made when the runtime is
 * quiescent: every worker asleep, nothing queued, no operation holding
 * the clock.  weft_now() reads vnow on the runtime's workers and offload
 * threads (a thread-local pointer, bound when they start) and the real
 * clock elsewhere.
 *
 * The protocol.  A worker that lists itself as the last sleeper
 * (idle.c) calls weft__timer_idle, which posts `check_node` to the I/O
 * thread when the clock is virtual, a task waits in
 * weft_wait_all_tasks_blocked, or the real clock's asleep report is on
 * (`asleep_check`, config deadlock WEFT_DEADLOCK_REPORT: rule 46; it
 * also makes holds count, so Q3 holds for it too); after a virtual jump
 * the I/O thread checks again at once, since deadlines that woke nobody
 * leave no worker to become the last sleeper again.  The request only
 * marks the check wanted; the I/O thread makes it after draining the whole
 * queue (weft__timer_quiesce): it first publishes the tasks it woke
 * itself (its batch), then asks weft__idle_quiet, which decides under
 * the idle lock: every worker listed as sleeping, the injection queue,
 * every deque and the request queue empty, and it reads `holds`.  Then,
 * in this order of preference: wake every weft_wait_all_tasks_blocked
 * waiter registered before the decision (Trio: they wake before the
 * clock jumps; one registered after it ran after the decision, which is
 * stale for it: a root that came in meanwhile spawned, waited and was
 * woken at once, its sibling still running); jump, if virtual and
 * nothing holds the clock; report
 * a deadlock to the roots, if virtual, nothing holds the clock and no
 * deadline is armed.  Under the real clock the last case only prints
 * "all tasks are asleep" (timer_real_asleep): plain threads are outside
 * Q3 below, so acting on it could be wrong.
 *
 * The real clock's report (rule 46)
 * ---------------------------------
 * Two more conditions hold it off there.  Outside wakers: what is not a
 * task nor an operation in flight and can still wake one (an open group
 * retained with weft_group_retain, so every portal and shutdown; a
 * shutdown's signal hook), counted in `outside` while the report is on.
 * Each +1 is made by a running task (or by a holder already counted),
 * so a check whose quiet decision saw every worker asleep under the idle
 * lock sees it; a -1 that reaches 0 posts a check, as a hold's does
 * (Q7).  And a confirmation: what weft cannot count (a plain thread that
 * sets an event it holds a pointer to) usually acts at once, so the
 * first quiet check only arms the timerfd TIMER_CONFIRM_NS later
 * (confirm_at, folded into timer_rearm_locked); weft__timer_expire then
 * asks for a check, which reports if it sees the same quiet stretch
 * (idle.c's quiet_gen, bumped under the idle lock whenever the last
 * worker lists itself: no task ran between two answers with the same
 * value, Q1) and the same hold_epoch (no operation or outside waker
 * began).  Anything else starts over or cancels the confirmation.  A
 * report is still wrong when such a thread acts after the delay; a race
 * between a retain and a join's end can count a closed group until its
 * release (a missed report, never a false one).
 *
 * Why the jump cannot pass a task that is about to become runnable:
 *   Q1. Only an awake worker (one not listed as sleeping) runs tasks, and
 *       a worker leaves the list only under the idle lock: while
 *       weft__idle_quiet holds it, no task runs.
 *   Q2. A task made runnable is in a worker's run-next slot or deque
 *       (its worker is awake), in the injection queue (checked), or in
 *       the I/O thread's batch (published before the check).
 *   Q3. Whatever can make a task runnable without being a task is
 *       counted in `holds` until it has: an I/O operation or offload
 *       call, from before its task parks until after it resumed (so the
 *       count falls only on an awake worker); a portal call from a
 *       foreign thread, until its task is queued (it drops the hold
 *       after the push, and the check reads holds before the queues);
 *       a root task from weft_runtime_run, likewise until it is queued;
 *       an offload thread's weft_from_thread_run drops the call's hold
 *       after it woke the task and gets it back from the task before it
 *       is signalled.  (Q7: whoever drops the last hold posts a check.)
 *       A deadline is fired only by this jump or by an awake worker
 *       (the timerfd is not armed).
 *   Q4. A deadline set while the timer's lock was busy travels as a
 *       request; its worker posts it before it lists itself, so the
 *       check, which takes the idle lock after that listing, sees the
 *       request queue non-empty and waits for the next drain (the
 *       poster's wake-up guarantees one) instead of jumping past it.
 *       One queued check stands for every later transition until it
 *       runs, so it is made after a whole drain, never in its middle.
 *   Q5. So after a quiet answer with holds == 0, nothing that weft
 *       counts can make a task runnable until this thread does (the
 *       jump): the decision stays true after the idle lock is released,
 *       and the jump is made under the timer lock without it (lock
 *       order: a scope lock may be held by a canceller that then takes
 *       the idle lock to wake a worker).
 *   Q6. An operation or a root may begin after the check read `holds`
 *       (0) and before it acts: a root listed meanwhile would be
 *       cancelled as deadlocked though it never ran, and a jump would
 *       pass the task it queues.  Every +1 of weft__timer_hold bumps
 *       `hold_epoch` after it counted in `holds`; the check reads the
 *       epoch before its quiet decision reads `holds` and again before
 *       it jumps or cancels (for the roots, under insp_lock, which a
 *       root is listed under after its +1), and stands down when it
 *       moved: the worker that runs what began goes to sleep again
 *       later and posts a new check.  The order matters: a +1 the
 *       decision missed in `holds` bumps the epoch after that read,
 *       so after the first epoch read too (all seq_cst); with the
 *       bump first, a check could read the new epoch and the old
 *       count, and cancel a root queued a moment later as deadlocked.
 *   Q7. A check that reads holds != 0 stands down (no jump, no report)
 *       and posts nothing; so the drop to 0 posts a check itself
 *       (weft__timer_hold_released), as the last sleeper does.  A task's
 *       hold is dropped on an awake worker, whose later sleep would post
 *       one anyway; but a root's weft_runtime_run, a portal call and an
 *       offload thread drop theirs on a plain thread, possibly after the
 *       task they queued ran, parked and every worker went to sleep (and
 *       that last sleeper's check found the hold still taken): without
 *       this post the runtime waited forever, the clock never jumping
 *       (test_vclock hung about once in 500 runs under TSan and load).
 * A plain thread that sets an event or cancels a scope is outside Q3:
 * the clock may jump just before its wake (rule 44 says so).
 *
 * The check is posted once per transition to "last sleeper": the poster
 * sets check_queued 0 -> 1, the I/O thread clears it (seq_cst) before it
 * checks; a worker that becomes the last sleeper after that clear posts
 * again, one that comes before it is seen by the check (its listing is
 * ordered before the check's idle lock).
 *
 * Invariants
 *   1. The wheel, `armed` and the fd's setting change only under `lock`.
 *   2. A scope in the wheel holds a reference; a queued request holds one.
 *   3. `due` is a lower bound of every armed deadline (republished under
 *      the lock after every change), so a worker that reads INT64_MAX
 *      can skip the lock: nothing is armed, or a change is in flight and
 *      its thread re-arms the fd. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "base/diag.h"
#include "core/cancel.h"
#include "core/idle.h"
#include "core/ioq.h"
#include "core/sched.h"
#include "core/task.h"
#include "core/timer.h"
#include "runtime.h"
#include "weft/cancel.h"
#include "weft/error.h"
#include "weft/inspect.h"
#include "weft/time.h"

/* The real clock's asleep report waits this long after a quiet check
 * before it confirms (see timer_real_asleep).  A second: a plain thread
 * between two of its actions (a new thread starting, one looping on
 * sched_yield) was seen to take more than 300 ms on a loaded machine,
 * and a hang's hint loses nothing by coming a second late. */
#define TIMER_CONFIRM_NS (1000 * 1000000LL)

/* The confirmation's state (`confirm`): none pending, waiting for
 * confirm_at, due (the fd fired at it: the next quiet check with the
 * same stretch and epoch reports). */
enum { TIMER_CONFIRM_NONE, TIMER_CONFIRM_WAITING, TIMER_CONFIRM_DUE };

/* The virtual clock weft_now() reads on this thread, or NULL for the real
 * clock.  Set once when a worker or offload thread of a virtual runtime
 * starts.  A fiber migrates between workers, but only between the
 * workers of its own runtime, which all hold the same value, so even a
 * TLS address kept across a switch reads the right clock (sched.h). */
static __thread weft__timer_t *timer_tls
	__attribute__((tls_model("initial-exec")));

int64_t weft__timer_real_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft_now(void)
{
	weft__timer_t *t = timer_tls;
	/* One predictable branch on the real clock's path. */
	if (__builtin_expect(t != NULL, 0))
		/* relaxed: see vnow (timer.h). */
		return atomic_load_explicit(&t->vnow, memory_order_relaxed);
	return weft__timer_real_now();
}

void weft__timer_bind_thread(weft__timer_t *t)
{
	timer_tls = t && t->virt ? t : NULL;
}

static void timer_check_fn(struct weft_runtime *rt, struct weft__ioq_node *n);

int weft__timer_init(weft__timer_t *t, bool virt)
{
	memset(t, 0, sizeof *t);
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		return -errno;
	t->virt = virt;
	atomic_init(&t->vnow, WEFT__VCLOCK_START);
	atomic_init(&t->holds, 0);
	atomic_init(&t->hold_epoch, 0);
	atomic_init(&t->nwaiters, 0);
	atomic_init(&t->waiter_seq, 0);
	atomic_init(&t->check_queued, 0);
	atomic_init(&t->outside, 0);
	t->confirm_at = INT64_MAX;
	t->check_node.fn = timer_check_fn;
	weft__wheel_init(&t->wheel, weft__timer_now(t));
	t->armed = INT64_MAX;
	atomic_init(&t->due, INT64_MAX);
	pthread_mutex_init(&t->lock, NULL);
	t->ready = true;
	return 0;
}

/* Arms the fd at the wheel's next work (or disarms it) and publishes the
 * due hint; skips the system call when that time is armed already.  lock
 * held (any thread: timerfd_settime is a plain system call). */
static void timer_rearm_locked(weft__timer_t *t)
{
	int64_t next = weft__wheel_next(&t->wheel);
	/* relaxed: a hint; see `due`. */
	atomic_store_explicit(&t->due, weft__wheel_due_hint(&t->wheel),
		memory_order_relaxed);
	/* The asleep report's confirmation is due then (never under the
	 * virtual clock: asleep_check is off there).  Not in `due`: no
	 * worker has anything to fire for it. */
	if (t->confirm_at < next)
		next = t->confirm_at;
	/* The virtual clock never arms the fd: its deadlines fire at jumps
	 * (weft__timer_quiesce) and at yields, never by real time passing. */
	if (next == t->armed || t->virt)
		return;
	t->armed = next;
	struct itimerspec its = { 0 };
	if (next != INT64_MAX) {
		/* 0 would disarm: a due time in the past fires at once. */
		if (next <= 0)
			next = 1;
		its.it_value.tv_sec = next / 1000000000;
		its.it_value.tv_nsec = next % 1000000000;
	}
	int rc = timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL);
	WEFT_ASSERT(rc == 0, "timerfd_settime failed");
}

void weft__timer_rearm(weft__timer_t *t)
{
	pthread_mutex_lock(&t->lock);
	timer_rearm_locked(t);
	pthread_mutex_unlock(&t->lock);
}

/* The I/O thread publishes the tasks it wakes every TIMER_FLUSH_EVERY
 * firings, not once per expiry: a wheel that fell behind fires tens of
 * thousands of deadlines in one expiry (B7: 10^6 sleepers due within
 * 100 ms), and workers would wait idle for the first of them until the
 * last had fired. */
#define TIMER_FLUSH_EVERY 128

/* timer_fire's argument on the I/O thread (NULL elsewhere). */
struct timer_fire_batch {
	struct weft_runtime *rt;
	unsigned fired;
};

static void timer_flush(struct weft_runtime *rt);

/* A deadline passed (wheel callback, lock held). */
static void timer_fire(struct weft__tnode *n, void *arg)
{
	struct timer_fire_batch *b = arg;
	struct weft__timed_scope *ts = WEFT__CONTAINER_OF(n,
		struct weft__timed_scope, tnode);
	struct weft_scope *s = &ts->s;
	/* Disarmed by firing: if nobody moved the deadline meanwhile, the
	 * scope's exit need not post another request.  seq_cst: pairs with
	 * scope_timer_set's exchange (cancel.c). */
	int64_t when = n->when;
	atomic_compare_exchange_strong_explicit(&ts->timer_deadline, &when,
		WEFT_FOREVER, memory_order_seq_cst, memory_order_relaxed);
	weft__scope_deadline_fired(s);
	weft__scope_unref(s); /* the wheel's reference */
	/* Publishing takes the injection queue's and the idle lock under
	 * the timer's, the order a worker firing at a yield already uses
	 * (its wake-ups notify idle workers). */
	if (b != NULL && ++b->fired % TIMER_FLUSH_EVERY == 0)
		timer_flush(b->rt);
}

void weft__timer_advance(weft__timer_t *t)
{
	struct timer_fire_batch b = {
		WEFT__CONTAINER_OF(t, struct weft_runtime, timer), 0
	};
	pthread_mutex_lock(&t->lock);
	weft__wheel_fire_due(&t->wheel, weft__timer_now(t), timer_fire, &b);
	pthread_mutex_unlock(&t->lock);
}

void weft__timer_fire_due_slow(weft__timer_t *t)
{
	/* relaxed: a hint; see `due`. */
	int64_t due = atomic_load_explicit(&t->due, memory_order_relaxed);
	int64_t now = weft__timer_now(t);
	if (now < due || pthread_mutex_trylock(&t->lock) != 0)
		return;
	weft__wheel_fire_due(&t->wheel, now, timer_fire, NULL);
	timer_rearm_locked(t);
	pthread_mutex_unlock(&t->lock);
}

void weft__timer_expire(weft__timer_t *t)
{
	uint64_t expirations;
	/* Non-blocking; EAGAIN if a rearm already reset it. */
	ssize_t n = read(t->fd, &expirations, sizeof expirations);
	(void)n;
	pthread_mutex_lock(&t->lock);
	t->armed = INT64_MIN; /* fired: nothing armed any more */
	int64_t now = weft__timer_now(t);
	struct timer_fire_batch b = {
		WEFT__CONTAINER_OF(t, struct weft_runtime, timer), 0
	};
	weft__wheel_fire_due(&t->wheel, now, timer_fire, &b);
	/* The asleep report's confirmation is due: disarm it (or the fd
	 * fires again at once) and check (timer_real_asleep). */
	bool confirm = t->confirm_at <= now;
	if (confirm) {
		t->confirm_at = INT64_MAX;
		t->confirm = TIMER_CONFIRM_DUE;
	}
	timer_rearm_locked(t);
	pthread_mutex_unlock(&t->lock);
	if (confirm) {
		/* This is the I/O thread (io.c), which runs the check; one
		 * that finds requests queued waits for the next drain. */
		t->check_wanted = true;
		weft__timer_quiesce(
			WEFT__CONTAINER_OF(t, struct weft_runtime, timer));
	}
}

/* Makes s's wheel node match its timer_deadline (idempotent: it reads
 * the latest deadline).  lock held. */
static void timer_apply_locked(weft__timer_t *t, struct weft__timed_scope *s)
{
	/* seq_cst: see timer_apply_request. */
	int64_t d = atomic_load_explicit(&s->timer_deadline,
		memory_order_seq_cst);
	if (s->tnode.armed) {
		weft__wheel_remove(&t->wheel, &s->tnode);
		if (d == WEFT_FOREVER)
			weft__scope_unref(&s->s); /* the wheel's reference */
		else
			weft__wheel_insert(&t->wheel, &s->tnode, d);
	} else if (d != WEFT_FOREVER) {
		/* Never fails: the node lives in the scope (wheel.c). */
		weft__wheel_insert(&t->wheel, &s->tnode, d);
		/* relaxed: the caller holds a reference, so the count cannot
		 * reach zero meanwhile; the drop that frees is acq_rel. */
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	}
}

/* Applies one queued update (an I/O queue request: the I/O thread).  The
 * I/O thread re-arms the fd once the whole queue is drained. */
static void timer_apply_request(struct weft_runtime *rt,
	struct weft__ioq_node *n)
{
	weft__timer_t *t = &rt->timer;
	struct weft__timed_scope *s = WEFT__CONTAINER_OF(n,
		struct weft__timed_scope, timer_node);
	pthread_mutex_lock(&t->lock);
	/* seq_cst store then seq_cst load (in timer_apply_locked): pairs
	 * with the updater's store of timer_deadline then CAS of
	 * timer_queued, so an update that found the flag still set is read
	 * here. */
	atomic_store_explicit(&s->timer_queued, 0, memory_order_seq_cst);
	timer_apply_locked(t, s);
	pthread_mutex_unlock(&t->lock);
	weft__scope_unref(&s->s); /* the request's reference */
}

void weft__timer_update(struct weft_runtime *rt, struct weft__timed_scope *s)
{
	weft__timer_t *t = &rt->timer;
	/* Directly when the lock is free; the fd is re-armed here too.  A
	 * request still queued applies the same latest deadline again later
	 * (timer_apply_locked is idempotent). */
	if (t->ready && pthread_mutex_trylock(&t->lock) == 0) {
		timer_apply_locked(t, s);
		timer_rearm_locked(t);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	int zero = 0;
	/* seq_cst: see timer_apply_request. */
	if (!atomic_compare_exchange_strong_explicit(&s->timer_queued, &zero, 1,
		    memory_order_seq_cst, memory_order_relaxed))
		return; /* queued already; the I/O thread reads the latest */
	/* relaxed: the caller holds a reference (see timer_apply_locked). */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	s->timer_node.fn = timer_apply_request;
	weft__ioq_post(rt, &s->timer_node);
}

/* {======================================================= virtual clock */

/* A task parked in weft_wait_all_tasks_blocked; lives in its frame. */
struct weft__blocked_waiter {
	struct weft__blocked_waiter *next;
	struct weft_task *task;
	uint64_t gen;	   /* its park's generation, written under the lock */
	unsigned long seq; /* its registration's number (waiter_seq) */
	bool woken;	   /* under the lock: the check took it off the list */
};

/* Posts the quiescence check unless one is queued (see the essay). */
static void timer_post_check(struct weft_runtime *rt)
{
	weft__timer_t *t = &rt->timer;
	int zero = 0;
	/* seq_cst: pairs with timer_check_fn's store of 0 (see the essay:
	 * either this CAS sees 0 and posts, or that check sees us asleep). */
	if (atomic_compare_exchange_strong_explicit(&t->check_queued, &zero, 1,
		    memory_order_seq_cst, memory_order_relaxed))
		weft__ioq_post(rt, &t->check_node);
}

void weft__timer_idle(struct weft_runtime *rt)
{
	weft__timer_t *t = &rt->timer;
	/* relaxed: a registration happened on a worker before that worker
	 * listed itself as sleeping, which the idle lock orders before our
	 * own listing (we are the last). */
	if (!t->virt && !t->asleep_check &&
		atomic_load_explicit(&t->nwaiters, memory_order_relaxed) == 0)
		return;
	timer_post_check(rt);
}

void weft__timer_hold_released(weft__timer_t *t)
{
	timer_post_check(WEFT__CONTAINER_OF(t, struct weft_runtime, timer));
}

/* Publishes the tasks this (the I/O) thread has woken so far. */
static void timer_flush(struct weft_runtime *rt)
{
	weft__sched_batch_end(rt);
	weft__sched_batch_begin();
}

/* Wakes the weft_wait_all_tasks_blocked waiters that registered before
 * the check read `waiter_seq` (seq): those were parked when the quiet
 * decision saw every worker asleep.  A waiter registered since then ran
 * after the decision, which is stale for it: it stays listed, and its
 * worker, going to sleep again, posts the next check.  Returns
 * WAKE_NONE when there was no waiter, WAKE_SOME when it woke one,
 * WAKE_STALE when it found only later ones (then the decision is stale
 * for the clock too: the caller stands down).  Thread: the I/O thread. */
enum { WAKE_NONE, WAKE_SOME, WAKE_STALE };
static int timer_wake_waiters(weft__timer_t *t, unsigned long seq)
{
	struct weft_task *ready = NULL;
	pthread_mutex_lock(&t->lock);
	struct weft__blocked_waiter *n = t->waiters;
	if (n == NULL) {
		pthread_mutex_unlock(&t->lock);
		return WAKE_NONE;
	}
	struct weft__blocked_waiter **keep = &t->waiters;
	int woken = 0;
	while (n) {
		struct weft__blocked_waiter *next = n->next;
		struct weft_task *task = n->task;
		/* Wrapping compare: registrations are numbered mod 2^64. */
		if ((long)(n->seq - seq) >= 0) {
			*keep = n;
			keep = &n->next;
			n = next;
			continue;
		}
		woken++;
		n->woken = true; /* n may go once the lock is released */
		/* A task claimed here cannot run before we ready it, so the
		 * `next` link (free while it is parked) carries the list. */
		if (weft__task_wake_deferred(task, n->gen)) {
			task->next = ready;
			ready = task;
		}
		n = next;
	}
	*keep = NULL;
	/* relaxed: see nwaiters. */
	atomic_fetch_sub_explicit(&t->nwaiters, woken, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
	while (ready) {
		struct weft_task *task = ready;
		ready = task->next;
		weft__sched_ready(task);
	}
	return woken ? WAKE_SOME : WAKE_STALE;
}

/* weft_runtime_dump's writer for timer_asleep_report: stderr. */
static int timer_dump_write(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	fwrite(data, 1, len, stderr);
	return 0;
}

/* Prints the "all tasks are asleep" report (rule 46), why, and the tree.
 * Thread: the I/O thread, holding no lock (the dump takes the scope
 * locks and insp_lock). */
static void timer_asleep_print(struct weft_runtime *rt, const char *why)
{
	weft__diag("all tasks are asleep - deadlock");
	weft__diag("%s", why);
	(void)weft_runtime_dump(rt, WEFT_DUMP_TEXT, timer_dump_write, NULL);
	fflush(stderr);
}

/* Prints the "all tasks are asleep" report (rule 46) and the tree, when
 * a root is still running and not reported as deadlocked yet (none:
 * nothing is asleep, the runtime is merely idle); returns whether it
 * did.  Thread: the I/O thread, holding no lock (the dump takes the
 * scope locks and insp_lock). */
static bool timer_asleep_report(struct weft_runtime *rt, const char *why)
{
	bool live = false;
	pthread_mutex_lock(&rt->insp_lock);
	for (struct weft__root_entry *e = rt->roots; e; e = e->next)
		/* acquire: as in timer_deadlock. */
		if (!e->deadlocked &&
			atomic_load_explicit(e->task->root_done,
				memory_order_acquire) == 0)
			live = true;
	pthread_mutex_unlock(&rt->insp_lock);
	if (!live)
		return false;
	timer_asleep_print(rt, why);
	return true;
}

/* Every task of every root is blocked, nothing holds the clock and no
 * deadline is armed: nothing can ever wake them.  Each root still
 * running is cancelled once (its weft_runtime_run then returns
 * -EDEADLK), unless something began since the check read `epoch` (Q6).
 * Thread: the I/O thread. */
static void timer_deadlock(struct weft_runtime *rt, unsigned long epoch)
{
	weft__timer_t *t = &rt->timer;
	/* seq_cst: Q6, a first look before the report. */
	pthread_mutex_lock(&rt->insp_lock);
	/* seq_cst: Q6; a root listed from now on took its hold (+1, the
	 * epoch) before it took this lock to be listed. */
	if (atomic_load_explicit(&t->hold_epoch, memory_order_seq_cst) !=
		epoch) {
		pthread_mutex_unlock(&rt->insp_lock);
		return;
	}
	/* The decision: the roots live now are deadlocked.  Marked here,
	 * cancelled after the report, so that the report is printed only
	 * for a decision that stands (with the epoch looked at before the
	 * report and again before the cancel, a root queued in between
	 * made the check stand down after it had printed a false report)
	 * and the dump shows the tasks still parked.  A root listed after
	 * this is not marked. */
	bool any = false;
	for (struct weft__root_entry *e = rt->roots; e; e = e->next) {
		/* acquire: pairs with the release store in weft__task_finish;
		 * an ended root stays listed until its weft_runtime_run has
		 * woken, and it is not deadlocked.  It ended before its
		 * worker went to sleep, which the idle lock orders before
		 * this check. */
		if (e->deadlocked ||
			atomic_load_explicit(e->task->root_done,
				memory_order_acquire) != 0)
			continue;
		e->deadlocked = true;
		any = true;
	}
	pthread_mutex_unlock(&rt->insp_lock);
	if (!any)
		return;
	if (rt->cfg.deadlock != WEFT_DEADLOCK_OFF)
		timer_asleep_print(rt,
			"(virtual clock: no deadline is pending, so time can "
			"never move again; the roots are cancelled)");
	pthread_mutex_lock(&rt->insp_lock);
	for (struct weft__root_entry *e = rt->roots; e; e = e->next) {
		/* acquire: as above.  A root marked in an earlier check whose
		 * cleanup blocked again is cancelled already: this does
		 * nothing to it (the first cancellation stays). */
		if (!e->deadlocked ||
			atomic_load_explicit(e->task->root_done,
				memory_order_acquire) != 0)
			continue;
		/* The record outlives its entry (weft_runtime_run unlists it
		 * under insp_lock before dropping its reference). */
		weft__scope_cancel(&e->task->root_scope, WEFT_CANCEL_DEADLOCK,
			"deadlock: every task is blocked and no deadline is "
			"pending (virtual clock)",
			true, 0);
	}
	pthread_mutex_unlock(&rt->insp_lock);
}

/* Drops a pending confirmation (the fd may still fire at its time: the
 * check it makes then finds none due).  Thread: the I/O thread. */
static void timer_confirm_cancel(weft__timer_t *t)
{
	if (t->confirm == TIMER_CONFIRM_NONE)
		return;
	pthread_mutex_lock(&t->lock);
	t->confirm = TIMER_CONFIRM_NONE;
	t->confirm_at = INT64_MAX;
	pthread_mutex_unlock(&t->lock);
}

/* The real clock's "all tasks are asleep" check, after a quiet answer
 * (every worker asleep, nothing queued) of the stretch `gen` with `epoch`
 * read before it: nothing holding (no I/O operation, signal wait,
 * offload or portal call in flight), no outside waker (an open retained
 * group, a shutdown's signal watcher), no deadline armed, and all of it
 * still so at a second check TIMER_CONFIRM_NS later with no task run and
 * no hold taken in between (the same quiet_gen and hold_epoch).  The
 * delay is for what weft cannot count: a plain thread holding a raw
 * pointer to an event, a semaphore, a channel end or a task handle, that
 * acts within it (docs/semantics.md rule 46).  Only reported, never
 * acted on: such a thread may act later still.  Thread: the I/O
 * thread. */
static void timer_real_asleep(struct weft_runtime *rt, long holds,
	unsigned long gen, unsigned long epoch)
{
	weft__timer_t *t = &rt->timer;
	if (!t->asleep_check)
		return;
	/* seq_cst: after the quiet decision, whose idle lock orders a +1 a
	 * task made before its worker listed itself (weft__timer_outside). */
	long outside = atomic_load_explicit(&t->outside, memory_order_seq_cst);
	pthread_mutex_lock(&t->lock);
	int64_t next = weft__wheel_earliest(&t->wheel);
	pthread_mutex_unlock(&t->lock);
	if (holds != 0 || outside != 0 || next != INT64_MAX) {
		t->asleep_reported = false;
		timer_confirm_cancel(t);
		return;
	}
	if (t->asleep_reported && t->reported_gen == gen)
		return; /* once per quiet stretch */
	if (t->confirm != TIMER_CONFIRM_NONE && t->confirm_gen == gen &&
		t->confirm_epoch == epoch) {
		if (t->confirm == TIMER_CONFIRM_WAITING)
			return; /* a check of the same stretch: the fd comes */
		t->confirm = TIMER_CONFIRM_NONE;
		/* Only once printed: a check before any root ran prints
		 * nothing. */
		t->asleep_reported = timer_asleep_report(rt,
			"(real clock: reported only; a plain thread that sets "
			"an event or cancels a scope may still wake them)");
		t->reported_gen = gen;
		return;
	}
	/* A new quiet stretch, or progress since the last one: confirm
	 * later. */
	pthread_mutex_lock(&t->lock);
	t->confirm = TIMER_CONFIRM_WAITING;
	t->confirm_gen = gen;
	t->confirm_epoch = epoch;
	t->confirm_at = weft__timer_real_now() + TIMER_CONFIRM_NS;
	timer_rearm_locked(t);
	pthread_mutex_unlock(&t->lock);
}

/* The quiescence check (see the essay).  Thread: the I/O thread. */
void weft__timer_quiesce(struct weft_runtime *rt)
{
	weft__timer_t *t = &rt->timer;
again:
	if (!t->check_wanted)
		return;
	/* acquire: pairs with the seq_cst store in runtime_stop_workers;
	 * workers leave, so nothing is quiet any more. */
	if (atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
		t->check_wanted = false;
		return;
	}
	timer_flush(rt); /* Q2: our own wake-ups first */
	/* seq_cst: Q6; read before the quiet decision's look at holds. */
	unsigned long epoch = atomic_load_explicit(&t->hold_epoch,
		memory_order_seq_cst);
	/* acquire: pairs with a registration's seq_cst bump (under the
	 * timer lock); read before the quiet decision, see
	 * timer_wake_waiters. */
	unsigned long seq = atomic_load_explicit(&t->waiter_seq,
		memory_order_acquire);
	long holds;
	bool posted;
	unsigned long gen;
	bool quiet = weft__idle_quiet(rt, &holds, &posted, &gen);
	if (posted)
		return; /* Q4: after the next drain */
	t->check_wanted = false;
	if (!quiet) {
		t->asleep_reported = false;
		/* A task runs: the report waits for the next quiet check. */
		if (t->asleep_check)
			timer_confirm_cancel(t);
		return;
	}
	switch (timer_wake_waiters(t, seq)) {
	case WAKE_SOME: timer_flush(rt); return;
	case WAKE_STALE: return;
	default: break;
	}
	if (!t->virt) {
		timer_real_asleep(rt, holds, gen, epoch);
		return;
	}
	if (holds != 0)
		return;
	pthread_mutex_lock(&t->lock);
	int64_t next = weft__wheel_earliest(&t->wheel);
	if (next == INT64_MAX) {
		pthread_mutex_unlock(&t->lock);
		timer_deadlock(rt, epoch);
		timer_flush(rt);
		return;
	}
	/* seq_cst: Q6, something began since the decision: no jump. */
	if (atomic_load_explicit(&t->hold_epoch, memory_order_seq_cst) !=
		epoch) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	/* relaxed: see vnow; only this thread writes it, under the lock. */
	int64_t now = atomic_load_explicit(&t->vnow, memory_order_relaxed);
	if (next > now) {
		now = next;
		atomic_store_explicit(&t->vnow, now, memory_order_relaxed);
	}
	weft__wheel_fire_exact(&t->wheel, now, timer_fire, NULL);
	bool moved = weft__wheel_earliest(&t->wheel) != next;
	timer_rearm_locked(t);
	pthread_mutex_unlock(&t->lock);
	timer_flush(rt);
	/* Deadlines that woke nobody (a scope already cancelled from
	 * further out, a shield between the scope and every task below it)
	 * leave every worker asleep, and no worker becomes the last sleeper
	 * again to ask for the next check: check again now, or time stops
	 * for good.  If the jump woke a task, that check finds the runtime
	 * busy (Q2: the wake-ups were just published) and the last sleeper
	 * asks later.  Only after progress (the earliest deadline changed),
	 * so a deadline the jump could not fire cannot make this spin. */
	if (moved) {
		t->check_wanted = true;
		goto again;
	}
}

static void timer_check_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	(void)n;
	/* seq_cst: see weft__timer_idle.  Cleared before the check, so a
	 * worker that becomes the last sleeper after this point posts a new
	 * one. */
	atomic_store_explicit(&rt->timer.check_queued, 0, memory_order_seq_cst);
	/* Made after the whole drain (weft__timer_quiesce): requests queued
	 * behind this one may carry deadlines. */
	rt->timer.check_wanted = true;
}

int weft_wait_all_tasks_blocked(void)
{
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	int rc = weft_checkpoint_if_cancelled();
	if (rc < 0)
		return rc;
	/* Reachable by cancellations from now on. */
	weft__task_link_root(self);
	/* relaxed: our own cur_scope, written only by this task. */
	struct weft_scope *s = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	weft__timer_t *t = &self->rt->timer;
	struct weft__blocked_waiter n = { .task = self };
	pthread_mutex_lock(&t->lock);
	/* seq_cst: see waiter_seq (the check's acquire load). */
	n.seq = atomic_fetch_add_explicit(&t->waiter_seq, 1,
		memory_order_seq_cst);
	n.next = t->waiters;
	t->waiters = &n;
	/* relaxed: see nwaiters. */
	atomic_fetch_add_explicit(&t->nwaiters, 1, memory_order_relaxed);
	for (;;) {
		n.gen = weft__task_park_prepare(self, true);
		/* seq_cst load after prepare's seq_cst store: a canceller
		 * either is seen here or sees the cancellable park. */
		if (weft__scope_is_cancelled(s))
			break;
		pthread_mutex_unlock(&t->lock);
		weft__task_park_commit_on(self, "wait_all_tasks_blocked");
		pthread_mutex_lock(&t->lock);
		if (n.woken) {
			pthread_mutex_unlock(&t->lock);
			return 0;
		}
	}
	/* Cancelled while still listed (a waiter the check took off the
	 * list returned above). */
	struct weft__blocked_waiter **pp = &t->waiters;
	while (*pp != &n)
		pp = &(*pp)->next;
	*pp = n.next;
	/* relaxed: see nwaiters. */
	atomic_fetch_sub_explicit(&t->nwaiters, 1, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
	weft__scope_note_observed(weft__scope_origin(s));
	return -ECANCELED;
}

/* }======================================================= */

void weft__timer_fini(weft__timer_t *t)
{
	if (!t->ready)
		return;
	for (int l = 0; l < WEFT__WHEEL_LEVELS; l++)
		for (int k = 0; k < WEFT__WHEEL_SLOTS; k++)
			while (t->wheel.slots[l][k]) {
				struct weft__timed_scope
					*s = WEFT__CONTAINER_OF(t->wheel.slots
									[l][k],
						struct weft__timed_scope,
						tnode);
				weft__wheel_remove(&t->wheel, &s->tnode);
				weft__scope_unref(&s->s);
			}
	close(t->fd);
	pthread_mutex_destroy(&t->lock);
	t->ready = false;
}
