/* The weft back end: runs a program on a real runtime with the virtual
 * clock, at a given number of workers.  One runtime per worker count
 * lives for the whole process (runs are repeated weft_runtime_run calls),
 * so an execution costs the program, not thread creation.
 *
 * The root task creates every object first (scopes with their deadlines,
 * events, channels, locks), runs the root's ops, then frees them; groups
 * are retained at open and released there too, so a cancel aimed at a
 * joined group is harmless.  Pointers other tasks read (groups, handles)
 * are published with release stores and read with acquire loads; the
 * rest is written by one task and read after the run. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "mbt.h"

struct real {
	int64_t t0;
	weft_scope_t *scope[MBT_MAX_SCOPES];
	_Atomic(weft_group_t *) group[MBT_MAX_SCOPES];
	_Atomic(weft_task_t *) handle[MBT_MAX_TASKS];
	weft_event_t *ev[MBT_MAX_OBJ];
	weft_channel_tx_t *tx[MBT_MAX_OBJ];
	weft_channel_rx_t *rx[MBT_MAX_OBJ];
	weft_lock_t *lk[MBT_MAX_OBJ];
	struct mbt_exec x;
};

static struct real *R(struct mbt_tc *tc)
{
	return tc->impl;
}

static int r_sleep_until(struct mbt_tc *tc, int half)
{
	return weft_sleep_until(R(tc)->t0 + half * MBT_HALF_NS);
}

static int r_fail(struct mbt_tc *tc, int code)
{
	return weft_fail(code, "t%d", tc->task->id);
}

static int r_scope_enter(struct mbt_tc *tc, int s)
{
	return weft_scope_enter(R(tc)->scope[s]);
}

static int r_scope_exit(struct mbt_tc *tc, int s, int *called, int *caught,
	int *origin)
{
	weft_scope_t *sc = R(tc)->scope[s];
	int rc = weft_scope_exit(sc);
	*called = weft_scope_cancel_called(sc);
	*caught = weft_scope_cancelled_caught(sc);
	weft_cancel_reason_t r;
	memset(&r, 0, sizeof r);
	weft_scope_reason(sc, &r);
	*origin = (int)r.origin;
	return rc;
}

static int r_group_open(struct mbt_tc *tc, int g)
{
	weft_group_t *gr = NULL;
	int rc = weft_group_open(&gr);
	if (rc < 0)
		return rc;
	weft_group_retain(gr);
	/* release: a canceller on another worker reads it (acquire). */
	atomic_store_explicit(&R(tc)->group[g], gr, memory_order_release);
	return 0;
}

static int task_fn(void *arg)
{
	return mbt_task_run(arg);
}

/* The child k's context in r, and its name ("t<id>") into name[16]. */
static struct mbt_tc *kid_tc(struct real *r, const struct mbt_task *k,
	char *name)
{
	struct mbt_tc *kt = &r->x.tc[k->id];
	kt->x = &r->x;
	kt->task = k;
	kt->impl = r;
	snprintf(name, 16, "t%d", k->id);
	return kt;
}

static int r_spawn(struct mbt_tc *tc, int g, const struct mbt_task *k)
{
	struct real *r = R(tc);
	char name[16];
	struct mbt_tc *kt = kid_tc(r, k, name);
	weft_task_t *h = NULL;
	weft_spawn_opts_t o = { .name = name, .handle = &h };
	weft_group_t *gr = atomic_load_explicit(&r->group[g],
		memory_order_relaxed);
	int rc = weft_group_spawn_opts(gr, task_fn, kt, &o);
	if (rc == 0)
		/* release: pairs with the acquire in r_task_cancel. */
		atomic_store_explicit(&r->handle[k->id], h,
			memory_order_release);
	return rc;
}

/* A started task publishes its own handle when it first runs: the start
 * call returns only at started(), and a task-cancel at a later instant
 * must find it. */
static int start_fn(void *arg)
{
	struct mbt_tc *kt = arg;
	weft_task_t *h = weft_current_task();
	weft_task_retain(h);
	/* release: pairs with the acquire in r_task_cancel. */
	atomic_store_explicit(&R(kt)->handle[kt->task->id], h,
		memory_order_release);
	return mbt_task_run(kt);
}

static int r_start(struct mbt_tc *tc, int g, const struct mbt_task *k, int *v)
{
	struct real *r = R(tc);
	char name[16];
	struct mbt_tc *kt = kid_tc(r, k, name);
	weft_group_t *gr = atomic_load_explicit(&r->group[g],
		memory_order_relaxed);
	void *val = NULL;
	int rc = weft_group_start_named(gr, name, start_fn, kt, &val);
	*v = (int)(intptr_t)val;
	return rc;
}

static int r_started(struct mbt_tc *tc, int v)
{
	(void)tc;
	return weft_task_started((void *)(intptr_t)v);
}

static int r_group_fail(struct mbt_tc *tc, int g, int code)
{
	weft_group_t *gr = atomic_load_explicit(&R(tc)->group[g],
		memory_order_relaxed);
	return weft_group_fail(gr, code, "t%d body", tc->task->id);
}

static int r_join(struct mbt_tc *tc, int g, void **err)
{
	weft_group_t *gr = atomic_load_explicit(&R(tc)->group[g],
		memory_order_relaxed);
	weft_error_t *e = NULL;
	int rc = weft_group_join(gr, &e);
	*err = e;
	return rc;
}

static int r_fail_group(struct mbt_tc *tc, void *err)
{
	(void)tc;
	return weft_fail_group(err);
}

struct tcancel {
	struct real *r;
	int s;
};

static void do_cancel(struct real *r, int s)
{
	if (r->x.p->skind[s] == 's') {
		weft_scope_cancel(r->scope[s], NULL);
		return;
	}
	weft_group_t *g = atomic_load_explicit(&r->group[s],
		memory_order_acquire);
	if (g)
		weft_group_cancel(g, NULL);
}

static int thread_cancel(void *arg, void **result)
{
	struct tcancel *c = arg;
	do_cancel(c->r, c->s);
	*result = NULL;
	return 0;
}

static int r_cancel(struct mbt_tc *tc, int s, int from_thread)
{
	if (!from_thread) {
		do_cancel(R(tc), s);
		return 0;
	}
	struct tcancel c = { R(tc), s };
	void *res = NULL;
	return weft_to_thread(thread_cancel, &c, &res, NULL);
}

static int r_task_cancel(struct mbt_tc *tc, int id)
{
	weft_task_t *h = atomic_load_explicit(&R(tc)->handle[id],
		memory_order_acquire);
	if (h)
		weft_task_cancel(h);
	return 0;
}

static int r_ev_set(struct mbt_tc *tc, int e)
{
	return weft_event_set(R(tc)->ev[e]);
}

static int r_ev_wait(struct mbt_tc *tc, int e)
{
	return weft_event_wait(R(tc)->ev[e]);
}

static int r_send(struct mbt_tc *tc, int c, int v)
{
	return weft_channel_send(R(tc)->tx[c], &v);
}

static int r_recv(struct mbt_tc *tc, int c, int *v)
{
	return weft_channel_receive(R(tc)->rx[c], v);
}

static int r_close(struct mbt_tc *tc, int c)
{
	return weft_channel_tx_close(R(tc)->tx[c]);
}

static int r_lock(struct mbt_tc *tc, int l)
{
	return weft_lock_acquire(R(tc)->lk[l]);
}

static int r_unlock(struct mbt_tc *tc, int l)
{
	return weft_lock_release(R(tc)->lk[l]);
}

static const struct mbt_be real_be = {
	.sleep_until = r_sleep_until,
	.fail = r_fail,
	.scope_enter = r_scope_enter,
	.scope_exit = r_scope_exit,
	.group_open = r_group_open,
	.spawn = r_spawn,
	.group_fail = r_group_fail,
	.join = r_join,
	.fail_group = r_fail_group,
	.cancel = r_cancel,
	.task_cancel = r_task_cancel,
	.ev_set = r_ev_set,
	.ev_wait = r_ev_wait,
	.send = r_send,
	.recv = r_recv,
	.close = r_close,
	.lock = r_lock,
	.unlock = r_unlock,
	.start = r_start,
	.started = r_started,
};

static void die(const char *what, int rc)
{
	fprintf(stderr, "mbt: %s: %s\n", what, weft_strerror(rc));
	exit(2);
}

static int root_fn(void *arg)
{
	struct real *r = arg;
	const struct mbt_prog *p = r->x.p;
	r->t0 = weft_now();
	int rc;
	for (int s = 0; s < p->nscopes; s++) {
		if (p->skind[s] != 's')
			continue;
		unsigned fl = 0;
		if (p->sflag[s] & MBT_SHIELD)
			fl |= WEFT_SCOPE_SHIELD;
		if (p->sflag[s] & MBT_FAILAFTER)
			fl |= WEFT_SCOPE_FAIL;
		int64_t d = p->sdead[s] < 0
			? WEFT_FOREVER
			: r->t0 + (2 * p->sdead[s] + 1) * MBT_HALF_NS;
		if ((rc = weft_scope_create(&r->scope[s], d, fl)) < 0)
			die("weft_scope_create", rc);
	}
	for (int e = 0; e < p->nevents; e++)
		if ((rc = weft_event_create(&r->ev[e])) < 0)
			die("weft_event_create", rc);
	for (int c = 0; c < p->nchans; c++)
		if ((rc = weft_channel_open(&r->tx[c], &r->rx[c], sizeof(int),
			     (size_t)p->cap[c])) < 0)
			die("weft_channel_open", rc);
	for (int l = 0; l < p->nlocks; l++)
		if ((rc = weft_lock_create(&r->lk[l])) < 0)
			die("weft_lock_create", rc);
	struct mbt_tc *tc = &r->x.tc[0];
	tc->x = &r->x;
	tc->task = &p->root;
	tc->impl = r;
	int ret = mbt_task_run(tc);
	for (int s = 0; s < p->nscopes; s++) {
		if (r->scope[s])
			weft_scope_destroy(r->scope[s]);
		weft_group_t *g = atomic_load(&r->group[s]);
		if (g)
			weft_group_release(g);
	}
	for (int i = 0; i < MBT_MAX_TASKS; i++) {
		weft_task_t *h = atomic_load(&r->handle[i]);
		if (h)
			weft_task_release(h);
	}
	for (int e = 0; e < p->nevents; e++)
		weft_event_destroy(r->ev[e]);
	for (int c = 0; c < p->nchans; c++) {
		weft_channel_tx_release(r->tx[c]);
		weft_channel_rx_release(r->rx[c]);
	}
	for (int l = 0; l < p->nlocks; l++)
		weft_lock_destroy(r->lk[l]);
	return ret;
}

void mbt_err_text(char **items, int n, char *out, size_t cap);

static void err_text(const weft_error_t *e, char *out, size_t cap)
{
	size_t n = weft_error_count(e);
	char **items = calloc(n ? n : 1, sizeof *items);
	for (size_t i = 0; i < n; i++) {
		items[i] = malloc(2048);
		int k = snprintf(items[i], 2048, "%s:%s%s",
			weft_error_task_name_at(e, i),
			mbt_ename(weft_error_code_at(e, i)),
			weft_error_collateral_at(e, i) ? ":c" : "");
		const weft_error_t *nested = weft_error_nested_at(e, i);
		if (nested)
			err_text(nested, items[i] + k, 2048 - (size_t)k);
	}
	mbt_err_text(items, (int)n, out, cap);
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

static weft_runtime_t *rts[5];

int mbt_real_init(void)
{
	for (unsigned w = 1; w <= 4; w *= 2) {
		weft_config_t cfg;
		weft_config_init(&cfg);
		cfg.workers = w;
		cfg.clock = WEFT_CLOCK_VIRTUAL;
		int rc = weft_runtime_create(&rts[w], &cfg);
		if (rc < 0)
			die("weft_runtime_create", rc);
	}
	return 0;
}

void mbt_real_fini(void)
{
	for (unsigned w = 1; w <= 4; w *= 2) {
		weft_runtime_destroy(rts[w]);
		rts[w] = NULL;
	}
}

static int dump_write(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	fwrite(data, 1, len, stdout);
	return 0;
}

void mbt_real_dump(int workers)
{
	weft_runtime_dump(rts[workers], WEFT_DUMP_TEXT, dump_write, NULL);
	fflush(stdout);
}

int mbt_real(const struct mbt_prog *p, int workers, char *out, size_t n)
{
	struct real *r = calloc(1, sizeof *r);
	r->x.p = p;
	r->x.be = &real_be;
	weft_error_t *err = NULL;
	r->x.run_rc = weft_runtime_run(rts[workers], root_fn, r, &err);
	err_text(err, r->x.err, sizeof r->x.err);
	weft_error_free(err);
	mbt_outcome(&r->x, out, n);
	free(r);
	return 0;
}
