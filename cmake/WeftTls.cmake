# libweft-tls: TLS streams over weft streams (include/weft/tls.h,
# runtime/tls/), a library of its own above libweft, built when OpenSSL 3
# is found (Debian: libssl-dev, which tools/run deps installs).  Included
# from CMakeLists.txt after the weft targets.
#
#   weft-tls         shared library, links weft and OpenSSL::SSL
#   weft-tls-static  static library, links weft_static and OpenSSL::SSL
#   weft-tls.pc      pkg-config module (Requires: weft; OpenSSL private)
#
# WEFT_HAVE_TLS is 1 when the targets exist (the tests and the tools'
# https support depend on it).

set(WEFT_TLS_SOURCES runtime/tls/tls.c)
set(WEFT_OPENSSL_MIN 3.0)

set(WEFT_HAVE_TLS 0)
option_if_not_defined(WEFT_WITH_TLS
	"Build libweft-tls (TLS streams) when OpenSSL >= 3.0 is found" ON)
if(NOT WEFT_WITH_TLS)
	return()
endif()
find_package(OpenSSL ${WEFT_OPENSSL_MIN} QUIET)
if(NOT OpenSSL_FOUND)
	message(STATUS "weft: OpenSSL >= ${WEFT_OPENSSL_MIN} not found "
		"(Debian: libssl-dev): libweft-tls is not built")
	return()
endif()
set(WEFT_HAVE_TLS 1)
message(STATUS "Found OpenSSL ${OPENSSL_VERSION}: building libweft-tls")

# One set of position-independent objects for both libraries; only the
# WEFT_EXTERN declarations of weft/tls.h are exported.  The sources see
# the public headers only: libweft's internals are hidden from a library
# that links it.
add_library(weft_tls_objects OBJECT ${WEFT_TLS_SOURCES})
set_target_properties(weft_tls_objects PROPERTIES
	POSITION_INDEPENDENT_CODE ON
	C_VISIBILITY_PRESET hidden)
target_include_directories(weft_tls_objects
	PRIVATE ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(weft_tls_objects PRIVATE OpenSSL::SSL
	Threads::Threads)

add_library(weft-tls SHARED $<TARGET_OBJECTS:weft_tls_objects>)
add_library(weft-tls-static STATIC $<TARGET_OBJECTS:weft_tls_objects>)
set_target_properties(weft-tls PROPERTIES
	OUTPUT_NAME weft-tls
	VERSION ${PROJECT_VERSION}
	SOVERSION ${WEFT_SOVERSION})
set_target_properties(weft-tls-static PROPERTIES OUTPUT_NAME weft-tls)
target_link_libraries(weft-tls PUBLIC weft PRIVATE OpenSSL::SSL)
target_link_libraries(weft-tls-static PUBLIC weft_static OpenSSL::SSL)
foreach(_t weft-tls weft-tls-static)
	target_include_directories(${_t} PUBLIC
		$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
		$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()
if(NOT WEFT_SANITIZE)
	target_link_options(weft-tls PRIVATE LINKER:--no-undefined)
endif()
add_library(weft::weft-tls ALIAS weft-tls)
add_library(weft::weft-tls-static ALIAS weft-tls-static)

# find_package(weft CONFIG COMPONENTS tls) gives weft::weft-tls and
# weft::weft-tls-static (cmake/weftConfig.cmake.in).
install(TARGETS weft-tls EXPORT weftTlsTargets
	LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
		COMPONENT weft_runtime
		NAMELINK_COMPONENT weft_development)
install(TARGETS weft-tls-static EXPORT weftTlsTargets
	ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
		COMPONENT weft_development)
install(EXPORT weftTlsTargets NAMESPACE weft::
	DESTINATION ${WEFT_CMAKE_DIR} FILE weftTlsTargets.cmake
	COMPONENT weft_development)
configure_file(cmake/weft-tls.pc.in ${PROJECT_BINARY_DIR}/weft-tls.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/weft-tls.pc
	DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
	COMPONENT weft_development)
