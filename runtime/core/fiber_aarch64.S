/* Context switch for aarch64 (AAPCS64; see fiber.h for the contract).
 *
 * weft__fiber_jump(void **save_sp, void *new_sp)
 *   Saves the callee-saved state x19-x28, x29 (fp), x30 (lr = resume
 *   address) and d8-d15 (the low halves of v8-v15; the AAPCS64 makes only
 *   those callee-saved) in a 160-byte frame, stores sp into *save_sp, loads
 *   new_sp, restores the frame there and returns through x30.
 *   It uses `ret`, unlike x86_64's `jmp *reg`: with BTI enforced an indirect
 *   `br` may only land on a `bti j` pad, and the call sites we resume are
 *   not pads, whereas `ret` needs none.  The return-predictor miss it costs
 *   is the price of that.
 *
 * weft__fiber_trampoline
 *   First resume address of every fiber.  Arrives with sp = stack top
 *   (16-byte aligned, as sp always must be here) and x19 = the weft__fiber_t,
 *   and calls weft__fiber_start(cont), which never returns.
 *   `.cfi_undefined x30` ends backtraces here.
 *
 * The file carries no GNU property note for BTI/PAC, so a binary linked
 * with it is marked as not BTI-compatible (the correct, conservative
 * outcome; the switch never signs or authenticates x30). */
#include "core/fiber.h"

/* Assembles to nothing on other architectures, so the build may list both
 * .S files unconditionally. */
#if defined(__aarch64__)

	.text

	.globl	weft__fiber_jump
	.hidden	weft__fiber_jump
	.type	weft__fiber_jump, %function
	.p2align 4
weft__fiber_jump:
	.cfi_startproc
	/* x0 = save_sp, x1 = new_sp */
	sub	sp, sp, #WEFT__FIBER_FRAME
	.cfi_def_cfa_offset WEFT__FIBER_FRAME
	stp	x19, x20, [sp, #(WEFT__FIBER_X19 + 0)]
	stp	x21, x22, [sp, #(WEFT__FIBER_X19 + 16)]
	stp	x23, x24, [sp, #(WEFT__FIBER_X19 + 32)]
	stp	x25, x26, [sp, #(WEFT__FIBER_X19 + 48)]
	stp	x27, x28, [sp, #(WEFT__FIBER_X19 + 64)]
	stp	x29, x30, [sp, #WEFT__FIBER_X29]
	stp	d8, d9, [sp, #(WEFT__FIBER_D8 + 0)]
	stp	d10, d11, [sp, #(WEFT__FIBER_D8 + 16)]
	stp	d12, d13, [sp, #(WEFT__FIBER_D8 + 32)]
	stp	d14, d15, [sp, #(WEFT__FIBER_D8 + 48)]
	/* Every saved register, as on x86_64, so that a debugger unwinding
	 * a suspended context finds its callers' variables. */
	.cfi_rel_offset x19, (WEFT__FIBER_X19 + 0)
	.cfi_rel_offset x20, (WEFT__FIBER_X19 + 8)
	.cfi_rel_offset x21, (WEFT__FIBER_X19 + 16)
	.cfi_rel_offset x22, (WEFT__FIBER_X19 + 24)
	.cfi_rel_offset x23, (WEFT__FIBER_X19 + 32)
	.cfi_rel_offset x24, (WEFT__FIBER_X19 + 40)
	.cfi_rel_offset x25, (WEFT__FIBER_X19 + 48)
	.cfi_rel_offset x26, (WEFT__FIBER_X19 + 56)
	.cfi_rel_offset x27, (WEFT__FIBER_X19 + 64)
	.cfi_rel_offset x28, (WEFT__FIBER_X19 + 72)
	.cfi_rel_offset x29, WEFT__FIBER_X29
	.cfi_rel_offset x30, WEFT__FIBER_X30
	.cfi_rel_offset d8, (WEFT__FIBER_D8 + 0)
	.cfi_rel_offset d9, (WEFT__FIBER_D8 + 8)
	.cfi_rel_offset d10, (WEFT__FIBER_D8 + 16)
	.cfi_rel_offset d11, (WEFT__FIBER_D8 + 24)
	.cfi_rel_offset d12, (WEFT__FIBER_D8 + 32)
	.cfi_rel_offset d13, (WEFT__FIBER_D8 + 40)
	.cfi_rel_offset d14, (WEFT__FIBER_D8 + 48)
	.cfi_rel_offset d15, (WEFT__FIBER_D8 + 56)

	/* Publish our frame (sp cannot be stored directly), adopt the
	 * target's.  Its frame has the same layout, so the CFI stays valid. */
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1

	ldp	d14, d15, [sp, #(WEFT__FIBER_D8 + 48)]
	ldp	d12, d13, [sp, #(WEFT__FIBER_D8 + 32)]
	ldp	d10, d11, [sp, #(WEFT__FIBER_D8 + 16)]
	ldp	d8, d9, [sp, #(WEFT__FIBER_D8 + 0)]
	ldp	x29, x30, [sp, #WEFT__FIBER_X29]
	ldp	x27, x28, [sp, #(WEFT__FIBER_X19 + 64)]
	ldp	x25, x26, [sp, #(WEFT__FIBER_X19 + 48)]
	ldp	x23, x24, [sp, #(WEFT__FIBER_X19 + 32)]
	ldp	x21, x22, [sp, #(WEFT__FIBER_X19 + 16)]
	ldp	x19, x20, [sp, #(WEFT__FIBER_X19 + 0)]
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore x29
	.cfi_restore x30
	.cfi_restore d8
	.cfi_restore d9
	.cfi_restore d10
	.cfi_restore d11
	.cfi_restore d12
	.cfi_restore d13
	.cfi_restore d14
	.cfi_restore d15
	add	sp, sp, #WEFT__FIBER_FRAME
	.cfi_def_cfa_offset 0
	ret
	.cfi_endproc
	.size	weft__fiber_jump, .-weft__fiber_jump

	/* Already resumes with `ret`: the variant x86_64 distinguishes
	 * (fiber.h) is the same code here. */
	.globl	weft__fiber_jump_ret
	.hidden	weft__fiber_jump_ret
	.type	weft__fiber_jump_ret, %function
	.set	weft__fiber_jump_ret, weft__fiber_jump

	.globl	weft__fiber_trampoline
	.hidden	weft__fiber_trampoline
	.type	weft__fiber_trampoline, %function
	.p2align 4
weft__fiber_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov	x0, x19
	bl	weft__fiber_start
	brk	#0		/* weft__fiber_start never returns */
	.cfi_endproc
	.size	weft__fiber_trampoline, .-weft__fiber_trampoline

#endif /* __aarch64__ */

	/* Non-executable stack for the whole link. */
	.section .note.GNU-stack,"",@progbits
