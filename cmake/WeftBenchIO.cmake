# The I/O benchmarks of docs/benchmarks.md: B9 `echo`, B10
# `http`, B11 `mixed`.  Included from CMakeLists.txt after WeftTools.cmake,
# so the server targets weft-echo and weft-httpd exist here when
# WEFT_BUILD_TOOLS is ON.
#
#   weft-bench-mixed   tools/bench/mixed.c        B11, a weft program
#   weft-echo-client   tools/bench/echo-client.c  B9's fixed client: plain
#                                                 C + epoll, no weft
#   weft-bench-echo    tools/bench/echo.c         B9 driver: runs weft-echo
#                                                 and weft-echo-client
#   weft-bench-http    tools/bench/http.c         B10 driver: runs weft-httpd
#                                                 and wrk
#
# The drivers get the paths of the programs they start as compile-time
# definitions (WEFT_BENCH_ECHO_SERVER, WEFT_BENCH_ECHO_CLIENT,
# WEFT_BENCH_HTTP_SERVER), and building a driver builds its server.  echo
# and http need the network tools, so they join the list that tools/run
# bench reads (weft-benches.txt) only when WEFT_BUILD_TOOLS is ON; mixed
# always does.
if(NOT WEFT_BUILD_BENCH)
	return()
endif()

set(_weft_io_benches)

weft_add_bench(mixed)
list(APPEND _weft_io_benches mixed)

# B9's client links nothing of weft: the same binary measures any server.
add_executable(weft-echo-client tools/bench/echo-client.c)
set_target_properties(weft-echo-client PROPERTIES
	RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tools/bench)

# A driver that starts a network tool: the tool's path is compiled in (the
# target's file when the target exists, else where WeftTools.cmake would
# put it, so that the driver can say what is missing).
function(weft_bench_io_server_path out tool)
	if(TARGET ${tool})
		set(${out} "$<TARGET_FILE:${tool}>" PARENT_SCOPE)
	else()
		set(${out} "${PROJECT_BINARY_DIR}/tools/net/${tool}"
			PARENT_SCOPE)
	endif()
endfunction()

weft_add_bench(echo tools/bench/child.c)
weft_bench_io_server_path(_srv weft-echo)
target_compile_definitions(weft-bench-echo PRIVATE
	"WEFT_BENCH_ECHO_SERVER=\"${_srv}\""
	"WEFT_BENCH_ECHO_CLIENT=\"$<TARGET_FILE:weft-echo-client>\"")
add_dependencies(weft-bench-echo weft-echo-client)

weft_add_bench(http tools/bench/child.c)
weft_bench_io_server_path(_srv weft-httpd)
target_compile_definitions(weft-bench-http PRIVATE
	"WEFT_BENCH_HTTP_SERVER=\"${_srv}\"")

if(WEFT_BUILD_TOOLS)
	add_dependencies(weft-bench-echo weft-echo)
	add_dependencies(weft-bench-http weft-httpd)
	list(APPEND _weft_io_benches echo http)
endif()

if(NOT WEFT_BUILD_TOOLS)
	message(STATUS "weft: WEFT_BUILD_TOOLS is OFF, so tools/run bench "
		"skips echo and http (their servers are network tools)")
endif()

# CMakeLists.txt wrote weft-benches.txt from WEFT_BENCHES before including
# this file; write it again with the I/O benchmarks appended (CONFIGURE
# rewrites the file only when its content changes).
set(_all_benches ${WEFT_BENCHES} ${_weft_io_benches})
list(JOIN _all_benches "\n" _benches)
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/weft-benches.txt
	CONTENT "${_benches}\n" @ONLY)
