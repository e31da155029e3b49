/* Yield order (include/weft/cancel.h, weft_yield): a task that yields goes
 * behind every task that was runnable on its worker when it yielded, so
 * yields round-robin (Trio's and AnyIO's scheduling tests).  The order
 * is a per-worker promise, so these tests run at one worker, where it is
 * exact; with more workers a thief may take any task first.
 *
 * The root spawns the tasks and then parks on an event that the last one
 * sets (not in join, which would run unstolen children inline on the
 * root's stack instead of through the run queue), so the worker picks
 * them from its deque: newest first, the fork-join order, until a yield
 * asks for round robin. */
#include <stdatomic.h>

#include "support.h"

#define LOG_MAX 64

struct order {
	weft_event_t *all_done;
	atomic_int left;
	atomic_int len;
	int log[LOG_MAX]; /* what ran, in order (one worker: no race) */
};

static void order_log(struct order *o, int what)
{
	int i = atomic_fetch_add(&o->len, 1);
	if (CHECK(i < LOG_MAX))
		o->log[i] = what;
}

static void order_task_done(struct order *o)
{
	if (atomic_fetch_sub(&o->left, 1) == 1)
		CHECK_EQ(weft_event_set(o->all_done), 0);
}

/* {======================================================= three tasks */

struct three_arg {
	struct order *o;
	int id;
};

/* Tasks 1 and 2 run once; task 3 logs 3, yields, logs 30. */
static int three_task(void *arg)
{
	struct three_arg *a = arg;
	order_log(a->o, a->id);
	if (a->id == 3) {
		CHECK_EQ(weft_yield(), 0);
		order_log(a->o, 30);
	}
	order_task_done(a->o);
	return 0;
}

static int three_root(void *arg)
{
	struct order *o = arg;
	CHECK_EQ(weft_event_create(&o->all_done), 0);
	atomic_store(&o->left, 3);
	struct three_arg a[3];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct three_arg){ o, i + 1 };
		CHECK_EQ(weft_group_spawn(g, three_task, &a[i]), 0);
	}
	/* Runs 3 (the newest); 3 yields while 1 and 2 are queued. */
	CHECK_EQ(weft_event_wait(o->all_done), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(o->all_done), 0);
	return 0;
}

/* Task 3 yields while 1 and 2 are runnable; 1 runs and ends; 2 must run
 * next, not 3 again. */
static void test_yield__goes_behind_every_task_runnable_when_it_yielded(
	void **state)
{
	struct order o = { 0 };
	weft_test_root(state, three_root, &o);
	assert_int_equal(atomic_load(&o.len), 4);
	assert_int_equal(o.log[0], 3);
	assert_int_equal(o.log[1], 1);
	assert_int_equal(o.log[2], 2);
	assert_int_equal(o.log[3], 30);
}

/* }======================================================= */

/* {======================================================= rounds */

#define ROUND_TASKS 6

struct round_arg {
	struct order *o;
	int id;
};

/* Task i runs i + 1 slices (yields i times), logging its slice number. */
static int round_task(void *arg)
{
	struct round_arg *a = arg;
	for (int slice = 0; slice <= a->id; slice++) {
		order_log(a->o, slice * 10 + a->id);
		if (slice < a->id)
			CHECK_EQ(weft_yield(), 0);
	}
	order_task_done(a->o);
	return 0;
}

static int round_root(void *arg)
{
	struct order *o = arg;
	CHECK_EQ(weft_event_create(&o->all_done), 0);
	atomic_store(&o->left, ROUND_TASKS);
	struct round_arg a[ROUND_TASKS];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < ROUND_TASKS; i++) {
		a[i] = (struct round_arg){ o, i };
		CHECK_EQ(weft_group_spawn(g, round_task, &a[i]), 0);
	}
	CHECK_EQ(weft_event_wait(o->all_done), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(o->all_done), 0);
	return 0;
}

/* Tasks that yield different numbers of times, some ending while others
 * still yield: round r of every task runs before round r + 1 of any, and
 * within a round the tasks keep one order (the first round's order, less
 * the tasks that ended). */
static void test_yield__yielding_tasks_round_robin_while_others_end(
	void **state)
{
	struct order o = { 0 };
	weft_test_root(state, round_root, &o);
	int n = atomic_load(&o.len);
	/* 1 + 2 + ... + ROUND_TASKS slices. */
	assert_int_equal(n, ROUND_TASKS * (ROUND_TASKS + 1) / 2);
	/* The newest task starts (fork-join order), then the others in
	 * spawn order; task 0 ends after one slice. */
	int first[ROUND_TASKS] = { 5, 0, 1, 2, 3, 4 };
	for (int i = 0; i < ROUND_TASKS; i++)
		assert_int_equal(o.log[i], first[i]);
	int k = ROUND_TASKS;
	for (int round = 1; round < ROUND_TASKS; round++) {
		/* Round r: the tasks with id >= r, in the first round's
		 * order. */
		for (int i = 0; i < ROUND_TASKS; i++) {
			if (first[i] < round)
				continue;
			assert_true(k < n);
			assert_int_equal(o.log[k], round * 10 + first[i]);
			k++;
		}
	}
	assert_int_equal(k, n);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST_AT(
			test_yield__goes_behind_every_task_runnable_when_it_yielded,
			1),
		WEFT_TEST_AT(
			test_yield__yielding_tasks_round_robin_while_others_end,
			1),
	};
	return WEFT_RUN_TESTS(tests);
}
