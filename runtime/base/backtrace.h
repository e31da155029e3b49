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
