/* Error codes (strerror, names) and error groups.
 *
 * An error group is an array of owned leaves; a leaf may carry a nested
 * group (a child that failed because its own group failed).  Leaves are
 * allocated by the failing task when it fails, so join only has to
 * allocate the array; if even that fails, join hands out a static
 * "out of memory" group rather than losing the fact that tasks failed. */
#define _GNU_SOURCE /* strerrordesc_np, strerrorname_np (glibc >= 2.32) */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

/* {======================================================= codes */

/* Negated errno values use glibc's tables, which return NULL for values
 * that are not errno codes (plain strerror would invent "Unknown error
 * N"); weft's own range comes from WEFT_ERRNO_MAP. */
const char *weft_strerror(int code)
{
	switch (code) {
	case 0: return "success";
#define WEFT__ERR_MSG(name, value, msg)                                        \
	case value: return msg;
		WEFT_ERRNO_MAP(WEFT__ERR_MSG)
#undef WEFT__ERR_MSG
	default: break;
	}
	const char *d = code < 0 && code > WEFT_ERRNO_MIN_
		? strerrordesc_np(-code)
		: NULL;
	return d ? d : "unknown error";
}

const char *weft_err_name(int code)
{
	switch (code) {
	case 0: return "OK";
#define WEFT__ERR_NAME(name, value, msg)                                       \
	case value: return "WEFT_" #name;
		WEFT_ERRNO_MAP(WEFT__ERR_NAME)
#undef WEFT__ERR_NAME
	default: break;
	}
	const char *n = code < 0 && code > WEFT_ERRNO_MIN_
		? strerrorname_np(-code)
		: NULL;
	return n ? n : "UNKNOWN";
}

/* }======================================================= */

/* {======================================================= leaves */

/* The group handed out when the real one cannot be allocated. */
static struct weft__leaf error_oom_leaf = {
	.code = -ENOMEM,
	.message = (char *)"failures happened but could not be recorded: "
			   "out of memory",
	.task_name = (char *)"?",
};
static struct weft__leaf *error_oom_entries[1] = { &error_oom_leaf };
static struct weft_error error_oom = { 1, error_oom_entries };

static char *error_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = weft__alloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

struct weft__leaf *weft__error_leaf_create(int code, const char *message,
	const char *task_name, uint64_t task_id, uint64_t seq, bool collateral,
	struct weft_error *nested)
{
	struct weft__leaf *l = weft__calloc(1, sizeof *l);
	if (l == NULL)
		return NULL;
	l->message = error_strdup(message ? message : "");
	l->task_name = error_strdup(task_name ? task_name : "");
	if (l->message == NULL || l->task_name == NULL) {
		weft__free(l->message);
		weft__free(l->task_name);
		weft__free(l);
		return NULL;
	}
	l->code = code;
	l->task_id = task_id;
	l->seq = seq;
	l->collateral = collateral;
	l->nested = nested;
	return l;
}

void weft__error_leaf_free(struct weft__leaf *l)
{
	if (l == NULL || l == &error_oom_leaf)
		return;
	weft_error_free(l->nested);
	weft__free(l->message);
	weft__free(l->task_name);
	weft__free(l->path);
	weft__free(l->why);
	weft__free(l);
}

int weft__error_leaf_context(struct weft__leaf *l, const char *path,
	const char *why)
{
	int rc = 0;
	if (path && (l->path = error_strdup(path)) == NULL)
		rc = -ENOMEM;
	if (why && (l->why = error_strdup(why)) == NULL)
		rc = -ENOMEM;
	return rc;
}

struct weft_error *weft__error_from_leaves(struct weft__leaf *head, size_t n,
	size_t lost)
{
	struct weft__leaf *lost_leaf = NULL;
	if (lost > 0) {
		char msg[96];
		snprintf(msg, sizeof msg,
			"%zu failure(s) could not be recorded: out of memory",
			lost);
		lost_leaf = weft__error_leaf_create(-ENOMEM, msg, "?", 0, 0,
			false, NULL);
	}
	struct weft_error *e = weft__alloc(sizeof *e);
	struct weft__leaf **arr = weft__calloc(n + 1, sizeof *arr);
	if (e == NULL || arr == NULL || (lost > 0 && lost_leaf == NULL)) {
		weft__free(e);
		weft__free(arr);
		weft__error_leaf_free(lost_leaf);
		while (head) {
			struct weft__leaf *next = head->next;
			weft__error_leaf_free(head);
			head = next;
		}
		return &error_oom;
	}
	size_t i = 0;
	for (struct weft__leaf *l = head; l; l = l->next)
		arr[i++] = l;
	if (lost_leaf)
		arr[i++] = lost_leaf;
	for (size_t k = 0; k < i; k++)
		arr[k]->next = NULL;
	e->count = i;
	e->entries = arr;
	return e;
}

struct weft_error *weft__error_single(struct weft__leaf *leaf)
{
	leaf->next = NULL;
	return weft__error_from_leaves(leaf, 1, 0);
}

/* }======================================================= */

/* {======================================================= public API */

void weft_error_free(weft_error_t *err)
{
	if (err == NULL || err == &error_oom)
		return;
	for (size_t i = 0; i < err->count; i++)
		weft__error_leaf_free(err->entries[i]);
	weft__free(err->entries);
	weft__free(err);
}

struct weft_error *weft__error_concat(struct weft_error *a,
	struct weft_error *b)
{
	if (a == NULL)
		return b;
	if (b == NULL)
		return a;
	/* The static group already says that failures were lost. */
	if (a == &error_oom || b == &error_oom) {
		weft_error_free(a);
		weft_error_free(b);
		return &error_oom;
	}
	struct weft__leaf **arr = weft__calloc(a->count + b->count + 1,
		sizeof *arr);
	if (arr == NULL) {
		weft_error_free(a);
		weft_error_free(b);
		return &error_oom;
	}
	memcpy(arr, a->entries, a->count * sizeof *arr);
	memcpy(arr + a->count, b->entries, b->count * sizeof *arr);
	weft__free(a->entries);
	a->entries = arr;
	a->count += b->count;
	weft__free(b->entries);
	weft__free(b);
	return a;
}

size_t weft_error_count(const weft_error_t *err)
{
	return err ? err->count : 0;
}

/* Whether l is a failure of its own, not only the carrier of its group's
 * failures: a leaf without a nested group, or one whose task failed with
 * a code of its own while it had groups open (a panic, a missing join:
 * docs/semantics.md rules 7 and 45) rather than passing its group's error
 * on (weft_fail_group: WEFT_ECHILD_FAILED). */
static bool error_leaf_own(const struct weft__leaf *l)
{
	return l->nested == NULL || l->code != WEFT_ECHILD_FAILED;
}

size_t weft_error_leaf_count(const weft_error_t *err)
{
	if (err == NULL)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < err->count; i++) {
		const struct weft__leaf *l = err->entries[i];
		n += error_leaf_own(l) ? 1 : 0;
		if (l->nested)
			n += weft_error_leaf_count(l->nested);
	}
	return n;
}

static const struct weft__leaf *error_at(const weft_error_t *err, size_t i)
{
	if (err == NULL || i >= err->count)
		return NULL;
	return err->entries[i];
}

int weft_error_code_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	if (l == NULL)
		return -EINVAL;
	return l->code;
}

const char *weft_error_message_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l ? l->message : "";
}

const char *weft_error_task_name_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l ? l->task_name : "";
}

uint64_t weft_error_task_id_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l ? l->task_id : 0;
}

int weft_error_collateral_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l ? l->collateral : 0;
}

const char *weft_error_path_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l && l->path ? l->path : "";
}

const char *weft_error_cancel_reason_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l && l->collateral && l->why ? l->why : "";
}

uint64_t weft_error_time_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l ? l->seq : 0;
}

const weft_error_t *weft_error_nested_at(const weft_error_t *err, size_t i)
{
	const struct weft__leaf *l = error_at(err, i);
	return l ? l->nested : NULL;
}

/* Fatal-class failures (rule 12) outrank every other: the runtime ran out
 * of memory, or a task panicked. */
static int error_rank(const struct weft__leaf *l)
{
	if (l->code == -ENOMEM || l->code == WEFT_EPANIC)
		return 2;
	return l->collateral ? 0 : 1;
}

/* The highest-ranked leaf, earliest first among equals. */
static const struct weft__leaf *error_primary_leaf(const weft_error_t *err,
	const struct weft__leaf *best)
{
	for (size_t i = 0; i < err->count; i++) {
		const struct weft__leaf *l = err->entries[i];
		if (l->nested)
			best = error_primary_leaf(l->nested, best);
		if (!error_leaf_own(l))
			continue;
		if (best == NULL || error_rank(l) > error_rank(best) ||
			(error_rank(l) == error_rank(best) &&
				l->seq < best->seq))
			best = l;
	}
	return best;
}

int weft_error_primary(const weft_error_t *err, const char **msg)
{
	if (err == NULL)
		return 0;
	const struct weft__leaf *l = error_primary_leaf(err, NULL);
	if (l == NULL)
		return 0;
	if (msg)
		*msg = l->message;
	return l->code;
}

static int error_pred_all(int code, const char *message, void *arg)
{
	(void)code, (void)message, (void)arg;
	return 1;
}

/* Copies into *out the part of err whose leaves satisfy pred == want
 * (NULL when there is none).  Copies rather than moves, so that an
 * allocation failure half-way leaves err untouched: -ENOMEM, nothing
 * allocated. */
static int error_select(const weft_error_t *err, weft_error_pred_fn pred,
	void *arg, int want, weft_error_t **out)
{
	*out = NULL;
	weft_error_t *e = weft__calloc(1, sizeof *e);
	struct weft__leaf **arr = weft__calloc(err->count + 1, sizeof *arr);
	if (e == NULL || arr == NULL) {
		weft__free(e);
		weft__free(arr);
		return -ENOMEM;
	}
	e->entries = arr;
	for (size_t i = 0; i < err->count; i++) {
		const struct weft__leaf *l = err->entries[i];
		weft_error_t *sub = NULL;
		if (!error_leaf_own(l)) {
			if (error_select(l->nested, pred, arg, want, &sub) < 0)
				goto oom;
			if (sub == NULL)
				continue;
		} else if (!!pred(l->code, l->message, arg) != want) {
			continue;
		} else if (l->nested &&
			error_select(l->nested, error_pred_all, NULL, 1, &sub) <
				0) {
			/* A failure of its own goes where its code says,
			 * with its nested group whole. */
			goto oom;
		}
		struct weft__leaf *c = weft__error_leaf_create(l->code,
			l->message, l->task_name, l->task_id, l->seq,
			l->collateral, sub);
		if (c == NULL) {
			weft_error_free(sub);
			goto oom;
		}
		if (weft__error_leaf_context(c, l->path, l->why) < 0) {
			weft__error_leaf_free(c);
			goto oom;
		}
		arr[e->count++] = c;
	}
	if (e->count == 0) {
		weft_error_free(e);
		return 0;
	}
	*out = e;
	return 0;
oom:
	weft_error_free(e);
	return -ENOMEM;
}

int weft_error_split(weft_error_t *err, weft_error_pred_fn pred, void *arg,
	weft_error_t **match, weft_error_t **rest)
{
	if (err == NULL || pred == NULL || match == NULL || rest == NULL)
		return -EINVAL;
	if (err == &error_oom) {
		/* The static group cannot be split apart; classify it whole. */
		if (pred(error_oom_leaf.code, error_oom_leaf.message, arg)) {
			*match = err;
			*rest = NULL;
		} else {
			*match = NULL;
			*rest = err;
		}
		return 0;
	}
	weft_error_t *m = NULL, *r = NULL;
	if (error_select(err, pred, arg, 1, &m) < 0)
		return -ENOMEM;
	if (error_select(err, pred, arg, 0, &r) < 0) {
		weft_error_free(m);
		return -ENOMEM;
	}
	weft_error_free(err);
	*match = m;
	*rest = r;
	return 0;
}

struct error_buf {
	char *buf;
	size_t size;
	size_t len;
};

static void error_append(struct error_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void error_append(struct error_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = b->len < b->size ? b->size - b->len : 0;
	int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n;
}

static void error_format(const weft_error_t *err, struct error_buf *b,
	int depth)
{
	for (size_t i = 0; i < err->count; i++) {
		const struct weft__leaf *l = err->entries[i];
		/* The layout error.h documents for weft_error_format. */
		const char *why = l->collateral && l->why ? l->why : "";
		error_append(b, "%*s%s#%llu: %s%s%s%s%s%s%s\n", depth * 2, "",
			l->task_name, (unsigned long long)l->task_id,
			weft_err_name(l->code), l->message[0] ? ": " : "",
			l->message, l->collateral ? " (while cancelled" : "",
			why[0] ? ": " : "", why, l->collateral ? ")" : "");
		if (l->nested)
			error_format(l->nested, b, depth + 1);
	}
}

int weft_error_format(const weft_error_t *err, char *buf, size_t size)
{
	if (err == NULL)
		return -EINVAL;
	struct error_buf b = { buf, size, 0 };
	if (size > 0)
		buf[0] = '\0';
	error_format(err, &b, 0);
	if (size > 0 && b.len >= size)
		buf[size - 1] = '\0';
	return (int)b.len;
}

/* }======================================================= */
