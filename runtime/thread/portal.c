/* Portals: how threads that weft did not start run work inside a runtime
 * (AnyIO's BlockingPortal; see weft/thread.h for the contract).
 *
 * A portal is a task group opened by a task, retained (weft_group_retain)
 * so that plain threads may spawn into it, plus an open flag under a
 * mutex.  A spawn checks the flag and spawns while holding the mutex, and
 * close sets the flag under it before joining: every spawn either counts
 * in that join or sees WEFT_ECLOSED.  The portal's memory (and the group
 * retain) goes with its last reference: the opener's, dropped at close,
 * and one per weft_portal_retain.
 *
 * weft_portal_call and weft_portal_start spawn a wrapper task whose record
 * of the call lives in the blocked caller's frame: the wrapper runs the
 * function (as a child task, so its failure comes back to the caller
 * instead of failing the portal) or starts it in the portal's group, then
 * publishes the outcome under the record's mutex.  The caller waits for
 * the wrapper task's done callback (a node in the record, registered
 * without allocating), not for the wrapper's function: the function may
 * never run (a task whose stack cannot be allocated ends with -ENOMEM
 * unstarted), and the callback runs after it in every case, so it alone
 * decides that the call is over; its unlock is the last access to the
 * record.  The caller waits for it even after a timeout (it cancels the
 * wrapper first), so the record never disappears under the task.
 *
 * Under the virtual clock, a spawn, call or start holds the runtime's
 * clock (weft__timer_hold) until its task is queued: a portal call that
 * has begun is seen before the clock's next jump (docs/semantics.md rule
 * 44).  Not until the call returns: the function it runs may sleep on the
 * virtual clock, which would then never jump. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/group.h"
#include "core/records.h"
#include "core/task.h"
#include "runtime.h"
#include "thread/offload.h"
#include "weft/group.h"
#include "weft/thread.h"
#include "weft/time.h"

struct weft_portal {
	/* The opener's until close, plus one per retain.  acq_rel: the last
	 * dropper sees every earlier use before freeing. */
	atomic_int refs;
	pthread_mutex_t lock;
	bool closed;		 /* under lock */
	weft_group_t *group;	 /* retained until the portal is freed */
	struct weft_task *owner; /* the opener (compared only) */
	struct weft_runtime *rt; /* user_refs counts weft_portal_retain's */
	weft__timer_t *clock;	 /* the runtime's deadline timer */
};

/* A blocking call's record, in the calling thread's frame. */
struct portal_call {
	weft_portal_t *portal;
	weft_fn fn;
	void *arg;
	bool start; /* weft_portal_start, not _call */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* monotonic clock */
	/* Under mu; written by the wrapper task once (ran), or by the done
	 * callback for a wrapper that never ran. */
	bool ran;
	int rc;
	void *value;
	bool done; /* under mu: set by the done callback, the last access */
	struct weft__done_cb node;
};

int weft_portal_open(weft_portal_t **out)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	weft_portal_t *p = weft__calloc(1, sizeof *p);
	if (p == NULL)
		return -ENOMEM;
	int rc = weft_group_open(&p->group);
	if (rc < 0) {
		weft__free(p);
		return rc;
	}
	weft__group_retain(p->group);
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->refs, 1);
	p->owner = self;
	p->rt = self->rt;
	p->clock = &self->rt->timer;
	*out = p;
	return 0;
}

int weft_portal_retain(weft_portal_t *p)
{
	if (p == NULL)
		return -EINVAL;
	/* relaxed: only a holder of another reference retains. */
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	/* relaxed: see user_refs (runtime.h). */
	atomic_fetch_add_explicit(&p->rt->user_refs, 1, memory_order_relaxed);
	return 0;
}

/* Drops a reference; the last frees p. */
static void portal_unref(weft_portal_t *p)
{
	/* acq_rel: see `refs`. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	weft__group_release(p->group);
	pthread_mutex_destroy(&p->lock);
	weft__free(p);
}

void weft_portal_release(weft_portal_t *p)
{
	if (p == NULL)
		return;
	/* relaxed: see user_refs (runtime.h); before the unref, which may
	 * free p. */
	atomic_fetch_sub_explicit(&p->rt->user_refs, 1, memory_order_relaxed);
	portal_unref(p);
}

int weft_portal_close(weft_portal_t *p, bool cancel_remaining,
	weft_error_t **err_out)
{
	if (p == NULL)
		return -EINVAL;
	if (weft__task_current() != p->owner)
		return WEFT_EMISUSE;
	pthread_mutex_lock(&p->lock);
	bool was_closed = p->closed;
	p->closed = true;
	pthread_mutex_unlock(&p->lock);
	if (was_closed)
		return WEFT_EMISUSE;
	if (cancel_remaining)
		weft_group_cancel(p->group, "portal closed");
	int rc = weft_group_join(p->group, err_out);
	if (rc == WEFT_EMISNEST || rc == WEFT_EMISUSE) {
		/* Nothing was joined: the portal stays open. */
		pthread_mutex_lock(&p->lock);
		p->closed = false;
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	portal_unref(p); /* the opener's */
	return rc;
}

/* Spawns fn(arg) into p's group unless p is closed.  Thread: any. */
static int portal_spawn(weft_portal_t *p, weft_fn fn, void *arg,
	const char *name, weft_task_t **handle)
{
	weft_spawn_opts_t o = { .name = name, .handle = handle };
	/* Dropped once the task is queued (a plain thread's spawn goes to
	 * the injection queue before it returns); see the top of the file. */
	weft__timer_hold(p->clock, 1);
	pthread_mutex_lock(&p->lock);
	int rc = p->closed ? WEFT_ECLOSED
			   : weft_group_spawn_opts(p->group, fn, arg, &o);
	pthread_mutex_unlock(&p->lock);
	weft__timer_hold(p->clock, -1);
	return rc;
}

int weft_portal_spawn(weft_portal_t *p, weft_fn fn, void *arg)
{
	if (p == NULL || fn == NULL)
		return -EINVAL;
	return portal_spawn(p, fn, arg, "portal_task", NULL);
}

/* The wrapper task of a blocking call.  Thread: a weft fiber. */
WEFT_FIBER_FN static int portal_wrapper(void *arg)
{
	struct portal_call *pc = arg;
	void *v = NULL;
	int rc;
	if (pc->start) {
		weft_spawn_opts_t o = { .name = "portal_task" };
		rc = weft_group_start_opts(pc->portal->group, pc->fn, pc->arg,
			&o, &v);
	} else {
		rc = weft__offload_run_task(pc->fn, pc->arg, &v);
	}
	pthread_mutex_lock(&pc->mu);
	pc->rc = rc;
	pc->value = v;
	pc->ran = true;
	pthread_mutex_unlock(&pc->mu);
	return 0;
}

/* The wrapper task's done callback: ends the call, with the outcome the
 * wrapper published or, if it never ran, the task's own failure (no
 * stack: -ENOMEM).  Thread: the one that finished the task. */
static void portal_wrapper_done(weft_task_t *h, void *arg)
{
	struct portal_call *pc = arg;
	int code = -ENOMEM;
	pthread_mutex_lock(&pc->mu);
	if (!pc->ran) {
		if (weft_task_failure(h, &code, NULL) < 0 || code == 0)
			code = -ENOMEM;
		pc->rc = code;
	}
	pc->done = true;
	pthread_cond_signal(&pc->cv);
	/* Our last access to pc: the caller may free it right after. */
	pthread_mutex_unlock(&pc->mu);
}

/* Waits for pc->done until `deadline` (CLOCK_MONOTONIC; NULL = none);
 * returns false on timeout.  pc->mu held.  Thread: the blocked caller. */
static bool portal_wait(struct portal_call *pc, const struct timespec *dl)
{
	while (!pc->done) {
		if (dl == NULL) {
			pthread_cond_wait(&pc->cv, &pc->mu);
		} else if (pthread_cond_timedwait(&pc->cv, &pc->mu, dl) ==
				ETIMEDOUT &&
			!pc->done) {
			return false;
		}
	}
	return true;
}

static int portal_block(weft_portal_t *p, weft_fn fn, void *arg,
	void **value_out, int64_t timeout_ns, bool start)
{
	if (p == NULL || fn == NULL || timeout_ns < 0)
		return -EINVAL;
	if (weft__task_current() != NULL)
		return WEFT_EMISUSE;
	struct portal_call pc = { .portal = p,
		.fn = fn,
		.arg = arg,
		.start = start };
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&pc.mu, NULL);
	pthread_cond_init(&pc.cv, &ca);
	pthread_condattr_destroy(&ca);
	weft_task_t *h = NULL;
	int rc = portal_spawn(p, portal_wrapper, &pc,
		start ? "portal_start" : "portal_call", &h);
	if (rc == 0) {
		weft__task_on_done_node(weft__handle_addr(h), &pc.node,
			portal_wrapper_done, &pc);
		struct timespec dl, *dlp = NULL;
		if (timeout_ns != WEFT_FOREVER) {
			clock_gettime(CLOCK_MONOTONIC, &dl);
			int64_t ns = dl.tv_nsec + timeout_ns % 1000000000LL;
			dl.tv_sec += timeout_ns / 1000000000LL +
				ns / 1000000000LL;
			dl.tv_nsec = ns % 1000000000LL;
			dlp = &dl;
		}
		pthread_mutex_lock(&pc.mu);
		bool timed_out = !portal_wait(&pc, dlp);
		if (timed_out) {
			pthread_mutex_unlock(&pc.mu);
			weft_task_cancel(h);
			pthread_mutex_lock(&pc.mu);
			portal_wait(&pc, NULL);
		}
		pthread_mutex_unlock(&pc.mu);
		weft_task_release(h);
		rc = pc.rc;
		if (timed_out && rc == -ECANCELED)
			rc = -ETIMEDOUT;
		if (rc == 0 && value_out)
			*value_out = pc.value;
	}
	pthread_cond_destroy(&pc.cv);
	pthread_mutex_destroy(&pc.mu);
	return rc;
}

int weft_portal_call(weft_portal_t *p, weft_fn fn, void *arg, void **result,
	int64_t timeout_ns)
{
	return portal_block(p, fn, arg, result, timeout_ns, false);
}

int weft_portal_start(weft_portal_t *p, weft_fn fn, void *arg,
	void **start_value, int64_t timeout_ns)
{
	return portal_block(p, fn, arg, start_value, timeout_ns, true);
}
