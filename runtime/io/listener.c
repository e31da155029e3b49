/* Listeners and the serve loop (include/weft/net.h).
 *
 * A listener is a socket core (sock.c) around a listening descriptor.
 * accept4 runs on the accepting worker; when no connection is queued the
 * task parks on readability, so a cancelled accept took nothing: the
 * connection stays in the kernel's queue for the next accept.  Out of
 * descriptors, accept4 fails with EMFILE and leaves the connection queued
 * too (unlike libuv's uv_accept path, which drops it), so a server can
 * wait and retry.
 *
 * Handles: a listener is a socket record (io.h) and users hold
 * generation-tagged handles; every public function checks its handle and
 * takes the call's reference in one step (listener_take), so a call on a
 * closed listener is reported as a misuse, never run on a record that
 * may belong to another listener by then.
 *
 * weft_serve waits for a connection or the stop event at once: it runs in
 * a private group whose owner body is the accept loop and whose one child
 * waits for `stop` and then cancels the group; the loop's accept returns
 * -ECANCELED and the loop ends.  The handlers go to the caller's group,
 * so they outlive serve (the soft phase of a shutdown).
 *
 * One connection never ends the server (the policy net.h states): a
 * handler's failure is reported and swallowed by the task's wrapper, and
 * a connection task that cannot start (no stack, no task record) is
 * started with weft_group_start rather than spawned, so that failure
 * comes back to the loop instead of failing the caller's group (a
 * failure there would cancel every live connection, rule 4). */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/common.h"
#include "base/diag.h"
#include "core/records.h"
#include "core/task.h"
#include "io/sock.h"
#include "io/stream.h"
#include "runtime.h"
#include "sync/waitq.h"
#include "weft/cancel.h"
#include "weft/dns.h"
#include "weft/net.h"
#include "weft/time.h"

struct weft_listener {
	/* First: sock.c's free_fn casts back, and the record's life word
	 * (generation and references) is at the handle's address. */
	struct weft__sock sk;
	bool tcp;
	int port;	       /* TCP: the bound port */
	atomic_bool accepting; /* one accepting task at a time */
};

static void listener_free(struct weft__sock *sk)
{
	weft__io_rec_put(sk->rt, WEFT__IO_REC_LISTENER, &sk->rec);
}

/* The listener behind handle h, with a reference taken for the call, or
 * NULL: h's listener was closed (reported, naming `call`). */
static struct weft_listener *listener_take(const weft_listener_t *h,
	const char *call)
{
	return weft__io_rec_check(h, call, "listener");
}

/* Binds and listens on a new socket for addr; *out on success. */
static WEFT_FIBER_FN int listener_open(weft_listener_t **out,
	const struct sockaddr *addr, socklen_t len, int backlog, int flags)
{
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	struct weft_listener *l = weft__io_rec_get(self->rt,
		WEFT__IO_REC_LISTENER, sizeof *l);
	if (l == NULL)
		return -ENOMEM;
	int fd = socket(addr->sa_family,
		SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = weft__sock_errno();
		weft__io_rec_put(self->rt, WEFT__IO_REC_LISTENER, &l->sk.rec);
		return rc;
	}
	int one = 1;
	if (addr->sa_family != AF_UNIX &&
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		goto fail;
	if ((flags & WEFT_LISTEN_REUSEPORT) &&
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		goto fail;
	if (bind(fd, addr, len) < 0 ||
		listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
		goto fail;
	l->tcp = addr->sa_family != AF_UNIX;
	l->port = -EINVAL;
	if (l->tcp) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
			goto fail;
		l->port = ss.ss_family == AF_INET6
			? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			: ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	atomic_init(&l->accepting, false);
	weft__sock_init(&l->sk, self->rt, fd, listener_free);
	*out = weft__io_rec_handle(&l->sk.rec);
	return 0;
fail:
	rc = weft__sock_errno();
	close(fd);
	weft__io_rec_put(self->rt, WEFT__IO_REC_LISTENER, &l->sk.rec);
	return rc;
}

int weft_tcp_listen(weft_listener_t **out, const char *host, int port,
	int backlog)
{
	return weft_tcp_listen_flags(out, host, port, backlog, 0);
}

int weft_tcp_listen_flags(weft_listener_t **out, const char *host, int port,
	int backlog, int flags)
{
	if (out == NULL || port < 0 || port > 65535 || backlog < 0 ||
		(flags & ~WEFT_LISTEN_REUSEPORT))
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	if (host == NULL)
		host = "0.0.0.0";
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = weft__sock_resolve(host, port, AF_UNSPEC, SOCK_STREAM,
		AI_PASSIVE, &ss, &len);
	if (rc < 0)
		return rc;
	return listener_open(out, (struct sockaddr *)&ss, len, backlog, flags);
}

int weft_unix_listen(weft_listener_t **out, const char *path, int backlog)
{
	if (out == NULL || path == NULL || path[0] == '\0' || backlog < 0)
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	struct sockaddr_un un;
	int rc = weft__sock_addr_un(&un, path);
	if (rc < 0)
		return rc;
	return listener_open(out, (struct sockaddr *)&un, sizeof un, backlog,
		0);
}

int weft_listener_port(const weft_listener_t *h)
{
	if (h == NULL)
		return -EINVAL;
	struct weft_listener *l = listener_take(h, "weft_listener_port");
	if (l == NULL)
		return WEFT_EMISUSE;
	int port = l->port;
	weft__sock_unref(&l->sk);
	return port;
}

int weft_listener_close(weft_listener_t *h)
{
	if (h == NULL)
		return -EINVAL;
	/* As weft_stream_close: one CAS decides and takes the closer's
	 * reference; a second close, or any call after this one, finds the
	 * generation changed (io.h). */
	if (!weft__io_rec_close(h)) {
		weft__io_rec_misuse(h, "weft_listener_close", "listener");
		return WEFT_EMISUSE;
	}
	struct weft_listener *l = weft__handle_addr(h);
	bool first = weft__sock_close(&l->sk);
	WEFT_ASSERT(first, "weft_listener_close: socket closed twice");
	weft__sock_unref(&l->sk);
	return 0;
}

int weft_listener_accept(weft_listener_t *h, weft_stream_t **out)
{
	if (h == NULL || out == NULL)
		return -EINVAL;
	struct weft_listener *l = listener_take(h, "weft_listener_accept");
	if (l == NULL)
		return WEFT_EMISUSE;
	/* The accept side passes from one task to the next (only the flag
	 * matters; the kernel orders the accepts). */
	struct weft_task *self;
	int rc = weft__sock_call_begin(&l->sk, &l->accepting, &self);
	if (rc < 0) {
		weft__sock_unref(&l->sk);
		return rc;
	}
	/* Allocate first, so that an accepted connection is never dropped
	 * for lack of memory. */
	struct weft_stream *s = weft__stream_alloc(self->rt);
	if (s == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (!weft__sock_enter(&l->sk)) {
			rc = WEFT_ECLOSED;
			break;
		}
		int fd = accept4(l->sk.fd, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
		int err = fd < 0 ? weft__sock_errno() : 0;
		weft__sock_leave(&l->sk);
		if (fd >= 0) {
			weft__stream_init(s, self->rt, fd, l->tcp);
			*out = weft__stream_handle(s);
			s = NULL;
			rc = 0;
			break;
		}
		/* A connection reset before we took it: take the next. */
		if (err == -EINTR || err == -ECONNABORTED)
			continue;
		if (err != -EAGAIN) {
			rc = err;
			break;
		}
		rc = weft__sock_wait(&l->sk, UV_READABLE, "accept");
		if (rc < 0)
			break;
	}
	if (s != NULL)
		weft__stream_discard(self->rt, s);
out:
	weft__sock_call_end(&l->sk, &l->accepting);
	weft__sock_unref(&l->sk);
	return rc;
}

/* {======================================================= serve */

/* What one connection's task needs, in the accept loop's frame: the loop
 * waits in weft_group_start until the task has copied it. */
struct serve_conn {
	weft_conn_fn handler;
	void *arg;
	const weft_serve_opts_t *opts;
	weft_stream_t *s;
	/* Set by the task before started(): from then on the task owns s.
	 * The start's wake orders the write before the loop's read. */
	bool ran;
};

/* A connection failed (docs of weft_serve_opts): tell the caller's
 * callback, or write one line on stderr. */
static void serve_report(const weft_serve_opts_t *o, void *arg, int code,
	const char *msg)
{
	if (o != NULL && o->on_conn_failure != NULL)
		o->on_conn_failure(code, msg, arg);
	else
		weft__diag("weft_serve: connection failed: %s: %s",
			weft_strerror(code), msg);
}

static WEFT_FIBER_FN int serve_conn_main(void *p)
{
	struct serve_conn *pc = p;
	struct serve_conn c = *pc;
	pc->ran = true;
	/* Moves the task into g and resumes the accept loop; pc (its frame)
	 * is not touched after this. */
	weft_task_started(NULL);
	int rc = c.handler(c.s, c.arg);
	weft_stream_close(c.s);
	if (rc == 0 || rc == -ECANCELED)
		return rc;
	/* The handler failed: that ends its connection (closed above), not
	 * the server, so it is reported here and not returned (a failure
	 * would cancel g and with it every other connection, rule 4). */
	struct weft_task *self = weft__task_current();
	serve_report(c.opts, c.arg, rc,
		self->fail_msg != NULL ? self->fail_msg : "the handler failed");
	return 0;
}

struct serve_stop {
	weft_event_t *stop;
	weft_group_t *g; /* serve's private group */
};

static WEFT_FIBER_FN int serve_stop_main(void *p)
{
	struct serve_stop *st = p;
	int rc = weft_event_wait(st->stop);
	if (rc == 0)
		weft_group_cancel(st->g, "weft_serve: stop event set");
	return 0;
}

/* Hands one accepted connection to a task in g.  The task is started,
 * not spawned: until it calls started() it belongs to this loop (rule
 * 14), so a task that cannot start (no stack for it: it never ran) is a
 * failure returned here, not one that cancels g.  That costs one wait
 * per connection for the new task's first run, which happens next on
 * this worker in the common case.  The start runs in a shielded scope:
 * the stop watcher may cancel the loop's scope while the new task has
 * not yet called started(), and a task started under a cancelled scope
 * stays cancelled (rule 16), so an accepted connection would have met a
 * handler cancelled by nobody but serve.  Accepted means handled, as
 * with Trio's serve_listeners; the next accept sees the stop.  Returns 0,
 * or an error that ends the loop (g closed). */
static WEFT_FIBER_FN int serve_hand_over(weft_group_t *g, weft_conn_fn handler,
	void *arg, const weft_serve_opts_t *opts, weft_stream_t *s)
{
	struct serve_conn c = { .handler = handler,
		.arg = arg,
		.opts = opts,
		.s = s,
		.ran = false };
	/* No memory for the shield: the start runs unshielded (only a
	 * stop in that window cancels the handler). */
	weft_scope_t *shield = NULL;
	(void)weft_scope_open(&shield, WEFT_FOREVER, WEFT_SCOPE_SHIELD);
	int rc = weft_group_start_named(g, "weft_serve connection",
		serve_conn_main, &c, NULL);
	if (shield != NULL) {
		weft_scope_exit(shield);
		weft_scope_destroy(shield);
	}
	if (c.ran)
		return 0; /* the task owns s, and reports its own failure */
	weft_stream_close(s);
	if (rc == WEFT_ECLOSED)
		return rc;    /* g was joined: nothing more can be served */
	if (rc != -ECANCELED) /* serve is stopping: the next accept says so */
		serve_report(opts, arg, rc,
			"no task could be started for the connection");
	return 0;
}

/* The accept loop, in the body of serve's private group. */
static WEFT_FIBER_FN int serve_loop(weft_listener_t *l, weft_group_t *g,
	weft_conn_fn handler, void *arg, const weft_serve_opts_t *opts)
{
	weft_event_t *stop = opts != NULL ? opts->stop : NULL;
	for (;;) {
		if (stop != NULL && weft_event_is_set(stop))
			return 0;
		weft_stream_t *s;
		int rc = weft_listener_accept(l, &s);
		if (rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS ||
			rc == -ENOMEM) {
			/* Out of resources: the connection waits in the
			 * kernel's queue.  The caller may free some (close
			 * idle connections); try again 100 ms later. */
			if (opts != NULL && opts->on_exhausted != NULL)
				opts->on_exhausted(rc, arg);
			rc = weft_sleep(100 * 1000 * 1000);
			if (rc < 0)
				return rc;
			continue;
		}
		if (rc < 0)
			return rc;
		rc = serve_hand_over(g, handler, arg, opts, s);
		if (rc < 0)
			return rc;
	}
}

int weft_serve_opts(weft_listener_t *l, weft_group_t *g, weft_conn_fn handler,
	void *arg, const weft_serve_opts_t *opts)
{
	if (l == NULL || g == NULL || handler == NULL)
		return -EINVAL;
	weft_event_t *stop = opts != NULL ? opts->stop : NULL;
	if (stop == NULL)
		return serve_loop(l, g, handler, arg, opts);
	weft_group_t *own;
	int rc = weft_group_open(&own);
	if (rc < 0)
		return rc;
	struct serve_stop st = { .stop = stop, .g = own };
	rc = weft_group_spawn_literal(own, "weft_serve stop watcher",
		serve_stop_main, &st);
	if (rc == 0)
		rc = serve_loop(l, g, handler, arg, opts);
	/* Ends the watcher if the loop ended first. */
	weft_group_cancel(own, NULL);
	int jrc = weft_group_join(own, NULL);
	if (weft_event_is_set(stop) && (rc == -ECANCELED || rc == 0))
		return 0;
	return rc < 0 ? rc : jrc;
}

int weft_serve(weft_listener_t *l, weft_group_t *g, weft_conn_fn handler,
	void *arg, weft_event_t *stop)
{
	weft_serve_opts_t o = { .stop = stop };
	return weft_serve_opts(l, g, handler, arg, &o);
}

/* }======================================================= */
