/* The socket core (sock.h): direct system calls on workers, readiness
 * waits that any thread ends, and a close that never pulls a descriptor
 * out from under a system call.
 *
 * Problem: workers call recv/send/accept4 on the descriptor while it may
 * be in the runtime's epoll set.  Once close(2) runs, the number can be
 * reused by any open in the process, so no worker may still be inside a
 * system call on it, and it must have left the set.  And a task that
 * waits for readiness should cost as little as Go's netpoller: no hop
 * through another thread between the edge and the task running again.
 *
 * The gate word orders the close after every system call.
 *   - A direct system call enters with fetch_add(INSIDE) and leaves with
 *     fetch_sub(INSIDE); an enter that finds CLOSED backs out and makes no
 *     call.
 *   - A task about to wait sets REGISTERED while inside (between enter
 *     and leave), and adds the descriptor to the set there: from then on
 *     it may be in the set.
 *   - Close sets CLOSED (fetch_or) and puts DEAD in both waiter words
 *     (below), waking whoever waits.  Whoever then sees CLOSED with
 *     nobody inside and POSTED clear (the closer, or the last task
 *     leaving) sets POSTED with a CAS, so exactly one thread finishes the
 *     close, on whatever thread it is: with REGISTERED set it removes the
 *     descriptor from the set (epoll_ctl DEL), then it closes it.
 * Every gate update is an RMW of one atomic, so they are totally ordered:
 * a task either entered before CLOSED (the close waits for it to leave,
 * and then sees its REGISTERED and its epoll_ctl ADD done) or sees CLOSED
 * and does nothing.  Nobody waits for anybody: the last one out finishes
 * the close.
 *
 * Waiter words.  Every socket that ever waited is in one epoll set per
 * runtime (io.h: net_epfd), edge-triggered, registered once for input
 * and output, so a wait costs no epoll_ctl at all.  Each direction of a
 * socket (dir[0] read, dir[1] write) has one atomic word,
 *
 *   word = seq << 2 | NIL, READY, DEAD or WAIT
 *
 * and beside it the waiter's task and park generation, valid while the
 * state is WAIT.  (Go keeps one word per direction holding nil, ready or
 * the goroutine; here a wake needs a task and a generation, two words,
 * so the sequence number stands in for the pointer's identity.)
 *   - A wait (the fiber): a READY found is consumed (CAS READY -> NIL)
 *     and the wait returns 0 at once (retry the system call); DEAD
 *     returns WEFT_ECLOSED.  Otherwise it writes task and gen (relaxed),
 *     prepares its park and installs WAIT with a new sequence (CAS,
 *     release), then parks.  Woken, it reads the word (acquire): READY
 *     or DEAD is its result; its own WAIT still there means a
 *     cancellation woke it, and it installs itself again with a new
 *     generation and a new sequence before it looks at its scope.
 *   - An edge (any thread that polls): CAS the word to READY unless it is
 *     READY or DEAD already; if it held WAIT, the task and gen read
 *     between the acquire load of the word and the CAS are that WAIT's
 *     (invariant 3), and it wakes them.  A READY left while nobody
 *     waited is a kept edge: the next wait returns at once.  A kept edge
 *     may be stale (the worker's next system call already took the
 *     data): the waiter then retries, finds EAGAIN, and waits again.
 *   - A cancellation: the cancelled waiter CASes its WAIT back to NIL;
 *     if an edge or the close took the word first, READY is left in it
 *     (the cancelled wait consumed nothing; the next wait finds it) and
 *     DEAD ends it with WEFT_ECLOSED.
 *   - The close: DEAD goes in as an edge's READY would, but over READY
 *     too, and stays for the rest of the life: every later wait returns
 *     WEFT_ECLOSED without parking.
 *   - Urgent data, the peer's end, a hang-up or an error (an event with
 *     EPOLLPRI, which the set asks for, EPOLLRDHUP, EPOLLHUP or
 *     EPOLLERR): the poller sets the socket's `sticky` before its post,
 *     and posts READY even over a READY (a release RMW), so whoever
 *     consumes that edge sees the mark; streams then stop trusting
 *     short reads (stream.c, "Short reads").
 * Whoever moves the word off a WAIT completes that wait, exactly once:
 * the word is the only place a WAIT can be taken from, and the waiter
 * itself only withdraws with a CAS.  After its CAS a waker touches only
 * the task record (type-stable) through weft__task_wake, whose stale
 * generations are no-ops (core/task.c), so the waiter may return as soon
 * as it sees the word move.  The first registration reports the
 * socket's current state, so a socket that became ready before its first
 * wait is not missed; a wait that races with its own registration finds
 * the edge as READY.
 *
 * Who polls (core/idle.c, "Polling sockets").  Any thread may drain the
 * set (weft__sock_poll): an idle worker before and while it spins, the
 * one worker that sleeps in epoll_wait on the set (which also holds an
 * eventfd its wake-up writes) instead of its futex, and busy workers
 * from their loop at yields and every 61 picks.  The first task a poll
 * readies goes to the polling worker's own run-next slot, so an echo's
 * round trip costs the worker's epoll_wait and nothing else; the others
 * go to the injection queue in event order (sock_ready_publish says
 * why not to the worker's own deque).  The I/O thread polls the
 * set only for a seeded runtime (its workers take turns and never
 * block in a poll, core/baton.c).
 *
 * Memory.  The record's life word (io.h) counts the descriptor (dropped
 * once it is closed), each call in progress (taken by the call's handle
 * check, in the same CAS that checks the handle) and the closer (taken
 * by the close's CAS, dropped when weft__sock_close has returned: a task
 * leaving its system call may finish the close and drop the other
 * references meanwhile); free_fn runs at zero and gives the record back
 * to the runtime's pool.  A task parked at close time is woken before
 * the descriptor's reference goes and still holds its own.  An epoll
 * event names its socket by address and by the tag of the life it
 * joined the set in (the generation's upper half, 16 bits), and a poller
 * takes a reference for the event's processing only if the record is
 * alive in that life (sock_take_tagged: references held, tag equal, one
 * CAS); a record in the pool (no references) or in a later life is not
 * touched beyond its life word, which records never poison.  Records
 * stay type-stable while the runtime lives (io.h), so that word can
 * always be read.
 *
 * Invariants
 *   1. No system call on fd starts after CLOSED is set, and close(fd)
 *      runs only after every started one ended and (REGISTERED) fd left
 *      the set.
 *   2. A waiter word holds DEAD from the close to the end of the life;
 *      nothing replaces DEAD.
 *   3. A WAIT with sequence k is installed once (sequences only grow at
 *      installs), and its task and gen are written before it (release)
 *      and rewritten only after it left the word (one waiter per
 *      direction at a time: the callers' side flags, `reading`,
 *      `writing`, `accepting`, or a connect's private stream); so a CAS
 *      that takes (k, WAIT) out proves that the task and gen read after
 *      the acquire load of (k, WAIT) are that waiter's.  Formally: a
 *      newer writer read the word (acquire) after our CAS wrote it
 *      (release), so our reads happen before its writes.
 *   4. Whoever takes a WAIT out of the word (edge, close, or the waiter
 *      withdrawing itself) completes that wait, once.
 *   5. An event is acted upon only under a reference taken against its
 *      life's tag; so a poller never touches a freed record's state, and
 *      one reused since sees at most a spurious READY, which waits
 *      tolerate.  The tag wraps after 65536 lives of one record: a
 *      stale event delayed that long would be such a spurious edge.
 *
 * Foreign descriptors (fdwait.c) keep the older protocol, on the I/O
 * thread: their own epoll set (io.h: sock_epfd), watched by a uv_poll_t,
 * and waits that are I/O operations (ioop.h), which may span several
 * descriptors and directions (weft__sock_wait_set: each entry takes its
 * slot, the first edge unlinks them all and completes the wait once) and
 * are level-triggered (their start asks poll(2) instead of trusting kept
 * edges).  Start, edge, cancellation and unregistration all run on the
 * I/O thread, so its fields need no atomics: in_epoll, io_closed,
 * rd_ready, wr_ready, rd and wr are that thread's, rd/wr are set only
 * while their waiter is parked, and whoever clears one completes its
 * waiter.  Keeping them there costs their users (a client library's
 * handful of descriptors) a hop per wait and keeps a multi-descriptor
 * wait simple.
 *
 * Rejected: uv_tcp_t streams with uv_read_start/uv_write (every byte would
 * cross to the I/O thread and back, libuv's writev may raise SIGPIPE, and
 * a queued uv_write can only be withdrawn by closing the whole socket);
 * one uv_poll_t per socket (libuv's level-triggered polls must be armed
 * and disarmed around every wait, and uv_poll_start deletes and re-adds
 * the descriptor: three epoll_ctl calls per request on the I/O thread);
 * EPOLLONESHOT re-armed at each wait (no wake-up for traffic nobody
 * waits for, but one epoll_ctl per wait, and a kept edge no longer
 * lets a wait finish without sleeping: weft-httpd under wrk -c100 did
 * about 10% fewer requests/s, 6 alternating runs in one sitting);
 * waits as I/O operations started on the I/O thread, which this file
 * did before (every wait cost an eventfd post and that thread's wake-up,
 * and every edge the injection queue and a futex wake of a worker: B9
 * echo made 22% fewer round trips/s with 28% more server CPU each,
 * docs/benchmarks.md); a waiter struct on the fiber's stack named by
 * the word (an edge that read its fields and then lost a race to a
 * re-wait at the same address would wake a stale generation: the ABA
 * the sequence number prevents); a lock around the system calls (close
 * would have to wait for a worker, or a poller for a worker). */
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

#include "base/alloc.h"
#include "base/common.h"
#include "core/cancel.h"
#include "core/idle.h"
#include "core/inject.h"
#include "core/inspect.h"
#include "core/sched.h"
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
/* The runtime's set also asks for EPOLLPRI: urgent data marks the socket
 * (`sticky`, stream.c's "Short reads"). */
#define SOCK_NET_EVENTS (SOCK_EVENTS | EPOLLPRI)

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
	atomic_init(&s->sticky, false);
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

struct sock_ready;
static void sock_dir_post(struct weft__sock_dir *d, uint64_t to,
	struct sock_ready *rl, bool publish);

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
		/* It may be in the socket set (invariant 1): out before the
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
	sock_dir_post(&s->dir[0], SOCK_DEAD, NULL, false);
	sock_dir_post(&s->dir[1], SOCK_DEAD, NULL, false);
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

/* The tasks one poll readied, in event order, linked through their run
 * queue link (they are claimed, not queued yet: sock_ready_publish). */
struct sock_ready {
	struct weft_task *head, *tail;
	size_t n;
};

/* Puts `to` (READY: an edge; DEAD: the close) into d's word unless it
 * holds DEAD, or READY already when `to` is READY (then, if `publish`,
 * it writes READY over it, a release RMW that hands what this thread
 * wrote before to whoever consumes the edge), and wakes the waiter it
 * took out, if any: at once, or into *rl when rl is not NULL.  Any
 * thread holding a reference on the socket. */
static void sock_dir_post(struct weft__sock_dir *d, uint64_t to,
	struct sock_ready *rl, bool publish)
{
	/* acquire: pairs with the waiter's release CAS that installed a
	 * WAIT, so its task and gen are read below. */
	uint64_t w = atomic_load_explicit(&d->word, memory_order_acquire);
	for (;;) {
		uint64_t st = w & SOCK_STATE;
		if (st == SOCK_DEAD ||
			(st == SOCK_READY && to == SOCK_READY && !publish))
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
			if (t == NULL)
				return;
			if (rl == NULL) {
				weft__task_wake(t, gen);
			} else if (weft__task_wake_deferred(t, gen)) {
				t->next = NULL;
				if (rl->tail)
					rl->tail->next = t;
				else
					rl->head = t;
				rl->tail = t;
				rl->n++;
			}
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
	struct epoll_event ev = { .events = SOCK_NET_EVENTS,
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
static void sock_net_event(uint64_t data, uint32_t e, struct sock_ready *rl)
{
	struct weft__sock *s = (struct weft__sock *)(uintptr_t)(data &
		SOCK_PTR_MASK);
	if (!sock_take_tagged(s, (uint16_t)(data >> SOCK_PTR_BITS)))
		return; /* closed and freed, or in another life */
	/* An error or hang-up wakes both directions: their system calls
	 * report it exactly. */
	bool err = e & (EPOLLERR | EPOLLHUP);
	/* Urgent data, the end, an error: marked before the edge that
	 * brings them, and published by the post's release RMW, even over
	 * a kept READY (stream.c, "Short reads": whoever consumes this edge
	 * sees the mark).  relaxed: ordered by that RMW. */
	bool sticky = err || (e & (EPOLLPRI | EPOLLRDHUP));
	if (sticky)
		atomic_store_explicit(&s->sticky, true, memory_order_relaxed);
	if (err || (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)))
		sock_dir_post(&s->dir[0], SOCK_READY, rl, sticky);
	if (err || (e & EPOLLOUT))
		sock_dir_post(&s->dir[1], SOCK_READY, rl, false);
	weft__sock_unref(s);
}

/* Makes the tasks of rl runnable: the first on the polling worker's
 * run-next slot (no other thread involved: the common case of one
 * event), the others in the injection queue, oldest first, with one
 * notification for idle workers.  Not all on this worker: its own deque
 * is LIFO, so under a steady stream of polls the oldest connections
 * would wait behind the newest (weft-httpd under wrk -c200 left some
 * unanswered for a second); the injection queue serves them in event
 * order, as Go's netpoll results go to its global queue.  On the I/O
 * thread (seeded runtimes) all go to its batch. */
static void sock_ready_publish(struct weft_runtime *rt, struct sock_ready *rl)
{
	struct weft_task *t = rl->head;
	if (t == NULL)
		return;
	struct weft_task *rest = t->next;
	weft__sched_ready(t);
	if (rest == NULL)
		return;
	if (weft__sched_current() == NULL) {
		while (rest != NULL) {
			t = rest;
			rest = t->next;
			weft__sched_ready(t);
		}
		return;
	}
	weft__inject_push_list(&rt->inject, rest, rl->tail, rl->n - 1);
	weft__idle_notify(rt);
}

/* weft__sock_poll with the I/O side at hand.  The interrupt's eventfd is
 * in the set itself, level-triggered, with data 0 (no socket lives
 * there): every poller sees it until the blocking one, the only one it
 * is written for, reads it.  (A set of its own holding the socket set
 * and the eventfd, waited on by the blocking poller alone, would nest
 * epoll instances, whose wake-ups across a concurrent drain of the
 * inner set by another worker are the kernel's subtlest path; one set
 * waited on by several threads is its common one.) */
static int sock_poll(weft__io_t *io, int timeout_ms)
{
	/* Small: a busy worker polls on the stack of a fiber that is
	 * switching out (core/idle.h). */
	struct epoll_event ev[32];
	struct sock_ready rl = { 0 };
	bool blocking = timeout_ms != 0;
	int total = 0, n;
	do {
		n = epoll_wait(io->net_epfd, ev, 32, timeout_ms);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == 0) {
				if (blocking) {
					uint64_t v;
					ssize_t r = read(io->net_wake, &v,
						sizeof v);
					(void)r; /* EAGAIN: read already */
				}
				continue;
			}
			sock_net_event(ev[i].data.u64, ev[i].events, &rl);
			total++;
		}
		timeout_ms = 0;
	} while (n == 32);
	sock_ready_publish(io->rt, &rl);
	return total;
}

int weft__sock_poll(struct weft_runtime *rt, int timeout_ms)
{
	return sock_poll(rt->io, timeout_ms);
}

int weft__sock_poll_io(weft__io_t *io)
{
	return sock_poll(io, 0);
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
	io->net_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = 0;
	if (io->net_epfd < 0 || io->net_wake < 0)
		rc = -errno;
	/* Level-triggered, data 0: see sock_poll. */
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
	if (rc == 0 &&
		epoll_ctl(io->net_epfd, EPOLL_CTL_ADD, io->net_wake, &ev) < 0)
		rc = -errno;
	if (rc < 0)
		weft__sock_poll_close(io);
	return rc;
}

void weft__sock_poll_close(weft__io_t *io)
{
	int *fds[] = { &io->net_epfd, &io->net_wake };
	for (size_t i = 0; i < 2; i++) {
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
 * edge, the close or a cancellation.  desc says what the task waits on
 * (the dump reads it while the task is parked).  release_call: the parks
 * give the stack back (weft__sock_wait_release); nothing a waker or the
 * dump reads may then be on it: the word, task and gen are in the
 * socket, the scope is a group's, a task's or a weft_scope_t (none is
 * in a frame: sleeps and multi-waits, which keep scopes in frames, do
 * not wait on sockets), and desc is the caller's heap block. */
static WEFT_FIBER_FN int sock_dir_wait(struct weft_task *self,
	struct weft__sock_dir *d, const struct sock_wait_desc *desc,
	const char *release_call)
{
	/* acquire: pairs with the release of whoever stored the state (a
	 * close's DEAD, an edge's READY: nothing to read, but the order
	 * keeps the word's story simple). */
	uint64_t w = atomic_load_explicit(&d->word, memory_order_acquire);
	bool parked = false;
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
		/* Set around the park only: the parks of the checkpoint
		 * and of the return keep the stack (the worker that
		 * switches this task out reads it, sched.c). */
		self->park_release = release_call;
		weft__task_park_commit_obj(self, desc->what, WEFT__WAIT_SOCK,
			desc);
		self->park_release = NULL;
		/* acquire: pairs with the post's release CAS. */
		w = atomic_load_explicit(&d->word, memory_order_acquire);
		/* Still ours: woken by a cancellation; the loop reinstalls
		 * with a new generation, and checks the scope. */
	}
}

static WEFT_FIBER_FN int sock_wait(struct weft__sock *s, int event,
	const char *what, const char *release_call)
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
	struct sock_wait_desc frame = { .s = s, .what = what }, *heap = NULL;
	/* Never on a stack borrowed from a parent (its frames are below
	 * this task's), nor without one, nor inside a weft_par call (its
	 * taken half writes into the caller's frame: core/par.c). */
	if (release_call != NULL && !self->stack_borrowed &&
		self->stack != NULL && self->par == NULL &&
		(heap = weft__alloc(sizeof *heap)) != NULL)
		*heap = frame;
	rc = sock_dir_wait(self, &s->dir[event == UV_WRITABLE],
		heap != NULL ? heap : &frame,
		heap != NULL ? release_call : NULL);
	weft__free(heap);
	weft__timer_hold(tm, -1);
	return rc;
}

int weft__sock_wait(struct weft__sock *s, int event, const char *what)
{
	return sock_wait(s, event, what, NULL);
}

int weft__sock_wait_release(struct weft__sock *s, int event, const char *what,
	const char *release_call)
{
	return sock_wait(s, event, what, release_call);
}

/* }======================================================= */

/* {======================================================= foreign */

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

/* The foreign set is readable: drain it and dispatch.  A foreign record
 * leaves the set (the forget) before its registration's reference goes
 * (fdwait.c), and both run on this thread: an event never names freed
 * memory. */
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
		return; /* completed already ("Foreign descriptors") */
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
