/* Frames: the lazy form of an owner's spawn.
 *
 * Design
 * ------
 * Problem: in fork-join code (B1 fib, B2 skynet) a group's owner spawns
 * a child and joins it a few instructions later, and at 1 worker, or
 * whenever nobody steals, the join runs the child inline as a plain call
 * on the owner's stack (sched.c, weft__sched_help_join).  A task record
 * made at the spawn (cleared, named, counted, linked under the group's
 * scope: about 250 instructions with the spawn's checks) then serves
 * only a child that starts right away on the same worker.  Lace and
 * rayon push a small frame instead and make nothing more unless a thief
 * takes it.
 *
 * Approach: the owner's own spawns (core/group.c, group_spawn_frame)
 * with nothing that needs the record before the child starts (no handle,
 * the owner's own context, a literal name or none; outside budgeted
 * subtrees; tracing off) write a frame into the group record (fn, arg,
 * group, name, flags, the context reference: struct weft__frame,
 * group.h) and push its address with bit 0 set into the worker's deque.
 * The frame is counted as an owed child (core/group.c, "Owed
 * children") before the push publishes it.  A group has
 * WEFT__GROUP_FRAMES of them, each used once per life of the group, so a
 * frame is never rewritten while a deque may hold it: the group cannot
 * close, and its record cannot be reused, before each of its frames was
 * taken and, if made a task, that task ended.
 *
 * Whoever takes the item from a deque makes what it needs:
 *   - the owner's join, popping its own frame (sched.c,
 *     worker_inline_next): a record from the worker's inline pool (below)
 *     and the inline run, settled in `owed` as before;
 *   - any other pick or steal (sched.c worker_pick, weft__sched_steal,
 *     idle.c): a task record, now (weft__frame_task), run as a fiber; it
 *     is an owed child not run by its owner, so its end counts the group's
 *     word down, as a stolen owed record's did.
 * A frame taken for moving (steal-half, a put-back) stays a frame.
 * Nothing of the semantics changes but when the record is made: the
 * child's id and its appearance in snapshots come at its start instead
 * of at its spawn, and its cancellation is pulled from the group's scope
 * then (rule 28 holds: it starts under the group's scope either way).
 * A record that cannot be had (ENOMEM) fails the child without running
 * it: a leaf naming the frame's function, the group cancelled if it is
 * the first failure, the frame's end counted (weft__group_frame_failed).
 *
 * The inline pool.  A child run inline that ended with nothing of its
 * life still held (no reference but the run's, no failure message or
 * nested error, no panic) leaves its record in a short per-worker list
 * instead of the record caches; the next inline child on that worker
 * takes it and sets only the fields a life changes, skipping the clear
 * of the record head (B1: one record per nesting level, hot in cache).
 * Records in the pool are dead as far as anyone else can tell: their
 * insp_id is 0 and their generation was bumped (handles of the ended
 * life are stale), exactly as in the caches.
 *
 * Rejected: frames in the deque's own slots (Lace): the deque and its
 * steal-half move single words, and a frame in the group record costs
 * the same one store per field; frames on the owner's stack (rayon's
 * StackJob): a spawn returns before the join, so its frame cannot live
 * in the spawning call.
 *
 * Invariants
 *   1. A frame is published (pushed) only after it is complete and
 *      counted; after the push only deque takers read it.
 *   2. Exactly one taker gets each pushed frame (the deque's), and the
 *      frame turns into exactly one end: an inline run settled in owed,
 *      a task's end, or weft__group_frame_failed.
 *   3. A record in the inline pool has refs 1, handles 0, insp_id 0, no
 *      failure message or nested error, an unlinked root scope, no
 *      waiters, done callbacks, owned objects or start record.
 */
#include <errno.h>

#include "base/alloc.h"
#include "base/id.h"
#include "core/frame.h"
#include "core/group.h"
#include "core/records.h"
#include "core/task.h"
#include "runtime.h"

/* Records a worker keeps for inline children: deeper nesting than this
 * gives the rest back to the caches. */
#define FRAME_POOL_MAX 64

/* f has a taker now (relaxed: see taken). */
static inline void frame_taken(struct weft__frame *f)
{
	atomic_store_explicit(&f->taken, true, memory_order_relaxed);
}

struct weft_task *weft__frame_task(struct weft__frame *f)
{
	struct weft_group *g = f->g;
	frame_taken(f);
	struct weft_task *t;
	int rc = weft__task_create_lit(g->rt, f->name, true, f->fn, f->arg, &t);
	if (WEFT__UNLIKELY(rc < 0)) {
		weft__group_frame_failed(f, rc);
		return NULL;
	}
	t->owed = true;
	weft__group_child_init(g, t, f->flags, f->ctx);
	return t;
}

/* A pooled record starts its next life as f's child: what
 * weft__task_create_lit and group_child_init do, without the clear of
 * the record head, whose fields a clean end left as a clear would
 * (invariant 3) or are set here. */
static struct weft_task *frame_reuse(weft__worker_t *w, struct weft_task *t,
	struct weft__frame *f)
{
	struct weft_group *g = f->g;
	/* release fence: as in weft__task_create_lit (the previous life's
	 * insp_id = 0 before the writes below). */
	WEFT__INSP_FENCE(memory_order_release);
	t->fn = f->fn;
	t->arg = f->arg;
	t->fail_collateral = false;
	t->owed = true;
	t->started_called = false;
	t->acct = false;
	t->coop_used = 0;
	t->panicked = false;
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
	struct weft_scope *rs = &t->root_scope;
	weft__scope_renew_embedded(rs, WEFT__SCOPE_TASK);
	rs->id = t->id;
	atomic_init(&t->cur_scope, &t->root_scope);
	weft__group_child_init(g, t, f->flags, f->ctx);
	weft__alloc_census_add(WEFT__CENSUS_TASK, 1);
	/* release: live for snapshots (as in weft__task_create_lit). */
	atomic_store_explicit(&t->insp_id, t->id, memory_order_release);
	return t;
}

struct weft_task *weft__frame_inline_task(weft__worker_t *w,
	struct weft__frame *f)
{
	struct weft_task *t = w->frame_pool;
	if (WEFT__LIKELY(t != NULL)) {
		frame_taken(f);
		w->frame_pool = t->next;
		w->frame_pool_len--;
		return frame_reuse(w, t, f);
	}
	return weft__frame_task(f);
}

void weft__frame_inline_put(weft__worker_t *w, struct weft_task *t)
{
	/* acquire: as weft__task_unref's first load (a count of 1 is ours
	 * alone, and the dropper that left it released its writes). */
	if (atomic_load_explicit(&t->refs, memory_order_acquire) != 1 ||
		t->fail_msg != NULL || t->fail_group != NULL || t->panicked ||
		w->frame_pool_len >= FRAME_POOL_MAX) {
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
			!weft__scope_linked(&t->root_scope),
		"a pooled task record still holds part of its life");
	/* As weft__task_unref does for the caches: the scope's reason, the
	 * census, the snapshot id, a new generation (relaxed: see there). */
	weft__scope_fini(&t->root_scope);
	weft__alloc_census_add(WEFT__CENSUS_TASK, -1);
	atomic_store_explicit(&t->insp_id, 0, memory_order_relaxed);
	atomic_store_explicit(&t->gen,
		atomic_load_explicit(&t->gen, memory_order_relaxed) + 1,
		memory_order_relaxed);
	t->next = w->frame_pool;
	w->frame_pool = t;
	w->frame_pool_len++;
}

void weft__frame_pool_drain(weft__worker_t *w)
{
	struct weft_task *t;
	while ((t = w->frame_pool) != NULL) {
		w->frame_pool = t->next;
		weft__record_task_put(t);
	}
	w->frame_pool_len = 0;
}
