/* The I/O thread's mailbox: an intrusive multi-producer queue of requests
 * (timer updates, I/O operations, closes) that any thread posts and the
 * I/O thread takes whole.  It lives in the core so that deadlines (timer.c)
 * can hand work to the I/O thread without knowing libuv: the I/O layer
 * (io.c) installs the wake hook and drains the queue.
 * Thread: see each function. */
#ifndef WEFT_RUNTIME_CORE_IOQ_H
#define WEFT_RUNTIME_CORE_IOQ_H

#include <stdatomic.h>

struct weft_runtime;

/* One request.  `fn` runs on the I/O thread; the node is the poster's
 * until it is posted, the I/O thread's while queued, and the poster's
 * again once `fn` has started (fn must read what it needs first if it
 * lets the poster go). */
struct weft__ioq_node {
	struct weft__ioq_node *next;
	void (*fn)(struct weft_runtime *rt, struct weft__ioq_node *n);
};

typedef struct weft__ioq {
	/* Treiber stack of requests: pushed by any thread (release CAS),
	 * taken whole by the one consumer (acquire exchange), so no ABA. */
	_Atomic(struct weft__ioq_node *) head;
	/* Wakes the consumer (io.c: uv_async_send, which coalesces and may
	 * be called from any thread).  Set before the first post. */
	void (*wake)(void *arg);
	void *wake_arg;
} weft__ioq_t;

/* An empty queue whose posts call wake(arg).  Thread: the I/O layer's
 * setup (io.c), before any post. */
void weft__ioq_init(weft__ioq_t *q, void (*wake)(void *arg), void *arg);

/* Queues n and wakes the consumer.  Any thread; lock-free. */
void weft__ioq_post(struct weft_runtime *rt, struct weft__ioq_node *n);

/* Runs every queued request, oldest first (an operation's abort after its
 * submission).  Thread: the I/O thread,
 * or the thread stopping the runtime once the I/O thread is joined and
 * no worker is left to post. */
void weft__ioq_drain(struct weft_runtime *rt);

#endif
