/* Injection queue (see inject.h).  A mutex is the right tool here: the
 * queue is touched only on the slow paths (wake-ups from other threads,
 * deque overflow, periodic fairness checks), and a mutex never spins on a
 * preempted holder. */
#include "core/inject.h"

#include "core/task.h"

int weft__inject_init(weft__inject_t *q)
{
	int rc = pthread_mutex_init(&q->lock, NULL);
	if (rc != 0)
		return -rc;
	q->head = q->tail = NULL;
	atomic_init(&q->len, 0);
	return 0;
}

void weft__inject_fini(weft__inject_t *q)
{
	pthread_mutex_destroy(&q->lock);
}

void weft__inject_push(weft__inject_t *q, struct weft_task *t)
{
	t->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = t;
	else
		q->head = t;
	q->tail = t;
	/* release: a worker that sees len > 0 (acquire, weft__inject_len)
	 * and takes the lock finds t.  The inner load is relaxed: len is
	 * only written under the lock, held. */
	atomic_store_explicit(&q->len,
		atomic_load_explicit(&q->len, memory_order_relaxed) + 1,
		memory_order_release);
	pthread_mutex_unlock(&q->lock);
}

void weft__inject_push_list(weft__inject_t *q, struct weft_task *head,
	struct weft_task *tail, size_t n)
{
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = head;
	else
		q->head = head;
	q->tail = tail;
	/* release, relaxed load: as in weft__inject_push. */
	atomic_store_explicit(&q->len,
		atomic_load_explicit(&q->len, memory_order_relaxed) + n,
		memory_order_release);
	pthread_mutex_unlock(&q->lock);
}

struct weft_task *weft__inject_pop(weft__inject_t *q)
{
	if (weft__inject_len(q) == 0)
		return NULL;
	pthread_mutex_lock(&q->lock);
	struct weft_task *t = q->head;
	if (t) {
		q->head = t->next;
		if (q->head == NULL)
			q->tail = NULL;
		/* release, relaxed load: as in weft__inject_push. */
		atomic_store_explicit(&q->len,
			atomic_load_explicit(&q->len, memory_order_relaxed) - 1,
			memory_order_release);
		t->next = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	return t;
}
