/* Cancel scopes: the internal structure (see cancel.c for the design). */
#ifndef WEFT_RUNTIME_CORE_CANCEL_H
#define WEFT_RUNTIME_CORE_CANCEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/common.h"
#include "base/spin.h"
#include "core/ioq.h"
#include "core/stall.h"
#include "core/wheel.h"
#include "weft/cancel.h"
#include "weft/time.h"

struct weft_task;
struct weft_runtime;

enum weft__scope_kind {
	WEFT__SCOPE_USER = 0, /* heap scope from weft_scope_create */
	WEFT__SCOPE_GROUP,    /* embedded in a weft_group */
	WEFT__SCOPE_TASK,     /* a task's root scope, embedded in the task */
	/* A private scope on its task's fiber stack (struct weft__frame_scope,
	 * weft_sleep_until): never freed; its last reference wakes the task
	 * waiting to leave the frame (weft__scope_frame_exit and
	 * weft__scope_unref). */
	WEFT__SCOPE_FRAME
};

enum weft__scope_state {
	WEFT__SCOPE_CREATED = 0,
	WEFT__SCOPE_ENTERED,
	WEFT__SCOPE_EXITED
};

/* Why a scope was cancelled.  The public weft_cancel_reason_t carries the
 * text inline (96 bytes); here it is a pointer, to a static string or to a
 * heap copy of a caller's text (reason_owned), so that the scope embedded in
 * every task and group record stays small. */
struct weft__reason {
	uint64_t scope_id;
	uint64_t task_id;
	const char *text;
};

/* A node of the scope tree.  Parent links cross task boundaries: a group's
 * scope is the parent of its children's root scopes.
 *
 * Lock order: a parent's lock before a child's.  The lock of a scope
 * protects its children list and the `task` pointer. */
struct weft_scope {
	weft__spin_t lock;
	unsigned flags; /* WEFT_SCOPE_*; fixed after create */
	/* Written under the parent's lock (link, unlink, reparent); read by
	 * the owning task without lock (it is the only writer's task). */
	struct weft_scope *parent;
	struct weft_scope *first_child;		/* under lock */
	struct weft_scope *prev_sib, *next_sib; /* under parent's lock */
	/* The task whose scope stack holds this scope; NULL once exited.
	 * Written under this scope's or its parent's lock (see unlink);
	 * relaxed atomic because a root scope's is cleared without it. */
	_Atomic(struct weft_task *) task;
	/* The next outer scope on the same task's stack, set at enter by the
	 * owning task; owner-only. */
	struct weft_scope *outer;
	uint64_t id;
	/* The outermost cancelled scope this one's cancellation comes from
	 * (Trio's "the outer one wins"): set with the first cancellation to
	 * reach it, before eff_cancelled's seq_cst store (whose release half
	 * publishes it), and replaced, under this scope's lock, when a
	 * cancellation of a scope further out reaches it later.  Read
	 * lock-free with weft__scope_origin (relaxed): a reader racing a
	 * replacement gets the old or the new one, both alive, because both
	 * are ancestors of (or equal to) this scope on its unshielded path. */
	_Atomic(struct weft_scope *) origin;
	/* Deadline: written by any thread, read by weft_deadline,
	 * weft_effective_deadline and dumps (relaxed: a value, ordering
	 * nothing; the timer reads timer_deadline below instead).  Only
	 * timed scopes (below) ever have one. */
	_Atomic int64_t deadline;
	uint8_t kind;  /* enum weft__scope_kind */
	uint8_t state; /* enum weft__scope_state; owner task only */
	/* Both set under the scope's lock and read lock-free.  cancel_called:
	 * by weft__scope_cancel, with a release store after the reason,
	 * read with acquire.  eff_cancelled: by scope_propagate_locked (for
	 * a cancel, or a link under a cancelled parent) with a seq_cst
	 * store, read by checkpoints with a seq_cst load (cancel.c invariant
	 * 3: the park/cancel pair). */
	atomic_bool cancel_called;
	atomic_bool eff_cancelled;
	/* A checkpoint inside observed a cancellation whose origin is this
	 * scope (relaxed; read by the owner at exit after its own
	 * checkpoints). */
	atomic_bool observed;
	bool caught; /* exit consumed its own cancellation */
	/* The reason's origin (weft_cancel_origin_t) and whether its text is
	 * a heap copy: here rather than in `reason` so that they fill the
	 * padding after the flags.  Valid once cancel_called, like it. */
	uint8_t reason_origin;
	bool reason_owned;
	/* Whether s is on its parent's children list (a root: entered).
	 * Group scopes and task root scopes are linked lazily (cancel.c,
	 * "Lazy links"): by the first task of their chain that needs its
	 * scopes reachable.  Written under the parent's lock (release), read
	 * lock-free with acquire (weft__scope_linked). */
	atomic_bool linked;
	/* An unlinked scope's cancellation as last pulled from its chain:
	 * (cancel generation << 1) | cancelled, 0 when unknown.  Written by
	 * the task the scope belongs to (at entry and at its checks), read
	 * by tasks whose chain passes through it (relaxed: one word, the
	 * generation says how fresh the bit is). */
	_Atomic uint64_t pull;
	/* Not cleared when a group or task record is recycled (from here on,
	 * WEFT__SCOPE_CLEAR): written before it is read, and released by
	 * weft__scope_fini at the end of each life of the scope. */
	struct weft__reason reason; /* under lock; valid once cancel_called */
};

/* A scope that can carry a deadline: user scopes (heap, weft_scope_t
 * points at .s) and the private scopes of sleeps (struct
 * weft__frame_scope).  The scopes embedded in tasks and groups never have
 * a deadline and carry none of this. */
struct weft__timed_scope {
	struct weft_scope s;
	/* The deadline the timer should arm: `deadline` while entered,
	 * WEFT_FOREVER before entry and after exit. */
	_Atomic int64_t timer_deadline;
	atomic_int refs;	 /* user + queued timer request + wheel */
	atomic_int timer_queued; /* an update request is in the I/O queue */
	struct weft_runtime *rt; /* runtime whose timer arms the deadline */
	struct weft__ioq_node timer_node; /* I/O request queue entry */
	struct weft__tnode tnode;	  /* under the runtime timer's lock */
	/* For a user scope, the code address that entered it (the return
	 * address of the public call), for misnesting reports (rule 24);
	 * NULL before entry and for frame scopes.  Owner task only. */
	void *site;
	/* A shielded user scope entered while the stall watchdog is on is
	 * listed there while it is open (core/stall.h). */
	struct weft__stall_shield stall;
	/* A user scope that a cancellation of a scope further out reached
	 * while it was entered, and that was never cancelled itself, keeps
	 * that cancellation's reason from its exit on (weft_scope_reason's
	 * WEFT_CANCEL_PARENT): the text is a heap copy, or a static string
	 * when the copy failed (inherited_owned says which).  Written by the
	 * owner at exit before the release store of `inherited`; read after
	 * an acquire load of it. */
	struct weft__reason inherited_reason;
	bool inherited_owned;
	atomic_bool inherited;
};

/* The timed scope of s; s must be of kind USER or FRAME.  Thread: any. */
static inline struct weft__timed_scope *weft__scope_timed(struct weft_scope *s)
{
	return WEFT__CONTAINER_OF(s, struct weft__timed_scope, s);
}

/* A scope that lives in its task's stack frame.  The timer may still
 * hold references (a queued timer request, the wheel) when the task wants
 * to leave the frame; the task then parks until the last one is dropped,
 * and that dropper wakes it with `gen`.  waiter and gen are written by the
 * task before it drops its own reference and read by the last dropper. */
struct weft__frame_scope {
	struct weft__timed_scope ts;
	struct weft_task *waiter;
	uint64_t gen;
};

/* Bytes of a scope that must start zeroed: the reason is written before
 * it is read (once cancel_called is set). */
#define WEFT__SCOPE_CLEAR offsetof(struct weft_scope, reason)

/* Initialise a zeroed scope (embedded in a cleared group or task record,
 * or calloc'd).  Thread: its creator, before s is shared. */
void weft__scope_init(struct weft_scope *s, enum weft__scope_kind kind,
	unsigned flags);
/* weft__scope_init for the scope embedded in a task or group record,
 * whose first WEFT__SCOPE_CLEAR bytes the caller has just zeroed: only
 * the fields that are not zero are written (B1 fib initialises two
 * scopes per node).  Thread: its creator, before s is shared. */
static inline void weft__scope_init_embedded(struct weft_scope *s,
	enum weft__scope_kind kind, unsigned flags)
{
	s->kind = (uint8_t)kind;
	s->flags = flags;
	/* Not shared yet: a relaxed store (atomic_init's equal). */
	atomic_store_explicit(&s->deadline, WEFT_FOREVER, memory_order_relaxed);
}
/* Makes the embedded scope s of a recycled task or group record (ended,
 * unlinked and fini'd: weft__scope_fini) as weft__scope_init_embedded
 * leaves a cleared one, clearing it only if it was used: a scope that was
 * never cancelled, nor the origin of an observed cancellation, and has
 * no child left differs from a cleared one only in what its next life
 * sets again before use (parent, id, pull; a group's outer and state at
 * its entry) and in what its unlink put back (linked, task).  B1 renews
 * two scopes per node.  Relaxed loads: the record is the caller's alone.
 * Thread: its creator, before s is shared. */
static inline void weft__scope_renew_embedded(struct weft_scope *s,
	enum weft__scope_kind kind)
{
	if (__builtin_expect(atomic_load_explicit(&s->cancel_called,
				     memory_order_relaxed) ||
			    atomic_load_explicit(&s->eff_cancelled,
				    memory_order_relaxed) ||
			    atomic_load_explicit(&s->observed,
				    memory_order_relaxed) ||
			    atomic_load_explicit(&s->origin,
				    memory_order_relaxed) != NULL ||
			    s->caught || s->first_child != NULL,
		    0)) {
		memset(s, 0, WEFT__SCOPE_CLEAR);
		weft__scope_init_embedded(s, kind, 0);
	}
}
/* Link s under parent (NULL for a root) as the scope of task t, inheriting
 * the parent's effective cancellation unless s is shielded.  Thread: any
 * thread holding the parent alive (t itself, a start() caller linking its
 * child, weft_runtime_run linking a root). */
void weft__scope_link(struct weft_scope *s, struct weft_scope *parent,
	struct weft_task *t);
/* Remove s from its parent's children; clears s->task.  Thread: the
 * task whose scope s is (leaving it, or at its end). */
void weft__scope_unlink(struct weft_scope *s);
/* Move s (a task root scope) under new_parent.  Thread: the task whose
 * root scope s is (weft_task_started). */
void weft__scope_reparent(struct weft_scope *s, struct weft_scope *new_parent);
/* Cancel s with a reason; wakes tasks parked inside it.  text is a static
 * string when text_static, else the caller's and copied (NULL: a default).
 * Thread: any. */
void weft__scope_cancel(struct weft_scope *s, weft_cancel_origin_t origin,
	const char *text, bool text_static, uint64_t by_task);
/* Releases what the reason holds, at the end of a life of s (its record
 * is about to be freed or recycled).  Nobody else may reference s.
 * Thread: any (the last holder).  Inline: every group's end pays it, and
 * only a cancelled scope has anything to release. */
void weft__scope_fini_reason(struct weft_scope *s);
static inline void weft__scope_fini(struct weft_scope *s)
{
	/* acquire: pairs with the release in weft__scope_cancel, so
	 * reason_owned and the text are those of the first cancellation. */
	if (__builtin_expect(atomic_load_explicit(&s->cancel_called,
				     memory_order_acquire),
		    0))
		weft__scope_fini_reason(s);
}
/* Copies s's reason to the public form (s locked, or cancel_called read
 * with acquire and the reason no longer changing).  Thread: any. */
void weft__scope_reason_export(const struct weft_scope *s,
	weft_cancel_reason_t *out);
/* Whether s is linked (see `linked`); acquire: a scope seen linked has
 * its inherited mark visible.  Thread: any, holding s alive. */
static inline bool weft__scope_linked(const struct weft_scope *s)
{
	return atomic_load_explicit(&s->linked, memory_order_acquire);
}
/* Links s and every unlinked scope above it, outermost first (cancel.c,
 * "Lazy links").  Thread: a task whose chain holds s (s and the scopes
 * above it cannot be left meanwhile). */
void weft__scope_materialize(struct weft_scope *s);
/* Enters a group's scope s on t's stack without linking it (the lazy
 * form of weft__scope_push).  Thread: t itself. */
void weft__scope_push_lazy(struct weft_task *t, struct weft_scope *s);
/* The cancel state s starts with when it is entered unlinked under
 * parent (stores s->pull); cancel_gen is the runtime's.  Thread: the
 * task entering s, or the spawner of the task whose root scope s is. */
static inline void weft__scope_pull_init(_Atomic uint64_t *cancel_gen,
	struct weft_scope *s, const struct weft_scope *parent)
{
	/* acquire, before reading the parent's state: pairs with the
	 * release bump of every cancellation (cancel.c, invariant 9), so a
	 * mark made before the generation read is visible, and one made
	 * after changes the generation. */
	uint64_t gen = atomic_load_explicit(cancel_gen, memory_order_acquire);
	/* The parent's state as of gen: its flag when linked (`linked`
	 * first: see scope_pull), else what it pulled (relaxed: see
	 * `pull`).  seq_cst flag load: see weft__scope_is_cancelled. */
	uint64_t p = weft__scope_linked(parent)
		? gen << 1 |
			(uint64_t)atomic_load_explicit(&parent->eff_cancelled,
				memory_order_seq_cst)
		: atomic_load_explicit(&parent->pull, memory_order_relaxed);
	/* A state pulled at an older generation may be stale: unknown (0),
	 * and the first check walks.  A shielded scope inherits nothing. */
	if ((p >> 1) != gen)
		p = 0;
	else if (s->flags & WEFT_SCOPE_SHIELD)
		p = gen << 1;
	/* relaxed: see `pull`. */
	atomic_store_explicit(&s->pull, p, memory_order_relaxed);
}
/* The slow path of weft__scope_check: walks s's chain at generation gen
 * (cancel.c, scope_pull). */
bool weft__scope_check_slow(struct weft_scope *s, uint64_t gen);
/* Whether s, a scope of the calling task's chain, is effectively
 * cancelled, seeing through scopes not linked yet; marks s (and its
 * origin) when a cancellation is pulled from further out.  Four loads
 * unless some scope of the runtime (cancel_gen is its generation) was
 * cancelled since s last looked.  Thread: the task whose chain holds s. */
static inline bool weft__scope_check(_Atomic uint64_t *cancel_gen,
	struct weft_scope *s)
{
	/* `linked` before the flag (see scope_pull); seq_cst flag loads, as
	 * in weft__scope_is_cancelled. */
	if (weft__scope_linked(s))
		return atomic_load_explicit(&s->eff_cancelled,
			memory_order_seq_cst);
	if (atomic_load_explicit(&s->eff_cancelled, memory_order_seq_cst))
		return true;
	/* acquire: as in weft__scope_pull_init. */
	uint64_t gen = atomic_load_explicit(cancel_gen, memory_order_acquire);
	/* relaxed: see `pull`. */
	uint64_t p = atomic_load_explicit(&s->pull, memory_order_relaxed);
	if (__builtin_expect(p == gen << 1, 1))
		return false;
	/* Unknown, stale, or cancelled as inherited at entry but not marked
	 * yet (the origin is needed): walk. */
	return weft__scope_check_slow(s, gen);
}
/* Whether the calling task is effectively cancelled (innermost scope).
 * Thread: any (a task asking about its own innermost scope gets the
 * seq_cst read that invariant 3 of cancel.c needs). */
static inline bool weft__scope_is_cancelled(const struct weft_scope *s)
{
	/* seq_cst: the task's half of the park/cancel Dekker pair
	 * (invariant 3), after its seq_cst park prepare; pairs with the
	 * seq_cst store in scope_propagate_locked (its acquire sees origin). */
	return s &&
		atomic_load_explicit(&s->eff_cancelled, memory_order_seq_cst);
}
/* The scope s's cancellation comes from (see `origin`); NULL when s was
 * never cancelled.  Thread: any, holding s alive. */
static inline struct weft_scope *weft__scope_origin(const struct weft_scope *s)
{
	/* relaxed: see `origin`. */
	return atomic_load_explicit(&s->origin, memory_order_relaxed);
}
/* Records that a checkpoint observed s's cancellation.  Thread: a task
 * inside s. */
void weft__scope_note_observed(struct weft_scope *s);
/* Misnesting (rule 24): `call` (a public function's name) was asked to
 * leave s while another scope of t is innermost.  In WEFT_DEBUG builds
 * prints both scopes and where each was entered; otherwise nothing (the
 * call returns WEFT_EMISNEST).  Thread: t itself. */
void weft__scope_misnest_report(const char *call, struct weft_task *t,
	const struct weft_scope *s);
/* Push s on t's scope stack (its pop, weft__scope_pop, is inline in
 * core/task.h, which knows the task).  Thread: t itself. */
void weft__scope_push(struct weft_task *t, struct weft_scope *s);
/* Drop one reference of a timed scope: frees a user scope at zero, wakes
 * the owner of a frame scope.  Thread: any. */
void weft__scope_unref(struct weft_scope *s);
/* s's deadline passed: cancels s with origin DEADLINE.  Called by the
 * timer (under its lock, on the I/O thread or a worker), and directly by
 * whoever enters s or sets its deadline when it has already passed.
 * Thread: any. */
void weft__scope_deadline_fired(struct weft_scope *s);
/* Initialises and enters ss, a scope with `deadline` in t's current stack
 * frame (no allocation, cannot fail).  Thread: t itself. */
void weft__scope_frame_enter(struct weft_task *t, struct weft__frame_scope *ss,
	int64_t deadline);
/* Exits ss and waits until nobody else references it, so that the frame
 * holding it may return.  Returns whether its own deadline cancelled it
 * and a checkpoint observed that.  Thread: t itself, a weft fiber (it may
 * park until the timer lets go of ss). */
WEFT_FIBER_FN bool weft__scope_frame_exit(struct weft_task *t,
	struct weft__frame_scope *ss);
/* Exit s (innermost on t) without the misuse checks: task-exit cleanup of
 * a user scope left entered.  Thread: t itself, at its end. */
void weft__scope_force_exit(struct weft_task *t, struct weft_scope *s);

#endif
