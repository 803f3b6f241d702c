/* json.c - a bounded scanner of just enough JSON for Kudu's lock files.
 * See json.h. */
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

static void json_skip_space(struct json *j);
static int json_object(struct json *j, unsigned depth, json_member_fn fn, void *ctx);

static void json_skip_space(struct json *j)
{
	while (j->p < j->end && text_is_space(*j->p))
		j->p++;
}

static int json_hex4(struct json *j, unsigned long *out)
{
	unsigned long v = 0;

	if (j->end - j->p < 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		int h = text_hex_value(j->p[i]);
		if (h < 0)
			return -EINVAL;
		v = v * 16 + (unsigned long)h;
	}
	j->p += 4;
	*out = v;
	return 0;
}

/* At a '\u' escape's four digits. A lone surrogate (which no UTF-8 can hold)
 * and U+0000 (which would cut the C string short) become U+FFFD: a lock that
 * carries one is still a lock, so it is not refused. */
static int json_unicode_escape(struct json *j, struct text *out)
{
	unsigned long cp, low;
	int r = json_hex4(j, &cp);

	if (r < 0)
		return r;
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		const char *after_high = j->p;

		if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
			j->p += 2;
			r = json_hex4(j, &low);
			if (r < 0)
				return r;
			if (low >= 0xDC00 && low <= 0xDFFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
			} else {
				/* Not a pair: the second escape stands alone. */
				j->p = after_high;
				cp = 0xFFFD;
			}
		} else {
			cp = 0xFFFD;
		}
	} else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
		cp = 0xFFFD;
	}
	text_put_code_point(out, cp);
	return 0;
}

/* At a '"': decodes the string into out (which may have no buffer). */
int json_string(struct json *j, struct text *out)
{
	if (j->p >= j->end || *j->p != '"')
		return -EINVAL;
	j->p++;
	while (j->p < j->end) {
		char c = *j->p++;
		char e;
		int r;

		if (c == '"') {
			text_finish(out);
			return 0;
		}
		if ((unsigned char)c < 0x20)
			return -EINVAL;
		if (c != '\\') {
			text_put(out, &c, 1);
			continue;
		}
		if (j->p >= j->end)
			return -EINVAL;
		e = *j->p++;
		switch (e) {
		case '"':
		case '\\':
		case '/':
			text_put(out, &e, 1);
			break;
		case 'b':
			text_put(out, "\b", 1);
			break;
		case 'f':
			text_put(out, "\f", 1);
			break;
		case 'n':
			text_put(out, "\n", 1);
			break;
		case 'r':
			text_put(out, "\r", 1);
			break;
		case 't':
			text_put(out, "\t", 1);
			break;
		case 'u':
			r = json_unicode_escape(j, out);
			if (r < 0)
				return r;
			break;
		default:
			return -EINVAL;
		}
	}
	return -EINVAL;
}

/* At a number. *is_int tells whether it is an integer that a long long
 * holds; only then is *value set. */
int json_number(struct json *j, long long *value, bool *is_int)
{
	const char *p = j->p;
	unsigned long long magnitude = 0;
	bool negative = false, fits = true;

	if (p < j->end && *p == '-') {
		negative = true;
		p++;
	}
	if (p >= j->end || !text_is_digit(*p))
		return -EINVAL;
	if (*p == '0') {
		p++;
	} else {
		for (; p < j->end && text_is_digit(*p); p++) {
			unsigned d = (unsigned)(*p - '0');
			if (magnitude > (ULLONG_MAX - d) / 10)
				fits = false;
			else
				magnitude = magnitude * 10 + d;
		}
	}
	if (p < j->end && *p == '.') {
		p++;
		if (p >= j->end || !text_is_digit(*p))
			return -EINVAL;
		while (p < j->end && text_is_digit(*p))
			p++;
		fits = false;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || !text_is_digit(*p))
			return -EINVAL;
		while (p < j->end && text_is_digit(*p))
			p++;
		fits = false;
	}
	if (fits && !negative && magnitude > (unsigned long long)LLONG_MAX)
		fits = false;
	if (fits && negative && magnitude > (unsigned long long)LLONG_MAX + 1)
		fits = false;
	if (fits) {
		if (negative)
			*value = magnitude == (unsigned long long)LLONG_MAX + 1 ?
					 LLONG_MIN : -(long long)magnitude;
		else
			*value = (long long)magnitude;
	}
	*is_int = fits;
	j->p = p;
	return 0;
}

int json_literal(struct json *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return -EINVAL;
	j->p += n;
	return 0;
}

/* At a container's opening byte: moves past it. Returns 1 when the
 * container is empty (its closing byte consumed too), 0 when items follow. */
static int json_open(struct json *j, unsigned depth, char close)
{
	if (depth > JSON_MAX_DEPTH)
		return -EINVAL;
	j->p++;
	json_skip_space(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 1;
	}
	return 0;
}

/* After an item: 1 when a ',' announces another, 0 at the closing byte
 * (consumed), -EINVAL for anything else (a trailing comma included, since
 * the next item then fails). */
static int json_next(struct json *j, char close)
{
	json_skip_space(j);
	if (j->p >= j->end)
		return -EINVAL;
	if (*j->p == close) {
		j->p++;
		return 0;
	}
	if (*j->p != ',')
		return -EINVAL;
	j->p++;
	return 1;
}

/* At a '{'. Each member's key is decoded and passed to fn, which must consume
 * exactly one value; with no fn (or a key too long to be one we know) the
 * value is skipped. */
static int json_object(struct json *j, unsigned depth, json_member_fn fn, void *ctx)
{
	int r = json_open(j, depth, '}');

	if (r != 0)
		return r < 0 ? r : 0;
	do {
		char key[JSON_KEY_MAX];
		struct text k;

		text_init(&k, key, sizeof(key));
		json_skip_space(j);
		r = json_string(j, &k);
		if (r < 0)
			return r;
		json_skip_space(j);
		if (j->p >= j->end || *j->p != ':')
			return -EINVAL;
		j->p++;
		json_skip_space(j);
		if (fn && !k.truncated)
			r = fn(j, depth, key, ctx);
		else
			r = json_skip_value(j, depth);
		if (r < 0)
			return r;
	} while ((r = json_next(j, '}')) == 1);
	return r;
}

static int json_array_items(struct json *j, unsigned depth, json_item_fn fn, void *ctx)
{
	int r = json_open(j, depth, ']');

	if (r != 0)
		return r < 0 ? r : 0;
	do {
		json_skip_space(j);
		r = fn ? fn(j, depth, ctx) : json_skip_value(j, depth);
		if (r < 0)
			return r;
	} while ((r = json_next(j, ']')) == 1);
	return r;
}

static int json_array_skip(struct json *j, unsigned depth)
{
	return json_array_items(j, depth, NULL, NULL);
}

int json_array(struct json *j, unsigned depth, json_item_fn fn, void *ctx)
{
	json_skip_space(j);
	if (j->p < j->end && *j->p == '[')
		return json_array_items(j, depth + 1, fn, ctx);
	return json_skip_value(j, depth);
}

/* Skips one value of any type; depth is that of the enclosing container. */
int json_skip_value(struct json *j, unsigned depth)
{
	struct text none;
	long long ignored_value;
	bool ignored_is_int;

	json_skip_space(j);
	if (j->p >= j->end)
		return -EINVAL;
	switch (*j->p) {
	case '"':
		text_init(&none, NULL, 0);
		return json_string(j, &none);
	case '{':
		return json_object(j, depth + 1, NULL, NULL);
	case '[':
		return json_array_skip(j, depth + 1);
	case 't':
		return json_literal(j, "true");
	case 'f':
		return json_literal(j, "false");
	case 'n':
		return json_literal(j, "null");
	default:
		return json_number(j, &ignored_value, &ignored_is_int);
	}
}


enum json_kind json_peek(const struct json *j)
{
	if (j->p >= j->end)
		return JSON_OTHER;
	if (*j->p == '"')
		return JSON_STRING;
	if (*j->p == '-' || text_is_digit(*j->p))
		return JSON_NUMBER;
	if (*j->p == 'n')
		return JSON_NULL;
	return JSON_OTHER;
}

/* A member that should be a string: decoded into buf when it is one, left
 * alone (and skipped) when it is of another type. */
int json_member_string(struct json *j, unsigned depth, char *buf, size_t size)
{
	struct text t;

	if (json_peek(j) != JSON_STRING)
		return json_skip_value(j, depth);
	text_init(&t, buf, size);
	return json_string(j, &t);
}

int json_member_integer(struct json *j, unsigned depth, bool *has, long long *value)
{
	if (json_peek(j) != JSON_NUMBER)
		return json_skip_value(j, depth);
	return json_number(j, value, has);
}

/* Kudu reads these files with Json.NET, which matches member names without
 * regard to case; doing the same keeps us reading what Kudu reads. */
bool json_key_is(const char *key, const char *name)
{
	return text_equal_nocase(key, strlen(key), name);
}

/* The whole document: optional UTF-8 byte-order mark and whitespace around
 * one object. -ENODATA when there is nothing but those. */
int json_document(const char *buf, size_t len, json_member_fn fn, void *ctx)
{
	struct json j;
	int r;

	if (!buf) {
		if (len)
			return -EINVAL;
		buf = "";
	}
	j.p = buf;
	j.end = buf + len;
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		j.p += 3;
	json_skip_space(&j);
	if (j.p == j.end)
		return -ENODATA;
	if (*j.p != '{')
		return -EINVAL;
	r = json_object(&j, 1, fn, ctx);
	if (r < 0)
		return r;
	json_skip_space(&j);
	return j.p == j.end ? 0 : -EINVAL;
}
