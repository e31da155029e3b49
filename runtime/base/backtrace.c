/* Backtraces: capture with glibc's backtrace(3) (libgcc's unwinder, driven
 * by the CFI every object carries, the fiber trampoline's included, which
 * ends a fiber's chain), symbolization with elfutils' libdw when the build
 * found it, else with dladdr(3).
 *
 * Why a library: naming a static function and its file:line means reading
 * .symtab and .debug_line of the right object at the right load bias,
 * through compressed sections and DWARF 5 line tables; libdw's dwfl API
 * does exactly that in a dozen calls.  dladdr alone knows only the dynamic
 * symbol table: exported functions, no lines.
 *
 * Each format call opens one dwfl session for all its addresses (it reads
 * /proc/self/maps and the ELF files it needs, allocating with malloc) and
 * closes it before returning, so nothing stays behind and no state is
 * shared between threads.  The strings libdw returns live in the session:
 * every frame is formatted before it ends.  The session runs on a
 * short-lived thread with a large stack (bt_job_do), because libdw's
 * DWARF line reader wants far more stack than a fiber has; the caller
 * waits for it.
 *
 * Thread: any.  No state. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif

#include "base/backtrace.h"
#include "base/alloc.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <search.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef WEFT_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#endif

/* The stack of the thread that runs libdw (see bt_job_do). */
#define BT_THREAD_STACK ((size_t)1 << 20)

/* What is known about one code address. */
struct bt_sym {
	const char *func; /* NULL if unknown */
	uintptr_t func_off;
	const char *file; /* NULL if unknown */
	int line;
	const char *obj; /* the object's path, NULL if unknown */
	uintptr_t obj_off;
};

/* An output buffer that is always NUL-terminated and cuts quietly. */
struct bt_out {
	char *buf;
	size_t size, len;
};

__attribute__((format(printf, 2, 3))) static void bt_put(struct bt_out *o,
	const char *fmt, ...)
{
	if (o->size == 0 || o->len + 1 >= o->size)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	o->len += (size_t)n;
	if (o->len >= o->size)
		o->len = o->size - 1;
}

static const char *bt_basename(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Where the frames of the caller of the function that called backtrace
 * start in raw[0..n): at its return address ret.  Usually index 1 (raw[0]
 * is that function's own), but a sanitizer's interceptor of backtrace
 * adds frames of its own before it. */
static int bt_caller_index(void *const *raw, int n, void *ret)
{
	for (int i = 0; i < n && i < 8; i++)
		if (raw[i] == ret)
			return i;
	return n > 1 ? 1 : n;
}

/* Room for the frames asked for, the skipped ones, and those a
 * sanitizer's interceptor of backtrace adds (bt_caller_index). */
#define BT_RAW_MAX (WEFT__BACKTRACE_MAX + 24)

/* The calling stack into raw (BT_RAW_MAX entries) for a public function
 * whose return address is ret: clamps *max and skip, and sets *from to
 * the first frame to report (ret's caller, then skip frames more).
 * Returns the number of frames in raw.  Async-signal-safe as backtrace
 * is once weft__backtrace_prepare ran.  Always inlined: the fallback of
 * bt_caller_index counts on no frame of its own. */
static inline __attribute__((always_inline)) int bt_raw(void **raw, int *max,
	int skip, void *ret, int *from)
{
	if (*max > WEFT__BACKTRACE_MAX)
		*max = WEFT__BACKTRACE_MAX;
	if (skip < 0)
		skip = 0;
	if (skip > 15)
		skip = 15;
	int n = backtrace(raw, *max + skip + 4);
	*from = bt_caller_index(raw, n, ret) + skip;
	return n;
}

/* Not inlined, so that its own frame is the one it leaves out. */
__attribute__((noinline)) int weft__backtrace_capture(void **pcs, int max,
	int skip)
{
	void *raw[BT_RAW_MAX];
	int from;
	int n = bt_raw(raw, &max, skip, __builtin_return_address(0), &from);
	int k = 0;
	for (int i = from; i < n && k < max; i++)
		pcs[k++] = raw[i];
	return k;
}

/* pc - 1 is inside the call instruction that pushed the return address
 * pc: its line is the call's, and its symbol is the caller's even when
 * the call is the function's last instruction. */
static void bt_sym_dladdr(void *pc, struct bt_sym *s)
{
	uintptr_t a = (uintptr_t)pc - 1;
	Dl_info info;
	memset(s, 0, sizeof *s);
	if (dladdr((void *)a, &info) == 0)
		return;
	if (info.dli_sname != NULL && info.dli_saddr != NULL) {
		s->func = info.dli_sname;
		s->func_off = (uintptr_t)pc - (uintptr_t)info.dli_saddr;
	}
	if (info.dli_fname != NULL) {
		s->obj = info.dli_fname;
		s->obj_off = (uintptr_t)pc - (uintptr_t)info.dli_fbase;
	}
}

#ifdef WEFT_HAVE_LIBDW
/* A session over the objects mapped in this process, or NULL. */
static Dwfl *bt_dw_open(void)
{
	static const Dwfl_Callbacks callbacks = {
		.find_elf = dwfl_linux_proc_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
	};
	Dwfl *d = dwfl_begin(&callbacks);
	if (d == NULL)
		return NULL;
	dwfl_report_begin(d);
	if (dwfl_linux_proc_report(d, getpid()) != 0 ||
		dwfl_report_end(d, NULL, NULL) != 0) {
		dwfl_end(d);
		return NULL;
	}
	return d;
}

/* As bt_sym_dladdr (which fills what libdw does not know), through d. */
static void bt_sym_dw(Dwfl *d, void *pc, struct bt_sym *s)
{
	bt_sym_dladdr(pc, s);
	Dwarf_Addr a = (Dwarf_Addr)(uintptr_t)pc - 1;
	Dwfl_Module *m = dwfl_addrmodule(d, a);
	if (m == NULL)
		return;
	GElf_Off off = 0;
	GElf_Sym sym;
	const char *name = dwfl_module_addrinfo(m, a, &off, &sym, NULL, NULL,
		NULL);
	if (name != NULL) {
		s->func = name;
		s->func_off = (uintptr_t)off + 1;
	}
	Dwfl_Line *line = dwfl_module_getsrc(m, a);
	int lineno = 0;
	const char *file = line
		? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL)
		: NULL;
	if (file != NULL) {
		s->file = file;
		s->line = lineno;
	}
}
#endif

/* One frame's text, without the "#i" and the newline. */
static void bt_put_sym(struct bt_out *o, void *pc, const struct bt_sym *s)
{
	if (s->func != NULL)
		bt_put(o, "%s+0x%lx", s->func, (unsigned long)s->func_off);
	else
		bt_put(o, "%p", pc);
	if (s->file != NULL)
		bt_put(o, " (%s:%d)", bt_basename(s->file), s->line);
	else if (s->obj != NULL)
		bt_put(o, " (%s+0x%lx)", bt_basename(s->obj),
			(unsigned long)s->obj_off);
}

/* The bottom of a task's own frames (task.c): what lies below is the
 * runtime's entry, or the parent's frames under a child run inline. */
static int bt_is_task_bottom(const struct bt_sym *s)
{
	return s->func != NULL &&
		(strcmp(s->func, "weft__task_run") == 0 ||
			strcmp(s->func, "weft__task_entry") == 0);
}

/* One formatting job: frames (or one site) into a buffer. */
struct bt_job {
	void *const *pcs;
	int n;
	const char *indent; /* NULL: one site, no "#i" and no newline */
	struct bt_out out;
};

static void bt_job_run(struct bt_job *j, int use_libdw)
{
#ifdef WEFT_HAVE_LIBDW
	Dwfl *d = use_libdw ? bt_dw_open() : NULL;
#else
	(void)use_libdw;
#endif
	for (int i = 0; i < j->n; i++) {
		struct bt_sym s;
#ifdef WEFT_HAVE_LIBDW
		if (d != NULL)
			bt_sym_dw(d, j->pcs[i], &s);
		else
#endif
			bt_sym_dladdr(j->pcs[i], &s);
		if (j->indent == NULL) {
			bt_put_sym(&j->out, j->pcs[i], &s);
			break;
		}
		if (i > 0 && bt_is_task_bottom(&s))
			break;
		bt_put(&j->out, "%s#%d ", j->indent, i);
		bt_put_sym(&j->out, j->pcs[i], &s);
		bt_put(&j->out, "\n");
	}
#ifdef WEFT_HAVE_LIBDW
	if (d != NULL)
		dwfl_end(d);
#endif
}

#ifdef WEFT_HAVE_LIBDW
static void *bt_job_thread(void *arg)
{
	bt_job_run(arg, 1);
	return NULL;
}
#endif

/* Runs the job with libdw on a thread of its own, whose stack is large:
 * libdw's line-table reader keeps big arrays on the stack (measured here:
 * ~150 KiB below dwarf_getsrclines), and the caller may be a fiber with
 * 64 KiB.  The caller blocks until it is done (a failure path:
 * milliseconds).  Without libdw, or if the thread cannot be created, the
 * caller does it itself with dladdr, which needs little stack. */
static void bt_job_do(struct bt_job *j)
{
#ifdef WEFT_HAVE_LIBDW
	pthread_attr_t attr;
	pthread_t th;
	if (pthread_attr_init(&attr) == 0) {
		int ok = pthread_attr_setstacksize(&attr, BT_THREAD_STACK) ==
				0 &&
			pthread_create(&th, &attr, bt_job_thread, j) == 0;
		pthread_attr_destroy(&attr);
		if (ok) {
			pthread_join(th, NULL);
			return;
		}
	}
#endif
	bt_job_run(j, 0);
}

size_t weft__backtrace_format(void *const *pcs, int n, const char *indent,
	char *buf, size_t size)
{
	struct bt_job j = { pcs, n, indent ? indent : "", { buf, size, 0 } };
	if (size > 0)
		buf[0] = '\0';
	bt_job_do(&j);
	return j.out.len;
}

size_t weft__backtrace_site(void *pc, char *buf, size_t size)
{
	void *pcs[1] = { pc };
	struct bt_job j = { pcs, 1, NULL, { buf, size, 0 } };
	if (size > 0)
		buf[0] = '\0';
	bt_job_do(&j);
	return j.out.len;
}

/* {======================================================= sessions */

/* One address a session has named: its text as bt_session_put wrote it
 * into a buffer of BT_SITE_MAX bytes, and whether it is a task's bottom.
 * Why: a dump names the frames of every parked task, and tasks parked in
 * the same place share them (10,000 connections waiting in one read: some
 * ten distinct addresses among 100,000 frames), while libdw's symbol
 * lookup (dwfl_module_addrinfo) scans the object's whole symbol table at
 * every call: measured here, a dump of 10,000 tasks parked on one event
 * spent most of its 1.0-1.7 s there.  Kept in a tsearch(3) tree, keyed by
 * address and kind, for the session's life. */
#define BT_SITE_MAX 512
struct bt_memo {
	uintptr_t pc;
	int code;
	int bottom;
	size_t len;
	char text[];
};

static int bt_memo_cmp(const void *a, const void *b)
{
	const struct bt_memo *x = a, *y = b;
	if (x->pc != y->pc)
		return x->pc < y->pc ? -1 : 1;
	return (x->code > y->code) - (x->code < y->code);
}

static void bt_memo_free(void *m)
{
	weft__free(m);
}

struct weft__bt_session {
	void *memo; /* tsearch(3) root of struct bt_memo */
#ifdef WEFT_HAVE_LIBDW
	Dwfl *d;      /* NULL: dladdr only */
	int attached; /* dwfl_attach_state succeeded: can unwind */
	/* The context being unwound (bt_dw_* callbacks read it). */
	const struct weft__bt_context *ctx;
#endif
	void (*fn)(struct weft__bt_session *s, void *arg);
	void *arg;
};

#ifdef WEFT_HAVE_LIBDW
/* libdw's process callbacks, for a "process" of one thread: the context
 * being unwound, whose registers are given and whose memory is this
 * process's own, read in place. */
static pid_t bt_dw_next_thread(Dwfl *dwfl, void *dwfl_arg, void **thread_argp)
{
	(void)dwfl;
	if (*thread_argp != NULL)
		return 0;
	*thread_argp = dwfl_arg;
	return 1;
}

static bool bt_dw_get_thread(Dwfl *dwfl, pid_t tid, void *dwfl_arg,
	void **thread_argp)
{
	(void)dwfl;
	(void)tid;
	*thread_argp = dwfl_arg;
	return true;
}

/* One word of the stack being unwound, bounds-checked.  The stack belongs
 * to a context that is not running (the caller's guarantee) and is read
 * in place.  Not instrumented by ASan: the frames of a parked fiber keep
 * their redzones poisoned, and an unwinder reads saved registers and
 * return addresses next to them; the bounds check above is what makes the
 * read safe.  ThreadSanitizer sees the read, which happens after the
 * context's last write through the caller's hand-off (core/inspect.c). */
__attribute__((no_sanitize_address)) static bool bt_dw_memory_read(Dwfl *dwfl,
	Dwarf_Addr addr, Dwarf_Word *result, void *dwfl_arg)
{
	(void)dwfl;
	const struct weft__bt_session *s = dwfl_arg;
	const struct weft__bt_context *c = s->ctx;
	if (c == NULL || addr < c->lo || addr > c->hi - sizeof(Dwarf_Word) ||
		addr % sizeof(Dwarf_Word) != 0)
		return false;
	*result = *(const Dwarf_Word *)(uintptr_t)addr;
	return true;
}

static bool bt_dw_set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
	const struct weft__bt_session *s = thread_arg;
	const struct weft__bt_context *c = s->ctx;
	Dwarf_Word regs[WEFT__BT_NREGS];
	for (int i = 0; i < WEFT__BT_NREGS; i++)
		regs[i] = c->regs[i];
#if defined(__x86_64__)
	return dwfl_thread_state_registers(thread, 0, 17, regs);
#elif defined(__aarch64__)
	if (!dwfl_thread_state_registers(thread, 0, 32, regs))
		return false;
	dwfl_thread_state_register_pc(thread, regs[32]);
	return true;
#else
	(void)thread;
	(void)regs;
	return false;
#endif
}

static const Dwfl_Thread_Callbacks bt_dw_thread_callbacks = {
	.next_thread = bt_dw_next_thread,
	.get_thread = bt_dw_get_thread,
	.memory_read = bt_dw_memory_read,
	.set_initial_registers = bt_dw_set_initial_registers,
};

struct bt_unwind {
	void **pcs;
	int n, max;
};

static int bt_dw_frame(Dwfl_Frame *state, void *arg)
{
	struct bt_unwind *u = arg;
	Dwarf_Addr pc;
	bool activation;
	if (!dwfl_frame_pc(state, &pc, &activation) || pc == 0)
		return DWARF_CB_ABORT;
	/* Every address is reported as a return address (the formatter
	 * looks each up one byte earlier); the first is where the context
	 * resumes, which is one too: it follows the call of the switch. */
	u->pcs[u->n++] = (void *)(uintptr_t)pc;
	return u->n < u->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}
#endif

static void bt_session_run(struct weft__bt_session *s, int use_libdw)
{
#ifdef WEFT_HAVE_LIBDW
	s->d = use_libdw ? bt_dw_open() : NULL;
	s->attached = s->d != NULL &&
		dwfl_attach_state(s->d, NULL, getpid(), &bt_dw_thread_callbacks,
			s);
	s->ctx = NULL;
#else
	(void)use_libdw;
#endif
	s->fn(s, s->arg);
	tdestroy(s->memo, bt_memo_free);
	s->memo = NULL;
#ifdef WEFT_HAVE_LIBDW
	if (s->d != NULL)
		dwfl_end(s->d);
	s->d = NULL;
#endif
}

#ifdef WEFT_HAVE_LIBDW
static void *bt_session_thread(void *arg)
{
	bt_session_run(arg, 1);
	return NULL;
}
#endif

void weft__backtrace_session(void (*fn)(struct weft__bt_session *s, void *arg),
	void *arg)
{
	struct weft__bt_session s;
	memset(&s, 0, sizeof s);
	s.fn = fn;
	s.arg = arg;
#ifdef WEFT_HAVE_LIBDW
	/* As bt_job_do: libdw wants more stack than a fiber has. */
	pthread_attr_t attr;
	pthread_t th;
	if (pthread_attr_init(&attr) == 0) {
		int ok = pthread_attr_setstacksize(&attr, BT_THREAD_STACK) ==
				0 &&
			pthread_create(&th, &attr, bt_session_thread, &s) == 0;
		pthread_attr_destroy(&attr);
		if (ok) {
			pthread_join(th, NULL);
			return;
		}
	}
#endif
	bt_session_run(&s, 0);
}

int weft__backtrace_can_unwind(struct weft__bt_session *s)
{
#ifdef WEFT_HAVE_LIBDW
	return s->attached;
#else
	(void)s;
	return 0;
#endif
}

int weft__backtrace_unwind(struct weft__bt_session *s,
	const struct weft__bt_context *c, void **pcs, int max)
{
#ifdef WEFT_HAVE_LIBDW
	if (!s->attached || max <= 0)
		return 0;
	struct bt_unwind u = { pcs, 0, max };
	s->ctx = c;
	/* Ends with an error at the fiber's bottom (the trampoline's CFI
	 * marks its return address undefined): the frames are kept. */
	(void)dwfl_getthread_frames(s->d, 1, bt_dw_frame, &u);
	s->ctx = NULL;
	return u.n;
#else
	(void)s;
	(void)c;
	(void)pcs;
	(void)max;
	return 0;
#endif
}

/* The symbol of pc as a return address (code == 0), or of the code
 * address pc (code == 1): the lookups take pc - 1, so a code address is
 * looked up as pc + 1 and its offset taken back by one. */
static void bt_session_sym(struct weft__bt_session *s, void *pc, int code,
	struct bt_sym *sym)
{
	void *at = (char *)pc + code;
#ifdef WEFT_HAVE_LIBDW
	if (s->d != NULL)
		bt_sym_dw(s->d, at, sym);
	else
#else
	(void)s;
#endif
		bt_sym_dladdr(at, sym);
	if (sym->func)
		sym->func_off -= (uintptr_t)code;
}

/* pc's text (code: as bt_session_sym) into buf; *bottom (if not NULL)
 * as weft__backtrace_session_site says.  Named once per session and
 * address (struct bt_memo); a text that cannot be kept (no memory) is
 * named again next time. */
static size_t bt_session_put(struct weft__bt_session *s, void *pc, int code,
	char *buf, size_t size, int *bottom)
{
	struct bt_memo key = { .pc = (uintptr_t)pc, .code = code };
	void **found = tfind(&key, &s->memo, bt_memo_cmp);
	const struct bt_memo *m = found ? *found : NULL;
	char site[BT_SITE_MAX];
	if (m == NULL) {
		struct bt_out o = { site, sizeof site, 0 };
		struct bt_sym sym;
		site[0] = '\0';
		bt_session_sym(s, pc, code, &sym);
		bt_put_sym(&o, pc, &sym);
		key.bottom = bt_is_task_bottom(&sym);
		key.len = o.len;
		struct bt_memo *fresh = weft__alloc(sizeof key + key.len + 1);
		if (fresh != NULL) {
			*fresh = key;
			memcpy(fresh->text, site, key.len + 1);
			if (tsearch(fresh, &s->memo, bt_memo_cmp) == NULL)
				weft__free(fresh);
		}
	}
	const char *text = m ? m->text : site;
	size_t len = m ? m->len : key.len;
	if (bottom)
		*bottom = m ? m->bottom : key.bottom;
	/* The cut of bt_out: at most size - 1 bytes and a NUL. */
	if (size == 0)
		return 0;
	if (len >= size)
		len = size - 1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return len;
}

size_t weft__backtrace_session_site(struct weft__bt_session *s, void *pc,
	char *buf, size_t size, int *bottom)
{
	return bt_session_put(s, pc, 0, buf, size, bottom);
}

size_t weft__backtrace_session_code(struct weft__bt_session *s, void *fn,
	char *buf, size_t size)
{
	return bt_session_put(s, fn, 1, buf, size, NULL);
}

/* }======================================================= */

void weft__backtrace_prepare(void)
{
	void *one[1];
	(void)backtrace(one, 1);
}

/* Not inlined, so that its own frame is the one it leaves out. */
__attribute__((noinline)) void weft__backtrace_write_fd(int fd, int skip,
	int max)
{
	void *raw[BT_RAW_MAX];
	int from;
	int n = bt_raw(raw, &max, skip, __builtin_return_address(0), &from);
	if (n > from)
		backtrace_symbols_fd(raw + from,
			n - from < max ? n - from : max, fd);
}
