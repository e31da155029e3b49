/* Frames: children spawned by their group's owner that are not tasks yet
 * (frame.c holds the essay). */
#ifndef WEFT_RUNTIME_CORE_FRAME_H
#define WEFT_RUNTIME_CORE_FRAME_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/alloc.h"
#include "base/common.h"
#include "base/id.h"
#include "core/cancel.h"
#include "core/group.h"
#include "core/idle.h"
#include "core/sched.h"
#include "core/task.h"
#include "runtime.h"

/* A deque item is a task record, or a frame with bit 0 set (records and
 * frames are pointer-aligned). */
static inline bool weft__frame_is(const void *item)
{
	return ((uintptr_t)item & 1u) != 0;
}

static inline struct weft__frame *weft__frame_of(void *item)
{
	return (struct weft__frame *)((uintptr_t)item - 1u);
}

static inline void *weft__frame_item(struct weft__frame *f)
{
	return (void *)((uintptr_t)f | 1u);
}

/* Queues f on the calling worker's deque, tagged; -ENOMEM when the
 * deque cannot grow (nothing was queued).  Notifies idle workers only
 * when the deque goes from empty to not empty, as weft__sched_spawn
 * does (sched.c).  Inline: every owner spawn (B1, B2).  Thread: a task
 * of f's runtime (its group's owner). */
static inline int weft__frame_push(struct weft__frame *f)
{
	weft__worker_t *w = weft__sched_current();
	bool had = weft__deque_size_approx(&w->deque) != 0;
	if (weft__deque_push(&w->deque, weft__frame_item(f)) < 0)
		return -ENOMEM;
	weft__stats_inc(&w->stats.spawned);
	if (!had)
		weft__idle_notify(w->rt);
	return 0;
}

/* The task record that runs f, for a worker that took f from a deque to
 * run it as a fiber (a thief, or a pick of any worker): an owed child
 * not run by its owner, which counts its group's word down at its end
 * (core/group.c, "Owed children").  NULL when no record could be had:
 * f's child has then failed without running and ended
 * (weft__group_frame_failed).  Thread: a worker of f's runtime. */
struct weft_task *weft__frame_task(struct weft__frame *f);

/* item as a task to run: item itself, or its frame's record (NULL as
 * above). */
static inline struct weft_task *weft__frame_item_task(void *item)
{
	if (WEFT__LIKELY(!weft__frame_is(item)))
		return item;
	return weft__frame_task(weft__frame_of(item));
}

/* What every new child record t of g gets before it is published, from
 * a frame or from a spawn's record path (core/group.c): its group,
 * flags, the context reference ctx (moved in) and introspection's group
 * and parent ids (relaxed: see insp_id; the owner is alive while g is
 * open).  Inline: B2's every child.  Thread: the record's maker. */
static inline void weft__frame_child_init(struct weft_group *g,
	struct weft_task *t, unsigned flags, struct weft_context *ctx)
{
	t->group = g;
	t->spawn_flags = flags;
	t->ctx = ctx;
	atomic_store_explicit(&t->insp_group_id, g->scope.id,
		memory_order_relaxed);
	atomic_store_explicit(&t->insp_parent_id, g->owner->id,
		memory_order_relaxed);
}

/* A spawned child's place under g's scope (rule 28; a start()'s child
 * runs under its caller's scopes until started() instead): the child
 * links itself lazily (weft__task_link_root), and until then pulls its
 * cancellation through it (core/cancel.c, "Lazy links").  Thread: the
 * record's maker, before it is published. */
static inline void weft__frame_child_place(struct weft_group *g,
	struct weft_task *t)
{
	t->root_scope.parent = &g->scope;
	weft__scope_pull_init(&g->rt->cancel_gen, &t->root_scope, &g->scope);
}

/* The chunk holding f, a frame of group g, or NULL for one of g's own. */
static inline struct weft__frame_chunk *
weft__frame_chunk(const struct weft__frame *f, const struct weft_group *g)
{
	/* One subtraction and one compare: the record's frames are one
	 * array. */
	return (uintptr_t)f - (uintptr_t)g->frames < sizeof g->frames
		? NULL
		: f->chunk;
}

/* f, of group g, was read by its taker for the last time: marks it taken
 * (relaxed: see taken) and gives it back to its chunk, which may free it
 * (frame.c, invariant 4). */
static inline void weft__frame_done(struct weft__frame *f, struct weft_group *g)
{
	struct weft__frame_chunk *c = weft__frame_chunk(f, g);
	atomic_store_explicit(&f->taken, true, memory_order_relaxed);
	if (WEFT__UNLIKELY(c != NULL))
		weft__group_chunk_put(g, c);
}

/* Takes f for its taker: copies what the child needs into v, then
 * weft__frame_done: f is not read after this. */
static inline void weft__frame_take(struct weft__frame *f,
	struct weft__frame_v *v)
{
	v->fn = f->fn;
	v->arg = f->arg;
	v->g = f->g;
	v->name = f->name;
	v->ctx = f->ctx;
	v->flags = f->flags;
	weft__frame_done(f, v->g);
}

/* Records a worker keeps for inline children: deeper nesting than this
 * gives the rest back to the caches. */
#define WEFT__FRAME_POOL_MAX 64

/* A pooled record t starts its next life as f's child: what
 * weft__task_create_lit, weft__frame_child_init and _place do, without
 * the clear of the record head, whose fields a clean end left as a clear
 * would (frame.c, invariant 3) or are set here. */
static inline struct weft_task *weft__frame_reuse(weft__worker_t *w,
	struct weft_task *t, const struct weft__frame *f)
{
	struct weft_group *g = f->g;
	/* release fence: as in weft__task_create_lit (the previous life's
	 * insp_id = 0 before the writes below). */
	WEFT__INSP_FENCE(memory_order_release);
	t->fn = f->fn;
	t->arg = f->arg;
	/* Of the flags, a pooled record can differ from a new one only in
	 * these: ending (every end sets it), coop_used (its blocking
	 * calls), fail_collateral (a failure without a message), acct and
	 * owed (a record-path child of a budgeted group, or not owed); the
	 * others are false at every pooled end (invariant 3). */
	t->fail_collateral = false;
	t->owed = true;
	t->acct = false;
	t->coop_used = 0;
	t->ending = false;
	atomic_init(&t->state, WEFT_TASK_PENDING);
	t->rc = 0;
	t->result = NULL;
	t->cpu = 0;
	t->id = weft__id_next_in(&w->ids);
	atomic_store_explicit(&t->insp_worker, (int)w->index,
		memory_order_relaxed);
	/* The name: as weft__task_create_lit (relaxed: see name_lit). */
	const char *name = f->name ? f->name : "task";
	if (atomic_load_explicit(&t->name_lit, memory_order_relaxed) != name) {
		weft__task_name_store(t, name);
		atomic_store_explicit(&t->name_lit, name, memory_order_relaxed);
	}
	/* The root scope: fini'd and unlinked at the end of the last life
	 * (weft__frame_inline_put). */
	weft__scope_renew_embedded(&t->root_scope, WEFT__SCOPE_TASK);
	t->root_scope.id = t->id;
	atomic_init(&t->cur_scope, &t->root_scope);
	weft__frame_child_init(g, t, f->flags, f->ctx);
	weft__frame_child_place(g, t);
	weft__alloc_census_add(WEFT__CENSUS_TASK, 1);
	/* release: live for snapshots (as in weft__task_create_lit). */
	atomic_store_explicit(&t->insp_id, t->id, memory_order_release);
	return t;
}

/* The record in which the owner's join runs f inline on w (an owed child
 * of f->g, as weft__frame_task's): one that w kept from an earlier inline
 * child (frame.c, "The inline pool"), or a new one.  NULL when no record
 * could be had (f's child failed and ended, as above).  Inline: every
 * frame its owner runs (B1, B2).  Thread: w's. */
static inline struct weft_task *weft__frame_inline_task(weft__worker_t *w,
	struct weft__frame *f)
{
	struct weft_task *t = w->frame_pool;
	if (WEFT__LIKELY(t != NULL)) {
		w->frame_pool = t->next;
		w->frame_pool_len--;
		/* f read in place (the hot path of B1), then done with. */
		t = weft__frame_reuse(w, t, f);
		weft__frame_done(f, t->group);
		return t;
	}
	return weft__frame_task(f);
}

/* Drops the run reference of t, a child that w's joining task ran inline
 * and that has ended: into w's inline pool if nothing of its life
 * outlives it, else as weft__task_unref does.  Inline, as above.
 * Thread: w's. */
static inline void weft__frame_inline_put(weft__worker_t *w,
	struct weft_task *t)
{
	/* acquire: as weft__task_unref's first load (a count of 1 is ours
	 * alone, and the dropper that left it released its writes). */
	if (atomic_load_explicit(&t->refs, memory_order_acquire) != 1 ||
		t->fail_msg != NULL || t->fail_group != NULL || t->panicked ||
		t->started_called ||
		w->frame_pool_len >= WEFT__FRAME_POOL_MAX) {
		weft__task_unref(t);
		return;
	}
	WEFT_DASSERT(atomic_load_explicit(&t->handles, memory_order_relaxed) ==
				0 &&
			atomic_load_explicit(&t->waiters,
				memory_order_relaxed) == NULL &&
			atomic_load_explicit(&t->done_cbs,
				memory_order_relaxed) == NULL &&
			t->owned == NULL && t->start == NULL &&
			t->par == NULL && !weft__scope_linked(&t->root_scope),
		"a pooled task record still holds part of its life");
	/* As weft__task_unref does for the caches: the scope's reason, the
	 * census, a new generation (relaxed: see there).  The end left
	 * insp_id 0. */
	weft__scope_fini(&t->root_scope);
	weft__alloc_census_add(WEFT__CENSUS_TASK, -1);
	atomic_store_explicit(&t->gen,
		atomic_load_explicit(&t->gen, memory_order_relaxed) + 1,
		memory_order_relaxed);
	t->next = w->frame_pool;
	w->frame_pool = t;
	w->frame_pool_len++;
}

/* Gives the records of w's inline pool back to the record caches.
 * Thread: w's, at its exit. */
void weft__frame_pool_drain(weft__worker_t *w);

#endif
