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

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_lock__excludes_tasks_on_all_workers),
		WEFT_TEST(test_lock__hands_off_to_waiters_in_fifo_order),
		WEFT_TEST(
			test_lock__release_by_non_owner_and_double_acquire_are_misuse),
		WEFT_TEST(test_lock__try_acquire_takes_only_a_free_lock),
		WEFT_TEST(test_lock__destroy_while_held_is_ebusy),
	};
	return WEFT_RUN_TESTS(tests);
}
