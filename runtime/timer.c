/* weft_now() and the intrusive deadline heap (see timer.h).
 *
 * Why intrusive: an array heap must grow, and growth can fail; a deadline
 * that cannot be armed has no good outcome (firing early breaks sleep and
 * fail_after, never firing hangs).  With the node inside the scope,
 * insertion is pointer surgery only.  The shape is a complete binary tree:
 * the position of the n-th node is given by the bits of n below its top
 * bit (0 = left, 1 = right), so the last slot is found in O(log n) without
 * an array.  Costs: pointer chasing on sift (research/runtimes.md measured
 * pointer heaps at ~1 us per pop-min at 1M timers); fine for deadlines,
 * which are mostly far apart, and revisited if B7/B11 show it. */
#include <time.h>

#include "timer.h"
#include "weft/time.h"

int64_t weft_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Node at 1-based position pos (pos <= h->len). */
static struct weft__hnode *heap_at(const weft__heap_t *h, size_t pos)
{
	struct weft__hnode *n = h->root;
	int top = 63 - __builtin_clzll((unsigned long long)pos);
	for (int bit = top - 1; bit >= 0; bit--)
		n = (pos >> bit) & 1 ? n->right : n->left;
	return n;
}

/* Points whatever pointed at `from` (its parent's child slot, or the root)
 * at `to`. */
static void heap_replace_link(weft__heap_t *h, struct weft__hnode *parent,
	struct weft__hnode *from, struct weft__hnode *to)
{
	if (parent == NULL)
		h->root = to;
	else if (parent->left == from)
		parent->left = to;
	else
		parent->right = to;
}

/* Moves c up one level, its parent p down into c's place. */
static void heap_swap_up(weft__heap_t *h, struct weft__hnode *c)
{
	struct weft__hnode *p = c->parent;
	struct weft__hnode *cl = c->left, *cr = c->right;
	heap_replace_link(h, p->parent, p, c);
	c->parent = p->parent;
	if (p->left == c) {
		c->left = p;
		c->right = p->right;
		if (c->right)
			c->right->parent = c;
	} else {
		c->right = p;
		c->left = p->left;
		if (c->left)
			c->left->parent = c;
	}
	p->parent = c;
	p->left = cl;
	p->right = cr;
	if (cl)
		cl->parent = p;
	if (cr)
		cr->parent = p;
}

static void heap_sift_up(weft__heap_t *h, struct weft__hnode *n)
{
	while (n->parent && n->key < n->parent->key)
		heap_swap_up(h, n);
}

static void heap_sift_down(weft__heap_t *h, struct weft__hnode *n)
{
	for (;;) {
		struct weft__hnode *c = n->left;
		if (c == NULL)
			return;
		if (n->right && n->right->key < c->key)
			c = n->right;
		if (c->key >= n->key)
			return;
		heap_swap_up(h, c);
	}
}

void weft__heap_insert(weft__heap_t *h, struct weft__hnode *n, int64_t key)
{
	n->key = key;
	n->left = n->right = NULL;
	size_t pos = ++h->len;
	if (pos == 1) {
		n->parent = NULL;
		h->root = n;
		return;
	}
	struct weft__hnode *p = heap_at(h, pos / 2);
	n->parent = p;
	if (pos & 1)
		p->right = n;
	else
		p->left = n;
	heap_sift_up(h, n);
}

void weft__heap_remove(weft__heap_t *h, struct weft__hnode *n)
{
	struct weft__hnode *last = heap_at(h, h->len);
	/* Detach the last node from the tree's bottom. */
	heap_replace_link(h, last->parent, last, NULL);
	h->len--;
	if (last == n)
		return;
	/* Put it where n was. */
	last->left = n->left;
	last->right = n->right;
	last->parent = n->parent;
	if (last->left)
		last->left->parent = last;
	if (last->right)
		last->right->parent = last;
	heap_replace_link(h, n->parent, n, last);
	if (last->parent && last->key < last->parent->key)
		heap_sift_up(h, last);
	else
		heap_sift_down(h, last);
}
