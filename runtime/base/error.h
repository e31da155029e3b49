/* Building error groups (the public weft_error_t).
 * Thread: any; a leaf or a list of leaves belongs to one thread at a time
 * (its failing task, then the group that collects it). */
#ifndef WEFT_RUNTIME_BASE_ERROR_H
#define WEFT_RUNTIME_BASE_ERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"

/* One failure, as recorded when it happens (allocated by the failing
 * task, owned by the group until join moves it into a weft_error). */
struct weft__leaf {
	struct weft__leaf *next;
	int code;
	char *message;	 /* weft__alloc'd, never NULL */
	char *task_name; /* weft__alloc'd, never NULL */
	uint64_t task_id;
	uint64_t seq; /* logical time */
	bool collateral;
	struct weft_error *nested;
	/* Context (weft__error_leaf_context): weft__alloc'd or NULL, which
	 * reads as "".  path: the task's ancestry, root first
	 * ("main#1/serve#3/conn#17"); why: for a collateral leaf, the
	 * reason its task was cancelled. */
	char *path;
	char *why;
};

struct weft_error {
	size_t count;
	struct weft__leaf **entries; /* count entries, each owned */
};

/* Allocates a leaf copying message and name; takes nested.  NULL on
 * allocation failure (nested is then NOT freed: the caller still owns). */
struct weft__leaf *weft__error_leaf_create(int code, const char *message,
	const char *task_name, uint64_t task_id, uint64_t seq, bool collateral,
	struct weft_error *nested);
void weft__error_leaf_free(struct weft__leaf *l);
/* Gives l copies of path and why (either may be NULL).  -ENOMEM leaves
 * the one that could not be copied NULL (it then reads as ""): context
 * is worth less than the failure, which is never dropped for it. */
int weft__error_leaf_context(struct weft__leaf *l, const char *path,
	const char *why);
/* Builds an error group from a list of leaves (taken) plus `lost`
 * unrecorded failures.  Never fails: under memory pressure it returns the
 * static out-of-memory group (weft_error_free ignores it) after freeing
 * the leaves. */
struct weft_error *weft__error_from_leaves(struct weft__leaf *head, size_t n,
	size_t lost);
/* Both groups' entries in one group (a's first), taking a and b (either
 * may be NULL).  Never fails: out of memory it frees both and returns the
 * static out-of-memory group, as weft__error_from_leaves does. */
struct weft_error *weft__error_concat(struct weft_error *a,
	struct weft_error *b);
/* A one-leaf group; same never-fails rule. */
struct weft_error *weft__error_single(struct weft__leaf *leaf);

#endif
