/* weft-example-redis: Redis from weft tasks through hiredis, with no
 * thread per call.
 *
 *   weft-example-redis SOCKET [TASKS] [CONNS]
 *
 * hiredis's plain (non-async) API in non-blocking mode does the protocol:
 * redisAppendCommand queues a command, redisBufferWrite sends what it can,
 * redisBufferRead reads what is there and redisGetReplyFromReader parses.
 * Whenever the socket would block, the task parks on it with
 * weft_fd_wait (include/weft/fd.h): one task per command in flight, one
 * descriptor per connection, no thread.  hiredis reads at most 16 KiB
 * per call, which is why the waits must be level-triggered (they are).
 *
 * A pool of CONNS connections (a channel of them: receive to borrow, send
 * to give back) serves TASKS tasks.  A command that is cancelled or fails
 * halfway leaves its connection in an unknown state (a reply may still
 * come), so that connection is closed and its slot reopened by the next
 * borrower.
 *
 * The run: TASKS tasks each SET and GET their own key over the pool and
 * check the value; then a BLPOP on an empty list under a 200 ms
 * fail_after times out (the pool recovers); then it prints "ready" and
 * waits in a BLPOP that only the server's death ends, which must be a
 * clear error ("Server closed the connection").  Last, with the server
 * still dead, WORKERS workers that each hold a connection of their own
 * run under a supervisor (include/weft/supervise.h): each connects and
 * PINGs before it counts as started (ordered start), then INCRs a
 * counter until cancelled.  Their connects are refused and the
 * supervisor restarts them with a doubling backoff; the program prints
 * "waiting for the server", and once a server is back on the socket
 * every worker reconnects and works, and the supervisor is cancelled.
 * tests/integration/redis.sh runs it against a redis-server of its own,
 * kills that server at "ready" and starts a new one at "waiting for the
 * server".  Exit 0 when every step went as described. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <weft.h>

/* {======================================================= connection */

struct rconn {
	redisContext *ctx;
	weft_fd_t *fd;
};

static int rconn_open(const char *path, struct rconn **out)
{
	redisContext *ctx = redisConnectUnixNonBlock(path);
	if (ctx == NULL)
		return -ENOMEM;
	if (ctx->err) {
		fprintf(stderr, "redis: connect %s: %s\n", path, ctx->errstr);
		redisFree(ctx);
		return -ECONNREFUSED;
	}
	struct rconn *c = malloc(sizeof *c);
	int rc = c ? weft_fd_register(ctx->fd, &c->fd) : -ENOMEM;
	if (rc < 0) {
		free(c);
		redisFree(ctx);
		return rc;
	}
	c->ctx = ctx;
	*out = c;
	return 0;
}

static void rconn_close(struct rconn *c)
{
	if (c == NULL)
		return;
	/* Before redisFree closes the descriptor (fd.h). */
	weft_fd_unregister(c->fd);
	redisFree(c->ctx);
	free(c);
}

/* Runs one command on c; *out receives the reply (freeReplyObject it).
 * 0, -ECANCELED (cancelled: c is in an unknown state, close it), -EIO
 * (hiredis's error, printed: close c), or a wait error. */
static int rconn_command(struct rconn *c, redisReply **out, const char *fmt,
	...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = redisvAppendCommand(c->ctx, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return -ENOMEM;
	int done = 0;
	while (!done) {
		if (redisBufferWrite(c->ctx, &done) != REDIS_OK)
			goto io_error;
		if (!done && (rc = weft_fd_wait(c->fd, WEFT_FD_WRITABLE)) < 0)
			return rc;
	}
	void *reply = NULL;
	for (;;) {
		if (redisGetReplyFromReader(c->ctx, &reply) != REDIS_OK)
			goto io_error;
		if (reply != NULL)
			break;
		rc = weft_fd_wait(c->fd, WEFT_FD_READABLE);
		if (rc < 0)
			return rc;
		if (redisBufferRead(c->ctx) != REDIS_OK)
			goto io_error;
	}
	*out = reply;
	return 0;
io_error:
	fprintf(stderr, "redis: %s\n", c->ctx->errstr);
	return -EIO;
}

/* }======================================================= */

/* {======================================================= pool */

struct rpool {
	const char *path;
	weft_channel_tx_t *tx; /* free connections (NULL: a slot to open) */
	weft_channel_rx_t *rx;
};

static int rpool_open(struct rpool *p, const char *path, int size)
{
	p->path = path;
	int rc = weft_channel_open(&p->tx, &p->rx, sizeof(struct rconn *),
		(size_t)size);
	for (int i = 0; rc == 0 && i < size; i++) {
		struct rconn *none = NULL;
		rc = weft_channel_try_send(p->tx, &none);
	}
	return rc;
}

static void rpool_close(struct rpool *p)
{
	struct rconn *c;
	while (weft_channel_try_receive(p->rx, &c) == 0)
		rconn_close(c);
	weft_channel_tx_release(p->tx);
	weft_channel_rx_release(p->rx);
}

/* Borrows a connection (parks while all are lent: the pool bounds the
 * load on the server). */
static int rpool_get(struct rpool *p, struct rconn **out)
{
	struct rconn *c;
	int rc = weft_channel_receive(p->rx, &c);
	if (rc < 0)
		return rc;
	if (c == NULL && (rc = rconn_open(p->path, &c)) < 0) {
		struct rconn *none = NULL;
		(void)weft_channel_try_send(p->tx, &none);
		return rc;
	}
	*out = c;
	return 0;
}

/* Gives c back; after a failed or cancelled command (ok false) c is
 * closed and its slot reopened by the next borrower. */
static void rpool_put(struct rpool *p, struct rconn *c, bool ok)
{
	if (!ok) {
		rconn_close(c);
		c = NULL;
	}
	/* Never waits: at most `size` connections are out. */
	(void)weft_channel_try_send(p->tx, &c);
}

/* One command through the pool. */
static int rpool_command(struct rpool *p, redisReply **out, const char *fmt,
	const char *a, const char *b)
{
	struct rconn *c;
	int rc = rpool_get(p, &c);
	if (rc < 0)
		return rc;
	rc = b ? rconn_command(c, out, fmt, a, b)
	       : rconn_command(c, out, fmt, a);
	rpool_put(p, c, rc == 0);
	return rc;
}

/* }======================================================= */

/* {======================================================= the run */

#define WORKERS 3
#define WORKER_INCRS 5 /* INCRs each worker must do once back */

struct run {
	struct rpool pool;
	int tasks;
	atomic_int next; /* the tasks' key numbers */
	/* The supervised step */
	atomic_int refused;   /* connects refused while the server was down */
	atomic_int incrs;     /* INCRs done by the workers */
	weft_event_t *enough; /* set at WORKERS * WORKER_INCRS INCRs */
	int sup_rc;
	weft_error_t *sup_err;
};

static int set_get_task(void *arg)
{
	struct run *r = arg;
	int id = atomic_fetch_add(&r->next, 1);
	char key[32], val[32];
	snprintf(key, sizeof key, "weft:%d", id);
	snprintf(val, sizeof val, "value-%d", id);
	redisReply *rep;
	int rc = rpool_command(&r->pool, &rep, "SET %s %s", key, val);
	if (rc < 0)
		return rc;
	freeReplyObject(rep);
	rc = rpool_command(&r->pool, &rep, "GET %s", key, NULL);
	if (rc < 0)
		return rc;
	bool same = rep->type == REDIS_REPLY_STRING &&
		strcmp(rep->str, val) == 0;
	freeReplyObject(rep);
	if (!same)
		return weft_fail(-EPROTO, "GET %s: not the value set", key);
	return 0;
}

/* {======================================================= supervised */

/* One worker: a connection of its own, ready once the server answered
 * a PING, then INCRs until cancelled.  Any error ends it (failed), and
 * the supervisor starts it again: a fresh connection. */
static int worker(void *arg)
{
	struct run *r = arg;
	struct rconn *c;
	int rc = rconn_open(r->pool.path, &c);
	if (rc < 0) {
		atomic_fetch_add(&r->refused, 1);
		return weft_fail(rc, "connect %s", r->pool.path);
	}
	redisReply *rep;
	if ((rc = rconn_command(c, &rep, "PING")) == 0) {
		freeReplyObject(rep);
		weft_task_started(NULL);
	}
	while (rc == 0 &&
		(rc = rconn_command(c, &rep, "INCR %s", "weft:supervised")) ==
			0) {
		freeReplyObject(rep);
		if (atomic_fetch_add(&r->incrs, 1) + 1 ==
			WORKERS * WORKER_INCRS)
			weft_event_set(r->enough);
		rc = weft_sleep(5 * WEFT_MSEC);
	}
	/* In a task, cancelled or not: unregistering parks. */
	rconn_close(c);
	return rc == -ECANCELED ? rc : weft_fail(rc, "connection lost");
}

static void worker_failed(const char *child, const weft_error_t *failure,
	int restarting, void *arg)
{
	(void)arg;
	fprintf(stderr, "supervise: %s: %s: %s%s\n", child,
		weft_err_name(weft_error_code_at(failure, 0)),
		weft_error_message_at(failure, 0),
		restarting ? " (restarting)" : "");
}

static int supervisor(void *arg)
{
	struct run *r = arg;
	weft_child_spec_t spec[WORKERS];
	for (int i = 0; i < WORKERS; i++)
		spec[i] = (weft_child_spec_t){ .name = "worker",
			.fn = worker,
			.arg = r,
			.needs_start = 1 };
	weft_supervisor_opts_t o;
	weft_supervisor_opts_init(&o);
	/* Retry a dead server for a long while, backing off up to 200 ms
	 * between attempts; a storm faster than that gives up. */
	o.max_restarts = 1000;
	o.period = 60 * WEFT_SEC;
	o.backoff_initial = 10 * WEFT_MSEC;
	o.backoff_max = 200 * WEFT_MSEC;
	o.on_failure = worker_failed;
	r->sup_rc = weft_supervise(spec, WORKERS, &o, &r->sup_err);
	return 0;
}

/* The server is dead: the supervised workers retry until a new one is
 * up, then each must work again. */
static int run_supervised(struct run *r)
{
	int rc = weft_event_create(&r->enough);
	if (rc < 0)
		return rc;
	weft_group_t *g;
	if ((rc = weft_group_open(&g)) < 0) {
		weft_event_destroy(r->enough);
		return rc;
	}
	rc = weft_group_spawn(g, supervisor, r);
	/* The first refusals, then the test's script starts a server. */
	while (rc == 0 && atomic_load(&r->refused) < 2)
		rc = weft_sleep(5 * WEFT_MSEC);
	if (rc == 0) {
		printf("waiting for the server\n");
		fflush(stdout);
		rc = weft_event_wait(r->enough);
	}
	weft_group_cancel(g, "enough INCRs");
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	weft_error_free(err);
	weft_event_destroy(r->enough);
	if (rc < 0 || jrc < 0)
		return rc < 0 ? rc : jrc;
	if (r->sup_rc != -ECANCELED) {
		char buf[512] = "";
		weft_error_format(r->sup_err, buf, sizeof buf);
		fprintf(stderr, "supervisor: %s\n%s", weft_err_name(r->sup_rc),
			buf);
		weft_error_free(r->sup_err);
		return -EPROTO;
	}
	printf("supervise: %d workers back after %d refused connects\n",
		WORKERS, atomic_load(&r->refused));
	return 0;
}

/* }======================================================= */

static int run_steps(struct run *r)
{
	int64_t t0 = weft_now();
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	for (int i = 0; i < r->tasks && rc == 0; i++)
		rc = weft_group_spawn(g, set_get_task, r);
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	if (jrc < 0 || rc < 0) {
		char buf[512];
		weft_error_format(err, buf, sizeof buf);
		fprintf(stderr, "set/get: %s\n", buf);
		weft_error_free(err);
		return jrc < 0 ? jrc : rc;
	}
	printf("set/get: %d tasks done in %.1f ms\n", r->tasks,
		(double)(weft_now() - t0) / 1e6);

	/* A timeout: the BLPOP never answers, fail_after ends it; the
	 * connection it used is closed and its slot reopened. */
	weft_scope_t *s;
	if ((rc = weft_fail_after(&s, 200 * WEFT_MSEC)) < 0)
		return rc;
	redisReply *rep;
	rc = rpool_command(&r->pool, &rep, "BLPOP %s %s", "weft:empty", "0");
	int src = weft_scope_exit(s);
	weft_scope_destroy(s);
	if (rc != -ECANCELED || src != -ETIMEDOUT) {
		fprintf(stderr, "BLPOP under fail_after: %d / %d\n", rc, src);
		return -EPROTO;
	}
	printf("timeout: BLPOP cut at 200 ms\n");
	if ((rc = rpool_command(&r->pool, &rep, "PING", NULL, NULL)) < 0)
		return rc;
	freeReplyObject(rep);
	printf("pool: usable after the timeout\n");

	/* The server dies while we wait: a clear error, no hang. */
	printf("ready\n");
	fflush(stdout);
	rc = rpool_command(&r->pool, &rep, "BLPOP %s %s", "weft:never", "0");
	if (rc != -EIO) {
		fprintf(stderr, "BLPOP across the server's death: %d\n", rc);
		return -EPROTO;
	}
	printf("server gone: the waiting command failed with -EIO\n");
	return run_supervised(r);
}

static int run_root(void *arg)
{
	struct run *r = arg;
	int rc = run_steps(r);
	/* In a task: unregistering a descriptor parks for the I/O
	 * thread. */
	rpool_close(&r->pool);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr,
			"usage: weft-example-redis SOCKET [TASKS] "
			"[CONNS]\n");
		return 2;
	}
	struct run r = { .tasks = argc > 2 ? atoi(argv[2]) : 100 };
	int conns = argc > 3 ? atoi(argv[3]) : 10;
	if (r.tasks < 1 || conns < 1) {
		fprintf(stderr, "TASKS and CONNS must be >= 1\n");
		return 2;
	}
	if (rpool_open(&r.pool, argv[1], conns) < 0)
		return 1;
	int rc = weft_run(run_root, &r);
	if (rc < 0) {
		fprintf(stderr, "weft-example-redis: %s\n", weft_strerror(rc));
		return 1;
	}
	printf("PASS\n");
	return 0;
}
