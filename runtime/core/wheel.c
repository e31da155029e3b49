/* The hierarchical timing wheel of deadlines (see wheel.h).
 *
 * Why a wheel: B7 parks 100,000+ sleepers whose deadlines fall within
 * 100 ms.  A binary heap of nodes paid ~1-2 us of cache misses per pop,
 * and the I/O thread fell hundreds of milliseconds behind; an array heap
 * can fail to grow.  A wheel files a deadline in a slot in O(1), and
 * expiry walks one slot list.  Resolution is one tick (65.536 us): the
 * I/O thread sleeps on a timerfd armed at the next tick with work, not on
 * libuv's millisecond timer, whose rounding (up to the next ms, from a
 * loop time truncated to the ms) made a 1 ms sleep last about 2 ms.
 *
 * Layout (after Tokio's timer wheel): level L slot S holds the deadlines
 * whose tick shares all bits above 6*(L+1) with `elapsed` and has S in
 * bits 6L..6L+5, at the lowest level where that holds.  So every deadline
 * at level L is later than every deadline at a lower level, the earliest
 * work is found by scanning the occupied bitmaps from level 0, and a slot
 * of level L > 0 is cascaded (its nodes refiled lower) when `elapsed`
 * reaches its start.  Deadlines beyond 64^6 ticks (~52 days) are filed at
 * the last level (less than one turn ahead) and refiled until due.
 *
 * Invariants
 *   1. A node is armed iff it is on exactly one slot list.
 *   2. occupied[L] bit S is set iff slots[L][S] is non-empty.
 *   3. No node fires before its `when`: advance fires a node only when
 *      its `when` <= now, and fire_due's extra pass over the next tick
 *      checks `when` <= now itself.  Within one advance, nodes fire in
 *      slot order, not strictly in deadline order: a slot of a higher
 *      level that is cascaded late fires its due nodes in list order. */
#include "core/wheel.h"

#define WHEEL_BITS 6
#define WHEEL_TICK WEFT__WHEEL_TICK_NS

/* The tick a deadline rounds up to.  Divide, then round: adding
 * WHEEL_TICK - 1 first would overflow for the deadlines within a tick of
 * INT64_MAX (every int64 is a valid deadline), and a wrapped, negative
 * tick would be filed in the current slot and refiled there by every
 * advance without end. */
static int64_t wheel_tick_up(int64_t ns)
{
	return ns <= 0 ? 0 : ns / WHEEL_TICK + (ns % WHEEL_TICK != 0);
}

void weft__wheel_init(weft__wheel_t *w, int64_t now)
{
	*w = (weft__wheel_t){ .elapsed = now / WHEEL_TICK };
}

/* The farthest a deadline is filed ahead of `elapsed`: one turn of the
 * last level less one of its slots, so that a clamped deadline never lands
 * in the last level's current slot (which would alias the current turn).
 * A farther deadline is refiled when its slot comes round. */
#define WHEEL_MAX_AHEAD                                                        \
	(((int64_t)1 << (WHEEL_BITS * WEFT__WHEEL_LEVELS)) -                   \
		((int64_t)1 << (WHEEL_BITS * (WEFT__WHEEL_LEVELS - 1))))

/* Files n at the level and slot its tick belongs to, given elapsed: the
 * level of the highest 6-bit group in which tick and elapsed differ. */
static void wheel_file(weft__wheel_t *w, struct weft__tnode *n)
{
	int64_t tick = n->tick < w->elapsed ? w->elapsed : n->tick;
	if (tick - w->elapsed > WHEEL_MAX_AHEAD)
		tick = w->elapsed + WHEEL_MAX_AHEAD;
	uint64_t masked = (uint64_t)(tick ^ w->elapsed) |
		(WEFT__WHEEL_SLOTS - 1);
	int level = (63 - __builtin_clzll(masked)) / WHEEL_BITS;
	if (level >= WEFT__WHEEL_LEVELS)
		level = WEFT__WHEEL_LEVELS - 1; /* crosses a top-level turn */
	int slot = (int)((tick >> (WHEEL_BITS * level)) &
		(WEFT__WHEEL_SLOTS - 1));
	n->level = (uint8_t)level;
	n->slot = (uint8_t)slot;
	n->prev = NULL;
	n->next = w->slots[level][slot];
	if (n->next)
		n->next->prev = n;
	w->slots[level][slot] = n;
	w->occupied[level] |= UINT64_C(1) << slot;
}

static void wheel_unfile(weft__wheel_t *w, struct weft__tnode *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		w->slots[n->level][n->slot] = n->next;
	if (n->next)
		n->next->prev = n->prev;
	if (w->slots[n->level][n->slot] == NULL)
		w->occupied[n->level] &= ~(UINT64_C(1) << n->slot);
	n->prev = n->next = NULL;
}

void weft__wheel_insert(weft__wheel_t *w, struct weft__tnode *n, int64_t when)
{
	n->when = when;
	n->tick = wheel_tick_up(when);
	n->armed = true;
	w->len++;
	wheel_file(w, n);
}

void weft__wheel_remove(weft__wheel_t *w, struct weft__tnode *n)
{
	wheel_unfile(w, n);
	n->armed = false;
	w->len--;
}

/* The earliest non-empty slot: its level, index and start tick.  False
 * when the wheel is empty. */
static bool wheel_next_slot(const weft__wheel_t *w, int *level_out,
	int *slot_out, int64_t *start_out)
{
	for (int level = 0; level < WEFT__WHEEL_LEVELS; level++) {
		uint64_t occ = w->occupied[level];
		if (occ == 0)
			continue;
		int shift = WHEEL_BITS * level;
		int pos = (int)((w->elapsed >> shift) &
			(WEFT__WHEEL_SLOTS - 1));
		/* First occupied slot at or after pos, wrapping. */
		uint64_t rot = pos ? (occ >> pos) | (occ << (64 - pos)) : occ;
		int slot = (__builtin_ctzll(rot) + pos) &
			(WEFT__WHEEL_SLOTS - 1);
		int64_t level_span = (int64_t)1 << (shift + WHEEL_BITS);
		int64_t base = w->elapsed & ~(level_span - 1);
		int64_t start = base + ((int64_t)slot << shift);
		if (slot < pos)
			start += level_span; /* the slot of the next turn */
		if (start < w->elapsed)
			start = w->elapsed; /* the current slot */
		*level_out = level;
		*slot_out = slot;
		*start_out = start;
		return true;
	}
	return false;
}

int64_t weft__wheel_next(const weft__wheel_t *w)
{
	int level, slot;
	int64_t start;
	if (!wheel_next_slot(w, &level, &slot, &start))
		return INT64_MAX;
	/* The tick of a deadline within a tick of INT64_MAX starts at
	 * 2^63 ns, which is not an int64 (every int64 is a valid deadline):
	 * saturate.  No real clock gets there; the virtual clock jumps by
	 * weft__wheel_earliest, not by this. */
	if (start > INT64_MAX / WHEEL_TICK)
		return INT64_MAX;
	return start * WHEEL_TICK;
}

void weft__wheel_advance(weft__wheel_t *w, int64_t now,
	void (*fire)(struct weft__tnode *, void *), void *arg)
{
	int64_t target = now / WHEEL_TICK;
	int level, slot;
	int64_t start;
	while (wheel_next_slot(w, &level, &slot, &start) && start <= target) {
		w->elapsed = start;
		/* Take the whole slot: fire may re-arm nodes into it. */
		struct weft__tnode *list = w->slots[level][slot];
		w->slots[level][slot] = NULL;
		w->occupied[level] &= ~(UINT64_C(1) << slot);
		while (list) {
			struct weft__tnode *n = list;
			list = n->next;
			/* The next node is on another parked stack, a cache
			 * and TLB miss: start it while this one is refiled or
			 * fired (firing cancels a scope and wakes a task, long
			 * enough to hide most of it). */
			if (list)
				__builtin_prefetch(list, 1);
			if (list)
				list->prev = NULL;
			n->prev = n->next = NULL;
			/* Due: fired now, even from a higher level's slot
			 * being cascaded (a wheel that fell behind, or a slot
			 * whose deadlines passed inside the current tick).
			 * Refiling it first would visit it once more, and each
			 * visit is a cache and TLB miss: nodes live on parked
			 * stacks, one per page (B7: 10^6 sleepers). */
			if (n->when <= now) {
				n->armed = false;
				w->len--;
				fire(n, arg);
			} else {
				wheel_file(w, n); /* cascade it lower */
			}
		}
	}
	if (target > w->elapsed)
		w->elapsed = target;
}

/* The level and slot where a node of tick t1 = elapsed + 1 is filed (the
 * rule of wheel_file). */
static void wheel_next_tick_slot(const weft__wheel_t *w, int *level, int *slot)
{
	int64_t t1 = w->elapsed + 1;
	uint64_t masked = (uint64_t)(t1 ^ w->elapsed) | (WEFT__WHEEL_SLOTS - 1);
	int l = (63 - __builtin_clzll(masked)) / WHEEL_BITS;
	if (l >= WEFT__WHEEL_LEVELS)
		l = WEFT__WHEEL_LEVELS - 1;
	*level = l;
	*slot = (int)((t1 >> (WHEEL_BITS * l)) & (WEFT__WHEEL_SLOTS - 1));
}

/* Fires every node of slots[level][slot] whose deadline is <= now (the
 * deadlines inside the current tick: see weft__wheel_fire_due). */
static void wheel_fire_slot(weft__wheel_t *w, int level, int slot, int64_t now,
	void (*fire)(struct weft__tnode *, void *), void *arg)
{
	struct weft__tnode *n = w->slots[level][slot];
	while (n) {
		struct weft__tnode *next = n->next;
		if (next)
			__builtin_prefetch(next); /* as in advance */
		if (n->when <= now) {
			wheel_unfile(w, n);
			n->armed = false;
			w->len--;
			fire(n, arg); /* may re-arm n: `next` was read first */
		}
		n = next;
	}
}

void weft__wheel_fire_due(weft__wheel_t *w, int64_t now,
	void (*fire)(struct weft__tnode *, void *), void *arg)
{
	weft__wheel_advance(w, now, fire, arg);
	/* advance handles whole ticks; deadlines inside the tick `now` is
	 * in were rounded up to its end, so they sit in the slot of the next
	 * tick: level 0's, or level 1's when that tick starts a new level-0
	 * turn (then the slot also holds later ticks, which stay). */
	int level, slot;
	wheel_next_tick_slot(w, &level, &slot);
	if (level >= 2)
		return; /* a level-2 boundary: leave it to the tick */
	wheel_fire_slot(w, level, slot, now, fire, arg);
}

int64_t weft__wheel_earliest(const weft__wheel_t *w)
{
	int level, slot;
	int64_t start;
	if (!wheel_next_slot(w, &level, &slot, &start))
		return INT64_MAX;
	/* Every deadline of a lower level is earlier than every deadline of
	 * a higher one, and the slots of one level are visited in time
	 * order: the earliest deadline is in this slot. */
	int64_t min = INT64_MAX;
	for (const struct weft__tnode *n = w->slots[level][slot]; n;
		n = n->next)
		if (n->when < min)
			min = n->when;
	return min;
}

void weft__wheel_fire_exact(weft__wheel_t *w, int64_t now,
	void (*fire)(struct weft__tnode *, void *), void *arg)
{
	weft__wheel_advance(w, now, fire, arg);
	/* As fire_due's extra pass, at any level: the deadlines inside the
	 * tick `now` is in sit in the slot of tick elapsed + 1, which at a
	 * level-2 (or higher) boundary also holds many later ticks. */
	int level, slot;
	wheel_next_tick_slot(w, &level, &slot);
	wheel_fire_slot(w, level, slot, now, fire, arg);
}

int64_t weft__wheel_due_hint(const weft__wheel_t *w)
{
	int level, slot;
	int64_t start;
	if (!wheel_next_slot(w, &level, &slot, &start))
		return INT64_MAX;
	/* A slot's start is its nodes' deadlines rounded up: one tick
	 * earlier is a lower bound of the earliest deadline (and an int64
	 * even for the last tick, 2^47: see weft__wheel_next). */
	return (start - 1) * WHEEL_TICK;
}
