/* Public headers compile alone as C11.
 *
 * The build generates one translation unit per header listed in
 * WEFT_PUBLIC_HEADERS (CMakeLists.txt); each includes its header twice and
 * nothing else, and is compiled with -std=c11 -Wall -Wextra -Wpedantic
 * -Werror.  The check is that this executable builds at all; running it
 * only reports what was checked.  tests/test_headers_cpp.cpp is the C++17
 * twin. */
#include <stdio.h>

#include "header_list.h"

int main(void)
{
	size_t n = sizeof weft_checked_headers / sizeof weft_checked_headers[0];
	for (size_t i = 0; i < n; i++)
		printf("C11: <%s> compiles alone\n", weft_checked_headers[i]);
	printf("%zu public headers checked as C11\n", n);
	return 0;
}
