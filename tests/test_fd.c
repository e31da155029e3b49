/* Tests for foreign descriptors (include/weft/fd.h, runtime/io/fdwait.c):
 * pipes and socket pairs the test owns, waited on by tasks. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#include "support.h"

/* A non-blocking pipe: p[0] reads, p[1] writes. */
static void fd_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void fd_close2(int p[2])
{
	close(p[0]);
	close(p[1]);
}

/* {======================================================= readable */

/* Writes one byte into *arg once every other task has parked. */
static int write_when_blocked(void *arg)
{
	CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
	CHECK_EQ(write(*(int *)arg, "x", 1), 1);
	return 0;
}

static int readable_root(void *arg)
{
	(void)arg;
	int p[2];
	fd_pipe(p);
	weft_fd_t *f;
	CHECK_EQ(weft_fd_register(p[0], &f), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, write_when_blocked, &p[1]), 0);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_READABLE), WEFT_FD_READABLE);
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_fd_unregister(f), 0);
	fd_close2(p);
	return 0;
}
WEFT_TEST_ROOT(fd, wait_parks_until_readable, readable_root, NULL)

/* Data the owner left unread keeps the descriptor ready: a wait returns
 * at once each time (level-triggered), until the last byte is read. */
static int level_root(void *arg)
{
	(void)arg;
	int p[2];
	fd_pipe(p);
	weft_fd_t *f;
	CHECK_EQ(weft_fd_register(p[0], &f), 0);
	CHECK_EQ(write(p[1], "abc", 3), 3);
	char c;
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(weft_fd_wait(f, WEFT_FD_READABLE), WEFT_FD_READABLE);
		CHECK_EQ(read(p[0], &c, 1), 1);
		CHECK_EQ(c, "abc"[i]);
	}
	/* Empty now: the wait parks, and the deadline ends it. */
	weft_scope_t *s;
	CHECK_EQ(weft_fail_after(&s, 20 * WEFT_MSEC), 0);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_READABLE), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
	weft_scope_destroy(s);
	CHECK_EQ(weft_fd_unregister(f), 0);
	fd_close2(p);
	return 0;
}
WEFT_TEST_ROOT(fd, readiness_is_level_triggered, level_root, NULL)

/* }======================================================= */

/* {======================================================= cancel */

struct waiter {
	weft_fd_t *f;
	int events;
	int rc;
};

static int wait_task(void *arg)
{
	struct waiter *w = arg;
	w->rc = weft_fd_wait(w->f, w->events);
	return 0;
}

/* A cancelled wait consumed nothing: the byte written after it is the
 * owner's to read. */
static int cancel_root(void *arg)
{
	(void)arg;
	int p[2];
	fd_pipe(p);
	weft_fd_t *f;
	CHECK_EQ(weft_fd_register(p[0], &f), 0);
	struct waiter w = { f, WEFT_FD_READABLE, 1 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, wait_task, &w), 0);
	CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
	CHECK_EQ(weft_group_cancel(g, "stop"), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(w.rc, -ECANCELED);
	CHECK_EQ(write(p[1], "y", 1), 1);
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	CHECK_EQ(c, 'y');
	/* And the descriptor can be waited on again. */
	CHECK_EQ(write(p[1], "z", 1), 1);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_READABLE), WEFT_FD_READABLE);
	CHECK_EQ(weft_fd_unregister(f), 0);
	fd_close2(p);
	return 0;
}
WEFT_TEST_ROOT(fd, cancelled_wait_consumes_nothing, cancel_root, NULL)

/* Unregistering wakes a parked waiter with WEFT_ECLOSED; afterwards the
 * owner closes the descriptor, and its number's next owner is not
 * disturbed. */
static int unregister_root(void *arg)
{
	(void)arg;
	int p[2];
	fd_pipe(p);
	weft_fd_t *f;
	CHECK_EQ(weft_fd_register(p[0], &f), 0);
	struct waiter w = { f, WEFT_FD_READABLE | WEFT_FD_WRITABLE, 1 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, wait_task, &w), 0);
	CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
	CHECK_EQ(weft_fd_unregister(f), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(w.rc, WEFT_ECLOSED);
	fd_close2(p);
	/* The numbers are reused at once: a new pipe, registered anew,
	 * waits and wakes normally. */
	fd_pipe(p);
	CHECK_EQ(weft_fd_register(p[0], &f), 0);
	CHECK_EQ(write(p[1], "n", 1), 1);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_READABLE), WEFT_FD_READABLE);
	CHECK_EQ(weft_fd_unregister(f), 0);
	fd_close2(p);
	return 0;
}
WEFT_TEST_ROOT(fd, unregister_wakes_the_waiter, unregister_root, NULL)

/* Two tasks waiting for the same direction: the second gets -EBUSY; the
 * other direction is free. */
static int busy_root(void *arg)
{
	(void)arg;
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	weft_fd_t *f;
	CHECK_EQ(weft_fd_register(sv[0], &f), 0);
	struct waiter w = { f, WEFT_FD_READABLE, 1 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, wait_task, &w), 0);
	CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_READABLE), -EBUSY);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_WRITABLE), WEFT_FD_WRITABLE);
	CHECK_EQ(write(sv[1], "r", 1), 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(w.rc, WEFT_FD_READABLE);
	CHECK_EQ(weft_fd_unregister(f), 0);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
WEFT_TEST_ROOT(fd, second_waiter_same_direction_gets_ebusy, busy_root, NULL)

/* Two registrations of one descriptor (weft_fd_register): the first to
 * wait holds it in the epoll set until it is unregistered, and the
 * other's waits fail with -EEXIST meanwhile, even one after the other;
 * then the other works. */
static int twice_root(void *arg)
{
	(void)arg;
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	weft_fd_t *a, *b;
	CHECK_EQ(weft_fd_register(sv[0], &a), 0);
	CHECK_EQ(weft_fd_register(sv[0], &b), 0);
	CHECK_EQ(weft_fd_wait(b, WEFT_FD_WRITABLE), WEFT_FD_WRITABLE);
	CHECK_EQ(weft_fd_wait(a, WEFT_FD_WRITABLE), -EEXIST);
	CHECK_EQ(weft_fd_wait(b, WEFT_FD_WRITABLE), WEFT_FD_WRITABLE);
	CHECK_EQ(weft_fd_unregister(b), 0);
	CHECK_EQ(weft_fd_wait(a, WEFT_FD_WRITABLE), WEFT_FD_WRITABLE);
	CHECK_EQ(weft_fd_unregister(a), 0);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
WEFT_TEST_ROOT(fd, a_second_registration_waits_once_the_first_is_gone,
	twice_root, NULL)

/* }======================================================= */

/* {======================================================= writable */

/* Drains the pipe once the writer has parked. */
static int drain_when_blocked(void *arg)
{
	int fd = *(int *)arg;
	CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
	char buf[4096];
	while (read(fd, buf, sizeof buf) > 0)
		;
	return 0;
}

static int writable_root(void *arg)
{
	(void)arg;
	int p[2];
	fd_pipe(p);
	char buf[4096];
	memset(buf, 'w', sizeof buf);
	while (write(p[1], buf, sizeof buf) > 0)
		;
	CHECK_EQ(errno, EAGAIN);
	weft_fd_t *f;
	CHECK_EQ(weft_fd_register(p[1], &f), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, drain_when_blocked, &p[0]), 0);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_WRITABLE), WEFT_FD_WRITABLE);
	CHECK(write(p[1], buf, 1) == 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_fd_unregister(f), 0);
	fd_close2(p);
	return 0;
}
WEFT_TEST_ROOT(fd, wait_parks_until_writable, writable_root, NULL)

/* }======================================================= */

/* {======================================================= sets */

#define SET_N 6 /* 12 entries with both directions: the allocated path */

struct set_case {
	int p[SET_N][2];
	int which;
};

static int write_one_when_blocked(void *arg)
{
	struct set_case *c = arg;
	CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
	CHECK_EQ(write(c->p[c->which][1], "s", 1), 1);
	return 0;
}

static int set_root(void *arg)
{
	int both = (int)(intptr_t)arg;
	struct set_case c;
	weft_fd_t *f[SET_N];
	int ev[SET_N], rev[SET_N];
	for (int i = 0; i < SET_N; i++) {
		fd_pipe(c.p[i]);
		CHECK_EQ(weft_fd_register(c.p[i][0], &f[i]), 0);
		/* A pipe's read end is never writable: asking for both
		 * directions only widens the set. */
		ev[i] = both ? WEFT_FD_READABLE | WEFT_FD_WRITABLE
			     : WEFT_FD_READABLE;
	}
	for (int round = 0; round < 3; round++) {
		c.which = (round * 2 + 1) % SET_N;
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		CHECK_EQ(weft_group_spawn(g, write_one_when_blocked, &c), 0);
		CHECK_EQ(weft_fd_wait_any(f, ev, rev, SET_N), 1);
		for (int i = 0; i < SET_N; i++)
			CHECK_EQ(rev[i], i == c.which ? WEFT_FD_READABLE : 0);
		char ch;
		CHECK_EQ(read(c.p[c.which][0], &ch, 1), 1);
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	/* Two ready at once: both reported. */
	CHECK_EQ(write(c.p[0][1], "a", 1), 1);
	CHECK_EQ(write(c.p[SET_N - 1][1], "b", 1), 1);
	CHECK_EQ(weft_fd_wait_any(f, ev, rev, SET_N), 2);
	CHECK_EQ(rev[0], WEFT_FD_READABLE);
	CHECK_EQ(rev[SET_N - 1], WEFT_FD_READABLE);
	for (int i = 0; i < SET_N; i++) {
		CHECK_EQ(weft_fd_unregister(f[i]), 0);
		fd_close2(c.p[i]);
	}
	return 0;
}
WEFT_TEST_ROOT(fd, wait_any_reports_the_ready_ones, set_root, (void *)0)
WEFT_TEST_ROOT(fd, wait_any_with_both_directions, set_root, (void *)1)

/* }======================================================= */

/* {======================================================= errors */

static int errors_root(void *arg)
{
	(void)arg;
	int p[2];
	fd_pipe(p);
	weft_fd_t *f;
	CHECK_EQ(weft_fd_register(p[0], NULL), -EINVAL);
	CHECK_EQ(weft_fd_register(-1, &f), -EBADF);
	CHECK_EQ(weft_fd_register(1000000, &f), -EBADF);
	CHECK_EQ(weft_fd_register(p[0], &f), 0);
	CHECK_EQ(weft_fd_wait(NULL, WEFT_FD_READABLE), -EINVAL);
	CHECK_EQ(weft_fd_wait(f, 0), -EINVAL);
	CHECK_EQ(weft_fd_wait(f, 4), -EINVAL);
	int ev = WEFT_FD_READABLE, rev;
	CHECK_EQ(weft_fd_wait_any(&f, &ev, &rev, 0), -EINVAL);
	CHECK_EQ(weft_fd_wait_any(&f, &ev, &rev, WEFT_FD_WAIT_MAX + 1),
		-EINVAL);
	CHECK_EQ(weft_fd_wait_any(NULL, &ev, &rev, 1), -EINVAL);
	CHECK_EQ(weft_fd_unregister(NULL), -EINVAL);
	/* A checkpoint: cancelled on entry, nothing waited. */
	CHECK_EQ(write(p[1], "c", 1), 1);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, "now"), 0);
	CHECK_EQ(weft_fd_wait(f, WEFT_FD_READABLE), -ECANCELED);
	/* Unregistering is not: it always happens. */
	CHECK_EQ(weft_fd_unregister(f), 0);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	fd_close2(p);
	return 0;
}
WEFT_TEST_ROOT(fd, bad_arguments_and_checkpoints, errors_root, NULL)

static void test_fd__outside_a_task_is_enotfiber(void **state)
{
	(void)state;
	weft_fd_t *f;
	assert_int_equal(weft_fd_register(0, &f), WEFT_ENOTFIBER);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_fd__wait_parks_until_readable),
		WEFT_TEST(test_fd__readiness_is_level_triggered),
		WEFT_TEST(test_fd__cancelled_wait_consumes_nothing),
		WEFT_TEST(test_fd__unregister_wakes_the_waiter),
		WEFT_TEST(test_fd__second_waiter_same_direction_gets_ebusy),
		WEFT_TEST(
			test_fd__a_second_registration_waits_once_the_first_is_gone),
		WEFT_TEST(test_fd__wait_parks_until_writable),
		WEFT_TEST(test_fd__wait_any_reports_the_ready_ones),
		WEFT_TEST(test_fd__wait_any_with_both_directions),
		WEFT_TEST(test_fd__bad_arguments_and_checkpoints),
		cmocka_unit_test(test_fd__outside_a_task_is_enotfiber),
	};
	return WEFT_RUN_TESTS(tests);
}
