/* archdir.c - the archive folder opened level by level (see archdir.h). */
#include "archdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rmtree.h"

#define ARCHDIR_MODE 0750

/* Opens name in the folder fd (whose mount is parent), making it first with
 * create. Returns the descriptor or -errno. */
static int open_level(int fd, const char *name, const struct rmtree_mount *parent, bool create)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	bool made = false;
	int next = openat(fd, name, flags);

	if (next < 0 && errno == ENOENT && create) {
		if (mkdirat(fd, name, ARCHDIR_MODE) == 0)
			made = true;
		else if (errno != EEXIST)
			return -errno;
		next = openat(fd, name, flags);
	}
	if (next < 0 && errno == ENOTDIR) {
		/* With O_DIRECTORY a symlink answers ENOTDIR: say which. */
		struct rmtree_stat link;
		return rmtree_stat_at(fd, name, &link) == 0 && link.st.type == S_IFLNK ? -ELOOP
										       : -ENOTDIR;
	}
	if (next < 0)
		return -errno;
	struct rmtree_stat s;
	int r = rmtree_stat_at(next, "", &s);
	if (r == 0 && s.st.type != S_IFDIR)
		r = -ENOTDIR;
	/* A folder this agent just made is on its parent's mount, unless
	 * something was mounted over it in between: not written to. */
	if (r == 0 && made && !rmtree_on_mount(&s, parent))
		r = -EXDEV;
	if (r < 0) {
		close(next);
		return r;
	}
	return next;
}

int archdir_open(const char *path, bool create, int *fd_out)
{
	char name[NAME_MAX + 1];
	struct rmtree_stat s;
	struct rmtree_mount mount;

	*fd_out = -1;
	if (path[0] != '/')
		return -EINVAL;
	int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (len == 0)
			break;
		if (len > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			close(fd);
			return -EINVAL;
		}
		int r = rmtree_stat_at(fd, "", &s);
		if (r < 0) {
			close(fd);
			return r;
		}
		rmtree_mount_of(&s, &mount);
		int next = open_level(fd, name, &mount, create);
		close(fd);
		if (next < 0)
			return next;
		fd = next;
	}
	*fd_out = fd;
	return 0;
}

void archdir_describe(int err, char *out, size_t size)
{
	const char *why = err == -ELOOP	? " (it, or a folder on its path, is a symlink: never followed)"
			  : err == -EXDEV ? " (a folder made on its path is on another mount)"
			  : err == -EINVAL ? " (not an absolute path without \"..\")"
			  : "";
	snprintf(out, size, "%s%s", strerror(-err), why);
}
