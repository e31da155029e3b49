/* B3 `spawn-flat`: throughput of empty tasks (shared/workloads.md 4.2).
 *
 * The root task opens one group, spawns N = 1,000,000 tasks into it and
 * joins; 5 rounds per repetition.  The body is as close to empty as a
 * checked benchmark allows: it stores 1 into its own byte of a
 * preallocated array (no shared counter, no atomics), and after each
 * repetition every byte must be 1.  ns_per_spawn = median time x workers /
 * (5 x N) (workloads.md 4.1).
 *
 * Only the "from a worker" (local spawn) variant: the "from a plain
 * external thread" variant needs an API to spawn from a foreign thread,
 * which weft does not have yet, so no line is printed for it. */
#include "bench.h"

static const char *const workload = "spawn-flat";

#define FLAT_N 1000000L
#define FLAT_ROUNDS 5

static int flat_task(void *arg)
{
	*(unsigned char *)arg = 1;
	return 0;
}

struct flat_run {
	unsigned char *ran; /* FLAT_ROUNDS x FLAT_N flags */
	long missing;       /* tasks that did not run, over all reps */
	double ms[BENCH_REPS];
};

static int flat_round(unsigned char *ran)
{
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	int spawn_rc = 0;
	for (long i = 0; i < FLAT_N && spawn_rc == 0; i++)
		spawn_rc = weft_group_spawn(g, flat_task, &ran[i]);
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	if (spawn_rc < 0)
		return bench_fail("weft_group_spawn", spawn_rc);
	if (rc < 0)
		return bench_fail("weft_group_join", rc);
	return 0;
}

static int flat_root(void *arg)
{
	struct flat_run *run = arg;
	size_t bytes = (size_t)FLAT_ROUNDS * FLAT_N;
	for (int r = 0; r < BENCH_WARMUP + BENCH_REPS; r++) {
		memset(run->ran, 0, bytes);
		int64_t t0 = bench_now();
		for (int k = 0; k < FLAT_ROUNDS; k++) {
			int rc = flat_round(run->ran + (size_t)k * FLAT_N);
			if (rc < 0)
				return rc;
		}
		int64_t t1 = bench_now();
		for (size_t i = 0; i < bytes; i++)
			run->missing += run->ran[i] != 1;
		if (r >= BENCH_WARMUP)
			run->ms[r - BENCH_WARMUP] = bench_ms(t1 - t0);
	}
	return 0;
}

int main(void)
{
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct flat_run run = {.missing = 0};
	run.ran = malloc((size_t)FLAT_ROUNDS * FLAT_N);
	if (run.ran == NULL)
		bench_die(workload, "out of memory");
	bench_run_root(workload, rt, flat_root, &run);
	bench_runtime_destroy(workload, rt);
	long long total =
		(long long)(BENCH_WARMUP + BENCH_REPS) * FLAT_ROUNDS * FLAT_N;
	fprintf(stderr,
		"spawn-flat: %lld of %lld tasks ran (expected all); "
		"external-thread variant skipped: weft has no spawn from a "
		"foreign thread yet\n",
		total - run.missing, total);
	free(run.ran);
	if (run.missing != 0)
		bench_die(workload, "%ld tasks did not run", run.missing);
	bench_stats_t ms = bench_stats(run.ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, FLAT_N);
	bench_json_str(&j, "variant", "worker");
	bench_json_int(&j, "rounds", FLAT_ROUNDS);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_spawn",
		ms.median * 1e6 * cfg.workers / ((double)FLAT_ROUNDS * FLAT_N));
	bench_json_end(&j);
	return 0;
}
