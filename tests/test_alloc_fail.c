/* Allocation fault injection (weft_debug_fail_alloc, include/weft/debug.h),
 * SQLite malloc*.test style: for n = 1, 2, 3, ... make the n-th weft heap
 * allocation from now fail, run a whole scenario (runtime create, a root
 * that opens a group, spawns failing and sleeping children, starts a
 * service with weft_group_start, sleeps under a fail_after deadline,
 * joins, and fails with the children's error group), turn injection off,
 * destroy, and check:
 *   - every call that saw the failure returned -ENOMEM (or another
 *     documented code) and the process neither crashed nor hung;
 *   - errors are never lost: if any child failed, join returned
 *     WEFT_ECHILD_FAILED (with an out-of-memory leaf standing in for
 *     failures that could not be recorded), never 0;
 *   - afterwards nothing is left: no heap byte, task, fiber, stack, group,
 *     scope, runtime or thread.
 * The loop ends at the first n whose run saw no injected failure (n is
 * then past the scenario's last allocation).
 *
 * Inside tasks nothing is CHECKed that may legitimately fail under
 * injection: tasks record what happened in `struct outcome`, and the main
 * thread judges it after the runtime is gone (cmocka asserts only work
 * on the test's main thread).
 *
 * The last test checks the other mode, injection by call site
 * (weft__alloc_fail_site, WEFT_DEBUG builds), and reach tracking, on
 * which tests/test_alloc_sweep.c builds its exact site coverage.
 *
 * Environment: WEFT_ALLOC_FAIL_VERBOSE=1 prints every iteration. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>

#include "base/alloc.h"
#include "support.h"

#define MAX_ITERATIONS 2000
#define NFAIL 2	 /* children that fail with -EIO */
#define NSLEEP 2 /* children that sleep 1 ms */
#define SENTINEL ((void *)(uintptr_t)0x5eed)

/* {======================================================= scenario */

/* What the tasks saw.  Written by tasks, read by the main thread after
 * weft_runtime_run returned (which orders the writes before the reads);
 * counters touched by several children are atomic. */
struct outcome {
	int root_ran;
	int root_rc;
	int open_rc;
	int start_rc;
	int service_ran;
	int started_rc;
	int spawn_ok;	  /* children spawned successfully */
	int fail_spawned; /* of which fail with -EIO */
	atomic_int fail_ran;
	atomic_int sleep_ran;
	atomic_int sleep_enomem; /* sleepers that returned -ENOMEM */
	int scope_rc;
	int scope_sleep_rc;
	int scope_exit_rc;
	int join_rc;
	int expected_failures;
	size_t entries, eio_leaves, enomem_leaves, other_leaves;
	atomic_int violations;
	char violation[160]; /* the first one */
	atomic_flag violation_taken;
};

static void violate(struct outcome *o, const char *what, long a, long b)
{
	if (!atomic_flag_test_and_set(&o->violation_taken))
		snprintf(o->violation, sizeof o->violation, "%s (%ld, %ld)",
			what, a, b);
	atomic_fetch_add(&o->violations, 1);
}

/* Sleeps ns; records a violation if the sleep claims success before its
 * deadline or returns an undocumented code.  Returns the sleep's code. */
static int checked_sleep(struct outcome *o, int64_t ns)
{
	int64_t deadline = weft_now() + ns;
	int rc = weft_sleep_until(deadline);
	int64_t now = weft_now();
	if (rc == 0 && now < deadline)
		violate(o,
			"weft_sleep_until returned 0 before its deadline "
			"(ns early, rc)",
			(long)(deadline - now), rc);
	if (rc != 0 && rc != -ECANCELED && rc != -ENOMEM)
		violate(o, "weft_sleep_until: unexpected code", rc, 0);
	return rc;
}

struct child_arg {
	struct outcome *o;
	int index;
};

static int failing_child(void *arg)
{
	struct child_arg *c = arg;
	atomic_fetch_add(&c->o->fail_ran, 1);
	/* Fail after the sleepers have armed their timers; fail also if
	 * the sleep is cancelled or cannot be set up. */
	(void)checked_sleep(c->o, 2 * WEFT_MSEC);
	return weft_fail(-EIO, "child %d failed", c->index);
}

static int sleeping_child(void *arg)
{
	struct outcome *o = arg;
	atomic_fetch_add(&o->sleep_ran, 1);
	int rc = checked_sleep(o, WEFT_MSEC);
	if (rc == -ENOMEM) {
		atomic_fetch_add(&o->sleep_enomem, 1);
		return rc; /* a failure the group must report */
	}
	return 0;
}

static int service(void *arg)
{
	struct outcome *o = arg;
	o->service_ran = 1;
	o->started_rc = weft_task_started(o);
	/* Stays in the group a little; its sleep may be cancelled. */
	(void)checked_sleep(o, WEFT_MSEC);
	return 0;
}

/* Counts the leaves of err by code. */
static void tally(struct outcome *o, const weft_error_t *err)
{
	o->entries = weft_error_count(err);
	for (size_t i = 0; i < o->entries; i++) {
		int code = weft_error_code_at(err, i);
		if (weft_error_nested_at(err, i) != NULL)
			o->other_leaves++;
		else if (code == -EIO)
			o->eio_leaves++;
		else if (code == -ENOMEM)
			o->enomem_leaves++;
		else
			o->other_leaves++;
	}
}

static int scenario_root(void *arg)
{
	struct outcome *o = arg;
	o->root_ran = 1;
	weft_group_t *g;
	o->open_rc = weft_group_open(&g);
	if (o->open_rc != 0) {
		if (o->open_rc != -ENOMEM)
			violate(o, "weft_group_open: unexpected code",
				o->open_rc, 0);
		return o->root_rc = o->open_rc;
	}

	/* A service started before the others, so nothing cancels it. */
	void *value = NULL;
	o->start_rc = weft_group_start(g, service, o, &value);
	if (o->start_rc == 0 && value != o)
		violate(o, "start succeeded without the started() value", 0, 0);
	if (o->start_rc != 0 && o->start_rc != -ENOMEM)
		violate(o, "weft_group_start: unexpected code", o->start_rc, 0);

	struct child_arg args[NFAIL];
	for (int i = 0; i < NFAIL + NSLEEP; i++) {
		int rc;
		if (i % 2 == 0) {
			args[i / 2] = (struct child_arg){ o, i / 2 };
			rc = weft_group_spawn(g, failing_child, &args[i / 2]);
			if (rc == 0)
				o->fail_spawned++;
		} else {
			rc = weft_group_spawn(g, sleeping_child, o);
		}
		if (rc == 0)
			o->spawn_ok++;
		else if (rc != -ENOMEM)
			violate(o, "weft_group_spawn: unexpected code", rc, 0);
	}

	/* A cancel scope with a deadline around a sleep that outlasts it. */
	weft_scope_t *s = SENTINEL;
	o->scope_rc = weft_fail_after(&s, WEFT_MSEC);
	if (o->scope_rc == 0) {
		o->scope_sleep_rc = weft_sleep(10 * WEFT_SEC);
		if (o->scope_sleep_rc != -ECANCELED &&
			o->scope_sleep_rc != -ENOMEM)
			violate(o, "sleep inside fail_after: unexpected code",
				o->scope_sleep_rc, 0);
		o->scope_exit_rc = weft_scope_exit(s);
		if (o->scope_exit_rc != 0 && o->scope_exit_rc != -ETIMEDOUT)
			violate(o, "weft_scope_exit: unexpected code",
				o->scope_exit_rc, 0);
		weft_scope_destroy(s);
	} else {
		if (o->scope_rc != -ENOMEM)
			violate(o, "weft_fail_after: unexpected code",
				o->scope_rc, 0);
		if (s != SENTINEL)
			violate(o, "weft_fail_after failed but wrote *out", 0,
				0);
	}

	weft_error_t *err = NULL;
	o->join_rc = weft_group_join(g, &err);
	/* The service has ended: its fields are safe to read. */
	if (o->start_rc == 0 && o->started_rc != 0)
		violate(o, "weft_task_started failed in a started task",
			o->started_rc, 0);

	/* Every spawned child ran or, without a stack, ended with -ENOMEM. */
	int ran = atomic_load(&o->fail_ran) + atomic_load(&o->sleep_ran);
	int unstarted = o->spawn_ok - ran;
	int failures = atomic_load(&o->fail_ran) +
		atomic_load(&o->sleep_enomem) + unstarted;
	o->expected_failures = failures;
	if (unstarted < 0)
		violate(o, "more children ran than were spawned", ran,
			o->spawn_ok);
	if (failures > 0 && o->join_rc != WEFT_ECHILD_FAILED)
		violate(o, "a child failed but join did not report it",
			o->join_rc, failures);
	if (failures == 0 && o->join_rc != 0)
		violate(o, "no child failed but join failed", o->join_rc, 0);
	if (o->join_rc == WEFT_ECHILD_FAILED) {
		if (err == NULL) {
			violate(o, "join failed without an error group", 0, 0);
		} else {
			tally(o, err);
			if (o->entries < 1 || o->other_leaves != 0 ||
				o->entries > (size_t)failures + 1)
				violate(o, "error group shape",
					(long)o->entries,
					(long)o->other_leaves);
			if (o->eio_leaves > (size_t)atomic_load(&o->fail_ran))
				violate(o, "more -EIO leaves than failures",
					(long)o->eio_leaves,
					atomic_load(&o->fail_ran));
			/* Without an out-of-memory leaf, every failure must
			 * be there, each exactly once. */
			if (o->enomem_leaves == 0 &&
				o->eio_leaves != (size_t)failures)
				violate(o,
					"failures lost without an ENOMEM leaf",
					(long)o->eio_leaves, failures);
		}
		return o->root_rc = weft_fail_group(err);
	}
	weft_error_free(err);
	return o->root_rc = 0;
}

/* }======================================================= */

/* {======================================================= the loop */

/* Judges one iteration on the main thread, after everything is freed.
 * Returns 0 if all is well, else prints why and returns -1. */
static int judge(long n, int rc, const weft_error_t *err,
	const struct outcome *o)
{
	const char *why = NULL;
	if (atomic_load(&o->violations) != 0)
		why = o->violation;
	else if (!o->root_ran && rc != -ENOMEM)
		why = "the root never ran but run did not return -ENOMEM";
	else if (o->root_ran && rc != o->root_rc)
		why = "run did not return the root's result";
	else if (rc == 0 && err != NULL)
		why = "run succeeded but handed out an error group";
	else if (o->root_ran && rc < 0 && rc != -ECANCELED && err == NULL)
		why = "the root failed but run gave no error group";
	else if (rc == WEFT_ECHILD_FAILED &&
		weft_error_code_at(err, 0) == WEFT_ECHILD_FAILED &&
		weft_error_nested_at(err, 0) == NULL)
		why = "the root's group failure lost its nested error group";
	else if (rc == WEFT_ECHILD_FAILED &&
		weft_error_code_at(err, 0) != WEFT_ECHILD_FAILED &&
		weft_error_code_at(err, 0) != -ENOMEM)
		why = "the root's error has an unexpected code";
	if (why == NULL)
		return 0;
	print_error("n=%ld: %s (run rc %d %s, open %d, start %d, spawned %d,"
		    " fail_ran %d, sleep_ran %d, join %d, expected failures %d,"
		    " entries %zu: %zu EIO %zu ENOMEM)\n",
		n, why, rc, weft_err_name(rc), o->open_rc, o->start_rc,
		o->spawn_ok, atomic_load(&o->fail_ran),
		atomic_load(&o->sleep_ran), o->join_rc, o->expected_failures,
		o->entries, o->eio_leaves, o->enomem_leaves);
	return -1;
}

/* The clean run (no injection) must show the full scenario. */
static void assert_clean_run(int rc, const weft_error_t *err,
	const struct outcome *o)
{
	assert_int_equal(o->open_rc, 0);
	assert_int_equal(o->start_rc, 0);
	assert_int_equal(o->spawn_ok, NFAIL + NSLEEP);
	assert_int_equal(atomic_load(&o->fail_ran), NFAIL);
	assert_int_equal(o->scope_rc, 0);
	assert_int_equal(o->join_rc, WEFT_ECHILD_FAILED);
	assert_int_equal(o->eio_leaves, NFAIL);
	assert_int_equal(o->enomem_leaves, 0);
	assert_int_equal(rc, WEFT_ECHILD_FAILED);
	assert_non_null(err);
	const weft_error_t *nested = weft_error_nested_at(err, 0);
	assert_non_null(nested);
	assert_int_equal(weft_error_leaf_count(nested), NFAIL);
}

static void run_fault_loop(unsigned workers)
{
	const char *v = getenv("WEFT_ALLOC_FAIL_VERBOSE");
	int verbose = v != NULL && *v != '\0' && *v != '0';
	int base_threads = weft_test_baseline_threads();
	weft_test_assert_no_leaks();
	long n;
	int bad = 0;
	long create_failures = 0;
	for (n = 1; n <= MAX_ITERATIONS; n++) {
		long injected_before = weft_debug_injected_failures();
		struct outcome *o = calloc(1, sizeof *o);
		assert_non_null(o);
		atomic_flag_clear(&o->violation_taken);

		weft_debug_fail_alloc(n);
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), 0);
		cfg.workers = workers;
		weft_runtime_t *rt = SENTINEL;
		int crc = weft_runtime_create(&rt, &cfg);
		int rc = 0;
		weft_error_t *err = NULL;
		if (crc == 0) {
			rc = weft_runtime_run(rt, scenario_root, o, &err);
			weft_debug_fail_alloc(0);
			assert_int_equal(weft_runtime_destroy(rt), 0);
		} else {
			weft_debug_fail_alloc(0);
			create_failures++;
			if (crc != -ENOMEM || rt != SENTINEL ||
				cfg.message[0] == '\0') {
				print_error("n=%ld: create returned %d (%s), "
					    "message '%s'\n",
					n, crc, weft_err_name(crc),
					cfg.message);
				bad++;
			}
		}
		long injected = weft_debug_injected_failures() -
			injected_before;
		if (crc == 0 && judge(n, rc, err, o) != 0)
			bad++;
		if (verbose)
			print_message(
				"n=%ld injected=%ld create=%d run=%d "
				"open=%d start=%d spawned=%d fail_ran=%d "
				"sleep_ran=%d sleep_enomem=%d scope=%d/%d/%d "
				"join=%d entries=%zu (%zu EIO, %zu ENOMEM)\n",
				n, injected, crc, rc, o->open_rc, o->start_rc,
				o->spawn_ok, atomic_load(&o->fail_ran),
				atomic_load(&o->sleep_ran),
				atomic_load(&o->sleep_enomem), o->scope_rc,
				o->scope_sleep_rc, o->scope_exit_rc, o->join_rc,
				o->entries, o->eio_leaves, o->enomem_leaves);
		if (injected == 0) {
			assert_int_equal(crc, 0);
			assert_clean_run(rc, err, o);
		}
		weft_error_free(err);
		free(o);
		/* Nothing is left behind, whatever failed. */
		weft_test_assert_no_leaks();
		assert_int_equal(weft_test_settle_threads(base_threads),
			base_threads);
		if (bad > 10)
			break; /* enough to go on */
		if (injected == 0)
			break;
	}
	print_message("%u worker(s): %ld iterations (the last one clean), "
		      "%ld failed runtime creations\n",
		workers, n, create_failures);
	assert_int_equal(bad, 0);
	assert_true(n <= MAX_ITERATIONS);
	assert_true(n > 1);
}

static void test_alloc_fail__every_failed_allocation_is_reported_cleanly(
	void **state)
{
	run_fault_loop(WEFT_TEST_WORKERS(state));
}

/* }======================================================= */

/* {======================================================= single calls */

static int keep_eio(int code, const char *message, void *arg)
{
	(void)message;
	(void)arg;
	return code == -EIO;
}

static int two_failures_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	if (weft_group_open(&g) != 0)
		return -ENOMEM;
	struct outcome o;
	memset(&o, 0, sizeof o);
	struct child_arg a = { &o, 1 };
	CHECK_EQ(weft_group_spawn(g, failing_child, &a), 0);
	CHECK_EQ(weft_group_spawn(g, failing_child, &a), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	return weft_fail_group(err);
}

static void test_alloc_fail__error_split_leaves_the_error_untouched_on_enomem(
	void **state)
{
	(void)state;
	weft_error_t *err = NULL;
	assert_int_equal(weft_test_run_err(1, two_failures_root, NULL, &err),
		WEFT_ECHILD_FAILED);
	assert_non_null(err);
	size_t leaves = weft_error_leaf_count(err);
	assert_int_equal(leaves, 2);
	long n;
	for (n = 1; n <= 200; n++) {
		weft_error_t *match = SENTINEL, *rest = SENTINEL;
		long before = weft_debug_injected_failures();
		weft_debug_fail_alloc(n);
		int rc = weft_error_split(err, keep_eio, NULL, &match, &rest);
		weft_debug_fail_alloc(0);
		long injected = weft_debug_injected_failures() - before;
		if (rc == -ENOMEM) {
			assert_true(injected > 0);
			/* err is still whole and still ours. */
			assert_int_equal(weft_error_leaf_count(err), leaves);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(weft_error_leaf_count(match), leaves);
		assert_null(rest);
		weft_error_free(match);
		err = NULL;
		if (injected == 0)
			break;
		/* Split succeeded although an allocation failed: it must
		 * not have needed that one.  Start over with a fresh error. */
		assert_int_equal(weft_test_run_err(1, two_failures_root, NULL,
					 &err),
			WEFT_ECHILD_FAILED);
	}
	weft_error_free(err);
	print_message("weft_error_split: %ld iterations\n", n);
	assert_true(n <= 200);
	weft_test_assert_no_leaks();
}

static void test_alloc_fail__scope_create_fails_with_enomem_and_writes_nothing(
	void **state)
{
	(void)state;
	weft_scope_t *s = SENTINEL;
	weft_debug_fail_alloc(1);
	int rc = weft_scope_create(&s, WEFT_FOREVER, 0);
	weft_debug_fail_alloc(0);
	assert_int_equal(rc, -ENOMEM);
	assert_ptr_equal(s, SENTINEL);
	weft_test_assert_no_leaks();
}

struct timer_oom {
	int64_t deadline;
	int64_t woke;
	int rc;
	long injected;
};

static int root_sleeps_with_timer_oom(void *arg)
{
	struct timer_oom *t = arg;
	/* At 1 worker with no other task, allocation 1 is the sleep's
	 * private scope (this thread).  Arming the timer on the I/O thread
	 * must not need a second one (the heap is intrusive); whatever
	 * allocation 2 turns out to be, the sleep may not end early. */
	long before = weft_debug_injected_failures();
	weft_debug_fail_alloc(2);
	t->deadline = weft_now() + 20 * WEFT_MSEC;
	t->rc = weft_sleep_until(t->deadline);
	t->woke = weft_now();
	weft_debug_fail_alloc(0);
	t->injected = weft_debug_injected_failures() - before;
	return 0;
}

static void test_alloc_fail__sleep_whose_timer_cannot_be_armed_never_ends_early(
	void **state)
{
	(void)state;
	struct timer_oom t = { 0 };
	assert_int_equal(weft_test_run(1, root_sleeps_with_timer_oom, &t), 0);
	assert_true(t.injected <= 1);
	/* Either the failure is reported, or the sleep really lasted. */
	if (t.rc == 0 && t.woke < t.deadline)
		print_error("weft_sleep_until returned 0 %" PRId64 " ns before "
			    "its deadline\n",
			t.deadline - t.woke);
	assert_true(t.rc == -ENOMEM || (t.rc == 0 && t.woke >= t.deadline));
}

struct stack_oom {
	int child_ran;
	int yield_rc;
	int join_rc;
	long injected;
};

static int child_notes_it_ran(void *arg)
{
	struct stack_oom *t = arg;
	t->child_ran++;
	return 0;
}

static int root_yields_to_a_child_without_stack(void *arg)
{
	struct stack_oom *t = arg;
	weft_group_t *g;
	if (weft_group_open(&g) < 0)
		return -1;
	/* A copied name: the record path, whose record exists before the
	 * yield (a frame's would be the allocation that fails: the next
	 * test). */
	if (weft_group_spawn_named(g, "child", child_notes_it_ran, t) < 0) {
		weft_group_join(g, NULL);
		return -1;
	}
	/* At 1 worker the yield switches straight to the child, which needs
	 * its first stack: the only one in the pool is ours, so a new one is
	 * made, and its descriptor is the next allocation.  The switch must
	 * then leave the child to the loop, which tries again (the injected
	 * failure is a one-off) and runs it: not lost, not run twice. */
	long before = weft_debug_injected_failures();
	weft_debug_fail_alloc(1);
	t->yield_rc = weft_yield();
	weft_debug_fail_alloc(0);
	t->injected = weft_debug_injected_failures() - before;
	weft_error_t *err = NULL;
	t->join_rc = weft_group_join(g, &err);
	weft_error_free(err);
	return 0;
}

static void
test_alloc_fail__a_child_whose_first_stack_fails_at_a_switch_runs_later(
	void **state)
{
	(void)state;
	struct stack_oom t = { 0 };
	assert_int_equal(weft_test_run(1, root_yields_to_a_child_without_stack,
				 &t),
		0);
	assert_int_equal(t.injected, 1);
	assert_int_equal(t.yield_rc, 0);
	assert_int_equal(t.join_rc, 0);
	assert_int_equal(t.child_ran, 1);
	weft_test_assert_no_leaks();
}

/* A frame (the owner's spawn, made a task only when something other than
 * the owner's inline run takes it: runtime/core/frame.c) whose record
 * cannot be made: the child fails without running, its group hears of
 * it as of any failed child (a leaf naming the function), and nothing
 * runs twice or is lost.  At 1 worker the yield switches straight to the
 * child, whose record is then made: the first allocation after
 * weft_debug_fail_alloc(1) with no record cached (the test runs on a
 * fresh runtime whose only record is the root's). */
struct frame_oom {
	int child_ran;
	int sibling_ran;
	int join_rc;
	int code;
	char name[32];
	long injected;
};

static int sibling_notes_it_ran(void *arg)
{
	struct frame_oom *t = arg;
	t->sibling_ran++;
	return 0;
}

static int frame_child_notes_it_ran(void *arg)
{
	struct frame_oom *t = arg;
	t->child_ran++;
	return 0;
}

static int root_yields_to_a_frame_without_record(void *arg)
{
	struct frame_oom *t = arg;
	weft_group_t *g;
	if (weft_group_open(&g) < 0)
		return -1;
	if (weft_group_spawn(g, frame_child_notes_it_ran, t) < 0) {
		weft_group_join(g, NULL);
		return -1;
	}
	long before = weft_debug_injected_failures();
	weft_debug_fail_alloc(1);
	int yrc = weft_yield();
	weft_debug_fail_alloc(0);
	t->injected = weft_debug_injected_failures() - before;
	/* The group was cancelled by the failure: a later spawn still runs
	 * (a cancelled group accepts spawns, rule 30) and ends. */
	if (yrc == 0 && weft_group_spawn(g, sibling_notes_it_ran, t) < 0)
		t->sibling_ran = -1;
	weft_error_t *err = NULL;
	t->join_rc = weft_group_join(g, &err);
	if (weft_error_count(err) == 1) {
		t->code = weft_error_code_at(err, 0);
		snprintf(t->name, sizeof t->name, "%s",
			weft_error_task_name_at(err, 0));
	}
	weft_error_free(err);
	return 0;
}

static void test_alloc_fail__a_frame_without_a_record_fails_its_child_once(
	void **state)
{
	(void)state;
	struct frame_oom t = { 0 };
	assert_int_equal(weft_test_run(1, root_yields_to_a_frame_without_record,
				 &t),
		0);
	if (t.injected == 0)
		skip(); /* a cached record served the switch */
	assert_int_equal(t.injected, 1);
	assert_int_equal(t.child_ran, 0);
	assert_int_equal(t.sibling_ran, 1);
	assert_int_equal(t.join_rc, WEFT_ECHILD_FAILED);
	assert_int_equal(t.code, -ENOMEM);
	assert_string_equal(t.name, "frame_child_notes_it_ran");
	weft_test_assert_no_leaks();
}

/* {======================================================= by site */

/* Injection by site (weft__alloc_fail_site) and reach tracking, which
 * the allocation sweep builds on (tests/test_alloc_sweep.c): the site of
 * weft_event_create is found by tracking one call, then its second call
 * from arming fails, the calls at other sites in between (locks) do not
 * count, and only one call fails. */
static void test_alloc_fail__injection_by_site_fails_the_kth_call_there_only(
	void **state)
{
	(void)state;
	weft_event_t *ev[4] = { 0 };
	weft__alloc_track_reached(1);
	assert_int_equal(weft_event_create(&ev[0]), 0);
	weft__alloc_track_reached(0);
	struct weft__alloc_site reached[8];
	size_t n = weft__alloc_reached_sites(reached, 8);
	assert_int_equal(n, 1);
	const char *f = strstr(reached[0].file, "runtime/sync/event.c");
	assert_non_null(f);
	assert_int_equal(reached[0].calls, 1);
	long before = weft_debug_injected_failures();
	assert_int_equal(weft__alloc_fail_site(f + strlen("runtime/"),
				 reached[0].line, 2),
		0);
	weft_lock_t *lock[3] = { 0 };
	assert_int_equal(weft_lock_create(&lock[0]), 0);
	assert_int_equal(weft_event_create(&ev[1]), 0);
	assert_int_equal(weft_lock_create(&lock[1]), 0);
	weft_event_t *failed = SENTINEL;
	assert_int_equal(weft_event_create(&failed), -ENOMEM);
	assert_ptr_equal(failed, SENTINEL);
	assert_int_equal(weft_lock_create(&lock[2]), 0);
	assert_int_equal(weft_event_create(&ev[2]), 0);
	assert_int_equal(weft__alloc_fail_site(NULL, 0, 0), 0);
	assert_int_equal(weft_debug_injected_failures() - before, 1);
	/* Charged to the site. */
	struct weft__alloc_site sites[256];
	size_t nf = weft__alloc_failed_sites(sites, 256);
	int charged = 0;
	for (size_t i = 0; i < nf && i < 256; i++)
		charged |= sites[i].file == reached[0].file &&
			sites[i].line == reached[0].line;
	assert_true(charged);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(weft_event_destroy(ev[i]), 0);
		assert_int_equal(weft_lock_destroy(lock[i]), 0);
	}
	weft_test_assert_no_leaks();
}

/* Arms injection by site at the one site the allocations since
 * weft__alloc_track_reached(1) reached, so that its next call fails;
 * -EPROTO if they reached another number of sites. */
static int fail_next_at_the_site_reached(void)
{
	weft__alloc_track_reached(0);
	struct weft__alloc_site site[4];
	if (weft__alloc_reached_sites(site, 4) != 1)
		return -EPROTO;
	const char *f = strstr(site[0].file, "runtime/");
	if (f == NULL)
		return -EPROTO;
	return weft__alloc_fail_site(f + strlen("runtime/"), site[0].line, 1);
}

/* A task that failed with a message, then calls weft_fail again with
 * another code when the new message cannot be allocated. */
static int fails_twice(void *arg)
{
	(void)arg;
	weft__alloc_track_reached(1);
	(void)weft_fail(-EIO, "the first failure's message");
	int rc = fail_next_at_the_site_reached();
	if (rc < 0)
		return rc;
	rc = weft_fail(-EPIPE, "the second failure's message");
	(void)weft__alloc_fail_site(NULL, 0, 0);
	return rc;
}

static int root_of_fails_twice(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, fails_twice, NULL), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	return weft_fail_group(err);
}

/* Out of memory for its message, weft_fail still returns its code, and
 * the leaf has that code with an empty message: never the message of an
 * earlier call, which described another failure. */
static void
test_alloc_fail__fail_without_memory_for_its_message_drops_the_old_one(
	void **state)
{
	(void)state;
	weft_error_t *err = NULL;
	long before = weft_debug_injected_failures();
	assert_int_equal(weft_test_run_err(1, root_of_fails_twice, NULL, &err),
		WEFT_ECHILD_FAILED);
	assert_int_equal(weft_debug_injected_failures() - before, 1);
	/* The root's entry, its group nested under it. */
	assert_int_equal(weft_error_count(err), 1);
	assert_int_equal(weft_error_code_at(err, 0), WEFT_ECHILD_FAILED);
	const weft_error_t *child = weft_error_nested_at(err, 0);
	assert_int_equal(weft_error_count(child), 1);
	assert_int_equal(weft_error_code_at(child, 0), -EPIPE);
	assert_string_equal(weft_error_message_at(child, 0), "");
	weft_error_free(err);
	weft_test_assert_no_leaks();
}

/* Cancels a scope with a reason whose copy fails. */
static int cancels_without_memory(void *arg)
{
	weft_cancel_reason_t *r = arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_create(&s, WEFT_FOREVER, 0), 0);
	weft__alloc_track_reached(1);
	CHECK_EQ(weft_scope_cancel(s, "a reason"), 0);
	CHECK_EQ(fail_next_at_the_site_reached(), 0);
	weft_scope_t *s2;
	CHECK_EQ(weft_scope_create(&s2, WEFT_FOREVER, 0), 0);
	long before = weft_debug_injected_failures();
	CHECK_EQ(weft_scope_cancel(s2, "another reason"), 0);
	(void)weft__alloc_fail_site(NULL, 0, 0);
	CHECK_EQ(weft_debug_injected_failures() - before, 1);
	CHECK_EQ(weft_scope_cancel_called(s2), 1);
	CHECK_EQ(weft_scope_reason(s2, r), 0);
	weft_scope_destroy(s2);
	weft_scope_destroy(s);
	return 0;
}

/* Out of memory for the copy of its reason, a cancellation still
 * happens, with the text weft/cancel.h documents for that case. */
static void test_alloc_fail__cancel_without_memory_for_its_reason_says_so(
	void **state)
{
	(void)state;
	weft_cancel_reason_t r;
	memset(&r, 0, sizeof r);
	assert_int_equal(weft_test_run(1, cancels_without_memory, &r), 0);
	assert_int_equal(r.origin, WEFT_CANCEL_EXPLICIT);
	assert_string_equal(r.text,
		"cancelled (reason text lost: out of memory)");
}

/* {======================================================= dump signal */

/* Whether the file at fd holds `text`. */
static int file_has(int fd, const char *text)
{
	char buf[16384];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

/* Sends the dump signal with the next allocation failing: the dump's
 * first, on the I/O thread (nothing else allocates meanwhile: one worker,
 * the root only sleeps). */
static int sigdump_root(void *arg)
{
	int fd = *(int *)arg;
	long before = weft_debug_injected_failures();
	weft_debug_fail_alloc(1);
	CHECK_EQ(kill(getpid(), SIGUSR2), 0);
	/* Bounded by ctest's timeout: a dump that never ends hangs. */
	while (!file_has(fd, "weft: dump failed") &&
		!file_has(fd, "weft: end of dump"))
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	weft_debug_fail_alloc(0);
	CHECK_EQ(weft_debug_injected_failures() - before, 1);
	return 0;
}

/* Out of memory, the dump on weft_config_t.dump_signal writes its header
 * line and "weft: dump failed: <reason>" instead of the tree, as the
 * config's comment says, and the runtime carries on. */
static void test_alloc_fail__dump_signal_without_memory_says_the_dump_failed(
	void **state)
{
	(void)state;
	/* Ignored, not default: a signal the watcher missed must not end
	 * the binary (the watcher restores this disposition). */
	signal(SIGUSR2, SIG_IGN);
	char path[] = "/tmp/weft-alloc-fail-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = 1;
	cfg.dump_signal = SIGUSR2;
	int rc = weft_test_run_cfg(&cfg, sigdump_root, &fd);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(rc, 0);
	char want[128];
	snprintf(want, sizeof want, "weft: dump failed: %s\n",
		weft_strerror(-ENOMEM));
	assert_true(file_has(fd, "weft: runtime dump (SIGUSR2"));
	assert_true(file_has(fd, want));
	assert_false(file_has(fd, "weft: end of dump"));
	close(fd);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_alloc_fail__every_failed_allocation_is_reported_cleanly),
		cmocka_unit_test(
			test_alloc_fail__error_split_leaves_the_error_untouched_on_enomem),
		cmocka_unit_test(
			test_alloc_fail__scope_create_fails_with_enomem_and_writes_nothing),
		cmocka_unit_test(
			test_alloc_fail__sleep_whose_timer_cannot_be_armed_never_ends_early),
		cmocka_unit_test(
			test_alloc_fail__a_child_whose_first_stack_fails_at_a_switch_runs_later),
		cmocka_unit_test(
			test_alloc_fail__a_frame_without_a_record_fails_its_child_once),
		cmocka_unit_test(
			test_alloc_fail__injection_by_site_fails_the_kth_call_there_only),
		cmocka_unit_test(
			test_alloc_fail__fail_without_memory_for_its_message_drops_the_old_one),
		cmocka_unit_test(
			test_alloc_fail__cancel_without_memory_for_its_reason_says_so),
		cmocka_unit_test(
			test_alloc_fail__dump_signal_without_memory_says_the_dump_failed),
	};
	return WEFT_RUN_TESTS(tests);
}
