/* Task groups: the internal structure (see group.c for the essay). */
#ifndef WEFT_RUNTIME_CORE_GROUP_H
#define WEFT_RUNTIME_CORE_GROUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/spin.h"
#include "core/cancel.h"
#include "weft/group.h"

struct weft_task;
struct weft_error;
struct weft_context;

/* Spawn flag set by weft_group_spawn_literal: opts->name is a string
 * literal (see weft__task_create_lit).  Reserved in weft/group.h. */
#define WEFT__SPAWN_LITERAL_NAME 0x80000000u

/* Join word: CLOSED in bit 0, JOINING in bit 1, and above them a signed
 * count (WEFT__GROUP_ONE per child): live children and pending starts,
 * minus the owner's owed children that ended before the join added them
 * (group.c, "Owed children"), so below 0 only before JOINING.  CLOSED
 * once JOINING and the count reached 0. */
#define WEFT__GROUP_CLOSED (UINT64_C(1) << 0)
#define WEFT__GROUP_JOINING (UINT64_C(1) << 1)
#define WEFT__GROUP_ONE (UINT64_C(1) << 2)
/* The signed count of a join word. */
static inline int64_t weft__group_count(uint64_t word)
{
	return (int64_t)word >> 2;
}

/* A task waiting for a child slot of a capped group (group.c,
 * "Budgets"): on the waiter's stack, listed FIFO under the budget's
 * lock. */
struct weft__slot_waiter {
	struct weft__slot_waiter *next;
	struct weft_task *task;
	uint64_t gen; /* the waiter's park generation */
	bool granted; /* a slot was handed to it (under the lock) */
};

/* The budget of a group opened with caps or WEFT_GROUP_CPU_TIME
 * (group.c, "Budgets"), inside the group record; used only then. */
struct weft__group_budget {
	struct weft_group *g;	       /* whose caps these are */
	struct weft__group_budget *up; /* nearest capped ancestor's */
	size_t max_children;	       /* 0: no child cap */
	size_t stack_max;	       /* 0: no stack cap */
	/* The subtree's run time is counted (WEFT_GROUP_CPU_TIME here or on
	 * a budget above). */
	bool acct;
	_Atomic size_t stack_used; /* CAS, relaxed (a counter) */
	/* Under lock: children holding a slot, and the FIFO of waiters.
	 * Waiters exist only while live == max_children. */
	weft__spin_t lock;
	size_t live;
	struct weft__slot_waiter *head, *tail;
};

/* A child its group's owner spawned and nobody has started yet: what
 * the task record will be made from (core/frame.c, the essay).  In the
 * group record, one per owner spawn up to WEFT__GROUP_FRAMES, then in
 * chunks (struct weft__frame_chunk); each used once per life of the
 * group; written by the owner before the deque publishes it, read by
 * whoever takes it from a deque. */
struct weft__frame {
	weft_fn fn;
	void *arg;
	struct weft_group *g;
	const char *name; /* a string literal, or NULL ("task") */
	/* The spawner's task-local context (rule 36), one reference, or
	 * NULL: moved into the task record that runs it. */
	struct weft_context *ctx;
	unsigned flags; /* WEFT_SPAWN_* */
	/* Set by its taker (core/frame.c), cleared by the owner before the
	 * push (a chunk's frames are set when it is made): introspection
	 * counts the frames not yet taken (relaxed: a snapshot's count,
	 * which orders nothing). */
	atomic_bool taken;
	/* The chunk holding it; set only in a chunk's frames (a frame of
	 * the group record's is known by its address: weft__frame_chunk). */
	struct weft__frame_chunk *chunk;
};

/* What a taker keeps of a frame (weft__frame_take): read once, since the
 * frame may be gone as soon as it is taken (its chunk freed). */
struct weft__frame_v {
	weft_fn fn;
	void *arg;
	struct weft_group *g;
	const char *name;
	struct weft_context *ctx;
	unsigned flags;
};

/* Frames past a group record's own (core/frame.c, "Chunks"): made by the
 * owner when its spawns outgrow frames[], listed in the group newest
 * first (next, prev: under the group scope's lock), freed by the taker
 * of the last frame once the owner has sealed the chunk, or by the
 * join. */
struct weft__frame_chunk {
	struct weft__frame_chunk *next, *prev;
	/* WEFT__FRAME_CHUNK_OPEN minus the frames taken, until the owner
	 * seals the chunk (full) by subtracting OPEN - its frames: whoever
	 * brings it to 0 frees the chunk.  acq_rel RMWs: each taker's reads
	 * of its frame come before its decrement, and the freer's acquire
	 * sees them all. */
	atomic_uint left;
	struct weft__frame frames[];
};
#define WEFT__FRAME_CHUNK_OPEN (1u << 30)

/* A chunk's size: 292 frames of 56 bytes. */
#define WEFT__FRAME_CHUNK_BYTES 16384
#define WEFT__FRAME_CHUNK_FRAMES                                               \
	((WEFT__FRAME_CHUNK_BYTES - sizeof(struct weft__frame_chunk)) /        \
		sizeof(struct weft__frame))

/* Frames per group record: fork-join nodes spawn few children each (B1
 * one, B2 ten); the spawns past it take frames in chunks (core/frame.c,
 * "Chunks").  16 and not 8: B2 under callgrind at 1 worker, 7,442M -> 6,728M instructions
 * (its two spawns past 8 per node took records then); the frames are
 * in the record's tail, touched only when used. */
#define WEFT__GROUP_FRAMES 16

/* See weft_group's xcredit. */
#define WEFT__GROUP_XPAD 56

struct weft_group {
	/* The first 64 bytes: the join word and what only the owner or a
	 * failing child writes next to it.  The word takes a locked
	 * read-modify-write from every child's end, so what a spawner from
	 * outside reads per spawn (owner, rt, bud) starts at offset 64: with
	 * the record 16-byte aligned (malloc), no field at 64 or beyond can
	 * share the word's cache line (B3 external: the producer's read of
	 * owner missed at every child's end while it sat beside the word). */
	_Atomic uint64_t word; /* see above; any thread */
	/* Owner's park generation while joining: written before JOINING is
	 * set (release), read by the child that closes the group after its
	 * acquire CAS. */
	uint64_t owner_gen;
	/* Children the owner spawned without counting them in `word`
	 * (group.c, "Owed children"), not yet run at its join; owner
	 * only. */
	int64_t owed;
	/* Failures, under errors_lock: a list of leaves in arrival order and
	 * how many could not be recorded for lack of memory. */
	weft__spin_t errors_lock;
	struct weft__leaf *leaves_head, *leaves_tail;
	size_t leaves;
	size_t lost;
	struct weft_task *owner; /* fixed */
	struct weft_runtime *rt;
	atomic_bool failed; /* first failure seen (acq_rel xchg) */
	void *open_site;    /* return address of weft_group_open */
	/* The owner's reference (dropped when join ends) plus one per
	 * weft_group_retain; the group is freed at zero (acq_rel). */
	atomic_int refs;
	bool joined; /* owner only */
	/* Opened with WEFT_GROUP_DEADLINE: deadline_scope is set.  Owner
	 * only (in what was padding, so the clear does not grow). */
	bool has_deadline;
	/* Counted as an outside waker of the real clock's asleep report
	 * (timer.h, `outside`): retained while open.  Set by a retain that
	 * finds none outstanding, cleared by the release of the last one or
	 * by the join's end; whoever clears it (exchange: relaxed, the flag
	 * only elects who drops the count) drops the count.  Cleared at
	 * open (WEFT__GROUP_CLEAR). */
	atomic_bool outside;
	/* Budgets (group.c, "Budgets"), fixed at open: the caps every child
	 * must be charged to: the group's own (budget_rec, then bud->g == g)
	 * if it has some, else the nearest capped ancestor's (NULL for
	 * every group outside a capped subtree, so that a spawn pays one
	 * branch). */
	struct weft__group_budget *bud;
	/* Frames used this life: written by the owner (cleared at open),
	 * read by introspection under the scope locks (relaxed). */
	atomic_uint nframes;
	/* Last: a recycled record is cleared only up to the scope's cold
	 * tail (WEFT__GROUP_CLEAR). */
	struct weft_scope scope; /* the group's cancel scope */
	/* Beyond the clear (they must survive reuse, or be set with atomic
	 * stores at open): */
	/* Generation: bumped each time the record is freed back to the
	 * record caches, so a handle of an earlier life (tagged with it,
	 * records.h) is detected.  Written by the last dropper, read by
	 * handle checks (relaxed, see weft__group_from_handle). */
	_Atomic uint32_t gen;
	/* References taken with weft_group_retain and not yet released (also
	 * counted in refs): a release without a retain is refused instead of
	 * dropping the owner's reference.  CAS / fetch_add, relaxed. */
	atomic_int retains;
	/* The group's own caps, set up at open only when it has some
	 * (group.c, "Budgets"). */
	struct weft__group_budget budget_rec;
	/* With has_deadline: the private deadline scope of
	 * WEFT_GROUP_DEADLINE, entered just outside `scope`.  Owner only. */
	struct weft_scope *deadline_scope;
	/* Run time of the subtree in ticks (base/tick.h, group.c "Run
	 * time"), when it is counted (bud->acct; zeroed at open only then,
	 * so outside the clear): folded by children that are not owed
	 * inline (fetch_add); and on the owner's stack by the owner's inline
	 * stretch at its join and the owed children it runs inline, one
	 * after the other (load + store: one writer at a time, ordered by
	 * the switches between them).  Relaxed: counters, read by anyone. */
	_Atomic uint64_t cpu_shared;
	_Atomic uint64_t cpu_owed;
	/* Chunks of frames past frames[] (core/frame.c, "Chunks"): the
	 * list, newest first, changed and walked under scope.lock; the one
	 * the owner fills and how many of its frames are used (owner only;
	 * never freed by a taker: it is not sealed).  Set at open. */
	struct weft__frame_chunk *fchunks;
	struct weft__frame_chunk *fchunk_cur;
	unsigned fchunk_used;
	/* Written at each owner spawn that takes a frame (nframes). */
	struct weft__frame frames[WEFT__GROUP_FRAMES];
	/* Credit of the spawners from outside (group.c, "Credit"): counts
	 * already added to `word` that a spawn which is not the owner's
	 * takes one at a time, in units of WEFT__GROUP_XC_ONE, and
	 * WEFT__GROUP_XC_REVOKED once the join took what was left.  0 at
	 * open without a store there: set for a new record, and back to 0
	 * by the join that revoked it, once closed.  A read-modify-write
	 * per outside spawn (acq_rel), so alone on its cache line: padded by 56 bytes on each
	 * side, which keeps any other field off the line for a record
	 * aligned to 16 bytes (padding, not _Alignas: the record comes from
	 * malloc). */
	char xcredit_before[WEFT__GROUP_XPAD];
	_Atomic uint64_t xcredit;
	char xcredit_after[WEFT__GROUP_XPAD];
};

/* The credit's bits, and how many counts an outside spawn adds to the join
 * word at once (one for itself, the rest as credit; group.c, "Credit"). */
#define WEFT__GROUP_XC_REVOKED (UINT64_C(1) << 0)
#define WEFT__GROUP_XC_ONE (UINT64_C(1) << 1)
#define WEFT__GROUP_XC_BATCH 64

/* g's own caps, or NULL. */
static inline struct weft__group_budget *weft__group_own_budget(
	struct weft_group *g)
{
	return g->bud != NULL && g->bud->g == g ? g->bud : NULL;
}

#define WEFT__GROUP_CLEAR                                                      \
	(offsetof(struct weft_group, scope) + WEFT__SCOPE_CLEAR)

/* weft_group_retain and weft_group_release for the references weft takes
 * itself (a portal's group, a shutdown controller's): not counted in the
 * runtime's user_refs, which make weft_runtime_destroy refuse.  Same
 * errors and threads. */
int weft__group_retain(weft_group_t *gh);
void weft__group_release(weft_group_t *gh);

/* A child (or the owner body) failed: record its leaf and cancel g on the
 * first failure.  Any thread. */
void weft__group_child_failed(struct weft_group *g, struct weft_task *t);
/* A child ended: drop the count; the last one after JOINING wakes the
 * owner.  Must be the child's last touch of g.  Thread: any (the child's
 * worker, at its end). */
void weft__group_child_done(struct weft_group *g);
/* f's child could not get a task record (rc, -ENOMEM): it fails without
 * running and ends, an owed child that its owner did not run inline:
 * g hears of it as it hears of a failed child (a leaf, or a lost failure
 * without memory for one) and is cancelled if it is the first.  Thread:
 * a worker that took f from a deque. */
void weft__group_frame_failed(const struct weft__frame_v *f, int rc);
/* A frame of chunk c (of group g) was taken and read: frees c if it was
 * the last one of a sealed chunk.  Thread: the taker. */
void weft__group_chunk_put(struct weft_group *g, struct weft__frame_chunk *c);
/* Frames of g spawned and not yet taken (core/frame.c): children that
 * are not tasks yet, for introspection.  Thread: any, holding g alive
 * (the dump: under the scope locks). */
size_t weft__group_frames_pending(struct weft_group *g);
/* A child of g (that is, t, with g->bud set) ended: gives back its child
 * slot and stack charge (group.c, "Budgets").  Before child_done.
 * Thread: t's finisher. */
void weft__group_budget_end(struct weft_group *g);
/* Folds t's run time so far (t->cpu) into its group and clears it
 * (group.c, "Run time"); declared in task.h.  Thread: t itself, running
 * or switching out. */
/* Folds t's run time at its end into g, its group.  Thread: t's
 * finisher, before child_done. */
void weft__group_cpu_end(struct weft_group *g, struct weft_task *t);

/* g's run-time total so far, in ticks (the dump).  Thread: any, while g
 * is alive. */
uint64_t weft__group_cpu_ticks(const struct weft_group *g);
/* g's run time is counted: exactly (its subtree was opened with
 * WEFT_GROUP_CPU_TIME) or sampled (the runtime's sampler is on).
 * Thread: any, while g is alive. */
bool weft__group_cpu_counted(const struct weft_group *g);

/* Cancel, join and free every group still open on t's scope stack (task
 * exit without join); returns WEFT_EMISSINGJOIN if there was one.
 * Thread: t itself at its end, a weft fiber (the joins park). */
WEFT_FIBER_FN int weft__group_reap_unjoined(struct weft_task *t);

#endif
