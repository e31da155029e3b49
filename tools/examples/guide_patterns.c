/* docs/guide.md, "asyncio's patterns": gather, wait_for, as_completed. */
#include <stdint.h>
#include <stdio.h>

#include <weft.h>

/* Sleeps arg milliseconds, then returns arg as its result. */
static int nap(void *arg)
{
	long ms = (long)(intptr_t)arg;
	int rc = weft_sleep(ms * WEFT_MSEC);
	if (rc < 0)
		return rc;
	return weft_task_set_result(arg);
}

static int main_task(void *arg)
{
	(void)arg;
	/* gather: run three calls, results in call order. */
	weft_call_t calls[3] = { { nap, (void *)30, "a" },
		{ nap, (void *)10, "b" }, { nap, (void *)20, "c" } };
	weft_gather_result_t res[3];
	int rc = weft_gather(calls, 3, 0, res, NULL);
	if (rc < 0)
		return rc;
	printf("gather: %ld %ld %ld\n", (long)(intptr_t)res[0].value,
		(long)(intptr_t)res[1].value, (long)(intptr_t)res[2].value);

	weft_group_t *g;
	if ((rc = weft_group_open(&g)) < 0)
		return rc;
	/* wait_for: a task too slow for its timeout is cancelled. */
	weft_task_t *slow = NULL;
	weft_spawn_opts_t o = { .name = "slow", .handle = &slow };
	if ((rc = weft_group_spawn_opts(g, nap, (void *)5000, &o)) == 0) {
		int w = weft_wait_for(slow, 20 * WEFT_MSEC, NULL);
		printf("wait_for: %s\n", weft_err_name(w));
		weft_task_release(slow);
	}
	/* as_completed: results in the order the tasks end. */
	static const long ms[3] = { 30, 10, 20 };
	weft_task_t *h[3] = { NULL, NULL, NULL };
	for (int i = 0; i < 3 && rc == 0; i++) {
		weft_spawn_opts_t oi = { .name = "nap", .handle = &h[i] };
		rc = weft_group_spawn_opts(g, nap, (void *)(intptr_t)ms[i],
			&oi);
	}
	weft_as_completed_t *it = NULL;
	if (rc == 0 && (rc = weft_as_completed_open(&it, h, 3)) == 0) {
		size_t i;
		weft_task_t *done;
		printf("as_completed:");
		while (weft_as_completed_next(it, &i, &done) == 0) {
			void *v = NULL;
			weft_task_result(done, &v);
			printf(" %ld", (long)(intptr_t)v);
		}
		printf("\n");
		weft_as_completed_close(it);
	}
	for (int i = 0; i < 3; i++)
		if (h[i] != NULL)
			weft_task_release(h[i]);
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
