/* deque.pml: the Chase-Lev work-stealing deque of runtime/core/deque.c.
 *
 * Models
 *   weft__deque_push (with deque_grow), weft__deque_pop and
 *   weft__deque_steal; the owner's own-top steal of worker_pick (the
 *   oldest-first picks after a yield, which retries on -EAGAIN) and the
 *   thieves of runtime/core/sched.c: weft__sched_steal (up to 4 tries on
 *   -EAGAIN) followed by worker_steal_more (steal-half: up to
 *   size_approx / 2 more single steals, stopping at the first failure).
 *
 * Correspondence (one Promela statement per C atomic access)
 *   owner push   b = bottom (relaxed), t = top (acquire), a = array
 *                (relaxed); if b - t > mask: deque_grow copies [t, b)
 *                into an array twice as large (one step: the new array
 *                is private until published) and publishes it (release
 *                store of array); slot[b & mask] = item (relaxed);
 *                bottom = b + 1 (release).
 *   owner pop    b = bottom - 1, a = array; bottom = b (relaxed); seq_cst
 *                fence (no-op here); t = top (relaxed); empty: bottom =
 *                b + 1; item = slot[b & mask]; t < b: done; t == b: CAS
 *                top t -> t + 1 (seq_cst), then bottom = b + 1.
 *   steal        t = top (acquire); fence; b = bottom (acquire); t >= b:
 *                -ENOENT; a = array (acquire); item = slot[t & mask]
 *                (relaxed); CAS top t -> t + 1 (seq_cst): -EAGAIN or 0.
 *   size_approx  b = bottom, t = top (two relaxed loads, not a snapshot).
 *
 * Abstraction
 *   Items are the numbers 1..NITEMS; a slot holding 0 is a zeroed slot
 *   (deque_array_new uses calloc).  Arrays are rows of arr[]: row 0 has
 *   capacity CAP0, row r has CAP0 << r; `cur` is the array pointer.  C's
 *   smallest capacity is 4 (weft__deque_init refuses less); the model
 *   starts at 2 so that 3-4 items exercise both the wrap-around of the
 *   circular index and growth (the protocol does not depend on the
 *   capacity).  Indices are small ints (C: int64_t).  The owner runs a
 *   nondeterministic program of at most OPS operations (push while items
 *   remain, pop, own-top steal); each thief makes at most ROUNDS calls of
 *   weft__sched_steal on this deque.  Whatever is left at the end is
 *   drained by a final checker, as a pop loop would.
 *
 * Memory model
 *   Promela executes statements in one interleaving: every access is
 *   sequentially consistent.  The C code uses weaker orderings; they are
 *   those of Le, Pop, Cohen and Zappa Nardelli (PPoPP 2013), who proved
 *   the deque correct under C11 with them: seq_cst fences between pop's
 *   store of bottom and load of top and between steal's loads of top and
 *   bottom (the Dekker pair: checked present in deque.c), seq_cst CAS
 *   on top, release store/acquire load of bottom, release store/acquire
 *   load of the array pointer, acquire load of top in push.  deque.c
 *   differs from the paper only in being stronger (a release store of
 *   bottom where the paper has a release fence and a relaxed store;
 *   acquire where it has consume).  What this model adds to the proof is
 *   the composition: growth with thieves on the old array, the owner's
 *   own-top steals mixed with pops, and steal-half.
 *
 * Property: every pushed item is taken exactly once, by pop or by steal
 *   (no loss, no duplicate), no taken item is a zeroed slot, and top
 *   never exceeds bottom outside pop (invariant 2 of deque.c).
 */

#ifndef NITEMS
#define NITEMS 3
#endif
#ifndef OPS
#define OPS 5		/* owner operations (pushes included) */
#endif
#ifndef NTHIEVES
#define NTHIEVES 2
#endif
#ifndef ROUNDS
#define ROUNDS 1	/* weft__sched_steal calls per thief */
#endif
#define CAP0 2
#define NARR 3		/* capacities 2, 4, 8 */
#define MAXCAP 8

typedef row { byte s[MAXCAP] };
row arr[NARR];
byte cur = 0;		/* the array pointer */
short top = 0;
short bottom = 0;
byte taken[NITEMS + 1];	/* how many times each item left the deque */
byte done = 0;		/* processes finished */
byte npushed = 0;	/* items pushed: 1..npushed */

#define MASK(a) ((CAP0 << (a)) - 1)

inline take(it) {
	d_step {
		assert(it >= 1 && it <= NITEMS);
		taken[it]++;
		assert(taken[it] == 1)
	}
}

/* weft__deque_steal: rc 0 (item in it), 1 (-EAGAIN), 2 (-ENOENT). */
inline steal(rc, it) {
	short st, sb;
	byte sa;
	st = top;		/* acquire; then the seq_cst fence */
	sb = bottom;		/* acquire */
	if
	:: st >= sb -> rc = 2
	:: else ->
		sa = cur;	/* acquire */
		it = arr[sa].s[st & MASK(sa)];	/* relaxed */
		if		/* CAS top st -> st + 1, seq_cst */
		:: atomic { top == st -> top = st + 1 }; rc = 0
		:: atomic { top != st -> skip }; rc = 1
		fi
	fi;
	st = 0; sb = 0; sa = 0
}

proctype owner() {
	byte pushed = 0, ops = 0, it = 0, rc = 0;
	short b, t;
	byte a, na;
	do
	:: ops < OPS && pushed < NITEMS ->	/* weft__deque_push */
		ops++; pushed++;
		b = bottom;			/* relaxed */
		t = top;			/* acquire */
		a = cur;			/* relaxed */
		if
		:: b - t > MASK(a) ->		/* deque_grow */
			na = a + 1;
			assert(na < NARR);
			d_step {
				t = t;		/* copy [t, b) */
				do
				:: t < b ->
					arr[na].s[t & MASK(na)] =
						arr[a].s[t & MASK(a)];
					t++
				:: else -> break
				od
			}
			cur = na;		/* release */
			a = na
		:: else -> skip
		fi;
		arr[a].s[b & MASK(a)] = pushed;	/* relaxed */
		npushed = pushed;		/* ghost */
		bottom = b + 1;			/* release */
		b = 0; t = 0; a = 0; na = 0
	:: ops < OPS ->				/* weft__deque_pop */
		ops++;
		b = bottom - 1;			/* relaxed */
		a = cur;			/* relaxed */
		bottom = b;			/* relaxed; seq_cst fence */
		t = top;			/* relaxed */
		if
		:: t > b -> bottom = b + 1	/* empty */
		:: else ->
			it = arr[a].s[b & MASK(a)];	/* relaxed */
			if
			:: t < b -> take(it)
			:: else ->		/* last item: race for it */
				if
				:: atomic { top == t -> top = t + 1 };
					take(it)
				:: atomic { top != t -> skip }
				fi;
				bottom = b + 1	/* relaxed */
			fi
		fi;
		b = 0; t = 0; a = 0; it = 0
	:: ops < OPS ->			/* worker_pick, oldest first */
		ops++;
		do
		:: steal(rc, it);
			if
			:: rc == 0 -> take(it); break
			:: rc == 1 -> skip	/* -EAGAIN: retry */
			:: rc == 2 -> break
			fi
		od;
		it = 0; rc = 0
	:: else -> break
	od;
	done++
}

proctype thief() {
	byte rounds = 0, tries, it = 0, rc = 0, want, moved;
	do
	:: rounds < ROUNDS ->		/* weft__sched_steal on this victim */
		rounds++;
		tries = 0;
		do
		:: tries < 4 ->
			tries++;
			steal(rc, it);
			if
			:: rc == 0 ->
				take(it);
				/* worker_steal_more: size_approx / 2 */
				short hb, ht;
				hb = bottom;	/* relaxed */
				ht = top;	/* relaxed */
				want = (hb > ht -> (hb - ht) / 2 : 0);
				moved = 0;
				do
				:: moved < want ->
					steal(rc, it);
					if
					:: rc == 0 -> take(it); moved++
					:: else -> break
					fi
				:: else -> break
				od;
				break
			:: rc == 1 -> skip
			:: rc == 2 -> break
			fi
		:: else -> break
		od;
		it = 0; rc = 0
	:: else -> break
	od;
	done++
}

/* After everyone stopped: drain what is left (the owner's pop loop
 * would), then every item pushed must have been taken exactly once and
 * nothing else taken. */
proctype check() {
	short i;
	done == NTHIEVES + 1;
	assert(top <= bottom);
	i = top;
	do
	:: i < bottom -> take(arr[cur].s[i & MASK(cur)]); i++
	:: else -> break
	od;
	i = 1;
	do
	:: i <= NITEMS ->
		assert(taken[i] == (i <= npushed -> 1 : 0));
		i++
	:: else -> break
	od
}

init {
	atomic {
		run owner();
		byte k = 0;
		do
		:: k < NTHIEVES -> run thief(); k++
		:: else -> break
		od;
		run check()
	}
}
