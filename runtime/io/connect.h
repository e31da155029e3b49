/* Connecting (connect.c): the Happy Eyeballs race over a resolved list,
 * for weft_tcp_connect and for tests that need a list no resolver gives
 * (two loopback addresses, one of which drops SYNs). */
#ifndef WEFT_RUNTIME_IO_CONNECT_H
#define WEFT_RUNTIME_IO_CONNECT_H

#include "base/common.h"
#include "weft/net.h"

struct addrinfo;

/* Connects to the first address of res to answer, with the RFC 8305
 * stagger; res stays the caller's.  Errors as weft_tcp_connect.
 * Thread: a weft fiber (it parks). */
WEFT_FIBER_FN int weft__connect_list(weft_stream_t **out,
	const struct addrinfo *res);

#endif
