/* weft: a work-stealing fiber scheduler with structured task groups.
 *
 * The umbrella header.  Vocabulary used throughout the API:
 *   create/destroy  heap objects the caller owns (runtime, scope, event,
 *                   lock, semaphore, limiter, condition, local key)
 *   init            fill a value the caller provides (weft_config_init)
 *   open/join       task groups (join also frees the group)
 *   open/close      a resource bound to the runtime or the calling task
 *                   (weft_fs_open, weft_udp_open, weft_signal_open,
 *                   weft_shutdown_open, weft_channel_open,
 *                   weft_portal_open, weft_as_completed_open): close ends
 *                   its use and gives it back, except that a channel end
 *                   is freed by its release and a portal by its last
 *                   reference; weft_scope_open is create + enter
 *   spawn           start a task in a group, fire and forget
 *   start/started   start a task and wait until it says it is ready
 *   cancel          request cancellation (any thread, never blocks)
 *   wait            park until something happened (a checkpoint)
 *   retain/release  add / drop a reference to a handle
 *   free            give back what a call returned (weft_error_free,
 *                   weft_fs_free, weft_freeaddrinfo)
 *   now             the monotonic clock, int64_t nanoseconds
 * acquire/release on a lock, semaphore or limiter take and return the
 * resource; _release on a handle (task, group, portal, context, channel
 * end) drops a reference.
 *
 * Every call that can fail returns 0 (or a count) on success or a negative
 * code (weft/error.h); calls that cannot fail, such as the getters
 * weft_task_id and weft_now, return their value.
 *
 * Each declaration is documented with the same labels: "What it does:",
 * "Ownership:", "Errors:" (or "Returns:"), "Checkpoint:" (may it observe
 * cancellation or switch fibers?) and "Threads:" (which threads may call
 * it: "any thread", "weft fiber" (a task), ...).  A declaration without an
 * Ownership label takes and gives no ownership: the caller keeps what it
 * passes in, and nothing it returns or writes out is the caller's to free
 * or release. */
#ifndef WEFT_H
#define WEFT_H

#include "weft/version.h"
#include "weft/error.h"
#include "weft/debug.h"
#include "weft/runtime.h"
#include "weft/task.h"
#include "weft/panic.h"
#include "weft/group.h"
#include "weft/par.h"
#include "weft/cancel.h"
#include "weft/time.h"
#include "weft/sync.h"
#include "weft/channel.h"
#include "weft/combine.h"
#include "weft/supervise.h"
#include "weft/local.h"
#include "weft/inspect.h"
#include "weft/fs.h"
#include "weft/dns.h"
#include "weft/net.h"
#include "weft/thread.h"
#include "weft/signal.h"
#include "weft/udp.h"
#include "weft/fd.h"

#endif
