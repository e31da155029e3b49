#define _GNU_SOURCE
/* Blocking offload: weft_to_thread's bounded thread pool, the call
 * protocol between a parked fiber and an offload thread, and
 * weft_from_thread_run (see weft/thread.h for the contract).
 *
 * Problem: a fiber hands a blocking function to a plain thread and parks.
 * Four things happen on two threads: the function returns (offload
 * thread), the thread asks the fiber to run work inside the runtime
 * (weft_from_thread_run), the task is cancelled (any thread), and, with
 * abandon_on_cancel, the fiber leaves before the function returns.
 *
 * Approach: the call is a heap record with one atomic word, written by
 * both sides with CAS/exchange (as ioop.c's word):
 *     (generation << 3) | ABANDONED | REQ | DONE
 *   - The fiber publishes the generation of each park in the word before
 *     it parks; a publish that finds DONE or REQ does not park and handles
 *     them instead.
 *   - The thread ends a call by swapping in DONE after writing the result;
 *     it wakes the generation it swapped out.  That swap is its last
 *     access to the record, unless it found ABANDONED: then the fiber is
 *     gone and the thread frees the record.  So exactly one side frees it,
 *     decided by the word.
 *   - weft_from_thread_run stores its request in the record and swaps in
 *     REQ (refused if ABANDONED), then waits on the request's condvar; the
 *     fiber runs the request as a child task, clears REQ and signals.  The
 *     thread cannot end the call while it waits, so REQ and DONE never
 *     meet.
 *   - A cancelled fiber whose call no thread has taken yet removes it from
 *     the queue (fn never runs).  Otherwise, without abandon, it sets the
 *     call's `cancelled` flag (weft_thread_check_cancelled) and keeps
 *     waiting, uncancellably, then returns -ECANCELED with fn's value
 *     (docs/semantics.md rule 39); with abandon, it swaps ABANDONED in
 *     for its generation (failing on DONE: fn's value comes back) and
 *     returns -ECANCELED.  A fiber that finds DONE while its task is
 *     cancelled (fn cancelled it, or the wake and DONE came together)
 *     returns -ECANCELED too, whichever it saw first.
 * Lost wake-ups cannot happen for the reason given in ioop.c: the fiber's
 * publish and the thread's swap are RMWs on one word, so either the
 * publish sees DONE/REQ or the thread wakes the generation it parks on.
 *
 * Slots: a pool limiter (weft_limiter_t, FIFO, cancellable) with
 * offload_threads tokens, borrowed by the call record before it is queued
 * and given back by the thread after fn returned (an abandoned call keeps
 * its slot until then).  Threads: created on demand while more calls are
 * queued than threads idle, never more than the limit; an idle thread
 * exits after OFFLOAD_IDLE_NS and is joined later (reaped without
 * blocking by the next submit, or by weft__offload_stop).
 *
 * Rejected: a pool-wide condvar for completions (a fiber must never block
 * its worker), and the record in the fiber's frame (an abandoned call's
 * thread would outlive it).
 *
 * Virtual clock (docs/semantics.md rule 44): a call holds the runtime's
 * clock (weft__timer_hold) from before it is queued until its fiber
 * resumed for the last time, so the clock does not jump while fn runs.
 * weft_from_thread_run hands the hold to its request while it waits: the
 * thread drops it after waking the fiber, and the fiber takes it back
 * before it signals the thread (offload_serve), so a request's task may
 * sleep on the virtual clock, and the count is never 0 while the thread
 * is about to run again.  Pool threads read the runtime's clock in
 * weft_now().
 *
 * Lock order: pool->lock, then a limiter's spinlock (never the reverse;
 * the limiter calls here happen outside pool->lock anyway). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/cancel.h"
#include "core/inspect.h"
#include "core/local.h"
#include "core/task.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "thread/offload.h"
#include "weft/cancel.h"
#include "weft/group.h"
#include "weft/thread.h"
#include "weft/time.h"

#define OFFLOAD_DONE 1u
#define OFFLOAD_REQ 2u
#define OFFLOAD_ABANDONED 4u
#define OFFLOAD_GEN_SHIFT 3
/* An idle thread exits after this long without work (Trio: 10 s). */
#define OFFLOAD_IDLE_NS (10 * 1000000000LL)

/* {======================================================= records */

/* A weft_from_thread_run request: lives in the requesting thread's frame
 * until `done` is set under `mu` (the fiber's last access). */
struct offload_req {
	weft_fn fn;
	void *arg;
	int rc;
	void *result;
	bool done; /* under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

struct offload_call {
	struct offload_call *next; /* ready queue link; under pool->lock */
	struct weft__offload *pool;
	weft_thread_fn fn;
	void *arg;
	weft_limiter_t *limiter; /* the caller's, or NULL */
	/* The sender's context (one reference), dropped by the thread after
	 * fn, or by the fiber if no thread took the call. */
	struct weft_context *ctx;
	struct weft_task *task; /* the sender; type-stable record */
	int64_t deadline;	/* the sender's, at send time */
	bool started;		/* a thread took it; under pool->lock */
	/* Set by the fiber when it saw its cancellation (release); read by
	 * weft_thread_check_cancelled on the thread (acquire). */
	atomic_bool cancelled;
	/* See the top of the file. */
	_Atomic uint64_t word;
	/* Thread -> fiber: written before the REQ swap (published by it). */
	struct offload_req *req;
	/* Thread -> fiber: written before the DONE swap (published by it). */
	int rc;
	void *result;
};

/* A pool thread.  `tid` is written by pthread_create under pool->lock;
 * `next` links it on the zombies list (under pool->lock) once it ended. */
struct offload_thread {
	pthread_t tid;
	struct weft__offload *pool;
	struct offload_thread *next;
	unsigned serial; /* its name's number (weft-off<serial>) */
};

struct weft__offload {
	pthread_mutex_t lock;
	pthread_cond_t work_cv; /* idle threads wait here (monotonic) */
	pthread_cond_t exit_cv; /* stop waits here for nthreads == 0 */
	weft_limiter_t *slots;	/* one token per running call */
	weft__timer_t *clock;	/* the runtime's clock (weft_now) */
	unsigned max;		/* thread limit (cfg.offload_threads) */
	/* Under lock: */
	unsigned nthreads; /* threads alive (idle or not) */
	unsigned nstarted; /* threads ever started: the next one's serial */
	unsigned nidle;	   /* threads waiting on work_cv */
	size_t nqueued;
	struct offload_call *head, *tail; /* calls with a slot, no thread */
	struct offload_thread *zombies;	  /* ended, not joined yet */
	bool stopping;
};

/* The call the calling offload thread runs (NULL elsewhere). */
static __thread struct offload_call *offload_tls_call;

/* }======================================================= */

/* {======================================================= pool */

/* rt->offload is a plain pointer in runtime.h (written once, from NULL to the
 * pool), so it is accessed with the GCC __atomic builtins, which TSan
 * understands: acquire loads pair with the release of the creating CAS,
 * so a reader sees an initialised pool. */
static struct weft__offload *offload_peek(struct weft_runtime *rt)
{
	return __atomic_load_n(&rt->offload, __ATOMIC_ACQUIRE);
}

static void offload_pool_free(struct weft__offload *p)
{
	if (p->slots)
		weft_limiter_destroy(p->slots);
	pthread_cond_destroy(&p->exit_cv);
	pthread_cond_destroy(&p->work_cv);
	pthread_mutex_destroy(&p->lock);
	weft__free(p);
}

/* The runtime's pool, created by the first caller (a racing creator
 * frees its own and uses the winner's). */
static int offload_pool(struct weft_runtime *rt, struct weft__offload **out)
{
	struct weft__offload *p = offload_peek(rt);
	if (p) {
		*out = p;
		return 0;
	}
	p = weft__calloc(1, sizeof *p);
	if (p == NULL)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work_cv, &ca);
	pthread_cond_init(&p->exit_cv, NULL);
	pthread_condattr_destroy(&ca);
	p->max = rt->cfg.offload_threads;
	p->clock = &rt->timer;
	int rc = weft_limiter_create(&p->slots, p->max);
	if (rc < 0) {
		offload_pool_free(p);
		return rc;
	}
	struct weft__offload *expected = NULL;
	/* acq_rel: the release publishes the initialised pool (pairs with
	 * offload_peek's acquire); the acquire on failure reads the
	 * winner's. */
	if (!__atomic_compare_exchange_n(&rt->offload, &expected, p, false,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		offload_pool_free(p);
		p = expected;
	}
	*out = p;
	return 0;
}

/* Joins the zombies that have already ended, without blocking, and
 * returns them unlinked (freed by the caller after unlocking).  Lock
 * held. */
static struct offload_thread *offload_reap(struct weft__offload *p)
{
	struct offload_thread *done = NULL, **link = &p->zombies;
	while (*link) {
		struct offload_thread *z = *link;
		if (pthread_tryjoin_np(z->tid, NULL) == 0) {
			*link = z->next;
			z->next = done;
			done = z;
		} else {
			link = &z->next;
		}
	}
	return done;
}

static void offload_free_list(struct offload_thread *z)
{
	while (z) {
		struct offload_thread *next = z->next;
		weft__free(z);
		z = next;
	}
}

static void offload_run_call(struct offload_call *c);

static void *offload_thread_main(void *arg)
{
	struct offload_thread *me = arg;
	struct weft__offload *p = me->pool;
	weft__timer_bind_thread(p->clock);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct offload_call *c = p->head;
		if (c) {
			p->head = c->next;
			if (p->head == NULL)
				p->tail = NULL;
			p->nqueued--;
			c->started = true;
			pthread_mutex_unlock(&p->lock);
			offload_run_call(c);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->stopping)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += OFFLOAD_IDLE_NS / 1000000000LL;
		p->nidle++;
		int rc = pthread_cond_timedwait(&p->work_cv, &p->lock, &ts);
		p->nidle--;
		if (rc == ETIMEDOUT && p->head == NULL)
			break;
	}
	p->nthreads--;
	me->next = p->zombies;
	p->zombies = me;
	if (p->nthreads == 0)
		pthread_cond_broadcast(&p->exit_cv);
	pthread_mutex_unlock(&p->lock);
	weft__timer_bind_thread(NULL);
	return NULL;
}

/* Starts one pool thread, with every asynchronous signal blocked (they
 * belong to the application's threads).  Lock held. */
static int offload_thread_start(struct weft__offload *p)
{
	struct offload_thread *t = weft__calloc(1, sizeof *t);
	if (t == NULL)
		return -ENOMEM;
	t->pool = p;
	t->serial = p->nstarted++;
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&t->tid, NULL, offload_thread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		weft__free(t);
		return -EAGAIN;
	}
	/* "weft-off<serial>" in ps, top and gdb, at most 15 characters:
	 * serials count every thread the pool ever started (idle ones end
	 * and new ones start), so they wrap at 10^7.  Set before the thread
	 * can take a call (it needs the lock we hold).  Best effort. */
	char name[16];
	snprintf(name, sizeof name, "weft-off%u", t->serial % 10000000u);
	pthread_setname_np(t->tid, name);
	p->nthreads++;
	return 0;
}

/* Queues c (which holds a slot) for a thread, starting one if more calls
 * wait than threads idle.  Fails only when no thread exists and none
 * could be started (c is then not queued).  Thread: the fiber. */
static int offload_submit(struct weft__offload *p, struct offload_call *c)
{
	int rc = 0;
	pthread_mutex_lock(&p->lock);
	WEFT_ASSERT(!p->stopping, "weft_to_thread during runtime destroy");
	struct offload_thread *reaped = offload_reap(p);
	c->next = NULL;
	if (p->tail)
		p->tail->next = c;
	else
		p->head = c;
	p->tail = c;
	p->nqueued++;
	if (p->nqueued > p->nidle && p->nthreads < p->max) {
		rc = offload_thread_start(p);
		/* With threads alive, one of them takes c after its call
		 * (slots <= threads' limit, see the top of the file). */
		if (rc < 0 && p->nthreads > 0)
			rc = 0;
	}
	if (rc < 0) {
		/* c is the only queued call: nobody can have taken it. */
		p->head = p->tail = NULL;
		p->nqueued--;
	} else if (p->nidle > 0) {
		pthread_cond_signal(&p->work_cv);
	}
	pthread_mutex_unlock(&p->lock);
	offload_free_list(reaped);
	return rc;
}

/* Removes c from the queue if no thread took it; returns whether it did. */
static bool offload_unqueue(struct weft__offload *p, struct offload_call *c)
{
	bool removed = false;
	pthread_mutex_lock(&p->lock);
	if (!c->started) {
		struct offload_call **link = &p->head, *prev = NULL;
		while (*link != c) {
			prev = *link;
			link = &(*link)->next;
		}
		*link = c->next;
		if (p->tail == c)
			p->tail = prev;
		p->nqueued--;
		removed = true;
	}
	pthread_mutex_unlock(&p->lock);
	return removed;
}

void weft__offload_stop(struct weft_runtime *rt)
{
	struct weft__offload *p = offload_peek(rt);
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->work_cv);
	/* Abandoned calls still running keep their thread alive. */
	while (p->nthreads > 0)
		pthread_cond_wait(&p->exit_cv, &p->lock);
	WEFT_ASSERT(p->head == NULL, "offload call queued at destroy");
	struct offload_thread *z = p->zombies;
	p->zombies = NULL;
	pthread_mutex_unlock(&p->lock);
	for (struct offload_thread *t = z; t; t = t->next)
		pthread_join(t->tid, NULL);
	offload_free_list(z);
	offload_pool_free(p);
	/* release: pairs with offload_peek's acquire.  Nothing reads the
	 * pointer concurrently any more (the runtime is being destroyed);
	 * it only returns to "no pool yet". */
	__atomic_store_n(&rt->offload, NULL, __ATOMIC_RELEASE);
}

void weft__offload_stats(struct weft_runtime *rt,
	struct weft__offload_stats *out)
{
	memset(out, 0, sizeof *out);
	struct weft__offload *p = offload_peek(rt);
	if (p == NULL)
		return;
	weft_limiter_stats_t ls;
	weft_limiter_stats(p->slots, &ls);
	out->running = ls.borrowed;
	out->waiting = ls.waiting;
	pthread_mutex_lock(&p->lock);
	out->threads = p->nthreads;
	out->idle = p->nidle;
	pthread_mutex_unlock(&p->lock);
}

/* }======================================================= */

/* {======================================================= offload thread */

static void offload_release_tokens(struct offload_call *c)
{
	if (c->limiter)
		weft_limiter_release_on_behalf(c->limiter, c);
	weft_limiter_release_on_behalf(c->pool->slots, c);
}

/* Runs c's function with the sender's context attached, then hands the
 * record back (or frees it, if abandoned).  Thread: an offload thread. */
static void offload_run_call(struct offload_call *c)
{
	offload_tls_call = c;
	weft__local_attach(c->ctx);
	void *value = NULL;
	int rc = c->fn(c->arg, &value);
	weft__local_detach();
	offload_tls_call = NULL;
	weft__local_context_unref(c->ctx);
	c->ctx = NULL;
	c->rc = rc;
	c->result = value;
	/* Before DONE: once the fiber has the record back it may free it,
	 * and its address must not be a borrower still. */
	offload_release_tokens(c);
	struct weft_task *t = c->task;
	/* acq_rel: the release publishes rc/result to the fiber's acquire
	 * load of the word; the acquire pairs with the fiber's release of
	 * ABANDONED (then the record is ours). */
	uint64_t w = atomic_exchange_explicit(&c->word, OFFLOAD_DONE,
		memory_order_acq_rel);
	if (w & OFFLOAD_ABANDONED) {
		weft__free(c);
		return;
	}
	if (w >> OFFLOAD_GEN_SHIFT)
		weft__task_wake(t, w >> OFFLOAD_GEN_SHIFT);
}

int weft_thread_check_cancelled(void)
{
	struct offload_call *c = offload_tls_call;
	if (c == NULL)
		return WEFT_EMISUSE;
	/* acquire: pairs with the fiber's release store. */
	return atomic_load_explicit(&c->cancelled, memory_order_acquire)
		? -ECANCELED
		: 0;
}

int64_t weft_thread_deadline(void)
{
	struct offload_call *c = offload_tls_call;
	return c ? c->deadline : WEFT_FOREVER;
}

int weft_from_thread_run(weft_fn fn, void *arg, void **result)
{
	if (fn == NULL)
		return -EINVAL;
	struct offload_call *c = offload_tls_call;
	if (c == NULL || weft__task_current() != NULL)
		return WEFT_EMISUSE;
	struct offload_req req = { .fn = fn, .arg = arg };
	pthread_mutex_init(&req.mu, NULL);
	pthread_cond_init(&req.cv, NULL);
	c->req = &req;
	struct weft_task *t = c->task;
	/* acquire: pairs with the fiber's release of the word (its publish
	 * CAS, the store of offload_serve, or its ABANDONED CAS); the first
	 * value came with the pool lock when this thread took the call. */
	uint64_t w = atomic_load_explicit(&c->word, memory_order_acquire);
	int rc = 0;
	do {
		if (w & OFFLOAD_ABANDONED) {
			rc = -ECANCELED;
			break;
		}
		/* acq_rel: the release publishes c->req to the fiber's
		 * acquire of REQ; the acquire reads its newest generation. */
	} while (!atomic_compare_exchange_weak_explicit(&c->word, &w,
		OFFLOAD_REQ, memory_order_acq_rel, memory_order_acquire));
	if (rc == 0) {
		/* Generation 0 (REQ just cleared, nothing parked yet) is
		 * never a park's: the fiber's next publish sees REQ. */
		if (w >> OFFLOAD_GEN_SHIFT)
			weft__task_wake(t, w >> OFFLOAD_GEN_SHIFT);
		/* The fiber is runnable or running now: the request's task
		 * may wait on the virtual clock; offload_serve takes the hold
		 * back for us (see the top of this file). */
		weft__timer_hold(c->pool->clock, -1);
		pthread_mutex_lock(&req.mu);
		while (!req.done)
			pthread_cond_wait(&req.cv, &req.mu);
		pthread_mutex_unlock(&req.mu);
		rc = req.rc;
		if (result && rc == 0)
			*result = req.result;
	}
	pthread_cond_destroy(&req.cv);
	pthread_mutex_destroy(&req.mu);
	return rc;
}

/* }======================================================= */

/* {======================================================= fiber */

WEFT_FIBER_FN int weft__offload_run_task(weft_fn fn, void *arg, void **result)
{
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .name = "from_thread", .handle = &h };
	rc = weft_group_spawn_opts(g, fn, arg, &o);
	weft_error_t *err = NULL;
	/* The child's failure is read from its handle; the group's copy of
	 * it is dropped. */
	weft_group_join(g, &err);
	weft_error_free(err);
	if (rc < 0)
		return rc;
	void *v = NULL;
	rc = weft_task_result(h, &v);
	if (rc == WEFT_EFAILED)
		weft_task_failure(h, &rc, NULL);
	else if (rc == 0 && result)
		*result = v;
	weft_task_release(h);
	return rc;
}

/* Answers the request in c (REQ is set, the thread waits): runs it as a
 * child task unless `refuse`, then clears REQ, or turns it into
 * ABANDONED when `abandon`, and signals the thread.  After the unlock the
 * request is the thread's again.  Checkpoint: yes.  Thread: the fiber. */
WEFT_FIBER_FN static void offload_serve(struct offload_call *c, bool refuse,
	bool abandon)
{
	struct offload_req *req = c->req;
	/* Read before the word changes: with ABANDONED, c is the thread's. */
	weft__timer_t *tm = c->pool->clock;
	void *v = NULL;
	int rc = refuse ? -ECANCELED
			: weft__offload_run_task(req->fn, req->arg, &v);
	/* Only the fiber changes the word while REQ is set (the thread
	 * waits for the signal below).  release: with ABANDONED, publishes
	 * the end of the fiber's accesses to the record to the thread that
	 * will free it (its acquire when it ends the call); otherwise
	 * ordered before the thread's next RMW by the mutex anyway. */
	atomic_store_explicit(&c->word, abandon ? OFFLOAD_ABANDONED : 0,
		memory_order_release);
	/* The thread's hold back, before it may run again (the top of this
	 * file); taken on a worker. */
	weft__timer_hold(tm, 1);
	pthread_mutex_lock(&req->mu);
	req->rc = rc;
	req->result = v;
	req->done = true;
	pthread_cond_signal(&req->cv);
	pthread_mutex_unlock(&req->mu);
}

/* Publishes generation gen unless the word holds DONE or REQ; returns 0
 * if published, else the word found. */
static uint64_t offload_publish(struct offload_call *c, uint64_t gen)
{
	/* acquire: pairs with the thread's release of DONE (and rc/result)
	 * or REQ (and req), as the CAS's failure order below. */
	uint64_t w = atomic_load_explicit(&c->word, memory_order_acquire);
	do {
		if (w & (OFFLOAD_DONE | OFFLOAD_REQ))
			return w;
		/* acq_rel: the release publishes the park word's new
		 * generation to the thread's RMW; the acquire on failure
		 * reads DONE (and rc/result) or REQ (and req). */
	} while (!atomic_compare_exchange_weak_explicit(&c->word, &w,
		gen << OFFLOAD_GEN_SHIFT, memory_order_acq_rel,
		memory_order_acquire));
	return 0;
}

/* Prepares a new park and publishes it, serving requests meanwhile.
 * Returns false when the call is done (*rc set, record freed).
 * Checkpoint: yes (through requests).  Thread: the fiber. */
WEFT_FIBER_FN static bool offload_repark(struct weft_task *self,
	struct offload_call *c, bool cancellable, void **result, int *rc)
{
	for (;;) {
		uint64_t gen = weft__task_park_prepare(self, cancellable);
		uint64_t w = offload_publish(c, gen);
		if (w == 0)
			return true;
		if (w & OFFLOAD_DONE) {
			*rc = c->rc;
			if (result)
				*result = c->result;
			weft__free(c);
			return false;
		}
		offload_serve(c, false, false);
	}
}

/* The fiber saw its cancellation.  Returns true when the call ends here
 * (*rc set): it was still queued (fn never runs), or it is abandoned, or
 * (abandon) it had just finished (-ECANCELED, *result set).  Thread:
 * the fiber. */
static bool offload_cancelled(struct offload_call *c, bool abandon,
	void **result, int *rc)
{
	if (offload_unqueue(c->pool, c)) {
		offload_release_tokens(c);
		weft__local_context_unref(c->ctx);
		weft__free(c);
		*rc = -ECANCELED;
		return true;
	}
	/* release: pairs with weft_thread_check_cancelled's acquire. */
	atomic_store_explicit(&c->cancelled, true, memory_order_release);
	if (!abandon)
		return false;
	/* acquire: as in offload_publish (DONE with rc/result, or REQ with
	 * req, from the thread's release). */
	uint64_t w = atomic_load_explicit(&c->word, memory_order_acquire);
	for (;;) {
		if (w & OFFLOAD_DONE) {
			/* fn just returned: as without abandon (rule 39),
			 * the cancellation wins and its value comes back. */
			*rc = -ECANCELED;
			if (result)
				*result = c->result;
			weft__free(c);
			return true;
		}
		if (w & OFFLOAD_REQ) {
			/* The thread waits for us: refuse, and abandon in the
			 * same store. */
			offload_serve(c, true, true);
			break;
		}
		/* acq_rel: the release hands the record to the thread
		 * (pairs with its exchange's acquire); the acquire on
		 * failure reads DONE/REQ and what they publish. */
		if (atomic_compare_exchange_weak_explicit(&c->word, &w,
			    OFFLOAD_ABANDONED, memory_order_acq_rel,
			    memory_order_acquire))
			break;
	}
	*rc = -ECANCELED;
	return true;
}

/* Waits for c, queued with the generation of a prepared cancellable park
 * in its word.  Checkpoint: yes.  Thread: the fiber. */
WEFT_FIBER_FN static int offload_wait(struct weft_task *self,
	struct offload_call *c, bool abandon, void **result)
{
	/* relaxed: our own cur_scope, written only by this task. */
	struct weft_scope *s = atomic_load_explicit(&self->cur_scope,
		memory_order_relaxed);
	bool cancellable = true;
	int rc;
	for (;;) {
		/* seq_cst load after prepare's seq_cst store: a canceller
		 * either is seen here or sees the cancellable park. */
		if (cancellable && weft__scope_is_cancelled(s)) {
			cancellable = false;
			if (offload_cancelled(c, abandon, result, &rc)) {
				if (rc == -ECANCELED)
					weft__scope_note_observed(
						weft__scope_origin(s));
				return rc;
			}
			if (!offload_repark(self, c, false, result, &rc))
				break;
		}
		weft__task_park_commit_obj(self, "to_thread",
			WEFT__WAIT_OFFLOAD, c);
		if (!offload_repark(self, c, cancellable, result, &rc)) {
			/* fn returned.  A cancellation that reached the task
			 * before the fiber saw DONE (fn's own, or one that
			 * woke this park) wins as it does after the loop's
			 * check: deciding by which of the wake and DONE the
			 * fiber saw first would make the result depend on
			 * the schedule.  The acquire that read DONE makes a
			 * mark published before fn returned visible here. */
			if (cancellable && !weft__scope_is_cancelled(s))
				return rc;
			break;
		}
	}
	/* Cancelled while fn ran, and fn returned (rule 39): the
	 * cancellation wins; *result still carries fn's value so that what
	 * fn allocated can be freed. */
	weft__scope_note_observed(weft__scope_origin(s));
	return -ECANCELED;
}

int weft_to_thread(weft_thread_fn fn, void *arg, void **result,
	const weft_to_thread_opts_t *opts)
{
	if (fn == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	struct weft__offload *p;
	rc = offload_pool(self->rt, &p);
	if (rc < 0)
		return rc;
	struct offload_call *c = weft__calloc(1, sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	c->pool = p;
	c->fn = fn;
	c->arg = arg;
	c->task = self;
	c->limiter = opts ? opts->limiter : NULL;
	bool abandon = opts ? opts->abandon_on_cancel : false;
	c->deadline = weft_effective_deadline();
	if (c->limiter) {
		rc = weft_limiter_acquire_on_behalf(c->limiter, c);
		if (rc < 0)
			goto out_free;
	}
	rc = weft_limiter_acquire_on_behalf(p->slots, c);
	if (rc < 0)
		goto out_limiter;
	/* Reachable by cancellations from now on. */
	weft__task_link_root(self);
	c->ctx = weft__local_capture();
	/* Held until this fiber resumed for good (the top of this file). */
	weft__timer_hold(p->clock, 1);
	uint64_t gen = weft__task_park_prepare(self, true);
	/* relaxed: published to the thread by the pool lock's unlock in
	 * offload_submit (the thread pops c under the lock). */
	atomic_store_explicit(&c->word, gen << OFFLOAD_GEN_SHIFT,
		memory_order_relaxed);
	rc = offload_submit(p, c);
	if (rc < 0) {
		weft__timer_hold(p->clock, -1);
		weft__local_context_unref(c->ctx);
		weft_limiter_release_on_behalf(p->slots, c);
		goto out_limiter;
	}
	rc = offload_wait(self, c, abandon, result);
	weft__timer_hold(p->clock, -1);
	return rc;
out_limiter:
	if (c->limiter)
		weft_limiter_release_on_behalf(c->limiter, c);
out_free:
	weft__free(c);
	return rc;
}

/* }======================================================= */

/* {======================================================= dump */

void weft__offload_describe(const void *on, struct weft__wait_desc *d)
{
	/* The call stays alive while its caller is inside the wait
	 * (core/inspect.h).  fn and arg were written before it was queued;
	 * `started` is under the pool's lock, which the describer only
	 * tries: a dump must not wait behind the pool. */
	const struct offload_call *c = on;
	d->obj = c;
	const char *state = "?";
	/* acquire: pairs with the thread's DONE exchange. */
	if (atomic_load_explicit(&c->word, memory_order_acquire) &
		OFFLOAD_DONE) {
		state = "returned";
	} else if (pthread_mutex_trylock(&c->pool->lock) == 0) {
		state = c->started ? "running" : "queued";
		pthread_mutex_unlock(&c->pool->lock);
	}
	/* The dump names fn with the frames' symbolizer. */
	d->code = (const void *)(uintptr_t)c->fn;
	snprintf(d->text, sizeof d->text, "state=%s", state);
}

/* }======================================================= */
