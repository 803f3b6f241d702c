/* fmt.c - ages and file types as words. */
#include "fmt.h"

#include <stdio.h>
#include <sys/stat.h>

const char *fmt_age(int64_t age_ms, char *out, size_t size)
{
	int64_t s = age_ms / 1000;

	if (age_ms < 0)
		snprintf(out, size, "unknown");
	else if (s < 1)
		snprintf(out, size, "%lldms", (long long)age_ms);
	else if (s < 60)
		snprintf(out, size, "%llds", (long long)s);
	else if (s < 3600 && s % 60)
		snprintf(out, size, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 3600)
		snprintf(out, size, "%lldm", (long long)(s / 60));
	else if (s < 86400 && s % 3600 / 60)
		snprintf(out, size, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else if (s < 86400)
		snprintf(out, size, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, size, "%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
	return out;
}

const char *fmt_type_name(mode_t type)
{
	switch (type & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "folder";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "FIFO";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	}
	return "odd entry";
}
