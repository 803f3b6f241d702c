/* sitekind.c - does the site root look like Kudu's tree on the share
 * (sitekind.h)? */
#include "sitekind.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* mountinfo is a few hundred bytes a mount; a container has dozens. */
#define SITEKIND_MOUNTINFO_MAX (1024 * 1024)

bool sitekind_fstype_is_shared(const char *fstype)
{
	static const char *const shared[] = { "cifs", "smb3", "smbfs", "nfs", "nfs4", "fuse",
					      "fuseblk" };

	if (strncmp(fstype, "fuse.", 5) == 0)
		return true;
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (strcmp(fstype, shared[i]) == 0)
			return true;
	return false;
}

/* One line of proc(5)'s mountinfo: "36 35 98:0 /mnt1 /mnt2 rw,noatime
 * master:1 - ext3 /dev/root rw": the device is the third field, the type
 * the first after the lone "-". */
int sitekind_fstype_in(const char *mountinfo, unsigned dev_major, unsigned dev_minor,
		       char *out, size_t size)
{
	int found = -ENOENT;

	for (const char *line = mountinfo; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		unsigned maj, min;
		char type[64];

		/* Paths have their blanks escaped (\040): " - " is the separator. */
		const char *dash = strstr(line, " - ");

		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) == 2 && maj == dev_major &&
		    min == dev_minor && dash && dash < line + len &&
		    sscanf(dash + 3, "%63s", type) == 1) {
			/* Bind mounts share a device and a type: the last wins. */
			snprintf(out, size, "%s", type);
			found = 0;
		}
		line += len + (end ? 1 : 0);
	}
	return found;
}

int sitekind_fstype(dev_t dev, char *out, size_t size)
{
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	char *text;
	size_t len = 0;
	ssize_t n;
	int r;

	if (fd < 0)
		return -errno;
	text = malloc(SITEKIND_MOUNTINFO_MAX + 1);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	while (len < SITEKIND_MOUNTINFO_MAX &&
	       (n = read(fd, text + len, SITEKIND_MOUNTINFO_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	r = sitekind_fstype_in(text, major(dev), minor(dev), out, size);
	free(text);
	return r;
}

bool sitekind_not_kudu(const char *root, int locks_err, int deployments_err, char *why,
		       size_t size)
{
	if (locks_err != -ENOENT || deployments_err != -ENOENT)
		return false;
	snprintf(why, size, "%s holds neither locks/ nor deployments/: it is not Kudu's site "
		 "folder, and nothing is protected. On App Service /home is Kudu's share only "
		 "with the app setting " SITEKIND_SETTING "=true (custom containers are created "
		 "with false); elsewhere, check [site] root", root);
	return true;
}

bool sitekind_not_shared(const char *root, const char *fstype, char *why, size_t size)
{
	if (!fstype[0] || sitekind_fstype_is_shared(fstype))
		return false;
	snprintf(why, size, "%s is on a local %s filesystem, not on a share (cifs, nfs or "
		 "FUSE): Kudu runs in another container and writes to the share, so its "
		 "deployments would not be seen here. On App Service set the app setting "
		 SITEKIND_SETTING "=true", root, fstype);
	return true;
}
