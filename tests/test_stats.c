/* Scheduler counters (include/weft/inspect.h: weft_runtime_stats,
 * weft_worker_stats): known workloads (spawns and joins, yields, parks on
 * an event, steals, idle sleeps, I/O), the consistency of the counters
 * with each other and with the per-worker view, and the errors.  Every
 * concurrent test runs at 1, 2 and 4 workers; the counts checked are
 * exact where the workload fixes them and bounds where scheduling
 * decides. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support.h"

/* The sum of every wake counter: once the runtime is idle it equals the
 * parks (inspect.h). */
static uint64_t wakes_of(const weft_runtime_stats_t *s)
{
	return s->total.wakes_local + s->total.wakes_remote +
		s->total.wakes_early + s->wakes_io + s->wakes_thread;
}

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Checks, on the main thread after a run, what holds once the runtime is
 * idle: wakes match parks, the workers' view sums to the total, no steal
 * at 1 worker, sleeps and wake-ups differ by at most one per worker. */
static void check_idle(weft_runtime_t *rt, unsigned workers,
	weft_runtime_stats_t *out)
{
	weft_runtime_stats_t s;
	assert_int_equal(weft_runtime_stats(rt, &s), 0);
	assert_int_equal(s.workers, workers);
	assert_true(s.total.parks == wakes_of(&s));
	assert_true(s.total.steals <= s.total.steal_attempts);
	if (workers == 1) {
		assert_true(s.total.steal_attempts == 0);
		assert_true(s.total.steals == 0);
		assert_true(s.total.stolen_extra == 0);
	}
	weft_worker_stats_t sum;
	memset(&sum, 0, sizeof sum);
	for (unsigned i = 0; i < workers; i++) {
		weft_worker_stats_t w;
		assert_int_equal(weft_worker_stats(rt, i, &w), 0);
		sum.tasks_run += w.tasks_run;
		sum.inline_run += w.inline_run;
		sum.parks += w.parks;
		sum.wakes_local += w.wakes_local;
		sum.wakes_remote += w.wakes_remote;
		sum.wakes_early += w.wakes_early;
		/* A worker may be asleep now: one sleep without its wake. */
		assert_true(w.sleeps >= w.sleep_wakeups);
		assert_true(w.sleeps <= w.sleep_wakeups + 1);
	}
	/* No task runs now, so these do not move between the two reads. */
	assert_true(sum.tasks_run == s.total.tasks_run);
	assert_true(sum.inline_run == s.total.inline_run);
	assert_true(sum.parks == s.total.parks);
	assert_true(sum.wakes_local == s.total.wakes_local);
	assert_true(sum.wakes_remote == s.total.wakes_remote);
	assert_true(sum.wakes_early == s.total.wakes_early);
	if (out)
		*out = s;
}

/* Runs root(arg) on a fresh runtime of the test's worker count, checks
 * the idle properties, hands the final counters back, and destroys. */
static void run_and_check(void **state, weft_fn root, void *arg,
	weft_runtime_stats_t *out)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	weft_runtime_t *rt = weft_test_runtime_create(workers);
	weft_runtime_stats_t s0;
	assert_int_equal(weft_runtime_stats(rt, &s0), 0);
	assert_true(s0.tasks_spawned == 0);
	assert_true(s0.total.tasks_run == 0);
	assert_true(s0.total.parks == 0);
	weft_error_t *err = NULL;
	assert_int_equal(weft_runtime_run(rt, root, arg, &err), 0);
	assert_null(err);
	check_idle(rt, workers, out);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	weft_test_assert_no_leaks();
}

/* {======================================================= spawn and join */

#define SPAWNS 200

static int nothing(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

static int spawn_root(void *arg)
{
	atomic_int *ran = arg;
	weft_runtime_stats_t a, b;
	CHECK_EQ(weft_runtime_stats(NULL, &a), 0);
	CHECK(a.tasks_live >= 1); /* this root */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < SPAWNS; i++)
		CHECK_EQ(weft_group_spawn(g, nothing, ran), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_runtime_stats(NULL, &b), 0);
	CHECK_EQ(atomic_load(ran), SPAWNS);
	CHECK_EQ(b.tasks_spawned - a.tasks_spawned, SPAWNS);
	CHECK_EQ(b.groups - a.groups, 1);
	/* Every child ran once, inline or switched into. */
	CHECK(b.total.tasks_run + b.total.inline_run -
			(a.total.tasks_run + a.total.inline_run) >=
		SPAWNS);
	return 0;
}

static void test_stats__spawns_and_joins_are_counted(void **state)
{
	atomic_int ran = 0;
	weft_runtime_stats_t s;
	run_and_check(state, spawn_root, &ran, &s);
	assert_true(s.tasks_spawned == SPAWNS);
	assert_true(s.groups == 1);
	assert_true(s.total.tasks_run + s.total.inline_run >= SPAWNS + 1);
	/* The root came through the injection queue. */
	assert_true(s.total.inject_pops >= 1);
}

/* }======================================================= */

/* {======================================================= yields */

#define YIELDS 300

static int yielder(void *arg)
{
	(void)arg;
	for (int i = 0; i < YIELDS; i++)
		CHECK_EQ(weft_yield(), 0);
	return 0;
}

static int yield_root(void *arg)
{
	(void)arg;
	weft_runtime_stats_t a, b;
	CHECK_EQ(weft_runtime_stats(NULL, &a), 0);
	yielder(NULL);
	CHECK_EQ(weft_runtime_stats(NULL, &b), 0);
	/* Each yield switches out, and something is switched into after
	 * it (the yielder itself when nothing else is queued). */
	CHECK(b.total.tasks_run - a.total.tasks_run >= YIELDS);
	/* A yield is not a park. */
	CHECK_EQ(b.total.parks, a.total.parks);
	return 0;
}

static void test_stats__yields_are_switches_not_parks(void **state)
{
	weft_runtime_stats_t s;
	run_and_check(state, yield_root, NULL, &s);
	assert_true(s.total.tasks_run >= YIELDS + 1);
}

/* }======================================================= */

/* {======================================================= parks */

#define WAITERS 16

struct parks {
	weft_event_t *ev;
};

static int waiter(void *arg)
{
	struct parks *p = arg;
	CHECK_EQ(weft_event_wait(p->ev), 0);
	return 0;
}

static int park_root(void *arg)
{
	struct parks *p = arg;
	CHECK_EQ(weft_event_create(&p->ev), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < WAITERS; i++)
		CHECK_EQ(weft_group_spawn(g, waiter, p), 0);
	/* Until every waiter is parked (they are not run inline: this is
	 * not a join).  Bounded, so a lost task fails instead of hanging. */
	for (long i = 0; weft_event_waiting(p->ev) < WAITERS; i++) {
		CHECK_EQ(weft_yield(), 0);
		if (!CHECK(i < 50000000))
			break;
	}
	weft_runtime_stats_t s;
	CHECK_EQ(weft_runtime_stats(NULL, &s), 0);
	CHECK(s.total.parks >= WAITERS);
	CHECK(s.tasks_live >= WAITERS + 1);
	CHECK_EQ(weft_event_set(p->ev), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(p->ev), 0);
	return 0;
}

static void test_stats__parks_on_an_event_match_the_wakes(void **state)
{
	struct parks p = { 0 };
	weft_runtime_stats_t s;
	run_and_check(state, park_root, &p, &s);
	assert_true(s.total.parks >= WAITERS);
	/* The waiters were woken by a task, never from outside. */
	assert_true(s.total.wakes_local + s.total.wakes_remote +
			s.total.wakes_early >=
		WAITERS);
	assert_true(s.tasks_spawned == WAITERS);
}

/* }======================================================= */

/* {======================================================= steals */

/* Spinners that wait, without yielding, until all of them run at once:
 * one per worker, so all but at most one (the root's worker) must have
 * been stolen.  Bounded by wall time so a scheduling bug fails. */
struct steal {
	unsigned workers;
	atomic_uint arrived;
	weft_event_t *all_in;
};

static int spinner(void *arg)
{
	struct steal *st = arg;
	if (atomic_fetch_add(&st->arrived, 1) + 1 == st->workers)
		CHECK_EQ(weft_event_set(st->all_in), 0);
	int64_t until = wall_ns() + INT64_C(20000000000);
	while (atomic_load(&st->arrived) < st->workers)
		if (!CHECK(wall_ns() < until))
			break;
	return 0;
}

static int steal_root(void *arg)
{
	struct steal *st = arg;
	CHECK_EQ(weft_event_create(&st->all_in), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (unsigned i = 0; i < st->workers; i++)
		CHECK_EQ(weft_group_spawn(g, spinner, st), 0);
	/* Parks, leaving this worker to the spinners (a join would run them
	 * inline, one after the other, and never finish the barrier). */
	CHECK_EQ(weft_event_wait(st->all_in), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(st->all_in), 0);
	return 0;
}

static void test_stats__steals_are_counted(void **state)
{
	struct steal st = { .workers = WEFT_TEST_WORKERS(state) };
	atomic_init(&st.arrived, 0);
	weft_runtime_stats_t s;
	run_and_check(state, steal_root, &st, &s);
	if (st.workers > 1) {
		/* Each spinner on another worker than the spawner's got there
		 * by a steal, or was moved there by one (steal-half). */
		assert_true(s.total.steals >= 1);
		assert_true(s.total.steals + s.total.stolen_extra >=
			st.workers - 1);
		assert_true(s.total.steal_attempts >= s.total.steals);
	}
}

/* }======================================================= */

/* {======================================================= sleep and I/O */

static int sleep_root(void *arg)
{
	(void)arg;
	/* Every worker runs out of work and sleeps; the deadline's wake
	 * comes from the I/O thread (or a worker firing due deadlines). */
	CHECK_EQ(weft_sleep(20 * 1000 * 1000), 0);
	/* A file operation goes through the I/O thread. */
	int fd = -1;
	CHECK_EQ(weft_fs_open("/dev/null", O_RDONLY, 0, &fd), 0);
	if (fd >= 0)
		CHECK_EQ(weft_fs_close(fd), 0);
	weft_runtime_stats_t s;
	CHECK_EQ(weft_runtime_stats(NULL, &s), 0);
	CHECK(s.io_submitted >= 1);
	CHECK(s.total.sleeps >= 1);
	CHECK(s.total.sleep_wakeups >= 1);
	CHECK(s.total.parks >= 1);
	return 0;
}

static void test_stats__idle_sleeps_busy_time_and_io(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	int64_t t0 = wall_ns();
	weft_runtime_stats_t s;
	run_and_check(state, sleep_root, NULL, &s);
	int64_t wall = wall_ns() - t0;
	assert_true(s.io_submitted >= 1);
	assert_true(s.total.sleeps >= 1);
	/* Awake time: some, and not more than every worker awake for the
	 * whole test (a sanity bound, not a speed assertion). */
	assert_true(s.total.busy_ns > 0);
	assert_true(s.total.busy_ns <= (uint64_t)wall * workers);
}

/* }======================================================= */

/* {======================================================= the dump */

static int dump_root(void *arg)
{
	atomic_int *ran = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < SPAWNS; i++)
		CHECK_EQ(weft_group_spawn(g, nothing, ran), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	char text[4096], json[8192], want[64];
	size_t len;
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, text, sizeof text,
			 &len),
		0);
	CHECK(len < sizeof text);
	snprintf(want, sizeof want, " spawned=%d run=", SPAWNS);
	CHECK(strstr(text, want) != NULL);
	CHECK(strstr(text, " parks=") != NULL);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, json, sizeof json,
			 &len),
		0);
	CHECK(len < sizeof json);
	snprintf(want, sizeof want, "\"stats\":{\"spawned\":%d,", SPAWNS);
	CHECK(strstr(json, want) != NULL);
	CHECK(strstr(json, "},\"tree\":[") != NULL);
	return 0;
}

static void test_stats__dump_header_has_the_counters(void **state)
{
	atomic_int ran = 0;
	run_and_check(state, dump_root, &ran, NULL);
}

/* }======================================================= */

/* {======================================================= errors */

static int errors_root(void *arg)
{
	(void)arg;
	weft_worker_stats_t w;
	CHECK_EQ(weft_runtime_stats(NULL, NULL), -EINVAL);
	CHECK_EQ(weft_worker_stats(NULL, 0, NULL), -EINVAL);
	CHECK_EQ(weft_worker_stats(NULL, weft_worker_count(), &w), -EINVAL);
	CHECK_EQ(weft_worker_stats(NULL, 0, &w), 0);
	return 0;
}

static void test_stats__errors(void **state)
{
	weft_runtime_stats_t s;
	weft_worker_stats_t w;
	/* Outside a task, a NULL runtime names none. */
	assert_int_equal(weft_runtime_stats(NULL, &s), WEFT_ENOTFIBER);
	assert_int_equal(weft_worker_stats(NULL, 0, &w), WEFT_ENOTFIBER);
	weft_runtime_t *rt = weft_test_runtime_create(WEFT_TEST_WORKERS(state));
	assert_int_equal(weft_runtime_stats(rt, NULL), -EINVAL);
	assert_int_equal(weft_worker_stats(rt, WEFT_TEST_WORKERS(state), &w),
		-EINVAL);
	assert_int_equal(weft_worker_stats(rt, 0, NULL), -EINVAL);
	weft_error_t *err = NULL;
	assert_int_equal(weft_runtime_run(rt, errors_root, NULL, &err), 0);
	assert_null(err);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_stats__spawns_and_joins_are_counted),
		WEFT_TEST(test_stats__yields_are_switches_not_parks),
		WEFT_TEST(test_stats__parks_on_an_event_match_the_wakes),
		WEFT_TEST(test_stats__steals_are_counted),
		WEFT_TEST(test_stats__idle_sleeps_busy_time_and_io),
		WEFT_TEST(test_stats__dump_header_has_the_counters),
		WEFT_TEST(test_stats__errors),
	};
	return WEFT_RUN_TESTS(tests);
}
