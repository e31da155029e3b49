/* Condition (include/weft/sync.h): a condition variable with its own
 * Lock; wait releases the lock, parks, and returns with it held again,
 * even when cancelled.  See sync_fixture.h for how these tests meet on
 * workers and wait without timing assertions. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "support.h"
#include "sync_fixture.h"

struct cond_test {
	weft_condition_t *cond;
	weft_lock_t *lock;
	int ready;    /* under the lock */
	int consumed; /* under the lock */
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

static void test_condition__notify_wakes_n_and_notify_all_wakes_all(
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

WEFT_TEST_ROOT(condition, wait_and_notify_without_the_lock_are_misuse,
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

static void test_condition__cancelled_wait_returns_with_the_lock_held(
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

WEFT_TEST_ROOT(condition, wait_cancelled_on_entry_keeps_the_lock,
	cond_entry_cancel_root, NULL)

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_condition__notify_wakes_n_and_notify_all_wakes_all),
		WEFT_TEST(
			test_condition__wait_and_notify_without_the_lock_are_misuse),
		WEFT_TEST(
			test_condition__cancelled_wait_returns_with_the_lock_held),
		WEFT_TEST(
			test_condition__wait_cancelled_on_entry_keeps_the_lock),
	};
	return WEFT_RUN_TESTS(tests);
}
