/* Files through libuv's thread pool (include/weft/fs.h).
 *
 * Problem: a file system call can block for as long as the disk (or the
 * NFS server, or the FIFO's writer) takes, and a worker that blocks stalls
 * every task queued on it.  Linux has no readiness notification for
 * regular files, so the calls must run on other threads.
 *
 * Approach: each call is an I/O operation (ioop.h): a struct fs_op on the
 * calling fiber's stack holds a uv_fs_t; `start`, on the I/O thread,
 * submits the uv_fs_* request with a callback, so libuv runs the system
 * call on its pool and calls fs_done on the I/O thread, which records the
 * result and completes the operation.  The pool belongs to libuv (global
 * to the process, UV_THREADPOOL_SIZE threads); weft adds no thread.
 *
 * Cancellation: `cancel` calls uv_cancel, which withdraws a request only
 * while it is still queued for a pool thread; the callback then runs with
 * UV_ECANCELED and the call returns -ECANCELED having done nothing.  A
 * request already running (uv_cancel says UV_EBUSY) cannot be stopped;
 * the ioop protocol keeps the fiber parked until its callback and returns
 * the real result.  So "-ECANCELED => nothing happened" holds for every
 * single-request call.  weft_fs_write and weft_fs_read_file make several
 * requests and say in fs.h what a cancellation between them leaves.
 * weft_fs_close never fails with -ECANCELED: a cancelled task's cleanup
 * must still release its descriptor, so a close that finds the task
 * cancelled closes directly (close(2) does not block for a local file).
 *
 * Invariants
 *   1. The uv_fs_t lives in the fiber's frame; the fiber stays parked from
 *      `start` until weft__ioop_complete, which is fs_done's last access
 *      (after uv_fs_req_cleanup, which frees libuv's copy of the paths).
 *   2. A request that `start` fails to submit is cleaned up and completed
 *      at once: libuv never calls the callback of a failed submission.
 *   3. Results travel in the fs_op (value, st), written by the I/O thread
 *      before the completion's release and read by the fiber after its
 *      acquire of DONE (ioop.c).
 *
 * Rejected: running the calls synchronously on the I/O thread (uv_fs_*
 * without a callback) would stall every socket behind one slow disk; a
 * pool of weft's own would duplicate libuv's and fight it for cores. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/cancel.h"
#include "core/task.h"
#include "io/io.h"
#include "io/ioop.h"
#include "weft/fs.h"

/* Largest single read or write request (uv_buf_t's length is an unsigned
 * int in uv_buf_init; Linux moves at most about 2 GiB per call anyway). */
#define FS_CHUNK ((size_t)1 << 30)

enum fs_kind {
	FS_OPEN,
	FS_CLOSE,
	FS_READ,
	FS_WRITE,
	FS_FSYNC,
	FS_STAT,
	FS_LSTAT,
	FS_FSTAT,
	FS_UNLINK,
	FS_RENAME,
	FS_MKDIR,
	FS_RMDIR
};

static const char *const fs_what[] = {
	[FS_OPEN] = "fs open",
	[FS_CLOSE] = "fs close",
	[FS_READ] = "fs read",
	[FS_WRITE] = "fs write",
	[FS_FSYNC] = "fs fsync",
	[FS_STAT] = "fs stat",
	[FS_LSTAT] = "fs lstat",
	[FS_FSTAT] = "fs fstat",
	[FS_UNLINK] = "fs unlink",
	[FS_RENAME] = "fs rename",
	[FS_MKDIR] = "fs mkdir",
	[FS_RMDIR] = "fs rmdir",
};

/* One file request, on the calling fiber's stack. */
struct fs_op {
	struct weft__ioop op;
	uv_fs_t req; /* I/O thread (and libuv's pool) */
	enum fs_kind kind;
	/* Arguments: written by the fiber before the post, read by `start`. */
	const char *path;
	const char *path2;
	int flags;
	int mode;
	int fd;
	uv_buf_t buf;
	int64_t offset;
	/* Results: written by fs_done before the completion. */
	ssize_t value;	   /* req->result when >= 0 */
	weft_fs_stat_t st; /* the stat kinds */
};

/* {======================================================= I/O thread */

static int64_t fs_ns(uv_timespec_t t)
{
	return (int64_t)t.tv_sec * 1000000000 + (int64_t)t.tv_nsec;
}

static void fs_stat_copy(weft_fs_stat_t *out, const uv_stat_t *s)
{
	memset(out, 0, sizeof *out);
	out->size = s->st_size;
	out->mode = (uint32_t)s->st_mode;
	if (S_ISREG(s->st_mode))
		out->type = WEFT_FS_FILE;
	else if (S_ISDIR(s->st_mode))
		out->type = WEFT_FS_DIR;
	else if (S_ISLNK(s->st_mode))
		out->type = WEFT_FS_LINK;
	else
		out->type = WEFT_FS_OTHER;
	out->nlink = s->st_nlink;
	out->ino = s->st_ino;
	out->dev = s->st_dev;
	out->uid = (uint32_t)s->st_uid;
	out->gid = (uint32_t)s->st_gid;
	out->atime_ns = fs_ns(s->st_atim);
	out->mtime_ns = fs_ns(s->st_mtim);
	out->ctime_ns = fs_ns(s->st_ctim);
}

/* libuv's callback, on the I/O thread once the pool ran the request (or
 * uv_cancel withdrew it: result UV_ECANCELED). */
static void fs_done(uv_fs_t *req)
{
	struct fs_op *f = WEFT__CONTAINER_OF(req, struct fs_op, req);
	int rc = 0;
	if (req->result < 0) {
		rc = weft__io_uverr((int)req->result);
	} else {
		f->value = req->result;
		if (f->kind == FS_STAT || f->kind == FS_LSTAT ||
			f->kind == FS_FSTAT)
			fs_stat_copy(&f->st, &req->statbuf);
	}
	uv_fs_req_cleanup(req);
	/* The last access to f (invariant 1). */
	weft__ioop_complete(&f->op, rc);
}

static void fs_start(weft__io_t *io, struct weft__ioop *op)
{
	struct fs_op *f = WEFT__CONTAINER_OF(op, struct fs_op, op);
	uv_loop_t *loop = &io->loop;
	uv_fs_t *r = &f->req;
	int rc;
	switch (f->kind) {
	case FS_OPEN:
		rc = uv_fs_open(loop, r, f->path, f->flags, f->mode, fs_done);
		break;
	case FS_CLOSE: rc = uv_fs_close(loop, r, f->fd, fs_done); break;
	case FS_READ:
		rc = uv_fs_read(loop, r, f->fd, &f->buf, 1, f->offset, fs_done);
		break;
	case FS_WRITE:
		rc = uv_fs_write(loop, r, f->fd, &f->buf, 1, f->offset,
			fs_done);
		break;
	case FS_FSYNC: rc = uv_fs_fsync(loop, r, f->fd, fs_done); break;
	case FS_STAT: rc = uv_fs_stat(loop, r, f->path, fs_done); break;
	case FS_LSTAT: rc = uv_fs_lstat(loop, r, f->path, fs_done); break;
	case FS_FSTAT: rc = uv_fs_fstat(loop, r, f->fd, fs_done); break;
	case FS_UNLINK: rc = uv_fs_unlink(loop, r, f->path, fs_done); break;
	case FS_RENAME:
		rc = uv_fs_rename(loop, r, f->path, f->path2, fs_done);
		break;
	case FS_MKDIR:
		rc = uv_fs_mkdir(loop, r, f->path, f->mode, fs_done);
		break;
	case FS_RMDIR: rc = uv_fs_rmdir(loop, r, f->path, fs_done); break;
	default: rc = UV_EINVAL; break;
	}
	if (rc < 0) {
		/* Invariant 2: no callback will come. */
		uv_fs_req_cleanup(r);
		weft__ioop_complete(op, weft__io_uverr(rc));
	}
}

/* Withdraws the request if no pool thread has taken it yet; otherwise
 * (UV_EBUSY) its callback brings the real result. */
static void fs_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct fs_op *f = WEFT__CONTAINER_OF(op, struct fs_op, op);
	(void)uv_cancel((uv_req_t *)&f->req);
}

/* }======================================================= */

/* {======================================================= fiber */

/* Runs f (kind and arguments set); the completion's code, with the
 * value in f->value.  Checkpoint: yes. */
static WEFT_FIBER_FN int fs_run(struct fs_op *f, bool cancellable)
{
	f->op.start = fs_start;
	f->op.cancel = cancellable ? fs_cancel : NULL;
	f->op.what = fs_what[f->kind];
	f->value = 0;
	return weft__ioop_run(&f->op);
}

int weft_fs_open(const char *path, int flags, int mode, int *fd)
{
	if (path == NULL || fd == NULL)
		return -EINVAL;
	struct fs_op f = { .kind = FS_OPEN,
		.path = path,
		.flags = flags,
		.mode = mode };
	int rc = fs_run(&f, true);
	if (rc < 0)
		return rc;
	*fd = (int)f.value;
	return 0;
}

/* Whether the calling task is cancelled, without counting it as observed
 * (the caller does not report it). */
static bool fs_cancelled(struct weft_task *self)
{
	weft__task_link_root(self);
	/* relaxed: our own cur_scope, written only by this task. */
	return weft__scope_is_cancelled(
		atomic_load_explicit(&self->cur_scope, memory_order_relaxed));
}

int weft_fs_close(int fd)
{
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	if (fd < 0)
		return -EBADF;
	int rc = -ECANCELED;
	if (!fs_cancelled(self)) {
		/* Uncancellable once submitted: -ECANCELED only if a
		 * cancellation arrived before the submission. */
		struct fs_op f = { .kind = FS_CLOSE, .fd = fd };
		rc = fs_run(&f, false);
	}
	if (rc == -ECANCELED) {
		/* Linux releases the descriptor even when close fails with
		 * EINTR, so that is a success here. */
		rc = close(fd) == 0 || errno == EINTR ? 0 : -errno;
	}
	return rc;
}

ssize_t weft_fs_read(int fd, void *buf, size_t len, int64_t offset)
{
	if ((buf == NULL && len > 0) || offset < -1)
		return -EINVAL;
	if (len > FS_CHUNK)
		len = FS_CHUNK;
	struct fs_op f = { .kind = FS_READ,
		.fd = fd,
		.buf = uv_buf_init(buf, (unsigned)len),
		.offset = offset };
	int rc = fs_run(&f, true);
	return rc < 0 ? rc : f.value;
}

ssize_t weft_fs_write(int fd, const void *buf, size_t len, int64_t offset)
{
	if ((buf == NULL && len > 0) || offset < -1 || len > SSIZE_MAX)
		return -EINVAL;
	const char *p = buf;
	size_t done = 0;
	/* At least one request, so that len 0 still checks fd and is a
	 * checkpoint. */
	do {
		size_t chunk = len - done;
		if (chunk > FS_CHUNK)
			chunk = FS_CHUNK;
		struct fs_op f = { .kind = FS_WRITE,
			.fd = fd,
			.buf = uv_buf_init((char *)(uintptr_t)(p + done),
				(unsigned)chunk),
			.offset = offset < 0 ? -1 : offset + (int64_t)done };
		int rc = fs_run(&f, true);
		if (rc < 0)
			return rc;
		if (f.value == 0 && chunk > 0)
			return -EIO; /* no progress: do not spin */
		done += (size_t)f.value;
	} while (done < len);
	return (ssize_t)len;
}

int weft_fs_fsync(int fd)
{
	struct fs_op f = { .kind = FS_FSYNC, .fd = fd };
	return fs_run(&f, true);
}

static WEFT_FIBER_FN int fs_stat_common(enum fs_kind kind, const char *path,
	int fd, weft_fs_stat_t *out)
{
	struct fs_op f = { .kind = kind, .path = path, .fd = fd };
	int rc = fs_run(&f, true);
	if (rc == 0)
		*out = f.st;
	return rc;
}

int weft_fs_stat(const char *path, weft_fs_stat_t *out)
{
	if (path == NULL || out == NULL)
		return -EINVAL;
	return fs_stat_common(FS_STAT, path, -1, out);
}

int weft_fs_lstat(const char *path, weft_fs_stat_t *out)
{
	if (path == NULL || out == NULL)
		return -EINVAL;
	return fs_stat_common(FS_LSTAT, path, -1, out);
}

int weft_fs_fstat(int fd, weft_fs_stat_t *out)
{
	if (out == NULL)
		return -EINVAL;
	return fs_stat_common(FS_FSTAT, NULL, fd, out);
}

static WEFT_FIBER_FN int fs_path_op(enum fs_kind kind, const char *path,
	const char *path2, int mode)
{
	struct fs_op f = { .kind = kind,
		.path = path,
		.path2 = path2,
		.mode = mode };
	return fs_run(&f, true);
}

int weft_fs_unlink(const char *path)
{
	if (path == NULL)
		return -EINVAL;
	return fs_path_op(FS_UNLINK, path, NULL, 0);
}

int weft_fs_rename(const char *from, const char *to)
{
	if (from == NULL || to == NULL)
		return -EINVAL;
	return fs_path_op(FS_RENAME, from, to, 0);
}

int weft_fs_mkdir(const char *path, int mode)
{
	if (path == NULL)
		return -EINVAL;
	return fs_path_op(FS_MKDIR, path, NULL, mode);
}

int weft_fs_rmdir(const char *path)
{
	if (path == NULL)
		return -EINVAL;
	return fs_path_op(FS_RMDIR, path, NULL, 0);
}

/* }======================================================= */

/* {======================================================= whole files */

/* Replaces *buf (holding `used` bytes) with one of cap + 1 bytes. */
static int fs_grow(char **buf, size_t used, size_t cap)
{
	char *n = weft__alloc(cap + 1);
	if (n == NULL)
		return -ENOMEM;
	if (used > 0)
		memcpy(n, *buf, used);
	weft__free(*buf);
	*buf = n;
	return 0;
}

/* Reads fd to its end into a new buffer; the size is a hint (0 when stat
 * cannot tell).  The buffer has room for one byte more than expected, so
 * that the read which finds the end also tells a file that grew. */
static WEFT_FIBER_FN int fs_slurp(int fd, size_t hint, size_t max, char **out,
	size_t *outlen)
{
	/* The most data the buffer ever needs: max + 1 bytes, the extra one
	 * proving the file is too big (bounded so cap + 1 cannot wrap). */
	size_t limit = max < SIZE_MAX / 2 ? max + 1 : SIZE_MAX / 2;
	size_t cap = hint < limit ? hint + 1 : limit;
	if (hint == 0) /* unknown (/proc files say 0): start small */
		cap = limit < 4096 ? limit : 4096;
	char *buf = NULL;
	int rc = fs_grow(&buf, 0, cap);
	size_t got = 0;
	while (rc == 0) {
		if (got == cap) {
			if (cap == limit) {
				rc = limit > max ? -EFBIG : -ENOMEM;
				break;
			}
			size_t ncap = cap < limit / 2 ? cap * 2 : limit;
			rc = fs_grow(&buf, got, ncap);
			if (rc < 0)
				break;
			cap = ncap;
		}
		ssize_t n = weft_fs_read(fd, buf + got, cap - got, -1);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > max)
			rc = -EFBIG;
	}
	if (rc < 0) {
		weft__free(buf);
		return rc;
	}
	buf[got] = '\0';
	*out = buf;
	*outlen = got;
	return 0;
}

int weft_fs_read_file(const char *path, void **buf, size_t *len, size_t max)
{
	if (path == NULL || buf == NULL || len == NULL)
		return -EINVAL;
	int fd;
	int rc = weft_fs_open(path, O_RDONLY, 0, &fd);
	if (rc < 0)
		return rc;
	weft_fs_stat_t st;
	rc = weft_fs_fstat(fd, &st);
	char *data = NULL;
	size_t got = 0;
	if (rc == 0 && st.type == WEFT_FS_FILE && st.size > max)
		rc = -EFBIG;
	if (rc == 0) {
		size_t hint = st.type == WEFT_FS_FILE && st.size < SIZE_MAX
			? (size_t)st.size
			: 0;
		rc = fs_slurp(fd, hint, max, &data, &got);
	}
	/* Closes even when cancelled (weft_fs_close's contract). */
	int crc = weft_fs_close(fd);
	if (rc == 0 && crc < 0)
		rc = crc;
	if (rc < 0) {
		weft__free(data);
		return rc;
	}
	*buf = data;
	*len = got;
	return 0;
}

void weft_fs_free(void *buf)
{
	weft__free(buf);
}

/* }======================================================= */
