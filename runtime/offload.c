/* PLACEHOLDER (issue 4, being written): the to_thread pool. */
#include "offload.h"
#include "rt.h"

void weft__offload_stop(struct weft_runtime *rt)
{
	(void)rt;
}
