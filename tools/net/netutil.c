/* Helpers shared by the network tools (netutil.h). */
#include "netutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

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
	/* http-parser's URL parser (linked for the HTTP parsing anyway):
	 * RFC 3986 authority rules, bracketed IPv6 literals, userinfo. */
	struct http_parser_url u;
	http_parser_url_init(&u);
	size_t len = strlen(url);
	if (http_parser_parse_url(url, len, 0, &u) != 0)
		return -1;
	if (!(u.field_set & (1 << UF_SCHEMA)) ||
		!(u.field_set & (1 << UF_HOST)))
		return -1;
	const char *scheme = url + u.field_data[UF_SCHEMA].off;
	size_t sl = u.field_data[UF_SCHEMA].len;
	if (sl == 4 && strncasecmp(scheme, "http", 4) == 0)
		out->https = false;
	else if (sl == 5 && strncasecmp(scheme, "https", 5) == 0)
		out->https = true;
	else
		return -1;
	size_t hoff = u.field_data[UF_HOST].off;
	size_t hl = u.field_data[UF_HOST].len;
	if (hl == 0 || hl >= sizeof out->host)
		return -1;
	memcpy(out->host, url + hoff, hl);
	out->host[hl] = '\0';
	/* The parser gives an IPv6 literal without its brackets. */
	out->bracketed = hoff > 0 && url[hoff - 1] == '[';
	out->port = out->https ? 443 : 80;
	if (u.field_set & (1 << UF_PORT)) {
		if (u.port == 0)
			return -1;
		out->port = u.port;
	}
	/* The request target: path and query, never the fragment. */
	const char *p = "/";
	size_t pl = 1;
	if (u.field_set & (1 << UF_PATH)) {
		p = url + u.field_data[UF_PATH].off;
		pl = u.field_data[UF_PATH].len;
	}
	size_t ql = u.field_set & (1 << UF_QUERY)
		? (size_t)u.field_data[UF_QUERY].len + 1
		: 0;
	if (pl + ql >= sizeof out->path)
		return -1;
	memcpy(out->path, p, pl);
	if (ql > 0) {
		out->path[pl] = '?';
		memcpy(out->path + pl + 1, url + u.field_data[UF_QUERY].off,
			ql - 1);
	}
	out->path[pl + ql] = '\0';
	return 0;
}

double netutil_ms(long long ns)
{
	return (double)ns / 1e6;
}
