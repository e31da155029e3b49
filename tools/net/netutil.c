/* Helpers shared by the network tools (netutil.h). */
#include "netutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int netutil_parse_long(const char *s, long min, long max, const char *what,
	long *out)
{
	char *end;
	errno = 0;
	long v = s && *s ? strtol(s, &end, 10) : 0;
	if (s == NULL || *s == '\0' || errno != 0 || *end != '\0' || v < min ||
		v > max) {
		fprintf(stderr,
			"invalid %s '%s': expected an integer in "
			"%ld..%ld\n",
			what, s ? s : "", min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int netutil_parse_url(const char *url, struct netutil_url *out)
{
	const char *p = url;
	if (strncmp(p, "http://", 7) != 0)
		return -1;
	p += 7;
	/* An IPv6 literal is bracketed (RFC 3986 3.2.2): http://[::1]:8080/ */
	out->bracketed = *p == '[';
	size_t hl = out->bracketed ? strcspn(++p, "]") : strcspn(p, ":/");
	if (hl == 0 || hl >= sizeof out->host ||
		(out->bracketed && p[hl] != ']'))
		return -1;
	memcpy(out->host, p, hl);
	out->host[hl] = '\0';
	p += hl + out->bracketed;
	out->port = 80;
	if (*p == ':') {
		char *end;
		long v = strtol(p + 1, &end, 10);
		if (end == p + 1 || v < 1 || v > 65535 ||
			(*end != '\0' && *end != '/'))
			return -1;
		out->port = (int)v;
		p = end;
	}
	if (*p == '\0')
		p = "/";
	if (strlen(p) >= sizeof out->path)
		return -1;
	strcpy(out->path, p);
	return 0;
}

double netutil_ms(long long ns)
{
	return (double)ns / 1e6;
}
