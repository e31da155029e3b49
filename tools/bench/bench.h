/* Shared helpers for the benchmark mains of tools/bench/ (one main per
 * workload of docs/benchmarks.md, which also describes the JSON output;
 * switch.c stands alone).
 *
 * What every benchmark does with these helpers:
 *   1. bench_runtime_create: weft_config_init (the worker count comes only
 *      from WEFT_WORKERS, as a user would set it) and weft_runtime_create.
 *      Start-up is never timed.
 *   2. bench_run_root: one weft_runtime_run whose root task runs
 *      BENCH_WARMUP + BENCH_REPS repetitions, timing each one with
 *      bench_now() (weft_now(), i.e. CLOCK_MONOTONIC) around the workload
 *      only.  A failure of the root task prints its error group and exits.
 *   3. The checksum goes to stderr; a wrong one exits with status 1 and no
 *      JSON line is printed for it.
 *   4. bench_json_*: exactly one JSON line per workload variant on stdout,
 *      always with workload, workers, n, median_ms, p10_ms, p90_ms, reps,
 *      maxrss_kb (peak RSS: VmHWM, see bench_maxrss_kb) and io_thread (weft
 *      runs a libuv I/O thread beside its workers), plus the workload's own
 *      keys.
 *
 * Percentiles are nearest-rank (as in switch.c): over 11 samples p10 is the
 * 2nd smallest and p90 the 10th.  Only static functions: each main includes
 * this once. */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "weft.h"

#define BENCH_WARMUP 1
#define BENCH_REPS 11

/* {====== time and statistics */

/* Monotonic nanoseconds (weft_now() is CLOCK_MONOTONIC). */
static inline int64_t bench_now(void)
{
	return weft_now();
}

static inline double bench_ms(int64_t ns)
{
	return (double)ns / 1e6;
}

typedef struct bench_stats {
	double median, p10, p90, min, max;
} bench_stats_t;

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static inline int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile (pct in 0..100) of n sorted values; n > 0. */
static inline size_t bench_rank(size_t n, unsigned pct)
{
	size_t r = (n * pct + 99) / 100;
	return r == 0 ? 0 : r - 1;
}

/* Statistics of n samples (v is sorted in place); all zero when n == 0. */
static inline bench_stats_t bench_stats(double *v, size_t n)
{
	bench_stats_t s = { 0, 0, 0, 0, 0 };
	if (n == 0)
		return s;
	qsort(v, n, sizeof v[0], bench_cmp_double);
	s.median = v[n / 2];
	s.p10 = v[bench_rank(n, 10)];
	s.p90 = v[bench_rank(n, 90)];
	s.min = v[0];
	s.max = v[n - 1];
	return s;
}

/* Nearest-rank percentile of n int64 samples (v is sorted in place). */
static inline int64_t bench_pct_i64(int64_t *v, size_t n, unsigned pct)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof v[0], bench_cmp_i64);
	return v[bench_rank(n, pct)];
}

/* }====== */

/* {====== memory */

/* A "Vm...:" line of /proc/self/status in KiB ("VmRSS", "VmHWM"), or -1. */
static inline long bench_status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return -1;
	char line[256];
	size_t klen = strlen(key);
	long kb = -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			kb = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* Peak resident set of this process image so far, KiB: VmHWM, else
 * getrusage's ru_maxrss.  VmHWM first because Linux carries ru_maxrss
 * across execve: a benchmark started by a 200 MB launcher (a Python
 * runner, say) would report at least 200 MB. */
static inline long bench_maxrss_kb(void)
{
	long kb = bench_status_kb("VmHWM");
	if (kb >= 0)
		return kb;
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_maxrss;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0: "5" > clear_refs).
 * Returns 0, or -1 when the kernel refused (VmHWM then keeps its value). */
static inline int bench_reset_hwm(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (f == NULL)
		return -1;
	int ok = fputs("5", f) >= 0;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* }====== */

/* {====== failing loudly */

__attribute__((noreturn, format(printf, 2, 3))) static inline void
bench_die(const char *workload, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "weft-bench-%s: ", workload);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A positive integer in 1..max from the environment variable name, or
 * dflt when it is unset or empty; anything else ends the benchmark with a
 * message (a bad value is never replaced by a guess). */
static inline long bench_env_long(const char *workload, const char *name,
	long dflt, long max)
{
	const char *s = getenv(name);
	if (s == NULL || *s == '\0')
		return dflt;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > max)
		bench_die(workload, "%s must be an integer in 1..%ld, not '%s'",
			name, max, s);
	return v;
}

/* A failed weft call inside a benchmark task: report it once (the first
 * failure wins) and return its code, so the task can return it. */
static inline int bench_fail(const char *what, int rc)
{
	return weft_fail(rc, "%s: %s (%s)", what, weft_strerror(rc),
		weft_err_name(rc));
}

/* The outcome of a benchmark's group, right after weft_group_join(g, &err)
 * returned join_rc: a child's failure becomes this task's (its error group
 * nested), else the first failed spawn's code, else join's own error. */
static inline int bench_joined(int join_rc, weft_error_t *err, int spawn_rc)
{
	if (join_rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	if (spawn_rc < 0)
		return bench_fail("weft_group_spawn", spawn_rc);
	if (join_rc < 0)
		return bench_fail("weft_group_join", join_rc);
	return 0;
}

/* }====== */

/* {====== repetitions */

/* One repetition of a workload: computes it once and stores what it
 * computed in *value, for the caller to check.  0 or a negative code. */
typedef int (*bench_once_fn)(void *arg, long long *value);

/* Runs once() BENCH_WARMUP + BENCH_REPS times, timing each call; ms[]
 * receives the BENCH_REPS measured times.  *value keeps the first value
 * that differs from `expected` (or the last one when all are right), so a
 * single wrong repetition is reported.  Returns once()'s first error. */
static inline int bench_repeat(bench_once_fn once, void *arg,
	long long expected, long long *value, double *ms)
{
	for (int r = 0; r < BENCH_WARMUP + BENCH_REPS; r++) {
		long long v = -1;
		int64_t t0 = bench_now();
		int rc = once(arg, &v);
		int64_t t1 = bench_now();
		if (rc < 0)
			return rc;
		if (r == 0 || *value == expected)
			*value = v;
		if (r >= BENCH_WARMUP)
			ms[r - BENCH_WARMUP] = bench_ms(t1 - t0);
	}
	return 0;
}

/* }====== */

/* {====== runtime */

/* weft_config_init + weft_runtime_create; exits on failure.  The worker
 * count comes from WEFT_WORKERS only, as a user would set it; cfg receives
 * the configuration used (report cfg->workers). */
static inline weft_runtime_t *bench_runtime_create(const char *workload,
	weft_config_t *cfg)
{
	if (weft_config_init(cfg) < 0)
		bench_die(workload, "bad environment: %s", cfg->message);
	weft_runtime_t *rt;
	int rc = weft_runtime_create(&rt, cfg);
	if (rc < 0)
		bench_die(workload, "weft_runtime_create: %s (%s)",
			weft_strerror(rc), cfg->message);
	return rt;
}

/* Runs fn(arg) as a root task; on failure prints the error group and
 * exits. */
static inline void bench_run_root(const char *workload, weft_runtime_t *rt,
	weft_fn fn, void *arg)
{
	weft_error_t *err = NULL;
	int rc = weft_runtime_run(rt, fn, arg, &err);
	if (rc == 0)
		return;
	fprintf(stderr, "weft-bench-%s: the root task returned %s (%s)\n",
		workload, weft_err_name(rc), weft_strerror(rc));
	if (err) {
		char buf[4096];
		weft_error_format(err, buf, sizeof buf);
		fprintf(stderr, "%s", buf);
		weft_error_free(err);
	}
	exit(1);
}

static inline void bench_runtime_destroy(const char *workload,
	weft_runtime_t *rt)
{
	int rc = weft_runtime_destroy(rt);
	if (rc < 0)
		bench_die(workload, "weft_runtime_destroy: %s",
			weft_strerror(rc));
}

/* }====== */

/* {====== JSON lines */

typedef struct bench_json {
	char buf[2048];
	size_t len;
	int overflow;
} bench_json_t;

__attribute__((format(printf, 2, 3))) static inline void
bench_json_raw(bench_json_t *j, const char *fmt, ...)
{
	if (j->overflow)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(j->buf + j->len, sizeof j->buf - j->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof j->buf - j->len)
		j->overflow = 1;
	else
		j->len += (size_t)n;
}

/* Keys and string values are ours (no escaping needed). */
static inline void bench_json_str(bench_json_t *j, const char *key,
	const char *v)
{
	bench_json_raw(j, ",\"%s\":\"%s\"", key, v);
}

static inline void bench_json_int(bench_json_t *j, const char *key, long long v)
{
	bench_json_raw(j, ",\"%s\":%lld", key, v);
}

/* A number with 3 decimals (ms, ns, us figures). */
static inline void bench_json_num(bench_json_t *j, const char *key, double v)
{
	bench_json_raw(j, ",\"%s\":%.3f", key, v);
}

static inline void bench_json_bool(bench_json_t *j, const char *key, int v)
{
	bench_json_raw(j, ",\"%s\":%s", key, v ? "true" : "false");
}

/* Opens a line with the keys every benchmark prints first. */
static inline void bench_json_begin(bench_json_t *j, const char *workload,
	unsigned workers, long long n)
{
	j->len = 0;
	j->overflow = 0;
	bench_json_raw(j, "{\"workload\":\"%s\"", workload);
	bench_json_int(j, "workers", workers);
	bench_json_int(j, "n", n);
}

/* median_ms, p10_ms, p90_ms of the repetitions and how many there were. */
static inline void bench_json_times(bench_json_t *j, const bench_stats_t *ms,
	int reps)
{
	bench_json_num(j, "median_ms", ms->median);
	bench_json_num(j, "p10_ms", ms->p10);
	bench_json_num(j, "p90_ms", ms->p90);
	bench_json_int(j, "reps", reps);
}

/* Adds maxrss_kb and io_thread, closes the line and prints it. */
static inline void bench_json_end(bench_json_t *j)
{
	bench_json_int(j, "maxrss_kb", bench_maxrss_kb());
	bench_json_bool(j, "io_thread", 1);
	bench_json_raw(j, "}");
	if (j->overflow) {
		fprintf(stderr, "weft-bench: JSON line too long\n");
		exit(1);
	}
	printf("%s\n", j->buf);
	fflush(stdout);
}

/* }====== */

#endif
