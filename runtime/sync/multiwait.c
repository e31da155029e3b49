/* Combinators, part 1: wait, wait_for, as_completed (the multi-wait).
 *
 * Design
 * ------
 * Problem: waiting for the first of several tasks to end, from one fiber,
 * without a thread per task and without missing an end that happens while
 * the waiter is getting ready to park.
 *
 * Approach.  A task that ends wakes every node on its `waiters` list
 * (weft__task_finish).  multi_park puts one node per watched task on that
 * task's list, every node carrying the same park generation, then parks
 * once: the first finisher's wake ends the park, and the later ones find
 * the generation stale (or the park already WOKEN) and do nothing.  The
 * ordering argument is weft_task_wait's, per task: the waiter lists its
 * node, then re-reads the task's state; the finisher stores its state,
 * then reads the list head; all four are seq_cst (the finisher's state
 * store is seq_cst whenever a handle exists, as one does here), so either
 * the waiter sees the task ended (and does not park) or the finisher sees
 * the node (and wakes the generation).  Before returning, multi_park
 * takes every list's lock and removes its node if still there: the
 * finisher wakes under that lock, so once every lock has been taken no
 * finisher can touch a node again, and the nodes (on the caller's stack
 * or in an iterator) may go away.  Cancellation wakes the same park (it is
 * cancellable), and a deadline is a private scope in the caller's frame
 * (weft__scope_frame_enter) whose cancellation does the same, so there is
 * one park for every reason to stop waiting; callers loop and re-evaluate
 * after every wake (wakes may be spurious).
 *
 * Cost: a park lists one node per still-pending task, O(n) per wake.
 * ALL_COMPLETED needs only the first pending task's end (the others will
 * be waited for next), so it lists one node and never allocates.
 * as_completed, which waits n times, does not park this way (that was
 * O(n^2) lock operations: 1.76 s for 40,000 tasks): it registers a done
 * callback per task once, and the callbacks feed it (see its section).
 * Rejected for the one-shot waits: keeping nodes listed across parks (a
 * finisher empties its whole list, and every node's generation would need
 * an update under its lock at each park anyway) and a helper task per
 * watched task (a spawn per handle).
 *
 * Invariants
 *   1. When a multi-wait returns, none of its nodes is on any list.
 *   2. wait_for does not return after a timeout or cancellation until the
 *      task it cancelled has ended.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/alloc.h"
#include "core/cancel.h"
#include "core/records.h"
#include "core/task.h"
#include "sync/waitq.h"
#include "weft/combine.h"
#include "weft/time.h"

/* {======================================================= multi-wait */

/* One waiter node and the task it is listed on. */
struct watch {
	struct weft__waiter node;
	struct weft_task *on; /* NULL: not listed */
};

/* Up to this many watches live on the waiter's stack. */
#define WATCH_SMALL 8

/* t is a task record or a handle (the users' arrays are handles, checked
 * by check_handles; weft__handle_addr untags either, records.h). */
static bool task_pending(const struct weft_task *t)
{
	t = weft__handle_addr(t);
	/* acquire: pairs with the finisher's release (or seq_cst) store of
	 * state, so the outcome fields are readable once it is not
	 * PENDING (task.c invariant 4). */
	return atomic_load_explicit(&t->state, memory_order_acquire) ==
		WEFT_TASK_PENDING;
}

/* Lists w->node on t's waiters and re-reads t's state: returns whether t
 * was still pending after the node became visible. */
static bool watch_list(struct watch *w, struct weft_task *t)
{
	t = weft__handle_addr(t); /* a record or a checked handle */
	w->on = t;
	weft__spin_lock(&t->waiters_lock);
	/* relaxed: under waiters_lock, which orders every list update. */
	w->node.next = atomic_load_explicit(&t->waiters, memory_order_relaxed);
	/* seq_cst, then the seq_cst state load below: pairs with the
	 * finisher's seq_cst state store, then seq_cst head load
	 * (weft__task_finish).  One of the two sees the other. */
	atomic_store_explicit(&t->waiters, &w->node, memory_order_seq_cst);
	weft__spin_unlock(&t->waiters_lock);
	return atomic_load_explicit(&t->state, memory_order_seq_cst) ==
		WEFT_TASK_PENDING;
}

/* Removes w->node from its task's list if the finisher has not emptied
 * the list yet.  Taking the lock also waits out a finisher that is
 * waking the list (it wakes under the lock): afterwards nobody touches
 * the node (invariant 1). */
static void watch_unlist(struct watch *w)
{
	struct weft_task *t = w->on;
	weft__spin_lock(&t->waiters_lock);
	/* relaxed, both: under waiters_lock, which the finisher also holds
	 * while it wakes and empties the list. */
	struct weft__waiter *head = atomic_load_explicit(&t->waiters,
		memory_order_relaxed);
	if (head == &w->node) {
		atomic_store_explicit(&t->waiters, w->node.next,
			memory_order_relaxed);
	} else {
		for (struct weft__waiter *p = head; p; p = p->next)
			if (p->next == &w->node) {
				p->next = w->node.next;
				break;
			}
	}
	weft__spin_unlock(&t->waiters_lock);
	w->on = NULL;
}

/* One park of self until one of the tasks h[0..n) ends or, if
 * cancellable, self's innermost scope is cancelled.  At most nwatch
 * pending tasks (the first ones) are watched.  `seen` is how many of h
 * the caller last found ended: if more have ended by now, it does not
 * park at all.  `what` (a static string) names the wait for
 * introspection.  Returns after any wake-up, possibly a spurious one:
 * the caller re-evaluates its condition. */
static WEFT_FIBER_FN void multi_park(struct weft_task *self,
	struct weft_task *const *h, size_t n, size_t seen, struct watch *w,
	size_t nwatch, bool cancellable, const char *what)
{
	uint64_t gen = weft__task_park_prepare(self, cancellable);
	size_t listed = 0, ended = 0;
	for (size_t i = 0; i < n; i++) {
		if (!task_pending(h[i])) {
			ended++;
		} else if (listed < nwatch) {
			struct watch *x = &w[listed++];
			x->node.task = self;
			x->node.gen = gen;
			if (!watch_list(x, h[i]))
				ended++;
		}
	}
	bool park = listed > 0 && ended <= seen;
	/* After the seq_cst prepare: a canceller stores eff_cancelled then
	 * reads the park word (cancel.c invariant 3).  cur_scope relaxed:
	 * only this task writes it. */
	if (park && cancellable &&
		weft__scope_is_cancelled(atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed)))
		park = false;
	if (park)
		weft__task_park_commit_on(self, what);
	for (size_t k = 0; k < listed; k++)
		watch_unlist(&w[k]);
}

/* Parks self, not cancellably, until t has ended. */
static WEFT_FIBER_FN void wait_shielded(struct weft_task *self,
	struct weft_task *t)
{
	struct watch w;
	while (task_pending(t))
		multi_park(self, &t, 1, 0, &w, 1, false, "wait_for cleanup");
}

/* self's innermost scope was found cancelled during a wait that may have
 * its own deadline scope ss (NULL: none).  Returns -ECANCELED, recording
 * the observation, when the cancellation comes from outside ss; 0 when
 * only ss's own deadline fired.  A scope cancelled from outside is marked
 * before the scopes inside it (parent first), so if ss is cancelled
 * because of its outer scope, that scope already reads as cancelled. */
static int wait_cancel_kind(struct weft_task *self,
	struct weft__frame_scope *ss)
{
	/* relaxed: our own cur_scope, written only by this task. */
	struct weft_scope *outer = ss
		? ss->ts.s.outer
		: atomic_load_explicit(&self->cur_scope, memory_order_relaxed);
	if (ss && !weft__scope_is_cancelled(outer))
		return 0;
	weft__scope_note_observed(weft__scope_origin(outer));
	return -ECANCELED;
}

/* Validates handles for a wait by self. */
static int check_handles(struct weft_task *self, weft_task_t *const *h,
	size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (h[i] == NULL)
			return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		/* A stale handle is reported (records.h, handles). */
		struct weft_task *t = weft__task_from_handle(h[i], "weft_wait");
		if (t == NULL || t == self || t->rt != self->rt)
			return WEFT_EMISUSE;
	}
	return 0;
}

static int64_t deadline_after(int64_t ns)
{
	int64_t now = weft_now();
	return ns > WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
}

/* }======================================================= */

/* {======================================================= wait */

/* Whether `mode` holds for h[0..n); *ended receives how many have ended. */
static bool wait_met(weft_task_t *const *h, size_t n, weft_wait_mode_t mode,
	size_t *ended)
{
	size_t k = 0;
	bool failed = false;
	for (size_t i = 0; i < n; i++) {
		/* acquire: as in task_pending (pairs with the finisher's
		 * release or seq_cst store of state). */
		const struct weft_task *t = weft__handle_addr(h[i]);
		int s = atomic_load_explicit(&t->state, memory_order_acquire);
		if (s == WEFT_TASK_PENDING)
			continue;
		k++;
		failed |= s == WEFT_TASK_FAILED;
	}
	*ended = k;
	switch (mode) {
	case WEFT_WAIT_FIRST_COMPLETED: return k > 0;
	case WEFT_WAIT_FIRST_EXCEPTION: return failed || k == n;
	default: return k == n;
	}
}

int weft_wait(weft_task_t *const *handles, size_t n, weft_wait_mode_t mode,
	int64_t deadline, bool *done)
{
	if (handles == NULL || done == NULL || n == 0 ||
		(mode != WEFT_WAIT_FIRST_COMPLETED &&
			mode != WEFT_WAIT_FIRST_EXCEPTION &&
			mode != WEFT_WAIT_ALL_COMPLETED))
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	int rc = check_handles(self, handles, n);
	if (rc < 0)
		return rc;
	rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	weft__task_link_root(self); /* it checks its scope itself below */
	size_t ended;
	if (!wait_met(handles, n, mode, &ended) && deadline > weft_now()) {
		/* ALL_COMPLETED waits for one task at a time (any order
		 * works); the FIRST_* modes watch every pending task. */
		size_t nwatch = mode == WEFT_WAIT_ALL_COMPLETED ? 1 : n;
		struct watch small[WATCH_SMALL], *w = small;
		if (nwatch > WATCH_SMALL) {
			w = weft__calloc(nwatch, sizeof *w);
			if (w == NULL)
				return -ENOMEM;
		}
		struct weft__frame_scope ss;
		bool timed = deadline != WEFT_FOREVER;
		if (timed)
			weft__scope_frame_enter(self, &ss, deadline);
		for (;;) {
			multi_park(self, handles, n, ended, w, nwatch, true,
				"wait");
			if (wait_met(handles, n, mode, &ended))
				break;
			/* relaxed: our own cur_scope. */
			if (weft__scope_is_cancelled(
				    atomic_load_explicit(&self->cur_scope,
					    memory_order_relaxed))) {
				/* Own deadline: not an error
				 * (docs/semantics.md rule 34). */
				rc = wait_cancel_kind(self, timed ? &ss : NULL);
				break;
			}
		}
		if (timed)
			weft__scope_frame_exit(self, &ss);
		if (w != small)
			weft__free(w);
	}
	if (rc == 0)
		for (size_t i = 0; i < n; i++)
			done[i] = !task_pending(handles[i]);
	return rc;
}

/* }======================================================= */

/* {======================================================= wait_for */

/* Parks self until h has ended (returns 0), its timeout passed
 * (-ETIMEDOUT) or self was cancelled (-ECANCELED).  h was pending. */
static WEFT_FIBER_FN int wait_for_park(struct weft_task *self,
	struct weft_task *h, int64_t timeout)
{
	struct weft__frame_scope ss;
	bool timed = timeout != WEFT_FOREVER;
	if (timed)
		weft__scope_frame_enter(self, &ss, deadline_after(timeout));
	struct watch w;
	int rc = 0;
	for (;;) {
		multi_park(self, &h, 1, 0, &w, 1, true, "wait_for");
		if (!task_pending(h))
			break;
		/* relaxed: our own cur_scope. */
		if (weft__scope_is_cancelled(
			    atomic_load_explicit(&self->cur_scope,
				    memory_order_relaxed))) {
			rc = wait_cancel_kind(self, timed ? &ss : NULL);
			if (rc == 0)
				rc = -ETIMEDOUT;
			break;
		}
	}
	if (timed)
		weft__scope_frame_exit(self, &ss);
	return rc;
}

int weft_gather_tasks(weft_task_t *const *handles, size_t n,
	weft_gather_result_t *results)
{
	if (n == 0)
		return 0; /* as weft_gather and asyncio's gather() */
	if (handles == NULL || results == NULL)
		return -EINVAL;
	bool small[WATCH_SMALL], *done = small;
	if (n > WATCH_SMALL && (done = weft__calloc(n, sizeof *done)) == NULL)
		return -ENOMEM;
	/* ALL_COMPLETED waits for one pending task at a time: no waiter
	 * array, whatever n is. */
	int rc = weft_wait(handles, n, WEFT_WAIT_ALL_COMPLETED, WEFT_FOREVER,
		done);
	if (rc == 0 || rc == -ECANCELED) {
		for (size_t i = 0; i < n; i++) {
			void *v = NULL;
			int r = weft_task_result(handles[i], &v);
			if (r == WEFT_EFAILED)
				(void)weft_task_failure(handles[i], &r, NULL);
			results[i] = (weft_gather_result_t){ r,
				r == 0 ? v : NULL, NULL };
		}
	}
	if (done != small)
		weft__free(done);
	return rc;
}

int weft_wait_for(weft_task_t *h, int64_t timeout, void **value)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	int rc = check_handles(self, &h, 1);
	if (rc < 0)
		return rc;
	/* Cancelled on entry counts as cancelled while waiting: the task is
	 * taken along. */
	struct weft_task *me; /* self again */
	rc = weft__waitq_begin(&me);
	weft__task_link_root(self); /* it checks its scope itself below */
	if (rc == 0) {
		if (!task_pending(h))
			return weft_task_result(h, value);
		rc = timeout <= 0
			? -ETIMEDOUT
			: wait_for_park(self, weft__handle_addr(h), timeout);
		if (rc == 0)
			return weft_task_result(h, value);
	}
	/* Rule 32: never leave the task running behind a timeout or a
	 * cancellation.  The wait is not cancellable (the caller may be
	 * cancelled, which must not cut it short). */
	weft_task_cancel(h);
	wait_shielded(self, weft__handle_addr(h));
	return rc;
}

/* }======================================================= */

/* {======================================================= as_completed */

/* The iterator is fed by done callbacks (weft_task_on_done's protocol,
 * with nodes that live in the iterator): each watched task's end pushes
 * its position on `ended` and wakes the owner if it is parked there.
 * next() moves what was pushed into a min-heap of positions and yields
 * the lowest: O(log n) per task, where watching every pending task at
 * every park cost O(n) per call.  Every registration holds a reference on
 * the iterator, so close() may return while tasks are still running: the
 * last of the owner and the callbacks frees it. */

/* One watched task: its callback node and its position. */
struct ac_entry {
	struct weft__done_cb cb;
	struct weft_as_completed *it;
	size_t index;
	struct ac_entry *next; /* on `ended` */
};

struct weft_as_completed {
	struct weft_task *owner;
	size_t n;
	size_t yielded; /* owner only */
	/* The owner's reference plus one per callback not yet run. */
	atomic_size_t refs;
	weft__spin_t lock;
	/* Under lock: tasks ended since the owner last looked, and the
	 * owner's park while it waits for one (parked: gen is valid). */
	struct ac_entry *ended;
	bool parked;
	uint64_t gen;
	/* Owner only: a min-heap of positions of ended, unyielded tasks. */
	size_t *heap;
	size_t nheap;
	weft_task_t **h;
	struct ac_entry *e;
};

static void as_completed_unref(weft_as_completed_t *it)
{
	/* acq_rel: the last one out sees every other's writes before it
	 * frees. */
	if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) == 1)
		weft__free(it);
}

/* The done callback: runs once per task, on the thread that finished it
 * (or in open(), for a task that had ended). */
static void as_completed_on_done(weft_task_t *h, void *arg)
{
	(void)h;
	struct ac_entry *e = arg;
	weft_as_completed_t *it = e->it;
	struct weft_task *owner = it->owner;
	weft__spin_lock(&it->lock);
	e->next = it->ended;
	it->ended = e;
	/* Deferred: the owner cannot run (nor close) before the
	 * sched_ready below, which happens after the unlock. */
	bool ready = it->parked && weft__task_wake_deferred(owner, it->gen);
	it->parked = false;
	weft__spin_unlock(&it->lock);
	if (ready)
		weft__sched_ready(owner);
	as_completed_unref(it);
}

int weft_as_completed_open(weft_as_completed_t **out,
	weft_task_t *const *handles, size_t n)
{
	if (out == NULL || (handles == NULL && n > 0))
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	int rc = check_handles(self, handles, n);
	if (rc < 0)
		return rc;
	/* One block: the iterator, the entries, the handles and the heap. */
	_Static_assert(alignof(struct ac_entry) <= alignof(max_align_t),
		"entry alignment");
	size_t head = sizeof(struct weft_as_completed);
	head = (head + alignof(struct ac_entry) - 1) &
		~(alignof(struct ac_entry) - 1);
	size_t per = sizeof(struct ac_entry) + sizeof(weft_task_t *) +
		sizeof(size_t);
	if (n > (SIZE_MAX - head) / per)
		return -ENOMEM;
	char *mem = weft__alloc(head + n * per);
	if (mem == NULL)
		return -ENOMEM;
	struct weft_as_completed *it = (struct weft_as_completed *)mem;
	it->owner = self;
	it->n = n;
	it->yielded = 0;
	atomic_init(&it->refs, n + 1);
	weft__spin_init(&it->lock);
	it->ended = NULL;
	it->parked = false;
	it->gen = 0;
	it->e = (struct ac_entry *)(mem + head);
	it->h = (weft_task_t **)(it->e + n);
	it->heap = (size_t *)(it->h + n);
	it->nheap = 0;
	for (size_t i = 0; i < n; i++) {
		it->h[i] = handles[i];
		it->e[i].it = it;
		it->e[i].index = i;
	}
	/* Never fails: the nodes are ours (a task that has ended runs the
	 * callback here). */
	for (size_t i = 0; i < n; i++)
		weft__task_on_done_node(weft__handle_addr(handles[i]),
			&it->e[i].cb, as_completed_on_done, &it->e[i]);
	*out = it;
	return 0;
}

static void heap_push(size_t *heap, size_t *len, size_t v)
{
	size_t i = (*len)++;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (heap[up] <= v)
			break;
		heap[i] = heap[up];
		i = up;
	}
	heap[i] = v;
}

static size_t heap_pop(size_t *heap, size_t *len)
{
	size_t top = heap[0], v = heap[--*len], n = *len, i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && heap[c + 1] < heap[c])
			c++;
		if (v <= heap[c])
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (n > 0)
		heap[i] = v;
	return top;
}

/* Moves what the callbacks pushed into the heap; if nothing is there and
 * park, leaves the owner's park (gen) for them to wake, under the same
 * lock, so that no push is missed. */
static void as_completed_drain(weft_as_completed_t *it, bool park, uint64_t gen)
{
	weft__spin_lock(&it->lock);
	struct ac_entry *e = it->ended;
	it->ended = NULL;
	it->parked = park && e == NULL && it->nheap == 0;
	it->gen = gen;
	weft__spin_unlock(&it->lock);
	for (; e; e = e->next)
		heap_push(it->heap, &it->nheap, e->index);
}

int weft_as_completed_next(weft_as_completed_t *it, size_t *index,
	weft_task_t **handle)
{
	if (it == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (self != it->owner)
		return WEFT_EMISUSE;
	if (it->yielded == it->n)
		return WEFT_EEND;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	weft__task_link_root(self); /* it checks its scope itself below */
	for (;;) {
		as_completed_drain(it, false, 0);
		if (it->nheap > 0)
			break;
		/* relaxed: our own cur_scope. */
		struct weft_scope *cur = atomic_load_explicit(&self->cur_scope,
			memory_order_relaxed);
		uint64_t gen = weft__task_park_prepare(self, true);
		as_completed_drain(it, true, gen);
		if (it->nheap > 0)
			break;
		/* After the seq_cst prepare (cancel.c invariant 3).  Level-
		 * triggered, but a task that ended meanwhile wins: the next
		 * call reports the cancellation. */
		if (weft__scope_is_cancelled(cur)) {
			as_completed_drain(it, false, 0);
			if (it->nheap > 0)
				break;
			weft__scope_note_observed(weft__scope_origin(cur));
			return -ECANCELED;
		}
		weft__task_park_commit_on(self, "as_completed");
	}
	/* A park we left early may still be listed: nobody wakes it now. */
	as_completed_drain(it, false, 0);
	size_t i = heap_pop(it->heap, &it->nheap);
	it->yielded++;
	if (index)
		*index = i;
	if (handle)
		*handle = it->h[i];
	return 0;
}

void weft_as_completed_close(weft_as_completed_t *it)
{
	if (it == NULL)
		return;
	/* The callbacks of tasks still running keep it until they ran; the
	 * owner is not parked on it (only next() parks, and returns first). */
	as_completed_unref(it);
}

/* }======================================================= */
