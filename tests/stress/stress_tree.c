/* Stress: random trees of spawns, failures and cancellations, for a fixed
 * time budget.  Every leaf that fails is recorded by id; the root's error
 * tree must contain exactly those leaves, each exactly once, however the
 * cancellations (group cancels, deadlines, handle cancels, failures of
 * siblings) interleaved with them.
 *
 * WEFT_TEST_SEED chooses the seed (printed); WEFT_STRESS_SECONDS the
 * budget per worker count (default 4, a quarter of that under
 * sanitizers). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define MAX_TASKS 200000

struct tree {
	atomic_long next_slot;
	/* failed[i] = id of the i-th leaf that returned a failure. */
	uint64_t failed[MAX_TASKS];
	atomic_long nfailed;
	atomic_long tasks;
	atomic_long cancelled;
};

struct node {
	struct tree *tree;
	uint64_t rng;
	int depth;
};

static int tree_node(void *arg);

static int tree_leaf(struct node *n)
{
	struct tree *t = n->tree;
	unsigned r = (unsigned)(weft_test_rand(&n->rng) % 100);
	if (r < 30) {
		int rc = weft_sleep(
			(int64_t)(weft_test_rand(&n->rng) % 2000) * 1000);
		if (rc < 0) {
			atomic_fetch_add(&t->cancelled, 1);
			return rc;
		}
	} else if (r < 60) {
		if (weft_checkpoint() < 0) {
			atomic_fetch_add(&t->cancelled, 1);
			return -ECANCELED;
		}
	}
	if (weft_test_rand(&n->rng) % 100 < 15) {
		long i = atomic_fetch_add(&t->nfailed, 1);
		if (i < MAX_TASKS)
			t->failed[i] = weft_current_task_id();
		return weft_fail(-EIO, "leaf failed");
	}
	return 0;
}

static int tree_inner(struct node *n)
{
	struct tree *t = n->tree;
	/* Some subtrees run under a random deadline. */
	weft_scope_t *s = NULL;
	if (weft_test_rand(&n->rng) % 100 < 20)
		weft_move_on_after(&s,
			(int64_t)(weft_test_rand(&n->rng) % 3000) * 1000);
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0) {
		if (s) {
			weft_scope_exit(s);
			weft_scope_destroy(s);
		}
		return rc;
	}
	int kids = 1 + (int)(weft_test_rand(&n->rng) % 6);
	struct node *child = malloc(sizeof *child * (size_t)kids);
	weft_task_t *handle = NULL;
	for (int i = 0; i < kids; i++) {
		if (atomic_fetch_add(&t->tasks, 1) >= MAX_TASKS / 2)
			break;
		child[i] = (struct node){ t, weft_test_rand(&n->rng) | 1,
			n->depth + 1 };
		weft_spawn_opts_t o = { .handle = i == 0 ? &handle : NULL };
		CHECK_EQ(weft_group_spawn_opts(g, tree_node, &child[i], &o), 0);
	}
	unsigned action = (unsigned)(weft_test_rand(&n->rng) % 100);
	if (action < 10) {
		weft_yield();
		weft_group_cancel(g, "random cancel");
	} else if (action < 20 && handle) {
		weft_task_cancel(handle);
	}
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	weft_task_release(handle);
	free(child);
	if (s) {
		weft_scope_exit(s);
		weft_scope_destroy(s);
	}
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	CHECK(err == NULL);
	return rc == -ECANCELED ? -ECANCELED : 0;
}

static int tree_node(void *arg)
{
	struct node *n = arg;
	if (n->depth >= 6 || weft_test_rand(&n->rng) % 100 < 35)
		return tree_leaf(n);
	return tree_inner(n);
}

static void tree_collect(const weft_error_t *e, uint64_t *ids, long *n)
{
	for (size_t i = 0; i < weft_error_count(e); i++) {
		const weft_error_t *nested = weft_error_nested_at(e, i);
		if (nested) {
			tree_collect(nested, ids, n);
			continue;
		}
		CHECK_EQ(weft_error_code_at(e, i), -EIO);
		ids[(*n)++] = weft_error_task_id_at(e, i);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void stress_tree_run(unsigned workers, double seconds, unsigned seed)
{
	int64_t end = weft_now() + (int64_t)(seconds * 1e9);
	long rounds = 0, total_failed = 0, total_tasks = 0;
	struct tree *t = malloc(sizeof *t);
	uint64_t *seen = malloc(sizeof *seen * MAX_TASKS);
	while (weft_now() < end) {
		memset(t, 0, sizeof *t);
		struct node root = { t,
			((uint64_t)seed << 20) + (uint64_t)rounds + 1, 0 };
		weft_error_t *err = NULL;
		int rc = weft_test_run_err(workers, tree_node, &root, &err);
		long nf = atomic_load(&t->nfailed);
		assert_true(nf <= MAX_TASKS);
		long ns = 0;
		if (err)
			tree_collect(err, seen, &ns);
		weft_error_free(err);
		if (nf > 0)
			assert_true(rc == WEFT_ECHILD_FAILED || rc == -EIO);
		else /* a root under a deadline may end cancelled */
			assert_true(rc == 0 || rc == -ECANCELED);
		/* Exactly the failed leaves, each once. */
		assert_int_equal(ns, nf);
		qsort(seen, (size_t)ns, sizeof *seen, cmp_u64);
		qsort(t->failed, (size_t)nf, sizeof *seen, cmp_u64);
		for (long i = 0; i < ns; i++) {
			assert_true(seen[i] == t->failed[i]);
			if (i > 0)
				assert_true(seen[i] != seen[i - 1]);
		}
		weft_test_assert_no_leaks();
		total_failed += nf;
		total_tasks += atomic_load(&t->tasks);
		rounds++;
	}
	print_message("workers %u: %ld random trees, %ld tasks, %ld failures "
		      "each reported once\n",
		workers, rounds, total_tasks, total_failed);
	free(seen);
	free(t);
}

static void test_stress__random_trees_report_every_failure_exactly_once(
	void **state)
{
	unsigned seed = weft_test_seed();
	stress_tree_run(WEFT_TEST_WORKERS(state),
		weft_test_stress_seconds(4.0) / 3, seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_stress__random_trees_report_every_failure_exactly_once),
	};
	return WEFT_RUN_TESTS(tests);
}
