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
 * Invariants
 *   1. The wheel, `armed` and the fd's setting change only under `lock`.
 *   2. A scope in the wheel holds a reference; a queued request holds one.
 *   3. `due` is a lower bound of every armed deadline (republished under
 *      the lock after every change), so a worker that reads INT64_MAX
 *      can skip the lock: nothing is armed, or a change is in flight and
 *      its thread re-arms the fd. */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "core/cancel.h"
#include "core/ioq.h"
#include "core/timer.h"
#include "runtime.h"
#include "weft/time.h"

int64_t weft_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int weft__timer_init(weft__timer_t *t)
{
	memset(t, 0, sizeof *t);
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		return -errno;
	weft__wheel_init(&t->wheel, weft_now());
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
	if (next == t->armed)
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

/* A deadline passed (wheel callback, lock held). */
static void timer_fire(struct weft__tnode *n, void *arg)
{
	(void)arg;
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
}

void weft__timer_advance(weft__timer_t *t)
{
	pthread_mutex_lock(&t->lock);
	weft__wheel_fire_due(&t->wheel, weft_now(), timer_fire, NULL);
	pthread_mutex_unlock(&t->lock);
}

void weft__timer_fire_due_slow(weft__timer_t *t)
{
	/* relaxed: a hint; see `due`. */
	int64_t due = atomic_load_explicit(&t->due, memory_order_relaxed);
	int64_t now = weft_now();
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
	weft__wheel_fire_due(&t->wheel, weft_now(), timer_fire, NULL);
	timer_rearm_locked(t);
	pthread_mutex_unlock(&t->lock);
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
