/* Task-local context (docs/semantics.md rule 36).
 *
 * Design
 * ------
 * Problem: a spawned task must start with the context of the task that
 * spawned it, as it was at spawn time, while the spawn path (benchmark
 * B1: ~1,000 instructions per spawn) stays as cheap as a pointer copy when
 * nothing is bound; a task changes its context only in nested scopes.
 *
 * Approach: a context is an immutable chain of binding nodes (key, value,
 * parent), innermost first, and a task's context is a pointer to its
 * innermost node (NULL when empty).  A snapshot is therefore the pointer
 * plus one reference increment (none when empty): copy-on-write for free,
 * because nothing is ever written into a node after it is published.
 * weft_local_bind pushes a node whose parent is the current context (the
 * task's reference moves into the node); weft_local_unbind pops it,
 * checking LIFO order with the caller's token.  A lookup walks the chain.
 *
 * Rejected: a per-task hash map copied at spawn (an allocation per spawn
 * even for tasks that never look anything up), and a persistent HAMT as
 * in Python's contextvars (O(log n) lookups matter with many keys; weft's
 * contexts are expected to hold a handful of bindings, where walking a
 * short chain is faster and far simpler).
 *
 * Lifetime: a node holds a reference on its parent and on its key, so a
 * value lives while any snapshot can see it and its key's destructor runs
 * exactly once, on whichever thread drops the last reference (the
 * unbinding task, or the last task holding a snapshot, at its end).
 *
 * Invariants
 *   1. A node is immutable after weft_local_bind published it.
 *   2. task->ctx holds exactly one reference on the node it points to.
 *   3. Each bound value is passed to its key's destructor exactly once.
 */
#include <errno.h>
#include <stddef.h>

#include "base/alloc.h"
#include "core/local.h"
#include "core/task.h"

/* weft_context_capture's stand-in for the empty context, so that a
 * captured empty context passed as a spawn option means "empty", not
 * "inherit" (NULL there).  Never reference counted. */
static struct weft_context local_empty;

/* The context attached to a plain thread (weft__local_attach).  Only
 * read and written on plain threads, which never switch fibers, so the
 * TLS address is never kept across a switch. */
static __thread struct weft_context *local_attached;
static __thread bool local_attached_set;

static void local_key_unref(struct weft_local_key *k)
{
	/* acq_rel: the freeing thread sees every use made under the others. */
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1)
		weft__free(k);
}

void weft__local_context_unref(struct weft_context *c)
{
	/* Iterative: dropping the last reference on a long chain must not
	 * recurse once per node.  acq_rel (local.h): the last dropper sees
	 * every write made under the other references before the dtor. */
	while (c != NULL && c != &local_empty) {
		if (atomic_fetch_sub_explicit(&c->refs, 1,
			    memory_order_acq_rel) != 1)
			return;
		struct weft_context *parent = c->parent;
		struct weft_local_key *k = c->key;
		if (k->dtor)
			k->dtor(c->value);
		local_key_unref(k);
		weft__free(c);
		c = parent;
	}
}

struct weft_context *weft__local_context_norm(struct weft_context *c)
{
	return c == &local_empty ? NULL : c;
}

/* The context the caller sees, without a new reference; *ok says whether
 * the caller has one at all (a task, or a plain thread with an attached
 * context). */
static struct weft_context *local_current(bool *ok)
{
	struct weft_task *t = weft__task_current();
	if (t != NULL) {
		*ok = true;
		return t->ctx;
	}
	*ok = local_attached_set;
	return local_attached;
}

struct weft_context *weft__local_capture(void)
{
	bool ok;
	struct weft_context *c = local_current(&ok);
	if (c)
		weft__local_context_ref(c);
	return c;
}

void weft__local_attach(struct weft_context *c)
{
	local_attached = weft__local_context_norm(c);
	local_attached_set = true;
}

void weft__local_detach(void)
{
	local_attached = NULL;
	local_attached_set = false;
}

/* {======================================================= public API */

int weft_local_key_create(weft_local_key_t **out, void (*dtor)(void *value))
{
	if (out == NULL)
		return -EINVAL;
	struct weft_local_key *k = weft__alloc(sizeof *k);
	if (k == NULL)
		return -ENOMEM;
	atomic_init(&k->refs, 1);
	k->dtor = dtor;
	*out = k;
	return 0;
}

int weft_local_key_destroy(weft_local_key_t *key)
{
	if (key == NULL)
		return -EINVAL;
	local_key_unref(key);
	return 0;
}

int weft_local_bind(weft_local_key_t *key, void *value, weft_local_token_t *tok)
{
	if (key == NULL || tok == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	struct weft_context *n = weft__alloc(sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	atomic_init(&n->refs, 1); /* the task's hold (invariant 2) */
	n->parent = t->ctx;	  /* the task's reference moves here */
	n->key = key;
	/* relaxed: the caller holds the key (its creator reference). */
	atomic_fetch_add_explicit(&key->refs, 1, memory_order_relaxed);
	n->value = value;
	t->ctx = n;
	tok->priv_node = n;
	tok->priv_task = t;
	return 0;
}

int weft_local_unbind(weft_local_token_t *tok)
{
	if (tok == NULL || tok->priv_node == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	if (tok->priv_task != t)
		return WEFT_EMISUSE;
	struct weft_context *n = tok->priv_node;
	if (t->ctx != n)
		return WEFT_EMISNEST;
	/* The task takes a reference on the outer context and drops its hold
	 * on n; if nobody took a snapshot of n, n dies here (its value's
	 * destructor runs) and drops its own reference on the parent. */
	t->ctx = n->parent;
	if (t->ctx)
		weft__local_context_ref(t->ctx);
	weft__local_context_unref(n);
	tok->priv_node = NULL;
	tok->priv_task = NULL;
	return 0;
}

int weft_local_get(const weft_local_key_t *key, void **value)
{
	if (key == NULL || value == NULL)
		return -EINVAL;
	*value = NULL;
	bool ok;
	struct weft_context *c = local_current(&ok);
	if (!ok)
		return WEFT_ENOTFIBER;
	for (; c != NULL; c = c->parent)
		if (c->key == key) {
			*value = c->value;
			return 0;
		}
	return -ENOENT;
}

int weft_context_capture(weft_context_t **out)
{
	if (out == NULL)
		return -EINVAL;
	bool ok;
	struct weft_context *c = local_current(&ok);
	if (!ok)
		return WEFT_ENOTFIBER;
	if (c == NULL) {
		*out = &local_empty;
		return 0;
	}
	weft__local_context_ref(c);
	*out = c;
	return 0;
}

void weft_context_release(weft_context_t *ctx)
{
	weft__local_context_unref(ctx);
}

/* }======================================================= */
