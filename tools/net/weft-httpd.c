/* weft-httpd: a keep-alive HTTP/1.1 server on weft (benchmark B10).
 *
 *   weft-httpd [-p PORT] [-b ADDR] [-i IDLE_S] [-H HEADER_S] [-g GRACE_S]
 *
 * GET / answers 200 "Hello, World!"; other paths 404; other methods 405.
 * One task per connection; requests are parsed with Node.js's http-parser
 * (Debian's libhttp-parser-dev, see ARCHITECTURE.md), so pipelined
 * requests, HTTP/1.0 and "Connection: close" behave as the RFC says.
 *
 * Protection against bad clients (the server itself is never harmed):
 *   - malformed request: 400 and the connection is closed;
 *   - request line + headers over 8 KiB: 431 and closed;
 *   - a started request whose headers do not arrive within HEADER_S
 *     (default 10 s): 408 and closed (slowloris);
 *   - no request for IDLE_S (default 60 s): closed;
 *   - a client that does not read its responses: the same deadlines bound
 *     the writes.
 * Shutdown (SIGINT/SIGTERM): stop accepting, close the keep-alive
 * connections that wait for a request, finish the requests in flight
 * (their connections are closed after the response), cancel what is left
 * after GRACE_S (default 5 s) or at a
 * second signal.
 *
 * Structure, as in AnyIO's start_some_service example: main runs the service
 * with weft_group_start, which returns once the service is listening (its
 * started() value is the port), prints "port=<N>" and waits for it. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <http_parser.h>
#include <weft.h>
#include <weft/signal.h>

#include "netutil.h"

#define MAX_HEADER_BYTES 8192
#define READ_BUF 16384
#define OUT_BUF 16384

struct httpd {
	const char *addr;
	long port;
	long idle_s, header_s, grace_s;
	weft_event_t *stop; /* set at phase one of shutdown */
	atomic_long connections, requests, rejected;
	/* Connections parked in a read for their next request, so that
	 * phase one can close them at once (httpd_close_idle).  A plain
	 * mutex: held for a list operation or a scope cancel, never across
	 * a park. */
	pthread_mutex_t idle_lock;
	struct conn *idle; /* under idle_lock */
	bool stopping;	   /* under idle_lock */
};

/* One connection's state; the parser's callbacks reach it through
 * parser.data. */
struct conn {
	struct httpd *h;
	weft_stream_t *s;
	http_parser parser;
	bool in_request;  /* a request began; its headers are not done */
	bool too_large;	  /* its headers passed MAX_HEADER_BYTES */
	bool close_after; /* stop after the response being built */
	bool write_failed;
	size_t header_bytes;
	char url[64]; /* enough to tell "/" from anything else */
	size_t url_len;
	int64_t last_activity;
	int64_t request_start;
	weft_scope_t *scope; /* bounds reads and writes (see conn_read) */
	int64_t scope_deadline;
	struct conn *idle_next, *idle_prev; /* on h->idle, under idle_lock */
	size_t out_len;
	char out[OUT_BUF];
	char in[READ_BUF];
};

static const char hello_body[] = "Hello, World!";

/* {======================================================= responses */

static int conn_flush(struct conn *c)
{
	if (c->out_len == 0)
		return 0;
	int rc = weft_stream_write(c->s, c->out, c->out_len);
	c->out_len = 0;
	if (rc < 0)
		c->write_failed = true;
	return rc;
}

/* Appends one response (flushing first if it would not fit). */
static int conn_respond(struct conn *c, int status, const char *reason,
	const char *body, bool close)
{
	size_t blen = strlen(body);
	char head[256];
	int hl = snprintf(head, sizeof head,
		"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		"Content-Length: %zu\r\n%s\r\n",
		status, reason, blen, close ? "Connection: close\r\n" : "");
	if (c->out_len + (size_t)hl + blen > sizeof c->out && conn_flush(c) < 0)
		return -1;
	memcpy(c->out + c->out_len, head, (size_t)hl);
	memcpy(c->out + c->out_len + hl, body, blen);
	c->out_len += (size_t)hl + blen;
	return 0;
}

/* }======================================================= */

/* {======================================================= parser */

static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;
	c->in_request = true;
	c->header_bytes = 0;
	c->url_len = 0;
	return 0;
}

static int count_header(struct conn *c, size_t len)
{
	c->header_bytes += len;
	if (c->header_bytes > MAX_HEADER_BYTES) {
		c->too_large = true;
		return 1; /* stops the parser */
	}
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	size_t room = sizeof c->url - 1 - c->url_len;
	size_t n = len < room ? len : room;
	memcpy(c->url + c->url_len, at, n);
	c->url_len += n;
	c->url[c->url_len] = '\0';
	if (len > room)
		c->url[0] = '?'; /* too long to be "/" */
	return count_header(c, len);
}

static int on_header_bytes(http_parser *p, const char *at, size_t len)
{
	(void)at;
	return count_header(p->data, len);
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;
	c->in_request = false;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;
	/* relaxed: a statistics counter, orders nothing (read after the
	 * service's join). */
	atomic_fetch_add_explicit(&c->h->requests, 1, memory_order_relaxed);
	/* Phase one of a shutdown: answer, then close. */
	bool close = !http_should_keep_alive(p) ||
		weft_event_is_set(c->h->stop);
	int rc;
	if (p->method != HTTP_GET && p->method != HTTP_HEAD)
		rc = conn_respond(c, 405, "Method Not Allowed", "", close);
	else if (strcspn(c->url, "?") == 1 && c->url[0] == '/') /* "/?q" */
		rc = conn_respond(c, 200, "OK",
			p->method == HTTP_HEAD ? "" : hello_body, close);
	else
		rc = conn_respond(c, 404, "Not Found", "", close);
	if (rc < 0)
		return 1;
	if (close) {
		c->close_after = true;
		http_parser_pause(p, 1); /* ignore anything after it */
	}
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_bytes,
	.on_header_value = on_header_bytes,
	.on_headers_complete = on_headers_complete,
	.on_message_complete = on_message_complete,
};

/* }======================================================= */

/* {======================================================= timeouts */

/* The deadline the connection must meet now: the header deadline while a
 * request is half read, else the idle deadline. */
static int64_t conn_want(const struct conn *c)
{
	if (c->in_request)
		return c->request_start + c->h->header_s * WEFT_SEC;
	return c->last_activity + c->h->idle_s * WEFT_SEC;
}

static void conn_scope_close(struct conn *c)
{
	if (c->scope != NULL) {
		weft_scope_exit(c->scope);
		weft_scope_destroy(c->scope);
		c->scope = NULL;
	}
}

/* Lists c as waiting for a request; false if the server is stopping (the
 * connection should close instead of reading). */
static bool idle_enter(struct conn *c)
{
	struct httpd *h = c->h;
	pthread_mutex_lock(&h->idle_lock);
	bool ok = !h->stopping;
	if (ok) {
		c->idle_prev = NULL;
		c->idle_next = h->idle;
		if (h->idle)
			h->idle->idle_prev = c;
		h->idle = c;
	}
	pthread_mutex_unlock(&h->idle_lock);
	return ok;
}

/* Unlists c; returns whether the server started stopping meanwhile. */
static bool idle_leave(struct conn *c)
{
	struct httpd *h = c->h;
	pthread_mutex_lock(&h->idle_lock);
	if (c->idle_prev)
		c->idle_prev->idle_next = c->idle_next;
	else
		h->idle = c->idle_next;
	if (c->idle_next)
		c->idle_next->idle_prev = c->idle_prev;
	bool stopping = h->stopping;
	pthread_mutex_unlock(&h->idle_lock);
	return stopping;
}

/* Phase one of a shutdown: wakes every connection waiting for a request
 * (its read returns -ECANCELED, and it closes) and keeps new ones from
 * waiting.  A listed connection's scope exists and stays until it has
 * unlisted itself (conn_read). */
static void httpd_close_idle(struct httpd *h)
{
	pthread_mutex_lock(&h->idle_lock);
	h->stopping = true;
	for (struct conn *c = h->idle; c; c = c->idle_next)
		weft_scope_cancel(c->scope, "shutting down");
	pthread_mutex_unlock(&h->idle_lock);
}

/* Reads with the connection's deadline.  One cancel scope bounds reads
 * and writes; it is moved earlier when a request starts (the header
 * deadline) and replaced only when it fires, so a busy keep-alive
 * connection touches its timer about once per idle period, not once per
 * request.  When it fires early (the connection was active since), the
 * read is simply retried: a cancelled read consumed nothing.  A read for
 * the next request is listed as idle while it waits (httpd_close_idle).
 * Returns bytes, 0 at EOF or when closed at shutdown, -ETIMEDOUT, or
 * another error. */
static ssize_t conn_read(struct conn *c)
{
	for (;;) {
		int64_t want = conn_want(c);
		if (c->scope == NULL) {
			if (weft_move_on_at(&c->scope, want) < 0)
				return -ENOMEM;
			c->scope_deadline = want;
		} else if (want < c->scope_deadline) {
			weft_scope_set_deadline(c->scope, want);
			c->scope_deadline = want;
		}
		bool idle = !c->in_request;
		if (idle && !idle_enter(c))
			return 0;
		ssize_t n = weft_stream_read(c->s, c->in, sizeof c->in);
		bool stopping = idle && idle_leave(c);
		if (n > 0 && stopping && weft_scope_cancel_called(c->scope))
			conn_scope_close(
				c); /* a request came in time: answer */
		if (n != -ECANCELED)
			return n;
		if (!weft_scope_cancel_called(c->scope))
			return n; /* an outer cancellation: shutdown */
		conn_scope_close(c);
		if (stopping)
			return 0;
		if (weft_now() >= conn_want(c))
			return -ETIMEDOUT;
	}
}

/* }======================================================= */

static int httpd_conn(weft_stream_t *s, void *arg)
{
	struct httpd *h = arg;
	/* relaxed: a statistics counter, as requests. */
	atomic_fetch_add_explicit(&h->connections, 1, memory_order_relaxed);
	struct conn *c = malloc(sizeof *c);
	if (c == NULL)
		return 0; /* shed the connection; the server goes on */
	memset(c, 0, offsetof(struct conn, out));
	c->h = h;
	c->s = s;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->last_activity = weft_now();
	while (!c->close_after && !c->write_failed) {
		if (!c->in_request && weft_event_is_set(h->stop))
			break; /* shutting down: no new request */
		ssize_t n = conn_read(c);
		if (n == -ETIMEDOUT && c->in_request) {
			conn_respond(c, 408, "Request Timeout", "", true);
			break;
		}
		if (n <= 0)
			break; /* EOF, reset, idle timeout or cancelled */
		int64_t now = weft_now();
		c->last_activity = now;
		bool was_in_request = c->in_request;
		size_t used = http_parser_execute(&c->parser, &settings, c->in,
			(size_t)n);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e != HPE_OK && e != HPE_PAUSED) {
			if (c->write_failed)
				break;
			/* relaxed: a statistics counter, as requests. */
			atomic_fetch_add_explicit(&h->rejected, 1,
				memory_order_relaxed);
			if (c->too_large)
				conn_respond(c, 431,
					"Request Header Fields "
					"Too Large",
					"", true);
			else
				conn_respond(c, 400, "Bad Request", "", true);
			break;
		}
		(void)used;
		if (c->in_request && !was_in_request)
			c->request_start = now;
		if (conn_flush(c) < 0)
			break;
	}
	/* Best effort for a last error response; the scope (if still open)
	 * bounds it, else a short one does. */
	if (!c->write_failed && c->out_len > 0) {
		weft_scope_t *sc = NULL;
		if (c->scope == NULL)
			weft_move_on_after(&sc, WEFT_SEC);
		conn_flush(c);
		if (sc != NULL) {
			weft_scope_exit(sc);
			weft_scope_destroy(sc);
		}
	}
	conn_scope_close(c);
	free(c);
	return 0;
}

/* The service: listens, reports its port through started(), serves until
 * shutdown. */
static int httpd_service(void *arg)
{
	struct httpd *h = arg;
	weft_listener_t *l;
	int rc = weft_tcp_listen(&l, h->addr, (int)h->port, 0);
	if (rc < 0)
		return weft_fail(rc, "listen on %s:%ld: %s", h->addr, h->port,
			weft_strerror(rc));
	weft_group_t *g;
	rc = weft_group_open(&g);
	if (rc < 0) {
		weft_listener_close(l);
		return rc;
	}
	weft_shutdown_t *sd = NULL;
	rc = weft_shutdown_open(&sd, g, h->grace_s * WEFT_SEC);
	if (rc == 0) {
		h->stop = weft_shutdown_stop_event(sd);
		weft_task_started((void *)(intptr_t)weft_listener_port(l));
		rc = weft_serve(l, g, httpd_conn, h, h->stop);
	}
	/* Stopped (or failed): nobody waits for a new request any more. */
	httpd_close_idle(h);
	weft_listener_close(l);
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	if (sd != NULL)
		weft_shutdown_close(sd);
	if (err != NULL)
		return weft_fail_group(err);
	if (rc < 0 && rc != -ECANCELED)
		return weft_fail(rc, "serve: %s", weft_strerror(rc));
	return jrc;
}

static int httpd_main(void *arg)
{
	struct httpd *h = arg;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	void *port = NULL;
	rc = weft_group_start(g, httpd_service, h, &port);
	if (rc == 0) {
		printf("port=%d\n", (int)(intptr_t)port);
		fflush(stdout);
	}
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	if (err != NULL) {
		char text[1024];
		weft_error_format(err, text, sizeof text);
		fprintf(stderr, "weft-httpd: %s\n", text);
		weft_error_free(err);
	}
	/* seq_cst (atomic_load's default), more than the counters need:
	 * the group's join above already ordered every task's increment
	 * before these loads (docs/semantics.md rule 8). */
	fprintf(stderr,
		"weft-httpd: %ld connections, %ld requests, %ld "
		"rejected\n",
		atomic_load(&h->connections), atomic_load(&h->requests),
		atomic_load(&h->rejected));
	return rc < 0 ? rc : jrc;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: weft-httpd [-p PORT] [-b ADDR] [-i IDLE_S] "
		"[-H HEADER_S] [-g GRACE_S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct httpd h = { .addr = "127.0.0.1",
		.idle_s = 60,
		.header_s = 10,
		.grace_s = 5,
		.idle_lock = PTHREAD_MUTEX_INITIALIZER };
	int c;
	while ((c = getopt(argc, argv, "p:b:i:H:g:h")) != -1) {
		switch (c) {
		case 'p':
			if (netutil_parse_long(optarg, 0, 65535, "port",
				    &h.port) < 0)
				return 2;
			break;
		case 'b': h.addr = optarg; break;
		case 'i':
			if (netutil_parse_long(optarg, 1, 86400,
				    "idle timeout (s)", &h.idle_s) < 0)
				return 2;
			break;
		case 'H':
			if (netutil_parse_long(optarg, 1, 3600,
				    "header timeout (s)", &h.header_s) < 0)
				return 2;
			break;
		case 'g':
			if (netutil_parse_long(optarg, 0, 3600,
				    "grace period (s)", &h.grace_s) < 0)
				return 2;
			break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	return weft_run(httpd_main, &h) == 0 ? 0 : 1;
}
