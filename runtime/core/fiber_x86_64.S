/* Context switch for x86_64 SysV (see fiber.h for the contract).
 *
 * weft__fiber_jump(void **save_sp, void *new_sp)
 * weft__fiber_jump_ret(void **save_sp, void *new_sp)
 *   Save rbx, rbp, r12-r15 below the return address the caller's `call`
 *   pushed, store rsp into *save_sp, load new_sp and restore the frame
 *   found there.  They differ only in how they resume (one macro below):
 *   - weft__fiber_jump ends with `jmp *%rcx`.  The `call` that entered it
 *     stays on the return-stack buffer, so the resumed context's returns
 *     are predicted against the departing context's chain, off by one;
 *     but the jump itself is predicted by the indirect predictor, which
 *     wins when the two contexts never share a chain of callers (a fiber
 *     and the scheduler loop: `ret` measured 9-10 ns per switch against
 *     3.1-3.5 ns in a switch loop, and B5 121 -> 147 ns).
 *   - weft__fiber_jump_ret ends with `ret`, which pops that entry: when the
 *     resumed context was suspended at the same call site under the same
 *     callers (two tasks that park in the same primitive), the jump and
 *     every return after it are predicted (B5 with direct switches:
 *     132 ns with `jmp`, 99 ns with `ret`).
 *
 * weft__fiber_trampoline
 *   First resume address of every fiber (fiber.c writes it into the PC
 *   slot of the initial frame).  It arrives with rsp = stack top (16-byte
 *   aligned) and rbx = the weft__fiber_t, and calls weft__fiber_start(cont),
 *   which never returns.  `.cfi_undefined rip` makes debuggers and unwinders
 *   stop here, so a fiber's backtrace ends cleanly.
 *
 * Frame offsets come from fiber.h; fiber.c static-asserts them against
 * the C view of the frame it builds for a new fiber. */
#include "core/fiber.h"

/* Assembles to nothing on other architectures, so the build may list both
 * .S files unconditionally. */
#if defined(__x86_64__)

	.text

	.macro CTX_JUMP name, use_ret
	.globl	\name
	.hidden	\name
	.type	\name, @function
	.p2align 4
\name:
	.cfi_startproc
	/* rdi = save_sp, rsi = new_sp.  (%rsp) already holds the resume
	 * address, i.e. the PC slot of our frame; make room for the rest. */
	subq	$(WEFT__FIBER_FRAME - 8), %rsp
	.cfi_adjust_cfa_offset (WEFT__FIBER_FRAME - 8)
	movq	%r15, WEFT__FIBER_R15(%rsp)
	movq	%r14, WEFT__FIBER_R14(%rsp)
	movq	%r13, WEFT__FIBER_R13(%rsp)
	movq	%r12, WEFT__FIBER_R12(%rsp)
	movq	%rbx, WEFT__FIBER_RBX(%rsp)
	movq	%rbp, WEFT__FIBER_RBP(%rsp)
	.cfi_rel_offset r15, WEFT__FIBER_R15
	.cfi_rel_offset r14, WEFT__FIBER_R14
	.cfi_rel_offset r13, WEFT__FIBER_R13
	.cfi_rel_offset r12, WEFT__FIBER_R12
	.cfi_rel_offset rbx, WEFT__FIBER_RBX
	.cfi_rel_offset rbp, WEFT__FIBER_RBP

	/* Publish our frame, then adopt the target's.  From here on rsp points
	 * at a frame with the same layout, so the CFI above describes the
	 * target context (an unwinder sees the context being resumed). */
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp

	movq	WEFT__FIBER_R15(%rsp), %r15
	movq	WEFT__FIBER_R14(%rsp), %r14
	movq	WEFT__FIBER_R13(%rsp), %r13
	movq	WEFT__FIBER_R12(%rsp), %r12
	movq	WEFT__FIBER_RBX(%rsp), %rbx
	movq	WEFT__FIBER_RBP(%rsp), %rbp
	.cfi_restore r15
	.cfi_restore r14
	.cfi_restore r13
	.cfi_restore r12
	.cfi_restore rbx
	.cfi_restore rbp
	/* rcx is caller-saved: free to carry the resume address.  Popping the
	 * whole frame leaves rsp exactly where the target's `call` found it. */
	.if \use_ret
	addq	$(WEFT__FIBER_FRAME - 8), %rsp
	.cfi_adjust_cfa_offset (-(WEFT__FIBER_FRAME - 8))
	ret
	.else
	movq	WEFT__FIBER_PC(%rsp), %rcx
	addq	$WEFT__FIBER_FRAME, %rsp
	.cfi_adjust_cfa_offset (-WEFT__FIBER_FRAME)
	jmpq	*%rcx
	.endif
	.cfi_endproc
	.size	\name, .-\name
	.endm

	CTX_JUMP weft__fiber_jump, 0
	CTX_JUMP weft__fiber_jump_ret, 1

	.globl	weft__fiber_trampoline
	.hidden	weft__fiber_trampoline
	.type	weft__fiber_trampoline, @function
	.p2align 4
weft__fiber_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	/* rsp % 16 == 0 here, so after the call pushes the return address the
	 * callee sees rsp % 16 == 8, as the ABI requires at function entry. */
	movq	%rbx, %rdi
	call	weft__fiber_start@PLT
	ud2				/* weft__fiber_start never returns */
	.cfi_endproc
	.size	weft__fiber_trampoline, .-weft__fiber_trampoline

#endif /* __x86_64__ */

	/* Non-executable stack for the whole link. */
	.section .note.GNU-stack,"",@progbits
