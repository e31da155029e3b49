/* docs/guide.md, "Embedding": threads weft did not start (an existing
 * thread pool, another event loop) call into a running runtime through a
 * portal. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <weft.h>

/* Runs as a weft task, called from a foreign thread. */
static int lookup(void *arg)
{
	long key = (long)(intptr_t)arg;
	int rc = weft_sleep(WEFT_MSEC); /* may park: it is a task */
	if (rc < 0)
		return rc;
	return weft_task_set_result((void *)(intptr_t)(key * 10));
}

/* A thread of the host application. */
static void *foreign_thread(void *arg)
{
	weft_portal_t *p = arg;
	long sum = 0;
	for (long k = 1; k <= 10; k++) {
		void *v = NULL;
		if (weft_portal_call(p, lookup, (void *)(intptr_t)k, &v,
			    WEFT_SEC) == 0)
			sum += (long)(intptr_t)v;
	}
	return (void *)(intptr_t)sum;
}

/* Waits for the foreign thread (a blocking call). */
static int join_thread(void *arg, void **result)
{
	return pthread_join(*(pthread_t *)arg, result) == 0 ? 0 : -1;
}

static int main_task(void *arg)
{
	(void)arg;
	weft_portal_t *p;
	int rc = weft_portal_open(&p);
	if (rc < 0)
		return rc;
	pthread_t t;
	void *sum = NULL;
	if (pthread_create(&t, NULL, foreign_thread, p) == 0) {
		/* pthread_join blocks: on an offload thread, not a worker. */
		rc = weft_to_thread(join_thread, &t, &sum, NULL);
		printf("portal: sum %ld\n", (long)(intptr_t)sum);
	}
	int crc = weft_portal_close(p, false, NULL);
	return rc < 0 ? rc : crc;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
