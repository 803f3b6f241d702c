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

#include "config.h"

/* More links than this in one path is a loop (the kernel's own limit). */
#define TRUST_MAX_LINKS 40

/* Is st safe to trust for what, as the file itself (target) or as a folder
 * on the way to it? */
static int check_stat(const struct stat *st, const char *path, const char *what,
		      const char *shown, bool target, char *err, size_t err_size)
{
	uid_t me = geteuid();

	if (st->st_uid != 0 && st->st_uid != me) {
		snprintf(err, err_size,
			 "%s %s: %s is owned by uid %u, neither root nor this agent's user: refusing it, "
			 "since the hook runs with the agent's rights (or pass --insecure-config)",
			 what, shown, path, (unsigned)st->st_uid);
		return -EPERM;
	}
	/* A sticky folder (like /tmp) is fine on the way: others cannot
	 * replace or rename what they do not own there. */
	bool sticky_dir = S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_dir && !target)) {
		snprintf(err, err_size,
			 "%s %s: %s is writable by %s (mode %04o): refusing it, since the hook runs "
			 "with the agent's rights; fix it with chmod go-w (or pass --insecure-config)",
			 what, shown, path, (st->st_mode & S_IWOTH) ? "others" : "its group",
			 (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

static int check_at(const char *path, const char *what, const char *shown, bool target,
		    char *err, size_t err_size)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		int r = -errno;
		snprintf(err, err_size, "%s %s: cannot check %s: %s", what, shown, path, strerror(errno));
		return r;
	}
	return check_stat(&st, path, what, shown, target, err, err_size);
}

/* Walks path one component at a time, the way the kernel resolves it, and
 * checks every folder that holds a component or a symlink on the way, and
 * the file at the end: whoever can write any of them could swap what is
 * read. A symlink's target is walked the same way. */
int trust_check_path(const char *path, const char *what, char *err, size_t err_size)
{
	char resolved[PATH_MAX] = "", rest[PATH_MAX * 2], link[PATH_MAX];
	unsigned links = 0;
	int r;

	if (path[0] == '/') {
		snprintf(rest, sizeof(rest), "%s", path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd))) {
			snprintf(err, err_size, "%s %s: %s", what, path, strerror(errno));
			return -errno;
		}
		snprintf(rest, sizeof(rest), "%s/%s", cwd, path);
	}
	r = check_at("/", what, path, false, err, err_size);
	while (r == 0) {
		char *p = rest;
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		size_t n = strcspn(p, "/");
		char comp[NAME_MAX + 1];
		if (n > NAME_MAX) {
			snprintf(err, err_size, "%s %s: a name in it is too long", what, path);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		memmove(rest, p + n, strlen(p + n) + 1);

		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			char *slash = strrchr(resolved, '/');
			if (slash)
				*slash = '\0';
			continue;
		}
		char next[PATH_MAX];
		if (snprintf(next, sizeof(next), "%s/%s", resolved, comp) >= (int)sizeof(next)) {
			snprintf(err, err_size, "%s %s: path too long", what, path);
			return -ENAMETOOLONG;
		}
		struct stat st;
		if (lstat(next, &st) < 0) {
			r = -errno;
			snprintf(err, err_size, "%s %s: cannot check %s: %s", what, path, next,
				 strerror(errno));
			return r;
		}
		if (S_ISLNK(st.st_mode)) {
			/* The folder holding the link was checked when it was
			 * entered; now follow the link from there. */
			if (++links > TRUST_MAX_LINKS) {
				snprintf(err, err_size, "%s %s: too many symlinks", what, path);
				return -ELOOP;
			}
			ssize_t len = readlink(next, link, sizeof(link) - 1);
			if (len < 0) {
				r = -errno;
				snprintf(err, err_size, "%s %s: cannot read link %s: %s", what, path, next,
					 strerror(errno));
				return r;
			}
			link[len] = '\0';
			char joined[PATH_MAX * 2];
			snprintf(joined, sizeof(joined), "%s/%s", link, rest);
			snprintf(rest, sizeof(rest), "%s", joined);
			if (link[0] == '/')
				resolved[0] = '\0';
			continue;
		}
		snprintf(resolved, sizeof(resolved), "%s", next);
		bool last = rest[strspn(rest, "/")] == '\0';
		r = check_stat(&st, resolved, what, path, last, err, err_size);
	}
	return r;
}

int trust_check_config_file(const char *path, char *err, size_t err_size)
{
	struct stat st;
	const char *p = path ? path : CONFIG_DEFAULT_PATH;

	if (lstat(p, &st) < 0 && errno == ENOENT)
		return 0;
	return trust_check_path(p, "config file", err, err_size);
}

int trust_check_hook(const char *hook_command, char *err, size_t err_size)
{
	/* Only a program named by an absolute path as the first word is
	 * checked; anything else is the shell's business. */
	const char *p = hook_command;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '/')
		return 0;
	char program[PATH_MAX];
	size_t n = strcspn(p, " \t;&|<>()$`\\\"'");
	if (n >= sizeof(program))
		return 0;
	memcpy(program, p, n);
	program[n] = '\0';
	return trust_check_path(program, "hook program", err, err_size);
}
