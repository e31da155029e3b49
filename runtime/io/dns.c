/* Name resolution (include/weft/dns.h).
 *
 * Problem: getaddrinfo(3) blocks for as long as the resolver takes
 * (seconds when a server does not answer) and cannot be interrupted.
 *
 * Approach: an I/O operation whose `start` submits uv_getaddrinfo, which
 * runs the lookup on libuv's pool and calls back on the I/O thread.  The
 * libuv request lives on the heap, not in the fiber's frame, so that a
 * cancelled call can leave without it: `cancel` tries uv_cancel (which
 * withdraws a lookup still queued; its callback then sees UV_ECANCELED),
 * and if the lookup is already running it orphans the request (req->op =
 * NULL) and completes the operation with -ECANCELED at once; the callback
 * later frees the orphan and its result.  The callback and `cancel` both
 * run on the I/O thread, so the orphaning cannot race the callback.
 *
 * weft_getnameinfo is the same operation around uv_getnameinfo.
 *
 * Invariants
 *   1. req->op is the I/O thread's; NULL means orphaned (nobody waits).
 *   2. Exactly one of the callback (not orphaned) and `cancel` (orphaning)
 *      completes the operation.
 *   3. An orphan keeps the loop alive until its callback: the I/O thread's
 *      shutdown runs the loop until no request is active.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/task.h"
#include "io/io.h"
#include "io/ioop.h"
#include "weft/dns.h"

struct dns_req {
	uv_getaddrinfo_t req;
	struct dns_op *op; /* NULL once orphaned (invariant 1) */
};

struct dns_op {
	struct weft__ioop op;
	struct dns_req *r;
	const char *host;
	const char *service;
	const struct addrinfo *hints;
	struct addrinfo *res; /* result, written before completion */
	bool orphaned;	      /* r belongs to its callback now */
};

static void dns_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct dns_req *r = WEFT__CONTAINER_OF(req, struct dns_req, req);
	struct dns_op *d = r->op;
	if (d == NULL) {
		/* Orphaned by a cancellation. */
		uv_freeaddrinfo(res);
		weft__free(r);
		return;
	}
	d->res = status == 0 ? res : NULL;
	if (status != 0)
		uv_freeaddrinfo(res);
	/* The fiber frees r once it is woken: libuv is done with the request
	 * once this callback runs. */
	int rc = status == 0		    ? 0
		: status == UV_EAI_CANCELED ? -ECANCELED
					    : weft__io_uverr(status);
	weft__ioop_complete(&d->op, rc);
}

static void dns_start(weft__io_t *io, struct weft__ioop *op)
{
	struct dns_op *d = WEFT__CONTAINER_OF(op, struct dns_op, op);
	struct dns_req *r = d->r;
	r->op = d;
	int rc = uv_getaddrinfo(&io->loop, &r->req, dns_done, d->host,
		d->service, d->hints);
	if (rc < 0)
		weft__ioop_complete(op, weft__io_uverr(rc));
}

static void dns_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct dns_op *d = WEFT__CONTAINER_OF(op, struct dns_op, op);
	struct dns_req *r = d->r;
	/* Queued: withdrawn; dns_done runs with UV_EAI_CANCELED and
	 * completes the operation (it then reports -ECANCELED). */
	if (uv_cancel((uv_req_t *)&r->req) == 0)
		return;
	r->op = NULL; /* running: orphan it (invariant 2) */
	d->orphaned = true;
	weft__ioop_complete(op, -ECANCELED);
}

int weft_getaddrinfo(const char *host, const char *service,
	const struct addrinfo *hints, struct addrinfo **res)
{
	if (res == NULL || (host == NULL && service == NULL))
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	struct addrinfo def;
	if (hints == NULL) {
		memset(&def, 0, sizeof def);
		def.ai_family = AF_UNSPEC;
		def.ai_socktype = SOCK_STREAM;
		hints = &def;
	}
	struct dns_op d = { .host = host, .service = service, .hints = hints };
	d.r = weft__calloc(1, sizeof *d.r);
	if (d.r == NULL)
		return -ENOMEM;
	d.op.start = dns_start;
	d.op.cancel = dns_cancel;
	d.op.what = "getaddrinfo";
	int rc = weft__ioop_run(&d.op);
	/* Unless orphaned, r is the fiber's again: never submitted, refused,
	 * or its callback ran (its last access). */
	if (!d.orphaned)
		weft__free(d.r);
	if (rc < 0)
		return rc;
	*res = d.res;
	return 0;
}

void weft_freeaddrinfo(struct addrinfo *res)
{
	if (res != NULL)
		uv_freeaddrinfo(res);
}

/* {======================================================= getnameinfo */

struct ni_req {
	uv_getnameinfo_t req;
	struct ni_op *op; /* NULL once orphaned (invariant 1) */
};

struct ni_op {
	struct weft__ioop op;
	struct ni_req *r;
	const struct sockaddr *addr;
	int flags;
	bool orphaned; /* r belongs to its callback now */
};

static void ni_done(uv_getnameinfo_t *req, int status, const char *host,
	const char *service)
{
	(void)host;
	(void)service;
	struct ni_req *r = WEFT__CONTAINER_OF(req, struct ni_req, req);
	struct ni_op *d = r->op;
	if (d == NULL) {
		weft__free(r); /* orphaned by a cancellation */
		return;
	}
	/* The names stay in req->host and req->service, which the fiber
	 * copies once woken (libuv is done with req now). */
	int rc = status == 0		    ? 0
		: status == UV_EAI_CANCELED ? -ECANCELED
					    : weft__io_uverr(status);
	weft__ioop_complete(&d->op, rc);
}

static void ni_start(weft__io_t *io, struct weft__ioop *op)
{
	struct ni_op *d = WEFT__CONTAINER_OF(op, struct ni_op, op);
	struct ni_req *r = d->r;
	r->op = d;
	int rc = uv_getnameinfo(&io->loop, &r->req, ni_done, d->addr, d->flags);
	if (rc < 0)
		weft__ioop_complete(op, weft__io_uverr(rc));
}

static void ni_cancel(weft__io_t *io, struct weft__ioop *op)
{
	(void)io;
	struct ni_op *d = WEFT__CONTAINER_OF(op, struct ni_op, op);
	struct ni_req *r = d->r;
	if (uv_cancel((uv_req_t *)&r->req) == 0)
		return; /* ni_done completes it with UV_EAI_CANCELED */
	r->op = NULL;	/* running: orphan it (invariant 2) */
	d->orphaned = true;
	weft__ioop_complete(op, -ECANCELED);
}

/* Copies src into dst (cap bytes, 0: not wanted); -ENOSPC if it does not
 * fit. */
static int ni_copy(char *dst, size_t cap, const char *src)
{
	if (dst == NULL || cap == 0)
		return 0;
	size_t n = strlen(src);
	if (n >= cap)
		return -ENOSPC;
	memcpy(dst, src, n + 1);
	return 0;
}

int weft_getnameinfo(const struct sockaddr *addr, int flags, char *host,
	size_t hostlen, char *serv, size_t servlen)
{
	if (addr == NULL ||
		(addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
		((host == NULL || hostlen == 0) &&
			(serv == NULL || servlen == 0)))
		return -EINVAL;
	if (weft__task_current() == NULL)
		return WEFT_ENOTFIBER;
	struct ni_op d = { .addr = addr, .flags = flags };
	d.r = weft__calloc(1, sizeof *d.r);
	if (d.r == NULL)
		return -ENOMEM;
	d.op.start = ni_start;
	d.op.cancel = ni_cancel;
	d.op.what = "getnameinfo";
	int rc = weft__ioop_run(&d.op);
	if (d.orphaned)
		return rc;
	if (rc == 0)
		rc = ni_copy(host, hostlen, d.r->req.host);
	if (rc == 0)
		rc = ni_copy(serv, servlen, d.r->req.service);
	weft__free(d.r);
	return rc;
}

/* }======================================================= */
