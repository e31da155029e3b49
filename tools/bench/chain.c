/* B4 `chain`: spawn-to-run latency (docs/benchmarks.md).
 *
 * weft has no detached tasks, so the chain lives in one group: the root
 * opens it and spawns task 1; task i spawns task i+1 into the same group
 * (the group pointer travels in the shared context) and returns; task
 * 100,000 spawns nothing, and the root's join is the completion signal.
 * Tasks run strictly one after another (task i+1 exists only once task i
 * has written the counter), so the counter needs no atomics: the spawn
 * publishes it.  ns_per_hop = median time / 100,000. */
#include "bench.h"

static const char *const workload = "chain";

#define CHAIN_HOPS 100000L

struct chain_ctx {
	weft_group_t *g;
	long count; /* tasks of the chain that ran */
};

static int chain_task(void *arg)
{
	struct chain_ctx *c = arg;
	if (++c->count == CHAIN_HOPS)
		return 0;
	/* c is not touched after this: the next link may already run. */
	int rc = weft_group_spawn(c->g, chain_task, c);
	return rc < 0 ? bench_fail("weft_group_spawn", rc) : 0;
}

struct chain_run {
	long long count; /* the first wrong count, or the last one */
	double ms[BENCH_REPS];
};

/* One chain: a group with the first hop, joined; *value = hops run. */
static int chain_once(void *arg, long long *value)
{
	(void)arg;
	struct chain_ctx c = { .count = 0 };
	int rc = weft_group_open(&c.g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	int spawn_rc = weft_group_spawn(c.g, chain_task, &c);
	weft_error_t *err = NULL;
	rc = weft_group_join(c.g, &err);
	rc = bench_joined(rc, err, spawn_rc);
	if (rc < 0)
		return rc;
	*value = c.count;
	return 0;
}

static int chain_root(void *arg)
{
	struct chain_run *run = arg;
	return bench_repeat(chain_once, NULL, CHAIN_HOPS, &run->count, run->ms);
}

int main(void)
{
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct chain_run run = { .count = -1 };
	bench_run_root(workload, rt, chain_root, &run);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr, "chain: %lld hops (expected %ld)\n", run.count,
		CHAIN_HOPS);
	if (run.count != CHAIN_HOPS)
		bench_die(workload, "wrong hop count");
	bench_stats_t ms = bench_stats(run.ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, CHAIN_HOPS);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_hop", ms.median * 1e6 / CHAIN_HOPS);
	bench_json_end(&j);
	return 0;
}
