/* Tests for blocking offload and foreign threads (runtime/offload.c,
 * runtime/portal.c, include/weft/thread.h): weft_to_thread's pool limit,
 * FIFO slots, limiters, the three cancellation cases (waiting, running,
 * abandoned), what the function sees on its thread (cancellation,
 * deadline, task-local context), weft_from_thread_run, and portals used
 * from plain pthreads.
 *
 * Waits for another thread never assert durations: they poll a condition
 * with a 10 s bound ("did not hang"), and a bound that passes fails the
 * test through the condition it waited for.  Every test runs at 1, 2 and
 * 4 workers and ends with the leak check of weft_test_run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>
#include <weft/thread.h>

#include "thread/offload.h"
#include "support.h"
#include "core/task.h"

#define WATCHDOG_NS (10 * 1000000000LL)
#define MS (1000000LL)

/* {======================================================= helpers */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Plain thread: polls flag until it reads at least want (10 s bound). */
static int thread_wait_ge(atomic_int *flag, int want)
{
	int64_t end = mono_ns() + WATCHDOG_NS;
	while (atomic_load(flag) < want) {
		if (mono_ns() > end)
			return 0;
		usleep(200);
	}
	return 1;
}

/* Task: the same, sleeping between polls so the worker stays free. */
static int task_wait_ge(atomic_int *flag, int want)
{
	int64_t end = mono_ns() + WATCHDOG_NS;
	while (atomic_load(flag) < want) {
		if (mono_ns() > end)
			return 0;
		weft_sleep(MS / 2);
	}
	return 1;
}

static struct weft__offload_stats pool_stats(void)
{
	struct weft__offload_stats st;
	weft__offload_stats(weft__task_current()->rt, &st);
	return st;
}

/* Task: polls until `waiting` calls wait for a pool slot. */
static int task_wait_pool_waiting(size_t waiting)
{
	int64_t end = mono_ns() + WATCHDOG_NS;
	while (pool_stats().waiting < waiting) {
		if (mono_ns() > end)
			return 0;
		weft_sleep(MS / 2);
	}
	return 1;
}

/* Runs fn as root with `workers` workers and an offload limit, and
 * asserts that it returned 0. */
static void run_limited(unsigned workers, unsigned limit, weft_fn fn, void *arg)
{
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = workers;
	cfg.offload_threads = limit;
	assert_int_equal(weft_test_run_cfg(&cfg, fn, arg), 0);
}

/* State shared by one test's tasks and threads; reset by each test. */
static struct {
	atomic_int inside;     /* fns running now */
	atomic_int max_inside; /* most fns seen running at once */
	atomic_int full;       /* max_inside reached the expected cap */
	atomic_int gate;       /* released by the test's driver */
	atomic_int ran;	       /* fns that ran */
	int pool_limit;	       /* the pool's thread limit in this test */
	atomic_int phase;
	atomic_int finished;
	atomic_int order[16];
	atomic_int norder;
	int cap;
} st;

static void reset(void)
{
	memset(&st, 0, sizeof st);
}

/* }======================================================= */

/* {======================================================= basics */

static int fn_answer(void *arg, void **result)
{
	CHECK(weft__task_current() == NULL);
	*result = arg;
	return 7;
}

static int root_result(void *arg)
{
	(void)arg;
	void *r = NULL;
	int rc = weft_to_thread(fn_answer, (void *)(uintptr_t)42, &r, NULL);
	CHECK_EQ(rc, 7);
	CHECK_EQ((uintptr_t)r, 42);
	/* NULL result is allowed. */
	CHECK_EQ(weft_to_thread(fn_answer, NULL, NULL, NULL), 7);
	return 0;
}

WEFT_TEST_ROOT(thread, result_passes_back, root_result, NULL)

/* Runs until `st.cap` fns are inside at once, or 10 s. */
static int fn_count(void *arg, void **result)
{
	(void)arg;
	(void)result;
	int n = atomic_fetch_add(&st.inside, 1) + 1;
	int m = atomic_load(&st.max_inside);
	while (n > m && !atomic_compare_exchange_weak(&st.max_inside, &m, n))
		;
	if (n >= st.cap)
		atomic_store(&st.full, 1);
	thread_wait_ge(&st.full, 1);
	usleep(200);
	atomic_fetch_sub(&st.inside, 1);
	atomic_fetch_add(&st.ran, 1);
	return 0;
}

static int task_call_count(void *arg)
{
	weft_to_thread_opts_t *o = arg;
	CHECK_EQ(weft_to_thread(fn_count, NULL, NULL, o), 0);
	return 0;
}

#define NCALLS 12

static int root_many(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < NCALLS; i++)
		CHECK_EQ(weft_group_spawn(g, task_call_count, arg), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* Never more threads than the pool's limit.  (With a per-call
	 * limiter below the pool's limit, a thread finishing a call may not
	 * be idle yet when the next call is queued, so the pool may start a
	 * few more threads than the limiter lets run: only the pool's limit
	 * bounds them.) */
	CHECK(pool_stats().threads <= (unsigned)st.pool_limit);
	CHECK_EQ(pool_stats().running, 0);
	return 0;
}

static void test_thread__concurrent_calls_are_capped_at_the_limit(void **state)
{
	reset();
	st.cap = 3;
	st.pool_limit = 3;
	run_limited(WEFT_TEST_WORKERS(state), 3, root_many, NULL);
	assert_int_equal(atomic_load(&st.max_inside), 3);
	assert_int_equal(atomic_load(&st.ran), NCALLS);
}

static int root_limiter(void *arg)
{
	(void)arg;
	weft_limiter_t *l;
	CHECK_EQ(weft_limiter_create(&l, 2), 0);
	weft_to_thread_opts_t o = { .limiter = l };
	root_many(&o);
	weft_limiter_stats_t ls;
	weft_limiter_stats(l, &ls);
	CHECK_EQ(ls.borrowed, 0);
	CHECK_EQ(weft_limiter_destroy(l), 0);
	return 0;
}

static void test_thread__a_limiter_per_call_caps_concurrency(void **state)
{
	reset();
	st.cap = 2;
	st.pool_limit = 40;
	/* Pool limit 40 (the default): only the limiter caps at 2. */
	run_limited(WEFT_TEST_WORKERS(state), 40, root_limiter, NULL);
	assert_int_equal(atomic_load(&st.max_inside), 2);
	assert_int_equal(atomic_load(&st.ran), NCALLS);
}

/* }======================================================= */

/* {======================================================= FIFO, cancel */

/* Holds its slot until st.gate. */
static int fn_blocker(void *arg, void **result)
{
	(void)arg;
	(void)result;
	atomic_fetch_add(&st.phase, 1);
	thread_wait_ge(&st.gate, 1);
	return 0;
}

static int fn_record(void *arg, void **result)
{
	(void)result;
	int i = atomic_fetch_add(&st.norder, 1);
	atomic_store(&st.order[i], (int)(uintptr_t)arg);
	atomic_fetch_add(&st.ran, 1);
	return 0;
}

static int task_blocker(void *arg)
{
	(void)arg;
	CHECK_EQ(weft_to_thread(fn_blocker, NULL, NULL, NULL), 0);
	return 0;
}

static int task_record(void *arg)
{
	CHECK_EQ(weft_to_thread(fn_record, arg, NULL, NULL), 0);
	return 0;
}

#define NFIFO 6

static int root_fifo(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, task_blocker, NULL), 0);
	CHECK(task_wait_ge(&st.phase, 1));
	/* Queue the callers one by one, so their order is known. */
	for (int i = 0; i < NFIFO; i++) {
		CHECK_EQ(weft_group_spawn(g, task_record, (void *)(uintptr_t)i),
			0);
		CHECK(task_wait_pool_waiting((size_t)i + 1));
	}
	CHECK_EQ(atomic_load(&st.ran), 0);
	atomic_store(&st.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_thread__calls_beyond_the_limit_wait_in_fifo_order(void **state)
{
	reset();
	run_limited(WEFT_TEST_WORKERS(state), 1, root_fifo, NULL);
	assert_int_equal(atomic_load(&st.norder), NFIFO);
	for (int i = 0; i < NFIFO; i++)
		assert_int_equal(atomic_load(&st.order[i]), i);
}

static int task_cancelled_waiter(void *arg)
{
	int *rc = arg;
	*rc = weft_to_thread(fn_record, NULL, NULL, NULL);
	/* Observed: the task ends cancelled, not failed. */
	return *rc;
}

static int root_cancel_waiting(void *arg)
{
	int *rc = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, task_blocker, NULL), 0);
	CHECK(task_wait_ge(&st.phase, 1));
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .handle = &h };
	CHECK_EQ(weft_group_spawn_opts(g, task_cancelled_waiter, rc, &o), 0);
	CHECK(task_wait_pool_waiting(1));
	CHECK_EQ(weft_task_cancel(h), 0);
	CHECK_EQ(weft_task_wait(h), 0);
	CHECK_EQ(weft_task_state(h), WEFT_TASK_CANCELLED);
	weft_task_release(h);
	CHECK_EQ(pool_stats().waiting, 0);
	atomic_store(&st.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_thread__cancel_while_waiting_for_a_slot_never_runs_fn(
	void **state)
{
	reset();
	int rc = 0;
	run_limited(WEFT_TEST_WORKERS(state), 1, root_cancel_waiting, &rc);
	assert_int_equal(rc, -ECANCELED);
	assert_int_equal(atomic_load(&st.ran), 0);
}

/* Runs until its sender is cancelled, then returns a value. */
static int fn_poll_cancel(void *arg, void **result)
{
	(void)arg;
	CHECK_EQ(weft_thread_check_cancelled(), 0);
	atomic_store(&st.phase, 1);
	int64_t end = mono_ns() + WATCHDOG_NS;
	while (weft_thread_check_cancelled() == 0 && mono_ns() < end)
		usleep(200);
	CHECK_EQ(weft_thread_check_cancelled(), -ECANCELED);
	*result = (void *)(uintptr_t)99;
	return 0;
}

static int task_not_abandoned(void *arg)
{
	(void)arg;
	void *r = NULL;
	/* Not abandoned: the call waits for fn, then reports the cancellation;
	 * fn's value still comes back (it may own memory). */
	CHECK_EQ(weft_to_thread(fn_poll_cancel, NULL, &r, NULL), -ECANCELED);
	CHECK_EQ((uintptr_t)r, 99);
	CHECK_EQ(weft_checkpoint_if_cancelled(), -ECANCELED);
	atomic_store(&st.finished, 1);
	return -ECANCELED;
}

static int root_cancel_running(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .handle = &h };
	CHECK_EQ(weft_group_spawn_opts(g, task_not_abandoned, NULL, &o), 0);
	CHECK(task_wait_ge(&st.phase, 1));
	CHECK_EQ(weft_task_cancel(h), 0);
	weft_task_release(h);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_thread__cancel_while_running_waits_then_returns_ecanceled(
	void **state)
{
	reset();
	weft_test_root(state, root_cancel_running, NULL);
	assert_int_equal(atomic_load(&st.finished), 1);
}

/* Cancels the scope its sender is in, then returns at once. */
static int fn_cancel_sender(void *arg, void **result)
{
	CHECK_EQ(weft_scope_cancel(arg, NULL), 0);
	*result = arg;
	return 0;
}

/* fn cancels the calling task's own scope and returns: the cancellation
 * came while fn ran, so the call reports it (rule 39), whether the fiber
 * is resumed by the cancellation's wake before fn's return is published
 * or finds the return first (it used to return fn's 0 then, depending on
 * the schedule; found by tests/mbt). */
static int root_fn_cancels_sender(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++) {
		weft_scope_t *s;
		CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
		void *r = NULL;
		CHECK_EQ(weft_to_thread(fn_cancel_sender, s, &r, NULL),
			-ECANCELED);
		CHECK(r == s);
		CHECK_EQ(weft_scope_exit(s), 0);
		CHECK_EQ(weft_scope_cancelled_caught(s), 1);
		weft_scope_destroy(s);
	}
	return 0;
}

static void test_thread__fn_cancelling_its_sender_returns_ecanceled(
	void **state)
{
	weft_test_root(state, root_fn_cancels_sender, NULL);
}

static int task_noop(void *arg)
{
	(void)arg;
	return 0;
}

/* Abandoned: waits for the gate, then checks what an abandoned call
 * sees, lingers a little and marks that it finished. */
static int fn_abandoned(void *arg, void **result)
{
	(void)arg;
	*result = (void *)(uintptr_t)1;
	atomic_store(&st.phase, 1);
	thread_wait_ge(&st.gate, 1);
	CHECK_EQ(weft_thread_check_cancelled(), -ECANCELED);
	CHECK_EQ(weft_from_thread_run(task_noop, NULL, NULL), -ECANCELED);
	usleep(20000);
	atomic_store(&st.finished, 1);
	return 0;
}

static int task_abandoning(void *arg)
{
	int *rc = arg;
	void *r = NULL;
	weft_to_thread_opts_t o = { .abandon_on_cancel = true };
	*rc = weft_to_thread(fn_abandoned, NULL, &r, &o);
	CHECK(r == NULL);
	return *rc;
}

static int root_abandon(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .handle = &h };
	CHECK_EQ(weft_group_spawn_opts(g, task_abandoning, arg, &o), 0);
	CHECK(task_wait_ge(&st.phase, 1));
	CHECK_EQ(weft_task_cancel(h), 0);
	/* Returns while fn is still blocked on the gate. */
	CHECK_EQ(weft_task_wait(h), 0);
	weft_task_release(h);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&st.finished), 0);
	/* The abandoned call still holds its slot. */
	CHECK_EQ(pool_stats().running, 1);
	atomic_store(&st.gate, 1);
	return 0;
}

static void test_thread__abandon_returns_at_once_and_destroy_joins(void **state)
{
	reset();
	int rc = 0;
	weft_test_root(state, root_abandon, &rc);
	assert_int_equal(rc, -ECANCELED);
	/* weft_runtime_destroy waited for the abandoned function. */
	assert_int_equal(atomic_load(&st.finished), 1);
}

/* }======================================================= */

/* {======================================================= thread side */

static int fn_deadline(void *arg, void **result)
{
	(void)arg;
	*result = NULL;
	int64_t *out = arg;
	*out = weft_thread_deadline();
	return weft_thread_check_cancelled();
}

static int root_deadline(void *arg)
{
	(void)arg;
	int64_t seen = 0;
	CHECK_EQ(weft_to_thread(fn_deadline, &seen, NULL, NULL), 0);
	CHECK_EQ(seen, WEFT_FOREVER);
	int64_t dl = weft_now() + 3600 * 1000000000LL;
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_at(&s, dl), 0);
	CHECK_EQ(weft_to_thread(fn_deadline, &seen, NULL, NULL), 0);
	CHECK_EQ(seen, dl);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(thread, the_senders_deadline_is_visible, root_deadline, NULL)

static weft_local_key_t *key;

static int fn_local(void *arg, void **result)
{
	(void)arg;
	return weft_local_get(key, result);
}

static int root_context(void *arg)
{
	(void)arg;
	void *v = NULL;
	CHECK_EQ(weft_local_key_create(&key, NULL), 0);
	CHECK_EQ(weft_to_thread(fn_local, NULL, &v, NULL), -ENOENT);
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(key, (void *)(uintptr_t)5, &tok), 0);
	CHECK_EQ(weft_to_thread(fn_local, NULL, &v, NULL), 0);
	CHECK_EQ((uintptr_t)v, 5);
	CHECK_EQ(weft_local_unbind(&tok), 0);
	CHECK_EQ(weft_local_key_destroy(key), 0);
	return 0;
}

WEFT_TEST_ROOT(thread, the_senders_context_is_visible, root_context, NULL)

static int task_from_thread(void *arg)
{
	CHECK(weft__task_current() != NULL);
	/* It is a child of the sender: it sees the sender's context. */
	void *v = NULL;
	CHECK_EQ(weft_local_get(key, &v), 0);
	CHECK_EQ((uintptr_t)v, 5);
	/* From a fiber, from_thread would deadlock. */
	CHECK_EQ(weft_from_thread_run(task_noop, NULL, NULL), WEFT_EMISUSE);
	if (arg)
		return weft_fail(-EIO, "asked to fail");
	weft_task_set_result((void *)(uintptr_t)11);
	return 0;
}

static int fn_from_thread(void *arg, void **result)
{
	(void)arg;
	void *r = NULL;
	int rc = weft_from_thread_run(task_from_thread, NULL, &r);
	CHECK_EQ(rc, 0);
	CHECK_EQ((uintptr_t)r, 11);
	rc = weft_from_thread_run(task_from_thread, (void *)1, &r);
	CHECK_EQ(rc, -EIO);
	CHECK_EQ(weft_from_thread_run(NULL, NULL, NULL), -EINVAL);
	*result = (void *)(uintptr_t)3;
	return 0;
}

static int root_from_thread(void *arg)
{
	(void)arg;
	void *v = NULL;
	CHECK_EQ(weft_local_key_create(&key, NULL), 0);
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(key, (void *)(uintptr_t)5, &tok), 0);
	CHECK_EQ(weft_to_thread(fn_from_thread, NULL, &v, NULL), 0);
	CHECK_EQ((uintptr_t)v, 3);
	CHECK_EQ(weft_local_unbind(&tok), 0);
	CHECK_EQ(weft_local_key_destroy(key), 0);
	return 0;
}

WEFT_TEST_ROOT(thread, from_thread_runs_a_task_and_returns_its_result,
	root_from_thread, NULL)

/* }======================================================= */

/* {======================================================= portal */

static int task_portal_value(void *arg)
{
	weft_task_set_result(arg);
	return 0;
}

static int task_portal_fail(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "portal task failed");
}

static int task_portal_forever(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_FOREVER);
}

static int task_portal_service(void *arg)
{
	CHECK_EQ(weft_task_started(arg), 0);
	return weft_sleep(WEFT_FOREVER);
}

static int task_portal_flag(void *arg)
{
	(void)arg;
	atomic_fetch_add(&st.ran, 1);
	return 0;
}

static int task_portal_no_start(void *arg)
{
	(void)arg;
	return 0;
}

/* The foreign thread: exercises the portal, then waits for the close
 * and checks that calls are refused. */
static void *foreign_main(void *arg)
{
	weft_portal_t *p = arg;
	void *v = NULL;
	CHECK_EQ(weft_portal_call(p, task_portal_value, (void *)(uintptr_t)8,
			 &v, WEFT_FOREVER),
		0);
	CHECK_EQ((uintptr_t)v, 8);
	CHECK_EQ(weft_portal_call(p, task_portal_fail, NULL, &v, WEFT_FOREVER),
		-EIO);
	CHECK_EQ(weft_portal_call(p, task_portal_forever, NULL, &v, 5 * MS),
		-ETIMEDOUT);
	CHECK_EQ(weft_portal_call(p, task_portal_value, NULL, &v, -1), -EINVAL);
	CHECK_EQ(weft_portal_spawn(p, task_portal_flag, NULL), 0);
	v = NULL;
	CHECK_EQ(weft_portal_start(p, task_portal_service, (void *)(uintptr_t)6,
			 &v, WEFT_FOREVER),
		0);
	CHECK_EQ((uintptr_t)v, 6);
	CHECK_EQ(weft_portal_start(p, task_portal_no_start, NULL, &v,
			 WEFT_FOREVER),
		WEFT_ENOTSTARTED);
	CHECK_EQ(weft_portal_start(p, task_portal_forever, NULL, &v, 5 * MS),
		-ETIMEDOUT);
	atomic_store(&st.phase, 1);
	CHECK(thread_wait_ge(&st.phase, 2));
	/* Closed: refused, and no use after free (we hold a reference). */
	CHECK_EQ(weft_portal_call(p, task_portal_value, NULL, &v, WEFT_FOREVER),
		WEFT_ECLOSED);
	CHECK_EQ(weft_portal_spawn(p, task_portal_flag, NULL), WEFT_ECLOSED);
	CHECK_EQ(weft_portal_start(p, task_portal_service, NULL, &v,
			 WEFT_FOREVER),
		WEFT_ECLOSED);
	weft_portal_release(p);
	atomic_store(&st.phase, 3);
	return NULL;
}

static pthread_t foreign;

static int root_portal(void *arg)
{
	(void)arg;
	weft_portal_t *p;
	CHECK_EQ(weft_portal_open(&p), 0);
	CHECK_EQ(weft_portal_retain(p), 0);
	/* From a fiber a blocking portal call would block a worker. */
	CHECK_EQ(weft_portal_call(p, task_portal_value, NULL, NULL,
			 WEFT_FOREVER),
		WEFT_EMISUSE);
	CHECK_EQ(pthread_create(&foreign, NULL, foreign_main, p), 0);
	CHECK(task_wait_ge(&st.phase, 1));
	/* The service started through the portal is still running. */
	weft_error_t *err = NULL;
	CHECK_EQ(weft_portal_close(p, true, &err), 0);
	CHECK(err == NULL);
	CHECK_EQ(atomic_load(&st.ran), 1);
	atomic_store(&st.phase, 2);
	CHECK(task_wait_ge(&st.phase, 3));
	return 0;
}

static void test_thread__a_portal_serves_a_foreign_thread(void **state)
{
	reset();
	weft_test_root(state, root_portal, NULL);
	assert_int_equal(pthread_join(foreign, NULL), 0);
}

static void *foreign_spawn_fail(void *arg)
{
	CHECK_EQ(weft_portal_spawn(arg, task_portal_fail, NULL), 0);
	atomic_store(&st.phase, 1);
	return NULL;
}

static int root_portal_errors(void *arg)
{
	(void)arg;
	weft_portal_t *p;
	CHECK_EQ(weft_portal_open(&p), 0);
	CHECK_EQ(pthread_create(&foreign, NULL, foreign_spawn_fail, p), 0);
	CHECK(task_wait_ge(&st.phase, 1));
	weft_error_t *err = NULL;
	CHECK_EQ(weft_portal_close(p, false, &err), WEFT_ECHILD_FAILED);
	CHECK(err != NULL);
	CHECK_EQ(weft_error_count(err), 1);
	weft_error_free(err);
	return 0;
}

static void test_thread__portal_spawn_failures_come_back_at_close(void **state)
{
	reset();
	weft_test_root(state, root_portal_errors, NULL);
	assert_int_equal(pthread_join(foreign, NULL), 0);
}

/* }======================================================= */

/* {======================================================= misuse */

static int fn_plain(void *arg, void **result)
{
	(void)arg;
	(void)result;
	return 0;
}

static int task_close_other(void *arg)
{
	return weft_portal_close(arg, false, NULL);
}

static int root_misuse(void *arg)
{
	(void)arg;
	CHECK_EQ(weft_to_thread(NULL, NULL, NULL, NULL), -EINVAL);
	/* On a fiber, not an offload thread. */
	CHECK_EQ(weft_thread_check_cancelled(), WEFT_EMISUSE);
	CHECK_EQ(weft_thread_deadline(), WEFT_FOREVER);
	CHECK_EQ(weft_from_thread_run(task_noop, NULL, NULL), WEFT_EMISUSE);
	CHECK_EQ(weft_portal_open(NULL), -EINVAL);
	CHECK_EQ(weft_portal_close(NULL, false, NULL), -EINVAL);
	CHECK_EQ(weft_portal_retain(NULL), -EINVAL);
	weft_portal_release(NULL);
	CHECK_EQ(weft_portal_call(NULL, task_noop, NULL, NULL, 0), -EINVAL);
	CHECK_EQ(weft_portal_start(NULL, task_noop, NULL, NULL, 0), -EINVAL);
	CHECK_EQ(weft_portal_spawn(NULL, task_noop, NULL), -EINVAL);
	weft_portal_t *p;
	CHECK_EQ(weft_portal_open(&p), 0);
	CHECK_EQ(weft_portal_spawn(p, NULL, NULL), -EINVAL);
	/* Only the opener closes it. */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .handle = &h };
	CHECK_EQ(weft_group_spawn_opts(g, task_close_other, p, &o), 0);
	CHECK_EQ(weft_group_join(g, NULL), WEFT_ECHILD_FAILED);
	int code = 0;
	CHECK_EQ(weft_task_failure(h, &code, NULL), 0);
	CHECK_EQ(code, WEFT_EMISUSE);
	weft_task_release(h);
	CHECK_EQ(weft_portal_close(p, false, NULL), 0);
	CHECK_EQ(weft_to_thread(fn_plain, NULL, NULL, NULL), 0);
	return 0;
}

static void test_thread__bad_arguments_and_wrong_threads_are_refused(
	void **state)
{
	weft_test_root(state, root_misuse, NULL);
	/* The main thread is neither a fiber nor an offload thread. */
	assert_int_equal(weft_to_thread(fn_plain, NULL, NULL, NULL),
		WEFT_ENOTFIBER);
	assert_int_equal(weft_thread_check_cancelled(), WEFT_EMISUSE);
	assert_int_equal(weft_from_thread_run(task_noop, NULL, NULL),
		WEFT_EMISUSE);
	weft_portal_t *p = NULL;
	assert_int_equal(weft_portal_open(&p), WEFT_ENOTFIBER);
}

/* Fails the n-th allocation from the call on; returns the call's rc. */
static int root_alloc_fail(void *arg)
{
	long n = *(long *)arg;
	weft_debug_fail_alloc(n);
	void *r = NULL;
	int rc = weft_to_thread(fn_answer, (void *)(uintptr_t)1, &r, NULL);
	weft_debug_fail_alloc(0);
	*(long *)arg = rc;
	return 0;
}

static void test_thread__allocation_failure_returns_enomem(void **state)
{
	(void)state;
	for (long n = 1; n < 50; n++) {
		long v = n;
		run_limited(1, 4, root_alloc_fail, &v);
		if (v == 7)
			return;
		assert_int_equal(v, -ENOMEM);
	}
	fail_msg("weft_to_thread never succeeded under injection");
}

static int root_portal_alloc_fail(void *arg)
{
	long n = *(long *)arg;
	weft_debug_fail_alloc(n);
	weft_portal_t *p = NULL;
	int rc = weft_portal_open(&p);
	weft_debug_fail_alloc(0);
	if (rc == 0)
		CHECK_EQ(weft_portal_close(p, false, NULL), 0);
	*(long *)arg = rc;
	return 0;
}

static void test_thread__portal_open_allocation_failure_returns_enomem(
	void **state)
{
	(void)state;
	for (long n = 1; n < 50; n++) {
		long v = n;
		run_limited(1, 4, root_portal_alloc_fail, &v);
		if (v == 0)
			return;
		assert_int_equal(v, -ENOMEM);
	}
	fail_msg("weft_portal_open never succeeded under injection");
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_thread__result_passes_back),
		WEFT_TEST(
			test_thread__concurrent_calls_are_capped_at_the_limit),
		WEFT_TEST(test_thread__a_limiter_per_call_caps_concurrency),
		WEFT_TEST(
			test_thread__calls_beyond_the_limit_wait_in_fifo_order),
		WEFT_TEST(
			test_thread__cancel_while_waiting_for_a_slot_never_runs_fn),
		WEFT_TEST(
			test_thread__cancel_while_running_waits_then_returns_ecanceled),
		WEFT_TEST(
			test_thread__fn_cancelling_its_sender_returns_ecanceled),
		WEFT_TEST(
			test_thread__abandon_returns_at_once_and_destroy_joins),
		WEFT_TEST(test_thread__the_senders_deadline_is_visible),
		WEFT_TEST(test_thread__the_senders_context_is_visible),
		WEFT_TEST(
			test_thread__from_thread_runs_a_task_and_returns_its_result),
		WEFT_TEST(test_thread__a_portal_serves_a_foreign_thread),
		WEFT_TEST(
			test_thread__portal_spawn_failures_come_back_at_close),
		WEFT_TEST(
			test_thread__bad_arguments_and_wrong_threads_are_refused),
		cmocka_unit_test(
			test_thread__allocation_failure_returns_enomem),
		cmocka_unit_test(
			test_thread__portal_open_allocation_failure_returns_enomem),
	};
	return WEFT_RUN_TESTS(tests);
}
