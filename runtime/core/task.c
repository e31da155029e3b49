/* Tasks: lifecycle, the park/wake protocol, start()/started(), handles.
 *
 * Park/wake protocol
 * ------------------
 * Problem: a task that blocks registers itself with one or more wake
 * sources (a group's join word, a timer, a cancel scope, a start handshake)
 * and then switches away.  A source may fire on another thread before the
 * switch has finished; resuming the fiber then would run it on two stacks
 * at once.  Several sources may fire; only one may resume it, and a source
 * that fires late (for an earlier park) must not resume a later one.
 *
 * Approach: one 64-bit park word per task = generation | CANCELLABLE |
 * PARKED | WOKEN.
 *   1. prepare: the task stores a new generation with neither PARKED nor
 *      WOKEN (seq_cst, so a canceller's flag store and this one are
 *      totally ordered: cancel.c invariant 3) and hands the generation to
 *      its wake sources.
 *   2. commit: if WOKEN is already set, the task goes on without
 *      switching.  Otherwise it switches out, straight to the next task
 *      of its worker (or to the scheduler loop when there is none), and
 *      whatever runs next there performs its post (sched.c): that sets
 *      PARKED with an atomic add (PARKED is clear until then, so it is
 *      an or that x86_64 does in one instruction), and if WOKEN was
 *      already set, queues the task.
 *   3. wake(gen): a CAS sets WOKEN if the generation matches and WOKEN is
 *      not set; if PARKED was already set, the waker readies the task.
 * Whoever performs the second of the two transitions (PARKED, WOKEN)
 * readies the task, exactly once.  Rejected: a per-task mutex (a waker on
 * the I/O thread would contend with the scheduler), and "spin until the
 * fiber is off its stack" (unbounded on a preempted vCPU).
 *
 * Invariants
 *   1. A task is in at most one run queue, and only while not running.
 *   2. A task record goes back to the record caches (records.h; it is
 *      never freed while the runtime lives) only when its run reference
 *      (dropped after the fiber's last switch, by whatever runs next on
 *      its worker; by the joiner that ran it inline; by the worker that
 *      could not give it a stack) and every other
 *      reference (handles, a start() caller's, done-callback
 *      registrations) are gone.
 *   3. A child's last access to its group is weft__group_child_done.
 *   4. The outcome fields (rc, result, fail_*) are written before the
 *      release store of `state` and read only after an acquire load of it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/id.h"
#include "base/spin.h"
#include "base/tick.h"
#include "core/group.h"
#include "core/inspect.h"
#include "core/local.h"
#include "core/records.h"
#include "core/sched.h"
#include "core/stack.h"
#include "core/task.h"
#include "core/trace.h"
#include "runtime.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* State of a start()/started() handshake; lives on the caller's stack.
 * MOVING: started() won the race with the caller's abandonment and is
 * moving the child's root scope out of the caller's scope chain into g's;
 * the caller waits on through it, so that the scope the child unlinks
 * from (the caller's innermost, which the caller may leave and free as
 * soon as its start returns) is alive until the move is done. */
#ifdef WEFT_DEBUG
_Atomic unsigned weft__debug_start_pause;

static void start_debug_pause(void)
{
	for (unsigned n = atomic_load_explicit(&weft__debug_start_pause,
		     memory_order_relaxed);
		n > 0; n--)
		WEFT__CPU_RELAX();
}
#else
static inline void start_debug_pause(void)
{
}
#endif

enum {
	START_PENDING,
	START_MOVING,
	START_STARTED,
	START_ABANDONED,
	START_ENDED
};

/* Lives on the caller's stack: the child may read it only while the state
 * is PENDING, MOVING or ABANDONED (the caller is still waiting).  Once the
 * child publishes STARTED or ENDED the caller may return at once, so the
 * child reads what it needs first and then touches only the caller's task
 * record, on which it holds a reference taken by the caller. */
struct weft__start {
	struct weft_task *caller;
	atomic_int state;
	struct weft_group *g;
};

/* Wakes the start caller after the state was published, and drops the
 * reference the child held on it.  seq_cst load: pairs with the caller's
 * store of start_wait_gen then load of the state (start_wait). */
static void start_wake_caller(struct weft_task *caller)
{
	uint64_t gen = atomic_load_explicit(&caller->start_wait_gen,
		memory_order_seq_cst);
	weft__task_wake(caller, gen);
	weft__task_unref(caller);
}

/* {======================================================= lifecycle */

/* Copies a task name with atomic stores: a snapshot may read the bytes
 * of a record being recycled (it discards what it read then, see
 * insp_id, but the accesses must not race).  Word stores, as many as the
 * name needs: a byte loop cost ~70 instructions per spawn.  Relaxed: a
 * snapshot validates what it read by insp_id, and a new life's name is
 * published by the release store of insp_id in weft__task_create. */
_Static_assert(offsetof(struct weft_task, name) % sizeof(uint64_t) == 0,
	"task names are stored a word at a time");
_Static_assert(WEFT__TASK_NAME_MAX % sizeof(uint64_t) == 0,
	"task names are stored a word at a time");
void weft__task_name_load(const struct weft_task *t, char *out)
{
	uint64_t w[WEFT__TASK_NAME_MAX / sizeof(uint64_t)];
	const uint64_t *src = (const uint64_t *)(const void *)t->name;
	/* relaxed: see above; a caller that may read a recycled record
	 * validates the copy by insp_id (inspect.c). */
	for (size_t i = 0; i < WEFT__TASK_NAME_MAX / sizeof(uint64_t); i++)
		w[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	memcpy(out, w, WEFT__TASK_NAME_MAX);
	out[WEFT__TASK_NAME_MAX - 1] = '\0';
}

void weft__task_name_store(struct weft_task *t, const char *src)
{
	size_t n = strnlen(src, WEFT__TASK_NAME_MAX - 1);
	uint64_t *dst = (uint64_t *)(void *)t->name;
	size_t i = 0;
	for (; (i + 1) * sizeof(uint64_t) <= n; i++) {
		uint64_t x;
		memcpy(&x, src + i * sizeof x, sizeof x);
		/* relaxed: see above. */
		__atomic_store_n(&dst[i], x, __ATOMIC_RELAXED);
	}
	/* The last word: the rest of the name, its NUL and zero padding
	 * (relaxed, as above). */
	uint64_t x = 0;
	for (size_t j = i * sizeof x; j < n; j++)
		((unsigned char *)&x)[j % sizeof x] = (unsigned char)src[j];
	__atomic_store_n(&dst[i], x, __ATOMIC_RELAXED);
}

/* }------------------------------------------------------- */

int weft__task_create(struct weft_runtime *rt, const char *name, weft_fn fn,
	void *arg, struct weft_task **out)
{
	return weft__task_create_lit(rt, name, false, fn, arg, out);
}

int weft__task_create_lit(struct weft_runtime *rt, const char *name,
	bool literal, weft_fn fn, void *arg, struct weft_task **out)
{
	weft__worker_t *w = weft__sched_current();
	struct weft_task *t = weft__record_task_get(rt, w);
	if (t == NULL)
		return -ENOMEM;
	/* release fence: orders the previous life's insp_id = 0 store before
	 * the writes below (a scan that reads one of them then finds insp_id
	 * changed; pairs with the scan's acquire fence).  A compiler barrier
	 * on x86. */
	WEFT__INSP_FENCE(memory_order_release);
	/* Park generations never repeat in a record (a late wake for a
	 * previous life, e.g. from the I/O thread, must not match).  Relaxed:
	 * only the generation is kept, which only this record's task and
	 * its creator write; a late waker only adds WOKEN. */
	uint64_t park_gen = atomic_load_explicit(&t->park,
				    memory_order_relaxed) >>
		WEFT__PARK_GEN_SHIFT;
	/* Everything but the park word (a late waker may read it) and the
	 * introspection block, which snapshots may read. */
	memset(t, 0, offsetof(struct weft_task, park));
	memset((char *)t + offsetof(struct weft_task, park) + sizeof t->park, 0,
		WEFT__TASK_CLEAR_HEAD - offsetof(struct weft_task, park) -
			sizeof t->park);
	memset(&t->root_scope, 0, WEFT__SCOPE_CLEAR);
	/* insp_wait and done_cbs are NULL at the end of every life (a park
	 * clears insp_wait when it resumes, the finisher takes the
	 * callbacks); weft__record_task_get_slow initialises them in a new
	 * record.  Relaxed: published by the release store of insp_id
	 * below (see insp_id). */
	atomic_store_explicit(&t->insp_group_id, 0, memory_order_relaxed);
	atomic_store_explicit(&t->insp_parent_id, 0, memory_order_relaxed);
	atomic_store_explicit(&t->insp_worker, w ? (int)w->index : -1,
		memory_order_relaxed);
	t->ctx = NULL;
	t->rt = rt;
	t->fn = fn;
	t->arg = arg;
	/* Relaxed store, not init: a late waker may read the word. */
	atomic_store_explicit(&t->park, park_gen << WEFT__PARK_GEN_SHIFT,
		memory_order_relaxed);
	atomic_init(&t->state, WEFT_TASK_PENDING);
	atomic_init(&t->refs, 1);
	weft__spin_init(&t->waiters_lock);
	t->id = w ? weft__id_next_in(&w->ids) : weft__id_next();
	/* Bounded copy; snprintf cost ~600 instructions per spawn. */
	if (name == NULL) {
		name = "task";
		literal = true;
	}
	/* A literal the record already holds need not be copied again (fib
	 * spawns the same function from the same site a million times). */
	/* relaxed: see name_lit. */
	if (!literal ||
		atomic_load_explicit(&t->name_lit, memory_order_relaxed) !=
			name) {
		weft__task_name_store(t, name);
		atomic_store_explicit(&t->name_lit, literal ? name : NULL,
			memory_order_relaxed);
	}
	weft__scope_init_embedded(&t->root_scope, WEFT__SCOPE_TASK, 0);
	t->root_scope.id = t->id;
	atomic_init(&t->cur_scope, &t->root_scope);
	weft__alloc_census_add(WEFT__CENSUS_TASK, 1);
	/* release: the record is live for snapshots, with its name and
	 * insp_* fields (pairs with the acquire in inspect.c's scan).  The
	 * previous life's insp_id = 0 store precedes every write above in
	 * this thread's order, which is what the scan's re-check needs. */
	atomic_store_explicit(&t->insp_id, t->id, memory_order_release);
	*out = t;
	return 0;
}

void weft__task_unref(struct weft_task *t)
{
	/* References are only added before the task is published (handles
	 * at spawn, the start() caller), so a count of 1 is ours alone and
	 * needs no read-modify-write; the load is acquire, to see the writes
	 * of the dropper whose release decrement left the 1.  Otherwise
	 * acq_rel: the last dropper sees every write made under the other
	 * references. */
	if (atomic_load_explicit(&t->refs, memory_order_acquire) != 1 &&
		atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) !=
			1)
		return;
	/* A failed task's message and error group; most tasks have
	 * neither, so no call for them. */
	if (__builtin_expect(t->fail_msg != NULL || t->fail_group != NULL, 0)) {
		weft__free(t->fail_msg);
		weft_error_free(t->fail_group);
	}
	weft__scope_fini(&t->root_scope);
	weft__alloc_census_add(WEFT__CENSUS_TASK, -1);
	/* Not live (also for a record that never ran: a failed spawn).
	 * relaxed: a snapshot re-reads insp_id to validate, and the next
	 * life's creator orders this store first (its release fence). */
	atomic_store_explicit(&t->insp_id, 0, memory_order_relaxed);
	WEFT_DASSERT(atomic_load_explicit(&t->handles, memory_order_relaxed) ==
			0,
		"a task record freed with a handle counted");
	/* A new generation: the handles of this life are stale from now on
	 * (records.h).  Load and store, no read-modify-write: only the last
	 * dropper writes it; relaxed, as every access to it (the next life's
	 * creator gets the record through the caches, which order it). */
	atomic_store_explicit(&t->gen,
		atomic_load_explicit(&t->gen, memory_order_relaxed) + 1,
		memory_order_relaxed);
	weft__record_task_put(t);
}

void weft__task_link_root_slow(struct weft_task *t)
{
	/* The scopes above (groups' scopes, tasks' roots) outlive this
	 * task: a group cannot close while the task is counted in it, and
	 * its owner cannot leave the scopes outside it meanwhile.  relaxed:
	 * the task's own cur_scope. */
	weft__scope_materialize(
		atomic_load_explicit(&t->cur_scope, memory_order_relaxed));
}

bool weft__task_root_cancelled(struct weft_task *t)
{
	return weft__scope_check(&t->rt->cancel_gen, &t->root_scope);
}

/* }======================================================= */

/* {======================================================= park / wake */

int weft__task_blocking_unlinked(struct weft_task *t, struct weft_scope *s)
{
	/* Not cancelled as read through the chain: stays unlinked (see
	 * weft__task_blocking_enter). */
	if (!weft__scope_check(&t->rt->cancel_gen, s))
		return 0;
	weft__task_link_root(t);
	if (!weft__scope_is_cancelled(s))
		return 0;
	return weft__task_blocking_cancelled(s);
}

int weft__task_blocking_cancelled(struct weft_scope *s)
{
	weft__scope_note_observed(weft__scope_origin(s));
	return -ECANCELED;
}

void weft__task_park_commit(struct weft_task *self)
{
	weft__task_park_commit_obj(self, NULL, WEFT__WAIT_NONE, NULL);
}

void weft__task_park_commit_on(struct weft_task *self, const char *what)
{
	weft__task_park_commit_obj(self, what, WEFT__WAIT_NONE, NULL);
}

void weft__task_park_commit_obj(struct weft_task *self, const char *what,
	unsigned kind, const void *on)
{
	if (weft__task_park_woken(self))
		return;
	if (what == NULL) {
		/* relaxed: the task's own cur_scope. */
		struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		bool sleep = cur->kind == WEFT__SCOPE_FRAME;
		what = sleep ? "sleep" : "park";
		/* A sleep's object is its private scope, in this frame: the
		 * dump reads its deadline while it holds us pinned. */
		if (sleep) {
			kind = WEFT__WAIT_SLEEP;
			on = cur;
		}
	}
	weft__sched_park(self, what, kind, on);
}

bool weft__task_wake(struct weft_task *t, uint64_t gen)
{
	bool ready;
	if (!weft__task_wake_claim(t, gen, false, &ready))
		return false;
	if (ready)
		weft__sched_ready(t);
	return true;
}

bool weft__task_wake_cancel(struct weft_task *t)
{
	bool ready;
	if (!weft__task_wake_claim(t, 0, true, &ready))
		return false;
	if (ready)
		weft__sched_ready(t);
	return true;
}

/* }======================================================= */

/* {======================================================= running */

static void start_end(struct weft_task *t);

void weft__task_run(struct weft_task *t)
{
	int rc;
	if (WEFT__UNLIKELY(t->rt->trace))
		weft__trace_start(t);
	if ((t->spawn_flags & WEFT_SPAWN_SKIPPABLE) &&
		weft__task_root_cancelled(t))
		rc = -ECANCELED; /* docs/semantics.md rule 30's opt-out */
	else
		rc = t->fn(t->arg);
	weft__task_finish(t, rc);
}

void weft__task_entry(void *arg)
{
	struct weft_task *t = arg;
	/* The fiber that switched here may have left its post to us. */
	weft__sched_arrived();
	weft__task_run(t);
	weft__sched_exit(t);
	WEFT_ASSERT(0, "an exited task was resumed");
}

/* Whether t's end is only its outcome's stores: an owed child run
 * inline (its owner's join settles it: nothing to count down) that
 * returned 0, with no scope or object left open, no context, no run
 * time of its own to fold (its time is its joiner's inline stretch), no
 * budget, no trace, its root scope unlinked and nobody else holding a
 * reference (no waiter, no done callback).  B1 and B2: nearly every
 * child; the general path below reads the same fields one step at a
 * time. */
static inline bool task_end_is_plain(const struct weft_task *t, int rc)
{
	/* relaxed: the task's own cur_scope; refs as below (a count of 1
	 * cannot grow meanwhile). */
	return rc == 0 && t->stack_borrowed && t->owed && t->ctx == NULL &&
		t->owned == NULL && t->cpu == 0 &&
		atomic_load_explicit(&t->cur_scope, memory_order_relaxed) ==
		&t->root_scope &&
		!WEFT__UNLIKELY(t->rt->trace) && t->group->bud == NULL &&
		!weft__scope_linked(&t->root_scope) &&
		atomic_load_explicit(&t->refs, memory_order_relaxed) == 1;
}

void weft__task_finish(struct weft_task *t, int rc)
{
	if (WEFT__LIKELY(task_end_is_plain(t, rc))) {
		/* As the general path's stores for this case; release: the
		 * outcome, as below (nobody else holds t to read it). */
		t->ending = true;
		t->rc = 0;
		atomic_store_explicit(&t->insp_id, 0, memory_order_relaxed);
		atomic_store_explicit(&t->state, WEFT_TASK_FINISHED,
			memory_order_release);
		return;
	}
	t->ending = true; /* weft_panic from here on aborts (panic.c) */
	/* Structured concurrency: nothing the task opened outlives it.
	 * relaxed: the task's own cur_scope. */
	if (atomic_load_explicit(&t->cur_scope, memory_order_relaxed) !=
		&t->root_scope) {
		int r = weft__group_reap_unjoined(t);
		if (r < 0 && rc >= 0) {
			rc = r;
			weft__free(t->fail_msg);
			t->fail_msg = NULL;
			weft_fail(r,
				"task '%s' returned with an open group or "
				"scope",
				t->name);
		}
	}
	/* weft_par calls left open (only a panic inside a half leaves
	 * them): their taken halves write into the abandoned frames, so the
	 * end waits for them (core/par.c). */
	if (WEFT__UNLIKELY(t->par != NULL))
		weft__par_abandon(t);
	/* What it still owns (a Lock left held) hears of the end while the
	 * task is still itself: nothing may keep naming a record about to
	 * be recycled. */
	while (t->owned) {
		struct weft__owned *o = t->owned;
		weft__task_disown(t, o);
		o->ended(o, t);
	}
	int state;
	if (rc == 0)
		state = WEFT_TASK_FINISHED;
	else if (rc == -ECANCELED)
		state = WEFT_TASK_CANCELLED;
	else
		state = WEFT_TASK_FAILED;
	t->rc = rc;
	if (WEFT__UNLIKELY(t->rt->trace))
		weft__trace_end(t, rc);
	if (state == WEFT_TASK_FAILED) {
		t->fail_collateral = weft__task_root_cancelled(t);
		/* relaxed: a logical clock that orders nothing else. */
		t->fail_seq = atomic_fetch_add_explicit(&t->rt->error_seq, 1,
			memory_order_relaxed);
	}
	struct weft_group *g = t->group;
	bool owned_by_starter = t->start != NULL;
	if (g && state == WEFT_TASK_FAILED && !owned_by_starter)
		weft__group_child_failed(g, t);
	/* A task that ran a taken half of a weft_par call: no group; its
	 * outcome goes to the call (core/par.c) and its run time to the
	 * caller's group. */
	bool half = g == NULL && weft__par_fn_is_half(t->fn);
	if (WEFT__UNLIKELY(half)) {
		if (state == WEFT_TASK_FAILED)
			weft__par_failed(t);
		weft__task_slice_charge(weft__sched_current(), t);
		struct weft_group *cg = weft__task_cpu_group(t);
		if (cg != NULL && t->cpu != 0)
			weft__group_cpu_end(cg, t);
		t->cpu = 0; /* a root caller's: counted nowhere */
	}
	/* Run time (core/group.c, "Run time"): its last slice (a child run
	 * inline is in its joiner's inline stretch instead) and its time to
	 * the group.  Budgets ("Budgets"): its charges; one branch for a
	 * group outside every budgeted subtree. */
	if (g) {
		if (!t->stack_borrowed)
			weft__task_slice_charge(weft__sched_current(), t);
		if (t->cpu != 0)
			weft__group_cpu_end(g, t);
		if (WEFT__UNLIKELY(g->bud != NULL))
			weft__group_budget_end(g);
	}
	/* Linked by t, or by a task of its chain that ended before t could
	 * (core/cancel.c, invariant 8): acquire sees it either way. */
	if (weft__scope_linked(&t->root_scope))
		weft__scope_unlink(&t->root_scope);
	/* The task's context dies with it (key destructors run
	 * here, as the task), and it leaves introspection snapshots. */
	if (t->ctx)
		weft__local_context_unref(t->ctx);
	/* relaxed: as in weft__task_unref. */
	atomic_store_explicit(&t->insp_id, 0, memory_order_relaxed);
	/* relaxed: a count of 1 cannot grow meanwhile (only a holder of a
	 * reference adds one), so it needs no ordering. */
	bool shared = atomic_load_explicit(&t->refs, memory_order_relaxed) > 1;
	/* Publishes the outcome fields (invariant 4): release.  seq_cst when
	 * someone holds a reference (only a handle holder can wait): it
	 * orders the waiter-list read below against the waiter's listing. */
	atomic_store_explicit(&t->state, state,
		shared ? memory_order_seq_cst : memory_order_release);
	/* Waiters: a waiter lists itself, then re-reads state; we stored
	 * state, then read the list head (all seq_cst): one of the two sees
	 * the other, so an empty list here means the waiter will see the new
	 * state and leave on its own.  Wake under the lock: a waiter's node
	 * lives on its stack, and a waiter takes this lock to unlist itself
	 * before it may return.  Waking never blocks.  seq_cst: pairs with
	 * the waiter's seq_cst listing store (weft_task_wait); the list
	 * itself is read and cleared relaxed, under the lock. */
	if (shared &&
		atomic_load_explicit(&t->waiters, memory_order_seq_cst) !=
			NULL) {
		weft__spin_lock(&t->waiters_lock);
		for (struct weft__waiter *w = atomic_load_explicit(&t->waiters,
			     memory_order_relaxed);
			w; w = w->next)
			weft__task_wake(w->task, w->gen);
		/* relaxed: under the lock. */
		atomic_store_explicit(&t->waiters, NULL, memory_order_relaxed);
		weft__spin_unlock(&t->waiters_lock);
	}
	/* Done callbacks: same protocol as the waiters, seq_cst load paired
	 * with the registrant's seq_cst store in task_cb_register (a
	 * registrant holds a reference, so `shared` is set). */
	if (shared &&
		atomic_load_explicit(&t->done_cbs, memory_order_seq_cst) !=
			NULL)
		weft__task_run_done_cbs(t);
	if (owned_by_starter)
		start_end(t);
	/* An owed child run inline is its joining owner's to settle
	 * (core/group.c, "Owed children"; only the owner's join runs a
	 * group's children inline); any other child counts down. */
	if (g && !(t->owed && t->stack_borrowed))
		weft__group_child_done(g);
	if (WEFT__UNLIKELY(half))
		weft__par_end(t); /* the caller may return at once */
	if (t->root_done) {
		/* release: the blocked thread reads the outcome after it
		 * (pairs with the acquire loop in weft_runtime_run). */
		atomic_store_explicit(t->root_done, 1, memory_order_release);
		syscall(SYS_futex, t->root_done, FUTEX_WAKE_PRIVATE, 1, NULL,
			NULL, 0);
	}
}

/* Appends "<name>#<id>" of t and its ancestors, root first, to b (size
 * n, at *len).  Ancestors outlive t (a group's owner cannot end before
 * the group is joined, and that waits for t), and their names are read
 * word by word with atomic loads (weft__task_name_load): a rename
 * meanwhile may mix two names, never a torn read. */
static void task_path_append(const struct weft_task *t, char *b, size_t n,
	size_t *len)
{
	const struct weft_task *parent = weft__task_parent(t);
	if (parent != NULL)
		task_path_append(parent, b, n, len);
	char name[WEFT__TASK_NAME_MAX];
	weft__task_name_load(t, name);
	size_t room = *len < n ? n - *len : 0;
	int k = snprintf(room ? b + *len : NULL, room, "%s%s#%llu",
		*len ? "/" : "", name, (unsigned long long)t->id);
	if (k > 0)
		*len += (size_t)k;
}

void weft__task_leaf_context(struct weft_task *t, struct weft__leaf *l)
{
	/* Failure path only: two passes (measure, then write) rather than a
	 * bound on the depth of the tree. */
	size_t len = 0;
	task_path_append(t, NULL, 0, &len);
	char *path = weft__alloc(len + 1);
	if (path) {
		size_t k = 0;
		task_path_append(t, path, len + 1, &k);
	}
	/* Why a collateral failure's task was cancelled: the reason of the
	 * cancellation its root scope sees (its own scope's, or before the
	 * lazy link its parent's).  The origin is that scope or one further
	 * out, alive while t is (see weft__scope_origin). */
	weft_cancel_reason_t r = { 0 };
	if (l->collateral) {
		struct weft_scope *s = &t->root_scope;
		struct weft_scope *o = weft__scope_check(&t->rt->cancel_gen, s)
			? weft__scope_origin(s)
			: NULL;
		if (o) {
			weft__spin_lock(&o->lock);
			weft__scope_reason_export(o, &r);
			weft__spin_unlock(&o->lock);
		}
	}
	(void)weft__error_leaf_context(l, path, r.text[0] ? r.text : NULL);
	weft__free(path);
}

struct weft__leaf *weft__task_failure_leaf(struct weft_task *t)
{
	struct weft__leaf *l = weft__error_leaf_create(t->rc,
		t->fail_msg ? t->fail_msg : "", t->name, t->id, t->fail_seq,
		t->fail_collateral, t->fail_group);
	if (l) {
		t->fail_group = NULL; /* moved into the leaf */
		weft__task_leaf_context(t, l);
	}
	return l;
}

/* }======================================================= */

/* {======================================================= start / started */

/* The child ends without having been started (or after the caller gave
 * up): tell the caller. */
static void start_end(struct weft_task *t)
{
	struct weft__start *st = t->start;
	struct weft_task *caller = st->caller;
	t->start = NULL;
	/* seq_cst: see start_wake_caller.  st may be gone right after. */
	atomic_exchange_explicit(&st->state, START_ENDED, memory_order_seq_cst);
	start_wake_caller(caller);
}

int weft_task_started(void *value)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	if (t->started_called)
		return WEFT_EALREADY;
	if (t->start == NULL)
		return 0; /* spawned, not started: TASK_STATUS_IGNORED */
	t->started_called = true;
	t->start_value = value;
	struct weft__start *st = t->start;
	/* Rule 16: if the caller is already cancelled, do not move into g;
	 * the caller will cancel us and wait. */
	if (weft__scope_is_cancelled(t->root_scope.parent))
		return 0;
	/* Read the handshake before publishing: st may be gone after. */
	struct weft_task *caller = st->caller;
	struct weft_group *g = st->g;
	int expected = START_PENDING;
	/* seq_cst, as every access to the handshake state: races the
	 * caller's CAS to ABANDONED (weft__task_start); one of them wins. */
	if (!atomic_compare_exchange_strong_explicit(&st->state, &expected,
		    START_MOVING, memory_order_seq_cst, memory_order_seq_cst))
		return 0; /* the caller gave up first */
	start_debug_pause();
	/* g outlives this: we are still counted in it.  Its scope may not
	 * be linked yet (a lazy group scope): link its chain first.  The
	 * caller waits while MOVING: the scope we leave is alive. */
	weft__scope_materialize(&g->scope);
	weft__scope_reparent(&t->root_scope, &g->scope);
	t->start = NULL; /* from now on failures go to the group */
	/* seq_cst: see start_wake_caller.  st may be gone right after. */
	atomic_store_explicit(&st->state, START_STARTED, memory_order_seq_cst);
	start_wake_caller(caller);
	return 0;
}

/* Park the caller until st leaves `from` (the caller is not cancellable
 * when `cancellable` is false).  Returns the state seen. */
static WEFT_FIBER_FN int start_wait(struct weft_task *self,
	struct weft__start *st, struct weft_task *child, bool cancellable)
{
	for (;;) {
		uint64_t gen = weft__task_park_prepare(self, cancellable);
		/* seq_cst store then seq_cst load: pairs with the child's
		 * state update then start_wait_gen load (start_wake_caller):
		 * the child wakes this park or we see its state. */
		atomic_store_explicit(&self->start_wait_gen, gen,
			memory_order_seq_cst);
		start_debug_pause();
		/* seq_cst: see above. */
		int s = atomic_load_explicit(&st->state, memory_order_seq_cst);
		if (s == START_STARTED || s == START_ENDED)
			return s;
		/* relaxed: the task's own cur_scope. */
		if (cancellable &&
			weft__scope_is_cancelled(
				atomic_load_explicit(&self->cur_scope,
					memory_order_relaxed)))
			return s;
		/* Woken (or not parked at all): the checks above decide. */
		/* The dump and the trace name the task we wait for (a
		 * type-stable record: core/inspect.h). */
		weft__task_park_commit_obj(self, "start", WEFT__WAIT_TASK,
			child);
	}
}

/* Runs the handshake for a created (not yet queued) child t of g, which
 * carries a reference for us.  Returns start()'s result. */
int weft__task_start(struct weft_task *self, struct weft_group *g,
	struct weft_task *t, void **value_out)
{
	struct weft__start st;
	st.caller = self;
	st.g = g;
	atomic_init(&st.state, START_PENDING);
	t->start = &st;
	weft__task_link_root(self);
	/* The child wakes us after publishing its state, possibly after we
	 * returned (and finished): it holds this reference until then.
	 * relaxed: we hold one (see weft__task_unref). */
	atomic_fetch_add_explicit(&self->refs, 1, memory_order_relaxed);
	/* Before started() the child runs under the caller's scopes
	 * (relaxed: our own cur_scope). */
	weft__scope_link(&t->root_scope,
		atomic_load_explicit(&self->cur_scope, memory_order_relaxed),
		t);
	weft__sched_spawn(t);
	int s = start_wait(self, &st, t, true);
	if (s == START_PENDING) {
		int expected = START_PENDING;
		/* seq_cst: races the child's CAS to MOVING in
		 * weft_task_started (and its exchange to ENDED). */
		if (atomic_compare_exchange_strong_explicit(&st.state,
			    &expected, START_ABANDONED, memory_order_seq_cst,
			    memory_order_seq_cst)) {
			weft__scope_cancel(&t->root_scope, WEFT_CANCEL_START,
				"the start() caller was cancelled", true,
				self->id);
			s = start_wait(self, &st, t, false);
			WEFT_ASSERT(s == START_ENDED, "start handshake");
			/* relaxed: our own cur_scope. */
			struct weft_scope
				*cur = atomic_load_explicit(&self->cur_scope,
					memory_order_relaxed);
			weft__scope_note_observed(weft__scope_origin(cur));
			int crc = t->rc;
			return (crc == 0 || crc == -ECANCELED) ? -ECANCELED
							       : crc;
		}
		s = expected;
	}
	/* started() won and is moving the child into g (seen by a wait
	 * that returned for our cancellation, or by the CAS above): wait
	 * for the move, not cancellably (the child is g's now). */
	if (s == START_MOVING)
		s = start_wait(self, &st, t, false);
	if (s == START_STARTED) {
		if (value_out)
			*value_out = t->start_value;
		return 0;
	}
	/* Ended without being moved into g: its outcome is ours to report.
	 * If it did call started() but we were already cancelled (rule 16:
	 * no reparenting), the start was cancelled, not "never started". */
	int crc = t->rc;
	if (t->started_called && (crc == 0 || crc == -ECANCELED)) {
		/* relaxed: our own cur_scope. */
		struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		if (weft__scope_is_cancelled(cur))
			weft__scope_note_observed(weft__scope_origin(cur));
		return -ECANCELED;
	}
	/* acquire: pairs with the state store in weft__task_finish (the
	 * handshake's seq_cst ENDED already ordered it). */
	if (atomic_load_explicit(&t->state, memory_order_acquire) ==
		WEFT_TASK_FINISHED) {
		/* Rule 16: a caller cancelled before started() gets
		 * -ECANCELED, also when the task returned 0 before the
		 * caller saw its own cancellation: which of the two came
		 * first is the schedule's, the result must not be. */
		/* relaxed: our own cur_scope. */
		struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		if (weft__scope_is_cancelled(cur)) {
			weft__scope_note_observed(weft__scope_origin(cur));
			return -ECANCELED;
		}
		return WEFT_ENOTSTARTED;
	}
	return crc;
}

/* }======================================================= */

/* {======================================================= task self-API */

int weft_fail(int code, const char *fmt, ...)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL || fmt == NULL)
		return code;
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	size_t n = strlen(buf) + 1;
	char *m = weft__alloc(n);
	/* Out of memory the code still reaches the group, with no message:
	 * an earlier call's message described another failure. */
	if (m != NULL)
		memcpy(m, buf, n);
	weft__free(t->fail_msg);
	t->fail_msg = m;
	return code;
}

int weft_fail_group(weft_error_t *err)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL) {
		weft_error_free(err);
		return WEFT_ENOTFIBER;
	}
	if (err) {
		weft_error_free(t->fail_group);
		t->fail_group = err;
	}
	return WEFT_ECHILD_FAILED;
}

int weft_fail_group_pending(void)
{
	struct weft_task *t = weft__task_current();
	return t != NULL && t->fail_group != NULL;
}

int weft_task_set_result(void *value)
{
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	t->result = value;
	return 0;
}

uint64_t weft_current_task_id(void)
{
	struct weft_task *t = weft__task_current();
	return t ? t->id : 0;
}

/* }======================================================= */

/* {======================================================= handles
 *
 * Every function here takes a handle (a tagged pointer, records.h) and
 * untags it through weft__task_from_handle, which reports a stale one;
 * every function that gives a task to the user tags it
 * (weft__task_handle). */

weft_task_state_t weft_task_state(const weft_task_t *hd)
{
	const struct weft_task *h = weft__task_from_handle(hd,
		"weft_task_state");
	if (h == NULL)
		return WEFT_TASK_PENDING;
	/* acquire: pairs with the state store in weft__task_finish
	 * (invariant 4); cancel_called's with the release store in
	 * weft__scope_cancel. */
	int s = atomic_load_explicit(&h->state, memory_order_acquire);
	if (s == WEFT_TASK_PENDING &&
		atomic_load_explicit(&h->root_scope.cancel_called,
			memory_order_acquire))
		return WEFT_TASK_CANCELLING;
	return (weft_task_state_t)s;
}

int weft_task_result(const weft_task_t *hd, void **value)
{
	if (hd == NULL)
		return -EINVAL;
	const struct weft_task *h = weft__task_from_handle(hd,
		"weft_task_result");
	if (h == NULL)
		return WEFT_EMISUSE;
	/* acquire: invariant 4, then result is read. */
	switch (atomic_load_explicit(&h->state, memory_order_acquire)) {
	case WEFT_TASK_FINISHED:
		if (value)
			*value = h->result;
		return 0;
	case WEFT_TASK_CANCELLED: return -ECANCELED;
	case WEFT_TASK_FAILED: return WEFT_EFAILED;
	default: return WEFT_ENOTFINISHED;
	}
}

int weft_task_failure(const weft_task_t *hd, int *code, const char **msg)
{
	if (hd == NULL)
		return -EINVAL;
	const struct weft_task *h = weft__task_from_handle(hd,
		"weft_task_failure");
	if (h == NULL)
		return WEFT_EMISUSE;
	/* acquire: invariant 4, then rc and fail_msg are read. */
	if (atomic_load_explicit(&h->state, memory_order_acquire) !=
		WEFT_TASK_FAILED)
		return WEFT_ENOTFINISHED;
	if (code)
		*code = h->rc;
	if (msg)
		*msg = h->fail_msg ? h->fail_msg : "";
	return 0;
}

void *weft_task_start_value(const weft_task_t *hd)
{
	const struct weft_task *h = weft__task_from_handle(hd,
		"weft_task_start_value");
	return h ? h->start_value : NULL;
}

int weft_task_cancel(weft_task_t *hd)
{
	return weft_task_cancel_with(hd, NULL);
}

int weft_task_cancel_with(weft_task_t *hd, const char *reason)
{
	if (hd == NULL)
		return -EINVAL;
	struct weft_task *h = weft__task_from_handle(hd, "weft_task_cancel");
	if (h == NULL)
		return WEFT_EMISUSE;
	/* acquire: invariant 4 (a hint here: cancelling a task that ends
	 * meanwhile is harmless). */
	if (atomic_load_explicit(&h->state, memory_order_acquire) !=
		WEFT_TASK_PENDING)
		return 0;
	struct weft_task *self = weft__task_current();
	weft__scope_cancel(&h->root_scope, WEFT_CANCEL_TASK,
		reason ? reason : "task cancelled through its handle",
		reason == NULL, self ? self->id : 0);
	return 0;
}

int weft_task_wait(weft_task_t *hd)
{
	if (hd == NULL)
		return -EINVAL;
	struct weft_task *h = weft__task_from_handle(hd, "weft_task_wait");
	if (h == NULL)
		return WEFT_EMISUSE;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (self == h)
		return WEFT_EMISUSE;
	/* A checkpoint also when h has already ended (rule 22). */
	int rc = weft__task_blocking_enter(self);
	if (rc < 0)
		return rc;
	weft__task_link_root(self);
	struct weft__waiter node = { .task = self };
	for (;;) {
		/* acquire: invariant 4 (the caller may read h's outcome). */
		if (atomic_load_explicit(&h->state, memory_order_acquire) !=
			WEFT_TASK_PENDING)
			return 0;
		node.gen = weft__task_park_prepare(self, true);
		weft__spin_lock(&h->waiters_lock);
		/* relaxed: under the lock. */
		node.next = atomic_load_explicit(&h->waiters,
			memory_order_relaxed);
		/* List first, then re-check state (seq_cst both): pairs with
		 * the finisher's state store then list read. */
		atomic_store_explicit(&h->waiters, &node, memory_order_seq_cst);
		weft__spin_unlock(&h->waiters_lock);
		/* relaxed: our own cur_scope.  seq_cst: see above. */
		struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		if (atomic_load_explicit(&h->state, memory_order_seq_cst) ==
				WEFT_TASK_PENDING &&
			!weft__scope_is_cancelled(cur))
			weft__task_park_commit_obj(self, "task wait",
				WEFT__WAIT_TASK, h);
		/* Remove ourselves if still listed (relaxed: under the lock,
		 * as every write of the list). */
		weft__spin_lock(&h->waiters_lock);
		struct weft__waiter *head = atomic_load_explicit(&h->waiters,
			memory_order_relaxed);
		if (head == &node) /* relaxed: under the lock */
			atomic_store_explicit(&h->waiters, node.next,
				memory_order_relaxed);
		else
			for (struct weft__waiter *w = head; w; w = w->next)
				if (w->next == &node) {
					w->next = node.next;
					break;
				}
		weft__spin_unlock(&h->waiters_lock);
		/* relaxed: our own cur_scope; acquire: invariant 4. */
		cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		if (weft__scope_is_cancelled(cur) &&
			atomic_load_explicit(&h->state, memory_order_acquire) ==
				WEFT_TASK_PENDING) {
			weft__scope_note_observed(weft__scope_origin(cur));
			return -ECANCELED;
		}
	}
}

uint64_t weft_task_id(const weft_task_t *hd)
{
	const struct weft_task *h = weft__task_from_handle(hd, "weft_task_id");
	return h ? h->id : 0;
}

const char *weft_task_name(const weft_task_t *hd)
{
	const struct weft_task *h = weft__task_from_handle(hd,
		"weft_task_name");
	return h ? h->name : "";
}

void weft_task_release(weft_task_t *hd)
{
	struct weft_task *h = weft__task_from_handle(hd, "weft_task_release");
	if (h == NULL)
		return;
	/* Drop one user reference, refusing when none is left: a second
	 * release of the last handle while the task still runs (or while
	 * another reference keeps the record) would otherwise drop the run
	 * reference and free a running task's record.  relaxed: the count
	 * orders nothing; refs (acq_rel in weft__task_unref) does. */
	int n = atomic_load_explicit(&h->handles, memory_order_relaxed);
	do {
		if (n <= 0) {
			weft__task_misuse(hd, "weft_task_release",
				"released more often than retained");
			return;
		}
	} while (!atomic_compare_exchange_weak_explicit(&h->handles, &n, n - 1,
		memory_order_relaxed, memory_order_relaxed));
	weft__task_unref(h);
}

/* }======================================================= */

/* {======================================================= handles and names */

struct weft_task *weft__task_parent(const struct weft_task *t)
{
	if (t->group != NULL)
		return t->group->owner;
	if (weft__par_fn_is_half(t->fn))
		return ((const struct weft__par *)t->arg)->caller;
	return NULL;
}

struct weft_group *weft__task_cpu_group(const struct weft_task *t)
{
	if (t->group != NULL)
		return t->group;
	const struct weft_task *parent = weft__task_parent(t);
	return parent != NULL ? parent->group : NULL;
}

weft_task_t *weft_current_task(void)
{
	return weft__task_handle(weft__task_current());
}

weft_task_t *weft_root_task(void)
{
	struct weft_task *t = weft__task_current();
	/* Ancestors outlive their descendants (weft__task_parent). */
	for (struct weft_task *p; t && (p = weft__task_parent(t)) != NULL;)
		t = p;
	return weft__task_handle(t);
}

/* Counts one more user reference of h (also in refs).  relaxed: the
 * caller holds a reference (see weft__task_unref). */
void weft__task_retain_handle(struct weft_task *h)
{
	atomic_fetch_add_explicit(&h->handles, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

int weft_task_retain(weft_task_t *hd)
{
	if (hd == NULL)
		return -EINVAL;
	struct weft_task *h = weft__task_from_handle(hd, "weft_task_retain");
	if (h == NULL)
		return WEFT_EMISUSE;
	weft__task_retain_handle(h);
	return 0;
}

int weft_task_rename(weft_task_t *hd, const char *name)
{
	if (hd == NULL || name == NULL)
		return -EINVAL;
	struct weft_task *h = weft__task_from_handle(hd, "weft_task_rename");
	if (h == NULL)
		return WEFT_EMISUSE;
	/* acquire: invariant 4; a name is the task's while it lives (a
	 * finished task keeps the name it ended with). */
	if (atomic_load_explicit(&h->state, memory_order_acquire) !=
		WEFT_TASK_PENDING)
		return WEFT_ECLOSED;
	/* Atomic word stores: snapshots, and the task itself renaming at the
	 * same moment, read and write the name concurrently (two racing
	 * renames may mix, never tear a word).  name_lit is cleared so that
	 * the record's next life copies its name even when spawned from the
	 * literal of this one (relaxed: that spawn comes after the last
	 * reference was dropped, which orders this store before it, see
	 * weft__task_unref; the task's own weft_task_set_name may store the
	 * same NULL concurrently). */
	weft__task_name_store(h, name);
	atomic_store_explicit(&h->name_lit, NULL, memory_order_relaxed);
	return 0;
}

int weft_task_set_name(const char *name)
{
	if (name == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	/* Atomic stores: snapshots read the name concurrently. */
	weft__task_name_store(t, name);
	/* relaxed: see weft_task_rename. */
	atomic_store_explicit(&t->name_lit, NULL, memory_order_relaxed);
	return 0;
}

weft_group_t *weft_task_group(const weft_task_t *hd)
{
	const struct weft_task *h = weft__task_from_handle(hd,
		"weft_task_group");
	return h ? weft__group_handle(h->group) : NULL;
}

/* }======================================================= */

/* {======================================================= done callbacks
 *
 * Done callbacks (docs/semantics.md rule 38) use the waiters' protocol:
 * the registrant lists its node, then re-reads the state (seq_cst both);
 * the finisher stores the state, then reads the list head (seq_cst both),
 * so one of them sees the other, and the lock decides who runs a node
 * that both saw. */

static void task_cb_run(struct weft_task *t, struct weft__done_cb *cb)
{
	bool intrusive = cb->intrusive; /* fn may free an intrusive node */
	cb->fn(weft__task_handle(t), cb->arg);
	if (!intrusive)
		weft__free(cb);
	/* The registration's reference; never the last one here (the
	 * finisher still holds its run reference, a late registrant its
	 * handle). */
	weft__task_unref(t);
}

static void task_cb_register(struct weft_task *h, struct weft__done_cb *cb,
	weft_done_fn fn, void *arg);

int weft_task_on_done(weft_task_t *hd, weft_done_fn fn, void *arg)
{
	if (hd == NULL || fn == NULL)
		return -EINVAL;
	struct weft_task *h = weft__task_from_handle(hd, "weft_task_on_done");
	if (h == NULL)
		return WEFT_EMISUSE;
	/* acquire: invariant 4 (fn may read the outcome). */
	if (atomic_load_explicit(&h->state, memory_order_acquire) !=
		WEFT_TASK_PENDING) {
		fn(hd, arg);
		return 0;
	}
	struct weft__done_cb *cb = weft__alloc(sizeof *cb);
	if (cb == NULL)
		return -ENOMEM;
	cb->intrusive = false;
	task_cb_register(h, cb, fn, arg);
	return 0;
}

void weft__task_on_done_node(struct weft_task *h, struct weft__done_cb *cb,
	void (*fn)(weft_task_t *h, void *arg), void *arg)
{
	/* acquire: invariant 4 (fn may read the outcome). */
	if (atomic_load_explicit(&h->state, memory_order_acquire) !=
		WEFT_TASK_PENDING) {
		fn(weft__task_handle(h), arg);
		return;
	}
	cb->intrusive = true;
	task_cb_register(h, cb, fn, arg);
}

/* Lists cb on the pending task h, or runs it if h ended meanwhile. */
static void task_cb_register(struct weft_task *h, struct weft__done_cb *cb,
	weft_done_fn fn, void *arg)
{
	cb->fn = fn;
	cb->arg = arg;
	/* The registration keeps the record until fn ran (and makes the
	 * finisher see a shared task, so that it reads the list).  relaxed:
	 * the caller holds h.  The list head is read relaxed, under the
	 * lock. */
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	weft__spin_lock(&h->waiters_lock);
	cb->next = atomic_load_explicit(&h->done_cbs, memory_order_relaxed);
	/* seq_cst store then seq_cst load of state: pairs with the
	 * finisher's state store then list read (weft__task_finish). */
	atomic_store_explicit(&h->done_cbs, cb, memory_order_seq_cst);
	bool run_now = false;
	if (atomic_load_explicit(&h->state, memory_order_seq_cst) !=
		WEFT_TASK_PENDING) {
		/* The finisher may not have seen cb: if it is still listed,
		 * the finisher has not taken the list (it takes it under
		 * this lock), so it is ours to run.  relaxed: under it. */
		struct weft__done_cb *head = atomic_load_explicit(&h->done_cbs,
			memory_order_relaxed);
		if (head == cb) {
			atomic_store_explicit(&h->done_cbs, cb->next,
				memory_order_relaxed);
			run_now = true;
		}
		for (struct weft__done_cb *c = head; !run_now && c; c = c->next)
			if (c->next == cb) {
				c->next = cb->next;
				run_now = true;
			}
	}
	weft__spin_unlock(&h->waiters_lock);
	if (run_now)
		task_cb_run(h, cb);
}

int weft_task_remove_done(weft_task_t *hd, weft_done_fn fn, void *arg)
{
	if (hd == NULL || fn == NULL)
		return -EINVAL;
	struct weft_task *h = weft__task_from_handle(hd,
		"weft_task_remove_done");
	if (h == NULL)
		return WEFT_EMISUSE;
	/* Nodes still listed under the lock have not been taken by the
	 * finisher (it takes the whole list under this lock), so they are
	 * ours to drop.  relaxed: the list is read and written under the
	 * lock; a finisher's lock-free read of the head only decides whether
	 * it takes the lock. */
	struct weft__done_cb *gone = NULL;
	weft__spin_lock(&h->waiters_lock);
	struct weft__done_cb *head = atomic_load_explicit(&h->done_cbs,
		memory_order_relaxed);
	struct weft__done_cb **pp = &head;
	while (*pp) {
		struct weft__done_cb *c = *pp;
		if (!c->intrusive && c->fn == fn && c->arg == arg) {
			*pp = c->next;
			c->next = gone;
			gone = c;
		} else {
			pp = &c->next;
		}
	}
	atomic_store_explicit(&h->done_cbs, head, memory_order_relaxed);
	weft__spin_unlock(&h->waiters_lock);
	int n = 0;
	while (gone) {
		struct weft__done_cb *next = gone->next;
		weft__free(gone);
		/* The registration's reference; never the last (the caller
		 * holds h). */
		weft__task_unref(h);
		gone = next;
		n++;
	}
	return n;
}

void weft__task_run_done_cbs(struct weft_task *t)
{
	/* relaxed: the list is written under the lock; the seq_cst pair is
	 * the finisher's check before this call. */
	weft__spin_lock(&t->waiters_lock);
	struct weft__done_cb *list = atomic_load_explicit(&t->done_cbs,
		memory_order_relaxed);
	/* relaxed: under the lock. */
	atomic_store_explicit(&t->done_cbs, NULL, memory_order_relaxed);
	weft__spin_unlock(&t->waiters_lock);
	/* Listed newest first: reverse into registration order. */
	WEFT__SLIST_REVERSE(struct weft__done_cb, list);
	struct weft__done_cb *fifo = list;
	while (fifo) {
		struct weft__done_cb *next = fifo->next;
		task_cb_run(t, fifo);
		fifo = next;
	}
}

/* }======================================================= */
