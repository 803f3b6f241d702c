/* jsonw.h - writing JSON values (report --json, the archive's notes). */
#ifndef LOCKWARDEN_JSONW_H
#define LOCKWARDEN_JSONW_H

#include <stdint.h>
#include <stdio.h>

/* A JSON string. Bytes outside printable ASCII are written one by one as
 * \u00XX: names on disk need not be UTF-8, and the output must stay valid
 * JSON whatever they hold. */
void jsonw_string(FILE *out, const char *s);
/* A UTC time as "2026-11-26T03:51:59Z", or null for KUDU_TIME_NONE. */
void jsonw_time(FILE *out, int64_t unix_ns);

#endif
