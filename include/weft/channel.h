/* Channels: memory object streams between tasks (Trio's memory channels,
 * AnyIO's memory object streams; docs/semantics.md rules 41-42).
 *
 * A channel carries fixed-size items, copied by value: a channel of
 * pointers has item_size = sizeof(void *).  Opening one gives a send end
 * and a receive end; either end may be cloned, and any number of tasks on
 * any workers may send and receive at once (also through the same end).
 * Items from one sender are received in the order they were sent.
 *
 * Capacity: 0 is a rendezvous (a send completes only when a receiver took
 * the item), N buffers up to N items, WEFT_CHANNEL_UNBOUNDED never makes a
 * sender wait (the buffer grows; a send may then fail with -ENOMEM).
 *
 * Ends are closed and released separately:
 *   - close (weft_channel_tx_close / weft_channel_rx_close) is how an end
 *     stops being usable.  Idempotent, safe while other tasks use the end:
 *     their calls through it, parked or later, return WEFT_ECLOSED.
 *   - release (weft_channel_tx_release / weft_channel_rx_release) closes
 *     the end if still open and frees it.  Every end you get from open or
 *     clone is released exactly once, when no call through it is still in
 *     progress; after release the pointer is invalid.  The channel itself
 *     is freed with its last end.
 * So "using a closed end" is well defined (WEFT_ECLOSED) and only "using a
 * released end" is undefined, like any use after free.
 *
 * Close semantics (rule 41): once every send end is closed, receivers
 * first drain the buffer and then get WEFT_EEND; once every receive end is
 * closed, senders (also those parked) get WEFT_EBROKEN.  Items a sender
 * left in the buffer that nobody will receive stay there until the channel
 * is freed; give a drop callback (weft_channel_open_drop) if items own
 * memory.
 *
 * Cancellation (docs/semantics.md rule 42): a send that returns
 * -ECANCELED delivered nothing and a receive that returns -ECANCELED took
 * nothing.  A parked sender or receiver whose scope was cancelled before
 * a peer came is passed over: the item goes to the next parked peer, or
 * into the buffer.  A send or receive that completed is reported as
 * completed even if the task was cancelled at the same moment (its next
 * checkpoint sees the cancellation).
 *
 * Typical use:
 *     weft_channel_tx_t *tx;
 *     weft_channel_rx_t *rx;
 *     rc = weft_channel_open(&tx, &rx, sizeof(struct job), 16);
 *     ... spawn a consumer given rx; it loops until WEFT_EEND, then
 *     ... releases rx
 *     for (...) rc = weft_channel_send(tx, &job);
 *     weft_channel_tx_release(tx);     // the consumer drains, then EEND
 */
#ifndef WEFT_CHANNEL_H
#define WEFT_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

/* A send end and a receive end of a channel (opaque). */
typedef struct weft_channel_tx weft_channel_tx_t;
typedef struct weft_channel_rx weft_channel_rx_t;

/* Capacity of a channel whose buffer grows without bound. */
#define WEFT_CHANNEL_UNBOUNDED SIZE_MAX

/* Called once for every item still buffered when the channel is freed (its
 * last end released), oldest first, on the thread that released that end.
 * item points into the channel's buffer and is valid only during the call;
 * ctx is the pointer given to weft_channel_open_drop.  It must not call
 * weft on the channel (it is being freed) and must not block. */
typedef void (*weft_channel_drop_fn)(void *item, void *ctx);

/* A snapshot of a channel's state (AnyIO's statistics()). */
typedef struct weft_channel_stats {
	size_t buffered;       /* items in the buffer now */
	size_t capacity;       /* as opened (WEFT_CHANNEL_UNBOUNDED, 0, N) */
	size_t open_send_ends; /* send ends not closed yet */
	size_t open_recv_ends; /* receive ends not closed yet */
	size_t waiting_send;   /* tasks parked in weft_channel_send */
	size_t waiting_recv;   /* tasks parked in weft_channel_receive */
} weft_channel_stats_t;

/* What it does: opens a channel of items of item_size bytes with the
 * given capacity (0 = rendezvous, N, or WEFT_CHANNEL_UNBOUNDED) and
 * returns its first send end and receive end.  A bounded buffer is
 * allocated at once (one allocation for channel, ends and buffer).
 * Ownership: the caller owns *tx and *rx; release each exactly once
 * (weft_channel_tx_release / weft_channel_rx_release).
 * Errors: -EINVAL (NULL tx or rx, item_size 0, a capacity whose buffer
 * size overflows), -ENOMEM.  On failure *tx and *rx are untouched.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_channel_open(weft_channel_tx_t **tx,
	weft_channel_rx_t **rx, size_t item_size, size_t capacity);

/* What it does: weft_channel_open with a drop callback (NULL = none) that
 * is called for every item still buffered when the channel is freed, so
 * that pointers inside items are not leaked.
 * Ownership, errors, checkpoint, threads: as weft_channel_open. */
WEFT_EXTERN int weft_channel_open_drop(weft_channel_tx_t **tx,
	weft_channel_rx_t **rx, size_t item_size, size_t capacity,
	weft_channel_drop_fn drop, void *ctx);

/* What it does: sends a copy of the item_size bytes at item.  Hands it
 * straight to the oldest parked receiver if there is one, else buffers it
 * if there is room, else parks until a receiver takes it (capacity 0: the
 * call returns only once a receiver has it) or the send fails.
 * Ownership: item stays the caller's (it is copied); on success what the
 * bytes refer to belongs to the receiver.
 * Errors: -EINVAL (NULL tx or item), WEFT_ECLOSED (tx was closed, also
 * while parked), WEFT_EBROKEN (every receive end is closed, also while
 * parked), -ECANCELED (the caller's scope was cancelled: nothing was
 * delivered), -ENOMEM (an unbounded buffer could not grow: nothing was
 * delivered), WEFT_ENOTFIBER (not in a weft task: use
 * weft_channel_try_send).
 * Checkpoint: yes (docs/semantics.md rule 22: a call that need not wait
 * completes without yielding, except every 128th such call in a row).
 * Threads: weft fiber. */
WEFT_EXTERN int weft_channel_send(weft_channel_tx_t *tx, const void *item);

/* What it does: as weft_channel_send, but never waits: succeeds only if a
 * receiver is parked or the buffer has room.
 * Ownership: as weft_channel_send.
 * Errors: -EAGAIN (it would have to wait: nothing was sent), -EINVAL,
 * WEFT_ECLOSED, WEFT_EBROKEN, -ENOMEM.
 * Checkpoint: no (never parks, never observes cancellation).
 * Threads: any thread, also a plain (non-weft) thread: a receiver it
 * wakes is scheduled through the runtime's injection queue. */
WEFT_EXTERN int weft_channel_try_send(weft_channel_tx_t *tx, const void *item);

/* What it does: receives the oldest item into the item_size bytes at
 * item: from the buffer (refilling it from the oldest parked sender), or
 * straight from a parked sender, else parks until a sender delivers one
 * or the channel ends.
 * Ownership: the item's bytes become the caller's.
 * Errors: -EINVAL (NULL rx or item), WEFT_EEND (every send end is closed
 * and the buffer is empty), WEFT_ECLOSED (rx was closed, also while
 * parked), -ECANCELED (the caller's scope was cancelled: nothing was
 * taken, the item stays for another receiver), WEFT_ENOTFIBER.
 * On failure *item is untouched.
 * Checkpoint: yes, as weft_channel_send.  Threads: weft fiber. */
WEFT_EXTERN int weft_channel_receive(weft_channel_rx_t *rx, void *item);

/* What it does: as weft_channel_receive, but never waits.
 * Ownership: as weft_channel_receive.
 * Errors: -EAGAIN (nothing to take now), -EINVAL, WEFT_EEND, WEFT_ECLOSED.
 * Checkpoint: no.  Threads: any thread, also a plain thread (a sender it
 * unblocks is scheduled through the injection queue). */
WEFT_EXTERN int weft_channel_try_receive(weft_channel_rx_t *rx, void *item);

/* What it does: a new send (receive) end of the same channel, counted
 * separately by the close rules: the senders' side ends only when every
 * send end, clones included, is closed.
 * Ownership: the caller owns *out (release it exactly once).
 * Errors: -EINVAL (NULL), WEFT_ECLOSED (the end was closed), -ENOMEM.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_channel_tx_clone(weft_channel_tx_t *tx,
	weft_channel_tx_t **out);
WEFT_EXTERN int weft_channel_rx_clone(weft_channel_rx_t *rx,
	weft_channel_rx_t **out);

/* What it does: closes the end: calls through it, parked ones included,
 * return WEFT_ECLOSED from now on.  Closing the last open send end makes
 * receivers drain and then get WEFT_EEND; closing the last open receive
 * end makes every sender get WEFT_EBROKEN.  Closing a closed end does
 * nothing.  The end object stays valid until it is released.
 * Errors: -EINVAL (NULL).  Checkpoint: no; never blocks.
 * Threads: any thread. */
WEFT_EXTERN int weft_channel_tx_close(weft_channel_tx_t *tx);
WEFT_EXTERN int weft_channel_rx_close(weft_channel_rx_t *rx);

/* What it does: closes the end if it is still open, then frees it; the
 * last release of a channel's ends frees the channel, calling the drop
 * callback for every item still buffered.
 * Ownership: the end is invalid afterwards.  No call through it may still
 * be in progress (close it first and let those calls return).  NULL is
 * ignored.  Checkpoint: no; never blocks.  Threads: any thread. */
WEFT_EXTERN void weft_channel_tx_release(weft_channel_tx_t *tx);
WEFT_EXTERN void weft_channel_rx_release(weft_channel_rx_t *rx);

/* What it does: snapshots the channel's statistics into *out (also
 * through a closed end).
 * Errors: -EINVAL (NULL).  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_channel_tx_stats(const weft_channel_tx_t *tx,
	weft_channel_stats_t *out);
WEFT_EXTERN int weft_channel_rx_stats(const weft_channel_rx_t *rx,
	weft_channel_stats_t *out);

WEFT_END_DECLS

#endif
