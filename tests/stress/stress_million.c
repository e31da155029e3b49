/* Stress: a million tasks.  One group of 1,000,000 children (run as a
 * tree of groups of 1,000 so each join stays small), each checking in
 * exactly once; then 100,000 tasks parked in sleeps at the same time. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "support.h"

struct million {
	atomic_char *seen;
	long n;
	atomic_long dup;
	atomic_long woke;
};

struct chunk {
	struct million *m;
	long first;
};

static struct million *million_m;

static int million_leaf(void *arg)
{
	long i = (long)(intptr_t)arg;
	if (atomic_exchange(&million_m->seen[i], 1) != 0)
		atomic_fetch_add(&million_m->dup, 1);
	return 0;
}

static int million_chunk(void *arg)
{
	struct chunk *c = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (long i = c->first; i < c->first + 1000 && i < c->m->n; i++)
		CHECK_EQ(weft_group_spawn(g, million_leaf, (void *)(intptr_t)i),
			0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static int million_root(void *arg)
{
	struct million *m = arg;
	long chunks = (m->n + 999) / 1000;
	struct chunk *c = malloc(sizeof *c * (size_t)chunks);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (long k = 0; k < chunks; k++) {
		c[k] = (struct chunk){ m, k * 1000 };
		CHECK_EQ(weft_group_spawn(g, million_chunk, &c[k]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	free(c);
	return 0;
}

static void test_stress__a_million_tasks_each_run_exactly_once(void **state)
{
	struct million m = { .n = weft_test_scale(1000000) };
	m.seen = calloc((size_t)m.n, 1);
	million_m = &m;
	weft_test_root(state, million_root, &m);
	for (long i = 0; i < m.n; i++)
		assert_int_equal(m.seen[i], 1);
	assert_int_equal(atomic_load(&m.dup), 0);
	print_message("%ld tasks ran exactly once\n", m.n);
	free(m.seen);
}

static int parked_sleeper(void *arg)
{
	struct million *m = arg;
	CHECK_EQ(weft_sleep(200 * WEFT_MSEC), 0);
	atomic_fetch_add(&m->woke, 1);
	return 0;
}

static int parked_root(void *arg)
{
	struct million *m = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (long i = 0; i < m->n; i++)
		CHECK_EQ(weft_group_spawn(g, parked_sleeper, m), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_stress__a_hundred_thousand_tasks_park_at_once(void **state)
{
	struct million m = { .n = weft_test_scale(100000) };
#if defined(__SANITIZE_THREAD__)
	/* TSan maps a trace (~1 MB) per live fiber: keep a few thousand. */
	m.n = 2000;
#endif
	weft_test_root(state, parked_root, &m);
	assert_int_equal(atomic_load(&m.woke), m.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_stress__a_million_tasks_each_run_exactly_once),
		WEFT_TEST(test_stress__a_hundred_thousand_tasks_park_at_once),
	};
	return WEFT_RUN_TESTS(tests);
}
