/* Process-wide unique ids for tasks, groups and scopes.
 * Thread: any. */
#ifndef WEFT_RUNTIME_BASE_ID_H
#define WEFT_RUNTIME_BASE_ID_H

#include <stdint.h>

/* A new id, never 0 and never handed out before in this process (ids only
 * need uniqueness: they order nothing).  Any thread; never switches
 * fibers. */
uint64_t weft__id_next(void);

#endif
