/* The socket core (sock.h): direct system calls on workers, readiness
 * waits on the I/O thread, and a close that never pulls a descriptor out
 * from under a system call.
 *
 * Problem: workers call recv/send/accept4 on the descriptor while the I/O
 * thread may be watching it with epoll (uv_poll_t).  Once close(2) runs,
 * the number can be reused by any open in the process, so no worker may
 * still be inside a system call on it, and the I/O thread must have
 * stopped watching it (a stale epoll registration of a reused number
 * would report someone else's events).
 *
 * Approach: the `gate` word.
 *   - A direct system call enters with fetch_add(INSIDE) and leaves with
 *     fetch_sub(INSIDE); an enter that finds CLOSED backs out and makes no
 *     call.
 *   - A task about to post its first readiness wait sets REGISTERED while
 *     inside (between enter and leave): from then on the I/O thread may
 *     own a poll handle on the descriptor.
 *   - Close sets CLOSED (fetch_or).  Whoever then sees CLOSED with nobody
 *     inside and POSTED clear (the closer, or the last task leaving) sets
 *     POSTED with a CAS, so exactly one thread finishes the close: with
 *     REGISTERED clear it closes the descriptor right there (the I/O
 *     thread never saw it); with REGISTERED set it posts the close to the
 *     I/O thread, which wakes any waiter with WEFT_ECLOSED, closes the
 *     poll handle and only in its close callback closes the descriptor.
 * Every gate update is an RMW of one atomic, so they are totally ordered:
 * a task either entered before CLOSED (the close waits for it to leave,
 * and then sees its REGISTERED) or sees CLOSED and does nothing.  A wait
 * posted after the close's post finds `io_closed` on the I/O thread and
 * returns WEFT_ECLOSED without touching the descriptor.  Nobody waits for
 * anybody: the last one out finishes the close.
 *
 * Readiness waits are I/O operations (ioop.h): `start` registers the
 * waiter and (re)arms the poll handle with the union of the events
 * wanted, the poll callback completes the waiters whose event came and
 * disarms it, `cancel` withdraws the waiter.  All three and the close run
 * on the I/O thread, so exactly one of them completes each wait.  libuv
 * polls level-triggered, so an event nobody waits for is disarmed at
 * once rather than reported again and again.
 *
 * Memory: `refs` counts the descriptor (dropped once it is closed) and
 * each call in progress; free_fn runs at zero.  A task parked at close
 * time is woken before the descriptor's reference goes and still holds
 * its own.
 *
 * Invariants
 *   1. poll, poll_init, io_closed, events, rd and wr are the I/O thread's.
 *   2. No system call on fd starts after CLOSED is set, and close(fd)
 *      runs only after every started one ended and the poll handle (if
 *      any) was closed.
 *   3. A bit of `events` is set only while the matching waiter is
 *      parked; rd/wr are cleared by whoever completes them.
 *
 * Rejected: uv_tcp_t streams with uv_read_start/uv_write (every byte would
 * cross to the I/O thread and back, libuv's writev may raise SIGPIPE, and
 * a queued uv_write can only be withdrawn by closing the whole socket);
 * a lock around the system calls (close would have to wait for a worker,
 * or the I/O thread for a worker). */
#include <errno.h>
#include <unistd.h>

#include "common.h"
#include "io.h"
#include "rt.h"
#include "sock.h"
#include "weft/error.h"

#define SOCK_CLOSED 1u
#define SOCK_POSTED 2u
#define SOCK_REGISTERED 4u
#define SOCK_INSIDE 8u  /* one task inside a direct system call */

struct weft__sock_wait {
	struct weft__ioop op;
	struct weft__sock *s;
	int event;
};

void weft__sock_init(struct weft__sock *s, struct weft_runtime *rt, int fd,
	void (*free_fn)(struct weft__sock *s))
{
	s->rt = rt;
	s->fd = fd;
	s->free_fn = free_fn;
	atomic_init(&s->gate, 0);
	atomic_init(&s->refs, 1);  /* the descriptor's */
	s->poll_init = false;
	s->io_closed = false;
	s->events = 0;
	s->rd = NULL;
	s->wr = NULL;
}

void weft__sock_ref(struct weft__sock *s)
{
	/* Relaxed: the caller already holds s alive. */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void weft__sock_unref(struct weft__sock *s)
{
	/* acq_rel: the release orders this holder's accesses before the
	 * free; the acquire of the last one sees every other holder's. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		s->free_fn(s);
}

int weft__sock_errno(void)
{
	int e = errno;
	return e == EWOULDBLOCK ? -EAGAIN : -e;
}

/* {======================================================= close */

static void sock_close_fn(weft__io_t *io, struct weft__ionode *n);

/* Finishes the close if s is closing, nobody is inside and nobody has
 * finished it yet.  Any thread. */
static void sock_try_finish(struct weft__sock *s)
{
	/* acquire: sees the leaving tasks' system calls as over. */
	unsigned v = atomic_load_explicit(&s->gate, memory_order_acquire);
	for (;;) {
		if (!(v & SOCK_CLOSED) || (v & SOCK_POSTED) ||
			v >= SOCK_INSIDE)
			return;
		/* acq_rel: acquires every leave before it; only one CAS can
		 * set POSTED. */
		if (atomic_compare_exchange_weak_explicit(&s->gate, &v,
			v | SOCK_POSTED, memory_order_acq_rel,
			memory_order_acquire))
			break;
	}
	if (v & SOCK_REGISTERED) {
		s->close_node.fn = sock_close_fn;
		weft__io_post(s->rt, &s->close_node);
		return;
	}
	/* The I/O thread never saw fd: close it here. */
	close(s->fd);
	weft__sock_unref(s);
}

bool weft__sock_close(struct weft__sock *s)
{
	/* acq_rel: ordered with every enter/leave (same atomic). */
	unsigned old = atomic_fetch_or_explicit(&s->gate, SOCK_CLOSED,
		memory_order_acq_rel);
	if (old & SOCK_CLOSED)
		return false;
	sock_try_finish(s);
	return true;
}

bool weft__sock_closing(struct weft__sock *s)
{
	return atomic_load_explicit(&s->gate, memory_order_relaxed) &
		SOCK_CLOSED;
}

bool weft__sock_enter(struct weft__sock *s)
{
	/* acq_rel: totally ordered with the close's fetch_or. */
	unsigned old = atomic_fetch_add_explicit(&s->gate, SOCK_INSIDE,
		memory_order_acq_rel);
	if (!(old & SOCK_CLOSED))
		return true;
	weft__sock_leave(s);
	return false;
}

void weft__sock_leave(struct weft__sock *s)
{
	/* acq_rel: the release orders the system call before the close
	 * that reads this value (sock_try_finish's acquire). */
	unsigned old = atomic_fetch_sub_explicit(&s->gate, SOCK_INSIDE,
		memory_order_acq_rel);
	if ((old & SOCK_CLOSED) && old - SOCK_INSIDE < SOCK_INSIDE)
		sock_try_finish(s);
}

/* }======================================================= */

/* {======================================================= I/O thread */

static void sock_rearm(struct weft__sock *s)
{
	if (s->events == 0)
		uv_poll_stop(&s->poll);
	else
		uv_poll_start(&s->poll, s->events, NULL);
}

static void sock_poll_cb(uv_poll_t *h, int status, int events)
{
	struct weft__sock *s = h->data;
	struct weft__sock_wait *rd = NULL, *wr = NULL;
	/* libuv reports POLLERR as status UV_EBADF (and stops the handle):
	 * the socket has a pending error, which the waiters' retried system
	 * calls (recv, send, SO_ERROR) report exactly.  So an error wakes
	 * both waiters with "ready". */
	int rc = 0;
	if (s->rd && (status < 0 || (events & UV_READABLE))) {
		rd = s->rd;
		s->rd = NULL;
		s->events &= ~UV_READABLE;
	}
	if (s->wr && (status < 0 || (events & UV_WRITABLE))) {
		wr = s->wr;
		s->wr = NULL;
		s->events &= ~UV_WRITABLE;
	}
	sock_rearm(s);
	if (rd)
		weft__ioop_complete(&rd->op, rc);
	if (wr)
		weft__ioop_complete(&wr->op, rc);
}

static void sock_wait_start(weft__io_t *io, struct weft__ioop *op)
{
	struct weft__sock_wait *w = WEFT__CONTAINER_OF(op,
		struct weft__sock_wait, op);
	struct weft__sock *s = w->s;
	if (s->io_closed) {
		weft__ioop_complete(op, WEFT_ECLOSED);
		return;
	}
	if (!s->poll_init) {
		int rc = uv_poll_init(&io->loop, &s->poll, s->fd);
		if (rc < 0) {
			weft__ioop_complete(op, weft__io_uverr(rc));
			return;
		}
		s->poll.data = s;
		s->poll_init = true;
	}
	if (w->event == UV_READABLE)
		s->rd = w;
	else
		s->wr = w;
	s->events |= w->event;
	int rc = uv_poll_start(&s->poll, s->events, sock_poll_cb);
	if (rc < 0) {
		if (w->event == UV_READABLE)
			s->rd = NULL;
		else
			s->wr = NULL;
		s->events &= ~w->event;
		sock_rearm(s);
		weft__ioop_complete(op, weft__io_uverr(rc));
	}
}

static void sock_wait_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct weft__sock_wait *w = WEFT__CONTAINER_OF(op,
		struct weft__sock_wait, op);
	struct weft__sock *s = w->s;
	if (s->rd == w)
		s->rd = NULL;
	else if (s->wr == w)
		s->wr = NULL;
	else
		return;  /* completed already (invariant 3) */
	s->events &= ~w->event;
	sock_rearm(s);
	weft__ioop_complete(op, -ECANCELED);
}

static void sock_poll_closed(uv_handle_t *h)
{
	struct weft__sock *s = h->data;
	close(s->fd);
	weft__sock_unref(s);
}

static void sock_close_fn(weft__io_t *io, struct weft__ionode *n)
{
	(void)io;
	struct weft__sock *s = WEFT__CONTAINER_OF(n, struct weft__sock,
		close_node);
	s->io_closed = true;
	struct weft__sock_wait *rd = s->rd, *wr = s->wr;
	s->rd = NULL;
	s->wr = NULL;
	s->events = 0;
	if (s->poll_init) {
		uv_close((uv_handle_t *)&s->poll, sock_poll_closed);
	} else {
		close(s->fd);
	}
	/* s stays alive until the waiters drop their references. */
	if (rd)
		weft__ioop_complete(&rd->op, WEFT_ECLOSED);
	if (wr)
		weft__ioop_complete(&wr->op, WEFT_ECLOSED);
	if (!s->poll_init)
		weft__sock_unref(s);
}

/* }======================================================= */

int weft__sock_wait(struct weft__sock *s, int event, const char *what)
{
	/* REGISTERED is set inside the gate so that the close either sees
	 * it (and goes through the I/O thread) or this wait is refused. */
	if (!weft__sock_enter(s))
		return WEFT_ECLOSED;
	/* Relaxed: the leave's release carries it to the closer. */
	atomic_fetch_or_explicit(&s->gate, SOCK_REGISTERED,
		memory_order_relaxed);
	weft__sock_leave(s);
	struct weft__sock_wait w = { .s = s, .event = event };
	w.op.start = sock_wait_start;
	w.op.cancel = sock_wait_cancel;
	w.op.what = what;
	return weft__ioop_run(&w.op);
}
