/* pause_shim.c - an LD_PRELOAD library that stops the agent at one exact
 * step, so a test reaches a race window on purpose instead of hoping the
 * timing hits it.
 *
 * It wraps openat(), mkdirat(), renameat(), renameat2(), fdopendir() and
 * pwrite(). LW_PAUSE_CALL=create names an exclusive create of either kind:
 * openat() with O_CREAT|O_EXCL, or mkdirat().
 *
 * Preloaded into smbnetfs (a FUSE SMB client), it wraps the libsmbclient
 * calls that make a name, smbc_creat() and smbc_mkdir() (LW_PAUSE_CALL=
 * smbc-create, the name being the smb:// URL): the client then holds a
 * create after the kernel's lookup said "no such name" and before the
 * server sees it.
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

/* The file holds the id of the thread that paused: a test can then watch
 * it enter the real call (/proc/<pid>/task/<tid>/syscall). */
static void touch(const char *path)
{
	char tid[32];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		int n = snprintf(tid, sizeof(tid), "%ld\n", (long)syscall(SYS_gettid));
		if (write(fd, tid, (size_t)n) < 0)
			tid[0] = '\0';
		close(fd);
	}
}

static void maybe_pause_data(const char *call, const char *name, const void *data, size_t len);

/* The one pause of a gen, among every process sharing the folder: an
 * exclusive create on the test's own (local) disk. */
static int claim_pause(const char *path)
{
	char ids[64];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			      0600);
	if (fd < 0)
		return -1;
	int n = snprintf(ids, sizeof(ids), "%ld %ld\n", (long)getpid(), (long)syscall(SYS_gettid));
	if (write(fd, ids, (size_t)n) < 0)
		ids[0] = '\0';
	close(fd);
	return 0;
}

/* "openat" is any openat(), "openat-excl" one with O_CREAT|O_EXCL. */
static int call_matches(const char *want, const char *call)
{
	if (strcmp(want, call) == 0)
		return 1;
	if (strcmp(call, "openat-excl") == 0)
		return strcmp(want, "openat") == 0 || strcmp(want, "create") == 0;
	if (strcmp(call, "smbc_creat") == 0 || strcmp(call, "smbc_mkdir") == 0)
		return strcmp(want, "smbc-create") == 0;
	return strcmp(call, "mkdirat") == 0 && strcmp(want, "create") == 0;
}

static void maybe_pause(const char *call, const char *name)
{
	maybe_pause_data(call, name, NULL, 0);
}

/* LW_PAUSE_CTL: the file that says where to pause, read again at each
 * wrapped call, so a test moves the pause point while the agent runs (one
 * agent, many incidents). Lines "key=value": gen (a number; 0 or none:
 * pause nowhere), call, name, has, data, at - as the variables above. Each
 * gen pauses one thread only, of whichever process sharing LW_PAUSE_DIR
 * gets there first (it makes LW_PAUSE_DIR/paused-<gen>, exclusively, with
 * "<pid> <tid>" in it), until go-<gen> exists. */
struct spec {
	long gen;
	char call[32], name[128], has[128], data[128], at[16];
};

static void spec_field(struct spec *sp, const char *key, const char *val)
{
	char *dst = NULL;
	size_t size = 0;
	if (strcmp(key, "gen") == 0) {
		sp->gen = atol(val);
		return;
	}
	if (strcmp(key, "call") == 0)
		dst = sp->call, size = sizeof(sp->call);
	else if (strcmp(key, "name") == 0)
		dst = sp->name, size = sizeof(sp->name);
	else if (strcmp(key, "has") == 0)
		dst = sp->has, size = sizeof(sp->has);
	else if (strcmp(key, "data") == 0)
		dst = sp->data, size = sizeof(sp->data);
	else if (strcmp(key, "at") == 0)
		dst = sp->at, size = sizeof(sp->at);
	if (dst)
		snprintf(dst, size, "%s", val);
}

/* Through syscall(), like exists(): never the wrappers themselves. */
static int read_spec(const char *path, struct spec *sp)
{
	char buf[1024];
	memset(sp, 0, sizeof(*sp));
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long got = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return -1;
	buf[got] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (eq) {
			*eq = '\0';
			spec_field(sp, line, eq + 1);
		}
	}
	return sp->gen > 0 ? 0 : -1;
}

static atomic_long spec_gen;

static void maybe_pause_data(const char *call, const char *name, const void *data, size_t len)
{
	const char *ctl = getenv("LW_PAUSE_CTL");
	struct spec sp;
	const char *has, *want_data, *want_call, *want_name, *at, *every;
	const char *dir = getenv("LW_PAUSE_DIR");
	const char *ms = getenv("LW_PAUSE_MS");
	long gen = 0;

	if (ctl) {
		if (read_spec(ctl, &sp) < 0)
			return;
		gen = sp.gen;
		if (atomic_exchange(&spec_gen, gen) != gen)
			atomic_store(&matched, 0);
		has = sp.has, want_data = sp.data, want_call = sp.call, want_name = sp.name;
		at = sp.at[0] ? sp.at : NULL;
		every = NULL;
		ms = NULL;
	} else {
		has = getenv("LW_PAUSE_HAS");
		want_data = getenv("LW_PAUSE_DATA");
		want_call = getenv("LW_PAUSE_CALL");
		want_name = getenv("LW_PAUSE_NAME");
		at = getenv("LW_PAUSE_AT");
		every = getenv("LW_PAUSE_EVERY");
	}

	if (!want_call || !call_matches(want_call, call))
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
		if (gen) {
			snprintf(paused, sizeof(paused), "%s/paused-%ld", dir, gen);
			snprintf(go, sizeof(go), "%s/go-%ld", dir, gen);
			if (claim_pause(paused) < 0)
				return; /* another process paused for this gen */
		} else {
			snprintf(paused, sizeof(paused), "%s/paused", dir);
			snprintf(go, sizeof(go), "%s/go", dir);
			touch(paused);
		}
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
	maybe_pause((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL) ? "openat-excl" : "openat",
		    path);
	return real(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
	__attribute__((alias("openat")));

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	static int (*real)(int, const char *, mode_t);
	if (!real)
		real = (int (*)(int, const char *, mode_t))dlsym(RTLD_NEXT, "mkdirat");
	maybe_pause("mkdirat", path);
	return real(dirfd, path, mode);
}

int smbc_creat(const char *url, mode_t mode);
int smbc_creat(const char *url, mode_t mode)
{
	static int (*real)(const char *, mode_t);
	if (!real)
		real = (int (*)(const char *, mode_t))dlsym(RTLD_NEXT, "smbc_creat");
	maybe_pause("smbc_creat", url);
	return real ? real(url, mode) : (errno = ENOSYS, -1);
}

int smbc_mkdir(const char *url, mode_t mode);
int smbc_mkdir(const char *url, mode_t mode)
{
	static int (*real)(const char *, mode_t);
	if (!real)
		real = (int (*)(const char *, mode_t))dlsym(RTLD_NEXT, "smbc_mkdir");
	maybe_pause("smbc_mkdir", url);
	return real ? real(url, mode) : (errno = ENOSYS, -1);
}

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
	if (getenv("LW_PAUSE_CTL") ||
	    (getenv("LW_PAUSE_CALL") && strcmp(getenv("LW_PAUSE_CALL"), "pwrite") == 0)) {
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
