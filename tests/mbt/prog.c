/* Programs: the generator, deep copy and free, the readable text form and
 * the shrinking moves.
 *
 * Slots are handed out so that along every task's path they increase and
 * each is used once in the program: an op's slot is above the previous
 * op's, a child's first slot above its spawn's, and the op after a scope,
 * a group or a lock above every slot inside it.  What the generator
 * cannot order (an op after an event wait may come before the set) the
 * model detects ("late") and the program is regenerated. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbt.h"

#define MAX_SLOT 4096

uint64_t mbt_rand(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

struct gen {
	uint64_t r;
	struct mbt_prog *p;
	char used[MAX_SLOT];
	char dused[MAX_SLOT];
	int ops; /* ops generated so far, bounded */
};

static int rnd(struct gen *g, int n)
{
	return (int)(mbt_rand(&g->r) % (uint64_t)n);
}

static int slot_after(struct gen *g, int lo)
{
	int t = lo + 1 + rnd(g, 4);
	while (t < MAX_SLOT - 1 && g->used[t])
		t++;
	g->used[t] = 1;
	return t;
}

static int max_i(int a, int b)
{
	return a > b ? a : b;
}

static int gen_ops(struct gen *g, struct mbt_op **out, int *nout, int lo,
	int depth, int in_owner);

static int gen_task(struct gen *g, struct mbt_task *k, int lo, int depth)
{
	k->id = g->p->ntasks++;
	return gen_ops(g, &k->ops, &k->n, lo, depth, 0);
}

/* Weights of the op kinds. */
static const int weight[OP_NKINDS] = {
	[OP_SLEEP] = 8,
	[OP_FAIL] = 7,
	[OP_SCOPE] = 12,
	[OP_GROUP] = 12,
	[OP_CANCEL] = 8,
	[OP_TCANCEL] = 3,
	[OP_HCANCEL] = 4,
	[OP_SET] = 5,
	[OP_WAIT] = 5,
	[OP_SEND] = 6,
	[OP_RECV] = 6,
	[OP_CLOSE] = 2,
	[OP_LOCK] = 5,
	[OP_START] = 6,
	[OP_STARTED] = 2,
};

static int pick_kind(struct gen *g, int depth, int in_owner)
{
	for (;;) {
		int total = 0;
		for (int k = 0; k < OP_NKINDS; k++)
			total += weight[k];
		int r = rnd(g, total), k = 0;
		while (r >= weight[k])
			r -= weight[k++];
		if ((k == OP_SCOPE || k == OP_GROUP) && depth >= 3)
			continue;
		if (k == OP_SCOPE && g->p->nscopes >= MBT_MAX_SCOPES)
			continue;
		/* An owner's body holds no group of its own: its failure
		 * would have to nest under the owner's weft_group_fail. */
		if (k == OP_GROUP &&
			(in_owner || g->p->nscopes >= MBT_MAX_SCOPES ||
				g->p->ntasks + 3 > MBT_MAX_TASKS))
			continue;
		/* Only an owner's body starts, into its own group (in_owner
		 * is that group's index + 1). */
		if (k == OP_START &&
			(!in_owner || depth >= 3 ||
				g->p->ntasks + 3 > MBT_MAX_TASKS))
			continue;
		return k;
	}
}

static int gen_op(struct gen *g, struct mbt_op *op, int lo, int depth,
	int in_owner)
{
	memset(op, 0, sizeof *op);
	op->kind = pick_kind(g, depth, in_owner);
	op->t = slot_after(g, lo);
	int hi = op->t;
	struct mbt_prog *p = g->p;
	switch (op->kind) {
	case OP_FAIL: op->a = rnd(g, 4); break;
	case OP_SCOPE: {
		int s = p->nscopes++;
		op->a = s;
		p->skind[s] = 's';
		p->sflag[s] = 0;
		if (rnd(g, 5) == 0)
			p->sflag[s] |= MBT_SHIELD;
		if (rnd(g, 4) == 0)
			p->sflag[s] |= MBT_FAILAFTER;
		p->sdead[s] = -1;
		if (rnd(g, 2)) {
			int d = op->t + rnd(g, 10);
			while (d < MAX_SLOT - 1 && g->dused[d])
				d++;
			g->dused[d] = 1;
			p->sdead[s] = d;
		}
		hi = max_i(hi,
			gen_ops(g, &op->ops, &op->n, op->t, depth + 1,
				in_owner));
		break;
	}
	case OP_GROUP: {
		int s = p->nscopes++;
		op->a = s;
		p->skind[s] = 'g';
		p->sdead[s] = -1;
		p->sflag[s] = 0;
		op->nk = 1 + rnd(g, 3);
		op->kids = calloc((size_t)op->nk, sizeof *op->kids);
		for (int k = 0; k < op->nk; k++)
			hi = max_i(hi,
				gen_task(g, &op->kids[k], op->t, depth + 1));
		if (rnd(g, 2))
			hi = max_i(hi,
				gen_ops(g, &op->ops, &op->n, op->t, depth + 1,
					s + 1));
		break;
	}
	case OP_CANCEL:
	case OP_TCANCEL:
		op->a = rnd(g, MBT_MAX_SCOPES); /* fixed up at the end */
		break;
	case OP_HCANCEL: op->a = rnd(g, MBT_MAX_TASKS); break;
	case OP_SET:
	case OP_WAIT: op->a = rnd(g, p->nevents); break;
	case OP_SEND:
	case OP_RECV:
	case OP_CLOSE: op->a = rnd(g, p->nchans); break;
	case OP_LOCK:
		op->a = rnd(g, p->nlocks);
		op->d = slot_after(g, op->t);
		hi = op->d;
		break;
	case OP_START: {
		op->a = in_owner - 1;
		op->nk = 1;
		op->kids = calloc(1, sizeof *op->kids);
		struct mbt_task *k = &op->kids[0];
		hi = max_i(hi, gen_task(g, k, op->t, depth + 1));
		/* Most started tasks call started(), at one of their own
		 * top-level instants (the op there becomes the call). */
		if (rnd(g, 5)) {
			struct mbt_op *c = &k->ops[rnd(g, k->n)];
			if (c->kind != OP_SCOPE && c->kind != OP_GROUP &&
				c->kind != OP_LOCK && c->kind != OP_START)
				c->kind = OP_STARTED;
		}
		break;
	}
	}
	g->ops++;
	return hi;
}

static int gen_ops(struct gen *g, struct mbt_op **out, int *nout, int lo,
	int depth, int in_owner)
{
	int n = 1 + rnd(g, depth == 0 ? 5 : 4);
	if (g->ops > 60)
		n = 1;
	*out = calloc((size_t)n, sizeof **out);
	*nout = n;
	int hi = lo;
	for (int i = 0; i < n; i++) {
		hi = max_i(hi, gen_op(g, &(*out)[i], lo, depth, in_owner));
		lo = hi;
	}
	return hi;
}

static void fix_targets(struct mbt_prog *p, struct mbt_op *ops, int n)
{
	for (int i = 0; i < n; i++) {
		struct mbt_op *op = &ops[i];
		if (op->kind == OP_CANCEL || op->kind == OP_TCANCEL) {
			if (p->nscopes == 0)
				op->kind = OP_SLEEP;
			else
				op->a %= p->nscopes;
		}
		if (op->kind == OP_HCANCEL) {
			if (p->ntasks < 2)
				op->kind = OP_SLEEP;
			else
				op->a = 1 + op->a % (p->ntasks - 1);
		}
		fix_targets(p, op->ops, op->n);
		for (int k = 0; k < op->nk; k++)
			fix_targets(p, op->kids[k].ops, op->kids[k].n);
	}
}

void mbt_gen(struct mbt_prog *p, uint64_t seed)
{
	struct gen *g = calloc(1, sizeof *g);
	memset(p, 0, sizeof *p);
	g->r = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
	if (g->r == 0)
		g->r = 1;
	g->p = p;
	p->nevents = 1 + rnd(g, 2);
	p->nchans = 1 + rnd(g, 2);
	p->nlocks = 1 + rnd(g, 2);
	for (int c = 0; c < p->nchans; c++)
		p->cap[c] = rnd(g, 3);
	gen_task(g, &p->root, 0, 0);
	fix_targets(p, p->root.ops, p->root.n);
	free(g);
}

static void free_ops(struct mbt_op *ops, int n);

static void free_task(struct mbt_task *k)
{
	free_ops(k->ops, k->n);
}

static void free_ops(struct mbt_op *ops, int n)
{
	for (int i = 0; i < n; i++) {
		free_ops(ops[i].ops, ops[i].n);
		for (int k = 0; k < ops[i].nk; k++)
			free_task(&ops[i].kids[k]);
		free(ops[i].kids);
	}
	free(ops);
}

void mbt_free(struct mbt_prog *p)
{
	free_task(&p->root);
	memset(&p->root, 0, sizeof p->root);
}

static struct mbt_op *copy_ops(const struct mbt_op *ops, int n);

static void copy_task(struct mbt_task *d, const struct mbt_task *s)
{
	*d = *s;
	d->ops = copy_ops(s->ops, s->n);
}

static struct mbt_op *copy_ops(const struct mbt_op *ops, int n)
{
	if (n == 0)
		return NULL;
	struct mbt_op *d = calloc((size_t)n, sizeof *d);
	for (int i = 0; i < n; i++) {
		d[i] = ops[i];
		d[i].ops = copy_ops(ops[i].ops, ops[i].n);
		d[i].kids = NULL;
		if (ops[i].nk) {
			d[i].kids = calloc((size_t)ops[i].nk,
				sizeof *d[i].kids);
			for (int k = 0; k < ops[i].nk; k++)
				copy_task(&d[i].kids[k], &ops[i].kids[k]);
		}
	}
	return d;
}

void mbt_copy(struct mbt_prog *dst, const struct mbt_prog *src)
{
	*dst = *src;
	copy_task(&dst->root, &src->root);
}

/* {======================================================= text form */

struct buf {
	char *s;
	size_t n, used;
};

static void put(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	if (b->used >= b->n)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(b->s + b->used, b->n - b->used, fmt, ap);
	va_end(ap);
	if (k > 0)
		b->used += (size_t)k;
}

static const char *kname[OP_NKINDS] = { "sleep", "fail", "scope", "group",
	"cancel", "thread-cancel", "task-cancel", "set", "wait", "send", "recv",
	"close", "lock", "start", "started" };

static void print_ops(struct buf *b, const struct mbt_prog *p,
	const struct mbt_op *ops, int n, int ind);

static void print_task(struct buf *b, const struct mbt_prog *p,
	const struct mbt_task *k, int ind)
{
	put(b, "%*stask t%d:\n", ind, "", k->id);
	print_ops(b, p, k->ops, k->n, ind + 2);
}

static void print_ops(struct buf *b, const struct mbt_prog *p,
	const struct mbt_op *ops, int n, int ind)
{
	for (int i = 0; i < n; i++) {
		const struct mbt_op *op = &ops[i];
		put(b, "%*s@%d %s", ind, "", op->t, kname[op->kind]);
		switch (op->kind) {
		case OP_FAIL:
			put(b, " %s", mbt_ename(mbt_fail_code(op->a)));
			break;
		case OP_SCOPE:
			put(b, " s%d", op->a);
			if (p->sdead[op->a] >= 0)
				put(b, " deadline@%d.5", p->sdead[op->a]);
			if (p->sflag[op->a] & MBT_SHIELD)
				put(b, " shield");
			if (p->sflag[op->a] & MBT_FAILAFTER)
				put(b, " fail_after");
			break;
		case OP_GROUP:
		case OP_CANCEL:
		case OP_TCANCEL:
			put(b, " %c%d", op->kind == OP_GROUP ? 'g' : 's',
				op->a);
			if (op->kind != OP_GROUP && p->skind[op->a] == 'g')
				put(b, " (group)");
			break;
		case OP_HCANCEL: put(b, " t%d", op->a); break;
		case OP_SET:
		case OP_WAIT: put(b, " e%d", op->a); break;
		case OP_SEND: put(b, " c%d value %d", op->a, op->t); break;
		case OP_RECV:
		case OP_CLOSE: put(b, " c%d", op->a); break;
		case OP_LOCK: put(b, " l%d until @%d", op->a, op->d); break;
		case OP_START: put(b, " into g%d", op->a); break;
		case OP_STARTED: put(b, " value %d", op->t); break;
		}
		put(b, "\n");
		for (int k = 0; k < op->nk; k++)
			print_task(b, p, &op->kids[k], ind + 2);
		if (op->kind == OP_GROUP && op->n)
			put(b, "%*sowner's body:\n", ind + 2, "");
		print_ops(b, p, op->ops, op->n, ind + 2);
	}
}

void mbt_print(const struct mbt_prog *p, char *out, size_t n)
{
	struct buf b = { out, n, 0 };
	out[0] = 0;
	put(&b, "channels:");
	for (int c = 0; c < p->nchans; c++)
		put(&b, " c%d(capacity %d)", c, p->cap[c]);
	put(&b, "; events: %d; locks: %d\n", p->nevents, p->nlocks);
	print_task(&b, p, &p->root, 0);
}

/* }======================================================= */

/* {======================================================= shrinking */

static int count_ops(const struct mbt_op *ops, int n)
{
	int c = n;
	for (int i = 0; i < n; i++) {
		c += count_ops(ops[i].ops, ops[i].n);
		for (int k = 0; k < ops[i].nk; k++)
			c += count_ops(ops[i].kids[k].ops, ops[i].kids[k].n);
	}
	return c;
}

int mbt_count_nodes(const struct mbt_prog *p)
{
	return count_ops(p->root.ops, p->root.n);
}

static void delete_op(struct mbt_op **ops, int *n, int k)
{
	struct mbt_op *op = &(*ops)[k];
	free_ops(op->ops, op->n);
	for (int j = 0; j < op->nk; j++)
		free_task(&op->kids[j]);
	free(op->kids);
	memmove(op, op + 1, (size_t)(*n - k - 1) * sizeof *op);
	(*n)--;
}

/* Replaces op k (a scope) by its body. */
static void splice_op(struct mbt_op **ops, int *n, int k)
{
	struct mbt_op op = (*ops)[k];
	int m = *n - 1 + op.n;
	struct mbt_op *d = calloc((size_t)(m ? m : 1), sizeof *d);
	memcpy(d, *ops, (size_t)k * sizeof *d);
	memcpy(d + k, op.ops, (size_t)op.n * sizeof *d);
	memcpy(d + k + op.n, *ops + k + 1, (size_t)(*n - k - 1) * sizeof *d);
	free(op.ops);
	free(*ops);
	*ops = d;
	*n = m;
}

static int shrink_ops(struct mbt_op **ops, int *n, int *i)
{
	for (int k = 0; k < *n; k++)
		if ((*i)-- == 0) {
			delete_op(ops, n, k);
			return 1;
		}
	for (int k = 0; k < *n; k++) {
		struct mbt_op *op = &(*ops)[k];
		if (op->kind == OP_SCOPE && (*i)-- == 0) {
			splice_op(ops, n, k);
			return 1;
		}
		/* A start keeps its one task (deleting the op removes it). */
		for (int j = 0; op->kind != OP_START && j < op->nk; j++)
			if ((*i)-- == 0) {
				free_task(&op->kids[j]);
				memmove(&op->kids[j], &op->kids[j + 1],
					(size_t)(op->nk - j - 1) *
						sizeof op->kids[0]);
				op->nk--;
				return 1;
			}
		if (shrink_ops(&op->ops, &op->n, i))
			return 1;
		for (int j = 0; j < op->nk; j++)
			if (shrink_ops(&op->kids[j].ops, &op->kids[j].n, i))
				return 1;
	}
	return 0;
}

int mbt_shrink_step(struct mbt_prog *p, int i)
{
	if (shrink_ops(&p->root.ops, &p->root.n, &i))
		return 1;
	/* Then simpler scopes: no shield, no fail_after, no deadline. */
	for (int s = 0; s < p->nscopes; s++) {
		if (p->sflag[s] && i-- == 0) {
			p->sflag[s] = 0;
			return 1;
		}
		if (p->sdead[s] >= 0 && i-- == 0) {
			p->sdead[s] = -1;
			return 1;
		}
	}
	return 0;
}

/* }======================================================= */
