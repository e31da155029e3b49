/* Injection queue (see inject.h).
 *
 * Design
 * ------
 * Vyukov's intrusive multi-producer single-consumer queue.  The queue is
 * a chain of nodes linked through weft_task.next, from `front` (consumer
 * end) to `back` (producer end).  It always holds at least one node: the
 * stub (a `next` field of the queue's own, WEFT__INJECT_STUB) stands in
 * when no task is queued.
 *
 *   push(n)  n->next = NULL; prev = exchange(back, n); prev->next = n.
 *            One atomic exchange, never a lock, never a retry: a spawn
 *            or a wake from a plain thread (B3 "external") no longer
 *            takes a mutex that two workers popping one task each were
 *            contending for.
 *   pop      under the consumers' mutex: skip the stub if it is at the
 *            front; hand out the front node once its next link is set;
 *            if the front node is the last one, push the stub behind it
 *            first, so it gets a successor.
 *
 * The one wait: between a producer's exchange and its link store, the
 * node it exchanged (prev) has no successor yet, so a consumer that has
 * reached prev cannot pass it.  The window is two instructions, but the
 * producer may be preempted inside it; the consumer then waits for the
 * link (pause, then sched_yield so a preempted producer on the same CPU
 * gets to run), holding the consumers' mutex.  It never returns empty
 * while the hint says otherwise, so an idle worker cannot spin on a
 * queue that says "non-empty" and pops nothing.
 *
 * Emptiness (weft__inject_nonempty): back == stub and then front == stub.
 * Either the read of back sees a push's exchange, or that push comes
 * after it and notifies (the idle protocol's Dekker pair, idle.c: the
 * producer's fence follows its exchange, the sleeper's precedes the
 * read).  If back was the stub, every task pushed before the read lies
 * ahead of the stub in the chain, and front reaching the stub means the
 * consumers took all of them.
 *
 * Memory order: the exchange is acq_rel (release: the node's contents
 * and its next = NULL before it is reachable from back; acquire: the
 * previous producer's next = NULL store of prev comes before our link
 * store to the same field).  The link store is release, and consumers
 * load links with acquire: a task's fields, written by whoever queued
 * it, are visible to the worker that pops it.  `front` is only written
 * under the mutex (relaxed stores: the mutex orders consumers; the hint
 * is racy by design).
 *
 * Rejected: the mutex-protected list this replaces (B3 external at 2
 * workers: the producer and both workers queued on it, nvcsw in the
 * thousands per 10^6 spawns); ck_fifo_mpmc (allocates an entry per
 * node, or needs one embedded per task, and a double-width CAS); a
 * lock-free consumer side (workers pop at every 61st pick and when
 * idle, not per spawn: the mutex is uncontended there, and a single
 * consumer keeps the algorithm free of ABA).
 *
 * The links are plain `struct weft_task *` fields (task.h), accessed
 * here with the __atomic builtins, which gcc and clang apply to any
 * naturally aligned pointer; outside the queue a task's next is written
 * only by its queuer before the push and by the popper after the pop,
 * both ordered by the release/acquire pairs above. */
#include "core/inject.h"

#include <sched.h>

#include "base/spin.h"
#include "core/task.h"

_Static_assert(offsetof(struct weft_task, next) == WEFT__INJECT_NEXT_OFFSET,
	"WEFT__INJECT_NEXT_OFFSET (inject.h) must follow task.h");

/* A node's link: relaxed (initialisation before publication), acquire
 * (a consumer following the chain) or release (a producer linking). */
#define LINK_LOAD(t) __atomic_load_n(&(t)->next, __ATOMIC_ACQUIRE)
#define LINK_STORE(t, v, mo) __atomic_store_n(&(t)->next, (v), (mo))

int weft__inject_init(weft__inject_t *q)
{
	int rc = pthread_mutex_init(&q->lock, NULL);
	if (rc != 0)
		return -rc;
	q->stub_next = NULL;
	atomic_init(&q->back, WEFT__INJECT_STUB(q));
	atomic_init(&q->front, WEFT__INJECT_STUB(q));
	return 0;
}

void weft__inject_fini(weft__inject_t *q)
{
	pthread_mutex_destroy(&q->lock);
}

/* Appends the chain head..tail (tail->next already NULL). */
static inline void inject_append(weft__inject_t *q, struct weft_task *head,
	struct weft_task *tail)
{
	/* acq_rel: see the top of the file. */
	struct weft_task *prev = atomic_exchange_explicit(&q->back, tail,
		memory_order_acq_rel);
	/* release: pairs with LINK_LOAD in inject_next. */
	LINK_STORE(prev, head, __ATOMIC_RELEASE);
}

void weft__inject_push(weft__inject_t *q, struct weft_task *t)
{
	/* relaxed: published by the exchange's release. */
	LINK_STORE(t, NULL, __ATOMIC_RELAXED);
	inject_append(q, t, t);
}

void weft__inject_push_list(weft__inject_t *q, struct weft_task *head,
	struct weft_task *tail, size_t n)
{
	(void)n;
	/* relaxed: as in weft__inject_push (the caller set it already; the
	 * store keeps the builtins' view of the field consistent). */
	LINK_STORE(tail, NULL, __ATOMIC_RELAXED);
	inject_append(q, head, tail);
}

/* The successor of t, which a producer has exchanged in behind t (the
 * caller saw back != t, or pushed behind t itself): waits out the
 * producer's window between its exchange and its link. */
static struct weft_task *inject_next(struct weft_task *t)
{
	struct weft_task *next;
	unsigned spins = 0;
	while ((next = LINK_LOAD(t)) == NULL) {
		if (++spins < 64)
			WEFT__CPU_RELAX();
		else
			sched_yield(); /* the producer may be preempted */
	}
	return next;
}

struct weft_task *weft__inject_pop_slow(weft__inject_t *q)
{
	struct weft_task *stub = WEFT__INJECT_STUB(q);
	pthread_mutex_lock(&q->lock);
	/* relaxed: front is written under the lock, held. */
	struct weft_task *t = atomic_load_explicit(&q->front,
		memory_order_relaxed);
	if (t == stub) {
		/* acquire: the exchange that made back != stub, if any. */
		if (atomic_load_explicit(&q->back, memory_order_acquire) ==
			stub) {
			pthread_mutex_unlock(&q->lock);
			return NULL; /* empty */
		}
		t = inject_next(stub);
	}
	/* t is a task, the oldest.  It can be handed out once it has a
	 * successor, which becomes the front; if it is the last node, the
	 * stub is pushed behind it to be that successor. */
	struct weft_task *next = LINK_LOAD(t);
	if (next == NULL) {
		/* acquire: as above. */
		if (atomic_load_explicit(&q->back, memory_order_acquire) == t) {
			/* relaxed: published by the exchange's release. */
			LINK_STORE(stub, NULL, __ATOMIC_RELAXED);
			inject_append(q, stub, stub);
		}
		/* Our stub or another producer's task is behind t now. */
		next = inject_next(t);
	}
	/* relaxed: under the lock; the hint reads it racily. */
	atomic_store_explicit(&q->front, next, memory_order_relaxed);
	pthread_mutex_unlock(&q->lock);
	/* relaxed: t is ours now; nobody links behind a node that is not
	 * back, and t stopped being back before its successor was linked. */
	LINK_STORE(t, NULL, __ATOMIC_RELAXED);
	return t;
}
