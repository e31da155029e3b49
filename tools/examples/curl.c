/* weft-example-curl: many HTTP transfers through libcurl's multi-socket
 * API, driven by one weft task's descriptor waits.
 *
 *   weft-example-curl BASE_URL [TRANSFERS]
 *
 * libcurl's multi-socket API tells its user which sockets to watch for
 * what (CURLMOPT_SOCKETFUNCTION) and when to call back without any
 * socket (CURLMOPT_TIMERFUNCTION), and is told, with
 * curl_multi_socket_action, which socket became ready.  Here one driver
 * task owns the multi handle: it registers the sockets curl names
 * (weft_fd_register; unregistered when curl says CURL_POLL_REMOVE, which
 * comes before curl closes the socket), waits on all of them and on a
 * wake-up pipe at once with weft_fd_wait_any inside a scope whose
 * deadline is curl's timer, and feeds curl what happened.
 *
 * Any task fetches a URL with http_get: it hands the transfer to the
 * driver (a channel, plus a byte in the pipe to wake it) and waits on the
 * transfer's event.  A task cancelled meanwhile asks the driver to remove
 * the transfer and waits, shielded, until it has: libcurl's handles are
 * the driver's alone, and the transfer's memory is the caller's.
 *
 * The run: TRANSFERS tasks each GET BASE_URL/small.txt or /big.bin (1 MiB)
 * at once and check the sizes; a GET of BASE_URL/slow/big.bin (served at
 * 50 KiB/s) under a 300 ms fail_after is cancelled and removed while the
 * others run; a GET of a port nobody listens on fails with libcurl's
 * message.  tests/integration/curl_nginx.sh serves them with nginx. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <weft.h>

/* {======================================================= driver */

#define MAX_SOCKS (WEFT_FD_WAIT_MAX - 1) /* one slot for the pipe */

struct xfer {
	CURL *easy;
	weft_event_t *done;
	CURLcode result;
	long status;
	size_t bytes;
	bool remove;   /* a removal request, not an addition */
	bool finished; /* driver-owned: done was set */
};

struct sock {
	curl_socket_t s;
	weft_fd_t *f;
	int what; /* CURL_POLL_IN/OUT/INOUT: the weft_fd_* bits */
};

struct driver {
	CURLM *multi;
	int pipe[2]; /* wakes the driver: one byte per request */
	weft_fd_t *pipe_fd;
	weft_channel_tx_t *tx; /* struct xfer *: additions, removals */
	weft_channel_rx_t *rx;
	int64_t deadline; /* curl's timer, WEFT_FOREVER when none */
	struct sock socks[MAX_SOCKS];
	int nsocks;
	int running; /* transfers added and not finished */
	bool stop;
	int error; /* a failure inside a callback */
};

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp,
	void *socketp)
{
	(void)e;
	(void)socketp;
	struct driver *d = userp;
	int i = 0;
	while (i < d->nsocks && d->socks[i].s != s)
		i++;
	if (what == CURL_POLL_REMOVE) {
		if (i < d->nsocks) {
			/* curl closes s after this: unregister first. */
			weft_fd_unregister(d->socks[i].f);
			d->socks[i] = d->socks[--d->nsocks];
		}
		return 0;
	}
	if (i == d->nsocks) {
		if (d->nsocks == MAX_SOCKS) {
			d->error = -EMFILE;
			return -1;
		}
		int rc = weft_fd_register(s, &d->socks[i].f);
		if (rc < 0) {
			d->error = rc;
			return -1;
		}
		d->socks[i].s = s;
		d->nsocks++;
	}
	d->socks[i].what = what; /* CURL_POLL_IN 1, OUT 2, INOUT 3 */
	return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	(void)m;
	struct driver *d = userp;
	d->deadline = timeout_ms < 0 ? WEFT_FOREVER
				     : weft_now() + timeout_ms * WEFT_MSEC;
	return 0;
}

/* Hands finished transfers back to their tasks. */
static void driver_reap(struct driver *d)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct xfer *x;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &x);
		x->result = msg->data.result;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		curl_multi_remove_handle(d->multi, x->easy);
		d->running--;
		x->finished = true;
		weft_event_set(x->done);
	}
}

/* Takes the queued additions and removals. */
static void driver_requests(struct driver *d)
{
	struct xfer *x;
	while (weft_channel_try_receive(d->rx, &x) == 0) {
		if (!x->remove) {
			curl_multi_add_handle(d->multi, x->easy);
			d->running++;
		} else if (!x->finished) {
			curl_multi_remove_handle(d->multi, x->easy);
			d->running--;
			x->result = CURLE_ABORTED_BY_CALLBACK;
			x->finished = true;
			weft_event_set(x->done);
		}
	}
}

static int driver_task(void *arg)
{
	struct driver *d = arg;
	int rc = 0;
	while (rc == 0 && d->error == 0) {
		driver_requests(d);
		if (d->stop && d->running == 0)
			break;
		/* Snapshot: curl's callbacks change socks[] below. */
		weft_fd_t *fds[WEFT_FD_WAIT_MAX];
		int ev[WEFT_FD_WAIT_MAX], rev[WEFT_FD_WAIT_MAX];
		curl_socket_t ss[WEFT_FD_WAIT_MAX];
		int n = 0;
		fds[n] = d->pipe_fd;
		ev[n++] = WEFT_FD_READABLE;
		for (int i = 0; i < d->nsocks; i++) {
			if (d->socks[i].what == CURL_POLL_NONE)
				continue;
			ss[n] = d->socks[i].s;
			fds[n] = d->socks[i].f;
			ev[n++] = d->socks[i].what;
		}
		weft_scope_t *s;
		if ((rc = weft_move_on_at(&s, d->deadline)) < 0)
			break;
		int got = weft_fd_wait_any(fds, ev, rev, (size_t)n);
		bool timed_out = weft_scope_exit(s) == 0 &&
			weft_scope_cancelled_caught(s);
		weft_scope_destroy(s);
		int still;
		if (got > 0) {
			if (rev[0]) {
				char buf[64];
				while (read(d->pipe[0], buf, sizeof buf) > 0)
					;
			}
			for (int i = 1; i < n; i++)
				if (rev[i])
					curl_multi_socket_action(d->multi,
						ss[i],
						(rev[i] & WEFT_FD_READABLE
								? CURL_CSELECT_IN
								: 0) |
							(rev[i] & WEFT_FD_WRITABLE
									? CURL_CSELECT_OUT
									: 0),
						&still);
		} else if (timed_out) {
			d->deadline = WEFT_FOREVER; /* curl sets a new one */
			curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT,
				0, &still);
		} else {
			rc = got; /* cancelled from outside, or an error */
		}
		driver_reap(d);
	}
	return rc < 0 ? rc : d->error;
}

static void driver_poke(struct driver *d)
{
	/* A full pipe already holds a wake-up: EAGAIN is fine. */
	(void)!write(d->pipe[1], "x", 1);
}

/* }======================================================= */

/* {======================================================= http_get */

static size_t count_body(char *p, size_t size, size_t n, void *userp)
{
	(void)p;
	((struct xfer *)userp)->bytes += size * n;
	return size * n;
}

/* GETs url through the driver: 0 with x's status and byte count, -EIO
 * (libcurl's error, printed), or -ECANCELED (the transfer was removed). */
static int http_get(struct driver *d, const char *url, struct xfer *x)
{
	memset(x, 0, sizeof *x);
	x->easy = curl_easy_init();
	if (x->easy == NULL)
		return -ENOMEM;
	int rc = weft_event_create(&x->done);
	if (rc < 0) {
		curl_easy_cleanup(x->easy);
		return rc;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, count_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	struct xfer *p = x;
	rc = weft_channel_try_send(d->tx, &p);
	if (rc == 0) {
		driver_poke(d);
		rc = weft_event_wait(x->done);
		if (rc == -ECANCELED) {
			/* Ask the driver to remove it, and wait until it has:
			 * shielded, it is quick. */
			x->remove = true;
			weft_scope_t *s;
			if (weft_scope_open(&s, WEFT_FOREVER,
				    WEFT_SCOPE_SHIELD) == 0) {
				p = x;
				if (weft_channel_try_send(d->tx, &p) == 0)
					driver_poke(d);
				(void)weft_event_wait(x->done);
				(void)weft_scope_exit(s);
				weft_scope_destroy(s);
			}
		}
	}
	if (rc == 0 && x->result != CURLE_OK) {
		fprintf(stderr, "curl: %s: %s\n", url,
			curl_easy_strerror(x->result));
		rc = -EIO;
	}
	weft_event_destroy(x->done);
	curl_easy_cleanup(x->easy);
	return rc;
}

/* }======================================================= */

/* {======================================================= the run */

struct run {
	struct driver d;
	const char *base;
	int transfers;
};

struct get_arg {
	struct run *r;
	int i;
};

static int get_task(void *arg)
{
	struct get_arg *a = arg;
	bool big = a->i % 2;
	char url[512];
	snprintf(url, sizeof url, "%s/%s", a->r->base,
		big ? "big.bin" : "small.txt");
	struct xfer x;
	int rc = http_get(&a->r->d, url, &x);
	if (rc < 0)
		return rc;
	size_t want = big ? 1048576 : 17; /* "hello from nginx\n" */
	if (x.status != 200 || x.bytes != want)
		return weft_fail(-EPROTO, "%s: status %ld, %zu bytes", url,
			x.status, x.bytes);
	return 0;
}

static int run_steps(struct run *r)
{
	int64_t t0 = weft_now();
	weft_group_t *gets;
	int rc = weft_group_open(&gets);
	if (rc < 0)
		return rc;
	struct get_arg *args = calloc((size_t)r->transfers, sizeof *args);
	for (int i = 0; args && i < r->transfers && rc == 0; i++) {
		args[i] = (struct get_arg){ r, i };
		rc = weft_group_spawn(gets, get_task, &args[i]);
	}
	/* While they run: a slow transfer cut by a deadline. */
	weft_scope_t *s;
	int crc = weft_fail_after(&s, 300 * WEFT_MSEC);
	if (crc == 0) {
		char url[512];
		snprintf(url, sizeof url, "%s/slow/big.bin", r->base);
		struct xfer x;
		crc = http_get(&r->d, url, &x);
		int src = weft_scope_exit(s);
		weft_scope_destroy(s);
		if (crc == -ECANCELED && src == -ETIMEDOUT) {
			printf("cancel: the slow transfer was removed at 300 "
			       "ms "
			       "(%zu bytes in)\n",
				x.bytes);
			crc = 0;
		} else {
			fprintf(stderr, "slow transfer: %d / %d\n", crc, src);
			crc = -EPROTO;
		}
	}
	weft_error_t *err = NULL;
	int jrc = weft_group_join(gets, &err);
	free(args);
	if (jrc < 0 || rc < 0) {
		char buf[512];
		weft_error_format(err, buf, sizeof buf);
		fprintf(stderr, "transfers: %s\n", buf);
		weft_error_free(err);
		return jrc < 0 ? jrc : rc;
	}
	if (crc < 0)
		return crc;
	printf("transfers: %d GETs at once in %.0f ms, sizes right\n",
		r->transfers, (double)(weft_now() - t0) / 1e6);

	/* A refused connection: libcurl's message. */
	struct xfer x;
	rc = http_get(&r->d, "http://127.0.0.1:1/", &x);
	if (rc != -EIO) {
		fprintf(stderr, "GET of a closed port: %d\n", rc);
		return -EPROTO;
	}
	printf("refused: a clear error\n");
	return 0;
}

static int run_root(void *arg)
{
	struct run *r = arg;
	struct driver *d = &r->d;
	int rc = weft_fd_register(d->pipe[0], &d->pipe_fd);
	if (rc < 0)
		return rc;
	weft_group_t *g;
	if ((rc = weft_group_open(&g)) < 0)
		return rc;
	rc = weft_group_spawn(g, driver_task, d);
	if (rc == 0)
		rc = run_steps(r);
	d->stop = true;
	driver_poke(d);
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	if (jrc < 0) {
		char buf[512];
		weft_error_format(err, buf, sizeof buf);
		fprintf(stderr, "driver: %s\n", buf);
	}
	weft_error_free(err);
	/* Here, in a task: closing the cached connections calls sock_cb
	 * with CURL_POLL_REMOVE, which unregisters (and parks). */
	curl_multi_cleanup(d->multi);
	d->multi = NULL;
	for (int i = 0; i < d->nsocks; i++)
		weft_fd_unregister(d->socks[i].f);
	weft_fd_unregister(d->pipe_fd);
	return rc < 0 ? rc : jrc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr,
			"usage: weft-example-curl BASE_URL "
			"[TRANSFERS]\n");
		return 2;
	}
	struct run r = { .base = argv[1],
		.transfers = argc > 2 ? atoi(argv[2]) : 50 };
	if (r.transfers < 1) {
		fprintf(stderr, "TRANSFERS must be >= 1\n");
		return 2;
	}
	struct driver *d = &r.d;
	d->deadline = WEFT_FOREVER;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
		pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0 ||
		weft_channel_open(&d->tx, &d->rx, sizeof(struct xfer *),
			WEFT_CHANNEL_UNBOUNDED) < 0 ||
		(d->multi = curl_multi_init()) == NULL)
		return 1;
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
	int rc = weft_run(run_root, &r);
	weft_channel_tx_release(d->tx);
	weft_channel_rx_release(d->rx);
	close(d->pipe[0]);
	close(d->pipe[1]);
	curl_global_cleanup();
	if (rc < 0) {
		fprintf(stderr, "weft-example-curl: %s\n", weft_strerror(rc));
		return 1;
	}
	printf("PASS\n");
	return 0;
}
