/* The README's tour: five tasks in a group, joined. */
#include <weft.h>

/* A task: returns 0 or a negative code. */
static int fetch(void *arg)
{
	/* Parks the fiber, not the thread. */
	int rc = weft_sleep(500 * WEFT_MSEC);
	if (rc < 0)
		return rc; /* -ECANCELED is never a failure */
	return weft_task_set_result(arg);
}

static int main_task(void *arg)
{
	(void)arg;
	weft_group_t *g;
	int rc = weft_group_open(&g); /* a nursery */
	if (rc < 0)
		return rc;
	/* The children run in parallel; a failed spawn is the group's. */
	for (int i = 0; i < 5; i++)
		if ((rc = weft_group_spawn(g, fetch, NULL)) < 0)
			weft_group_fail(g, rc, "spawn");
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err); /* waits for every child */
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err); /* nests in the parent's error */
	return rc;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
