/* Files: open, read, write, stat, rename, unlink... through libuv's
 * thread pool, so a task that touches a slow disk parks its fiber instead
 * of blocking its worker.
 *
 * Every call here runs its system call on one of libuv's pool threads
 * (UV_THREADPOOL_SIZE, default 4, shared by the whole process: DNS
 * lookups use it too) and parks the calling task until the I/O thread
 * reports the result.  File descriptors are plain POSIX descriptors
 * (opened with O_CLOEXEC), so they can be mixed with other code.
 *
 * Rules shared by every call below (unless its block says otherwise):
 *   - Threads: weft fiber; a plain thread gets WEFT_ENOTFIBER and
 *     nothing happens.
 *   - Arguments are checked first: -EINVAL for a NULL pointer where one
 *     is required, before any other check.
 *   - It is a checkpoint: a task already cancelled on entry gets
 *     -ECANCELED and nothing was submitted.
 *   - Cancellation while parked (including the deadline of an enclosing
 *     scope): a request still queued for a pool thread is withdrawn and
 *     the call returns -ECANCELED: nothing happened.  A request a pool
 *     thread already runs cannot be stopped (POSIX has no way to abort a
 *     read or an open in progress): the task waits for it and gets its
 *     real result (the cancellation then shows at the next checkpoint).
 *     So -ECANCELED always means "nothing happened", except where a call
 *     says otherwise (weft_fs_write and weft_fs_read_file, which make
 *     several requests).
 *   - Errors are negative errno values from the system call (-ENOENT,
 *     -EACCES, -EEXIST, -EISDIR, -ENOTDIR, -EBADF, -ENOSPC, -EMFILE...).
 *   - Paths are read during the call only (libuv copies them); the caller
 *     keeps ownership. */
#ifndef WEFT_FS_H
#define WEFT_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weft/error.h"
#include "weft/export.h"

WEFT_BEGIN_DECLS

/* The kind of a file, from its mode. */
typedef enum weft_fs_type {
	WEFT_FS_OTHER = 0, /* FIFO, socket, device */
	WEFT_FS_FILE = 1,  /* regular file */
	WEFT_FS_DIR = 2,   /* directory */
	WEFT_FS_LINK = 3   /* symbolic link (weft_fs_lstat only) */
} weft_fs_type_t;

/* What stat reports, without any libuv type.  Times are nanoseconds
 * since the Unix epoch (wall clock, not weft_now's clock). */
typedef struct weft_fs_statbuf {
	uint64_t size;	     /* bytes */
	uint32_t mode;	     /* st_mode: type and permission bits */
	weft_fs_type_t type; /* decoded from mode */
	uint64_t nlink;	     /* hard links */
	uint64_t ino;
	uint64_t dev;
	uint32_t uid;
	uint32_t gid;
	int64_t atime_ns;
	int64_t mtime_ns;
	int64_t ctime_ns;
} weft_fs_stat_t;

/* {======================================================= descriptors */

/* What it does: opens path with open(2) flags (O_RDONLY, O_WRONLY,
 * O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_EXCL...; O_CLOEXEC is always
 * added) and `mode` for a created file, and stores the descriptor in
 * *fd.
 * Ownership: the caller owns *fd; close it with weft_fs_close.
 * Errors: -EINVAL (NULL path or fd), -ENOENT, -EACCES, -EEXIST, -EISDIR,
 * -EMFILE, -ENFILE, other -errno, -ECANCELED (no file was opened or
 * created), WEFT_ENOTFIBER.  On error *fd is unchanged.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fs_open(const char *path, int flags, int mode, int *fd);

/* What it does: closes fd.  The descriptor is released in every case,
 * even when the calling task is cancelled (as close(2) always releases
 * it): a cancelled task's cleanup must not leak descriptors.  If the
 * task is already cancelled on entry, fd is closed directly on the
 * worker and 0 is returned; the cancellation shows at the next
 * checkpoint.
 * Ownership: fd is invalid after the call, whatever it returns.
 * Errors: -EBADF (fd not open, or negative), -EIO, WEFT_ENOTFIBER (fd not
 * closed).  Never -ECANCELED.
 * Checkpoint: yes (it parks), but it does not fail on cancellation.
 * Threads: weft fiber. */
WEFT_EXTERN int weft_fs_close(int fd);

/* What it does: reads up to len bytes from fd into buf at `offset`
 * (pread), or at the file's current position when offset is -1 (read,
 * moving the position).  One read: it may return fewer bytes than asked
 * (at end of file, or from a pipe).  At most 1 GiB is read per call.
 * Returns: the number of bytes read (0 at end of file or for len 0), or a
 * negative code.
 * Errors: -EINVAL (NULL buf with len > 0, offset < -1), -EBADF, -EISDIR,
 * -ESPIPE (an offset on a pipe), other -errno, -ECANCELED (nothing was
 * read; the position did not move), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN ssize_t weft_fs_read(int fd, void *buf, size_t len, int64_t offset);

/* What it does: writes all len bytes of buf to fd at `offset` (pwrite),
 * or at the current position when offset is -1 (with O_APPEND: at the
 * end), repeating the write after a short one until everything is
 * written or an error occurs.
 * Returns: len, or a negative code.
 * Errors: -EINVAL (NULL buf with len > 0, offset < -1, len above
 * SSIZE_MAX), -EBADF, -ENOSPC, -EFBIG, -EPIPE, other -errno, -ECANCELED,
 * WEFT_ENOTFIBER.  After a short write, a later error or cancellation is
 * returned even though a prefix of buf was written: -ECANCELED means
 * nothing was written only when it comes from the first write (always
 * so for a regular file unless the disk filled up).
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN ssize_t weft_fs_write(int fd, const void *buf, size_t len,
	int64_t offset);

/* What it does: flushes fd's data and metadata to the device (fsync).
 * Errors: -EBADF, -EIO, -EINVAL (fd does not support it), -ECANCELED,
 * WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fs_fsync(int fd);

/* }======================================================= */

/* {======================================================= metadata */

/* What it does: the metadata of path (following symbolic links), of the
 * link itself (weft_fs_lstat), or of an open descriptor (weft_fs_fstat),
 * copied into *out.
 * Ownership: *out is the caller's; written only on success.
 * Errors: -EINVAL (NULL path or out), -ENOENT, -ENOTDIR, -EACCES,
 * -ELOOP, -EBADF (fstat), -ECANCELED, WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fs_stat(const char *path, weft_fs_stat_t *out);
WEFT_EXTERN int weft_fs_lstat(const char *path, weft_fs_stat_t *out);
WEFT_EXTERN int weft_fs_fstat(int fd, weft_fs_stat_t *out);

/* }======================================================= */

/* {======================================================= names */

/* What it does: removes the name path (unlink(2); not a directory).
 * Errors: -EINVAL (NULL), -ENOENT, -EISDIR, -EACCES, -EPERM, -ECANCELED
 * (nothing was removed), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fs_unlink(const char *path);

/* What it does: renames from to `to` (rename(2): replaces `to`
 * atomically if it exists).
 * Errors: -EINVAL (NULL), -ENOENT, -EXDEV, -EISDIR, -ENOTEMPTY, -EACCES,
 * -ECANCELED (nothing was renamed), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fs_rename(const char *from, const char *to);

/* What it does: creates the directory path with `mode` (mkdir(2), before
 * the umask), or removes the empty directory path (rmdir(2)).
 * Errors: -EINVAL (NULL), -EEXIST, -ENOENT, -ENOTDIR, -ENOTEMPTY,
 * -EACCES, -ECANCELED (nothing was created or removed), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fs_mkdir(const char *path, int mode);
WEFT_EXTERN int weft_fs_rmdir(const char *path);

/* }======================================================= */

/* {======================================================= whole files */

/* What it does: reads the whole file at path (opened read-only, read to
 * its end, closed) into a new buffer.  The buffer holds *len bytes plus
 * a terminating NUL byte (not counted in *len), so a text file can be
 * used as a string; an empty file gives *len 0 and a buffer holding "".
 * Files whose size stat cannot tell (/proc, pipes) are read to their end
 * too.
 * Ownership: on success the caller owns *buf and frees it with
 * weft_fs_free (not free(3): weft's allocator counts it); on error *buf
 * and *len are unchanged and nothing is left allocated or open.
 * Errors: -EINVAL (NULL path, buf or len), -EFBIG (the file holds more
 * than max bytes), -ENOMEM, the errors of open and read (-ENOENT,
 * -EACCES, -EISDIR...), -ECANCELED (nothing is returned; the file was
 * opened and perhaps partly read, then closed), WEFT_ENOTFIBER.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_fs_read_file(const char *path, void **buf, size_t *len,
	size_t max);

/* What it does: frees a buffer returned by weft_fs_read_file; NULL is
 * ignored.
 * Ownership: buf is invalid afterwards.
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_fs_free(void *buf);

/* }======================================================= */

WEFT_END_DECLS

#endif
