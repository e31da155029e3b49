/* Tests for what helps to look into a running or hung program from the
 * outside: thread names (runtime/core/sched.c, runtime/io/io.c,
 * runtime/thread/offload.c) and the dump on a signal
 * (weft_config_t.dump_signal, runtime/io/signal.c).  The gdb extension
 * has its own test, tests/integration/gdb_weft.sh.
 *
 * The dump test sends its signal to this process only (kill(getpid(),
 * ...): ctest runs test binaries in parallel); weft's threads block
 * signals, so the kernel hands it to the test's main thread, inside
 * weft_runtime_run, whose libuv handler forwards it to the I/O thread.
 * It redirects stderr (fd 2) to a temporary file while the runtime
 * runs and reads the dump back from there.
 *
 * Every concurrent test runs at 1, 2 and 4 workers, leak-checked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>
#include "weft/signal.h"

#include "support.h"

/* {======================================================= thread names */

/* Whether some thread of this process is named `name` (its comm). */
static int thread_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	if (d == NULL)
		return 0;
	int found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], comm[32] = "";
		snprintf(path, sizeof path, "/proc/self/task/%s/comm",
			e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue; /* the thread ended meanwhile */
		if (fgets(comm, sizeof comm, f) != NULL) {
			comm[strcspn(comm, "\n")] = '\0';
			found = strcmp(comm, name) == 0;
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/* Runs on an offload thread: copies its own name into arg. */
static int own_name(void *arg, void **result)
{
	char *out = arg;
	FILE *f = fopen("/proc/thread-self/comm", "r");
	if (f == NULL)
		return -1;
	if (fgets(out, 32, f) != NULL)
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
	*result = out;
	return 0;
}

struct names_test {
	unsigned workers;
};

static int names_root(void *arg)
{
	struct names_test *nt = arg;
	for (unsigned i = 0; i < nt->workers; i++) {
		char name[24];
		snprintf(name, sizeof name, "weft-w%u", i);
		CHECK(thread_named(name));
	}
	char name[24];
	snprintf(name, sizeof name, "weft-w%u", nt->workers);
	CHECK(!thread_named(name));
	CHECK(thread_named("weft-io"));
	/* The pool's first thread of this runtime. */
	char off[32] = "";
	void *res = NULL;
	CHECK_EQ(weft_to_thread(own_name, off, &res, NULL), 0);
	CHECK(res == off);
	CHECK(strcmp(off, "weft-off0") == 0);
	return 0;
}

static void test_observe__threads_are_named(void **state)
{
	struct names_test nt = { WEFT_TEST_WORKERS(state) };
	weft_test_root(state, names_root, &nt);
}

/* }======================================================= */

/* {======================================================= dump signal */

struct dump_test {
	int fd; /* the file stderr goes to */
	weft_event_t *go;
	int saw_dump;
};

/* Parks on the event until the root has seen the dump. */
static int parked_child(void *arg)
{
	struct dump_test *dt = arg;
	return weft_event_wait(dt->go);
}

/* Whether the file holds a whole dump (its last line) naming the task. */
static int dump_complete(int fd)
{
	char buf[16384];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, "weft: end of dump") != NULL;
}

static int dump_root(void *arg)
{
	struct dump_test *dt = arg;
	if (!CHECK_EQ(weft_event_create(&dt->go), 0))
		return -1;
	weft_group_t *g;
	if (!CHECK_EQ(weft_group_open(&g), 0))
		return -1;
	CHECK_EQ(weft_group_spawn_named(g, "dump-me-child", parked_child, dt),
		0);
	/* Until the child is parked, so that the dump shows it parked. */
	while (weft_event_waiting(dt->go) == 0)
		CHECK_EQ(weft_sleep(1000000), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	/* Bounded by ctest's timeout: a dump that never comes hangs. */
	while (!dump_complete(dt->fd))
		CHECK_EQ(weft_sleep(1000000), 0);
	dt->saw_dump = 1;
	/* The runtime carries on: the child wakes and the group joins. */
	CHECK_EQ(weft_event_set(dt->go), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(dt->go), 0);
	return 0;
}

static void test_observe__dump_signal_writes_the_tree_and_carries_on(
	void **state)
{
	struct dump_test dt = { 0 };
	char path[] = "/tmp/weft-observe-XXXXXX";
	dt.fd = mkstemp(path);
	assert_true(dt.fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(dt.fd, STDERR_FILENO) >= 0);
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = WEFT_TEST_WORKERS(state);
	cfg.dump_signal = SIGUSR1;
	int rc = weft_test_run_cfg(&cfg, dump_root, &dt);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(rc, 0);
	assert_true(dt.saw_dump);
	char buf[16384];
	ssize_t n = pread(dt.fd, buf, sizeof buf - 1, 0);
	close(dt.fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "weft: runtime dump (SIGUSR1"));
	assert_non_null(strstr(buf, "dump-me-child"));
	assert_non_null(strstr(buf, "main"));
	/* The runtime is gone: SIGUSR1 has its disposition back. */
	struct sigaction sa;
	assert_int_equal(sigaction(SIGUSR1, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_IGN);
}

/* }======================================================= */

int main(void)
{
	/* Ignored, not default (which ends the process): a dump watcher
	 * that did not catch the signal fails the test instead of killing
	 * the binary, and the test checks the disposition comes back. */
	signal(SIGUSR1, SIG_IGN);
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_observe__threads_are_named),
		WEFT_TEST(
			test_observe__dump_signal_writes_the_tree_and_carries_on),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
