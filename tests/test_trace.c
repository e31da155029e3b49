/* The trace (weft_config_t trace_path, trace_events, trace_buffer;
 * runtime/core/trace.c): the file is JSON that Perfetto opens, holding
 * the events of what the program did; a full buffer is written out, not
 * dropped; a runtime the program never destroyed still leaves a complete
 * file at exit; and the stderr lines of a one-worker run are exactly the
 * expected ones.
 *
 * The file is checked by python3 (json.load and a few structural checks:
 * slices of one track do not overlap, every flow's end has a start). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

/* {======================================================= helpers */

/* Checks the trace file argv[1]: valid JSON in the trace event format,
 * tracks named, slices of a track not overlapping, flows matched, no
 * event dropped; then what argv[2] asks for (a Python expression over
 * `ev`, the events, and `args`, the remaining arguments). */
static const char trace_check_py[] =
	"import json, sys, collections\n"
	"d = json.load(open(sys.argv[1]))\n"
	"ev = d['traceEvents']\n"
	"args = sys.argv[3:]\n"
	"assert d['otherData']['dropped_events'] == '0', d['otherData']\n"
	"names = {e['args']['name'] for e in ev\n"
	"         if e['ph'] == 'M' and e['name'] == 'thread_name'}\n"
	"assert 'weft-w0' in names and 'weft-io' in names, names\n"
	"tracks = collections.defaultdict(list)\n"
	"for e in ev:\n"
	"    assert e['ph'] in 'MXisf', e\n"
	"    if e['ph'] == 'X':\n"
	"        tracks[e['tid']].append((e['ts'], e['ts'] + e['dur']))\n"
	"for tid, sl in tracks.items():\n"
	"    sl.sort()\n"
	"    for a, b in zip(sl, sl[1:]):\n"
	"        assert a[1] <= b[0] + 0.0015, (tid, a, b)\n"
	"starts = {e['id'] for e in ev if e['ph'] == 's'}\n"
	"for e in ev:\n"
	"    if e['ph'] == 'f':\n"
	"        assert e['id'] in starts, e\n"
	"def named(ph, name):\n"
	"    return [e for e in ev if e['ph'] == ph and e['name'] == name]\n"
	"ok = eval(sys.argv[2])\n"
	"if not ok:\n"
	"    print('trace check failed:', sys.argv[2], args)\n"
	"    sys.exit(1)\n";

/* Runs the check on path with the expression and its arguments; returns
 * the exit status of python3 (0: every check held). */
static int trace_check(const char *path, const char *expr, const char *a1,
	const char *a2)
{
	char script[] = "/tmp/weft-trace-check-XXXXXX";
	int fd = mkstemp(script);
	assert_true(fd >= 0);
	size_t n = sizeof trace_check_py - 1;
	assert_int_equal(write(fd, trace_check_py, n), (ssize_t)n);
	close(fd);
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "python3 %s %s \"%s\" %s %s", script, path,
		expr, a1 ? a1 : "", a2 ? a2 : "");
	int st = system(cmd);
	unlink(script);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void trace_tmp(char path[64])
{
	snprintf(path, 64, "/tmp/weft-trace-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
}

static weft_config_t trace_cfg(unsigned workers, const char *path)
{
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = workers;
	cfg.trace_path = path;
	return cfg;
}

/* }======================================================= */

/* {======================================================= the file */

struct mixed {
	weft_event_t *ev;
	weft_lock_t *lock;
	uint64_t root_id;
	atomic_int spun;
};

static int mixed_event_waiter(void *arg)
{
	struct mixed *m = arg;
	return weft_event_wait(m->ev);
}

static int mixed_lock_taker(void *arg)
{
	struct mixed *m = arg;
	CHECK_EQ(weft_lock_acquire(m->lock), 0);
	return weft_lock_release(m->lock);
}

/* Long enough to park for sure (a deadline already due when the sleep
 * would park makes it return without parking), and to keep the root's
 * join waiting: so the trace holds both parks. */
static int mixed_sleeper(void *arg)
{
	(void)arg;
	return weft_sleep((int64_t)100 * 1000 * 1000);
}

/* A file operation: one I/O operation on the I/O thread. */
static int mixed_file(void *arg)
{
	(void)arg;
	int fd;
	CHECK_EQ(weft_fs_open("/dev/null", O_RDONLY, 0, &fd), 0);
	return weft_fs_close(fd);
}

/* CPU work that yields: at 2+ workers, idle workers steal these. */
static int mixed_spinner(void *arg)
{
	struct mixed *m = arg;
	for (int i = 0; i < 200; i++)
		CHECK_EQ(weft_yield(), 0);
	atomic_fetch_add(&m->spun, 1);
	return 0;
}

static int mixed_root(void *arg)
{
	struct mixed *m = arg;
	m->root_id = weft_current_task_id();
	CHECK_EQ(weft_event_create(&m->ev), 0);
	CHECK_EQ(weft_lock_create(&m->lock), 0);
	CHECK_EQ(weft_lock_acquire(m->lock), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn_named(g, "ev-waiter", mixed_event_waiter, m),
		0);
	CHECK_EQ(weft_group_spawn_named(g, "lock-taker", mixed_lock_taker, m),
		0);
	CHECK_EQ(weft_group_spawn(g, mixed_sleeper, m), 0);
	CHECK_EQ(weft_group_spawn(g, mixed_file, m), 0);
	/* A name that is not UTF-8: the file stays JSON, with U+FFFD. */
	CHECK_EQ(weft_group_spawn_named(g, "spin\xff", mixed_spinner, m), 0);
	for (int i = 1; i < 8; i++)
		CHECK_EQ(weft_group_spawn(g, mixed_spinner, m), 0);
	while (weft_event_waiting(m->ev) != 1 ||
		weft_lock_waiting(m->lock) != 1)
		CHECK_EQ(weft_yield(), 0);
	CHECK_EQ(weft_event_set(m->ev), 0);
	CHECK_EQ(weft_lock_release(m->lock), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(m->ev), 0);
	CHECK_EQ(weft_lock_destroy(m->lock), 0);
	return 0;
}

/* Every kind of event, from a run with parks on an event, a lock, a
 * sleep, a join and an I/O operation. */
static const char mixed_expect[] =
	"[e for e in named('X', 'ev-waiter')]"
	" and [e for e in named('X', 'lock-taker')]"
	" and [e for e in named('i', 'spawn') if e['args']['name'] == "
	"'ev-waiter' and e['args']['parent'] == int(args[0])]"
	" and [e for e in named('i', 'spawn') if e['args']['name'] == "
	"'spin\\ufffd']"
	" and {'event', 'lock', 'sleep', 'join'} <= "
	"{e['args']['reason'] for e in named('i', 'park')}"
	/* What each park waits on.  The lock's owner is read as the taker
	 * switches out: the root, or already the taker itself when the
	 * root's release handed the lock over meanwhile. */
	" and [e for e in named('i', 'park') if e['args'].get('on') == "
	"'lock' and e['args'].get('ref', 0) > 0 and "
	"e['args']['object'].startswith('0x')]"
	" and [e for e in named('i', 'park') if e['args'].get('on') == "
	"'event']"
	" and [e for e in named('i', 'park') if e['args'].get('on') == "
	"'group' and e['args']['ref'] > 0]"
	" and [e for e in named('i', 'wake') if e['args']['by'] == "
	"int(args[0])]"
	" and [e for e in named('i', 'wake') if e['args']['by'] in "
	"('io', 'sched')]"
	" and [e for e in named('i', 'end') if e['args']['task'] == "
	"int(args[0]) and e['args']['rc'] == 0]"
	" and len(named('i', 'end')) == 13"
	" and named('s', 'wake') and named('f', 'wake')"
	" and [e for e in named('i', 'io start') if e['tid'] == int(args[1])]"
	" and [e for e in named('i', 'io done') if e['tid'] == int(args[1])]";

static void test_trace__the_file_is_json_with_every_kind_of_event(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	char path[64];
	trace_tmp(path);
	weft_config_t cfg = trace_cfg(workers, path);
	struct mixed m = { 0 };
	assert_int_equal(weft_test_run_cfg(&cfg, mixed_root, &m), 0);
	assert_int_equal(atomic_load(&m.spun), 8);
	char root[24], io[24];
	snprintf(root, sizeof root, "%llu", (unsigned long long)m.root_id);
	snprintf(io, sizeof io, "%u", workers); /* the I/O thread's track */
	assert_int_equal(trace_check(path, mixed_expect, root, io), 0);
	unlink(path);
}

struct hog {
	atomic_int go;
};

static int hog_setter(void *arg)
{
	struct hog *h = arg;
	atomic_store(&h->go, 1);
	return 0;
}

/* Holds its worker, without a checkpoint, until hog_setter ran. */
static int hog_spinner(void *arg)
{
	struct hog *h = arg;
	int64_t give_up = weft_now() + (int64_t)30 * 1000 * 1000 * 1000;
	while (!atomic_load(&h->go) && weft_now() < give_up)
		;
	CHECK(atomic_load(&h->go));
	return 0;
}

/* The join runs the newest child inline first: the spinner, which holds
 * this worker until the setter ran; the setter is in this worker's
 * deque, so another worker must steal it. */
static int steal_root(void *arg)
{
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn_named(g, "setter", hog_setter, arg), 0);
	CHECK_EQ(weft_group_spawn_named(g, "spinner", hog_spinner, arg), 0);
	return weft_group_join(g, NULL);
}

/* A steal is an instant on the thief's track, naming the victim, and
 * the stolen task's slice is on the thief's track too. */
static void test_trace__a_steal_is_an_event_on_the_thief_track(void **state)
{
	char path[64];
	trace_tmp(path);
	weft_config_t cfg = trace_cfg(WEFT_TEST_WORKERS(state), path);
	struct hog h = { 0 };
	assert_int_equal(weft_test_run_cfg(&cfg, steal_root, &h), 0);
	assert_int_equal(trace_check(path,
				 "[s for s in named('i', 'steal') "
				 "for x in named('X', 'setter') "
				 "if s['args']['victim'] != 'weft-w%d' % "
				 "s['tid'] "
				 "and x['tid'] == s['tid'] "
				 "and x['args']['task'] == s['args']['task']]",
				 NULL, NULL),
		0);
	unlink(path);
}

/* }======================================================= */

/* {======================================================= buffers */

static int quick(void *arg)
{
	(void)arg;
	return 0;
}

#define MANY 300

static int many_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < MANY; i++)
		CHECK_EQ(weft_group_spawn_named(g, "many", quick, NULL), 0);
	return weft_group_join(g, NULL);
}

/* A buffer of 16 events fills many times over: each time its thread
 * writes it out, so every event is in the file and none is dropped. */
static void test_trace__a_full_buffer_is_written_out_not_dropped(void **state)
{
	char path[64];
	trace_tmp(path);
	weft_config_t cfg = trace_cfg(WEFT_TEST_WORKERS(state), path);
	cfg.trace_buffer = 16;
	assert_int_equal(weft_test_run_cfg(&cfg, many_root, NULL), 0);
	assert_int_equal(trace_check(path,
				 "len([e for e in named('i', 'spawn') if "
				 "e['args']['name'] == 'many']) == 300 and "
				 "len(named('i', 'end')) == 301 and "
				 "len(named('X', 'many')) >= 300",
				 NULL, NULL),
		0);
	unlink(path);
}

/* }======================================================= */

/* {======================================================= exit */

static int exit_root(void *arg)
{
	(void)arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn_named(g, "before-exit", quick, NULL), 0);
	return weft_group_join(g, NULL);
}

/* In a fresh process (this binary run again, see main): a traced
 * runtime that is never destroyed.  Not a forked child: a fork of this
 * process would inherit libuv's thread pool of earlier tests without its
 * threads, and libuv's destructor would wait for them at exit. */
static int exit_child(const char *path)
{
	weft_config_t cfg = trace_cfg(2, path);
	weft_runtime_t *rt;
	if (weft_runtime_create(&rt, &cfg) != 0)
		return 3;
	if (weft_runtime_run(rt, exit_root, NULL, NULL) != 0)
		return 4;
	exit(0);
}

static void test_trace__a_runtime_never_destroyed_leaves_a_complete_file(
	void **state)
{
	(void)state;
	/* The child re-executes this binary, which a user-mode emulator
	 * (ctest sets WEFT_TEST_EMULATED) cannot do without binfmt_misc. */
	const char *emu = getenv("WEFT_TEST_EMULATED");
	if (emu != NULL && *emu != '\0') {
		print_message("skipped under %s: exec of /proc/self/exe\n",
			emu);
		skip();
	}
	char path[64];
	trace_tmp(path);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The runtime is left on purpose: no leak report. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		execl("/proc/self/exe", "test_trace", "exit-child", path,
			(char *)NULL);
		_exit(127);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(trace_check(path,
				 "named('X', 'before-exit') and "
				 "len(named('i', 'end')) == 2",
				 NULL, NULL),
		0);
	unlink(path);
}

/* }======================================================= */

/* {======================================================= lines */

struct lines {
	weft_event_t *ev;
	uint64_t root, child;
};

static int lines_child(void *arg)
{
	struct lines *l = arg;
	l->child = weft_current_task_id();
	return weft_event_wait(l->ev);
}

static int lines_root(void *arg)
{
	struct lines *l = arg;
	l->root = weft_current_task_id();
	CHECK_EQ(weft_event_create(&l->ev), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn_named(g, "waiter", lines_child, l), 0);
	/* One worker: the yield runs the child, which parks on the event. */
	CHECK_EQ(weft_yield(), 0);
	CHECK_EQ(weft_event_set(l->ev), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(l->ev), 0);
	return 0;
}

/* Runs lines_root at one worker with trace_events on and stderr into a
 * file; returns what was written to stderr, the task ids in *l. */
static char *lines_run(struct lines *l)
{
	char path[64];
	trace_tmp(path);
	int fd = open(path, O_RDWR | O_TRUNC);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = 1;
	cfg.trace_events = 1;
	int rc = weft_test_run_cfg(&cfg, lines_root, l);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(rc, 0);
	static char buf[8192];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	return buf;
}

/* At one worker the lines are exactly these, in this order, and the
 * same again in a second run (ids aside, which keep counting in one
 * process). */
static void test_trace__event_lines_at_one_worker_are_exactly_these(
	void **state)
{
	(void)state;
	for (int run = 0; run < 2; run++) {
		struct lines l = { 0 };
		const char *got = lines_run(&l);
		unsigned long long r = l.root, c = l.child;
		char want[1024];
		snprintf(want, sizeof want,
			"weft-trace: w0 start %llu main\n"
			"weft-trace: w0 start %llu waiter\n"
			"weft-trace: w0 park %llu event\n"
			"weft-trace: w0 wake %llu by %llu\n"
			"weft-trace: w0 park %llu join\n"
			"weft-trace: w0 end %llu 0\n"
			"weft-trace: w0 wake %llu by %llu\n"
			"weft-trace: w0 end %llu 0\n",
			r, c, c, c, r, r, c, r, c, r);
		assert_string_equal(got, want);
	}
}

/* }======================================================= */

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "exit-child") == 0)
		return exit_child(argv[2]);
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_trace__the_file_is_json_with_every_kind_of_event),
		WEFT_TEST_AT(test_trace__a_steal_is_an_event_on_the_thief_track,
			2),
		WEFT_TEST_AT(test_trace__a_steal_is_an_event_on_the_thief_track,
			4),
		WEFT_TEST(test_trace__a_full_buffer_is_written_out_not_dropped),
		cmocka_unit_test(
			test_trace__a_runtime_never_destroyed_leaves_a_complete_file),
		cmocka_unit_test(
			test_trace__event_lines_at_one_worker_are_exactly_these),
	};
	return WEFT_RUN_TESTS(tests);
}
