/* The deadline wheel: a hierarchical timing wheel (6 levels x 64 slots,
 * 65.536 us per tick) whose nodes live inside the objects they time, so
 * arming a deadline never allocates and can never fail, and insert, cancel
 * and expiry are O(1).  A plain data structure: no lock, no clock, no
 * thread of its own.
 * Thread: the holder of the runtime's timer lock (timer.c: the I/O thread,
 * a thread setting a deadline, or a worker firing due deadlines at a
 * yield). */
#ifndef WEFT_RUNTIME_CORE_WHEEL_H
#define WEFT_RUNTIME_CORE_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT__WHEEL_LEVELS 6
#define WEFT__WHEEL_SLOTS 64
/* One tick: 2^16 ns.  A deadline fires at most one tick late from the
 * wheel's rounding (plus the I/O thread's wake-up), so a 1 ms sleep's p99
 * lateness can stay under 1 ms (B11); 6 levels then cover 52 days. */
#define WEFT__WHEEL_TICK_NS ((int64_t)1 << 16)

/* A timer node, embedded in the object it times. */
struct weft__tnode {
	struct weft__tnode *prev, *next;
	int64_t when; /* deadline, weft_now() nanoseconds */
	int64_t tick; /* deadline in ticks, rounded up */
	uint8_t level, slot;
	bool armed;
};

typedef struct weft__wheel {
	int64_t elapsed; /* ticks processed so far */
	uint64_t occupied[WEFT__WHEEL_LEVELS];
	struct weft__tnode *slots[WEFT__WHEEL_LEVELS][WEFT__WHEEL_SLOTS];
	size_t len;
} weft__wheel_t;

void weft__wheel_init(weft__wheel_t *w, int64_t now);
/* Arms n (not armed) for `when`; a deadline already past fires at the next
 * advance. */
void weft__wheel_insert(weft__wheel_t *w, struct weft__tnode *n, int64_t when);
/* Disarms n (armed). */
void weft__wheel_remove(weft__wheel_t *w, struct weft__tnode *n);
/* The earliest time at which weft__wheel_advance may have work (a lower
 * bound: a far timer is only cascaded then), or INT64_MAX when empty or
 * when that work is a deadline within a tick of INT64_MAX (its tick
 * starts at 2^63 ns, past every int64). */
int64_t weft__wheel_next(const weft__wheel_t *w);
/* Processes time up to `now`: every node whose deadline passed is
 * disarmed and handed to fire(node, arg), which may re-arm nodes. */
void weft__wheel_advance(weft__wheel_t *w, int64_t now,
	void (*fire)(struct weft__tnode *, void *), void *arg);

/* As weft__wheel_advance, and also fires the nodes of the tick `now` is
 * in whose exact deadline passed (advance rounds deadlines up to the end
 * of their tick): a worker checking timers at a yield fires a 1 ms sleep
 * at 1 ms, not up to a tick later.  fire may re-arm nodes, but not
 * disarm others. */
void weft__wheel_fire_due(weft__wheel_t *w, int64_t now,
	void (*fire)(struct weft__tnode *, void *), void *arg);
/* The earliest deadline in w, exactly (not rounded to a tick), or
 * INT64_MAX when empty.  O(nodes in one slot).  For the virtual clock
 * (timer.c), which jumps to it. */
int64_t weft__wheel_earliest(const weft__wheel_t *w);
/* As weft__wheel_fire_due, but also exact when the next tick starts a
 * level-2 (or higher) turn, where fire_due leaves the deadlines inside
 * the current tick to the tick's end: every node whose `when` <= now
 * fires.  The virtual clock's jumps need this (its `now` never reaches
 * the tick's end by itself); it scans a whole slot there, too slow for
 * every yield. */
void weft__wheel_fire_exact(weft__wheel_t *w, int64_t now,
	void (*fire)(struct weft__tnode *, void *), void *arg);
/* A lower bound of the earliest deadline in w, or INT64_MAX when empty:
 * nothing is due before it. */
int64_t weft__wheel_due_hint(const weft__wheel_t *w);

#endif
