/* The runtime object (behind weft_runtime_t): owns every thread and
 * every shared structure of one runtime; the few process-wide pieces
 * (ids, diagnostic counters, the overflow handler, signal dispositions)
 * are listed in ARCHITECTURE.md, "Process-wide state".
 *
 * Every layer includes this header, so it includes only base/ and core/
 * headers and reaches the upper layers' subsystems (the I/O thread, the
 * offload pool, signal watchers) through pointers to forward-declared
 * structs.  Each field says who writes it; the struct is created and
 * destroyed by runtime.c only. */
#ifndef WEFT_RUNTIME_RUNTIME_H
#define WEFT_RUNTIME_RUNTIME_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/baton.h"
#include "core/cpuclock.h"
#include "core/idle.h"
#include "core/inject.h"
#include "core/ioq.h"
#include "core/records.h"
#include "core/sched.h"
#include "core/stack.h"
#include "core/stats.h"
#include "core/task.h"
#include "core/timer.h"
#include "weft/runtime.h"

/* A root task listed for dumps; lives in weft_runtime_run's frame. */
struct weft__root_entry {
	struct weft_task *task;
	struct weft__root_entry *next;
	/* Under insp_lock: the virtual clock's quiescence check found every
	 * task blocked with nothing to wake them and cancelled this root
	 * (timer.c); weft_runtime_run then returns -EDEADLK. */
	bool deadlocked;
};

struct weft_runtime {
	/* Fixed at create (read-only afterwards): cfg, nworkers, workers. */
	weft_config_t cfg;
	unsigned nworkers;
	weft__worker_t *workers; /* array of nworkers, 128-byte aligned */
	weft__stack_shared_t stacks;
	weft__inject_t inject;
	weft__idle_t idle;
	weft__baton_t baton; /* seeded schedules (baton.c); off: on false */
	weft__record_pool_t records; /* task/group records between workers */
	weft__timer_t timer;	     /* deadlines (timer.c) */
	weft__ioq_t ioq;	     /* requests to the I/O thread (ioq.c) */
	struct weft__io *io;	     /* the I/O thread (io.c); set at create */
	/* Set once by destroy (release); workers read it (acquire) before
	 * sleeping and after waking. */
	atomic_bool stopping;
	/* Calls of weft_runtime_run under way (counted before their root
	 * is created), plus WEFT__RUNTIME_DESTROYING while
	 * weft_runtime_destroy checks whether it may go on; destroy refuses
	 * while a run is counted, a run refuses while destroy checks
	 * (runtime.c; acq_rel). */
	atomic_int running_roots;
	/* References users took with weft_group_retain and
	 * weft_portal_retain and have not released (not those weft takes
	 * itself: a portal's group, a shutdown controller's): destroy
	 * refuses while any is held, as for a task handle, since a release
	 * after the destroy would touch freed memory.  relaxed: a count
	 * (the releases a destroy must see happen before it, as the
	 * caller's own ordering guarantees). */
	atomic_long user_refs;
	/* Counters of threads that are not workers (core/stats.h); zeroed
	 * with the rest of the runtime at create. */
	weft__runtime_stats_t stats;
	/* Logical clock for error leaves (relaxed fetch_add). */
	atomic_ullong error_seq;
	/* Cancel generation: bumped by every cancellation after its marks
	 * (release), read by checks of scopes not linked yet (acquire); a
	 * check whose scope pulled its state at the current generation needs
	 * no walk (core/cancel.c, "Lazy links").  Starts at 1: 0 in a
	 * scope's pull word means "unknown". */
	_Atomic uint64_t cancel_gen;
	/* Task records and introspection */
	struct weft__record_arena tasks; /* type-stable task records */
	/* Root tasks inside weft_runtime_run, under insp_lock; a dump holds
	 * insp_lock while it walks their scope trees, so a root record
	 * outlives the walk. */
	pthread_mutex_t insp_lock;
	/* Whether dumps pin with the asymmetric fence (core/inspect.c,
	 * "Reading a parked task"); fixed before the workers start, which
	 * copy it. */
	bool insp_asym;
	struct weft__root_entry *roots;
	/* Subsystems created lazily by their modules (NULL until then). */
	struct weft__offload *offload; /* to_thread pool (offload.c) */
	struct weft__signals *signals; /* signal watchers (signal.c) */
	/* The stall watchdog (core/stall.c): NULL unless cfg.stall_ms; set
	 * at create before the workers start, freed at destroy after they
	 * were joined. */
	struct weft__stall *stall;
	/* The trace (core/trace.c): NULL unless cfg asks for one; set at
	 * create before any thread starts, freed at destroy after every
	 * thread was joined. */
	struct weft__trace *trace;
	/* The run-time sampler (core/cpuclock.c): started at create
	 * before the workers, stopped at destroy after them. */
	weft__cpuclock_t cpuclock;
	/* Notes the dump prints with their tasks (core/inspect.h), listed
	 * under notes_lock (zeroed at create: unlocked, empty). */
	weft__spin_t notes_lock;
	struct weft__inspect_note *notes;
};

#endif
