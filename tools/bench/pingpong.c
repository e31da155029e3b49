/* B5 `pingpong`: round trips through two channels (docs/benchmarks.md).
 *
 *     channels c1 (A -> B) and c2 (B -> A), capacity 1
 *     A: for i in 0..N-1: send i on c1; r = receive c2; check r == i + 1
 *     B: loop: v = receive c1; send v + 1 on c2
 *     N = 1,000,000 round trips
 *
 * Per repetition the root opens both channels and a group, spawns A and B
 * and joins; A releases its end of c1 when done, so B's next receive gets
 * WEFT_EEND and B returns.  The checksum is the sum of B's replies as A
 * received them (sum of i + 1 = N (N + 1) / 2) plus a count of wrong
 * replies, which must be 0.  ns_per_roundtrip = median time / N (the two
 * spawns and the join are inside the timed region; they cost well under a
 * microsecond of the ~0.1 s). */
#include "bench.h"

static const char *const workload = "pingpong";

#ifndef PINGPONG_N
#define PINGPONG_N 1000000L
#endif
#define PINGPONG_SUM ((long long)PINGPONG_N * (PINGPONG_N + 1) / 2)

struct pingpong {
	weft_channel_tx_t *tx1; /* A's end of c1 */
	weft_channel_rx_t *rx1; /* B's end of c1 */
	weft_channel_tx_t *tx2; /* B's end of c2 */
	weft_channel_rx_t *rx2; /* A's end of c2 */
	long long sum;		/* written by A */
	long wrong;		/* written by A */
};

static int pingpong_a(void *arg)
{
	struct pingpong *p = arg;
	int rc = 0;
	for (long i = 0; i < PINGPONG_N; i++) {
		long v = i, r;
		rc = weft_channel_send(p->tx1, &v);
		if (rc < 0)
			break;
		rc = weft_channel_receive(p->rx2, &r);
		if (rc < 0)
			break;
		p->sum += r;
		if (r != i + 1)
			p->wrong++;
	}
	/* B sees the end of c1 and returns. */
	weft_channel_tx_release(p->tx1);
	weft_channel_rx_release(p->rx2);
	return rc < 0 ? bench_fail("A: send/receive", rc) : 0;
}

static int pingpong_b(void *arg)
{
	struct pingpong *p = arg;
	int rc;
	for (;;) {
		long v;
		rc = weft_channel_receive(p->rx1, &v);
		if (rc < 0)
			break;
		v++;
		rc = weft_channel_send(p->tx2, &v);
		if (rc < 0)
			break;
	}
	weft_channel_rx_release(p->rx1);
	weft_channel_tx_release(p->tx2);
	return rc == WEFT_EEND ? 0 : bench_fail("B: send/receive", rc);
}

struct pingpong_run {
	long long sum; /* the first wrong sum, or the last one */
	long wrong;
	double ms[BENCH_REPS];
};

static int pingpong_once(struct pingpong *p)
{
	int rc = weft_channel_open(&p->tx1, &p->rx1, sizeof(long), 1);
	if (rc < 0)
		return bench_fail("weft_channel_open", rc);
	rc = weft_channel_open(&p->tx2, &p->rx2, sizeof(long), 1);
	if (rc < 0) {
		weft_channel_tx_release(p->tx1);
		weft_channel_rx_release(p->rx1);
		return bench_fail("weft_channel_open", rc);
	}
	weft_group_t *g;
	rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	/* Both spawns succeed or the benchmark stops (the ends would leak,
	 * but the process exits). */
	int spawn_rc = weft_group_spawn(g, pingpong_b, p);
	if (spawn_rc == 0)
		spawn_rc = weft_group_spawn(g, pingpong_a, p);
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	return bench_joined(rc, err, spawn_rc);
}

static int pingpong_root(void *arg)
{
	struct pingpong_run *run = arg;
	for (int r = 0; r < BENCH_WARMUP + BENCH_REPS; r++) {
		struct pingpong p = { .sum = 0 };
		int64_t t0 = bench_now();
		int rc = pingpong_once(&p);
		int64_t t1 = bench_now();
		if (rc < 0)
			return rc;
		if (r == 0 || (run->sum == PINGPONG_SUM && run->wrong == 0)) {
			run->sum = p.sum;
			run->wrong = p.wrong;
		}
		if (r >= BENCH_WARMUP)
			run->ms[r - BENCH_WARMUP] = bench_ms(t1 - t0);
	}
	return 0;
}

int main(void)
{
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct pingpong_run run = { .sum = -1 };
	bench_run_root(workload, rt, pingpong_root, &run);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr,
		"pingpong: sum %lld (expected %lld), %ld wrong "
		"replies\n",
		run.sum, PINGPONG_SUM, run.wrong);
	if (run.sum != PINGPONG_SUM || run.wrong != 0)
		bench_die(workload, "wrong checksum");
	bench_stats_t ms = bench_stats(run.ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, PINGPONG_N);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_roundtrip", ms.median * 1e6 / PINGPONG_N);
	bench_json_end(&j);
	return 0;
}
