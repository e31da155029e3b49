/* Synchronisation primitives (include/weft/sync.h): Event, Lock,
 * Semaphore, CapacityLimiter, Condition; issue 3 section 1.
 *
 * Concurrent tests run at 1, 2 and 4 workers.  Where a test needs tasks
 * on different workers at the same time, the first weft_worker_count()
 * of them meet in a busy rendezvous first (each spins, without yielding,
 * until all have arrived: only possible if they occupy that many workers
 * at once).  Tests never assert on time: bounded waits only prove
 * liveness, and "a task is parked" is observed through the *_waiting
 * statistics, never guessed with a sleep. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* {======================================================= helpers */

#define GIVE_UP (20 * WEFT_SEC)

/* Bounded poll from a task (sleeps 50 us between looks). */
#define WAIT_FOR(cond)                                                   \
	do {                                                             \
		int64_t give_up_ = weft_now() + GIVE_UP;                 \
		while (!(cond) && weft_now() < give_up_)                 \
			(void)weft_sleep(50 * 1000);                     \
		CHECK(cond);                                             \
	} while (0)

/* Busy rendezvous of the first `n` tasks to call it (n = the worker
 * count, capped by how many tasks take part). */
struct meet {
	atomic_int arrived;
	atomic_int met;
};

static void meet(struct meet *m, int index, int tasks)
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

/* A small critical-section body whose non-atomic read-modify-write
 * loses updates if two tasks run it at once. */
static void bump(long *counter, atomic_int *inside, atomic_int *max_inside)
{
	int in = atomic_fetch_add(inside, 1) + 1;
	int seen = atomic_load(max_inside);
	while (in > seen && !atomic_compare_exchange_weak(max_inside, &seen, in))
		;
	long v = *counter;
	for (volatile int i = 0; i < 20; i++)
		;
	*counter = v + 1;
	atomic_fetch_sub(inside, 1);
}

/* }======================================================= */

/* {======================================================= Event */

struct ev_test {
	weft_event_t *ev;
	struct meet meet;
	atomic_int entered, woke, late_ok;
	int n;
	pthread_t thread;
};

struct ev_waiter {
	struct ev_test *t;
	int index;
};

static int ev_waiter(void *arg)
{
	struct ev_waiter *w = arg;
	meet(&w->t->meet, w->index, w->t->n);
	atomic_fetch_add(&w->t->entered, 1);
	if (CHECK_EQ(weft_event_wait(w->t->ev), 0))
		atomic_fetch_add(&w->t->woke, 1);
	CHECK(weft_event_is_set(w->t->ev));
	/* Set stays set: a second wait returns at once. */
	CHECK_EQ(weft_event_wait(w->t->ev), 0);
	return 0;
}

static int ev_wake_all_root(void *arg)
{
	struct ev_test *t = arg;
	t->n = 8;
	CHECK_EQ(weft_event_create(&t->ev), 0);
	struct ev_waiter w[8];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < t->n; i++) {
		w[i] = (struct ev_waiter){ t, i };
		CHECK_EQ(weft_group_spawn(g, ev_waiter, &w[i]), 0);
	}
	WAIT_FOR(weft_event_waiting(t->ev) == (size_t)t->n);
	CHECK_EQ(atomic_load(&t->woke), 0);
	CHECK(!weft_event_is_set(t->ev));
	CHECK_EQ(weft_event_set(t->ev), 0);
	CHECK_EQ(weft_event_set(t->ev), 0); /* idempotent */
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&t->woke), t->n);
	CHECK_EQ(weft_event_waiting(t->ev), 0);
	CHECK_EQ(weft_event_destroy(t->ev), 0);
	return 0;
}

static void test_sync__event_set_wakes_every_waiter_once_across_workers(
	void **state)
{
	struct ev_test t = { 0 };
	weft_test_root(state, ev_wake_all_root, &t);
	assert_int_equal(atomic_load(&t.woke), 8);
	assert_int_equal(atomic_load(&t.meet.met),
		WEFT_TEST_WORKERS(state) < 8 ? WEFT_TEST_WORKERS(state) : 8);
}

static int ev_set_first_root(void *arg)
{
	(void)arg;
	weft_event_t *ev;
	CHECK_EQ(weft_event_create(&ev), 0);
	CHECK_EQ(weft_event_is_set(ev), 0);
	CHECK_EQ(weft_event_set(ev), 0);
	CHECK_EQ(weft_event_is_set(ev), 1);
	CHECK_EQ(weft_event_wait(ev), 0);
	CHECK_EQ(weft_event_destroy(ev), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, event_wait_after_set_returns_at_once,
	ev_set_first_root, NULL)

static void *ev_plain_setter(void *arg)
{
	struct ev_test *t = arg;
	/* A plain thread: poll until every waiter is parked, then set. */
	int64_t give_up = weft_now() + GIVE_UP;
	while (weft_event_waiting(t->ev) < (size_t)t->n && weft_now() < give_up)
		;
	weft_event_set(t->ev);
	return NULL;
}

static int ev_plain_root(void *arg)
{
	struct ev_test *t = arg;
	t->n = 4;
	CHECK_EQ(weft_event_create(&t->ev), 0);
	struct ev_waiter w[4];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < t->n; i++) {
		w[i] = (struct ev_waiter){ t, i };
		CHECK_EQ(weft_group_spawn(g, ev_waiter, &w[i]), 0);
	}
	CHECK_EQ(pthread_create(&t->thread, NULL, ev_plain_setter, t), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* The setter may still be readying a task of this runtime: join it
	 * before the runtime can be destroyed.  (Blocks this worker
	 * briefly; the setter needs no worker to finish.) */
	pthread_join(t->thread, NULL);
	CHECK_EQ(weft_event_destroy(t->ev), 0);
	return 0;
}

static void test_sync__event_set_from_a_plain_thread_wakes_waiters(
	void **state)
{
	struct ev_test t = { 0 };
	weft_test_root(state, ev_plain_root, &t);
	assert_int_equal(atomic_load(&t.woke), 4);
}

static int ev_busy_root(void *arg)
{
	struct ev_test *t = arg;
	t->n = 1;
	CHECK_EQ(weft_event_create(&t->ev), 0);
	struct ev_waiter w = { t, 0 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, ev_waiter, &w), 0);
	WAIT_FOR(weft_event_waiting(t->ev) == 1);
	CHECK_EQ(weft_event_destroy(t->ev), -EBUSY);
	CHECK_EQ(weft_event_set(t->ev), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(t->ev), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, event_destroy_with_a_waiter_is_ebusy,
	ev_busy_root, &(struct ev_test){ 0 })

/* }======================================================= */

/* {======================================================= Lock */

struct lock_test {
	weft_lock_t *lock;
	struct meet meet;
	long counter;
	atomic_int inside, max_inside;
	int tasks;
	long iters;
	/* FIFO test */
	int order[16];
	int norder;
	atomic_int step;
};

struct lock_arg {
	struct lock_test *t;
	int index;
};

static int lock_bumper(void *arg)
{
	struct lock_arg *a = arg;
	struct lock_test *t = a->t;
	meet(&t->meet, a->index, t->tasks);
	for (long i = 0; i < t->iters; i++) {
		if (!CHECK_EQ(weft_lock_acquire(t->lock), 0))
			return -EIO;
		CHECK(weft_lock_held(t->lock));
		bump(&t->counter, &t->inside, &t->max_inside);
		CHECK_EQ(weft_lock_release(t->lock), 0);
		if (i % 16 == 0)
			CHECK_EQ(weft_yield(), 0);
	}
	return 0;
}

static int lock_excl_root(void *arg)
{
	struct lock_test *t = arg;
	t->tasks = 8;
	t->iters = weft_test_scale(4000);
	CHECK_EQ(weft_lock_create(&t->lock), 0);
	struct lock_arg a[8];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < t->tasks; i++) {
		a[i] = (struct lock_arg){ t, i };
		CHECK_EQ(weft_group_spawn(g, lock_bumper, &a[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_lock_locked(t->lock), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), 0);
	return 0;
}

static void test_sync__lock_excludes_tasks_on_all_workers(void **state)
{
	struct lock_test t = { 0 };
	weft_test_root(state, lock_excl_root, &t);
	assert_int_equal(t.counter, (long)t.tasks * t.iters);
	assert_int_equal(atomic_load(&t.max_inside), 1);
	unsigned w = WEFT_TEST_WORKERS(state);
	assert_int_equal(atomic_load(&t.meet.met), w < 8 ? w : 8);
}

static int lock_fifo_waiter(void *arg)
{
	struct lock_arg *a = arg;
	struct lock_test *t = a->t;
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	t->order[t->norder++] = a->index; /* under the lock */
	CHECK_EQ(weft_lock_release(t->lock), 0);
	return 0;
}

static int lock_fifo_root(void *arg)
{
	struct lock_test *t = arg;
	enum { K = 6 };
	CHECK_EQ(weft_lock_create(&t->lock), 0);
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	struct lock_arg a[K];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	/* Queue the waiters one at a time, so their arrival order is known. */
	for (int i = 0; i < K; i++) {
		a[i] = (struct lock_arg){ t, i };
		CHECK_EQ(weft_group_spawn(g, lock_fifo_waiter, &a[i]), 0);
		WAIT_FOR(weft_lock_waiting(t->lock) == (size_t)i + 1);
	}
	CHECK_EQ(weft_lock_release(t->lock), 0);
	/* Hand-off: the lock went straight to waiter 0, so a task that comes
	 * later cannot take it, even though its holder may not run yet. */
	CHECK_EQ(weft_lock_held(t->lock), 0);
	CHECK_EQ(weft_lock_try_acquire(t->lock), -EAGAIN);
	/* And a blocking acquire queues behind the others. */
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	t->order[t->norder++] = K;
	CHECK_EQ(weft_lock_release(t->lock), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), 0);
	return 0;
}

static void test_sync__lock_hands_off_to_waiters_in_fifo_order(void **state)
{
	struct lock_test t = { 0 };
	weft_test_root(state, lock_fifo_root, &t);
	assert_int_equal(t.norder, 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(t.order[i], i);
}

static int lock_hold_until_step(void *arg)
{
	struct lock_test *t = arg;
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	atomic_store(&t->step, 1);
	int64_t give_up = weft_now() + GIVE_UP;
	while (atomic_load(&t->step) != 2 && weft_now() < give_up)
		(void)weft_sleep(50 * 1000);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	return 0;
}

static int lock_misuse_root(void *arg)
{
	struct lock_test *t = arg;
	CHECK_EQ(weft_lock_create(&t->lock), 0);
	/* Releasing a free lock. */
	CHECK_EQ(weft_lock_release(t->lock), WEFT_EMISUSE);
	/* Double acquire is reported, not a deadlock. */
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_lock_acquire(t->lock), WEFT_EMISUSE);
	CHECK_EQ(weft_lock_try_acquire(t->lock), WEFT_EMISUSE);
	CHECK_EQ(weft_lock_held(t->lock), 1);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	CHECK_EQ(weft_lock_release(t->lock), WEFT_EMISUSE);
	/* Releasing a lock another task holds changes nothing. */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, lock_hold_until_step, t), 0);
	WAIT_FOR(atomic_load(&t->step) == 1);
	CHECK_EQ(weft_lock_locked(t->lock), 1);
	CHECK_EQ(weft_lock_held(t->lock), 0);
	CHECK_EQ(weft_lock_release(t->lock), WEFT_EMISUSE);
	CHECK_EQ(weft_lock_locked(t->lock), 1);
	CHECK_EQ(weft_lock_destroy(t->lock), -EBUSY);
	atomic_store(&t->step, 2);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_lock_locked(t->lock), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, lock_release_by_non_owner_and_double_acquire_are_misuse,
	lock_misuse_root, &(struct lock_test){ 0 })

static int lock_try_root(void *arg)
{
	struct lock_test *t = arg;
	CHECK_EQ(weft_lock_create(&t->lock), 0);
	CHECK_EQ(weft_lock_try_acquire(t->lock), 0);
	CHECK_EQ(weft_lock_held(t->lock), 1);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, lock_hold_until_step, t), 0);
	WAIT_FOR(atomic_load(&t->step) == 1);
	CHECK_EQ(weft_lock_try_acquire(t->lock), -EAGAIN);
	CHECK_EQ(weft_lock_held(t->lock), 0);
	atomic_store(&t->step, 2);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_lock_try_acquire(t->lock), 0);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, lock_try_acquire_takes_only_a_free_lock,
	lock_try_root, &(struct lock_test){ 0 })

static int lock_waiter_counted(void *arg)
{
	struct lock_test *t = arg;
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	return 0;
}

static int lock_busy_root(void *arg)
{
	struct lock_test *t = arg;
	CHECK_EQ(weft_lock_create(&t->lock), 0);
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), -EBUSY);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, lock_waiter_counted, t), 0);
	WAIT_FOR(weft_lock_waiting(t->lock) == 1);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	/* Handed to the waiter, which may not have run yet: still busy
	 * until it has released. */
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, lock_destroy_while_held_is_ebusy,
	lock_busy_root, &(struct lock_test){ 0 })

/* }======================================================= */

/* {======================================================= Semaphore */

struct sem_test {
	weft_semaphore_t *sem;
	atomic_int got;
	pthread_t thread;
	int order[8];
	int norder;
	atomic_int norder_atomic;
};

struct sem_arg {
	struct sem_test *t;
	int index;
};

static int sem_bound_root(void *arg)
{
	(void)arg;
	weft_semaphore_t *s;
	CHECK_EQ(weft_semaphore_create(&s, 3, 2), -EINVAL);
	CHECK_EQ(weft_semaphore_create(&s, 1, 2), 0);
	CHECK_EQ(weft_semaphore_value(s), 1);
	CHECK_EQ(weft_semaphore_release(s), 0);
	CHECK_EQ(weft_semaphore_value(s), 2);
	/* Beyond the bound: misuse, and nothing changed. */
	CHECK_EQ(weft_semaphore_release(s), WEFT_EMISUSE);
	CHECK_EQ(weft_semaphore_value(s), 2);
	CHECK_EQ(weft_semaphore_acquire(s), 0);
	CHECK_EQ(weft_semaphore_acquire(s), 0);
	CHECK_EQ(weft_semaphore_value(s), 0);
	CHECK_EQ(weft_semaphore_try_acquire(s), -EAGAIN);
	CHECK_EQ(weft_semaphore_value(s), 0);
	CHECK_EQ(weft_semaphore_destroy(s), 0);
	/* max_value 0: no bound. */
	CHECK_EQ(weft_semaphore_create(&s, 0, 0), 0);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(weft_semaphore_release(s), 0);
	CHECK_EQ(weft_semaphore_value(s), 100);
	CHECK_EQ(weft_semaphore_destroy(s), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, semaphore_release_beyond_its_bound_is_misuse,
	sem_bound_root, NULL)

static int sem_fifo_waiter(void *arg)
{
	struct sem_arg *a = arg;
	CHECK_EQ(weft_semaphore_acquire(a->t->sem), 0);
	int i = atomic_fetch_add(&a->t->norder_atomic, 1);
	a->t->order[i] = a->index;
	atomic_fetch_add(&a->t->got, 1);
	return 0;
}

static void *sem_plain_releaser(void *arg)
{
	struct sem_test *t = arg;
	/* One release per waiter, each after the previous was served: the
	 * grant order then shows in t->order. */
	for (int i = 0; i < 4; i++) {
		int64_t give_up = weft_now() + GIVE_UP;
		while (atomic_load(&t->got) < i && weft_now() < give_up)
			;
		weft_semaphore_release(t->sem);
	}
	return NULL;
}

static int sem_plain_root(void *arg)
{
	struct sem_test *t = arg;
	CHECK_EQ(weft_semaphore_create(&t->sem, 0, 0), 0);
	struct sem_arg a[4];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct sem_arg){ t, i };
		CHECK_EQ(weft_group_spawn(g, sem_fifo_waiter, &a[i]), 0);
		WAIT_FOR(weft_semaphore_waiting(t->sem) == (size_t)i + 1);
	}
	CHECK_EQ(weft_semaphore_destroy(t->sem), -EBUSY);
	CHECK_EQ(pthread_create(&t->thread, NULL, sem_plain_releaser, t), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	pthread_join(t->thread, NULL); /* as in ev_plain_root */
	CHECK_EQ(weft_semaphore_value(t->sem), 0);
	CHECK_EQ(weft_semaphore_destroy(t->sem), 0);
	return 0;
}

static void test_sync__semaphore_release_from_a_plain_thread_wakes_in_fifo_order(
	void **state)
{
	struct sem_test t = { 0 };
	weft_test_root(state, sem_plain_root, &t);
	assert_int_equal(atomic_load(&t.got), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(t.order[i], i);
}

struct sem_limit {
	weft_semaphore_t *sem;
	struct meet meet;
	atomic_int inside, max_inside;
	atomic_long rounds;
	long iters;
	int tasks;
};

struct sem_limit_arg {
	struct sem_limit *t;
	int index;
};

static int sem_limit_user(void *arg)
{
	struct sem_limit_arg *a = arg;
	struct sem_limit *t = a->t;
	meet(&t->meet, a->index, t->tasks);
	for (long i = 0; i < t->iters; i++) {
		CHECK_EQ(weft_semaphore_acquire(t->sem), 0);
		int in = atomic_fetch_add(&t->inside, 1) + 1;
		int seen = atomic_load(&t->max_inside);
		while (in > seen &&
			!atomic_compare_exchange_weak(&t->max_inside, &seen, in))
			;
		CHECK(in <= 2);
		CHECK_EQ(weft_yield(), 0);
		atomic_fetch_sub(&t->inside, 1);
		atomic_fetch_add(&t->rounds, 1);
		CHECK_EQ(weft_semaphore_release(t->sem), 0);
	}
	return 0;
}

static int sem_limit_root(void *arg)
{
	struct sem_limit *t = arg;
	t->tasks = 6;
	t->iters = weft_test_scale(1000);
	CHECK_EQ(weft_semaphore_create(&t->sem, 2, 2), 0);
	struct sem_limit_arg a[6];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < t->tasks; i++) {
		a[i] = (struct sem_limit_arg){ t, i };
		CHECK_EQ(weft_group_spawn(g, sem_limit_user, &a[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_semaphore_value(t->sem), 2);
	CHECK_EQ(weft_semaphore_destroy(t->sem), 0);
	return 0;
}

static void test_sync__semaphore_admits_at_most_its_value_at_once(
	void **state)
{
	struct sem_limit t = { 0 };
	weft_test_root(state, sem_limit_root, &t);
	assert_int_equal(atomic_load(&t.rounds), (long)t.tasks * t.iters);
	assert_true(atomic_load(&t.max_inside) <= 2);
}

/* }======================================================= */

/* {======================================================= CapacityLimiter */

struct lim_test {
	weft_limiter_t *lim;
	atomic_int got, released;
	atomic_int go;
};

static int lim_rules_root(void *arg)
{
	(void)arg;
	weft_limiter_t *l;
	CHECK_EQ(weft_limiter_create(&l, 0), -EINVAL);
	CHECK_EQ(weft_limiter_create(&l, 2), 0);
	/* The task as borrower. */
	CHECK_EQ(weft_limiter_release(l), WEFT_EMISUSE);
	CHECK_EQ(weft_limiter_acquire(l), 0);
	CHECK_EQ(weft_limiter_acquire(l), WEFT_EMISUSE);
	CHECK_EQ(weft_limiter_try_acquire(l), WEFT_EMISUSE);
	/* Explicit borrowers. */
	int a, b;
	CHECK_EQ(weft_limiter_release_on_behalf(l, &a), WEFT_EMISUSE);
	CHECK_EQ(weft_limiter_acquire_on_behalf(l, &a), 0);
	CHECK_EQ(weft_limiter_acquire_on_behalf(l, &a), WEFT_EMISUSE);
	CHECK_EQ(weft_limiter_try_acquire_on_behalf(l, &b), -EAGAIN);
	weft_limiter_stats_t st;
	CHECK_EQ(weft_limiter_stats(l, &st), 0);
	CHECK_EQ(st.total, 2);
	CHECK_EQ(st.borrowed, 2);
	CHECK_EQ(st.available, 0);
	CHECK_EQ(st.waiting, 0);
	CHECK_EQ(weft_limiter_release_on_behalf(l, &b), WEFT_EMISUSE);
	CHECK_EQ(weft_limiter_destroy(l), -EBUSY);
	CHECK_EQ(weft_limiter_release_on_behalf(l, &a), 0);
	CHECK_EQ(weft_limiter_release_on_behalf(l, &a), WEFT_EMISUSE);
	CHECK_EQ(weft_limiter_try_acquire_on_behalf(l, &b), 0);
	CHECK_EQ(weft_limiter_release_on_behalf(l, &b), 0);
	CHECK_EQ(weft_limiter_release(l), 0);
	CHECK_EQ(weft_limiter_release(l), WEFT_EMISUSE);
	CHECK_EQ(weft_limiter_stats(l, &st), 0);
	CHECK_EQ(st.borrowed, 0);
	CHECK_EQ(st.available, 2);
	CHECK_EQ(weft_limiter_destroy(l), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, limiter_borrower_holds_one_token_and_only_it_releases,
	lim_rules_root, NULL)

static int lim_waiter(void *arg)
{
	struct lim_test *t = arg;
	CHECK_EQ(weft_limiter_acquire(t->lim), 0);
	atomic_fetch_add(&t->got, 1);
	int64_t give_up = weft_now() + GIVE_UP;
	while (!atomic_load(&t->go) && weft_now() < give_up)
		(void)weft_sleep(50 * 1000);
	CHECK_EQ(weft_limiter_release(t->lim), 0);
	atomic_fetch_add(&t->released, 1);
	return 0;
}

static int lim_raise_root(void *arg)
{
	struct lim_test *t = arg;
	CHECK_EQ(weft_limiter_create(&t->lim, 1), 0);
	CHECK_EQ(weft_limiter_acquire(t->lim), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, lim_waiter, t), 0);
	weft_limiter_stats_t st;
	WAIT_FOR(weft_limiter_stats(t->lim, &st) == 0 && st.waiting == 3);
	CHECK_EQ(atomic_load(&t->got), 0);
	/* Raising the total grants the new tokens at once. */
	CHECK_EQ(weft_limiter_set_total(t->lim, 3), 0);
	CHECK_EQ(weft_limiter_stats(t->lim, &st), 0);
	CHECK_EQ(st.borrowed, 3);
	CHECK_EQ(st.waiting, 1);
	WAIT_FOR(atomic_load(&t->got) == 2);
	CHECK_EQ(weft_limiter_set_total(t->lim, 4), 0);
	WAIT_FOR(atomic_load(&t->got) == 3);
	CHECK_EQ(weft_limiter_stats(t->lim, &st), 0);
	CHECK_EQ(st.borrowed, 4);
	CHECK_EQ(st.available, 0);
	CHECK_EQ(weft_limiter_release(t->lim), 0);
	atomic_store(&t->go, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_limiter_destroy(t->lim), 0);
	return 0;
}

static void test_sync__limiter_raising_the_total_wakes_waiters(void **state)
{
	struct lim_test t = { 0 };
	weft_test_root(state, lim_raise_root, &t);
	assert_int_equal(atomic_load(&t.got), 3);
}

static int lim_lower_root(void *arg)
{
	struct lim_test *t = arg;
	int b[3];
	CHECK_EQ(weft_limiter_create(&t->lim, 3), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_limiter_acquire_on_behalf(t->lim, &b[i]), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, lim_waiter, t), 0);
	weft_limiter_stats_t st;
	WAIT_FOR(weft_limiter_stats(t->lim, &st) == 0 && st.waiting == 1);
	/* Lowering below borrowed takes nothing back... */
	CHECK_EQ(weft_limiter_set_total(t->lim, 1), 0);
	CHECK_EQ(weft_limiter_stats(t->lim, &st), 0);
	CHECK_EQ(st.total, 1);
	CHECK_EQ(st.borrowed, 3);
	CHECK_EQ(st.available, 0);
	/* ...and stops grants until borrowed < total again. */
	CHECK_EQ(weft_limiter_release_on_behalf(t->lim, &b[0]), 0);
	CHECK_EQ(weft_limiter_release_on_behalf(t->lim, &b[1]), 0);
	CHECK_EQ(weft_limiter_stats(t->lim, &st), 0);
	CHECK_EQ(st.borrowed, 1);
	CHECK_EQ(st.waiting, 1);
	CHECK_EQ(atomic_load(&t->got), 0);
	CHECK_EQ(weft_limiter_release_on_behalf(t->lim, &b[2]), 0);
	WAIT_FOR(atomic_load(&t->got) == 1);
	atomic_store(&t->go, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_limiter_destroy(t->lim), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, limiter_lowering_the_total_only_stops_new_grants,
	lim_lower_root, &(struct lim_test){ 0 })

static void test_sync__limiter_tracks_many_borrowers(void **state)
{
	(void)state;
	/* Plain thread: the table grows, finds duplicates and deletes
	 * correctly across many probe runs. */
	enum { N = 3000 };
	static char borrower[N];
	weft_limiter_t *l;
	assert_int_equal(weft_limiter_create(&l, N), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(weft_limiter_try_acquire_on_behalf(l,
			&borrower[i]), 0);
	for (int i = 0; i < N; i += 7)
		assert_int_equal(weft_limiter_try_acquire_on_behalf(l,
			&borrower[i]), WEFT_EMISUSE);
	/* Release in a scattered order, checking each is still known. */
	for (int k = 0; k < N; k++) {
		int i = (int)(((long)k * 1237) % N);
		assert_int_equal(weft_limiter_release_on_behalf(l,
			&borrower[i]), 0);
		assert_int_equal(weft_limiter_release_on_behalf(l,
			&borrower[i]), WEFT_EMISUSE);
	}
	weft_limiter_stats_t st;
	assert_int_equal(weft_limiter_stats(l, &st), 0);
	assert_int_equal(st.borrowed, 0);
	assert_int_equal(weft_limiter_destroy(l), 0);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= Condition */

struct cond_test {
	weft_condition_t *cond;
	weft_lock_t *lock;
	int ready;        /* under the lock */
	int consumed;     /* under the lock */
	atomic_int woke, released_flag, held_after;
	atomic_int rc;
	struct meet meet;
	int n;
};

struct cond_arg {
	struct cond_test *t;
	int index;
};

/* Waits until ready > 0 and consumes one unit. */
static int cond_consumer(void *arg)
{
	struct cond_arg *a = arg;
	struct cond_test *t = a->t;
	meet(&t->meet, a->index, t->n);
	weft_lock_t *l = weft_condition_lock(t->cond);
	CHECK_EQ(weft_lock_acquire(l), 0);
	while (t->ready == 0) {
		if (!CHECK_EQ(weft_condition_wait(t->cond), 0))
			break;
		CHECK(weft_lock_held(l));
	}
	t->ready--;
	t->consumed++;
	CHECK_EQ(weft_lock_release(l), 0);
	atomic_fetch_add(&t->woke, 1);
	return 0;
}

static int cond_notify_root(void *arg)
{
	struct cond_test *t = arg;
	t->n = 5;
	CHECK_EQ(weft_condition_create(&t->cond, NULL), 0);
	weft_lock_t *l = weft_condition_lock(t->cond);
	CHECK(l != NULL);
	struct cond_arg a[5];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < t->n; i++) {
		a[i] = (struct cond_arg){ t, i };
		CHECK_EQ(weft_group_spawn(g, cond_consumer, &a[i]), 0);
	}
	WAIT_FOR(weft_condition_waiting(t->cond) == 5);
	CHECK_EQ(weft_condition_destroy(t->cond), -EBUSY);
	/* notify(1) wakes exactly one. */
	CHECK_EQ(weft_lock_acquire(l), 0);
	t->ready = 1;
	CHECK_EQ(weft_condition_notify(t->cond, 1), 1);
	CHECK_EQ(weft_condition_waiting(t->cond), 4);
	CHECK_EQ(weft_lock_release(l), 0);
	WAIT_FOR(atomic_load(&t->woke) == 1);
	/* notify(2) wakes two. */
	CHECK_EQ(weft_lock_acquire(l), 0);
	t->ready = 2;
	CHECK_EQ(weft_condition_notify(t->cond, 2), 2);
	CHECK_EQ(weft_lock_release(l), 0);
	WAIT_FOR(atomic_load(&t->woke) == 3);
	CHECK_EQ(weft_condition_waiting(t->cond), 2);
	/* notify_all wakes the rest. */
	CHECK_EQ(weft_lock_acquire(l), 0);
	t->ready = 2;
	CHECK_EQ(weft_condition_notify_all(t->cond), 2);
	CHECK_EQ(weft_condition_notify_all(t->cond), 0);
	CHECK_EQ(weft_lock_release(l), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(t->consumed, 5);
	CHECK_EQ(weft_condition_destroy(t->cond), 0);
	return 0;
}

static void test_sync__condition_notify_wakes_n_and_notify_all_wakes_all(
	void **state)
{
	struct cond_test t = { 0 };
	weft_test_root(state, cond_notify_root, &t);
	assert_int_equal(atomic_load(&t.woke), 5);
}

static int cond_misuse_root(void *arg)
{
	(void)arg;
	weft_lock_t *l;
	weft_condition_t *c;
	CHECK_EQ(weft_lock_create(&l), 0);
	CHECK_EQ(weft_condition_create(&c, l), 0);
	CHECK(weft_condition_lock(c) == l);
	CHECK_EQ(weft_condition_wait(c), WEFT_EMISUSE);
	CHECK_EQ(weft_condition_notify(c, 1), WEFT_EMISUSE);
	CHECK_EQ(weft_condition_notify_all(c), WEFT_EMISUSE);
	CHECK_EQ(weft_lock_acquire(l), 0);
	CHECK_EQ(weft_condition_notify(c, 1), 0);
	CHECK_EQ(weft_lock_release(l), 0);
	CHECK_EQ(weft_condition_destroy(c), 0);
	CHECK_EQ(weft_lock_destroy(l), 0);
	/* An own lock held keeps the condition busy. */
	CHECK_EQ(weft_condition_create(&c, NULL), 0);
	CHECK_EQ(weft_lock_acquire(weft_condition_lock(c)), 0);
	CHECK_EQ(weft_condition_destroy(c), -EBUSY);
	CHECK_EQ(weft_lock_release(weft_condition_lock(c)), 0);
	CHECK_EQ(weft_condition_destroy(c), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, condition_wait_and_notify_without_the_lock_are_misuse,
	cond_misuse_root, NULL)

static int cond_cancelled_waiter(void *arg)
{
	struct cond_test *t = arg;
	weft_lock_t *l = weft_condition_lock(t->cond);
	CHECK_EQ(weft_lock_acquire(l), 0);
	int rc = weft_condition_wait(t->cond);
	atomic_store(&t->rc, rc);
	/* Cancelled, and yet the lock is held - only after its holder let
	 * go of it. */
	atomic_store(&t->held_after, weft_lock_held(l));
	CHECK_EQ(atomic_load(&t->released_flag), 1);
	CHECK_EQ(weft_lock_release(l), 0);
	return rc;
}

static int cond_cancel_root(void *arg)
{
	struct cond_test *t = arg;
	CHECK_EQ(weft_condition_create(&t->cond, NULL), 0);
	weft_lock_t *l = weft_condition_lock(t->cond);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, cond_cancelled_waiter, t);
	WAIT_FOR(weft_condition_waiting(t->cond) == 1);
	/* Take the lock, then cancel the waiter: its cancelled wait must
	 * queue for the lock behind us. */
	CHECK_EQ(weft_lock_acquire(l), 0);
	CHECK_EQ(weft_task_cancel(h), 0);
	WAIT_FOR(weft_condition_waiting(t->cond) == 0 &&
		weft_lock_waiting(l) == 1);
	atomic_store(&t->released_flag, 1);
	CHECK_EQ(weft_lock_release(l), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_task_state(h), WEFT_TASK_CANCELLED);
	weft_task_release(h);
	CHECK_EQ(weft_condition_destroy(t->cond), 0);
	return 0;
}

static void test_sync__condition_cancelled_wait_returns_with_the_lock_held(
	void **state)
{
	struct cond_test t = { 0 };
	weft_test_root(state, cond_cancel_root, &t);
	assert_int_equal(atomic_load(&t.rc), -ECANCELED);
	assert_int_equal(atomic_load(&t.held_after), 1);
}

static int cond_entry_cancel_root(void *arg)
{
	(void)arg;
	weft_condition_t *c;
	CHECK_EQ(weft_condition_create(&c, NULL), 0);
	weft_lock_t *l = weft_condition_lock(c);
	CHECK_EQ(weft_lock_acquire(l), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, "test"), 0);
	/* A checkpoint on entry: the lock is never let go. */
	CHECK_EQ(weft_condition_wait(c), -ECANCELED);
	CHECK_EQ(weft_lock_held(l), 1);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	CHECK_EQ(weft_lock_release(l), 0);
	CHECK_EQ(weft_condition_destroy(c), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, condition_wait_cancelled_on_entry_keeps_the_lock,
	cond_entry_cancel_root, NULL)

/* }======================================================= */

/* {======================================================= checkpoints, deadlines */

struct prims {
	weft_event_t *ev;
	weft_lock_t *lock;
	weft_semaphore_t *sem;
	weft_limiter_t *lim;
	weft_condition_t *cond;
};

static int prims_create(struct prims *p)
{
	CHECK_EQ(weft_event_create(&p->ev), 0);
	CHECK_EQ(weft_lock_create(&p->lock), 0);
	CHECK_EQ(weft_semaphore_create(&p->sem, 1, 1), 0);
	CHECK_EQ(weft_limiter_create(&p->lim, 1), 0);
	CHECK_EQ(weft_condition_create(&p->cond, NULL), 0);
	return 0;
}

static void prims_destroy(struct prims *p)
{
	CHECK_EQ(weft_event_destroy(p->ev), 0);
	CHECK_EQ(weft_lock_destroy(p->lock), 0);
	CHECK_EQ(weft_semaphore_destroy(p->sem), 0);
	CHECK_EQ(weft_limiter_destroy(p->lim), 0);
	CHECK_EQ(weft_condition_destroy(p->cond), 0);
}

static int entry_cancel_root(void *arg)
{
	(void)arg;
	struct prims p;
	prims_create(&p);
	CHECK_EQ(weft_event_set(p.ev), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, "test"), 0);
	/* Every resource is free, and yet each wait observes the
	 * cancellation and takes nothing. */
	CHECK_EQ(weft_event_wait(p.ev), -ECANCELED);
	CHECK_EQ(weft_lock_acquire(p.lock), -ECANCELED);
	CHECK_EQ(weft_lock_locked(p.lock), 0);
	CHECK_EQ(weft_semaphore_acquire(p.sem), -ECANCELED);
	CHECK_EQ(weft_semaphore_value(p.sem), 1);
	CHECK_EQ(weft_limiter_acquire(p.lim), -ECANCELED);
	int b;
	CHECK_EQ(weft_limiter_acquire_on_behalf(p.lim, &b), -ECANCELED);
	weft_limiter_stats_t st;
	CHECK_EQ(weft_limiter_stats(p.lim, &st), 0);
	CHECK_EQ(st.borrowed, 0);
	/* Non-blocking forms are not checkpoints. */
	CHECK_EQ(weft_lock_try_acquire(p.lock), 0);
	CHECK_EQ(weft_lock_release(p.lock), 0);
	CHECK_EQ(weft_semaphore_try_acquire(p.sem), 0);
	CHECK_EQ(weft_semaphore_release(p.sem), 0);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK_EQ(weft_scope_cancelled_caught(s), 1);
	weft_scope_destroy(s);
	prims_destroy(&p);
	return 0;
}

/* A child whose first weft call is a wait has never linked its root scope
 * into its group's scope (that is done lazily); the wait must still see
 * the group's cancellation, both when it can proceed at once and when it
 * parks. */
static int first_call_waits(void *arg)
{
	weft_event_t *ev = arg;
	return weft_event_wait(ev) == -ECANCELED ? 0 : -EIO;
}

static int first_wait_root(void *arg)
{
	(void)arg;
	weft_event_t *ev;
	CHECK_EQ(weft_event_create(&ev), 0);
	/* Parked first, then the group is cancelled. */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, first_call_waits, ev), 0);
	for (int spins = 0; weft_event_waiting(ev) < 3 && spins < 100000;
		spins++)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 10), 0);
	CHECK_EQ(weft_event_waiting(ev), 3);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* Cancelled before the wait, which could proceed at once. */
	CHECK_EQ(weft_event_set(ev), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, first_call_waits, ev), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(ev), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, a_first_wait_sees_its_groups_cancellation,
	first_wait_root, NULL)

WEFT_TEST_ROOT(sync, every_wait_is_a_checkpoint_even_when_free,
	entry_cancel_root, NULL)

/* Each wait parks on a resource the root holds, under a fail_after
 * deadline: the wait returns -ECANCELED having taken nothing, and the
 * scope's exit reports -ETIMEDOUT. */
static int deadline_waits(void *arg)
{
	struct prims *p = arg;
	for (int which = 0; which < 5; which++) {
		weft_scope_t *s;
		CHECK_EQ(weft_fail_after(&s, 2 * WEFT_MSEC), 0);
		int rc = -1;
		int b;
		switch (which) {
		case 0: rc = weft_event_wait(p->ev); break;
		case 1: rc = weft_lock_acquire(p->lock); break;
		case 2: rc = weft_semaphore_acquire(p->sem); break;
		case 3: rc = weft_limiter_acquire_on_behalf(p->lim, &b); break;
		case 4:
			CHECK_EQ(weft_lock_acquire(weft_condition_lock(p->cond)),
				0);
			rc = weft_condition_wait(p->cond);
			CHECK_EQ(weft_lock_release(weft_condition_lock(p->cond)),
				0);
			break;
		}
		CHECK_EQ(rc, -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
		weft_scope_destroy(s);
	}
	CHECK_EQ(weft_lock_held(p->lock), 0);
	CHECK_EQ(weft_lock_waiting(p->lock), 0);
	CHECK_EQ(weft_semaphore_value(p->sem), 0);
	CHECK_EQ(weft_semaphore_waiting(p->sem), 0);
	weft_limiter_stats_t st;
	CHECK_EQ(weft_limiter_stats(p->lim, &st), 0);
	CHECK_EQ(st.borrowed, 1);
	CHECK_EQ(st.waiting, 0);
	return 0;
}

static int deadline_root(void *arg)
{
	(void)arg;
	struct prims p;
	prims_create(&p);
	int mine;
	CHECK_EQ(weft_lock_acquire(p.lock), 0);
	CHECK_EQ(weft_semaphore_acquire(p.sem), 0);
	CHECK_EQ(weft_limiter_acquire_on_behalf(p.lim, &mine), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, deadline_waits, &p), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* Nothing was lost: the resources work normally afterwards. */
	CHECK_EQ(weft_lock_release(p.lock), 0);
	CHECK_EQ(weft_lock_locked(p.lock), 0);
	CHECK_EQ(weft_semaphore_release(p.sem), 0);
	CHECK_EQ(weft_semaphore_value(p.sem), 1);
	CHECK_EQ(weft_limiter_release_on_behalf(p.lim, &mine), 0);
	CHECK_EQ(weft_limiter_try_acquire(p.lim), 0);
	CHECK_EQ(weft_limiter_release(p.lim), 0);
	prims_destroy(&p);
	return 0;
}

WEFT_TEST_ROOT(sync, deadline_ends_a_wait_with_nothing_acquired,
	deadline_root, NULL)

/* }======================================================= */

/* {======================================================= cancel-atomicity */

/* Many tasks acquire with random short deadlines while others release;
 * some are also cancelled through their handles at random moments.  Every
 * acquire that returned 0 is counted and released; at the end the
 * resource must be exactly whole again: a grant lost to a cancelled
 * waiter would leave a permit (or the lock) missing, a double grant
 * would overflow the bound (WEFT_EMISUSE on release) or break the
 * exclusion check. */
enum { ATOM_SEM, ATOM_LOCK, ATOM_LIMITER, ATOM_CONDITION };

struct atom {
	int kind;
	weft_semaphore_t *sem;
	weft_lock_t *lock;
	weft_limiter_t *lim;
	weft_condition_t *cond;
	int permits;
	atomic_int inside, max_inside;
	atomic_long ok, cancelled;
	long counter;              /* under the lock (ATOM_LOCK) */
	long iters;
	int tasks;
	struct meet meet;
	/* Condition accounting: notifications delivered vs consumed. */
	long notified;             /* under the condition's lock */
	atomic_long cond_ok;
	atomic_int stop;
};

struct atom_arg {
	struct atom *a;
	int index;
	uint64_t rng;
};

static int atom_acquire(struct atom *a, void *borrower)
{
	switch (a->kind) {
	case ATOM_SEM: return weft_semaphore_acquire(a->sem);
	case ATOM_LOCK: return weft_lock_acquire(a->lock);
	default: return weft_limiter_acquire_on_behalf(a->lim, borrower);
	}
}

static int atom_release(struct atom *a, void *borrower)
{
	switch (a->kind) {
	case ATOM_SEM: return weft_semaphore_release(a->sem);
	case ATOM_LOCK: return weft_lock_release(a->lock);
	default: return weft_limiter_release_on_behalf(a->lim, borrower);
	}
}

static int atom_user(void *arg)
{
	struct atom_arg *x = arg;
	struct atom *a = x->a;
	meet(&a->meet, x->index, a->tasks);
	for (long i = 0; i < a->iters; i++) {
		weft_scope_t *s = NULL;
		int r = (int)(weft_test_rand(&x->rng) % 4);
		if (r != 0)
			CHECK_EQ(weft_move_on_after(&s, (int64_t)
				(weft_test_rand(&x->rng) % 300) * 1000), 0);
		int rc = atom_acquire(a, x);
		/* The deadline covers the acquire only. */
		if (s) {
			CHECK_EQ(weft_scope_exit(s), 0);
			weft_scope_destroy(s);
		}
		if (rc == 0) {
			int in = atomic_fetch_add(&a->inside, 1) + 1;
			CHECK(in <= a->permits);
			int seen = atomic_load(&a->max_inside);
			while (in > seen && !atomic_compare_exchange_weak(
				&a->max_inside, &seen, in))
				;
			if (a->kind == ATOM_LOCK)
				a->counter++;
			/* Hold it for a while (a sleep, or a few switches),
			 * so that waiters queue up and their deadlines race
			 * with grants.  A handle cancel cuts the sleep short,
			 * which is fine. */
			if (weft_test_rand(&x->rng) % 3 == 0)
				(void)weft_sleep((int64_t)
					(weft_test_rand(&x->rng) % 100) * 1000);
			int switches = (int)(weft_test_rand(&x->rng) % 4);
			for (int k = switches; k > 0; k--)
				(void)weft_cancel_shielded_checkpoint();
			atomic_fetch_sub(&a->inside, 1);
			CHECK_EQ(atom_release(a, x), 0);
			atomic_fetch_add(&a->ok, 1);
		} else {
			CHECK_EQ(rc, -ECANCELED);
			atomic_fetch_add(&a->cancelled, 1);
		}
		/* A handle cancel ends this task: stop quietly. */
		if (weft_checkpoint_if_cancelled() == -ECANCELED)
			return -ECANCELED;
	}
	return 0;
}

/* Condition flavour: waiters wait with random deadlines; the root
 * notifies one at a time.  Every notification counted by notify must be
 * reported as a 0 return by exactly one waiter. */
static int atom_cond_waiter(void *arg)
{
	struct atom_arg *x = arg;
	struct atom *a = x->a;
	weft_lock_t *l = weft_condition_lock(a->cond);
	while (!atomic_load(&a->stop)) {
		weft_scope_t *s = NULL;
		if (weft_test_rand(&x->rng) % 2)
			CHECK_EQ(weft_move_on_after(&s, (int64_t)
				(weft_test_rand(&x->rng) % 300) * 1000), 0);
		/* The deadline may expire before the lock is ours. */
		int rc = weft_lock_acquire(l);
		if (rc == 0) {
			rc = weft_condition_wait(a->cond);
			CHECK(weft_lock_held(l));
			CHECK_EQ(weft_lock_release(l), 0);
		}
		if (rc == 0) {
			atomic_fetch_add(&a->cond_ok, 1);
		} else {
			CHECK_EQ(rc, -ECANCELED);
			atomic_fetch_add(&a->cancelled, 1);
		}
		if (s) {
			CHECK_EQ(weft_scope_exit(s), 0);
			weft_scope_destroy(s);
		}
	}
	return 0;
}

static int atom_root(void *arg)
{
	struct atom *a = arg;
	a->tasks = 8;
	struct atom_arg x[8];
	weft_task_t *h[8];
	uint64_t seed = (uint64_t)weft_now() | 1;
	weft_group_t *g;
	switch (a->kind) {
	case ATOM_SEM:
		a->permits = 2;
		CHECK_EQ(weft_semaphore_create(&a->sem, 2, 2), 0);
		break;
	case ATOM_LOCK:
		a->permits = 1;
		CHECK_EQ(weft_lock_create(&a->lock), 0);
		break;
	case ATOM_LIMITER:
		a->permits = 3;
		CHECK_EQ(weft_limiter_create(&a->lim, 3), 0);
		break;
	case ATOM_CONDITION:
		CHECK_EQ(weft_condition_create(&a->cond, NULL), 0);
		break;
	}
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < a->tasks; i++) {
		x[i] = (struct atom_arg){ a, i, seed + (uint64_t)i * 7919 };
		h[i] = weft_test_spawn(g, a->kind == ATOM_CONDITION ?
			atom_cond_waiter : atom_user, &x[i]);
	}
	if (a->kind == ATOM_CONDITION) {
		seed |= 1;
		weft_lock_t *l = weft_condition_lock(a->cond);
		for (long i = 0; i < a->iters; i++) {
			CHECK_EQ(weft_lock_acquire(l), 0);
			int n = weft_condition_notify(a->cond, 1);
			CHECK(n == 0 || n == 1);
			if (n > 0)
				a->notified += n;
			CHECK_EQ(weft_lock_release(l), 0);
			/* Slow enough that waiters' deadlines expire too. */
			(void)weft_sleep((int64_t)
				(weft_test_rand(&seed) % 200) * 1000);
		}
		atomic_store(&a->stop, 1);
		/* Release everyone still waiting (bounded). */
		int64_t give_up = weft_now() + GIVE_UP;
		long active = 0;
		do {
			CHECK_EQ(weft_lock_acquire(l), 0);
			int n = weft_condition_notify_all(a->cond);
			a->notified += n;
			CHECK_EQ(weft_lock_release(l), 0);
			(void)weft_sleep(100 * 1000);
			active = 0;
			for (int i = 0; i < a->tasks; i++)
				active += weft_task_state(h[i]) ==
					WEFT_TASK_PENDING;
		} while (active > 0 && weft_now() < give_up);
	} else {
		/* Cancel two users at random moments. */
		uint64_t r = seed;
		for (int k = 0; k < 2; k++) {
			(void)weft_sleep((int64_t)(weft_test_rand(&r) % 3000) *
				1000);
			uint64_t victim = weft_test_rand(&r) % (uint64_t)a->tasks;
			weft_task_cancel(h[victim]);
		}
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < a->tasks; i++)
		weft_task_release(h[i]);
	switch (a->kind) {
	case ATOM_SEM:
		CHECK_EQ(weft_semaphore_value(a->sem), 2);
		CHECK_EQ(weft_semaphore_destroy(a->sem), 0);
		break;
	case ATOM_LOCK:
		CHECK_EQ(a->counter, atomic_load(&a->ok));
		CHECK_EQ(weft_lock_locked(a->lock), 0);
		CHECK_EQ(weft_lock_destroy(a->lock), 0);
		break;
	case ATOM_LIMITER: {
		weft_limiter_stats_t st;
		CHECK_EQ(weft_limiter_stats(a->lim, &st), 0);
		CHECK_EQ(st.borrowed, 0);
		CHECK_EQ(st.available, 3);
		CHECK_EQ(weft_limiter_destroy(a->lim), 0);
		break;
	}
	case ATOM_CONDITION:
		CHECK_EQ(a->notified, atomic_load(&a->cond_ok));
		CHECK_EQ(weft_condition_destroy(a->cond), 0);
		break;
	}
	return 0;
}

static void atom_run(void **state, int kind)
{
	struct atom a = { .kind = kind,
		.iters = weft_test_scale(kind == ATOM_CONDITION ? 400 : 600) };
	weft_test_root(state, atom_root, &a);
	print_message("kind %d: %ld granted, %ld cancelled\n", kind,
		atomic_load(&a.ok) + atomic_load(&a.cond_ok),
		atomic_load(&a.cancelled));
	assert_true(atomic_load(&a.max_inside) <= (kind == ATOM_CONDITION
			? 0 : a.permits));
}

static void test_sync__cancelled_semaphore_waits_lose_and_duplicate_nothing(
	void **state)
{
	atom_run(state, ATOM_SEM);
}

static void test_sync__cancelled_lock_waits_lose_and_duplicate_nothing(
	void **state)
{
	atom_run(state, ATOM_LOCK);
}

static void test_sync__cancelled_limiter_waits_lose_and_duplicate_nothing(
	void **state)
{
	atom_run(state, ATOM_LIMITER);
}

static void test_sync__cancelled_condition_waits_never_lose_a_notification(
	void **state)
{
	atom_run(state, ATOM_CONDITION);
}

/* }======================================================= */

/* {======================================================= arguments, threads, memory */

static void test_sync__null_arguments_are_einval(void **state)
{
	(void)state;
	assert_int_equal(weft_event_create(NULL), -EINVAL);
	assert_int_equal(weft_event_destroy(NULL), -EINVAL);
	assert_int_equal(weft_event_set(NULL), -EINVAL);
	assert_int_equal(weft_event_wait(NULL), -EINVAL);
	assert_int_equal(weft_event_is_set(NULL), 0);
	assert_int_equal(weft_event_waiting(NULL), 0);
	assert_int_equal(weft_lock_create(NULL), -EINVAL);
	assert_int_equal(weft_lock_destroy(NULL), -EINVAL);
	assert_int_equal(weft_lock_acquire(NULL), -EINVAL);
	assert_int_equal(weft_lock_try_acquire(NULL), -EINVAL);
	assert_int_equal(weft_lock_release(NULL), -EINVAL);
	assert_int_equal(weft_lock_locked(NULL), 0);
	assert_int_equal(weft_lock_held(NULL), 0);
	assert_int_equal(weft_lock_waiting(NULL), 0);
	assert_int_equal(weft_semaphore_create(NULL, 0, 0), -EINVAL);
	assert_int_equal(weft_semaphore_destroy(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_acquire(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_try_acquire(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_release(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_value(NULL), 0);
	assert_int_equal(weft_semaphore_waiting(NULL), 0);
	weft_limiter_t *l;
	weft_limiter_stats_t st;
	assert_int_equal(weft_limiter_create(NULL, 1), -EINVAL);
	assert_int_equal(weft_limiter_destroy(NULL), -EINVAL);
	assert_int_equal(weft_limiter_acquire(NULL), -EINVAL);
	assert_int_equal(weft_limiter_acquire_on_behalf(NULL, &st), -EINVAL);
	assert_int_equal(weft_limiter_try_acquire(NULL), -EINVAL);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(NULL, &st),
		-EINVAL);
	assert_int_equal(weft_limiter_release(NULL), -EINVAL);
	assert_int_equal(weft_limiter_release_on_behalf(NULL, &st), -EINVAL);
	assert_int_equal(weft_limiter_set_total(NULL, 1), -EINVAL);
	assert_int_equal(weft_limiter_stats(NULL, &st), -EINVAL);
	assert_int_equal(weft_limiter_create(&l, 1), 0);
	assert_int_equal(weft_limiter_acquire_on_behalf(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_release_on_behalf(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_set_total(l, 0), -EINVAL);
	assert_int_equal(weft_limiter_stats(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_destroy(l), 0);
	assert_int_equal(weft_condition_create(NULL, NULL), -EINVAL);
	assert_int_equal(weft_condition_destroy(NULL), -EINVAL);
	assert_int_equal(weft_condition_wait(NULL), -EINVAL);
	assert_int_equal(weft_condition_notify(NULL, 1), -EINVAL);
	assert_int_equal(weft_condition_notify_all(NULL), -EINVAL);
	assert_null(weft_condition_lock(NULL));
	assert_int_equal(weft_condition_waiting(NULL), 0);
	weft_test_assert_no_leaks();
}

static void test_sync__fiber_only_calls_from_a_plain_thread_are_enotfiber(
	void **state)
{
	(void)state;
	struct prims p;
	prims_create(&p);
	int b;
	assert_int_equal(weft_event_wait(p.ev), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_acquire(p.lock), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_try_acquire(p.lock), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_release(p.lock), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_held(p.lock), 0);
	assert_int_equal(weft_semaphore_acquire(p.sem), WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_acquire(p.lim), WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_acquire_on_behalf(p.lim, &b),
		WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_try_acquire(p.lim), WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_release(p.lim), WEFT_ENOTFIBER);
	assert_int_equal(weft_condition_wait(p.cond), WEFT_ENOTFIBER);
	assert_int_equal(weft_condition_notify(p.cond, 1), WEFT_ENOTFIBER);
	assert_int_equal(weft_condition_notify_all(p.cond), WEFT_ENOTFIBER);
	/* The any-thread calls work here. */
	assert_int_equal(weft_event_set(p.ev), 0);
	assert_int_equal(weft_event_is_set(p.ev), 1);
	assert_int_equal(weft_semaphore_try_acquire(p.sem), 0);
	assert_int_equal(weft_semaphore_release(p.sem), 0);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(p.lim, &b), 0);
	assert_int_equal(weft_limiter_set_total(p.lim, 2), 0);
	assert_int_equal(weft_limiter_release_on_behalf(p.lim, &b), 0);
	prims_destroy(&p);
	weft_test_assert_no_leaks();
}

static void test_sync__allocation_failure_at_create_is_enomem(void **state)
{
	(void)state;
	weft_event_t *ev = (weft_event_t *)&ev;
	weft_lock_t *lock = (weft_lock_t *)&lock;
	weft_semaphore_t *sem = (weft_semaphore_t *)&sem;
	weft_limiter_t *lim = (weft_limiter_t *)&lim;
	weft_condition_t *cond = (weft_condition_t *)&cond;
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_event_create(&ev), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_lock_create(&lock), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_semaphore_create(&sem, 1, 0), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_limiter_create(&lim, 1), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_condition_create(&cond, NULL), -ENOMEM);
	weft_debug_fail_alloc(0);
	/* Untouched on failure. */
	assert_ptr_equal(ev, &ev);
	assert_ptr_equal(lock, &lock);
	assert_ptr_equal(sem, &sem);
	assert_ptr_equal(lim, &lim);
	assert_ptr_equal(cond, &cond);
	/* The limiter's borrower table grows on demand: a failure there is
	 * -ENOMEM with nothing borrowed. */
	assert_int_equal(weft_limiter_create(&lim, 4), 0);
	int b;
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(lim, &b), -ENOMEM);
	weft_debug_fail_alloc(0);
	weft_limiter_stats_t st;
	assert_int_equal(weft_limiter_stats(lim, &st), 0);
	assert_int_equal(st.borrowed, 0);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(lim, &b), 0);
	assert_int_equal(weft_limiter_release_on_behalf(lim, &b), 0);
	assert_int_equal(weft_limiter_destroy(lim), 0);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_sync__event_set_wakes_every_waiter_once_across_workers),
		WEFT_TEST(test_sync__event_wait_after_set_returns_at_once),
		WEFT_TEST(test_sync__event_set_from_a_plain_thread_wakes_waiters),
		WEFT_TEST(test_sync__event_destroy_with_a_waiter_is_ebusy),
		WEFT_TEST(test_sync__lock_excludes_tasks_on_all_workers),
		WEFT_TEST(test_sync__lock_hands_off_to_waiters_in_fifo_order),
		WEFT_TEST(test_sync__lock_release_by_non_owner_and_double_acquire_are_misuse),
		WEFT_TEST(test_sync__lock_try_acquire_takes_only_a_free_lock),
		WEFT_TEST(test_sync__lock_destroy_while_held_is_ebusy),
		WEFT_TEST(test_sync__semaphore_release_beyond_its_bound_is_misuse),
		WEFT_TEST(test_sync__semaphore_release_from_a_plain_thread_wakes_in_fifo_order),
		WEFT_TEST(test_sync__semaphore_admits_at_most_its_value_at_once),
		WEFT_TEST(test_sync__limiter_borrower_holds_one_token_and_only_it_releases),
		WEFT_TEST(test_sync__limiter_raising_the_total_wakes_waiters),
		WEFT_TEST(test_sync__limiter_lowering_the_total_only_stops_new_grants),
		cmocka_unit_test(test_sync__limiter_tracks_many_borrowers),
		WEFT_TEST(test_sync__condition_notify_wakes_n_and_notify_all_wakes_all),
		WEFT_TEST(test_sync__condition_wait_and_notify_without_the_lock_are_misuse),
		WEFT_TEST(test_sync__condition_cancelled_wait_returns_with_the_lock_held),
		WEFT_TEST(test_sync__condition_wait_cancelled_on_entry_keeps_the_lock),
		WEFT_TEST(test_sync__every_wait_is_a_checkpoint_even_when_free),
		WEFT_TEST(test_sync__a_first_wait_sees_its_groups_cancellation),
		WEFT_TEST(test_sync__deadline_ends_a_wait_with_nothing_acquired),
		WEFT_TEST(test_sync__cancelled_semaphore_waits_lose_and_duplicate_nothing),
		WEFT_TEST(test_sync__cancelled_lock_waits_lose_and_duplicate_nothing),
		WEFT_TEST(test_sync__cancelled_limiter_waits_lose_and_duplicate_nothing),
		WEFT_TEST(test_sync__cancelled_condition_waits_never_lose_a_notification),
		cmocka_unit_test(test_sync__null_arguments_are_einval),
		cmocka_unit_test(test_sync__fiber_only_calls_from_a_plain_thread_are_enotfiber),
		cmocka_unit_test(test_sync__allocation_failure_at_create_is_enomem),
	};
	return WEFT_RUN_TESTS(tests);
}
