#!/usr/bin/env python3
"""Raw HTTP/1.1 client for the weft-httpd integration tests.

    httpd_client.py PORT CHECK...

Each CHECK is one scenario (see CHECKS below) run against 127.0.0.1:PORT
over plain sockets, so that malformed, pipelined or trickled requests
reach the server byte for byte.  Scenarios run in parallel threads; every
wait is bounded.  Prints one line per scenario and exits 1 if any failed.
"""
import os
import socket
import sys
import threading
import time

PORT = 0


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    return s


def read_all(s, limit=20.0):
    """Everything until the server closes (b'' if it did not in time:
    then the second value is False)."""
    data = b""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def read_response(s, limit=10.0):
    """One response (head + Content-Length body), or None."""
    data = b""
    end = time.monotonic() + limit
    while b"\r\n\r\n" not in data and time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(1)
        except (socket.timeout, ConnectionResetError):
            return None
        if not chunk:
            return None
        data += chunk
    if b"\r\n\r\n" not in data:
        return None
    head = data.decode("latin-1")
    length = 0
    for line in head.split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = b""
    if not head.startswith("HEAD"):
        while len(body) < length and time.monotonic() < end:
            s.settimeout(max(0.05, end - time.monotonic()))
            try:
                chunk = s.recv(length - len(body))
            except (socket.timeout, ConnectionResetError):
                return None
            if not chunk:
                return None
            body += chunk
    return head, body


def exchange(raw, limit=10.0):
    """Sends raw, returns everything until the server closes."""
    s = connect()
    s.sendall(raw)
    data, closed = read_all(s, limit)
    s.close()
    return data.decode("latin-1"), closed


def status_of(text):
    return text.split(" ", 2)[1] if text.startswith("HTTP/1.1 ") else text[:40]


def expect_status(raw, want, close=True):
    text, closed = exchange(raw)
    got = status_of(text)
    if got != want:
        return "status %r, want %s (reply %r)" % (got, want, text[:200])
    if close and not closed:
        return "connection not closed after %s" % want
    return None


GET = b"GET / HTTP/1.1\r\nHost: t\r\n"
CHUNKED = b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


def check_head():
    s = connect()
    s.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + GET + b"\r\n")
    # The HEAD answer has no body: the GET answer must follow at once.
    data = b""
    end = time.monotonic() + 10
    while data.count(b"Hello, World!") < 1 and time.monotonic() < end:
        s.settimeout(1)
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    s.close()
    text = data.decode("latin-1")
    first = text.split("\r\n\r\n", 1)[0]
    if "Content-Length: 13" not in first:
        return "HEAD head: %r" % first
    if text.count("HTTP/1.1 200") != 2 or text.count("Hello, World!") != 1:
        return "HEAD then GET: %r" % text
    return None


def check_405():
    text, _ = exchange(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
                       b"Connection: close\r\n\r\n")
    if status_of(text) != "405" or "\r\nAllow: GET, HEAD\r\n" not in text:
        return "405 without Allow: %r" % text[:300]
    return None


def check_host():
    for raw, want in (
            (b"GET / HTTP/1.1\r\n\r\n", "400"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
            (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", "400"),
            (b"GET / HTTP/1.0\r\n\r\n", "200")):
        err = expect_status(raw, want)
        if err:
            return "%r: %s" % (raw, err)
    return None


def check_head_size():
    # 1000 fields of 9 bytes: a 9 KiB head whose names and values alone
    # are 5 KiB (what was counted before).
    raw = GET + b"".join(b"X%03d: v\r\n" % (i % 1000) for i in range(1000))
    err = expect_status(raw + b"\r\n", "431")
    if err:
        return "9 KiB head of short fields: " + err
    err = expect_status(b"\r\n" * 4100 + GET + b"\r\n", "431")
    if err:
        return "8 KiB of empty lines: " + err
    err = expect_status(GET + b"X: " + b"v" * 7000 + b"\r\n\r\n", "200",
                        close=False)
    if err:
        return "7 KiB head: " + err
    return None


def check_chunks():
    bad = (b"5 xx\r\nhello\r\n0\r\n\r\n",      # garbage after the size
           b"5;\x01\r\nhello\r\n0\r\n\r\n",     # extension not a token
           b"5\r\nhelloXY0\r\n\r\n",            # data not ended by CRLF
           b"5\rXhello\r\n0\r\n\r\n",           # CR without LF
           b"0 x\r\n\r\n",                      # last chunk line
           b" 5\r\nhello\r\n0\r\n\r\n",         # leading space
           b"fffffffffffffffff\r\n")            # overflow
    for body in bad:
        err = expect_status(CHUNKED + body, "400")
        if err:
            return "%r: %s" % (body, err)
    good = (b"5\r\nhello\r\n0\r\n\r\n",
            b"5 ; a=b;c=\"d e\"\r\nhello\r\n0\r\nT: x\r\n\r\n",
            b"005\r\nhe",)
    for body in good:
        s = connect()
        s.sendall(CHUNKED + body)
        if body.endswith(b"he"):
            time.sleep(0.2)  # a chunk split across reads
            s.sendall(b"llo\r\n0\r\n\r\n")
        r = read_response(s)
        s.close()
        if r is None or not r[0].startswith("HTTP/1.1 200"):
            return "%r: %r" % (body, r)
    return None


def check_upgrade():
    for first in (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                  b"Upgrade: x\r\n\r\n",
                  b"CONNECT t:80 HTTP/1.1\r\nHost: t\r\n\r\n"):
        text, closed = exchange(first + GET + b"\r\n")
        head = text.split("\r\n\r\n", 1)[0]
        if "Connection: close" not in head or not closed:
            return "%r: not closed explicitly: %r" % (first[:8], text[:300])
        if text.count("HTTP/1.1") != 1:
            return "%r: %r" % (first[:8], text[:300])
    return None


def trickle(head, step, limit):
    """Sends head, then step every 0.5 s; seconds until the server
    closed (None if it did not within limit)."""
    s = connect()
    start = time.monotonic()
    s.sendall(head)
    s.settimeout(0.5)
    while time.monotonic() - start < limit:
        try:
            if s.recv(4096) == b"":
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            break
        try:
            s.sendall(step)
        except (BrokenPipeError, ConnectionResetError):
            break
    else:
        s.close()
        return None
    s.close()
    return time.monotonic() - start


def check_trickle():
    # Run with -i 3 -H 2 -B 2: each must be closed well before 15 s.
    cases = (("empty lines", b"\r\n", b"\r\n"),
             ("head", b"GET / HTTP/1.1\r\n", b"X: y\r\n"),
             ("body", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100"
              b"\r\n\r\n", b"x"),
             ("chunks", CHUNKED + b"64\r\n", b"x"))
    out = {}

    def run(name, head, step):
        out[name] = trickle(head, step, 15)

    ts = [threading.Thread(target=run, args=c) for c in cases]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    late = [n for n, v in out.items() if v is None]
    if late:
        return "still open after 15 s: %s" % ", ".join(late)
    return None


def check_fail():
    # Run with -F: GET /fail fails its handler; the others go on.
    keep = connect()
    keep.sendall(GET + b"\r\n")
    if read_response(keep) is None:
        return "no first answer"
    text, closed = exchange(b"GET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
    if not closed or text:
        return "GET /fail: %r (closed %s)" % (text, closed)
    keep.sendall(GET + b"\r\n")
    r = read_response(keep)
    keep.close()
    if r is None or r[1] != b"Hello, World!":
        return "the kept connection did not answer after the failure"
    return expect_status(GET + b"Connection: close\r\n\r\n", "200")


def check_shed():
    # Run at a low fd limit: 150 idle clients fill the server's fds
    # (and its listen queue); a new client must still get an answer.
    idle = []
    for _ in range(150):
        idle.append(connect())
    s = connect()
    s.sendall(GET + b"\r\n")
    r = read_response(s, 15)
    s.close()
    for c in idle:
        c.close()
    if r is None or r[1] != b"Hello, World!":
        return "a new client got no answer at the fd limit"
    return None


def check_idle_release():
    # 20 keep-alive connections answered once, then idle for 2.5 s: the
    # server (-R 1) moves them to waits that give their stacks back.  A
    # dump (SIGUSR1 to HTTPD_PID, whose WEFT_DUMP_SIGNAL is USR1) shows
    # them to the caller; then every connection is answered again (its
    # stack came back intact).
    import signal

    def all_answered(conns):
        for c in conns:
            c.sendall(GET + b"\r\n")
        for c in conns:
            r = read_response(c, 10)
            if r is None or r[1] != b"Hello, World!":
                return False
        return True

    conns = [connect() for _ in range(20)]
    if not all_answered(conns):
        return "no first answer"
    time.sleep(2.5)
    os.kill(int(os.environ["HTTPD_PID"]), signal.SIGUSR1)
    time.sleep(1.0)
    if not all_answered(conns):
        return "an idle connection was not answered again"
    for c in conns:
        c.close()
    return None


# Seconds the load scenarios (resets, slow) run: 10, or CLIENT_SECS from
# the environment (tools/net/soak.sh runs them for most of a minute).
LOAD_SECS = float(os.environ.get("CLIENT_SECS", "10"))


def check_resets():
    # For LOAD_SECS: clients that reset (RST, SO_LINGER 0) mid-request,
    # after a request, or right away.  Only the server's health is
    # judged, by the caller (answers, fds, memory).
    import struct
    parts = (b"", b"GET / HT", GET, GET + b"\r\n", CHUNKED + b"5\r\nhe")
    end = time.monotonic() + LOAD_SECS
    i = 0
    while time.monotonic() < end:
        try:
            s = connect()
            s.sendall(parts[i % len(parts)])
            if i % 7 == 0:
                time.sleep(0.01)  # let the server start on it
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass
        i += 1
    return None if i > 100 else "only %d reset clients" % i


def check_slow():
    # For LOAD_SECS: 20 clients at a time trickle a head, a body or
    # chunks one byte per half second until the server times them out
    # (run with short -H/-B), then start over.  Only the server's health
    # is judged, by the caller.
    end = time.monotonic() + LOAD_SECS
    cases = ((b"GET / HTTP/1.1\r\n", b"X: y\r\n"),
             (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100"
              b"\r\n\r\n", b"x"),
             (CHUNKED + b"64\r\n", b"x"))
    runs = [0]

    def client(k):
        while time.monotonic() < end:
            head, step = cases[k % len(cases)]
            try:
                trickle(head, step, max(0.5, end - time.monotonic()))
            except OSError:
                time.sleep(0.1)  # at the server's fd limit: try again
            runs[0] += 1

    ts = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return None if runs[0] >= 20 else "only %d slow clients" % runs[0]


CHECKS = {n[6:]: f for n, f in globals().items() if n.startswith("check_")}


def main():
    global PORT
    PORT = int(sys.argv[1])
    names = sys.argv[2:]
    results = {}

    def run(name):
        try:
            results[name] = CHECKS[name]()
        except Exception as e:  # a client error is a failed check
            results[name] = "exception: %r" % (e,)

    ts = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    bad = 0
    for n in names:
        if results[n] is None:
            print("ok   %s" % n)
        else:
            print("FAIL %s: %s" % (n, results[n]))
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
