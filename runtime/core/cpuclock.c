/* The run-time sampler: a cheap clock for counting the run time of every
 * task and group (core/group.c, "Run time"; docs/semantics.md rule 51).
 *
 * Problem: the run time of a group's subtree is the sum of its tasks'
 * run slices, and a slice is cut at every switch and at both ends of
 * every join that runs children inline.  Reading the cycle counter there
 * costs about 10 ns on the machines weft is measured on (rdtsc under a
 * hypervisor), against a switch of 4 ns and a fork-join node of about
 * 35 ns: B6 yield became 17% slower and B1 fib 17% slower when every
 * slice was timed that way.
 *
 * Approach: sampling, as the kernel's tick-based process accounting.  One
 * thread per runtime ("weft-cpu") publishes the cycle counter into `now`
 * and into each worker's copy (weft__worker_t.cpu_now, on the worker's
 * own cache line, so a cut needs no second load through the runtime)
 * every cpu_sample_us (1 ms by default).  A worker cuts slices with a
 * relaxed load of its copy instead of a read of the counter: a slice is
 * charged the ticks `now` moved by while it ran, which is 0 for most
 * short slices and a whole period for the one a publication fell into.
 * A publication lands in a slice with a probability proportional to the
 * slice's length, so the expected charge of every slice is its length:
 * summed over many slices the error shrinks (for a subtree with a total
 * T and a period P it is of the order of the square root of T * P, a few
 * percent of T once T is a few hundred periods), and a slice longer than
 * a period is charged its length within a period.  The worker's chain of
 * slices is continuous (each cut starts the next slice from the same
 * value), so whatever a late publication loses to one slice goes to the
 * next one on the same worker: nothing is counted twice and, while the
 * worker runs, nothing is lost.  Subtrees opened with WEFT_GROUP_CPU_TIME
 * read the counter itself at each cut instead (exact, and the old
 * price); group.c and sched.c choose the clock per task (`acct`).
 *
 * Parking.  An idle runtime should not wake a thread a thousand times a
 * second.  When the sampler has seen every worker asleep for
 * CPUCLOCK_QUIET_PERIODS periods in a row, it takes the idle lock
 * (core/idle.c), checks that every worker is still on the sleepers list,
 * and moves `state` from RUN to PARKED under that lock; then it sleeps on
 * `state` until it changes.  A worker leaves the sleepers list only under
 * the same lock (idle.c, invariant 4) and then calls weft__cpuclock_awake:
 * either it left before the sampler's check (which then sees it awake and
 * does not park), or after, and then the lock orders the PARKED store
 * before its load of `state`.  The first worker that sees PARKED
 * publishes the current tick (to every worker's copy), then moves `state`
 * back to RUN (release) and wakes the sampler; another worker that reads
 * RUN from that CAS (acquire) sees that publication too.  So no worker starts a slice from
 * a value published before the runtime went idle, which would charge the
 * whole idle stretch to its first task.  Seeded runtimes (baton.c) hand
 * their workers the baton without the sleepers list, so their sampler
 * never parks.
 *
 * Rejected: a cycle-counter read per cut (above); the coarse
 * CLOCK_MONOTONIC_COARSE (a vDSO call, as dear as rdtsc here); counting
 * time only every n-th switch (it charges the whole interval to the task
 * at the n-th switch: biased toward tasks that switch often); a timer
 * signal per worker (it interrupts system calls in user code).
 *
 * Invariants
 *   1. `now` and every worker's copy only grow (every write is a CAS
 *      that raises it); the copies are set before any worker runs.
 *   2. state is PARKED only while every worker is on the sleepers list or
 *      has not yet checked `state` after leaving it.
 *   3. A worker that leaves the sleepers list reads its copy after it
 *      was republished, if the sampler was parked.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/tick.h"
#include "core/cpuclock.h"
#include "core/idle.h"
#include "core/sched.h"
#include "runtime.h"

/* Periods in a row with every worker asleep before the sampler parks. */
#define CPUCLOCK_QUIET_PERIODS 16

/* Raises *word to v, unless it is already there (invariant 1). */
static void cpuclock_raise(_Atomic uint64_t *word, uint64_t v)
{
	/* relaxed: a sample (see weft__cpuclock_read); the CAS only keeps
	 * invariant 1 against a concurrent publisher. */
	uint64_t cur = atomic_load_explicit(word, memory_order_relaxed);
	while ((int64_t)(v - cur) > 0 &&
		!atomic_compare_exchange_weak_explicit(word, &cur, v,
			memory_order_relaxed, memory_order_relaxed))
		;
}

void weft__cpuclock_publish(struct weft_runtime *rt)
{
	uint64_t t = weft__tick_now();
	cpuclock_raise(&rt->cpuclock.now, t);
	for (unsigned i = 0; i < rt->nworkers; i++)
		cpuclock_raise(&rt->workers[i].cpu_now, t);
}

static void cpuclock_futex_wait(atomic_uint *word, unsigned val, int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000),
		(long)(ns % 1000000000) };
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, ns > 0 ? &ts : NULL,
		NULL, 0);
}

static void cpuclock_futex_wake(atomic_uint *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* RUN -> PARKED, under the idle lock, if every worker is asleep there
 * ("Parking").  False if not, or if the runtime is stopping. */
static bool cpuclock_park(struct weft_runtime *rt)
{
	weft__cpuclock_t *c = &rt->cpuclock;
	unsigned run = WEFT__CPUCLOCK_RUN;
	bool parked = false;
	weft__idle_lock(rt);
	/* relaxed CAS: the idle lock orders it before the load of a
	 * worker that leaves the sleepers list after this. */
	if (weft__idle_all_asleep(rt))
		parked = atomic_compare_exchange_strong_explicit(&c->state,
			&run, WEFT__CPUCLOCK_PARKED, memory_order_relaxed,
			memory_order_relaxed);
	weft__idle_unlock(rt);
	return parked;
}

static void *cpuclock_main(void *arg)
{
	struct weft_runtime *rt = arg;
	weft__cpuclock_t *c = &rt->cpuclock;
	unsigned quiet = 0;
	for (;;) {
		/* acquire: pairs with the release of stop and of unparking
		 * (nothing is read after it but the clock; kept for the
		 * stop's join ordering to be plain). */
		unsigned s = atomic_load_explicit(&c->state,
			memory_order_acquire);
		if (s == WEFT__CPUCLOCK_STOP)
			break;
		if (s == WEFT__CPUCLOCK_PARKED) {
			cpuclock_futex_wait(&c->state, s, 0);
			continue;
		}
		cpuclock_futex_wait(&c->state, s, c->period_ns);
		weft__cpuclock_publish(rt);
		if (rt->cfg.seed != 0)
			continue; /* never parks ("Parking") */
		/* A hint here; decided under the idle lock below. */
		quiet = weft__idle_all_asleep(rt) ? quiet + 1 : 0;
		if (quiet >= CPUCLOCK_QUIET_PERIODS) {
			quiet = 0;
			(void)cpuclock_park(rt);
		}
	}
	return NULL;
}

void weft__cpuclock_awake_slow(struct weft_runtime *rt)
{
	weft__cpuclock_t *c = &rt->cpuclock;
	weft__cpuclock_publish(rt);
	unsigned parked = WEFT__CPUCLOCK_PARKED;
	/* release: the publication above comes with RUN, for a worker
	 * whose acquire load reads it (invariant 3).  relaxed on failure:
	 * another worker unparked it (after publishing), or it stops. */
	if (atomic_compare_exchange_strong_explicit(&c->state, &parked,
		    WEFT__CPUCLOCK_RUN, memory_order_release,
		    memory_order_relaxed))
		cpuclock_futex_wake(&c->state);
}

int weft__cpuclock_start(struct weft_runtime *rt)
{
	weft__cpuclock_t *c = &rt->cpuclock;
	atomic_init(&c->now, 0);
	atomic_init(&c->state, WEFT__CPUCLOCK_RUN);
	c->started = false;
	c->period_ns = (int64_t)rt->cfg.cpu_sample_us * 1000;
	/* The clock and every worker's copy (zeroed with the workers), before
	 * any worker runs: a copy still at 0 would charge a first slice the
	 * counter's whole value. */
	weft__cpuclock_publish(rt);
	if (c->period_ns == 0)
		return 0;
	/* The sampler takes no signal: the program's handlers and the
	 * runtime's own (dump, stall) belong on other threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&c->thread, NULL, cpuclock_main, rt);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return rc == EAGAIN ? -EAGAIN : -rc;
	c->started = true;
	/* Best effort, as for the workers' names (sched.c). */
	pthread_setname_np(c->thread, "weft-cpu");
	return 0;
}

void weft__cpuclock_stop(struct weft_runtime *rt)
{
	weft__cpuclock_t *c = &rt->cpuclock;
	if (!c->started)
		return;
	/* release: pairs with the sampler's acquire load. */
	atomic_store_explicit(&c->state, WEFT__CPUCLOCK_STOP,
		memory_order_release);
	cpuclock_futex_wake(&c->state);
	pthread_join(c->thread, NULL);
	c->started = false;
}
