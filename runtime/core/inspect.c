/* Introspection: task snapshots and the collection of the tree dump
 * (its rendering is dump.c).
 *
 * Design
 * ------
 * Problem: list every live task, and dump the group -> task tree with
 * each task's state, from any thread (a plain thread too, while the
 * runtime runs), safely against tasks that end meanwhile, without adding
 * an atomic read-modify-write or a lock to spawning, running or finishing
 * a task (benchmark B1 spends ~1,000 instructions per spawn).
 *
 * Approach, snapshots (Go's allgs): task records are type-stable - the
 * runtime never gives one back to malloc before it is destroyed (the task
 * arena, records.c) - and every record ever allocated is on one list,
 * pushed once when the record is allocated (the malloc slow path, under
 * the arena lock).  A snapshot walks that list without a lock.  Each
 * record carries insp_id: the task's id while it is live, 0 otherwise,
 * set with plain atomic stores, no read-modify-write (release at
 * creation, relaxed when the task ends or its record is released).  The
 * snapshot reads insp_id (acquire), copies the few fields it reports,
 * which every writer writes with atomic stores and which no memset
 * touches, then re-reads insp_id after an acquire fence; it keeps the
 * copy only if both reads gave the same non-zero id.  Ids are never
 * reused, so a record that ended and was recycled in between fails the
 * check (the creator fences its writes after the previous life's
 * insp_id = 0).  Every record is visited once, so a task live during the
 * whole walk is seen exactly once; all accesses are atomic, so the racing
 * reads are not data races (ThreadSanitizer stays quiet without
 * annotations).
 *
 * Approach, the dump: the structure and the cancel state live in the
 * cancel-scope tree, whose nodes are on task stacks and in group records
 * that do go away.  The dump walks that tree from each root task, taking
 * each scope's lock before reading its children and keeping the locks of
 * the path down to the current node (parent before child, the tree's
 * lock order): a linked scope cannot unlink, and so cannot be freed,
 * while its parent is locked.  It copies what it reports into an array
 * and formats only after every lock is released.  A child task that has
 * not linked its root scope yet (links are lazy: weft__task_link_root) is
 * not in the tree; those come from a snapshot and are listed under their
 * group.
 * rt->insp_lock keeps the root records alive during the walk and
 * serialises dumps.
 *
 * Approach, notes: a layer above core/ (a supervisor) may list a note
 * on the runtime naming a task and holding a line of text; the dump
 * copies each note into its task's node under rt->notes_lock, a spin lock
 * of their own that the note's owner takes to change or unlist it.  So
 * the dump reads no memory of the owner's outside that lock and calls
 * none of its code, and the task fast paths carry nothing for it: a
 * runtime without notes pays one uncontended lock per dump.
 *
 * Rejected: a children list per group or one list of all tasks (a lock
 * or atomic read-modify-write on every spawn and finish: B1 would pay
 * 10-20%), per-worker registries (a task ends on any worker, so removing
 * it is cross-thread again), and pinning a record with its reference
 * count from the snapshot (weft__task_unref frees at a count of 1
 * without a read-modify-write, which a pin would race with).
 *
 * Cost: task records stay where they are until the runtime is destroyed
 * (the peak number of live tasks times 512 bytes, a record's size on
 * x86_64, of address space; an idle worker gives back the pages of
 * wholly free chunks: records.c); a snapshot costs a walk of every
 * record; a dump holds each scope lock
 * for as long as it takes to copy the subtree below it.  A dump's
 * details of parked tasks cost a pin, an unwind and the formatting per
 * task; each distinct address is named once per dump (libdw's symbol
 * lookup scans a whole symbol table: base/backtrace.c, struct
 * bt_memo).  The `dump` benchmark measures it (docs/benchmarks.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/membarrier.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/spin.h"
#include "base/tick.h"
#include "core/group.h"
#include "core/inspect.h"
#include "core/records.h"
#include "core/sanitizer.h"
#include "core/sched.h"
#include "core/task.h"
#include "runtime.h"
#include "weft/inspect.h"
#include "weft/time.h"

_Static_assert(WEFT_TASK_NAME_MAX == WEFT__TASK_NAME_MAX,
	"public and internal task name sizes differ");

/* {======================================================= snapshots */

/* One validated read of record t; false if it is not live (or changed
 * lives while we read it). */
static bool insp_read(struct weft_task *t, weft_task_info_t *out)
{
	/* acquire: pairs with the release store of insp_id at creation. */
	uint64_t id = atomic_load_explicit(&t->insp_id, memory_order_acquire);
	if (id == 0)
		return false;
	/* relaxed: validated by the re-read of insp_id below. */
	out->group_id = atomic_load_explicit(&t->insp_group_id,
		memory_order_relaxed);
	out->parent_id = atomic_load_explicit(&t->insp_parent_id,
		memory_order_relaxed);
	out->parked_on = atomic_load_explicit(&t->insp_wait,
		memory_order_relaxed);
	/* relaxed: as above. */
	out->worker = atomic_load_explicit(&t->insp_worker,
		memory_order_relaxed);
	weft__task_name_load(t, out->name);
	/* acquire fence: if any read above saw a later life's write, the
	 * re-read below sees that life's insp_id (pairs with the release
	 * fence in weft__task_create). */
	WEFT__INSP_FENCE(memory_order_acquire);
	/* relaxed: ordered after the reads above by the fence. */
	if (atomic_load_explicit(&t->insp_id, memory_order_relaxed) != id)
		return false;
	out->id = id;
	return true;
}

/* Scans every record of rt; keeps the live ones whose group is `gid`
 * (any if 0).  Returns how many matched; copies the first cap. */
static size_t insp_scan(struct weft_runtime *rt, uint64_t gid,
	weft_task_info_t *out, size_t cap)
{
	size_t n = 0;
	/* Every record, chunk by chunk (records.h: the acquire of
	 * weft__record_arena_first pairs with a chunk's publication; a
	 * released chunk's records read insp_id 0 and are skipped). */
	for (struct weft__record_chunk *c =
			weft__record_arena_first(&rt->tasks);
		c; c = c->next)
		for (struct weft_task *t = c->recs; t < c->recs + c->nrec;
			t++) {
			weft_task_info_t info;
			if (!insp_read(t, &info))
				continue;
			if (gid != 0 && info.group_id != gid)
				continue;
			if (n < cap)
				out[n] = info;
			n++;
		}
	return n;
}

struct weft_runtime *weft__inspect_runtime(weft_runtime_t *rt)
{
	if (rt)
		return rt;
	struct weft_task *t = weft__task_current();
	return t ? t->rt : NULL;
}

int weft_all_tasks(weft_runtime_t *rt, weft_task_info_t *out, size_t cap,
	size_t *count)
{
	if (count == NULL || (out == NULL && cap > 0))
		return -EINVAL;
	struct weft_runtime *r = weft__inspect_runtime(rt);
	if (r == NULL)
		return WEFT_ENOTFIBER;
	*count = insp_scan(r, 0, out, cap);
	return 0;
}

int weft_group_children(const weft_group_t *gh, weft_task_info_t *out,
	size_t cap, size_t *count)
{
	if (gh == NULL || count == NULL || (out == NULL && cap > 0))
		return -EINVAL;
	/* A handle (records.h): a stale one is reported. */
	const struct weft_group *g = weft__group_from_handle(gh,
		"weft_group_children");
	if (g == NULL)
		return WEFT_EMISUSE;
	*count = insp_scan(g->rt, g->scope.id, out, cap);
	return 0;
}

/* }======================================================= */

/* {======================================================= dump: collect */

/* Grows an array of `size`-byte elements to hold one more; false (and
 * nothing changed) on allocation failure. */
static bool insp_grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *nv = weft__alloc(ncap * size);
	if (nv == NULL)
		return false;
	if (*v) {
		memcpy(nv, *v, n * size);
		weft__free(*v);
	}
	*v = nv;
	*cap = ncap;
	return true;
}

static int insp_node_new(struct weft__inspect_dump *d, uint8_t kind, int parent)
{
	if (!insp_grow((void **)&d->v, &d->cap, d->n, sizeof *d->v)) {
		d->oom = true;
		return -1;
	}
	struct weft__inspect_node *x = &d->v[d->n];
	memset(x, 0, sizeof *x);
	x->kind = kind;
	x->parent = parent;
	x->first_child = x->last_child = x->next_sib = -1;
	x->worker = -1;
	x->parked_ns = -1;
	x->deadline = x->eff_deadline = WEFT_FOREVER;
	return (int)d->n++;
}

/* Copies live task t into a new node (t's record is alive: its root scope
 * is linked and its parent locked, or it is a listed root). */
static void insp_task_fill(struct weft__inspect_node *x, struct weft_task *t)
{
	x->id = t->id;
	/* relaxed: t is alive (see above); the values are weakly
	 * consistent hints of its state. */
	x->group_id = atomic_load_explicit(&t->insp_group_id,
		memory_order_relaxed);
	x->parked_on = atomic_load_explicit(&t->insp_wait,
		memory_order_relaxed);
	/* relaxed: as above. */
	x->worker = atomic_load_explicit(&t->insp_worker, memory_order_relaxed);
	weft__task_name_load(t, x->name);
	x->linked = true;
}

/* Visits s (locked, as is its parent): adds its node.  task_node is the
 * node of the nearest task above (the task whose scope stack holds s,
 * unless s is a task's root scope).  Returns the node index or -1. */
static int insp_visit(struct weft__inspect_dump *d, struct weft_scope *s,
	int parent, int task_node, int64_t parent_eff, unsigned depth)
{
	uint8_t kind = s->kind == WEFT__SCOPE_TASK ? WEFT__INSPECT_TASK
		: s->kind == WEFT__SCOPE_GROUP	   ? WEFT__INSPECT_GROUP
		: s->kind == WEFT__SCOPE_FRAME	   ? WEFT__INSPECT_SLEEP
						   : WEFT__INSPECT_SCOPE;
	int i = insp_node_new(d, kind, parent);
	if (i < 0)
		return -1;
	struct weft__inspect_node *x = &d->v[i];
	/* relaxed: a value, ordering nothing. */
	int64_t own = atomic_load_explicit(&s->deadline, memory_order_relaxed);
	bool shield = (s->flags & WEFT_SCOPE_SHIELD) != 0;
	x->deadline = own;
	x->eff_deadline = shield || own < parent_eff ? own : parent_eff;
	x->shield = shield;
	/* relaxed: both flags are written under s's lock, which we hold. */
	x->cancel_called = atomic_load_explicit(&s->cancel_called,
		memory_order_relaxed);
	x->cancelled = atomic_load_explicit(&s->eff_cancelled,
		memory_order_relaxed);
	if (kind == WEFT__INSPECT_TASK) {
		insp_task_fill(x,
			WEFT__CONTAINER_OF(s, struct weft_task, root_scope));
		x->inner_depth = depth;
		x->shield = false;
		return i;
	}
	x->id = s->id;
	if (kind == WEFT__INSPECT_GROUP) {
		struct weft_group *g = WEFT__CONTAINER_OF(s, struct weft_group,
			scope);
		x->group_id = g->owner->id;
		x->open_site = g->open_site; /* fixed at open */
		x->pending = weft__group_frames_pending(g);
		if (weft__group_cpu_counted(g)) {
			x->has_cpu = true;
			x->cpu_ticks = weft__group_cpu_ticks(g);
		}
		struct weft__group_budget *b = weft__group_own_budget(g);
		if (b != NULL && (b->max_children || b->stack_max)) {
			x->has_budget = true;
			x->max_children = b->max_children;
			x->stack_max = b->stack_max;
			/* relaxed: a counter. */
			x->stack_used = atomic_load_explicit(&b->stack_used,
				memory_order_relaxed);
			/* Under the budget's lock, taken inside the scope
			 * locks (nothing takes a scope lock holding it). */
			weft__spin_lock(&b->lock);
			x->live = b->live;
			weft__spin_unlock(&b->lock);
		}
	}
	if (task_node >= 0) {
		/* The task's own scopes form one chain: the deepest seen is
		 * its innermost, which decides its effective state. */
		struct weft__inspect_node *tn = &d->v[task_node];
		if (depth > tn->inner_depth) {
			tn->inner_depth = depth;
			tn->eff_deadline = x->eff_deadline;
			tn->cancelled = x->cancelled;
		}
		tn->shield |= shield;
	}
	return i;
}

struct insp_frame {
	struct weft_scope *s;	 /* locked */
	struct weft_scope *next; /* next child to visit */
	int node, task_node;
	int64_t eff;
	unsigned depth;
};

/* Walks the scope tree under root (whose record insp_lock keeps alive),
 * holding the locks of the path from root to the current scope. */
static void insp_walk(struct weft__inspect_dump *d, struct weft_scope *root)
{
	struct insp_frame *st = NULL;
	size_t n = 0, cap = 0;
	weft__spin_lock(&root->lock);
	int i = insp_visit(d, root, -1, -1, WEFT_FOREVER, 0);
	if (i < 0 || !insp_grow((void **)&st, &cap, 0, sizeof *st)) {
		d->oom = true;
		weft__spin_unlock(&root->lock);
		return;
	}
	st[n++] = (struct insp_frame){ root, root->first_child, i, i,
		d->v[i].eff_deadline, 0 };
	while (n > 0) {
		struct insp_frame *f = &st[n - 1];
		struct weft_scope *c = f->next;
		if (c == NULL || d->oom) {
			weft__spin_unlock(&f->s->lock);
			n--;
			continue;
		}
		f->next = c->next_sib; /* under f->s's lock */
		weft__spin_lock(&c->lock);
		int ci = insp_visit(d, c, f->node, f->task_node, f->eff,
			f->depth + 1);
		if (ci < 0 || !insp_grow((void **)&st, &cap, n, sizeof *st)) {
			d->oom = true;
			weft__spin_unlock(&c->lock);
			continue;
		}
		f = &st[n - 1]; /* st may have moved */
		st[n] = (struct insp_frame){ c, c->first_child, ci,
			d->v[ci].kind == WEFT__INSPECT_TASK ? ci : f->task_node,
			d->v[ci].eff_deadline, f->depth + 1 };
		n++;
	}
	weft__free(st);
}

static int insp_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* A group node's (id, index), for attaching unlinked children. */
struct insp_gref {
	uint64_t id;
	int node;
};

static int insp_cmp_gref(const void *a, const void *b)
{
	return insp_cmp_u64(&((const struct insp_gref *)a)->id,
		&((const struct insp_gref *)b)->id);
}

/* Adds the live tasks that are not in the tree (not linked yet) under
 * their group's node, or at the top if their group was not seen. */
static int insp_add_unlinked(struct weft__inspect_dump *d,
	weft_task_info_t *tasks, size_t ntasks)
{
	size_t ntree = 0, ngroups = 0;
	for (size_t i = 0; i < d->n; i++) {
		ntree += d->v[i].kind == WEFT__INSPECT_TASK;
		ngroups += d->v[i].kind == WEFT__INSPECT_GROUP;
	}
	uint64_t *ids = weft__alloc((ntree + 1) * sizeof *ids);
	struct insp_gref *groups = weft__alloc((ngroups + 1) * sizeof *groups);
	if (ids == NULL || groups == NULL) {
		weft__free(ids);
		weft__free(groups);
		return -ENOMEM;
	}
	ntree = ngroups = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].kind == WEFT__INSPECT_TASK)
			ids[ntree++] = d->v[i].id;
		else if (d->v[i].kind == WEFT__INSPECT_GROUP)
			groups[ngroups++] = (struct insp_gref){ d->v[i].id,
				(int)i };
	}
	qsort(ids, ntree, sizeof *ids, insp_cmp_u64);
	qsort(groups, ngroups, sizeof *groups, insp_cmp_gref);
	int rc = 0;
	for (size_t k = 0; k < ntasks; k++) {
		weft_task_info_t *ti = &tasks[k];
		if (bsearch(&ti->id, ids, ntree, sizeof *ids, insp_cmp_u64))
			continue;
		struct insp_gref key = { ti->group_id, -1 };
		struct insp_gref *g = bsearch(&key, groups, ngroups,
			sizeof *groups, insp_cmp_gref);
		int i = insp_node_new(d, WEFT__INSPECT_TASK, g ? g->node : -1);
		if (i < 0) {
			rc = -ENOMEM;
			break;
		}
		struct weft__inspect_node *x = &d->v[i];
		x->id = ti->id;
		x->group_id = ti->group_id;
		x->parked_on = ti->parked_on;
		x->worker = ti->worker;
		memcpy(x->name, ti->name, sizeof x->name);
		if (g) {
			/* Not linked: it has entered no scope of its own, so
			 * its group's scope decides. */
			x->eff_deadline = d->v[g->node].eff_deadline;
			x->cancelled = d->v[g->node].cancelled;
		}
	}
	weft__free(ids);
	weft__free(groups);
	return rc;
}

/* {======================================================= dump: parked tasks
 *
 * Reading a parked task
 * ---------------------
 * Problem: show where each parked task parked (its stack, unwound from
 * the registers its switch saved) and what it waits on (an object that
 * may be freed as soon as the task leaves the wait), from any thread,
 * without a lock or an atomic read-modify-write on the park, wake or
 * switch paths, and without ever reading the stack of a task that runs.
 *
 * Approach: a pin, Dekker-style.  The dumper reads the park word; if
 * PARKED is set with generation g, the fiber of park g has left its
 * stack (the worker's fetch_add, which also publishes the saved
 * registers: acquire here).  It then stores insp_pin = 1 and reads
 * insp_run, the generation at the task's last switch-in, which the
 * worker that switches a task in stores before it reads insp_pin
 * (sched.c, worker_switch_in).  Either the dumper's load comes first,
 * and then the worker's load of insp_pin comes after the pin store and
 * it spins until the dumper clears the pin; or the worker's store comes
 * first, and the dumper reads a generation >= g and lets go.  So
 * insp_run < g means: the task has not run since park g left its stack
 * and will not until the pin is cleared.
 *
 * The fences of the pair are asymmetric where the kernel allows: the
 * switch-in, on every switch, stores insp_run and loads insp_pin with
 * plain (relaxed store, acquire load) accesses and a compiler barrier
 * between them, and the dumper, once per pin, between its store and its
 * load, calls membarrier(2) (MEMBARRIER_CMD_PRIVATE_EXPEDITED), which
 * returns after every thread of the process that runs has executed a
 * full memory barrier (one that does not run passes one when it is
 * switched in).  Each worker's barrier falls before its store (then its
 * load comes after it, which is after the pin store: it sees the pin),
 * or after its load (then its store is visible before membarrier
 * returns: the dumper reads it), or between the two (both).  A seq_cst
 * store and load on the switch-in cost two locked instructions per
 * hand-off of B5 (about 10 ns of a 70-90 ns round trip here), and
 * dumps are rare.  Where membarrier is missing (old kernels, valgrind,
 * seccomp), and under ThreadSanitizer (which does not model it), all
 * four accesses are seq_cst instead, which gives the single total order
 * the argument above needs (weft__inspect_asym_init decides, at the
 * runtime's creation; rt->insp_asym, copied to every worker).  While
 * pinned:
 *   P1. its stack, saved registers and frames are as park g left them;
 *       the unwinder reads them (bounds-checked to the task's stack),
 *       after the task's last writes (the PARKED release, our acquire)
 *       and before its next ones (our release of the pin, the worker's
 *       acquire load of it);
 *   P2. it is inside the wait that recorded insp_on, which keeps that
 *       object alive (core/inspect.h), so its describer may read it;
 *   P3. the record is this life's: the id re-read after the pin matches.
 * A woken task that has not run yet counts as parked: it is off its
 * stack, and still inside its wait.  Pins are set and cleared by one
 * dumper at a time (rt->insp_lock), one task at a time, and held for
 * one unwind and one description (microseconds; the first unwind of a
 * dump also loads the objects' unwind tables).  A task being switched
 * in meanwhile waits that long on its worker; nothing else does.
 *
 * The park path pays two relaxed stores (insp_on, insp_since: the
 * run-time sampler's clock, core/cpuclock.h, or the cycle counter when
 * the sampler is off), the switch-in one store, one load and two
 * predictable branches (benchmarks B1, B5, B6); a pin, one system call.
 *
 * Rejected: copying the object's state at park time (more stores on the
 * park path, and stale: a Lock changes owner while its waiter sleeps);
 * resolving the object under its own lock without a pin (the object may
 * be freed between reading the pointer and taking the lock); stopping
 * the workers (a dump must not stop the runtime).
 */

/* A task node's id, for finding it from a record. */
struct insp_tref {
	uint64_t id;
	int node;
};

static int insp_cmp_tref(const void *a, const void *b)
{
	return insp_cmp_u64(&((const struct insp_tref *)a)->id,
		&((const struct insp_tref *)b)->id);
}

struct insp_deep_arg {
	struct weft_runtime *rt;
	struct weft__inspect_dump *d;
	struct insp_tref *tasks;
	size_t ntasks;
	uint64_t now_tick;
};

/* The names of the wait kinds, as the dump and the trace print them. */
static const char *const wait_kind_name[WEFT__WAIT_NKINDS] = {
	[WEFT__WAIT_NONE] = "none",
	[WEFT__WAIT_LOCK] = "lock",
	[WEFT__WAIT_EVENT] = "event",
	[WEFT__WAIT_CHAN_SEND] = "channel send",
	[WEFT__WAIT_CHAN_RECV] = "channel receive",
	[WEFT__WAIT_SEMAPHORE] = "semaphore",
	[WEFT__WAIT_LIMITER] = "capacity limiter",
	[WEFT__WAIT_CONDITION] = "condition",
	[WEFT__WAIT_GROUP] = "group",
	[WEFT__WAIT_IO] = "io",
	[WEFT__WAIT_SLEEP] = "sleep",
	[WEFT__WAIT_TASK] = "task",
	[WEFT__WAIT_OFFLOAD] = "to_thread",
	[WEFT__WAIT_SOCK] = "io", /* a socket wait is an I/O wait */
};

const char *weft__wait_kind_name(unsigned kind)
{
	return kind < WEFT__WAIT_NKINDS && wait_kind_name[kind]
		? wait_kind_name[kind]
		: "none";
}

void weft__inspect_wait_describe(unsigned kind, const void *on,
	struct weft__wait_desc *w)
{
	w->deadline = WEFT_FOREVER;
	if (on == NULL || kind == WEFT__WAIT_NONE || kind >= WEFT__WAIT_NKINDS)
		return;
	switch (kind) {
	case WEFT__WAIT_GROUP: {
		/* The group lives until its owner's join returns. */
		const struct weft_group *g = on;
		w->obj = g;
		w->ref_id = g->scope.id;
		break;
	}
	case WEFT__WAIT_SLEEP: {
		/* The sleep's private scope, in the pinned frame. */
		struct weft_scope *s = (struct weft_scope *)on;
		w->obj = s;
		/* relaxed: a value; the owner wrote it before parking. */
		w->deadline = atomic_load_explicit(&s->deadline,
			memory_order_relaxed);
		break;
	}
	case WEFT__WAIT_TASK: {
		/* Type-stable record; its id is 0 once it ended. */
		struct weft_task *o = (struct weft_task *)on;
		w->obj = o;
		/* relaxed: a value for the dump. */
		w->ref_id = atomic_load_explicit(&o->insp_id,
			memory_order_relaxed);
		break;
	}
	default:
		if (weft__wait_describers[kind])
			weft__wait_describers[kind](on, w);
		break;
	}
}

/* What t waits on (t pinned: P2). */
static void insp_describe(struct weft__inspect_node *x, unsigned kind,
	const void *on)
{
	x->wait_kind = (uint8_t)kind;
	weft__inspect_wait_describe(kind, on, &x->wait);
	/* Named with the frames (insp_deep_fn), as a group's open site. */
	x->open_site = (void *)(uintptr_t)x->wait.code;
}

/* Reads pinned task t into x: when it parked, what on, and (with an
 * unwinder) its frames into pcs[0..max), returning how many. */
static int insp_read_pinned(struct weft__bt_session *s, struct weft_task *t,
	struct weft__inspect_node *x, uint64_t now_tick, void **pcs, int max)
{
	/* relaxed: written before the park's PARKED hand-off (P1). */
	uint64_t since = atomic_load_explicit(&t->insp_since,
		memory_order_relaxed);
	const void *on = atomic_load_explicit(&t->insp_on,
		memory_order_relaxed);
	uint64_t mask = ((uint64_t)1 << WEFT__WAIT_KIND_BITS) - 1;
	/* Both ticks lost their top bits to the kind: subtract modulo
	 * 2^(64 - bits). */
	uint64_t ticks = ((now_tick << WEFT__WAIT_KIND_BITS) -
				 (since & ~mask)) >>
		WEFT__WAIT_KIND_BITS;
	/* The park's tick may come from the run-time sampler, published on
	 * another CPU: one a hair ahead of now_tick reads as 0, not as a
	 * wrapped difference. */
	if (ticks >> (63 - WEFT__WAIT_KIND_BITS))
		ticks = 0;
	x->pinned = true;
	x->parked_ns = weft__tick_to_ns(ticks);
	insp_describe(x, (unsigned)(since & mask), on);
	/* A sleep that gave its stack back (weft_sleep_until_opts): its
	 * frames and saved registers are in a heap copy, and reading the
	 * stack would map its pages again.  Written by the task before its
	 * park (P1). */
	if (t->park_image != NULL)
		x->stack_released = true;
	if (t->stack == NULL || x->stack_released ||
		!weft__backtrace_can_unwind(s))
		return 0;
	struct weft__bt_context c;
	c.lo = (uintptr_t)t->stack->lo;
	c.hi = c.lo + t->stack->size;
	weft__fiber_saved_regs(&t->cont, c.regs);
	return weft__backtrace_unwind(s, &c, pcs, max);
}

/* The heavy half of the asymmetric fence (see the essay): true once
 * every running thread of the process has executed a full barrier. */
static bool insp_fence_heavy(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0,
		       0) == 0;
}

bool weft__inspect_asym_init(void)
{
#ifdef WEFT__TSAN
	return false;
#else
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		return false;
	/* Per process, and idempotent: every runtime asks again. */
	return syscall(SYS_membarrier,
		       MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

/* Pins each parked task of the dump in turn (see the essay). */
static void insp_pin_all(struct weft__bt_session *s, struct insp_deep_arg *a)
{
	/* Every record, as in insp_scan. */
	for (struct weft__record_chunk *c =
			weft__record_arena_first(&a->rt->tasks);
		c; c = c->next)
		for (struct weft_task *t = c->recs; t < c->recs + c->nrec;
			t++) {
			/* acquire: as in insp_read. */
			uint64_t id = atomic_load_explicit(&t->insp_id,
				memory_order_acquire);
			if (id == 0)
				continue;
			struct insp_tref key = { id, -1 };
			struct insp_tref *r = bsearch(&key, a->tasks, a->ntasks,
				sizeof *a->tasks, insp_cmp_tref);
			if (r == NULL)
				continue;
			/* seq_cst: acquires the PARKED fetch_add (P1), and is ordered
		 * before the pin store. */
			uint64_t p = atomic_load_explicit(&t->park,
				memory_order_seq_cst);
			if (!(p & WEFT__PARK_PARKED))
				continue;
			uint64_t gen = p >> WEFT__PARK_GEN_SHIFT;
			/* seq_cst store, then seq_cst load: the Dekker pair with
		 * worker_switch_in (sched.c), with the heavy half of the
		 * asymmetric fence between them when the workers use the
		 * light one (see the essay). */
			atomic_store_explicit(&t->insp_pin, 1,
				memory_order_seq_cst);
			void *pcs[WEFT__BACKTRACE_MAX];
			int n = 0;
			struct weft__inspect_node *x = &a->d->v[r->node];
			/* Registered at the runtime's creation, so it fails
			 * only if the kernel lost it: then the stack is left
			 * unread (n stays 0). */
			bool fenced = !a->rt->insp_asym || insp_fence_heavy();
			if (fenced &&
				atomic_load_explicit(&t->insp_run,
					memory_order_seq_cst) < gen &&
				/* relaxed: P3; the pin keeps the life from
			 * ending. */
				atomic_load_explicit(&t->insp_id,
					memory_order_relaxed) == id)
				n = insp_read_pinned(s, t, x, a->now_tick, pcs,
					WEFT__BACKTRACE_MAX);
			/* release: the reads above happen before the task runs again
		 * (pairs with the acquire in weft__inspect_wait_unpinned). */
			atomic_store_explicit(&t->insp_pin, 0,
				memory_order_release);
			if (n > 0) {
				x->pcs = weft__alloc(
					(size_t)n * sizeof *x->pcs);
				if (x->pcs) {
					memcpy(x->pcs, pcs,
						(size_t)n * sizeof *pcs);
					x->npcs = n;
				}
			}
		}
}

/* Text of x's frames, one "#i site" line each, up to the task's bottom;
 * NULL when out of memory. */
static char *insp_frames_text(struct weft__bt_session *s,
	const struct weft__inspect_node *x)
{
	char buf[WEFT__BACKTRACE_MAX * 160];
	size_t len = 0;
	for (int i = 0; i < x->npcs; i++) {
		char site[256];
		int bottom = 0;
		weft__backtrace_session_site(s, x->pcs[i], site, sizeof site,
			&bottom);
		if (i > 0 && bottom)
			break;
		int k = snprintf(buf + len, sizeof buf - len, "#%d %s\n", i,
			site);
		if (k < 0 || (size_t)k >= sizeof buf - len)
			break;
		len += (size_t)k;
	}
	char *out = weft__alloc(len + 1);
	if (out) {
		memcpy(out, buf, len);
		out[len] = '\0';
	}
	return out;
}

static void insp_deep_fn(struct weft__bt_session *s, void *arg)
{
	struct insp_deep_arg *a = arg;
	insp_pin_all(s, a);
	/* Symbols after every pin is released. */
	for (size_t i = 0; i < a->d->n; i++) {
		struct weft__inspect_node *x = &a->d->v[i];
		if (x->npcs > 0)
			x->bt = insp_frames_text(s, x);
		if (x->open_site) {
			char site[256];
			/* A group's is a return address; a task's, a
			 * function (insp_describe). */
			if (x->kind == WEFT__INSPECT_TASK)
				weft__backtrace_session_code(s, x->open_site,
					site, sizeof site);
			else
				weft__backtrace_session_site(s, x->open_site,
					site, sizeof site, NULL);
			size_t n = strlen(site);
			x->site = weft__alloc(n + 1);
			if (x->site)
				memcpy(x->site, site, n + 1);
		}
	}
}

/* Fills the parked tasks' details and the texts of d (best effort: what
 * cannot be allocated is left out). */
static void insp_deep(struct weft_runtime *rt, struct weft__inspect_dump *d)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++)
		n += d->v[i].kind == WEFT__INSPECT_TASK;
	struct insp_tref *tasks = weft__alloc((n + 1) * sizeof *tasks);
	if (tasks == NULL)
		return;
	n = 0;
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].kind == WEFT__INSPECT_TASK)
			tasks[n++] = (struct insp_tref){ d->v[i].id, (int)i };
	qsort(tasks, n, sizeof *tasks, insp_cmp_tref);
	/* The rate of the ticks first: its one-time measurement must not
	 * happen under a pin. */
	(void)weft__tick_to_ns(0);
	struct insp_deep_arg a = { rt, d, tasks, n, weft__tick_now() };
	/* One dumper at a time sets pins (see the essay). */
	pthread_mutex_lock(&rt->insp_lock);
	weft__backtrace_session(insp_deep_fn, &a);
	pthread_mutex_unlock(&rt->insp_lock);
	weft__free(tasks);
}

void weft__inspect_wait_unpinned(struct weft_task *t)
{
	/* acquire: pairs with the dumper's release of the pin, so its reads
	 * of the stack happen before the task runs again. */
	while (atomic_load_explicit(&t->insp_pin, memory_order_acquire))
		WEFT__CPU_RELAX();
}

void weft__inspect_dump_free(struct weft__inspect_dump *d)
{
	for (size_t i = 0; i < d->n; i++) {
		weft__free(d->v[i].pcs);
		weft__free(d->v[i].bt);
		weft__free(d->v[i].site);
		weft__free(d->v[i].note);
	}
	weft__free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

/* }======================================================= */

/* {======================================================= notes */

void weft__inspect_note_add(struct weft_runtime *rt,
	struct weft__inspect_note *n)
{
	n->task_id = 0;
	n->text[0] = '\0';
	n->prev = NULL;
	weft__spin_lock(&rt->notes_lock);
	n->next = rt->notes;
	if (rt->notes)
		rt->notes->prev = n;
	rt->notes = n;
	weft__spin_unlock(&rt->notes_lock);
}

void weft__inspect_note_set(struct weft_runtime *rt,
	struct weft__inspect_note *n, uint64_t task_id, const char *text)
{
	weft__spin_lock(&rt->notes_lock);
	n->task_id = task_id;
	if (text)
		snprintf(n->text, sizeof n->text, "%s", text);
	weft__spin_unlock(&rt->notes_lock);
}

void weft__inspect_note_remove(struct weft_runtime *rt,
	struct weft__inspect_note *n)
{
	weft__spin_lock(&rt->notes_lock);
	if (n->prev)
		n->prev->next = n->next;
	else
		rt->notes = n->next;
	if (n->next)
		n->next->prev = n->prev;
	n->next = n->prev = NULL;
	weft__spin_unlock(&rt->notes_lock);
}

/* A listed note as copied out of the list: its task and its text. */
struct insp_note_copy {
	uint64_t task_id; /* first: the key of insp_cmp_u64 */
	char text[WEFT__NOTE_MAX];
};

/* Copies each listed note into the node of its task (a task without a
 * node, having ended meanwhile, is skipped).  The notes are copied out
 * under their lock into memory allocated outside it (nothing allocates
 * under a spin lock: the owners' updates spin meanwhile), then matched
 * to the task nodes by binary search with the lock released.  A note
 * that cannot be copied for lack of memory is left out: the dump is a
 * best-effort view. */
static void insp_notes(struct weft_runtime *rt, struct weft__inspect_dump *d)
{
	struct insp_note_copy *c = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		size_t count = 0;
		weft__spin_lock(&rt->notes_lock);
		for (struct weft__inspect_note *x = rt->notes; x; x = x->next)
			count += x->task_id != 0;
		if (count <= cap) {
			for (struct weft__inspect_note *x = rt->notes; x;
				x = x->next) {
				if (x->task_id == 0)
					continue;
				c[n].task_id = x->task_id;
				memcpy(c[n].text, x->text, sizeof c[n].text);
				n++;
			}
			weft__spin_unlock(&rt->notes_lock);
			break;
		}
		weft__spin_unlock(&rt->notes_lock);
		/* More notes than room: grow (with slack for notes listed
		 * meanwhile) and count again. */
		weft__free(c);
		cap = count + count / 2 + 4;
		c = weft__alloc(cap * sizeof *c);
		if (c == NULL)
			return;
	}
	if (n > 1)
		qsort(c, n, sizeof *c, insp_cmp_u64);
	for (size_t i = 0; i < d->n && n > 0; i++) {
		struct weft__inspect_node *x = &d->v[i];
		if (x->kind != WEFT__INSPECT_TASK || x->note)
			continue;
		const struct insp_note_copy *m = bsearch(&x->id, c, n,
			sizeof *c, insp_cmp_u64);
		if (m == NULL)
			continue;
		size_t len = strnlen(m->text, sizeof m->text - 1);
		x->note = weft__alloc(len + 1);
		if (x->note) {
			memcpy(x->note, m->text, len);
			x->note[len] = '\0';
		}
	}
	weft__free(c);
}

/* }======================================================= */

int weft__inspect_collect(struct weft_runtime *rt, struct weft__inspect_dump *d,
	size_t *ntasks_out)
{
	/* Live tasks first (see the essay: the tree adds structure, the
	 * snapshot completeness). */
	size_t cap = insp_scan(rt, 0, NULL, 0) + 64;
	weft_task_info_t *tasks = weft__alloc(cap * sizeof *tasks);
	if (tasks == NULL)
		return -ENOMEM;
	size_t ntasks = insp_scan(rt, 0, tasks, cap);
	if (ntasks > cap)
		ntasks = cap;
	pthread_mutex_lock(&rt->insp_lock);
	for (struct weft__root_entry *e = rt->roots; e && !d->oom; e = e->next)
		insp_walk(d, &e->task->root_scope);
	pthread_mutex_unlock(&rt->insp_lock);
	int rc = d->oom ? -ENOMEM : insp_add_unlinked(d, tasks, ntasks);
	weft__free(tasks);
	if (rc < 0)
		return rc;
	insp_notes(rt, d);
	/* The parked tasks' stacks and wait objects, then every text that
	 * needs a symbol lookup (insp_deep). */
	insp_deep(rt, d);
	/* Children lists, in collection order. */
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++) {
		struct weft__inspect_node *x = &d->v[i];
		n += x->kind == WEFT__INSPECT_TASK;
		if (x->parent < 0)
			continue;
		struct weft__inspect_node *p = &d->v[x->parent];
		if (p->last_child < 0)
			p->first_child = (int)i;
		else
			d->v[p->last_child].next_sib = (int)i;
		p->last_child = (int)i;
	}
	*ntasks_out = n;
	return 0;
}

/* }======================================================= */
