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
 *   pop      in a consumer's turn (below): skip the stub if it is at
 *            the front; hand out the front node once its next link is
 *            set; if the front node is the last one, push the stub
 *            behind it first, so it gets a successor.
 *
 * The one wait: between a producer's exchange and its link store, the
 * node it exchanged (prev) has no successor yet, so a consumer that has
 * reached prev cannot pass it.  The window is two instructions, but the
 * producer may be preempted inside it; the consumer then waits for the
 * link (pause, then sched_yield so a preempted producer on the same CPU
 * gets to run), in its turn.  Within its turn it never returns empty
 * while the hint says otherwise.
 *
 * Consumers' turns: a try-lock, the `busy` flag, taken with one
 * exchange and given back with a store.  A pop that finds it taken
 * returns NULL at once instead of waiting: the consumer whose turn it is
 * takes a task unless the queue is empty, so the queue moves on either
 * way, and the caller is a worker with other places to look (its deque,
 * steals) that comes back at its next pick or spin round; an idle
 * worker does not sleep meanwhile, because its last check reads the
 * hint, not a pop (idle.c).  The mutex this replaces cost each pop a
 * lock and an unlock (about 55 instructions, two atomic read-modify-
 * writes) and, when two workers drained a queue fed by a plain thread
 * (B3 external), put the loser to sleep in the kernel and the winner
 * into a wake-up system call at its unlock.  The price: a worker whose
 * turn is preempted by the OS holds it until it runs again (the mutex
 * too), and other workers' pops fail meanwhile instead of sleeping.
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
 * in a consumer's turn (relaxed stores: the turn's acquire exchange and
 * release store order consumers; the hint is racy by design).
 *
 * Prefetch.  A queue that a plain thread fills faster than the workers
 * drain it (B3 external at 2 workers once the producer's spawn got
 * cheaper: about 70 ns of its CPU per spawn against about 100 per task
 * on the consumers' side) grows to hundreds of thousands of tasks, far
 * past the caches, and each pop then starts with a miss to memory on
 * the front's link, inside its turn, while the other consumer waits for
 * the turn; the task's run misses again on the rest of its record.  So
 * a pop that hands out t prefetches the first INJECT_PREFETCH_BYTES of
 * the new front, which the next pop reads and runs: its misses overlap
 * the run of t.  B3 external at 2 workers, alternated with the build
 * before it: the medians of 3 runs 1,490 -> 873 ms (docs/benchmarks.md,
 * B3).
 *
 * Rejected: the mutex-protected list this replaces (B3 external at 2
 * workers: the producer and both workers queued on it, nvcsw in the
 * thousands per 10^6 spawns); ck_fifo_mpmc (allocates an entry per
 * node, or needs one embedded per task, and a double-width CAS); a
 * consumer side on which several consumers advance `front` at once
 * (CAS on front: a node handed out and requeued meanwhile is the ABA
 * case; one consumer per turn keeps the algorithm free of it); taking a
 * batch per turn into the deque (80c23f6, reverted: B3 external got
 * slower).
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

/* How much of the next front a pop prefetches (see "Prefetch"). */
#define INJECT_PREFETCH_BYTES 256

/* A node's link: relaxed (initialisation before publication), acquire
 * (a consumer following the chain) or release (a producer linking). */
#define LINK_LOAD(t) __atomic_load_n(&(t)->next, __ATOMIC_ACQUIRE)
#define LINK_STORE(t, v, mo) __atomic_store_n(&(t)->next, (v), (mo))

int weft__inject_init(weft__inject_t *q)
{
	q->stub_next = NULL;
	atomic_init(&q->back, WEFT__INJECT_STUB(q));
	atomic_init(&q->front, WEFT__INJECT_STUB(q));
	atomic_init(&q->busy, false);
	return 0;
}

void weft__inject_fini(weft__inject_t *q)
{
	(void)q; /* nothing to release */
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

/* Ends a consumer's turn.  release: this turn's front store and link
 * loads come before the next turn's (pairs with the acquire exchange in
 * weft__inject_pop_slow). */
static inline void inject_turn_end(weft__inject_t *q)
{
	atomic_store_explicit(&q->busy, false, memory_order_release);
}

struct weft_task *weft__inject_pop_slow(weft__inject_t *q)
{
	struct weft_task *stub = WEFT__INJECT_STUB(q);
	/* The turn: a load first, so that a consumer that finds it taken
	 * does not pull the line away with a write (relaxed: only a hint;
	 * the exchange decides).  acquire exchange: the previous turn's
	 * writes, up to its release store in inject_turn_end. */
	if (atomic_load_explicit(&q->busy, memory_order_relaxed) ||
		atomic_exchange_explicit(&q->busy, true, memory_order_acquire))
		return NULL; /* another consumer's turn */
	/* relaxed: front is written only in a turn, this one now. */
	struct weft_task *t = atomic_load_explicit(&q->front,
		memory_order_relaxed);
	if (t == stub) {
		/* acquire: the exchange that made back != stub, if any. */
		if (atomic_load_explicit(&q->back, memory_order_acquire) ==
			stub) {
			inject_turn_end(q);
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
	/* relaxed: in our turn; the hint reads it racily. */
	atomic_store_explicit(&q->front, next, memory_order_relaxed);
	inject_turn_end(q);
	/* The next pop's front (see "Prefetch" at the top).  Read, not
	 * write: the producer may still link behind it. */
	if (next != stub)
		for (size_t off = 0; off < INJECT_PREFETCH_BYTES; off += 64)
			__builtin_prefetch((char *)next + off);
	/* relaxed: t is ours now; nobody links behind a node that is not
	 * back, and t stopped being back before its successor was linked. */
	LINK_STORE(t, NULL, __ATOMIC_RELAXED);
	return t;
}
