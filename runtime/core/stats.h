/* Scheduler counters behind weft_runtime_stats (weft/inspect.h): one block
 * per worker, written only by its worker, and a few per-runtime atomics
 * for what threads that are not workers do (see stats.c for the reader).
 *
 * Why _Atomic fields and no read-modify-write: a counter is bumped with a
 * relaxed load and a relaxed store by its one writer, never with a
 * fetch_add (a locked instruction on x86, an exclusive pair or LSE atomic
 * on aarch64, on the spawn, switch and park paths).  On x86_64 and
 * aarch64 a relaxed load or store of an aligned 64-bit word compiles to
 * the same plain mov/ldr/str as a non-atomic one, so the atomics cost
 * nothing; what they buy is that a reader on another thread may load the
 * field at any time without a data race (a torn or undefined read).  The
 * reader's relaxed loads give a weakly consistent snapshot: each counter
 * is a value it really had, but two counters may be from different
 * moments. */
#ifndef WEFT_RUNTIME_CORE_STATS_H
#define WEFT_RUNTIME_CORE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Owner-only writers (the worker), any reader.  The meaning of each field
 * is documented on weft_worker_stats_t (weft/inspect.h), which has the
 * same names. */
typedef struct weft__worker_stats {
	_Atomic uint64_t tasks_run;
	_Atomic uint64_t inline_run;
	_Atomic uint64_t steal_attempts;
	_Atomic uint64_t steals;
	_Atomic uint64_t stolen_extra;
	_Atomic uint64_t parks;
	_Atomic uint64_t wakes_local;
	_Atomic uint64_t wakes_remote;
	_Atomic uint64_t wakes_early;
	_Atomic uint64_t sleeps;
	_Atomic uint64_t sleep_wakeups;
	_Atomic uint64_t inject_pops;
	_Atomic uint64_t spawned;
	_Atomic uint64_t groups;
	_Atomic uint64_t io_submitted;
	/* Nanoseconds awake up to the last sleep, and the real-clock time
	 * of the last wake-up (0 while asleep): a reader adds the current
	 * stretch (stats.c).  Written at sleep and wake-up only, never per
	 * switch. */
	_Atomic uint64_t busy_ns;
	_Atomic int64_t awake_since;
} weft__worker_stats_t;

/* Per runtime: what threads that are not workers count.  Read-modify-
 * writes, but only on paths that already take a lock or a system call
 * (a wake from a plain thread then notifies, a seq_cst fence and maybe a
 * futex wake; the I/O thread adds once per published batch). */
typedef struct weft__runtime_stats {
	atomic_uint_fast64_t spawned;	   /* spawns from non-workers */
	atomic_uint_fast64_t wakes_io;	   /* tasks readied by the I/O thread */
	atomic_uint_fast64_t wakes_thread; /* by any other plain thread */
} weft__runtime_stats_t;

/* Owner only: c += n, as explained at the top. */
static inline void weft__stats_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
		atomic_load_explicit(c, memory_order_relaxed) + n,
		memory_order_relaxed);
}

static inline void weft__stats_inc(_Atomic uint64_t *c)
{
	weft__stats_add(c, 1);
}

#endif
