/* The kids that the combinator tests (test_gather.c, test_wait.c,
 * test_as_completed.c, test_combine.c) hand to gather, race, wait,
 * wait_for and as_completed: tasks that return a value, fail, wait for a
 * gate, sleep until cancelled or clean up slowly, all counting what they
 * did in one `struct shared`. */
#ifndef WEFT_TESTS_COMBINE_FIXTURE_H
#define WEFT_TESTS_COMBINE_FIXTURE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "support.h"

#define NKIDS 6

/* State shared by the tasks of one test. */
struct shared {
	int rendezvous;	     /* > 0: kids wait until this many arrived */
	atomic_int arrived;  /* kids that started */
	atomic_int cleanups; /* kids whose wait was cancelled */
	atomic_int gate;     /* gated kids proceed once set */
	atomic_int consumed; /* as_completed: tasks the consumer took */
	atomic_int ran;	     /* kids whose function ran */
	int vals[16];	     /* results point here */
};

/* One kid: what it does is chosen by the function it runs. */
struct kid {
	struct shared *sh;
	int i;
	int code;      /* fail with this after the wait (0: succeed) */
	int64_t sleep; /* sleep this long first */
	int rank;      /* as_completed: ends after `rank` were taken */
};

/* Counts the kid in; with a rendezvous, stays (yielding, so that it also
 * works on one worker) until every kid has arrived: they are then all
 * alive at once, on as many workers as there are. */
static inline void arrive(struct shared *sh)
{
	atomic_fetch_add(&sh->ran, 1);
	atomic_fetch_add(&sh->arrived, 1);
	while (sh->rendezvous > 0 && atomic_load(&sh->arrived) < sh->rendezvous)
		weft_yield();
}

/* Sleeps in small steps until flag >= want; -ECANCELED if cancelled. */
static inline int wait_flag(atomic_int *flag, int want)
{
	while (atomic_load(flag) < want) {
		int rc = weft_sleep(WEFT_MSEC / 4);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Arrives, sleeps k->sleep, then fails with k->code or returns &vals[i]. */
static inline int kid_value(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	if (k->sleep > 0 && weft_sleep(k->sleep) < 0) {
		atomic_fetch_add(&k->sh->cleanups, 1);
		return -ECANCELED;
	}
	if (k->code != 0)
		return weft_fail(k->code, "kid %d failed", k->i);
	weft_task_set_result(&k->sh->vals[k->i]);
	return 0;
}

/* Arrives, then sleeps until cancelled; counts the cleanup. */
static inline int kid_forever(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	int rc = weft_sleep(600 * WEFT_SEC);
	atomic_fetch_add(&k->sh->cleanups, 1);
	return rc;
}

/* Waits for the gate, then returns &vals[i] (or fails with k->code). */
static inline int kid_gated(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	if (wait_flag(&k->sh->gate, 1) < 0) {
		atomic_fetch_add(&k->sh->cleanups, 1);
		return -ECANCELED;
	}
	if (k->code != 0)
		return weft_fail(k->code, "kid %d failed", k->i);
	weft_task_set_result(&k->sh->vals[k->i]);
	return 0;
}

/* When cancelled, cleans up for a while inside a shield before it counts
 * its cleanup: a caller that returns before the count is 1 did not wait. */
static inline int kid_slow_cleanup(void *arg)
{
	struct kid *k = arg;
	arrive(k->sh);
	int rc = weft_sleep(600 * WEFT_SEC);
	weft_scope_t *shield;
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	CHECK_EQ(weft_sleep(3 * WEFT_MSEC), 0);
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	atomic_fetch_add(&k->sh->cleanups, 1);
	return rc;
}

static inline void kids_init(struct kid *kids, int n, struct shared *sh)
{
	for (int i = 0; i < n; i++)
		kids[i] = (struct kid){ .sh = sh, .i = i };
}

/* Waits (boundedly in practice: the tasks are running) until n kids
 * arrived. */
static inline void await_arrivals(struct shared *sh, int n)
{
	while (atomic_load(&sh->arrived) < n)
		CHECK_EQ(weft_sleep(WEFT_MSEC / 4), 0);
}

#endif
