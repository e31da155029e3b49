/* Fork-join calls (weft_par): the per-worker split deque of offered
 * halves and the record of one call (par.c holds the essay). */
#ifndef WEFT_RUNTIME_CORE_PAR_H
#define WEFT_RUNTIME_CORE_PAR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/common.h"
#include "base/diag.h"
#include "weft/runtime.h"

struct weft_task;
struct weft_scope;
struct weft_context;
struct weft__leaf;
struct weft_runtime;
struct weft__worker;

/* Offered halves one worker's deque holds; deeper calls offer nothing. */
#define WEFT__PAR_CAP 256

/* What became of an offered half (struct weft__par, state). */
enum {
	WEFT__PAR_OFFERED = 0, /* in a deque, or back with its caller */
	WEFT__PAR_TAKEN,       /* a task runs it */
	WEFT__PAR_WAITING,     /* TAKEN, and the caller parks for its end */
	WEFT__PAR_DONE,	       /* its task ended: rc, leaf, lost are set */
	WEFT__PAR_BACK	       /* taken, but no task could be made: the
				* caller runs it */
};

/* One weft_par call, in the caller's frame. */
struct weft__par {
	/* The offered half; immutable. */
	weft_fn fn;
	void *arg;
	/* The calling task, its innermost scope and its context (a
	 * reference, or NULL) at the call: what a task made for the half
	 * runs under.  Immutable. */
	struct weft_task *caller;
	struct weft_scope *scope;
	struct weft_context *ctx;
	/* The caller's next outer weft_par call (task.h, `par`). */
	struct weft__par *outer;
	/* WEFT__PAR_*: OFFERED until a taker (a thief, or the caller's own
	 * switch-out) moves it on; see par.c for the orderings. */
	_Atomic unsigned state;
	/* The taken half's outcome, written by its task before DONE. */
	int rc;
	struct weft__leaf *leaf; /* its failure, or NULL */
	bool lost;		 /* it failed, without memory for a leaf */
	/* Set by the call (weft_par): whether it offered the half (false:
	 * the deque was full), and the caller's own failure message and
	 * nested group, kept aside during the call. */
	bool offered;
	char *kept_msg;
	struct weft_error *kept_group;
	/* The caller's park generation while WAITING (written before the
	 * CAS that sets WAITING, read after the exchange that sees it). */
	_Atomic uint64_t gen;
};

/* A worker's offered halves: a split deque (par.c, "The deque").
 * Indices below `tail` were stolen, [tail, split) is the shared part
 * thieves take from (oldest first), [split, head) the owner's private
 * part, which it pushes and pops without atomic read-modify-writes or
 * fences.  Padded, not over-aligned, as weft__deque_t. */
typedef struct weft__par_deque {
	char pad_lead[WEFT__FALSE_SHARING];
	/* tail in the low 32 bits, split in the high 32.  Thieves CAS tail
	 * up; only the owner moves split (CAS, as it may race with them). */
	_Atomic uint64_t ts;
	/* Set by a thief that found the shared part empty: the owner
	 * exposes part of its private part at its next push. */
	atomic_uint splitreq;
	char pad_ts[WEFT__FALSE_SHARING - sizeof(uint64_t) - sizeof(unsigned)];
	/* Owner only: the next free index, and split as the owner last set
	 * it (only the owner changes split). */
	uint32_t head;
	uint32_t split;
	/* Written by the owner (relaxed); read by a thief only for an index
	 * its CAS took (ordered by ts: par.c). */
	_Atomic(struct weft__par *) slot[WEFT__PAR_CAP];
} weft__par_deque_t;

static inline uint64_t weft__par_ts(uint32_t tail, uint32_t split)
{
	return (uint64_t)split << 32 | tail;
}

/* Thread: the worker's creator, before the thread starts. */
void weft__par_deque_init(weft__par_deque_t *d);

/* Makes part of d's private part stealable (a thief asked, or nothing is
 * shared), and wakes an idle worker.  Thread: d's owner. */
void weft__par_expose(weft__par_deque_t *d, struct weft_runtime *rt);

/* Offers p on d, the calling worker's deque: false when d is full (the
 * caller then runs p's half itself).  Inline: every weft_par (B1).
 * Thread: d's owner. */
static inline bool weft__par_push(weft__par_deque_t *d, struct weft__par *p,
	struct weft_runtime *rt)
{
	uint32_t h = d->head;
	if (WEFT__UNLIKELY(h >= WEFT__PAR_CAP))
		return false;
	/* relaxed: published to thieves by the CAS of ts that exposes it
	 * (weft__par_expose). */
	atomic_store_explicit(&d->slot[h], p, memory_order_relaxed);
	d->head = h + 1;
	/* Nothing private below this one (so perhaps nothing shared
	 * either), or a thief asked: the slow path decides.  relaxed: a
	 * request seen one push late costs only that delay. */
	if (WEFT__UNLIKELY(d->split == h ||
		    atomic_load_explicit(&d->splitreq, memory_order_relaxed)))
		weft__par_expose(d, rt);
	return true;
}

/* The slow half of weft__par_pop: p's index is in the shared part. */
bool weft__par_pop_shared(weft__par_deque_t *d, uint32_t i);

/* Takes back p, the newest half the caller offered on d (the calling
 * worker's deque, which may not be the one p was pushed on: the caller
 * may have parked and moved).  True: the caller runs it now.  False: a
 * task runs or ran it (the caller waits for its end).  Inline:
 * every weft_par (B1).  Thread: d's owner, the caller of p. */
static inline bool weft__par_pop(weft__par_deque_t *d, struct weft__par *p)
{
	uint32_t h = d->head;
	/* Empty: the caller switched out since it offered p, and that
	 * switch-out gave every offered half a task (weft__par_flush). */
	if (WEFT__UNLIKELY(h == 0))
		return false;
	uint32_t i = h - 1;
	WEFT_DASSERT(atomic_load_explicit(&d->slot[i], memory_order_relaxed) ==
			p,
		"weft_par: the newest offered half is not the caller's");
	(void)p;
	if (WEFT__LIKELY(i >= d->split)) {
		d->head = i;
		return true;
	}
	return weft__par_pop_shared(d, i);
}

/* A thief's take from d: the oldest shared half, marked TAKEN, or NULL
 * (then the owner is asked to expose more).  Thread: any worker but d's
 * owner. */
struct weft__par *weft__par_steal(weft__par_deque_t *d);

/* Whether d has halves a thief could take now (the idle check). */
static inline bool weft__par_visible(weft__par_deque_t *d)
{
	/* seq_cst: the idle check's read after its fence (idle.c). */
	uint64_t ts = atomic_load_explicit(&d->ts, memory_order_seq_cst);
	return (uint32_t)ts < (uint32_t)(ts >> 32);
}

/* The task that runs p's half for worker w (a thief), or NULL when none
 * could be made: p is then BACK with its caller (woken if it waits).
 * Thread: a worker. */
struct weft_task *weft__par_task(struct weft__worker *w, struct weft__par *p);

/* Called by every switch-out of a fiber whose worker holds offered
 * halves (they are its task's, or of the tasks whose inline children it
 * runs on the same stack): gives each a task, queued on w, so that the
 * deque is empty whenever a worker switches tasks.  Thread: w's. */
void weft__par_flush(struct weft__worker *w);

/* t, a task that ran a taken half, failed: its leaf for the caller
 * (before t's end).  Thread: t's finisher. */
void weft__par_failed(struct weft_task *t);

/* The end of t, a task that ran a taken half: hands its outcome to the
 * half's caller (t->arg) and wakes it.  Nothing of the call is touched
 * after.  Thread: t's finisher. */
void weft__par_end(struct weft_task *t);

/* The function of every task made for a taken half; its argument is the
 * call (struct weft__par).  A task is such a task exactly when its fn is
 * this one (weft__par_fn_is_half). */
int weft__par_run(void *arg);

static inline bool weft__par_fn_is_half(weft_fn fn)
{
	return fn == weft__par_run;
}

/* Settles the weft_par calls still open in t at its abandoned end (a
 * panic): takes back what is still offered, waits for what a task runs.
 * Thread: t, inside weft__task_finish. */
WEFT_FIBER_FN void weft__par_abandon(struct weft_task *t);

#endif
