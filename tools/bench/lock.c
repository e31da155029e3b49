/* `lock`: lock contention (docs/benchmarks.md).
 *
 * The root spawns T = 4 tasks into one group; each increments one shared,
 * non-atomic counter E = 250,000 times, each increment under one
 * weft_lock_t (acquire, ++counter, release): 1,000,000 increments per
 * repetition.  The checksum is the counter, which must be exactly
 * T * E.  ns_per_increment = median time / (T * E) (wall time per
 * critical section, not multiplied by the worker count).
 *
 * weft's Lock hands ownership to the oldest waiter (FIFO).  At 2 workers
 * tasks on both workers meet at the lock: once one waits, nearly every
 * acquire after it parks (a lock convoy), and the figure measures the
 * park/hand-off/wake path.  At 1 worker the tasks never find the lock
 * held: a free lock is taken without yielding, and the only switch in the
 * loop is the cooperative budget's yield at every 128th acquire, which
 * comes before the lock is taken (docs/semantics.md rule 22), never inside
 * the critical section.  So at 1 worker the figure is the fast path plus
 * one task switch per 128 increments, close to the uncontended line.  A
 * second line, `lock-uncontended`, times a single task doing the same
 * 1,000,000 acquire/release pairs alone: the fast path (one CAS each way,
 * no system call; the budget's yield finds no other task to run). */
#include "bench.h"

static const char *const workload = "lock";

#define LOCK_TASKS 4
#define LOCK_EACH 250000L
#define LOCK_TOTAL ((long long)LOCK_TASKS * LOCK_EACH)

struct lock_run {
	weft_lock_t *lock;
	long counter;  /* under lock */
	long long bad; /* first wrong checksum, or 0 */
	double ms[BENCH_REPS];
	double solo_ms[BENCH_REPS];
};

static int lock_task(void *arg)
{
	struct lock_run *run = arg;
	for (long i = 0; i < LOCK_EACH; i++) {
		int rc = weft_lock_acquire(run->lock);
		if (rc < 0)
			return bench_fail("weft_lock_acquire", rc);
		run->counter++;
		rc = weft_lock_release(run->lock);
		if (rc < 0)
			return bench_fail("weft_lock_release", rc);
	}
	return 0;
}

/* One repetition with `tasks` tasks doing LOCK_TOTAL / tasks each;
 * returns its time in ns, or a negative code. */
static int64_t lock_rep(struct lock_run *run, int tasks)
{
	run->counter = 0;
	weft_group_t *g;
	int64_t t0 = bench_now();
	int rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	int spawn_rc = 0;
	for (int i = 0; i < tasks && spawn_rc == 0; i++)
		spawn_rc = weft_group_spawn(g, lock_task, run);
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	int64_t t1 = bench_now();
	rc = bench_joined(rc, err, spawn_rc);
	if (rc < 0)
		return rc;
	if (run->counter != (long)tasks * LOCK_EACH && run->bad == 0)
		run->bad = run->counter;
	return t1 - t0;
}

static int lock_root(void *arg)
{
	struct lock_run *run = arg;
	int rc = weft_lock_create(&run->lock);
	if (rc < 0)
		return bench_fail("weft_lock_create", rc);
	for (int r = 0; r < BENCH_WARMUP + BENCH_REPS; r++) {
		int64_t ns = lock_rep(run, LOCK_TASKS);
		if (ns < 0)
			return (int)ns;
		if (r >= BENCH_WARMUP)
			run->ms[r - BENCH_WARMUP] = bench_ms(ns);
	}
	/* Uncontended: one task, the same number of pairs. */
	for (int r = 0; r < BENCH_WARMUP + BENCH_REPS; r++) {
		int64_t t0 = bench_now();
		for (long long i = 0; i < LOCK_TOTAL; i++) {
			rc = weft_lock_acquire(run->lock);
			if (rc < 0)
				return bench_fail("weft_lock_acquire", rc);
			run->counter++;
			weft_lock_release(run->lock);
		}
		if (r >= BENCH_WARMUP)
			run->solo_ms[r - BENCH_WARMUP] = bench_ms(
				bench_now() - t0);
	}
	rc = weft_lock_destroy(run->lock);
	if (rc < 0)
		return bench_fail("weft_lock_destroy", rc);
	return 0;
}

int main(void)
{
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct lock_run *run = calloc(1, sizeof *run);
	if (run == NULL)
		bench_die(workload, "out of memory");
	bench_run_root(workload, rt, lock_root, run);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr, "lock: counter %lld per repetition (expected %lld)\n",
		run->bad ? run->bad : LOCK_TOTAL, LOCK_TOTAL);
	if (run->bad)
		bench_die(workload, "wrong counter: mutual exclusion broken");
	bench_stats_t ms = bench_stats(run->ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, LOCK_TOTAL);
	bench_json_int(&j, "tasks", LOCK_TASKS);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_increment",
		ms.median * 1e6 / (double)LOCK_TOTAL);
	bench_json_end(&j);
	bench_stats_t solo = bench_stats(run->solo_ms, BENCH_REPS);
	bench_json_begin(&j, "lock-uncontended", cfg.workers, LOCK_TOTAL);
	bench_json_int(&j, "tasks", 1);
	bench_json_times(&j, &solo, BENCH_REPS);
	bench_json_num(&j, "ns_per_increment",
		solo.median * 1e6 / (double)LOCK_TOTAL);
	bench_json_end(&j);
	free(run);
	return 0;
}
