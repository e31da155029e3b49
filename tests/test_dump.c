/* The dump answers "why is it stuck" (weft/inspect.h, the dump's format):
 * for each parked task, how long it has been parked, the object it waits
 * on (a Lock and its owner, an Event, a full Channel, a group being joined
 * and its running children, a sleep's deadline, a socket read) and its
 * stack, unwound from the registers its switch saved; and for a group,
 * where it was opened.
 *
 * The functions a backtrace must name are static: naming them needs
 * libdw (the symbol table), and so does unwinding a parked fiber at all;
 * without it (WEFT_TEST_HAVE_LIBDW 0) the frames are not checked.  They
 * are noinline and do something after the call that parks, so that their
 * frame is on the stack while the task is parked. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "weft.h"

#ifndef WEFT_TEST_HAVE_LIBDW
#define WEFT_TEST_HAVE_LIBDW 0
#endif

/* {======================================================= the stuck program */

struct stuck {
	weft_lock_t *lock;
	weft_event_t *ev;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	weft_stream_t *a, *b;
	atomic_int held;
	atomic_int child_started;
	atomic_int offload_running; /* the offloaded function is in */
	atomic_int offload_release; /* lets it return */
	char text[1 << 16];
	char json[1 << 16];
	size_t text_len, json_len;
};

#define PARK_SITE __attribute__((noinline, noclone))

/* Keeps a call from being a tail call, so that the caller's frame stays. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static PARK_SITE int park_here_on_lock(struct stuck *s)
{
	int rc = weft_lock_acquire(s->lock);
	KEEP_FRAME();
	if (rc == 0)
		weft_lock_release(s->lock);
	return rc;
}

static PARK_SITE int park_here_on_event(struct stuck *s)
{
	int rc = weft_event_wait(s->ev);
	KEEP_FRAME();
	return rc;
}

static PARK_SITE int park_here_on_channel(struct stuck *s)
{
	long v = 2;
	int rc = weft_channel_send(s->tx, &v);
	KEEP_FRAME();
	return rc;
}

static PARK_SITE int park_here_on_join(weft_group_t *g)
{
	int rc = weft_group_join(g, NULL);
	KEEP_FRAME();
	return rc;
}

static PARK_SITE int park_here_on_sleep(void)
{
	int rc = weft_sleep((int64_t)3600 * 1000000000);
	KEEP_FRAME();
	return rc;
}

static PARK_SITE int park_here_on_read(struct stuck *s)
{
	char c;
	ssize_t n = weft_stream_read(s->a, &c, 1);
	KEEP_FRAME();
	return n < 0 ? (int)n : 0;
}

static int holder_main(void *arg)
{
	struct stuck *s = arg;
	CHECK_EQ(weft_lock_acquire(s->lock), 0);
	atomic_store(&s->held, 1);
	(void)park_here_on_event(s); /* cancelled at the end */
	CHECK_EQ(weft_lock_release(s->lock), 0);
	return 0;
}

static int locker_main(void *arg)
{
	(void)park_here_on_lock(arg);
	return 0;
}

static int waiter_main(void *arg)
{
	(void)park_here_on_event(arg);
	return 0;
}

static int sender_main(void *arg)
{
	(void)park_here_on_channel(arg);
	return 0;
}

static int joined_child_main(void *arg)
{
	struct stuck *s = arg;
	atomic_store(&s->child_started, 1);
	(void)park_here_on_event(s);
	return 0;
}

static int joiner_main(void *arg)
{
	struct stuck *s = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_spawn_opts_t o = { .name = "joined_child" };
	CHECK_EQ(weft_group_spawn_opts(g, joined_child_main, s, &o), 0);
	/* Started on a fiber of its own: the join parks instead of running
	 * it inline on this stack (then the child's frames would include
	 * ours, and this task would not be parked itself). */
	CHECK(weft_test_yield_until(&s->child_started, 1));
	(void)park_here_on_join(g);
	return 0;
}

static int sleeper_main(void *arg)
{
	(void)arg;
	(void)park_here_on_sleep();
	return 0;
}

static int reader_main(void *arg)
{
	(void)park_here_on_read(arg);
	return 0;
}

/* Parks on the event without ever calling started(). */
static int start_child_main(void *arg)
{
	(void)park_here_on_event(arg);
	return 0;
}

static PARK_SITE int park_here_on_start(struct stuck *s, weft_group_t *g)
{
	int rc = weft_group_start_named(g, "start_child", start_child_main, s,
		NULL);
	KEEP_FRAME();
	return rc;
}

static int starter_main(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	/* Cancelled at the end: the start cancels its task and waits. */
	CHECK_EQ(park_here_on_start(arg, g), -ECANCELED);
	CHECK_EQ(weft_group_join(g, NULL), -ECANCELED);
	return 0;
}

static int blocking_fn(void *arg, void **result)
{
	struct stuck *s = arg;
	*result = NULL;
	atomic_store(&s->offload_running, 1);
	while (!atomic_load(&s->offload_release))
		usleep(1000);
	return 0;
}

static int offloader_main(void *arg)
{
	void *res;
	/* The function cannot be interrupted: the group's cancellation
	 * at the end waits for it, then the call reports it. */
	CHECK_EQ(weft_to_thread(blocking_fn, arg, &res, NULL), -ECANCELED);
	return 0;
}

static const char *const stuck_names[] = { "holder", "locker", "waiter",
	"sender", "joiner", "joined_child", "sleeper", "reader", "starter",
	"start_child", "offloader" };
#define NSTUCK (sizeof stuck_names / sizeof *stuck_names)

/* Whether every task of stuck_names is parked on something. */
static int all_parked(void)
{
	weft_task_info_t info[64];
	size_t n = 0;
	if (weft_all_tasks(NULL, info, 64, &n) != 0)
		return 0;
	size_t found = 0;
	for (size_t i = 0; i < n && i < 64; i++)
		for (size_t k = 0; k < NSTUCK; k++)
			if (strcmp(info[i].name, stuck_names[k]) == 0 &&
				info[i].parked_on != NULL)
				found++;
	return found == NSTUCK;
}

/* How many tasks the text dump shows pinned (parked_for=). */
static int pinned_in(const char *text)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, "parked_for=")); p++)
		n++;
	return n;
}

static int stuck_root(void *arg)
{
	struct stuck *s = arg;
	CHECK_EQ(weft_lock_create(&s->lock), 0);
	CHECK_EQ(weft_event_create(&s->ev), 0);
	CHECK_EQ(weft_channel_open(&s->tx, &s->rx, sizeof(long), 1), 0);
	long one = 1;
	CHECK_EQ(weft_channel_send(s->tx, &one), 0); /* now full */
	CHECK_EQ(weft_test_tcp_pair(&s->a, &s->b), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_spawn_opts_t o = { .name = "holder" };
	CHECK_EQ(weft_group_spawn_opts(g, holder_main, s, &o), 0);
	CHECK(weft_test_yield_until(&s->held, 1));
	o.name = "locker";
	CHECK_EQ(weft_group_spawn_opts(g, locker_main, s, &o), 0);
	o.name = "waiter";
	CHECK_EQ(weft_group_spawn_opts(g, waiter_main, s, &o), 0);
	o.name = "sender";
	CHECK_EQ(weft_group_spawn_opts(g, sender_main, s, &o), 0);
	o.name = "joiner";
	CHECK_EQ(weft_group_spawn_opts(g, joiner_main, s, &o), 0);
	o.name = "sleeper";
	CHECK_EQ(weft_group_spawn_opts(g, sleeper_main, NULL, &o), 0);
	o.name = "reader";
	CHECK_EQ(weft_group_spawn_opts(g, reader_main, s, &o), 0);
	o.name = "starter";
	CHECK_EQ(weft_group_spawn_opts(g, starter_main, s, &o), 0);
	o.name = "offloader";
	CHECK_EQ(weft_group_spawn_opts(g, offloader_main, s, &o), 0);
	CHECK(weft_test_yield_until(&s->offload_running, 1));
	for (long i = 0; i < 1000000 && !all_parked(); i++)
		weft_yield();
	CHECK(all_parked());
	/* A task is listed as parked just before it leaves its stack; the
	 * dump pins only those that have: retry until all 8 show. */
	for (int tries = 0; tries < 1000; tries++) {
		CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, s->text,
				 sizeof s->text, &s->text_len),
			0);
		if (pinned_in(s->text) >= (int)NSTUCK)
			break;
		weft_sleep(1000000);
	}
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, s->json,
			 sizeof s->json, &s->json_len),
		0);
	CHECK(s->text_len < sizeof s->text);
	CHECK(s->json_len < sizeof s->json);
	/* Unstick everything.  The cancel before the release: a function
	 * that returns before the cancellation's marks would let
	 * weft_to_thread report 0 (rule 39: the cancellation wins only if
	 * it came first), and the offloader checks -ECANCELED. */
	weft_group_cancel(g, "test over");
	atomic_store(&s->offload_release, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_stream_close(s->a), 0);
	CHECK_EQ(weft_stream_close(s->b), 0);
	long v;
	CHECK_EQ(weft_channel_receive(s->rx, &v), 0);
	weft_channel_tx_release(s->tx);
	weft_channel_rx_release(s->rx);
	CHECK_EQ(weft_event_destroy(s->ev), 0);
	CHECK_EQ(weft_lock_destroy(s->lock), 0);
	return 0;
}

/* }======================================================= */

/* {======================================================= checks */

/* The block of the task named name: its line and its frame lines. */
static const char *task_block(const char *text, const char *name, char *out,
	size_t cap)
{
	char key[64];
	snprintf(key, sizeof key, " name=\"%s\"", name);
	const char *p = strstr(text, key);
	if (p == NULL)
		return NULL;
	const char *b = p;
	while (b > text && b[-1] != '\n')
		b--;
	const char *e = strchr(p, '\n');
	/* Frame lines follow, indented, each starting with '#'. */
	while (e) {
		const char *q = e + 1;
		while (*q == ' ')
			q++;
		if (*q != '#')
			break;
		e = strchr(q, '\n');
	}
	size_t n = e ? (size_t)(e - b) : strlen(b);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, b, n);
	out[n] = '\0';
	return out;
}

static void expect_in(const char *text, const char *name, const char *want)
{
	char block[8192];
	const char *b = task_block(text, name, block, sizeof block);
	if (b == NULL || strstr(b, want) == NULL)
		fail_msg("task %s: no \"%s\" in:\n%s", name, want,
			b ? b : "(no such task)");
}

static void check_text(const char *text)
{
	for (size_t k = 0; k < NSTUCK; k++)
		expect_in(text, stuck_names[k], "parked_for=");
	expect_in(text, "locker", "waits_on=lock");
	expect_in(text, "locker", "owner_name=\"holder\"");
	expect_in(text, "holder", "waits_on=event");
	expect_in(text, "holder", "set=0 waiters=4");
	expect_in(text, "waiter", "waits_on=event");
	expect_in(text, "sender", "waits_on=channel send");
	expect_in(text, "sender", "count=1 capacity=1");
	expect_in(text, "joiner", "waits_on=group");
	expect_in(text, "joiner", "children_running=1");
	expect_in(text, "sleeper", "waits_on=sleep");
	expect_in(text, "sleeper", "until=+");
	expect_in(text, "reader", "waits_on=io");
	expect_in(text, "reader", "fd=");
	expect_in(text, "starter", "waits_on=task");
	expect_in(text, "starter", "task_name=\"start_child\"");
	expect_in(text, "offloader", "waits_on=to_thread");
	expect_in(text, "offloader", "state=running");
	if (WEFT_TEST_HAVE_LIBDW) {
		expect_in(text, "locker", "park_here_on_lock+");
		expect_in(text, "locker", "(test_dump.c:");
		expect_in(text, "holder", "park_here_on_event+");
		expect_in(text, "holder", "holder_main+");
		expect_in(text, "waiter", "park_here_on_event+");
		expect_in(text, "sender", "park_here_on_channel+");
		expect_in(text, "joiner", "park_here_on_join+");
		expect_in(text, "sleeper", "park_here_on_sleep+");
		expect_in(text, "reader", "park_here_on_read+");
		expect_in(text, "offloader",
			"fn=\"blocking_fn+0x0 (test_dump.c:");
		expect_in(text, "starter", "park_here_on_start+");
		/* The group the joiner opened says where. */
		assert_non_null(strstr(text, "opened_at=\"joiner_main+"));
	}
	/* The dumping task runs: no details. */
	char block[8192];
	assert_non_null(task_block(text, "main", block, sizeof block));
	assert_null(strstr(block, "parked_for="));
}

/* The same facts from the JSON, checked by Python's parser. */
static const char check_json_py[] =
	"import json, sys\n"
	"d = json.load(open(sys.argv[1]))\n"
	"libdw = sys.argv[2] == '1'\n"
	"tasks, groups = {}, []\n"
	"def walk(n):\n"
	"    if n['type'] == 'task': tasks[n['name']] = n\n"
	"    if n['type'] == 'group': groups.append(n)\n"
	"    for c in n['children']: walk(c)\n"
	"for n in d['tree']: walk(n)\n"
	"def w(name): return tasks[name]['waits_on']\n"
	"for name in ['holder', 'locker', 'waiter', 'sender', 'joiner',\n"
	"             'joined_child', 'sleeper', 'reader', 'starter',\n"
	"             'start_child', 'offloader']:\n"
	"    assert tasks[name]['parked_ns'] >= 0, name\n"
	"assert w('locker')['kind'] == 'lock'\n"
	"assert w('locker')['owner'] == tasks['holder']['id']\n"
	"assert w('locker')['owner_name'] == 'holder'\n"
	"assert w('holder')['kind'] == 'event'\n"
	"assert w('sender')['kind'] == 'channel send'\n"
	"assert 'count=1 capacity=1' in w('sender')['detail']\n"
	"assert w('joiner')['kind'] == 'group'\n"
	"assert w('joiner')['children_running'] == 1\n"
	"assert w('sleeper')['kind'] == 'sleep'\n"
	"assert w('sleeper')['until'] > d['now']\n"
	"assert w('reader')['kind'] == 'io'\n"
	"assert w('starter')['kind'] == 'task'\n"
	"assert w('starter')['task'] == tasks['start_child']['id']\n"
	"assert w('offloader')['kind'] == 'to_thread'\n"
	"assert 'state=running' in w('offloader')['detail']\n"
	"assert tasks['main']['waits_on'] is None\n"
	"assert tasks['main']['parked_ns'] is None\n"
	"if libdw:\n"
	"    bt = tasks['locker']['backtrace']\n"
	"    assert any(f.startswith('park_here_on_lock+') for f in bt), bt\n"
	"    assert w('offloader')['function'].startswith('blocking_fn+0x0')\n"
	"    assert any(g['opened_at'] and\n"
	"               g['opened_at'].startswith('joiner_main+')\n"
	"               for g in groups), groups\n";

static void check_json(const char *json)
{
	if (system("python3 -c 'import json' >/dev/null 2>&1") != 0) {
		print_message("python3 not found: JSON not checked\n");
		return;
	}
	char jpath[] = "/tmp/weft-dump-json-XXXXXX";
	char ppath[] = "/tmp/weft-dump-py-XXXXXX";
	int jfd = mkstemp(jpath), pfd = mkstemp(ppath);
	assert_true(jfd >= 0 && pfd >= 0);
	assert_int_equal(write(jfd, json, strlen(json)), (ssize_t)strlen(json));
	assert_int_equal(write(pfd, check_json_py, sizeof check_json_py - 1),
		(ssize_t)(sizeof check_json_py - 1));
	close(jfd);
	close(pfd);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "python3 %s %s %d", ppath, jpath,
		WEFT_TEST_HAVE_LIBDW);
	int rc = system(cmd);
	if (rc != 0)
		print_message("%s\n", json);
	unlink(jpath);
	unlink(ppath);
	assert_int_equal(rc, 0);
}

static void test_dump__parked_tasks_show_where_and_on_what(void **state)
{
	struct stuck *s = calloc(1, sizeof *s);
	assert_non_null(s);
	weft_test_root(state, stuck_root, s);
	if (getenv("WEFT_TEST_VERBOSE"))
		fprintf(stderr, "%s\n%s\n", s->text, s->json);
	check_text(s->text);
	check_json(s->json);
	free(s);
}

/* }======================================================= */

/* {======================================================= tasks parked alike */

/* Many tasks parked at two sites, interleaved: a dump names each address
 * once per dump and reuses the text (base/backtrace.c, struct bt_memo),
 * so every task's frames must still be its own site's, not the first
 * task's nor the other site's. */
#define TWINS 24

struct twins {
	weft_event_t *ev;
	char text[1 << 17];
	size_t len;
};

/* noipa: the two are the same code, which gcc would otherwise fold into
 * one function (-fipa-icf), one name for both sites. */
static PARK_SITE __attribute__((noipa)) int park_twin_a(weft_event_t *ev)
{
	int rc = weft_event_wait(ev);
	KEEP_FRAME();
	return rc;
}

static PARK_SITE __attribute__((noipa)) int park_twin_b(weft_event_t *ev)
{
	int rc = weft_event_wait(ev);
	KEEP_FRAME();
	return rc;
}

static int twin_a_main(void *arg)
{
	return park_twin_a(arg);
}

static int twin_b_main(void *arg)
{
	return park_twin_b(arg);
}

static int twins_root(void *arg)
{
	struct twins *t = arg;
	CHECK_EQ(weft_event_create(&t->ev), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < TWINS; i++) {
		char name[16];
		snprintf(name, sizeof name, "%c%d", i % 2 ? 'b' : 'a', i);
		CHECK_EQ(weft_group_spawn_named(g, name,
				 i % 2 ? twin_b_main : twin_a_main, t->ev),
			0);
	}
	/* Until the dump holds every one of them parked (parked_for=). */
	for (int tries = 0; tries < 2000; tries++) {
		CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, t->text,
				 sizeof t->text, &t->len),
			0);
		if (pinned_in(t->text) >= TWINS)
			break;
		weft_sleep(1000000);
	}
	CHECK(t->len < sizeof t->text);
	CHECK_EQ(weft_event_set(t->ev), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(t->ev), 0);
	return 0;
}

static void test_dump__tasks_parked_alike_each_show_their_own_frames(
	void **state)
{
	struct twins *t = calloc(1, sizeof *t);
	assert_non_null(t);
	weft_test_root(state, twins_root, t);
	assert_int_equal(pinned_in(t->text), TWINS);
	for (int i = 0; i < TWINS && WEFT_TEST_HAVE_LIBDW; i++) {
		char name[16], block[8192];
		snprintf(name, sizeof name, "%c%d", i % 2 ? 'b' : 'a', i);
		const char *b = task_block(t->text, name, block, sizeof block);
		const char *own = i % 2 ? "park_twin_b+" : "park_twin_a+";
		const char *other = i % 2 ? "park_twin_a+" : "park_twin_b+";
		if (b == NULL || strstr(b, own) == NULL ||
			strstr(b, other) != NULL ||
			strstr(b, "weft_event_wait+") == NULL)
			fail_msg("task %s: want %s only in:\n%s", name, own,
				b ? b : t->text);
	}
	free(t);
}

/* }======================================================= */

/* {======================================================= dumps racing parks */

/* Pairs of tasks hand items back and forth through rendezvous channels,
 * parking and waking all the time (and resuming on any worker), while a
 * plain thread dumps: the pin must keep the dump off every stack that
 * runs (ThreadSanitizer and ASan builds check the reads), and a task
 * being switched in while it is pinned must wait and then carry on. */
struct race {
	weft_runtime_t *rt;
	atomic_int stop;
	atomic_int dumps;
	atomic_int bad;
	atomic_long exchanges;
};

struct race_pair {
	struct race *r;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
};

static int race_sender(void *arg)
{
	struct race_pair *p = arg;
	for (long i = 0; !atomic_load(&p->r->stop); i++)
		if (!CHECK_EQ(weft_channel_send(p->tx, &i), 0))
			break;
	weft_channel_tx_release(p->tx);
	return 0;
}

static int race_receiver(void *arg)
{
	struct race_pair *p = arg;
	long v;
	int rc;
	while ((rc = weft_channel_receive(p->rx, &v)) == 0)
		atomic_fetch_add(&p->r->exchanges, 1);
	CHECK_EQ(rc, WEFT_EEND);
	weft_channel_rx_release(p->rx);
	return 0;
}

static void *race_dumper(void *arg)
{
	struct race *r = arg;
	size_t cap = 1 << 18;
	char *buf = malloc(cap);
	if (buf == NULL) {
		atomic_store(&r->bad, 1);
		return NULL;
	}
	int want = (int)weft_test_scale(40);
	while (atomic_load(&r->dumps) < want) {
		size_t len = 0;
		if (weft_runtime_dump_buf(r->rt, WEFT_DUMP_TEXT, buf, cap,
			    &len) != 0 ||
			len == 0 || len >= cap ||
			strstr(buf, "weft runtime: workers=") != buf)
			atomic_store(&r->bad, 2);
		if (weft_runtime_dump_buf(r->rt, WEFT_DUMP_JSON, buf, cap,
			    &len) != 0 ||
			len == 0 || len >= cap)
			atomic_store(&r->bad, 3);
		atomic_fetch_add(&r->dumps, 1);
	}
	free(buf);
	atomic_store(&r->stop, 1);
	return NULL;
}

static int race_root(void *arg)
{
	struct race *r = arg;
	struct race_pair pairs[4];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 4; i++) {
		pairs[i].r = r;
		CHECK_EQ(weft_channel_open(&pairs[i].tx, &pairs[i].rx,
				 sizeof(long), 0),
			0);
		CHECK_EQ(weft_group_spawn(g, race_sender, &pairs[i]), 0);
		CHECK_EQ(weft_group_spawn(g, race_receiver, &pairs[i]), 0);
	}
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, race_dumper, r), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	return 0;
}

static void test_dump__dumps_race_parks_and_wakes(void **state)
{
	struct race r;
	memset(&r, 0, sizeof r);
	r.rt = weft_test_runtime_create(WEFT_TEST_WORKERS(state));
	weft_error_t *err = NULL;
	assert_int_equal(weft_runtime_run(r.rt, race_root, &r, &err), 0);
	assert_null(err);
	assert_int_equal(weft_runtime_destroy(r.rt), 0);
	assert_int_equal(atomic_load(&r.bad), 0);
	assert_true(atomic_load(&r.exchanges) > 0);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_dump__parked_tasks_show_where_and_on_what),
		WEFT_TEST(
			test_dump__tasks_parked_alike_each_show_their_own_frames),
		WEFT_TEST(test_dump__dumps_race_parks_and_wakes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
