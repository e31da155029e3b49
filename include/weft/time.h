/* weft's clock and sleeping.  Times are int64_t nanoseconds on a monotonic
 * clock (CLOCK_MONOTONIC); deadlines are absolute and WEFT_FOREVER means
 * none.  Every int64_t is a valid deadline: one at or before weft_now()
 * has passed, WEFT_PAST included. */
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

WEFT_BEGIN_DECLS

/* What it does: monotonic time in nanoseconds.
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

/* What it does: weft_sleep_until(weft_now() + ns); ns <= 0 just
 * checkpoints.
 * Errors, checkpoint, threads: as weft_sleep_until. */
WEFT_EXTERN int weft_sleep(int64_t ns);

WEFT_END_DECLS

#endif
