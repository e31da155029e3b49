/* Runtime objects: creation, running root tasks, destruction.  Everything
 * a runtime uses hangs off struct weft_runtime (runtime.h); destroy gives back
 * every thread, fd and byte.
 *
 * Run against destroy: one word, running_roots, decides.  A run counts
 * itself (fetch_add) before it touches anything else of the runtime (the
 * record arena, the injection queue), and uncounts itself after its last
 * access; destroy goes on only if it swaps the word from 0 to DESTROYING,
 * so a run that has begun makes destroy return -EBUSY, and a run that
 * begins while destroy checks sees DESTROYING and backs out.  (A run
 * called after destroy returned 0 uses freed memory: rt is gone, as
 * documented.)  Then destroy checks that no task handle is held
 * (records.h), nor a group or portal reference a user took with
 * weft_group_retain or weft_portal_retain (user_refs): a handle or a
 * reference released after the runtime's records were freed would write
 * freed memory, so it refuses (or, in abort mode, aborts naming what is
 * held) and takes DESTROYING back out of the word. */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "config.h"
#include "core/records.h"
#include "core/cpuclock.h"
#include "core/stall.h"
#include "core/task.h"
#include "core/inspect.h"
#include "core/trace.h"
#include "io/io.h"
#include "io/ioop.h"
#include "io/signal.h"
#include "io/sock.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "thread/offload.h"

/* The dump's describers of the wait objects above core/ (core/inspect.h),
 * listed here because only the composition root sees every layer. */
const weft__wait_describe_fn weft__wait_describers[WEFT__WAIT_NKINDS] = {
	[WEFT__WAIT_LOCK] = weft__lock_describe,
	[WEFT__WAIT_EVENT] = weft__event_describe,
	[WEFT__WAIT_CHAN_SEND] = weft__chan_describe_send,
	[WEFT__WAIT_CHAN_RECV] = weft__chan_describe_recv,
	[WEFT__WAIT_SEMAPHORE] = weft__semaphore_describe,
	[WEFT__WAIT_LIMITER] = weft__limiter_describe,
	[WEFT__WAIT_CONDITION] = weft__condition_describe,
	[WEFT__WAIT_IO] = weft__ioop_describe,
	[WEFT__WAIT_OFFLOAD] = weft__offload_describe,
	[WEFT__WAIT_SOCK] = weft__sock_describe,
};

/* In running_roots while weft_runtime_destroy checks (far above any count
 * of concurrent runs). */
#define WEFT__RUNTIME_DESTROYING (1 << 30)

/* The first task record of rt that a user still holds a handle of, and
 * how many handles are held in all (*n).  Scans the arena's list of every
 * record (type-stable, read lock-free as snapshots do).  relaxed loads:
 * the releases the caller waited for happen before this call (it is
 * documented so), and coherence then gives their counts. */
static struct weft_task *runtime_held_handle(struct weft_runtime *rt, long *n)
{
	struct weft_task *first = NULL;
	*n = 0;
	/* Every record (records.h, weft__record_arena_first: acquire, so a
	 * chunk's records are initialised before we read them). */
	for (struct weft__record_chunk *c =
			weft__record_arena_first(&rt->tasks);
		c; c = c->next)
		for (struct weft_task *t = c->recs; t < c->recs + c->nrec;
			t++) {
			int h = atomic_load_explicit(&t->handles,
				memory_order_relaxed);
			if (h > 0) {
				*n += h;
				if (first == NULL)
					first = t;
			}
		}
	return first;
}

/* The worker array is over-allocated by one false-sharing unit and
 * aligned by hand (weft__alloc guarantees 16 bytes). */
static weft__worker_t *runtime_alloc_workers(unsigned n, void **raw)
{
	size_t size = (size_t)n * sizeof(weft__worker_t) + WEFT__FALSE_SHARING;
	char *p = weft__alloc(size);
	if (p == NULL)
		return NULL;
	memset(p, 0, size);
	*raw = p;
	uintptr_t a = ((uintptr_t)p + WEFT__FALSE_SHARING - 1) &
		~(uintptr_t)(WEFT__FALSE_SHARING - 1);
	return (weft__worker_t *)a;
}

struct runtime_box {
	struct weft_runtime rt;
	void *workers_raw;
};

static void runtime_stop_workers(struct weft_runtime *rt, unsigned started)
{
	/* seq_cst: ordered before wake_all's reads; a worker going to sleep
	 * reads `stopping` after its own seq_cst fence (idle.c). */
	atomic_store_explicit(&rt->stopping, true, memory_order_seq_cst);
	weft__idle_wake_all(rt);
	for (unsigned i = 0; i < started; i++)
		weft__sched_worker_join(&rt->workers[i]);
	/* Only now: until every worker is joined, any may steal from any
	 * deque. */
	for (unsigned i = 0; i < started; i++)
		weft__sched_worker_fini(&rt->workers[i]);
}

int weft_runtime_create(weft_runtime_t **out, weft_config_t *cfg)
{
	if (out == NULL || cfg == NULL)
		return -EINVAL;
	int rc = weft__config_validate(cfg);
	if (rc < 0)
		return rc;
	bool trace_failed = false; /* the trace file could not be opened */
	struct runtime_box *box = weft__calloc(1, sizeof *box);
	if (box == NULL)
		goto oom;
	struct weft_runtime *rt = &box->rt;
	rt->cfg = *cfg;
	rt->nworkers = cfg->workers;
	atomic_init(&rt->stopping, false);
	atomic_init(&rt->running_roots, 0);
	atomic_init(&rt->error_seq, 1);
	atomic_init(&rt->cancel_gen, 1);
	rt->workers = runtime_alloc_workers(rt->nworkers, &box->workers_raw);
	if (rt->workers == NULL)
		goto fail_box;
	rc = weft__stack_shared_init(&rt->stacks, cfg->stack_size,
		cfg->guarded_stacks);
	if (rc < 0)
		goto fail_workers;
	rc = weft__stack_handler_acquire();
	if (rc < 0)
		goto fail_stacks;
	rc = weft__inject_init(&rt->inject);
	if (rc < 0)
		goto fail_handler;
	rc = weft__idle_init(&rt->idle);
	if (rc < 0)
		goto fail_inject;
	rc = weft__baton_init(rt, cfg->seed);
	if (rc < 0)
		goto fail_idle;
	rc = weft__record_pool_init(&rt->records);
	if (rc < 0)
		goto fail_baton;
	rc = weft__record_arena_init(&rt->tasks);
	if (rc < 0)
		goto fail_records;
	rc = -pthread_mutex_init(&rt->insp_lock, NULL);
	if (rc < 0)
		goto fail_arena;
	rt->insp_asym = weft__inspect_asym_init();
	rc = weft__timer_init(&rt->timer, cfg->clock == WEFT_CLOCK_VIRTUAL);
	if (rc < 0)
		goto fail_insp;
	/* Rule 46: the real clock's asleep report is opt-in (it costs two
	 * atomic updates per I/O operation, to count them). */
	rt->timer.asleep_check = cfg->clock == WEFT_CLOCK_REAL &&
		cfg->deadlock == WEFT_DEADLOCK_REPORT;
	/* Before the workers: they read rt->stall from their start. */
	rc = weft__stall_init(rt);
	if (rc < 0)
		goto fail_timer;
	/* Before any thread that records events starts. */
	rc = weft__trace_create(rt);
	if (rc < 0) {
		trace_failed = rc != -ENOMEM;
		goto fail_stall;
	}
	rc = weft__io_start(rt);
	if (rc < 0)
		goto fail_trace;
	/* Before the workers: they read its clock from their first task. */
	rc = weft__cpuclock_start(rt);
	if (rc < 0) {
		weft__io_stop(rt);
		goto fail_trace;
	}
	unsigned started = 0;
	for (; started < rt->nworkers; started++) {
		rc = weft__sched_worker_start(rt, &rt->workers[started],
			started);
		if (rc < 0)
			break;
	}
	/* After the workers: the monitor signals their threads. */
	if (rc == 0)
		rc = weft__stall_start(rt);
	if (rc < 0) {
		runtime_stop_workers(rt, started);
		weft__cpuclock_stop(rt);
		weft__io_stop(rt);
		goto fail_trace;
	}
	weft__alloc_census_add(WEFT__CENSUS_RUNTIME, 1);
	*out = rt;
	return 0;
fail_trace:
	weft__trace_destroy(rt);
fail_stall:
	weft__stall_fini(rt);
fail_timer:
	weft__timer_fini(&rt->timer);
fail_insp:
	pthread_mutex_destroy(&rt->insp_lock);
fail_arena:
	weft__record_arena_fini(&rt->tasks);
fail_records:
	weft__record_pool_fini(&rt->records);
fail_baton:
	weft__baton_fini(rt);
fail_idle:
	weft__idle_fini(&rt->idle);
fail_inject:
	weft__inject_fini(&rt->inject);
fail_handler:
	weft__stack_handler_release();
fail_stacks:
	weft__stack_shared_fini(&rt->stacks);
fail_workers:
	weft__free(box->workers_raw);
fail_box:
	weft__free(box);
	if (rc == -ENOMEM || rc == 0) {
oom:
		rc = -ENOMEM;
		snprintf(cfg->message, sizeof cfg->message,
			"out of memory creating the runtime");
	} else if (trace_failed) {
		snprintf(cfg->message, sizeof cfg->message,
			"cannot open trace_path '%.160s': %s", cfg->trace_path,
			weft_strerror(rc));
	} else {
		snprintf(cfg->message, sizeof cfg->message,
			"creating the runtime failed: %s", weft_strerror(rc));
	}
	return rc;
}

/* Whether a user still holds a reference into rt's memory: a group or
 * portal reference (user_refs) or a task handle.  Reports the first kind
 * found as a misuse naming weft_runtime_destroy. */
static bool runtime_still_referenced(struct weft_runtime *rt)
{
	/* relaxed: see user_refs (runtime.h). */
	long refs = atomic_load_explicit(&rt->user_refs, memory_order_relaxed);
	if (refs > 0) {
		weft__misuse("weft_runtime_destroy: %ld reference%s taken with "
			     "weft_group_retain or weft_portal_retain %s "
			     "still held: release them before destroying "
			     "the runtime (a release after it would touch "
			     "freed memory)",
			refs, refs == 1 ? "" : "s", refs == 1 ? "is" : "are");
		return true;
	}
	long held;
	struct weft_task *t = runtime_held_handle(rt, &held);
	if (t == NULL)
		return false;
	char what[160];
	snprintf(what, sizeof what,
		"is still held (%ld task handle%s in all): release every "
		"handle before destroying the runtime",
		held, held == 1 ? "" : "s");
	weft__task_misuse(weft__task_handle(t), "weft_runtime_destroy", what);
	return true;
}

int weft_runtime_destroy(weft_runtime_t *rt)
{
	if (rt == NULL)
		return -EINVAL;
	weft__worker_t *self = weft__sched_current();
	if (self != NULL && self->rt == rt)
		return -EBUSY;
	/* acq_rel: the acquire pairs with weft_runtime_run's acq_rel
	 * decrement, so the last run's accesses come before the teardown;
	 * the release orders DESTROYING before a run's check of its
	 * fetch_add (see the top of this file).  acquire on failure: the
	 * value is only compared. */
	int idle = 0;
	if (!atomic_compare_exchange_strong_explicit(&rt->running_roots, &idle,
		    WEFT__RUNTIME_DESTROYING, memory_order_acq_rel,
		    memory_order_acquire))
		return -EBUSY;
	if (runtime_still_referenced(rt)) {
		/* A subtraction, not a store of 0: a run that came meanwhile
		 * counted itself and will uncount itself.  release: pairs
		 * with a later destroy's or run's acquire. */
		atomic_fetch_sub_explicit(&rt->running_roots,
			WEFT__RUNTIME_DESTROYING, memory_order_release);
		return -EBUSY;
	}
	/* The monitor first: it sends signals to the workers' threads. */
	weft__stall_stop(rt);
	/* Offload threads next: an abandoned to_thread call may still run
	 * (and may call back into the runtime). */
	weft__offload_stop(rt);
	runtime_stop_workers(rt, rt->nworkers);
	weft__cpuclock_stop(rt);
	weft__io_stop(rt);
	/* Every task ended, so every shielded scope was exited. */
	weft__stall_fini(rt);
	/* Every thread that records events is joined. */
	weft__trace_destroy(rt);
	/* After the I/O queue's last timer requests ran. */
	weft__timer_fini(&rt->timer);
	weft__signal_fini(rt);
	/* After the workers drained their record caches. */
	weft__record_arena_fini(&rt->tasks);
	pthread_mutex_destroy(&rt->insp_lock);
	weft__record_pool_fini(&rt->records);
	weft__baton_fini(rt);
	weft__idle_fini(&rt->idle);
	weft__inject_fini(&rt->inject);
	weft__stack_shared_fini(&rt->stacks);
	weft__stack_handler_release();
	struct runtime_box *box = WEFT__CONTAINER_OF(rt, struct runtime_box,
		rt);
	weft__free(box->workers_raw);
	weft__free(box);
	weft__alloc_census_add(WEFT__CENSUS_RUNTIME, -1);
	return 0;
}

int weft_runtime_run(weft_runtime_t *rt, weft_fn fn, void *arg,
	weft_error_t **err_out)
{
	if (rt == NULL || fn == NULL)
		return -EINVAL;
	if (err_out)
		*err_out = NULL;
	if (weft__sched_current() != NULL)
		return WEFT_EMISUSE;
	/* Counted before anything else touches rt (see the top of this
	 * file).  acq_rel: the release half orders the count before our
	 * later accesses for a destroy that reads it (acquire); the acquire
	 * half sees a destroy's DESTROYING. */
	if (atomic_fetch_add_explicit(&rt->running_roots, 1,
		    memory_order_acq_rel) &
		WEFT__RUNTIME_DESTROYING) {
		/* relaxed: we touched nothing else of rt. */
		atomic_fetch_sub_explicit(&rt->running_roots, 1,
			memory_order_relaxed);
		return -EBUSY;
	}
	struct weft_task *t;
	int rc = weft__task_create(rt, "main", fn, arg, &t);
	if (rc < 0) {
		/* release: our accesses (the arena) before a destroy. */
		atomic_fetch_sub_explicit(&rt->running_roots, 1,
			memory_order_release);
		return rc;
	}
	atomic_uint done;
	atomic_init(&done, 0);
	t->root_done = &done;
	/* relaxed: the creator's reference keeps t alive; this one is the
	 * caller's, dropped below after reading the outcome. */
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	weft__scope_link(&t->root_scope, NULL, t);
	/* A root on its way in holds the virtual clock until it is queued,
	 * as a portal spawn does (core/timer.c, Q3): a quiescence check made
	 * meanwhile neither jumps nor reports the listed root as
	 * deadlocked. */
	weft__timer_hold(&rt->timer, 1);
	/* Listed for introspection dumps until it has ended (runtime_roots). */
	struct weft__root_entry root = { t, NULL, false };
	pthread_mutex_lock(&rt->insp_lock);
	root.next = rt->roots;
	rt->roots = &root;
	pthread_mutex_unlock(&rt->insp_lock);
	weft__inject_push(&rt->inject, t);
	weft__idle_notify(rt);
	weft__timer_hold(&rt->timer, -1);
	/* acquire: pairs with the release store in weft__task_finish. */
	while (atomic_load_explicit(&done, memory_order_acquire) == 0) {
#if defined(__SANITIZE_THREAD__)
		/* TSan runs an asynchronous signal's handler only inside a
		 * call it intercepts, and weft's threads block signals, so a
		 * SIGTERM for this (the embedder's) thread would wait forever
		 * behind a raw futex wait: poll with an intercepted sleep. */
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
#else
		syscall(SYS_futex, &done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
#endif
	}
	pthread_mutex_lock(&rt->insp_lock);
	for (struct weft__root_entry **pp = &rt->roots; *pp; pp = &(*pp)->next)
		if (*pp == &root) {
			*pp = root.next;
			break;
		}
	bool deadlocked = root.deadlocked;
	pthread_mutex_unlock(&rt->insp_lock);
	rc = t->rc;
	/* Cancelled by the virtual clock's deadlock report (timer.c): the
	 * root's own failure, if it failed otherwise, stays its result. */
	if (deadlocked && (rc == 0 || rc == -ECANCELED))
		rc = -EDEADLK;
	/* acquire: pairs with the finisher's release store of the state (the
	 * `done` handshake above already ordered it; this keeps the read
	 * self-evidently safe). */
	if (atomic_load_explicit(&t->state, memory_order_acquire) ==
			WEFT_TASK_FAILED &&
		err_out) {
		struct weft__leaf *l = weft__task_failure_leaf(t);
		*err_out = l ? weft__error_single(l)
			     : weft__error_from_leaves(NULL, 0, 1);
	}
	weft__task_unref(t);
	/* acq_rel: the release half orders this root's accesses before a
	 * destroy that reads the count (acquire). */
	atomic_fetch_sub_explicit(&rt->running_roots, 1, memory_order_acq_rel);
	return rc;
}

int weft_run(weft_fn fn, void *arg)
{
	weft_config_t cfg;
	int rc = weft_config_init(&cfg);
	if (rc < 0) {
		fprintf(stderr, "weft: %s\n", cfg.message);
		return rc;
	}
	weft_runtime_t *rt;
	rc = weft_runtime_create(&rt, &cfg);
	if (rc < 0) {
		fprintf(stderr, "weft: %s\n", cfg.message);
		return rc;
	}
	weft_error_t *err = NULL;
	rc = weft_runtime_run(rt, fn, arg, &err);
	if (err) {
		char buf[4096];
		weft_error_format(err, buf, sizeof buf);
		fprintf(stderr, "weft: the main task failed:\n%s", buf);
		weft_error_free(err);
	}
	weft_runtime_destroy(rt);
	return rc;
}

unsigned weft_worker_count(void)
{
	weft__worker_t *w = weft__sched_current();
	return w ? w->rt->nworkers : 0;
}

int weft_worker_index(void)
{
	weft__worker_t *w = weft__sched_current();
	return w ? (int)w->index : -1;
}
