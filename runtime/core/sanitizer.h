/* ASan, TSan and Valgrind annotations for fiber stacks and switches, all in
 * one place (QEMU's coroutine-ucontext.c pattern).  Every helper is an
 * always-inline function that compiles to nothing when its tool is off.
 *
 * Why always_inline and not just inline: TSan keeps a shadow call stack per
 * fiber, pushed by __tsan_func_entry and popped by __tsan_func_exit, which
 * the compiler emits around every instrumented *function*.  If
 * __tsan_switch_to_fiber ran inside an out-of-line helper, that helper's
 * exit would pop the *new* fiber's shadow stack (other fiber libraries have
 * crashed that way, with a SEGV in __tsan_func_entry).  Inlined into
 * weft__fiber_switch_inl (itself always_inline, in weft__fiber_switch and
 * weft__sched_switch_out), the entry is pushed on the old fiber and the
 * exit happens when the old fiber is resumed, so each fiber's shadow
 * stack stays balanced.  gcc inlines always_inline functions at -O0 too.
 *
 * Detection: gcc defines __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__; clang
 * reports them through __has_feature.  Valgrind support is compiled in
 * whenever valgrind.h can be found, as <valgrind/valgrind.h> or through
 * pkg-config's include directory (Debian: the valgrind package); its
 * client requests are a few no-op instructions when not under valgrind, and
 * they are used only when a stack is mapped or unmapped, never per switch.
 * Define WEFT_NO_VALGRIND to leave them out.
 * Thread: every helper acts on the calling thread. */
#ifndef WEFT_RUNTIME_CORE_SANITIZER_H
#define WEFT_RUNTIME_CORE_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(WEFT__ASAN)
#define WEFT__ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(WEFT__TSAN)
#define WEFT__TSAN 1
#endif
#endif

#if defined(__has_include) && !defined(WEFT_NO_VALGRIND)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEFT__VALGRIND 1
#elif __has_include(<valgrind.h>) /* pkg-config's include dir */
#include <valgrind.h>
#define WEFT__VALGRIND 1
#endif
#endif

#ifdef WEFT__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT__TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define WEFT__SAN_INLINE static inline __attribute__((always_inline))

/* {====== ASan ======
 * Protocol (common_interface_defs.h): start_switch right before the switch,
 * naming the destination stack and a slot that receives the departing
 * context's fake stack (NULL on the final switch, so ASan frees it);
 * finish_switch first thing after arriving, with the arriving context's
 * saved slot (NULL on a fiber's first entry). */

WEFT__SAN_INLINE void weft__san_switch_start(void **fake_stack_save,
	const void *to_lo, size_t to_size)
{
#ifdef WEFT__ASAN
	__sanitizer_start_switch_fiber(fake_stack_save, to_lo, to_size);
#else
	(void)fake_stack_save, (void)to_lo, (void)to_size;
#endif
}

WEFT__SAN_INLINE void weft__san_switch_finish(void *fake_stack_save)
{
#ifdef WEFT__ASAN
	__sanitizer_finish_switch_fiber(fake_stack_save, NULL, NULL);
#else
	(void)fake_stack_save;
#endif
}

/* A finished fiber never returns from its frames, so their redzones stay
 * poisoned in the shadow; clear them before the stack is reused or
 * unmapped, or the next user of the memory gets false reports. */
WEFT__SAN_INLINE void weft__san_unpoison(void *p, size_t n)
{
#ifdef WEFT__ASAN
	__asan_unpoison_memory_region(p, n);
#else
	(void)p, (void)n;
#endif
}
/* Frames are about to be abandoned without returning (a panicking task
 * run inline jumps back to its parent's frame, sched.c): clears the
 * redzones of everything below the current frame on this stack, as ASan
 * does itself before longjmp, so that the parent's later calls do not
 * land on stale poison. */
WEFT__SAN_INLINE void weft__san_handle_no_return(void)
{
#ifdef WEFT__ASAN
	__asan_handle_no_return();
#endif
}
/* }====== */

/* {====== TSan ====== */

WEFT__SAN_INLINE void *weft__san_tsan_current(void)
{
#ifdef WEFT__TSAN
	return __tsan_get_current_fiber();
#else
	return NULL;
#endif
}

WEFT__SAN_INLINE void *weft__san_tsan_create(void)
{
#ifdef WEFT__TSAN
	return __tsan_create_fiber(0);
#else
	return NULL;
#endif
}

/* Call immediately before the switch: flags 0 makes the switch a
 * happens-before edge from the departing to the arriving fiber, which is
 * what a fiber switch is. */
WEFT__SAN_INLINE void weft__san_tsan_switch(void *fiber)
{
#ifdef WEFT__TSAN
	__tsan_switch_to_fiber(fiber, 0);
#else
	(void)fiber;
#endif
}

/* Destroys a fiber handle that is not current on any thread.  The handle is
 * made current for an instant first: destroying a TSan fiber that was never
 * current corrupts TSan's per-thread trace state after a few thousand
 * such destructions, and a stack's handle may never have run (a fiber
 * prepared and dropped).  Flags 0 on purpose: the acquire is what makes
 * the fiber record the trace event that destruction later walks. */
WEFT__SAN_INLINE void weft__san_tsan_destroy(void *fiber)
{
#ifdef WEFT__TSAN
	if (fiber == NULL)
		return;
	void *self = __tsan_get_current_fiber();
	__tsan_switch_to_fiber(fiber, 0);
	__tsan_switch_to_fiber(self, 0);
	__tsan_destroy_fiber(fiber);
#else
	(void)fiber;
#endif
}
/* }====== */

/* {====== Valgrind ======
 * Without registration valgrind takes every switch onto a fiber stack for a
 * wild stack-pointer change ("client switching stacks?").  The range is
 * [lo, lo + size); valgrind wants the highest *addressable* byte as end. */

WEFT__SAN_INLINE unsigned weft__san_stack_register(void *lo, size_t size)
{
#ifdef WEFT__VALGRIND
	return VALGRIND_STACK_REGISTER(lo, (char *)lo + size - 1);
#else
	(void)lo, (void)size;
	return 0;
#endif
}

WEFT__SAN_INLINE void weft__san_stack_deregister(unsigned id)
{
#ifdef WEFT__VALGRIND
	VALGRIND_STACK_DEREGISTER(id);
#else
	(void)id;
#endif
}

/* Whether the process runs under valgrind (stack.c then avoids system
 * calls valgrind may not know, such as process_madvise). */
WEFT__SAN_INLINE int weft__san_on_valgrind(void)
{
#ifdef WEFT__VALGRIND
	return RUNNING_ON_VALGRIND != 0;
#else
	return 0;
#endif
}
/* }====== */

#endif
