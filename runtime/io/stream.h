/* Streams (stream.c): a connected socket made by accept (listener.c) or
 * connect (connect.c). */
#ifndef WEFT_RUNTIME_IO_STREAM_H
#define WEFT_RUNTIME_IO_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/sock.h"
#include "weft/net.h"

/* A socket record (io.h): users hold generation-tagged handles
 * (weft__stream_handle), which every public call checks. */
#define WEFT__STREAM_BROKEN 1u
#define WEFT__STREAM_SHUT_WR 2u

struct weft_stream {
	/* First: sock.c's free_fn casts back, and the record's life word
	 * (generation and references) is at the handle's address. */
	struct weft__sock sk;
	bool tcp; /* TCP (else UNIX domain) */
	/* One reader and one writer at a time (-EBUSY otherwise); each flag
	 * also hands its side's state to the next holder (acquire exchange,
	 * release store). */
	atomic_bool reading;
	atomic_bool writing;
	/* Writer-owned: WEFT__STREAM_BROKEN (a write was cancelled after a
	 * partial send), WEFT__STREAM_SHUT_WR (weft_stream_shutdown shut the write
	 * side down).  One byte, read whole: two adjacent bools read in one
	 * test were merged by the compiler into a wider load that covered
	 * the reader's flag too (a race TSan reported). */
	uint8_t wstate;
	/* Reader-owned pushback: bytes read from the socket but returned to
	 * the stream (read_until's bytes after the delimiter, a cancelled
	 * read_until's bytes).  Served before the socket. */
	char *pb;
	size_t pb_off, pb_len, pb_cap;
	/* Reader-owned: the last recv was short (TCP only), so the socket
	 * had nothing more then and the next byte brings an edge; the next
	 * read waits before its recv (stream.c, "Short reads"). */
	bool drained;
};

#ifdef WEFT_DEBUG
/* Recvs of stream reads that found nothing (EAGAIN), for the tests
 * (tests/test_sock.c): debug bookkeeping, relaxed. */
extern atomic_long weft__stream_recv_eagain;
#endif

/* A stream around fd (owned by it from now on, even on failure: NULL
 * means fd was closed and memory is short).  Its handle is not given out
 * yet (weft__stream_handle).  Thread: a weft fiber. */
struct weft_stream *weft__stream_new(struct weft_runtime *rt, int fd, bool tcp);

/* A stream record of rt, for a caller that must allocate before it has a
 * descriptor (accept); weft__stream_init then takes fd, or
 * weft__stream_discard gives the record back unused.  Thread: any. */
struct weft_stream *weft__stream_alloc(struct weft_runtime *rt);
void weft__stream_init(struct weft_stream *s, struct weft_runtime *rt, int fd,
	bool tcp);
void weft__stream_discard(struct weft_runtime *rt, struct weft_stream *s);

/* The handle users get for s in its current (open) life.  Thread: the
 * stream's creator, before anyone else may close it. */
static inline weft_stream_t *weft__stream_handle(struct weft_stream *s)
{
	return weft__io_rec_handle(&s->sk.rec);
}

#endif
