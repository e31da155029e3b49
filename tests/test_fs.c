/* Tests for files through libuv's pool (include/weft/fs.h, runtime/fs.c).
 *
 * Every test works in a fresh directory made with mkdtemp on the main
 * thread and removed (with everything in it) after the run, so a failing
 * check leaves nothing behind.  Concurrent tests run at 1, 2 and 4
 * workers, each run leak-checked (weft_fs_read_file's buffers included).
 *
 * The cancellation of a queued request needs libuv's pool (4 threads,
 * forced in main) to be busy: four opens of FIFOs that nobody writes
 * block four pool threads in open(2) until the test opens the FIFOs
 * itself; a fifth request then stays queued, and its cancellation must
 * withdraw it (-ECANCELED, and the file it would have created does not
 * exist).  The test waits until the four pool threads are really blocked
 * by reading /proc/self/task/<tid>/syscall (a thread blocked in openat
 * shows its syscall number), so no timing is assumed. */
#define _GNU_SOURCE 1 /* nftw, mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <weft.h>
#include "weft/fs.h"

#include "support.h"

/* {======================================================= helpers */

struct fsdir {
	char dir[64];
};

static void fsdir_make(struct fsdir *d)
{
	snprintf(d->dir, sizeof d->dir, "/tmp/weft-test-fs-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
}

static int rm_one(const char *path, const struct stat *st, int flag,
	struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void fsdir_remove(struct fsdir *d)
{
	nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	struct stat st;
	assert_int_equal(stat(d->dir, &st), -1);
}

/* dir/name into buf (PATH_MAX). */
static const char *path_in(char *buf, const struct fsdir *d, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", d->dir, name);
	return buf;
}

/* Runs fn(d) at `workers` workers in a fresh directory. */
static void run_in_dir(unsigned workers, weft_fn fn)
{
	struct fsdir d;
	fsdir_make(&d);
	int rc = weft_test_run(workers, fn, &d);
	fsdir_remove(&d);
	assert_int_equal(rc, 0);
}

/* Writes a whole file (through weft). */
static int put_file(const char *path, const void *data, size_t len)
{
	int fd;
	int rc = weft_fs_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, &fd);
	if (rc < 0)
		return rc;
	ssize_t n = weft_fs_write(fd, data, len, 0);
	int crc = weft_fs_close(fd);
	if (n < 0)
		return (int)n;
	return crc < 0 ? crc : (n == (ssize_t)len ? 0 : -EIO);
}

/* }======================================================= */

/* {======================================================= tests */

static int offsets_root(void *arg)
{
	struct fsdir *d = arg;
	char p[PATH_MAX];
	int fd = -1;
	CHECK_EQ(weft_fs_open(path_in(p, d, "f"), O_RDWR | O_CREAT | O_TRUNC,
			 0600, &fd),
		0);
	CHECK(fd >= 0);
	CHECK_EQ(weft_fs_write(fd, "hello world", 11, 0), 11);
	CHECK_EQ(weft_fs_write(fd, "XY", 2, 6), 2);
	char buf[32] = { 0 };
	CHECK_EQ(weft_fs_read(fd, buf, 2, 6), 2);
	CHECK(memcmp(buf, "XY", 2) == 0);
	/* Positional calls leave the position at 0: -1 reads from there. */
	CHECK_EQ(weft_fs_read(fd, buf, sizeof buf, -1), 11);
	CHECK(memcmp(buf, "hello XYrld", 11) == 0);
	/* The position is now 11 (end): -1 appends. */
	CHECK_EQ(weft_fs_write(fd, "!", 1, -1), 1);
	CHECK_EQ(weft_fs_read(fd, buf, sizeof buf, -1), 0);  /* at EOF */
	CHECK_EQ(weft_fs_read(fd, buf, sizeof buf, 100), 0); /* past EOF */
	memset(buf, 0, sizeof buf);
	CHECK_EQ(weft_fs_read(fd, buf, sizeof buf, 0), 12);
	CHECK(strcmp(buf, "hello XYrld!") == 0);
	CHECK_EQ(weft_fs_read(fd, buf, 0, 0), 0);
	CHECK_EQ(weft_fs_write(fd, NULL, 0, 0), 0);
	CHECK_EQ(weft_fs_fsync(fd), 0);
	weft_fs_stat_t st;
	CHECK_EQ(weft_fs_fstat(fd, &st), 0);
	CHECK_EQ(st.size, 12);
	CHECK_EQ(st.type, WEFT_FS_FILE);
	/* A hole: writing far out extends the file. */
	CHECK_EQ(weft_fs_write(fd, "Z", 1, 4096), 1);
	CHECK_EQ(weft_fs_fstat(fd, &st), 0);
	CHECK_EQ(st.size, 4097);
	CHECK_EQ(weft_fs_read(fd, buf, 1, 4000), 1);
	CHECK_EQ(buf[0], 0);
	CHECK_EQ(weft_fs_close(fd), 0);
	/* The descriptor really is closed. */
	CHECK_EQ(fcntl(fd, F_GETFD), -1);
	CHECK_EQ(weft_fs_read(fd, buf, 1, 0), -EBADF);
	CHECK_EQ(weft_fs_close(-1), -EBADF);
	return 0;
}

/* Positional and current-position reads and writes see each other. */
static void test_fs__write_then_read_back_at_offsets(void **state)
{
	run_in_dir(WEFT_TEST_WORKERS(state), offsets_root);
}

static int read_file_root(void *arg)
{
	struct fsdir *d = arg;
	char p[PATH_MAX];
	void *buf = NULL;
	size_t len = 99;
	CHECK_EQ(put_file(path_in(p, d, "small"), "abc\n", 4), 0);
	CHECK_EQ(weft_fs_read_file(p, &buf, &len, 4), 0);
	CHECK_EQ(len, 4);
	CHECK(buf != NULL && strcmp(buf, "abc\n") == 0);
	weft_fs_free(buf);

	/* One byte over max: -EFBIG, outputs untouched. */
	buf = (void *)&len;
	len = 99;
	CHECK_EQ(weft_fs_read_file(p, &buf, &len, 3), -EFBIG);
	CHECK(buf == (void *)&len);
	CHECK_EQ(len, 99);

	CHECK_EQ(put_file(path_in(p, d, "empty"), "", 0), 0);
	buf = NULL;
	CHECK_EQ(weft_fs_read_file(p, &buf, &len, 0), 0);
	CHECK_EQ(len, 0);
	CHECK(buf != NULL && ((char *)buf)[0] == '\0');
	weft_fs_free(buf);

	/* Bigger than one growth step, known size. */
	enum { BIG = 100000 };
	char *big = malloc(BIG);
	if (!CHECK(big != NULL))
		return 0;
	for (int i = 0; i < BIG; i++)
		big[i] = (char)('a' + i % 26);
	CHECK_EQ(put_file(path_in(p, d, "big"), big, BIG), 0);
	CHECK_EQ(weft_fs_read_file(p, &buf, &len, SIZE_MAX), 0);
	CHECK_EQ(len, BIG);
	CHECK(memcmp(buf, big, BIG) == 0 && ((char *)buf)[BIG] == '\0');
	weft_fs_free(buf);
	CHECK_EQ(weft_fs_read_file(p, &buf, &len, BIG - 1), -EFBIG);
	free(big);

	/* A file whose size stat does not tell (0 for /proc files): read to
	 * its end, growing the buffer; a small max still stops it. */
	CHECK_EQ(weft_fs_read_file("/proc/self/maps", &buf, &len, 1 << 24), 0);
	CHECK(len > 0 && strlen(buf) == len);
	weft_fs_free(buf);
	CHECK_EQ(weft_fs_read_file("/proc/self/maps", &buf, &len, 16), -EFBIG);

	CHECK_EQ(weft_fs_read_file(path_in(p, d, "missing"), &buf, &len, 10),
		-ENOENT);
	CHECK_EQ(weft_fs_read_file(d->dir, &buf, &len, 10), -EISDIR);
	return 0;
}

/* Whole files: small, empty, big, unknown size, too big, missing. */
static void test_fs__read_file_small_empty_and_too_big(void **state)
{
	run_in_dir(WEFT_TEST_WORKERS(state), read_file_root);
}

static int stat_root(void *arg)
{
	struct fsdir *d = arg;
	char p[PATH_MAX], q[PATH_MAX];
	weft_fs_stat_t st;
	CHECK_EQ(put_file(path_in(p, d, "f"), "12345", 5), 0);
	memset(&st, 0xff, sizeof st);
	CHECK_EQ(weft_fs_stat(p, &st), 0);
	CHECK_EQ(st.size, 5);
	CHECK_EQ(st.type, WEFT_FS_FILE);
	CHECK(S_ISREG(st.mode));
	CHECK_EQ(st.mode & 0700, 0600);
	CHECK_EQ(st.nlink, 1);
	CHECK_EQ(st.uid, getuid());
	CHECK(st.mtime_ns > 0 && st.ino != 0);
	struct stat ref;
	CHECK_EQ(stat(p, &ref), 0);
	CHECK_EQ(st.ino, ref.st_ino);
	CHECK_EQ(st.mtime_ns,
		(int64_t)ref.st_mtim.tv_sec * 1000000000 + ref.st_mtim.tv_nsec);

	CHECK_EQ(weft_fs_stat(d->dir, &st), 0);
	CHECK_EQ(st.type, WEFT_FS_DIR);

	/* A symbolic link: stat follows it, lstat does not. */
	CHECK_EQ(symlink(p, path_in(q, d, "link")), 0);
	CHECK_EQ(weft_fs_stat(q, &st), 0);
	CHECK_EQ(st.type, WEFT_FS_FILE);
	CHECK_EQ(st.size, 5);
	CHECK_EQ(weft_fs_lstat(q, &st), 0);
	CHECK_EQ(st.type, WEFT_FS_LINK);

	/* fstat of an open file, and of a FIFO. */
	int fd;
	CHECK_EQ(weft_fs_open(p, O_RDONLY, 0, &fd), 0);
	CHECK_EQ(weft_fs_fstat(fd, &st), 0);
	CHECK_EQ(st.size, 5);
	CHECK_EQ(st.type, WEFT_FS_FILE);
	CHECK_EQ(weft_fs_close(fd), 0);
	CHECK_EQ(mkfifo(path_in(q, d, "fifo"), 0600), 0);
	CHECK_EQ(weft_fs_stat(q, &st), 0);
	CHECK_EQ(st.type, WEFT_FS_OTHER);

	CHECK_EQ(weft_fs_stat(path_in(q, d, "nope"), &st), -ENOENT);
	CHECK_EQ(weft_fs_stat(path_in(q, d, "f/x"), &st), -ENOTDIR);
	CHECK_EQ(weft_fs_fstat(-1, &st), -EBADF);
	return 0;
}

/* stat, lstat and fstat report sizes, types and times. */
static void test_fs__stat_reports_sizes_and_types(void **state)
{
	run_in_dir(WEFT_TEST_WORKERS(state), stat_root);
}

static int names_root(void *arg)
{
	struct fsdir *d = arg;
	char a[PATH_MAX], b[PATH_MAX], sub[PATH_MAX];
	weft_fs_stat_t st;
	CHECK_EQ(put_file(path_in(a, d, "a"), "A", 1), 0);
	CHECK_EQ(weft_fs_rename(a, path_in(b, d, "b")), 0);
	CHECK_EQ(weft_fs_stat(a, &st), -ENOENT);
	CHECK_EQ(weft_fs_stat(b, &st), 0);
	CHECK_EQ(st.size, 1);
	CHECK_EQ(weft_fs_rename(a, b), -ENOENT);
	/* rename replaces an existing target. */
	CHECK_EQ(put_file(a, "AA", 2), 0);
	CHECK_EQ(weft_fs_rename(a, b), 0);
	CHECK_EQ(weft_fs_stat(b, &st), 0);
	CHECK_EQ(st.size, 2);
	CHECK_EQ(weft_fs_unlink(b), 0);
	CHECK_EQ(weft_fs_unlink(b), -ENOENT);

	CHECK_EQ(weft_fs_mkdir(path_in(sub, d, "sub"), 0700), 0);
	CHECK_EQ(weft_fs_mkdir(sub, 0700), -EEXIST);
	CHECK_EQ(weft_fs_stat(sub, &st), 0);
	CHECK_EQ(st.type, WEFT_FS_DIR);
	char in[PATH_MAX];
	path_in(in, d, "sub/x");
	CHECK_EQ(put_file(in, "x", 1), 0);
	CHECK_EQ(weft_fs_rmdir(sub), -ENOTEMPTY);
	CHECK_EQ(weft_fs_unlink(sub), -EISDIR);
	CHECK_EQ(weft_fs_unlink(in), 0);
	CHECK_EQ(weft_fs_rmdir(sub), 0);
	CHECK_EQ(weft_fs_rmdir(sub), -ENOENT);
	return 0;
}

/* rename, unlink, mkdir, rmdir. */
static void test_fs__unlink_rename_mkdir_rmdir(void **state)
{
	run_in_dir(WEFT_TEST_WORKERS(state), names_root);
}

static int missing_root(void *arg)
{
	struct fsdir *d = arg;
	char p[PATH_MAX];
	int fd = -42;
	CHECK_EQ(weft_fs_open(path_in(p, d, "missing"), O_RDONLY, 0, &fd),
		-ENOENT);
	CHECK_EQ(fd, -42); /* unchanged on error */
	CHECK_EQ(put_file(path_in(p, d, "x"), "x", 1), 0);
	CHECK_EQ(weft_fs_open(p, O_WRONLY | O_CREAT | O_EXCL, 0600, &fd),
		-EEXIST);
	CHECK_EQ(weft_fs_open(d->dir, O_WRONLY, 0, &fd), -EISDIR);
	return 0;
}

/* Opening a missing file: -ENOENT, and *fd untouched. */
static void test_fs__open_missing_file_fails_with_enoent(void **state)
{
	run_in_dir(WEFT_TEST_WORKERS(state), missing_root);
}

static void null_args_checks(void)
{
	int fd;
	weft_fs_stat_t st;
	void *buf;
	size_t len;
	char c;
	CHECK_EQ(weft_fs_open(NULL, O_RDONLY, 0, &fd), -EINVAL);
	CHECK_EQ(weft_fs_open("/", O_RDONLY, 0, NULL), -EINVAL);
	CHECK_EQ(weft_fs_read(0, NULL, 1, 0), -EINVAL);
	CHECK_EQ(weft_fs_read(0, &c, 1, -2), -EINVAL);
	CHECK_EQ(weft_fs_write(0, NULL, 1, 0), -EINVAL);
	CHECK_EQ(weft_fs_write(0, &c, 1, -5), -EINVAL);
	CHECK_EQ(weft_fs_stat(NULL, &st), -EINVAL);
	CHECK_EQ(weft_fs_stat("/", NULL), -EINVAL);
	CHECK_EQ(weft_fs_lstat(NULL, &st), -EINVAL);
	CHECK_EQ(weft_fs_fstat(0, NULL), -EINVAL);
	CHECK_EQ(weft_fs_unlink(NULL), -EINVAL);
	CHECK_EQ(weft_fs_rename(NULL, "/x"), -EINVAL);
	CHECK_EQ(weft_fs_rename("/x", NULL), -EINVAL);
	CHECK_EQ(weft_fs_mkdir(NULL, 0700), -EINVAL);
	CHECK_EQ(weft_fs_rmdir(NULL), -EINVAL);
	CHECK_EQ(weft_fs_read_file(NULL, &buf, &len, 1), -EINVAL);
	CHECK_EQ(weft_fs_read_file("/", NULL, &len, 1), -EINVAL);
	CHECK_EQ(weft_fs_read_file("/", &buf, NULL, 1), -EINVAL);
	weft_fs_free(NULL);
}

static int null_root(void *arg)
{
	(void)arg;
	null_args_checks();
	return 0;
}

/* NULL arguments: -EINVAL, inside a task and from a plain thread. */
static void test_fs__null_arguments_fail_with_einval(void **state)
{
	(void)state;
	assert_int_equal(weft_test_run(1, null_root, NULL), 0);
	null_args_checks();
	weft_test_assert_no_leaks();
}

/* From a plain thread (the test's main thread): WEFT_ENOTFIBER and
 * nothing happens. */
static void test_fs__plain_thread_gets_enotfiber(void **state)
{
	(void)state;
	struct fsdir d;
	fsdir_make(&d);
	char p[PATH_MAX];
	int fd = -42;
	weft_fs_stat_t st;
	void *buf = NULL;
	size_t len = 0;
	char c = 0;
	assert_int_equal(weft_fs_open(path_in(p, &d, "f"), O_WRONLY | O_CREAT,
				 0600, &fd),
		WEFT_ENOTFIBER);
	assert_int_equal(fd, -42);
	assert_int_equal(stat(p, &(struct stat){ 0 }), -1); /* not created */
	assert_int_equal(weft_fs_stat(d.dir, &st), WEFT_ENOTFIBER);
	assert_int_equal(weft_fs_fstat(0, &st), WEFT_ENOTFIBER);
	assert_int_equal(weft_fs_read(0, &c, 1, -1), WEFT_ENOTFIBER);
	assert_int_equal(weft_fs_write(1, &c, 0, -1), WEFT_ENOTFIBER);
	assert_int_equal(weft_fs_mkdir(p, 0700), WEFT_ENOTFIBER);
	assert_int_equal(weft_fs_unlink(p), WEFT_ENOTFIBER);
	assert_int_equal(weft_fs_rename(p, p), WEFT_ENOTFIBER);
	assert_int_equal(weft_fs_read_file(d.dir, &buf, &len, 1),
		WEFT_ENOTFIBER);
	int dfd = dup(0);
	assert_true(dfd >= 0);
	assert_int_equal(weft_fs_close(dfd), WEFT_ENOTFIBER);
	assert_int_equal(fcntl(dfd, F_GETFD) >= 0, 1); /* still open */
	close(dfd);
	fsdir_remove(&d);
	weft_test_assert_no_leaks();
}

struct many {
	struct fsdir *d;
	int id;
};

static int many_child(void *arg)
{
	struct many *m = arg;
	char p[PATH_MAX], q[PATH_MAX], name[32];
	snprintf(name, sizeof name, "f%d", m->id);
	path_in(p, m->d, name);
	snprintf(name, sizeof name, "g%d", m->id);
	path_in(q, m->d, name);
	unsigned char data[3000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(m->id * 31 + (int)i);
	for (int round = 0; round < 3; round++) {
		CHECK_EQ(put_file(p, data, sizeof data), 0);
		weft_fs_stat_t st;
		CHECK_EQ(weft_fs_stat(p, &st), 0);
		CHECK_EQ(st.size, sizeof data);
		CHECK_EQ(weft_fs_rename(p, q), 0);
		void *buf;
		size_t len;
		CHECK_EQ(weft_fs_read_file(q, &buf, &len, sizeof data), 0);
		CHECK_EQ(len, sizeof data);
		CHECK(memcmp(buf, data, sizeof data) == 0);
		weft_fs_free(buf);
		int fd;
		CHECK_EQ(weft_fs_open(q, O_RDONLY, 0, &fd), 0);
		unsigned char part[100];
		CHECK_EQ(weft_fs_read(fd, part, sizeof part, 1000), 100);
		CHECK(memcmp(part, data + 1000, sizeof part) == 0);
		CHECK_EQ(weft_fs_close(fd), 0);
		CHECK_EQ(weft_fs_unlink(q), 0);
	}
	return 0;
}

static int many_root(void *arg)
{
	enum { N = 48 };
	struct many m[N];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < N; i++) {
		m[i] = (struct many){ .d = arg, .id = i };
		CHECK_EQ(weft_group_spawn(g, many_child, &m[i]), 0);
	}
	CHECK_EQ(weft_group_join(g, NULL), 0);
	/* Every file is gone again. */
	DIR *dir = opendir(((struct fsdir *)arg)->dir);
	if (!CHECK(dir != NULL))
		return 0;
	int entries = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			entries++;
	closedir(dir);
	CHECK_EQ(entries, 0);
	return 0;
}

/* Many tasks doing file operations at once, more than the pool has
 * threads: all complete with the right data. */
static void test_fs__many_tasks_do_file_operations_at_once(void **state)
{
	int fds = weft_test_count_fds();
	run_in_dir(WEFT_TEST_WORKERS(state), many_root);
	assert_int_equal(weft_test_count_fds(), fds);
}

static int precancel_root(void *arg)
{
	struct fsdir *d = arg;
	char p[PATH_MAX], q[PATH_MAX];
	CHECK_EQ(put_file(path_in(q, d, "keep"), "k", 1), 0);
	int fd;
	CHECK_EQ(weft_fs_open(q, O_RDONLY, 0, &fd), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_create(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_enter(s), 0);
	weft_scope_cancel(s, "test");
	int nfd = -42;
	weft_fs_stat_t st;
	char c;
	void *buf;
	size_t len;
	CHECK_EQ(weft_fs_open(path_in(p, d, "new"), O_WRONLY | O_CREAT, 0600,
			 &nfd),
		-ECANCELED);
	CHECK_EQ(nfd, -42);
	CHECK_EQ(weft_fs_mkdir(p, 0700), -ECANCELED);
	CHECK_EQ(weft_fs_unlink(q), -ECANCELED);
	CHECK_EQ(weft_fs_rename(q, p), -ECANCELED);
	CHECK_EQ(weft_fs_stat(q, &st), -ECANCELED);
	CHECK_EQ(weft_fs_read(fd, &c, 1, 0), -ECANCELED);
	CHECK_EQ(weft_fs_write(fd, "x", 1, 0), -ECANCELED);
	CHECK_EQ(weft_fs_read_file(q, &buf, &len, 10), -ECANCELED);
	/* close is the exception: it closes anyway and reports success. */
	CHECK_EQ(weft_fs_close(fd), 0);
	CHECK_EQ(fcntl(fd, F_GETFD), -1);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	/* Nothing happened. */
	CHECK_EQ(weft_fs_stat(p, &st), -ENOENT);
	CHECK_EQ(weft_fs_stat(q, &st), 0);
	CHECK_EQ(st.size, 1);
	return 0;
}

/* A call made in a cancelled scope does nothing (a checkpoint first), and
 * close still closes. */
static void test_fs__cancelled_before_call_does_nothing(void **state)
{
	int fds = weft_test_count_fds();
	run_in_dir(WEFT_TEST_WORKERS(state), precancel_root);
	assert_int_equal(weft_test_count_fds(), fds);
}

/* {------- the pool-full cancellation */

enum { POOL = 4 };

struct blocker {
	const char *fifo;
	int rc;
};

static int blocker_child(void *arg)
{
	struct blocker *b = arg;
	int fd = -1;
	/* Blocks a pool thread in open(2) until the FIFO gets a writer. */
	b->rc = weft_fs_open(b->fifo, O_RDONLY, 0, &fd);
	if (b->rc == 0)
		CHECK_EQ(weft_fs_close(fd), 0);
	return 0;
}

/* Threads of this process blocked in openat(2), from /proc. -1 if /proc
 * cannot tell. */
static int threads_in_openat(void)
{
	DIR *dir = opendir("/proc/self/task");
	if (dir == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char p[320], line[128];
		snprintf(p, sizeof p, "/proc/self/task/%s/syscall", e->d_name);
		FILE *f = fopen(p, "r");
		if (f == NULL)
			continue;
		long nr = -1;
		if (fgets(line, sizeof line, f) &&
			sscanf(line, "%ld", &nr) == 1 && nr == SYS_openat)
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}

struct unblock {
	char (*fifo)[PATH_MAX];
	weft_event_t *go;
	int w[POOL];
};

/* Gives each FIFO a writer (O_RDWR never blocks on Linux), so the
 * blocked opens return: once told to, or after a safety deadline, so
 * that a cancellation that fails to withdraw the queued request fails
 * the test instead of hanging it. */
static int unblocker_child(void *arg)
{
	struct unblock *u = arg;
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, 10 * WEFT_SEC), 0);
	CHECK_EQ(weft_event_wait(u->go), 0);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	for (int i = 0; i < POOL; i++) {
		u->w[i] = open(u->fifo[i], O_RDWR | O_NONBLOCK | O_CLOEXEC);
		CHECK(u->w[i] >= 0);
	}
	return 0;
}

static int queued_root(void *arg)
{
	struct fsdir *d = arg;
	char fifo[POOL][PATH_MAX], p[PATH_MAX];
	struct blocker b[POOL];
	struct unblock u = { .fifo = fifo };
	CHECK_EQ(weft_event_create(&u.go), 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < POOL; i++) {
		char name[16];
		snprintf(name, sizeof name, "fifo%d", i);
		path_in(fifo[i], d, name);
		CHECK_EQ(mkfifo(fifo[i], 0600), 0);
		b[i] = (struct blocker){ .fifo = fifo[i], .rc = 1 };
		CHECK_EQ(weft_group_spawn(g, blocker_child, &b[i]), 0);
	}
	CHECK_EQ(weft_group_spawn(g, unblocker_child, &u), 0);
	/* Wait (bounded: 5 s) until the four pool threads are blocked. */
	int blocked = 0;
	for (int i = 0; i < 5000 && blocked < POOL; i++) {
		blocked = threads_in_openat();
		if (blocked < 0)
			break;
		weft_sleep(WEFT_MSEC);
	}
	CHECK_EQ(blocked, POOL);

	/* A fifth request waits in the pool's queue; the deadline withdraws
	 * it: -ECANCELED, and the file was not created. */
	weft_scope_t *s;
	CHECK_EQ(weft_move_on_after(&s, 20 * WEFT_MSEC), 0);
	int fd = -42;
	CHECK_EQ(weft_fs_open(path_in(p, d, "queued"), O_WRONLY | O_CREAT, 0600,
			 &fd),
		-ECANCELED);
	CHECK_EQ(fd, -42);
	CHECK(weft_scope_cancel_called(s));
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	struct stat st;
	CHECK_EQ(stat(p, &st), -1);

	CHECK_EQ(weft_event_set(u.go), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(u.go), 0);
	for (int i = 0; i < POOL; i++) {
		CHECK_EQ(b[i].rc, 0);
		if (u.w[i] >= 0)
			close(u.w[i]);
	}
	CHECK_EQ(stat(p, &st), -1);
	/* The pool works again. */
	weft_fs_stat_t wst;
	CHECK_EQ(weft_fs_stat(d->dir, &wst), 0);
	CHECK_EQ(weft_fs_open(p, O_WRONLY | O_CREAT, 0600, &fd), 0);
	CHECK_EQ(weft_fs_close(fd), 0);
	return 0;
}

/* With every pool thread busy, a queued request is withdrawn by its
 * cancellation: -ECANCELED and nothing happened. */
static void test_fs__queued_request_is_withdrawn_by_cancellation(void **state)
{
	/* Under a user-mode emulator (ctest sets WEFT_TEST_EMULATED), the
	 * blocked pool threads are the host's: /proc shows the host's
	 * syscall numbers, so threads_in_openat cannot see them. */
	const char *emu = getenv("WEFT_TEST_EMULATED");
	if (emu != NULL && *emu != '\0') {
		print_message("skipped under %s: /proc/self/task/*/syscall "
			      "shows the host's system calls\n",
			emu);
		skip();
	}
	int fds = weft_test_count_fds();
	run_in_dir(WEFT_TEST_WORKERS(state), queued_root);
	assert_int_equal(weft_test_count_fds(), fds);
}

/* }------- */

/* }======================================================= */

int main(void)
{
	/* The pool-full test assumes libuv's default of 4 threads (read at
	 * the pool's first use, which is after this). */
	setenv("UV_THREADPOOL_SIZE", "4", 1);
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_fs__write_then_read_back_at_offsets),
		WEFT_TEST(test_fs__read_file_small_empty_and_too_big),
		WEFT_TEST(test_fs__stat_reports_sizes_and_types),
		WEFT_TEST(test_fs__unlink_rename_mkdir_rmdir),
		WEFT_TEST(test_fs__open_missing_file_fails_with_enoent),
		cmocka_unit_test(test_fs__null_arguments_fail_with_einval),
		cmocka_unit_test(test_fs__plain_thread_gets_enotfiber),
		WEFT_TEST(test_fs__many_tasks_do_file_operations_at_once),
		WEFT_TEST(test_fs__cancelled_before_call_does_nothing),
		WEFT_TEST(test_fs__queued_request_is_withdrawn_by_cancellation),
	};
	return WEFT_RUN_TESTS(tests);
}
