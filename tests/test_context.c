/* Tests for the fiber context switch (runtime/fiber.h): first entry and
 * argument passing, register preservation, many switches, migration of a
 * suspended fiber to another OS thread, and the final switch.
 *
 * cmocka may only assert on the test's main thread and never inside a
 * fiber (its longjmp would abandon the fiber's stack), so fibers record
 * what they saw in plain fields and the test asserts afterwards.  Every
 * test ends with the leak check in ctx_teardown. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "core/fiber.h"
#include "core/stack.h"

#define TEST_STACK_SIZE (64 * 1024)

struct ctx_fixture {
	weft__stack_shared_t shared;
	weft__stack_pool_t pool;
	weft__stack_t *st;
	weft__fiber_t thread;
	weft__fiber_t fiber;
};

static int ctx_setup(void **state)
{
	struct ctx_fixture *fx = calloc(1, sizeof *fx);
	if (fx == NULL ||
		weft__stack_shared_init(&fx->shared, TEST_STACK_SIZE, 8) != 0)
		return -1;
	weft__stack_pool_init(&fx->pool, &fx->shared);
	if (weft__stack_get(&fx->pool, &fx->st) != 0)
		return -1;
	weft__fiber_init_thread(&fx->thread);
	*state = fx;
	return 0;
}

static int ctx_teardown(void **state)
{
	struct ctx_fixture *fx = *state;
	weft__fiber_fini_thread(&fx->thread);
	weft__stack_put(&fx->pool, fx->st);
	weft__stack_pool_fini(&fx->pool);
	weft__stack_shared_fini(&fx->shared);
	free(fx);
	/* Every test is a leak test. */
	assert_int_equal(weft__alloc_census_get(WEFT__CENSUS_STACK), 0);
	assert_int_equal(weft__alloc_live_bytes(), 0);
	return 0;
}

/* {====== first entry ====== */

struct arg_probe {
	weft__fiber_t *self, *back;
	void *seen_arg;
	uintptr_t frame_addr;
};

/* noinline: its frame must be the entry function's own. */
__attribute__((noinline)) static void arg_entry(void *arg)
{
	struct arg_probe *p = arg;
	p->seen_arg = arg;
	/* The frame address, not the address of a local: with ASan's
	 * detect_stack_use_after_return, address-taken locals live on a
	 * heap "fake stack".  With a correct entry (sp % 16 == 8 after the
	 * call on x86_64; sp % 16 == 0 always on aarch64) the saved frame
	 * pointer slot is 16-byte aligned in both ABIs. */
	p->frame_addr = (uintptr_t)__builtin_frame_address(0);
	weft__fiber_switch_final(p->self, p->back);
}

static void test_context__fiber_entry_receives_its_argument(void **state)
{
	struct ctx_fixture *fx = *state;
	struct arg_probe p = { .self = &fx->fiber, .back = &fx->thread };
	weft__fiber_init(&fx->fiber, fx->st, arg_entry, &p);
	weft__fiber_switch(&fx->thread, &fx->fiber);
	assert_ptr_equal(p.seen_arg, &p);
}

static void test_context__fiber_runs_on_its_own_aligned_stack(void **state)
{
	struct ctx_fixture *fx = *state;
	struct arg_probe p = { .self = &fx->fiber, .back = &fx->thread };
	weft__fiber_init(&fx->fiber, fx->st, arg_entry, &p);
	weft__fiber_switch(&fx->thread, &fx->fiber);
	uintptr_t lo = (uintptr_t)fx->st->lo;
	assert_in_range(p.frame_addr, lo, lo + fx->st->size - 1);
	assert_int_equal(p.frame_addr % 16, 0);
}
/* }====== */

/* {====== many switches ====== */

struct ping {
	weft__fiber_t *self, *back;
	long count;
	int stop;
};

static void ping_entry(void *arg)
{
	struct ping *p = arg;
	while (!p->stop) {
		p->count++;
		weft__fiber_switch(p->self, p->back);
	}
	weft__fiber_switch_final(p->self, p->back);
}

static void test_context__hundred_thousand_round_trips_keep_state(void **state)
{
	struct ctx_fixture *fx = *state;
	struct ping p = { .self = &fx->fiber, .back = &fx->thread };
	long mismatches = 0;
	weft__fiber_init(&fx->fiber, fx->st, ping_entry, &p);
	for (long i = 0; i < 100000; i++) {
		weft__fiber_switch(&fx->thread, &fx->fiber);
		mismatches += p.count != i + 1;
	}
	p.stop = 1;
	weft__fiber_switch(&fx->thread, &fx->fiber);
	assert_int_equal(mismatches, 0);
	assert_int_equal(p.count, 100000);
}
/* }====== */

/* {====== callee-saved registers ======
 * Twelve values made opaque by an empty asm (so the compiler cannot
 * recompute them) must survive a switch: the compiler keeps them in
 * callee-saved registers (rbx, rbp, r12-r15 / x19-x28) and spills the rest
 * to the stack, so a switch that lost a register or a stack word changes
 * one.  Both sides do it with different values at the same time.  The
 * eight doubles occupy d8-d15 on aarch64 (on x86_64 no xmm register is
 * callee-saved, so they are spilled to the stack). */

static int keep_values(weft__fiber_t *self, weft__fiber_t *other, uint64_t s)
{
	uint64_t a = s * 3 + 1, b = s ^ 0x5555aaaa5555aaaaull, c = s + 7;
	uint64_t d = ~s, e = s << 7, f = s * 0x9e3779b97f4a7c15ull;
	uint64_t g = s >> 3, h = s + 0x1234, i = s * 11, j = s ^ 0xff;
	uint64_t k = s - 99, l = s * s;
	double x0 = (double)s * 1.5, x1 = (double)s + 0.25;
	double x2 = (double)s * 3.0, x3 = (double)s - 0.5;
	double x4 = (double)s * 0.75, x5 = (double)s + 8.0;
	double x6 = (double)s * 5.0, x7 = (double)s - 2.25;
	__asm__ volatile(""
			 : "+r"(a), "+r"(b), "+r"(c), "+r"(d), "+r"(e),
			 "+r"(f));
	__asm__ volatile(""
			 : "+r"(g), "+r"(h), "+r"(i), "+r"(j), "+r"(k),
			 "+r"(l));
#if defined(__aarch64__)
	__asm__ volatile("" : "+w"(x0), "+w"(x1), "+w"(x2), "+w"(x3));
	__asm__ volatile("" : "+w"(x4), "+w"(x5), "+w"(x6), "+w"(x7));
#elif defined(__x86_64__)
	__asm__ volatile("" : "+x"(x0), "+x"(x1), "+x"(x2), "+x"(x3));
	__asm__ volatile("" : "+x"(x4), "+x"(x5), "+x"(x6), "+x"(x7));
#endif
	weft__fiber_switch(self, other);
	/* Launder s too, so the expected values are computed after the
	 * switch rather than kept in registers next to the values (a
	 * register lost on both sides would then go unnoticed). */
	__asm__ volatile("" : "+r"(s));
	return a == s * 3 + 1 && b == (s ^ 0x5555aaaa5555aaaaull) &&
		c == s + 7 && d == ~s && e == s << 7 &&
		f == s * 0x9e3779b97f4a7c15ull && g == s >> 3 &&
		h == s + 0x1234 && i == s * 11 && j == (s ^ 0xff) &&
		k == s - 99 && l == s * s && x0 == (double)s * 1.5 &&
		x1 == (double)s + 0.25 && x2 == (double)s * 3.0 &&
		x3 == (double)s - 0.5 && x4 == (double)s * 0.75 &&
		x5 == (double)s + 8.0 && x6 == (double)s * 5.0 &&
		x7 == (double)s - 2.25;
}

struct keeper {
	weft__fiber_t *self, *back;
	int stop;
	long bad;
};

static void keeper_entry(void *arg)
{
	struct keeper *k = arg;
	uint64_t seed = 1000003;
	while (!k->stop)
		k->bad += !keep_values(k->self, k->back, seed++);
	weft__fiber_switch_final(k->self, k->back);
}

static void test_context__callee_saved_values_survive_switches(void **state)
{
	struct ctx_fixture *fx = *state;
	struct keeper k = { .self = &fx->fiber, .back = &fx->thread };
	long bad = 0;
	weft__fiber_init(&fx->fiber, fx->st, keeper_entry, &k);
	for (uint64_t r = 0; r < 1000; r++)
		bad += !keep_values(&fx->thread, &fx->fiber, r * 77 + 5);
	k.stop = 1;
	weft__fiber_switch(&fx->thread, &fx->fiber);
	assert_int_equal(bad, 0);
	assert_int_equal(k.bad, 0);
}
/* }====== */

/* {====== migration ======
 * The fiber runs a slice on thread A, is resumed by thread B and finishes
 * there.  Both threads stay alive until the end: if A exited first, glibc
 * could hand A's TLS block to B and hide a stale-TLS bug.  The fiber
 * reads a thread-local through a noinline accessor with an asm barrier,
 * the pattern the runtime must use. */

static _Thread_local int mig_tls;

__attribute__((noinline)) static int *mig_tls_ptr(void)
{
	int *p = &mig_tls;
	__asm__ volatile("" : "+r"(p));
	return p;
}

struct mig {
	weft__fiber_t fiber;
	/* Context to switch back to: written by whichever thread resumes the
	 * fiber, before the switch (the switch orders it). */
	weft__fiber_t *back;
	/* 0 start, 1 A has run the first slice, 2 B has finished the fiber.
	 * Release stores pair with the other thread's acquire loads; they
	 * carry the fiber context from A to B. */
	atomic_int phase;
	int tls_first, tls_second;
	int finished;
};

static void mig_entry(void *arg)
{
	struct mig *m = arg;
	m->tls_first = *mig_tls_ptr();
	weft__fiber_switch(&m->fiber, m->back);
	/* Now on thread B: m->back was rewritten by B. */
	m->tls_second = *mig_tls_ptr();
	m->finished = 1;
	weft__fiber_switch_final(&m->fiber, m->back);
}

static void mig_wait(atomic_int *phase, int want)
{
	while (atomic_load_explicit(phase, memory_order_acquire) < want)
		sched_yield();
}

static void *mig_thread_a(void *arg)
{
	struct mig *m = arg;
	weft__fiber_t self;
	*mig_tls_ptr() = 111;
	weft__fiber_init_thread(&self);
	m->back = &self;
	weft__fiber_switch(&self, &m->fiber);
	atomic_store_explicit(&m->phase, 1, memory_order_release);
	mig_wait(&m->phase, 2); /* stay alive until B is done */
	weft__fiber_fini_thread(&self);
	return NULL;
}

static void *mig_thread_b(void *arg)
{
	struct mig *m = arg;
	weft__fiber_t self;
	*mig_tls_ptr() = 222;
	weft__fiber_init_thread(&self);
	mig_wait(&m->phase, 1);
	m->back = &self;
	weft__fiber_switch(&self, &m->fiber);
	atomic_store_explicit(&m->phase, 2, memory_order_release);
	weft__fiber_fini_thread(&self);
	return NULL;
}

static void test_context__fiber_resumes_on_another_thread(void **state)
{
	struct ctx_fixture *fx = *state;
	struct mig m;
	memset(&m, 0, sizeof m);
	atomic_init(&m.phase, 0);
	weft__fiber_init(&m.fiber, fx->st, mig_entry, &m);
	pthread_t a, b;
	assert_int_equal(pthread_create(&b, NULL, mig_thread_b, &m), 0);
	assert_int_equal(pthread_create(&a, NULL, mig_thread_a, &m), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	assert_int_equal(m.finished, 1);
	assert_int_equal(m.tls_first, 111);
	assert_int_equal(m.tls_second, 222);
}
/* }====== */

/* {====== final switch and stack reuse ====== */

struct serial {
	weft__fiber_t *self, *back;
	long ran;
};

static void serial_entry(void *arg)
{
	struct serial *s = arg;
	/* One ordinary round trip, then the final switch. */
	weft__fiber_switch(s->self, s->back);
	s->ran++;
	weft__fiber_switch_final(s->self, s->back);
}

static void test_context__finished_fiber_stack_hosts_the_next_fiber(
	void **state)
{
	struct ctx_fixture *fx = *state;
	struct serial s = { .self = &fx->fiber, .back = &fx->thread };
	/* More lifetimes than fiber.c's TSan handle-reuse bound (256), so
	 * the handle replacement path runs too. */
	for (int i = 0; i < 1000; i++) {
		weft__fiber_init(&fx->fiber, fx->st, serial_entry, &s);
		weft__fiber_switch(&fx->thread, &fx->fiber);
		weft__fiber_switch(&fx->thread, &fx->fiber);
	}
	assert_int_equal(s.ran, 1000);
}
/* }====== */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_context__fiber_entry_receives_its_argument,
			ctx_setup, ctx_teardown),
		cmocka_unit_test_setup_teardown(
			test_context__fiber_runs_on_its_own_aligned_stack,
			ctx_setup, ctx_teardown),
		cmocka_unit_test_setup_teardown(
			test_context__hundred_thousand_round_trips_keep_state,
			ctx_setup, ctx_teardown),
		cmocka_unit_test_setup_teardown(
			test_context__callee_saved_values_survive_switches,
			ctx_setup, ctx_teardown),
		cmocka_unit_test_setup_teardown(
			test_context__fiber_resumes_on_another_thread,
			ctx_setup, ctx_teardown),
		cmocka_unit_test_setup_teardown(
			test_context__finished_fiber_stack_hosts_the_next_fiber,
			ctx_setup, ctx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
