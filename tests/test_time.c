/* Tests for weft's clock and sleeping (include/weft/time.h) and for how
 * sleeps meet cancel scopes and deadlines (include/weft/cancel.h).
 *
 * No timing assertions: a sleep is checked by ordering facts only ("after
 * the sleep, weft_now() >= its deadline"), never by how long it took.
 * Sleeps that must be interrupted are long (an hour) and run inside a
 * "safety" scope with a generous deadline; the test then checks that the
 * safety scope was NOT what woke them, so a lost wake-up fails the test
 * instead of hanging it.
 *
 * Every concurrent test runs at 1, 2 and 4 workers.  Tasks record
 * failures with CHECK (tests/support.h); weft_test_run asserts on the main
 * thread that none failed and that nothing leaked.
 *
 * Environment: WEFT_TEST_SEED  seed for the random deadlines (printed). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weft.h>

#include "support.h"

/* A deadline that is never meant to be reached by a passing test. */
#define SAFETY_NS (20 * WEFT_SEC)
#define HOUR_NS (3600 * WEFT_SEC)

/* {======================================================= helpers */

/* Opens the safety scope (see the file comment); NULL if it failed. */
static weft_scope_t *safety_open(void)
{
	weft_scope_t *s = NULL;
	if (!CHECK_EQ(weft_move_on_after(&s, SAFETY_NS), 0))
		return NULL;
	return s;
}

/* Checks that the safety deadline never fired, then closes it. */
static void safety_close(weft_scope_t *s)
{
	if (s == NULL)
		return;
	CHECK(!weft_scope_cancel_called(s));
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
}

/* Parks (weft_sleep) until *flag >= want, at most SAFETY_NS. */
static int task_wait_flag(atomic_int *flag, int want)
{
	int64_t give_up = weft_now() + SAFETY_NS;
	while (atomic_load(flag) < want) {
		if (weft_now() > give_up || weft_sleep(WEFT_MSEC) != 0)
			return 0;
	}
	return 1;
}

/* }======================================================= */

/* {======================================================= the clock */

static void test_time__now_is_monotonic_and_advances(void **state)
{
	(void)state;
	int64_t first = weft_now();
	assert_true(first > 0);
	int64_t prev = first;
	for (int i = 0; i < 100000; i++) {
		int64_t t = weft_now();
		assert_true(t >= prev);
		prev = t;
	}
	/* It advances (a bounded wait, not a duration check). */
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; i < 1000 && weft_now() == first; i++)
		nanosleep(&ms, NULL);
	assert_true(weft_now() > first);
}

struct stamp {
	int64_t spawned; /* parent's clock before the spawn */
	int64_t seen;	 /* child's clock when it ran */
};

static int stamp_child(void *arg)
{
	struct stamp *s = arg;
	s->seen = weft_now();
	CHECK(s->seen >= s->spawned);
	return 0;
}

static int root_stamps(void *arg)
{
	(void)arg;
	enum { N = 64 };
	struct stamp st[N];
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	for (int i = 0; i < N; i++) {
		st[i].spawned = weft_now();
		CHECK_EQ(weft_group_spawn(g, stamp_child, &st[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	int64_t after = weft_now();
	for (int i = 0; i < N; i++)
		CHECK(after >= st[i].seen);
	return 0;
}

WEFT_TEST_ROOT(time, now_never_goes_back_across_workers, root_stamps, NULL)

/* }======================================================= */

/* {======================================================= sleeping */

static int root_sleeps_various(void *arg)
{
	(void)arg;
	static const int64_t durations[] = { WEFT_MSEC / 10, WEFT_MSEC,
		2 * WEFT_MSEC, 5 * WEFT_MSEC, 10 * WEFT_MSEC };
	for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
		int64_t before = weft_now();
		CHECK_EQ(weft_sleep(durations[i]), 0);
		CHECK(weft_now() >= before + durations[i]);
	}
	return 0;
}

WEFT_TEST_ROOT(time, sleep_waits_at_least_its_duration, root_sleeps_various,
	NULL)

static int root_sleeps_until(void *arg)
{
	(void)arg;
	for (int i = 1; i <= 3; i++) {
		int64_t deadline = weft_now() + i * WEFT_MSEC;
		CHECK_EQ(weft_sleep_until(deadline), 0);
		CHECK(weft_now() >= deadline);
	}
	return 0;
}

WEFT_TEST_ROOT(time, sleep_until_returns_at_or_after_the_deadline,
	root_sleeps_until, NULL)

struct parallel {
	atomic_int woke;
};

static int sleep_10ms(void *arg)
{
	struct parallel *p = arg;
	int64_t deadline = weft_now() + 10 * WEFT_MSEC;
	if (CHECK_EQ(weft_sleep_until(deadline), 0) &&
		CHECK(weft_now() >= deadline))
		atomic_fetch_add(&p->woke, 1);
	return 0;
}

static int root_parallel_sleepers(void *arg)
{
	struct parallel *p = arg;
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	for (int i = 0; i < 200; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_10ms, p), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&p->woke), 200);
	return 0;
}

static void test_time__many_tasks_sleeping_in_parallel_all_wake(void **state)
{
	struct parallel p = { 0 };
	weft_test_root(state, root_parallel_sleepers, &p);
	assert_int_equal(atomic_load(&p.woke), 200);
}

static int set_flag(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
	return 0;
}

static int root_zero_sleeps(void *arg)
{
	(void)arg;
	CHECK_EQ(weft_sleep(0), 0);
	CHECK_EQ(weft_sleep(-1), 0);
	CHECK_EQ(weft_sleep(-WEFT_SEC), 0);
	CHECK_EQ(weft_sleep(INT64_MIN), 0);
	/* sleep(0) yields: at 1 worker the child can only run if it does. */
	atomic_int flag = 0;
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	CHECK_EQ(weft_group_spawn(g, set_flag, &flag), 0);
	for (int i = 0; i < 100000 && !atomic_load(&flag); i++)
		CHECK_EQ(weft_sleep(0), 0);
	CHECK(atomic_load(&flag));
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(time, sleep_of_zero_or_less_returns_zero_and_yields,
	root_zero_sleeps, NULL)

static int root_past_sleeps(void *arg)
{
	(void)arg;
	int64_t now = weft_now();
	CHECK_EQ(weft_sleep_until(now), 0);
	CHECK_EQ(weft_sleep_until(now - WEFT_SEC), 0);
	CHECK_EQ(weft_sleep_until(0), 0);
	CHECK_EQ(weft_sleep_until(INT64_MIN), 0);
	/* Like sleep(0), a past deadline yields. */
	atomic_int flag = 0;
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	CHECK_EQ(weft_group_spawn(g, set_flag, &flag), 0);
	for (int i = 0; i < 100000 && !atomic_load(&flag); i++)
		CHECK_EQ(weft_sleep_until(0), 0);
	CHECK(atomic_load(&flag));
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(time, sleep_until_in_the_past_returns_zero_and_yields,
	root_past_sleeps, NULL)

/* }======================================================= */

/* {======================================================= cancellation */

static int root_past_sleeps_cancelled(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	if (!CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0))
		return -ENOMEM;
	CHECK_EQ(weft_scope_cancel(s, NULL), 0);
	/* Level-triggered: every one of them sees it. */
	CHECK_EQ(weft_sleep(0), -ECANCELED);
	CHECK_EQ(weft_sleep(-5), -ECANCELED);
	CHECK_EQ(weft_sleep_until(0), -ECANCELED);
	CHECK_EQ(weft_sleep_until(weft_now()), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	/* Outside the scope the same calls succeed again. */
	CHECK_EQ(weft_sleep(0), 0);
	return 0;
}

WEFT_TEST_ROOT(time, zero_and_past_sleeps_are_checkpoints,
	root_past_sleeps_cancelled, NULL)

static int root_sleep_in_cancelled_scope(void *arg)
{
	(void)arg;
	weft_scope_t *safety = safety_open();
	/* Cancelled after entry. */
	weft_scope_t *s;
	if (CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0)) {
		CHECK_EQ(weft_scope_cancel(s, "no sleeping"), 0);
		CHECK_EQ(weft_sleep(HOUR_NS), -ECANCELED);
		CHECK_EQ(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
		weft_cancel_reason_t r;
		CHECK_EQ(weft_cancel_reason(&r), 0);
		CHECK_EQ(r.origin, WEFT_CANCEL_EXPLICIT);
		CHECK(strcmp(r.text, "no sleeping") == 0);
		CHECK_EQ(weft_scope_exit(s), 0);
		CHECK(weft_scope_cancelled_caught(s));
		weft_scope_destroy(s);
	}
	/* Cancelled before entry. */
	if (CHECK_EQ(weft_scope_create(&s, WEFT_FOREVER, 0), 0)) {
		CHECK_EQ(weft_scope_cancel(s, NULL), 0);
		CHECK_EQ(weft_scope_enter(s), 0);
		CHECK_EQ(weft_sleep(HOUR_NS), -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), 0);
		weft_scope_destroy(s);
	}
	/* A deadline already past when the scope opens. */
	if (CHECK_EQ(weft_move_on_at(&s, weft_now() - WEFT_MSEC), 0)) {
		CHECK_EQ(weft_sleep(HOUR_NS), -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), 0);
		weft_scope_destroy(s);
	}
	safety_close(safety);
	return 0;
}

WEFT_TEST_ROOT(time, sleep_in_a_cancelled_scope_returns_ecanceled_at_once,
	root_sleep_in_cancelled_scope, NULL)

struct wake {
	weft_scope_t *s; /* created by the root, entered by the sleeper */
	atomic_int entered;
	int sleep_rc;
	weft_cancel_reason_t reason;
	int64_t new_deadline; /* for the deadline-change test */
	int64_t woke_at;
};

static int sleeper_in_shared_scope(void *arg)
{
	struct wake *w = arg;
	weft_scope_t *safety = safety_open();
	if (CHECK_EQ(weft_scope_enter(w->s), 0)) {
		atomic_store(&w->entered, 1);
		w->sleep_rc = weft_sleep(HOUR_NS);
		w->woke_at = weft_now();
		CHECK_EQ(weft_cancel_reason(&w->reason), 0);
		CHECK_EQ(weft_scope_exit(w->s), 0);
	}
	safety_close(safety);
	return 0;
}

static int canceller_task(void *arg)
{
	struct wake *w = arg;
	if (CHECK(task_wait_flag(&w->entered, 1)))
		CHECK_EQ(weft_scope_cancel(w->s, "wake up"), 0);
	return 0;
}

static int root_cancel_from_task(void *arg)
{
	(void)arg;
	struct wake w = { 0 };
	if (!CHECK_EQ(weft_scope_create(&w.s, WEFT_FOREVER, 0), 0))
		return -ENOMEM;
	weft_group_t *g;
	if (CHECK_EQ(weft_group_open(&g), 0)) {
		CHECK_EQ(weft_group_spawn(g, sleeper_in_shared_scope, &w), 0);
		CHECK_EQ(weft_group_spawn(g, canceller_task, &w), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	CHECK_EQ(w.sleep_rc, -ECANCELED);
	CHECK_EQ(w.reason.origin, WEFT_CANCEL_EXPLICIT);
	CHECK(strcmp(w.reason.text, "wake up") == 0);
	CHECK(weft_scope_cancelled_caught(w.s));
	weft_scope_destroy(w.s);
	return 0;
}

WEFT_TEST_ROOT(time, sleep_is_woken_by_a_scope_cancel_from_another_task,
	root_cancel_from_task, NULL)

static void *canceller_thread(void *arg)
{
	struct wake *w = arg;
	/* A plain thread: wait with nanosleep, boundedly. */
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; i < 20000 && !atomic_load(&w->entered); i++)
		nanosleep(&ms, NULL);
	weft_scope_cancel(w->s, "from a thread");
	return NULL;
}

static int root_cancel_from_thread(void *arg)
{
	(void)arg;
	struct wake w = { 0 };
	if (!CHECK_EQ(weft_scope_create(&w.s, WEFT_FOREVER, 0), 0))
		return -ENOMEM;
	weft_group_t *g;
	pthread_t th;
	int have_thread = 0;
	if (CHECK_EQ(weft_group_open(&g), 0)) {
		CHECK_EQ(weft_group_spawn(g, sleeper_in_shared_scope, &w), 0);
		have_thread = CHECK_EQ(pthread_create(&th, NULL,
					       canceller_thread, &w),
			0);
		if (!have_thread)
			weft_scope_cancel(w.s, NULL);
		/* Parks until the sleeper is woken by the thread. */
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	if (have_thread)
		pthread_join(th, NULL); /* it has already cancelled */
	CHECK(atomic_load(&w.entered));
	CHECK_EQ(w.sleep_rc, -ECANCELED);
	CHECK_EQ(w.reason.origin, WEFT_CANCEL_EXPLICIT);
	CHECK_EQ(w.reason.task_id, 0); /* not cancelled by a task */
	CHECK(strcmp(w.reason.text, "from a thread") == 0);
	weft_scope_destroy(w.s);
	return 0;
}

WEFT_TEST_ROOT(time, sleep_is_woken_by_a_cancel_from_a_plain_thread,
	root_cancel_from_thread, NULL)

static int root_move_on_wakes_sleep(void *arg)
{
	(void)arg;
	weft_scope_t *safety = safety_open();
	weft_scope_t *s;
	if (CHECK_EQ(weft_move_on_after(&s, 5 * WEFT_MSEC), 0)) {
		int64_t deadline = weft_scope_deadline(s);
		CHECK_EQ(weft_sleep(HOUR_NS), -ECANCELED);
		CHECK(weft_now() >= deadline);
		weft_cancel_reason_t r;
		CHECK_EQ(weft_cancel_reason(&r), 0);
		CHECK_EQ(r.origin, WEFT_CANCEL_DEADLINE);
		CHECK_EQ(weft_scope_exit(s), 0); /* move_on: silent */
		CHECK(weft_scope_cancelled_caught(s));
		weft_scope_destroy(s);
	}
	/* The same with weft_move_on_at and sleep_until(FOREVER). */
	int64_t at = weft_now() + 3 * WEFT_MSEC;
	if (CHECK_EQ(weft_move_on_at(&s, at), 0)) {
		CHECK_EQ(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
		CHECK(weft_now() >= at);
		CHECK_EQ(weft_scope_exit(s), 0);
		CHECK(weft_scope_cancelled_caught(s));
		weft_scope_destroy(s);
	}
	safety_close(safety);
	/* After the scopes, sleeping works again. */
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	return 0;
}

WEFT_TEST_ROOT(time, sleep_is_woken_by_a_move_on_after_deadline,
	root_move_on_wakes_sleep, NULL)

static int root_fail_after_sleep(void *arg)
{
	(void)arg;
	weft_scope_t *safety = safety_open();
	weft_scope_t *s;
	if (CHECK_EQ(weft_fail_after(&s, 2 * WEFT_MSEC), 0)) {
		CHECK_EQ(weft_sleep(HOUR_NS), -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
		weft_scope_destroy(s);
	}
	safety_close(safety);
	return 0;
}

WEFT_TEST_ROOT(time, fail_after_around_a_long_sleep_gives_etimedout,
	root_fail_after_sleep, NULL)

static int root_short_sleep_in_long_scope(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	if (!CHECK_EQ(weft_move_on_after(&s, HOUR_NS), 0))
		return -ENOMEM;
	int64_t before = weft_now();
	CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
	CHECK(weft_now() >= before + 2 * WEFT_MSEC);
	CHECK(!weft_scope_cancel_called(s));
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(!weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(time, short_sleep_inside_a_long_deadline_returns_zero,
	root_short_sleep_in_long_scope, NULL)

static int root_huge_sleeps(void *arg)
{
	(void)arg;
	weft_scope_t *safety = safety_open();
	static const int64_t huge[] = { INT64_MAX, INT64_MAX - 1,
		INT64_MAX / 2 };
	for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
		weft_scope_t *s;
		if (!CHECK_EQ(weft_move_on_after(&s, 2 * WEFT_MSEC), 0))
			break;
		int64_t deadline = weft_scope_deadline(s);
		/* now + huge must not wrap into the past (which would
		 * return 0 at once): only the scope's deadline ends it. */
		CHECK_EQ(weft_sleep(huge[i]), -ECANCELED);
		CHECK(weft_now() >= deadline);
		CHECK_EQ(weft_scope_exit(s), 0);
		weft_scope_destroy(s);
	}
	safety_close(safety);
	return 0;
}

WEFT_TEST_ROOT(time, huge_sleeps_do_not_wrap_into_the_past, root_huge_sleeps,
	NULL)

/* Every int64 absolute deadline is valid input (a deadline within a tick
 * of INT64_MAX once overflowed the deadline wheel, and the runtime's
 * timers stopped).  Past ones end a sleep at once and cancel a scope at
 * once; far ones never fire, and the runtime's other deadlines keep
 * firing around them. */
static int root_extreme_deadlines(void *arg)
{
	(void)arg;
	weft_scope_t *safety = safety_open();
	static const int64_t far[] = { INT64_MAX - 1, INT64_MAX - 65535,
		INT64_MAX - 65536, INT64_MAX - 65537, INT64_MAX / 2 };
	static const int64_t past[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1 };
	for (size_t i = 0; i < sizeof far / sizeof far[0]; i++) {
		/* A sleep until a far deadline ends only by its scope's. */
		weft_scope_t *s;
		if (!CHECK_EQ(weft_move_on_after(&s, 2 * WEFT_MSEC), 0))
			break;
		int64_t deadline = weft_scope_deadline(s);
		CHECK_EQ(weft_sleep_until(far[i]), -ECANCELED);
		CHECK(weft_now() >= deadline);
		CHECK_EQ(weft_scope_exit(s), 0);
		weft_scope_destroy(s);
		/* A scope with a far deadline does not cancel a 1 ms sleep;
		 * moving it far again while entered changes nothing. */
		if (!CHECK_EQ(weft_move_on_at(&s, far[i]), 0))
			break;
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
		CHECK_EQ(weft_scope_set_deadline(s, far[i] - 1), 0);
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
		CHECK(!weft_scope_cancel_called(s));
		CHECK_EQ(weft_scope_exit(s), 0);
		weft_scope_destroy(s);
	}
	for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
		CHECK_EQ(weft_sleep_until(past[i]), 0);
		weft_scope_t *s;
		if (!CHECK_EQ(weft_move_on_at(&s, past[i]), 0))
			break;
		CHECK_EQ(weft_sleep(WEFT_SEC), -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), 0);
		CHECK(weft_scope_cancelled_caught(s));
		weft_scope_destroy(s);
	}
	/* Now, and INT64_MAX (WEFT_FOREVER: no deadline at all). */
	CHECK_EQ(weft_sleep_until(weft_now()), 0);
	weft_scope_t *forever;
	if (CHECK_EQ(weft_move_on_at(&forever, INT64_MAX), 0)) {
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
		CHECK(!weft_scope_cancel_called(forever));
		CHECK_EQ(weft_scope_exit(forever), 0);
		weft_scope_destroy(forever);
	}
	/* The timers still work. */
	int64_t t0 = weft_now();
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK(weft_now() - t0 >= WEFT_MSEC);
	safety_close(safety);
	return 0;
}

WEFT_TEST_ROOT(time, every_int64_deadline_is_valid_input,
	root_extreme_deadlines, NULL)

static int sleeper_in_own_scope(void *arg)
{
	struct wake *w = arg;
	weft_scope_t *safety = safety_open();
	/* An hour-long deadline is in the timer heap before the move. */
	if (CHECK_EQ(weft_move_on_after(&w->s, HOUR_NS), 0)) {
		atomic_store(&w->entered, 1);
		w->sleep_rc = weft_sleep(HOUR_NS);
		w->woke_at = weft_now();
		CHECK_EQ(weft_cancel_reason(&w->reason), 0);
		CHECK_EQ(weft_scope_exit(w->s), 0);
		/* Only now may the deadline-mover stop touching s. */
	}
	safety_close(safety);
	return 0;
}

static int deadline_mover(void *arg)
{
	struct wake *w = arg;
	if (CHECK(task_wait_flag(&w->entered, 1))) {
		w->new_deadline = weft_now() + 2 * WEFT_MSEC;
		CHECK_EQ(weft_scope_set_deadline(w->s, w->new_deadline), 0);
	}
	return 0;
}

static int root_deadline_moved_earlier(void *arg)
{
	(void)arg;
	struct wake w = { 0 };
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	CHECK_EQ(weft_group_spawn(g, sleeper_in_own_scope, &w), 0);
	CHECK_EQ(weft_group_spawn(g, deadline_mover, &w), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(w.sleep_rc, -ECANCELED);
	CHECK_EQ(w.reason.origin, WEFT_CANCEL_DEADLINE);
	CHECK(w.new_deadline != 0 && w.woke_at >= w.new_deadline);
	if (w.s)
		weft_scope_destroy(w.s);
	return 0;
}

WEFT_TEST_ROOT(time, moving_a_deadline_earlier_wakes_the_sleep_in_its_scope,
	root_deadline_moved_earlier, NULL)

/* }======================================================= */

/* {======================================================= many sleepers */

#define NSLEEPERS 1000

struct sleeper {
	int64_t deadline;
	int64_t woke;
	int rc;
};

static int random_sleeper(void *arg)
{
	struct sleeper *s = arg;
	s->rc = weft_sleep_until(s->deadline);
	s->woke = weft_now();
	CHECK_EQ(s->rc, 0);
	CHECK(s->woke >= s->deadline);
	return 0;
}

struct many {
	unsigned seed;
	struct sleeper s[NSLEEPERS];
};

static int root_random_sleepers(void *arg)
{
	struct many *m = arg;
	unsigned seed = m->seed;
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	int64_t base = weft_now();
	for (int i = 0; i < NSLEEPERS; i++) {
		int64_t ms = 1 + rand_r(&seed) % 20;
		/* Some share a deadline exactly, most do not. */
		int64_t jitter = (i % 7 == 0) ? 0 : rand_r(&seed) % WEFT_MSEC;
		m->s[i].deadline = base + ms * WEFT_MSEC + jitter;
		m->s[i].rc = 1;
		CHECK_EQ(weft_group_spawn(g, random_sleeper, &m->s[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_time__a_thousand_sleepers_all_wake_after_their_deadlines(
	void **state)
{
	struct many *m = calloc(1, sizeof *m);
	assert_non_null(m);
	m->seed = weft_test_seed();
	weft_test_root(state, root_random_sleepers, m);
	for (int i = 0; i < NSLEEPERS; i++) {
		assert_int_equal(m->s[i].rc, 0);
		assert_true(m->s[i].woke >= m->s[i].deadline);
	}
	free(m);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time__now_is_monotonic_and_advances),
		WEFT_TEST(test_time__now_never_goes_back_across_workers),
		WEFT_TEST(test_time__sleep_waits_at_least_its_duration),
		WEFT_TEST(
			test_time__sleep_until_returns_at_or_after_the_deadline),
		WEFT_TEST(test_time__many_tasks_sleeping_in_parallel_all_wake),
		WEFT_TEST(
			test_time__sleep_of_zero_or_less_returns_zero_and_yields),
		WEFT_TEST(
			test_time__sleep_until_in_the_past_returns_zero_and_yields),
		WEFT_TEST(test_time__zero_and_past_sleeps_are_checkpoints),
		WEFT_TEST(
			test_time__sleep_in_a_cancelled_scope_returns_ecanceled_at_once),
		WEFT_TEST(
			test_time__sleep_is_woken_by_a_scope_cancel_from_another_task),
		WEFT_TEST(
			test_time__sleep_is_woken_by_a_cancel_from_a_plain_thread),
		WEFT_TEST(
			test_time__sleep_is_woken_by_a_move_on_after_deadline),
		WEFT_TEST(
			test_time__fail_after_around_a_long_sleep_gives_etimedout),
		WEFT_TEST(
			test_time__short_sleep_inside_a_long_deadline_returns_zero),
		WEFT_TEST(test_time__huge_sleeps_do_not_wrap_into_the_past),
		WEFT_TEST(test_time__every_int64_deadline_is_valid_input),
		WEFT_TEST(
			test_time__moving_a_deadline_earlier_wakes_the_sleep_in_its_scope),
		WEFT_TEST(
			test_time__a_thousand_sleepers_all_wake_after_their_deadlines),
	};
	return WEFT_RUN_TESTS(tests);
}
