/* B1 `fib`: fine-grain fork-join spawn cost (docs/benchmarks.md).
 *
 *     fib(n): if n < 2 return n
 *             a = SPAWN fib(n-1); b = fib(n-2) inline; JOIN
 *             return a + b
 *
 * Two lines per n, one per way weft spells SPAWN and JOIN:
 *   - "fib": weft_par (weft/par.h): fib(n-1) offered to other workers,
 *     fib(n-2) called inline, then fib(n-1) called inline unless taken;
 *   - "fib_group": a task group per call: open, spawn fib(n-1), call
 *     fib(n-2), join.
 * fib(n) splits fib(n+1) - 1 times (fib(30): 1,346,268).  Usage:
 * weft-bench-fib [n ...]; default 30, and 35 as well when BENCH_FULL=1;
 * BENCH_FIB=par or BENCH_FIB=group runs one way only.  ns_per_spawn is
 * median time x workers / spawns (docs/benchmarks.md, "Output": CPU time
 * per spawn). */
#include "bench.h"

/* The line being measured ("fib" or "fib_group"). */
static const char *workload = "fib";

/* A child's argument and result; lives in the parent's frame until its
 * group is joined. */
struct fib_slot {
	int n;
	long long result;
};

static int fib_task(void *arg);

/* fib(n) into *out; 0 or the first failure. */
static int fib_compute(int n, long long *out)
{
	if (n < 2) {
		*out = n;
		return 0;
	}
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	struct fib_slot child = { .n = n - 1, .result = 0 };
	int spawn_rc = weft_group_spawn(g, fib_task, &child);
	long long b = 0;
	int inline_rc = spawn_rc < 0 ? 0 : fib_compute(n - 2, &b);
	/* Always join: the child writes into this frame. */
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	if (spawn_rc < 0)
		return bench_fail("weft_group_spawn", spawn_rc);
	if (inline_rc < 0)
		return inline_rc;
	if (rc < 0)
		return bench_fail("weft_group_join", rc);
	*out = child.result + b;
	return 0;
}

static int fib_task(void *arg)
{
	struct fib_slot *s = arg;
	return fib_compute(s->n, &s->result);
}

/* fib(n) into *out through weft_par; 0 or the first failure. */
static int fib_par(int n, long long *out);

static int fib_par_task(void *arg)
{
	struct fib_slot *s = arg;
	return fib_par(s->n, &s->result);
}

static int fib_par(int n, long long *out)
{
	if (n < 2) {
		*out = n;
		return 0;
	}
	/* a: fib(n-2), called here first; b: fib(n-1), offered. */
	struct fib_slot a = { .n = n - 2, .result = 0 };
	struct fib_slot b = { .n = n - 1, .result = 0 };
	/* No error group: a half fails only if the benchmark broke. */
	int rc = weft_par(fib_par_task, &a, fib_par_task, &b, NULL);
	if (rc < 0)
		return bench_fail("weft_par", rc);
	*out = a.result + b.result;
	return 0;
}

static long long fib_serial(int n);

struct fib_run {
	int n;
	long long result;
	double ms[BENCH_REPS];
};

/* Which way fib_once computes (set before each line's runs). */
static bool fib_use_par = true;

static int fib_once(void *arg, long long *value)
{
	int n = *(const int *)arg;
	return fib_use_par ? fib_par(n, value) : fib_compute(n, value);
}

static int fib_root(void *arg)
{
	struct fib_run *run = arg;
	return bench_repeat(fib_once, &run->n, fib_serial(run->n), &run->result,
		run->ms);
}

static long long fib_serial(int n)
{
	long long a = 0, b = 1;
	for (int i = 0; i < n; i++) {
		long long c = a + b;
		a = b;
		b = c;
	}
	return a;
}

/* Tasks spawned by fib_compute(n): fib(n+1) - 1. */
static long long fib_spawns(int n)
{
	return n < 2 ? 0 : fib_serial(n + 1) - 1;
}

static void fib_bench(weft_runtime_t *rt, const weft_config_t *cfg, int n)
{
	struct fib_run run = { .n = n, .result = -1 };
	bench_run_root(workload, rt, fib_root, &run);
	long long want = fib_serial(n);
	fprintf(stderr, "fib(%d) = %lld (expected %lld)\n", n, run.result,
		want);
	if (run.result != want)
		bench_die(workload, "wrong result for fib(%d)", n);
	/* The anchor beside the figure (docs/benchmarks.md, B1). */
	fprintf(stderr,
		"note: the fork-join floor is Lace (about 2 ns per unstolen "
		"spawn; fib(35) in 17-52 ms here, docs/benchmarks.md B1): "
		"tools/bench/lace.sh measures it in the same sitting\n");
	bench_stats_t ms = bench_stats(run.ms, BENCH_REPS);
	long long spawns = fib_spawns(n);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg->workers, n);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_int(&j, "spawns", spawns);
	bench_json_num(&j, "ns_per_spawn",
		spawns ? ms.median * 1e6 * cfg->workers / (double)spawns : 0);
	bench_json_end(&j);
}

int main(int argc, char **argv)
{
	int ns[16], count = 0;
	for (int i = 1; i < argc && count < 16; i++) {
		char *end;
		long v = strtol(argv[i], &end, 10);
		if (*end != '\0' || v < 0 || v > 60)
			bench_die(workload,
				"usage: weft-bench-fib [n ...] "
				"(0 <= n <= 60)");
		ns[count++] = (int)v;
	}
	if (count == 0) {
		ns[count++] = 30;
		const char *full = getenv("BENCH_FULL");
		if (full && strcmp(full, "1") == 0)
			ns[count++] = 35;
	}
	const char *way = getenv("BENCH_FIB");
	bool par = true, group = true;
	if (way != NULL && strcmp(way, "par") == 0)
		group = false;
	else if (way != NULL && strcmp(way, "group") == 0)
		par = false;
	else if (way != NULL && way[0] != '\0')
		bench_die(workload, "BENCH_FIB must be par or group");
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	for (int i = 0; i < count; i++) {
		if (par) {
			workload = "fib";
			fib_use_par = true;
			fib_bench(rt, &cfg, ns[i]);
		}
		if (group) {
			workload = "fib_group";
			fib_use_par = false;
			fib_bench(rt, &cfg, ns[i]);
		}
	}
	bench_runtime_destroy(workload, rt);
	return 0;
}
