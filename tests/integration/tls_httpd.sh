#!/usr/bin/env bash
# Integration test: weft-httpd --tls-cert/--tls-key (HTTPS through
# libweft-tls) under curl and wrk, on loopback, with certificates made
# here (tests/integration/tls_certs.sh).
#
#   tls_httpd.sh <dir holding weft-httpd>
#
# Checks:
#   1. curl --cacert: 200 "Hello, World!", the certificate verified, ALPN
#      http/1.1, two requests on one connection (keep-alive);
#   2. curl without the test CA refuses the certificate (exit 60), and
#      plain HTTP to the TLS port gets no answer: the server goes on;
#   3. a client that connects and never sends its ClientHello is cut by
#      the handshake timeout (-H 1) within a few seconds;
#   4. wrk over HTTPS: no socket errors, no non-2xx, > 500 requests;
#   5. SIGTERM: exit 0, and the summary counts no failed connection.
# Every wait is bounded.
set -euo pipefail

tools=${1:?usage: tls_httpd.sh <tools/net build dir>}
httpd=$tools/weft-httpd
[[ -x $httpd ]] || { echo "FAIL: $httpd not built"; exit 1; }
for p in curl wrk python3; do
	command -v $p >/dev/null ||
		{ echo "FAIL: $p is not installed (tools/run deps)"; exit 1; }
done
here=$(cd "$(dirname "$0")" && pwd)

. "$here/httpd_lib.sh" # $tmp, $pid, fail, wait_port, stop_server

bash "$here/tls_certs.sh" "$tmp/certs"
C=$tmp/certs

WEFT_WORKERS=2 "$httpd" -H 1 -g 5 --tls-cert "$C/server.pem" \
	--tls-key "$C/server.key" >"$tmp/out" 2>"$tmp/err" &
pid=$!
wait_port
url=https://localhost:$port/
echo "weft-httpd --tls pid $pid on port $port"

echo "== 1. curl --cacert, keep-alive"
out=$(timeout 20 curl -sS -v --cacert "$C/ca.pem" "$url" "${url}x" \
	-w '|%{http_code}|%{ssl_verify_result}|%{num_connects}\n' 2>"$tmp/curl.err") ||
	fail "curl failed: $(cat "$tmp/curl.err")"
echo "$out"
[[ $out == *"Hello, World!|200|0|1"* ]] || fail "first answer: $out"
[[ $out == *"|404|0|0"* ]] || fail "second answer (keep-alive): $out"
grep -q 'ALPN.*http/1.1' "$tmp/curl.err" || fail "no ALPN http/1.1 in curl -v"

echo "== 2. an untrusting client, plain HTTP"
rc=0
timeout 20 curl -sS -o /dev/null "$url" 2>"$tmp/curl.err" || rc=$?
((rc == 60)) || fail "curl without the CA: exit $rc, expected 60"
rc=0
timeout 20 curl -sS -o /dev/null --max-time 5 "http://localhost:$port/" \
	2>"$tmp/curl.err" || rc=$?
((rc != 0)) || fail "plain HTTP to the TLS port got an answer"
timeout 20 curl -sS -o /dev/null --cacert "$C/ca.pem" "$url" ||
	fail "no answer after the bad clients"

echo "== 3. a client that never says hello, -H 1"
t0=$(date +%s%N)
timeout 20 python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(15)
assert s.recv(100) == b"", "data from the server"' "$port" ||
	fail "the silent client was not cut"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "cut after $ms ms"
((ms < 8000)) || fail "the silent client lasted $ms ms (timeout 1 s)"

echo "== 4. wrk over HTTPS"
out=$(timeout 60 wrk -t1 -c20 -d2s --timeout 10s "$url" 2>&1) ||
	fail "wrk failed: $out"
echo "$out" | grep -E 'Requests/sec|requests in'
if echo "$out" | grep -q -E 'Socket errors|Non-2xx'; then
	fail "wrk reported errors: $out"
fi
n=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
((n > 500)) || fail "wrk made only $n requests"

echo "== 5. SIGTERM"
stop_server
grep -q ' 0 failed' "$tmp/err" || fail "failed connections: $(tail -n 1 "$tmp/err")"
echo "PASS"
