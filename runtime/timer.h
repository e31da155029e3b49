/* weft_now() and the deadline heap of the I/O thread: an intrusive binary
 * min-heap whose nodes live inside the scopes, so arming a timer never
 * allocates and can never fail.  Thread: I/O thread only (except
 * weft_now, which is public). */
#ifndef WEFT_RUNTIME_TIMER_H
#define WEFT_RUNTIME_TIMER_H

#include <stddef.h>
#include <stdint.h>

/* A heap node, embedded in the object it orders. */
struct weft__hnode {
	struct weft__hnode *left, *right, *parent;
	int64_t key;
};

typedef struct weft__heap {
	struct weft__hnode *root;
	size_t len;
} weft__heap_t;

void weft__heap_insert(weft__heap_t *h, struct weft__hnode *n, int64_t key);
void weft__heap_remove(weft__heap_t *h, struct weft__hnode *n);
static inline struct weft__hnode *weft__heap_min(const weft__heap_t *h)
{
	return h->root;
}

#endif
