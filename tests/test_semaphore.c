/* Semaphore (include/weft/sync.h): a bounded counter of permits, granted
 * to waiters in FIFO order, released from a task or a plain thread.  See
 * sync_fixture.h for how these tests meet on workers and wait without
 * timing assertions. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "support.h"
#include "sync_fixture.h"

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
	/* No bound still stops at SIZE_MAX: misuse, not a wrap to 0. */
	CHECK_EQ(weft_semaphore_create(&s, SIZE_MAX, 0), 0);
	CHECK_EQ(weft_semaphore_release(s), WEFT_EMISUSE);
	CHECK_EQ(weft_semaphore_value(s), SIZE_MAX);
	CHECK_EQ(weft_semaphore_try_acquire(s), 0);
	CHECK_EQ(weft_semaphore_value(s), SIZE_MAX - 1);
	CHECK_EQ(weft_semaphore_release(s), 0);
	CHECK_EQ(weft_semaphore_destroy(s), 0);
	return 0;
}

WEFT_TEST_ROOT(semaphore, release_beyond_its_bound_is_misuse, sem_bound_root,
	NULL)

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

static void test_semaphore__release_from_a_plain_thread_wakes_in_fifo_order(
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
			!atomic_compare_exchange_weak(&t->max_inside, &seen,
				in))
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

static void test_semaphore__admits_at_most_its_value_at_once(void **state)
{
	struct sem_limit t = { 0 };
	weft_test_root(state, sem_limit_root, &t);
	assert_int_equal(atomic_load(&t.rounds), (long)t.tasks * t.iters);
	assert_true(atomic_load(&t.max_inside) <= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_semaphore__release_beyond_its_bound_is_misuse),
		WEFT_TEST(
			test_semaphore__release_from_a_plain_thread_wakes_in_fifo_order),
		WEFT_TEST(test_semaphore__admits_at_most_its_value_at_once),
	};
	return WEFT_RUN_TESTS(tests);
}
