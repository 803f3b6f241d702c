/* jsonw.c - writing JSON values. */
#include "jsonw.h"


#include "kudu.h"

void jsonw_string(FILE *out, const char *s)
{
	fputc('"', out);
	jsonw_escape(out, s);
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
