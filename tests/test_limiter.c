/* CapacityLimiter (include/weft/sync.h): a total of tokens; a borrower
 * (the calling task, or any pointer given to the *_on_behalf forms) holds
 * at most one, and the total can be raised or lowered while tokens are
 * out.  See sync_fixture.h for how these tests meet on workers and wait
 * without timing assertions. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "support.h"
#include "sync_fixture.h"

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

WEFT_TEST_ROOT(limiter, borrower_holds_one_token_and_only_it_releases,
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

static void test_limiter__raising_the_total_wakes_waiters(void **state)
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

WEFT_TEST_ROOT(limiter, lowering_the_total_only_stops_new_grants,
	lim_lower_root, &(struct lim_test){ 0 })

static void test_limiter__tracks_many_borrowers(void **state)
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
					 &borrower[i]),
			0);
	for (int i = 0; i < N; i += 7)
		assert_int_equal(weft_limiter_try_acquire_on_behalf(l,
					 &borrower[i]),
			WEFT_EMISUSE);
	/* Release in a scattered order, checking each is still known. */
	for (int k = 0; k < N; k++) {
		int i = (int)(((long)k * 1237) % N);
		assert_int_equal(weft_limiter_release_on_behalf(l,
					 &borrower[i]),
			0);
		assert_int_equal(weft_limiter_release_on_behalf(l,
					 &borrower[i]),
			WEFT_EMISUSE);
	}
	weft_limiter_stats_t st;
	assert_int_equal(weft_limiter_stats(l, &st), 0);
	assert_int_equal(st.borrowed, 0);
	assert_int_equal(weft_limiter_destroy(l), 0);
	weft_test_assert_no_leaks();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_limiter__borrower_holds_one_token_and_only_it_releases),
		WEFT_TEST(test_limiter__raising_the_total_wakes_waiters),
		WEFT_TEST(
			test_limiter__lowering_the_total_only_stops_new_grants),
		cmocka_unit_test(test_limiter__tracks_many_borrowers),
	};
	return WEFT_RUN_TESTS(tests);
}
