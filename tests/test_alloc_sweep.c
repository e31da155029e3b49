/* Allocation sweep over every allocation site of the runtime.
 *
 * Each scenario below is run again and again, the n-th weft allocation
 * from the start of the run made to fail (weft_debug_fail_alloc(n)), for
 * n = 1, 2, ... until a run sees no injected failure (the sweep by
 * count).  After each run:
 *   - every call that saw the failure returned -ENOMEM (a scenario that
 *     sees another code records a violation, printed with its line), and
 *     the failure reached the run's result: a scenario passes every error
 *     up, so a run in which some call failed may not return 0;
 *   - every failure leaf of the run's error tree is -ENOMEM or a failure
 *     the scenario accounts for (odd_leaf);
 *   - the run without injection completed the whole scenario;
 *   - nothing is left: no heap block, task, stack, runtime, thread (the
 *     support's leak check), and the sanitizers saw nothing.
 * A run that hangs is caught by the ctest timeout of this binary.
 *
 * Site coverage.  In WEFT_DEBUG builds every injected failure is charged
 * to the call site of weft__alloc / weft__calloc that saw it
 * (runtime/base/alloc.c).  The count is process-wide, so which call the
 * n-th is depends on what the I/O thread and offload threads allocate
 * meanwhile: by count alone a sweep steps over some sites in one run and
 * not the next (58 to 68 of 75 sites failed, varying from run to run).
 * So the sweep of a scenario ends with the site pass: reach
 * tracking (alloc.c) lists the sites the scenario's runs reached, and
 * each of those that no run of the process has failed yet is failed by
 * site (weft__alloc_fail_site: the k-th call at that file:line, counting
 * that site's calls only), k = 1, 2, ... until a run sees no injected
 * failure, with the same checks.  The last test lists the call sites in
 * the source (every line of runtime/ that calls weft__alloc or
 * weft__calloc, outside base/alloc.[ch] and comments), prints "sites
 * failed / sites total" and fails unless every site was failed: a new
 * allocation site fails it, named, with "no scenario reaches it: add
 * one" when no scenario's run reached it.  The two sites of a parked
 * task's frames in the dump (core/inspect.c) are excused in a build
 * without libdw, which has no frames.  Sites are named by file and line,
 * so moving a call keeps the figure: both the list and the table follow
 * the source.
 *
 * Environment: WEFT_ALLOC_SWEEP_VERBOSE=1 prints every run;
 * WEFT_ALLOC_SWEEP_STRIDE=k fails only every k-th allocation (a sample,
 * for slow machines: no site pass, and the figure is not asserted);
 * WEFT_ALLOC_SWEEP_ONLY=<scenario> runs one scenario (debugging; the
 * figure is not asserted); WEFT_ALLOC_SWEEP_ALL_SITES=1 makes the site
 * pass fail every call of every site reached, failed already or not (a
 * deeper search, minutes long); WEFT_ALLOC_SWEEP_WORKERS=n runs every
 * scenario at n workers (other schedules, by hand). */
#define _GNU_SOURCE /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <weft.h>

#include "base/alloc.h"
#include "io/connect.h"
#include "support.h"

#define MAX_ITERATIONS 3000
#define MAX_SITES 512
#define SENTINEL ((void *)(uintptr_t)0x5eed)

/* {======================================================= bookkeeping */

/* What one run saw.  Written by tasks and offload threads, read by the
 * main thread after weft_runtime_run returned (which orders the writes
 * before the reads); fields several threads touch are atomic. */
struct sweep {
	atomic_int enomem;     /* calls that returned -ENOMEM */
	atomic_int cancelled;  /* calls cancelled unexpectedly */
	atomic_int violations; /* calls that returned something else */
	atomic_flag taken;
	char violation[200];  /* the first one */
	atomic_int completed; /* the scenario's last step was reached */
	int scratch;	      /* a scenario's own use */
};

/* Judges the code rc of a call at line: 0 and the codes in ok (a
 * 0-terminated list) are fine; -ENOMEM is counted; anything else is a
 * violation.  Returns rc. */
static int seen(struct sweep *w, int rc, int line, const int *ok)
{
	if (rc >= 0)
		return rc;
	if (rc == -ENOMEM) {
		atomic_fetch_add(&w->enomem, 1);
		return rc;
	}
	for (; *ok != 0; ok++)
		if (rc == *ok)
			return rc;
	if (rc == -ECANCELED) {
		/* A sibling's failure cancelled the caller's group: that
		 * failure must then reach the run's result. */
		atomic_fetch_add(&w->cancelled, 1);
		return rc;
	}
	if (!atomic_flag_test_and_set(&w->taken))
		snprintf(w->violation, sizeof w->violation,
			"line %d: unexpected code %d (%s)", line, rc,
			weft_err_name(rc));
	atomic_fetch_add(&w->violations, 1);
	return rc;
}

/* rc = call; goto out on any failure.  The variadic part lists the
 * documented codes other than -ENOMEM that the call may return here,
 * each followed by a comma. */
#define TRY(w, call, ...)                                                      \
	do {                                                                   \
		rc = seen((w), (call), __LINE__,                               \
			(const int[]){ __VA_ARGS__ 0 });                       \
		if (rc < 0)                                                    \
			goto out;                                              \
	} while (0)

/* As TRY, but goes on: for calls whose failure the scenario only passes
 * up at the end (first failure kept in *first). */
#define NOTE(w, first, call, ...)                                              \
	do {                                                                   \
		int note_rc_ = seen((w), (call), __LINE__,                     \
			(const int[]){ __VA_ARGS__ 0 });                       \
		if (note_rc_ < 0 && *(first) == 0)                             \
			*(first) = note_rc_;                                   \
	} while (0)

/* Joins g and folds its failure into rc: the first failure wins, but a
 * child's failure wins over what it caused in the caller: -ECANCELED,
 * or the end of a connection whose other end the child closed when it
 * failed (-ECONNRESET, -EPIPE, WEFT_EEND: the scenarios accept these
 * only as such consequences). */
static int join_into(struct sweep *w, weft_group_t *g, int rc)
{
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	(void)seen(w, jrc, __LINE__, (const int[]){ WEFT_ECHILD_FAILED, 0 });
	if (jrc == WEFT_ECHILD_FAILED &&
		(rc == 0 || rc == -ECANCELED || rc == -ECONNRESET ||
			rc == -EPIPE || rc == WEFT_EEND))
		return weft_fail_group(err);
	weft_error_free(err);
	return rc != 0 ? rc : jrc;
}

static int stride(void)
{
	const char *s = getenv("WEFT_ALLOC_SWEEP_STRIDE");
	int k = s != NULL ? atoi(s) : 1;
	return k > 1 ? k : 1;
}

/* The site charged with the latest injected failure: the one whose count
 * differs from the snapshot in *prev (which is then updated).  For the
 * verbose output. */
static struct weft__alloc_site prev_sites[512];
static size_t nprev_sites;

static const char *latest_site(char *buf, size_t size)
{
	struct weft__alloc_site now[512];
	size_t n = weft__alloc_failed_sites(now, 512);
	if (n > 512)
		n = 512;
	snprintf(buf, size, "-");
	for (size_t i = 0; i < n; i++)
		if (i >= nprev_sites ||
			now[i].failures != prev_sites[i].failures)
			snprintf(buf, size, "%s:%d",
				now[i].file != NULL ? now[i].file : "?",
				now[i].line);
	memcpy(prev_sites, now, n * sizeof *now);
	nprev_sites = n;
	return buf;
}

/* Set by a test before sweep(): slab stacks only (no guard pages) and
 * no abort on a missing join, for the paths only those reach. */
static int tweak_stacks_and_joins;
/* Set by a test before sweep(): a seeded schedule (baton.c's paths). */
static unsigned long long sweep_seed;
/* Set by a test before sweep(): the runtimes trace to this file. */
static const char *sweep_trace_path;
/* Set by a test before sweep(): the stall watchdog and the dump signal
 * (weft_config_t.stall_ms, .dump_signal). */
static unsigned sweep_stall_ms;
static int sweep_dump_signal;

static void make_cfg(weft_config_t *cfg, unsigned workers)
{
	assert_int_equal(weft_config_init(cfg), 0);
	cfg->workers = workers;
	const char *ow = getenv("WEFT_ALLOC_SWEEP_WORKERS");
	if (ow != NULL && atoi(ow) > 0)
		cfg->workers = (unsigned)atoi(ow);
	if (sweep_seed != 0)
		cfg->seed = sweep_seed;
	if (tweak_stacks_and_joins) {
		cfg->guarded_stacks = 0;
		cfg->abort_on_missing_join = 0;
	}
	cfg->trace_path = sweep_trace_path;
	cfg->stall_ms = sweep_stall_ms;
	cfg->dump_signal = sweep_dump_signal;
}

/* WEFT_ALLOC_SWEEP_ALL_SITES=1: the site pass fails every call of every
 * site a scenario reaches, failed already or not (a deeper search, for
 * a developer: minutes, not seconds). */
static int all_sites(void)
{
	const char *s = getenv("WEFT_ALLOC_SWEEP_ALL_SITES");
	return s != NULL && *s != '\0' && *s != '0';
}

/* "<layer>/<file>.c:<line>" for a __FILE__ under runtime/ into buf;
 * returns the part after "runtime/" (within file), or NULL for a file
 * elsewhere or unnamed. */
static const char *site_name(const char *file, int line, char *buf, size_t size)
{
	const char *r = file != NULL ? strstr(file, "runtime/") : NULL;
	if (r == NULL)
		return NULL;
	r += strlen("runtime/");
	snprintf(buf, size, "%s:%d", r, line);
	return r;
}

/* Whether the site named `name` ("<layer>/<file>.c:<line>") has been
 * failed so far in this process. */
static int site_failed(const char *name)
{
	static struct weft__alloc_site failed[MAX_SITES];
	size_t n = weft__alloc_failed_sites(failed, MAX_SITES);
	assert_true(n <= MAX_SITES);
	for (size_t i = 0; i < n; i++) {
		char buf[300];
		if (site_name(failed[i].file, failed[i].line, buf,
			    sizeof buf) != NULL &&
			strcmp(buf, name) == 0)
			return 1;
	}
	return 0;
}

/* The sites some scenario reached (the last test's message), and what
 * the site pass aimed at: names "<layer>/<file>.c:<line>". */
static char *reached_any[MAX_SITES];
static size_t nreached_any;

static int name_in(char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return 1;
	return 0;
}

/* What one run injects: the n-th allocation process-wide counted from
 * creation (from_create) or from the run, or (file != NULL) the k-th
 * call at file:line, counted from creation. */
struct target {
	long n;
	const char *file; /* "<layer>/<file>.c" */
	int line;
	long k;
};

/* The first leaf of err's tree whose code no scenario accounts for, or
 * 0.  Accounted for: -ENOMEM, the scenarios' own failures (-EIO, a
 * panic), and the end of a connection whose other end failed
 * (-ECONNRESET, -EPIPE, WEFT_EEND). */
static int odd_leaf(const weft_error_t *err, char *name, size_t size)
{
	for (size_t i = 0; i < weft_error_count(err); i++) {
		const weft_error_t *nested = weft_error_nested_at(err, i);
		int code = weft_error_code_at(err, i);
		if (nested != NULL) {
			int odd = odd_leaf(nested, name, size);
			if (odd != 0)
				return odd;
		}
		if (code == -ENOMEM || code == -EIO || code == WEFT_EPANIC ||
			code == -ECONNRESET || code == -EPIPE ||
			code == WEFT_EEND ||
			(nested != NULL && code == WEFT_ECHILD_FAILED))
			continue;
		snprintf(name, size, "%s", weft_error_task_name_at(err, i));
		return code;
	}
	return 0;
}

/* One run of root under t; judges it as the top of this file says and
 * adds 1 to *bad for a violation.  Returns the failures injected. */
static long run_once(const char *name, weft_fn root, unsigned workers,
	int from_create, const struct target *t, int *bad, int base_threads)
{
	const char *v = getenv("WEFT_ALLOC_SWEEP_VERBOSE");
	int verbose = v != NULL && *v != '\0' && *v != '0';
	struct sweep *w = calloc(1, sizeof *w);
	assert_non_null(w);
	atomic_flag_clear(&w->taken);
	long before = weft_debug_injected_failures();
	weft_config_t cfg;
	make_cfg(&cfg, workers);
	if (t->file != NULL)
		assert_int_equal(weft__alloc_fail_site(t->file, t->line, t->k),
			0);
	else if (from_create)
		weft_debug_fail_alloc(t->n);
	weft_runtime_t *rt = SENTINEL;
	int crc = weft_runtime_create(&rt, &cfg);
	int rc = 0;
	weft_error_t *err = NULL;
	const char *why = NULL;
	if (crc == 0) {
		if (t->file == NULL && !from_create)
			weft_debug_fail_alloc(t->n);
		rc = weft_runtime_run(rt, root, w, &err);
		weft_debug_fail_alloc(0);
		(void)weft__alloc_fail_site(NULL, 0, 0);
		assert_int_equal(weft_runtime_destroy(rt), 0);
	} else {
		weft_debug_fail_alloc(0);
		(void)weft__alloc_fail_site(NULL, 0, 0);
		if (crc != -ENOMEM || rt != SENTINEL)
			why = "runtime_create: not a clean -ENOMEM";
	}
	long injected = weft_debug_injected_failures() - before;
	char leaf[200];
	int odd = err != NULL ? odd_leaf(err, leaf, sizeof leaf) : 0;
	if (odd != 0)
		snprintf(leaf + strlen(leaf), sizeof leaf - strlen(leaf),
			": a failure leaf with code %d (%s)", odd,
			weft_err_name(odd));
	if (why != NULL)
		;
	else if (atomic_load(&w->violations) != 0)
		why = w->violation;
	else if (odd != 0)
		why = leaf;
	else if (injected == 0 && crc == 0 &&
		(rc != 0 || !atomic_load(&w->completed)))
		why = "the run without injection did not complete";
	else if (atomic_load(&w->enomem) != 0 && rc == 0)
		why = "a call failed with -ENOMEM but the run returned 0";
	else if (atomic_load(&w->cancelled) != 0 && rc == 0)
		why = "a call was cancelled but the run returned 0";
	else if (rc != 0 && rc != -ENOMEM && rc != WEFT_ECHILD_FAILED &&
		rc != WEFT_EPANIC)
		why = "the run returned an unexpected code";
	char at[300];
	if (t->file != NULL)
		snprintf(at, sizeof at, "site %s:%d k=%ld", t->file, t->line,
			t->k);
	else
		snprintf(at, sizeof at, "n=%ld", t->n);
	if (why != NULL) {
		print_error("%s, %u worker(s), %s: %s (run %d %s)\n", name,
			workers, at, why, rc, weft_err_name(rc));
		(*bad)++;
	}
	if (verbose) {
		char site[300];
		print_message("%s %s injected=%ld create=%d run=%d "
			      "enomem=%d completed=%d site %s\n",
			name, at, injected, crc, rc, atomic_load(&w->enomem),
			atomic_load(&w->completed),
			latest_site(site, sizeof site));
	}
	weft_error_free(err);
	free(w);
	weft_test_assert_no_leaks();
	assert_int_equal(weft_test_settle_threads(base_threads), base_threads);
	return injected;
}

/* The site pass: for each site this scenario reached that no run has
 * failed yet, runs with the k-th call there failing, k = 1, 2, ... until
 * a run sees no injected failure.  Sites reached only on a failure path
 * join the list as the runs reach them, hence the loop.  Returns the
 * runs made. */
static long sweep_sites(const char *name, weft_fn root, unsigned workers,
	int from_create, int *bad, int base_threads)
{
	static struct weft__alloc_site reached[MAX_SITES];
	static char *tried[MAX_SITES];
	size_t ntried = 0;
	long runs = 0;
	for (;;) {
		size_t n = weft__alloc_reached_sites(reached, MAX_SITES);
		assert_true(n <= MAX_SITES);
		char target[300];
		const char *file = NULL;
		int line = 0;
		for (size_t i = 0; i < n && file == NULL; i++) {
			const char *f = site_name(reached[i].file,
				reached[i].line, target, sizeof target);
			if (f == NULL || name_in(tried, ntried, target))
				continue;
			if (!name_in(reached_any, nreached_any, target)) {
				assert_true(nreached_any < MAX_SITES);
				reached_any[nreached_any++] = strdup(target);
			}
			if (!all_sites() && site_failed(target))
				continue;
			file = f;
			line = reached[i].line;
		}
		if (file == NULL)
			break;
		assert_true(ntried < MAX_SITES);
		tried[ntried++] = strdup(target);
		/* The target's file name, without ":<line>". */
		char fname[300];
		snprintf(fname, sizeof fname, "%.*s",
			(int)(strrchr(target, ':') - target), target);
		long k;
		for (k = 1; k <= MAX_ITERATIONS && *bad <= 10; k++) {
			struct target t = { 0, fname, line, k };
			runs++;
			if (run_once(name, root, workers, from_create, &t, bad,
				    base_threads) == 0)
				break;
		}
		assert_true(k <= MAX_ITERATIONS);
	}
	for (size_t i = 0; i < ntried; i++)
		free(tried[i]);
	return runs;
}

/* Runs root at `workers` workers: first without injection, then (by
 * count) with the n-th allocation failing, for n = 1, 1 + stride, ...
 * until a run sees no injected failure (with from_create the count
 * starts before weft_runtime_create, otherwise before
 * weft_runtime_run), then the site pass (sweep_sites) over the sites
 * these runs reached and no run failed.  by_count 0 skips the count
 * sweep: for a scenario that only adds sites to the other ones. */
static void sweep_mode(const char *name, weft_fn root, unsigned workers,
	int from_create, int by_count)
{
	const char *only = getenv("WEFT_ALLOC_SWEEP_ONLY");
	if (only != NULL && *only != '\0' && strcmp(only, name) != 0)
		return;
	weft__alloc_track_reached(1);
	/* A first run without injection: it must complete, and it starts
	 * the process-wide threads some scenarios use (libuv's pool for
	 * files and name resolution) before the thread count is taken. */
	struct sweep *first = calloc(1, sizeof *first);
	assert_non_null(first);
	atomic_flag_clear(&first->taken);
	weft_config_t fcfg;
	make_cfg(&fcfg, workers);
	int frc = weft_test_run_cfg(&fcfg, root, first);
	if (frc != 0 || !atomic_load(&first->completed))
		print_error("%s: the run without injection returned %d (%s); "
			    "%s\n",
			name, frc, weft_err_name(frc),
			atomic_load(&first->violations) ? first->violation
							: "no violation");
	assert_int_equal(frc, 0);
	assert_true(atomic_load(&first->completed));
	free(first);
	int base_threads = weft_test_baseline_threads();
	weft_test_assert_no_leaks();
	int bad = 0;
	long n = 0;
	char site[300];
	(void)latest_site(site, sizeof site);
	for (n = 1; by_count && n <= MAX_ITERATIONS; n += stride()) {
		struct target t = { n, NULL, 0, 0 };
		if (run_once(name, root, workers, from_create, &t, &bad,
			    base_threads) == 0 ||
			bad > 10)
			break;
	}
	assert_true(n <= MAX_ITERATIONS);
	long by_site = 0;
	if (stride() == 1 && bad == 0)
		by_site = sweep_sites(name, root, workers, from_create, &bad,
			base_threads);
	weft__alloc_track_reached(0);
	print_message("%s, %u worker(s): %ld runs by count, %ld by site\n",
		name, workers, by_count ? n : 0, by_site);
	assert_int_equal(bad, 0);
}

static void sweep(const char *name, weft_fn root, unsigned workers,
	int from_create)
{
	sweep_mode(name, root, workers, from_create, 1);
}

/* }======================================================= */

/* {======================================================= core */

static int child_fails(void *arg)
{
	(void)arg;
	(void)weft_sleep(WEFT_MSEC);
	return weft_fail(-EIO, "child failed after %d ms", 1);
}

static int child_sleeps(void *arg)
{
	struct sweep *w = arg;
	int rc = weft_sleep(WEFT_MSEC);
	return seen(w, rc, __LINE__, (const int[]){ -ECANCELED, 0 }) ==
			-ECANCELED
		? 0
		: rc;
}

static int service(void *arg)
{
	struct sweep *w = arg;
	int rc = weft_task_started(w);
	if (seen(w, rc, __LINE__, (const int[]){ 0 }) < 0)
		return rc;
	(void)weft_sleep(WEFT_MSEC);
	return 0;
}

/* Groups, spawn, start, a deadline scope, failing children: the error
 * group of the join is the run's result. */
static int core_root(void *arg)
{
	struct sweep *w = arg;
	weft_group_t *g;
	int rc = 0;
	TRY(w, weft_group_open(&g));
	void *value = NULL;
	NOTE(w, &rc, weft_group_start(g, service, w, &value));
	NOTE(w, &rc, weft_group_spawn(g, child_fails, w));
	NOTE(w, &rc, weft_group_spawn(g, child_sleeps, w));
	weft_scope_t *s;
	int src = seen(w, weft_fail_after(&s, WEFT_MSEC), __LINE__,
		(const int[]){ 0 });
	if (src == 0) {
		(void)weft_sleep(10 * WEFT_SEC);
		(void)weft_scope_exit(s);
		weft_scope_destroy(s);
	} else if (rc == 0) {
		rc = src;
	}
	rc = join_into(w, g, rc);
	if (rc == WEFT_ECHILD_FAILED)
		atomic_store(&w->completed, 1);
out:
	return rc == WEFT_ECHILD_FAILED ? 0 : rc;
}

/* }======================================================= */

/* {======================================================= tasks */

static void on_done(weft_task_t *h, void *arg)
{
	(void)h;
	atomic_fetch_add((atomic_int *)arg, 1);
}

static int child_panics(void *arg)
{
	(void)arg;
	weft_panic("out of luck %d", 7);
}

static int child_is_cancelled(void *arg)
{
	(void)arg;
	int rc = weft_sleep(10 * WEFT_SEC);
	return rc == -ECANCELED ? 0 : rc;
}

static int child_returns(void *arg)
{
	(void)arg;
	return 0;
}

static int child_reads_local(void *arg)
{
	weft_local_key_t *key = arg;
	void *v = NULL;
	int rc = weft_local_get(key, &v);
	return rc < 0 ? rc : 0;
}

/* Keeps a failure with weft_fail_group, then returns without joining a
 * second group (abort_on_missing_join off): the two are concatenated. */
static int child_leaves_a_group(void *arg)
{
	(void)arg;
	weft_group_t *g1, *g2;
	int rc = weft_group_open(&g1);
	if (rc < 0)
		return rc;
	if ((rc = weft_group_spawn(g1, child_fails, NULL)) < 0) {
		(void)weft_group_join(g1, NULL);
		return rc;
	}
	weft_error_t *err = NULL;
	if (weft_group_join(g1, &err) != WEFT_ECHILD_FAILED) {
		weft_error_free(err);
		return -ENOMEM; /* the child could not fail: no stack */
	}
	if ((rc = weft_group_open(&g2)) < 0) {
		weft_error_free(err);
		return rc;
	}
	(void)weft_group_spawn(g2, child_fails, NULL);
	return weft_fail_group(err);
}

static int child_sleeps_released(void *arg)
{
	(void)arg;
	return weft_sleep_until_opts(weft_now() + WEFT_MSEC,
		WEFT_SLEEP_RELEASE_STACK);
}

static int par_half_parks(void *arg)
{
	(void)arg;
	return weft_yield();
}

static int par_half_fails(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "a half fails");
}

static int keep_eio(int code, const char *message, void *arg)
{
	(void)message;
	(void)arg;
	return code == -EIO;
}

static int dump_sink(void *ctx, const char *data, size_t len)
{
	(void)data;
	*(size_t *)ctx += len;
	return 0;
}

/* Handles, done callbacks, names, cancellation reasons, task-locals and
 * contexts, a panic, error splitting, a full deque, inspection, a sleep
 * that releases its stack, a weft_par call. */
static int tasks_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	weft_group_t *g = NULL;
	weft_local_key_t *key = NULL;
	weft_context_t *ctx = NULL;
	weft_local_token_t tok;
	int bound = 0;
	atomic_int done = 0;
	TRY(w, weft_local_key_create(&key, NULL));
	TRY(w, weft_local_bind(key, w, &tok));
	bound = 1;
	TRY(w, weft_context_capture(&ctx));
	TRY(w, weft_task_set_name("sweep-root"));
	TRY(w, weft_group_open(&g));

	weft_task_t *h = NULL;
	TRY(w,
		weft_group_spawn_opts(g, child_is_cancelled, NULL,
			&(weft_spawn_opts_t){ .name = "victim",
				.handle = &h }));
	NOTE(w, &rc, weft_task_on_done(h, on_done, &done));
	NOTE(w, &rc, weft_task_rename(h, "renamed-victim"));
	NOTE(w, &rc, weft_task_cancel_with(h, "no longer wanted"));
	weft_task_release(h);
	NOTE(w, &rc,
		weft_group_spawn_opts(g, child_reads_local, key,
			&(weft_spawn_opts_t){ .context = ctx }));

	/* More children than a worker's deque holds (256) before any runs. */
	for (int i = 0; i < 300 && rc == 0; i++)
		NOTE(w, &rc, weft_group_spawn(g, child_returns, NULL));

	size_t count = 0;
	weft_task_info_t info[4];
	NOTE(w, &rc, weft_group_children(g, info, 4, &count));
	NOTE(w, &rc, weft_all_tasks(NULL, info, 4, &count));
	size_t dumped = 0;
	NOTE(w, &rc, weft_runtime_dump(NULL, 0, dump_sink, &dumped));
	/* A sleep that releases its stack: its scope's block, and the copy
	 * the worker makes when it switches the task out (either failure
	 * leaves an ordinary sleep).  In a child, on a fiber of its own (the
	 * root sleeps first): the root's stack is not private, its children
	 * write into it (`done`), which a debug build's check would catch. */
	NOTE(w, &rc, weft_group_spawn(g, child_sleeps_released, NULL));
	NOTE(w, &rc, weft_sleep(2 * WEFT_MSEC));

	weft_scope_t *s;
	int src = seen(w, weft_scope_open(&s, WEFT_FOREVER, 0), __LINE__,
		(const int[]){ 0 });
	if (src == 0) {
		NOTE(w, &rc, weft_scope_cancel(s, "the sweep cancels"));
		(void)weft_checkpoint();
		(void)weft_scope_exit(s);
		weft_scope_destroy(s);
	} else if (rc == 0) {
		rc = src;
	}
	rc = join_into(w, g, rc);
	g = NULL;
	if (rc < 0)
		goto out;

	/* weft_par, with the root's context bound (the call holds it): a
	 * half that parks, so that the other gets a task (without memory
	 * for one, it comes back and the caller runs it), and a half that
	 * fails with -EIO.  An error group holding anything else (a leaf
	 * that could not be made) goes up. */
	weft_error_t *perr = NULL;
	int parc = seen(w,
		weft_par(par_half_parks, NULL, par_half_fails, NULL, &perr),
		__LINE__, (const int[]){ WEFT_ECHILD_FAILED, 0 });
	if (parc == WEFT_ECHILD_FAILED &&
		(weft_error_count(perr) != 1 ||
			weft_error_code_at(perr, 0) != -EIO)) {
		rc = weft_fail_group(perr);
		goto out;
	}
	weft_error_free(perr);
	if (parc != WEFT_ECHILD_FAILED) {
		rc = parc < 0 ? parc : -EPROTO;
		goto out;
	}

	/* A panic and an -EIO failure, split apart. */
	TRY(w, weft_group_open(&g));
	NOTE(w, &rc, weft_group_spawn(g, child_panics, NULL));
	NOTE(w, &rc, weft_group_spawn(g, child_leaves_a_group, NULL));
	NOTE(w, &rc, weft_group_spawn(g, child_fails, NULL));
	weft_error_t *err = NULL;
	int jrc = weft_group_join(g, &err);
	g = NULL;
	if (seen(w, jrc, __LINE__, (const int[]){ WEFT_ECHILD_FAILED, 0 }) ==
		-ENOMEM) {
		rc = jrc;
		goto out;
	}
	weft_error_t *match = NULL, *rest = NULL;
	int prc = seen(w, weft_error_split(err, keep_eio, NULL, &match, &rest),
		__LINE__, (const int[]){ 0 });
	if (prc == 0) {
		weft_error_free(match);
		weft_error_free(rest);
	} else {
		weft_error_free(err);
	}
	if (rc == 0)
		rc = prc;
	if (rc == 0)
		atomic_store(&w->completed, 1);
out:
	if (g != NULL)
		rc = join_into(w, g, rc);
	weft_context_release(ctx);
	if (bound)
		(void)weft_local_unbind(&tok);
	if (key != NULL)
		(void)weft_local_key_destroy(key);
	return rc;
}

/* }======================================================= */

/* {======================================================= sync */

static int returns_one(void *arg)
{
	(void)arg;
	return weft_task_set_result((void *)1);
}

static int sleeps_then_returns(void *arg)
{
	(void)arg;
	int rc = weft_sleep(WEFT_MSEC);
	return rc < 0 ? rc : weft_task_set_result((void *)1);
}

struct sync_objs {
	struct sweep *w;
	weft_channel_rx_t *rx;
	weft_event_t *ev;
	weft_limiter_t *lim;
};

static int receiver(void *arg)
{
	struct sync_objs *so = arg;
	int item, rc;
	while ((rc = weft_channel_receive(so->rx, &item)) == 0)
		;
	return rc == WEFT_EEND ? 0 : rc;
}

static int setter(void *arg)
{
	struct sync_objs *so = arg;
	return weft_event_set(so->ev);
}

/* Events, locks, conditions, semaphores, a limiter with many borrowers,
 * channels (bounded, unbounded, cloned ends), gather, race, wait,
 * gather_tasks, as_completed. */
static int sync_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	weft_event_t *ev = NULL;
	weft_lock_t *lock = NULL;
	weft_condition_t *cond = NULL;
	weft_semaphore_t *sem = NULL;
	weft_limiter_t *lim = NULL;
	weft_channel_tx_t *tx = NULL, *tx2 = NULL;
	weft_channel_rx_t *rx = NULL, *rx2 = NULL;
	weft_group_t *g = NULL;
	enum { NH = 12 };
	weft_task_t *hs[NH] = { 0 };
	size_t nh = 0;
	static char borrowers[40];
	int nborrowed = 0;
	TRY(w, weft_event_create(&ev));
	TRY(w, weft_lock_create(&lock));
	TRY(w, weft_condition_create(&cond, lock));
	TRY(w, weft_semaphore_create(&sem, 1, 1));
	TRY(w, weft_limiter_create(&lim, 64));
	TRY(w, weft_lock_acquire(lock));
	TRY(w, weft_condition_notify_all(cond));
	TRY(w, weft_lock_release(lock));
	TRY(w, weft_semaphore_acquire(sem));
	TRY(w, weft_semaphore_release(sem));
	/* Enough borrowers to make the limiter grow its table. */
	for (; nborrowed < 40; nborrowed++)
		TRY(w,
			weft_limiter_acquire_on_behalf(lim,
				&borrowers[nborrowed]));

	TRY(w,
		weft_channel_open(&tx, &rx, sizeof(int),
			WEFT_CHANNEL_UNBOUNDED));
	TRY(w, weft_channel_tx_clone(tx, &tx2));
	TRY(w, weft_channel_rx_clone(rx, &rx2));
	for (int i = 0; i < 100; i++)
		TRY(w, weft_channel_send(tx2, &i));

	TRY(w, weft_group_open(&g));
	struct sync_objs so = { w, rx2, ev, lim };
	NOTE(w, &rc, weft_group_spawn(g, receiver, &so));
	NOTE(w, &rc, weft_group_spawn(g, setter, &so));
	if (rc == 0)
		NOTE(w, &rc, weft_event_wait(ev));
	weft_channel_tx_release(tx2);
	tx2 = NULL;
	weft_channel_tx_release(tx);
	tx = NULL;
	rc = join_into(w, g, rc);
	g = NULL;
	if (rc < 0)
		goto out;

	weft_call_t calls[NH];
	for (size_t i = 0; i < NH; i++)
		calls[i] = (weft_call_t){ returns_one, NULL, "call" };
	weft_gather_result_t res[NH];
	weft_error_t *err = NULL;
	TRY(w, weft_gather(calls, NH, 0, res, &err));
	void *value;
	size_t winner;
	TRY(w, weft_race(calls, 2, &value, &winner, &err));

	TRY(w, weft_group_open(&g));
	/* Children still running when weft_wait watches them. */
	for (nh = 0; nh < NH; nh++)
		TRY(w,
			weft_group_spawn_opts(g, sleeps_then_returns, NULL,
				&(weft_spawn_opts_t){ .handle = &hs[nh] }));
	bool dn[NH];
	/* More pending tasks than weft_wait watches without allocating. */
	TRY(w, weft_wait(hs, NH, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER, dn));
	TRY(w, weft_wait(hs, NH, WEFT_WAIT_ALL_COMPLETED, WEFT_FOREVER, dn));
	TRY(w, weft_gather_tasks(hs, NH, res));
	weft_as_completed_t *it;
	TRY(w, weft_as_completed_open(&it, hs, NH));
	size_t index;
	weft_task_t *done;
	while ((rc = weft_as_completed_next(it, &index, &done)) == 0)
		;
	weft_as_completed_close(it);
	rc = seen(w, rc, __LINE__, (const int[]){ WEFT_EEND, 0 });
	if (rc == WEFT_EEND) {
		rc = 0;
		atomic_store(&w->completed, 1);
	}
out:
	for (size_t i = 0; i < nh; i++)
		weft_task_release(hs[i]);
	if (g != NULL)
		rc = join_into(w, g, rc);
	weft_channel_tx_release(tx2);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx2);
	weft_channel_rx_release(rx);
	while (nborrowed > 0)
		(void)weft_limiter_release_on_behalf(lim,
			&borrowers[--nborrowed]);
	if (lim != NULL)
		(void)weft_limiter_destroy(lim);
	if (sem != NULL)
		(void)weft_semaphore_destroy(sem);
	if (cond != NULL)
		(void)weft_condition_destroy(cond);
	if (lock != NULL)
		(void)weft_lock_destroy(lock);
	if (ev != NULL)
		(void)weft_event_destroy(ev);
	return rc;
}

/* }======================================================= */

/* {======================================================= net */

struct net {
	struct sweep *w;
	weft_listener_t *l;
	weft_event_t *stop;
	int port;
};

static int accept_echo(void *arg)
{
	struct net *nt = arg;
	weft_stream_t *s;
	int rc = weft_listener_accept(nt->l, &s);
	if (rc < 0)
		return rc;
	/* The client writes its line only after this byte: the wait below
	 * parks, giving its stack back (its heap block is a site). */
	rc = weft_stream_write(s, "?", 1);
	if (rc == 0)
		rc = weft_stream_wait_readable(s, WEFT_WAIT_RELEASE_STACK);
	if (rc < 0) {
		(void)weft_stream_close(s);
		return rc == WEFT_ECLOSED ? 0 : rc;
	}
	char buf[64];
	ssize_t n = weft_stream_read_until(s, buf, sizeof buf, "\n", 1);
	if (n > 0)
		rc = weft_stream_write(s, buf, (size_t)n);
	else
		rc = (int)n;
	(void)weft_stream_close(s);
	return rc == WEFT_ECLOSED ? 0 : rc;
}

static int handler(weft_stream_t *s, void *arg)
{
	(void)arg;
	char c;
	(void)weft_stream_read(s, &c, 1);
	return 0;
}

static int serve_task(void *arg)
{
	struct net *nt = arg;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	int src = weft_serve(nt->l, g, handler, NULL, nt->stop);
	rc = join_into(nt->w, g, 0);
	return src < 0 ? src : rc;
}

/* TCP: listen, accept, connect by name (resolution and happy eyeballs),
 * read_until and write; weft_serve; UDP send and receive. */
static int net_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	struct net nt = { .w = w };
	weft_group_t *g = NULL;
	weft_stream_t *s = NULL;
	weft_udp_t *u = NULL;
	TRY(w, weft_event_create(&nt.stop));
	TRY(w, weft_tcp_listen(&nt.l, "127.0.0.1", 0, 8));
	nt.port = weft_listener_port(nt.l);
	TRY(w, weft_group_open(&g));
	TRY(w, weft_group_spawn(g, accept_echo, &nt));
	TRY(w, weft_tcp_connect(&s, "localhost", nt.port), -ECONNREFUSED,
		-EADDRNOTAVAIL, );
	char buf[8];
	NOTE(w, &rc, weft_stream_read_exactly(s, buf, 1, NULL), WEFT_EEND,
		-ECONNRESET, );
	if (rc == 0)
		NOTE(w, &rc, weft_stream_write(s, "hello\n", 6), -ECONNRESET,
			-EPIPE, );
	if (rc == 0) {
		ssize_t n = weft_stream_read_until(s, buf, sizeof buf, "\n", 1);
		NOTE(w, &rc, n < 0 ? (int)n : 0, WEFT_EEND, -ECONNRESET, );
	}
	(void)weft_stream_close(s);
	s = NULL;
	rc = join_into(w, g, rc);
	g = NULL;
	if (rc < 0)
		goto out;

	TRY(w, weft_group_open(&g));
	TRY(w, weft_group_spawn(g, serve_task, &nt));
	/* Two addresses: the happy-eyeballs race of weft__connect_list. */
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)nt.port),
		.sin_addr.s_addr = htonl(0x7f000001) };
	struct addrinfo ai2 = { .ai_family = AF_INET,
		.ai_socktype = SOCK_STREAM,
		.ai_addrlen = sizeof sin,
		.ai_addr = (struct sockaddr *)&sin };
	struct addrinfo ai1 = ai2;
	ai1.ai_next = &ai2;
	TRY(w, weft__connect_list(&s, &ai1));
	/* The connection's handler may have failed and closed it. */
	NOTE(w, &rc, weft_stream_write(s, "x", 1), -ECONNRESET, -EPIPE, );
	(void)weft_stream_close(s);
	s = NULL;
	(void)weft_event_set(nt.stop);
	rc = join_into(w, g, rc);
	g = NULL;
	if (rc < 0)
		goto out;

	TRY(w, weft_udp_open(&u, "127.0.0.1", 0));
	struct sockaddr_storage to;
	socklen_t tolen = sizeof to;
	memset(&to, 0, sizeof to);
	struct sockaddr_in *in = (struct sockaddr_in *)&to;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)weft_udp_port(u));
	in->sin_addr.s_addr = htonl(0x7f000001);
	TRY(w, weft_udp_send(u, "d", 1, (struct sockaddr *)&to));
	ssize_t got = weft_udp_recv(u, buf, sizeof buf, &to, &tolen);
	TRY(w, got < 0 ? (int)got : 0);
	atomic_store(&w->completed, 1);
out:
	if (s != NULL)
		(void)weft_stream_close(s);
	if (g != NULL) {
		if (nt.stop != NULL)
			(void)weft_event_set(nt.stop);
		if (nt.l != NULL)
			(void)weft_listener_close(nt.l);
		nt.l = NULL;
		rc = join_into(w, g, rc);
	}
	if (u != NULL)
		(void)weft_udp_close(u);
	if (nt.l != NULL)
		(void)weft_listener_close(nt.l);
	if (nt.stop != NULL)
		(void)weft_event_destroy(nt.stop);
	return rc;
}

/* }======================================================= */

/* {======================================================= fs, dns */

static int fs_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0, fd = -1;
	char dir[64], path[96], path2[96];
	snprintf(dir, sizeof dir, "/tmp/weft-alloc-sweep-%ld", (long)getpid());
	snprintf(path, sizeof path, "%s/a", dir);
	snprintf(path2, sizeof path2, "%s/b", dir);
	int made = 0;
	TRY(w, weft_fs_mkdir(dir, 0700));
	made = 1;
	TRY(w, weft_fs_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600, &fd));
	ssize_t n = weft_fs_write(fd, "contents", 8, 0);
	TRY(w, n < 0 ? (int)n : 0);
	char buf[8];
	n = weft_fs_read(fd, buf, sizeof buf, 0);
	TRY(w, n < 0 ? (int)n : 0);
	weft_fs_stat_t st;
	TRY(w, weft_fs_fstat(fd, &st));
	TRY(w, weft_fs_fsync(fd));
	TRY(w, weft_fs_rename(path, path2));
	TRY(w, weft_fs_stat(path2, &st));
	void *data = NULL;
	size_t len = 0;
	TRY(w, weft_fs_read_file(path2, &data, &len, 1 << 20));
	weft_fs_free(data);

	struct addrinfo *res = NULL;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	TRY(w, weft_getaddrinfo("localhost", "80", &hints, &res));
	weft_freeaddrinfo(res);
	atomic_store(&w->completed, 1);
out:
	if (fd >= 0)
		(void)weft_fs_close(fd);
	/* Clean up with plain calls: a weft_fs call may fail here too. */
	(void)unlink(path);
	(void)unlink(path2);
	if (made)
		(void)rmdir(dir);
	return rc;
}

/* }======================================================= */

/* {======================================================= threads */

struct thr {
	struct sweep *w;
	weft_portal_t *p;
	int rc;
};

static int in_portal(void *arg)
{
	(void)arg;
	return weft_task_set_result((void *)2);
}

static int in_portal_started(void *arg)
{
	(void)arg;
	return weft_task_started((void *)3);
}

static int from_thread(void *arg, void **result)
{
	struct thr *t = arg;
	void *v;
	*result = NULL;
	int rc = weft_portal_call(t->p, in_portal, NULL, &v, WEFT_FOREVER);
	if (rc == 0)
		rc = weft_portal_spawn(t->p, in_portal, NULL);
	if (rc == 0)
		rc = weft_portal_start(t->p, in_portal_started, NULL, &v,
			WEFT_FOREVER);
	if (rc == 0)
		rc = weft_from_thread_run(in_portal, NULL, &v);
	t->rc = rc;
	return 0;
}

/* Offload threads (weft_to_thread), portals called from them, and
 * weft_from_thread_run. */
static int thread_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	struct thr t = { .w = w };
	TRY(w, weft_portal_open(&t.p));
	void *result;
	TRY(w, weft_to_thread(from_thread, &t, &result, NULL));
	/* -ECANCELED: a task of the portal failed (with -ENOMEM) and
	 * cancelled the others, as in any group; the close reports it. */
	rc = seen(w, t.rc, __LINE__, (const int[]){ -ECANCELED, 0 });
	if (rc == 0)
		atomic_store(&w->completed, 1);
out:
	if (t.p != NULL) {
		weft_error_t *err = NULL;
		int crc = weft_portal_close(t.p, true, &err);
		crc = seen(w, crc, __LINE__,
			(const int[]){ WEFT_ECHILD_FAILED, 0 });
		/* The portal's failure is the cause of a cancelled call. */
		if (crc == WEFT_ECHILD_FAILED && (rc == 0 || rc == -ECANCELED))
			rc = weft_fail_group(err);
		else
			weft_error_free(err);
		if (rc == 0 && crc < 0)
			rc = crc;
	}
	return rc;
}

/* }======================================================= */

/* {======================================================= signals */

static int until_cancelled(void *arg)
{
	(void)arg;
	int rc = weft_sleep(10 * WEFT_SEC);
	return rc == -ECANCELED ? 0 : rc;
}

/* Signal watchers; the shutdown helper over a group. */
static int signal_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	weft_signals_t *sw = NULL;
	weft_group_t *g = NULL;
	weft_shutdown_t *sd = NULL;
	int sig = SIGUSR1;
	/* Watching only: delivering a signal needs the care of
	 * tests/test_signal.c (the TSan build's sink thread), and the
	 * delivery path allocates nothing. */
	TRY(w, weft_signal_open(&sw, &sig, 1));
	TRY(w, weft_signal_close(sw));
	sw = NULL;

	TRY(w, weft_group_open(&g));
	TRY(w, weft_group_spawn(g, until_cancelled, NULL));
	TRY(w, weft_shutdown_open(&sd, g, 10 * WEFT_MSEC));
	TRY(w, weft_shutdown_trigger(sd));
	TRY(w, weft_event_wait(weft_shutdown_stop_event(sd)));
	atomic_store(&w->completed, 1);
out:
	if (g != NULL) {
		if (sd == NULL)
			(void)weft_group_cancel(g, "sweep");
		rc = join_into(w, g, rc);
	}
	if (sd != NULL)
		(void)weft_shutdown_close(sd);
	if (sw != NULL)
		(void)weft_signal_close(sw);
	return rc;
}

/* }======================================================= */

/* {======================================================= fd, dump, watchdog */

/* Foreign descriptors: registered, waited on one at a time and more at
 * once than weft_fd_wait_any keeps on the stack; weft_getnameinfo. */
static int fd_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	enum { NP = 5 };
	int pfd[NP][2];
	weft_fd_t *f[NP] = { 0 };
	int np = 0;
	for (; np < NP; np++)
		if (pipe2(pfd[np], O_NONBLOCK | O_CLOEXEC) != 0)
			goto out; /* not the allocator's: completed stays 0 */
	/* The write ends: always writable, so every wait returns at once. */
	for (int i = 0; i < NP; i++)
		TRY(w, weft_fd_register(pfd[i][1], &f[i]));
	TRY(w, weft_fd_wait(f[0], WEFT_FD_WRITABLE));
	/* Both directions of each: 2 * NP entries, more than the 8 on the
	 * stack. */
	int ev[NP], rev[NP];
	for (int i = 0; i < NP; i++)
		ev[i] = WEFT_FD_READABLE | WEFT_FD_WRITABLE;
	TRY(w, weft_fd_wait_any(f, ev, rev, NP));

	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons(80),
		.sin_addr.s_addr = htonl(0x7f000001) };
	char host[64], serv[16];
	TRY(w,
		weft_getnameinfo((struct sockaddr *)&sin,
			NI_NUMERICHOST | NI_NUMERICSERV, host, sizeof host,
			serv, sizeof serv));
	atomic_store(&w->completed, 1);
out:
	for (int i = 0; i < NP; i++)
		if (f[i] != NULL)
			NOTE(w, &rc, weft_fd_unregister(f[i]));
	for (int i = 0; i < np; i++) {
		close(pfd[i][0]);
		close(pfd[i][1]);
	}
	return rc;
}

struct dumped {
	char *data;
	size_t len, cap;
};

static int dump_keep(void *ctx, const char *data, size_t len)
{
	struct dumped *d = ctx;
	if (d->len + len + 1 > d->cap) {
		size_t cap = (d->len + len + 1) * 2;
		char *nd = realloc(d->data, cap);
		if (nd == NULL)
			return -ENOMEM;
		d->data = nd;
		d->cap = cap;
	}
	memcpy(d->data + d->len, data, len);
	d->len += len;
	d->data[d->len] = '\0';
	return 0;
}

/* Whether the brackets and braces of a JSON text balance outside its
 * strings: a dump that left something out must still be one value. */
static int json_balanced(const char *p)
{
	char open[64];
	int depth = 0, in_str = 0;
	for (; *p; p++) {
		if (in_str) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				in_str = 0;
			continue;
		}
		if (*p == '"')
			in_str = 1;
		else if (*p == '{' || *p == '[') {
			if (depth == (int)sizeof open)
				return 0;
			open[depth++] = *p;
		} else if (*p == '}' || *p == ']') {
			if (depth == 0 ||
				open[--depth] != (*p == '}' ? '{' : '['))
				return 0;
		}
	}
	return depth == 0 && !in_str;
}

static int sleeps_long(void *arg)
{
	(void)arg;
	int rc = weft_sleep(10 * WEFT_SEC);
	return rc == -ECANCELED ? 0 : rc;
}

/* The dump of a runtime with a parked task: with libdw its frames are
 * unwound and named, allocations the dump may lose (a frame or a name
 * left out) while still returning 0 and a well-formed dump. */
static int dump_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	weft_group_t *g = NULL;
	struct dumped d = { 0 };
	TRY(w, weft_group_open(&g));
	TRY(w,
		weft_group_spawn_opts(g, sleeps_long, NULL,
			&(weft_spawn_opts_t){ .name = "parked" }));
	/* One worker: the child runs and parks while this task sleeps. */
	TRY(w, weft_sleep(2 * WEFT_MSEC));
	/* JSON (tasks_root dumps text): what it leaves out under injection
	 * must leave a well-formed value. */
	TRY(w, weft_runtime_dump(NULL, WEFT_DUMP_JSON, dump_keep, &d));
	if (d.data == NULL || !json_balanced(d.data)) {
		rc = seen(w, -EPROTO, __LINE__, (const int[]){ 0 });
		goto out;
	}
	atomic_store(&w->completed, 1);
out:
	free(d.data);
	if (g != NULL) {
		(void)weft_group_cancel(g, "sweep");
		rc = join_into(w, g, rc);
	}
	return rc;
}

/* A supervisor (sync/supervise.c): a needs_start child and one that
 * fails once and is restarted, a dump while they run (the dump copies
 * the supervisor's notes), then a cancel.  A failure the supervisor
 * handled by a restart is not the run's (rule 49): only what
 * weft_supervise returns is passed up. */
struct sup_sweep {
	atomic_int runs;
	int rc;
	weft_error_t *err;
	weft_supervisor_t *sup; /* opts.self_out: for an added child */
	atomic_int ended;	/* weft_supervise returned */
};

static int sup_service(void *arg)
{
	(void)arg;
	weft_task_started(NULL);
	int rc = weft_sleep(10 * WEFT_SEC);
	return rc == -ECANCELED ? rc : 0;
}

static int sup_flaky(void *arg)
{
	struct sup_sweep *s = arg;
	if (atomic_fetch_add(&s->runs, 1) == 0)
		return weft_fail(-EIO, "sweep: the first run fails");
	int rc = weft_sleep(10 * WEFT_SEC);
	return rc == -ECANCELED ? rc : 0;
}

static int sup_task(void *arg)
{
	struct sup_sweep *s = arg;
	weft_child_spec_t spec[2] = {
		{ .name = "service", .fn = sup_service, .needs_start = 1 },
		{ .name = "flaky", .fn = sup_flaky, .arg = s },
	};
	weft_supervisor_opts_t o;
	weft_supervisor_opts_init(&o);
	o.self_out = &s->sup;
	s->rc = weft_supervise(spec, 2, &o, &s->err);
	atomic_store(&s->ended, 1);
	return 0;
}

static int supervise_root(void *arg)
{
	struct sweep *w = arg;
	int rc = 0;
	weft_group_t *g = NULL;
	struct sup_sweep s = { .rc = 0 };
	TRY(w, weft_group_open(&g));
	TRY(w, weft_group_spawn(g, sup_task, &s));
	/* One worker: the supervisor and its children run meanwhile, until
	 * the flaky one was restarted (or the supervisor stopped). */
	for (int i = 0;
		i < 2000 && atomic_load(&s.runs) < 2 && !atomic_load(&s.ended);
		i++)
		TRY(w, weft_sleep(WEFT_MSEC));
	if (s.sup != NULL) {
		weft_child_spec_t added = { .name = "added",
			.fn = sup_service,
			.needs_start = 1 };
		/* Refused once the supervisor stopped (it may have, for
		 * lack of memory). */
		NOTE(w, &rc, weft_supervisor_add(s.sup, &added),
			WEFT_ECLOSED, );
		NOTE(w, &rc, weft_sleep(WEFT_MSEC));
	}
	size_t dumped = 0;
	NOTE(w, &rc, weft_runtime_dump(NULL, 0, dump_sink, &dumped));
	if (atomic_load(&s.runs) >= 2 && rc == 0)
		atomic_store(&w->completed, 1);
out:
	if (g != NULL) {
		(void)weft_group_cancel(g, "sweep");
		rc = join_into(w, g, rc);
		int src = seen(w, s.rc, __LINE__,
			(const int[]){ -ECANCELED, WEFT_ECHILD_FAILED, 0 });
		weft_supervisor_release(s.sup);
		if (src == WEFT_ECHILD_FAILED &&
			(rc == 0 || rc == -ECANCELED)) {
			rc = weft_fail_group(s.err);
		} else {
			weft_error_free(s.err);
			if (rc == 0 && src != -ECANCELED)
				rc = src;
		}
	}
	return rc;
}

/* }======================================================= */

/* {======================================================= tests */

static void test_alloc_sweep__core_from_runtime_create(void **state)
{
	sweep("core", core_root, WEFT_TEST_WORKERS(state), 1);
}

/* The same with a seeded schedule: the baton's allocation, and a seeded
 * runtime's workers unwinding from every failure. */
static void test_alloc_sweep__core_seeded(void **state)
{
	(void)state;
	sweep_seed = 7;
	sweep("core-seeded", core_root, 2, 1);
	sweep_seed = 0;
}

/* A traced runtime: the trace's buffers come from the allocator too
 * (core/trace.c), at creation. */
static void test_alloc_sweep__core_traced_from_runtime_create(void **state)
{
	(void)state;
	char path[] = "/tmp/weft-sweep-trace-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	sweep_trace_path = path;
	sweep("core-traced", core_root, 2, 1);
	sweep_trace_path = NULL;
	unlink(path);
}

static void test_alloc_sweep__tasks(void **state)
{
	(void)state;
	tweak_stacks_and_joins = 1;
	sweep("tasks", tasks_root, 1, 0);
	tweak_stacks_and_joins = 0;
}

static void test_alloc_sweep__sync(void **state)
{
	(void)state;
	sweep("sync", sync_root, 1, 0);
}

static void test_alloc_sweep__net(void **state)
{
	(void)state;
	sweep("net", net_root, 1, 0);
}

static void test_alloc_sweep__fs_and_dns(void **state)
{
	(void)state;
	sweep("fs", fs_root, 1, 0);
}

static void test_alloc_sweep__threads_and_portals(void **state)
{
	(void)state;
	sweep("threads", thread_root, 1, 0);
}

static void test_alloc_sweep__signals_and_shutdown(void **state)
{
	(void)state;
	sweep("signals", signal_root, 1, 0);
}

static void test_alloc_sweep__foreign_fds_and_getnameinfo(void **state)
{
	(void)state;
	sweep("fd", fd_root, 1, 0);
}

static void test_alloc_sweep__dump_with_a_parked_task(void **state)
{
	(void)state;
	sweep("dump", dump_root, 1, 0);
}

static void test_alloc_sweep__supervisor(void **state)
{
	(void)state;
	sweep("supervise", supervise_root, 1, 0);
}

/* A runtime with the stall watchdog and the dump signal: what they
 * allocate, at creation.  The site pass only: the count sweep of
 * core_root from creation is the first test's. */
static void test_alloc_sweep__stall_watchdog_and_dump_signal(void **state)
{
	(void)state;
	sweep_stall_ms = 60000;
	sweep_dump_signal = SIGUSR2;
	sweep_mode("watched", core_root, 2, 1, 0);
	sweep_stall_ms = 0;
	sweep_dump_signal = 0;
}

/* The call sites in the source: "<layer>/<file>.c:<line>" for every line
 * of runtime/ that calls weft__alloc( or weft__calloc( outside
 * base/alloc.[ch] and comments. */
static char *source_sites[MAX_SITES];
static size_t nsource_sites;

static int scan_file(const char *path, const struct stat *sb, int type,
	struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	size_t len = strlen(path);
	if (type != FTW_F || len < 2 ||
		(strcmp(path + len - 2, ".c") != 0 &&
			strcmp(path + len - 2, ".h") != 0))
		return 0;
	const char *rel = strstr(path, "/runtime/") + strlen("/runtime/");
	if (strcmp(rel, "base/alloc.c") == 0 ||
		strcmp(rel, "base/alloc.h") == 0)
		return 0;
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[512];
	int lineno = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		const char *p = line + strspn(line, " \t");
		if (p[0] == '*' ||
			(p[0] == '/' && (p[1] == '*' || p[1] == '/')))
			continue;
		if (strstr(p, "weft__alloc(") == NULL &&
			strstr(p, "weft__calloc(") == NULL)
			continue;
		assert_true(nsource_sites < MAX_SITES);
		char buf[300];
		snprintf(buf, sizeof buf, "%s:%d", rel, lineno);
		source_sites[nsource_sites++] = strdup(buf);
	}
	fclose(f);
	return 0;
}

#if !WEFT_TEST_HAVE_LIBDW
/* Sites no build without libdw can reach: a parked task's frames in the
 * dump come from libdw's unwinder (core/inspect.c).  Named by the file and
 * a piece of the line's text, so that they follow the source. */
static const struct {
	const char *file, *text;
} needs_libdw[] = {
	{ "core/inspect.c", "x->pcs = weft__alloc(" },
	{ "core/inspect.c", "char *out = weft__alloc(len + 1);" },
};
#endif

static int exempt(const char *site)
{
#if WEFT_TEST_HAVE_LIBDW
	(void)site;
	return 0;
#else
	for (size_t i = 0; i < sizeof needs_libdw / sizeof needs_libdw[0];
		i++) {
		size_t m = strlen(needs_libdw[i].file);
		if (strncmp(site, needs_libdw[i].file, m) != 0 ||
			site[m] != ':')
			continue;
		/* The line's text, from the source. */
		char path[600], buf[512];
		snprintf(path, sizeof path, "%s/runtime/%s", WEFT_SOURCE_DIR,
			needs_libdw[i].file);
		int want = atoi(site + m + 1), line = 0, hit = 0;
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		while (fgets(buf, sizeof buf, f) != NULL)
			if (++line == want) {
				hit = strstr(buf, needs_libdw[i].text) != NULL;
				break;
			}
		fclose(f);
		if (hit)
			return 1;
	}
	return 0;
#endif
}

static void test_alloc_sweep__every_site_is_failed_at_least_once(void **state)
{
	(void)state;
	nsource_sites = 0;
	assert_int_equal(nftw(WEFT_SOURCE_DIR "/runtime", scan_file, 16,
				 FTW_PHYS),
		0);
	assert_true(nsource_sites > 0);

	struct weft__alloc_site failed[MAX_SITES];
	size_t nfailed = weft__alloc_failed_sites(failed, MAX_SITES);
	assert_true(nfailed <= MAX_SITES);
	size_t hit = 0, excused = 0;
	for (size_t i = 0; i < nsource_sites; i++) {
		if (site_failed(source_sites[i])) {
			hit++;
		} else if (exempt(source_sites[i])) {
			excused++;
			print_message("not failed (needs libdw): runtime/%s\n",
				source_sites[i]);
		} else {
			print_message("never failed: runtime/%s (%s)\n",
				source_sites[i],
				name_in(reached_any, nreached_any,
					source_sites[i])
					? "reached, yet no run failed it"
					: "no scenario reaches it: add one");
		}
	}
	/* A failed site missing from the list would be a scan that
	 * misses call sites: every failed one must be in it. */
	for (size_t j = 0; j < nfailed; j++) {
		char buf[300];
		int found = site_name(failed[j].file, failed[j].line, buf,
				    sizeof buf) != NULL &&
			name_in(source_sites, nsource_sites, buf);
		if (!found)
			print_error("failed site not in the source list: "
				    "%s:%d\n",
				failed[j].file != NULL ? failed[j].file
						       : "(unnamed)",
				failed[j].line);
		assert_true(found);
	}
	print_message("allocation sites failed: %zu / %zu\n", hit,
		nsource_sites);
	for (size_t i = 0; i < nsource_sites; i++)
		free(source_sites[i]);
	for (size_t i = 0; i < nreached_any; i++)
		free(reached_any[i]);
	nreached_any = 0;
	/* Exact: every site, unless a sample (stride) or one scenario
	 * (WEFT_ALLOC_SWEEP_ONLY) was asked for. */
	const char *only = getenv("WEFT_ALLOC_SWEEP_ONLY");
	if (stride() == 1 && (only == NULL || *only == '\0'))
		assert_int_equal(hit + excused, nsource_sites);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_alloc_sweep__core_from_runtime_create),
		cmocka_unit_test(test_alloc_sweep__core_seeded),
		cmocka_unit_test(
			test_alloc_sweep__core_traced_from_runtime_create),
		cmocka_unit_test(test_alloc_sweep__tasks),
		cmocka_unit_test(test_alloc_sweep__sync),
		cmocka_unit_test(test_alloc_sweep__net),
		cmocka_unit_test(test_alloc_sweep__fs_and_dns),
		cmocka_unit_test(test_alloc_sweep__threads_and_portals),
		cmocka_unit_test(test_alloc_sweep__signals_and_shutdown),
		cmocka_unit_test(test_alloc_sweep__foreign_fds_and_getnameinfo),
		cmocka_unit_test(test_alloc_sweep__dump_with_a_parked_task),
		cmocka_unit_test(test_alloc_sweep__supervisor),
		cmocka_unit_test(
			test_alloc_sweep__stall_watchdog_and_dump_signal),
		/* Last: it reads what the sweeps above failed. */
		cmocka_unit_test(
			test_alloc_sweep__every_site_is_failed_at_least_once),
	};
	return WEFT_RUN_TESTS(tests);
}
