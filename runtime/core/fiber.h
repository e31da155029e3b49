/* Fiber execution contexts: the register save/restore that moves an OS
 * thread from one stack to another, and the sanitizer bookkeeping around it.
 *
 * A weft__fiber_t is either a *thread context* (the OS thread's own stack,
 * described by weft__fiber_init_thread) or a *fiber context* (a weft stack,
 * prepared by weft__fiber_init).  weft__fiber_switch(from, to) saves the
 * callee-saved registers on the current stack, records the stack pointer in
 * from->sp, loads to->sp and restores to's registers.  Nothing else is
 * saved: the caller of a switch is an ordinary C call site, so the compiler
 * already treats every caller-saved register as clobbered.
 *
 * What is deliberately NOT saved:
 *  - MXCSR and the x87 control word (FPCR on aarch64).  The SysV ABI calls
 *    their control bits callee-saved, but saving them made a switch about
 *    four times as slow (measured: 12-13.6 ns against 3.1-3.5 ns).  weft's
 *    rule instead: code running on a fiber must not change the
 *    floating-point environment (rounding mode, exception masks, FTZ/DAZ).
 *    A fiber that breaks the rule leaks its FP environment to whatever
 *    runs next on that thread.
 *  - The signal mask (that is why this is not ucontext: swapcontext makes a
 *    sigprocmask syscall, ~200 ns).
 *  - Thread-local storage.  A fiber may suspend on one worker and resume on
 *    another; see ARCHITECTURE.md, "No TLS address is kept across a
 *    switch".
 *
 * CET (x86_64): the switch ends with an indirect `jmp` to the saved resume
 * address, which is neither an ENDBR landing pad nor consistent with a shadow
 * stack.  The .S file therefore carries no GNU property note for IBT/SHSTK,
 * so the linker marks any binary containing it as not CET-compatible.
 *
 * This header is also included by the assembly files: everything C is under
 * !__ASSEMBLER__, and the frame offsets below are the single definition both
 * sides use (fiber.c _Static_asserts them against a C struct).
 * Thread: a context is used by one thread at a time; the hand-over of a
 * suspended fiber context between threads must be ordered by the caller
 * (release/acquire on the run queue). */
#ifndef WEFT_RUNTIME_CORE_FIBER_H
#define WEFT_RUNTIME_CORE_FIBER_H

/* {====== saved-register frame layout (bytes from the saved sp) ======
 * The frame lives on the suspended context's own stack, just below the
 * resume address.  On x86_64 the resume address is the one pushed by the
 * `call` into weft__fiber_jump, so it is part of the frame (offset PC). */
#if defined(__x86_64__)
#define WEFT__FIBER_R15 0
#define WEFT__FIBER_R14 8
#define WEFT__FIBER_R13 16
#define WEFT__FIBER_R12 24
#define WEFT__FIBER_RBX 32
#define WEFT__FIBER_RBP 40
#define WEFT__FIBER_PC 48
#define WEFT__FIBER_FRAME 56 /* includes the return address */
#elif defined(__aarch64__)
#define WEFT__FIBER_X19 0     /* x19..x28 as five pairs: 0, 16, 32, 48, 64 */
#define WEFT__FIBER_X29 80    /* frame pointer */
#define WEFT__FIBER_X30 88    /* link register = resume address */
#define WEFT__FIBER_D8 96     /* d8..d15 as four pairs: 96, 112, 128, 144 */
#define WEFT__FIBER_FRAME 160 /* multiple of 16: sp stays aligned */
#else
#error "weft: no context switch for this architecture (x86_64, aarch64)"
#endif
/* }====== */

#ifndef __ASSEMBLER__

#include <stdbool.h>
#include <stddef.h>

#include "base/common.h"
#include "core/sanitizer.h"

typedef struct weft__stack weft__stack_t; /* stack.h */

typedef struct weft__fiber {
	/* Saved stack pointer while suspended; meaningless while running.
	 * Must stay the first member: weft__fiber_switch passes &from->sp. */
	void *sp;
	/* The sanitizer fields exist only in the builds that use them: a
	 * context sits in every task record, and the record is most of what
	 * a parked task costs beside its stack page (benchmark B7). */
#ifdef WEFT__ASAN
	/* Lowest usable address and size of this context's stack; ASan needs
	 * them to know which stack it is on after a switch.  Written once by
	 * the init functions. */
	void *stack_lo;
	size_t stack_size;
	/* ASan fake-stack save slot: written by the switch *out of* this
	 * context, consumed by the switch back *into* it. */
	void *asan_fake_stack;
#endif
#ifdef WEFT__TSAN
	/* TSan fiber handle.  For fibers it is owned by the stack (stack.h),
	 * for threads it is the thread's own handle. */
	void *tsan_fiber;
#endif
	/* First-entry target; read once, on the first switch into the fiber. */
	void (*entry)(void *);
	void *entry_arg;
} weft__fiber_t;

/* The raw primitive (fiber_<arch>.S): saves the callee-saved registers on
 * the current stack, stores the stack pointer into *save_sp, switches to
 * new_sp and resumes whatever was saved there.  No sanitizer annotations:
 * use weft__fiber_switch.  Thread: any; both stacks must be owned by the
 * caller for the duration. */
WEFT_FIBER_FN WEFT__HIDDEN void weft__fiber_jump(void **save_sp, void *new_sp);
/* The same, resuming with `ret` instead of an indirect jump: for a switch
 * between contexts suspended at the same call site (fiber_x86_64.S says
 * when each predicts better).  aarch64: the same code.  Thread: as
 * weft__fiber_jump. */
WEFT_FIBER_FN WEFT__HIDDEN void weft__fiber_jump_ret(void **save_sp,
	void *new_sp);

/* Describes the calling OS thread's own stack (pthread_getattr_np) so that
 * fibers can switch back to it.  A thread context needs no first entry: it
 * is already running.  Thread: the thread being described. */
WEFT__HIDDEN void weft__fiber_init_thread(weft__fiber_t *c);

/* Releases what init_thread set up (nothing that needs freeing today; the
 * TSan handle of a thread belongs to TSan).  Thread: the described thread. */
WEFT__HIDDEN void weft__fiber_fini_thread(weft__fiber_t *c);

/* Prepares c so that the first weft__fiber_switch into it calls entry(arg) on
 * stack st.  Writes only the top of the stack (one page is touched).  entry
 * must never return: it ends with weft__fiber_switch_final.  The stack must
 * not be in use by any other context; it may have been used by an earlier,
 * finished fiber (under TSan its fiber handle is recycled, see fiber.c).
 * Thread: any thread, while no other thread touches c or st. */
/* The registers of suspended context c as an unwinder wants them (DWARF
 * numbering, WEFT__BT_NREGS entries, unknown ones 0; base/backtrace.h):
 * the callee-saved ones and the resume address from the frame the switch
 * saved on c's stack, and the stack pointer as it will be once that frame
 * is popped, i.e. the state of the switch's caller right after the call.
 * Thread: any, while nothing runs on c's stack (the caller's guarantee:
 * core/inspect.c pins the task). */
WEFT__HIDDEN void weft__fiber_saved_regs(const weft__fiber_t *c,
	uintptr_t *regs);
WEFT__HIDDEN void weft__fiber_init(weft__fiber_t *c, weft__stack_t *st,
	void (*entry)(void *), void *arg);

/* Suspends the current context into *from and resumes *to.  Returns when
 * someone switches back to from, possibly on a different OS thread: the
 * caller must not keep TLS addresses (errno included) across this call.
 * `from` must be the context currently running on this thread; `to` must be
 * suspended and not being resumed by anyone else.
 * It switches fibers (WEFT_FIBER_FN) but is not a cancellation
 * checkpoint: it looks at no scope.  Thread: the thread running from. */
WEFT_FIBER_FN WEFT__HIDDEN void weft__fiber_switch(weft__fiber_t *from,
	weft__fiber_t *to);

/* The last switch out of a dying fiber: tells ASan to free the fiber's fake
 * stack.  from must never be resumed afterwards; its stack may be reused
 * (weft__fiber_init again, or weft__stack_put) as soon as the caller
 * is running on `to`.  Never returns.  Thread: the thread running from. */
WEFT_FIBER_FN WEFT__HIDDEN __attribute__((noreturn)) void
weft__fiber_switch_final(weft__fiber_t *from, weft__fiber_t *to);

/* The sanitizer fields of a context (above), which exist only in the
 * builds that use them; elsewhere these read as nothing. */
#ifdef WEFT__ASAN
#define WEFT__CONT_SET_BOUNDS(c, lo, size)                                     \
	((c)->stack_lo = (lo), (c)->stack_size = (size),                       \
		(c)->asan_fake_stack = NULL)
#define WEFT__CONT_LO(c) ((c)->stack_lo)
#define WEFT__CONT_SIZE(c) ((c)->stack_size)
#define WEFT__CONT_FAKE_SLOT(c) (&(c)->asan_fake_stack)
#define WEFT__CONT_FAKE(c) ((c)->asan_fake_stack)
#else
#define WEFT__CONT_SET_BOUNDS(c, lo, size) ((void)(c), (void)(lo), (void)(size))
#define WEFT__CONT_LO(c) ((void)(c), (void *)0)
#define WEFT__CONT_SIZE(c) ((void)(c), (size_t)0)
#define WEFT__CONT_FAKE_SLOT(c) ((void)(c), (void **)0)
#define WEFT__CONT_FAKE(c) ((void)(c), (void *)0)
#endif
#ifdef WEFT__TSAN
#define WEFT__CONT_SET_TSAN(c, fiber) ((c)->tsan_fiber = (fiber))
#define WEFT__CONT_TSAN(c) ((c)->tsan_fiber)
#else
#define WEFT__CONT_SET_TSAN(c, fiber) ((void)(c))
#define WEFT__CONT_TSAN(c) ((void)(c), (void *)0)
#endif

/* {====== C++ exception state ======
 *
 * The C++ runtime's exception-handling globals (libstdc++'s and libc++abi's
 * __cxa_eh_globals: the chain of exceptions being handled, i.e. catch
 * blocks in progress, and the count of exceptions thrown and not yet
 * caught, std::uncaught_exceptions()) are per thread.  A fiber that parks
 * inside a catch block, or in a destructor run during unwinding
 * (weft::Group's joins there), would leave its state to whatever runs next
 * on the thread and take another's where it resumes: a `throw;` that
 * rethrows another task's exception, std::terminate, a
 * std::uncaught_exceptions() of -1.  So each switch carries the state in
 * the switching frame: saved from the thread before the jump, put back on
 * whatever thread the context resumes on after it; a fiber starts with
 * none (weft__fiber_start).  __cxa_get_globals is a weak reference: in a
 * program without the C++ runtime it is null and a switch pays one
 * predictable branch each way.  The layout is the Itanium C++ ABI's
 * (x86_64, aarch64; ARM's EHABI adds a field, and is not a target). */
struct weft__eh_globals {
	void *caught;
	unsigned int uncaught;
};
extern struct weft__eh_globals *__cxa_get_globals(void) __attribute__((weak));

/* Saves the thread's state into *s; false (nothing saved) without the C++
 * runtime.  Unlikely: a C program pays a load and a branch. */
static inline __attribute__((always_inline)) bool weft__eh_save(
	struct weft__eh_globals *s)
{
	if (__builtin_expect(__cxa_get_globals == NULL, 1))
		return false;
	*s = *__cxa_get_globals();
	return true;
}

/* Puts *s back as the calling thread's state (the C++ runtime exists). */
static inline __attribute__((always_inline)) void weft__eh_restore(
	const struct weft__eh_globals *s)
{
	*__cxa_get_globals() = *s;
}

/* }====== */

/* weft__fiber_switch, inlined into the caller: one return address less
 * between the caller and the jump, which matters to the return predictor
 * (every frame between a fiber's code and its switch is a return that may
 * be mispredicted when it resumes).  use_ret: resume through
 * weft__fiber_jump_ret instead of weft__fiber_jump.  Same contract otherwise;
 * the TSan switch is inlined into the caller, whose function exit then
 * happens on the fiber it entered on (sanitizer.h).  Thread: the thread
 * running from. */
WEFT_FIBER_FN static inline __attribute__((always_inline)) void
weft__fiber_switch_inl(weft__fiber_t *from, weft__fiber_t *to, int use_ret)
{
	/* Read to->sp before telling TSan we are `to` (fiber.c, step 1). */
	void *to_sp = to->sp;
	struct weft__eh_globals eh;
	bool cxx = weft__eh_save(&eh);
	weft__san_switch_start(WEFT__CONT_FAKE_SLOT(from), WEFT__CONT_LO(to),
		WEFT__CONT_SIZE(to));
	weft__san_tsan_switch(WEFT__CONT_TSAN(to));
	if (use_ret)
		weft__fiber_jump_ret(&from->sp, to_sp);
	else
		weft__fiber_jump(&from->sp, to_sp);
	/* Resumed: someone switched to `from`, maybe on another thread. */
	weft__san_switch_finish(WEFT__CONT_FAKE(from));
	/* This thread's globals now, freshly looked up (no TLS address
	 * is kept across the jump). */
	if (__builtin_expect(cxx, 0))
		weft__eh_restore(&eh);
}

#endif /* !__ASSEMBLER__ */
#endif
