/* What the synchronisation primitives of include/weft/sync.h (Event,
 * Lock, Semaphore, CapacityLimiter, Condition) share: every wait is a
 * checkpoint and ends under a deadline having taken nothing, a cancelled
 * wait never loses or duplicates a grant, and all of them treat bad
 * arguments, plain threads and allocation failure alike.  Each primitive
 * on its own: test_event.c, test_lock.c, test_semaphore.c,
 * test_limiter.c, test_condition.c; sync_fixture.h has what they share. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "support.h"
#include "sync_fixture.h"

/* {======================================================= checkpoints, deadlines */

struct prims {
	weft_event_t *ev;
	weft_lock_t *lock;
	weft_semaphore_t *sem;
	weft_limiter_t *lim;
	weft_condition_t *cond;
};

static int prims_create(struct prims *p)
{
	CHECK_EQ(weft_event_create(&p->ev), 0);
	CHECK_EQ(weft_lock_create(&p->lock), 0);
	CHECK_EQ(weft_semaphore_create(&p->sem, 1, 1), 0);
	CHECK_EQ(weft_limiter_create(&p->lim, 1), 0);
	CHECK_EQ(weft_condition_create(&p->cond, NULL), 0);
	return 0;
}

static void prims_destroy(struct prims *p)
{
	CHECK_EQ(weft_event_destroy(p->ev), 0);
	CHECK_EQ(weft_lock_destroy(p->lock), 0);
	CHECK_EQ(weft_semaphore_destroy(p->sem), 0);
	CHECK_EQ(weft_limiter_destroy(p->lim), 0);
	CHECK_EQ(weft_condition_destroy(p->cond), 0);
}

static int entry_cancel_root(void *arg)
{
	(void)arg;
	struct prims p;
	prims_create(&p);
	CHECK_EQ(weft_event_set(p.ev), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, "test"), 0);
	/* Every resource is free, and yet each wait observes the
	 * cancellation and takes nothing. */
	CHECK_EQ(weft_event_wait(p.ev), -ECANCELED);
	CHECK_EQ(weft_lock_acquire(p.lock), -ECANCELED);
	CHECK_EQ(weft_lock_locked(p.lock), 0);
	CHECK_EQ(weft_semaphore_acquire(p.sem), -ECANCELED);
	CHECK_EQ(weft_semaphore_value(p.sem), 1);
	CHECK_EQ(weft_limiter_acquire(p.lim), -ECANCELED);
	int b;
	CHECK_EQ(weft_limiter_acquire_on_behalf(p.lim, &b), -ECANCELED);
	weft_limiter_stats_t st;
	CHECK_EQ(weft_limiter_stats(p.lim, &st), 0);
	CHECK_EQ(st.borrowed, 0);
	/* Non-blocking forms are not checkpoints. */
	CHECK_EQ(weft_lock_try_acquire(p.lock), 0);
	CHECK_EQ(weft_lock_release(p.lock), 0);
	CHECK_EQ(weft_semaphore_try_acquire(p.sem), 0);
	CHECK_EQ(weft_semaphore_release(p.sem), 0);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK_EQ(weft_scope_cancelled_caught(s), 1);
	weft_scope_destroy(s);
	prims_destroy(&p);
	return 0;
}

/* A child whose first weft call is a wait has never linked its root scope
 * into its group's scope (that is done lazily); the wait must still see
 * the group's cancellation, both when it can proceed at once and when it
 * parks. */
static int first_call_waits(void *arg)
{
	weft_event_t *ev = arg;
	return weft_event_wait(ev) == -ECANCELED ? 0 : -EIO;
}

static int first_wait_root(void *arg)
{
	(void)arg;
	weft_event_t *ev;
	CHECK_EQ(weft_event_create(&ev), 0);
	/* Parked first, then the group is cancelled. */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, first_call_waits, ev), 0);
	for (int spins = 0; weft_event_waiting(ev) < 3 && spins < 100000;
		spins++)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 10), 0);
	CHECK_EQ(weft_event_waiting(ev), 3);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* Cancelled before the wait, which could proceed at once. */
	CHECK_EQ(weft_event_set(ev), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, first_call_waits, ev), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(ev), 0);
	return 0;
}

WEFT_TEST_ROOT(sync, a_first_wait_sees_its_groups_cancellation, first_wait_root,
	NULL)

WEFT_TEST_ROOT(sync, every_wait_is_a_checkpoint_even_when_free,
	entry_cancel_root, NULL)

/* Each wait parks on a resource the root holds, under a fail_after
 * deadline: the wait returns -ECANCELED having taken nothing, and the
 * scope's exit reports -ETIMEDOUT.  The condition's lock is taken before
 * the scope: acquiring it is a checkpoint, which a deadline that expired
 * already (2 ms: a preempted or emulated thread) would cancel instead of
 * the wait. */
static int deadline_waits(void *arg)
{
	struct prims *p = arg;
	for (int which = 0; which < 5; which++) {
		if (which == 4)
			CHECK_EQ(weft_lock_acquire(
					 weft_condition_lock(p->cond)),
				0);
		weft_scope_t *s;
		CHECK_EQ(weft_fail_after(&s, 2 * WEFT_MSEC), 0);
		int rc = -1;
		int b;
		switch (which) {
		case 0: rc = weft_event_wait(p->ev); break;
		case 1: rc = weft_lock_acquire(p->lock); break;
		case 2: rc = weft_semaphore_acquire(p->sem); break;
		case 3: rc = weft_limiter_acquire_on_behalf(p->lim, &b); break;
		case 4: rc = weft_condition_wait(p->cond); break;
		}
		CHECK_EQ(rc, -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
		weft_scope_destroy(s);
		if (which == 4)
			CHECK_EQ(weft_lock_release(
					 weft_condition_lock(p->cond)),
				0);
	}
	CHECK_EQ(weft_lock_held(p->lock), 0);
	CHECK_EQ(weft_lock_waiting(p->lock), 0);
	CHECK_EQ(weft_semaphore_value(p->sem), 0);
	CHECK_EQ(weft_semaphore_waiting(p->sem), 0);
	weft_limiter_stats_t st;
	CHECK_EQ(weft_limiter_stats(p->lim, &st), 0);
	CHECK_EQ(st.borrowed, 1);
	CHECK_EQ(st.waiting, 0);
	return 0;
}

static int deadline_root(void *arg)
{
	(void)arg;
	struct prims p;
	prims_create(&p);
	int mine;
	CHECK_EQ(weft_lock_acquire(p.lock), 0);
	CHECK_EQ(weft_semaphore_acquire(p.sem), 0);
	CHECK_EQ(weft_limiter_acquire_on_behalf(p.lim, &mine), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, deadline_waits, &p), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* Nothing was lost: the resources work normally afterwards. */
	CHECK_EQ(weft_lock_release(p.lock), 0);
	CHECK_EQ(weft_lock_locked(p.lock), 0);
	CHECK_EQ(weft_semaphore_release(p.sem), 0);
	CHECK_EQ(weft_semaphore_value(p.sem), 1);
	CHECK_EQ(weft_limiter_release_on_behalf(p.lim, &mine), 0);
	CHECK_EQ(weft_limiter_try_acquire(p.lim), 0);
	CHECK_EQ(weft_limiter_release(p.lim), 0);
	prims_destroy(&p);
	return 0;
}

WEFT_TEST_ROOT(sync, deadline_ends_a_wait_with_nothing_acquired, deadline_root,
	NULL)

/* }======================================================= */

/* {======================================================= cancel-atomicity */

/* Many tasks acquire with random short deadlines while others release;
 * some are also cancelled through their handles at random moments.  Every
 * acquire that returned 0 is counted and released; at the end the
 * resource must be exactly whole again: a grant lost to a cancelled
 * waiter would leave a permit (or the lock) missing, a double grant
 * would overflow the bound (WEFT_EMISUSE on release) or break the
 * exclusion check. */
enum { ATOM_SEM, ATOM_LOCK, ATOM_LIMITER, ATOM_CONDITION };

struct atom {
	int kind;
	weft_semaphore_t *sem;
	weft_lock_t *lock;
	weft_limiter_t *lim;
	weft_condition_t *cond;
	int permits;
	atomic_int inside, max_inside;
	atomic_long ok, cancelled;
	long counter; /* under the lock (ATOM_LOCK) */
	long iters;
	int tasks;
	struct meet meet;
	/* Condition accounting: notifications delivered vs consumed. */
	long notified; /* under the condition's lock */
	atomic_long cond_ok;
	atomic_long cond_cancelled; /* -ECANCELED from condition_wait */
	atomic_int stop;
};

struct atom_arg {
	struct atom *a;
	int index;
	uint64_t rng;
};

static int atom_acquire(struct atom *a, void *borrower)
{
	switch (a->kind) {
	case ATOM_SEM: return weft_semaphore_acquire(a->sem);
	case ATOM_LOCK: return weft_lock_acquire(a->lock);
	default: return weft_limiter_acquire_on_behalf(a->lim, borrower);
	}
}

static int atom_release(struct atom *a, void *borrower)
{
	switch (a->kind) {
	case ATOM_SEM: return weft_semaphore_release(a->sem);
	case ATOM_LOCK: return weft_lock_release(a->lock);
	default: return weft_limiter_release_on_behalf(a->lim, borrower);
	}
}

static int atom_user(void *arg)
{
	struct atom_arg *x = arg;
	struct atom *a = x->a;
	meet(&a->meet, x->index, a->tasks);
	for (long i = 0; i < a->iters; i++) {
		weft_scope_t *s = NULL;
		int r = (int)(weft_test_rand(&x->rng) % 4);
		if (r != 0)
			CHECK_EQ(weft_move_on_after(&s,
					 (int64_t)(weft_test_rand(&x->rng) %
						 300) *
						 1000),
				0);
		int rc = atom_acquire(a, x);
		/* The deadline covers the acquire only. */
		if (s) {
			CHECK_EQ(weft_scope_exit(s), 0);
			weft_scope_destroy(s);
		}
		if (rc == 0) {
			int in = atomic_fetch_add(&a->inside, 1) + 1;
			CHECK(in <= a->permits);
			int seen = atomic_load(&a->max_inside);
			while (in > seen &&
				!atomic_compare_exchange_weak(&a->max_inside,
					&seen, in))
				;
			if (a->kind == ATOM_LOCK)
				a->counter++;
			/* Hold it for a while (a sleep, or a few switches),
			 * so that waiters queue up and their deadlines race
			 * with grants.  A handle cancel cuts the sleep short,
			 * which is fine. */
			if (weft_test_rand(&x->rng) % 3 == 0)
				(void)weft_sleep(
					(int64_t)(weft_test_rand(&x->rng) %
						100) *
					1000);
			int switches = (int)(weft_test_rand(&x->rng) % 4);
			for (int k = switches; k > 0; k--)
				(void)weft_cancel_shielded_checkpoint();
			atomic_fetch_sub(&a->inside, 1);
			CHECK_EQ(atom_release(a, x), 0);
			atomic_fetch_add(&a->ok, 1);
		} else {
			CHECK_EQ(rc, -ECANCELED);
			atomic_fetch_add(&a->cancelled, 1);
		}
		/* A handle cancel ends this task: stop quietly. */
		if (weft_checkpoint_if_cancelled() == -ECANCELED)
			return -ECANCELED;
	}
	return 0;
}

/* Condition flavour: waiters wait with random deadlines; the root
 * notifies one at a time.  Every notification counted by notify is
 * consumed by exactly one waiter: reported as a 0 return, or spent by a
 * waiter cancelled after it, while it waited for the lock, which returns
 * -ECANCELED (docs/semantics.md rule 42).  So no waiter returns 0
 * without a notification, and no notification is lost. */
static int atom_cond_waiter(void *arg)
{
	struct atom_arg *x = arg;
	struct atom *a = x->a;
	weft_lock_t *l = weft_condition_lock(a->cond);
	while (!atomic_load(&a->stop)) {
		weft_scope_t *s = NULL;
		if (weft_test_rand(&x->rng) % 2)
			CHECK_EQ(weft_move_on_after(&s,
					 (int64_t)(weft_test_rand(&x->rng) %
						 300) *
						 1000),
				0);
		/* The deadline may expire before the lock is ours. */
		int rc = weft_lock_acquire(l);
		if (rc == 0) {
			rc = weft_condition_wait(a->cond);
			if (rc == -ECANCELED)
				atomic_fetch_add(&a->cond_cancelled, 1);
			CHECK(weft_lock_held(l));
			CHECK_EQ(weft_lock_release(l), 0);
		}
		if (rc == 0) {
			atomic_fetch_add(&a->cond_ok, 1);
		} else {
			CHECK_EQ(rc, -ECANCELED);
			atomic_fetch_add(&a->cancelled, 1);
		}
		if (s) {
			CHECK_EQ(weft_scope_exit(s), 0);
			weft_scope_destroy(s);
		}
	}
	return 0;
}

static int atom_root(void *arg)
{
	struct atom *a = arg;
	a->tasks = 8;
	struct atom_arg x[8];
	weft_task_t *h[8];
	uint64_t seed = (uint64_t)weft_now() | 1;
	weft_group_t *g;
	switch (a->kind) {
	case ATOM_SEM:
		a->permits = 2;
		CHECK_EQ(weft_semaphore_create(&a->sem, 2, 2), 0);
		break;
	case ATOM_LOCK:
		a->permits = 1;
		CHECK_EQ(weft_lock_create(&a->lock), 0);
		break;
	case ATOM_LIMITER:
		a->permits = 3;
		CHECK_EQ(weft_limiter_create(&a->lim, 3), 0);
		break;
	case ATOM_CONDITION:
		CHECK_EQ(weft_condition_create(&a->cond, NULL), 0);
		break;
	}
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < a->tasks; i++) {
		x[i] = (struct atom_arg){ a, i, seed + (uint64_t)i * 7919 };
		h[i] = weft_test_spawn(g,
			a->kind == ATOM_CONDITION ? atom_cond_waiter
						  : atom_user,
			&x[i]);
	}
	if (a->kind == ATOM_CONDITION) {
		seed |= 1;
		weft_lock_t *l = weft_condition_lock(a->cond);
		for (long i = 0; i < a->iters; i++) {
			CHECK_EQ(weft_lock_acquire(l), 0);
			int n = weft_condition_notify(a->cond, 1);
			CHECK(n == 0 || n == 1);
			if (n > 0)
				a->notified += n;
			CHECK_EQ(weft_lock_release(l), 0);
			/* Slow enough that waiters' deadlines expire too. */
			(void)weft_sleep(
				(int64_t)(weft_test_rand(&seed) % 200) * 1000);
		}
		atomic_store(&a->stop, 1);
		/* Release everyone still waiting (bounded). */
		int64_t give_up = weft_now() + GIVE_UP;
		long active = 0;
		do {
			CHECK_EQ(weft_lock_acquire(l), 0);
			int n = weft_condition_notify_all(a->cond);
			a->notified += n;
			CHECK_EQ(weft_lock_release(l), 0);
			(void)weft_sleep(100 * 1000);
			active = 0;
			for (int i = 0; i < a->tasks; i++)
				active += weft_task_state(h[i]) ==
					WEFT_TASK_PENDING;
		} while (active > 0 && weft_now() < give_up);
	} else {
		/* Cancel two users at random moments. */
		uint64_t r = seed;
		for (int k = 0; k < 2; k++) {
			(void)weft_sleep(
				(int64_t)(weft_test_rand(&r) % 3000) * 1000);
			uint64_t victim = weft_test_rand(&r) %
				(uint64_t)a->tasks;
			weft_task_cancel(h[victim]);
		}
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < a->tasks; i++)
		weft_task_release(h[i]);
	switch (a->kind) {
	case ATOM_SEM:
		CHECK_EQ(weft_semaphore_value(a->sem), 2);
		CHECK_EQ(weft_semaphore_destroy(a->sem), 0);
		break;
	case ATOM_LOCK:
		CHECK_EQ(a->counter, atomic_load(&a->ok));
		CHECK_EQ(weft_lock_locked(a->lock), 0);
		CHECK_EQ(weft_lock_destroy(a->lock), 0);
		break;
	case ATOM_LIMITER: {
		weft_limiter_stats_t st;
		CHECK_EQ(weft_limiter_stats(a->lim, &st), 0);
		CHECK_EQ(st.borrowed, 0);
		CHECK_EQ(st.available, 3);
		CHECK_EQ(weft_limiter_destroy(a->lim), 0);
		break;
	}
	case ATOM_CONDITION:
		/* A waiter returns 0 only for a notification, and a
		 * notification is spent by a waiter that returns 0 or by one
		 * cancelled while it waits for the lock again (Trio;
		 * weft_condition_wait), which returns -ECANCELED: so the
		 * successes are at most the notifications, which are at most
		 * the successes and the cancelled condition waits.  (Exact
		 * accounting of a notified-then-cancelled waiter:
		 * test_condition.c.) */
		CHECK(a->notified >= atomic_load(&a->cond_ok));
		CHECK(a->notified <= atomic_load(&a->cond_ok) +
				atomic_load(&a->cond_cancelled));
		CHECK_EQ(weft_condition_destroy(a->cond), 0);
		break;
	}
	return 0;
}

static void atom_run(void **state, int kind)
{
	struct atom a = { .kind = kind,
		.iters = weft_test_scale(kind == ATOM_CONDITION ? 400 : 600) };
	weft_test_root(state, atom_root, &a);
	print_message("kind %d: %ld granted, %ld cancelled\n", kind,
		atomic_load(&a.ok) + atomic_load(&a.cond_ok),
		atomic_load(&a.cancelled));
	assert_true(atomic_load(&a.max_inside) <=
		(kind == ATOM_CONDITION ? 0 : a.permits));
}

static void test_sync__cancelled_semaphore_waits_lose_and_duplicate_nothing(
	void **state)
{
	atom_run(state, ATOM_SEM);
}

static void test_sync__cancelled_lock_waits_lose_and_duplicate_nothing(
	void **state)
{
	atom_run(state, ATOM_LOCK);
}

static void test_sync__cancelled_limiter_waits_lose_and_duplicate_nothing(
	void **state)
{
	atom_run(state, ATOM_LIMITER);
}

static void test_sync__cancelled_condition_waits_never_lose_a_notification(
	void **state)
{
	atom_run(state, ATOM_CONDITION);
}

/* }======================================================= */

/* {======================================================= arguments, threads, memory */

static void test_sync__null_arguments_are_einval(void **state)
{
	(void)state;
	assert_int_equal(weft_event_create(NULL), -EINVAL);
	assert_int_equal(weft_event_destroy(NULL), -EINVAL);
	assert_int_equal(weft_event_set(NULL), -EINVAL);
	assert_int_equal(weft_event_wait(NULL), -EINVAL);
	assert_int_equal(weft_event_is_set(NULL), 0);
	assert_int_equal(weft_event_waiting(NULL), 0);
	assert_int_equal(weft_lock_create(NULL), -EINVAL);
	assert_int_equal(weft_lock_destroy(NULL), -EINVAL);
	assert_int_equal(weft_lock_acquire(NULL), -EINVAL);
	assert_int_equal(weft_lock_try_acquire(NULL), -EINVAL);
	assert_int_equal(weft_lock_release(NULL), -EINVAL);
	assert_int_equal(weft_lock_locked(NULL), 0);
	assert_int_equal(weft_lock_held(NULL), 0);
	assert_int_equal(weft_lock_waiting(NULL), 0);
	assert_int_equal(weft_semaphore_create(NULL, 0, 0), -EINVAL);
	assert_int_equal(weft_semaphore_destroy(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_acquire(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_try_acquire(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_release(NULL), -EINVAL);
	assert_int_equal(weft_semaphore_value(NULL), 0);
	assert_int_equal(weft_semaphore_waiting(NULL), 0);
	weft_limiter_t *l;
	weft_limiter_stats_t st;
	assert_int_equal(weft_limiter_create(NULL, 1), -EINVAL);
	assert_int_equal(weft_limiter_destroy(NULL), -EINVAL);
	assert_int_equal(weft_limiter_acquire(NULL), -EINVAL);
	assert_int_equal(weft_limiter_acquire_on_behalf(NULL, &st), -EINVAL);
	assert_int_equal(weft_limiter_try_acquire(NULL), -EINVAL);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(NULL, &st),
		-EINVAL);
	assert_int_equal(weft_limiter_release(NULL), -EINVAL);
	assert_int_equal(weft_limiter_release_on_behalf(NULL, &st), -EINVAL);
	assert_int_equal(weft_limiter_set_total(NULL, 1), -EINVAL);
	assert_int_equal(weft_limiter_stats(NULL, &st), -EINVAL);
	assert_int_equal(weft_limiter_create(&l, 1), 0);
	assert_int_equal(weft_limiter_acquire_on_behalf(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_release_on_behalf(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_set_total(l, 0), -EINVAL);
	assert_int_equal(weft_limiter_stats(l, NULL), -EINVAL);
	assert_int_equal(weft_limiter_destroy(l), 0);
	assert_int_equal(weft_condition_create(NULL, NULL), -EINVAL);
	assert_int_equal(weft_condition_destroy(NULL), -EINVAL);
	assert_int_equal(weft_condition_wait(NULL), -EINVAL);
	assert_int_equal(weft_condition_notify(NULL, 1), -EINVAL);
	assert_int_equal(weft_condition_notify_all(NULL), -EINVAL);
	assert_null(weft_condition_lock(NULL));
	assert_int_equal(weft_condition_waiting(NULL), 0);
	weft_test_assert_no_leaks();
}

static void test_sync__fiber_only_calls_from_a_plain_thread_are_enotfiber(
	void **state)
{
	(void)state;
	struct prims p;
	prims_create(&p);
	int b;
	assert_int_equal(weft_event_wait(p.ev), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_acquire(p.lock), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_try_acquire(p.lock), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_release(p.lock), WEFT_ENOTFIBER);
	assert_int_equal(weft_lock_held(p.lock), 0);
	assert_int_equal(weft_semaphore_acquire(p.sem), WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_acquire(p.lim), WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_acquire_on_behalf(p.lim, &b),
		WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_try_acquire(p.lim), WEFT_ENOTFIBER);
	assert_int_equal(weft_limiter_release(p.lim), WEFT_ENOTFIBER);
	assert_int_equal(weft_condition_wait(p.cond), WEFT_ENOTFIBER);
	assert_int_equal(weft_condition_notify(p.cond, 1), WEFT_ENOTFIBER);
	assert_int_equal(weft_condition_notify_all(p.cond), WEFT_ENOTFIBER);
	/* The any-thread calls work here. */
	assert_int_equal(weft_event_set(p.ev), 0);
	assert_int_equal(weft_event_is_set(p.ev), 1);
	assert_int_equal(weft_semaphore_try_acquire(p.sem), 0);
	assert_int_equal(weft_semaphore_release(p.sem), 0);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(p.lim, &b), 0);
	assert_int_equal(weft_limiter_set_total(p.lim, 2), 0);
	assert_int_equal(weft_limiter_release_on_behalf(p.lim, &b), 0);
	prims_destroy(&p);
	weft_test_assert_no_leaks();
}

static void test_sync__allocation_failure_at_create_is_enomem(void **state)
{
	(void)state;
	weft_event_t *ev = (weft_event_t *)&ev;
	weft_lock_t *lock = (weft_lock_t *)&lock;
	weft_semaphore_t *sem = (weft_semaphore_t *)&sem;
	weft_limiter_t *lim = (weft_limiter_t *)&lim;
	weft_condition_t *cond = (weft_condition_t *)&cond;
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_event_create(&ev), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_lock_create(&lock), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_semaphore_create(&sem, 1, 0), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_limiter_create(&lim, 1), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_condition_create(&cond, NULL), -ENOMEM);
	weft_debug_fail_alloc(0);
	/* Untouched on failure. */
	assert_ptr_equal(ev, &ev);
	assert_ptr_equal(lock, &lock);
	assert_ptr_equal(sem, &sem);
	assert_ptr_equal(lim, &lim);
	assert_ptr_equal(cond, &cond);
	/* The limiter's borrower table grows on demand: a failure there is
	 * -ENOMEM with nothing borrowed. */
	assert_int_equal(weft_limiter_create(&lim, 4), 0);
	int b;
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(lim, &b), -ENOMEM);
	weft_debug_fail_alloc(0);
	weft_limiter_stats_t st;
	assert_int_equal(weft_limiter_stats(lim, &st), 0);
	assert_int_equal(st.borrowed, 0);
	assert_int_equal(weft_limiter_try_acquire_on_behalf(lim, &b), 0);
	assert_int_equal(weft_limiter_release_on_behalf(lim, &b), 0);
	assert_int_equal(weft_limiter_destroy(lim), 0);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_sync__every_wait_is_a_checkpoint_even_when_free),
		WEFT_TEST(test_sync__a_first_wait_sees_its_groups_cancellation),
		WEFT_TEST(
			test_sync__deadline_ends_a_wait_with_nothing_acquired),
		WEFT_TEST(
			test_sync__cancelled_semaphore_waits_lose_and_duplicate_nothing),
		WEFT_TEST(
			test_sync__cancelled_lock_waits_lose_and_duplicate_nothing),
		WEFT_TEST(
			test_sync__cancelled_limiter_waits_lose_and_duplicate_nothing),
		WEFT_TEST(
			test_sync__cancelled_condition_waits_never_lose_a_notification),
		cmocka_unit_test(test_sync__null_arguments_are_einval),
		cmocka_unit_test(
			test_sync__fiber_only_calls_from_a_plain_thread_are_enotfiber),
		cmocka_unit_test(
			test_sync__allocation_failure_at_create_is_enomem),
	};
	return WEFT_RUN_TESTS(tests);
}
