/* par.pml: the split deque of weft_par's offered halves,
 * runtime/core/par.c (and its inline half in par.h).
 *
 * Models
 *   par.h    weft__par_push (the slot store, head, and the expose test:
 *            split == old head, or splitreq), weft__par_pop (head == 0:
 *            the call was given a task; a private index: taken back).
 *   par.c    weft__par_expose (half the private part, at least one, by
 *            a CAS of ts unless unasked and something is shared),
 *            weft__par_pop_shared (CAS ts to (t, i) or, stolen, (i, i)),
 *            weft__par_steal (acquire load of ts; empty: splitreq; else
 *            CAS tail up, then the relaxed read of the slot, then the
 *            marking CAS OFFERED -> TAKEN), weft__par_flush (CAS ts to
 *            (0, 0), wait for the marks of the entries below tail, give
 *            the rest tasks), and the caller's wait for a taken half
 *            (it proceeds once the half is marked; park.pml covers the
 *            park itself).
 *
 * Processes
 *   owner    a nondeterministic program of at most OPS steps: push a new
 *            call (while calls remain and the deque has room), pop its
 *            newest pending call (its weft_par returning), or flush (a
 *            switch-out).  After a flush the same process keeps pushing
 *            from index 0, standing for the next task on the worker: the
 *            deque cannot tell them apart, and the older calls' pops come
 *            after the newer ones' (stack order), as in C.  At the end it
 *            pops what is pending.
 *   thief    NTHIEVES of them, ROUNDS steal attempts each.
 *
 * Abstraction
 *   Calls are numbered 1..NCALLS; `ran[c]` counts the runs of call c's
 *   offered half: by the owner (taken back), by a thief, or by the task
 *   a flush made.  ts is the pair (tail, split_), changed together in one
 *   atomic step (C: one 64-bit word, CAS).  Indices are small (C: 32
 *   bits).
 *
 * Memory model
 *   Promela is sequentially consistent.  Every decision is made by a
 *   read-modify-write of ts (totally ordered in C whatever the order
 *   argument) or by the marking CAS of a call's state; the slots are
 *   written by the owner before the CAS of ts that exposes them
 *   (release) and read by a thief after its CAS (acquire), so a thief's
 *   read sees the owner's last write before the exposure; the owner's
 *   private pushes and pops need no order because thieves never read
 *   past split.  What SC could hide is a slot rewritten between a
 *   thief's CAS and its read: the model interleaves the two, and the
 *   owner's rewrites are exactly what C does.
 *
 * Known violation (a check that the model sees the race it is for)
 *   -DFLUSH_NO_WAIT: a flush that resets the deque without waiting for
 *   the marks of the entries below tail.  A thief whose CAS took an
 *   index reads the slot after the next task pushed over it: it runs
 *   that task's call, which its owner also runs (or the thief's own call
 *   never runs).
 *
 * Properties
 *   - every pushed call's half runs exactly once (assertions at each run
 *     and at the end);
 *   - a pop finds its own call at the top of the deque (the slot check);
 *   - tail <= split always;
 *   - no deadlock: the owner's waits for a thief's mark end.
 */

#ifndef NCALLS
#define NCALLS 4
#endif
#ifndef OPS
#define OPS 7
#endif
#ifndef CAP
#define CAP 4
#endif
#ifndef NTHIEVES
#define NTHIEVES 2
#endif
#ifndef ROUNDS
#define ROUNDS 2
#endif

byte slot[CAP];
byte tail = 0;
byte split_ = 0;
bool splitreq = 0;
bool marked[NCALLS + 1];	/* state != OFFERED */
byte ran[NCALLS + 1];
byte npushed = 0;
byte done = 0;

inline ran_half(c) {
	d_step {
		assert(c >= 1 && c <= npushed);
		ran[c]++;
		assert(ran[c] == 1)
	}
}

proctype owner() {
	byte head = 0, osplit = 0;	/* owner-only */
	byte mine[NCALLS];		/* pending calls, oldest first */
	byte depth = 0, ops = 0;
	byte c, t, i, n, ns;
	bool asked;
	do
	:: ops < OPS && npushed < NCALLS && head < CAP ->	/* push */
		ops++;
		d_step { npushed++; c = npushed };
		mine[depth] = c;
		depth++;
		slot[head] = c;			/* relaxed */
		head++;
		if
		:: osplit == head - 1 || splitreq ->	/* weft__par_expose */
			asked = splitreq;
			if
			:: asked -> splitreq = 0
			:: else -> skip
			fi;
			n = head - osplit;
			ns = osplit + (n + 1) / 2;
			atomic {		/* the CAS loop's last round */
				assert(tail <= split_);
				if
				:: !asked && tail < split_ -> skip
				:: else -> split_ = ns; osplit = ns
				fi
			}
		:: else -> skip
		fi
	:: ops < OPS && depth > 0 ->	/* pop: a call returns */
		ops++;
		depth--;
		c = mine[depth];
		if
		:: head == 0 ->		/* given a task: wait for its mark */
			marked[c]
		:: else ->
			assert(slot[head - 1] == c);
			i = head - 1;
			if
			:: i >= osplit -> head = i; ran_half(c)
			:: else ->		/* weft__par_pop_shared */
				atomic {
					t = tail;
					if
					:: t <= i -> split_ = i
					:: else -> assert(t == i + 1);
						tail = i; split_ = i
					fi
				};
				osplit = i;
				head = i;
				if
				:: t <= i -> ran_half(c)
				:: else -> marked[c]	/* the thief's */
				fi
			fi
		fi
	:: ops < OPS && head > 0 ->	/* weft__par_flush */
		ops++;
		atomic { t = tail; tail = 0; split_ = 0 };
#ifdef FLUSH_NO_WAIT
		i = t;			/* a flush that does not wait */
#else
		i = 0;
		do			/* taken: wait for each thief's mark */
		:: i < t -> c = slot[i]; marked[c]; i++
		:: else -> break
		od;
#endif
		do			/* the rest get tasks, which run them */
		:: i < head -> c = slot[i]; marked[c] = 1; ran_half(c); i++
		:: else -> break
		od;
		head = 0;
		osplit = 0
	:: else -> break
	od;
	/* The pending calls return, newest first. */
	do
	:: depth > 0 ->
		depth--;
		c = mine[depth];
		if
		:: head == 0 -> marked[c]
		:: else ->
			assert(slot[head - 1] == c);
			i = head - 1;
			if
			:: i >= osplit -> head = i; ran_half(c)
			:: else ->
				atomic {
					t = tail;
					if
					:: t <= i -> split_ = i
					:: else -> assert(t == i + 1);
						tail = i; split_ = i
					fi
				};
				osplit = i;
				head = i;
				if
				:: t <= i -> ran_half(c)
				:: else -> marked[c]
				fi
			fi
		fi
	:: else -> break
	od;
	done++
}

proctype thief() {
	byte r = 0, t, s, c;
	do
	:: r < ROUNDS ->
		r++;
		atomic { t = tail; s = split_ };	/* acquire */
		if
		:: t >= s -> splitreq = 1
		:: else ->
			if
			:: atomic { tail == t && split_ == s -> tail = t + 1 };
				c = slot[t];		/* relaxed, after the CAS */
				d_step {		/* the marking CAS */
					assert(c >= 1 && c <= npushed);
					marked[c] = 1
				};
				ran_half(c)
			:: atomic { !(tail == t && split_ == s) -> skip }
			fi
		fi
	:: else -> break
	od;
	done++
}

init {
	byte k;
	atomic {
		run owner();
		k = 0;
		do
		:: k < NTHIEVES -> run thief(); k++
		:: else -> break
		od
	};
	done == NTHIEVES + 1;
	k = 1;
	do
	:: k <= npushed -> assert(ran[k] == 1); k++
	:: else -> break
	od
}
