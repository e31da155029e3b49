/* UDP sockets: send datagrams to an address and receive them with the
 * sender's address.  UNIX datagram sockets (weft_unix_dgram_open) are the
 * same type and take the same calls, with struct sockaddr_un addresses.
 *
 * A socket belongs to the runtime's I/O thread (libuv) that created it.
 * A send or receive that cannot block is done directly by the calling
 * task with a non-blocking system call; one that would block parks the
 * task until the I/O thread has done it.  A call that need not wait
 * (the kernel is ready) completes without yielding, except every 128th
 * such call in a row (the cooperative budget of docs/semantics.md rule
 * 22).
 *
 * Rules shared by the blocking calls (send, recv):
 *   - Checkpoint: a task cancelled on entry gets -ECANCELED and nothing is
 *     sent or received.  The deadlines of enclosing scopes apply (a
 *     fail_after scope around a recv makes it time out).
 *   - "-ECANCELED => nothing happened" (docs/semantics.md rule 42): a
 *     cancelled recv consumed no datagram (the next recv gets it); a
 *     cancelled send sent nothing.  A send that must wait for room in the
 *     kernel's buffer (rare: UDP buffers drain on their own) waits
 *     uncancellably until the datagram is taken, then returns 0.
 *   - Closing the socket while a task is parked in it wakes that task
 *     with WEFT_ECLOSED.  Any call on a socket that was closed returns
 *     WEFT_ECLOSED, whenever it starts, doing nothing: the handle is
 *     checked (the socket's memory stays the runtime's until the runtime
 *     is destroyed, and a handle of a closed socket is told apart from
 *     whatever uses that memory later, up to 32768 lives of it).  Only a
 *     second weft_udp_close is an API misuse.
 *   - Threads: weft fiber; a plain thread gets WEFT_ENOTFIBER.
 *
 * Loopback and local networks may still drop datagrams (a full receive
 * buffer drops silently): UDP gives no delivery guarantee. */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

/* A bound UDP socket (opaque). */
typedef struct weft_udp weft_udp_t;

/* What it does: creates a UDP socket bound to host:port.  host is a
 * numeric IPv4 or IPv6 address ("127.0.0.1", "::1") or a name, resolved
 * with weft_getaddrinfo (its first address); NULL or "" means "0.0.0.0".
 * Port 0 picks a free port (see weft_udp_port).
 * Ownership: the caller owns *out; free it with weft_udp_close.
 * Errors: -EINVAL (NULL out, port outside 0..65535), WEFT_ENOTFOUND,
 * WEFT_EDNS (the name did not resolve), -EADDRINUSE, -EADDRNOTAVAIL,
 * -EACCES, -EMFILE, -ENOMEM, -ECANCELED (no socket was created),
 * WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_udp_open(weft_udp_t **out, const char *host, int port);

/* What it does: creates a UNIX-domain datagram socket bound to `path`
 * (which must not exist; closing does not unlink it), or, with path NULL,
 * to an abstract name the kernel picks (Linux's autobind), so that peers
 * can still answer.  weft_udp_send, weft_udp_recv and weft_udp_close work
 * on it as on a UDP socket, with struct sockaddr_un addresses (recv's
 * *from is the sender's, an abstract one starting with a NUL byte, or an
 * unbound sender's with only the family, zero-filled after the address,
 * so that it can be passed back to weft_udp_send).  An address passed
 * without its
 * length ends at its NUL (a path) or at its last non-NUL byte (an
 * abstract name, as the kernel's autobind names): abstract names with
 * trailing NUL bytes cannot be addressed.  A send to an abstract name
 * whose receiver's queue is full returns -EAGAIN instead of waiting
 * (libuv, which waits for room, addresses UNIX sockets by path only); to
 * a path it waits as a UDP send does.
 * Ownership: the caller owns *out; free it with weft_udp_close.
 * Errors: -EINVAL (NULL out, empty path), -ENAMETOOLONG, -EADDRINUSE
 * (path exists), -EACCES, -ENOENT (no such directory), -EMFILE, -ENOMEM,
 * -ECANCELED (no socket was created), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_unix_dgram_open(weft_udp_t **out, const char *path);

/* What it does: connects a UNIX datagram socket to the socket bound at
 * `path`: sends with a NULL address go there, and only its datagrams are
 * received.  Connecting again replaces the peer.
 * Errors: -EINVAL (NULL u or path, empty path), -ENAMETOOLONG,
 * -EAFNOSUPPORT (u is a UDP socket: weft_udp_connect), -ECONNREFUSED or
 * -ENOENT (nothing bound there), other -errno, WEFT_ECLOSED, -ECANCELED
 * (not connected), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_unix_dgram_connect(weft_udp_t *u, const char *path);

/* What it does: the local port u is bound to (the chosen one when it was
 * opened with port 0); 0 for a UNIX datagram socket.
 * Errors: -EINVAL (NULL), WEFT_ECLOSED (u was closed).  Checkpoint: no.
 * Threads: any thread, while u's runtime exists. */
WEFT_EXTERN int weft_udp_port(const weft_udp_t *u);

/* What it does: connects u to host:port (a numeric address or a name,
 * resolved with weft_getaddrinfo to an address of u's family): from then
 * on weft_udp_send with a NULL address sends there, and weft_udp_recv
 * receives only the peer's datagrams (the kernel filters them; an ICMP
 * "port unreachable" may then fail a later recv or send with
 * -ECONNREFUSED).  Connecting again replaces the peer; the local address
 * and port stay as they were, and a new peer the kernel refuses leaves
 * the old one.
 * Errors: -EINVAL (NULL u or host, port outside 1..65535),
 * -EAFNOSUPPORT (host has no address of u's family, or u is a UNIX
 * datagram socket: weft_unix_dgram_connect), WEFT_ENOTFOUND,
 * WEFT_EDNS, WEFT_ECLOSED, -ECANCELED (not connected), other -errno,
 * WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_udp_connect(weft_udp_t *u, const char *host, int port);

/* What it does: sends one datagram of len bytes (0 allowed) to `to` (a
 * struct sockaddr_in or sockaddr_in6 of the socket's family), or, with
 * `to` NULL, to the peer u is connected to.  Returns
 * once the kernel has taken the whole datagram (a datagram is never sent
 * in part).  Several tasks may send on u at once.
 * Errors: -EINVAL (NULL u, NULL buf with len > 0), -EDESTADDRREQ (to
 * NULL and u not connected), -EISCONN (to given and u connected), -EAFNOSUPPORT
 * (to is not IPv4, IPv6 or UNIX, or not the socket's family),
 * -ECONNREFUSED or -ENOENT (UNIX: nothing bound at to), -EAGAIN (UNIX:
 * an abstract destination's queue is full), -EMSGSIZE
 * (too big for one datagram), -ENETUNREACH, -EHOSTUNREACH, -EACCES
 * (broadcast), other -errno, WEFT_ECLOSED (u was closed), -ECANCELED
 * (nothing was sent), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_udp_send(weft_udp_t *u, const void *buf, size_t len,
	const struct sockaddr *to);

/* What it does: receives one datagram into buf (len > 0 bytes), waiting
 * until one arrives, and stores the sender's address in *from (optional)
 * and its length in *fromlen (optional).  One task receives on u at a
 * time.
 * Returns: the datagram's length (0 for an empty datagram), or a negative
 * code.
 * Errors: -EINVAL (NULL u or buf, len 0), -EBUSY (another task is
 * receiving on u), -EMSGSIZE (the datagram was longer than len: its first
 * len bytes are in buf, *from is set, the rest is lost, and the datagram
 * is consumed), WEFT_ECLOSED (u was closed), -ECANCELED (no datagram was
 * consumed), other -errno, WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN ssize_t weft_udp_recv(weft_udp_t *u, void *buf, size_t len,
	struct sockaddr_storage *from, socklen_t *fromlen);

/* What it does: closes u: tasks parked in weft_udp_recv or weft_udp_send
 * on it return WEFT_ECLOSED (an unsent datagram is dropped); a call
 * racing with the close either completes or returns WEFT_ECLOSED, and so
 * does every call on u after the close.  The I/O thread finishes the
 * close and gives u's memory back to the runtime once no call is still
 * using it; the call itself never waits.
 * Ownership: u is closed after the call: calls on it return WEFT_ECLOSED.
 * Errors: -EINVAL (NULL), WEFT_EMISUSE (u was already closed: nothing is
 * done; WEFT_DEBUG builds abort naming the call).
 * Checkpoint: no.  Threads: weft fiber or any thread of the process while
 * u's runtime exists. */
WEFT_EXTERN int weft_udp_close(weft_udp_t *u);

WEFT_END_DECLS

#endif
