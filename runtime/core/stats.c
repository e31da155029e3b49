/* Scheduler counters: the reader side of weft_runtime_stats and
 * weft_worker_stats (weft/inspect.h).
 *
 * The writers are spread over the scheduler kernel (sched.c, idle.c,
 * group.c, and io/ioop.c for submissions), each bumping a counter of the
 * worker it runs on with a relaxed load and store (stats.h says why that
 * costs what a plain increment does).  Threads that are not workers bump
 * the runtime's few atomics instead, on paths that are slow anyway.
 *
 * The reader takes no lock and stops nobody: it loads each counter once,
 * relaxed.  Nothing orders one counter against another, so a snapshot
 * taken while tasks run is weakly consistent; a counter is only ever
 * written by one thread at a time (its worker), so no increment is lost
 * and every value read is one the counter had.  Where a property must
 * hold exactly once the runtime is idle (parks == the sum of the wakes),
 * the writers count before they publish what they counted (a wake before
 * the woken task is queued), so that the task's end, and the return of
 * weft_runtime_run after it, come after the count. */
#include <errno.h>
#include <string.h>

#include "core/inspect.h"
#include "core/sched.h"
#include "core/stats.h"
#include "core/timer.h"
#include "runtime.h"
#include "weft/inspect.h"

/* relaxed, everywhere below: a counter (see the top of the file). */
#define LOAD(c) atomic_load_explicit(&(c), memory_order_relaxed)

static void stats_worker(weft__worker_t *w, weft_worker_stats_t *out)
{
	const weft__worker_stats_t *s = &w->stats;
	out->tasks_run = LOAD(s->tasks_run);
	out->inline_run = LOAD(s->inline_run);
	out->steal_attempts = LOAD(s->steal_attempts);
	out->steals = LOAD(s->steals);
	out->stolen_extra = LOAD(s->stolen_extra);
	out->parks = LOAD(s->parks);
	out->wakes_local = LOAD(s->wakes_local);
	out->wakes_remote = LOAD(s->wakes_remote);
	out->wakes_early = LOAD(s->wakes_early);
	out->sleeps = LOAD(s->sleeps);
	out->sleep_wakeups = LOAD(s->sleep_wakeups);
	out->inject_pops = LOAD(s->inject_pops);
	/* The stretch the worker is awake in now, if it is: read the start
	 * first, so a sleep in between may count the stretch twice but a
	 * finished one is never lost. */
	int64_t since = LOAD(s->awake_since);
	out->busy_ns = LOAD(s->busy_ns);
	if (since != 0) {
		int64_t now = weft__timer_real_now();
		if (now > since)
			out->busy_ns += (uint64_t)(now - since);
	}
}

static void stats_sum(weft_worker_stats_t *sum, const weft_worker_stats_t *w)
{
	sum->tasks_run += w->tasks_run;
	sum->inline_run += w->inline_run;
	sum->steal_attempts += w->steal_attempts;
	sum->steals += w->steals;
	sum->stolen_extra += w->stolen_extra;
	sum->parks += w->parks;
	sum->wakes_local += w->wakes_local;
	sum->wakes_remote += w->wakes_remote;
	sum->wakes_early += w->wakes_early;
	sum->sleeps += w->sleeps;
	sum->sleep_wakeups += w->sleep_wakeups;
	sum->inject_pops += w->inject_pops;
	sum->busy_ns += w->busy_ns;
}

int weft_runtime_stats(weft_runtime_t *rt, weft_runtime_stats_t *out)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_runtime *r = weft__inspect_runtime(rt);
	if (r == NULL)
		return WEFT_ENOTFIBER;
	memset(out, 0, sizeof *out);
	out->workers = r->nworkers;
	out->tasks_spawned = LOAD(r->stats.spawned);
	out->wakes_io = LOAD(r->stats.wakes_io);
	out->wakes_thread = LOAD(r->stats.wakes_thread);
	for (unsigned i = 0; i < r->nworkers; i++) {
		weft__worker_t *w = &r->workers[i];
		weft_worker_stats_t one;
		stats_worker(w, &one);
		stats_sum(&out->total, &one);
		out->tasks_spawned += LOAD(w->stats.spawned);
		out->groups += LOAD(w->stats.groups);
		out->io_submitted += LOAD(w->stats.io_submitted);
	}
	size_t live = 0;
	int rc = weft_all_tasks(r, NULL, 0, &live);
	if (rc < 0)
		return rc;
	out->tasks_live = live;
	return 0;
}

int weft_worker_stats(weft_runtime_t *rt, unsigned index,
	weft_worker_stats_t *out)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_runtime *r = weft__inspect_runtime(rt);
	if (r == NULL)
		return WEFT_ENOTFIBER;
	if (index >= r->nworkers)
		return -EINVAL;
	stats_worker(&r->workers[index], out);
	return 0;
}
