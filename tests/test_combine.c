/* What every combinator of include/weft/combine.h (gather, race, wait,
 * wait_for, as_completed) shares: bad arguments give -EINVAL, waiting on
 * yourself or on a task of another runtime is misuse, a plain thread gets
 * WEFT_ENOTFIBER, and an allocation failure anywhere in a call leaves
 * nothing behind.  Each combinator on its own: test_gather.c (gather,
 * race), test_wait.c (wait, wait_for), test_as_completed.c;
 * combine_fixture.h has the kids they all run. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "combine_fixture.h"
#include "support.h"

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
	CHECK_EQ(weft_wait(hs, 1, WEFT_WAIT_FIRST_COMPLETED, 0, NULL), -EINVAL);
	CHECK_EQ(weft_wait(hs, 0, WEFT_WAIT_FIRST_COMPLETED, 0, done), -EINVAL);
	CHECK_EQ(weft_wait(hs, 2, WEFT_WAIT_FIRST_COMPLETED, 0, done), -EINVAL);
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
			 &done),
		WEFT_EMISUSE);
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
			 &done),
		WEFT_EMISUSE);
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
	assert_int_equal(weft_race(&call, 1, NULL, NULL, NULL), WEFT_ENOTFIBER);
	assert_int_equal(weft_wait(&fake, 1, WEFT_WAIT_FIRST_COMPLETED,
				 WEFT_FOREVER, &done),
		WEFT_ENOTFIBER);
	assert_int_equal(weft_wait_for(fake, 0, NULL), WEFT_ENOTFIBER);
	weft_as_completed_t *it = NULL;
	assert_int_equal(weft_as_completed_open(&it, &fake, 1), WEFT_ENOTFIBER);
	assert_null(it);
	assert_int_equal(weft_as_completed_next((weft_as_completed_t *)&fake,
				 NULL, NULL),
		WEFT_ENOTFIBER);
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
	int rc;	      /* what the call returned */
	bool partial; /* -ENOMEM after some task had run */
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
		WEFT_TEST(test_combine__null_and_bad_arguments_give_einval),
		WEFT_TEST(test_combine__waiting_on_yourself_is_misuse),
		WEFT_TEST(test_combine__handles_of_another_runtime_are_misuse),
		cmocka_unit_test(test_combine__plain_thread_gets_enotfiber),
		WEFT_TEST(test_combine__allocation_failure_is_clean),
	};
	return WEFT_RUN_TESTS(tests);
}
