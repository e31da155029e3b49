/* Frames: children spawned by their group's owner that are not tasks yet
 * (frame.c holds the essay). */
#ifndef WEFT_RUNTIME_CORE_FRAME_H
#define WEFT_RUNTIME_CORE_FRAME_H

#include <stdbool.h>
#include <stdint.h>

#include "base/common.h"
#include "core/group.h"
#include "core/idle.h"
#include "core/sched.h"

struct weft_task;

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

/* The record in which the owner's join runs f inline on w (an owed child
 * of f->g, as weft__frame_task's): one that w kept from an earlier inline
 * child (frame.c, "The inline pool"), or a new one.  NULL when no record
 * could be had (f's child failed and ended, as above).  Thread: w's. */
struct weft_task *weft__frame_inline_task(weft__worker_t *w,
	struct weft__frame *f);

/* Drops the run reference of t, a child that w's joining task ran inline
 * and that has ended: into w's inline pool if nothing of its life
 * outlives it, else as weft__task_unref does.  Thread: w's. */
void weft__frame_inline_put(weft__worker_t *w, struct weft_task *t);

/* Gives the records of w's inline pool back to the record caches.
 * Thread: w's, at its exit. */
void weft__frame_pool_drain(weft__worker_t *w);

#endif
