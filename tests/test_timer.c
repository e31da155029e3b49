/* The intrusive deadline heap (runtime/timer.c), checked against a simple
 * reference: random inserts and removals of arbitrary nodes, with the heap
 * shape and order verified after every operation, and pops in key order. */
#include <stdlib.h>

#include "support.h"
#include "common.h"
#include "timer.h"

#define NODES 2000

struct item {
	struct weft__hnode node;
	int in;
};

static struct item items[NODES];

/* Walks the tree: parent links, heap order, and node count. */
static size_t timer_check(const struct weft__hnode *n,
	const struct weft__hnode *parent)
{
	if (n == NULL)
		return 0;
	assert_ptr_equal(n->parent, parent);
	if (parent)
		assert_true(parent->key <= n->key);
	return 1 + timer_check(n->left, n) + timer_check(n->right, n);
}

/* A complete tree of `len` nodes has depth floor(log2(len)). */
static int timer_depth(const struct weft__hnode *n)
{
	if (n == NULL)
		return 0;
	int l = timer_depth(n->left), r = timer_depth(n->right);
	return 1 + (l > r ? l : r);
}

static void timer_verify(const weft__heap_t *h)
{
	assert_int_equal(timer_check(h->root, NULL), h->len);
	int depth = 0;
	for (size_t n = h->len; n; n >>= 1)
		depth++;
	assert_int_equal(timer_depth(h->root), depth);
}

static void test_timer__random_inserts_and_removals_keep_heap_order(
	void **state)
{
	(void)state;
	unsigned seed = 12345;
	weft__heap_t h = { 0 };
	size_t live = 0;
	for (int step = 0; step < 20000; step++) {
		struct item *it = &items[rand_r(&seed) % NODES];
		if (it->in) {
			weft__heap_remove(&h, &it->node);
			it->in = 0;
			live--;
		} else {
			/* Few distinct keys: equal keys must work too. */
			weft__heap_insert(&h, &it->node, rand_r(&seed) % 500);
			it->in = 1;
			live++;
		}
		assert_int_equal(h.len, live);
		if (step % 97 == 0)
			timer_verify(&h);
	}
	timer_verify(&h);
	int64_t last = -1;
	while (weft__heap_min(&h)) {
		struct weft__hnode *m = weft__heap_min(&h);
		assert_true(m->key >= last);
		last = m->key;
		weft__heap_remove(&h, m);
		WEFT__CONTAINER_OF(m, struct item, node)->in = 0;
	}
	assert_int_equal(h.len, 0);
}

static void test_timer__removing_the_last_node_and_the_root_works(void **state)
{
	(void)state;
	weft__heap_t h = { 0 };
	for (int i = 0; i < 7; i++)
		weft__heap_insert(&h, &items[i].node, 7 - i);
	weft__heap_remove(&h, &items[0].node);  /* largest key, a leaf */
	timer_verify(&h);
	weft__heap_remove(&h, weft__heap_min(&h));
	timer_verify(&h);
	while (h.root)
		weft__heap_remove(&h, h.root);
	assert_int_equal(h.len, 0);
	weft__heap_insert(&h, &items[0].node, 1);
	assert_ptr_equal(weft__heap_min(&h), &items[0].node);
	weft__heap_remove(&h, &items[0].node);
	assert_null(h.root);
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
		cmocka_unit_test(test_timer__random_inserts_and_removals_keep_heap_order),
		cmocka_unit_test(test_timer__removing_the_last_node_and_the_root_works),
		cmocka_unit_test(test_timer__now_is_monotonic),
	};
	return WEFT_RUN_TESTS(tests);
}
