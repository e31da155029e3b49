/* B7 `park`: parked-task memory and timer accuracy (docs/benchmarks.md).
 * The benchmark that shows 1,000,000 tasks parked at once on a stock
 * kernel (vm.max_map_count 65530).
 *
 * For each M: the root opens a group and spawns M tasks; task k sleeps with
 * weft_sleep_until(start + 1000 ms + (k % 100) ms), then records its
 * lateness (weft_now() - deadline) into a preallocated array; the root
 * joins.  start is taken just before the first spawn.
 *
 * Usage: weft-bench-park [M ...], or BENCH_PARK_M="M,M,..." in the
 * environment (for tools/run bench); default 10000 100000 1000000.  Each M
 * runs in its own child process with its own runtime, so that its memory
 * figures start cold (glibc keeps freed task records, the runtime keeps
 * stacks: a second run in the same process would reuse them).  One JSON
 * line per M.  Repetitions: BENCH_PARK_REPS (default 11 measured after 1
 * warm-up; for M = 1,000,000 a single run, no warm-up, about 2 s); "reps"
 * in the JSON says how many were measured.
 *
 * Memory, from the first (cold) run only: VmHWM is reset (clear_refs) and
 * VmRSS read just before the first spawn, after the arrays are allocated
 * and touched; bytes_per_parked_task = (VmHWM after the join - that VmRSS)
 * / M.  all_parked says whether, in every run, the last task parked before
 * the first one woke (so M tasks really were parked at once); max_parked
 * is the largest number asleep at the same time (the smallest such figure
 * over all runs: below M, stacks of tasks that already woke were reused
 * and bytes_per_parked_task understates what a parked task costs);
 * last_park_ms is when the last task went to sleep (median over runs), to
 * compare with the first deadline at 1000 ms.  median_ms = total_ms =
 * median time from the first spawn to the end of the join; spawn_ms =
 * median time of the spawn loop; lateness percentiles are per run (nearest
 * rank over M), then the median over
 * runs; lateness_max_us is the worst over all runs. */
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static const char *const workload = "park";

/* Sleep before the spread, 1000 ms as docs/benchmarks.md defines; the env var
 * BENCH_PARK_BASE_MS lengthens it for the "all parked at once" variant
 * (spawning 10^6 tasks takes longer than 1 s). */
static int64_t park_base_ns = 1000 * WEFT_MSEC;
#define PARK_SPREAD 100 /* deadlines spread over 100 ms, 1 ms apart */
#define PARK_MAX_REPS 64

struct park_ctx {
	long m;
	int warmup, reps;
	int64_t start;	   /* of the current run; written before spawning */
	int64_t *lateness; /* [m], ns */
	int64_t *parked;   /* [m], when task k went to sleep */
	int64_t *wake;	   /* [m], scratch for park_max_parked */
	/* Results. */
	long bad; /* tasks whose sleep did not return 0 */
	long baseline_kb, peak_kb;
	int all_parked;
	double total_ms[PARK_MAX_REPS], spawn_ms[PARK_MAX_REPS];
	double p50_us[PARK_MAX_REPS], p99_us[PARK_MAX_REPS];
	double last_park_ms[PARK_MAX_REPS];
	long max_parked; /* smallest over all runs, warm-up included */
	double max_us;
};

/* The benchmark's one context: tasks find their slot from k (their
 * argument) and this pointer, so no per-task argument is allocated. */
static struct park_ctx *park;

static int64_t park_deadline(long k)
{
	return park->start + park_base_ns + (k % PARK_SPREAD) * WEFT_MSEC;
}

static int park_task(void *arg)
{
	long k = (long)(intptr_t)arg;
	int64_t deadline = park_deadline(k);
	park->parked[k] = bench_now();
	int rc = weft_sleep_until(deadline);
	park->lateness[k] = bench_now() - deadline;
	return rc < 0 ? bench_fail("weft_sleep_until", rc) : 0;
}

/* After a run: did every task park before the first wake-up?  *last_park
 * receives when the last one went to sleep. */
static int park_all_parked(const struct park_ctx *c, int64_t *last)
{
	int64_t last_park = INT64_MIN, first_wake = INT64_MAX;
	for (long k = 0; k < c->m; k++) {
		int64_t wake = park_deadline(k) + c->lateness[k];
		if (c->parked[k] > last_park)
			last_park = c->parked[k];
		if (wake < first_wake)
			first_wake = wake;
	}
	*last = last_park;
	return last_park < first_wake;
}

/* After a run: the largest number of tasks asleep at the same time (a
 * sweep over the sorted park and wake times).  Sorts c->parked. */
static long park_max_parked(struct park_ctx *c)
{
	for (long k = 0; k < c->m; k++)
		c->wake[k] = park_deadline(k) + c->lateness[k];
	qsort(c->parked, (size_t)c->m, sizeof c->parked[0], bench_cmp_i64);
	qsort(c->wake, (size_t)c->m, sizeof c->wake[0], bench_cmp_i64);
	long asleep = 0, max = 0, j = 0;
	for (long i = 0; i < c->m; i++) {
		while (j < c->m && c->wake[j] < c->parked[i]) {
			asleep--;
			j++;
		}
		if (++asleep > max)
			max = asleep;
	}
	return max;
}

static int park_root(void *arg)
{
	struct park_ctx *c = arg;
	for (int r = 0; r < c->warmup + c->reps; r++) {
		if (r == 0) {
			(void)bench_reset_hwm();
			c->baseline_kb = bench_status_kb("VmRSS");
		}
		weft_group_t *g;
		int rc = weft_group_open(&g);
		if (rc < 0)
			return bench_fail("weft_group_open", rc);
		c->start = bench_now();
		int spawn_rc = 0;
		for (long k = 0; k < c->m && spawn_rc == 0; k++)
			spawn_rc = weft_group_spawn(g, park_task,
				(void *)(intptr_t)k);
		int64_t spawned = bench_now();
		weft_error_t *err = NULL;
		rc = weft_group_join(g, &err);
		int64_t end = bench_now();
		if (r == 0)
			c->peak_kb = bench_status_kb("VmHWM");
		rc = bench_joined(rc, err, spawn_rc);
		if (rc < 0)
			return rc;
		int64_t last_park;
		if (!park_all_parked(c, &last_park))
			c->all_parked = 0;
		long most = park_max_parked(c);
		if (r == 0 || most < c->max_parked)
			c->max_parked = most;
		if (r < c->warmup)
			continue;
		int i = r - c->warmup;
		c->last_park_ms[i] = bench_ms(last_park - c->start);
		c->total_ms[i] = bench_ms(end - c->start);
		c->spawn_ms[i] = bench_ms(spawned - c->start);
		/* Sorting destroys the order; the next run rewrites it. */
		c->p50_us[i] = bench_pct_i64(c->lateness, c->m, 50) / 1e3;
		c->p99_us[i] = (double)c->lateness[bench_rank(c->m, 99)] / 1e3;
		double max = (double)c->lateness[c->m - 1] / 1e3;
		if (max > c->max_us)
			c->max_us = max;
		for (long k = 0; k < c->m; k++)
			if (c->lateness[k] < 0)
				c->bad++; /* woke before its deadline */
	}
	return 0;
}

/* One M, in the calling (child) process.  Returns the exit status. */
static int park_one(long m, int reps_env)
{
	struct park_ctx c = { .m = m, .all_parked = 1 };
	c.reps = reps_env > 0 ? reps_env : (m >= 1000000 ? 1 : BENCH_REPS);
	c.warmup = c.reps > 1 ? BENCH_WARMUP : 0;
	c.lateness = malloc((size_t)m * sizeof *c.lateness);
	c.parked = malloc((size_t)m * sizeof *c.parked);
	c.wake = malloc((size_t)m * sizeof *c.wake);
	if (c.lateness == NULL || c.parked == NULL || c.wake == NULL)
		bench_die(workload, "out of memory");
	/* Touch them now, so they are part of the baseline. */
	memset(c.lateness, 0, (size_t)m * sizeof *c.lateness);
	memset(c.parked, 0, (size_t)m * sizeof *c.parked);
	memset(c.wake, 0, (size_t)m * sizeof *c.wake);
	park = &c;
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	bench_run_root(workload, rt, park_root, &c);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr,
		"park: M=%ld: %d run(s), all parked at once: %s, "
		"early wake-ups: %ld\n",
		m, c.warmup + c.reps, c.all_parked ? "yes" : "NO", c.bad);
	if (c.bad != 0)
		bench_die(workload, "%ld tasks woke before their deadline",
			c.bad);
	bench_stats_t total = bench_stats(c.total_ms, (size_t)c.reps);
	bench_stats_t spawn = bench_stats(c.spawn_ms, (size_t)c.reps);
	bench_stats_t p50 = bench_stats(c.p50_us, (size_t)c.reps);
	bench_stats_t p99 = bench_stats(c.p99_us, (size_t)c.reps);
	bench_stats_t last = bench_stats(c.last_park_ms, (size_t)c.reps);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, m);
	bench_json_int(&j, "tasks", m);
	bench_json_times(&j, &total, c.reps);
	bench_json_num(&j, "bytes_per_parked_task",
		(double)(c.peak_kb - c.baseline_kb) * 1024.0 / (double)m);
	bench_json_int(&j, "baseline_rss_kb", c.baseline_kb);
	bench_json_int(&j, "peak_rss_kb", c.peak_kb);
	bench_json_bool(&j, "all_parked", c.all_parked);
	bench_json_int(&j, "max_parked", c.max_parked);
	bench_json_num(&j, "lateness_p50_us", p50.median);
	bench_json_num(&j, "lateness_p99_us", p99.median);
	bench_json_num(&j, "lateness_max_us", c.max_us);
	bench_json_num(&j, "spawn_ms", spawn.median);
	bench_json_num(&j, "last_park_ms", last.median);
	bench_json_num(&j, "total_ms", total.median);
	bench_json_end(&j);
	free(c.lateness);
	free(c.parked);
	free(c.wake);
	return 0;
}

/* Appends the M values of one argument ("100000" or "10000,100000"). */
static void park_parse(const char *arg, long *ms, int *count, int max)
{
	const char *p = arg;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || (*end != '\0' && *end != ',') || v < 1 ||
			v > 10000000 || *count >= max)
			bench_die(workload,
				"usage: weft-bench-park [M ...] or "
				"BENCH_PARK_M=M,M,... "
				"(1 <= M <= 10000000, at most %d)",
				max);
		ms[(*count)++] = v;
		p = *end == ',' ? end + 1 : end;
	}
}

int main(int argc, char **argv)
{
	long ms[16];
	int count = 0;
	for (int i = 1; i < argc; i++)
		park_parse(argv[i], ms, &count, 16);
	const char *base = getenv("BENCH_PARK_BASE_MS");
	if (base && *base) {
		char *end;
		long base_ms = strtol(base, &end, 10);
		if (*end != '\0' || base_ms < 1 || base_ms > 600000) {
			fprintf(stderr,
				"park: BENCH_PARK_BASE_MS='%s': expected "
				"1..600000\n",
				base);
			return 2;
		}
		park_base_ns = base_ms * WEFT_MSEC;
	}
	const char *list = getenv("BENCH_PARK_M");
	if (count == 0 && list && *list)
		park_parse(list, ms, &count, 16);
	if (count == 0) {
		ms[count++] = 10000;
		ms[count++] = 100000;
		ms[count++] = 1000000;
	}
	int reps = 0;
	const char *env = getenv("BENCH_PARK_REPS");
	if (env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end != '\0' || v < 1 || v > PARK_MAX_REPS)
			bench_die(workload, "BENCH_PARK_REPS must be 1..%d",
				PARK_MAX_REPS);
		reps = (int)v;
	}
	int failed = 0;
	for (int i = 0; i < count; i++) {
		/* No thread exists yet in this process: fork is safe. */
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0)
			bench_die(workload, "fork: %s", strerror(errno));
		if (pid == 0)
			_exit(park_one(ms[i], reps));
		int status;
		if (waitpid(pid, &status, 0) < 0)
			bench_die(workload, "waitpid: %s", strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr,
				"weft-bench-park: M=%ld failed "
				"(status %#x)\n",
				ms[i], status);
			failed = 1;
		}
	}
	return failed;
}
