/* Seeded schedules (weft_config_t.seed, docs/semantics.md rule 47): one
 * baton per runtime, and only the worker holding it runs.  See baton.c
 * for the design. */
#ifndef WEFT_RUNTIME_CORE_BATON_H
#define WEFT_RUNTIME_CORE_BATON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct weft_runtime;
struct weft__worker;

/* No worker holds the baton: the runtime is quiet (nothing runnable). */
#define WEFT__BATON_NONE (-1)

typedef struct weft__baton {
	/* Fixed at create: cfg.seed != 0.  Read by anyone. */
	bool on;
	/* The rest is under rt's idle lock (idle.c), which the baton shares
	 * so that the quiescence answer (weft__idle_quiet) and a grant
	 * exclude each other. */
	int holder;	    /* a worker index, or WEFT__BATON_NONE */
	uint64_t prng;	    /* splitmix64 state, advanced per draw */
	uint64_t passes;    /* draws made so far (diagnostics) */
	pthread_cond_t cv;  /* broadcast at every change of holder */
	unsigned *eligible; /* scratch: nworkers entries */
} weft__baton_t;

/* Thread: the thread creating / destroying the runtime, while no worker
 * runs.  init leaves the baton with nobody (the runtime is quiet until
 * its first task arrives); -ENOMEM or a pthread error. */
int weft__baton_init(struct weft_runtime *rt, uint64_t seed);
void weft__baton_fini(struct weft_runtime *rt);

/* A seed's stream of numbers, for other deterministic choices (a
 * worker's steal victims): splitmix64 over *state.  Owner-only state. */
uint64_t weft__baton_mix(uint64_t *state);

/* The loop of a worker of a seeded runtime (sched.c calls it instead of
 * its own idle path): waits for the baton; returns true holding it, or
 * false when the runtime stops and this worker should leave.
 * Thread: w's own, in its scheduler loop. */
bool weft__baton_take(struct weft__worker *w);
/* A scheduling point: the holder w has run one task (or found none) and
 * draws the next holder among the workers that can make progress, or
 * lets the runtime go quiet when none can.  Returns with the baton given
 * away (the caller then calls weft__baton_take).  Thread: w's own, in its
 * scheduler loop, holding the baton. */
void weft__baton_pass(struct weft__worker *w);
/* Work arrived from outside while the runtime was quiet (the I/O thread,
 * a plain thread; called by weft__idle_notify when it sees every worker
 * listed as sleeping): draws a holder if nobody holds the baton.
 * Thread: any. */
void weft__baton_wake(struct weft_runtime *rt);
/* Shutdown: every waiting worker re-reads `stopping`.  Any thread. */
void weft__baton_wake_all(struct weft_runtime *rt);

#endif
