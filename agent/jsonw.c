/* jsonw.c - writing JSON values. */
#include "jsonw.h"


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

	if (unix_ns == KUDU_TIME_NONE) {
		fputs("null", out);
		return;
	}
	jsonw_string(out, isotime_format(unix_ns, "", when, sizeof(when)));
}
