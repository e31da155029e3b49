/* UTF-8 well-formedness, for the JSON writers (core/dump.c, core/trace.c):
 * JSON text is UTF-8, and the names they write are any bytes a caller
 * gave (a task name cut at WEFT_TASK_NAME_MAX - 1 bytes may end inside a
 * character).  Nothing here owns state. */
#ifndef WEFT_RUNTIME_BASE_UTF8_H
#define WEFT_RUNTIME_BASE_UTF8_H

#include <stddef.h>

/* The length (1-4) of the well-formed UTF-8 sequence that starts at p, or
 * 0 if the bytes at p start none (The Unicode Standard, table 3-7: no
 * overlong form, no surrogate, nothing above U+10FFFF).  p points at a
 * NUL-terminated string and *p is not NUL; a NUL ends a sequence as any
 * other byte that is not a continuation would. */
static inline size_t weft__utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	/* The second byte's range depends on the lead byte; the third and
	 * fourth are any continuation byte (10xxxxxx). */
	unsigned lo = 0x80, hi = 0xbf;
	size_t k;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates above */
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong below */
		else if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF above */
	} else {
		return 0;
	}
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return k;
}

#endif
