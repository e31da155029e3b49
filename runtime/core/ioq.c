/* The I/O thread's request queue (see ioq.h).
 *
 * A Treiber stack rather than a FIFO: posting is one CAS, and the single
 * consumer takes the whole stack with one exchange, so it never pops
 * while others push and there is no ABA.  The consumer reverses what it
 * took, so requests run in the order they were posted by any one thread.
 * The wake hook coalesces (uv_async_send), and the consumer always drains
 * everything, so no request is left behind by a coalesced wake. */
#include "base/common.h"
#include "core/ioq.h"
#include "runtime.h"

void weft__ioq_init(weft__ioq_t *q, void (*wake)(void *arg), void *arg)
{
	atomic_init(&q->head, NULL);
	q->wake = wake;
	q->wake_arg = arg;
}

void weft__ioq_post(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	weft__ioq_t *q = &rt->ioq;
	/* relaxed: a first guess; the CAS reloads on failure. */
	struct weft__ioq_node *head = atomic_load_explicit(&q->head,
		memory_order_relaxed);
	do {
		n->next = head;
		/* release: publishes the node and everything its poster
		 * wrote before to the consumer's acquire exchange. */
	} while (!atomic_compare_exchange_weak_explicit(&q->head, &head, n,
		memory_order_release, memory_order_relaxed));
	q->wake(q->wake_arg);
}

void weft__ioq_drain(struct weft_runtime *rt)
{
	/* acquire: pairs with the release CAS of the posters; we see each
	 * request's fields. */
	struct weft__ioq_node *list = atomic_exchange_explicit(&rt->ioq.head,
		NULL, memory_order_acquire);
	/* The stack is LIFO; reverse it so requests apply in order. */
	WEFT__SLIST_REVERSE(struct weft__ioq_node, list);
	struct weft__ioq_node *fifo = list;
	while (fifo) {
		/* Read before fn: fn may hand the node back to its owner. */
		struct weft__ioq_node *next = fifo->next;
		fifo->fn(rt, fifo);
		fifo = next;
	}
}
