/* The stall watchdog (stall.c): with weft_config_t.stall_ms set, a
 * monitor thread reports on stderr a task that runs longer than that
 * without switching out (with its backtrace, taken on its own worker by a
 * signal), and a shielded cancel scope that stays open longer than that.
 *
 * Off (stall_ms 0, the default), rt->stall is NULL and nothing here runs:
 * the monitor reads counters the scheduler keeps anyway (each worker's
 * `qs`, sched.h, and its `inline_run`), and the scope code pays one test
 * of a scope's flags at enter and exit. */
#ifndef WEFT_RUNTIME_CORE_STALL_H
#define WEFT_RUNTIME_CORE_STALL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct weft_runtime;
struct weft_task;
struct weft_scope;

/* The signal the monitor sends to a stalled worker to take its backtrace
 * there: reserved, while a runtime with the watchdog exists, unless the
 * program handles it already (then reports come without a backtrace).
 * SIGRTMIN is a function call in glibc, hence a macro. */
#define WEFT__STALL_SIGNAL_OFFSET 6
#define WEFT__STALL_SIGNAL (SIGRTMIN + WEFT__STALL_SIGNAL_OFFSET)

/* Where a shielded user scope is, for the watchdog's list of them; lives
 * in the scope (struct weft__timed_scope, cancel.h), so entering one never
 * allocates.  `listed` is the owner task's; the rest is under the
 * watchdog's lock while listed. */
struct weft__stall_shield {
	struct weft__stall_shield *prev, *next;
	struct weft_scope *scope;
	struct weft_task *task; /* the task that entered it */
	void *site;		/* the code address that entered it */
	int64_t since;		/* real clock at enter */
	bool reported;
	bool listed; /* owner task only */
};

/* Allocates rt->stall when rt->cfg.stall_ms is not 0 (else leaves it
 * NULL) and takes the process-wide handler of WEFT__STALL_SIGNAL.  Before
 * the workers start: they read rt->stall.  0 or -ENOMEM.  Thread: the
 * creator of rt. */
int weft__stall_init(struct weft_runtime *rt);
/* Starts the monitor thread (after every worker started: it signals
 * them).  0, or a negative errno.  Thread: the creator of rt. */
int weft__stall_start(struct weft_runtime *rt);
/* Stops and joins the monitor (before the workers are joined).  Thread:
 * the destroyer of rt; a no-op when it never started. */
void weft__stall_stop(struct weft_runtime *rt);
/* Frees rt->stall and releases the handler.  Thread: the destroyer. */
void weft__stall_fini(struct weft_runtime *rt);

/* A worker's signal mask at its start: removes WEFT__STALL_SIGNAL from
 * `blocked` when rt's watchdog takes backtraces.  Thread: the worker. */
void weft__stall_thread_mask(struct weft_runtime *rt, sigset_t *blocked);

/* A shielded user scope entered by t at `site` / exited: listed for the
 * monitor while it is open.  Only called when rt->stall is not NULL (enter)
 * or the scope is listed (exit).  Thread: t. */
void weft__stall_shield_enter(struct weft_runtime *rt,
	struct weft__stall_shield *sh, struct weft_scope *s,
	struct weft_task *t, void *site);
void weft__stall_shield_exit(struct weft_runtime *rt,
	struct weft__stall_shield *sh);

#endif
