/* Seeded schedules: the baton (see baton.h; docs/semantics.md rule 47).
 *
 * Design
 * ------
 * Goal: with weft_config_t.seed (WEFT_SEED) set, the same program with
 * the same seed runs the same interleaving of its tasks, run after run,
 * on N logical workers; another seed gives another interleaving.
 *
 * Approach: the N worker threads still exist, with their TLS, deques,
 * record caches and stack pools, and every task runs the same code as
 * without a seed; but only the worker holding the runtime's one baton
 * runs.  The others wait on `cv`.  A scheduling point is one turn of a
 * worker's loop (sched.c, worker_loop_seeded): take the baton, pick a
 * task as the loop always does (run-next slot, own deque with the yield
 * order of sched.c, the injection queue, then a steal whose victims come
 * from the worker's own seeded generator, which also decides whether the
 * run-next slot's task goes first or behind the deque), run it until it
 * switches out
 * (a seeded worker never switches straight from one fiber to the next:
 * every park, yield and end goes back to the loop), then pass.  The pass
 * draws the next holder from `prng` among the workers that can make
 * progress: every worker when something is stealable (a deque or the
 * injection queue is not empty), else only the workers whose run-next
 * slot is full.  Since exactly one thread runs at a time and every
 * handover is a lock/unlock pair of the idle lock, everything the tasks
 * and the scheduler do is a function of the program, the seed and the
 * inputs from other threads, and nothing else: the deques are never
 * contended, spin locks never spin, the yield order (fifo_mark), the
 * run-next cap, the injection interval and the cooperative budget count
 * the same picks each time, and the record caches and stack pools hand
 * out records in the same order.
 *
 * When no worker can make progress, the holder lets the runtime go quiet:
 * it lists every worker as sleeping (idle.c's nsleeping = nworkers, the
 * quiescence answer of weft__idle_quiet) and gives the baton to nobody,
 * then tells the deadline timer (weft__timer_idle), as the last worker
 * to fall asleep does without a seed.  Work from outside (the I/O
 * thread's batches: a virtual clock's jump, a deadline, a socket; a
 * plain thread's wake or spawn, a root from weft_runtime_run) lands in
 * the injection queue and calls weft__idle_notify, which, seeing every
 * worker listed, calls weft__baton_wake: the next holder is drawn from
 * `prng` there.  Under the virtual clock with no real I/O, no offload
 * call and no foreign thread, the only such arrivals are the jumps and
 * wait_all_tasks_blocked wake-ups, which the I/O thread makes only while
 * the runtime is quiet, in the wheel's order: the whole run is
 * deterministic.  Anything else that arrives from another thread comes
 * in at a point that depends on the OS's timing (outside determinism;
 * listed in ARCHITECTURE.md, "Seeded schedules").
 *
 * Rejected: a scheduler with its own single-threaded run queue for the
 * seeded mode (fewer threads, but another code path to trust: the point
 * of a seeded run is to test the real one); handing the baton at every
 * checkpoint inside a task (a task cannot switch workers while it runs;
 * the interleavings a switch point cannot produce are not ones weft
 * produces either).
 *
 * Invariants
 *   1. At most one worker runs a task or touches scheduler state at a
 *      time: the holder.  (Shutdown aside: a worker that finds work while
 *      `stopping` is set runs it without the baton, as without a seed.)
 *   2. holder, prng, passes and nsleeping of a seeded runtime change only
 *      under the idle lock; nsleeping is nworkers exactly while holder is
 *      WEFT__BATON_NONE, 0 otherwise.
 *   3. The holder goes quiet only after a seq_cst fence that follows its
 *      store of nsleeping and precedes its last look at the injection
 *      queue (the sleeper's half of idle.c's Dekker pair), so a push
 *      from outside either is seen there or sees nsleeping != 0 and
 *      grants the baton (weft__baton_wake).
 *   4. prng is advanced only by a draw that picks a holder: by the
 *      holder at a pass, or by a grant while quiet; the sequence of
 *      draws is therefore the sequence of scheduling points. */
#include <errno.h>

#include "base/alloc.h"
#include "core/baton.h"
#include "core/idle.h"
#include "core/inject.h"
#include "core/sched.h"
#include "core/stack.h"
#include "core/timer.h"
#include "runtime.h"

uint64_t weft__baton_mix(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

int weft__baton_init(struct weft_runtime *rt, uint64_t seed)
{
	weft__baton_t *b = &rt->baton;
	b->on = seed != 0;
	b->holder = WEFT__BATON_NONE;
	b->prng = seed;
	b->passes = 0;
	b->eligible = NULL;
	if (!b->on)
		return 0;
	b->eligible = weft__alloc(rt->nworkers * sizeof *b->eligible);
	if (b->eligible == NULL)
		return -ENOMEM;
	int rc = pthread_cond_init(&b->cv, NULL);
	if (rc != 0) {
		weft__free(b->eligible);
		b->eligible = NULL;
		return -rc;
	}
	/* Quiet from the start (invariant 2): the first task is granted
	 * the baton by its notify.  relaxed: no worker runs yet. */
	atomic_store_explicit(&rt->idle.nsleeping, (int)rt->nworkers,
		memory_order_relaxed);
	return 0;
}

void weft__baton_fini(struct weft_runtime *rt)
{
	weft__baton_t *b = &rt->baton;
	if (!b->on)
		return;
	pthread_cond_destroy(&b->cv);
	weft__free(b->eligible);
	b->eligible = NULL;
}

static bool baton_stopping(struct weft_runtime *rt)
{
	/* acquire: pairs with the seq_cst store in runtime_stop_workers. */
	return atomic_load_explicit(&rt->stopping, memory_order_acquire);
}

/* Something any worker can take: the injection queue or a deque. */
static bool baton_stealable(struct weft_runtime *rt)
{
	if (weft__inject_nonempty(&rt->inject))
		return true;
	for (unsigned i = 0; i < rt->nworkers; i++)
		if (weft__deque_size_approx(&rt->workers[i].deque) != 0)
			return true;
	return false;
}

/* Gives the baton to worker k.  Idle lock held. */
static void baton_grant(struct weft_runtime *rt, unsigned k)
{
	weft__baton_t *b = &rt->baton;
	b->holder = (int)k;
	b->passes++;
	/* relaxed: under the idle lock (invariant 2); lock-free readers
	 * (weft__idle_notify) order it with their fence. */
	atomic_store_explicit(&rt->idle.nsleeping, 0, memory_order_relaxed);
	pthread_cond_broadcast(&b->cv);
}

bool weft__baton_take(weft__worker_t *w)
{
	struct weft_runtime *rt = w->rt;
	weft__baton_t *b = &rt->baton;
	pthread_mutex_lock(&rt->idle.lock);
	for (;;) {
		if (b->holder == (int)w->index)
			break;
		if (baton_stopping(rt)) {
			/* As without a seed: leave once nothing is left. */
			bool work = w->runnext != NULL || baton_stealable(rt);
			pthread_mutex_unlock(&rt->idle.lock);
			return work;
		}
		pthread_cond_wait(&b->cv, &rt->idle.lock);
	}
	pthread_mutex_unlock(&rt->idle.lock);
	return true;
}

void weft__baton_pass(weft__worker_t *w)
{
	struct weft_runtime *rt = w->rt;
	weft__baton_t *b = &rt->baton;
	weft__idle_t *idle = &rt->idle;
	unsigned n = rt->nworkers;
	pthread_mutex_lock(&idle->lock);
	if (b->holder != (int)w->index) {
		/* Only while stopping (invariant 1): w ran without it. */
		pthread_mutex_unlock(&idle->lock);
		return;
	}
	unsigned m = 0;
	bool all = baton_stealable(rt);
	if (!all) {
		/* Only the run-next slots are left: their owners (written by
		 * them while they held the baton, ordered by this lock). */
		for (unsigned i = 0; i < n; i++)
			if (rt->workers[i].runnext != NULL)
				b->eligible[m++] = i;
	}
	if (!all && m == 0) {
		/* Nothing runnable: quiet, unless a push from outside came
		 * (invariant 3).  relaxed: under the lock; the fence orders
		 * it before the look at the queue. */
		atomic_store_explicit(&idle->nsleeping, (int)n,
			memory_order_relaxed);
		idle->quiet_gen++; /* a quiet stretch (idle.h) */
		WEFT__IDLE_FENCE(idle);
		all = weft__inject_nonempty(&rt->inject);
	}
	if (all || m > 0) {
		uint64_t r = weft__baton_mix(&b->prng);
		baton_grant(rt, all ? (unsigned)(r % n) : b->eligible[r % m]);
		pthread_mutex_unlock(&idle->lock);
		return;
	}
	b->holder = WEFT__BATON_NONE;
	pthread_mutex_unlock(&idle->lock);
	/* As an idle worker does before it sleeps: give back the memory of
	 * the stacks a burst of tasks left idle (thread-safe against a
	 * holder granted meanwhile). */
	while (weft__stack_trim(&rt->stacks, 64) > 0)
		;
	/* As the last worker to fall asleep does (idle.c): the quiescence
	 * check of the virtual clock and of weft_wait_all_tasks_blocked. */
	weft__timer_idle(rt);
}

void weft__baton_wake(struct weft_runtime *rt)
{
	weft__baton_t *b = &rt->baton;
	pthread_mutex_lock(&rt->idle.lock);
	/* A notify with nothing queued (a spurious one) draws nothing, so
	 * that only real arrivals advance prng (invariant 4). */
	if (b->holder == WEFT__BATON_NONE && !baton_stopping(rt) &&
		weft__inject_nonempty(&rt->inject))
		baton_grant(rt,
			(unsigned)(weft__baton_mix(&b->prng) % rt->nworkers));
	pthread_mutex_unlock(&rt->idle.lock);
}

void weft__baton_wake_all(struct weft_runtime *rt)
{
	pthread_mutex_lock(&rt->idle.lock);
	pthread_cond_broadcast(&rt->baton.cv);
	pthread_mutex_unlock(&rt->idle.lock);
}
