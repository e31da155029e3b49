/* Test helpers (see support.h). */
#include "support.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define SUPPORT_MAX_FAILURES 64

struct support_failure {
	const char *file;
	int line;
	const char *expr;
	long long a, b;
	int has_values;
};

static struct support_failure support_failures[SUPPORT_MAX_FAILURES];
/* Slots are claimed with a relaxed fetch_add; the main thread reads them
 * after joining every weft thread (weft_runtime_destroy), which orders
 * the writes before the reads. */
static atomic_int support_nfailures;

static void support_record(const char *file, int line, const char *expr,
	long long a, long long b, int has_values)
{
	int i = atomic_fetch_add_explicit(&support_nfailures, 1,
		memory_order_relaxed);
	if (i >= SUPPORT_MAX_FAILURES)
		return;
	support_failures[i] = (struct support_failure){ file, line, expr, a, b,
		has_values };
}

int weft_test_check(int ok, const char *file, int line, const char *expr)
{
	if (!ok)
		support_record(file, line, expr, 0, 0, 0);
	return ok;
}

int weft_test_check_eq(long long a, long long b, const char *file, int line,
	const char *expr)
{
	if (a != b)
		support_record(file, line, expr, a, b, 1);
	return a == b;
}

/* The schedule seed of the last runtime a helper below created (0: none,
 * the workers ran in parallel): WEFT_SEED, a cfg.seed the test chose, or
 * one drawn per run under WEFT_TEST_SEEDED=1.  Main thread only. */
static unsigned long long support_seed;
static uint64_t support_seed_state;

/* Gives cfg a fresh seed per run when WEFT_TEST_SEEDED=1 and it has
 * none, and remembers the run's seed for support_print_seed. */
static void support_seed_config(weft_config_t *cfg)
{
	const char *v = getenv("WEFT_TEST_SEEDED");
	if (cfg->seed == 0 && v != NULL && strcmp(v, "1") == 0) {
		if (support_seed_state == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			support_seed_state = ((uint64_t)ts.tv_sec << 30 ^
						     (uint64_t)ts.tv_nsec ^
						     (uint64_t)getpid()) |
				1;
		}
		cfg->seed = weft_test_rand(&support_seed_state) | 1;
	}
	support_seed = cfg->seed;
}

void weft_test_print_seed(void)
{
	if (support_seed != 0)
		print_error("this run's schedule was seeded: replay it with "
			    "WEFT_SEED=%llu (docs/semantics.md rule 47)\n",
			support_seed);
}

static void support_assert_no_failures(void)
{
	int n = atomic_exchange(&support_nfailures, 0);
	if (n > 0)
		weft_test_print_seed();
	for (int i = 0; i < n && i < SUPPORT_MAX_FAILURES; i++) {
		struct support_failure *f = &support_failures[i];
		if (f->has_values)
			print_error("CHECK failed at %s:%d: %s (%lld vs "
				    "%lld)\n",
				f->file, f->line, f->expr, f->a, f->b);
		else
			print_error("CHECK failed at %s:%d: %s\n", f->file,
				f->line, f->expr);
	}
	assert_int_equal(n, 0);
}

void weft_test_assert_no_leaks(void)
{
	weft_debug_stats_t st;
	weft_debug_stats(&st);
	assert_int_equal(st.live_runtimes, 0);
	assert_int_equal(st.live_tasks, 0);
	assert_int_equal(st.live_fibers, 0);
	assert_int_equal(st.live_stacks, 0);
	assert_int_equal(st.live_groups, 0);
	assert_int_equal(st.live_scopes, 0);
	assert_int_equal(st.live_allocs, 0);
	assert_int_equal(st.live_bytes, 0);
}

weft_runtime_t *weft_test_runtime_create(unsigned workers)
{
	weft_config_t cfg;
	assert_int_equal(weft_config_init(&cfg), 0);
	cfg.workers = workers;
	support_seed_config(&cfg);
	weft_runtime_t *rt = NULL;
	int rc = weft_runtime_create(&rt, &cfg);
	if (rc != 0)
		print_error("runtime create: %s\n", cfg.message);
	assert_int_equal(rc, 0);
	assert_non_null(rt);
	return rt;
}

int weft_test_run_err(unsigned workers, weft_fn fn, void *arg,
	weft_error_t **err)
{
	weft_runtime_t *rt = weft_test_runtime_create(workers);
	int rc = weft_runtime_run(rt, fn, arg, err);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	support_assert_no_failures();
	return rc;
}

int weft_test_run_cfg(weft_config_t *cfg, weft_fn fn, void *arg)
{
	weft_runtime_t *rt;
	support_seed_config(cfg);
	int rc = weft_runtime_create(&rt, cfg);
	if (rc < 0)
		print_error("weft_runtime_create: %s\n", cfg->message);
	assert_int_equal(rc, 0);
	rc = weft_runtime_run(rt, fn, arg, NULL);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	support_assert_no_failures();
	weft_test_assert_no_leaks();
	return rc;
}

int weft_test_death(void (*child)(void *), void *arg, char *buf, size_t size)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		child(arg);
		_exit(3); /* the child was expected to end the process */
	}
	close(fds[1]);
	size_t len = 0;
	ssize_t n;
	while (len + 1 < size &&
		(n = read(fds[0], buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fds[0]);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

void weft_test_assert_abort(int status, const char *buf, ...)
{
	bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
	va_list ap;
	va_start(ap, buf);
	for (const char *want; ok && (want = va_arg(ap, const char *));)
		ok = strstr(buf, want) != NULL;
	va_end(ap);
	if (ok)
		return;
	if (WIFSIGNALED(status))
		print_error("the child ended on signal %d\n", WTERMSIG(status));
	else
		print_error("the child exited with code %d\n",
			WEXITSTATUS(status));
	print_error("its stderr:\n%s\n", buf);
	va_start(ap, buf);
	for (const char *want; (want = va_arg(ap, const char *));)
		if (strstr(buf, want) == NULL)
			print_error("missing: \"%s\"\n", want);
	va_end(ap);
	fail_msg("the child did not abort as expected");
}

int weft_test_run(unsigned workers, weft_fn fn, void *arg)
{
	weft_error_t *err = NULL;
	int rc = weft_test_run_err(workers, fn, arg, &err);
	if (err) {
		char buf[2048];
		weft_error_format(err, buf, sizeof buf);
		print_message("root failed: %s", buf);
		weft_error_free(err);
		weft_test_print_seed();
	}
	weft_test_assert_no_leaks();
	return rc;
}

void weft_test_root(void **state, weft_fn root, void *arg)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	/* A test registered without a worker count (cmocka_unit_test)
	 * would otherwise ask for a runtime of zero workers. */
	assert_true(workers > 0);
	int rc = weft_test_run(workers, root, arg);
	if (rc != 0)
		weft_test_print_seed();
	assert_int_equal(rc, 0);
}

long weft_test_scale(long plain)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	long n = plain / 10;
#else
	long n = plain;
#endif
	const char *v = getenv("WEFT_TEST_SCALE");
	if (v && *v)
		n = n * atol(v) / 100;
	return n > 0 ? n : 1;
}

uint64_t weft_test_rand(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * UINT64_C(2685821657736338717);
}

weft_task_t *weft_test_spawn(weft_group_t *g, weft_fn fn, void *arg)
{
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .handle = &h };
	CHECK_EQ(weft_group_spawn_opts(g, fn, arg, &o), 0);
	return h;
}

int weft_test_yield_until(atomic_int *p, int want)
{
	for (long i = 0; i < 50000000L; i++) {
		if (atomic_load(p) >= want)
			return 1;
		weft_yield();
	}
	return 0;
}

static int support_count_dir(const char *path)
{
	DIR *d = opendir(path);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int weft_test_count_threads(void)
{
	return support_count_dir("/proc/self/task");
}

/* The directory stream's own fd is counted every time, so counts taken
 * this way compare equal. */
int weft_test_count_fds(void)
{
	return support_count_dir("/proc/self/fd");
}

int weft_test_settle_threads(int expected)
{
	struct timespec ms = { 0, 1000000 };
	int n = weft_test_count_threads();
	for (int i = 0; i < 10000 && n != expected; i++) {
		nanosleep(&ms, NULL);
		n = weft_test_count_threads();
	}
	return n;
}

static void *support_nothing(void *arg)
{
	return arg;
}

int weft_test_baseline_threads(void)
{
	/* Start and join one thread, then wait until the count has been
	 * stable for 20 ms (the joined thread leaves /proc/self/task shortly
	 * after pthread_join). */
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, support_nothing, NULL), 0);
	pthread_join(th, NULL);
	struct timespec ms = { 0, 1000000 };
	int n = weft_test_count_threads();
	for (int stable = 0, i = 0; stable < 20 && i < 10000; i++) {
		nanosleep(&ms, NULL);
		int m = weft_test_count_threads();
		stable = m == n ? stable + 1 : 0;
		n = m;
	}
	return n;
}

unsigned weft_test_seed(void)
{
	const char *s = getenv("WEFT_TEST_SEED");
	unsigned seed = s && *s ? (unsigned)strtoul(s, NULL, 10)
				: (unsigned)(weft_now() & 0xffff);
	print_message("WEFT_TEST_SEED=%u\n", seed);
	return seed;
}

double weft_test_stress_seconds(double plain_default)
{
	const char *s = getenv("WEFT_STRESS_SECONDS");
	double sec = s && *s ? atof(s) : plain_default;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	sec /= 4;
#endif
	return sec;
}

/* {======================================================= sockets */

int weft_test_connect_local(weft_stream_t **s, int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return weft_tcp_connect_addr(s, (struct sockaddr *)&a);
}

int weft_test_tcp_pair(weft_stream_t **a, weft_stream_t **b)
{
	weft_listener_t *l;
	int rc = weft_tcp_listen(&l, "127.0.0.1", 0, 0);
	if (!CHECK_EQ(rc, 0))
		return rc;
	rc = weft_test_connect_local(b, weft_listener_port(l));
	if (CHECK_EQ(rc, 0)) {
		rc = weft_listener_accept(l, a);
		if (!CHECK_EQ(rc, 0))
			weft_stream_close(*b);
	}
	CHECK_EQ(weft_listener_close(l), 0);
	return rc;
}

/* }======================================================= */

int weft_test_dump_until(const char *want)
{
	size_t size = 1 << 16;
	char *buf = malloc(size);
	if (buf == NULL)
		return -1;
	int rc = -1;
	for (int tries = 0; tries < 2000 && rc != 0; tries++) {
		size_t len = 0;
		if (weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, buf, size,
			    &len) == 0 &&
			strstr(buf, want) != NULL)
			rc = 0;
		else if (weft_sleep(WEFT_MSEC) != 0)
			break;
	}
	free(buf);
	return rc;
}

int weft_test_resident(const void *p)
{
	long page = sysconf(_SC_PAGESIZE);
	void *base = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
	unsigned char v = 0;
	if (mincore(base, (size_t)page, &v) != 0)
		return -1;
	return v & 1;
}
