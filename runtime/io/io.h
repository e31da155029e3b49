/* The I/O thread: one libuv loop on a dedicated thread.  Other threads
 * talk to it only through the runtime's request queue (ioq.h), whose wake
 * hook is uv_async_send.  It runs every libuv request of I/O operations
 * (ioop.h), watches the foreign descriptors' epoll set (sock.c; the
 * sockets' set only for a seeded runtime: workers poll it otherwise) and
 * the deadline timer's fd (timer.h), and frees objects after a grace
 * period (weft__io_reclaim). */
#ifndef WEFT_RUNTIME_IO_IO_H
#define WEFT_RUNTIME_IO_IO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/ioq.h"
#include "core/records.h"

struct weft_runtime;

/* {======================================================= socket records
 *
 * Streams, listeners and UDP sockets are type-stable records, as task
 * and group records are (core/records.h): a record freed by its last
 * reference goes to its runtime's pool (weft__io_t below) and back to
 * malloc only when the runtime stops, so a stale handle can always be
 * checked against its record.  Every record begins with a life word:
 *
 *   life = generation << 32 | references
 *
 * The generation is even while the user's handle is open, and the handle
 * carries its low 16 bits (core/records.h's tagging); weft_*_close makes
 * it odd (the handle is dead from then on), and the last reference's
 * free makes it even again for the next life.  References count what
 * keeps the record's state alive (the descriptor or libuv handle, each
 * call in progress, a closer).  Because the generation and the count are
 * one word, the handle check of a public call and the taking of the
 * call's reference are one CAS: a call either takes the record while its
 * handle is open, and then holds it until it returns, or finds the handle
 * closed (or the record in another life) and touches nothing else.  No
 * window remains in which a call has checked its handle but a close can
 * free the record under it.  A tag wraps after 32768 lives of a record;
 * a handle that stale is not detected. */

enum weft__io_rec_kind {
	WEFT__IO_REC_STREAM,
	WEFT__IO_REC_LISTENER,
	WEFT__IO_REC_UDP,
	WEFT__IO_REC_FD,
	WEFT__IO_REC_SIGNAL,   /* signal.c's handle of a public watcher */
	WEFT__IO_REC_SHUTDOWN, /* shutdown.c's controller */
	WEFT__IO_REC_KINDS
};

/* The first member of every socket record. */
struct weft__io_rec {
	/* generation << 32 | references; any thread (see above). */
	_Atomic uint64_t life;
	/* The pool's free list (under its lock); with `life`, the part of a
	 * free record that is never poisoned (core/records.h). */
	struct weft__io_rec *pool_next;
};

#define WEFT__IO_REC_REFS UINT64_C(0xffffffff)
#define WEFT__IO_REC_GEN_SHIFT 32

/* rt->io, allocated by weft__io_start. */
typedef struct weft__io {
	struct weft_runtime *rt;
	uv_loop_t loop;	 /* I/O thread only (after start) */
	uv_async_t wake; /* uv_async_send from any thread */
	uv_poll_t timer; /* watches the deadline timer's fd */
	pthread_t thread;
	/* Flush the I/O thread's batch of woken tasks before each poll and
	 * after the poll's callbacks (uv_prepare runs just before the loop
	 * blocks, uv_check right after the I/O callbacks). */
	uv_prepare_t flush_before_poll;
	uv_check_t flush_after_poll;
	/* Foreign descriptors (sock.c, fdwait.c): one edge-triggered epoll
	 * set holding every foreign descriptor that ever had to wait,
	 * itself watched by sock_poll.  Created by the first such wait,
	 * closed by weft__io_stop.  I/O thread only (and the stopper after
	 * the join). */
	int sock_epfd; /* -1 until then */
	/* weft's own sockets (sock.c): the edge-triggered set every socket
	 * joins at its first wait, created by weft__io_start and closed by
	 * weft__io_stop; any thread adds, removes and polls (sock.c, "Who
	 * polls"); net_poll watches it for the I/O thread. */
	int net_epfd;
	uv_poll_t net_poll;
	/* The eventfd in net_epfd that interrupts the blocking poller's
	 * wait (sock.c, "Who polls"). */
	int net_wake;
	/* Deferred frees (weft__io_reclaim), I/O thread only: the batch
	 * whose grace period runs (rc_snap: each worker's `qs` when it
	 * began; polled by rc_timer every millisecond), and the next one. */
	struct weft__reclaim *rc_wait, *rc_next;
	uint64_t *rc_snap;
	uv_timer_t rc_timer;
	uv_poll_t sock_poll;
	/* The watcher of cfg.dump_signal (signal.c), or NULL: opened by
	 * weft__io_start before the thread starts, closed by the stopper
	 * after the join. */
	struct weft_signals *dump;
	atomic_bool stop; /* set before the final uv_async_send */
	/* Free socket records (weft__io_rec_get/put), per kind, and the
	 * size of each kind's records; under rec_lock. */
	pthread_mutex_t rec_lock;
	struct weft__io_rec *rec_free[WEFT__IO_REC_KINDS];
	size_t rec_size[WEFT__IO_REC_KINDS];
} weft__io_t;

/* A record of `kind` (`size` bytes, the same for every record of a kind)
 * from rt's pool or malloc, zeroed past its life word, in a new open life
 * holding one reference (its owner's: the descriptor, the libuv handle).
 * NULL when memory is short.  Thread: any, while rt's I/O thread runs. */
void *weft__io_rec_get(struct weft_runtime *rt, enum weft__io_rec_kind kind,
	size_t size);
/* Gives r (no reference left) back to rt's pool: ends its life (the next
 * one gets an even generation, so every handle of this life stays stale)
 * and poisons it under ASan.  Thread: any, until rt's I/O thread stopped
 * (weft__io_stop frees what the pool holds at its end, after which no
 * record can die). */
void weft__io_rec_put(struct weft_runtime *rt, enum weft__io_rec_kind kind,
	struct weft__io_rec *r);

/* The handle users hold for r in its current life.  relaxed: the caller
 * holds r open (it created it, or holds a reference), so the generation
 * cannot change meanwhile.  Thread: any. */
static inline void *weft__io_rec_handle(struct weft__io_rec *r)
{
	return weft__handle_make(r,
		(uint32_t)(atomic_load_explicit(&r->life,
				   memory_order_relaxed) >>
			WEFT__IO_REC_GEN_SHIFT));
}

/* Outcomes of weft__io_rec_take. */
enum weft__io_rec_took {
	WEFT__IO_REC_TAKEN,  /* open: one reference taken */
	WEFT__IO_REC_CLOSED, /* h's life was closed (and maybe freed) */
};

/* The check every public call on a socket handle makes: takes a
 * reference on h's record if h's life is still open.  Else nothing is
 * taken and h is a handle whose socket was closed: every life ends with a
 * close, so any other generation means that.  relaxed: the CAS orders
 * nothing but the count (as a reference count increment); the caller's
 * holder of h got it after the record's fields of this life were written
 * (whatever handed h over ordered them), and a life's end comes after
 * every reference is dropped (acq_rel in the drops).  Thread: any. */
static inline enum weft__io_rec_took weft__io_rec_take(const void *h)
{
	struct weft__io_rec *r = weft__handle_addr(h);
	uint16_t tag = weft__handle_tag(h);
	uint64_t v = atomic_load_explicit(&r->life, memory_order_relaxed);
	do {
		if ((uint16_t)(v >> WEFT__IO_REC_GEN_SHIFT) != tag)
			return WEFT__IO_REC_CLOSED;
	} while (!atomic_compare_exchange_weak_explicit(&r->life, &v, v + 1,
		memory_order_relaxed, memory_order_relaxed));
	return WEFT__IO_REC_TAKEN;
}

/* The close's half of the check: if h's life is open, closes it (the
 * generation becomes odd: every later take of h fails) and takes a
 * reference for the closer, in one CAS; else returns false (closed
 * already, or a handle of an earlier life).  acq_rel: the close is
 * ordered with every take (same word); a second close that fails reads
 * at least this value.  Thread: any. */
static inline bool weft__io_rec_close(const void *h)
{
	struct weft__io_rec *r = weft__handle_addr(h);
	uint16_t tag = weft__handle_tag(h);
	uint64_t v = atomic_load_explicit(&r->life, memory_order_relaxed);
	do {
		if ((uint16_t)(v >> WEFT__IO_REC_GEN_SHIFT) != tag)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&r->life, &v,
		v + (UINT64_C(1) << WEFT__IO_REC_GEN_SHIFT) + 1,
		memory_order_acq_rel, memory_order_relaxed));
	return true;
}

/* Takes one more reference; the caller holds one.  relaxed: a count.
 * Thread: any. */
static inline void weft__io_rec_ref(struct weft__io_rec *r)
{
	atomic_fetch_add_explicit(&r->life, 1, memory_order_relaxed);
}

/* Drops a reference; true when it was the last (the caller then frees
 * the record's state and weft__io_rec_put's it).  acq_rel: the release
 * orders this holder's accesses before the free, the last dropper's
 * acquire sees every other holder's.  A life's count reaches 0 once:
 * after the close no reference can be taken.  Thread: any. */
static inline bool weft__io_rec_unref(struct weft__io_rec *r)
{
	uint64_t old = atomic_fetch_sub_explicit(&r->life, 1,
		memory_order_acq_rel);
	return (old & WEFT__IO_REC_REFS) == 1;
}

/* Reports a call on a closed or stale handle h (weft__misuse: aborts in
 * WEFT_DEBUG builds, naming `call`; returns otherwise, and the caller
 * returns WEFT_EMISUSE).  `what` names the object ("stream").
 * Thread: any. */
void weft__io_rec_misuse(const void *h, const char *call, const char *what);

/* The checker of every public stream and listener call: h's record with
 * a reference taken for the call, or NULL when h's socket was closed,
 * reported as a misuse naming `call` (the caller then returns
 * WEFT_EMISUSE).  Thread: any. */
static inline void *weft__io_rec_check(const void *h, const char *call,
	const char *what)
{
	if (__builtin_expect(weft__io_rec_take(h) == WEFT__IO_REC_TAKEN, 1))
		return weft__handle_addr(h);
	weft__io_rec_misuse(h, call, what);
	return NULL;
}

/* }======================================================= */

/* Allocates rt->io, installs the request queue's wake hook and starts the
 * I/O thread.  0 or a negative errno.  Thread: the runtime's creator,
 * after the deadline timer is initialised and before any worker. */
int weft__io_start(struct weft_runtime *rt);
/* Stops and joins the I/O thread, runs the requests still queued and
 * frees rt->io.  Thread: the runtime's destroyer, after every worker is
 * joined (nobody can post any more); no-op when it never started. */
void weft__io_stop(struct weft_runtime *rt);

/* Deferred freeing after a grace period (RCU-style, with fiber switches
 * as the quiescent states): for an object that a call may still be
 * about to touch when its last reference goes, because the call began
 * before the close but has not taken its reference yet.  Such a call
 * runs on a worker's fiber without switching until it has taken its
 * reference (and, finding the object closed, dropped it again), so once
 * every worker has switched out of the fiber it was running when the
 * object died (or was between fibers), no call can touch it any more.
 * free_fn then runs on the I/O thread (or at runtime stop). */
struct weft__reclaim {
	struct weft__ioq_node node;
	struct weft__reclaim *next; /* I/O thread: its batch */
	void (*free_fn)(struct weft__reclaim *r);
};

/* Frees r's object with free_fn after the grace period that starts now.
 * Any thread, while the runtime's I/O thread runs (before
 * weft__io_stop); r must stay untouched by the caller afterwards. */
void weft__io_reclaim(struct weft_runtime *rt, struct weft__reclaim *r,
	void (*free_fn)(struct weft__reclaim *r));

/* A libuv error code as a weft error code (libuv's are -errno on Linux;
 * the getaddrinfo family and UV_EOF get weft codes).  Any thread. */
int weft__io_uverr(int uv);

#endif
