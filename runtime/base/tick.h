/* A cheap monotonic tick for timestamps that only a diagnostic reads (how
 * long a task has been parked, in the dump): the CPU's cycle counter
 * where there is one (rdtsc on x86_64, cntvct_el0 on aarch64: one
 * instruction, against the vDSO clock_gettime's few dozen that a park
 * would pay), else CLOCK_MONOTONIC in nanoseconds.  Ticks are turned into
 * nanoseconds only when read (weft__tick_to_ns), against a rate measured
 * once per process.  Real time, also under the virtual clock
 * (docs/semantics.md rule 44 moves weft_now only).
 * Thread: any. */
#ifndef WEFT_RUNTIME_BASE_TICK_H
#define WEFT_RUNTIME_BASE_TICK_H

#include <stdint.h>
#include <time.h>

/* The current tick.  Not serializing: it may be read a few instructions
 * early or late, which a duration shown in milliseconds does not see. */
static inline uint64_t weft__tick_now(void)
{
#if defined(__x86_64__)
	return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
	uint64_t v;
	__asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* Nanoseconds in `ticks` ticks.  The first call measures the rate over
 * about 2 ms (on the calling thread; later calls reuse it).  Thread: any;
 * never on a hot path. */
int64_t weft__tick_to_ns(uint64_t ticks);

#endif
