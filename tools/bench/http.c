/* B10 `http` driver (docs/benchmarks.md): weft-bench-http.
 *
 * Starts the weft HTTP server (weft-httpd -p 0 -b 127.0.0.1: keep-alive
 * HTTP/1.1, one fiber per connection, 200 "Hello, World!" for GET /) as a
 * child process with this process's environment (WEFT_WORKERS reaches
 * it), reads its port from its first stdout line ("port=N"), checks one
 * response by hand (status 200, body "Hello, World!": the checksum), then
 * runs Debian's wrk as the peers were measured (docs/benchmarks.md, B10):
 * a 2 s warm-up, then BENCH_HTTP_REPS (default 3) runs of
 *
 *     wrk -t1 -c100 -d5s --latency http://127.0.0.1:PORT/
 *
 * (BENCH_HTTP_DURATION and BENCH_HTTP_CONNS change -d and -c; the peers'
 * reference figures in docs/benchmarks.md were measured with -d10s),
 * and finally stops the server with SIGTERM (it must exit 0 within 10 s).
 *
 * The JSON line: req_per_s, p50_us and p99_us are the medians over the
 * runs of wrk's "Requests/sec" and latency distribution; req_per_s_min and
 * _max give the range; median_ms/p10_ms/p90_ms are the runs' wall times
 * (wrk's duration plus its start and stop); server_cpu_us_per_req is the
 * server's user + system time per request (/proc/<pid>/stat, median);
 * maxrss_kb is the server's peak RSS (wait4).  A run with non-2xx answers
 * fails the benchmark; socket errors are counted and reported.
 *
 * When wrk is not installed the driver says so on stderr and exits 0
 * without a JSON line (tools/run deps installs it).  WEFT_BENCH_HTTP_SERVER
 * in the environment replaces the server (e.g. to put another one under
 * the same load). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "child.h"

static const char *const workload = "http";

#ifndef WEFT_BENCH_HTTP_SERVER
#define WEFT_BENCH_HTTP_SERVER "weft-httpd"
#endif

#define HTTP_MAX_REPS 32
#define HTTP_BODY "Hello, World!"
#define HTTP_GET_NS (5 * WEFT_SEC)	  /* the hand-made request */
#define HTTP_WRK_SLACK_NS (30 * WEFT_SEC) /* wrk beyond its -d */

/* {====== child processes (child.h) */

/* }====== */

/* {====== the checksum: one request by hand */

/* GET / on a fresh connection; 1 when the answer is a 200 whose body is
 * exactly HTTP_BODY (by Content-Length). */
static int http_check(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bench_die(workload, "socket: %s", strerror(errno));
	struct timeval tv = { .tv_sec = HTTP_GET_NS / WEFT_SEC };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "Connection: close\r\n\r\n";
	char buf[4096];
	size_t len = 0;
	int ok = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
		send(fd, req, sizeof req - 1, MSG_NOSIGNAL) !=
			(ssize_t)(sizeof req - 1))
		goto out;
	for (;;) {
		ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		char *body = strstr(buf, "\r\n\r\n");
		char *cl = strcasestr(buf, "\r\nContent-Length:");
		if (body == NULL || cl == NULL || cl > body)
			continue;
		long n = strtol(cl + 17, NULL, 10);
		body += 4;
		if ((long)(buf + len - body) < n)
			continue;
		ok = strncmp(buf, "HTTP/1.1 200 ", 13) == 0 &&
			n == (long)strlen(HTTP_BODY) &&
			memcmp(body, HTTP_BODY, (size_t)n) == 0;
		break;
	}
	buf[len] = '\0';
	if (!ok)
		fprintf(stderr, "http: unexpected answer to GET /:\n%s\n", buf);
out:
	close(fd);
	return ok;
}

/* }====== */

/* {====== wrk */

/* Is name an executable in PATH? */
static int http_in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/usr/bin:/bin";
	char dir[4096];
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(dir, sizeof dir, "%.*s/%s", (int)n, n ? path : ".",
			name);
		if (access(dir, X_OK) == 0)
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

/* wrk prints latencies as a number and a unit (us, ms, s, m, h). */
static int http_parse_us(const char *s, double *us)
{
	double v;
	char unit[4] = "";
	if (sscanf(s, "%lf%3[a-z]", &v, unit) != 2)
		return -1;
	static const struct {
		const char *u;
		double f;
	} units[] = { { "us", 1 }, { "ms", 1e3 }, { "s", 1e6 }, { "m", 60e6 },
		{ "h", 3600e6 } };
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(unit, units[i].u) == 0) {
			*us = v * units[i].f;
			return 0;
		}
	}
	return -1;
}

struct http_result {
	double rps, p50_us, p99_us;
	long requests, non2xx, sock_errors;
};

/* Parses wrk --latency output; -1 when a figure is missing. */
static int http_parse_wrk(const char *t, struct http_result *res)
{
	const char *rps = strstr(t, "Requests/sec:");
	const char *p50 = strstr(t, " 50% ");
	const char *p99 = strstr(t, " 99% ");
	const char *req = strstr(t, " requests in ");
	if (rps == NULL || p50 == NULL || p99 == NULL || req == NULL ||
		sscanf(rps, "Requests/sec: %lf", &res->rps) != 1 ||
		http_parse_us(p50 + 5 + strspn(p50 + 5, " "), &res->p50_us) ||
		http_parse_us(p99 + 5 + strspn(p99 + 5, " "), &res->p99_us))
		return -1;
	/* The request count ends the line before " requests in ". */
	const char *b = req;
	while (b > t && b[-1] != ' ' && b[-1] != '\n')
		b--;
	res->requests = strtol(b, NULL, 10);
	const char *n2 = strstr(t, "Non-2xx or 3xx responses:");
	res->non2xx = n2 ? strtol(n2 + 25, NULL, 10) : 0;
	res->sock_errors = 0;
	const char *se = strstr(t, "Socket errors:");
	long c, r, w, to;
	if (se &&
		sscanf(se,
			"Socket errors: connect %ld, read %ld, write "
			"%ld, timeout %ld",
			&c, &r, &w, &to) == 4)
		res->sock_errors = c + r + w + to;
	return 0;
}

/* }====== */

int main(void)
{
	if (!http_in_path("wrk")) {
		fprintf(stderr,
			"weft-bench-http: wrk is not installed "
			"(Debian: apt-get install wrk, or tools/run deps); "
			"B10 skipped\n");
		return 0;
	}
	weft_config_t cfg;
	if (weft_config_init(&cfg) < 0)
		bench_die(workload, "bad environment: %s", cfg.message);
	int reps = (int)bench_env_long(workload, "BENCH_HTTP_REPS", 3,
		HTTP_MAX_REPS);
	long dur_s = bench_env_long(workload, "BENCH_HTTP_DURATION", 5, 600);
	long conns = bench_env_long(workload, "BENCH_HTTP_CONNS", 100, 10000);
	const char *server = getenv("WEFT_BENCH_HTTP_SERVER");
	if (server == NULL || *server == '\0')
		server = WEFT_BENCH_HTTP_SERVER;
	signal(SIGPIPE, SIG_IGN);

	struct bench_server s;
	bench_server_start(&s, workload, server, "WEFT_BENCH_HTTP_SERVER");
	if (!http_check(s.port)) {
		kill(s.pid, SIGKILL);
		waitpid(s.pid, NULL, 0);
		bench_die(workload,
			"wrong checksum: GET / did not answer 200 "
			"\"%s\"",
			HTTP_BODY);
	}
	char url[64], c[24], d[24];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
	snprintf(c, sizeof c, "-c%ld", conns);
	snprintf(d, sizeof d, "-d%lds", dur_s);
	char out[8192];
	char *warm[] = { "wrk", "-t1", c, "-d2s", url, NULL };
	bench_run_capture(&s, warm, out, sizeof out,
		2 * WEFT_SEC + HTTP_WRK_SLACK_NS, NULL);

	double ms[HTTP_MAX_REPS], rps[HTTP_MAX_REPS], p50[HTTP_MAX_REPS],
		p99[HTTP_MAX_REPS], cpu[HTTP_MAX_REPS];
	long non2xx = 0, sock_errors = 0, requests = 0;
	for (int r = 0; r < reps; r++) {
		char *argv[] = { "wrk", "-t1", c, d, "--latency", url, NULL };
		double cpu0 = bench_cpu_ms(workload, s.pid);
		int64_t t0 = bench_now();
		int st = bench_run_capture(&s, argv, out, sizeof out,
			dur_s * WEFT_SEC + HTTP_WRK_SLACK_NS, NULL);
		int64_t t1 = bench_now();
		double cpu1 = bench_cpu_ms(workload, s.pid);
		struct http_result res;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
			http_parse_wrk(out, &res) < 0)
			bench_die(workload, "wrk failed (status 0x%x):\n%s", st,
				out);
		fprintf(stderr,
			"http: run %d: %.0f req/s, p50 %.0f us, p99 "
			"%.0f us, %ld requests, %ld non-2xx, %ld socket "
			"errors\n",
			r, res.rps, res.p50_us, res.p99_us, res.requests,
			res.non2xx, res.sock_errors);
		ms[r] = bench_ms(t1 - t0);
		rps[r] = res.rps;
		p50[r] = res.p50_us;
		p99[r] = res.p99_us;
		cpu[r] = res.requests > 0
			? (cpu1 - cpu0) * 1e3 / (double)res.requests
			: 0;
		non2xx += res.non2xx;
		sock_errors += res.sock_errors;
		requests += res.requests;
	}
	struct rusage ru;
	bench_server_stop(&s, &ru);
	if (non2xx != 0 || requests == 0)
		bench_die(workload,
			"wrong checksum: %ld requests, %ld non-2xx "
			"answers",
			requests, non2xx);

	bench_stats_t t = bench_stats(ms, (size_t)reps);
	bench_stats_t q = bench_stats(rps, (size_t)reps);
	bench_json_t j;
	bench_json_begin(&j, workload, cfg.workers, conns);
	bench_json_times(&j, &t, reps);
	bench_json_int(&j, "conns", conns);
	bench_json_int(&j, "duration_s", dur_s);
	bench_json_num(&j, "req_per_s", q.median);
	bench_json_num(&j, "req_per_s_min", q.min);
	bench_json_num(&j, "req_per_s_max", q.max);
	bench_json_num(&j, "p50_us", bench_stats(p50, (size_t)reps).median);
	bench_json_num(&j, "p99_us", bench_stats(p99, (size_t)reps).median);
	bench_json_num(&j, "server_cpu_us_per_req",
		bench_stats(cpu, (size_t)reps).median);
	bench_json_int(&j, "requests", requests);
	bench_json_int(&j, "socket_errors", sock_errors);
	/* The weft process here is the server: its peak RSS, not ours. */
	bench_json_int(&j, "maxrss_kb", ru.ru_maxrss);
	bench_json_bool(&j, "io_thread", 1);
	bench_json_raw(&j, "}");
	if (j.overflow)
		bench_die(workload, "JSON line too long");
	printf("%s\n", j.buf);
	return 0;
}
