/* Stress: TCP streams on loopback with reads cancelled at random moments.
 *
 * Each round connects a few stream pairs.  On each, a writer sends a
 * known byte sequence (byte i is pattern(i)) in random chunks; a reader
 * takes it with a random mix of read, read_exactly and read_until, each
 * inside a cancel scope with a random short deadline, while a canceller
 * task cancels the reader's current scope at random moments too.  The
 * reader checks every byte it gets against its position, so a byte lost,
 * duplicated or reordered by a cancelled call (docs/semantics.md rule 42:
 * a cancelled read or read_until consumed nothing; read_exactly reports
 * what it consumed in *got) fails the test.  At the end the reader must
 * see exactly the whole sequence, then end of stream.
 *
 * WEFT_TEST_SEED chooses the seed (printed); WEFT_STRESS_SECONDS the
 * budget for the three worker counts together (default 6, a quarter of
 * that under sanitizers). */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "weft/net.h"

#define PAIRS 3
#define STREAM_BYTES (256 * 1024)

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 131 + (i >> 9) + 7);
}

struct pair {
	weft_stream_t *a, *b; /* b writes, a reads */
	uint64_t seed;
	size_t got; /* bytes verified by the reader */
	/* The reader's current scope, for the canceller (under lock). */
	atomic_flag lock;
	weft_scope_t *cur;
	atomic_bool reader_done;
	long cancels, timeouts;
};

static int writer_main(void *arg)
{
	struct pair *p = arg;
	uint64_t s = p->seed ^ 0x5555;
	unsigned char buf[4096];
	size_t off = 0;
	while (off < STREAM_BYTES) {
		size_t n = 1 + weft_test_rand(&s) % sizeof buf;
		if (n > STREAM_BYTES - off)
			n = STREAM_BYTES - off;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		int rc = weft_stream_write(p->b, buf, n);
		if (!CHECK_EQ(rc, 0))
			return rc;
		off += n;
		if (weft_test_rand(&s) % 8 == 0)
			weft_yield();
	}
	CHECK_EQ(weft_stream_shutdown(p->b), 0);
	return 0;
}

static bool verify(struct pair *p, const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!CHECK_EQ(buf[i], pattern(p->got + i)))
			return false;
	p->got += n;
	return true;
}

static void cur_set(struct pair *p, weft_scope_t *s)
{
	while (atomic_flag_test_and_set(&p->lock))
		;
	p->cur = s;
	atomic_flag_clear(&p->lock);
}

static int reader_main(void *arg)
{
	struct pair *p = arg;
	uint64_t s = p->seed ^ 0xaaaa;
	unsigned char buf[8192];
	bool eof = false;
	while (!eof) {
		weft_scope_t *sc;
		/* 0-300 us */
		int64_t dl = (int64_t)(weft_test_rand(&s) % 300) * 1000;
		if (!CHECK_EQ(weft_move_on_after(&sc, dl), 0))
			break;
		cur_set(p, sc);
		int op = (int)(weft_test_rand(&s) % 3);
		size_t len = 1 + weft_test_rand(&s) % sizeof buf;
		ssize_t n;
		size_t got = 0;
		if (op == 0) {
			n = weft_stream_read(p->a, buf, len);
			if (n > 0 && !verify(p, buf, (size_t)n))
				eof = true;
			if (n == 0)
				eof = true;
		} else if (op == 1) {
			n = weft_stream_read_exactly(p->a, buf, len, &got);
			/* Consumed even when cancelled or at the end. */
			if (!verify(p, buf, got))
				eof = true;
			if (n == WEFT_EEND)
				eof = true;
		} else {
			/* Up to and including the next byte equal to d. */
			unsigned char d = pattern(
				p->got + weft_test_rand(&s) % 700);
			n = weft_stream_read_until(p->a, buf,
				len > 600 ? 600 : len, &d, 1);
			if (n > 0) {
				CHECK_EQ(buf[n - 1], d);
				if (!verify(p, buf, (size_t)n))
					eof = true;
			} else if (n == -EMSGSIZE) {
				/* cap bytes consumed without d among them. */
				if (!verify(p, buf, len > 600 ? 600 : len))
					eof = true;
			}
			/* WEFT_EEND: the bytes before the end stay in the
			 * stream; a read takes them next. */
		}
		cur_set(p, NULL);
		weft_scope_exit(sc);
		weft_scope_destroy(sc);
		if (n == -ECANCELED)
			p->cancels++;
		else if (n < 0 && n != -EMSGSIZE && n != WEFT_EEND &&
			!CHECK_EQ(n, 0))
			break;
	}
	atomic_store(&p->reader_done, true);
	return 0;
}

/* Cancels the readers' current scopes at random moments. */
static int canceller_main(void *arg)
{
	struct pair *pairs = arg;
	uint64_t s = pairs[0].seed ^ 0x1234;
	for (;;) {
		bool all_done = true;
		for (int i = 0; i < PAIRS; i++) {
			struct pair *p = &pairs[i];
			if (atomic_load(&p->reader_done))
				continue;
			all_done = false;
			if (weft_test_rand(&s) % 4 != 0)
				continue;
			while (atomic_flag_test_and_set(&p->lock))
				;
			if (p->cur)
				weft_scope_cancel(p->cur, "stress");
			atomic_flag_clear(&p->lock);
		}
		if (all_done)
			return 0;
		weft_sleep((int64_t)(weft_test_rand(&s) % 200) * 1000);
	}
}

struct run {
	uint64_t seed;
	long rounds, cancels;
};

static int round_root(void *arg)
{
	struct run *r = arg;
	weft_listener_t *l;
	if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0, 0), 0))
		return 0;
	struct pair pairs[PAIRS];
	memset(pairs, 0, sizeof pairs);
	for (int i = 0; i < PAIRS; i++) {
		struct pair *p = &pairs[i];
		atomic_flag_clear(&p->lock);
		atomic_init(&p->reader_done, false);
		p->seed = r->seed + (uint64_t)i * 7919 + 1;
		CHECK_EQ(weft_tcp_connect(&p->b, "127.0.0.1",
				 weft_listener_port(l)),
			0);
		CHECK_EQ(weft_listener_accept(l, &p->a), 0);
	}
	weft_listener_close(l);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < PAIRS; i++) {
		weft_group_spawn(g, writer_main, &pairs[i]);
		weft_group_spawn(g, reader_main, &pairs[i]);
	}
	weft_group_spawn(g, canceller_main, pairs);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < PAIRS; i++) {
		CHECK_EQ(pairs[i].got, STREAM_BYTES);
		r->cancels += pairs[i].cancels;
		weft_stream_close(pairs[i].a);
		weft_stream_close(pairs[i].b);
	}
	return 0;
}

static void test_stress_net__cancelled_reads_lose_no_byte(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	double budget = weft_test_stress_seconds(6.0) / 3;
	struct run r = { .seed = weft_test_seed() * 1000003ull + workers };
	int64_t end = weft_now() + (int64_t)(budget * 1e9);
	do {
		r.seed += 17;
		assert_int_equal(weft_test_run(workers, round_root, &r), 0);
		r.rounds++;
	} while (weft_now() < end);
	print_message("%u workers: %ld rounds, %ld cancelled calls\n", workers,
		r.rounds, r.cancels);
	assert_true(r.cancels > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_stress_net__cancelled_reads_lose_no_byte),
	};
	return WEFT_RUN_TESTS(tests);
}
