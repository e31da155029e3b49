/* sock.pml: the socket close gate of runtime/io/sock.c.
 *
 * Models
 *   weft__sock_call_begin / weft__sock_call_end (the call's reference),
 *   weft__sock_enter / weft__sock_leave around a direct system call,
 *   weft__sock_wait (REGISTERED inside the gate, then the wait posted to
 *   the I/O thread), weft__sock_close and sock_try_finish (CLOSED, the
 *   POSTED CAS, close on the spot or posted), weft__sock_unref and its
 *   free_fn, and on the I/O thread sock_wait_start, sock_edge (through
 *   sock_dispatch) and sock_close_fn.  The callers are the read and
 *   write paths of runtime/io/stream.c (stream_recv's loop: enter, recv,
 *   leave, wait on EAGAIN).
 *
 * Processes and correspondence
 *   caller    NCALLS of them (a reader and a writer: one per side): ref
 *             (call_begin), then up to TRIES rounds of enter (fetch_add
 *             INSIDE; CLOSED: leave and return WEFT_ECLOSED), the system
 *             call (`insys`), leave (fetch_sub; last out of a closed
 *             gate: sock_try_finish), and, nondeterministically, EAGAIN:
 *             weft__sock_wait (enter, fetch_or REGISTERED, leave, post
 *             the wait; weft__ioop_run parks until the I/O thread
 *             completes it); then unref (call_end).
 *   closer    weft_stream_close -> weft__sock_close: fetch_or CLOSED,
 *             then sock_try_finish: acquire load of the gate, CAS
 *             POSTED (loop), REGISTERED: post sock_close_fn, else
 *             close(fd) and unref.  It starts once every call has taken
 *             its reference (a call that begins after the close is a use
 *             of a closed stream, which the API forbids).
 *   io        the I/O thread: runs posted nodes in posting order (ioq.c
 *             drains its queue whole, oldest first) and, while fd is in
 *             the epoll set, edges (sock_dispatch -> sock_edge).
 *   free      the unref that reaches 0 runs free_fn: `freed`.
 *
 * Abstraction
 *   The gate is a byte: CLOSED 1, POSTED 2, REGISTERED 4, INSIDE 8 as in
 *   sock.c; `refs` as in C.  The epoll set, the descriptor and the
 *   waiter slots are flags; a wait's completion is a flag the caller
 *   blocks on (the ioop word: DONE is the I/O thread's last access to
 *   the op).  Cancellation of a wait (sock_wait_cancel) and edges that
 *   arrive before the first wait are left out; at most EDGES edges.
 *
 * Memory model
 *   Promela is sequentially consistent.  Every gate update in C is a
 *   read-modify-write of the one gate word (acq_rel; REGISTERED's
 *   fetch_or is relaxed), so all of them are totally ordered in C too
 *   (the modification order of one atomic), and a CAS or fetch_add
 *   always reads the latest value: SC adds nothing there.  The one
 *   plain load, sock_try_finish's first, only feeds the CAS, which
 *   re-reads on failure.  The descriptor and the epoll set are ordered
 *   by the gate's acquire/release (the system call before the close)
 *   and by the I/O thread doing all epoll work.  refs: acq_rel
 *   fetch_sub (relaxed fetch_add by a holder).
 *
 * Properties (assertions)
 *   - no system call runs on a closed descriptor, close(2) runs once,
 *     and never while a system call is inside or the fd is in the epoll
 *     set;
 *   - nothing is added to the epoll set after the close;
 *   - nobody touches the socket after free_fn ran (each access asserts
 *     !freed), free_fn runs once;
 *   - no waiter is left parked (timeout monitor: every call returns and
 *     the object is freed in the end).
 *
 * Finding.  Without CLOSER_REF the model reaches a use after free: the
 * closer's sock_try_finish reads s->gate after a caller that left the
 * gate last finished the close and dropped the last reference (see
 * the note in tools/models/check.sh and the interleaving there).
 * CLOSER_REF models the fix, which the C code now has (the model's
 * default): the closer holds a reference from before its fetch_or of
 * CLOSED until after sock_try_finish (in C, the reference the close's
 * CAS on the record's life word takes, dropped once weft__sock_close has
 * returned; io.h).  -DCLOSER_NO_REF models the code before the fix;
 * check.sh runs it to show the model still catches the bug.
 */

#ifndef CLOSER_NO_REF
#define CLOSER_REF
#endif

#ifndef NCALLS
#define NCALLS 2
#endif
#ifndef TRIES
#define TRIES 1		/* system calls per call (more: EAGAIN, retry) */
#endif
#ifndef EDGES
#define EDGES 2		/* readiness edges the kernel reports */
#endif

#define CLOSED 1
#define POSTED 2
#define REGISTERED 4
#define INSIDE 8

#define WAIT_NODE 1
#define CLOSE_NODE 2

byte gate = 0;
byte refs = 1;			/* the descriptor's */
bit freed = 0;
byte began = 0;			/* calls holding their reference */
byte returned = 0;
byte insys = 0;			/* callers inside a system call */
bit fd_closed = 0;
bit in_epoll = 0;
bit io_closed = 0;
bit rd_ready[NCALLS];		/* kept edges, one per side */
bit waiting[NCALLS];		/* rd / wr: the side's waiter slot */
bit op_done[NCALLS];		/* the ioop word reads DONE */
chan ioq = [NCALLS * TRIES + 1] of { byte, byte };

#define ALIVE assert(!freed)

inline unref() {
	byte r;
	atomic { ALIVE; r = refs; refs-- };	/* fetch_sub, acq_rel */
	if
	:: r == 1 -> atomic { assert(!freed); freed = 1 }	/* free_fn */
	:: else -> skip
	fi;
	r = 0
}

/* sock_try_finish */
inline try_finish() {
	byte v;
	atomic { ALIVE; v = gate };		/* acquire load */
	do
	:: !(v & CLOSED) || (v & POSTED) || v >= INSIDE -> break
	:: else ->
		if
		:: atomic { gate == v -> ALIVE; gate = v | POSTED };
			if
			:: v & REGISTERED -> ioq ! CLOSE_NODE, 0
			:: else ->
				atomic {	/* close(s->fd) on the spot */
					assert(!fd_closed && insys == 0 &&
						!in_epoll);
					fd_closed = 1
				};
				unref()
			fi;
			break
		:: atomic { gate != v -> ALIVE; v = gate }
		fi
	od;
	v = 0
}

/* weft__sock_leave */
inline leave() {
	byte o;
	atomic { ALIVE; o = gate; gate = gate - INSIDE };
	if
	:: (o & CLOSED) && o - INSIDE < INSIDE -> try_finish()
	:: else -> skip
	fi;
	o = 0
}

/* weft__sock_enter: ok = 1, or 0 (closing; backed out) */
inline enter(ok) {
	byte e;
	atomic { ALIVE; e = gate; gate = gate + INSIDE };
	if
	:: !(e & CLOSED) -> ok = 1
	:: else -> leave(); ok = 0
	fi;
	e = 0
}

proctype caller(byte side) {
	byte tries = 0;
	bit ok;
	atomic { refs++; began++ };		/* call_begin's reference */
	do
	:: tries < TRIES ->
		tries++;
		enter(ok);
		if
		:: !ok -> break			/* WEFT_ECLOSED */
		:: else -> skip
		fi;
		atomic { ALIVE; assert(!fd_closed); insys++ };
		atomic { assert(!fd_closed); insys-- };	/* recv/send */
		leave();
		if
		:: true -> break		/* done */
		:: true ->			/* EAGAIN: weft__sock_wait */
			enter(ok);
			if
			:: !ok -> break
			:: else -> skip
			fi;
			atomic { ALIVE; gate = gate | REGISTERED };
			leave();
			op_done[side] = 0;
			ioq ! WAIT_NODE, side;	/* weft__ioop_run */
			op_done[side] == 1	/* parked until DONE */
		fi
	:: else -> break
	od;
	unref();				/* call_end */
	returned++
}

proctype closer() {
	byte old;
	began == NCALLS;
#ifdef CLOSER_REF
	atomic { ALIVE; refs++ };
#endif
	atomic { ALIVE; old = gate; gate = gate | CLOSED };
	if
	:: !(old & CLOSED) -> try_finish()
	:: else -> skip
	fi;
#ifdef CLOSER_REF
	unref();
#endif
	old = 0
}

proctype io() {
	byte kind, side, edges = 0;
end_loop:
	do
	:: ioq ? kind, side ->
		if
		:: kind == WAIT_NODE ->		/* sock_wait_start */
			ALIVE;
			if
			:: io_closed -> op_done[side] = 1	/* ECLOSED */
			:: else ->
				if
				:: !in_epoll ->
					assert(!fd_closed);	/* EPOLL_CTL_ADD */
					in_epoll = 1
				:: else -> skip
				fi;
				if
				:: rd_ready[side] ->
					rd_ready[side] = 0;
					op_done[side] = 1
				:: else -> waiting[side] = 1
				fi
			fi
		:: kind == CLOSE_NODE ->	/* sock_close_fn */
			ALIVE;
			io_closed = 1;
			in_epoll = 0;			/* EPOLL_CTL_DEL */
			atomic {
				assert(!fd_closed && insys == 0);
				fd_closed = 1
			};
			side = 0;
			do
			:: side < NCALLS ->
				if
				:: waiting[side] ->
					waiting[side] = 0;
					op_done[side] = 1	/* ECLOSED */
				:: else -> skip
				fi;
				side++
			:: else -> break
			od;
			unref()
		fi;
		kind = 0; side = 0
	:: in_epoll && edges < EDGES ->		/* an edge: sock_dispatch */
		edges++;
		ALIVE;
		if
		:: side = 0
		:: side = NCALLS - 1
		fi;
		if
		:: waiting[side] -> waiting[side] = 0; op_done[side] = 1
		:: !waiting[side] && !rd_ready[side] -> rd_ready[side] = 1
		:: else -> skip
		fi;
		side = 0
	od
}

proctype monitor() {
end_wait:
	timeout -> assert(returned == NCALLS && freed && fd_closed)
}

init {
	atomic {
		byte i = 0;
		do
		:: i < NCALLS -> run caller(i); i++
		:: else -> break
		od;
		run closer();
		run io();
		run monitor()
	}
}
