/* Tasks: the internal record behind weft_task_t, and the park/wake
 * protocol every blocking operation uses (see task.c for the essay). */
#ifndef WEFT_RUNTIME_CORE_TASK_H
#define WEFT_RUNTIME_CORE_TASK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/tick.h"
#include "core/cancel.h"
#include "core/fiber.h"
#include "core/sched.h"
#include "core/trace.h"
#include "weft/runtime.h"
#include "weft/task.h"

struct weft_group;
struct weft__start;
struct weft__waiter;
struct weft__done_cb;
struct weft_context;

#define WEFT__TASK_NAME_MAX 40

/* Park word layout: bit 0 WOKEN, bit 1 PARKED (the fiber has switched
 * out), bit 2 CANCELLABLE, bits 3..63 the park generation. */
#define WEFT__PARK_WOKEN 1u
#define WEFT__PARK_PARKED 2u
#define WEFT__PARK_CANCELLABLE 4u
#define WEFT__PARK_GEN_SHIFT 3

/* Low bits of weft_task.lock_wait (a Lock's address is 8-aligned). */
#define WEFT__LOCK_WAIT_CANCELLABLE ((uintptr_t)1)
#define WEFT__LOCK_WAIT_FROZEN ((uintptr_t)2)

/* Something a task owns that must hear of the task's end (a Lock it
 * holds: sync/lock.c): listed on its owner (weft__task_own), which calls
 * `ended` at its end if it is still listed (weft__task_finish).  Only the
 * owner task touches the list and the links, while it owns the node. */
struct weft__owned {
	struct weft__owned *next, *prev;
	void (*ended)(struct weft__owned *o, struct weft_task *owner);
};

struct weft_task {
	/* Hot scheduling fields first; small fields are grouped below so the
	 * record has no padding holes (its size is most of what a parked
	 * task costs beside its stack page: benchmark B7). */
	/* NULL until first run.  A child run inline by its joining parent
	 * (weft__sched_help_join) borrows the parent's stack: stack_borrowed
	 * is then set and the record never owns it. */
	struct weft__stack *stack;
	struct weft_task *next; /* run-queue / inject link */
	struct weft_runtime *rt;
	weft_fn fn;
	void *arg;
	_Atomic uint64_t park; /* see WEFT__PARK_*; any thread */
	/* Innermost entered scope: written and read by the task itself
	 * (relaxed atomic so diagnostics from other threads are race-free). */
	_Atomic(struct weft_scope *) cur_scope;
	struct weft_group *group; /* joins this task; NULL for a root */
	bool stack_borrowed;
	bool fail_collateral; /* failed while already cancelled */
	/* Spawned by its group's owner and counted only in the group's
	 * `owed` (core/group.c, "Owed children"); set before the spawn
	 * publishes the task. */
	bool owed;
	bool started_called;
	/* In a subtree whose run time is counted exactly
	 * (WEFT_GROUP_CPU_TIME; core/group.c, "Run time"): its slices are
	 * cut with the cycle counter, not the sampler's clock.  Set by the
	 * spawner before the task is published. */
	bool acct;
	/* Calls of blocking operations that completed without parking since
	 * the task last switched out (weft__task_blocking_enter's budget).  Owner
	 * only. */
	uint8_t coop_used;
	/* Set by weft_panic (panic.c) before the task's end, so that the end
	 * reaps open groups without the missing-join abort.  Owner task
	 * only. */
	bool panicked;
	/* Set at the start of weft__task_finish: user code that still runs
	 * as the task (context-key destructors, done callbacks) cannot
	 * panic it.  Owner task only. */
	bool ending;
	/* Outcome: written by the task before it publishes its end with the
	 * release (or seq_cst) store of `state`; readers acquire `state`
	 * first.  The outcome fields are rc, result, fail_*. */
	atomic_int state; /* weft_task_state_t */
	int rc;
	unsigned spawn_flags;
	atomic_int refs; /* run ref + handles */
	/* Tasks parked in weft_task_wait: modified under waiters_lock; the
	 * head is also read lock-free by the finishing task (seq_cst, see
	 * weft__task_finish). */
	weft__spin_t waiters_lock;
	_Atomic(struct weft__waiter *) waiters;
	void *result;
	char *fail_msg;		       /* weft__alloc'd, or NULL */
	struct weft_error *fail_group; /* nested error group, or NULL */
	uint64_t fail_seq;	       /* logical time of the failure */
	/* Run time in ticks (base/tick.h) not yet folded into the group
	 * (core/group.c, "Run time").  Written only by the worker running
	 * the task, at its switches and its end. */
	uint64_t cpu;
	/* start()/started() handshake; NULL when spawned or once started. */
	struct weft__start *start;
	/* As a weft_group_start caller: the generation of the park waiting
	 * for the child (seq_cst; read by the child after it published
	 * STARTED/ENDED, when the handshake record may already be gone). */
	_Atomic uint64_t start_wait_gen;
	void *start_value;
	/* The task's open weft_par calls, innermost first, linked through
	 * their `outer` (core/par.c); NULL at every end but a panic's.
	 * Owner only. */
	struct weft__par *par;
	/* What the task owns (weft__task_own), newest first.  Owner only. */
	struct weft__owned *owned;
	/* The parks of a wait that releases its stack
	 * (weft_sleep_until_opts, core/cancel.c; weft_stream_wait_readable,
	 * io/sock.c): park_release, the public call that asked for it (named
	 * if the promise is found broken), is set by the task around them;
	 * the worker that switches it out copies the stack's used top into
	 * park_image and releases the pages before publishing the park
	 * (sched.c, worker_after_switch), and the one that switches it in
	 * copies it back, frees it and clears park_image first.  Both NULL
	 * otherwise: one predictable branch at each park and each
	 * switch-in. */
	const char *park_release;
	struct weft__stack_image *park_image;
	uint64_t id;
	/* External thread blocked in weft_runtime_run on this root task. */
	atomic_uint *root_done;
	/* Task-local context and introspection */
	/* Never cleared by the memset of weft__task_create: a snapshot
	 * (inspect.c) may read the insp_* fields of a record at any time,
	 * also while it is recycled, so every write to them is an atomic
	 * store (relaxed, or release where said) and every read an atomic
	 * load.  Records are type-stable: they stay task records until the
	 * runtime is destroyed (the task arena, records.h). */
	/* The task's id while it is live (from creation to the start of
	 * weft__task_finish), 0 otherwise.  Release store at creation
	 * publishes the other insp_* fields and the name; a snapshot reads
	 * it before (acquire) and after the other fields, and keeps the
	 * copy only if both reads give the same non-zero id (ids are never
	 * reused, so a recycled record cannot pass). */
	_Atomic uint64_t insp_id;
	_Atomic uint64_t insp_group_id; /* its group's id; 0 for a root */
	/* What the task is parked on (a static string: "join", "sleep",
	 * a wait queue's `what`...), NULL while it runs or is runnable.
	 * Written by the task around each park. */
	_Atomic(const char *) insp_wait;
	/* The Lock the task waits for inside an acquire (sync/lock.c, the
	 * cycle check), with two low bits: WEFT__LOCK_WAIT_CANCELLABLE and
	 * WEFT__LOCK_WAIT_FROZEN (a cycle check reading it holds it); 0
	 * when not waiting for a Lock.  Read by other tasks' cycle checks
	 * at any time, also while the record is recycled, so outside the
	 * clear and only ever accessed atomically; 0 at the end of every
	 * life.  See lock.c for who writes it and the orders. */
	_Atomic uintptr_t lock_wait;
	/* What the task is parked on as an object (its address, or NULL),
	 * and the tick (base/tick.h; the run-time sampler's when it runs,
	 * core/cpuclock.h) at which it parked shifted left by
	 * WEFT__WAIT_KIND_BITS, with the object's kind (WEFT__WAIT_*,
	 * core/inspect.h) in the low bits.  Written by the task at every
	 * park that switches out (two relaxed stores: weft__sched_park), so
	 * stale between parks; read only by
	 * a dump that holds the task pinned in that park (insp_pin), which
	 * orders the reads after the stores through the park hand-off. */
	_Atomic(const void *) insp_on;
	_Atomic uint64_t insp_since;
	/* The dump pin (inspect.c, "Reading a parked task"): insp_run is
	 * the park generation the task had at its last switch-in, stored
	 * (seq_cst) by the worker that switches it in, which then reads
	 * insp_pin (seq_cst) and waits while a dumper has it set.  A dumper
	 * sets insp_pin, then reads insp_run: below the generation of a park
	 * it saw PARKED, the task has not run since that park left its
	 * stack and cannot until insp_pin is cleared. */
	_Atomic uint64_t insp_run;
	/* The id of the task it is a child of, as weft__task_parent says
	 * (its group's owner; a weft_par half's caller), 0 for a root.
	 * Written by the record's maker before the task is published. */
	_Atomic uint64_t insp_parent_id;
	/* Task-local context (local.c): the innermost binding, holding one
	 * reference, or NULL for the empty context.  Owner task only (set
	 * by the spawner before the task is published). */
	struct weft_context *ctx;
	/* Done callbacks (weft_task_on_done), under waiters_lock; the head
	 * is read lock-free by the finisher (seq_cst, as `waiters`). */
	_Atomic(struct weft__done_cb *) done_cbs;
	/* The string literal the name was last copied from (spawned with
	 * weft_group_spawn_literal), or NULL: a recycled record spawned from
	 * the same literal skips the copy.  Written by the creator, the
	 * task (weft_task_set_name) and a renamer holding a handle
	 * (weft_task_rename, which clears it), so atomic; relaxed, since a
	 * record's next creator comes after its last reference was dropped
	 * (acq_rel in weft__task_unref), which orders every store of a life
	 * before the next life's load. */
	_Atomic(const char *) name_lit;
	/* Index of the worker it runs on or last ran on; -1 if none.
	 * Written by the scheduler at every switch-in (worker_switch_in) and
	 * at creation (the spawning worker, which also runs an inline
	 * child). */
	atomic_int insp_worker;
	/* Generation of the record: bumped each time the record goes back to
	 * the record caches (weft__task_unref), so a handle given out in an
	 * earlier life (tagged with the generation, records.h) is told
	 * apart from a handle of the current one.  Written only by the last
	 * dropper of a life, read by handle checks on any thread; relaxed
	 * (see weft__task_from_handle).  Outside the clear: it must survive
	 * reuse. */
	_Atomic uint32_t gen;
	/* User references (handles: a spawn's opts->handle, weft_task_retain),
	 * each also counted in refs; weft_task_release refuses to drop one
	 * that does not exist, and
	 * weft_runtime_destroy refuses to run while one is held.  Relaxed
	 * store at creation (before the handle is given out), CAS/fetch_add
	 * after; read by the destroyer's scan when no task runs. */
	atomic_int handles;
	/* The dump pin's flag (see insp_run): on the line of insp_run and
	 * insp_worker, in what was padding before root_scope. */
	atomic_uint insp_pin;
	/* Last, and cleared only up to its reason (WEFT__TASK_CLEAR): a
	 * recycled record is reinitialised without touching the cold tail. */
	struct weft_scope root_scope; /* the task's own scope */
	/* Written before use: by weft__fiber_init at first run, or
	 * copied from the parent for an inline child. */
	weft__fiber_t cont;		/* owner: the worker running it */
	char name[WEFT__TASK_NAME_MAX]; /* copied at creation */
};

/* Bytes of a task record that must start zeroed. */
#define WEFT__TASK_CLEAR                                                       \
	(offsetof(struct weft_task, root_scope) + WEFT__SCOPE_CLEAR)
/* The introspection block (insp_id up to root_scope) is left out of the
 * clear: it is initialised field by field, with atomic stores where
 * snapshots read (see insp_id). */
#define WEFT__TASK_CLEAR_HEAD offsetof(struct weft_task, insp_id)

/* t's parent in the task tree: its group's owner, or, for a task that
 * runs a taken half of a weft_par call, the call's caller (core/par.c);
 * NULL for a root.  Parents outlive their children (an owner cannot end
 * before its group is joined, a caller before its call returns), and
 * what is read here does not change during a life.  Thread: any holding
 * t alive. */
struct weft_task *weft__task_parent(const struct weft_task *t);
/* The group t's run time counts in: its own, or, for a task that runs a
 * taken half of a weft_par call, its caller's (core/par.c); NULL for a
 * root (and a half whose caller is one).  Thread: as weft__task_parent. */
struct weft_group *weft__task_cpu_group(const struct weft_task *t);

/* A parked task waiting on a list (task completion, ...). */
struct weft__waiter {
	struct weft_task *task;
	uint64_t gen;
	struct weft__waiter *next;
};

/* The task running on the calling thread, or NULL (plain thread or worker
 * scheduler context).  Re-read after every possible switch (it is, at each
 * call: weft__sched_current).  Thread: any. */
static inline struct weft_task *weft__task_current(void)
{
	weft__worker_t *w = weft__sched_current();
	return w ? w->current : NULL;
}

/* Counts the wake of t by w, a worker of t's runtime: on the worker t
 * last ran on, or another.  relaxed: t is parked, so insp_worker is the
 * worker it last ran on, written before its park was published. */
static inline void weft__sched_count_wake(weft__worker_t *w,
	const struct weft_task *t)
{
	if (atomic_load_explicit(&t->insp_worker, memory_order_relaxed) ==
		(int)w->index)
		weft__stats_inc(&w->stats.wakes_local);
	else
		weft__stats_inc(&w->stats.wakes_remote);
}

/* Makes t runnable after a park: on the calling worker's run-next slot if
 * it is a worker of t's runtime, else through the injection queue
 * (sched.c).  Inline as far as the common case, a worker of t's runtime
 * with an empty run-next slot, where every hand-off readies its peer
 * (B5); weft__sched_ready_slow does the rest (a displaced run-next task,
 * the I/O thread's batch, a plain thread).  It reads what it needs of t
 * and counts before publishing t: from then on another worker may run t
 * to completion and free it (stats.h).  Thread: any. */
static inline void weft__sched_ready(struct weft_task *t)
{
	weft__worker_t *w = weft__sched_current();
	if (WEFT__LIKELY(w != NULL && w->rt == t->rt && w->runnext == NULL)) {
		weft__sched_count_wake(w, t);
		w->runnext = t;
		return;
	}
	weft__sched_ready_slow(t);
}

/* Allocate and initialise a task record (refs = 1, the run ref).
 * Thread (both): any; a worker of rt takes the record from its cache. */
int weft__task_create(struct weft_runtime *rt, const char *name, weft_fn fn,
	void *arg, struct weft_task **out);
/* The same; `literal` says that name is a string literal (never changes,
 * never freed), so a recycled record may keep its copy. */
int weft__task_create_lit(struct weft_runtime *rt, const char *name,
	bool literal, weft_fn fn, void *arg, struct weft_task **out);
/* Drops a reference; the last one gives the record back (records.h).
 * Thread: any. */
void weft__task_unref(struct weft_task *t);
/* Adds a user reference (a handle the user will weft_task_release): one
 * more in `handles` and in refs.  Thread: any, holding a reference. */
void weft__task_retain_handle(struct weft_task *t);

/* Run time a task gathers before it folds it into its group at a
 * switch-out (core/group.c, "Run time"): about a millisecond of cycle
 * counter ticks. */
#define WEFT__CPU_FOLD_TICKS (UINT64_C(1) << 21)

void weft__group_cpu_fold(struct weft_task *t);

/* The run-time sampler's clock, as this worker reads it (relaxed: a
 * sample, core/cpuclock.h).  Thread: w's own. */
static inline uint64_t weft__task_sampled_now(const weft__worker_t *w)
{
	return atomic_load_explicit(&w->cpu_now, memory_order_relaxed);
}

/* weft__task_slice_cut on the cycle counter (a subtree counted
 * exactly): the ticks since exact_start; the sampled chain moves past the
 * slice (core/group.c, "Run time").  Thread: w's own. */
uint64_t weft__task_slice_cut_exact(weft__worker_t *w);

/* Ends the current run slice of w and starts the next one from the same
 * read: returns its length in ticks, on the sampler's clock, or on the
 * cycle counter when `exact` (core/group.c, "Run time").  The sampler's
 * clock only grows (core/cpuclock.c, invariant 1), so the difference is
 * never negative; it is 0 for most short slices, which then cost a load
 * and a compare.  Thread: w's own. */
static inline uint64_t weft__task_slice_cut(weft__worker_t *w, bool exact)
{
	if (__builtin_expect(exact, 0))
		return weft__task_slice_cut_exact(w);
	uint64_t now = weft__task_sampled_now(w);
	uint64_t d = now - w->slice_start;
	if (d != 0)
		w->slice_start = now;
	return d;
}

/* Ends the current run slice of w and charges it to t (the task running
 * on w, also a child run inline), folding t's run time into its group
 * when it passed WEFT__CPU_FOLD_TICKS (t must be running, or switching
 * out with its park not yet published).  Thread: w's own. */
static inline void weft__task_slice_charge(weft__worker_t *w,
	struct weft_task *t)
{
	uint64_t d = weft__task_slice_cut(w, t->acct);
	if (d != 0) {
		uint64_t c = t->cpu + d;
		t->cpu = c;
		if (__builtin_expect(c >= WEFT__CPU_FOLD_TICKS, 0))
			weft__group_cpu_fold(t);
	}
}

/* Park protocol.  prepare returns the generation to hand to wakers;
 * commit switches out until woken (returns at once if already woken);
 * wake returns true if it woke the task.  Thread: prepare and commit,
 * the task itself (commit switches fibers); wake, any. */
/* Inline: every park pays it (B5's two per round trip). */
static inline uint64_t weft__task_park_prepare(struct weft_task *self,
	bool cancellable)
{
	/* relaxed: the generation is only written by this task; a waker
	 * only adds WOKEN, which the store below replaces. */
	uint64_t old = atomic_load_explicit(&self->park, memory_order_relaxed);
	uint64_t gen = (old >> WEFT__PARK_GEN_SHIFT) + 1;
	uint64_t word = (gen << WEFT__PARK_GEN_SHIFT) |
		(cancellable ? WEFT__PARK_CANCELLABLE : 0);
	/* seq_cst: ordered before the task's later seq_cst read of its
	 * scope's eff_cancelled; a canceller stores eff_cancelled then reads
	 * this word, so one of the two sees the other. */
	atomic_store_explicit(&self->park, word, memory_order_seq_cst);
	return gen;
}
WEFT_FIBER_FN void weft__task_park_commit(struct weft_task *self);
bool weft__task_wake(struct weft_task *t, uint64_t gen);
/* Sets WOKEN on t's park `gen` (or, need_cancel, on whatever park is
 * cancellable).  Returns whether it did; *ready says whether the fiber had
 * already switched out, so that the caller must make it runnable.  Inline:
 * every hand-off's grant wakes through it (B5).  Any thread. */
static inline bool weft__task_wake_claim(struct weft_task *t, uint64_t gen,
	bool need_cancel, bool *ready)
{
	/* seq_cst: for weft__task_wake_cancel this is the canceller's read of
	 * the park word in the park/cancel Dekker pair (cancel.c invariant
	 * 3): the canceller stores eff_cancelled then loads the word, the
	 * task stores the word (prepare) then loads eff_cancelled, all four
	 * seq_cst, so at least one of the two loads sees the other's store.
	 * With an acquire load here both could read the old values on a
	 * weakly ordered machine (store-buffering), and a cancellable park
	 * would miss its cancel.  It also acquires: pairs with the release
	 * halves of the prepare store and of the PARKED fetch_add (sched.c).
	 * On x86_64 a seq_cst load is the same plain load as an acquire. */
	uint64_t old = atomic_load_explicit(&t->park, memory_order_seq_cst);
	for (;;) {
		if (old & WEFT__PARK_WOKEN)
			return false;
		if (need_cancel) {
			if (!(old & WEFT__PARK_CANCELLABLE))
				return false;
		} else if ((old >> WEFT__PARK_GEN_SHIFT) != gen) {
			return false;
		}
		/* seq_cst on success, acquire on failure (the reload): the
		 * release half publishes the waker's writes (the reason the
		 * task was woken) to the task, the acquire half sees PARKED
		 * and the fiber's saved context from the scheduler's fetch_or;
		 * seq_cst also puts the claim in the single total order of
		 * the park/cancel pair (the prepare store, eff_cancelled). */
		if (atomic_compare_exchange_weak_explicit(&t->park, &old,
			    old | WEFT__PARK_WOKEN, memory_order_seq_cst,
			    memory_order_acquire))
			break;
	}
	*ready = (old & WEFT__PARK_PARKED) != 0;
	/* Not t->rt->trace: t may be running on already, even in a new
	 * life (see weft__trace_live).  relaxed: a hint. */
	if (WEFT__UNLIKELY(atomic_load_explicit(&weft__trace_live,
		    memory_order_relaxed)))
		weft__trace_wake(t, old >> WEFT__PARK_GEN_SHIFT);
	return true;
}

/* As weft__task_wake, but never makes t runnable itself: returns true
 * when the caller must call weft__sched_ready(t) (t had switched out), for
 * a waker that holds a lock and readies its tasks after releasing it.
 * Until that call t cannot run, so its record stays valid.  Any thread. */
static inline bool weft__task_wake_deferred(struct weft_task *t, uint64_t gen)
{
	bool ready;
	return weft__task_wake_claim(t, gen, false, &ready) && ready;
}
/* Wake t only if its current park is cancellable.  Any thread. */
bool weft__task_wake_cancel(struct weft_task *t);

/* Lists o on self (which now owns it): o->ended(o, self) runs at self's
 * end unless weft__task_disown comes first.  Thread: self. */
static inline void weft__task_own(struct weft_task *self, struct weft__owned *o)
{
	o->prev = NULL;
	o->next = self->owned;
	if (o->next)
		o->next->prev = o;
	self->owned = o;
}

/* Unlists o, listed on self by weft__task_own.  Thread: self. */
static inline void weft__task_disown(struct weft_task *self,
	struct weft__owned *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else
		self->owned = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->next = o->prev = NULL;
}

/* The slow path of weft__task_link_root below.  Thread: t itself. */
void weft__task_link_root_slow(struct weft_task *t);
/* Makes t's scopes reachable by cancellations from further out: links
 * its innermost scope and every unlinked one above it (a spawned child's
 * root scope and the scopes of groups are linked lazily: core/cancel.c,
 * "Lazy links"; a task that never parks, checkpoints or enters a user
 * scope, such as an inline fork-join child, never takes a scope lock).
 * Call before anything that waits on cancellation or enters a user
 * scope.  Thread (both): t itself. */
static inline void weft__task_link_root(struct weft_task *t)
{
	/* relaxed: the task's own cur_scope. */
	struct weft_scope *s = atomic_load_explicit(&t->cur_scope,
		memory_order_relaxed);
	if (__builtin_expect(!weft__scope_linked(s), 0))
		weft__task_link_root_slow(t);
}
/* Pops s, the innermost scope of t (weft__scope_push's other half;
 * inline: every join pays it).  Thread: t itself. */
static inline void weft__scope_pop(struct weft_task *t, struct weft_scope *s)
{
	/* relaxed: as in weft__scope_push. */
	atomic_store_explicit(&t->cur_scope, s->outer, memory_order_relaxed);
	s->state = WEFT__SCOPE_EXITED;
	/* A lazy scope that nobody linked has nothing to undo.  Whoever
	 * linked it (a task of its chain) did so before that task's end,
	 * which happened before we could leave s (core/cancel.c, invariant
	 * 8). */
	if (weft__scope_linked(s))
		weft__scope_unlink(s);
}

/* Calls of blocking operations a task may complete without parking in a
 * row before one of them yields (Tokio's cooperative budget is 128). */
#define WEFT__COOP_BUDGET 128

/* The entry of every blocking call (docs/semantics.md rule 22): yields
 * first when t has used its cooperative budget, then returns -ECANCELED
 * (recording the observation) if t is cancelled, else 0.  A root scope
 * that is not linked yet and not cancelled (read through the group's
 * scope) stays unlinked, so a call that completes at once never takes
 * that scope's lock; a wait links it before parking.  Call with no lock
 * held (it may yield).  Inline: every blocking call pays it (B5's two
 * per round trip).  Thread: t itself, a weft fiber. */
int weft__task_blocking_cancelled(struct weft_scope *s);
int weft__task_blocking_unlinked(struct weft_task *t, struct weft_scope *s);
static inline WEFT_FIBER_FN int weft__task_blocking_enter(struct weft_task *t)
{
	/* The cooperative budget (Tokio's): blocking calls that keep
	 * completing at once do not yield, but every WEFT__COOP_BUDGET-th
	 * call since the task last switched out does, so a loop of them
	 * cannot keep other tasks off its worker.  A switch-out resets the
	 * count (weft__sched_switch_out). */
	if (__builtin_expect(++t->coop_used >= WEFT__COOP_BUDGET, 0))
		weft__sched_switch_out(t, WEFT__POST_YIELD);
	/* relaxed: cur_scope is written only by this task (the atomic is for
	 * introspection on other threads); it pairs with nothing. */
	struct weft_scope *s = atomic_load_explicit(&t->cur_scope,
		memory_order_relaxed);
	if (!weft__scope_linked(s))
		return weft__task_blocking_unlinked(t, s);
	/* Linked: so is the root scope below it (weft__task_link_root). */
	if (__builtin_expect(!weft__scope_is_cancelled(s), 1))
		return 0;
	return weft__task_blocking_cancelled(s);
}

/* Whether t is cancelled as far as its root scope is concerned, also
 * before the lazy link (then the parent scope decides).  Thread: any
 * (t itself in practice: at its start and its end). */
bool weft__task_root_cancelled(struct weft_task *t);

/* Runs t's function (or skips it, WEFT_SPAWN_SKIPPABLE and cancelled)
 * and does the finish bookkeeping; on whatever stack the caller is.
 * Thread: the worker running t (on t's fiber, or inline on its joiner's
 * stack); t may park and resume elsewhere. */
WEFT_FIBER_FN void weft__task_run(struct weft_task *t);
struct weft_group;
#ifdef WEFT_DEBUG
/* Tests only (test_start): spin-wait hints taken by started() between
 * winning the handshake and moving the child, and by the caller before
 * each look at the handshake's state, to widen the window in which the
 * caller may see the child's state while the move runs.  0 (the
 * default): none.  relaxed. */
extern _Atomic unsigned weft__debug_start_pause;
#endif

/* The start()/started() handshake for t, a created (not yet queued) child
 * of g that holds a reference for the caller: queues it and parks self
 * until it calls started(), ends, or self is cancelled.  Returns what
 * weft_group_start returns.  Thread: self, a weft fiber. */
WEFT_FIBER_FN int weft__task_start(struct weft_task *self, struct weft_group *g,
	struct weft_task *t, void **value_out);

/* The error leaf describing t's failure (code, message, name, id, logical
 * time, collateral bit), taking over t's nested error group; NULL when the
 * leaf cannot be allocated (t keeps its nested group then).  Thread:
 * whoever reports t's failure once its outcome is set: t itself at its
 * end (for its group), or weft_runtime_run's caller for a root. */
struct weft__leaf *weft__task_failure_leaf(struct weft_task *t);
/* Gives l t's context: its path in the task tree and, for a collateral
 * failure, why t was cancelled (weft_error_path_at,
 * weft_error_cancel_reason_at).  Out of memory, a part is left out.
 * Thread: as weft__task_failure_leaf (t's ancestors are alive). */
void weft__task_leaf_context(struct weft_task *t, struct weft__leaf *l);

/* {=========================================== introspection, done callbacks */

/* The fences of the snapshot protocol (see insp_id).  ThreadSanitizer
 * does not model atomic_thread_fence (gcc rejects it with -Wtsan); there
 * every access involved is atomic anyway, so nothing is reported, and a
 * compiler barrier keeps the order on x86 (TSO), the only TSan target. */
#if defined(__SANITIZE_THREAD__)
/* `order` (release in weft__task_create, acquire in inspect.c's
 * insp_read, which pair), as a compiler barrier only. */
#define WEFT__INSP_FENCE(order) atomic_signal_fence(order)
#else
/* `order`: the release fence in weft__task_create pairs with the acquire
 * fence in inspect.c's insp_read. */
#define WEFT__INSP_FENCE(order) atomic_thread_fence(order)
#endif

/* Sets t's name (cut at WEFT__TASK_NAME_MAX - 1 bytes) with atomic word
 * stores, as snapshots read it (inspect.c).  Thread: t itself, or its
 * creator before the task is published. */
void weft__task_name_store(struct weft_task *t, const char *src);
/* Copies t's name into out (WEFT__TASK_NAME_MAX bytes) with atomic word
 * loads, the other half of weft__task_name_store.  Thread: any; the copy
 * of a record that may be recycled meanwhile is validated by the caller
 * (inspect.c checks insp_id around it). */
void weft__task_name_load(const struct weft_task *t, char *out);

/* As weft__task_park_commit, recording `what` (a static string) as what the
 * task is parked on for introspection; NULL lets the runtime guess
 * ("sleep" inside a sleep's private scope, else "park").  Thread: the
 * task itself. */
WEFT_FIBER_FN void weft__task_park_commit_on(struct weft_task *self,
	const char *what);
/* As weft__task_park_commit_on, also recording the object the task waits
 * on for the dump: `on`, of kind `kind` (WEFT__WAIT_*, core/inspect.h;
 * WEFT__WAIT_NONE and NULL for none), which must stay alive while the
 * task is inside the wait (inspect.h says why that is enough).  Thread:
 * the task itself. */
WEFT_FIBER_FN void weft__task_park_commit_obj(struct weft_task *self,
	const char *what, unsigned kind, const void *on);

/* Whether self's current park was woken already (its commit then returns
 * without switching).  acquire: pairs with the waker's CAS that set
 * WOKEN (weft__task_wake_claim): what the waker wrote before waking self
 * is visible once this returns true.  Thread: self. */
static inline bool weft__task_park_woken(struct weft_task *self)
{
	return (atomic_load_explicit(&self->park, memory_order_acquire) &
		       WEFT__PARK_WOKEN) != 0;
}

/* weft__task_park_commit_obj with `what` given (not NULL), inline: a
 * wait queue's park (sync/waitq.h) goes from its primitive straight to
 * weft__sched_park, one frame (B5).  Thread: the task itself. */
static inline __attribute__((always_inline)) WEFT_FIBER_FN void
weft__task_park_commit_what(struct weft_task *self, const char *what,
	unsigned kind, const void *on)
{
	if (!weft__task_park_woken(self))
		weft__sched_park(self, what, kind, on);
}

/* Done callback node (weft_task_on_done). */
struct weft__done_cb {
	struct weft__done_cb *next;
	void (*fn)(weft_task_t *h, void *arg);
	void *arg;
	/* The registrant's memory, not freed after fn (fn may free it). */
	bool intrusive;
};

/* weft_task_on_done with a node the caller provides (cb, kept until fn
 * has run, which may free it): never fails.  Thread: any, holding h. */
void weft__task_on_done_node(struct weft_task *h, struct weft__done_cb *cb,
	void (*fn)(weft_task_t *h, void *arg), void *arg);

/* Runs (and frees) t's done callbacks; called by weft__task_finish after
 * the state store, when the list is not empty.  Thread: t's finisher. */
void weft__task_run_done_cbs(struct weft_task *t);

/* }======================================================= */

/* Entry point of every task fiber (arg is the task); never returns.
 * Thread: a worker, on the task's new fiber. */
WEFT_FIBER_FN void weft__task_entry(void *arg);
/* Finish bookkeeping after fn returned (groups, start, waiters).  Joining
 * groups t left open parks (weft__group_reap_unjoined).  Thread: t itself
 * at its end, or a worker ending a task that could not start (which has
 * opened nothing, so does not park). */
WEFT_FIBER_FN void weft__task_finish(struct weft_task *t, int rc);

#endif
