/* fuzz_kudu.c - libFuzzer target for every Kudu file parser.
 *
 * The first byte picks the parser, the rest is its input, so one corpus
 * covers info.lock, the file locks, status.xml, times and names through
 * the Kudu meaning on top; json.c, xml.c and isotime.c have their own
 * targets too. Each parser must return 0 or a negative errno, never read past the
 * input (ASan), and leave every string it fills terminated.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kudu.h"

static void check_terminated(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned which = data[0] % 6;
	/* A heap copy of exactly the input, without a terminator, so any read
	 * past the end is caught. */
	size_t len = size - 1;
	char *buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, len);

	switch (which) {
	case 0: {
		struct kudu_info_lock l;
		int r = kudu_parse_info_lock(buf, len, &l);
		if (r > 0)
			abort();
		check_terminated(l.op, sizeof(l.op));
		check_terminated(l.worker, sizeof(l.worker));
		break;
	}
	case 1: {
		struct kudu_file_lock l;
		if (kudu_parse_file_lock(buf, len, &l) > 0)
			abort();
		check_terminated(l.operation, sizeof(l.operation));
		check_terminated(l.instance, sizeof(l.instance));
		break;
	}
	case 2: {
		struct kudu_status st;
		if (kudu_parse_status_xml(buf, len, &st) > 0)
			abort();
		check_terminated(st.id, sizeof(st.id));
		check_terminated(st.status_text, sizeof(st.status_text));
		check_terminated(st.message, sizeof(st.message));
		(void)kudu_status_finished(&st);
		(void)kudu_state_name(st.state);
		break;
	}
	case 3: {
		/* (Once log.log lines; log.log is no longer parsed.) A time
		 * shown and read back lands on its own second. */
		int64_t ns, back;
		char shown[64];
		if (isotime_parse(buf, len, &ns) == 0) {
			isotime_format(ns, "none", shown, sizeof(shown));
			if (strcmp(shown, "none") != 0 &&
			    isotime_parse(shown, strlen(shown), &back) == 0 &&
			    (back > ns || ns - back >= 1000000000LL))
				abort();
		}
		break;
	}
	case 4: {
		int64_t ns;
		if (isotime_parse(buf, len, &ns) > 0)
			abort();
		break;
	}
	case 5: {
		/* Names come from readdir: NUL-terminated, at most NAME_MAX bytes. */
		char name[256];
		size_t n = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
		memcpy(name, buf, n);
		name[n] = '\0';
		(void)kudu_name_describe(kudu_classify_lock(name));
		(void)kudu_name_describe(kudu_classify_deployment(name));
		break;
	}
	}
	free(buf);
	return 0;
}
