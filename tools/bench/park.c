/* B7 `park`: parked-task memory and timer accuracy (docs/benchmarks.md).
 * The benchmark that shows 1,000,000 tasks parked at once on a stock
 * kernel (vm.max_map_count 65530).
 *
 * For each M: the root opens a group and spawns M tasks; task k sleeps with
 * weft_sleep_until(start + 1000 ms + (k % 100) ms), then records its
 * lateness (weft_now() - deadline) into a preallocated array; the root
 * joins.  start is taken just before the first spawn.
 *
 * Usage: weft-bench-park [M ...], or BENCH_PARK_M="M,M,..." in the
 * environment (for tools/run bench); default 10000 100000 1000000.  Each M
 * runs in its own child process with its own runtime, so that its memory
 * figures start cold (glibc keeps freed task records, the runtime keeps
 * stacks: a second run in the same process would reuse them).  One JSON
 * line per M.  Repetitions: BENCH_PARK_REPS (default 11 measured after 1
 * warm-up; for M = 1,000,000 a single run, no warm-up, about 2 s); "reps"
 * in the JSON says how many were measured.
 *
 * Memory, from the first (cold) run only: VmHWM is reset (clear_refs) and
 * VmRSS read just before the first spawn, after the arrays are allocated
 * and touched; bytes_per_parked_task = (VmHWM after the join - that VmRSS)
 * / M.  all_parked says whether, in every run, the last task parked before
 * the first one woke (so M tasks really were parked at once); max_parked
 * is the largest number asleep at the same time (the smallest such figure
 * over all runs: below M, stacks of tasks that already woke were reused
 * and bytes_per_parked_task understates what a parked task costs);
 * last_park_ms is when the last task went to sleep (median over runs), to
 * compare with the first deadline at 1000 ms.  median_ms = total_ms =
 * median time from the first spawn to the end of the join; spawn_ms =
 * median time of the spawn loop; lateness percentiles are per run (nearest
 * rank over M), then the median over
 * runs; lateness_max_us is the worst over all runs.
 *
 * Where the memory and the time go, from the first run: the root sleeps
 * until 20 ms before the first deadline (if that is still ahead once it
 * spawned), takes a snapshot there (the parked state), then joins.
 * park_minflt_per_task = page faults from the first spawn to the snapshot
 * / M; parked_rss_kb = VmRSS at the snapshot; wake_cpu_ms / wake_sys_ms /
 * wake_minflt = the process's CPU time (user + system, system) and page
 * faults from the snapshot to the end of the join (the wake-up of all M).
 * BENCH_PARK_PAGES=1 also prints, at the snapshot, the resident memory by
 * kind of mapping (/proc/self/maps and /proc/self/pagemap) to stderr:
 * fiber stacks (guarded ones and slabs) with their resident pages by
 * page index inside a stack, the heap, other anonymous memory (glibc's
 * thread arenas, where task records come from), files.  BENCH_PARK_TRACE=1
 * prints the CLOCK_MONOTONIC times of the phases to stderr, to slice a
 * `perf record -k CLOCK_MONOTONIC` profile with `perf report --time`.
 * BENCH_PARK_RELEASE=1 sleeps with WEFT_SLEEP_RELEASE_STACK (the tasks
 * keep nothing on their stacks that anybody else reads): the parked
 * memory below a page per task, and what the copies cost at the wake-up
 * (ARCHITECTURE.md, "Parked-task memory"); the JSON line then says
 * "release_stack":true. */
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static const char *const workload = "park";

/* Sleep before the spread, 1000 ms as docs/benchmarks.md defines; the env var
 * BENCH_PARK_BASE_MS lengthens it for the "all parked at once" variant
 * (spawning 10^6 tasks takes longer than 1 s). */
static int64_t park_base_ns = 1000 * WEFT_MSEC;
#define PARK_SPREAD 100 /* deadlines spread over 100 ms, 1 ms apart */
#define PARK_MAX_REPS 64

struct park_ctx {
	long m;
	int warmup, reps;
	int64_t start;	   /* of the current run; written before spawning */
	int64_t *lateness; /* [m], ns */
	int64_t *parked;   /* [m], when task k went to sleep */
	int64_t *wake;	   /* [m], scratch for park_max_parked */
	/* Results. */
	long bad; /* tasks whose sleep did not return 0 */
	long baseline_kb, peak_kb;
	int all_parked;
	double total_ms[PARK_MAX_REPS], spawn_ms[PARK_MAX_REPS];
	double p50_us[PARK_MAX_REPS], p99_us[PARK_MAX_REPS];
	double last_park_ms[PARK_MAX_REPS];
	long max_parked; /* smallest over all runs, warm-up included */
	double max_us;
	/* The first run's snapshot (see the top of the file). */
	size_t stack_size;
	int pages, trace;
	int snapped;
	long parked_kb;
	struct rusage ru_start, ru_parked, ru_end;
};

/* The benchmark's one context: tasks find their slot from k (their
 * argument) and this pointer, so no per-task argument is allocated. */
static struct park_ctx *park;
/* Sleep flags: WEFT_SLEEP_RELEASE_STACK with BENCH_PARK_RELEASE=1. */
static unsigned park_sleep_flags;

static int64_t park_deadline(long k)
{
	return park->start + park_base_ns + (k % PARK_SPREAD) * WEFT_MSEC;
}

static int park_task(void *arg)
{
	long k = (long)(intptr_t)arg;
	int64_t deadline = park_deadline(k);
	park->parked[k] = bench_now();
	int rc = weft_sleep_until_opts(deadline, park_sleep_flags);
	park->lateness[k] = bench_now() - deadline;
	return rc < 0 ? bench_fail("weft_sleep_until", rc) : 0;
}

/* After a run: did every task park before the first wake-up?  *last_park
 * receives when the last one went to sleep. */
static int park_all_parked(const struct park_ctx *c, int64_t *last)
{
	int64_t last_park = INT64_MIN, first_wake = INT64_MAX;
	for (long k = 0; k < c->m; k++) {
		int64_t wake = park_deadline(k) + c->lateness[k];
		if (c->parked[k] > last_park)
			last_park = c->parked[k];
		if (wake < first_wake)
			first_wake = wake;
	}
	*last = last_park;
	return last_park < first_wake;
}

/* After a run: the largest number of tasks asleep at the same time (a
 * sweep over the sorted park and wake times).  Sorts c->parked. */
static long park_max_parked(struct park_ctx *c)
{
	for (long k = 0; k < c->m; k++)
		c->wake[k] = park_deadline(k) + c->lateness[k];
	qsort(c->parked, (size_t)c->m, sizeof c->parked[0], bench_cmp_i64);
	qsort(c->wake, (size_t)c->m, sizeof c->wake[0], bench_cmp_i64);
	long asleep = 0, max = 0, j = 0;
	for (long i = 0; i < c->m; i++) {
		while (j < c->m && c->wake[j] < c->parked[i]) {
			asleep--;
			j++;
		}
		if (++asleep > max)
			max = asleep;
	}
	return max;
}

/* {====== the parked-state snapshot */

/* Resident memory by kind of mapping (see the top of the file), to stderr.
 * A page counts when /proc/self/pagemap says it is present and mapped
 * exclusively: that leaves out the kernel's shared zero page, which a
 * read of untouched anonymous memory maps (the canary check of a slab
 * stack does) and which RSS does not count.  Anonymous memory counts as
 * stacks in mappings of exactly one stack (guarded stacks: the guard page
 * is a mapping of its own) or of whole slabs (stack.c: up to 256 stacks,
 * 256 MiB; merged neighbours included), pages by index inside a stack
 * (0 = the lowest, the canary page of a slab stack), assuming the mapping
 * starts at a stack's low end, as both kinds do. */
static void park_pages(const struct park_ctx *c)
{
	FILE *f = fopen("/proc/self/maps", "r");
	FILE *pm = fopen("/proc/self/pagemap", "r");
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t per = c->stack_size / page;
	size_t slab_stacks = ((size_t)256 << 20) / c->stack_size;
	if (slab_stacks > 256)
		slab_stacks = 256;
	if (slab_stacks < 1)
		slab_stacks = 1;
	size_t slab = slab_stacks * c->stack_size;
	long *by_index = calloc(per, sizeof *by_index);
	uint64_t *vec = NULL;
	size_t vec_len = 0;
	long used[17] = { 0 }, used_sum = 0, used_n = 0;
	long stacks_kb = 0, stack_maps = 0, stack_vsz_mb = 0, heap_kb = 0,
	     anon_kb = 0, file_kb = 0, touched_stacks = 0, zero_pages = 0;
	char line[512];
	while (f && pm && by_index && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8], path[256] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &lo, &hi,
			    perms, path) < 3 ||
			perms[0] != 'r' || strcmp(path, "[vsyscall]") == 0)
			continue;
		size_t len = hi - lo, n = len / page;
		if (n > vec_len) {
			free(vec);
			vec = malloc(n * sizeof *vec);
			vec_len = vec ? n : 0;
		}
		if (vec == NULL ||
			fseeko(pm, (off_t)(lo / page * sizeof *vec),
				SEEK_SET) != 0 ||
			fread(vec, sizeof *vec, n, pm) != n)
			continue;
		/* Bit 63: present; bit 56: mapped exclusively. */
		long res = 0;
		for (size_t i = 0; i < n; i++) {
			int present = (int)(vec[i] >> 63) & 1;
			int excl = (int)(vec[i] >> 56) & 1;
			vec[i] = (uint64_t)(present && excl);
			res += (long)vec[i];
			zero_pages += present && !excl && path[0] == '\0';
		}
		long kb = res * (long)(page / 1024);
		int anon = path[0] == '\0';
		if (anon && perms[1] == 'w' &&
			(len == c->stack_size || len % slab == 0)) {
			stack_maps++;
			stack_vsz_mb += (long)(len >> 20);
			stacks_kb += kb;
			for (size_t i = 0; i < n; i++)
				by_index[i % per] += (long)vec[i];
			for (size_t s = 0; s < n; s += per) {
				uint64_t any = 0;
				for (size_t i = s; i < s + per; i++)
					any |= vec[i];
				touched_stacks += (long)any;
				/* A stack with only its top page: how much
				 * of it is in use (from its lowest non-zero
				 * byte; fresh pages are zero). */
				if (!vec[s + per - 1] || vec[s + per - 2])
					continue;
				const unsigned char *top = (const void *)(lo +
					(s + per - 1) * page);
				size_t z = 0;
				while (z < page && top[z] == 0)
					z++;
				used[(page - z) * 16 / page]++;
				used_sum += (long)(page - z);
				used_n++;
			}
		} else if (strcmp(path, "[heap]") == 0) {
			heap_kb += kb;
		} else if (anon || path[0] == '[') {
			anon_kb += kb;
		} else {
			file_kb += kb;
		}
	}
	if (f)
		fclose(f);
	if (pm)
		fclose(pm);
	fprintf(stderr,
		"park: M=%ld pages: stacks %ld kB in %ld mappings (%ld MB of "
		"address space, %ld stacks with a page of their own), heap "
		"%ld kB, other anonymous %ld kB, files %ld kB; shared pages "
		"(the zero page) mapped in anonymous memory: %ld\n",
		c->m, stacks_kb, stack_maps, stack_vsz_mb, touched_stacks,
		heap_kb, anon_kb, file_kb, zero_pages);
	fprintf(stderr,
		"park: M=%ld stack pages of their own by index "
		"(0 = lowest):",
		c->m);
	for (size_t i = 0; i < per && by_index; i++)
		fprintf(stderr, " %zu:%ld", i, by_index[i]);
	fprintf(stderr, "\n");
	fprintf(stderr,
		"park: M=%ld bytes in use on a stack with only its top page "
		"resident (%ld such stacks): mean %ld; by 1/16 of a page:",
		c->m, used_n, used_n ? used_sum / used_n : 0);
	for (int i = 0; i < 17; i++)
		if (used[i])
			fprintf(stderr, " <%zu:%ld",
				(size_t)(i + 1) * page / 16, used[i]);
	fprintf(stderr, "\n");
	free(vec);
	free(by_index);
}

static double park_tv_ms(struct timeval a, struct timeval b)
{
	return (double)(b.tv_sec - a.tv_sec) * 1e3 +
		(double)(b.tv_usec - a.tv_usec) / 1e3;
}

/* CPU milliseconds (user + system, or system only) from a to b. */
static double park_cpu_ms(const struct rusage *a, const struct rusage *b,
	int sys_only)
{
	double ms = park_tv_ms(a->ru_stime, b->ru_stime);
	if (!sys_only)
		ms += park_tv_ms(a->ru_utime, b->ru_utime);
	return ms;
}

/* With BENCH_PARK_TRACE=1: every thread's CPU time so far (user + system,
 * ms, from /proc/self/task), to stderr, labelled `when`. */
static void park_thread_cpu(const struct park_ctx *c, const char *when)
{
	DIR *d = opendir("/proc/self/task");
	if (d == NULL)
		return;
	long tick = sysconf(_SC_CLK_TCK);
	fprintf(stderr, "park: M=%ld thread CPU ms %s:", c->m, when);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], line[1024];
		snprintf(path, sizeof path, "/proc/self/task/%s/stat",
			e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		char *got = fgets(line, sizeof line, f);
		fclose(f);
		char *open = got ? strchr(line, '(') : NULL;
		char *close = got ? strrchr(line, ')') : NULL;
		if (open == NULL || close == NULL)
			continue;
		*close = '\0';
		char name[32];
		snprintf(name, sizeof name, "%s", open + 1);
		unsigned long ut, st;
		/* utime and stime: fields 14 and 15, the 12th and 13th after
		 * the name. */
		if (sscanf(close + 2,
			    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu "
			    "%lu",
			    &ut, &st) != 2)
			continue;
		/* And how often it slept (voluntary context switches). */
		long sleeps = -1;
		snprintf(path, sizeof path, "/proc/self/task/%s/status",
			e->d_name);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof line, f))
			if (sscanf(line, "voluntary_ctxt_switches: %ld",
				    &sleeps) == 1)
				break;
		if (f)
			fclose(f);
		fprintf(stderr, " %s=%ld (%ld sleeps)", name,
			(long)((ut + st) * 1000 / (unsigned long)tick), sleeps);
	}
	closedir(d);
	fprintf(stderr, "\n");
}

/* Called by the root after spawning the first run's tasks: the parked
 * state's snapshot, 20 ms before the first deadline. */
static int park_snapshot(struct park_ctx *c)
{
	int64_t at = c->start + park_base_ns - 20 * WEFT_MSEC;
	if (bench_now() >= at)
		return 0; /* too late: no parked state to look at */
	int rc = weft_sleep_until(at);
	if (rc < 0)
		return bench_fail("weft_sleep_until", rc);
	getrusage(RUSAGE_SELF, &c->ru_parked);
	c->parked_kb = bench_status_kb("VmRSS");
	c->snapped = 1;
	if (c->trace) {
		fprintf(stderr, "park: M=%ld snapshot at %.6f s\n", c->m,
			(double)bench_now() / 1e9);
		park_thread_cpu(c, "at the snapshot");
	}
	if (c->pages)
		park_pages(c);
	return 0;
}

/* }====== */

static int park_root(void *arg)
{
	struct park_ctx *c = arg;
	for (int r = 0; r < c->warmup + c->reps; r++) {
		if (r == 0) {
			(void)bench_reset_hwm();
			c->baseline_kb = bench_status_kb("VmRSS");
		}
		weft_group_t *g;
		int rc = weft_group_open(&g);
		if (rc < 0)
			return bench_fail("weft_group_open", rc);
		if (r == 0)
			getrusage(RUSAGE_SELF, &c->ru_start);
		c->start = bench_now();
		if (r == 0 && c->trace)
			fprintf(stderr,
				"park: M=%ld start at %.6f s, first deadline "
				"at %.6f s\n",
				c->m, (double)c->start / 1e9,
				(double)(c->start + park_base_ns) / 1e9);
		int spawn_rc = 0;
		for (long k = 0; k < c->m && spawn_rc == 0; k++)
			spawn_rc = weft_group_spawn(g, park_task,
				(void *)(intptr_t)k);
		int64_t spawned = bench_now();
		if (r == 0 && spawn_rc == 0 && (rc = park_snapshot(c)) < 0)
			return rc;
		weft_error_t *err = NULL;
		rc = weft_group_join(g, &err);
		int64_t end = bench_now();
		if (r == 0) {
			c->peak_kb = bench_status_kb("VmHWM");
			getrusage(RUSAGE_SELF, &c->ru_end);
			if (c->trace) {
				fprintf(stderr, "park: M=%ld end at %.6f s\n",
					c->m, (double)end / 1e9);
				park_thread_cpu(c, "after the join");
			}
		}
		rc = bench_joined(rc, err, spawn_rc);
		if (rc < 0)
			return rc;
		int64_t last_park;
		if (!park_all_parked(c, &last_park))
			c->all_parked = 0;
		long most = park_max_parked(c);
		if (r == 0 || most < c->max_parked)
			c->max_parked = most;
		if (r < c->warmup)
			continue;
		int i = r - c->warmup;
		c->last_park_ms[i] = bench_ms(last_park - c->start);
		c->total_ms[i] = bench_ms(end - c->start);
		c->spawn_ms[i] = bench_ms(spawned - c->start);
		/* Sorting destroys the order; the next run rewrites it. */
		c->p50_us[i] = bench_pct_i64(c->lateness, c->m, 50) / 1e3;
		c->p99_us[i] = (double)c->lateness[bench_rank(c->m, 99)] / 1e3;
		double max = (double)c->lateness[c->m - 1] / 1e3;
		if (max > c->max_us)
			c->max_us = max;
		for (long k = 0; k < c->m; k++)
			if (c->lateness[k] < 0)
				c->bad++; /* woke before its deadline */
	}
	return 0;
}

/* One M, in the calling (child) process.  Returns the exit status. */
static int park_one(long m, int reps_env)
{
	struct park_ctx c = { .m = m, .all_parked = 1 };
	const char *pages = getenv("BENCH_PARK_PAGES");
	const char *trace = getenv("BENCH_PARK_TRACE");
	c.pages = pages != NULL && strcmp(pages, "1") == 0;
	const char *release = getenv("BENCH_PARK_RELEASE");
	if (release != NULL && strcmp(release, "1") == 0)
		park_sleep_flags = WEFT_SLEEP_RELEASE_STACK;
	c.trace = trace != NULL && strcmp(trace, "1") == 0;
	c.reps = reps_env > 0 ? reps_env : (m >= 1000000 ? 1 : BENCH_REPS);
	c.warmup = c.reps > 1 ? BENCH_WARMUP : 0;
	c.lateness = malloc((size_t)m * sizeof *c.lateness);
	c.parked = malloc((size_t)m * sizeof *c.parked);
	c.wake = malloc((size_t)m * sizeof *c.wake);
	if (c.lateness == NULL || c.parked == NULL || c.wake == NULL)
		bench_die(workload, "out of memory");
	/* Touch them now, so they are part of the baseline. */
	memset(c.lateness, 0, (size_t)m * sizeof *c.lateness);
	memset(c.parked, 0, (size_t)m * sizeof *c.parked);
	memset(c.wake, 0, (size_t)m * sizeof *c.wake);
	park = &c;
	weft_config_t cfg;
	weft_runtime_t *rt = bench_runtime_create(workload, &cfg);
	c.stack_size = cfg.stack_size;
	bench_run_root(workload, rt, park_root, &c);
	bench_runtime_destroy(workload, rt);
	fprintf(stderr,
		"park: M=%ld: %d run(s), all parked at once: %s, "
		"early wake-ups: %ld\n",
		m, c.warmup + c.reps, c.all_parked ? "yes" : "NO", c.bad);
	if (c.bad != 0)
		bench_die(workload, "%ld tasks woke before their deadline",
			c.bad);
	bench_stats_t total = bench_stats(c.total_ms, (size_t)c.reps);
	bench_stats_t spawn = bench_stats(c.spawn_ms, (size_t)c.reps);
	bench_stats_t p50 = bench_stats(c.p50_us, (size_t)c.reps);
	bench_stats_t p99 = bench_stats(c.p99_us, (size_t)c.reps);
	bench_stats_t last = bench_stats(c.last_park_ms, (size_t)c.reps);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, m);
	bench_json_int(&j, "tasks", m);
	bench_json_times(&j, &total, c.reps);
	bench_json_num(&j, "bytes_per_parked_task",
		(double)(c.peak_kb - c.baseline_kb) * 1024.0 / (double)m);
	bench_json_int(&j, "baseline_rss_kb", c.baseline_kb);
	bench_json_int(&j, "peak_rss_kb", c.peak_kb);
	bench_json_bool(&j, "all_parked", c.all_parked);
	if (park_sleep_flags)
		bench_json_bool(&j, "release_stack", true);
	bench_json_int(&j, "max_parked", c.max_parked);
	bench_json_num(&j, "lateness_p50_us", p50.median);
	bench_json_num(&j, "lateness_p99_us", p99.median);
	bench_json_num(&j, "lateness_max_us", c.max_us);
	if (c.snapped) {
		bench_json_num(&j, "park_minflt_per_task",
			(double)(c.ru_parked.ru_minflt - c.ru_start.ru_minflt) /
				(double)m);
		bench_json_int(&j, "parked_rss_kb", c.parked_kb);
		/* What the parked state itself holds: with released stacks
		 * the peak comes at the wake-up instead (the pages fault back
		 * in before the copies are freed). */
		bench_json_num(&j, "parked_bytes_per_task",
			(double)(c.parked_kb - c.baseline_kb) * 1024.0 /
				(double)m);
		bench_json_num(&j, "wake_cpu_ms",
			park_cpu_ms(&c.ru_parked, &c.ru_end, 0));
		bench_json_num(&j, "wake_sys_ms",
			park_cpu_ms(&c.ru_parked, &c.ru_end, 1));
		bench_json_int(&j, "wake_minflt",
			c.ru_end.ru_minflt - c.ru_parked.ru_minflt);
	}
	bench_json_num(&j, "spawn_ms", spawn.median);
	bench_json_num(&j, "last_park_ms", last.median);
	bench_json_num(&j, "total_ms", total.median);
	bench_json_end(&j);
	free(c.lateness);
	free(c.parked);
	free(c.wake);
	return 0;
}

/* Appends the M values of one argument ("100000" or "10000,100000"). */
static void park_parse(const char *arg, long *ms, int *count, int max)
{
	const char *p = arg;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || (*end != '\0' && *end != ',') || v < 1 ||
			v > 10000000 || *count >= max)
			bench_die(workload,
				"usage: weft-bench-park [M ...] or "
				"BENCH_PARK_M=M,M,... "
				"(1 <= M <= 10000000, at most %d)",
				max);
		ms[(*count)++] = v;
		p = *end == ',' ? end + 1 : end;
	}
}

int main(int argc, char **argv)
{
	long ms[16];
	int count = 0;
	for (int i = 1; i < argc; i++)
		park_parse(argv[i], ms, &count, 16);
	const char *base = getenv("BENCH_PARK_BASE_MS");
	if (base && *base) {
		char *end;
		long base_ms = strtol(base, &end, 10);
		if (*end != '\0' || base_ms < 1 || base_ms > 600000) {
			fprintf(stderr,
				"park: BENCH_PARK_BASE_MS='%s': expected "
				"1..600000\n",
				base);
			return 2;
		}
		park_base_ns = base_ms * WEFT_MSEC;
	}
	const char *list = getenv("BENCH_PARK_M");
	if (count == 0 && list && *list)
		park_parse(list, ms, &count, 16);
	if (count == 0) {
		ms[count++] = 10000;
		ms[count++] = 100000;
		ms[count++] = 1000000;
	}
	int reps = 0;
	const char *env = getenv("BENCH_PARK_REPS");
	if (env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end != '\0' || v < 1 || v > PARK_MAX_REPS)
			bench_die(workload, "BENCH_PARK_REPS must be 1..%d",
				PARK_MAX_REPS);
		reps = (int)v;
	}
	int failed = 0;
	for (int i = 0; i < count; i++) {
		/* No thread exists yet in this process: fork is safe. */
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0)
			bench_die(workload, "fork: %s", strerror(errno));
		if (pid == 0)
			_exit(park_one(ms[i], reps));
		int status;
		if (waitpid(pid, &status, 0) < 0)
			bench_die(workload, "waitpid: %s", strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr,
				"weft-bench-park: M=%ld failed "
				"(status %#x)\n",
				ms[i], status);
			failed = 1;
		}
	}
	return failed;
}
