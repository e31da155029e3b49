/* UDP sockets (include/weft/udp.h).
 *
 * Problem: a datagram socket is a libuv handle, which only the I/O thread
 * may touch; but sending a datagram, or receiving one that is already
 * queued, is a single non-blocking system call, and a round trip through
 * the I/O thread for each would cost two thread hand-offs per datagram.
 *
 * Approach: direct calls first, the I/O thread when they would block.
 *   - send: sendto(MSG_DONTWAIT | MSG_NOSIGNAL) on the worker with the
 *     socket's descriptor (uv_fileno, read once at open).  On EAGAIN the
 *     datagram goes through uv_udp_send, which queues it and writes it
 *     when the socket is writable; the task parks until then.  A queued
 *     uv_udp_send cannot be withdrawn short of closing the handle, so
 *     that slow path is uncancellable (`cancel` NULL): UDP send buffers
 *     drain by themselves, so the wait is short.
 *   - recv: recvfrom(MSG_DONTWAIT | MSG_TRUNC) on the worker; on EAGAIN
 *     the task parks in an I/O operation whose `start` calls
 *     uv_udp_recv_start with an alloc callback that hands libuv the
 *     caller's buffer, and whose receive callback stops receiving before
 *     completing, so libuv reads exactly one datagram.  Cancelling it
 *     (`cancel`, on the I/O thread) stops receiving and completes with
 *     -ECANCELED; the receive callback and `cancel` both run on the I/O
 *     thread, so exactly one of them finishes the operation, and a
 *     cancelled receive consumed nothing.  Truncation (MSG_TRUNC, or
 *     UV_UDP_PARTIAL) becomes -EMSGSIZE.
 *
 * The direct paths touch the descriptor from workers while the I/O thread
 * owns the handle.  Once weft_udp_close's uv_close has closed the
 * descriptor its number may be reused by any open in the process, so no
 * direct call may start or still run then.  The `gate` word guards that:
 * CLOSED, POSTED and the number of tasks inside a direct system call.
 *   - A direct call enters with an RMW that adds one; if CLOSED was set it
 *     leaves at once without the system call.
 *   - Close sets CLOSED with an RMW; whoever then finds the word at
 *     exactly CLOSED with no task inside (the closer, or the last task
 *     leaving) moves it to CLOSED | POSTED with a CAS and posts the close
 *     to the I/O thread.  The CAS makes the post happen once.
 * All RMWs of one atomic are totally ordered, so a direct call either
 * entered before CLOSED (and the close waits for it to leave) or sees
 * CLOSED and makes no system call: uv_close never runs while a direct
 * call can touch the descriptor.  Nobody ever waits: the last one out
 * does the post.
 *
 * Memory: a UDP socket is a socket record (io.h): users hold
 * generation-tagged handles, and the record's life word counts the libuv
 * handle (dropped by the close callback, the only point where libuv lets
 * the handle's memory go) and each call in progress, the close included:
 * its CAS in udp_try_post may come after a leaving task posted the close
 * and the I/O thread finished it.  A call's reference is taken in the
 * same CAS that checks its handle (weft__io_rec_take), so a call either
 * holds u in its open life until it returns, or finds the handle closed
 * and touches nothing but the life word: it returns WEFT_ECLOSED, as
 * include/weft/udp.h promises a call racing the close (every earlier life
 * of a record ended with a close, so a handle of any other generation is
 * a closed one).  A second close is a misuse (reported).  A task parked
 * at close time is woken with WEFT_ECLOSED before the handle's close
 * callback, and still touches u (its `receiving` flag, its reference)
 * after waking: the reference keeps u alive until then.  The last
 * reference gives the record back to the runtime's pool: after the close
 * no reference can be taken, so the count reaches 0 once.
 *
 * Invariants
 *   1. The handle, `rx` and `io_closed` are the I/O thread's only.
 *   2. At most one receiver: `receiving` (exchange) guards both the direct
 *      recvfrom and the libuv receive, so they never run at once.
 *   3. libuv receives only while `rx` is set; whoever clears `rx` (the
 *      receive callback, `cancel`, the close) stops receiving first and
 *      completes the operation.
 *   4. No direct system call on the descriptor after the close's post
 *      (the gate above).
 *
 * Rejected: every datagram through the I/O thread (two hand-offs each,
 * and the I/O thread becomes the bottleneck for every socket); a lock
 * around the direct calls and the close (the close would have to wait for
 * a worker, or a worker for the I/O thread); uv_udp_try_send from workers
 * (libuv calls are not thread-safe). */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/common.h"
#include "base/spin.h"
#include "core/task.h"
#include "io/io.h"
#include "io/ioop.h"
#include "io/sock.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "weft/dns.h"
#include "weft/udp.h"

#define UDP_CLOSED 1u
#define UDP_POSTED 2u
#define UDP_INSIDE 4u /* one task inside a direct system call */

struct udp_recv;

struct weft_udp {
	/* First: the record's life word (generation and references: the
	 * libuv handle + calls in progress + a closer) is at the handle's
	 * address. */
	struct weft__io_rec rec;
	struct weft_runtime *rt;
	int fd;		       /* set at open; direct calls only
					* under the gate */
	int port;	       /* set at open */
	int family;	       /* AF_INET, AF_INET6 or AF_UNIX */
	_Atomic unsigned gate; /* CLOSED | POSTED | n * INSIDE */
	atomic_bool receiving; /* a task is inside weft_udp_recv */
	/* weft_udp_connect succeeded: a send takes no address (libuv's
	 * rule, which the direct sendto path keeps too: Linux would send
	 * to the address given). */
	atomic_bool connected;
	/* AF_UNIX only: the connected peer, for sends that go through libuv
	 * (whose uv_udp_connect takes no UNIX address, so the handle does
	 * not know it is connected); under peer_lock, as a connect may
	 * replace it while a send copies it. */
	weft__spin_t peer_lock;
	struct sockaddr_un peer;
	struct weft__ioq_node close_node;
	/* I/O thread only (invariant 1). */
	uv_udp_t handle;
	struct udp_recv *rx; /* the parked receive, or NULL */
	bool io_closed;	     /* the close ran */
};

struct udp_open {
	struct weft__ioop op;
	struct weft_udp *u;
	const struct sockaddr *addr;
	/* A UNIX datagram socket: bound to un (a path), or, with autobind,
	 * to an abstract name the kernel picks. */
	bool unix_dgram, autobind;
	struct sockaddr_un un;
	int rc; /* I/O thread: bind's error */
};

struct udp_recv {
	struct weft__ioop op;
	struct weft_udp *u;
	char *buf;
	size_t len;
	/* Results, written by the I/O thread before the completion. */
	ssize_t n;
	struct sockaddr_storage from;
	socklen_t fromlen;
};

struct udp_send {
	struct weft__ioop op;
	struct weft_udp *u;
	uv_udp_send_t req;
	uv_buf_t buf;
	const struct sockaddr *to;
	struct sockaddr_un peer; /* a connected UNIX socket's `to` */
};

/* The length of a datagram address: IPv4, IPv6 or UNIX; 0 for any
 * other family.  A UNIX address's length is part of it for an abstract
 * name (sun_path[0] == 0: the name is the bytes that follow, up to the
 * length), so one without a length ends at its last non-NUL byte, as
 * the kernel's autobind names (five hex digits) do; a path ends at its
 * NUL. */
static socklen_t udp_addr_len(const struct sockaddr *sa)
{
	if (sa->sa_family != AF_UNIX)
		return weft__sock_addr_len(sa);
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
	size_t max = sizeof un->sun_path, n;
	if (un->sun_path[0] != '\0') {
		n = strnlen(un->sun_path, max);
		n += n < max; /* the NUL */
	} else {
		n = max;
		while (n > 1 && un->sun_path[n - 1] == '\0')
			n--;
	}
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* libuv sends to a UNIX address with the whole struct's length, which
 * names another socket when the address is abstract. */
static bool udp_uv_can_address(const struct sockaddr *sa)
{
	return sa == NULL || sa->sa_family != AF_UNIX ||
		((const struct sockaddr_un *)sa)->sun_path[0] != '\0';
}

/* {======================================================= lifetime */

/* Takes a call's reference on handle h's socket (the handle check,
 * io.h); NULL (nothing held) if h's socket was closed. */
static struct weft_udp *udp_take(const weft_udp_t *h)
{
	if (weft__io_rec_take(h) != WEFT__IO_REC_TAKEN)
		return NULL;
	return weft__handle_addr(h);
}

static void udp_unref(struct weft_udp *u)
{
	/* The ordering is the life word's (weft__io_rec_unref); the last
	 * reference gives the record back (no call can take one after the
	 * close, and the close callback has run). */
	if (weft__io_rec_unref(&u->rec))
		weft__io_rec_put(u->rt, WEFT__IO_REC_UDP, &u->rec);
}

static void udp_close_fn(struct weft_runtime *rt, struct weft__ioq_node *n);

/* Posts the close if the gate is exactly CLOSED (nobody inside, not
 * posted yet).  Any thread. */
static void udp_try_post(struct weft_udp *u)
{
	unsigned expect = UDP_CLOSED;
	/* acq_rel: acquires the leaving tasks' releases (their system calls
	 * are over); the post's own release then carries that to the I/O
	 * thread.  Only one CAS can succeed. */
	if (atomic_compare_exchange_strong_explicit(&u->gate, &expect,
		    UDP_CLOSED | UDP_POSTED, memory_order_acq_rel,
		    memory_order_relaxed)) {
		u->close_node.fn = udp_close_fn;
		weft__ioq_post(u->rt, &u->close_node);
	}
}

/* Enters a direct system call section; false (and nothing entered) if u
 * is closing. */
static bool udp_enter(struct weft_udp *u)
{
	/* acq_rel: totally ordered with the close's fetch_or (same atomic). */
	unsigned old = atomic_fetch_add_explicit(&u->gate, UDP_INSIDE,
		memory_order_acq_rel);
	if (!(old & UDP_CLOSED))
		return true;
	/* acq_rel: backing out, as udp_leave (no system call was made). */
	atomic_fetch_sub_explicit(&u->gate, UDP_INSIDE, memory_order_acq_rel);
	/* The close was posted already or will be by whoever is inside;
	 * this task never counted for it, but may be the last one out. */
	udp_try_post(u);
	return false;
}

static void udp_leave(struct weft_udp *u)
{
	/* acq_rel: the release orders the system call before a close that
	 * reads this value (pairs with udp_try_post's acquire). */
	unsigned old = atomic_fetch_sub_explicit(&u->gate, UDP_INSIDE,
		memory_order_acq_rel);
	if (old - UDP_INSIDE == UDP_CLOSED)
		udp_try_post(u);
}

/* }======================================================= */

/* {======================================================= I/O thread */

static void udp_handle_closed(uv_handle_t *h)
{
	struct weft_udp *u = h->data;
	udp_unref(u); /* the handle's reference */
}

static void udp_close_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	(void)rt;
	struct weft_udp *u = WEFT__CONTAINER_OF(n, struct weft_udp, close_node);
	u->io_closed = true;
	struct udp_recv *r = u->rx;
	if (r != NULL) {
		uv_udp_recv_stop(&u->handle);
		u->rx = NULL;
		weft__ioop_complete(&r->op, WEFT_ECLOSED);
	}
	/* Cancels queued sends (their callbacks get UV_ECANCELED before the
	 * close callback) and closes the descriptor now. */
	uv_close((uv_handle_t *)&u->handle, udp_handle_closed);
}

static void udp_open_failed(uv_handle_t *h)
{
	struct udp_open *o = h->data;
	/* The handle is gone: the fiber may free u. */
	weft__ioop_complete(&o->op, o->rc);
}

/* A UNIX datagram socket for o, bound; -errno if it cannot be made.
 * libuv's uv_udp_bind takes IP addresses only, and uv_udp_open takes any
 * datagram socket. */
static int udp_unix_socket(struct udp_open *o)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Autobind: an address of the family alone makes Linux pick an
	 * abstract name, so that the peers can answer. */
	socklen_t len = o->autobind ? (socklen_t)sizeof(sa_family_t)
				    : (socklen_t)sizeof o->un;
	if (bind(fd, (struct sockaddr *)&o->un, len) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

static void udp_open_start(weft__io_t *io, struct weft__ioop *op)
{
	struct udp_open *o = WEFT__CONTAINER_OF(op, struct udp_open, op);
	struct weft_udp *u = o->u;
	int ufd = -1;
	if (o->unix_dgram) {
		ufd = udp_unix_socket(o);
		if (ufd < 0) {
			weft__ioop_complete(op, ufd);
			return;
		}
	}
	int rc = uv_udp_init(&io->loop, &u->handle);
	if (rc < 0) {
		if (ufd >= 0)
			close(ufd);
		weft__ioop_complete(op, weft__io_uverr(rc));
		return;
	}
	u->handle.data = o;
	if (o->unix_dgram) {
		rc = uv_udp_open(&u->handle, ufd);
		if (rc < 0)
			close(ufd); /* not the handle's */
	} else {
		rc = uv_udp_bind(&u->handle, o->addr, 0);
	}
	uv_os_fd_t fd = -1;
	if (rc == 0)
		rc = uv_fileno((uv_handle_t *)&u->handle, &fd);
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	if (rc == 0)
		rc = uv_udp_getsockname(&u->handle, (struct sockaddr *)&ss,
			&sl);
	if (rc < 0) {
		o->rc = weft__io_uverr(rc);
		uv_close((uv_handle_t *)&u->handle, udp_open_failed);
		return;
	}
	u->fd = fd;
	u->family = ss.ss_family;
	u->port = ss.ss_family == AF_INET6
		? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
		: ss.ss_family == AF_INET
		? ntohs(((struct sockaddr_in *)&ss)->sin_port)
		: 0;
	u->handle.data = u;
	weft__ioop_complete(op, 0);
}

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct weft_udp *u = h->data;
	struct udp_recv *r = u->rx;
	/* libuv receives only while rx is set (invariant 3). */
	buf->base = r ? r->buf : NULL;
	buf->len = r ? r->len : 0;
}

static void udp_received(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
	const struct sockaddr *addr, unsigned flags)
{
	(void)buf;
	struct weft_udp *u = h->data;
	struct udp_recv *r = u->rx;
	if (r == NULL)
		return;
	/* libuv's "nothing to read after all" (EAGAIN): keep waiting. */
	if (nread == 0 && addr == NULL)
		return;
	uv_udp_recv_stop(h);
	u->rx = NULL;
	int rc;
	if (nread < 0) {
		rc = weft__io_uverr((int)nread);
	} else {
		r->n = nread;
		rc = (flags & UV_UDP_PARTIAL) ? -EMSGSIZE : 0;
		/* libuv gives no length: a UNIX sender's ends as
		 * udp_addr_len says. */
		socklen_t l = addr ? udp_addr_len(addr) : 0;
		if (l > 0)
			memcpy(&r->from, addr, l);
		r->fromlen = l;
	}
	weft__ioop_complete(&r->op, rc);
}

static void udp_recv_start(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct udp_recv *r = WEFT__CONTAINER_OF(op, struct udp_recv, op);
	struct weft_udp *u = r->u;
	if (u->io_closed) {
		weft__ioop_complete(op, WEFT_ECLOSED);
		return;
	}
	u->rx = r;
	int rc = uv_udp_recv_start(&u->handle, udp_alloc, udp_received);
	if (rc < 0) {
		u->rx = NULL;
		weft__ioop_complete(op, weft__io_uverr(rc));
	}
}

static void udp_recv_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct udp_recv *r = WEFT__CONTAINER_OF(op, struct udp_recv, op);
	struct weft_udp *u = r->u;
	if (u->rx != r)
		return; /* finished already: its completion is on its way */
	uv_udp_recv_stop(&u->handle);
	u->rx = NULL;
	weft__ioop_complete(op, -ECANCELED);
}

static void udp_sent(uv_udp_send_t *req, int status)
{
	struct udp_send *s = WEFT__CONTAINER_OF(req, struct udp_send, req);
	int rc = 0;
	if (status == UV_ECANCELED && s->u->io_closed)
		rc = WEFT_ECLOSED;
	else if (status < 0)
		rc = weft__io_uverr(status);
	weft__ioop_complete(&s->op, rc);
}

static void udp_send_start(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct udp_send *s = WEFT__CONTAINER_OF(op, struct udp_send, op);
	struct weft_udp *u = s->u;
	if (u->io_closed) {
		weft__ioop_complete(op, WEFT_ECLOSED);
		return;
	}
	int rc = uv_udp_send(&s->req, &u->handle, &s->buf, 1, s->to, udp_sent);
	if (rc < 0)
		weft__ioop_complete(op, weft__io_uverr(rc));
}

struct udp_connect {
	struct weft__ioop op;
	struct weft_udp *u;
	const struct sockaddr *addr;
	socklen_t len;
};

static void udp_connect_start(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct udp_connect *c = WEFT__CONTAINER_OF(op, struct udp_connect, op);
	if (c->u->io_closed) {
		weft__ioop_complete(op, WEFT_ECLOSED);
		return;
	}
	/* libuv records the connection too (a connected handle sends
	 * without an address), so it connects, not the worker. */
	int rc = uv_udp_connect(&c->u->handle, c->addr);
	/* Connecting again replaces the peer (weft/udp.h).  libuv refuses
	 * a connected handle, and its way out, a disconnect first, would
	 * let the kernel give a port it chose (bound with port 0) back and
	 * pick another at the next connect.  connect(2) on a connected
	 * datagram socket replaces the peer and keeps the local address;
	 * libuv's state (connected) stays true. */
	if (rc == UV_EISCONN)
		rc = connect(c->u->fd, c->addr, c->len) == 0 ? 0 : -errno;
	else if (rc < 0)
		rc = weft__io_uverr(rc);
	weft__ioop_complete(op, rc);
}

/* }======================================================= */

/* {======================================================= fiber */

/* Opens a socket as o says; *out gets its handle. */
static int udp_open(weft_udp_t **out, struct udp_open *o)
{
	struct weft_runtime *rt = weft__task_current()->rt;
	/* Its one reference is the libuv handle's. */
	struct weft_udp *u = weft__io_rec_get(rt, WEFT__IO_REC_UDP, sizeof *u);
	if (u == NULL)
		return -ENOMEM;
	u->rt = rt;
	u->fd = -1;
	atomic_init(&u->gate, 0);
	atomic_init(&u->receiving, false);
	atomic_init(&u->connected, false);
	weft__spin_init(&u->peer_lock);
	o->u = u;
	o->op.start = udp_open_start;
	o->op.cancel = NULL; /* completes at once, or at the failed close */
	o->op.what = "udp open";
	int rc = weft__ioop_run(&o->op);
	if (rc < 0) {
		/* Not submitted, or the handle is closed already. */
		weft__io_rec_put(rt, WEFT__IO_REC_UDP, &u->rec);
		return rc;
	}
	*out = weft__io_rec_handle(&u->rec);
	return 0;
}

int weft_udp_open(weft_udp_t **out, const char *host, int port)
{
	if (out == NULL || port < 0 || port > 65535)
		return -EINVAL;
	struct sockaddr_storage ss;
	if (host == NULL || host[0] == '\0')
		host = "0.0.0.0";
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	socklen_t sl;
	int rc = weft__sock_resolve(host, port, AF_UNSPEC, SOCK_DGRAM, 0, &ss,
		&sl);
	if (rc < 0)
		return rc;
	struct udp_open o = { .addr = (struct sockaddr *)&ss };
	return udp_open(out, &o);
}

int weft_unix_dgram_open(weft_udp_t **out, const char *path)
{
	if (out == NULL || (path != NULL && path[0] == '\0'))
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	struct udp_open o = { .unix_dgram = true, .autobind = path == NULL };
	if (path != NULL) {
		int rc = weft__sock_addr_un(&o.un, path);
		if (rc < 0)
			return rc;
	} else {
		o.un.sun_family = AF_UNIX;
	}
	return udp_open(out, &o);
}

int weft_udp_connect(weft_udp_t *h, const char *host, int port)
{
	if (h == NULL || host == NULL || port < 1 || port > 65535)
		return -EINVAL;
	struct weft_udp *u = udp_take(h);
	if (u == NULL)
		return WEFT_ECLOSED;
	struct sockaddr_storage ss;
	socklen_t sl;
	/* A UNIX datagram socket connects by path. */
	int rc = u->family == AF_UNIX
		? -EAFNOSUPPORT
		: weft__sock_resolve(host, port, u->family, SOCK_DGRAM, 0, &ss,
			  &sl);
	if (rc == 0 && ss.ss_family != u->family)
		rc = -EAFNOSUPPORT;
	if (rc == 0) {
		struct udp_connect c = { .u = u,
			.addr = (struct sockaddr *)&ss,
			.len = sl };
		c.op.start = udp_connect_start;
		c.op.cancel = NULL; /* completes at once */
		c.op.what = "udp connect";
		rc = weft__ioop_run(&c.op);
	}
	if (rc == 0)
		atomic_store_explicit(&u->connected, true,
			memory_order_relaxed);
	udp_unref(u);
	return rc;
}

int weft_unix_dgram_connect(weft_udp_t *h, const char *path)
{
	if (h == NULL || path == NULL || path[0] == '\0')
		return -EINVAL;
	struct sockaddr_un un;
	int rc = weft__sock_addr_un(&un, path);
	if (rc < 0)
		return rc;
	struct weft_udp *u = udp_take(h);
	if (u == NULL)
		return WEFT_ECLOSED;
	struct weft_task *self;
	rc = weft__waitq_begin(&self);
	if (rc == 0 && u->family != AF_UNIX)
		rc = -EAFNOSUPPORT;
	/* connect(2) on the descriptor, as a direct call: a UNIX datagram
	 * connect never waits (libuv's uv_udp_connect takes IP addresses
	 * only).  The peer is kept for the sends libuv makes. */
	if (rc == 0 && !udp_enter(u))
		rc = WEFT_ECLOSED;
	else if (rc == 0) {
		weft__spin_lock(&u->peer_lock);
		if (connect(u->fd, (struct sockaddr *)&un, sizeof un) < 0)
			rc = -errno;
		else
			u->peer = un;
		weft__spin_unlock(&u->peer_lock);
		udp_leave(u);
	}
	if (rc == 0)
		atomic_store_explicit(&u->connected, true,
			memory_order_relaxed);
	udp_unref(u);
	return rc;
}

int weft_udp_port(const weft_udp_t *h)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_udp *u = udp_take(h);
	if (u == NULL)
		return WEFT_ECLOSED;
	int port = u->port;
	udp_unref(u);
	return port;
}

int weft_udp_send(weft_udp_t *h, const void *buf, size_t len,
	const struct sockaddr *to)
{
	if (h == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	/* NULL: the connected peer (weft_udp_connect). */
	socklen_t tolen = to ? udp_addr_len(to) : 0;
	if (to && tolen == 0)
		return -EAFNOSUPPORT;
	/* The reference comes first, before anything that reads u. */
	struct weft_udp *u = udp_take(h);
	if (u == NULL)
		return WEFT_ECLOSED;
	int rc = -EAFNOSUPPORT;
	if (to && to->sa_family != u->family)
		goto out;
	/* relaxed: a send racing with the connect is the caller's race;
	 * either answer is one of its outcomes. */
	rc = -EISCONN;
	if (to && atomic_load_explicit(&u->connected, memory_order_relaxed))
		goto out;
	struct weft_task *self;
	rc = weft__waitq_begin(&self);
	if (rc < 0)
		goto out;
	if (!udp_enter(u)) {
		rc = WEFT_ECLOSED;
		goto out;
	}
	ssize_t n = sendto(u->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, to,
		tolen);
	/* Unconnected and no address: the kernel's EDESTADDRREQ. */
	int err = n < 0 ? errno : 0;
	udp_leave(u);
	if (n >= 0) {
		rc = 0;
		goto out;
	}
	if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
		rc = -err;
		goto out;
	}
	/* The kernel's buffer is full: let libuv send when it has room. */
	struct udp_send s = { .u = u,
		.to = to,
		.buf = uv_buf_init((char *)(uintptr_t)buf, (unsigned)len) };
	/* A connected UNIX socket: libuv does not know the peer. */
	if (to == NULL && u->family == AF_UNIX) {
		weft__spin_lock(&u->peer_lock);
		s.peer = u->peer;
		weft__spin_unlock(&u->peer_lock);
		s.to = (const struct sockaddr *)&s.peer;
	}
	if (!udp_uv_can_address(s.to)) {
		rc = -EAGAIN; /* udp.h: an abstract peer's full queue */
		goto out;
	}
	s.op.start = udp_send_start;
	s.op.cancel = NULL; /* a queued uv_udp_send cannot be withdrawn */
	s.op.what = "udp send";
	s.op.fd_plus1 = u->fd + 1;
	rc = weft__ioop_run(&s.op);
out:
	udp_unref(u);
	return rc;
}

ssize_t weft_udp_recv(weft_udp_t *h, void *buf, size_t len,
	struct sockaddr_storage *from, socklen_t *fromlen)
{
	if (h == NULL || buf == NULL || len == 0)
		return -EINVAL;
	struct weft_udp *u = udp_take(h); /* first: as in weft_udp_send */
	if (u == NULL)
		return WEFT_ECLOSED;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0) {
		udp_unref(u);
		return rc;
	}
	/* acquire: pairs with the previous receiver's release below, so its
	 * accesses to the socket's receive side came before ours. */
	if (atomic_exchange_explicit(&u->receiving, true,
		    memory_order_acquire)) {
		udp_unref(u);
		return -EBUSY;
	}
	ssize_t result;
	struct udp_recv r = { .u = u, .buf = buf, .len = len };
	if (!udp_enter(u)) {
		result = WEFT_ECLOSED;
		goto out;
	}
	socklen_t sl = sizeof r.from;
	ssize_t n = recvfrom(u->fd, buf, len, MSG_DONTWAIT | MSG_TRUNC,
		(struct sockaddr *)&r.from, &sl);
	int err = n < 0 ? errno : 0;
	udp_leave(u);
	if (n >= 0) {
		r.fromlen = sl;
		if ((size_t)n > len) {
			r.n = (ssize_t)len;
			result = -EMSGSIZE;
		} else {
			r.n = n;
			result = n;
		}
		goto got;
	}
	if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
		result = -err;
		goto out;
	}
	/* Nothing queued: wait for the I/O thread to receive one. */
	r.op.start = udp_recv_start;
	r.op.cancel = udp_recv_cancel;
	r.op.what = "udp recv";
	r.op.fd_plus1 = u->fd + 1;
	rc = weft__ioop_run(&r.op);
	if (rc < 0 && rc != -EMSGSIZE) {
		result = rc;
		goto out;
	}
	result = rc < 0 ? rc : r.n;
got:
	if (from != NULL) {
		memcpy(from, &r.from, r.fromlen);
		/* A UNIX address is passed back to weft_udp_send without
		 * its length (udp_addr_len): nothing of an earlier one may
		 * trail it. */
		if (r.fromlen < sizeof *from && r.from.ss_family == AF_UNIX)
			memset((char *)from + r.fromlen, 0,
				sizeof *from - r.fromlen);
	}
	if (fromlen != NULL)
		*fromlen = r.fromlen;
out:
	/* release: pairs with the next receiver's acquire exchange. */
	atomic_store_explicit(&u->receiving, false, memory_order_release);
	udp_unref(u);
	return result;
}

int weft_udp_close(weft_udp_t *h)
{
	if (h == NULL)
		return -EINVAL;
	/* Closes h's life and takes the closer's own reference in one CAS
	 * (io.h): once CLOSED is set, a task leaving its direct call may
	 * post the close, and the I/O thread may then close the handle and
	 * drop the last other reference while this call is still at its
	 * udp_try_post below.  A second close finds the generation changed
	 * and is reported. */
	if (!weft__io_rec_close(h)) {
		weft__io_rec_misuse(h, "weft_udp_close", "UDP socket");
		return WEFT_EMISUSE;
	}
	struct weft_udp *u = weft__handle_addr(h);
	/* acq_rel: ordered with every enter/leave RMW of the gate; the task
	 * inside (if any) posts the close when it leaves. */
	unsigned old = atomic_fetch_or_explicit(&u->gate, UDP_CLOSED,
		memory_order_acq_rel);
	WEFT_ASSERT(!(old & UDP_CLOSED), "weft_udp_close: gate closed twice");
	udp_try_post(u);
	udp_unref(u);
	return 0;
}

/* }======================================================= */
