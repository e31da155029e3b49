#!/bin/sh
# The C++ face's test (tests/test_cpp.cpp) built with clang++ rather than
# the build's C++ compiler (g++), linked against that build's static
# library (a C ABI, so the two compilers mix), and run.
#   tests/cpp_clang.sh <source dir> <libweft.a> <work dir> <clang> <clang++>
set -eu
src=$1 lib=$2 out=$3 cc=$4 cxx=$5
mkdir -p "$out"
libs=$(pkg-config --libs cmocka libuv ck)
if pkg-config --exists libdw; then
	libs="$libs $(pkg-config --libs libdw)"
fi
"$cc" -std=gnu11 -O1 -g -Wall -Wextra -Werror -DWEFT_DEBUG=1 \
	-I"$src/include" -I"$src/tests" -c "$src/tests/support.c" \
	-o "$out/support.o"
"$cxx" -std=c++17 -O1 -g -Wall -Wextra -Wpedantic -Werror -DWEFT_DEBUG=1 \
	-I"$src/include" -c "$src/tests/test_cpp.cpp" -o "$out/test_cpp.o"
# shellcheck disable=SC2086 # $libs is a list of flags
"$cxx" "$out/test_cpp.o" "$out/support.o" "$lib" $libs -lpthread -ldl \
	-o "$out/test_cpp_clang"
exec "$out/test_cpp_clang"
