# Test helpers: weft_add_test() for the cmocka binaries, and the checks the
# build system itself owns (public headers compile alone as C and C++, only
# weft_* symbols are exported, an installed tree can be consumed).
#
# Every ctest entry gets the same environment (weft_test_environment) and a
# TIMEOUT scaled by WEFT_TEST_TIMEOUT_MULTIPLIER, so a deadlock fails one test
# instead of hanging the whole run.

# weft_test_environment(<out-var>): the ENVIRONMENT list for every test.
function(weft_test_environment out)
	set(env "CMOCKA_MESSAGE_OUTPUT=STDOUT")
	if(WEFT_TEST_EMULATOR)
		# A test that reads the host through /proc (the blocked
		# threads of test_fs) cannot see the emulated process there.
		list(APPEND env "WEFT_TEST_EMULATED=${WEFT_TEST_EMULATOR}")
	endif()
	if(WEFT_SANITIZE MATCHES "thread")
		set(tsan "halt_on_error=1:second_deadlock_stack=1")
		# A suppressions file is picked up if the tree has one; every
		# entry in it must carry a comment saying why.
		if(EXISTS "${WEFT_TSAN_SUPPRESSIONS}")
			string(APPEND tsan ":suppressions=${WEFT_TSAN_SUPPRESSIONS}")
		endif()
		list(APPEND env "TSAN_OPTIONS=${tsan}")
	endif()
	if(WEFT_SANITIZE MATCHES "address")
		# detect_stack_use_after_return=0: the fake-stack mode does not
		# follow hand-written context switches.
		list(APPEND env "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0")
	endif()
	if(WEFT_SANITIZE MATCHES "undefined")
		list(APPEND env "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
	endif()
	if(WEFT_TEST_ASLEEP_REPORT)
		# The real clock's "all tasks are asleep" report on in every
		# runtime a test creates from the environment (rule 46); see
		# weft_test_asleep_check.
		list(APPEND env "WEFT_DEADLOCK=report")
	endif()
	set(${out} "${env}" PARENT_SCOPE)
endfunction()

# weft_test_asleep_check(<test>): with WEFT_TEST_ASLEEP_REPORT, <test> fails
# when its output says "all tasks are asleep": the suite's tests never leave
# every task asleep with nothing that could wake them, so a report there is
# a false one (docs/semantics.md rule 46).  A test that deadlocks on purpose
# sets its runtime's deadlock mode itself (off, or report inside a child
# process whose stderr it captures), so it passes too.
function(weft_test_asleep_check name)
	if(WEFT_TEST_ASLEEP_REPORT)
		set_property(TEST ${name} PROPERTY FAIL_REGULAR_EXPRESSION
			"all tasks are asleep")
	endif()
endfunction()

# weft_add_skipped_test(<name> <labels> <reason>): registers <name> as a
# test that does not run here and says why (ctest lists it as skipped),
# for tests a cross build cannot run.  The command is the host's sh.
function(weft_add_skipped_test name labels reason)
	add_test(NAME ${name} COMMAND sh -c "echo \"skipped: $1\"; exit 77"
		sh "${reason}")
	set_tests_properties(${name} PROPERTIES
		LABELS "${labels}" SKIP_RETURN_CODE 77 TIMEOUT 60)
endfunction()

# weft_test_timeout(<out-var> <seconds>): seconds x the multiplier.
function(weft_test_timeout out seconds)
	math(EXPR t "${seconds} * ${WEFT_TEST_TIMEOUT_MULTIPLIER}")
	set(${out} ${t} PARENT_SCOPE)
endfunction()

# weft_add_test(<area> [LABELS <label>...] [TIMEOUT <seconds>]
#               [SOURCE <file>] [ENVIRONMENT <VAR=value>...])
#
# Builds tests/test_<area>.c (or SOURCE, e.g. tests/stress/<x>.c) together
# with tests/support.c into the executable test_<area>, links it with
# weft_static (so it may call internal weft__* functions), cmocka, ck, libuv
# and Threads, and registers it with ctest under the name test_<area>.
# runtime/ and tests/ are on the include path.
# TIMEOUT defaults to 120 s and is multiplied by WEFT_TEST_TIMEOUT_MULTIPLIER
# (3 under sanitizers).  ENVIRONMENT entries are added to the common ones,
# e.g. ENVIRONMENT CMOCKA_TEST_ABORT=1 for a binary that may fail inside the
# runtime.  Select by label with `tools/run test -L <label>`.
function(weft_add_test area)
	cmake_parse_arguments(PARSE_ARGV 1 arg "" "TIMEOUT;SOURCE"
		"LABELS;ENVIRONMENT")
	if(arg_UNPARSED_ARGUMENTS)
		message(FATAL_ERROR
			"weft_add_test(${area}): unknown arguments: ${arg_UNPARSED_ARGUMENTS}")
	endif()
	if(NOT arg_SOURCE)
		set(arg_SOURCE tests/test_${area}.c)
	endif()
	if(NOT arg_TIMEOUT)
		set(arg_TIMEOUT 120)
	endif()

	set(name test_${area})
	add_executable(${name}
		${PROJECT_SOURCE_DIR}/${arg_SOURCE}
		${PROJECT_SOURCE_DIR}/tests/support.c)
	target_include_directories(${name} PRIVATE
		${PROJECT_SOURCE_DIR}/runtime
		${PROJECT_SOURCE_DIR}/tests)
	target_link_libraries(${name} PRIVATE weft_static PkgConfig::CMOCKA
		PkgConfig::CK PkgConfig::LIBUV Threads::Threads)
	weft_add_valgrind_headers(${name})

	add_test(NAME ${name} COMMAND ${name})
	weft_test_environment(env)
	list(APPEND env ${arg_ENVIRONMENT})
	weft_test_timeout(timeout ${arg_TIMEOUT})
	set_property(TEST ${name} PROPERTY ENVIRONMENT ${env})
	set_property(TEST ${name} PROPERTY TIMEOUT ${timeout})
	weft_test_asleep_check(${name})
	if(arg_LABELS)
		set_property(TEST ${name} PROPERTY LABELS ${arg_LABELS})
	endif()
endfunction()

# weft_add_header_tests(): every header in WEFT_PUBLIC_HEADERS must compile
# on its own, twice in a row (include guard), as strict C11 and as strict
# C++17 with -Wall -Wextra -Wpedantic -Werror.  One tiny translation unit
# per header is generated at configure time; tests/test_headers.c and
# tests/test_headers_cpp.cpp provide main() and print what was checked.
# The real test is that the two executables build.
function(weft_add_header_tests)
	set(gen ${PROJECT_BINARY_DIR}/header_checks)
	set(c_sources "")
	set(cxx_sources "")
	set(names "")
	foreach(h IN LISTS WEFT_PUBLIC_HEADERS)
		string(MAKE_C_IDENTIFIER "${h}" id)
		set(body "/* Generated by cmake/WeftTesting.cmake: <${h}> must compile alone. */\n")
		string(APPEND body "#include <${h}>\n#include <${h}>\n\n")
		string(APPEND body "int weft_header_check_${id}(void);\n")
		string(APPEND body "int weft_header_check_${id}(void)\n{\n\treturn 0;\n}\n")
		file(CONFIGURE OUTPUT ${gen}/${id}.c CONTENT "${body}" @ONLY)
		file(CONFIGURE OUTPUT ${gen}/${id}.cpp CONTENT "${body}" @ONLY)
		list(APPEND c_sources ${gen}/${id}.c)
		list(APPEND cxx_sources ${gen}/${id}.cpp)
		string(APPEND names "\t\"${h}\",\n")
	endforeach()
	file(CONFIGURE OUTPUT ${gen}/header_list.h CONTENT
		"/* Generated: the headers checked by test_headers. */\nstatic const char *const weft_checked_headers[] = {\n${names}};\n"
		@ONLY)

	set(strict -Wall -Wextra -Wpedantic -Werror)

	add_executable(test_headers ${PROJECT_SOURCE_DIR}/tests/test_headers.c
		${c_sources})
	set_target_properties(test_headers PROPERTIES
		C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
	target_compile_options(test_headers PRIVATE ${strict})
	target_include_directories(test_headers PRIVATE
		${PROJECT_SOURCE_DIR}/include ${gen})

	add_executable(test_headers_cpp
		${PROJECT_SOURCE_DIR}/tests/test_headers_cpp.cpp ${cxx_sources})
	set_target_properties(test_headers_cpp PROPERTIES
		CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
	target_compile_options(test_headers_cpp PRIVATE ${strict})
	target_include_directories(test_headers_cpp PRIVATE
		${PROJECT_SOURCE_DIR}/include ${gen})

	weft_test_environment(env)
	foreach(t test_headers test_headers_cpp)
		add_test(NAME ${t} COMMAND ${t})
		set_property(TEST ${t} PROPERTY ENVIRONMENT ${env})
		set_property(TEST ${t} PROPERTY TIMEOUT 60)
		set_property(TEST ${t} PROPERTY LABELS build)
	endforeach()

	# Every include/weft/*.h must be listed in WEFT_PUBLIC_HEADERS, or it
	# would be neither installed nor checked.  The glob runs at test time,
	# only for this comparison; nothing is built from it.
	add_test(NAME public_headers_listed COMMAND ${CMAKE_COMMAND}
		"-DINCLUDE_DIR=${PROJECT_SOURCE_DIR}/include"
		"-DLISTED=${WEFT_PUBLIC_HEADERS}"
		-P ${PROJECT_SOURCE_DIR}/cmake/CheckHeadersListed.cmake)
	set_property(TEST public_headers_listed PROPERTY LABELS build)
	set_property(TEST public_headers_listed PROPERTY TIMEOUT 60)
endfunction()

# weft_add_symbol_tests(): libweft.so exports weft_* public symbols only.
# tools/check_symbols.sh fails on any other name and on internal weft__*
# names (those must be hidden too).  A self-test builds a small library
# that exports one good and two bad symbols and checks that exactly the two
# bad ones are reported, so the check cannot silently pass everything.
function(weft_add_symbol_tests)
	set(script ${PROJECT_SOURCE_DIR}/tools/check_symbols.sh)
	add_test(NAME exported_symbols COMMAND ${script} $<TARGET_FILE:weft>)
	set_property(TEST exported_symbols PROPERTY LABELS build)
	set_property(TEST exported_symbols PROPERTY TIMEOUT 60)

	set(src ${PROJECT_BINARY_DIR}/symbol_checks/bad_exports.c)
	file(CONFIGURE OUTPUT ${src} CONTENT [[
/* Generated: a library exporting one allowed and two forbidden symbols,
 * used to prove that tools/check_symbols.sh rejects the forbidden ones. */
#define EXPORTED __attribute__((visibility("default")))
EXPORTED int weft_allowed_symbol(void);
EXPORTED int not_a_weft_symbol(void);
EXPORTED int weft__internal_symbol(void);
int weft_allowed_symbol(void) { return 1; }
int not_a_weft_symbol(void) { return 2; }
int weft__internal_symbol(void) { return 3; }
]] @ONLY)
	add_library(weft_symcheck_selftest SHARED ${src})
	set_target_properties(weft_symcheck_selftest PROPERTIES
		LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/symbol_checks)
	add_test(NAME exported_symbols_selftest COMMAND ${script}
		$<TARGET_FILE:weft_symcheck_selftest>)
	set_tests_properties(exported_symbols_selftest PROPERTIES
		LABELS build TIMEOUT 60
		PASS_REGULAR_EXPRESSION "2 forbidden symbol\\(s\\)"
		FAIL_REGULAR_EXPRESSION "  weft_allowed_symbol")
	# The self-test must also really exit non-zero.
	add_test(NAME exported_symbols_selftest_exit COMMAND ${script}
		$<TARGET_FILE:weft_symcheck_selftest>)
	set_tests_properties(exported_symbols_selftest_exit PROPERTIES
		LABELS build TIMEOUT 60 WILL_FAIL TRUE)
endfunction()

# weft_add_layer_tests(): runtime/ files include only their own layer and
# the layers below it (tools/check_layers.sh has the table).  A self-test
# runs the script on a generated tree with one upward include and one
# include without a folder, and expects exactly those two reports.
function(weft_add_layer_tests)
	set(script ${PROJECT_SOURCE_DIR}/tools/check_layers.sh)
	add_test(NAME runtime_layers COMMAND ${script}
		${PROJECT_SOURCE_DIR}/runtime)
	set_property(TEST runtime_layers PROPERTY LABELS build)
	set_property(TEST runtime_layers PROPERTY TIMEOUT 60)

	set(tree ${PROJECT_BINARY_DIR}/layer_checks)
	file(CONFIGURE OUTPUT ${tree}/base/low.h CONTENT
		"#include \"core/high.h\"\n#include \"weft/error.h\"\n" @ONLY)
	file(CONFIGURE OUTPUT ${tree}/core/high.h CONTENT
		"#include \"base/low.h\"\n" @ONLY)
	file(CONFIGURE OUTPUT ${tree}/core/high.c CONTENT
		"#include \"high.h\"\n#include \"core/high.h\"\n" @ONLY)
	add_test(NAME runtime_layers_selftest COMMAND ${script} ${tree})
	set_tests_properties(runtime_layers_selftest PROPERTIES
		LABELS build TIMEOUT 60
		PASS_REGULAR_EXPRESSION "2 include\\(s\\) break"
		FAIL_REGULAR_EXPRESSION "weft/error.h|high.c:2")
endfunction()

# weft_add_reference_tests(): the repository cites nothing outside itself
# (tools/check_refs.sh: no issue numbers, no documents that are not in the
# tree, every "rule N" in docs/semantics.md, every "B<n>" in
# docs/benchmarks.md).  The self-test runs the script on a generated tree
# with one fault of each kind and two good citations, and expects exactly
# the three faults.
function(weft_add_reference_tests)
	set(script ${PROJECT_SOURCE_DIR}/tools/check_refs.sh)
	add_test(NAME self_contained COMMAND ${script} ${PROJECT_SOURCE_DIR})
	set_property(TEST self_contained PROPERTY LABELS build)
	set_property(TEST self_contained PROPERTY TIMEOUT 60)

	set(tree ${PROJECT_BINARY_DIR}/reference_checks)
	file(CONFIGURE OUTPUT ${tree}/docs/semantics.md CONTENT
		"**1. One rule.**\n" @ONLY)
	file(CONFIGURE OUTPUT ${tree}/docs/benchmarks.md CONTENT
		"### B1 `one`\n" @ONLY)
	# The fault is spelt in two pieces so that this file passes the check.
	set(_issue "iss")
	string(APPEND _issue "ue 3")
	file(CONFIGURE OUTPUT ${tree}/runtime/a.c CONTENT
		"/* docs/semantics.md rule 1; B1 */\n/* see ${_issue} */\n/* rule 2 */\n/* B7 */\n"
		@ONLY)
	add_test(NAME self_contained_selftest COMMAND ${script} ${tree})
	set_tests_properties(self_contained_selftest PROPERTIES
		LABELS build TIMEOUT 60
		PASS_REGULAR_EXPRESSION "3 reference\\(s\\)"
		FAIL_REGULAR_EXPRESSION "a.c:1:")
endfunction()

# weft_add_install_test(): installs this build into a temporary prefix and
# builds consumers against it (tests/consumer/run.sh has the steps).
# Registered for non-sanitizer builds only: the consumers are compiled
# without sanitizer flags and could not link a sanitized library.
function(weft_add_install_test)
	add_test(NAME install_consumer COMMAND
		${PROJECT_SOURCE_DIR}/tests/consumer/run.sh
		--build-dir ${PROJECT_BINARY_DIR}
		--source-dir ${PROJECT_SOURCE_DIR}/tests/consumer
		--libdir ${CMAKE_INSTALL_LIBDIR}
		--version ${PROJECT_VERSION}
		--cmake ${CMAKE_COMMAND}
		--generator ${CMAKE_GENERATOR}
		--cc ${CMAKE_C_COMPILER}
		--cxx ${CMAKE_CXX_COMPILER})
	set_property(TEST install_consumer PROPERTY LABELS install)
	weft_test_timeout(timeout 300)
	set_property(TEST install_consumer PROPERTY TIMEOUT ${timeout})
endfunction()
