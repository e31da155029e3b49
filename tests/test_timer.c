/* The timing wheel (runtime/core/wheel.c), checked against a reference: random
 * arms, disarms and re-arms while time advances in random steps (short
 * and very long), across every level.  Each armed node must fire exactly
 * once, never before its deadline, and at the first advance whose
 * millisecond reaches the deadline's (rounded up). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "support.h"
#include "core/timer.h"
#include "core/wheel.h"

#define NODES 3000
#define MS WEFT__WHEEL_TICK_NS /* one tick */

struct item {
	struct weft__tnode node;
	int64_t when;
	int armed;
	int fired;
};

static struct item items[NODES];
static int64_t fire_now;
static long fire_errors;

static void timer_fire(struct weft__tnode *n, void *arg)
{
	(void)arg;
	struct item *it = WEFT__CONTAINER_OF(n, struct item, node);
	if (!it->armed || it->when > fire_now)
		fire_errors++;
	it->armed = 0;
	it->fired++;
}

/* Tick the deadline rounds up to (without overflow near INT64_MAX). */
static int64_t timer_tick(int64_t when)
{
	return when <= 0 ? 0 : when / MS + (when % MS != 0);
}

/* precise: advance with weft__wheel_fire_due (a worker's yield), which
 * must also fire every deadline that passed inside the current tick. */
static void wheel_random_run(bool precise)
{
	unsigned seed = 4242;
	memset(items, 0, sizeof items);
	weft__wheel_t w;
	int64_t now = 5 * 1000 * MS + 123456;
	weft__wheel_init(&w, now);
	long fired_total = 0, armed_total = 0;
	for (int step = 0; step < 4000; step++) {
		/* Arm or disarm a few. */
		for (int k = 0; k < 8; k++) {
			struct item *it = &items[rand_r(&seed) % NODES];
			if (it->armed) {
				weft__wheel_remove(&w, &it->node);
				it->armed = 0;
				continue;
			}
			/* Deadlines from the past to ~3 years ahead, mostly
			 * near. */
			int64_t span;
			switch (rand_r(&seed) % 6) {
			case 0:
				span = -(int64_t)(rand_r(&seed) % 10) * MS;
				break;
			case 1: span = rand_r(&seed) % (5 * MS); break;
			case 2:
				span = (int64_t)(rand_r(&seed) % 5000) * MS;
				break;
			case 3:
				span = (int64_t)(rand_r(&seed) % 300000) * MS;
				break;
			case 4:
				span = (int64_t)(rand_r(&seed) % 100000) *
					1000 * MS;
				break;
			default:
				span = (int64_t)(rand_r(&seed) % 1000) *
					100000 * 1000 * MS;
				break; /* beyond the wheel */
			}
			it->when = now + span;
			it->armed = 1;
			it->fired = 0;
			armed_total++;
			weft__wheel_insert(&w, &it->node, it->when);
		}
		/* Advance a little or a lot. */
		int64_t step_ns;
		switch (rand_r(&seed) % 4) {
		case 0: step_ns = rand_r(&seed) % (2 * MS); break;
		case 1: step_ns = (int64_t)(rand_r(&seed) % 100) * MS; break;
		case 2: step_ns = (int64_t)(rand_r(&seed) % 100000) * MS; break;
		default:
			step_ns = (int64_t)(rand_r(&seed) % 50) * 3600 * 1000 *
				MS;
			break;
		}
		now += step_ns;
		fire_now = now;
		if (precise)
			weft__wheel_fire_due(&w, now, timer_fire, NULL);
		else
			weft__wheel_advance(&w, now, timer_fire, NULL);
		assert_int_equal(fire_errors, 0);
		/* Everything due by now's millisecond has fired. */
		size_t armed = 0;
		for (int i = 0; i < NODES; i++) {
			if (items[i].armed) {
				armed++;
				assert_true(
					timer_tick(items[i].when) > now / MS);
				/* Exact, except across a level-2 boundary. */
				int64_t t1 = now / MS + 1;
				if (precise && ((t1 ^ (now / MS)) < 64 * 64))
					assert_true(items[i].when > now);
			}
			assert_true(items[i].fired <= 1);
			fired_total += items[i].fired;
			items[i].fired = 0;
		}
		assert_int_equal(w.len, armed);
		/* The next work is never after the earliest deadline. */
		int64_t next = weft__wheel_next(&w);
		int64_t hint = weft__wheel_due_hint(&w);
		for (int i = 0; i < NODES; i++)
			if (items[i].armed) {
				assert_true(
					next <= timer_tick(items[i].when) * MS);
				assert_true(hint <= items[i].when);
			}
	}
	print_message("%ld armed, %ld fired on time\n", armed_total,
		fired_total);
}

static void test_timer__wheel_fires_each_deadline_once_never_early(void **state)
{
	(void)state;
	wheel_random_run(false);
}

static void test_timer__fire_due_fires_exact_deadlines_inside_a_tick(
	void **state)
{
	(void)state;
	wheel_random_run(true);
}

static void test_timer__empty_wheel_has_no_next_work(void **state)
{
	(void)state;
	weft__wheel_t w;
	weft__wheel_init(&w, 1000 * MS);
	assert_true(weft__wheel_next(&w) == INT64_MAX);
	struct item it = { 0 };
	weft__wheel_insert(&w, &it.node, 1500 * MS);
	assert_true(weft__wheel_next(&w) <= 1500 * MS);
	weft__wheel_remove(&w, &it.node);
	assert_true(weft__wheel_next(&w) == INT64_MAX);
	assert_int_equal(w.len, 0);
}

/* Every int64 deadline is valid input.  Deadlines within a tick of
 * INT64_MAX once overflowed the round-up to a tick, which filed them in
 * the current slot forever: an advance then refiled them there without
 * end (the I/O thread spun, no timer fired again).  Far deadlines must
 * stay armed and unfired however far time advances within the wheel's
 * range, past ones must fire at the next advance, and every advance must
 * return. */
static void test_timer__extreme_deadlines_neither_overflow_nor_spin(
	void **state)
{
	(void)state;
	static const int64_t far[] = { INT64_MAX, INT64_MAX - 1,
		INT64_MAX - MS + 1, INT64_MAX - MS, INT64_MAX - MS - 1,
		INT64_MAX / 2 };
	int64_t now = 5 * 1000 * MS + 123456;
	const int64_t past[] = { INT64_MIN, INT64_MIN + 1, -MS, -1, 0, 1,
		now - 1, now };
	enum {
		NFAR = sizeof far / sizeof far[0],
		NPAST = sizeof past / sizeof past[0]
	};
	struct item ex[NFAR + NPAST];
	memset(ex, 0, sizeof ex);
	weft__wheel_t w;
	weft__wheel_init(&w, now);
	for (int i = 0; i < NFAR + NPAST; i++) {
		ex[i].when = i < NFAR ? far[i] : past[i - NFAR];
		ex[i].armed = 1;
		weft__wheel_insert(&w, &ex[i].node, ex[i].when);
	}
	fire_errors = 0;
	/* The next work is never before now's tick, and no later than the
	 * farthest a deadline is filed (about 52 days). */
	assert_true(weft__wheel_next(&w) <= now + MS);
	fire_now = now + 2 * MS;
	weft__wheel_fire_due(&w, fire_now, timer_fire, NULL);
	for (int i = 0; i < NFAR + NPAST; i++)
		assert_int_equal(ex[i].fired, i < NFAR ? 0 : 1);
	assert_int_equal(w.len, NFAR);
	int64_t next = weft__wheel_next(&w);
	assert_true(next > fire_now);
	assert_true(next - fire_now <= ((int64_t)1 << 36) * MS);
	/* Through 200 days in 10-day steps: the far ones are refiled when
	 * their slot comes round, never fired. */
	for (int step = 1; step <= 20; step++) {
		fire_now = now + step * 10 * 86400 * (int64_t)1000000000;
		weft__wheel_fire_due(&w, fire_now, timer_fire, NULL);
		assert_int_equal(w.len, NFAR);
		assert_true(weft__wheel_next(&w) > fire_now);
		assert_true(weft__wheel_due_hint(&w) <= weft__wheel_next(&w));
	}
	for (int i = 0; i < NFAR; i++) {
		assert_int_equal(ex[i].fired, 0);
		weft__wheel_remove(&w, &ex[i].node);
	}
	assert_int_equal(w.len, 0);
	assert_true(weft__wheel_next(&w) == INT64_MAX);
	assert_int_equal(fire_errors, 0);
}

/* A wheel whose time is within a tick of INT64_MAX (the virtual clock
 * can get there): the next work's time saturates instead of overflowing
 * (the tick of such a deadline starts at 2^63 ns), the due hint is still
 * a lower bound, and firing at INT64_MAX fires everything. */
static void test_timer__the_last_tick_neither_overflows_nor_hides(void **state)
{
	(void)state;
	int64_t now = INT64_MAX - 1000;
	static const int64_t when[] = { INT64_MAX - 500, INT64_MAX - 1,
		INT64_MAX };
	enum { N = sizeof when / sizeof when[0] };
	struct item ex[N];
	memset(ex, 0, sizeof ex);
	weft__wheel_t w;
	weft__wheel_init(&w, now);
	for (int i = 0; i < N; i++) {
		ex[i].when = when[i];
		ex[i].armed = 1;
		weft__wheel_insert(&w, &ex[i].node, ex[i].when);
	}
	fire_errors = 0;
	assert_true(weft__wheel_next(&w) == INT64_MAX);
	assert_true(weft__wheel_due_hint(&w) <= INT64_MAX - 500);
	assert_true(weft__wheel_earliest(&w) == INT64_MAX - 500);
	fire_now = INT64_MAX - 500;
	weft__wheel_fire_exact(&w, fire_now, timer_fire, NULL);
	assert_int_equal(ex[0].fired, 1);
	assert_int_equal(ex[1].fired + ex[2].fired, 0);
	fire_now = INT64_MAX;
	weft__wheel_fire_exact(&w, fire_now, timer_fire, NULL);
	for (int i = 0; i < N; i++)
		assert_int_equal(ex[i].fired, 1);
	assert_int_equal(w.len, 0);
	assert_true(weft__wheel_next(&w) == INT64_MAX);
	assert_int_equal(fire_errors, 0);
}

/* Levels at which the nodes of wheel_fire_level fired. */
static int fired_level[WEFT__WHEEL_LEVELS];

static void timer_fire_level(struct weft__tnode *n, void *arg)
{
	timer_fire(n, arg);
	fired_level[n->level]++;
}

/* A wheel that fell behind (the I/O thread with 10^6 sleepers due within
 * 100 ms, B7) fires a due node straight from the higher level's slot it
 * waited in, when that slot is cascaded: refiling it one level down first
 * cost one more visit, a cache and TLB miss on the parked stack that
 * holds the node.  Nodes not due yet are still refiled, and nothing
 * fires early. */
static void test_timer__due_nodes_fire_from_the_slot_being_cascaded(
	void **state)
{
	(void)state;
	enum { N = 600 };
	memset(items, 0, sizeof items);
	memset(fired_level, 0, sizeof fired_level);
	fire_errors = 0;
	int64_t now = 5 * 1000 * MS;
	weft__wheel_t w;
	weft__wheel_init(&w, now);
	/* Level 1 (64 to 4095 ticks ahead) and level 2 (from 4096). */
	for (int i = 0; i < N; i++) {
		items[i].when = now + (100 + 10 * i) * MS + 17;
		items[i].armed = 1;
		weft__wheel_insert(&w, &items[i].node, items[i].when);
	}
	/* Behind by far: half of them are due. */
	fire_now = items[N / 2 - 1].when;
	weft__wheel_advance(&w, fire_now, timer_fire_level, NULL);
	assert_int_equal(fire_errors, 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(items[i].fired, i < N / 2 ? 1 : 0);
	assert_int_equal(w.len, N - N / 2);
	/* Every due node fired from a level above 0: none was refiled to
	 * level 0 and visited again there. */
	assert_int_equal(fired_level[0], 0);
	for (int i = N / 2; i < N; i++)
		weft__wheel_remove(&w, &items[i].node);
	assert_int_equal(w.len, 0);
}

static void test_timer__now_is_monotonic(void **state)
{
	(void)state;
	int64_t a = weft_now();
	for (int i = 0; i < 1000; i++) {
		int64_t b = weft_now();
		assert_true(b >= a);
		a = b;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_timer__wheel_fires_each_deadline_once_never_early),
		cmocka_unit_test(
			test_timer__fire_due_fires_exact_deadlines_inside_a_tick),
		cmocka_unit_test(test_timer__empty_wheel_has_no_next_work),
		cmocka_unit_test(
			test_timer__extreme_deadlines_neither_overflow_nor_spin),
		cmocka_unit_test(
			test_timer__the_last_tick_neither_overflows_nor_hides),
		cmocka_unit_test(
			test_timer__due_nodes_fire_from_the_slot_being_cascaded),
		cmocka_unit_test(test_timer__now_is_monotonic),
	};
	return WEFT_RUN_TESTS(tests);
}
