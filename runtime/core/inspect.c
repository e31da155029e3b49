/* Introspection: task snapshots, the tree dump, done callbacks.
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
 * arena, task.c) - and every record ever allocated is on one list, pushed
 * once when the record is allocated (the malloc slow path, under the
 * arena lock).  A snapshot walks that list without a lock.  Each record
 * carries insp_id: the task's id while it is live, 0 otherwise, with
 * plain (release/relaxed) stores by the task's own code.  The snapshot
 * reads insp_id (acquire), copies the few fields it reports, which every
 * writer writes with atomic stores and which no memset touches, then
 * re-reads insp_id after an acquire fence; it keeps the copy only if both
 * reads gave the same non-zero id.  Ids are never reused, so a record
 * that ended and was recycled in between fails the check (the creator
 * fences its writes after the previous life's insp_id = 0).  Every record
 * is visited once, so a task live during the whole walk is seen exactly
 * once; all accesses are atomic, so the racing reads are not data races
 * (ThreadSanitizer stays quiet without annotations).
 *
 * Approach, the dump: the structure and the cancel state live in the
 * cancel-scope tree, whose nodes are on task stacks and in group records
 * that do go away.  The dump walks that tree from each root task, taking
 * each scope's lock before reading its children and keeping the locks of
 * the path down to the current node (parent before child, the tree's
 * lock order): a linked scope cannot unlink, and so cannot be freed,
 * while its parent is locked.  It copies what it reports into an array
 * and formats only after every lock is released.  A child task that has
 * not linked its root scope yet (links are lazy: group.c) is not in the
 * tree; those come from a snapshot and are listed under their group.
 * rt->insp_lock keeps the root records alive during the walk and
 * serialises dumps.
 *
 * Rejected: a children list per group or one list of all tasks (a lock
 * or atomic read-modify-write on every spawn and finish: B1 would pay
 * 10-20%), per-worker registries (a task ends on any worker, so removing
 * it is cross-thread again), and pinning a record with its reference
 * count from the snapshot (weft__task_unref frees at a count of 1
 * without a read-modify-write, which a pin would race with).
 *
 * Cost: task records are retained until the runtime is destroyed (the
 * peak number of live tasks times ~550 bytes); a snapshot costs a walk of
 * every record; a dump holds each scope lock for as long as it takes to
 * copy the subtree below it.
 *
 * Done callbacks (rule 38) use the waiters' protocol of task.c: the
 * registrant lists its node, then re-reads the state (seq_cst both); the
 * finisher stores the state, then reads the list head (seq_cst both), so
 * one of them sees the other, and the lock decides who runs a node that
 * both saw.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "core/group.h"
#include "runtime.h"
#include "core/task.h"
#include "weft/inspect.h"
#include "weft/time.h"
#include "core/sched.h"

_Static_assert(WEFT_TASK_NAME_MAX == WEFT__TASK_NAME_MAX,
	"public and internal task name sizes differ");

/* {======================================================= snapshots */

/* Copies t's name with atomic word loads (see weft__task_name_store). */
static void insp_name_load(const struct weft_task *t, char *out)
{
	uint64_t w[WEFT__TASK_NAME_MAX / sizeof(uint64_t)];
	const uint64_t *src = (const uint64_t *)(const void *)t->name;
	for (size_t i = 0; i < WEFT__TASK_NAME_MAX / sizeof(uint64_t); i++)
		w[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	memcpy(out, w, WEFT__TASK_NAME_MAX);
	out[WEFT__TASK_NAME_MAX - 1] = '\0';
}

/* One validated read of record t; false if it is not live (or changed
 * lives while we read it). */
static bool insp_read(struct weft_task *t, weft_task_info_t *out)
{
	/* acquire: pairs with the release store of insp_id at creation. */
	uint64_t id = atomic_load_explicit(&t->insp_id, memory_order_acquire);
	if (id == 0)
		return false;
	out->group_id = atomic_load_explicit(&t->insp_group_id,
		memory_order_relaxed);
	out->parked_on = atomic_load_explicit(&t->insp_wait,
		memory_order_relaxed);
	out->worker = atomic_load_explicit(&t->insp_worker,
		memory_order_relaxed);
	insp_name_load(t, out->name);
	/* acquire fence: if any read above saw a later life's write, the
	 * re-read below sees that life's insp_id (pairs with the release
	 * fence in weft__task_create). */
	WEFT__INSP_FENCE(memory_order_acquire);
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
	/* acquire: pairs with the release push in weft__record_task_get_slow; each
	 * insp_all_next was written before its record was pushed. */
	for (struct weft_task *t = atomic_load_explicit(&rt->tasks.all,
		memory_order_acquire); t; t = t->insp_all_next) {
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

/* rt, or the calling task's runtime. */
static struct weft_runtime *insp_rt(weft_runtime_t *rt)
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
	struct weft_runtime *r = insp_rt(rt);
	if (r == NULL)
		return WEFT_ENOTFIBER;
	*count = insp_scan(r, 0, out, cap);
	return 0;
}

int weft_group_children(const weft_group_t *g, weft_task_info_t *out,
	size_t cap, size_t *count)
{
	if (g == NULL || count == NULL || (out == NULL && cap > 0))
		return -EINVAL;
	*count = insp_scan(g->rt, g->scope.id, out, cap);
	return 0;
}

/* }======================================================= */

/* {======================================================= task API */

weft_task_t *weft_current_task(void)
{
	return weft__task_current();
}

weft_task_t *weft_root_task(void)
{
	struct weft_task *t = weft__task_current();
	/* Ancestors outlive their descendants: a group's owner cannot end
	 * before the group is joined, and that waits for t. */
	while (t && t->group)
		t = t->group->owner;
	return t;
}

int weft_task_retain(weft_task_t *h)
{
	if (h == NULL)
		return -EINVAL;
	/* relaxed: the caller holds a reference (see weft__task_unref). */
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	return 0;
}

int weft_task_set_name(const char *name)
{
	if (name == NULL)
		return -EINVAL;
	struct weft_task *t = weft__task_current();
	if (t == NULL)
		return WEFT_ENOTFIBER;
	/* Atomic stores: snapshots read the name concurrently. */
	weft__task_name_store(t, name);
	t->name_lit = NULL;
	return 0;
}

weft_group_t *weft_task_group(const weft_task_t *h)
{
	return h ? h->group : NULL;
}

uint64_t weft_group_id(const weft_group_t *g)
{
	return g ? g->scope.id : 0;
}

/* }======================================================= */

/* {======================================================= done callbacks */

static void insp_cb_run(struct weft_task *t, struct weft__done_cb *cb)
{
	bool intrusive = cb->intrusive;  /* fn may free an intrusive node */
	cb->fn(t, cb->arg);
	if (!intrusive)
		weft__free(cb);
	/* The registration's reference; never the last one here (the
	 * finisher still holds its run reference, a late registrant its
	 * handle). */
	weft__task_unref(t);
}

static void insp_cb_register(struct weft_task *h, struct weft__done_cb *cb,
	weft_done_fn fn, void *arg);

int weft_task_on_done(weft_task_t *h, weft_done_fn fn, void *arg)
{
	if (h == NULL || fn == NULL)
		return -EINVAL;
	if (atomic_load_explicit(&h->state, memory_order_acquire) !=
		WEFT_TASK_PENDING) {
		fn(h, arg);
		return 0;
	}
	struct weft__done_cb *cb = weft__alloc(sizeof *cb);
	if (cb == NULL)
		return -ENOMEM;
	cb->intrusive = false;
	insp_cb_register(h, cb, fn, arg);
	return 0;
}

void weft__task_on_done_node(struct weft_task *h, struct weft__done_cb *cb,
	void (*fn)(weft_task_t *h, void *arg), void *arg)
{
	if (atomic_load_explicit(&h->state, memory_order_acquire) !=
		WEFT_TASK_PENDING) {
		fn(h, arg);
		return;
	}
	cb->intrusive = true;
	insp_cb_register(h, cb, fn, arg);
}

/* Lists cb on the pending task h, or runs it if h ended meanwhile. */
static void insp_cb_register(struct weft_task *h, struct weft__done_cb *cb,
	weft_done_fn fn, void *arg)
{
	cb->fn = fn;
	cb->arg = arg;
	/* The registration keeps the record until fn ran (and makes the
	 * finisher see a shared task, so that it reads the list). */
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	weft__spin_lock(&h->waiters_lock);
	cb->next = atomic_load_explicit(&h->done_cbs, memory_order_relaxed);
	/* seq_cst store then seq_cst load of state: pairs with the
	 * finisher's state store then list read (weft__task_finish). */
	atomic_store_explicit(&h->done_cbs, cb, memory_order_seq_cst);
	bool run_now = false;
	if (atomic_load_explicit(&h->state, memory_order_seq_cst) !=
		WEFT_TASK_PENDING) {
		/* The finisher may not have seen cb: if it is still listed,
		 * the finisher has not taken the list (it takes it under
		 * this lock), so it is ours to run. */
		struct weft__done_cb *head = atomic_load_explicit(
			&h->done_cbs, memory_order_relaxed);
		if (head == cb) {
			atomic_store_explicit(&h->done_cbs, cb->next,
				memory_order_relaxed);
			run_now = true;
		}
		for (struct weft__done_cb *c = head; !run_now && c;
			c = c->next)
			if (c->next == cb) {
				c->next = cb->next;
				run_now = true;
			}
	}
	weft__spin_unlock(&h->waiters_lock);
	if (run_now)
		insp_cb_run(h, cb);
}

void weft__task_run_done_cbs(struct weft_task *t)
{
	weft__spin_lock(&t->waiters_lock);
	struct weft__done_cb *list = atomic_load_explicit(&t->done_cbs,
		memory_order_relaxed);
	atomic_store_explicit(&t->done_cbs, NULL, memory_order_relaxed);
	weft__spin_unlock(&t->waiters_lock);
	/* Listed newest first: reverse into registration order. */
	struct weft__done_cb *fifo = NULL;
	while (list) {
		struct weft__done_cb *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		struct weft__done_cb *next = fifo->next;
		insp_cb_run(t, fifo);
		fifo = next;
	}
}

/* }======================================================= */

/* {======================================================= dump: collect */

enum { NODE_TASK, NODE_GROUP, NODE_SCOPE, NODE_SLEEP };

/* One node of the dump, copied under the scope locks. */
struct insp_node {
	uint64_t id;
	uint64_t group_id;     /* task: its group; group: its owner's id */
	int64_t deadline;      /* scopes: own deadline */
	int64_t eff_deadline;  /* effective; for a task, its innermost scope's */
	const char *parked_on; /* task */
	int parent;            /* node index, -1 at the top */
	int first_child, last_child, next_sib;
	int worker;            /* task */
	unsigned inner_depth;  /* task: depth of its innermost scope so far */
	uint8_t kind;
	bool cancel_called;    /* task: cancelling it was requested */
	bool cancelled;        /* effectively (task: innermost scope) */
	bool shield;           /* scope shielded / task behind a shield */
	bool linked;           /* task: found in the scope tree */
	char name[WEFT__TASK_NAME_MAX];
};

struct insp_dump {
	struct insp_node *v;
	size_t n, cap;
	bool oom;
};

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

static int insp_node_new(struct insp_dump *d, uint8_t kind, int parent)
{
	if (!insp_grow((void **)&d->v, &d->cap, d->n, sizeof *d->v)) {
		d->oom = true;
		return -1;
	}
	struct insp_node *x = &d->v[d->n];
	memset(x, 0, sizeof *x);
	x->kind = kind;
	x->parent = parent;
	x->first_child = x->last_child = x->next_sib = -1;
	x->worker = -1;
	x->deadline = x->eff_deadline = WEFT_FOREVER;
	return (int)d->n++;
}

/* Copies live task t into a new node (t's record is alive: its root scope
 * is linked and its parent locked, or it is a listed root). */
static void insp_task_fill(struct insp_node *x, struct weft_task *t)
{
	x->id = t->id;
	x->group_id = atomic_load_explicit(&t->insp_group_id,
		memory_order_relaxed);
	x->parked_on = atomic_load_explicit(&t->insp_wait,
		memory_order_relaxed);
	x->worker = atomic_load_explicit(&t->insp_worker,
		memory_order_relaxed);
	insp_name_load(t, x->name);
	x->linked = true;
}

/* Visits s (locked, as is its parent): adds its node.  task_node is the
 * node of the nearest task above (the task whose scope stack holds s,
 * unless s is a task's root scope).  Returns the node index or -1. */
static int insp_visit(struct insp_dump *d, struct weft_scope *s, int parent,
	int task_node, int64_t parent_eff, unsigned depth)
{
	uint8_t kind = s->kind == WEFT__SCOPE_TASK ? NODE_TASK :
		s->kind == WEFT__SCOPE_GROUP ? NODE_GROUP :
		s->kind == WEFT__SCOPE_FRAME ? NODE_SLEEP : NODE_SCOPE;
	int i = insp_node_new(d, kind, parent);
	if (i < 0)
		return -1;
	struct insp_node *x = &d->v[i];
	int64_t own = atomic_load_explicit(&s->deadline, memory_order_relaxed);
	bool shield = (s->flags & WEFT_SCOPE_SHIELD) != 0;
	x->deadline = own;
	x->eff_deadline = shield || own < parent_eff ? own : parent_eff;
	x->shield = shield;
	x->cancel_called = atomic_load_explicit(&s->cancel_called,
		memory_order_relaxed);
	x->cancelled = atomic_load_explicit(&s->eff_cancelled,
		memory_order_relaxed);
	if (kind == NODE_TASK) {
		insp_task_fill(x, WEFT__CONTAINER_OF(s, struct weft_task,
			root_scope));
		x->inner_depth = depth;
		x->shield = false;
		return i;
	}
	x->id = s->id;
	if (kind == NODE_GROUP)
		x->group_id = WEFT__CONTAINER_OF(s, struct weft_group,
			scope)->owner->id;
	if (task_node >= 0) {
		/* The task's own scopes form one chain: the deepest seen is
		 * its innermost, which decides its effective state. */
		struct insp_node *tn = &d->v[task_node];
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
	struct weft_scope *s;     /* locked */
	struct weft_scope *next;  /* next child to visit */
	int node, task_node;
	int64_t eff;
	unsigned depth;
};

/* Walks the scope tree under root (whose record insp_lock keeps alive),
 * holding the locks of the path from root to the current scope. */
static void insp_walk(struct insp_dump *d, struct weft_scope *root)
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
		f->next = c->next_sib;  /* under f->s's lock */
		weft__spin_lock(&c->lock);
		int ci = insp_visit(d, c, f->node, f->task_node, f->eff,
			f->depth + 1);
		if (ci < 0 || !insp_grow((void **)&st, &cap, n, sizeof *st)) {
			d->oom = true;
			weft__spin_unlock(&c->lock);
			continue;
		}
		f = &st[n - 1];  /* st may have moved */
		st[n] = (struct insp_frame){ c, c->first_child, ci,
			d->v[ci].kind == NODE_TASK ? ci : f->task_node,
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
static int insp_add_unlinked(struct insp_dump *d, weft_task_info_t *tasks,
	size_t ntasks)
{
	size_t ntree = 0, ngroups = 0;
	for (size_t i = 0; i < d->n; i++) {
		ntree += d->v[i].kind == NODE_TASK;
		ngroups += d->v[i].kind == NODE_GROUP;
	}
	uint64_t *ids = weft__alloc((ntree + 1) * sizeof *ids);
	struct insp_gref *groups = weft__alloc((ngroups + 1) *
		sizeof *groups);
	if (ids == NULL || groups == NULL) {
		weft__free(ids);
		weft__free(groups);
		return -ENOMEM;
	}
	ntree = ngroups = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].kind == NODE_TASK)
			ids[ntree++] = d->v[i].id;
		else if (d->v[i].kind == NODE_GROUP)
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
		int i = insp_node_new(d, NODE_TASK, g ? g->node : -1);
		if (i < 0) {
			rc = -ENOMEM;
			break;
		}
		struct insp_node *x = &d->v[i];
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

/* Collects the whole tree of rt into d. */
static int insp_collect(struct weft_runtime *rt, struct insp_dump *d,
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
	for (struct weft__root_entry *e = rt->roots; e && !d->oom;
		e = e->next)
		insp_walk(d, &e->task->root_scope);
	pthread_mutex_unlock(&rt->insp_lock);
	int rc = d->oom ? -ENOMEM : insp_add_unlinked(d, tasks, ntasks);
	weft__free(tasks);
	if (rc < 0)
		return rc;
	/* Children lists, in collection order. */
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++) {
		struct insp_node *x = &d->v[i];
		n += x->kind == NODE_TASK;
		if (x->parent < 0)
			continue;
		struct insp_node *p = &d->v[x->parent];
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

/* {======================================================= dump: write */

struct insp_out {
	weft_dump_writer_fn write;
	void *ctx;
	int rc;
	size_t len;
	char buf[4096];
};

static void insp_flush(struct insp_out *o)
{
	if (o->len > 0 && o->rc == 0) {
		int rc = o->write(o->ctx, o->buf, o->len);
		if (rc < 0)
			o->rc = rc;
	}
	o->len = 0;
}

static void insp_put(struct insp_out *o, const char *s, size_t n)
{
	while (n > 0 && o->rc == 0) {
		if (o->len == sizeof o->buf)
			insp_flush(o);
		size_t k = sizeof o->buf - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

static void insp_printf(struct insp_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void insp_printf(struct insp_out *o, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		insp_put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n :
			sizeof tmp - 1);
}

/* s as a JSON string (quoted), or null. */
static void insp_json_str(struct insp_out *o, const char *s)
{
	if (s == NULL) {
		insp_put(o, "null", 4);
		return;
	}
	insp_put(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			insp_put(o, e, 2);
		} else if (c < 0x20) {
			insp_printf(o, "\\u%04x", c);
		} else {
			insp_put(o, (const char *)&c, 1);
		}
	}
	insp_put(o, "\"", 1);
}

/* A name in the text format: quoted, with quotes, backslashes and
 * control characters escaped so that one node stays one line. */
static void insp_text_str(struct insp_out *o, const char *s)
{
	insp_put(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\' || c < 0x20)
			insp_printf(o, "\\x%02x", c);
		else
			insp_put(o, (const char *)&c, 1);
	}
	insp_put(o, "\"", 1);
}

static const char *const insp_kind_name[] = { "task", "group", "scope",
	"sleep" };

static void insp_deadline_text(struct insp_out *o, const char *key,
	int64_t d, int64_t now)
{
	if (d == WEFT_FOREVER)
		insp_printf(o, " %s=none", key);
	else
		insp_printf(o, " %s=%+.6fs", key, (double)(d - now) / 1e9);
}

static void insp_deadline_json(struct insp_out *o, const char *key,
	int64_t d)
{
	if (d == WEFT_FOREVER)
		insp_printf(o, ",\"%s\":null", key);
	else
		insp_printf(o, ",\"%s\":%" PRId64, key, d);
}

static void insp_node_text(struct insp_out *o, const struct insp_node *x,
	unsigned depth, int64_t now)
{
	for (unsigned i = 0; i < depth; i++)
		insp_put(o, "  ", 2);
	insp_printf(o, "%s id=%" PRIu64, insp_kind_name[x->kind], x->id);
	if (x->kind == NODE_TASK) {
		insp_put(o, " name=", 6);
		insp_text_str(o, x->name);
		insp_printf(o, " state=%s", x->parked_on ? "parked" : "active");
		if (x->parked_on) {
			insp_put(o, " parked_on=", 11);
			insp_text_str(o, x->parked_on);
		}
		insp_printf(o, " worker=%d group=%" PRIu64, x->worker,
			x->group_id);
		insp_deadline_text(o, "deadline", x->eff_deadline, now);
		insp_printf(o, " cancelled=%d cancel_requested=%d "
			"shielded=%d%s\n", x->cancelled, x->cancel_called,
			x->shield, x->linked ? "" : " linked=0");
		return;
	}
	if (x->kind == NODE_GROUP)
		insp_printf(o, " owner=%" PRIu64, x->group_id);
	insp_deadline_text(o, "deadline", x->deadline, now);
	insp_deadline_text(o, "effective_deadline", x->eff_deadline, now);
	insp_printf(o, " cancelled=%d cancel_called=%d shield=%d\n",
		x->cancelled, x->cancel_called, x->shield);
}

/* Opens the node's object; its "children" array stays open. */
static void insp_node_json(struct insp_out *o, const struct insp_node *x)
{
	insp_printf(o, "{\"type\":\"%s\",\"id\":%" PRIu64,
		insp_kind_name[x->kind], x->id);
	if (x->kind == NODE_TASK) {
		insp_put(o, ",\"name\":", 8);
		insp_json_str(o, x->name);
		insp_printf(o, ",\"state\":\"%s\",\"parked_on\":",
			x->parked_on ? "parked" : "active");
		insp_json_str(o, x->parked_on);
		insp_printf(o, ",\"worker\":%d,\"group\":%" PRIu64, x->worker,
			x->group_id);
		insp_deadline_json(o, "deadline", x->eff_deadline);
		insp_printf(o, ",\"cancelled\":%s,\"cancel_requested\":%s,"
			"\"shielded\":%s,\"linked\":%s",
			x->cancelled ? "true" : "false",
			x->cancel_called ? "true" : "false",
			x->shield ? "true" : "false",
			x->linked ? "true" : "false");
	} else {
		if (x->kind == NODE_GROUP)
			insp_printf(o, ",\"owner\":%" PRIu64, x->group_id);
		insp_deadline_json(o, "deadline", x->deadline);
		insp_deadline_json(o, "effective_deadline", x->eff_deadline);
		insp_printf(o, ",\"cancelled\":%s,\"cancel_called\":%s,"
			"\"shield\":%s", x->cancelled ? "true" : "false",
			x->cancel_called ? "true" : "false",
			x->shield ? "true" : "false");
	}
	insp_put(o, ",\"children\":[", 13);
}

/* Writes every node, depth first, without recursion (a tree may be
 * deeper than a fiber's stack allows). */
static int insp_render(struct insp_dump *d, bool json, int64_t now,
	struct insp_out *o)
{
	int *stack = weft__alloc((d->n + 1) * sizeof *stack);
	int *cursor = weft__alloc((d->n + 1) * sizeof *cursor);
	if (stack == NULL || cursor == NULL) {
		weft__free(stack);
		weft__free(cursor);
		return -ENOMEM;
	}
	bool first_top = true;
	for (size_t r = 0; r < d->n; r++) {
		if (d->v[r].parent >= 0)
			continue;
		if (json && !first_top)
			insp_put(o, ",", 1);
		first_top = false;
		size_t sp = 0;
		int x = (int)r;
		for (;;) {
			/* Enter x. */
			if (json)
				insp_node_json(o, &d->v[x]);
			else
				insp_node_text(o, &d->v[x], (unsigned)sp, now);
			stack[sp++] = x;
			cursor[x] = d->v[x].first_child;
			/* Next node to enter, closing finished ones. */
			x = -1;
			while (sp > 0) {
				int top = stack[sp - 1];
				int c = cursor[top];
				if (c >= 0) {
					cursor[top] = d->v[c].next_sib;
					if (json && c != d->v[top].first_child)
						insp_put(o, ",", 1);
					x = c;
					break;
				}
				if (json)
					insp_put(o, "]}", 2);
				sp--;
			}
			if (x < 0)
				break;
		}
	}
	weft__free(stack);
	weft__free(cursor);
	return 0;
}

int weft_runtime_dump(weft_runtime_t *rt, unsigned flags,
	weft_dump_writer_fn write, void *ctx)
{
	if (write == NULL || (flags & ~WEFT_DUMP_JSON))
		return -EINVAL;
	struct weft_runtime *r = insp_rt(rt);
	if (r == NULL)
		return WEFT_ENOTFIBER;
	struct insp_dump d = { 0 };
	size_t ntasks = 0;
	int rc = insp_collect(r, &d, &ntasks);
	if (rc == 0) {
		bool json = flags & WEFT_DUMP_JSON;
		int64_t now = weft_now();
		struct insp_out *o = weft__alloc(sizeof *o);
		if (o == NULL) {
			rc = -ENOMEM;
		} else {
			o->write = write;
			o->ctx = ctx;
			o->rc = 0;
			o->len = 0;
			if (json)
				insp_printf(o, "{\"workers\":%u,\"now\":%" PRId64
					",\"tasks\":%zu,\"tree\":[", r->nworkers,
					now, ntasks);
			else
				insp_printf(o, "weft runtime: workers=%u "
					"tasks=%zu\n", r->nworkers, ntasks);
			rc = insp_render(&d, json, now, o);
			if (json)
				insp_put(o, "]}\n", 3);
			insp_flush(o);
			if (rc == 0)
				rc = o->rc;
			weft__free(o);
		}
	}
	weft__free(d.v);
	return rc;
}

struct insp_buf {
	char *buf;
	size_t size, len;
};

static int insp_buf_write(void *ctx, const char *data, size_t n)
{
	struct insp_buf *b = ctx;
	if (b->len + 1 < b->size) {
		size_t room = b->size - 1 - b->len;
		memcpy(b->buf + b->len, data, n < room ? n : room);
	}
	b->len += n;
	return 0;
}

int weft_runtime_dump_buf(weft_runtime_t *rt, unsigned flags, char *buf,
	size_t size, size_t *len)
{
	if (len == NULL || (buf == NULL && size > 0))
		return -EINVAL;
	struct insp_buf b = { buf, size, 0 };
	int rc = weft_runtime_dump(rt, flags, insp_buf_write, &b);
	if (size > 0)
		buf[b.len < size ? b.len : size - 1] = '\0';
	*len = b.len;
	return rc;
}

/* }======================================================= */
