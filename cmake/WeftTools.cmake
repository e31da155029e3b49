# The network tools built on weft and their integration tests, and the
# test of the gdb extension.  Included from CMakeLists.txt.
#
#   weft-echo    tools/net/weft-echo.c    TCP echo server (B9)
#   weft-httpd   tools/net/weft-httpd.c   keep-alive HTTP/1.1 server (B10)
#   weft-fetch   tools/net/weft-fetch.c   concurrent HTTP GETs
#
# HTTP parsing uses Node.js's http-parser 2.9 from Debian
# (libhttp-parser-dev): see ARCHITECTURE.md, "Why these dependencies".

# tools/gdb/weft.py's test: tests/gdb/parked.c (a runtime with parked
# tasks that stops itself) looked at by gdb, live and as a core file.
# Plain x86_64 builds with debug information only: the extension reads
# libweft's debug information and x86_64's saved-register layout, and
# sanitizer builds move stacks and registers around in ways gdb may not
# follow (ASan's fake stacks, TSan's interceptors).
if(WEFT_BUILD_TESTS AND NOT WEFT_SANITIZE AND NOT WEFT_TEST_EMULATOR
		AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64)$"
		AND CMAKE_BUILD_TYPE MATCHES "^(RelWithDebInfo|Debug)$")
	add_executable(weft-gdb-parked tests/gdb/parked.c)
	target_link_libraries(weft-gdb-parked PRIVATE weft)
	find_program(WEFT_GDB gdb)
	if(WEFT_GDB)
		add_test(NAME integration_gdb_weft
			COMMAND bash
			${PROJECT_SOURCE_DIR}/tests/integration/gdb_weft.sh
			$<TARGET_FILE:weft-gdb-parked>
			${PROJECT_SOURCE_DIR}/tools/gdb/weft.py ${WEFT_GDB})
		set_tests_properties(integration_gdb_weft PROPERTIES
			LABELS integration TIMEOUT 300)
	else()
		weft_add_skipped_test(integration_gdb_weft integration
			"gdb is not installed (tools/run deps installs it)")
	endif()
endif()

if(NOT WEFT_BUILD_TOOLS)
	return()
endif()

find_path(WEFT_HTTP_PARSER_INCLUDE http_parser.h)
find_library(WEFT_HTTP_PARSER_LIB http_parser)
if(NOT WEFT_HTTP_PARSER_INCLUDE OR NOT WEFT_HTTP_PARSER_LIB)
	message(FATAL_ERROR "weft: the network tools need http-parser "
		"(Debian: libhttp-parser-dev; tools/run deps installs it)")
endif()

set(_weft_net_tools echo httpd fetch)
foreach(_t IN LISTS _weft_net_tools)
	add_executable(weft-${_t} tools/net/weft-${_t}.c tools/net/netutil.c)
	target_include_directories(weft-${_t} PRIVATE
		${PROJECT_SOURCE_DIR}/tools/net ${WEFT_HTTP_PARSER_INCLUDE})
	# The tools are user programs: public API only, shared library.
	target_link_libraries(weft-${_t} PRIVATE weft ${WEFT_HTTP_PARSER_LIB})
	set_target_properties(weft-${_t} PROPERTIES
		RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tools/net)
endforeach()
# https:// (weft-fetch) and --tls-cert (weft-httpd) with libweft-tls
# (cmake/WeftTls.cmake), when OpenSSL was found.
foreach(_t fetch httpd)
	string(TOUPPER ${_t} _T)
	target_compile_definitions(weft-${_t} PRIVATE
		WEFT_${_T}_TLS=${WEFT_HAVE_TLS})
	if(WEFT_HAVE_TLS)
		target_link_libraries(weft-${_t} PRIVATE weft-tls)
	endif()
endforeach()

# Integration tests: shell scripts driving the tools with real clients
# and servers (curl, wrk, nginx) on loopback, bounded in time.  The TLS
# ones (tls_*: weft-fetch against nginx over HTTPS, weft-httpd --tls
# under curl and wrk) when libweft-tls is built.
set(_weft_integration fetch_nginx httpd_wrk httpd_hardening httpd_soak)
if(WEFT_HAVE_TLS)
	list(APPEND _weft_integration tls_nginx tls_httpd)
endif()
if(WEFT_BUILD_TESTS AND WEFT_TEST_EMULATOR)
	# The scripts start the tools directly, next to the host's nginx,
	# curl and wrk; a cross build's tools would need the emulator.
	foreach(_s IN LISTS _weft_integration)
		weft_add_skipped_test(integration_${_s} integration
			"the script runs the ${CMAKE_SYSTEM_PROCESSOR} tools directly; cross builds skip the integration tests")
	endforeach()
elseif(WEFT_BUILD_TESTS)
	foreach(_s IN LISTS _weft_integration)
		add_test(NAME integration_${_s}
			COMMAND bash
			${PROJECT_SOURCE_DIR}/tests/integration/${_s}.sh
			${PROJECT_BINARY_DIR}/tools/net)
		# WEFT_TEST_SANITIZE tells a script which sanitizers the tools
		# run under (httpd_soak does not judge RSS under them).
		set_tests_properties(integration_${_s} PROPERTIES
			LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
			ENVIRONMENT "WEFT_TEST_SANITIZE=${WEFT_SANITIZE}")
	endforeach()
endif()

# Examples of weft driving other libraries' descriptors (include/weft/
# fd.h): built when their library is found (hiredis: Debian's
# libhiredis-dev, which tools/run deps installs), each run by an
# integration test against a real server.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
	pkg_check_modules(WEFT_HIREDIS QUIET IMPORTED_TARGET hiredis)
	pkg_check_modules(WEFT_LIBPQ QUIET IMPORTED_TARGET libpq)
	pkg_check_modules(WEFT_LIBCURL QUIET IMPORTED_TARGET libcurl)
endif()
# weft_add_example(NAME PKG SCRIPT TIMEOUT WHY): weft-example-NAME from
# tools/examples/NAME.c, linked with the pkg-config target PKG when it was
# found, and the integration test integration_SCRIPT
# (tests/integration/SCRIPT.sh, given the examples' directory); skipped,
# saying WHY, without the library or in a cross build.
function(weft_add_example name pkg script timeout why)
	if(${pkg}_FOUND)
		add_executable(weft-example-${name} tools/examples/${name}.c)
		target_link_libraries(weft-example-${name} PRIVATE weft
			PkgConfig::${pkg})
		set_target_properties(weft-example-${name} PROPERTIES
			RUNTIME_OUTPUT_DIRECTORY
			${PROJECT_BINARY_DIR}/tools/examples)
	endif()
	if(NOT WEFT_BUILD_TESTS)
		return()
	endif()
	if(WEFT_TEST_EMULATOR OR NOT ${pkg}_FOUND)
		weft_add_skipped_test(integration_${script} integration
			"${why}")
		return()
	endif()
	add_test(NAME integration_${script}
		COMMAND bash ${PROJECT_SOURCE_DIR}/tests/integration/${script}.sh
		${PROJECT_BINARY_DIR}/tools/examples)
	set_tests_properties(integration_${script} PROPERTIES
		LABELS integration TIMEOUT ${timeout} RUN_SERIAL TRUE)
endfunction()
weft_add_example(curl WEFT_LIBCURL curl_nginx 120
	"needs libcurl (libcurl4-openssl-dev), nginx and a host build")
weft_add_example(postgres WEFT_LIBPQ postgres 180
	"needs libpq (libpq-dev), PostgreSQL and a host build")
weft_add_example(redis WEFT_HIREDIS redis 120
	"needs hiredis (libhiredis-dev) and a host build")

# The README's tours (tools/examples/tour.c, tour.cpp): built and run by
# the tests, and the README's blocks must be these files byte for byte
# (tests/doc_examples.sh), so the tours cannot rot.
add_executable(weft-example-tour tools/examples/tour.c)
target_link_libraries(weft-example-tour PRIVATE weft)
set_target_properties(weft-example-tour PROPERTIES
	RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tools/examples)
if(CMAKE_CXX_COMPILER_LOADED)
	add_executable(weft-example-tour-cpp tools/examples/tour.cpp)
	target_link_libraries(weft-example-tour-cpp PRIVATE weft)
	if(CMAKE_CROSSCOMPILING)
		# As test_cpp (CMakeLists.txt): libstdc++ for qemu-user.
		target_link_options(weft-example-tour-cpp PRIVATE
			-static-libstdc++ -static-libgcc)
	endif()
	set_target_properties(weft-example-tour-cpp PROPERTIES
		RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tools/examples)
endif()
if(WEFT_BUILD_TESTS)
	weft_test_environment(_tour_env)
	add_test(NAME example_tour COMMAND weft-example-tour)
	add_test(NAME doc_examples COMMAND sh
		${PROJECT_SOURCE_DIR}/tests/doc_examples.sh
		${PROJECT_SOURCE_DIR} README.md docs/guide.md)
	set_tests_properties(example_tour doc_examples PROPERTIES
		ENVIRONMENT "${_tour_env}" LABELS examples TIMEOUT 120)

	if(CMAKE_CXX_COMPILER_LOADED)
		add_test(NAME example_tour_cpp COMMAND weft-example-tour-cpp)
		set_tests_properties(example_tour_cpp PROPERTIES
			ENVIRONMENT "${_tour_env}" LABELS examples TIMEOUT 120
			PASS_REGULAR_EXPRESSION
			"fetch: std::runtime_error: no\ncut short: 1\n")
	endif()
endif()

# docs/guide.md's programs (tools/examples/guide_*.c), each run with what
# it must print.
set(WEFT_GUIDE_EXAMPLES
	"groups|service ready on port 8080\nsquare\\(1\\) = 1\nsquare\\(2\\) = 4\nsquare\\(3\\) = 9"
	"par|sum: 500000500000 \\(OK\\)\nfailed: EINVAL: negative value at 123456"
	"timeouts|move_on_after: the sleep gave ECANCELED, caught 1\nfail_after: the scope's exit gave ETIMEDOUT\nshielded cleanup: completed\nafter the shield: ECANCELED"
	"patterns|gather: 30 10 20\nwait_for: ETIMEDOUT\nas_completed: 10 20 30"
	"channels|channel: sum 15150\nto_thread: 42"
	"portal|portal: sum 550"
	"budgets|max_children: at most 4 of 20 at once\nstack_bytes_max: the third spawn gave ENOMEM\ndeadline: the join gave ETIMEDOUT\nrun time: counted"
	"supervise|db-1: ECONNREFUSED: server not up yet \\(restarting\\)\ndb-1: ECONNREFUSED: server not up yet \\(restarting\\)\ndb-1: ECONNREFUSED: server not up yet \\(restarting\\)\npool: ECANCELED after 5 attempts\ngave up: WEFT_EINTENSITY, last failures kept: 3")
foreach(_g IN LISTS WEFT_GUIDE_EXAMPLES)
	string(FIND "${_g}" "|" _bar)
	string(SUBSTRING "${_g}" 0 ${_bar} _name)
	math(EXPR _bar "${_bar} + 1")
	string(SUBSTRING "${_g}" ${_bar} -1 _want)
	add_executable(weft-example-guide-${_name}
		tools/examples/guide_${_name}.c)
	target_link_libraries(weft-example-guide-${_name} PRIVATE weft)
	set_target_properties(weft-example-guide-${_name} PROPERTIES
		RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tools/examples)
	if(WEFT_BUILD_TESTS)
		add_test(NAME example_guide_${_name}
			COMMAND weft-example-guide-${_name})
		set_tests_properties(example_guide_${_name} PROPERTIES
			ENVIRONMENT "${_tour_env}" LABELS examples TIMEOUT 120
			PASS_REGULAR_EXPRESSION "${_want}")
	endif()
endforeach()
