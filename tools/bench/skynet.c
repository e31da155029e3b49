/* B2 `skynet`: 1,111,111 tasks, fan-out 10 (docs/benchmarks.md).
 *
 *     skynet(num, size): if size == 1 return num
 *         open a group; spawn skynet(num + i*(size/10), size/10) for
 *         i in 0..9, each writing into its own slot; join; return the sum
 *     root = skynet(0, 1,000,000) = 499999500000
 *
 * Only the *join* flavour: the *channel* flavour is its own program,
 * skynet-chan.c (weft-bench-skynet-chan).  The root call runs inline in
 * the benchmark's root task, so 1,111,110 tasks are spawned and 1,111,111
 * nodes are visited; ns_per_task = median time / 1,111,111 (as the peers'
 * figures that docs/benchmarks.md quotes, not multiplied by the worker
 * count). */
#include "bench.h"

static const char *const workload = "skynet";

#define SKYNET_SIZE 1000000LL
#define SKYNET_FANOUT 10
#define SKYNET_TASKS 1111111LL
#define SKYNET_SUM 499999500000LL

/* A child's argument and result; lives in the parent's frame until its
 * group is joined. */
struct skynet_slot {
	long long num, size, result;
};

static int skynet_task(void *arg);

static int skynet_compute(long long num, long long size, long long *out)
{
	if (size == 1) {
		*out = num;
		return 0;
	}
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	struct skynet_slot child[SKYNET_FANOUT];
	long long step = size / SKYNET_FANOUT;
	int spawn_rc = 0;
	for (int i = 0; i < SKYNET_FANOUT && spawn_rc == 0; i++) {
		child[i].num = num + i * step;
		child[i].size = step;
		child[i].result = 0;
		spawn_rc = weft_group_spawn(g, skynet_task, &child[i]);
	}
	/* Always join: the children write into this frame. */
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	rc = bench_joined(rc, err, spawn_rc);
	if (rc < 0)
		return rc;
	long long sum = 0;
	for (int i = 0; i < SKYNET_FANOUT; i++)
		sum += child[i].result;
	*out = sum;
	return 0;
}

static int skynet_task(void *arg)
{
	struct skynet_slot *s = arg;
	return skynet_compute(s->num, s->size, &s->result);
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

int main(void)
{
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct skynet_run run = { .result = -1 };
	bench_run_root(workload, rt, skynet_root, &run);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr,
		"skynet(join) = %lld (expected %lld); the channel "
		"flavour is weft-bench-skynet-chan\n",
		run.result, SKYNET_SUM);
	if (run.result != SKYNET_SUM)
		bench_die(workload, "wrong result");
	bench_stats_t ms = bench_stats(run.ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, SKYNET_TASKS);
	bench_json_str(&j, "flavour", "join");
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_task", ms.median * 1e6 / SKYNET_TASKS);
	bench_json_end(&j);
	return 0;
}
