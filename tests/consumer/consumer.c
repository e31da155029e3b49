/* A program outside the weft tree, built against an installed weft: runs
 * one root task with weft_run and checks that it ran.  Used by run.sh with
 * pkg-config (shared and static) and with find_package(weft). */
#include <stdio.h>

#include <weft.h>

static int main_task(void *arg)
{
	*(int *)arg = 42;
	return 0;
}

int main(void)
{
	int flag = 0;
	int rc = weft_run(main_task, &flag);
	printf("weft %s: weft_run returned %d, flag %d\n",
		weft_version_string(), rc, flag);
	return rc == 0 && flag == 42 ? 0 : 1;
}
