/* Shared test helpers.
 *
 * cmocka asserts only work on the test's main thread, so code running
 * inside weft tasks uses CHECK(), which records a failure (file, line,
 * expression) in a lock-free list and returns; the main thread asserts
 * the list is empty after the runtime is destroyed.
 *
 * Every concurrent test runs at 1, 2 and 4 workers (WEFT_TEST registers
 * the three), and every run ends with a leak check: zero live heap bytes,
 * tasks, fibers, stacks, groups, scopes and runtimes. */
#ifndef WEFT_TESTS_SUPPORT_H
#define WEFT_TESTS_SUPPORT_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <weft.h>

/* Records a failed check from any thread; returns the condition. */
int weft_test_check(int ok, const char *file, int line, const char *expr);
#define CHECK(cond) weft_test_check(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ(a, b)                                                         \
	weft_test_check_eq((long long)(a), (long long)(b), __FILE__, __LINE__, \
		#a " == " #b)
int weft_test_check_eq(long long a, long long b, const char *file, int line,
	const char *expr);

/* Runs child(arg) in a forked process whose stderr is captured into buf
 * (NUL-terminated, cut at size - 1); returns the child's wait status.  For
 * tests of behaviour that ends the process (a stack overflow, the abort
 * on a group left without join). */
int weft_test_death(void (*child)(void *), void *arg, char *buf, size_t size);

/* Asserts that a weft_test_death status is an abort (SIGABRT) and that the
 * captured output holds each of the NULL-terminated strings after buf.
 * On any failure it first prints the status and the whole output, so a
 * failure says why (a sanitizer's report, an early exit, another
 * message). */
void weft_test_assert_abort(int status, const char *buf, ...)
	__attribute__((sentinel));

/* Whether the page holding p is resident: 1, 0, or -1 (mincore failed).
 * mincore(2) does not touch the page, so a page given back to the
 * kernel (a released stack) stays released.  Thread: any. */
int weft_test_resident(const void *p);

/* From a task: dumps the runtime (WEFT_DUMP_TEXT) every millisecond until
 * the dump holds want; 0, or -1 after two seconds.  A dump that shows a
 * parked task has read that task's park word after its park was
 * published, so what the worker did before publishing it (a released
 * stack's copy) happens before what the caller does next: mincore(2)
 * shows a page given back but orders nothing, and ThreadSanitizer would
 * call a touch after it a race with the copy. */
int weft_test_dump_until(const char *want);

/* A function whose result must be used: a call that ignores it does not
 * compile (-Wunused-result, an error under -Werror; a (void) cast does
 * not silence it).  Every weft_test_run* is one, so that a test cannot
 * pass while its root task failed. */
#define WEFT_TEST_MUST_USE __attribute__((warn_unused_result))

/* Seeded schedules (docs/semantics.md rule 47).  Every runtime the
 * helpers here create takes WEFT_SEED from the environment (through
 * weft_config_init), so WEFT_SEED=n replays a seeded run; with
 * WEFT_TEST_SEEDED=1, a run whose config has no seed gets a fresh one.
 * A seeded run that fails (a CHECK, the root's result in
 * weft_test_root, a root error) prints its seed; a test that asserts
 * on something else calls weft_test_print_seed before asserting.  Tests
 * that need workers to run at the same time (a busy rendezvous,
 * sync_fixture.h) cannot run seeded.  Main thread. */
void weft_test_print_seed(void);

/* As weft_test_run, with a runtime created from cfg. */
WEFT_TEST_MUST_USE int weft_test_run_cfg(weft_config_t *cfg, weft_fn fn,
	void *arg);

/* Runs fn(arg) as the root task of a fresh runtime with `workers`
 * workers, destroys it, then asserts (main thread) that no CHECK failed
 * and nothing leaked.  Returns fn's result. */
WEFT_TEST_MUST_USE int weft_test_run(unsigned workers, weft_fn fn, void *arg);
/* Same, also handing back the root's error group (caller frees). */
WEFT_TEST_MUST_USE int weft_test_run_err(unsigned workers, weft_fn fn,
	void *arg, weft_error_t **err);

/* The way a test runs its root task: weft_test_run at the worker count
 * the test was registered with (WEFT_TEST, WEFT_TEST_AT), asserting that
 * the root returned 0.  A test that expects another result, needs a
 * config or wants the error tree calls weft_test_run_cfg/_err and
 * asserts the result itself. */
void weft_test_root(void **state, weft_fn root, void *arg);

/* Defines the cmocka test test_<area>__<name> that only runs root(arg)
 * through weft_test_root.  The argument is variadic so that a compound
 * literal with commas can be passed whole, e.g.
 *
 *   WEFT_TEST_ROOT(lock, destroy_while_held_is_ebusy, lock_busy_root,
 *           &(struct lock_test){ 0 })
 *
 * and is registered like any other test: WEFT_TEST(test_lock__...). */
#define WEFT_TEST_ROOT(area, name, root, ...)                                  \
	static void test_##area##__##name(void **state)                        \
	{                                                                      \
		weft_test_root(state, root, __VA_ARGS__);                      \
	}

/* Creates a runtime with `workers` workers and asserts it worked (printing
 * cfg.message if not).  Main thread. */
weft_runtime_t *weft_test_runtime_create(unsigned workers);

/* Threads and open fds of this process, from /proc/self. */
int weft_test_count_threads(void);
int weft_test_count_fds(void);
/* Waits (boundedly) until the thread count equals `expected`: a joined
 * thread stays in /proc/self/task for a moment.  Returns the last count. */
int weft_test_settle_threads(int expected);
/* The thread count to compare against, once sanitizer helper threads
 * (started with the first pthread_create) have appeared and settled. */
int weft_test_baseline_threads(void);

/* Asserts that nothing weft allocated is still alive. */
void weft_test_assert_no_leaks(void);

/* The worker count of a test registered with WEFT_TEST. */
#define WEFT_TEST_WORKERS(state) ((unsigned)(uintptr_t) * (state))

/* Registers test f at 1, 2 and 4 workers. */
#define WEFT_TEST(f)                                                           \
	cmocka_unit_test_prestate(f, (void *)(uintptr_t)1),                    \
		cmocka_unit_test_prestate(f, (void *)(uintptr_t)2),            \
		cmocka_unit_test_prestate(f, (void *)(uintptr_t)4)

/* Registers test f once, at `workers` workers. */
#define WEFT_TEST_AT(f, workers)                                               \
	cmocka_unit_test_prestate(f, (void *)(uintptr_t)(workers))

/* Stress tests: the random seed (WEFT_TEST_SEED, else from the clock;
 * printed so that a failing run can be replayed), and the time budget in
 * seconds (WEFT_STRESS_SECONDS, else plain_default; a quarter of it under
 * the sanitizers). */
unsigned weft_test_seed(void);
double weft_test_stress_seconds(double plain_default);

/* Scales iteration counts down under sanitizers and valgrind. */
long weft_test_scale(long plain);

/* xorshift64*: the generator for random schedules and choices.  Cheap,
 * and its whole state is *state, so each task or thread keeps its own
 * (seeded from weft_test_seed to be replayable).  *state must not be 0. */
uint64_t weft_test_rand(uint64_t *state);

/* In a task: spawns fn(arg) into g (CHECKing that it worked) and returns
 * the task's handle, which the caller releases (NULL if the spawn
 * failed). */
weft_task_t *weft_test_spawn(weft_group_t *g, weft_fn fn, void *arg);

/* In a task: yields until *p >= want and returns 1, or returns 0 after
 * 50 million yields, so that a lost update fails the test instead of
 * hanging it. */
int weft_test_yield_until(atomic_int *p, int want);

/* Runs the group with a name that shows the binary. */
#define WEFT_RUN_TESTS(tests) cmocka_run_group_tests(tests, NULL, NULL)

/* A TCP connection to 127.0.0.1:port (weft_tcp_connect_addr's result),
 * and a connected pair through a listener of its own: *a accepted, *b
 * connected (0, or the failing call's result after a failed CHECK).
 * Thread: weft fiber. */
int weft_test_connect_local(weft_stream_t **s, int port);
int weft_test_tcp_pair(weft_stream_t **a, weft_stream_t **b);

#endif
