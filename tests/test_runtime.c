/* Tests for runtime objects (include/weft/runtime.h): create, run and
 * destroy; the one-call weft_run; how a root's result and failure come
 * back; leaving no thread, fd or byte behind; misuse (NULL arguments,
 * destroying a busy runtime, running from inside a task, fiber-only calls
 * from plain threads); several roots and several runtimes at once; and the
 * error-code names and messages (include/weft/error.h).
 *
 * cmocka asserts only work on the test's main thread.
 * Tasks record what they saw with CHECK (tests/support.h) or in plain
 * fields the main thread reads after weft_runtime_run returned.  Tests
 * that drive a runtime by hand end with assert_checks_passed(), which
 * asserts that no CHECK failed and nothing leaked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft.h>

#include "support.h"

/* A pointer value weft must never write into an out-parameter on
 * failure. */
#define SENTINEL ((void *)(uintptr_t)0x5eed)

/* Upper bound on any wait in this file; reaching it is a failure (a lost
 * wake-up or a hang), never a timing measurement. */
#define SAFETY_NS (20 * WEFT_SEC)

/* {======================================================= helpers */

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int noop_root(void *arg)
{
	(void)arg;
	return 0;
}

/* Asserts that no CHECK recorded a failure and that nothing leaked, for
 * tests that created their runtimes by hand: weft_test_run of an empty
 * root does exactly these checks after its own runtime is gone. */
static void assert_checks_passed(void)
{
	weft_test_assert_no_leaks();
	assert_int_equal(weft_test_run(1, noop_root, NULL), 0);
}

/* Polls (parking in weft_sleep) until *flag is nonzero or the safety
 * bound passes; returns whether it became nonzero. */
static int task_wait_flag(atomic_int *flag, int want)
{
	int64_t give_up = weft_now() + SAFETY_NS;
	while (atomic_load(flag) < want) {
		if (weft_now() > give_up)
			return 0;
		if (weft_sleep(WEFT_MSEC) != 0)
			return 0;
	}
	return 1;
}

/* Same, from a plain thread. */
static int thread_wait_flag(atomic_int *flag, int want)
{
	int64_t give_up = weft_now() + SAFETY_NS;
	while (atomic_load(flag) < want) {
		if (weft_now() > give_up)
			return 0;
		pause_ms(1);
	}
	return 1;
}

static int child_count(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

/* Spawns n children that each bump *counter, joins, returns the join
 * result.  Shows that the runtime still works. */
static int spawn_and_join(int n, atomic_int *counter)
{
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (!CHECK_EQ(rc, 0))
		return rc;
	for (int i = 0; i < n; i++)
		CHECK_EQ(weft_group_spawn(g, child_count, counter), 0);
	return weft_group_join(g, NULL);
}

/* }======================================================= */

/* {======================================================= create, run */

struct basic {
	atomic_int children;
	atomic_int roots;
};

static int basic_root(void *arg)
{
	struct basic *b = arg;
	atomic_fetch_add(&b->roots, 1);
	CHECK_EQ(spawn_and_join(10, &b->children), 0);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	return 0;
}

static void test_runtime__create_run_destroy_runs_the_root_and_its_children(
	void **state)
{
	struct basic b = { 0 };
	weft_test_root(state, basic_root, &b);
	assert_int_equal(atomic_load(&b.roots), 1);
	assert_int_equal(atomic_load(&b.children), 10);
}

static void test_runtime__one_runtime_runs_many_roots_one_after_another(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	weft_runtime_t *rt = weft_test_runtime_create(workers);
	struct basic b = { 0 };
	int runs = (int)weft_test_scale(50);
	for (int i = 0; i < runs; i++) {
		weft_error_t *err = SENTINEL;
		assert_int_equal(weft_runtime_run(rt, basic_root, &b, &err), 0);
		assert_null(err);
	}
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_int_equal(atomic_load(&b.roots), runs);
	assert_int_equal(atomic_load(&b.children), runs * 10);
	assert_checks_passed();
}

static int return_arg_code(void *arg)
{
	return (int)(intptr_t)arg;
}

static void test_runtime__root_return_value_comes_back_from_run(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	static const int codes[] = { 0, -EIO, -EPERM, WEFT_ECLOSED };
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		weft_error_t *err = NULL;
		int rc = weft_test_run_err(workers, return_arg_code,
			(void *)(intptr_t)codes[i], &err);
		assert_int_equal(rc, codes[i]);
		if (codes[i] == 0) {
			assert_null(err);
		} else {
			/* A failure without weft_fail: one leaf, the code,
			 * an empty message. */
			assert_non_null(err);
			assert_int_equal(weft_error_count(err), 1);
			assert_int_equal(weft_error_code_at(err, 0), codes[i]);
			assert_string_equal(weft_error_message_at(err, 0), "");
			assert_null(weft_error_nested_at(err, 0));
		}
		weft_error_free(err);
		weft_test_assert_no_leaks();
	}
}

static void test_runtime__null_err_out_is_allowed_for_a_failing_root(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	weft_runtime_t *rt = weft_test_runtime_create(workers);
	assert_int_equal(weft_runtime_run(rt, return_arg_code,
				 (void *)(intptr_t)-EIO, NULL),
		-EIO);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_checks_passed();
}

struct failing_root {
	uint64_t id; /* the root's own task id */
};

static int fail_with_message(void *arg)
{
	struct failing_root *f = arg;
	f->id = weft_current_task_id();
	return weft_fail(-EIO, "boom %d", 7);
}

static void
test_runtime__failing_root_gives_one_leaf_with_code_message_and_name(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct failing_root f = { 0 };
	weft_error_t *err = NULL;
	int rc = weft_test_run_err(workers, fail_with_message, &f, &err);
	assert_int_equal(rc, -EIO);
	assert_non_null(err);
	assert_int_equal(weft_error_count(err), 1);
	assert_int_equal(weft_error_leaf_count(err), 1);
	assert_int_equal(weft_error_code_at(err, 0), -EIO);
	assert_string_equal(weft_error_message_at(err, 0), "boom 7");
	/* The root task is called "main" (like anyio's main task). */
	assert_string_equal(weft_error_task_name_at(err, 0), "main");
	assert_true(f.id != 0);
	assert_int_equal(weft_error_task_id_at(err, 0), f.id);
	assert_false(weft_error_collateral_at(err, 0));
	assert_null(weft_error_nested_at(err, 0));
	const char *msg = NULL;
	assert_int_equal(weft_error_primary(err, &msg), -EIO);
	assert_string_equal(msg, "boom 7");
	weft_error_free(err);
	weft_test_assert_no_leaks();
}

static int fail_child(void *arg)
{
	return weft_fail(-EPIPE, "child %d", (int)(intptr_t)arg);
}

static int root_fails_with_its_group(void *arg)
{
	(void)arg;
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	CHECK_EQ(weft_group_spawn_named(g, "kid", fail_child, (void *)1), 0);
	weft_error_t *err = NULL;
	int rc = weft_group_join(g, &err);
	CHECK_EQ(rc, WEFT_ECHILD_FAILED);
	return weft_fail_group(err);
}

static void test_runtime__root_failing_with_a_group_nests_it_in_the_error(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	weft_error_t *err = NULL;
	int rc = weft_test_run_err(workers, root_fails_with_its_group, NULL,
		&err);
	assert_int_equal(rc, WEFT_ECHILD_FAILED);
	assert_non_null(err);
	assert_int_equal(weft_error_count(err), 1);
	assert_int_equal(weft_error_code_at(err, 0), WEFT_ECHILD_FAILED);
	assert_string_equal(weft_error_task_name_at(err, 0), "main");
	const weft_error_t *nested = weft_error_nested_at(err, 0);
	assert_non_null(nested);
	assert_int_equal(weft_error_count(nested), 1);
	assert_int_equal(weft_error_code_at(nested, 0), -EPIPE);
	assert_string_equal(weft_error_message_at(nested, 0), "child 1");
	assert_string_equal(weft_error_task_name_at(nested, 0), "kid");
	assert_int_equal(weft_error_leaf_count(err), 1);
	weft_error_free(err);
	weft_test_assert_no_leaks();
}

static int root_cancels_itself(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	if (!CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0))
		return -ENOMEM;
	CHECK_EQ(weft_scope_cancel(s, "enough"), 0);
	int rc = weft_checkpoint();
	CHECK_EQ(rc, -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return rc;
}

static void test_runtime__cancelled_root_is_not_reported_as_a_failure(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	weft_error_t *err = SENTINEL;
	int rc = weft_test_run_err(workers, root_cancels_itself, NULL, &err);
	assert_int_equal(rc, -ECANCELED);
	assert_null(err);
	weft_test_assert_no_leaks();
}

static int mark_ran(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

static int root_fails_eio(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return weft_fail(-EIO, "weft_run failure test (expected)");
}

static void test_runtime__weft_run_runs_the_root_and_returns_its_result(
	void **state)
{
	(void)state;
	atomic_int ran = 0;
	assert_int_equal(weft_run(mark_ran, &ran), 0);
	assert_int_equal(atomic_load(&ran), 1);
	weft_test_assert_no_leaks();
	/* A failure is printed to stderr and its code returned. */
	assert_int_equal(weft_run(root_fails_eio, &ran), -EIO);
	assert_int_equal(atomic_load(&ran), 2);
	weft_test_assert_no_leaks();
}

static void test_runtime__weft_run_with_null_fn_is_rejected(void **state)
{
	(void)state;
	assert_int_equal(weft_run(NULL, NULL), -EINVAL);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= resources */

static void
test_runtime__a_runtime_runs_a_thread_per_worker_plus_io_and_sampler(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	int base = weft_test_baseline_threads();
	weft_runtime_t *rt = weft_test_runtime_create(workers);
	int during = weft_test_count_threads();
	assert_int_equal(weft_runtime_destroy(rt), 0);
	/* The workers, the I/O thread and the run-time sampler. */
	assert_int_equal(during, base + (int)workers + 2);
	assert_int_equal(weft_test_settle_threads(base), base);
	weft_test_assert_no_leaks();
}

struct churn {
	atomic_int children;
};

static int churn_root(void *arg)
{
	struct churn *c = arg;
	CHECK_EQ(spawn_and_join(3, &c->children), 0);
	/* Exercise the I/O thread's timer too. */
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	return 0;
}

/* In a child process that has never run a runtime: fds opened by the
 * first runtime, and by a second one, after each is destroyed.  Exit
 * status: 16 * first + second. */
static void fds_child(void *arg)
{
	(void)arg;
	int fds[3];
	fds[0] = weft_test_count_fds();
	for (int i = 1; i < 3; i++) {
		weft_runtime_t *rt = weft_test_runtime_create(2);
		if (weft_runtime_run(rt, churn_root, &(struct churn){ 0 },
			    NULL) != 0 ||
			weft_runtime_destroy(rt) != 0)
			_exit(255);
		fds[i] = weft_test_count_fds();
	}
	_exit((fds[1] - fds[0]) * 16 + (fds[2] - fds[1]));
}

/* runtime.h: destroy gives back every fd but libuv's process-wide signal
 * pipe, two fds opened once per process.  Registered first: the forked
 * child must come from a process in which no runtime ran yet. */
static void test_runtime__fds_come_back_but_libuv_signal_pipe(void **state)
{
	(void)state;
	char buf[256];
	int status = weft_test_death(fds_child, NULL, buf, sizeof buf);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2 * 16 + 0);
}

static void test_runtime__creating_and_destroying_100_runtimes_leaks_nothing(
	void **state)
{
	(void)state;
	int threads = weft_test_baseline_threads();
	int fds = weft_test_count_fds();
	struct churn c = { 0 };
	for (int i = 0; i < 100; i++) {
		weft_runtime_t *rt = weft_test_runtime_create(
			1 + (unsigned)(i % 3));
		assert_int_equal(weft_runtime_run(rt, churn_root, &c, NULL), 0);
		assert_int_equal(weft_runtime_destroy(rt), 0);
	}
	assert_int_equal(atomic_load(&c.children), 300);
	assert_int_equal(weft_test_count_fds(), fds);
	assert_int_equal(weft_test_settle_threads(threads), threads);
	weft_debug_stats_t st;
	weft_debug_stats(&st);
	assert_int_equal(st.live_runtimes, 0);
	assert_int_equal(st.live_bytes, 0);
	assert_int_equal(st.live_allocs, 0);
	assert_int_equal(st.live_stacks, 0);
	assert_checks_passed();
}

struct two_rt {
	atomic_int started;
	unsigned seen;
	int rc;
	weft_runtime_t *rt;
	pthread_t thread;
};

static int two_rt_root(void *arg)
{
	struct two_rt *t = arg;
	atomic_int *started = &t->started;
	atomic_fetch_add(started, 1);
	t->seen = weft_worker_count();
	return 0;
}

static void *two_rt_thread(void *arg)
{
	struct two_rt *t = arg;
	t->rc = weft_runtime_run(t->rt, two_rt_root, t, NULL);
	return NULL;
}

static void test_runtime__two_runtimes_live_side_by_side(void **state)
{
	(void)state;
	struct two_rt a = { .rt = weft_test_runtime_create(1) };
	struct two_rt b = { .rt = weft_test_runtime_create(3) };
	assert_int_equal(pthread_create(&a.thread, NULL, two_rt_thread, &a), 0);
	assert_int_equal(pthread_create(&b.thread, NULL, two_rt_thread, &b), 0);
	pthread_join(a.thread, NULL);
	pthread_join(b.thread, NULL);
	weft_debug_stats_t st;
	weft_debug_stats(&st);
	assert_int_equal(st.live_runtimes, 2);
	assert_int_equal(weft_runtime_destroy(a.rt), 0);
	assert_int_equal(weft_runtime_destroy(b.rt), 0);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(a.seen, 1);
	assert_int_equal(b.seen, 3);
	assert_checks_passed();
}

/* }======================================================= */

/* {======================================================= misuse */

static void test_runtime__destroy_of_null_is_rejected(void **state)
{
	(void)state;
	assert_int_equal(weft_runtime_destroy(NULL), -EINVAL);
}

static void test_runtime__run_with_null_arguments_is_rejected(void **state)
{
	(void)state;
	weft_runtime_t *rt = weft_test_runtime_create(1);
	assert_int_equal(weft_runtime_run(rt, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(weft_runtime_run(NULL, noop_root, NULL, NULL),
		-EINVAL);
	weft_error_t *err = NULL;
	assert_int_equal(weft_runtime_run(rt, NULL, NULL, &err), -EINVAL);
	assert_null(err);
	/* Nothing ran and the runtime still works. */
	assert_int_equal(weft_runtime_run(rt, noop_root, NULL, NULL), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_checks_passed();
}

struct self_destroy {
	weft_runtime_t *rt;
	int destroy_rc;
	int after_rc;
	atomic_int children;
};

static int root_destroys_own_runtime(void *arg)
{
	struct self_destroy *d = arg;
	d->destroy_rc = weft_runtime_destroy(d->rt);
	/* Nothing was destroyed: spawning, joining and sleeping work. */
	d->after_rc = spawn_and_join(4, &d->children);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	return 0;
}

static void test_runtime__destroy_from_inside_its_own_task_is_busy(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct self_destroy d = { .rt = weft_test_runtime_create(workers) };
	assert_int_equal(weft_runtime_run(d.rt, root_destroys_own_runtime, &d,
				 NULL),
		0);
	assert_int_equal(d.destroy_rc, -EBUSY);
	assert_int_equal(d.after_rc, 0);
	assert_int_equal(atomic_load(&d.children), 4);
	assert_int_equal(weft_runtime_destroy(d.rt), 0);
	assert_checks_passed();
}

struct busy {
	weft_runtime_t *rt;
	atomic_int started;
	atomic_int release;
	atomic_int children;
	int waited;
	int run_rc;
};

static int root_waits_for_release(void *arg)
{
	struct busy *b = arg;
	atomic_store(&b->started, 1);
	b->waited = task_wait_flag(&b->release, 1);
	/* The runtime survived the refused destroy. */
	CHECK_EQ(spawn_and_join(4, &b->children), 0);
	return 0;
}

static void *busy_thread(void *arg)
{
	struct busy *b = arg;
	b->run_rc = weft_runtime_run(b->rt, root_waits_for_release, b, NULL);
	return NULL;
}

static void test_runtime__destroy_while_another_thread_runs_a_root_is_busy(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct busy b = { .rt = weft_test_runtime_create(workers) };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, busy_thread, &b), 0);
	int started = thread_wait_flag(&b.started, 1);
	int rc = started ? weft_runtime_destroy(b.rt) : -1;
	atomic_store(&b.release, 1);
	pthread_join(th, NULL);
	assert_true(started);
	assert_int_equal(rc, -EBUSY);
	assert_true(b.waited);
	assert_int_equal(b.run_rc, 0);
	assert_int_equal(atomic_load(&b.children), 4);
	/* Once the root returned, destroy succeeds. */
	assert_int_equal(weft_runtime_destroy(b.rt), 0);
	assert_checks_passed();
}

struct nested_run {
	weft_runtime_t *own;
	weft_runtime_t *other;
	int own_rc;
	int other_rc;
	atomic_int ran;
};

static int root_runs_nested(void *arg)
{
	struct nested_run *n = arg;
	n->own_rc = weft_runtime_run(n->own, mark_ran, &n->ran, NULL);
	n->other_rc = weft_runtime_run(n->other, mark_ran, &n->ran, NULL);
	return 0;
}

static void test_runtime__run_from_inside_a_task_is_misuse(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct nested_run n = { .own = weft_test_runtime_create(workers),
		.other = weft_test_runtime_create(1) };
	assert_int_equal(weft_runtime_run(n.own, root_runs_nested, &n, NULL),
		0);
	assert_int_equal(weft_runtime_destroy(n.own), 0);
	assert_int_equal(weft_runtime_destroy(n.other), 0);
	assert_int_equal(n.own_rc, WEFT_EMISUSE);
	assert_int_equal(n.other_rc, WEFT_EMISUSE);
	assert_int_equal(atomic_load(&n.ran), 0);
	assert_checks_passed();
}

/* Every fiber-only call, made from a thread that is not running a weft
 * fiber; each result goes into *r (one slot per call). */
struct plain_calls {
	int group_open;
	void *group_out;
	int group_open_null;
	int sleep_long, sleep_zero, sleep_negative;
	int sleep_until_forever, sleep_until_past;
	int checkpoint, checkpoint_if_cancelled, shielded_checkpoint, yield;
	int scope_enter;
	int scope_open, move_on_at, move_on_after, fail_at, fail_after;
	void *scope_out;
	long live_scopes;
	int task_started, task_set_result, task_wait_null;
	int fail_group_null, fail_group_err;
	int cancel_reason, cancel_reason_null;
	int fail;
	int64_t effective_deadline;
	uint64_t task_id;
	unsigned worker_count;
};

static void make_plain_calls(struct plain_calls *r, weft_error_t *err)
{
	weft_group_t *g = SENTINEL;
	r->group_open = weft_group_open(&g);
	r->group_out = g;
	r->group_open_null = weft_group_open(NULL);
	/* If any of these parked, the test would hang (and time out). */
	r->sleep_long = weft_sleep(3600 * WEFT_SEC);
	r->sleep_zero = weft_sleep(0);
	r->sleep_negative = weft_sleep(-WEFT_SEC);
	r->sleep_until_forever = weft_sleep_until(WEFT_FOREVER);
	r->sleep_until_past = weft_sleep_until(0);
	r->checkpoint = weft_checkpoint();
	r->checkpoint_if_cancelled = weft_checkpoint_if_cancelled();
	r->shielded_checkpoint = weft_cancel_shielded_checkpoint();
	r->yield = weft_yield();

	weft_scope_t *s = NULL;
	if (weft_scope_create(&s, WEFT_FOREVER, 0) == 0) {
		r->scope_enter = weft_scope_enter(s);
		weft_scope_destroy(s);
	}
	weft_scope_t *out = SENTINEL;
	r->scope_open = weft_scope_open(&out, WEFT_FOREVER, 0);
	r->move_on_at = weft_move_on_at(&out, weft_now() + WEFT_SEC);
	r->move_on_after = weft_move_on_after(&out, WEFT_SEC);
	r->fail_at = weft_fail_at(&out, weft_now() + WEFT_SEC);
	r->fail_after = weft_fail_after(&out, WEFT_SEC);
	r->scope_out = out;
	weft_debug_stats_t st;
	weft_debug_stats(&st);
	r->live_scopes = st.live_scopes;

	r->task_started = weft_task_started(NULL);
	int value = 0;
	r->task_set_result = weft_task_set_result(&value);
	r->task_wait_null = weft_task_wait(NULL);
	r->fail_group_null = weft_fail_group(NULL);
	r->fail_group_err = weft_fail_group(err); /* frees err */
	weft_cancel_reason_t reason;
	r->cancel_reason = weft_cancel_reason(&reason);
	r->cancel_reason_null = weft_cancel_reason(NULL);
	r->fail = weft_fail(-EIO, "outside %d", 1);
	r->effective_deadline = weft_effective_deadline();
	r->task_id = weft_current_task_id();
	r->worker_count = weft_worker_count();
}

static void assert_plain_calls(const struct plain_calls *r)
{
	assert_int_equal(r->group_open, WEFT_ENOTFIBER);
	assert_ptr_equal(r->group_out, SENTINEL);
	assert_int_equal(r->group_open_null, -EINVAL);
	assert_int_equal(r->sleep_long, WEFT_ENOTFIBER);
	assert_int_equal(r->sleep_zero, WEFT_ENOTFIBER);
	assert_int_equal(r->sleep_negative, WEFT_ENOTFIBER);
	assert_int_equal(r->sleep_until_forever, WEFT_ENOTFIBER);
	assert_int_equal(r->sleep_until_past, WEFT_ENOTFIBER);
	assert_int_equal(r->checkpoint, WEFT_ENOTFIBER);
	assert_int_equal(r->checkpoint_if_cancelled, WEFT_ENOTFIBER);
	assert_int_equal(r->shielded_checkpoint, WEFT_ENOTFIBER);
	assert_int_equal(r->yield, WEFT_ENOTFIBER);
	assert_int_equal(r->scope_enter, WEFT_ENOTFIBER);
	assert_int_equal(r->scope_open, WEFT_ENOTFIBER);
	assert_int_equal(r->move_on_at, WEFT_ENOTFIBER);
	assert_int_equal(r->move_on_after, WEFT_ENOTFIBER);
	assert_int_equal(r->fail_at, WEFT_ENOTFIBER);
	assert_int_equal(r->fail_after, WEFT_ENOTFIBER);
	/* Nothing was created. */
	assert_ptr_equal(r->scope_out, SENTINEL);
	assert_int_equal(r->live_scopes, 0);
	assert_int_equal(r->task_started, WEFT_ENOTFIBER);
	assert_int_equal(r->task_set_result, WEFT_ENOTFIBER);
	assert_int_equal(r->task_wait_null, -EINVAL);
	assert_int_equal(r->fail_group_null, WEFT_ENOTFIBER);
	assert_int_equal(r->fail_group_err, WEFT_ENOTFIBER);
	assert_int_equal(r->cancel_reason, WEFT_ENOTFIBER);
	assert_int_equal(r->cancel_reason_null, -EINVAL);
	assert_int_equal(r->fail, -EIO);
	assert_true(r->effective_deadline == WEFT_FOREVER);
	assert_int_equal(r->task_id, 0);
	assert_int_equal(r->worker_count, 0);
}

/* A real error group, for weft_fail_group to free. */
static weft_error_t *make_error(void)
{
	weft_runtime_t *rt = weft_test_runtime_create(1);
	weft_error_t *err = NULL;
	assert_int_equal(weft_runtime_run(rt, fail_with_message,
				 &(struct failing_root){ 0 }, &err),
		-EIO);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_non_null(err);
	return err;
}

static void test_runtime__fiber_only_calls_from_a_plain_thread_are_enotfiber(
	void **state)
{
	(void)state;
	struct plain_calls r;
	memset(&r, 0, sizeof r);
	make_plain_calls(&r, make_error());
	assert_plain_calls(&r);
	weft_test_assert_no_leaks(); /* weft_fail_group freed the error */
}

struct thread_calls {
	weft_error_t *err;
	struct plain_calls r;
};

static void *plain_thread(void *arg)
{
	struct thread_calls *tc = arg;
	make_plain_calls(&tc->r, tc->err);
	return NULL;
}

static int root_starts_plain_thread(void *arg)
{
	struct thread_calls *tc = arg;
	pthread_t th;
	if (!CHECK_EQ(pthread_create(&th, NULL, plain_thread, tc), 0))
		return -EAGAIN;
	/* Blocks this worker briefly; the thread needs nothing from it. */
	pthread_join(th, NULL);
	return 0;
}

static void test_runtime__a_thread_started_by_a_task_is_not_a_fiber(
	void **state)
{
	struct thread_calls tc;
	memset(&tc, 0, sizeof tc);
	tc.err = make_error();
	weft_test_root(state, root_starts_plain_thread, &tc);
	/* live_scopes was read while the root ran: it owns none. */
	assert_plain_calls(&tc.r);
}

static void test_runtime__main_thread_is_not_a_fiber_while_a_runtime_exists(
	void **state)
{
	(void)state;
	weft_runtime_t *rt = weft_test_runtime_create(2);
	struct plain_calls r;
	memset(&r, 0, sizeof r);
	weft_error_t *err = make_error();
	make_plain_calls(&r, err);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_plain_calls(&r);
	assert_checks_passed();
}

/* }======================================================= */

/* {======================================================= inside tasks */

struct ids {
	unsigned workers;
	uint64_t root_id;
	uint64_t child_id[8];
	uint64_t handle_id[8];
};

static int record_id(void *arg)
{
	*(uint64_t *)arg = weft_current_task_id();
	CHECK(weft_current_task_id() != 0);
	return 0;
}

static int root_records_ids(void *arg)
{
	struct ids *ids = arg;
	CHECK_EQ(weft_worker_count(), ids->workers);
	ids->root_id = weft_current_task_id();
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -ENOMEM;
	weft_task_t *h[8] = { NULL };
	for (int i = 0; i < 8; i++) {
		weft_spawn_opts_t o = { .name = "id", .handle = &h[i] };
		CHECK_EQ(weft_group_spawn_opts(g, record_id, &ids->child_id[i],
				 &o),
			0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 8; i++) {
		ids->handle_id[i] = weft_task_id(h[i]);
		weft_task_release(h[i]);
	}
	/* The same task keeps its id across switches. */
	uint64_t before = weft_current_task_id();
	CHECK_EQ(weft_yield(), 0);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_current_task_id(), before);
	CHECK_EQ(weft_worker_count(), ids->workers);
	return 0;
}

static void test_runtime__inside_a_task_worker_count_is_the_configured_number(
	void **state)
{
	struct ids ids = { .workers = WEFT_TEST_WORKERS(state) };
	weft_test_root(state, root_records_ids, &ids);
}

static void test_runtime__every_task_has_its_own_nonzero_id(void **state)
{
	struct ids ids = { .workers = WEFT_TEST_WORKERS(state) };
	weft_test_root(state, root_records_ids, &ids);
	assert_true(ids.root_id != 0);
	for (int i = 0; i < 8; i++) {
		assert_true(ids.child_id[i] != 0);
		assert_true(ids.child_id[i] != ids.root_id);
		/* The id a task sees is the id of its handle. */
		assert_int_equal(ids.handle_id[i], ids.child_id[i]);
		for (int j = 0; j < i; j++)
			assert_true(ids.child_id[i] != ids.child_id[j]);
	}
}

#define NROOTS 4

struct multi_shared {
	weft_runtime_t *rt;
	atomic_int started;
};

struct multi_root {
	struct multi_shared *sh;
	int index;
	pthread_t thread;
	int all_started;
	atomic_int children;
	uint64_t id;
	int rc;
	weft_error_t *err;
};

static int multi_root_fn(void *arg)
{
	struct multi_root *m = arg;
	m->id = weft_current_task_id();
	atomic_fetch_add(&m->sh->started, 1);
	/* Every root is running at the same time before any finishes (at 1
	 * worker too: they park in weft_sleep). */
	m->all_started = task_wait_flag(&m->sh->started, NROOTS);
	CHECK_EQ(spawn_and_join(5 + m->index, &m->children), 0);
	if (m->index % 2)
		return weft_fail(-EIO - m->index, "root %d failed", m->index);
	return 0;
}

static void *multi_thread(void *arg)
{
	struct multi_root *m = arg;
	m->rc = weft_runtime_run(m->sh->rt, multi_root_fn, m, &m->err);
	return NULL;
}

static void test_runtime__several_threads_run_roots_in_one_runtime_at_once(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct multi_shared sh = { .rt = weft_test_runtime_create(workers) };
	struct multi_root m[NROOTS];
	memset(m, 0, sizeof m);
	for (int i = 0; i < NROOTS; i++) {
		m[i].sh = &sh;
		m[i].index = i;
		assert_int_equal(pthread_create(&m[i].thread, NULL,
					 multi_thread, &m[i]),
			0);
	}
	for (int i = 0; i < NROOTS; i++)
		pthread_join(m[i].thread, NULL);
	assert_int_equal(weft_runtime_destroy(sh.rt), 0);
	for (int i = 0; i < NROOTS; i++) {
		assert_true(m[i].all_started);
		assert_int_equal(atomic_load(&m[i].children), 5 + i);
		for (int j = 0; j < i; j++)
			assert_true(m[i].id != m[j].id);
		/* Each thread gets its own root's outcome. */
		if (i % 2) {
			char want[32];
			snprintf(want, sizeof want, "root %d failed", i);
			assert_int_equal(m[i].rc, -EIO - i);
			assert_non_null(m[i].err);
			assert_int_equal(weft_error_code_at(m[i].err, 0),
				-EIO - i);
			assert_string_equal(weft_error_message_at(m[i].err, 0),
				want);
			assert_int_equal(weft_error_task_id_at(m[i].err, 0),
				m[i].id);
		} else {
			assert_int_equal(m[i].rc, 0);
			assert_null(m[i].err);
		}
		weft_error_free(m[i].err);
	}
	assert_checks_passed();
}

/* }======================================================= */

/* {======================================================= error codes */

struct code_entry {
	int code;
	int value;
	const char *name;
	const char *message;
};

static const struct code_entry weft_codes[] = {
#define CODE_ENTRY(name, value, msg) { WEFT_##name, value, "WEFT_" #name, msg },
	WEFT_ERRNO_MAP(CODE_ENTRY)
#undef CODE_ENTRY
};
#define NCODES (sizeof weft_codes / sizeof weft_codes[0])

static void test_runtime__every_weft_code_has_its_message_and_name(void **state)
{
	(void)state;
	assert_true(NCODES >= 13);
	for (size_t i = 0; i < NCODES; i++) {
		const struct code_entry *c = &weft_codes[i];
		assert_int_equal(c->code, c->value);
		assert_in_range(-c->code, 3000, 3099);
		assert_string_equal(weft_strerror(c->code), c->message);
		assert_string_equal(weft_err_name(c->code), c->name);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(weft_codes[j].code, c->code);
	}
}

static void test_runtime__errno_codes_have_a_message_and_their_name(
	void **state)
{
	(void)state;
	static const struct {
		int code;
		const char *name;
	} errnos[] = {
		{ -EINVAL, "EINVAL" },
		{ -ENOMEM, "ENOMEM" },
		{ -ECANCELED, "ECANCELED" },
		{ -ETIMEDOUT, "ETIMEDOUT" },
		{ -EBUSY, "EBUSY" },
		{ -EAGAIN, "EAGAIN" },
		{ -EIO, "EIO" },
		{ -EPIPE, "EPIPE" },
	};
	assert_string_equal(weft_strerror(0), "success");
	assert_string_equal(weft_err_name(0), "OK");
	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
		const char *msg = weft_strerror(errnos[i].code);
		assert_non_null(msg);
		assert_true(msg[0] != '\0');
		assert_string_not_equal(msg, "unknown error");
		assert_string_equal(weft_err_name(errnos[i].code),
			errnos[i].name);
	}
	/* Another errno value still has a real message. */
	assert_string_not_equal(weft_strerror(-ENOSPC), "unknown error");
}

static void assert_unknown_codes(const int *codes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *msg = weft_strerror(codes[i]);
		const char *name = weft_err_name(codes[i]);
		if (strcmp(msg, "unknown error") != 0 ||
			strcmp(name, "UNKNOWN") != 0)
			print_error("code %d: strerror '%s', name '%s'\n",
				codes[i], msg, name);
		assert_string_equal(msg, "unknown error");
		assert_string_equal(name, "UNKNOWN");
	}
}

static void test_runtime__unknown_codes_are_unknown_error_and_UNKNOWN(
	void **state)
{
	(void)state;
	static const int unknown[] = {
		1, 12345, INT_MAX, /* positive: never a weft code */
		-100000, INT_MIN,  /* below every errno and weft code */
	};
	assert_unknown_codes(unknown, sizeof unknown / sizeof unknown[0]);
}

static void test_runtime__unassigned_codes_in_weft_range_are_unknown_error(
	void **state)
{
	(void)state;
	/* -3000 .. -3099 is weft's own range: a code there that the table
	 * does not list is unknown, not a glibc "Unknown error 3050". */
	static const int unknown[] = { -3020, -3050, -3099 };
	assert_unknown_codes(unknown, sizeof unknown / sizeof unknown[0]);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* First: see its comment. */
		cmocka_unit_test(
			test_runtime__fds_come_back_but_libuv_signal_pipe),
		WEFT_TEST(
			test_runtime__create_run_destroy_runs_the_root_and_its_children),
		WEFT_TEST(
			test_runtime__one_runtime_runs_many_roots_one_after_another),
		WEFT_TEST(test_runtime__root_return_value_comes_back_from_run),
		WEFT_TEST(
			test_runtime__null_err_out_is_allowed_for_a_failing_root),
		WEFT_TEST(
			test_runtime__failing_root_gives_one_leaf_with_code_message_and_name),
		WEFT_TEST(
			test_runtime__root_failing_with_a_group_nests_it_in_the_error),
		WEFT_TEST(
			test_runtime__cancelled_root_is_not_reported_as_a_failure),
		cmocka_unit_test(
			test_runtime__weft_run_runs_the_root_and_returns_its_result),
		cmocka_unit_test(
			test_runtime__weft_run_with_null_fn_is_rejected),
		WEFT_TEST(
			test_runtime__a_runtime_runs_a_thread_per_worker_plus_io_and_sampler),
		cmocka_unit_test(
			test_runtime__creating_and_destroying_100_runtimes_leaks_nothing),
		cmocka_unit_test(test_runtime__two_runtimes_live_side_by_side),
		cmocka_unit_test(test_runtime__destroy_of_null_is_rejected),
		cmocka_unit_test(
			test_runtime__run_with_null_arguments_is_rejected),
		WEFT_TEST(
			test_runtime__destroy_from_inside_its_own_task_is_busy),
		WEFT_TEST(
			test_runtime__destroy_while_another_thread_runs_a_root_is_busy),
		WEFT_TEST(test_runtime__run_from_inside_a_task_is_misuse),
		cmocka_unit_test(
			test_runtime__fiber_only_calls_from_a_plain_thread_are_enotfiber),
		WEFT_TEST(
			test_runtime__a_thread_started_by_a_task_is_not_a_fiber),
		cmocka_unit_test(
			test_runtime__main_thread_is_not_a_fiber_while_a_runtime_exists),
		WEFT_TEST(
			test_runtime__inside_a_task_worker_count_is_the_configured_number),
		WEFT_TEST(test_runtime__every_task_has_its_own_nonzero_id),
		WEFT_TEST(
			test_runtime__several_threads_run_roots_in_one_runtime_at_once),
		cmocka_unit_test(
			test_runtime__every_weft_code_has_its_message_and_name),
		cmocka_unit_test(
			test_runtime__errno_codes_have_a_message_and_their_name),
		cmocka_unit_test(
			test_runtime__unknown_codes_are_unknown_error_and_UNKNOWN),
		cmocka_unit_test(
			test_runtime__unassigned_codes_in_weft_range_are_unknown_error),
	};
	return WEFT_RUN_TESTS(tests);
}
