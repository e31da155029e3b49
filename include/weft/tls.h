/* TLS streams over weft streams: libweft-tls (CMake target weft::weft-tls,
 * pkg-config module weft-tls), built when OpenSSL 3 is found.  Not part of
 * the umbrella header weft.h: include <weft/tls.h> and link weft-tls.
 *
 * A weft_tls_t is a TLS 1.2/1.3 connection (OpenSSL) whose records travel
 * over a weft_stream_t (include/weft/net.h) through that stream's own
 * read and write calls, so every wait of a TLS call is a wait of a plain
 * stream call: it is a checkpoint, cancellation and the deadlines of the
 * enclosing scopes apply to it, and so does the virtual clock.
 *
 * Contexts: a weft_tls_ctx_t holds what connections share: the role
 * (client or server), the trusted CAs, the server's certificate and key,
 * the ALPN protocols, the handshake timeout.  A client verifies the
 * server's certificate by default (the system's CAs, or ca_file) and
 * checks that it names the host given to weft_tls_connect; a server does
 * not ask for client certificates.
 *
 * Cancellation (as plain streams, net.h):
 *   - handshake: a cancelled or timed-out handshake leaves nothing: the
 *     stream it was given is closed.
 *   - read: a cancelled read consumed no byte of plaintext: the next read
 *     returns what the cancelled one would have.
 *   - write: a write cancelled after it started is the exception, always
 *     (unlike plain streams, even when no byte reached the kernel: its
 *     records were sealed, and a TLS record cannot be taken back): the
 *     TLS stream's write side is then broken, later writes and shutdown
 *     return WEFT_ECLOSED, and the stream should be closed.  The same
 *     holds for records a read has to send (a TLS 1.3 key update's
 *     answer): a read cancelled while sending them still consumed no
 *     plaintext, but the write side is broken.
 *
 * Concurrency: one task may read and another write the same TLS stream
 * at the same time; two concurrent readers (or writers) get -EBUSY.  The
 * OpenSSL connection is used under a mutex held only around OpenSSL calls
 * (never across a wait), and ciphertext is sent by one task at a time
 * (a weft lock); records a read produces (a TLS 1.3 key update's answer)
 * are sent by the reader, or by a writer already sending.
 *
 * Errors: besides those of the stream calls,
 *   WEFT_ETLS_VERIFY     the peer's certificate failed verification
 *                        (untrusted CA, expired, wrong host name...);
 *   WEFT_ETLS            the TLS protocol failed (handshake refused, no
 *                        shared protocol version or cipher, a bad record,
 *                        an alert from the peer);
 *   WEFT_ETLS_TRUNCATED  the peer closed the connection without
 *                        close_notify: the data may have been cut short
 *                        (an error, not the end of the stream);
 *   -ETIMEDOUT           the handshake timeout passed.
 * The reason in words (OpenSSL's, e.g. "certificate has expired" or
 * "hostname mismatch") goes to the caller's `why` buffer for a failed
 * context or handshake, and to weft_tls_error_text for a TLS stream.
 *
 * Typical client:
 *     weft_tls_ctx_options_t o = { .alpn = "http/1.1" };
 *     weft_tls_ctx_create(&ctx, &o, why, sizeof why);
 *     weft_tcp_connect(&s, "example.org", 443);
 *     rc = weft_tls_connect(&t, s, ctx, "example.org", why, sizeof why);
 *     weft_tls_write(t, req, len); n = weft_tls_read(t, buf, sizeof buf);
 *     weft_tls_close(t);     // close_notify, then the stream's close
 *     weft_tls_ctx_destroy(ctx); */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weft/error.h"
#include "weft/export.h"
#include "weft/net.h"

WEFT_BEGIN_DECLS

/* A context (shared by connections) and one TLS stream (opaque). */
typedef struct weft_tls_ctx weft_tls_ctx_t;
typedef struct weft_tls weft_tls_t;

/* The default handshake timeout: 10 seconds. */
#define WEFT_TLS_HANDSHAKE_TIMEOUT_DEFAULT ((int64_t)10000000000)

/* Options of weft_tls_ctx_create; zero-initialise the ones not used. */
typedef struct weft_tls_ctx_options {
	int server; /* 0: a client context; 1: a server context */
	/* PEM file of trusted CA certificates; NULL: the system's (clients).
	 */
	const char *ca_file;
	/* Nonzero turns certificate and host name verification off
	 * (clients; for tests and debugging only). */
	int insecure_no_verify;
	/* PEM certificate chain and private key; required for servers. */
	const char *cert_file;
	const char *key_file;
	/* ALPN protocols, comma-separated in order of preference (for
	 * example "h2,http/1.1"); NULL: no ALPN.  A server picks the first
	 * of its own that the client offers, and goes on without ALPN when
	 * there is none. */
	const char *alpn;
	/* Handshake timeout in ns: 0 gives
	 * WEFT_TLS_HANDSHAKE_TIMEOUT_DEFAULT, a negative value none (the
	 * enclosing scopes still bound it).  Also bounds the close_notify
	 * weft_tls_close sends. */
	int64_t handshake_timeout_ns;
} weft_tls_ctx_options_t;

/* What it does: creates a context from opts (copied: opts and its
 * strings may be freed after the call), loading the CA file (or the
 * system's CAs), the certificate and the key.
 * Ownership: the caller owns *out; free with weft_tls_ctx_destroy once
 * every TLS stream made with it is closed.
 * Errors: -EINVAL (NULL out or opts, a server without cert_file and
 * key_file, an ALPN list with an empty or over-long name),
 * WEFT_ETLS (a file could not be loaded, or the key does not match the
 * certificate: the reason in why), -ENOMEM.  why (may be NULL) receives
 * a NUL-terminated reason on failure, cut at why_len - 1.
 * Checkpoint: no (it reads files with blocking I/O).
 * Threads: any thread. */
WEFT_EXTERN int weft_tls_ctx_create(weft_tls_ctx_t **out,
	const weft_tls_ctx_options_t *opts, char *why, size_t why_len);

/* What it does: frees ctx (NULL is ignored).
 * Ownership: ctx is invalid afterwards; no TLS stream may still use it.
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_tls_ctx_destroy(weft_tls_ctx_t *ctx);

/* What it does: runs the client handshake over s with a client context:
 * sends host as the SNI server name (unless host is a numeric address),
 * verifies the server's certificate and that it names host (a name, or
 * a numeric address matched against the certificate's IP entries), and
 * offers ctx's ALPN protocols.  The handshake is bounded by ctx's
 * timeout and by the enclosing scopes.
 * Ownership: takes s whatever the result: on success *out owns it
 * (weft_tls_close closes it), on failure it is closed.  The caller owns
 * *out; ctx must outlive it.
 * Errors: -EINVAL (NULL out, s or ctx; a server ctx; host NULL while
 * verification is on; host empty or of 256 bytes or more),
 * WEFT_ETLS_VERIFY, WEFT_ETLS, WEFT_ETLS_TRUNCATED (the peer closed
 * during the handshake), -ETIMEDOUT (ctx's handshake timeout),
 * -ECANCELED, -ENOMEM, and the errors of weft_stream_read and
 * weft_stream_write.  why (may be NULL) receives the reason on failure.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tls_connect(weft_tls_t **out, weft_stream_t *s,
	weft_tls_ctx_t *ctx, const char *host, char *why, size_t why_len);

/* What it does: runs the server handshake over s with a server context
 * (an accepted stream), choosing the ALPN protocol.
 * Ownership, errors, checkpoint, threads: as weft_tls_connect (-EINVAL
 * for a client ctx). */
WEFT_EXTERN int weft_tls_accept(weft_tls_t **out, weft_stream_t *s,
	weft_tls_ctx_t *ctx, char *why, size_t why_len);

/* What it does: as weft_tls_accept, for a stream the caller keeps: a
 * weft_serve handler's, which weft_serve closes when the handler
 * returns (include/weft/net.h).  s is used, not taken: a failed
 * handshake leaves it open (and unusable), and weft_tls_close sends
 * close_notify, shuts s's write side down (weft_stream_shutdown: the
 * peer reads the end of the stream, and a later weft_stream_write on s
 * is WEFT_ECLOSED) and frees t without closing s.
 * Ownership: s stays the caller's and must outlive *out; the caller owns
 * *out.
 * Errors, checkpoint, threads: as weft_tls_accept. */
WEFT_EXTERN int weft_tls_accept_borrowed(weft_tls_t **out, weft_stream_t *s,
	weft_tls_ctx_t *ctx, char *why, size_t why_len);

/* What it does: reads up to len (> 0) bytes of plaintext: waits until at
 * least one is available, then returns what is there.
 * Returns: the number of bytes (> 0); 0 at the end of the stream (the
 * peer sent close_notify); or a negative code.
 * Errors: -EINVAL (NULL, len 0), -EBUSY (another task is reading),
 * WEFT_ETLS_TRUNCATED (the connection ended without close_notify),
 * WEFT_ETLS (a protocol failure; the stream is then unusable), the
 * errors of weft_stream_read (-ECONNRESET, -ECANCELED: no byte was
 * consumed, ...).  weft_tls_error_text tells more.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN ssize_t weft_tls_read(weft_tls_t *t, void *buf, size_t len);

/* What it does: reads exactly len bytes (several reads if needed).
 * Returns: 0 when buf is full; WEFT_EEND if the stream ended first (*got
 * says how many bytes arrived); or a read error.  On -ECANCELED the
 * bytes already read are in buf and counted in *got (consumed).  got may
 * be NULL.
 * Errors: as weft_tls_read.  Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tls_read_exactly(weft_tls_t *t, void *buf, size_t len,
	size_t *got);

/* What it does: encrypts and sends all len bytes; returns once the
 * kernel has taken the records (backpressure, as weft_stream_write).
 * Errors: -EINVAL (NULL, or NULL buf with len > 0), -EBUSY (another task
 * is writing), WEFT_ECLOSED (write side shut down, or broken by a
 * cancelled or failed write), WEFT_ETLS, -EPIPE, -ECONNRESET,
 * -ECANCELED (the write side is then broken: see the top of this file),
 * -ENOMEM.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tls_write(weft_tls_t *t, const void *buf, size_t len);

/* What it does: sends close_notify (the TLS end of stream) and
 * half-closes the stream below; reading continues to work (the peer's
 * own close_notify reads as 0).  A second shutdown returns 0.
 * Errors: -EINVAL, -EBUSY (a write is in progress), WEFT_ECLOSED (the
 * write side is broken), -ECANCELED (the write side is then broken), and
 * those of weft_stream_write.
 * Checkpoint: yes.  Threads: weft fiber. */
WEFT_EXTERN int weft_tls_shutdown(weft_tls_t *t);

/* What it does: sends close_notify if the write side is whole and was
 * not shut down, then shuts the stream's write side down (bounded by
 * ctx's handshake timeout; skipped when the calling task is cancelled),
 * closes the stream below (unless t came from weft_tls_accept_borrowed)
 * and frees t.  No other task may be
 * inside a call on t.
 * Ownership: t is invalid after the call.
 * Errors: -EINVAL (NULL).  Always frees t.
 * Checkpoint: yes (the close_notify's write; its failure is not
 * reported).  Threads: weft fiber. */
WEFT_EXTERN int weft_tls_close(weft_tls_t *t);

/* What it does: the ALPN protocol agreed in the handshake ("" when
 * none).
 * Ownership: a string owned by t, valid until weft_tls_close.
 * Errors: NULL gives "".  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN const char *weft_tls_alpn(const weft_tls_t *t);

/* What it does: the SNI server name the client sent (server side; ""
 * when none), or the host given to weft_tls_connect (client side).
 * Ownership, errors, checkpoint, threads: as weft_tls_alpn. */
WEFT_EXTERN const char *weft_tls_server_name(const weft_tls_t *t);

/* What it does: the result of the peer certificate's verification in
 * words: "ok", OpenSSL's reason ("certificate has expired"), or "no
 * verification" (a server, or verification turned off).
 * Ownership: a static string.  Errors: NULL gives "".
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN const char *weft_tls_verify_result(const weft_tls_t *t);

/* What it does: the reason of t's last TLS failure (WEFT_ETLS,
 * WEFT_ETLS_TRUNCATED) in words, "" when none.
 * Ownership: owned by t, valid until its next call or close.
 * Errors: NULL gives "".  Checkpoint: no.
 * Threads: any thread (no call on t running). */
WEFT_EXTERN const char *weft_tls_error_text(const weft_tls_t *t);

/* What it does: the stream below t, for its options and addresses
 * (weft_stream_set_nodelay, weft_stream_peer_address); reading or
 * writing it directly breaks the TLS stream.
 * Ownership: still owned by t.  Errors: NULL gives NULL.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN weft_stream_t *weft_tls_stream(weft_tls_t *t);

WEFT_END_DECLS

#endif
