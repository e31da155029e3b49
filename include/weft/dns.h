/* Name resolution through the runtime's I/O thread (libuv's
 * uv_getaddrinfo, which runs getaddrinfo(3) on libuv's thread pool). */
#ifndef WEFT_DNS_H
#define WEFT_DNS_H

#include <netdb.h>
#include <stddef.h>
#include <sys/socket.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

/* struct addrinfo is POSIX's (<netdb.h>, which declares it only with
 * POSIX features enabled, as they are by default outside strict ISO C). */
struct addrinfo;

/* What it does: resolves host and/or service (a port number or a name
 * from /etc/services) as getaddrinfo(3) does, with `hints` (NULL: any
 * family, SOCK_STREAM), and stores the list in *res.  The calling task
 * parks meanwhile; its worker keeps running other tasks.
 * Ownership: the caller owns *res; free it with weft_freeaddrinfo.  host,
 * service and hints are read during the call only.
 * Errors: -EINVAL (NULL res, both host and service NULL, or hints
 * getaddrinfo(3) refuses: an unknown family, socket type, protocol or
 * flag), WEFT_ENOTFOUND (no such name or service, or no address of the
 * asked family: a permanent answer),
 * WEFT_EDNS (the resolver failed: no server answered, a bad reply...),
 * -ENOMEM, -ECANCELED, WEFT_ENOTFIBER.  On error *res is unchanged.
 * Cancellation: a lookup still queued for the pool is withdrawn; one
 * already running cannot be stopped (getaddrinfo has no cancel), so the
 * call returns -ECANCELED at once and the lookup finishes in the
 * background, its result discarded.  The runtime's destroy waits for such
 * a lookup (at most the resolver's timeout, /etc/resolv.conf).
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_getaddrinfo(const char *host, const char *service,
	const struct addrinfo *hints, struct addrinfo **res);

/* What it does: frees a list from weft_getaddrinfo; NULL is ignored.
 * Ownership: the caller gives up res.
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_freeaddrinfo(struct addrinfo *res);

/* What it does: the name of an address and port, as getnameinfo(3)
 * gives it with `flags` (NI_NAMEREQD, NI_NUMERICHOST, NI_NUMERICSERV,
 * NI_DGRAM...): host receives the host name (or the numeric address),
 * serv the service name (or the port number).  Either may be NULL (or
 * its length 0) when not wanted, not both.  The calling task parks
 * meanwhile (libuv's uv_getnameinfo, on libuv's pool).
 * Ownership: addr, host and serv stay the caller's; addr is read during
 * the call only.
 * Errors: -EINVAL (NULL addr, not AF_INET or AF_INET6, nothing wanted),
 * WEFT_ENOTFOUND (no name, with NI_NAMEREQD), WEFT_EDNS, -ENOSPC (a
 * name does not fit its buffer), -ENOMEM, -ECANCELED (as
 * weft_getaddrinfo: a lookup already running finishes in the
 * background), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_getnameinfo(const struct sockaddr *addr, int flags,
	char *host, size_t hostlen, char *serv, size_t servlen);

WEFT_END_DECLS

#endif
