/* Runtime objects: configuration, creation, running a root task, and
 * destruction.
 *
 * There are no hidden globals: every thread, fd and byte weft uses hangs off
 * a weft_runtime_t, and weft_runtime_destroy gives all of it back, with
 * one exception weft cannot close: the first runtime of a process makes
 * libuv open its process-wide signal pipe (two fds, close-on-exec), which
 * stays open until the process exits and is shared by every later
 * runtime.  A process may hold several runtimes at once.  The process-wide
 * state there is (the SIGSEGV handler while a runtime exists, signal
 * dispositions while weft watches a signal) is listed in ARCHITECTURE.md
 * ("Process-wide state"). */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <stddef.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

/* The function a task runs.  Returns 0 on success or a negative code on
 * failure; -ECANCELED means "I was cancelled" and is never reported as a
 * failure.  A positive value is a failure too, reported with that value
 * as its code (as any code: weft_error_code_at), so that no return is
 * lost; weft's own codes are all negative.  See weft_fail() to attach a
 * message. */
typedef int (*weft_fn)(void *arg);

typedef struct weft_runtime weft_runtime_t;

/* Which clock a runtime's deadlines run on (weft_config_t.clock). */
typedef enum weft_clock {
	/* The real monotonic clock (CLOCK_MONOTONIC). */
	WEFT_CLOCK_REAL = 0,
	/* Virtual time for tests (docs/semantics.md rule 44, weft/time.h):
	 * starts at WEFT_VIRTUAL_EPOCH, stands still while anything runs,
	 * and jumps to the earliest deadline once every task is blocked. */
	WEFT_CLOCK_VIRTUAL = 1
} weft_clock_t;

/* What a runtime does when it finds a deadlock (weft_config_t.deadlock,
 * docs/semantics.md rule 46). */
typedef enum weft_deadlock_mode {
	/* Default.  An acquire that would close a cycle of Locks fails
	 * with -EDEADLK (weft/sync.h), printing nothing.  Under the
	 * virtual clock, every task asleep with nothing that could wake
	 * them prints "weft: all tasks are asleep - deadlock" and the tree
	 * to stderr, and cancels the roots (weft_runtime_run returns
	 * -EDEADLK, rule 44). */
	WEFT_DEADLOCK_ERROR = 0,
	/* The acquire closing a cycle prints the cycle to stderr and
	 * waits.  Every task asleep is printed under the real clock too,
	 * and nothing else happens there; this costs two atomic updates
	 * per I/O operation.  Not while an open portal, an open group
	 * retained with weft_group_retain or a weft_shutdown_open exists
	 * (they may still wake a task), and only once the state held
	 * 1 s with no task run: a plain thread that wakes a task later
	 * than that through a pointer it holds (sets an event, cancels,
	 * releases a semaphore) makes the report wrong (rule 46). */
	WEFT_DEADLOCK_REPORT = 1,
	/* Look for nothing and print nothing (the virtual clock still
	 * cancels the roots, rule 44: its time can never move again). */
	WEFT_DEADLOCK_OFF = 2
} weft_deadlock_t;

/* Configuration, filled with defaults and environment overrides by
 * weft_config_init, then adjusted by the caller.  A plain value type. */
typedef struct weft_config {
	size_t size;	   /* sizeof(weft_config_t); set by weft_config_init */
	unsigned workers;  /* worker threads; 1 .. 1024 */
	size_t stack_size; /* bytes per fiber stack; 16 KiB .. 1 GiB */
	size_t guarded_stacks; /* stacks that get a guard page; 0 .. 30000 */
	unsigned spin_us; /* idle spin before a worker sleeps; 0 .. 100000 */
	/* 1: a task that returns with a group still open aborts the process,
	 * naming the task and where the group was opened (docs/semantics.md
	 * rule 7: a bug to find at once); 0: the group is cancelled, joined
	 * and reported as WEFT_EMISSINGJOIN.  Default 1 when the library is
	 * built with WEFT_DEBUG, else 0. */
	unsigned abort_on_missing_join;
	/* Most offload threads running weft_to_thread calls at once (further
	 * calls wait); 1 .. 1024, default 40 (weft/thread.h). */
	unsigned offload_threads;
	/* The clock of weft_now(), sleeps and every deadline of the runtime:
	 * WEFT_CLOCK_REAL (default) or WEFT_CLOCK_VIRTUAL (weft/time.h). */
	weft_clock_t clock;
	/* A signal that makes the runtime write weft_runtime_dump (text) to
	 * stderr and carry on, for a program that seems to hang: 0 (default:
	 * off, the application may own its signals) or one of SIGHUP,
	 * SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM, SIGWINCH.  The I/O
	 * thread watches it (libuv's handler only wakes that thread; the
	 * dump is written there, not in the handler) from runtime creation
	 * to destruction, replacing the signal's previous disposition, which
	 * comes back afterwards as for weft_signal_open (weft/signal.h).
	 * Deliveries that come together may give one dump.  A dump that
	 * cannot be made (out of memory) writes "weft: dump failed: <reason>"
	 * after its header line instead of the tree. */
	int dump_signal;
	/* What a found deadlock does (weft_deadlock_t): WEFT_DEADLOCK_ERROR
	 * (default), _REPORT or _OFF; environment WEFT_DEADLOCK=error,
	 * report or off. */
	weft_deadlock_t deadlock;
	/* A seeded schedule (docs/semantics.md rule 47): 0 (default) runs
	 * the workers in parallel; any other value runs them one at a time,
	 * each scheduling choice (which worker runs next, which task it
	 * takes, whom it steals from) drawn from this seed, so that the
	 * same program with the same seed and the same inputs runs the same
	 * interleaving of its tasks on the same logical workers, run after
	 * run.  With the virtual clock (clock) and no input from other
	 * threads, the whole run is deterministic.  Outside the promise:
	 * what other threads do (real I/O and its readiness, the real
	 * clock's deadlines, weft_to_thread and offload threads, portals and
	 * plain threads that wake, cancel or spawn, signals), which comes
	 * in at whichever scheduling point is next when it arrives; task
	 * and group ids (unique, not repeated: weft/task.h); the real clock
	 * itself; the stats of weft_runtime_stats.  The workers never run
	 * in parallel, so a seeded runtime is for tests, not for speed.
	 * Environment WEFT_SEED (decimal, 1 .. 2^64-1). */
	unsigned long long seed;
	/* The stall watchdog: 0 (default) is off; n (1 .. 3600000) makes a
	 * monitor thread ("weft-stall", with a printer thread "weft-stall-p")
	 * report on stderr, once per stall,
	 *   - a task that runs n ms or more without switching out (without
	 *     a checkpoint: every checkpoint switches out sooner or later):
	 *     "weft: stall: task <id> '<name>' has run <ms> ms on worker <w>
	 *     without a checkpoint" and its backtrace, taken on its worker
	 *     while it runs;
	 *   - a scope created with WEFT_SCOPE_SHIELD that stays entered n ms
	 *     or more (a shield hides cancellation): "weft: stall: shielded
	 *     scope <id> opened at <site> in task <id> '<name>' open for
	 *     <ms> ms".
	 * Times are real time (also under the virtual clock), sampled every
	 * n/4 ms, so a stall is seen between n and about 1.25 n ms after it
	 * began.  The backtrace is taken with the signal SIGRTMIN+6, which
	 * is reserved while a runtime with the watchdog exists: weft
	 * installs its handler if the signal's disposition is the default
	 * or ignored (and restores it after the last such runtime), and
	 * unblocks it on its workers.  When the program handles that
	 * signal itself, or the thread calling weft_runtime_create blocks
	 * it, stalls are reported without the task's name and backtrace.
	 * The signal interrupts what the stalled task is doing, as a
	 * profiler's does: a system call it is blocked in (a stall too)
	 * is restarted (SA_RESTART) if the kernel restarts that call, and
	 * otherwise (nanosleep, poll, ...) fails with EINTR.
	 * Off, it costs nothing: the monitor only reads counters the
	 * scheduler keeps anyway.  Environment WEFT_STALL_MS. */
	unsigned stall_ms;
	int env_error; /* 0, or -EINVAL when an environment variable was bad */
	char message[256]; /* why the last init/create failed ("" if not) */
	/* A file to write a trace of every task event to, in the Chrome
	 * trace event format (JSON) that Perfetto's UI opens (README,
	 * "Tracing"): NULL (default: no trace) or a path, non-empty and
	 * shorter than 4096 bytes, read at weft_runtime_create, which
	 * creates or truncates the file (and fails with the open's error if
	 * it cannot).  The file is complete once weft_runtime_destroy
	 * returned, or at exit(3) if the runtime was never destroyed.
	 * Environment WEFT_TRACE=<path>.  Costs, when on, a clock read and a
	 * record per event, and a write of the buffered events each time a
	 * thread's buffer is full. */
	const char *trace_path;
	/* 1: one line per task event on stderr ("weft-trace: w0 start 5
	 * name", park, wake, end; no times, no pointers: a deterministic
	 * program at one worker prints the same lines each run); 0 (default)
	 * no lines.  Environment WEFT_TRACE_EVENTS=0 or 1. */
	unsigned trace_events;
	/* Events each thread buffers before writing them to trace_path
	 * (about 100 bytes each, per worker, plus two); 16 .. 1048576,
	 * default 4096.  Environment WEFT_TRACE_BUFFER. */
	unsigned trace_buffer;
	/* How often the run-time sampler publishes the clock that counts
	 * the run time of every group (weft_group_cpu_ns, the dump), in
	 * microseconds: 0 (off: only subtrees opened with
	 * WEFT_GROUP_CPU_TIME are counted) or 100 .. 1000000, default 1000.
	 * A thread ("weft-cpu") wakes once per period while any worker is
	 * awake, and sleeps for good while the runtime is idle.  The counts
	 * are sampled (docs/semantics.md rule 51): a slice is charged the
	 * periods that ended while it ran, so shorter periods give finer
	 * counts for more wake-ups.  Environment WEFT_CPU_SAMPLE_US. */
	unsigned cpu_sample_us;
} weft_config_t;

/* What it does: fills *cfg with the defaults (workers = the CPUs this
 * process may run on, from sched_getaffinity; 64 KiB stacks; 8192 guarded
 * stacks; 50 us spin; 40 offload threads; the real clock; no dump
 * signal; no seed; no stall watchdog; no trace, 4096 events per trace
 * buffer; run time sampled every 1000 us), then applies
 * the environment variables WEFT_WORKERS, WEFT_STACK_SIZE (bytes, or with
 * a K or M suffix), WEFT_GUARDED_STACKS, WEFT_SPIN_US,
 * WEFT_OFFLOAD_THREADS, WEFT_CLOCK ("real" or "virtual", exactly) and
 * WEFT_DUMP_SIGNAL (dump_signal by name without "SIG", exactly: HUP, INT,
 * QUIT, USR1, USR2, TERM or WINCH), WEFT_DEADLOCK ("error", "report"
 * or "off", exactly), WEFT_SEED (seed: decimal, 1 .. 2^64-1),
 * WEFT_STALL_MS (milliseconds, 0 .. 3600000), WEFT_TRACE (trace_path:
 * any non-empty path), WEFT_TRACE_EVENTS (0 or 1), WEFT_TRACE_BUFFER and
 * WEFT_CPU_SAMPLE_US (0, or 100 .. 1000000).
 * A bad value (not a number, trailing junk, negative, zero workers, out
 * of range, a clock, signal or deadlock name other than those listed, an
 * empty or too long WEFT_TRACE) is
 * never ignored: the default stays, cfg->env_error and the return value
 * are -EINVAL, and
 * cfg->message names the variable and the accepted range.  A later
 * weft_runtime_create with this cfg fails with the same error.  A WEFT_
 * variable that is none of these but within two edits of one (or a name
 * other runtimes use, such as WEFT_THREADS) is reported on stderr: "weft:
 * WEFT_WROKERS is not a weft variable; did you mean WEFT_WORKERS?", and
 * otherwise ignored.
 * Ownership: cfg is the caller's.
 * Errors: -EINVAL (NULL cfg, or a bad environment variable).
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_config_init(weft_config_t *cfg);

/* What it does: creates a runtime: starts cfg->workers worker threads,
 * the I/O thread (libuv loop) and, unless cfg->cpu_sample_us is 0, the
 * run-time sampler ("weft-cpu").  The workers sleep until a task
 * arrives.
 * Ownership: the caller owns *out and must weft_runtime_destroy it.
 * cfg is only read (its message field is written on failure).
 * Errors: -EINVAL (NULL argument, cfg not from weft_config_init, a field
 * out of range, or cfg->env_error set; cfg->message says which),
 * -ENOMEM, -EAGAIN (a thread could not be started).  On failure nothing is
 * left running and *out is untouched.
 * Checkpoint: no.  Threads: any thread that is not a weft worker. */
WEFT_EXTERN int weft_runtime_create(weft_runtime_t **out, weft_config_t *cfg);

/* What it does: runs fn(arg) as the root task (named "main") of a new task
 * tree on rt's workers and blocks the calling thread until it returns.
 * Several threads may run root tasks in one runtime at the same time.
 * Returns: fn's return value (0 on success); -ECANCELED if the root was
 * cancelled; -EDEADLK (virtual clock only) if the runtime found every
 * task blocked with no deadline pending and nothing in flight, and
 * cancelled the root (origin WEFT_CANCEL_DEADLOCK; docs/semantics.md
 * rule 44) while fn did not fail otherwise (*err_out stays NULL).
 * When fn failed (any other nonzero code: weft_fn) and err_out is not
 * NULL,
 * *err_out receives an error group whose single entry is the root's
 * failure (with its message, or the nested group it passed to
 * weft_fail_group).
 * Ownership: the caller owns *err_out (weft_error_free); arg is only
 * passed to fn.
 * Errors: -EINVAL (NULL rt or fn), -ENOMEM (nothing ran), WEFT_EMISUSE
 * (called from a weft fiber: it would block a worker; spawn instead),
 * -EBUSY (a weft_runtime_destroy of rt is deciding whether it may go on:
 * nothing ran).  A run counts itself before it touches rt, so a
 * weft_runtime_destroy called while it starts returns -EBUSY.
 * Checkpoint: no (the caller is not a fiber).
 * Threads: any thread that is not running a weft fiber. */
WEFT_EXTERN int weft_runtime_run(weft_runtime_t *rt, weft_fn fn, void *arg,
	weft_error_t **err_out);

/* What it does: stops and joins every thread of rt and frees everything
 * it holds.
 * Ownership: rt is invalid afterwards (on success).
 * Errors: -EINVAL (NULL), -EBUSY (a weft_runtime_run is under way, even
 * one that has not started its root yet; called from one of rt's own
 * threads; or a task handle of rt is still held, or a reference taken
 * with weft_group_retain or weft_portal_retain: release it, and call
 * again); then nothing is destroyed.  A held handle or reference is a
 * misuse: libraries built with WEFT_DEBUG abort instead, naming how many
 * are held (and, for task handles, one task).
 * Checkpoint: no.  Threads: any thread outside rt. */
WEFT_EXTERN int weft_runtime_destroy(weft_runtime_t *rt);

/* What it does: the one-call form (like anyio.run): weft_config_init,
 * weft_runtime_create, weft_runtime_run(fn, arg), weft_runtime_destroy.
 * A configuration error or a failure of fn is printed to stderr.
 * Returns: fn's result, or the creation error.
 * Checkpoint: no.  Threads: any thread that is not running a weft fiber. */
WEFT_EXTERN int weft_run(weft_fn fn, void *arg);

/* What it does: the number of worker threads of the runtime running the
 * calling fiber, or 0 when called outside a weft fiber.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN unsigned weft_worker_count(void);

/* What it does: the index (0 .. weft_worker_count() - 1) of the worker
 * running the calling fiber, or -1 when called outside a weft fiber.  A
 * task may resume on another worker after any checkpoint, so the value
 * is a fact about this moment; under a seed (weft_config_t.seed) it is
 * part of the replayed schedule.
 * Ownership: none.  Errors: none.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_worker_index(void);

WEFT_END_DECLS

#endif
