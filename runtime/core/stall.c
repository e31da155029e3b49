/* The stall watchdog (weft_config_t.stall_ms, WEFT_STALL_MS).
 *
 * Problem: a task that computes, or blocks in a system call, without ever
 * reaching a checkpoint holds its worker: the tasks queued behind it wait,
 * and nothing says why.  Likewise a shielded scope hides every
 * cancellation for as long as it is open.  Both should be found without
 * a debugger, and cost nothing when nobody asked.
 *
 * Approach: a monitor thread ("weft-stall", one per runtime that asks)
 * wakes every stall_ms / 4 (at least 1 ms) and samples each worker's
 * progress: its `qs` word (sched.h: +1 at every switch-in and switch-out
 * of a fiber, odd while one runs) and its `inline_run` counter (stats.h:
 * +1 when a parent starts a child inline, on the parent's fiber, without a
 * switch).  Both already exist and are written only by their worker, with
 * relaxed or release stores; the monitor loads them (acquire, relaxed),
 * so reading them is free of data races and costs the workers nothing.
 * A worker whose pair is unchanged and whose qs is odd has run one task
 * since the monitor first saw that pair; once that is stall_ms or more,
 * the stall is reported, once: the pair is remembered, and the next report
 * needs a new pair (the task switched out, or a child started inline).
 * Every checkpoint eventually switches out (the cooperative budget,
 * task.h), so a task that checkpoints is never reported.  A join that
 * runs its children inline does not switch, but each child starts a new
 * pair, so a tree of short inline children (B1 fib) is not a stall;
 * what is measured is the time since the later of the last switch-in
 * and the last inline start, and the report names the task running when
 * the handler interrupts it.
 *
 * Which task, and its backtrace, can only be read on the stalled worker:
 * w->current is owner-only, and a stack can only be unwound by its own
 * thread.  So the monitor marks the worker's slot REQUESTED and sends it
 * WEFT__STALL_SIGNAL with pthread_kill; the handler, on that worker,
 * claims the slot (REQUESTED -> CAPTURING), copies the current task's id
 * and name and the return addresses of its stack into the slot (glibc's
 * backtrace, loaded beforehand by weft__backtrace_prepare, as for the
 * overflow handler of stack.c; no allocation, no lock), and publishes
 * DONE with a release store.  The monitor waits for DONE (acquire) up to
 * STALL_SIGNAL_WAIT_NS, then checks the pair again: unchanged, the
 * capture happened inside the stall, and the monitor queues a copy for
 * the printer.  Changed, the stall ended while it was being looked at,
 * and nothing is reported.  If the handler
 * has not claimed the slot in time (the signal is blocked, or a
 * sanitizer holds it until the worker makes a call it intercepts), the
 * monitor takes the request back (REQUESTED -> IDLE: a late handler finds
 * nothing to do) and reports the stall without task name or backtrace.
 * The signal interrupts the stalled task as a profiler's would: a system
 * call it is blocked in is restarted (SA_RESTART) where the kernel
 * restarts it, else fails with EINTR.
 *
 * The printer, a second thread ("weft-stall-p"), takes the queued
 * reports, symbolizes them (weft__backtrace_format, libdw: milliseconds
 * on a quiet machine, a second under a sanitizer and load) and writes
 * each with one write(2) loop.  Symbolizing on the monitor would blind
 * it meanwhile: a stall that began and ended while it symbolized would
 * never be seen.  The queue holds STALL_QUEUE reports; one that finds it
 * full is counted and the count printed with the next report.
 *
 * The signal: SIGRTMIN + 6, reserved while a runtime with the watchdog
 * exists.  The handler is installed when the first such runtime is
 * created if the signal's disposition is SIG_DFL or SIG_IGN, restored
 * when the last one goes; a program that handles the signal itself keeps
 * its handler, and its runtimes report stalls without a backtrace.  So do
 * the runtimes created by a thread that blocks the signal (the workers
 * inherit their creator's mask; otherwise a worker unblocks it,
 * weft__stall_thread_mask).  A real-time signal, because none of them
 * has a meaning of its own, and a pending one is never merged with
 * another program's sending of a classic signal.
 *
 * Why threads of its own and not a libuv timer on the I/O thread: a
 * report waits for a handler and symbolizes with libdw, which would hold
 * up every socket and deadline of the runtime; and a monitor must keep
 * running when the runtime is wedged.
 *
 * Shielded scopes: a user scope with WEFT_SCOPE_SHIELD, entered while the
 * watchdog is on, is listed here (its node lives in the scope, so entering
 * never allocates) under `lock` until its exit; the monitor reports each
 * one open stall_ms or more, once.  Its task and its site stay valid while
 * it is listed: a task exits every scope it entered before it ends
 * (group.c), and the exit unlists the scope before it can be freed.
 *
 * Times are the real clock's, also under the virtual clock (where a
 * sleep takes no real time, so a shielded sleep is never reported). */
#define _GNU_SOURCE /* REG_RIP */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/diag.h"
#include "base/spin.h"
#include "core/cancel.h"
#include "core/sched.h"
#include "core/stall.h"
#include "core/task.h"
#include "core/timer.h"
#include "runtime.h"

/* How long the monitor waits for a worker's handler to take a backtrace
 * (a handler runs within microseconds once delivered; this only bounds a
 * signal that is not delivered at all). */
#define STALL_SIGNAL_WAIT_NS (500 * INT64_C(1000000))
/* Room for one report's text: the first line and the frames. */
#define STALL_TEXT_MAX 8192
/* Reports waiting for the printer. */
#define STALL_QUEUE 16

/* A worker slot's handshake with the handler (`state`). */
enum {
	SLOT_IDLE = 0,
	SLOT_REQUESTED, /* by the monitor, before it sends the signal */
	SLOT_CAPTURING, /* claimed by the handler */
	SLOT_DONE	/* the handler's fields below are written */
};

struct stall_slot {
	/* The monitor's own: the progress pair it last saw, since when,
	 * and whether that stall was reported. */
	uint64_t qs, inl;
	int64_t since;
	bool reported;
	/* The handshake; the orders are given at each use. */
	atomic_int state;
	/* Written by the handler between CAPTURING and DONE, read by the
	 * monitor after its acquire of DONE. */
	uint64_t task_id;
	char name[WEFT__TASK_NAME_MAX];
	void *ip; /* the interrupted instruction, NULL if unknown */
	int npcs;
	void *pcs[WEFT__BACKTRACE_MAX];
};

/* One report for the printer: a copy, so that nothing it names must stay
 * alive (a site is a code address). */
enum stall_kind {
	STALL_TASK,	  /* with name and backtrace */
	STALL_TASK_BLIND, /* without: `why` says why */
	STALL_SHIELD
};
struct stall_report {
	enum stall_kind kind;
	unsigned worker;
	int64_t ms;
	uint64_t task_id, scope_id;
	char name[WEFT__TASK_NAME_MAX];
	const char *why; /* a static string */
	void *site;
	int npcs;
	void *pcs[WEFT__BACKTRACE_MAX];
};

struct weft__stall {
	struct weft_runtime *rt;
	int64_t limit_ns, period_ns;
	/* Whether the signal reaches the workers, and if not, why (for the
	 * report).  Fixed at init. */
	bool sig_ok;
	const char *sig_why;
	/* The monitor and the printer, their stop requests, the queue
	 * between them: under mu.  The monitor waits on cv (for its period
	 * or stop), the printer on pcv (for a report or stop). */
	pthread_t monitor, printer;
	bool monitor_started, printer_started;
	pthread_mutex_t mu;
	pthread_cond_t cv, pcv;
	bool stop;  /* the monitor's */
	bool pstop; /* the printer's, once the monitor is gone */
	unsigned q_head, q_len;
	unsigned dropped; /* reports that found the queue full */
	struct stall_report queue[STALL_QUEUE];
	/* The printer's own buffer. */
	char text[STALL_TEXT_MAX];
	/* Listed shielded scopes, under lock (tasks enter and exit; the
	 * monitor walks and copies; nobody formats while holding it). */
	weft__spin_t lock;
	struct weft__stall_shield *shields;
	struct stall_slot slots[]; /* one per worker, by index */
};

/* {======================================================= the signal */

/* Process-wide: the handler and who uses it (ARCHITECTURE.md,
 * "Process-wide state"). */
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned sig_refs; /* runtimes with the watchdog, under sig_lock */
static bool sig_ours;	  /* our handler is installed, under sig_lock */
static struct sigaction sig_prev;

/* The interrupted instruction of a signal's context. */
static void *stall_context_ip(void *uctx)
{
	ucontext_t *uc = uctx;
#if defined(__x86_64__)
	return (void *)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (void *)uc->uc_mcontext.pc;
#else
	(void)uc;
	return NULL;
#endif
}

/* On the worker the monitor signalled (or on any thread for a stray
 * signal, which finds no request and returns).  Async-signal-safe: plain
 * loads and stores, an atomic CAS and store, and glibc's backtrace, whose
 * unwinder was loaded beforehand (weft__backtrace_prepare). */
static void stall_on_signal(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)si;
	int saved_errno = errno;
	weft__worker_t *w = weft__sched_current();
	struct weft__stall *st = w ? w->rt->stall : NULL;
	if (st != NULL) {
		struct stall_slot *sl = &st->slots[w->index];
		int want = SLOT_REQUESTED;
		/* acquire: pairs with the monitor's release store of
		 * REQUESTED, so its reads of the previous capture come
		 * before the writes below.  relaxed on failure: nothing is
		 * touched then.  What the monitor reads is published by
		 * the release store of DONE. */
		if (atomic_compare_exchange_strong_explicit(&sl->state, &want,
			    SLOT_CAPTURING, memory_order_acquire,
			    memory_order_relaxed)) {
			/* The worker's own field, on its own thread: the
			 * task it interrupted (NULL in the loop). */
			struct weft_task *t = w->current;
			sl->task_id = t ? t->id : 0;
			if (t)
				weft__task_name_load(t, sl->name);
			else
				sl->name[0] = '\0';
			sl->ip = stall_context_ip(uctx);
			sl->npcs = weft__backtrace_capture(sl->pcs,
				WEFT__BACKTRACE_MAX, 0);
			/* release: the fields above before DONE (the
			 * monitor's acquire). */
			atomic_store_explicit(&sl->state, SLOT_DONE,
				memory_order_release);
		}
	}
	errno = saved_errno;
}

/* Takes the handler for one more runtime; false when the program has a
 * handler of its own there. */
static bool stall_sig_acquire(void)
{
	pthread_mutex_lock(&sig_lock);
	if (sig_refs == 0) {
		struct sigaction cur;
		sig_ours = false;
		if (sigaction(WEFT__STALL_SIGNAL, NULL, &cur) == 0 &&
			!(cur.sa_flags & SA_SIGINFO) &&
			(cur.sa_handler == SIG_DFL ||
				cur.sa_handler == SIG_IGN)) {
			/* The backtrace in the handler must not be the
			 * process's first (it loads the unwinder). */
			weft__backtrace_prepare();
			struct sigaction sa = {
				.sa_sigaction = stall_on_signal
			};
			sigemptyset(&sa.sa_mask);
			/* SA_ONSTACK: a worker's alternate stack (stack.c),
			 * so a fiber stack near its end is not pushed over
			 * it; the unwinder crosses the signal frame. */
			sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
			sig_ours = sigaction(WEFT__STALL_SIGNAL, &sa,
					   &sig_prev) == 0;
		}
	}
	sig_refs++;
	bool ours = sig_ours;
	pthread_mutex_unlock(&sig_lock);
	return ours;
}

static void stall_sig_release(void)
{
	pthread_mutex_lock(&sig_lock);
	if (--sig_refs == 0 && sig_ours) {
		sigaction(WEFT__STALL_SIGNAL, &sig_prev, NULL);
		sig_ours = false;
	}
	pthread_mutex_unlock(&sig_lock);
}

void weft__stall_thread_mask(struct weft_runtime *rt, sigset_t *blocked)
{
	if (rt->stall != NULL && rt->stall->sig_ok)
		sigdelset(blocked, WEFT__STALL_SIGNAL);
}

/* }======================================================= */

/* {======================================================= the monitor */

/* Queues r for the printer (or counts it lost when the queue is full). */
static void stall_queue(struct weft__stall *st, const struct stall_report *r)
{
	pthread_mutex_lock(&st->mu);
	if (st->q_len == STALL_QUEUE) {
		st->dropped++;
	} else {
		st->queue[(st->q_head + st->q_len) % STALL_QUEUE] = *r;
		st->q_len++;
		pthread_cond_signal(&st->pcv);
	}
	pthread_mutex_unlock(&st->mu);
}

/* Asks worker i's handler for its task and backtrace.  true with the
 * slot's fields filled (the caller sets the slot IDLE after reading
 * them), false when no handler answered in time. */
static bool stall_capture(struct weft__stall *st, unsigned i)
{
	struct stall_slot *sl = &st->slots[i];
	/* release: this thread's reads of the slot's last capture come
	 * before the handler's writes of the next (its acquire claim). */
	atomic_store_explicit(&sl->state, SLOT_REQUESTED, memory_order_release);
	if (pthread_kill(st->rt->workers[i].thread, WEFT__STALL_SIGNAL) != 0) {
		atomic_store_explicit(&sl->state, SLOT_IDLE,
			memory_order_relaxed);
		return false;
	}
	int64_t end = weft__timer_real_now() + STALL_SIGNAL_WAIT_NS;
	for (;;) {
		/* acquire: pairs with the handler's release of DONE. */
		int s = atomic_load_explicit(&sl->state, memory_order_acquire);
		if (s == SLOT_DONE)
			return true;
		if (s == SLOT_REQUESTED && weft__timer_real_now() >= end) {
			/* relaxed: a handler that comes later finds IDLE and
			 * touches nothing.  Failing, the handler has claimed
			 * the slot, and DONE follows soon. */
			int want = SLOT_REQUESTED;
			if (atomic_compare_exchange_strong_explicit(&sl->state,
				    &want, SLOT_IDLE, memory_order_relaxed,
				    memory_order_relaxed))
				return false;
		}
		struct timespec ts = { 0, 200 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Worker i has run one task for `ms` without switching out: takes its
 * task and backtrace and queues the report. */
static void stall_report_worker(struct weft__stall *st, unsigned i, int64_t ms)
{
	struct stall_slot *sl = &st->slots[i];
	weft__worker_t *w = &st->rt->workers[i];
	struct stall_report r = { .kind = STALL_TASK_BLIND,
		.worker = i,
		.ms = ms };
	r.why = st->sig_ok ? "its worker did not take the signal in time"
			   : st->sig_why;
	if (st->sig_ok && stall_capture(st, i)) {
		/* The capture counts only if it was taken inside this stall:
		 * the worker's progress pair has not moved since.  Orders
		 * as in stall_check_worker. */
		bool same = atomic_load_explicit(&w->qs,
				    memory_order_acquire) == sl->qs &&
			atomic_load_explicit(&w->stats.inline_run,
				memory_order_relaxed) == sl->inl;
		if (!same || sl->task_id == 0) {
			/* relaxed: the handler is done with the slot. */
			atomic_store_explicit(&sl->state, SLOT_IDLE,
				memory_order_relaxed);
			sl->reported = false; /* looked at again next time */
			return;
		}
		r.kind = STALL_TASK;
		r.task_id = sl->task_id;
		memcpy(r.name, sl->name, sizeof r.name);
		/* From the interrupted instruction on: above it are the
		 * handler's frames and the kernel's signal trampoline.  A
		 * sanitizer that delays signals runs the handler from one of
		 * its calls instead, and the instruction is then not on the
		 * unwound stack: only the handler's own frame is left out. */
		int from = 1;
		for (int k = 0; k < sl->npcs; k++)
			if (sl->pcs[k] == sl->ip) {
				from = k;
				break;
			}
		for (int k = from; k < sl->npcs; k++)
			r.pcs[r.npcs++] = sl->pcs[k];
		/* relaxed: the handler is done with the slot. */
		atomic_store_explicit(&sl->state, SLOT_IDLE,
			memory_order_relaxed);
	}
	stall_queue(st, &r);
}

/* Samples worker i (see the top of the file). */
static void stall_check_worker(struct weft__stall *st, unsigned i, int64_t now)
{
	struct stall_slot *sl = &st->slots[i];
	weft__worker_t *w = &st->rt->workers[i];
	/* acquire: pairs with the worker's release store (worker_qs_step);
	 * nothing read here depends on it, but it is the one ordering qs
	 * already offers.  inline_run: relaxed, a counter (stats.h). */
	uint64_t qs = atomic_load_explicit(&w->qs, memory_order_acquire);
	uint64_t inl = atomic_load_explicit(&w->stats.inline_run,
		memory_order_relaxed);
	if (qs != sl->qs || inl != sl->inl) {
		sl->qs = qs;
		sl->inl = inl;
		sl->since = now;
		sl->reported = false;
		return;
	}
	if ((qs & 1) == 0 || sl->reported || now - sl->since < st->limit_ns)
		return;
	sl->reported = true;
	stall_report_worker(st, i, (now - sl->since) / 1000000);
}

/* Queues a report for each listed shield open limit_ns or more that was
 * not reported yet. */
static void stall_check_shields(struct weft__stall *st, int64_t now)
{
	for (;;) {
		struct stall_report r = { .kind = STALL_SHIELD };
		bool found = false;
		weft__spin_lock(&st->lock);
		for (struct weft__stall_shield *sh = st->shields; sh;
			sh = sh->next) {
			if (sh->reported || now - sh->since < st->limit_ns)
				continue;
			sh->reported = true;
			r.scope_id = sh->scope->id;
			r.task_id = sh->task->id;
			weft__task_name_load(sh->task, r.name);
			r.site = sh->site;
			r.ms = (now - sh->since) / 1000000;
			found = true;
			break;
		}
		weft__spin_unlock(&st->lock);
		if (!found)
			return;
		stall_queue(st, &r);
	}
}

static void stall_block_signals(void)
{
	/* Signals are for the application's threads, not ours. */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void *stall_monitor_main(void *arg)
{
	struct weft__stall *st = arg;
	stall_block_signals();
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		int64_t ns = next.tv_nsec + st->period_ns;
		next.tv_sec += ns / 1000000000;
		next.tv_nsec = ns % 1000000000;
		pthread_mutex_lock(&st->mu);
		while (!st->stop &&
			pthread_cond_timedwait(&st->cv, &st->mu, &next) !=
				ETIMEDOUT)
			;
		bool stop = st->stop;
		pthread_mutex_unlock(&st->mu);
		if (stop)
			break;
		int64_t now = weft__timer_real_now();
		for (unsigned i = 0; i < st->rt->nworkers; i++)
			stall_check_worker(st, i, now);
		stall_check_shields(st, now);
		/* A late wake-up (a loaded machine) does not make the monitor
		 * catch up with a burst of samples. */
		struct timespec cur;
		clock_gettime(CLOCK_MONOTONIC, &cur);
		if (cur.tv_sec > next.tv_sec ||
			(cur.tv_sec == next.tv_sec &&
				cur.tv_nsec > next.tv_nsec))
			next = cur;
	}
	return NULL;
}

/* }======================================================= */

/* {======================================================= the printer */

static void stall_write(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Formats r (and the count of reports lost before it) into st->text and
 * writes it. */
static void stall_print(struct weft__stall *st, const struct stall_report *r,
	unsigned dropped)
{
	char *b = st->text;
	size_t size = sizeof st->text, len = 0;
	int n = 0;
	if (dropped > 0)
		n = snprintf(b, size,
			"weft: stall: %u report%s lost (the queue was full)\n",
			dropped, dropped == 1 ? "" : "s");
	len = n > 0 ? (size_t)n : 0;
	switch (r->kind) {
	case STALL_TASK:
		n = snprintf(b + len, size - len,
			"weft: stall: task %llu '%s' has run %lld ms on worker "
			"%u without a checkpoint\n"
			"weft: backtrace of the stalled task, innermost "
			"first:\n",
			(unsigned long long)r->task_id, r->name,
			(long long)r->ms, r->worker);
		break;
	case STALL_TASK_BLIND:
		n = snprintf(b + len, size - len,
			"weft: stall: a task has run %lld ms on worker %u "
			"without a checkpoint (no name and no backtrace: %s)\n",
			(long long)r->ms, r->worker, r->why);
		break;
	case STALL_SHIELD: {
		char site[256];
		if (r->site)
			weft__backtrace_site(r->site, site, sizeof site);
		else
			snprintf(site, sizeof site, "an unknown place");
		n = snprintf(b + len, size - len,
			"weft: stall: shielded scope %llu opened at %s in task "
			"%llu '%s' open for %lld ms (a shield hides every "
			"cancellation from outside)\n",
			(unsigned long long)r->scope_id, site,
			(unsigned long long)r->task_id, r->name,
			(long long)r->ms);
		break;
	}
	}
	if (n > 0)
		len += (size_t)n;
	if (len > size - 1)
		len = size - 1;
	if (r->kind == STALL_TASK && r->npcs > 0)
		len += weft__backtrace_format(r->pcs, r->npcs, "  ", b + len,
			size - len);
	stall_write(b, len);
}

static void *stall_printer_main(void *arg)
{
	struct weft__stall *st = arg;
	stall_block_signals();
	struct stall_report r;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (st->q_len == 0 && !st->pstop)
			pthread_cond_wait(&st->pcv, &st->mu);
		if (st->q_len == 0)
			break; /* stopped, and every report printed */
		r = st->queue[st->q_head];
		st->q_head = (st->q_head + 1) % STALL_QUEUE;
		st->q_len--;
		unsigned dropped = st->dropped;
		st->dropped = 0;
		pthread_mutex_unlock(&st->mu);
		stall_print(st, &r, dropped);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* }======================================================= */

/* {======================================================= life */

/* A condition variable on the monotonic clock (the monitor's deadlines
 * are absolute CLOCK_MONOTONIC times). */
static int stall_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc != 0)
		return rc;
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

int weft__stall_init(struct weft_runtime *rt)
{
	rt->stall = NULL;
	if (rt->cfg.stall_ms == 0)
		return 0;
	struct weft__stall *st = weft__calloc(1,
		sizeof *st + rt->nworkers * sizeof st->slots[0]);
	if (st == NULL)
		return -ENOMEM;
	st->rt = rt;
	st->limit_ns = (int64_t)rt->cfg.stall_ms * 1000000;
	st->period_ns = st->limit_ns / 4;
	if (st->period_ns < 1000000)
		st->period_ns = 1000000;
	weft__spin_init(&st->lock);
	int rc = stall_cond_init(&st->cv);
	if (rc == 0) {
		rc = stall_cond_init(&st->pcv);
		if (rc != 0)
			pthread_cond_destroy(&st->cv);
	}
	if (rc == 0) {
		rc = pthread_mutex_init(&st->mu, NULL);
		if (rc != 0) {
			pthread_cond_destroy(&st->cv);
			pthread_cond_destroy(&st->pcv);
		}
	}
	if (rc != 0) {
		weft__free(st);
		return -rc;
	}
	for (unsigned i = 0; i < rt->nworkers; i++)
		atomic_init(&st->slots[i].state, SLOT_IDLE);
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	st->sig_ok = stall_sig_acquire();
	if (!st->sig_ok)
		st->sig_why = "the program handles SIGRTMIN+6 itself";
	else if (sigismember(&cur, WEFT__STALL_SIGNAL) == 1) {
		st->sig_ok = false;
		st->sig_why = "the thread that created the runtime blocks "
			      "SIGRTMIN+6";
	}
	rt->stall = st;
	return 0;
}

int weft__stall_start(struct weft_runtime *rt)
{
	struct weft__stall *st = rt->stall;
	if (st == NULL)
		return 0;
	int rc = pthread_create(&st->printer, NULL, stall_printer_main, st);
	if (rc == 0) {
		st->printer_started = true;
		rc = pthread_create(&st->monitor, NULL, stall_monitor_main, st);
	}
	if (rc != 0) {
		weft__stall_stop(rt);
		return rc == EAGAIN ? -EAGAIN : -rc;
	}
	st->monitor_started = true;
	/* Best effort, as for the workers' names (sched.c). */
	pthread_setname_np(st->monitor, "weft-stall");
	pthread_setname_np(st->printer, "weft-stall-p");
	return 0;
}

void weft__stall_stop(struct weft_runtime *rt)
{
	struct weft__stall *st = rt->stall;
	if (st == NULL)
		return;
	/* The monitor first, then the printer, which prints everything
	 * the monitor queued before it leaves. */
	pthread_mutex_lock(&st->mu);
	st->stop = true;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	if (st->monitor_started)
		pthread_join(st->monitor, NULL);
	pthread_mutex_lock(&st->mu);
	st->pstop = true;
	pthread_cond_signal(&st->pcv);
	pthread_mutex_unlock(&st->mu);
	if (st->printer_started)
		pthread_join(st->printer, NULL);
	st->monitor_started = st->printer_started = false;
}

void weft__stall_fini(struct weft_runtime *rt)
{
	struct weft__stall *st = rt->stall;
	if (st == NULL)
		return;
	WEFT_ASSERT(st->shields == NULL, "stall: a shielded scope is listed");
	stall_sig_release();
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	pthread_cond_destroy(&st->pcv);
	weft__free(st);
	rt->stall = NULL;
}

/* }======================================================= */

/* {======================================================= shields */

void weft__stall_shield_enter(struct weft_runtime *rt,
	struct weft__stall_shield *sh, struct weft_scope *s,
	struct weft_task *t, void *site)
{
	struct weft__stall *st = rt->stall;
	sh->scope = s;
	sh->task = t;
	sh->site = site;
	sh->since = weft__timer_real_now();
	sh->reported = false;
	sh->prev = NULL;
	weft__spin_lock(&st->lock);
	sh->next = st->shields;
	if (sh->next)
		sh->next->prev = sh;
	st->shields = sh;
	weft__spin_unlock(&st->lock);
	sh->listed = true;
}

void weft__stall_shield_exit(struct weft_runtime *rt,
	struct weft__stall_shield *sh)
{
	struct weft__stall *st = rt->stall;
	weft__spin_lock(&st->lock);
	if (sh->prev)
		sh->prev->next = sh->next;
	else
		st->shields = sh->next;
	if (sh->next)
		sh->next->prev = sh->prev;
	weft__spin_unlock(&st->lock);
	sh->listed = false;
}

/* }======================================================= */
