/* Task handles (include/weft/task.h): docs/semantics.md rules 17-20, a
 * section for each in order (19 and 20 share one), then waiting on a
 * handle. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "support.h"

/* Shielded, so a failing sibling cannot cut its sleep short. */
static int sleep_then_result(void *arg)
{
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	CHECK_EQ(weft_task_set_result(arg), 0);
	return 0;
}

static int fail_with_message(void *arg)
{
	(void)arg;
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	return weft_fail(-ENOENT, "no such user %d", 7);
}

static int sleep_forever(void *arg)
{
	atomic_int *cleanups = arg;
	int rc = weft_sleep(60 * WEFT_SEC);
	if (cleanups)
		atomic_fetch_add(cleanups, 1);
	return rc;
}

/* {======================================================= final states */

static int quick_zero(void *arg)
{
	(void)arg;
	return 0;
}

static int states_root(void *arg)
{
	(void)arg;
	static int value = 99;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *ok = weft_test_spawn(g, sleep_then_result, &value);
	weft_task_t *bad = weft_test_spawn(g, fail_with_message, NULL);
	weft_task_t *stuck = weft_test_spawn(g, sleep_forever, NULL);
	/* bad's failure cancels g, and the owner is inside g: wait shielded. */
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	void *v = NULL;
	CHECK_EQ(weft_task_result(ok, &v), WEFT_ENOTFINISHED);
	CHECK_EQ(weft_task_state(ok), WEFT_TASK_PENDING);
	CHECK_EQ(weft_task_wait(ok), 0);
	CHECK_EQ(weft_task_state(ok), WEFT_TASK_FINISHED);
	CHECK_EQ(weft_task_result(ok, &v), 0);
	CHECK(v == &value);
	CHECK_EQ(weft_task_wait(bad), 0);
	CHECK_EQ(weft_task_state(bad), WEFT_TASK_FAILED);
	CHECK_EQ(weft_task_result(bad, &v), WEFT_EFAILED);
	int code = 0;
	const char *msg = NULL;
	CHECK_EQ(weft_task_failure(bad, &code, &msg), 0);
	CHECK_EQ(code, -ENOENT);
	CHECK(strcmp(msg, "no such user 7") == 0);
	/* The group's failure handling cancelled the sleeper. */
	CHECK_EQ(weft_task_wait(stuck), 0);
	CHECK_EQ(weft_task_state(stuck), WEFT_TASK_CANCELLED);
	CHECK_EQ(weft_task_result(stuck, &v), -ECANCELED);
	CHECK_EQ(weft_task_failure(ok, &code, &msg), WEFT_ENOTFINISHED);
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	weft_error_free(err);
	weft_task_release(ok);
	weft_task_release(bad);
	weft_task_release(stuck);
	return 0;
}

WEFT_TEST_ROOT(task, handle_reports_each_final_state, states_root, NULL)

/* }======================================================= */

/* {======================================================= handle cancel */

static int cancel_one_root(void *arg)
{
	atomic_int *cleanups = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *a = weft_test_spawn(g, sleep_forever, cleanups);
	weft_task_t *b = weft_test_spawn(g, sleep_then_result, NULL);
	CHECK_EQ(weft_sleep(WEFT_MSEC / 2), 0);
	CHECK_EQ(weft_task_cancel(a), 0);
	CHECK_EQ(weft_task_cancel(a), 0); /* idempotent */
	CHECK_EQ(weft_task_wait(a), 0);
	CHECK_EQ(weft_task_state(a), WEFT_TASK_CANCELLED);
	CHECK_EQ(weft_task_wait(b), 0);
	CHECK_EQ(weft_task_state(b), WEFT_TASK_FINISHED); /* sibling unharmed */
	CHECK_EQ(weft_task_cancel(b), 0); /* no-op after completion */
	CHECK_EQ(weft_task_state(b), WEFT_TASK_FINISHED);
	CHECK_EQ(weft_checkpoint(), 0);	       /* the group was not cancelled */
	CHECK_EQ(weft_group_join(g, NULL), 0); /* no failure */
	weft_task_release(a);
	weft_task_release(b);
	return 0;
}

static void test_task__handle_cancel_cancels_only_that_task(void **state)
{
	atomic_int cleanups = 0;
	weft_test_root(state, cancel_one_root, &cleanups);
	assert_int_equal(atomic_load(&cleanups), 1);
}

static int cancelling_state_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	weft_task_t *h = weft_test_spawn(g, sleep_forever, NULL);
	weft_task_cancel(h);
	weft_task_state_t st = weft_task_state(h);
	CHECK(st == WEFT_TASK_CANCELLING || st == WEFT_TASK_CANCELLED);
	weft_scope_exit(shield);
	weft_scope_destroy(shield);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_task_state(h), WEFT_TASK_CANCELLED);
	weft_task_release(h);
	return 0;
}

WEFT_TEST_ROOT(task, cancel_requested_shows_as_cancelling,
	cancelling_state_root, NULL)

/* }======================================================= */

/* {======================================================= observe, drop a handle */

static int observe_not_consume_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *bad = weft_test_spawn(g, fail_with_message, NULL);
	CHECK_EQ(weft_task_wait(bad), 0);
	CHECK_EQ(weft_task_result(bad, NULL), WEFT_EFAILED);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_code_at(err, 0), -ENOENT);
	CHECK_EQ(weft_error_task_id_at(err, 0), weft_task_id(bad));
	weft_error_free(err);
	weft_task_release(bad);
	return 0;
}

WEFT_TEST_ROOT(task, observing_a_failure_does_not_consume_it,
	observe_not_consume_root, NULL)

static int count_after_sleep(void *arg)
{
	CHECK_EQ(weft_sleep(3 * WEFT_MSEC), 0);
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

static int drop_handle_root(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 10; i++)
		weft_task_release(weft_test_spawn(g, count_after_sleep, arg));
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load((atomic_int *)arg), 10);
	return 0;
}

static void test_task__dropping_a_handle_never_detaches_the_task(void **state)
{
	atomic_int n = 0;
	weft_test_root(state, drop_handle_root, &n);
	assert_int_equal(atomic_load(&n), 10);
}

/* }======================================================= */

/* {======================================================= wait */

struct waiter {
	weft_task_t *target;
	atomic_int rc;
};

static int wait_for_target(void *arg)
{
	struct waiter *w = arg;
	atomic_store(&w->rc, weft_task_wait(w->target));
	return 0;
}

static int wait_cancel_root(void *arg)
{
	struct waiter *w = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	w->target = weft_test_spawn(g, sleep_forever, NULL);
	weft_task_t *waiter = weft_test_spawn(g, wait_for_target, w);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_task_cancel(waiter), 0);
	CHECK_EQ(weft_task_wait(waiter), 0);
	CHECK_EQ(atomic_load(&w->rc), -ECANCELED);
	/* The target is unaffected by its waiter's cancellation. */
	CHECK_EQ(weft_task_state(w->target), WEFT_TASK_PENDING);
	CHECK_EQ(weft_task_wait(NULL), -EINVAL);
	weft_group_cancel(g, NULL);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(waiter);
	weft_task_release(w->target);
	return 0;
}

WEFT_TEST_ROOT(task, cancelled_wait_returns_ecanceled_and_leaves_the_task,
	wait_cancel_root, &(struct waiter){ 0 })

static int many_waiters_root(void *arg)
{
	(void)arg;
	struct waiter w[16];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *target = weft_test_spawn(g, sleep_then_result, NULL);
	for (int i = 0; i < 16; i++) {
		w[i].target = target;
		atomic_init(&w[i].rc, 1);
		CHECK_EQ(weft_group_spawn(g, wait_for_target, &w[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(atomic_load(&w[i].rc), 0);
	weft_task_release(target);
	return 0;
}

WEFT_TEST_ROOT(task, every_waiter_is_woken_once_the_task_ends,
	many_waiters_root, NULL)

/* Rule 22: weft_task_wait is a checkpoint also when the task has ended:
 * a cancelled caller gets -ECANCELED, an uncancelled one 0. */
static int wait_ended_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, quick_zero, NULL);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_task_state(h), WEFT_TASK_FINISHED);
	CHECK_EQ(weft_task_wait(h), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, "stop"), 0);
	CHECK_EQ(weft_task_wait(h), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	weft_task_release(h);
	return 0;
}

WEFT_TEST_ROOT(task, wait_on_an_ended_task_is_a_checkpoint, wait_ended_root,
	NULL)

/* }======================================================= */

/* {======================================================= reason, rename, remove */

struct reason_seen {
	weft_cancel_reason_t r;
	atomic_int ready;
};

static int report_cancel_reason(void *arg)
{
	struct reason_seen *rs = arg;
	atomic_store(&rs->ready, 1);
	int rc = weft_sleep(60 * WEFT_SEC);
	CHECK_EQ(weft_cancel_reason(&rs->r), 0);
	return rc;
}

/* asyncio's Task.cancel(msg): the text reaches the cancelled task. */
static int cancel_with_root(void *arg)
{
	(void)arg;
	struct reason_seen a = { 0 }, b = { 0 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *ha = weft_test_spawn(g, report_cancel_reason, &a);
	weft_task_t *hb = weft_test_spawn(g, report_cancel_reason, &b);
	CHECK(weft_test_yield_until(&a.ready, 1));
	CHECK(weft_test_yield_until(&b.ready, 1));
	CHECK_EQ(weft_task_cancel_with(ha, "shutting down shard 3"), 0);
	CHECK_EQ(weft_task_cancel_with(ha, "second reason is ignored"), 0);
	CHECK_EQ(weft_task_cancel(hb), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(a.r.origin, WEFT_CANCEL_TASK);
	CHECK(strcmp(a.r.text, "shutting down shard 3") == 0);
	CHECK_EQ(a.r.task_id, weft_current_task_id());
	CHECK_EQ(b.r.origin, WEFT_CANCEL_TASK);
	CHECK(strcmp(b.r.text, "task cancelled through its handle") == 0);
	CHECK_EQ(weft_task_state(ha), WEFT_TASK_CANCELLED);
	CHECK_EQ(weft_task_cancel_with(NULL, "x"), -EINVAL);
	weft_task_release(ha);
	weft_task_release(hb);
	return 0;
}

WEFT_TEST_ROOT(task, cancel_with_gives_the_task_its_reason, cancel_with_root,
	NULL)

static int wait_then_report_name(void *arg)
{
	atomic_int *step = arg;
	atomic_store(&step[0], 1);
	CHECK(weft_test_yield_until(&step[1], 1));
	weft_task_t *self = weft_current_task();
	CHECK(strcmp(weft_task_name(self), "renamed from outside") == 0);
	return 0;
}

/* Hands out a handle to itself, renamed through it before it ends (the
 * task renames only through the handle, as another task would). */
static int hand_over_self(void *arg)
{
	weft_task_t *self = weft_current_task();
	CHECK_EQ(weft_task_retain(self), 0);
	CHECK_EQ(weft_task_rename(self, "renamed from outside"), 0);
	*(weft_task_t **)arg = self;
	return 0;
}

static int check_lit_name(void *arg)
{
	atomic_store((atomic_int *)arg,
		strcmp(weft_task_name(weft_current_task()), "lit") == 0);
	return 0;
}

/* asyncio's Task.set_name through a handle; the record's next life, spawned
 * from the same literal name, has its own name again. */
static int rename_root(void *arg)
{
	(void)arg;
	atomic_int step[2] = { 0, 0 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, wait_then_report_name, step);
	CHECK(weft_test_yield_until(&step[0], 1));
	CHECK_EQ(weft_task_rename(h, "renamed from outside"), 0);
	CHECK(strcmp(weft_task_name(h), "renamed from outside") == 0);
	atomic_store(&step[1], 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_task_rename(h, "too late"), WEFT_ECLOSED);
	CHECK_EQ(weft_task_rename(h, NULL), -EINVAL);
	CHECK_EQ(weft_task_rename(NULL, "x"), -EINVAL);
	weft_task_release(h);
	/* Records are reused: a task spawned from a literal name keeps that
	 * name even on the record of a task renamed from outside (on one
	 * worker the record is the same one). */
	for (int i = 0; i < 8; i++) {
		weft_task_t *x = NULL;
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn_literal(g, "lit", hand_over_self, &x),
			0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		if (!CHECK(x != NULL))
			break;
		weft_task_release(x);
		atomic_int same = 0;
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn_literal(g, "lit", check_lit_name,
				 &same),
			0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		CHECK_EQ(atomic_load(&same), 1);
	}
	return 0;
}

WEFT_TEST_ROOT(task, rename_through_a_handle, rename_root, NULL)

static void count_done(weft_task_t *h, void *arg)
{
	(void)h;
	atomic_fetch_add((atomic_int *)arg, 1);
}

/* asyncio's remove_done_callback: removed registrations never run and give
 * their reference back (the leak check at the end counts records). */
static int remove_done_root(void *arg)
{
	(void)arg;
	atomic_int step[2] = { 0, 0 };
	atomic_int a = 0, b = 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, wait_then_report_name, step);
	CHECK_EQ(weft_task_on_done(h, count_done, &a), 0);
	CHECK_EQ(weft_task_on_done(h, count_done, &b), 0);
	CHECK_EQ(weft_task_on_done(h, count_done, &a), 0);
	CHECK_EQ(weft_task_remove_done(h, count_done, &a), 2);
	CHECK_EQ(weft_task_remove_done(h, count_done, &a), 0);
	CHECK_EQ(weft_task_remove_done(h, NULL, &a), -EINVAL);
	CHECK_EQ(weft_task_rename(h, "renamed from outside"), 0);
	atomic_store(&step[1], 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&a), 0);
	CHECK_EQ(atomic_load(&b), 1);
	CHECK_EQ(weft_task_remove_done(h, count_done, &b), 0);
	weft_task_release(h);
	return 0;
}

WEFT_TEST_ROOT(task, remove_done_unregisters_callbacks, remove_done_root, NULL)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_task__handle_reports_each_final_state),
		WEFT_TEST(test_task__handle_cancel_cancels_only_that_task),
		WEFT_TEST(test_task__cancel_requested_shows_as_cancelling),
		WEFT_TEST(test_task__observing_a_failure_does_not_consume_it),
		WEFT_TEST(test_task__dropping_a_handle_never_detaches_the_task),
		WEFT_TEST(
			test_task__cancelled_wait_returns_ecanceled_and_leaves_the_task),
		WEFT_TEST(test_task__every_waiter_is_woken_once_the_task_ends),
		WEFT_TEST(test_task__wait_on_an_ended_task_is_a_checkpoint),
		WEFT_TEST(test_task__cancel_with_gives_the_task_its_reason),
		WEFT_TEST(test_task__rename_through_a_handle),
		WEFT_TEST(test_task__remove_done_unregisters_callbacks),
	};
	return WEFT_RUN_TESTS(tests);
}
