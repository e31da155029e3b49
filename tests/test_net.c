/* TCP and UNIX streams, listeners, serve, connect (weft/net.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/connect.h"
#include "support.h"
#include "weft/debug.h"
#include "weft/dns.h"
#include "weft/net.h"

#define MS ((int64_t)1000 * 1000)

/* {======================================================= helpers */

/* An echo server: serve() in its own group until `stop` is set. */
struct server {
	weft_listener_t *l;
	weft_event_t *stop;
	atomic_int conns; /* handlers started */
	atomic_int live;  /* handlers running now */
	atomic_int max_live;
	int serve_rc;
};

static int echo_handler(weft_stream_t *s, void *arg)
{
	struct server *sv = arg;
	atomic_fetch_add(&sv->conns, 1);
	int live = atomic_fetch_add(&sv->live, 1) + 1;
	int m = atomic_load(&sv->max_live);
	while (live > m &&
		!atomic_compare_exchange_weak(&sv->max_live, &m, live))
		;
	char buf[4096];
	int rc = 0;
	for (;;) {
		ssize_t n = weft_stream_read(s, buf, sizeof buf);
		if (n <= 0) {
			/* EOF, or the peer went away / we were cancelled. */
			rc = n == 0 || n == -ECONNRESET || n == -ECANCELED
				? 0
				: (int)n;
			break;
		}
		int w = weft_stream_write(s, buf, (size_t)n);
		if (w < 0) {
			rc = w == -EPIPE || w == -ECONNRESET || w == -ECANCELED
				? 0
				: w;
			break;
		}
	}
	atomic_fetch_sub(&sv->live, 1);
	return rc;
}

static int serve_main(void *arg)
{
	struct server *sv = arg;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (!CHECK_EQ(rc, 0))
		return rc;
	sv->serve_rc = weft_serve(sv->l, g, echo_handler, sv, sv->stop);
	return weft_group_join(g, NULL);
}

/* Starts an echo server on 127.0.0.1 (port 0) in group g. */
static int server_start(struct server *sv, weft_group_t *g)
{
	memset(sv, 0, sizeof *sv);
	int rc = weft_tcp_listen(&sv->l, "127.0.0.1", 0, 0);
	if (!CHECK_EQ(rc, 0))
		return rc;
	CHECK(weft_listener_port(sv->l) > 0);
	rc = weft_event_create(&sv->stop);
	if (!CHECK_EQ(rc, 0))
		return rc;
	return weft_group_spawn(g, serve_main, sv);
}

/* Stops accepting; the handlers end when their clients hang up. */
static void server_stop(struct server *sv)
{
	weft_event_set(sv->stop);
}

static void server_free(struct server *sv)
{
	CHECK_EQ(sv->serve_rc, 0);
	weft_listener_close(sv->l);
	weft_event_destroy(sv->stop);
}

/* }======================================================= */

/* {======================================================= echo */

struct echo_client {
	int port;
	int id;
	bool by_name;
};

static int echo_client_main(void *arg)
{
	struct echo_client *c = arg;
	weft_stream_t *s;
	int rc = c->by_name ? weft_tcp_connect(&s, "localhost", c->port)
			    : weft_tcp_connect(&s, "127.0.0.1", c->port);
	if (!CHECK_EQ(rc, 0))
		return rc;
	char msg[64], back[64];
	for (int round = 0; round < 20; round++) {
		int n = snprintf(msg, sizeof msg, "client %d round %d\n", c->id,
			round);
		CHECK_EQ(weft_stream_write(s, msg, (size_t)n), 0);
		size_t got = 0;
		CHECK_EQ(weft_stream_read_exactly(s, back, (size_t)n, &got), 0);
		CHECK_EQ(got, n);
		CHECK(memcmp(msg, back, (size_t)n) == 0);
	}
	weft_stream_close(s);
	return 0;
}

static int echo_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct server sv;
	CHECK_EQ(server_start(&sv, g), 0);
	weft_group_t *cg;
	CHECK_EQ(weft_group_open(&cg), 0);
	struct echo_client cl[32];
	for (int i = 0; i < 32; i++) {
		cl[i] = (struct echo_client){ weft_listener_port(sv.l), i,
			i % 4 == 0 };
		CHECK_EQ(weft_group_spawn(cg, echo_client_main, &cl[i]), 0);
	}
	CHECK_EQ(weft_group_join(cg, NULL), 0);
	server_stop(&sv);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&sv.conns), 32);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(net, echo_many_clients_through_serve, echo_root, NULL)

/* }======================================================= */

/* {======================================================= stream edges */

static int halfclose_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	CHECK_EQ(weft_stream_write(b, "hello", 5), 0);
	CHECK_EQ(weft_stream_shutdown(b), 0);
	char buf[16];
	size_t got = 0;
	CHECK_EQ(weft_stream_read_exactly(a, buf, 5, &got), 0);
	CHECK_EQ(weft_stream_read(a, buf, sizeof buf), 0); /* EOF */
	CHECK_EQ(weft_stream_read_exactly(a, buf, 1, &got), WEFT_EEND);
	CHECK_EQ(got, 0);
	/* The other direction still works after the half-close. */
	CHECK_EQ(weft_stream_write(a, "back", 4), 0);
	CHECK_EQ(weft_stream_read_exactly(b, buf, 4, &got), 0);
	CHECK(memcmp(buf, "back", 4) == 0);
	/* The write side is shut down: net.h's WEFT_ECLOSED, not the
	 * kernel's -EPIPE. */
	CHECK_EQ(weft_stream_write(b, "x", 1), WEFT_ECLOSED);
	CHECK_EQ(weft_stream_shutdown(b), 0); /* again: nothing to do */
	weft_stream_close(a);
	CHECK_EQ(weft_stream_read(b, buf, sizeof buf), 0);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(net, half_close_sends_eof_and_keeps_reading, halfclose_root,
	NULL)

static int until_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	const char *msg = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
	CHECK_EQ(weft_stream_write(b, msg, strlen(msg)), 0);
	char buf[64];
	ssize_t n = weft_stream_read_until(a, buf, sizeof buf, "\r\n", 2);
	CHECK_EQ(n, 16);
	CHECK(memcmp(buf, "GET / HTTP/1.1\r\n", 16) == 0);
	n = weft_stream_read_until(a, buf, sizeof buf, "\r\n\r\n", 4);
	CHECK_EQ(n, 11);
	CHECK(memcmp(buf, "Host: x\r\n\r\n", 11) == 0);
	/* What followed the delimiter is still in the stream. */
	size_t got;
	CHECK_EQ(weft_stream_read_exactly(a, buf, 4, &got), 0);
	CHECK(memcmp(buf, "BODY", 4) == 0);
	/* A delimiter split across two writes. */
	CHECK_EQ(weft_stream_write(b, "ab\r", 3), 0);
	weft_sleep(5 * MS);
	CHECK_EQ(weft_stream_write(b, "\ncd", 3), 0);
	n = weft_stream_read_until(a, buf, sizeof buf, "\r\n", 2);
	CHECK_EQ(n, 4);
	/* Too long: -EMSGSIZE after cap bytes. */
	CHECK_EQ(weft_stream_write(b, "efghijkl", 8), 0);
	n = weft_stream_read_until(a, buf, 6, "\n", 1);
	CHECK_EQ(n, -EMSGSIZE);
	CHECK(memcmp(buf, "cdefgh", 6) == 0);
	weft_stream_close(b);
	/* The end before the delimiter: "ijkl" stays in the stream. */
	n = weft_stream_read_until(a, buf, sizeof buf, "\n", 1);
	CHECK_EQ(n, WEFT_EEND);
	got = 0;
	CHECK_EQ(weft_stream_read_exactly(a, buf, 4, &got), 0);
	CHECK(memcmp(buf, "ijkl", 4) == 0);
	CHECK_EQ(weft_stream_read(a, buf, sizeof buf), 0);
	CHECK_EQ(weft_stream_read_until(a, buf, sizeof buf, "\n", 1),
		WEFT_EEND);
	weft_stream_close(a);
	return 0;
}

WEFT_TEST_ROOT(net, read_until_keeps_bytes_after_the_delimiter, until_root,
	NULL)

static int refused_root(void *arg)
{
	(void)arg;
	weft_listener_t *l;
	CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0, 0), 0);
	int port = weft_listener_port(l);
	weft_listener_close(l);
	weft_stream_t *s;
	CHECK_EQ(weft_test_connect_local(&s, port), -ECONNREFUSED);
	CHECK_EQ(weft_tcp_connect(&s, "127.0.0.1", port), -ECONNREFUSED);
	/* Both addresses of localhost refuse: the last error comes back. */
	CHECK_EQ(weft_tcp_connect(&s, "localhost", port), -ECONNREFUSED);
	/* Address in use. */
	weft_listener_t *l1, *l2;
	CHECK_EQ(weft_tcp_listen(&l1, "127.0.0.1", 0, 0), 0);
	CHECK_EQ(weft_tcp_listen(&l2, "127.0.0.1", weft_listener_port(l1), 0),
		-EADDRINUSE);
	weft_listener_close(l1);
	return 0;
}

WEFT_TEST_ROOT(net, refused_and_address_in_use, refused_root, NULL)

static int reset_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	/* Unread data at close makes the kernel send a reset. */
	CHECK_EQ(weft_stream_write(b, "unread", 6), 0);
	weft_sleep(5 * MS);
	weft_stream_close(a);
	char buf[8];
	ssize_t n = weft_stream_read(b, buf, sizeof buf);
	CHECK_EQ(n, -ECONNRESET);
	/* Writing to a reset peer: an error, never SIGPIPE. */
	int w = 0;
	for (int i = 0; i < 4 && w == 0; i++)
		w = weft_stream_write(b, "x", 1);
	CHECK(w == -EPIPE || w == -ECONNRESET);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(net, peer_reset_is_an_error_not_a_signal, reset_root, NULL)

/* }======================================================= */

/* {======================================================= cancellation */

struct parked {
	weft_stream_t *s;
	weft_listener_t *l;
	ssize_t rc;
	weft_event_t *entered;
};

static int read_parked_main(void *arg)
{
	struct parked *p = arg;
	char buf[16];
	weft_event_set(p->entered);
	p->rc = weft_stream_read(p->s, buf, sizeof buf);
	return 0;
}

static int accept_parked_main(void *arg)
{
	struct parked *p = arg;
	weft_stream_t *s;
	weft_event_set(p->entered);
	p->rc = weft_listener_accept(p->l, &s);
	if (p->rc == 0)
		weft_stream_close(s);
	return 0;
}

static int cancel_read_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	struct parked p = { .s = a };
	weft_event_create(&p.entered);
	weft_group_t *g;
	weft_group_open(&g);
	weft_group_spawn(g, read_parked_main, &p);
	weft_event_wait(p.entered);
	weft_sleep(10 * MS); /* let it park (the test holds either way) */
	weft_group_cancel(g, NULL);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(p.rc, -ECANCELED);
	/* Nothing was consumed: the next read gets everything. */
	CHECK_EQ(weft_stream_write(b, "abc", 3), 0);
	char buf[8];
	size_t got;
	CHECK_EQ(weft_stream_read_exactly(a, buf, 3, &got), 0);
	CHECK(memcmp(buf, "abc", 3) == 0);

	/* A deadline during a read: -ETIMEDOUT from the scope. */
	weft_scope_t *sc;
	CHECK_EQ(weft_fail_after(&sc, 20 * MS), 0);
	CHECK_EQ(weft_stream_read(a, buf, sizeof buf), -ECANCELED);
	CHECK_EQ(weft_scope_exit(sc), -ETIMEDOUT);
	weft_scope_destroy(sc);

	/* A read_until cancelled half-way gives its bytes back. */
	CHECK_EQ(weft_stream_write(b, "par", 3), 0);
	CHECK_EQ(weft_move_on_after(&sc, 20 * MS), 0);
	CHECK_EQ(weft_stream_read_until(a, buf, sizeof buf, "\n", 1),
		-ECANCELED);
	weft_scope_exit(sc);
	weft_scope_destroy(sc);
	CHECK_EQ(weft_stream_write(b, "tial\n", 5), 0);
	CHECK_EQ(weft_stream_read_until(a, buf, sizeof buf, "\n", 1), 8);
	CHECK(memcmp(buf, "partial\n", 8) == 0);

	/* Close while parked: the reader gets WEFT_ECLOSED. */
	weft_group_open(&g);
	p.rc = 1;
	weft_group_spawn(g, read_parked_main, &p);
	weft_event_wait(p.entered);
	weft_sleep(10 * MS);
	weft_stream_close(a);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(p.rc, WEFT_ECLOSED);
	weft_stream_close(b);
	weft_event_destroy(p.entered);
	return 0;
}

WEFT_TEST_ROOT(net, cancelled_read_consumes_nothing, cancel_read_root, NULL)

static int busy_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	struct parked p = { .s = a };
	weft_event_create(&p.entered);
	weft_group_t *g;
	weft_group_open(&g);
	weft_group_spawn(g, read_parked_main, &p);
	weft_event_wait(p.entered);
	weft_sleep(10 * MS);
	char buf[4];
	CHECK_EQ(weft_stream_read(a, buf, sizeof buf), -EBUSY);
	CHECK_EQ(weft_stream_write(b, "z", 1), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(p.rc, 1);
	weft_stream_close(a);
	weft_stream_close(b);
	weft_event_destroy(p.entered);
	return 0;
}

WEFT_TEST_ROOT(net, second_reader_gets_ebusy, busy_root, NULL)

static int cancel_accept_root(void *arg)
{
	(void)arg;
	struct parked p = { 0 };
	CHECK_EQ(weft_tcp_listen(&p.l, "127.0.0.1", 0, 0), 0);
	weft_event_create(&p.entered);
	weft_group_t *g;
	weft_group_open(&g);
	weft_group_spawn(g, accept_parked_main, &p);
	weft_event_wait(p.entered);
	weft_sleep(10 * MS);
	weft_group_cancel(g, NULL);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(p.rc, -ECANCELED);
	/* The listener still works. */
	weft_stream_t *c, *s;
	CHECK_EQ(weft_test_connect_local(&c, weft_listener_port(p.l)), 0);
	CHECK_EQ(weft_listener_accept(p.l, &s), 0);
	weft_stream_close(s);
	weft_stream_close(c);
	/* Closing the listener wakes a parked accept. */
	weft_group_open(&g);
	weft_group_spawn(g, accept_parked_main, &p);
	weft_event_wait(p.entered);
	weft_sleep(10 * MS);
	weft_listener_close(p.l);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(p.rc, WEFT_ECLOSED);
	weft_event_destroy(p.entered);
	return 0;
}

WEFT_TEST_ROOT(net, cancelled_accept_takes_nothing, cancel_accept_root, NULL)

static int cancel_write_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	/* Nobody reads a: the writer fills both kernel buffers and parks
	 * (backpressure) until the deadline. */
	size_t big = 64u << 20;
	char *buf = calloc(1, big);
	weft_scope_t *sc;
	CHECK_EQ(weft_fail_after(&sc, 50 * MS), 0);
	CHECK_EQ(weft_stream_write(b, buf, big), -ECANCELED);
	CHECK_EQ(weft_scope_exit(sc), -ETIMEDOUT);
	weft_scope_destroy(sc);
	/* A prefix went out: the stream is broken for writing. */
	CHECK_EQ(weft_stream_write(b, "x", 1), WEFT_ECLOSED);
	free(buf);
	weft_stream_close(a);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(net, cancelled_write_breaks_the_stream, cancel_write_root, NULL)

static int cancel_connect_root(void *arg)
{
	(void)arg;
	/* A listener whose queue is full and never accepted: the kernel
	 * drops further SYNs, so a connect hangs until cancelled. */
	weft_listener_t *l;
	CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0, 1), 0);
	int port = weft_listener_port(l);
	weft_stream_t *held[8];
	int nheld = 0, cancelled = 0;
	while (nheld < 8 && cancelled == 0) {
		weft_scope_t *sc;
		CHECK_EQ(weft_move_on_after(&sc, 200 * MS), 0);
		int rc = weft_test_connect_local(&held[nheld], port);
		weft_scope_exit(sc);
		weft_scope_destroy(sc);
		if (rc == 0)
			nheld++;
		else if (CHECK_EQ(rc, -ECANCELED))
			cancelled++;
		else
			break;
	}
	CHECK_EQ(cancelled, 1);
	for (int i = 0; i < nheld; i++)
		weft_stream_close(held[i]);
	weft_listener_close(l);
	return 0;
}

static void test_net__cancelled_connect_leaves_no_socket(void **state)
{
	int fds = weft_test_count_fds();
	weft_test_root(state, cancel_connect_root, NULL);
	assert_int_equal(weft_test_count_fds(), fds);
}

/* }======================================================= */

/* {======================================================= options, eyeballs */

static int options_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	CHECK_EQ(weft_stream_set_nodelay(a, 0), 0);
	CHECK_EQ(weft_stream_set_nodelay(a, 1), 0);
	CHECK_EQ(weft_stream_set_keepalive(a, 1, 30), 0);
	CHECK_EQ(weft_stream_set_keepalive(a, 0, 0), 0);
	CHECK_EQ(weft_stream_set_keepalive(a, 1, 0), -EINVAL);
	struct sockaddr_storage pa, la;
	socklen_t pl = sizeof pa, ll = sizeof la;
	CHECK_EQ(weft_stream_peer_address(a, (struct sockaddr *)&pa, &pl), 0);
	CHECK_EQ(weft_stream_local_address(b, (struct sockaddr *)&la, &ll), 0);
	/* a's peer is b's local end. */
	CHECK_EQ(pl, ll);
	CHECK(memcmp(&pa, &la, pl) == 0);
	weft_stream_close(a);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(net, socket_options_and_addresses, options_root, NULL)

/* Happy Eyeballs over two loopback addresses: 127.0.0.1:P silently drops
 * SYNs (a listener whose queue is full), 127.0.0.2:P accepts: the connect
 * succeeds through the second after the 250 ms stagger, and the hung
 * first attempt is withdrawn. */
static int eyeballs_root(void *arg)
{
	(void)arg;
	weft_listener_t *good;
	CHECK_EQ(weft_tcp_listen(&good, "127.0.0.2", 0, 0), 0);
	int port = weft_listener_port(good);
	weft_listener_t *hole;
	if (weft_tcp_listen(&hole, "127.0.0.1", port, 1) < 0) {
		printf("  (port %d busy on 127.0.0.1: skipped)\n", port);
		weft_listener_close(good);
		return 0;
	}
	weft_stream_t *held[8];
	int nheld = 0;
	for (;;) {
		weft_scope_t *sc;
		weft_move_on_after(&sc, 200 * MS);
		int rc = weft_tcp_connect(&held[nheld], "127.0.0.1", port);
		weft_scope_exit(sc);
		weft_scope_destroy(sc);
		if (rc < 0 || ++nheld == 8)
			break;
	}
	CHECK(nheld < 8); /* the queue is full: SYNs are dropped now */
	struct sockaddr_in a[2];
	struct addrinfo ai[2];
	memset(a, 0, sizeof a);
	memset(ai, 0, sizeof ai);
	for (int i = 0; i < 2; i++) {
		a[i].sin_family = AF_INET;
		a[i].sin_port = htons((uint16_t)port);
		a[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)i);
		ai[i].ai_family = AF_INET;
		ai[i].ai_socktype = SOCK_STREAM;
		ai[i].ai_addr = (struct sockaddr *)&a[i];
		ai[i].ai_addrlen = sizeof a[i];
	}
	ai[0].ai_next = &ai[1];
	int64_t t0 = weft_now();
	weft_stream_t *s;
	CHECK_EQ(weft__connect_list(&s, ai), 0);
	/* Not before the stagger: the first attempt hung (a lower bound, so
	 * no load can make it fail). */
	CHECK(weft_now() - t0 >= 240 * MS);
	struct sockaddr_in pa;
	socklen_t pl = sizeof pa;
	CHECK_EQ(weft_stream_peer_address(s, (struct sockaddr *)&pa, &pl), 0);
	CHECK_EQ(ntohl(pa.sin_addr.s_addr), INADDR_LOOPBACK + 1);
	weft_stream_t *in;
	CHECK_EQ(weft_listener_accept(good, &in), 0);
	weft_stream_close(in);
	weft_stream_close(s);
	for (int i = 0; i < nheld; i++)
		weft_stream_close(held[i]);
	weft_listener_close(hole);
	weft_listener_close(good);
	return 0;
}

static void test_net__happy_eyeballs_falls_back_after_the_stagger(void **state)
{
	int fds = weft_test_count_fds();
	weft_test_root(state, eyeballs_root, NULL);
	/* The losing attempt's socket was closed. */
	assert_int_equal(weft_test_count_fds(), fds);
}

/* }======================================================= */

/* {======================================================= UNIX, DNS */

static int unix_root(void *arg)
{
	const char *path = arg;
	unlink(path);
	weft_listener_t *l;
	CHECK_EQ(weft_unix_listen(&l, path, 0), 0);
	CHECK_EQ(weft_listener_port(l), -EINVAL);
	weft_stream_t *c, *s;
	CHECK_EQ(weft_unix_connect(&c, path), 0);
	CHECK_EQ(weft_listener_accept(l, &s), 0);
	CHECK_EQ(weft_stream_write(c, "unix", 4), 0);
	char buf[4];
	CHECK_EQ(weft_stream_read_exactly(s, buf, 4, NULL), 0);
	CHECK(memcmp(buf, "unix", 4) == 0);
	CHECK_EQ(weft_stream_set_nodelay(s, 1), -EINVAL);
	weft_stream_close(c);
	CHECK_EQ(weft_stream_read(s, buf, 4), 0);
	weft_stream_close(s);
	weft_listener_close(l);
	unlink(path);
	weft_stream_t *x;
	CHECK_EQ(weft_unix_connect(&x, path), -ENOENT);
	return 0;
}

static void test_net__unix_domain_stream(void **state)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/weft-test-%d.sock", (int)getpid());
	weft_test_root(state, unix_root, path);
}

/* Descriptors passed over a UNIX stream: the receiver reads, through
 * the descriptor it got, a pipe the sender made. */
static int fds_root(void *arg)
{
	const char *path = arg;
	unlink(path);
	weft_listener_t *l;
	CHECK_EQ(weft_unix_listen(&l, path, 0), 0);
	weft_stream_t *c, *s;
	CHECK_EQ(weft_unix_connect(&c, path), 0);
	CHECK_EQ(weft_listener_accept(l, &s), 0);
	int p[2];
	CHECK_EQ(pipe(p), 0);
	int two[2] = { p[0], p[1] };
	CHECK_EQ(weft_stream_send_fds(c, "fds!", 4, two, 2), 0);
	close(p[0]);
	close(p[1]);
	char buf[8];
	int got[WEFT_STREAM_MAX_FDS];
	size_t n = 99;
	CHECK_EQ(weft_stream_recv_fds(s, buf, sizeof buf, got,
			 WEFT_STREAM_MAX_FDS, &n),
		4);
	CHECK(memcmp(buf, "fds!", 4) == 0);
	CHECK_EQ(n, 2);
	/* The duplicates work: write into the pipe, read it back. */
	CHECK_EQ(write(got[1], "via", 3), 3);
	CHECK_EQ(read(got[0], buf, 3), 3);
	CHECK(memcmp(buf, "via", 3) == 0);
	CHECK(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	close(got[0]);
	close(got[1]);
	/* Plain bytes: no descriptor. */
	CHECK_EQ(weft_stream_write(c, "x", 1), 0);
	CHECK_EQ(weft_stream_recv_fds(s, buf, sizeof buf, got, 1, &n), 1);
	CHECK_EQ(n, 0);
	/* Bad arguments; TCP streams carry none. */
	int one = 0;
	CHECK_EQ(weft_stream_send_fds(c, "x", 0, &one, 1), -EINVAL);
	CHECK_EQ(weft_stream_send_fds(c, "x", 1, &one, 0), -EINVAL);
	CHECK_EQ(weft_stream_send_fds(c, "x", 1, &one, WEFT_STREAM_MAX_FDS + 1),
		-EINVAL);
	CHECK_EQ(weft_stream_recv_fds(s, buf, sizeof buf, got, 0, &n), -EINVAL);
	int bad = 1000000;
	CHECK_EQ(weft_stream_send_fds(c, "x", 1, &bad, 1), -EBADF);
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) == 0) {
		CHECK_EQ(weft_stream_send_fds(a, "x", 1, &one, 1), -EINVAL);
		CHECK_EQ(weft_stream_recv_fds(b, buf, 1, got, 1, &n), -EINVAL);
		weft_stream_close(a);
		weft_stream_close(b);
	}
	weft_stream_close(c);
	weft_stream_close(s);
	weft_listener_close(l);
	unlink(path);
	return 0;
}

static void test_net__unix_stream_passes_descriptors(void **state)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/weft-test-fds-%d.sock",
		(int)getpid());
	weft_test_root(state, fds_root, path);
}

static int dns_root(void *arg)
{
	(void)arg;
	struct addrinfo *res = NULL;
	CHECK_EQ(weft_getaddrinfo("localhost", "80", NULL, &res), 0);
	CHECK(res != NULL);
	weft_freeaddrinfo(res);
	int rc = weft_getaddrinfo("no-such-host.invalid", NULL, NULL, &res);
	CHECK(rc == WEFT_ENOTFOUND || rc == WEFT_EDNS);
	weft_stream_t *s;
	rc = weft_tcp_connect(&s, "no-such-host.invalid", 80);
	CHECK(rc == WEFT_ENOTFOUND || rc == WEFT_EDNS);
	CHECK_EQ(weft_getaddrinfo(NULL, NULL, NULL, &res), -EINVAL);
	/* No such service, no address of the asked family: permanent
	 * answers, not resolver failures; hints it refuses: -EINVAL. */
	struct addrinfo v6 = { .ai_family = AF_INET6 };
	CHECK_EQ(weft_getaddrinfo("127.0.0.1", NULL, &v6, &res),
		WEFT_ENOTFOUND);
	CHECK_EQ(weft_getaddrinfo("localhost", "no-such-service-weft", NULL,
			 &res),
		WEFT_ENOTFOUND);
	struct addrinfo bad = { .ai_flags = 0x7f000000 };
	CHECK_EQ(weft_getaddrinfo("localhost", NULL, &bad, &res), -EINVAL);
	/* Cancelled on entry: a checkpoint, nothing submitted. */
	weft_scope_t *sc;
	weft_move_on_after(&sc, 0);
	CHECK_EQ(weft_getaddrinfo("localhost", NULL, NULL, &res), -ECANCELED);
	weft_scope_exit(sc);
	weft_scope_destroy(sc);
	return 0;
}

WEFT_TEST_ROOT(net, getaddrinfo_and_failures, dns_root, NULL)

/* The edges net.h states: read_exactly of 0 bytes is 0 (read's is
 * -EINVAL), read_until with room for less than its delimiter -EINVAL,
 * and an address cut to a small buffer says its full length. */
static int edges_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	CHECK_EQ(weft_test_tcp_pair(&a, &b), 0);
	size_t got = 7;
	CHECK_EQ(weft_stream_read_exactly(a, NULL, 0, &got), 0);
	CHECK_EQ(got, 0);
	char buf[8];
	CHECK_EQ(weft_stream_read(a, buf, 0), -EINVAL);
	CHECK_EQ(weft_stream_read_until(a, buf, 1, "\r\n", 2), -EINVAL);
	struct sockaddr_in in;
	socklen_t len = 4;
	CHECK_EQ(weft_stream_peer_address(a, (struct sockaddr *)&in, &len), 0);
	CHECK_EQ(len, sizeof in);
	CHECK_EQ(weft_stream_close(a), 0);
	CHECK_EQ(weft_stream_close(b), 0);
	return 0;
}
WEFT_TEST_ROOT(net, stated_edges_of_reads_and_addresses, edges_root, NULL)

static int nameinfo_root(void *arg)
{
	(void)arg;
	struct sockaddr_in in4 = { .sin_family = AF_INET,
		.sin_port = htons(80) };
	in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	char host[256], serv[32];
	/* Numeric: no resolver involved. */
	CHECK_EQ(weft_getnameinfo((struct sockaddr *)&in4,
			 NI_NUMERICHOST | NI_NUMERICSERV, host, sizeof host,
			 serv, sizeof serv),
		0);
	CHECK(strcmp(host, "127.0.0.1") == 0);
	CHECK(strcmp(serv, "80") == 0);
	/* By name: /etc/hosts and /etc/services know these. */
	CHECK_EQ(weft_getnameinfo((struct sockaddr *)&in4, 0, host, sizeof host,
			 serv, sizeof serv),
		0);
	CHECK(strcmp(host, "localhost") == 0 ||
		strncmp(host, "localhost.", 10) == 0);
	CHECK(strcmp(serv, "http") == 0);
	/* Only one of the two; a buffer too short. */
	CHECK_EQ(weft_getnameinfo((struct sockaddr *)&in4, NI_NUMERICSERV, NULL,
			 0, serv, sizeof serv),
		0);
	CHECK_EQ(weft_getnameinfo((struct sockaddr *)&in4, NI_NUMERICHOST, host,
			 4, NULL, 0),
		-ENOSPC);
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
		.sin6_port = htons(8080),
		.sin6_addr = IN6ADDR_LOOPBACK_INIT };
	CHECK_EQ(weft_getnameinfo((struct sockaddr *)&in6,
			 NI_NUMERICHOST | NI_NUMERICSERV, host, sizeof host,
			 serv, sizeof serv),
		0);
	CHECK(strcmp(host, "::1") == 0);
	CHECK(strcmp(serv, "8080") == 0);
	/* Bad arguments. */
	CHECK_EQ(weft_getnameinfo(NULL, 0, host, sizeof host, NULL, 0),
		-EINVAL);
	CHECK_EQ(weft_getnameinfo((struct sockaddr *)&in4, 0, NULL, 0, NULL, 0),
		-EINVAL);
	struct sockaddr un = { .sa_family = AF_UNIX };
	CHECK_EQ(weft_getnameinfo(&un, 0, host, sizeof host, NULL, 0), -EINVAL);
	return 0;
}
WEFT_TEST_ROOT(net, getnameinfo_numeric_and_by_name, nameinfo_root, NULL)

static void test_net__bad_arguments(void **state)
{
	(void)state;
	weft_stream_t *s;
	weft_listener_t *l;
	assert_int_equal(weft_tcp_listen(NULL, "127.0.0.1", 0, 0), -EINVAL);
	assert_int_equal(weft_tcp_listen(&l, "127.0.0.1", 70000, 0), -EINVAL);
	assert_int_equal(weft_tcp_listen(&l, "127.0.0.1", 0, 0),
		WEFT_ENOTFIBER);
	assert_int_equal(weft_tcp_connect(&s, NULL, 80), -EINVAL);
	assert_int_equal(weft_tcp_connect(&s, "127.0.0.1", 0), -EINVAL);
	assert_int_equal(weft_tcp_connect_addr(&s, NULL), -EINVAL);
	/* Port 0, as weft_tcp_connect's (it was -ECONNREFUSED). */
	struct sockaddr_in zero = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(weft_tcp_connect_addr(&s, (struct sockaddr *)&zero),
		-EINVAL);
	assert_int_equal(weft_stream_read(NULL, &s, 1), -EINVAL);
	assert_int_equal(weft_stream_write(NULL, "", 0), -EINVAL);
	assert_int_equal(weft_stream_close(NULL), -EINVAL);
	assert_int_equal(weft_listener_close(NULL), -EINVAL);
	assert_int_equal(weft_listener_accept(NULL, &s), -EINVAL);
	assert_int_equal(weft_serve(NULL, NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(weft_unix_listen(&l, NULL, 0), -EINVAL);
	assert_int_equal(weft_getaddrinfo("x", NULL, NULL, NULL), -EINVAL);
	assert_int_equal(weft_getaddrinfo("x", NULL, NULL,
				 (struct addrinfo **)&s),
		WEFT_ENOTFIBER);
}

/* }======================================================= */

/* {======================================================= serve stop race */

/* A connection accepted just as the stop event is set is handled like any
 * other: its handler does not start cancelled (nobody cancelled g; net.h:
 * serve "leaves the handlers running in g").  It once did: the start ran
 * under the accept loop's scope, which the stop cancels, and a task
 * started under a cancelled scope stays cancelled (rule 16).  A plain
 * thread connects in a loop and another sets the stop after a few
 * connects, round after round; a fuzz, not a proof (the outsider's
 * program that found it saw 9-19 cancelled handlers in 150 rounds). */
#define RACE_ROUNDS 60

static int raw_connect(int port); /* in "serve policy" */

struct stop_race {
	atomic_int port, round, connects, handlers, cancelled;
	atomic_bool over, stopper_done;
	weft_event_t *stop[RACE_ROUNDS];
};

static int race_handler(weft_stream_t *s, void *arg)
{
	(void)s;
	struct stop_race *r = arg;
	atomic_fetch_add(&r->handlers, 1);
	if (weft_checkpoint() == -ECANCELED)
		atomic_fetch_add(&r->cancelled, 1);
	return 0;
}

static void *race_client(void *arg)
{
	struct stop_race *r = arg;
	while (!atomic_load(&r->over)) {
		int port = atomic_load(&r->port);
		int fd = port != 0 ? raw_connect(port) : -1;
		if (fd >= 0) {
			atomic_fetch_add(&r->connects, 1);
			close(fd);
		} else {
			usleep(100);
		}
	}
	return NULL;
}

/* A plain thread, as a signal handler's or another library's would be:
 * a task setting the stop does not hit the window. */
static void *race_stopper(void *arg)
{
	struct stop_race *r = arg;
	for (int i = 0; i < RACE_ROUNDS; i++) {
		while (atomic_load(&r->round) != i + 1)
			usleep(50);
		int c0 = atomic_load(&r->connects);
		while (atomic_load(&r->connects) < c0 + 3)
			usleep(20);
		weft_event_set(r->stop[i]);
	}
	atomic_store(&r->stopper_done, true);
	return NULL;
}

static int stop_race_root(void *arg)
{
	struct stop_race *r = arg;
	for (int i = 0; i < RACE_ROUNDS; i++)
		CHECK_EQ(weft_event_create(&r->stop[i]), 0);
	pthread_t stopper;
	CHECK_EQ(pthread_create(&stopper, NULL, race_stopper, r), 0);
	for (int i = 0; i < RACE_ROUNDS; i++) {
		weft_listener_t *l;
		CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0, 0), 0);
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		atomic_store(&r->port, weft_listener_port(l));
		atomic_store(&r->round, i + 1);
		CHECK_EQ(weft_serve(l, g, race_handler, r, r->stop[i]), 0);
		atomic_store(&r->port, 0);
		CHECK_EQ(weft_listener_close(l), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	/* The last set has returned: the events may go. */
	while (!atomic_load(&r->stopper_done))
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	pthread_detach(stopper);
	for (int i = 0; i < RACE_ROUNDS; i++)
		CHECK_EQ(weft_event_destroy(r->stop[i]), 0);
	atomic_store(&r->over, true);
	return 0;
}

static void test_net__a_stop_racing_accepts_cancels_no_handler(void **state)
{
	struct stop_race *r = calloc(1, sizeof *r);
	assert_non_null(r);
	pthread_t client;
	assert_int_equal(pthread_create(&client, NULL, race_client, r), 0);
	weft_test_root(state, stop_race_root, r);
	atomic_store(&r->over, true);
	pthread_join(client, NULL);
	assert_true(atomic_load(&r->handlers) > 0);
	assert_int_equal(atomic_load(&r->cancelled), 0);
	free(r);
}

/* }======================================================= */

/* {======================================================= serve policy */

/* weft_serve's failure policy (net.h): one connection's failure, whether
 * its handler's or its task's that could not start, ends that connection
 * only.  The server under test echoes, and fails a connection whose
 * client sends "F". */
struct policy {
	weft_listener_t *l;
	weft_event_t *stop;
	atomic_int failures;	 /* on_conn_failure calls */
	atomic_int eio_failures; /* of which the handler's -EIO */
	atomic_int no_task;	 /* of which "no task could be started" */
	int serve_rc;
	int join_rc;
	atomic_bool serve_returned;
};

static void policy_failed(int code, const char *msg, void *arg)
{
	struct policy *pl = arg;
	atomic_fetch_add(&pl->failures, 1);
	if (code == -EIO && strcmp(msg, "asked to fail") == 0)
		atomic_fetch_add(&pl->eio_failures, 1);
	if (strstr(msg, "no task could be started") != NULL)
		atomic_fetch_add(&pl->no_task, 1);
}

static int policy_handler(weft_stream_t *s, void *arg)
{
	(void)arg;
	char buf[256];
	for (;;) {
		ssize_t n = weft_stream_read(s, buf, sizeof buf);
		if (n <= 0)
			return n == 0 || n == -ECONNRESET ? 0 : (int)n;
		if (buf[0] == 'F')
			return weft_fail(-EIO, "asked to fail");
		int w = weft_stream_write(s, buf, (size_t)n);
		if (w < 0)
			return w == -EPIPE || w == -ECONNRESET ? 0 : w;
	}
}

static int policy_serve_main(void *arg)
{
	struct policy *pl = arg;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (!CHECK_EQ(rc, 0))
		return rc;
	weft_serve_opts_t o = { .stop = pl->stop,
		.on_conn_failure = policy_failed };
	pl->serve_rc = weft_serve_opts(pl->l, g, policy_handler, pl, &o);
	atomic_store(&pl->serve_returned, true);
	pl->join_rc = weft_group_join(g, NULL);
	return 0;
}

static int policy_start(struct policy *pl, weft_group_t *g)
{
	memset(pl, 0, sizeof *pl);
	if (!CHECK_EQ(weft_tcp_listen(&pl->l, "127.0.0.1", 0, 0), 0))
		return -1;
	if (!CHECK_EQ(weft_event_create(&pl->stop), 0))
		return -1;
	return weft_group_spawn(g, policy_serve_main, pl);
}

/* A plain blocking client socket (no weft allocation on the client side,
 * which matters under fault injection); the loopback connect completes
 * in the kernel without the server.  Then non-blocking. */
static int raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return fd;
}

/* Sends one byte and waits (polling with weft_sleep, at most ~10 s) for
 * the echo: 1 echoed, 0 closed by the server, -1 no answer in time. */
static int raw_echo(int fd, char byte)
{
	if (send(fd, &byte, 1, MSG_NOSIGNAL) != 1)
		return 0;
	for (int i = 0; i < 2000; i++) {
		char b;
		ssize_t n = recv(fd, &b, 1, 0);
		if (n == 1)
			return b == byte ? 1 : -1;
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return 0;
		weft_sleep(5 * MS);
	}
	return -1;
}

static int handler_failure_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct policy pl;
	if (policy_start(&pl, g) < 0)
		return weft_group_join(g, NULL);
	int port = weft_listener_port(pl.l);
	int witness = raw_connect(port);
	CHECK(witness >= 0);
	CHECK_EQ(raw_echo(witness, 'a'), 1);
	/* Three connections fail in their handler: each is closed... */
	for (int i = 0; i < 3; i++) {
		int bad = raw_connect(port);
		CHECK(bad >= 0);
		CHECK_EQ(raw_echo(bad, 'F'), 0);
		close(bad);
	}
	/* ...and neither the live connection nor the server noticed. */
	CHECK_EQ(raw_echo(witness, 'b'), 1);
	int fresh = raw_connect(port);
	CHECK_EQ(raw_echo(fresh, 'c'), 1);
	close(fresh);
	close(witness);
	CHECK(!atomic_load(&pl.serve_returned));
	weft_event_set(pl.stop);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(pl.serve_rc, 0);
	CHECK_EQ(pl.join_rc, 0); /* the failures never reached the group */
	CHECK_EQ(atomic_load(&pl.failures), 3);
	CHECK_EQ(atomic_load(&pl.eio_failures), 3); /* once each */
	weft_listener_close(pl.l);
	weft_event_destroy(pl.stop);
	return 0;
}

WEFT_TEST_ROOT(net, serve_handler_failure_ends_only_its_connection,
	handler_failure_root, NULL)

/* For n = 1, 2, ...: the n-th weft allocation after a client connects
 * fails (the stream for the next accept, the new task's record or stack,
 * the handler's...).  Every client stays connected, so each new
 * connection needs a stack the pools no longer have.  Whatever failed,
 * the connection that met it is answered or closed, the one connected
 * before the loop keeps working, and the server keeps accepting. */
#define POLICY_MAX_CLIENTS 64

static int alloc_failure_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct policy pl;
	if (policy_start(&pl, g) < 0)
		return weft_group_join(g, NULL);
	int port = weft_listener_port(pl.l);
	int witness = raw_connect(port);
	CHECK(witness >= 0);
	CHECK_EQ(raw_echo(witness, 'a'), 1);
	int clients[POLICY_MAX_CLIENTS];
	int nclients = 0, injected_runs = 0;
	for (long n = 1; n <= POLICY_MAX_CLIENTS; n++) {
		long before = weft_debug_injected_failures();
		weft_debug_fail_alloc(n);
		int fd = raw_connect(port);
		int echoed = fd >= 0 ? raw_echo(fd, 'x') : 0;
		weft_debug_fail_alloc(0);
		if (fd >= 0)
			clients[nclients++] = fd;
		/* Answered or closed, never left hanging (a connection whose
		 * accept met the failure waits 100 ms in the queue). */
		CHECK(echoed >= 0);
		CHECK_EQ(raw_echo(witness, 'w'), 1);
		if (weft_debug_injected_failures() == before)
			break; /* n is past the last allocation of a round */
		injected_runs++;
	}
	CHECK(injected_runs > 0);
	int fresh = raw_connect(port);
	CHECK_EQ(raw_echo(fresh, 'c'), 1);
	close(fresh);
	for (int i = 0; i < nclients; i++)
		close(clients[i]);
	close(witness);
	CHECK(!atomic_load(&pl.serve_returned));
	weft_event_set(pl.stop);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(pl.serve_rc, 0);
	CHECK_EQ(pl.join_rc, 0);
	/* The round whose failure hit the new task's stack or record. */
	CHECK(atomic_load(&pl.no_task) >= 1);
	weft_listener_close(pl.l);
	weft_event_destroy(pl.stop);
	return 0;
}

WEFT_TEST_ROOT(net, serve_task_that_cannot_start_ends_only_its_connection,
	alloc_failure_root, NULL)

/* }======================================================= */

/* {======================================================= scale */

/* Out of fds: the serve loop survives and accepts again afterwards. */
static int emfile_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	weft_group_open(&g);
	struct server sv;
	CHECK_EQ(server_start(&sv, g), 0);
	int port = weft_listener_port(sv.l);
	struct rlimit old, low;
	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = (rlim_t)weft_test_count_fds() + 24;
	setrlimit(RLIMIT_NOFILE, &low);
	weft_stream_t *held[64];
	int n = 0, rc = 0;
	while (n < 64) {
		rc = weft_test_connect_local(&held[n], port);
		if (rc < 0)
			break;
		n++;
	}
	CHECK(rc == -EMFILE || rc == -ENFILE);
	/* The server is out of fds too: give it time to hit EMFILE. */
	weft_sleep(150 * MS);
	for (int i = 0; i < n; i++)
		weft_stream_close(held[i]);
	setrlimit(RLIMIT_NOFILE, &old);
	/* Accepting again: a fresh client gets its echo. */
	weft_stream_t *c;
	CHECK_EQ(weft_test_connect_local(&c, port), 0);
	weft_scope_t *sc;
	weft_fail_after(&sc, 10 * 1000 * MS);
	CHECK_EQ(weft_stream_write(c, "ok", 2), 0);
	char buf[2];
	CHECK_EQ(weft_stream_read_exactly(c, buf, 2, NULL), 0);
	CHECK_EQ(weft_scope_exit(sc), 0);
	weft_scope_destroy(sc);
	weft_stream_close(c);
	server_stop(&sv);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(net, emfile_then_accept_loop_continues, emfile_root, NULL)

/* A separate process (its own fd table) holds `n` connections open at
 * once, echoes a message on each, then closes them all. */
static int many_clients_child(int port, int n)
{
	int *fds = malloc(sizeof(int) * (size_t)n);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 ||
			connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0)
			return 10;
	}
	for (int i = 0; i < n; i++)
		if (write(fds[i], &i, sizeof i) != sizeof i)
			return 11;
	for (int i = 0; i < n; i++) {
		int v = -1;
		if (read(fds[i], &v, sizeof v) != sizeof v || v != i)
			return 12;
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

struct many {
	int n;
	int port_pipe; /* write end: the port for the child */
	pid_t child;
	int status;
};

static int many_root(void *arg)
{
	struct many *m = arg;
	weft_group_t *g;
	weft_group_open(&g);
	struct server sv;
	CHECK_EQ(server_start(&sv, g), 0);
	int port = weft_listener_port(sv.l);
	CHECK_EQ(write(m->port_pipe, &port, sizeof port), sizeof port);
	/* Wait (parked, polling) for the child to finish. */
	for (int i = 0; i < 120 * 100; i++) {
		pid_t p = waitpid(m->child, &m->status, WNOHANG);
		if (p == m->child)
			break;
		weft_sleep(10 * MS);
	}
	server_stop(&sv);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&sv.conns), m->n);
	CHECK_EQ(atomic_load(&sv.max_live), m->n);
	server_free(&sv);
	return 0;
}

static void test_net__ten_thousand_concurrent_connections(void **state)
{
	struct many m = { .n = (int)weft_test_scale(10000) };
	int p[2];
	assert_int_equal(pipe(p), 0);
	m.child = fork();
	assert_true(m.child >= 0);
	if (m.child == 0) {
		close(p[1]);
		int port;
		if (read(p[0], &port, sizeof port) != sizeof port)
			_exit(9);
		_exit(many_clients_child(port, m.n));
	}
	close(p[0]);
	m.port_pipe = p[1];
	m.status = -1;
	weft_test_root(state, many_root, &m);
	close(p[1]);
	assert_true(WIFEXITED(m.status));
	assert_int_equal(WEXITSTATUS(m.status), 0);
}

struct seq {
	long n;
	long live_after_warmup;
	int fds_after_warmup;
};

static int one_shot_handler(weft_stream_t *s, void *arg)
{
	(void)arg;
	/* The server closes first (its side keeps TIME_WAIT, so the
	 * client's ports are reusable at once). */
	CHECK_EQ(weft_stream_write(s, "!", 1), 0);
	return 0;
}

static int seq_serve_main(void *arg)
{
	struct server *sv = arg;
	weft_group_t *g;
	weft_group_open(&g);
	sv->serve_rc = weft_serve(sv->l, g, one_shot_handler, NULL, sv->stop);
	return weft_group_join(g, NULL);
}

static int seq_root(void *arg)
{
	struct seq *q = arg;
	weft_group_t *g;
	weft_group_open(&g);
	struct server sv;
	memset(&sv, 0, sizeof sv);
	CHECK_EQ(weft_tcp_listen(&sv.l, "127.0.0.1", 0, 0), 0);
	weft_event_create(&sv.stop);
	weft_group_spawn(g, seq_serve_main, &sv);
	int port = weft_listener_port(sv.l);
	for (long i = 0; i < q->n; i++) {
		weft_stream_t *c;
		int rc = weft_test_connect_local(&c, port);
		if (!CHECK_EQ(rc, 0))
			break;
		char b;
		CHECK_EQ(weft_stream_read(c, &b, 1), 1);
		CHECK_EQ(weft_stream_read(c, &b, 1), 0);
		weft_stream_close(c);
		if (i == 999) {
			weft_sleep(50 * MS); /* let handlers finish */
			weft_debug_stats_t st;
			weft_debug_stats(&st);
			q->live_after_warmup = st.live_bytes;
			q->fds_after_warmup = weft_test_count_fds();
		}
	}
	/* The last handlers may still be finishing: wait for them (no
	 * timing assertion: a bounded poll for the condition). */
	weft_debug_stats_t st;
	for (int i = 0; i < 500; i++) {
		weft_debug_stats(&st);
		if (st.live_bytes <= q->live_after_warmup + 1024 * 1024 &&
			weft_test_count_fds() == q->fds_after_warmup)
			break;
		weft_sleep(10 * MS);
	}
	/* Caches (task records, stacks) may grow with the largest number of
	 * handlers that overlapped; a per-connection leak of even 16 bytes
	 * would exceed the bound over the ~99,000 connections after the
	 * warm-up (and the leak check at runtime destroy sees any byte). */
	CHECK(st.live_bytes <= q->live_after_warmup + 1024 * 1024);
	CHECK_EQ(weft_test_count_fds(), q->fds_after_warmup);
	server_stop(&sv);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	server_free(&sv);
	return 0;
}

static void test_net__hundred_thousand_sequential_connections(void **state)
{
	struct seq q = { .n = weft_test_scale(100000) };
	if (q.n < 2000)
		q.n = 2000;
	weft_test_root(state, seq_root, &q);
}

/* }======================================================= */

/* {======================================================= reuseport */

struct rp_accept {
	weft_listener_t *l;
	int accepted;
};

/* Accepts (and closes) until cancelled. */
static int rp_acceptor(void *arg)
{
	struct rp_accept *a = arg;
	for (;;) {
		weft_stream_t *s;
		int rc = weft_listener_accept(a->l, &s);
		if (rc == -ECANCELED)
			return 0;
		CHECK_EQ(rc, 0);
		a->accepted++;
		weft_stream_close(s);
	}
}

#define RP_CONNS 64

/* Two listeners share one port with WEFT_LISTEN_REUSEPORT and both
 * accept; without the flag the second bind fails. */
static int reuseport_root(void *arg)
{
	(void)arg;
	struct rp_accept a[2] = { { 0 } };
	CHECK_EQ(weft_tcp_listen_flags(&a[0].l, "127.0.0.1", 0, 0,
			 WEFT_LISTEN_REUSEPORT),
		0);
	int port = weft_listener_port(a[0].l);
	CHECK(port > 0);
	weft_listener_t *no;
	CHECK_EQ(weft_tcp_listen(&no, "127.0.0.1", port, 0), -EADDRINUSE);
	CHECK_EQ(weft_tcp_listen_flags(&no, "127.0.0.1", port, 0, 2), -EINVAL);
	CHECK_EQ(weft_tcp_listen_flags(&a[1].l, "127.0.0.1", port, 0,
			 WEFT_LISTEN_REUSEPORT),
		0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, rp_acceptor, &a[0]), 0);
	CHECK_EQ(weft_group_spawn(g, rp_acceptor, &a[1]), 0);
	/* Each connection from its own source port: the kernel hashes the
	 * 4-tuple, so 64 of them all landing on one listener would be a
	 * 1 in 2^63 event. */
	for (int i = 0; i < RP_CONNS; i++) {
		weft_stream_t *s;
		CHECK_EQ(weft_tcp_connect(&s, "127.0.0.1", port), 0);
		char c;
		/* The acceptor closed it: end of stream. */
		CHECK_EQ(weft_stream_read(s, &c, 1), 0);
		weft_stream_close(s);
	}
	CHECK_EQ(weft_group_cancel(g, "done"), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(a[0].accepted + a[1].accepted, RP_CONNS);
	CHECK(a[0].accepted > 0);
	CHECK(a[1].accepted > 0);
	CHECK_EQ(weft_listener_close(a[0].l), 0);
	CHECK_EQ(weft_listener_close(a[1].l), 0);
	return 0;
}
WEFT_TEST_ROOT(net, reuseport_listeners_share_a_port, reuseport_root, NULL)

/* }======================================================= */

int main(void)
{
	signal(SIGPIPE, SIG_DFL); /* prove MSG_NOSIGNAL, not SIG_IGN */
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_net__echo_many_clients_through_serve),
		WEFT_TEST(test_net__reuseport_listeners_share_a_port),
		WEFT_TEST(test_net__half_close_sends_eof_and_keeps_reading),
		WEFT_TEST(test_net__read_until_keeps_bytes_after_the_delimiter),
		WEFT_TEST(test_net__refused_and_address_in_use),
		WEFT_TEST(test_net__peer_reset_is_an_error_not_a_signal),
		WEFT_TEST(test_net__cancelled_read_consumes_nothing),
		WEFT_TEST(test_net__second_reader_gets_ebusy),
		WEFT_TEST(test_net__cancelled_accept_takes_nothing),
		WEFT_TEST(test_net__cancelled_write_breaks_the_stream),
		WEFT_TEST(test_net__cancelled_connect_leaves_no_socket),
		WEFT_TEST(test_net__socket_options_and_addresses),
		WEFT_TEST(
			test_net__happy_eyeballs_falls_back_after_the_stagger),
		WEFT_TEST(test_net__unix_domain_stream),
		WEFT_TEST(test_net__getaddrinfo_and_failures),
		WEFT_TEST(test_net__stated_edges_of_reads_and_addresses),
		WEFT_TEST(test_net__a_stop_racing_accepts_cancels_no_handler),
		WEFT_TEST(test_net__getnameinfo_numeric_and_by_name),
		WEFT_TEST(test_net__unix_stream_passes_descriptors),
		cmocka_unit_test(test_net__bad_arguments),
		WEFT_TEST(test_net__emfile_then_accept_loop_continues),
		WEFT_TEST(
			test_net__serve_handler_failure_ends_only_its_connection),
		WEFT_TEST(
			test_net__serve_task_that_cannot_start_ends_only_its_connection),
		WEFT_TEST_AT(test_net__ten_thousand_concurrent_connections, 2),
		WEFT_TEST_AT(test_net__hundred_thousand_sequential_connections,
			2),
	};
	return WEFT_RUN_TESTS(tests);
}
