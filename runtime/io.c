/* The I/O thread: a libuv loop on a dedicated thread.
 *
 * Design
 * ------
 * libuv is not thread-safe except uv_async_send, so every libuv call runs
 * on this thread.  Other threads publish a request in a lock-free queue
 * (a Treiber stack taken whole by the I/O thread: single consumer, so no
 * ABA) and call uv_async_send, which coalesces; the async callback drains
 * the whole queue, so no request is left behind (research/platform.md
 * 2.3).  Requests are "make this scope's timer match its timer_deadline"
 * and I/O operations (ioop.c); completions go back to workers through the
 * scheduler's injection queue, in batches flushed around each poll.
 *
 * Timers: one timerfd (watched with a uv_poll_t) armed at the next work
 * of a timing wheel of scope deadlines (timer.c; intrusive, so arming a
 * deadline never allocates and never fails, and O(1)), rather than one
 * uv_timer_t per deadline: a uv handle must be closed on this thread with
 * a callback before its memory can go, which would tie every scope's
 * lifetime to a round trip here.  Not a uv_timer_t either: libuv timers
 * count whole milliseconds from a loop time truncated to the millisecond,
 * so a 1 ms sleep lasted about 2 ms; the timerfd takes an absolute
 * CLOCK_MONOTONIC time in nanoseconds (weft_now's clock).  The wheel rounds
 * deadlines up to its 65.536 us tick, so none fires early.
 *
 * Invariants
 *   1. Only this thread touches the loop and the handles.  The wheel and
 *      timer_armed are touched under wheel_lock only: by this thread, by
 *      a thread setting a deadline (weft__io_timer_update's direct path)
 *      and by a worker firing due deadlines at a yield.
 *   2. A scope in the wheel holds a reference; a queued request holds one.
 *   3. After `stop` is seen, the loop ends; weft__io_stop (after every
 *      worker is joined, so nobody can post) drains what is left.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "alloc.h"
#include "cancel.h"
#include "common.h"
#include "io.h"
#include "ioop.h"
#include "rt.h"
#include "timer.h"
#include "weft/time.h"
#include "worker.h"

static weft__io_t *io_of(uv_handle_t *h)
{
	return h->data;
}

/* Arms the timerfd at the wheel's next work (or disarms it) and
 * publishes the due hint; skips the system call when that time is armed
 * already.  wheel_lock held (any thread: timerfd_settime is a plain
 * system call). */
static void io_rearm_locked(weft__io_t *io)
{
	int64_t next = weft__wheel_next(&io->wheel);
	atomic_store_explicit(&io->wheel_due,
		weft__wheel_due_hint(&io->wheel), memory_order_relaxed);
	if (next == io->timer_armed)
		return;
	io->timer_armed = next;
	struct itimerspec its = { 0 };
	if (next != INT64_MAX) {
		/* 0 would disarm: a due time in the past fires at once. */
		if (next <= 0)
			next = 1;
		its.it_value.tv_sec = next / 1000000000;
		its.it_value.tv_nsec = next % 1000000000;
	}
	int rc = timerfd_settime(io->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
	WEFT_ASSERT(rc == 0, "timerfd_settime failed");
}

static void io_rearm(weft__io_t *io)
{
	pthread_mutex_lock(&io->wheel_lock);
	io_rearm_locked(io);
	pthread_mutex_unlock(&io->wheel_lock);
}

/* A deadline passed (wheel callback, this thread). */
static void io_fire(struct weft__tnode *n, void *arg)
{
	(void)arg;
	struct weft__timed_scope *ts = WEFT__CONTAINER_OF(n,
		struct weft__timed_scope, tnode);
	struct weft_scope *s = &ts->s;
	/* Disarmed by firing: if nobody moved the deadline meanwhile, the
	 * scope's exit need not post another request.  seq_cst: pairs with
	 * scope_timer_set's exchange. */
	int64_t when = n->when;
	atomic_compare_exchange_strong_explicit(&ts->timer_deadline, &when,
		WEFT_FOREVER, memory_order_seq_cst, memory_order_relaxed);
	weft__scope_deadline_fired(s);
	weft__scope_unref(s);  /* the wheel's reference */
}

/* Fires everything due (the woken tasks join the I/O thread's batch). */
static void io_expire(weft__io_t *io)
{
	pthread_mutex_lock(&io->wheel_lock);
	weft__wheel_fire_due(&io->wheel, weft_now(), io_fire, NULL);
	pthread_mutex_unlock(&io->wheel_lock);
}

void weft__io_fire_due_slow(weft__io_t *io)
{
	int64_t due = atomic_load_explicit(&io->wheel_due,
		memory_order_relaxed);
	int64_t now = weft_now();
	if (now < due || pthread_mutex_trylock(&io->wheel_lock) != 0)
		return;
	weft__wheel_fire_due(&io->wheel, now, io_fire, NULL);
	io_rearm_locked(io);
	pthread_mutex_unlock(&io->wheel_lock);
}

/* Makes s's wheel node match its timer_deadline (idempotent: it reads
 * the latest deadline).  wheel_lock held. */
static void io_apply_locked(weft__io_t *io, struct weft__timed_scope *s)
{
	int64_t d = atomic_load_explicit(&s->timer_deadline,
		memory_order_seq_cst);
	if (s->tnode.armed) {
		weft__wheel_remove(&io->wheel, &s->tnode);
		if (d == WEFT_FOREVER)
			weft__scope_unref(&s->s);  /* the wheel's reference */
		else
			weft__wheel_insert(&io->wheel, &s->tnode, d);
	} else if (d != WEFT_FOREVER) {
		/* Never fails: the node lives in the scope (timer.c). */
		weft__wheel_insert(&io->wheel, &s->tnode, d);
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	}
}

/* Applies one timer update request (this thread). */
static void io_apply_timer(weft__io_t *io, struct weft__ionode *n)
{
	struct weft__timed_scope *s = WEFT__CONTAINER_OF(n,
		struct weft__timed_scope, timer_node);
	pthread_mutex_lock(&io->wheel_lock);
	/* seq_cst store then seq_cst load (in io_apply_locked): pairs with
	 * the updater's store of timer_deadline then CAS of timer_queued, so
	 * an update that found the flag still set is read here. */
	atomic_store_explicit(&s->timer_queued, 0, memory_order_seq_cst);
	io_apply_locked(io, s);
	pthread_mutex_unlock(&io->wheel_lock);
	weft__scope_unref(&s->s);  /* the request's reference */
}

static void io_drain_requests(weft__io_t *io)
{
	/* acquire: pairs with the release CAS of the posters; we see each
	 * request's fields. */
	struct weft__ionode *list = atomic_exchange_explicit(&io->requests,
		NULL, memory_order_acquire);
	/* The stack is LIFO; reverse it so requests apply in order (an
	 * operation's abort after its submission). */
	struct weft__ionode *fifo = NULL;
	while (list) {
		struct weft__ionode *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		/* Read before fn: fn may hand the node back to its owner. */
		struct weft__ionode *next = fifo->next;
		fifo->fn(io, fifo);
		fifo = next;
	}
}

/* Publishes the tasks woken since the last flush (one injection-queue
 * lock, one idle notification) and opens a new batch. */
static void io_flush(weft__io_t *io)
{
	struct weft_runtime *rt = WEFT__CONTAINER_OF(io, struct weft_runtime,
		io);
	weft__sched_batch_end(rt);
	weft__sched_batch_begin();
}

static void io_prepare_cb(uv_prepare_t *h)
{
	io_flush(io_of((uv_handle_t *)h));
}

static void io_check_cb(uv_check_t *h)
{
	io_flush(io_of((uv_handle_t *)h));
}

static void io_timer_cb(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	weft__io_t *io = io_of((uv_handle_t *)h);
	uint64_t expirations;
	/* Non-blocking; EAGAIN if a rearm already reset it. */
	ssize_t n = read(io->timer_fd, &expirations, sizeof expirations);
	(void)n;
	pthread_mutex_lock(&io->wheel_lock);
	io->timer_armed = INT64_MIN;  /* fired: nothing armed any more */
	weft__wheel_fire_due(&io->wheel, weft_now(), io_fire, NULL);
	io_rearm_locked(io);
	pthread_mutex_unlock(&io->wheel_lock);
}

static void io_async_cb(uv_async_t *async)
{
	weft__io_t *io = io_of((uv_handle_t *)async);
	/* Bring the wheel's clock up to date before filing new deadlines (it
	 * only moves when timers are processed). */
	io_expire(io);
	io_drain_requests(io);
	if (atomic_load_explicit(&io->stop, memory_order_acquire)) {
		uv_stop(&io->loop);
		return;
	}
	io_rearm(io);
}

/* {======================================================= reclaim */

static void reclaim_timer_cb(uv_timer_t *t);

/* Whether every worker has left, or is not running, the fiber it ran when
 * rc_snap was taken.  acquire: pairs with worker_qs_step's release, so
 * what that fiber did to the objects comes before their free. */
static bool reclaim_grace_over(weft__io_t *io)
{
	struct weft_runtime *rt = WEFT__CONTAINER_OF(io, struct weft_runtime,
		io);
	for (unsigned i = 0; i < rt->nworkers; i++) {
		uint64_t s = io->rc_snap[i];
		if ((s & 1) && atomic_load_explicit(&rt->workers[i].qs,
			memory_order_acquire) == s)
			return false;
	}
	return true;
}

static void reclaim_free_list(struct weft__reclaim *r)
{
	while (r) {
		struct weft__reclaim *next = r->next;
		r->free_fn(r);
		r = next;
	}
}

/* Starts a grace period for the waiting batch, if none runs. */
static void reclaim_start(weft__io_t *io)
{
	if (io->rc_wait != NULL || io->rc_next == NULL)
		return;
	struct weft_runtime *rt = WEFT__CONTAINER_OF(io, struct weft_runtime,
		io);
	io->rc_wait = io->rc_next;
	io->rc_next = NULL;
	for (unsigned i = 0; i < rt->nworkers; i++)
		io->rc_snap[i] = atomic_load_explicit(&rt->workers[i].qs,
			memory_order_acquire);
	if (!uv_is_active((uv_handle_t *)&io->rc_timer))
		uv_timer_start(&io->rc_timer, reclaim_timer_cb, 1, 1);
}

static void reclaim_timer_cb(uv_timer_t *t)
{
	weft__io_t *io = io_of((uv_handle_t *)t);
	if (io->rc_wait != NULL && reclaim_grace_over(io)) {
		struct weft__reclaim *done = io->rc_wait;
		io->rc_wait = NULL;
		reclaim_free_list(done);
		reclaim_start(io);
	}
	if (io->rc_wait == NULL)
		uv_timer_stop(&io->rc_timer);
}

static void reclaim_post_fn(weft__io_t *io, struct weft__ionode *n)
{
	struct weft__reclaim *r = WEFT__CONTAINER_OF(n, struct weft__reclaim,
		node);
	r->next = io->rc_next;
	io->rc_next = r;
	reclaim_start(io);
}

void weft__io_reclaim(struct weft_runtime *rt, struct weft__reclaim *r,
	void (*free_fn)(struct weft__reclaim *r))
{
	r->free_fn = free_fn;
	r->node.fn = reclaim_post_fn;
	weft__io_post(rt, &r->node);
}

/* }======================================================= */

static void *io_main(void *arg)
{
	weft__io_t *io = arg;
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* Every task this thread wakes joins a batch, published at the
	 * flush points (io_flush) and when the loop ends. */
	weft__sched_batch_begin();
	uv_run(&io->loop, UV_RUN_DEFAULT);
	weft__sched_batch_end(WEFT__CONTAINER_OF(io, struct weft_runtime, io));
	return NULL;
}

/* Closes every handle still open (weft's own, and any a module left
 * open: those are closed without a callback, as their memory belongs to
 * objects already gone or freed at destroy) and runs the loop until the
 * closes are done. */
static void io_close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void io_close_handles(weft__io_t *io)
{
	uv_walk(&io->loop, io_close_walk, NULL);
	uv_run(&io->loop, UV_RUN_DEFAULT);
}

int weft__io_start(struct weft_runtime *rt)
{
	weft__io_t *io = &rt->io;
	memset(io, 0, sizeof *io);
	io->sock_epfd = -1;
	atomic_init(&io->wheel_due, INT64_MAX);
	atomic_init(&io->requests, NULL);
	atomic_init(&io->stop, false);
	weft__wheel_init(&io->wheel, weft_now());
	int rc = uv_loop_init(&io->loop);
	if (rc < 0)
		return rc;
	/* Both handles are initialised here, before the thread starts, as
	 * libuv requires for uv_async_init (research/platform.md 2.2). */
	uv_async_init(&io->loop, &io->wake, io_async_cb);
	io->wake.data = io;
	io->timer_fd = timerfd_create(CLOCK_MONOTONIC,
		TFD_NONBLOCK | TFD_CLOEXEC);
	if (io->timer_fd < 0) {
		rc = -errno;
		uv_close((uv_handle_t *)&io->wake, NULL);
		uv_run(&io->loop, UV_RUN_DEFAULT);
		uv_loop_close(&io->loop);
		return rc;
	}
	io->timer_armed = INT64_MAX;
	uv_poll_init(&io->loop, &io->timer, io->timer_fd);
	io->timer.data = io;
	uv_poll_start(&io->timer, UV_READABLE, io_timer_cb);
	uv_prepare_init(&io->loop, &io->flush_before_poll);
	io->flush_before_poll.data = io;
	uv_prepare_start(&io->flush_before_poll, io_prepare_cb);
	uv_unref((uv_handle_t *)&io->flush_before_poll);
	uv_check_init(&io->loop, &io->flush_after_poll);
	io->flush_after_poll.data = io;
	uv_check_start(&io->flush_after_poll, io_check_cb);
	uv_unref((uv_handle_t *)&io->flush_after_poll);
	uv_timer_init(&io->loop, &io->rc_timer);
	io->rc_timer.data = io;
	io->rc_snap = weft__calloc(rt->nworkers ? rt->nworkers : 1,
		sizeof *io->rc_snap);
	if (io->rc_snap == NULL) {
		io_close_handles(io);
		uv_loop_close(&io->loop);
		close(io->timer_fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&io->wheel_lock, NULL);
	rc = pthread_create(&io->thread, NULL, io_main, io);
	if (rc != 0) {
		pthread_mutex_destroy(&io->wheel_lock);
		weft__free(io->rc_snap);
		io_close_handles(io);
		uv_loop_close(&io->loop);
		close(io->timer_fd);
		return rc == EAGAIN ? -EAGAIN : -rc;
	}
	io->started = true;
	return 0;
}

/* Drops the wheel's reference of every armed scope, firing nothing. */
static void io_disarm_all(weft__io_t *io)
{
	for (int l = 0; l < WEFT__WHEEL_LEVELS; l++)
		for (int k = 0; k < WEFT__WHEEL_SLOTS; k++)
			while (io->wheel.slots[l][k]) {
				struct weft__timed_scope *s =
					WEFT__CONTAINER_OF(
					io->wheel.slots[l][k],
					struct weft__timed_scope, tnode);
				weft__wheel_remove(&io->wheel, &s->tnode);
				weft__scope_unref(&s->s);
			}
}

void weft__io_stop(struct weft_runtime *rt)
{
	weft__io_t *io = &rt->io;
	if (!io->started)
		return;
	/* release: the I/O thread's acquire load sees stop. */
	atomic_store_explicit(&io->stop, true, memory_order_release);
	uv_async_send(&io->wake);
	pthread_join(io->thread, NULL);
	/* The loop thread is gone and no worker is left to post: finish the
	 * queue and empty the wheel here, dropping their references. */
	io_drain_requests(io);
	/* No fiber runs any more: every grace period is over. */
	reclaim_free_list(io->rc_wait);
	reclaim_free_list(io->rc_next);
	io->rc_wait = io->rc_next = NULL;
	weft__free(io->rc_snap);
	io->rc_snap = NULL;
	io_disarm_all(io);
	io_close_handles(io);
	int rc = uv_loop_close(&io->loop);
	close(io->timer_fd);
	if (io->sock_epfd >= 0)
		close(io->sock_epfd);  /* its uv_poll_t was closed above */
	WEFT_ASSERT(rc == 0, "libuv loop still busy at shutdown");
	pthread_mutex_destroy(&io->wheel_lock);
	io->started = false;
}

void weft__io_post(struct weft_runtime *rt, struct weft__ionode *n)
{
	weft__io_t *io = &rt->io;
	struct weft__ionode *head = atomic_load_explicit(&io->requests,
		memory_order_relaxed);
	do {
		n->next = head;
		/* release: publishes the node and everything its poster
		 * wrote before to the I/O thread's acquire exchange. */
	} while (!atomic_compare_exchange_weak_explicit(&io->requests, &head, n,
		memory_order_release, memory_order_relaxed));
	/* Coalesces; the callback drains the whole stack (platform.md 2.3). */
	uv_async_send(&io->wake);
}

void weft__io_timer_update(struct weft_runtime *rt,
	struct weft__timed_scope *s)
{
	weft__io_t *io = &rt->io;
	/* Directly when the wheel is free: the deadline is in the wheel
	 * before this returns, so a worker can fire it at a yield even while
	 * the I/O thread waits for a CPU (B11); the timerfd is re-armed here
	 * too.  A request still queued applies the same latest deadline
	 * again later (io_apply_locked is idempotent).  The caller holds s
	 * alive for the call. */
	if (io->started && pthread_mutex_trylock(&io->wheel_lock) == 0) {
		io_apply_locked(io, s);
		io_rearm_locked(io);
		pthread_mutex_unlock(&io->wheel_lock);
		return;
	}
	int zero = 0;
	/* seq_cst: see io_apply_timer. */
	if (!atomic_compare_exchange_strong_explicit(&s->timer_queued, &zero,
		1, memory_order_seq_cst, memory_order_relaxed))
		return;  /* queued already; the I/O thread reads the latest */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	s->timer_node.fn = io_apply_timer;
	weft__io_post(rt, &s->timer_node);
}
