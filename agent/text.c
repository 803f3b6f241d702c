/* text.c - bounded text output and character tests. */
#include "text.h"

#include <string.h>

/* ---- Character tests ----------------------------------------------------- */

bool text_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int text_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool text_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* s[0..len) equals the NUL-terminated word, ignoring ASCII case. */
bool text_equal_nocase(const char *s, size_t len, const char *word)
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
bool text_equal_exact(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

bool text_all_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (text_hex_value(s[i]) < 0)
			return false;
	return true;
}

/* ---- Bounded text output ------------------------------------------------- */

void text_init(struct text *t, char *buf, size_t size)
{
	t->buf = size ? buf : NULL;
	t->size = size;
	t->len = 0;
	t->truncated = false;
	t->skip_leading_space = false;
	if (t->buf)
		t->buf[0] = '\0';
}

void text_put(struct text *t, const char *bytes, size_t n)
{
	if (!t->buf || t->truncated)
		return;
	if (t->skip_leading_space && t->len == 0 && n == 1 && text_is_space(bytes[0]))
		return;
	if (n >= t->size - t->len) {
		t->truncated = true;
		return;
	}
	memcpy(t->buf + t->len, bytes, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

void text_put_code_point(struct text *t, unsigned long cp)
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
void text_finish(struct text *t)
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

void text_trim_end(struct text *t)
{
	if (!t->buf)
		return;
	while (t->len > 0 && text_is_space(t->buf[t->len - 1]))
		t->len--;
	t->buf[t->len] = '\0';
}
