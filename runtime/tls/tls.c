/* TLS streams (include/weft/tls.h): OpenSSL's TLS state machine over a
 * weft stream, through two memory BIOs.  This is libweft-tls, a library
 * of its own above libweft: it uses weft's public API only (it links
 * against libweft.so, whose internal symbols are hidden), and OpenSSL.
 *
 * Why OpenSSL, and why memory BIOs.  TLS is a protocol where every
 * mistake is a vulnerability (record padding, constant-time MACs, the
 * certificate path and name checks), and Debian's OpenSSL 3 is
 * maintained, audited, patched by the distribution and already on the
 * machines weft runs on; writing our own would trade all of that for
 * nothing.  OpenSSL never touches the socket here: it reads ciphertext
 * from `rbio` and writes ciphertext into `wbio`, both in memory, and this
 * file moves the bytes with weft_stream_read and weft_stream_write.  So
 * every wait is a plain stream wait: a checkpoint, bounded by the
 * enclosing scopes' deadlines, cancellable with the stream's guarantees,
 * and on the virtual clock in tests.  (A socket BIO would block the
 * worker, or need OpenSSL's WANT_READ dance on a non-blocking fd that
 * weft's readiness waits do not expose.)
 *
 * Concurrency contract.  OpenSSL's SSL object must never be used by two
 * threads at once, and weft moves tasks between workers, so:
 *   - `mu`, a pthread mutex, is held around every SSL_* and BIO_* call
 *     and never across a wait (nothing in its critical sections parks),
 *     so a plain mutex is right: it keeps no task off the CPU for longer
 *     than one OpenSSL call.  OpenSSL's error queue is per thread: it is
 *     cleared and read inside the same critical section, where the task
 *     cannot migrate.
 *   - `reading` and `writing` admit one reader and one writer at a time
 *     (-EBUSY otherwise), as plain streams do (include/weft/net.h).
 *     `rbuf` belongs to the reader (and to the handshake, which runs
 *     alone).
 *   - `send`, a weft lock, is held by the one task that moves ciphertext
 *     from `wbio` to the socket (`wbuf` is its buffer), so records leave
 *     in the order OpenSSL sealed them.  The writer takes it before it
 *     seals anything; a reader whose SSL_read produced records (a TLS 1.3
 *     key update's answer, an alert) only tries it: when the writer holds
 *     it, the writer sends them.  No record is stranded: a holder checks
 *     `wbio` again after releasing `send` (send_release), and a producer
 *     appends to `wbio` before it tries the lock, so either the producer
 *     gets the lock or the holder's check, which comes after its release,
 *     sees the records.
 *
 * Cancellation.  A read waits only in weft_stream_read, before anything
 * reached OpenSSL: a cancelled read consumed nothing (docs/semantics.md
 * rule 42: "it did not happen"); the ciphertext a finished stream read
 * brought is in `rbio` at once, where the next read decrypts it.  A
 * write seals records before it sends them: once it has started, a
 * cancellation leaves the peer with a prefix of a record stream that
 * cannot be completed, so the write side is marked broken (`wbroken`),
 * as a plain stream is after a partial send.  Records sealed after the
 * break are dropped.  The handshake runs inside a fail_after scope of
 * the context's timeout, so the stream waits of a stalled handshake end
 * with -ECANCELED and the scope's exit turns that into -ETIMEDOUT.
 *
 * Ending.  close_notify (SSL_shutdown) is the TLS end of stream: a read
 * returns 0 only after it.  A connection that ends without it is a
 * truncation (WEFT_ETLS_TRUNCATED): an attacker, or a crash, may have cut
 * the data, so it is an error and not an end.  TLS 1.2 renegotiation is
 * refused (SSL_OP_NO_RENEGOTIATION): it would make a write wait for a
 * read.
 *
 * Memory: plain malloc.  weft's counted allocator (weft__alloc) is
 * internal to libweft and hidden from this library, and OpenSSL
 * allocates with malloc anyway; the sanitizer builds check these for
 * leaks. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "weft/cancel.h"
#include "weft/net.h"
#include "weft/sync.h"
#include "weft/tls.h"

/* Ciphertext moves in chunks of one maximal TLS record plus overhead;
 * plaintext is sealed in chunks of this size too, so a large write does
 * not hold its whole ciphertext in memory. */
#define TLS_CHUNK 16384
#define TLS_WRITE_CHUNK 65536

struct weft_tls_ctx {
	SSL_CTX *ssl;
	int server;
	int verify;
	int64_t timeout;	 /* ns; < 0: none */
	unsigned char alpn[256]; /* wire format: length-prefixed names */
	size_t alpn_len;
};

struct weft_tls {
	weft_stream_t *s;
	int owns_stream; /* weft_tls_close closes s (not borrowed) */
	weft_tls_ctx_t *ctx;
	pthread_mutex_t mu; /* around every SSL_* and BIO_* call */
	SSL *ssl;
	BIO *rbio;	   /* network -> OpenSSL */
	BIO *wbio;	   /* OpenSSL -> network */
	weft_lock_t *send; /* held by the task moving wbio to the socket */
	/* One reader and one writer at a time: set by exchange (acq_rel:
	 * the previous holder's uses of rbuf/the write state happen before
	 * the next holder's), cleared by a release store. */
	atomic_int reading;
	atomic_int writing;
	/* Under mu. */
	int wbroken; /* the write side is broken: no record is sent */
	int shut;    /* close_notify was sealed */
	int rerr;    /* the read side failed for good: its code */
	int established;
	char err[256];	/* last failure, in words */
	char alpn[256]; /* agreed ALPN protocol, after the handshake */
	char name[256]; /* SNI received, or the host connected to */
	unsigned char rbuf[TLS_CHUNK]; /* the reader's (handshake's) */
	unsigned char wbuf[TLS_CHUNK]; /* the `send` holder's */
};

/* {======================================================= errors */

static void copy_why(char *why, size_t why_len, const char *text)
{
	if (why != NULL && why_len > 0)
		snprintf(why, why_len, "%s", text);
}

/* The first error of this thread's OpenSSL queue in words, prefixed by
 * what; clears the queue.  Caller holds mu (or owns the object alone). */
static void err_from_queue(char *buf, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	char code[128];
	if (e != 0 && reason == NULL) {
		ERR_error_string_n(e, code, sizeof code);
		reason = code;
	}
	if (reason == NULL)
		reason = "unknown error";
	snprintf(buf, len, "%s%s%s", what, *what ? ": " : "", reason);
	ERR_clear_error();
}

/* The outcome of an SSL_* call that returned r <= 0: TLS_WANT (more
 * input needed; a value no weft code or negated errno takes), 0
 * (close_notify received), or a failure code with t->err set.  Caller
 * holds mu, in the critical section of the call. */
#define TLS_WANT INT_MIN
static int classify(struct weft_tls *t, int r)
{
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return TLS_WANT;
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return 0;
	}
	if (!t->established && !t->ctx->server && t->ctx->verify) {
		long v = SSL_get_verify_result(t->ssl);
		if (v != X509_V_OK) {
			snprintf(t->err, sizeof t->err,
				"certificate verification failed: %s",
				X509_verify_cert_error_string(v));
			ERR_clear_error();
			return WEFT_ETLS_VERIFY;
		}
	}
	if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL)
		err_from_queue(t->err, sizeof t->err, "TLS");
	else
		snprintf(t->err, sizeof t->err, "TLS: unexpected state %d", e);
	return WEFT_ETLS;
}

/* }======================================================= */

/* {======================================================= moving bytes */

/* Sends what wbio holds.  Caller holds `send`.  Returns 0, or the
 * stream's error, the write side then broken. */
static int send_pending(struct weft_tls *t)
{
	for (;;) {
		pthread_mutex_lock(&t->mu);
		int n = t->wbroken ? 0 : BIO_read(t->wbio, t->wbuf, TLS_CHUNK);
		int broken = t->wbroken;
		pthread_mutex_unlock(&t->mu);
		if (broken)
			return WEFT_ECLOSED;
		if (n <= 0)
			return 0;
		int rc = weft_stream_write(t->s, t->wbuf, (size_t)n);
		if (rc < 0) {
			pthread_mutex_lock(&t->mu);
			t->wbroken = 1;
			(void)BIO_reset(t->wbio);
			pthread_mutex_unlock(&t->mu);
			return rc;
		}
	}
}

/* Whether wbio holds records to send. */
static int has_pending(struct weft_tls *t)
{
	pthread_mutex_lock(&t->mu);
	int p = !t->wbroken && BIO_ctrl_pending(t->wbio) > 0;
	pthread_mutex_unlock(&t->mu);
	return p;
}

/* Releases `send`, then sends records that a task which failed to take
 * it appended meanwhile (see the file's top: no record is stranded). */
static void send_release(struct weft_tls *t)
{
	for (;;) {
		weft_lock_release(t->send);
		if (!has_pending(t) || weft_lock_try_acquire(t->send) != 0)
			return;	       /* nothing, or the new holder sends it */
		(void)send_pending(t); /* a failure marked wbroken */
	}
}

/* A reader's records (a key update's answer, an alert): sent now if no
 * writer is sending, else by that writer. */
static void send_try(struct weft_tls *t)
{
	if (weft_lock_try_acquire(t->send) != 0)
		return;
	(void)send_pending(t);
	send_release(t);
}

/* Reads ciphertext from the stream into rbio.  Caller is the reader (or
 * the handshake).  Returns 0, WEFT_ETLS_TRUNCATED at the stream's end,
 * or the stream's error (-ECANCELED: nothing consumed). */
static int fill(struct weft_tls *t)
{
	ssize_t n = weft_stream_read(t->s, t->rbuf, sizeof t->rbuf);
	if (n < 0)
		return (int)n;
	pthread_mutex_lock(&t->mu);
	int rc = 0;
	if (n == 0) {
		snprintf(t->err, sizeof t->err,
			"TLS: the peer closed the connection without "
			"close_notify (truncated)");
		rc = WEFT_ETLS_TRUNCATED;
	} else if (BIO_write(t->rbio, t->rbuf, (int)n) != (int)n) {
		ERR_clear_error();
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* }======================================================= */

/* {======================================================= contexts */

/* Parses "a,b,c" into ALPN's wire format. */
static int alpn_parse(weft_tls_ctx_t *c, const char *list)
{
	size_t n = 0;
	const char *p = list;
	while (*p != '\0') {
		const char *e = strchr(p, ',');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		if (len == 0 || len > 255 || n + 1 + len > sizeof c->alpn)
			return -EINVAL;
		c->alpn[n++] = (unsigned char)len;
		memcpy(c->alpn + n, p, len);
		n += len;
		p += len;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				return -EINVAL;
		}
	}
	if (n == 0)
		return -EINVAL;
	c->alpn_len = n;
	return 0;
}

/* Server: the first of our protocols the client offers; none is no
 * failure (the connection goes on without ALPN). */
static int alpn_select(SSL *ssl, const unsigned char **out,
	unsigned char *outlen, const unsigned char *in, unsigned inlen,
	void *arg)
{
	(void)ssl;
	weft_tls_ctx_t *c = arg;
	unsigned char *sel = NULL;
	if (SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned)c->alpn_len,
		    in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

int weft_tls_ctx_create(weft_tls_ctx_t **out,
	const weft_tls_ctx_options_t *opts, char *why, size_t why_len)
{
	char text[300];
	if (out == NULL || opts == NULL)
		return -EINVAL;
	if (opts->server &&
		(opts->cert_file == NULL || opts->key_file == NULL)) {
		copy_why(why, why_len,
			"a server context needs cert_file and key_file");
		return -EINVAL;
	}
	weft_tls_ctx_t *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	c->server = opts->server != 0;
	c->verify = !c->server && !opts->insecure_no_verify;
	c->timeout = opts->handshake_timeout_ns == 0
		? WEFT_TLS_HANDSHAKE_TIMEOUT_DEFAULT
		: opts->handshake_timeout_ns;
	if (opts->alpn != NULL && alpn_parse(c, opts->alpn) != 0) {
		copy_why(why, why_len, "bad ALPN list");
		free(c);
		return -EINVAL;
	}
	ERR_clear_error();
	c->ssl = SSL_CTX_new(
		c->server ? TLS_server_method() : TLS_client_method());
	if (c->ssl == NULL) {
		ERR_clear_error();
		free(c);
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
	SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION);
	int rc = 0;
	if (c->verify) {
		SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		int ok = opts->ca_file != NULL
			? SSL_CTX_load_verify_locations(c->ssl, opts->ca_file,
				  NULL)
			: SSL_CTX_set_default_verify_paths(c->ssl);
		if (!ok) {
			snprintf(text, sizeof text, "cannot load the CAs of %s",
				opts->ca_file ? opts->ca_file : "the system");
			rc = WEFT_ETLS;
		}
	}
	if (rc == 0 && opts->cert_file != NULL &&
		SSL_CTX_use_certificate_chain_file(c->ssl, opts->cert_file) !=
			1) {
		snprintf(text, sizeof text, "cannot load the certificate %s",
			opts->cert_file);
		rc = WEFT_ETLS;
	}
	if (rc == 0 && opts->key_file != NULL &&
		SSL_CTX_use_PrivateKey_file(c->ssl, opts->key_file,
			SSL_FILETYPE_PEM) != 1) {
		snprintf(text, sizeof text, "cannot load the key %s",
			opts->key_file);
		rc = WEFT_ETLS;
	}
	if (rc == 0 && opts->key_file != NULL &&
		SSL_CTX_check_private_key(c->ssl) != 1) {
		snprintf(text, sizeof text,
			"the key does not match the certificate");
		rc = WEFT_ETLS;
	}
	if (rc == 0 && c->alpn_len > 0) {
		if (c->server)
			SSL_CTX_set_alpn_select_cb(c->ssl, alpn_select, c);
		else if (SSL_CTX_set_alpn_protos(c->ssl, c->alpn,
				 (unsigned)c->alpn_len) != 0) {
			snprintf(text, sizeof text, "cannot set ALPN");
			rc = -ENOMEM;
		}
	}
	if (rc != 0) {
		char full[600];
		err_from_queue(full, sizeof full, text);
		copy_why(why, why_len, full);
		SSL_CTX_free(c->ssl);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void weft_tls_ctx_destroy(weft_tls_ctx_t *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl);
	free(ctx);
}

/* }======================================================= */

/* {======================================================= handshake */

static void tls_free(struct weft_tls *t)
{
	if (t->owns_stream)
		weft_stream_close(t->s);
	SSL_free(t->ssl); /* frees both BIOs */
	if (t->send != NULL)
		weft_lock_destroy(t->send);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* A connection over s, not yet shaken hands; NULL on -ENOMEM. */
static struct weft_tls *tls_new(weft_stream_t *s, weft_tls_ctx_t *ctx, int owns)
{
	struct weft_tls *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->s = s;
	t->owns_stream = owns;
	t->ctx = ctx;
	pthread_mutex_init(&t->mu, NULL);
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL ||
		weft_lock_create(&t->send) != 0) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		if (t->send != NULL)
			weft_lock_destroy(t->send);
		pthread_mutex_destroy(&t->mu);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	/* An empty rbio asks for more (WANT_READ), it is no end of file:
	 * the end is what the stream says (fill). */
	BIO_set_mem_eof_return(t->rbio, -1);
	BIO_set_mem_eof_return(t->wbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	return t;
}

static int handshake_loop(struct weft_tls *t)
{
	for (;;) {
		pthread_mutex_lock(&t->mu);
		ERR_clear_error();
		int r = SSL_do_handshake(t->ssl);
		int code = r == 1 ? 0 : classify(t, r);
		if (code == 0 && r != 1) {
			snprintf(t->err, sizeof t->err,
				"TLS: the peer closed during the handshake");
			code = WEFT_ETLS;
		}
		pthread_mutex_unlock(&t->mu);
		/* Send what the handshake sealed, an alert on failure too
		 * (best effort: the failure is what is reported). */
		int rc = weft_lock_acquire(t->send);
		if (rc < 0)
			return code != TLS_WANT && code != 0 ? code : rc;
		int src = send_pending(t);
		send_release(t);
		if (code != TLS_WANT)
			return code == 0 ? src : code;
		if (src < 0)
			return src;
		rc = fill(t);
		if (rc < 0)
			return rc;
	}
}

/* Runs the handshake under ctx's timeout; frees t on failure. */
static int handshake(struct weft_tls *t, weft_tls_t **out, char *why,
	size_t why_len)
{
	weft_scope_t *sc = NULL;
	int rc = 0;
	if (t->ctx->timeout >= 0)
		rc = weft_fail_after(&sc, t->ctx->timeout);
	if (rc == 0)
		rc = handshake_loop(t);
	if (sc != NULL) {
		int x = weft_scope_exit(sc);
		weft_scope_destroy(sc);
		if (x == -ETIMEDOUT) {
			rc = -ETIMEDOUT;
			snprintf(t->err, sizeof t->err,
				"TLS: the handshake timed out");
		}
	}
	if (rc != 0) {
		if (t->err[0] == '\0')
			snprintf(t->err, sizeof t->err, "TLS handshake: %s",
				weft_strerror(rc));
		copy_why(why, why_len, t->err);
		tls_free(t);
		return rc;
	}
	pthread_mutex_lock(&t->mu);
	t->established = 1;
	const unsigned char *a = NULL;
	unsigned alen = 0;
	SSL_get0_alpn_selected(t->ssl, &a, &alen);
	if (a != NULL && alen < sizeof t->alpn) {
		memcpy(t->alpn, a, alen);
		t->alpn[alen] = '\0';
	}
	if (t->ctx->server) {
		const char *sni = SSL_get_servername(t->ssl,
			TLSEXT_NAMETYPE_host_name);
		if (sni != NULL)
			snprintf(t->name, sizeof t->name, "%s", sni);
	}
	pthread_mutex_unlock(&t->mu);
	*out = t;
	return 0;
}

static int is_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 ||
		inet_pton(AF_INET6, host, buf) == 1;
}

int weft_tls_connect(weft_tls_t **out, weft_stream_t *s, weft_tls_ctx_t *ctx,
	const char *host, char *why, size_t why_len)
{
	if (out == NULL || s == NULL || ctx == NULL || ctx->server ||
		(host == NULL && ctx->verify)) {
		if (s != NULL)
			weft_stream_close(s);
		copy_why(why, why_len, "invalid argument");
		return -EINVAL;
	}
	/* No server can have such a name: SNI names are 1-255 bytes. */
	if (host != NULL && (host[0] == '\0' || strlen(host) >= 256)) {
		weft_stream_close(s);
		copy_why(why, why_len,
			host[0] == '\0' ? "empty host name"
					: "host name too long");
		return -EINVAL;
	}
	struct weft_tls *t = tls_new(s, ctx, 1);
	if (t == NULL) {
		weft_stream_close(s);
		copy_why(why, why_len, "out of memory");
		return -ENOMEM;
	}
	int ok = 1;
	if (host != NULL) {
		snprintf(t->name, sizeof t->name, "%s", host);
		if (is_numeric(host)) {
			if (ctx->verify)
				ok = X509_VERIFY_PARAM_set1_ip_asc(
					SSL_get0_param(t->ssl), host);
		} else {
			ok = SSL_set_tlsext_host_name(t->ssl, host) == 1 &&
				(!ctx->verify ||
					SSL_set1_host(t->ssl, host) == 1);
		}
	}
	if (!ok) {
		ERR_clear_error();
		copy_why(why, why_len, "cannot set the host name");
		tls_free(t);
		return -ENOMEM;
	}
	SSL_set_connect_state(t->ssl);
	return handshake(t, out, why, why_len);
}

static int accept_common(weft_tls_t **out, weft_stream_t *s,
	weft_tls_ctx_t *ctx, int owns, char *why, size_t why_len)
{
	if (out == NULL || s == NULL || ctx == NULL || !ctx->server) {
		if (s != NULL && owns)
			weft_stream_close(s);
		copy_why(why, why_len, "invalid argument");
		return -EINVAL;
	}
	struct weft_tls *t = tls_new(s, ctx, owns);
	if (t == NULL) {
		if (owns)
			weft_stream_close(s);
		copy_why(why, why_len, "out of memory");
		return -ENOMEM;
	}
	SSL_set_accept_state(t->ssl);
	return handshake(t, out, why, why_len);
}

int weft_tls_accept(weft_tls_t **out, weft_stream_t *s, weft_tls_ctx_t *ctx,
	char *why, size_t why_len)
{
	return accept_common(out, s, ctx, 1, why, why_len);
}

int weft_tls_accept_borrowed(weft_tls_t **out, weft_stream_t *s,
	weft_tls_ctx_t *ctx, char *why, size_t why_len)
{
	return accept_common(out, s, ctx, 0, why, why_len);
}

/* }======================================================= */

/* {======================================================= data */

ssize_t weft_tls_read(weft_tls_t *t, void *buf, size_t len)
{
	if (t == NULL || buf == NULL || len == 0)
		return -EINVAL;
	if (atomic_exchange_explicit(&t->reading, 1, memory_order_acq_rel))
		return -EBUSY;
	if (len > INT_MAX)
		len = INT_MAX;
	int ret;
	for (;;) {
		pthread_mutex_lock(&t->mu);
		if (t->rerr != 0) {
			ret = t->rerr;
		} else {
			ERR_clear_error();
			int n = SSL_read(t->ssl, buf, (int)len);
			ret = n > 0 ? n : classify(t, n);
			if (ret < 0 && ret != TLS_WANT)
				t->rerr = ret; /* the read side is done */
		}
		int out = !t->wbroken && BIO_ctrl_pending(t->wbio) > 0;
		pthread_mutex_unlock(&t->mu);
		if (out)
			send_try(t);
		if (ret != TLS_WANT)
			break;
		/* Only here can the task wait, before any plaintext was
		 * taken: a cancellation consumes nothing. */
		ret = fill(t);
		if (ret < 0) {
			if (ret == WEFT_ETLS_TRUNCATED) {
				pthread_mutex_lock(&t->mu);
				t->rerr = ret;
				pthread_mutex_unlock(&t->mu);
			}
			break;
		}
	}
	atomic_store_explicit(&t->reading, 0, memory_order_release);
	return ret;
}

int weft_tls_read_exactly(weft_tls_t *t, void *buf, size_t len, size_t *got)
{
	size_t have = 0;
	int rc = 0;
	if (t == NULL || (buf == NULL && len > 0))
		rc = -EINVAL;
	while (rc == 0 && have < len) {
		ssize_t n = weft_tls_read(t, (char *)buf + have, len - have);
		if (n > 0)
			have += (size_t)n;
		else
			rc = n == 0 ? WEFT_EEND : (int)n;
	}
	if (got != NULL)
		*got = have;
	return rc;
}

int weft_tls_write(weft_tls_t *t, const void *buf, size_t len)
{
	if (t == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	if (atomic_exchange_explicit(&t->writing, 1, memory_order_acq_rel))
		return -EBUSY;
	/* Waiting for `send` seals nothing: a cancellation here is clean. */
	int rc = weft_lock_acquire(t->send);
	if (rc < 0)
		goto out;
	const unsigned char *p = buf;
	size_t off = 0;
	do {
		size_t chunk = len - off;
		if (chunk > TLS_WRITE_CHUNK)
			chunk = TLS_WRITE_CHUNK;
		pthread_mutex_lock(&t->mu);
		if (t->wbroken || t->shut) {
			rc = WEFT_ECLOSED;
		} else if (chunk > 0) {
			size_t w = 0;
			ERR_clear_error();
			if (SSL_write_ex(t->ssl, p + off, chunk, &w) == 1) {
				off += w;
			} else {
				rc = classify(t, 0);
				if (rc == TLS_WANT || rc == 0)
					rc = WEFT_ETLS;
				t->wbroken = 1;
			}
		}
		pthread_mutex_unlock(&t->mu);
		if (rc == 0)
			rc = send_pending(t); /* breaks the write side on
					       * failure, cancellation too */
	} while (rc == 0 && off < len);
	send_release(t);
out:
	atomic_store_explicit(&t->writing, 0, memory_order_release);
	return rc;
}

/* Seals close_notify and sends it, then half-closes the stream.  Caller
 * holds `writing`. */
static int send_close_notify(struct weft_tls *t)
{
	int rc = weft_lock_acquire(t->send);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&t->mu);
	int was = t->shut;
	if (t->wbroken) {
		rc = WEFT_ECLOSED;
	} else if (!t->shut) {
		ERR_clear_error();
		/* 0: sent, the peer's not yet received; 1: both; < 0 only
		 * for a failure to seal (memory). */
		if (SSL_shutdown(t->ssl) < 0) {
			err_from_queue(t->err, sizeof t->err, "TLS shutdown");
			rc = WEFT_ETLS;
			t->wbroken = 1;
		}
		t->shut = 1;
	}
	pthread_mutex_unlock(&t->mu);
	if (rc == 0 && !was) {
		rc = send_pending(t);
		/* The stream's own shutdown, under `send` so that no reader
		 * sends meanwhile (it would get -EBUSY). */
		if (rc == 0)
			rc = weft_stream_shutdown(t->s);
		if (rc < 0) {
			pthread_mutex_lock(&t->mu);
			t->wbroken = 1;
			pthread_mutex_unlock(&t->mu);
		}
	}
	send_release(t);
	return rc;
}

int weft_tls_shutdown(weft_tls_t *t)
{
	if (t == NULL)
		return -EINVAL;
	if (atomic_exchange_explicit(&t->writing, 1, memory_order_acq_rel))
		return -EBUSY;
	int rc = send_close_notify(t);
	atomic_store_explicit(&t->writing, 0, memory_order_release);
	return rc;
}

int weft_tls_close(weft_tls_t *t)
{
	if (t == NULL)
		return -EINVAL;
	/* close_notify, unless the write side is done with, bounded so
	 * that a peer that stopped reading cannot hold the close; the
	 * result does not matter (the stream is closed either way). */
	pthread_mutex_lock(&t->mu);
	int send = !t->wbroken && !t->shut;
	pthread_mutex_unlock(&t->mu);
	if (send) {
		weft_scope_t *sc = NULL;
		if (t->ctx->timeout < 0 ||
			weft_move_on_after(&sc, t->ctx->timeout) == 0) {
			(void)send_close_notify(t);
			if (sc != NULL) {
				weft_scope_exit(sc);
				weft_scope_destroy(sc);
			}
		}
	}
	tls_free(t);
	return 0;
}

/* }======================================================= */

/* {======================================================= getters */

const char *weft_tls_alpn(const weft_tls_t *t)
{
	return t != NULL ? t->alpn : "";
}

const char *weft_tls_server_name(const weft_tls_t *t)
{
	return t != NULL ? t->name : "";
}

const char *weft_tls_verify_result(const weft_tls_t *t)
{
	if (t == NULL)
		return "";
	if (t->ctx->server || !t->ctx->verify)
		return "no verification";
	return X509_verify_cert_error_string(SSL_get_verify_result(t->ssl));
}

const char *weft_tls_error_text(const weft_tls_t *t)
{
	return t != NULL ? t->err : "";
}

weft_stream_t *weft_tls_stream(weft_tls_t *t)
{
	return t != NULL ? t->s : NULL;
}

/* }======================================================= */
