/* docs/guide.md, "Supervisors": workers that connect before they are
 * ready are restarted with a backoff while their server is not up yet;
 * a child that keeps failing makes its supervisor give up. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include <weft.h>

static atomic_int attempts;

/* Connects (the first three attempts are refused, like a server that
 * is still starting), says it is ready, then serves until cancelled. */
static int worker(void *arg)
{
	(void)arg;
	if (atomic_fetch_add(&attempts, 1) < 3)
		return weft_fail(-ECONNREFUSED, "server not up yet");
	weft_task_started(NULL);
	return weft_sleep(WEFT_FOREVER);
}

static void log_failure(const char *child, const weft_error_t *failure,
	int restarting, void *arg)
{
	(void)arg;
	printf("%s: %s: %s%s\n", child,
		weft_err_name(weft_error_code_at(failure, 0)),
		weft_error_message_at(failure, 0),
		restarting ? " (restarting)" : "");
}

static int broken(void *arg)
{
	(void)arg;
	return weft_fail(-EIO, "always");
}

static int main_task(void *arg)
{
	(void)arg;
	/* Two workers, each ready before the next starts; a failed one is
	 * restarted after 10 ms, then 20, 40, ... (at most 1 s). */
	weft_child_spec_t pool[2] = {
		{ .name = "db-1", .fn = worker, .needs_start = 1 },
		{ .name = "db-2", .fn = worker, .needs_start = 1 },
	};
	weft_supervisor_opts_t o;
	weft_supervisor_opts_init(&o);
	o.max_restarts = 5;
	o.period = WEFT_SEC;
	o.backoff_initial = 10 * WEFT_MSEC;
	o.backoff_max = WEFT_SEC;
	o.on_failure = log_failure;
	/* Permanent workers never end: the supervisor runs until its
	 * scope is cancelled, here by a deadline. */
	weft_scope_t *s;
	int rc = weft_move_on_after(&s, 500 * WEFT_MSEC);
	if (rc < 0)
		return rc;
	weft_error_t *err = NULL;
	rc = weft_supervise(pool, 2, &o, &err);
	weft_scope_exit(s);
	weft_scope_destroy(s);
	printf("pool: %s after %d attempts\n", weft_err_name(rc),
		atomic_load(&attempts));
	weft_error_free(err);

	/* A child that fails at once, every time: more than 2 restarts in
	 * the period and the supervisor gives up, reporting the last
	 * failures. */
	weft_child_spec_t one = { .name = "broken", .fn = broken };
	o.max_restarts = 2;
	o.backoff_initial = 0;
	o.on_failure = NULL;
	rc = weft_supervise(&one, 1, &o, &err);
	if (rc == WEFT_ECHILD_FAILED) {
		const weft_error_t *last = weft_error_nested_at(err, 0);
		printf("gave up: %s, last failures kept: %zu\n",
			weft_err_name(weft_error_code_at(err, 0)),
			weft_error_count(last));
	}
	weft_error_free(err);
	return 0;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
