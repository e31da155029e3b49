/* Child processes of the I/O benchmark drivers (echo.c, http.c): a server
 * started with "-p 0 -b 127.0.0.1" that prints "port=N" as its first
 * line, and the helpers to run, watch and stop it.  Every failure ends the
 * benchmark through bench_die with the driver's workload name. */
#ifndef WEFT_BENCH_CHILD_H
#define WEFT_BENCH_CHILD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

struct bench_server {
	const char *workload; /* for messages */
	pid_t pid;
	int out; /* read end of its stdout, -1 once closed */
	int port;
};

/* fork + exec argv (PATH searched) with stdout on a new pipe, whose read
 * end goes to *out. */
pid_t bench_spawn(const char *workload, char *const argv[], int *out);

/* Starts the server at path (env_var names the variable that overrides
 * the path, for the message when it is missing) and reads its port,
 * waiting at most 10 s. */
void bench_server_start(struct bench_server *s, const char *workload,
	const char *path, const char *env_var);

/* Forwards what the server printed after its first line to stderr, so it
 * never blocks on a full pipe; waits up to ms for the first byte. */
void bench_server_drain(struct bench_server *s, int ms);

/* User + system CPU time of pid so far, ms (/proc/<pid>/stat). */
double bench_cpu_ms(const char *workload, pid_t pid);

/* SIGTERM, then waits up to 10 s; the server must exit with status 0.
 * *ru receives its resource usage. */
void bench_server_stop(struct bench_server *s, struct rusage *ru);

/* Runs argv to completion (killed, and the benchmark ended, after
 * timeout_ns), capturing up to cap - 1 bytes of its stdout into out
 * (NUL-terminated; more output is read and dropped) and forwarding the
 * server's output meanwhile.  Returns its wait status; *ru (if not NULL)
 * receives its resource usage. */
int bench_run_capture(struct bench_server *s, char *const argv[], char *out,
	size_t cap, int64_t timeout_ns, struct rusage *ru);

#endif
