/* Error groups (include/weft/error.h): docs/semantics.md rules 9-12 (any
 * failure gives a group; cancellation is not a failure but a timeout is;
 * failures during cleanup are kept and marked collateral; a fatal-class
 * failure is primary) and the error API. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

static int fail_code(void *arg)
{
	int code = (int)(intptr_t)arg;
	return weft_fail(code, "failed with %d", code);
}

static int run_group_named(const char *name, weft_fn fn, void *arg, int n,
	weft_error_t **err)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < n; i++)
		CHECK_EQ(weft_group_spawn_named(g, name, fn, arg), 0);
	return weft_group_join(g, err);
}
#define run_group_with(fn, arg, n, err) run_group_named(#fn, fn, arg, n, err)

/* {======================================================= always a group */

static int single_leaf_root(void *arg)
{
	(void)arg;
	weft_error_t *err = NULL;
	CHECK_EQ(run_group_with(fail_code, (void *)(intptr_t)-EIO, 1, &err),
		WEFT_ECHILD_FAILED);
	CHECK(err != NULL);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_leaf_count(err), 1);
	const char *msg = NULL;
	CHECK_EQ(weft_error_primary(err, &msg), -EIO);
	CHECK(msg && strstr(msg, "failed with") != NULL);
	CHECK(weft_error_nested_at(err, 0) == NULL);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, one_failure_still_gives_a_group, single_leaf_root, NULL)

/* A positive return is a failure with that code (weft/runtime.h, weft_fn):
 * from a child, and from a root. */
static int return_seven(void *arg)
{
	(void)arg;
	return 7;
}

static int positive_root(void *arg)
{
	(void)arg;
	weft_error_t *err = NULL;
	CHECK_EQ(run_group_with(return_seven, NULL, 2, &err),
		WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 2);
	CHECK_EQ(weft_error_code_at(err, 0), 7);
	CHECK_EQ(weft_error_code_at(err, 1), 7);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, a_positive_return_is_a_failure, positive_root, NULL)

/* weft_fail_group_pending says whether the task holds a tree given to
 * weft_fail_group (weft.hpp's ~Group keeps failures this way). */
static int pending_task(void *arg)
{
	(void)arg;
	weft_error_t *err = NULL;
	CHECK_EQ(run_group_with(fail_code, (void *)(intptr_t)-EIO, 1, &err),
		WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_fail_group_pending(), 0);
	CHECK_EQ(weft_fail_group(err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_fail_group_pending(), 1);
	return WEFT_ECHILD_FAILED;
}

static int pending_root(void *arg)
{
	(void)arg;
	weft_error_t *err = NULL;
	CHECK_EQ(run_group_with(pending_task, NULL, 1, &err),
		WEFT_ECHILD_FAILED);
	/* The kept tree nests under the task's leaf. */
	const weft_error_t *kids = weft_error_nested_at(err, 0);
	CHECK(kids != NULL);
	CHECK_EQ(weft_error_code_at(kids, 0), -EIO);
	weft_error_free(err);
	CHECK_EQ(weft_fail_group_pending(), 0);
	return 0;
}

static void test_errors__a_kept_tree_is_pending_until_the_task_ends(
	void **state)
{
	assert_int_equal(weft_fail_group_pending(), 0); /* no task */
	weft_test_root(state, pending_root, NULL);
}

static void test_errors__a_positive_root_return_is_a_failure(void **state)
{
	weft_error_t *err = NULL;
	assert_int_equal(weft_test_run_err(WEFT_TEST_WORKERS(state),
				 return_seven, NULL, &err),
		7);
	assert_non_null(err);
	assert_int_equal(weft_error_count(err), 1);
	assert_int_equal(weft_error_code_at(err, 0), 7);
	weft_error_free(err);
}

/* A child whose own group fails passes the error group up. */
static int middle(void *arg)
{
	(void)arg;
	weft_error_t *err = NULL;
	int rc = run_group_with(fail_code, (void *)(intptr_t)-EPIPE, 3, &err);
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	return rc;
}

static int nested_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, middle, NULL), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_code_at(err, 0), WEFT_ECHILD_FAILED);
	CHECK(strcmp(weft_error_task_name_at(err, 0), "middle") == 0);
	const weft_error_t *inner = weft_error_nested_at(err, 0);
	CHECK(inner != NULL);
	CHECK_EQ(weft_error_count(inner), 3);
	CHECK_EQ(weft_error_leaf_count(err), 3);
	CHECK_EQ(weft_error_primary(err, NULL), -EPIPE);
	char buf[1024];
	int len = weft_error_format(err, buf, sizeof buf);
	CHECK(len > 0 && (size_t)len < sizeof buf);
	CHECK(strstr(buf, "middle#") != NULL);
	CHECK(strstr(buf, "  fail_code#") != NULL);
	CHECK(strstr(buf, "EPIPE") != NULL);
	/* A nested entry's path runs through the task whose group failed. */
	char want[128];
	snprintf(want, sizeof want, "main#%llu/middle#%llu/fail_code#%llu",
		(unsigned long long)weft_current_task_id(),
		(unsigned long long)weft_error_task_id_at(err, 0),
		(unsigned long long)weft_error_task_id_at(inner, 0));
	CHECK(strcmp(weft_error_path_at(inner, 0), want) == 0);
	/* Truncation: still NUL-terminated, full length reported. */
	char small[8];
	CHECK_EQ(weft_error_format(err, small, sizeof small), len);
	CHECK(strlen(small) == sizeof small - 1);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, nested_group_failures_nest, nested_root, NULL)

static int is_eio(int code, const char *message, void *arg)
{
	(void)message;
	(void)arg;
	return code == -EIO;
}

static int mixed_failure(void *arg)
{
	long i = (long)(intptr_t)arg;
	return weft_fail(i % 2 ? -EIO : -EPIPE, "leaf %ld", i);
}

static int split_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (long i = 0; i < 6; i++)
		CHECK_EQ(weft_group_spawn(g, mixed_failure,
				 (void *)(intptr_t)i),
			0);
	CHECK_EQ(weft_group_spawn(g, middle, NULL), 0);
	weft_error_t *err = NULL, *m = NULL, *r = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_leaf_count(err), 9);
	CHECK_EQ(weft_error_split(NULL, is_eio, NULL, &m, &r), -EINVAL);
	CHECK_EQ(weft_error_split(err, is_eio, NULL, &m, &r), 0);
	CHECK_EQ(weft_error_leaf_count(m), 3);
	CHECK_EQ(weft_error_leaf_count(r), 6); /* 3 EPIPE + 3 nested EPIPE */
	for (size_t i = 0; i < weft_error_count(m); i++)
		CHECK_EQ(weft_error_code_at(m, i), -EIO);
	weft_error_free(m);
	weft_error_free(r);
	return 0;
}

WEFT_TEST_ROOT(errors, split_partitions_leaves_and_keeps_nesting, split_root,
	NULL)

static int split_oom_root(void *arg)
{
	(void)arg;
	weft_error_t *err = NULL;
	CHECK_EQ(run_group_with(mixed_failure, (void *)(intptr_t)1, 4, &err),
		WEFT_ECHILD_FAILED);
	weft_error_t *m = NULL, *r = NULL;
	for (long n = 1; n < 40; n++) {
		weft_debug_fail_alloc(n);
		int rc = weft_error_split(err, is_eio, NULL, &m, &r);
		weft_debug_fail_alloc(0);
		if (rc == 0) {
			CHECK_EQ(weft_error_leaf_count(m), 4);
			weft_error_free(m);
			weft_error_free(r);
			return 0;
		}
		CHECK_EQ(rc, -ENOMEM);
		CHECK_EQ(weft_error_leaf_count(err), 4); /* untouched */
	}
	CHECK(0);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, split_that_runs_out_of_memory_leaves_err_intact,
	split_oom_root, NULL)

/* }======================================================= */

/* {======================================================= leaves kept and dropped */

static int cancelled_quietly(void *arg)
{
	(void)arg;
	return weft_sleep(60 * WEFT_SEC); /* -ECANCELED */
}

static int fails_in_cleanup(void *arg)
{
	(void)arg;
	int rc = weft_sleep(60 * WEFT_SEC);
	if (rc == -ECANCELED)
		return weft_fail(-EBADF, "cleanup failed too");
	return rc;
}

static int fail_after_a_moment(void *arg)
{
	(void)arg;
	weft_sleep(WEFT_MSEC);
	return weft_fail(-EIO, "the original failure");
}

static int collateral_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 5; i++)
		CHECK_EQ(weft_group_spawn(g, cancelled_quietly, NULL), 0);
	CHECK_EQ(weft_group_spawn(g, fails_in_cleanup, NULL), 0);
	CHECK_EQ(weft_group_spawn(g, fail_after_a_moment, NULL), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	/* Five cancellations are not failures; the cleanup failure is kept
	 * and marked collateral; the primary is the original one. */
	CHECK_EQ(weft_error_count(err), 2);
	int collateral = 0;
	for (size_t i = 0; i < weft_error_count(err); i++) {
		if (weft_error_code_at(err, i) == -EBADF) {
			CHECK(weft_error_collateral_at(err, i));
			collateral++;
		} else {
			CHECK_EQ(weft_error_code_at(err, i), -EIO);
			CHECK(!weft_error_collateral_at(err, i));
		}
	}
	CHECK_EQ(collateral, 1);
	const char *msg = NULL;
	CHECK_EQ(weft_error_primary(err, &msg), -EIO);
	CHECK(strcmp(msg, "the original failure") == 0);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, cleanup_failures_are_kept_and_marked_collateral,
	collateral_root, NULL)

static int fails_quietly(void *arg)
{
	(void)arg;
	int rc = weft_sleep(60 * WEFT_SEC);
	return rc == -ECANCELED ? -EPIPE : rc; /* no message */
}

/* The layout weft_error_format documents, line by line, and the context
 * each entry carries: its path from the root, why a collateral entry's
 * task was cancelled (the failing sibling), and a logical time that
 * orders the failures. */
static int format_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, fails_in_cleanup, NULL), 0);
	CHECK_EQ(weft_group_spawn(g, fails_quietly, NULL), 0);
	CHECK_EQ(weft_group_spawn(g, fail_after_a_moment, NULL), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	if (!CHECK_EQ(weft_error_count(err), 3)) {
		weft_error_free(err);
		return 0;
	}
	/* The original failure comes first and is the earliest (the other
	 * two fail only once it cancelled the group); those two may draw
	 * their logical times and join the list in either order. */
	CHECK_EQ(weft_error_code_at(err, 0), -EIO);
	CHECK(weft_error_time_at(err, 0) < weft_error_time_at(err, 1));
	CHECK(weft_error_time_at(err, 0) < weft_error_time_at(err, 2));
	CHECK(weft_error_time_at(err, 1) != weft_error_time_at(err, 2));
	unsigned long long orig = weft_error_task_id_at(err, 0);
	unsigned long long root = weft_current_task_id();
	char want[1024], got[1024], path[128];
	int n = snprintf(want, sizeof want,
		"fail_after_a_moment#%llu: EIO: the original failure\n", orig);
	for (size_t i = 1; i < 3; i++) {
		unsigned long long id = weft_error_task_id_at(err, i);
		char why[96];
		snprintf(why, sizeof why,
			"task 'fail_after_a_moment'#%llu failed", orig);
		CHECK(weft_error_collateral_at(err, i));
		CHECK(strcmp(weft_error_cancel_reason_at(err, i), why) == 0);
		if (weft_error_code_at(err, i) == -EBADF)
			n += snprintf(want + n, sizeof want - (size_t)n,
				"fails_in_cleanup#%llu: EBADF: cleanup failed "
				"too (while cancelled: %s)\n",
				id, why);
		else
			n += snprintf(want + n, sizeof want - (size_t)n,
				"fails_quietly#%llu: EPIPE (while cancelled: "
				"%s)\n",
				id, why);
		snprintf(path, sizeof path, "main#%llu/%s#%llu", root,
			weft_error_task_name_at(err, i), id);
		CHECK(strcmp(weft_error_path_at(err, i), path) == 0);
	}
	CHECK(strcmp(weft_error_cancel_reason_at(err, 0), "") == 0);
	CHECK_EQ(weft_error_format(err, got, sizeof got), n);
	CHECK(strcmp(got, want) == 0);
	/* Out of range. */
	CHECK(strcmp(weft_error_path_at(err, 3), "") == 0);
	CHECK_EQ(weft_error_time_at(NULL, 0), 0);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, format_is_as_documented_with_context, format_root, NULL)

static int all_cancelled_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(weft_group_spawn(g, cancelled_quietly, NULL), 0);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	weft_group_cancel(g, NULL);
	weft_error_t *err = (weft_error_t *)(uintptr_t)1;
	CHECK_EQ(weft_group_join(g, &err), 0);
	CHECK(err == NULL);
	return 0;
}

WEFT_TEST_ROOT(errors, cancellation_is_never_a_failure, all_cancelled_root,
	NULL)

static int fail_oom_late(void *arg)
{
	(void)arg;
	weft_sleep(2 * WEFT_MSEC);
	return weft_fail(-ENOMEM, "no memory for the cache");
}

static int fatal_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	CHECK_EQ(weft_group_spawn(g, fail_after_a_moment, NULL), 0);
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	weft_spawn_opts_t o = { .name = "cache" };
	CHECK_EQ(weft_group_spawn_opts(g, fail_oom_late, NULL, &o), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	/* Both leaves stay; the out-of-memory one is primary although it came
	 * second (and as a collateral failure, if the first cancelled it). */
	CHECK_EQ(weft_error_count(err), 2);
	const char *msg = NULL;
	CHECK_EQ(weft_error_primary(err, &msg), -ENOMEM);
	CHECK(strcmp(msg, "no memory for the cache") == 0);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, fatal_class_failure_is_primary_and_keeps_the_rest,
	fatal_root, NULL)

/* }======================================================= */

/* {======================================================= many failures */

static int fail_with_index(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "x");
}

struct many {
	long n;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int many_failures_root(void *arg)
{
	struct many *m = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	/* Under a shield so the first failure's cancellation of g cannot
	 * make the remaining spawns skip anything (they run regardless). */
	for (long i = 0; i < m->n; i++)
		CHECK_EQ(weft_group_spawn(g, fail_with_index, NULL), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ((long)weft_error_count(err), m->n);
	uint64_t *ids = malloc(sizeof *ids * (size_t)m->n);
	for (long i = 0; i < m->n; i++)
		ids[i] = weft_error_task_id_at(err, (size_t)i);
	qsort(ids, (size_t)m->n, sizeof *ids, cmp_u64);
	long dups = 0;
	for (long i = 1; i < m->n; i++)
		dups += ids[i] == ids[i - 1];
	CHECK_EQ(dups, 0);
	free(ids);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(errors, every_failure_of_a_huge_group_appears_exactly_once,
	many_failures_root, &(struct many){ weft_test_scale(100000) })

/* }======================================================= */

static void test_errors__codes_have_names_and_messages(void **state)
{
	(void)state;
	assert_string_equal(weft_err_name(WEFT_ECLOSED), "WEFT_ECLOSED");
	assert_string_equal(weft_err_name(-ECANCELED), "ECANCELED");
	assert_string_equal(weft_err_name(0), "OK");
	assert_string_equal(weft_strerror(-ETIMEDOUT), "Connection timed out");
	assert_true(strlen(weft_strerror(WEFT_EMISNEST)) > 0);
	assert_string_equal(weft_strerror(12345), "unknown error");
	assert_int_equal(weft_error_count(NULL), 0);
	assert_int_equal(weft_error_code_at(NULL, 0), -EINVAL);
	assert_int_equal(weft_error_format(NULL, NULL, 0), -EINVAL);
	weft_error_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_errors__one_failure_still_gives_a_group),
		WEFT_TEST(test_errors__a_positive_return_is_a_failure),
		WEFT_TEST(test_errors__a_positive_root_return_is_a_failure),
		WEFT_TEST(
			test_errors__a_kept_tree_is_pending_until_the_task_ends),
		WEFT_TEST(test_errors__nested_group_failures_nest),
		WEFT_TEST(
			test_errors__split_partitions_leaves_and_keeps_nesting),
		WEFT_TEST(
			test_errors__split_that_runs_out_of_memory_leaves_err_intact),
		WEFT_TEST(
			test_errors__cleanup_failures_are_kept_and_marked_collateral),
		WEFT_TEST(test_errors__format_is_as_documented_with_context),
		WEFT_TEST(test_errors__cancellation_is_never_a_failure),
		WEFT_TEST(
			test_errors__fatal_class_failure_is_primary_and_keeps_the_rest),
		WEFT_TEST(
			test_errors__every_failure_of_a_huge_group_appears_exactly_once),
		cmocka_unit_test(test_errors__codes_have_names_and_messages),
	};
	return WEFT_RUN_TESTS(tests);
}
