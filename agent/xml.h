/* xml.h - a bounded reader of the XML that Kudu's XDocument writes.
 *
 * A reader of the XML that Kudu's XDocument writes: elements, attributes
 * (checked and ignored), text, the five predefined entities, numeric
 * character references, comments, processing instructions and CDATA. A
 * document type declaration is refused: Kudu never writes one, and its
 * entity definitions are how hostile XML grows without bound.
 *
 * Bounded: never reads past the length given, nests at most XML_MAX_DEPTH,
 * work linear in the input. Functions return 0 or a negative errno
 * (-EINVAL: not XML of that shape).
 */
#ifndef LOCKWARDEN_XML_H
#define LOCKWARDEN_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "text.h"

#define XML_MAX_DEPTH 16

/* The reader's position in its input. */
struct xml {
	const char *p;
	const char *end;
};

/* Called for each child element of an element whose content is read; it
 * is past the start tag and must consume the child's content and end tag
 * (nothing when the child was self-closing). */
typedef int (*xml_child_fn)(struct xml *x, unsigned depth, const char *name,
			    size_t name_len, bool empty, void *ctx);

/* The whole document: optional UTF-8 byte-order mark, XML declaration,
 * comments and processing instructions around one root element named root,
 * whose child elements go to child (at depth 2). Text directly inside the
 * root (indentation) is ignored. -EINVAL for another root. */
int xml_document(const char *buf, size_t len, const char *root, xml_child_fn child, void *ctx);

/* The content of the element name (at depth), up to and including its end
 * tag. Its own text goes to out (which may have no buffer); child elements
 * go to child, or are skipped when child is NULL. */
int xml_content(struct xml *x, unsigned depth, const char *name, size_t name_len,
		struct text *out, xml_child_fn child, void *ctx);

/* An xml_child_fn that skips the child whole. */
int xml_skip_child(struct xml *x, unsigned depth, const char *name, size_t name_len,
		   bool empty, void *ctx);

#endif
