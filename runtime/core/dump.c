/* The runtime dump's text and JSON rendering: formats the nodes that
 * inspect.c collected (after every scope lock is released) into a
 * 4 KiB buffer flushed to the caller's writer. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/tick.h"
#include "base/utf8.h"
#include "core/inspect.h"
#include "runtime.h"
#include "weft/inspect.h"
#include "weft/time.h"

struct dump_out {
	weft_dump_writer_fn write;
	void *ctx;
	int rc;
	size_t len;
	char buf[4096];
};

static void dump_flush(struct dump_out *o)
{
	if (o->len > 0 && o->rc == 0) {
		int rc = o->write(o->ctx, o->buf, o->len);
		if (rc < 0)
			o->rc = rc;
	}
	o->len = 0;
}

static void dump_put(struct dump_out *o, const char *s, size_t n)
{
	while (n > 0 && o->rc == 0) {
		if (o->len == sizeof o->buf)
			dump_flush(o);
		size_t k = sizeof o->buf - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

static void dump_printf(struct dump_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void dump_printf(struct dump_out *o, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		dump_put(o, tmp,
			(size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* s as a JSON string (quoted), or null.  JSON text is UTF-8: a byte that
 * starts no well-formed UTF-8 sequence (a name cut inside a character, or
 * not UTF-8 at all) is written as U+FFFD, the replacement character. */
static void dump_json_str(struct dump_out *o, const char *s)
{
	if (s == NULL) {
		dump_put(o, "null", 4);
		return;
	}
	dump_put(o, "\"", 1);
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned char c = *p;
		size_t k = weft__utf8_len(p);
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			dump_put(o, e, 2);
		} else if (c < 0x20) {
			dump_printf(o, "\\u%04x", c);
		} else if (k == 0) {
			dump_put(o, "\\ufffd", 6);
			k = 1;
		} else {
			dump_put(o, (const char *)p, k);
		}
		p += k;
	}
	dump_put(o, "\"", 1);
}

/* A name in the text format: quoted, with quotes, backslashes and
 * control characters escaped so that one node stays one line. */
static void dump_text_str(struct dump_out *o, const char *s)
{
	dump_put(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\' || c < 0x20)
			dump_printf(o, "\\x%02x", c);
		else
			dump_put(o, (const char *)&c, 1);
	}
	dump_put(o, "\"", 1);
}

static const char *const dump_kind_name[] = { "task", "group", "scope",
	"sleep" };

/* Task nodes by id, for naming the tasks a wait refers to. */
struct dump_ref {
	uint64_t id;
	int node;
};

struct dump_ctx {
	const struct weft__inspect_dump *d;
	struct dump_ref *refs; /* sorted by id; NULL: none (out of memory) */
	size_t nrefs;
	int64_t now;
};

static int dump_cmp_ref(const void *a, const void *b)
{
	uint64_t x = ((const struct dump_ref *)a)->id;
	uint64_t y = ((const struct dump_ref *)b)->id;
	return x < y ? -1 : x > y;
}

/* The node of task `id`, or NULL. */
static const struct weft__inspect_node *dump_task(const struct dump_ctx *c,
	uint64_t id)
{
	if (c->refs == NULL || id == 0)
		return NULL;
	struct dump_ref key = { id, -1 };
	struct dump_ref *r = bsearch(&key, c->refs, c->nrefs, sizeof key,
		dump_cmp_ref);
	return r ? &c->d->v[r->node] : NULL;
}

/* Live tasks whose group is `gid` (a joined group's running children). */
static size_t dump_children_of(const struct dump_ctx *c, uint64_t gid)
{
	size_t n = 0;
	for (size_t i = 0; i < c->d->n; i++)
		n += c->d->v[i].kind == WEFT__INSPECT_TASK &&
			c->d->v[i].group_id == gid;
	return n;
}

static void dump_deadline_text(struct dump_out *o, const char *key, int64_t d,
	int64_t now)
{
	if (d == WEFT_FOREVER)
		dump_printf(o, " %s=none", key);
	else
		dump_printf(o, " %s=%+.6fs", key, (double)(d - now) / 1e9);
}

static void dump_deadline_json(struct dump_out *o, const char *key, int64_t d)
{
	if (d == WEFT_FOREVER)
		dump_printf(o, ",\"%s\":null", key);
	else
		dump_printf(o, ",\"%s\":%" PRId64, key, d);
}

/* A pinned task's park: how long, and what on. */
static void dump_wait_text(struct dump_out *o, const struct dump_ctx *c,
	const struct weft__inspect_node *x)
{
	if (!x->pinned)
		return;
	const struct weft__wait_desc *w = &x->wait;
	dump_printf(o, " parked_for=%.6fs", (double)x->parked_ns / 1e9);
	if (x->wait_kind == WEFT__WAIT_NONE)
		return;
	dump_printf(o, " waits_on=%s object=%p",
		weft__wait_kind_name(x->wait_kind), w->obj);
	const struct weft__inspect_node *t;
	switch (x->wait_kind) {
	case WEFT__WAIT_LOCK:
	case WEFT__WAIT_TASK:
		dump_printf(o, " %s=%" PRIu64,
			x->wait_kind == WEFT__WAIT_LOCK ? "owner" : "task",
			w->ref_id);
		t = dump_task(c, w->ref_id);
		if (t) {
			dump_printf(o, " %s_name=",
				x->wait_kind == WEFT__WAIT_LOCK ? "owner"
								: "task");
			dump_text_str(o, t->name);
		}
		break;
	case WEFT__WAIT_GROUP:
		dump_printf(o, " group=%" PRIu64 " children_running=%zu",
			w->ref_id, dump_children_of(c, w->ref_id));
		break;
	case WEFT__WAIT_SLEEP:
		dump_deadline_text(o, "until", w->deadline, c->now);
		break;
	default: break;
	}
	/* A sleep or a stream wait that gave its stack back. */
	if (x->stack_released)
		dump_put(o, " stack=released", 15);
	if (x->site) {
		dump_put(o, " fn=", 4);
		dump_text_str(o, x->site);
	}
	if (w->text[0])
		dump_printf(o, " %s", w->text);
}

/* A pinned task's frames, one indented line each. */
static void dump_frames_text(struct dump_out *o,
	const struct weft__inspect_node *x, unsigned depth)
{
	for (const char *p = x->bt; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		for (unsigned i = 0; i < depth; i++)
			dump_put(o, "  ", 2);
		dump_put(o, p, n);
		dump_put(o, "\n", 1);
		p += n + (e != NULL);
	}
}

/* The same in JSON: ,"parked_ns":..,"waits_on":{..}|null,"backtrace":[..] */
static void dump_wait_json(struct dump_out *o, const struct dump_ctx *c,
	const struct weft__inspect_node *x)
{
	if (!x->pinned) {
		static const char none[] = ",\"parked_ns\":null,"
					   "\"waits_on\":null,\"backtrace\":[]";
		dump_put(o, none, sizeof none - 1);
		return;
	}
	const struct weft__wait_desc *w = &x->wait;
	dump_printf(o,
		",\"parked_ns\":%" PRId64 ",\"waits_on\":", x->parked_ns);
	if (x->wait_kind == WEFT__WAIT_NONE) {
		dump_put(o, "null", 4);
	} else {
		char obj[32];
		snprintf(obj, sizeof obj, "%p", w->obj);
		dump_printf(o, "{\"kind\":\"%s\",\"object\":\"%s\"",
			weft__wait_kind_name(x->wait_kind), obj);
		const struct weft__inspect_node *t;
		switch (x->wait_kind) {
		case WEFT__WAIT_LOCK:
		case WEFT__WAIT_TASK: {
			const char *k = x->wait_kind == WEFT__WAIT_LOCK
				? "owner"
				: "task";
			dump_printf(o, ",\"%s\":%" PRIu64, k, w->ref_id);
			t = dump_task(c, w->ref_id);
			dump_printf(o, ",\"%s_name\":", k);
			dump_json_str(o, t ? t->name : NULL);
			break;
		}
		case WEFT__WAIT_GROUP:
			dump_printf(o,
				",\"group\":%" PRIu64
				",\"children_running\":%zu",
				w->ref_id, dump_children_of(c, w->ref_id));
			break;
		case WEFT__WAIT_SLEEP:
			dump_deadline_json(o, "until", w->deadline);
			break;
		default: break;
		}
		/* Always for a sleep; for another wait (a stream's) only
		 * when it gave its stack back. */
		if (x->wait_kind == WEFT__WAIT_SLEEP || x->stack_released)
			dump_printf(o, ",\"stack_released\":%s",
				x->stack_released ? "true" : "false");
		if (x->site) {
			dump_put(o, ",\"function\":", 12);
			dump_json_str(o, x->site);
		}
		dump_put(o, ",\"detail\":", 10);
		dump_json_str(o, w->text);
		dump_put(o, "}", 1);
	}
	dump_put(o, ",\"backtrace\":[", 14);
	bool first = true;
	for (const char *p = x->bt; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		/* Each line is "#i site": the site alone. */
		const char *sp = memchr(p, ' ', n);
		const char *s = sp ? sp + 1 : p;
		char frame[320];
		size_t k = n - (size_t)(s - p);
		if (k >= sizeof frame)
			k = sizeof frame - 1;
		memcpy(frame, s, k);
		frame[k] = '\0';
		if (!first)
			dump_put(o, ",", 1);
		first = false;
		dump_json_str(o, frame);
		p += n + (e != NULL);
	}
	dump_put(o, "]", 1);
}

static void dump_node_text(struct dump_out *o, const struct dump_ctx *c,
	const struct weft__inspect_node *x, unsigned depth, int64_t now)
{
	for (unsigned i = 0; i < depth; i++)
		dump_put(o, "  ", 2);
	dump_printf(o, "%s id=%" PRIu64, dump_kind_name[x->kind], x->id);
	if (x->kind == WEFT__INSPECT_TASK) {
		dump_put(o, " name=", 6);
		dump_text_str(o, x->name);
		dump_printf(o, " state=%s", x->parked_on ? "parked" : "active");
		if (x->parked_on) {
			dump_put(o, " parked_on=", 11);
			dump_text_str(o, x->parked_on);
		}
		dump_printf(o, " worker=%d group=%" PRIu64, x->worker,
			x->group_id);
		dump_deadline_text(o, "deadline", x->eff_deadline, now);
		dump_printf(o,
			" cancelled=%d cancel_requested=%d "
			"shielded=%d%s",
			x->cancelled, x->cancel_called, x->shield,
			x->linked ? "" : " linked=0");
		if (x->note) {
			dump_put(o, " note=", 6);
			dump_text_str(o, x->note);
		}
		dump_wait_text(o, c, x);
		dump_put(o, "\n", 1);
		dump_frames_text(o, x, depth + 2);
		return;
	}
	if (x->kind == WEFT__INSPECT_GROUP) {
		dump_printf(o, " owner=%" PRIu64, x->group_id);
		if (x->site) {
			dump_put(o, " opened_at=", 11);
			dump_text_str(o, x->site);
		}
		if (x->pending)
			dump_printf(o, " pending=%zu", x->pending);
		if (x->has_cpu)
			dump_printf(o, " cpu_ns=%" PRId64,
				weft__tick_to_ns(x->cpu_ticks));
		if (x->has_budget)
			dump_printf(o,
				" children=%zu max_children=%zu "
				"stack_bytes=%zu stack_bytes_max=%zu",
				x->live, x->max_children, x->stack_used,
				x->stack_max);
	}
	dump_deadline_text(o, "deadline", x->deadline, now);
	dump_deadline_text(o, "effective_deadline", x->eff_deadline, now);
	dump_printf(o, " cancelled=%d cancel_called=%d shield=%d\n",
		x->cancelled, x->cancel_called, x->shield);
}

/* Opens the node's object; its "children" array stays open. */
static void dump_node_json(struct dump_out *o, const struct dump_ctx *c,
	const struct weft__inspect_node *x)
{
	dump_printf(o, "{\"type\":\"%s\",\"id\":%" PRIu64,
		dump_kind_name[x->kind], x->id);
	if (x->kind == WEFT__INSPECT_TASK) {
		dump_put(o, ",\"name\":", 8);
		dump_json_str(o, x->name);
		dump_printf(o, ",\"state\":\"%s\",\"parked_on\":",
			x->parked_on ? "parked" : "active");
		dump_json_str(o, x->parked_on);
		dump_printf(o, ",\"worker\":%d,\"group\":%" PRIu64, x->worker,
			x->group_id);
		dump_deadline_json(o, "deadline", x->eff_deadline);
		dump_printf(o,
			",\"cancelled\":%s,\"cancel_requested\":%s,"
			"\"shielded\":%s,\"linked\":%s",
			x->cancelled ? "true" : "false",
			x->cancel_called ? "true" : "false",
			x->shield ? "true" : "false",
			x->linked ? "true" : "false");
		dump_put(o, ",\"note\":", 8);
		dump_json_str(o, x->note);
		dump_wait_json(o, c, x);
	} else {
		if (x->kind == WEFT__INSPECT_GROUP) {
			dump_printf(o, ",\"owner\":%" PRIu64, x->group_id);
			dump_put(o, ",\"opened_at\":", 13);
			dump_json_str(o, x->site);
			if (x->pending)
				dump_printf(o, ",\"pending\":%zu", x->pending);
			if (x->has_cpu)
				dump_printf(o, ",\"cpu_ns\":%" PRId64,
					weft__tick_to_ns(x->cpu_ticks));
			if (x->has_budget)
				dump_printf(o,
					",\"children\":%zu,"
					"\"max_children\":%zu,"
					"\"stack_bytes\":%zu,"
					"\"stack_bytes_max\":%zu",
					x->live, x->max_children, x->stack_used,
					x->stack_max);
		}
		dump_deadline_json(o, "deadline", x->deadline);
		dump_deadline_json(o, "effective_deadline", x->eff_deadline);
		dump_printf(o,
			",\"cancelled\":%s,\"cancel_called\":%s,"
			"\"shield\":%s",
			x->cancelled ? "true" : "false",
			x->cancel_called ? "true" : "false",
			x->shield ? "true" : "false");
	}
	dump_put(o, ",\"children\":[", 13);
}

/* Writes every node, depth first, without recursion (a tree may be
 * deeper than a fiber's stack allows). */
static int dump_render(struct weft__inspect_dump *d, bool json, int64_t now,
	struct dump_out *o)
{
	struct dump_ctx cx = { d, NULL, 0, now };
	size_t nt = 0;
	for (size_t i = 0; i < d->n; i++)
		nt += d->v[i].kind == WEFT__INSPECT_TASK;
	/* Without it, referred tasks go unnamed (ids only). */
	cx.refs = weft__alloc((nt + 1) * sizeof *cx.refs);
	if (cx.refs) {
		for (size_t i = 0; i < d->n; i++)
			if (d->v[i].kind == WEFT__INSPECT_TASK)
				cx.refs[cx.nrefs++] = (struct dump_ref){
					d->v[i].id, (int)i
				};
		qsort(cx.refs, cx.nrefs, sizeof *cx.refs, dump_cmp_ref);
	}
	int *stack = weft__alloc((d->n + 1) * sizeof *stack);
	int *cursor = weft__alloc((d->n + 1) * sizeof *cursor);
	if (stack == NULL || cursor == NULL) {
		weft__free(stack);
		weft__free(cursor);
		weft__free(cx.refs);
		return -ENOMEM;
	}
	bool first_top = true;
	for (size_t r = 0; r < d->n; r++) {
		if (d->v[r].parent >= 0)
			continue;
		if (json && !first_top)
			dump_put(o, ",", 1);
		first_top = false;
		size_t sp = 0;
		int x = (int)r;
		for (;;) {
			/* Enter x. */
			if (json)
				dump_node_json(o, &cx, &d->v[x]);
			else
				dump_node_text(o, &cx, &d->v[x], (unsigned)sp,
					now);
			stack[sp++] = x;
			cursor[x] = d->v[x].first_child;
			/* Next node to enter, closing finished ones. */
			x = -1;
			while (sp > 0) {
				int top = stack[sp - 1];
				int c = cursor[top];
				if (c >= 0) {
					cursor[top] = d->v[c].next_sib;
					if (json && c != d->v[top].first_child)
						dump_put(o, ",", 1);
					x = c;
					break;
				}
				if (json)
					dump_put(o, "]}", 2);
				sp--;
			}
			if (x < 0)
				break;
		}
	}
	weft__free(stack);
	weft__free(cursor);
	weft__free(cx.refs);
	return 0;
}

int weft_runtime_dump(weft_runtime_t *rt, unsigned flags,
	weft_dump_writer_fn write, void *ctx)
{
	if (write == NULL || (flags & ~WEFT_DUMP_JSON))
		return -EINVAL;
	struct weft_runtime *r = weft__inspect_runtime(rt);
	if (r == NULL)
		return WEFT_ENOTFIBER;
	struct weft__inspect_dump d = { 0 };
	size_t ntasks = 0;
	int rc = weft__inspect_collect(r, &d, &ntasks);
	if (rc == 0) {
		bool json = flags & WEFT_DUMP_JSON;
		int64_t now = weft_now();
		struct dump_out *o = weft__alloc(sizeof *o);
		if (o == NULL) {
			rc = -ENOMEM;
		} else {
			o->write = write;
			o->ctx = ctx;
			o->rc = 0;
			o->len = 0;
			/* The main counters (stats.c): a lock-free read of
			 * one block per worker, so cheap next to the tree. */
			weft_runtime_stats_t st;
			if (weft_runtime_stats(r, &st) < 0)
				memset(&st, 0, sizeof st);
			if (json)
				dump_printf(o,
					"{\"workers\":%u,\"now\":%" PRId64
					",\"tasks\":%zu,\"stats\":{"
					"\"spawned\":%" PRIu64
					",\"run\":%" PRIu64
					",\"inline\":%" PRIu64
					",\"parks\":%" PRIu64
					",\"steals\":%" PRIu64
					",\"sleeps\":%" PRIu64 "},\"tree\":[",
					r->nworkers, now, ntasks,
					st.tasks_spawned, st.total.tasks_run,
					st.total.inline_run, st.total.parks,
					st.total.steals, st.total.sleeps);
			else
				dump_printf(o,
					"weft runtime: workers=%u "
					"tasks=%zu spawned=%" PRIu64
					" run=%" PRIu64 " inline=%" PRIu64
					" parks=%" PRIu64 " steals=%" PRIu64
					" sleeps=%" PRIu64 "\n",
					r->nworkers, ntasks, st.tasks_spawned,
					st.total.tasks_run, st.total.inline_run,
					st.total.parks, st.total.steals,
					st.total.sleeps);
			rc = dump_render(&d, json, now, o);
			if (json)
				dump_put(o, "]}\n", 3);
			dump_flush(o);
			if (rc == 0)
				rc = o->rc;
			weft__free(o);
		}
	}
	weft__inspect_dump_free(&d);
	return rc;
}

struct dump_buf {
	char *buf;
	size_t size, len;
};

static int dump_buf_write(void *ctx, const char *data, size_t n)
{
	struct dump_buf *b = ctx;
	if (b->len + 1 < b->size) {
		size_t room = b->size - 1 - b->len;
		memcpy(b->buf + b->len, data, n < room ? n : room);
	}
	b->len += n;
	return 0;
}

int weft_runtime_dump_buf(weft_runtime_t *rt, unsigned flags, char *buf,
	size_t size, size_t *len)
{
	if (len == NULL || (buf == NULL && size > 0))
		return -EINVAL;
	struct dump_buf b = { buf, size, 0 };
	int rc = weft_runtime_dump(rt, flags, dump_buf_write, &b);
	if (size > 0)
		buf[b.len < size ? b.len : size - 1] = '\0';
	*len = b.len;
	return rc;
}
