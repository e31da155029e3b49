#!/usr/bin/env bash
# The install test (ctest install_consumer, label "install").
#
# Installs the current build into a temporary prefix with `cmake --install`,
# then builds and runs consumer.c / consumer.cpp against the installed tree:
#   (a) pkg-config, shared library  (must need libweft.so at run time)
#   (b) pkg-config weft-static, static library  (must not need libweft.so)
#   (c) find_package(weft CONFIG): weft::weft, weft::weft_static
#   (d) C++: consumer.cpp through pkg-config and through find_package
# Every consumer must print its line and exit 0.
set -euo pipefail

usage() {
	echo "usage: $0 --build-dir D --source-dir D --libdir REL --version V" \
		"--cmake EXE --generator G --cc CC --cxx CXX" >&2
	exit 2
}

build='' src='' libdir_rel='' version='' generator=''
cmake=cmake cc=cc cxx=c++
while (($#)); do
	(($# >= 2)) || usage
	case $1 in
	--build-dir) build=$2 ;;
	--source-dir) src=$2 ;;
	--libdir) libdir_rel=$2 ;;
	--version) version=$2 ;;
	--cmake) cmake=$2 ;;
	--generator) generator=$2 ;;
	--cc) cc=$2 ;;
	--cxx) cxx=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[[ -n $build && -n $src && -n $libdir_rel && -n $version ]] || usage
if [[ $libdir_rel = /* ]]; then
	echo "install test: CMAKE_INSTALL_LIBDIR is absolute ($libdir_rel);" \
		"cannot install into a temporary prefix" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
libdir=$prefix/$libdir_rel

step() { printf '\n== %s\n' "$*"; }
fail() {
	echo "install test FAILED: $*" >&2
	exit 1
}

# run_consumer <label> <exe> [env...]: runs it, checks the printed line.
run_consumer() {
	local label=$1 exe=$2 out
	shift 2
	out=$(env "$@" "$exe") || fail "$label: $exe exited with $?: $out"
	echo "$out"
	[[ $out == "weft $version: weft_run returned 0, flag 42"* ]] ||
		fail "$label: unexpected output (expected weft $version ...)"
}

needs_libweft() { readelf -d "$1" | grep -q 'NEEDED.*\[libweft\.so'; }

step "cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix"
[[ -f $libdir/pkgconfig/weft.pc ]] || fail "no $libdir/pkgconfig/weft.pc"

# PKG_CONFIG_PATH is searched before the system directories, which still
# provide ck.pc and libuv.pc.
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
[[ $(pkg-config --modversion weft) == "$version" ]] ||
	fail "pkg-config reports weft $(pkg-config --modversion weft), expected $version"

step "(a) pkg-config, shared: $cc consumer.c \$(pkg-config --cflags --libs weft)"
read -r -a cflags <<<"$(pkg-config --cflags weft)"
read -r -a libs <<<"$(pkg-config --libs weft)"
"$cc" -std=c11 -Wall -Wextra -Werror "${cflags[@]}" "$src/consumer.c" \
	"${libs[@]}" -o "$work/pc_shared"
needs_libweft "$work/pc_shared" || fail "(a) is not linked to libweft.so"
run_consumer "(a)" "$work/pc_shared" "LD_LIBRARY_PATH=$libdir"

step "(b) pkg-config weft-static: libweft.a plus ck, libuv"
read -r -a libs <<<"$(pkg-config --libs weft-static)"
echo "link flags: ${libs[*]}"
"$cc" -std=c11 -Wall -Wextra -Werror "${cflags[@]}" "$src/consumer.c" \
	"${libs[@]}" -o "$work/pc_static"
if needs_libweft "$work/pc_static"; then fail "(b) needs libweft.so"; fi
run_consumer "(b)" "$work/pc_static"

step "(c) find_package(weft CONFIG) with CMAKE_PREFIX_PATH=$prefix"
gen=()
[[ -n $generator ]] && gen=(-G "$generator")
"$cmake" -S "$src" -B "$work/cmake-build" "${gen[@]}" \
	-DCMAKE_PREFIX_PATH="$prefix" -DWEFT_EXPECTED_VERSION="$version" \
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo
"$cmake" --build "$work/cmake-build"
needs_libweft "$work/cmake-build/consumer_shared" ||
	fail "(c) consumer_shared is not linked to libweft.so"
if needs_libweft "$work/cmake-build/consumer_static"; then
	fail "(c) consumer_static needs libweft.so"
fi
# No LD_LIBRARY_PATH: CMake puts the imported library's directory in the
# consumer's build RPATH.
run_consumer "(c) weft::weft" "$work/cmake-build/consumer_shared"
run_consumer "(c) weft::weft_static" "$work/cmake-build/consumer_static"

step "(d) C++17 consumer: pkg-config and find_package"
read -r -a libs <<<"$(pkg-config --libs weft)"
"$cxx" -std=c++17 -Wall -Wextra -Werror "${cflags[@]}" "$src/consumer.cpp" \
	"${libs[@]}" -o "$work/pc_cpp"
run_consumer "(d) pkg-config" "$work/pc_cpp" "LD_LIBRARY_PATH=$libdir"
run_consumer "(d) weft::weft" "$work/cmake-build/consumer_cpp"
run_consumer "(d) weft.hpp" "$work/cmake-build/consumer_hpp"

if [[ -f $libdir/pkgconfig/weft-tls.pc ]]; then
	step "(e) libweft-tls: pkg-config weft-tls and weft::weft-tls"
	read -r -a libs <<<"$(pkg-config --libs weft-tls)"
	"$cc" -std=c11 -Wall -Wextra -Werror "${cflags[@]}" \
		"$src/consumer_tls.c" "${libs[@]}" -o "$work/pc_tls"
	run_consumer "(e) pkg-config" "$work/pc_tls" "LD_LIBRARY_PATH=$libdir"
	[[ -x $work/cmake-build/consumer_tls ]] ||
		fail "(e) find_package(weft) gave no weft::weft-tls"
	run_consumer "(e) weft::weft-tls" "$work/cmake-build/consumer_tls"
else
	step "(e) libweft-tls: not built (no OpenSSL): skipped"
fi

printf '\ninstall test: all consumers built and ran against %s\n' "$prefix"
