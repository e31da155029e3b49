/* The task interpreter both back ends share: what a task of a generated
 * program does with the result of each call.  Keeping this in one place
 * means the model and weft can disagree only about the calls' semantics,
 * never about the program's control flow.
 *
 * The policy: every op sleeps until its slot first (a checkpoint).  A
 * -ECANCELED ends the current body; the enclosing scope's exit absorbs it
 * and the task goes on (a cancellation from further out then fails the
 * next checkpoint again: docs/semantics.md rule 21).  A failure code ends
 * the task with that code: FAIL, a fail_after scope's -ETIMEDOUT (rule
 * 10), a join's WEFT_ECHILD_FAILED passed on with weft_fail_group (rule
 * 9), a start's result other than 0 (the started task's failure before
 * started(), WEFT_ENOTSTARTED: rules 14-16).  An owner whose body failed
 * reports it with weft_group_fail before joining (rule 5).  Only an
 * owner's body starts tasks, into its own group; started() may come in
 * any task (in a spawned one it does nothing, rule 15). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <weft.h>

#include "mbt.h"

static const int fail_codes[] = { -EIO, -EPERM, -ENOENT, -EPIPE };

int mbt_fail_code(int i)
{
	return fail_codes[i % 4];
}

const char *mbt_ename(int rc)
{
	if (rc == 0)
		return "0";
	const char *n = weft_err_name(rc);
	return n ? n : "?";
}

static void tr(struct mbt_tc *tc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tr(struct mbt_tc *tc, const char *fmt, ...)
{
	char *b = tc->x->trace[tc->task->id];
	size_t used = strlen(b);
	if (used + 1 >= MBT_TRACE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b + used, MBT_TRACE - used, fmt, ap);
	va_end(ap);
}

static int run_ops(struct mbt_tc *tc, const struct mbt_op *ops, int n);

static int run_scope(struct mbt_tc *tc, const struct mbt_op *op)
{
	const struct mbt_be *be = tc->x->be;
	be->scope_enter(tc, op->a);
	int brc = run_ops(tc, op->ops, op->n);
	int called = 0, caught = 0, origin = 0;
	int erc = be->scope_exit(tc, op->a, &called, &caught, &origin);
	snprintf(tc->x->scope[op->a], sizeof tc->x->scope[op->a],
		"called=%d caught=%d origin=%d exit=%s", called, caught, origin,
		mbt_ename(erc));
	tr(tc, " }%d", op->a);
	if (brc < 0 && brc != -ECANCELED)
		return brc;
	if (erc < 0)
		return be->fail(tc, erc);
	return 0;
}

static int run_group(struct mbt_tc *tc, const struct mbt_op *op)
{
	const struct mbt_be *be = tc->x->be;
	be->group_open(tc, op->a);
	for (int k = 0; k < op->nk; k++) {
		int rc = be->spawn(tc, op->a, &op->kids[k]);
		if (rc < 0)
			tr(tc, " spawn%d:%s", op->kids[k].id, mbt_ename(rc));
	}
	int brc = run_ops(tc, op->ops, op->n);
	if (brc < 0 && brc != -ECANCELED)
		be->group_fail(tc, op->a, brc);
	void *err = NULL;
	int jrc = be->join(tc, op->a, &err);
	tr(tc, " join%d:%s", op->a, mbt_ename(jrc));
	if (jrc == WEFT_ECHILD_FAILED)
		return be->fail_group(tc, err);
	if (jrc < 0)
		return jrc;
	return 0;
}

static int run_op(struct mbt_tc *tc, const struct mbt_op *op)
{
	const struct mbt_be *be = tc->x->be;
	int rc = be->sleep_until(tc, 2 * op->t);
	if (rc < 0) {
		tr(tc, " %d:w%s", op->t, mbt_ename(rc));
		return rc;
	}
	int v = 0;
	switch (op->kind) {
	case OP_SLEEP: tr(tc, " %d", op->t); return 0;
	case OP_FAIL:
		tr(tc, " %d:fail", op->t);
		return be->fail(tc, mbt_fail_code(op->a));
	case OP_SCOPE:
		tr(tc, " %d:{%d", op->t, op->a);
		return run_scope(tc, op);
	case OP_GROUP:
		tr(tc, " %d:g%d", op->t, op->a);
		return run_group(tc, op);
	case OP_CANCEL:
	case OP_TCANCEL:
		rc = be->cancel(tc, op->a, op->kind == OP_TCANCEL);
		tr(tc, " %d:%scancel%d:%s", op->t,
			op->kind == OP_TCANCEL ? "t" : "", op->a,
			mbt_ename(rc));
		return rc == -ECANCELED ? rc : 0;
	case OP_HCANCEL:
		be->task_cancel(tc, op->a);
		tr(tc, " %d:hcancel%d", op->t, op->a);
		return 0;
	case OP_SET:
		be->ev_set(tc, op->a);
		tr(tc, " %d:set%d", op->t, op->a);
		return 0;
	case OP_WAIT:
		rc = be->ev_wait(tc, op->a);
		tr(tc, " %d:wait%d:%s", op->t, op->a, mbt_ename(rc));
		return rc;
	case OP_SEND:
		rc = be->send(tc, op->a, op->t);
		tr(tc, " %d:send%d:%s", op->t, op->a, mbt_ename(rc));
		return rc == -ECANCELED ? rc : 0;
	case OP_RECV:
		rc = be->recv(tc, op->a, &v);
		if (rc == 0)
			tr(tc, " %d:recv%d=%d", op->t, op->a, v);
		else
			tr(tc, " %d:recv%d:%s", op->t, op->a, mbt_ename(rc));
		return rc == -ECANCELED ? rc : 0;
	case OP_CLOSE:
		rc = be->close(tc, op->a);
		tr(tc, " %d:close%d:%s", op->t, op->a, mbt_ename(rc));
		return 0;
	case OP_LOCK:
		rc = be->lock(tc, op->a);
		tr(tc, " %d:lock%d:%s", op->t, op->a, mbt_ename(rc));
		if (rc < 0)
			return rc;
		rc = be->sleep_until(tc, 2 * op->d);
		be->unlock(tc, op->a);
		tr(tc, " %d:unlock%d:%s", op->d, op->a, mbt_ename(rc));
		return rc;
	case OP_START:
		rc = be->start(tc, op->a, &op->kids[0], &v);
		if (rc == 0)
			tr(tc, " %d:start%d=%d", op->t, op->kids[0].id, v);
		else
			tr(tc, " %d:start%d:%s", op->t, op->kids[0].id,
				mbt_ename(rc));
		/* Its failure (or WEFT_ENOTSTARTED) is the body's. */
		return rc;
	case OP_STARTED:
		rc = be->started(tc, op->t);
		tr(tc, " %d:started:%s", op->t, mbt_ename(rc));
		return 0;
	}
	return 0;
}

static int run_ops(struct mbt_tc *tc, const struct mbt_op *ops, int n)
{
	for (int i = 0; i < n; i++) {
		int rc = run_op(tc, &ops[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int mbt_task_run(struct mbt_tc *tc)
{
	struct mbt_exec *x = tc->x;
	int id = tc->task->id;
	x->ran[id] = 1;
	int rc = run_ops(tc, tc->task->ops, tc->task->n);
	x->ret[id] = rc;
	return rc;
}

void mbt_outcome(const struct mbt_exec *x, char *out, size_t n)
{
	size_t used = 0;
#define PUT(...)                                                               \
	do {                                                                   \
		if (used < n)                                                  \
			used += (size_t)snprintf(out + used, n - used,         \
				__VA_ARGS__);                                  \
	} while (0)
	for (int i = 0; i < x->p->ntasks; i++) {
		if (!x->ran[i])
			PUT("t%d: -\n", i);
		else
			PUT("t%d:%s => %s\n", i, x->trace[i],
				mbt_ename(x->ret[i]));
	}
	for (int s = 0; s < x->p->nscopes; s++)
		if (x->scope[s][0])
			PUT("s%d: %s\n", s, x->scope[s]);
	PUT("errors: %s\nrun: %s\n", x->err, mbt_ename(x->run_rc));
#undef PUT
}
