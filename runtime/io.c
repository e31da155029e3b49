/* The I/O thread: a libuv loop on a dedicated thread.
 *
 * Design
 * ------
 * libuv is not thread-safe except uv_async_send, so every libuv call runs
 * on this thread.  Other threads publish a request in a lock-free queue
 * (a Treiber stack taken whole by the I/O thread: single consumer, so no
 * ABA) and call uv_async_send, which coalesces; the async callback drains
 * the whole queue, so no request is left behind (research/platform.md
 * 2.3).  Today the requests are "make this scope's timer match its
 * timer_deadline"; completions go back to workers through the scheduler's
 * injection queue (weft__sched_ready) and a futex wake.
 *
 * Timers: one uv_timer_t armed at the earliest deadline of a heap of scopes
 * (timer.c; intrusive, so arming a deadline never allocates and never
 * fails), rather than one uv_timer_t per deadline: a uv handle must be
 * closed on this thread with a callback before its memory can go, which
 * would tie every scope's lifetime to a round trip here.
 * uv timers have millisecond resolution; we round up, so a deadline never
 * fires early, and the callback re-checks against weft_now().
 *
 * Invariants
 *   1. Only this thread touches the loop, the handles and the heap.
 *   2. A scope in the heap holds a reference; a queued request holds one.
 *   3. After `stop` is seen, the loop ends; weft__io_stop (after every
 *      worker is joined, so nobody can post) drains what is left.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "cancel.h"
#include "common.h"
#include "io.h"
#include "rt.h"
#include "timer.h"
#include "weft/time.h"

static struct weft_scope *io_min(weft__io_t *io)
{
	struct weft__hnode *n = weft__heap_min(&io->heap);
	return n ? WEFT__CONTAINER_OF(n, struct weft_scope, hnode) : NULL;
}

static void io_heap_remove(weft__io_t *io, struct weft_scope *s)
{
	weft__heap_remove(&io->heap, &s->hnode);
	s->in_heap = false;
}

static weft__io_t *io_of(uv_handle_t *h)
{
	return h->data;
}

static void io_timer_cb(uv_timer_t *timer);

/* Arms the uv timer at the heap's minimum (or stops it). */
static void io_rearm(weft__io_t *io)
{
	struct weft_scope *s = io_min(io);
	if (s == NULL) {
		uv_timer_stop(&io->timer);
		return;
	}
	int64_t delta = s->hnode.key - weft_now();
	uint64_t ms = delta <= 0 ? 0 : (uint64_t)((delta + 999999) / 1000000);
	uv_update_time(&io->loop);
	uv_timer_start(&io->timer, io_timer_cb, ms, 0);
}

/* Applies one update request for s (this thread). */
static void io_apply(weft__io_t *io, struct weft_scope *s)
{
	/* seq_cst store then seq_cst load: pairs with the updater's store of
	 * timer_deadline then CAS of timer_queued, so an update that found
	 * the flag still set is read here. */
	atomic_store_explicit(&s->timer_queued, 0, memory_order_seq_cst);
	int64_t d = atomic_load_explicit(&s->timer_deadline,
		memory_order_seq_cst);
	if (s->in_heap) {
		io_heap_remove(io, s);
		if (d == WEFT_FOREVER)
			weft__scope_unref(s);
		else
			weft__heap_insert(&io->heap, &s->hnode, d);
		if (d != WEFT_FOREVER)
			s->in_heap = true;
	} else if (d != WEFT_FOREVER) {
		/* Never fails: the node lives in the scope (timer.c). */
		weft__heap_insert(&io->heap, &s->hnode, d);
		s->in_heap = true;
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	}
	weft__scope_unref(s);  /* the request's reference */
}

static void io_drain_requests(weft__io_t *io)
{
	/* acquire: pairs with the release CAS of the posters; we see each
	 * request's fields. */
	struct weft_scope *list = atomic_exchange_explicit(&io->requests, NULL,
		memory_order_acquire);
	/* The stack is LIFO; reverse it so requests apply in order. */
	struct weft_scope *fifo = NULL;
	while (list) {
		struct weft_scope *next = list->timer_next;
		list->timer_next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		struct weft_scope *next = fifo->timer_next;
		io_apply(io, fifo);
		fifo = next;
	}
}

static void io_timer_cb(uv_timer_t *timer)
{
	weft__io_t *io = io_of((uv_handle_t *)timer);
	int64_t now = weft_now();
	struct weft_scope *s;
	while ((s = io_min(io)) != NULL && s->hnode.key <= now) {
		io_heap_remove(io, s);
		weft__scope_deadline_fired(s);
		weft__scope_unref(s);
	}
	io_rearm(io);
}

static void io_async_cb(uv_async_t *async)
{
	weft__io_t *io = io_of((uv_handle_t *)async);
	io_drain_requests(io);
	if (atomic_load_explicit(&io->stop, memory_order_acquire)) {
		uv_stop(&io->loop);
		return;
	}
	io_rearm(io);
}

static void *io_main(void *arg)
{
	weft__io_t *io = arg;
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	uv_run(&io->loop, UV_RUN_DEFAULT);
	return NULL;
}

int weft__io_start(struct weft_runtime *rt)
{
	weft__io_t *io = &rt->io;
	memset(io, 0, sizeof *io);
	atomic_init(&io->requests, NULL);
	atomic_init(&io->stop, false);
	int rc = uv_loop_init(&io->loop);
	if (rc < 0)
		return rc;
	/* Both handles are initialised here, before the thread starts, as
	 * libuv requires for uv_async_init (research/platform.md 2.2). */
	uv_async_init(&io->loop, &io->wake, io_async_cb);
	io->wake.data = io;
	uv_timer_init(&io->loop, &io->timer);
	io->timer.data = io;
	rc = pthread_create(&io->thread, NULL, io_main, io);
	if (rc != 0) {
		uv_close((uv_handle_t *)&io->wake, NULL);
		uv_close((uv_handle_t *)&io->timer, NULL);
		uv_run(&io->loop, UV_RUN_DEFAULT);
		uv_loop_close(&io->loop);
		return rc == EAGAIN ? -EAGAIN : -rc;
	}
	io->started = true;
	return 0;
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
	 * queue and empty the heap here, dropping their references. */
	io_drain_requests(io);
	struct weft_scope *s;
	while ((s = io_min(io)) != NULL) {
		io_heap_remove(io, s);
		weft__scope_unref(s);
	}
	uv_close((uv_handle_t *)&io->wake, NULL);
	uv_close((uv_handle_t *)&io->timer, NULL);
	uv_run(&io->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&io->loop);
	WEFT_ASSERT(rc == 0, "libuv loop still busy at shutdown");
	io->started = false;
}

void weft__io_timer_update(struct weft_runtime *rt, struct weft_scope *s)
{
	weft__io_t *io = &rt->io;
	int zero = 0;
	/* seq_cst: see io_apply. */
	if (!atomic_compare_exchange_strong_explicit(&s->timer_queued, &zero,
		1, memory_order_seq_cst, memory_order_relaxed))
		return;  /* queued already; the I/O thread reads the latest */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	struct weft_scope *head = atomic_load_explicit(&io->requests,
		memory_order_relaxed);
	do {
		s->timer_next = head;
		/* release: publishes timer_next and the scope to the I/O
		 * thread's acquire exchange. */
	} while (!atomic_compare_exchange_weak_explicit(&io->requests, &head, s,
		memory_order_release, memory_order_relaxed));
	uv_async_send(&io->wake);
}
