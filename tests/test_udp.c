/* Tests for UDP sockets (include/weft/udp.h, runtime/udp.c).
 *
 * Everything runs on loopback (127.0.0.1, and ::1 when the machine has
 * it: the IPv6 test skips itself otherwise) with ports chosen by the
 * kernel.  UDP may drop datagrams when a receive buffer is full, so the
 * tests keep few datagrams in flight (ping-pong), which loopback does
 * not drop.  A short sleep before a send, cancel or close makes the
 * parked path of a receive likely; no assertion depends on time (ctest's
 * timeout catches a hang).
 *
 * Every concurrent test runs at 1, 2 and 4 workers, leak-checked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <weft.h>
#include "weft/udp.h"

#include "support.h"

/* The address of u on loopback of u's family.  Built in a sockaddr_in or
 * sockaddr_in6 and copied into the storage: stores through a
 * sockaddr_in pointer into a sockaddr_storage are not seen by a later
 * copy of the storage under strict aliasing (aarch64 gcc 12 -O2 moved the
 * copy of the returned struct above the port and address stores, and
 * every datagram went to 0.0.0.0 port 0). */
static struct sockaddr_storage addr_of(weft_udp_t *u, int family)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET6) {
		struct sockaddr_in6 a;
		memset(&a, 0, sizeof a);
		a.sin6_family = AF_INET6;
		a.sin6_port = htons((uint16_t)weft_udp_port(u));
		a.sin6_addr = in6addr_loopback;
		memcpy(&ss, &a, sizeof a);
	} else {
		struct sockaddr_in a;
		memset(&a, 0, sizeof a);
		a.sin_family = AF_INET;
		a.sin_port = htons((uint16_t)weft_udp_port(u));
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		memcpy(&ss, &a, sizeof a);
	}
	return ss;
}

static int port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

#define SA(ss) ((const struct sockaddr *)(ss))

/* {======================================================= round trip */

static atomic_int ipv6_skipped;

static int round_trip_root(void *arg)
{
	const char *host = arg;
	int family = strchr(host, ':') ? AF_INET6 : AF_INET;
	weft_udp_t *a, *b;
	int rc = weft_udp_open(&a, host, 0);
	if (family == AF_INET6 &&
		(rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)) {
		atomic_store(&ipv6_skipped, 1);
		return 0;
	}
	CHECK_EQ(rc, 0);
	CHECK_EQ(weft_udp_open(&b, host, 0), 0);
	CHECK(weft_udp_port(a) > 0);
	CHECK(weft_udp_port(b) > 0);
	CHECK(weft_udp_port(a) != weft_udp_port(b));
	struct sockaddr_storage to_b = addr_of(b, family);
	CHECK_EQ(weft_udp_send(a, "hello", 5, SA(&to_b)), 0);
	char buf[64];
	struct sockaddr_storage from;
	socklen_t fromlen = 0;
	CHECK_EQ(weft_udp_recv(b, buf, sizeof buf, &from, &fromlen), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(from.ss_family, family);
	CHECK_EQ(port_of(&from), weft_udp_port(a));
	CHECK(fromlen > 0);
	/* Reply to the sender's address; an empty datagram too. */
	CHECK_EQ(weft_udp_send(b, "world!", 6, SA(&from)), 0);
	CHECK_EQ(weft_udp_send(b, NULL, 0, SA(&from)), 0);
	CHECK_EQ(weft_udp_recv(a, buf, sizeof buf, NULL, NULL), 6);
	CHECK(memcmp(buf, "world!", 6) == 0);
	CHECK_EQ(weft_udp_recv(a, buf, sizeof buf, NULL, NULL), 0);
	CHECK_EQ(weft_udp_close(a), 0);
	CHECK_EQ(weft_udp_close(b), 0);
	return 0;
}

/* A datagram goes from one socket to another and back on 127.0.0.1;
 * port 0 gives a port. */
WEFT_TEST_ROOT(udp, round_trip_on_ipv4_loopback, round_trip_root, "127.0.0.1")

/* The same on ::1 (skipped where the machine has no IPv6 loopback). */
static void test_udp__round_trip_on_ipv6_loopback(void **state)
{
	atomic_store(&ipv6_skipped, 0);
	weft_test_root(state, round_trip_root, "::1");
	if (atomic_load(&ipv6_skipped))
		skip();
}

/* }======================================================= */

/* {======================================================= parking */

struct pair {
	weft_udp_t *rx, *tx;
	struct sockaddr_storage to_rx;
	weft_scope_t *s; /* the receiver's scope, or NULL */
	size_t len;	 /* the receiver's buffer size */
	char buf[64];
	atomic_long rc;
};

static int open_pair(struct pair *p)
{
	memset(p, 0, sizeof *p);
	atomic_init(&p->rc, 12345);
	p->len = sizeof p->buf;
	if (!CHECK_EQ(weft_udp_open(&p->rx, "127.0.0.1", 0), 0))
		return -1;
	if (!CHECK_EQ(weft_udp_open(&p->tx, "127.0.0.1", 0), 0))
		return -1;
	p->to_rx = addr_of(p->rx, AF_INET);
	return 0;
}

static void close_pair(struct pair *p)
{
	CHECK_EQ(weft_udp_close(p->rx), 0);
	CHECK_EQ(weft_udp_close(p->tx), 0);
}

static int receiver_task(void *arg)
{
	struct pair *p = arg;
	if (p->s)
		CHECK_EQ(weft_scope_enter(p->s), 0);
	ssize_t n = weft_udp_recv(p->rx, p->buf, p->len, NULL, NULL);
	atomic_store(&p->rc, (long)n);
	if (p->s)
		CHECK_EQ(weft_scope_exit(p->s), 0);
	return 0;
}

static int late_sender_task(void *arg)
{
	struct pair *p = arg;
	weft_sleep(20 * WEFT_MSEC);
	CHECK_EQ(weft_udp_send(p->tx, "late", 4, SA(&p->to_rx)), 0);
	return 0;
}

static int parked_root(void *arg)
{
	(void)arg;
	struct pair p;
	if (open_pair(&p) < 0)
		return 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, receiver_task, &p), 0);
	CHECK_EQ(weft_group_spawn(g, late_sender_task, &p), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&p.rc), 4);
	CHECK(memcmp(p.buf, "late", 4) == 0);
	close_pair(&p);
	return 0;
}

/* A receive parks until another task sends a datagram later. */
WEFT_TEST_ROOT(udp, recv_parks_until_a_datagram_arrives, parked_root, NULL)

static int cancel_root(void *arg)
{
	(void)arg;
	struct pair p;
	if (open_pair(&p) < 0)
		return 0;
	CHECK_EQ(weft_scope_create(&p.s, WEFT_FOREVER, 0), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, receiver_task, &p), 0);
	weft_sleep(20 * WEFT_MSEC);
	CHECK_EQ(weft_scope_cancel(p.s, "test"), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_scope_destroy(p.s);
	CHECK_EQ(atomic_load(&p.rc), -ECANCELED);
	/* The next datagram goes to the next receive. */
	CHECK_EQ(weft_udp_send(p.tx, "next", 4, SA(&p.to_rx)), 0);
	char buf[16];
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), 4);
	CHECK(memcmp(buf, "next", 4) == 0);

	/* A cancellation racing with a datagram: the receive got it, or
	 * got nothing and the next receive gets it. */
	int got = 0, cancelled = 0;
	for (int i = 0; i < 30; i++) {
		p.s = NULL;
		CHECK_EQ(weft_scope_create(&p.s, WEFT_FOREVER, 0), 0);
		atomic_store(&p.rc, 12345);
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, receiver_task, &p), 0);
		if (i % 3 == 1)
			weft_yield();
		else if (i % 3 == 2)
			weft_sleep(WEFT_MSEC);
		char msg[16];
		snprintf(msg, sizeof msg, "m%d", i);
		size_t len = strlen(msg);
		CHECK_EQ(weft_udp_send(p.tx, msg, len, SA(&p.to_rx)), 0);
		CHECK_EQ(weft_scope_cancel(p.s, "race"), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		weft_scope_destroy(p.s);
		long rc = atomic_load(&p.rc);
		if (rc == (long)len) {
			got++;
			CHECK(memcmp(p.buf, msg, len) == 0);
		} else {
			CHECK_EQ(rc, -ECANCELED);
			cancelled++;
			CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL,
					 NULL),
				(long)len);
			CHECK(memcmp(buf, msg, len) == 0);
		}
	}
	CHECK_EQ(got + cancelled, 30);
	close_pair(&p);
	return 0;
}

/* A cancelled receive consumed no datagram (docs/semantics.md rule 42). */
WEFT_TEST_ROOT(udp, cancelled_recv_consumes_nothing, cancel_root, NULL)

static int deadline_root(void *arg)
{
	(void)arg;
	struct pair p;
	if (open_pair(&p) < 0)
		return 0;
	weft_scope_t *s;
	CHECK_EQ(weft_fail_after(&s, 20 * WEFT_MSEC), 0);
	char buf[16];
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
	weft_scope_destroy(s);
	/* Cancelled on entry: nothing sent, nothing received. */
	weft_scope_t *c;
	CHECK_EQ(weft_scope_open(&c, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(c, "before");
	CHECK_EQ(weft_udp_send(p.tx, "x", 1, SA(&p.to_rx)), -ECANCELED);
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(c), 0);
	weft_scope_destroy(c);
	CHECK_EQ(weft_udp_send(p.tx, "y", 1, SA(&p.to_rx)), 0);
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), 1);
	CHECK_EQ(buf[0], 'y');
	close_pair(&p);
	return 0;
}

/* A fail_after deadline ends a parked receive with -ETIMEDOUT. */
WEFT_TEST_ROOT(udp, deadline_during_recv_times_out, deadline_root, NULL)

static int close_root(void *arg)
{
	(void)arg;
	struct pair p;
	if (open_pair(&p) < 0)
		return 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, receiver_task, &p), 0);
	weft_sleep(20 * WEFT_MSEC);
	CHECK_EQ(weft_udp_close(p.rx), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&p.rc), WEFT_ECLOSED);
	CHECK_EQ(weft_udp_close(p.tx), 0);
	return 0;
}

/* Closing a socket wakes its parked receiver with WEFT_ECLOSED. */
WEFT_TEST_ROOT(udp, close_wakes_a_parked_recv, close_root, NULL)

static int truncation_root(void *arg)
{
	(void)arg;
	struct pair p;
	if (open_pair(&p) < 0)
		return 0;
	/* Queued before the receive: the direct path. */
	CHECK_EQ(weft_udp_send(p.tx, "0123456789", 10, SA(&p.to_rx)), 0);
	CHECK_EQ(weft_udp_send(p.tx, "ok", 2, SA(&p.to_rx)), 0);
	char buf[4];
	struct sockaddr_storage from;
	memset(&from, 0, sizeof from);
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, &from, NULL), -EMSGSIZE);
	CHECK(memcmp(buf, "0123", 4) == 0);
	CHECK_EQ(port_of(&from), weft_udp_port(p.tx));
	/* Consumed: the next receive gets the next datagram. */
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), 2);
	CHECK(memcmp(buf, "ok", 2) == 0);
	/* Parked first: the I/O thread's path. */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	p.len = 3;
	CHECK_EQ(weft_group_spawn(g, receiver_task, &p), 0);
	weft_sleep(20 * WEFT_MSEC);
	CHECK_EQ(weft_udp_send(p.tx, "abcdefgh", 8, SA(&p.to_rx)), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&p.rc), -EMSGSIZE);
	CHECK(memcmp(p.buf, "abc", 3) == 0);
	CHECK_EQ(weft_udp_send(p.tx, "ok", 2, SA(&p.to_rx)), 0);
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), 2);
	close_pair(&p);
	return 0;
}

/* A datagram longer than the buffer gives -EMSGSIZE and is consumed. */
WEFT_TEST_ROOT(udp, truncation_gives_emsgsize, truncation_root, NULL)

static int busy_root(void *arg)
{
	(void)arg;
	struct pair p;
	if (open_pair(&p) < 0)
		return 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, receiver_task, &p), 0);
	weft_sleep(20 * WEFT_MSEC);
	char buf[16];
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), -EBUSY);
	CHECK_EQ(weft_udp_send(p.tx, "one", 3, SA(&p.to_rx)), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&p.rc), 3);
	/* The -EBUSY call took nothing and left the socket usable. */
	CHECK_EQ(weft_udp_send(p.tx, "two", 3, SA(&p.to_rx)), 0);
	CHECK_EQ(weft_udp_recv(p.rx, buf, sizeof buf, NULL, NULL), 3);
	CHECK(memcmp(buf, "two", 3) == 0);
	close_pair(&p);
	return 0;
}

/* A second receiver while one is parked gets -EBUSY. */
WEFT_TEST_ROOT(udp, second_concurrent_receiver_gets_ebusy, busy_root, NULL)

/* }======================================================= */

/* {======================================================= arguments */

static int bad_args_root(void *arg)
{
	(void)arg;
	weft_udp_t *u = NULL;
	CHECK_EQ(weft_udp_open(NULL, "127.0.0.1", 0), -EINVAL);
	CHECK_EQ(weft_udp_open(&u, "127.0.0.1", -1), -EINVAL);
	CHECK_EQ(weft_udp_open(&u, "127.0.0.1", 65536), -EINVAL);
	CHECK_EQ(weft_udp_open(&u, "no-such-host.invalid", 0), WEFT_ENOTFOUND);
	CHECK(u == NULL);
	CHECK_EQ(weft_udp_port(NULL), -EINVAL);
	CHECK_EQ(weft_udp_close(NULL), -EINVAL);
	char buf[8];
	struct sockaddr_storage any;
	memset(&any, 0, sizeof any);
	any.ss_family = AF_INET;
	CHECK_EQ(weft_udp_send(NULL, buf, 1, SA(&any)), -EINVAL);
	CHECK_EQ(weft_udp_recv(NULL, buf, 1, NULL, NULL), -EINVAL);

	CHECK_EQ(weft_udp_open(&u, NULL, 0), 0); /* 0.0.0.0 */
	CHECK(weft_udp_port(u) > 0);
	/* Not connected: no address to send to. */
	CHECK_EQ(weft_udp_send(u, buf, 1, NULL), -EDESTADDRREQ);
	CHECK_EQ(weft_udp_send(u, NULL, 1, SA(&any)), -EINVAL);
	CHECK_EQ(weft_udp_connect(u, NULL, 9), -EINVAL);
	CHECK_EQ(weft_udp_connect(u, "127.0.0.1", 0), -EINVAL);
	CHECK_EQ(weft_udp_connect(u, "::1", 9), -EAFNOSUPPORT);
	CHECK_EQ(weft_udp_recv(u, NULL, 1, NULL, NULL), -EINVAL);
	CHECK_EQ(weft_udp_recv(u, buf, 0, NULL, NULL), -EINVAL);
	struct sockaddr_in6 v6;
	memset(&v6, 0, sizeof v6);
	v6.sin6_family = AF_INET6;
	v6.sin6_addr = in6addr_loopback;
	v6.sin6_port = htons(9);
	CHECK_EQ(weft_udp_send(u, buf, 1, (struct sockaddr *)&v6),
		-EAFNOSUPPORT);
	struct sockaddr_storage unix_like;
	memset(&unix_like, 0, sizeof unix_like);
	unix_like.ss_family = AF_UNIX;
	CHECK_EQ(weft_udp_send(u, buf, 1, SA(&unix_like)), -EAFNOSUPPORT);
	/* Too big for one datagram. */
	static char big[70000];
	struct sockaddr_storage self = addr_of(u, AF_INET);
	CHECK_EQ(weft_udp_send(u, big, sizeof big, SA(&self)), -EMSGSIZE);
	/* The port is taken. */
	weft_udp_t *v = NULL;
	CHECK_EQ(weft_udp_open(&v, "127.0.0.1", weft_udp_port(u)), -EADDRINUSE);
	CHECK(v == NULL);
	CHECK_EQ(weft_udp_close(u), 0);
	return 0;
}

/* Names resolve, and a connected socket sends without an address and
 * hears only its peer. */
static int connected_root(void *arg)
{
	(void)arg;
	weft_udp_t *a, *b, *c;
	CHECK_EQ(weft_udp_open(&a, "localhost", 0), 0);
	CHECK_EQ(weft_udp_open(&b, "127.0.0.1", 0), 0);
	CHECK_EQ(weft_udp_open(&c, "127.0.0.1", 0), 0);
	CHECK_EQ(weft_udp_connect(a, "localhost", weft_udp_port(b)), 0);
	CHECK_EQ(weft_udp_connect(b, "127.0.0.1", weft_udp_port(a)), 0);
	CHECK_EQ(weft_udp_send(a, "ping", 4, NULL), 0);
	char buf[16];
	struct sockaddr_storage from;
	socklen_t fl = sizeof from;
	CHECK_EQ(weft_udp_recv(b, buf, sizeof buf, &from, &fl), 4);
	CHECK(memcmp(buf, "ping", 4) == 0);
	CHECK_EQ(ntohs(((struct sockaddr_in *)&from)->sin_port),
		weft_udp_port(a));
	/* A connected socket takes no other address... */
	struct sockaddr_storage to_c = addr_of(c, AF_INET);
	CHECK_EQ(weft_udp_send(a, "x", 1, SA(&to_c)), -EISCONN);
	/* ...and hears only its peer: c's datagram to b is dropped, the
	 * peer's next one arrives. */
	struct sockaddr_storage to_b = addr_of(b, AF_INET);
	CHECK_EQ(weft_udp_send(c, "stranger", 8, SA(&to_b)), 0);
	CHECK_EQ(weft_udp_send(a, "peer", 4, NULL), 0);
	CHECK_EQ(weft_udp_recv(b, buf, sizeof buf, NULL, NULL), 4);
	CHECK(memcmp(buf, "peer", 4) == 0);
	/* Back the other way, by the connection. */
	CHECK_EQ(weft_udp_send(b, "pong", 4, NULL), 0);
	CHECK_EQ(weft_udp_recv(a, buf, sizeof buf, NULL, NULL), 4);
	CHECK(memcmp(buf, "pong", 4) == 0);
	/* Connecting again replaces the peer (it was -EISCONN): a sends to
	 * c now, and hears c, not b, on the port it had (the kernel chose
	 * it: a disconnect first would have let it go). */
	int port_a = weft_udp_port(a);
	CHECK_EQ(weft_udp_connect(a, "127.0.0.1", weft_udp_port(c)), 0);
	CHECK_EQ(weft_udp_port(a), port_a);
	CHECK_EQ(weft_udp_send(a, "moved", 5, NULL), 0);
	CHECK_EQ(weft_udp_recv(c, buf, sizeof buf, &from, &fl), 5);
	CHECK(memcmp(buf, "moved", 5) == 0);
	CHECK_EQ(ntohs(((struct sockaddr_in *)&from)->sin_port), port_a);
	CHECK_EQ(weft_udp_send(b, "old", 3, NULL), 0);
	struct sockaddr_storage to_a = addr_of(a, AF_INET);
	CHECK_EQ(weft_udp_send(c, "new", 3, SA(&to_a)), 0);
	CHECK_EQ(weft_udp_recv(a, buf, sizeof buf, NULL, NULL), 3);
	CHECK(memcmp(buf, "new", 3) == 0);
	/* An address that is not of a's family keeps the peer, and so does
	 * one the kernel refuses (a bound to loopback cannot reach out:
	 * -EINVAL, whatever the machine's network). */
	CHECK_EQ(weft_udp_connect(a, "::1", 9), -EAFNOSUPPORT);
	CHECK(weft_udp_connect(a, "8.8.8.8", 53) < 0);
	CHECK_EQ(weft_udp_send(a, "kept", 4, NULL), 0);
	CHECK_EQ(weft_udp_recv(c, buf, sizeof buf, NULL, NULL), 4);
	CHECK(memcmp(buf, "kept", 4) == 0);
	CHECK_EQ(weft_udp_close(a), 0);
	CHECK_EQ(weft_udp_close(b), 0);
	CHECK_EQ(weft_udp_close(c), 0);
	return 0;
}
WEFT_TEST_ROOT(udp, names_and_connected_sockets, connected_root, NULL)

/* Bad arguments fail with the documented codes and create nothing. */
static void test_udp__bad_arguments_fail(void **state)
{
	weft_test_root(state, bad_args_root, NULL);
	weft_udp_t *u;
	assert_int_equal(weft_udp_open(&u, "127.0.0.1", 0), WEFT_ENOTFIBER);
}

/* }======================================================= */

/* {======================================================= many */

#define CLIENTS 8

struct server {
	weft_udp_t *u;
	int rounds; /* per client */
	atomic_int served;
};

struct client {
	struct server *srv;
	int id;
};

static int server_task(void *arg)
{
	struct server *sv = arg;
	char buf[64];
	struct sockaddr_storage from;
	for (int i = 0; i < CLIENTS * sv->rounds; i++) {
		ssize_t n = weft_udp_recv(sv->u, buf, sizeof buf, &from, NULL);
		if (!CHECK(n > 0))
			return 0;
		CHECK_EQ(weft_udp_send(sv->u, buf, (size_t)n, SA(&from)), 0);
		atomic_fetch_add(&sv->served, 1);
	}
	return 0;
}

static int client_task(void *arg)
{
	struct client *c = arg;
	weft_udp_t *u;
	if (!CHECK_EQ(weft_udp_open(&u, "127.0.0.1", 0), 0))
		return 0;
	struct sockaddr_storage to = addr_of(c->srv->u, AF_INET);
	for (int i = 0; i < c->srv->rounds; i++) {
		char msg[32], buf[64];
		int len = snprintf(msg, sizeof msg, "c%d-%d", c->id, i);
		CHECK_EQ(weft_udp_send(u, msg, (size_t)len, SA(&to)), 0);
		struct sockaddr_storage from;
		ssize_t n = weft_udp_recv(u, buf, sizeof buf, &from, NULL);
		CHECK_EQ(n, len);
		CHECK(n == len && memcmp(buf, msg, (size_t)len) == 0);
		CHECK_EQ(port_of(&from), weft_udp_port(c->srv->u));
	}
	CHECK_EQ(weft_udp_close(u), 0);
	return 0;
}

static int many_root(void *arg)
{
	(void)arg;
	struct server sv = { .rounds = (int)weft_test_scale(2000) };
	atomic_init(&sv.served, 0);
	if (!CHECK_EQ(weft_udp_open(&sv.u, "127.0.0.1", 0), 0))
		return 0;
	struct client cs[CLIENTS];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, server_task, &sv), 0);
	for (int i = 0; i < CLIENTS; i++) {
		cs[i] = (struct client){ .srv = &sv, .id = i };
		CHECK_EQ(weft_group_spawn(g, client_task, &cs[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&sv.served), CLIENTS * sv.rounds);
	CHECK_EQ(weft_udp_close(sv.u), 0);
	return 0;
}

/* Many datagrams between tasks on different workers, each answered. */
static void test_udp__many_datagrams_between_tasks(void **state)
{
	int fds = weft_test_count_fds();
	weft_test_root(state, many_root, NULL);
	assert_int_equal(weft_test_count_fds(), fds);
}

/* {======================================================= close race */

#define RACERS 6

struct racer {
	weft_udp_t *u;
	struct sockaddr_storage self;
	atomic_int ready;
	atomic_int sent, closed;
};

static int racer_task(void *arg)
{
	struct racer *r = arg;
	atomic_fetch_add(&r->ready, 1);
	/* One call, started before the close (the root waits for ready):
	 * it either completes or sees the close. */
	int rc = weft_udp_send(r->u, "r", 1, SA(&r->self));
	if (rc == 0)
		atomic_fetch_add(&r->sent, 1);
	else if (CHECK_EQ(rc, WEFT_ECLOSED))
		atomic_fetch_add(&r->closed, 1);
	return 0;
}

static int race_receiver_task(void *arg)
{
	struct racer *r = arg;
	char buf[8];
	atomic_fetch_add(&r->ready, 1);
	ssize_t n = weft_udp_recv(r->u, buf, sizeof buf, NULL, NULL);
	CHECK(n == 1 || n == WEFT_ECLOSED);
	return 0;
}

static int close_race_root(void *arg)
{
	(void)arg;
	for (int round = 0; round < 20; round++) {
		struct racer r;
		memset(&r, 0, sizeof r);
		if (!CHECK_EQ(weft_udp_open(&r.u, "127.0.0.1", 0), 0))
			return 0;
		r.self = addr_of(r.u, AF_INET);
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, race_receiver_task, &r), 0);
		for (int i = 0; i < RACERS; i++)
			CHECK_EQ(weft_group_spawn(g, racer_task, &r), 0);
		while (atomic_load(&r.ready) < RACERS + 1)
			weft_yield();
		if (round % 2)
			weft_yield();
		CHECK_EQ(weft_udp_close(r.u), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		CHECK_EQ(atomic_load(&r.sent) + atomic_load(&r.closed), RACERS);
	}
	return 0;
}

/* A close racing with calls in progress on other workers: each call
 * completes or returns WEFT_ECLOSED, and nothing touches freed memory
 * or a reused descriptor (ASan, TSan). */
static void test_udp__close_racing_with_calls_is_safe(void **state)
{
	int fds = weft_test_count_fds();
	weft_test_root(state, close_race_root, NULL);
	assert_int_equal(weft_test_count_fds(), fds);
}

/* }======================================================= */

/* {======================================================= UNIX datagrams */

struct unix_paths {
	char dir[64], a[96], b[96];
};

static void unix_paths_make(struct unix_paths *p)
{
	snprintf(p->dir, sizeof p->dir, "/tmp/weft-udp-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->a, sizeof p->a, "%s/a", p->dir);
	snprintf(p->b, sizeof p->b, "%s/b", p->dir);
}

static void unix_paths_remove(struct unix_paths *p)
{
	unlink(p->a);
	unlink(p->b);
	rmdir(p->dir);
}

static struct sockaddr_un unix_addr(const char *path)
{
	struct sockaddr_un un;
	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	return un;
}

/* Bound to paths: a datagram and its sender's path; the answer to an
 * autobound (abstract) sender; errors. */
static int unix_round_trip_root(void *arg)
{
	struct unix_paths *p = arg;
	weft_udp_t *a, *b, *c;
	CHECK_EQ(weft_unix_dgram_open(&a, p->a), 0);
	CHECK_EQ(weft_unix_dgram_open(&b, p->b), 0);
	CHECK_EQ(weft_udp_port(a), 0);
	struct sockaddr_un to = unix_addr(p->b);
	CHECK_EQ(weft_udp_send(a, "ping", 4, (struct sockaddr *)&to), 0);
	char buf[16];
	struct sockaddr_storage from;
	socklen_t fl = 0;
	CHECK_EQ(weft_udp_recv(b, buf, sizeof buf, &from, &fl), 4);
	CHECK(memcmp(buf, "ping", 4) == 0);
	CHECK_EQ(from.ss_family, AF_UNIX);
	CHECK(strcmp(((struct sockaddr_un *)&from)->sun_path, p->a) == 0);
	/* An autobound client: the server answers the abstract name. */
	CHECK_EQ(weft_unix_dgram_open(&c, NULL), 0);
	CHECK_EQ(weft_udp_send(c, "hello", 5, (struct sockaddr *)&to), 0);
	CHECK_EQ(weft_udp_recv(b, buf, sizeof buf, &from, &fl), 5);
	CHECK_EQ(((struct sockaddr_un *)&from)->sun_path[0], '\0');
	CHECK_EQ(weft_udp_send(b, "back", 4, (struct sockaddr *)&from), 0);
	CHECK_EQ(weft_udp_recv(c, buf, sizeof buf, NULL, NULL), 4);
	CHECK(memcmp(buf, "back", 4) == 0);
	/* Errors: a path in use, a UDP-style connect, a UNIX address on a
	 * UDP socket and the reverse, nothing bound at a path. */
	weft_udp_t *d, *ip;
	CHECK_EQ(weft_unix_dgram_open(&d, p->a), -EADDRINUSE);
	CHECK_EQ(weft_unix_dgram_open(&d, ""), -EINVAL);
	CHECK_EQ(weft_udp_connect(a, "127.0.0.1", 9), -EAFNOSUPPORT);
	CHECK_EQ(weft_udp_open(&ip, "127.0.0.1", 0), 0);
	CHECK_EQ(weft_udp_send(ip, "x", 1, (struct sockaddr *)&to),
		-EAFNOSUPPORT);
	CHECK_EQ(weft_unix_dgram_connect(ip, p->b), -EAFNOSUPPORT);
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	CHECK_EQ(weft_udp_send(a, "x", 1, (struct sockaddr *)&in4),
		-EAFNOSUPPORT);
	CHECK_EQ(weft_udp_close(ip), 0);
	struct sockaddr_un none = unix_addr("/nonexistent/weft-udp");
	CHECK(weft_udp_send(a, "x", 1, (struct sockaddr *)&none) < 0);
	CHECK_EQ(weft_udp_close(a), 0);
	CHECK_EQ(weft_udp_close(b), 0);
	CHECK_EQ(weft_udp_close(c), 0);
	return 0;
}

static void test_udp__unix_datagrams_round_trip(void **state)
{
	struct unix_paths p;
	unix_paths_make(&p);
	weft_test_root(state, unix_round_trip_root, &p);
	unix_paths_remove(&p);
}

struct unix_flood {
	struct unix_paths *p;
	weft_udp_t *server;
	atomic_int received;
};

/* Sends more datagrams than the server's queue holds (Linux's
 * net.unix.max_dgram_qlen, 10 by default, or its socket buffer) on a
 * connected socket: the sends that find the queue full go through
 * libuv, which has to be handed the peer. */
static int unix_flood_client(void *arg)
{
	struct unix_flood *f = arg;
	weft_udp_t *c;
	CHECK_EQ(weft_unix_dgram_open(&c, f->p->a), 0);
	CHECK_EQ(weft_unix_dgram_connect(c, f->p->b), 0);
	struct sockaddr_un to = unix_addr(f->p->b);
	CHECK_EQ(weft_udp_send(c, "x", 1, (struct sockaddr *)&to), -EISCONN);
	for (int i = 0; i < 300; i++) {
		char msg[512];
		memset(msg, 'a' + i % 26, sizeof msg);
		CHECK_EQ(weft_udp_send(c, msg, sizeof msg, NULL), 0);
	}
	CHECK_EQ(weft_udp_close(c), 0);
	return 0;
}

static int unix_flood_server(void *arg)
{
	struct unix_flood *f = arg;
	char buf[600];
	for (int i = 0; i < 300; i++) {
		/* Slower than the client: its queue fills up. */
		if (i % 32 == 0)
			CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
		ssize_t n = weft_udp_recv(f->server, buf, sizeof buf, NULL,
			NULL);
		CHECK_EQ(n, 512);
		if (n == 512 && buf[0] == 'a' + i % 26 && buf[511] == buf[0])
			atomic_fetch_add(&f->received, 1);
	}
	return 0;
}

static int unix_flood_root(void *arg)
{
	struct unix_flood *f = arg;
	CHECK_EQ(weft_unix_dgram_open(&f->server, f->p->b), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, unix_flood_server, f), 0);
	CHECK_EQ(weft_group_spawn(g, unix_flood_client, f), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_udp_close(f->server), 0);
	return 0;
}

static void test_udp__unix_connected_flood_waits_for_room(void **state)
{
	struct unix_paths p;
	unix_paths_make(&p);
	struct unix_flood f = { .p = &p };
	weft_test_root(state, unix_flood_root, &f);
	assert_int_equal(atomic_load(&f.received), 300);
	unix_paths_remove(&p);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_udp__round_trip_on_ipv4_loopback),
		WEFT_TEST(test_udp__round_trip_on_ipv6_loopback),
		WEFT_TEST(test_udp__recv_parks_until_a_datagram_arrives),
		WEFT_TEST(test_udp__cancelled_recv_consumes_nothing),
		WEFT_TEST(test_udp__deadline_during_recv_times_out),
		WEFT_TEST(test_udp__close_wakes_a_parked_recv),
		WEFT_TEST(test_udp__truncation_gives_emsgsize),
		WEFT_TEST(test_udp__second_concurrent_receiver_gets_ebusy),
		WEFT_TEST(test_udp__bad_arguments_fail),
		WEFT_TEST(test_udp__names_and_connected_sockets),
		WEFT_TEST(test_udp__many_datagrams_between_tasks),
		WEFT_TEST(test_udp__close_racing_with_calls_is_safe),
		WEFT_TEST(test_udp__unix_datagrams_round_trip),
		WEFT_TEST(test_udp__unix_connected_flood_waits_for_room),
	};
	return WEFT_RUN_TESTS(tests);
}
