/* Streams (include/weft/net.h): reads and writes as direct non-blocking
 * system calls on the calling worker, with a readiness wait (sock.c) when
 * the kernel has nothing to give or no room.
 *
 * Cancellation: a read or write parked in weft__sock_wait withdraws
 * itself with nothing transferred, because the transfer happens
 * only in the system call after the wait.  So:
 *   - a cancelled read consumed nothing;
 *   - a cancelled read_until returns the bytes it had gathered to the
 *     stream (the pushback), so it consumed nothing either; so does one
 *     that meets the end of the stream before its delimiter;
 *   - a cancelled write consumed nothing if it had sent nothing; after a
 *     partial send the stream is marked broken (the peer has a prefix of
 *     a message), and later writes get WEFT_ECLOSED.
 *   - read_exactly reports the bytes it consumed before a cancellation in
 *     *got (a pushback of an arbitrarily large buffer could fail for lack
 *     of memory, and losing bytes is worse than reporting them).
 *
 * A peer reset never raises SIGPIPE: every send uses MSG_NOSIGNAL.
 *
 * Handles: users hold generation-tagged handles of stream records (io.h);
 * every public function checks its handle and takes a reference for the
 * call in one step (stream_take), so a handle whose stream was closed is
 * reported as a misuse (abort in WEFT_DEBUG builds, WEFT_EMISUSE
 * otherwise) instead of reaching a record that may have been reused, and
 * a call that took its reference keeps the record in this life until it
 * returns, whatever another task's close does meanwhile.
 *
 * Short reads.  Read until EAGAIN and every request of a keep-alive
 * connection costs two recvs, one of them for nothing: weft-httpd under
 * wrk made 1.96 recvs per request, the raw libuv server 0.97 (its reads
 * stop when one comes back short).  So a TCP recv that returns fewer
 * bytes than asked (and more than none) sets `drained`, and the next
 * read on the stream waits for readiness first (a kept edge returns at
 * once) and makes its recv after.  Why nothing can be stranded: a short
 * TCP recv stops when the receive queue is empty (data that came in
 * meanwhile waits in the socket's backlog and is queued at the end of
 * the call, with its wake-up), so every byte it leaves comes with an
 * edge raised after it, which the wait finds, exactly as after an
 * EAGAIN.  It also stops short at an urgent mark (the peer sent
 * MSG_OOB), at the peer's end (the next recv returns 0) and at an error
 * (the next recv reports it), and what it leaves then came with an
 * edge that may have been consumed already.  Such an edge reports
 * EPOLLPRI, EPOLLRDHUP, EPOLLHUP or EPOLLERR, and the poller marks the
 * socket `sticky` before it posts the edge (sock.c), so a reader that
 * consumed it sees the mark and stops trusting short reads on that
 * socket (a keep-alive connection meets its end once).  A UNIX stream recv
 * also stops short between messages with different credentials or
 * descriptors, so UNIX streams keep reading until EAGAIN.  Peeks
 * (weft_stream_wait_readable) take the hint (they wait first too) but
 * never set it: a peek consumes nothing.  Any read clears the hint
 * before its first system call, so it covers only the read right after
 * the short one.
 *
 * Invariants
 *   1. `reading` is held across every access to the pushback and to
 *      `drained`; `writing` across every send and `wstate`.
 *   2. read_until reserves its pushback room before it reads, so giving
 *      bytes back never fails.
 *   3. `drained` is set only by a short recv on a TCP socket not marked
 *      sticky, and is cleared by the next read of the socket: while set,
 *      anything a recv would return has an edge not yet consumed. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/records.h"
#include "core/task.h"
#include "io/stream.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "weft/net.h"

/* {======================================================= lifetime */

static void stream_free(struct weft__sock *sk)
{
	struct weft_stream *s = (struct weft_stream *)sk;
	weft__free(s->pb);
	weft__io_rec_put(sk->rt, WEFT__IO_REC_STREAM, &sk->rec);
}

struct weft_stream *weft__stream_alloc(struct weft_runtime *rt)
{
	return weft__io_rec_get(rt, WEFT__IO_REC_STREAM,
		sizeof(struct weft_stream));
}

void weft__stream_discard(struct weft_runtime *rt, struct weft_stream *s)
{
	weft__io_rec_put(rt, WEFT__IO_REC_STREAM, &s->sk.rec);
}

/* The stream behind handle h, with a reference taken for the call, or
 * NULL: h's stream was closed (reported, naming `call`). */
static struct weft_stream *stream_take(weft_stream_t *h, const char *call)
{
	return weft__io_rec_check(h, call, "stream");
}

/* Drops the call's reference taken by stream_take. */
static void stream_drop(struct weft_stream *s)
{
	weft__sock_unref(&s->sk);
}

void weft__stream_init(struct weft_stream *s, struct weft_runtime *rt, int fd,
	bool tcp)
{
	weft__sock_init(&s->sk, rt, fd, stream_free);
	s->tcp = tcp;
	atomic_init(&s->reading, false);
	atomic_init(&s->writing, false);
	if (tcp) {
		/* Latency over batching, as Go and Tokio default to; a
		 * failure only costs latency. */
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			sizeof one);
	}
}

struct weft_stream *weft__stream_new(struct weft_runtime *rt, int fd, bool tcp)
{
	struct weft_stream *s = weft__stream_alloc(rt);
	if (s == NULL) {
		close(fd);
		return NULL;
	}
	weft__stream_init(s, rt, fd, tcp);
	return s;
}

int weft_stream_close(weft_stream_t *h)
{
	if (h == NULL)
		return -EINVAL;
	/* One CAS decides the close and takes the closer's reference: a
	 * second close (or any call after this one) finds the generation
	 * changed and is reported, whether the record is still closing,
	 * free in the pool or another stream's by now (io.h). */
	if (!weft__io_rec_close(h)) {
		weft__io_rec_misuse(h, "weft_stream_close", "stream");
		return WEFT_EMISUSE;
	}
	struct weft_stream *s = weft__handle_addr(h);
	bool first = weft__sock_close(&s->sk);
	WEFT_ASSERT(first, "weft_stream_close: socket closed twice");
	stream_drop(s);
	return 0;
}

/* }======================================================= */

/* {======================================================= reading */

/* Takes the read side: reference, checkpoint, busy flag.  0 or an error
 * (nothing taken). */
static WEFT_FIBER_FN int stream_read_begin(struct weft_stream *s)
{
	struct weft_task *self;
	return weft__sock_call_begin(&s->sk, &s->reading, &self);
}

static void stream_read_end(struct weft_stream *s)
{
	weft__sock_call_end(&s->sk, &s->reading);
}

#ifdef WEFT_DEBUG
atomic_long weft__stream_recv_eagain;
#endif

/* recv(2) on the socket with `flags` (MSG_DONTWAIT added), waiting for
 * data when there is none, or first after a short read ("Short reads"):
 * as a `what` wait, which gives the stack back while parked if
 * release_call is not NULL (weft__sock_wait_release).  > 0 bytes, 0 at
 * end of stream, or an error. */
static WEFT_FIBER_FN ssize_t stream_recv_socket(struct weft_stream *s,
	char *buf, size_t len, int flags, const char *what,
	const char *release_call)
{
	/* Invariant 3: the hint serves this read only. */
	bool wait = s->drained;
	s->drained = false;
	for (;;) {
		if (wait) {
			int rc = weft__sock_wait_release(&s->sk, UV_READABLE,
				what, release_call);
			if (rc < 0)
				return rc;
		}
		if (!weft__sock_enter(&s->sk))
			return WEFT_ECLOSED;
		ssize_t n = recv(s->sk.fd, buf, len, flags | MSG_DONTWAIT);
		int err = n < 0 ? weft__sock_errno() : 0;
		weft__sock_leave(&s->sk);
		if (n >= 0) {
			/* relaxed: a sticky edge this read depends on was
			 * consumed by our wait's acquire, which the poller's
			 * post (a release RMW after its store) pairs with. */
			s->drained = n > 0 && (size_t)n < len && flags == 0 &&
				s->tcp &&
				!atomic_load_explicit(&s->sk.sticky,
					memory_order_relaxed);
			return n;
		}
		wait = err != -EINTR;
		if (err == -EINTR)
			continue;
		if (err != -EAGAIN)
			return err;
#ifdef WEFT_DEBUG
		/* relaxed: a counter for the tests. */
		atomic_fetch_add_explicit(&weft__stream_recv_eagain, 1,
			memory_order_relaxed);
#endif
	}
}

/* One read: from the pushback if it holds bytes, else from the socket,
 * waiting for data.  > 0 bytes, 0 at end of stream, or an error. */
static WEFT_FIBER_FN ssize_t stream_recv(struct weft_stream *s, char *buf,
	size_t len)
{
	if (s->pb_len > 0) {
		size_t n = len < s->pb_len ? len : s->pb_len;
		memcpy(buf, s->pb + s->pb_off, n);
		s->pb_off += n;
		s->pb_len -= n;
		return (ssize_t)n;
	}
	return stream_recv_socket(s, buf, len, 0, "stream read", NULL);
}

/* Makes room for `more` bytes in front of the pushback. */
static int stream_pb_reserve(struct weft_stream *s, size_t more)
{
	if (s->pb_off >= more)
		return 0;
	size_t need = s->pb_len + more;
	if (need <= s->pb_cap) {
		memmove(s->pb + more, s->pb + s->pb_off, s->pb_len);
		s->pb_off = more;
		return 0;
	}
	char *p = weft__alloc(need);
	if (p == NULL)
		return -ENOMEM;
	if (s->pb_len > 0)
		memcpy(p + more, s->pb + s->pb_off, s->pb_len);
	weft__free(s->pb);
	s->pb = p;
	s->pb_cap = need;
	s->pb_off = more;
	return 0;
}

/* Returns n bytes to the front of the stream; room was reserved. */
static void stream_pb_push(struct weft_stream *s, const char *data, size_t n)
{
	if (n == 0)
		return;
	WEFT_ASSERT(s->pb_off >= n, "stream pushback without room");
	s->pb_off -= n;
	s->pb_len += n;
	memcpy(s->pb + s->pb_off, data, n);
}

ssize_t weft_stream_read(weft_stream_t *h, void *buf, size_t len)
{
	if (h == NULL || buf == NULL || len == 0)
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_read");
	if (s == NULL)
		return WEFT_EMISUSE;
	ssize_t n = stream_read_begin(s);
	if (n == 0) {
		n = stream_recv(s, buf, len);
		stream_read_end(s);
	}
	stream_drop(s);
	return n;
}

/* Waits until a recv would not say EAGAIN; consumes nothing (a peek). */
static WEFT_FIBER_FN int stream_wait_input(struct weft_stream *s,
	unsigned flags)
{
	if (s->pb_len > 0)
		return 0;
	char byte;
	ssize_t n = stream_recv_socket(s, &byte, 1, MSG_PEEK, "stream wait",
		(flags & WEFT_WAIT_RELEASE_STACK) ? "weft_stream_wait_readable"
						  : NULL);
	return n < 0 ? (int)n : 0; /* a byte, or the end */
}

int weft_stream_wait_readable(weft_stream_t *h, unsigned flags)
{
	if (h == NULL || (flags & ~(unsigned)WEFT_WAIT_RELEASE_STACK))
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_wait_readable");
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = stream_read_begin(s);
	if (rc == 0) {
		rc = stream_wait_input(s, flags);
		stream_read_end(s);
	}
	stream_drop(s);
	return rc;
}

int weft_stream_read_exactly(weft_stream_t *h, void *buf, size_t len,
	size_t *got)
{
	if (h == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_read_exactly");
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = stream_read_begin(s);
	if (rc < 0) {
		stream_drop(s);
		return rc;
	}
	size_t have = 0;
	rc = 0;
	while (have < len) {
		ssize_t n = stream_recv(s, (char *)buf + have, len - have);
		if (n == 0) {
			rc = WEFT_EEND;
			break;
		}
		if (n < 0) {
			rc = (int)n;
			break;
		}
		have += (size_t)n;
	}
	stream_read_end(s);
	stream_drop(s);
	if (got != NULL)
		*got = have;
	return rc;
}

/* Where delim starts in buf[from..have), or -1. */
static ssize_t stream_find(const char *buf, size_t from, size_t have,
	const char *delim, size_t dlen)
{
	if (have < dlen)
		return -1;
	for (size_t i = from; i + dlen <= have; i++)
		if (buf[i] == delim[0] && memcmp(buf + i, delim, dlen) == 0)
			return (ssize_t)i;
	return -1;
}

ssize_t weft_stream_read_until(weft_stream_t *h, void *buf, size_t cap,
	const void *delim, size_t delim_len)
{
	if (h == NULL || buf == NULL || cap == 0 || delim == NULL ||
		delim_len == 0 || delim_len > cap)
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_read_until");
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = stream_read_begin(s);
	if (rc < 0) {
		stream_drop(s);
		return rc;
	}
	char *b = buf;
	ssize_t result;
	/* Invariant 2: whatever is read below can be given back. */
	rc = stream_pb_reserve(s, cap);
	if (rc < 0) {
		result = rc;
		goto out;
	}
	size_t have = 0, scanned = 0;
	for (;;) {
		ssize_t at = stream_find(b, scanned, have, delim, delim_len);
		if (at >= 0) {
			size_t end = (size_t)at + delim_len;
			stream_pb_push(s, b + end, have - end);
			result = (ssize_t)end;
			break;
		}
		if (have == cap) {
			result = -EMSGSIZE;
			break;
		}
		/* The delimiter may straddle the next read. */
		scanned = have >= delim_len ? have - delim_len + 1 : 0;
		ssize_t n = stream_recv(s, b + have, cap - have);
		if (n == 0) {
			/* Nothing lost: the bytes before the end go back to
			 * the stream (a read returns them, then 0). */
			stream_pb_push(s, b, have);
			result = WEFT_EEND;
			break;
		}
		if (n < 0) {
			/* Consume nothing on cancellation (docs/semantics.md
			 * rule 42). */
			if (n == -ECANCELED)
				stream_pb_push(s, b, have);
			result = n;
			break;
		}
		have += (size_t)n;
	}
out:
	stream_read_end(s);
	stream_drop(s);
	return result;
}

/* }======================================================= */

/* {======================================================= writing */

static WEFT_FIBER_FN int stream_write_begin(struct weft_stream *s)
{
	struct weft_task *self;
	return weft__sock_call_begin(&s->sk, &s->writing, &self);
}

static void stream_write_end(struct weft_stream *s)
{
	weft__sock_call_end(&s->sk, &s->writing);
}

/* Sends p[off .. len) with the write side held, waiting while the
 * kernel's buffer is full (backpressure).  A cancellation after some
 * byte of the message left (off > 0 at that point) breaks the stream: the
 * peer has a prefix.  0 or an error. */
static WEFT_FIBER_FN int stream_send_from(struct weft_stream *s, const char *p,
	size_t len, size_t off)
{
	int rc = 0;
	while (rc == 0 && off < len) {
		if (!weft__sock_enter(&s->sk)) {
			rc = WEFT_ECLOSED;
			break;
		}
		ssize_t n = send(s->sk.fd, p + off, len - off,
			MSG_DONTWAIT | MSG_NOSIGNAL);
		int err = n < 0 ? weft__sock_errno() : 0;
		weft__sock_leave(&s->sk);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (err == -EINTR)
			continue;
		if (err != -EAGAIN) {
			rc = err;
			break;
		}
		rc = weft__sock_wait(&s->sk, UV_WRITABLE, "stream write");
	}
	if (rc == -ECANCELED && off > 0)
		s->wstate |= WEFT__STREAM_BROKEN;
	return rc;
}

int weft_stream_write(weft_stream_t *h, const void *buf, size_t len)
{
	if (h == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_write");
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = stream_write_begin(s);
	if (rc < 0) {
		stream_drop(s);
		return rc;
	}
	/* Broken by a cancelled write, or the write side shut down: the
	 * kernel would say -EPIPE for the second; net.h promises
	 * WEFT_ECLOSED for both. */
	rc = s->wstate != 0 ? WEFT_ECLOSED : stream_send_from(s, buf, len, 0);
	stream_write_end(s);
	stream_drop(s);
	return rc;
}

int weft_stream_shutdown(weft_stream_t *h)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_shutdown");
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = stream_write_begin(s);
	if (rc == 0 && (s->wstate & WEFT__STREAM_SHUT_WR)) {
		stream_write_end(s); /* done already */
	} else if (rc == 0) {
		if (!weft__sock_enter(&s->sk)) {
			rc = WEFT_ECLOSED;
		} else {
			rc = shutdown(s->sk.fd, SHUT_WR) < 0
				? weft__sock_errno()
				: 0;
			weft__sock_leave(&s->sk);
		}
		if (rc == 0)
			s->wstate |= WEFT__STREAM_SHUT_WR;
		stream_write_end(s);
	}
	stream_drop(s);
	return rc;
}

/* {======================================================= descriptors */

/* The control buffer for n descriptors, aligned for struct cmsghdr. */
union stream_cmsg {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int) * WEFT_STREAM_MAX_FDS)];
};

int weft_stream_send_fds(weft_stream_t *h, const void *buf, size_t len,
	const int *fds, size_t nfds)
{
	if (h == NULL || buf == NULL || len == 0 || fds == NULL || nfds == 0 ||
		nfds > WEFT_STREAM_MAX_FDS)
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_send_fds");
	if (s == NULL)
		return WEFT_EMISUSE;
	if (s->tcp) {
		stream_drop(s);
		return -EINVAL;
	}
	int rc = stream_write_begin(s);
	if (rc < 0) {
		stream_drop(s);
		return rc;
	}
	rc = s->wstate != 0 ? WEFT_ECLOSED : 0;
	size_t off = 0;
	/* The descriptors travel with the first byte the kernel takes;
	 * the rest of buf follows as a plain send, the write side still
	 * held (no other writer's bytes in between). */
	while (rc == 0 && off == 0) {
		union stream_cmsg cm;
		memset(&cm, 0, sizeof cm);
		struct iovec iov = { .iov_base = (void *)(uintptr_t)buf,
			.iov_len = len };
		struct msghdr msg = { .msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cm.buf,
			.msg_controllen = CMSG_SPACE(sizeof(int) * nfds) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		if (!weft__sock_enter(&s->sk)) {
			rc = WEFT_ECLOSED;
			break;
		}
		ssize_t n = sendmsg(s->sk.fd, &msg,
			MSG_DONTWAIT | MSG_NOSIGNAL);
		int err = n < 0 ? weft__sock_errno() : 0;
		weft__sock_leave(&s->sk);
		if (n > 0)
			off = (size_t)n;
		else if (err == -EAGAIN)
			rc = weft__sock_wait(&s->sk, UV_WRITABLE,
				"stream send_fds");
		else if (err != -EINTR)
			rc = err;
	}
	if (rc == 0)
		rc = stream_send_from(s, buf, len, off);
	stream_write_end(s);
	stream_drop(s);
	return rc;
}

ssize_t weft_stream_recv_fds(weft_stream_t *h, void *buf, size_t len, int *fds,
	size_t maxfds, size_t *nfds)
{
	if (h == NULL || buf == NULL || len == 0 || fds == NULL ||
		maxfds == 0 || maxfds > WEFT_STREAM_MAX_FDS || nfds == NULL)
		return -EINVAL;
	*nfds = 0;
	struct weft_stream *s = stream_take(h, "weft_stream_recv_fds");
	if (s == NULL)
		return WEFT_EMISUSE;
	if (s->tcp) {
		stream_drop(s);
		return -EINVAL;
	}
	ssize_t n = stream_read_begin(s);
	if (n < 0) {
		stream_drop(s);
		return n;
	}
	if (s->pb_len > 0) {
		/* Bytes a read_until left over: the descriptors that came
		 * with them went with its plain read (the kernel closed
		 * them: net.h). */
		n = stream_recv(s, buf, len);
		goto out;
	}
	for (;;) {
		union stream_cmsg cm;
		struct iovec iov = { .iov_base = buf, .iov_len = len };
		struct msghdr msg = { .msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cm.buf,
			.msg_controllen = CMSG_SPACE(sizeof(int) * maxfds) };
		if (!weft__sock_enter(&s->sk)) {
			n = WEFT_ECLOSED;
			break;
		}
		n = recvmsg(s->sk.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		int err = n < 0 ? weft__sock_errno() : 0;
		weft__sock_leave(&s->sk);
		if (n >= 0) {
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c;
				c = CMSG_NXTHDR(&msg, c)) {
				if (c->cmsg_level != SOL_SOCKET ||
					c->cmsg_type != SCM_RIGHTS)
					continue;
				size_t k = (c->cmsg_len - CMSG_LEN(0)) /
					sizeof(int);
				for (size_t i = 0; i < k && *nfds < maxfds; i++)
					memcpy(&fds[(*nfds)++],
						CMSG_DATA(c) + i * sizeof(int),
						sizeof(int));
			}
			break;
		}
		if (err == -EINTR)
			continue;
		if (err != -EAGAIN) {
			n = err;
			break;
		}
		int rc = weft__sock_wait(&s->sk, UV_READABLE,
			"stream recv_fds");
		if (rc < 0) {
			n = rc;
			break;
		}
	}
out:
	stream_read_end(s);
	stream_drop(s);
	return n;
}

/* }======================================================= */

/* {======================================================= options */

/* Runs one option call on the descriptor under the gate. */
static int stream_sockopt(struct weft_stream *s, int level, int name, int value)
{
	if (!weft__sock_enter(&s->sk))
		return WEFT_ECLOSED;
	int rc = setsockopt(s->sk.fd, level, name, &value, sizeof value) < 0
		? weft__sock_errno()
		: 0;
	weft__sock_leave(&s->sk);
	return rc;
}

int weft_stream_set_nodelay(weft_stream_t *h, int on)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_set_nodelay");
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = s->tcp ? stream_sockopt(s, IPPROTO_TCP, TCP_NODELAY, on != 0)
			: -EINVAL;
	stream_drop(s);
	return rc;
}

int weft_stream_set_keepalive(weft_stream_t *h, int on, unsigned idle_s)
{
	if (h == NULL || (on && (idle_s < 1 || idle_s > 32767)))
		return -EINVAL;
	struct weft_stream *s = stream_take(h, "weft_stream_set_keepalive");
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = s->tcp ? 0 : -EINVAL;
	if (rc == 0 && on)
		rc = stream_sockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_s);
	if (rc == 0)
		rc = stream_sockopt(s, SOL_SOCKET, SO_KEEPALIVE, on != 0);
	stream_drop(s);
	return rc;
}

static int stream_address(weft_stream_t *h, struct sockaddr *addr,
	socklen_t *len, bool peer, const char *call)
{
	if (h == NULL || addr == NULL || len == NULL)
		return -EINVAL;
	struct weft_stream *s = stream_take(h, call);
	if (s == NULL)
		return WEFT_EMISUSE;
	int rc = WEFT_ECLOSED;
	if (weft__sock_enter(&s->sk)) {
		int r = peer ? getpeername(s->sk.fd, addr, len)
			     : getsockname(s->sk.fd, addr, len);
		rc = r < 0 ? weft__sock_errno() : 0;
		weft__sock_leave(&s->sk);
	}
	stream_drop(s);
	return rc;
}

int weft_stream_peer_address(weft_stream_t *h, struct sockaddr *addr,
	socklen_t *len)
{
	return stream_address(h, addr, len, true, "weft_stream_peer_address");
}

int weft_stream_local_address(weft_stream_t *h, struct sockaddr *addr,
	socklen_t *len)
{
	return stream_address(h, addr, len, false, "weft_stream_local_address");
}

/* }======================================================= */
