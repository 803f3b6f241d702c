/* kudu.c - what Kudu's files in /home/site mean: pure parsers and name rules.
 *
 * Everything here works on bytes the caller has already read; nothing reads
 * a clock, a file or the environment. Every parser is bounded: it never reads
 * past the length it is given (the input need not be NUL-terminated), nests
 * at most a fixed depth, and does work linear in its input, because the input
 * comes from a share that anyone with deployment rights can write to.
 */
#include "kudu.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- Small byte helpers ------------------------------------------------ */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* s[0..len) equals the NUL-terminated word, ignoring ASCII case. */
static bool equal_nocase(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(s[i]) != ascii_lower(word[i]))
			return false;
	return true;
}

/* s[0..len) equals the NUL-terminated word, byte for byte. */
static bool equal_exact(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

static bool all_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (hex_value(s[i]) < 0)
			return false;
	return true;
}

/* ---- Bounded text output ----------------------------------------------- */

/* Where a parser puts decoded text: a fixed buffer that is always
 * NUL-terminated. Once something does not fit, nothing more is added (so the
 * kept part is a true prefix), and a UTF-8 sequence cut by the limit is
 * dropped whole by text_finish. A text with no buffer only swallows, which is
 * how values that are not wanted are still checked and skipped. */
struct text {
	char *buf;
	size_t size;            /* of buf, including the terminating NUL */
	size_t len;
	bool truncated;
	bool skip_leading_space;
};

static void text_init(struct text *t, char *buf, size_t size)
{
	t->buf = size ? buf : NULL;
	t->size = size;
	t->len = 0;
	t->truncated = false;
	t->skip_leading_space = false;
	if (t->buf)
		t->buf[0] = '\0';
}

static void text_put(struct text *t, const char *bytes, size_t n)
{
	if (!t->buf || t->truncated)
		return;
	if (t->skip_leading_space && t->len == 0 && n == 1 && is_space(bytes[0]))
		return;
	if (n >= t->size - t->len) {
		t->truncated = true;
		return;
	}
	memcpy(t->buf + t->len, bytes, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void text_put_code_point(struct text *t, unsigned long cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	text_put(t, u, n);
}

/* Raw input bytes are copied one at a time, so a multi-byte character can
 * be cut by the limit: drop its first bytes rather than keep half of it. */
static void text_finish(struct text *t)
{
	size_t i, cont = 0, need;
	unsigned char lead;

	if (!t->buf || !t->truncated || t->len == 0)
		return;
	i = t->len;
	while (i > 0 && cont < 3 && ((unsigned char)t->buf[i - 1] & 0xC0) == 0x80) {
		i--;
		cont++;
	}
	if (i == 0)
		return;
	lead = (unsigned char)t->buf[i - 1];
	need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (need > cont + 1) {
		t->len = i - 1;
		t->buf[t->len] = '\0';
	}
}

static void text_trim_end(struct text *t)
{
	if (!t->buf)
		return;
	while (t->len > 0 && is_space(t->buf[t->len - 1]))
		t->len--;
	t->buf[t->len] = '\0';
}

/* ---- Time ------------------------------------------------------------- */

static bool parse_fixed_digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static bool is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (month == 2 && is_leap_year(year))
		return 29;
	return days[month - 1];
}

/* Days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar
 * (year >= 1, already validated). Counted by hand rather than with timegm():
 * timegm is not standard and mktime depends on the process's TZ. */
static int64_t days_since_epoch(int year, int month, int day)
{
	/* Days in the months before each month of a common year. */
	static const int before_month[12] = { 0, 31, 59, 90, 120, 151,
					       181, 212, 243, 273, 304, 334 };
	/* Days from 0001-01-01 to 1970-01-01. */
	const int64_t epoch_from_year_1 = 719162;
	int64_t y = year - 1;
	int64_t days = 365 * y + y / 4 - y / 100 + y / 400;

	days += before_month[month - 1];
	if (month > 2 && is_leap_year(year))
		days++;
	days += day - 1;
	return days - epoch_from_year_1;
}

/* Syntax: YYYY-MM-DD, then 'T' (or 't', or a space: some tools print ISO
 * times that way and nothing else could be meant), hh:mm:ss, an optional
 * fraction of 1 or more digits (digits past the ninth are below a nanosecond
 * and ignored), then 'Z'/'z', "+hh:mm", "-hh:mm" or nothing (UTC). Seconds
 * may be 60 (a leap second), counted like POSIX does as the next minute's
 * first second; hour 24 is rejected. Returns -EINVAL for anything else, and
 * -ERANGE for a valid time that nanoseconds in an int64_t cannot hold
 * (before 1677-09-21 or after 2262-04-11) or that would equal
 * KUDU_TIME_NONE. */
int kudu_parse_time(const char *s, size_t len, int64_t *unix_ns)
{
	int year, month, day, hour, minute, second;
	int64_t frac_ns = 0, offset_s = 0, secs, ns;
	size_t i;

	if (!s || !unix_ns || len < 19)
		return -EINVAL;
	if (!parse_fixed_digits(s, 4, &year) || s[4] != '-' ||
	    !parse_fixed_digits(s + 5, 2, &month) || s[7] != '-' ||
	    !parse_fixed_digits(s + 8, 2, &day))
		return -EINVAL;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return -EINVAL;
	if (!parse_fixed_digits(s + 11, 2, &hour) || s[13] != ':' ||
	    !parse_fixed_digits(s + 14, 2, &minute) || s[16] != ':' ||
	    !parse_fixed_digits(s + 17, 2, &second))
		return -EINVAL;
	i = 19;
	if (i < len && s[i] == '.') {
		int64_t scale = 100000000;
		size_t first = ++i;

		for (; i < len && is_digit(s[i]); i++) {
			frac_ns += (s[i] - '0') * scale;
			scale /= 10;
		}
		if (i == first)
			return -EINVAL;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		int off_h, off_m;

		if (len - i < 6 || !parse_fixed_digits(s + i + 1, 2, &off_h) ||
		    s[i + 3] != ':' || !parse_fixed_digits(s + i + 4, 2, &off_m) ||
		    off_h > 23 || off_m > 59)
			return -EINVAL;
		offset_s = (int64_t)off_h * 3600 + off_m * 60;
		if (s[i] == '-')
			offset_s = -offset_s;
		i += 6;
	}
	if (i != len)
		return -EINVAL;

	if (year < 1 || month < 1 || month > 12 || day < 1 ||
	    day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60)
		return -EINVAL;

	/* At most about 2.5e11 seconds either side of the epoch: no overflow
	 * until the conversion to nanoseconds, which is checked. */
	secs = days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60 +
	       second - offset_s;
	/* Before the epoch, borrow a second so that the product does not
	 * overflow when only the sum with the fraction fits. */
	if (secs < 0 && frac_ns > 0) {
		secs++;
		frac_ns -= 1000000000;
	}
	if (__builtin_mul_overflow(secs, (int64_t)1000000000, &ns) ||
	    __builtin_add_overflow(ns, frac_ns, &ns) || ns == KUDU_TIME_NONE)
		return -ERANGE;
	*unix_ns = ns;
	return 0;
}

/* ---- JSON --------------------------------------------------------------- */

/* A scanner of just enough JSON for Kudu's lock files: one object whose
 * members are read by a callback; every other value is checked and skipped.
 * It follows RFC 8259 where that costs nothing (no raw control characters in
 * strings, no leading zeros, no trailing commas) so that a half-written file
 * is refused rather than half understood. */

#define JSON_MAX_DEPTH 32
#define JSON_KEY_MAX 64

struct json {
	const char *p;
	const char *end;
};

typedef int (*json_member_fn)(struct json *j, unsigned depth, const char *key, void *ctx);

static int json_skip_value(struct json *j, unsigned depth);

static void json_skip_space(struct json *j)
{
	while (j->p < j->end && is_space(*j->p))
		j->p++;
}

static int json_hex4(struct json *j, unsigned long *out)
{
	unsigned long v = 0;

	if (j->end - j->p < 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(j->p[i]);
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
static int json_string(struct json *j, struct text *out)
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
static int json_number(struct json *j, long long *value, bool *is_int)
{
	const char *p = j->p;
	unsigned long long magnitude = 0;
	bool negative = false, fits = true;

	if (p < j->end && *p == '-') {
		negative = true;
		p++;
	}
	if (p >= j->end || !is_digit(*p))
		return -EINVAL;
	if (*p == '0') {
		p++;
	} else {
		for (; p < j->end && is_digit(*p); p++) {
			unsigned d = (unsigned)(*p - '0');
			if (magnitude > (ULLONG_MAX - d) / 10)
				fits = false;
			else
				magnitude = magnitude * 10 + d;
		}
	}
	if (p < j->end && *p == '.') {
		p++;
		if (p >= j->end || !is_digit(*p))
			return -EINVAL;
		while (p < j->end && is_digit(*p))
			p++;
		fits = false;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || !is_digit(*p))
			return -EINVAL;
		while (p < j->end && is_digit(*p))
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

static int json_literal(struct json *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return -EINVAL;
	j->p += n;
	return 0;
}

/* At a '{'. Each member's key is decoded and passed to fn, which must consume
 * exactly one value; with no fn (or a key too long to be one we know) the
 * value is skipped. */
static int json_object(struct json *j, unsigned depth, json_member_fn fn, void *ctx)
{
	if (depth > JSON_MAX_DEPTH)
		return -EINVAL;
	j->p++;
	json_skip_space(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		char key[JSON_KEY_MAX];
		struct text k;
		int r;

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
		json_skip_space(j);
		if (j->p >= j->end)
			return -EINVAL;
		if (*j->p == '}') {
			j->p++;
			return 0;
		}
		if (*j->p != ',')
			return -EINVAL;
		j->p++;
	}
}

static int json_array_skip(struct json *j, unsigned depth)
{
	if (depth > JSON_MAX_DEPTH)
		return -EINVAL;
	j->p++;
	json_skip_space(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		int r = json_skip_value(j, depth);
		if (r < 0)
			return r;
		json_skip_space(j);
		if (j->p >= j->end)
			return -EINVAL;
		if (*j->p == ']') {
			j->p++;
			return 0;
		}
		if (*j->p != ',')
			return -EINVAL;
		j->p++;
	}
}

/* Skips one value of any type; depth is that of the enclosing container. */
static int json_skip_value(struct json *j, unsigned depth)
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

enum json_kind { JSON_STRING, JSON_NUMBER, JSON_NULL, JSON_OTHER };

static enum json_kind json_peek(const struct json *j)
{
	if (j->p >= j->end)
		return JSON_OTHER;
	if (*j->p == '"')
		return JSON_STRING;
	if (*j->p == '-' || is_digit(*j->p))
		return JSON_NUMBER;
	if (*j->p == 'n')
		return JSON_NULL;
	return JSON_OTHER;
}

/* A member that should be a string: decoded into buf when it is one, left
 * alone (and skipped) when it is of another type. */
static int json_member_string(struct json *j, unsigned depth, char *buf, size_t size)
{
	struct text t;

	if (json_peek(j) != JSON_STRING)
		return json_skip_value(j, depth);
	text_init(&t, buf, size);
	return json_string(j, &t);
}

static int json_member_integer(struct json *j, unsigned depth, bool *has, long long *value)
{
	if (json_peek(j) != JSON_NUMBER)
		return json_skip_value(j, depth);
	return json_number(j, value, has);
}

/* Kudu reads these files with Json.NET, which matches member names without
 * regard to case; doing the same keeps us reading what Kudu reads. */
static bool json_key_is(const char *key, const char *name)
{
	return equal_nocase(key, strlen(key), name);
}

/* The whole document: optional UTF-8 byte-order mark and whitespace around
 * one object. -ENODATA when there is nothing but those. */
static int json_document(const char *buf, size_t len, json_member_fn fn, void *ctx)
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

/* ---- info.lock ----------------------------------------------------------- */

static int info_lock_member(struct json *j, unsigned depth, const char *key, void *ctx)
{
	struct kudu_info_lock *info = ctx;

	if (json_key_is(key, "lockExpiry")) {
		char when[64];
		struct text t;
		int r;

		/* Kudu treats a null or empty lockExpiry as a lock not held, so
		 * those are KUDU_TIME_NONE. Anything else that is not a time
		 * (another type, a string we cannot parse or that is too long)
		 * refuses the whole file: read as "no expiry" it would make a
		 * lock we do not understand look free, the dangerous way round. */
		if (json_peek(j) == JSON_NULL) {
			info->expiry_ns = KUDU_TIME_NONE;
			return json_literal(j, "null");
		}
		if (json_peek(j) != JSON_STRING)
			return -EINVAL;
		text_init(&t, when, sizeof(when));
		r = json_string(j, &t);
		if (r < 0)
			return r;
		if (t.truncated)
			return -EINVAL;
		if (t.len == 0) {
			info->expiry_ns = KUDU_TIME_NONE;
			return 0;
		}
		return kudu_parse_time(when, t.len, &info->expiry_ns) < 0 ? -EINVAL : 0;
	}
	if (json_key_is(key, "heldByPID"))
		return json_member_integer(j, depth, &info->has_pid, &info->pid);
	if (json_key_is(key, "heldByTID"))
		return json_member_integer(j, depth, &info->has_tid, &info->tid);
	if (json_key_is(key, "heldByOp"))
		return json_member_string(j, depth, info->op, sizeof(info->op));
	if (json_key_is(key, "heldByWorker"))
		return json_member_string(j, depth, info->worker, sizeof(info->worker));
	return json_skip_value(j, depth);
}

static void info_lock_clear(struct kudu_info_lock *info)
{
	memset(info, 0, sizeof(*info));
	info->expiry_ns = KUDU_TIME_NONE;
}

/* Parsed into a copy so that a refused file leaves *out as "nothing known"
 * rather than half filled. An empty (or whitespace-only) file is -ENODATA,
 * as for the file locks: it is what a read between Kudu's create and write
 * sees, which is worth telling apart from a file that is not JSON. */
int kudu_parse_info_lock(const char *buf, size_t len, struct kudu_info_lock *out)
{
	struct kudu_info_lock info;
	int r;

	info_lock_clear(out);
	info_lock_clear(&info);
	r = json_document(buf, len, info_lock_member, &info);
	if (r < 0)
		return r;
	*out = info;
	return 0;
}

const char *kudu_format_time(int64_t unix_ns, const char *none_text, char *out, size_t size)
{
	/* Floor division: a time before 1970 still shows its own second. */
	time_t t = (time_t)(unix_ns >= 0 ? unix_ns / 1000000000LL
					 : (unix_ns + 1) / 1000000000LL - 1);
	struct tm tm;

	if (unix_ns == KUDU_TIME_NONE || !gmtime_r(&t, &tm) ||
	    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "%s", none_text);
	return out;
}

/* ---- status.lock and the other file locks ------------------------------- */

static int file_lock_member(struct json *j, unsigned depth, const char *key, void *ctx)
{
	struct kudu_file_lock *lock = ctx;

	if (json_key_is(key, "OperationName"))
		return json_member_string(j, depth, lock->operation, sizeof(lock->operation));
	if (json_key_is(key, "InstanceId"))
		return json_member_string(j, depth, lock->instance, sizeof(lock->instance));
	if (json_key_is(key, "AcquiredDateTime")) {
		char when[64];
		struct text t;
		int r;

		/* Only informational: a file lock's existence means nothing on
		 * Linux, so an odd time (or another type) is just "unknown". */
		lock->acquired_ns = KUDU_TIME_NONE;
		if (json_peek(j) != JSON_STRING)
			return json_skip_value(j, depth);
		text_init(&t, when, sizeof(when));
		r = json_string(j, &t);
		if (r < 0)
			return r;
		if (t.truncated || kudu_parse_time(when, t.len, &lock->acquired_ns) < 0)
			lock->acquired_ns = KUDU_TIME_NONE;
		return 0;
	}
	return json_skip_value(j, depth);
}

static void file_lock_clear(struct kudu_file_lock *lock)
{
	memset(lock, 0, sizeof(*lock));
	lock->acquired_ns = KUDU_TIME_NONE;
}

int kudu_parse_file_lock(const char *buf, size_t len, struct kudu_file_lock *out)
{
	struct kudu_file_lock lock;
	int r;

	file_lock_clear(out);
	file_lock_clear(&lock);
	r = json_document(buf, len, file_lock_member, &lock);
	if (r < 0)
		return r;
	*out = lock;
	return 0;
}

/* ---- status.xml ------------------------------------------------------ */

const char *kudu_state_name(enum kudu_state state)
{
	switch (state) {
	case KUDU_STATE_PENDING:
		return "Pending";
	case KUDU_STATE_BUILDING:
		return "Building";
	case KUDU_STATE_DEPLOYING:
		return "Deploying";
	case KUDU_STATE_FAILED:
		return "Failed";
	case KUDU_STATE_SUCCESS:
		return "Success";
	case KUDU_STATE_UNKNOWN:
		break;
	}
	return "Unknown";
}

/* A reader of the XML that Kudu's XDocument writes: elements, attributes
 * (checked and ignored), text, the five predefined entities, numeric
 * character references, comments, processing instructions and CDATA. A
 * document type declaration is refused: Kudu never writes one, and its
 * entity definitions are how hostile XML grows without bound. */

#define XML_MAX_DEPTH 16

struct xml {
	const char *p;
	const char *end;
};

/* Called for each child element of an element whose content is read; it
 * is past the start tag and must consume the child's content and end tag
 * (nothing when the child was self-closing). */
typedef int (*xml_child_fn)(struct xml *x, unsigned depth, const char *name,
			    size_t name_len, bool empty, void *ctx);

static bool xml_at(const struct xml *x, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(x->end - x->p) >= n && memcmp(x->p, word, n) == 0;
}

static void xml_skip_space(struct xml *x)
{
	while (x->p < x->end && is_space(*x->p))
		x->p++;
}

/* Moves past the first occurrence of terminator; -EINVAL when there is none.
 * *inside is set to the bytes skipped over. */
static int xml_skip_past(struct xml *x, const char *terminator, const char **inside,
			 size_t *inside_len)
{
	size_t n = strlen(terminator);
	const char *found = memmem(x->p, (size_t)(x->end - x->p), terminator, n);

	if (!found)
		return -EINVAL;
	if (inside) {
		*inside = x->p;
		*inside_len = (size_t)(found - x->p);
	}
	x->p = found + n;
	return 0;
}

static bool xml_name_char(char c, bool first)
{
	unsigned char u = (unsigned char)c;

	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || u >= 0x80)
		return true;
	return !first && (is_digit(c) || c == '-' || c == '.');
}

static int xml_name(struct xml *x, const char **name, size_t *name_len)
{
	const char *start = x->p;

	if (x->p >= x->end || !xml_name_char(*x->p, true))
		return -EINVAL;
	while (x->p < x->end && xml_name_char(*x->p, false))
		x->p++;
	*name = start;
	*name_len = (size_t)(x->p - start);
	return 0;
}

/* After '<' and the element name: attributes up to '>' or "/>". */
static int xml_start_tag_rest(struct xml *x, bool *empty)
{
	for (;;) {
		const char *attr;
		size_t attr_len;
		char quote;
		int r;

		xml_skip_space(x);
		if (x->p >= x->end)
			return -EINVAL;
		if (*x->p == '>') {
			x->p++;
			*empty = false;
			return 0;
		}
		if (xml_at(x, "/>")) {
			x->p += 2;
			*empty = true;
			return 0;
		}
		r = xml_name(x, &attr, &attr_len);
		if (r < 0)
			return r;
		xml_skip_space(x);
		if (x->p >= x->end || *x->p != '=')
			return -EINVAL;
		x->p++;
		xml_skip_space(x);
		if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
			return -EINVAL;
		quote = *x->p++;
		while (x->p < x->end && *x->p != quote) {
			if (*x->p == '<')
				return -EINVAL;
			x->p++;
		}
		if (x->p >= x->end)
			return -EINVAL;
		x->p++;
	}
}

/* At '&': a predefined entity or a character reference, decoded into out. */
static int xml_reference(struct xml *x, struct text *out)
{
	static const struct {
		const char *name;
		char value;
	} entities[] = {
		{ "lt", '<' }, { "gt", '>' }, { "amp", '&' }, { "quot", '"' }, { "apos", '\'' },
	};
	const char *start = ++x->p;
	const char *semi = NULL;
	unsigned long cp = 0;
	size_t n;

	/* The longest reference we accept, "#x10FFFF", is 8 bytes. */
	for (const char *q = start; q < x->end && q - start <= 8; q++) {
		if (*q == ';') {
			semi = q;
			break;
		}
	}
	if (!semi)
		return -EINVAL;
	n = (size_t)(semi - start);
	x->p = semi + 1;
	if (n >= 2 && start[0] == '#') {
		bool hex = start[1] == 'x';
		size_t i = hex ? 2 : 1;

		if (i >= n)
			return -EINVAL;
		for (; i < n; i++) {
			int d = hex ? hex_value(start[i]) : (is_digit(start[i]) ? start[i] - '0' : -1);
			if (d < 0)
				return -EINVAL;
			cp = cp * (hex ? 16 : 10) + (unsigned long)d;
			if (cp > 0x10FFFF)
				return -EINVAL;
		}
		/* Only the characters XML 1.0 allows in a document. */
		if (!(cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
		      (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000))
			return -EINVAL;
		text_put_code_point(out, cp);
		return 0;
	}
	for (size_t i = 0; i < sizeof(entities) / sizeof(entities[0]); i++) {
		if (equal_exact(start, n, entities[i].name)) {
			text_put(out, &entities[i].value, 1);
			return 0;
		}
	}
	return -EINVAL;
}

static int xml_content(struct xml *x, unsigned depth, const char *name, size_t name_len,
		       struct text *out, xml_child_fn child, void *ctx);

/* Skips a child element's content and end tag (start tag already read). */
static int xml_skip_child(struct xml *x, unsigned depth, const char *name, size_t name_len,
			  bool empty, void *ctx)
{
	struct text none;

	if (empty)
		return 0;
	text_init(&none, NULL, 0);
	return xml_content(x, depth, name, name_len, &none, NULL, NULL);
}

/* The content of the element name (at depth), up to and including its end
 * tag. Its own text goes to out; child elements go to child, or are
 * skipped. */
static int xml_content(struct xml *x, unsigned depth, const char *name, size_t name_len,
		       struct text *out, xml_child_fn child, void *ctx)
{
	if (depth > XML_MAX_DEPTH)
		return -EINVAL;
	while (x->p < x->end) {
		const char *child_name;
		size_t child_len;
		bool empty;
		int r;

		if (*x->p == '&') {
			r = xml_reference(x, out);
			if (r < 0)
				return r;
			continue;
		}
		if (*x->p != '<') {
			text_put(out, x->p, 1);
			x->p++;
			continue;
		}
		if (xml_at(x, "</")) {
			const char *end_name;
			size_t end_len;

			x->p += 2;
			r = xml_name(x, &end_name, &end_len);
			if (r < 0)
				return r;
			if (end_len != name_len || memcmp(end_name, name, name_len) != 0)
				return -EINVAL;
			xml_skip_space(x);
			if (x->p >= x->end || *x->p != '>')
				return -EINVAL;
			x->p++;
			text_finish(out);
			return 0;
		}
		if (xml_at(x, "<!--")) {
			x->p += 4;
			r = xml_skip_past(x, "-->", NULL, NULL);
		} else if (xml_at(x, "<![CDATA[")) {
			const char *data;
			size_t data_len;

			x->p += 9;
			r = xml_skip_past(x, "]]>", &data, &data_len);
			for (size_t i = 0; r == 0 && i < data_len; i++)
				text_put(out, data + i, 1);
		} else if (xml_at(x, "<?")) {
			x->p += 2;
			r = xml_skip_past(x, "?>", NULL, NULL);
		} else if (xml_at(x, "<!")) {
			r = -EINVAL;
		} else {
			x->p++;
			r = xml_name(x, &child_name, &child_len);
			if (r == 0)
				r = xml_start_tag_rest(x, &empty);
			if (r == 0)
				r = (child ? child : xml_skip_child)(x, depth + 1, child_name,
								     child_len, empty, ctx);
		}
		if (r < 0)
			return r;
	}
	return -EINVAL;
}

/* What may stand before and after the root element: whitespace, comments and
 * processing instructions (the XML declaration is one, as far as we care). */
static int xml_skip_misc(struct xml *x)
{
	for (;;) {
		int r;

		xml_skip_space(x);
		if (xml_at(x, "<!--")) {
			x->p += 4;
			r = xml_skip_past(x, "-->", NULL, NULL);
		} else if (xml_at(x, "<?")) {
			x->p += 2;
			r = xml_skip_past(x, "?>", NULL, NULL);
		} else {
			return 0;
		}
		if (r < 0)
			return r;
	}
}

enum status_field_kind {
	FIELD_TEXT,        /* a string kept as is, trimmed */
	FIELD_FIRST_LINE,  /* a string of which only the first line is kept */
	FIELD_STATE,
	FIELD_COMPLETE,
	FIELD_IS_TEMP,
	FIELD_TIME,
};

static const struct status_field {
	const char *name;
	enum status_field_kind kind;
	size_t offset;
} status_fields[] = {
	{ "id", FIELD_TEXT, offsetof(struct kudu_status, id) },
	{ "author", FIELD_TEXT, offsetof(struct kudu_status, author) },
	{ "deployer", FIELD_TEXT, offsetof(struct kudu_status, deployer) },
	{ "message", FIELD_FIRST_LINE, offsetof(struct kudu_status, message) },
	{ "status", FIELD_STATE, offsetof(struct kudu_status, state) },
	{ "statusText", FIELD_TEXT, offsetof(struct kudu_status, status_text) },
	{ "receivedTime", FIELD_TIME, offsetof(struct kudu_status, received_ns) },
	{ "startTime", FIELD_TIME, offsetof(struct kudu_status, start_ns) },
	{ "endTime", FIELD_TIME, offsetof(struct kudu_status, end_ns) },
	{ "complete", FIELD_COMPLETE, offsetof(struct kudu_status, complete) },
	{ "is_temp", FIELD_IS_TEMP, offsetof(struct kudu_status, is_temp) },
};

static enum kudu_state parse_state(const char *s, size_t len)
{
	static const enum kudu_state states[] = {
		KUDU_STATE_PENDING, KUDU_STATE_BUILDING, KUDU_STATE_DEPLOYING,
		KUDU_STATE_FAILED, KUDU_STATE_SUCCESS,
	};

	/* The enum's numeric value, as some serializers write it. */
	if (len == 1 && s[0] >= '0' && s[0] <= '4')
		return states[s[0] - '0'];
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (equal_nocase(s, len, kudu_state_name(states[i])))
			return states[i];
	return KUDU_STATE_UNKNOWN;
}

/* "True"/"False" in any case, or "1"/"0". -EINVAL for anything else. */
static int parse_bool(const char *s, size_t len, bool *out)
{
	if (equal_nocase(s, len, "true") || equal_exact(s, len, "1")) {
		*out = true;
		return 0;
	}
	if (equal_nocase(s, len, "false") || equal_exact(s, len, "0")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

static void status_apply(const struct status_field *f, struct text *t, struct kudu_status *st)
{
	char *field = (char *)st + f->offset;
	bool b;

	text_trim_end(t);
	switch (f->kind) {
	case FIELD_TEXT:
		break;
	case FIELD_FIRST_LINE:
		t->len = strcspn(t->buf, "\r\n");
		t->buf[t->len] = '\0';
		text_trim_end(t);
		break;
	case FIELD_STATE:
		st->state = t->truncated ? KUDU_STATE_UNKNOWN : parse_state(t->buf, t->len);
		break;
	case FIELD_COMPLETE:
		st->has_complete = !t->truncated && parse_bool(t->buf, t->len, &b) == 0;
		st->complete = st->has_complete && b;
		break;
	case FIELD_IS_TEMP:
		st->is_temp = !t->truncated && parse_bool(t->buf, t->len, &b) == 0 && b;
		break;
	case FIELD_TIME: {
		int64_t *when = (int64_t *)(void *)field;

		/* Times in status.xml are only informational (activity is judged
		 * from mtimes), so an empty or odd one is just "unknown". */
		if (t->truncated || kudu_parse_time(t->buf, t->len, when) < 0)
			*when = KUDU_TIME_NONE;
		break;
	}
	}
}

static int status_child(struct xml *x, unsigned depth, const char *name, size_t name_len,
			bool empty, void *ctx)
{
	struct kudu_status *st = ctx;
	const struct status_field *f = NULL;
	char value[64];
	struct text t;
	int r;

	/* XML names are case-sensitive, and Kudu's are fixed. */
	for (size_t i = 0; i < sizeof(status_fields) / sizeof(status_fields[0]); i++) {
		if (equal_exact(name, name_len, status_fields[i].name)) {
			f = &status_fields[i];
			break;
		}
	}
	if (!f)
		return xml_skip_child(x, depth, name, name_len, empty, NULL);

	if (f->kind == FIELD_TEXT || f->kind == FIELD_FIRST_LINE)
		text_init(&t, (char *)st + f->offset, KUDU_TEXT_MAX);
	else
		text_init(&t, value, sizeof(value));
	t.skip_leading_space = true;
	if (!empty) {
		r = xml_content(x, depth, name, name_len, &t, NULL, NULL);
		if (r < 0)
			return r;
	}
	status_apply(f, &t, st);
	return 0;
}

static void status_clear(struct kudu_status *st)
{
	memset(st, 0, sizeof(*st));
	st->state = KUDU_STATE_UNKNOWN;
	st->received_ns = KUDU_TIME_NONE;
	st->start_ns = KUDU_TIME_NONE;
	st->end_ns = KUDU_TIME_NONE;
}

int kudu_parse_status_xml(const char *buf, size_t len, struct kudu_status *out)
{
	struct kudu_status st;
	struct text none;
	struct xml x;
	const char *name;
	size_t name_len;
	bool empty;
	int r;

	status_clear(out);
	status_clear(&st);
	if (!buf)
		return -EINVAL;
	x.p = buf;
	x.end = buf + len;
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		x.p += 3;
	r = xml_skip_misc(&x);
	if (r < 0)
		return r;
	if (x.p >= x.end || *x.p != '<')
		return -EINVAL;
	x.p++;
	r = xml_name(&x, &name, &name_len);
	if (r < 0)
		return r;
	if (!equal_exact(name, name_len, "deployment"))
		return -EINVAL;
	r = xml_start_tag_rest(&x, &empty);
	if (r < 0)
		return r;
	if (!empty) {
		/* Text directly inside <deployment> (indentation) is ignored. */
		text_init(&none, NULL, 0);
		r = xml_content(&x, 1, name, name_len, &none, status_child, &st);
		if (r < 0)
			return r;
	}
	r = xml_skip_misc(&x);
	if (r < 0)
		return r;
	if (x.p != x.end)
		return -EINVAL;
	*out = st;
	return 0;
}

bool kudu_status_finished(const struct kudu_status *st)
{
	return (st->has_complete && st->complete) || st->state == KUDU_STATE_FAILED ||
	       st->state == KUDU_STATE_SUCCESS;
}

/* ---- log.log ------------------------------------------------------------- */

/* A GUID as .NET prints it by default ("D": 8-4-4-4-12 hex digits) or
 * without dashes ("N"). */
static bool is_guid(const char *s, size_t len)
{
	if (len == 32)
		return all_hex(s, len);
	if (len != 36)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash_here ? s[i] != '-' : hex_value(s[i]) < 0)
			return false;
	}
	return true;
}

int kudu_parse_log_line(const char *line, size_t len, struct kudu_log_line *out)
{
	const char *commas[3];
	const char *p, *end, *msg, *guid;
	size_t n_commas = 0, msg_len, guid_len;
	struct text t;
	int64_t when;

	memset(out, 0, sizeof(*out));
	out->time_ns = KUDU_TIME_NONE;
	if (!line)
		return -EINVAL;
	p = line;
	end = line + len;
	/* A line read from a file written on Windows keeps its '\r'. */
	while (end > p && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	while (p < end && *p == '\t')
		p++;

	/* Exactly three commas: Kudu writes the message's own commas as
	 * "&comma;", so any other count is another shape (such as the 2024
	 * production lines with ten fields). */
	for (const char *q = p; q < end; q++) {
		if (*q != ',')
			continue;
		if (n_commas == 3)
			return -EINVAL;
		commas[n_commas++] = q;
	}
	if (n_commas != 3)
		return -EINVAL;
	if (end - commas[2] != 2 || commas[2][1] < '0' || commas[2][1] > '2')
		return -EINVAL;
	guid = commas[1] + 1;
	guid_len = (size_t)(commas[2] - guid);
	if (guid_len != 0 && !is_guid(guid, guid_len))
		return -EINVAL;
	if (kudu_parse_time(p, (size_t)(commas[0] - p), &when) < 0)
		return -EINVAL;

	out->time_ns = when;
	out->depth = (unsigned)(p - line);
	out->type = commas[2][1] - '0';
	out->top_level = guid_len != 0;
	msg = commas[0] + 1;
	msg_len = (size_t)(commas[1] - msg);
	text_init(&t, out->message, sizeof(out->message));
	for (size_t i = 0; i < msg_len; i++) {
		if (msg_len - i >= 7 && memcmp(msg + i, "&comma;", 7) == 0) {
			text_put(&t, ",", 1);
			i += 6;
		} else {
			text_put(&t, msg + i, 1);
		}
	}
	text_finish(&t);
	return 0;
}

/* ---- Names in locks/ and deployments/ ---------------------------------- */

#define TRASH_PREFIX ".lockwarden-trash-"

static bool is_trash(const char *name)
{
	return strncmp(name, TRASH_PREFIX, strlen(TRASH_PREFIX)) == 0;
}

/* Names are compared byte for byte: the share is case-sensitive for Linux
 * Kudu, so "Status.lock" is not Kudu's. */
enum kudu_name kudu_classify_lock(const char *name)
{
	static const struct {
		const char *name;
		enum kudu_name kind;
	} locks[] = {
		{ "deployment", KUDU_NAME_LOCK_FOLDER },
		{ "status.lock", KUDU_NAME_STATUS_LOCK },
		{ "deployments.lock", KUDU_NAME_DEPLOYMENTS_LOCK },
		{ "sshkey.lock", KUDU_NAME_SSHKEY_LOCK },
		{ "hooks.lock", KUDU_NAME_HOOKS_LOCK },
	};

	if (!name)
		return KUDU_NAME_UNKNOWN;
	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++)
		if (strcmp(name, locks[i].name) == 0)
			return locks[i].kind;
	return is_trash(name) ? KUDU_NAME_TRASH : KUDU_NAME_UNKNOWN;
}

/* Only the shapes Kudu makes count as records: "temp-" and 8 hex digits,
 * a 32-hex GUID (zip deploy), a 40-hex git SHA-1 or a 64-hex SHA-256. Any
 * other name is not Kudu's, so it is reported and never removed. */
enum kudu_name kudu_classify_deployment(const char *name)
{
	static const struct {
		const char *name;
		enum kudu_name kind;
	} fixed[] = {
		{ "pending", KUDU_NAME_PENDING },
		{ "active", KUDU_NAME_ACTIVE },
		{ "tools", KUDU_NAME_TOOLS },
		{ "settings.xml", KUDU_NAME_SETTINGS },
	};
	size_t len;

	if (!name)
		return KUDU_NAME_UNKNOWN;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(name, fixed[i].name) == 0)
			return fixed[i].kind;
	if (is_trash(name))
		return KUDU_NAME_TRASH;
	len = strlen(name);
	if (len == 13 && strncmp(name, "temp-", 5) == 0 && all_hex(name + 5, 8))
		return KUDU_NAME_TEMP_RECORD;
	if ((len == 32 || len == 40 || len == 64) && all_hex(name, len))
		return KUDU_NAME_RECORD;
	return KUDU_NAME_UNKNOWN;
}

const char *kudu_name_describe(enum kudu_name kind)
{
	switch (kind) {
	case KUDU_NAME_LOCK_FOLDER:
		return "lock folder";
	case KUDU_NAME_STATUS_LOCK:
		return "status lock file";
	case KUDU_NAME_DEPLOYMENTS_LOCK:
		return "deployments lock file";
	case KUDU_NAME_SSHKEY_LOCK:
		return "ssh key lock file";
	case KUDU_NAME_HOOKS_LOCK:
		return "hooks lock file";
	case KUDU_NAME_PENDING:
		return "pending marker";
	case KUDU_NAME_ACTIVE:
		return "active id";
	case KUDU_NAME_TOOLS:
		return "tools folder";
	case KUDU_NAME_SETTINGS:
		return "settings file";
	case KUDU_NAME_TEMP_RECORD:
		return "temp record";
	case KUDU_NAME_RECORD:
		return "deployment record";
	case KUDU_NAME_TRASH:
		return "lockwarden trash";
	case KUDU_NAME_UNKNOWN:
		break;
	}
	return "unknown";
}
