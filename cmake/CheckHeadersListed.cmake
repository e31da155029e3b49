# cmake -DINCLUDE_DIR=<dir> -DLISTED=<h1;h2;...> -P CheckHeadersListed.cmake
#
# Fails when a public header exists under INCLUDE_DIR (weft.h or weft/*.h)
# but is missing from WEFT_PUBLIC_HEADERS in CMakeLists.txt: such a header
# would be neither installed nor compile-checked on its own.
cmake_minimum_required(VERSION 3.21)

file(GLOB found RELATIVE "${INCLUDE_DIR}"
	"${INCLUDE_DIR}/weft.h" "${INCLUDE_DIR}/weft/*.h")
set(missing "")
foreach(h IN LISTS found)
	if(NOT h IN_LIST LISTED)
		list(APPEND missing "${h}")
	endif()
endforeach()
if(missing)
	list(JOIN missing "\n  " text)
	message(FATAL_ERROR "public headers not in WEFT_PUBLIC_HEADERS "
		"(CMakeLists.txt); add them so they are installed and "
		"checked:\n  ${text}")
endif()
list(LENGTH found n)
message(STATUS "all ${n} public headers are listed in WEFT_PUBLIC_HEADERS")
