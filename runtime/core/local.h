/* Task-local context: the internal side (see local.c for the design).
 *
 * Offload threads (weft_to_thread) propagate the sending task's
 * context like this:
 *
 *     // on the sending task, before handing the work over
 *     struct weft_context *c = weft__local_capture();   // +1, may be NULL
 *     ... hand (fn, arg, c) to the thread ...
 *     // on the plain thread, around fn
 *     weft__local_attach(c);
 *     fn(arg);                // weft_local_get sees the task's bindings
 *     weft__local_detach();
 *     weft__local_context_unref(c); // when the work record is done with it
 *
 * The attached context is borrowed: the work record keeps its reference
 * while the thread runs fn. */
#ifndef WEFT_RUNTIME_CORE_LOCAL_H
#define WEFT_RUNTIME_CORE_LOCAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft/local.h"

struct weft_task;

/* One binding, and the context whose innermost binding it is: an
 * immutable node of a chain shared by every snapshot that contains it. */
struct weft_context {
	/* The binder task's hold (until unbind or its end) + one per
	 * snapshot (tasks, captures) + one per inner node (`parent`).
	 * acq_rel decrement: the last dropper sees the value's last writes
	 * before it calls the destructor. */
	atomic_int refs;
	struct weft_context *parent; /* outer binding (holds a ref) */
	struct weft_local_key *key;  /* holds a ref on the key */
	void *value;
};

struct weft_local_key {
	atomic_int refs; /* creator + one per binding node */
	void (*dtor)(void *value);
};

/* Adds a reference (c is not NULL).  relaxed: a reference is only added
 * by a holder of another one.  Any thread. */
static inline void weft__local_context_ref(struct weft_context *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* Drops a reference; the last one destroys the node (its key's dtor
 * runs on the value) and drops the node's references on its parent and
 * key.  NULL is ignored.  Any thread. */
void weft__local_context_unref(struct weft_context *c);

/* The context a spawn option designates: NULL for the empty context
 * (weft_context_capture's placeholder for it).  Any thread. */
struct weft_context *weft__local_context_norm(struct weft_context *c);

/* The calling task's context with a new reference, or NULL (empty).
 * On a plain thread, the attached context (see above).  Any thread. */
struct weft_context *weft__local_capture(void);

/* Makes c (borrowed; NULL = the empty context) the context that
 * weft_local_get and weft_context_capture read on the calling plain
 * thread, until weft__local_detach.  Thread (both): a plain thread, never
 * a weft worker. */
void weft__local_attach(struct weft_context *c);
void weft__local_detach(void);

#endif
