#!/usr/bin/env bash
# Integration test: weft-fetch https:// against Debian's nginx serving
# HTTPS with certificates made here (tests/integration/tls_certs.sh).
#
#   tls_nginx.sh TOOLS_DIR     (TOOLS_DIR holds weft-fetch)
#
# nginx runs in a temp dir on free loopback ports, one server per
# certificate: good ("localhost", signed by the test CA), untrusted
# (another CA), expired, and one for another host name.  Checks, each
# with its own message and exit status:
#   1. good: 200 and the body, with --cacert; exit 0;
#   2. the same without --cacert: the system's CAs do not know the test
#      CA: "ERR tls-verify: ... unable to get local issuer certificate",
#      exit 3; with --insecure it works;
#   3. untrusted CA: "unable to get local issuer certificate", exit 3;
#   4. expired: "certificate has expired", exit 3;
#   5. wrong host: "hostname mismatch", exit 3;
#   6. a plain-HTTP port fetched as https: "ERR tls: ...", exit 4;
#   7. a peer that accepts and never answers the handshake: cut by -t
#      ("ERR timeout"), well before the default 10 s;
#   8. a missing --cacert file: a message, exit 4.
# nginx is stopped by a trap, also on failure.  Skips (exit 0) only when
# /usr/sbin/nginx is missing.
set -euo pipefail

TOOLS=${1:?usage: tls_nginx.sh TOOLS_DIR}
FETCH=$TOOLS/weft-fetch
NGINX=/usr/sbin/nginx
HERE=$(cd "$(dirname "$0")" && pwd)

if [[ ! -x $NGINX ]]; then
	echo "SKIP: nginx not installed ($NGINX missing; tools/run deps installs it)"
	exit 0
fi
[[ -x $FETCH ]] || {
	echo "FAIL: $FETCH not built" >&2
	exit 1
}

source "$HERE/nginx_lib.sh" tls-nginx

bash "$HERE/tls_certs.sh" "$T/certs"
C=$T/certs
printf 'hello over tls\n' >"$T/www/small.txt"

# server PORT CERT: an HTTPS server block.
server() {
	cat <<EOF
	server {
		listen 127.0.0.1:$1 ssl;
		ssl_certificate $C/$2;
		ssl_certificate_key $C/server.key;
		root $T/www;
	}
EOF
}

write_conf() {
	GOOD=$(free_port) UNTRUSTED=$(free_port) EXPIRED=$(free_port)
	WRONG=$(free_port) PLAIN=$(free_port)
	cat >"$T/nginx.conf" <<EOF
$USER_LINE
daemon off;
master_process on;
worker_processes 1;
pid $T/nginx.pid;
error_log $T/error.log warn;
events { worker_connections 256; }
http {
	access_log $T/logs/access.log;
	default_type application/octet-stream;
	$TEMP_LINES
$(server "$GOOD" server.pem)
$(server "$UNTRUSTED" untrusted.pem)
$(server "$EXPIRED" expired.pem)
$(server "$WRONG" wronghost.pem)
	server {
		listen 127.0.0.1:$PLAIN;
		root $T/www;
	}
}
EOF
}
ready() {
	curl -s -o /dev/null --max-time 1 --cacert "$C/ca.pem" \
		"https://localhost:$GOOD/small.txt" 2>/dev/null
}
nginx_start write_conf ready
echo "nginx with TLS on ports $GOOD $UNTRUSTED $EXPIRED $WRONG (plain $PLAIN)"

# run_fetch NAME EXPECTED_EXIT ARGS...: output in $T/NAME.out/.err
run_fetch() {
	local name=$1 want=$2 rc=0
	shift 2
	WEFT_WORKERS=2 timeout 30 "$FETCH" "$@" >"$T/$name.out" \
		2>"$T/$name.err" || rc=$?
	sed 's/^/    | /' "$T/$name.out" "$T/$name.err"
	((rc == want)) || fail "$name: exit status $rc, expected $want"
}
# expect NAME REGEX: a line of NAME's output (or errors) matches REGEX
expect() {
	grep -Eq -- "$2" "$T/$1.out" "$T/$1.err" ||
		fail "$1: no line matches /$2/"
}

echo "1. good certificate, --cacert"
run_fetch good 0 --cacert "$C/ca.pem" -o "$T" \
	"https://localhost:$GOOD/small.txt"
expect good '^200 .* 15 bytes https://localhost'
cmp -s "$T/0" "$T/www/small.txt" || fail "good: body differs"

echo "2. the test CA is not among the system's; --insecure"
run_fetch nocacert 3 "https://localhost:$GOOD/small.txt"
expect nocacert '^ERR tls-verify: certificate verification failed: unable to get local issuer certificate'
run_fetch insecure 0 --insecure "https://localhost:$GOOD/small.txt"
expect insecure '^200 '

echo "3. a certificate from another CA"
run_fetch untrusted 3 --cacert "$C/ca.pem" \
	"https://localhost:$UNTRUSTED/small.txt"
expect untrusted '^ERR tls-verify: certificate verification failed: unable to get local issuer certificate'

echo "4. an expired certificate"
run_fetch expired 3 --cacert "$C/ca.pem" \
	"https://localhost:$EXPIRED/small.txt"
expect expired '^ERR tls-verify: certificate verification failed: certificate has expired'

echo "5. a certificate for another host"
run_fetch wronghost 3 --cacert "$C/ca.pem" \
	"https://localhost:$WRONG/small.txt"
expect wronghost '^ERR tls-verify: certificate verification failed: hostname mismatch'

echo "6. https to a plain HTTP server"
run_fetch plain 4 --cacert "$C/ca.pem" "https://localhost:$PLAIN/small.txt"
expect plain '^ERR tls: TLS: '

echo "7. a peer that never answers the handshake, -t 0.5"
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)' >"$T/silent.port" &
HELPER_PID=$!
for _ in $(seq 50); do
	[[ -s $T/silent.port ]] && break
	sleep 0.1
done
SILENT=$(cat "$T/silent.port")
t0=$(date +%s%N)
run_fetch silent 1 -t 0.5 --cacert "$C/ca.pem" \
	"https://localhost:$SILENT/"
t1=$(date +%s%N)
expect silent '^ERR timeout '
(((t1 - t0) / 1000000 < 5000)) || fail "silent: took $(((t1 - t0) / 1000000)) ms"

echo "8. a --cacert file that does not exist"
run_fetch badca 4 --cacert "$T/nonexistent.pem" "https://localhost:$GOOD/"
expect badca 'weft-fetch: TLS: cannot load the CAs of .*nonexistent.pem'

echo "PASS: tls_nginx"
