/* Fiber contexts: building a fiber's first frame, and the annotated switch
 * around the assembly primitive weft__fiber_jump (fiber_<arch>.S).
 *
 * The order inside a switch matters for the sanitizers:
 *   1. read everything needed from `to` (as the departing fiber),
 *   2. ASan start_switch (names the destination stack),
 *   3. TSan switch_to_fiber (from here on TSan charges accesses to `to`),
 *   4. jump,
 *   5. on arrival, ASan finish_switch with the arriving context's slot.
 * Step 5 runs when someone switches back to `from`, in this same C frame,
 * possibly on another OS thread.
 *
 * TLS: nothing in this file uses thread-locals.  Callers must not keep a
 * TLS address (errno included) across weft__fiber_switch; see fiber.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_getattr_np */
#endif

#include "core/fiber.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "base/backtrace.h"
#include "core/sanitizer.h"
#include "core/stack.h"

/* {====== the saved frame, as C sees it ======
 * Written only by weft__fiber_init (a new fiber's first frame); every
 * other frame is written by weft__fiber_jump itself.  The asserts tie this
 * struct to the offsets fiber.h gives the assembly. */
#if defined(__x86_64__)
struct ctx_frame {
	void *r15, *r14, *r13, *r12, *rbx, *rbp;
	void *pc; /* resume address (for a new fiber: the trampoline) */
};
_Static_assert(offsetof(struct ctx_frame, r15) == WEFT__FIBER_R15, "r15");
_Static_assert(offsetof(struct ctx_frame, r14) == WEFT__FIBER_R14, "r14");
_Static_assert(offsetof(struct ctx_frame, r13) == WEFT__FIBER_R13, "r13");
_Static_assert(offsetof(struct ctx_frame, r12) == WEFT__FIBER_R12, "r12");
_Static_assert(offsetof(struct ctx_frame, rbx) == WEFT__FIBER_RBX, "rbx");
_Static_assert(offsetof(struct ctx_frame, rbp) == WEFT__FIBER_RBP, "rbp");
_Static_assert(offsetof(struct ctx_frame, pc) == WEFT__FIBER_PC, "pc");
#define CTX_FRAME_ARG(f) ((f)->rbx) /* trampoline moves it to rdi */
#define CTX_FRAME_FP(f) ((f)->rbp)
#define CTX_FRAME_PC(f) ((f)->pc)
#elif defined(__aarch64__)
struct ctx_frame {
	void *x19_x28[10];
	void *x29; /* frame pointer */
	void *x30; /* resume address */
	double d8_d15[8];
};
_Static_assert(offsetof(struct ctx_frame, x19_x28) == WEFT__FIBER_X19, "x19");
_Static_assert(offsetof(struct ctx_frame, x29) == WEFT__FIBER_X29, "x29");
_Static_assert(offsetof(struct ctx_frame, x30) == WEFT__FIBER_X30, "x30");
_Static_assert(offsetof(struct ctx_frame, d8_d15) == WEFT__FIBER_D8, "d8");
#define CTX_FRAME_ARG(f) ((f)->x19_x28[0]) /* trampoline moves it to x0 */
#define CTX_FRAME_FP(f) ((f)->x29)
#define CTX_FRAME_PC(f) ((f)->x30)
#endif
_Static_assert(sizeof(struct ctx_frame) == WEFT__FIBER_FRAME, "frame size");
_Static_assert(WEFT__FIBER_FRAME % 8 == 0, "frame holds whole words");
/* weft__fiber_switch hands &from->sp to the assembly as a void **. */
_Static_assert(offsetof(weft__fiber_t, sp) == 0, "sp first");
/* }====== */

/* Defined in fiber_<arch>.S.  Never called from C: its address is the
 * first resume address of every fiber. */
void weft__fiber_trampoline(void);

/* Called (only) by weft__fiber_trampoline, on the fiber's own stack, the
 * first time the fiber runs; runs the entry, which switches away for good.
 * Not static because the assembly calls it. */
WEFT_FIBER_FN WEFT__HIDDEN __attribute__((noreturn, used)) void
weft__fiber_start(weft__fiber_t *c);

/* TSan: a stack's fiber handle serves at most this many fibers before it is
 * replaced.  A fiber never returns from its bottom frames (weft__fiber_start,
 * the entry function, weft__fiber_switch_final), so every lifetime leaves
 * those entries on the handle's shadow call stack, which holds 64k entries
 * and is not bounds-checked: with gcc 12's libtsan, one handle reused by
 * ~13,000 five-frame fibers died with "SEGV ... CHECK failed:
 * sanitizer_stackdepot.cpp:83".  The other extreme, a new handle per
 * fiber, cost ~1 ms per create/destroy pair here (20,000 fibers: 19 s).
 * Replacing the handle every 256 lifetimes bounds the leak to 256 x the
 * fiber layer's depth and ran 200,000 fibers in 0.6 s. */
#define CONT_TSAN_REUSE 256

void weft__fiber_init_thread(weft__fiber_t *c)
{
	memset(c, 0, sizeof *c);
	/* Bounds of this thread's stack, for ASan's benefit when fibers
	 * switch back here.  If glibc cannot tell (ENOMEM), leave them 0:
	 * only ASan reads them, and it then only loses precision. */
	pthread_attr_t attr;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		void *lo;
		size_t size;
		if (pthread_attr_getstack(&attr, &lo, &size) == 0)
			WEFT__CONT_SET_BOUNDS(c, lo, size);
		pthread_attr_destroy(&attr);
	}
	/* The thread's own TSan handle; TSan owns it, we never destroy it. */
	WEFT__CONT_SET_TSAN(c, weft__san_tsan_current());
}

void weft__fiber_fini_thread(weft__fiber_t *c)
{
	memset(c, 0, sizeof *c);
}

/* Gives st a TSan fiber handle for one more fiber lifetime (no-op without
 * TSan).  The previous fiber on st has made its final switch, so the old
 * handle is not current anywhere and may be destroyed. */
static void cont_bind_tsan(weft__stack_t *st)
{
#ifdef WEFT__TSAN
	if (st->tsan_fiber != NULL && st->tsan_uses >= CONT_TSAN_REUSE) {
		weft__san_tsan_destroy(st->tsan_fiber);
		st->tsan_fiber = NULL;
	}
	if (st->tsan_fiber == NULL) {
		st->tsan_fiber = weft__san_tsan_create();
		st->tsan_uses = 0;
	}
	st->tsan_uses++;
#else
	(void)st;
#endif
}

/* Reads the saved frame in place.  Not instrumented by ASan: the words
 * sit below the frames of instrumented functions of the parked fiber,
 * where stale redzone poisoning may remain (the switch writes them from
 * assembly, which never unpoisons). */
__attribute__((no_sanitize_address)) void
weft__fiber_saved_regs(const weft__fiber_t *c, uintptr_t *regs)
{
	const uintptr_t *f = c->sp;
	for (int i = 0; i < WEFT__BT_NREGS; i++)
		regs[i] = 0;
#if defined(__x86_64__)
	/* DWARF: rbx 3, rbp 6, rsp 7, r12..r15 12..15, rip 16. */
	regs[3] = f[WEFT__FIBER_RBX / 8];
	regs[6] = f[WEFT__FIBER_RBP / 8];
	regs[7] = (uintptr_t)c->sp + WEFT__FIBER_FRAME;
	regs[12] = f[WEFT__FIBER_R12 / 8];
	regs[13] = f[WEFT__FIBER_R13 / 8];
	regs[14] = f[WEFT__FIBER_R14 / 8];
	regs[15] = f[WEFT__FIBER_R15 / 8];
	regs[16] = f[WEFT__FIBER_PC / 8];
#elif defined(__aarch64__)
	/* DWARF: x19..x30 19..30, sp 31; pc (32 here) is the link
	 * register the switch resumes at. */
	for (int i = 0; i < 10; i++)
		regs[19 + i] = f[WEFT__FIBER_X19 / 8 + i];
	regs[29] = f[WEFT__FIBER_X29 / 8];
	regs[30] = f[WEFT__FIBER_X30 / 8];
	regs[31] = (uintptr_t)c->sp + WEFT__FIBER_FRAME;
	regs[32] = f[WEFT__FIBER_X30 / 8];
#endif
}

void weft__fiber_init(weft__fiber_t *c, weft__stack_t *st,
	void (*entry)(void *), void *arg)
{
	char *top = (char *)st->lo + st->size;
	/* The trampoline is entered with sp = top and relies on it being
	 * 16-byte aligned (both ABIs); stacks are page-aligned. */
	WEFT_ASSERT(((uintptr_t)top & 15) == 0,
		"context: stack top is not 16-byte aligned");

	/* An earlier fiber on this stack died with frames (and their ASan
	 * redzones) still on it. */
	weft__san_unpoison(st->lo, st->size);
	cont_bind_tsan(st);

	/* The first frame sits at the very top, so preparing a fiber touches
	 * one page.  All saved registers start at zero (a zero frame pointer
	 * also ends frame-pointer walks); the argument register carries c. */
	struct ctx_frame *f = (struct ctx_frame *)(void *)(top - sizeof *f);
	memset(f, 0, sizeof *f);
	CTX_FRAME_ARG(f) = c;
	CTX_FRAME_FP(f) = NULL;
	CTX_FRAME_PC(f) = (void *)(uintptr_t)weft__fiber_trampoline;

	c->sp = f;
	WEFT__CONT_SET_BOUNDS(c, st->lo, st->size);
	WEFT__CONT_SET_TSAN(c, st->tsan_fiber);
	c->entry = entry;
	c->entry_arg = arg;
}

void weft__fiber_start(weft__fiber_t *c)
{
	/* First arrival on this stack: there is no saved fake stack yet. */
	weft__san_switch_finish(NULL);
	/* A new fiber handles no exception (fiber.h, "C++ exception
	 * state"): whatever the context that switched here left is its. */
	static const struct weft__eh_globals none = { 0 };
	if (__cxa_get_globals != NULL)
		weft__eh_restore(&none);
	c->entry(c->entry_arg);
	weft__diag_assert_fail(__FILE__, __LINE__, "entry returned",
		"context: a fiber entry function returned instead of calling "
		"weft__fiber_switch_final");
}

WEFT_FIBER_FN void weft__fiber_switch(weft__fiber_t *from, weft__fiber_t *to)
{
	weft__fiber_switch_inl(from, to, 0);
}

WEFT_FIBER_FN void weft__fiber_switch_final(weft__fiber_t *from,
	weft__fiber_t *to)
{
	void *to_sp = to->sp;
	/* NULL save slot: ASan frees this fiber's fake stack. */
	weft__san_switch_start(NULL, WEFT__CONT_LO(to), WEFT__CONT_SIZE(to));
	weft__san_tsan_switch(WEFT__CONT_TSAN(to));
	weft__fiber_jump(&from->sp, to_sp);
	weft__diag_assert_fail(__FILE__, __LINE__, "resumed",
		"context: a finished fiber was resumed");
}
