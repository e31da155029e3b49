/* B9 `echo` driver (docs/benchmarks.md): weft-bench-echo.
 *
 * Starts the weft echo server (weft-echo -p 0 -b 127.0.0.1, one fiber per
 * connection, reads and writes through the libuv I/O thread) as a child
 * process, with this process's environment, so WEFT_WORKERS reaches it;
 * reads its port from its first stdout line ("port=N"); then runs the
 * fixed client weft-echo-client (64 connections x 10,000 round trips of
 * 64 bytes, TCP_NODELAY; see echo-client.c) once as a warm-up (1,000 round
 * trips per connection) and BENCH_ECHO_REPS times measured (default 5:
 * each run takes seconds, and the client is one process per run), and
 * finally stops the server with SIGTERM and waits for it (it must exit 0
 * within 10 s).
 *
 * The JSON line: median_ms/p10_ms/p90_ms of the client's total time (first
 * send to last reply), the medians over the repetitions of
 * roundtrips_per_s, rtt_p50_us and rtt_p99_us (each the client's own
 * nearest rank over its 640,000 round trips), server_cpu_ms (the server's
 * user + system time during one repetition, from /proc/<pid>/stat, 10 ms
 * ticks; median) and server_cpu_ns_per_roundtrip from it, client_cpu_ms,
 * and the server's peak RSS (wait4's ru_maxrss) as maxrss_kb.  The checksum
 * is the client's count of verified round trips.
 *
 * Paths: the server and the client come from the build
 * (WEFT_BENCH_ECHO_SERVER, WEFT_BENCH_ECHO_CLIENT); the environment
 * variables of the same names override them (to measure another server
 * with the same client, e.g. Go's).  BENCH_ECHO_N changes the round trips
 * per connection (for quick runs; the JSON "n" says what ran). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "child.h"

static const char *const workload = "echo";

#ifndef WEFT_BENCH_ECHO_SERVER
#define WEFT_BENCH_ECHO_SERVER "weft-echo"
#endif
#ifndef WEFT_BENCH_ECHO_CLIENT
#define WEFT_BENCH_ECHO_CLIENT "weft-echo-client"
#endif

#define ECHO_CONNS 64
#define ECHO_N 10000
#define ECHO_WARMUP_N 1000
#define ECHO_MAX_REPS 64
#define ECHO_CLIENT_NS (90 * WEFT_SEC) /* the client bounds itself at 60 */

/* {====== one client run */

struct echo_result {
	long roundtrips;
	double total_ms, rps, p50_us, p99_us, client_cpu_ms, server_cpu_ms;
};

/* Runs the client against the server once with n round trips per
 * connection, forwarding the server's output meanwhile. */
static void echo_client_run(struct bench_server *s, const char *client, long n,
	struct echo_result *res)
{
	char port[16], nstr[24], conns[16];
	snprintf(port, sizeof port, "%d", s->port);
	snprintf(nstr, sizeof nstr, "%ld", n);
	snprintf(conns, sizeof conns, "%d", ECHO_CONNS);
	char *argv[] = { (char *)client, "-p", port, "-c", conns, "-n", nstr,
		"-s", "64", "-t", "60", NULL };
	double cpu0 = bench_cpu_ms(workload, s->pid);
	char buf[1024];
	struct rusage ru;
	int status = bench_run_capture(s, argv, buf, sizeof buf, ECHO_CLIENT_NS,
		&ru);
	res->server_cpu_ms = bench_cpu_ms(workload, s->pid) - cpu0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_die(workload, "the client failed (status 0x%x)", status);
	res->client_cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	const char *t = strstr(buf, "roundtrips=");
	const char *u = strstr(buf, "total_ms=");
	if (t == NULL || u == NULL ||
		sscanf(t, "roundtrips=%ld", &res->roundtrips) != 1 ||
		sscanf(u,
			"total_ms=%lf roundtrips_per_s=%lf rtt_p50_us=%lf "
			"rtt_p99_us=%lf",
			&res->total_ms, &res->rps, &res->p50_us,
			&res->p99_us) != 4)
		bench_die(workload, "cannot parse the client's output '%s'",
			buf);
}

/* }====== */

static const char *echo_env_path(const char *name, const char *dflt)
{
	const char *s = getenv(name);
	return s != NULL && *s != '\0' ? s : dflt;
}

int main(void)
{
	/* The server reads the same environment: this is its worker count. */
	weft_config_t cfg;
	if (weft_config_init(&cfg) < 0)
		bench_die(workload, "bad environment: %s", cfg.message);
	int reps = (int)bench_env_long(workload, "BENCH_ECHO_REPS", 5,
		ECHO_MAX_REPS);
	long n = bench_env_long(workload, "BENCH_ECHO_N", ECHO_N, 1000000);
	const char *server = echo_env_path("WEFT_BENCH_ECHO_SERVER",
		WEFT_BENCH_ECHO_SERVER);
	const char *client = echo_env_path("WEFT_BENCH_ECHO_CLIENT",
		WEFT_BENCH_ECHO_CLIENT);
	if (access(client, X_OK) != 0)
		bench_die(workload, "no client at %s: %s", client,
			strerror(errno));
	/* A client that dies must not take the driver with it. */
	signal(SIGPIPE, SIG_IGN);

	struct bench_server s;
	bench_server_start(&s, workload, server, "WEFT_BENCH_ECHO_SERVER");
	struct echo_result warm;
	echo_client_run(&s, client, n < ECHO_WARMUP_N ? n : ECHO_WARMUP_N,
		&warm);
	double ms[ECHO_MAX_REPS], rps[ECHO_MAX_REPS], p50[ECHO_MAX_REPS],
		p99[ECHO_MAX_REPS], scpu[ECHO_MAX_REPS], ccpu[ECHO_MAX_REPS];
	long verified = 0;
	for (int r = 0; r < reps; r++) {
		struct echo_result res;
		echo_client_run(&s, client, n, &res);
		fprintf(stderr,
			"echo: rep %d: %ld round trips in %.1f ms, "
			"%.0f/s, RTT p50 %.1f us p99 %.1f us, server CPU "
			"%.0f ms\n",
			r, res.roundtrips, res.total_ms, res.rps, res.p50_us,
			res.p99_us, res.server_cpu_ms);
		verified += res.roundtrips;
		ms[r] = res.total_ms;
		rps[r] = res.rps;
		p50[r] = res.p50_us;
		p99[r] = res.p99_us;
		scpu[r] = res.server_cpu_ms;
		ccpu[r] = res.client_cpu_ms;
	}
	struct rusage ru;
	bench_server_stop(&s, &ru);

	long expected = (long)ECHO_CONNS * n * reps;
	fprintf(stderr, "echo: %ld verified round trips (expected %ld)\n",
		verified, expected);
	if (verified != expected)
		bench_die(workload, "wrong checksum");
	bench_stats_t t = bench_stats(ms, (size_t)reps);
	bench_stats_t sc = bench_stats(scpu, (size_t)reps);
	double server_total_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
			1e3 +
		(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, (long long)ECHO_CONNS * n);
	bench_json_times(&j, &t, reps);
	bench_json_int(&j, "conns", ECHO_CONNS);
	bench_json_int(&j, "msg_bytes", 64);
	bench_json_num(&j, "roundtrips_per_s",
		bench_stats(rps, (size_t)reps).median);
	bench_json_num(&j, "rtt_p50_us", bench_stats(p50, (size_t)reps).median);
	bench_json_num(&j, "rtt_p99_us", bench_stats(p99, (size_t)reps).median);
	bench_json_num(&j, "server_cpu_ms", sc.median);
	bench_json_num(&j, "server_cpu_ns_per_roundtrip",
		sc.median * 1e6 / ((double)ECHO_CONNS * n));
	bench_json_num(&j, "server_cpu_total_ms", server_total_ms);
	bench_json_num(&j, "client_cpu_ms",
		bench_stats(ccpu, (size_t)reps).median);
	/* The weft process here is the server: its peak RSS, not ours. */
	bench_json_int(&j, "maxrss_kb", ru.ru_maxrss);
	bench_json_bool(&j, "io_thread", 1);
	bench_json_raw(&j, "}");
	if (j.overflow)
		bench_die(workload, "JSON line too long");
	printf("%s\n", j.buf);
	return 0;
}
