/* text.h - bytes into bounded text, and the character tests the parsers
 * share.
 *
 * Pure. Every parser of the share's files (json.c, xml.c, isotime.c, kudu.c)
 * reads bytes that anyone with deployment rights can write, so their output
 * goes into a fixed buffer that is always terminated and never overflows.
 */
#ifndef LOCKWARDEN_TEXT_H
#define LOCKWARDEN_TEXT_H

#include <stdbool.h>
#include <stddef.h>

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

void text_init(struct text *t, char *buf, size_t size);
/* Appends n bytes, or marks t truncated when they do not fit. */
void text_put(struct text *t, const char *bytes, size_t n);
/* Appends a code point (at most U+10FFFF) as UTF-8. */
void text_put_code_point(struct text *t, unsigned long cp);
/* Ends a text: a UTF-8 sequence cut by the limit is dropped whole. */
void text_finish(struct text *t);
/* Drops trailing whitespace. */
void text_trim_end(struct text *t);

/* ASCII character tests: the formats are ASCII where it matters. */
bool text_is_digit(char c);
bool text_is_space(char c);    /* ' ', '\t', '\n', '\r' */
int text_hex_value(char c);    /* 0..15, or -1 */
bool text_all_hex(const char *s, size_t len);
/* s[0..len) equals the NUL-terminated word, ignoring ASCII case / exactly. */
bool text_equal_nocase(const char *s, size_t len, const char *word);
bool text_equal_exact(const char *s, size_t len, const char *word);

#endif
