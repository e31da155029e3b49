/* Runtime objects: creation, running root tasks, destruction.  Everything
 * a runtime uses hangs off struct weft_runtime (runtime.h); destroy gives back
 * every thread, fd and byte. */
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
#include "core/task.h"
#include "io/io.h"
#include "io/signal.h"
#include "runtime.h"
#include "thread/offload.h"

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
	struct runtime_box *box = weft__calloc(1, sizeof *box);
	if (box == NULL)
		goto oom;
	struct weft_runtime *rt = &box->rt;
	rt->cfg = *cfg;
	rt->nworkers = cfg->workers;
	atomic_init(&rt->stopping, false);
	atomic_init(&rt->running_roots, 0);
	atomic_init(&rt->error_seq, 1);
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
	rc = weft__record_pool_init(&rt->records);
	if (rc < 0)
		goto fail_idle;
	rc = weft__record_arena_init(&rt->tasks);
	if (rc < 0)
		goto fail_records;
	rc = -pthread_mutex_init(&rt->insp_lock, NULL);
	if (rc < 0)
		goto fail_arena;
	rc = weft__timer_init(&rt->timer);
	if (rc < 0)
		goto fail_insp;
	rc = weft__io_start(rt);
	if (rc < 0)
		goto fail_timer;
	unsigned started = 0;
	for (; started < rt->nworkers; started++) {
		rc = weft__sched_worker_start(rt, &rt->workers[started],
			started);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		runtime_stop_workers(rt, started);
		weft__io_stop(rt);
		goto fail_timer;
	}
	weft__alloc_census_add(WEFT__CENSUS_RUNTIME, 1);
	*out = rt;
	return 0;
fail_timer:
	weft__timer_fini(&rt->timer);
fail_insp:
	pthread_mutex_destroy(&rt->insp_lock);
fail_arena:
	weft__record_arena_fini(&rt->tasks);
fail_records:
	weft__record_pool_fini(&rt->records);
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
	} else {
		snprintf(cfg->message, sizeof cfg->message,
			"creating the runtime failed: %s", weft_strerror(rc));
	}
	return rc;
}

int weft_runtime_destroy(weft_runtime_t *rt)
{
	if (rt == NULL)
		return -EINVAL;
	weft__worker_t *self = weft__sched_current();
	if (self != NULL && self->rt == rt)
		return -EBUSY;
	/* acquire: pairs with weft_runtime_run's acq_rel decrement, so the
	 * last root's accesses come before the teardown. */
	if (atomic_load_explicit(&rt->running_roots, memory_order_acquire) != 0)
		return -EBUSY;
	/* Offload threads first: an abandoned to_thread call may still run
	 * (and may call back into the runtime). */
	weft__offload_stop(rt);
	runtime_stop_workers(rt, rt->nworkers);
	weft__io_stop(rt);
	/* After the I/O queue's last timer requests ran. */
	weft__timer_fini(&rt->timer);
	weft__signal_fini(rt);
	/* After the workers drained their record caches. */
	weft__record_arena_fini(&rt->tasks);
	pthread_mutex_destroy(&rt->insp_lock);
	weft__record_pool_fini(&rt->records);
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
	struct weft_task *t;
	int rc = weft__task_create(rt, "main", fn, arg, &t);
	if (rc < 0)
		return rc;
	atomic_uint done;
	atomic_init(&done, 0);
	t->root_done = &done;
	/* relaxed: the creator's reference keeps t alive; this one is the
	 * caller's, dropped below after reading the outcome. */
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	/* acq_rel: counted before the root can run; destroy's acquire load
	 * of the count pairs with the decrement below. */
	atomic_fetch_add_explicit(&rt->running_roots, 1, memory_order_acq_rel);
	weft__scope_link(&t->root_scope, NULL, t);
	t->root_linked = true;
	/* Listed for introspection dumps until it has ended (runtime_roots). */
	struct weft__root_entry root = { t, NULL };
	pthread_mutex_lock(&rt->insp_lock);
	root.next = rt->roots;
	rt->roots = &root;
	pthread_mutex_unlock(&rt->insp_lock);
	weft__inject_push(&rt->inject, t);
	weft__idle_notify(rt);
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
	pthread_mutex_unlock(&rt->insp_lock);
	rc = t->rc;
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
