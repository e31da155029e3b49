/* Tests for the stall watchdog (weft_config_t.stall_ms, WEFT_STALL_MS;
 * runtime/core/stall.c): a task that runs without a checkpoint is
 * reported once per stall, with its backtrace taken on its worker; a task
 * that yields is not; a shielded scope left open is reported once; with
 * the watchdog off nothing is; without the backtrace signal (blocked by
 * the creating thread, or handled by the program) the stall is reported
 * without name and backtrace.
 *
 * The reports go to stderr: each test points fd 2 at a temporary file
 * while the runtime lives, then counts the report lines, and writes what
 * it caught back to stderr so that a sanitizer's report is not lost.
 * Times have wide margins (a spin lasts ten thresholds), since the machine
 * may be loaded: nothing here asserts a speed, and "no report" is only
 * asserted where the threshold is far above any plausible preemption. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>

#include <weft.h>

#include "support.h"

/* The backtrace signal (runtime/core/stall.h, weft/runtime.h). */
#define STALL_SIGNAL (SIGRTMIN + 6)

/* {======================================================= helpers */

struct capture {
	FILE *file;
	int saved;
};

static void capture_begin(struct capture *c)
{
	fflush(stderr);
	c->file = tmpfile();
	assert_non_null(c->file);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* What was written to fd 2 since capture_begin (malloc'd, caller frees),
 * also echoed to the real stderr. */
static char *capture_end(struct capture *c)
{
	fflush(stderr);
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	fseek(c->file, 0, SEEK_END);
	long size = ftell(c->file);
	assert_true(size >= 0);
	rewind(c->file);
	char *buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (size_t)size, c->file);
	buf[n] = '\0';
	fclose(c->file);
	fputs(buf, stderr);
	return buf;
}

/* Lines of text holding both a and b (b NULL: a alone). */
static int count_lines(const char *text, const char *a, const char *b)
{
	int n = 0;
	for (const char *p = text; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char line[1024];
		size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
		memcpy(line, p, k);
		line[k] = '\0';
		if (strstr(line, a) && (b == NULL || strstr(line, b)))
			n++;
		p += len;
		if (*p == '\n')
			p++;
	}
	return n;
}

static weft_config_t stall_cfg(void **state, unsigned stall_ms)
{
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = WEFT_TEST_WORKERS(state);
	cfg.stall_ms = stall_ms;
	return cfg;
}

/* Runs root with cfg, stderr captured; returns the text (caller frees). */
static char *run_captured(weft_config_t *cfg, weft_fn root, void *arg)
{
	struct capture c;
	capture_begin(&c);
	int rc = weft_test_run_cfg(cfg, root, arg);
	char *text = capture_end(&c);
	assert_int_equal(rc, 0);
	return text;
}

/* Spins for ns without a checkpoint.  Not static, so that its name is in
 * the dynamic symbol table (the backtrace names it without libdw too);
 * not inlined, so that it has a frame of its own. */
__attribute__((noinline)) void stall_test_spin(int64_t ns);
__attribute__((noinline)) void stall_test_spin(int64_t ns)
{
	int64_t end = weft_now() + ns;
	while (weft_now() < end)
		__asm__ volatile("" ::: "memory");
}

/* Stall reports ("weft: stall:" lines) written to the captured stderr so
 * far: fd 2 is the capture's file, opened for reading too. */
static int reports_so_far(void)
{
	static char buf[1 << 16];
	ssize_t n = pread(2, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	int k = 0;
	for (const char *p = buf; (p = strstr(p, "weft: stall:")); p++)
		k++;
	return k;
}

/* Waits, without a checkpoint when spin (else in 1 ms sleeps), until at
 * least `want` reports were written, for at most 20 s.  On a loaded
 * machine the monitor thread may be kept off a CPU for longer than any
 * fixed spin: the tests wait for the report rather than guess its time,
 * and the count they then assert catches a report made twice. */
static void wait_reports(int want, bool spin)
{
	int64_t end = weft_now() + 20 * WEFT_SEC;
	while (reports_so_far() < want && weft_now() < end) {
		if (spin)
			stall_test_spin(WEFT_MSEC);
		else
			weft_sleep(WEFT_MSEC);
	}
}

/* }======================================================= */

/* {======================================================= tasks */

#define MS WEFT_MSEC

struct spin_arg {
	int64_t ns;
	int times; /* spins, with a yield between two */
	/* Each spin also lasts until one more report was written (at most
	 * 20 s): for the tests that expect one per spin. */
	bool until_reported;
};

static int spinner(void *arg)
{
	struct spin_arg *a = arg;
	for (int i = 0; i < a->times; i++) {
		if (i > 0)
			CHECK_EQ(weft_yield(), 0);
		stall_test_spin(a->ns);
		if (a->until_reported)
			wait_reports(i + 1, true);
	}
	return 0;
}

/* Spawns spinner(arg) as "spinner" and joins it. */
static int spin_root(void *arg)
{
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -1;
	CHECK_EQ(weft_group_spawn_named(g, "spinner", spinner, arg), 0);
	return weft_group_join(g, NULL);
}

struct yield_arg {
	int64_t ns;
};

static int yielder(void *arg)
{
	struct yield_arg *a = arg;
	int64_t end = weft_now() + a->ns;
	while (weft_now() < end) {
		stall_test_spin(MS / 2);
		CHECK_EQ(weft_yield(), 0);
	}
	return 0;
}

static int yield_root(void *arg)
{
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -1;
	CHECK_EQ(weft_group_spawn_named(g, "yielder", yielder, arg), 0);
	return weft_group_join(g, NULL);
}

/* Opens a shielded scope and sleeps ns inside it, with a plain scope
 * held as long around it (never reported).  Not static: the report names
 * it as the place the scope was opened. */
int stall_test_shielded(void *arg);
struct shield_arg {
	int64_t ns;
	bool until_reported; /* and until the report was written */
};

int stall_test_shielded(void *arg)
{
	const struct shield_arg *a = arg;
	int64_t ns = a->ns;
	weft_scope_t *plain, *shield;
	if (!CHECK_EQ(weft_scope_open(&plain, WEFT_FOREVER, 0), 0))
		return -1;
	if (CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD),
		    0)) {
		CHECK_EQ(weft_sleep(ns), 0);
		if (a->until_reported)
			wait_reports(1, false);
		CHECK_EQ(weft_scope_exit(shield), 0);
		weft_scope_destroy(shield);
	}
	CHECK_EQ(weft_scope_exit(plain), 0);
	weft_scope_destroy(plain);
	return 0;
}

static int shield_root(void *arg)
{
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -1;
	CHECK_EQ(weft_group_spawn_named(g, "shielder", stall_test_shielded,
			 arg),
		0);
	return weft_group_join(g, NULL);
}

/* }======================================================= */

/* {======================================================= tests */

static void test_stall__spinning_task_is_reported_once_with_its_backtrace(
	void **state)
{
	weft_config_t cfg = stall_cfg(state, 50);
	struct spin_arg a = { 500 * MS, 1, true };
	char *text = run_captured(&cfg, spin_root, &a);
	assert_int_equal(count_lines(text, "weft: stall: task ",
				 "'spinner' has run"),
		1);
	assert_int_equal(count_lines(text, "'spinner'", "without a checkpoint"),
		1);
	/* The backtrace, taken on the spinning worker, names the function
	 * that spins. */
	assert_true(count_lines(text, "stall_test_spin", NULL) >= 1);
	free(text);
}

static void test_stall__a_new_stall_after_a_switch_is_reported_again(
	void **state)
{
	weft_config_t cfg = stall_cfg(state, 50);
	struct spin_arg a = { 500 * MS, 2, true };
	char *text = run_captured(&cfg, spin_root, &a);
	assert_int_equal(count_lines(text, "weft: stall: task ",
				 "'spinner' has run"),
		2);
	free(text);
}

static void test_stall__task_that_yields_often_is_not_reported(void **state)
{
	/* A threshold far above any preemption of a worker between two
	 * yields half a millisecond apart (a loaded machine has kept a
	 * worker off its CPU for 250 ms). */
	weft_config_t cfg = stall_cfg(state, 1000);
	struct yield_arg a = { 1000 * MS };
	char *text = run_captured(&cfg, yield_root, &a);
	assert_int_equal(count_lines(text, "'yielder'", NULL), 0);
	free(text);
}

static void test_stall__shielded_scope_held_is_reported_once(void **state)
{
	weft_config_t cfg = stall_cfg(state, 50);
	struct shield_arg a = { 500 * MS, true };
	char *text = run_captured(&cfg, shield_root, &a);
	assert_int_equal(count_lines(text, "weft: stall: shielded scope ",
				 "'shielder' open for"),
		1);
	/* Where it was opened: the function that called weft_scope_open. */
	assert_int_equal(count_lines(text, "opened at stall_test_shielded",
				 NULL),
		1);
	/* Only the shielded one of the two scopes, and no task stalled. */
	assert_int_equal(count_lines(text, "weft: stall:", NULL), 1);
	free(text);
}

static void test_stall__off_reports_nothing(void **state)
{
	weft_config_t cfg = stall_cfg(state, 0);
	struct spin_arg a = { 300 * MS, 1, false };
	char *text = run_captured(&cfg, spin_root, &a);
	struct shield_arg sa = { 100 * MS, false };
	char *text2 = run_captured(&cfg, shield_root, &sa);
	assert_int_equal(count_lines(text, "stall", NULL), 0);
	assert_int_equal(count_lines(text2, "stall", NULL), 0);
	free(text);
	free(text2);
}

static void test_stall__env_variable_turns_it_on(void **state)
{
	char *saved = getenv("WEFT_STALL_MS") ? strdup(getenv("WEFT_STALL_MS"))
					      : NULL;
	assert_int_equal(setenv("WEFT_STALL_MS", "50", 1), 0);
	weft_config_t cfg;
	int rc = weft_config_init(&cfg);
	if (saved) {
		setenv("WEFT_STALL_MS", saved, 1);
		free(saved);
	} else {
		unsetenv("WEFT_STALL_MS");
	}
	assert_int_equal(rc, 0);
	assert_int_equal(cfg.stall_ms, 50);
	cfg.workers = WEFT_TEST_WORKERS(state);
	struct spin_arg a = { 500 * MS, 1, true };
	char *text = run_captured(&cfg, spin_root, &a);
	assert_int_equal(count_lines(text, "'spinner'", "has run"), 1);
	free(text);
}

static void test_stall__blocked_signal_gives_a_report_without_backtrace(
	void **state)
{
	sigset_t one, old;
	sigemptyset(&one);
	sigaddset(&one, STALL_SIGNAL);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &one, &old), 0);
	weft_config_t cfg = stall_cfg(state, 50);
	struct spin_arg a = { 500 * MS, 1, true };
	char *text = run_captured(&cfg, spin_root, &a);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	assert_int_equal(count_lines(text, "weft: stall: a task has run",
				 "blocks SIGRTMIN+6"),
		1);
	assert_int_equal(count_lines(text, "stall_test_spin", NULL), 0);
	free(text);
}

static atomic_int program_handler_calls;

static void program_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&program_handler_calls, 1);
}

static void test_stall__program_handler_is_kept_and_report_has_no_backtrace(
	void **state)
{
	struct sigaction sa = { .sa_handler = program_handler }, old, after;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(STALL_SIGNAL, &sa, &old), 0);
	weft_config_t cfg = stall_cfg(state, 50);
	struct spin_arg a = { 500 * MS, 1, true };
	char *text = run_captured(&cfg, spin_root, &a);
	assert_int_equal(sigaction(STALL_SIGNAL, &old, &after), 0);
	/* Still the program's, and never called by weft. */
	assert_ptr_equal(after.sa_handler, program_handler);
	assert_int_equal(atomic_load(&program_handler_calls), 0);
	assert_int_equal(count_lines(text, "weft: stall: a task has run",
				 "handles SIGRTMIN+6 itself"),
		1);
	free(text);
}

static void test_stall__handler_is_restored_after_the_last_runtime(void **state)
{
	(void)state;
	struct sigaction before, during, after;
	assert_int_equal(sigaction(STALL_SIGNAL, NULL, &before), 0);
	assert_true(before.sa_handler == SIG_DFL);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = 1;
	cfg.stall_ms = 1000;
	weft_runtime_t *a, *b;
	assert_int_equal(weft_runtime_create(&a, &cfg), 0);
	assert_int_equal(weft_runtime_create(&b, &cfg), 0);
	assert_int_equal(weft_runtime_destroy(a), 0);
	assert_int_equal(sigaction(STALL_SIGNAL, NULL, &during), 0);
	assert_true(during.sa_flags & SA_SIGINFO); /* still weft's */
	assert_int_equal(weft_runtime_destroy(b), 0);
	assert_int_equal(sigaction(STALL_SIGNAL, NULL, &after), 0);
	assert_true(after.sa_handler == SIG_DFL);
	assert_false(after.sa_flags & SA_SIGINFO);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_stall__spinning_task_is_reported_once_with_its_backtrace),
		WEFT_TEST(
			test_stall__a_new_stall_after_a_switch_is_reported_again),
		WEFT_TEST(test_stall__task_that_yields_often_is_not_reported),
		WEFT_TEST(test_stall__shielded_scope_held_is_reported_once),
		WEFT_TEST(test_stall__off_reports_nothing),
		WEFT_TEST_AT(test_stall__env_variable_turns_it_on, 2),
		WEFT_TEST(
			test_stall__blocked_signal_gives_a_report_without_backtrace),
		WEFT_TEST_AT(
			test_stall__program_handler_is_kept_and_report_has_no_backtrace,
			2),
		WEFT_TEST_AT(
			test_stall__handler_is_restored_after_the_last_runtime,
			1),
	};
	return WEFT_RUN_TESTS(tests);
}
