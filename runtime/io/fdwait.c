/* Foreign descriptors (include/weft/fd.h): waits on descriptors that
 * another library owns.
 *
 * A registered descriptor is a socket record (io.h, sock.h) marked
 * `foreign`.  It has an edge-triggered epoll set of its own kind, apart
 * from weft's sockets' (which workers poll), and it stays on the I/O
 * thread: its waits are I/O operations (weft__sock_wait_set, sock.c,
 * "Foreign descriptors"), which may span several descriptors, with two
 * differences from what weft's own sockets do.  The waits are
 * level-triggered: their start, on the I/O thread, asks poll(2) whether
 * each descriptor is ready now instead of trusting a kept edge, because
 * a foreign owner need not read until EAGAIN (hiredis reads 16 KiB at a
 * time): with edges only, data it left in the kernel would never wake
 * it.  An edge after that poll is dispatched after the start returned,
 * by when the entry is in its slot, so none is lost.  And nothing here
 * makes a system call on the descriptor but poll and epoll_ctl, both on
 * the I/O thread; so unregistering is one shielded I/O operation
 * (weft__sock_forget) after which the I/O thread never touches the
 * descriptor again, and its owner may close it.  The gate and the
 * close of sock.c are not used.
 *
 * References: the registration's (dropped by weft_fd_unregister after
 * the forget), one per call in progress (the handle check), and the
 * unregistering call's own.  The record leaves the epoll set (the
 * forget) before the registration's reference goes, and both the
 * forget and the dispatch run on the I/O thread, so an event never names
 * a freed record. */
#include <errno.h>
#include <fcntl.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/task.h"
#include "io/io.h"
#include "io/sock.h"
#include "runtime.h"
#include "weft/fd.h"

struct weft_fd {
	struct weft__sock sk; /* first: the handle's record */
};

static void fd_free(struct weft__sock *sk)
{
	weft__io_rec_put(sk->rt, WEFT__IO_REC_FD, &sk->rec);
}

int weft_fd_register(int fd, weft_fd_t **out)
{
	if (out == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	/* Its one reference is the registration's. */
	struct weft_fd *f = weft__io_rec_get(self->rt, WEFT__IO_REC_FD,
		sizeof *f);
	if (f == NULL)
		return -ENOMEM;
	weft__sock_init(&f->sk, self->rt, fd, fd_free);
	f->sk.foreign = true;
	*out = weft__io_rec_handle(&f->sk.rec);
	return 0;
}

/* Entries one wait_any keeps on the fiber's stack (two per descriptor
 * when both directions are asked); more are allocated. */
#define FD_STACK_ENTRIES 8

int weft_fd_wait_any(weft_fd_t *const *fds, const int *events, int *revents,
	size_t n)
{
	if (fds == NULL || events == NULL || revents == NULL || n == 0 ||
		n > WEFT_FD_WAIT_MAX)
		return -EINVAL;
	size_t nent = 0;
	for (size_t i = 0; i < n; i++) {
		revents[i] = 0;
		int ev = events[i];
		if (fds[i] == NULL || ev == 0 ||
			(ev & ~(WEFT_FD_READABLE | WEFT_FD_WRITABLE)))
			return -EINVAL;
		nent += (ev & WEFT_FD_READABLE ? 1 : 0) +
			(ev & WEFT_FD_WRITABLE ? 1 : 0);
	}
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	struct weft__sock_waiter stack[FD_STACK_ENTRIES];
	struct weft__sock_waiter *ent = stack;
	if (nent > FD_STACK_ENTRIES) {
		ent = weft__calloc(nent, sizeof *ent);
		if (ent == NULL)
			return -ENOMEM;
	}
	/* A reference per descriptor for the call (the handle check). */
	size_t taken = 0;
	int rc = 0;
	for (; taken < n; taken++) {
		if (weft__io_rec_check(fds[taken], "weft_fd_wait",
			    "descriptor") == NULL) {
			rc = WEFT_EMISUSE;
			break;
		}
	}
	if (rc == 0) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			struct weft_fd *f = weft__handle_addr(fds[i]);
			if (events[i] & WEFT_FD_READABLE)
				ent[k++] = (struct weft__sock_waiter){
					.s = &f->sk,
					.event = UV_READABLE
				};
			if (events[i] & WEFT_FD_WRITABLE)
				ent[k++] = (struct weft__sock_waiter){
					.s = &f->sk,
					.event = UV_WRITABLE
				};
		}
		struct weft__sock_wait wt = { .entries = ent,
			.n = nent,
			.level = true };
		rc = weft__sock_wait_set(&wt, "fd");
		if (rc == 0 || rc == WEFT_ECLOSED) {
			/* Entries are in fds' order, read before write. */
			k = 0;
			int ready = 0;
			for (size_t i = 0; i < n; i++) {
				int got = 0;
				if (events[i] & WEFT_FD_READABLE)
					got |= ent[k++].fired ? WEFT_FD_READABLE
							      : 0;
				if (events[i] & WEFT_FD_WRITABLE)
					got |= ent[k++].fired ? WEFT_FD_WRITABLE
							      : 0;
				if (rc == WEFT_ECLOSED && got)
					got = events[i];
				revents[i] = got;
				ready += got != 0;
			}
			if (rc == 0)
				rc = ready;
		}
	}
	for (size_t i = 0; i < taken; i++) {
		struct weft_fd *f = weft__handle_addr(fds[i]);
		weft__sock_unref(&f->sk);
	}
	if (ent != stack)
		weft__free(ent);
	return rc;
}

int weft_fd_wait(weft_fd_t *f, int events)
{
	if (f == NULL)
		return -EINVAL;
	int revents;
	int rc = weft_fd_wait_any(&f, &events, &revents, 1);
	return rc < 0 ? rc : revents;
}

int weft_fd_unregister(weft_fd_t *h)
{
	if (h == NULL)
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	/* One CAS ends the handle's life and takes the closer's reference
	 * (io.h): a second unregister, or any call after this one, finds
	 * the generation changed and is reported. */
	if (!weft__io_rec_close(h)) {
		weft__io_rec_misuse(h, "weft_fd_unregister", "descriptor");
		return WEFT_EMISUSE;
	}
	struct weft_fd *f = weft__handle_addr(h);
	int rc = weft__sock_forget(&f->sk);
	WEFT_ASSERT(rc == 0, "weft_fd_unregister: forget failed");
	weft__sock_unref(&f->sk); /* the registration's */
	weft__sock_unref(&f->sk); /* ours */
	return 0;
}
