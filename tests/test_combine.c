/* Combinators: semantics.md rules 32-35 (gather, race, wait, wait_for,
 * as_completed). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define NKIDS 6

/* {======================================================= helpers */

/* State shared by the tasks of one test. */
struct shared {
	int rendezvous;        /* > 0: kids wait until this many arrived */
	atomic_int arrived;    /* kids that started */
	atomic_int cleanups;   /* kids whose wait was cancelled */
	atomic_int gate;       /* gated kids proceed once set */
	atomic_int consumed;   /* as_completed: tasks the consumer took */
	atomic_int ran;        /* kids whose function ran */
	int vals[16];          /* results point here */
};

/* One kid: what it does is chosen by the function it runs. */
struct kid {
	struct shared *sh;
	int i;
	int code;              /* fail with this after the wait (0: succeed) */
	int64_t sleep;         /* sleep this long first */
	int rank;              /* as_completed: ends after `rank` were taken */
};

/* Counts the kid in; with a rendezvous, stays (yielding, so that it also
 * works on one worker) until every kid has arrived: they are then all
 * alive at once, on as many workers as there are. */
static void arrive(struct shared *sh)
{
	atomic_fetch_add(&sh->ran, 1);
	atomic_fetch_add(&sh->arrived, 1);
	while (sh->rendezvous > 0 && atomic_load(&sh->arrived) < sh->rendezvous)
		weft_yield();
}

/* Sleeps in small steps until flag >= want; -ECANCELED if cancelled. */
static int wait_flag(atomic_int *flag, int want)
{
	while (atomic_load(flag) < want) {
		int rc = weft_sleep(WEFT_MSEC / 4);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Arrives, sleeps k->sleep, then fails with k->code or returns &vals[i]. */
static int kid_value(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	if (k->sleep > 0 && weft_sleep(k->sleep) < 0) {
		atomic_fetch_add(&k->sh->cleanups, 1);
		return -ECANCELED;
	}
	if (k->code != 0)
		return weft_fail(k->code, "kid %d failed", k->i);
	weft_task_set_result(&k->sh->vals[k->i]);
	return 0;
}

/* Arrives, then sleeps until cancelled; counts the cleanup. */
static int kid_forever(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	int rc = weft_sleep(600 * WEFT_SEC);
	atomic_fetch_add(&k->sh->cleanups, 1);
	return rc;
}

/* Waits for the gate, then returns &vals[i] (or fails with k->code). */
static int kid_gated(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	if (wait_flag(&k->sh->gate, 1) < 0) {
		atomic_fetch_add(&k->sh->cleanups, 1);
		return -ECANCELED;
	}
	if (k->code != 0)
		return weft_fail(k->code, "kid %d failed", k->i);
	weft_task_set_result(&k->sh->vals[k->i]);
	return 0;
}

/* When cancelled, cleans up for a while inside a shield before it counts
 * its cleanup: a caller that returns before the count is 1 did not wait. */
static int kid_slow_cleanup(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	int rc = weft_sleep(600 * WEFT_SEC);
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	CHECK_EQ(weft_sleep(3 * WEFT_MSEC), 0);
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	atomic_fetch_add(&k->sh->cleanups, 1);
	return rc;
}

static void kids_init(struct kid *kids, int n, struct shared *sh)
{
	for (int i = 0; i < n; i++)
		kids[i] = (struct kid){ .sh = sh, .i = i };
}

/* Waits (boundedly in practice: the tasks are running) until n kids
 * arrived. */
static void await_arrivals(struct shared *sh, int n)
{
	while (atomic_load(&sh->arrived) < n)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 4), 0);
}

/* }======================================================= */

/* {======================================================= gather */

static int gather_order_root(void *arg)
{
	(void)arg;
	struct shared sh = { .rendezvous = NKIDS };
	struct kid kids[NKIDS];
	kids_init(kids, NKIDS, &sh);
	weft_call_t calls[NKIDS];
	for (int i = 0; i < NKIDS; i++) {
		/* Later slots finish first. */
		kids[i].sleep = (NKIDS - i) * WEFT_MSEC / 2;
		calls[i] = (weft_call_t){ kid_value, &kids[i], NULL };
	}
	weft_gather_result_t res[NKIDS];
	weft_error_t *err = (weft_error_t *)&sh;
	CHECK_EQ(weft_gather(calls, NKIDS, 0, res, &err), 0);
	CHECK(err == NULL);
	for (int i = 0; i < NKIDS; i++) {
		CHECK_EQ(res[i].rc, 0);
		CHECK(res[i].value == &sh.vals[i]);
		CHECK(res[i].error == NULL);
	}
	CHECK_EQ(atomic_load(&sh.ran), NKIDS);
	return 0;
}

WEFT_TEST_ROOT(combine, gather_returns_results_in_call_order,
	gather_order_root, NULL)

static int gather_fail_root(void *arg)
{
	(void)arg;
	struct shared sh = { .rendezvous = NKIDS };
	struct kid kids[NKIDS];
	kids_init(kids, NKIDS, &sh);
	weft_call_t calls[NKIDS];
	static const char *names[NKIDS] = { "a", "b", "c", "d", "e", "f" };
	for (int i = 0; i < NKIDS; i++)
		calls[i] = (weft_call_t){ kid_forever, &kids[i], names[i] };
	/* Two kids fail right after the rendezvous (no checkpoint between,
	 * so both failures happen whoever is first); the others would
	 * sleep forever. */
	kids[1].code = -EIO;
	calls[1].fn = kid_value;
	kids[4].code = -ENOENT;
	calls[4].fn = kid_value;
	weft_gather_result_t res[NKIDS];
	weft_error_t *err = NULL;
	CHECK_EQ(weft_gather(calls, NKIDS, 0, res, &err), WEFT_ECHILD_FAILED);
	/* Every sibling was cancelled and had cleaned up before return. */
	CHECK_EQ(atomic_load(&sh.cleanups), NKIDS - 2);
	for (int i = 0; i < NKIDS; i++) {
		int want = i == 1 ? -EIO : i == 4 ? -ENOENT : -ECANCELED;
		CHECK_EQ(res[i].rc, want);
		CHECK(res[i].value == NULL);
		CHECK(res[i].error == NULL);
	}
	/* Each failure exactly once, with its message and task name. */
	CHECK_EQ(weft_error_count(err), 2);
	int eio = 0, enoent = 0;
	for (size_t i = 0; i < weft_error_count(err); i++) {
		int code = weft_error_code_at(err, i);
		const char *name = weft_error_task_name_at(err, i);
		const char *msg = weft_error_message_at(err, i);
		if (code == -EIO) {
			eio++;
			CHECK(strcmp(name, "b") == 0);
			CHECK(strcmp(msg, "kid 1 failed") == 0);
		} else if (code == -ENOENT) {
			enoent++;
			CHECK(strcmp(name, "e") == 0);
			CHECK(strcmp(msg, "kid 4 failed") == 0);
		}
	}
	CHECK_EQ(eio, 1);
	CHECK_EQ(enoent, 1);
	weft_error_free(err);
	/* The group absorbed its own cancellation: the caller is not. */
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

WEFT_TEST_ROOT(combine, gather_first_failure_cancels_siblings_and_aggregates,
	gather_fail_root, NULL)

/* A kid whose own group fails: its error nests. */
static int kid_nested_failure(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct kid inner = { .sh = k->sh, .i = 15, .code = -EPIPE };
	CHECK_EQ(weft_group_spawn(g, kid_value, &inner), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	return weft_fail_group(err);
}

static int gather_keep_root(void *arg)
{
	(void)arg;
	struct shared sh = { .rendezvous = NKIDS };
	struct kid kids[NKIDS];
	kids_init(kids, NKIDS, &sh);
	weft_call_t calls[NKIDS];
	for (int i = 0; i < NKIDS; i++) {
		/* The survivors outlive the failures: a cancellation would
		 * cut their sleep short. */
		kids[i].sleep = 3 * WEFT_MSEC;
		calls[i] = (weft_call_t){ kid_value, &kids[i], NULL };
	}
	kids[0].code = -EIO;
	kids[0].sleep = 0;
	kids[3].code = -ENOENT;
	kids[3].sleep = 0;
	calls[5].fn = kid_nested_failure;
	weft_gather_result_t res[NKIDS];
	weft_error_t *err = (weft_error_t *)&sh;
	CHECK_EQ(weft_gather(calls, NKIDS, WEFT_GATHER_RETURN_ERRORS, res,
		&err), 0);
	CHECK(err == NULL);
	CHECK_EQ(atomic_load(&sh.cleanups), 0);  /* nothing was cancelled */
	for (int i = 0; i < NKIDS; i++) {
		if (i == 0 || i == 3 || i == 5)
			continue;
		CHECK_EQ(res[i].rc, 0);
		CHECK(res[i].value == &sh.vals[i]);
		CHECK(res[i].error == NULL);
	}
	CHECK_EQ(res[0].rc, -EIO);
	CHECK(res[0].value == NULL);
	CHECK_EQ(weft_error_count(res[0].error), 1);
	CHECK_EQ(weft_error_code_at(res[0].error, 0), -EIO);
	CHECK(strcmp(weft_error_message_at(res[0].error, 0),
		"kid 0 failed") == 0);
	CHECK(strcmp(weft_error_task_name_at(res[0].error, 0), "gather") == 0);
	CHECK_EQ(res[3].rc, -ENOENT);
	CHECK_EQ(weft_error_code_at(res[3].error, 0), -ENOENT);
	CHECK_EQ(res[5].rc, WEFT_ECHILD_FAILED);
	const weft_error_t *nested = weft_error_nested_at(res[5].error, 0);
	CHECK(nested != NULL);
	CHECK_EQ(weft_error_count(nested), 1);
	CHECK_EQ(weft_error_code_at(nested, 0), -EPIPE);
	for (int i = 0; i < NKIDS; i++)
		weft_error_free(res[i].error);
	return 0;
}

WEFT_TEST_ROOT(combine, gather_return_errors_keeps_every_slot,
	gather_keep_root, NULL)

/* The task whose gather gets cancelled. */
struct canceller_case {
	struct shared sh;
	struct kid kids[NKIDS];
	unsigned flags;
	int rc;
	int cleanups_at_return;
};

static int gatherer(void *arg)
{
	struct canceller_case *cc = arg;
	weft_call_t calls[NKIDS];
	for (int i = 0; i < NKIDS; i++)
		calls[i] = (weft_call_t){ kid_forever, &cc->kids[i], NULL };
	weft_gather_result_t res[NKIDS];
	cc->rc = weft_gather(calls, NKIDS, cc->flags, res, NULL);
	cc->cleanups_at_return = atomic_load(&cc->sh.cleanups);
	for (int i = 0; i < NKIDS; i++)
		CHECK_EQ(res[i].rc, -ECANCELED);
	return cc->rc;
}

static int gather_cancel_root(void *arg)
{
	unsigned flags = (unsigned)(uintptr_t)arg;
	struct canceller_case cc = { .flags = flags };
	kids_init(cc.kids, NKIDS, &cc.sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, gatherer, &cc);
	await_arrivals(&cc.sh, NKIDS);
	CHECK_EQ(weft_task_cancel(h), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(cc.rc, -ECANCELED);
	CHECK_EQ(cc.cleanups_at_return, NKIDS);
	CHECK_EQ(weft_task_state(h), WEFT_TASK_CANCELLED);
	weft_task_release(h);
	return 0;
}

static void test_combine__cancelling_the_caller_cancels_and_joins_gather(
	void **state)
{
	weft_test_root(state, gather_cancel_root, (void *)(uintptr_t)0);
	weft_test_root(state, gather_cancel_root,
		(void *)(uintptr_t)WEFT_GATHER_RETURN_ERRORS);
}

static int gather_deadline_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	weft_call_t calls[3];
	for (int i = 0; i < 3; i++)
		calls[i] = (weft_call_t){ kid_forever, &kids[i], NULL };
	weft_scope_t *s;
	CHECK_EQ(weft_fail_after(&s, 2 * WEFT_MSEC), 0);
	weft_gather_result_t res[3];
	CHECK_EQ(weft_gather(calls, 3, 0, res, NULL), -ECANCELED);
	CHECK_EQ(atomic_load(&sh.cleanups), 3);
	CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(combine, gather_obeys_an_enclosing_deadline,
	gather_deadline_root, NULL)

static int gather_cancelled_on_entry_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid k = { .sh = &sh };
	weft_call_t call = { kid_value, &k, NULL };
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, "test"), 0);
	weft_gather_result_t res;
	void *v = NULL;
	CHECK_EQ(weft_gather(&call, 1, 0, &res, NULL), -ECANCELED);
	CHECK_EQ(res.rc, -ECANCELED);
	CHECK_EQ(weft_race(&call, 1, &v, NULL, NULL), -ECANCELED);
	CHECK_EQ(weft_gather(NULL, 0, 0, NULL, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	CHECK_EQ(atomic_load(&sh.ran), 0);  /* nothing was created */
	CHECK_EQ(weft_gather(NULL, 0, 0, NULL, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(combine, cancelled_on_entry_creates_nothing,
	gather_cancelled_on_entry_root, NULL)

/* }======================================================= */

/* {======================================================= race */

static int race_win_root(void *arg)
{
	(void)arg;
	struct shared sh = { .rendezvous = 4 };
	struct kid kids[4];
	kids_init(kids, 4, &sh);
	weft_call_t calls[4] = {
		{ kid_value, &kids[0], "fails" },
		{ kid_forever, &kids[1], "loser1" },
		{ kid_value, &kids[2], "wins" },
		{ kid_slow_cleanup, &kids[3], "loser2" },
	};
	kids[0].code = -EIO;  /* a failure cancels nothing */
	kids[2].sleep = WEFT_MSEC;
	void *v = NULL;
	size_t w = 99;
	weft_error_t *err = (weft_error_t *)&sh;
	CHECK_EQ(weft_race(calls, 4, &v, &w, &err), 0);
	CHECK_EQ(w, 2);
	CHECK(v == &sh.vals[2]);
	CHECK(err == NULL);
	/* Both losers were cancelled and had finished cleaning up. */
	CHECK_EQ(atomic_load(&sh.cleanups), 2);
	CHECK_EQ(weft_checkpoint(), 0);  /* the caller is not cancelled */
	return 0;
}

WEFT_TEST_ROOT(combine, race_first_success_wins_and_losers_are_joined,
	race_win_root, NULL)

static int race_all_fail_root(void *arg)
{
	(void)arg;
	struct shared sh = { .rendezvous = 3 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	static const int codes[3] = { -EIO, -ENOENT, -EPIPE };
	weft_call_t calls[3];
	for (int i = 0; i < 3; i++) {
		kids[i].code = codes[i];
		kids[i].sleep = (3 - i) * WEFT_MSEC / 2;  /* last fails first */
		calls[i] = (weft_call_t){ kid_value, &kids[i], NULL };
	}
	void *v = &sh;
	weft_error_t *err = NULL;
	CHECK_EQ(weft_race(calls, 3, &v, NULL, &err), WEFT_ECHILD_FAILED);
	CHECK(v == &sh);  /* untouched */
	CHECK_EQ(atomic_load(&sh.cleanups), 0);  /* nobody was cancelled */
	CHECK_EQ(weft_error_count(err), 3);
	for (size_t i = 0; i < 3; i++) {  /* in call order */
		CHECK_EQ(weft_error_code_at(err, i), codes[i]);
		CHECK(strcmp(weft_error_task_name_at(err, i), "race") == 0);
	}
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(combine, race_all_failed_aggregates, race_all_fail_root, NULL)

static int race_cancel_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	weft_call_t calls[3];
	for (int i = 0; i < 3; i++)
		calls[i] = (weft_call_t){ kid_forever, &kids[i], NULL };
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, 2 * WEFT_MSEC), 0);
	CHECK_EQ(weft_race(calls, 3, NULL, NULL, NULL), -ECANCELED);
	CHECK_EQ(atomic_load(&sh.cleanups), 3);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(combine, cancelled_race_cancels_and_joins_everyone,
	race_cancel_root, NULL)

/* }======================================================= */

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
	h[1] = weft_test_spawn(g, kid_value, &kids[1]);  /* ends at once */
	h[2] = weft_test_spawn(g, kid_gated, &kids[2]);
	bool done[3] = { true, true, true };
	CHECK_EQ(weft_wait(h, 3, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER,
		done), 0);
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

WEFT_TEST_ROOT(combine, wait_first_completed_leaves_the_rest_pending,
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
	h[1] = weft_test_spawn(inner, kid_value, &kids[1]);  /* fails later */
	/* The failure cancels the inner group, whose scope the owner is in:
	 * a shield keeps that from cutting the wait short. */
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	/* h[0] ends first (without this, a slow machine may run it only
	 * after h[1]'s 2 ms sleep and failure: seen once under TSan). */
	CHECK_EQ(weft_task_wait(h[0]), 0);
	bool done[3];
	CHECK_EQ(weft_wait(h, 3, WEFT_WAIT_FIRST_EXCEPTION, WEFT_FOREVER,
		done), 0);
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

WEFT_TEST_ROOT(combine, wait_first_exception_returns_on_a_failure,
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
	CHECK_EQ(weft_wait(h, 3, WEFT_WAIT_FIRST_EXCEPTION, WEFT_FOREVER,
		done), 0);
	for (int i = 0; i < 3; i++) {
		CHECK(done[i]);
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 3; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(combine, wait_first_exception_without_failure_waits_for_all,
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
	h[NKIDS + 3] = h[0];  /* duplicates are allowed */
	bool done[NKIDS + 4];
	CHECK_EQ(weft_wait(h, NKIDS + 4, WEFT_WAIT_ALL_COMPLETED, WEFT_FOREVER,
		done), 0);
	for (int i = 0; i < NKIDS + 4; i++) {
		CHECK(done[i]);
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < NKIDS + 3; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(combine, wait_all_completed_waits_for_every_task,
	wait_all_root, NULL)

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
			done), 0);
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

WEFT_TEST_ROOT(combine, wait_timeout_is_not_an_error_and_cancels_nothing,
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
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);  /* likely parked by now */
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
		done), -ECANCELED);
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

WEFT_TEST_ROOT(combine, cancelled_wait_returns_ecanceled,
	wait_cancelled_root, NULL)

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
	CHECK_EQ(weft_checkpoint(), 0);  /* the caller is not cancelled */
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(h);
	weft_task_release(h2);
	return 0;
}

WEFT_TEST_ROOT(combine, wait_for_timeout_cancels_and_waits_for_the_task,
	wait_for_timeout_root, NULL)

static int wait_for_ok_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[2];
	kids_init(kids, 2, &sh);
	kids[0].sleep = WEFT_MSEC;
	kids[1].code = -EIO;  /* once the gate opens: after `ok` ended */
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

WEFT_TEST_ROOT(combine, wait_for_returns_the_outcome_in_time,
	wait_for_ok_root, NULL)

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

WEFT_TEST_ROOT(combine, cancelled_wait_for_cancels_and_waits_for_the_task,
	wait_for_cancel_root, NULL)

/* }======================================================= */

/* {======================================================= as_completed */

static int kid_ranked(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	/* Different sleeps, and never before the consumer took every task
	 * ranked before this one: completion order = rank, whatever the
	 * machine's timing. */
	CHECK_EQ(weft_sleep((k->rank + 1) * WEFT_MSEC / 2), 0);
	CHECK_EQ(wait_flag(&k->sh->consumed, k->rank), 0);
	weft_task_set_result(&k->sh->vals[k->i]);
	return 0;
}

static int as_completed_order_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[NKIDS];
	kids_init(kids, NKIDS, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[NKIDS];
	for (int i = 0; i < NKIDS; i++) {
		kids[i].rank = NKIDS - 1 - i;  /* the last one ends first */
		h[i] = weft_test_spawn(g, kid_ranked, &kids[i]);
	}
	weft_as_completed_t *it;
	CHECK_EQ(weft_as_completed_open(&it, h, NKIDS), 0);
	for (int j = 0; j < NKIDS; j++) {
		size_t idx = 99;
		weft_task_t *got = NULL;
		CHECK_EQ(weft_as_completed_next(it, &idx, &got), 0);
		CHECK_EQ(idx, NKIDS - 1 - j);
		CHECK(got == h[NKIDS - 1 - j]);
		void *v = NULL;
		CHECK_EQ(weft_task_result(got, &v), 0);
		CHECK(v == &sh.vals[NKIDS - 1 - j]);
		atomic_store(&sh.consumed, j + 1);
	}
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	weft_as_completed_close(it);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < NKIDS; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(combine, as_completed_yields_in_completion_order,
	as_completed_order_root, NULL)

static int as_completed_ended_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[4];
	kids_init(kids, 4, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[4];
	for (int i = 0; i < 4; i++)
		h[i] = weft_test_spawn(g, kid_value, &kids[i]);
	bool done[4];
	CHECK_EQ(weft_wait(h, 4, WEFT_WAIT_ALL_COMPLETED, WEFT_FOREVER,
		done), 0);
	/* All ended before the first next(): lowest index first, each
	 * exactly once. */
	weft_as_completed_t *it;
	CHECK_EQ(weft_as_completed_open(&it, h, 4), 0);
	for (size_t j = 0; j < 4; j++) {
		size_t idx = 99;
		CHECK_EQ(weft_as_completed_next(it, &idx, NULL), 0);
		CHECK_EQ(idx, j);
	}
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	weft_as_completed_close(it);
	/* An empty iterator ends at once. */
	CHECK_EQ(weft_as_completed_open(&it, NULL, 0), 0);
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	weft_as_completed_close(it);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 4; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(combine, as_completed_yields_ended_tasks_by_index,
	as_completed_ended_root, NULL)

struct foreign_next {
	weft_as_completed_t *it;
	int rc;
};

static int foreign_next_task(void *arg)
{
	struct foreign_next *f = arg;
	f->rc = weft_as_completed_next(f->it, NULL, NULL);
	return 0;
}

static int as_completed_early_close_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[3];
	h[0] = weft_test_spawn(g, kid_gated, &kids[0]);
	h[1] = weft_test_spawn(g, kid_value, &kids[1]);
	h[2] = weft_test_spawn(g, kid_gated, &kids[2]);
	weft_as_completed_t *it;
	CHECK_EQ(weft_as_completed_open(&it, h, 3), 0);
	size_t idx = 99;
	CHECK_EQ(weft_as_completed_next(it, &idx, NULL), 0);
	CHECK_EQ(idx, 1);
	/* Another task may not use the iterator. */
	struct foreign_next f = { it, 0 };
	weft_task_t *fh = weft_test_spawn(g, foreign_next_task, &f);
	CHECK_EQ(weft_task_wait(fh), 0);
	CHECK_EQ(f.rc, WEFT_EMISUSE);
	weft_task_release(fh);
	/* A deadline cuts next() short; nothing is yielded or cancelled. */
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, WEFT_MSEC), 0);
	CHECK_EQ(weft_as_completed_next(it, &idx, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	/* Closed early: the rest keep running, owned by their group. */
	weft_as_completed_close(it);
	CHECK_EQ(weft_task_state(h[0]), WEFT_TASK_PENDING);
	CHECK_EQ(weft_task_state(h[2]), WEFT_TASK_PENDING);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&sh.cleanups), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
		weft_task_release(h[i]);
	}
	return 0;
}

WEFT_TEST_ROOT(combine, as_completed_closed_early_leaves_tasks_alone,
	as_completed_early_close_root, NULL)

/* Many tasks ending at random moments on every worker while the consumer
 * takes them: each is yielded exactly once and only after it ended, and
 * an iterator closed with tasks still running is freed by their ends
 * (the leak check after each run). */
struct ac_stress_kid {
	uint64_t seed;
	atomic_int ended;
};

static int ac_stress_kid(void *arg)
{
	struct ac_stress_kid *k = arg;
	uint64_t r = weft_test_rand(&k->seed);
	if (r % 3 == 0)
		CHECK_EQ(weft_sleep((int64_t)(r % 200) * 1000), 0);
	for (uint64_t i = 0; i < r % 4; i++)
		CHECK_EQ(weft_yield(), 0);
	atomic_store(&k->ended, 1);
	return 0;
}

static int as_completed_stress_root(void *arg)
{
	(void)arg;
	size_t n = (size_t)weft_test_scale(2000);
	uint64_t seed = weft_test_seed() | 1;
	struct ac_stress_kid *kids = calloc(n, sizeof *kids);
	weft_task_t **h = calloc(n, sizeof *h);
	unsigned char *seen = calloc(n, 1);
	CHECK(kids && h && seen);
	for (int round = 0; round < 4; round++) {
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (size_t i = 0; i < n; i++) {
			kids[i].seed = weft_test_rand(&seed) | 1;
			atomic_init(&kids[i].ended, 0);
			seen[i] = 0;
			h[i] = weft_test_spawn(g, ac_stress_kid, &kids[i]);
		}
		weft_as_completed_t *it;
		CHECK_EQ(weft_as_completed_open(&it, h, n), 0);
		/* Rounds 0 and 1 take everything; 2 and 3 stop early. */
		size_t take = round < 2 ? n :
			(size_t)(weft_test_rand(&seed) % n);
		for (size_t j = 0; j < take; j++) {
			size_t idx = n;
			weft_task_t *got = NULL;
			CHECK_EQ(weft_as_completed_next(it, &idx, &got), 0);
			CHECK(idx < n);
			CHECK(got == h[idx]);
			CHECK_EQ(seen[idx], 0);
			seen[idx] = 1;
			CHECK_EQ(atomic_load(&kids[idx].ended), 1);
			CHECK(weft_task_state(got) == WEFT_TASK_FINISHED);
		}
		if (take == n)
			CHECK_EQ(weft_as_completed_next(it, NULL, NULL),
				WEFT_EEND);
		weft_as_completed_close(it);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		for (size_t i = 0; i < n; i++)
			weft_task_release(h[i]);
	}
	free(kids);
	free(h);
	free(seen);
	return 0;
}

WEFT_TEST_ROOT(combine, as_completed_under_load_yields_each_once,
	as_completed_stress_root, NULL)

/* }======================================================= */

/* {======================================================= misuse */

static int dummy_fn(void *arg)
{
	(void)arg;
	return 0;
}

static int misuse_root(void *arg)
{
	(void)arg;
	weft_call_t call = { dummy_fn, NULL, NULL };
	weft_call_t nofn = { NULL, NULL, NULL };
	weft_gather_result_t res;
	CHECK_EQ(weft_gather(NULL, 1, 0, &res, NULL), -EINVAL);
	CHECK_EQ(weft_gather(&call, 1, 0, NULL, NULL), -EINVAL);
	CHECK_EQ(weft_gather(&nofn, 1, 0, &res, NULL), -EINVAL);
	CHECK_EQ(weft_gather(&call, 1, 0x80, &res, NULL), -EINVAL);
	CHECK_EQ(weft_gather(NULL, 0, 0, NULL, NULL), 0);
	CHECK_EQ(weft_race(NULL, 1, NULL, NULL, NULL), -EINVAL);
	CHECK_EQ(weft_race(&call, 0, NULL, NULL, NULL), -EINVAL);
	CHECK_EQ(weft_race(&nofn, 1, NULL, NULL, NULL), -EINVAL);
	/* A race with nothing to set still runs. */
	size_t w = 9;
	CHECK_EQ(weft_race(&call, 1, NULL, &w, NULL), 0);
	CHECK_EQ(w, 0);

	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	struct shared sh = { 0 };
	struct kid k = { .sh = &sh };
	weft_task_t *h = weft_test_spawn(g, kid_value, &k);
	weft_task_t *hs[2] = { h, NULL };
	bool done[2];
	CHECK_EQ(weft_wait(NULL, 1, WEFT_WAIT_FIRST_COMPLETED, 0, done),
		-EINVAL);
	CHECK_EQ(weft_wait(hs, 1, WEFT_WAIT_FIRST_COMPLETED, 0, NULL),
		-EINVAL);
	CHECK_EQ(weft_wait(hs, 0, WEFT_WAIT_FIRST_COMPLETED, 0, done),
		-EINVAL);
	CHECK_EQ(weft_wait(hs, 2, WEFT_WAIT_FIRST_COMPLETED, 0, done),
		-EINVAL);
	CHECK_EQ(weft_wait(hs, 1, (weft_wait_mode_t)7, 0, done), -EINVAL);
	CHECK_EQ(weft_wait_for(NULL, 0, NULL), -EINVAL);
	weft_as_completed_t *it = NULL;
	CHECK_EQ(weft_as_completed_open(NULL, hs, 1), -EINVAL);
	CHECK_EQ(weft_as_completed_open(&it, NULL, 1), -EINVAL);
	CHECK_EQ(weft_as_completed_open(&it, hs, 2), -EINVAL);
	CHECK(it == NULL);
	CHECK_EQ(weft_as_completed_next(NULL, NULL, NULL), -EINVAL);
	weft_as_completed_close(NULL);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(h);
	return 0;
}

WEFT_TEST_ROOT(combine, null_and_bad_arguments_give_einval, misuse_root, NULL)

struct self_case {
	_Atomic(weft_task_t *) me;
};

static int self_waiter(void *arg)
{
	struct self_case *sc = arg;
	weft_task_t *me;
	while ((me = atomic_load(&sc->me)) == NULL)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 4), 0);
	bool done;
	CHECK_EQ(weft_wait(&me, 1, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER,
		&done), WEFT_EMISUSE);
	CHECK_EQ(weft_wait_for(me, WEFT_FOREVER, NULL), WEFT_EMISUSE);
	weft_as_completed_t *it = NULL;
	CHECK_EQ(weft_as_completed_open(&it, &me, 1), WEFT_EMISUSE);
	CHECK(it == NULL);
	return 0;
}

static int self_root(void *arg)
{
	(void)arg;
	struct self_case sc = { NULL };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, self_waiter, &sc);
	atomic_store(&sc.me, h);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(h);
	return 0;
}

WEFT_TEST_ROOT(combine, waiting_on_yourself_is_misuse, self_root, NULL)

/* Two runtimes: a task of one is handed to a task of the other. */
struct two_rt {
	_Atomic(weft_task_t *) foreign;
	atomic_int checked;
	weft_runtime_t *b;
	int b_rc;
};

static int foreign_root(void *arg)
{
	struct two_rt *tr = arg;
	struct shared sh = { 0 };
	struct kid k = { .sh = &sh };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, kid_gated, &k);
	atomic_store(&tr->foreign, h);
	CHECK_EQ(wait_flag(&tr->checked, 1), 0);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(h);
	return 0;
}

static void *foreign_thread(void *arg)
{
	struct two_rt *tr = arg;
	tr->b_rc = weft_runtime_run(tr->b, foreign_root, tr, NULL);
	return NULL;
}

static int other_runtime_root(void *arg)
{
	struct two_rt *tr = arg;
	weft_task_t *h;
	while ((h = atomic_load(&tr->foreign)) == NULL)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 4), 0);
	bool done;
	CHECK_EQ(weft_wait(&h, 1, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER,
		&done), WEFT_EMISUSE);
	CHECK_EQ(weft_wait_for(h, WEFT_FOREVER, NULL), WEFT_EMISUSE);
	weft_as_completed_t *it = NULL;
	CHECK_EQ(weft_as_completed_open(&it, &h, 1), WEFT_EMISUSE);
	atomic_store(&tr->checked, 1);
	return 0;
}

static void test_combine__handles_of_another_runtime_are_misuse(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct two_rt tr = { NULL };
	weft_runtime_t *a = weft_test_runtime_create(workers);
	tr.b = weft_test_runtime_create(workers);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, foreign_thread, &tr), 0);
	assert_int_equal(weft_runtime_run(a, other_runtime_root, &tr, NULL), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(tr.b_rc, 0);
	assert_int_equal(weft_runtime_destroy(a), 0);
	assert_int_equal(weft_runtime_destroy(tr.b), 0);
	/* CHECK failures inside tasks are reported by the next run. */
	weft_test_root(state, dummy_fn, NULL);
}

static void test_combine__plain_thread_gets_enotfiber(void **state)
{
	(void)state;
	/* Never dereferenced: the fiber check comes first. */
	weft_task_t *fake = (weft_task_t *)&fake;
	weft_call_t call = { dummy_fn, NULL, NULL };
	weft_gather_result_t res;
	bool done;
	assert_int_equal(weft_gather(&call, 1, 0, &res, NULL), WEFT_ENOTFIBER);
	assert_int_equal(weft_race(&call, 1, NULL, NULL, NULL),
		WEFT_ENOTFIBER);
	assert_int_equal(weft_wait(&fake, 1, WEFT_WAIT_FIRST_COMPLETED,
		WEFT_FOREVER, &done), WEFT_ENOTFIBER);
	assert_int_equal(weft_wait_for(fake, 0, NULL), WEFT_ENOTFIBER);
	weft_as_completed_t *it = NULL;
	assert_int_equal(weft_as_completed_open(&it, &fake, 1),
		WEFT_ENOTFIBER);
	assert_null(it);
	assert_int_equal(weft_as_completed_next((weft_as_completed_t *)&fake,
		NULL, NULL), WEFT_ENOTFIBER);
}

/* }======================================================= */

/* {======================================================= out of memory */

/* Each scenario runs its call with the k-th allocation from just before
 * it failing, and records what it saw; the loop ends at the first k for
 * which nothing was injected.  Any allocation may be hit, also one made
 * by another thread meanwhile (a child's stack: that child then ends
 * with -ENOMEM before running), so the checks accept every documented
 * outcome and require that it is consistent; the leak check of every
 * run does the rest. */
enum { ANKIDS = 4 };

struct afail {
	long k;
	int scenario;
	int rc;        /* what the call returned */
	bool partial;  /* -ENOMEM after some task had run */
	struct shared sh;
	struct kid kids[10];
};

/* Every leaf of err (recursively) has code -ENOMEM or `also`. */
static bool leaves_are(const weft_error_t *err, int also)
{
	for (size_t i = 0; i < weft_error_count(err); i++) {
		const weft_error_t *n = weft_error_nested_at(err, i);
		int code = weft_error_code_at(err, i);
		if (n ? !leaves_are(n, also) : code != -ENOMEM && code != also)
			return false;
	}
	return true;
}

static void afail_gather(struct afail *a, unsigned flags)
{
	weft_call_t calls[ANKIDS];
	for (int i = 0; i < ANKIDS; i++)
		calls[i] = (weft_call_t){ kid_value, &a->kids[i], NULL };
	weft_gather_result_t res[ANKIDS];
	weft_error_t *err = NULL;
	weft_debug_fail_alloc(a->k);
	int rc = weft_gather(calls, ANKIDS, flags, res, &err);
	weft_debug_fail_alloc(0);
	a->rc = rc;
	a->partial = rc == -ENOMEM && res[0].rc == 0;
	for (int i = 0; i < ANKIDS; i++) {
		CHECK(res[i].rc == 0 || res[i].rc == -ENOMEM ||
			res[i].rc == -ECANCELED);
		if (res[i].rc == 0)
			CHECK(res[i].value == &a->sh.vals[i]);
		else
			CHECK(res[i].value == NULL);
		/* A failed slot has its error with the flag, else none. */
		CHECK_EQ(res[i].error != NULL,
			(flags != 0 && res[i].rc == -ENOMEM));
		if (res[i].error)
			CHECK(leaves_are(res[i].error, 0));
		weft_error_free(res[i].error);
		if (rc == 0 && flags == 0)
			CHECK_EQ(res[i].rc, 0);
	}
	if (rc == WEFT_ECHILD_FAILED) {
		CHECK_EQ(flags, 0);
		CHECK(err != NULL && leaves_are(err, 0));
	} else {
		CHECK(rc == 0 || rc == -ENOMEM);
		CHECK(err == NULL);
	}
	weft_error_free(err);
}

static void afail_race(struct afail *a)
{
	weft_call_t calls[ANKIDS];
	for (int i = 0; i < ANKIDS; i++) {
		a->kids[i].code = i == ANKIDS - 1 ? 0 : -EIO;
		calls[i] = (weft_call_t){ kid_value, &a->kids[i], NULL };
	}
	weft_error_t *err = NULL;
	void *v = NULL;
	size_t w = 99;
	weft_debug_fail_alloc(a->k);
	int rc = weft_race(calls, ANKIDS, &v, &w, &err);
	weft_debug_fail_alloc(0);
	a->rc = rc;
	if (rc == 0) {
		CHECK_EQ(w, ANKIDS - 1);
		CHECK(v == &a->sh.vals[ANKIDS - 1]);
	} else if (rc == WEFT_ECHILD_FAILED) {
		CHECK(err != NULL && leaves_are(err, -EIO));
	} else {
		CHECK_EQ(rc, -ENOMEM);
	}
	weft_error_free(err);
}

/* Waits on 10 gated tasks (more than the watches on the stack). */
static void afail_wait_or_iterate(struct afail *a, bool iterate)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[10];
	for (int i = 0; i < 10; i++)
		h[i] = weft_test_spawn(g, kid_gated, &a->kids[i]);
	/* A kid left without a stack fails and so cancels g, whose scope
	 * the root is in: shielded, the wait and next() still see the kids
	 * end instead of returning -ECANCELED. */
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	if (!iterate) {
		bool done[10];
		weft_debug_fail_alloc(a->k);
		int rc = weft_wait(h, 10, WEFT_WAIT_FIRST_COMPLETED,
			weft_now() + WEFT_MSEC / 2, done);
		weft_debug_fail_alloc(0);
		a->rc = rc;
		CHECK(rc == 0 || rc == -ENOMEM);
		atomic_store(&a->sh.gate, 1);
	} else {
		weft_as_completed_t *it = NULL;
		weft_debug_fail_alloc(a->k);
		int rc = weft_as_completed_open(&it, h, 10);
		weft_debug_fail_alloc(0);
		a->rc = rc;
		atomic_store(&a->sh.gate, 1);
		CHECK(rc == 0 || rc == -ENOMEM);
		if (rc == 0) {
			bool seen[10] = { false };
			size_t idx;
			for (int j = 0; j < 10; j++) {
				CHECK_EQ(weft_as_completed_next(it, &idx, NULL),
					0);
				CHECK(idx < 10 && !seen[idx]);
				if (idx < 10)
					seen[idx] = true;
			}
			CHECK_EQ(weft_as_completed_next(it, &idx, NULL),
				WEFT_EEND);
			weft_as_completed_close(it);
		} else {
			CHECK(it == NULL);
		}
	}
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	CHECK(jrc == 0 || (jrc == WEFT_ECHILD_FAILED && leaves_are(err, 0)));
	weft_error_free(err);
	for (int i = 0; i < 10; i++)
		weft_task_release(h[i]);
}

static int afail_root(void *arg)
{
	struct afail *a = arg;
	kids_init(a->kids, 10, &a->sh);
	switch (a->scenario) {
	case 0: afail_gather(a, 0); break;
	case 1: afail_gather(a, WEFT_GATHER_RETURN_ERRORS); break;
	case 2: afail_race(a); break;
	case 3: afail_wait_or_iterate(a, false); break;
	default: afail_wait_or_iterate(a, true); break;
	}
	return 0;
}

static void test_combine__allocation_failure_is_clean(void **state)
{
	bool verbose = getenv("WEFT_COMBINE_VERBOSE") != NULL;
	for (int scenario = 0; scenario < 5; scenario++) {
		long k;
		bool enomem = false, partial = false;
		for (k = 1; k < 400; k++) {
			struct afail a = { .k = k, .scenario = scenario };
			long before = weft_debug_injected_failures();
			weft_test_root(state, afail_root, &a);
			enomem |= a.rc == -ENOMEM;
			partial |= a.partial;
			if (verbose)
				print_message("scenario %d k %ld: %s%s\n",
					scenario, k, weft_err_name(a.rc),
					a.partial ? " (partial)" : "");
			if (weft_debug_injected_failures() == before)
				break;
		}
		assert_true(k < 400);
		/* The call's own allocations were hit: for gather and race
		 * the first one (nothing else allocates then), and for gather
		 * also the creation of a task after others had run. */
		if (scenario <= 2)
			assert_true(enomem);
		if (scenario <= 1)
			assert_true(partial);
	}
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_combine__gather_returns_results_in_call_order),
		WEFT_TEST(test_combine__gather_first_failure_cancels_siblings_and_aggregates),
		WEFT_TEST(test_combine__gather_return_errors_keeps_every_slot),
		WEFT_TEST(test_combine__cancelling_the_caller_cancels_and_joins_gather),
		WEFT_TEST(test_combine__gather_obeys_an_enclosing_deadline),
		WEFT_TEST(test_combine__cancelled_on_entry_creates_nothing),
		WEFT_TEST(test_combine__race_first_success_wins_and_losers_are_joined),
		WEFT_TEST(test_combine__race_all_failed_aggregates),
		WEFT_TEST(test_combine__cancelled_race_cancels_and_joins_everyone),
		WEFT_TEST(test_combine__wait_first_completed_leaves_the_rest_pending),
		WEFT_TEST(test_combine__wait_first_exception_returns_on_a_failure),
		WEFT_TEST(test_combine__wait_first_exception_without_failure_waits_for_all),
		WEFT_TEST(test_combine__wait_all_completed_waits_for_every_task),
		WEFT_TEST(test_combine__wait_timeout_is_not_an_error_and_cancels_nothing),
		WEFT_TEST(test_combine__cancelled_wait_returns_ecanceled),
		WEFT_TEST(test_combine__wait_for_timeout_cancels_and_waits_for_the_task),
		WEFT_TEST(test_combine__wait_for_returns_the_outcome_in_time),
		WEFT_TEST(test_combine__cancelled_wait_for_cancels_and_waits_for_the_task),
		WEFT_TEST(test_combine__as_completed_yields_in_completion_order),
		WEFT_TEST(test_combine__as_completed_yields_ended_tasks_by_index),
		WEFT_TEST(test_combine__as_completed_closed_early_leaves_tasks_alone),
		WEFT_TEST(test_combine__as_completed_under_load_yields_each_once),
		WEFT_TEST(test_combine__null_and_bad_arguments_give_einval),
		WEFT_TEST(test_combine__waiting_on_yourself_is_misuse),
		WEFT_TEST(test_combine__handles_of_another_runtime_are_misuse),
		cmocka_unit_test(test_combine__plain_thread_gets_enotfiber),
		WEFT_TEST(test_combine__allocation_failure_is_clean),
	};
	return WEFT_RUN_TESTS(tests);
}
