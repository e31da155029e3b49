/* Foreign file descriptors: wait until a descriptor that another library
 * owns (libpq's connection, hiredis's socket, a libcurl transfer, a pipe)
 * is readable or writable, parking the task instead of a thread.
 *
 * A descriptor is registered once (weft_fd_register), waited on any
 * number of times (weft_fd_wait, or several at once with
 * weft_fd_wait_any) and unregistered before its owner closes it
 * (weft_fd_unregister: Trio's notify_closing, Tokio's AsyncFd drop).
 * weft never reads, writes, closes or changes the descriptor; it asks the
 * kernel about its readiness on the runtime's I/O thread only.
 *
 * Readiness is level-triggered: a wait returns at once when the
 * descriptor is ready now (data the owner left unread counts), and
 * otherwise when it becomes ready, so it suits owners that read until
 * EAGAIN and owners that read a little at a time alike.  Like poll(2),
 * the answer may be stale by the time the caller acts (another reader
 * took the data): use non-blocking descriptors, and wait again on
 * EAGAIN.  An error or hang-up on the descriptor reports it ready, so
 * that the owner's next call sees the error.
 *
 * Rules shared by the waits:
 *   - Checkpoint: a task cancelled on entry gets -ECANCELED.  The
 *     deadlines of enclosing scopes apply (weft_fail_after around a wait
 *     times it out).  A cancelled wait consumed nothing and left the
 *     descriptor as it was (docs/semantics.md rule 42).
 *   - One task at a time per descriptor and direction: a second task
 *     waiting for the same direction of the same descriptor gets -EBUSY
 *     (Trio raises BusyResourceError).
 *   - A task parked on a descriptor when another task unregisters it is
 *     woken with WEFT_ECLOSED.
 *   - Threads: weft fiber; a plain thread gets WEFT_ENOTFIBER.
 *
 * Not for descriptors of weft's own streams, listeners and UDP sockets
 * (their calls wait by themselves), and not for regular files (always
 * ready: use include/weft/fs.h). */
#ifndef WEFT_FD_H
#define WEFT_FD_H

#include <stddef.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

/* A registered foreign descriptor (opaque). */
typedef struct weft_fd weft_fd_t;

/* The directions a wait asks for and reports (a bit mask). */
#define WEFT_FD_READABLE 1
#define WEFT_FD_WRITABLE 2

/* The most descriptors one weft_fd_wait_any call takes. */
#define WEFT_FD_WAIT_MAX 64

/* What it does: registers fd, a descriptor the caller (or a library)
 * owns, with the calling task's runtime, so that tasks can wait on it.
 * fd should be non-blocking for its owner's calls; weft does not change
 * it.
 * Ownership: the caller owns *out and gives it back with
 * weft_fd_unregister before fd is closed and before the runtime is
 * destroyed; fd stays the caller's throughout.
 * Errors: -EINVAL (NULL out), -EBADF (fd is not an open descriptor),
 * -ENOMEM, WEFT_ENOTFIBER.  Register a descriptor once: a descriptor
 * joins the runtime's epoll set, which holds it once, at the first wait
 * of one of its registrations and stays there until that registration
 * is unregistered; meanwhile the waits of another registration of it
 * fail with -EEXIST, even when no wait overlaps.
 * Checkpoint: no.  Threads: weft fiber. */
WEFT_EXTERN int weft_fd_register(int fd, weft_fd_t **out);

/* What it does: parks until fd is ready for one of `events`
 * (WEFT_FD_READABLE, WEFT_FD_WRITABLE or both); at once if it is ready
 * now.
 * Returns: the directions found ready (a non-empty subset of events).
 * Errors: -EINVAL (NULL f, events empty or with other bits),
 * -ECANCELED, -EBUSY (another task waits for one of these directions of
 * this descriptor), WEFT_ECLOSED (unregistered while waiting),
 * WEFT_EMISUSE (f was unregistered before the call; reported), an epoll
 * error (-EPERM: fd is a regular file; -EEXIST: another registration of
 * fd has waited and is still registered, weft_fd_register).
 * Checkpoint: yes (the rules above).  Threads: weft fiber. */
WEFT_EXTERN int weft_fd_wait(weft_fd_t *f, int events);

/* What it does: parks until at least one of n descriptors is ready for
 * its events[i]; revents[i] receives the directions found ready for
 * fds[i] (0 for the others).  For libraries that say "wait for these
 * descriptors" (libcurl's multi-socket API, hiredis with a timeout).
 * Each descriptor at most once in fds.
 * Returns: how many fds[i] are ready (at least 1).
 * Errors: -EINVAL (NULL array, n == 0 or n > WEFT_FD_WAIT_MAX, an
 * events[i] empty or with other bits), -ENOMEM (n > 4 and no memory for
 * the wait), and those of weft_fd_wait; WEFT_ECLOSED sets the revents of
 * the unregistered descriptor to its events.  On an error revents is
 * all 0 but for that case.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fd_wait_any(weft_fd_t *const *fds, const int *events,
	int *revents, size_t n);

/* What it does: unregisters f: a task parked on it wakes with
 * WEFT_ECLOSED, and when this returns the runtime no longer watches the
 * descriptor, so its owner may close it (closing first leaves the
 * kernel's epoll set holding a descriptor that may be reused).  The
 * descriptor is not closed.
 * Ownership: f is invalid afterwards.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (f was unregistered already;
 * reported), WEFT_ENOTFIBER.
 * Checkpoint: no; not cancellable (it parks briefly for the I/O thread
 * and always completes).  Threads: weft fiber. */
WEFT_EXTERN int weft_fd_unregister(weft_fd_t *f);

WEFT_END_DECLS

#endif
