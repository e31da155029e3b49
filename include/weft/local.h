/* Task-local context (docs/semantics.md rule 36; Trio/AnyIO context
 * propagation, asyncio's contextvars, Java's ScopedValue).
 *
 * A key names a slot; a task's context maps keys to values.  A spawned
 * task starts with a snapshot of the context of the task that called
 * spawn (not of the group's owner), taken at spawn time: later bindings in
 * the spawner are not seen by the child, and the child's are not seen by
 * the spawner.  weft_spawn_opts_t.context (a captured context) or the flag
 * WEFT_SPAWN_EMPTY_CONTEXT replace the snapshot for one spawn.  The root
 * task of weft_runtime_run (and any runtime service task) starts with the
 * empty context.
 *
 * A task changes its context only in a nested scope: weft_local_bind
 * shadows a key until the matching weft_local_unbind, and bindings are
 * undone in LIFO order (like cancel scopes).  Bindings still in place
 * when the task returns are dropped with it.
 *
 * Contexts are immutable, shared chains of bindings: a snapshot is one
 * pointer plus, when anything is bound, one reference increment; binding
 * allocates one node; a lookup walks the bindings innermost first (cost
 * proportional to the number of bindings in force, which is meant to be
 * small).
 *
 * Typical use:
 *     static weft_local_key_t *request_id;      // weft_local_key_create
 *     weft_local_token_t tok;
 *     weft_local_bind(request_id, (void *)(uintptr_t)42, &tok);
 *     weft_group_spawn(g, handler, arg);        // handler sees 42
 *     weft_local_unbind(&tok);
 */
#ifndef WEFT_LOCAL_H
#define WEFT_LOCAL_H

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

typedef struct weft_local_key weft_local_key_t;
/* A captured context (also declared in weft/group.h). */
typedef struct weft_context weft_context_t;

/* The undo record of one binding; lives wherever the caller likes (a
 * local variable of the binding frame, typically).  Filled by
 * weft_local_bind, cleared by weft_local_unbind; its fields are private. */
typedef struct weft_local_token {
	void *priv_node;
	void *priv_task;
} weft_local_token_t;

/* What it does: creates a key.  dtor (may be NULL) is called once for
 * every value bound with this key, when the last context holding that
 * binding is gone (the binder unbound it and every task that got it in a
 * snapshot ended or dropped it); it may run on any worker or thread that
 * drops that last reference and must not block.
 * Ownership: *out is the caller's; weft_local_key_destroy drops it.
 * Errors: -EINVAL (NULL out), -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_local_key_create(weft_local_key_t **out,
	void (*dtor)(void *value));

/* What it does: gives up the creator's hold on key.  Bindings that still
 * exist keep working for the tasks that have them, and their values are
 * still destroyed with dtor; the key's memory goes with the last one.
 * Ownership: the caller gives up key and must not use it afterwards
 * (bind, get).
 * Errors: -EINVAL (NULL key).  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_local_key_destroy(weft_local_key_t *key);

/* What it does: binds key to value in the calling task's context until
 * weft_local_unbind(tok): lookups in this task, and in tasks it spawns
 * meanwhile, see value.  Shadows an outer binding of the same key.
 * Ownership: value passes to the binding (dtor is called on it later);
 * on failure it stays the caller's.  *tok is the caller's and must be
 * handed to weft_local_unbind by the same task.
 * Errors: -EINVAL (NULL key or tok), WEFT_ENOTFIBER, -ENOMEM (nothing
 * bound).  Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_local_bind(weft_local_key_t *key, void *value,
	weft_local_token_t *tok);

/* What it does: undoes the binding made with tok, which must be the
 * innermost binding still in place (LIFO), restoring what the task saw
 * before it.  Snapshots already taken (spawned children) keep it.
 * Errors: -EINVAL (NULL or already unbound tok), WEFT_ENOTFIBER,
 * WEFT_EMISUSE (tok was bound by another task), WEFT_EMISNEST (a binding
 * made after tok is still in place: nothing is done; unbind that first).
 * Checkpoint: no.  Threads: weft fiber (the task that bound tok). */
WEFT_EXTERN int weft_local_unbind(weft_local_token_t *tok);

/* What it does: looks key up in the calling task's context (innermost
 * binding first) and stores its value in *value.  On a plain thread it
 * reads the context attached to that thread by weft (an offload thread
 * sees the context of the task that sent the work).
 * Ownership: the value stays owned by the binding; it stays valid while
 * the binding can be seen (until the caller unbinds it or returns).
 * Errors: -EINVAL (NULL key or value), -ENOENT (not bound; *value =
 * NULL), WEFT_ENOTFIBER (plain thread without an attached context).
 * Checkpoint: no.  Threads: weft fiber, or a thread running work for one. */
WEFT_EXTERN int weft_local_get(const weft_local_key_t *key, void **value);

/* What it does: captures the calling task's current context (its
 * bindings as they are now), for weft_spawn_opts_t.context.  Capturing
 * the empty context gives a valid (empty) context too.
 * Ownership: *out is a new reference the caller drops with
 * weft_context_release.
 * Errors: -EINVAL (NULL out), WEFT_ENOTFIBER (plain thread without an
 * attached context).  Checkpoint: no.
 * Threads: weft fiber, or a thread running work for one. */
WEFT_EXTERN int weft_context_capture(weft_context_t **out);

/* What it does: drops a reference from weft_context_capture (key
 * destructors of bindings nobody holds any more run here).
 * Ownership: the caller gives up that reference.
 * Errors: NULL is ignored.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_context_release(weft_context_t *ctx);

WEFT_END_DECLS

#endif
