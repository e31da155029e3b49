/* The I/O thread: one libuv loop on a dedicated thread.  Other threads
 * talk to it only through a lock-free request queue plus uv_async_send.
 * It owns the timers of scope deadlines (and so sleeps) and runs every
 * libuv request of I/O operations (ioop.h). */
#ifndef WEFT_RUNTIME_IO_H
#define WEFT_RUNTIME_IO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "timer.h"

struct weft__timed_scope;
struct weft_runtime;

struct weft__ionode;

typedef struct weft__io {
	uv_loop_t loop;            /* I/O thread only (after start) */
	uv_async_t wake;           /* uv_async_send from any thread */
	uv_poll_t timer;           /* watches timer_fd */
	int timer_fd;              /* timerfd armed at the wheel's next work */
	int64_t timer_armed;       /* I/O thread: what timer_fd is armed at */
	pthread_t thread;
	/* Treiber stack of requests (struct weft__ionode: timer updates,
	 * I/O operations); pushed by any thread (release CAS), taken whole
	 * by the I/O thread (acquire exchange). */
	_Atomic(struct weft__ionode *) requests;
	/* Flush the I/O thread's batch of woken tasks before each poll and
	 * after the poll's callbacks (uv_prepare runs just before the loop
	 * blocks, uv_check right after the I/O callbacks). */
	uv_prepare_t flush_before_poll;
	uv_check_t flush_after_poll;
	/* Sockets (sock.c): one edge-triggered epoll set holding every
	 * socket that ever had to wait, itself watched by sock_poll.
	 * Created by the first socket wait, closed by weft__io_stop.  I/O
	 * thread only (and the stopper after the join). */
	int sock_epfd;             /* -1 until then */
	/* Deferred frees (weft__io_reclaim), I/O thread only: the batch
	 * whose grace period runs (rc_snap: each worker's `qs` when it
	 * began; polled by rc_timer every millisecond), and the next one. */
	struct weft__reclaim *rc_wait, *rc_next;
	uint64_t *rc_snap;
	uv_timer_t rc_timer;
	uv_poll_t sock_poll;
	atomic_bool stop;          /* set before the final uv_async_send */
	/* Scope deadlines.  The wheel is the I/O thread's, but a worker at a
	 * yield may fire what is due (weft__io_fire_due), so every access
	 * holds wheel_lock.  wheel_due: a lower bound of the earliest
	 * deadline (INT64_MAX: none), written under the lock, read without
	 * it as a hint (relaxed: a stale value only delays a fire to the I/O
	 * thread's own timerfd, or costs one trylock). */
	pthread_mutex_t wheel_lock;
	_Atomic int64_t wheel_due;
	weft__wheel_t wheel;
	bool started;
} weft__io_t;

int weft__io_start(struct weft_runtime *rt);
/* Stop and join the I/O thread; every worker must be joined already. */
void weft__io_stop(struct weft_runtime *rt);
/* Fires the deadlines that are due, on the calling worker (the woken
 * tasks go to its run-next slot), if the hint says some may be and the
 * wheel lock is free; one relaxed load when no deadline is armed, a
 * clock read when one is.  So a task woken by a deadline runs at the
 * next yield of any worker instead of waiting for the I/O thread to get
 * a CPU and for a worker to finish its next chunk (B11).
 * Thread: a worker of the runtime, between tasks. */
void weft__io_fire_due_slow(weft__io_t *io);
static inline void weft__io_fire_due(weft__io_t *io)
{
	if (atomic_load_explicit(&io->wheel_due, memory_order_relaxed) !=
		INT64_MAX)
		weft__io_fire_due_slow(io);
}

/* Ask the I/O thread to make s's timer match s->deadline.  Any thread.
 * Takes a reference on s while the request is queued. */
void weft__io_timer_update(struct weft_runtime *rt,
	struct weft__timed_scope *s);

#endif
