/* A task that overflows its stack is reported with its name and its
 * backtrace, through the
 * whole runtime (guard page + handler on the alternate signal stack), and
 * the process ends instead of corrupting memory.  Runs in a forked child.
 * Skipped under ASan, which owns SIGSEGV and reports overflows itself. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static volatile char overflow_sink;

/* Not static: the report's backtrace names functions through the dynamic
 * symbol table (the test is linked with -rdynamic). */
int overflow_recurse(int depth);
__attribute__((noinline)) int overflow_recurse(int depth)
{
	volatile char frame[512];
	if (depth > 100000000) /* never: 64 KiB stacks overflow long before */
		return 0;
	frame[0] = (char)depth;
	overflow_sink = frame[0];
	return overflow_recurse(depth + 1) + frame[1];
}

static int overflow_task(void *arg)
{
	(void)arg;
	return overflow_recurse(0);
}

__attribute__((unused)) static int overflow_root(void *arg)
{
	weft_group_t *g;
	if (weft_group_open(&g) < 0)
		return -ENOMEM;
	weft_spawn_opts_t o = { .name = "deep_recursion" };
	weft_group_spawn_opts(g, overflow_task, arg, &o);
	return weft_group_join(g, NULL);
}

/* In the forked child: a runtime whose task overflows its stack. */
__attribute__((unused)) static void overflow_child(void *arg)
{
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = (unsigned)(uintptr_t)arg;
	weft_runtime_t *rt;
	if (weft_runtime_create(&rt, &cfg) < 0)
		_exit(2);
	weft_runtime_run(rt, overflow_root, NULL, NULL);
}

static void test_overflow__is_reported_with_the_task_name(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
#if defined(__SANITIZE_ADDRESS__)
	(void)workers;
	skip();
#else
	char buf[4096];
	int status = weft_test_death(overflow_child, (void *)(uintptr_t)workers,
		buf, sizeof buf);
	/* Then the overflowing task's backtrace, raw frames with names. */
	weft_test_assert_abort(status, buf,
		"stack overflow in task 'deep_recursion'",
		"weft: backtrace of the overflowing task",
		"(overflow_recurse+0x", NULL);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_overflow__is_reported_with_the_task_name),
	};
	return WEFT_RUN_TESTS(tests);
}
