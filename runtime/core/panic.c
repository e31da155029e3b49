/* Panics: weft_panic, weft_set_panic_hook (docs/semantics.md rule 45).
 *
 * A panic ends the calling task where it stands, as a failure with code
 * WEFT_EPANIC whose message carries a backtrace.  It reuses the end every
 * task goes through: it stores the message, runs weft__task_finish with
 * WEFT_EPANIC (which reaps the groups and scopes the task left open, and
 * reports the failure to its group or its start() caller), and then leaves
 * without returning through the task's frames (weft__sched_exit_abandoned:
 * a fiber's last switch, or for a child run inline the jump back to its
 * parent's frame).  Nothing below weft_panic ever runs again; what those
 * frames own leaks.  This is the departure from unwinding languages: C has
 * no destructors to run, and running none is the one behaviour that
 * cannot go further wrong in a task whose state is already broken.
 *
 * Order inside weft_panic: format, capture the backtrace (from this frame,
 * so the frames are the task's), symbolize it (base/backtrace.c: with
 * libdw on a helper thread with a large stack, which the worker waits
 * for: a few milliseconds on a failure path, the one place a worker
 * blocks outside its idle wait), call the hook, then end.  The task is marked
 * `panicked` before the hook runs, so a hook that panics aborts instead of
 * recursing, and so that the end does not take the groups the panic left
 * open for a missing join (group.c).  A task that is already ending
 * (`ending`: a done callback or a key destructor running as the task)
 * cannot end twice: a panic there aborts the process, as one outside any
 * task does.
 *
 * Process-wide state: the hook (function and argument) under a mutex, the
 * one piece of configuration weft keeps outside its runtimes (panics
 * happen on plain threads too); listed in ARCHITECTURE.md.  A panic copies
 * the pair under the lock and calls it without holding it.
 *
 * Thread: any (see weft/panic.h for what happens outside a task). */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/diag.h"
#include "core/sched.h"
#include "core/task.h"
#include "weft/panic.h"

/* The message before the backtrace, as weft_fail's. */
#define PANIC_MSG_MAX 256
/* Frames of the backtrace, and the bytes of its text. */
#define PANIC_FRAMES 16
#define PANIC_BT_MAX 4096
/* Without memory for PANIC_BT_MAX: a short backtrace in the frame. */
#define PANIC_BT_SMALL 512

static pthread_mutex_t panic_hook_lock = PTHREAD_MUTEX_INITIALIZER;
static weft_panic_hook_fn panic_hook_fn; /* under panic_hook_lock */
static void *panic_hook_arg;		 /* under panic_hook_lock */

/* Panics in progress on this thread outside any task (a hook that panics
 * must not recurse).  A thread-local is safe here: that path never
 * switches fibers. */
static __thread int panic_plain_depth;

void weft_set_panic_hook(weft_panic_hook_fn fn, void *arg,
	weft_panic_hook_fn *prev_fn, void **prev_arg)
{
	pthread_mutex_lock(&panic_hook_lock);
	if (prev_fn)
		*prev_fn = panic_hook_fn;
	if (prev_arg)
		*prev_arg = panic_hook_arg;
	panic_hook_fn = fn;
	panic_hook_arg = fn ? arg : NULL;
	pthread_mutex_unlock(&panic_hook_lock);
}

static void panic_call_hook(const weft_panic_info_t *info)
{
	pthread_mutex_lock(&panic_hook_lock);
	weft_panic_hook_fn fn = panic_hook_fn;
	void *arg = panic_hook_arg;
	pthread_mutex_unlock(&panic_hook_lock);
	if (fn)
		fn(info, arg);
}

/* The process cannot go on: report on stderr and abort. */
__attribute__((noreturn)) static void panic_abort(const struct weft_task *t,
	const char *why, const char *msg, const char *bt)
{
	if (t)
		weft__diag("panic in task '%s' (#%llu)%s: %s", t->name,
			(unsigned long long)t->id, why, msg);
	else
		weft__diag("panic: %s", msg);
	weft__diag_raw(bt);
	abort();
}

void weft_panic(const char *fmt, ...)
{
	char msg[PANIC_MSG_MAX] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	}
	void *pcs[PANIC_FRAMES];
	int n = weft__backtrace_capture(pcs, PANIC_FRAMES, 1);
	struct weft_task *t = weft__task_current();
	/* The text on the heap: a fiber's stack may be small. */
	char small[PANIC_BT_SMALL];
	char *heap = weft__alloc(PANIC_BT_MAX);
	char *bt = heap ? heap : small;
	size_t bt_len = weft__backtrace_format(pcs, n, "  ", bt,
		heap ? PANIC_BT_MAX : sizeof small);
	weft_panic_info_t info = {
		.task_id = t ? t->id : 0,
		.task_name = t ? t->name : "",
		.message = msg,
		.backtrace = bt,
	};
	bool again = t ? t->panicked : panic_plain_depth > 0;
	if (!again) {
		if (t)
			t->panicked = true;
		else
			panic_plain_depth++;
		panic_call_hook(&info);
	}
	if (t == NULL)
		panic_abort(NULL, "", msg, bt);
	if (again)
		panic_abort(t, " while it was panicking (from the panic hook?)",
			msg, bt);
	if (t->ending)
		panic_abort(t,
			" while it was ending (a done callback or a context "
			"key's destructor)",
			msg, bt);
	/* The failure's message: the text, a newline, the backtrace. */
	size_t len = strlen(msg);
	char *m = weft__alloc(len + 1 + bt_len + 1);
	if (m) {
		memcpy(m, msg, len);
		m[len] = '\n';
		memcpy(m + len + 1, bt, bt_len + 1);
		weft__free(t->fail_msg);
		t->fail_msg = m;
	} else {
		/* The text alone, or the code alone: the failure still
		 * reaches the group. */
		weft_fail(WEFT_EPANIC, "%s", msg);
	}
	weft__free(heap);
	weft__task_finish(t, WEFT_EPANIC);
	weft__sched_exit_abandoned(t);
}
