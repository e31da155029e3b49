/* Fatal assertions and diagnostics to stderr.  Each message goes out in one
 * write(2) so lines from concurrent workers never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/diag.h"

static void diag_write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void weft__diag_raw(const char *msg)
{
	diag_write_all(msg, strlen(msg));
}

void weft__diag(const char *fmt, ...)
{
	char buf[1024];
	int off = snprintf(buf, sizeof buf, "weft: ");
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + off, sizeof buf - (size_t)off - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)off + (n < 0 ? 0 : (size_t)n);
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	buf[len++] = '\n';
	diag_write_all(buf, len);
}

void weft__diag_assert_fail(const char *file, int line, const char *expr,
	const char *msg)
{
	const char *base = strrchr(file, '/');
	weft__diag("%s: %s (%s) at %s:%d", base ? base + 1 : file, msg, expr,
		file, line);
	abort();
}
