/* Tests for signal watchers and two-phase shutdown (include/weft/signal.h,
 * runtime/signal.c, runtime/shutdown.c).
 *
 * Signals go to this process only (kill(getpid(), ...)): ctest runs test
 * binaries in parallel.  weft's threads block signals, so the kernel
 * hands them to the test's main thread (inside weft_runtime_run), whose
 * libuv handler forwards them to the I/O thread.
 *
 * The kernel merges a signal sent again before its handler ran, so a test
 * that needs two deliveries of one signal waits, between the two kills,
 * until a second watcher ("probe") of the same signal has received the
 * first: every watcher sees every delivery.  A short sleep before a
 * cancel or close makes the parked path likely; no assertion depends on
 * time (ctest's timeout catches a hang).
 *
 * ThreadSanitizer runs a signal handler only when the receiving thread
 * is inside an intercepted call; weft_runtime_run waits on a raw futex
 * system call, which it does not intercept, so under TSan the handler of
 * a signal sent to the main thread would wait until the run ends.  The
 * TSan build therefore blocks the test's signals in the main thread and
 * lets a "sink" thread, sleeping in nanosleep, take them (any thread that
 * does not block a signal may run its process-wide handler).
 *
 * Every concurrent test runs at 1, 2 and 4 workers, leak-checked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>
#include "weft/signal.h"

#include "support.h"

#if defined(__SANITIZE_THREAD__)
static const int test_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 };

static void *sink_thread(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof test_sigs / sizeof test_sigs[0]; i++)
		sigaddset(&set, test_sigs[i]);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	struct timespec ms = { 0, 1000000 };
	for (;;)
		nanosleep(&ms, NULL);
	return NULL;
}

static void route_signals_to_sink(void)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof test_sigs / sizeof test_sigs[0]; i++)
		sigaddset(&set, test_sigs[i]);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, sink_thread, NULL), 0);
	pthread_detach(th);
}
#else
static void route_signals_to_sink(void)
{
}
#endif

static void send_sig(int sig)
{
	CHECK_EQ(kill(getpid(), sig), 0);
}

/* Waits on w under a scope with a deadline of ns; the wait's result. */
static int wait_for_ns(weft_signals_t *w, int64_t ns)
{
	weft_scope_t *s;
	if (!CHECK_EQ(weft_move_on_after(&s, ns), 0))
		return -1;
	int rc = weft_signal_wait(w);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	return rc;
}

/* {======================================================= watchers */

static int receive_root(void *arg)
{
	(void)arg;
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };
	weft_signals_t *w;
	CHECK_EQ(weft_signal_open(&w, sigs, 4), 0);
	for (int i = 0; i < 4; i++) {
		send_sig(sigs[i]);
		CHECK_EQ(weft_signal_wait(w), sigs[i]);
	}
	CHECK_EQ(weft_signal_close(w), 0);
	return 0;
}

/* SIGINT, SIGTERM, SIGHUP and SIGUSR1 sent to the process reach a task. */
WEFT_TEST_ROOT(signal, a_task_receives_each_signal, receive_root, NULL)

static int counted_root(void *arg)
{
	(void)arg;
	static const int both[] = { SIGUSR1, SIGUSR2 };
	static const int one[] = { SIGUSR1 };
	weft_signals_t *w, *probe;
	CHECK_EQ(weft_signal_open(&w, both, 2), 0);
	CHECK_EQ(weft_signal_open(&probe, one, 1), 0);
	/* Two SIGUSR1 (each seen by the probe before the next is sent, so
	 * the kernel cannot merge them) and a SIGUSR2, nobody waiting on w. */
	send_sig(SIGUSR1);
	CHECK_EQ(weft_signal_wait(probe), SIGUSR1);
	send_sig(SIGUSR1);
	CHECK_EQ(weft_signal_wait(probe), SIGUSR1);
	send_sig(SIGUSR2);
	int n1 = 0, n2 = 0;
	for (int i = 0; i < 3; i++) {
		int rc = weft_signal_wait(w);
		n1 += rc == SIGUSR1;
		n2 += rc == SIGUSR2;
	}
	CHECK_EQ(n1, 2);
	CHECK_EQ(n2, 1);
	/* Nothing more is queued. */
	CHECK_EQ(wait_for_ns(w, 20 * WEFT_MSEC), -ECANCELED);
	CHECK_EQ(weft_signal_close(w), 0);
	CHECK_EQ(weft_signal_close(probe), 0);
	return 0;
}

/* Deliveries while nobody waits are counted and queued, not lost. */
WEFT_TEST_ROOT(signal, deliveries_before_a_wait_are_all_received, counted_root,
	NULL)

struct waiter {
	weft_signals_t *w;
	weft_scope_t *s; /* entered by the waiter, cancelled by root */
	atomic_int rc;
};

static int waiter_task(void *arg)
{
	struct waiter *x = arg;
	CHECK_EQ(weft_scope_enter(x->s), 0);
	int rc = weft_signal_wait(x->w);
	atomic_store(&x->rc, rc);
	CHECK_EQ(weft_scope_exit(x->s), 0);
	return 0;
}

static int cancel_root(void *arg)
{
	(void)arg;
	static const int one[] = { SIGUSR1 };
	weft_signals_t *w, *probe;
	CHECK_EQ(weft_signal_open(&w, one, 1), 0);
	CHECK_EQ(weft_signal_open(&probe, one, 1), 0);
	/* A parked waiter is cancelled: -ECANCELED; the next delivery is
	 * queued for the next wait, not lost to the cancelled one. */
	struct waiter x = { .w = w };
	atomic_init(&x.rc, 0);
	CHECK_EQ(weft_scope_create(&x.s, WEFT_FOREVER, 0), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, waiter_task, &x), 0);
	weft_sleep(20 * WEFT_MSEC);
	CHECK_EQ(weft_scope_cancel(x.s, "test"), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_scope_destroy(x.s);
	CHECK_EQ(atomic_load(&x.rc), -ECANCELED);
	send_sig(SIGUSR1);
	CHECK_EQ(weft_signal_wait(probe), SIGUSR1);
	CHECK_EQ(weft_signal_wait(w), SIGUSR1);

	/* A cancellation racing with a delivery: the waiter either took it
	 * or took nothing, and then the next wait gets it. */
	int taken = 0, cancelled = 0;
	for (int i = 0; i < 20; i++) {
		atomic_store(&x.rc, 0);
		CHECK_EQ(weft_scope_create(&x.s, WEFT_FOREVER, 0), 0);
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, waiter_task, &x), 0);
		if (i % 2)
			weft_yield();
		send_sig(SIGUSR1);
		CHECK_EQ(weft_signal_wait(probe), SIGUSR1);
		CHECK_EQ(weft_scope_cancel(x.s, "race"), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
		weft_scope_destroy(x.s);
		int rc = atomic_load(&x.rc);
		if (rc == SIGUSR1) {
			taken++;
		} else {
			CHECK_EQ(rc, -ECANCELED);
			cancelled++;
			CHECK_EQ(weft_signal_wait(w), SIGUSR1);
		}
	}
	CHECK_EQ(taken + cancelled, 20);
	CHECK_EQ(wait_for_ns(w, 20 * WEFT_MSEC), -ECANCELED);
	CHECK_EQ(weft_signal_close(w), 0);
	CHECK_EQ(weft_signal_close(probe), 0);
	return 0;
}

/* A cancelled wait consumed nothing (docs/semantics.md rule 42). */
WEFT_TEST_ROOT(signal, cancelled_wait_consumes_nothing, cancel_root, NULL)

static int deadline_root(void *arg)
{
	(void)arg;
	static const int one[] = { SIGUSR2 };
	weft_signals_t *w;
	CHECK_EQ(weft_signal_open(&w, one, 1), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_fail_after(&s, 20 * WEFT_MSEC), 0);
	CHECK_EQ(weft_signal_wait(w), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
	weft_scope_destroy(s);
	/* Cancelled on entry: a checkpoint, nothing taken. */
	send_sig(SIGUSR2);
	weft_scope_t *c;
	CHECK_EQ(weft_scope_open(&c, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(c, "before");
	CHECK_EQ(weft_signal_wait(w), -ECANCELED);
	CHECK_EQ(weft_scope_exit(c), 0);
	weft_scope_destroy(c);
	CHECK_EQ(weft_signal_wait(w), SIGUSR2);
	CHECK_EQ(weft_signal_close(w), 0);
	return 0;
}

/* An enclosing deadline ends a wait (-ETIMEDOUT from fail_after). */
WEFT_TEST_ROOT(signal, deadline_ends_a_wait, deadline_root, NULL)

static int close_root(void *arg)
{
	(void)arg;
	static const int one[] = { SIGHUP };
	struct waiter x[3];
	weft_signals_t *w;
	CHECK_EQ(weft_signal_open(&w, one, 1), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 3; i++) {
		x[i].w = w;
		atomic_init(&x[i].rc, 0);
		CHECK_EQ(weft_scope_create(&x[i].s, WEFT_FOREVER, 0), 0);
		CHECK_EQ(weft_group_spawn(g, waiter_task, &x[i]), 0);
	}
	weft_sleep(20 * WEFT_MSEC);
	CHECK_EQ(weft_signal_close(w), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(atomic_load(&x[i].rc), WEFT_ECLOSED);
		weft_scope_destroy(x[i].s);
	}
	return 0;
}

/* Closing a watcher wakes every task parked on it with WEFT_ECLOSED. */
WEFT_TEST_ROOT(signal, close_wakes_parked_waiters, close_root, NULL)

static int invalid_root(void *arg)
{
	(void)arg;
	weft_signals_t *w = NULL;
	int bad[] = { 0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL,
		NSIG, 1000, 32 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_EQ(weft_signal_open(&w, &bad[i], 1), -EINVAL);
	int dup[] = { SIGUSR1, SIGHUP, SIGUSR1 };
	CHECK_EQ(weft_signal_open(&w, dup, 3), -EINVAL);
	CHECK_EQ(weft_signal_open(&w, dup, 0), -EINVAL);
	CHECK_EQ(weft_signal_open(&w, NULL, 1), -EINVAL);
	CHECK_EQ(weft_signal_open(NULL, dup, 1), -EINVAL);
	CHECK(w == NULL);
	CHECK_EQ(weft_signal_wait(NULL), -EINVAL);
	CHECK_EQ(weft_signal_close(NULL), -EINVAL);
	weft_shutdown_t *sd = NULL;
	CHECK_EQ(weft_shutdown_open(&sd, NULL, 0), -EINVAL);
	CHECK_EQ(weft_shutdown_open(NULL, NULL, 0), -EINVAL);
	CHECK_EQ(weft_shutdown_trigger(NULL), -EINVAL);
	CHECK_EQ(weft_shutdown_close(NULL), -EINVAL);
	CHECK(weft_shutdown_stop_event(NULL) == NULL);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_shutdown_open(&sd, g, -1), -EINVAL);
	CHECK(sd == NULL);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* A cancelled caller watches nothing. */
	weft_scope_t *c;
	CHECK_EQ(weft_scope_open(&c, WEFT_FOREVER, 0), 0);
	weft_scope_cancel(c, "before");
	int ok[] = { SIGUSR1 };
	CHECK_EQ(weft_signal_open(&w, ok, 1), -ECANCELED);
	CHECK_EQ(weft_scope_exit(c), 0);
	weft_scope_destroy(c);
	return 0;
}

/* Signals that cannot or must not be caught, and bad arguments. */
static void test_signal__invalid_arguments_fail_with_einval(void **state)
{
	weft_test_root(state, invalid_root, NULL);
	/* Outside a task. */
	int ok[] = { SIGUSR1 };
	weft_signals_t *w;
	assert_int_equal(weft_signal_open(&w, ok, 1), WEFT_ENOTFIBER);
}

static atomic_int app_handler_calls;

static void app_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&app_handler_calls, 1);
}

static int disposition_root(void *arg)
{
	int close_it = *(int *)arg;
	static const int sigs[] = { SIGUSR1, SIGHUP };
	weft_signals_t *a, *b;
	CHECK_EQ(weft_signal_open(&a, sigs, 2), 0);
	CHECK_EQ(weft_signal_open(&b, sigs, 1), 0);
	send_sig(SIGUSR1);
	CHECK_EQ(weft_signal_wait(b), SIGUSR1);
	CHECK_EQ(weft_signal_wait(a), SIGUSR1);
	CHECK_EQ(weft_signal_close(b), 0);
	/* a still watches SIGUSR1: libuv's handler stays. */
	send_sig(SIGUSR1);
	CHECK_EQ(weft_signal_wait(a), SIGUSR1);
	if (close_it)
		CHECK_EQ(weft_signal_close(a), 0);
	return 0;
}

/* While a watcher is open the application's handler does not run; after
 * the close (or the runtime's destroy, for a watcher left open) the
 * previous dispositions are back, and nothing is left behind. */
static void test_signal__previous_disposition_comes_back(void **state)
{
	struct sigaction act, old_usr1, old_hup, cur;
	memset(&act, 0, sizeof act);
	act.sa_handler = app_handler;
	sigemptyset(&act.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &act, &old_usr1), 0);
	act.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGHUP, &act, &old_hup), 0);
	int fds = -1;
	for (int close_it = 1; close_it >= 0; close_it--) {
		atomic_store(&app_handler_calls, 0);
		weft_test_root(state, disposition_root, &close_it);
		assert_int_equal(atomic_load(&app_handler_calls), 0);
		assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
		assert_ptr_equal(cur.sa_handler, app_handler);
		assert_int_equal(sigaction(SIGHUP, NULL, &cur), 0);
		assert_ptr_equal(cur.sa_handler, SIG_IGN);
		assert_int_equal(kill(getpid(), SIGUSR1), 0);
		/* Delivered at once to the main thread; a moment later to
		 * the sink thread (TSan). */
		struct timespec ms = { 0, 1000000 };
		for (int i = 0;
			i < 10000 && atomic_load(&app_handler_calls) == 0; i++)
			nanosleep(&ms, NULL);
		assert_int_equal(atomic_load(&app_handler_calls), 1);
		/* libuv keeps one process-wide pipe from its first signal
		 * handle on: count from after the first run. */
		if (fds < 0)
			fds = weft_test_count_fds();
		else
			assert_int_equal(weft_test_count_fds(), fds);
	}
	assert_int_equal(sigaction(SIGUSR1, &old_usr1, NULL), 0);
	assert_int_equal(sigaction(SIGHUP, &old_hup, NULL), 0);
}

/* }======================================================= */

/* {======================================================= shutdown */

struct service {
	weft_shutdown_t *sd;
	int64_t work_ns;      /* each handler's work after the stop */
	atomic_int finished;  /* handlers whose work completed */
	atomic_int cancelled; /* handlers whose work was cancelled */
	char reason[96];      /* a cancelled handler's reason text */
	int origin;	      /* and its origin */
	pthread_mutex_t lock;
};

static int handler_task(void *arg)
{
	struct service *sv = arg;
	/* Serve until the stop, then finish the work in hand. */
	int rc = weft_event_wait(weft_shutdown_stop_event(sv->sd));
	if (rc == 0)
		rc = weft_sleep(sv->work_ns);
	if (rc == 0) {
		atomic_fetch_add(&sv->finished, 1);
	} else {
		CHECK_EQ(rc, -ECANCELED);
		weft_cancel_reason_t r;
		CHECK_EQ(weft_cancel_reason(&r), 0);
		pthread_mutex_lock(&sv->lock);
		memcpy(sv->reason, r.text, sizeof sv->reason);
		sv->origin = (int)r.origin;
		pthread_mutex_unlock(&sv->lock);
		atomic_fetch_add(&sv->cancelled, 1);
	}
	return 0;
}

enum how {
	BY_SIGNAL,
	BY_SECOND_SIGNAL,
	BY_TRIGGER,
	BY_TRIGGER_THEN_SIGNAL,
	NOT_AT_ALL
};

struct shutdown_case {
	int64_t grace_ns;
	int64_t work_ns;
	enum how how;
	int sig;
	int finished, cancelled; /* expected */
	const char *reason;	 /* expected, when cancelled */
};

static int shutdown_root(void *arg)
{
	const struct shutdown_case *c = arg;
	struct service sv = { .work_ns = c->work_ns };
	pthread_mutex_init(&sv.lock, NULL);
	atomic_init(&sv.finished, 0);
	atomic_init(&sv.cancelled, 0);
	weft_group_t *g;
	/* A group opened and joined first: the service's group reuses its
	 * record, so g carries a generation tag in its top bits, which the
	 * I/O thread's phase two once dereferenced as an address. */
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_shutdown_open(&sv.sd, g, c->grace_ns), 0);
	weft_event_t *stop = weft_shutdown_stop_event(sv.sd);
	CHECK(stop != NULL);
	CHECK(!weft_event_is_set(stop));
	for (int i = 0; i < 4; i++)
		CHECK_EQ(weft_group_spawn(g, handler_task, &sv), 0);
	switch (c->how) {
	case BY_SIGNAL: send_sig(c->sig); break;
	case BY_SECOND_SIGNAL:
		send_sig(c->sig);
		CHECK_EQ(weft_event_wait(stop), 0);
		/* The first was handled: this one is not merged with it. */
		send_sig(c->sig == SIGINT ? SIGTERM : SIGINT);
		break;
	case BY_TRIGGER:
		CHECK_EQ(weft_shutdown_trigger(sv.sd), 0);
		CHECK(weft_event_is_set(stop));
		CHECK_EQ(weft_shutdown_trigger(sv.sd), 0); /* no-op */
		break;
	case BY_TRIGGER_THEN_SIGNAL:
		/* No wait between the two: the trigger's node may still be
		 * queued when the signal arrives. */
		CHECK_EQ(weft_shutdown_trigger(sv.sd), 0);
		send_sig(c->sig);
		break;
	case NOT_AT_ALL: break;
	}
	if (c->how != NOT_AT_ALL) {
		/* The serve loop: it stops accepting.  The owner's body runs
		 * in g's scope: once g is cancelled, the wait (a checkpoint)
		 * returns -ECANCELED. */
		int rc = weft_event_wait(stop);
		CHECK(rc == 0 || rc == -ECANCELED);
		CHECK(weft_event_is_set(stop));
		CHECK_EQ(weft_group_join(g, NULL), 0);
		/* The stop event has no waiter left. */
		CHECK_EQ(weft_shutdown_close(sv.sd), 0);
	} else {
		/* Nothing happens; a close while a handler waits on the event
		 * is refused, then the service ends by itself. */
		while (weft_event_waiting(stop) < 4)
			weft_sleep(WEFT_MSEC);
		weft_sleep(20 * WEFT_MSEC);
		CHECK(!weft_event_is_set(stop));
		CHECK_EQ(weft_shutdown_close(sv.sd), -EBUSY);
		weft_group_cancel(g, "service over");
		CHECK_EQ(weft_group_join(g, NULL), 0);
		CHECK_EQ(weft_shutdown_close(sv.sd), 0);
	}
	CHECK_EQ(atomic_load(&sv.finished), c->finished);
	CHECK_EQ(atomic_load(&sv.cancelled), c->cancelled);
	if (c->reason) {
		CHECK(strcmp(sv.reason, c->reason) == 0);
		CHECK_EQ(sv.origin,
			c->how == NOT_AT_ALL ? WEFT_CANCEL_EXPLICIT
					     : WEFT_CANCEL_SIGNAL);
	}
	pthread_mutex_destroy(&sv.lock);
	return 0;
}

static void run_case(void **state, const struct shutdown_case *c)
{
	weft_test_root(state, shutdown_root, (void *)c);
}

/* First signal: the stop event is set, and handlers that finish within
 * the grace period end normally (nothing is cancelled, and the join does
 * not wait for the grace period: it is an hour). */
static void test_shutdown__handlers_finishing_within_grace_end_normally(
	void **state)
{
	struct shutdown_case c = { .grace_ns = 3600 * WEFT_SEC,
		.work_ns = 10 * WEFT_MSEC,
		.how = BY_SIGNAL,
		.sig = SIGTERM,
		.finished = 4 };
	run_case(state, &c);
	c.sig = SIGINT;
	run_case(state, &c);
}

/* The grace period ends: the group is cancelled (not a failure). */
static void test_shutdown__grace_expiry_cancels_the_group(void **state)
{
	struct shutdown_case c = { .grace_ns = 30 * WEFT_MSEC,
		.work_ns = 3600 * WEFT_SEC,
		.how = BY_SIGNAL,
		.sig = SIGINT,
		.cancelled = 4,
		.reason = "shutdown (SIGINT): grace period over" };
	run_case(state, &c);
	c.grace_ns = 0;
	c.reason = "shutdown (SIGINT): no grace period";
	run_case(state, &c);
}

/* A second signal cancels at once (the grace period is endless). */
static void test_shutdown__second_signal_cancels_at_once(void **state)
{
	struct shutdown_case c = { .grace_ns = WEFT_FOREVER,
		.work_ns = 3600 * WEFT_SEC,
		.how = BY_SECOND_SIGNAL,
		.sig = SIGTERM,
		.cancelled = 4,
		.reason = "shutdown (SIGTERM): second signal" };
	run_case(state, &c);
}

/* weft_shutdown_trigger is phase one without a signal. */
static void test_shutdown__trigger_starts_phase_one(void **state)
{
	struct shutdown_case c = { .grace_ns = 3600 * WEFT_SEC,
		.work_ns = WEFT_MSEC,
		.how = BY_TRIGGER,
		.finished = 4 };
	run_case(state, &c);
	struct shutdown_case d = {
		.grace_ns = 20 * WEFT_MSEC,
		.work_ns = 3600 * WEFT_SEC,
		.how = BY_TRIGGER,
		.cancelled = 4,
		.reason = "shutdown (weft_shutdown_trigger): grace period over"
	};
	run_case(state, &d);
}

/* A signal sent after weft_shutdown_trigger returned is the second one,
 * however the I/O thread orders the two. */
static void test_shutdown__signal_after_trigger_is_the_second(void **state)
{
	struct shutdown_case c = { .grace_ns = WEFT_FOREVER,
		.work_ns = 3600 * WEFT_SEC,
		.how = BY_TRIGGER_THEN_SIGNAL,
		.sig = SIGTERM,
		.cancelled = 4,
		.reason = "shutdown (weft_shutdown_trigger): second signal" };
	for (int i = 0; i < 20; i++)
		run_case(state, &c);
}

/* Without a signal nothing happens; close refuses while the stop event
 * has waiters. */
static void test_shutdown__no_signal_no_shutdown(void **state)
{
	struct shutdown_case c = { .grace_ns = 0,
		.how = NOT_AT_ALL,
		.cancelled = 4,
		.reason = "service over" };
	run_case(state, &c);
}

static void *trigger_thread(void *arg)
{
	weft_shutdown_trigger(arg);
	return NULL;
}

static int plain_trigger_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	weft_shutdown_t *sd;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_shutdown_open(&sd, g, 3600 * WEFT_SEC), 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, trigger_thread, sd), 0);
	CHECK_EQ(weft_event_wait(weft_shutdown_stop_event(sd)), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	pthread_join(th, NULL);
	CHECK_EQ(weft_shutdown_close(sd), 0);
	return 0;
}

/* A plain thread may trigger the shutdown. */
WEFT_TEST_ROOT(shutdown, trigger_from_a_plain_thread, plain_trigger_root, NULL)

static int leftover_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	weft_shutdown_t *sd;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_shutdown_open(&sd, g, 10 * WEFT_MSEC), 0);
	send_sig(SIGTERM);
	CHECK_EQ(weft_event_wait(weft_shutdown_stop_event(sd)), 0);
	/* Joined before the grace timer fires; closed right after, with
	 * the timer still running. */
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_shutdown_close(sd), 0);
	/* A plain watcher left open for the destroy. */
	static const int one[] = { SIGINT };
	weft_signals_t *w;
	CHECK_EQ(weft_signal_open(&w, one, 1), 0);
	return 0;
}

/* The runtime's destroy leaves no handle, fd, byte or disposition
 * behind. */
static void test_shutdown__runtime_destroy_leaves_nothing(void **state)
{
	/* What the process had (a shell's background job has SIGINT
	 * ignored, for instance). */
	struct sigaction cur, int0, term0;
	assert_int_equal(sigaction(SIGINT, NULL, &int0), 0);
	assert_int_equal(sigaction(SIGTERM, NULL, &term0), 0);
	int fds = -1;
	for (int i = 0; i < 2; i++) {
		weft_test_root(state, leftover_root, NULL);
		assert_int_equal(sigaction(SIGINT, NULL, &cur), 0);
		assert_ptr_equal(cur.sa_handler, int0.sa_handler);
		assert_int_equal(sigaction(SIGTERM, NULL, &cur), 0);
		assert_ptr_equal(cur.sa_handler, term0.sa_handler);
		/* After libuv's process-wide pipe exists. */
		if (fds < 0)
			fds = weft_test_count_fds();
		else
			assert_int_equal(weft_test_count_fds(), fds);
	}
}

/* }======================================================= */

int main(void)
{
	route_signals_to_sink();
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_signal__a_task_receives_each_signal),
		WEFT_TEST(
			test_signal__deliveries_before_a_wait_are_all_received),
		WEFT_TEST(test_signal__cancelled_wait_consumes_nothing),
		WEFT_TEST(test_signal__deadline_ends_a_wait),
		WEFT_TEST(test_signal__close_wakes_parked_waiters),
		WEFT_TEST(test_signal__invalid_arguments_fail_with_einval),
		WEFT_TEST(test_signal__previous_disposition_comes_back),
		WEFT_TEST(
			test_shutdown__handlers_finishing_within_grace_end_normally),
		WEFT_TEST(test_shutdown__grace_expiry_cancels_the_group),
		WEFT_TEST(test_shutdown__second_signal_cancels_at_once),
		WEFT_TEST(test_shutdown__trigger_starts_phase_one),
		WEFT_TEST(test_shutdown__signal_after_trigger_is_the_second),
		WEFT_TEST(test_shutdown__no_signal_no_shutdown),
		WEFT_TEST(test_shutdown__trigger_from_a_plain_thread),
		WEFT_TEST(test_shutdown__runtime_destroy_leaves_nothing),
	};
	return WEFT_RUN_TESTS(tests);
}
