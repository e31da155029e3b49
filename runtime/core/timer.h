/* Deadlines: weft_now()'s clock, and the runtime's deadline timer that
 * fires the deadlines of cancel scopes (and so of sleeps and timeouts).
 *
 * One home for everything about a deadline after a scope has set it: the
 * wheel (wheel.h) of armed timed scopes, the lock that guards it, the hint
 * of the earliest deadline that workers read at yields, and the timerfd
 * the I/O thread watches so that deadlines fire while every worker sleeps.
 * The I/O thread polls the fd and calls weft__timer_expire, and applies
 * queued requests between weft__timer_advance and weft__timer_rearm; a
 * worker at a yield calls weft__timer_fire_due; a thread that changes a
 * scope's deadline calls weft__timer_update.  No libuv here: the timerfd is a
 * plain system call, and a request the lock holder cannot apply at once
 * goes through the I/O thread's queue (ioq.h). */
#ifndef WEFT_RUNTIME_CORE_TIMER_H
#define WEFT_RUNTIME_CORE_TIMER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/wheel.h"

struct weft_runtime;
struct weft__timed_scope;

typedef struct weft__timer {
	/* Every access to wheel and armed holds lock. */
	pthread_mutex_t lock;
	weft__wheel_t wheel;
	/* What fd is armed at (INT64_MAX: nothing; INT64_MIN: it fired). */
	int64_t armed;
	/* A lower bound of the earliest deadline (INT64_MAX: none), written
	 * under the lock, read without it as a hint (relaxed: a stale value
	 * only delays a fire to the I/O thread's timerfd, or costs one
	 * trylock). */
	_Atomic int64_t due;
	int fd;	    /* timerfd, CLOCK_MONOTONIC, non-blocking */
	bool ready; /* between init and fini */
} weft__timer_t;

/* Creates the timerfd and an empty wheel.  0 or a negative errno.
 * Thread: the runtime's creator, before any worker or the I/O thread. */
int weft__timer_init(weft__timer_t *t);
/* Drops the wheel's reference of every armed scope, firing nothing, and
 * closes the fd.  Thread: the runtime's destroyer, after the workers and
 * the I/O thread are joined and the I/O queue is drained. */
void weft__timer_fini(weft__timer_t *t);

/* Makes s's timer match its timer_deadline: directly when the lock is
 * free (the deadline is in the wheel before this returns, so a worker can
 * fire it at a yield even while the I/O thread waits for a CPU), else
 * through the I/O thread's queue.  Takes a reference on s while queued or
 * armed.  Any thread, holding s alive for the call. */
void weft__timer_update(struct weft_runtime *rt, struct weft__timed_scope *s);

/* Fires the deadlines that are due, on the calling worker (the woken
 * tasks go to its run-next slot), if the hint says some may be and the
 * lock is free; one relaxed load when no deadline is armed, a clock read
 * when one is.  A task woken by a deadline then runs at the next yield of
 * any worker instead of waiting for the I/O thread to get a CPU.
 * Thread: a worker of the runtime, between tasks. */
void weft__timer_fire_due_slow(weft__timer_t *t);
/* Whether any deadline is armed (a hint, see `due`).  Any thread. */
static inline bool weft__timer_any(weft__timer_t *t)
{
	/* relaxed: a hint (see `due`). */
	return atomic_load_explicit(&t->due, memory_order_relaxed) != INT64_MAX;
}
static inline void weft__timer_fire_due(weft__timer_t *t)
{
	if (weft__timer_any(t))
		weft__timer_fire_due_slow(t);
}

/* The fd for the I/O thread to watch for readability.  Thread: any. */
static inline int weft__timer_fd(const weft__timer_t *t)
{
	return t->fd;
}
/* The fd fired: consume it, fire what is due, re-arm.  Thread: the I/O
 * thread. */
void weft__timer_expire(weft__timer_t *t);
/* Fires what is due without re-arming: brings the wheel's clock (which
 * moves only when timers are processed) up to date before the I/O thread
 * applies queued deadlines.  Thread: the I/O thread. */
void weft__timer_advance(weft__timer_t *t);
/* Re-arms the fd at the wheel's next work and republishes the hint.
 * Thread: the I/O thread, after applying queued deadlines. */
void weft__timer_rearm(weft__timer_t *t);

#endif
