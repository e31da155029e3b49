/* docs/guide.md, "Budgets": a group that runs at most four fetches at
 * once, a cap on a subtree's stacks, a deadline for a whole group, and
 * the run time a group's tasks used. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include <weft.h>

static atomic_int running, most;

static int fetch(void *arg)
{
	(void)arg;
	int n = atomic_fetch_add(&running, 1) + 1;
	int m = atomic_load(&most);
	while (n > m && !atomic_compare_exchange_weak(&most, &m, n))
		;
	int rc = weft_sleep(2 * WEFT_MSEC); /* the fetch itself */
	atomic_fetch_sub(&running, 1);
	return rc;
}

static int wait_forever(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_FOREVER); /* until the group's deadline */
}

static int hold(void *arg)
{
	return weft_event_wait(arg); /* alive until the event is set */
}

static int work(void *arg)
{
	(void)arg;
	volatile long x = 0;
	for (long i = 0; i < 5000000; i++)
		x += i;
	return 0;
}

static int main_task(void *arg)
{
	(void)arg;
	weft_group_t *g;
	/* At most four children at once: the fifth spawn waits for a
	 * slot, and so do the ones after it. */
	weft_group_opts_t o = { .max_children = 4 };
	int rc = weft_group_open_opts(&g, &o);
	if (rc < 0)
		return rc;
	for (int i = 0; i < 20 && rc == 0; i++)
		rc = weft_group_spawn(g, fetch, NULL);
	int jrc = weft_group_join(g, NULL);
	if (rc < 0 || jrc < 0)
		return rc < 0 ? rc : jrc;
	/* How many ran at once depends on timing; never more than 4. */
	printf("max_children: %s 4 of 20 at once\n",
		atomic_load(&most) <= 4 ? "at most" : "MORE than");

	/* Stacks for two tasks of the subtree: while both live, the third
	 * spawn fails. */
	weft_config_t cfg;
	weft_config_init(&cfg);
	weft_event_t *go;
	if ((rc = weft_event_create(&go)) < 0)
		return rc;
	o = (weft_group_opts_t){ .stack_bytes_max = 2 * cfg.stack_size };
	if ((rc = weft_group_open_opts(&g, &o)) < 0) {
		weft_event_destroy(go);
		return rc;
	}
	weft_group_spawn(g, hold, go);
	weft_group_spawn(g, hold, go);
	rc = weft_group_spawn(g, hold, go);
	weft_event_set(go);
	weft_group_join(g, NULL);
	weft_event_destroy(go);
	printf("stack_bytes_max: the third spawn gave %s\n", weft_err_name(rc));

	/* A deadline for everything spawned in the group. */
	o = (weft_group_opts_t){ .flags = WEFT_GROUP_DEADLINE,
		.deadline = weft_now() + 20 * WEFT_MSEC };
	if ((rc = weft_group_open_opts(&g, &o)) < 0)
		return rc;
	weft_group_spawn(g, wait_forever, NULL);
	weft_group_spawn(g, wait_forever, NULL);
	rc = weft_group_join(g, NULL);
	printf("deadline: the join gave %s\n", weft_err_name(rc));

	/* Run time, counted exactly for this group's subtree (every group
	 * is counted by sampling); retained, so that it can be read after
	 * the join. */
	o = (weft_group_opts_t){ .flags = WEFT_GROUP_CPU_TIME };
	if ((rc = weft_group_open_opts(&g, &o)) < 0)
		return rc;
	weft_group_spawn(g, work, NULL);
	weft_group_spawn(g, work, NULL);
	weft_group_retain(g);
	weft_group_join(g, NULL);
	printf("run time: %s\n", weft_group_cpu_ns(g) > 0 ? "counted" : "none");
	weft_group_release(g);
	return 0;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
