/* Condition (include/weft/sync.h): a condition variable with its own
 * Lock; wait releases the lock, parks, and returns with it held again,
 * even when cancelled.  See sync_fixture.h for how these tests meet on
 * workers and wait without timing assertions. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

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

/* {======================================================= notify reparks */

/* Notify moves the notified tasks onto the Lock's queue (Trio's
 * Condition.notify reparks them): they count in weft_lock_waiting and are
 * handed the lock in FIFO order, before any task that asks for it after
 * the notify. */

#define REPARK_MAX 4

struct repark_test {
	weft_condition_t *cond;
	weft_lock_t *lock;
	int log[REPARK_MAX + 1]; /* who had the lock, in order (under it) */
	int len;		 /* under the lock */
	int rc[REPARK_MAX + 1];
	int held[REPARK_MAX + 1];
};

struct repark_arg {
	struct repark_test *t;
	int id;
};

/* Takes the lock, waits once, logs its id under the lock. */
static int repark_waiter(void *arg)
{
	struct repark_arg *a = arg;
	struct repark_test *t = a->t;
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	int rc = weft_condition_wait(t->cond);
	t->rc[a->id] = rc;
	t->held[a->id] = weft_lock_held(t->lock);
	if (rc == -EOWNERDEAD)
		return 0; /* the lock broke: not held, nothing to log */
	t->log[t->len++] = a->id;
	CHECK_EQ(weft_lock_release(t->lock), 0);
	return rc == -ECANCELED ? 0 : rc;
}

/* Asks for the lock after the notify. */
static int repark_late_acquirer(void *arg)
{
	struct repark_arg *a = arg;
	struct repark_test *t = a->t;
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	t->held[a->id] = weft_lock_held(t->lock);
	t->log[t->len++] = a->id;
	CHECK_EQ(weft_lock_release(t->lock), 0);
	return 0;
}

static void repark_setup(struct repark_test *t)
{
	CHECK_EQ(weft_condition_create(&t->cond, NULL), 0);
	t->lock = weft_condition_lock(t->cond);
}

/* Spawns waiters 0..k-1 one at a time, each parked before the next, so
 * that the condition's queue holds them in id order. */
static void repark_spawn_waiters(weft_group_t *g, struct repark_test *t,
	struct repark_arg *a, int k, weft_task_t **h)
{
	for (int i = 0; i < k; i++) {
		a[i] = (struct repark_arg){ t, i };
		weft_task_t *th = weft_test_spawn(g, repark_waiter, &a[i]);
		if (h)
			h[i] = th;
		else if (th)
			weft_task_release(th);
		WAIT_FOR(weft_condition_waiting(t->cond) == (size_t)i + 1);
	}
}

static int repark_late_root(void *arg)
{
	struct repark_test *t = arg;
	repark_setup(t);
	struct repark_arg a[2];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	repark_spawn_waiters(g, t, a, 1, NULL);
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_condition_notify(t->cond, 1), 1);
	/* The notified task waits for the lock now, not for the
	 * condition. */
	CHECK_EQ(weft_condition_waiting(t->cond), 0);
	CHECK_EQ(weft_lock_waiting(t->lock), 1);
	/* A task asking for the lock after the notify queues behind it. */
	a[1] = (struct repark_arg){ t, 1 };
	weft_task_t *h = weft_test_spawn(g, repark_late_acquirer, &a[1]);
	if (h)
		weft_task_release(h);
	WAIT_FOR(weft_lock_waiting(t->lock) == 2);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(t->len, 2);
	CHECK_EQ(t->log[0], 0);
	CHECK_EQ(t->log[1], 1);
	CHECK_EQ(t->rc[0], 0);
	CHECK_EQ(t->held[0], 1);
	CHECK_EQ(t->held[1], 1);
	CHECK_EQ(weft_condition_destroy(t->cond), 0);
	return 0;
}

WEFT_TEST_ROOT(condition, notified_task_gets_the_lock_before_a_later_acquirer,
	repark_late_root, &(struct repark_test){ 0 })

static int repark_fifo_root(void *arg)
{
	struct repark_test *t = arg;
	repark_setup(t);
	struct repark_arg a[REPARK_MAX];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	repark_spawn_waiters(g, t, a, REPARK_MAX, NULL);
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_condition_notify(t->cond, 2), 2);
	CHECK_EQ(weft_lock_waiting(t->lock), 2);
	CHECK_EQ(weft_condition_notify(t->cond, 1), 1);
	CHECK_EQ(weft_lock_waiting(t->lock), 3);
	CHECK_EQ(weft_condition_waiting(t->cond), 1);
	CHECK_EQ(weft_condition_notify_all(t->cond), 1);
	CHECK_EQ(weft_condition_notify_all(t->cond), 0);
	CHECK_EQ(weft_lock_waiting(t->lock), REPARK_MAX);
	CHECK_EQ(weft_condition_waiting(t->cond), 0);
	/* Held, and tasks queued for it: busy. */
	CHECK_EQ(weft_condition_destroy(t->cond), -EBUSY);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(t->len, REPARK_MAX);
	for (int i = 0; i < REPARK_MAX; i++) {
		CHECK_EQ(t->log[i], i);
		CHECK_EQ(t->rc[i], 0);
		CHECK_EQ(t->held[i], 1);
	}
	CHECK_EQ(weft_condition_destroy(t->cond), 0);
	return 0;
}

WEFT_TEST_ROOT(condition, notify_hands_the_lock_over_in_fifo_order,
	repark_fifo_root, &(struct repark_test){ 0 })

/* Whether the task behind h's id, a child of g, is parked on `what`. */
static int repark_parked_on(weft_group_t *g, uint64_t id, const char *what)
{
	weft_task_info_t info[REPARK_MAX + 2];
	size_t count = 0;
	if (weft_group_children(g, info, REPARK_MAX + 2, &count) != 0)
		return 0;
	for (size_t i = 0; i < count && i < REPARK_MAX + 2; i++)
		if (info[i].id == id)
			return info[i].parked_on != NULL &&
				strcmp(info[i].parked_on, what) == 0;
	return 0;
}

static int repark_cancel_root(void *arg)
{
	struct repark_test *t = arg;
	repark_setup(t);
	struct repark_arg a[2];
	weft_task_t *h[2] = { NULL, NULL };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	repark_spawn_waiters(g, t, a, 2, h);
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_condition_notify_all(t->cond), 2);
	CHECK_EQ(weft_lock_waiting(t->lock), 2);
	/* Cancel the first notified task while it waits for the lock: the
	 * cancellation wakes it, and it parks again, on the lock, keeping
	 * its place (it must not take the lock from us, nor give up). */
	CHECK_EQ(weft_task_cancel(h[0]), 0);
	uint64_t id0 = weft_task_id(h[0]);
	WAIT_FOR(repark_parked_on(g, id0, "lock"));
	CHECK_EQ(weft_lock_held(t->lock), 1);
	CHECK_EQ(weft_lock_waiting(t->lock), 2);
	CHECK_EQ(weft_lock_release(t->lock), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* It had the lock first, as notified, and reported the
	 * cancellation; the other one was notified normally. */
	CHECK_EQ(t->len, 2);
	CHECK_EQ(t->log[0], 0);
	CHECK_EQ(t->log[1], 1);
	CHECK_EQ(t->rc[0], -ECANCELED);
	CHECK_EQ(t->held[0], 1);
	CHECK_EQ(t->rc[1], 0);
	CHECK_EQ(t->held[1], 1);
	for (int i = 0; i < 2; i++)
		weft_task_release(h[i]);
	CHECK_EQ(weft_condition_destroy(t->cond), 0);
	return 0;
}

static int repark_broken_root(void *arg);

WEFT_TEST_ROOT(condition, notified_task_gets_eownerdead_when_the_lock_breaks,
	repark_broken_root, &(struct repark_test){ 0 })

WEFT_TEST_ROOT(condition,
	task_cancelled_waiting_for_the_lock_gets_it_and_reports_ecanceled,
	repark_cancel_root, &(struct repark_test){ 0 })

/* The notifier returns still holding the lock: the lock breaks, and the
 * notified task, waiting for it, gets -EOWNERDEAD without it. */
static int repark_broken_notifier(void *arg)
{
	struct repark_test *t = arg;
	CHECK_EQ(weft_lock_acquire(t->lock), 0);
	CHECK_EQ(weft_condition_notify(t->cond, 1), 1);
	return 0; /* still holding the lock */
}

static int repark_broken_root(void *arg)
{
	struct repark_test *t = arg;
	repark_setup(t);
	struct repark_arg a[1];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	repark_spawn_waiters(g, t, a, 1, NULL);
	weft_group_t *g2;
	CHECK_EQ(weft_group_open(&g2), 0);
	CHECK_EQ(weft_group_spawn(g2, repark_broken_notifier, t), 0);
	CHECK_EQ(weft_group_join(g2, NULL), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(t->rc[0], -EOWNERDEAD);
	CHECK_EQ(t->held[0], 0);
	CHECK_EQ(weft_condition_destroy(t->cond), 0);
	return 0;
}

/* }======================================================= */

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
		WEFT_TEST(
			test_condition__notified_task_gets_the_lock_before_a_later_acquirer),
		WEFT_TEST(
			test_condition__notify_hands_the_lock_over_in_fifo_order),
		WEFT_TEST(
			test_condition__task_cancelled_waiting_for_the_lock_gets_it_and_reports_ecanceled),
		WEFT_TEST(
			test_condition__notified_task_gets_eownerdead_when_the_lock_breaks),
	};
	return WEFT_RUN_TESTS(tests);
}
