/* B3 `spawn-flat`: throughput of empty tasks (docs/benchmarks.md).
 *
 * The root task opens one group, spawns N = 1,000,000 tasks into it and
 * joins; 5 rounds per repetition.  The body is as close to empty as a
 * checked benchmark allows: it stores 1 into its own byte of a
 * preallocated array (no shared counter, no atomics), and after each
 * repetition every byte must be 1.  ns_per_spawn = median time x workers /
 * (5 x N) (docs/benchmarks.md, "Output": CPU time per spawn).
 *
 * Two variants, one JSON line each: "worker" (the root task spawns: the
 * local deque path) and "external" (a plain thread the root starts spawns
 * into the root's group, which the root holds with weft_group_retain: the
 * injection-queue path; the root waits on an Event the thread sets, then
 * joins).  The thread's creation is inside the timed round (tens of
 * microseconds against 10^6 spawns).
 *
 * Diagnostics (docs/benchmarks.md, B3): BENCH_FLAT_STATS=1 prints one line
 * per repetition to stderr with its time and what the runtime's counters
 * (weft_runtime_stats) and getrusage saw during it: steals, sleeps,
 * wake-ups, injection-queue pops, minor page faults, context switches,
 * and for the external variant the spawning loops' wall and CPU time,
 * then the repetition's start on CLOCK_MONOTONIC in seconds ("at"), which
 * `perf record -k CLOCK_MONOTONIC` samples can be cut by (perf report
 * --time).
 * BENCH_FLAT_VARIANT=worker or external runs only that variant;
 * BENCH_FLAT_N=n spawns n tasks per round instead of 10^6. */
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

static const char *const workload = "spawn-flat";

/* Tasks per round: 10^6, or BENCH_FLAT_N (a smaller count for callgrind,
 * docs/benchmarks.md B3). */
static long flat_n = 1000000L;
#define FLAT_N flat_n
#define FLAT_ROUNDS 5

static int flat_task(void *arg)
{
	*(unsigned char *)arg = 1;
	return 0;
}

struct flat_run {
	unsigned char *ran; /* FLAT_ROUNDS x FLAT_N flags */
	long missing;	    /* tasks that did not run, over all reps */
	double ms[BENCH_REPS];
};

/* Spawns FLAT_N tasks into g; the first failure's code, or 0. */
static int flat_spawn_all(weft_group_t *g, unsigned char *ran)
{
	int spawn_rc = 0;
	for (long i = 0; i < FLAT_N && spawn_rc == 0; i++)
		spawn_rc = weft_group_spawn(g, flat_task, &ran[i]);
	return spawn_rc;
}

/* The "external" variant's spawning thread. */
struct flat_external {
	weft_group_t *g;
	unsigned char *ran;
	weft_event_t *done;
	int spawn_rc;
	int64_t spawn_ns;     /* the spawning loop's own time */
	int64_t spawn_cpu_ns; /* and the thread's CPU time in it */
};

/* The calling thread's CPU time in ns. */
static int64_t flat_thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *flat_external_thread(void *arg)
{
	struct flat_external *x = arg;
	int64_t t0 = bench_now(), c0 = flat_thread_cpu_ns();
	x->spawn_rc = flat_spawn_all(x->g, x->ran);
	x->spawn_cpu_ns = flat_thread_cpu_ns() - c0;
	x->spawn_ns = bench_now() - t0;
	weft_event_set(x->done);
	return NULL;
}

static bool flat_external_variant;

/* BENCH_FLAT_STATS, external variant: the spawning threads' loop time
 * summed over the current repetition's rounds (the rest of a round is
 * the thread's start and the drain of the queue after its last spawn). */
static int64_t flat_spawn_ns, flat_spawn_cpu_ns;

/* The spawns of one round, from this task or from a plain thread. */
static int flat_spawn_round(weft_group_t *g, unsigned char *ran)
{
	if (!flat_external_variant)
		return flat_spawn_all(g, ran);
	struct flat_external x = { .g = g, .ran = ran };
	int rc = weft_event_create(&x.done);
	if (rc < 0)
		return rc;
	weft_group_retain(g);
	pthread_t th;
	if (pthread_create(&th, NULL, flat_external_thread, &x) != 0) {
		weft_group_release(g);
		weft_event_destroy(x.done);
		return -EAGAIN;
	}
	rc = weft_event_wait(x.done);
	/* The thread is past its last spawn; this only waits for it to
	 * return from weft_event_set. */
	pthread_join(th, NULL);
	flat_spawn_ns += x.spawn_ns;
	flat_spawn_cpu_ns += x.spawn_cpu_ns;
	weft_group_release(g);
	weft_event_destroy(x.done);
	return rc < 0 ? rc : x.spawn_rc;
}

static int flat_round(unsigned char *ran)
{
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	int spawn_rc = flat_spawn_round(g, ran);
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	return bench_joined(rc, err, spawn_rc);
}

/* BENCH_FLAT_STATS: the counters one repetition is measured against. */
struct flat_sample {
	weft_runtime_stats_t st;
	struct rusage ru;
};

static bool flat_stats_on;

static void flat_sample(struct flat_sample *s)
{
	if (!flat_stats_on)
		return;
	weft_runtime_stats(NULL, &s->st);
	getrusage(RUSAGE_SELF, &s->ru);
}

static double flat_cpu_ms(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e3 +
		(double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e3;
}

static void flat_sample_print(int rep, int64_t t0, double ms,
	const struct flat_sample *a, const struct flat_sample *b)
{
	if (!flat_stats_on)
		return;
	const weft_worker_stats_t *x = &a->st.total, *y = &b->st.total;
	fprintf(stderr,
		"spawn-flat (%s) rep %d: %.1f ms steals %llu+%llu "
		"attempts %llu sleeps %llu wakeups %llu inject_pops %llu "
		"run %llu inline %llu busy_ms %.0f cpu_ms %.0f minflt %ld "
		"nvcsw %ld nivcsw %ld spawn_ms %.1f spawn_cpu_ms %.1f "
		"at %.6f\n",
		flat_external_variant ? "external" : "worker", rep, ms,
		(unsigned long long)(y->steals - x->steals),
		(unsigned long long)(y->stolen_extra - x->stolen_extra),
		(unsigned long long)(y->steal_attempts - x->steal_attempts),
		(unsigned long long)(y->sleeps - x->sleeps),
		(unsigned long long)(y->sleep_wakeups - x->sleep_wakeups),
		(unsigned long long)(y->inject_pops - x->inject_pops),
		(unsigned long long)(y->tasks_run - x->tasks_run),
		(unsigned long long)(y->inline_run - x->inline_run),
		(double)(y->busy_ns - x->busy_ns) / 1e6,
		flat_cpu_ms(&b->ru) - flat_cpu_ms(&a->ru),
		b->ru.ru_minflt - a->ru.ru_minflt,
		b->ru.ru_nvcsw - a->ru.ru_nvcsw,
		b->ru.ru_nivcsw - a->ru.ru_nivcsw, (double)flat_spawn_ns / 1e6,
		(double)flat_spawn_cpu_ns / 1e6, (double)t0 / 1e9);
}

static int flat_root(void *arg)
{
	struct flat_run *run = arg;
	size_t bytes = (size_t)FLAT_ROUNDS * FLAT_N;
	for (int r = 0; r < BENCH_WARMUP + BENCH_REPS; r++) {
		memset(run->ran, 0, bytes);
		struct flat_sample s0, s1;
		flat_spawn_ns = flat_spawn_cpu_ns = 0;
		flat_sample(&s0);
		int64_t t0 = bench_now();
		for (int k = 0; k < FLAT_ROUNDS; k++) {
			int rc = flat_round(run->ran + (size_t)k * FLAT_N);
			if (rc < 0)
				return rc;
		}
		int64_t t1 = bench_now();
		flat_sample(&s1);
		flat_sample_print(r, t0, bench_ms(t1 - t0), &s0, &s1);
		for (size_t i = 0; i < bytes; i++)
			run->missing += run->ran[i] != 1;
		if (r >= BENCH_WARMUP)
			run->ms[r - BENCH_WARMUP] = bench_ms(t1 - t0);
	}
	return 0;
}

/* Runs one variant in its own runtime and prints its JSON line. */
static void flat_variant(bool external, unsigned char *ran)
{
	flat_external_variant = external;
	const char *name = external ? "external" : "worker";
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct flat_run run = { .missing = 0, .ran = ran };
	bench_run_root(workload, rt, flat_root, &run);
	bench_runtime_destroy(workload, rt);
	long long total = (long long)(BENCH_WARMUP + BENCH_REPS) * FLAT_ROUNDS *
		FLAT_N;
	fprintf(stderr,
		"spawn-flat (%s): %lld of %lld tasks ran "
		"(expected all)\n",
		name, total - run.missing, total);
	if (run.missing != 0)
		bench_die(workload, "%ld tasks did not run", run.missing);
	bench_stats_t ms = bench_stats(run.ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, FLAT_N);
	bench_json_str(&j, "variant", name);
	bench_json_int(&j, "rounds", FLAT_ROUNDS);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "ns_per_spawn",
		ms.median * 1e6 * cfg.workers / ((double)FLAT_ROUNDS * FLAT_N));
	bench_json_end(&j);
}

int main(void)
{
	const char *n_env = getenv("BENCH_FLAT_N");
	if (n_env != NULL && atol(n_env) > 0)
		flat_n = atol(n_env);
	unsigned char *ran = malloc((size_t)FLAT_ROUNDS * FLAT_N);
	if (ran == NULL)
		bench_die(workload, "out of memory");
	const char *stats = getenv("BENCH_FLAT_STATS");
	flat_stats_on = stats != NULL && strcmp(stats, "1") == 0;
	const char *only = getenv("BENCH_FLAT_VARIANT");
	if (only == NULL || strcmp(only, "worker") == 0)
		flat_variant(false, ran);
	if (only == NULL || strcmp(only, "external") == 0)
		flat_variant(true, ran);
	free(ran);
	return 0;
}
