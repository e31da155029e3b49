/* B2 `skynet`, channel flavour: 1,111,111 tasks, fan-out 10
 * (docs/benchmarks.md).
 *
 *     skynet(num, size, tx): if size == 1: send num on tx; return
 *         open a channel of capacity 10 and a group; spawn
 *         skynet(num + i*(size/10), size/10, own tx) for i in 0..9;
 *         receive 10 sums, add them up, send the total on tx; join
 *     root = skynet(0, 1,000,000) = 499999500000
 *
 * As Go's buffered version (`make(chan int, 10)`): one channel per parent,
 * the children send their sums and the parent receives ten of them.  The
 * ten children share the parent's send end (any number of tasks may send
 * through one end).  weft has no detached tasks, so the parent also joins
 * its group.  Two lines are printed, one per order of the two in the
 * parent:
 *   flavour "channel": receive the ten sums, then join (Go's order: the
 *     parent parks in receive, its children run as fibers, each send
 *     wakes it once);
 *   flavour "channel-join-first": join, then receive the ten sums, which
 *     are buffered by then (the join runs unstolen children inline, as in
 *     the join flavour, so this one measures the channel operations
 *     themselves on top of skynet.c).
 * The root call runs inline in the benchmark's root task, as in skynet.c
 * (the join flavour); ns_per_task = median / 1,111,111. */
#include "bench.h"

static const char *const workload = "skynet";

#define SKYNET_SIZE 1000000LL
#define SKYNET_FANOUT 10
#define SKYNET_TASKS 1111111LL
#define SKYNET_SUM 499999500000LL

/* A child's argument; lives in the parent's frame until its group is
 * joined. */
struct skynet_arg {
	long long num, size;
	weft_channel_tx_t *tx; /* the parent's channel */
};

/* The order in the parent (see the top): 0 = receive, then join (flavour
 * "channel"); 1 = join, then receive ("channel-join-first"). */
static int join_first;

static int skynet_task(void *arg);

/* Receives the n sums of the children into *sum. */
static int skynet_collect(weft_channel_rx_t *rx, int n, long long *sum)
{
	for (int i = 0; i < n; i++) {
		long long v;
		int rc = weft_channel_receive(rx, &v);
		if (rc < 0)
			return rc;
		*sum += v;
	}
	return 0;
}

static int skynet_compute(long long num, long long size, long long *out)
{
	if (size == 1) {
		*out = num;
		return 0;
	}
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	int rc = weft_channel_open(&tx, &rx, sizeof(long long), SKYNET_FANOUT);
	if (rc < 0)
		return bench_fail("weft_channel_open", rc);
	weft_group_t *g;
	rc = weft_group_open(&g);
	if (rc < 0) {
		weft_channel_tx_release(tx);
		weft_channel_rx_release(rx);
		return bench_fail("weft_group_open", rc);
	}
	struct skynet_arg child[SKYNET_FANOUT];
	long long step = size / SKYNET_FANOUT;
	int spawned = 0, spawn_rc = 0;
	for (int i = 0; i < SKYNET_FANOUT && spawn_rc == 0; i++) {
		child[i].num = num + i * step;
		child[i].size = step;
		child[i].tx = tx;
		spawn_rc = weft_group_spawn(g, skynet_task, &child[i]);
		if (spawn_rc == 0)
			spawned++;
	}
	long long sum = 0;
	int recv_rc = 0;
	if (!join_first)
		recv_rc = skynet_collect(rx, spawned, &sum);
	/* Always join: the children use this frame and the channel. */
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	if (join_first && rc == 0)
		recv_rc = skynet_collect(rx, spawned, &sum);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	if (spawn_rc < 0)
		return bench_fail("weft_group_spawn", spawn_rc);
	if (recv_rc < 0)
		return bench_fail("weft_channel_receive", recv_rc);
	if (rc < 0)
		return bench_fail("weft_group_join", rc);
	*out = sum;
	return 0;
}

static int skynet_task(void *arg)
{
	struct skynet_arg *a = arg;
	long long v;
	int rc = skynet_compute(a->num, a->size, &v);
	if (rc < 0)
		return rc;
	rc = weft_channel_send(a->tx, &v);
	return rc < 0 ? bench_fail("weft_channel_send", rc) : 0;
}

struct skynet_run {
	long long result;
	double ms[BENCH_REPS];
};

static int skynet_once(void *arg, long long *value)
{
	(void)arg;
	return skynet_compute(0, SKYNET_SIZE, value);
}

static int skynet_root(void *arg)
{
	struct skynet_run *run = arg;
	return bench_repeat(skynet_once, NULL, SKYNET_SUM, &run->result,
		run->ms);
}

static void skynet_variant(const char *flavour, int jf)
{
	join_first = jf;
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct skynet_run run = { .result = -1 };
	bench_run_root(workload, rt, skynet_root, &run);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr, "skynet(%s) = %lld (expected %lld)\n", flavour,
		run.result, SKYNET_SUM);
	if (run.result != SKYNET_SUM)
		bench_die(workload, "wrong result");
	bench_stats_t ms = bench_stats(run.ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, SKYNET_TASKS);
	bench_json_str(&j, "flavour", flavour);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_task", ms.median * 1e6 / SKYNET_TASKS);
	bench_json_end(&j);
}

int main(void)
{
	skynet_variant("channel", 0);
	skynet_variant("channel-join-first", 1);
	return 0;
}
