/* Networking: TCP and UNIX-domain stream sockets, listeners, and a
 * connection-per-task server loop (docs/semantics.md rules 26, 42, 43).
 *
 * Sockets are non-blocking descriptors: a task's call does its system call
 * directly on its worker, and only when the kernel has no data (or no
 * room, or no connection yet) does the task park until the runtime's
 * workers, which poll its sockets (epoll) between and instead of running
 * tasks, see the socket ready.  A call that need not wait
 * (the kernel is ready) completes without yielding, except every 128th
 * such call in a row (the cooperative budget of docs/semantics.md rule
 * 22).
 * Each socket belongs to the runtime it was created in.
 *
 * All blocking calls are checkpoints: a cancelled task gets -ECANCELED,
 * and the effective deadline of the enclosing scopes bounds every call (a
 * fail_after scope around a read makes it time out).
 *
 * Cancellation ("-ECANCELED => it did not happen", rule 42):
 *   - accept: a cancelled accept took no connection (a pending one stays
 *     in the listener's queue for the next accept).
 *   - connect: a cancelled connect leaves no socket behind.
 *   - read: a cancelled read consumed no bytes.
 *   - write: the exception.  Once the kernel has taken part of a buffer it
 *     cannot be taken back, so a write cancelled mid-way returns
 *     -ECANCELED having sent an unknown prefix; the stream is then broken
 *     (later writes return WEFT_ECLOSED) and should be closed.  A write
 *     cancelled before any byte left is a clean -ECANCELED.
 *
 * Concurrency: one task may read and another write the same stream at
 * the same time; two concurrent readers (or writers) get -EBUSY.  Closing
 * a stream while another task is parked in it wakes that task with
 * WEFT_ECLOSED.
 *
 * Handles and closing: a weft_stream_t * or weft_listener_t * is a
 * checked handle, valid from its creation until its close.  Every call
 * checks it first: a call on a handle that was closed (a second close, a
 * read after the close, a handle kept past it whose memory now serves
 * another stream) is an API misuse, reported and refused, never run on
 * another object: WEFT_DEBUG builds abort with a message naming the call,
 * other builds return WEFT_EMISUSE and do nothing.  (The memory of a
 * closed socket stays the runtime's until the runtime is destroyed; a
 * handle closed 32768 times over, counting its memory's later lives, is
 * no longer recognised.)  A close racing another task's call on the same
 * object: the call either took the object before the close (it then
 * finishes normally, or returns WEFT_ECLOSED: a parked call is woken, a
 * call about to make a system call makes none) or starts after it, which
 * is the misuse above.  So a task that may still call on a stream must
 * learn of the close before it calls again (WEFT_ECLOSED from the call it
 * was parked in, or the closer's word); cancelling it is the other way to
 * stop it.
 *
 * Errors are negative errno values (-ECONNREFUSED, -ECONNRESET,
 * -ETIMEDOUT, -EADDRINUSE, -EMFILE, -EPIPE...) or weft codes
 * (WEFT_ENOTFOUND for an unknown host, WEFT_EDNS for other resolver
 * failures, WEFT_ECLOSED for a closed object).  A peer that resets never
 * raises SIGPIPE.
 *
 * Typical server (AnyIO's start_some_service example, in weft):
 *     weft_listener_t *l;
 *     rc = weft_tcp_listen(&l, "127.0.0.1", 0, 0);   // port 0: any
 *     int port = weft_listener_port(l);
 *     rc = weft_serve(l, group, handler, arg, stop); // until stop/cancel
 *     weft_listener_close(l);
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "weft/error.h"
#include "weft/export.h"
#include "weft/group.h"
#include "weft/sync.h"

WEFT_BEGIN_DECLS

/* A connected byte stream (TCP or UNIX domain), and a listening socket
 * (opaque). */
typedef struct weft_stream weft_stream_t;
typedef struct weft_listener weft_listener_t;

/* {======================================================= listeners */

/* What it does: creates a TCP socket bound to host:port (host a numeric
 * address or a name resolved with getaddrinfo, the first address used;
 * NULL means "0.0.0.0"; port 0 picks a free port, see
 * weft_listener_port) with SO_REUSEADDR, and listens with `backlog`
 * (0 means SOMAXCONN).
 * Ownership: the caller owns *out; free with weft_listener_close.
 * Errors: -EINVAL (NULL out, port outside 0..65535, negative backlog),
 * -EADDRINUSE, -EACCES, -EMFILE, -ENOMEM, WEFT_ENOTFOUND, WEFT_EDNS,
 * -ECANCELED, WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tcp_listen(weft_listener_t **out, const char *host,
	int port, int backlog);

/* weft_tcp_listen_flags: also set SO_REUSEPORT, so that several
 * listeners (in this process or others, of the same user) bind the same
 * address and port and the kernel spreads new connections over them:
 * one runtime per process behind one port, or several accept loops. */
#define WEFT_LISTEN_REUSEPORT 1

/* What it does: as weft_tcp_listen, with `flags` (0 or
 * WEFT_LISTEN_REUSEPORT).
 * Errors: as weft_tcp_listen; -EINVAL also for an unknown flag.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tcp_listen_flags(weft_listener_t **out, const char *host,
	int port, int backlog, int flags);

/* What it does: as weft_tcp_listen for a UNIX-domain stream socket at
 * `path` (which must not exist; weft_listener_close does not unlink it).
 * Errors: as weft_tcp_listen, plus -ENAMETOOLONG.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_unix_listen(weft_listener_t **out, const char *path,
	int backlog);

/* What it does: the local port of a TCP listener (the chosen one when it
 * was created with port 0); -EINVAL for NULL or a UNIX listener,
 * WEFT_EMISUSE for a closed one (WEFT_DEBUG builds abort).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_listener_port(const weft_listener_t *l);

/* What it does: waits for the next incoming connection and returns it as
 * a stream.  A connection that arrived while nobody was accepting waits
 * in the listener's queue.
 * Ownership: the caller owns *out; free with weft_stream_close.
 * Errors: -EINVAL (NULL), -EBUSY (another task is accepting on l),
 * WEFT_ECLOSED (l was closed while the call was parked), WEFT_EMISUSE (l
 * was closed before the call: WEFT_DEBUG builds abort), -EMFILE/-ENFILE
 * (out of fds: the pending connection stays queued; retry once fds are
 * free), -ENOMEM,
 * -ECANCELED (no connection was taken), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_listener_accept(weft_listener_t *l, weft_stream_t **out);

/* What it does: closes l: a task parked in weft_listener_accept or
 * weft_serve on it returns WEFT_ECLOSED; queued connections are dropped;
 * l is freed (the last task to leave a system call on it finishes the
 * close).
 * Ownership: l is invalid after the call.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (l was already closed: nothing is
 * done; WEFT_DEBUG builds abort naming the call; see "Handles and
 * closing" above).
 * Checkpoint: no.  Threads: weft fiber or any thread of the runtime's
 * process while the runtime exists. */
WEFT_EXTERN int weft_listener_close(weft_listener_t *l);

/* A connection handler for weft_serve: runs as its own task in the
 * serve group; the stream is closed by weft_serve's wrapper when the
 * handler returns (the handler must not close it).  A return other than 0
 * or -ECANCELED is the connection's failure: weft_serve reports it (see
 * weft_serve_opts) and it ends only that connection. */
typedef int (*weft_conn_fn)(weft_stream_t *s, void *arg);

/* Called by weft_serve once for each connection that failed: code is the
 * failure (the handler's return, or why no task could run it: -ENOMEM
 * when no stack or task record could be had), msg says what failed (the
 * handler's weft_fail message if it gave one; borrowed for the call).
 * arg is weft_serve's handler argument.  Runs in the connection's task or
 * in the accept loop's; it must not park. */
typedef void (*weft_conn_failed_fn)(int code, const char *msg, void *arg);

/* Called by weft_serve when accepting failed for lack of resources (code
 * -EMFILE, -ENFILE, -ENOBUFS or -ENOMEM), before it waits 100 ms and
 * accepts again: the place to close idle connections so that new ones
 * can come in.  arg is weft_serve's handler argument.  Runs in the accept
 * loop's task; it must not park. */
typedef void (*weft_serve_exhausted_fn)(int code, void *arg);

/* Options of weft_serve_opts; zero-initialise the ones not used. */
typedef struct weft_serve_options {
	weft_event_t *stop; /* as weft_serve's `stop`; may be NULL */
	/* NULL: a failed connection is reported as one line on stderr. */
	weft_conn_failed_fn on_conn_failure;
	weft_serve_exhausted_fn on_exhausted; /* may be NULL */
} weft_serve_opts_t;

/* What it does: accepts connections on l in a loop and starts one task per
 * connection in group g running handler(stream, arg).  Returns when
 * opts->stop (optional) is set: it stops accepting at once and leaves the
 * handlers running in g (the soft phase of a two-phase shutdown; the
 * caller then joins g within a grace deadline, or cancels it).
 * Failure policy.  What ends only one connection (closed, reported once
 * through opts->on_conn_failure, never a failure of g): its handler
 * returning a failure; no task for it (-ENOMEM: no stack or task record);
 * a reset before it was accepted.  What the loop waits out: out of fds or
 * memory while accepting (-EMFILE, -ENFILE, -ENOBUFS, -ENOMEM: the
 * connection stays in the kernel's queue; opts->on_exhausted is called,
 * then it waits 100 ms, a checkpoint, and accepts again).  What ends the
 * server (returned): the stop event, cancellation, l closed, g closed to
 * new tasks, and other accept errors.
 * Ownership: l and opts stay the caller's (opts is read while serve
 * runs); g must stay open while serve runs.
 * Errors: 0 (stop was set), -EINVAL (NULL l, g or handler), -ECANCELED
 * (the calling task was cancelled), WEFT_ECLOSED (l closed while serve
 * waited in its accept, or g joined), WEFT_EMISUSE (l closed before: the
 * accept's misuse, as weft_listener_accept), -EBUSY (another task accepts
 * on l), -ENOMEM (serve's own setup), WEFT_ENOTFIBER, another accept
 * error.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_serve_opts(weft_listener_t *l, weft_group_t *g,
	weft_conn_fn handler, void *arg, const weft_serve_opts_t *opts);

/* What it does: weft_serve_opts with only a stop event (NULL for none):
 * failed connections are reported on stderr.
 * Ownership, errors, checkpoint, threads: as weft_serve_opts. */
WEFT_EXTERN int weft_serve(weft_listener_t *l, weft_group_t *g,
	weft_conn_fn handler, void *arg, weft_event_t *stop);

/* }======================================================= */

/* {======================================================= connecting */

/* What it does: connects to host:port over TCP.  host is a numeric
 * address or a name resolved through the I/O thread (getaddrinfo); every
 * address is tried, with Happy Eyeballs (RFC 8305): addresses interleaved
 * by family, the next attempt starts 250 ms after the previous one unless
 * that failed sooner, the first to connect wins and the others are
 * closed.  The returned stream has TCP_NODELAY set.
 * Ownership: the caller owns *out; free with weft_stream_close.
 * Errors: -EINVAL (NULL, port outside 1..65535), WEFT_ENOTFOUND,
 * WEFT_EDNS, -ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH, -ETIMEDOUT (the
 * kernel's), -EMFILE, -ENOMEM (every attempt failed: the error of the
 * last one), -ECANCELED (no connection is left open), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tcp_connect(weft_stream_t **out, const char *host,
	int port);

/* What it does: connects over TCP to one address (struct sockaddr_in or
 * sockaddr_in6).
 * Errors: as weft_tcp_connect without the resolver's (-EINVAL for port
 * 0), plus -EAFNOSUPPORT.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tcp_connect_addr(weft_stream_t **out,
	const struct sockaddr *addr);

/* What it does: connects to the UNIX-domain stream socket at path.
 * Errors: -EINVAL, -ENOENT, -ECONNREFUSED, -ENAMETOOLONG, -EMFILE,
 * -ENOMEM, -ECANCELED, WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_unix_connect(weft_stream_t **out, const char *path);

/* }======================================================= */

/* {======================================================= streams */

/* What it does: reads up to len (> 0) bytes: waits until at least one byte
 * is available, then returns what is there.
 * Returns: the number of bytes read (> 0), 0 at end of stream (the peer
 * half-closed or closed), or a negative code.
 * Errors: -EINVAL (NULL, len 0), -EBUSY (another task is reading),
 * WEFT_ECLOSED (s was closed while the call was in progress),
 * WEFT_EMISUSE (s was closed before the call: WEFT_DEBUG builds abort;
 * every stream call below reports it the same way), -ECONNRESET,
 * -ETIMEDOUT, -ECANCELED (no byte was consumed), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN ssize_t weft_stream_read(weft_stream_t *s, void *buf, size_t len);

/* Flag of weft_stream_wait_readable: give the task's stack pages back to
 * the kernel while it waits.  See that function. */
#define WEFT_WAIT_RELEASE_STACK 0x1u

/* What it does: waits until a read of s would not wait (a byte is there,
 * or the end of the stream), consuming nothing: the next
 * weft_stream_read returns what is there.  Trio's wait_readable, for a
 * connection that waits long for its next request.
 * flags: 0 or WEFT_WAIT_RELEASE_STACK: while it is parked, the pages of
 * the task's stack go back to the kernel (the used part, about 700 bytes
 * for a plain connection handler, is kept in a heap copy and put back at
 * the same addresses before the task runs again), so a parked task
 * costs about 1.5 KB instead of 4.6 KB (ARCHITECTURE.md, "Parked-task
 * memory").  The price is paid at each wake-up: a page fault and two
 * copies, about 4-15 us on a virtual machine, so it suits waits that are
 * long (an idle keep-alive connection), not every read.  The caller
 * promises that no other task or thread reads or writes this task's
 * stack (its locals, a buffer on it) until the call returns: a write
 * would be lost and a read would see zeros.  WEFT_DEBUG builds check it
 * and abort naming this call.  Without memory for the copy, or on a
 * stack it borrows from its parent (a child run inline by a join), the
 * stack stays, as without the flag.
 * Returns: 0 (readable: a read returns at least one byte, or 0 at the
 * end of the stream), or a negative code; a connection error found while
 * looking (-ECONNRESET) is returned, as a read would have.
 * Errors: -EINVAL (NULL s, an unknown flag), -EBUSY (another task is
 * reading), WEFT_ECLOSED, WEFT_EMISUSE, -ECONNRESET, -ECANCELED (nothing
 * consumed), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_wait_readable(weft_stream_t *s, unsigned flags);

/* What it does: reads exactly len bytes (several reads if needed).
 * Returns: 0 when buf is full; WEFT_EEND if the stream ended first
 * (*got says how many bytes arrived); or a read error.  On -ECANCELED the
 * bytes already read are in buf and counted in *got (they are consumed).
 * got may be NULL.  len 0 reads nothing and returns 0 when the call
 * does not fail otherwise (unlike weft_stream_read, for which len 0 is
 * -EINVAL); buf may then be NULL.
 * Errors: as weft_stream_read, WEFT_EMISUSE included.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_read_exactly(weft_stream_t *s, void *buf,
	size_t len, size_t *got);

/* What it does: reads until the delimiter `delim` (delim_len > 0 bytes)
 * has been read, leaving any bytes after it in the stream for the next
 * read.  At most cap bytes (delimiter included) are stored in buf.
 * Returns: the length up to and including the delimiter; -EMSGSIZE if cap
 * bytes came without it (those bytes, in buf, are consumed); WEFT_EEND if
 * the stream ended first (the bytes before the end stay in the stream: a
 * weft_stream_read returns them, then 0); or a read error.  -ECANCELED
 * consumes nothing (bytes already read stay in the stream).
 * Errors: as weft_stream_read, WEFT_EMISUSE included; -EINVAL also for
 * cap < delim_len (the delimiter could never fit).
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN ssize_t weft_stream_read_until(weft_stream_t *s, void *buf,
	size_t cap, const void *delim, size_t delim_len);

/* What it does: writes all len bytes; returns once the kernel has taken
 * them all (so a writer waits while the peer is not reading: bounded
 * buffering, backpressure).
 * Errors: -EINVAL (NULL, or NULL buf with len > 0), -EBUSY (another task
 * is writing), WEFT_ECLOSED (s closed during the call, or write side shut
 * down, or broken by a cancelled write), WEFT_EMISUSE (s closed before
 * the call), -EPIPE, -ECONNRESET, -ECANCELED (see the top of
 * this file), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_write(weft_stream_t *s, const void *buf,
	size_t len);

/* What it does: half-closes s: sends end-of-stream after the data already
 * written; reading continues to work.  From then on a write returns
 * WEFT_ECLOSED, and a second shutdown returns 0 doing nothing.
 * Errors: -EINVAL, -EBUSY (a write is in progress), WEFT_ECLOSED,
 * WEFT_EMISUSE (s closed before the call), -ENOTCONN, -ECANCELED,
 * WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_shutdown(weft_stream_t *s);

/* The most descriptors one weft_stream_send_fds / recv_fds carries. */
#define WEFT_STREAM_MAX_FDS 16

/* What it does: on a UNIX-domain stream, sends the len >= 1 bytes at buf
 * with nfds (1..WEFT_STREAM_MAX_FDS) open descriptors attached
 * (SCM_RIGHTS): the peer receives duplicates of them with the first of
 * these bytes, through weft_stream_recv_fds.  The caller keeps its own
 * descriptors (close them when done).  Otherwise as weft_stream_write.
 * Errors: -EINVAL (NULL, len 0, nfds 0 or too many, a TCP stream),
 * -EBADF (a descriptor is not open), and those of weft_stream_write;
 * -ECANCELED before the first byte left: nothing sent, no descriptor.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_send_fds(weft_stream_t *s, const void *buf,
	size_t len, const int *fds, size_t nfds);

/* What it does: reads as weft_stream_read, and stores the descriptors
 * that came with the bytes read (close-on-exec, the caller's to close)
 * in fds[0 .. *nfds).  Descriptors travel with the byte they were sent
 * with: read that byte with this call, or the kernel closes them (a
 * plain read or read_until takes the byte without them; bytes a
 * read_until left over in the stream come back here with *nfds 0).  More
 * than maxfds descriptors with one read: the kernel closes the rest.
 * Returns: the bytes read, 0 at end of stream, or an error (*nfds 0).
 * Errors: -EINVAL (NULL, len 0, maxfds 0 or above
 * WEFT_STREAM_MAX_FDS, a TCP stream), and those of weft_stream_read.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN ssize_t weft_stream_recv_fds(weft_stream_t *s, void *buf,
	size_t len, int *fds, size_t maxfds, size_t *nfds);

/* What it does: closes s and frees it; tasks parked in it return
 * WEFT_ECLOSED.  Unsent data is discarded only if the kernel has not taken
 * it (a completed weft_stream_write has been taken).
 * Ownership: s is invalid after the call.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (s was already closed: nothing is
 * done; WEFT_DEBUG builds abort naming the call; see "Handles and
 * closing" above).
 * Checkpoint: no.  Threads: weft fiber (any worker). */
WEFT_EXTERN int weft_stream_close(weft_stream_t *s);

/* What it does: sets TCP_NODELAY (on != 0) or clears it.
 * Errors: -EINVAL (NULL, or not TCP), WEFT_ECLOSED, WEFT_EMISUSE (s
 * closed before the call), other -errno.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_set_nodelay(weft_stream_t *s, int on);

/* What it does: enables TCP keep-alive probes after `idle_s` seconds of
 * silence (on != 0, idle_s >= 1), or disables them.
 * Errors: -EINVAL, WEFT_ECLOSED, WEFT_EMISUSE (s closed before the
 * call), other -errno.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_set_keepalive(weft_stream_t *s, int on,
	unsigned idle_s);

/* What it does: the peer's (remote) or the local address of s, copied
 * into *addr (*len in: its size, out: the address length; as with
 * getpeername(2), an address longer than the size is cut to it, and *len
 * then says how long it was).
 * Errors: -EINVAL, WEFT_ECLOSED, WEFT_EMISUSE (s closed before the
 * call), -ENOTCONN, other -errno.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_stream_peer_address(weft_stream_t *s,
	struct sockaddr *addr, socklen_t *len);
WEFT_EXTERN int weft_stream_local_address(weft_stream_t *s,
	struct sockaddr *addr, socklen_t *len);

/* }======================================================= */

WEFT_END_DECLS

#endif
