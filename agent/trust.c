/* trust.c - StrictModes-like checks of the files that define what runs as root. */
#include "trust.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_one(const char *path, const char *what, const char *shown, bool is_target,
		     char *err, size_t err_size)
{
	struct stat st;
	uid_t me = geteuid();

	if (stat(path, &st) < 0) {
		int r = -errno;
		snprintf(err, err_size, "%s %s: cannot check %s: %s", what, shown, path, strerror(errno));
		return r;
	}
	if (st.st_uid != 0 && st.st_uid != me) {
		snprintf(err, err_size,
			 "%s %s: %s is owned by uid %u, neither root nor this agent's user: refusing it, "
			 "since the hook runs as %s (or pass --insecure-config)",
			 what, shown, path, (unsigned)st.st_uid, me == 0 ? "root" : "this user");
		return -EPERM;
	}
	bool sticky_dir = S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_dir && !is_target)) {
		snprintf(err, err_size,
			 "%s %s: %s is writable by %s (mode %04o): refusing it, since the hook runs "
			 "with the agent's rights; fix it with chmod go-w (or pass --insecure-config)",
			 what, shown, path, (st.st_mode & S_IWOTH) ? "others" : "its group",
			 (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int trust_check_path(const char *path, const char *what, char *err, size_t err_size)
{
	char real[PATH_MAX];

	/* Judge the file that will really be read, through any symlinks, and
	 * every folder on the way to it: each of them could swap it. */
	if (!realpath(path, real)) {
		int r = -errno;
		snprintf(err, err_size, "%s %s: %s", what, path, strerror(errno));
		return r;
	}
	int r = check_one(real, what, path, true, err, err_size);
	for (char *slash = strrchr(real, '/'); r == 0 && slash; slash = strrchr(real, '/')) {
		if (slash == real) {
			r = check_one("/", what, path, false, err, err_size);
			break;
		}
		*slash = '\0';
		r = check_one(real, what, path, false, err, err_size);
	}
	return r;
}

int trust_check_config(const char *config_file, const char *hook_command, char *err,
		       size_t err_size)
{
	int r = 0;

	if (config_file)
		r = trust_check_path(config_file, "config file", err, err_size);
	if (r == 0 && hook_command) {
		/* Only a program named by an absolute path as the first word is
		 * checked; anything else is the shell's business. */
		const char *p = hook_command;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '/') {
			char program[PATH_MAX];
			size_t n = strcspn(p, " \t;&|<>()$`\\\"'");
			if (n < sizeof(program)) {
				memcpy(program, p, n);
				program[n] = '\0';
				r = trust_check_path(program, "hook program", err, err_size);
			}
		}
	}
	return r;
}
