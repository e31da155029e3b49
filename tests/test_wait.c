/* wait and wait_for (include/weft/combine.h): waiting on the handles of
 * tasks that belong to groups.  wait returns which tasks are done under
 * FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED and a deadline, and
 * cancels nothing (docs/semantics.md rule 34).  wait_for returns one
 * task's outcome, or on timeout cancels the task and waits for it before
 * returning -ETIMEDOUT (docs/semantics.md rule 32).  combine_fixture.h
 * has the kids they wait on. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "combine_fixture.h"
#include "support.h"

/* {======================================================= wait */

static int wait_first_completed_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[3];
	h[0] = weft_test_spawn(g, kid_gated, &kids[0]);
	h[1] = weft_test_spawn(g, kid_value, &kids[1]); /* ends at once */
	h[2] = weft_test_spawn(g, kid_gated, &kids[2]);
	bool done[3] = { true, true, true };
	CHECK_EQ(weft_wait(h, 3, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER, done),
		0);
	CHECK(!done[0] && done[1] && !done[2]);
	/* The pending ones were not touched, and finish normally. */
	CHECK_EQ(weft_task_state(h[0]), WEFT_TASK_PENDING);
	CHECK_EQ(weft_task_state(h[2]), WEFT_TASK_PENDING);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
		weft_task_release(h[i]);
	}
	CHECK_EQ(atomic_load(&sh.cleanups), 0);
	return 0;
}

WEFT_TEST_ROOT(wait, first_completed_leaves_the_rest_pending,
	wait_first_completed_root, NULL)

static int wait_first_exception_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	kids[1].code = -EIO;
	kids[1].sleep = 2 * WEFT_MSEC;
	/* The gated task lives in an outer group, which the failure in the
	 * inner one does not cancel. */
	weft_group_t *outer, *inner;
	CHECK_EQ(weft_group_open(&outer), 0);
	weft_task_t *h[3];
	h[2] = weft_test_spawn(outer, kid_gated, &kids[2]);
	CHECK_EQ(weft_group_open(&inner), 0);
	/* Ends at once, fine. */
	h[0] = weft_test_spawn(inner, kid_value, &kids[0]);
	h[1] = weft_test_spawn(inner, kid_value, &kids[1]); /* fails later */
	/* The failure cancels the inner group, whose scope the owner is in:
	 * a shield keeps that from cutting the wait short. */
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	/* h[0] ends first (without this, a slow machine may run it only
	 * after h[1]'s 2 ms sleep and failure: seen once under TSan). */
	CHECK_EQ(weft_task_wait(h[0]), 0);
	bool done[3];
	CHECK_EQ(weft_wait(h, 3, WEFT_WAIT_FIRST_EXCEPTION, WEFT_FOREVER, done),
		0);
	/* It did not return with h[0] finished: only once h[1] failed. */
	CHECK_EQ(weft_task_state(h[1]), WEFT_TASK_FAILED);
	CHECK(done[0] && done[1] && !done[2]);
	CHECK_EQ(weft_task_state(h[2]), WEFT_TASK_PENDING);
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(inner, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	weft_error_free(err);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_group_join(outer, NULL), 0);
	CHECK_EQ(weft_task_state(h[2]), WEFT_TASK_FINISHED);
	for (int i = 0; i < 3; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(wait, first_exception_returns_on_a_failure,
	wait_first_exception_root, NULL)

static int wait_first_exception_all_ok_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[3];
	for (int i = 0; i < 3; i++) {
		kids[i].sleep = (i + 1) * WEFT_MSEC / 2;
		h[i] = weft_test_spawn(g, kid_value, &kids[i]);
	}
	bool done[3];
	CHECK_EQ(weft_wait(h, 3, WEFT_WAIT_FIRST_EXCEPTION, WEFT_FOREVER, done),
		0);
	for (int i = 0; i < 3; i++) {
		CHECK(done[i]);
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 3; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(wait, first_exception_without_failure_waits_for_all,
	wait_first_exception_all_ok_root, NULL)

static int wait_all_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[NKIDS + 4];
	kids_init(kids, NKIDS + 4, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[NKIDS + 4];
	for (int i = 0; i < NKIDS + 3; i++) {
		kids[i].sleep = (i % 3 + 1) * WEFT_MSEC / 2;
		h[i] = weft_test_spawn(g, kid_value, &kids[i]);
	}
	h[NKIDS + 3] = h[0]; /* duplicates are allowed */
	bool done[NKIDS + 4];
	CHECK_EQ(weft_wait(h, NKIDS + 4, WEFT_WAIT_ALL_COMPLETED, WEFT_FOREVER,
			 done),
		0);
	for (int i = 0; i < NKIDS + 4; i++) {
		CHECK(done[i]);
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < NKIDS + 3; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(wait, all_completed_waits_for_every_task, wait_all_root, NULL)

/* More than the 8 watches that live on the stack, in every mode. */
static int wait_timeout_root(void *arg)
{
	(void)arg;
	enum { N = 10 };
	struct shared sh = { 0 };
	struct kid kids[N];
	kids_init(kids, N, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[N];
	for (int i = 0; i < N; i++)
		h[i] = weft_test_spawn(g, kid_gated, &kids[i]);
	static const weft_wait_mode_t modes[3] = { WEFT_WAIT_FIRST_COMPLETED,
		WEFT_WAIT_FIRST_EXCEPTION, WEFT_WAIT_ALL_COMPLETED };
	for (int m = 0; m < 3; m++) {
		bool done[N];
		memset(done, 1, sizeof done);
		CHECK_EQ(weft_wait(h, N, modes[m], weft_now() + WEFT_MSEC,
				 done),
			0);
		for (int i = 0; i < N; i++) {
			CHECK(!done[i]);
			CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_PENDING);
		}
	}
	/* A deadline already past returns at once. */
	bool done[N];
	CHECK_EQ(weft_wait(h, N, WEFT_WAIT_ALL_COMPLETED, 0, done), 0);
	CHECK(!done[0]);
	/* The timeout did not cancel anything: the group joins them. */
	CHECK_EQ(weft_checkpoint(), 0);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&sh.cleanups), 0);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
		weft_task_release(h[i]);
	}
	return 0;
}

WEFT_TEST_ROOT(wait, timeout_is_not_an_error_and_cancels_nothing,
	wait_timeout_root, NULL)

struct waiter_case {
	struct shared sh;
	struct kid kids[2];
	weft_task_t *h[2];
	atomic_int waiting;
	int rc;
};

static int waiter_task(void *arg)
{
	struct waiter_case *wc = arg;
	bool done[2];
	atomic_store(&wc->waiting, 1);
	wc->rc = weft_wait(wc->h, 2, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER,
		done);
	return 0;
}

static int wait_cancelled_root(void *arg)
{
	(void)arg;
	struct waiter_case wc = { 0 };
	kids_init(wc.kids, 2, &wc.sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	wc.h[0] = weft_test_spawn(g, kid_gated, &wc.kids[0]);
	wc.h[1] = weft_test_spawn(g, kid_gated, &wc.kids[1]);
	weft_task_t *w = weft_test_spawn(g, waiter_task, &wc);
	while (!atomic_load(&wc.waiting))
		CHECK_EQ(weft_sleep(WEFT_MSEC / 4), 0);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0); /* likely parked by now */
	CHECK_EQ(weft_task_cancel(w), 0);
	CHECK_EQ(weft_task_wait(w), 0);
	CHECK_EQ(wc.rc, -ECANCELED);
	CHECK_EQ(weft_task_state(wc.h[0]), WEFT_TASK_PENDING);
	CHECK_EQ(weft_task_state(wc.h[1]), WEFT_TASK_PENDING);
	/* An enclosing deadline: the same, and the scope caught it. */
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, WEFT_MSEC), 0);
	bool done[2];
	CHECK_EQ(weft_wait(wc.h, 2, WEFT_WAIT_ALL_COMPLETED, WEFT_FOREVER,
			 done),
		-ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	atomic_store(&wc.sh.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&wc.sh.cleanups), 0);
	weft_task_release(wc.h[0]);
	weft_task_release(wc.h[1]);
	weft_task_release(w);
	return 0;
}

WEFT_TEST_ROOT(wait, cancelled_wait_returns_ecanceled, wait_cancelled_root,
	NULL)

/* }======================================================= */

/* {======================================================= wait_for */

static int wait_for_timeout_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[2];
	kids_init(kids, 2, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, kid_slow_cleanup, &kids[0]);
	void *v = &sh;
	CHECK_EQ(weft_wait_for(h, 2 * WEFT_MSEC, &v), -ETIMEDOUT);
	/* The task was cancelled and its (shielded, slow) cleanup ran to
	 * the end before wait_for returned. */
	CHECK_EQ(atomic_load(&sh.cleanups), 1);
	CHECK_EQ(weft_task_state(h), WEFT_TASK_CANCELLED);
	CHECK(v == &sh);
	/* A zero timeout on a pending task: cancel, wait, -ETIMEDOUT. */
	weft_task_t *h2 = weft_test_spawn(g, kid_forever, &kids[1]);
	await_arrivals(&sh, 2);
	CHECK_EQ(weft_wait_for(h2, 0, NULL), -ETIMEDOUT);
	CHECK_EQ(atomic_load(&sh.cleanups), 2);
	/* On an ended task, any timeout gives its outcome. */
	CHECK_EQ(weft_wait_for(h2, 0, NULL), -ECANCELED);
	CHECK_EQ(weft_checkpoint(), 0); /* the caller is not cancelled */
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(h);
	weft_task_release(h2);
	return 0;
}

WEFT_TEST_ROOT(wait_for, timeout_cancels_and_waits_for_the_task,
	wait_for_timeout_root, NULL)

static int wait_for_ok_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[2];
	kids_init(kids, 2, &sh);
	kids[0].sleep = WEFT_MSEC;
	kids[1].code = -EIO; /* once the gate opens: after `ok` ended */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *ok = weft_test_spawn(g, kid_value, &kids[0]);
	weft_task_t *bad = weft_test_spawn(g, kid_gated, &kids[1]);
	void *v = NULL;
	CHECK_EQ(weft_wait_for(ok, 10 * WEFT_SEC, &v), 0);
	CHECK(v == &sh.vals[0]);
	CHECK_EQ(weft_wait_for(ok, WEFT_FOREVER, NULL), 0);
	/* A failure comes back as the handle says (and the group still
	 * reports it): shielded, because it cancels the group. */
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_wait_for(bad, WEFT_FOREVER, NULL), WEFT_EFAILED);
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	weft_error_free(err);
	weft_task_release(ok);
	weft_task_release(bad);
	return 0;
}

WEFT_TEST_ROOT(wait_for, returns_the_outcome_in_time, wait_for_ok_root, NULL)

struct wait_for_case {
	struct shared sh;
	struct kid kid;
	weft_task_t *target;
	int rc;
	int cleanups_at_return;
	int state_at_return;
};

static int wait_for_caller(void *arg)
{
	struct wait_for_case *wf = arg;
	wf->rc = weft_wait_for(wf->target, 600 * WEFT_SEC, NULL);
	wf->cleanups_at_return = atomic_load(&wf->sh.cleanups);
	wf->state_at_return = weft_task_state(wf->target);
	return 0;
}

static int wait_for_cancel_root(void *arg)
{
	(void)arg;
	struct wait_for_case wf = { 0 };
	wf.kid = (struct kid){ .sh = &wf.sh };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	wf.target = weft_test_spawn(g, kid_slow_cleanup, &wf.kid);
	await_arrivals(&wf.sh, 1);
	weft_task_t *c = weft_test_spawn(g, wait_for_caller, &wf);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_task_cancel(c), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(wf.rc, -ECANCELED);
	CHECK_EQ(wf.cleanups_at_return, 1);
	CHECK_EQ(wf.state_at_return, WEFT_TASK_CANCELLED);
	weft_task_release(wf.target);
	weft_task_release(c);
	return 0;
}

WEFT_TEST_ROOT(wait_for, cancelled_wait_for_cancels_and_waits_for_the_task,
	wait_for_cancel_root, NULL)

/* }======================================================= */

/* {======================================================= gather_tasks */

struct gather_job {
	weft_task_t **h;
	size_t n;
	weft_gather_result_t *res;
	int rc;
};

static int gather_job(void *arg)
{
	struct gather_job *j = arg;
	j->rc = weft_gather_tasks(j->h, j->n, j->res);
	return 0;
}

/* asyncio's gather(*tasks, return_exceptions=True) over existing handles:
 * one slot per handle, every outcome kind, more than the 8 flags on the
 * stack; the failure still reaches the group's join, exactly once.  The
 * gatherer runs in a group opened outside the kids' group, so the kids'
 * failure (which cancels their group) does not cancel it; the failing kid
 * waits for a gate opened once the others have ended. */
static int gather_tasks_root(void *arg)
{
	(void)arg;
	enum { N = 11 };
	struct shared sh = { 0 };
	struct kid kids[N];
	kids_init(kids, N, &sh);
	weft_group_t *outer, *g;
	CHECK_EQ(weft_group_open(&outer), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[N];
	for (int i = 0; i < N; i++) {
		kids[i].sleep = (i % 3 + 1) * WEFT_MSEC / 2;
		kids[i].code = i == 4 ? -EPIPE : 0;
		h[i] = weft_test_spawn(g,
			i == 7		 ? kid_forever
				: i == 4 ? kid_gated
					 : kid_value,
			&kids[i]);
	}
	weft_gather_result_t res[N];
	struct gather_job j = { h, N, res, 1 };
	CHECK_EQ(weft_group_spawn(outer, gather_job, &j), 0);
	await_arrivals(&sh, N);
	CHECK_EQ(weft_task_cancel(h[7]), 0);
	for (int i = 0; i < N; i++)
		if (i != 4)
			CHECK(weft_task_wait(h[i]) == 0);
	atomic_store(&sh.gate, 1);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_leaf_count(err), 1);
	weft_error_free(err);
	CHECK_EQ(weft_group_join(outer, NULL), 0);
	CHECK_EQ(j.rc, 0);
	for (int i = 0; i < N; i++) {
		CHECK(res[i].error == NULL);
		if (i == 4) {
			CHECK_EQ(res[i].rc, -EPIPE);
			CHECK(res[i].value == NULL);
		} else if (i == 7) {
			CHECK_EQ(res[i].rc, -ECANCELED);
		} else {
			CHECK_EQ(res[i].rc, 0);
			CHECK(res[i].value == &sh.vals[i]);
		}
	}
	CHECK_EQ(weft_gather_tasks(NULL, 0, NULL), 0);
	CHECK_EQ(weft_gather_tasks(NULL, 1, res), -EINVAL);
	CHECK_EQ(weft_gather_tasks(h, 1, NULL), -EINVAL);
	for (int i = 0; i < N; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(gather_tasks, gives_every_outcome_and_moves_no_error,
	gather_tasks_root, NULL)

static int gather_tasks_caller(void *arg)
{
	weft_task_t **h = arg;
	weft_gather_result_t res[2];
	CHECK_EQ(weft_gather_tasks(h, 2, res), -ECANCELED);
	CHECK_EQ(res[0].rc, 0);
	CHECK_EQ(res[1].rc, WEFT_ENOTFINISHED);
	return 0;
}

/* The caller cancelled: slots of tasks still running say so, and those
 * tasks keep running. */
static int gather_tasks_cancel_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[2];
	kids_init(kids, 2, &sh);
	weft_group_t *g, *cg;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[2] = { weft_test_spawn(g, kid_value, &kids[0]),
		weft_test_spawn(g, kid_gated, &kids[1]) };
	CHECK_EQ(weft_task_wait(h[0]), 0);
	CHECK_EQ(weft_group_open(&cg), 0);
	weft_task_t *caller = weft_test_spawn(cg, gather_tasks_caller, h);
	while (weft_task_state(caller) == WEFT_TASK_PENDING &&
		atomic_load(&sh.arrived) < 2)
		weft_yield();
	CHECK_EQ(weft_group_cancel(cg, "stop gathering"), 0);
	CHECK_EQ(weft_group_join(cg, NULL), 0);
	CHECK_EQ(weft_task_state(h[1]), WEFT_TASK_PENDING);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(caller);
	weft_task_release(h[0]);
	weft_task_release(h[1]);
	return 0;
}

WEFT_TEST_ROOT(gather_tasks, cancelled_caller_leaves_tasks_running,
	gather_tasks_cancel_root, NULL)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_wait__first_completed_leaves_the_rest_pending),
		WEFT_TEST(test_wait__first_exception_returns_on_a_failure),
		WEFT_TEST(
			test_wait__first_exception_without_failure_waits_for_all),
		WEFT_TEST(test_wait__all_completed_waits_for_every_task),
		WEFT_TEST(
			test_wait__timeout_is_not_an_error_and_cancels_nothing),
		WEFT_TEST(test_wait__cancelled_wait_returns_ecanceled),
		WEFT_TEST(
			test_wait_for__timeout_cancels_and_waits_for_the_task),
		WEFT_TEST(test_wait_for__returns_the_outcome_in_time),
		WEFT_TEST(
			test_wait_for__cancelled_wait_for_cancels_and_waits_for_the_task),
		WEFT_TEST(
			test_gather_tasks__gives_every_outcome_and_moves_no_error),
		WEFT_TEST(
			test_gather_tasks__cancelled_caller_leaves_tasks_running),
	};
	return WEFT_RUN_TESTS(tests);
}
