/* Tests for the I/O operation protocol (runtime/ioop.c): a fiber parks on
 * a request that the I/O thread runs, and a cancellation stops it.
 *
 * The operation under test is a libuv timer embedded in the fiber's
 * frame: `start` starts it, its callback closes the handle, and the close
 * callback completes the operation (so the frame must outlive the
 * handle: a protocol bug shows up as a use-after-free under ASan).
 * `cancel` stops the timer and closes the handle early, completing with
 * -ECANCELED; a timer that fired first completes with 0 (the real result
 * wins), and then `fired` must be set: "-ECANCELED => it did not happen".
 *
 * Every concurrent test runs at 1, 2 and 4 workers, leak-checked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include <weft.h>

#include "base/common.h"
#include "io/io.h"
#include "io/ioop.h"
#include "support.h"
#include "core/task.h"

struct timer_op {
	struct weft__ioop op;
	uv_timer_t timer;
	uint64_t ms;
	int result; /* what the close callback completes with */
	bool fired; /* I/O thread; read by the fiber after the op */
};

static atomic_int started_ops;

static void timer_op_closed(uv_handle_t *h)
{
	struct timer_op *t = h->data;
	weft__ioop_complete(&t->op, t->result);
}

static void timer_op_fired(uv_timer_t *h)
{
	struct timer_op *t = h->data;
	t->fired = true;
	t->result = 0;
	uv_close((uv_handle_t *)h, timer_op_closed);
}

static void timer_op_start(weft__io_t *io, struct weft__ioop *op)
{
	struct timer_op *t = WEFT__CONTAINER_OF(op, struct timer_op, op);
	atomic_fetch_add_explicit(&started_ops, 1, memory_order_relaxed);
	uv_timer_init(&io->loop, &t->timer);
	t->timer.data = t;
	uv_timer_start(&t->timer, timer_op_fired, t->ms, 0);
}

static void timer_op_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct timer_op *t = WEFT__CONTAINER_OF(op, struct timer_op, op);
	/* The timer may have fired and be closing: its close callback
	 * completes the op (a cancel function must expect to find its
	 * request finishing). */
	if (uv_is_closing((uv_handle_t *)&t->timer))
		return;
	uv_timer_stop(&t->timer);
	t->result = -ECANCELED;
	uv_close((uv_handle_t *)&t->timer, timer_op_closed);
}

/* Runs a timer op of `ms` milliseconds; cancellable unless told not. */
static int timer_op_run(uint64_t ms, bool cancellable, bool *fired)
{
	struct timer_op t = { .ms = ms };
	t.op.start = timer_op_start;
	t.op.cancel = cancellable ? timer_op_cancel : NULL;
	t.op.what = "test timer";
	int rc = weft__ioop_run(&t.op);
	if (fired)
		*fired = t.fired;
	return rc;
}

/* {======================================================= tests */

static int complete_child(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (int i = 0; i < 20; i++) {
		bool fired = false;
		CHECK_EQ(timer_op_run((seed + (unsigned)i) % 3, true, &fired),
			0);
		CHECK(fired);
	}
	return 0;
}

static int complete_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (uintptr_t i = 0; i < 50; i++)
		CHECK_EQ(weft_group_spawn(g, complete_child, (void *)i), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

WEFT_TEST_ROOT(ioop, many_operations_on_many_tasks_complete_with_their_results,
	complete_root, NULL)

static int cancel_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, 10 * WEFT_MSEC), 0);
	bool fired = true;
	CHECK_EQ(timer_op_run(3600 * 1000, true, &fired), -ECANCELED);
	CHECK(!fired);
	CHECK(weft_scope_cancel_called(s));
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(ioop, a_deadline_stops_an_operation_that_would_take_an_hour,
	cancel_root, NULL)

static int precancel_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_create(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_enter(s), 0);
	weft_scope_cancel(s, "test");
	int before = atomic_load(&started_ops);
	CHECK_EQ(timer_op_run(1, true, NULL), -ECANCELED);
	/* A checkpoint first: nothing was submitted. */
	CHECK_EQ(atomic_load(&started_ops), before);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return 0;
}

WEFT_TEST_ROOT(ioop,
	an_operation_started_in_a_cancelled_scope_is_never_submitted,
	precancel_root, NULL)

static int uncancellable_root(void *arg)
{
	(void)arg;
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, 1 * WEFT_MSEC), 0);
	bool fired = false;
	/* No cancel function: the op runs to completion. */
	CHECK_EQ(timer_op_run(20, false, &fired), 0);
	CHECK(fired);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return 0;
}

/* An operation that cannot be stopped is waited for, and its real result
 * is returned; the cancellation shows at the next checkpoint. */
WEFT_TEST_ROOT(ioop,
	an_uncancellable_operation_is_waited_for_and_keeps_its_result,
	uncancellable_root, NULL)

struct race {
	weft_scope_t *scope;
	atomic_int entered;
	atomic_int canceller_done; /* the scope must outlive the canceller */
	unsigned seed;
};

static int race_victim(void *arg)
{
	struct race *r = arg;
	weft_scope_t *s;
	CHECK_EQ(weft_scope_create(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_enter(s), 0);
	r->scope = s;
	atomic_store(&r->entered, 1);
	bool fired = false;
	int rc = timer_op_run(r->seed % 3, true, &fired);
	/* Exactly one of: it happened (0, fired) or it did not. */
	if (rc == 0)
		CHECK(fired);
	else
		CHECK(rc == -ECANCELED && !fired);
	atomic_store(&r->entered, 2);
	while (!atomic_load(&r->canceller_done))
		weft_yield();
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return 0;
}

static int race_canceller(void *arg)
{
	struct race *r = arg;
	while (atomic_load(&r->entered) == 0)
		weft_yield();
	weft_sleep((int64_t)(r->seed % 4) * WEFT_MSEC / 2);
	if (atomic_load(&r->entered) == 1)
		weft_scope_cancel(r->scope, "race");
	atomic_store(&r->canceller_done, 1);
	return 0;
}

static int race_root(void *arg)
{
	(void)arg;
	enum { N = 64 };
	struct race *rs = calloc(N, sizeof *rs);
	if (!CHECK(rs != NULL))
		return 0;
	unsigned seed = weft_test_seed();
	for (int round = 0; round < 4; round++) {
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < N; i++) {
			atomic_init(&rs[i].entered, 0);
			atomic_init(&rs[i].canceller_done, 0);
			rs[i].seed = seed + (unsigned)(round * N + i) * 7919u;
			CHECK_EQ(weft_group_spawn(g, race_victim, &rs[i]), 0);
			CHECK_EQ(weft_group_spawn(g, race_canceller, &rs[i]),
				0);
		}
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	free(rs);
	return 0;
}

/* Completion and cancellation race on other threads: every op ends in
 * exactly one of the two ways, and its frame outlives the I/O thread's
 * last access (ASan). */
WEFT_TEST_ROOT(ioop, completion_racing_cancellation_ends_each_operation_one_way,
	race_root, NULL)

static int plain_thread_rc;

/* From a plain thread: WEFT_ENOTFIBER, nothing submitted. */
static void test_ioop__a_plain_thread_gets_enotfiber_and_submits_nothing(
	void **state)
{
	(void)state;
	plain_thread_rc = timer_op_run(1, true, NULL);
	assert_int_equal(plain_thread_rc, WEFT_ENOTFIBER);
}

/* libuv's codes become weft's. */
static void test_ioop__libuv_error_codes_become_weft_codes(void **state)
{
	(void)state;
	assert_int_equal(weft__io_uverr(UV_ECONNREFUSED), -ECONNREFUSED);
	assert_int_equal(weft__io_uverr(UV_EOF), WEFT_EEND);
	assert_int_equal(weft__io_uverr(UV_EAI_NONAME), WEFT_ENOTFOUND);
	assert_int_equal(weft__io_uverr(UV_EAI_AGAIN), WEFT_EDNS);
	assert_int_equal(weft__io_uverr(UV_EAI_ADDRFAMILY), WEFT_ENOTFOUND);
	assert_int_equal(weft__io_uverr(UV_EAI_SERVICE), WEFT_ENOTFOUND);
	assert_int_equal(weft__io_uverr(UV_EAI_BADFLAGS), -EINVAL);
	assert_int_equal(weft__io_uverr(UV_ECANCELED), -ECANCELED);
	assert_int_equal(weft__io_uverr(UV_EMFILE), -EMFILE);
}

/* }======================================================= */

/* {======================================================= reclaim */

/* weft__io_reclaim frees nothing while a fiber that was running when the
 * object died still runs without having switched, and frees it once
 * that fiber switched.  Two workers: the "caller" spins on one of them
 * (no switch: like a call between its entry and its reference) while
 * the root, on the other, hands the object to the reclaimer. */
struct reclaimed {
	struct weft__reclaim r;
	atomic_int freed;
	atomic_int inside, go;
};

static void reclaimed_free(struct weft__reclaim *r)
{
	struct reclaimed *o = WEFT__CONTAINER_OF(r, struct reclaimed, r);
	atomic_store(&o->freed, 1);
}

static int reclaim_spinner(void *arg)
{
	struct reclaimed *o = arg;
	atomic_store(&o->inside, 1);
	while (!atomic_load(&o->go))
		; /* no switch: this worker stays in this fiber */
	CHECK_EQ(atomic_load(&o->freed), 0);
	return 0;
}

static int reclaim_root(void *arg)
{
	(void)arg;
	struct reclaimed o = { 0 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, reclaim_spinner, &o), 0);
	/* The spinner starts on the other worker (stolen) or, if this
	 * worker runs it first, this root waits on the other worker. */
	while (!atomic_load(&o.inside))
		CHECK_EQ(weft_sleep(WEFT_MSEC / 10), 0);
	weft__io_reclaim(weft__task_current()->rt, &o.r, reclaimed_free);
	/* The reclaimer polls every millisecond: give it 20 chances. */
	CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
	CHECK_EQ(atomic_load(&o.freed), 0);
	atomic_store(&o.go, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 5000 && !atomic_load(&o.freed); i++)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(atomic_load(&o.freed), 1);
	return 0;
}

WEFT_TEST_ROOT(ioop, reclaim_waits_until_a_running_fiber_has_switched,
	reclaim_root, NULL)

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_ioop__many_operations_on_many_tasks_complete_with_their_results),
		WEFT_TEST(
			test_ioop__a_deadline_stops_an_operation_that_would_take_an_hour),
		WEFT_TEST(
			test_ioop__an_operation_started_in_a_cancelled_scope_is_never_submitted),
		WEFT_TEST(
			test_ioop__an_uncancellable_operation_is_waited_for_and_keeps_its_result),
		WEFT_TEST(
			test_ioop__completion_racing_cancellation_ends_each_operation_one_way),
		cmocka_unit_test(
			test_ioop__a_plain_thread_gets_enotfiber_and_submits_nothing),
		cmocka_unit_test(
			test_ioop__libuv_error_codes_become_weft_codes),
		WEFT_TEST_AT(
			test_ioop__reclaim_waits_until_a_running_fiber_has_switched,
			2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
