/* Panics: ending the calling task at once with a WEFT_EPANIC failure
 * (docs/semantics.md rule 45), an assertion built on it, and a
 * process-wide hook that sees every panic.
 *
 * A panic is for a bug, not for an expected error: return a code (with
 * weft_fail for a message) when the caller can do something about it.  A
 * panic does not end the process: its failure goes to the task's group
 * like any other, cancels the siblings, and the group's owner decides.
 * Go's panic in a goroutine ends the program; in weft it ends the task,
 * as a raised exception ends a Trio task.
 *
 *     static int worker(void *arg)
 *     {
 *             struct job *j = arg;
 *             weft_assert(j->state == JOB_READY);
 *             if (j->kind >= JOB_KINDS)
 *                     weft_panic("job %d: unknown kind %d", j->id, j->kind);
 *             ...
 *     }
 *
 * C++: weft is C and does not unwind.  An exception escaping a task
 * function reaches std::terminate; catch in the task function and turn
 * the exception into a failure (weft_fail) or a panic.  Panic after the
 * catch block, not inside it: a handler left without finishing would stay
 * on the C++ runtime's per-thread list of caught exceptions.
 *
 *     static int task(void *arg)
 *     {
 *             char what[256] = "unknown C++ exception";
 *             try { return work(arg); }
 *             catch (const std::exception &e) {
 *                     snprintf(what, sizeof what, "%s", e.what());
 *             }
 *             catch (...) {}
 *             weft_panic("%s", what);
 *     }
 *
 * weft_panic itself never throws and never unwinds: C++ destructors of the
 * panicking task's frames do not run (see weft_panic). */
#ifndef WEFT_PANIC_H
#define WEFT_PANIC_H

#include <stdint.h>

#include "weft/export.h"

WEFT_BEGIN_DECLS

/* What it does: ends the calling task now, as a failure with code
 * WEFT_EPANIC.  The failure's message (weft_error_message_at,
 * weft_task_failure) is the formatted text (printf format, cut at 255
 * bytes), a newline, and a backtrace of the panicking task, one frame per
 * line, innermost first, from the function that called weft_panic down to
 * the task's function:
 *
 *     job 7: unknown kind 9
 *       #0 worker+0x8c (jobs.c:41)
 *       #1 run_batch+0x31 (jobs.c:77)
 *
 * (functions and lines come from the objects' symbol tables and DWARF
 * line tables when weft was built with libdw and the code with -g; else
 * exported names only, or addresses).  The panic hook, if one is set
 * (weft_set_panic_hook), is called first.  Then the task ends as if its
 * function had returned WEFT_EPANIC: groups it left open are cancelled
 * and joined (their failures nest under the panic's leaf; the panic is
 * not also reported as a missing join, nor does it trigger the config's
 * abort_on_missing_join), scopes it left entered are exited, and the
 * failure goes to its group, which cancels the siblings and makes the
 * owner's weft_group_join return WEFT_ECHILD_FAILED with the panic's leaf
 * (the fatal class of weft_error_primary).  A task started with
 * weft_group_start that panics before weft_task_started makes that call
 * return WEFT_EPANIC, like any failure before started(); a root task's
 * panic is weft_runtime_run's result.
 * The task's frames are abandoned, not unwound: nothing below weft_panic
 * returns, so memory those frames own leaks, semaphore and limiter
 * permits they hold stay held, a weft Lock they hold breaks as at any end
 * of its holder (its waiters and later acquires get -EOWNERDEAD:
 * weft/sync.h), C++ destructors do not run, and weft_local_unbind is not
 * called (bindings go with the task, as at any end).  A panic is for a state the code cannot continue from.
 * Outside a weft task (a plain thread, an offload function running under
 * weft_to_thread, a worker's scheduler context), it prints "weft: panic:"
 * with the message and a backtrace to stderr, calls the hook, and aborts
 * the process (as a panic on Go's main goroutine ends the program).
 * Called from code weft runs as part of a task's end (a done callback, a
 * task-local key's destructor), or again while the task is panicking (from
 * the hook), it prints the same to stderr and aborts the process.
 * Errors: none; it does not return.
 * Checkpoint: no; it may park while joining the task's open groups, and
 * never returns.  Threads: any thread (see above for what happens outside
 * a task). */
WEFT_EXTERN void weft_panic(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* What it does: checks cond, and panics the calling task (weft_panic) with
 * "assertion failed: <cond> (<file>:<line>)" when it is false.  Always
 * evaluated, whatever NDEBUG says: it guards states the task cannot go on
 * from, and costs one branch.  For checks that should vanish from release
 * builds, use assert(3), which ends the whole process.
 * Errors, checkpoint, threads: as weft_panic. */
#define weft_assert(cond)                                                      \
	((cond) ? (void)0                                                      \
		: weft_panic("assertion failed: %s (%s:%d)", #cond, __FILE__,  \
			  __LINE__))

/* What a panic hook is told.  Every pointer is valid during the call
 * only. */
typedef struct weft_panic_info {
	uint64_t task_id;      /* the panicking task's id, 0 outside a task */
	const char *task_name; /* its name, "" outside a task */
	const char *message;   /* the formatted message */
	const char *backtrace; /* the backtrace lines ("  #0 ...\n"...) */
} weft_panic_info_t;

typedef void (*weft_panic_hook_fn)(const weft_panic_info_t *info, void *arg);

/* What it does: sets the process-wide panic hook to fn(info, arg), or
 * removes it (fn NULL), and writes the previous hook and its arg to
 * *prev_fn and *prev_arg when these are not NULL (so a library can chain
 * to the hook it replaced).  The hook is called once per panic, before
 * the task ends, on the thread that panics: for a task, its worker,
 * running on the task's stack (keep the hook's stack use small), as the
 * task.  It is meant for logging: it must not block, park, call
 * weft_panic or call weft calls that may park; a hook that panics aborts
 * the process.  A hook replaced while a panic is in progress elsewhere
 * may still be called by that panic, so its arg must stay valid until no
 * panic can be running (e.g. until the runtimes are destroyed).
 * This is weft's one piece of process-wide configuration: panics can
 * happen outside any runtime.
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_set_panic_hook(weft_panic_hook_fn fn, void *arg,
	weft_panic_hook_fn *prev_fn, void **prev_arg);

WEFT_END_DECLS

#endif
