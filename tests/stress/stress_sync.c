/* Stress: lockers and semaphore/limiter users on all workers, with random
 * deadlines and random handle cancellations, for a fixed time budget.
 *
 * Exact accounting at the end of every round:
 *   - the lock-protected counter (non-atomic) equals the number of
 *     successful acquires, and no two tasks were ever inside at once;
 *   - the semaphore's value is back to its initial value, which is also
 *     its bound: a permit lost to a cancelled waiter would leave it short,
 *     a double grant would make a release fail with WEFT_EMISUSE or let
 *     more than `permits` tasks in at once;
 *   - the limiter has nothing borrowed and never lent more than its
 *     total, while a third of the rounds change its total on the fly.
 *
 * WEFT_TEST_SEED chooses the seed (printed); WEFT_STRESS_SECONDS the
 * budget (default 6 for the whole binary, a quarter under sanitizers). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define TASKS 12
#define PERMITS 3
#define TOKENS 2

struct round {
	weft_lock_t *lock;
	weft_semaphore_t *sem;
	weft_limiter_t *lim;
	long counter; /* under lock */
	atomic_long lock_ok, sem_ok, lim_ok, cancelled;
	atomic_int lock_in, sem_in, lim_in;
	atomic_int violations;
	atomic_size_t lim_total; /* current total (changes) */
	int64_t end;
	uint64_t seed;
};

struct user {
	struct round *r;
	uint64_t rng;
	int index;
};

/* Holds a resource for a while: usually not at all, sometimes across a
 * few switches, rarely across a short sleep (so that waiters pile up and
 * their deadlines race with grants).  A cancelled sleep is fine. */
static void hold(struct user *u)
{
	unsigned r = (unsigned)(weft_test_rand(&u->rng) % 16);
	if (r == 0)
		(void)weft_sleep(
			(int64_t)(weft_test_rand(&u->rng) % 50) * 1000);
	else if (r < 5)
		(void)weft_cancel_shielded_checkpoint();
}

/* One acquire of resource `which` under an optional random deadline. */
static void one_op(struct user *u, int which)
{
	struct round *r = u->r;
	weft_scope_t *s = NULL;
	if (weft_test_rand(&u->rng) % 3 != 0)
		CHECK_EQ(weft_move_on_after(&s,
				 (int64_t)(weft_test_rand(&u->rng) % 300) *
					 1000),
			0);
	int rc;
	switch (which) {
	case 0:
		rc = weft_lock_acquire(r->lock);
		if (rc == 0) {
			if (atomic_fetch_add(&r->lock_in, 1) != 0)
				atomic_fetch_add(&r->violations, 1);
			long v = r->counter;
			hold(u);
			r->counter = v + 1;
			atomic_fetch_sub(&r->lock_in, 1);
			CHECK_EQ(weft_lock_release(r->lock), 0);
			atomic_fetch_add(&r->lock_ok, 1);
		}
		break;
	case 1:
		rc = weft_semaphore_acquire(r->sem);
		if (rc == 0) {
			if (atomic_fetch_add(&r->sem_in, 1) >= PERMITS)
				atomic_fetch_add(&r->violations, 1);
			hold(u);
			atomic_fetch_sub(&r->sem_in, 1);
			CHECK_EQ(weft_semaphore_release(r->sem), 0);
			atomic_fetch_add(&r->sem_ok, 1);
		}
		break;
	default:
		rc = weft_limiter_acquire(r->lim);
		if (rc == 0) {
			/* The total may change under us; the bound that
			 * matters is the largest total ever set (TOKENS+2). */
			if (atomic_fetch_add(&r->lim_in, 1) >= TOKENS + 2)
				atomic_fetch_add(&r->violations, 1);
			hold(u);
			atomic_fetch_sub(&r->lim_in, 1);
			CHECK_EQ(weft_limiter_release(r->lim), 0);
			atomic_fetch_add(&r->lim_ok, 1);
		}
		break;
	}
	if (rc != 0) {
		CHECK_EQ(rc, -ECANCELED);
		atomic_fetch_add(&r->cancelled, 1);
	}
	if (s) {
		CHECK_EQ(weft_scope_exit(s), 0);
		weft_scope_destroy(s);
	}
}

static int user_task(void *arg)
{
	struct user *u = arg;
	while (weft_now() < u->r->end) {
		for (int i = 0; i < 32; i++)
			one_op(u, (int)(weft_test_rand(&u->rng) % 3));
		if (weft_checkpoint_if_cancelled() == -ECANCELED)
			return -ECANCELED;
	}
	return 0;
}

static int round_root(void *arg)
{
	struct round *r = arg;
	CHECK_EQ(weft_lock_create(&r->lock), 0);
	CHECK_EQ(weft_semaphore_create(&r->sem, PERMITS, PERMITS), 0);
	CHECK_EQ(weft_limiter_create(&r->lim, TOKENS), 0);
	struct user u[TASKS];
	weft_task_t *h[TASKS];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < TASKS; i++) {
		u[i] = (struct user){ r, r->seed * 31 + (uint64_t)i * 977 + 1,
			i };
		weft_spawn_opts_t o = { .handle = &h[i] };
		CHECK_EQ(weft_group_spawn_opts(g, user_task, &u[i], &o), 0);
	}
	uint64_t rng = r->seed | 1;
	while (weft_now() < r->end) {
		(void)weft_sleep((int64_t)(weft_test_rand(&rng) % 2000) * 1000);
		unsigned act = (unsigned)(weft_test_rand(&rng) % 4);
		if (act == 0)
			weft_task_cancel(h[weft_test_rand(&rng) % TASKS]);
		else if (act == 1)
			CHECK_EQ(weft_limiter_set_total(r->lim,
					 TOKENS +
						 (size_t)(weft_test_rand(&rng) %
							 3)),
				0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < TASKS; i++)
		weft_task_release(h[i]);
	CHECK_EQ(r->counter, atomic_load(&r->lock_ok));
	CHECK_EQ(weft_lock_locked(r->lock), 0);
	CHECK_EQ(weft_semaphore_value(r->sem), PERMITS);
	weft_limiter_stats_t st;
	CHECK_EQ(weft_limiter_stats(r->lim, &st), 0);
	CHECK_EQ(st.borrowed, 0);
	CHECK_EQ(st.waiting, 0);
	CHECK_EQ(weft_lock_destroy(r->lock), 0);
	CHECK_EQ(weft_semaphore_destroy(r->sem), 0);
	CHECK_EQ(weft_limiter_destroy(r->lim), 0);
	return 0;
}

static void test_stress__sync_users_with_random_cancels_keep_exact_accounts(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	unsigned seed = weft_test_seed();
	/* The budget is split over the three worker counts, in rounds of
	 * about 200 ms so that every round ends with a full accounting. */
	int64_t stop = weft_now() +
		(int64_t)(weft_test_stress_seconds(6.0) / 3 * 1e9);
	long rounds = 0, lock_ok = 0, sem_ok = 0, lim_ok = 0, cancelled = 0;
	struct round *r = malloc(sizeof *r);
	do {
		memset(r, 0, sizeof *r);
		r->seed = (uint64_t)seed * 1000003u + (uint64_t)rounds;
		r->end = weft_now() + 200 * WEFT_MSEC;
		assert_int_equal(weft_test_run(workers, round_root, r), 0);
		assert_int_equal(atomic_load(&r->violations), 0);
		lock_ok += atomic_load(&r->lock_ok);
		sem_ok += atomic_load(&r->sem_ok);
		lim_ok += atomic_load(&r->lim_ok);
		cancelled += atomic_load(&r->cancelled);
		rounds++;
	} while (weft_now() < stop);
	free(r);
	print_message("workers %u: %ld rounds; %ld lock, %ld semaphore, %ld "
		      "limiter grants; %ld cancelled waits\n",
		workers, rounds, lock_ok, sem_ok, lim_ok, cancelled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_stress__sync_users_with_random_cancels_keep_exact_accounts),
	};
	return WEFT_RUN_TESTS(tests);
}
