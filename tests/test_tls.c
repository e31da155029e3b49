/* TLS streams (weft/tls.h): a weft client and a weft server in one
 * runtime, over loopback, with certificates made at test time by
 * tests/integration/tls_certs.sh (the openssl CLI) in a temporary
 * directory. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "weft/net.h"
#include "weft/tls.h"

#define MS ((int64_t)1000 * 1000)

static char certdir[128];

/* certdir/name, in one of a few rotating static buffers. */
static const char *cert(const char *name)
{
	static char bufs[8][256];
	static int next;
	char *b = bufs[next++ % 8];
	snprintf(b, sizeof bufs[0], "%s/%s", certdir, name);
	return b;
}

/* {======================================================= server */

enum mode {
	ECHO,	  /* echo until close_notify, then close */
	FAIL,	  /* the handshake is expected to fail */
	TRUNCATE, /* write "x", end the TCP stream without close_notify */
	DELAYED,  /* wait for `go`, write "hello world", read to the end */
	SINK,	  /* read nothing until `go` */
};

struct srv {
	enum mode mode;
	const char *cert_file;
	const char *alpn;
	weft_listener_t *l;
	weft_event_t *go;
	int accept_rc;
	char why[256];
	char sni[256];
	char alpn_got[64];
	size_t echoed;
};

static int server_task(void *arg)
{
	struct srv *sv = arg;
	weft_stream_t *s;
	if (!CHECK_EQ(weft_listener_accept(sv->l, &s), 0))
		return 0;
	weft_tls_ctx_options_t o = { .server = 1,
		.cert_file = sv->cert_file ? sv->cert_file : cert("server.pem"),
		.key_file = cert("server.key"),
		.alpn = sv->alpn };
	weft_tls_ctx_t *ctx;
	if (!CHECK_EQ(weft_tls_ctx_create(&ctx, &o, sv->why, sizeof sv->why),
		    0)) {
		weft_stream_close(s);
		return 0;
	}
	weft_tls_t *t;
	sv->accept_rc = weft_tls_accept(&t, s, ctx, sv->why, sizeof sv->why);
	if (sv->mode == FAIL) {
		CHECK(sv->accept_rc < 0);
		if (sv->accept_rc == 0)
			weft_tls_close(t);
		weft_tls_ctx_destroy(ctx);
		return 0;
	}
	if (!CHECK_EQ(sv->accept_rc, 0)) {
		weft_tls_ctx_destroy(ctx);
		return 0;
	}
	snprintf(sv->sni, sizeof sv->sni, "%s", weft_tls_server_name(t));
	snprintf(sv->alpn_got, sizeof sv->alpn_got, "%s", weft_tls_alpn(t));
	CHECK(strcmp(weft_tls_verify_result(t), "no verification") == 0);
	char buf[8192];
	ssize_t n;
	switch (sv->mode) {
	case ECHO:
		while ((n = weft_tls_read(t, buf, sizeof buf)) > 0) {
			sv->echoed += (size_t)n;
			if (!CHECK_EQ(weft_tls_write(t, buf, (size_t)n), 0))
				break;
		}
		CHECK_EQ(n, 0); /* the client's close_notify */
		break;
	case TRUNCATE:
		CHECK_EQ(weft_tls_write(t, "x", 1), 0);
		CHECK_EQ(weft_stream_shutdown(weft_tls_stream(t)), 0);
		CHECK_EQ(weft_event_wait(sv->go), 0);
		break;
	case DELAYED:
		CHECK_EQ(weft_event_wait(sv->go), 0);
		CHECK_EQ(weft_tls_write(t, "hello world", 11), 0);
		while ((n = weft_tls_read(t, buf, sizeof buf)) > 0)
			;
		CHECK_EQ(n, 0);
		break;
	case SINK: CHECK_EQ(weft_event_wait(sv->go), 0); break;
	case FAIL: break;
	}
	weft_tls_close(t);
	weft_tls_ctx_destroy(ctx);
	return 0;
}

/* Listens on 127.0.0.1 and starts the server task in g. */
static void server_start(struct srv *sv, weft_group_t *g)
{
	CHECK_EQ(weft_tcp_listen(&sv->l, "127.0.0.1", 0, 0), 0);
	CHECK_EQ(weft_event_create(&sv->go), 0);
	CHECK_EQ(weft_group_spawn(g, server_task, sv), 0);
}

static void server_free(struct srv *sv)
{
	weft_listener_close(sv->l);
	weft_event_destroy(sv->go);
}

/* A client context trusting the test CA (ca NULL: ca.pem). */
static weft_tls_ctx_t *client_ctx(const char *ca, const char *alpn,
	int64_t timeout)
{
	weft_tls_ctx_options_t o = { .ca_file = ca ? ca : cert("ca.pem"),
		.alpn = alpn,
		.handshake_timeout_ns = timeout };
	weft_tls_ctx_t *ctx = NULL;
	char why[256];
	CHECK_EQ(weft_tls_ctx_create(&ctx, &o, why, sizeof why), 0);
	return ctx;
}

/* Connects to sv over TLS as `host`; *rc gets the result. */
static weft_tls_t *client_connect(struct srv *sv, weft_tls_ctx_t *ctx,
	const char *host, int *rc, char *why, size_t why_len)
{
	weft_stream_t *s;
	*rc = weft_tcp_connect(&s, "127.0.0.1", weft_listener_port(sv->l));
	if (!CHECK_EQ(*rc, 0))
		return NULL;
	weft_tls_t *t = NULL;
	*rc = weft_tls_connect(&t, s, ctx, host, why, why_len);
	return *rc == 0 ? t : NULL;
}

/* }======================================================= */

/* {======================================================= echo */

struct writer {
	weft_tls_t *t;
	const unsigned char *data;
	size_t len;
};

static int writer_task(void *arg)
{
	struct writer *w = arg;
	for (size_t off = 0; off < w->len; off += 10000) {
		size_t n = w->len - off < 10000 ? w->len - off : 10000;
		if (!CHECK_EQ(weft_tls_write(w->t, w->data + off, n), 0))
			return 0;
	}
	CHECK_EQ(weft_tls_shutdown(w->t), 0);
	CHECK_EQ(weft_tls_shutdown(w->t), 0); /* a second one: nothing */
	CHECK_EQ(weft_tls_write(w->t, "z", 1), WEFT_ECLOSED);
	return 0;
}

/* A writer and a reader on one TLS stream at once, 1 MB each way
 * through the echo server: ALPN agreed, SNI seen, verification ok,
 * close_notify read as the end (0) on both sides. */
static int echo_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct srv sv = { .mode = ECHO, .alpn = "http/1.1,h2" };
	server_start(&sv, g);
	weft_tls_ctx_t *ctx = client_ctx(NULL, "h2,http/1.1", 0);
	int rc;
	char why[256] = "";
	weft_tls_t *t = client_connect(&sv, ctx, "localhost", &rc, why,
		sizeof why);
	if (CHECK_EQ(rc, 0)) {
		CHECK(strcmp(weft_tls_alpn(t), "http/1.1") == 0);
		CHECK(strcmp(weft_tls_server_name(t), "localhost") == 0);
		CHECK(strcmp(weft_tls_verify_result(t), "ok") == 0);
		enum { LEN = 1 << 20 };
		unsigned char *data = malloc(LEN), *back = malloc(LEN);
		for (size_t i = 0; i < LEN; i++)
			data[i] = (unsigned char)(i * 7 + i / 251);
		struct writer w = { t, data, LEN };
		weft_group_t *wg;
		CHECK_EQ(weft_group_open(&wg), 0);
		CHECK_EQ(weft_group_spawn(wg, writer_task, &w), 0);
		size_t got = 0;
		CHECK_EQ(weft_tls_read_exactly(t, back, LEN, &got), 0);
		CHECK_EQ(got, LEN);
		CHECK(memcmp(data, back, LEN) == 0);
		char one;
		CHECK_EQ(weft_tls_read(t, &one, 1), 0); /* close_notify */
		CHECK_EQ(weft_group_join(wg, NULL), 0);
		weft_tls_close(t);
		free(data);
		free(back);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK(strcmp(sv.sni, "localhost") == 0);
	CHECK(strcmp(sv.alpn_got, "http/1.1") == 0);
	CHECK_EQ(sv.echoed, 1 << 20);
	weft_tls_ctx_destroy(ctx);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(tls, echo_alpn_sni_and_close_notify, echo_root, NULL)

/* A numeric address is checked against the certificate's IP entries, and
 * no SNI is sent for it; no common ALPN protocol is no failure. */
static int numeric_host_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct srv sv = { .mode = ECHO, .alpn = "h2" };
	server_start(&sv, g);
	weft_tls_ctx_t *ctx = client_ctx(NULL, "http/1.1", 0);
	int rc;
	char why[256] = "";
	weft_tls_t *t = client_connect(&sv, ctx, "127.0.0.1", &rc, why,
		sizeof why);
	if (CHECK_EQ(rc, 0)) {
		CHECK(strcmp(weft_tls_alpn(t), "") == 0);
		CHECK_EQ(weft_tls_write(t, "ping", 4), 0);
		char buf[4];
		CHECK_EQ(weft_tls_read_exactly(t, buf, 4, NULL), 0);
		CHECK(memcmp(buf, "ping", 4) == 0);
		weft_tls_close(t);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK(strcmp(sv.sni, "") == 0);
	weft_tls_ctx_destroy(ctx);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(tls, numeric_host_and_no_common_alpn, numeric_host_root, NULL)

/* A weft_serve handler's TLS stream borrows the handler's stream, which
 * weft_serve closes: after a good connection (weft_tls_close leaves it
 * open) and after a failed handshake (it stays open).  A second close
 * would be a misuse, an abort in WEFT_DEBUG builds. */
struct serve_tls {
	weft_listener_t *l;
	weft_event_t *stop;
	weft_tls_ctx_t *ctx;
	atomic_int ok, failed;
};

static int tls_handler(weft_stream_t *s, void *arg)
{
	struct serve_tls *st = arg;
	weft_tls_t *t;
	char why[256];
	if (weft_tls_accept_borrowed(&t, s, st->ctx, why, sizeof why) < 0) {
		atomic_fetch_add(&st->failed, 1);
		return 0;
	}
	char buf[64];
	ssize_t n;
	while ((n = weft_tls_read(t, buf, sizeof buf)) > 0)
		CHECK_EQ(weft_tls_write(t, buf, (size_t)n), 0);
	CHECK_EQ(n, 0);
	weft_tls_close(t);
	/* s is open, its write side shut down with the close_notify. */
	CHECK_EQ(weft_stream_write(s, "x", 1), WEFT_ECLOSED);
	atomic_fetch_add(&st->ok, 1);
	return 0;
}

static int serve_task(void *arg)
{
	struct serve_tls *st = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_serve(st->l, g, tls_handler, st, st->stop), 0);
	return weft_group_join(g, NULL);
}

static int serve_root(void *arg)
{
	(void)arg;
	struct serve_tls st = { 0 };
	weft_tls_ctx_options_t o = { .server = 1,
		.cert_file = cert("server.pem"),
		.key_file = cert("server.key") };
	CHECK_EQ(weft_tls_ctx_create(&st.ctx, &o, NULL, 0), 0);
	CHECK_EQ(weft_tcp_listen(&st.l, "127.0.0.1", 0, 0), 0);
	CHECK_EQ(weft_event_create(&st.stop), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, serve_task, &st), 0);
	int port = weft_listener_port(st.l);
	char why[256];
	for (int i = 0; i < 3; i++) {
		/* The second client trusts another CA: its handshake fails
		 * on both sides. */
		weft_tls_ctx_t *ctx = client_ctx(i == 1 ? cert("other.pem")
							: NULL,
			NULL, 0);
		weft_stream_t *s;
		CHECK_EQ(weft_tcp_connect(&s, "127.0.0.1", port), 0);
		weft_tls_t *t;
		int rc = weft_tls_connect(&t, s, ctx, "localhost", why,
			sizeof why);
		if (i == 1) {
			CHECK_EQ(rc, WEFT_ETLS_VERIFY);
		} else if (CHECK_EQ(rc, 0)) {
			char back[3];
			CHECK_EQ(weft_tls_write(t, "abc", 3), 0);
			CHECK_EQ(weft_tls_read_exactly(t, back, 3, NULL), 0);
			CHECK(memcmp(back, "abc", 3) == 0);
			CHECK_EQ(weft_tls_shutdown(t), 0);
			CHECK_EQ(weft_tls_read(t, back, 3), 0);
			weft_tls_close(t);
		}
		weft_tls_ctx_destroy(ctx);
	}
	/* Every handler has ended before stop: the clients waited for the
	 * servers' close_notify, and the failed one's handler ends with
	 * its handshake, which the client's alert ended. */
	for (int i = 0;
		i < 1000 && atomic_load(&st.ok) + atomic_load(&st.failed) < 3;
		i++)
		weft_sleep(WEFT_MSEC);
	CHECK_EQ(weft_event_set(st.stop), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&st.ok), 2);
	CHECK_EQ(atomic_load(&st.failed), 1);
	weft_event_destroy(st.stop);
	weft_listener_close(st.l);
	weft_tls_ctx_destroy(st.ctx);
	return 0;
}

WEFT_TEST_ROOT(tls, serve_handlers_borrow_their_stream, serve_root, NULL)

/* }======================================================= */

/* {======================================================= verification */

struct verify_case {
	const char *server_cert; /* NULL: server.pem */
	const char *host;
	const char *reason; /* expected in the client's why */
};

static int verify_root(void *arg)
{
	const struct verify_case *vc = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct srv sv = { .mode = FAIL,
		.cert_file = vc->server_cert ? cert(vc->server_cert) : NULL };
	server_start(&sv, g);
	weft_tls_ctx_t *ctx = client_ctx(NULL, NULL, 0);
	int rc;
	char why[256] = "";
	weft_tls_t *t = client_connect(&sv, ctx, vc->host, &rc, why,
		sizeof why);
	CHECK(t == NULL);
	CHECK_EQ(rc, WEFT_ETLS_VERIFY);
	if (!CHECK(strstr(why, vc->reason) != NULL))
		fprintf(stderr, "why: %s\n", why);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* The server learnt of it from the client's alert. */
	CHECK_EQ(sv.accept_rc, WEFT_ETLS);
	CHECK(sv.why[0] != '\0');
	weft_tls_ctx_destroy(ctx);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(tls, untrusted_ca_is_a_verify_error, verify_root,
	&(struct verify_case){ "untrusted.pem", "localhost",
		"unable to get local issuer certificate" })
WEFT_TEST_ROOT(tls, expired_certificate_is_a_verify_error, verify_root,
	&(struct verify_case){ "expired.pem", "localhost",
		"certificate has expired" })
WEFT_TEST_ROOT(tls, wrong_host_is_a_verify_error, verify_root,
	&(struct verify_case){ NULL, "example.com", "hostname mismatch" })

/* A host that can be no server's name (empty, or longer than SNI's 255
 * bytes) is -EINVAL before any byte is sent, with verification on or
 * off; the call still takes the stream (the peer reads its end).  An
 * empty host was once -ENOMEM. */
static int bad_host_root(void *arg)
{
	(void)arg;
	char longer[300];
	memset(longer, 'a', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	const char *hosts[] = { "", longer };
	weft_tls_ctx_options_t o = { .insecure_no_verify = 1 };
	weft_tls_ctx_t *ctxs[2] = { client_ctx(NULL, NULL, 0), NULL };
	char why[256] = "";
	CHECK_EQ(weft_tls_ctx_create(&ctxs[1], &o, why, sizeof why), 0);
	for (int c = 0; c < 2; c++)
		for (int h = 0; h < 2; h++) {
			weft_stream_t *ours, *theirs;
			CHECK_EQ(weft_test_tcp_pair(&ours, &theirs), 0);
			weft_tls_t *t = NULL;
			CHECK_EQ(weft_tls_connect(&t, ours, ctxs[c], hosts[h],
					 why, sizeof why),
				-EINVAL);
			CHECK(t == NULL);
			CHECK(strstr(why, "host name") != NULL);
			char byte;
			CHECK_EQ(weft_stream_read(theirs, &byte, 1), 0);
			CHECK_EQ(weft_stream_close(theirs), 0);
		}
	weft_tls_ctx_destroy(ctxs[0]);
	weft_tls_ctx_destroy(ctxs[1]);
	return 0;
}

WEFT_TEST_ROOT(tls, a_host_no_server_can_have_is_einval, bad_host_root, NULL)

/* A context that cannot load its files says which and why. */
static void test_tls__bad_files_fail_the_context(void **state)
{
	(void)state;
	weft_tls_ctx_t *ctx = NULL;
	char why[256] = "";
	weft_tls_ctx_options_t o = { .server = 1,
		.cert_file = cert("server.pem"),
		.key_file = cert("ca.key") };
	assert_int_equal(weft_tls_ctx_create(&ctx, &o, why, sizeof why),
		WEFT_ETLS);
	assert_non_null(strstr(why, "ca.key"));
	assert_non_null(strstr(why, "mismatch"));
	o = (weft_tls_ctx_options_t){ .ca_file = cert("nonexistent.pem") };
	assert_int_equal(weft_tls_ctx_create(&ctx, &o, why, sizeof why),
		WEFT_ETLS);
	assert_non_null(strstr(why, "nonexistent.pem"));
	o = (weft_tls_ctx_options_t){ .server = 1 };
	assert_int_equal(weft_tls_ctx_create(&ctx, &o, why, sizeof why),
		-EINVAL);
	o = (weft_tls_ctx_options_t){ .alpn = "h2,,x" };
	assert_int_equal(weft_tls_ctx_create(&ctx, &o, why, sizeof why),
		-EINVAL);
	assert_null(ctx);
}

/* }======================================================= */

/* {======================================================= deadlines */

/* A peer that accepts TCP and never answers: the handshake timeout cuts
 * it (-ETIMEDOUT), and so does an enclosing fail_after (the handshake
 * returns -ECANCELED, the scope -ETIMEDOUT); the stream is closed. */
static int stall_root(void *arg)
{
	(void)arg;
	weft_listener_t *l;
	CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0, 0), 0);
	int port = weft_listener_port(l);
	char why[256];

	weft_tls_ctx_t *ctx = client_ctx(NULL, NULL, 100 * MS);
	weft_stream_t *s;
	CHECK_EQ(weft_tcp_connect(&s, "127.0.0.1", port), 0);
	weft_tls_t *t = NULL;
	CHECK_EQ(weft_tls_connect(&t, s, ctx, "localhost", why, sizeof why),
		-ETIMEDOUT);
	CHECK(strstr(why, "timed out") != NULL);
	CHECK(t == NULL);
	weft_tls_ctx_destroy(ctx);

	ctx = client_ctx(NULL, NULL, -1); /* no timeout of its own */
	CHECK_EQ(weft_tcp_connect(&s, "127.0.0.1", port), 0);
	weft_scope_t *sc;
	CHECK_EQ(weft_fail_after(&sc, 100 * MS), 0);
	CHECK_EQ(weft_tls_connect(&t, s, ctx, "localhost", why, sizeof why),
		-ECANCELED);
	CHECK_EQ(weft_scope_exit(sc), -ETIMEDOUT);
	weft_scope_destroy(sc);
	weft_tls_ctx_destroy(ctx);
	weft_listener_close(l);
	return 0;
}

WEFT_TEST_ROOT(tls, stalled_peer_is_cut_by_the_deadlines, stall_root, NULL)

/* }======================================================= */

/* {======================================================= cancellation */

/* A read cancelled while it waited consumed nothing: the next read gets
 * every byte. */
static int cancelled_read_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct srv sv = { .mode = DELAYED };
	server_start(&sv, g);
	weft_tls_ctx_t *ctx = client_ctx(NULL, NULL, 0);
	int rc;
	char why[256] = "";
	weft_tls_t *t = client_connect(&sv, ctx, "localhost", &rc, why,
		sizeof why);
	if (CHECK_EQ(rc, 0)) {
		char buf[32];
		weft_scope_t *sc;
		CHECK_EQ(weft_move_on_after(&sc, 30 * MS), 0);
		CHECK_EQ(weft_tls_read(t, buf, sizeof buf), -ECANCELED);
		CHECK_EQ(weft_scope_exit(sc), 0);
		weft_scope_destroy(sc);
		CHECK_EQ(weft_event_set(sv.go), 0);
		CHECK_EQ(weft_tls_read_exactly(t, buf, 11, NULL), 0);
		CHECK(memcmp(buf, "hello world", 11) == 0);
		weft_tls_close(t);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_tls_ctx_destroy(ctx);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(tls, cancelled_read_loses_nothing, cancelled_read_root, NULL)

struct reader {
	weft_tls_t *t;
	atomic_int parked;
};

static int reader_task(void *arg)
{
	struct reader *r = arg;
	char buf[11];
	atomic_store(&r->parked, 1);
	/* The main task's probe may hold the read side for a moment. */
	int rc;
	while ((rc = weft_tls_read_exactly(r->t, buf, 11, NULL)) == -EBUSY)
		weft_sleep(WEFT_MSEC);
	CHECK_EQ(rc, 0);
	CHECK(memcmp(buf, "hello world", 11) == 0);
	return 0;
}

/* One reader at a time: a second one gets -EBUSY and takes nothing from
 * the first; a writer may run meanwhile. */
static int second_reader_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct srv sv = { .mode = DELAYED };
	server_start(&sv, g);
	weft_tls_ctx_t *ctx = client_ctx(NULL, NULL, 0);
	int rc;
	char why[256] = "";
	weft_tls_t *t = client_connect(&sv, ctx, "localhost", &rc, why,
		sizeof why);
	if (CHECK_EQ(rc, 0)) {
		struct reader r = { .t = t };
		weft_group_t *rg;
		CHECK_EQ(weft_group_open(&rg), 0);
		CHECK_EQ(weft_group_spawn(rg, reader_task, &r), 0);
		CHECK(weft_test_yield_until(&r.parked, 1));
		/* The reader is in its read, or about to be: probe until a
		 * second read is refused.  A probe that came first waits
		 * 1 ms and is cancelled, consuming nothing. */
		char buf[4];
		ssize_t n = 0;
		for (int i = 0; i < 1000 && n != -EBUSY; i++) {
			weft_scope_t *sc;
			CHECK_EQ(weft_move_on_after(&sc, WEFT_MSEC), 0);
			n = weft_tls_read(t, buf, sizeof buf);
			weft_scope_exit(sc);
			weft_scope_destroy(sc);
			if (n != -EBUSY) {
				CHECK_EQ(n, -ECANCELED);
				weft_sleep(WEFT_MSEC);
			}
		}
		CHECK_EQ(n, -EBUSY);
		CHECK_EQ(weft_tls_write(t, "w", 1), 0); /* the writer side */
		CHECK_EQ(weft_event_set(sv.go), 0);
		CHECK_EQ(weft_group_join(rg, NULL), 0);
		weft_tls_close(t);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_tls_ctx_destroy(ctx);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(tls, second_reader_gets_ebusy, second_reader_root, NULL)

/* A write cancelled while the peer does not read breaks the write side:
 * later writes and shutdown get WEFT_ECLOSED. */
static int cancelled_write_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct srv sv = { .mode = SINK };
	server_start(&sv, g);
	weft_tls_ctx_t *ctx = client_ctx(NULL, NULL, 0);
	int rc;
	char why[256] = "";
	weft_tls_t *t = client_connect(&sv, ctx, "localhost", &rc, why,
		sizeof why);
	if (CHECK_EQ(rc, 0)) {
		enum { LEN = 32 << 20 }; /* more than the socket buffers */
		char *big = calloc(1, LEN);
		weft_scope_t *sc;
		CHECK_EQ(weft_move_on_after(&sc, 50 * MS), 0);
		CHECK_EQ(weft_tls_write(t, big, LEN), -ECANCELED);
		CHECK_EQ(weft_scope_exit(sc), 0);
		weft_scope_destroy(sc);
		CHECK_EQ(weft_tls_write(t, "x", 1), WEFT_ECLOSED);
		CHECK_EQ(weft_tls_shutdown(t), WEFT_ECLOSED);
		free(big);
		CHECK_EQ(weft_event_set(sv.go), 0);
		weft_tls_close(t);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_tls_ctx_destroy(ctx);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(tls, cancelled_write_breaks_the_write_side, cancelled_write_root,
	NULL)

/* The peer's stream ends without close_notify: the data before it is
 * read, then WEFT_ETLS_TRUNCATED (not 0), with a reason, and again on
 * the next read. */
static int truncation_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct srv sv = { .mode = TRUNCATE };
	server_start(&sv, g);
	weft_tls_ctx_t *ctx = client_ctx(NULL, NULL, 0);
	int rc;
	char why[256] = "";
	weft_tls_t *t = client_connect(&sv, ctx, "localhost", &rc, why,
		sizeof why);
	if (CHECK_EQ(rc, 0)) {
		char buf[8];
		CHECK_EQ(weft_tls_read(t, buf, sizeof buf), 1);
		CHECK_EQ(buf[0], 'x');
		CHECK_EQ(weft_tls_read(t, buf, sizeof buf),
			WEFT_ETLS_TRUNCATED);
		CHECK(strstr(weft_tls_error_text(t), "close_notify") != NULL);
		CHECK_EQ(weft_tls_read(t, buf, sizeof buf),
			WEFT_ETLS_TRUNCATED);
		CHECK_EQ(weft_event_set(sv.go), 0);
		weft_tls_close(t);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_tls_ctx_destroy(ctx);
	server_free(&sv);
	return 0;
}

WEFT_TEST_ROOT(tls, end_without_close_notify_is_truncation, truncation_root,
	NULL)

/* }======================================================= */

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(certdir, sizeof certdir, "%s/weft-tls-XXXXXX",
		tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(certdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		"bash '%s/tests/integration/tls_certs.sh' '%s'",
		WEFT_SOURCE_DIR, certdir);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_tls: making certificates failed: %s\n",
			cmd);
		return 1;
	}
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_tls__echo_alpn_sni_and_close_notify),
		WEFT_TEST(test_tls__numeric_host_and_no_common_alpn),
		WEFT_TEST(test_tls__serve_handlers_borrow_their_stream),
		WEFT_TEST(test_tls__untrusted_ca_is_a_verify_error),
		WEFT_TEST(test_tls__expired_certificate_is_a_verify_error),
		WEFT_TEST(test_tls__wrong_host_is_a_verify_error),
		WEFT_TEST(test_tls__a_host_no_server_can_have_is_einval),
		cmocka_unit_test(test_tls__bad_files_fail_the_context),
		WEFT_TEST(test_tls__stalled_peer_is_cut_by_the_deadlines),
		WEFT_TEST(test_tls__cancelled_read_loses_nothing),
		WEFT_TEST(test_tls__second_reader_gets_ebusy),
		WEFT_TEST(test_tls__cancelled_write_breaks_the_write_side),
		WEFT_TEST(test_tls__end_without_close_notify_is_truncation),
	};
	int rc = WEFT_RUN_TESTS(tests);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_tls: could not remove %s\n", certdir);
	return rc;
}
