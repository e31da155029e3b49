/* Stress: random trees of weft_par calls (runtime/core/par.c) for a fixed
 * time budget, with leaves that yield, sleep, fail, or open a group, and
 * subtrees under random deadlines, so that offers are taken back, taken
 * by thieves, given tasks by switch-outs, and callers move between
 * workers.  Every half runs exactly once (a per-node flag, and as many
 * nodes run as were made), and every failing leaf (numbered in its
 * message) reaches the root's error tree exactly once.
 *
 * WEFT_TEST_SEED chooses the seed (printed); WEFT_STRESS_SECONDS the
 * budget for the three worker counts together (default 4, a quarter of
 * that under sanitizers). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define MAX_FAILS 100000

struct forest {
	atomic_long made, ran;
	atomic_long nfailed;
	long failed[MAX_FAILS]; /* numbers of the leaves that failed */
	atomic_long next_number;
};

struct node {
	struct forest *f;
	uint64_t rng;
	int depth;
	atomic_int ran;
};

static int node_run(void *arg);

static int node_leaf(struct node *n)
{
	struct forest *f = n->f;
	unsigned r = (unsigned)(weft_test_rand(&n->rng) % 100);
	if (r < 10) {
		if (weft_yield() < 0)
			return -ECANCELED;
	} else if (r < 14) {
		int rc = weft_sleep(
			(int64_t)(weft_test_rand(&n->rng) % 200) * 1000);
		if (rc < 0)
			return rc;
	} else if (r < 24) {
		if (weft_checkpoint() < 0)
			return -ECANCELED;
	} else if (r < 27) {
		/* A group inside a half: its children run inline on the
		 * caller's stack, above the caller's offers. */
		weft_group_t *g;
		if (weft_group_open(&g) < 0)
			return -ENOMEM;
		struct node *c = malloc(sizeof *c);
		CHECK(c != NULL);
		*c = (struct node){ f, weft_test_rand(&n->rng) | 1,
			n->depth + 1, 0 };
		atomic_fetch_add(&f->made, 1);
		CHECK_EQ(weft_group_spawn(g, node_run, c), 0);
		weft_error_t *err = NULL;
		int rc = weft_group_join(g, &err);
		free(c);
		if (rc == WEFT_ECHILD_FAILED)
			return weft_fail_group(err);
		return rc;
	}
	if (weft_test_rand(&n->rng) % 100 < 8) {
		long k = atomic_fetch_add(&f->next_number, 1);
		long i = atomic_fetch_add(&f->nfailed, 1);
		CHECK(i < MAX_FAILS);
		if (i < MAX_FAILS)
			f->failed[i] = k;
		return weft_fail(-EIO, "leaf %ld", k);
	}
	return 0;
}

static int node_inner(struct node *n)
{
	struct forest *f = n->f;
	weft_scope_t *s = NULL;
	if (weft_test_rand(&n->rng) % 100 < 5)
		(void)weft_move_on_after(&s,
			(int64_t)(weft_test_rand(&n->rng) % 2000) * 1000);
	struct node a = { f, weft_test_rand(&n->rng) | 1, n->depth + 1, 0 };
	struct node b = { f, weft_test_rand(&n->rng) | 1, n->depth + 1, 0 };
	atomic_fetch_add(&f->made, 2);
	weft_error_t *err = NULL;
	int rc = weft_par(node_run, &a, node_run, &b, &err);
	CHECK_EQ(atomic_load(&a.ran), 1);
	CHECK_EQ(atomic_load(&b.ran), 1);
	if (s != NULL) {
		(void)weft_scope_exit(s);
		weft_scope_destroy(s);
	}
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	CHECK(err == NULL);
	return rc;
}

static int node_run(void *arg)
{
	struct node *n = arg;
	CHECK_EQ(atomic_exchange(&n->ran, 1), 0);
	atomic_fetch_add(&n->f->ran, 1);
	if (n->depth >= 14 || weft_test_rand(&n->rng) % 100 < 10)
		return node_leaf(n);
	return node_inner(n);
}

/* Collects the numbers of the failed leaves in e's tree. */
static void collect(const weft_error_t *e, long *out, long *n)
{
	for (size_t i = 0; i < weft_error_count(e); i++) {
		const weft_error_t *nested = weft_error_nested_at(e, i);
		if (nested != NULL) {
			collect(nested, out, n);
			continue;
		}
		CHECK_EQ(weft_error_code_at(e, i), -EIO);
		long k = -1;
		CHECK_EQ(sscanf(weft_error_message_at(e, i), "leaf %ld", &k),
			1);
		if (*n < MAX_FAILS)
			out[(*n)++] = k;
	}
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

static void stress_par_run(unsigned workers, double seconds, unsigned seed)
{
	int64_t end = weft_now() + (int64_t)(seconds * 1e9);
	long rounds = 0, nodes = 0, fails = 0;
	struct forest *f = malloc(sizeof *f);
	long *seen = malloc(sizeof *seen * MAX_FAILS);
	assert_true(f != NULL && seen != NULL);
	while (weft_now() < end) {
		memset(f, 0, sizeof *f);
		struct node root = { f,
			((uint64_t)seed << 20) + (uint64_t)rounds + 1, 0, 0 };
		atomic_fetch_add(&f->made, 1);
		weft_error_t *err = NULL;
		int rc = weft_test_run_err(workers, node_run, &root, &err);
		long nf = atomic_load(&f->nfailed);
		long ns = 0;
		if (err != NULL)
			collect(err, seen, &ns);
		weft_error_free(err);
		if (nf > 0)
			assert_true(rc == WEFT_ECHILD_FAILED || rc == -EIO);
		else
			assert_true(rc == 0 || rc == -ECANCELED);
		assert_int_equal(atomic_load(&f->made), atomic_load(&f->ran));
		assert_int_equal(ns, nf);
		qsort(seen, (size_t)ns, sizeof *seen, cmp_long);
		qsort(f->failed, (size_t)nf, sizeof *seen, cmp_long);
		for (long i = 0; i < ns; i++)
			assert_true(seen[i] == f->failed[i]);
		nodes += atomic_load(&f->ran);
		fails += nf;
		rounds++;
	}
	print_message("workers %u: %ld random trees, %ld halves, %ld failures "
		      "each reported once\n",
		workers, rounds, nodes, fails);
	free(seen);
	free(f);
}

static void test_stress__random_par_trees_run_every_half_once(void **state)
{
	unsigned seed = weft_test_seed();
	stress_par_run(WEFT_TEST_WORKERS(state),
		weft_test_stress_seconds(4.0) / 3, seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_stress__random_par_trees_run_every_half_once),
	};
	return WEFT_RUN_TESTS(tests);
}
