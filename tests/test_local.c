/* Task-local context (docs/semantics.md rule 36; include/weft/local.h):
 * snapshots of the spawning task's context, per-spawn overrides, nested
 * bind / unbind, key destructors, the offload-thread attach API, errors
 * and allocation failure.  Every test runs at 1, 2 and 4 workers. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/local.h"
#include "support.h"

#define V(x) ((void *)(uintptr_t)(x))

/* weft_test_root checks for leaks when the runtime is gone, so keys are
 * created and destroyed inside the root task: run_with_key runs fn(arg)
 * as the root with *key (and *other, if not NULL) created before it and
 * destroyed after it (*key only unless keep: fn destroyed it itself). */
struct keyed {
	weft_local_key_t **key, **other;
	void (*dtor)(void *);
	bool keep;
	weft_fn fn;
	void *arg;
};

static int keyed_root(void *arg)
{
	struct keyed *k = arg;
	CHECK_EQ(weft_local_key_create(k->key, k->dtor), 0);
	if (k->other)
		CHECK_EQ(weft_local_key_create(k->other, NULL), 0);
	int rc = k->fn(k->arg);
	if (!k->keep)
		CHECK_EQ(weft_local_key_destroy(*k->key), 0);
	if (k->other)
		CHECK_EQ(weft_local_key_destroy(*k->other), 0);
	return rc;
}

static void run_with_key(void **state, weft_fn fn, void *arg,
	weft_local_key_t **key, weft_local_key_t **other, void (*dtor)(void *),
	bool keep)
{
	struct keyed k = { key, other, dtor, keep, fn, arg };
	weft_test_root(state, keyed_root, &k);
}

/* The value of key in the calling task, or -1 if unbound (-2 on error). */
static long get_val(weft_local_key_t *key)
{
	void *v = V(99);
	int rc = weft_local_get(key, &v);
	if (rc == -ENOENT) {
		CHECK(v == NULL);
		return -1;
	}
	if (rc != 0)
		return -2;
	return (long)(uintptr_t)v;
}

/* {======================================================= snapshots */

struct snap {
	weft_local_key_t *key;
	weft_group_t *g;    /* the root's group */
	atomic_long seen_b; /* what the grandchild saw */
	atomic_long seen_c; /* what a child of the root saw */
};

static int snap_grandchild(void *arg)
{
	struct snap *s = arg;
	atomic_store(&s->seen_b, get_val(s->key));
	return 0;
}

static int snap_child_a(void *arg)
{
	struct snap *s = arg;
	CHECK_EQ(get_val(s->key), 1);
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(s->key, V(2), &tok), 0);
	/* Spawned into the root's group, by this task: it must see this
	 * task's context (2), not the group owner's (1). */
	CHECK_EQ(weft_group_spawn(s->g, snap_grandchild, s), 0);
	CHECK_EQ(weft_local_unbind(&tok), 0);
	return 0;
}

static int snap_child_c(void *arg)
{
	struct snap *s = arg;
	atomic_store(&s->seen_c, get_val(s->key));
	return 0;
}

static int snap_root(void *arg)
{
	struct snap *s = arg;
	CHECK_EQ(get_val(s->key), -1); /* the root starts empty */
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(s->key, V(1), &tok), 0);
	CHECK_EQ(weft_group_open(&s->g), 0);
	CHECK_EQ(weft_group_spawn(s->g, snap_child_a, s), 0);
	CHECK_EQ(weft_group_spawn(s->g, snap_child_c, s), 0);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	CHECK_EQ(weft_local_unbind(&tok), 0);
	return 0;
}

static void test_local__child_sees_the_spawning_tasks_snapshot_not_the_owners(
	void **state)
{
	struct snap s;
	memset(&s, 0, sizeof s);
	run_with_key(state, snap_root, &s, &s.key, NULL, NULL, false);
	assert_int_equal(atomic_load(&s.seen_b), 2);
	assert_int_equal(atomic_load(&s.seen_c), 1);
	weft_test_assert_no_leaks();
}

struct later {
	weft_local_key_t *key;
	atomic_int parent_rebound; /* the parent changed its binding */
	atomic_int child_bound;	   /* the child bound its own value */
	atomic_int child_done;
};

static int later_child(void *arg)
{
	struct later *l = arg;
	CHECK_EQ(get_val(l->key), 10);
	CHECK(weft_test_yield_until(&l->parent_rebound, 1));
	CHECK_EQ(get_val(l->key), 10); /* the parent's change is not seen */
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(l->key, V(30), &tok), 0);
	CHECK_EQ(get_val(l->key), 30);
	atomic_store(&l->child_bound, 1);
	CHECK(weft_test_yield_until(&l->child_done, 1));
	CHECK_EQ(weft_local_unbind(&tok), 0);
	CHECK_EQ(get_val(l->key), 10);
	return 0;
}

static int later_root(void *arg)
{
	struct later *l = arg;
	weft_local_token_t t1, t2;
	CHECK_EQ(weft_local_bind(l->key, V(10), &t1), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, later_child, l), 0);
	CHECK_EQ(weft_local_bind(l->key, V(20), &t2), 0);
	atomic_store(&l->parent_rebound, 1);
	CHECK(weft_test_yield_until(&l->child_bound, 1));
	CHECK_EQ(get_val(l->key), 20); /* the child's binding is not seen */
	atomic_store(&l->child_done, 1);
	CHECK_EQ(weft_local_unbind(&t2), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(get_val(l->key), 10);
	CHECK_EQ(weft_local_unbind(&t1), 0);
	CHECK_EQ(get_val(l->key), -1);
	return 0;
}

static void test_local__later_changes_are_not_shared_between_parent_and_child(
	void **state)
{
	struct later l;
	memset(&l, 0, sizeof l);
	run_with_key(state, later_root, &l, &l.key, NULL, NULL, false);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= overrides */

struct ovr {
	weft_local_key_t *key, *other;
	atomic_long seen[4];
	atomic_long seen_other[4];
};

struct ovr_arg {
	struct ovr *o;
	int slot;
};

static int ovr_child(void *arg)
{
	struct ovr_arg *a = arg;
	atomic_store(&a->o->seen[a->slot], get_val(a->o->key));
	atomic_store(&a->o->seen_other[a->slot], get_val(a->o->other));
	return 0;
}

static int ovr_root(void *arg)
{
	struct ovr *o = arg;
	weft_context_t *captured, *empty;
	CHECK_EQ(weft_context_capture(&empty), 0); /* nothing bound yet */
	weft_local_token_t t1, t2;
	CHECK_EQ(weft_local_bind(o->key, V(7), &t1), 0);
	CHECK_EQ(weft_local_bind(o->other, V(8), &t2), 0);
	CHECK_EQ(weft_context_capture(&captured), 0);
	CHECK_EQ(weft_local_unbind(&t2), 0);
	CHECK_EQ(weft_local_unbind(&t1), 0);
	CHECK_EQ(weft_local_bind(o->key, V(5), &t1), 0);
	struct ovr_arg a[4];
	for (int i = 0; i < 4; i++)
		a[i] = (struct ovr_arg){ o, i };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	/* 0: the spawner's snapshot (key = 5, other unbound). */
	CHECK_EQ(weft_group_spawn(g, ovr_child, &a[0]), 0);
	/* 1: a captured context instead (key = 7, other = 8). */
	weft_spawn_opts_t opts = { .context = captured };
	CHECK_EQ(weft_group_spawn_opts(g, ovr_child, &a[1], &opts), 0);
	/* 2: the empty context, by flag (wins over .context). */
	opts = (weft_spawn_opts_t){ .flags = WEFT_SPAWN_EMPTY_CONTEXT,
		.context = captured };
	CHECK_EQ(weft_group_spawn_opts(g, ovr_child, &a[2], &opts), 0);
	/* 3: a captured empty context means empty, not "inherit". */
	opts = (weft_spawn_opts_t){ .context = empty };
	CHECK_EQ(weft_group_spawn_opts(g, ovr_child, &a[3], &opts), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_local_unbind(&t1), 0);
	weft_context_release(captured);
	weft_context_release(empty);
	weft_context_release(NULL);
	return 0;
}

static void test_local__spawn_option_overrides_the_snapshot(void **state)
{
	struct ovr o;
	memset(&o, 0, sizeof o);
	run_with_key(state, ovr_root, &o, &o.key, &o.other, NULL, false);
	assert_int_equal(atomic_load(&o.seen[0]), 5);
	assert_int_equal(atomic_load(&o.seen_other[0]), -1);
	assert_int_equal(atomic_load(&o.seen[1]), 7);
	assert_int_equal(atomic_load(&o.seen_other[1]), 8);
	assert_int_equal(atomic_load(&o.seen[2]), -1);
	assert_int_equal(atomic_load(&o.seen_other[2]), -1);
	assert_int_equal(atomic_load(&o.seen[3]), -1);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= nesting */

struct nest {
	weft_local_key_t *key;
	weft_local_token_t *foreign; /* a token bound by the root */
};

static int nest_thief(void *arg)
{
	struct nest *n = arg;
	/* Unbinding another task's binding is misuse, and changes nothing. */
	CHECK_EQ(weft_local_unbind(n->foreign), WEFT_EMISUSE);
	return 0;
}

static int nest_root(void *arg)
{
	struct nest *n = arg;
	weft_local_token_t t1, t2, t3;
	CHECK_EQ(weft_local_bind(n->key, V(1), &t1), 0);
	CHECK_EQ(get_val(n->key), 1);
	CHECK_EQ(weft_local_bind(n->key, V(2), &t2), 0);
	CHECK_EQ(get_val(n->key), 2);
	CHECK_EQ(weft_local_bind(n->key, V(3), &t3), 0);
	CHECK_EQ(get_val(n->key), 3);
	/* Out of order: refused, nothing undone. */
	CHECK_EQ(weft_local_unbind(&t1), WEFT_EMISNEST);
	CHECK_EQ(weft_local_unbind(&t2), WEFT_EMISNEST);
	CHECK_EQ(get_val(n->key), 3);
	n->foreign = &t3;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, nest_thief, n), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(get_val(n->key), 3);
	CHECK_EQ(weft_local_unbind(&t3), 0);
	CHECK_EQ(get_val(n->key), 2);
	CHECK_EQ(weft_local_unbind(&t3), -EINVAL); /* already undone */
	CHECK_EQ(weft_local_unbind(&t2), 0);
	CHECK_EQ(get_val(n->key), 1);
	CHECK_EQ(weft_local_unbind(&t1), 0);
	CHECK_EQ(get_val(n->key), -1);
	/* A binding left in place when the task returns dies with it. */
	CHECK_EQ(weft_local_bind(n->key, V(4), &t1), 0);
	return 0;
}

static void test_local__nested_bindings_unbind_lifo_and_misnesting_is_refused(
	void **state)
{
	struct nest n;
	memset(&n, 0, sizeof n);
	run_with_key(state, nest_root, &n, &n.key, NULL, NULL, false);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= destructors */

#define DTOR_VALUES 8
#define DTOR_CHILDREN 64

static atomic_int dtor_calls[DTOR_VALUES];
static atomic_int dtor_early; /* a destructor ran while a holder lived */
static atomic_int dtor_holders;

static void dtor_count(void *v)
{
	long i = (long)(uintptr_t)v;
	if (i >= 0 && i < DTOR_VALUES)
		atomic_fetch_add(&dtor_calls[i], 1);
	if (atomic_load(&dtor_holders) > 0 && i == DTOR_VALUES - 1)
		atomic_store(&dtor_early, 1);
}

struct dtor {
	weft_local_key_t *key;
	atomic_int release;
};

static int dtor_child(void *arg)
{
	struct dtor *d = arg;
	CHECK_EQ(get_val(d->key), DTOR_VALUES - 1);
	CHECK(weft_test_yield_until(&d->release, 1));
	CHECK_EQ(get_val(d->key), DTOR_VALUES - 1);
	atomic_fetch_sub(&dtor_holders, 1);
	return 0;
}

static int dtor_root(void *arg)
{
	struct dtor *d = arg;
	/* Nobody took a snapshot: the value dies at its unbind. */
	weft_local_token_t tok[DTOR_VALUES];
	CHECK_EQ(weft_local_bind(d->key, V(0), &tok[0]), 0);
	CHECK_EQ(weft_local_unbind(&tok[0]), 0);
	CHECK_EQ(atomic_load(&dtor_calls[0]), 1);
	/* Nested rebinding; the children's snapshots hold the innermost
	 * binding, and through it the whole chain. */
	for (int i = 1; i < DTOR_VALUES; i++)
		CHECK_EQ(weft_local_bind(d->key, V(i), &tok[i]), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	atomic_store(&dtor_holders, DTOR_CHILDREN);
	for (int i = 0; i < DTOR_CHILDREN; i++)
		CHECK_EQ(weft_group_spawn(g, dtor_child, d), 0);
	for (int i = DTOR_VALUES - 1; i >= 1; i--)
		CHECK_EQ(weft_local_unbind(&tok[i]), 0);
	for (int i = 1; i < DTOR_VALUES; i++)
		CHECK_EQ(atomic_load(&dtor_calls[i]), 0);
	/* The key may be destroyed while bindings still exist. */
	CHECK_EQ(weft_local_key_destroy(d->key), 0);
	atomic_store(&d->release, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < DTOR_VALUES; i++)
		CHECK_EQ(atomic_load(&dtor_calls[i]), 1);
	return 0;
}

static void test_local__key_destructor_runs_once_per_value_after_last_holder(
	void **state)
{
	struct dtor d;
	memset(&d, 0, sizeof d);
	for (int i = 0; i < DTOR_VALUES; i++)
		atomic_store(&dtor_calls[i], 0);
	atomic_store(&dtor_early, 0);
	run_with_key(state, dtor_root, &d, &d.key, NULL, dtor_count, true);
	for (int i = 0; i < DTOR_VALUES; i++)
		assert_int_equal(atomic_load(&dtor_calls[i]), 1);
	assert_int_equal(atomic_load(&dtor_early), 0);
	weft_test_assert_no_leaks();
}

/* A binding left in place at task exit, and a captured context released
 * after the binder ended: each value still destroyed exactly once. */
static weft_local_key_t *leftover_key;

static int dtor_leftover_child(void *arg)
{
	weft_local_key_t *key = arg;
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(key, V(3), &tok), 0);
	return 0; /* left bound on purpose */
}

static int dtor_leftover_root(void *arg)
{
	(void)arg;
	weft_local_key_t *key = leftover_key;
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(key, V(1), &tok), 0);
	weft_context_t *c;
	CHECK_EQ(weft_context_capture(&c), 0);
	CHECK_EQ(weft_local_unbind(&tok), 0);
	CHECK_EQ(atomic_load(&dtor_calls[1]), 0); /* c holds it */
	weft_context_release(c);
	CHECK_EQ(atomic_load(&dtor_calls[1]), 1);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, dtor_leftover_child, key), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&dtor_calls[3]), 1);
	return 0;
}

static void test_local__bindings_left_at_exit_and_captures_are_destroyed_once(
	void **state)
{
	for (int i = 0; i < DTOR_VALUES; i++)
		atomic_store(&dtor_calls[i], 0);
	run_with_key(state, dtor_leftover_root, NULL, &leftover_key, NULL,
		dtor_count, false);
	assert_int_equal(atomic_load(&dtor_calls[1]), 1);
	assert_int_equal(atomic_load(&dtor_calls[3]), 1);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= offload threads */

struct offload {
	weft_local_key_t *key;
	struct weft_context *ctx;
	long seen;
	int rc_capture;
	long seen_empty;
};

static void *offload_thread(void *arg)
{
	struct offload *o = arg;
	void *v;
	/* Not attached: a plain thread has no context. */
	if (weft_local_get(o->key, &v) != WEFT_ENOTFIBER)
		o->seen = -100;
	weft__local_attach(o->ctx);
	if (o->seen == 0)
		o->seen = get_val(o->key);
	weft_context_t *c;
	o->rc_capture = weft_context_capture(&c);
	if (o->rc_capture == 0)
		weft_context_release(c);
	weft__local_detach();
	weft__local_attach(NULL); /* the empty context */
	o->seen_empty = get_val(o->key);
	weft__local_detach();
	return NULL;
}

static int offload_root(void *arg)
{
	struct offload *o = arg;
	weft_local_token_t tok;
	CHECK_EQ(weft_local_bind(o->key, V(42), &tok), 0);
	o->ctx = weft__local_capture();
	CHECK_EQ(weft_local_unbind(&tok), 0);
	/* The work runs on a plain thread and sees the sender's context. */
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, offload_thread, o), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	weft__local_context_unref(o->ctx);
	return 0;
}

static void test_local__offload_thread_sees_the_sending_tasks_context(
	void **state)
{
	struct offload o;
	memset(&o, 0, sizeof o);
	run_with_key(state, offload_root, &o, &o.key, NULL, NULL, false);
	assert_int_equal(o.seen, 42);
	assert_int_equal(o.rc_capture, 0);
	assert_int_equal(o.seen_empty, -1);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= errors */

static weft_local_key_t *errors_key;

static int errors_root(void *arg)
{
	(void)arg;
	weft_local_key_t *key = errors_key;
	weft_local_token_t tok;
	void *v;
	CHECK_EQ(weft_local_bind(NULL, V(1), &tok), -EINVAL);
	CHECK_EQ(weft_local_bind(key, V(1), NULL), -EINVAL);
	CHECK_EQ(weft_local_unbind(NULL), -EINVAL);
	memset(&tok, 0, sizeof tok);
	CHECK_EQ(weft_local_unbind(&tok), -EINVAL);
	CHECK_EQ(weft_local_get(NULL, &v), -EINVAL);
	CHECK_EQ(weft_local_get(key, NULL), -EINVAL);
	CHECK_EQ(weft_context_capture(NULL), -EINVAL);
	/* Allocation failure: nothing bound, the value stays the caller's.
	 * The injection is process-wide, so another thread of the runtime
	 * (an idle worker, the I/O thread) may take the failure first: then
	 * the bind succeeds, and the attempt is repeated. */
	int rc = 0;
	for (int attempt = 0; attempt < 100; attempt++) {
		weft_debug_fail_alloc(1);
		rc = weft_local_bind(key, V(1), &tok);
		weft_debug_fail_alloc(0);
		if (rc != 0)
			break;
		CHECK_EQ(weft_local_unbind(&tok), 0);
	}
#ifdef WEFT_DEBUG
	CHECK_EQ(rc, -ENOMEM);
	CHECK_EQ(get_val(key), -1);
#endif
	return 0;
}

static void test_local__errors(void **state)
{
	weft_local_key_t *key;
	assert_int_equal(weft_local_key_create(NULL, NULL), -EINVAL);
	assert_int_equal(weft_local_key_destroy(NULL), -EINVAL);
	weft_debug_fail_alloc(1);
	int rc = weft_local_key_create(&key, NULL);
	weft_debug_fail_alloc(0);
#ifdef WEFT_DEBUG
	assert_int_equal(rc, -ENOMEM);
#else
	if (rc == 0)
		weft_local_key_destroy(key);
#endif
	assert_int_equal(weft_local_key_create(&key, NULL), 0);
	assert_int_equal(weft_local_key_destroy(key), 0);
	/* A plain thread without an attached context (the key is only
	 * compared, never used). */
	weft_local_token_t tok;
	void *v;
	weft_context_t *c;
	assert_int_equal(weft_local_bind(key, V(1), &tok), WEFT_ENOTFIBER);
	tok.priv_node = &tok;
	assert_int_equal(weft_local_unbind(&tok), WEFT_ENOTFIBER);
	assert_int_equal(weft_local_get(key, &v), WEFT_ENOTFIBER);
	assert_int_equal(weft_context_capture(&c), WEFT_ENOTFIBER);
	run_with_key(state, errors_root, NULL, &errors_key, NULL, NULL, false);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_local__child_sees_the_spawning_tasks_snapshot_not_the_owners),
		WEFT_TEST(
			test_local__later_changes_are_not_shared_between_parent_and_child),
		WEFT_TEST(test_local__spawn_option_overrides_the_snapshot),
		WEFT_TEST(
			test_local__nested_bindings_unbind_lifo_and_misnesting_is_refused),
		WEFT_TEST(
			test_local__key_destructor_runs_once_per_value_after_last_holder),
		WEFT_TEST(
			test_local__bindings_left_at_exit_and_captures_are_destroyed_once),
		WEFT_TEST(
			test_local__offload_thread_sees_the_sending_tasks_context),
		WEFT_TEST(test_local__errors),
	};
	return WEFT_RUN_TESTS(tests);
}
