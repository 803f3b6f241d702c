/* jsonw.c - writing JSON values. */
#include "jsonw.h"

#include <time.h>

#include "kudu.h"

void jsonw_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

void jsonw_time(FILE *out, int64_t unix_ns)
{
	char when[40];
	struct tm tm;
	time_t t;

	if (unix_ns == KUDU_TIME_NONE) {
		fputs("null", out);
		return;
	}
	t = (time_t)(unix_ns / 1000000000LL);
	if (!gmtime_r(&t, &tm) || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		fputs("null", out);
		return;
	}
	jsonw_string(out, when);
}
