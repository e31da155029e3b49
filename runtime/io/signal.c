#define _GNU_SOURCE /* sigabbrev_np */
/* Signal watchers (include/weft/signal.h).
 *
 * Problem: a signal arrives on whatever application thread the kernel
 * picks, in a handler that may do almost nothing; a task wants to wait
 * for it like for any other event, with cancellation and deadlines, and
 * without losing a delivery that comes while nobody waits.
 *
 * Approach: one uv_signal_t per watched signal on the I/O thread (libuv's
 * process-wide handler writes to the loop's pipe; the I/O thread runs
 * the callback), and everything else on the I/O thread too:
 *   - each slot counts the deliveries nobody has taken yet (`pending`);
 *   - weft_signal_wait is an I/O operation (ioop.h) whose `start` takes a
 *     pending delivery at once or queues the operation in the watcher's
 *     FIFO of waits; a delivery completes the oldest queued wait;
 *   - `cancel` unlinks a queued wait and completes it with -ECANCELED.
 *     Delivery, start and cancel all run on the I/O thread, so a wait is
 *     either given a delivery or unlinked, never both: a cancelled wait
 *     took nothing (docs/semantics.md rule 42).
 * Signals are rare, so one round trip to the I/O thread per wait costs
 * nothing that matters, and no state is shared with workers but `refs`.
 *
 * Dispositions: libuv installs its handler at the first uv_signal_start
 * of a signal in the process and, when its last handle of that signal
 * stops, sets SIG_DFL, not what was there before.  weft keeps, per
 * signal and for the whole process (dispositions are process-wide, like
 * the SIGSEGV handler of stack.c), the number of open weft slots and the
 * disposition seen when the first one started; when the last one stops
 * and libuv has reset the signal to SIG_DFL (it has not if a libuv loop
 * that weft does not own still watches it), the saved one is put back.
 * `sigtab_lock` makes "save, start" and "stop, restore" atomic with
 * respect to other runtimes' I/O threads.
 *
 * Memory: `refs` counts the handles (one reference, dropped by the close
 * callback of the last handle) and, for a watcher weft_signal_open gave
 * out, its handle record (struct sig_handle, below).  The handle users
 * hold is that record's, from the runtime's pool of I/O records (io.h):
 * each call takes a reference on it, or finds it closed and reports the
 * misuse naming the call (a second close, a wait after the close), as
 * for a stream; the record's last reference gives w the handle's back.
 * The runtime's list of open watchers is the I/O thread's; the runtime's
 * destroy frees the watchers left open after the I/O thread stopped.
 *
 * Invariants
 *   1. Slots, `pending`, the wait FIFO, `io_closed` and the runtime list
 *      are touched by the I/O thread only (and by the destroyer after it
 *      stopped).
 *   2. A wait is in the FIFO iff `queued`; whoever unlinks it (delivery,
 *      cancel, close) completes it, exactly once.
 *   3. After the close ran, no delivery is queued or handed out, and the
 *      hook is never called again.
 *   4. sigtab[s].watchers is the number of started, not yet stopped weft
 *      slots of signal s in the process (under sigtab_lock).
 *
 * The dump signal (weft_config_t.dump_signal) is one more hook watcher,
 * opened by io.c before the I/O thread starts and closed after it is
 * joined, outside the runtime's list; its hook writes weft_runtime_dump
 * to stderr on the I/O thread (see "dump signal" below).
 *
 * Rejected: counting deliveries in an atomic read by waiting tasks
 * directly (a wait must still park through the I/O thread when nothing
 * is pending, and two paths make "cancelled => nothing taken" harder to
 * see); signalfd (needs the signal blocked in every thread of the
 * process, which weft does not control). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/task.h"
#include "io/io.h"
#include "io/ioop.h"
#include "io/signal.h"
#include "runtime.h"
#include "weft/inspect.h"
#include "weft/signal.h"

#define SIGNAL_MAX_PER_WATCHER 64

struct sig_wait;

struct sig_slot {
	uv_signal_t handle; /* I/O thread */
	struct weft_signals *w;
	int signum;
	uint64_t pending; /* I/O thread: deliveries not taken */
	bool started;	  /* I/O thread: counted in sigtab */
};

struct weft_signals {
	struct weft_runtime *rt;
	/* The handles (one reference) + the handle record's (a watcher
	 * weft_signal_open gave out; its calls hold the record). */
	atomic_int refs;
	struct weft__ioq_node close_node;
	/* weft_signal_open's handle record, or NULL (a hook watcher); set
	 * once by the opener, read by weft__signal_fini. */
	struct sig_handle *handle;
	/* I/O thread only (invariant 1). */
	struct weft_signals *next; /* the runtime's open watchers */
	struct weft_signals **pprev;
	struct sig_wait *head, *tail; /* FIFO of parked waits */
	weft__signal_hook_fn hook;    /* NULL: queue for weft_signal_wait */
	void *hook_arg;
	bool io_closed;
	size_t nopen;		    /* handles initialised, not closed */
	size_t rr;		    /* rotation among pending slots */
	struct weft__ioop *open_op; /* a failed open, completed when its
				       * handles are closed */
	int open_rc;
	size_t n;
	struct sig_slot slots[];
};

/* The runtime's signal state (rt->signals): created by the first open, on
 * the I/O thread. */
struct weft__signals {
	struct weft_signals *head; /* open watchers; I/O thread */
};

struct sig_wait {
	struct weft__ioop op;
	struct weft_signals *w;
	struct sig_wait *prev, *next; /* I/O thread: the FIFO */
	bool queued;		      /* I/O thread (invariant 2) */
};

struct sig_open {
	struct weft__ioop op;
	struct weft_signals *w;
};

/* The handle of a watcher weft_signal_open gave out.  Its life's
 * references (io.h): the owner's, taken at the open and dropped by the
 * close, and one per call in progress on the handle. */
struct sig_handle {
	struct weft__io_rec rec; /* first: io.h */
	struct weft_signals *w;	 /* holds one of w's refs */
};

/* {======================================================= dispositions */

/* Process-wide (see the top: dispositions are).  Under sigtab_lock. */
static pthread_mutex_t sigtab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	unsigned watchers;	/* invariant 4 */
	struct sigaction saved; /* before the first one started */
} sigtab[NSIG];

/* Starts s's handle, saving the disposition if s is the first weft slot
 * of its signal.  I/O thread. */
static int sigtab_start(struct sig_slot *s, uv_signal_cb cb)
{
	pthread_mutex_lock(&sigtab_lock);
	if (sigtab[s->signum].watchers == 0)
		sigaction(s->signum, NULL, &sigtab[s->signum].saved);
	int rc = uv_signal_start(&s->handle, cb, s->signum);
	if (rc == 0) {
		sigtab[s->signum].watchers++;
		s->started = true;
	}
	pthread_mutex_unlock(&sigtab_lock);
	return rc;
}

/* Under sigtab_lock, after s's handle stopped: uncounts s and, if it was
 * the last weft slot and libuv reset the signal, restores the saved
 * disposition. */
static void sigtab_release_locked(struct sig_slot *s)
{
	if (!s->started)
		return;
	s->started = false;
	if (--sigtab[s->signum].watchers > 0)
		return;
	struct sigaction cur;
	sigaction(s->signum, NULL, &cur);
	if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL)
		sigaction(s->signum, &sigtab[s->signum].saved, NULL);
}

/* Closes s's handle (which stops it at once) and releases its signal.
 * I/O thread. */
static void sigtab_close(struct sig_slot *s, uv_close_cb cb)
{
	pthread_mutex_lock(&sigtab_lock);
	uv_close((uv_handle_t *)&s->handle, cb);
	sigtab_release_locked(s);
	pthread_mutex_unlock(&sigtab_lock);
}

/* }======================================================= */

/* {======================================================= lifetime */

static void sig_ref(struct weft_signals *w)
{
	/* Relaxed: the caller holds w alive (it is open). */
	atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
}

static void sig_unref(struct weft_signals *w)
{
	/* acq_rel: the release orders this holder's accesses before the
	 * free; the acquire of the last one sees every other holder's. */
	if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1)
		weft__free(w);
}

/* Drops a reference on a handle record; the last gives the record back
 * to the pool and w the handle's reference.  Thread: any, while the
 * runtime's I/O thread runs (a call or the close). */
static void sig_handle_drop(struct sig_handle *hd)
{
	if (!weft__io_rec_unref(&hd->rec))
		return;
	struct weft_signals *w = hd->w;
	weft__io_rec_put(w->rt, WEFT__IO_REC_SIGNAL, &hd->rec);
	sig_unref(w);
}

/* }======================================================= */

/* {======================================================= I/O thread */

static void sig_fifo_unlink(struct weft_signals *w, struct sig_wait *sw)
{
	if (sw->prev)
		sw->prev->next = sw->next;
	else
		w->head = sw->next;
	if (sw->next)
		sw->next->prev = sw->prev;
	else
		w->tail = sw->prev;
	sw->prev = sw->next = NULL;
	sw->queued = false;
}

static void sig_delivered(uv_signal_t *h, int signum)
{
	struct sig_slot *s = h->data;
	struct weft_signals *w = s->w;
	if (w->io_closed)
		return; /* invariant 3 (libuv stops calling anyway) */
	if (w->hook != NULL) {
		w->hook(w->hook_arg, signum);
		return;
	}
	struct sig_wait *sw = w->head;
	if (sw == NULL) {
		s->pending++;
		return;
	}
	sig_fifo_unlink(w, sw);
	weft__ioop_complete(&sw->op, signum);
}

/* The close callback of every handle: the last one ends a failed open or
 * drops the handles' reference. */
static void sig_handle_closed(uv_handle_t *h)
{
	struct sig_slot *s = h->data;
	struct weft_signals *w = s->w;
	if (--w->nopen > 0)
		return;
	if (w->open_op != NULL)
		weft__ioop_complete(w->open_op, w->open_rc); /* frees w */
	else
		sig_unref(w);
}

static void sig_open_start(weft__io_t *io, struct weft__ioop *op)
{
	struct sig_open *o = WEFT__CONTAINER_OF(op, struct sig_open, op);
	struct weft_signals *w = o->w;
	struct weft_runtime *rt = w->rt;
	if (rt->signals == NULL) {
		rt->signals = weft__calloc(1, sizeof *rt->signals);
		if (rt->signals == NULL) {
			weft__ioop_complete(op, -ENOMEM);
			return;
		}
	}
	int rc = 0;
	for (size_t i = 0; i < w->n && rc == 0; i++) {
		struct sig_slot *s = &w->slots[i];
		rc = uv_signal_init(&io->loop, &s->handle);
		if (rc < 0)
			break;
		s->handle.data = s;
		w->nopen++;
		rc = sigtab_start(s, sig_delivered);
	}
	if (rc < 0) {
		if (w->nopen == 0) {
			weft__ioop_complete(op, weft__io_uverr(rc));
			return;
		}
		/* The handles must be closed before the fiber frees w. */
		w->open_op = op;
		w->open_rc = weft__io_uverr(rc);
		w->io_closed = true;
		for (size_t i = 0; i < w->nopen; i++)
			sigtab_close(&w->slots[i], sig_handle_closed);
		return;
	}
	struct weft__signals *set = rt->signals;
	w->next = set->head;
	w->pprev = &set->head;
	if (set->head)
		set->head->pprev = &w->next;
	set->head = w;
	weft__ioop_complete(op, 0);
}

static void sig_wait_start(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct sig_wait *sw = WEFT__CONTAINER_OF(op, struct sig_wait, op);
	struct weft_signals *w = sw->w;
	if (w->io_closed) {
		weft__ioop_complete(op, WEFT_ECLOSED);
		return;
	}
	for (size_t k = 0; k < w->n; k++) {
		size_t i = (w->rr + k) % w->n;
		if (w->slots[i].pending > 0) {
			w->slots[i].pending--;
			w->rr = i + 1;
			weft__ioop_complete(op, w->slots[i].signum);
			return;
		}
	}
	sw->queued = true;
	sw->next = NULL;
	sw->prev = w->tail;
	if (w->tail)
		w->tail->next = sw;
	else
		w->head = sw;
	w->tail = sw;
}

static void sig_wait_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct sig_wait *sw = WEFT__CONTAINER_OF(op, struct sig_wait, op);
	if (!sw->queued)
		return; /* given a delivery already: its completion stands */
	sig_fifo_unlink(sw->w, sw);
	weft__ioop_complete(op, -ECANCELED);
}

void weft__signal_close_io(struct weft_signals *w)
{
	WEFT_ASSERT(!w->io_closed, "signal watcher closed twice");
	w->io_closed = true;
	if (w->hook != NULL)
		weft__timer_outside(&w->rt->timer, -1); /* see open_hook */
	*w->pprev = w->next;
	if (w->next)
		w->next->pprev = w->pprev;
	while (w->head) {
		struct sig_wait *sw = w->head;
		sig_fifo_unlink(w, sw);
		weft__ioop_complete(&sw->op, WEFT_ECLOSED);
	}
	for (size_t i = 0; i < w->n; i++)
		sigtab_close(&w->slots[i], sig_handle_closed);
}

static void sig_close_fn(struct weft_runtime *rt, struct weft__ioq_node *n)
{
	(void)rt;
	weft__signal_close_io(
		WEFT__CONTAINER_OF(n, struct weft_signals, close_node));
}

/* Has the I/O thread close w (weft__signal_close_io).  Thread: any. */
static void sig_post_close(struct weft_signals *w)
{
	w->close_node.fn = sig_close_fn;
	weft__ioq_post(w->rt, &w->close_node);
}

/* }======================================================= */

/* {======================================================= fiber */

static bool sig_catchable(int s)
{
	if (s <= 0 || s >= NSIG)
		return false;
	switch (s) {
	case SIGKILL:
	case SIGSTOP:
	case SIGSEGV:
	case SIGBUS:
	case SIGFPE:
	case SIGILL: return false;
	default:
		/* Between the standard signals and SIGRTMIN: glibc's own. */
		return s < 32 || s >= SIGRTMIN;
	}
}

int weft__signal_open_hook(struct weft_signals **out, const int *signums,
	size_t n, weft__signal_hook_fn hook, void *arg)
{
	if (out == NULL || signums == NULL || n == 0 ||
		n > SIGNAL_MAX_PER_WATCHER)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!sig_catchable(signums[i]))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (signums[j] == signums[i])
				return -EINVAL;
	}
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	struct weft_signals *w = weft__calloc(1,
		sizeof *w + n * sizeof w->slots[0]);
	if (w == NULL)
		return -ENOMEM;
	w->rt = self->rt;
	atomic_init(&w->refs, 1); /* the handles' */
	w->hook = hook;
	w->hook_arg = arg;
	w->n = n;
	for (size_t i = 0; i < n; i++) {
		w->slots[i].w = w;
		w->slots[i].signum = signums[i];
	}
	struct sig_open o = { .w = w };
	o.op.start = sig_open_start;
	o.op.cancel = NULL; /* completes at once, or once closed */
	o.op.what = "signal open";
	int rc = weft__ioop_run(&o.op);
	if (rc < 0) {
		/* Not submitted, or every handle is closed already. */
		weft__free(w);
		return rc;
	}
	/* A hook (weft_shutdown_open's) acts on deliveries with no task
	 * waiting: an outside waker of the real clock's asleep report until
	 * its close (timer.h, rule 46).  From this running task, before its
	 * worker can sleep; dropped in weft__signal_close_io. */
	if (hook != NULL)
		weft__timer_outside(&w->rt->timer, 1);
	*out = w;
	return 0;
}

int weft_signal_open(weft_signals_t **out, const int *signums, size_t n)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_signals *w;
	int rc = weft__signal_open_hook(&w, signums, n, NULL, NULL);
	if (rc < 0)
		return rc;
	struct sig_handle *hd = weft__io_rec_get(w->rt, WEFT__IO_REC_SIGNAL,
		sizeof *hd);
	if (hd == NULL) {
		/* Closed as weft_signal_close would; nothing was handed
		 * out. */
		sig_post_close(w);
		return -ENOMEM;
	}
	sig_ref(w); /* the handle's */
	hd->w = w;
	w->handle = hd;
	*out = weft__io_rec_handle(&hd->rec);
	return 0;
}

int weft_signal_wait(weft_signals_t *h)
{
	if (h == NULL)
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	struct sig_handle *hd = weft__io_rec_check(h, "weft_signal_wait",
		"signal watcher");
	if (hd == NULL)
		return WEFT_EMISUSE;
	struct sig_wait sw = { .w = hd->w };
	sw.op.start = sig_wait_start;
	sw.op.cancel = sig_wait_cancel;
	sw.op.what = "signal wait";
	int rc = weft__ioop_run(&sw.op);
	sig_handle_drop(hd);
	return rc;
}

int weft_signal_close(weft_signals_t *h)
{
	if (h == NULL)
		return -EINVAL;
	/* Closes the handle's life and takes the closer's reference, or
	 * finds it closed: a second close. */
	if (!weft__io_rec_close(h)) {
		weft__io_rec_misuse(h, "weft_signal_close", "signal watcher");
		return WEFT_EMISUSE;
	}
	struct sig_handle *hd = weft__handle_addr(h);
	struct weft_signals *w = hd->w;
	/* The node is w's, which the handle's reference keeps alive until
	 * the drops below, and the handles' until the I/O thread closed
	 * them. */
	sig_post_close(w);
	sig_handle_drop(hd); /* the closer's */
	sig_handle_drop(hd); /* the owner's */
	return 0;
}

/* }======================================================= */

/* {======================================================= dump signal */

/* weft_config_t.dump_signal: a hook watcher (delivered on the I/O thread,
 * never in the signal handler, which is libuv's and only writes to the
 * loop's pipe) that nobody waits on and that is not on the runtime's list
 * of watchers: io.c opens it before the I/O thread starts, so that it
 * exists when weft_runtime_create returns, and closes it after the
 * thread is joined. */

/* Writes the dump to stderr: write(2) straight to the fd, no stdio
 * buffer the application might be using on another thread. */
static int sig_dump_write(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static void sig_dump_hook(void *arg, int signum)
{
	struct weft_runtime *rt = arg;
	char line[128];
	int n = snprintf(line, sizeof line,
		"weft: runtime dump (SIG%s, pid %ld)\n", sigabbrev_np(signum),
		(long)getpid());
	sig_dump_write(NULL, line, (size_t)n);
	int rc = weft_runtime_dump(rt, WEFT_DUMP_TEXT, sig_dump_write, NULL);
	n = rc == 0 ? snprintf(line, sizeof line, "weft: end of dump\n")
		    : snprintf(line, sizeof line, "weft: dump failed: %s\n",
			      weft_strerror(rc));
	sig_dump_write(NULL, line, (size_t)n);
}

int weft__signal_dump_open(struct weft__io *io, int signum,
	struct weft_signals **out)
{
	if (!sig_catchable(signum))
		return -EINVAL;
	struct weft_signals *w = weft__calloc(1,
		sizeof *w + sizeof w->slots[0]);
	if (w == NULL)
		return -ENOMEM;
	w->rt = io->rt;
	atomic_init(&w->refs, 1); /* the handle's */
	w->hook = sig_dump_hook;
	w->hook_arg = io->rt;
	w->n = 1;
	struct sig_slot *s = &w->slots[0];
	s->w = w;
	s->signum = signum;
	int rc = uv_signal_init(&io->loop, &s->handle);
	if (rc < 0) {
		weft__free(w);
		return weft__io_uverr(rc);
	}
	s->handle.data = s;
	w->nopen = 1;
	rc = sigtab_start(s, sig_delivered);
	if (rc < 0) {
		/* The loop frees w when it runs the close callback. */
		weft__signal_dump_close(w);
		return weft__io_uverr(rc);
	}
	*out = w;
	return 0;
}

void weft__signal_dump_close(struct weft_signals *w)
{
	w->io_closed = true; /* invariant 3 */
	sigtab_close(&w->slots[0], sig_handle_closed);
}

/* }======================================================= */

void weft__signal_fini(struct weft_runtime *rt)
{
	struct weft__signals *set = rt->signals;
	if (set == NULL)
		return;
	/* The I/O thread is gone (joined: its writes are visible) and its
	 * shutdown closed every handle without a callback, which stopped
	 * them; what is left is the disposition and the memory. */
	while (set->head) {
		struct weft_signals *w = set->head;
		set->head = w->next;
		pthread_mutex_lock(&sigtab_lock);
		for (size_t i = 0; i < w->n; i++)
			sigtab_release_locked(&w->slots[i]);
		pthread_mutex_unlock(&sigtab_lock);
		/* Never closed: its handle record's life is still open (not
		 * in the pool, which io.c freed). */
		weft__free(w->handle);
		weft__free(w);
	}
	weft__free(set);
	rt->signals = NULL;
}
