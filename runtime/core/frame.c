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
 * WEFT__GROUP_FRAMES of them in its record, and more in chunks (below),
 * each used once per life of the group, so a frame is never rewritten
 * while a deque may hold it: the group cannot close, and its record
 * cannot be reused, before each of its frames was taken and, if made a
 * task, that task ended.
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
 * Chunks.  An owner that spawns many children before it joins (B3
 * spawn-flat: 10^6; B7: 10^6 sleepers) would otherwise make a task
 * record for each past the 16th at its spawn: about 560 bytes written
 * per child, all of them live at once (B3's 516 MB), and at 2 workers a
 * flow of records from the spawning worker to the thief that ends them
 * (B3 ran 5x slower at 2 workers than at 1).  Past frames[], the owner
 * takes frames from a chunk of WEFT__FRAME_CHUNK_FRAMES (292; 16 KB,
 * malloc'd when the last one is full; without memory the spawn takes a
 * record, as before) listed newest first in the group (`fchunks`,
 * under the group scope's lock, which introspection holds while it
 * counts their frames; a chunk's frames start marked taken, so it can
 * count all of them).  A group may live long and spawn without end (a
 * server's loop), so chunks go as their children start: a taker copies
 * what it needs out of the frame (weft__frame_take, struct
 * weft__frame_v) and then counts the chunk's `left` down; the owner
 * seals a full chunk when it starts the next one, subtracting what
 * remains of the count's OPEN bias; whoever brings it to 0 unlists the
 * chunk (under the lock) and frees it.  The chunk being filled stays
 * until the next one or the join, which frees what is left.  So a
 * group holds at most one chunk (16 KB) beyond its children not yet
 * started, and a taker pays one uncontended read-modify-write on the
 * chunk's first line.
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
 *      failure message or nested error, panicked and started_called
 *      false, an unlinked root scope, no waiters, done callbacks, owned
 *      objects or start record.
 *   4. A taker reads a frame only before it counts the frame's chunk
 *      down; a chunk is freed once, by whoever brings `left` to 0 (the
 *      owner's seal or the last taker) or by the join, after it was
 *      unlisted under the group scope's lock.
 */
#include <errno.h>

#include "base/alloc.h"
#include "base/id.h"
#include "core/frame.h"
#include "core/group.h"
#include "core/records.h"
#include "core/task.h"
#include "runtime.h"

struct weft_task *weft__frame_task(struct weft__frame *f)
{
	struct weft__frame_v v;
	weft__frame_take(f, &v);
	struct weft_group *g = v.g;
	struct weft_task *t;
	int rc = weft__task_create_lit(g->rt, v.name, true, v.fn, v.arg, &t);
	if (WEFT__UNLIKELY(rc < 0)) {
		weft__group_frame_failed(&v, rc);
		return NULL;
	}
	t->owed = true;
	weft__frame_child_init(g, t, v.flags, v.ctx);
	weft__frame_child_place(g, t);
	return t;
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
