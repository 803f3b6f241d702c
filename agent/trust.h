/* trust.h - refusing a configuration that others could have written.
 *
 * The configuration names a command that runs as root. Like sshd's
 * StrictModes, the agent refuses a config file, or a hook program named by
 * an absolute path, that is writable by group or others or owned by a user
 * other than root or the agent's own, and the same for every folder above
 * it (a folder with the sticky bit, like /tmp, is fine: others cannot
 * replace a file they do not own there). --insecure-config turns it off.
 */
#ifndef LOCKWARDEN_TRUST_H
#define LOCKWARDEN_TRUST_H

#include <stddef.h>

/* what: "config file" or "hook program". 0, or -EPERM with one line in err
 * (or another -errno when path cannot be checked). */
int trust_check_path(const char *path, const char *what, char *err, size_t err_size);

/* Checks the config file about to be read (path NULL: the default path),
 * if it exists: a missing file is config_load's to report. Called before
 * the file is read, so what is read is what was checked. */
int trust_check_config_file(const char *path, char *err, size_t err_size);

/* Checks the hook program, if the command starts with an absolute path. */
int trust_check_hook(const char *hook_command, char *err, size_t err_size);

#endif
