/* weft's clock and sleeping.  Times are int64_t nanoseconds on a monotonic
 * clock (CLOCK_MONOTONIC); deadlines are absolute and WEFT_FOREVER means
 * none.  Every int64_t is a valid deadline: one at or before weft_now()
 * has passed, WEFT_PAST included.
 *
 * Virtual time (docs/semantics.md rule 44).  A runtime created with
 * weft_config_t.clock = WEFT_CLOCK_VIRTUAL (or WEFT_CLOCK=virtual in the
 * environment) runs weft_now(), sleeps, scope deadlines, timeouts and
 * every other deadline of its tasks on a virtual clock: it starts at
 * WEFT_VIRTUAL_EPOCH, does not move while anything can run, and jumps to
 * the earliest pending deadline, exactly, as soon as the runtime is
 * quiescent: no task runnable on any worker or queued, and no operation
 * in flight that could make one runnable.  Those operations are I/O
 * (socket waits, file and DNS requests, signal waits), weft_to_thread
 * calls (weft/thread.h; while their function runs, except while it waits
 * in weft_from_thread_run) and the hand-over of a portal call or spawn
 * from a foreign thread (until its task is queued): the clock waits for
 * them, in real time.  So a deadline on such a wait itself does not fire
 * by a jump: a read from a peer that never writes, under a one-hour
 * weft_move_on_after, waits for the peer in real time, possibly forever
 * (Trio's autojump clock would jump; here the program's tests give their
 * peers a real end, or close them).  An hour-long sleep takes a few
 * microseconds.
 *
 * Which clock weft_now() reads: on a worker of a virtual runtime (its
 * tasks) and on its offload threads, the runtime's virtual time; on every
 * other thread (the one calling weft_runtime_run, the I/O thread, foreign
 * threads), the real clock.  A plain thread that wakes a task (sets an
 * event, cancels a scope) is not an operation the clock waits for: the
 * clock may jump just before its wake.  Phase two of weft_shutdown_open's
 * grace period and portal call timeouts count real time.
 *
 * A virtual runtime whose tasks are all blocked with no deadline pending
 * and nothing in flight can never go on (Go's synctest calls it a
 * deadlock; Trio's MockClock hangs): weft cancels every root task once
 * (origin WEFT_CANCEL_DEADLOCK) and weft_runtime_run returns -EDEADLK. */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

#include <stdint.h>

#include "weft/export.h"

#define WEFT_FOREVER INT64_MAX
/* The earliest deadline there is: what weft_effective_deadline returns
 * inside an effectively cancelled scope (Trio's -inf). */
#define WEFT_PAST INT64_MIN
#define WEFT_MSEC ((int64_t)1000000)
#define WEFT_SEC ((int64_t)1000000000)
/* weft_now() of a virtual-clock runtime before its first jump: 10^6 s
 * (about 11.6 days), far enough from 0 that weft_now() - an hour stays
 * positive, and far from WEFT_FOREVER. */
#define WEFT_VIRTUAL_EPOCH ((int64_t)1000000 * WEFT_SEC)

WEFT_BEGIN_DECLS

/* What it does: monotonic time in nanoseconds: the runtime's virtual
 * time on the workers and offload threads of a runtime with the virtual
 * clock, else the real clock (see the top of this file).
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int64_t weft_now(void);

/* What it does: parks the calling task until weft_now() >= deadline; the
 * worker runs other tasks meanwhile.  The deadline goes into the runtime's
 * deadline wheel (65.536 us ticks) and never fires early; whichever comes
 * first fires it: any worker at its first yield after the deadline (no
 * rounding; the task takes that worker's run-next slot), or the I/O
 * thread's timerfd, at most one tick late plus the time the OS takes to
 * run the I/O thread.  A deadline in the past still checkpoints (checks,
 * yields, checks again).
 * Errors: -ECANCELED (an enclosing scope is cancelled or its deadline
 * passed first), WEFT_ENOTFIBER (not in a weft task).  Arming the
 * deadline never allocates, so there is no -ENOMEM.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_sleep_until(int64_t deadline);

/* Sleep flags (weft_sleep_until_opts). */
/* The sleep gives its stack's memory back to the kernel while parked.
 * The caller promises that nothing else reads or writes this task's stack
 * until the call returns (see weft_sleep_until_opts). */
#define WEFT_SLEEP_RELEASE_STACK 0x1u

/* What it does: weft_sleep_until, with flags.  WEFT_SLEEP_RELEASE_STACK:
 * while the task sleeps, the bytes its stack uses (about 700 for a plain
 * sleeper) wait in a heap block and the stack's pages go back to the
 * kernel; they are copied back, to the same addresses, before the task
 * runs again.  A parked sleeper then holds about 1.5 KB (its record, the
 * sleep's deadline and the copy) instead of about 4.7 KB
 * (docs/benchmarks.md, B7).  The price: a system call when it parks and
 * a page fault when it wakes (each several microseconds, about 13 for
 * the fault on a virtual machine), so it suits long sleeps.  The flag is
 * ignored (the sleep keeps its stack) for a task running inline on its
 * parent's stack, when more than 3 KB of stack are in use when it parks,
 * or when memory for the copy cannot be allocated.
 * The promise: no other task or thread reads or writes this task's
 * stack (its locals, and whatever a pointer it handed out points at:
 * e.g. a result slot its children fill) until the call returns.  A read
 * would see zeros and a write would be lost.  Libraries built with
 * WEFT_DEBUG check it when the task wakes and abort naming this call.
 * Errors: -EINVAL (an unknown flag), else as weft_sleep_until.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_sleep_until_opts(int64_t deadline, unsigned flags);

/* What it does: weft_sleep_until(weft_now() + ns); ns <= 0 just
 * checkpoints.
 * Errors, checkpoint, threads: as weft_sleep_until. */
WEFT_EXTERN int weft_sleep(int64_t ns);

/* What it does: parks the calling task until every other task of its
 * runtime is parked and nothing is runnable or queued on any worker, then
 * returns 0 (Trio's wait_all_tasks_blocked with no cushion).  A task
 * parked on I/O or on an offload call counts as parked.  With the virtual
 * clock it returns before the clock would jump: waiters are woken first,
 * and the clock jumps only if the runtime is still quiescent after they
 * ran.  Several waiters all return at the same quiescent point.  With the
 * real clock, tasks sleeping on deadlines count as parked too.  Wakes
 * from plain threads (docs/semantics.md rule 44) are not seen ahead.
 * Errors: -ECANCELED (an enclosing scope is cancelled), WEFT_ENOTFIBER
 * (not in a weft task).
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_wait_all_tasks_blocked(void);

WEFT_END_DECLS

#endif
