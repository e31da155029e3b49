/* weft's clock and sleeping.  Times are int64_t nanoseconds on a monotonic
 * clock (CLOCK_MONOTONIC); deadlines are absolute and WEFT_FOREVER means
 * none. */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

#include <stdint.h>

#include "weft/export.h"

#define WEFT_FOREVER INT64_MAX
#define WEFT_MSEC ((int64_t)1000000)
#define WEFT_SEC ((int64_t)1000000000)

WEFT_BEGIN_DECLS

/* What it does: monotonic time in nanoseconds.
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int64_t weft_now(void);

/* What it does: parks the calling task until weft_now() >= deadline; the
 * worker runs other tasks meanwhile.  The wake-up comes from the I/O
 * thread's timer (millisecond granularity, so expect up to ~1 ms
 * lateness).  A deadline in the past still checkpoints.
 * Errors: -ECANCELED (an enclosing scope is cancelled or its deadline
 * passed first), WEFT_ENOTFIBER (not in a weft task), -ENOMEM.
 * Checkpoint: yes.  Threads: weft fiber only. */
WEFT_EXTERN int weft_sleep_until(int64_t deadline);

/* What it does: weft_sleep_until(weft_now() + ns); ns <= 0 just
 * checkpoints.
 * Errors, checkpoint, threads: as weft_sleep_until. */
WEFT_EXTERN int weft_sleep(int64_t ns);

WEFT_END_DECLS

#endif
