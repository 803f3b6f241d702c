/* envfile.c - the app settings an SSH session lacks, from the entrypoint's
 * root-only file or PID 1's environment (see envfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envfile.h"
#include "log.h"

#define PREFIX "LOCKWARDEN_"

/* A name a shell could export: letters, digits and '_', not starting with a
 * digit. App settings reach the container only as such names. */
static bool name_ok(const char *name, size_t len)
{
	if (len == 0 || (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

int envfile_import_buffer(const char *buf, size_t len)
{
	int taken = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *entry = buf + pos;
		const char *end = memchr(entry, '\0', len - pos);
		size_t entry_len = end ? (size_t)(end - entry) : len - pos;
		const char *eq = memchr(entry, '=', entry_len);

		pos += entry_len + 1;
		if (!eq || entry_len < strlen(PREFIX) ||
		    strncmp(entry, PREFIX, strlen(PREFIX)) != 0)
			continue;
		size_t name_len = (size_t)(eq - entry);
		if (!name_ok(entry, name_len))
			continue;

		char *name = strndup(entry, name_len);
		char *value = strndup(eq + 1, entry_len - name_len - 1);

		if (!name || !value) {
			free(name);
			free(value);
			return -ENOMEM;
		}
		/* What this process was given explicitly wins. */
		if (!getenv(name)) {
			if (setenv(name, value, 0) < 0) {
				int e = errno;

				free(name);
				free(value);
				return -e;
			}
			taken++;
		}
		free(name);
		free(value);
	}
	return taken;
}

/* Reads all of fd, at most ENVFILE_MAX_BYTES, into a new buffer. */
static int read_all(int fd, char **out, size_t *out_len)
{
	size_t cap = 16384, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap >= ENVFILE_MAX_BYTES) {
				free(buf);
				return -EFBIG;
			}
			char *bigger = realloc(buf, cap * 2);

			if (!bigger) {
				free(buf);
				return -ENOMEM;
			}
			buf = bigger;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;

			free(buf);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* The entrypoint's file may name the hook command: it must be ours alone. */
static int check_file(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int e = errno;

		log_warning("ignoring the app settings file %s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		log_warning("ignoring the app settings file %s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		log_warning("ignoring the app settings file %s: owned by uid %u, not root",
			    path, (unsigned)st.st_uid);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_warning("ignoring the app settings file %s: writable by others (mode %04o)",
			    path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

static int import_from(const char *path, bool is_file)
{
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;

		if (e == ELOOP)
			log_warning("ignoring the app settings file %s: a symbolic link", path);
		return -e;
	}
	if (is_file) {
		r = check_file(fd, path);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	r = read_all(fd, &buf, &len);
	close(fd);
	if (r < 0) {
		log_warning("cannot read the app settings in %s: %s", path, strerror(-r));
		return r;
	}
	r = envfile_import_buffer(buf, len);
	free(buf);
	if (r < 0)
		log_warning("cannot take the app settings in %s: %s", path, strerror(-r));
	else if (r > 0)
		log_debug("took %d LOCKWARDEN_* setting(s) from %s", r, path);
	return r;
}

int envfile_import(void)
{
	const char *path = getenv("LOCKWARDEN_ENV_FILE");
	const char *proc = getenv("LOCKWARDEN_PROC");
	char pid1[4096];
	int r;

	if (!path)
		path = ENVFILE_DEFAULT_PATH;
	if (!*path)
		return 0;
	r = import_from(path, true);
	if (r != -ENOENT)
		/* Not readable as this user (EACCES) is not a failure: the
		 * file is root's, and so are its settings. */
		return r == -EACCES ? 0 : r;

	if (!proc || !*proc)
		proc = "/proc";
	if ((size_t)snprintf(pid1, sizeof(pid1), "%s/1/environ", proc) >= sizeof(pid1))
		return -ENAMETOOLONG;
	r = import_from(pid1, false);
	/* Another user's PID 1, or no /proc: nothing to take. */
	if (r == -EACCES || r == -EPERM || r == -ENOENT || r == -ESRCH)
		return 0;
	return r;
}
