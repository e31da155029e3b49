/* B9 `echo`'s fixed client (docs/benchmarks.md): one binary for every
 * server, so that weft, Go and Tokio echo servers are measured by the same
 * program.  Plain C, single-threaded, epoll; links nothing of weft.
 *
 *     weft-echo-client -p PORT [-h 127.0.0.1] [-c 64] [-n 10000] [-s 64]
 *                      [-t 60]
 *
 * Opens C connections (TCP_NODELAY) to HOST:PORT, then on each does N
 * sequential round trips: send S bytes, read S bytes back, check that
 * they are the bytes sent, send the next message.  All C connections
 * run at once, so C messages are in flight.  Each message carries its
 * connection and sequence number, so a reply from the wrong connection
 * or a stale one does not pass the check.
 *
 * Output: one line on stdout,
 *     conns=64 roundtrips=640000 size=64 connect_ms=.. total_ms=..
 *     roundtrips_per_s=.. rtt_p50_us=.. rtt_p99_us=.. rtt_max_us=..
 *     cpu_ms=..
 * where total_ms runs from the first send to the last reply (connecting
 * is timed apart as connect_ms), the RTT of a round trip runs from its
 * send() to the read() that completes its reply, percentiles are nearest
 * rank over all C x N round trips, and cpu_ms is this process's user +
 * system time.  roundtrips= counts the verified round trips: the checksum.
 *
 * Bounded: gives up (exit 1, message on stderr) when the whole run,
 * connecting included, exceeds -t seconds, on any error, on a wrong reply
 * and when the server closes a connection early.  Exit 0 only when every
 * round trip was verified. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EC_MAX_CONNS 4096
#define EC_MAX_SIZE 65536

struct ec_opts {
	const char *host;
	int port;
	long conns, n, size, timeout_s;
};

/* One connection's state; the event loop is the only thread. */
struct ec_conn {
	int fd;
	long seq;	    /* round trips completed */
	size_t sent;	    /* bytes of the current message written */
	size_t got;	    /* bytes of the current reply read */
	int64_t t_send;	    /* when the current message's first byte went */
	unsigned char *msg; /* [size] the current message */
	unsigned char *rep; /* [size] the reply so far */
};

static int64_t ec_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noreturn, format(printf, 1, 2))) static void
ec_die(const char *fmt, ...)
{
	va_list ap;
	fputs("weft-echo-client: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static long ec_parse(const char *s, long min, long max, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		ec_die("%s must be an integer in %ld..%ld, not '%s'", what, min,
			max, s);
	return v;
}

static void ec_usage(void)
{
	fprintf(stderr,
		"usage: weft-echo-client -p PORT [-h HOST] "
		"[-c CONNS] [-n ROUNDTRIPS] [-s SIZE] [-t TIMEOUT_S]\n");
	exit(2);
}

static void ec_parse_args(int argc, char **argv, struct ec_opts *o)
{
	*o = (struct ec_opts){ .host = "127.0.0.1",
		.port = -1,
		.conns = 64,
		.n = 10000,
		.size = 64,
		.timeout_s = 60 };
	int opt;
	while ((opt = getopt(argc, argv, "h:p:c:n:s:t:")) != -1) {
		switch (opt) {
		case 'h': o->host = optarg; break;
		case 'p':
			o->port = (int)ec_parse(optarg, 1, 65535, "-p");
			break;
		case 'c':
			o->conns = ec_parse(optarg, 1, EC_MAX_CONNS, "-c");
			break;
		case 'n': o->n = ec_parse(optarg, 1, 100000000, "-n"); break;
		case 's':
			o->size = ec_parse(optarg, 16, EC_MAX_SIZE, "-s");
			break;
		case 't':
			o->timeout_s = ec_parse(optarg, 1, 86400, "-t");
			break;
		default: ec_usage();
		}
	}
	if (o->port < 0 || optind != argc)
		ec_usage();
}

/* The message for round trip seq of connection c: both numbers in the
 * first 16 bytes, then a pattern that depends on both. */
static void ec_fill(unsigned char *m, size_t size, long c, long seq)
{
	uint64_t a = (uint64_t)c, b = (uint64_t)seq;
	memcpy(m, &a, 8);
	memcpy(m + 8, &b, 8);
	for (size_t i = 16; i < size; i++)
		m[i] = (unsigned char)(a * 131 + b * 7 + i);
}

/* A blocking connect bounded by the send timeout (SO_SNDTIMEO also bounds
 * connect on Linux), then non-blocking with TCP_NODELAY. */
static int ec_connect(const struct sockaddr_in *sa, long timeout_s)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		ec_die("socket: %s", strerror(errno));
	struct timeval tv = { .tv_sec = timeout_s };
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		ec_die("setsockopt: %s", strerror(errno));
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0)
		ec_die("connect to port %d: %s", ntohs(sa->sin_port),
			strerror(errno));
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		ec_die("fcntl O_NONBLOCK: %s", strerror(errno));
	return fd;
}

/* {====== the event loop */

struct ec_loop {
	const struct ec_opts *o;
	int ep;
	struct ec_conn *conns;
	long open;    /* connections with round trips left */
	int64_t *rtt; /* [conns * n] ns, in completion order */
	size_t nrtt;
};

static void ec_watch(struct ec_loop *l, long c, int op, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)c };
	if (epoll_ctl(l->ep, op, l->conns[c].fd, &ev) != 0)
		ec_die("epoll_ctl: %s", strerror(errno));
}

/* Writes what is left of connection c's message; waits for EPOLLOUT only
 * when the socket buffer is full (never, for 64 bytes on loopback). */
static void ec_send(struct ec_loop *l, long c)
{
	struct ec_conn *k = &l->conns[c];
	size_t size = (size_t)l->o->size;
	int blocked = 0;
	while (k->sent < size) {
		ssize_t w = send(k->fd, k->msg + k->sent, size - k->sent,
			MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			blocked = 1;
			break;
		}
		if (w < 0)
			ec_die("connection %ld: send: %s", c, strerror(errno));
		k->sent += (size_t)w;
	}
	ec_watch(l, c, EPOLL_CTL_MOD, blocked ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Starts round trip k->seq on connection c. */
static void ec_start(struct ec_loop *l, long c)
{
	struct ec_conn *k = &l->conns[c];
	ec_fill(k->msg, (size_t)l->o->size, c, k->seq);
	k->sent = 0;
	k->got = 0;
	k->t_send = ec_now();
	ec_send(l, c);
}

/* Reads what is there of connection c's reply; at a whole reply checks
 * it, records the RTT and starts the next round trip.  Never reads past
 * the current reply, so a server that sends too much fails the next
 * check instead of passing unnoticed. */
static void ec_receive(struct ec_loop *l, long c)
{
	struct ec_conn *k = &l->conns[c];
	size_t size = (size_t)l->o->size;
	for (;;) {
		ssize_t r = recv(k->fd, k->rep + k->got, size - k->got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r < 0)
			ec_die("connection %ld: recv: %s", c, strerror(errno));
		if (r == 0)
			ec_die("connection %ld: the server closed it after %ld "
			       "round trips",
				c, k->seq);
		k->got += (size_t)r;
		if (k->got < size)
			continue;
		int64_t t = ec_now();
		if (k->sent != size || memcmp(k->msg, k->rep, size) != 0)
			ec_die("connection %ld: round trip %ld: the reply is "
			       "not the message sent",
				c, k->seq);
		l->rtt[l->nrtt++] = t - k->t_send;
		if (++k->seq == l->o->n) {
			/* Closing also removes it from the epoll set. */
			close(k->fd);
			k->fd = -1;
			l->open--;
			return;
		}
		ec_start(l, c);
		return;
	}
}

static void ec_run(struct ec_loop *l, int64_t deadline)
{
	for (long c = 0; c < l->o->conns; c++)
		ec_start(l, c);
	struct epoll_event evs[256];
	while (l->open > 0) {
		int64_t left = deadline - ec_now();
		if (left <= 0)
			ec_die("timed out after %ld s with %zu of %ld round "
			       "trips done",
				l->o->timeout_s, l->nrtt,
				l->o->conns * l->o->n);
		int ms = left > 1000000000 ? 1000 : (int)(left / 1000000) + 1;
		int n = epoll_wait(l->ep, evs, 256, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ec_die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			long c = (long)evs[i].data.u64;
			if (l->conns[c].fd < 0)
				continue;
			if (evs[i].events & EPOLLOUT)
				ec_send(l, c);
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				ec_receive(l, c);
		}
	}
}

/* }====== */

static int ec_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest rank over n sorted samples, in microseconds. */
static double ec_pct_us(const int64_t *v, size_t n, unsigned pct)
{
	size_t r = (n * pct + 99) / 100;
	return (double)v[r == 0 ? 0 : r - 1] / 1e3;
}

int main(int argc, char **argv)
{
	struct ec_opts o;
	ec_parse_args(argc, argv, &o);
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)o.port) };
	if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1)
		ec_die("-h wants an IPv4 address, not '%s'", o.host);

	struct ec_loop l = { .o = &o, .open = o.conns };
	size_t total = (size_t)o.conns * (size_t)o.n;
	l.conns = calloc((size_t)o.conns, sizeof *l.conns);
	l.rtt = malloc(total * sizeof *l.rtt);
	unsigned char *bufs = malloc((size_t)o.conns * 2 * (size_t)o.size);
	l.ep = epoll_create1(EPOLL_CLOEXEC);
	if (l.conns == NULL || l.rtt == NULL || bufs == NULL)
		ec_die("out of memory");
	if (l.ep < 0)
		ec_die("epoll_create1: %s", strerror(errno));

	int64_t t0 = ec_now(), deadline = t0 + o.timeout_s * 1000000000LL;
	for (long c = 0; c < o.conns; c++) {
		struct ec_conn *k = &l.conns[c];
		k->msg = bufs + (size_t)c * 2 * (size_t)o.size;
		k->rep = k->msg + o.size;
		k->fd = ec_connect(&sa, o.timeout_s);
		ec_watch(&l, c, EPOLL_CTL_ADD, EPOLLIN);
	}
	int64_t t1 = ec_now();
	ec_run(&l, deadline);
	int64_t t2 = ec_now();

	qsort(l.rtt, l.nrtt, sizeof l.rtt[0], ec_cmp);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	double secs = (double)(t2 - t1) / 1e9;
	printf("conns=%ld roundtrips=%zu size=%ld connect_ms=%.3f "
	       "total_ms=%.3f roundtrips_per_s=%.1f rtt_p50_us=%.1f "
	       "rtt_p99_us=%.1f rtt_max_us=%.1f cpu_ms=%.1f\n",
		o.conns, l.nrtt, o.size, (double)(t1 - t0) / 1e6,
		(double)(t2 - t1) / 1e6, (double)l.nrtt / secs,
		ec_pct_us(l.rtt, l.nrtt, 50), ec_pct_us(l.rtt, l.nrtt, 99),
		ec_pct_us(l.rtt, l.nrtt, 100), cpu_ms);
	close(l.ep);
	free(bufs);
	free(l.rtt);
	free(l.conns);
	return l.nrtt == total ? 0 : 1;
}
