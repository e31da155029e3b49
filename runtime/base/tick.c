/* The tick's rate (tick.h): measured once, against CLOCK_MONOTONIC, the
 * first time a duration is converted.  The cycle counters weft reads are
 * invariant (constant rate whatever the CPU's frequency: the x86_64
 * "invariant TSC" of every CPU of the last decade, and aarch64's generic
 * timer by definition), so one measurement holds for the process. */
#include "base/tick.h"

#include <pthread.h>

static double tick_ns_per_tick = 1.0;
static pthread_once_t tick_once = PTHREAD_ONCE_INIT;

static int64_t tick_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins ~2 ms between two (clock, tick) pairs: precise to about 0.1%,
 * plenty for a duration shown in milliseconds. */
static void tick_measure(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
	int64_t n0 = tick_mono_ns();
	uint64_t t0 = weft__tick_now();
	int64_t n1;
	do
		n1 = tick_mono_ns();
	while (n1 - n0 < 2000000);
	uint64_t t1 = weft__tick_now();
	if (t1 > t0)
		tick_ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
#endif
}

int64_t weft__tick_to_ns(uint64_t ticks)
{
	/* pthread_once orders the measurement before every reader. */
	pthread_once(&tick_once, tick_measure);
	return (int64_t)((double)ticks * tick_ns_per_tick);
}
