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

/* {======================================================= wait objects
 *
 * What a parked task waits on, as an object (the park records it:
 * weft__task_park_commit_obj), and how the dump describes it.  The dump
 * reads the object only while it holds the waiting task pinned in the
 * park that recorded it (inspect.c, "Reading a parked task"): the task
 * is then inside the wait and cannot leave it, and every kind below
 * keeps its object alive while a task is inside a wait on it (a Lock,
 * Event, Semaphore, CapacityLimiter and Condition count their waiters
 * until they are done with the object and refuse destroy meanwhile; a
 * channel end in use by a call keeps its channel; a group lives until
 * its owner's join returns; a sleep's scope and an I/O operation are in
 * the waiting frame; a task record is type-stable; an offload call is
 * freed by its caller after the wait, or by its thread once the caller
 * abandoned it and left the wait).  So a describer may
 * read the object, under its own lock, but must not keep a pointer. */

enum weft__wait_kind {
	WEFT__WAIT_NONE,
	WEFT__WAIT_LOCK,      /* on: its wait queue (sync/lock.c) */
	WEFT__WAIT_EVENT,     /* on: its wait queue */
	WEFT__WAIT_CHAN_SEND, /* on: the channel's sendq */
	WEFT__WAIT_CHAN_RECV, /* on: the channel's recvq */
	WEFT__WAIT_SEMAPHORE, /* on: its wait queue */
	WEFT__WAIT_LIMITER,   /* on: its wait queue */
	WEFT__WAIT_CONDITION, /* on: its wait queue */
	WEFT__WAIT_GROUP,     /* on: the group being joined */
	WEFT__WAIT_IO,	      /* on: the I/O operation (io/ioop.h) */
	WEFT__WAIT_SLEEP,     /* on: the sleep's private scope */
	WEFT__WAIT_TASK,      /* on: the task record waited for */
	WEFT__WAIT_OFFLOAD,   /* on: the weft_to_thread call (thread/) */
	WEFT__WAIT_SOCK,      /* on: a socket wait's description (io/) */
	WEFT__WAIT_NKINDS
};
/* Low bits of weft_task.insp_since that hold the kind. */
#define WEFT__WAIT_KIND_BITS 4
_Static_assert(WEFT__WAIT_NKINDS <= 1 << WEFT__WAIT_KIND_BITS,
	"wait kinds do not fit their bits");

/* What a describer found out about one wait object. */
struct weft__wait_desc {
	const void *obj; /* the object as its user knows it */
	/* The id it names: a Lock's owner task, the task waited for, the
	 * group joined; 0: none. */
	uint64_t ref_id;
	int64_t deadline; /* a sleep's; WEFT_FOREVER: none */
	/* A function the wait runs (weft_to_thread's), which the dump
	 * names with the frames' symbolizer; NULL: none. */
	const void *code;
	char text[112]; /* more, as "key=value ..." (may be empty) */
};

/* Fills d (zeroed by the caller) about the object `on` of its kind.
 * Thread: any, while the waiter is pinned (see above); may take the
 * object's spin lock, never blocks otherwise. */
typedef void (
	*weft__wait_describe_fn)(const void *on, struct weft__wait_desc *d);

/* The describers of the kinds that live above core/, by kind (NULL
 * where core/ describes the kind itself): defined by the composition
 * root (runtime.c), which sees every layer. */
extern const weft__wait_describe_fn weft__wait_describers[WEFT__WAIT_NKINDS];

/* The kind's name ("lock", "channel send", ...; "none" when out of
 * range), as the dump and the trace print it.  Thread: any. */
const char *weft__wait_kind_name(unsigned kind);

/* Fills w (zeroed by the caller) about `on` of kind `kind`, with the
 * describer of its kind.  Thread: any, while the waiter cannot leave the
 * wait (a pinned task, or a task that is still switching out of its park:
 * core/trace.c). */
void weft__inspect_wait_describe(unsigned kind, const void *on,
	struct weft__wait_desc *w);

/* The resume side of the pin: called by the worker that switches t in
 * when it found t pinned; returns once the dump let go of it. */
void weft__inspect_wait_unpinned(struct weft_task *t);

/* Whether the pins of rt's dumps may use the asymmetric fence
 * (inspect.c, "Reading a parked task"): registers the process for
 * expedited private membarrier(2) and returns true if the kernel has
 * it; false (the switch-in then pays the seq_cst pair) without it, or
 * under ThreadSanitizer, which does not model it.  Thread: rt's
 * creator, before the workers start. */
bool weft__inspect_asym_init(void);

/* }======================================================= */

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
	/* Task: filled only when the dump held it pinned in a park
	 * (inspect.c): how long it had been parked, what it waits on, and
	 * its stack's return addresses, innermost first (pcs: heap, npcs of
	 * them), then their text (bt: heap, one line per frame). */
	bool pinned;
	/* Held parked in a sleep that gave its stack back: no frames. */
	bool stack_released;
	uint8_t wait_kind;
	int64_t parked_ns;
	struct weft__wait_desc wait;
	void **pcs;
	int npcs;
	char *bt;
	/* Group: the return address of weft_group_open; task: the function
	 * its wait runs (wait.code).  And its text. */
	void *open_site;
	char *site;
	/* Group: its run time so far in ticks when counted (has_cpu;
	 * core/group.c, "Run time"), and its caps when it has some
	 * (has_budget): live children and the cap (0: none), stack bytes
	 * charged and the cap (0: none). */
	uint64_t cpu_ticks;
	/* Group: children spawned as frames and not started yet
	 * (core/frame.c). */
	size_t pending;
	bool has_cpu, has_budget;
	size_t live, max_children, stack_used, stack_max;
	/* Task: the text of its note (weft__inspect_note_*), heap, or
	 * NULL. */
	char *note;
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

/* {======================================================= notes
 *
 * A note: a line of text a layer above core/ attaches to a task for the
 * dump to print with it (a supervisor's restart counts: sync/supervise.c).
 * The note lives in its owner's memory and is listed on the runtime
 * (rt->notes, under rt->notes_lock); the owner changes its text and task
 * only through the calls below, and the dump copies the text under the
 * same lock, so it never reads a note that is being changed or that has
 * been removed, and calls nothing of the owner's.  Listed notes are few
 * (one per supervised child): the dump looks each task up in the list. */

#define WEFT__NOTE_MAX 192

struct weft__inspect_note {
	struct weft__inspect_note *next, *prev; /* under rt->notes_lock */
	uint64_t task_id; /* the task whose dump node shows it; 0: none */
	char text[WEFT__NOTE_MAX];
};

/* Lists n (zeroed by the caller, or removed) on rt with no task and an
 * empty text.  Thread: any; never blocks (a spin lock held for copies). */
void weft__inspect_note_add(struct weft_runtime *rt,
	struct weft__inspect_note *n);
/* Points listed n at the task task_id (0: none) with text (cut at
 * WEFT__NOTE_MAX - 1 bytes; NULL keeps the text).  Thread: any. */
void weft__inspect_note_set(struct weft_runtime *rt,
	struct weft__inspect_note *n, uint64_t task_id, const char *text);
/* Unlists n; afterwards no dump reads it.  Thread: any. */
void weft__inspect_note_remove(struct weft_runtime *rt,
	struct weft__inspect_note *n);

/* }======================================================= */

/* Frees what weft__inspect_collect left in d (d->v included). */
void weft__inspect_dump_free(struct weft__inspect_dump *d);

#endif
