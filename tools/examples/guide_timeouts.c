/* docs/guide.md, "Timeouts and shields". */
#include <stdio.h>

#include <weft.h>

static int main_task(void *arg)
{
	(void)arg;
	weft_scope_t *s, *shield;
	/* move_on_after: give up quietly after 50 ms. */
	int rc = weft_move_on_after(&s, 50 * WEFT_MSEC);
	if (rc < 0)
		return rc;
	rc = weft_sleep(10 * WEFT_SEC);
	weft_scope_exit(s);
	printf("move_on_after: the sleep gave %s, caught %d\n",
		weft_err_name(rc), weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);

	/* fail_after: the same deadline is an error (-ETIMEDOUT). */
	if ((rc = weft_fail_after(&s, 50 * WEFT_MSEC)) < 0)
		return rc;
	weft_sleep(10 * WEFT_SEC);
	rc = weft_scope_exit(s);
	weft_scope_destroy(s);
	printf("fail_after: the scope's exit gave %s\n", weft_err_name(rc));

	/* A shield lets cleanup finish after the deadline passed. */
	if ((rc = weft_move_on_after(&s, 10 * WEFT_MSEC)) < 0)
		return rc;
	if ((rc = weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD)) ==
		0) {
		rc = weft_sleep(50 * WEFT_MSEC);
		weft_scope_exit(shield);
		weft_scope_destroy(shield);
		printf("shielded cleanup: %s\n",
			rc == 0 ? "completed" : weft_err_name(rc));
	}
	rc = weft_checkpoint(); /* the deadline that passed meanwhile */
	weft_scope_exit(s);
	weft_scope_destroy(s);
	printf("after the shield: %s\n", weft_err_name(rc));
	return 0;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
