/* What the synchronisation primitive tests share (test_event.c,
 * test_lock.c, test_semaphore.c, test_limiter.c, test_condition.c and
 * test_sync.c for what all five have in common).
 *
 * Concurrent tests run at 1, 2 and 4 workers.  Where a test needs tasks
 * on different workers at the same time, the first weft_worker_count()
 * of them meet in a busy rendezvous first (each spins, without yielding,
 * until all have arrived: only possible if they occupy that many workers
 * at once).  Tests never assert on time: bounded waits only prove
 * liveness, and "a task is parked" is observed through the *_waiting
 * statistics, never guessed with a sleep. */
#ifndef WEFT_TESTS_SYNC_FIXTURE_H
#define WEFT_TESTS_SYNC_FIXTURE_H

#include <stdatomic.h>
#include <stdint.h>

#include "support.h"

#define GIVE_UP (20 * WEFT_SEC)

/* Bounded poll from a task (sleeps 50 us between looks). */
#define WAIT_FOR(cond)                                                         \
	do {                                                                   \
		int64_t give_up_ = weft_now() + GIVE_UP;                       \
		while (!(cond) && weft_now() < give_up_)                       \
			(void)weft_sleep(50 * 1000);                           \
		CHECK(cond);                                                   \
	} while (0)

/* Busy rendezvous of the first `n` tasks to call it (n = the worker
 * count, capped by how many tasks take part). */
struct meet {
	atomic_int arrived;
	atomic_int met;
};

static inline void meet(struct meet *m, int index, int tasks)
{
	int n = (int)weft_worker_count();
	if (n > tasks)
		n = tasks;
	if (index >= n)
		return;
	atomic_fetch_add(&m->arrived, 1);
	int64_t give_up = weft_now() + GIVE_UP;
	while (atomic_load(&m->arrived) < n && weft_now() < give_up)
		;
	if (CHECK(atomic_load(&m->arrived) >= n))
		atomic_fetch_add(&m->met, 1);
}

#endif
