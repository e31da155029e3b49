/* Child processes of the I/O benchmark drivers (child.h). */
#define _GNU_SOURCE /* pipe2 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define CHILD_START_NS (10 * WEFT_SEC) /* server start to "port=" */
#define CHILD_STOP_NS (10 * WEFT_SEC)  /* SIGTERM to exit */

/* Forwards what the server printed after its first line; see child.h. */
void bench_server_drain(struct bench_server *s, int ms)
{
	struct pollfd p = { .fd = s->out, .events = POLLIN };
	char buf[4096];
	while (s->out >= 0 && poll(&p, 1, ms) > 0) {
		ssize_t n = read(s->out, buf, sizeof buf);
		if (n <= 0) {
			close(s->out);
			s->out = -1;
			return;
		}
		fwrite(buf, 1, (size_t)n, stderr);
		ms = 0;
	}
}

/* fork + exec; see child.h. */
pid_t bench_spawn(const char *workload, char *const argv[], int *out)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		bench_die(workload, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		bench_die(workload, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "weft-bench-%s: cannot run %s: %s\n", workload,
			argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}

/* See child.h. */
void bench_server_start(struct bench_server *s, const char *workload,
	const char *path, const char *env_var)
{
	s->workload = workload;
	if (access(path, X_OK) != 0)
		bench_die(workload,
			"no server at %s (%s): build the network "
			"tools (-DWEFT_BUILD_TOOLS=ON) or set "
			"%s",
			path, strerror(errno), env_var);
	char *argv[] = { (char *)path, "-p", "0", "-b", "127.0.0.1", NULL };
	s->pid = bench_spawn(workload, argv, &s->out);
	char line[128];
	size_t len = 0;
	int64_t deadline = bench_now() + CHILD_START_NS;
	/* One byte at a time, so nothing after the first line is consumed
	 * here (bench_server_drain forwards the rest). */
	while (len + 1 < sizeof line) {
		int64_t left = deadline - bench_now();
		struct pollfd p = { .fd = s->out, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)(left / WEFT_MSEC) + 1) == 0)
			bench_die(workload, "%s printed no port in 10 s", path);
		ssize_t n = read(s->out, line + len, 1);
		if (n <= 0)
			bench_die(workload,
				"%s exited before printing its "
				"port",
				path);
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	if (sscanf(line, "port=%d", &s->port) != 1 || s->port <= 0)
		bench_die(workload, "%s: first line is '%s', not port=N", path,
			line);
}

/* /proc/<pid>/stat fields 14 and 15, in clock ticks. */
double bench_cpu_ms(const char *workload, pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		bench_die(workload, "%s: %s", path, strerror(errno));
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces; count from its ')'. */
	char *p = strrchr(buf, ')');
	unsigned long ut, st;
	if (p == NULL ||
		sscanf(p + 2,
			"%*c %*d %*d %*d %*d %*d %*u %*u %*u "
			"%*u %*u %lu %lu",
			&ut, &st) != 2)
		bench_die(workload, "%s: cannot parse", path);
	return (double)(ut + st) * 1e3 / (double)sysconf(_SC_CLK_TCK);
}

/* See child.h. */
void bench_server_stop(struct bench_server *s, struct rusage *ru)
{
	const char *workload = s->workload;
	kill(s->pid, SIGTERM);
	int64_t deadline = bench_now() + CHILD_STOP_NS;
	int status;
	pid_t r;
	while ((r = wait4(s->pid, &status, WNOHANG, ru)) == 0) {
		if (bench_now() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			bench_die(workload,
				"the server ignored SIGTERM for "
				"10 s");
		}
		bench_server_drain(s, 10);
	}
	bench_server_drain(s, 0);
	if (s->out >= 0)
		close(s->out);
	if (r < 0)
		bench_die(workload, "wait4: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_die(workload,
			"the server ended with status 0x%x after "
			"SIGTERM",
			status);
}

/* See child.h. */
int bench_run_capture(struct bench_server *s, char *const argv[], char *out,
	size_t cap, int64_t timeout_ns, struct rusage *ru)
{
	const char *workload = s->workload;
	int fd;
	pid_t pid = bench_spawn(workload, argv, &fd);
	size_t len = 0;
	int64_t deadline = bench_now() + timeout_ns;
	for (;;) {
		if (bench_now() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			bench_die(workload, "%s ran too long", argv[0]);
		}
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
			{ .fd = s->out, .events = POLLIN } };
		if (poll(p, s->out >= 0 ? 2 : 1, 100) < 0 && errno != EINTR)
			bench_die(workload, "poll: %s", strerror(errno));
		if (s->out >= 0 && p[1].revents)
			bench_server_drain(s, 0);
		if (p[0].revents == 0)
			continue;
		char sink[4096];
		ssize_t r = len + 1 < cap ? read(fd, out + len, cap - 1 - len)
					  : read(fd, sink, sizeof sink);
		if (r <= 0)
			break;
		if (len + 1 < cap)
			len += (size_t)r;
	}
	close(fd);
	out[len] = '\0';
	int status;
	if (wait4(pid, &status, 0, ru) < 0)
		bench_die(workload, "wait4: %s", strerror(errno));
	return status;
}
