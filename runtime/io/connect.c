/* Connecting (include/weft/net.h): one address, a UNIX path, or a host
 * name with Happy Eyeballs (RFC 8305).
 *
 * One attempt: a non-blocking socket and connect(2) on the worker; if the
 * kernel says EINPROGRESS the task parks until the socket is writable
 * (sock.c) and reads the outcome with SO_ERROR.  Cancelling the wait
 * withdraws it and the socket is closed: no connection is left behind.
 *
 * Happy Eyeballs: the addresses from the resolver are interleaved by
 * family (the first family first, as getaddrinfo's order is the system's
 * preference); attempt i+1 starts when attempt i failed or 250 ms after
 * it started, whichever comes first; the first attempt to connect claims
 * the win with a CAS and cancels the private group the attempts run in,
 * so the others are withdrawn (their sockets closed) before
 * weft_tcp_connect returns.  A loser that connected anyway (its CAS
 * failed) closes its own stream.  The owner body runs in the group's
 * scope, so the winner's cancel also ends the owner's 250 ms wait. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/task.h"
#include "io/connect.h"
#include "io/sock.h"
#include "io/stream.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "weft/cancel.h"
#include "weft/dns.h"
#include "weft/net.h"
#include "weft/sync.h"

/* RFC 8305's recommended Connection Attempt Delay. */
#define HE_DELAY_NS (250 * 1000 * 1000)

static WEFT_FIBER_FN int connect_sockaddr(weft_stream_t **out,
	const struct sockaddr *addr, socklen_t len)
{
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	int fd = socket(addr->sa_family,
		SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return weft__sock_errno();
	bool tcp = addr->sa_family != AF_UNIX;
	struct weft_stream *s = weft__stream_new(self->rt, fd, tcp);
	if (s == NULL)
		return -ENOMEM;
	rc = connect(fd, addr, len) < 0 ? weft__sock_errno() : 0;
	while (rc == -EINTR)
		rc = -EINPROGRESS; /* the connect goes on: wait for it */
	if (rc == -EINPROGRESS) {
		/* The socket is not shared yet: no gate needed for fd, but
		 * the wait goes through sock.c to be cancellable. */
		rc = weft__sock_wait(&s->sk, UV_WRITABLE, "connect");
		if (rc == 0) {
			int err = 0;
			socklen_t el = sizeof err;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
				err = errno;
			rc = -err;
		}
	}
	/* The handle is given out (or closed) only now: nobody else could
	 * close the stream before. */
	if (rc < 0) {
		weft_stream_close(weft__stream_handle(s));
		return rc;
	}
	*out = weft__stream_handle(s);
	return 0;
}

int weft_tcp_connect_addr(weft_stream_t **out, const struct sockaddr *addr)
{
	if (out == NULL || addr == NULL)
		return -EINVAL;
	socklen_t len = weft__sock_addr_len(addr);
	if (len == 0)
		return -EAFNOSUPPORT;
	/* Port 0 is nobody's, as for weft_tcp_connect (both families keep
	 * the port at the same offset). */
	if (((const struct sockaddr_in *)addr)->sin_port == 0)
		return -EINVAL;
	return connect_sockaddr(out, addr, len);
}

int weft_unix_connect(weft_stream_t **out, const char *path)
{
	if (out == NULL || path == NULL || path[0] == '\0')
		return -EINVAL;
	struct sockaddr_un un;
	int rc = weft__sock_addr_un(&un, path);
	if (rc < 0)
		return rc;
	return connect_sockaddr(out, (struct sockaddr *)&un, sizeof un);
}

/* {======================================================= Happy Eyeballs */

struct he_race {
	const struct addrinfo **addrs; /* interleaved by family */
	size_t n;
	weft_event_t **failed; /* one per attempt */
	weft_group_t *g;
	_Atomic(weft_stream_t *) winner;
	/* Written by each failing attempt; the last one's is reported. */
	atomic_int last_err;
};

struct he_attempt {
	struct he_race *race;
	size_t i;
};

static WEFT_FIBER_FN int he_attempt_main(void *p)
{
	struct he_attempt *a = p;
	struct he_race *r = a->race;
	const struct addrinfo *ai = r->addrs[a->i];
	weft_stream_t *s;
	int rc = connect_sockaddr(&s, ai->ai_addr, ai->ai_addrlen);
	if (rc == 0) {
		weft_stream_t *none = NULL;
		/* acq_rel: publishes s to the owner's acquire load; one CAS
		 * wins. */
		if (atomic_compare_exchange_strong_explicit(&r->winner, &none,
			    s, memory_order_acq_rel, memory_order_relaxed))
			weft_group_cancel(r->g, "Happy Eyeballs: connected");
		else
			weft_stream_close(s);
		return 0;
	}
	/* relaxed: read by the owner only after the join, which orders it
	 * (child_done's release, join's acquire). */
	if (rc != -ECANCELED)
		atomic_store_explicit(&r->last_err, rc, memory_order_relaxed);
	weft_event_set(r->failed[a->i]);
	return 0; /* a failed attempt is not a failure of the race */
}

/* Orders the addresses: the first one's family, then the other family,
 * alternating while both last (RFC 8305 section 4). */
static size_t he_interleave(const struct addrinfo *res,
	const struct addrinfo **out, size_t max)
{
	const struct addrinfo *a = res, *b = res;
	int fam = res->ai_family;
	size_t n = 0;
	bool first = true;
	while (n < max && (a != NULL || b != NULL)) {
		const struct addrinfo **cur = first ? &a : &b;
		bool want_same = first;
		while (*cur != NULL && ((*cur)->ai_family == fam) != want_same)
			*cur = (*cur)->ai_next;
		if (*cur != NULL) {
			out[n++] = *cur;
			*cur = (*cur)->ai_next;
		}
		first = !first;
	}
	return n;
}

/* Runs the race in a private group; 0 if a winner is stored in r. */
static WEFT_FIBER_FN int he_run(struct he_race *r, struct he_attempt *att)
{
	int rc = weft_group_open(&r->g);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r->n; i++) {
		att[i].race = r;
		att[i].i = i;
		rc = weft_group_spawn_literal(r->g, "weft_tcp_connect attempt",
			he_attempt_main, &att[i]);
		if (rc < 0 || i + 1 == r->n)
			break;
		/* Wait for this attempt to fail, at most the delay. */
		weft_scope_t *sc;
		rc = weft_move_on_after(&sc, HE_DELAY_NS);
		if (rc < 0)
			break;
		(void)weft_event_wait(r->failed[i]);
		weft_scope_exit(sc);
		weft_scope_destroy(sc);
		/* A winner (it cancelled the group) or an outer
		 * cancellation: start no more attempts.  relaxed: only
		 * whether someone won; the stream is read after the join
		 * (acquire below). */
		rc = weft_checkpoint_if_cancelled();
		if (rc < 0 ||
			atomic_load_explicit(&r->winner,
				memory_order_relaxed) != NULL)
			break;
	}
	if (rc < 0)
		weft_group_cancel(r->g, NULL);
	int jrc = weft_group_join(r->g, NULL);
	/* acquire: pairs with the winner's CAS. */
	if (atomic_load_explicit(&r->winner, memory_order_acquire) != NULL)
		return 0; /* a real result wins over a racing cancellation */
	if (rc == -ECANCELED || jrc == -ECANCELED)
		return -ECANCELED;
	if (rc < 0)
		return rc;
	/* relaxed: after the join, which orders every attempt's store. */
	return atomic_load_explicit(&r->last_err, memory_order_relaxed);
}

int weft_tcp_connect(weft_stream_t **out, const char *host, int port)
{
	if (out == NULL || host == NULL || port < 1 || port > 65535)
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	char service[8];
	snprintf(service, sizeof service, "%d", port);
	struct addrinfo hints, *res;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int rc;
	struct in6_addr tmp;
	if (inet_pton(AF_INET, host, &tmp) == 1 ||
		inet_pton(AF_INET6, host, &tmp) == 1)
		hints.ai_flags |= AI_NUMERICHOST; /* no pool round trip */
	else
		hints.ai_flags |= AI_ADDRCONFIG;
	if (hints.ai_flags & AI_NUMERICHOST) {
		/* getaddrinfo on a numeric host does no I/O. */
		int g = getaddrinfo(host, service, &hints, &res);
		if (g != 0)
			return g == EAI_MEMORY ? -ENOMEM : -EINVAL;
	} else {
		rc = weft_getaddrinfo(host, service, &hints, &res);
		if (rc < 0)
			return rc;
	}
	rc = weft__connect_list(out, res);
	freeaddrinfo(res);
	return rc;
}

int weft__connect_list(weft_stream_t **out, const struct addrinfo *res)
{
	size_t count = 0;
	for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
		count++;
	if (count == 0)
		return -EINVAL;
	if (count == 1)
		return connect_sockaddr(out, res->ai_addr, res->ai_addrlen);
	struct he_race r = { .n = 0 };
	r.addrs = weft__calloc(count, sizeof *r.addrs);
	r.failed = weft__calloc(count, sizeof *r.failed);
	struct he_attempt *att = weft__calloc(count, sizeof *att);
	int rc = (r.addrs && r.failed && att) ? 0 : -ENOMEM;
	if (rc == 0)
		r.n = he_interleave(res, r.addrs, count);
	for (size_t i = 0; rc == 0 && i < r.n; i++)
		rc = weft_event_create(&r.failed[i]);
	atomic_init(&r.winner, NULL);
	atomic_init(&r.last_err, -ECONNREFUSED);
	if (rc == 0)
		rc = he_run(&r, att);
	for (size_t i = 0; r.failed && i < r.n; i++)
		if (r.failed[i])
			weft_event_destroy(r.failed[i]);
	weft__free(att);
	weft__free(r.failed);
	weft__free(r.addrs);
	if (rc < 0)
		return rc;
	/* acquire: as in he_run (pairs with the winner's CAS). */
	*out = atomic_load_explicit(&r.winner, memory_order_acquire);
	return 0;
}
