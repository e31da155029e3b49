/* weft-echo: a TCP echo server, one task per connection (benchmark B9).
 *
 *   weft-echo [-p PORT] [-b ADDR] [-g GRACE_S]
 *
 * Listens on ADDR:PORT (default 127.0.0.1, port 0 = any free port),
 * prints "port=<N>" as its first line once listening, and echoes every
 * byte it reads on each connection.  SIGINT/SIGTERM: stop accepting, let
 * connections finish for GRACE_S seconds (default 5), then cancel them;
 * a second signal cancels at once.  Workers: WEFT_WORKERS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>
#include <weft/signal.h>

#include "netutil.h"

struct echo_opts {
	const char *addr;
	long port;
	long grace_s;
};

/* One connection: echo until the peer closes (or shutdown cancels us). */
static int echo_conn(weft_stream_t *s, void *arg)
{
	(void)arg;
	char buf[16384];
	for (;;) {
		ssize_t n = weft_stream_read(s, buf, sizeof buf);
		if (n <= 0)
			return 0; /* EOF, reset, or cancelled: all normal */
		if (weft_stream_write(s, buf, (size_t)n) < 0)
			return 0;
	}
}

static int echo_main(void *arg)
{
	struct echo_opts *o = arg;
	weft_listener_t *l;
	int rc = weft_tcp_listen(&l, o->addr, (int)o->port, 0);
	if (rc < 0) {
		fprintf(stderr, "weft-echo: listen on %s:%ld: %s\n", o->addr,
			o->port, weft_strerror(rc));
		return rc;
	}
	printf("port=%d\n", weft_listener_port(l));
	fflush(stdout);
	weft_group_t *g;
	rc = weft_group_open(&g);
	if (rc < 0) {
		weft_listener_close(l);
		return rc;
	}
	weft_shutdown_t *sd = NULL;
	rc = weft_shutdown_open(&sd, g, o->grace_s * WEFT_SEC);
	if (rc == 0)
		rc = weft_serve(l, g, echo_conn, NULL,
			weft_shutdown_stop_event(sd));
	weft_listener_close(l);
	if (rc < 0 && rc != -ECANCELED)
		fprintf(stderr, "weft-echo: serve: %s\n", weft_strerror(rc));
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	if (err != NULL) {
		char text[1024];
		weft_error_format(err, text, sizeof text);
		fprintf(stderr, "weft-echo: %s\n", text);
		weft_error_free(err);
	}
	if (sd != NULL)
		weft_shutdown_close(sd);
	return rc < 0 && rc != -ECANCELED ? rc : jrc;
}

static void usage(void)
{
	fprintf(stderr, "usage: weft-echo [-p PORT] [-b ADDR] [-g GRACE_S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct echo_opts o = { .addr = "127.0.0.1", .port = 0, .grace_s = 5 };
	int c;
	while ((c = getopt(argc, argv, "p:b:g:h")) != -1) {
		switch (c) {
		case 'p':
			if (netutil_parse_long(optarg, 0, 65535, "port",
				    &o.port) < 0)
				return 2;
			break;
		case 'b': o.addr = optarg; break;
		case 'g':
			if (netutil_parse_long(optarg, 0, 3600, "grace seconds",
				    &o.grace_s) < 0)
				return 2;
			break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	return weft_run(echo_main, &o) == 0 ? 0 : 1;
}
