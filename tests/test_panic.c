/* Panics (docs/semantics.md rule 45): weft_panic ends the calling task with
 * a WEFT_EPANIC failure whose message carries a backtrace, delivered to
 * its group like any failure; what the task left open is reaped; a child
 * run inline on its parent's stack panics too; before started() the
 * starter gets it; the hook sees it; a Lock the task holds breaks;
 * outside a task, and while a task is
 * ending, it aborts the process.  weft_assert panics on a false
 * condition.
 *
 * The functions a backtrace must name are not static: without libdw,
 * weft names only exported symbols (the test is linked with -rdynamic). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "support.h"

/* {======================================================= helpers */

struct siblings {
	atomic_int started;
	atomic_int cancelled;
};

static int sleep_until_cancelled(void *arg)
{
	struct siblings *s = arg;
	atomic_fetch_add(&s->started, 1);
	int rc = weft_sleep(10 * WEFT_SEC);
	if (rc == -ECANCELED)
		atomic_fetch_add(&s->cancelled, 1);
	return rc;
}

/* Whether leaf 0 of err is a panic whose message has `text` and a
 * backtrace whose first frame is `fn` (CHECKed). */
static void check_panic_leaf(const weft_error_t *err, size_t i,
	const char *text, const char *fn)
{
	CHECK_EQ(weft_error_code_at(err, i), WEFT_EPANIC);
	const char *m = weft_error_message_at(err, i);
	CHECK(strstr(m, text) == m);
	char frame0[128];
	snprintf(frame0, sizeof frame0, "\n  #0 %s+0x", fn);
	if (!CHECK(strstr(m, frame0) != NULL))
		print_message("panic message: %s\n", m);
}

/* }======================================================= */

/* {======================================================= a panicking child */

int panic_test_boom(void *arg);
int panic_test_boom(void *arg)
{
	int *n = arg;
	weft_panic("boom %d", *n);
}

/* The parent sleeps in the group's scope while the child runs on its own
 * fiber; the panic cancels the group, hence the sleep and the siblings. */
static int child_panic_root(void *arg)
{
	struct siblings *s = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_until_cancelled, s), 0);
	int n = 42;
	CHECK_EQ(weft_group_spawn(g, panic_test_boom, &n), 0);
	CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_leaf_count(err), 1);
	check_panic_leaf(err, 0, "boom 42\n", "panic_test_boom");
	CHECK(strcmp(weft_error_task_name_at(err, 0), "panic_test_boom") == 0);
	const char *msg = NULL;
	CHECK_EQ(weft_error_primary(err, &msg), WEFT_EPANIC);
	weft_error_free(err);
	CHECK_EQ(atomic_load(&s->cancelled), atomic_load(&s->started));
	return 0;
}

static void test_panic__child_fails_its_group_with_a_backtrace(void **state)
{
	struct siblings s = { 0 };
	weft_test_root(state, child_panic_root, &s);
	assert_int_equal(atomic_load(&s.cancelled), atomic_load(&s.started));
}

/* }======================================================= */

/* {======================================================= run inline */

int panic_test_inline(void *arg);
int panic_test_inline(void *arg)
{
	int *yield_first = arg;
	/* A park first: the stack, the parent's frames below, may move to
	 * another worker before the panic jumps back into them. */
	if (*yield_first)
		weft_yield();
	weft_panic("inline %d", *yield_first);
}

/* Spawn, then join at once: on 1 worker the child runs inline on this
 * stack (weft__sched_help_join) and its panic must come back here. */
static int inline_panic_root(void *arg)
{
	(void)arg;
	for (int round = 0; round < 200; round++) {
		int yield_first = round % 2;
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, panic_test_inline, &yield_first),
			0);
		weft_error_t *err = NULL;
		CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
		CHECK_EQ(weft_error_count(err), 1);
		check_panic_leaf(err, 0, yield_first ? "inline 1" : "inline 0",
			"panic_test_inline");
		weft_error_free(err);
	}
	/* The stack is still good for more work after 200 abandoned
	 * frames (ASan: no stale redzones). */
	char buf[4096];
	memset(buf, 1, sizeof buf);
	CHECK_EQ(buf[sizeof buf - 1], 1);
	return 0;
}

WEFT_TEST_ROOT(panic, inline_child_gets_back_to_its_parent, inline_panic_root,
	NULL)

/* }======================================================= */

/* {======================================================= open groups */

static int fail_io(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "io child");
}

struct open_group {
	struct siblings s;
	weft_scope_t *scope;
};

int panic_test_with_open_group(void *arg);
int panic_test_with_open_group(void *arg)
{
	struct open_group *o = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(weft_group_spawn(g, sleep_until_cancelled, &o->s), 0);
	CHECK_EQ(weft_group_spawn(g, fail_io, NULL), 0);
	/* A user scope entered inside the group, left entered too. */
	CHECK_EQ(weft_scope_open(&o->scope, WEFT_FOREVER, 0), 0);
	weft_panic("with an open group");
}

static int is_panic(int code, const char *message, void *arg)
{
	(void)message, (void)arg;
	return code == WEFT_EPANIC;
}

static int open_group_root(void *arg)
{
	struct open_group *o = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, panic_test_with_open_group, o), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	/* The panic, not a missing join, with the reaped group's failure
	 * nested under it. */
	check_panic_leaf(err, 0, "with an open group\n",
		"panic_test_with_open_group");
	const weft_error_t *nested = weft_error_nested_at(err, 0);
	CHECK_EQ(weft_error_count(nested), 1);
	CHECK_EQ(weft_error_code_at(nested, 0), -EIO);
	CHECK(strcmp(weft_error_message_at(nested, 0), "io child") == 0);
	CHECK_EQ(weft_error_primary(err, NULL), WEFT_EPANIC);
	/* Split by code: the panic goes to its side with its nested group
	 * whole, though the nested leaf would not match on its own. */
	weft_error_t *match = NULL, *rest = NULL;
	CHECK_EQ(weft_error_split(err, is_panic, NULL, &match, &rest), 0);
	CHECK(rest == NULL);
	CHECK_EQ(weft_error_count(match), 1);
	CHECK_EQ(weft_error_code_at(match, 0), WEFT_EPANIC);
	CHECK_EQ(weft_error_leaf_count(match), 2);
	CHECK_EQ(weft_error_code_at(weft_error_nested_at(match, 0), 0), -EIO);
	weft_error_free(match);
	CHECK_EQ(atomic_load(&o->s.cancelled), atomic_load(&o->s.started));
	/* The task's scope was exited for it; the object stays ours. */
	weft_scope_destroy(o->scope);
	return 0;
}

static void test_panic__open_groups_are_reaped_under_the_panic(void **state)
{
	/* Default config: in WEFT_DEBUG builds abort_on_missing_join is on,
	 * and a panic must not trip it. */
	struct open_group o = { 0 };
	weft_test_root(state, open_group_root, &o);
}

/* }======================================================= */

/* {======================================================= start */

int panic_test_before_started(void *arg);
int panic_test_before_started(void *arg)
{
	(void)arg;
	weft_panic("not ready");
}

static int start_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .handle = &h };
	void *v = NULL;
	CHECK_EQ(weft_group_start_opts(g, panic_test_before_started, NULL, &o,
			 &v),
		WEFT_EPANIC);
	int code = 0;
	const char *msg = NULL;
	CHECK_EQ(weft_task_failure(h, &code, &msg), 0);
	CHECK_EQ(code, WEFT_EPANIC);
	CHECK(strstr(msg, "not ready\n  #0 panic_test_before_started+0x") ==
		msg);
	weft_task_release(h);
	/* Rule 14: the starter had it, the group does not. */
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(panic, before_started_goes_to_the_starter, start_root, NULL)

/* }======================================================= */

/* {======================================================= root, assert */

int panic_test_root(void *arg);
int panic_test_root(void *arg)
{
	(void)arg;
	weft_panic("root %s", "gives up");
}

static void test_panic__a_root_panic_is_the_runs_result(void **state)
{
	weft_error_t *err = NULL;
	assert_int_equal(weft_test_run_err(WEFT_TEST_WORKERS(state),
				 panic_test_root, NULL, &err),
		WEFT_EPANIC);
	assert_int_equal(weft_error_code_at(err, 0), WEFT_EPANIC);
	assert_non_null(strstr(weft_error_message_at(err, 0),
		"root gives up\n  #0 panic_test_root+0x"));
	weft_error_free(err);
	weft_test_assert_no_leaks();
}

int panic_test_assert(void *arg);
int panic_test_assert(void *arg)
{
	int *x = arg;
	weft_assert(*x == 1); /* holds */
	weft_assert(*x == 2);
	return 0;
}

static int assert_root(void *arg)
{
	(void)arg;
	int x = 1;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, panic_test_assert, &x), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	check_panic_leaf(err, 0, "assertion failed: *x == 2 (",
		"panic_test_assert");
	CHECK(strstr(weft_error_message_at(err, 0), "test_panic.c:") != NULL);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(panic, assert_panics_on_a_false_condition, assert_root, NULL)

/* }======================================================= */

/* {======================================================= the hook */

struct hook_seen {
	atomic_int calls;
	uint64_t task_id;
	char message[64];
	char backtrace[256];
};

static void record_hook(const weft_panic_info_t *info, void *arg)
{
	struct hook_seen *h = arg;
	if (atomic_fetch_add(&h->calls, 1) == 0) {
		h->task_id = info->task_id;
		snprintf(h->message, sizeof h->message, "%s", info->message);
		snprintf(h->backtrace, sizeof h->backtrace, "%s",
			info->backtrace);
	}
}

static int hook_root(void *arg)
{
	struct hook_seen *h = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *t = NULL;
	weft_spawn_opts_t o = { .handle = &t };
	int n = 7;
	CHECK_EQ(weft_group_spawn_opts(g, panic_test_boom, &n, &o), 0);
	CHECK_EQ(weft_group_join(g, NULL), WEFT_ECHILD_FAILED);
	/* The join saw the child's end, which came after the hook. */
	CHECK_EQ(atomic_load(&h->calls), 1);
	CHECK_EQ(h->task_id, weft_task_id(t));
	CHECK(strcmp(h->message, "boom 7") == 0);
	CHECK(strstr(h->backtrace, "  #0 panic_test_boom+0x") == h->backtrace);
	weft_task_release(t);
	return 0;
}

static void test_panic__the_hook_sees_each_panic_once(void **state)
{
	struct hook_seen h = { 0 };
	weft_panic_hook_fn prev = record_hook;
	void *prev_arg = &h;
	weft_set_panic_hook(record_hook, &h, &prev, &prev_arg);
	assert_null((void *)(uintptr_t)prev);
	assert_null(prev_arg);
	weft_test_root(state, hook_root, &h);
	weft_set_panic_hook(NULL, NULL, &prev, &prev_arg);
	assert_ptr_equal((void *)(uintptr_t)prev,
		(void *)(uintptr_t)record_hook);
	assert_ptr_equal(prev_arg, &h);
	assert_int_equal(atomic_load(&h.calls), 1);
}

/* }======================================================= */

/* {======================================================= process-ending panics */

void panic_test_outside(void *arg);
void panic_test_outside(void *arg)
{
	(void)arg;
	weft_panic("outside %d", 7);
}

static void test_panic__outside_a_task_aborts_with_the_message(void **state)
{
	(void)state;
	char buf[4096];
	int status = weft_test_death(panic_test_outside, NULL, buf, sizeof buf);
	weft_test_assert_abort(status, buf, "weft: panic: outside 7\n",
		"  #0 panic_test_outside+0x", NULL);
}

static void panic_in_done_callback(weft_task_t *h, void *arg)
{
	(void)h, (void)arg;
	weft_panic("from a done callback");
}

static int ends_with_a_panicking_callback(void *arg)
{
	(void)arg;
	weft_task_on_done(weft_current_task(), panic_in_done_callback, NULL);
	return 0;
}

static void ending_child(void *arg)
{
	(void)arg;
	weft_runtime_t *rt;
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	if (weft_runtime_create(&rt, &cfg) == 0)
		weft_runtime_run(rt, ends_with_a_panicking_callback, NULL,
			NULL);
}

static void test_panic__while_the_task_ends_aborts(void **state)
{
	(void)state;
	char buf[4096];
	int status = weft_test_death(ending_child, NULL, buf, sizeof buf);
	weft_test_assert_abort(status, buf, "while it was ending",
		"from a done callback", NULL);
}

/* }======================================================= */

/* {======================================================= a lock it holds */

struct broken {
	weft_lock_t *lock;
	weft_event_t *held;
	atomic_int waiter_rc;
};

int panic_test_holder(void *arg);
int panic_test_holder(void *arg)
{
	struct broken *b = arg;
	CHECK_EQ(weft_lock_acquire(b->lock), 0);
	CHECK_EQ(weft_event_set(b->held), 0);
	while (weft_lock_waiting(b->lock) < 1)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	weft_panic("holding the lock");
}

static int lock_waiter(void *arg)
{
	struct broken *b = arg;
	CHECK_EQ(weft_event_wait(b->held), 0);
	atomic_store(&b->waiter_rc, weft_lock_acquire(b->lock));
	return 0;
}

/* The frames are abandoned, but the lock belongs to the task, and the
 * task ends: the lock breaks as at any end (weft/panic.h, weft/sync.h).
 * The waiter is in another group, which the panic does not cancel. */
static int panic_lock_root(void *arg)
{
	struct broken *b = arg;
	CHECK_EQ(weft_lock_create(&b->lock), 0);
	CHECK_EQ(weft_event_create(&b->held), 0);
	weft_group_t *waiters, *holders;
	CHECK_EQ(weft_group_open(&waiters), 0);
	CHECK_EQ(weft_group_spawn(waiters, lock_waiter, b), 0);
	CHECK_EQ(weft_group_open(&holders), 0);
	CHECK_EQ(weft_group_spawn(holders, panic_test_holder, b), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(holders, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_code_at(err, 0), WEFT_EPANIC);
	weft_error_free(err);
	CHECK_EQ(weft_group_join(waiters, NULL), 0);
	CHECK_EQ(atomic_load(&b->waiter_rc), -EOWNERDEAD);
	CHECK_EQ(weft_lock_try_acquire(b->lock), -EOWNERDEAD);
	CHECK_EQ(weft_lock_acquire(b->lock), -EOWNERDEAD);
	CHECK_EQ(weft_lock_locked(b->lock), 1);
	CHECK_EQ(weft_lock_held(b->lock), 0);
	CHECK_EQ(weft_lock_destroy(b->lock), 0);
	CHECK_EQ(weft_event_destroy(b->held), 0);
	return 0;
}

static void test_panic__a_lock_it_holds_breaks(void **state)
{
	struct broken b = { 0 };
	weft_test_root(state, panic_lock_root, &b);
	assert_int_equal(atomic_load(&b.waiter_rc), -EOWNERDEAD);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_panic__child_fails_its_group_with_a_backtrace),
		WEFT_TEST(test_panic__inline_child_gets_back_to_its_parent),
		WEFT_TEST(test_panic__open_groups_are_reaped_under_the_panic),
		WEFT_TEST(test_panic__before_started_goes_to_the_starter),
		WEFT_TEST(test_panic__a_root_panic_is_the_runs_result),
		WEFT_TEST(test_panic__assert_panics_on_a_false_condition),
		WEFT_TEST(test_panic__the_hook_sees_each_panic_once),
		WEFT_TEST(test_panic__a_lock_it_holds_breaks),
		cmocka_unit_test(
			test_panic__outside_a_task_aborts_with_the_message),
		cmocka_unit_test(test_panic__while_the_task_ends_aborts),
	};
	return WEFT_RUN_TESTS(tests);
}
