/* I/O operations: how a fiber asks the I/O thread to do something with
 * libuv and parks until it is done, with cancellation (see ioop.c for the
 * protocol and its proof).
 *
 * A module (sock.c, udp.c, fs.c, dns.c, signal.c) embeds a struct
 * weft__ioop in a structure on the calling fiber's stack, sets `start`
 * (and `cancel` when the operation can be stopped), and calls
 * weft__ioop_run.  On the I/O thread, `start` submits the libuv request
 * (or registers the wait); the callback that ends it (or `start` itself,
 * for an operation that completes at once) calls weft__ioop_complete
 * exactly once.  `cancel` runs on the I/O thread when the fiber was
 * cancelled while the operation was in flight; it must end the operation
 * soon: complete it with -ECANCELED itself (unlinking a waiter,
 * uv_udp_recv_stop), or make libuv finish it (uv_cancel), whose callback
 * then completes it with UV_ECANCELED or, if it raced, its real result. */
#ifndef WEFT_RUNTIME_IO_IOOP_H
#define WEFT_RUNTIME_IO_IOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/common.h"
#include "io/io.h"

struct weft_runtime;
struct weft_task;

struct weft__ioop {
	struct weft__ioq_node submit; /* runs `start` */
	struct weft__ioq_node abort;  /* runs `cancel` */
	/* I/O thread: submit the libuv request (or complete at once). */
	void (*start)(weft__io_t *io, struct weft__ioop *op);
	/* I/O thread: stop the in-flight request; NULL if it cannot be
	 * stopped (the fiber then waits for its natural completion). */
	void (*cancel)(weft__io_t *io, struct weft__ioop *op);
	struct weft_task *task;
	struct weft_runtime *rt;
	const char *what; /* park site for introspection */
	/* For the dump (weft__ioop_describe): the descriptor the operation
	 * waits on plus one, 0 when it is not about one descriptor. */
	int fd_plus1;
	/* The park word of the operation (see ioop.c): DONE, or the
	 * generation the I/O thread must wake, plus CANCEL_REQ. */
	_Atomic uint64_t word;
	int result; /* valid once word == DONE */
	/* I/O thread only. */
	bool io_completed;   /* weft__ioop_complete ran */
	bool io_cancel_seen; /* `cancel` ran (or was skipped) */
};

/* Runs op: checks for cancellation first (a checkpoint: -ECANCELED and
 * nothing submitted), posts it and parks until it completes.  If the
 * calling task is cancelled meanwhile, asks the I/O thread to run `cancel`
 * and keeps waiting, uncancellably, for the completion.  Returns the
 * completion's result (a real result wins over a cancellation that raced
 * with it; -ECANCELED means the operation did not complete).  On return
 * the I/O thread holds no reference to op.  op->start, cancel, what must
 * be set; the rest is set here.  Thread: a weft fiber (it parks; a plain
 * thread gets WEFT_ENOTFIBER). */
WEFT_FIBER_FN int weft__ioop_run(struct weft__ioop *op);

/* As weft__ioop_run, but neither a checkpoint nor cancellable: for an
 * operation that must happen whatever the caller's scopes say (a foreign
 * descriptor's unregistration, which its owner's close depends on).
 * op->cancel is ignored.  Thread: a weft fiber (WEFT_ENOTFIBER
 * otherwise). */
WEFT_FIBER_FN int weft__ioop_run_shielded(struct weft__ioop *op);

struct weft__wait_desc;
/* The dump's describer of WEFT__WAIT_IO (core/inspect.h): `on` is the
 * operation, in the frame of the task the dump holds pinned. */
void weft__ioop_describe(const void *on, struct weft__wait_desc *d);

/* Records the result of op and wakes its fiber; after this call (or, when
 * a cancellation is queued, after `cancel` ran) the fiber may return and
 * op disappear, so this is the caller's last access to op.  Exactly once
 * per op.  Thread: the I/O thread. */
void weft__ioop_complete(struct weft__ioop *op, int result);

#endif
