/* Lazy scope links (runtime/core/cancel.c, "Lazy links"): a group's scope
 * and a child's root scope join the scope tree only when a task of their
 * chain parks or enters a user scope; until then checks pull the
 * cancellation through the chain.  These tests cancel scopes further out
 * while the scopes below are not linked and check that every kind of
 * observer sees it: a join's checkpoint, a blocking call that completes
 * at once, a skippable spawn, a park, and many inline children at once
 * under a concurrent cancel. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "support.h"

/* {======================================================= join */

struct outer {
	weft_scope_t *s;
	atomic_int join_rc;
	char reason[96];
};

static int cancel_outer(void *arg)
{
	struct outer *o = arg;
	CHECK_EQ(weft_scope_cancel(o->s, "outer stop"), 0);
	return 0;
}

/* A: its group's children (B, which cancels the scope outside A's
 * parent group) run inline at its join; the join is a checkpoint of A's
 * root scope, which no task linked. */
static int inline_parent(void *arg)
{
	struct outer *o = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, cancel_outer, o), 0);
	int rc = weft_group_join(g, NULL);
	atomic_store(&o->join_rc, rc);
	weft_cancel_reason_t r;
	CHECK_EQ(weft_cancel_reason(&r), 0);
	memcpy(o->reason, r.text, sizeof o->reason);
	return 0;
}

static int outer_root(void *arg)
{
	struct outer *o = arg;
	CHECK_EQ(weft_scope_create(&o->s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_enter(o->s), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, inline_parent, o), 0);
	CHECK_EQ(weft_group_join(g, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(o->s), 0);
	CHECK_EQ(weft_scope_cancelled_caught(o->s), 1);
	weft_scope_destroy(o->s);
	return 0;
}

static void test_lazy__outer_cancel_reaches_the_join_of_an_unlinked_child(
	void **state)
{
	struct outer o = { 0 };
	weft_test_root(state, outer_root, &o);
	assert_int_equal(atomic_load(&o.join_rc), -ECANCELED);
	assert_string_equal(o.reason, "outer stop");
}

/* }======================================================= */

/* {======================================================= blocking calls */

struct blocking {
	weft_group_t *outer_group;
	weft_lock_t *lock;
	atomic_int acquire_rc;
	atomic_int skipped_ran;
};

static int skippable(void *arg)
{
	struct blocking *b = arg;
	atomic_fetch_add(&b->skipped_ran, 1);
	return 0;
}

/* B: cancels the group two levels up, then makes a blocking call that
 * would complete at once (an uncontended lock): rule 22 says it fails. */
static int cancel_then_lock(void *arg)
{
	struct blocking *b = arg;
	CHECK_EQ(weft_group_cancel(b->outer_group, "from below"), 0);
	int rc = weft_lock_acquire(b->lock);
	atomic_store(&b->acquire_rc, rc);
	if (rc == 0)
		CHECK_EQ(weft_lock_release(b->lock), 0);
	return 0;
}

static int blocking_parent(void *arg)
{
	struct blocking *b = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, cancel_then_lock, b), 0);
	CHECK_EQ(weft_group_join(g, NULL), -ECANCELED);
	/* The group of this task is cancelled now: a skippable child of a
	 * new group under it never runs (rule 30). */
	weft_group_t *g2;
	CHECK_EQ(weft_group_open(&g2), 0);
	weft_spawn_opts_t opts = { .flags = WEFT_SPAWN_SKIPPABLE };
	CHECK_EQ(weft_group_spawn_opts(g2, skippable, b, &opts), 0);
	CHECK_EQ(weft_group_join(g2, NULL), -ECANCELED);
	return 0;
}

static int blocking_root(void *arg)
{
	struct blocking *b = arg;
	CHECK_EQ(weft_lock_create(&b->lock), 0);
	CHECK_EQ(weft_group_open(&b->outer_group), 0);
	CHECK_EQ(weft_group_spawn(b->outer_group, blocking_parent, b), 0);
	CHECK_EQ(weft_group_join(b->outer_group, NULL), 0);
	CHECK_EQ(weft_lock_destroy(b->lock), 0);
	return 0;
}

static void test_lazy__blocking_call_and_skippable_spawn_see_an_outer_cancel(
	void **state)
{
	struct blocking b = { 0 };
	atomic_init(&b.acquire_rc, 1);
	weft_test_root(state, blocking_root, &b);
	assert_int_equal(atomic_load(&b.acquire_rc), -ECANCELED);
	assert_int_equal(atomic_load(&b.skipped_ran), 0);
}

/* }======================================================= */

/* {======================================================= from outside */

/* Spawns WEFT_SPAWN_UNLESS_CANCELLED into a group whose scope's
 * cancellation comes from further out and was pulled by nobody: a plain
 * thread holding a retain and a task inside the group (a child spawning
 * into its own group) must both be refused. */
struct outside {
	weft_scope_t *s;
	weft_group_t *g;
	atomic_int child_rc;
	atomic_int thread_rc;
	atomic_int thread_done;
};

static int nothing(void *arg)
{
	(void)arg;
	return 0;
}

static int spawn_into_own_group(void *arg)
{
	struct outside *o = arg;
	CHECK_EQ(weft_scope_cancel(o->s, NULL), 0);
	weft_spawn_opts_t opts = { .flags = WEFT_SPAWN_UNLESS_CANCELLED };
	atomic_store(&o->child_rc,
		weft_group_spawn_opts(o->g, nothing, NULL, &opts));
	return 0;
}

static void *spawn_from_thread(void *arg)
{
	struct outside *o = arg;
	weft_spawn_opts_t opts = { .flags = WEFT_SPAWN_UNLESS_CANCELLED };
	atomic_store(&o->thread_rc,
		weft_group_spawn_opts(o->g, nothing, NULL, &opts));
	atomic_store(&o->thread_done, 1);
	return NULL;
}

static int outside_root(void *arg)
{
	struct outside *o = arg;
	/* A retained group, its outer scope cancelled by its owner, which
	 * then only yields (no park links anything) until the thread has
	 * spawned. */
	CHECK_EQ(weft_scope_create(&o->s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_enter(o->s), 0);
	CHECK_EQ(weft_group_open(&o->g), 0);
	CHECK_EQ(weft_group_retain(o->g), 0);
	CHECK_EQ(weft_scope_cancel(o->s, NULL), 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, spawn_from_thread, o), 0);
	while (!atomic_load(&o->thread_done))
		CHECK_EQ(weft_yield(), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(weft_group_join(o->g, NULL), -ECANCELED);
	weft_group_release(o->g);
	CHECK_EQ(weft_scope_exit(o->s), 0);
	weft_scope_destroy(o->s);
	/* A child that cancels the scope outside its group, then spawns
	 * into the group: at 1 worker it runs inline at the join, where
	 * nothing is linked. */
	CHECK_EQ(weft_scope_create(&o->s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_enter(o->s), 0);
	CHECK_EQ(weft_group_open(&o->g), 0);
	CHECK_EQ(weft_group_spawn(o->g, spawn_into_own_group, o), 0);
	CHECK_EQ(weft_group_join(o->g, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(o->s), 0);
	weft_scope_destroy(o->s);
	return 0;
}

static void test_lazy__unless_cancelled_spawns_from_inside_and_outside_see_it(
	void **state)
{
	struct outside o = { 0 };
	atomic_init(&o.child_rc, 1);
	atomic_init(&o.thread_rc, 1);
	weft_test_root(state, outside_root, &o);
	assert_int_equal(atomic_load(&o.child_rc), -ECANCELED);
	assert_int_equal(atomic_load(&o.thread_rc), -ECANCELED);
}

/* A task outside the group that holds its handle, and a plain thread
 * holding a retain that a child took (only the owner's retain links the
 * group's scope), spawn WEFT_SPAWN_UNLESS_CANCELLED after the scope
 * around the group was cancelled, while the owner spins without a
 * checkpoint (nothing pulled the cancellation into the group's scope):
 * both are refused.  Needs two workers running at once. */
struct stranger {
	weft_scope_t *s;
	weft_group_t *g;
	atomic_int opened; /* the owner opened g */
	atomic_int done;   /* the spawns were tried */
	atomic_int task_rc;
	atomic_int thread_rc;
};

static void stranger_spin(atomic_int *flag)
{
	/* No checkpoint: the owner's chain must stay unlinked. */
	while (!atomic_load(flag))
		sched_yield();
}

static void *stranger_thread(void *arg)
{
	struct stranger *st = arg;
	weft_spawn_opts_t opts = { .flags = WEFT_SPAWN_UNLESS_CANCELLED };
	atomic_store(&st->thread_rc,
		weft_group_spawn_opts(st->g, nothing, NULL, &opts));
	return NULL;
}

/* A child of g: retains it (not the owner: nothing is linked), cancels
 * the scope around g, and has a plain thread spawn into g. */
static int stranger_retainer(void *arg)
{
	struct stranger *st = arg;
	CHECK_EQ(weft_group_retain(st->g), 0);
	CHECK_EQ(weft_scope_cancel(st->s, NULL), 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, stranger_thread, st), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	weft_group_release(st->g);
	atomic_store(&st->done, 1);
	return 0;
}

/* The owner: g inside a cancellable scope; spins until the others have
 * tried, then joins.  with_child: the thread case (a child retains). */
static int stranger_owner(struct stranger *st, bool with_child)
{
	CHECK_EQ(weft_scope_create(&st->s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_enter(st->s), 0);
	CHECK_EQ(weft_group_open(&st->g), 0);
	if (with_child)
		CHECK_EQ(weft_group_spawn(st->g, stranger_retainer, st), 0);
	atomic_store(&st->opened, 1);
	stranger_spin(&st->done);
	CHECK_EQ(weft_group_join(st->g, NULL), -ECANCELED);
	CHECK_EQ(weft_scope_exit(st->s), 0);
	weft_scope_destroy(st->s);
	return 0;
}

static int stranger_owner_task(void *arg)
{
	return stranger_owner(arg, false);
}

/* A sibling of the owner: cancels the scope around g, then spawns. */
static int stranger_sibling(void *arg)
{
	struct stranger *st = arg;
	stranger_spin(&st->opened);
	CHECK_EQ(weft_scope_cancel(st->s, NULL), 0);
	weft_spawn_opts_t opts = { .flags = WEFT_SPAWN_UNLESS_CANCELLED };
	atomic_store(&st->task_rc,
		weft_group_spawn_opts(st->g, nothing, NULL, &opts));
	atomic_store(&st->done, 1);
	return 0;
}

static int stranger_root(void *arg)
{
	struct stranger *st = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, stranger_owner_task, st), 0);
	CHECK_EQ(weft_group_spawn(g, stranger_sibling, st), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	atomic_store(&st->opened, 0);
	atomic_store(&st->done, 0);
	return stranger_owner(st, true);
}

static void test_lazy__unless_cancelled_spawns_from_strangers_see_it(
	void **state)
{
	struct stranger st = { 0 };
	atomic_init(&st.task_rc, 1);
	atomic_init(&st.thread_rc, 1);
	weft_test_root(state, stranger_root, &st);
	assert_int_equal(atomic_load(&st.task_rc), -ECANCELED);
	assert_int_equal(atomic_load(&st.thread_rc), -ECANCELED);
}

/* }======================================================= */

/* {======================================================= park */

struct park {
	atomic_int parked;
	atomic_int sleep_rc;
};

static int sleeper(void *arg)
{
	struct park *p = arg;
	atomic_store(&p->parked, 1);
	atomic_store(&p->sleep_rc, weft_sleep(60 * WEFT_SEC));
	return 0;
}

static int sleeper_parent(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, sleeper, arg), 0);
	CHECK_EQ(weft_group_join(g, NULL), -ECANCELED);
	return 0;
}

/* The sleeper's park links its chain (its root, its parent's group and
 * root, the root task's group); the cancel of that group then reaches
 * it through the tree and wakes it. */
static int park_root(void *arg)
{
	struct park *p = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, sleeper_parent, p), 0);
	while (!atomic_load(&p->parked))
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_lazy__a_parked_grandchild_is_woken_by_an_outer_cancel(
	void **state)
{
	struct park p = { 0 };
	atomic_init(&p.sleep_rc, 1);
	weft_test_root(state, park_root, &p);
	assert_int_equal(atomic_load(&p.sleep_rc), -ECANCELED);
}

/* }======================================================= */

/* {======================================================= concurrent */

/* A binary tree of depth TREE_DEPTH, every node a group with two
 * children; each leaf makes blocking calls that complete at once until
 * one fails.  Meanwhile another task cancels the scope around the tree:
 * every leaf must see it (none hangs), whether it runs inline (unlinked
 * chain), was stolen, or parked on the lock and linked its chain. */
#define TREE_DEPTH 9

struct tree {
	weft_lock_t *lock;
	atomic_int leaves_cancelled;
	atomic_int started;
};

struct node {
	struct tree *t;
	int depth;
};

static int tree_node(void *arg)
{
	struct node *n = arg;
	if (n->depth == TREE_DEPTH) {
		atomic_fetch_add(&n->t->started, 1);
		for (;;) {
			int rc = weft_lock_acquire(n->t->lock);
			if (rc == -ECANCELED)
				break;
			CHECK_EQ(rc, 0);
			CHECK_EQ(weft_lock_release(n->t->lock), 0);
		}
		atomic_fetch_add(&n->t->leaves_cancelled, 1);
		return 0;
	}
	struct node kids[2] = { { n->t, n->depth + 1 },
		{ n->t, n->depth + 1 } };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, tree_node, &kids[0]), 0);
	CHECK_EQ(weft_group_spawn(g, tree_node, &kids[1]), 0);
	CHECK_EQ(weft_group_join(g, NULL), -ECANCELED);
	return 0;
}

struct tree_run {
	struct tree *t;
	weft_group_t *g;
};

static int tree_canceller(void *arg)
{
	struct tree_run *r = arg;
	while (atomic_load(&r->t->started) == 0)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 10), 0);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_group_cancel(r->g, "tree done"), 0);
	return 0;
}

static int tree_root(void *arg)
{
	struct tree *t = arg;
	CHECK_EQ(weft_lock_create(&t->lock), 0);
	weft_group_t *outer;
	CHECK_EQ(weft_group_open(&outer), 0);
	struct tree_run r = { t, NULL };
	CHECK_EQ(weft_group_open(&r.g), 0);
	/* The canceller runs beside the tree, in the outer group: it may
	 * not be a child of the group it cancels and waits on. */
	CHECK_EQ(weft_group_spawn(outer, tree_canceller, &r), 0);
	struct node top = { t, 0 };
	CHECK_EQ(weft_group_spawn(r.g, tree_node, &top), 0);
	CHECK_EQ(weft_group_join(r.g, NULL), 0);
	CHECK_EQ(weft_group_join(outer, NULL), 0);
	CHECK_EQ(weft_lock_destroy(t->lock), 0);
	return 0;
}

static void test_lazy__every_leaf_of_a_tree_sees_a_concurrent_cancel(
	void **state)
{
	for (int round = 0; round < 20; round++) {
		struct tree t = { 0 };
		weft_test_root(state, tree_root, &t);
		assert_int_equal(atomic_load(&t.leaves_cancelled),
			1 << TREE_DEPTH);
	}
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_lazy__outer_cancel_reaches_the_join_of_an_unlinked_child),
		WEFT_TEST(
			test_lazy__blocking_call_and_skippable_spawn_see_an_outer_cancel),
		WEFT_TEST(
			test_lazy__unless_cancelled_spawns_from_inside_and_outside_see_it),
		WEFT_TEST_AT(
			test_lazy__unless_cancelled_spawns_from_strangers_see_it,
			2),
		WEFT_TEST_AT(
			test_lazy__unless_cancelled_spawns_from_strangers_see_it,
			4),
		WEFT_TEST(
			test_lazy__a_parked_grandchild_is_woken_by_an_outer_cancel),
		WEFT_TEST(
			test_lazy__every_leaf_of_a_tree_sees_a_concurrent_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
