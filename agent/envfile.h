/* envfile.h - app settings that a shell started over SSH does not have.
 *
 * App Service hands app settings to the container's main process as
 * environment variables, but an SSH login starts from sshd, not from that
 * process, so `lockwarden report` typed in the portal's SSH console would
 * ignore every LOCKWARDEN_* app setting. The container entrypoint saves its
 * environment, as /proc/PID/environ holds it (NAME=value entries ending in
 * NUL bytes), in a root-only file; this module reads it back.
 *
 * Which file: $LOCKWARDEN_ENV_FILE, default ENVFILE_DEFAULT_PATH; when that
 * is set to an empty value nothing is read. When the file does not exist
 * (an image without the lockwarden entrypoint, e.g. supervisord as PID 1),
 * PID 1's own environment ($LOCKWARDEN_PROC/1/environ, default
 * /proc/1/environ) is read instead.
 *
 * What is taken: LOCKWARDEN_* variables only, and only those this process's
 * environment does not already have (what the shell sets explicitly wins).
 * The file can name the hook command, which runs as root, so it is used only
 * when it is a regular file, not a symlink, owned by root or by this user,
 * and writable by no one else; otherwise it is ignored with a warning.
 */
#ifndef LOCKWARDEN_ENVFILE_H
#define LOCKWARDEN_ENVFILE_H

#define ENVFILE_DEFAULT_PATH "/run/lockwarden/environ"

/* The most it reads of either file. An environment larger than this is not
 * one the platform made. */
#define ENVFILE_MAX_BYTES (4u << 20)

/* Reads the file (or PID 1's environment) as described above and setenv()s
 * what it takes. Returns the number of variables taken (0 when there is
 * nothing to read, or it cannot be read as this user), or a negative errno
 * after logging why the file was not used. Call it before the environment
 * is read (config_load) and before any thread starts. */
int envfile_import(void);

/* The pure part, for tests: takes the LOCKWARDEN_* entries of buf (len
 * bytes of NUL-terminated NAME=value entries; a last entry without its NUL
 * counts too) that the environment lacks. Returns how many it set, or
 * -ENOMEM. */
int envfile_import_buffer(const char *buf, size_t len);

#endif
