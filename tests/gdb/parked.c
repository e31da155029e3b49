/* The program tests/integration/gdb_weft.sh looks at with gdb and
 * tools/gdb/weft.py: a runtime with tasks parked at known places, which
 * then stops itself (SIGSTOP) so that gdb, which started it, takes over.
 *
 *   "gdb-waiter"   parked on an event in gdb_test_wait_here
 *   "gdb-sleeper"  parked in a long sleep in gdb_test_sleep_here
 *   "main"         the root, running (it raises the SIGSTOP)
 *
 * Without gdb the SIGSTOP stops the process like any SIGSTOP (SIGCONT
 * lets it finish): the program only makes sense under a debugger.
 * Public API only. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <weft.h>

static weft_event_t *go;

/* noinline: the backtrace must show these frames by name. */
__attribute__((noinline)) static int gdb_test_wait_here(weft_event_t *ev)
{
	int rc = weft_event_wait(ev);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
	return rc;
}

static int waiter(void *arg)
{
	(void)arg;
	return gdb_test_wait_here(go);
}

__attribute__((noinline)) static int gdb_test_sleep_here(int64_t ns)
{
	int rc = weft_sleep(ns);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
	return rc;
}

static int sleeper(void *arg)
{
	(void)arg;
	int rc = gdb_test_sleep_here(3600 * WEFT_SEC);
	return rc == -ECANCELED ? 0 : rc;
}

/* Whether a live task named `name` is parked. */
static int parked(const char *name)
{
	weft_task_info_t info[16];
	size_t n = 0;
	if (weft_all_tasks(NULL, info, 16, &n) < 0)
		return 0;
	for (size_t i = 0; i < n && i < 16; i++)
		if (strcmp(info[i].name, name) == 0 && info[i].parked_on)
			return 1;
	return 0;
}

static int root(void *arg)
{
	(void)arg;
	if (weft_event_create(&go) < 0)
		return -1;
	weft_group_t *g;
	if (weft_group_open(&g) < 0)
		return -1;
	int rc = weft_group_spawn_named(g, "gdb-waiter", waiter, NULL);
	if (rc == 0)
		rc = weft_group_spawn_named(g, "gdb-sleeper", sleeper, NULL);
	while (rc == 0 && !(parked("gdb-waiter") && parked("gdb-sleeper")))
		rc = weft_sleep(WEFT_MSEC);
	if (rc == 0) {
		printf("parked: ready\n");
		fflush(stdout);
		raise(SIGSTOP); /* gdb takes over here */
	}
	weft_event_set(go);
	weft_group_cancel(g, "done");
	int jrc = weft_group_join(g, NULL);
	weft_event_destroy(go);
	return rc < 0 ? rc : jrc;
}

int main(void)
{
	weft_config_t cfg;
	if (weft_config_init(&cfg) < 0)
		return 2;
	cfg.workers = 2;
	weft_runtime_t *rt;
	if (weft_runtime_create(&rt, &cfg) < 0) {
		fprintf(stderr, "parked: %s\n", cfg.message);
		return 2;
	}
	int rc = weft_runtime_run(rt, root, NULL, NULL);
	weft_runtime_destroy(rt);
	return rc == 0 ? 0 : 1;
}
