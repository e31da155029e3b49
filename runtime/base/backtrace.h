/* Backtraces for failure reports (backtrace.c): the return addresses of
 * the calling thread's stack, and code addresses turned into text such as
 * "weft_group_open+0x4c (group.c:151)".
 *
 * Used on failure paths only (a panic, the missing-join abort, the
 * stack-overflow report), never on a hot path: symbolizing with libdw
 * starts a thread and reads /proc/self/maps and the ELF and DWARF
 * sections of the objects involved, milliseconds of work.
 * Thread: any.  Not async-signal-safe, except weft__backtrace_write_fd. */
#ifndef WEFT_RUNTIME_BASE_BACKTRACE_H
#define WEFT_RUNTIME_BASE_BACKTRACE_H

#include <stddef.h>
#include <stdint.h>

/* Most frames any caller asks for. */
#define WEFT__BACKTRACE_MAX 32

/* Stores up to max (<= WEFT__BACKTRACE_MAX) return addresses of the
 * calling stack into pcs, innermost first.  With skip 0, pcs[0] points
 * into the function that called weft__backtrace_capture (just after the
 * call); each unit of skip leaves out one more frame.  Returns how many
 * it stored. */
int weft__backtrace_capture(void **pcs, int max, int skip);

/* Writes one line per address of pcs[0..n) into buf (NUL-terminated, cut at
 * size - 1), each "<indent>#<i> <function>+0x<off> (<file>:<line>)\n", as
 * much of it as is known: "(<object>+0x<off>)" without line information,
 * "0x<address>" without a symbol.  The addresses are return addresses:
 * each is looked up one byte earlier, so that the line is the call's and
 * a call at the very end of a function (a noreturn call) is not
 * attributed to the next one.  Stops before a frame in weft__task_run or
 * weft__task_entry (the bottom of a task: what is below is the runtime's
 * or, for a child run inline, its parent's).  With libdw, the lookup runs
 * on a short-lived thread with a 1 MiB stack (libdw's line reader needs
 * ~150 KiB; a fiber may have 64 KiB) and the caller blocks until it is
 * done; without libdw, or when no thread can be created, the caller looks
 * the addresses up with dladdr itself.  Returns the length written. */
size_t weft__backtrace_format(void *const *pcs, int n, const char *indent,
	char *buf, size_t size);

/* One return address as "<function>+0x<off> (<file>:<line>)", as above but
 * without the "#i" and the newline.  Returns the length written. */
size_t weft__backtrace_site(void *pc, char *buf, size_t size);

/* {======================================================= sessions
 *
 * A session does many lookups, and unwinds stacks that are not running,
 * in one libdw session (one read of /proc/self/maps and of each object),
 * on one helper thread with a large stack: the dump's way to name every
 * parked task's frames (core/inspect.c). */

struct weft__bt_session;

/* The registers of a suspended context, by DWARF number (x86_64: 0..16,
 * rip 16; aarch64: x0..x30, sp 31, pc 32), and the only memory an unwind
 * may read: [lo, hi), the context's stack. */
#define WEFT__BT_NREGS 33
struct weft__bt_context {
	uintptr_t regs[WEFT__BT_NREGS];
	uintptr_t lo, hi;
};

/* Runs fn(s, arg) inside a session and returns when it did.  With libdw,
 * fn runs on a short-lived thread with a 1 MiB stack, while the caller
 * waits; without libdw, or when that thread cannot be created, fn runs on
 * the calling thread with a session that cannot unwind and names
 * functions with dladdr only. */
void weft__backtrace_session(void (*fn)(struct weft__bt_session *s, void *arg),
	void *arg);

/* Whether s can unwind a suspended context (libdw was found). */
int weft__backtrace_can_unwind(struct weft__bt_session *s);

/* Unwinds the suspended context c: stores up to max return addresses
 * into pcs, innermost first (pcs[0] is where the context will resume),
 * and returns how many.  Every memory read goes through a bounds check
 * against [c->lo, c->hi): a wrong frame ends the unwind, it never reads
 * outside the stack.  0 without libdw.  The caller guarantees that
 * nothing runs on that stack meanwhile. */
int weft__backtrace_unwind(struct weft__bt_session *s,
	const struct weft__bt_context *c, void **pcs, int max);

/* One return address as weft__backtrace_site formats it, within s; *bottom
 * is set when the frame is a task's bottom (weft__task_run or
 * weft__task_entry), below which weft__backtrace_format stops.  Returns
 * the length written. */
size_t weft__backtrace_session_site(struct weft__bt_session *s, void *pc,
	char *buf, size_t size, int *bottom);
/* The same for a function's address (not a return address: its own
 * first byte is looked up). */
size_t weft__backtrace_session_code(struct weft__bt_session *s, void *fn,
	char *buf, size_t size);

/* }======================================================= */

/* Calls backtrace(3) once, so that glibc loads the unwinder (libgcc_s)
 * now: the first call dlopens it, which is not safe in a signal
 * handler. */
void weft__backtrace_prepare(void);

/* Async-signal-safe enough for a handler that aborts right after (glibc's
 * own segfault reporter does the same): writes the calling stack, minus
 * `skip` frames, to fd, one frame per line with the names the dynamic
 * symbol table knows (backtrace_symbols_fd; no allocation).  Needs
 * weft__backtrace_prepare to have run in the process. */
void weft__backtrace_write_fd(int fd, int skip, int max);

#endif
