/* Small helpers shared by the network tools (weft-echo, weft-httpd,
 * weft-fetch): argument parsing and URL splitting. */
#ifndef WEFT_TOOLS_NETUTIL_H
#define WEFT_TOOLS_NETUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Parses a whole decimal integer in [min, max]; 0, or -1 with a message
 * on stderr naming `what`. */
int netutil_parse_long(const char *s, long min, long max, const char *what,
	long *out);

/* An http:// or https:// URL split into host, port (default 80 or 443)
 * and request target (path and query; it starts with '/'), by
 * http-parser's http_parser_parse_url.  host may be a name, an IPv4
 * address or a bracketed IPv6 address.  Returns 0, or -1 if url is not
 * http[s]://host[:port][/path][?query] or a part is too long. */
struct netutil_url {
	bool https;	/* the scheme was https */
	char host[256]; /* an IPv6 literal without its brackets */
	bool bracketed; /* host was [an IPv6 literal] */
	int port;
	char path[2048];
};
int netutil_parse_url(const char *url, struct netutil_url *out);

/* Milliseconds as a double from weft_now() nanoseconds. */
double netutil_ms(long long ns);

#endif
