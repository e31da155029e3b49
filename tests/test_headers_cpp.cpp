// Public headers compile alone as C++17.
//
// The C++ twin of tests/test_headers.c: the generated translation units
// include each public header on its own, compiled with -std=c++17 -Wall
// -Wextra -Wpedantic -Werror, so every header must carry its extern "C"
// block and use nothing C++ rejects.  The check is that this builds.
#include <cstdio>

#include "header_list.h"

int main()
{
	for (const char *h : weft_checked_headers)
		std::printf("C++17: <%s> compiles alone\n", h);
	std::printf("%zu public headers checked as C++17\n",
		sizeof weft_checked_headers / sizeof weft_checked_headers[0]);
	return 0;
}
