/* The I/O thread: one libuv loop on a dedicated thread.  Other threads
 * talk to it only through the runtime's request queue (ioq.h), whose wake
 * hook is uv_async_send.  It runs every libuv request of I/O operations
 * (ioop.h), watches the socket epoll set (sock.c) and the deadline
 * timer's fd (timer.h), and frees objects after a grace period
 * (weft__io_reclaim). */
#ifndef WEFT_RUNTIME_IO_IO_H
#define WEFT_RUNTIME_IO_IO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/ioq.h"

struct weft_runtime;

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
	/* Sockets (sock.c): one edge-triggered epoll set holding every
	 * socket that ever had to wait, itself watched by sock_poll.
	 * Created by the first socket wait, closed by weft__io_stop.  I/O
	 * thread only (and the stopper after the join). */
	int sock_epfd; /* -1 until then */
	/* Deferred frees (weft__io_reclaim), I/O thread only: the batch
	 * whose grace period runs (rc_snap: each worker's `qs` when it
	 * began; polled by rc_timer every millisecond), and the next one. */
	struct weft__reclaim *rc_wait, *rc_next;
	uint64_t *rc_snap;
	uv_timer_t rc_timer;
	uv_poll_t sock_poll;
	atomic_bool stop; /* set before the final uv_async_send */
} weft__io_t;

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
