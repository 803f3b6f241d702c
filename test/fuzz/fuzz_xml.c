/* fuzz_xml.c - libFuzzer target for the XML reader alone.
 *
 * The first byte picks how children of the root are read: skipped whole,
 * their text kept in a small buffer, or their grandchildren read too. The
 * reader must return 0 or a negative errno, never read past the input
 * (ASan), never recurse without bound and leave every text terminated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

static unsigned mode;

static int child(struct xml *x, unsigned depth, const char *name, size_t name_len, bool empty,
		 void *ctx)
{
	char value[16];
	struct text t;
	int r;

	if (depth > XML_MAX_DEPTH + 1)
		abort();
	if (empty)
		return 0;
	switch (mode) {
	case 0:
		return xml_skip_child(x, depth, name, name_len, empty, ctx);
	case 1:
		text_init(&t, value, sizeof(value));
		t.skip_leading_space = true;
		r = xml_content(x, depth, name, name_len, &t, NULL, NULL);
		text_trim_end(&t);
		if (!memchr(value, '\0', sizeof(value)))
			abort();
		return r;
	default:
		text_init(&t, NULL, 0);
		return xml_content(x, depth, name, name_len, &t, child, ctx);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	mode = data[0] % 3;
	size_t len = size - 1;
	char *buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, len);
	if (xml_document(buf, len, "deployment", child, NULL) > 0)
		abort();
	free(buf);
	return 0;
}
