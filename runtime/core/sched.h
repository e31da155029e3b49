/* Workers: one OS thread each, running fibers from its own deque, its
 * run-next slot, the injection queue, and other workers' deques (see
 * sched.c for the scheduling essay). */
#ifndef WEFT_RUNTIME_CORE_SCHED_H
#define WEFT_RUNTIME_CORE_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/common.h"
#include "base/id.h"
#include "core/deque.h"
#include "core/fiber.h"
#include "core/par.h"
#include "core/stack.h"
#include "core/stats.h"

struct weft_task;
struct weft_runtime;
struct weft__trace_buf;

/* The free task and group records a worker keeps (owner-only): storage
 * only; records.c has the code that fills and empties it. */
enum weft__record_kind {
	WEFT__RECORD_TASK = 0,
	WEFT__RECORD_GROUP,
	WEFT__RECORD_KINDS
};
typedef struct weft__record_cache {
	void *head[WEFT__RECORD_KINDS]; /* linked through the first word */
	unsigned len[WEFT__RECORD_KINDS];
} weft__record_cache_t;

/* What is done right after a fiber switched out, on the stack it switched
 * to (the scheduler loop's, or the next task's).  The fiber cannot do these
 * itself: until it is off its own stack, nobody else may resume it. */
enum weft__post {
	WEFT__POST_NONE = 0,
	WEFT__POST_PARK,    /* publish PARKED; queue it if already woken */
	WEFT__POST_YIELD,   /* requeue at the fair end of the deque */
	WEFT__POST_REQUEUE, /* the same, after a yield's direct switch */
	WEFT__POST_EXIT	    /* release the stack and the run reference */
};

typedef struct weft__worker {
	/* Owner-only fields. */
	struct weft_runtime *rt;
	unsigned index;
	weft__fiber_t sched;	   /* this thread's own stack context */
	struct weft_task *current; /* task running now, NULL in sched */
	/* The stack this thread runs on, for the overflow handler
	 * (weft__stack_set_running); written by the owner, read by its
	 * signal handler. */
	weft__stack_t *running_stack;
	weft__altstack_t altstack; /* its memory; installed by the thread */
	/* Where current's run slice began (weft__task_slice_charge): on
	 * the run-time sampler's clock (core/cpuclock.h), or, for a task
	 * counted exactly (acct), in exact_start on the cycle counter
	 * (base/tick.h).  Owner only. */
	uint64_t slice_start;
	uint64_t exact_start;
	/* The run-time sampler's clock as published to this worker
	 * (core/cpuclock.c: the sampler raises every worker's copy each
	 * period, so a cut reads its own worker's line, not the runtime's).
	 * Only raised (CAS); read by the owner. */
	_Atomic uint64_t cpu_now;
	struct weft_task *runnext; /* run-next slot (LIFO, capped) */
	unsigned runnext_streak;   /* consecutive run-next picks */
	bool take_oldest;	   /* after a yield: take the oldest task */
	/* A yielded task is queued at fifo_mark in the deque: until it has
	 * left (weft__deque_passed), picks take the oldest task, so it runs
	 * behind every task queued before it (sched.c). */
	bool fifo;
	int64_t fifo_mark;
	/* Set at every WORKER_INJECT_INTERVAL-th pick: the next pick that
	 * takes from the deque takes its oldest task (sched.c, item 3). */
	bool fair_due;
	bool spinning; /* counted in rt's nspinning */
	/* Fixed at start: false when the runtime has a seed, so that this
	 * worker runs only while it holds the baton (baton.c) and every
	 * switch-out goes back to its loop.  Stored this way round so that
	 * weft__sched_switch_out tests it as loaded (B5, B6). */
	bool switch_direct;
	/* rt->insp_asym, copied at start: the switch-in's half of the dump
	 * pin is the light one (core/inspect.c, "Reading a parked task"). */
	bool insp_asym;
	/* Picks left until the next WORKER_INJECT_INTERVAL-th (sched.c,
	 * item 1), counted down from the interval.  Owner only. */
	unsigned tick;
	uint64_t rng;
	/* Ids for the tasks and groups created on this worker. */
	weft__id_block_t ids;
	enum weft__post post;
	struct weft_task *post_task;
	/* The task a fiber switching out picked but could not switch into:
	 * the loop runs it next. */
	struct weft_task *handoff;
	/* This worker's trace buffer (core/trace.c), NULL when the runtime
	 * does not trace: the one branch each trace hook costs.  Set before
	 * the thread starts, cleared after it was joined. */
	struct weft__trace_buf *trace;
	weft__stack_pool_t stacks;
	/* Free records (owner-only, records.c): a finished task or a joined
	 * group goes back to the cache of the worker that frees it, up to
	 * WEFT__RECORD_CACHE_MAX, so the spawn path rarely calls malloc. */
	weft__record_cache_t records;
	/* Records of ended inline children kept for the next ones (frame.c,
	 * "The inline pool"), linked through `next`.  Owner only. */
	struct weft_task *frame_pool;
	unsigned frame_pool_len;
	/* Counters (stats.h): written by this worker only, with relaxed
	 * stores; read by weft_runtime_stats on any thread. */
	weft__worker_stats_t stats;
	struct weft__worker *idle_next; /* under rt's idle lock */
	bool idle_listed;		/* under rt's idle lock */
	pthread_t thread;
	/* Shared: thieves steal from the deque. */
	weft__deque_t deque;
	/* Halves offered by weft_par calls of the task running here (and of
	 * the children it runs inline): owner pushes and pops, thieves take
	 * (core/par.c).  Empty whenever the worker switches tasks. */
	weft__par_deque_t par;
	/* Quiescent-state count (weft__io_reclaim): odd while a fiber runs
	 * on this worker, even between fibers; +1 at every switch-in and
	 * every switch-out.  Written by the owner (release), read by the
	 * I/O thread and the stall monitor (stall.c) (acquire). */
	_Atomic uint64_t qs;
	/* Futex word: 1 = wake-up pending.  Written by wakers (release),
	 * waited on by the owner. */
	_Alignas(WEFT__FALSE_SHARING) atomic_uint wake_word;
} weft__worker_t;

/* The worker whose thread calls this, or NULL.  A fiber may resume on
 * another thread, so the value must be re-read after every switch, and
 * the compiler must not reuse a thread pointer or TLS address it computed
 * before one (gcc keeps a thread pointer or TLS address it computed in a
 * callee-saved register across calls).  Two ways to get that:
 *   - x86_64 and aarch64: read the thread pointer register in a volatile
 *     asm with a memory clobber (evaluated anew at each use, never moved
 *     across a call), and add the variable's offset from it, which is the
 *     same in every thread for an initial-exec variable; the offset is
 *     computed once, by a constructor, before any thread can ask.  This
 *     inlines to two loads: it is on every park and wake path (B5).
 *   - elsewhere: a call to a function that is never inlined and hides the
 *     address from the optimiser.
 * Thread: any (NULL on a thread that is not a worker). */
weft__worker_t *weft__sched_current_slow(void);
#if defined(__x86_64__) || defined(__aarch64__)
#define WEFT__WORKER_TP_READ 1
static inline __attribute__((always_inline)) char *weft__sched_thread_pointer(
	void)
{
	char *tp;
#if defined(__x86_64__)
	__asm__ volatile("movq %%fs:0, %0" : "=r"(tp) : : "memory");
#else
	__asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp) : : "memory");
#endif
	return tp;
}
/* &worker_tls minus the thread pointer (sched.c).  Hidden: read with one
 * PC-relative load, not through the GOT (two loads). */
extern intptr_t weft__sched_tls_off WEFT__HIDDEN;
static inline __attribute__((always_inline)) weft__worker_t *
weft__sched_current(void)
{
	return *(weft__worker_t **)(void *)(weft__sched_thread_pointer() +
		weft__sched_tls_off);
}
#else
#define WEFT__WORKER_TP_READ 0
static inline weft__worker_t *weft__sched_current(void)
{
	return weft__sched_current_slow();
}
#endif

/* Make t runnable after a park: on the calling worker's run-next slot if
 * it is a worker of t's runtime, else through the injection queue.  The
 * common case is inline (weft__sched_ready, in task.h, where the task
 * record's fields are known); this is the whole of it.  Thread: any. */
void weft__sched_ready_slow(struct weft_task *t);
/* A thread that is not a worker (the I/O thread) may collect the tasks it
 * makes runnable and publish them at once: one injection-queue lock and
 * one idle notification for a whole timer tick instead of one per task
 * (Go's injectglist).  Between begin and end, weft__sched_ready on this
 * thread only appends to the batch.  Thread: a non-worker thread. */
void weft__sched_batch_begin(void);
void weft__sched_batch_end(struct weft_runtime *rt);
/* Queue a new task: the calling worker's deque, or the injection queue.
 * Thread: any. */
void weft__sched_spawn(struct weft_task *t);
/* A deque item that w took to run, as a task (core/frame.c: a frame
 * becomes its task record here).  When the frame's record could not be
 * made, its child failed, and the failure may have woken tasks into w's
 * run-next slot (a cancelled sibling): that task is returned instead, so
 * that it is not left there unseen by a worker about to sleep; else
 * NULL.  Thread: w's. */
struct weft_task *weft__sched_item_task(weft__worker_t *w, void *item);
struct weft_group;
/* Called by a group's owner at join, before it parks: while the newest
 * task of the calling worker's deque is an unstarted child of g, pop it and
 * run it inline, as a plain call on the owner's stack (the Cilk/TBB fast
 * path: a spawn nobody stole costs a push, a pop and a call).  Stops when
 * the deque's newest task is anything else, or when less than half of the
 * owner's stack is left.  The inline child is a task in every other way:
 * it may park (the owner's stack stays with it) and migrate, and if it
 * panics it jumps back here (weft__sched_exit_abandoned).
 * Thread: g's owner, a weft fiber. */
WEFT_FIBER_FN void weft__sched_help_join(struct weft_task *self,
	struct weft_group *g);
/* From a fiber: switch out and have `post` performed once off this stack,
 * either by the scheduler loop or by the next task of this worker, to
 * which the fiber then switches directly.  Thread: self, a weft fiber. */
WEFT_FIBER_FN void weft__sched_switch_out(struct weft_task *self,
	enum weft__post post);
/* The last switch-out of self, whose end (weft__task_finish) is done:
 * weft__sched_switch_out with WEFT__POST_EXIT, except that the last
 * slice is not charged (its group may be gone).  Never returns.
 * Thread: self, a weft fiber. */
WEFT_FIBER_FN void weft__sched_exit(struct weft_task *self);
/* The switch-out of a park (weft__task_park_commit_obj, which decided
 * that self must switch out): records what self waits for (`what`, the
 * dump's kind and object: core/inspect.h) and since when, then switches
 * out with WEFT__POST_PARK, in one frame.  Returns once self was woken
 * and switched into again.  Thread: self, a weft fiber. */
WEFT_FIBER_FN void weft__sched_park(struct weft_task *self, const char *what,
	unsigned kind, const void *on);
/* Leaves the task t, whose end weft__task_finish has already done, without
 * returning through its frames (a panic): a fiber switches out for the
 * last time, as at a normal exit; a child run inline, which cannot switch
 * out for good (its parent's frames are below it on the same stack), jumps
 * back to the parent's frame that runs it (weft__sched_help_join), which
 * goes on as if the child had returned.  The frames in between are
 * abandoned.  Thread: t itself, a weft fiber. */
WEFT_FIBER_FN __attribute__((noreturn)) void weft__sched_exit_abandoned(
	struct weft_task *t);
/* Every place a fiber resumes at (the return of a switch, a fiber's first
 * entry) calls this first: it performs the post the departing fiber left
 * on this worker, if any.  Thread: a worker, right after a switch. */
void weft__sched_arrived(void);
/* One pass over the injection queue and the other workers' deques (the
 * idle loop's search).  NULL if nothing was found.  Thread: w's own. */
struct weft_task *weft__sched_steal(struct weft__worker *w);

/* Initialises w and starts its thread.  Thread: the runtime's creator. */
int weft__sched_worker_start(struct weft_runtime *rt, weft__worker_t *w,
	unsigned index);
/* Joins w's thread.  Its deque stays valid: other workers may still be
 * stealing from it until they are joined too.  Thread: the one stopping
 * the runtime (its destroyer, or its creator undoing a failed start). */
void weft__sched_worker_join(weft__worker_t *w);
/* Frees w's deque and stack pool.  Only after every worker of the runtime
 * has been joined (no thief left).  Thread: as weft__sched_worker_join. */
void weft__sched_worker_fini(weft__worker_t *w);

#endif
