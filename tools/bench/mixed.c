/* B11 `mixed`: timer latency under CPU load (docs/benchmarks.md).
 *
 *     2 workers (WEFT_WORKERS overrides; the default here is 2, not the
 *     CPU count, because the workload is defined at 2);
 *     4 CPU tasks: compute in chunks of about 1 ms (an LCG loop that checks
 *       the clock every 1000 steps), weft_yield() between chunks, for
 *       BENCH_MIXED_SECS seconds (default 10) and until the sleeper is done;
 *     1 sleeper: 5,000 times: deadline = now + 1 ms; weft_sleep_until
 *       (deadline); lateness = weft_now() - deadline.
 *
 * This is the peers' "sleep" mode (docs/benchmarks.md, B11): a late wake
 * does not make the next one late.  BENCH_MIXED_MODE=deadline runs
 * the peers' "deadline" mode instead (the k-th wake is due at start + k ms,
 * an absolute schedule), and BENCH_MIXED_MODE=both prints one line for
 * each.  Lateness is never negative (weft_sleep_until returns at or after
 * its deadline); a negative figure would be a bug and fails the run.
 *
 * The CPU tasks keep running after the sleeper is done until the duration
 * has passed (the peers do the same: "for 10 s and until the timer task
 * ends"), so each repetition lasts max(duration, sleeper) seconds.
 *
 * BENCH_MIXED_CPU_TASKS changes the number of CPU tasks (1..64); "none"
 * runs the sleeper alone, the peers' "idle" baseline, which separates the
 * timer's own lateness from the wait behind the CPU tasks.
 *
 * Repetitions: one short warm-up (1 s at most, 500 sleeps: it fills the
 * stack pools and the timing wheel's slots) and BENCH_MIXED_REPS measured
 * repetitions (default 3, as the peers run it: each lasts 10 s).
 * Per repetition the lateness percentiles are nearest rank over the 5,000
 * wakes; the JSON line gives the median of the repetitions' p50 and p99
 * and the worst max of all of them (as B7 `park`).  median_ms/p10_ms/p90_ms
 * are the repetitions' wall times.  The checksum is the number of wakes
 * (5,000 per repetition, every sleep returning 0). */
#include <stdatomic.h>

#include "bench.h"

static const char *const workload = "mixed";

#define MIXED_CPU_TASKS 4 /* the definition's; BENCH_MIXED_CPU_TASKS */
#define MIXED_MAX_CPU_TASKS 64
#define MIXED_TICKS 5000
#define MIXED_WARMUP_TICKS 500
#define MIXED_MAX_REPS 64
#define MIXED_CHUNK_NS WEFT_MSEC

enum mixed_mode { MIXED_SLEEP, MIXED_DEADLINE };

/* One repetition.  Written before the group is opened and read by its
 * tasks; `done` is the only field written while they run. */
struct mixed_rep {
	enum mixed_mode mode;
	int ticks;	   /* sleeps to do */
	int cpu_tasks;	   /* CPU tasks to run beside the sleeper */
	int64_t start;	   /* when the repetition started */
	int64_t cpu_until; /* the CPU tasks run at least until then */
	/* Set by the sleeper when its last wake is recorded.  Relaxed: it
	 * only tells the CPU tasks to stop; the lateness array is read by the
	 * root after the join, which orders it (the join is acquire). */
	atomic_int done;
	int64_t *late; /* [ticks], ns; written by the sleeper only */
	int bad;       /* sleeps that failed or woke early: sleeper */
	long chunks[MIXED_MAX_CPU_TASKS];   /* each written by its task only */
	uint64_t sink[MIXED_MAX_CPU_TASKS]; /* keeps the LCG loop alive */
};

struct mixed_cpu_arg {
	struct mixed_rep *rep;
	int k;
};

/* Computes in ~1 ms chunks with a yield between them until the duration
 * has passed and the sleeper is done. */
static int mixed_cpu(void *arg)
{
	struct mixed_cpu_arg *a = arg;
	struct mixed_rep *rep = a->rep;
	uint64_t acc = 1;
	long chunks = 0;
	for (;;) {
		int64_t c = weft_now();
		/* relaxed: `done` only says stop (see struct mixed_rep). */
		if (c >= rep->cpu_until &&
			atomic_load_explicit(&rep->done, memory_order_relaxed))
			break;
		do {
			for (uint64_t i = 0; i < 1000; i++)
				acc = acc * 6364136223846793005ULL + i;
		} while (weft_now() - c < MIXED_CHUNK_NS);
		chunks++;
		int rc = weft_yield();
		if (rc < 0)
			return bench_fail("weft_yield", rc);
	}
	rep->chunks[a->k] = chunks;
	rep->sink[a->k] = acc;
	return 0;
}

static int mixed_sleeper(void *arg)
{
	struct mixed_rep *rep = arg;
	int64_t start = weft_now();
	int rc = 0;
	for (int k = 0; k < rep->ticks; k++) {
		int64_t due = rep->mode == MIXED_SLEEP
			? weft_now() + WEFT_MSEC
			: start + (int64_t)(k + 1) * WEFT_MSEC;
		rc = weft_sleep_until(due);
		int64_t woke = weft_now();
		if (rc < 0)
			break;
		rep->late[k] = woke - due;
		if (woke < due)
			rep->bad++;
	}
	/* relaxed: pairs with nothing; the root reads `late` after the
	 * join (see struct mixed_rep). */
	atomic_store_explicit(&rep->done, 1, memory_order_relaxed);
	return rc < 0 ? bench_fail("weft_sleep_until", rc) : 0;
}

static int mixed_once(struct mixed_rep *rep, int64_t secs)
{
	rep->start = weft_now();
	rep->cpu_until = rep->start + secs * WEFT_SEC;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	struct mixed_cpu_arg args[MIXED_MAX_CPU_TASKS];
	int spawn_rc = weft_group_spawn(g, mixed_sleeper, rep);
	for (int k = 0; k < rep->cpu_tasks && spawn_rc == 0; k++) {
		args[k].rep = rep;
		args[k].k = k;
		spawn_rc = weft_group_spawn(g, mixed_cpu, &args[k]);
	}
	/* A failed spawn: the CPU tasks already spawned must still stop (at
	 * the end of the duration).  relaxed: it only says stop, as in
	 * mixed_sleeper. */
	if (spawn_rc < 0)
		atomic_store_explicit(&rep->done, 1, memory_order_relaxed);
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	return bench_joined(rc, err, spawn_rc);
}

/* What one JSON line reports, accumulated over the repetitions. */
struct mixed_run {
	enum mixed_mode mode;
	int reps;
	int cpu_tasks;
	int64_t secs;
	long ticks_ok; /* wakes recorded in measured repetitions */
	long bad;
	long chunks; /* CPU chunks over the measured repetitions */
	double ms[MIXED_MAX_REPS];
	double p50_us[MIXED_MAX_REPS], p99_us[MIXED_MAX_REPS];
	double max_us;
	int64_t *late; /* [MIXED_TICKS] scratch */
};

static int mixed_root(void *arg)
{
	struct mixed_run *run = arg;
	for (int r = -1; r < run->reps; r++) {
		int warm = r < 0;
		struct mixed_rep rep = { .mode = run->mode,
			.late = run->late,
			.cpu_tasks = run->cpu_tasks };
		rep.ticks = warm ? MIXED_WARMUP_TICKS : MIXED_TICKS;
		/* Not an atomic operation: no task exists yet, and the
		 * spawns publish it. */
		atomic_init(&rep.done, 0);
		int64_t t0 = weft_now();
		int64_t secs = warm && run->secs > 1 ? 1 : run->secs;
		int rc = mixed_once(&rep, secs);
		int64_t t1 = weft_now();
		if (rc < 0)
			return rc;
		if (warm)
			continue;
		run->ms[r] = bench_ms(t1 - t0);
		run->ticks_ok += rep.ticks;
		run->bad += rep.bad;
		for (int k = 0; k < rep.cpu_tasks; k++)
			run->chunks += rep.chunks[k];
		run->p50_us[r] = bench_pct_i64(rep.late, MIXED_TICKS, 50) / 1e3;
		run->p99_us[r] = bench_pct_i64(rep.late, MIXED_TICKS, 99) / 1e3;
		double mx = rep.late[MIXED_TICKS - 1] / 1e3; /* sorted above */
		if (mx > run->max_us)
			run->max_us = mx;
	}
	return 0;
}

static void mixed_report(const weft_config_t *cfg, struct mixed_run *run)
{
	bench_stats_t ms = bench_stats(run->ms, (size_t)run->reps);
	bench_stats_t p50 = bench_stats(run->p50_us, (size_t)run->reps);
	bench_stats_t p99 = bench_stats(run->p99_us, (size_t)run->reps);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg->workers, MIXED_TICKS);
	bench_json_times(&j, &ms, run->reps);
	bench_json_str(&j, "mode",
		run->mode == MIXED_SLEEP ? "sleep" : "deadline");
	bench_json_int(&j, "cpu_tasks", run->cpu_tasks);
	bench_json_int(&j, "cpu_secs", run->secs);
	bench_json_num(&j, "cpu_chunks_per_s",
		run->chunks / (ms.median > 0 ? ms.median / 1e3 : 1) /
			run->reps);
	bench_json_num(&j, "lateness_p50_us", p50.median);
	bench_json_num(&j, "lateness_p99_us", p99.median);
	bench_json_num(&j, "lateness_max_us", run->max_us);
	bench_json_end(&j);
}

int main(void)
{
	/* The workload is defined at 2 workers; a user's WEFT_WORKERS wins. */
	if (setenv("WEFT_WORKERS", "2", 0) != 0)
		bench_die(workload, "setenv failed");
	int64_t secs = bench_env_long(workload, "BENCH_MIXED_SECS", 10, 3600);
	int reps = (int)bench_env_long(workload, "BENCH_MIXED_REPS", 3,
		MIXED_MAX_REPS);
	/* "none" (0) gives the idle baseline: the same sleeps, no load. */
	const char *ct = getenv("BENCH_MIXED_CPU_TASKS");
	int cpu_tasks = ct != NULL && strcmp(ct, "none") == 0
		? 0
		: (int)bench_env_long(workload, "BENCH_MIXED_CPU_TASKS",
			  MIXED_CPU_TASKS, MIXED_MAX_CPU_TASKS);
	const char *m = getenv("BENCH_MIXED_MODE");
	int modes[2], nmodes = 0;
	if (m == NULL || *m == '\0' || strcmp(m, "sleep") == 0)
		modes[nmodes++] = MIXED_SLEEP;
	else if (strcmp(m, "deadline") == 0)
		modes[nmodes++] = MIXED_DEADLINE;
	else if (strcmp(m, "both") == 0) {
		modes[nmodes++] = MIXED_SLEEP;
		modes[nmodes++] = MIXED_DEADLINE;
	} else
		bench_die(workload,
			"BENCH_MIXED_MODE must be sleep, deadline "
			"or both, not '%s'",
			m);

	int64_t late[MIXED_TICKS];
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	int wrong = 0;
	for (int i = 0; i < nmodes; i++) {
		struct mixed_run run = { .mode = modes[i],
			.reps = reps,
			.cpu_tasks = cpu_tasks,
			.secs = secs,
			.late = late };
		bench_run_root(workload, rt, mixed_root, &run);
		long expected = (long)MIXED_TICKS * reps;
		fprintf(stderr,
			"mixed: %s: %ld wakes (expected %ld), %ld "
			"early, %ld CPU chunks\n",
			run.mode == MIXED_SLEEP ? "sleep" : "deadline",
			run.ticks_ok, expected, run.bad, run.chunks);
		if (run.ticks_ok != expected || run.bad != 0) {
			wrong = 1;
			continue;
		}
		mixed_report(&cfg, &run);
	}
	bench_runtime_destroy(workload, rt);
	if (wrong)
		bench_die(workload, "wrong checksum");
	return 0;
}
