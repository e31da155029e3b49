/* Name resolution through the runtime's I/O thread (libuv's
 * uv_getaddrinfo, which runs getaddrinfo(3) on libuv's thread pool). */
#ifndef WEFT_DNS_H
#define WEFT_DNS_H

#include <netdb.h>
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
 * Errors: -EINVAL (NULL res, or both host and service NULL),
 * WEFT_ENOTFOUND (no such name, or no address of the asked family),
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

WEFT_END_DECLS

#endif
