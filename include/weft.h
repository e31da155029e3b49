/* weft: a work-stealing fiber scheduler with structured task groups.
 *
 * The umbrella header.  Vocabulary used throughout the API:
 *   create/destroy  heap objects the caller owns (runtime, scope)
 *   open/join       task groups (join also frees the group)
 *   spawn           start a task in a group, fire and forget
 *   start/started   start a task and wait until it says it is ready
 *   cancel          request cancellation (any thread, never blocks)
 *   wait            park until something happened (a checkpoint)
 *   release         give up a handle
 *   now             the monotonic clock, int64_t nanoseconds
 * Every call returns 0 or a negative code (weft/error.h). */
#ifndef WEFT_H
#define WEFT_H

#include "weft/version.h"
#include "weft/error.h"
#include "weft/debug.h"
#include "weft/runtime.h"
#include "weft/task.h"
#include "weft/group.h"
#include "weft/cancel.h"
#include "weft/time.h"
#include "weft/sync.h"
#include "weft/channel.h"
#include "weft/combine.h"
#include "weft/local.h"
#include "weft/inspect.h"
#include "weft/fs.h"
#include "weft/dns.h"
#include "weft/net.h"
#include "weft/thread.h"
#include "weft/signal.h"
#include "weft/udp.h"

#endif
