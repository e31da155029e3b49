/* weft_stream_wait_readable (include/weft/net.h): it returns once a read
 * would not wait, consuming nothing, whether the bytes came before or
 * during the wait, and at the end of the stream.  With
 * WEFT_WAIT_RELEASE_STACK the pages of a parked waiter's stack go back
 * to the kernel (mincore(2) from another task shows it without touching
 * them; ARCHITECTURE.md, "Parked-task memory") and its locals are intact
 * however the wait ends: bytes, a cancel, a deadline, a close.  A dump
 * describes the wait without reading the stack; a task that touches a
 * released stack aborts a WEFT_DEBUG build naming the call; no memory
 * for the copy leaves an ordinary wait. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft.h>

#include "support.h"

#define NWAITERS 16
#define WORDS 40

/* How a waiter's wait is expected to end. */
enum ending { BY_BYTES, BY_CANCEL, BY_DEADLINE, BY_CLOSE };

struct waiters {
	weft_group_t *g;
	weft_stream_t *ours[NWAITERS];	 /* the waiters' ends */
	weft_stream_t *theirs[NWAITERS]; /* the root's ends */
	_Atomic(uint64_t *) locals[NWAITERS];
	atomic_int published;
	atomic_int intact; /* waiters whose locals survived */
	atomic_int rc[NWAITERS];
	atomic_int after[NWAITERS]; /* the exit's code (BY_DEADLINE) */
	unsigned flags;
	enum ending ending;
	bool fail_block; /* fail the next allocation: the wait's block */
};

struct waiter_arg {
	struct waiters *w;
	int index;
};

static uint64_t pattern(int index, int i)
{
	return 0x9e3779b97f4a7c15ull * (uint64_t)(index * WORDS + i + 1);
}

static int waiter(void *arg)
{
	struct waiter_arg *a = arg;
	struct waiters *w = a->w;
	uint64_t local[WORDS];
	for (int i = 0; i < WORDS; i++)
		local[i] = pattern(a->index, i);
	weft_scope_t *sc = NULL;
	if (w->ending == BY_DEADLINE)
		CHECK_EQ(weft_fail_after(&sc, 300 * WEFT_MSEC), 0);
	atomic_store(&w->locals[a->index], local);
	atomic_fetch_add(&w->published, 1);
	if (w->fail_block)
		weft_debug_fail_alloc(1);
	int rc = weft_stream_wait_readable(w->ours[a->index], w->flags);
	/* Nobody else may look at local until now. */
	atomic_store(&w->locals[a->index], NULL);
	atomic_store(&w->rc[a->index], rc);
	if (sc != NULL) {
		atomic_store(&w->after[a->index], weft_scope_exit(sc));
		weft_scope_destroy(sc);
	}
	int ok = 1;
	for (int i = 0; i < WORDS; i++)
		ok &= local[i] == pattern(a->index, i);
	atomic_fetch_add(&w->intact, ok);
	return 0;
}

static int count_released(struct waiters *w, int n)
{
	int released = 0;
	for (int i = 0; i < n; i++) {
		uint64_t *p = atomic_load(&w->locals[i]);
		if (p != NULL && weft_test_resident(p) == 0)
			released++;
	}
	return released;
}

/* n connected pairs and a waiter on each, all published. */
static int spawn_waiters(struct waiters *w, struct waiter_arg *args, int n)
{
	for (int i = 0; i < n; i++)
		CHECK_EQ(weft_test_tcp_pair(&w->ours[i], &w->theirs[i]), 0);
	CHECK_EQ(weft_group_open(&w->g), 0);
	for (int i = 0; i < n; i++) {
		args[i] = (struct waiter_arg){ w, i };
		CHECK_EQ(weft_group_spawn(w->g, waiter, &args[i]), 0);
	}
	while (atomic_load(&w->published) < n)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	return 0;
}

/* Until every waiter's page is released (a waiter publishes just before
 * it parks). */
static int wait_released(struct waiters *w, int n)
{
	int released = 0;
	for (int tries = 0; tries < 2000 && released < n; tries++) {
		released = count_released(w, n);
		if (released < n)
			CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	}
	CHECK_EQ(released, n);
	return 0;
}

/* Each waiter's byte is still in its stream: the wait consumed nothing. */
static int read_each_byte(struct waiters *w, int n)
{
	for (int i = 0; i < n; i++) {
		char c = 0;
		CHECK_EQ(weft_stream_read(w->ours[i], &c, 1), 1);
		CHECK_EQ(c, 'a' + i);
	}
	return 0;
}

static int close_all(struct waiters *w, int n)
{
	for (int i = 0; i < n; i++) {
		if (w->ours[i] != NULL)
			CHECK_EQ(weft_stream_close(w->ours[i]), 0);
		CHECK_EQ(weft_stream_close(w->theirs[i]), 0);
	}
	return 0;
}

/* {======================================================= readable */

/* Bytes before the wait, during it, left over by a short read, and the
 * end of the stream: each returns 0 and the read after it gets them. */
static int readable_root(void *arg)
{
	unsigned flags = *(const unsigned *)arg;
	weft_stream_t *a, *b;
	CHECK_EQ(weft_test_tcp_pair(&a, &b), 0);
	/* Already there. */
	CHECK_EQ(weft_stream_write(b, "hello", 5), 0);
	CHECK_EQ(weft_stream_wait_readable(a, flags), 0);
	CHECK_EQ(weft_stream_wait_readable(a, flags), 0);
	char buf[8] = "";
	CHECK_EQ(weft_stream_read(a, buf, 2), 2);
	/* The rest, left in the kernel by a short read: no new edge. */
	CHECK_EQ(weft_stream_wait_readable(a, flags), 0);
	CHECK_EQ(weft_stream_read(a, buf + 2, sizeof buf - 2), 3);
	CHECK(memcmp(buf, "hello", 5) == 0);
	/* Bytes left by read_until in the stream's own buffer. */
	CHECK_EQ(weft_stream_write(b, "ab\ncd", 5), 0);
	CHECK_EQ(weft_stream_read_until(a, buf, sizeof buf, "\n", 1), 3);
	CHECK_EQ(weft_stream_wait_readable(a, flags), 0);
	CHECK_EQ(weft_stream_read(a, buf, sizeof buf), 2);
	CHECK(memcmp(buf, "cd", 2) == 0);
	/* The end. */
	CHECK_EQ(weft_stream_close(b), 0);
	CHECK_EQ(weft_stream_wait_readable(a, flags), 0);
	CHECK_EQ(weft_stream_read(a, buf, sizeof buf), 0);
	CHECK_EQ(weft_stream_close(a), 0);
	return 0;
}

static void test_stream_wait__returns_when_a_read_would_not_wait(void **state)
{
	unsigned flags = 0;
	weft_test_root(state, readable_root, &flags);
	flags = WEFT_WAIT_RELEASE_STACK;
	weft_test_root(state, readable_root, &flags);
}

/* Bytes that come while the waiters are parked wake them. */
static int bytes_root(void *arg)
{
	struct waiters *w = arg;
	struct waiter_arg args[NWAITERS];
	CHECK_EQ(spawn_waiters(w, args, NWAITERS), 0);
	if (w->flags & WEFT_WAIT_RELEASE_STACK)
		CHECK_EQ(wait_released(w, NWAITERS), 0);
	else
		CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
	/* Without the flag the pages stay. */
	if (!(w->flags & WEFT_WAIT_RELEASE_STACK))
		CHECK_EQ(count_released(w, NWAITERS), 0);
	for (int i = 0; i < NWAITERS; i++) {
		char c = (char)('a' + i);
		CHECK_EQ(weft_stream_write(w->theirs[i], &c, 1), 0);
	}
	CHECK_EQ(weft_group_join(w->g, NULL), 0);
	CHECK_EQ(read_each_byte(w, NWAITERS), 0);
	return close_all(w, NWAITERS);
}

static void test_stream_wait__released_pages_go_back_and_bytes_wake_them(
	void **state)
{
	struct waiters *w = calloc(1, sizeof *w);
	assert_non_null(w);
	w->flags = WEFT_WAIT_RELEASE_STACK;
	weft_test_root(state, bytes_root, w);
	for (int i = 0; i < NWAITERS; i++)
		assert_int_equal(atomic_load(&w->rc[i]), 0);
	assert_int_equal(atomic_load(&w->intact), NWAITERS);
	free(w);
}

static void test_stream_wait__without_the_flag_the_pages_stay(void **state)
{
	struct waiters *w = calloc(1, sizeof *w);
	assert_non_null(w);
	weft_test_root(state, bytes_root, w);
	assert_int_equal(atomic_load(&w->intact), NWAITERS);
	free(w);
}

/* }======================================================= */

/* {======================================================= other ends */

/* A cancel, a deadline or a close ends released waits; locals intact,
 * and bytes written after a cancel or a deadline are still there. */
static int ending_root(void *arg)
{
	struct waiters *w = arg;
	struct waiter_arg args[NWAITERS];
	CHECK_EQ(spawn_waiters(w, args, NWAITERS), 0);
	CHECK_EQ(wait_released(w, NWAITERS), 0);
	switch (w->ending) {
	case BY_CANCEL: CHECK_EQ(weft_group_cancel(w->g, NULL), 0); break;
	case BY_CLOSE:
		for (int i = 0; i < NWAITERS; i++) {
			CHECK_EQ(weft_stream_close(w->ours[i]), 0);
			w->ours[i] = NULL;
		}
		break;
	default: break; /* the deadlines */
	}
	CHECK_EQ(weft_group_join(w->g, NULL), 0);
	if (w->ending != BY_CLOSE) {
		for (int i = 0; i < NWAITERS; i++) {
			char c = (char)('a' + i);
			CHECK_EQ(weft_stream_write(w->theirs[i], &c, 1), 0);
		}
		CHECK_EQ(read_each_byte(w, NWAITERS), 0);
	}
	return close_all(w, NWAITERS);
}

static void check_ending(void **state, enum ending ending, int want,
	int want_after)
{
	struct waiters *w = calloc(1, sizeof *w);
	assert_non_null(w);
	w->flags = WEFT_WAIT_RELEASE_STACK;
	w->ending = ending;
	weft_test_root(state, ending_root, w);
	for (int i = 0; i < NWAITERS; i++) {
		assert_int_equal(atomic_load(&w->rc[i]), want);
		assert_int_equal(atomic_load(&w->after[i]), want_after);
	}
	assert_int_equal(atomic_load(&w->intact), NWAITERS);
	free(w);
}

static void test_stream_wait__a_cancel_ends_it_consuming_nothing(void **state)
{
	check_ending(state, BY_CANCEL, -ECANCELED, 0);
}

static void test_stream_wait__a_deadline_ends_it_consuming_nothing(void **state)
{
	check_ending(state, BY_DEADLINE, -ECANCELED, -ETIMEDOUT);
}

static void test_stream_wait__a_close_ends_it(void **state)
{
	check_ending(state, BY_CLOSE, WEFT_ECLOSED, 0);
}

/* }======================================================= */

/* {======================================================= misuse */

static int reader(void *arg)
{
	char c;
	CHECK_EQ(weft_stream_read(arg, &c, 1), 1);
	return 0;
}

static int misuse_root(void *arg)
{
	(void)arg;
	weft_stream_t *a, *b;
	CHECK_EQ(weft_test_tcp_pair(&a, &b), 0);
	CHECK_EQ(weft_stream_wait_readable(NULL, 0), -EINVAL);
	CHECK_EQ(weft_stream_wait_readable(a, 0x80u), -EINVAL);
	/* Another task is reading. */
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, reader, a), 0);
	CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0);
	CHECK_EQ(weft_stream_wait_readable(a, WEFT_WAIT_RELEASE_STACK), -EBUSY);
	CHECK_EQ(weft_stream_write(b, "x", 1), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_stream_close(a), 0);
	CHECK_EQ(weft_stream_close(b), 0);
	return 0;
}

static void test_stream_wait__misuse_gets_its_codes(void **state)
{
	weft_test_root(state, misuse_root, NULL);
	assert_int_equal(weft_stream_wait_readable(NULL, 0), -EINVAL);
}

/* Out of memory for the copy's block: an ordinary wait, pages kept. */
static int oom_root(void *arg)
{
	struct waiters *w = arg;
	struct waiter_arg a = { w, 0 };
	CHECK_EQ(weft_test_tcp_pair(&w->ours[0], &w->theirs[0]), 0);
	CHECK_EQ(weft_group_open(&w->g), 0);
	w->flags = WEFT_WAIT_RELEASE_STACK;
	w->fail_block = true;
	long before = weft_debug_injected_failures();
	CHECK_EQ(weft_group_spawn(w->g, waiter, &a), 0);
	while (atomic_load(&w->published) < 1)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
	CHECK_EQ(weft_debug_injected_failures(), before + 1);
	CHECK_EQ(weft_test_resident(atomic_load(&w->locals[0])), 1);
	CHECK_EQ(weft_stream_write(w->theirs[0], "a", 1), 0);
	CHECK_EQ(weft_group_join(w->g, NULL), 0);
	CHECK_EQ(read_each_byte(w, 1), 0);
	return close_all(w, 1);
}

static void test_stream_wait__no_block_means_an_ordinary_wait(void **state)
{
	(void)state;
	struct waiters *w = calloc(1, sizeof *w);
	assert_non_null(w);
	assert_int_equal(weft_test_run(1, oom_root, w), 0);
	assert_int_equal(atomic_load(&w->rc[0]), 0);
	assert_int_equal(atomic_load(&w->intact), 1);
	free(w);
}

/* }======================================================= */

/* {======================================================= dump */

struct dump_case {
	struct waiters w;
	char text[32768];
	char json[65536];
	size_t text_len, json_len;
};

static int dump_root(void *arg)
{
	struct dump_case *d = arg;
	struct waiters *w = &d->w;
	struct waiter_arg args[NWAITERS];
	w->flags = WEFT_WAIT_RELEASE_STACK;
	CHECK_EQ(spawn_waiters(w, args, NWAITERS), 0);
	CHECK_EQ(wait_released(w, NWAITERS), 0);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, d->text,
			 sizeof d->text, &d->text_len),
		0);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, d->json,
			 sizeof d->json, &d->json_len),
		0);
	/* The dump read no released page. */
	CHECK_EQ(count_released(w, NWAITERS), NWAITERS);
	CHECK_EQ(weft_group_cancel(w->g, NULL), 0);
	CHECK_EQ(weft_group_join(w->g, NULL), 0);
	return close_all(w, NWAITERS);
}

static void test_stream_wait__a_dump_shows_them_without_reading_them(
	void **state)
{
	struct dump_case *d = calloc(1, sizeof *d);
	assert_non_null(d);
	weft_test_root(state, dump_root, d);
	assert_non_null(strstr(d->text, "op=\"stream wait\""));
	assert_non_null(strstr(d->text, "stack=released"));
	assert_non_null(strstr(d->json, "\"stack_released\":true"));
	assert_int_equal(atomic_load(&d->w.intact), NWAITERS);
	free(d);
}

/* }======================================================= */

#ifdef WEFT_DEBUG
/* {======================================================= a broken promise */

static int toucher_root(void *arg)
{
	struct waiters *w = arg;
	struct waiter_arg a = { w, 0 };
	w->flags = WEFT_WAIT_RELEASE_STACK;
	CHECK_EQ(spawn_waiters(w, &a, 1), 0);
	CHECK_EQ(wait_released(w, 1), 0);
	CHECK_EQ(weft_test_dump_until("stack=released"), 0);
	/* Break the promise: write into the waiter's locals. */
	uint64_t *p = atomic_load(&w->locals[0]);
	p[0] = 1;
	CHECK_EQ(weft_stream_write(w->theirs[0], "a", 1), 0);
	CHECK_EQ(weft_group_join(w->g, NULL), 0);
	return 0;
}

static void toucher_child(void *arg)
{
	(void)arg;
	struct waiters *w = calloc(1, sizeof *w);
	int rc = w != NULL ? weft_test_run(2, toucher_root, w) : 1;
	_exit(rc == 0 ? 0 : 1);
}

static void test_stream_wait__a_touch_aborts_naming_the_call(void **state)
{
	(void)state;
	char buf[8192];
	int status = weft_test_death(toucher_child, NULL, buf, sizeof buf);
	weft_test_assert_abort(status, buf,
		"weft_stream_wait_readable: the stack of task "
		"'waiter' was read or written",
		NULL);
}

/* }======================================================= */
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_stream_wait__returns_when_a_read_would_not_wait),
		WEFT_TEST(
			test_stream_wait__released_pages_go_back_and_bytes_wake_them),
		WEFT_TEST(test_stream_wait__without_the_flag_the_pages_stay),
		WEFT_TEST(test_stream_wait__a_cancel_ends_it_consuming_nothing),
		WEFT_TEST(
			test_stream_wait__a_deadline_ends_it_consuming_nothing),
		WEFT_TEST(test_stream_wait__a_close_ends_it),
		WEFT_TEST(test_stream_wait__misuse_gets_its_codes),
		cmocka_unit_test(
			test_stream_wait__no_block_means_an_ordinary_wait),
		WEFT_TEST(
			test_stream_wait__a_dump_shows_them_without_reading_them),
#ifdef WEFT_DEBUG
		cmocka_unit_test(
			test_stream_wait__a_touch_aborts_naming_the_call),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
