/* weft_par (include/weft/par.h, runtime/core/par.c, docs/semantics.md
 * rule 52): both halves always run, exactly once; a half nobody took runs
 * as the caller, a taken one as a task of its own named "par" under the
 * caller's scopes and context; failures of both reach the caller, the
 * caller's own failure message is kept; a caller that parks gives its
 * offered half a task (the deterministic way to make a half taken, at
 * any worker count); a panic in a half run by the caller waits for the
 * taken one; a sleep that releases its stack keeps it inside a call. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

/* {======================================================= identity */

struct half {
	atomic_int ran;
	uint64_t id;
	char name[WEFT_TASK_NAME_MAX];
	uint64_t root_id; /* weft_root_task's id, seen from the half */
	void *local;	  /* the test key's value, seen from the half */
	int yield_first;  /* park before recording (gives the other a task) */
};

static weft_local_key_t *test_key;

static int half_record(void *arg)
{
	struct half *h = arg;
	if (h->yield_first)
		CHECK_EQ(weft_yield(), 0);
	atomic_fetch_add(&h->ran, 1);
	h->id = weft_current_task_id();
	snprintf(h->name, sizeof h->name, "%s",
		weft_task_name(weft_current_task()));
	h->root_id = weft_task_id(weft_root_task());
	void *v = NULL;
	CHECK_EQ(weft_local_get(test_key, &v), 0);
	h->local = v;
	return 0;
}

struct identity {
	struct half a, b;
	uint64_t caller_id;
	int rc;
};

static int identity_child(void *arg)
{
	struct identity *x = arg;
	x->caller_id = weft_current_task_id();
	static int value;
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(test_key, &value, &tok), 0);
	weft_error_t *err = (weft_error_t *)1;
	x->rc = weft_par(half_record, &x->a, half_record, &x->b, &err);
	CHECK(err == NULL);
	CHECK_EQ(weft_local_unbind(&tok), 0);
	return 0;
}

/* Runs identity_child as a child of the root (so that the root and the
 * caller differ). */
static int identity_root(void *arg)
{
	struct identity *x = arg;
	CHECK_EQ(weft_local_key_create(&test_key, NULL), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, identity_child, x), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_local_key_destroy(test_key), 0);
	return 0;
}

/* One worker, no switch: nobody takes the offer, and both halves are
 * plain calls of the caller. */
static void test_par__untaken_halves_run_as_the_caller(void **state)
{
	struct identity x = { 0 };
	weft_test_root(state, identity_root, &x);
	assert_int_equal(x.rc, 0);
	assert_int_equal(atomic_load(&x.a.ran), 1);
	assert_int_equal(atomic_load(&x.b.ran), 1);
	assert_true(x.a.id == x.caller_id);
	assert_true(x.b.id == x.caller_id);
	assert_true(x.a.local != NULL && x.b.local == x.a.local);
}

/* The first half parks before it records: the switch-out gives the
 * offered half a task (at any worker count), which runs under the name
 * "par", with the caller's context, below the caller in the tree. */
static void test_par__a_caller_that_parks_gives_its_offer_a_task(void **state)
{
	struct identity x = { 0 };
	x.a.yield_first = 1;
	weft_test_root(state, identity_root, &x);
	assert_int_equal(x.rc, 0);
	assert_int_equal(atomic_load(&x.a.ran), 1);
	assert_int_equal(atomic_load(&x.b.ran), 1);
	assert_true(x.a.id == x.caller_id);
	assert_true(x.b.id != x.caller_id);
	assert_string_equal(x.b.name, "par");
	assert_true(x.b.root_id == x.a.root_id);
	assert_true(x.b.root_id != x.caller_id);
	assert_true(x.b.local == x.a.local && x.a.local != NULL);
}

/* }======================================================= */

/* {======================================================= sums */

/* Sum of [lo, hi) by halving, with a seeded chance of a yield at each
 * leaf (so that, at several workers, offers are taken by thieves and by
 * switch-outs, and callers move between workers). */
struct range {
	long lo, hi;
	long long sum;
	unsigned yield_mod; /* a leaf yields when (lo % yield_mod) == 0 */
};

static int range_sum(void *arg)
{
	struct range *r = arg;
	if (r->hi - r->lo <= 4) {
		long long s = 0;
		for (long i = r->lo; i < r->hi; i++)
			s += i;
		r->sum = s;
		if (r->yield_mod && r->lo % r->yield_mod == 0)
			return weft_yield();
		return 0;
	}
	long mid = r->lo + (r->hi - r->lo) / 2;
	struct range a = { r->lo, mid, 0, r->yield_mod };
	struct range b = { mid, r->hi, 0, r->yield_mod };
	int rc = weft_par(range_sum, &a, range_sum, &b, NULL);
	r->sum = a.sum + b.sum;
	return rc;
}

struct sums {
	unsigned yield_mod;
	int rounds;
};

static int sums_root(void *arg)
{
	struct sums *s = arg;
	long n = weft_test_scale(200000);
	for (int k = 0; k < s->rounds; k++) {
		struct range r = { 0, n, 0, s->yield_mod };
		CHECK_EQ(range_sum(&r), 0);
		CHECK_EQ(r.sum, (long long)n * (n - 1) / 2);
	}
	return 0;
}

static void test_par__a_divided_sum_adds_up(void **state)
{
	weft_test_root(state, sums_root, &(struct sums){ 0, 5 });
}

static void test_par__a_divided_sum_adds_up_while_leaves_park(void **state)
{
	weft_test_root(state, sums_root, &(struct sums){ 7, 3 });
}

/* Deeper than the deque holds (core/par.h, WEFT__PAR_CAP): the deeper
 * calls offer nothing, and everything still runs once. */
struct chain {
	int depth;
	atomic_int *leaves;
};

static int chain_leaf(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

static int chain_step(void *arg)
{
	struct chain *c = arg;
	if (c->depth == 0)
		return 0;
	struct chain next = { c->depth - 1, c->leaves };
	return weft_par(chain_step, &next, chain_leaf, c->leaves, NULL);
}

static int chain_root(void *arg)
{
	(void)arg;
	atomic_int leaves = 0;
	struct chain c = { 300, &leaves };
	CHECK_EQ(chain_step(&c), 0);
	CHECK_EQ(atomic_load(&leaves), 300);
	return 0;
}

static void test_par__nesting_past_the_deque_runs_everything(void **state)
{
	/* 300 nested calls: a bigger stack than the default 64 KiB. */
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = WEFT_TEST_WORKERS(state);
	cfg.stack_size = 1024 * 1024;
	assert_int_equal(weft_test_run_cfg(&cfg, chain_root, NULL), 0);
}

/* }======================================================= */

/* {======================================================= failures */

struct fails {
	int a_rc, b_rc;	     /* what each half returns */
	bool a_yield;	     /* fa parks first: fb gets a task */
	bool caller_message; /* the caller set a message before the call */
	int rc;
	size_t count;
	int codes[2];
	char msgs[2][64];
	char names[2][32];
	char kept[64];
};

static int fail_a(void *arg)
{
	struct fails *f = arg;
	if (f->a_yield)
		CHECK_EQ(weft_yield(), 0);
	if (f->a_rc == 0 || f->a_rc == -ECANCELED)
		return f->a_rc;
	return weft_fail(f->a_rc, "a broke with %d", f->a_rc);
}

static int fail_b(void *arg)
{
	struct fails *f = arg;
	if (f->b_rc == 0 || f->b_rc == -ECANCELED)
		return f->b_rc;
	return weft_fail(f->b_rc, "b broke with %d", f->b_rc);
}

static int fails_child(void *arg)
{
	struct fails *f = arg;
	if (f->caller_message)
		(void)weft_fail(-EIO, "the caller's own");
	weft_error_t *err = NULL;
	f->rc = weft_par(fail_a, f, fail_b, f, &err);
	if (err != NULL) {
		f->count = weft_error_count(err);
		for (size_t i = 0; i < f->count && i < 2; i++) {
			f->codes[i] = weft_error_code_at(err, i);
			snprintf(f->msgs[i], sizeof f->msgs[i], "%s",
				weft_error_message_at(err, i));
			snprintf(f->names[i], sizeof f->names[i], "%s",
				weft_error_task_name_at(err, i));
		}
		weft_error_free(err);
	}
	/* The caller's own message is still its own: fail with it. */
	return f->caller_message ? -EIO : 0;
}

static int fails_root(void *arg)
{
	struct fails *f = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, fails_child, f), 0);
	weft_error_t *err = NULL;
	int rc = weft_group_join(g, &err);
	if (f->caller_message) {
		CHECK_EQ(rc, WEFT_ECHILD_FAILED);
		if (err != NULL)
			snprintf(f->kept, sizeof f->kept, "%s",
				weft_error_message_at(err, 0));
	} else {
		CHECK_EQ(rc, 0);
	}
	weft_error_free(err);
	return 0;
}

static void check_both_failed(struct fails *f)
{
	assert_int_equal(f->rc, WEFT_ECHILD_FAILED);
	assert_int_equal(f->count, 2);
	assert_int_equal(f->codes[0], -EPIPE);
	assert_int_equal(f->codes[1], -EBADF);
	assert_string_equal(f->msgs[0], "a broke with -32");
	assert_string_equal(f->msgs[1], "b broke with -9");
	assert_string_equal(f->names[0], "par");
	assert_string_equal(f->names[1], "par");
}

static void test_par__both_failures_reach_the_caller(void **state)
{
	struct fails f = { .a_rc = -EPIPE, .b_rc = -EBADF };
	weft_test_root(state, fails_root, &f);
	check_both_failed(&f);
}

static void test_par__a_taken_half_fails_into_the_call(void **state)
{
	struct fails f = { .a_rc = -EPIPE, .b_rc = -EBADF, .a_yield = true };
	weft_test_root(state, fails_root, &f);
	check_both_failed(&f);
}

static void test_par__the_callers_own_message_is_kept(void **state)
{
	struct fails f = { .a_rc = -EPIPE,
		.b_rc = -EBADF,
		.caller_message = true };
	weft_test_root(state, fails_root, &f);
	check_both_failed(&f);
	assert_string_equal(f.kept, "the caller's own");
}

static void test_par__one_failure_is_one_leaf(void **state)
{
	struct fails f = { .a_rc = 0, .b_rc = -EBADF, .a_yield = true };
	weft_test_root(state, fails_root, &f);
	assert_int_equal(f.rc, WEFT_ECHILD_FAILED);
	assert_int_equal(f.count, 1);
	assert_int_equal(f.codes[0], -EBADF);
	assert_string_equal(f.msgs[0], "b broke with -9");
}

static void test_par__a_cancelled_half_is_no_failure(void **state)
{
	struct fails f = { .a_rc = -ECANCELED, .b_rc = 0 };
	weft_test_root(state, fails_root, &f);
	assert_int_equal(f.rc, -ECANCELED);
	assert_int_equal(f.count, 0);
	struct fails g = { .a_rc = -ECANCELED, .b_rc = -EBADF };
	weft_test_root(state, fails_root, &g);
	assert_int_equal(g.rc, WEFT_ECHILD_FAILED);
	assert_int_equal(g.count, 1);
}

/* }======================================================= */

/* {======================================================= cancellation */

struct cancel_case {
	weft_scope_t *scope;
	int a_rc, b_rc, rc;
	atomic_int b_started;
};

/* fa: waits for the taken half to start, cancels the caller's scope,
 * then sleeps (cancelled). */
static int cancel_a(void *arg)
{
	struct cancel_case *c = arg;
	while (atomic_load(&c->b_started) == 0)
		CHECK_EQ(weft_yield(), 0);
	CHECK_EQ(weft_scope_cancel(c->scope, "test"), 0);
	c->a_rc = weft_sleep(60 * WEFT_SEC);
	return c->a_rc;
}

/* fb: a task by then (fa parked first); sleeps until cancelled. */
static int cancel_b(void *arg)
{
	struct cancel_case *c = arg;
	atomic_store(&c->b_started, 1);
	c->b_rc = weft_sleep(60 * WEFT_SEC);
	return c->b_rc;
}

static int cancel_root(void *arg)
{
	struct cancel_case *c = arg;
	CHECK_EQ(weft_scope_open(&c->scope, WEFT_FOREVER, 0), 0);
	c->rc = weft_par(cancel_a, c, cancel_b, c, NULL);
	CHECK_EQ(weft_scope_exit(c->scope), 0);
	weft_scope_destroy(c->scope);
	return 0;
}

static void test_par__cancelling_the_callers_scope_reaches_both(void **state)
{
	struct cancel_case c = { 0 };
	weft_test_root(state, cancel_root, &c);
	assert_int_equal(c.a_rc, -ECANCELED);
	assert_int_equal(c.b_rc, -ECANCELED);
	assert_int_equal(c.rc, -ECANCELED);
}

/* }======================================================= */

/* {======================================================= dump */

struct dump_case {
	weft_event_t *go;
	atomic_int b_parked;
	bool seen, seen_json;
};

static int dump_b(void *arg)
{
	struct dump_case *d = arg;
	atomic_store(&d->b_parked, 1);
	CHECK_EQ(weft_event_wait(d->go), 0);
	return 0;
}

/* Whether a snapshot shows the task named "par" parked on an event; it
 * has no group, and the caller (the calling task) is its parent. */
static bool half_parked_on_event(void)
{
	weft_task_info_t info[16];
	size_t count = 0;
	CHECK_EQ(weft_all_tasks(NULL, info, 16, &count), 0);
	for (size_t i = 0; i < count && i < 16; i++)
		if (strcmp(info[i].name, "par") == 0 &&
			info[i].parked_on != NULL &&
			strcmp(info[i].parked_on, "event") == 0) {
			CHECK_EQ(info[i].group_id, 0);
			CHECK_EQ(info[i].parent_id, weft_current_task_id());
			return true;
		}
	return false;
}

static int dump_a(void *arg)
{
	struct dump_case *d = arg;
	/* Park until the taken half is parked on the event (a snapshot says
	 * so), not for a time that a loaded machine could outlast. */
	while (atomic_load(&d->b_parked) == 0)
		CHECK_EQ(weft_yield(), 0);
	while (!half_parked_on_event())
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	static char buf[1 << 16];
	size_t len = 0;
	CHECK_EQ(weft_runtime_dump_buf(NULL, 0, buf, sizeof buf, &len), 0);
	/* Below its caller, parked on the event. */
	const char *caller = strstr(buf, "name=\"main\"");
	const char *half = strstr(buf,
		"name=\"par\" state=parked "
		"parked_on=\"event\"");
	d->seen = caller != NULL && half != NULL && half > caller;
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, buf, sizeof buf,
			 &len),
		0);
	d->seen_json = strstr(buf, "\"name\":\"par\"") != NULL;
	CHECK_EQ(weft_event_set(d->go), 0);
	return 0;
}

static int dump_root(void *arg)
{
	struct dump_case *d = arg;
	CHECK_EQ(weft_event_create(&d->go), 0);
	CHECK_EQ(weft_par(dump_a, d, dump_b, d, NULL), 0);
	weft_event_destroy(d->go);
	return 0;
}

static void test_par__a_taken_half_shows_in_the_dump(void **state)
{
	struct dump_case d = { 0 };
	weft_test_root(state, dump_root, &d);
	assert_true(d.seen);
	assert_true(d.seen_json);
}

/* }======================================================= */

/* {======================================================= panic */

struct panic_case {
	atomic_int b_done;
	int join_rc;
	int code;
	int b_done_at_join;
};

static int panic_b(void *arg)
{
	struct panic_case *p = arg;
	CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
	atomic_store(&p->b_done, 1);
	return 0;
}

static int panic_a(void *arg)
{
	(void)arg;
	CHECK_EQ(weft_yield(), 0); /* fb gets a task */
	weft_panic("a half run by the caller panics");
	return 0;
}

static int panic_child(void *arg)
{
	return weft_par(panic_a, arg, panic_b, arg, NULL);
}

static int panic_root(void *arg)
{
	struct panic_case *p = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, panic_child, p), 0);
	weft_error_t *err = NULL;
	p->join_rc = weft_group_join(g, &err);
	p->b_done_at_join = atomic_load(&p->b_done);
	if (err != NULL)
		p->code = weft_error_code_at(err, 0);
	weft_error_free(err);
	return 0;
}

/* The caller's end waits for the taken half, which writes into the
 * caller's abandoned frame. */
static void test_par__a_panic_in_the_caller_waits_for_the_taken_half(
	void **state)
{
	struct panic_case p = { 0 };
	weft_test_root(state, panic_root, &p);
	assert_int_equal(p.join_rc, WEFT_ECHILD_FAILED);
	assert_int_equal(p.code, WEFT_EPANIC);
	assert_int_equal(p.b_done_at_join, 1);
}

/* }======================================================= */

/* {======================================================= stacks */

struct release_case {
	volatile char local[64];
	atomic_int a_sleeping;
	int resident;
};

static int release_b(void *arg)
{
	struct release_case *r = arg;
	while (atomic_load(&r->a_sleeping) == 0)
		CHECK_EQ(weft_yield(), 0);
	/* A moment into the sleep, where a released stack is gone. */
	CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0);
	r->resident = weft_test_resident((const void *)r->local);
	return 0;
}

static int release_a(void *arg)
{
	struct release_case *r = arg;
	atomic_store(&r->a_sleeping, 1);
	return weft_sleep_until_opts(weft_now() + 50 * WEFT_MSEC,
		WEFT_SLEEP_RELEASE_STACK);
}

static int release_root(void *arg)
{
	(void)arg;
	/* The case lives in this frame: a released stack would take it. */
	struct release_case r = { .resident = -1 };
	r.local[0] = 1;
	CHECK_EQ(weft_par(release_a, &r, release_b, &r, NULL), 0);
	CHECK_EQ(r.resident, 1);
	CHECK_EQ(r.local[0], 1);
	return 0;
}

/* Inside a call, the taken half writes into the caller's frame: a sleep
 * that would release the caller's stack keeps it. */
WEFT_TEST_ROOT(par, a_releasing_sleep_inside_a_call_keeps_its_stack,
	release_root, NULL)

/* }======================================================= */

/* {======================================================= misuse */

static int nothing(void *arg)
{
	(void)arg;
	return 0;
}

static int misuse_root(void *arg)
{
	(void)arg;
	weft_error_t *err = (weft_error_t *)1;
	CHECK_EQ(weft_par(NULL, NULL, nothing, NULL, &err), -EINVAL);
	CHECK(err == NULL);
	CHECK_EQ(weft_par(nothing, NULL, NULL, NULL, NULL), -EINVAL);
	return 0;
}

static void test_par__misuse_is_refused(void **state)
{
	weft_test_root(state, misuse_root, NULL);
	/* Not a task: nothing runs. */
	atomic_int ran = 0;
	assert_int_equal(weft_par(chain_leaf, &ran, chain_leaf, &ran, NULL),
		WEFT_ENOTFIBER);
	assert_int_equal(atomic_load(&ran), 0);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST_AT(test_par__untaken_halves_run_as_the_caller, 1),
		WEFT_TEST(test_par__a_caller_that_parks_gives_its_offer_a_task),
		WEFT_TEST(test_par__a_divided_sum_adds_up),
		WEFT_TEST(test_par__a_divided_sum_adds_up_while_leaves_park),
		WEFT_TEST(test_par__nesting_past_the_deque_runs_everything),
		WEFT_TEST(test_par__both_failures_reach_the_caller),
		WEFT_TEST(test_par__a_taken_half_fails_into_the_call),
		WEFT_TEST(test_par__the_callers_own_message_is_kept),
		WEFT_TEST(test_par__one_failure_is_one_leaf),
		WEFT_TEST(test_par__a_cancelled_half_is_no_failure),
		WEFT_TEST(test_par__cancelling_the_callers_scope_reaches_both),
		WEFT_TEST(test_par__a_taken_half_shows_in_the_dump),
		WEFT_TEST(
			test_par__a_panic_in_the_caller_waits_for_the_taken_half),
		WEFT_TEST(
			test_par__a_releasing_sleep_inside_a_call_keeps_its_stack),
		WEFT_TEST_AT(test_par__misuse_is_refused, 1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
