/* weft-fetch: HTTP/1.1 GETs of many URLs at once, the classic "concurrent
 * web requests" example of asyncio tutorials (asyncio tasks + aiohttp) as
 * a tool.
 *
 *   weft-fetch [-c N] [-t S] [-d S] [--fail-fast] [-o DIR] [-q]
 *              [--cacert FILE] [--insecure] URL...
 *
 * The shape of the program is the shape of the structured-concurrency
 * version of that example:
 *
 *   main task
 *     [deadline scope, -d]           weft_fail_after: the whole run
 *       group                        one task per URL, joined before exit
 *         fetch_one(url)             waits for a token of the limiter (-c)
 *           [timeout scope, -t]      weft_fail_after: one request
 *             connect                weft_tcp_connect (DNS, Happy Eyeballs)
 *             TLS handshake          https:// only: weft_tls_connect
 *                                    (libweft-tls: SNI, ALPN http/1.1,
 *                                    the server's certificate verified
 *                                    against the system's CAs or
 *                                    --cacert, and its host name)
 *             send GET, parse reply  http-parser (Content-Length, chunked,
 *                                    or a body that ends at EOF)
 *           print one line           in completion order
 *
 * A failed URL is reported on its line and the others go on; with
 * --fail-fast the first failure is returned as the task's failure, which
 * cancels the group (docs/semantics.md rule 4), so the URLs still running or
 * waiting print "ERR cancelled".  The exit status is 0 when every URL got
 * a response (any HTTP status: a 404 is a response), 1 when one did not,
 * 2 for a usage error, 3 when a server's certificate failed verification
 * (and nothing worse happened: the line says why, "ERR tls-verify:
 * certificate has expired"), 4 for another TLS failure.  Workers come
 * from WEFT_WORKERS, as for every weft program.  Public API only. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <http_parser.h>

#include "netutil.h"
#include "weft.h"
#if WEFT_FETCH_TLS
#include "weft/tls.h"
#endif

/* A malformed response, as a weft-style negative code: the protocol was
 * broken.  Reported as "bad-response". */
#define FETCH_EBADRESPONSE (-EPROTO)

/* Bytes read from the socket per weft_stream_read. */
#define FETCH_READ_BUF (16 * 1024)

/* {====== options and shared state */

struct options {
	long concurrency;    /* -c: requests in flight at once */
	int64_t timeout_ns;  /* -t: per request */
	int64_t deadline_ns; /* -d: whole run; 0 = none */
	int fail_fast;	     /* --fail-fast */
	int quiet;	     /* -q: print failures and the total only */
	const char *outdir;  /* -o: save bodies as DIR/<index>; NULL = no */
	const char *cacert;  /* --cacert: trusted CAs (PEM); NULL: system */
	int insecure;	     /* --insecure: no certificate verification */
};

/* One URL.  Written by main before the runtime starts; read by its task
 * (spawning publishes it, rule 8). */
struct job {
	struct run *run;
	int index; /* position on the command line, from 0 */
	const char *url;
	struct netutil_url u; /* host, port, path */
	char why[256];	      /* a TLS failure's reason, for its line */
};

/* State shared by every task of one run. */
struct run {
	const struct options *opt;
	struct job *jobs;
	int njobs;
	weft_limiter_t *limiter; /* -c tokens */
	weft_scope_t *deadline;	 /* the -d scope, or NULL */
#if WEFT_FETCH_TLS
	weft_tls_ctx_t *tls; /* for https:// URLs, or NULL */
#endif
	/* Outcome counters.  Relaxed: each is a plain tally; the join of the
	 * group orders every increment before main reads them (a child's
	 * completion happens-before join returns, rule 8). */
	atomic_int ok, failed;
	atomic_int tls_verify, tls_other; /* failures of these kinds */
	int exit_status; /* written by the main task at the end */
	int started;	 /* 1 once the main task ran */
};

/* }====== */

/* {====== the response parser (http-parser callbacks) */

/* One response being parsed.  Lives in fetch_one's frame; the callbacks
 * run on the same fiber, inside http_parser_execute. */
struct response {
	http_parser parser;
	int complete;	/* the final message ended */
	uint64_t bytes; /* body bytes (after de-chunking) */
	int fd;		/* body file (-o), or -1 */
	int save_err;	/* a write to fd failed: its code */
};

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct response *r = p->data;
	r->bytes += len;
	if (r->fd >= 0) {
		/* Parks this fiber on libuv's pool; fine inside a callback:
		 * it is an ordinary call on the fiber's stack. */
		ssize_t n = weft_fs_write(r->fd, at, len, -1);
		if (n < 0) {
			r->save_err = (int)n;
			return 1; /* stops the parser */
		}
	}
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct response *r = p->data;
	/* An interim 1xx response (100 Continue) is followed by the real
	 * one on the same connection. */
	if (p->status_code / 100 == 1 && p->status_code != 101) {
		r->bytes = 0;
		return 0;
	}
	r->complete = 1;
	/* Stop at the end of the message: anything after it is not ours. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* }====== */

/* {====== one request */

/* A connection: plain, or TLS over the stream. */
struct conn {
	weft_stream_t *s;
#if WEFT_FETCH_TLS
	weft_tls_t *t;
#endif
};

static int conn_write(struct conn *c, const void *buf, size_t len)
{
#if WEFT_FETCH_TLS
	if (c->t != NULL)
		return weft_tls_write(c->t, buf, len);
#endif
	return weft_stream_write(c->s, buf, len);
}

static ssize_t conn_read(struct conn *c, void *buf, size_t len)
{
#if WEFT_FETCH_TLS
	if (c->t != NULL)
		return weft_tls_read(c->t, buf, len);
#endif
	return weft_stream_read(c->s, buf, len);
}

/* Sends the GET and parses the reply into r.  buf is FETCH_READ_BUF
 * bytes of scratch.  Returns 0 (a whole response was read) or a negative
 * code. */
static int exchange(struct conn *c, const struct job *j, struct response *r,
	char *buf)
{
	/* The Host header names the port only when it is not the default. */
	char port[8] = "";
	if (j->u.port != (j->u.https ? 443 : 80))
		snprintf(port, sizeof port, ":%d", j->u.port);
	const char *lb = j->u.bracketed ? "[" : "";
	const char *rb = j->u.bracketed ? "]" : "";
	int n = snprintf(buf, FETCH_READ_BUF,
		"GET %s HTTP/1.1\r\nHost: %s%s%s%s\r\nConnection: close\r\n"
		"User-Agent: weft-fetch\r\n\r\n",
		j->u.path, lb, j->u.host, rb, port);
	if (n < 0 || n >= FETCH_READ_BUF)
		return -ENAMETOOLONG;
	int rc = conn_write(c, buf, (size_t)n);
	if (rc < 0)
		return rc;

	http_parser_init(&r->parser, HTTP_RESPONSE);
	r->parser.data = r;
	for (;;) {
		ssize_t got = conn_read(c, buf, FETCH_READ_BUF);
		if (got < 0)
			return (int)got;
		/* got == 0 is the end of the stream: executing with length 0
		 * tells the parser, which then completes a body that runs to
		 * EOF, or flags a message cut short. */
		size_t used = http_parser_execute(&r->parser, &parser_settings,
			buf, (size_t)got);
		if (r->save_err < 0)
			return r->save_err;
		if (r->complete)
			return 0;
		if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK ||
			used != (size_t)got || got == 0)
			return FETCH_EBADRESPONSE;
	}
}

/* Connects, exchanges, closes: the part bounded by the per-request
 * timeout. */
static int http_get(struct job *j, struct response *r)
{
	char *buf = malloc(FETCH_READ_BUF);
	if (buf == NULL)
		return -ENOMEM;
	struct conn c = { 0 };
	int rc = weft_tcp_connect(&c.s, j->u.host, j->u.port);
#if WEFT_FETCH_TLS
	/* The TLS stream takes the plain one, also when it fails. */
	if (rc == 0 && j->u.https)
		rc = weft_tls_connect(&c.t, c.s, j->run->tls, j->u.host, j->why,
			sizeof j->why);
	if (rc == 0) {
		rc = exchange(&c, j, r, buf);
		if (c.t != NULL)
			weft_tls_close(c.t);
		else
			weft_stream_close(c.s);
	}
#else
	if (rc == 0) {
		rc = exchange(&c, j, r, buf);
		weft_stream_close(c.s);
	}
#endif
	free(buf);
	return rc;
}

/* The word printed for a failure. */
static const char *failure_label(const struct run *run, int rc)
{
	switch (rc) {
	case -ETIMEDOUT: return "timeout";
	case -ECONNREFUSED: return "refused";
	case WEFT_ENOTFOUND: return "not-found (DNS)";
	case FETCH_EBADRESPONSE: return "bad-response";
	case WEFT_ETLS_VERIFY: return "tls-verify";
	case WEFT_ETLS: return "tls";
	case WEFT_ETLS_TRUNCATED: return "tls-truncated";
	case -ECANCELED:
		/* weft_scope_cancel_called may be read from any thread. */
		if (run->deadline && weft_scope_cancel_called(run->deadline))
			return "deadline";
		return "cancelled";
	default: return weft_err_name(rc);
	}
}

/* Opens DIR/<index> for the body; -1 in *fd when not saving. */
static int open_body_file(const struct job *j, char *path, size_t cap, int *fd)
{
	*fd = -1;
	if (j->run->opt->outdir == NULL)
		return 0;
	snprintf(path, cap, "%s/%d", j->run->opt->outdir, j->index);
	return weft_fs_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, fd);
}

/* Closes the body file, and removes it when the fetch failed (no partial
 * bodies are left behind).  Shielded: a fetch cancelled by --fail-fast or
 * the deadline must still clean up, and an unshielded unlink would just
 * return -ECANCELED. */
static void close_body_file(int fd, const char *path, int failed)
{
	if (fd < 0)
		return;
	weft_scope_t *shield;
	int rc = weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD);
	weft_fs_close(fd); /* always releases fd, even when cancelled */
	if (failed)
		weft_fs_unlink(path);
	if (rc == 0) {
		weft_scope_exit(shield);
		weft_scope_destroy(shield);
	}
}

/* The task of one URL. */
static int fetch_one(void *arg)
{
	struct job *j = arg;
	struct run *run = j->run;
	const char *url = j->url;
	int64_t t0 = weft_now();

	/* At most -c requests run at once: wait for a token.  Waiting does
	 * not count against the per-request timeout. */
	int rc = weft_limiter_acquire(run->limiter);
	struct response r = { .fd = -1 };
	char path[PATH_MAX];
	if (rc == 0) {
		t0 = weft_now();
		weft_scope_t *timeout;
		rc = weft_fail_after(&timeout, run->opt->timeout_ns);
		if (rc == 0) {
			rc = open_body_file(j, path, sizeof path, &r.fd);
			if (rc == 0)
				rc = http_get(j, &r);
			/* -ETIMEDOUT iff the timeout cut the request short. */
			int t = weft_scope_exit(timeout);
			weft_scope_destroy(timeout);
			if (t < 0)
				rc = t;
		}
		close_body_file(r.fd, path, rc < 0);
		weft_limiter_release(run->limiter);
	}
	double ms = netutil_ms(weft_now() - t0);

	/* One printf per line: stdio's lock keeps lines whole when tasks on
	 * several workers finish at once. */
	if (rc == 0) {
		/* relaxed: a tally; the join orders it before fetch_main
		 * reads it (see struct run). */
		atomic_fetch_add_explicit(&run->ok, 1, memory_order_relaxed);
		if (!run->opt->quiet)
			printf("%u %.1f ms %llu bytes %s\n",
				r.parser.status_code, ms,
				(unsigned long long)r.bytes, url);
		return 0;
	}
	/* relaxed: a tally, as run->ok above. */
	atomic_fetch_add_explicit(&run->failed, 1, memory_order_relaxed);
	if (rc == WEFT_ETLS_VERIFY)
		atomic_fetch_add_explicit(&run->tls_verify, 1,
			memory_order_relaxed);
	else if (rc == WEFT_ETLS || rc == WEFT_ETLS_TRUNCATED)
		atomic_fetch_add_explicit(&run->tls_other, 1,
			memory_order_relaxed);
	/* The reason in words for TLS failures; a cancellation or a
	 * timeout says enough by its label. */
	if (j->why[0] != '\0' &&
		(rc == WEFT_ETLS_VERIFY || rc == WEFT_ETLS ||
			rc == WEFT_ETLS_TRUNCATED))
		printf("ERR %s: %s %.1f ms %s\n", failure_label(run, rc),
			j->why, ms, url);
	else
		printf("ERR %s %.1f ms %s\n", failure_label(run, rc), ms, url);
	/* A cancellation is never a failure (it is how the others stop). */
	if (run->opt->fail_fast && rc != -ECANCELED)
		return weft_fail(rc, "%s: %s", url, failure_label(run, rc));
	return 0;
}

/* }====== */

/* {====== the main task */

static int fetch_main(void *arg)
{
	struct run *run = arg;
	run->started = 1;
	int64_t t0 = weft_now();
	int rc = weft_limiter_create(&run->limiter,
		(size_t)run->opt->concurrency);
	if (rc < 0)
		return rc;
#if WEFT_FETCH_TLS
	int https = 0;
	for (int i = 0; i < run->njobs; i++)
		https |= run->jobs[i].u.https;
	if (https) {
		weft_tls_ctx_options_t o = { .ca_file = run->opt->cacert,
			.insecure_no_verify = run->opt->insecure,
			.alpn = "http/1.1",
			/* the request's own timeout (-t) bounds it */
			.handshake_timeout_ns = -1 };
		char why[300];
		rc = weft_tls_ctx_create(&run->tls, &o, why, sizeof why);
		if (rc < 0) {
			fprintf(stderr, "weft-fetch: TLS: %s\n", why);
			run->exit_status = 4;
			rc = 0; /* reported: the exit status says it */
			goto out_limiter;
		}
	}
#endif

	/* The overall deadline is a scope around the group: when it
	 * passes, every task in the group sees -ECANCELED at once. */
	if (run->opt->deadline_ns > 0) {
		rc = weft_fail_after(&run->deadline, run->opt->deadline_ns);
		if (rc < 0)
			goto out_limiter;
	}

	weft_group_t *g;
	rc = weft_group_open(&g);
	if (rc == 0) {
		for (int i = 0; i < run->njobs; i++) {
			rc = weft_group_spawn(g, fetch_one, &run->jobs[i]);
			if (rc < 0) {
				fprintf(stderr, "weft-fetch: spawn: %s\n",
					weft_strerror(rc));
				weft_group_cancel(g, "spawn failed");
				break;
			}
		}
		/* Every failure was printed by its task: the error group
		 * (fail-fast) only needs freeing. */
		weft_error_t *err = NULL;
		int j = weft_group_join(g, &err);
		weft_error_free(err);
		if (rc == 0 && j < 0 && j != WEFT_ECHILD_FAILED &&
			j != -ECANCELED)
			rc = j;
	}
	if (run->deadline) {
		weft_scope_exit(run->deadline);
		weft_scope_destroy(run->deadline);
		run->deadline = NULL;
	}

	/* relaxed: the group's join above ordered every task's increment
	 * before these loads (rule 8); the counters publish nothing. */
	int ok = atomic_load_explicit(&run->ok, memory_order_relaxed);
	int failed = atomic_load_explicit(&run->failed, memory_order_relaxed);
	printf("total: %d urls, ok %d, failed %d, %.1f ms\n", run->njobs, ok,
		failed, netutil_ms(weft_now() - t0));
	run->exit_status = (rc == 0 && failed == 0 && ok == run->njobs) ? 0 : 1;
	/* relaxed: as ok and failed above. */
	int tls_verify = atomic_load_explicit(&run->tls_verify,
		memory_order_relaxed);
	int tls_other = atomic_load_explicit(&run->tls_other,
		memory_order_relaxed);
	if (rc == 0 && tls_verify + tls_other == failed && failed > 0)
		run->exit_status = tls_other > 0 ? 4 : 3;
out_limiter:
#if WEFT_FETCH_TLS
	weft_tls_ctx_destroy(run->tls);
#endif
	weft_limiter_destroy(run->limiter);
	return rc;
}

/* }====== */

/* {====== command line */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-fetch [-c CONCURRENCY] [-t TIMEOUT_S] "
		"[-d DEADLINE_S]\n"
		"                  [--fail-fast] [-o DIR] [-q] "
		"[--cacert FILE] [--insecure] URL...\n"
		"  URL             http[s]://host[:port][/path] "
		"(host name, IPv4, or [IPv6])\n"
		"  -c N            requests in flight at once (default 10)\n"
		"  -t S            per-request timeout in seconds\n"
		"                  (default 10; decimals allowed)\n"
		"  -d S            deadline for the whole run (default none)\n"
		"  --fail-fast     the first failure cancels the rest\n"
		"  -o DIR          save body i (from 0, command-line order) as "
		"DIR/i\n"
		"  -q              print only failures and the total\n"
		"  --cacert FILE   https: trust the CAs in FILE (PEM) "
		"instead of the system's\n"
		"  --insecure      https: do not verify certificates\n"
		"Output, one line per URL in completion order:\n"
		"  STATUS MS ms BYTES bytes URL   or   ERR REASON MS ms URL\n"
		"then 'total: N urls, ok X, failed Y, Z ms'.\n"
		"Exit: 0 every URL got a response, 1 some did not, 2 usage,\n"
		"3 certificate verification failed, 4 other TLS failure\n"
		"(3 and 4 when every failure was of that kind).\n"
		"WEFT_WORKERS sets the number of worker threads.\n");
}

/* Parses seconds (decimals allowed) in (0, 1e6] into nanoseconds. */
static int parse_seconds(const char *s, const char *what, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (*s == '\0' || errno != 0 || *end != '\0' || !isfinite(v) ||
		v <= 0 || v > 1e6) {
		fprintf(stderr,
			"weft-fetch: invalid %s '%s': expected a "
			"number of seconds in (0, 1000000], e.g. 0.5\n",
			what, s);
		return -1;
	}
	*out = (int64_t)(v * 1e9);
	if (*out < 1)
		*out = 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct options opt = {
		.concurrency = 10,
		.timeout_ns = 10 * WEFT_SEC,
	};
	static const struct option longopts[] = {
		{ "fail-fast", no_argument, NULL, 'F' },
		{ "cacert", required_argument, NULL, 'A' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:t:d:o:qh", longopts, NULL)) !=
		-1) {
		switch (c) {
		case 'c':
			if (netutil_parse_long(optarg, 1, 100000,
				    "concurrency (-c)", &opt.concurrency) < 0)
				return 2;
			break;
		case 't':
			if (parse_seconds(optarg, "timeout (-t)",
				    &opt.timeout_ns) < 0)
				return 2;
			break;
		case 'd':
			if (parse_seconds(optarg, "deadline (-d)",
				    &opt.deadline_ns) < 0)
				return 2;
			break;
		case 'o': opt.outdir = optarg; break;
		case 'q': opt.quiet = 1; break;
		case 'F': opt.fail_fast = 1; break;
		case 'A': opt.cacert = optarg; break;
		case 'k': opt.insecure = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	int njobs = argc - optind;
	if (njobs < 1) {
		fprintf(stderr, "weft-fetch: no URL given\n");
		usage(stderr);
		return 2;
	}
	struct stat st;
	if (opt.outdir &&
		(stat(opt.outdir, &st) != 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "weft-fetch: -o '%s': not a directory\n",
			opt.outdir);
		return 2;
	}

	struct run run = { .opt = &opt, .njobs = njobs };
	run.jobs = calloc((size_t)njobs, sizeof *run.jobs);
	if (run.jobs == NULL) {
		fprintf(stderr, "weft-fetch: out of memory\n");
		return 1;
	}
	for (int i = 0; i < njobs; i++) {
		struct job *j = &run.jobs[i];
		j->run = &run;
		j->index = i;
		j->url = argv[optind + i];
		if (netutil_parse_url(j->url, &j->u) < 0) {
			fprintf(stderr,
				"weft-fetch: invalid URL '%s': "
				"expected http[s]://host[:port][/path]\n",
				j->url);
			free(run.jobs);
			return 2;
		}
#if !WEFT_FETCH_TLS
		if (j->u.https) {
			fprintf(stderr,
				"weft-fetch: '%s': built without TLS "
				"(libweft-tls needs OpenSSL: libssl-dev)\n",
				j->url);
			free(run.jobs);
			return 2;
		}
#endif
	}

	/* Lines appear as the URLs complete, also through a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	int rc = weft_run(fetch_main, &run);
	free(run.jobs);
	if (rc < 0 && !run.started)
		return 2; /* the runtime was not created (bad WEFT_WORKERS...):
			   * weft_run printed why */
	return rc < 0 ? 1 : run.exit_status;
}

/* }====== */
