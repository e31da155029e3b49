/* Introspection's collection side, shared with the renderer (dump.c):
 * the dump's nodes and the call that fills them (see inspect.c for the
 * protocol that makes reading live tasks safe).
 * Thread: any, including plain threads, while the runtime lives. */
#ifndef WEFT_RUNTIME_CORE_INSPECT_H
#define WEFT_RUNTIME_CORE_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/task.h"
#include "weft/runtime.h"

enum weft__inspect_kind {
	WEFT__INSPECT_TASK,
	WEFT__INSPECT_GROUP,
	WEFT__INSPECT_SCOPE,
	WEFT__INSPECT_SLEEP
};

/* One node of the dump, copied under the scope locks. */
struct weft__inspect_node {
	uint64_t id;
	uint64_t group_id;     /* task: its group; group: its owner's id */
	int64_t deadline;      /* scopes: own deadline */
	int64_t eff_deadline;  /* effective; a task: its innermost scope's */
	const char *parked_on; /* task */
	int parent;	       /* node index, -1 at the top */
	int first_child, last_child, next_sib;
	int worker;	      /* task */
	unsigned inner_depth; /* task: depth of its innermost scope so far */
	uint8_t kind;
	bool cancel_called; /* task: cancelling it was requested */
	bool cancelled;	    /* effectively (task: innermost scope) */
	bool shield;	    /* scope shielded / task behind a shield */
	bool linked;	    /* task: found in the scope tree */
	char name[WEFT__TASK_NAME_MAX];
};

struct weft__inspect_dump {
	struct weft__inspect_node *v;
	size_t n, cap;
	bool oom;
};

/* rt, or the calling task's runtime when rt is NULL (NULL when neither). */
struct weft_runtime *weft__inspect_runtime(weft_runtime_t *rt);

/* Collects the whole tree of rt into d (zeroed by the caller; d->v is the
 * caller's to free, also on failure) and counts its tasks.  0 or
 * -ENOMEM.  Takes the scope locks of the walked path and rt->insp_lock;
 * formats nothing. */
int weft__inspect_collect(struct weft_runtime *rt, struct weft__inspect_dump *d,
	size_t *ntasks_out);

#endif
