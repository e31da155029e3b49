/* The runtime-wide injection queue: tasks made runnable from outside a
 * worker (the I/O thread, foreign threads, root tasks) and overflow from a
 * worker's deque.  A FIFO list under a mutex with an atomic length so that
 * idle checks cost one load (Go's global run queue has the same shape). */
#ifndef WEFT_RUNTIME_CORE_INJECT_H
#define WEFT_RUNTIME_CORE_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct weft_task;

typedef struct weft__inject {
	pthread_mutex_t lock;
	struct weft_task *head, *tail; /* under lock */
	/* Written under lock (release), read lock-free as a hint (acquire). */
	atomic_size_t len;
} weft__inject_t;

/* Thread: the thread creating / tearing down the runtime, while no
 * other thread uses q. */
int weft__inject_init(weft__inject_t *q);
void weft__inject_fini(weft__inject_t *q);
/* Any thread. */
void weft__inject_push(weft__inject_t *q, struct weft_task *t);
/* Appends a linked list (t->next links, tail->next NULL) of n tasks in
 * one critical section.  Any thread. */
void weft__inject_push_list(weft__inject_t *q, struct weft_task *head,
	struct weft_task *tail, size_t n);
/* Any thread; NULL when empty. */
struct weft_task *weft__inject_pop(weft__inject_t *q);
/* Racy emptiness hint; any thread. */
static inline size_t weft__inject_len(weft__inject_t *q)
{
	/* acquire: pairs with the release stores of len in inject.c (the
	 * list itself is read under the lock). */
	return atomic_load_explicit(&q->len, memory_order_acquire);
}

#endif
