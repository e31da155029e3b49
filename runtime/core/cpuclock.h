/* The run-time sampler (cpuclock.c): a clock that the run-time counting
 * of every task and group (core/group.c, "Run time") reads at each switch
 * and join for the price of a load, published by one thread per runtime
 * every weft_config_t.cpu_sample_us.
 *
 * Workers read their own copy of it (weft__worker_t.cpu_now, raised
 * with `now`) with a relaxed load and charge the ticks it moved by since
 * the slice began; a slice within which it did not move costs a load and
 * a compare.  The sampler sleeps
 * for good while every worker sleeps, and the first worker to wake
 * republishes the clock and wakes it (weft__cpuclock_awake).
 * Thread: see each function. */
#ifndef WEFT_RUNTIME_CORE_CPUCLOCK_H
#define WEFT_RUNTIME_CORE_CPUCLOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft_runtime;

/* The sampler's state word (futex): */
enum {
	WEFT__CPUCLOCK_RUN = 0,	   /* publishing every period */
	WEFT__CPUCLOCK_PARKED = 1, /* every worker asleep: until woken */
	WEFT__CPUCLOCK_STOP = 2	   /* the runtime is being destroyed */
};

typedef struct weft__cpuclock {
	/* The last published tick (base/tick.h), only ever raised (CAS),
	 * once a period; the workers cut slices on their copies, and the
	 * dump's parked-since reads it (task.c).  Away from other written
	 * fields (padding, not _Alignas: the runtime is allocated with
	 * malloc's alignment). */
	char pad_before[128];
	_Atomic uint64_t now;
	char pad_after[120];
	/* WEFT__CPUCLOCK_*; any thread, see cpuclock.c for the orders. */
	atomic_uint state;
	int64_t period_ns; /* 0: the sampler is off (never published) */
	pthread_t thread;
	bool started;
} weft__cpuclock_t;

/* Starts the sampler when rt->cfg.cpu_sample_us is not 0; publishes the
 * first tick either way.  0 or a negative errno.  Thread: the creator of
 * rt, before the workers start. */
int weft__cpuclock_start(struct weft_runtime *rt);
/* Stops and joins the sampler (a no-op when it never started).  Thread:
 * the destroyer of rt. */
void weft__cpuclock_stop(struct weft_runtime *rt);

/* The published tick.  relaxed: a sample, ordered with nothing; every
 * value a worker reads is one the clock had, and values only grow.
 * Thread: any. */
static inline uint64_t weft__cpuclock_read(const weft__cpuclock_t *c)
{
	return atomic_load_explicit(&c->now, memory_order_relaxed);
}

/* Publishes the current tick now: raises `now` and every worker's copy
 * (weft__worker_t.cpu_now), never lowering them.  Thread: any, once the
 * workers exist. */
void weft__cpuclock_publish(struct weft_runtime *rt);

/* A worker has left the sleepers list (core/idle.c): if the sampler is
 * parked, publish the current tick and wake it.  Must come after the
 * worker left the list under the idle lock (cpuclock.c, "Parking").
 * Thread: a worker. */
void weft__cpuclock_awake_slow(struct weft_runtime *rt);
static inline void weft__cpuclock_awake(struct weft_runtime *rt,
	weft__cpuclock_t *c)
{
	/* acquire: pairs with the release of the CAS that unparks (see
	 * cpuclock.c, "Parking"). */
	if (atomic_load_explicit(&c->state, memory_order_acquire) ==
		WEFT__CPUCLOCK_PARKED)
		weft__cpuclock_awake_slow(rt);
}

#endif
