/* Deadlock reports (docs/semantics.md rule 46): a cycle of Locks found
 * by the acquire that would close it (sync/lock.c, invariant 5), and
 * every task asleep with nothing that could wake them (core/timer.c).
 *
 * The cycles are made deterministic by waiting, with yields, until each
 * other task is queued on its lock (weft_lock_waiting) before the last
 * acquire: with any number of workers the closing acquire then finds
 * every other edge in place. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

/* Yields until at least n tasks wait for l; CHECKs that it happened. */
static void wait_queued(weft_lock_t *l, size_t n)
{
	for (long i = 0; i < 50000000 && weft_lock_waiting(l) < n; i++)
		CHECK_EQ(weft_yield(), 0);
	CHECK(weft_lock_waiting(l) >= n);
}

static void wait_cond_queued(weft_condition_t *c, size_t n)
{
	for (long i = 0; i < 50000000 && weft_condition_waiting(c) < n; i++)
		CHECK_EQ(weft_yield(), 0);
	CHECK(weft_condition_waiting(c) >= n);
}

/* {======================================================= cycles */

/* k tasks, task i holding lock i and then acquiring lock i + 1 (mod k);
 * the last one's acquire closes the cycle. */
#define RING_MAX 4

struct ring {
	int k;
	weft_lock_t *lock[RING_MAX];
	atomic_int held; /* tasks holding their first lock */
	int closer_rc;	 /* the last task's second acquire */
	/* Report/off modes: the closer waits; this task cancels it. */
	weft_task_t *closer;
};

struct ring_arg {
	struct ring *r;
	int i;
};

static int ring_task(void *arg)
{
	struct ring_arg *a = arg;
	struct ring *r = a->r;
	int i = a->i, k = r->k;
	weft_lock_t *mine = r->lock[i], *next = r->lock[(i + 1) % k];
	/* Take our locks in order, so the acquires below meet them held. */
	CHECK(weft_test_yield_until(&r->held, i));
	CHECK_EQ(weft_lock_acquire(mine), 0);
	atomic_fetch_add(&r->held, 1);
	CHECK(weft_test_yield_until(&r->held, k));
	if (i < k - 1) {
		/* Task i + 1 holds next and releases it only after its own
		 * second acquire ends (granted, or -EDEADLK for the last). */
		if (i > 0)
			wait_queued(r->lock[i], 1); /* task i - 1 waits */
		CHECK_EQ(weft_lock_acquire(next), 0);
		CHECK_EQ(weft_lock_release(next), 0);
		CHECK_EQ(weft_lock_release(mine), 0);
		return 0;
	}
	/* The closer: every other task waits for the next one's lock. */
	for (int j = 1; j < k; j++)
		wait_queued(r->lock[j], 1);
	r->closer_rc = weft_lock_acquire(next);
	CHECK(!weft_lock_held(next));
	/* Nothing was acquired; our release lets the cycle unwind. */
	CHECK_EQ(weft_lock_release(mine), 0);
	return 0;
}

static int ring_root(void *arg)
{
	struct ring *r = arg;
	for (int i = 0; i < r->k; i++)
		CHECK_EQ(weft_lock_create(&r->lock[i]), 0);
	struct ring_arg a[RING_MAX];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < r->k; i++) {
		a[i] = (struct ring_arg){ r, i };
		char name[16] = "dl-a";
		name[3] = (char)('a' + i);
		CHECK_EQ(weft_group_spawn_named(g, name, ring_task, &a[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < r->k; i++) {
		CHECK_EQ(weft_lock_locked(r->lock[i]), 0);
		CHECK_EQ(weft_lock_waiting(r->lock[i]), 0);
		CHECK_EQ(weft_lock_destroy(r->lock[i]), 0);
	}
	return 0;
}

/* A takes L1, B takes L2, A acquires L2 (parks), B acquires L1: B gets
 * -EDEADLK holding nothing new; B releases L2 and A gets it. */
static void test_deadlock__two_lock_cycle(void **state)
{
	struct ring r = { .k = 2 };
	weft_test_root(state, ring_root, &r);
	assert_int_equal(r.closer_rc, -EDEADLK);
}

static void test_deadlock__three_lock_cycle(void **state)
{
	struct ring r = { .k = 3 };
	weft_test_root(state, ring_root, &r);
	assert_int_equal(r.closer_rc, -EDEADLK);
}

/* A chain that is not a cycle: every acquire waits and succeeds. */
static int chain_task(void *arg)
{
	struct ring_arg *a = arg;
	struct ring *r = a->r;
	int i = a->i;
	CHECK(weft_test_yield_until(&r->held, i));
	CHECK_EQ(weft_lock_acquire(r->lock[i]), 0);
	atomic_fetch_add(&r->held, 1);
	if (i + 1 < r->k) {
		CHECK(weft_test_yield_until(&r->held, r->k));
		if (i > 0)
			wait_queued(r->lock[i], 1);
		CHECK_EQ(weft_lock_acquire(r->lock[i + 1]), 0);
		CHECK_EQ(weft_lock_release(r->lock[i + 1]), 0);
	} else {
		/* The chain's end: release once everyone else waits. */
		CHECK(weft_test_yield_until(&r->held, r->k));
		for (int j = 1; j < r->k; j++)
			wait_queued(r->lock[j], 1);
	}
	CHECK_EQ(weft_lock_release(r->lock[i]), 0);
	return 0;
}

static int chain_root(void *arg)
{
	struct ring *r = arg;
	for (int i = 0; i < r->k; i++)
		CHECK_EQ(weft_lock_create(&r->lock[i]), 0);
	struct ring_arg a[RING_MAX];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < r->k; i++) {
		a[i] = (struct ring_arg){ r, i };
		CHECK_EQ(weft_group_spawn(g, chain_task, &a[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < r->k; i++)
		CHECK_EQ(weft_lock_destroy(r->lock[i]), 0);
	return 0;
}

WEFT_TEST_ROOT(deadlock, chain_is_no_cycle, chain_root,
	&(struct ring){ .k = RING_MAX })

/* A holds L2 and L1 and waits on a Condition of L1 (releasing L1); B
 * takes L1 and notifies (A now waits to re-acquire L1, held by B), then
 * acquires L2, held by A: -EDEADLK.  B's release of L1 lets A return. */
struct cond_cycle {
	weft_lock_t *l1, *l2;
	weft_condition_t *c;
	int a_rc, b_rc;
};

static int cond_a(void *arg)
{
	struct cond_cycle *t = arg;
	CHECK_EQ(weft_lock_acquire(t->l2), 0);
	CHECK_EQ(weft_lock_acquire(t->l1), 0);
	t->a_rc = weft_condition_wait(t->c);
	CHECK(weft_lock_held(t->l1));
	CHECK_EQ(weft_lock_release(t->l1), 0);
	CHECK_EQ(weft_lock_release(t->l2), 0);
	return 0;
}

static int cond_b(void *arg)
{
	struct cond_cycle *t = arg;
	wait_cond_queued(t->c, 1);
	CHECK_EQ(weft_lock_acquire(t->l1), 0);
	CHECK_EQ(weft_condition_notify(t->c, 1), 1);
	t->b_rc = weft_lock_acquire(t->l2);
	CHECK(!weft_lock_held(t->l2));
	CHECK_EQ(weft_lock_release(t->l1), 0);
	return 0;
}

static int cond_root(void *arg)
{
	struct cond_cycle *t = arg;
	CHECK_EQ(weft_lock_create(&t->l1), 0);
	CHECK_EQ(weft_lock_create(&t->l2), 0);
	CHECK_EQ(weft_condition_create(&t->c, t->l1), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, cond_a, t), 0);
	CHECK_EQ(weft_group_spawn(g, cond_b, t), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_condition_destroy(t->c), 0);
	CHECK_EQ(weft_lock_destroy(t->l1), 0);
	CHECK_EQ(weft_lock_destroy(t->l2), 0);
	return 0;
}

static void test_deadlock__condition_reacquire_cycle(void **state)
{
	struct cond_cycle t = { 0 };
	weft_test_root(state, cond_root, &t);
	assert_int_equal(t.a_rc, 0);
	assert_int_equal(t.b_rc, -EDEADLK);
}

/* }======================================================= */

/* {=========================================== no false positive */

/* Many tasks take random pairs of locks, always in the global order (a
 * lower index first), so there is never a cycle: no acquire may fail. */
#define STRESS_LOCKS 6
#define STRESS_TASKS 12

struct stress {
	weft_lock_t *lock[STRESS_LOCKS];
	unsigned seed;
	long iters;
	atomic_long failures;
};

struct stress_arg {
	struct stress *s;
	int index;
};

static int stress_task(void *arg)
{
	struct stress_arg *a = arg;
	struct stress *s = a->s;
	uint64_t rng = ((uint64_t)s->seed << 8) + (uint64_t)a->index + 1;
	for (long n = 0; n < s->iters; n++) {
		int i = (int)(weft_test_rand(&rng) % STRESS_LOCKS);
		int j = (int)(weft_test_rand(&rng) % STRESS_LOCKS);
		if (i == j)
			j = (j + 1) % STRESS_LOCKS;
		if (i > j) {
			int x = i;
			i = j;
			j = x;
		}
		int rc = weft_lock_acquire(s->lock[i]);
		if (!CHECK_EQ(rc, 0)) {
			atomic_fetch_add(&s->failures, 1);
			return rc;
		}
		if (weft_test_rand(&rng) % 4 == 0)
			CHECK_EQ(weft_yield(), 0);
		rc = weft_lock_acquire(s->lock[j]);
		if (!CHECK_EQ(rc, 0))
			atomic_fetch_add(&s->failures, 1);
		else {
			if (weft_test_rand(&rng) % 4 == 0)
				CHECK_EQ(weft_yield(), 0);
			CHECK_EQ(weft_lock_release(s->lock[j]), 0);
		}
		CHECK_EQ(weft_lock_release(s->lock[i]), 0);
	}
	return 0;
}

static int stress_root(void *arg)
{
	struct stress *s = arg;
	for (int i = 0; i < STRESS_LOCKS; i++)
		CHECK_EQ(weft_lock_create(&s->lock[i]), 0);
	struct stress_arg a[STRESS_TASKS];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < STRESS_TASKS; i++) {
		a[i] = (struct stress_arg){ s, i };
		CHECK_EQ(weft_group_spawn(g, stress_task, &a[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < STRESS_LOCKS; i++)
		CHECK_EQ(weft_lock_destroy(s->lock[i]), 0);
	return 0;
}

static void test_deadlock__ordered_pairs_no_false_positive(void **state)
{
	struct stress s = { .seed = weft_test_seed(),
		.iters = weft_test_scale(3000) };
	weft_test_root(state, stress_root, &s);
	assert_int_equal(atomic_load(&s.failures), 0);
}

/* }======================================================= */

/* {=========================================== report and off modes */

/* The closer of a 2-cycle waits (report, off); a third task cancels it
 * once it is queued, and the cycle unwinds. */
static int canceller(void *arg)
{
	struct ring *r = arg;
	CHECK(weft_test_yield_until(&r->held, 2));
	wait_queued(r->lock[0], 1); /* the closer waits for lock 0 */
	CHECK_EQ(weft_task_cancel(r->closer), 0);
	return 0;
}

static int waiting_ring_root(void *arg)
{
	struct ring *r = arg;
	r->k = 2;
	for (int i = 0; i < 2; i++)
		CHECK_EQ(weft_lock_create(&r->lock[i]), 0);
	struct ring_arg a[2] = { { r, 0 }, { r, 1 } };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn_named(g, "dl-a", ring_task, &a[0]), 0);
	CHECK_EQ(weft_group_spawn_opts(g, ring_task, &a[1],
			 &(weft_spawn_opts_t){ .name = "dl-b",
				 .handle = &r->closer }),
		0);
	CHECK_EQ(weft_group_spawn(g, canceller, r), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(r->closer);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(weft_lock_destroy(r->lock[i]), 0);
	return 0;
}

struct mode_child {
	weft_deadlock_t mode;
	unsigned workers;
};

static void mode_child_fn(void *arg)
{
	struct mode_child *m = arg;
	weft_config_t cfg;
	if (weft_config_init(&cfg) != 0)
		exit(3);
	cfg.workers = m->workers;
	cfg.deadlock = m->mode;
	struct ring r = { 0 };
	int rc = weft_test_run_cfg(&cfg, waiting_ring_root, &r);
	/* The closer waited until cancelled. */
	exit(rc == 0 && r.closer_rc == -ECANCELED ? 0 : 1);
}

static void run_mode_child(void **state, weft_deadlock_t mode, char *buf,
	size_t size)
{
	struct mode_child m = { mode, WEFT_TEST_WORKERS(state) };
	int status = weft_test_death(mode_child_fn, &m, buf, size);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		print_error("child status %d, stderr: %s\n", status, buf);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_deadlock__report_mode_prints_cycle(void **state)
{
	char buf[8192];
	run_mode_child(state, WEFT_DEADLOCK_REPORT, buf, sizeof buf);
	const char *want[] = {
		"weft: deadlock: a cycle of locks",
		"task 'dl-b' (#",
		"task 'dl-a' (#",
		"parked on lock, which waits for lock 0x",
		"held by the first task",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (strstr(buf, want[i]) == NULL)
			fail_msg("missing \"%s\" in:\n%s", want[i], buf);
}

static void test_deadlock__off_mode_waits_silently(void **state)
{
	char buf[8192];
	run_mode_child(state, WEFT_DEADLOCK_OFF, buf, sizeof buf);
	if (strstr(buf, "cycle") != NULL)
		fail_msg("unexpected report:\n%s", buf);
}

static void test_deadlock__config_env(void **state)
{
	(void)state;
	weft_config_t cfg;
	unsetenv("WEFT_DEADLOCK");
	assert_int_equal(weft_config_init(&cfg), 0);
	assert_int_equal(cfg.deadlock, WEFT_DEADLOCK_ERROR);
	const struct {
		const char *text;
		weft_deadlock_t mode;
	} good[] = { { "error", WEFT_DEADLOCK_ERROR },
		{ "report", WEFT_DEADLOCK_REPORT },
		{ "off", WEFT_DEADLOCK_OFF } };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		assert_int_equal(setenv("WEFT_DEADLOCK", good[i].text, 1), 0);
		assert_int_equal(weft_config_init(&cfg), 0);
		assert_int_equal(cfg.deadlock, good[i].mode);
	}
	const char *bad[] = { "", "Error", "on", "error ", "1" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(setenv("WEFT_DEADLOCK", bad[i], 1), 0);
		assert_int_equal(weft_config_init(&cfg), -EINVAL);
		assert_int_equal(cfg.deadlock, WEFT_DEADLOCK_ERROR);
		assert_non_null(strstr(cfg.message, "WEFT_DEADLOCK"));
		weft_runtime_t *rt;
		assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
	}
	unsetenv("WEFT_DEADLOCK");
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.deadlock = (weft_deadlock_t)7;
	weft_runtime_t *rt;
	assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
	assert_non_null(strstr(cfg.message, "deadlock"));
}

/* }======================================================= */

/* {=========================================== all tasks asleep */

/* The root waits on an event that only the test's plain thread sets,
 * after it has read the report: under the real clock the report must
 * not cancel anything, since exactly this can happen. */
struct asleep {
	weft_event_t *ev;
	int sleep_first; /* a sibling sleeps, then sets ev: no report */
};

static int asleep_setter(void *arg)
{
	struct asleep *a = arg;
	CHECK_EQ(weft_sleep(30 * 1000000), 0);
	CHECK_EQ(weft_event_set(a->ev), 0);
	return 0;
}

static int asleep_root(void *arg)
{
	struct asleep *a = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	if (a->sleep_first)
		CHECK_EQ(weft_group_spawn(g, asleep_setter, a), 0);
	CHECK_EQ(weft_event_wait(a->ev), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

struct asleep_child {
	unsigned workers;
	weft_clock_t clock;
	int sleep_first;
};

struct asleep_run {
	weft_runtime_t *rt;
	struct asleep *a;
	int rc;
};

static void *asleep_thread(void *arg)
{
	struct asleep_run *r = arg;
	r->rc = weft_runtime_run(r->rt, asleep_root, r->a, NULL);
	return NULL;
}

/* Exit status: 0 when the run went as expected (see the callers). */
static void asleep_child_fn(void *arg)
{
	struct asleep_child *m = arg;
	weft_config_t cfg;
	if (weft_config_init(&cfg) != 0)
		exit(3);
	cfg.workers = m->workers;
	cfg.clock = m->clock;
	/* The real clock's report is opt-in (rule 46). */
	if (m->clock == WEFT_CLOCK_REAL)
		cfg.deadlock = WEFT_DEADLOCK_REPORT;
	weft_runtime_t *rt;
	if (weft_runtime_create(&rt, &cfg) != 0)
		exit(4);
	struct asleep a = { .sleep_first = m->sleep_first };
	if (weft_event_create(&a.ev) != 0)
		exit(5);
	int status = 0;
	if (m->clock == WEFT_CLOCK_VIRTUAL || m->sleep_first) {
		int rc = weft_runtime_run(rt, asleep_root, &a, NULL);
		int want = m->sleep_first ? 0 : -EDEADLK;
		status = rc == want ? 0 : 1;
	} else {
		/* Read our own stderr until the report, then wake the root
		 * from this plain thread. */
		int p[2], saved = dup(2);
		if (saved < 0 || pipe(p) != 0 || dup2(p[1], 2) < 0)
			exit(6);
		close(p[1]);
		struct asleep_run r = { rt, &a, -1 };
		pthread_t th;
		if (pthread_create(&th, NULL, asleep_thread, &r) != 0)
			exit(7);
		static char text[65536];
		size_t len = 0;
		/* Until the dump's task line is complete. */
		const char *line;
		while (strstr(text, "all tasks are asleep") == NULL ||
			(line = strstr(text, "parked_on=")) == NULL ||
			strchr(line, '\n') == NULL) {
			ssize_t k = read(p[0], text + len,
				sizeof text - 1 - len);
			if (k <= 0)
				exit(8);
			len += (size_t)k;
			text[len] = '\0';
		}
		weft_event_set(a.ev);
		pthread_join(th, NULL);
		dup2(saved, 2);
		if (write(2, text, len) < 0)
			exit(9);
		status = r.rc == 0 ? 0 : 1;
	}
	if (weft_event_destroy(a.ev) != 0)
		status = 10;
	weft_runtime_destroy(rt);
	exit(status);
}

static void run_asleep_child(void **state, weft_clock_t clock, int sleep_first,
	char *buf, size_t size)
{
	struct asleep_child m = { WEFT_TEST_WORKERS(state), clock,
		sleep_first };
	int status = weft_test_death(asleep_child_fn, &m, buf, size);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		print_error("child status %d, stderr: %s\n", status, buf);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Real clock, report mode: the report and the tree are printed,
 * nothing is cancelled, and the plain thread's set still
 * wakes the root (exit status 0 says it returned 0). */
static void test_deadlock__real_clock_asleep_reports(void **state)
{
	char buf[16384];
	run_asleep_child(state, WEFT_CLOCK_REAL, 0, buf, sizeof buf);
	const char *want[] = {
		"weft: all tasks are asleep - deadlock",
		"real clock: reported only",
		"name=\"main\"",
		"parked_on=",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (strstr(buf, want[i]) == NULL)
			fail_msg("missing \"%s\" in:\n%s", want[i], buf);
}

/* A pending sleep can wake the tasks: no report. */
static void test_deadlock__real_clock_pending_sleep_no_report(void **state)
{
	char buf[16384];
	run_asleep_child(state, WEFT_CLOCK_REAL, 1, buf, sizeof buf);
	if (strstr(buf, "asleep") != NULL)
		fail_msg("unexpected report:\n%s", buf);
}

/* Virtual clock (rule 44): -EDEADLK, now with the report. */
static void test_deadlock__virtual_clock_asleep_is_edeadlk(void **state)
{
	char buf[16384];
	run_asleep_child(state, WEFT_CLOCK_VIRTUAL, 0, buf, sizeof buf);
	const char *want[] = {
		"weft: all tasks are asleep - deadlock",
		"virtual clock",
		"name=\"main\"",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (strstr(buf, want[i]) == NULL)
			fail_msg("missing \"%s\" in:\n%s", want[i], buf);
}

/* }======================================================= */

/* {=========================================== outside wakers */

/* No false report while something outside the tasks can still wake them
 * (rule 46): the root waits on an event that a plain thread sets
 * OUTSIDE_WAIT_MS later, well after the report's confirmation (1 s),
 * while the root holds what the thread can act through.  The same wait
 * with no such holder is reported (test_deadlock__real_clock_asleep_
 * reports above: the plain thread sets the event after the report). */
#define OUTSIDE_WAIT_MS 2000

enum outside_kind {
	OUTSIDE_GROUP,	  /* a retained open group the thread spawns into */
	OUTSIDE_PORTAL,	  /* a portal the thread calls through */
	OUTSIDE_SHUTDOWN, /* a shutdown's watcher of the signal it sends */
	OUTSIDE_QUICK	  /* nothing held; the thread sets within 50 ms */
};

struct outside {
	enum outside_kind kind;
	weft_event_t *ev;
	weft_group_t *g;
	weft_portal_t *portal;
	int thread_rc;
};

static int outside_setter(void *arg)
{
	struct outside *o = arg;
	return weft_event_set(o->ev);
}

static void *outside_thread(void *arg)
{
	struct outside *o = arg;
	long ms = o->kind == OUTSIDE_QUICK ? 50 : OUTSIDE_WAIT_MS;
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };
	nanosleep(&ts, NULL);
	switch (o->kind) {
	case OUTSIDE_GROUP:
		o->thread_rc = weft_group_spawn(o->g, outside_setter, o);
		break;
	case OUTSIDE_PORTAL:
		o->thread_rc = weft_portal_call(o->portal, outside_setter, o,
			NULL, WEFT_FOREVER);
		break;
	case OUTSIDE_SHUTDOWN: o->thread_rc = kill(getpid(), SIGTERM); break;
	case OUTSIDE_QUICK: o->thread_rc = weft_event_set(o->ev); break;
	}
	return NULL;
}

/* Returns 0, or the number of the step that failed. */
static int outside_root(void *arg)
{
	struct outside *o = arg;
	weft_shutdown_t *sd = NULL;
	weft_group_t *g;
	if (weft_group_open(&g) != 0)
		return 1;
	if (o->kind == OUTSIDE_GROUP) {
		if (weft_group_retain(g) != 0)
			return 2;
		o->g = g;
	} else if (o->kind == OUTSIDE_PORTAL) {
		if (weft_portal_open(&o->portal) != 0)
			return 3;
	} else if (o->kind == OUTSIDE_SHUTDOWN) {
		/* Joined before the wait: the shutdown's retain of g counts
		 * no more, only its signal watcher does. */
		if (weft_shutdown_open(&sd, g, WEFT_FOREVER) != 0)
			return 4;
		o->ev = weft_shutdown_stop_event(sd);
	}
	if (o->kind == OUTSIDE_SHUTDOWN && weft_group_join(g, NULL) != 0)
		return 5;
	pthread_t th;
	if (pthread_create(&th, NULL, outside_thread, o) != 0)
		return 6;
	int rc = weft_event_wait(o->ev) == 0 ? 0 : 7;
	/* Briefly blocks this worker: the thread has only its return left
	 * (a portal call returns once its task ended). */
	pthread_join(th, NULL);
	if (o->thread_rc != 0)
		rc = 8;
	if (o->kind == OUTSIDE_PORTAL &&
		weft_portal_close(o->portal, false, NULL) != 0)
		rc = 9;
	if (o->kind == OUTSIDE_SHUTDOWN) {
		if (weft_shutdown_close(sd) != 0)
			rc = 10;
	} else if (weft_group_join(g, NULL) != 0) {
		rc = 11;
	}
	if (o->kind == OUTSIDE_GROUP)
		weft_group_release(g);
	return rc;
}

struct outside_child {
	unsigned workers;
	enum outside_kind kind;
};

/* Exit status: 0, or what went wrong (20 + the root's step). */
static void outside_child_fn(void *arg)
{
	struct outside_child *m = arg;
	weft_config_t cfg;
	if (weft_config_init(&cfg) != 0)
		exit(3);
	cfg.workers = m->workers;
	cfg.clock = WEFT_CLOCK_REAL;
	cfg.deadlock = WEFT_DEADLOCK_REPORT;
	weft_runtime_t *rt;
	if (weft_runtime_create(&rt, &cfg) != 0)
		exit(4);
	struct outside o = { .kind = m->kind };
	if (m->kind != OUTSIDE_SHUTDOWN && weft_event_create(&o.ev) != 0)
		exit(5);
	int rc = weft_runtime_run(rt, outside_root, &o, NULL);
	if (m->kind != OUTSIDE_SHUTDOWN && weft_event_destroy(o.ev) != 0)
		exit(6);
	if (weft_runtime_destroy(rt) != 0)
		exit(7);
	exit(rc == 0 ? 0 : 20 + (rc > 0 ? rc : 0));
}

static void run_outside(void **state, enum outside_kind kind)
{
	char buf[16384];
	struct outside_child m = { WEFT_TEST_WORKERS(state), kind };
	int status = weft_test_death(outside_child_fn, &m, buf, sizeof buf);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		print_error("child status %d, stderr: %s\n", status, buf);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	if (strstr(buf, "asleep") != NULL)
		fail_msg("false report:\n%s", buf);
}

/* A plain thread spawns into a group the root retained for it. */
static void test_deadlock__retained_group_holds_off_the_report(void **state)
{
	run_outside(state, OUTSIDE_GROUP);
}

/* A plain thread calls through the root's open portal. */
static void test_deadlock__open_portal_holds_off_the_report(void **state)
{
	run_outside(state, OUTSIDE_PORTAL);
}

/* A plain thread sends the signal a shutdown watches; its stop event
 * wakes the root. */
static void test_deadlock__shutdown_watcher_holds_off_the_report(void **state)
{
	run_outside(state, OUTSIDE_SHUTDOWN);
}

/* Nothing held, but the plain thread sets the event within the
 * confirmation delay: no report. */
static void test_deadlock__quick_plain_thread_is_not_reported(void **state)
{
	run_outside(state, OUTSIDE_QUICK);
}

/* }======================================================= */

int main(void)
{
	/* The cycle tests expect the default mode (error: the closing
	 * acquire fails); a WEFT_DEADLOCK=report in the environment (a run
	 * of the whole suite with the report on) would leave them waiting
	 * forever.  The tests that want another mode set it themselves. */
	unsetenv("WEFT_DEADLOCK");
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_deadlock__two_lock_cycle),
		WEFT_TEST(test_deadlock__three_lock_cycle),
		WEFT_TEST(test_deadlock__chain_is_no_cycle),
		WEFT_TEST(test_deadlock__condition_reacquire_cycle),
		WEFT_TEST(test_deadlock__ordered_pairs_no_false_positive),
		WEFT_TEST(test_deadlock__report_mode_prints_cycle),
		WEFT_TEST(test_deadlock__off_mode_waits_silently),
		WEFT_TEST(test_deadlock__real_clock_asleep_reports),
		WEFT_TEST(test_deadlock__real_clock_pending_sleep_no_report),
		WEFT_TEST(test_deadlock__virtual_clock_asleep_is_edeadlk),
		WEFT_TEST(test_deadlock__retained_group_holds_off_the_report),
		WEFT_TEST(test_deadlock__open_portal_holds_off_the_report),
		WEFT_TEST(test_deadlock__shutdown_watcher_holds_off_the_report),
		WEFT_TEST(test_deadlock__quick_plain_thread_is_not_reported),
		cmocka_unit_test(test_deadlock__config_env),
	};
	return WEFT_RUN_TESTS(tests);
}
