/* The reference model: a single-threaded discrete-event simulation of
 * docs/semantics.md over a program's timeline.
 *
 * Each model task is a pthread, but only one runs at a time: a baton (one
 * mutex, one condition variable per task) passes between the scheduler
 * and the task it resumes, so the interpreter's recursive code runs
 * unchanged and the simulation is sequential and deterministic.  At each
 * instant the scheduler runs every runnable task (FIFO) until all are
 * parked, then moves time to the earliest wake-up: a sleeping task's slot
 * or an armed scope deadline (rule 44: time jumps only when nothing can
 * run).  Only one thing is due at any instant, by construction.
 *
 * Cancellation is computed, not pushed: a task's checkpoint walks from
 * its innermost scope outwards up to the first shield, and the outermost
 * cancelled scope on that path is the source (rules 21, 28, 29). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "mbt.h"

enum { ST_NONE, ST_RUNQ, ST_RUN, ST_PARKED, ST_DONE };
enum {
	PK_NONE,
	PK_SLEEP,
	PK_EVENT,
	PK_SEND,
	PK_RECV,
	PK_LOCK,
	PK_JOIN,
	PK_START, /* a start() caller, until started() or the task's end */
	PK_STARTW /* the same, after it gave up: not cancellable (rule 16) */
};
enum { SS_PENDING, SS_STARTED, SS_ENDED };

struct mtask;
struct mscope {
	int cancelled, origin, observed, shield, fail, opened, exited;
	struct mscope *parent;
	struct mtask *by; /* whose action cancelled it (NULL: its deadline) */
	int when;	  /* the instant it was cancelled */
	long cseq;	  /* M->evseq when it was cancelled */
};

/* What a task saw of the cancellation reaching scope `at` (its source,
 * or NULL) at some point of the current instant. */
struct mobs {
	struct mtask *t;
	struct mscope *at, *src;
};

#define MAX_LEAVES 64

struct merr;
struct mleaf {
	char name[16];
	int code, coll;
	struct merr *nested;
};
struct merr {
	int n;
	struct mleaf l[MAX_LEAVES];
};

struct mtask;
struct mgroup {
	int live, failed, joining;
	struct mtask *owner;
	struct merr *err;
};

struct mtask {
	int id, spawned, st, go;
	pthread_t th;
	pthread_cond_t cv;
	int pk, pobj, puntil, wake_rc, val;
	/* start()/started() (rules 13-16): a started task before it moved
	 * into its group, and the caller waiting for it. */
	int starting, started_called, start_val, rc;
	struct mtask *starter;
	int start_state;
	long pseq;
	long woke_seq; /* M->evseq when it was last made runnable */
	struct mscope root;
	struct mscope *cur;
	struct mgroup *grp;
	struct merr *nested;
};

struct model {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int now;
	long seq;
	long evseq;	   /* numbers cancellations and wakes, in model order */
	const char *abort; /* why the program is not predictable */
	struct mtask *actor; /* the task running now */
	struct mobs obs[256];
	int nobs;
	struct mtask t[MBT_MAX_TASKS];
	struct mscope sc[MBT_MAX_SCOPES];
	struct mgroup g[MBT_MAX_SCOPES];
	int ev[MBT_MAX_OBJ];
	struct {
		int buf[8], nb, closed;
	} ch[MBT_MAX_OBJ];
	struct mtask *lk[MBT_MAX_OBJ];
	struct mtask *runq[MBT_MAX_TASKS * 4];
	int rqh, rqt;
	struct merr *errs[256]; /* every error allocated, freed at the end */
	int nerrs;
	struct mbt_exec x;
};

static struct model *M;

static struct merr *new_err(void)
{
	struct merr *e = calloc(1, sizeof *e);
	if (M->nerrs < 256)
		M->errs[M->nerrs++] = e;
	return e;
}

static struct mtask *self(struct mbt_tc *tc)
{
	return tc->impl;
}

static void push(struct mtask *t)
{
	t->st = ST_RUNQ;
	M->runq[M->rqt++ % (MBT_MAX_TASKS * 4)] = t;
}

static void resume(struct mtask *t)
{
	t->st = ST_RUN;
	t->go = 1;
	M->actor = t;
	pthread_cond_signal(&t->cv);
	while (t->go)
		pthread_cond_wait(&M->cv, &M->m);
	M->actor = NULL;
}

static void block(struct mtask *t)
{
	t->go = 0;
	pthread_cond_signal(&M->cv);
	while (!t->go)
		pthread_cond_wait(&t->cv, &M->m);
}

static void wake(struct mtask *t, int rc)
{
	if (t->st != ST_PARKED)
		return;
	t->pk = PK_NONE;
	t->wake_rc = rc;
	t->woke_seq = ++M->evseq;
	push(t);
}

/* The outermost cancelled scope reaching s's task from s outwards, up to
 * and including the first shielded scope (rules 28, 29). */
static struct mscope *source_from(struct mscope *s)
{
	struct mscope *src = NULL;
	for (; s; s = s->parent) {
		if (s->cancelled)
			src = s;
		if (s->shield)
			break;
	}
	return src;
}

/* Notes what t saw at `at`; checked when the instant ends
 * (instant_races). */
static void observe(struct mtask *t, struct mscope *at, struct mscope *src)
{
	if (M->nobs < (int)(sizeof M->obs / sizeof M->obs[0]))
		M->obs[M->nobs++] = (struct mobs){ t, at, src };
}

static void set_abort(const char *why);

/* t sees cancellation s, which another task's action made in this
 * instant after t was made runnable: on weft t may have looked before s
 * was cancelled (the other direction of instant_races). */
static void seen_late(struct mtask *t, const struct mscope *s)
{
	if (s && s->when == M->now && s->by != t && s->cseq > t->woke_seq)
		set_abort("a cancellation of the instant raced what a task "
			  "saw");
}

/* A checkpoint (rule 22): the source, if any, has been observed (rule
 * 23's "caught" is about what the body observed). */
static int check(struct mtask *t)
{
	struct mscope *s = source_from(t->cur);
	if (!s)
		return 0;
	seen_late(t, s);
	observe(t, t->cur, s);
	s->observed = 1;
	return -ECANCELED;
}

static void set_abort(const char *why)
{
	if (!M->abort)
		M->abort = why;
}

/* Parks until woken; cancellable unless pk is PK_JOIN. */
static int park(struct mtask *t, int pk, int obj)
{
	if (M->abort)
		return -ECANCELED;
	t->pk = pk;
	t->pobj = obj;
	t->pseq = M->seq++;
	t->st = ST_PARKED;
	block(t);
	/* Not parked any more, also when the drain resumed it. */
	t->pk = PK_NONE;
	if (M->abort)
		return -ECANCELED;
	if (t->wake_rc == -ECANCELED) {
		int rc = check(t);
		if (rc == 0)
			set_abort(
				"model: woken by a cancellation it cannot see");
		return -ECANCELED;
	}
	return t->wake_rc;
}

/* The oldest task parked as pk on obj (waiters are FIFO). */
static struct mtask *oldest(int pk, int obj)
{
	struct mtask *best = NULL;
	for (int i = 0; i < MBT_MAX_TASKS; i++) {
		struct mtask *t = &M->t[i];
		if (t->st == ST_PARKED && t->pk == pk && t->pobj == obj &&
			(!best || t->pseq < best->pseq))
			best = t;
	}
	return best;
}

/* Rule 31: marks s (the first reason stays) and wakes every task parked
 * where the cancellation now reaches; rule 42: a waiter woken so leaves
 * its queue before any grant, so the lock, item or notification goes to
 * the next one. */
static void cancel(struct mscope *s, int origin)
{
	if (s->cancelled)
		return;
	s->cancelled = 1;
	s->origin = origin;
	s->by = M->actor;
	s->when = M->now;
	s->cseq = ++M->evseq;
	for (int i = 0; i < MBT_MAX_TASKS; i++) {
		struct mtask *t = &M->t[i];
		if (t->st == ST_PARKED && t->pk != PK_JOIN &&
			t->pk != PK_STARTW && source_from(t->cur))
			wake(t, -ECANCELED);
	}
}

static void *task_main(void *arg);

static void start_task(struct mtask *t, const struct mbt_task *node,
	struct mscope *parent, struct mgroup *g)
{
	struct mbt_tc *tc = &M->x.tc[node->id];
	tc->x = &M->x;
	tc->task = node;
	tc->impl = t;
	t->id = node->id;
	t->spawned = 1;
	t->root.parent = parent;
	t->cur = &t->root;
	t->grp = g;
	pthread_cond_init(&t->cv, NULL);
	push(t);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 256 * 1024);
	if (pthread_create(&t->th, &at, task_main, t) != 0) {
		fprintf(stderr, "mbt: pthread_create failed\n");
		abort();
	}
	pthread_attr_destroy(&at);
}

static void add_leaf(struct merr *e, const char *name, int code, int coll,
	struct merr *nested)
{
	if (e->n >= MAX_LEAVES)
		return;
	struct mleaf *l = &e->l[e->n++];
	snprintf(l->name, sizeof l->name, "%s", name);
	l->code = code;
	l->coll = coll;
	l->nested = nested;
}

static void task_name(int id, char *b, size_t n)
{
	if (id == 0)
		snprintf(b, n, "main");
	else
		snprintf(b, n, "t%d", id);
}

static struct merr *root_err;

static void group_failed(struct mgroup *g, struct mscope *gs)
{
	/* Rule 4: the first failure cancels the group, once. */
	if (!g->failed) {
		g->failed = 1;
		cancel(gs, WEFT_CANCEL_GROUP_FAILURE);
	}
}

static void task_end(struct mtask *t, int rc)
{
	t->rc = rc;
	if (t->starting) {
		/* Rule 14: before started() its outcome is the start()
		 * caller's to report, not the group's; it was counted in
		 * the group all the same. */
		t->starting = 0;
		struct mtask *c = t->starter;
		c->start_state = SS_ENDED;
		if (c->st == ST_PARKED &&
			(c->pk == PK_START || c->pk == PK_STARTW))
			wake(c, 0);
		rc = 0;
	}
	if (rc < 0 && rc != -ECANCELED) {
		/* Rule 11: collateral when the task's own root scope was
		 * reached by a cancellation. */
		char name[16];
		task_name(t->id, name, sizeof name);
		int coll = source_from(&t->root) != NULL;
		struct merr *nested = rc == WEFT_ECHILD_FAILED ? t->nested
							       : NULL;
		if (t->grp) {
			if (!t->grp->err)
				t->grp->err = new_err();
			add_leaf(t->grp->err, name, rc, coll, nested);
			group_failed(t->grp, t->root.parent);
		} else {
			root_err = new_err();
			add_leaf(root_err, name, rc, coll, nested);
		}
	}
	if (t->grp) {
		struct mgroup *g = t->grp;
		if (--g->live == 0 && g->joining && g->owner->pk == PK_JOIN)
			wake(g->owner, 0);
	}
}

static void *task_main(void *arg)
{
	struct mtask *t = arg;
	pthread_mutex_lock(&M->m);
	while (!t->go)
		pthread_cond_wait(&t->cv, &M->m);
	int rc = mbt_task_run(&M->x.tc[t->id]);
	task_end(t, rc);
	t->st = ST_DONE;
	t->go = 0;
	pthread_cond_signal(&M->cv);
	pthread_mutex_unlock(&M->m);
	return NULL;
}

/* {======================================================= back end */

static int m_sleep_until(struct mbt_tc *tc, int half)
{
	struct mtask *t = self(tc);
	int rc = check(t);
	if (rc)
		return rc;
	if (half <= M->now) {
		/* The op would act at an instant where something else
		 * happens too: the order between them is the schedule's. */
		set_abort("late: an op's slot passed while it waited");
		return -ECANCELED;
	}
	t->puntil = half;
	return park(t, PK_SLEEP, 0);
}

static int m_fail(struct mbt_tc *tc, int code)
{
	(void)tc;
	return code;
}

static int m_scope_enter(struct mbt_tc *tc, int s)
{
	struct mtask *t = self(tc);
	struct mscope *sc = &M->sc[s];
	sc->parent = t->cur;
	sc->opened = 1;
	t->cur = sc;
	return 0;
}

static int m_scope_exit(struct mbt_tc *tc, int s, int *called, int *caught,
	int *origin)
{
	struct mtask *t = self(tc);
	struct mscope *sc = &M->sc[s];
	t->cur = sc->parent;
	sc->exited = 1;
	struct mscope *outer = sc->shield ? NULL : source_from(sc->parent);
	if (!sc->shield)
		observe(t, sc->parent, outer);
	seen_late(t, outer);
	if (sc->cancelled)
		seen_late(t, sc);
	*called = sc->cancelled;
	/* Rule 29: when nested scopes are cancelled the outermost one
	 * catches; rule 23: only if the body observed it. */
	*caught = sc->cancelled && sc->observed && !outer;
	if (sc->cancelled)
		*origin = sc->origin;
	else
		*origin = outer ? WEFT_CANCEL_PARENT : WEFT_CANCEL_NONE;
	/* Rule 27: -ETIMEDOUT exactly when it caught its own deadline. */
	if (sc->fail && *caught && sc->origin == WEFT_CANCEL_DEADLINE)
		return -ETIMEDOUT;
	return 0;
}

static int m_group_open(struct mbt_tc *tc, int g)
{
	struct mtask *t = self(tc);
	struct mscope *gs = &M->sc[g];
	gs->parent = t->cur;
	gs->opened = 1;
	t->cur = gs;
	M->g[g].owner = t;
	return 0;
}

static int m_spawn(struct mbt_tc *tc, int g, const struct mbt_task *k)
{
	(void)tc;
	/* Rule 3: a cancelled group still accepts spawns. */
	M->g[g].live++;
	start_task(&M->t[k->id], k, &M->sc[g], &M->g[g]);
	return 0;
}

static int m_group_fail(struct mbt_tc *tc, int g, int code)
{
	struct mtask *t = self(tc);
	char name[16];
	task_name(t->id, name, sizeof name);
	struct mgroup *gr = &M->g[g];
	if (!gr->err)
		gr->err = new_err();
	/* Rule 5: a leaf named after the owner; it is collateral when the
	 * body it failed in (the group's scope) was already cancelled. */
	add_leaf(gr->err, name, code, source_from(&M->sc[g]) != NULL, NULL);
	group_failed(gr, &M->sc[g]);
	return code;
}

static int m_join(struct mbt_tc *tc, int g, void **err)
{
	struct mtask *t = self(tc);
	struct mgroup *gr = &M->g[g];
	struct mscope *gs = &M->sc[g];
	gr->joining = 1;
	/* Rule 1: waits for every child, uncancellably (rule 6). */
	if (gr->live > 0)
		park(t, PK_JOIN, g);
	t->cur = gs->parent;
	gs->exited = 1;
	if (gr->failed) {
		*err = gr->err;
		return WEFT_ECHILD_FAILED;
	}
	/* Rule 6: the group absorbs its own cancellation; an outer one
	 * passes through. */
	return check(t);
}

static int m_start(struct mbt_tc *tc, int g, const struct mbt_task *k, int *v)
{
	struct mtask *t = self(tc);
	struct mtask *kid = &M->t[k->id];
	/* Rule 14: counted in the group at once, but run under the
	 * caller's current scope until started(). */
	M->g[g].live++;
	t->start_state = SS_PENDING;
	kid->starting = 1;
	kid->starter = t;
	start_task(kid, k, t->cur, &M->g[g]);
	int rc = 0;
	while (t->start_state == SS_PENDING && rc == 0) {
		rc = park(t, PK_START, k->id);
		if (M->abort)
			return -ECANCELED;
	}
	if (t->start_state == SS_PENDING) {
		/* Rule 16: cancelled first: cancel the task and wait for
		 * its end, uninterruptibly. */
		cancel(&kid->root, WEFT_CANCEL_START);
		while (t->start_state == SS_PENDING && !M->abort)
			park(t, PK_STARTW, k->id);
		if (M->abort)
			return -ECANCELED;
		return kid->rc == 0 || kid->rc == -ECANCELED ? -ECANCELED
							     : kid->rc;
	}
	if (t->start_state == SS_STARTED) {
		*v = kid->start_val;
		return 0;
	}
	/* Ended before it moved into the group. */
	if (kid->started_called && (kid->rc == 0 || kid->rc == -ECANCELED)) {
		check(t);
		return -ECANCELED;
	}
	/* Rule 16: a caller cancelled meanwhile reports -ECANCELED, not
	 * the task's missing started(). */
	if (kid->rc == 0)
		return check(t) ? -ECANCELED : WEFT_ENOTSTARTED;
	return kid->rc;
}

static int m_started(struct mbt_tc *tc, int v)
{
	struct mtask *t = self(tc);
	if (t->started_called)
		return WEFT_EALREADY;
	if (!t->starting)
		return 0; /* rule 15: spawned, not started */
	t->started_called = 1;
	t->start_val = v;
	/* Rule 16: under a cancelled caller it stays where it is; the
	 * caller, woken by that cancellation, gives up on it. */
	if (source_from(t->root.parent))
		return 0;
	t->root.parent = &M->sc[t->grp - M->g];
	t->starting = 0;
	struct mtask *c = t->starter;
	c->start_state = SS_STARTED;
	wake(c, 0);
	return 0;
}

static int m_fail_group(struct mbt_tc *tc, void *err)
{
	self(tc)->nested = err;
	return WEFT_ECHILD_FAILED;
}

static int m_cancel(struct mbt_tc *tc, int s, int from_thread)
{
	struct mtask *t = self(tc);
	struct mscope *sc = &M->sc[s];
	/* A group that is not open yet has no scope to cancel; a scope may
	 * be cancelled before it is entered (rule 25). */
	if (M->x.p->skind[s] == 's' || sc->opened)
		cancel(sc, WEFT_CANCEL_EXPLICIT);
	/* Rule 39: the task waited for the offload function, which cannot
	 * be interrupted, and then reports a cancellation that reached it
	 * meanwhile. */
	if (!from_thread)
		return 0;
	int rc = check(t);
	/* The cancel can reach this task through others in the same
	 * instant (a group failure it set off): on weft that races the
	 * offload call's return, which may then report -ECANCELED or 0
	 * (offload threads are outside the seed, rule 47).  The model saw
	 * 0; instant_races rejects the program if it was so. */
	if (rc == 0)
		observe(t, t->cur, NULL);
	return rc;
}

static int m_task_cancel(struct mbt_tc *tc, int id)
{
	(void)tc;
	struct mtask *v = &M->t[id];
	/* Rule 18: the task's own root scope; nothing once it ended. */
	if (v->spawned && v->st != ST_DONE)
		cancel(&v->root, WEFT_CANCEL_TASK);
	return 0;
}

static int m_ev_set(struct mbt_tc *tc, int e)
{
	(void)tc;
	M->ev[e] = 1;
	for (struct mtask *w; (w = oldest(PK_EVENT, e));)
		wake(w, 0);
	return 0;
}

static int m_ev_wait(struct mbt_tc *tc, int e)
{
	struct mtask *t = self(tc);
	int rc = check(t);
	if (rc)
		return rc;
	if (M->ev[e])
		return 0;
	return park(t, PK_EVENT, e);
}

static int m_send(struct mbt_tc *tc, int c, int v)
{
	struct mtask *t = self(tc);
	int rc = check(t);
	if (rc)
		return rc;
	if (M->ch[c].closed)
		return WEFT_ECLOSED;
	struct mtask *r = oldest(PK_RECV, c);
	if (r) {
		r->val = v;
		wake(r, 0);
		return 0;
	}
	if (M->ch[c].nb < M->x.p->cap[c]) {
		M->ch[c].buf[M->ch[c].nb++] = v;
		return 0;
	}
	t->val = v;
	return park(t, PK_SEND, c);
}

static int m_recv(struct mbt_tc *tc, int c, int *v)
{
	struct mtask *t = self(tc);
	int rc = check(t);
	if (rc)
		return rc;
	struct mtask *s = oldest(PK_SEND, c);
	if (M->ch[c].nb > 0) {
		*v = M->ch[c].buf[0];
		memmove(M->ch[c].buf, M->ch[c].buf + 1,
			(size_t)--M->ch[c].nb * sizeof(int));
		if (s) {
			M->ch[c].buf[M->ch[c].nb++] = s->val;
			wake(s, 0);
		}
		return 0;
	}
	if (s) {
		*v = s->val;
		wake(s, 0);
		return 0;
	}
	/* Rule 41: drained and closed. */
	if (M->ch[c].closed)
		return WEFT_EEND;
	rc = park(t, PK_RECV, c);
	if (rc == 0)
		*v = t->val;
	return rc;
}

static int m_close(struct mbt_tc *tc, int c)
{
	(void)tc;
	/* weft_channel_tx_close (weft/channel.h): closing a closed end does
	 * nothing; calls through the end, parked ones included, get
	 * WEFT_ECLOSED (rule 41: the programs have one send end). */
	if (M->ch[c].closed)
		return 0;
	M->ch[c].closed = 1;
	for (struct mtask *s; (s = oldest(PK_SEND, c));)
		wake(s, WEFT_ECLOSED);
	for (struct mtask *r; (r = oldest(PK_RECV, c));)
		wake(r, WEFT_EEND);
	return 0;
}

static int m_lock(struct mbt_tc *tc, int l)
{
	struct mtask *t = self(tc);
	int rc = check(t);
	if (rc)
		return rc;
	if (!M->lk[l]) {
		M->lk[l] = t;
		return 0;
	}
	return park(t, PK_LOCK, l);
}

static int m_unlock(struct mbt_tc *tc, int l)
{
	(void)tc;
	/* FIFO hand-off to the oldest waiter still queued. */
	struct mtask *w = oldest(PK_LOCK, l);
	M->lk[l] = w;
	if (w)
		wake(w, 0);
	return 0;
}

static const struct mbt_be model_be = {
	.sleep_until = m_sleep_until,
	.fail = m_fail,
	.scope_enter = m_scope_enter,
	.scope_exit = m_scope_exit,
	.group_open = m_group_open,
	.spawn = m_spawn,
	.group_fail = m_group_fail,
	.join = m_join,
	.fail_group = m_fail_group,
	.cancel = m_cancel,
	.task_cancel = m_task_cancel,
	.start = m_start,
	.started = m_started,
	.ev_set = m_ev_set,
	.ev_wait = m_ev_wait,
	.send = m_send,
	.recv = m_recv,
	.close = m_close,
	.lock = m_lock,
	.unlock = m_unlock,
};

/* }======================================================= */

/* Canonical text of an error tree: entries sorted. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void mbt_err_text(char **items, int n, char *out, size_t cap);

static void err_text(const struct merr *e, char *out, size_t cap)
{
	char *items[MAX_LEAVES];
	int n = e ? e->n : 0;
	for (int i = 0; i < n; i++) {
		const struct mleaf *l = &e->l[i];
		items[i] = malloc(2048);
		int k = snprintf(items[i], 2048, "%s:%s%s", l->name,
			mbt_ename(l->code), l->coll ? ":c" : "");
		if (l->nested)
			err_text(l->nested, items[i] + k, 2048 - (size_t)k);
	}
	mbt_err_text(items, n, out, cap);
	for (int i = 0; i < n; i++)
		free(items[i]);
}

void mbt_err_text(char **items, int n, char *out, size_t cap)
{
	qsort(items, (size_t)n, sizeof *items, cmp_str);
	size_t used = 0;
	used += (size_t)snprintf(out, cap, "[");
	for (int i = 0; i < n && used < cap; i++)
		used += (size_t)snprintf(out + used, cap - used, "%s%s",
			i ? ", " : "", items[i]);
	if (used < cap)
		snprintf(out + used, cap - used, "]");
}

/* At the end of an instant: an observation of cancellation (a
 * checkpoint's source, a scope exit's outer cancellation, an offload
 * cancel's return) that a later cancellation of the same instant would
 * have changed, made by another task's action.  weft runs the tasks of an
 * instant in parallel, or in another order, so either outcome can occur:
 * the program is not predictable.  (A cancellation the observer's own
 * action caused comes after its observation on weft too.) */
static void instant_races(void)
{
	for (int i = 0; i < M->nobs; i++) {
		struct mobs *o = &M->obs[i];
		struct mscope *now = source_from(o->at);
		if (now != o->src && now && now->when == M->now &&
			now->by != o->t)
			set_abort("two cancellations of one instant race an "
				  "observation");
	}
	M->nobs = 0;
}

int mbt_model(const struct mbt_prog *p, char *out, size_t n, const char **why)
{
	M = calloc(1, sizeof *M);
	root_err = NULL;
	pthread_mutex_init(&M->m, NULL);
	pthread_cond_init(&M->cv, NULL);
	M->x.p = p;
	M->x.be = &model_be;
	for (int s = 0; s < p->nscopes; s++) {
		M->sc[s].shield = (p->sflag[s] & MBT_SHIELD) != 0;
		M->sc[s].fail = (p->sflag[s] & MBT_FAILAFTER) != 0;
	}
	pthread_mutex_lock(&M->m);
	start_task(&M->t[0], &p->root, NULL, NULL);
	for (;;) {
		while (M->rqh != M->rqt && !M->abort)
			resume(M->runq[M->rqh++ % (MBT_MAX_TASKS * 4)]);
		if (M->abort)
			break;
		instant_races();
		if (M->abort)
			break;
		int next = -1;
		struct mtask *ts = NULL;
		struct mscope *sd = NULL;
		for (int i = 0; i < MBT_MAX_TASKS; i++) {
			struct mtask *t = &M->t[i];
			if (t->st == ST_PARKED && t->pk == PK_SLEEP &&
				(next < 0 || t->puntil < next)) {
				next = t->puntil;
				ts = t;
			}
		}
		/* A future deadline is armed while its scope is entered
		 * (weft_scope_set_deadline in weft/cancel.h; the runner
		 * creates every scope at the start, and the generator puts
		 * each deadline after its scope's entry). */
		for (int s = 0; s < p->nscopes; s++) {
			struct mscope *sc = &M->sc[s];
			int h = 2 * p->sdead[s] + 1;
			if (p->sdead[s] >= 0 && !sc->cancelled && sc->opened &&
				!sc->exited && h > M->now &&
				(next < 0 || h < next)) {
				next = h;
				ts = NULL;
				sd = sc;
			}
		}
		if (next < 0) {
			for (int i = 0; i < MBT_MAX_TASKS; i++)
				if (M->t[i].spawned && M->t[i].st != ST_DONE)
					set_abort(
						"deadlock: every task blocked");
			break;
		}
		M->now = next;
		if (ts)
			wake(ts, 0);
		else
			cancel(sd, WEFT_CANCEL_DEADLINE);
	}
	/* An unpredictable program: let every task run out (nothing parks
	 * any more) so that its thread can be joined. */
	for (int any = 1; any;) {
		any = 0;
		for (int i = 0; i < MBT_MAX_TASKS; i++) {
			struct mtask *t = &M->t[i];
			if (t->spawned && t->st != ST_DONE) {
				any = 1;
				t->wake_rc = -ECANCELED;
				resume(t);
			}
		}
	}
	pthread_mutex_unlock(&M->m);
	for (int i = 0; i < MBT_MAX_TASKS; i++)
		if (M->t[i].spawned) {
			pthread_join(M->t[i].th, NULL);
			pthread_cond_destroy(&M->t[i].cv);
		}
	int rc = 0;
	*why = M->abort;
	if (M->abort) {
		rc = -1;
	} else {
		M->x.run_rc = M->x.ret[0];
		err_text(root_err, M->x.err, sizeof M->x.err);
		mbt_outcome(&M->x, out, n);
	}
	for (int i = 0; i < M->nerrs; i++)
		free(M->errs[i]);
	pthread_cond_destroy(&M->cv);
	pthread_mutex_destroy(&M->m);
	free(M);
	return rc;
}
