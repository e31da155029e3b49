/* `dump`: the dump of a runtime with many parked tasks
 * (docs/benchmarks.md).
 *
 * The root spawns M tasks (BENCH_DUMP_M, default 10,000) into one group;
 * each calls a function of its own that waits on one Event, as the
 * connections of a server wait in the same read.  Once the dump holds
 * all M parked (every task's line has "parked_for="), the root times
 * BENCH_WARMUP + BENCH_REPS text dumps into a buffer
 * (weft_runtime_dump_buf), sets the Event and joins.  Each dump pins
 * every parked task, unwinds its stack (libdw) and names its frames.
 *
 * Keys: median_ms (one dump), us_per_task = median / M, dump_bytes (the
 * last dump's length), frames (the "#i" lines of the last dump: 0 without
 * libdw).  Checksum: every dump shows M tasks held parked. */
#include <stdatomic.h>
#include <string.h>

#include "bench.h"

static const char *const workload = "dump";

struct dump_run {
	long m;
	weft_event_t *ev;
	atomic_long waiting;
	char *buf;
	size_t cap, len;
	double ms[BENCH_REPS];
	long held; /* parked_for= lines of the last dump */
	long frames;
	int bad; /* a dump that did not hold all M */
};

/* Not inlined, so that it is a frame of every parked task's stack. */
static __attribute__((noinline)) int dump_wait_here(struct dump_run *run)
{
	atomic_fetch_add_explicit(&run->waiting, 1, memory_order_relaxed);
	int rc = weft_event_wait(run->ev);
	__asm__ volatile("" ::: "memory"); /* keeps the frame */
	return rc;
}

static int dump_task(void *arg)
{
	return dump_wait_here(arg);
}

static long dump_count(const char *text, const char *what)
{
	long n = 0;
	for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
		n++;
	return n;
}

/* One dump into run->buf; returns its time in ns, or a negative code. */
static int64_t dump_once(struct dump_run *run)
{
	int64_t t0 = bench_now();
	int rc = weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, run->buf, run->cap,
		&run->len);
	int64_t t1 = bench_now();
	if (rc < 0)
		return bench_fail("weft_runtime_dump_buf", rc);
	if (run->len >= run->cap)
		return bench_fail("weft_runtime_dump_buf (buffer too small)",
			-ENOBUFS);
	run->held = dump_count(run->buf, "parked_for=");
	return t1 - t0;
}

static int dump_root(void *arg)
{
	struct dump_run *run = arg;
	int rc = weft_event_create(&run->ev);
	if (rc < 0)
		return bench_fail("weft_event_create", rc);
	weft_group_t *g;
	rc = weft_group_open(&g);
	if (rc < 0)
		return bench_fail("weft_group_open", rc);
	int spawn_rc = 0;
	for (long i = 0; i < run->m && spawn_rc == 0; i++)
		spawn_rc = weft_group_spawn(g, dump_task, run);
	/* Until the dump holds them all (a task counts itself just before
	 * it parks, and is held once it left its stack). */
	for (int tries = 0; spawn_rc == 0 && tries < 10000; tries++) {
		if (atomic_load_explicit(&run->waiting, memory_order_relaxed) ==
			run->m) {
			int64_t ns = dump_once(run);
			if (ns < 0) {
				spawn_rc = (int)ns;
				break;
			}
			if (run->held == run->m)
				break;
		}
		weft_sleep(WEFT_MSEC);
	}
	for (int r = 0; spawn_rc == 0 && r < BENCH_WARMUP + BENCH_REPS; r++) {
		int64_t ns = dump_once(run);
		if (ns < 0) {
			spawn_rc = (int)ns;
			break;
		}
		if (run->held != run->m)
			run->bad = 1;
		if (r >= BENCH_WARMUP)
			run->ms[r - BENCH_WARMUP] = bench_ms(ns);
	}
	if (spawn_rc == 0)
		run->frames = dump_count(run->buf, "\n        #");
	weft_event_set(run->ev);
	weft_error_t *err = NULL;
	rc = bench_joined(weft_group_join(g, &err), err, spawn_rc);
	weft_event_destroy(run->ev);
	return rc;
}

int main(void)
{
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	struct dump_run *run = calloc(1, sizeof *run);
	if (run == NULL)
		bench_die(workload, "out of memory");
	run->m = bench_env_long(workload, "BENCH_DUMP_M", 10000, 1000000);
	/* About 400 bytes of text per parked task (its line and frames). */
	run->cap = (size_t)run->m * 2048 + (1 << 20);
	run->buf = malloc(run->cap);
	if (run->buf == NULL)
		bench_die(workload, "out of memory");
	bench_run_root(workload, rt, dump_root, run);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr, "dump: %ld of %ld tasks held parked in the last dump\n",
		run->held, run->m);
	if (run->bad || run->held != run->m)
		bench_die(workload, "a dump did not hold every parked task");
	bench_stats_t ms = bench_stats(run->ms, BENCH_REPS);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, run->m);
	bench_json_times(&j, &ms, BENCH_REPS);
	bench_json_num(&j, "us_per_task", ms.median * 1e3 / (double)run->m);
	bench_json_int(&j, "dump_bytes", (long long)run->len);
	bench_json_int(&j, "frames", run->frames);
	bench_json_end(&j);
	free(run->buf);
	free(run);
	return 0;
}
