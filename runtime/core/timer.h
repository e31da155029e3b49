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
 * goes through the I/O thread's queue (ioq.h).
 *
 * The virtual clock (weft_config_t.clock, docs/semantics.md rule 44)
 * lives here too: the runtime's time (`vnow`), the count of operations
 * that hold it (I/O, offload calls: weft__timer_hold), the tasks parked in
 * weft_wait_all_tasks_blocked, and the quiescence check the I/O thread
 * runs when the last worker goes to sleep (weft__timer_idle). */
#ifndef WEFT_RUNTIME_CORE_TIMER_H
#define WEFT_RUNTIME_CORE_TIMER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/ioq.h"
#include "core/wheel.h"
#include "weft/time.h"

struct weft_runtime;
struct weft__timed_scope;
struct weft__blocked_waiter;

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
	/* The virtual clock.  `virt` is fixed at init.  `vnow` is the
	 * runtime's time while virt: written only under `lock` by a jump
	 * (the I/O thread), read anywhere (relaxed: a task woken by a jump
	 * is ordered after it by its wake; a task that was not woken may
	 * read the time before the jump, which is a time at which it was
	 * running).  The real fd is never armed while virt. */
	bool virt;
	/* The real clock's "all tasks are asleep" report is on (config
	 * deadlock WEFT_DEADLOCK_REPORT, rule 46): holds are counted and
	 * the quiescence check runs under the real clock too.  Fixed
	 * before any thread starts (runtime.c). */
	bool asleep_check;
	_Atomic int64_t vnow;
	/* Operations in flight that hold the virtual clock (I/O operations,
	 * offload calls, a portal call's hand-over): the clock does not jump
	 * while it is not 0.  Counted only while virt.  seq_cst RMWs and
	 * load: see weft__timer_hold and weft__idle_quiet. */
	atomic_long holds;
	/* Holds ever taken (+1 calls of weft__timer_hold), seq_cst: the
	 * check reads it before its quiet decision and again before it acts
	 * (Q6 in timer.c), so that an operation or root that began after
	 * the decision's reading of `holds` makes it stand down. */
	atomic_ulong hold_epoch;
	/* Tasks parked in weft_wait_all_tasks_blocked: the list under
	 * `lock`, the count written under it and read without it (relaxed:
	 * by a worker going to sleep, ordered after the registration by
	 * the idle lock, see weft__timer_idle). */
	struct weft__blocked_waiter *waiters;
	atomic_int nwaiters;
	/* Registrations ever made in weft_wait_all_tasks_blocked, bumped
	 * under `lock`; the check reads it before its quiet decision and
	 * wakes only the waiters registered before that read (see
	 * timer_wake_waiters).  seq_cst RMW, acquire load. */
	atomic_ulong waiter_seq;
	/* The quiescence check posted to the I/O thread: `check_queued` is
	 * 1 while `check_node` is queued (seq_cst pair with the idle
	 * transition, see weft__timer_idle). */
	atomic_int check_queued;
	struct weft__ioq_node check_node;
	/* A check was requested and not made yet: it runs once the request
	 * queue is empty (weft__timer_quiesce).  I/O thread only. */
	bool check_wanted;
	/* The real clock's "all tasks are asleep" report was printed for
	 * the quiet stretch `reported_gen` (weft__idle_quiet's gen); cleared
	 * by a check that finds the runtime busy (weft__timer_quiesce).  I/O
	 * thread only. */
	bool asleep_reported;
	unsigned long reported_gen;
	/* Outside wakers (rule 46): what is not a task, not an operation in
	 * flight, and may still wake a task later: an open group retained
	 * with weft_group_retain (portals and shutdowns retain theirs), a
	 * hook signal watcher (weft_shutdown_open's).  Counted only while
	 * asleep_check (weft__timer_outside); the real clock's report waits
	 * while it is not 0.  seq_cst RMWs and load, as holds. */
	atomic_long outside;
	/* The report's confirmation (timer.c, "The real clock's report"):
	 * a first quiet check arms it; the report is printed only by a check
	 * at or after confirm_at that sees the same quiet stretch
	 * (confirm_gen) and no hold taken since (confirm_epoch).
	 * `confirm_at` is INT64_MAX when none is pending; written by the I/O
	 * thread under `lock` (timer_rearm_locked arms the fd at it too),
	 * read by it anywhere.  The others: I/O thread only. */
	int64_t confirm_at;
	int confirm; /* TIMER_CONFIRM_* of timer.c */
	unsigned long confirm_gen, confirm_epoch;
} weft__timer_t;

/* Where the virtual clock starts: weft_now() of a runtime created with
 * WEFT_CLOCK_VIRTUAL before anything waited (weft/time.h). */
#define WEFT__VCLOCK_START WEFT_VIRTUAL_EPOCH

/* Creates the timerfd and an empty wheel; virt selects the virtual clock.
 * 0 or a negative errno.
 * Thread: the runtime's creator, before any worker or the I/O thread. */
int weft__timer_init(weft__timer_t *t, bool virt);
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

/* {======================================================= virtual clock */

/* The real monotonic clock (CLOCK_MONOTONIC ns), whatever the runtime's
 * clock: for waits that are not deadlines (an idle worker's spin).
 * Thread: any. */
int64_t weft__timer_real_now(void);
/* The runtime's clock: vnow while virt, else the real clock.  Any
 * thread. */
static inline int64_t weft__timer_now(weft__timer_t *t)
{
	if (__builtin_expect(t->virt, 0))
		/* relaxed: see vnow. */
		return atomic_load_explicit(&t->vnow, memory_order_relaxed);
	return weft__timer_real_now();
}
/* Makes weft_now() on the calling thread read t's clock (t virtual) or
 * the real clock (t NULL, or t real).  Thread: a worker or an offload
 * thread of t's runtime, at its start (NULL at its end). */
void weft__timer_bind_thread(weft__timer_t *t);

/* An operation the virtual clock waits for (docs/semantics.md rule 44)
 * starts (+1) or ends (-1).  A task takes its hold before it parks for
 * the operation and drops it after it resumed, both on a worker, so the
 * count can reach 0 only while a worker is awake (weft__idle_quiet).  No
 * cost but the branch when the clock is real and the asleep report is
 * off (asleep_check).  seq_cst: a portal's
 * foreign thread drops its hold after queueing its task; the check's
 * seq_cst load of holds, which comes before its look at the queues, then
 * sees the task.  Any thread. */
/* The last hold was dropped (weft__timer_hold): a check that found it
 * held stood down, and the thread that dropped it may be a plain one
 * (a root's weft_runtime_run, a portal call, an offload thread) after
 * every worker went to sleep, when no worker will post another: post
 * one, as the last sleeper does (Q7 in timer.c).  Thread: any. */
void weft__timer_hold_released(weft__timer_t *t);

/* An outside waker (see `outside`) appears (+1) or goes (-1).  The +1
 * comes from a running task (an awake worker, which lists itself as
 * sleeping under the idle lock only after it, so the check sees it) or
 * from a holder already counted; the -1 may come from a plain thread or
 * the I/O thread while every worker sleeps, so the drop to 0 posts a
 * check (as weft__timer_hold does).  +1 bumps hold_epoch: a
 * confirmation pending across it starts over.  No cost but the branch
 * when the asleep report is off.  Any thread. */
static inline void weft__timer_outside(weft__timer_t *t, long delta)
{
	if (__builtin_expect(t->asleep_check, 0)) {
		/* seq_cst: as in weft__timer_hold (count, then epoch). */
		long was = atomic_fetch_add_explicit(&t->outside, delta,
			memory_order_seq_cst);
		if (delta > 0)
			atomic_fetch_add_explicit(&t->hold_epoch, 1,
				memory_order_seq_cst);
		else if (was + delta == 0)
			weft__timer_hold_released(t);
	}
}

static inline void weft__timer_hold(weft__timer_t *t, long delta)
{
	if (__builtin_expect(t->virt | t->asleep_check, 0)) {
		/* seq_cst: the count before the epoch (Q6 in timer.c).  A
		 * check reads the epoch, then holds: had the epoch come
		 * first here, the check could read the bumped epoch and the
		 * count before this +1, and act on "nothing holds" without
		 * ever seeing the epoch move. */
		long was = atomic_fetch_add_explicit(&t->holds, delta,
			memory_order_seq_cst);
		if (delta > 0)
			atomic_fetch_add_explicit(&t->hold_epoch, 1,
				memory_order_seq_cst);
		else if (was + delta == 0)
			weft__timer_hold_released(t);
	}
}

/* The last awake worker is going to sleep (it listed itself as the last
 * sleeper, idle.c): posts the quiescence check to the I/O thread if the
 * clock is virtual or a task waits in weft_wait_all_tasks_blocked.
 * Thread: a worker, in its idle loop. */
void weft__timer_idle(struct weft_runtime *rt);
/* Makes the quiescence check if one was requested, unless requests are
 * queued (a deadline not applied yet): then it stays requested for the
 * next call, which the poster's wake-up guarantees.  Thread: the I/O
 * thread, after draining the request queue. */
void weft__timer_quiesce(struct weft_runtime *rt);

/* }======================================================= */

#endif
