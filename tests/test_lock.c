/* Lock (include/weft/sync.h): a mutual-exclusion lock owned by the task
 * that acquired it, handed to its waiters in FIFO order.  See
 * sync_fixture.h for how these tests meet on workers and wait without
 * timing assertions. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "support.h"
#include "sync_fixture.h"

/* A small critical-section body whose non-atomic read-modify-write
 * loses updates if two tasks run it at once. */
static void bump(long *counter, atomic_int *inside, atomic_int *max_inside)
{
	int in = atomic_fetch_add(inside, 1) + 1;
	int seen = atomic_load(max_inside);
	while (in > seen &&
		!atomic_compare_exchange_weak(max_inside, &seen, in))
		;
	long v = *counter;
	for (volatile int i = 0; i < 20; i++)
		;
	*counter = v + 1;
	atomic_fetch_sub(inside, 1);
}

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

static void test_lock__excludes_tasks_on_all_workers(void **state)
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

static void test_lock__hands_off_to_waiters_in_fifo_order(void **state)
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

WEFT_TEST_ROOT(lock, release_by_non_owner_and_double_acquire_are_misuse,
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

WEFT_TEST_ROOT(lock, try_acquire_takes_only_a_free_lock, lock_try_root,
	&(struct lock_test){ 0 })

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

WEFT_TEST_ROOT(lock, destroy_while_held_is_ebusy, lock_busy_root,
	&(struct lock_test){ 0 })

/* {======================================================= owner ended */

/* A task that returns holding a lock breaks it (Trio: the lock's waiters
 * and later acquirers get BrokenResourceError): waiters parked before
 * and every later acquire get -EOWNERDEAD, and no other task - in
 * particular one that reuses the ended task's record - holds it. */

struct ended_test {
	weft_lock_t *lock;
	weft_event_t *held; /* the owner has the lock */
	weft_event_t *go;   /* the owner may return */
	int waiter_rc;
};

static int ended_owner(void *arg)
{
	struct ended_test *t = arg;
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_event_set(t->held), 0);
	CHECK_EQ(weft_event_wait(t->go), 0);
	return 0; /* still holding the lock */
}

static int ended_waiter(void *arg)
{
	struct ended_test *t = arg;
	/* Bounded, so that a lock that never breaks fails the test instead
	 * of hanging it. */
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, GIVE_UP), 0);
	t->waiter_rc = weft_lock_acquire(t->lock);
	CHECK_EQ(weft_lock_held(t->lock), 0);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return 0;
}

/* Checks, from a task that never acquired it, that the broken lock is
 * not held by it and cannot be taken. */
static int ended_bystander(void *arg)
{
	struct ended_test *t = arg;
	CHECK_EQ(weft_lock_held(t->lock), 0);
	CHECK_EQ(weft_lock_release(t->lock), WEFT_EMISUSE);
	CHECK_EQ(weft_lock_try_acquire(t->lock), -EOWNERDEAD);
	CHECK_EQ(weft_lock_acquire(t->lock), -EOWNERDEAD);
	CHECK_EQ(weft_lock_held(t->lock), 0);
	return 0;
}

static int ended_waiter_root(void *arg)
{
	struct ended_test *t = arg;
	CHECK_EQ(weft_lock_create(&t->lock), 0);
	CHECK_EQ(weft_event_create(&t->held), 0);
	CHECK_EQ(weft_event_create(&t->go), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, ended_owner, t), 0);
	CHECK_EQ(weft_event_wait(t->held), 0);
	CHECK_EQ(weft_group_spawn(g, ended_waiter, t), 0);
	WAIT_FOR(weft_lock_waiting(t->lock) == 1);
	CHECK_EQ(weft_event_set(t->go), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* The waiter parked before the owner ended was woken. */
	CHECK_EQ(t->waiter_rc, -EOWNERDEAD);
	CHECK_EQ(weft_lock_waiting(t->lock), 0);
	CHECK_EQ(weft_lock_locked(t->lock), 1);
	/* Later acquirers, here and in fresh tasks. */
	CHECK_EQ(ended_bystander(t), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, ended_bystander, t), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), 0);
	CHECK_EQ(weft_event_destroy(t->held), 0);
	CHECK_EQ(weft_event_destroy(t->go), 0);
	return 0;
}

WEFT_TEST_ROOT(lock, owner_ending_with_the_lock_breaks_it_for_waiters,
	ended_waiter_root, &(struct ended_test){ 0 })

static int ended_quick_owner(void *arg)
{
	weft_lock_t *l = arg;
	CHECK_EQ(weft_lock_acquire(l), 0);
	return 0; /* still holding the lock */
}

static int ended_reuse_check(void *arg)
{
	weft_lock_t *l = arg;
	/* Possibly in the ended owner's recycled record: still not ours. */
	CHECK_EQ(weft_lock_held(l), 0);
	CHECK_EQ(weft_lock_release(l), WEFT_EMISUSE);
	CHECK_EQ(weft_lock_try_acquire(l), -EOWNERDEAD);
	return 0;
}

static int ended_reuse_root(void *arg)
{
	(void)arg;
	weft_lock_t *l;
	CHECK_EQ(weft_lock_create(&l), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, ended_quick_owner, l), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* Task records are recycled: one of these (on one worker, the
	 * first) gets the owner's record back. */
	for (int i = 0; i < 16; i++) {
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, ended_reuse_check, l), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	CHECK_EQ(weft_lock_destroy(l), 0);
	return 0;
}

WEFT_TEST_ROOT(lock, ended_owner_record_reused_by_another_task_does_not_hold,
	ended_reuse_root, NULL)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_lock__excludes_tasks_on_all_workers),
		WEFT_TEST(test_lock__hands_off_to_waiters_in_fifo_order),
		WEFT_TEST(
			test_lock__release_by_non_owner_and_double_acquire_are_misuse),
		WEFT_TEST(test_lock__try_acquire_takes_only_a_free_lock),
		WEFT_TEST(test_lock__destroy_while_held_is_ebusy),
		WEFT_TEST(
			test_lock__owner_ending_with_the_lock_breaks_it_for_waiters),
		WEFT_TEST(
			test_lock__ended_owner_record_reused_by_another_task_does_not_hold),
	};
	return WEFT_RUN_TESTS(tests);
}
