/* A 4-ary min-heap of scope deadlines, owned by the I/O thread.  Each
 * scope remembers its index, so removal and re-keying are O(log n).
 * Thread: I/O thread only. */
#ifndef WEFT_RUNTIME_TIMER_H
#define WEFT_RUNTIME_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct weft_scope;
typedef struct weft__io weft__io_t;

/* Insert s keyed by `when` (s must not be in the heap); -ENOMEM. */
int weft__timer_insert(weft__io_t *io, struct weft_scope *s, int64_t when);
/* Re-key s, which is in the heap. */
void weft__timer_rekey(weft__io_t *io, struct weft_scope *s, int64_t when);
/* Remove s, which is in the heap. */
void weft__timer_remove(weft__io_t *io, struct weft_scope *s);
/* The scope with the earliest deadline, or NULL. */
struct weft_scope *weft__timer_min(const weft__io_t *io);
void weft__timer_fini(weft__io_t *io);

#endif
