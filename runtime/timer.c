/* weft_now() and the deadline heap (see timer.h).  4-ary rather than binary: half the depth,
 * and the four children of a node share a cache line of pointers
 * (research/runtimes.md 1.6: 4-ary pop-min 51 ns vs 54 at 1k, 146 vs 206
 * ns at 100k).  The key is copied into the scope (heap_when) so sifting
 * reads one field per scope. */
#include <errno.h>
#include <time.h>

#include "alloc.h"
#include "cancel.h"
#include "io.h"
#include "timer.h"
#include "weft/time.h"

#define HEAP_ARITY 4

int64_t weft_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void heap_place(weft__io_t *io, size_t i, struct weft_scope *s)
{
	io->heap[i] = s;
	s->heap_index = i;
}

static void heap_up(weft__io_t *io, size_t i)
{
	struct weft_scope *s = io->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / HEAP_ARITY;
		if (io->heap[parent]->heap_when <= s->heap_when)
			break;
		heap_place(io, i, io->heap[parent]);
		i = parent;
	}
	heap_place(io, i, s);
}

static void heap_down(weft__io_t *io, size_t i)
{
	struct weft_scope *s = io->heap[i];
	for (;;) {
		size_t first = i * HEAP_ARITY + 1;
		if (first >= io->heap_len)
			break;
		size_t best = first;
		size_t end = first + HEAP_ARITY;
		if (end > io->heap_len)
			end = io->heap_len;
		for (size_t c = first + 1; c < end; c++)
			if (io->heap[c]->heap_when < io->heap[best]->heap_when)
				best = c;
		if (io->heap[best]->heap_when >= s->heap_when)
			break;
		heap_place(io, i, io->heap[best]);
		i = best;
	}
	heap_place(io, i, s);
}

int weft__timer_insert(weft__io_t *io, struct weft_scope *s, int64_t when)
{
	if (io->heap_len == io->heap_cap) {
		size_t cap = io->heap_cap ? io->heap_cap * 2 : 64;
		struct weft_scope **h = weft__alloc(cap * sizeof *h);
		if (h == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < io->heap_len; i++)
			h[i] = io->heap[i];
		weft__free(io->heap);
		io->heap = h;
		io->heap_cap = cap;
	}
	s->heap_when = when;
	io->heap[io->heap_len] = s;
	s->heap_index = io->heap_len++;
	heap_up(io, s->heap_index);
	return 0;
}

void weft__timer_rekey(weft__io_t *io, struct weft_scope *s, int64_t when)
{
	int64_t old = s->heap_when;
	s->heap_when = when;
	if (when < old)
		heap_up(io, s->heap_index);
	else
		heap_down(io, s->heap_index);
}

void weft__timer_remove(weft__io_t *io, struct weft_scope *s)
{
	size_t i = s->heap_index;
	struct weft_scope *last = io->heap[--io->heap_len];
	s->heap_index = SIZE_MAX;
	if (last == s)
		return;
	heap_place(io, i, last);
	if (i > 0 && io->heap[(i - 1) / HEAP_ARITY]->heap_when >
		last->heap_when)
		heap_up(io, i);
	else
		heap_down(io, i);
}

struct weft_scope *weft__timer_min(const weft__io_t *io)
{
	return io->heap_len ? io->heap[0] : NULL;
}

void weft__timer_fini(weft__io_t *io)
{
	weft__free(io->heap);
	io->heap = NULL;
	io->heap_len = io->heap_cap = 0;
}
