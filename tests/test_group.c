/* Task groups (include/weft/group.h): docs/semantics.md rules 1-8, a
 * section for each in order (4 and 5 share one), then plain threads,
 * misuse and nesting. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>

#include "support.h"

struct counter {
	atomic_long n;
	weft_group_t *g;
	long fanout;
};

static int count_up(void *arg)
{
	struct counter *c = arg;
	atomic_fetch_add(&c->n, 1);
	return 0;
}

static int sleep_then_count(void *arg)
{
	struct counter *c = arg;
	CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
	atomic_fetch_add(&c->n, 1);
	return 0;
}

/* {======================================================= join waits for everything */

static int join_waits_root(void *arg)
{
	struct counter *c = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 50; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_then_count, c), 0);
	for (int i = 0; i < 500; i++)
		CHECK_EQ(weft_group_spawn(g, count_up, c), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&c->n), 550);
	return 0;
}

static void test_group__join_waits_for_every_child(void **state)
{
	struct counter c = { 0 };
	weft_test_root(state, join_waits_root, &c);
	assert_int_equal(atomic_load(&c.n), 550);
}

/* Each child spawns `fanout` grandchildren into the same group after a
 * sleep, i.e. while the owner is already inside join. */
static int spawn_more_later(void *arg)
{
	struct counter *c = arg;
	CHECK_EQ(weft_sleep(1 * WEFT_MSEC), 0);
	for (long i = 0; i < c->fanout; i++)
		CHECK_EQ(weft_group_spawn(c->g, count_up, c), 0);
	return 0;
}

static int join_late_spawns_root(void *arg)
{
	struct counter *c = arg;
	CHECK_EQ(weft_group_open(&c->g), 0);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(weft_group_spawn(c->g, spawn_more_later, c), 0);
	CHECK_EQ(weft_group_join(c->g, NULL), 0);
	CHECK_EQ(atomic_load(&c->n), 20 * c->fanout);
	return 0;
}

static void test_group__join_waits_for_children_spawned_during_join(
	void **state)
{
	struct counter c = { .fanout = 30 };
	weft_test_root(state, join_late_spawns_root, &c);
	assert_int_equal(atomic_load(&c.n), 600);
}

static int empty_group_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(group, join_of_an_empty_group_returns_at_once, empty_group_root,
	NULL)

/* }======================================================= */

/* {======================================================= closed means closed */

static int closed_root(void *arg)
{
	struct counter *c = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_retain(g), 0);
	CHECK_EQ(weft_group_spawn(g, count_up, c), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* The argument was not taken: the task never ran. */
	CHECK_EQ(weft_group_spawn(g, count_up, c), WEFT_ECLOSED);
	void *v = NULL;
	CHECK_EQ(weft_group_start(g, count_up, c, &v), WEFT_ECLOSED);
	CHECK_EQ(weft_group_join(g, NULL), WEFT_EMISUSE);
	weft_group_release(g);
	CHECK_EQ(atomic_load(&c->n), 1);
	return 0;
}

WEFT_TEST_ROOT(group, spawn_into_a_closed_group_is_refused, closed_root,
	&(struct counter){ 0 })

/* }======================================================= */

/* {======================================================= cancelled but open */

struct cancelled_spawn {
	atomic_int ran;
	atomic_int saw_cancel;
};

static int note_cancel_at_checkpoint(void *arg)
{
	struct cancelled_spawn *cs = arg;
	atomic_fetch_add(&cs->ran, 1);
	if (weft_checkpoint() == -ECANCELED)
		atomic_fetch_add(&cs->saw_cancel, 1);
	return -ECANCELED;
}

static int cancelled_open_root(void *arg)
{
	struct cancelled_spawn *cs = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_cancel(g, "stop"), 0);
	/* Still accepted: runs to its first checkpoint, cancelled. */
	CHECK_EQ(weft_group_spawn(g, note_cancel_at_checkpoint, cs), 0);
	weft_spawn_opts_t o = { .flags = WEFT_SPAWN_UNLESS_CANCELLED };
	CHECK_EQ(weft_group_spawn_opts(g, note_cancel_at_checkpoint, cs, &o),
		-ECANCELED);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_group__cancelled_group_accepts_spawns_that_start_cancelled(
	void **state)
{
	struct cancelled_spawn cs = { 0 };
	weft_test_root(state, cancelled_open_root, &cs);
	assert_int_equal(atomic_load(&cs.ran), 1);
	assert_int_equal(atomic_load(&cs.saw_cancel), 1);
}

static int skippable_root(void *arg)
{
	struct cancelled_spawn *cs = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	weft_spawn_opts_t o = { .flags = WEFT_SPAWN_SKIPPABLE };
	for (int i = 0; i < 10; i++)
		CHECK_EQ(weft_group_spawn_opts(g, note_cancel_at_checkpoint, cs,
				 &o),
			0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_group__skippable_task_cancelled_before_running_is_skipped(
	void **state)
{
	struct cancelled_spawn cs = { 0 };
	weft_test_root(state, skippable_root, &cs);
	assert_int_equal(atomic_load(&cs.ran), 0);
}

/* }======================================================= */

/* {======================================================= first and body failure */

struct failing {
	atomic_int cancelled_siblings;
	atomic_int started;
};

static int fail_fast(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "disk on fire");
}

static int sleep_long_observe_cancel(void *arg)
{
	struct failing *f = arg;
	atomic_fetch_add(&f->started, 1);
	int rc = weft_sleep(10 * WEFT_SEC);
	if (rc == -ECANCELED)
		atomic_fetch_add(&f->cancelled_siblings, 1);
	return rc;
}

static int first_failure_root(void *arg)
{
	struct failing *f = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_long_observe_cancel, f), 0);
	CHECK_EQ(weft_group_spawn(g, fail_fast, f), 0);
	CHECK_EQ(weft_group_spawn(g, fail_fast, f), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	/* Both failures, each once; cancelled siblings are not failures. */
	CHECK_EQ(weft_error_count(err), 2);
	for (size_t i = 0; i < weft_error_count(err); i++) {
		CHECK_EQ(weft_error_code_at(err, i), -EIO);
		CHECK(strcmp(weft_error_message_at(err, i), "disk on fire") ==
			0);
		CHECK(strcmp(weft_error_task_name_at(err, i), "fail_fast") ==
			0);
	}
	CHECK(weft_error_task_id_at(err, 0) != weft_error_task_id_at(err, 1));
	weft_error_free(err);
	return 0;
}

static void test_group__first_failure_cancels_siblings_and_join_collects_all(
	void **state)
{
	struct failing f = { 0 };
	weft_test_root(state, first_failure_root, &f);
	assert_int_equal(atomic_load(&f.cancelled_siblings),
		atomic_load(&f.started));
}

static int body_failure_root(void *arg)
{
	struct failing *f = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_long_observe_cancel, f), 0);
	CHECK_EQ(weft_group_fail(g, -EPROTO, "body gave up"), -EPROTO);
	/* The owner's own checkpoints now fail too: it is inside g. */
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_code_at(err, 0), -EPROTO);
	CHECK(strcmp(weft_error_task_name_at(err, 0), "main") == 0);
	CHECK_EQ(weft_error_primary(err, NULL), -EPROTO);
	weft_error_free(err);
	/* Outside the group the owner is not cancelled. */
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

static void test_group__body_failure_cancels_children_and_is_a_leaf(
	void **state)
{
	struct failing f = { 0 };
	weft_test_root(state, body_failure_root, &f);
	assert_int_equal(atomic_load(&f.cancelled_siblings), 4);
}

/* }======================================================= */

/* {======================================================= own vs outer cancel */

static int group_cancel_absorbed_root(void *arg)
{
	struct failing *f = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_long_observe_cancel, f), 0);
	CHECK_EQ(weft_sleep(1 * WEFT_MSEC), 0);
	CHECK_EQ(weft_group_cancel(g, "enough"), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

static void test_group__own_cancellation_is_absorbed_by_join(void **state)
{
	struct failing f = { 0 };
	weft_test_root(state, group_cancel_absorbed_root, &f);
	assert_int_equal(atomic_load(&f.cancelled_siblings), 4);
}

static int outer_cancel_root(void *arg)
{
	struct failing *f = arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_long_observe_cancel, f), 0);
	CHECK_EQ(weft_sleep(1 * WEFT_MSEC), 0);
	CHECK_EQ(weft_scope_cancel(s, "outer"), 0);
	CHECK_EQ(weft_group_join(g, NULL), -ECANCELED);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

static void test_group__outer_cancellation_passes_through_join(void **state)
{
	struct failing f = { 0 };
	weft_test_root(state, outer_cancel_root, &f);
	assert_int_equal(atomic_load(&f.cancelled_siblings), 4);
}

/* }======================================================= */

/* {======================================================= no silent orphaning */

static int leave_without_join(void *arg)
{
	struct failing *f = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_long_observe_cancel, f), 0);
	return 0; /* forgot to join */
}

static int missing_join_root(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, leave_without_join, arg), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_code_at(err, 0), WEFT_EMISSINGJOIN);
	weft_error_free(err);
	return 0;
}

static void test_group__leaving_a_group_unjoined_cancels_joins_and_reports(
	void **state)
{
	struct failing f = { 0 };
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = WEFT_TEST_WORKERS(state);
	cfg.abort_on_missing_join = 0; /* the release behaviour */
	assert_int_equal(weft_test_run_cfg(&cfg, missing_join_root, &f), 0);
	assert_int_equal(atomic_load(&f.cancelled_siblings), 3);
}

static int fail_when_cancelled(void *arg)
{
	int rc = weft_sleep(3600 * WEFT_SEC);
	return rc == -ECANCELED ? weft_fail((int)(intptr_t)arg, "cleanup") : rc;
}

/* Two groups left open, each with a child that fails while being reaped:
 * both failures nest under the task's missing-join leaf (the second reap
 * used to replace the first one's errors). */
static int leave_two_groups(void *arg)
{
	(void)arg;
	weft_group_t *outer, *inner;
	CHECK_EQ(weft_group_open(&outer), 0);
	CHECK_EQ(weft_group_spawn(outer, fail_when_cancelled,
			 (void *)(intptr_t)-EIO),
		0);
	CHECK_EQ(weft_group_open(&inner), 0);
	CHECK_EQ(weft_group_spawn(inner, fail_when_cancelled,
			 (void *)(intptr_t)-EPIPE),
		0);
	return 0; /* forgot to join both */
}

static int missing_two_joins_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, leave_two_groups, NULL), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_code_at(err, 0), WEFT_EMISSINGJOIN);
	const weft_error_t *in = weft_error_nested_at(err, 0);
	CHECK_EQ(weft_error_count(in), 2);
	int codes = 0;
	for (size_t i = 0; i < weft_error_count(in); i++)
		codes |= weft_error_code_at(in, i) == -EIO    ? 1
			: weft_error_code_at(in, i) == -EPIPE ? 2
							      : 4;
	CHECK_EQ(codes, 3);
	weft_error_free(err);
	return 0;
}

static void test_group__every_group_left_open_keeps_its_failures(void **state)
{
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = WEFT_TEST_WORKERS(state);
	cfg.abort_on_missing_join = 0;
	assert_int_equal(weft_test_run_cfg(&cfg, missing_two_joins_root, NULL),
		0);
}

static int leave_empty_group(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	return 0; /* forgot to join */
}

static int spawn_a_leaver(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, leave_empty_group, NULL), 0);
	return weft_group_join(g, NULL);
}

static void missing_join_child(void *arg)
{
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = (unsigned)(uintptr_t)arg;
	cfg.abort_on_missing_join = 1;
	weft_runtime_t *rt;
	if (weft_runtime_create(&rt, &cfg) == 0)
		weft_runtime_run(rt, spawn_a_leaver, NULL, NULL);
}

static void test_group__leaving_a_group_unjoined_aborts_when_configured(
	void **state)
{
	char buf[4096];
	int status = weft_test_death(missing_join_child,
		(void *)(uintptr_t)WEFT_TEST_WORKERS(state), buf, sizeof buf);
	/* Then the site of the weft_group_open call, by function and
	 * line. */
	weft_test_assert_abort(status, buf,
		"task 'leave_empty_group' returned without joining",
		"the group opened at leave_empty_group+0x",
		" (test_group.c:", NULL);
}

/* }======================================================= */

/* {======================================================= plain threads */

/* A thread that is not a weft worker spawns into a group it was handed
 * (held with weft_group_retain), as a listener or a foreign callback
 * would; after the owner's join its spawns are refused. */
struct plain_spawner {
	weft_group_t *g;
	weft_event_t *spawned, *refused;
	atomic_long ran;
	atomic_int joined;
	long n;
	int spawn_rc;	   /* first failing spawn's code, or 0 */
	int after_join_rc; /* the spawn tried after the join */
};

static int count_run(void *arg)
{
	struct plain_spawner *p = arg;
	atomic_fetch_add(&p->ran, 1);
	return 0;
}

static void *plain_spawn_thread(void *arg)
{
	struct plain_spawner *p = arg;
	for (long i = 0; i < p->n; i++) {
		int rc = weft_group_spawn(p->g, count_run, p);
		if (rc < 0 && p->spawn_rc == 0)
			p->spawn_rc = rc;
	}
	weft_event_set(p->spawned);
	while (!atomic_load(&p->joined))
		sched_yield();
	p->after_join_rc = weft_group_spawn(p->g, count_run, p);
	weft_event_set(p->refused);
	return NULL;
}

static int plain_spawn_root(void *arg)
{
	struct plain_spawner *p = arg;
	weft_group_t *g;
	CHECK_EQ(weft_event_create(&p->spawned), 0);
	CHECK_EQ(weft_event_create(&p->refused), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_retain(g), 0);
	p->g = g;
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, plain_spawn_thread, p), 0);
	CHECK_EQ(weft_event_wait(p->spawned), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	atomic_store(&p->joined, 1);
	CHECK_EQ(weft_event_wait(p->refused), 0);
	/* The thread has only the end of weft_event_set and its return left:
	 * wait for it (briefly blocking this worker) before freeing. */
	pthread_join(th, NULL);
	weft_group_release(g);
	CHECK_EQ(weft_event_destroy(p->spawned), 0);
	CHECK_EQ(weft_event_destroy(p->refused), 0);
	return 0;
}

static void test_group__a_plain_thread_spawns_into_a_retained_group(
	void **state)
{
	struct plain_spawner p = { .n = weft_test_scale(2000) };
	weft_test_root(state, plain_spawn_root, &p);
	assert_int_equal(p.spawn_rc, 0);
	assert_int_equal(atomic_load(&p.ran), p.n);
	assert_int_equal(p.after_join_rc, WEFT_ECLOSED);
}

/* Plain threads that spawn into a retained group while its owner joins
 * (group.c, "Credit": the join revokes what the spawners were granted
 * ahead and not used, while they keep asking for more): every spawn is
 * either run before the join returns or refused with WEFT_ECLOSED, and
 * the children counted are exactly those that ran.  Each thread stops
 * after `n` spawns (the join waits for children spawned during it, so
 * spawners that never stopped could keep it waiting). */
#define RACE_THREADS 3

struct race_spawner {
	weft_group_t *g;
	atomic_long ran;
	atomic_long spawned; /* successful spawns, all threads */
	long ran_at_join;
	long n; /* spawns per thread at most */
	int last_rc[RACE_THREADS];
	int other_rc; /* a code other than 0 or WEFT_ECLOSED, if any */
};

static int race_run(void *arg)
{
	struct race_spawner *r = arg;
	atomic_fetch_add(&r->ran, 1);
	return 0;
}

struct race_thread {
	struct race_spawner *r;
	int i;
};

static void *race_spawn_thread(void *arg)
{
	struct race_thread *rt = arg;
	struct race_spawner *r = rt->r;
	int rc = 0;
	for (long n = 0; n < r->n && rc == 0; n++) {
		rc = weft_group_spawn(r->g, race_run, r);
		if (rc == 0)
			atomic_fetch_add(&r->spawned, 1);
		else if (rc != WEFT_ECLOSED)
			r->other_rc = rc;
	}
	r->last_rc[rt->i] = rc;
	return NULL;
}

static int race_root(void *arg)
{
	struct race_spawner *r = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	r->g = g;
	pthread_t th[RACE_THREADS];
	struct race_thread args[RACE_THREADS];
	for (int i = 0; i < RACE_THREADS; i++) {
		CHECK_EQ(weft_group_retain(g), 0);
		args[i] = (struct race_thread){ .r = r, .i = i };
		CHECK_EQ(pthread_create(&th[i], NULL, race_spawn_thread,
				 &args[i]),
			0);
	}
	/* Join while they spawn: after a third of the spawns, so that the
	 * credit is in use (sleeps, not a spin: the spawners need CPUs). */
	while (atomic_load(&r->spawned) < r->n)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 10), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	r->ran_at_join = atomic_load(&r->ran);
	/* Each thread stops at its first refused spawn, which follows the
	 * close: wait for them (briefly blocking this worker). */
	for (int i = 0; i < RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
		weft_group_release(g);
	}
	return 0;
}

static void
test_group__plain_threads_spawning_during_the_join_are_counted_exactly(
	void **state)
{
	struct race_spawner r = { .n = weft_test_scale(20000) };
	weft_test_root(state, race_root, &r);
	assert_int_equal(r.other_rc, 0);
	for (int i = 0; i < RACE_THREADS; i++)
		assert_true(r.last_rc[i] == 0 || r.last_rc[i] == WEFT_ECLOSED);
	assert_true(atomic_load(&r.spawned) >= r.n);
	assert_int_equal(r.ran_at_join, atomic_load(&r.spawned));
	assert_int_equal(atomic_load(&r.ran), atomic_load(&r.spawned));
}

/* Children that spawn a few children each into their own group (spawns
 * from outside the owner, each taking credit that it mostly leaves) and
 * end before the owner joins: the join takes back what is left and
 * returns with every one of them run. */
static int few_more(void *arg)
{
	struct counter *c = arg;
	atomic_fetch_add(&c->n, 1);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(c->g, count_up, c), 0);
	return 0;
}

static int credit_left_root(void *arg)
{
	struct counter *c = arg;
	CHECK_EQ(weft_group_open(&c->g), 0);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(weft_group_spawn(c->g, few_more, c), 0);
	/* The children run while the owner sleeps, on any worker, and end
	 * before the join. */
	CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
	CHECK_EQ(weft_group_join(c->g, NULL), 0);
	CHECK_EQ(atomic_load(&c->n), 40);
	return 0;
}

static void
test_group__children_spawning_into_their_group_leave_no_count_behind(
	void **state)
{
	struct counter c = { 0 };
	weft_test_root(state, credit_left_root, &c);
	assert_int_equal(atomic_load(&c.n), 40);
}

static int start_noop(void *arg)
{
	(void)arg;
	return weft_task_started(NULL);
}

static void *plain_start_thread(void *arg)
{
	struct plain_spawner *p = arg;
	p->after_join_rc = weft_group_start(p->g, start_noop, NULL, NULL);
	weft_event_set(p->spawned);
	return NULL;
}

static int plain_start_root(void *arg)
{
	struct plain_spawner *p = arg;
	weft_group_t *g;
	CHECK_EQ(weft_event_create(&p->spawned), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	p->g = g;
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, plain_start_thread, p), 0);
	CHECK_EQ(weft_event_wait(p->spawned), 0);
	pthread_join(th, NULL);
	CHECK_EQ(weft_event_destroy(p->spawned), 0);
	return weft_group_join(g, NULL);
}

static void test_group__start_from_a_plain_thread_is_enotfiber(void **state)
{
	struct plain_spawner p = { 0 };
	weft_test_root(state, plain_start_root, &p);
	assert_int_equal(p.after_join_rc, WEFT_ENOTFIBER);
}

/* }======================================================= */

/* {======================================================= memory ordering */

struct handoff {
	long before; /* plain: written before spawn, read by the child */
	long after;  /* plain: written by the child, read after join */
};

static int read_write_plain(void *arg)
{
	struct handoff *h = arg;
	CHECK_EQ(h->before, 42);
	h->after = h->before + 1;
	return 0;
}

static int ordering_root(void *arg)
{
	(void)arg;
	for (int round = 0; round < 200; round++) {
		struct handoff h[8];
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < 8; i++) {
			h[i].before = 42;
			h[i].after = 0;
			CHECK_EQ(weft_group_spawn(g, read_write_plain, &h[i]),
				0);
		}
		CHECK_EQ(weft_group_join(g, NULL), 0);
		for (int i = 0; i < 8; i++)
			CHECK_EQ(h[i].after, 43);
	}
	return 0;
}

WEFT_TEST_ROOT(group, spawn_and_join_order_plain_memory, ordering_root, NULL)

/* }======================================================= */

/* {======================================================= misuse */

struct misuse {
	weft_group_t *g;
	atomic_int rc;
};

static int join_someone_elses(void *arg)
{
	struct misuse *m = arg;
	atomic_store(&m->rc, weft_group_join(m->g, NULL));
	return 0;
}

static int misuse_root(void *arg)
{
	struct misuse *m = arg;
	CHECK_EQ(weft_group_open(NULL), -EINVAL);
	CHECK_EQ(weft_group_join(NULL, NULL), -EINVAL);
	CHECK_EQ(weft_group_spawn(NULL, count_up, NULL), -EINVAL);
	CHECK_EQ(weft_group_open(&m->g), 0);
	CHECK_EQ(weft_group_spawn_named(m->g, "x", NULL, NULL), -EINVAL);
	CHECK_EQ(weft_group_spawn(m->g, join_someone_elses, m), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_group_join(m->g, NULL), WEFT_EMISNEST);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	CHECK_EQ(weft_group_join(m->g, NULL), 0);
	CHECK_EQ(atomic_load(&m->rc), WEFT_EMISUSE);
	return 0;
}

WEFT_TEST_ROOT(group, join_by_another_task_or_out_of_order_is_refused,
	misuse_root, &(struct misuse){ 0 })

/* }======================================================= */

/* {======================================================= nesting */

static int nested_level(void *arg)
{
	long depth = (long)(intptr_t)arg;
	if (depth == 0)
		return 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, nested_level,
				 (void *)(intptr_t)(depth - 1)),
			0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(group, nested_groups_join_a_tree_of_tasks, nested_level,
	(void *)(intptr_t)7)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_group__join_waits_for_every_child),
		WEFT_TEST(
			test_group__join_waits_for_children_spawned_during_join),
		WEFT_TEST(test_group__join_of_an_empty_group_returns_at_once),
		WEFT_TEST(test_group__spawn_into_a_closed_group_is_refused),
		WEFT_TEST(
			test_group__cancelled_group_accepts_spawns_that_start_cancelled),
		WEFT_TEST(
			test_group__skippable_task_cancelled_before_running_is_skipped),
		WEFT_TEST(
			test_group__first_failure_cancels_siblings_and_join_collects_all),
		WEFT_TEST(
			test_group__body_failure_cancels_children_and_is_a_leaf),
		WEFT_TEST(test_group__own_cancellation_is_absorbed_by_join),
		WEFT_TEST(test_group__outer_cancellation_passes_through_join),
		WEFT_TEST(
			test_group__leaving_a_group_unjoined_cancels_joins_and_reports),
		WEFT_TEST(test_group__every_group_left_open_keeps_its_failures),
		WEFT_TEST(
			test_group__leaving_a_group_unjoined_aborts_when_configured),
		WEFT_TEST(
			test_group__a_plain_thread_spawns_into_a_retained_group),
		WEFT_TEST(test_group__start_from_a_plain_thread_is_enotfiber),
		WEFT_TEST(
			test_group__plain_threads_spawning_during_the_join_are_counted_exactly),
		WEFT_TEST(
			test_group__children_spawning_into_their_group_leave_no_count_behind),
		WEFT_TEST(test_group__spawn_and_join_order_plain_memory),
		WEFT_TEST(
			test_group__join_by_another_task_or_out_of_order_is_refused),
		WEFT_TEST(test_group__nested_groups_join_a_tree_of_tasks),
	};
	return WEFT_RUN_TESTS(tests);
}
