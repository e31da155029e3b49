/* The socket core's readiness protocol (runtime/io/sock.c): waiter words
 * that any thread ends, and workers that poll the socket set themselves.
 * What streams and listeners do with it is test_net's. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/records.h"
#include "io/stream.h"
#include "support.h"
#include "weft/debug.h"
#include "weft/inspect.h"
#include "weft/net.h"

#define US ((int64_t)1000)
#define MS ((int64_t)1000 * 1000)

/* {======================================================= no hop */

#define PINGS 2000

struct ping {
	weft_stream_t *s;
	bool first; /* sends first */
};

/* PINGS one-byte round trips, each byte numbered: a lost or doubled
 * wake-up shows as a hang or a wrong byte. */
static int ping_main(void *arg)
{
	struct ping *p = arg;
	for (int i = 0; i < PINGS; i++) {
		unsigned char c = (unsigned char)i, got;
		size_t n;
		if (p->first && !CHECK_EQ(weft_stream_write(p->s, &c, 1), 0))
			return -1;
		if (!CHECK_EQ(weft_stream_read_exactly(p->s, &got, 1, &n), 0) ||
			!CHECK_EQ(got, c))
			return -1;
		if (!p->first && !CHECK_EQ(weft_stream_write(p->s, &c, 1), 0))
			return -1;
	}
	return 0;
}

static int no_hop_root(void *arg)
{
	/* A seeded runtime's I/O thread polls the sockets (its workers
	 * take turns and never block in a poll). */
	bool seeded = arg != NULL;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	weft_runtime_stats_t s0, s1;
	CHECK_EQ(weft_runtime_stats(NULL, &s0), 0);
	struct ping pa = { .s = a, .first = true }, pb = { .s = b };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, ping_main, &pa), 0);
	CHECK_EQ(weft_group_spawn(g, ping_main, &pb), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_runtime_stats(NULL, &s1), 0);
	/* Both sides parked on their sockets, often... */
	CHECK(s1.total.parks - s0.total.parks >= PINGS / 4);
	/* ...and no wait went to the I/O thread, nor did it wake anyone:
	 * the waiters' words were ended by the workers' polls. */
	CHECK_EQ(s1.io_submitted - s0.io_submitted, 0);
	if (seeded)
		CHECK(s1.wakes_io - s0.wakes_io > 0);
	else
		CHECK_EQ(s1.wakes_io - s0.wakes_io, 0);
	weft_stream_close(a);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(sock, waits_never_go_through_the_io_thread, no_hop_root, NULL)

static void test_sock__seeded_runtimes_poll_on_the_io_thread(void **state)
{
	(void)state;
	for (unsigned workers = 1; workers <= 2; workers++) {
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), 0);
		cfg.workers = workers;
		cfg.seed = 7 + workers;
		static int seeded;
		assert_int_equal(weft_test_run_cfg(&cfg, no_hop_root, &seeded),
			0);
	}
}

/* }======================================================= */

/* {======================================================= busy poll */

struct starve {
	weft_stream_t *a;
	atomic_bool got;
	int rc;
};

static int starve_reader(void *arg)
{
	struct starve *st = arg;
	char c;
	st->rc = (int)weft_stream_read(st->a, &c, 1);
	atomic_store(&st->got, true);
	return 0;
}

/* Yields until the reader got its byte (or 10 s: then it starved). */
static int starve_yielder(void *arg)
{
	struct starve *st = arg;
	int64_t until = weft_now() + 10000 * MS;
	while (!atomic_load(&st->got) && weft_now() < until)
		weft_yield();
	CHECK(atomic_load(&st->got));
	return 0;
}

/* A worker that only switches between yielding tasks still polls the
 * sockets: nobody else would (at one worker, no worker ever idles). */
static int busy_poll_root(void *arg)
{
	(void)arg;
	struct starve st = { .rc = -1 };
	weft_stream_t *b;
	if (weft_test_tcp_pair(&st.a, &b) < 0)
		return 0;
	atomic_init(&st.got, false);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, starve_reader, &st), 0);
	CHECK_EQ(weft_group_spawn(g, starve_yielder, &st), 0);
	CHECK_EQ(weft_group_spawn(g, starve_yielder, &st), 0);
	/* Let the reader park, the yielders take over the workers. */
	for (int i = 0; i < 100; i++)
		weft_yield();
	CHECK_EQ(weft_stream_write(b, "x", 1), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(st.rc, 1);
	weft_stream_close(st.a);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(sock, busy_workers_still_poll, busy_poll_root, NULL)

/* Once a socket has waited, an idle worker sleeps in the socket poll;
 * work from elsewhere (here a deadline that the I/O thread fires while
 * every worker sleeps) must interrupt that poll, not a futex nobody
 * sleeps on: a lost interrupt hangs this test. */
static int poller_woken_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
	char c;
	/* A wait: the sockets are polled from now on. */
	CHECK_EQ(weft_stream_write(b, "x", 1), 0);
	CHECK_EQ(weft_stream_read(a, &c, 1), 1);
	weft_runtime_stats_t s0, s1;
	CHECK_EQ(weft_runtime_stats(NULL, &s0), 0);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_runtime_stats(NULL, &s1), 0);
	CHECK(s1.total.sleeps > s0.total.sleeps);
	weft_stream_close(a);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(sock, a_sleeping_poller_is_woken_for_other_work,
	poller_woken_root, NULL)

/* }======================================================= */

/* {======================================================= races */

/* Each round: a reader parked in one long read_exactly, a writer feeding
 * it (edges), a deadline on the reader (cancellation) and the root's
 * close, at random offsets.  Whoever wins the reader's waiter word, the
 * read ends exactly once with its result, the group joins (no lost
 * wake-up), and the records go back to the pool and are reused by the
 * next rounds while late events may still name them. */
#define RACE_ROUNDS 150
#define RACE_READ (1 << 20)

struct race {
	weft_stream_t *a, *b;
	int64_t deadline;
	atomic_bool stop;
	atomic_long written;
	long got;
	int read_rc;
	char buf[RACE_READ];
};

static int race_reader(void *arg)
{
	struct race *r = arg;
	weft_scope_t *sc;
	if (!CHECK_EQ(weft_move_on_after(&sc, r->deadline), 0))
		return 0;
	size_t got = 0;
	r->read_rc = weft_stream_read_exactly(r->a, r->buf, RACE_READ, &got);
	r->got = (long)got;
	weft_scope_exit(sc);
	weft_scope_destroy(sc);
	return 0;
}

static int race_writer(void *arg)
{
	struct race *r = arg;
	static const char chunk[64];
	while (!atomic_load(&r->stop)) {
		int rc = weft_stream_write(r->b, chunk, sizeof chunk);
		if (rc < 0) {
			CHECK(rc == -EPIPE || rc == -ECONNRESET);
			break;
		}
		atomic_fetch_add(&r->written, (long)sizeof chunk);
		weft_yield();
	}
	return 0;
}

static int race_root(void *arg)
{
	(void)arg;
	uint64_t rng = 0x5eed0f50c4e7ULL;
	struct race *r = malloc(sizeof *r);
	if (!CHECK(r != NULL))
		return 0;
	/* A close that beats the reader's handle check is a misuse the
	 * call reports (WEFT_EMISUSE) instead of aborting. */
	bool was = weft__misuse_set_abort(false);
	int ended[4] = { 0 };
	for (int round = 0; round < RACE_ROUNDS; round++) {
		if (weft_test_tcp_pair(&r->a, &r->b) < 0)
			break;
		atomic_init(&r->stop, false);
		atomic_init(&r->written, 0);
		r->got = 0;
		r->read_rc = 1;
		r->deadline = (int64_t)(weft_test_rand(&rng) % 300) * US;
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, race_reader, r), 0);
		CHECK_EQ(weft_group_spawn(g, race_writer, r), 0);
		unsigned spins = (unsigned)(weft_test_rand(&rng) % 64);
		for (unsigned i = 0; i < spins; i++)
			weft_yield();
		if (weft_test_rand(&rng) % 2)
			weft_sleep((int64_t)(weft_test_rand(&rng) % 200) * US);
		weft_stream_close(r->a);
		atomic_store(&r->stop, true);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		weft_stream_close(r->b);
		switch (r->read_rc) {
		case WEFT_ECLOSED: ended[0]++; break;
		case -ECANCELED: ended[1]++; break;
		case WEFT_EMISUSE: ended[2]++; break;
		default:
			/* No other end: the read is longer than what the
			 * writer can send before the close. */
			CHECK_EQ(r->read_rc, WEFT_ECLOSED);
			ended[3]++;
		}
		CHECK(r->got <= atomic_load(&r->written));
	}
	weft__misuse_set_abort(was);
	/* The offsets are random enough for both main outcomes. */
	CHECK(ended[0] > 0);
	CHECK(ended[1] > 0);
	free(r);
	return 0;
}

WEFT_TEST_ROOT(sock, close_edge_cancel_and_wait_race, race_root, NULL)

/* Many tasks each waiting on its own connection while all of them are
 * closed at once from one task: every waiter ends with WEFT_ECLOSED, and
 * the edges the closes cause (hang-ups) meet records being freed. */
#define MANY 64

struct many {
	weft_stream_t *a[MANY], *b[MANY];
	int rc[MANY];
};

struct many_arg {
	struct many *m;
	int i;
};

static int many_reader(void *arg)
{
	struct many_arg *ma = arg;
	char c;
	ma->m->rc[ma->i] = (int)weft_stream_read(ma->m->a[ma->i], &c, 1);
	return 0;
}

static int many_root(void *arg)
{
	(void)arg;
	struct many *m = calloc(1, sizeof *m);
	struct many_arg args[MANY];
	if (!CHECK(m != NULL))
		return 0;
	/* A reader that had not begun its call by the close (a loaded
	 * machine) gets WEFT_EMISUSE instead of aborting the test. */
	bool was = weft__misuse_set_abort(false);
	for (int round = 0; round < 5; round++) {
		int n = 0;
		while (n < MANY && weft_test_tcp_pair(&m->a[n], &m->b[n]) == 0)
			n++;
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < n; i++) {
			m->rc[i] = 1;
			args[i] = (struct many_arg){ .m = m, .i = i };
			CHECK_EQ(weft_group_spawn(g, many_reader, &args[i]), 0);
		}
		weft_sleep(2 * MS); /* most of them park */
		/* The peers first: hang-ups (edges) race the closes. */
		for (int i = 0; i < n; i++)
			weft_stream_close(m->b[i]);
		for (int i = 0; i < n; i++)
			weft_stream_close(m->a[i]);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		for (int i = 0; i < n; i++)
			/* The hang-up came first (0: end of stream), or the
			 * close did. */
			CHECK(m->rc[i] == 0 || m->rc[i] == WEFT_ECLOSED ||
				m->rc[i] == WEFT_EMISUSE);
	}
	weft__misuse_set_abort(was);
	free(m);
	return 0;
}

WEFT_TEST_ROOT(sock, closes_meet_edges_of_many_waiters, many_root, NULL)

/* {======================================================= short reads */

/* A short read proves the socket empty (runtime/io/stream.c, "Short
 * reads"): the next read waits first instead of asking recv for
 * nothing.  One-byte round trips read into a larger buffer: before, each
 * read's first recv found nothing (EAGAIN) about once per read; now
 * only a stale kept edge costs one. */
#define SHORT_PINGS 1000

struct short_ping {
	weft_stream_t *s;
	bool first;
};

static int short_ping_main(void *arg)
{
	struct short_ping *p = arg;
	for (int i = 0; i < SHORT_PINGS; i++) {
		unsigned char c = (unsigned char)i, got[64];
		if (p->first && !CHECK_EQ(weft_stream_write(p->s, &c, 1), 0))
			return -1;
		if (!CHECK_EQ(weft_stream_read(p->s, got, sizeof got), 1) ||
			!CHECK_EQ(got[0], c))
			return -1;
		if (!p->first && !CHECK_EQ(weft_stream_write(p->s, &c, 1), 0))
			return -1;
	}
	return 0;
}

static int short_reads_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	if (weft_test_tcp_pair(&a, &b) < 0)
		return 0;
#ifdef WEFT_DEBUG
	long e0 = atomic_load(&weft__stream_recv_eagain);
#endif
	struct short_ping pa = { .s = a, .first = true }, pb = { .s = b };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, short_ping_main, &pa), 0);
	CHECK_EQ(weft_group_spawn(g, short_ping_main, &pb), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
#ifdef WEFT_DEBUG
	/* 2 * SHORT_PINGS reads; the first of each side may find nothing,
	 * and a kept edge can be stale; most reads of a ping-pong found
	 * nothing before. */
	long eagain = atomic_load(&weft__stream_recv_eagain) - e0;
	CHECK(eagain < SHORT_PINGS / 4);
#endif
	weft_stream_close(a);
	weft_stream_close(b);
	return 0;
}

WEFT_TEST_ROOT(sock, a_short_read_saves_the_next_empty_recv, short_reads_root,
	NULL)

struct sticky {
	weft_stream_t *a;
	bool end; /* the peer ends its stream (else: sends urgent data) */
	char got[8];
	size_t n;
	int rc;
};

static int sticky_reader(void *arg)
{
	struct sticky *u = arg;
	weft_scope_t *sc;
	if (!CHECK_EQ(weft_move_on_after(&sc, 5000 * MS), 0))
		return 0;
	if (u->end) {
		/* "ab", then the end, in two reads. */
		ssize_t n = weft_stream_read(u->a, u->got, sizeof u->got);
		u->n = n > 0 ? (size_t)n : 0;
		u->rc = (int)weft_stream_read(u->a, u->got + u->n,
			sizeof u->got - u->n);
	} else {
		u->rc = weft_stream_read_exactly(u->a, u->got, 4, &u->n);
	}
	weft_scope_exit(sc);
	weft_scope_destroy(sc);
	return 0;
}

/* A TCP recv also stops short where the next recv has something to say
 * though no new edge will come: at an urgent mark (the bytes behind it
 * came with the urgent byte's edge, which may be consumed already), and
 * before the peer's end (the next recv returns 0).  Such edges mark the
 * socket and its short reads are trusted no more.  The reader parks
 * first, then the peer sends, at once, either "ab", an urgent "c" (not
 * inline: recv skips it) and "de", and read_exactly(4) reads "ab" up to
 * the mark and must read "de" without another edge; or "ab" and its
 * end, and the read after "ab" must return 0.  A wait instead would
 * sleep until the deadline. */
static int sticky_root(void *arg)
{
	(void)arg;
	for (int round = 0; round < 10; round++) {
		weft_listener_t *l;
		if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0, 0), 0))
			return 0;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET,
			.sin_port = htons((uint16_t)weft_listener_port(l)),
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		/* Blocking, but done at once on loopback (the backlog). */
		CHECK(fd >= 0 &&
			connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
		int one = 1;
		CHECK_EQ(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof one),
			0);
		struct sticky u = { .rc = 1, .end = round % 2 };
		CHECK_EQ(weft_listener_accept(l, &u.a), 0);
		CHECK_EQ(weft_listener_close(l), 0);
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, sticky_reader, &u), 0);
		weft_sleep(2 * MS); /* the reader parks */
		CHECK_EQ(send(fd, "ab", 2, 0), 2);
		if (u.end) {
			CHECK_EQ(shutdown(fd, SHUT_WR), 0);
		} else {
			CHECK_EQ(send(fd, "c", 1, MSG_OOB), 1);
			CHECK_EQ(send(fd, "de", 2, 0), 2);
		}
		CHECK_EQ(weft_group_join(g, NULL), 0);
		CHECK_EQ(u.rc, 0);
		CHECK_EQ(u.n, u.end ? 2 : 4);
		CHECK(memcmp(u.got, "abde", u.n) == 0);
		close(fd);
		weft_stream_close(u.a);
	}
	return 0;
}

WEFT_TEST_ROOT(sock, urgent_data_and_the_end_follow_a_short_read, sticky_root,
	NULL)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_sock__waits_never_go_through_the_io_thread),
		cmocka_unit_test(
			test_sock__seeded_runtimes_poll_on_the_io_thread),
		WEFT_TEST(test_sock__busy_workers_still_poll),
		WEFT_TEST(test_sock__a_sleeping_poller_is_woken_for_other_work),
		WEFT_TEST(test_sock__close_edge_cancel_and_wait_race),
		WEFT_TEST(test_sock__closes_meet_edges_of_many_waiters),
		WEFT_TEST(test_sock__a_short_read_saves_the_next_empty_recv),
		WEFT_TEST(
			test_sock__urgent_data_and_the_end_follow_a_short_read),
	};
	return WEFT_RUN_TESTS(tests);
}
