/* Sleeps that give their stack back (weft_sleep_until_opts with
 * WEFT_SLEEP_RELEASE_STACK; ARCHITECTURE.md, "Parked-task memory"): the
 * pages holding a parked sleeper's stack go back to the kernel, which
 * mincore(2) shows from another task without touching them, and the
 * sleeper's locals are intact when it wakes, by its deadline or by a
 * cancel.  A dump shows the sleep without reading its stack; a task
 * that touches a released stack aborts a WEFT_DEBUG build; a block that
 * cannot be allocated leaves the sleep as an ordinary one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft.h>

#include "support.h"

#define NSLEEPERS 32
#define WORDS 40

struct sleepers {
	weft_group_t *g;
	_Atomic(uint64_t *) locals[NSLEEPERS];
	atomic_int published;
	atomic_int intact; /* sleepers whose locals survived */
	atomic_int rc_cancelled;
	atomic_int rc_ok;
	int64_t sleep_ns;
	unsigned flags;
	bool fail_block; /* fail the next allocation: the sleep's block */
};

struct sleeper_arg {
	struct sleepers *s;
	int index;
};

static uint64_t pattern(int index, int i)
{
	return 0x9e3779b97f4a7c15ull * (uint64_t)(index * WORDS + i + 1);
}

static int sleeper(void *arg)
{
	struct sleeper_arg *a = arg;
	struct sleepers *s = a->s;
	uint64_t local[WORDS];
	for (int i = 0; i < WORDS; i++)
		local[i] = pattern(a->index, i);
	atomic_store(&s->locals[a->index], local);
	atomic_fetch_add(&s->published, 1);
	if (s->fail_block)
		weft_debug_fail_alloc(1);
	int rc = weft_sleep_until_opts(weft_now() + s->sleep_ns, s->flags);
	/* Nobody else may look at local until now. */
	atomic_store(&s->locals[a->index], NULL);
	if (rc == -ECANCELED)
		atomic_fetch_add(&s->rc_cancelled, 1);
	else if (rc == 0)
		atomic_fetch_add(&s->rc_ok, 1);
	int ok = 1;
	for (int i = 0; i < WORDS; i++)
		ok &= local[i] == pattern(a->index, i);
	atomic_fetch_add(&s->intact, ok);
	return 0;
}

/* Released sleepers' pages, counted once every sleeper published. */
static int count_released(struct sleepers *s)
{
	int n = 0;
	for (int i = 0; i < NSLEEPERS; i++) {
		uint64_t *p = atomic_load(&s->locals[i]);
		if (p != NULL && weft_test_resident(p) == 0)
			n++;
	}
	return n;
}

static int spawn_sleepers(struct sleepers *s, struct sleeper_arg *args)
{
	CHECK_EQ(weft_group_open(&s->g), 0);
	for (int i = 0; i < NSLEEPERS; i++) {
		args[i] = (struct sleeper_arg){ s, i };
		CHECK_EQ(weft_group_spawn(s->g, sleeper, &args[i]), 0);
	}
	while (atomic_load(&s->published) < NSLEEPERS)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	return 0;
}

/* {======================================================= released */

/* Every sleeper's page goes back (polled: a sleeper publishes just
 * before it parks), and a cancel wakes them with their locals intact. */
static int released_root(void *arg)
{
	struct sleepers *s = arg;
	struct sleeper_arg args[NSLEEPERS];
	s->sleep_ns = 60 * WEFT_SEC;
	s->flags = WEFT_SLEEP_RELEASE_STACK;
	spawn_sleepers(s, args);
	int released = 0;
	for (int tries = 0; tries < 2000 && released < NSLEEPERS; tries++) {
		released = count_released(s);
		if (released < NSLEEPERS)
			CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	}
	CHECK_EQ(released, NSLEEPERS);
	CHECK_EQ(weft_group_cancel(s->g, NULL), 0);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	return 0;
}

static void test_sleep_release__pages_go_back_and_locals_survive_a_cancel(
	void **state)
{
	struct sleepers s = { 0 };
	weft_test_root(state, released_root, &s);
	assert_int_equal(atomic_load(&s.rc_cancelled), NSLEEPERS);
	assert_int_equal(atomic_load(&s.intact), NSLEEPERS);
}

/* Woken by their own deadlines (through the timer wheel, whose node is
 * in the heap block while the stack is gone). */
static int deadline_root(void *arg)
{
	struct sleepers *s = arg;
	struct sleeper_arg args[NSLEEPERS];
	s->sleep_ns = 20 * WEFT_MSEC;
	s->flags = WEFT_SLEEP_RELEASE_STACK;
	spawn_sleepers(s, args);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	return 0;
}

static void test_sleep_release__deadlines_wake_them_with_locals_intact(
	void **state)
{
	struct sleepers s = { 0 };
	weft_test_root(state, deadline_root, &s);
	assert_int_equal(atomic_load(&s.rc_ok), NSLEEPERS);
	assert_int_equal(atomic_load(&s.intact), NSLEEPERS);
}

/* Without the flag the pages stay (the control for the first test). */
static int kept_root(void *arg)
{
	struct sleepers *s = arg;
	struct sleeper_arg args[NSLEEPERS];
	s->sleep_ns = 60 * WEFT_SEC;
	s->flags = 0;
	spawn_sleepers(s, args);
	CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
	CHECK_EQ(count_released(s), 0);
	CHECK_EQ(weft_group_cancel(s->g, NULL), 0);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	return 0;
}

static void test_sleep_release__without_the_flag_the_pages_stay(void **state)
{
	struct sleepers s = { 0 };
	weft_test_root(state, kept_root, &s);
	assert_int_equal(atomic_load(&s.intact), NSLEEPERS);
}

/* }======================================================= */

/* {======================================================= misuse */

static int einval_root(void *arg)
{
	(void)arg;
	CHECK_EQ(weft_sleep_until_opts(weft_now() + WEFT_MSEC, 0x80u), -EINVAL);
	CHECK_EQ(weft_sleep_until_opts(weft_now() + WEFT_MSEC,
			 WEFT_SLEEP_RELEASE_STACK),
		0);
	/* Every int64 deadline: the past just checkpoints. */
	CHECK_EQ(weft_sleep_until_opts(INT64_MIN, WEFT_SLEEP_RELEASE_STACK), 0);
	return 0;
}

static void test_sleep_release__unknown_flags_are_einval(void **state)
{
	weft_test_root(state, einval_root, NULL);
	assert_int_equal(weft_sleep_until_opts(0, 0), WEFT_ENOTFIBER);
}

/* Out of memory for the block: an ordinary sleep, pages kept. */
static int oom_root(void *arg)
{
	struct sleepers *s = arg;
	CHECK_EQ(weft_group_open(&s->g), 0);
	struct sleeper_arg a = { s, 0 };
	s->sleep_ns = 60 * WEFT_SEC;
	s->flags = WEFT_SLEEP_RELEASE_STACK;
	s->fail_block = true;
	long before = weft_debug_injected_failures();
	CHECK_EQ(weft_group_spawn(s->g, sleeper, &a), 0);
	while (atomic_load(&s->published) < 1)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
	CHECK_EQ(weft_debug_injected_failures(), before + 1);
	CHECK_EQ(weft_test_resident(atomic_load(&s->locals[0])), 1);
	CHECK_EQ(weft_group_cancel(s->g, NULL), 0);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	return 0;
}

static void test_sleep_release__no_block_means_an_ordinary_sleep(void **state)
{
	(void)state;
	struct sleepers s = { 0 };
	assert_int_equal(weft_test_run(1, oom_root, &s), 0);
	assert_int_equal(atomic_load(&s.rc_cancelled), 1);
	assert_int_equal(atomic_load(&s.intact), 1);
}

/* }======================================================= */

/* {======================================================= dump */

struct dump_case {
	struct sleepers s;
	char text[16384];
	char json[32768];
	size_t text_len, json_len;
};

static int dump_root(void *arg)
{
	struct dump_case *d = arg;
	struct sleepers *s = &d->s;
	struct sleeper_arg args[NSLEEPERS];
	s->sleep_ns = 60 * WEFT_SEC;
	s->flags = WEFT_SLEEP_RELEASE_STACK;
	spawn_sleepers(s, args);
	for (int tries = 0; tries < 2000 && count_released(s) < NSLEEPERS;
		tries++)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, d->text,
			 sizeof d->text, &d->text_len),
		0);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, d->json,
			 sizeof d->json, &d->json_len),
		0);
	/* The dump read no released page. */
	CHECK_EQ(count_released(s), NSLEEPERS);
	CHECK_EQ(weft_group_cancel(s->g, NULL), 0);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	return 0;
}

static void test_sleep_release__a_dump_shows_them_without_reading_them(
	void **state)
{
	struct dump_case *d = calloc(1, sizeof *d);
	assert_non_null(d);
	weft_test_root(state, dump_root, d);
	assert_non_null(strstr(d->text, "waits_on=sleep"));
	assert_non_null(strstr(d->text, "stack=released"));
	assert_non_null(strstr(d->json, "\"stack_released\":true"));
	assert_int_equal(atomic_load(&d->s.intact), NSLEEPERS);
	free(d);
}

/* }======================================================= */

#ifdef WEFT_DEBUG
/* {======================================================= a broken promise */

static int toucher_root(void *arg)
{
	struct sleepers *s = arg;
	CHECK_EQ(weft_group_open(&s->g), 0);
	struct sleeper_arg a = { s, 0 };
	s->sleep_ns = 60 * WEFT_SEC;
	s->flags = WEFT_SLEEP_RELEASE_STACK;
	CHECK_EQ(weft_group_spawn(s->g, sleeper, &a), 0);
	while (atomic_load(&s->published) < 1 || count_released(s) < 1)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_test_dump_until("stack=released"), 0);
	/* Break the promise: write into the sleeper's locals. */
	uint64_t *p = atomic_load(&s->locals[0]);
	p[0] = 1;
	CHECK_EQ(weft_group_cancel(s->g, NULL), 0);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	return 0;
}

static void toucher_child(void *arg)
{
	(void)arg;
	struct sleepers s = { 0 };
	int rc = weft_test_run(2, toucher_root, &s);
	_exit(rc == 0 ? 0 : 1);
}

static void test_sleep_release__a_touch_aborts_naming_the_call(void **state)
{
	(void)state;
	char buf[8192];
	int status = weft_test_death(toucher_child, NULL, buf, sizeof buf);
	weft_test_assert_abort(status, buf,
		"weft_sleep_until_opts: the stack of task "
		"'sleeper' was read or written",
		NULL);
}

/* }======================================================= */
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_sleep_release__pages_go_back_and_locals_survive_a_cancel),
		WEFT_TEST(
			test_sleep_release__deadlines_wake_them_with_locals_intact),
		WEFT_TEST(test_sleep_release__without_the_flag_the_pages_stay),
		WEFT_TEST(test_sleep_release__unknown_flags_are_einval),
		cmocka_unit_test(
			test_sleep_release__no_block_means_an_ordinary_sleep),
		WEFT_TEST(
			test_sleep_release__a_dump_shows_them_without_reading_them),
#ifdef WEFT_DEBUG
		cmocka_unit_test(
			test_sleep_release__a_touch_aborts_naming_the_call),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
