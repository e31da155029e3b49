#define _GNU_SOURCE /* pthread_setname_np */
/* The I/O thread: a libuv loop on a dedicated thread.
 *
 * Design
 * ------
 * libuv is not thread-safe except uv_async_send, so every libuv call runs
 * on this thread.  Other threads post requests in the runtime's request
 * queue (ioq.c), whose wake hook is uv_async_send: it coalesces, and the
 * async callback drains the whole queue, so no request is left behind.
 * Requests are deadline updates the timer could not apply at once
 * (timer.c), the quiescence check of the virtual clock and
 * weft_wait_all_tasks_blocked (timer.c: it runs here so that it can
 * publish this thread's wake batch first), I/O operations (ioop.c),
 * closes (UDP sockets, signal watchers), shutdown triggers and deferred
 * frees (weft__io_reclaim);
 * completions go back to workers through the scheduler's injection
 * queue, in batches flushed around each poll.
 *
 * Deadlines belong to the deadline timer (timer.c); this thread watches
 * its fd and calls weft__timer_expire when it fires, so deadlines fire
 * while every worker sleeps, and around each drain of the queue it brings
 * the wheel's clock up to date (weft__timer_advance) and re-arms the fd
 * (weft__timer_rearm).  Under the virtual clock the fd is never armed:
 * deadlines fire at the check's jumps.
 *
 * Socket records (io.h): the runtime's pool of free stream, listener and
 * UDP records lives here because this file starts and stops the I/O
 * side: records are taken and given back by any thread under one mutex
 * (a socket's life costs a system call or two; one lock per life is not
 * worth a cache per worker), and weft__io_stop frees the pool after the
 * last close ran, the workers and the loop being gone.
 *
 * Invariants
 *   1. Between weft__io_start and the join in weft__io_stop, only this
 *      thread touches the loop and the handles (uv_async_send aside).
 *   2. After `stop` is seen, the loop ends; weft__io_stop (after every
 *      worker is joined, so nobody can post) drains what is left.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/idle.h"
#include "core/ioq.h"
#include "core/records.h"
#include "core/sched.h"
#include "core/timer.h"
#include "core/trace.h"
#include "io/io.h"
#include "io/signal.h"
#include "io/sock.h"
#include "runtime.h"
#include "weft/error.h"

static weft__io_t *io_of(uv_handle_t *h)
{
	return h->data;
}

/* Publishes the tasks woken since the last flush (one injection-queue
 * lock, one idle notification) and opens a new batch. */
static void io_flush(weft__io_t *io)
{
	weft__sched_batch_end(io->rt);
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
	weft__timer_expire(&io->rt->timer);
}

/* The socket set has events: ready their waiters (sock.c). */
static void io_net_cb(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	weft__io_t *io = io_of((uv_handle_t *)h);
	(void)weft__sock_poll_io(io);
}

static void io_async_cb(uv_async_t *async)
{
	weft__io_t *io = io_of((uv_handle_t *)async);
	/* Bring the wheel's clock up to date before filing new deadlines (it
	 * only moves when timers are processed). */
	weft__timer_advance(&io->rt->timer);
	weft__ioq_drain(io->rt);
	/* acquire: pairs with weft__io_stop's release store. */
	if (atomic_load_explicit(&io->stop, memory_order_acquire)) {
		uv_stop(&io->loop);
		return;
	}
	weft__timer_rearm(&io->rt->timer);
	/* After the whole drain: see timer.c (Q5). */
	weft__timer_quiesce(io->rt);
}

/* The request queue's wake hook: any thread. */
static void io_wake(void *arg)
{
	weft__io_t *io = arg;
	uv_async_send(&io->wake);
}

/* {======================================================= reclaim */

static void reclaim_timer_cb(uv_timer_t *t);

/* Whether every worker has left, or is not running, the fiber it ran when
 * rc_snap was taken.  acquire: pairs with worker_qs_step's release, so
 * what that fiber did to the objects comes before their free. */
static bool reclaim_grace_over(weft__io_t *io)
{
	struct weft_runtime *rt = io->rt;
	for (unsigned i = 0; i < rt->nworkers; i++) {
		uint64_t s = io->rc_snap[i];
		/* acquire: see above (worker_qs_step's release). */
		if ((s & 1) &&
			atomic_load_explicit(&rt->workers[i].qs,
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
	struct weft_runtime *rt = io->rt;
	io->rc_wait = io->rc_next;
	io->rc_next = NULL;
	/* acquire: as in reclaim_grace_over (pairs with worker_qs_step's
	 * release); the snapshot only names the fiber each worker runs now,
	 * and the later loads decide. */
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

static void reclaim_post_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	weft__io_t *io = rt->io;
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
	weft__ioq_post(rt, &r->node);
}

/* }======================================================= */

/* {======================================================= socket records */

void *weft__io_rec_get(struct weft_runtime *rt, enum weft__io_rec_kind kind,
	size_t size)
{
	weft__io_t *io = rt->io;
	pthread_mutex_lock(&io->rec_lock);
	io->rec_size[kind] = size;
	struct weft__io_rec *r = io->rec_free[kind];
	if (r != NULL)
		io->rec_free[kind] = r->pool_next;
	pthread_mutex_unlock(&io->rec_lock);
	uint64_t life = 0; /* a new record: generation 0 */
	if (r != NULL) {
		weft__record_unpoison(r, size);
		/* relaxed: only this life's owner writes the word now (a
		 * stale handle's check reads it and fails); whoever is
		 * handed the record's handle is ordered after this store. */
		life = atomic_load_explicit(&r->life, memory_order_relaxed);
	} else {
		r = weft__alloc(size);
		if (r == NULL)
			return NULL;
		weft__record_tag_check(r);
	}
	memset((char *)r + sizeof *r, 0, size - sizeof *r);
	r->pool_next = NULL;
	/* One reference, the owner's (see above for relaxed). */
	atomic_store_explicit(&r->life, life | 1, memory_order_relaxed);
	return r;
}

void weft__io_rec_put(struct weft_runtime *rt, enum weft__io_rec_kind kind,
	struct weft__io_rec *r)
{
	weft__io_t *io = rt->io;
	/* relaxed: the last reference is gone (its acq_rel drop ordered
	 * every holder's accesses before this), and a stale check only
	 * compares the generation.  Odd (closed) or, for a record whose
	 * handle was never given out, even: the next even one either way. */
	uint64_t gen = atomic_load_explicit(&r->life, memory_order_relaxed) >>
		WEFT__IO_REC_GEN_SHIFT;
	atomic_store_explicit(&r->life,
		((gen | 1) + 1) << WEFT__IO_REC_GEN_SHIFT,
		memory_order_relaxed);
	pthread_mutex_lock(&io->rec_lock);
	weft__record_poison(r, sizeof *r, io->rec_size[kind]);
	r->pool_next = io->rec_free[kind];
	io->rec_free[kind] = r;
	pthread_mutex_unlock(&io->rec_lock);
}

void weft__io_rec_misuse(const void *h, const char *call, const char *what)
{
	struct weft__io_rec *r = weft__handle_addr(h);
	/* relaxed: diagnostics only. */
	uint32_t gen = (uint32_t)(atomic_load_explicit(&r->life,
					  memory_order_relaxed) >>
		WEFT__IO_REC_GEN_SHIFT);
	unsigned tag = weft__handle_tag(h);
	weft__misuse("%s: %s handle %p is stale: the %s was closed (%s; "
		     "record generation %u, handle %u)",
		call, what, h, what,
		(uint16_t)gen == (uint16_t)(tag + 1)
			? "a call after its close, or a second close"
			: "a call after its close, or a second close; its "
			  "record has been reused since",
		(unsigned)(uint16_t)gen, tag);
}

/* Frees the pool's records.  After the last close: the loop is closed. */
static void io_rec_fini(weft__io_t *io)
{
	for (int k = 0; k < WEFT__IO_REC_KINDS; k++) {
		struct weft__io_rec *r = io->rec_free[k];
		while (r != NULL) {
			struct weft__io_rec *next = r->pool_next;
			weft__record_unpoison(r, io->rec_size[k]);
			weft__free(r);
			r = next;
		}
		io->rec_free[k] = NULL;
	}
	pthread_mutex_destroy(&io->rec_lock);
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
	/* Its trace events go to the weft-io track (core/trace.c). */
	weft__trace_bind_io(io->rt);
	/* Every task this thread wakes joins a batch, published at the
	 * flush points (io_flush) and when the loop ends. */
	weft__sched_batch_begin();
	uv_run(&io->loop, UV_RUN_DEFAULT);
	weft__sched_batch_end(io->rt);
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
	weft__io_t *io = weft__calloc(1, sizeof *io);
	if (io == NULL)
		return -ENOMEM;
	io->rt = rt;
	io->sock_epfd = -1;
	atomic_init(&io->stop, false);
	int rc = weft__sock_poll_open(io);
	if (rc < 0) {
		weft__free(io);
		return rc;
	}
	rc = pthread_mutex_init(&io->rec_lock, NULL);
	if (rc != 0) {
		weft__sock_poll_close(io);
		weft__free(io);
		return -rc;
	}
	rc = uv_loop_init(&io->loop);
	if (rc < 0) {
		pthread_mutex_destroy(&io->rec_lock);
		weft__sock_poll_close(io);
		weft__free(io);
		return rc;
	}
	/* Every handle is initialised here, before the thread starts, as
	 * libuv requires for uv_async_init (uv_async_send may be called from
	 * another thread as soon as the handle exists). */
	uv_async_init(&io->loop, &io->wake, io_async_cb);
	io->wake.data = io;
	uv_poll_init(&io->loop, &io->timer, weft__timer_fd(&rt->timer));
	io->timer.data = io;
	uv_poll_start(&io->timer, UV_READABLE, io_timer_cb);
	/* The socket set: polled by the workers (sock.c, "Who polls"),
	 * but for a seeded runtime's, which take turns and never block in
	 * a poll (core/baton.c): this thread polls for those. */
	uv_poll_init(&io->loop, &io->net_poll, io->net_epfd);
	io->net_poll.data = io;
	if (rt->baton.on)
		uv_poll_start(&io->net_poll, UV_READABLE, io_net_cb);
	else
		weft__idle_set_poller(rt, weft__sock_poll,
			weft__sock_poll_interrupt);
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
		rc = -ENOMEM;
		goto fail;
	}
	/* Before create returns: a dump signal sent as soon as it has
	 * returned finds the watcher (not the default disposition). */
	if (rt->cfg.dump_signal != 0) {
		rc = weft__signal_dump_open(io, rt->cfg.dump_signal, &io->dump);
		if (rc < 0)
			goto fail;
	}
	weft__ioq_init(&rt->ioq, io_wake, io);
	/* Before the thread starts (its create orders the store before
	 * everything it does): its wake-ups of a worker polling the sockets
	 * interrupt that poll through rt->io (sock.c). */
	rt->io = io;
	rc = pthread_create(&io->thread, NULL, io_main, io);
	if (rc != 0) {
		rt->io = NULL;
		rc = rc == EAGAIN ? -EAGAIN : -rc;
		goto fail;
	}
	/* The thread's name in ps, top and gdb, in place when
	 * weft_runtime_create returns; best effort. */
	pthread_setname_np(io->thread, "weft-io");
	return 0;
fail:
	weft__free(io->rc_snap);
	if (io->dump != NULL)
		weft__signal_dump_close(io->dump);
	io_close_handles(io);
	uv_loop_close(&io->loop);
	pthread_mutex_destroy(&io->rec_lock);
	weft__sock_poll_close(io);
	weft__free(io);
	return rc;
}

void weft__io_stop(struct weft_runtime *rt)
{
	weft__io_t *io = rt->io;
	if (io == NULL)
		return;
	/* release: the I/O thread's acquire load sees stop. */
	atomic_store_explicit(&io->stop, true, memory_order_release);
	uv_async_send(&io->wake);
	pthread_join(io->thread, NULL);
	/* The loop thread is gone and no worker is left to post: finish the
	 * queue here (the timer's fini then drops what the wheel holds). */
	weft__ioq_drain(rt);
	/* No fiber runs any more: every grace period is over. */
	reclaim_free_list(io->rc_wait);
	reclaim_free_list(io->rc_next);
	io->rc_wait = io->rc_next = NULL;
	weft__free(io->rc_snap);
	io->rc_snap = NULL;
	/* Before the walk below, which would close its handle without the
	 * callback that frees it. */
	if (io->dump != NULL)
		weft__signal_dump_close(io->dump);
	io->dump = NULL;
	io_close_handles(io);
	int rc = uv_loop_close(&io->loop);
	if (io->sock_epfd >= 0)
		close(io->sock_epfd); /* its uv_poll_t was closed above */
	weft__sock_poll_close(io);    /* net_poll was closed above too */
	WEFT_ASSERT(rc == 0, "libuv loop still busy at shutdown");
	/* Every close has run (the queue and the handles' callbacks):
	 * no socket record dies after this. */
	io_rec_fini(io);
	weft__free(io);
	rt->io = NULL;
}

int weft__io_uverr(int uv)
{
	switch (uv) {
	case UV_EOF: return WEFT_EEND;
	/* The answer is no (weft/dns.h): the name or the service does not
	 * exist, or has no address of the asked family.  Permanent, unlike
	 * WEFT_EDNS, which a caller may retry. */
	case UV_EAI_NONAME:
	case UV_EAI_NODATA:
	case UV_EAI_ADDRFAMILY:
	case UV_EAI_SERVICE: return WEFT_ENOTFOUND;
	/* Hints or flags getaddrinfo(3) refuses. */
	case UV_EAI_SOCKTYPE:
	case UV_EAI_BADHINTS:
	case UV_EAI_PROTOCOL:
	case UV_EAI_BADFLAGS:
	case UV_EAI_FAMILY: return -EINVAL;
	/* The resolver failed. */
	case UV_EAI_AGAIN:
	case UV_EAI_FAIL:
	case UV_EAI_OVERFLOW: return WEFT_EDNS;
	case UV_EAI_MEMORY: return -ENOMEM;
	case UV_EAI_CANCELED: return -ECANCELED;
	default:
		/* libuv's codes are -errno on Linux. */
		return uv;
	}
}
