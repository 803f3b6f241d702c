/* archdir.h - the archive folder, reached without following anything.
 *
 * The archive folder ([archive] dir, /home/LogFiles/lockwarden by default)
 * is on the share, where anyone with FTP or SSH access to the site can
 * replace it, or any folder on its path, with a symlink. Root must then
 * write nothing through it: the folder is opened from / one level at a time
 * with O_DIRECTORY|O_NOFOLLOW, so a symlink anywhere on the path is refused
 * (-ELOOP), and a non-folder too (-ENOTDIR); ".." is refused (-EINVAL).
 * Every level is checked to be a folder once opened, and a level made here
 * must be on its parent's mount (a mount made in between is not written
 * to). Everything done in the archive is then relative to the descriptor.
 *
 * Blocking. Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_ARCHDIR_H
#define LOCKWARDEN_ARCHDIR_H

#include <stdbool.h>
#include <stddef.h>

/* Opens the absolute path as a folder; with create, missing levels are
 * made (mode 0750) on the way. *fd_out is O_RDONLY|O_DIRECTORY|O_CLOEXEC. */
int archdir_open(const char *path, bool create, int *fd_out);

/* A failed archdir_open in words: strerror, and what it means here. */
void archdir_describe(int err, char *out, size_t size);

#endif
