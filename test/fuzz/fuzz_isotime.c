/* fuzz_isotime.c - libFuzzer target for Kudu's ISO-8601 times.
 *
 * Parsing returns 0 or a negative errno and never ISOTIME_NONE; a parsed
 * time shown and read back lands on its own second (floored), at either
 * end of the range too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "isotime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	char shown[64];
	int64_t ns, back;
	int r;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	r = isotime_parse(buf, size, &ns);
	if (r > 0)
		abort();
	if (r == 0) {
		if (ns == ISOTIME_NONE)
			abort();
		isotime_format(ns, "none", shown, sizeof(shown));
		if (!memchr(shown, '\0', sizeof(shown)))
			abort();
		/* The first second of the range floors to a time before it. */
		if (strcmp(shown, "none") != 0 && isotime_parse(shown, strlen(shown), &back) != 0) {
			if (ns >= INT64_MIN + 1000000000LL)
				abort();
		} else if (strcmp(shown, "none") != 0 && (back > ns || ns - back >= 1000000000LL)) {
			abort();
		}
	}
	/* Any 8 bytes as a time: shown without crashing, in a tiny buffer too. */
	if (size >= 8) {
		char tiny[8];
		memcpy(&ns, data, sizeof(ns));
		isotime_format(ns, "-", shown, sizeof(shown));
		isotime_format(ns, "-", tiny, sizeof(tiny));
	}
	free(buf);
	return 0;
}
