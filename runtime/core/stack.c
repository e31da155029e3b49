/* Fiber stacks: mapping (guarded or slab), the per-worker LIFO pools and
 * the shared overflow pool, memory release, the canary, and the SIGSEGV
 * handler that names the task whose stack overflowed and prints its
 * backtrace.  See stack.h for the
 * two kinds of stack and why both exist.
 *
 * The canary is "the lowest 64 bytes are zero".  Nothing legitimately
 * writes there (it is the far end of the stack), fresh anonymous memory and
 * MADV_DONTNEED both provide zeros, so the canary costs no write and no
 * resident page: a written pattern would touch the bottom page of every
 * stack and double the memory of a parked fiber (8 KiB instead of 4 KiB).
 * The price: an overflow that writes only zeros there goes unnoticed, as
 * does one whose frame skips the line entirely; the canary is a best-effort
 * net for unguarded stacks, the guard page is the real protection.  The
 * first check of a fresh stack takes a read fault (~1 us) that maps the
 * shared zero page; the page is never released afterwards (see
 * stack_release), so later checks are one cache-line load.
 *
 * Locks: shared->lock and handler_lock are never held together.
 * Thread-locals: stack_running_slot and stack_alt are accessed only by
 * functions that never switch fibers (thread_init/fini, the signal
 * handler), so no TLS address is ever carried across a switch; the
 * scheduler writes the slot itself through its worker (set_running). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* REG_RSP in ucontext */
#endif

#include "core/stack.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/diag.h"
#include "core/sanitizer.h"

#define STACK_MIN ((size_t)16 << 10)
#define STACK_MAX ((size_t)1 << 30)
/* A worker caches up to POOL_CACHE stacks; on overflow it keeps the
 * POOL_KEEP hottest and spills the rest.  It refills POOL_BATCH at a time.
 * Batching keeps the shared lock off the spawn path (one lock per ~32). */
#define POOL_CACHE 64
#define POOL_KEEP 32
#define POOL_BATCH 32
/* Shared-pool watermark: up to SHARED_WARM idle stacks stay resident;
 * weft__stack_trim releases the memory of the others (all but the lowest,
 * canary page, which is normally the shared zero page).  Releasing on
 * every spill instead put one madvise (and a TLB-shootdown IPI to the
 * other vCPU) on every task exit after a burst: B7 woke 100k sleepers
 * hundreds of ms late. */
#define SHARED_WARM 256
/* Slabs hold up to SLAB_MAX_STACKS stacks and about SLAB_BYTES bytes of
 * address space (at least one stack). */
#define SLAB_MAX_STACKS 256
#define SLAB_BYTES ((size_t)256 << 20)
#define CANARY_BYTES 64
/* Stacks released by one process_madvise call (stack_release). */
#define TRIM_IOV 64
/* A fault this far below a running stack, with the stack pointer this
 * close to its low end, is an overflow even past the guard page (a frame
 * bigger than a page jumps over it). */
#define OVERFLOW_SLACK ((size_t)64 << 10)
#define ALTSTACK_SIZE ((size_t)64 << 10)

/* `released` values.  The lowest (canary) page is never released. */
#define STACK_DIRTY 0	 /* may hold data anywhere */
#define STACK_TOP_ONLY 1 /* only the top and the lowest page may be resident */
#define STACK_CLEAN 2	 /* only the lowest page may be resident */

/* Internal result of stack_map_guarded: the kernel refused the mapping. */
#define STACK_ENOMAP 1

struct weft__stack_slab {
	struct weft__stack_slab *next;
	void *base;
	size_t len;
	size_t carved; /* stacks[0..carved) are in use or pooled */
	weft__stack_t stacks[];
};

/* {====== mapping ====== */

static void stack_created(weft__stack_t *st)
{
	st->released = STACK_CLEAN;
	st->valgrind_id = weft__san_stack_register(st->lo, st->size);
	weft__alloc_census_add(WEFT__CENSUS_STACK, +1);
}

/* Undoes stack_created and what fibers left behind; the caller unmaps. */
static void stack_forget(weft__stack_t *st)
{
	weft__san_stack_deregister(st->valgrind_id);
#ifdef WEFT__TSAN
	weft__san_tsan_destroy(st->tsan_fiber);
	st->tsan_fiber = NULL;
#endif
	weft__san_unpoison(st->lo, st->size);
	weft__alloc_census_add(WEFT__CENSUS_STACK, -1);
}

static void *stack_mmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* A 2 MiB huge page behind a stack that uses 4 KiB would defeat the
	 * one-page-per-fiber budget.  Failure (no THP) is harmless. */
	(void)madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* Maps one stack with a PROT_NONE page below it.  Caller holds the lock
 * and has checked the budget.  On failure nothing is leaked and it returns
 * -ENOMEM if the metadata allocation failed, STACK_ENOMAP if the kernel
 * refused the mapping (the caller may then try a slab stack). */
static int stack_map_guarded(weft__stack_shared_t *s, weft__stack_t **out)
{
	weft__stack_t *st = weft__calloc(1, sizeof *st);
	if (st == NULL)
		return -ENOMEM;
	size_t len = s->stack_size + s->page;
	char *base = stack_mmap(len);
	/* mprotect splits the mapping in two VMAs; it is the call that fails
	 * with ENOMEM once vm.max_map_count is reached. */
	if (base == NULL || mprotect(base, s->page, PROT_NONE) != 0) {
		if (base != NULL)
			munmap(base, len);
		weft__free(st);
		return STACK_ENOMAP;
	}
	st->lo = base + s->page;
	st->size = s->stack_size;
	st->guarded = 1;
	st->all_next = s->guarded_all;
	s->guarded_all = st;
	s->nguarded++;
	s->total++;
	stack_created(st);
	*out = st;
	return 0;
}

/* Carves the next stack out of the newest slab, mapping a new slab when it
 * is full.  Caller holds the lock.  -ENOMEM on failure, nothing leaked. */
static int stack_carve(weft__stack_shared_t *s, weft__stack_t **out)
{
	struct weft__stack_slab *sl = s->slabs;
	if (sl == NULL || sl->carved == s->slab_stacks) {
		sl = weft__calloc(1,
			sizeof *sl + s->slab_stacks * sizeof sl->stacks[0]);
		if (sl == NULL)
			return -ENOMEM;
		sl->len = s->slab_stacks * s->stack_size;
		sl->base = stack_mmap(sl->len);
		if (sl->base == NULL) {
			weft__free(sl);
			return -ENOMEM;
		}
		sl->next = s->slabs;
		s->slabs = sl;
	}
	weft__stack_t *st = &sl->stacks[sl->carved++];
	st->lo = (char *)sl->base + (sl->carved - 1) * s->stack_size;
	st->size = s->stack_size;
	s->total++;
	stack_created(st);
	*out = st;
	return 0;
}

/* Caller holds the lock. */
static int stack_new_locked(weft__stack_shared_t *s, weft__stack_t **out)
{
	if (s->nguarded < s->max_guarded) {
		int rc = stack_map_guarded(s, out);
		if (rc != STACK_ENOMAP)
			return rc;
		/* Out of VMAs (vm.max_map_count) or address space for a
		 * guarded stack: a slab stack (one VMA per slab) may still
		 * fit.  Lower the budget so later calls do not retry. */
		s->max_guarded = s->nguarded;
	}
	return stack_carve(s, out);
}
/* }====== */

/* {====== shared pool ====== */

/* vm.max_map_count, or 0 if unknown. */
static size_t stack_max_map_count(void)
{
	char buf[32];
	ssize_t n = -1;
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
	}
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (size_t)strtoul(buf, NULL, 10);
}

int weft__stack_shared_init(weft__stack_shared_t *s, size_t stack_size,
	size_t max_guarded)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	if (stack_size < STACK_MIN || stack_size > STACK_MAX)
		return -EINVAL;
	memset(s, 0, sizeof *s);
	s->page = page;
	s->stack_size = (stack_size + page - 1) & ~(page - 1);
	/* Guarded stacks take two VMAs each.  Let them use at most half of
	 * the process's VMA budget, so that reaching the guard budget never
	 * leaves malloc, thread stacks or libuv without mappings. */
	size_t vmas = stack_max_map_count();
	if (vmas != 0 && max_guarded > vmas / 4)
		max_guarded = vmas / 4;
	s->max_guarded = max_guarded;
	size_t per = SLAB_BYTES / s->stack_size;
	s->slab_stacks = per < 1	? 1
		: per > SLAB_MAX_STACKS ? SLAB_MAX_STACKS
					: per;
	atomic_init(&s->nfree, 0);
	atomic_init(&s->no_batch, false);
	s->pidfd = -1;
#if defined(SYS_process_madvise) && defined(SYS_pidfd_open)
	/* For stack_release's batches; without it (an older kernel, a
	 * seccomp filter, valgrind) stacks are released one by one. */
	if (!weft__san_on_valgrind())
		s->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (s->pidfd >= 0)
		(void)fcntl(s->pidfd, F_SETFD, FD_CLOEXEC);
	else
		s->pidfd = -1;
#endif
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		if (s->pidfd >= 0)
			close(s->pidfd);
		return -ENOMEM;
	}
	return 0;
}

void weft__stack_shared_fini(weft__stack_shared_t *s)
{
	/* Every stack must be back in the overflow pool: pools return theirs
	 * in pool_fini, fibers theirs in weft__stack_put.  relaxed: nobody
	 * else uses s any more. */
	WEFT_ASSERT(atomic_load_explicit(&s->nfree, memory_order_relaxed) +
				s->ncold ==
			s->total,
		"stack: shared_fini while stacks are still in use");
	for (weft__stack_t *st = s->guarded_all, *nx; st != NULL; st = nx) {
		nx = st->all_next;
		stack_forget(st);
		munmap((char *)st->lo - s->page, st->size + s->page);
		weft__free(st);
	}
	for (struct weft__stack_slab *sl = s->slabs, *nx; sl != NULL; sl = nx) {
		nx = sl->next;
		for (size_t i = 0; i < sl->carved; i++)
			stack_forget(&sl->stacks[i]);
		munmap(sl->base, sl->len);
		weft__free(sl);
	}
	pthread_mutex_destroy(&s->lock);
	if (s->pidfd >= 0)
		close(s->pidfd);
	memset(s, 0, sizeof *s);
}

/* Returns the memory of idle stacks to the kernel, except each one's
 * lowest page: it holds the canary, which weft__stack_check reads, so on
 * an ordinary stack it is mapped to the kernel's shared zero page (no
 * RSS); dropping that mapping would only make the next check fault again.
 *
 * One process_madvise(2) call for up to TRIM_IOV stacks where the kernel
 * takes MADV_DONTNEED there for the calling process (Linux 6.x), else one
 * madvise(2) per stack.  What it saves is the TLB shootdown: every
 * MADV_DONTNEED of a page some thread may have cached ends with an
 * inter-processor interrupt to each other CPU running one of the
 * process's threads, and the caller waits for their answers; a batched
 * call flushes once.  Measured here, 20,000 stacks with another thread of
 * the process spinning: 5.5-10.5 us per stack one by one, 1.7-2.3 us in
 * batches of 64.  B7's wake-up of 3x10^5 sleepers spent a third of its
 * workers' time in those interrupts while idle workers trimmed the
 * stacks of the tasks that had ended.
 *
 * Runs without any lock: the stacks are the caller's (off every list). */
/* 0 if one process_madvise call released all `bytes` of iov[0..n);
 * -1 if the caller must release them one madvise at a time. */
static int stack_release_batch(weft__stack_shared_t *s, const struct iovec *iov,
	size_t n, size_t bytes)
{
#if defined(SYS_process_madvise)
	/* relaxed: a hint; racing trims may each try once more. */
	if (s->pidfd < 0 ||
		atomic_load_explicit(&s->no_batch, memory_order_relaxed))
		return -1;
	long r = syscall(SYS_process_madvise, s->pidfd, iov, n, MADV_DONTNEED,
		0);
	if (r == (long)bytes)
		return 0;
	/* An older kernel (no such call, or MADV_DONTNEED not taken there)
	 * or a seccomp filter: stop trying. */
	if (r < 0 &&
		(errno == ENOSYS || errno == EINVAL || errno == EPERM ||
			errno == EBADF))
		atomic_store_explicit(&s->no_batch, true, memory_order_relaxed);
	return -1;
#else
	(void)s, (void)iov, (void)n, (void)bytes;
	return -1;
#endif
}

static void stack_release(weft__stack_shared_t *s, weft__stack_t *head)
{
	weft__stack_t *st = head;
	while (st != NULL) {
		struct iovec iov[TRIM_IOV];
		size_t n = 0, bytes = 0;
		weft__stack_t *chunk = st;
		for (; st != NULL && n < TRIM_IOV; st = st->next) {
			if (st->released == STACK_CLEAN)
				continue;
			iov[n].iov_base = (char *)st->lo + s->page;
			iov[n].iov_len = st->size - s->page;
			bytes += iov[n].iov_len;
			n++;
		}
		/* A partial batch is released again whole: MADV_DONTNEED of
		 * released memory is harmless. */
		if (n > 0 && stack_release_batch(s, iov, n, bytes) != 0)
			for (size_t i = 0; i < n; i++)
				(void)madvise(iov[i].iov_base, iov[i].iov_len,
					MADV_DONTNEED);
		for (; chunk != st; chunk = chunk->next)
			chunk->released = STACK_CLEAN;
	}
}

size_t weft__stack_trim(weft__stack_shared_t *s, size_t budget)
{
	/* relaxed: a hint (see nfree in stack.h). */
	if (atomic_load_explicit(&s->nfree, memory_order_relaxed) <=
		SHARED_WARM)
		return 0;
	pthread_mutex_lock(&s->lock);
	/* relaxed: under the lock, like every write of nfree. */
	size_t nfree = atomic_load_explicit(&s->nfree, memory_order_relaxed);
	size_t n = nfree > SHARED_WARM ? nfree - SHARED_WARM : 0;
	if (n > budget)
		n = budget;
	weft__stack_t *head = s->free, *tail = NULL;
	for (size_t i = 0; i < n; i++)
		tail = tail ? tail->next : head;
	if (n > 0) {
		s->free = tail->next;
		tail->next = NULL;
		/* relaxed: under the lock. */
		atomic_store_explicit(&s->nfree, nfree - n,
			memory_order_relaxed);
	}
	pthread_mutex_unlock(&s->lock);
	if (n == 0)
		return 0;
	stack_release(s, head);
	pthread_mutex_lock(&s->lock);
	tail->next = s->cold;
	s->cold = head;
	s->ncold += n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Moves the n-stack list head..tail into the shared pool. */
static void shared_give(weft__stack_shared_t *s, weft__stack_t *head,
	weft__stack_t *tail, size_t n)
{
	pthread_mutex_lock(&s->lock);
	tail->next = s->free;
	s->free = head;
	/* Under the lock; relaxed because the lock orders it. */
	atomic_store_explicit(&s->nfree,
		atomic_load_explicit(&s->nfree, memory_order_relaxed) + n,
		memory_order_relaxed);
	pthread_mutex_unlock(&s->lock);
}
/* }====== */

/* {====== per-worker pool ====== */

void weft__stack_pool_init(weft__stack_pool_t *p, weft__stack_shared_t *s)
{
	p->shared = s;
	p->hot = NULL;
	p->count = 0;
}

void weft__stack_pool_fini(weft__stack_pool_t *p)
{
	if (p->hot != NULL) {
		weft__stack_t *tail = p->hot;
		while (tail->next != NULL)
			tail = tail->next;
		shared_give(p->shared, p->hot, tail, p->count);
	}
	p->hot = NULL;
	p->count = 0;
}

/* Keeps the POOL_KEEP hottest stacks and spills the colder rest. */
static void pool_spill(weft__stack_pool_t *p)
{
	weft__stack_t *last_kept = p->hot;
	for (size_t i = 1; i < POOL_KEEP; i++)
		last_kept = last_kept->next;
	weft__stack_t *head = last_kept->next, *tail = head;
	last_kept->next = NULL;
	while (tail->next != NULL)
		tail = tail->next;
	shared_give(p->shared, head, tail, p->count - POOL_KEEP);
	p->count = POOL_KEEP;
}

/* Pool empty: takes up to POOL_BATCH stacks from the shared pool, or maps
 * a new one.  Returns one in *out and caches the others. */
static int pool_refill(weft__stack_pool_t *p, weft__stack_t **out)
{
	weft__stack_shared_t *s = p->shared;
	weft__stack_t *head, *tail = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	head = s->free;
	for (weft__stack_t *st = head; st != NULL && n < POOL_BATCH;
		st = st->next) {
		tail = st;
		n++;
	}
	if (n > 0) {
		s->free = tail->next;
		tail->next = NULL;
		/* relaxed both: under the lock. */
		atomic_store_explicit(&s->nfree,
			atomic_load_explicit(&s->nfree, memory_order_relaxed) -
				n,
			memory_order_relaxed);
	} else if (s->cold != NULL) {
		/* Released stacks: each costs a page fault on first use. */
		head = s->cold;
		for (weft__stack_t *st = head; st != NULL && n < POOL_BATCH;
			st = st->next) {
			tail = st;
			n++;
		}
		s->cold = tail->next;
		tail->next = NULL;
		s->ncold -= n;
	} else {
		rc = stack_new_locked(s, &head);
		if (rc == 0)
			head->next = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc != 0)
		return rc;

	*out = head;
	p->hot = head->next;
	p->count = n > 0 ? n - 1 : 0;
	return 0;
}

int weft__stack_get(weft__stack_pool_t *p, weft__stack_t **out)
{
	weft__stack_t *st = p->hot;
	if (st != NULL) {
		p->hot = st->next;
		p->count--;
	} else {
		int rc = pool_refill(p, &st);
		if (rc != 0)
			return rc;
	}
	st->next = NULL;
	st->owner_name = NULL;
	st->released = STACK_DIRTY; /* a fiber is about to use it */
	*out = st;
	return 0;
}

void weft__stack_put(weft__stack_pool_t *p, weft__stack_t *st)
{
	st->owner_name = NULL;
	st->next = p->hot;
	p->hot = st;
	if (++p->count > POOL_CACHE)
		pool_spill(p);
}
/* }====== */

/* {====== canary ====== */

/* Not ASan-instrumented: a fiber that ran (almost) out of stack may have
 * left poisoned redzones over the canary, and reading it is the point. */
__attribute__((no_sanitize_address)) int weft__stack_check_canary(
	const weft__stack_t *st)
{
	const volatile uint64_t *w = (const volatile uint64_t *)st->lo;
	uint64_t acc = 0;
	for (size_t i = 0; i < CANARY_BYTES / sizeof *w; i++)
		acc |= w[i];
	return acc == 0 ? 0 : -1;
}

/* }====== */

/* {====== stack images ====== */

/* Word copies, not ASan-instrumented (frames hold poisoned redzones, and
 * the copy is of the whole range), and not turned into a memcpy call,
 * which ASan intercepts: each word goes through a volatile access.  The
 * range is a multiple of 8 bytes: a saved sp is at least 8-aligned, and
 * the top of a stack is page-aligned (weft__stack_image_release checks
 * it). */
__attribute__((no_sanitize_address)) static void stack_copy_words(void *dst,
	const void *src, size_t len)
{
	volatile uint64_t *d = dst;
	const volatile uint64_t *s = src;
	for (size_t i = 0; i < len / sizeof *d; i++)
		d[i] = s[i];
}

/* The start of the page holding sp: the released range is [it, top). */
static char *stack_image_from(const void *sp)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	return (char *)((uintptr_t)sp & ~(page - 1));
}

struct weft__stack_image *weft__stack_image_release(const weft__stack_t *st,
	void *sp)
{
	char *top = (char *)st->lo + st->size;
	size_t len = (size_t)(top - (char *)sp);
	char *from = stack_image_from(sp);
	/* Too deep to be worth it, or reaching into the canary page (lo
	 * and from are page-aligned). */
	if (len > WEFT__STACK_IMAGE_MAX || len % sizeof(uint64_t) != 0 ||
		from <= (char *)st->lo)
		return NULL;
	struct weft__stack_image *img = weft__alloc(sizeof *img + len);
	if (img == NULL)
		return NULL;
	stack_copy_words(img->bytes, sp, len);
	img->sp = sp;
	img->len = len;
	if (madvise(from, (size_t)(top - from), MADV_DONTNEED) != 0) {
		weft__free(img);
		return NULL;
	}
	return img;
}

#ifdef WEFT_DEBUG
/* Aborts if a page of [from, top) is resident again. */
static void stack_image_check(char *from, char *top, const char *call,
	const char *name)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char vec[64];
	size_t n = (size_t)(top - from) / page;
	if (n > sizeof vec || mincore(from, (size_t)(top - from), vec) != 0)
		return; /* no answer: nothing to say */
	for (size_t i = 0; i < n; i++)
		if (vec[i] & 1) {
			weft__diag("%s: the stack of task '%s' was read or "
				   "written by another task or thread while "
				   "its wait had released it (the caller "
				   "promised nobody would touch it)",
				call, name ? name : "?");
			abort();
		}
}
#endif

void weft__stack_image_restore(const weft__stack_t *st,
	struct weft__stack_image *img, const char *call, const char *name)
{
#ifdef WEFT_DEBUG
	stack_image_check(stack_image_from(img->sp), (char *)st->lo + st->size,
		call, name);
#else
	(void)st, (void)call, (void)name;
#endif
	stack_copy_words(img->sp, img->bytes, img->len);
	weft__free(img);
}

/* }====== */

/* {====== overflow signal handler ====== */

/* The worker's slot holding the stack this thread is running on (NULL: its
 * own stack; weft__stack_set_running), or NULL on a thread that is not a
 * worker.  initial-exec so that the signal handler's read is a plain
 * %fs-relative load (no __tls_get_addr, which is not async-signal-safe on
 * first use). */
static _Thread_local weft__stack_t **stack_running_slot
	__attribute__((tls_model("initial-exec")));

/* This thread's alternate signal stack and the one it replaced. */
static _Thread_local struct {
	void *mem;
	stack_t prev;
} stack_alt;

/* Process-wide: a signal disposition is per process.  handler_refs and the
 * writes of handler_prev_* are under handler_lock; the handler reads
 * handler_prev_* without it, which is safe because they are written before
 * sigaction installs the handler (the syscall orders them). */
static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned handler_refs;
static struct sigaction handler_prev_segv, handler_prev_bus;

static uintptr_t handler_fault_sp(void *uctx)
{
	const ucontext_t *uc = uctx;
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	return (uintptr_t)uc->uc_mcontext.sp;
#else
	(void)uc;
	return 0;
#endif
}

/* An overflow is a fault just below the running stack (the guard page, or
 * further for frames larger than a page) taken while the stack pointer is
 * at the stack's low end.  The stack-pointer test keeps a wild pointer
 * into the memory below from being blamed on the stack. */
static int handler_is_overflow(const weft__stack_t *st, const siginfo_t *si,
	void *uctx)
{
	uintptr_t lo = (uintptr_t)st->lo, addr = (uintptr_t)si->si_addr;
	if (addr >= lo || lo - addr > OVERFLOW_SLACK)
		return 0;
	uintptr_t sp = handler_fault_sp(uctx);
	if (sp == 0)
		return 1;
	return sp + OVERFLOW_SLACK >= lo && sp < lo + OVERFLOW_SLACK;
}

static size_t handler_append(char *buf, size_t len, size_t cap, const char *s)
{
	while (*s != '\0' && len + 1 < cap)
		buf[len++] = *s++;
	buf[len] = '\0';
	return len;
}

/* Frames of handler_on_fault and handler_report_and_abort, left out of
 * the overflow report's backtrace. */
#define HANDLER_FRAMES 2
/* Frames of the overflowing task the report shows (the recursion that
 * overflowed is usually one function repeated). */
#define HANDLER_BT_FRAMES 24

/* Builds the line in a local buffer, one write(2) through weft__diag_raw,
 * then the overflowing task's backtrace, then abort().  Async-signal-safe
 * but for the backtrace: glibc's backtrace(3) walks the task's stack
 * from the signal frame with libgcc's unwinder, which allocates nothing
 * once loaded (weft__stack_handler_acquire loads it), and
 * backtrace_symbols_fd writes the names the dynamic symbol table knows;
 * glibc's own segfault reporter does the same, and the process aborts
 * right after.  No libdw here: it allocates and opens files.  Not
 * inlined: its frame is one of the HANDLER_FRAMES. */
__attribute__((noinline)) static void handler_report_and_abort(
	const weft__stack_t *st)
{
	char buf[256], num[24];
	size_t len = 0, n = st->size;
	int i = (int)sizeof num - 1;
	num[i] = '\0';
	do {
		num[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0 && i > 0);

	len = handler_append(buf, len, sizeof buf,
		"weft: stack overflow in task '");
	len = handler_append(buf, len, sizeof buf - 32,
		st->owner_name != NULL ? st->owner_name : "(unnamed)");
	len = handler_append(buf, len, sizeof buf, "' (stack of ");
	len = handler_append(buf, len, sizeof buf, num + i);
	len = handler_append(buf, len, sizeof buf, " bytes)\n");
	weft__diag_raw(buf);
	weft__diag_raw("weft: backtrace of the overflowing task, innermost "
		       "first:\n");
	weft__backtrace_write_fd(STDERR_FILENO, HANDLER_FRAMES,
		HANDLER_BT_FRAMES);
	abort();
}

/* Not ours: behave as if we had never been installed. */
static void handler_chain(int sig, siginfo_t *si, void *uctx)
{
	const struct sigaction *prev = sig == SIGBUS ? &handler_prev_bus
						     : &handler_prev_segv;
	if (prev->sa_flags & SA_SIGINFO) {
		prev->sa_sigaction(sig, si, uctx);
		return;
	}
	if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
		return;
	}
	/* Default action (ignoring a fault would only re-fault forever):
	 * reinstall SIG_DFL and return.  A fault re-executes the instruction
	 * and kills the process; a signal sent by kill() must be re-raised
	 * (it is blocked until we return, then delivered). */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

__attribute__((noinline)) static void handler_on_fault(int sig, siginfo_t *si,
	void *uctx)
{
	weft__stack_t **slot = stack_running_slot;
	/* The slot's writes are this thread's own, each followed by a
	 * signal fence before the switch it precedes. */
	const weft__stack_t *st = slot != NULL ? *slot : NULL;
	if (st != NULL && handler_is_overflow(st, si, uctx))
		handler_report_and_abort(st);
	handler_chain(sig, si, uctx);
}

int weft__stack_altstack_alloc(weft__altstack_t *a)
{
	size_t size = ALTSTACK_SIZE;
#ifdef _SC_MINSIGSTKSZ
	long min = sysconf(_SC_MINSIGSTKSZ);
	if (min > 0 && (size_t)min * 4 > size)
		size = (size_t)min * 4;
#endif
	a->mem = weft__alloc(size);
	a->size = a->mem != NULL ? size : 0;
	return a->mem != NULL ? 0 : -ENOMEM;
}

void weft__stack_altstack_free(weft__altstack_t *a)
{
	weft__free(a->mem);
	a->mem = NULL;
	a->size = 0;
}

int weft__stack_thread_init(weft__stack_t **slot, const weft__altstack_t *a)
{
	WEFT_ASSERT(stack_alt.mem == NULL && stack_running_slot == NULL,
		"stack: thread_init called twice");
	*slot = NULL;
	stack_t ss = { .ss_sp = a->mem, .ss_size = a->size, .ss_flags = 0 };
	if (sigaltstack(&ss, &stack_alt.prev) != 0)
		return -errno;
	stack_alt.mem = a->mem;
	stack_running_slot = slot;
	return 0;
}

void weft__stack_thread_fini(void)
{
	stack_running_slot = NULL;
	if (stack_alt.mem == NULL)
		return;
	/* Put the previous alternate stack back only if ours is still the
	 * installed one; someone may have replaced it since. */
	stack_t cur;
	if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == stack_alt.mem) {
		stack_t prev = stack_alt.prev;
		prev.ss_flags &= SS_DISABLE; /* drop SS_ONSTACK etc. */
		sigaltstack(&prev, NULL);
	}
	stack_alt.mem = NULL;
}

int weft__stack_handler_acquire(void)
{
	int rc = 0;
	pthread_mutex_lock(&handler_lock);
	if (handler_refs == 0) {
		/* The handler's backtrace must not be the first one. */
		weft__backtrace_prepare();
		struct sigaction sa = { .sa_sigaction = handler_on_fault };
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		if (sigaction(SIGSEGV, &sa, &handler_prev_segv) != 0) {
			rc = -EINVAL;
		} else if (sigaction(SIGBUS, &sa, &handler_prev_bus) != 0) {
			sigaction(SIGSEGV, &handler_prev_segv, NULL);
			rc = -EINVAL;
		}
	}
	if (rc == 0)
		handler_refs++;
	pthread_mutex_unlock(&handler_lock);
	return rc;
}

static void handler_restore(int sig, const struct sigaction *prev)
{
	struct sigaction cur;
	if (sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
		cur.sa_sigaction == handler_on_fault)
		sigaction(sig, prev, NULL);
}

void weft__stack_handler_release(void)
{
	pthread_mutex_lock(&handler_lock);
	WEFT_ASSERT(handler_refs > 0, "stack: handler released too often");
	if (--handler_refs == 0) {
		handler_restore(SIGSEGV, &handler_prev_segv);
		handler_restore(SIGBUS, &handler_prev_bus);
	}
	pthread_mutex_unlock(&handler_lock);
}
/* }====== */
