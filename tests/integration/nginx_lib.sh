# Sourced by the integration scripts that run Debian's nginx in a scratch
# folder (fetch_nginx.sh, tls_nginx.sh):
#
#   source nginx_lib.sh NAME      (with NGINX set; set -euo pipefail)
#
# Gives: $T, a scratch folder (weft-NAME.XXXXXX) with www/ and logs/,
# removed with nginx ($NGINX_PID) and the script's helper server
# ($HELPER_PID) by a trap, also on failure; fail; HAVE_PY; free_port;
# USER_LINE and TEMP_LINES, the lines a scratch nginx.conf needs; and
# nginx_start CONF_FN READY_FN, which starts nginx and waits for it.

T=$(mktemp -d "${TMPDIR:-/tmp}/weft-$1.XXXXXX")
NGINX_PID=
HELPER_PID=

# {====== cleanup: always, also on failure
cleanup() {
	local rc=$?
	for pid in $NGINX_PID $HELPER_PID; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	# Bounded wait for both to exit, then the hard way.
	for _ in $(seq 50); do
		local alive=0
		for pid in $NGINX_PID $HELPER_PID; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.1
	done
	for pid in $NGINX_PID $HELPER_PID; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	if ((rc != 0)) && [[ -f $T/error.log ]]; then
		echo "--- nginx error.log:"
		tail -n 20 "$T/error.log" || true
	fi
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# }======

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

HAVE_PY=0
command -v python3 >/dev/null 2>&1 && HAVE_PY=1

# A TCP port nothing listens on right now: the kernel's choice through
# python3, else a random one in 20000-60000 that bash cannot connect to.
free_port() {
	if ((HAVE_PY)); then
		python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
		return
	fi
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	fail "no free port found"
}

mkdir -p "$T/www" "$T/logs"
# Under root, nginx's worker would switch to "nobody", which cannot read
# the 0700 temp dir: keep the current user instead.
USER_LINE=
if ((EUID == 0)); then
	USER_LINE="user $(id -un) $(id -gn);"
fi
# Temp paths of the modules this nginx has (all in the temp dir, so a
# non-root nginx never touches /var/lib/nginx).
TEMP_LINES="client_body_temp_path $T/client_body;"
for m in proxy fastcgi uwsgi scgi; do
	if ! "$NGINX" -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
		TEMP_LINES+=$'\n'"        ${m}_temp_path $T/$m;"
	fi
done

# nginx_start CONF_FN READY_FN: CONF_FN picks free ports and writes
# $T/nginx.conf; nginx then runs on it until READY_FN succeeds (5 s at
# most).  A port may be taken in between: three attempts, new ports each.
# Another test's server may hold the port (two tests drew the same free
# port), and READY_FN would then succeed against it while this nginx
# retries its bind: a start counts only if this nginx logged no failed
# bind and still runs a moment after READY_FN succeeded.
nginx_start() {
	local conf=$1 ready=$2 attempt
	for attempt in 1 2 3; do
		"$conf"
		: >"$T/error.log"
		"$NGINX" -p "$T" -c "$T/nginx.conf" -e "$T/error.log" &
		NGINX_PID=$!
		for _ in $(seq 50); do
			if "$ready"; then
				sleep 0.2
				if ! grep -q 'bind() to' "$T/error.log" &&
					kill -0 "$NGINX_PID" 2>/dev/null; then
					return 0
				fi
				break
			fi
			kill -0 "$NGINX_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -TERM "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=
		echo "nginx did not start (attempt $attempt)"
	done
	fail "nginx did not start"
}
