/* Group budgets (include/weft/group.h, weft_group_opts_t;
 * docs/semantics.md rules 50 and 51): the child cap (waiting spawns,
 * WEFT_SPAWN_NOWAIT, plain threads, cancellation, pending starts), the
 * stack cap (a subtree's stacks, -ENOMEM in that subtree only), the run
 * time of a subtree, the deadline of a group, and misuse. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "support.h"

#define STACK (64 * 1024)

struct hold {
	atomic_int live, max_live, ran, release;
	atomic_int spawned, blocked_seen;
	weft_group_t *g;
};

/* A child that stays live until release. */
static int holder(void *arg)
{
	struct hold *h = arg;
	int n = atomic_fetch_add(&h->live, 1) + 1;
	int m = atomic_load(&h->max_live);
	while (n > m && !atomic_compare_exchange_weak(&h->max_live, &m, n))
		;
	atomic_fetch_add(&h->ran, 1);
	CHECK(weft_test_yield_until(&h->release, 1));
	atomic_fetch_sub(&h->live, 1);
	return 0;
}

static int count_up(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

static weft_group_t *open_capped(size_t max_children, size_t stack_max)
{
	weft_group_opts_t o = { .max_children = max_children,
		.stack_bytes_max = stack_max };
	weft_group_t *g = NULL;
	CHECK_EQ(weft_group_open_opts(&g, &o), 0);
	return g;
}

/* {======================================================= child cap */

/* Sees the owner stuck at its third spawn, then lets the children go. */
static int releaser(void *arg)
{
	struct hold *h = arg;
	CHECK(weft_test_yield_until(&h->spawned, 2));
	CHECK(weft_test_yield_until(&h->ran, 2));
	for (int i = 0; i < 200; i++)
		weft_yield();
	if (atomic_load(&h->spawned) == 2 && atomic_load(&h->ran) == 2)
		atomic_store(&h->blocked_seen, 1);
	atomic_store(&h->release, 1);
	return 0;
}

static int cap_waits_root(void *arg)
{
	struct hold *h = arg;
	weft_group_t *og;
	CHECK_EQ(weft_group_open(&og), 0);
	CHECK_EQ(weft_group_spawn(og, releaser, h), 0);
	weft_group_t *g = open_capped(2, 0);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(weft_group_spawn(g, holder, h), 0);
		atomic_fetch_add(&h->spawned, 1);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_group_join(og, NULL), 0);
	return 0;
}

static void test_budget__spawn_waits_at_the_cap_until_a_child_ends(void **state)
{
	struct hold h = { 0 };
	weft_test_root(state, cap_waits_root, &h);
	assert_int_equal(atomic_load(&h.blocked_seen), 1);
	assert_int_equal(atomic_load(&h.ran), 6);
	assert_int_equal(atomic_load(&h.max_live), 2);
}

/* The owner spawns far more than the cap while its own children wait in
 * its deque (and at 1 worker run only once it parks): no deadlock. */
static int owner_many_root(void *arg)
{
	atomic_int *n = arg;
	weft_group_t *g = open_capped(3, 0);
	for (int i = 0; i < 300; i++)
		CHECK_EQ(weft_group_spawn(g, count_up, n), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(n), 300);
	return 0;
}

WEFT_TEST_ROOT(budget, the_owner_spawns_many_through_a_small_cap,
	owner_many_root, &(atomic_int){ 0 })

static void *plain_spawn(void *arg)
{
	struct hold *h = arg;
	return (void *)(intptr_t)weft_group_spawn(h->g, count_up, &h->ran);
}

static int nowait_root(void *arg)
{
	struct hold *h = arg;
	weft_group_t *g = open_capped(1, 0);
	h->g = g;
	CHECK_EQ(weft_group_spawn(g, holder, h), 0);
	CHECK(weft_test_yield_until(&h->ran, 1));
	weft_spawn_opts_t o = { .flags = WEFT_SPAWN_NOWAIT };
	CHECK_EQ(weft_group_spawn_opts(g, count_up, &h->spawned, &o), -EAGAIN);
	/* A plain thread is never blocked: -EAGAIN too. */
	CHECK_EQ(weft_group_retain(g), 0);
	pthread_t th;
	void *res = NULL;
	CHECK_EQ(pthread_create(&th, NULL, plain_spawn, h), 0);
	CHECK_EQ(pthread_join(th, &res), 0);
	CHECK_EQ((intptr_t)res, -EAGAIN);
	atomic_store(&h->release, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_group_release(g);
	/* Nothing was created by the refused spawns. */
	CHECK_EQ(atomic_load(&h->spawned), 0);
	CHECK_EQ(atomic_load(&h->ran), 1);
	return 0;
}

static void test_budget__nowait_and_plain_threads_get_eagain(void **state)
{
	struct hold h = { 0 };
	weft_test_root(state, nowait_root, &h);
}

struct cancel_wait {
	struct hold h;
	weft_group_t *g;
	atomic_int waiter_rc, waiter_done, arg_ran;
	int arg;
};

static int must_not_run(void *arg)
{
	struct cancel_wait *c = (struct cancel_wait *)((char *)arg -
		offsetof(struct cancel_wait, arg));
	atomic_store(&c->arg_ran, 1);
	return 0;
}

/* Waits for a slot inside a 5 ms fail_after scope. */
static int timed_spawner(void *arg)
{
	struct cancel_wait *c = arg;
	weft_scope_t *s;
	CHECK_EQ(weft_fail_after(&s, 5 * WEFT_MSEC), 0);
	int rc = weft_group_spawn(c->g, must_not_run, &c->arg);
	atomic_store(&c->waiter_rc, rc);
	CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
	weft_scope_destroy(s);
	atomic_store(&c->waiter_done, 1);
	return 0;
}

static int cancel_wait_root(void *arg)
{
	struct cancel_wait *c = arg;
	c->g = open_capped(1, 0);
	CHECK_EQ(weft_group_spawn(c->g, holder, &c->h), 0);
	CHECK(weft_test_yield_until(&c->h.ran, 1));
	weft_group_t *og;
	CHECK_EQ(weft_group_open(&og), 0);
	CHECK_EQ(weft_group_spawn(og, timed_spawner, c), 0);
	CHECK_EQ(weft_group_join(og, NULL), 0);
	CHECK_EQ(atomic_load(&c->waiter_rc), -ECANCELED);
	/* The slot the cancelled waiter did not take is still there. */
	atomic_store(&c->h.release, 1);
	CHECK_EQ(weft_group_spawn(c->g, holder, &c->h), 0);
	CHECK_EQ(weft_group_join(c->g, NULL), 0);
	CHECK_EQ(atomic_load(&c->arg_ran), 0);
	CHECK_EQ(atomic_load(&c->h.ran), 2);
	return 0;
}

static void test_budget__a_waiting_spawn_is_cancellable(void **state)
{
	struct cancel_wait c = { 0 };
	weft_test_root(state, cancel_wait_root, &c);
	assert_int_equal(atomic_load(&c.waiter_done), 1);
}

struct fifo {
	struct hold h;
	weft_group_t *g;
	atomic_int next;
	int order[3];
};

struct fifo_waiter {
	struct fifo *f;
	int id;
};

/* The child a waiter spawns once it has a slot.  With a cap of 1 the
 * children run one at a time, each while holding the slot, so the order
 * they start in is the order the slots were granted (the waiters
 * themselves may resume in any order once granted). */
static int fifo_child(void *arg)
{
	struct fifo_waiter *w = arg;
	atomic_fetch_add(&w->f->h.spawned, 1);
	w->f->order[atomic_fetch_add(&w->f->next, 1)] = w->id;
	return 0;
}

static int fifo_wait(void *arg)
{
	struct fifo_waiter *w = arg;
	CHECK_EQ(weft_group_spawn(w->f->g, fifo_child, w), 0);
	return 0;
}

/* Waits (boundedly) until n tasks of og wait for a slot. */
static int slot_waiters(weft_group_t *og, int n)
{
	for (int i = 0; i < 100000; i++) {
		weft_task_info_t info[8];
		size_t count = 0, waiting = 0;
		CHECK_EQ(weft_group_children(og, info, 8, &count), 0);
		for (size_t k = 0; k < count && k < 8; k++)
			waiting += info[k].parked_on != NULL &&
				strcmp(info[k].parked_on, "group slot") == 0;
		if (waiting == (size_t)n)
			return 1;
		weft_yield();
	}
	return 0;
}

static int fifo_root(void *arg)
{
	struct fifo *f = arg;
	f->g = open_capped(1, 0);
	CHECK_EQ(weft_group_spawn(f->g, holder, &f->h), 0);
	CHECK(weft_test_yield_until(&f->h.ran, 1));
	weft_group_t *og;
	CHECK_EQ(weft_group_open(&og), 0);
	CHECK_EQ(weft_group_retain(og), 0); /* linked: children listed */
	struct fifo_waiter w[3];
	for (int i = 0; i < 3; i++) {
		w[i] = (struct fifo_waiter){ f, i + 1 };
		CHECK_EQ(weft_group_spawn(og, fifo_wait, &w[i]), 0);
		CHECK(slot_waiters(og, i + 1));
	}
	atomic_store(&f->h.release, 1);
	CHECK_EQ(weft_group_join(og, NULL), 0);
	weft_group_release(og);
	CHECK_EQ(weft_group_join(f->g, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(f->order[i], i + 1);
	return 0;
}

static void test_budget__waiting_spawns_are_served_in_order(void **state)
{
	struct fifo f = { 0 };
	weft_test_root(state, fifo_root, &f);
	assert_int_equal(atomic_load(&f.h.spawned), 3);
}

struct outside {
	struct hold h;
	weft_group_t *g;
	atomic_int rc, count;
};

static int outside_spawner(void *arg)
{
	struct outside *o = arg;
	atomic_store(&o->rc, weft_group_spawn(o->g, count_up, &o->count));
	return 0;
}

/* A spawn waiting from outside the group keeps the group's join waiting
 * until its child is created (and has ended). */
static int outside_root(void *arg)
{
	struct outside *o = arg;
	weft_group_t *og;
	CHECK_EQ(weft_group_open(&og), 0);
	CHECK_EQ(weft_group_retain(og), 0); /* linked: children listed */
	o->g = open_capped(1, 0);
	CHECK_EQ(weft_group_spawn(o->g, holder, &o->h), 0);
	CHECK(weft_test_yield_until(&o->h.ran, 1));
	CHECK_EQ(weft_group_spawn(og, outside_spawner, o), 0);
	CHECK(slot_waiters(og, 1));
	atomic_store(&o->h.release, 1);
	CHECK_EQ(weft_group_join(o->g, NULL), 0);
	CHECK_EQ(atomic_load(&o->count), 1);
	CHECK_EQ(weft_group_join(og, NULL), 0);
	weft_group_release(og);
	CHECK_EQ(atomic_load(&o->rc), 0);
	return 0;
}

static void test_budget__the_join_waits_for_a_waiting_spawn(void **state)
{
	struct outside o = { 0 };
	weft_test_root(state, outside_root, &o);
}

/* A task that stays pending (before started()) until release. */
static int slow_starter(void *arg)
{
	struct hold *h = arg;
	atomic_store(&h->blocked_seen, 1); /* pending from here */
	CHECK(weft_test_yield_until(&h->release, 1));
	weft_task_started(NULL);
	atomic_fetch_add(&h->ran, 1);
	return 0;
}

static int starter_task(void *arg)
{
	struct hold *h = arg;
	CHECK_EQ(weft_group_start(h->g, slow_starter, h, NULL), 0);
	return 0;
}

static int pending_start_root(void *arg)
{
	struct hold *h = arg;
	weft_group_t *og;
	CHECK_EQ(weft_group_open(&og), 0);
	h->g = open_capped(1, 0);
	CHECK_EQ(weft_group_spawn(og, starter_task, h), 0);
	CHECK(weft_test_yield_until(&h->blocked_seen, 1));
	/* The start is pending (its task runs, before started()): it holds
	 * the only slot. */
	weft_spawn_opts_t o = { .flags = WEFT_SPAWN_NOWAIT };
	CHECK_EQ(weft_group_spawn_opts(h->g, count_up, &h->spawned, &o),
		-EAGAIN);
	CHECK_EQ(atomic_load(&h->ran), 0);
	atomic_store(&h->release, 1);
	CHECK_EQ(weft_group_join(h->g, NULL), 0);
	CHECK_EQ(weft_group_join(og, NULL), 0);
	CHECK_EQ(atomic_load(&h->spawned), 0);
	CHECK_EQ(atomic_load(&h->ran), 1);
	return 0;
}

static void test_budget__a_pending_start_holds_a_slot(void **state)
{
	struct hold h = { 0 };
	weft_test_root(state, pending_start_root, &h);
}

/* }======================================================= */

/* {======================================================= stack cap */

struct stk {
	struct hold h;
	weft_group_t *g;
	atomic_int nested_rc, nested_done;
	atomic_int other;
};

/* A child of the capped group: opens an uncapped nested group, whose
 * children are charged to the capped one. */
static int nester(void *arg)
{
	struct stk *s = arg;
	weft_group_t *n;
	CHECK_EQ(weft_group_open(&n), 0);
	CHECK_EQ(weft_group_spawn(n, holder, &s->h), 0);
	atomic_store(&s->nested_rc, weft_group_spawn(n, count_up, &s->other));
	atomic_store(&s->nested_done, 1);
	CHECK_EQ(weft_group_join(n, NULL), 0);
	return 0;
}

static int stack_cap_root(void *arg)
{
	struct stk *s = arg;
	s->g = open_capped(0, 3 * STACK);
	CHECK_EQ(weft_group_spawn(s->g, holder, &s->h), 0);
	CHECK_EQ(weft_group_spawn(s->g, nester, s), 0);
	CHECK(weft_test_yield_until(&s->nested_done, 1));
	/* holder + nester + the nester's holder: the cap is full, here and
	 * in the nested group. */
	CHECK_EQ(atomic_load(&s->nested_rc), -ENOMEM);
	CHECK_EQ(weft_group_spawn(s->g, count_up, &s->other), -ENOMEM);
	/* The rest of the runtime keeps going meanwhile. */
	weft_group_t *free_g;
	CHECK_EQ(weft_group_open(&free_g), 0);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(weft_group_spawn(free_g, count_up, &s->other), 0);
	CHECK_EQ(weft_group_join(free_g, NULL), 0);
	CHECK_EQ(atomic_load(&s->other), 100);
	atomic_store(&s->h.release, 1);
	CHECK_EQ(weft_group_join(s->g, NULL), 0);
	/* Given back at each end: a new capped group takes exactly one. */
	weft_group_t *one = open_capped(0, STACK);
	struct hold h2 = { 0 };
	CHECK_EQ(weft_group_spawn(one, holder, &h2), 0);
	CHECK_EQ(weft_group_spawn(one, count_up, &s->other), -ENOMEM);
	atomic_store(&h2.release, 1);
	CHECK_EQ(weft_group_join(one, NULL), 0);
	CHECK_EQ(atomic_load(&s->other), 100);
	return 0;
}

static void test_budget__stack_cap_fails_only_its_subtree(void **state)
{
	struct stk s = { 0 };
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = WEFT_TEST_WORKERS(state);
	cfg.stack_size = STACK;
	assert_int_equal(weft_test_run_cfg(&cfg, stack_cap_root, &s), 0);
	assert_int_equal(atomic_load(&s.h.ran), 2);
}

/* }======================================================= */

/* {======================================================= run time */

struct spin {
	atomic_int stop;
	int64_t nested_ns;
};

/* Bounded busy work: the time it takes is what is measured, never
 * asserted. */
static void busy(long n)
{
	volatile long x = 0;
	for (long i = 0; i < n; i++)
		x += i;
}

static int spinner(void *arg)
{
	struct spin *s = arg;
	for (long i = 0; i < 1000000 && !atomic_load(&s->stop); i++) {
		busy(weft_test_scale(20000));
		weft_yield();
	}
	return 0;
}

static weft_group_t *open_timed(void)
{
	weft_group_opts_t o = { .flags = WEFT_GROUP_CPU_TIME };
	weft_group_t *g = NULL;
	CHECK_EQ(weft_group_open_opts(&g, &o), 0);
	return g;
}

static int cpu_grows_root(void *arg)
{
	struct spin *s = arg;
	weft_group_t *g = open_timed();
	CHECK_EQ(weft_group_cpu_ns(g), 0);
	CHECK_EQ(weft_group_spawn(g, spinner, s), 0);
	CHECK_EQ(weft_group_spawn(g, spinner, s), 0);
	int64_t v1 = 0, v2 = 0;
	for (int i = 0; i < 5000 && v1 <= 0; i++) {
		CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
		v1 = weft_group_cpu_ns(g);
	}
	for (int i = 0; i < 5000 && v2 <= v1; i++) {
		CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
		v2 = weft_group_cpu_ns(g);
	}
	CHECK(v1 > 0);
	CHECK(v2 > v1);
	atomic_store(&s->stop, 1);
	CHECK_EQ(weft_group_retain(g), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* After the join: the final total, at least what was seen. */
	CHECK(weft_group_cpu_ns(g) >= v2);
	weft_group_release(g);
	return 0;
}

static void test_budget__run_time_of_a_running_subtree_grows(void **state)
{
	struct spin s = { 0 };
	weft_test_root(state, cpu_grows_root, &s);
}

static int busy_child(void *arg)
{
	(void)arg;
	busy(weft_test_scale(2000000));
	return 0;
}

static int nested_cpu_child(void *arg)
{
	struct spin *s = arg;
	weft_group_t *n;
	CHECK_EQ(weft_group_open(&n), 0); /* timed: below a timed group */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(weft_group_spawn(n, busy_child, NULL), 0);
	CHECK_EQ(weft_group_retain(n), 0);
	CHECK_EQ(weft_group_join(n, NULL), 0);
	s->nested_ns = weft_group_cpu_ns(n);
	weft_group_release(n);
	return 0;
}

static int cpu_nested_root(void *arg)
{
	struct spin *s = arg;
	/* Sampled without the flag (test_cputime.c). */
	weft_group_t *plain;
	CHECK_EQ(weft_group_open(&plain), 0);
	CHECK(weft_group_cpu_ns(plain) >= 0);
	CHECK_EQ(weft_group_join(plain, NULL), 0);
	weft_group_t *g = open_timed();
	CHECK_EQ(weft_group_spawn(g, nested_cpu_child, s), 0);
	CHECK_EQ(weft_group_retain(g), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* The nested group's children are in g's subtree: g's total
	 * holds theirs, although g's own child mostly waited. */
	CHECK(s->nested_ns > 0);
	CHECK(weft_group_cpu_ns(g) >= s->nested_ns);
	weft_group_release(g);
	return 0;
}

static void test_budget__run_time_includes_nested_groups(void **state)
{
	struct spin s = { 0 };
	weft_test_root(state, cpu_nested_root, &s);
}

/* The dump shows a group's run time and caps. */
static int dump_root(void *arg)
{
	struct hold *h = arg;
	weft_group_opts_t o = { .flags = WEFT_GROUP_CPU_TIME,
		.max_children = 2 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open_opts(&g, &o), 0);
	CHECK_EQ(weft_group_spawn(g, holder, h), 0);
	CHECK(weft_test_yield_until(&h->ran, 1));
	/* A retained group's scope is linked, so the dump lists it. */
	CHECK_EQ(weft_group_retain(g), 0);
	static char buf[1 << 16];
	size_t len = 0;
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, buf, sizeof buf,
			 &len),
		0);
	CHECK(strstr(buf, " cpu_ns=") != NULL);
	CHECK(strstr(buf,
		      " children=1 max_children=2 stack_bytes=0 "
		      "stack_bytes_max=0") != NULL);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, buf, sizeof buf,
			 &len),
		0);
	CHECK(strstr(buf, "\"cpu_ns\":") != NULL);
	CHECK(strstr(buf, "\"children\":1,\"max_children\":2") != NULL);
	atomic_store(&h->release, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_group_release(g);
	return 0;
}

static void test_budget__the_dump_shows_run_time_and_caps(void **state)
{
	struct hold h = { 0 };
	weft_test_root(state, dump_root, &h);
}

/* }======================================================= */

/* {======================================================= deadline */

struct dl {
	atomic_int cancelled, finished;
	int64_t deadline;
	unsigned flags;
};

static int sleep_long(void *arg)
{
	struct dl *d = arg;
	int rc = weft_sleep(60 * WEFT_SEC);
	if (rc == -ECANCELED)
		atomic_fetch_add(&d->cancelled, 1);
	else
		atomic_fetch_add(&d->finished, 1);
	return rc == -ECANCELED ? 0 : rc;
}

static int sleep_short(void *arg)
{
	struct dl *d = arg;
	int rc = weft_sleep(WEFT_MSEC);
	if (rc == -ECANCELED)
		atomic_fetch_add(&d->cancelled, 1);
	else
		atomic_fetch_add(&d->finished, 1);
	return 0;
}

/* A child that opens a nested group of sleepers. */
static int nest_sleepers(void *arg)
{
	weft_group_t *n;
	CHECK_EQ(weft_group_open(&n), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(n, sleep_long, arg), 0);
	/* Cancelled from further out: the join passes it on. */
	CHECK_EQ(weft_group_join(n, NULL), -ECANCELED);
	return 0;
}

static int deadline_root(void *arg)
{
	struct dl *d = arg;
	weft_group_opts_t o = { .flags = WEFT_GROUP_DEADLINE,
		.deadline = weft_now() + 20 * WEFT_MSEC };
	weft_group_t *g;
	CHECK_EQ(weft_group_open_opts(&g, &o), 0);
	CHECK_EQ(weft_group_spawn(g, sleep_long, d), 0);
	CHECK_EQ(weft_group_spawn(g, nest_sleepers, d), 0);
	CHECK_EQ(weft_group_join(g, NULL), -ETIMEDOUT);
	CHECK_EQ(atomic_load(&d->cancelled), 4);
	/* The deadline scope is gone: the root is not cancelled. */
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

static void test_budget__a_group_deadline_reaches_nested_groups(void **state)
{
	struct dl d = { 0 };
	weft_test_root(state, deadline_root, &d);
	assert_int_equal(atomic_load(&d.cancelled), 4);
}

/* Every int64 is a valid deadline: past ones cancel at once, FOREVER
 * never, and without the flag the field is ignored. */
static int deadline_values_root(void *arg)
{
	struct dl *d = arg;
	int64_t past[] = { INT64_MIN, -1, 0, weft_now() - 1 };
	for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
		weft_group_opts_t o = { .flags = WEFT_GROUP_DEADLINE,
			.deadline = past[i] };
		weft_group_t *g;
		CHECK_EQ(weft_group_open_opts(&g, &o), 0);
		CHECK_EQ(weft_group_spawn(g, sleep_long, d), 0);
		CHECK_EQ(weft_group_join(g, NULL), -ETIMEDOUT);
	}
	CHECK_EQ(atomic_load(&d->cancelled), 4);
	weft_group_opts_t forever = { .flags = WEFT_GROUP_DEADLINE,
		.deadline = WEFT_FOREVER };
	weft_group_opts_t unset = { .deadline = 0 }; /* no flag: ignored */
	weft_group_opts_t *ok[] = { &forever, &unset, NULL };
	for (size_t i = 0; i < 3; i++) {
		weft_group_t *g;
		CHECK_EQ(weft_group_open_opts(&g, ok[i]), 0);
		CHECK_EQ(weft_group_spawn(g, sleep_short, d), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	CHECK_EQ(atomic_load(&d->finished), 3);
	CHECK_EQ(atomic_load(&d->cancelled), 4);
	return 0;
}

WEFT_TEST_ROOT(budget, every_deadline_value_is_valid, deadline_values_root,
	&(struct dl){ 0 })

/* Today's group scope already covers the same ground: cancelling a group
 * reaches the groups its children open. */
static int group_cancel_nested_root(void *arg)
{
	struct dl *d = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, nest_sleepers, d), 0);
	CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
	CHECK_EQ(weft_group_cancel(g, "test"), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&d->cancelled), 3);
	return 0;
}

WEFT_TEST_ROOT(budget, the_group_scope_reaches_nested_groups,
	group_cancel_nested_root, &(struct dl){ 0 })

/* }======================================================= */

/* {======================================================= misuse */

static void *plain_open(void *arg)
{
	(void)arg;
	weft_group_t *g;
	weft_group_opts_t o = { 0 };
	return (void *)(intptr_t)weft_group_open_opts(&g, &o);
}

static int misuse_root(void *arg)
{
	(void)arg;
	weft_group_t *g = NULL;
	weft_group_opts_t o = { 0 };
	CHECK_EQ(weft_group_open_opts(NULL, &o), -EINVAL);
	o.flags = 0x80;
	CHECK_EQ(weft_group_open_opts(&g, &o), -EINVAL);
	o.flags = 0;
	o.stack_bytes_max = 1; /* below one stack */
	CHECK_EQ(weft_group_open_opts(&g, &o), -EINVAL);
	CHECK(g == NULL);
	CHECK_EQ(weft_group_cpu_ns(NULL), -EINVAL);
	/* Nothing was left open by the refusals. */
	CHECK_EQ(weft_checkpoint(), 0);
	pthread_t th;
	void *res = NULL;
	CHECK_EQ(pthread_create(&th, NULL, plain_open, NULL), 0);
	CHECK_EQ(pthread_join(th, &res), 0);
	CHECK_EQ((intptr_t)res, WEFT_ENOTFIBER);
	return 0;
}

WEFT_TEST_ROOT(budget, bad_options_are_refused, misuse_root, NULL)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_budget__spawn_waits_at_the_cap_until_a_child_ends),
		WEFT_TEST(
			test_budget__the_owner_spawns_many_through_a_small_cap),
		WEFT_TEST(test_budget__nowait_and_plain_threads_get_eagain),
		WEFT_TEST(test_budget__a_waiting_spawn_is_cancellable),
		WEFT_TEST(test_budget__waiting_spawns_are_served_in_order),
		WEFT_TEST(test_budget__the_join_waits_for_a_waiting_spawn),
		WEFT_TEST(test_budget__a_pending_start_holds_a_slot),
		WEFT_TEST(test_budget__stack_cap_fails_only_its_subtree),
		WEFT_TEST(test_budget__run_time_of_a_running_subtree_grows),
		WEFT_TEST(test_budget__run_time_includes_nested_groups),
		WEFT_TEST(test_budget__the_dump_shows_run_time_and_caps),
		WEFT_TEST(test_budget__a_group_deadline_reaches_nested_groups),
		WEFT_TEST(test_budget__every_deadline_value_is_valid),
		WEFT_TEST(test_budget__the_group_scope_reaches_nested_groups),
		WEFT_TEST(test_budget__bad_options_are_refused),
	};
	return WEFT_RUN_TESTS(tests);
}
