/* fuzz_json.c - libFuzzer target for the JSON scanner alone.
 *
 * Every member is read by the kind the scanner peeks (string, number, a
 * literal, or skipped), the way a caller that trusts nothing would, so each
 * path of json.c is driven without Kudu's meaning on top. The scanner must
 * return 0 or a negative errno, never read past the input (ASan) and leave
 * every text terminated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct seen {
	char last[32];
	size_t members;
};

static int member(struct json *j, unsigned depth, const char *key, void *ctx)
{
	struct seen *s = ctx;
	long long value;
	bool is_int;
	int r;

	s->members++;
	if (!memchr(key, '\0', JSON_KEY_MAX))
		abort();
	switch (json_peek(j)) {
	case JSON_STRING:
		if (json_key_is(key, "skip"))
			return json_skip_value(j, depth);
		r = json_member_string(j, depth, s->last, sizeof(s->last));
		if (!memchr(s->last, '\0', sizeof(s->last)))
			abort();
		return r;
	case JSON_NUMBER:
		return json_number(j, &value, &is_int);
	case JSON_NULL:
		return json_literal(j, "null");
	case JSON_OTHER:
		break;
	}
	return json_skip_value(j, depth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A heap copy of exactly the input, without a terminator. */
	char *buf = malloc(size ? size : 1);
	struct seen s = { .members = 0 };

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (json_document(buf, size, member, &s) > 0)
		abort();
	/* Each member takes at least 5 bytes ("":0,) so a count above that
	 * means the scanner went round without consuming input. */
	if (s.members > size)
		abort();
	free(buf);
	return 0;
}
