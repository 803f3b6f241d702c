/* jsonw.h - writing JSON values (report --json, the archive's notes). */
#ifndef LOCKWARDEN_JSONW_H
#define LOCKWARDEN_JSONW_H

#include <stdint.h>
#include <stdio.h>

/* The body of a JSON string (no quotes). Bytes outside printable ASCII are
 * written one by one as \u00XX: names on disk need not be UTF-8, and the
 * output must stay valid JSON whatever they hold. A reader gets the original
 * bytes back by taking each code point as one byte (Python:
 * value.encode("latin-1")). Inline so that log.c, a leaf every module and
 * test links, shares this one rule without linking the rest of jsonw.c. */
static inline void jsonw_escape(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
}

/* A JSON string: jsonw_escape() between quotes. */
void jsonw_string(FILE *out, const char *s);
/* A UTC time as "2026-11-26T03:51:59Z", or null for KUDU_TIME_NONE. */
void jsonw_time(FILE *out, int64_t unix_ns);

#endif
