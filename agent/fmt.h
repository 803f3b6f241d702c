/* fmt.h - small words and numbers for people: ages and file types.
 *
 * Pure; shared by the policy's reasons, report's table and the log lines of
 * removal, so that one thing is always shown one way.
 */
#ifndef LOCKWARDEN_FMT_H
#define LOCKWARDEN_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* An age for people: "250ms", "42s", "17m5s", "3h2m", "4d1h"; "unknown"
 * for a negative age (nothing tells). Returns out, for printf. */
const char *fmt_age(int64_t age_ms, char *out, size_t size);

/* The S_IFMT bits of a mode as a word: "file", "folder", "symlink", "FIFO",
 * "socket", "character device", "block device", or "odd entry". */
const char *fmt_type_name(mode_t type);

#endif
