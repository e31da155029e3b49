# Cross-compiling weft for aarch64 Linux with Debian's gcc-aarch64-linux-gnu
# (and g++-aarch64-linux-gnu when tests are on):
#   cmake -S . -B build/aarch64 \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#     -DWEFT_BUILD_TESTS=OFF
#   cmake --build build/aarch64 --target weft_objects
# pkg-config must find the *target's* ck.pc and libuv.pc (its Cflags carry
# -D__aarch64__, the host's carry -D__x86_64__): install libck-dev:arm64 and
# libuv1-dev:arm64 (multiarch), or point PKG_CONFIG_LIBDIR at copies of them.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
