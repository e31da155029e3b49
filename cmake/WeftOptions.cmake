# Option helpers that let an embedding project preset weft's options.
#
# A project that pulls weft in with add_subdirectory() or FetchContent can
# set(WEFT_BUILD_TESTS OFF) (a normal variable or a cache entry) before weft
# is added; these helpers then leave the value alone instead of creating a
# cache entry that would shadow it.

# option_if_not_defined(<name> <doc> <default>): a boolean option.
function(option_if_not_defined name doc default)
	if(NOT DEFINED ${name})
		option(${name} "${doc}" ${default})
	endif()
endfunction()

# string_option_if_not_defined(<name> <doc> <default> [<allowed>...]): a
# string cache entry, with its allowed values shown as a drop-down list in
# cmake-gui/ccmake.  Validation is left to the caller, because a preset
# normal variable bypasses the cache entry.
function(string_option_if_not_defined name doc default)
	if(NOT DEFINED ${name})
		set(${name} "${default}" CACHE STRING "${doc}")
		if(ARGN)
			set_property(CACHE ${name} PROPERTY STRINGS ${ARGN})
		endif()
	endif()
endfunction()
