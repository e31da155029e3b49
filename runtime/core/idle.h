/* Idle workers: spinning and sleeping accounting, wake-ups without lost
 * notifications (see idle.c). */
#ifndef WEFT_RUNTIME_CORE_IDLE_H
#define WEFT_RUNTIME_CORE_IDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct weft_runtime;
struct weft__worker;
struct weft_task;

typedef struct weft__idle {
	pthread_mutex_t lock;
	struct weft__worker *sleepers; /* under lock */
	atomic_int nsleeping;	       /* written under lock; read racily */
	atomic_int nspinning;	       /* workers looking for work */
	atomic_int fence_word;	       /* TSan builds: see weft__idle_fence */
	/* Times every worker came to be listed as sleeping (a quiet
	 * stretch began), under lock: two quiet answers with the same
	 * value saw one stretch, with no task run between them (the real
	 * clock's asleep report, timer.c). */
	unsigned long quiet_gen;
	/* The socket poller (idle.c, "Polling sockets"), installed by the
	 * I/O side before the workers start, NULL when the I/O thread polls
	 * (seeded runtimes): poll(rt, 0) readies the waiters of the sockets
	 * that became ready, on the calling worker; poll(rt, ms) first
	 * waits up to ms (-1: no limit) for an event or poll_interrupt. */
	int (*poll)(struct weft_runtime *rt, int timeout_ms);
	void (*poll_interrupt)(struct weft_runtime *rt);
	/* A socket joined the set: polling is worth its system call from
	 * now on (relaxed: a hint, see idle.c). */
	atomic_bool poll_on;
	/* The worker blocked in poll instead of its futex, or NULL. */
	_Atomic(struct weft__worker *) poller;
} weft__idle_t;

/* A full StoreLoad fence for the Dekker pairs of idle.c.  ThreadSanitizer
 * does not model atomic_thread_fence (gcc warns with -Wtsan), so TSan
 * builds use a seq_cst read-modify-write on one shared word instead, which
 * TSan does model and which is also a full fence on x86.  Other builds use
 * the fence: no shared cache line is written. */
#if defined(__SANITIZE_THREAD__)
/* seq_cst RMW: the notifier's and the sleeper's RMWs of fence_word are
 * totally ordered, which is the pairing the two fences give otherwise. */
#define WEFT__IDLE_FENCE(idle)                                                 \
	((void)atomic_fetch_add_explicit(&(idle)->fence_word, 0,               \
		memory_order_seq_cst))
#else
/* seq_cst fence: weft__idle_notify's pairs with idle_sleep's. */
#define WEFT__IDLE_FENCE(idle) atomic_thread_fence(memory_order_seq_cst)
#endif

/* Thread: the thread creating the runtime, before the workers start /
 * the one tearing it down, after they are joined. */
int weft__idle_init(weft__idle_t *idle);
void weft__idle_fini(weft__idle_t *idle);

/* Called after publishing new runnable work: wakes one sleeping worker
 * unless one is already looking.  Any thread. */
void weft__idle_notify(struct weft_runtime *rt);
/* Wake every sleeping worker (shutdown).  Any thread. */
void weft__idle_wake_all(struct weft_runtime *rt);
/* Look for work for a bounded spin, then sleep until notified.  Returns
 * a task, or NULL when the runtime is stopping.  Thread: w's own worker,
 * in its scheduler loop (it sleeps the thread, not a fiber). */
struct weft_task *weft__idle_find_or_sleep(struct weft__worker *w);
/* Whether the runtime is quiescent: every worker listed as sleeping, the
 * injection queue, every deque and the I/O thread's request queue empty;
 * *holds receives the virtual clock's hold count read at the same time,
 * and *posted whether requests wait in the request queue (then the I/O
 * thread will run again: the poster woke it), and *gen quiet_gen.  Decided
 * under the idle
 * lock, so no worker leaves the list meanwhile (idle.c, invariant 4), and
 * a worker's requests posted before it listed itself are seen.  Thread:
 * the I/O thread (timer.c's quiescence check). */
bool weft__idle_quiet(struct weft_runtime *rt, long *holds, bool *posted,
	unsigned long *gen);
/* Every worker is on the sleepers list: exact under the idle lock
 * (weft__idle_lock; no worker leaves the list while it is held, idle.c
 * invariant 4), a hint otherwise.  Thread: any. */
bool weft__idle_all_asleep(struct weft_runtime *rt);
/* The idle lock, for a decision that must not race with a worker leaving
 * the sleepers list (core/cpuclock.c, "Parking").  Thread: any thread
 * that is not a worker inside idle.c. */
void weft__idle_lock(struct weft_runtime *rt);
void weft__idle_unlock(struct weft_runtime *rt);
/* Installs the socket poller (see weft__idle_t).  Thread: the runtime's
 * creator, before the workers start. */
void weft__idle_set_poller(struct weft_runtime *rt,
	int (*poll)(struct weft_runtime *rt, int timeout_ms),
	void (*poll_interrupt)(struct weft_runtime *rt));
/* Sockets now wait in the set: workers poll from here on.  Thread:
 * any. */
static inline void weft__idle_poll_on(weft__idle_t *idle)
{
	/* relaxed: a hint; the worker that set it goes through its idle
	 * loop before it sleeps, and polls there. */
	if (!atomic_load_explicit(&idle->poll_on, memory_order_relaxed))
		atomic_store_explicit(&idle->poll_on, true,
			memory_order_relaxed);
}
/* The slow path of weft__idle_poll_busy below. */
__attribute__((cold)) void weft__idle_poll_busy_slow(struct weft_runtime *rt);
/* A busy worker's poll, between tasks (sched.c): readies what the socket
 * set has for the calling worker w unless no socket ever waited (one
 * relaxed load and a branch: the hot paths' cost when there are none) or
 * a worker is blocked in the poll (it gets the events).  Thread: w's
 * own, in its loop or on a fiber that is switching out (the poll's wakes
 * follow the protocol any waker does; it takes about half a KiB of that
 * fiber's stack). */
static inline void weft__idle_poll_busy(weft__idle_t *idle,
	struct weft_runtime *rt)
{
	/* relaxed: a hint (see poll_on). */
	if (__builtin_expect(atomic_load_explicit(&idle->poll_on,
				     memory_order_relaxed),
		    0))
		weft__idle_poll_busy_slow(rt);
}
/* Starts w's awake stretch for its busy time (stats.h), at its thread's
 * start and after each sleep.  Thread: w's own worker. */
void weft__idle_stats_awake(struct weft__worker *w);
/* Leaves the spinning state; wakes another spinner if this was the last
 * one (so a burst of new work is not left to one worker).  Thread: w's
 * own worker. */
void weft__idle_stop_spinning(struct weft__worker *w);

#endif
