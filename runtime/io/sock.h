/* The socket core shared by streams and listeners (sock.c): a
 * non-blocking descriptor that workers use directly, with the I/O thread
 * watching it only for tasks that must wait for it to become ready.
 *
 * A call does its system call on the worker (recv, send, accept4,
 * connect); only when the kernel says EAGAIN does the task park on a
 * readiness wait (weft__sock_wait), which the I/O thread ends when the
 * socket becomes ready.  The task then retries the system call.  So data
 * never crosses threads, a wait withdrawn by cancellation leaves nothing
 * half done, and a socket that never blocks never touches the I/O thread
 * (it joins the runtime's edge-triggered epoll set at its first wait).
 *
 * Lifetime: see sock.c (the gate, the references, the close).  Streams
 * and listeners are socket records (io.h): the record, with its life word
 * of generation and references, is this struct's first member. */
#ifndef WEFT_RUNTIME_IO_SOCK_H
#define WEFT_RUNTIME_IO_SOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/common.h"
#include "io/io.h"
#include "io/ioop.h"

struct weft_runtime;
struct weft_task;
struct weft__sock_waiter;

/* One direction of a weft socket's readiness (sock.c, "Waiter words"):
 * any thread reads and writes it, with the protocol of sock.c. */
struct weft__sock_dir {
	/* seq << 2 | NIL, READY, CLOSED or WAIT (sock.c). */
	_Atomic uint64_t word;
	/* The parked waiter and the generation to wake it with, written by
	 * the waiter before it installs a WAIT, read by whoever then takes
	 * that WAIT out of the word. */
	_Atomic(struct weft_task *) task;
	_Atomic uint64_t gen;
};

struct weft__sock {
	/* First (the embedding object's first member too, so the handle
	 * check finds it at the handle's address): the generation and the
	 * references: the descriptor's, each call in progress, a closer. */
	struct weft__io_rec rec;
	struct weft_runtime *rt;
	int fd; /* non-blocking, close-on-exec */
	/* CLOSED | POSTED | REGISTERED | n * INSIDE (sock.c). */
	_Atomic unsigned gate;
	/* Runs once the last reference is gone (gives the embedding object,
	 * whose first member this is, back to the record pool). */
	void (*free_fn)(struct weft__sock *s);
	/* A weft socket (not foreign): its readiness, [0] to read, [1] to
	 * write; and whether it joined the runtime's socket set (set once,
	 * inside the gate; a hint that saves the epoll_ctl). */
	struct weft__sock_dir dir[2];
	atomic_bool in_set;
	/* An event of the socket set reported urgent data (EPOLLPRI), the
	 * peer's end (EPOLLRDHUP), a hang-up or an error; set once by a
	 * poller, before the edge's post (sock.c): a stream's short reads
	 * no longer prove that a recv has nothing to say (stream.c). */
	atomic_bool sticky;
	/* A foreign descriptor (io/fdwait.c): its owner closes it, weft
	 * never does, and weft makes no system call on it but its
	 * readiness checks on the I/O thread.  Set before first use.  Its
	 * waits use the fields below, never `dir`. */
	bool foreign;
	/* Foreign descriptors, I/O thread only. */
	bool in_epoll;	/* in the runtime's foreign epoll set */
	bool io_closed; /* the close ran */
	/* An edge came while nobody waited for it: the next wait returns
	 * at once (its caller retries the system call). */
	bool rd_ready, wr_ready;
	struct weft__sock_waiter *rd; /* parked waiting to read, or NULL */
	struct weft__sock_waiter *wr; /* parked waiting to write, or NULL */
};

/* Initialises s around fd (which s now owns).  s comes from
 * weft__io_rec_get, whose one reference becomes the descriptor's.
 * Thread: any. */
void weft__sock_init(struct weft__sock *s, struct weft_runtime *rt, int fd,
	void (*free_fn)(struct weft__sock *s));

/* Takes / drops a reference (the caller must hold s alive already to
 * take one; a public call takes its own with its handle check,
 * weft__io_rec_take).  The last drop runs free_fn.  Thread: any. */
void weft__sock_ref(struct weft__sock *s);
void weft__sock_unref(struct weft__sock *s);

/* Begins a call that owns one side of s (a stream's read or write side, a
 * listener's accept), whose flag is `side`, for a caller that took its
 * reference with the handle check (so another task's close cannot free s
 * under it, even while the checkpoint yields): passes the checkpoint
 * (*self is the calling task), then takes the side.  0, or an error with
 * the side not taken: the checkpoint's, or -EBUSY when another task
 * holds the side.  The caller drops its reference either way.
 * Thread: a weft fiber (it may yield in the checkpoint). */
WEFT_FIBER_FN int weft__sock_call_begin(struct weft__sock *s, atomic_bool *side,
	struct weft_task **self);
/* Gives the side back.  Thread: the fiber that began the call. */
void weft__sock_call_end(struct weft__sock *s, atomic_bool *side);

/* Brackets one direct system call on s->fd: enter returns false (and
 * nothing is entered) once s is closing; while any task is inside, the
 * descriptor stays open.  Thread: any, holding a reference. */
bool weft__sock_enter(struct weft__sock *s);
void weft__sock_leave(struct weft__sock *s);

/* Parks until s->fd may be ready for `event` (UV_READABLE or
 * UV_WRITABLE; a spurious "ready" is possible: retry the call), on s's
 * waiter word for that direction (sock.c): no I/O-thread hop.  A
 * checkpoint.  Returns 0 (ready: retry the system call), -ECANCELED (the
 * wait was withdrawn: nothing happened, an edge that raced with it is
 * kept for the next wait), WEFT_ECLOSED (s was closed), or epoll_ctl's
 * error when s could not join the socket set.  At most one task may wait
 * for a direction at a time, which the callers' side flags guarantee
 * (the waiter's fields beside the word are written before it owns the
 * word); a wait that finds another's installed returns -EBUSY, as a
 * diagnosis.  s is a weft socket (not foreign).
 * Thread: a weft fiber holding a reference. */
WEFT_FIBER_FN int weft__sock_wait(struct weft__sock *s, int event,
	const char *what);
/* weft__sock_wait (the same with release_call NULL), giving the task's
 * stack pages back to the kernel while it is parked when release_call
 * (the public call that asked, named if the promise is found broken) is
 * not NULL: the caller promises that
 * nothing else reads or writes the task's stack until the wait returns
 * (ARCHITECTURE.md, "Parked-task memory").  What a waker or a dump
 * touches moves to the heap; without memory for it, or on a borrowed
 * stack, the stack stays.  Thread: as weft__sock_wait. */
WEFT_FIBER_FN int weft__sock_wait_release(struct weft__sock *s, int event,
	const char *what, const char *release_call);

/* One entry of a wait: a socket and a direction. */
struct weft__sock_waiter {
	struct weft__sock *s;
	int event;		      /* UV_READABLE or UV_WRITABLE */
	struct weft__sock_wait *wait; /* the wait it belongs to */
	bool fired;		      /* the I/O thread found it ready */
};

/* A wait of foreign descriptors for the first of n entries to become
 * ready: an I/O operation (ioop.h) that every entry's edge, the wait's
 * cancellation and its sockets' unregistration race to complete, all on
 * the I/O thread (sock.c, "Foreign descriptors"). */
struct weft__sock_wait {
	struct weft__ioop op;
	struct weft__sock_waiter *entries;
	size_t n;
	/* Level-triggered (foreign descriptors): the start asks poll(2)
	 * about every entry, ignoring kept edges, so readiness already
	 * there is found even if no edge ever comes again. */
	bool level;
};

/* Parks until one of wt's n entries (entries[i].s, .event; .wait and
 * .fired are set here) is ready, or may be (an edge-triggered wait can
 * be spurious: retry the system call).  Returns 0 with .fired set on the
 * ready entries (at least one), -ECANCELED (withdrawn: nothing
 * happened), WEFT_ECLOSED (a socket was closed: its entry .fired), -EBUSY
 * (another wait holds one of the entries' socket and direction), or an
 * epoll error.  Thread: a weft fiber holding a reference on every
 * socket. */
WEFT_FIBER_FN int weft__sock_wait_set(struct weft__sock_wait *wt,
	const char *what);

/* The foreign descriptor s leaves weft (its unregistration): waiters are
 * woken with WEFT_ECLOSED and it leaves the epoll set; when this returns,
 * the I/O thread will not touch the descriptor again, so its owner may
 * close it.  Not a checkpoint, not cancellable.  Thread: a weft fiber
 * holding a reference. */
WEFT_FIBER_FN int weft__sock_forget(struct weft__sock *s);

/* Starts closing s: no direct call starts after this; a task parked in a
 * wait returns WEFT_ECLOSED; the descriptor is closed once no task is
 * inside a system call and the I/O thread no longer watches it; then the
 * descriptor's reference is dropped.  Returns false if s was already
 * closing.  The caller holds a reference of its own (the closer's, taken
 * by weft__io_rec_close), which keeps s alive until it returns.
 * Thread: any. */
bool weft__sock_close(struct weft__sock *s);

/* Drains the runtime's socket set without blocking when `timeout_ms` is
 * 0, else after waiting up to timeout_ms (-1: forever) for an event, and
 * readies the waiters of every socket that became ready (through
 * weft__task_wake, so on the calling worker's own queue when a worker
 * calls it).  Returns the number of events.  Thread: any (sock.c,
 * "Who polls"). */
int weft__sock_poll(struct weft_runtime *rt, int timeout_ms);
/* The same without blocking, for the I/O thread (seeded runtimes), with
 * io at hand.  Thread: the I/O thread. */
int weft__sock_poll_io(weft__io_t *io);
/* Ends the blocking poller's wait early (core/idle.c's wake of the
 * worker that polls).  Thread: any. */
void weft__sock_poll_interrupt(struct weft_runtime *rt);
/* Opens / closes the socket set and the blocking poller's set and
 * eventfd (io.h).  0 or -errno, with nothing left open.  Thread: the
 * runtime's creator (weft__io_start) / its destroyer (weft__io_stop). */
int weft__sock_poll_open(weft__io_t *io);
void weft__sock_poll_close(weft__io_t *io);

/* The dump's describer of WEFT__WAIT_SOCK (core/inspect.h): `on` is the
 * wait's description in the waiting frame.  Thread: any, the waiter
 * pinned. */
struct weft__wait_desc;
void weft__sock_describe(const void *on, struct weft__wait_desc *d);

/* True once weft__sock_close was called (a relaxed hint for error
 * messages; the gate decides).  Thread: any. */
bool weft__sock_closing(struct weft__sock *s);

/* The length of an AF_INET or AF_INET6 address, 0 for another family.
 * Thread: any. */
socklen_t weft__sock_addr_len(const struct sockaddr *sa);

struct sockaddr_un;
/* Fills *un with the UNIX socket address of path (non-empty).  0, or
 * -ENAMETOOLONG when path does not fit sun_path.  Thread: any. */
int weft__sock_addr_un(struct sockaddr_un *un, const char *path);

/* Fills *ss and *len with host:port: a numeric IPv4 or IPv6 address,
 * or the first address weft_getaddrinfo gives for a name with `family`
 * (AF_UNSPEC: any), `socktype` and `flags` (AI_PASSIVE for a bind).
 * 0, or weft_getaddrinfo's error.  Checkpoint (the lookup, for a name
 * only).  Thread: a weft fiber. */
WEFT_FIBER_FN int weft__sock_resolve(const char *host, int port, int family,
	int socktype, int flags, struct sockaddr_storage *ss, socklen_t *len);

/* -errno of the last failed system call, with EAGAIN/EWOULDBLOCK as
 * -EAGAIN.  Thread: any (the calling thread's errno). */
int weft__sock_errno(void);

#endif
