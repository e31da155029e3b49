/* Tests for fiber stacks (runtime/stack.h): LIFO reuse, the guard budget
 * and slabs, the canary, memory release, size limits, allocation failure,
 * the signal-handler refcount, and the overflow report (a death test in a
 * forked child).  Every test ends with the census/leak check. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "core/fiber.h"
#include "core/sanitizer.h"
#include "core/stack.h"
#include "weft/debug.h"
#include "support.h"

#define KIB 1024
#define TEST_STACK_SIZE (64 * KIB)

static void expect_no_leaks(void)
{
	assert_int_equal(weft__alloc_census_get(WEFT__CENSUS_STACK), 0);
	assert_int_equal(weft__alloc_live_bytes(), 0);
}

/* {====== pools ====== */

static void test_stack__put_then_get_returns_the_hot_stack_first(void **state)
{
	(void)state;
	weft__stack_shared_t s;
	weft__stack_pool_t p;
	weft__stack_t *a, *b, *x, *y;
	assert_int_equal(weft__stack_shared_init(&s, TEST_STACK_SIZE, 8), 0);
	weft__stack_pool_init(&p, &s);
	assert_int_equal(weft__stack_get(&p, &a), 0);
	assert_int_equal(weft__stack_get(&p, &b), 0);
	assert_ptr_not_equal(a, b);
	weft__stack_put(&p, a);
	weft__stack_put(&p, b);
	assert_int_equal(weft__stack_get(&p, &x), 0);
	assert_int_equal(weft__stack_get(&p, &y), 0);
	assert_ptr_equal(x, b); /* last in, first out */
	assert_ptr_equal(y, a);
	assert_int_equal(s.total, 2); /* nothing new was mapped */
	weft__stack_put(&p, x);
	weft__stack_put(&p, y);
	weft__stack_pool_fini(&p);
	weft__stack_shared_fini(&s);
	expect_no_leaks();
}

static void test_stack__pool_fini_hands_stacks_to_other_pools(void **state)
{
	(void)state;
	enum { N = 200 }; /* beyond the local cache: spill and refill */
	weft__stack_shared_t s;
	weft__stack_pool_t p1, p2;
	weft__stack_t *st[N];
	assert_int_equal(weft__stack_shared_init(&s, TEST_STACK_SIZE, 8), 0);
	weft__stack_pool_init(&p1, &s);
	weft__stack_pool_init(&p2, &s);
	for (int i = 0; i < N; i++)
		assert_int_equal(weft__stack_get(&p1, &st[i]), 0);
	for (int i = 0; i < N; i++)
		weft__stack_put(&p1, st[i]);
	weft__stack_pool_fini(&p1);
	for (int i = 0; i < N; i++)
		assert_int_equal(weft__stack_get(&p2, &st[i]), 0);
	assert_int_equal(s.total, N); /* all reused, none mapped */
	for (int i = 0; i < N; i++)
		weft__stack_put(&p2, st[i]);
	weft__stack_pool_fini(&p2);
	weft__stack_shared_fini(&s);
	expect_no_leaks();
}
/* }====== */

/* {====== guard budget and slabs ====== */

static long count_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;
	if (f == NULL)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int by_lo(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)(*(weft__stack_t *const *)a)->lo;
	uintptr_t y = (uintptr_t)(*(weft__stack_t *const *)b)->lo;
	return (x > y) - (x < y);
}

static void test_stack__stacks_past_guard_budget_come_from_slabs(void **state)
{
	(void)state;
	enum { N = 1000, GUARDED = 4 };
	weft__stack_shared_t s;
	weft__stack_pool_t p;
	weft__stack_t **st = calloc(N, sizeof *st);
	assert_non_null(st);
	assert_int_equal(weft__stack_shared_init(&s, TEST_STACK_SIZE, GUARDED),
		0);
	weft__stack_pool_init(&p, &s);
	long maps_before = count_mappings();
	for (int i = 0; i < N; i++) {
		assert_int_equal(weft__stack_get(&p, &st[i]), 0);
		assert_int_equal(st[i]->guarded, i < GUARDED);
		assert_int_equal(st[i]->size, TEST_STACK_SIZE);
		assert_int_equal((uintptr_t)st[i]->lo % 4096, 0);
	}
	long maps_after = count_mappings();
	/* Guarded: two VMAs each.  Slabs: one per 256 stacks (the kernel may
	 * even merge neighbours).  One VMA per stack would add ~1000. */
	assert_in_range(maps_after - maps_before, 0, 2 * GUARDED + N / 256 + 8);
	assert_int_equal(weft__alloc_census_get(WEFT__CENSUS_STACK), N);
	/* All stacks are disjoint, and using the top of each leaves every
	 * canary intact. */
	weft__stack_t **sorted = calloc(N, sizeof *sorted);
	assert_non_null(sorted);
	memcpy(sorted, st, N * sizeof *st);
	qsort(sorted, N, sizeof *sorted, by_lo);
	for (int i = 1; i < N; i++)
		assert_true((char *)sorted[i - 1]->lo + sorted[i - 1]->size <=
			(char *)sorted[i]->lo);
	free(sorted);
	for (int i = 0; i < N; i++)
		((uint64_t *)((char *)st[i]->lo + st[i]->size))[-1] = i;
	for (int i = 0; i < N; i++)
		assert_int_equal(weft__stack_check(st[i]), 0);
	for (int i = 0; i < N; i++)
		weft__stack_put(&p, st[i]);
	weft__stack_pool_fini(&p);
	weft__stack_shared_fini(&s);
	free(st);
	expect_no_leaks();
}

/* }====== */

/* {====== canary ====== */

static void test_stack__canary_catches_overwrite_of_unguarded(void **state)
{
	(void)state;
	weft__stack_shared_t s;
	weft__stack_pool_t p;
	weft__stack_t *st;
	assert_int_equal(weft__stack_shared_init(&s, TEST_STACK_SIZE, 0), 0);
	weft__stack_pool_init(&p, &s);
	assert_int_equal(weft__stack_get(&p, &st), 0);
	assert_int_equal(st->guarded, 0);
	assert_int_equal(weft__stack_check(st), 0);
	volatile uint64_t *low = st->lo;
	low[3] = 0xdeadbeef; /* what an overflowing frame would do */
	assert_int_equal(weft__stack_check(st), -1);
	low[3] = 0;
	assert_int_equal(weft__stack_check(st), 0);
	weft__stack_put(&p, st);
	weft__stack_pool_fini(&p);
	weft__stack_shared_fini(&s);
	expect_no_leaks();
}
/* }====== */

/* {====== memory release ====== */

static size_t resident_pages(const weft__stack_t *st)
{
	unsigned char vec[TEST_STACK_SIZE / 4096];
	size_t n = 0;
	if (mincore(st->lo, st->size, vec) != 0)
		return (size_t)-1;
	for (size_t i = 0; i < st->size / 4096; i++)
		n += vec[i] & 1;
	return n;
}

/* one_by_one: as on a kernel that refuses process_madvise's batches
 * (stack.c then releases one stack per madvise). */
static void trim_releases_idle_stacks(bool one_by_one)
{
	enum { N = 1024, PAGES = TEST_STACK_SIZE / 4096 };
	if (sysconf(_SC_PAGESIZE) != 4096)
		skip();
	weft__stack_shared_t s;
	weft__stack_pool_t p;
	weft__stack_t **st = calloc(N, sizeof *st);
	assert_non_null(st);
	assert_int_equal(weft__stack_shared_init(&s, TEST_STACK_SIZE, 0), 0);
	if (one_by_one)
		atomic_store(&s.no_batch, true);
	weft__stack_pool_init(&p, &s);
	for (int i = 0; i < N; i++) {
		assert_int_equal(weft__stack_get(&p, &st[i]), 0);
		/* Use all of it except the canary line. */
		memset((char *)st[i]->lo + 64, 0xa5, st[i]->size - 64);
	}
	for (int i = 0; i < N; i++)
		weft__stack_put(&p, st[i]);
	/* Returning stacks releases nothing (that would put a madvise on
	 * every task exit); an idle worker trims, in batches. */
	size_t trimmed = 0, n;
	while ((n = weft__stack_trim(&s, 64)) > 0) {
		assert_in_range(n, 1, 64);
		trimmed += n;
	}
	assert_true(trimmed > N / 2);
	size_t resident = 0;
	for (int i = 0; i < N; i++)
		resident += resident_pages(st[i]);
	/* Kept whole: the local cache and the shared pool's warm part (a few
	 * hundred stacks); every other stack keeps at most its canary page.
	 * Without release all N * PAGES pages would stay. */
	assert_in_range(resident, 0, N * PAGES / 2);
	/* Released stacks are handed out again and work. */
	for (int i = 0; i < N; i++) {
		assert_int_equal(weft__stack_get(&p, &st[i]), 0);
		memset((char *)st[i]->lo + 64, 0x5a, 128);
	}
	for (int i = 0; i < N; i++)
		weft__stack_put(&p, st[i]);
	weft__stack_pool_fini(&p);
	weft__stack_shared_fini(&s);
	free(st);
	expect_no_leaks();
}

static void test_stack__trim_releases_idle_stacks_past_the_watermark(
	void **state)
{
	(void)state;
	trim_releases_idle_stacks(false);
}

static void test_stack__trim_releases_one_by_one_without_batches(void **state)
{
	(void)state;
	trim_releases_idle_stacks(true);
}
/* }====== */

/* {====== configuration and failures ====== */

static void test_stack__sizes_outside_16k_to_1g_are_rejected(void **state)
{
	(void)state;
	weft__stack_shared_t s;
	assert_int_equal(weft__stack_shared_init(&s, 16 * KIB - 1, 1), -EINVAL);
	assert_int_equal(weft__stack_shared_init(&s, ((size_t)1 << 30) + 1, 1),
		-EINVAL);
	assert_int_equal(weft__stack_shared_init(&s, 16 * KIB + 1, 1), 0);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	assert_int_equal(s.stack_size % page, 0); /* rounded up */
	assert_true(s.stack_size >= 16 * KIB + 1);
	weft__stack_shared_fini(&s);
	expect_no_leaks();
}

static void test_stack__get_fails_cleanly_when_allocation_fails(void **state)
{
	(void)state;
	weft__stack_shared_t s;
	weft__stack_pool_t p;
	weft__stack_t *st = NULL;
	/* Guarded and slab stacks each allocate their metadata. */
	for (size_t guarded = 0; guarded <= 1; guarded++) {
		assert_int_equal(weft__stack_shared_init(&s, TEST_STACK_SIZE,
					 guarded),
			0);
		weft__stack_pool_init(&p, &s);
		weft_debug_fail_alloc(1);
		assert_int_equal(weft__stack_get(&p, &st), -ENOMEM);
		weft_debug_fail_alloc(0);
		assert_null(st);
		assert_int_equal(s.total, 0);
		weft__stack_pool_fini(&p);
		weft__stack_shared_fini(&s);
		expect_no_leaks();
	}
}

/* The alternate stack's memory is the starting thread's to allocate, so
 * its failure has somebody to go to (weft_runtime_create); a thread_init
 * refused by the kernel leaves fini harmless. */
static void test_stack__altstack_fails_cleanly_without_memory(void **state)
{
	(void)state;
	weft__altstack_t a;
	weft__stack_t *running = NULL;
	weft_debug_fail_alloc(1);
	assert_int_equal(weft__stack_altstack_alloc(&a), -ENOMEM);
	weft_debug_fail_alloc(0);
	assert_null(a.mem);
	weft__stack_altstack_free(&a); /* empty: nothing */
	expect_no_leaks();
	weft__altstack_t tiny = { &a, 1 };
	assert_int_equal(weft__stack_thread_init(&running, &tiny), -ENOMEM);
	weft__stack_thread_fini(); /* after a failure: nothing */
	assert_int_equal(weft__stack_altstack_alloc(&a), 0);
	assert_int_equal(weft__stack_thread_init(&running, &a), 0);
	weft__stack_thread_fini();
	weft__stack_altstack_free(&a);
	expect_no_leaks();
}
/* }====== */

/* {====== signal handler ====== */

static void dummy_segv(int sig)
{
	(void)sig;
}

static void test_stack__handler_release_restores_previous_handler(void **state)
{
	(void)state;
	struct sigaction mine = { .sa_handler = dummy_segv }, saved, cur;
	sigemptyset(&mine.sa_mask);
	assert_int_equal(sigaction(SIGSEGV, &mine, &saved), 0);

	assert_int_equal(weft__stack_handler_acquire(), 0);
	assert_int_equal(weft__stack_handler_acquire(), 0); /* 2nd runtime */
	sigaction(SIGSEGV, NULL, &cur);
	assert_true(cur.sa_flags & SA_SIGINFO);
	weft__stack_handler_release();
	sigaction(SIGSEGV, NULL, &cur);
	assert_true(cur.sa_flags & SA_SIGINFO); /* still one user */
	weft__stack_handler_release();
	sigaction(SIGSEGV, NULL, &cur);
	assert_false(cur.sa_flags & SA_SIGINFO);
	assert_ptr_equal((void *)(uintptr_t)cur.sa_handler,
		(void *)(uintptr_t)dummy_segv);

	sigaction(SIGSEGV, &saved, NULL);
}

/* The death test's fiber: recurses until it hits the guard page. */
static weft__fiber_t *overflow_back;

__attribute__((noinline)) static unsigned long deep_recursion(unsigned long n)
{
	volatile char pad[512];
	pad[0] = (char)n;
	pad[sizeof pad - 1] = (char)n;
	if (n == (unsigned long)-1) /* never: keeps gcc from seeing a loop */
		return 0;
	/* Not a tail call: the frame stays. */
	return deep_recursion(n + 1) + (unsigned long)pad[0] +
		(unsigned long)pad[sizeof pad - 1];
}

static void overflow_entry(void *arg)
{
	weft__fiber_t *self = arg;
	volatile unsigned long r = deep_recursion(0);
	(void)r;
	weft__fiber_switch_final(self, overflow_back);
}

/* Child side: sets up what a worker would, then overflows a named task's
 * stack.  Must never return into cmocka. */
/* In the forked child (weft_test_death): a guarded fiber that recurses. */
static void overflow_child(void *arg)
{
	(void)arg;
	weft__stack_shared_t s;
	weft__stack_pool_t p;
	weft__stack_t *st;
	weft__fiber_t thread, fiber;
	static weft__stack_t *running; /* the worker's slot, here */
	static weft__altstack_t alt;
	if (weft__stack_shared_init(&s, TEST_STACK_SIZE, 4) != 0 ||
		weft__stack_altstack_alloc(&alt) != 0 ||
		weft__stack_thread_init(&running, &alt) != 0 ||
		weft__stack_handler_acquire() != 0)
		_exit(2);
	weft__stack_pool_init(&p, &s);
	if (weft__stack_get(&p, &st) != 0 || !st->guarded)
		_exit(3);
	st->owner_name = "deep_recursion";
	weft__fiber_init_thread(&thread);
	overflow_back = &thread;
	weft__fiber_init(&fiber, st, overflow_entry, &fiber);
	weft__stack_set_running(&running, st);
	weft__fiber_switch(&thread, &fiber);
	_exit(4); /* the overflow should have aborted */
}

static void test_stack__overflow_is_reported_with_the_task_name(void **state)
{
	(void)state;
#ifdef WEFT__ASAN
	/* ASan owns SIGSEGV and reports the overflow itself (as
	 * stack-overflow), and its instrumentation changes frame sizes. */
	skip();
#endif
	char buf[4096];
	int status = weft_test_death(overflow_child, NULL, buf, sizeof buf);
	/* The fiber's frames follow (the test's own functions are not
	 * exported, so glibc prints them as object+offset). */
	weft_test_assert_abort(status, buf,
		"stack overflow in task 'deep_recursion'",
		"(stack of 65536 bytes)",
		"weft: backtrace of the overflowing task", ")[0x", NULL);
}
/* }====== */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_stack__put_then_get_returns_the_hot_stack_first),
		cmocka_unit_test(
			test_stack__pool_fini_hands_stacks_to_other_pools),
		cmocka_unit_test(
			test_stack__stacks_past_guard_budget_come_from_slabs),
		cmocka_unit_test(
			test_stack__canary_catches_overwrite_of_unguarded),
		cmocka_unit_test(
			test_stack__trim_releases_idle_stacks_past_the_watermark),
		cmocka_unit_test(
			test_stack__trim_releases_one_by_one_without_batches),
		cmocka_unit_test(
			test_stack__sizes_outside_16k_to_1g_are_rejected),
		cmocka_unit_test(
			test_stack__get_fails_cleanly_when_allocation_fails),
		cmocka_unit_test(
			test_stack__altstack_fails_cleanly_without_memory),
		cmocka_unit_test(
			test_stack__handler_release_restores_previous_handler),
		cmocka_unit_test(
			test_stack__overflow_is_reported_with_the_task_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
