/* Streams (stream.c): a connected socket made by accept (listener.c) or
 * connect (connect.c). */
#ifndef WEFT_RUNTIME_IO_STREAM_H
#define WEFT_RUNTIME_IO_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/sock.h"

struct weft_stream {
	struct weft__sock sk; /* first: sock.c's free_fn casts back */
	/* WEFT__STREAM_LIVE until weft_stream_close swaps in CLOSED (one
	 * CAS: a second close is reported), DEAD once freed (stream.c).
	 * Past the first 16 bytes, which malloc's free lists overwrite. */
	_Atomic uint32_t magic;
	bool tcp; /* TCP (else UNIX domain) */
	/* One reader and one writer at a time (-EBUSY otherwise); each flag
	 * also hands its side's state to the next holder (acquire exchange,
	 * release store). */
	atomic_bool reading;
	atomic_bool writing;
	/* Writer-owned: a write was cancelled after a partial send. */
	bool broken;
	/* Reader-owned pushback: bytes read from the socket but returned to
	 * the stream (read_until's bytes after the delimiter, a cancelled
	 * read_until's bytes).  Served before the socket. */
	char *pb;
	size_t pb_off, pb_len, pb_cap;
};

#define WEFT__STREAM_LIVE 0x5354524du	/* "STRM" */
#define WEFT__STREAM_CLOSED 0x434c4f53u /* "CLOS" */
#define WEFT__STREAM_DEAD 0x44454144u	/* "DEAD" */

/* A stream around fd (owned by it from now on, even on failure: NULL
 * means fd was closed and memory is short).  Thread: a weft fiber. */
struct weft_stream *weft__stream_new(struct weft_runtime *rt, int fd, bool tcp);

/* The memory of a stream, for a caller that must allocate before it has
 * a descriptor (accept); weft__stream_init then takes fd.  Thread: any. */
struct weft_stream *weft__stream_alloc(void);
void weft__stream_init(struct weft_stream *s, struct weft_runtime *rt, int fd,
	bool tcp);

#endif
