/* Frames (runtime/core/frame.c): an owner's spawn is a frame until
 * something takes it: the owner's join runs it inline in a pooled record,
 * any other pick or a thief makes its task record then.  Nothing of the
 * semantics may change with it: each child runs exactly once with an
 * identity of its own (id, name, handle), sees the task-local context of
 * its spawn, fails into its group under its function's name, is skipped
 * or refused under cancellation like a task spawned with a record, and a
 * record kept by a handle is never reused under it.  Each case also runs
 * with the owner parked between its spawns and its join, so that the
 * frames are taken by picks and thieves instead of the join. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/spin.h"
#include "core/group.h"
#include "core/records.h"

#include "support.h"

/* Past the group record's 16 frames, frames come in chunks of 292
 * (core/frame.c, "Chunks"): the group's own, a full chunk and part of a
 * second. */
#define NCHILD (16 + 292 + 20)

struct who {
	atomic_int ran;
	uint64_t id;
	char name[40];
	uint64_t owner_id;
	uint64_t parent_id;
};

struct many {
	struct who who[NCHILD];
	bool park; /* the owner sleeps before its join */
	/* The 17th spawn's chunk cannot be allocated (1 worker: an
	 * injected failure is the next allocation of any thread). */
	bool fail_chunk;
	uint64_t owner_id;
};

static int child_records(void *arg)
{
	struct who *w = arg;
	atomic_fetch_add(&w->ran, 1);
	w->id = weft_current_task_id();
	snprintf(w->name, sizeof w->name, "%s",
		weft_task_name(weft_current_task()));
	/* The group's owner, seen from the child: its parent. */
	CHECK(weft_task_group(weft_current_task()) != NULL);
	/* Some children yield, so that at several workers the others get
	 * to be stolen while they do. */
	if ((w->id & 1) != 0)
		CHECK_EQ(weft_yield(), 0);
	return 0;
}

static int many_root(void *arg)
{
	struct many *m = arg;
	m->owner_id = weft_current_task_id();
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < NCHILD; i++) {
		long before = weft_debug_injected_failures();
		bool fail = m->fail_chunk && i == 16;
		if (fail)
			weft_debug_fail_alloc(1); /* the chunk's allocation */
		CHECK_EQ(weft_group_spawn(g, child_records, &m->who[i]), 0);
		if (fail)
			CHECK_EQ(weft_debug_injected_failures(), before + 1);
	}
	if (m->park)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void check_many(const struct many *m)
{
	for (int i = 0; i < NCHILD; i++) {
		const struct who *w = &m->who[i];
		assert_int_equal(atomic_load(&w->ran), 1);
		assert_true(w->id != 0);
		assert_true(w->id != m->owner_id);
		assert_string_equal(w->name, "child_records");
		for (int j = 0; j < i; j++)
			assert_true(w->id != m->who[j].id);
	}
}

static void test_frames__each_child_runs_once_as_a_task_of_its_own(void **state)
{
	static struct many m;
	for (int round = 0; round < 40; round++) {
		memset(&m, 0, sizeof m);
		m.park = (round & 1) != 0;
		weft_test_root(state, many_root, &m);
		check_many(&m);
	}
}

/* A group that stays open gives its chunks back as their children start:
 * once the children of 4 chunks' worth of spawns have all run, the group
 * lists one chunk, the one being filled (the sealed ones went with
 * their last frame, taken by the owner's worker or by thieves while it
 * still spawned).  Twice, so that the second round seals the first's
 * last chunk. */
static atomic_int chunk_ran;

static int chunk_child(void *arg)
{
	(void)arg;
	atomic_fetch_add(&chunk_ran, 1);
	return 0;
}

#define CHUNKED (4 * 292)

struct chunks_back {
	int listed[2];
};

/* Chunks g lists (under its scope's lock, as introspection counts). */
static int chunks_listed(weft_group_t *gh)
{
	struct weft_group *g = weft__group_from_handle(gh, "chunks_listed");
	int n = 0;
	weft__spin_lock(&g->scope.lock);
	for (struct weft__frame_chunk *c = g->fchunks; c; c = c->next)
		n++;
	weft__spin_unlock(&g->scope.lock);
	return n;
}

static int chunks_back_root(void *arg)
{
	struct chunks_back *c = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int round = 0; round < 2; round++) {
		atomic_store(&chunk_ran, 0);
		for (int i = 0; i < CHUNKED; i++)
			CHECK_EQ(weft_group_spawn(g, chunk_child, NULL), 0);
		CHECK(weft_test_yield_until(&chunk_ran, CHUNKED));
		c->listed[round] = chunks_listed(g);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_frames__an_open_group_gives_its_chunks_back(void **state)
{
	struct chunks_back c = { 0 };
	weft_test_root(state, chunks_back_root, &c);
	assert_int_equal(c.listed[0], 1);
	assert_int_equal(c.listed[1], 1);
}

/* A chunk that cannot be had (no memory): that spawn takes the record
 * path, and every child still runs once. */
static void test_frames__a_chunk_that_cannot_be_had_takes_a_record(void **state)
{
	static struct many m;
	for (int round = 0; round < 2; round++) {
		memset(&m, 0, sizeof m);
		m.park = round != 0;
		m.fail_chunk = true;
		weft_test_root(state, many_root, &m);
		check_many(&m);
	}
}

/* {======================================================= context */

struct ctx_test {
	weft_local_key_t *key;
	bool park;
	void *seen[3];
	int rc[3];
};

struct ctx_child {
	struct ctx_test *t;
	int i;
};

static int child_reads_key(void *arg)
{
	struct ctx_child *c = arg;
	c->t->rc[c->i] = weft_local_get(c->t->key, &c->t->seen[c->i]);
	return 0;
}

static int ctx_root(void *arg)
{
	struct ctx_test *t = arg;
	static int one, two;
	struct ctx_child c[3] = { { t, 0 }, { t, 1 }, { t, 2 } };
	/* The key lives inside the run: the run's end checks for leaks. */
	CHECK_EQ(weft_local_key_create(&t->key, NULL), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	/* Nothing bound, then 1, then 2: each child sees what was bound
	 * when it was spawned (rule 36), not what the owner has when the
	 * child starts. */
	CHECK_EQ(weft_group_spawn(g, child_reads_key, &c[0]), 0);
	weft_local_token_t t1, t2;
	CHECK_EQ(weft_local_bind(t->key, &one, &t1), 0);
	CHECK_EQ(weft_group_spawn(g, child_reads_key, &c[1]), 0);
	CHECK_EQ(weft_local_bind(t->key, &two, &t2), 0);
	CHECK_EQ(weft_group_spawn(g, child_reads_key, &c[2]), 0);
	CHECK_EQ(weft_local_unbind(&t2), 0);
	CHECK_EQ(weft_local_unbind(&t1), 0);
	if (t->park)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(t->rc[0], -ENOENT);
	CHECK_EQ(t->rc[1], 0);
	CHECK_EQ(t->rc[2], 0);
	CHECK(t->seen[1] == &one);
	CHECK(t->seen[2] == &two);
	CHECK_EQ(weft_local_key_destroy(t->key), 0);
	return 0;
}

static void test_frames__a_child_sees_the_context_of_its_spawn(void **state)
{
	for (int round = 0; round < 20; round++) {
		struct ctx_test t = { .park = (round & 1) != 0 };
		weft_test_root(state, ctx_root, &t);
	}
}

/* }======================================================= */

/* {======================================================= handles */

struct keep {
	weft_task_t *kept;
	uint64_t kept_id;
	atomic_int later_ran;
	bool park;
};

static int keeps_its_handle(void *arg)
{
	struct keep *k = arg;
	weft_task_t *me = weft_current_task();
	CHECK_EQ(weft_task_retain(me), 0);
	k->kept = me;
	k->kept_id = weft_current_task_id();
	return 0;
}

static int runs_later(void *arg)
{
	struct keep *k = arg;
	atomic_fetch_add(&k->later_ran, 1);
	/* A record reused under the kept handle would rename it. */
	CHECK_EQ(weft_task_set_name("someone_else"), 0);
	return 0;
}

static int keep_root(void *arg)
{
	struct keep *k = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, keeps_its_handle, k), 0);
	if (k->park)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* More children, which take records from the inline pool: never
	 * the one the handle keeps. */
	for (int round = 0; round < 4; round++) {
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < 4; i++)
			CHECK_EQ(weft_group_spawn(g, runs_later, k), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	CHECK_EQ(atomic_load(&k->later_ran), 16);
	CHECK_EQ(weft_task_state(k->kept), WEFT_TASK_FINISHED);
	CHECK_EQ(weft_task_id(k->kept), k->kept_id);
	CHECK(strcmp(weft_task_name(k->kept), "keeps_its_handle") == 0);
	weft_task_release(k->kept);
	return 0;
}

static void test_frames__a_kept_handle_keeps_its_record_out_of_the_pool(
	void **state)
{
	for (int round = 0; round < 10; round++) {
		struct keep k = { .park = (round & 1) != 0 };
		weft_test_root(state, keep_root, &k);
	}
}

/* }======================================================= */

/* {======================================================= failures */

struct fails {
	bool park;
	int join_rc;
	size_t leaves;
	int codes_ok;
	int names_ok;
	uint64_t ids[3];
};

static int fails_with_eio(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "frame failure");
}

static int quietly_succeeds(void *arg)
{
	(void)arg;
	return 0;
}

static int fails_root(void *arg)
{
	struct fails *f = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, fails_with_eio, NULL), 0);
	/* The first failure cancels the group, and the sleep with it. */
	if (f->park)
		(void)weft_sleep(WEFT_MSEC);
	weft_error_t *err = NULL;
	f->join_rc = weft_group_join(g, &err);
	f->leaves = weft_error_count(err);
	for (size_t i = 0; i < f->leaves && i < 3; i++) {
		f->codes_ok += weft_error_code_at(err, i) == -EIO &&
			strcmp(weft_error_message_at(err, i),
				"frame failure") == 0;
		f->names_ok += strcmp(weft_error_task_name_at(err, i),
				       "fails_with_eio") == 0;
		f->ids[i] = weft_error_task_id_at(err, i);
	}
	weft_error_free(err);
	/* Records whose children failed hold a message until freed: the
	 * next children must start clean. */
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, quietly_succeeds, NULL), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_frames__failures_reach_the_join_under_their_names(void **state)
{
	for (int round = 0; round < 10; round++) {
		struct fails f = { .park = (round & 1) != 0 };
		weft_test_root(state, fails_root, &f);
		assert_int_equal(f.join_rc, WEFT_ECHILD_FAILED);
		assert_int_equal(f.leaves, 3);
		assert_int_equal(f.codes_ok, 3);
		assert_int_equal(f.names_ok, 3);
		assert_true(f.ids[0] != 0 && f.ids[1] != 0 && f.ids[2] != 0);
		assert_true(f.ids[0] != f.ids[1] && f.ids[1] != f.ids[2] &&
			f.ids[0] != f.ids[2]);
	}
}

/* }======================================================= */

/* {======================================================= cancellation */

struct cancelled {
	atomic_int skippable_ran;
	atomic_int saw_cancel;
	int unless_rc;
	bool park;
};

static int must_not_run(void *arg)
{
	struct cancelled *c = arg;
	atomic_fetch_add(&c->skippable_ran, 1);
	return 0;
}

static int checkpoints(void *arg)
{
	struct cancelled *c = arg;
	if (weft_checkpoint() == -ECANCELED)
		atomic_fetch_add(&c->saw_cancel, 1);
	return 0;
}

static int cancelled_root(void *arg)
{
	struct cancelled *c = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_spawn_opts_t skip = { .flags = WEFT_SPAWN_SKIPPABLE };
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(weft_group_spawn_opts(g, must_not_run, c, &skip), 0);
		CHECK_EQ(weft_group_spawn(g, checkpoints, c), 0);
	}
	/* Nothing ran yet at 1 worker (the owner has not parked); at more,
	 * thieves may start some before the cancel. */
	CHECK_EQ(weft_group_cancel(g, "stop"), 0);
	weft_spawn_opts_t unless = { .flags = WEFT_SPAWN_UNLESS_CANCELLED };
	c->unless_rc = weft_group_spawn_opts(g, must_not_run, c, &unless);
	if (c->park)
		(void)weft_sleep(WEFT_MSEC);
	int rc = weft_group_join(g, NULL);
	CHECK(rc == 0 || rc == -ECANCELED);
	return 0;
}

static void test_frames__cancelled_frames_are_skipped_or_refused_as_records(
	void **state)
{
	for (int round = 0; round < 20; round++) {
		struct cancelled c = { .park = (round & 1) != 0 };
		weft_test_root(state, cancelled_root, &c);
		assert_int_equal(c.unless_rc, -ECANCELED);
		assert_true(atomic_load(&c.skippable_ran) <= 3);
		if (WEFT_TEST_WORKERS(state) == 1) {
			assert_int_equal(atomic_load(&c.skippable_ran), 0);
			assert_int_equal(atomic_load(&c.saw_cancel), 3);
		}
	}
}

/* }======================================================= */

/* {======================================================= fork-join */

/* A deep binary fork-join (B1's shape): every inner node is a group
 * owner whose frame child may be stolen, picked or run inline, and whose
 * children's records come from the pool.  The sum checks that every
 * leaf ran exactly once. */
struct fib_arg {
	int n;
	long long out;
};

static int fib_node(void *arg)
{
	struct fib_arg *a = arg;
	if (a->n < 2) {
		a->out = a->n;
		return 0;
	}
	struct fib_arg x = { a->n - 1, 0 }, y = { a->n - 2, 0 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, fib_node, &x), 0);
	CHECK_EQ(fib_node(&y), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	a->out = x.out + y.out;
	return 0;
}

static void test_frames__fork_join_trees_add_up(void **state)
{
	for (int round = 0; round < 5; round++) {
		struct fib_arg a = { 20, 0 };
		weft_test_root(state, fib_node, &a);
		assert_int_equal(a.out, 6765);
	}
}

/* }======================================================= */

/* {======================================================= introspection */

/* Children spawned as frames and not started are counted on their
 * group's dump line ("pending=", JSON "pending"); once started they are
 * tasks and the count drops.  At 1 worker nothing runs them before the
 * owner parks. */
#define PENDING (16 + 292 + 3)

struct pending {
	atomic_int ran;
	int before_ok, before_json_ok, after_ok;
};

static int pending_child(void *arg)
{
	struct pending *p = arg;
	atomic_fetch_add(&p->ran, 1);
	return 0;
}

static int pending_root(void *arg)
{
	struct pending *p = arg;
	static char buf[1 << 16];
	size_t len = 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	/* In the group record and in two chunks. */
	for (int i = 0; i < PENDING; i++)
		CHECK_EQ(weft_group_spawn(g, pending_child, p), 0);
	/* A retained group's scope is linked, so the dump lists it. */
	CHECK_EQ(weft_group_retain(g), 0);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, buf, sizeof buf,
			 &len),
		0);
	char want[32];
	snprintf(want, sizeof want, " pending=%d ", PENDING);
	p->before_ok = strstr(buf, want) != NULL;
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, buf, sizeof buf,
			 &len),
		0);
	snprintf(want, sizeof want, "\"pending\":%d", PENDING);
	p->before_json_ok = strstr(buf, want) != NULL;
	/* Let them run (the owner parks), then look again. */
	CHECK(weft_test_yield_until(&p->ran, PENDING));
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, buf, sizeof buf,
			 &len),
		0);
	p->after_ok = strstr(buf, " pending=") == NULL;
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_group_release(g);
	return 0;
}

static void test_frames__the_dump_counts_children_not_started(void **state)
{
	struct pending p = { 0 };
	weft_test_root(state, pending_root, &p);
	assert_int_equal(atomic_load(&p.ran), PENDING);
	assert_true(p.before_ok);
	assert_true(p.before_json_ok);
	assert_true(p.after_ok);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_frames__each_child_runs_once_as_a_task_of_its_own),
		WEFT_TEST(test_frames__a_child_sees_the_context_of_its_spawn),
		WEFT_TEST(
			test_frames__a_kept_handle_keeps_its_record_out_of_the_pool),
		WEFT_TEST(
			test_frames__failures_reach_the_join_under_their_names),
		WEFT_TEST(
			test_frames__cancelled_frames_are_skipped_or_refused_as_records),
		WEFT_TEST(test_frames__fork_join_trees_add_up),
		/* One worker: an injected failure is the next allocation of
		 * any thread. */
		WEFT_TEST_AT(
			test_frames__a_chunk_that_cannot_be_had_takes_a_record,
			1),
		WEFT_TEST(test_frames__an_open_group_gives_its_chunks_back),
		WEFT_TEST_AT(test_frames__the_dump_counts_children_not_started,
			1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
