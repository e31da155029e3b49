/* Cancel scopes and deadlines (include/weft/cancel.h):
 * docs/semantics.md rules 21-31, a section for each in order (23-25
 * share one, and so do 26-27). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

/* {======================================================= level-triggered */

static int level_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, "stop"), 0);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(weft_checkpoint(), -ECANCELED);
		CHECK_EQ(weft_checkpoint_if_cancelled(), -ECANCELED);
		CHECK_EQ(weft_sleep(WEFT_MSEC), -ECANCELED);
	}
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

WEFT_TEST_ROOT(cancel, every_checkpoint_fails_until_the_scope_is_exited,
	level_root, NULL)

/* }======================================================= */

/* {======================================================= checkpoints */

struct pingpong {
	atomic_int turn;
	atomic_int switches;
};

static int alternate(void *arg)
{
	struct pingpong *p = arg;
	for (int i = 0; i < 100; i++) {
		atomic_fetch_add(&p->turn, 1);
		CHECK_EQ(weft_checkpoint(), 0);
	}
	return 0;
}

static int observer(void *arg)
{
	struct pingpong *p = arg;
	int last = -1;
	for (int i = 0; i < 100; i++) {
		int now = atomic_load(&p->turn);
		if (now != last)
			atomic_fetch_add(&p->switches, 1);
		last = now;
		CHECK_EQ(weft_checkpoint(), 0);
	}
	return 0;
}

static int yields_root(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, alternate, arg), 0);
	CHECK_EQ(weft_group_spawn(g, observer, arg), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_cancel__checkpoint_yields_to_other_tasks(void **state)
{
	/* On one worker the two tasks can only interleave if every
	 * checkpoint yields. */
	struct pingpong p = { 0 };
	assert_int_equal(weft_test_run(1, yields_root, &p), 0);
	assert_true(atomic_load(&p.switches) > 50);
	(void)state;
}

static int shielded_checkpoint_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(s, NULL);
	CHECK_EQ(weft_cancel_shielded_checkpoint(), 0);
	CHECK_EQ(weft_yield(), 0);
	CHECK_EQ(weft_checkpoint_if_cancelled(), -ECANCELED);
	weft_scope_exit(s);
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(cancel, cancel_shielded_checkpoint_never_fails,
	shielded_checkpoint_root, NULL)

/* }======================================================= */

/* {======================================================= scope exit, nesting, entry */

static int own_only_root(void *arg)
{
	(void)arg;
	weft_scope_t *outer, *inner;
	CHECK_EQ(weft_scope_open(&outer, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_open(&inner, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(inner, "inner");
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(inner), 0);
	CHECK(weft_scope_cancelled_caught(inner));
	CHECK_EQ(weft_checkpoint(), 0); /* inner's cancellation consumed */
	weft_scope_destroy(inner);

	/* Outer cancelled while inside inner: inner's exit consumes nothing. */
	CHECK_EQ(weft_scope_open(&inner, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(outer, "outer");
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(inner), 0);
	CHECK(!weft_scope_cancelled_caught(inner));
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	weft_scope_destroy(inner);
	CHECK_EQ(weft_scope_exit(outer), 0);
	CHECK(weft_scope_cancelled_caught(outer));
	weft_scope_destroy(outer);
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

WEFT_TEST_ROOT(cancel, scope_exit_consumes_only_its_own_cancellation,
	own_only_root, NULL)

static int not_observed_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(s, NULL);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancel_called(s));
	CHECK(!weft_scope_cancelled_caught(s)); /* nobody observed it */
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(cancel, cancelled_caught_only_when_a_checkpoint_observed_it,
	not_observed_root, NULL)

static int misnest_root(void *arg)
{
	(void)arg;
	weft_scope_t *a, *b;
	CHECK_EQ(weft_scope_open(&a, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_open(&b, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_exit(a), WEFT_EMISNEST);
	CHECK_EQ(weft_scope_exit(b), 0);
	CHECK_EQ(weft_scope_exit(b), WEFT_EMISUSE); /* single use */
	CHECK_EQ(weft_scope_enter(b), WEFT_EMISUSE);
	CHECK_EQ(weft_scope_exit(a), 0);
	weft_scope_destroy(b);
	weft_scope_destroy(a);
	CHECK_EQ(weft_scope_exit(NULL), -EINVAL);
	CHECK_EQ(weft_scope_create(&a, WEFT_FOREVER, 0x100), -EINVAL);
	return 0;
}

WEFT_TEST_ROOT(cancel, misnested_exit_is_reported_and_changes_nothing,
	misnest_root, NULL)

/* {======================================================= origin PARENT */

static int parent_origin_root(void *arg)
{
	(void)arg;
	weft_scope_t *a, *b, *early, *shielded;
	weft_cancel_reason_t r;
	CHECK_EQ(weft_scope_open(&a, WEFT_FOREVER, 0), 0);
	/* Exited before the outer cancellation: nothing reached it. */
	CHECK_EQ(weft_scope_open(&early, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_exit(early), 0);
	CHECK_EQ(weft_move_on_after(&b, 3600 * WEFT_SEC), 0);
	CHECK_EQ(weft_scope_open(&shielded, WEFT_FOREVER, WEFT_SCOPE_SHIELD),
		0);
	CHECK_EQ(weft_scope_cancel(a, "outer reason"), 0);
	CHECK_EQ(weft_scope_reason(shielded, &r), 0);
	CHECK_EQ(r.origin, WEFT_CANCEL_NONE);
	CHECK_EQ(weft_scope_exit(shielded), 0);
	/* Entered, asked by its own task. */
	CHECK_EQ(weft_scope_reason(b, &r), 0);
	CHECK_EQ(r.origin, WEFT_CANCEL_PARENT);
	CHECK(strcmp(r.text, "outer reason") == 0);
	CHECK_EQ(r.task_id, weft_current_task_id());
	weft_cancel_reason_t ra;
	CHECK_EQ(weft_scope_reason(a, &ra), 0);
	CHECK_EQ(ra.origin, WEFT_CANCEL_EXPLICIT);
	CHECK_EQ(r.scope_id, ra.scope_id);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(b), 0);
	CHECK(!weft_scope_cancel_called(b));
	CHECK(!weft_scope_cancelled_caught(b));
	/* Exited: kept. */
	memset(&r, 0, sizeof r);
	CHECK_EQ(weft_scope_reason(b, &r), 0);
	CHECK_EQ(r.origin, WEFT_CANCEL_PARENT);
	CHECK(strcmp(r.text, "outer reason") == 0);
	CHECK_EQ(weft_scope_exit(a), 0);
	CHECK(weft_scope_cancelled_caught(a));
	CHECK_EQ(weft_scope_reason(early, &r), 0);
	CHECK_EQ(r.origin, WEFT_CANCEL_NONE);
	weft_scope_destroy(shielded);
	weft_scope_destroy(b);
	weft_scope_destroy(early);
	weft_scope_destroy(a);
	return 0;
}

WEFT_TEST_ROOT(cancel, scope_reached_by_an_outer_cancel_reports_parent,
	parent_origin_root, NULL)

static int sibling_fails(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "boom");
}

struct inner_seen {
	weft_cancel_reason_t r;
	atomic_int ready;
};

static int inner_scope_sees_group_failure(void *arg)
{
	struct inner_seen *in = arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	atomic_store(&in->ready, 1);
	int rc = weft_sleep(3600 * WEFT_SEC);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK_EQ(weft_scope_reason(s, &in->r), 0);
	weft_scope_destroy(s);
	return rc;
}

/* The cancellation came from the group, through the task's root scope:
 * its text names the failing sibling. */
static int parent_origin_group_root(void *arg)
{
	(void)arg;
	struct inner_seen in = { 0 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_task_t *h = weft_test_spawn(g, inner_scope_sees_group_failure,
		&in);
	CHECK(weft_test_yield_until(&in.ready, 1));
	weft_task_t *f = weft_test_spawn(g, sibling_fails, NULL);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	weft_error_free(err);
	CHECK_EQ(in.r.origin, WEFT_CANCEL_PARENT);
	char want[96];
	snprintf(want, sizeof want, "task '%s'#%llu failed", weft_task_name(f),
		(unsigned long long)weft_task_id(f));
	CHECK(strcmp(in.r.text, want) == 0);
	weft_task_release(h);
	weft_task_release(f);
	return 0;
}

WEFT_TEST_ROOT(cancel, group_failure_reaches_inner_scopes_as_parent,
	parent_origin_group_root, NULL)

/* }======================================================= */

#ifdef WEFT_DEBUG
static int misnest_group_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	weft_scope_t *s;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_move_on_after(&s, WEFT_SEC), 0);
	CHECK_EQ(weft_group_join(g, NULL), WEFT_EMISNEST);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void misnest_child(void *arg)
{
	(void)arg;
	int rc = weft_test_run(1, misnest_root, NULL);
	rc |= weft_test_run(1, misnest_group_root, NULL);
	_exit(rc == 0 ? 0 : 1);
}

/* Debug builds name both scopes of a misnesting and where each was
 * entered (rule 24), for a scope and for a group join. */
static void test_cancel__misnest_names_both_sites(void **state)
{
	(void)state;
	char buf[8192];
	int status = weft_test_death(misnest_child, NULL, buf, sizeof buf);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	const char *want[] = {
		"weft_scope_exit: scope #",
		"is not the innermost scope of task 'main'#",
		"weft_group_join: group #",
		", entered at ",
		"(test_cancel.c:",
		"is still entered",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (strstr(buf, want[i]) == NULL)
			fail_msg("missing \"%s\" in:\n%s", want[i], buf);
}
#endif

static int before_enter_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_create(&s, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(s, "early");
	CHECK_EQ(weft_checkpoint(), 0);
	CHECK_EQ(weft_scope_enter(s), 0);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	/* An expired deadline at entry, too. */
	CHECK_EQ(weft_scope_create(&s, weft_now() - WEFT_MSEC, 0), 0);
	CHECK_EQ(weft_scope_enter(s), 0);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	weft_cancel_reason_t r;
	CHECK_EQ(weft_scope_reason(s, &r), 0);
	CHECK_EQ(r.origin, WEFT_CANCEL_DEADLINE);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(cancel, scope_cancelled_before_entry_fails_first_checkpoint,
	before_enter_root, NULL)

/* }======================================================= */

/* {======================================================= deadlines, fail_after */

static int deadline_root(void *arg)
{
	(void)arg;
	weft_scope_t *a, *b;
	int64_t t0 = weft_now();
	CHECK_EQ(weft_effective_deadline(), WEFT_FOREVER);
	CHECK_EQ(weft_move_on_after(&a, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_move_on_at(&b, t0 + 20 * WEFT_SEC), 0);
	CHECK_EQ(weft_effective_deadline(), weft_scope_deadline(a));
	CHECK(weft_scope_deadline(a) >= t0 + 10 * WEFT_SEC);
	/* Mutable while active: shorten the inner one. */
	CHECK_EQ(weft_scope_set_deadline(b, weft_now() + 5 * WEFT_MSEC), 0);
	CHECK_EQ(weft_effective_deadline(), weft_scope_deadline(b));
	CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED);
	CHECK(weft_now() >= weft_scope_deadline(b));
	CHECK_EQ(weft_scope_exit(b), 0);
	CHECK(weft_scope_cancelled_caught(b));
	weft_scope_destroy(b);
	/* Extend a deadline: it must not fire at the old time. */
	CHECK_EQ(weft_scope_set_deadline(a, weft_now() + 2 * WEFT_MSEC), 0);
	CHECK_EQ(weft_scope_set_deadline(a, WEFT_FOREVER), 0);
	CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0);
	CHECK_EQ(weft_scope_exit(a), 0);
	CHECK(!weft_scope_cancel_called(a));
	weft_scope_destroy(a);
	return 0;
}

WEFT_TEST_ROOT(cancel, deadlines_are_absolute_mutable_and_nest, deadline_root,
	NULL)

/* Inside an effectively cancelled scope the effective deadline is
 * WEFT_PAST (Trio's -inf), behind a shield it is the shield's own again,
 * and reading it is not an observation of the cancellation. */
static int effective_past_root(void *arg)
{
	(void)arg;
	weft_scope_t *outer, *shield;
	CHECK_EQ(weft_move_on_after(&outer, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_scope_cancel(outer, "test"), 0);
	CHECK_EQ(weft_effective_deadline(), WEFT_PAST);
	CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD), 0);
	CHECK_EQ(weft_effective_deadline(), WEFT_FOREVER);
	CHECK_EQ(weft_scope_set_deadline(shield, weft_now() + 20 * WEFT_SEC),
		0);
	CHECK_EQ(weft_effective_deadline(), weft_scope_deadline(shield));
	CHECK_EQ(weft_scope_exit(shield), 0);
	weft_scope_destroy(shield);
	CHECK_EQ(weft_effective_deadline(), WEFT_PAST);
	CHECK_EQ(weft_scope_exit(outer), 0);
	CHECK(weft_scope_cancel_called(outer));
	CHECK(!weft_scope_cancelled_caught(outer));
	weft_scope_destroy(outer);
	CHECK_EQ(weft_effective_deadline(), WEFT_FOREVER);
	return 0;
}

WEFT_TEST_ROOT(cancel, effective_deadline_is_past_inside_a_cancelled_scope,
	effective_past_root, NULL)

/* A deadline already past cancels the scope at once, entered or not yet
 * entered; after the exit it changes only the value. */
static int past_deadline_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	/* Created with a past deadline. */
	CHECK_EQ(weft_scope_create(&s, weft_now() - 1, 0), 0);
	CHECK(weft_scope_cancel_called(s));
	weft_scope_destroy(s);
	/* Moved into the past before entry. */
	CHECK_EQ(weft_scope_create(&s, weft_now() + 10 * WEFT_SEC, 0), 0);
	CHECK(!weft_scope_cancel_called(s));
	CHECK_EQ(weft_scope_set_deadline(s, weft_now() - 1), 0);
	CHECK(weft_scope_cancel_called(s));
	CHECK_EQ(weft_scope_enter(s), 0);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	/* WEFT_PAST and INT64_MIN + 1 are past deadlines like any other. */
	CHECK_EQ(weft_scope_create(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_set_deadline(s, WEFT_PAST), 0);
	CHECK(weft_scope_cancel_called(s));
	weft_scope_destroy(s);
	/* After exit, only the value changes. */
	CHECK_EQ(weft_move_on_after(&s, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK_EQ(weft_scope_set_deadline(s, INT64_MIN + 1), 0);
	CHECK_EQ(weft_scope_deadline(s), INT64_MIN + 1);
	CHECK(!weft_scope_cancel_called(s));
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(cancel, a_past_deadline_cancels_at_once_entered_or_not,
	past_deadline_root, NULL)

/* Negative (and zero) relative timeouts give an expired scope, as in
 * AnyIO: move_on_after moves on at the first checkpoint, fail_after
 * reports a timeout. */
static int negative_timeout_root(void *arg)
{
	(void)arg;
	static const int64_t rel[] = { -1, 0, -WEFT_SEC, INT64_MIN };
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		weft_scope_t *s;
		CHECK_EQ(weft_move_on_after(&s, rel[i]), 0);
		CHECK(weft_scope_cancel_called(s));
		CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), 0);
		CHECK(weft_scope_cancelled_caught(s));
		weft_scope_destroy(s);
		CHECK_EQ(weft_fail_after(&s, rel[i]), 0);
		CHECK_EQ(weft_checkpoint(), -ECANCELED);
		CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
		weft_scope_destroy(s);
	}
	return 0;
}

WEFT_TEST_ROOT(cancel, negative_timeouts_give_an_expired_scope,
	negative_timeout_root, NULL)

/* {======================================================= the outer one wins */

/* Nested scopes cancelled innermost first: the cancellation belongs to
 * the outermost cancelled scope (Trio: "the outer one wins"), which alone
 * catches it, and weft_cancel_reason reports its reason. */
static int outer_wins_root(void *arg)
{
	(void)arg;
	weft_scope_t *a, *b, *c;
	CHECK_EQ(weft_move_on_after(&a, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_move_on_after(&b, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_move_on_after(&c, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_scope_cancel(c, "inner"), 0);
	CHECK_EQ(weft_scope_cancel(b, "middle"), 0);
	CHECK_EQ(weft_scope_cancel(a, "outer"), 0);
	CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED);
	weft_cancel_reason_t r;
	CHECK_EQ(weft_cancel_reason(&r), 0);
	CHECK_EQ(strcmp(r.text, "outer"), 0);
	CHECK_EQ(r.origin, WEFT_CANCEL_EXPLICIT);
	weft_cancel_reason_t ra;
	CHECK_EQ(weft_scope_reason(a, &ra), 0);
	CHECK_EQ(r.scope_id, ra.scope_id);
	CHECK_EQ(weft_scope_exit(c), 0);
	CHECK_EQ(weft_scope_exit(b), 0);
	CHECK_EQ(weft_scope_exit(a), 0);
	CHECK(!weft_scope_cancelled_caught(c));
	CHECK(!weft_scope_cancelled_caught(b));
	CHECK(weft_scope_cancelled_caught(a));
	CHECK(weft_scope_cancel_called(b) && weft_scope_cancel_called(c));
	weft_scope_destroy(c);
	weft_scope_destroy(b);
	weft_scope_destroy(a);
	return 0;
}

WEFT_TEST_ROOT(cancel, nested_cancels_belong_to_the_outermost_scope,
	outer_wins_root, NULL)

/* The inner scope's cancellation was seen first; an outer one comes
 * before the exit: the outer scope catches, and an inner fail_after does
 * not report a timeout it did not end with. */
static int outer_wins_late_root(void *arg)
{
	(void)arg;
	weft_scope_t *a, *b;
	CHECK_EQ(weft_move_on_after(&a, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_move_on_after(&b, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_scope_cancel(b, "inner"), 0);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_cancel(a, "outer"), 0);
	CHECK_EQ(weft_scope_exit(b), 0);
	CHECK(!weft_scope_cancelled_caught(b));
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(a), 0);
	CHECK(weft_scope_cancelled_caught(a));
	weft_scope_destroy(b);
	weft_scope_destroy(a);
	/* An expired fail_after inside a cancelled move_on. */
	CHECK_EQ(weft_move_on_after(&a, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_fail_after(&b, -1), 0);
	CHECK_EQ(weft_scope_cancel(a, "outer"), 0);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(b), 0);
	CHECK(!weft_scope_cancelled_caught(b));
	CHECK_EQ(weft_scope_exit(a), 0);
	CHECK(weft_scope_cancelled_caught(a));
	weft_scope_destroy(b);
	weft_scope_destroy(a);
	return 0;
}

WEFT_TEST_ROOT(cancel, an_outer_cancel_after_the_inner_takes_it_over,
	outer_wins_late_root, NULL)

struct outer_child {
	atomic_int inner_cancelled;
	atomic_int group_cancelled;
	int caught;
	int rc;
	char text[96];
};

static int outer_child(void *arg)
{
	struct outer_child *oc = arg;
	weft_scope_t *b, *shield;
	if (!CHECK_EQ(weft_move_on_after(&b, 10 * WEFT_SEC), 0))
		return 0;
	CHECK_EQ(weft_scope_cancel(b, "inner"), 0);
	atomic_store(&oc->inner_cancelled, 1);
	/* Wait, shielded from both cancellations, until the group's
	 * has happened. */
	if (CHECK_EQ(weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD),
		    0)) {
		int64_t give_up = weft_now() + 10 * WEFT_SEC;
		while (!atomic_load(&oc->group_cancelled) &&
			weft_now() < give_up)
			CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
		CHECK_EQ(weft_scope_exit(shield), 0);
		weft_scope_destroy(shield);
	}
	oc->rc = weft_checkpoint();
	weft_cancel_reason_t r;
	CHECK_EQ(weft_cancel_reason(&r), 0);
	memcpy(oc->text, r.text, sizeof oc->text);
	CHECK_EQ(weft_scope_exit(b), 0);
	oc->caught = weft_scope_cancelled_caught(b);
	weft_scope_destroy(b);
	return oc->rc;
}

/* Across tasks: a child's scope cancelled first, then its group: the
 * child's cancellation is the group's. */
static int outer_wins_group_root(void *arg)
{
	(void)arg;
	struct outer_child oc = { 0 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, outer_child, &oc), 0);
	int64_t give_up = weft_now() + 10 * WEFT_SEC;
	while (!atomic_load(&oc.inner_cancelled) && weft_now() < give_up)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_group_cancel(g, "group"), 0);
	atomic_store(&oc.group_cancelled, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(oc.rc, -ECANCELED);
	CHECK_EQ(strcmp(oc.text, "group"), 0);
	CHECK(!oc.caught);
	return 0;
}

WEFT_TEST_ROOT(cancel, a_group_cancel_takes_over_a_childs_inner_one,
	outer_wins_group_root, NULL)

/* }======================================================= */

static int fail_after_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_fail_after(&s, 2 * WEFT_MSEC), 0);
	CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
	weft_scope_destroy(s);
	/* Deadline passes but the body never observes it: success. */
	CHECK_EQ(weft_fail_after(&s, 1 * WEFT_MSEC), 0);
	int64_t until = weft_now() + 3 * WEFT_MSEC;
	while (weft_now() < until)
		; /* no checkpoint */
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	/* Explicit cancel of a fail_after scope is not a timeout. */
	CHECK_EQ(weft_fail_after(&s, 10 * WEFT_SEC), 0);
	weft_scope_cancel(s, NULL);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(cancel, fail_after_times_out_only_if_the_body_observed_it,
	fail_after_root, NULL)

static int fail_after_failure_child(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_fail_after(&s, 1 * WEFT_MSEC), 0);
	weft_sleep(WEFT_SEC);
	int rc = weft_scope_exit(s);
	weft_scope_destroy(s);
	return weft_fail(rc, "fetch took too long");
}

static int timeout_is_failure_root(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, fail_after_failure_child, arg), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	CHECK_EQ(weft_error_count(err), 1);
	CHECK_EQ(weft_error_code_at(err, 0), -ETIMEDOUT);
	weft_error_free(err);
	return 0;
}

WEFT_TEST_ROOT(cancel, timeout_is_a_failure_not_a_cancellation,
	timeout_is_failure_root, NULL)

/* }======================================================= */

/* {======================================================= shield */

static int shield_root(void *arg)
{
	(void)arg;
	weft_scope_t *outer, *shield;
	CHECK_EQ(weft_scope_open(&outer, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_open(&shield, weft_now() + 3 * WEFT_MSEC,
			 WEFT_SCOPE_SHIELD),
		0);
	weft_scope_cancel(outer, NULL);
	CHECK_EQ(weft_checkpoint(), 0); /* outer cancel ignored */
	CHECK_EQ(weft_effective_deadline(), weft_scope_deadline(shield));
	CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED); /* own deadline */
	CHECK_EQ(weft_scope_exit(shield), 0);
	CHECK(weft_scope_cancelled_caught(shield));
	weft_scope_destroy(shield);
	CHECK_EQ(weft_checkpoint(), -ECANCELED);
	weft_scope_exit(outer);
	weft_scope_destroy(outer);
	return 0;
}

WEFT_TEST_ROOT(cancel, shield_ignores_outer_cancel_but_honours_its_own,
	shield_root, NULL)

static int child_checks_not_cancelled(void *arg)
{
	(void)arg;
	CHECK_EQ(weft_checkpoint(), 0);
	return 0;
}

static int children_scopes_root(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_scope_t *local;
	CHECK_EQ(weft_scope_open(&local, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(local, NULL);
	/* Spawned from inside a cancelled local scope, but the child runs
	 * under the group's scope. */
	CHECK_EQ(weft_group_spawn(g, child_checks_not_cancelled, arg), 0);
	CHECK_EQ(weft_scope_exit(local), 0);
	weft_scope_destroy(local);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(cancel, children_run_under_the_group_scope_not_the_spawner,
	children_scopes_root, NULL)

/* }======================================================= */

/* {======================================================= reasons */

struct reasons {
	weft_cancel_reason_t seen;
};

static int record_reason(void *arg)
{
	struct reasons *r = arg;
	CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED);
	CHECK_EQ(weft_cancel_reason(&r->seen), 0);
	return -ECANCELED;
}

static int fail_now(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "boom");
}

static int reason_root(void *arg)
{
	struct reasons *r = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, record_reason, &r[0]), 0);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_group_cancel(g, "shutting down"), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);

	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, record_reason, &r[1]), 0);
	CHECK_EQ(weft_group_spawn(g, fail_now, NULL), 0);
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	weft_error_free(err);

	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, WEFT_MSEC), 0);
	CHECK_EQ(weft_sleep(10 * WEFT_SEC), -ECANCELED);
	CHECK_EQ(weft_cancel_reason(&r[2].seen), 0);
	weft_scope_exit(s);
	weft_scope_destroy(s);
	return 0;
}

static void test_cancel__every_cancellation_carries_a_reason(void **state)
{
	struct reasons r[3];
	memset(r, 0, sizeof r);
	weft_test_root(state, reason_root, r);
	assert_int_equal(r[0].seen.origin, WEFT_CANCEL_EXPLICIT);
	assert_string_equal(r[0].seen.text, "shutting down");
	assert_true(r[0].seen.task_id != 0);
	assert_true(r[0].seen.scope_id != 0);
	assert_int_equal(r[1].seen.origin, WEFT_CANCEL_GROUP_FAILURE);
	assert_int_equal(r[2].seen.origin, WEFT_CANCEL_DEADLINE);
}

/* }======================================================= */

/* {======================================================= cancelled before running */

struct first_run {
	atomic_int released;
};

static int release_then_checkpoint(void *arg)
{
	struct first_run *f = arg;
	/* Stands for freeing what the spawn argument owns. */
	atomic_fetch_add(&f->released, 1);
	return weft_checkpoint();
}

static int first_run_root(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_group_cancel(g, NULL);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(weft_group_spawn(g, release_then_checkpoint, arg), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_cancel__task_cancelled_before_first_run_runs_to_a_checkpoint(
	void **state)
{
	struct first_run f = { 0 };
	weft_test_root(state, first_run_root, &f);
	assert_int_equal(atomic_load(&f.released), 20);
}

/* }======================================================= */

/* {======================================================= cancel from anywhere */

struct remote {
	weft_scope_t *scope;
	atomic_int ready;
	atomic_long spins;
};

static void *cancel_from_plain_thread(void *arg)
{
	struct remote *r = arg;
	while (!atomic_load(&r->ready))
		sched_yield();
	for (int i = 0; i < 3; i++) /* idempotent */
		weft_scope_cancel(r->scope, "from a plain thread");
	return NULL;
}

static int sleeper_in_scope(void *arg)
{
	struct remote *r = arg;
	CHECK_EQ(weft_scope_open(&r->scope, WEFT_FOREVER, 0), 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, cancel_from_plain_thread, r), 0);
	atomic_store(&r->ready, 1);
	CHECK_EQ(weft_sleep(60 * WEFT_SEC), -ECANCELED);
	CHECK_EQ(weft_scope_exit(r->scope), 0);
	/* The plain thread may still be inside weft_scope_cancel. */
	pthread_join(th, NULL);
	weft_scope_destroy(r->scope);
	return 0;
}

WEFT_TEST_ROOT(cancel, cancel_from_a_plain_thread_wakes_a_parked_task,
	sleeper_in_scope, &(struct remote){ 0 })

static int busy_loop_with_checkpoints(void *arg)
{
	struct remote *r = arg;
	atomic_store(&r->ready, 1);
	for (;;) {
		atomic_fetch_add(&r->spins, 1);
		if (weft_checkpoint() == -ECANCELED)
			return -ECANCELED;
	}
}

static int cross_worker_root(void *arg)
{
	struct remote *r = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, busy_loop_with_checkpoints, r), 0);
	while (!atomic_load(&r->ready))
		CHECK_EQ(weft_yield(), 0);
	CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_cancel__a_running_task_sees_cancel_at_its_next_checkpoint(
	void **state)
{
	struct remote r = { 0 };
	weft_test_root(state, cross_worker_root, &r);
	assert_true(atomic_load(&r.spins) > 0);
}

static int deep_sleeper(void *arg)
{
	long depth = (long)(intptr_t)arg;
	if (depth == 0)
		return weft_sleep(60 * WEFT_SEC) == -ECANCELED
			? -ECANCELED
			: weft_fail(-EIO, "not woken");
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_group_spawn(g, deep_sleeper,
				 (void *)(intptr_t)(depth - 1)),
			0);
	int rc = weft_group_join(g, NULL);
	CHECK_EQ(rc, -ECANCELED);
	return rc;
}

static int subtree_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, 5 * WEFT_MSEC), 0);
	CHECK_EQ(deep_sleeper((void *)(intptr_t)4), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(cancel, deadline_cancels_a_whole_subtree_of_parked_tasks,
	subtree_root, NULL)

struct late {
	atomic_int running;
	atomic_int go;
	atomic_int saw_checkpoint;
	atomic_int saw_sleep;
};

/* Computes (no checkpoint) until told, then checkpoints and sleeps. */
static int compute_then_checkpoint(void *arg)
{
	struct late *l = arg;
	atomic_fetch_add(&l->running, 1);
	while (!atomic_load(&l->go))
		;
	if (weft_checkpoint_if_cancelled() == -ECANCELED)
		atomic_fetch_add(&l->saw_checkpoint, 1);
	if (weft_sleep(60 * WEFT_SEC) == -ECANCELED)
		atomic_fetch_add(&l->saw_sleep, 1);
	return -ECANCELED;
}

static int late_root(void *arg)
{
	struct late *l = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	int n = (int)weft_worker_count() - 1;
	for (int i = 0; i < n; i++)
		CHECK_EQ(weft_group_spawn(g, compute_then_checkpoint, l), 0);
	/* Every child is running, none has reached a checkpoint yet. */
	while (atomic_load(&l->running) < n)
		CHECK_EQ(weft_cancel_shielded_checkpoint(), 0);
	CHECK_EQ(weft_group_cancel(g, NULL), 0);
	atomic_store(&l->go, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_cancel__cancel_before_a_childs_first_checkpoint_is_seen_there(
	void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	if (workers < 2)
		skip();
	struct late l = { 0 };
	weft_test_root(state, late_root, &l);
	assert_int_equal(atomic_load(&l.saw_checkpoint), (int)workers - 1);
	assert_int_equal(atomic_load(&l.saw_sleep), (int)workers - 1);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_cancel__every_checkpoint_fails_until_the_scope_is_exited),
		cmocka_unit_test(test_cancel__checkpoint_yields_to_other_tasks),
		WEFT_TEST(test_cancel__cancel_shielded_checkpoint_never_fails),
		WEFT_TEST(
			test_cancel__scope_exit_consumes_only_its_own_cancellation),
		WEFT_TEST(
			test_cancel__cancelled_caught_only_when_a_checkpoint_observed_it),
		WEFT_TEST(
			test_cancel__misnested_exit_is_reported_and_changes_nothing),
		WEFT_TEST(
			test_cancel__scope_reached_by_an_outer_cancel_reports_parent),
		WEFT_TEST(
			test_cancel__group_failure_reaches_inner_scopes_as_parent),
#ifdef WEFT_DEBUG
		cmocka_unit_test(test_cancel__misnest_names_both_sites),
#endif
		WEFT_TEST(
			test_cancel__scope_cancelled_before_entry_fails_first_checkpoint),
		WEFT_TEST(test_cancel__deadlines_are_absolute_mutable_and_nest),
		WEFT_TEST(
			test_cancel__effective_deadline_is_past_inside_a_cancelled_scope),
		WEFT_TEST(
			test_cancel__a_past_deadline_cancels_at_once_entered_or_not),
		WEFT_TEST(test_cancel__negative_timeouts_give_an_expired_scope),
		WEFT_TEST(
			test_cancel__nested_cancels_belong_to_the_outermost_scope),
		WEFT_TEST(
			test_cancel__an_outer_cancel_after_the_inner_takes_it_over),
		WEFT_TEST(
			test_cancel__a_group_cancel_takes_over_a_childs_inner_one),
		WEFT_TEST(
			test_cancel__fail_after_times_out_only_if_the_body_observed_it),
		WEFT_TEST(test_cancel__timeout_is_a_failure_not_a_cancellation),
		WEFT_TEST(
			test_cancel__shield_ignores_outer_cancel_but_honours_its_own),
		WEFT_TEST(
			test_cancel__children_run_under_the_group_scope_not_the_spawner),
		WEFT_TEST(test_cancel__every_cancellation_carries_a_reason),
		WEFT_TEST(
			test_cancel__task_cancelled_before_first_run_runs_to_a_checkpoint),
		WEFT_TEST(
			test_cancel__cancel_from_a_plain_thread_wakes_a_parked_task),
		WEFT_TEST(
			test_cancel__a_running_task_sees_cancel_at_its_next_checkpoint),
		WEFT_TEST(
			test_cancel__deadline_cancels_a_whole_subtree_of_parked_tasks),
		WEFT_TEST(
			test_cancel__cancel_before_a_childs_first_checkpoint_is_seen_there),
	};
	return WEFT_RUN_TESTS(tests);
}
