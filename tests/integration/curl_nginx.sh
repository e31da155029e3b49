#!/usr/bin/env bash
# Integration test: weft-example-curl (tools/examples/curl.c) against
# Debian's nginx on loopback (a free port, everything in a scratch
# folder): 50 transfers at once through libcurl's multi-socket API, a
# slow transfer (limit_rate) cancelled by a deadline, a refused
# connection.  Every wait is bounded.
#
#   curl_nginx.sh <dir holding weft-example-curl>
set -euo pipefail

dir=${1:?usage: curl_nginx.sh <dir holding weft-example-curl>}
example=$dir/weft-example-curl
nginx=/usr/sbin/nginx
[[ -x $example ]] || { echo "FAIL: $example not built"; exit 1; }
[[ -x $nginx ]] || { echo "FAIL: nginx is not installed (tools/run deps)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 is not installed"; exit 1; }

tmp=$(mktemp -d)
npid=
cleanup() {
	[[ -n $npid ]] && kill -TERM "$npid" 2>/dev/null || true
	sleep 0.2
	[[ -n $npid ]] && kill -KILL "$npid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	cat "$tmp/out" "$tmp/err" 2>/dev/null || true
	tail -n 20 "$tmp/error.log" 2>/dev/null || true
	exit 1
}

mkdir -p "$tmp/www/slow"
printf 'hello from nginx\n' >"$tmp/www/small.txt"
head -c 1048576 /dev/urandom >"$tmp/www/big.bin"
cp "$tmp/www/big.bin" "$tmp/www/slow/big.bin"
user_line=
((EUID == 0)) && user_line="user $(id -un) $(id -gn);"
temp_lines="client_body_temp_path $tmp/client_body;"
for m in proxy fastcgi uwsgi scgi; do
	"$nginx" -V 2>&1 | grep -q -- "--without-http_${m}_module" ||
		temp_lines+=$'\n'"        ${m}_temp_path $tmp/$m;"
done
port=$(python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/nginx.conf" <<CONF
$user_line
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 512; }
http {
    access_log off;
    $temp_lines
    server {
        listen 127.0.0.1:$port;
        root $tmp/www;
        location /slow/ { limit_rate 50k; }
    }
}
CONF
"$nginx" -c "$tmp/nginx.conf" -p "$tmp" &
npid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/small.txt" && break
	kill -0 "$npid" 2>/dev/null || fail "nginx exited"
	sleep 0.05
done

WEFT_WORKERS=2 timeout 60 "$example" "http://127.0.0.1:$port" 50 \
	>"$tmp/out" 2>"$tmp/err" || fail "weft-example-curl failed ($?)"
cat "$tmp/out"
grep -q "Couldn't connect\|Could not connect\|Connection refused" "$tmp/err" ||
	fail "no clear error for the refused connection"
grep -q '^PASS$' "$tmp/out" || fail "no PASS"
echo "PASS"
