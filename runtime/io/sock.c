/* The socket core (sock.h): direct system calls on workers, readiness
 * waits on the I/O thread, and a close that never pulls a descriptor out
 * from under a system call.
 *
 * Problem: workers call recv/send/accept4 on the descriptor while the I/O
 * thread may have it in its epoll set.  Once close(2) runs, the number
 * can be reused by any open in the process, so no worker may still be
 * inside a system call on it, and the I/O thread must have dropped it
 * from the set.
 *
 * Approach: the `gate` word.
 *   - A direct system call enters with fetch_add(INSIDE) and leaves with
 *     fetch_sub(INSIDE); an enter that finds CLOSED backs out and makes no
 *     call.
 *   - A task about to post its first readiness wait sets REGISTERED while
 *     inside (between enter and leave): from then on the descriptor may
 *     be in the I/O thread's epoll set.
 *   - Close sets CLOSED (fetch_or).  Whoever then sees CLOSED with nobody
 *     inside and POSTED clear (the closer, or the last task leaving) sets
 *     POSTED with a CAS, so exactly one thread finishes the close: with
 *     REGISTERED clear it closes the descriptor right there (the I/O
 *     thread never saw it); with REGISTERED set it posts the close to the
 *     I/O thread, which wakes any waiter with WEFT_ECLOSED, removes the
 *     descriptor from the epoll set and closes it.
 * Every gate update is an RMW of one atomic, so they are totally ordered:
 * a task either entered before CLOSED (the close waits for it to leave,
 * and then sees its REGISTERED) or sees CLOSED and does nothing.  A wait
 * posted after the close's post finds `io_closed` on the I/O thread and
 * returns WEFT_ECLOSED without touching the descriptor.  Nobody waits for
 * anybody: the last one out finishes the close.
 *
 * Readiness: every socket that ever waited is in one epoll set per
 * runtime, edge-triggered, registered once for input and output (so a
 * wait costs no epoll_ctl at all); that set's descriptor is watched by
 * one uv_poll_t, whose callback drains it with epoll_wait(0) and
 * dispatches.  A readiness wait is an I/O operation (ioop.h): `start`
 * registers the waiter, or completes at once if an edge came while
 * nobody waited (rd_ready/wr_ready); an edge completes the waiter, or
 * records itself in the ready flag; `cancel` withdraws the waiter.  All
 * of these and the close run on the I/O thread, so exactly one of them
 * completes each wait, and no edge is lost: an edge that found no waiter
 * is kept.  A kept edge may be stale (the worker's next system call
 * already took the data): the waiter then retries, finds EAGAIN, and
 * waits again with the flag clear.  The first registration reports the
 * socket's current state, so a socket that became ready before its
 * first wait is not missed.  A wait may span several sockets and
 * directions (weft__sock_wait_set, for foreign descriptors: fdwait.c):
 * each entry takes its slot, the first edge unlinks them all and
 * completes the wait once; a level wait asks poll(2) in its start
 * instead of trusting kept edges.
 *
 * Memory: the record's life word (io.h) counts the descriptor (dropped
 * once it is closed), each call in progress (taken by the call's handle
 * check, in the same CAS that checks the handle) and the closer (taken
 * by the close's CAS, dropped when weft__sock_close has returned: a task
 * leaving its system call may finish the close and drop the other
 * references meanwhile); free_fn runs at zero and gives the record back
 * to the runtime's pool.  A task parked at close time is woken before
 * the descriptor's reference goes and still holds its own.  So a call
 * racing a close on another task either took its reference first (it
 * runs on, and its system calls or waits return WEFT_ECLOSED once the
 * gate is closed) or finds the handle closed and touches nothing; the
 * record is never reused under a call that holds it.
 *
 * Invariants
 *   1. in_epoll, io_closed, rd_ready, wr_ready, rd and wr are the I/O
 *      thread's.
 *   2. No system call on fd starts after CLOSED is set, and close(fd)
 *      runs only after every started one ended and fd left the epoll set.
 *   3. rd/wr are set only while their waiter is parked; whoever clears
 *      one completes its waiter.
 *   4. A socket in the epoll set is freed only after its close ran on the
 *      I/O thread (REGISTERED routes the close there), so an event never
 *      names freed memory: epoll_wait and the close are both the I/O
 *      thread's.
 *
 * Rejected: uv_tcp_t streams with uv_read_start/uv_write (every byte would
 * cross to the I/O thread and back, libuv's writev may raise SIGPIPE, and
 * a queued uv_write can only be withdrawn by closing the whole socket);
 * one uv_poll_t per socket (libuv's level-triggered polls must be armed
 * and disarmed around every wait, and uv_poll_start deletes and re-adds
 * the descriptor: three epoll_ctl calls per request on the I/O thread);
 * EPOLLONESHOT re-armed at each wait (no I/O-thread wake-up for traffic
 * nobody waits for, but one epoll_ctl per wait, and a kept edge no longer
 * lets a wait finish without sleeping: weft-httpd under wrk -c100 did
 * about 10% fewer requests/s, 6 alternating runs in one sitting);
 * a lock around the system calls (close would have to wait for a worker,
 * or the I/O thread for a worker). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/common.h"
#include "core/cancel.h"
#include "core/idle.h"
#include "core/inspect.h"
#include "core/task.h"
#include "core/timer.h"
#include "io/io.h"
#include "io/sock.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "weft/dns.h"
#include "weft/error.h"

#define SOCK_CLOSED 1u
#define SOCK_POSTED 2u
#define SOCK_REGISTERED 4u
#define SOCK_INSIDE 8u /* one task inside a direct system call */

/* A waiter word's state (its low two bits; the rest is the sequence). */
#define SOCK_NIL UINT64_C(0)
#define SOCK_READY UINT64_C(1)
#define SOCK_DEAD UINT64_C(2) /* closed: every wait ends WEFT_ECLOSED */
#define SOCK_WAIT UINT64_C(3)
#define SOCK_STATE UINT64_C(3)
#define SOCK_SEQ UINT64_C(4)

/* Both directions, edge-triggered, registered once (both sets). */
#define SOCK_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* epoll_event.data of a weft socket: its address in the low 48 bits and
 * its life's tag above (sock_tag). */
#define SOCK_PTR_BITS 48
#define SOCK_PTR_MASK ((UINT64_C(1) << SOCK_PTR_BITS) - 1)

void weft__sock_init(struct weft__sock *s, struct weft_runtime *rt, int fd,
	void (*free_fn)(struct weft__sock *s))
{
	s->rt = rt;
	s->fd = fd;
	s->free_fn = free_fn;
	s->foreign = false;
	atomic_init(&s->gate, 0);
	for (int i = 0; i < 2; i++) {
		atomic_init(&s->dir[i].word, SOCK_NIL);
		atomic_init(&s->dir[i].task, NULL);
		atomic_init(&s->dir[i].gen, 0);
	}
	atomic_init(&s->in_set, false);
	s->in_epoll = false;
	s->io_closed = false;
	s->rd_ready = false;
	s->wr_ready = false;
	s->rd = NULL;
	s->wr = NULL;
}

void weft__sock_ref(struct weft__sock *s)
{
	weft__io_rec_ref(&s->rec);
}

int weft__sock_call_begin(struct weft__sock *s, atomic_bool *side,
	struct weft_task **self)
{
	(void)s;
	int rc = weft__waitq_begin(self);
	if (rc < 0)
		return rc;
	/* acquire: pairs with the previous holder's release in
	 * weft__sock_call_end (its updates of the side's state, e.g. a
	 * stream's pushback, come before ours). */
	if (atomic_exchange_explicit(side, true, memory_order_acquire))
		return -EBUSY;
	return 0;
}

void weft__sock_call_end(struct weft__sock *s, atomic_bool *side)
{
	(void)s;
	/* release: pairs with the next holder's acquire exchange. */
	atomic_store_explicit(side, false, memory_order_release);
}

void weft__sock_unref(struct weft__sock *s)
{
	/* The ordering is the life word's (weft__io_rec_unref). */
	if (weft__io_rec_unref(&s->rec))
		s->free_fn(s);
}

socklen_t weft__sock_addr_len(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET: return sizeof(struct sockaddr_in);
	case AF_INET6: return sizeof(struct sockaddr_in6);
	default: return 0;
	}
}

int weft__sock_addr_un(struct sockaddr_un *un, const char *path)
{
	memset(un, 0, sizeof *un);
	size_t n = strlen(path);
	if (n >= sizeof un->sun_path)
		return -ENAMETOOLONG;
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n);
	return 0;
}

int weft__sock_resolve(const char *host, int port, int family, int socktype,
	int flags, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (uv_ip4_addr(host, port, in4) == 0) {
		*len = sizeof *in4;
		return 0;
	}
	if (uv_ip6_addr(host, port, in6) == 0) {
		*len = sizeof *in6;
		return 0;
	}
	struct addrinfo hints = { .ai_family = family,
		.ai_socktype = socktype,
		.ai_flags = flags };
	struct addrinfo *res;
	int rc = weft_getaddrinfo(host, NULL, &hints, &res);
	if (rc < 0)
		return rc;
	*len = res->ai_addrlen;
	memcpy(ss, res->ai_addr, *len);
	weft_freeaddrinfo(res);
	if (ss->ss_family == AF_INET6)
		in6->sin6_port = htons((uint16_t)port);
	else
		in4->sin_port = htons((uint16_t)port);
	return 0;
}

int weft__sock_errno(void)
{
	int e = errno;
	return e == EWOULDBLOCK ? -EAGAIN : -e;
}

/* {======================================================= close */

static void sock_dir_post(struct weft__sock_dir *d, uint64_t to);

/* Finishes the close if s is closing, nobody is inside and nobody has
 * finished it yet.  Any thread. */
static void sock_try_finish(struct weft__sock *s)
{
	/* acquire: pairs with weft__sock_leave's release; the leaving
	 * tasks' system calls (and epoll_ctl) are over. */
	unsigned v = atomic_load_explicit(&s->gate, memory_order_acquire);
	for (;;) {
		if (!(v & SOCK_CLOSED) || (v & SOCK_POSTED) || v >= SOCK_INSIDE)
			return;
		/* acq_rel: acquires every leave before it; only one CAS can
		 * set POSTED. */
		if (atomic_compare_exchange_weak_explicit(&s->gate, &v,
			    v | SOCK_POSTED, memory_order_acq_rel,
			    memory_order_acquire))
			break;
	}
	if (v & SOCK_REGISTERED) {
		/* It may be in the socket set (invariant 4): out before the
		 * number can be reused.  Any thread may; an event a poller
		 * already holds names s with its life's tag, and the poller
		 * takes a reference before it touches s (invariant 5). */
		struct epoll_event ev = { 0 };
		(void)epoll_ctl(s->rt->io->net_epfd, EPOLL_CTL_DEL, s->fd, &ev);
	}
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
	/* Every wait from now on, or parked now, ends WEFT_ECLOSED. */
	sock_dir_post(&s->dir[0], SOCK_DEAD);
	sock_dir_post(&s->dir[1], SOCK_DEAD);
	sock_try_finish(s);
	return true;
}

bool weft__sock_closing(struct weft__sock *s)
{
	/* relaxed: a hint for error messages (sock.h); the gate's RMWs
	 * decide, and this load pairs with nothing. */
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

/* {======================================================= waiter words */

/* Puts `to` (READY: an edge; DEAD: the close) into d's word unless it
 * holds DEAD, or READY already when `to` is READY, and wakes the waiter
 * it took out, if any.  Any thread holding a reference on the socket. */
static void sock_dir_post(struct weft__sock_dir *d, uint64_t to)
{
	/* acquire: pairs with the waiter's release CAS that installed a
	 * WAIT, so its task and gen are read below. */
	uint64_t w = atomic_load_explicit(&d->word, memory_order_acquire);
	for (;;) {
		uint64_t st = w & SOCK_STATE;
		if (st == SOCK_DEAD || (st == SOCK_READY && to == SOCK_READY))
			return;
		struct weft_task *t = NULL;
		uint64_t gen = 0;
		if (st == SOCK_WAIT) {
			/* relaxed: ordered by the acquire above; read before
			 * the CAS, whose success says they are this WAIT's
			 * (invariant 3). */
			t = atomic_load_explicit(&d->task,
				memory_order_relaxed);
			gen = atomic_load_explicit(&d->gen,
				memory_order_relaxed);
		}
		/* acq_rel: the release pairs with the waiter's acquire
		 * reload after its park (it must not read task/gen of a
		 * newer WAIT: see invariant 3); the acquire on failure as
		 * the load above. */
		if (atomic_compare_exchange_weak_explicit(&d->word, &w,
			    (w & ~SOCK_STATE) | to, memory_order_acq_rel,
			    memory_order_acquire)) {
			/* The word no longer names the waiter: only the task
			 * record is touched, type-stable, and a wake of a park
			 * it has left is a no-op (core/task.c). */
			if (t != NULL)
				weft__task_wake(t, gen);
			return;
		}
	}
}

/* The tag of s's current life in its epoll events: the record's
 * generation halved (open and closed are one life), 16 bits. */
static uint16_t sock_tag(uint64_t life)
{
	return (uint16_t)(life >> (WEFT__IO_REC_GEN_SHIFT + 1));
}

/* Takes a reference on s if it is alive (references held) in the life
 * tagged `tag`; else touches nothing more.  acquire: pairs with the
 * release RMW of sock_join_set, so s's fields of this life (its waiter
 * words' initialisation) come before our accesses.  Any thread. */
static bool sock_take_tagged(struct weft__sock *s, uint16_t tag)
{
	uint64_t v = atomic_load_explicit(&s->rec.life, memory_order_relaxed);
	do {
		if ((v & WEFT__IO_REC_REFS) == 0 || sock_tag(v) != tag)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&s->rec.life, &v, v + 1,
		memory_order_acquire, memory_order_relaxed));
	return true;
}

/* Adds s to the runtime's socket set once.  Thread: a fiber inside s's
 * gate (so the close's epoll_ctl DEL and close(2) come after this). */
static int sock_join_set(struct weft__sock *s)
{
	/* relaxed: a hint; a second ADD is harmless (EEXIST). */
	if (atomic_load_explicit(&s->in_set, memory_order_relaxed))
		return 0;
	/* release RMW on the life word: heads the release sequence that
	 * sock_take_tagged's acquire reads from, publishing s's fields to
	 * the pollers (an epoll event is no happens-before edge to the
	 * memory model). */
	uint64_t life = atomic_fetch_add_explicit(&s->rec.life, 0,
		memory_order_release);
	uintptr_t p = (uintptr_t)s;
	WEFT_ASSERT(((uint64_t)p & ~SOCK_PTR_MASK) == 0,
		"socket record above 2^48");
	struct epoll_event ev = { .events = SOCK_EVENTS,
		.data.u64 = (uint64_t)p |
			((uint64_t)sock_tag(life) << SOCK_PTR_BITS) };
	if (epoll_ctl(s->rt->io->net_epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0 &&
		errno != EEXIST)
		return -errno;
	/* relaxed: the hint above. */
	atomic_store_explicit(&s->in_set, true, memory_order_relaxed);
	weft__idle_poll_on(&s->rt->idle);
	return 0;
}

/* One event of the socket set (invariant 5). */
static void sock_net_event(uint64_t data, uint32_t e)
{
	struct weft__sock *s = (struct weft__sock *)(uintptr_t)(data &
		SOCK_PTR_MASK);
	if (!sock_take_tagged(s, (uint16_t)(data >> SOCK_PTR_BITS)))
		return; /* closed and freed, or in another life */
	/* An error or hang-up wakes both directions: their system calls
	 * report it exactly. */
	bool err = e & (EPOLLERR | EPOLLHUP);
	if (err || (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)))
		sock_dir_post(&s->dir[0], SOCK_READY);
	if (err || (e & EPOLLOUT))
		sock_dir_post(&s->dir[1], SOCK_READY);
	weft__sock_unref(s);
}

/* Drains the socket set without blocking. */
static int sock_poll_drain(weft__io_t *io)
{
	struct epoll_event ev[64];
	int total = 0, n;
	do {
		n = epoll_wait(io->net_epfd, ev, 64, 0);
		for (int i = 0; i < n; i++)
			sock_net_event(ev[i].data.u64, ev[i].events);
		total += n > 0 ? n : 0;
	} while (n == 64);
	return total;
}

int weft__sock_poll(struct weft_runtime *rt, int timeout_ms)
{
	weft__io_t *io = rt->io;
	if (timeout_ms != 0) {
		/* The one blocking poller (core/idle.c): the socket set
		 * itself, or the interrupt. */
		struct epoll_event ev[2];
		int n = epoll_wait(io->net_block_epfd, ev, 2, timeout_ms);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd != io->net_wake)
				continue;
			uint64_t v;
			/* Consumed: the eventfd is level-triggered there. */
			ssize_t r = read(io->net_wake, &v, sizeof v);
			(void)r;
		}
	}
	return sock_poll_drain(io);
}

void weft__sock_poll_interrupt(struct weft_runtime *rt)
{
	uint64_t one = 1;
	ssize_t r = write(rt->io->net_wake, &one, sizeof one);
	(void)r; /* EAGAIN: the counter is full, the poller wakes anyway */
}

int weft__sock_poll_open(weft__io_t *io)
{
	io->net_epfd = epoll_create1(EPOLL_CLOEXEC);
	io->net_block_epfd = epoll_create1(EPOLL_CLOEXEC);
	io->net_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = 0;
	if (io->net_epfd < 0 || io->net_block_epfd < 0 || io->net_wake < 0)
		rc = -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = io->net_epfd };
	if (rc == 0 &&
		epoll_ctl(io->net_block_epfd, EPOLL_CTL_ADD, io->net_epfd,
			&ev) < 0)
		rc = -errno;
	ev.data.fd = io->net_wake;
	if (rc == 0 &&
		epoll_ctl(io->net_block_epfd, EPOLL_CTL_ADD, io->net_wake,
			&ev) < 0)
		rc = -errno;
	if (rc < 0)
		weft__sock_poll_close(io);
	return rc;
}

void weft__sock_poll_close(weft__io_t *io)
{
	int *fds[] = { &io->net_epfd, &io->net_block_epfd, &io->net_wake };
	for (size_t i = 0; i < 3; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* What the dump says about a wait (weft__sock_describe). */
struct sock_wait_desc {
	const struct weft__sock *s;
	const char *what;
};

void weft__sock_describe(const void *on, struct weft__wait_desc *d)
{
	/* In the waiter's frame, which the dump holds pinned; s lives while
	 * its waiter holds a reference, and fd was written at its init. */
	const struct sock_wait_desc *w = on;
	d->obj = w->s;
	snprintf(d->text, sizeof d->text, "fd=%d op=\"%s\"", w->s->fd, w->what);
}

/* The fiber's half: consume a kept edge, or park as d's WAIT until an
 * edge, the close or a cancellation. */
static WEFT_FIBER_FN int sock_dir_wait(struct weft_task *self,
	struct weft__sock *s, struct weft__sock_dir *d, const char *what)
{
	/* acquire: pairs with the release of whoever stored the state (a
	 * close's DEAD, an edge's READY: nothing to read, but the order
	 * keeps the word's story simple). */
	uint64_t w = atomic_load_explicit(&d->word, memory_order_acquire);
	bool parked = false;
	struct sock_wait_desc desc = { .s = s, .what = what };
	struct weft_scope *sc = NULL;
	for (;;) {
		switch (w & SOCK_STATE) {
		case SOCK_READY:
			if (parked && weft__scope_is_cancelled(sc)) {
				/* Keep the edge for the next wait: the
				 * cancelled wait consumed nothing. */
				weft__scope_note_observed(
					weft__scope_origin(sc));
				return -ECANCELED;
			}
			/* acquire on both: as the load above. */
			if (atomic_compare_exchange_weak_explicit(&d->word, &w,
				    w & ~SOCK_STATE, memory_order_acquire,
				    memory_order_acquire))
				return 0;
			continue;
		case SOCK_DEAD: return WEFT_ECLOSED;
		case SOCK_WAIT:
			if (!parked)
				return -EBUSY; /* another task's wait */
			break;
		default: break; /* NIL */
		}
		if (!parked) {
			/* Reachable by cancellations from now on. */
			weft__task_link_root(self);
			/* relaxed: our own cur_scope, written only by us. */
			sc = atomic_load_explicit(&self->cur_scope,
				memory_order_relaxed);
			/* relaxed: published by the install's release. */
			atomic_store_explicit(&d->task, self,
				memory_order_relaxed);
		}
		uint64_t gen = weft__task_park_prepare(self, true);
		/* relaxed: published by the install's release. */
		atomic_store_explicit(&d->gen, gen, memory_order_relaxed);
		/* A new sequence at every install: a post that read the
		 * previous WAIT's gen fails its CAS (invariant 3).  release:
		 * task and gen before the word; acquire on failure: as the
		 * load above. */
		uint64_t mine = ((w >> 2) + 1) << 2 | SOCK_WAIT;
		if (!atomic_compare_exchange_strong_explicit(&d->word, &w, mine,
			    memory_order_release, memory_order_acquire))
			continue; /* an edge or the close came: look again */
		parked = true;
		w = mine;
		/* seq_cst load after prepare's seq_cst store: a canceller
		 * either is seen here or sees the cancellable park. */
		if (weft__scope_is_cancelled(sc)) {
			/* Withdraw.  acquire both ways, as the load above
			 * (nothing to publish). */
			if (atomic_compare_exchange_strong_explicit(&d->word,
				    &w, w & ~SOCK_STATE, memory_order_acquire,
				    memory_order_acquire)) {
				weft__scope_note_observed(
					weft__scope_origin(sc));
				return -ECANCELED;
			}
			continue; /* READY (kept above) or DEAD */
		}
		weft__task_park_commit_obj(self, what, WEFT__WAIT_SOCK, &desc);
		/* acquire: pairs with the post's release CAS. */
		w = atomic_load_explicit(&d->word, memory_order_acquire);
		/* Still ours: woken by a cancellation; the loop reinstalls
		 * with a new generation, and checks the scope. */
	}
}

int weft__sock_wait(struct weft__sock *s, int event, const char *what)
{
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	/* REGISTERED is set inside the gate so that the close either sees
	 * it (and takes fd out of the set) or this wait is refused. */
	if (!weft__sock_enter(s))
		return WEFT_ECLOSED;
	/* Relaxed: the leave's release carries it to the closer. */
	atomic_fetch_or_explicit(&s->gate, SOCK_REGISTERED,
		memory_order_relaxed);
	rc = sock_join_set(s);
	weft__sock_leave(s);
	if (rc < 0)
		return rc;
	weft__timer_t *tm = &self->rt->timer;
	/* The virtual clock stands still while the outside world may end
	 * the wait (ioop.c says why).  Taken and dropped on a worker, the
	 * fiber's (timer.c, Q3). */
	weft__timer_hold(tm, 1);
	rc = sock_dir_wait(self, s, &s->dir[event == UV_WRITABLE], what);
	weft__timer_hold(tm, -1);
	return rc;
}

/* }======================================================= */

/* {======================================================= foreign descriptors (I/O thread) */

/* The slot of s that a waiter for `event` occupies. */
static struct weft__sock_waiter **sock_slot(struct weft__sock *s, int event)
{
	return event == UV_READABLE ? &s->rd : &s->wr;
}

/* Takes every entry of wt out of its socket's slot (those that are in
 * one).  Returns whether any was.  I/O thread. */
static bool sock_wait_unlink(struct weft__sock_wait *wt)
{
	bool linked = false;
	for (size_t i = 0; i < wt->n; i++) {
		struct weft__sock_waiter *e = &wt->entries[i];
		struct weft__sock_waiter **slot = sock_slot(e->s, e->event);
		if (*slot == e) {
			*slot = NULL;
			linked = true;
		}
	}
	return linked;
}

/* An edge for one direction: completes its waiter's wait, or is kept. */
static void sock_edge(struct weft__sock_waiter **slot, bool *ready)
{
	struct weft__sock_waiter *w = *slot;
	if (w == NULL) {
		*ready = true;
		return;
	}
	struct weft__sock_wait *wt = w->wait;
	if (wt->n == 1)
		*slot = NULL; /* a stream's or listener's wait */
	else
		(void)sock_wait_unlink(wt);
	w->fired = true;
	weft__ioop_complete(&wt->op, 0);
}

/* The epoll set is readable: drain it and dispatch (invariant 4). */
static void sock_dispatch(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	weft__io_t *io = h->data;
	struct epoll_event ev[64];
	int n;
	do {
		n = epoll_wait(io->sock_epfd, ev, 64, 0);
		for (int i = 0; i < n; i++) {
			struct weft__sock *s = ev[i].data.ptr;
			uint32_t e = ev[i].events;
			/* An error or hang-up wakes both directions: their
			 * system calls report it exactly. */
			bool err = e & (EPOLLERR | EPOLLHUP);
			if (err || (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)))
				sock_edge(&s->rd, &s->rd_ready);
			if (err || (e & EPOLLOUT))
				sock_edge(&s->wr, &s->wr_ready);
		}
	} while (n == 64);
}

/* Creates the runtime's socket epoll set at the first wait and makes
 * sure it is watched. */
static int sock_epoll_open(weft__io_t *io)
{
	if (io->sock_epfd < 0) {
		int fd = epoll_create1(EPOLL_CLOEXEC);
		if (fd < 0)
			return -errno;
		int rc = uv_poll_init(&io->loop, &io->sock_poll, fd);
		if (rc < 0) {
			close(fd);
			return weft__io_uverr(rc);
		}
		/* From here the handle is closed by the stop's uv_walk and
		 * the set by weft__io_stop. */
		io->sock_poll.data = io;
		io->sock_epfd = fd;
	}
	if (uv_is_active((uv_handle_t *)&io->sock_poll))
		return 0;
	return weft__io_uverr(
		uv_poll_start(&io->sock_poll, UV_READABLE, sock_dispatch));
}

/* Asks poll(2) whether e's descriptor is ready for its direction now
 * (an error or hang-up counts: the owner's call reports it). */
static bool sock_poll_ready(const struct weft__sock_waiter *e)
{
	struct pollfd p = { .fd = e->s->fd,
		.events = e->event == UV_READABLE ? POLLIN : POLLOUT };
	return poll(&p, 1, 0) > 0;
}

static void sock_wait_start(weft__io_t *io, struct weft__ioop *op)
{
	struct weft__sock_wait *wt = WEFT__CONTAINER_OF(op,
		struct weft__sock_wait, op);
	/* First pass: closed sockets, the epoll set, what is ready now. */
	bool fired = false;
	for (size_t i = 0; i < wt->n; i++) {
		struct weft__sock_waiter *e = &wt->entries[i];
		struct weft__sock *s = e->s;
		if (s->io_closed) {
			e->fired = true;
			weft__ioop_complete(op, WEFT_ECLOSED);
			return;
		}
		if (!s->in_epoll) {
			int rc = sock_epoll_open(io);
			struct epoll_event ev = { .events = SOCK_EVENTS,
				.data.ptr = s };
			if (rc == 0 &&
				epoll_ctl(io->sock_epfd, EPOLL_CTL_ADD, s->fd,
					&ev) < 0)
				rc = -errno;
			if (rc < 0) {
				weft__ioop_complete(op, rc);
				return;
			}
			s->in_epoll = true;
		}
		bool *ready = e->event == UV_READABLE ? &s->rd_ready
						      : &s->wr_ready;
		if (wt->level) {
			/* A kept edge says nothing about now: poll decides,
			 * and an edge after this poll is dispatched after
			 * this function linked the entry. */
			*ready = false;
			e->fired = sock_poll_ready(e);
		} else {
			e->fired = *ready; /* an edge came meanwhile */
			*ready = false;
		}
		fired |= e->fired;
	}
	if (fired) {
		weft__ioop_complete(op, 0); /* retry now */
		return;
	}
	/* Second pass: park every entry in its slot. */
	for (size_t i = 0; i < wt->n; i++) {
		struct weft__sock_waiter *e = &wt->entries[i];
		struct weft__sock_waiter **slot = sock_slot(e->s, e->event);
		if (*slot != NULL) {
			(void)sock_wait_unlink(wt);
			weft__ioop_complete(op, -EBUSY);
			return;
		}
		*slot = e;
	}
}

static void sock_wait_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct weft__sock_wait *wt = WEFT__CONTAINER_OF(op,
		struct weft__sock_wait, op);
	if (!sock_wait_unlink(wt))
		return; /* completed already (invariant 3) */
	weft__ioop_complete(op, -ECANCELED);
}

/* The close's part on the I/O thread: s is closed for waits, its waiters
 * are woken with WEFT_ECLOSED, and it leaves the epoll set.  A wait with
 * both directions of s (or several sockets) is completed once. */
static void sock_detach(weft__io_t *io, struct weft__sock *s)
{
	s->io_closed = true;
	struct weft__sock_waiter *w;
	/* Each slot read after the previous completion's unlink. */
	while ((w = s->rd != NULL ? s->rd : s->wr) != NULL) {
		(void)sock_wait_unlink(w->wait);
		w->fired = true;
		weft__ioop_complete(&w->wait->op, WEFT_ECLOSED);
	}
	if (s->in_epoll) {
		struct epoll_event ev = { 0 };
		(void)epoll_ctl(io->sock_epfd, EPOLL_CTL_DEL, s->fd, &ev);
		s->in_epoll = false;
	}
}

struct sock_forget {
	struct weft__ioop op;
	struct weft__sock *s;
};

static void sock_forget_start(weft__io_t *io, struct weft__ioop *op)
{
	struct sock_forget *f = WEFT__CONTAINER_OF(op, struct sock_forget, op);
	sock_detach(io, f->s);
	weft__ioop_complete(op, 0);
}

int weft__sock_forget(struct weft__sock *s)
{
	struct sock_forget f = { .s = s };
	f.op.start = sock_forget_start;
	f.op.what = "fd unregister";
	return weft__ioop_run_shielded(&f.op);
}

/* }======================================================= */

int weft__sock_wait_set(struct weft__sock_wait *wt, const char *what)
{
	for (size_t i = 0; i < wt->n; i++) {
		wt->entries[i].wait = wt;
		wt->entries[i].fired = false;
	}
	wt->op.start = sock_wait_start;
	wt->op.cancel = sock_wait_cancel;
	wt->op.what = what;
	/* The dump names the first descriptor of a set. */
	wt->op.fd_plus1 = wt->n > 0 ? wt->entries[0].s->fd + 1 : 0;
	return weft__ioop_run(&wt->op);
}
