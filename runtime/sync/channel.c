/* Channels: memory object streams (docs/semantics.md rules 41-42).
 *
 * Problem: move fixed-size items between any number of senders and
 * receivers on any workers, where a sender may have to wait for room (or,
 * at capacity 0, for a receiver) and a receiver for an item, and where a
 * wait that is cancelled transferred nothing - even when the hand-off and
 * the cancellation race on three threads.
 *
 * Approach: one spinlock per channel guards everything: a ring buffer of
 * items, a wait queue of parked senders, one of parked receivers, and the
 * end counters.  Waiting uses the wait-queue protocol of waitq.c, in which
 * the waker decides: whoever completes a transfer with a parked peer does
 * the whole transfer under the lock - copies the item straight into the
 * parked receiver's buffer (n->data), or takes it straight from the parked
 * sender's item (n->data) - and grants the peer's node.  A granted wait
 * returns success whatever else woke it; a cancelled wait that was not
 * granted removes its node under the lock, and since nobody can grant a
 * node that is no longer queued, it transferred nothing.  The grant also
 * carries a result code (chan_waiter.rc) so that closes end waits with
 * WEFT_EEND / WEFT_EBROKEN / WEFT_ECLOSED by the same decision.
 *
 * The hand-off path is short on purpose: one lock, one copy into the
 * peer's node, and a wake after unlocking (a send or a receive grants
 * at most one waiter: weft__waitq_grant_one hands back the task to
 * ready, no wake list), which puts the woken task in the waker's
 * run-next slot.  The woken peer does not take the lock again: it parked
 * with weft__waitq_wait_unlock, which returns as soon as it sees its
 * grant (the granter's release store of `granted` is its last access to
 * the node).  A ping-pong round trip on one worker is then two parks,
 * two grants and four lock acquisitions, and no call on that path but
 * the park (weft__sched_park, which switches) and the switch itself (the
 * grant, the wake claim, the ready's common case and the wait's first
 * park up to weft__sched_park are inline: B5 at one worker went from
 * about 1130 to about 790 instructions per round trip under callgrind).
 * It has ten locked instructions per round trip (four lock exchanges,
 * two park prepares (the seq_cst store of the cancellation pair), two
 * wake claims and two publications of PARKED), but its time follows its
 * instruction count: a build without the per-wait guarantees (the
 * cancellation checks, introspection, stack checks, counters, trace
 * tests, accounting, budget) and with every locked instruction kept ran
 * 0.68x the instructions in 0.67x the time (docs/benchmarks.md, B5,
 * "Where a round trip goes").
 * chan_send/chan_receive are forced inline into the public calls because
 * a parked call resumes by returning through every frame above the
 * switch, each return a return-stack mispredict.
 *
 * Checkpoints: send and receive observe cancellation at entry
 * (weft__waitq_begin) and while parked, but do not yield when they complete
 * at once (but for the cooperative budget, waitq.h); yielding there would
 * add a switch to every hand-off (a ping-pong round trip would cost four
 * parks instead of two).
 *
 * Rejected: a lock-free MPMC ring (ck_ring or Vyukov's): the fast path
 * gets cheaper only when nobody waits, but every transition between
 * "buffer" and "parked peer" then needs a second protocol to close the
 * lost-wake-up window, and cancel-atomicity needs the waker-decides rule
 * anyway.  A per-end lock: closes and statistics need the whole channel.
 *
 * Ends: an end is a small object pointing at the channel, with a `closed`
 * flag.  Close marks it (calls through it then fail with WEFT_ECLOSED,
 * parked ones are granted WEFT_ECLOSED), release closes and frees it.  The
 * first two ends and a bounded buffer live in the channel's own allocation,
 * so opening a channel is one allocation.
 *
 * Cancellation: a waiter whose scope is cancelled before a peer arrives is
 * passed over (weft__waitq_first, weft__waitq_grantable): the item goes
 * to the next waiter, or into the buffer, and the cancelled one leaves
 * with -ECANCELED having sent or received nothing.  The invariants below
 * therefore speak of the waiters that may still be granted ("live");
 * cancelled ones stay queued only until they run and leave.
 *
 * Invariants (under the lock)
 *   1. a live waiter in recvq => the buffer is empty and sendq has no live
 *      waiter.
 *   2. a live waiter in sendq => the buffer is full (count == capacity;
 *      capacity 0: always).  A receiver that takes from a full buffer
 *      refills it from the oldest live parked sender, so per-sender FIFO
 *      order holds.
 *   3. A node is granted at most once and only while queued; granting
 *      removes it (waitq.c).
 *   4. send_open == 0 => sendq has no live waiter (closing an end grants
 *      its own live parked senders), so receivers parked then can only get
 *      WEFT_EEND.  Likewise recv_open == 0 => recvq has no live waiter.
 *   5. The channel is freed when `ends` (ends not released) reaches 0;
 *      only the releaser of the last end touches it afterwards.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/common.h"
#include "base/spin.h"
#include "core/inspect.h"
#include "core/sched.h"
#include "core/task.h"
#include "sync/waitq.h"
#include "weft/channel.h"

/* First ring size of an unbounded channel, in items. */
#define CHAN_UNBOUNDED_INITIAL 16

struct chan;

struct chan_end {
	struct chan *ch;
	bool closed;   /* under ch->lock */
	bool embedded; /* lives inside the channel's allocation */
};

struct weft_channel_tx {
	struct chan_end e;
};

struct weft_channel_rx {
	struct chan_end e;
};

struct chan {
	weft__spin_t lock;
	/* Everything below that is not marked "fixed" is under lock. */
	size_t count;	     /* items buffered */
	size_t head;	     /* ring index of the oldest item */
	size_t ring_cap;     /* items the ring can hold now */
	unsigned char *buf;  /* the ring: ring_cap * item_size bytes */
	weft__waitq_t sendq; /* parked senders, n->data = their item */
	weft__waitq_t recvq; /* parked receivers, n->data = their out */
	size_t send_open;    /* send ends not closed */
	size_t recv_open;    /* receive ends not closed */
	size_t ends;	     /* ends not released */
	/* Fixed at open. */
	size_t item_size;
	size_t capacity; /* as opened */
	weft_channel_drop_fn drop;
	void *drop_ctx;
	struct weft_channel_tx tx0;
	struct weft_channel_rx rx0;
	/* The inline ring follows, at chan_inline_offset(). */
};

/* A parked send or receive; lives on the waiter's stack. */
struct chan_waiter {
	struct weft__wait_node n;
	struct chan_end *end; /* the end the call came through */
	int rc;		      /* set by the granter, under the lock */
};

static size_t chan_inline_offset(void)
{
	size_t a = alignof(max_align_t);
	return (sizeof(struct chan) + a - 1) / a * a;
}

static unsigned char *chan_inline_buf(struct chan *ch)
{
	return (unsigned char *)ch + chan_inline_offset();
}

/* Copies one item.  Pointer-sized items (the common case) get a fixed-size
 * copy the compiler inlines instead of a memcpy call. */
static inline void item_copy(void *dst, const void *src, size_t size)
{
	if (WEFT__LIKELY(size == sizeof(uint64_t)))
		memcpy(dst, src, sizeof(uint64_t));
	else
		memcpy(dst, src, size);
}

static inline unsigned char *ring_slot(struct chan *ch, size_t i)
{
	size_t k = ch->head + i;
	if (k >= ch->ring_cap)
		k -= ch->ring_cap;
	return ch->buf + k * ch->item_size;
}

/* Appends item; the caller checked count < ring_cap. */
static inline void ring_push(struct chan *ch, const void *item)
{
	item_copy(ring_slot(ch, ch->count), item, ch->item_size);
	ch->count++;
}

/* Removes the oldest item into out; the caller checked count > 0. */
static inline void ring_pop(struct chan *ch, void *out)
{
	item_copy(out, ch->buf + ch->head * ch->item_size, ch->item_size);
	if (++ch->head == ch->ring_cap)
		ch->head = 0;
	ch->count--;
}

/* Grants a queued waiter with result rc (lock held). */
static inline void chan_grant(weft__waitq_t *q, struct weft__wait_node *n,
	int rc, weft__wakelist_t *wl)
{
	WEFT__CONTAINER_OF(n, struct chan_waiter, n)->rc = rc;
	weft__waitq_grant(q, n, wl);
}

/* The grant of a transfer (lock held): rc 0, and the task to make
 * runnable after unlocking, or NULL.  A send or a receive grants at most
 * one waiter, so it needs no wake list. */
static inline struct weft_task *chan_grant_one(weft__waitq_t *q,
	struct weft__wait_node *n)
{
	WEFT__CONTAINER_OF(n, struct chan_waiter, n)->rc = 0;
	return weft__waitq_grant_one(q, n);
}

/* Grants every waiter of q that came through end e (all when e is NULL)
 * with rc (lock held). */
static void chan_grant_all(weft__waitq_t *q, struct chan_end *e, int rc,
	weft__wakelist_t *wl)
{
	struct weft__wait_node *n = q->head;
	while (n) {
		struct weft__wait_node *next = n->next;
		/* A cancelled waiter leaves with -ECANCELED on its own. */
		if ((e == NULL ||
			    WEFT__CONTAINER_OF(n, struct chan_waiter, n)->end ==
				    e) &&
			weft__waitq_grantable(n))
			chan_grant(q, n, rc, wl);
		n = next;
	}
}

/* {======================================================= open / free */

int weft_channel_open_drop(weft_channel_tx_t **tx, weft_channel_rx_t **rx,
	size_t item_size, size_t capacity, weft_channel_drop_fn drop, void *ctx)
{
	if (tx == NULL || rx == NULL || item_size == 0)
		return -EINVAL;
	size_t ring = capacity == WEFT_CHANNEL_UNBOUNDED
		? CHAN_UNBOUNDED_INITIAL
		: capacity;
	size_t bytes;
	if (__builtin_mul_overflow(ring, item_size, &bytes) ||
		__builtin_add_overflow(bytes, chan_inline_offset(), &bytes))
		return -EINVAL;
	struct chan *ch = weft__alloc(bytes);
	if (ch == NULL)
		return -ENOMEM;
	memset(ch, 0, sizeof *ch);
	weft__spin_init(&ch->lock);
	ch->ring_cap = ring;
	ch->buf = ring ? chan_inline_buf(ch) : NULL;
	ch->sendq.what = "channel send";
	ch->recvq.what = "channel receive";
	ch->sendq.kind = WEFT__WAIT_CHAN_SEND;
	ch->recvq.kind = WEFT__WAIT_CHAN_RECV;
	ch->send_open = ch->recv_open = 1;
	ch->ends = 2;
	ch->item_size = item_size;
	ch->capacity = capacity;
	ch->drop = drop;
	ch->drop_ctx = ctx;
	ch->tx0.e = (struct chan_end){ .ch = ch, .embedded = true };
	ch->rx0.e = (struct chan_end){ .ch = ch, .embedded = true };
	*tx = &ch->tx0;
	*rx = &ch->rx0;
	return 0;
}

int weft_channel_open(weft_channel_tx_t **tx, weft_channel_rx_t **rx,
	size_t item_size, size_t capacity)
{
	return weft_channel_open_drop(tx, rx, item_size, capacity, NULL, NULL);
}

/* Frees the channel once no end is left: nobody else can reach it. */
static void chan_free(struct chan *ch)
{
	WEFT_ASSERT(ch->sendq.len == 0 && ch->recvq.len == 0,
		"channel freed with parked tasks");
	if (ch->drop) {
		for (size_t i = 0; i < ch->count; i++)
			ch->drop(ring_slot(ch, i), ch->drop_ctx);
	}
	if (ch->buf != chan_inline_buf(ch))
		weft__free(ch->buf);
	weft__free(ch);
}

/* }======================================================= */

/* {======================================================= send / receive */

/* Doubles an unbounded ring.  Lock held on entry and on return, released
 * around the allocation (never allocate under a spinlock), so the caller
 * re-checks everything afterwards. */
static int chan_grow(struct chan *ch)
{
	size_t cap, bytes;
	if (__builtin_mul_overflow(ch->ring_cap, 2, &cap) ||
		__builtin_mul_overflow(cap, ch->item_size, &bytes))
		return -ENOMEM;
	weft__spin_unlock(&ch->lock);
	unsigned char *nb = weft__alloc(bytes);
	weft__spin_lock(&ch->lock);
	if (nb == NULL)
		return -ENOMEM;
	unsigned char *old = nb; /* what to free: nb if someone else grew */
	if (ch->ring_cap < cap) {
		/* Linearise: the oldest item goes to slot 0. */
		for (size_t i = 0; i < ch->count; i++)
			memcpy(nb + i * ch->item_size, ring_slot(ch, i),
				ch->item_size);
		old = ch->buf != chan_inline_buf(ch) ? ch->buf : NULL;
		ch->buf = nb;
		ch->head = 0;
		ch->ring_cap = cap;
	}
	if (old) {
		weft__spin_unlock(&ch->lock);
		weft__free(old);
		weft__spin_lock(&ch->lock);
	}
	return 0;
}

/* Send through e; self == NULL means "never wait" (try_send).  Inlined
 * into both callers: a parked call resumes by returning through every
 * frame above the switch, and each return after a switch is a return-
 * stack mispredict. */
static inline __attribute__((always_inline)) WEFT_FIBER_FN int
chan_send(struct chan_end *e, const void *item, struct weft_task *self)
{
	struct chan *ch = e->ch;
	struct weft_task *wake = NULL;
	int rc;
	weft__spin_lock(&ch->lock);
	for (;;) {
		if (WEFT__UNLIKELY(e->closed)) {
			rc = WEFT_ECLOSED;
			break;
		}
		if (WEFT__UNLIKELY(ch->recv_open == 0)) {
			rc = WEFT_EBROKEN;
			break;
		}
		struct weft__wait_node *r = weft__waitq_first(&ch->recvq);
		if (r) {
			/* Invariant 1: nothing buffered; hand over directly. */
			WEFT_DASSERT(ch->count == 0,
				"receiver parked on items");
			item_copy(r->data, item, ch->item_size);
			wake = chan_grant_one(&ch->recvq, r);
			rc = 0;
			break;
		}
		if (ch->count < ch->ring_cap) {
			ring_push(ch, item);
			rc = 0;
			break;
		}
		if (ch->capacity == WEFT_CHANNEL_UNBOUNDED) {
			rc = chan_grow(ch);
			if (rc < 0)
				break;
			continue;
		}
		if (self == NULL) {
			rc = -EAGAIN;
			break;
		}
		/* Field by field: the wait sets the node's links and park
		 * fields itself, and a channel does not use aux. */
		struct chan_waiter w;
		w.end = e;
		w.rc = 0;
		w.n.data = (void *)item; /* read by the granting receiver */
		/* Returns with the lock released; nothing to wake. */
		rc = weft__waitq_wait_unlock(&ch->lock, &ch->sendq, &w.n, self);
		return rc == 0 ? w.rc : rc;
	}
	weft__spin_unlock(&ch->lock);
	if (wake)
		weft__sched_ready(wake);
	return rc;
}

/* Receive through e; self == NULL means "never wait" (try_receive).
 * Inlined into both callers, as chan_send. */
static inline __attribute__((always_inline)) WEFT_FIBER_FN int
chan_receive(struct chan_end *e, void *out, struct weft_task *self)
{
	struct chan *ch = e->ch;
	struct weft_task *wake = NULL;
	int rc;
	weft__spin_lock(&ch->lock);
	struct weft__wait_node *s;
	if (WEFT__UNLIKELY(e->closed)) {
		rc = WEFT_ECLOSED;
	} else if (ch->count > 0) {
		ring_pop(ch, out);
		s = weft__waitq_first(&ch->sendq);
		if (s) {
			/* Invariant 2: the buffer was full; the oldest parked
			 * sender's item takes the freed place. */
			ring_push(ch, s->data);
			wake = chan_grant_one(&ch->sendq, s);
		}
		rc = 0;
	} else if ((s = weft__waitq_first(&ch->sendq)) != NULL) {
		/* Rendezvous: take the item from the parked sender. */
		item_copy(out, s->data, ch->item_size);
		wake = chan_grant_one(&ch->sendq, s);
		rc = 0;
	} else if (ch->send_open == 0) {
		rc = WEFT_EEND;
	} else if (self == NULL) {
		rc = -EAGAIN;
	} else {
		struct chan_waiter w; /* field by field, as in chan_send */
		w.end = e;
		w.rc = 0;
		w.n.data = out; /* written by the granting sender */
		rc = weft__waitq_wait_unlock(&ch->lock, &ch->recvq, &w.n, self);
		return rc == 0 ? w.rc : rc;
	}
	weft__spin_unlock(&ch->lock);
	if (wake)
		weft__sched_ready(wake);
	return rc;
}

int weft_channel_send(weft_channel_tx_t *tx, const void *item)
{
	if (tx == NULL || item == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	return chan_send(&tx->e, item, self);
}

int weft_channel_try_send(weft_channel_tx_t *tx, const void *item)
{
	if (tx == NULL || item == NULL)
		return -EINVAL;
	return chan_send(&tx->e, item, NULL);
}

int weft_channel_receive(weft_channel_rx_t *rx, void *item)
{
	if (rx == NULL || item == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	return chan_receive(&rx->e, item, self);
}

int weft_channel_try_receive(weft_channel_rx_t *rx, void *item)
{
	if (rx == NULL || item == NULL)
		return -EINVAL;
	return chan_receive(&rx->e, item, NULL);
}

/* }======================================================= */

/* {======================================================= ends */

/* A new end beside e (is_tx: a send end). */
static int chan_clone(struct chan_end *e, bool is_tx, struct chan_end **out)
{
	/* Both end structs are a bare chan_end: one size fits both. */
	struct chan_end *n = weft__alloc(sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	struct chan *ch = e->ch;
	weft__spin_lock(&ch->lock);
	if (e->closed) {
		weft__spin_unlock(&ch->lock);
		weft__free(n);
		return WEFT_ECLOSED;
	}
	*n = (struct chan_end){ .ch = ch };
	if (is_tx)
		ch->send_open++;
	else
		ch->recv_open++;
	ch->ends++;
	weft__spin_unlock(&ch->lock);
	*out = n;
	return 0;
}

_Static_assert(sizeof(struct weft_channel_tx) == sizeof(struct chan_end) &&
		sizeof(struct weft_channel_rx) == sizeof(struct chan_end),
	"an end is a bare chan_end");

int weft_channel_tx_clone(weft_channel_tx_t *tx, weft_channel_tx_t **out)
{
	if (tx == NULL || out == NULL)
		return -EINVAL;
	struct chan_end *n;
	int rc = chan_clone(&tx->e, true, &n);
	if (rc == 0)
		*out = WEFT__CONTAINER_OF(n, struct weft_channel_tx, e);
	return rc;
}

int weft_channel_rx_clone(weft_channel_rx_t *rx, weft_channel_rx_t **out)
{
	if (rx == NULL || out == NULL)
		return -EINVAL;
	struct chan_end *n;
	int rc = chan_clone(&rx->e, false, &n);
	if (rc == 0)
		*out = WEFT__CONTAINER_OF(n, struct weft_channel_rx, e);
	return rc;
}

/* Closes e (is_tx: a send end); idempotent. */
static void chan_close(struct chan_end *e, bool is_tx)
{
	struct chan *ch = e->ch;
	weft__wakelist_t wl = { NULL, NULL };
	weft__spin_lock(&ch->lock);
	if (!e->closed) {
		e->closed = true;
		if (is_tx) {
			/* Parked sends through e deliver nothing. */
			chan_grant_all(&ch->sendq, e, WEFT_ECLOSED, &wl);
			/* Invariant 4: with no send end left, sendq has no
			 * live waiter and any live parked receiver's buffer
			 * is empty. */
			if (--ch->send_open == 0)
				chan_grant_all(&ch->recvq, NULL, WEFT_EEND,
					&wl);
		} else {
			chan_grant_all(&ch->recvq, e, WEFT_ECLOSED, &wl);
			if (--ch->recv_open == 0)
				chan_grant_all(&ch->sendq, NULL, WEFT_EBROKEN,
					&wl);
		}
	}
	weft__spin_unlock(&ch->lock);
	if (wl.head)
		weft__waitq_flush(&wl);
}

static void chan_release(struct chan_end *e, bool is_tx)
{
	struct chan *ch = e->ch;
	/* Read first: once `ends` is decremented, an embedded e may be freed
	 * with the channel by a concurrent last release. */
	bool embedded = e->embedded;
	chan_close(e, is_tx);
	weft__spin_lock(&ch->lock);
	bool last = --ch->ends == 0;
	weft__spin_unlock(&ch->lock);
	if (!embedded)
		weft__free(e);
	if (last)
		chan_free(ch);
}

int weft_channel_tx_close(weft_channel_tx_t *tx)
{
	if (tx == NULL)
		return -EINVAL;
	chan_close(&tx->e, true);
	return 0;
}

int weft_channel_rx_close(weft_channel_rx_t *rx)
{
	if (rx == NULL)
		return -EINVAL;
	chan_close(&rx->e, false);
	return 0;
}

void weft_channel_tx_release(weft_channel_tx_t *tx)
{
	if (tx)
		chan_release(&tx->e, true);
}

void weft_channel_rx_release(weft_channel_rx_t *rx)
{
	if (rx)
		chan_release(&rx->e, false);
}

static int chan_stats(const struct chan_end *e, weft_channel_stats_t *out)
{
	if (out == NULL)
		return -EINVAL;
	struct chan *ch = e->ch;
	weft__spin_lock(&ch->lock);
	out->buffered = ch->count;
	out->capacity = ch->capacity;
	out->open_send_ends = ch->send_open;
	out->open_recv_ends = ch->recv_open;
	out->waiting_send = ch->sendq.len;
	out->waiting_recv = ch->recvq.len;
	weft__spin_unlock(&ch->lock);
	return 0;
}

int weft_channel_tx_stats(const weft_channel_tx_t *tx,
	weft_channel_stats_t *out)
{
	return tx ? chan_stats(&tx->e, out) : -EINVAL;
}

int weft_channel_rx_stats(const weft_channel_rx_t *rx,
	weft_channel_stats_t *out)
{
	return rx ? chan_stats(&rx->e, out) : -EINVAL;
}

/* }======================================================= */

/* {======================================================= dump */

static void chan_describe(struct chan *ch, struct weft__wait_desc *d)
{
	d->obj = ch;
	weft__spin_lock(&ch->lock);
	size_t count = ch->count, senders = ch->send_open;
	size_t receivers = ch->recv_open, sq = ch->sendq.len;
	size_t rq = ch->recvq.len;
	weft__spin_unlock(&ch->lock);
	char cap[24];
	if (ch->capacity == WEFT_CHANNEL_UNBOUNDED)
		snprintf(cap, sizeof cap, "unbounded");
	else
		snprintf(cap, sizeof cap, "%zu", ch->capacity);
	snprintf(d->text, sizeof d->text,
		"count=%zu capacity=%s send_open=%zu recv_open=%zu "
		"senders_waiting=%zu receivers_waiting=%zu",
		count, cap, senders, receivers, sq, rq);
}

/* A waiter's end keeps the channel (the end's reference) while it is
 * inside the call (core/inspect.h). */
void weft__chan_describe_send(const void *on, struct weft__wait_desc *d)
{
	chan_describe(WEFT__CONTAINER_OF((weft__waitq_t *)on, struct chan,
			      sendq),
		d);
}

void weft__chan_describe_recv(const void *on, struct weft__wait_desc *d)
{
	chan_describe(WEFT__CONTAINER_OF((weft__waitq_t *)on, struct chan,
			      recvq),
		d);
}

/* }======================================================= */
