/* A tiny test-and-test-and-set spinlock on C11 atomics, for the short
 * critical sections of the scope tree and error lists.  C11 atomics rather
 * than ck_spinlock so that ThreadSanitizer sees the lock (it cannot see
 * ck_pr's inline assembly).  After a few hundred spins it calls
 * sched_yield(): on a 2-vCPU VM the holder may have been preempted, and
 * spinning on would only burn its time slice.
 *
 * Never held across a fiber switch (a parked fiber must not hold a lock its
 * waker needs).
 * Thread: any (workers, the I/O thread, offload and plain threads). */
#ifndef WEFT_RUNTIME_BASE_SPIN_H
#define WEFT_RUNTIME_BASE_SPIN_H

#include <sched.h>
#include <stdatomic.h>

#include <ck_backoff.h>
#include <ck_pr.h>

/* The CPU's spin-wait hint.  x86_64: ck_pr_stall, which is `pause`; it
 * touches no memory, so using Concurrency Kit here costs ThreadSanitizer
 * nothing.  aarch64: ck_pr_stall is only a compiler barrier there, so the
 * hint is written out: `isb`, which stalls the core for a pipeline flush
 * (tens of cycles, about what `pause` costs), rather than `yield`, which
 * most cores without SMT execute as a plain nop. */
#if defined(__aarch64__)
#define WEFT__CPU_RELAX() __asm__ __volatile__("isb" ::: "memory")
#else
#define WEFT__CPU_RELAX() ck_pr_stall()
#endif

/* ck_md.h is per architecture (Debian installs one per arch in the same
 * place): the host's amd64 copy in an aarch64 build would make ck's fences
 * the TSO ones, i.e. no-ops. */
#if defined(__aarch64__) && defined(CK_MD_TSO)
#error "weft: ck_md.h is an amd64 (TSO) one; use the arm64 libck-dev headers"
#endif

typedef struct weft__spin {
	atomic_int locked;
} weft__spin_t;

#define WEFT__SPIN_INIT                                                        \
	{                                                                      \
		0                                                              \
	}

static inline void weft__spin_init(weft__spin_t *l)
{
	atomic_init(&l->locked, 0);
}

/* The contended part of weft__spin_lock: spins with backoff until the
 * exchange wins.  Out of line, so that an uncontended lock costs the
 * exchange and a branch, without setting up the backoff (B5 takes four
 * locks per round trip).  A copy per file that locks (`unused`: no
 * warning where none does). */
__attribute__((noinline, unused)) static void weft__spin_lock_slow(
	weft__spin_t *l)
{
	unsigned spins = 0;
	ck_backoff_t backoff = CK_BACKOFF_INITIALIZER;
	for (;;) {
		/* relaxed: only a hint that the exchange above may now
		 * succeed; the exchange is what acquires. */
		while (atomic_load_explicit(&l->locked, memory_order_relaxed)) {
			/* Exponential backoff (ck_backoff: 512, 1024, ...
			 * empty iterations; six rounds are ~32k, tens of
			 * microseconds), then give the CPU away. */
			if (++spins < 6)
				ck_backoff_eb(&backoff);
			else
				sched_yield();
		}
		/* acquire: pairs with the release in weft__spin_unlock. */
		if (!atomic_exchange_explicit(&l->locked, 1,
			    memory_order_acquire))
			return;
	}
}

static inline void weft__spin_lock(weft__spin_t *l)
{
	/* acquire: pairs with the release in weft__spin_unlock. */
	if (__builtin_expect(!atomic_exchange_explicit(&l->locked, 1,
				     memory_order_acquire),
		    1))
		return;
	weft__spin_lock_slow(l);
}

static inline void weft__spin_unlock(weft__spin_t *l)
{
	/* release: publishes the critical section to the next acquirer. */
	atomic_store_explicit(&l->locked, 0, memory_order_release);
}

#endif
