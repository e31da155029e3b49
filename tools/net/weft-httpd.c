/* weft-httpd: a keep-alive HTTP/1.1 server on weft (benchmark B10).
 *
 *   weft-httpd [-p PORT] [-b ADDR] [-i IDLE_S] [-H HEADER_S] [-B BODY_S]
 *              [-w WRITE_S] [-g GRACE_S] [-R RELEASE_S] [-F]
 *              [--tls-cert CERT.pem --tls-key KEY.pem]
 *
 * With --tls-cert and --tls-key it speaks HTTPS (libweft-tls, ALPN
 * "http/1.1"): each connection's task runs the TLS handshake first,
 * bounded by HEADER_S, then serves requests exactly as over plain TCP
 * (the deadlines below bound the TLS reads and writes the same way: a
 * cancelled TLS read consumed nothing either).  A failed handshake
 * counts as rejected; the connection ends with close_notify.
 *
 * GET / answers 200 "Hello, World!" (HEAD: the same head, no body); other
 * paths 404; other methods 405 with "Allow: GET, HEAD".  One task per
 * connection; requests are parsed with Node.js's http-parser (Debian's
 * libhttp-parser-dev, see ARCHITECTURE.md), so pipelined requests,
 * HTTP/1.0 and "Connection: close" behave as the RFC says.
 *
 * Where Debian's http-parser (built without HTTP_PARSER_STRICT) is more
 * lenient than RFC 9112, this file adds the missing checks, each answered
 * with 400 and a close: an HTTP/1.1 request without exactly one Host; a
 * field name with a byte that is not a token character ("Host : x"); a
 * head whose last line break is not CR LF or LF; a chunk line with
 * anything but hex digits and well-formed extensions, or not ended by
 * CR LF; chunk data not followed by CR LF (the parser skips those two
 * bytes unchecked).  Chunk-size overflow, bare LF inside a chunk line,
 * Content-Length with Transfer-Encoding and duplicate Content-Length are
 * already rejected by the parser.
 *
 * A request with "Connection: upgrade" + "Upgrade" (weft-httpd speaks
 * only HTTP/1.1) or the CONNECT method is answered as any other (200,
 * 404, 405) with "Connection: close", and the connection closes after
 * the answer: the bytes after such a request may belong to another
 * protocol, so they are never read as requests.
 *
 * Protection against bad clients (the server itself is never harmed):
 *   - malformed request: 400 and the connection is closed;
 *   - request head (request line and headers, empty lines before it
 *     included) over 8 KiB: 431 and closed;
 *   - a request head not complete HEADER_S (default 10 s) after its first
 *     byte, leading empty lines included: 408 and closed (slowloris);
 *   - a request body not complete BODY_S (default 30 s) after its head:
 *     408 and closed (a body or chunks trickled byte by byte);
 *   - no request begun IDLE_S (default 60 s) after the last answer was
 *     written: closed.  That wait is the only thing the idle deadline
 *     bounds: a request read is always answered;
 *   - a client that does not read its responses: a response write gets
 *     at least WRITE_S (default 10 s), at most the longest of the
 *     deadlines above;
 *   - out of fds (accept fails with EMFILE/ENFILE): the connections
 *     waiting for a next request are closed first, oldest first, then
 *     those whose request has taken longest, so that new clients get in.
 * A connection that fails (no stack for its task, say) is closed,
 * counted and logged once; the server goes on (weft_serve_opts' policy).
 * -F (for tests): "GET /fail" makes the connection's handler fail.
 *
 * Idle connections are light: one that has waited RELEASE_S (default 1;
 * -R 0: never) for its next request gives its task's stack pages back
 * to the kernel while it waits on (weft_stream_wait_readable with
 * WEFT_WAIT_RELEASE_STACK; about 2.9 KB less per idle connection, paid
 * with a page fault when its next request comes).  A busy connection
 * never pays for it: a sweeper task looks at the waiting connections
 * four times per RELEASE_S and moves an idle one over by cancelling its
 * scope, which a read survives (it consumed nothing); the handler then
 * waits with the flag.  Nothing on the handler's stack is shared (struct
 * conn is on the heap), which the flag requires.  Plain TCP only: a TLS
 * stream may hold decrypted bytes that the socket does not show.
 * Shutdown (SIGINT/SIGTERM): stop accepting, close the keep-alive
 * connections that wait for a request, finish the requests in flight
 * (their connections are closed after the response), cancel what is left
 * after GRACE_S (default 5 s) or at a second signal.
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
#include <strings.h>
#include <unistd.h>

#include <getopt.h>
#include <http_parser.h>
#include <weft.h>
#include <weft/signal.h>
#if WEFT_HTTPD_TLS
#include <weft/tls.h>
#endif

#include "netutil.h"

#define MAX_HEAD_BYTES 8192
#define READ_BUF 16384
#define OUT_BUF 16384

struct httpd {
	const char *addr;
	long port;
	long idle_s, header_s, body_s, write_s, grace_s, release_s;
	bool fail_path; /* -F */
#if WEFT_HTTPD_TLS
	weft_tls_ctx_t *tls; /* --tls-cert/--tls-key, or NULL */
#endif
	weft_event_t *stop; /* set at phase one of shutdown */
	atomic_long connections, requests, rejected, failed, shed;
	/* Connections parked in a read (for a next request, or for the rest
	 * of one), so that phase one can close the idle ones at once
	 * (httpd_close_idle) and fd exhaustion can close some
	 * (httpd_shed).  Oldest listing first.  A plain mutex: held for a
	 * list operation or scope cancels, never across a park. */
	pthread_mutex_t wait_lock;
	struct conn *wait_head, *wait_tail; /* under wait_lock */
	bool stopping;			    /* under wait_lock */
};

/* Where a connection is in its request cycle; each phase has its own
 * deadline, counted from phase_start (conn_want). */
enum phase {
	PH_IDLE, /* waiting for the first byte of a request */
	PH_HEAD, /* a request began: its head is not complete */
	PH_BODY	 /* its head is complete, its body is not */
};

/* The chunked framing check (chunk_feed): RFC 9112 7.1's chunk line
 * "chunk-size *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) CRLF" and
 * the CRLF after chunk data, over the bytes http-parser consumed that
 * are not body data. */
enum chunk_state {
	CK_OFF,	      /* not a chunked body, or its last chunk line was seen */
	CK_SIZE0,     /* first hex digit */
	CK_SIZE,      /* more hex digits */
	CK_BWS,	      /* whitespace before ';' */
	CK_NAME0,     /* an extension's name, first char (BWS allowed) */
	CK_NAME,      /* its name */
	CK_AFTERNAME, /* whitespace after the name */
	CK_VAL0,      /* the value's first char (BWS allowed) */
	CK_VAL,	      /* a token value */
	CK_QSTR,      /* a quoted value */
	CK_QESC,      /* after a backslash in it */
	CK_LF,	      /* the LF ending the line */
	CK_DCR,	      /* the CR after chunk data */
	CK_DLF,	      /* the LF after it */
	CK_BAD
};

/* One connection's state; the parser's callbacks reach it through
 * parser.data. */
struct conn {
	struct httpd *h;
	weft_stream_t *s;
#if WEFT_HTTPD_TLS
	weft_tls_t *t; /* HTTPS: the TLS stream over s, or NULL */
#endif
	http_parser parser;
	enum phase phase;
	int64_t phase_start;
	int64_t parse_now; /* conn_parse's now, for the parser's callbacks */
	bool bad;	   /* a check of this file failed: 400 */
	bool close_after;  /* stop after the response being built */
	bool msg_done;	   /* the parser paused at a message's end */
	bool write_failed;
	bool fail_me; /* -F and "GET /fail" */
	/* Host counting: the current field's name (lower case, up to 5
	 * bytes) and whether a value followed it. */
	char field[6];
	size_t field_len;
	bool in_value;
	int hosts;
	enum chunk_state chunk;
	bool chunk_start; /* paused at a chunked head's end */
	bool was_shed;	  /* c->shed seen by the task (owner only) */
	bool was_light;	  /* c->light seen by the task (owner only) */
	const char *fpos; /* framing bytes not yet checked start here */
	char url[64];	  /* enough to tell "/" from anything else */
	size_t url_len;
	weft_scope_t *scope; /* bounds reads and writes (see conn_read) */
	int64_t scope_deadline;
	/* On h's wait list (under wait_lock): */
	struct conn *wait_next, *wait_prev;
	bool shed; /* closed to make room for new connections */
	/* Idle for RELEASE_S: the next wait gives the stack back (set by
	 * the sweeper, taken by the task's wait_leave); light_wait: the
	 * listed wait is such a wait. */
	bool light, light_wait;
	size_t out_len;
	char out[OUT_BUF];
	char in[READ_BUF];
};

static const char hello_body[] = "Hello, World!";

/* {======================================================= responses */

static int conn_flush(struct conn *c);

/* A head is put together by hand: snprintf was about 2% of the server's
 * CPU under B10's load.  Each returns the end of what it wrote. */
static char *head_put(char *p, const char *text)
{
	size_t n = strlen(text);
	memcpy(p, text, n);
	return p + n;
}

static char *head_put_uint(char *p, size_t v)
{
	char digits[24];
	int k = 0;
	do {
		digits[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (k > 0)
		*p++ = digits[--k];
	return p;
}

/* Appends one response (flushing first if it would not fit).  For a HEAD
 * request the head is the GET one (its Content-Length) without the
 * body.  reason and extra are this file's constants (a status line's
 * reason, and header lines ending in CR LF or ""): the head fits. */
static int conn_respond(struct conn *c, int status, const char *reason,
	const char *body, const char *extra, bool head_only, bool close)
{
	size_t blen = strlen(body);
	char head[256];
	char *p = head_put(head, "HTTP/1.1 ");
	p = head_put_uint(p, (size_t)status);
	*p++ = ' ';
	p = head_put(p, reason);
	p = head_put(p, "\r\nContent-Type: text/plain\r\nContent-Length: ");
	p = head_put_uint(p, blen);
	p = head_put(p, "\r\n");
	p = head_put(p, extra);
	if (close)
		p = head_put(p, "Connection: close\r\n");
	p = head_put(p, "\r\n");
	size_t hl = (size_t)(p - head);
	if (head_only)
		blen = 0;
	if (c->out_len + hl + blen > sizeof c->out && conn_flush(c) < 0)
		return -1;
	memcpy(c->out + c->out_len, head, hl);
	memcpy(c->out + c->out_len + hl, body, blen);
	c->out_len += hl + blen;
	return 0;
}

/* }======================================================= */

/* {======================================================= parser */

/* RFC 9110 5.6.2's tchar. */
static bool is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		(ch >= 'A' && ch <= 'Z') ||
		(ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool is_hex(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
		(ch >= 'A' && ch <= 'F');
}

/* Feeds framing bytes of a chunked body to the check (see enum
 * chunk_state); marks the request bad on the first wrong byte. */
static void chunk_feed(struct conn *c, const char *p, const char *end)
{
	enum chunk_state st = c->chunk;
	for (; p < end && st != CK_OFF && st != CK_BAD; p++) {
		unsigned char ch = (unsigned char)*p;
		bool ws = ch == ' ' || ch == '\t';
		switch (st) {
		case CK_SIZE0: st = is_hex(ch) ? CK_SIZE : CK_BAD; break;
		case CK_SIZE:
			st = is_hex(ch)	     ? CK_SIZE
				: ch == ';'  ? CK_NAME0
				: ws	     ? CK_BWS
				: ch == '\r' ? CK_LF
					     : CK_BAD;
			break;
		case CK_BWS:
			st = ws ? CK_BWS : ch == ';' ? CK_NAME0 : CK_BAD;
			break;
		case CK_NAME0:
			st = ws ? CK_NAME0 : is_tchar(ch) ? CK_NAME : CK_BAD;
			break;
		case CK_NAME:
		case CK_AFTERNAME:
			st = is_tchar(ch) && st == CK_NAME ? CK_NAME
				: ws			   ? CK_AFTERNAME
				: ch == '='		   ? CK_VAL0
				: ch == ';'		   ? CK_NAME0
				: ch == '\r'		   ? CK_LF
							   : CK_BAD;
			break;
		case CK_VAL0:
			st = ws		       ? CK_VAL0
				: ch == '"'    ? CK_QSTR
				: is_tchar(ch) ? CK_VAL
					       : CK_BAD;
			break;
		case CK_VAL:
			st = is_tchar(ch)    ? CK_VAL
				: ws	     ? CK_BWS
				: ch == ';'  ? CK_NAME0
				: ch == '\r' ? CK_LF
					     : CK_BAD;
			break;
		case CK_QSTR:
			/* qdtext: HTAB, SP, VCHAR but '"' and '\\', obs-text */
			st = ch == '"'	     ? CK_VAL
				: ch == '\\' ? CK_QESC
				: ch == '\t' || ch >= 0x20
				? (ch == 0x7f ? CK_BAD : CK_QSTR)
				: CK_BAD;
			break;
		case CK_QESC:
			st = ch == '\t' || (ch >= 0x20 && ch != 0x7f) ? CK_QSTR
								      : CK_BAD;
			break;
		case CK_LF: st = ch == '\n' ? CK_DCR : CK_BAD; break;
		case CK_DCR: st = ch == '\r' ? CK_DLF : CK_BAD; break;
		case CK_DLF: st = ch == '\n' ? CK_SIZE0 : CK_BAD; break;
		default: break;
		}
	}
	c->chunk = st;
	if (st == CK_BAD)
		c->bad = true;
}

static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;
	c->url_len = 0;
	c->url[0] = '\0';
	c->field_len = 0;
	c->in_value = false;
	c->hosts = 0;
	c->chunk = CK_OFF;
	c->chunk_start = false;
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
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (c->in_value) { /* a new field */
		c->in_value = false;
		c->field_len = 0;
	}
	for (size_t i = 0; i < len; i++) {
		/* The parser lets a space through in a name ("Host : x"),
		 * which RFC 9112 5.1 says must be rejected. */
		if (!is_tchar((unsigned char)at[i])) {
			c->bad = true;
			return 1;
		}
		if (c->field_len < sizeof c->field - 1)
			c->field[c->field_len] = (char)(at[i] | 0x20);
		c->field_len++;
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	(void)at;
	(void)len;
	struct conn *c = p->data;
	if (!c->in_value) {
		c->in_value = true;
		if (c->field_len == 4 && memcmp(c->field, "host", 4) == 0)
			c->hosts++;
	}
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;
	/* A field with an empty value gets no value callback. */
	if (!c->in_value && c->field_len == 4 &&
		memcmp(c->field, "host", 4) == 0)
		c->hosts++;
	/* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one before. */
	bool http11 = p->http_major > 1 ||
		(p->http_major == 1 && p->http_minor >= 1);
	if (c->hosts > 1 || (http11 && c->hosts == 0)) {
		c->bad = true;
		return -1;
	}
	c->phase = PH_BODY;
	/* The time of the read that brought these bytes (conn_parse). */
	c->phase_start = c->parse_now;
	if (p->flags & F_CHUNKED) {
		/* The head's last byte (the LF) is still the parser's: pause,
		 * so the framing check starts right after it (conn_parse). */
		c->chunk_start = true;
		http_parser_pause(p, 1);
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	chunk_feed(c, c->fpos, at); /* the framing before this data */
	c->fpos = at + len;
	return c->bad ? 1 : 0;
}

static int on_chunk_header(http_parser *p)
{
	/* The last chunk: pause, so that its line is checked up to its LF
	 * and the trailer fields after it are not (the parser reads them
	 * as header fields). */
	if (p->content_length == 0)
		http_parser_pause(p, 1);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;
	/* relaxed: a statistics counter, orders nothing (read after the
	 * service's join). */
	atomic_fetch_add_explicit(&c->h->requests, 1, memory_order_relaxed);
	/* Phase one of a shutdown: answer, then close.  After an upgrade
	 * or CONNECT request the rest is not HTTP: answer, then close. */
	bool close = !http_should_keep_alive(p) || p->upgrade ||
		weft_event_is_set(c->h->stop);
	bool head = p->method == HTTP_HEAD;
	int rc;
	if (p->method != HTTP_GET && p->method != HTTP_HEAD)
		rc = conn_respond(c, 405, "Method Not Allowed", "",
			"Allow: GET, HEAD\r\n", false, close);
	else if (strcspn(c->url, "?") == 1 && c->url[0] == '/') /* "/?q" */
		rc = conn_respond(c, 200, "OK", hello_body, "", head, close);
	else if (c->h->fail_path && strcmp(c->url, "/fail") == 0) {
		c->fail_me = true;
		rc = 0;
	} else
		rc = conn_respond(c, 404, "Not Found", "", "", head, close);
	if (rc < 0)
		return 1;
	if (close)
		c->close_after = true;
	/* One message per execute: conn_parse starts the next one's phase
	 * at the right byte. */
	c->msg_done = true;
	c->phase = PH_IDLE;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_chunk_header = on_chunk_header,
	.on_message_complete = on_message_complete,
};

/* Parses n bytes read at time `now`.  Returns 0 to go on reading, 1 when
 * the connection should close after flushing (answered with close), or
 * the status of an error response to send before closing (400, 431). */
static int conn_parse(struct conn *c, const char *buf, size_t n, int64_t now)
{
	size_t off = 0;
	c->fpos = buf;
	c->parse_now = now;
	while (off < n && !c->close_after && !c->fail_me) {
		if (c->phase == PH_IDLE) {
			/* The first byte of a request, empty lines included,
			 * starts its head's deadline. */
			c->phase = PH_HEAD;
			c->phase_start = now;
		}
		c->msg_done = false;
		size_t used = http_parser_execute(&c->parser, &settings,
			buf + off, n - off);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (c->write_failed)
			return 1;
		if (c->bad)
			return 400;
		if (e == HPE_HEADER_OVERFLOW)
			return 431;
		if (e != HPE_OK && e != HPE_PAUSED)
			return 400;
		const char *end = buf + off + used;
		if (c->chunk != CK_OFF)
			chunk_feed(c, c->fpos, end);
		c->fpos = end;
		if (c->bad)
			return 400;
		off += used;
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			if (c->chunk_start) {
				/* Paused at the end of a chunked head: the
				 * parser has yet to take the head's LF, which
				 * it does not check (not strict). */
				c->chunk_start = false;
				if (off >= n || buf[off] != '\n')
					return 400;
				c->chunk = CK_SIZE0;
				c->fpos = end + 1;
			} else if (!c->msg_done && c->chunk == CK_DCR) {
				c->chunk = CK_OFF; /* the last chunk line */
			}
		}
		if (c->parser.upgrade)
			break; /* answered with close: the rest is not HTTP */
	}
	return c->close_after ? 1 : 0;
}

/* }======================================================= */

/* {======================================================= timeouts */

/* The deadline of the connection's current phase. */
static int64_t conn_want(const struct conn *c)
{
	const struct httpd *h = c->h;
	long s = c->phase == PH_IDLE  ? h->idle_s
		: c->phase == PH_HEAD ? h->header_s
				      : h->body_s;
	return c->phase_start + s * WEFT_SEC;
}

static void conn_scope_close(struct conn *c)
{
	if (c->scope != NULL) {
		weft_scope_exit(c->scope);
		weft_scope_destroy(c->scope);
		c->scope = NULL;
	}
}

/* Lists c as parked in a read (light: one that gives its stack back);
 * false if the server is stopping and c is idle (it should close instead
 * of waiting for a request). */
static bool wait_enter(struct conn *c, bool light)
{
	struct httpd *h = c->h;
	pthread_mutex_lock(&h->wait_lock);
	bool ok = !(h->stopping && c->phase == PH_IDLE);
	if (ok) {
		c->light_wait = light;
		c->wait_next = NULL;
		c->wait_prev = h->wait_tail;
		if (h->wait_tail)
			h->wait_tail->wait_next = c;
		else
			h->wait_head = c;
		h->wait_tail = c;
	}
	pthread_mutex_unlock(&h->wait_lock);
	return ok;
}

/* Unlists c; returns whether it should close rather than wait again (the
 * server is stopping and c is idle, or c was shed). */
static bool wait_leave(struct conn *c)
{
	struct httpd *h = c->h;
	pthread_mutex_lock(&h->wait_lock);
	if (c->wait_prev)
		c->wait_prev->wait_next = c->wait_next;
	else
		h->wait_head = c->wait_next;
	if (c->wait_next)
		c->wait_next->wait_prev = c->wait_prev;
	else
		h->wait_tail = c->wait_prev;
	bool go = c->shed || (h->stopping && c->phase == PH_IDLE);
	c->was_shed = c->shed;
	c->was_light = c->light;
	c->light = false;
	pthread_mutex_unlock(&h->wait_lock);
	return go;
}

/* Phase one of a shutdown: wakes every connection waiting for a request
 * (its read returns -ECANCELED, and it closes) and keeps new ones from
 * waiting.  A listed connection's scope exists and stays until it has
 * unlisted itself (conn_read). */
static void httpd_close_idle(struct httpd *h)
{
	pthread_mutex_lock(&h->wait_lock);
	h->stopping = true;
	for (struct conn *c = h->wait_head; c; c = c->wait_next)
		if (c->phase == PH_IDLE)
			weft_scope_cancel(c->scope, "shutting down");
	pthread_mutex_unlock(&h->wait_lock);
}

/* Every RELEASE_S / 4: moves the connections idle for RELEASE_S to a
 * wait that gives their stack back (see the top of the file).  The
 * cancel ends their read with nothing consumed, and conn_read waits
 * again, lightly.  Runs until cancelled (the service's end). */
static int httpd_sweeper(void *arg)
{
	struct httpd *h = arg;
	for (;;) {
		int rc = weft_sleep(h->release_s * WEFT_SEC / 4);
		if (rc < 0)
			return rc == -ECANCELED ? 0 : rc;
		int64_t old = weft_now() - h->release_s * WEFT_SEC;
		pthread_mutex_lock(&h->wait_lock);
		for (struct conn *c = h->wait_head; c; c = c->wait_next) {
			if (c->phase != PH_IDLE || c->light || c->light_wait ||
				c->shed || c->phase_start > old)
				continue;
#if WEFT_HTTPD_TLS
			if (c->t != NULL)
				continue;
#endif
			c->light = true;
			weft_scope_cancel(c->scope,
				"idle: the stack goes back");
		}
		pthread_mutex_unlock(&h->wait_lock);
	}
}

/* weft_serve's on_exhausted: out of fds, so new clients wait in the
 * listen queue.  Close some waiting connections to make room: idle ones
 * first (oldest first: the list is in listing order, and an idle
 * connection lists once per wait), then requests whose head or body has
 * taken over a second, longest first.  Up to 1/8 of the waiting ones
 * (at least 16) per call; weft_serve calls again 100 ms later if still
 * short. */
static void httpd_shed(int code, void *arg)
{
	(void)code;
	struct httpd *h = arg;
	int64_t now = weft_now();
	pthread_mutex_lock(&h->wait_lock);
	long waiting = 0;
	for (struct conn *c = h->wait_head; c; c = c->wait_next)
		waiting++;
	long quota = waiting / 8 > 16 ? waiting / 8 : 16, done = 0;
	for (int pass = 0; pass < 2 && done < quota; pass++) {
		/* Pass 1 takes partial requests by age of their start. */
		for (;;) {
			struct conn *victim = NULL;
			for (struct conn *c = h->wait_head; c;
				c = c->wait_next) {
				if (c->shed)
					continue;
				if (pass == 0 && c->phase == PH_IDLE) {
					victim = c;
					break;
				}
				if (pass == 1 && c->phase != PH_IDLE &&
					now - c->phase_start > WEFT_SEC &&
					(victim == NULL ||
						c->phase_start <
							victim->phase_start))
					victim = c;
			}
			if (victim == NULL || done >= quota)
				break;
			victim->shed = true;
			weft_scope_cancel(victim->scope, "out of fds: shed");
			done++;
		}
	}
	pthread_mutex_unlock(&h->wait_lock);
	/* relaxed: a statistics counter, as requests. */
	atomic_fetch_add_explicit(&h->shed, done, memory_order_relaxed);
}

/* Makes the connection's scope bound what comes next by `want`.  One
 * cancel scope bounds reads and writes; its deadline is only moved
 * earlier, and the scope is replaced when it fired early (the connection
 * was active since; a cancelled read consumed nothing and is retried),
 * so a busy keep-alive connection touches its timer about once per idle
 * period, not once per request.  0 or -ENOMEM. */
static int conn_scope_by(struct conn *c, int64_t want)
{
	if (c->scope != NULL && weft_scope_cancel_called(c->scope))
		conn_scope_close(c);
	if (c->scope == NULL) {
		if (weft_move_on_at(&c->scope, want) < 0)
			return -ENOMEM;
		c->scope_deadline = want;
	} else if (want < c->scope_deadline) {
		weft_scope_set_deadline(c->scope, want);
		c->scope_deadline = want;
	}
	return 0;
}

/* Before a response is written: a write cancelled part way cannot be
 * retried, so the scope must not fire within WRITE_S (a request read is
 * always answered, however close its connection was to a deadline). */
static int conn_scope_for_write(struct conn *c)
{
	int64_t want = weft_now() + c->h->write_s * WEFT_SEC;
	if (c->scope != NULL && weft_scope_cancel_called(c->scope))
		conn_scope_close(c);
	if (c->scope == NULL)
		return conn_scope_by(c, want);
	if (c->scope_deadline < want) {
		weft_scope_set_deadline(c->scope, want);
		c->scope_deadline = want;
	}
	return 0;
}

/* One read over TLS or plain TCP. */
static ssize_t conn_recv(struct conn *c)
{
#if WEFT_HTTPD_TLS
	if (c->t != NULL)
		return weft_tls_read(c->t, c->in, sizeof c->in);
#endif
	return weft_stream_read(c->s, c->in, sizeof c->in);
}

/* Reads with the deadline of the connection's phase.  While parked the
 * connection is on the wait list (httpd_close_idle, httpd_shed).
 * Returns bytes, 0 at EOF or when closed at shutdown or shed,
 * -ETIMEDOUT, or another error. */
static ssize_t conn_read(struct conn *c)
{
	for (;;) {
		if (conn_scope_by(c, conn_want(c)) < 0)
			return -ENOMEM;
		/* Moved over by the sweeper (it cancelled the last read). */
		bool light = c->was_light && c->phase == PH_IDLE;
		c->was_light = false;
		if (!wait_enter(c, light))
			return 0;
		/* A light wait ends as a read would, consuming nothing. */
		ssize_t n = light ? weft_stream_wait_readable(c->s,
					    WEFT_WAIT_RELEASE_STACK)
				  : 0;
		if (n == 0)
			n = conn_recv(c);
		bool go = wait_leave(c);
		/* Bytes that came in time are a request: answered
		 * (conn_scope_for_write replaces the cancelled scope). */
		if (n != -ECANCELED)
			return n;
		if (!weft_scope_cancel_called(c->scope))
			return n; /* an outer cancellation: shutdown */
		if (go)
			return 0;
		conn_scope_close(c);
		if (weft_now() >= conn_want(c))
			return -ETIMEDOUT;
	}
}

/* A write over TLS or plain TCP. */
static int conn_write(struct conn *c, const void *buf, size_t len)
{
#if WEFT_HTTPD_TLS
	if (c->t != NULL)
		return weft_tls_write(c->t, buf, len);
#endif
	return weft_stream_write(c->s, buf, len);
}

static int conn_flush(struct conn *c)
{
	if (c->out_len == 0)
		return 0;
	int rc = conn_scope_for_write(c);
	if (rc == 0)
		rc = conn_write(c, c->out, c->out_len);
	c->out_len = 0;
	if (rc < 0)
		c->write_failed = true;
	return rc;
}

/* }======================================================= */

static int httpd_conn(weft_stream_t *s, void *arg)
{
	struct httpd *h = arg;
	/* relaxed: a statistics counter, as requests. */
	atomic_fetch_add_explicit(&h->connections, 1, memory_order_relaxed);
	struct conn *c = malloc(sizeof *c);
	if (c == NULL)
		return weft_fail(-ENOMEM, "no memory for a connection");
	memset(c, 0, offsetof(struct conn, out));
	c->h = h;
	c->s = s;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->phase = PH_IDLE;
	c->phase_start = weft_now();
#if WEFT_HTTPD_TLS
	if (h->tls != NULL) {
		/* The handshake, bounded by the context's timeout (HEADER_S);
		 * weft_serve closes s, so the TLS stream borrows it. */
		if (weft_tls_accept_borrowed(&c->t, s, h->tls, NULL, 0) < 0) {
			/* relaxed: a statistics counter, as requests. */
			atomic_fetch_add_explicit(&h->rejected, 1,
				memory_order_relaxed);
			free(c);
			return 0;
		}
		c->phase_start = weft_now();
	}
#endif
	while (!c->close_after && !c->write_failed && !c->fail_me) {
		if (c->phase == PH_IDLE && weft_event_is_set(h->stop))
			break; /* shutting down: no new request */
		ssize_t n = conn_read(c);
		if (n == -ETIMEDOUT && c->phase != PH_IDLE) {
			conn_respond(c, 408, "Request Timeout", "", "", false,
				true);
			break;
		}
		if (n <= 0)
			break; /* EOF, reset, idle timeout or cancelled */
		int st = conn_parse(c, c->in, (size_t)n, weft_now());
		if (st >= 400) {
			/* relaxed: a statistics counter, as requests. */
			atomic_fetch_add_explicit(&h->rejected, 1,
				memory_order_relaxed);
			if (st == 431)
				conn_respond(c, 431,
					"Request Header Fields Too Large", "",
					"", false, true);
			else
				conn_respond(c, 400, "Bad Request", "", "",
					false, true);
			break;
		}
		if (conn_flush(c) < 0 || c->was_shed)
			break; /* a shed connection closes once answered */
		if (c->phase == PH_IDLE)
			c->phase_start =
				weft_now(); /* answered: idle from now */
	}
	/* Answers still buffered (a last error response, or the answers
	 * before a failure), bounded as any write. */
	if (!c->write_failed && c->out_len > 0)
		conn_flush(c);
	conn_scope_close(c);
#if WEFT_HTTPD_TLS
	if (c->t != NULL)
		weft_tls_close(c->t); /* close_notify; s stays weft_serve's */
#endif
	bool fail = c->fail_me;
	free(c);
	if (fail)
		return weft_fail(-EIO, "GET /fail (-F)");
	return 0;
}

/* weft_serve_opts' on_conn_failure: one line per failed connection. */
static void httpd_conn_failed(int code, const char *msg, void *arg)
{
	struct httpd *h = arg;
	/* relaxed: a statistics counter, as requests. */
	atomic_fetch_add_explicit(&h->failed, 1, memory_order_relaxed);
	fprintf(stderr, "weft-httpd: connection failed: %s: %s\n",
		weft_strerror(code), msg);
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
	/* The sweeper of idle connections, in a group of its own: the
	 * serving group's join must not wait for it. */
	weft_group_t *sg = NULL;
	if (h->release_s > 0) {
		rc = weft_group_open(&sg);
		if (rc == 0)
			rc = weft_group_spawn_named(sg, "sweeper",
				httpd_sweeper, h);
		if (rc < 0) {
			if (sg != NULL) {
				weft_group_cancel(sg, NULL);
				weft_group_join(sg, NULL);
			}
			weft_group_cancel(g, NULL);
			weft_group_join(g, NULL);
			weft_listener_close(l);
			return rc;
		}
	}
	weft_shutdown_t *sd = NULL;
	rc = weft_shutdown_open(&sd, g, h->grace_s * WEFT_SEC);
	if (rc == 0) {
		h->stop = weft_shutdown_stop_event(sd);
		weft_task_started((void *)(intptr_t)weft_listener_port(l));
		weft_serve_opts_t o = { .stop = h->stop,
			.on_conn_failure = httpd_conn_failed,
			.on_exhausted = httpd_shed };
		rc = weft_serve_opts(l, g, httpd_conn, h, &o);
	}
	/* Stopped (or failed): nobody waits for a new request any more. */
	if (sg != NULL) {
		weft_group_cancel(sg, NULL);
		weft_group_join(sg, NULL);
	}
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
		"rejected, %ld failed, %ld shed\n",
		atomic_load(&h->connections), atomic_load(&h->requests),
		atomic_load(&h->rejected), atomic_load(&h->failed),
		atomic_load(&h->shed));
	return rc < 0 ? rc : jrc;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: weft-httpd [-p PORT] [-b ADDR] [-i IDLE_S] "
		"[-H HEADER_S] [-B BODY_S] [-w WRITE_S] [-g GRACE_S] "
		"[-R RELEASE_S] [-F]\n"
		"  -i  close a connection when no request began IDLE_S after "
		"its last answer (60)\n"
		"  -H  408 when a request head is not complete HEADER_S after "
		"its first byte (10)\n"
		"  -B  408 when a request body is not complete BODY_S after "
		"its head (30)\n"
		"  -w  time a response write gets at least (10)\n"
		"  -g  grace period of a shutdown (5)\n"
		"  -R  a connection idle RELEASE_S gives its stack back while "
		"it waits (1; 0: never)\n"
		"  -F  for tests: GET /fail makes its connection's handler "
		"fail\n"
		"  --tls-cert CERT --tls-key KEY  serve HTTPS with this "
		"certificate chain and key (PEM)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct httpd h = { .addr = "127.0.0.1",
		.idle_s = 60,
		.header_s = 10,
		.body_s = 30,
		.write_s = 10,
		.grace_s = 5,
		.release_s = 1,
		.wait_lock = PTHREAD_MUTEX_INITIALIZER };
	static const struct option longopts[] = {
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tls_cert = NULL, *tls_key = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "p:b:i:H:B:w:g:R:Fh", longopts,
			NULL)) != -1) {
		switch (c) {
		case 'C': tls_cert = optarg; break;
		case 'K': tls_key = optarg; break;
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
		case 'B':
			if (netutil_parse_long(optarg, 1, 86400,
				    "body timeout (s)", &h.body_s) < 0)
				return 2;
			break;
		case 'w':
			if (netutil_parse_long(optarg, 1, 3600,
				    "write timeout (s)", &h.write_s) < 0)
				return 2;
			break;
		case 'F': h.fail_path = true; break;
		case 'R':
			if (netutil_parse_long(optarg, 0, 86400,
				    "stack release after (s)",
				    &h.release_s) < 0)
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
	if ((tls_cert == NULL) != (tls_key == NULL)) {
		fprintf(stderr,
			"weft-httpd: --tls-cert and --tls-key go "
			"together\n");
		return 2;
	}
	if (tls_cert != NULL) {
#if WEFT_HTTPD_TLS
		weft_tls_ctx_options_t o = { .server = 1,
			.cert_file = tls_cert,
			.key_file = tls_key,
			.alpn = "http/1.1",
			.handshake_timeout_ns = h.header_s * WEFT_SEC };
		char why[300];
		if (weft_tls_ctx_create(&h.tls, &o, why, sizeof why) < 0) {
			fprintf(stderr, "weft-httpd: TLS: %s\n", why);
			return 2;
		}
#else
		fprintf(stderr,
			"weft-httpd: built without TLS (libweft-tls "
			"needs OpenSSL: libssl-dev)\n");
		return 2;
#endif
	}
	/* The parser counts every byte of a head against this limit, the
	 * request line and empty lines before it included. */
	http_parser_set_max_header_size(MAX_HEAD_BYTES);
	int rc = weft_run(httpd_main, &h) == 0 ? 0 : 1;
#if WEFT_HTTPD_TLS
	weft_tls_ctx_destroy(h.tls);
#endif
	return rc;
}
