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
 * microseconds against 10^6 spawns). */
#include <pthread.h>

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
};

static void *flat_external_thread(void *arg)
{
	struct flat_external *x = arg;
	x->spawn_rc = flat_spawn_all(x->g, x->ran);
	weft_event_set(x->done);
	return NULL;
}

static bool flat_external_variant;

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
	unsigned char *ran = malloc((size_t)FLAT_ROUNDS * FLAT_N);
	if (ran == NULL)
		bench_die(workload, "out of memory");
	flat_variant(false, ran);
	flat_variant(true, ran);
	free(ran);
	return 0;
}
