/* Tests for runtime/deque.c: single-threaded behaviour (order, growth,
 * emptiness, allocation failure) and a CK-style adversarial validator in
 * which one owner pushes and pops tagged items while 1, 2 or 4 thieves
 * steal, and every item must come out exactly once with its tag intact.
 *
 * cmocka asserts only work on the main thread: the owner and the thieves
 * record failures in atomics, and the main thread asserts after joining
 * them.  Every test ends with a check that weft holds no heap
 * memory.
 *
 * Environment:
 *   WEFT_TEST_SEED    seed for the validator's random choices (printed)
 *   WEFT_DEQUE_ITEMS  items per validator run (default 2,000,000; less
 *                     under sanitizers, see VALIDATOR_DEFAULT_ITEMS) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "core/deque.h"
#include "weft/debug.h"

#include "support.h"

#define ITEM(n) ((void *)(uintptr_t)(n))
#define ITEM_NUM(p) ((uintptr_t)(p))

/* Every test: weft_debug_fail_alloc is off again and no weft heap byte is
 * left. */
static int deque_teardown(void **state)
{
	(void)state;
	weft_debug_fail_alloc(0);
	assert_int_equal(weft__alloc_live_bytes(), 0);
	assert_int_equal(weft__alloc_live_count(), 0);
	return 0;
}

/* Allocation fault injection (weft_debug_fail_alloc) exists only in
 * WEFT_DEBUG builds, which every test build is; elsewhere the tests that
 * need it are reported as skipped rather than failed. */
static void skip_without_fault_injection(void)
{
#ifndef WEFT_DEBUG
	skip();
#endif
}

static void test_deque__init_rejects_capacity_out_of_range(void **state)
{
	(void)state;
	weft__deque_t d;
	assert_int_equal(weft__deque_init(&d, 0), -EINVAL);
	assert_int_equal(weft__deque_init(&d, 1), -EINVAL);
	assert_int_equal(weft__deque_init(&d, 31), -EINVAL);
	assert_int_equal(weft__deque_init(&d, 2), 0);
	weft__deque_fini(&d);
}

static void test_deque__init_reports_enomem_when_allocation_fails(void **state)
{
	(void)state;
	skip_without_fault_injection();
	weft__deque_t d;
	weft_debug_fail_alloc(1);
	assert_int_equal(weft__deque_init(&d, 4), -ENOMEM);
	weft_debug_fail_alloc(0);
}

static void test_deque__pop_is_lifo(void **state)
{
	(void)state;
	weft__deque_t d;
	assert_int_equal(weft__deque_init(&d, 4), 0);
	for (uintptr_t i = 1; i <= 10; i++)
		assert_int_equal(weft__deque_push(&d, ITEM(i)), 0);
	for (uintptr_t i = 10; i >= 1; i--)
		assert_int_equal(ITEM_NUM(weft__deque_pop(&d)), i);
	assert_null(weft__deque_pop(&d));
	weft__deque_fini(&d);
}

static void test_deque__steal_is_fifo(void **state)
{
	(void)state;
	weft__deque_t d;
	void *out;
	assert_int_equal(weft__deque_init(&d, 4), 0);
	for (uintptr_t i = 1; i <= 10; i++)
		assert_int_equal(weft__deque_push(&d, ITEM(i)), 0);
	for (uintptr_t i = 1; i <= 10; i++) {
		assert_int_equal(weft__deque_steal(&d, &out), 0);
		assert_int_equal(ITEM_NUM(out), i);
	}
	assert_int_equal(weft__deque_steal(&d, &out), -ENOENT);
	weft__deque_fini(&d);
}

static void test_deque__grows_when_full_and_keeps_every_item(void **state)
{
	(void)state;
	enum { COUNT = 1000 };
	weft__deque_t d;
	void *out;
	static unsigned char seen[COUNT + 1];
	memset(seen, 0, sizeof seen);
	assert_int_equal(weft__deque_init(&d, 2), 0);
	/* Move top off zero first, so growth copies a range that wraps
	 * around the end of the 4-slot array. */
	for (uintptr_t i = 1; i <= 3; i++)
		assert_int_equal(weft__deque_push(&d, ITEM(i)), 0);
	for (uintptr_t i = 1; i <= 2; i++) {
		assert_int_equal(weft__deque_steal(&d, &out), 0);
		assert_int_equal(ITEM_NUM(out), i);
		seen[i]++;
	}
	for (uintptr_t i = 4; i <= COUNT; i++)
		assert_int_equal(weft__deque_push(&d, ITEM(i)), 0);
	assert_int_equal(weft__deque_size_approx(&d), COUNT - 2);
	/* Oldest half by steal (FIFO), the rest by pop (LIFO). */
	for (uintptr_t i = 3; i <= COUNT / 2; i++) {
		assert_int_equal(weft__deque_steal(&d, &out), 0);
		assert_int_equal(ITEM_NUM(out), i);
		seen[i]++;
	}
	for (uintptr_t i = COUNT; i > COUNT / 2; i--) {
		void *p = weft__deque_pop(&d);
		assert_int_equal(ITEM_NUM(p), i);
		seen[i]++;
	}
	assert_null(weft__deque_pop(&d));
	assert_int_equal(weft__deque_size_approx(&d), 0);
	for (unsigned i = 1; i <= COUNT; i++)
		assert_int_equal(seen[i], 1);
	weft__deque_fini(&d);
}

static void test_deque__empty_pop_and_steal_report_empty(void **state)
{
	(void)state;
	weft__deque_t d;
	void *out = ITEM(77);
	assert_int_equal(weft__deque_init(&d, 2), 0);
	assert_null(weft__deque_pop(&d));
	assert_null(weft__deque_pop(&d));
	assert_int_equal(weft__deque_steal(&d, &out), -ENOENT);
	assert_int_equal(ITEM_NUM(out), 77); /* untouched on failure */
	assert_int_equal(weft__deque_size_approx(&d), 0);
	/* Emptied by pop, then by steal: both ends agree it is empty. */
	assert_int_equal(weft__deque_push(&d, ITEM(1)), 0);
	assert_int_equal(ITEM_NUM(weft__deque_pop(&d)), 1);
	assert_null(weft__deque_pop(&d));
	assert_int_equal(weft__deque_steal(&d, &out), -ENOENT);
	assert_int_equal(weft__deque_push(&d, ITEM(2)), 0);
	assert_int_equal(weft__deque_steal(&d, &out), 0);
	assert_int_equal(ITEM_NUM(out), 2);
	assert_null(weft__deque_pop(&d));
	assert_int_equal(weft__deque_steal(&d, &out), -ENOENT);
	assert_int_equal(weft__deque_size_approx(&d), 0);
	weft__deque_fini(&d);
}

static void test_deque__push_fails_cleanly_when_growth_allocation_fails(
	void **state)
{
	(void)state;
	skip_without_fault_injection();
	weft__deque_t d;
	void *out;
	assert_int_equal(weft__deque_init(&d, 2), 0);
	for (uintptr_t i = 1; i <= 4; i++)
		assert_int_equal(weft__deque_push(&d, ITEM(i)), 0);
	long injected = weft_debug_injected_failures();
	weft_debug_fail_alloc(1);
	assert_int_equal(weft__deque_push(&d, ITEM(5)), -ENOMEM);
	weft_debug_fail_alloc(0);
	assert_int_equal(weft_debug_injected_failures(), injected + 1);
	/* Nothing happened: same size, same items at both ends. */
	assert_int_equal(weft__deque_size_approx(&d), 4);
	assert_int_equal(ITEM_NUM(weft__deque_pop(&d)), 4);
	assert_int_equal(weft__deque_steal(&d, &out), 0);
	assert_int_equal(ITEM_NUM(out), 1);
	/* And the deque still works, including growth. */
	for (uintptr_t i = 5; i <= 9; i++)
		assert_int_equal(weft__deque_push(&d, ITEM(i)), 0);
	for (uintptr_t i = 9; i >= 5; i--)
		assert_int_equal(ITEM_NUM(weft__deque_pop(&d)), i);
	assert_int_equal(ITEM_NUM(weft__deque_pop(&d)), 3);
	assert_int_equal(ITEM_NUM(weft__deque_pop(&d)), 2);
	assert_null(weft__deque_pop(&d));
	weft__deque_fini(&d);
}

static void test_deque__fini_frees_every_array_even_when_items_remain(
	void **state)
{
	(void)state;
	weft__deque_t d;
	assert_int_equal(weft__deque_init(&d, 2), 0);
	for (uintptr_t i = 1; i <= 100; i++) /* grows 4 -> 128: 5 retired */
		assert_int_equal(weft__deque_push(&d, ITEM(i)), 0);
	weft__deque_fini(&d);
	/* deque_teardown checks that nothing is left. */
}

/* {====================================================================
 * The adversarial validator
 * ====================================================================
 *
 * One owner thread pushes N items in random bursts, each tagged with a
 * magic value and its sequence number, and pops a random share of each
 * burst, stalling briefly between pops; now and then it waits for the
 * thieves to bring the deque down to a few items.  K thieves steal
 * concurrently and stall at random.  The run is cut into rounds of
 * ROUND_ITEMS items, each with a fresh deque of capacity 4 and a random
 * ceiling (1 to 4096 items) on how full the owner lets it get: low ceilings
 * keep pop and steal racing for the last few items, and every round grows
 * the array several times (up to 8192 slots) while thieves steal.
 *
 * Whoever takes an item checks its magic, bumps its counter and overwrites
 * the magic: at the end every counter must be 1 and every magic
 * overwritten.  The owner also checks that pop is LIFO: the first pop after
 * a push returns that push's item (a thief could only have taken it by
 * taking everything, and then pop returns NULL), and consecutive pops
 * return strictly older items.
 *
 * Items are written with plain stores before they are pushed and read with
 * plain loads by whoever takes them, so TSan checks that the deque carries
 * a happens-before edge from push to steal. */

#define ITEM_MAGIC 0x5745465444455155ULL /* "WEFTDEQU" */
#define ITEM_TAKEN 0x54414b454e2e2e2eULL /* "TAKEN..." */
#define ROUND_ITEMS 10000

#if defined(__SANITIZE_THREAD__)
#define VALIDATOR_DEFAULT_ITEMS 1000000
#elif defined(__SANITIZE_ADDRESS__)
#define VALIDATOR_DEFAULT_ITEMS 2000000
#else
#define VALIDATOR_DEFAULT_ITEMS 2000000
#endif

#define MAX_THIEVES 4

struct item {
	uint64_t magic;
	uint64_t seq;
};

/* The validator's state; one per run, on the main thread's stack. */
struct validator {
	weft__deque_t deque; /* re-initialised every round */
	struct item *items;  /* N items, written by the owner */
	atomic_uint *taken;  /* per-item take counter */
	size_t n;	     /* items in the whole run */
	size_t round_begin;  /* first item of this round */
	size_t round_end;    /* one past the last item of this round */
	unsigned thieves;    /* thieves in this run */
	uint64_t seed;
	atomic_uint ready; /* threads waiting at the start gate */
	atomic_int go;	   /* opens the start gate */
	atomic_int done;   /* owner drained the deque: thieves leave */
	/* Failures, recorded by any thread, asserted by the main thread. */
	atomic_ulong bad_magic;	  /* taken item without its magic */
	atomic_ulong bad_pointer; /* item pointer outside items[] */
	atomic_ulong twice;	  /* counter already non-zero when taken */
	atomic_ulong lifo;	  /* pop order broke LIFO */
	atomic_ulong push_failed; /* push returned an error */
	atomic_ulong bad_rc;	  /* steal returned an undocumented code */
	atomic_ulong not_empty;	  /* steal found an item after the drain */
	/* Statistics, printed. */
	atomic_ulong popped;
	atomic_ulong stolen;
	atomic_ulong aborted;	 /* steals that returned -EAGAIN */
	atomic_ulong owner_lost; /* pops that lost the last item */
	atomic_ulong max_size;	 /* largest size the owner saw */
};

struct thief_arg {
	struct validator *v;
	unsigned index;
};

static uint64_t rng_seed(uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t s = seed ^ (a * 0x9e3779b97f4a7c15ULL) ^
		(b * 0xbf58476d1ce4e5b9ULL);
	return s != 0 ? s : 1;
}

static void cpu_relax(unsigned spins)
{
	for (unsigned i = 0; i < spins; i++) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ __volatile__("yield" ::: "memory");
#else
		atomic_signal_fence(memory_order_seq_cst);
#endif
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void record(atomic_ulong *counter)
{
	atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Checks and consumes one item taken by pop or steal.  Returns its seq, or
 * UINT64_MAX for a pointer that is not one of the run's items. */
static uint64_t validator_take(struct validator *v, void *p)
{
	struct item *it = p;
	if (it < v->items || it >= v->items + v->n) {
		record(&v->bad_pointer);
		return UINT64_MAX;
	}
	if (it->magic != ITEM_MAGIC || it->seq != (uint64_t)(it - v->items))
		record(&v->bad_magic);
	it->magic = ITEM_TAKEN;
	size_t seq = (size_t)(it - v->items);
	/* Relaxed: a counter; the main thread reads it after joining. */
	if (atomic_fetch_add_explicit(&v->taken[seq], 1,
		    memory_order_relaxed) != 0)
		record(&v->twice);
	return seq;
}

static void validator_start_gate(struct validator *v)
{
	atomic_fetch_add_explicit(&v->ready, 1, memory_order_relaxed);
	while (!atomic_load_explicit(&v->go, memory_order_acquire))
		sched_yield();
}

static void *validator_thief(void *arg)
{
	struct thief_arg *ta = arg;
	struct validator *v = ta->v;
	uint64_t rng = rng_seed(v->seed, v->round_begin + 1, ta->index + 1);
	unsigned empties = 0;
	validator_start_gate(v);
	for (;;) {
		void *p;
		int rc = weft__deque_steal(&v->deque, &p);
		if (rc == 0) {
			validator_take(v, p);
			record(&v->stolen);
			empties = 0;
		} else if (rc == -EAGAIN) {
			record(&v->aborted);
		} else if (rc == -ENOENT) {
			/* Acquire: pairs with the main thread's release
			 * store of done, after which the deque stays
			 * empty. */
			if (atomic_load_explicit(&v->done,
				    memory_order_acquire)) {
				if (weft__deque_steal(&v->deque, &p) != -ENOENT)
					record(&v->not_empty);
				break;
			}
			/* More threads than cores: let the owner run. */
			if (++empties % 64 == 0)
				sched_yield();
		} else {
			record(&v->bad_rc);
			break;
		}
		uint64_t r = weft_test_rand(&rng);
		if (r % 64 == 0)
			cpu_relax((unsigned)(r >> 32) % 512);
		else if (r % 4096 == 1)
			sched_yield();
	}
	return NULL;
}

/* Owner-side pop with the LIFO checks.  *newest is the seq of the last push
 * if no pop happened since, else UINT64_MAX; *last is the seq of the
 * previous pop since the last push.  Returns 0 when the deque was empty. */
static int validator_pop(struct validator *v, uint64_t *newest, uint64_t *last)
{
	/* Only the owner adds items, so a deque that looked non-empty just
	 * before a pop that finds nothing lost its last item to a thief. */
	size_t before = weft__deque_size_approx(&v->deque);
	void *p = weft__deque_pop(&v->deque);
	if (p == NULL) {
		if (before != 0)
			record(&v->owner_lost);
		return 0;
	}
	uint64_t seq = validator_take(v, p);
	record(&v->popped);
	if (*newest != UINT64_MAX) {
		if (seq != *newest)
			record(&v->lifo);
	} else if (seq >= *last) {
		record(&v->lifo);
	}
	*newest = UINT64_MAX;
	*last = seq;
	return 1;
}

static void *validator_owner(void *arg)
{
	struct validator *v = arg;
	uint64_t rng = rng_seed(v->seed, v->round_begin + 1, 0);
	/* This round's ceiling: 1 .. 4096 items before the owner pops down.
	 * Small ceilings keep the deque at a few items, where pop and steal
	 * race for the same index; large ones make it grow under steals. */
	size_t ceiling = (size_t)1 << (weft_test_rand(&rng) % 13);
	uint64_t newest = UINT64_MAX, last = UINT64_MAX;
	size_t seq = v->round_begin;

	/* Wait until every thief is at the gate, then open it. */
	while (atomic_load_explicit(&v->ready, memory_order_relaxed) <
		v->thieves)
		sched_yield();
	/* Release: pairs with the acquire in validator_start_gate. */
	atomic_store_explicit(&v->go, 1, memory_order_release);

	while (seq < v->round_end) {
		uint64_t r = weft_test_rand(&rng);
		size_t burst = 1 +
			(r % 16 == 0 ? (r >> 8) % 512 : (r >> 8) % 32);
		for (size_t i = 0; i < burst && seq < v->round_end;
			i++, seq++) {
			struct item *it = &v->items[seq];
			it->magic = ITEM_MAGIC;
			it->seq = seq;
			if (weft__deque_push(&v->deque, it) != 0) {
				record(&v->push_failed);
				return NULL; /* thieves are released below */
			}
			newest = seq;
		}
		size_t size = weft__deque_size_approx(&v->deque);
		if (size > atomic_load_explicit(&v->max_size,
				   memory_order_relaxed))
			atomic_store_explicit(&v->max_size, size,
				memory_order_relaxed);
		size_t pops = (size_t)(weft_test_rand(&rng) % (burst + 1));
		if (size > ceiling)
			pops = size - ceiling / 2;
		for (size_t i = 0; i < pops; i++) {
			if (!validator_pop(v, &newest, &last))
				break;
			/* Short stalls between pops let thieves into the
			 * race for the last few items. */
			uint64_t s = weft_test_rand(&rng);
			if (s % 4 == 0)
				cpu_relax((unsigned)(s >> 32) % 64);
		}
		/* Now and then, wait for the thieves to bring the deque down
		 * to a few items, so that they take part even when the
		 * machine is busy and the next pops race them for the last
		 * ones.  At most 2 ms, in case they are not scheduled. */
		if (r % 64 == 1) {
			size_t low = (size_t)(r >> 40) % 4;
			int64_t until = now_ns() + 2000000;
			while (weft__deque_size_approx(&v->deque) > low &&
				now_ns() < until)
				sched_yield();
		}
	}
	while (validator_pop(v, &newest, &last))
		;
	return NULL;
}

static uint64_t test_seed(void)
{
	static uint64_t seed;
	if (seed == 0) {
		const char *s = getenv("WEFT_TEST_SEED");
		seed = s != NULL ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
		if (seed == 0)
			seed = 1;
		print_message("[ seed     ] WEFT_TEST_SEED=%" PRIu64 "\n",
			seed);
	}
	return seed;
}

static size_t validator_items(void)
{
	const char *s = getenv("WEFT_DEQUE_ITEMS");
	size_t n = s != NULL ? (size_t)strtoull(s, NULL, 0) : 0;
	return n != 0 ? n : VALIDATOR_DEFAULT_ITEMS;
}

static void validator_run(unsigned thieves)
{
	struct validator v;
	memset(&v, 0, sizeof v);
	v.n = validator_items();
	v.thieves = thieves;
	v.seed = test_seed() + thieves;
	v.items = calloc(v.n, sizeof v.items[0]);
	v.taken = calloc(v.n, sizeof v.taken[0]);
	assert_non_null(v.items);
	assert_non_null(v.taken);

	int64_t t0 = now_ns();
	for (v.round_begin = 0; v.round_begin < v.n;
		v.round_begin = v.round_end) {
		size_t left = v.n - v.round_begin;
		v.round_end = v.round_begin +
			(left < ROUND_ITEMS ? left : ROUND_ITEMS);
		assert_int_equal(weft__deque_init(&v.deque, 2), 0);
		atomic_store(&v.ready, 0);
		atomic_store(&v.go, 0);
		atomic_store(&v.done, 0);

		pthread_t owner, thief[MAX_THIEVES];
		struct thief_arg ta[MAX_THIEVES];
		for (unsigned i = 0; i < thieves; i++) {
			ta[i].v = &v;
			ta[i].index = i;
			int rc = pthread_create(&thief[i], NULL,
				validator_thief, &ta[i]);
			assert_int_equal(rc, 0);
		}
		int rc = pthread_create(&owner, NULL, validator_owner, &v);
		assert_int_equal(rc, 0);
		assert_int_equal(pthread_join(owner, NULL), 0);
		/* Release: the owner's pops are joined; thieves that see done
		 * find the deque empty for good.  Also opens the gate in case
		 * the owner gave up early. */
		atomic_store_explicit(&v.done, 1, memory_order_release);
		atomic_store_explicit(&v.go, 1, memory_order_release);
		for (unsigned i = 0; i < thieves; i++)
			assert_int_equal(pthread_join(thief[i], NULL), 0);
		weft__deque_fini(&v.deque);
		if (atomic_load(&v.push_failed) != 0 ||
			atomic_load(&v.bad_rc) != 0)
			break;
	}
	double secs = (double)(now_ns() - t0) / 1e9;

	size_t missing = 0, extra = 0, untagged = 0;
	for (size_t i = 0; i < v.n; i++) {
		unsigned c = atomic_load(&v.taken[i]);
		missing += c == 0;
		extra += c > 1;
		untagged += v.items[i].magic != ITEM_TAKEN;
	}
	/* Freed before asserting: a failed assert longjmps out of the test. */
	free(v.items);
	free(v.taken);
	print_message("[ deque    ] thieves=%u items=%zu popped=%lu "
		      "stolen=%lu aborted=%lu owner_lost=%lu max_size=%lu "
		      "%.2f s\n",
		thieves, v.n, atomic_load(&v.popped), atomic_load(&v.stolen),
		atomic_load(&v.aborted), atomic_load(&v.owner_lost),
		atomic_load(&v.max_size), secs);

	assert_int_equal(atomic_load(&v.push_failed), 0);
	assert_int_equal(atomic_load(&v.bad_rc), 0);
	assert_int_equal(atomic_load(&v.bad_pointer), 0);
	assert_int_equal(atomic_load(&v.bad_magic), 0);
	assert_int_equal(atomic_load(&v.twice), 0);
	assert_int_equal(atomic_load(&v.lifo), 0);
	assert_int_equal(atomic_load(&v.not_empty), 0);
	assert_int_equal(missing, 0);
	assert_int_equal(extra, 0);
	assert_int_equal(untagged, 0);
	assert_int_equal(atomic_load(&v.popped) + atomic_load(&v.stolen), v.n);
}

static void test_deque__each_item_is_taken_once_with_1_thief(void **state)
{
	(void)state;
	validator_run(1);
}

static void test_deque__each_item_is_taken_once_with_2_thieves(void **state)
{
	(void)state;
	validator_run(2);
}

static void test_deque__each_item_is_taken_once_with_4_thieves(void **state)
{
	(void)state;
	validator_run(4);
}

/* }==================================================================== */

/* Every test runs with the leak check in deque_teardown. */
#define DEQUE_TEST(f) cmocka_unit_test_teardown(f, deque_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		DEQUE_TEST(test_deque__init_rejects_capacity_out_of_range),
		DEQUE_TEST(
			test_deque__init_reports_enomem_when_allocation_fails),
		DEQUE_TEST(test_deque__pop_is_lifo),
		DEQUE_TEST(test_deque__steal_is_fifo),
		DEQUE_TEST(test_deque__grows_when_full_and_keeps_every_item),
		DEQUE_TEST(test_deque__empty_pop_and_steal_report_empty),
		DEQUE_TEST(
			test_deque__push_fails_cleanly_when_growth_allocation_fails),
		DEQUE_TEST(
			test_deque__fini_frees_every_array_even_when_items_remain),
		DEQUE_TEST(test_deque__each_item_is_taken_once_with_1_thief),
		DEQUE_TEST(test_deque__each_item_is_taken_once_with_2_thieves),
		DEQUE_TEST(test_deque__each_item_is_taken_once_with_4_thieves),
	};
	return cmocka_run_group_tests_name("deque", tests, NULL, NULL);
}
