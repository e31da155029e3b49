/* PLACEHOLDER (issue 4, being written): signal watchers. */
#include "rt.h"
#include "sigwatch.h"

void weft__signals_fini(struct weft_runtime *rt)
{
	(void)rt;
}
