/* xml.c - a bounded reader of the XML Kudu writes. See xml.h. */
#include "xml.h"

#include <errno.h>
#include <string.h>

static bool xml_at(const struct xml *x, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(x->end - x->p) >= n && memcmp(x->p, word, n) == 0;
}

static void xml_skip_space(struct xml *x)
{
	while (x->p < x->end && text_is_space(*x->p))
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
	return !first && (text_is_digit(c) || c == '-' || c == '.');
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
			int d = hex ? text_hex_value(start[i]) : (text_is_digit(start[i]) ? start[i] - '0' : -1);
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
		if (text_equal_exact(start, n, entities[i].name)) {
			text_put(out, &entities[i].value, 1);
			return 0;
		}
	}
	return -EINVAL;
}


/* Skips a child element's content and end tag (start tag already read). */
int xml_skip_child(struct xml *x, unsigned depth, const char *name, size_t name_len,
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
int xml_content(struct xml *x, unsigned depth, const char *name, size_t name_len,
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

int xml_document(const char *buf, size_t len, const char *root, xml_child_fn child, void *ctx)
{
	struct text none;
	struct xml x;
	const char *name;
	size_t name_len;
	bool empty;
	int r;

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
	if (!text_equal_exact(name, name_len, root))
		return -EINVAL;
	r = xml_start_tag_rest(&x, &empty);
	if (r < 0)
		return r;
	if (!empty) {
		text_init(&none, NULL, 0);
		r = xml_content(&x, 1, name, name_len, &none, child, ctx);
		if (r < 0)
			return r;
	}
	r = xml_skip_misc(&x);
	if (r < 0)
		return r;
	return x.p == x.end ? 0 : -EINVAL;
}
