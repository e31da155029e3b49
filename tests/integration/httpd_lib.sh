# Shared by the weft-httpd integration scripts and tools/net/soak.sh
# (sourced, not run): a scratch folder $tmp removed at exit, the server's
# pid in $pid (killed at exit if still running), fail, which prints the
# reason and the end of the server's stderr ($tmp/err) and exits 1,
# wait_port and stop_server.
tmp=$(mktemp -d)
pid=
cleanup() {
	[[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	echo "--- server stderr (last 50 lines):"
	tail -n 50 "$tmp/err" || true
	exit 1
}

# wait_port: waits (10 s) until the server started in the background
# ($pid, stdout in $tmp/out) prints "port=N"; sets port.
wait_port() {
	port=
	for _ in $(seq 200); do
		# The background server's shell may not have created
		# $tmp/out yet: not an error under set -e.
		port=$(sed -n 's/^port=//p' "$tmp/out" 2>/dev/null || true)
		[[ -n $port ]] && break
		sleep 0.05
	done
	[[ -n $port ]] || fail "weft-httpd did not report its port"
}

# stop_server: SIGTERM; the server must exit, with status 0, within 10 s.
# Prints the last line of its stderr (its shutdown summary).
stop_server() {
	kill -TERM "$pid"
	local status=0
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && fail "weft-httpd still running 10 s after SIGTERM"
	wait "$pid" || status=$?
	pid=
	((status == 0)) || fail "weft-httpd exited with $status"
	tail -n 1 "$tmp/err"
}
