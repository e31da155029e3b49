/* Context-switch microbenchmark (workload `switch`).
 *
 * The thread context and one fiber ping-pong N = 10,000,000 round trips per
 * repetition through weft__fiber_switch, the same annotated switch the
 * scheduler uses; 1 warm-up and 11 measured repetitions on CLOCK_MONOTONIC.
 * Prints one JSON line.  n is round trips; ns_per_switch is one direction
 * (median time / 2n).  It calls the internal API directly, so it links
 * against the static library.  Without sanitizers the switch is the whole
 * cost; with them it measures the annotations as well. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "core/fiber.h"
#include "core/stack.h"

#define ROUND_TRIPS 10000000L
#define WARMUP 1
#define REPS 11

struct bench {
	weft__fiber_t thread, fiber;
	int stop;
};

static void bench_fiber(void *arg)
{
	struct bench *b = arg;
	while (!b->stop)
		weft__fiber_switch(&b->fiber, &b->thread);
	weft__fiber_switch_final(&b->fiber, &b->thread);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	weft__stack_shared_t shared;
	weft__stack_pool_t pool;
	weft__stack_t *st;
	struct bench b = { .stop = 0 };
	double ms[REPS];

	int rc = weft__stack_shared_init(&shared, 64 * 1024, 1);
	if (rc == 0) {
		weft__stack_pool_init(&pool, &shared);
		rc = weft__stack_get(&pool, &st);
	}
	if (rc != 0) {
		fprintf(stderr, "switch: cannot get a stack: %d\n", rc);
		return 1;
	}
	weft__fiber_init_thread(&b.thread);
	weft__fiber_init(&b.fiber, st, bench_fiber, &b);

	for (int r = 0; r < WARMUP + REPS; r++) {
		double t0 = now_ms();
		for (long i = 0; i < ROUND_TRIPS; i++)
			weft__fiber_switch(&b.thread, &b.fiber);
		double t1 = now_ms();
		if (r >= WARMUP)
			ms[r - WARMUP] = t1 - t0;
	}
	b.stop = 1;
	weft__fiber_switch(&b.thread, &b.fiber);

	qsort(ms, REPS, sizeof ms[0], cmp_double);
	double median = ms[REPS / 2];
	/* Nearest-rank percentiles over 11 samples: p10 = 2nd, p90 = 10th. */
	double p10 = ms[(REPS * 10 + 99) / 100 - 1];
	double p90 = ms[(REPS * 90 + 99) / 100 - 1];
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"switch\",\"workers\":1,\"n\":%ld,"
	       "\"median_ms\":%.3f,\"p10_ms\":%.3f,\"p90_ms\":%.3f,"
	       "\"ns_per_switch\":%.3f,\"maxrss_kb\":%ld}\n",
		ROUND_TRIPS, median, p10, p90,
		median * 1e6 / (2.0 * (double)ROUND_TRIPS), ru.ru_maxrss);

	weft__fiber_fini_thread(&b.thread);
	weft__stack_put(&pool, st);
	weft__stack_pool_fini(&pool);
	weft__stack_shared_fini(&shared);
	return 0;
}
