/* weft-example-postgres: PostgreSQL from weft tasks through libpq's
 * asynchronous API, with no thread per query.
 *
 *   weft-example-postgres CONNINFO [TASKS] [CONNS]
 *
 * libpq does the protocol: PQconnectStart/PQconnectPoll connect,
 * PQsendQueryParams sends, PQflush pushes what is left, PQconsumeInput
 * reads what is there, PQisBusy says whether a result is complete.
 * Whenever libpq would block, the task parks on the connection's
 * descriptor with weft_fd_wait (include/weft/fd.h).
 *
 * Cancellation: a task cancelled during a query sends PostgreSQL a cancel
 * request (PQcancel, which blocks while it opens a connection of its own,
 * so it runs on an offload thread: weft_to_thread), then reads the
 * query's end, inside a shielded scope with a 5 s deadline, so the
 * connection stays usable; the query returns -ECANCELED.  If that
 * cleanup fails the connection is closed.
 *
 * The run: TASKS tasks run `SELECT pg_sleep(0.2), $1` over a pool of
 * CONNS connections (a channel), while an observer on a connection of its
 * own counts the queries PostgreSQL runs at once (pg_stat_activity): it
 * must see CONNS of them, from a runtime of 2 worker threads.  Then a
 * pg_sleep(60) under a 300 ms fail_after is cancelled and its connection
 * answers the next query; then it prints "ready" and waits in a query
 * that only the server's death ends: a clear error.  tests/integration/
 * postgres.sh starts a server of its own and stops it at "ready". */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <weft.h>

/* {======================================================= connection */

struct pgconn {
	PGconn *pg;
	weft_fd_t *fd;
	int sock; /* the descriptor fd was registered for */
};

/* Registers the connection's current descriptor (libpq may replace it
 * while connecting, having closed the old one itself: its registration
 * then goes, harmlessly late). */
static int pgconn_track(struct pgconn *c)
{
	int s = PQsocket(c->pg);
	if (s == c->sock)
		return 0;
	if (c->fd)
		weft_fd_unregister(c->fd);
	c->fd = NULL;
	c->sock = s;
	return s < 0 ? -EIO : weft_fd_register(s, &c->fd);
}

static void pgconn_close(struct pgconn *c)
{
	if (c == NULL)
		return;
	if (c->fd)
		weft_fd_unregister(c->fd); /* before PQfinish closes it */
	PQfinish(c->pg);
	free(c);
}

static int pgconn_open(const char *conninfo, struct pgconn **out)
{
	struct pgconn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	c->sock = -1;
	c->pg = PQconnectStart(conninfo);
	int rc = c->pg == NULL ? -ENOMEM : 0;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (rc == 0 && st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED ||
			PQstatus(c->pg) == CONNECTION_BAD) {
			fprintf(stderr, "postgres: connect: %s",
				PQerrorMessage(c->pg));
			rc = -ECONNREFUSED;
			break;
		}
		if ((rc = pgconn_track(c)) < 0)
			break;
		rc = weft_fd_wait(c->fd,
			st == PGRES_POLLING_READING ? WEFT_FD_READABLE
						    : WEFT_FD_WRITABLE);
		if (rc > 0) {
			rc = 0;
			st = PQconnectPoll(c->pg);
		}
	}
	if (rc == 0 && (rc = pgconn_track(c)) == 0 &&
		PQsetnonblocking(c->pg, 1) != 0)
		rc = -EIO;
	if (rc < 0) {
		pgconn_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int pgconn_error(struct pgconn *c, const char *what)
{
	fprintf(stderr, "postgres: %s: %s", what, PQerrorMessage(c->pg));
	return -EIO;
}

/* Reads until the current query's results are all in; keeps the first
 * in *first (NULL: drop them).  0, -EIO, or a wait error. */
static int pgconn_drain(struct pgconn *c, PGresult **first)
{
	for (;;) {
		while (PQisBusy(c->pg)) {
			int rc = weft_fd_wait(c->fd, WEFT_FD_READABLE);
			if (rc < 0)
				return rc;
			if (!PQconsumeInput(c->pg))
				return pgconn_error(c, "read");
		}
		PGresult *r = PQgetResult(c->pg);
		if (r == NULL)
			return 0;
		if (first && *first == NULL)
			*first = r;
		else
			PQclear(r);
	}
}

static int cancel_fn(void *arg, void **result)
{
	(void)result;
	PGcancel *k = PQgetCancel(arg);
	char msg[256];
	int ok = k && PQcancel(k, msg, sizeof msg);
	PQfreeCancel(k);
	return ok ? 0 : -EIO;
}

/* After a cancellation: asks the server to stop the query and reads its
 * end, shielded from the caller's cancellation, for at most 5 s.
 * 0 when the connection is usable again. */
static int pgconn_cancel(struct pgconn *c)
{
	weft_scope_t *s;
	int rc = weft_scope_open(&s, weft_now() + 5 * WEFT_SEC,
		WEFT_SCOPE_SHIELD);
	if (rc < 0)
		return rc;
	rc = weft_to_thread(cancel_fn, c->pg, NULL, NULL);
	if (rc == 0)
		rc = pgconn_drain(c, NULL);
	int src = weft_scope_exit(s);
	weft_scope_destroy(s);
	return rc < 0 ? rc : src;
}

/* Runs sql with one text parameter (or none); *out receives the first
 * result (PQclear it).  0, -ECANCELED (cancelled: the connection is
 * usable again if *usable), -EIO (libpq's error, printed), or a wait
 * error. */
static int pgconn_query(struct pgconn *c, const char *sql, const char *param,
	PGresult **out, bool *usable)
{
	*out = NULL;
	*usable = false;
	if (!PQsendQueryParams(c->pg, sql, param ? 1 : 0, NULL, &param, NULL,
		    NULL, 0))
		return pgconn_error(c, "send");
	int rc;
	for (;;) {
		int f = PQflush(c->pg);
		if (f < 0)
			return pgconn_error(c, "send");
		if (f == 0)
			break;
		/* libpq's rule: wait for either, and read when readable
		 * (the server may be waiting for us to read). */
		rc = weft_fd_wait(c->fd, WEFT_FD_READABLE | WEFT_FD_WRITABLE);
		if (rc < 0)
			goto cancelled;
		if ((rc & WEFT_FD_READABLE) && !PQconsumeInput(c->pg))
			return pgconn_error(c, "read");
	}
	rc = pgconn_drain(c, out);
	if (rc == 0) {
		*usable = true;
		if (PQresultStatus(*out) != PGRES_TUPLES_OK &&
			PQresultStatus(*out) != PGRES_COMMAND_OK) {
			fprintf(stderr, "postgres: %s",
				PQresultErrorMessage(*out));
			PQclear(*out);
			*out = NULL;
			return -EIO;
		}
		return 0;
	}
cancelled:
	if (rc == -ECANCELED)
		*usable = pgconn_cancel(c) == 0;
	if (*out) {
		PQclear(*out);
		*out = NULL;
	}
	return rc;
}

/* }======================================================= */

/* {======================================================= pool */

struct pgpool {
	const char *conninfo;
	weft_channel_tx_t *tx; /* free connections (NULL: a slot to open) */
	weft_channel_rx_t *rx;
};

static int pgpool_open(struct pgpool *p, const char *conninfo, int size)
{
	p->conninfo = conninfo;
	int rc = weft_channel_open(&p->tx, &p->rx, sizeof(struct pgconn *),
		(size_t)size);
	for (int i = 0; rc == 0 && i < size; i++) {
		struct pgconn *none = NULL;
		rc = weft_channel_try_send(p->tx, &none);
	}
	return rc;
}

static void pgpool_close(struct pgpool *p)
{
	struct pgconn *c;
	while (weft_channel_try_receive(p->rx, &c) == 0)
		pgconn_close(c);
	weft_channel_tx_release(p->tx);
	weft_channel_rx_release(p->rx);
}

/* One query through the pool (parks while every connection is lent). */
static int pgpool_query(struct pgpool *p, const char *sql, const char *param,
	PGresult **out)
{
	struct pgconn *c;
	int rc = weft_channel_receive(p->rx, &c);
	if (rc < 0)
		return rc;
	if (c == NULL && (rc = pgconn_open(p->conninfo, &c)) < 0) {
		struct pgconn *none = NULL;
		(void)weft_channel_try_send(p->tx, &none);
		return rc;
	}
	bool usable;
	rc = pgconn_query(c, sql, param, out, &usable);
	if (!usable) {
		pgconn_close(c);
		c = NULL;
	}
	/* Never waits: at most `size` connections are out. */
	(void)weft_channel_try_send(p->tx, &c);
	return rc;
}

/* }======================================================= */

/* {======================================================= the run */

struct run {
	struct pgpool pool;
	const char *conninfo;
	int tasks, conns;
	atomic_int next; /* the tasks' parameters */
	atomic_int done; /* tasks finished */
	int max_active;	 /* the observer's finding */
};

#define SLEEP_SQL "SELECT pg_sleep(0.2), $1::int"

static int query_task(void *arg)
{
	struct run *r = arg;
	int n = atomic_fetch_add(&r->next, 1);
	char param[16];
	snprintf(param, sizeof param, "%d", n);
	PGresult *res;
	int rc = pgpool_query(&r->pool, SLEEP_SQL, param, &res);
	if (rc == 0) {
		if (PQntuples(res) != 1 || atoi(PQgetvalue(res, 0, 1)) != n)
			rc = weft_fail(-EPROTO, "query %d: wrong answer", n);
		PQclear(res);
	}
	atomic_fetch_add(&r->done, 1);
	return rc;
}

/* Counts the sleeping queries PostgreSQL runs at once until every task
 * is done; keeps the highest count. */
static int observer_task(void *arg)
{
	struct run *r = arg;
	struct pgconn *c;
	int rc = pgconn_open(r->conninfo, &c);
	if (rc < 0)
		return rc;
	while (rc == 0 && atomic_load(&r->done) < r->tasks) {
		PGresult *res;
		bool usable;
		rc = pgconn_query(c,
			"SELECT count(*) FROM pg_stat_activity WHERE "
			"state = 'active' AND query = '" SLEEP_SQL "'",
			NULL, &res, &usable);
		if (rc < 0)
			break;
		int n = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (n > r->max_active)
			r->max_active = n;
		rc = weft_sleep(20 * WEFT_MSEC);
	}
	pgconn_close(c);
	return rc;
}

static int run_steps(struct run *r)
{
	int64_t t0 = weft_now();
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	rc = weft_group_spawn(g, observer_task, r);
	for (int i = 0; i < r->tasks && rc == 0; i++)
		rc = weft_group_spawn(g, query_task, r);
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	if (jrc < 0 || rc < 0) {
		char buf[512];
		weft_error_format(err, buf, sizeof buf);
		fprintf(stderr, "queries: %s\n", buf);
		weft_error_free(err);
		return jrc < 0 ? jrc : rc;
	}
	printf("queries: %d x pg_sleep(0.2) over %d connections in %.2f s; "
	       "at most %d ran at once\n",
		r->tasks, r->conns, (double)(weft_now() - t0) / 1e9,
		r->max_active);
	if (r->max_active != r->conns) {
		fprintf(stderr, "expected %d queries at once\n", r->conns);
		return -EPROTO;
	}

	/* A cancelled query: the server is told, the connection stays. */
	weft_scope_t *s;
	if ((rc = weft_fail_after(&s, 300 * WEFT_MSEC)) < 0)
		return rc;
	PGresult *res;
	t0 = weft_now();
	rc = pgpool_query(&r->pool, "SELECT pg_sleep(60)", NULL, &res);
	int src = weft_scope_exit(s);
	weft_scope_destroy(s);
	if (rc != -ECANCELED || src != -ETIMEDOUT) {
		fprintf(stderr, "pg_sleep(60) under fail_after: %d / %d\n", rc,
			src);
		return -EPROTO;
	}
	printf("cancel: pg_sleep(60) cancelled after %.0f ms\n",
		(double)(weft_now() - t0) / 1e6);
	/* Every pooled connection, the cancelled one included, answers. */
	for (int i = 0; i < r->conns; i++) {
		if ((rc = pgpool_query(&r->pool, "SELECT 1", NULL, &res)) < 0)
			return rc;
		PQclear(res);
	}
	printf("pool: usable after the cancellation\n");

	printf("ready\n");
	fflush(stdout);
	rc = pgpool_query(&r->pool, "SELECT pg_sleep(60)", NULL, &res);
	if (rc != -EIO) {
		fprintf(stderr, "a query across the server's death: %d\n", rc);
		return -EPROTO;
	}
	printf("server gone: the waiting query failed with -EIO\n");
	return 0;
}

static int run_root(void *arg)
{
	struct run *r = arg;
	int rc = run_steps(r);
	pgpool_close(&r->pool); /* in a task: unregistering parks */
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr,
			"usage: weft-example-postgres CONNINFO [TASKS] "
			"[CONNS]\n");
		return 2;
	}
	struct run r = { .conninfo = argv[1],
		.tasks = argc > 2 ? atoi(argv[2]) : 100,
		.conns = argc > 3 ? atoi(argv[3]) : 10 };
	if (r.tasks < 1 || r.conns < 1) {
		fprintf(stderr, "TASKS and CONNS must be >= 1\n");
		return 2;
	}
	if (pgpool_open(&r.pool, argv[1], r.conns) < 0)
		return 1;
	int rc = weft_run(run_root, &r);
	if (rc < 0) {
		fprintf(stderr, "weft-example-postgres: %s\n",
			weft_strerror(rc));
		return 1;
	}
	printf("PASS\n");
	return 0;
}
