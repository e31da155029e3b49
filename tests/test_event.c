/* Event (include/weft/sync.h): a flag that, once set, stays set; wait
 * parks until it is.  See sync_fixture.h for how these tests meet on
 * workers and wait without timing assertions. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "support.h"
#include "sync_fixture.h"

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

static void test_event__set_wakes_every_waiter_once_across_workers(void **state)
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

WEFT_TEST_ROOT(event, wait_after_set_returns_at_once, ev_set_first_root, NULL)

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

static void test_event__set_from_a_plain_thread_wakes_waiters(void **state)
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

WEFT_TEST_ROOT(event, destroy_with_a_waiter_is_ebusy, ev_busy_root,
	&(struct ev_test){ 0 })

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_event__set_wakes_every_waiter_once_across_workers),
		WEFT_TEST(test_event__wait_after_set_returns_at_once),
		WEFT_TEST(test_event__set_from_a_plain_thread_wakes_waiters),
		WEFT_TEST(test_event__destroy_with_a_waiter_is_ebusy),
	};
	return WEFT_RUN_TESTS(tests);
}
