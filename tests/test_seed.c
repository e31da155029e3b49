/* Tests for seeded schedules (weft_config_t.seed, WEFT_SEED;
 * docs/semantics.md rule 47; runtime/core/baton.c).
 *
 * The workload: eight tasks that take turns on a Lock to append (who,
 * step, worker) to a shared log, and between steps yield, spawn children
 * that log too, set and wait for each other's events and send to a
 * channel whose consumer logs what it receives.  Without a seed the log
 * differs from run to run; with one it must be the same each time (on
 * fresh runtimes), and a set of seeds must give more than one log, so
 * that the seed is shown to steer the schedule and not only to fix it.
 * The worker of each step is part of the log: the same seed runs the
 * same steps on the same logical workers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "support.h"

#define SEED_TASKS 8
#define SEED_STEPS 4
#define SEED_LOG_MAX 512

/* One run's log; entries are (who << 16 | step << 8 | worker). */
struct seed_log {
	uint32_t e[SEED_LOG_MAX];
	unsigned n;
};

struct seed_world {
	struct seed_log *log;
	weft_lock_t *lock;
	weft_event_t *ev[SEED_TASKS];
	weft_channel_tx_t *tx;
	bool sleeps; /* virtual clock: log times too */
};

struct seed_arg {
	struct seed_world *w;
	unsigned who;
};

static void seed_append(struct seed_world *w, unsigned who, unsigned step,
	uint32_t extra)
{
	CHECK_EQ(weft_lock_acquire(w->lock), 0);
	int worker = weft_worker_index();
	CHECK(worker >= 0);
	if (CHECK(w->log->n < SEED_LOG_MAX)) {
		w->log->e[w->log->n++] = (uint32_t)(who << 16 | step << 8 |
			(unsigned)worker);
		if (extra != 0 && CHECK(w->log->n < SEED_LOG_MAX))
			w->log->e[w->log->n++] = extra;
	}
	CHECK_EQ(weft_lock_release(w->lock), 0);
}

static int seed_child(void *p)
{
	struct seed_arg *a = p;
	seed_append(a->w, 100 + a->who, 0, 0);
	CHECK_EQ(weft_yield(), 0);
	seed_append(a->w, 100 + a->who, 1, 0);
	return 0;
}

static int seed_task(void *p)
{
	struct seed_arg *a = p;
	struct seed_world *w = a->w;
	for (unsigned step = 0; step < SEED_STEPS; step++) {
		uint32_t extra = 0;
		if (w->sleeps) {
			/* Ties on purpose (who % 3): equal deadlines fire in
			 * the wheel's order, the same each run. */
			CHECK_EQ(weft_sleep(
					 (int64_t)(a->who % 3 + 1) * WEFT_MSEC),
				0);
			extra = (uint32_t)((weft_now() - WEFT_VIRTUAL_EPOCH) /
				WEFT_MSEC);
		}
		seed_append(w, a->who, step, extra);
		switch (step) {
		case 0: CHECK_EQ(weft_yield(), 0); break;
		case 1: {
			weft_group_t *g;
			if (!CHECK_EQ(weft_group_open(&g), 0))
				break;
			struct seed_arg c = { w, a->who };
			CHECK_EQ(weft_group_spawn(g, seed_child, &c), 0);
			CHECK_EQ(weft_event_set(w->ev[a->who]), 0);
			CHECK_EQ(weft_group_join(g, NULL), 0);
			break;
		}
		case 2:
			CHECK_EQ(weft_event_wait(
					 w->ev[(a->who + 1) % SEED_TASKS]),
				0);
			break;
		default: {
			uint32_t item = a->who;
			CHECK_EQ(weft_channel_send(w->tx, &item), 0);
			break;
		}
		}
	}
	return 0;
}

struct seed_consumer {
	struct seed_world *w;
	weft_channel_rx_t *rx;
};

static int seed_consume(void *p)
{
	struct seed_consumer *c = p;
	uint32_t item;
	for (unsigned i = 0; i < SEED_TASKS; i++) {
		if (!CHECK_EQ(weft_channel_receive(c->rx, &item), 0))
			break;
		seed_append(c->w, 200 + item, 0, 0);
	}
	return 0;
}

static int seed_root(void *p)
{
	struct seed_world *w = p;
	CHECK_EQ(weft_lock_create(&w->lock), 0);
	for (unsigned i = 0; i < SEED_TASKS; i++)
		CHECK_EQ(weft_event_create(&w->ev[i]), 0);
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&w->tx, &rx, sizeof(uint32_t), 2), 0);
	struct seed_arg args[SEED_TASKS];
	struct seed_consumer cons = { w, rx };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, seed_consume, &cons), 0);
	for (unsigned i = 0; i < SEED_TASKS; i++) {
		args[i] = (struct seed_arg){ w, i };
		CHECK_EQ(weft_group_spawn(g, seed_task, &args[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_channel_tx_release(w->tx);
	weft_channel_rx_release(rx);
	for (unsigned i = 0; i < SEED_TASKS; i++)
		CHECK_EQ(weft_event_destroy(w->ev[i]), 0);
	CHECK_EQ(weft_lock_destroy(w->lock), 0);
	return 0;
}

/* One run of the workload on a fresh runtime; fills *log. */
static void seed_run(unsigned workers, unsigned long long seed, bool virt,
	struct seed_log *log)
{
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = workers;
	if (seed != 0) /* else the environment's (WEFT_SEED) */
		cfg.seed = seed;
	if (virt)
		cfg.clock = WEFT_CLOCK_VIRTUAL;
	memset(log, 0, sizeof *log);
	struct seed_world w = { .log = log, .sleeps = virt };
	int rc = weft_test_run_cfg(&cfg, seed_root, &w);
	/* 8 tasks x 4 steps, 8 children x 2, 8 receptions. */
	unsigned want = SEED_TASKS * SEED_STEPS + SEED_TASKS * 2 + SEED_TASKS;
	if (virt)
		want += SEED_TASKS * SEED_STEPS;
	if (rc != 0 || log->n != want)
		weft_test_print_seed();
	assert_int_equal(rc, 0);
	assert_int_equal(log->n, want);
}

static bool seed_same(const struct seed_log *a, const struct seed_log *b)
{
	return a->n == b->n && memcmp(a->e, b->e, a->n * sizeof a->e[0]) == 0;
}

/* As seed_same, comparing who and step only (not the worker, nor the
 * times of a virtual run, which the order determines). */
static bool seed_same_order(const struct seed_log *a, const struct seed_log *b,
	bool virt)
{
	if (a->n != b->n)
		return false;
	for (unsigned i = 0; i < a->n; i++) {
		if ((a->e[i] >> 8) != (b->e[i] >> 8))
			return false;
		if (virt && (a->e[i] >> 16) < SEED_TASKS)
			i++;
	}
	return true;
}

/* Which workers ran a step of the log (a bit each, up to 32). */
static unsigned seed_workers_seen(const struct seed_log *l, bool virt)
{
	unsigned mask = 0;
	for (unsigned i = 0; i < l->n; i++) {
		uint32_t e = l->e[i];
		unsigned who = e >> 16;
		mask |= 1u << (e & 0x1f);
		/* Skip a step's time entry (virtual runs of seed_task). */
		if (virt && who < SEED_TASKS)
			i++;
	}
	return mask;
}

static void seed_print_diff(const struct seed_log *a, const struct seed_log *b)
{
	for (unsigned i = 0; i < a->n && i < b->n; i++)
		if (a->e[i] != b->e[i]) {
			print_error("logs differ at entry %u: %#x vs %#x\n", i,
				a->e[i], b->e[i]);
			return;
		}
	print_error("logs differ in length: %u vs %u\n", a->n, b->n);
}

/* {======================================================= same seed */

static void seed_check_replays(void **state, unsigned long long seed, bool virt)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct seed_log *first = calloc(1, sizeof *first);
	struct seed_log *again = calloc(1, sizeof *again);
	assert_non_null(first);
	assert_non_null(again);
	seed_run(workers, seed, virt, first);
	for (int i = 0; i < 2; i++) {
		seed_run(workers, seed, virt, again);
		if (!seed_same(first, again)) {
			print_error("seed %llu, %u workers, run %d:\n", seed,
				workers, i + 2);
			seed_print_diff(first, again);
		}
		assert_true(seed_same(first, again));
	}
	free(first);
	free(again);
}

static void test_seed__same_seed_same_interleaving(void **state)
{
	seed_check_replays(state, 12345, false);
	seed_check_replays(state, UINT64_MAX, false);
}

static void test_seed__same_seed_same_times_under_the_virtual_clock(
	void **state)
{
	seed_check_replays(state, 777, true);
}

/* WEFT_SEED replays what cfg.seed ran: weft_config_init reads it. */
static void test_seed__weft_seed_in_the_environment_replays(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct seed_log *chosen = calloc(1, sizeof *chosen);
	struct seed_log *env = calloc(1, sizeof *env);
	assert_non_null(chosen);
	assert_non_null(env);
	seed_run(workers, 31337, false, chosen);
	char *saved = getenv("WEFT_SEED");
	saved = saved ? strdup(saved) : NULL;
	assert_int_equal(setenv("WEFT_SEED", "31337", 1), 0);
	seed_run(workers, 0, false, env);
	if (saved) {
		setenv("WEFT_SEED", saved, 1);
		free(saved);
	} else {
		unsetenv("WEFT_SEED");
	}
	if (!seed_same(chosen, env))
		seed_print_diff(chosen, env);
	assert_true(seed_same(chosen, env));
	free(chosen);
	free(env);
}

/* The log's times are exact under the virtual clock: each of a task's
 * sleeps adds its length, whatever the schedule. */
static void test_seed__virtual_times_are_exact(void **state)
{
	struct seed_log *log = calloc(1, sizeof *log);
	assert_non_null(log);
	seed_run(WEFT_TEST_WORKERS(state), 99, true, log);
	unsigned seen[SEED_TASKS] = { 0 };
	for (unsigned i = 0; i < log->n; i++) {
		unsigned who = log->e[i] >> 16;
		if (who >= SEED_TASKS)
			continue;
		unsigned step = (log->e[i] >> 8) & 0xff;
		assert_int_equal(step, seen[who]);
		seen[who]++;
		uint32_t ms = log->e[++i];
		/* The events and the channel may hold a task back, so a
		 * step ends at least its sleeps after the start. */
		assert_true(ms >= (step + 1) * (who % 3 + 1));
	}
	for (unsigned t = 0; t < SEED_TASKS; t++)
		assert_int_equal(seen[t], SEED_STEPS);
	free(log);
}

/* }======================================================= */

/* {======================================================= seeds vary */

#define SEED_VARIANTS 20

static void seed_check_varies(void **state, bool virt)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	struct seed_log *logs = calloc(SEED_VARIANTS, sizeof *logs);
	assert_non_null(logs);
	unsigned distinct = 1, orders = 1, mask = 0;
	for (unsigned i = 0; i < SEED_VARIANTS; i++) {
		seed_run(workers, 1000 + i, virt, &logs[i]);
		mask |= seed_workers_seen(&logs[i], virt);
		bool fresh = true, fresh_order = true;
		for (unsigned j = 0; j < i; j++) {
			fresh = fresh && !seed_same(&logs[i], &logs[j]);
			fresh_order = fresh_order &&
				!seed_same_order(&logs[i], &logs[j], virt);
		}
		distinct += i > 0 && fresh;
		orders += i > 0 && fresh_order;
	}
	print_message("%u workers: %u distinct logs (%u distinct orders) of "
		      "%u seeds, workers seen %#x\n",
		workers, distinct, orders, SEED_VARIANTS, mask);
	/* Every logical worker ran steps, over the seeds... */
	assert_int_equal(mask, (1u << workers) - 1);
	/* ...and the seed chose between interleavings: not only which
	 * worker ran a step, but the order of the steps. */
	assert_true(distinct >= 2);
	assert_true(orders >= 2);
	free(logs);
}

static void test_seed__seeds_give_different_interleavings(void **state)
{
	seed_check_varies(state, false);
}

static void test_seed__seeds_vary_under_the_virtual_clock(void **state)
{
	seed_check_varies(state, true);
}

/* }======================================================= */

/* {======================================================= outside */

static int seed_offloaded(void *arg, void **result)
{
	(void)arg;
	*result = (void *)(uintptr_t)7;
	return 0;
}

static int seed_blocked_waiter(void *p)
{
	atomic_int *phase = p;
	CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
	/* Only once the sleeper below was blocked too. */
	CHECK_EQ(atomic_load(phase), 1);
	return 0;
}

static int seed_blocked_sleeper(void *p)
{
	atomic_int *phase = p;
	atomic_store(phase, 1);
	CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
	return 0;
}

/* Inputs from other threads (an offload thread's wake-up, the I/O
 * thread's deadlines under the real clock) are outside the promise, but
 * a seeded runtime takes them: a quiet runtime is woken by them. */
static int seed_outside_root(void *p)
{
	(void)p;
	void *r = NULL;
	CHECK_EQ(weft_to_thread(seed_offloaded, NULL, &r, NULL), 0);
	CHECK_EQ((uintptr_t)r, 7);
	int64_t t0 = weft_now();
	CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
	CHECK(weft_now() - t0 >= 2 * WEFT_MSEC);
	atomic_int phase = 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, seed_blocked_waiter, &phase), 0);
	CHECK_EQ(weft_group_spawn(g, seed_blocked_sleeper, &phase), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_seed__takes_inputs_from_other_threads(void **state)
{
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = WEFT_TEST_WORKERS(state);
	cfg.seed = 5;
	assert_int_equal(weft_test_run_cfg(&cfg, seed_outside_root, NULL), 0);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_seed__same_seed_same_interleaving),
		WEFT_TEST(
			test_seed__same_seed_same_times_under_the_virtual_clock),
		WEFT_TEST(test_seed__weft_seed_in_the_environment_replays),
		WEFT_TEST(test_seed__virtual_times_are_exact),
		/* At 1 worker only the run-next draw varies the order. */
		WEFT_TEST_AT(test_seed__seeds_give_different_interleavings, 1),
		WEFT_TEST_AT(test_seed__seeds_give_different_interleavings, 2),
		WEFT_TEST_AT(test_seed__seeds_give_different_interleavings, 4),
		WEFT_TEST_AT(test_seed__seeds_vary_under_the_virtual_clock, 2),
		WEFT_TEST_AT(test_seed__seeds_vary_under_the_virtual_clock, 4),
		WEFT_TEST(test_seed__takes_inputs_from_other_threads),
	};
	return WEFT_RUN_TESTS(tests);
}
