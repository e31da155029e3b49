/* Wait queues across every primitive: a cancellation requested before the
 * grant wins (Trio's and AnyIO's own tests).  Two tasks wait, oldest
 * first; a third cancels the oldest waiter's scope and then, without
 * yielding, hands over one resource (releases the Lock, the Semaphore, a
 * limiter token, notifies the Condition once, sets the Event, sends one
 * item).  The cancelled waiter must get -ECANCELED and nothing; the
 * resource goes to the next waiter.  At 1 worker the cancelled waiter is
 * still queued when the hand-over happens (it has not run since its
 * cancel woke it), which is the case that used to give it the resource;
 * at 2 and 4 it may also have left first, with the same outcome. */
#include <errno.h>
#include <string.h>

#include "support.h"

enum prim { P_LOCK, P_SEMAPHORE, P_LIMITER, P_CONDITION, P_EVENT, P_CHANNEL };

struct grant_case {
	enum prim p;
	weft_lock_t *lock;
	weft_semaphore_t *sem;
	weft_limiter_t *lim;
	weft_condition_t *cond;
	weft_event_t *ev;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	weft_scope_t *scope[2];
	int rc[2];
	int item[2];
};

struct waiter_arg {
	struct grant_case *c;
	int i;
};

/* Tasks parked on the case's primitive. */
static size_t grant_waiting(struct grant_case *c)
{
	switch (c->p) {
	case P_LOCK: return weft_lock_waiting(c->lock);
	case P_SEMAPHORE: return weft_semaphore_waiting(c->sem);
	case P_LIMITER: {
		weft_limiter_stats_t st;
		return weft_limiter_stats(c->lim, &st) == 0 ? st.waiting : 0;
	}
	case P_CONDITION: return weft_condition_waiting(c->cond);
	case P_EVENT: return weft_event_waiting(c->ev);
	case P_CHANNEL: {
		weft_channel_stats_t st;
		return weft_channel_rx_stats(c->rx, &st) == 0 ? st.waiting_recv
							      : 0;
	}
	}
	return 0;
}

static int grant_waiter(void *arg)
{
	struct waiter_arg *w = arg;
	struct grant_case *c = w->c;
	weft_scope_t *s;
	if (!CHECK_EQ(weft_move_on_after(&s, 10 * WEFT_SEC), 0))
		return 0;
	c->scope[w->i] = s;
	int rc = 0;
	switch (c->p) {
	case P_LOCK:
		rc = weft_lock_acquire(c->lock);
		if (rc == 0)
			CHECK_EQ(weft_lock_release(c->lock), 0);
		break;
	case P_SEMAPHORE:
		/* A permit taken is kept: the root checks the count. */
		rc = weft_semaphore_acquire(c->sem);
		break;
	case P_LIMITER:
		rc = weft_limiter_acquire(c->lim);
		if (rc == 0)
			CHECK_EQ(weft_limiter_release(c->lim), 0);
		break;
	case P_CONDITION:
		if (!CHECK_EQ(weft_lock_acquire(weft_condition_lock(c->cond)),
			    0))
			break;
		rc = weft_condition_wait(c->cond);
		/* Held again on both outcomes. */
		CHECK_EQ(weft_lock_release(weft_condition_lock(c->cond)), 0);
		break;
	case P_EVENT: rc = weft_event_wait(c->ev); break;
	case P_CHANNEL:
		c->item[w->i] = -1;
		rc = weft_channel_receive(c->rx, &c->item[w->i]);
		break;
	}
	c->rc[w->i] = rc;
	CHECK_EQ(weft_scope_exit(s), 0);
	/* The scope that the root cancelled caught its own cancellation. */
	CHECK_EQ(weft_scope_cancelled_caught(s), rc == -ECANCELED);
	c->scope[w->i] = NULL;
	weft_scope_destroy(s);
	return 0;
}

/* Waits (by yielding) until n tasks are parked on the primitive. */
static int grant_wait_parked(struct grant_case *c, size_t n)
{
	int64_t give_up = weft_now() + 10 * WEFT_SEC;
	while (grant_waiting(c) < n) {
		if (weft_now() > give_up || weft_sleep(WEFT_MSEC / 10) != 0)
			return 0;
	}
	return 1;
}

static int grant_root(void *arg)
{
	struct grant_case *c = arg;
	switch (c->p) {
	case P_LOCK:
		CHECK_EQ(weft_lock_create(&c->lock), 0);
		CHECK_EQ(weft_lock_acquire(c->lock), 0);
		break;
	case P_SEMAPHORE:
		CHECK_EQ(weft_semaphore_create(&c->sem, 0, 10), 0);
		break;
	case P_LIMITER:
		CHECK_EQ(weft_limiter_create(&c->lim, 1), 0);
		CHECK_EQ(weft_limiter_acquire(c->lim), 0);
		break;
	case P_CONDITION:
		CHECK_EQ(weft_condition_create(&c->cond, NULL), 0);
		break;
	case P_EVENT: CHECK_EQ(weft_event_create(&c->ev), 0); break;
	case P_CHANNEL:
		CHECK_EQ(weft_channel_open(&c->tx, &c->rx, sizeof(int), 0), 0);
		break;
	}
	struct waiter_arg w[2] = { { c, 0 }, { c, 1 } };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	/* The oldest waiter first, then the second. */
	CHECK_EQ(weft_group_spawn(g, grant_waiter, &w[0]), 0);
	CHECK(grant_wait_parked(c, 1));
	CHECK_EQ(weft_group_spawn(g, grant_waiter, &w[1]), 0);
	CHECK(grant_wait_parked(c, 2));
	/* Cancel the oldest waiter, then hand over one resource at once. */
	if (c->p == P_CONDITION)
		CHECK_EQ(weft_lock_acquire(weft_condition_lock(c->cond)), 0);
	CHECK_EQ(weft_scope_cancel(c->scope[0], "cancelled before the grant"),
		0);
	int item = 42;
	switch (c->p) {
	case P_LOCK: CHECK_EQ(weft_lock_release(c->lock), 0); break;
	case P_SEMAPHORE: CHECK_EQ(weft_semaphore_release(c->sem), 0); break;
	case P_LIMITER: CHECK_EQ(weft_limiter_release(c->lim), 0); break;
	case P_CONDITION:
		/* One notification, and it reaches the live waiter. */
		CHECK_EQ(weft_condition_notify(c->cond, 1), 1);
		CHECK_EQ(weft_lock_release(weft_condition_lock(c->cond)), 0);
		break;
	case P_EVENT: CHECK_EQ(weft_event_set(c->ev), 0); break;
	case P_CHANNEL: CHECK_EQ(weft_channel_send(c->tx, &item), 0); break;
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(c->rc[0], -ECANCELED);
	CHECK_EQ(c->rc[1], 0);
	switch (c->p) {
	case P_LOCK:
		CHECK(!weft_lock_locked(c->lock));
		CHECK_EQ(weft_lock_destroy(c->lock), 0);
		break;
	case P_SEMAPHORE:
		/* The one permit went to the live waiter, not to the
		 * cancelled one nor back to the count. */
		CHECK_EQ(weft_semaphore_value(c->sem), 0);
		CHECK_EQ(weft_semaphore_destroy(c->sem), 0);
		break;
	case P_LIMITER: {
		weft_limiter_stats_t st;
		CHECK_EQ(weft_limiter_stats(c->lim, &st), 0);
		CHECK_EQ(st.borrowed, 0);
		CHECK_EQ(weft_limiter_destroy(c->lim), 0);
		break;
	}
	case P_CONDITION: CHECK_EQ(weft_condition_destroy(c->cond), 0); break;
	case P_EVENT: CHECK_EQ(weft_event_destroy(c->ev), 0); break;
	case P_CHANNEL:
		CHECK_EQ(c->item[0], -1);
		CHECK_EQ(c->item[1], 42);
		weft_channel_tx_release(c->tx);
		weft_channel_rx_release(c->rx);
		break;
	}
	return 0;
}

#define GRANT_TEST(name, prim)                                                 \
	static void test_grant__##name(void **state)                           \
	{                                                                      \
		struct grant_case c;                                           \
		memset(&c, 0, sizeof c);                                       \
		c.p = (prim);                                                  \
		weft_test_root(state, grant_root, &c);                         \
	}

GRANT_TEST(a_cancelled_lock_waiter_is_passed_over, P_LOCK)
GRANT_TEST(a_cancelled_semaphore_waiter_gets_no_permit, P_SEMAPHORE)
GRANT_TEST(a_cancelled_limiter_waiter_gets_no_token, P_LIMITER)
GRANT_TEST(a_cancelled_condition_waiter_is_not_notified, P_CONDITION)
GRANT_TEST(a_cancelled_event_waiter_is_cancelled_though_the_event_is_set,
	P_EVENT)
GRANT_TEST(a_cancelled_receiver_gets_no_item, P_CHANNEL)

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_grant__a_cancelled_lock_waiter_is_passed_over),
		WEFT_TEST(
			test_grant__a_cancelled_semaphore_waiter_gets_no_permit),
		WEFT_TEST(test_grant__a_cancelled_limiter_waiter_gets_no_token),
		WEFT_TEST(
			test_grant__a_cancelled_condition_waiter_is_not_notified),
		WEFT_TEST(
			test_grant__a_cancelled_event_waiter_is_cancelled_though_the_event_is_set),
		WEFT_TEST(test_grant__a_cancelled_receiver_gets_no_item),
	};
	return WEFT_RUN_TESTS(tests);
}
