/* Model-based random testing of weft's structured concurrency.
 *
 * A program is a tree of tasks; each task runs a list of operations, and
 * every operation first sleeps until its own virtual instant (a "slot",
 * unique in the program).  Under the virtual clock (docs/semantics.md
 * rule 44) time moves only when every task is blocked, so at each
 * instant exactly one thing happens (an operation's action, or a scope's
 * deadline, placed half a slot after some operation's instant) and
 * everything it wakes runs to a block before time moves on.  The
 * observable outcome is then a function of the program, and a
 * single-threaded model (model.c) predicts it.
 *
 * The same interpreter (interp.c) runs a task's operations against two
 * back ends: the model's and weft's (real.c).  The outcome is canonical
 * text: each task's trace (the result of every operation it reached and
 * what it returned), each entered scope's cancel_called,
 * cancelled_caught, reason origin and exit code, the root's error tree
 * (sorted, with task names, codes and collateral bits, nested groups
 * inside) and weft_runtime_run's result. */
#ifndef WEFT_MBT_H
#define WEFT_MBT_H

#include <stddef.h>
#include <stdint.h>

#define MBT_MAX_TASKS 48
#define MBT_MAX_SCOPES 48 /* scopes and groups share the index space */
#define MBT_MAX_OBJ 4	  /* events, channels, locks each */
#define MBT_TRACE 768
#define MBT_OUT 16384

enum mbt_kind {
	OP_SLEEP,   /* sleep only */
	OP_FAIL,    /* return weft_fail(code) */
	OP_SCOPE,   /* enter scope a, run ops, exit */
	OP_GROUP,   /* open group a, spawn kids, run ops, join */
	OP_CANCEL,  /* cancel scope or group a from the task */
	OP_TCANCEL, /* the same from an offload thread (weft_to_thread) */
	OP_HCANCEL, /* weft_task_cancel on task a's handle */
	OP_SET,	    /* set event a */
	OP_WAIT,    /* wait for event a */
	OP_SEND,    /* send the op's slot on channel a */
	OP_RECV,    /* receive from channel a */
	OP_CLOSE,   /* close channel a's send end */
	OP_LOCK,    /* acquire lock a, sleep until slot d, release */
	OP_START,   /* an owner's body: start kids[0] into its group a */
	OP_STARTED, /* weft_task_started(the op's slot) */
	OP_NKINDS
};

#define MBT_SHIELD 1u
#define MBT_FAILAFTER 2u

struct mbt_task;

struct mbt_op {
	int kind;
	int t; /* slot: the op first sleeps until t0 + t ms */
	int a; /* object or target index, fail code index */
	int d; /* OP_LOCK: release slot */
	int n;
	struct mbt_op *ops; /* OP_SCOPE, OP_GROUP: body */
	int nk;
	struct mbt_task *kids; /* OP_GROUP: children; OP_START: the one */
};

struct mbt_task {
	int id; /* 0: the root task */
	int n;
	struct mbt_op *ops;
};

struct mbt_prog {
	struct mbt_task root;
	int ntasks, nscopes, nevents, nchans, nlocks;
	char skind[MBT_MAX_SCOPES]; /* 's' scope, 'g' group */
	int sdead[MBT_MAX_SCOPES];  /* deadline slot (+ half) or -1 */
	unsigned sflag[MBT_MAX_SCOPES];
	int cap[MBT_MAX_OBJ]; /* channel capacities */
};

/* Time in half slots: an op's instant t is 2t, a deadline slot d is
 * 2d + 1. */
#define MBT_HALF_NS ((int64_t)500000)

struct mbt_tc;

/* A back end: every call is made by the task of tc. */
struct mbt_be {
	int (*sleep_until)(struct mbt_tc *tc, int half);
	int (*fail)(struct mbt_tc *tc, int code);
	int (*scope_enter)(struct mbt_tc *tc, int s);
	int (*scope_exit)(struct mbt_tc *tc, int s, int *called, int *caught,
		int *origin);
	int (*group_open)(struct mbt_tc *tc, int g);
	int (*spawn)(struct mbt_tc *tc, int g, const struct mbt_task *k);
	int (*group_fail)(struct mbt_tc *tc, int g, int code);
	int (*join)(struct mbt_tc *tc, int g, void **err);
	int (*fail_group)(struct mbt_tc *tc, void *err);
	int (*cancel)(struct mbt_tc *tc, int s, int from_thread);
	int (*task_cancel)(struct mbt_tc *tc, int task);
	int (*ev_set)(struct mbt_tc *tc, int e);
	int (*ev_wait)(struct mbt_tc *tc, int e);
	int (*send)(struct mbt_tc *tc, int c, int v);
	int (*recv)(struct mbt_tc *tc, int c, int *v);
	int (*close)(struct mbt_tc *tc, int c);
	int (*lock)(struct mbt_tc *tc, int l);
	int (*unlock)(struct mbt_tc *tc, int l);
	/* weft_group_start of k into g; *v: the value started() passed */
	int (*start)(struct mbt_tc *tc, int g, const struct mbt_task *k,
		int *v);
	int (*started)(struct mbt_tc *tc, int v);
};

struct mbt_exec;

struct mbt_tc {
	struct mbt_exec *x;
	const struct mbt_task *task;
	void *impl;
};

/* One execution's record, written by the interpreter. */
struct mbt_exec {
	const struct mbt_prog *p;
	const struct mbt_be *be;
	struct mbt_tc tc[MBT_MAX_TASKS];
	int ran[MBT_MAX_TASKS];
	int ret[MBT_MAX_TASKS];
	char trace[MBT_MAX_TASKS][MBT_TRACE];
	char scope[MBT_MAX_SCOPES][96];
	int run_rc;
	char err[4096]; /* canonical error tree */
};

/* interp.c */
int mbt_task_run(struct mbt_tc *tc);
int mbt_fail_code(int i);
const char *mbt_ename(int rc);
void mbt_outcome(const struct mbt_exec *x, char *out, size_t n);

/* prog.c */
uint64_t mbt_rand(uint64_t *s);
void mbt_gen(struct mbt_prog *p, uint64_t seed);
void mbt_free(struct mbt_prog *p);
void mbt_copy(struct mbt_prog *dst, const struct mbt_prog *src);
void mbt_print(const struct mbt_prog *p, char *out, size_t n);
int mbt_count_nodes(const struct mbt_prog *p);
/* Removes candidate i of the shrinking moves (0 .. count-1); 0 when i is
 * past the last. */
int mbt_shrink_step(struct mbt_prog *p, int i);

/* model.c: 0 and the outcome, or -1 when the program is not
 * predictable (an action late behind a wait, a deadlock); *why says
 * which. */
int mbt_model(const struct mbt_prog *p, char *out, size_t n, const char **why);

/* real.c */
int mbt_real_init(void);
void mbt_real_fini(void);
/* Prints the runtime's task and scope tree (the hang report). */
void mbt_real_dump(int workers);
int mbt_real(const struct mbt_prog *p, int workers, char *out, size_t n);

#endif
