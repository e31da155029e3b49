/* B6 `yield`: run-queue round robin (docs/benchmarks.md).
 *
 * The root spawns T = 200 tasks into one group; each calls weft_yield()
 * 10,000 times (2,000,000 yields), then records when it finished
 * (relative to the repetition's start, taken before the first spawn); the
 * root joins.  ns_per_yield = median time / 2,000,000 (as the peers'
 * figures, not multiplied by the worker count).  fairness = max / min
 * finish time within a repetition (1.0 = every task finished at the same
 * moment, i.e. perfect round robin); the median over repetitions is
 * reported, and the worst one as fairness_max. */
#include "bench.h"

static const char *const workload = "yield";

#define YIELD_TASKS 200
#define YIELD_EACH 10000L

struct yield_slot {
	int64_t t0;	/* repetition start (read only) */
	int64_t finish; /* ns after t0 */
	long yields;	/* successful weft_yield() calls */
};

static int yield_task(void *arg)
{
	struct yield_slot *s = arg;
	for (long i = 0; i < YIELD_EACH; i++) {
		int rc = weft_yield();
		if (rc < 0)
			return bench_fail("weft_yield", rc);
		s->yields++;
	}
	s->finish = bench_now() - s->t0;
	return 0;
}

struct yield_run {
	long long yields; /* the first wrong total, or the last one */
	double ms[BENCH_REPS];
	double fairness[BENCH_REPS];
	struct yield_slot slot[YIELD_TASKS];
};

static int yield_root(void *arg)
{
	struct yield_run *run = arg;
	const long long want = (long long)YIELD_TASKS * YIELD_EACH;
	for (int r = 0; r < BENCH_WARMUP + BENCH_REPS; r++) {
		weft_group_t *g;
		int64_t t0 = bench_now();
		for (int i = 0; i < YIELD_TASKS; i++)
			run->slot[i] = (struct yield_slot){ .t0 = t0 };
		int rc = weft_group_open(&g);
		if (rc < 0)
			return bench_fail("weft_group_open", rc);
		int spawn_rc = 0;
		for (int i = 0; i < YIELD_TASKS && spawn_rc == 0; i++)
			spawn_rc = weft_group_spawn(g, yield_task,
				&run->slot[i]);
		weft_error_t *err = NULL;
		rc = weft_group_join(g, &err);
		int64_t t1 = bench_now();
		if (rc == WEFT_ECHILD_FAILED)
			return weft_fail_group(err);
		if (spawn_rc < 0)
			return bench_fail("weft_group_spawn", spawn_rc);
		if (rc < 0)
			return bench_fail("weft_group_join", rc);
		long long total = 0;
		int64_t lo = INT64_MAX, hi = 0;
		for (int i = 0; i < YIELD_TASKS; i++) {
			total += run->slot[i].yields;
			if (run->slot[i].finish < lo)
				lo = run->slot[i].finish;
			if (run->slot[i].finish > hi)
				hi = run->slot[i].finish;
		}
		if (r == 0 || run->yields == want)
			run->yields = total;
		if (r >= BENCH_WARMUP) {
			run->ms[r - BENCH_WARMUP] = bench_ms(t1 - t0);
			run->fairness[r - BENCH_WARMUP] = lo > 0
				? (double)hi / (double)lo
				: 0;
		}
	}
	return 0;
}

int main(void)
{
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct yield_run *run = calloc(1, sizeof *run);
	if (run == NULL)
		bench_die(workload, "out of memory");
	bench_run_root(workload, rt, yield_root, run);
	bench_runtime_destroy(workload, rt);
	const long long want = (long long)YIELD_TASKS * YIELD_EACH;
	fprintf(stderr, "yield: %lld yields (expected %lld)\n", run->yields,
		want);
	if (run->yields != want)
		bench_die(workload, "wrong yield count");
	bench_stats_t ms = bench_stats(run->ms, BENCH_REPS);
	bench_stats_t fair = bench_stats(run->fairness, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, want);
	bench_json_int(&j, "tasks", YIELD_TASKS);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_yield", ms.median * 1e6 / (double)want);
	bench_json_num(&j, "fairness", fair.median);
	bench_json_num(&j, "fairness_max", fair.max);
	bench_json_end(&j);
	free(run);
	return 0;
}
