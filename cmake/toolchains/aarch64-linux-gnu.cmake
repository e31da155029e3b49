# Cross-compiling weft for aarch64 Linux with Debian's gcc-aarch64-linux-gnu
# (and g++-aarch64-linux-gnu when tests are on), against the arm64
# multiarch libraries (libuv1-dev:arm64, libcmocka-dev:arm64, ...; ck and
# http-parser unpacked, see WEFT_AARCH64_EXTRA_ROOT below), and running
# the tests under qemu-user.  `tools/run test-aarch64` installs all of it
# and does this:
#   cmake -S . -B build/test-aarch64 \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#     -DWEFT_AARCH64_EXTRA_ROOT=$PWD/build/aarch64-sysroot \
#     -DWEFT_BUILD_TESTS=ON -DWEFT_DEBUG=ON
#   cmake --build build/test-aarch64 && (cd build/test-aarch64 && ctest)
#
# pkg-config must find the *target's* .pc files: ck.pc's Cflags carry
# -D__aarch64__ on arm64 and -D__x86_64__ on amd64, and the libraries must
# be the arm64 ones.  PKG_CONFIG_LIBDIR replaces (not extends) the search
# path, so the host's .pc files cannot leak in.
#
# ctest runs every test executable through CMAKE_CROSSCOMPILING_EMULATOR
# (qemu-aarch64).  Its -L prefix is where the guest's dynamic loader and
# libc come from.  The arm64 -dev packages pull in libc6:arm64, whose
# loader is /lib/ld-linux-aarch64.so.1; with it present the prefix is /,
# so that loader, libc and the arm64 libraries all come from the same
# multiarch glibc.  Without it the prefix is the cross toolchain's
# /usr/aarch64-linux-gnu.  Override with -DWEFT_QEMU_PREFIX=<dir>.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Programs (qemu, bash, valgrind) are the host's; libraries and headers
# are searched in the multiarch directories only: never link an x86_64
# library found in /usr/lib/x86_64-linux-gnu.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu
	/usr/include/x86_64-linux-gnu)

set(ENV{PKG_CONFIG_LIBDIR}
	"/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# WEFT_AARCH64_EXTRA_ROOT: a directory with arm64 packages unpacked into
# it (<root>/usr/...), searched before the system.  Debian cannot install
# libck0:arm64 next to libck0:amd64, nor libhttp-parser-dev:arm64 next to
# the amd64 one (neither is co-installable: installing them removes the
# host's), so tools/run test-aarch64 unpacks those there instead, with
# ck.pc's paths rewritten to point into the root.  Its headers come first:
# arm64's ck_md.h says CK_MD_RMO where amd64's says CK_MD_TSO.
# try_compile re-reads this file in the same process (and ENV is the
# process's): it must see the same settings, or it resets the search path.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WEFT_AARCH64_EXTRA_ROOT
	WEFT_QEMU_PREFIX)
if(WEFT_AARCH64_EXTRA_ROOT)
	set(ENV{PKG_CONFIG_LIBDIR} "${WEFT_AARCH64_EXTRA_ROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:$ENV{PKG_CONFIG_LIBDIR}")
	list(PREPEND CMAKE_PREFIX_PATH "${WEFT_AARCH64_EXTRA_ROOT}/usr")
endif()

if(NOT DEFINED WEFT_QEMU_PREFIX)
	if(EXISTS /lib/ld-linux-aarch64.so.1)
		set(WEFT_QEMU_PREFIX /)
	else()
		set(WEFT_QEMU_PREFIX /usr/aarch64-linux-gnu)
	endif()
endif()
# On an aarch64 host the tests run as they are.
if(NOT CMAKE_HOST_SYSTEM_PROCESSOR STREQUAL "aarch64")
	find_program(WEFT_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
	if(WEFT_QEMU_AARCH64)
		set(CMAKE_CROSSCOMPILING_EMULATOR
			"${WEFT_QEMU_AARCH64};-L;${WEFT_QEMU_PREFIX}")
	else()
		message(STATUS "weft: no qemu-aarch64 (Debian: qemu-user): "
			"the tests can run only if binfmt_misc starts one")
	endif()
endif()
