/* Cancel scopes: the internal structure (see cancel.c for the design). */
#ifndef WEFT_RUNTIME_CANCEL_H
#define WEFT_RUNTIME_CANCEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "spin.h"
#include "timer.h"
#include "weft/cancel.h"

struct weft_task;

enum weft__scope_kind {
	WEFT__SCOPE_USER = 0, /* heap scope from weft_scope_create */
	WEFT__SCOPE_GROUP,    /* embedded in a weft_group */
	WEFT__SCOPE_TASK      /* a task's root scope, embedded in the task */
};

enum weft__scope_state {
	WEFT__SCOPE_CREATED = 0,
	WEFT__SCOPE_ENTERED,
	WEFT__SCOPE_EXITED
};

/* A node of the scope tree.  Parent links cross task boundaries: a group's
 * scope is the parent of its children's root scopes.
 *
 * Lock order: a parent's lock before a child's.  The lock of a scope
 * protects its children list and the `task` pointer. */
struct weft_scope {
	weft__spin_t lock;
	/* Written under the parent's lock (link, unlink, reparent); read by
	 * the owning task without lock (it is the only writer's task). */
	struct weft_scope *parent;
	struct weft_scope *first_child; /* under lock */
	struct weft_scope *prev_sib, *next_sib; /* under parent's lock */
	/* The task whose scope stack holds this scope; NULL once exited.
	 * Written under this scope's or its parent's lock (see unlink);
	 * relaxed atomic because a root scope's is cleared without it. */
	_Atomic(struct weft_task *) task;
	/* The next outer scope on the same task's stack, set at enter by the
	 * owning task; owner-only. */
	struct weft_scope *outer;
	uint64_t id;
	unsigned flags;          /* WEFT_SCOPE_*; fixed after create */
	uint8_t kind;            /* enum weft__scope_kind */
	uint8_t state;           /* enum weft__scope_state; owner task only */
	/* Set under lock by weft__scope_cancel; read lock-free with acquire
	 * by checkpoints (pairs with the release stores in cancel.c). */
	atomic_bool cancel_called;
	atomic_bool eff_cancelled;
	/* The outermost cancelled scope this one's cancellation comes from.
	 * Written under lock before eff_cancelled's release store. */
	struct weft_scope *origin;
	/* A checkpoint inside observed a cancellation whose origin is this
	 * scope (relaxed; read by the owner at exit after its own
	 * checkpoints). */
	atomic_bool observed;
	bool caught;             /* exit consumed its own cancellation */
	/* Deadline and its timer (see io.c): deadline is written by any
	 * thread, read by the I/O thread (relaxed + the request queue's
	 * release/acquire). */
	_Atomic int64_t deadline;
	/* The deadline the I/O thread should arm: `deadline` while entered,
	 * WEFT_FOREVER before entry and after exit. */
	_Atomic int64_t timer_deadline;
	atomic_int refs;          /* user + queued timer request + wheel */
	atomic_int timer_queued;  /* an update request is in the I/O queue */
	struct weft_runtime *rt;  /* runtime whose I/O thread owns the timer */
	/* Not cleared when a group or task record is recycled (from here on,
	 * WEFT__SCOPE_CLEAR): each is written before it is read. */
	weft_cancel_reason_t reason; /* under lock; valid once cancel_called */
	struct weft_scope *timer_next; /* I/O request queue link (user scopes) */
	struct weft__tnode tnode; /* I/O thread only, user scopes (calloc'd) */
};

/* Bytes of a scope that must start zeroed: the rest is written before it
 * is read (reason once cancel_called is set; the timer fields only in user
 * scopes, which are calloc'd). */
#define WEFT__SCOPE_CLEAR offsetof(struct weft_scope, reason)

/* Initialise a zeroed scope (embedded in a cleared group or task record,
 * or calloc'd). */
void weft__scope_init(struct weft_scope *s, enum weft__scope_kind kind,
	unsigned flags);
/* Link s under parent (NULL for a root) as the scope of task t, inheriting
 * the parent's effective cancellation unless s is shielded.  Any thread
 * holding the parent alive. */
void weft__scope_link(struct weft_scope *s, struct weft_scope *parent,
	struct weft_task *t);
/* Remove s from its parent's children; clears s->task. */
void weft__scope_unlink(struct weft_scope *s);
/* Move s (a task root scope) under new_parent. */
void weft__scope_reparent(struct weft_scope *s, struct weft_scope *new_parent);
/* Cancel s with a reason; wakes tasks parked inside it.  Any thread. */
void weft__scope_cancel(struct weft_scope *s, weft_cancel_origin_t origin,
	const char *text, uint64_t by_task);
/* Whether the calling task is effectively cancelled (innermost scope). */
bool weft__scope_is_cancelled(const struct weft_scope *s);
/* Records that a checkpoint observed s's cancellation. */
void weft__scope_note_observed(struct weft_scope *s);
/* Push s on t's scope stack / pop it (owner task only). */
void weft__scope_push(struct weft_task *t, struct weft_scope *s);
void weft__scope_pop(struct weft_task *t, struct weft_scope *s);
/* Drop one reference of a heap scope; frees at zero.  Any thread. */
void weft__scope_unref(struct weft_scope *s);
/* Called by the I/O thread when s's deadline passed. */
void weft__scope_deadline_fired(struct weft_scope *s);
/* Internal create+enter used by weft_sleep_until (no user visibility). */
int weft__scope_open_internal(struct weft_task *t, struct weft_scope **out,
	int64_t deadline, unsigned flags);
/* Exit s (innermost on t) without the misuse checks: task-exit cleanup of
 * a user scope left entered. */
void weft__scope_force_exit(struct weft_task *t, struct weft_scope *s);
/* Exit + destroy an internal scope; returns whether its own deadline
 * cancelled it. */
bool weft__scope_close_internal(struct weft_task *t, struct weft_scope *s);

#endif
