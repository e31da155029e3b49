/* Idle workers: bounded spinning, sleeping on a futex (or in the poll of
 * the runtime's sockets), and wake-ups that are never lost.
 *
 * Design (after Go's "Worker thread parking/unparking" essay)
 * ---------------------------------------------------------
 * Problem: waking a sleeping thread costs ~23 us on this VM, so workers
 * should not sleep and wake for every small gap; but idle workers must not
 * burn CPU (< 1% idle), and no runnable task may be left while a worker
 * sleeps.
 *
 * Approach: a worker that runs out of work first spins for a bounded time
 * (cfg.spin_us) looking for work, counted in nspinning; at most half of the
 * busy workers spin (at least one).  Then it puts itself on the sleepers
 * list, stops counting as spinning, issues a seq_cst fence, and checks
 * every queue once more before it sleeps on its own futex word.  A
 * producer publishes work, issues a seq_cst fence, then reads nspinning and
 * nsleeping: if nobody spins and somebody sleeps, it takes the spinning
 * token (CAS 0 -> 1) and wakes one sleeper, which starts out spinning.
 * The two fences make it a Dekker pair: either the producer sees the
 * sleeper, or the sleeper's last check sees the work.  The last spinner
 * that finds work wakes one more worker, so a burst spreads out.
 *
 * Housekeeping before sleeping: idle stacks' memory (stack.c) and the
 * pages of task-record chunks nobody needed for a while (records.c,
 * trimming).  When a record trim is due later, the sleep has a timeout
 * (idle_futex_wait_for) and the worker trims on waking, still listed as
 * a sleeper; otherwise it sleeps until woken.
 *
 * Rejected: ck_ec (its own futex backoff starts at 2 ms, and it counts
 * events, not sleepers, so every spawn would pay an atomic increment);
 * one condition variable for all workers (thundering herd on broadcast,
 * lost wake-ups on signal without the recheck protocol anyway).
 *
 * Quiescence (the virtual clock and weft_wait_all_tasks_blocked, see
 * timer.c): the worker that lists itself as the last sleeper tells the
 * deadline timer (weft__timer_idle), whose check on the I/O thread asks
 * weft__idle_quiet.  That answer is taken under `lock`, the lock every
 * change of the sleepers list takes, so while it is held no worker can
 * leave the list and run a task (invariant 4).  The spin before sleeping
 * is measured on the real clock: the virtual one stands still.
 *
 * Seeded runtimes (baton.c) neither spin nor sleep here: their workers
 * wait for the baton.  They keep nsleeping at nworkers exactly while
 * nobody holds it, so weft__idle_quiet answers for them unchanged, and
 * a notify that sees sleepers hands over to weft__baton_wake, which
 * grants the baton under `lock`.
 *
 * Polling sockets (after Go's integrated netpoller): the runtime's
 * sockets wait in one epoll set (io/sock.c), and the workers poll it
 * themselves, so a socket's readiness readies its task on the polling
 * worker's own queue, with no I/O thread in between.  The I/O side
 * installs the poller (`poll`, `poll_interrupt`) before the workers
 * start, unless the runtime is seeded (its I/O thread polls then), and
 * sets `poll_on` when the first socket joins the set; until then none of
 * this costs more than a load and a branch.
 *   - An idle worker polls without blocking before it spins and every
 *     few rounds of its spin, and a busy one at yields and every 61
 *     picks unless a worker is blocked in the poll (sched.c; as the
 *     injection queue is looked at), so a worker full of yielding tasks
 *     still serves its sockets.
 *   - The first worker to sleep while nobody polls takes the `poller`
 *     word (CAS NULL -> itself) and sleeps in the poll, with the trim's
 *     timeout, instead of on its futex; it stays listed as a sleeper
 *     throughout, so quiescence and the Dekker pair above see it as
 *     asleep.  When the poll readies tasks (on its own queues, as any
 *     worker's wakes do) it leaves the list as the last check does, or,
 *     if a waker took it off meanwhile, takes that waker's token.
 *   - A waker that takes the poller off the list must interrupt the poll
 *     rather than the futex: idle_wake stores the wake word and then
 *     reads `poller`, the poller CASes `poller` and then reads the wake
 *     word, all seq_cst, so either the poller sees the word and does not
 *     block, or the waker sees the poller and writes its eventfd.
 *   - Wakers prefer a sleeper that is not the poller (idle_pop_sleeper),
 *     so the sockets keep a watcher while another worker can take the
 *     new work: only when the poller is the one sleeper is it woken.
 * What is left unwatched: every worker running one task that neither
 * yields nor parks; their sockets wait for the next pick, as tasks in
 * the injection queue do.
 *
 * Invariants
 *   1. A worker on the sleepers list has spinning == false.
 *   2. A worker taken off the list by a waker receives the spinning token
 *      (the waker incremented nspinning for it).
 *   3. No worker sleeps while, after its fence, a queue it checks is
 *      non-empty.
 *   4. A worker runs tasks only while it is off the sleepers list, and
 *      it leaves the list only under `lock` (taken off by a waker, or by
 *      itself when its last check or its poll finds work).
 *   5. At most one worker is blocked in the poll (`poller`), and it is
 *      listed as a sleeper.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/spin.h"
#include "core/baton.h"
#include "core/cpuclock.h"
#include "core/idle.h"
#include "core/records.h"
#include "core/sched.h"
#include "core/task.h"
#include "core/timer.h"
#include "runtime.h"
#include "weft/time.h"

int weft__idle_init(weft__idle_t *idle)
{
	int rc = pthread_mutex_init(&idle->lock, NULL);
	if (rc != 0)
		return -rc;
	idle->sleepers = NULL;
	atomic_init(&idle->nsleeping, 0);
	atomic_init(&idle->nspinning, 0);
	atomic_init(&idle->fence_word, 0);
	idle->quiet_gen = 0;
	idle->poll = NULL;
	idle->poll_interrupt = NULL;
	atomic_init(&idle->poll_on, false);
	atomic_init(&idle->poller, NULL);
	return 0;
}

void weft__idle_set_poller(struct weft_runtime *rt,
	int (*poll)(struct weft_runtime *rt, int timeout_ms),
	void (*poll_interrupt)(struct weft_runtime *rt))
{
	rt->idle.poll = poll;
	rt->idle.poll_interrupt = poll_interrupt;
}

/* Whether polling the socket set may find anything. */
static bool idle_polls(weft__idle_t *idle)
{
	/* relaxed: a hint (idle.h). */
	return idle->poll != NULL &&
		atomic_load_explicit(&idle->poll_on, memory_order_relaxed);
}

/* A task on w's own queues (the poll readies tasks there), or NULL. */
static struct weft_task *idle_take_own(weft__worker_t *w)
{
	struct weft_task *t = w->runnext;
	if (t != NULL) {
		w->runnext = NULL;
		return t;
	}
	void *item = weft__deque_pop(&w->deque);
	/* A frame becomes its task (core/frame.c). */
	return item ? weft__sched_item_task(w, item) : NULL;
}

/* Polls the socket set without blocking; a task it readied, or NULL. */
static struct weft_task *idle_poll_now(weft__worker_t *w)
{
	weft__idle_t *idle = &w->rt->idle;
	if (!idle_polls(idle) || idle->poll(w->rt, 0) == 0)
		return NULL;
	return idle_take_own(w);
}

void weft__idle_poll_busy_slow(struct weft_runtime *rt)
{
	weft__idle_t *idle = &rt->idle;
	/* relaxed: a hint; a blocked poller is woken by the kernel. */
	if (idle->poll != NULL &&
		atomic_load_explicit(&idle->poller, memory_order_relaxed) ==
			NULL)
		(void)idle->poll(rt, 0);
}

void weft__idle_fini(weft__idle_t *idle)
{
	pthread_mutex_destroy(&idle->lock);
}

static void idle_futex_wake(atomic_uint *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void idle_futex_wait(atomic_uint *word)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

/* As idle_futex_wait, for at most ns nanoseconds. */
static void idle_futex_wait_for(atomic_uint *word, int64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000),
		.tv_nsec = (long)(ns % 1000000000) };
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
}

/* Removes and returns one sleeper, or NULL. */
static weft__worker_t *idle_pop_sleeper(weft__idle_t *idle)
{
	pthread_mutex_lock(&idle->lock);
	weft__worker_t **p = &idle->sleepers;
	/* A sleeper in its futex rather than the poller, which keeps
	 * watching the sockets (relaxed: a preference, either is right). */
	if (*p != NULL && (*p)->idle_next != NULL &&
		*p == atomic_load_explicit(&idle->poller, memory_order_relaxed))
		p = &(*p)->idle_next;
	weft__worker_t *w = *p;
	if (w) {
		*p = w->idle_next;
		w->idle_listed = false;
		/* relaxed: written under the lock; lock-free readers use it
		 * after their seq_cst fence (the Dekker pairs). */
		atomic_fetch_sub_explicit(&idle->nsleeping, 1,
			memory_order_relaxed);
	}
	pthread_mutex_unlock(&idle->lock);
	return w;
}

static void idle_wake(weft__worker_t *w)
{
	weft__idle_t *idle = &w->rt->idle;
	/* seq_cst: the release pairs with the acquire load in idle_sleep;
	 * and with the load below, a Dekker pair with idle_poll_block's CAS
	 * of `poller` and load of wake_word: either the poller sees the
	 * word, or we see the poller and interrupt its poll. */
	atomic_store_explicit(&w->wake_word, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&idle->poller, memory_order_seq_cst) == w)
		idle->poll_interrupt(w->rt);
	else
		idle_futex_wake(&w->wake_word);
}

/* Sleeps in the socket poll instead of the futex, if w can be the one
 * poller: returns -1 when it cannot (sleep on the futex), 1 when the
 * poll readied tasks on w, 0 otherwise (woken, interrupted, timed out:
 * look at the wake word again).  ns: how long at most, or -1. */
static int idle_poll_block(weft__worker_t *w, int64_t ns)
{
	weft__idle_t *idle = &w->rt->idle;
	if (!idle_polls(idle))
		return -1;
	weft__worker_t *none = NULL;
	/* seq_cst: the poller's half of idle_wake's Dekker pair. */
	if (!atomic_compare_exchange_strong_explicit(&idle->poller, &none, w,
		    memory_order_seq_cst, memory_order_relaxed))
		return -1;
	if (atomic_load_explicit(&w->wake_word, memory_order_seq_cst) == 0) {
		int ms = ns < 0 ? -1 : (int)((ns + 999999) / 1000000);
		(void)idle->poll(w->rt, ms);
	}
	/* release: orders this poll before the next poller's (nothing is
	 * read through it; wakers only compare it). */
	atomic_store_explicit(&idle->poller, NULL, memory_order_release);
	return w->runnext != NULL || weft__deque_size_approx(&w->deque) != 0;
}

void weft__idle_notify(struct weft_runtime *rt)
{
	weft__idle_t *idle = &rt->idle;
	for (;;) {
		/* seq_cst fence: the producer's half of the Dekker pair (the
		 * work was published before this point). */
		WEFT__IDLE_FENCE(idle);
		/* relaxed: ordered by the fence (it pairs with
		 * idle_sleep's). */
		if (atomic_load_explicit(&idle->nspinning,
			    memory_order_relaxed) != 0 ||
			atomic_load_explicit(&idle->nsleeping,
				memory_order_relaxed) == 0)
			return;
		/* Seeded: every worker is listed while nobody holds the
		 * baton (baton.c, invariant 2); the baton is granted there. */
		if (rt->baton.on) {
			weft__baton_wake(rt);
			return;
		}
		int zero = 0;
		/* seq_cst, as every read-modify-write of nspinning: takes
		 * the spinning token against other producers and
		 * spinners. */
		if (!atomic_compare_exchange_strong_explicit(&idle->nspinning,
			    &zero, 1, memory_order_seq_cst,
			    memory_order_relaxed))
			return; /* somebody started spinning: they find it */
		weft__worker_t *w = idle_pop_sleeper(idle);
		if (w != NULL) {
			idle_wake(w);
			return;
		}
		/* Nobody to hand the token to: give it back (seq_cst, as
		 * every read-modify-write of nspinning) and look again.
		 * While we held it, another producer may have seen it and
		 * returned, trusting a spinner to find its work, while the
		 * workers went to sleep: without the second look that work
		 * would wait for the next notification (tools/models/
		 * idle.pml found the interleaving).  The retry ends: the
		 * list was empty under the lock, so a second round finds a
		 * sleeper only if a worker went to sleep meanwhile, and then
		 * wakes it. */
		atomic_fetch_sub_explicit(&idle->nspinning, 1,
			memory_order_seq_cst);
	}
}

void weft__idle_wake_all(struct weft_runtime *rt)
{
	if (rt->baton.on)
		weft__baton_wake_all(rt);
	weft__worker_t *w;
	while ((w = idle_pop_sleeper(&rt->idle)) != NULL) {
		/* relaxed: the token handed to w (invariant 2); idle_wake's
		 * release store publishes it. */
		atomic_fetch_add_explicit(&rt->idle.nspinning, 1,
			memory_order_relaxed);
		idle_wake(w);
	}
}

void weft__idle_stop_spinning(weft__worker_t *w)
{
	if (!w->spinning)
		return;
	w->spinning = false;
	/* seq_cst, as every read-modify-write of nspinning. */
	if (atomic_fetch_sub_explicit(&w->rt->idle.nspinning, 1,
		    memory_order_seq_cst) == 1)
		weft__idle_notify(w->rt);
}

static bool idle_work_visible(struct weft_runtime *rt)
{
	if (weft__inject_nonempty(&rt->inject))
		return true;
	for (unsigned i = 0; i < rt->nworkers; i++)
		if (weft__deque_size_approx(&rt->workers[i].deque) != 0 ||
			weft__par_visible(&rt->workers[i].par))
			return true;
	return false;
}

static bool idle_stopping(struct weft_runtime *rt)
{
	/* acquire: pairs with the seq_cst store in runtime_stop_workers. */
	return atomic_load_explicit(&rt->stopping, memory_order_acquire);
}

/* Busy time (stats.h): the clock is read here, at sleep and wake-up,
 * never per switch.  Relaxed stores by the owner; readers combine the two
 * fields (weft_worker_stats). */
void weft__idle_stats_awake(weft__worker_t *w)
{
	atomic_store_explicit(&w->stats.awake_since, weft__timer_real_now(),
		memory_order_relaxed);
}

static void idle_stats_asleep(weft__worker_t *w)
{
	int64_t since = atomic_load_explicit(&w->stats.awake_since,
		memory_order_relaxed);
	int64_t now = weft__timer_real_now();
	if (since != 0 && now > since)
		weft__stats_add(&w->stats.busy_ns, (uint64_t)(now - since));
	/* relaxed: as every counter; 0 says "asleep" to readers. */
	atomic_store_explicit(&w->stats.awake_since, 0, memory_order_relaxed);
	weft__stats_inc(&w->stats.sleeps);
}

/* Takes w, listed, off the sleepers list.  Under the lock. */
static void idle_unlist(weft__idle_t *idle, weft__worker_t *w)
{
	weft__worker_t **p = &idle->sleepers;
	while (*p != w)
		p = &(*p)->idle_next;
	*p = w->idle_next;
	w->idle_listed = false;
	/* relaxed: under the lock. */
	atomic_fetch_sub_explicit(&idle->nsleeping, 1, memory_order_relaxed);
}

/* Batches of idle stacks whose memory an idle worker releases before it
 * sleeps, re-checking for work between batches. */
#define IDLE_TRIM_BATCH 64

/* Sleeps until woken; returns with w->spinning set (invariant 2) or with
 * nothing changed if work showed up during the last check. */
static void idle_sleep(weft__worker_t *w)
{
	struct weft_runtime *rt = w->rt;
	weft__idle_t *idle = &rt->idle;
	/* Housekeeping belongs here, off the hot path: give back the memory
	 * of the stacks a burst of tasks left idle. */
	while (!idle_work_visible(rt) &&
		weft__stack_trim(&rt->stacks, IDLE_TRIM_BATCH) > 0)
		;
	/* And of the task records' chunks a burst left free and nobody
	 * needed for a while (records.c, trimming); retry: when to look
	 * again, for the timed sleep below. */
	int64_t retry = 0;
	if (!idle_work_visible(rt))
		weft__record_arena_trim(&rt->tasks, &retry);
	if (idle_work_visible(rt))
		return;
	pthread_mutex_lock(&idle->lock);
	w->idle_next = idle->sleepers;
	idle->sleepers = w;
	w->idle_listed = true;
	/* relaxed: under the lock; the fence below orders it before the
	 * last check. */
	bool last = atomic_fetch_add_explicit(&idle->nsleeping, 1,
			    memory_order_relaxed) +
			1 ==
		(int)rt->nworkers;
	idle->quiet_gen += last; /* a quiet stretch begins (idle.h) */
	pthread_mutex_unlock(&idle->lock);
	/* The last one awake: the runtime may be quiescent (timer.c).  The
	 * check takes the lock again, so it sees this listing; if the last
	 * look below finds work, the check finds it too, or finds this
	 * worker off the list again. */
	if (last)
		weft__timer_idle(rt);
	if (w->spinning) {
		w->spinning = false;
		/* seq_cst, as every read-modify-write of nspinning. */
		atomic_fetch_sub_explicit(&idle->nspinning, 1,
			memory_order_seq_cst);
	}
	/* seq_cst fence: the sleeper's half of the Dekker pair. */
	WEFT__IDLE_FENCE(idle);
	if (idle_work_visible(rt) || idle_stopping(rt)) {
		pthread_mutex_lock(&idle->lock);
		bool listed = w->idle_listed;
		if (listed)
			idle_unlist(idle, w);
		pthread_mutex_unlock(&idle->lock);
		if (listed)
			return;
		/* A waker already took us off the list: consume its wake-up
		 * below (it is coming, or here). */
	}
	idle_stats_asleep(w);
	/* acquire: pairs with idle_wake's release store (the token). */
	while (atomic_load_explicit(&w->wake_word, memory_order_acquire) == 0) {
		/* A trim pass may be due at `retry`: sleep until then at
		 * most, and do it still listed as a sleeper (it touches only
		 * the arena, under its lock; a waker that takes us off the
		 * list meanwhile is seen at the loop's test). */
		int64_t left = -1;
		if (retry != 0) {
			left = retry - weft__timer_real_now();
			left = left > 0 ? left : 0;
		}
		int polled = left == 0 ? -1 : idle_poll_block(w, left);
		if (polled > 0) {
			/* Sockets readied tasks here: leave the list, as
			 * when the last check finds work. */
			pthread_mutex_lock(&idle->lock);
			bool listed = w->idle_listed;
			if (listed)
				idle_unlist(idle, w);
			pthread_mutex_unlock(&idle->lock);
			if (listed) {
				weft__idle_stats_awake(w);
				weft__stats_inc(&w->stats.sleep_wakeups);
				return;
			}
			/* A waker took us off the list: its token is ours
			 * (below); wait for its store. */
			while (atomic_load_explicit(&w->wake_word,
				       memory_order_acquire) == 0)
				idle_futex_wait(&w->wake_word);
			break;
		}
		if (polled < 0) {
			if (retry == 0)
				idle_futex_wait(&w->wake_word);
			else if (left > 0)
				idle_futex_wait_for(&w->wake_word, left);
		}
		if (retry != 0 && weft__timer_real_now() >= retry)
			weft__record_arena_trim(&rt->tasks, &retry);
	}
	weft__idle_stats_awake(w);
	weft__stats_inc(&w->stats.sleep_wakeups);
	/* relaxed: only a waker that takes this worker off the list again,
	 * under the lock, stores 1 next. */
	atomic_store_explicit(&w->wake_word, 0, memory_order_relaxed);
	w->spinning = true;
}

bool weft__idle_quiet(struct weft_runtime *rt, long *holds, bool *posted,
	unsigned long *gen)
{
	weft__idle_t *idle = &rt->idle;
	pthread_mutex_lock(&idle->lock);
	/* seq_cst, first: pairs with the seq_cst fetch_sub of a portal's
	 * foreign thread, which drops its hold after queueing its task, so
	 * a 0 read here comes with that task in the look at the queues
	 * below (timer.c, Q3).  Holds taken by tasks are ordered by this
	 * lock anyway: a worker listed itself after its task's last change. */
	*holds = atomic_load_explicit(&rt->timer.holds, memory_order_seq_cst);
	/* acquire: pairs with the release CAS of a poster; a worker posts
	 * (a deadline its task set while the timer's lock was busy) before
	 * it lists itself, which this lock orders before us. */
	*posted = atomic_load_explicit(&rt->ioq.head, memory_order_acquire) !=
		NULL;
	/* Exact: the lock is held. */
	bool quiet = !*posted && weft__idle_all_asleep(rt) &&
		!idle_work_visible(rt);
	*gen = idle->quiet_gen;
	pthread_mutex_unlock(&idle->lock);
	return quiet;
}

bool weft__idle_all_asleep(struct weft_runtime *rt)
{
	/* relaxed: written under the lock; exact when the caller holds it,
	 * a hint otherwise. */
	return atomic_load_explicit(&rt->idle.nsleeping,
		       memory_order_relaxed) == (int)rt->nworkers;
}

void weft__idle_lock(struct weft_runtime *rt)
{
	pthread_mutex_lock(&rt->idle.lock);
}

void weft__idle_unlock(struct weft_runtime *rt)
{
	pthread_mutex_unlock(&rt->idle.lock);
}

struct weft_task *weft__idle_find_or_sleep(weft__worker_t *w)
{
	struct weft_runtime *rt = w->rt;
	weft__idle_t *idle = &rt->idle;
	for (;;) {
		if (idle_stopping(rt) && !idle_work_visible(rt)) {
			weft__idle_stop_spinning(w);
			return NULL;
		}
		if (!w->spinning) {
			/* relaxed: hints for the spinner limit. */
			int spinning = atomic_load_explicit(&idle->nspinning,
				memory_order_relaxed);
			int busy = (int)rt->nworkers -
				atomic_load_explicit(&idle->nsleeping,
					memory_order_relaxed);
			if (2 * spinning < (busy > 1 ? busy : 1)) {
				/* seq_cst, as every RMW of nspinning. */
				atomic_fetch_add_explicit(&idle->nspinning, 1,
					memory_order_seq_cst);
				w->spinning = true;
			}
		}
		if (w->spinning) {
			int64_t until = weft__timer_real_now() +
				(int64_t)rt->cfg.spin_us * 1000;
			unsigned iter = 0;
			do {
				struct weft_task *t = weft__sched_steal(w);
				/* Sockets every few rounds: a system call. */
				if (t == NULL && (iter & 3) == 0)
					t = idle_poll_now(w);
				if (t) {
					weft__idle_stop_spinning(w);
					return t;
				}
				for (int i = 0; i < 32; i++)
					WEFT__CPU_RELAX();
				if ((++iter & 15) == 0)
					sched_yield();
			} while (weft__timer_real_now() < until &&
				!idle_stopping(rt));
		} else {
			struct weft_task *t = weft__sched_steal(w);
			if (t == NULL)
				t = idle_poll_now(w);
			if (t)
				return t;
		}
		idle_sleep(w);
		/* Off the sleepers list again (or never listed): the run-time
		 * sampler may have parked meanwhile (core/cpuclock.c,
		 * "Parking"). */
		weft__cpuclock_awake(rt, &rt->cpuclock);
		/* What a poll in the sleep readied. */
		struct weft_task *t = idle_take_own(w);
		if (t != NULL) {
			weft__idle_stop_spinning(w);
			return t;
		}
	}
}
