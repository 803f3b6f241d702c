/* json.h - a bounded scanner of the JSON in Kudu's lock files.
 *
 * A scanner of just enough JSON for Kudu's lock files: one object whose
 * members are read by a callback; every other value is checked and skipped.
 * It follows RFC 8259 where that costs nothing (no raw control characters in
 * strings, no leading zeros, no trailing commas) so that a half-written file
 * is refused rather than half understood.
 *
 * Bounded: never reads past the length given (the input need not be
 * terminated), nests at most JSON_MAX_DEPTH, work linear in the input.
 * Functions return 0 or a negative errno (-EINVAL: not JSON of that shape).
 */
#ifndef LOCKWARDEN_JSON_H
#define LOCKWARDEN_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "text.h"

#define JSON_MAX_DEPTH 32
#define JSON_KEY_MAX 64

/* The scanner's position in its input. */
struct json {
	const char *p;
	const char *end;
};

/* Called for each member of the document's object with its decoded key; it
 * must consume exactly one value (json_skip_value for one it does not want).
 * depth is that of the enclosing object. */
typedef int (*json_member_fn)(struct json *j, unsigned depth, const char *key, void *ctx);

/* The whole document: optional UTF-8 byte-order mark and whitespace around
 * one object, whose members go to fn. -ENODATA when there is nothing but
 * those. */
int json_document(const char *buf, size_t len, json_member_fn fn, void *ctx);

enum json_kind { JSON_STRING, JSON_NUMBER, JSON_NULL, JSON_OTHER };
/* The kind of the value at the position, without consuming it. */
enum json_kind json_peek(const struct json *j);

/* At a '"': decodes the string into out (which may have no buffer). */
int json_string(struct json *j, struct text *out);
/* At a number: *is_int tells whether it is an integer that a long long
 * holds; only then is *value set. */
int json_number(struct json *j, long long *value, bool *is_int);
/* At a literal word ("null", "true", "false"). */
int json_literal(struct json *j, const char *word);
/* Skips one value of any type; depth is that of the enclosing container. */
int json_skip_value(struct json *j, unsigned depth);

/* A member that should be an array: fn is called at each item and must
 * consume exactly one value; a member of another type is skipped. */
typedef int (*json_item_fn)(struct json *j, unsigned depth, void *ctx);
int json_array(struct json *j, unsigned depth, json_item_fn fn, void *ctx);
/* A member that should be a string: decoded into buf when it is one,
 * skipped when it is of another type. */
int json_member_string(struct json *j, unsigned depth, char *buf, size_t size);
/* A member that should be an integer: *has tells whether it was one. */
int json_member_integer(struct json *j, unsigned depth, bool *has, long long *value);
/* A member name, compared without regard to ASCII case (as Json.NET does). */
bool json_key_is(const char *key, const char *name);

#endif
