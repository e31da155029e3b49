/* as_completed (include/weft/combine.h): an iterator over task handles
 * that yields each task once, after it ended, in the order they end;
 * closing it early leaves the tasks alone.  combine_fixture.h has the
 * kids it iterates over. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "combine_fixture.h"
#include "support.h"

static int kid_ranked(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	/* Different sleeps, and never before the consumer took every task
	 * ranked before this one: completion order = rank, whatever the
	 * machine's timing. */
	CHECK_EQ(weft_sleep((k->rank + 1) * WEFT_MSEC / 2), 0);
	CHECK_EQ(wait_flag(&k->sh->consumed, k->rank), 0);
	weft_task_set_result(&k->sh->vals[k->i]);
	return 0;
}

static int as_completed_order_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[NKIDS];
	kids_init(kids, NKIDS, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[NKIDS];
	for (int i = 0; i < NKIDS; i++) {
		kids[i].rank = NKIDS - 1 - i; /* the last one ends first */
		h[i] = weft_test_spawn(g, kid_ranked, &kids[i]);
	}
	weft_as_completed_t *it;
	CHECK_EQ(weft_as_completed_open(&it, h, NKIDS), 0);
	for (int j = 0; j < NKIDS; j++) {
		size_t idx = 99;
		weft_task_t *got = NULL;
		CHECK_EQ(weft_as_completed_next(it, &idx, &got), 0);
		CHECK_EQ(idx, NKIDS - 1 - j);
		CHECK(got == h[NKIDS - 1 - j]);
		void *v = NULL;
		CHECK_EQ(weft_task_result(got, &v), 0);
		CHECK(v == &sh.vals[NKIDS - 1 - j]);
		atomic_store(&sh.consumed, j + 1);
	}
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	weft_as_completed_close(it);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < NKIDS; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(as_completed, yields_in_completion_order,
	as_completed_order_root, NULL)

static int as_completed_ended_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[4];
	kids_init(kids, 4, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[4];
	for (int i = 0; i < 4; i++)
		h[i] = weft_test_spawn(g, kid_value, &kids[i]);
	bool done[4];
	CHECK_EQ(weft_wait(h, 4, WEFT_WAIT_ALL_COMPLETED, WEFT_FOREVER, done),
		0);
	/* All ended before the first next(): lowest index first, each
	 * exactly once. */
	weft_as_completed_t *it;
	CHECK_EQ(weft_as_completed_open(&it, h, 4), 0);
	for (size_t j = 0; j < 4; j++) {
		size_t idx = 99;
		CHECK_EQ(weft_as_completed_next(it, &idx, NULL), 0);
		CHECK_EQ(idx, j);
	}
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	weft_as_completed_close(it);
	/* An empty iterator ends at once. */
	CHECK_EQ(weft_as_completed_open(&it, NULL, 0), 0);
	CHECK_EQ(weft_as_completed_next(it, NULL, NULL), WEFT_EEND);
	weft_as_completed_close(it);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 4; i++)
		weft_task_release(h[i]);
	return 0;
}

WEFT_TEST_ROOT(as_completed, yields_ended_tasks_by_index,
	as_completed_ended_root, NULL)

struct foreign_next {
	weft_as_completed_t *it;
	int rc;
};

static int foreign_next_task(void *arg)
{
	struct foreign_next *f = arg;
	f->rc = weft_as_completed_next(f->it, NULL, NULL);
	return 0;
}

static int as_completed_early_close_root(void *arg)
{
	(void)arg;
	struct shared sh = { 0 };
	struct kid kids[3];
	kids_init(kids, 3, &sh);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h[3];
	h[0] = weft_test_spawn(g, kid_gated, &kids[0]);
	h[1] = weft_test_spawn(g, kid_value, &kids[1]);
	h[2] = weft_test_spawn(g, kid_gated, &kids[2]);
	weft_as_completed_t *it;
	CHECK_EQ(weft_as_completed_open(&it, h, 3), 0);
	size_t idx = 99;
	CHECK_EQ(weft_as_completed_next(it, &idx, NULL), 0);
	CHECK_EQ(idx, 1);
	/* Another task may not use the iterator. */
	struct foreign_next f = { it, 0 };
	weft_task_t *fh = weft_test_spawn(g, foreign_next_task, &f);
	CHECK_EQ(weft_task_wait(fh), 0);
	CHECK_EQ(f.rc, WEFT_EMISUSE);
	weft_task_release(fh);
	/* A deadline cuts next() short; nothing is yielded or cancelled. */
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, WEFT_MSEC), 0);
	CHECK_EQ(weft_as_completed_next(it, &idx, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	/* Closed early: the rest keep running, owned by their group. */
	weft_as_completed_close(it);
	CHECK_EQ(weft_task_state(h[0]), WEFT_TASK_PENDING);
	CHECK_EQ(weft_task_state(h[2]), WEFT_TASK_PENDING);
	atomic_store(&sh.gate, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&sh.cleanups), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(weft_task_state(h[i]), WEFT_TASK_FINISHED);
		weft_task_release(h[i]);
	}
	return 0;
}

WEFT_TEST_ROOT(as_completed, closed_early_leaves_tasks_alone,
	as_completed_early_close_root, NULL)

/* Many tasks ending at random moments on every worker while the consumer
 * takes them: each is yielded exactly once and only after it ended, and
 * an iterator closed with tasks still running is freed by their ends
 * (the leak check after each run). */
struct ac_stress_kid {
	uint64_t seed;
	atomic_int ended;
};

static int ac_stress_kid(void *arg)
{
	struct ac_stress_kid *k = arg;
	uint64_t r = weft_test_rand(&k->seed);
	if (r % 3 == 0)
		CHECK_EQ(weft_sleep((int64_t)(r % 200) * 1000), 0);
	for (uint64_t i = 0; i < r % 4; i++)
		CHECK_EQ(weft_yield(), 0);
	atomic_store(&k->ended, 1);
	return 0;
}

static int as_completed_stress_root(void *arg)
{
	(void)arg;
	size_t n = (size_t)weft_test_scale(2000);
	uint64_t seed = weft_test_seed() | 1;
	struct ac_stress_kid *kids = calloc(n, sizeof *kids);
	weft_task_t **h = calloc(n, sizeof *h);
	unsigned char *seen = calloc(n, 1);
	CHECK(kids && h && seen);
	for (int round = 0; round < 4; round++) {
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (size_t i = 0; i < n; i++) {
			kids[i].seed = weft_test_rand(&seed) | 1;
			atomic_init(&kids[i].ended, 0);
			seen[i] = 0;
			h[i] = weft_test_spawn(g, ac_stress_kid, &kids[i]);
		}
		weft_as_completed_t *it;
		CHECK_EQ(weft_as_completed_open(&it, h, n), 0);
		/* Rounds 0 and 1 take everything; 2 and 3 stop early. */
		size_t take = round < 2 ? n
					: (size_t)(weft_test_rand(&seed) % n);
		for (size_t j = 0; j < take; j++) {
			size_t idx = n;
			weft_task_t *got = NULL;
			CHECK_EQ(weft_as_completed_next(it, &idx, &got), 0);
			CHECK(idx < n);
			CHECK(got == h[idx]);
			CHECK_EQ(seen[idx], 0);
			seen[idx] = 1;
			CHECK_EQ(atomic_load(&kids[idx].ended), 1);
			CHECK(weft_task_state(got) == WEFT_TASK_FINISHED);
		}
		if (take == n)
			CHECK_EQ(weft_as_completed_next(it, NULL, NULL),
				WEFT_EEND);
		weft_as_completed_close(it);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		for (size_t i = 0; i < n; i++)
			weft_task_release(h[i]);
	}
	free(kids);
	free(h);
	free(seen);
	return 0;
}

WEFT_TEST_ROOT(as_completed, under_load_yields_each_once,
	as_completed_stress_root, NULL)

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_as_completed__yields_in_completion_order),
		WEFT_TEST(test_as_completed__yields_ended_tasks_by_index),
		WEFT_TEST(test_as_completed__closed_early_leaves_tasks_alone),
		WEFT_TEST(test_as_completed__under_load_yields_each_once),
	};
	return WEFT_RUN_TESTS(tests);
}
