/* The runtime-wide injection queue: tasks made runnable from outside a
 * worker (the I/O thread, foreign threads, root tasks) and overflow from a
 * worker's deque.  A multi-producer single-consumer intrusive queue
 * (Vyukov's, linked through weft_task.next): producers never lock, one
 * atomic exchange each; consumers (the workers) take turns, and a pop
 * that finds another consumer's turn under way returns at once.
 * Emptiness is a racy hint read with two loads (idle checks). */
#ifndef WEFT_RUNTIME_CORE_INJECT_H
#define WEFT_RUNTIME_CORE_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/common.h"

struct weft_task;

/* offsetof(struct weft_task, next), which this header cannot compute
 * (task.h includes it indirectly); inject.c asserts it. */
#define WEFT__INJECT_NEXT_OFFSET 8

typedef struct weft__inject {
	/* Producer end: the node pushed last (the stub when nothing was
	 * pushed since the consumer re-queued it).  Exchanged by every
	 * push; padded away from the consumers' fields (padding, not
	 * _Alignas: the runtime struct comes from malloc). */
	_Atomic(struct weft_task *) back;
	char pad[WEFT__FALSE_SHARING];
	/* Consumer end: the node to hand out next, or the stub.  Written
	 * in a consumer's turn (relaxed atomic stores), read racily by the
	 * hint. */
	_Atomic(struct weft_task *) front;
	/* A consumer's turn is under way: serialises consumers (a try-lock,
	 * inject.c); producers never look at it. */
	atomic_bool busy;
	/* The stub node's only field: the queue always holds at least one
	 * node, and the stub stands in when it holds no task (inject.c). */
	struct weft_task *stub_next;
} weft__inject_t;

/* The stub, as a node: a weft_task pointer whose `next` member is
 * q->stub_next; only that member is ever accessed through it. */
#define WEFT__INJECT_STUB(q)                                                   \
	((struct weft_task *)(void *)((char *)&(q)->stub_next -                \
		WEFT__INJECT_NEXT_OFFSET))

/* Thread: the thread creating / tearing down the runtime, while no
 * other thread uses q. */
int weft__inject_init(weft__inject_t *q);
void weft__inject_fini(weft__inject_t *q);
/* Never blocks nor locks.  Any thread. */
void weft__inject_push(weft__inject_t *q, struct weft_task *t);
/* Appends a linked list (t->next links, tail->next NULL) of n tasks with
 * one exchange.  Never blocks nor locks.  Any thread. */
void weft__inject_push_list(weft__inject_t *q, struct weft_task *head,
	struct weft_task *tail, size_t n);
/* Racy emptiness hint: false only if, at some moment during the call,
 * no task was queued and no push had begun its exchange; true also while
 * a push is between its exchange and its link (inject.c).  Two loads,
 * inline: workers ask at every 61st pick and after every yield (B6).
 * Any thread. */
static inline bool weft__inject_nonempty(weft__inject_t *q)
{
	/* The stub's address, computed: no load (inject.c checks the
	 * offset against task.h, so this header needs no complete task
	 * type). */
	struct weft_task *stub = WEFT__INJECT_STUB(q);
	/* acquire, both, back first: pair with the producers' exchange
	 * (acq_rel) and the consumers' stores; in the idle protocol's
	 * Dekker pair the seq_cst fences order them (idle.c); the order
	 * of the two loads is what inject.c's argument needs. */
	return atomic_load_explicit(&q->back, memory_order_acquire) != stub ||
		atomic_load_explicit(&q->front, memory_order_acquire) != stub;
}

/* weft__inject_pop past its emptiness check.  Any thread. */
struct weft_task *weft__inject_pop_slow(weft__inject_t *q);

/* The oldest task, or NULL when the queue was empty or another
 * consumer's turn was under way (that consumer takes a task unless the
 * queue is empty: inject.c).  Never waits for another consumer; takes
 * the consumers' turn only when the hint says non-empty.  Any thread. */
static inline struct weft_task *weft__inject_pop(weft__inject_t *q)
{
	if (!weft__inject_nonempty(q))
		return NULL;
	return weft__inject_pop_slow(q);
}

#endif
