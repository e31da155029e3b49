/* Introspection (docs/semantics.md rule 37): the children of a group, a
 * snapshot of every live task, and a dump of the whole group -> task tree
 * (text or JSON).  The calls about one task (its name and id, the current
 * and root task, the group that joins it, retain, done callbacks) are in
 * weft/task.h.
 *
 * Consistency: snapshots and dumps are weakly consistent (Kotlin's
 * DebugProbes contract).  Every task that is live during the whole
 * snapshot appears exactly once, in some state it had during the
 * snapshot; a task that starts or ends meanwhile appears at most once.
 * They may be taken from any thread, including a plain thread while the
 * runtime runs (a debugger, a watchdog), and never stop or slow the
 * tasks beyond the scope locks a dump holds briefly.
 *
 * Ids are for logs, dumps and matching snapshots: there is no call that turns
 * an id into a handle.  A handle is a reference on the task's record, and a
 * task nobody else holds ends without a read-modify-write of its reference
 * count (one atomic RMW fewer at the end of every task, on the path benchmarks
 * B1-B3 time); a reference taken from an id could race that end and pin a
 * recycled record.  Keep the handle (weft_spawn_opts_t.handle,
 * weft_task_retain) of a task you will want to act on. */
#ifndef WEFT_INSPECT_H
#define WEFT_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/export.h"
#include "weft/group.h"
#include "weft/runtime.h"
#include "weft/task.h"

WEFT_BEGIN_DECLS

/* One live task, copied out of the runtime by a snapshot. */
typedef struct weft_task_info {
	uint64_t id;	   /* as weft_task_id */
	uint64_t group_id; /* id of the group that joins it; 0 for a root */
	/* id of the task it is a child of: the owner of its group (the task
	 * that opened it), or for a half of a weft_par call taken by another
	 * worker (group_id 0), the caller; 0 for a root. */
	uint64_t parent_id;
	char name[WEFT_TASK_NAME_MAX];
	/* What it is parked on ("join", "sleep", "task wait", "start", a
	 * primitive's name such as "lock" or "event"), or NULL while it runs
	 * or waits for a worker.  A static string. */
	const char *parked_on;
	int worker; /* worker it runs on or last ran on; -1: none */
} weft_task_info_t;

/* What it does: copies every live task of rt (NULL: the calling task's
 * runtime) into out[0..cap) and sets *count to how many there were (so
 * *count > cap means some were left out: retry with a bigger array).
 * Weakly consistent (see the top of this file); tasks in no particular
 * order.  Costs a scan of every task record the runtime allocated.
 * Errors: -EINVAL (NULL count, or NULL out with cap > 0), WEFT_ENOTFIBER
 * (rt NULL outside a task).
 * Checkpoint: no; never blocks.  Threads: any thread, while rt exists. */
WEFT_EXTERN int weft_all_tasks(weft_runtime_t *rt, weft_task_info_t *out,
	size_t cap, size_t *count);

/* What it does: as weft_all_tasks, for the live children of g only
 * (tasks spawned into g, and started into it, still running).
 * Errors: -EINVAL (NULL g or count, or NULL out with cap > 0),
 * WEFT_EMISUSE (g was joined and freed: a stale handle; WEFT_DEBUG builds
 * abort naming the call).
 * Checkpoint: no; never blocks.  Threads: any thread, while g is alive. */
WEFT_EXTERN int weft_group_children(const weft_group_t *g,
	weft_task_info_t *out, size_t cap, size_t *count);

/* Dump formats. */
#define WEFT_DUMP_TEXT 0u
#define WEFT_DUMP_JSON 1u

/* Receives the dump, in pieces (no terminating NUL); returns 0, or a
 * negative code to stop the dump (weft_runtime_dump returns it). */
typedef int (*weft_dump_writer_fn)(void *ctx, const char *data, size_t len);

/* What it does: writes the tree of rt (NULL: the calling task's runtime):
 * each root task, the cancel scopes and groups its tasks have entered,
 * and under each group its live children, recursively.  Per task: id,
 * name, state ("parked"/"active"), what it is parked on, worker, its
 * effective deadline (on weft_now's clock), whether it is effectively
 * cancelled, whether cancelling it was requested, whether its innermost
 * scopes are shielded.  Per parked task also, when the dump could hold
 * it still (it parked and has not run since; a worker about to resume
 * it waits for the dump meanwhile, microseconds): how long it has been
 * parked (real time), what it waits on as an object (kind and address;
 * a Lock's owner task; an Event's flag; a channel's buffered count and
 * capacity, open ends and waiters; the group it joins and how many of
 * that group's children still run; a sleep's deadline; an I/O wait's
 * descriptor; the task a weft_task_wait waits for; waiter counts) and
 * its stack, innermost frame first, each "function+0xoff (file:line)"
 * (weft built with libdw: unwound from the registers its fiber saved;
 * without libdw no frames).  Per group and scope: id, deadline,
 * cancelled, shield; a group also where it was opened (the caller of
 * weft_group_open, named the same way).  Both formats start with a
 * header: the worker count, the live tasks and the main counters of
 * weft_runtime_stats (spawned, run, inline, parks, steals, sleeps).
 * A task may carry a note, a line of text weft attaches for the dump
 * (a supervisor's task and its children's keepers carry their restart
 * counts and last failure: weft/supervise.h).
 * WEFT_DUMP_TEXT: a header line, then one indented line per node (a
 * task's with "note=\"..\"" when it has a note); a
 * held parked task's line ends with "parked_for=<s>s waits_on=<kind>
 * object=<address>", the kind's fields (lock: "owner=<id>
 * owner_name=\"..\""; group: "group=<id> children_running=<n>"; sleep:
 * "until=<+s>s"; "stack=released" for a sleep or a stream wait that
 * gave its stack back (weft_sleep_until_opts, weft_stream_wait_readable:
 * then no frames follow); task (a join on a handle, or a start() waiting for
 * started()): "task=<id> task_name=\"..\""; to_thread: "fn=\"..\"", the
 * function, named as frames are) and key=value details, and its frames follow, one per line, indented one level
 * deeper, each starting with "#<i> "; a group's line has
 * "opened_at=\"..\"", "pending=<n>" when it has children spawned by its
 * owner that no worker has started yet (they are listed once they
 * start), a group whose run time is counted (every group,
 * unless the sampler is off: weft_group_cpu_ns) "cpu_ns=<n>", and a group
 * with caps (weft_group_opts_t) "children=<n> max_children=<n>
 * stack_bytes=<n> stack_bytes_max=<n>" (0: no such cap).  WEFT_DUMP_JSON: one object
 * {"workers":N,"now":ns,"tasks":N,"stats":{"spawned":N,...},
 * "tree":[nodes]}, each node an object with "type" ("task", "group",
 * "scope" or "sleep"), its fields and "children":[...]; a deadline is a
 * number or null.  A task node also has "note" (a string or null),
 * "parked_ns" (a number, or null
 * when not held parked), "waits_on" (null, or an object with "kind",
 * "object" (a hex string), the kind's fields ("owner" and "owner_name",
 * "task" and "task_name", "group" and "children_running", "until" and
 * "stack_released" (true or false; a stream wait has it, true, only when
 * its stack was given back), "function") and
 * "detail" (the key=value details)) and "backtrace" (an array of frame
 * strings, innermost first); a group node has "opened_at" (a string or
 * null), "pending" when not 0, when counted "cpu_ns", and with caps
 * "children",
 * "max_children", "stack_bytes" and "stack_bytes_max".  A task that has not yet entered any scope nor checkpointed is
 * listed under its group; a child its group's owner spawned is a task
 * from its start (until then it is counted in "pending").
 * The tree is collected first, under the scope locks and rt's dump lock
 * (which serialises dumps), and written after they are released, so
 * write may do anything except dump rt again.  With libdw, stacks are
 * unwound and names looked up in one libdw session per dump, on a
 * short-lived helper thread the caller waits for (milliseconds).
 * Errors: -EINVAL (NULL write, unknown flags), WEFT_ENOTFIBER (rt NULL
 * outside a task), -ENOMEM, or write's own negative code (a frame or a
 * name that cannot be allocated is left out instead).
 * Checkpoint: no (it does not park, but may spin briefly on scope locks
 * and primitives' spin locks).
 * Threads: any thread, while rt exists. */
WEFT_EXTERN int weft_runtime_dump(weft_runtime_t *rt, unsigned flags,
	weft_dump_writer_fn write, void *ctx);

/* What it does: weft_runtime_dump into buf with snprintf semantics: at
 * most size - 1 bytes and a NUL (if size > 0); *len receives the length
 * of the whole dump, so *len >= size means it was cut.
 * Errors: as weft_runtime_dump; -EINVAL also for NULL len, or NULL buf
 * with size > 0.  Checkpoint: no.  Threads: any thread, while rt exists. */
WEFT_EXTERN int weft_runtime_dump_buf(weft_runtime_t *rt, unsigned flags,
	char *buf, size_t size, size_t *len);

/* {======================================================= counters
 *
 * Scheduler counters (docs/semantics.md rule 37's introspection, as
 * numbers).  Each worker counts what it does in counters only it writes,
 * with plain (relaxed atomic) stores: no read-modify-write and no shared
 * cache line on the spawn, switch and park paths.  A reader on any thread
 * loads them one by one, so the result is a weakly consistent snapshot:
 * every number is a value its counter really had during the call, but
 * two numbers may be from slightly different moments (while tasks run,
 * parks may for a moment exceed the sum of the wakes, or the other way
 * round).  Once the runtime is idle (weft_runtime_run returned, no other
 * root runs) every counter is exact.  All counts start at 0 when the
 * runtime is created and only grow (tasks_live aside). */

/* One worker's counters (weft_worker_stats), or their sum over all
 * workers (weft_runtime_stats_t.total). */
typedef struct {
	/* Switches into a task's fiber: its first run, and every resumption
	 * after a park or a yield. */
	uint64_t tasks_run;
	/* Children run inline by a joining parent on its own stack (a spawn
	 * nobody stole: no fiber, no switch).  Not in tasks_run. */
	uint64_t inline_run;
	/* Steals: victim deques tried (one per try, up to 4 tries per victim
	 * in a pass), tries that took a task, and the tasks taken beside it
	 * (steal-half: up to half of what the victim had left).  Always 0
	 * at 1 worker. */
	uint64_t steal_attempts;
	uint64_t steals;
	uint64_t stolen_extra;
	/* Tasks that parked (blocked and switched out) on this worker.  A
	 * blocking call that is satisfied before it switches out is not a
	 * park. */
	uint64_t parks;
	/* Parked tasks this worker made runnable again: wakes_local, a task
	 * of this worker woke a task that last ran here; wakes_remote, one
	 * that last ran on another worker; wakes_early, the wake came before
	 * the parking task was off its stack, so this worker, the one it
	 * parked on, queued it (whoever woke it).  Wakes from the I/O thread
	 * and from plain threads are in weft_runtime_stats_t.  Over the
	 * whole runtime, once idle: parks == the sum of every wake
	 * counter. */
	uint64_t wakes_local;
	uint64_t wakes_remote;
	uint64_t wakes_early;
	/* Times the idle worker went to sleep (on a futex, or blocked in
	 * the poll of the runtime's sockets, after its spin), and times it
	 * woke from such a sleep. */
	uint64_t sleeps;
	uint64_t sleep_wakeups;
	/* Tasks taken from the runtime's injection queue (wakes from outside
	 * the workers, root tasks, spills of a full deque). */
	uint64_t inject_pops;
	/* Nanoseconds the worker thread was awake (not asleep on its futex
	 * or in the socket poll; its bounded idle spins count as awake),
	 * read on the real clock at each sleep and wake-up only. */
	uint64_t busy_ns;
} weft_worker_stats_t;

typedef struct {
	unsigned workers; /* the runtime's worker count */
	/* Tasks spawned or started into groups (weft_group_spawn,
	 * weft_group_start and every call built on them); root tasks of
	 * weft_runtime_run are not counted. */
	uint64_t tasks_spawned;
	/* Tasks live now, root tasks included: as weft_all_tasks counts them
	 * (a task whose handle is still held counts until it is released).
	 * Costs a scan of the runtime's task records. */
	uint64_t tasks_live;
	uint64_t groups;       /* task groups opened */
	uint64_t io_submitted; /* operations handed to the I/O thread */
	/* Parked tasks made runnable by the I/O thread (file and DNS
	 * completions, foreign descriptors' readiness, deadlines it fired;
	 * sockets' readiness in a seeded runtime only: elsewhere workers
	 * poll the sockets themselves) and by other plain threads (offload
	 * threads, foreign threads, a cancel from outside). */
	uint64_t wakes_io;
	uint64_t wakes_thread;
	weft_worker_stats_t total; /* every worker's counters summed */
} weft_runtime_stats_t;

/* What it does: fills *out with rt's counters (NULL rt: the calling
 * task's runtime): the runtime-wide ones and the sum of the workers'.
 * Weakly consistent (see above).
 * Ownership: out is the caller's.
 * Errors: -EINVAL (NULL out), WEFT_ENOTFIBER (rt NULL outside a task).
 * Checkpoint: no; never blocks nor locks.  Threads: any thread, while rt
 * exists. */
WEFT_EXTERN int weft_runtime_stats(weft_runtime_t *rt,
	weft_runtime_stats_t *out);

/* What it does: fills *out with the counters of worker `index` (0 ..
 * workers - 1) of rt (NULL: the calling task's runtime).  Weakly
 * consistent (see above).
 * Ownership: out is the caller's.
 * Errors: -EINVAL (NULL out, index out of range), WEFT_ENOTFIBER (rt NULL
 * outside a task).
 * Checkpoint: no; never blocks nor locks.  Threads: any thread, while rt
 * exists. */
WEFT_EXTERN int weft_worker_stats(weft_runtime_t *rt, unsigned index,
	weft_worker_stats_t *out);

/* }======================================================= */

WEFT_END_DECLS

#endif
