/* docs/guide.md, "Groups, handles and start()": a service that must be
 * ready before the rest goes on, and children whose results are read
 * through their handles. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include <weft.h>

static int square(void *arg)
{
	long n = (long)(intptr_t)arg;
	int rc = weft_sleep(n * WEFT_MSEC);
	if (rc < 0)
		return rc;
	return weft_task_set_result((void *)(intptr_t)(n * n));
}

/* Gets ready (a listener would bind here), says so with its port, then
 * serves until its group is cancelled. */
static int service(void *arg)
{
	(void)arg;
	int rc = weft_task_started((void *)(intptr_t)8080);
	if (rc < 0)
		return rc;
	rc = weft_sleep_until(WEFT_FOREVER);
	return rc == -ECANCELED ? 0 : rc;
}

static int main_task(void *arg)
{
	(void)arg;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	/* Returns once service() called started(): the port is known. */
	void *port = NULL;
	rc = weft_group_start(g, service, NULL, &port);
	if (rc == 0)
		printf("service ready on port %ld\n", (long)(intptr_t)port);
	weft_task_t *h[3] = { NULL, NULL, NULL };
	for (long i = 0; i < 3 && rc == 0; i++) {
		weft_spawn_opts_t o = { .name = "square", .handle = &h[i] };
		rc = weft_group_spawn_opts(g, square, (void *)(intptr_t)(i + 1),
			&o);
	}
	for (int i = 0; i < 3 && h[i] != NULL; i++) {
		void *v = NULL;
		if (weft_task_wait(h[i]) == 0 &&
			weft_task_result(h[i], &v) == 0)
			printf("square(%d) = %ld\n", i + 1, (long)(intptr_t)v);
		weft_task_release(h[i]);
	}
	/* Stops the service: the group absorbs its own cancellation. */
	weft_group_cancel(g, "done");
	if (rc < 0)
		weft_group_fail(g, rc, "spawn");
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	return rc;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
