/* gather and race (include/weft/combine.h): both run an array of calls
 * as the tasks of a private group.  gather returns every result in call
 * order; its first failure cancels the siblings and the errors are
 * aggregated, or with WEFT_GATHER_RETURN_ERRORS every slot holds a result
 * or an error and nothing is cancelled (docs/semantics.md rule 35).  race
 * returns the first success, cancels and joins the losers, and aggregates
 * the errors if all fail (docs/semantics.md rule 33).  Cancelling the
 * caller cancels and joins the calls of either.  combine_fixture.h has
 * the kids they run. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "combine_fixture.h"
#include "support.h"

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

WEFT_TEST_ROOT(gather, returns_results_in_call_order, gather_order_root, NULL)

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

WEFT_TEST_ROOT(gather, first_failure_cancels_siblings_and_aggregates,
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
			 &err),
		0);
	CHECK(err == NULL);
	CHECK_EQ(atomic_load(&sh.cleanups), 0); /* nothing was cancelled */
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
	CHECK(strcmp(weft_error_message_at(res[0].error, 0), "kid 0 failed") ==
		0);
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

WEFT_TEST_ROOT(gather, return_errors_keeps_every_slot, gather_keep_root, NULL)

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

static void test_gather__cancelling_the_caller_cancels_and_joins_gather(
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

WEFT_TEST_ROOT(gather, obeys_an_enclosing_deadline, gather_deadline_root, NULL)

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
	CHECK_EQ(atomic_load(&sh.ran), 0); /* nothing was created */
	CHECK_EQ(weft_gather(NULL, 0, 0, NULL, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(gather, cancelled_on_entry_creates_nothing,
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
	kids[0].code = -EIO; /* a failure cancels nothing */
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
	CHECK_EQ(weft_checkpoint(), 0); /* the caller is not cancelled */
	return 0;
}

WEFT_TEST_ROOT(race, first_success_wins_and_losers_are_joined, race_win_root,
	NULL)

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
		kids[i].sleep = (3 - i) * WEFT_MSEC / 2; /* last fails first */
		calls[i] = (weft_call_t){ kid_value, &kids[i], NULL };
	}
	void *v = &sh;
	weft_error_t *err = NULL;
	CHECK_EQ(weft_race(calls, 3, &v, NULL, &err), WEFT_ECHILD_FAILED);
	CHECK(v == &sh);			/* untouched */
	CHECK_EQ(atomic_load(&sh.cleanups), 0); /* nobody was cancelled */
	CHECK_EQ(weft_error_count(err), 3);
	for (size_t i = 0; i < 3; i++) { /* in call order */
		CHECK_EQ(weft_error_code_at(err, i), codes[i]);
		CHECK(strcmp(weft_error_task_name_at(err, i), "race") == 0);
	}
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(race, all_failed_aggregates, race_all_fail_root, NULL)

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

WEFT_TEST_ROOT(race, cancelled_race_cancels_and_joins_everyone,
	race_cancel_root, NULL)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_gather__returns_results_in_call_order),
		WEFT_TEST(
			test_gather__first_failure_cancels_siblings_and_aggregates),
		WEFT_TEST(test_gather__return_errors_keeps_every_slot),
		WEFT_TEST(
			test_gather__cancelling_the_caller_cancels_and_joins_gather),
		WEFT_TEST(test_gather__obeys_an_enclosing_deadline),
		WEFT_TEST(test_gather__cancelled_on_entry_creates_nothing),
		WEFT_TEST(test_race__first_success_wins_and_losers_are_joined),
		WEFT_TEST(test_race__all_failed_aggregates),
		WEFT_TEST(test_race__cancelled_race_cancels_and_joins_everyone),
	};
	return WEFT_RUN_TESTS(tests);
}
