/* pause_shim.c - an LD_PRELOAD library that stops the agent at one exact
 * step, so a test reaches a race window on purpose instead of hoping the
 * timing hits it.
 *
 * It wraps openat(), renameat(), renameat2(), fdopendir() and pwrite().
 * When the call named by LW_PAUSE_CALL is made with a name ending in
 * LW_PAUSE_NAME (the opened name, the new name of a rename, the path of the
 * file a pwrite writes; any call for fdopendir) - or, with LW_PAUSE_HAS,
 * a name holding that text anywhere, and with LW_PAUSE_DATA a pwrite whose
 * bytes hold that text - the LW_PAUSE_AT-th such call (default 1) pauses:
 *  - with LW_PAUSE_DIR: it creates LW_PAUSE_DIR/paused and waits until
 *    LW_PAUSE_DIR/go exists (at most 60 s), so the test acts in between;
 *  - with LW_PAUSE_MS: it sleeps that long (a slow share).
 * With LW_PAUSE_EVERY=1 every matching call pauses, not only the n-th.
 * Then the real call runs. Nothing else changes.
 *
 * It also wraps pipe2(): while the file LW_FAIL_PIPES_WHILE exists, pipe2
 * fails with EMFILE (a process out of descriptors), so the hook cannot be
 * started, on purpose, at a moment the test chooses.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int matched;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Through syscall(): the wrappers below must not see the shim's own files. */
static int exists(const char *path)
{
	struct stat st;
	return syscall(SYS_newfstatat, AT_FDCWD, path, &st, 0) == 0;
}

static void touch(const char *path)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

static void maybe_pause_data(const char *call, const char *name, const void *data, size_t len);

static void maybe_pause(const char *call, const char *name)
{
	maybe_pause_data(call, name, NULL, 0);
}

static void maybe_pause_data(const char *call, const char *name, const void *data, size_t len)
{
	const char *has = getenv("LW_PAUSE_HAS");
	const char *want_data = getenv("LW_PAUSE_DATA");
	const char *want_call = getenv("LW_PAUSE_CALL");
	const char *want_name = getenv("LW_PAUSE_NAME");
	const char *at = getenv("LW_PAUSE_AT");
	const char *every = getenv("LW_PAUSE_EVERY");
	const char *dir = getenv("LW_PAUSE_DIR");
	const char *ms = getenv("LW_PAUSE_MS");

	if (!want_call || strcmp(want_call, call) != 0)
		return;
	if (has && *has && (!name || !strstr(name, has)))
		return;
	if (want_data && *want_data && (!data || !memmem(data, len, want_data, strlen(want_data))))
		return;
	if (want_name && *want_name) {
		size_t n = name ? strlen(name) : 0, w = strlen(want_name);
		if (n < w || strcmp(name + n - w, want_name) != 0)
			return;
	}
	int n = atomic_fetch_add(&matched, 1) + 1;
	if (!(every && *every == '1') && n != (at ? atoi(at) : 1))
		return;
	if (dir) {
		char paused[4096], go[4096];
		snprintf(paused, sizeof(paused), "%s/paused", dir);
		snprintf(go, sizeof(go), "%s/go", dir);
		touch(paused);
		for (int i = 0; i < 12000 && !exists(go); i++)
			sleep_ms(5);
	} else if (ms) {
		sleep_ms(atol(ms));
	}
}

int openat(int dirfd, const char *path, int flags, ...)
{
	static int (*real)(int, const char *, int, ...);
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (!real)
		real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
	maybe_pause("openat", path);
	return real(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
	__attribute__((alias("openat")));

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	static int (*real)(int, const char *, int, const char *);
	if (!real)
		real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
	maybe_pause("rename", newpath);
	return real(olddirfd, oldpath, newdirfd, newpath);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
	      unsigned int flags)
{
	static int (*real)(int, const char *, int, const char *, unsigned int);
	if (!real)
		real = (int (*)(int, const char *, int, const char *, unsigned int))dlsym(
			RTLD_NEXT, "renameat2");
	maybe_pause("rename", newpath);
	return real(olddirfd, oldpath, newdirfd, newpath, flags);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	char link[64], path[4096];
	if (!real)
		real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	if (getenv("LW_PAUSE_CALL") && strcmp(getenv("LW_PAUSE_CALL"), "pwrite") == 0) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t l = readlink(link, path, sizeof(path) - 1);
		path[l > 0 ? l : 0] = '\0';
		maybe_pause_data("pwrite", path, buf, n);
	}
	return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));

DIR *fdopendir(int fd)
{
	static DIR *(*real)(int);
	if (!real)
		real = (DIR * (*)(int)) dlsym(RTLD_NEXT, "fdopendir");
	maybe_pause("fdopendir", NULL);
	return real(fd);
}

int pipe2(int fds[2], int flags)
{
	static int (*real)(int *, int);
	const char *marker = getenv("LW_FAIL_PIPES_WHILE");
	if (!real)
		real = (int (*)(int *, int))dlsym(RTLD_NEXT, "pipe2");
	if (marker && exists(marker)) {
		errno = EMFILE;
		return -1;
	}
	return real(fds, flags);
}
