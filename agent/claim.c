/* claim.c - the incident's claim on the share (see claim.h). */
#include "claim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "clock.h"
#include "isotime.h"
#include "kudu.h"

#define CLAIM_MAGIC "lockwarden-claim 1"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* A value of ours: printable ASCII, no spaces, not empty. */
static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

int claim_format(const struct claim *c, char *buf, size_t size)
{
	char expires[40];
	isotime_format(c->expires_ns, "-", expires, sizeof(expires));
	int n = snprintf(buf, size,
			 CLAIM_MAGIC "\ninstance %s\nincident %s\nfingerprint %016llx\n"
			 "hook %s\nrenewed %llu\nexpires %s\nremoved %u\n",
			 c->instance, c->incident, (unsigned long long)c->fingerprint,
			 c->hook_started ? "started" : "no", (unsigned long long)c->seq, expires,
			 c->n_removed);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	size_t len = (size_t)n;
	const char *p = c->removed;
	for (unsigned i = 0; i < c->n_removed && *p; i++) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		n = snprintf(buf + len, size - len, "path %.*s\n", (int)l, p);
		if (n < 0 || (size_t)n >= size - len)
			return -ENOSPC;
		len += (size_t)n;
		p = nl ? nl + 1 : p + l;
	}
	n = snprintf(buf + len, size - len, "end\n");
	if (n < 0 || (size_t)n >= size - len)
		return -ENOSPC;
	return (int)(len + (size_t)n);
}

void claim_add_removed(struct claim *c, const char *path)
{
	size_t have = strlen(c->removed), add = strlen(path);
	const char *p = c->removed;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (l == add && memcmp(p, path, l) == 0)
			return;
		p = nl ? nl + 1 : p + l;
	}
	if (!is_token(path, add) || have + add + 2 > sizeof(c->removed))
		return;
	snprintf(c->removed + have, sizeof(c->removed) - have, "%s%s", have ? "\n" : "", path);
	c->n_removed++;
}

/* The line starting at *p (up to nl), as "key value". */
static bool take_line(const char **p, const char *end, const char *key, const char **val,
		      size_t *val_len)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t klen = strlen(key);
	if (!nl || (size_t)(nl - *p) < klen + 1 || memcmp(*p, key, klen) != 0 || (*p)[klen] != ' ')
		return false;
	*val = *p + klen + 1;
	*val_len = (size_t)(nl - *val);
	*p = nl + 1;
	return true;
}

static bool copy_token(char *out, size_t size, const char *v, size_t n)
{
	if (!is_token(v, n) || n >= size)
		return false;
	memcpy(out, v, n);
	out[n] = '\0';
	return true;
}

static bool parse_u64(const char *v, size_t n, int base, uint64_t *out)
{
	char tmp[32], *e;
	if (!copy_token(tmp, sizeof(tmp), v, n) || tmp[0] == '-')
		return false;
	errno = 0;
	unsigned long long x = strtoull(tmp, &e, base);
	if (errno || *e)
		return false;
	*out = x;
	return true;
}

int claim_parse(const char *buf, size_t len, struct claim *c)
{
	const char *p = buf, *end = buf + len, *v;
	size_t n, mlen = strlen(CLAIM_MAGIC);
	uint64_t x;

	memset(c, 0, sizeof(*c));
	if (len < mlen + 1 || memcmp(buf, CLAIM_MAGIC "\n", mlen + 1) != 0)
		return -EINVAL;
	p += mlen + 1;
	if (!take_line(&p, end, "instance", &v, &n) || !copy_token(c->instance, sizeof(c->instance), v, n))
		return -EINVAL;
	if (!take_line(&p, end, "incident", &v, &n) || !copy_token(c->incident, sizeof(c->incident), v, n))
		return -EINVAL;
	if (!take_line(&p, end, "fingerprint", &v, &n) || !parse_u64(v, n, 16, &c->fingerprint))
		return -EINVAL;
	if (!take_line(&p, end, "hook", &v, &n))
		return -EINVAL;
	if (n == 7 && memcmp(v, "started", 7) == 0)
		c->hook_started = true;
	else if (!(n == 2 && memcmp(v, "no", 2) == 0))
		return -EINVAL;
	if (!take_line(&p, end, "renewed", &v, &n) || !parse_u64(v, n, 10, &c->seq))
		return -EINVAL;
	if (!take_line(&p, end, "expires", &v, &n))
		return -EINVAL;
	if (isotime_parse(v, n, &c->expires_ns) < 0)
		c->expires_ns = KUDU_TIME_NONE;
	if (!take_line(&p, end, "removed", &v, &n) || !parse_u64(v, n, 10, &x) || x > 64)
		return -EINVAL;
	for (uint64_t i = 0; i < x; i++) {
		char path[NAME_MAX + 32];
		if (!take_line(&p, end, "path", &v, &n) || !copy_token(path, sizeof(path), v, n))
			return -EINVAL;
		claim_add_removed(c, path);
	}
	if ((size_t)(end - p) < 4 || memcmp(p, "end\n", 4) != 0)
		return -EINVAL;
	return 0;
}

const char *claim_describe(const struct claim_view *v)
{
	switch (v->err) {
	case 0:
		return "a claim";
	case -ENOENT:
		return "no claim";
	case -ELOOP:
		return "a symlink, never followed";
	case -ENXIO:
		return "not a regular file, never opened";
	case -EFBIG:
		return "too large to be a claim";
	case -EINVAL:
		return "not a claim of lockwarden's format";
	default:
		return strerror(-v->err);
	}
}

void claim_path_for(const char *archive_dir, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", archive_dir, CLAIM_NAME);
}

/* The folder that holds path, opened, and path's last component. */
static int open_parent(const char *path, char *name, size_t name_size)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1] || strlen(slash + 1) >= name_size)
		return -EINVAL;
	snprintf(name, name_size, "%s", slash + 1);
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	return archive_make_dirs(dir);
}

static uint64_t stat_hash(const struct stat *st)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	/* Not the ctime: renaming it aside (claim_replace) changes that. */
	int64_t f[5] = { (int64_t)(st->st_mode & S_IFMT), (int64_t)st->st_ino, (int64_t)st->st_size,
			 (int64_t)st->st_mtim.tv_sec, (int64_t)st->st_mtim.tv_nsec };
	return fnv(h, f, sizeof(f));
}

/* Looks at name in dir_fd (see claim_look). */
static void look_at(int dir_fd, const char *name, struct claim_view *v)
{
	struct stat st, fst;
	char buf[CLAIM_FILE_MAX + 1];

	memset(v, 0, sizeof(*v));
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		v->err = -errno;
		return;
	}
	v->dev = st.st_dev;
	v->ino = st.st_ino;
	v->mtime_ns = clock_ns_from(st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	v->hash = stat_hash(&st);
	/* A FIFO blocks an open and a device node's open has effects: only a
	 * regular file is ever opened. */
	if (S_ISLNK(st.st_mode)) {
		v->err = -ELOOP;
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		v->err = -ENXIO;
		return;
	}
	if (st.st_size > CLAIM_FILE_MAX) {
		v->err = -EFBIG;
		return;
	}
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		v->err = errno == ENOENT ? -ENOENT : -errno;
		return;
	}
	if (fstat(fd, &fst) < 0 || !S_ISREG(fst.st_mode) || fst.st_ino != st.st_ino) {
		v->err = -ESTALE; /* replaced while looked at: look again next time */
		close(fd);
		return;
	}
	ssize_t got = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (got < 0) {
		v->err = -errno;
		return;
	}
	if ((size_t)got > CLAIM_FILE_MAX) {
		v->err = -EFBIG;
		return;
	}
	v->hash = fnv(0xcbf29ce484222325ULL, buf, (size_t)got);
	v->err = claim_parse(buf, (size_t)got, &v->c);
}

void claim_look(const char *path, struct claim_view *v)
{
	char name[NAME_MAX + 1];
	int dfd = open_parent(path, name, sizeof(name));
	if (dfd < 0) {
		memset(v, 0, sizeof(*v));
		v->err = dfd == -ENOENT ? -ENOENT : dfd;
		return;
	}
	look_at(dfd, name, v);
	close(dfd);
}

static int write_all(int fd, const struct claim *c)
{
	char buf[CLAIM_FILE_MAX];
	int len = claim_format(c, buf, sizeof(buf));
	if (len < 0)
		return len;
	/* One write from offset 0, then the length: a reader sees the old or
	 * the new text, or at worst a mix that does not parse and only counts
	 * as a change. */
	ssize_t w = pwrite(fd, buf, (size_t)len, 0);
	if (w < 0)
		return -errno;
	if (w != len)
		return -EIO;
	if (ftruncate(fd, len) < 0)
		return -errno;
	return 0;
}

int claim_create(const char *path, const struct claim *c, int *fd_out)
{
	char name[NAME_MAX + 1];
	int r = make_parent(path);
	if (r < 0)
		return r;
	int dfd = open_parent(path, name, sizeof(name));
	if (dfd < 0)
		return dfd;
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		close(dfd);
		return r;
	}
	r = write_all(fd, c);
	if (r < 0) {
		unlinkat(dfd, name, 0);
		close(fd);
		close(dfd);
		return r;
	}
	close(dfd);
	*fd_out = fd;
	return 0;
}

int claim_rewrite(int fd, const struct claim *c)
{
	return write_all(fd, c);
}

static int still_ours_now(const char *path, int fd)
{
	struct stat mine, there;
	char name[NAME_MAX + 1];
	int dfd = open_parent(path, name, sizeof(name));
	if (dfd < 0)
		return dfd;
	int r = 0;
	if (fstat(fd, &mine) < 0)
		r = -errno;
	else if (fstatat(dfd, name, &there, AT_SYMLINK_NOFOLLOW) < 0)
		r = -ESTALE;
	/* nlink 0: ours was removed, and a new file may have its inode number. */
	else if (mine.st_nlink == 0 || mine.st_dev != there.st_dev || mine.st_ino != there.st_ino)
		r = -ESTALE;
	close(dfd);
	return r;
}

/* Another agent taking over the same expired claim swaps its own in and,
 * finding ours newer than what it watched expire, swaps ours back
 * (claim_replace): for that moment the name shows its file. While ours is
 * still linked somewhere, look again a few times before calling it lost. */
#define STILL_OURS_LOOKS 20
#define STILL_OURS_LOOK_US 5000

int claim_still_ours(const char *path, int fd)
{
	int r = still_ours_now(path, fd);
	struct stat st;

	for (int i = 1; i < STILL_OURS_LOOKS && r == -ESTALE && fstat(fd, &st) == 0 &&
			st.st_nlink > 0; i++) {
		usleep(STILL_OURS_LOOK_US);
		r = still_ours_now(path, fd);
	}
	return r;
}

void claim_release(const char *path, int fd)
{
	if (fd < 0)
		return;
	int r = claim_still_ours(path, fd);
	if (r == 0) {
		char name[NAME_MAX + 1];
		int dfd = open_parent(path, name, sizeof(name));
		if (dfd >= 0) {
			unlinkat(dfd, name, 0);
			close(dfd);
		}
	}
	close(fd);
}

/* Writes c under a name of this instance's, ready to be swapped in. */
static int prepare(int dfd, const char *name, const struct claim *c, int *fd_out)
{
	unlinkat(dfd, name, 0);
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, c);
	if (r < 0) {
		unlinkat(dfd, name, 0);
		close(fd);
		return r;
	}
	*fd_out = fd;
	return 0;
}

int claim_replace(const char *path, const struct claim_view *seen, const char *instance,
		  const struct claim *c, int *fd_out)
{
	char name[NAME_MAX + 1], aside[NAME_MAX + 1], fresh[NAME_MAX + 1];
	struct claim_view now;
	int fd = -1, r;
	int dfd = open_parent(path, name, sizeof(name));
	if (dfd < 0)
		return dfd;
	snprintf(aside, sizeof(aside), "%.200s-stale-%s", name, instance);
	snprintf(fresh, sizeof(fresh), "%.200s-new-%s", name, instance);

	/* Where the filesystem can, the new claim is swapped in for the old in
	 * one step, so no other agent ever finds the name free and starts a
	 * fresh incident that would not know what the old owner did. What
	 * came out is then compared with what we watched expire: another
	 * agent's newer claim is swapped back. */
	r = prepare(dfd, fresh, c, &fd);
	if (r < 0) {
		close(dfd);
		return r;
	}
	if (renameat2(dfd, fresh, dfd, name, RENAME_EXCHANGE) == 0) {
		look_at(dfd, fresh, &now);
		if (now.hash == seen->hash && now.ino == seen->ino && now.dev == seen->dev) {
			unlinkat(dfd, fresh, 0);
			close(dfd);
			*fd_out = fd;
			return 0;
		}
		if (renameat2(dfd, fresh, dfd, name, RENAME_EXCHANGE) == 0)
			unlinkat(dfd, fresh, 0);
		close(fd);
		close(dfd);
		return -EAGAIN;
	}
	r = -errno;
	unlinkat(dfd, fresh, 0);
	close(fd);
	if (r == -ENOENT) {
		close(dfd);
		return r;
	}

	/* No exchange here (some network and FUSE filesystems): renamed
	 * aside first, then compared. Between our look and this rename its
	 * owner may have renewed it, or another agent replaced it already:
	 * only the very content we watched expire is removed. */
	if (renameat(dfd, name, dfd, aside) < 0) {
		r = -errno;
		close(dfd);
		return r;
	}
	look_at(dfd, aside, &now);
	bool same = now.hash == seen->hash && now.ino == seen->ino && now.dev == seen->dev;
	if (!same) {
		if (renameat2(dfd, aside, dfd, name, RENAME_NOREPLACE) < 0) {
			/* A new claim was made meanwhile; the one aside belonged
			 * to an owner that will see it lost it (claim_still_ours). */
			unlinkat(dfd, aside, 0);
		}
		close(dfd);
		return -EAGAIN;
	}
	unlinkat(dfd, aside, 0);
	close(dfd);
	return claim_create(path, c, fd_out);
}
