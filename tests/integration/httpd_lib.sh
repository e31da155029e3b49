# Shared by the weft-httpd integration scripts (sourced, not run): a
# scratch folder $tmp removed at exit, the server's pid in $pid (killed at
# exit if still running), and fail, which prints the reason and the end of
# the server's stderr ($tmp/err) and exits 1.
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
