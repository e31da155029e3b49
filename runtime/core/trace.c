/* The trace: what every task did, for a person to look at afterwards.
 *
 * Two outputs, either or both (weft_config_t, include/weft/runtime.h):
 *   - trace_path (WEFT_TRACE): a Chrome trace event file, the JSON that
 *     Perfetto's UI and chrome://tracing open.  One track per thread:
 *     tid N is worker N ("weft-wN"), tid nworkers the I/O thread
 *     ("weft-io"), tid nworkers + 1 every other thread ("foreign").  A
 *     worker's track holds a slice ("X") per run of a task, named after
 *     the task, and instants ("i") for spawn (with the parent's id), park
 *     (with its reason, the string the park site gave), wake (with the
 *     waker: a task id, "io", or "sched" for the scheduler loop firing
 *     deadlines; a plain thread's wake is not recorded, see
 *     weft__trace_wake), steal (with the victim) and end (with the
 *     result); a wake is also a flow ("s" at the wake, "f" at the run it
 *     causes), so the UI draws an arrow from waker to wakee.  The I/O
 *     track holds "io start" and "io done" instants per operation.
 *   - trace_events (WEFT_TRACE_EVENTS): one line per task event on
 *     stderr, "weft-trace: w0 start 1025 name", "... park 1025 event",
 *     "... wake 1025 by 1", "... end 1025 0", written at once with one
 *     write(2) per line (so lines of two threads never mix).  No clock,
 *     no pointer: at one worker, a program that is deterministic prints
 *     the same lines run after run (task ids are deterministic in a fresh
 *     process: base/id.c hands them out in per-thread blocks from one
 *     process-wide counter, so they are not across the runtimes of one
 *     process, nor at several workers).
 *
 * Buffers.  Each thread writes only its own buffer: one per worker, one
 * for the I/O thread, and one shared by every other thread (plain threads
 * that spawn tasks).  All are allocated at runtime creation
 * (trace_buffer events each: no allocation on the hot path).  A full
 * buffer is written out by the thread that filled it, right there (an
 * event is recorded at a switch, a spawn, a wake or an end: never inside
 * a fiber's own code): formatted into the buffer's own text area
 * (workers format in parallel), then written under the file's mutex.  A
 * traced program stalls for the write instead of losing events.  Each
 * buffer has a spinlock, taken by its writer for each event: uncontended
 * for a worker's or the I/O thread's (the only other taker is the exit
 * flush), shared by the plain threads.  Events are dropped, and counted
 * in the file's metadata ("dropped_events"), only when the file could
 * not be written (a write error), or when they come after an exit flush
 * closed it.
 *
 * Ends.  weft_runtime_destroy writes what is buffered and the file's
 * closing lines, after every thread of the runtime was joined.  A program
 * that exits without destroying its runtime gets the same from an atexit
 * handler that walks every live trace of the process: the workers may
 * still be running then, so it takes each buffer's lock, and what comes
 * after it is dropped.
 *
 * Timestamps: microseconds (three decimals) of CLOCK_MONOTONIC since the
 * runtime was created, even under the virtual clock: virtual time stands
 * still while tasks run, so every slice would have zero width.
 *
 * Hooks.  Spawn (sched.c, before the task is published), the switch-in
 * (sched.c: one per switch; on a direct switch from a fiber it also
 * records the departing task's slice end and park, which on the loop's
 * path are recorded when the fiber comes back), steal, every claimed
 * wake (task.c), the start and end of a task's function (task.c: a child
 * run inline never switches in, so its slice and its parent's are cut
 * there), and the I/O thread's submit and completion (io/ioop.c).
 *
 * Cost when off: the callers test a pointer that is NULL (the worker's
 * `trace`, or the runtime's), one predictable branch per hook: under
 * callgrind, +10 instructions per spawn on B1 fib (three hooks), +2 per
 * yield on B6, +8 per channel send on B5 (switch and wake). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/spin.h"
#include "base/utf8.h"
#include "core/group.h"
#include "core/inspect.h"
#include "core/task.h"
#include "core/trace.h"
#include "runtime.h"

enum trace_kind {
	TRACE_SPAWN,
	TRACE_SLICE,
	TRACE_PARK,
	TRACE_WAKE,
	TRACE_RESUME, /* the end of a wake's flow, where the wakee runs */
	TRACE_STEAL,
	TRACE_END,
	TRACE_IO_START,
	TRACE_IO_DONE
};

/* Who woke a task, when it was not a task (trace_rec.arg of a wake). */
#define TRACE_BY_SCHED UINT64_MAX
#define TRACE_BY_IO (UINT64_MAX - 1)
#define TRACE_BY_FOREIGN (UINT64_MAX - 2)

/* One event, fixed size. */
struct trace_rec {
	uint64_t ts;  /* ns since the runtime's creation */
	uint64_t dur; /* SLICE: ns */
	uint64_t id;  /* the task */
	/* SPAWN: the parent's id (0: not spawned by a task); WAKE: the
	 * waker (a task id or TRACE_BY_*); STEAL: the victim's index. */
	uint64_t arg;
	uint64_t gen;	  /* WAKE, RESUME: the park generation */
	const char *what; /* PARK: reason; IO_*: the operation (static) */
	/* PARK: the wait object (core/inspect.h), its kind, and the id it
	 * names (a Lock's owner, the task or group waited for; 0: none). */
	const void *obj;
	uint64_t ref;
	unsigned on;
	int rc; /* END, IO_DONE */
	enum trace_kind kind;
	char name[WEFT__TASK_NAME_MAX]; /* SPAWN, SLICE */
};

/* One thread's buffer (the foreign one: every foreign thread's). */
struct weft__trace_buf {
	struct weft__trace *tr;
	unsigned index; /* the track (tid) */
	/* The middle of every event's head: ","pid":P,"tid":T,"ts":" */
	char head[64];
	size_t head_len;
	/* Taken by the writer for each event, and by the exit flush. */
	weft__spin_t lock;
	unsigned n;		/* events in recs, under lock */
	struct trace_rec *recs; /* trace_buffer of them */
	char *text;		/* TRACE_TEXT bytes, under lock */
	/* The open slice: the task running on this worker since slice_t0
	 * (NULL between tasks).  Workers' buffers, owner only. */
	struct weft_task *slice;
	uint64_t slice_t0;
	/* Apart from the neighbours' locks (the array is one allocation). */
	char pad[WEFT__FALSE_SHARING];
};

struct weft__trace {
	struct weft_runtime *rt;
	bool lines;	/* trace_events: stderr lines */
	FILE *file;	/* trace_path: NULL if not asked for */
	unsigned cap;	/* events per buffer */
	unsigned nbufs; /* nworkers + 2 */
	uint64_t t0;	/* CLOCK_MONOTONIC ns at creation */
	pid_t pid;	/* the process that opened the file */
	/* Orders the writes to file, and guards written and closed. */
	pthread_mutex_t file_lock;
	uint64_t written; /* events written so far */
	bool closed;	  /* the file's end is written */
	/* Events lost (relaxed: a counter read after the writers stopped,
	 * or by the exit flush under every buffer's lock). */
	atomic_ullong drops;
	struct weft__trace_buf *bufs;
	/* The process's live traces, under trace_list_lock. */
	struct weft__trace *next, **prevp;
};

/* Each buffer's formatted text (written a piece of this size at a time,
 * bypassing stdio's buffer), and the room one event may take in it. */
#define TRACE_TEXT ((size_t)64 * 1024)
#define TRACE_EVENT_MAX ((size_t)1024)

/* {======================================================= process list */

atomic_int weft__trace_live;

static pthread_mutex_t trace_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__trace *trace_list;
static pthread_once_t trace_atexit_once = PTHREAD_ONCE_INIT;

static void trace_finish(struct weft__trace *tr);

/* Runs at exit: the traces of runtimes nobody destroyed are completed,
 * so that the file opens.  A forked child leaves its parent's files. */
static void trace_at_exit(void)
{
	pthread_mutex_lock(&trace_list_lock);
	for (struct weft__trace *tr = trace_list; tr; tr = tr->next)
		if (tr->pid == getpid())
			trace_finish(tr);
	pthread_mutex_unlock(&trace_list_lock);
}

static void trace_atexit_register(void)
{
	atexit(trace_at_exit);
}

/* }======================================================= */

/* {======================================================= writing */

static uint64_t trace_now(const struct weft__trace *tr)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return ns - tr->t0;
}

/* Appends s to out (size n, at *len) as the inside of a JSON string:
 * quotes, backslashes and control characters escaped, and any byte that
 * starts no well-formed UTF-8 sequence replaced by U+FFFD, as in the
 * dump's JSON (a name cut at its maximum length may end inside a
 * character). */
static void trace_json_str(char *out, size_t n, size_t *len, const char *s)
{
	size_t l = *len;
	const unsigned char *p = (const unsigned char *)s;
	while (*p && l + 8 < n) {
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			out[l++] = '\\';
			out[l++] = (char)c;
			p++;
		} else if (c < 0x20) {
			l += (size_t)snprintf(out + l, n - l, "\\u%04x", c);
			p++;
		} else {
			size_t k = weft__utf8_len(p);
			if (k == 0) {
				memcpy(out + l, "\\ufffd", 6);
				l += 6;
				p++;
			} else {
				memcpy(out + l, p, k);
				l += k;
				p += k;
			}
		}
	}
	out[l] = '\0';
	*len = l;
}

/* snprintf appending at *len, clamped to n (the stderr lines). */
static void trace_cat(char *out, size_t n, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void trace_cat(char *out, size_t n, size_t *len, const char *fmt, ...)
{
	if (*len >= n - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(out + *len, n - *len, fmt, ap);
	va_end(ap);
	if (k > 0)
		*len = *len + (size_t)k < n - 1 ? *len + (size_t)k : n - 1;
}

/* The file's writers: plain appends, no format string to interpret (a
 * flush formats thousands of events; vsnprintf made it cost about 2 us
 * an event).  Each keeps out NUL-terminated and never passes n. */
static void trace_mem(char *out, size_t n, size_t *len, const char *s, size_t k)
{
	if (k >= n - *len)
		return; /* never: a line has room for the longest event */
	memcpy(out + *len, s, k);
	*len += k;
	out[*len] = '\0';
}

static void trace_lit(char *out, size_t n, size_t *len, const char *s)
{
	trace_mem(out, n, len, s, strlen(s));
}

/* A string literal: its length is known here. */
#define TRACE_LIT(out, n, len, s)                                              \
	trace_mem((out), (n), (len), "" s, sizeof(s) - 1)

/* Two digits at a time: a flush formats several numbers per event, and
 * this was the largest cost of a traced run (callgrind). */
static const char trace_digits2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233"
	"34353637383940414243444546474849505152535455565758596061626364656667"
	"6869707172737475767778798081828384858687888990919293949596979899";

static void trace_u64(char *out, size_t n, size_t *len, uint64_t v)
{
	char d[20];
	size_t k = sizeof d;
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);
		v /= 100;
		d[--k] = trace_digits2[2 * r + 1];
		d[--k] = trace_digits2[2 * r];
	}
	if (v >= 10) {
		d[--k] = trace_digits2[2 * v + 1];
		d[--k] = trace_digits2[2 * v];
	} else {
		d[--k] = (char)('0' + v);
	}
	size_t m = sizeof d - k;
	if (*len + m >= n)
		return;
	memcpy(out + *len, d + k, m);
	*len += m;
	out[*len] = '\0';
}

/* v as "0x" and lowercase hex digits, as %p prints an address (the
 * writers here avoid the printf family: see trace_mem). */
static void trace_hex(char *out, size_t n, size_t *len, uintptr_t v)
{
	char d[2 + 2 * sizeof v];
	size_t k = sizeof d;
	do {
		d[--k] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	d[--k] = 'x';
	d[--k] = '0';
	trace_mem(out, n, len, d + k, sizeof d - k);
}

static void trace_i64(char *out, size_t n, size_t *len, int64_t v)
{
	if (v < 0) {
		TRACE_LIT(out, n, len, "-");
		trace_u64(out, n, len, (uint64_t)0 - (uint64_t)v);
	} else {
		trace_u64(out, n, len, (uint64_t)v);
	}
}

/* ns as microseconds with three decimals. */
static void trace_us(char *out, size_t n, size_t *len, uint64_t ns)
{
	trace_u64(out, n, len, ns / 1000);
	unsigned f = (unsigned)(ns % 1000);
	char d[5] = { '.', (char)('0' + f / 100), (char)('0' + f / 10 % 10),
		(char)('0' + f % 10), '\0' };
	trace_mem(out, n, len, d, 4);
}

/* The common head of an event: phase, name, track and time. */
static void trace_head(char *out, size_t n, size_t *len,
	const struct weft__trace_buf *b, const char *ph, const char *name,
	uint64_t ts)
{
	TRACE_LIT(out, n, len, ",\n{\"ph\":\"");
	trace_lit(out, n, len, ph);
	TRACE_LIT(out, n, len, "\",\"name\":\"");
	trace_json_str(out, n, len, name);
	trace_mem(out, n, len, b->head, b->head_len);
	trace_us(out, n, len, ts);
}

static void trace_by(char *out, size_t n, size_t *len, uint64_t by)
{
	if (by == TRACE_BY_IO)
		TRACE_LIT(out, n, len, "\"io\"");
	else if (by == TRACE_BY_FOREIGN)
		TRACE_LIT(out, n, len, "\"foreign\"");
	else if (by == TRACE_BY_SCHED)
		TRACE_LIT(out, n, len, "\"sched\"");
	else
		trace_u64(out, n, len, by);
}

/* The id of a wake's flow: "<task>.<park generation>". */
static void trace_flow_id(char *out, size_t n, size_t *len,
	const struct trace_rec *r)
{
	TRACE_LIT(out, n, len, ",\"cat\":\"wake\",\"id\":\"");
	trace_u64(out, n, len, r->id);
	TRACE_LIT(out, n, len, ".");
	trace_u64(out, n, len, r->gen);
	TRACE_LIT(out, n, len, "\"}");
}

/* ,"s":"t","args":{"task":<id> */
static void trace_args(char *out, size_t n, size_t *len, uint64_t id)
{
	TRACE_LIT(out, n, len, ",\"s\":\"t\",\"args\":{\"task\":");
	trace_u64(out, n, len, id);
}

/* Formats r (recorded on track tid) as one or two JSON events. */
static size_t trace_format(const struct weft__trace_buf *b,
	const struct trace_rec *r, char *out, size_t n)
{
	size_t len = 0;
	out[0] = '\0';
	switch (r->kind) {
	case TRACE_SLICE:
		trace_head(out, n, &len, b, "X", r->name, r->ts);
		TRACE_LIT(out, n, &len, ",\"dur\":");
		trace_us(out, n, &len, r->dur);
		TRACE_LIT(out, n, &len, ",\"args\":{\"task\":");
		trace_u64(out, n, &len, r->id);
		TRACE_LIT(out, n, &len, "}}");
		break;
	case TRACE_SPAWN:
		trace_head(out, n, &len, b, "i", "spawn", r->ts);
		trace_args(out, n, &len, r->id);
		TRACE_LIT(out, n, &len, ",\"parent\":");
		trace_u64(out, n, &len, r->arg);
		TRACE_LIT(out, n, &len, ",\"name\":\"");
		trace_json_str(out, n, &len, r->name);
		TRACE_LIT(out, n, &len, "\"}}");
		break;
	case TRACE_PARK:
		trace_head(out, n, &len, b, "i", "park", r->ts);
		trace_args(out, n, &len, r->id);
		TRACE_LIT(out, n, &len, ",\"reason\":\"");
		trace_json_str(out, n, &len, r->what ? r->what : "park");
		TRACE_LIT(out, n, &len, "\"");
		if (r->on != WEFT__WAIT_NONE) {
			TRACE_LIT(out, n, &len, ",\"on\":\"");
			trace_json_str(out, n, &len,
				weft__wait_kind_name(r->on));
			TRACE_LIT(out, n, &len, "\",\"object\":\"");
			trace_hex(out, n, &len, (uintptr_t)r->obj);
			TRACE_LIT(out, n, &len, "\"");
			if (r->ref != 0) {
				TRACE_LIT(out, n, &len, ",\"ref\":");
				trace_u64(out, n, &len, r->ref);
			}
		}
		TRACE_LIT(out, n, &len, "}}");
		break;
	case TRACE_WAKE:
		trace_head(out, n, &len, b, "i", "wake", r->ts);
		trace_args(out, n, &len, r->id);
		TRACE_LIT(out, n, &len, ",\"by\":");
		trace_by(out, n, &len, r->arg);
		TRACE_LIT(out, n, &len, "}}");
		/* The flow's start, bound to the waker's running slice. */
		trace_head(out, n, &len, b, "s", "wake", r->ts);
		trace_flow_id(out, n, &len, r);
		break;
	case TRACE_RESUME:
		trace_head(out, n, &len, b, "f", "wake", r->ts);
		TRACE_LIT(out, n, &len, ",\"bp\":\"e\"");
		trace_flow_id(out, n, &len, r);
		break;
	case TRACE_STEAL:
		trace_head(out, n, &len, b, "i", "steal", r->ts);
		trace_args(out, n, &len, r->id);
		TRACE_LIT(out, n, &len, ",\"victim\":\"weft-w");
		trace_u64(out, n, &len, r->arg);
		TRACE_LIT(out, n, &len, "\"}}");
		break;
	case TRACE_END:
		trace_head(out, n, &len, b, "i", "end", r->ts);
		trace_args(out, n, &len, r->id);
		TRACE_LIT(out, n, &len, ",\"rc\":");
		trace_i64(out, n, &len, r->rc);
		TRACE_LIT(out, n, &len, ",\"error\":\"");
		trace_json_str(out, n, &len,
			r->rc < 0 ? weft_strerror(r->rc) : "");
		TRACE_LIT(out, n, &len, "\"}}");
		break;
	case TRACE_IO_START:
	case TRACE_IO_DONE: {
		bool done = r->kind == TRACE_IO_DONE;
		trace_head(out, n, &len, b, "i", done ? "io done" : "io start",
			r->ts);
		trace_args(out, n, &len, r->id);
		TRACE_LIT(out, n, &len, ",\"op\":\"");
		trace_json_str(out, n, &len, r->what ? r->what : "io");
		TRACE_LIT(out, n, &len, "\"");
		if (done) {
			TRACE_LIT(out, n, &len, ",\"result\":");
			trace_i64(out, n, &len, r->rc);
		}
		TRACE_LIT(out, n, &len, "}}");
		break;
	}
	}
	return len;
}

/* Writes b's events to the file and empties b.  Under b->lock. */
/* Writes text (len bytes, `events` events) to the file. */
static void trace_write(struct weft__trace *tr, const char *text, size_t len,
	unsigned events)
{
	pthread_mutex_lock(&tr->file_lock);
	if (tr->closed) {
		/* relaxed: a counter (see drops). */
		atomic_fetch_add_explicit(&tr->drops, events,
			memory_order_relaxed);
	} else if (fwrite(text, 1, len, tr->file) != len) {
		atomic_fetch_add_explicit(&tr->drops, events,
			memory_order_relaxed);
		clearerr(tr->file);
	} else {
		tr->written += events;
	}
	pthread_mutex_unlock(&tr->file_lock);
}

/* Formats b's events into b->text, outside the file's mutex (workers
 * whose buffers fill at once format in parallel), and writes each
 * TRACE_TEXT piece under it; empties b.  Under b->lock. */
static void trace_flush_buf(struct weft__trace *tr, struct weft__trace_buf *b)
{
	size_t len = 0;
	unsigned events = 0;
	for (unsigned i = 0; i < b->n; i++) {
		if (TRACE_TEXT - len < TRACE_EVENT_MAX) {
			trace_write(tr, b->text, len, events);
			len = 0;
			events = 0;
		}
		len += trace_format(b, &b->recs[i], b->text + len,
			TRACE_EVENT_MAX);
		events++;
	}
	if (events)
		trace_write(tr, b->text, len, events);
	b->n = 0;
}

/* The calling thread's buffer in tr, and its label for stderr lines
 * ("w3", "io", "ext").  Never inlined into a fiber's code: the TLS reads
 * stay in this frame, which does not switch. */
static __thread struct weft__trace *trace_io_thread;

/* "w<index>" by hand: snprintf cost more than the event. */
static void trace_label(char label[12], unsigned index)
{
	char d[10];
	size_t k = 0, l = 0;
	do {
		d[k++] = (char)('0' + index % 10);
		index /= 10;
	} while (index);
	label[l++] = 'w';
	while (k)
		label[l++] = d[--k];
	label[l] = '\0';
}

static __attribute__((noinline)) struct weft__trace_buf *
trace_buf_here(struct weft__trace *tr, char label[12])
{
	weft__worker_t *w = weft__sched_current();
	unsigned i;
	if (w != NULL && w->rt == tr->rt) {
		i = w->index;
		trace_label(label, i);
	} else if (trace_io_thread == tr) {
		i = tr->nbufs - 2;
		memcpy(label, "io", 3);
	} else {
		i = tr->nbufs - 1;
		memcpy(label, "ext", 4);
	}
	return &tr->bufs[i];
}

/* A slot for one event in b, its lock taken (trace_put releases it). */
static struct trace_rec *trace_get(struct weft__trace_buf *b,
	enum trace_kind kind)
{
	weft__spin_lock(&b->lock);
	if (b->n == b->tr->cap)
		trace_flush_buf(b->tr, b);
	struct trace_rec *r = &b->recs[b->n];
	r->kind = kind;
	r->ts = trace_now(b->tr);
	return r;
}

static void trace_put(struct weft__trace_buf *b)
{
	b->n++;
	weft__spin_unlock(&b->lock);
}

/* One stderr line, written at once. */
static void trace_line(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void trace_line(const char *fmt, ...)
{
	char line[256];
	size_t len = 0;
	trace_cat(line, sizeof line, &len, "weft-trace: ");
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(line + len, sizeof line - len - 1, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	len += (size_t)k < sizeof line - len - 1 ? (size_t)k
						 : sizeof line - len - 2;
	line[len++] = '\n';
	ssize_t rc = write(STDERR_FILENO, line, len);
	(void)rc; /* best effort: nothing to do about stderr */
}

/* t's name for a stderr line: control characters become '?'. */
static void trace_line_name(const struct weft_task *t, char *out)
{
	weft__task_name_load(t, out);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
}

/* }======================================================= */

/* {======================================================= life */

/* Writes the head of the file: the process and the track names. */
static void trace_write_head(struct weft__trace *tr)
{
	fprintf(tr->file,
		"{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\","
		"\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"weft\"}}",
		(int)tr->pid);
	for (unsigned i = 0; i < tr->nbufs; i++) {
		char name[24];
		if (i < tr->nbufs - 2)
			snprintf(name, sizeof name, "weft-w%u", i);
		else
			snprintf(name, sizeof name, "%s",
				i == tr->nbufs - 2 ? "weft-io" : "foreign");
		fprintf(tr->file,
			",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,"
			"\"tid\":%u,\"args\":{\"name\":\"%s\"}}",
			(int)tr->pid, i, name);
		fprintf(tr->file,
			",\n{\"ph\":\"M\",\"name\":\"thread_sort_index\","
			"\"pid\":%d,\"tid\":%u,\"args\":{\"sort_index\":%u}}",
			(int)tr->pid, i, i);
	}
}

/* Every buffer written out, then the file's end, and the file closed;
 * later events are dropped.  Under trace_list_lock. */
static void trace_finish(struct weft__trace *tr)
{
	if (tr->file == NULL)
		return;
	for (unsigned i = 0; i < tr->nbufs; i++) {
		struct weft__trace_buf *b = &tr->bufs[i];
		weft__spin_lock(&b->lock);
		trace_flush_buf(tr, b);
		weft__spin_unlock(&b->lock);
	}
	pthread_mutex_lock(&tr->file_lock);
	if (!tr->closed) {
		/* relaxed: every writer's events were counted under a
		 * buffer lock this thread took since. */
		unsigned long long drops = atomic_load_explicit(&tr->drops,
			memory_order_relaxed);
		fprintf(tr->file,
			",\n{\"ph\":\"M\",\"name\":\"weft_trace\",\"pid\":%d,"
			"\"tid\":0,\"args\":{\"events\":%" PRIu64
			",\"dropped_events\":%llu}}\n],\n"
			"\"displayTimeUnit\":\"ms\",\n\"otherData\":{"
			"\"events\":\"%" PRIu64
			"\",\"dropped_events\":\"%llu\","
			"\"clock\":\"CLOCK_MONOTONIC, microseconds since the "
			"runtime was created\"}}\n",
			(int)tr->pid, tr->written, drops, tr->written, drops);
		fclose(tr->file);
		tr->closed = true;
	}
	pthread_mutex_unlock(&tr->file_lock);
}

/* Frees tr and its buffers (the file is closed or was never open). */
static void trace_free(struct weft__trace *tr)
{
	if (tr->bufs)
		for (unsigned i = 0; i < tr->nbufs; i++)
			weft__free(tr->bufs[i].recs);
	if (tr->bufs)
		for (unsigned i = 0; i < tr->nbufs; i++)
			weft__free(tr->bufs[i].text);
	weft__free(tr->bufs);
	weft__free(tr);
}

int weft__trace_create(struct weft_runtime *rt)
{
	const weft_config_t *cfg = &rt->cfg;
	rt->trace = NULL;
	if (cfg->trace_path == NULL && !cfg->trace_events)
		return 0;
	struct weft__trace *tr = weft__calloc(1, sizeof *tr);
	if (tr == NULL)
		return -ENOMEM;
	tr->rt = rt;
	tr->lines = cfg->trace_events != 0;
	tr->cap = cfg->trace_buffer;
	tr->nbufs = rt->nworkers + 2;
	tr->pid = getpid();
	tr->t0 = trace_now(tr); /* tr->t0 is 0 here: the absolute time */
	atomic_init(&tr->drops, 0);
	tr->bufs = weft__calloc(tr->nbufs, sizeof *tr->bufs);
	if (tr->bufs == NULL) {
		trace_free(tr);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < tr->nbufs; i++) {
		struct weft__trace_buf *b = &tr->bufs[i];
		b->tr = tr;
		b->index = i;
		int k = snprintf(b->head, sizeof b->head,
			"\",\"pid\":%d,\"tid\":%u,\"ts\":", (int)tr->pid, i);
		b->head_len = (size_t)k;
		weft__spin_init(&b->lock);
		if (cfg->trace_path == NULL)
			continue;
		b->recs = weft__alloc((size_t)tr->cap * sizeof *b->recs);
		b->text = weft__alloc(TRACE_TEXT);
		if (b->recs == NULL || b->text == NULL) {
			trace_free(tr);
			return -ENOMEM;
		}
	}
	if (cfg->trace_path != NULL) {
		/* Truncated: a trace is one run. */
		tr->file = fopen(cfg->trace_path, "we");
		if (tr->file == NULL) {
			int rc = errno == ENOMEM ? -ENOMEM : -errno;
			trace_free(tr);
			return rc;
		}
		pthread_mutex_init(&tr->file_lock, NULL);
		trace_write_head(tr);
		pthread_once(&trace_atexit_once, trace_atexit_register);
		pthread_mutex_lock(&trace_list_lock);
		tr->next = trace_list;
		if (trace_list)
			trace_list->prevp = &tr->next;
		tr->prevp = &trace_list;
		trace_list = tr;
		pthread_mutex_unlock(&trace_list_lock);
	}
	rt->trace = tr;
	for (unsigned i = 0; i < rt->nworkers; i++)
		rt->workers[i].trace = &tr->bufs[i];
	/* relaxed: a hint (see weft__trace_live). */
	atomic_fetch_add_explicit(&weft__trace_live, 1, memory_order_relaxed);
	return 0;
}

void weft__trace_destroy(struct weft_runtime *rt)
{
	struct weft__trace *tr = rt->trace;
	if (tr == NULL)
		return;
	if (tr->file != NULL) {
		pthread_mutex_lock(&trace_list_lock);
		*tr->prevp = tr->next;
		if (tr->next)
			tr->next->prevp = tr->prevp;
		trace_finish(tr);
		pthread_mutex_unlock(&trace_list_lock);
		pthread_mutex_destroy(&tr->file_lock);
	}
	for (unsigned i = 0; i < rt->nworkers; i++)
		rt->workers[i].trace = NULL;
	rt->trace = NULL;
	atomic_fetch_sub_explicit(&weft__trace_live, 1, memory_order_relaxed);
	trace_free(tr);
}

void weft__trace_bind_io(struct weft_runtime *rt)
{
	trace_io_thread = rt->trace;
}

/* }======================================================= */

/* {======================================================= hooks */

/* Closes w's open slice, if any, at now. */
static void trace_slice_close(struct weft__trace_buf *b)
{
	struct weft_task *t = b->slice;
	if (t == NULL)
		return;
	b->slice = NULL;
	struct trace_rec *r = trace_get(b, TRACE_SLICE);
	r->dur = r->ts - b->slice_t0;
	r->ts = b->slice_t0;
	r->id = t->id;
	weft__task_name_load(t, r->name);
	trace_put(b);
}

/* Opens a slice for t on b at now.  At a switch-in (flow), a task
 * resuming from a park ends its wake's flow here: its insp_wait is still
 * the park's reason, which is NULL at any other switch-in (a first run,
 * after a yield).  Not for a joiner going on after a child it ran
 * inline: its insp_wait says "join" then, but it did not park. */
static void trace_slice_open(struct weft__trace_buf *b, struct weft_task *t,
	bool flow)
{
	b->slice = t;
	b->slice_t0 = trace_now(b->tr);
	/* relaxed: t's own fields, written before its park was published
	 * (the switch-in is ordered after that by the run queues). */
	if (!flow ||
		atomic_load_explicit(&t->insp_wait, memory_order_relaxed) ==
			NULL)
		return;
	struct trace_rec *r = trace_get(b, TRACE_RESUME);
	r->ts = b->slice_t0;
	r->id = t->id;
	r->gen = atomic_load_explicit(&t->park, memory_order_relaxed) >>
		WEFT__PARK_GEN_SHIFT;
	trace_put(b);
}

void weft__trace_spawn(struct weft_runtime *rt, weft__worker_t *w,
	struct weft_task *t)
{
	struct weft__trace *tr = rt->trace;
	if (tr->file == NULL)
		return;
	char label[12];
	struct weft__trace_buf *b = trace_buf_here(tr, label);
	uint64_t parent = 0;
	if (w != NULL && w->rt == rt && w->current != NULL)
		parent = w->current->id;
	struct trace_rec *r = trace_get(b, TRACE_SPAWN);
	r->id = t->id;
	r->arg = parent;
	weft__task_name_load(t, r->name);
	trace_put(b);
}

void weft__trace_start(struct weft_task *t)
{
	struct weft__trace *tr = t->rt->trace;
	char label[12], name[WEFT__TASK_NAME_MAX];
	struct weft__trace_buf *b = trace_buf_here(tr, label);
	/* A child run inline (on its joining parent's stack, without a
	 * switch): the parent's slice pauses, the child's begins.  The
	 * hooks of sched.c's inline runs would cost fork-join code two
	 * more branches per task (B1). */
	if (tr->file != NULL && b->slice != t && label[0] == 'w') {
		trace_slice_close(b);
		trace_slice_open(b, t, false);
	}
	if (!tr->lines)
		return;
	trace_line_name(t, name);
	trace_line("%s start %" PRIu64 " %s", label, t->id, name);
}

/* self parks: its reason is its insp_wait, stored just before. */
static void trace_park(weft__worker_t *w, struct weft__trace_buf *b,
	struct weft_task *self)
{
	struct weft__trace *tr = b->tr;
	/* relaxed: our own store, just made (weft__task_park_commit_on). */
	const char *what = atomic_load_explicit(&self->insp_wait,
		memory_order_relaxed);
	if (what == NULL)
		what = "park";
	if (tr->file != NULL) {
		/* relaxed: our own stores, made with insp_wait.  The task is
		 * still switching out (its park is not published), so it is
		 * inside its wait and the object is alive (core/inspect.h):
		 * the describer may read it, as the dump does.  Before
		 * trace_get: a describer takes the object's spin lock, and a
		 * wake traced under that lock takes the buffer's. */
		unsigned kind =
			(unsigned)(atomic_load_explicit(&self->insp_since,
					   memory_order_relaxed) &
				(((uint64_t)1 << WEFT__WAIT_KIND_BITS) - 1));
		const void *on = atomic_load_explicit(&self->insp_on,
			memory_order_relaxed);
		struct weft__wait_desc d;
		memset(&d, 0, sizeof d);
		weft__inspect_wait_describe(kind, on, &d);
		struct trace_rec *r = trace_get(b, TRACE_PARK);
		r->id = self->id;
		r->what = what;
		r->on = on != NULL ? kind : WEFT__WAIT_NONE;
		r->obj = d.obj != NULL ? d.obj : on;
		r->ref = d.ref_id;
		trace_put(b);
	}
	if (tr->lines)
		trace_line("w%u park %" PRIu64 " %s", w->index, self->id, what);
}

/* The task that ran on w (post_task) left it for w's post: its slice
 * ends, and a park is recorded with its reason. */
static void trace_leave(weft__worker_t *w, struct weft__trace_buf *b)
{
	if (b->tr->file != NULL)
		trace_slice_close(b);
	if (w->post == WEFT__POST_PARK)
		trace_park(w, b, w->post_task);
}

void weft__trace_switch_in(weft__worker_t *w, struct weft_task *t)
{
	struct weft__trace_buf *b = w->trace;
	/* From a fiber (a direct switch), which leaves first; from the
	 * loop, post is NONE and no slice is open. */
	trace_leave(w, b);
	if (b->tr->file != NULL)
		trace_slice_open(b, t, true);
}

void weft__trace_switch_out(weft__worker_t *w)
{
	trace_leave(w, w->trace);
}

void weft__trace_steal(weft__worker_t *w, struct weft_task *t, unsigned victim)
{
	struct weft__trace_buf *b = w->trace;
	if (b->tr->file == NULL)
		return;
	struct trace_rec *r = trace_get(b, TRACE_STEAL);
	r->id = t->id;
	r->arg = victim;
	trace_put(b);
}

void weft__trace_wake(struct weft_task *t, uint64_t gen)
{
	/* After the claim the task may already run on, end and have its
	 * record reused by its next life: only its atomic fields may be
	 * read (insp_id: its id, or 0 or the next life's in that rare
	 * window), and the trace is found from the waker's side: its
	 * worker's, or the I/O thread's.  A plain thread's wake is not
	 * recorded: it has no runtime of its own to find the trace by. */
	weft__worker_t *w = weft__sched_current();
	struct weft__trace_buf *b;
	char label[12];
	uint64_t by;
	if (w != NULL) {
		b = w->trace;
		if (b == NULL)
			return;
		trace_label(label, w->index);
		by = w->current ? w->current->id : TRACE_BY_SCHED;
	} else if (trace_io_thread != NULL) {
		b = &trace_io_thread->bufs[trace_io_thread->nbufs - 2];
		memcpy(label, "io", 3);
		by = TRACE_BY_IO;
	} else {
		return;
	}
	struct weft__trace *tr = b->tr;
	/* relaxed: see above; a snapshot's read (inspect.c) is the same. */
	uint64_t id = atomic_load_explicit(&t->insp_id, memory_order_relaxed);
	if (id == 0)
		return;
	if (tr->file != NULL) {
		struct trace_rec *r = trace_get(b, TRACE_WAKE);
		r->id = id;
		r->arg = by;
		r->gen = gen;
		trace_put(b);
	}
	if (!tr->lines)
		return;
	if (by == TRACE_BY_IO || by == TRACE_BY_SCHED)
		trace_line("%s wake %" PRIu64 " by %s", label, id,
			by == TRACE_BY_IO ? "io" : "sched");
	else
		trace_line("%s wake %" PRIu64 " by %" PRIu64, label, id, by);
}

void weft__trace_end(struct weft_task *t, int rc)
{
	struct weft__trace *tr = t->rt->trace;
	char label[12];
	struct weft__trace_buf *b = trace_buf_here(tr, label);
	if (tr->file != NULL) {
		struct trace_rec *r = trace_get(b, TRACE_END);
		r->id = t->id;
		r->rc = rc;
		trace_put(b);
		/* A child run inline returns into its parent, the owner of
		 * the group it joins (weft__sched_help_join), here: wherever
		 * the child moved while parked, the parent's stack came with
		 * it. */
		if (t->stack_borrowed && t->group != NULL && label[0] == 'w') {
			trace_slice_close(b);
			trace_slice_open(b, t->group->owner, false);
		}
	}
	if (tr->lines)
		trace_line("%s end %" PRIu64 " %d", label, t->id, rc);
}

void weft__trace_io(struct weft_runtime *rt, const char *what, uint64_t task,
	bool done, int result)
{
	struct weft__trace *tr = rt->trace;
	if (tr->file == NULL)
		return;
	char label[12];
	struct weft__trace_buf *b = trace_buf_here(tr, label);
	struct trace_rec *r = trace_get(b,
		done ? TRACE_IO_DONE : TRACE_IO_START);
	r->id = task;
	r->what = what;
	r->rc = result;
	trace_put(b);
}

/* }======================================================= */
