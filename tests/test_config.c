/* Tests for weft_config_init and the configuration checks of
 * weft_runtime_create (include/weft/runtime.h): the defaults, the
 * environment overrides WEFT_WORKERS, WEFT_STACK_SIZE, WEFT_GUARDED_STACKS,
 * WEFT_SPIN_US, WEFT_OFFLOAD_THREADS, WEFT_CLOCK and WEFT_STALL_MS, every
 * kind of bad
 * value (never a silent fallback), caller overrides, and bad arguments.
 *
 * Most tests need no runtime threads.  Every test saves the
 * variables, unsets them, and puts them back in its teardown, which also
 * asserts that weft holds nothing (no runtime, no byte).  Assertions
 * happen on the main thread only; the few tasks that run record what they
 * saw with CHECK (tests/support.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include <weft.h>

#include "support.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)
#define GIB ((size_t)1024 * 1024 * 1024)

/* The defaults documented in weft/runtime.h. */
#define DEFAULT_STACK_SIZE (64 * KIB)
#define DEFAULT_GUARDED_STACKS 8192
#define DEFAULT_SPIN_US 50
#define DEFAULT_OFFLOAD_THREADS 40

/* A pointer value weft must never write into *out on failure. */
#define UNTOUCHED ((weft_runtime_t *)(uintptr_t)0x5eed)

/* {======================================================= fixture */

static const char *const config_vars[] = {
	"WEFT_WORKERS",
	"WEFT_STACK_SIZE",
	"WEFT_GUARDED_STACKS",
	"WEFT_SPIN_US",
	"WEFT_OFFLOAD_THREADS",
	"WEFT_CLOCK",
	"WEFT_DUMP_SIGNAL",
	"WEFT_SEED",
	"WEFT_STALL_MS",
	"WEFT_TRACE",
	"WEFT_TRACE_EVENTS",
	"WEFT_TRACE_BUFFER",
	"WEFT_CPU_SAMPLE_US",
};
#define NVARS (sizeof config_vars / sizeof config_vars[0])

struct env_saved {
	char *value[NVARS]; /* strdup'd, or NULL when unset */
};

static int env_setup(void **state)
{
	struct env_saved *s = calloc(1, sizeof *s);
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < NVARS; i++) {
		const char *v = getenv(config_vars[i]);
		s->value[i] = v ? strdup(v) : NULL;
		unsetenv(config_vars[i]);
	}
	*state = s;
	return 0;
}

static int env_teardown(void **state)
{
	struct env_saved *s = *state;
	for (size_t i = 0; i < NVARS; i++) {
		if (s->value[i])
			setenv(config_vars[i], s->value[i], 1);
		else
			unsetenv(config_vars[i]);
		free(s->value[i]);
	}
	free(s);
	weft_test_assert_no_leaks();
	return 0;
}

#define CONFIG_TEST(f)                                                         \
	cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

static unsigned cpus_available(void)
{
	cpu_set_t set;
	assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
	return (unsigned)CPU_COUNT(&set);
}

/* }======================================================= */

/* {======================================================= defaults */

static void test_config__defaults_are_the_documented_values(void **state)
{
	(void)state;
	weft_config_t cfg;
	memset(&cfg, 0xa5, sizeof cfg);
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_int_equal(cfg.size, sizeof(weft_config_t));
	assert_int_equal(cfg.workers, cpus_available());
	assert_int_equal(cfg.stack_size, DEFAULT_STACK_SIZE);
	assert_int_equal(cfg.guarded_stacks, DEFAULT_GUARDED_STACKS);
	assert_int_equal(cfg.spin_us, DEFAULT_SPIN_US);
	assert_int_equal(cfg.offload_threads, DEFAULT_OFFLOAD_THREADS);
	assert_int_equal(cfg.seed, 0);	   /* no seed: parallel workers */
	assert_int_equal(cfg.stall_ms, 0); /* the watchdog is off */
	assert_int_equal(cfg.env_error, 0);
	assert_string_equal(cfg.message, "");
}

static void test_config__default_workers_follow_the_cpu_affinity_mask(
	void **state)
{
	(void)state;
	cpu_set_t saved, one;
	assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
	int first = -1;
	for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
		if (CPU_ISSET(c, &saved))
			first = c;
	assert_true(first >= 0);
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
	weft_config_t cfg;
	int rc = weft_config_init(&cfg);
	unsigned workers = cfg.workers;
	assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(workers, 1);
}

static int report_workers(void *arg)
{
	*(unsigned *)arg = weft_worker_count();
	return 0;
}

static void test_config__default_config_creates_a_working_runtime(void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	weft_runtime_t *rt = NULL;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	unsigned seen = 0;
	assert_int_equal(weft_runtime_run(rt, report_workers, &seen, NULL), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_int_equal(seen, cpus_available());
}

/* }======================================================= */

/* {======================================================= good env */

struct good_value {
	const char *var;
	const char *text;
	unsigned long long expect;
};

static unsigned long long config_field(const weft_config_t *cfg,
	const char *var)
{
	if (strcmp(var, "WEFT_WORKERS") == 0)
		return cfg->workers;
	if (strcmp(var, "WEFT_STACK_SIZE") == 0)
		return cfg->stack_size;
	if (strcmp(var, "WEFT_GUARDED_STACKS") == 0)
		return cfg->guarded_stacks;
	if (strcmp(var, "WEFT_OFFLOAD_THREADS") == 0)
		return cfg->offload_threads;
	if (strcmp(var, "WEFT_SEED") == 0)
		return cfg->seed;
	if (strcmp(var, "WEFT_STALL_MS") == 0)
		return cfg->stall_ms;
	if (strcmp(var, "WEFT_TRACE_EVENTS") == 0)
		return cfg->trace_events;
	if (strcmp(var, "WEFT_TRACE_BUFFER") == 0)
		return cfg->trace_buffer;
	if (strcmp(var, "WEFT_CPU_SAMPLE_US") == 0)
		return cfg->cpu_sample_us;
	return cfg->spin_us;
}

static void test_config__environment_overrides_every_field(void **state)
{
	(void)state;
	static const struct good_value good[] = {
		{ "WEFT_WORKERS", "1", 1 },
		{ "WEFT_WORKERS", "3", 3 },
		{ "WEFT_WORKERS", "1024", 1024 },
		{ "WEFT_WORKERS", "0003", 3 },
		{ "WEFT_STACK_SIZE", "16384", 16 * KIB },
		{ "WEFT_STACK_SIZE", "131072", 128 * KIB },
		{ "WEFT_STACK_SIZE", "128K", 128 * KIB },
		{ "WEFT_STACK_SIZE", "128k", 128 * KIB },
		{ "WEFT_STACK_SIZE", "16K", 16 * KIB },
		{ "WEFT_STACK_SIZE", "1M", MIB },
		{ "WEFT_STACK_SIZE", "2m", 2 * MIB },
		{ "WEFT_STACK_SIZE", "1024M", GIB },
		{ "WEFT_STACK_SIZE", "1073741824", GIB },
		{ "WEFT_GUARDED_STACKS", "0", 0 },
		{ "WEFT_GUARDED_STACKS", "100", 100 },
		{ "WEFT_GUARDED_STACKS", "30000", 30000 },
		{ "WEFT_SPIN_US", "0", 0 },
		{ "WEFT_SPIN_US", "7", 7 },
		{ "WEFT_SPIN_US", "100000", 100000 },
		{ "WEFT_OFFLOAD_THREADS", "1", 1 },
		{ "WEFT_OFFLOAD_THREADS", "64", 64 },
		{ "WEFT_OFFLOAD_THREADS", "1024", 1024 },
		{ "WEFT_SEED", "1", 1 },
		{ "WEFT_SEED", "42", 42 },
		{ "WEFT_SEED", "18446744073709551615", UINT64_MAX },
		{ "WEFT_STALL_MS", "0", 0 },
		{ "WEFT_STALL_MS", "1", 1 },
		{ "WEFT_STALL_MS", "250", 250 },
		{ "WEFT_STALL_MS", "3600000", 3600000 },
		{ "WEFT_TRACE_EVENTS", "0", 0 },
		{ "WEFT_TRACE_EVENTS", "1", 1 },
		{ "WEFT_TRACE_BUFFER", "16", 16 },
		{ "WEFT_TRACE_BUFFER", "1000", 1000 },
		{ "WEFT_TRACE_BUFFER", "1048576", 1048576 },
		{ "WEFT_CPU_SAMPLE_US", "0", 0 },
		{ "WEFT_CPU_SAMPLE_US", "100", 100 },
		{ "WEFT_CPU_SAMPLE_US", "250", 250 },
		{ "WEFT_CPU_SAMPLE_US", "1000000", 1000000 },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		const struct good_value *g = &good[i];
		assert_int_equal(setenv(g->var, g->text, 1), 0);
		weft_config_t cfg;
		int rc = weft_config_init(&cfg);
		unsetenv(g->var);
		if (rc != 0 || config_field(&cfg, g->var) != g->expect)
			print_error("%s='%s': rc %d, value %llu, message "
				    "'%s'\n",
				g->var, g->text, rc, config_field(&cfg, g->var),
				cfg.message);
		assert_int_equal(rc, 0);
		assert_int_equal(cfg.env_error, 0);
		assert_string_equal(cfg.message, "");
		assert_int_equal(config_field(&cfg, g->var), g->expect);
	}
}

static void test_config__all_four_variables_apply_together(void **state)
{
	(void)state;
	setenv("WEFT_WORKERS", "2", 1);
	setenv("WEFT_STACK_SIZE", "256K", 1);
	setenv("WEFT_GUARDED_STACKS", "16", 1);
	setenv("WEFT_SPIN_US", "0", 1);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_int_equal(cfg.workers, 2);
	assert_int_equal(cfg.stack_size, 256 * KIB);
	assert_int_equal(cfg.guarded_stacks, 16);
	assert_int_equal(cfg.spin_us, 0);
	weft_runtime_t *rt = NULL;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	unsigned seen = 0;
	assert_int_equal(weft_runtime_run(rt, report_workers, &seen, NULL), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_int_equal(seen, 2);
}

static void test_config__weft_run_uses_the_environment(void **state)
{
	(void)state;
	setenv("WEFT_WORKERS", "3", 1);
	unsigned seen = 0;
	assert_int_equal(weft_run(report_workers, &seen), 0);
	assert_int_equal(seen, 3);
}

/* Touches `bytes` of the calling fiber's stack; noinline and volatile so
 * the frame really is that big. */
__attribute__((noinline)) static int touch_stack(size_t bytes)
{
	volatile char *buf = __builtin_alloca(bytes);
	for (size_t i = 0; i < bytes; i += 512)
		buf[i] = (char)i;
	return buf[bytes - 1] == 0x7f ? 1 : 0;
}

static int use_big_stack(void *arg)
{
	(void)arg;
	touch_stack(384 * KIB);
	return 0;
}

static void test_config__stack_size_from_the_environment_is_what_tasks_get(
	void **state)
{
	(void)state;
	/* 384 KiB of locals would overflow the 64 KiB default (and abort
	 * with a stack-overflow report); with 1 MiB stacks it fits. */
	setenv("WEFT_STACK_SIZE", "1M", 1);
	assert_int_equal(weft_test_run(1, use_big_stack, NULL), 0);
}

/* }======================================================= */

/* {======================================================= bad env */

struct var_range {
	const char *var;
	const char *min; /* the accepted range as the message must show it */
	const char *max;
};

static const struct var_range ranges[] = {
	{ "WEFT_WORKERS", "1", "1024" },
	{ "WEFT_STACK_SIZE", "16384", "1073741824" },
	{ "WEFT_GUARDED_STACKS", "0", "30000" },
	{ "WEFT_SPIN_US", "0", "100000" },
	{ "WEFT_OFFLOAD_THREADS", "1", "1024" },
	{ "WEFT_SEED", "1", "18446744073709551615" },
	{ "WEFT_STALL_MS", "0", "3600000" },
	{ "WEFT_TRACE_EVENTS", "0", "1" },
	{ "WEFT_TRACE_BUFFER", "16", "1048576" },
	{ "WEFT_CPU_SAMPLE_US", "100", "1000000" },
};

/* Bad for every variable. */
static const char *const bad_for_all[] = {
	"",    /* empty */
	"abc", /* not a number */
	"-1",  /* negative */
	"-0",  /* a sign is never accepted */
	"+4",
	"99999999999999999999", /* overflows 64 bits */
	"18446744073709551616", /* 2^64 */
	"4x",			/* trailing junk */
	"4 ",			/* trailing space */
	" 4",			/* leading space */
	"\t4",
	"4\n",
	"0x10", /* no hex */
	"4.0",
	"1e3",
	"4,5",
};

struct bad_value {
	const char *var;
	const char *text;
};

/* Bad for one variable only: zero workers, and each range's edges. */
static const struct bad_value bad_specific[] = {
	{ "WEFT_WORKERS", "0" },
	{ "WEFT_WORKERS", "00" },
	{ "WEFT_WORKERS", "1025" },
	{ "WEFT_WORKERS", "4294967297" }, /* 2^32 + 1: no truncation to 1 */
	{ "WEFT_WORKERS", "4K" },	  /* no suffix for counts */
	{ "WEFT_STACK_SIZE", "0" },
	{ "WEFT_STACK_SIZE", "16383" },
	{ "WEFT_STACK_SIZE", "15K" },
	{ "WEFT_STACK_SIZE", "1073741825" },
	{ "WEFT_STACK_SIZE", "1025M" },
	{ "WEFT_STACK_SIZE", "1G" }, /* only K and M */
	{ "WEFT_STACK_SIZE", "64KB" },
	{ "WEFT_STACK_SIZE", "64 K" },
	{ "WEFT_STACK_SIZE", "K" },
	{ "WEFT_STACK_SIZE", "17592186044416M" }, /* overflows when scaled */
	{ "WEFT_GUARDED_STACKS", "30001" },
	{ "WEFT_GUARDED_STACKS", "1K" },
	{ "WEFT_SPIN_US", "100001" },
	{ "WEFT_SPIN_US", "5M" },
	{ "WEFT_OFFLOAD_THREADS", "0" },
	{ "WEFT_OFFLOAD_THREADS", "1025" },
	{ "WEFT_OFFLOAD_THREADS", "4K" },
	{ "WEFT_SEED", "0" }, /* 0 is "no seed": not a seed to ask for */
	{ "WEFT_SEED", "00" },
	{ "WEFT_SEED", "1K" },
	{ "WEFT_GUARDED_STACKS", "30001" },
	{ "WEFT_GUARDED_STACKS", "1K" },
	{ "WEFT_SPIN_US", "100001" },
	{ "WEFT_SPIN_US", "5M" },
	{ "WEFT_OFFLOAD_THREADS", "0" },
	{ "WEFT_OFFLOAD_THREADS", "1025" },
	{ "WEFT_OFFLOAD_THREADS", "4K" },
	{ "WEFT_STALL_MS", "3600001" },
	{ "WEFT_STALL_MS", "4294967296" }, /* 2^32: no truncation to 0 */
	{ "WEFT_STALL_MS", "1K" },	   /* no suffix for milliseconds */
	{ "WEFT_TRACE_EVENTS", "2" },
	{ "WEFT_TRACE_EVENTS", "yes" },
	{ "WEFT_TRACE_BUFFER", "0" },
	{ "WEFT_TRACE_BUFFER", "15" },
	{ "WEFT_TRACE_BUFFER", "1048577" },
	{ "WEFT_TRACE_BUFFER", "4K" },
	{ "WEFT_CPU_SAMPLE_US", "1" }, /* 0 is off; else 100 and up */
	{ "WEFT_CPU_SAMPLE_US", "99" },
	{ "WEFT_CPU_SAMPLE_US", "1000001" },
	{ "WEFT_CPU_SAMPLE_US", "4294967296" },
	{ "WEFT_CPU_SAMPLE_US", "1K" },
};

static const struct var_range *range_of(const char *var)
{
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if (strcmp(ranges[i].var, var) == 0)
			return &ranges[i];
	fail_msg("no range for %s", var);
	return NULL;
}

/* Checks one bad value end to end: init rejects it naming the variable
 * and the range, the default stays, and create fails the same way without
 * leaving anything behind. */
static void check_bad_value(const char *var, const char *text)
{
	const struct var_range *r = range_of(var);
	weft_config_t defaults;
	assert_int_equal(weft_config_init(&defaults), 0);

	assert_int_equal(setenv(var, text, 1), 0);
	weft_config_t cfg;
	int rc = weft_config_init(&cfg);
	unsetenv(var);
	if (rc != -EINVAL || strstr(cfg.message, var) == NULL ||
		strstr(cfg.message, r->min) == NULL ||
		strstr(cfg.message, r->max) == NULL)
		print_error("%s='%s': rc %d, message '%s'\n", var, text, rc,
			cfg.message);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(cfg.env_error, -EINVAL);
	assert_non_null(strstr(cfg.message, var));
	assert_non_null(strstr(cfg.message, r->min));
	assert_non_null(strstr(cfg.message, r->max));
	/* The default stays. */
	assert_int_equal(config_field(&cfg, var), config_field(&defaults, var));
	assert_int_equal(cfg.size, sizeof(weft_config_t));

	weft_runtime_t *rt = UNTOUCHED;
	assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
	assert_ptr_equal(rt, UNTOUCHED);
	assert_non_null(strstr(cfg.message, var));
	weft_test_assert_no_leaks();
}

/* Every value of bad_for_all, and var's own of bad_specific, is refused
 * with var named. */
static void check_bad_for(const char *var)
{
	for (size_t i = 0; i < sizeof bad_for_all / sizeof bad_for_all[0]; i++)
		check_bad_value(var, bad_for_all[i]);
	for (size_t i = 0; i < sizeof bad_specific / sizeof bad_specific[0];
		i++)
		if (strcmp(bad_specific[i].var, var) == 0)
			check_bad_value(var, bad_specific[i].text);
}

static void test_config__bad_worker_count_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_WORKERS");
}

static void test_config__bad_stack_size_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_STACK_SIZE");
}

static void test_config__bad_guarded_stacks_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_GUARDED_STACKS");
}

static void test_config__bad_spin_us_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_SPIN_US");
}

static void test_config__bad_seed_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_SEED");
}

static void
test_config__bad_offload_threads_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_OFFLOAD_THREADS");
}

static void test_config__bad_stall_ms_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_STALL_MS");
}

static void test_config__bad_trace_events_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_TRACE_EVENTS");
}

static void test_config__bad_cpu_sample_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_CPU_SAMPLE_US");
}

static void test_config__bad_trace_buffer_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	check_bad_for("WEFT_TRACE_BUFFER");
}

static void test_config__bad_variable_keeps_the_good_ones_applied(void **state)
{
	(void)state;
	setenv("WEFT_WORKERS", "2", 1);
	setenv("WEFT_STACK_SIZE", "lots", 1);
	setenv("WEFT_SPIN_US", "9", 1);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), -EINVAL);
	assert_non_null(strstr(cfg.message, "WEFT_STACK_SIZE"));
	assert_int_equal(cfg.stack_size, DEFAULT_STACK_SIZE);
	assert_int_equal(cfg.workers, 2);
	assert_int_equal(cfg.spin_us, 9);
}

static void
test_config__fixing_the_field_does_not_clear_a_bad_environment_error(
	void **state)
{
	(void)state;
	setenv("WEFT_WORKERS", "many", 1);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), -EINVAL);
	/* A caller override of the same field does not hide the bad
	 * variable: create still fails and still names it. */
	cfg.workers = 2;
	weft_runtime_t *rt = UNTOUCHED;
	assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
	assert_ptr_equal(rt, UNTOUCHED);
	assert_non_null(strstr(cfg.message, "WEFT_WORKERS"));
}

static int must_not_run(void *arg)
{
	*(int *)arg = 1;
	return 0;
}

static void test_config__weft_run_refuses_a_bad_environment_without_running(
	void **state)
{
	(void)state;
	setenv("WEFT_WORKERS", "0", 1);
	int ran = 0;
	assert_int_equal(weft_run(must_not_run, &ran), -EINVAL);
	assert_int_equal(ran, 0);
}

static void test_config__a_fresh_init_after_unsetting_the_variable_is_clean(
	void **state)
{
	(void)state;
	weft_config_t cfg;
	setenv("WEFT_SPIN_US", "-5", 1);
	assert_int_equal(weft_config_init(&cfg), -EINVAL);
	unsetenv("WEFT_SPIN_US");
	/* The same struct, re-initialised: no stale error or message. */
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_int_equal(cfg.env_error, 0);
	assert_string_equal(cfg.message, "");
	weft_runtime_t *rt = NULL;
	cfg.workers = 1;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* }======================================================= */

/* {======================================================= caller */

static void test_config__caller_overrides_after_init_are_used(void **state)
{
	(void)state;
	setenv("WEFT_WORKERS", "1", 1);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = 3; /* the caller wins over the environment */
	cfg.stack_size = 32 * KIB;
	cfg.guarded_stacks = 0;
	cfg.spin_us = 0;
	weft_runtime_t *rt = NULL;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	unsigned seen = 0;
	assert_int_equal(weft_runtime_run(rt, report_workers, &seen, NULL), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_int_equal(seen, 3);
}

struct bad_field {
	const char *what; /* a word the message must contain */
	void (*set)(weft_config_t *cfg);
};

static void set_workers_0(weft_config_t *c)
{
	c->workers = 0;
}
static void set_workers_1025(weft_config_t *c)
{
	c->workers = 1025;
}
static void set_workers_huge(weft_config_t *c)
{
	c->workers = ~0u;
}
static void set_stack_0(weft_config_t *c)
{
	c->stack_size = 0;
}
static void set_stack_tiny(weft_config_t *c)
{
	c->stack_size = 4096;
}
static void set_stack_under(weft_config_t *c)
{
	c->stack_size = 16 * KIB - 1;
}
static void set_stack_over(weft_config_t *c)
{
	c->stack_size = GIB + 1;
}
static void set_stack_huge(weft_config_t *c)
{
	c->stack_size = SIZE_MAX;
}
static void set_guarded_over(weft_config_t *c)
{
	c->guarded_stacks = 30001;
}
static void set_spin_over(weft_config_t *c)
{
	c->spin_us = 100001;
}
static void set_offload_0(weft_config_t *c)
{
	c->offload_threads = 0;
}
static void set_offload_over(weft_config_t *c)
{
	c->offload_threads = 1025;
}
static void set_stall_over(weft_config_t *c)
{
	c->stall_ms = 3600001;
}

static void test_config__out_of_range_caller_values_fail_create_with_a_message(
	void **state)
{
	(void)state;
	static const struct bad_field bad[] = {
		{ "workers", set_workers_0 },
		{ "workers", set_workers_1025 },
		{ "workers", set_workers_huge },
		{ "stack", set_stack_0 },
		{ "stack", set_stack_tiny },
		{ "stack", set_stack_under },
		{ "stack", set_stack_over },
		{ "stack", set_stack_huge },
		{ "guarded", set_guarded_over },
		{ "spin", set_spin_over },
		{ "offload_threads", set_offload_0 },
		{ "offload_threads", set_offload_over },
		{ "stall_ms", set_stall_over },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), 0);
		bad[i].set(&cfg);
		weft_runtime_t *rt = UNTOUCHED;
		int rc = weft_runtime_create(&rt, &cfg);
		if (rc != -EINVAL || strstr(cfg.message, bad[i].what) == NULL)
			print_error("case %zu (%s): rc %d, message "
				    "'%s'\n",
				i, bad[i].what, rc, cfg.message);
		assert_int_equal(rc, -EINVAL);
		assert_ptr_equal(rt, UNTOUCHED);
		assert_non_null(strstr(cfg.message, bad[i].what));
		weft_test_assert_no_leaks();
	}
}

static void test_config__range_edges_set_by_the_caller_are_accepted(
	void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = 1;
	cfg.stack_size = 16 * KIB;
	cfg.guarded_stacks = 30000;
	cfg.spin_us = 100000;
	cfg.stall_ms = 3600000;
	weft_runtime_t *rt = NULL;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	weft_test_assert_no_leaks();

	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = 2;
	cfg.stack_size = GIB; /* only reserved when a task needs a stack */
	cfg.guarded_stacks = 0;
	cfg.spin_us = 0;
	rt = NULL;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
}

static void test_config__abort_on_missing_join_defaults_on_in_debug_builds(
	void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	/* The tests are built with WEFT_DEBUG (tools/run test). */
	assert_int_equal(cfg.abort_on_missing_join, 1);
	cfg.abort_on_missing_join = 2;
	weft_runtime_t *rt = UNTOUCHED;
	assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
	assert_ptr_equal(rt, UNTOUCHED);
	assert_non_null(strstr(cfg.message, "abort_on_missing_join"));
	cfg.abort_on_missing_join = 0;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	weft_test_assert_no_leaks();
}

static void test_config__null_arguments_are_rejected(void **state)
{
	(void)state;
	assert_int_equal(weft_config_init(NULL), -EINVAL);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_int_equal(weft_runtime_create(NULL, &cfg), -EINVAL);
	weft_runtime_t *rt = UNTOUCHED;
	assert_int_equal(weft_runtime_create(&rt, NULL), -EINVAL);
	assert_ptr_equal(rt, UNTOUCHED);
	assert_int_equal(weft_runtime_create(NULL, NULL), -EINVAL);
}

static void test_config__config_not_from_init_is_rejected(void **state)
{
	(void)state;
	static const size_t sizes[] = { 0, 1, sizeof(weft_config_t) - 1,
		sizeof(weft_config_t) + 1 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		weft_config_t cfg;
		memset(&cfg, 0, sizeof cfg);
		/* Every other field is valid. */
		cfg.size = sizes[i];
		cfg.workers = 1;
		cfg.stack_size = 64 * KIB;
		cfg.guarded_stacks = 8;
		cfg.spin_us = 50;
		weft_runtime_t *rt = UNTOUCHED;
		assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
		assert_ptr_equal(rt, UNTOUCHED);
		assert_true(cfg.message[0] != '\0');
		assert_true(
			memchr(cfg.message, '\0', sizeof cfg.message) != NULL);
	}
}

/* {======================================================= clock */

static int report_now(void *arg)
{
	*(int64_t *)arg = weft_now();
	return 0;
}

static void test_config__clock_defaults_to_real_and_weft_clock_selects(
	void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_int_equal(cfg.clock, WEFT_CLOCK_REAL);
	static const struct {
		const char *text;
		weft_clock_t expect;
	} good[] = { { "real", WEFT_CLOCK_REAL },
		{ "virtual", WEFT_CLOCK_VIRTUAL } };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(setenv("WEFT_CLOCK", good[i].text, 1), 0);
		assert_int_equal(weft_config_init(&cfg), 0);
		assert_int_equal(cfg.clock, good[i].expect);
		assert_string_equal(cfg.message, "");
	}
	/* The runtime it creates runs on the virtual clock. */
	weft_runtime_t *rt = NULL;
	assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
	int64_t seen = 0;
	assert_int_equal(weft_runtime_run(rt, report_now, &seen, NULL), 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	assert_true(seen == WEFT_VIRTUAL_EPOCH);
}

static void test_config__bad_weft_clock_is_rejected_with_the_variable_named(
	void **state)
{
	(void)state;
	static const char *const bad[] = { "", "Virtual", "REAL", "virtual ",
		" real", "1", "mock", "virtualx" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(setenv("WEFT_CLOCK", bad[i], 1), 0);
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), -EINVAL);
		assert_int_equal(cfg.env_error, -EINVAL);
		assert_int_equal(cfg.clock, WEFT_CLOCK_REAL); /* default kept */
		assert_non_null(strstr(cfg.message, "WEFT_CLOCK"));
		assert_non_null(strstr(cfg.message, "real or virtual"));
		weft_runtime_t *rt = UNTOUCHED;
		assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
		assert_ptr_equal(rt, UNTOUCHED);
	}
}

static void test_config__out_of_range_clock_fails_create(void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.clock = (weft_clock_t)2;
	weft_runtime_t *rt = UNTOUCHED;
	assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
	assert_ptr_equal(rt, UNTOUCHED);
	assert_non_null(strstr(cfg.message, "clock"));
}

/* }======================================================= */

/* {======================================================= dump signal */

static void test_config__dump_signal_is_off_and_weft_dump_signal_names_one(
	void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_int_equal(cfg.dump_signal, 0);
	static const struct {
		const char *text;
		int expect;
	} good[] = { { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
		{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM },
		{ "WINCH", SIGWINCH } };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(setenv("WEFT_DUMP_SIGNAL", good[i].text, 1),
			0);
		assert_int_equal(weft_config_init(&cfg), 0);
		assert_int_equal(cfg.dump_signal, good[i].expect);
		assert_string_equal(cfg.message, "");
	}
}

static void test_config__bad_weft_dump_signal_is_rejected_with_the_name(
	void **state)
{
	(void)state;
	static const char *const bad[] = { "", "usr1", "SIGUSR1", "10", "USR1 ",
		"KILL", "SEGV", "STOP", "USR3" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(setenv("WEFT_DUMP_SIGNAL", bad[i], 1), 0);
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), -EINVAL);
		assert_int_equal(cfg.env_error, -EINVAL);
		assert_int_equal(cfg.dump_signal, 0); /* default kept */
		assert_non_null(strstr(cfg.message, "WEFT_DUMP_SIGNAL"));
		assert_non_null(strstr(cfg.message, "QUIT"));
		weft_runtime_t *rt = UNTOUCHED;
		assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
		assert_ptr_equal(rt, UNTOUCHED);
	}
}

static void test_config__uncatchable_or_reserved_dump_signal_fails_create(
	void **state)
{
	(void)state;
	static const int bad[] = { -1, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
		SIGALRM, 65, 1000 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), 0);
		cfg.dump_signal = bad[i];
		weft_runtime_t *rt = UNTOUCHED;
		assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
		assert_ptr_equal(rt, UNTOUCHED);
		assert_non_null(strstr(cfg.message, "dump_signal"));
	}
}

/* }======================================================= */

/* {======================================================= trace */

static void test_config__trace_is_off_and_weft_trace_names_the_file(
	void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_null(cfg.trace_path);
	assert_int_equal(cfg.trace_events, 0);
	assert_int_equal(cfg.trace_buffer, 4096);
	assert_int_equal(cfg.cpu_sample_us, 1000);
	assert_int_equal(setenv("WEFT_TRACE", "/tmp/some trace.json", 1), 0);
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_string_equal(cfg.trace_path, "/tmp/some trace.json");
	assert_string_equal(cfg.message, "");
}

static void test_config__empty_or_too_long_weft_trace_is_rejected(void **state)
{
	(void)state;
	static char long_path[4097];
	memset(long_path, 'a', sizeof long_path - 1);
	const char *bad[] = { "", long_path };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(setenv("WEFT_TRACE", bad[i], 1), 0);
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), -EINVAL);
		assert_int_equal(cfg.env_error, -EINVAL);
		assert_null(cfg.trace_path); /* default kept */
		assert_non_null(strstr(cfg.message, "WEFT_TRACE"));
		assert_non_null(strstr(cfg.message, "4095"));
		weft_runtime_t *rt = UNTOUCHED;
		assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
		assert_ptr_equal(rt, UNTOUCHED);
	}
}

static void test_config__out_of_range_trace_fields_fail_create(void **state)
{
	(void)state;
	static char long_path[4097];
	memset(long_path, 'a', sizeof long_path - 1);
	for (int i = 0; i < 5; i++) {
		weft_config_t cfg;
		assert_int_equal(weft_config_init(&cfg), 0);
		const char *field = "trace_path";
		if (i == 0) {
			cfg.trace_path = "";
		} else if (i == 1) {
			cfg.trace_path = long_path;
		} else if (i == 2) {
			cfg.trace_events = 2;
			field = "trace_events";
		} else {
			cfg.trace_buffer = i == 3 ? 15 : (1u << 20) + 1;
			field = "trace_buffer";
		}
		weft_runtime_t *rt = UNTOUCHED;
		assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
		assert_ptr_equal(rt, UNTOUCHED);
		assert_non_null(strstr(cfg.message, field));
	}
}

/* A trace file that cannot be created fails the runtime's creation with
 * the open's error, naming the path, and leaves nothing behind. */
static void test_config__an_unopenable_trace_path_fails_create(void **state)
{
	(void)state;
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = 2;
	cfg.trace_path = "/nonexistent-weft-dir/trace.json";
	weft_runtime_t *rt = UNTOUCHED;
	assert_int_equal(weft_runtime_create(&rt, &cfg), -ENOENT);
	assert_ptr_equal(rt, UNTOUCHED);
	assert_non_null(strstr(cfg.message, "trace_path"));
	assert_non_null(strstr(cfg.message, "/nonexistent-weft-dir/"));
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= misspelt names */

static void init_with_env(void *arg)
{
	const char *const *kv = arg;
	for (; kv[0] != NULL; kv += 2)
		setenv(kv[0], kv[1], 1);
	weft_config_t cfg;
	weft_config_init(&cfg);
}

/* A WEFT_ name near one of weft's (or a usual guess) is reported on
 * stderr, naming the right one; a program's own WEFT_ names, far from
 * any, are not. */
static void test_config__a_misspelt_variable_is_reported(void **state)
{
	(void)state;
	char out[1024];
	static const char *const near[] = { "WEFT_WROKERS", "2",
		"WEFT_TRACE_EVENT", "1", "WEFT_THREADS", "4", NULL };
	int st = weft_test_death(init_with_env, (void *)near, out, sizeof out);
	assert_true(WIFEXITED(st));
	assert_non_null(strstr(out,
		"weft: WEFT_WROKERS is not a weft "
		"variable; did you mean WEFT_WORKERS?"));
	assert_non_null(strstr(out,
		"WEFT_TRACE_EVENT is not a weft variable; "
		"did you mean WEFT_TRACE_EVENTS?"));
	assert_non_null(strstr(out,
		"WEFT_THREADS is not a weft variable; "
		"did you mean WEFT_WORKERS?"));
	static const char *const far[] = { "WEFT_MYAPP_PORT", "8080",
		"WEFT_WORKERS", "2", NULL };
	st = weft_test_death(init_with_env, (void *)far, out, sizeof out);
	assert_true(WIFEXITED(st));
	assert_null(strstr(out, "weft:"));
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		CONFIG_TEST(test_config__defaults_are_the_documented_values),
		CONFIG_TEST(test_config__a_misspelt_variable_is_reported),
		CONFIG_TEST(
			test_config__default_workers_follow_the_cpu_affinity_mask),
		CONFIG_TEST(
			test_config__default_config_creates_a_working_runtime),
		CONFIG_TEST(test_config__environment_overrides_every_field),
		CONFIG_TEST(test_config__all_four_variables_apply_together),
		CONFIG_TEST(test_config__weft_run_uses_the_environment),
		CONFIG_TEST(
			test_config__stack_size_from_the_environment_is_what_tasks_get),
		CONFIG_TEST(
			test_config__bad_worker_count_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_stack_size_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_guarded_stacks_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_spin_us_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_offload_threads_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_seed_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_stall_ms_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_variable_keeps_the_good_ones_applied),
		CONFIG_TEST(
			test_config__fixing_the_field_does_not_clear_a_bad_environment_error),
		CONFIG_TEST(
			test_config__weft_run_refuses_a_bad_environment_without_running),
		CONFIG_TEST(
			test_config__a_fresh_init_after_unsetting_the_variable_is_clean),
		CONFIG_TEST(test_config__caller_overrides_after_init_are_used),
		CONFIG_TEST(
			test_config__out_of_range_caller_values_fail_create_with_a_message),
		CONFIG_TEST(
			test_config__range_edges_set_by_the_caller_are_accepted),
		CONFIG_TEST(
			test_config__abort_on_missing_join_defaults_on_in_debug_builds),
		CONFIG_TEST(test_config__null_arguments_are_rejected),
		CONFIG_TEST(test_config__config_not_from_init_is_rejected),
		CONFIG_TEST(
			test_config__clock_defaults_to_real_and_weft_clock_selects),
		CONFIG_TEST(
			test_config__bad_weft_clock_is_rejected_with_the_variable_named),
		CONFIG_TEST(test_config__out_of_range_clock_fails_create),
		CONFIG_TEST(
			test_config__dump_signal_is_off_and_weft_dump_signal_names_one),
		CONFIG_TEST(
			test_config__bad_weft_dump_signal_is_rejected_with_the_name),
		CONFIG_TEST(
			test_config__uncatchable_or_reserved_dump_signal_fails_create),
		CONFIG_TEST(
			test_config__bad_trace_events_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_trace_buffer_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__bad_cpu_sample_is_rejected_with_the_variable_named),
		CONFIG_TEST(
			test_config__trace_is_off_and_weft_trace_names_the_file),
		CONFIG_TEST(
			test_config__empty_or_too_long_weft_trace_is_rejected),
		CONFIG_TEST(test_config__out_of_range_trace_fields_fail_create),
		CONFIG_TEST(test_config__an_unopenable_trace_path_fails_create),
	};
	return WEFT_RUN_TESTS(tests);
}
