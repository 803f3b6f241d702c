/* claim.c - the incident's claim on the share (see claim.h for the
 * protocol; each step below carries its name in test/model/claim_model.py). */
#include "claim.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archdir.h"
#include "archive.h"
#include "clock.h"
#include "hash.h"
#include "isotime.h"
#include "json.h"
#include "kudu.h"

#define CLAIM_FORMAT_VERSION 2
/* How many times claim.inherit reads the list again after a name it
 * listed was pruned under it (each time an owner above wrote first). */
#define INHERIT_TRIES 8
/* The file inside each name's folder (create_name). */
#define CLAIM_INNER "claim"
#define MARK_INNER "mark"

/* A path of ours: printable ASCII, no spaces. */
static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

bool claim_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= CLAIM_ID_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* ---- the text ----------------------------------------------------------------- */

struct out {
	char *buf;
	size_t size, len;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->full)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

/* A JSON string of printable ASCII (paths), '\n' kept as an escape. */
static void put_string(struct out *o, const char *s)
{
	put(o, "\"");
	for (; *s && !o->full; s++) {
		if (*s == '"' || *s == '\\')
			put(o, "\\%c", *s);
		else if (*s == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *s);
	}
	put(o, "\"");
}

int claim_format(const struct claim *c, char *buf, size_t size)
{
	struct out o = { buf, size, 0, false };
	char expires[40];
	isotime_format(c->expires_ns, "-", expires, sizeof(expires));
	put(&o, "{\"lockwarden_claim\": %d, \"n\": %llu, \"instance\": ", CLAIM_FORMAT_VERSION,
	    (unsigned long long)c->n);
	put_string(&o, c->instance);
	put(&o, ", \"incident\": ");
	put_string(&o, c->incident);
	put(&o, ", \"state\": \"%s\", \"began\": %s, \"fingerprint\": \"%016llx\", "
	    "\"renewals\": %llu, \"expires\": \"%s\", \"removed_count\": %u, \"removed\": ",
	    c->released ? "released" : "held", c->began ? "true" : "false",
	    (unsigned long long)c->fingerprint, (unsigned long long)c->seq, expires, c->n_removed);
	put_string(&o, c->removed);
	put(&o, "}\n");
	return o.full ? -ENOSPC : (int)o.len;
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

struct parse_ctx {
	struct claim *c;
	bool version, n, instance, incident, state;
	char removed[CLAIM_REMOVED_MAX];
	bool has_removed;
};

/* A string member decoded whole into buf, or -EINVAL (too long, or not a
 * string): a claim is believed field by field or not at all. */
static int take_string(struct json *j, char *buf, size_t size)
{
	struct text t;
	if (json_peek(j) != JSON_STRING)
		return -EINVAL;
	text_init(&t, buf, size);
	int r = json_string(j, &t);
	return r < 0 ? r : t.truncated ? -EINVAL : 0;
}

static int take_u64(struct json *j, uint64_t *out)
{
	long long v;
	bool is_int = false;
	if (json_peek(j) != JSON_NUMBER)
		return -EINVAL;
	int r = json_number(j, &v, &is_int);
	if (r < 0 || !is_int || v < 0)
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

static int claim_member(struct json *j, unsigned depth, const char *key, void *arg)
{
	struct parse_ctx *p = arg;
	struct claim *c = p->c;
	char word[40];
	uint64_t x;
	int r;

	if (strcmp(key, "lockwarden_claim") == 0) {
		r = take_u64(j, &x);
		p->version = r == 0 && x == CLAIM_FORMAT_VERSION;
		return r;
	}
	if (strcmp(key, "n") == 0) {
		p->n = true;
		return take_u64(j, &c->n);
	}
	if (strcmp(key, "instance") == 0) {
		r = take_string(j, c->instance, sizeof(c->instance));
		p->instance = r == 0 && claim_id_ok(c->instance);
		return r;
	}
	if (strcmp(key, "incident") == 0) {
		r = take_string(j, c->incident, sizeof(c->incident));
		p->incident = r == 0 && claim_id_ok(c->incident);
		return r;
	}
	if (strcmp(key, "state") == 0) {
		r = take_string(j, word, sizeof(word));
		if (r < 0)
			return r;
		c->released = strcmp(word, "released") == 0;
		p->state = c->released || strcmp(word, "held") == 0;
		return 0;
	}
	if (strcmp(key, "began") == 0) {
		if (json_literal(j, "true") == 0) {
			c->began = true;
			return 0;
		}
		return json_literal(j, "false");
	}
	if (strcmp(key, "fingerprint") == 0) {
		char *e;
		r = take_string(j, word, sizeof(word));
		if (r < 0)
			return r;
		c->fingerprint = strtoull(word, &e, 16);
		return *e ? -EINVAL : 0;
	}
	if (strcmp(key, "renewals") == 0)
		return take_u64(j, &c->seq);
	if (strcmp(key, "expires") == 0) {
		r = take_string(j, word, sizeof(word));
		if (r == 0 && isotime_parse(word, strlen(word), &c->expires_ns) < 0)
			c->expires_ns = KUDU_TIME_NONE;
		return r;
	}
	if (strcmp(key, "removed") == 0) {
		p->has_removed = true;
		return take_string(j, p->removed, sizeof(p->removed));
	}
	return json_skip_value(j, depth);
}

int claim_parse(const char *buf, size_t len, struct claim *c)
{
	struct parse_ctx p = { .c = c };
	memset(c, 0, sizeof(*c));
	c->expires_ns = KUDU_TIME_NONE;
	if (json_document(buf, len, claim_member, &p) < 0 || !p.version || !p.n || c->n == 0 ||
	    !p.instance || !p.incident || !p.state)
		return -EINVAL;
	/* The removals one by one: each must be a path of ours, at most 64. */
	char *save = NULL;
	unsigned count = 0;
	for (char *s = strtok_r(p.removed, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
		if (++count > 64 || !is_token(s, strlen(s)))
			return -EINVAL;
		claim_add_removed(c, s);
	}
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
		return "not a claim of lockwarden's format (or not yet written)";
	default:
		return strerror(-v->err);
	}
}

void claim_path_for(const char *archive_dir, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", archive_dir, CLAIM_NAME);
}

/* ---- names and reads ------------------------------------------------------------ */

static void claim_name(uint64_t n, char *out, size_t size)
{
	snprintf(out, size, "%s-%llu", CLAIM_NAME, (unsigned long long)n);
}

/* n when name is a claim's: ".lockwarden-claim-" and digits, no leading 0. */
static uint64_t name_number(const char *name)
{
	size_t plen = strlen(CLAIM_NAME);
	if (strncmp(name, CLAIM_NAME "-", plen + 1) != 0)
		return 0;
	const char *d = name + plen + 1;
	if (*d < '1' || *d > '9' || strlen(d) > 18)
		return 0;
	uint64_t n = 0;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return 0;
		n = n * 10 + (uint64_t)(*d - '0');
	}
	return n;
}

/* A small regular file, read whole without following a link or opening
 * anything else (a FIFO would block, a device has effects). Returns its
 * length or a negative errno (-ELOOP, -ENXIO, -EFBIG, -ENOENT...). */
static ssize_t read_small(int dir_fd, const char *name, char *buf, size_t size, int64_t *mtime_ns)
{
	struct stat st;
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (mtime_ns)
		*mtime_ns = clock_ns_from(st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	if (!S_ISREG(st.st_mode))
		return -ENXIO;
	if (st.st_size > (off_t)size)
		return -EFBIG;
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat fst;
	if (fstat(fd, &fst) < 0 || !S_ISREG(fst.st_mode)) {
		close(fd);
		return -ENXIO;
	}
	ssize_t got = pread(fd, buf, size, 0);
	int err = errno;
	close(fd);
	if (got < 0)
		return -err;
	/* As large as the buffer: maybe larger (it grew since the stat). */
	return (size_t)got >= size ? -EFBIG : got;
}

/* A name of the protocol, read: a folder holding one small file `inner`
 * (what this version makes: the folder's exclusive create is the atomic
 * step), or a regular file under the name itself (what versions before
 * made with O_EXCL, or a forgery: read the same way, believed no more).
 * Returns the text's length or a negative errno; a folder without its file
 * (made, not yet written; or half removed) is -EINVAL, like an empty file. */
static ssize_t read_name(int dir_fd, const char *name, const char *inner, char *buf,
			 size_t size, int64_t *mtime_ns)
{
	struct stat st;
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return read_small(dir_fd, name, buf, size, mtime_ns);
	if (mtime_ns)
		*mtime_ns = clock_ns_from(st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? -ENXIO : -errno;
	ssize_t got = read_small(fd, inner, buf, size, mtime_ns);
	close(fd);
	return got == -ENOENT ? -EINVAL : got;
}

/* Removes a name this agent may remove (claim.h): the folder's file, then
 * the folder; or an older version's file. 0, or a negative errno (-ENOENT:
 * already gone). */
static int remove_name(int dir_fd, const char *name, const char *inner)
{
	if (unlinkat(dir_fd, name, AT_REMOVEDIR) == 0)
		return 0;
	if (errno == ENOTDIR)
		return unlinkat(dir_fd, name, 0) < 0 ? -errno : 0;
	if (errno != ENOTEMPTY && errno != EEXIST)
		return -errno;
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = unlinkat(fd, inner, 0) < 0 && errno != ENOENT ? -errno : 0;
	close(fd);
	if (r == 0 && unlinkat(dir_fd, name, AT_REMOVEDIR) < 0)
		r = -errno;
	return r;
}

/* claim.create and hook.mark: the exclusive create of the folder `name`,
 * then its file `inner`, which only the folder's maker ever creates. Not
 * O_CREAT|O_EXCL of a file: smbnetfs (a FUSE SMB client) opens a new file
 * with smbc_creat(), O_CREAT|O_TRUNC, dropping O_EXCL, so two hosts' creates
 * of one name both succeed - the kernel's lookup before it is the only
 * check, and it is not atomic with the create; a folder's create is
 * (SMB's FILE_CREATE disposition) on every client and file system. Returns
 * the file's descriptor, -EEXIST when the name was made before (by anyone),
 * or another negative errno (the folder then removed again). */
static int create_name(int dir_fd, const char *name, const char *inner, int flags)
{
	if (mkdirat(dir_fd, name, 0755) < 0)
		return -errno;
	int r, dfd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
	} else {
		r = openat(dfd, inner, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (r < 0)
			r = -errno;
		close(dfd);
	}
	if (r < 0 && r != -ENOENT)
		remove_name(dir_fd, name, inner); /* ours: it says nothing */
	return r;
}

/* Reads claim n into *c: 0, -ENOENT, -EINVAL (empty or not ours), ... */
static int read_claim(int dir_fd, uint64_t n, struct claim *c, uint64_t *hash, int64_t *mtime_ns)
{
	char name[64], buf[CLAIM_FILE_MAX + 1];
	claim_name(n, name, sizeof(name));
	ssize_t got = read_name(dir_fd, name, CLAIM_INNER, buf, CLAIM_FILE_MAX + 1, mtime_ns);
	if (got < 0)
		return (int)got;
	if (hash)
		*hash = hash_fnv1a(hash_fnv1a(HASH_FNV1A_INIT, &n, sizeof(n)), buf, (size_t)got);
	int r = claim_parse(buf, (size_t)got, c);
	/* A claim that says another number than its name's is not believed. */
	return r == 0 && c->n != n ? -EINVAL : r;
}

static bool exists(int dir_fd, uint64_t n)
{
	char name[64];
	struct stat st;
	claim_name(n, name, sizeof(name));
	return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

/* The numbers of the claim names in the folder, by a listing (names only):
 * the highest, the highest below `below` and the lowest (0: none). */
static int list_names(int dir_fd, uint64_t below, uint64_t *top, uint64_t *under,
		      uint64_t *lowest)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	struct dirent *de;
	*top = 0;
	if (under)
		*under = 0;
	if (lowest)
		*lowest = 0;
	while ((de = readdir(d)) != NULL) {
		uint64_t n = name_number(de->d_name);
		if (n > *top)
			*top = n;
		if (under && n && n < below && n > *under)
			*under = n;
		if (lowest && n && (!*lowest || n < *lowest))
			*lowest = n;
	}
	closedir(d);
	return 0;
}

/* The folder's own stat as claim_absent keeps it (false: no stat). */
static bool folder_stat(int dir_fd, struct claim_absent *s)
{
	struct stat st;
	if (fstat(dir_fd, &st) < 0)
		return false;
	*s = (struct claim_absent){
		.known = true,
		.dev = (uint64_t)st.st_dev,
		.ino = (uint64_t)st.st_ino,
		.size = (uint64_t)st.st_size,
		.nlink = (uint64_t)st.st_nlink,
		.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
		.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec,
	};
	return true;
}

static bool same_folder(const struct claim_absent *a, const struct claim_absent *b)
{
	return a->known && b->known && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->nlink == b->nlink && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns;
}

void claim_look(int dir_fd, uint64_t hint, struct claim_absent *absent, struct claim_view *v)
{
	uint64_t top = 0;
	memset(v, 0, sizeof(*v));
	/* claim.look: names only go up one at a time from a name that exists
	 * (claim.create makes top + 1); the top is never removed but by an
	 * owner above it. So from a name still there, probing upward finds the
	 * top; else the folder is listed. */
	if (hint && exists(dir_fd, hint)) {
		top = hint;
		while (exists(dir_fd, top + 1))
			top++;
	} else {
		/* The stat before the listing: a name made while it runs changes
		 * it after, and the next look lists again. */
		struct claim_absent now = { 0 };
		bool have = absent && folder_stat(dir_fd, &now);
		if (have && same_folder(&now, absent)) {
			v->err = -ENOENT;
			return;
		}
		int r = list_names(dir_fd, 0, &top, NULL, NULL);
		if (r < 0) {
			v->err = r;
			return;
		}
		if (absent)
			*absent = have && !top ? now : (struct claim_absent){ 0 };
	}
	v->top = top;
	if (!top) {
		v->err = -ENOENT;
		return;
	}
	v->err = read_claim(dir_fd, top, &v->c, &v->hash, &v->mtime_ns);
	if (v->err < 0 && v->err != -ENOENT) {
		/* The content is not ours: compared by the name's number and
		 * its time, so that the same bad file is the same. */
		v->hash = hash_fnv1a(hash_fnv1a(HASH_FNV1A_INIT, &top, sizeof(top)), &v->mtime_ns,
				     sizeof(v->mtime_ns));
		v->hash = hash_fnv1a(v->hash, &v->err, sizeof(v->err));
	}
}

/* ---- the held claim -------------------------------------------------------------- */

/* claim.write: the text from offset 0, padded with spaces (JSON allows
 * them after the value) to the longest written so far: without ftruncate,
 * which some SMB clients fail, no tail of an older text is left behind. */
static int write_text(struct claim_held *h, struct claim *c)
{
	char buf[CLAIM_FILE_MAX];
	c->n = h->n;
	c->seq++;
	int len = claim_format(c, buf, sizeof(buf));
	if (len < 0)
		return len;
	size_t total = (size_t)len > h->len ? (size_t)len : h->len;
	memset(buf + len, ' ', total - (size_t)len);
	ssize_t w = pwrite(h->fd, buf, total, 0);
	if (w < 0)
		return -errno;
	if ((size_t)w != total)
		return -EIO;
	memcpy(h->text, buf, total);
	h->len = total;
	return 0;
}

int claim_check(int dir_fd, const struct claim_held *h)
{
	char name[64], buf[CLAIM_FILE_MAX + 1];
	if (h->fd < 0)
		return -ESTALE;
	claim_name(h->n, name, sizeof(name));
	/* claim.check: our name holds exactly our last text (not its inode:
	 * not every client keeps it), and nobody made the next name. */
	ssize_t got = read_name(dir_fd, name, CLAIM_INNER, buf, sizeof(buf), NULL);
	if (got < 0)
		return got == -ENOENT || got == -EINVAL || got == -ELOOP || got == -ENXIO || got == -EFBIG
		       ? -ESTALE : (int)got;
	if ((size_t)got != h->len || memcmp(buf, h->text, h->len) != 0)
		return -ESTALE;
	return exists(dir_fd, h->n + 1) ? -ESTALE : 0;
}

int claim_write(int dir_fd, struct claim_held *h, struct claim *c)
{
	if (h->fd < 0)
		return -ESTALE;
	/* Not into a name that is not ours any more: a claim taken over is
	 * left as the taker read it. */
	int r = claim_check(dir_fd, h);
	if (r == 0)
		r = write_text(h, c);
	return r < 0 ? r : claim_check(dir_fd, h);
}

/* claim.inherit: the highest name below ours that holds a claim. */
static bool inherit(int dir_fd, uint64_t mine, struct claim *c)
{
	for (int tries = 0; tries < INHERIT_TRIES; tries++) {
		uint64_t top, n;
		if (list_names(dir_fd, mine, &top, &n, NULL) < 0)
			return false;
		while (n) {
			struct claim prev;
			int r = read_claim(dir_fd, n, &prev, NULL, NULL);
			if (r == -ENOENT)
				break; /* pruned by an owner above, who wrote first: list again */
			if (r == 0 && prev.released)
				return false;
			if (r == 0) {
				snprintf(c->incident, sizeof(c->incident), "%s", prev.incident);
				c->fingerprint = prev.fingerprint;
				c->began = c->began || prev.began;
				memcpy(c->removed, prev.removed, sizeof(c->removed));
				c->n_removed = prev.n_removed;
				return true;
			}
			/* Made and not yet written (its maker stalled or died
			 * between claim.create and claim.write), or not ours:
			 * the one below it tells. */
			n--;
			while (n && !exists(dir_fd, n))
				n--;
		}
		if (!n)
			return false;
	}
	return false;
}

/* claim.prune: every name below ours, lowest first, so that a name still
 * there always has the next one above it (claim.check of a stalled former
 * owner then says "lost", never "ours"). */
static void prune(int dir_fd, uint64_t mine)
{
	uint64_t top, low;
	char name[64];
	while (list_names(dir_fd, 0, &top, NULL, &low) == 0 && low && low < mine) {
		claim_name(low, name, sizeof(name));
		int r = remove_name(dir_fd, name, CLAIM_INNER);
		if (r < 0 && r != -ENOENT)
			return;
	}
}

int claim_take(int dir_fd, uint64_t top_seen, struct claim *c, struct claim_held *h,
	       bool *inherited)
{
	char name[64];
	uint64_t n = top_seen + 1, top;

	memset(h, 0, sizeof(*h));
	h->fd = -1;
	*inherited = false;
	/* claim.create */
	claim_name(n, name, sizeof(name));
	int fd = create_name(dir_fd, name, CLAIM_INNER, O_RDWR);
	if (fd < 0)
		return fd == -ENOENT ? -EAGAIN : fd;
	/* claim.verify: a name above ours means the top we saw was pruned and
	 * ours is a hole below the real top: ours goes (it is ours). */
	int r = list_names(dir_fd, 0, &top, NULL, NULL);
	if (r < 0 || top > n) {
		remove_name(dir_fd, name, CLAIM_INNER);
		close(fd);
		return r < 0 ? r : -EAGAIN;
	}
	h->fd = fd;
	h->n = n;
	/* claim.inherit, claim.write, claim.prune, claim.check */
	*inherited = inherit(dir_fd, n, c);
	c->released = false;
	r = write_text(h, c);
	if (r == 0) {
		prune(dir_fd, n);
		r = claim_check(dir_fd, h);
	}
	if (r < 0) {
		/* A name ours that says nothing (the share full, the write
		 * refused) carries no authority: it goes at once, by its maker,
		 * rather than being waited out by everyone for claim_expiry (in
		 * the model: a crash right after claim.create, then the removal
		 * of one's own stale name, which only its maker may do). A
		 * claim that was written and then found lost is not ours to
		 * remove: claim.check already saw a newer name. */
		if (r != -ESTALE && r != -EAGAIN)
			remove_name(dir_fd, name, CLAIM_INNER);
		close(fd);
		h->fd = -1;
	}
	return r;
}

int claim_release(int dir_fd, struct claim_held *h, struct claim *c)
{
	if (h->fd < 0)
		return 0;
	c->released = true;
	int r = claim_check(dir_fd, h);
	if (r == 0)
		r = write_text(h, c);
	claim_leave(h);
	return r;
}

void claim_leave(struct claim_held *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

int claim_still_ours(const char *path, int fd)
{
	struct claim_held h;
	struct claim c;
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash || fd < 0)
		return -ESTALE;
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	int dfd = -1;
	if (archdir_open(dir, false, &dfd) < 0)
		return -ESTALE;
	int r = -ESTALE;
	/* Our own text, read back through our handle: a renewal on the claim's
	 * thread may rewrite it between the two reads, so look twice. */
	for (int i = 0; i < 3 && r == -ESTALE; i++) {
		ssize_t got = pread(fd, h.text, sizeof(h.text), 0);
		if (got <= 0 || (size_t)got >= sizeof(h.text) || claim_parse(h.text, (size_t)got, &c) < 0)
			break;
		h.fd = fd;
		h.n = c.n;
		h.len = (size_t)got;
		r = claim_check(dfd, &h);
	}
	close(dfd);
	return r == 0 ? 0 : -ESTALE;
}

/* ---- the hook mark ----------------------------------------------------------------- */

static int mark_name(const char *incident, char *out, size_t size)
{
	if (!claim_id_ok(incident))
		return -EINVAL;
	snprintf(out, size, "%s%s", CLAIM_MARK_NAME, incident);
	return 0;
}

static int write_mark(int fd, const char *incident, const char *instance, bool ended, int status)
{
	char buf[256];
	int len = snprintf(buf, sizeof(buf),
			   "{\"lockwarden_hook\": 1, \"incident\": \"%s\", \"instance\": \"%s\", "
			   "\"state\": \"%s\", \"exit\": %d}\n", incident, instance,
			   ended ? "ended" : "started", status);
	/* Both texts padded with spaces to one length: the ended one replaces
	 * the started one whole, without ftruncate. */
	if (len < 0 || (size_t)len >= sizeof(buf))
		return -ENOSPC;
	memset(buf + len, ' ', sizeof(buf) - (size_t)len);
	ssize_t w = pwrite(fd, buf, sizeof(buf), 0);
	return w < 0 ? -errno : (size_t)w != sizeof(buf) ? -EIO : 0;
}

int claim_mark_hook(int dir_fd, const char *incident, const char *instance, int *fd_out)
{
	char name[NAME_MAX + 1];
	int r = mark_name(incident, name, sizeof(name));
	if (r < 0)
		return r;
	/* hook.mark: whoever creates it, and only they, start the hook. A
	 * folder whose file could not be made goes again (create_name): a
	 * mark that exists always has its maker about to start the hook. */
	int fd = create_name(dir_fd, name, MARK_INNER, O_WRONLY);
	if (fd < 0)
		return fd == -ENOENT ? -EEXIST : fd;
	/* hook.started: a failure here still leaves the mark (empty): read as
	 * started by every instance, which is what it is about to be. */
	write_mark(fd, incident, instance, false, 0);
	*fd_out = fd;
	return 0;
}

int claim_mark_end(int fd, const char *incident, const char *instance, int exit_status)
{
	if (fd < 0)
		return -EBADF;
	/* hook.end */
	int r = write_mark(fd, incident, instance, true, exit_status < 0 ? 0 : exit_status);
	close(fd);
	return r;
}

struct mark_ctx {
	struct claim_mark *m;
	char state[16];
};

static int mark_member(struct json *j, unsigned depth, const char *key, void *arg)
{
	struct mark_ctx *p = arg;
	if (strcmp(key, "instance") == 0)
		return take_string(j, p->m->instance, sizeof(p->m->instance));
	if (strcmp(key, "state") == 0)
		return take_string(j, p->state, sizeof(p->state));
	if (strcmp(key, "exit") == 0) {
		uint64_t x = 0;
		int r = take_u64(j, &x);
		p->m->exit_status = (int)(x & 0xff);
		return r;
	}
	return json_skip_value(j, depth);
}

void claim_read_mark(int dir_fd, const char *incident, struct claim_mark *m)
{
	char name[NAME_MAX + 1], buf[512];
	memset(m, 0, sizeof(*m));
	if ((m->err = mark_name(incident, name, sizeof(name))) < 0)
		return;
	ssize_t got = read_name(dir_fd, name, MARK_INNER, buf, sizeof(buf), NULL);
	if (got < 0) {
		m->err = (int)got;
		return;
	}
	struct mark_ctx p = { .m = m };
	if (json_document(buf, (size_t)got, mark_member, &p) < 0 || !claim_id_ok(m->instance)) {
		m->err = -EINVAL; /* empty (its maker stopped right after hook.mark) or not ours */
		return;
	}
	m->ended = strcmp(p.state, "ended") == 0;
}

unsigned claim_prune_marks(int dir_fd, uint64_t keep_ms, int64_t now_ns)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	unsigned gone = 0;
	if (fd < 0)
		return 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	struct dirent *de;
	size_t plen = strlen(CLAIM_MARK_NAME);
	int64_t keep_ns = (int64_t)(keep_ms > INT64_MAX / CLOCK_NS_PER_MS ? INT64_MAX / CLOCK_NS_PER_MS
									  : keep_ms) * CLOCK_NS_PER_MS;
	while ((de = readdir(d)) != NULL) {
		int64_t when;
		if (strncmp(de->d_name, CLAIM_MARK_NAME, plen) != 0 ||
		    !archive_session_time(de->d_name + plen, &when))
			continue;
		/* Safe to remove: no instance still works on an incident that
		 * old (every step re-checks the claim, and a request the share
		 * holds ends within its client's timeout, minutes at most). */
		if (now_ns - when > keep_ns && remove_name(dirfd(d), de->d_name, MARK_INNER) == 0)
			gone++;
	}
	closedir(d);
	return gone;
}
