/* test_reap.c - reap.c on real trees under /tmp.
 *
 * Every test builds a site root (locks/, deployments/) and a folder "outside"
 * beside it that nothing may ever touch, judges its targets with lstat the
 * way the scan does, changes things when the test is about a change, and
 * calls reap_run. "Nothing removed" and "outside untouched" are checked with
 * a fingerprint of every entry (type, inode, size, mtime, link count,
 * content, link target), taken before and after.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reap.h"

extern char **environ;

/* A fixed temp-record name, and what a Kudu record holds. */
#define TEMP_NAME "temp-0badc0de"
/* The token of every trash name the tests make. */
#define TOKEN "0badc0de0badc0de"
#define TRASH(name) REAP_TRASH_PREFIX TOKEN "-" name
static const char *const record_inner[] = { "status.xml", "log.log", "manifest" };

/* ---- The site tree fixture -------------------------------------------- */

struct site_tree {
	char base[64];          /* /tmp/reap-test-XXXXXX, holds everything */
	char root[128];         /* base/site: locks/ and deployments/ */
	char outside[128];      /* base/outside: must never change */
	int root_fd, locks_fd, dep_fd, outside_fd;
	dev_t root_dev;
	ino_t root_ino;
	bool immutable_used;    /* teardown clears FS_IMMUTABLE_FL first */
	rlim_t saved_nofile;    /* restored by teardown when nonzero */
};

static void write_at(int dir_fd, const char *name, const char *content)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	size_t len = strlen(content);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void append_at(int dir_fd, const char *name, const char *content)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	size_t len = strlen(content);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int mkdir_open(int dir_fd, const char *name)
{
	assert_int_equal(mkdirat(dir_fd, name, 0755), 0);
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static bool exists_at(int dir_fd, const char *name)
{
	struct stat st;
	return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int run_command(char *const argv[])
{
	pid_t pid;
	int status;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Unmounts everything a test mounted under base, deepest (latest) first. */
static void unmount_under(const char *base)
{
	char (*points)[256] = NULL;
	size_t n = 0, prefix = strlen(base);
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char point[256];
		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*s %*s %*s %*s %255s", point) != 1)
			continue;
		if (strncmp(point, base, prefix) != 0 || point[prefix] != '/')
			continue;
		char (*grown)[256] = realloc(points, (n + 1) * sizeof(*points));
		if (!grown)
			break;
		points = grown;
		memcpy(points[n++], point, sizeof(point));
	}
	fclose(f);
	while (n > 0)
		umount2(points[--n], MNT_DETACH);
	free(points);
}

/* Clears the immutable flag on every file under dir_fd (tests that use it). */
static void clear_immutable(int dir_fd)
{
	int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_DIR) {
			int sub = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				clear_immutable(sub);
				close(sub);
			}
		} else if (de->d_type == DT_REG) {
			int ffd = openat(dir_fd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			int flags;
			if (ffd >= 0 && ioctl(ffd, FS_IOC_GETFLAGS, &flags) == 0 &&
			    (flags & FS_IMMUTABLE_FL)) {
				flags &= ~FS_IMMUTABLE_FL;
				ioctl(ffd, FS_IOC_SETFLAGS, &flags);
			}
			if (ffd >= 0)
				close(ffd);
		}
	}
	closedir(d);
}

static int site_tree_setup(void **state)
{
	struct site_tree *t = calloc(1, sizeof(*t));
	struct stat st;

	if (!t)
		return -1;
	snprintf(t->base, sizeof(t->base), "/tmp/reap-test-XXXXXX");
	if (!mkdtemp(t->base))
		return -1;
	snprintf(t->root, sizeof(t->root), "%s/site", t->base);
	snprintf(t->outside, sizeof(t->outside), "%s/outside", t->base);
	if (mkdir(t->root, 0755) < 0 || mkdir(t->outside, 0755) < 0)
		return -1;
	t->root_fd = open(t->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	t->outside_fd = open(t->outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->root_fd < 0 || t->outside_fd < 0 || fstat(t->root_fd, &st) < 0)
		return -1;
	t->root_dev = st.st_dev;
	t->root_ino = st.st_ino;
	if (mkdirat(t->root_fd, "locks", 0755) < 0 || mkdirat(t->root_fd, "deployments", 0755) < 0)
		return -1;
	t->locks_fd = openat(t->root_fd, "locks", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	t->dep_fd = openat(t->root_fd, "deployments", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->locks_fd < 0 || t->dep_fd < 0)
		return -1;

	/* What an attacker would like us to delete. */
	int victim = mkdir_open(t->outside_fd, "victim");
	write_at(victim, "status.xml", "<deployment><id>outside</id></deployment>");
	write_at(victim, "precious.txt", "do not delete");
	int sub = mkdir_open(victim, "sub");
	write_at(sub, "deeper.txt", "also precious");
	close(sub);
	close(victim);
	write_at(t->outside_fd, "file.txt", "outside file");

	*state = t;
	return 0;
}

static int site_tree_teardown(void **state)
{
	struct site_tree *t = *state;

	if (t->saved_nofile) {
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = t->saved_nofile;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	unmount_under(t->base);
	if (t->immutable_used) {
		int fd = open(t->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			clear_immutable(fd);
			close(fd);
		}
	}
	close(t->locks_fd);
	close(t->dep_fd);
	close(t->root_fd);
	close(t->outside_fd);
	char *argv[] = { "rm", "-rf", "--one-file-system", "--", t->base, NULL };
	int rc = run_command(argv);
	free(t);
	return rc == 0 ? 0 : -1;
}

/* ---- Judging, the way the scan does it ---------------------------------- */

static void site_stat_from(const struct stat *st, struct site_stat *out)
{
	*out = (struct site_stat){
		.present = true,
		.type = st->st_mode & S_IFMT,
		.dev = st->st_dev,
		.ino = st->st_ino,
		.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
		.ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec,
		.size = st->st_size,
	};
}

static void judge_at(int dir_fd, const char *name, struct site_stat *out)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		assert_int_equal(errno, ENOENT);
		*out = (struct site_stat){ .present = false };
		return;
	}
	site_stat_from(&st, out);
}

static void target_judge(struct reap_target *t, int area_fd, const char *area, const char *name,
			 const char *const inner[], size_t n_inner)
{
	memset(t, 0, sizeof(*t));
	t->area = area;
	snprintf(t->name, sizeof(t->name), "%s", name);
	judge_at(area_fd, name, &t->judged);
	int fd = openat(area_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	for (size_t i = 0; i < n_inner; i++) {
		snprintf(t->inner_name[i], sizeof(t->inner_name[i]), "%s", inner[i]);
		if (fd >= 0)
			judge_at(fd, inner[i], &t->inner[i]);
		else
			t->inner[i] = (struct site_stat){ .present = false };
	}
	t->n_inner = n_inner;
	if (fd >= 0)
		close(fd);
}

static void target_judge_record(struct reap_target *t, int dep_fd, const char *name)
{
	target_judge(t, dep_fd, "deployments", name, record_inner, 3);
}

static int reap_one_target(const struct site_tree *s, const struct reap_target *t,
			   struct reap_result *r)
{
	atomic_bool cancel = false;
	return reap_run(s->root, s->root_dev, s->root_ino, TOKEN, t, 1, &cancel, r);
}

/* Every detail is one printable line whatever the names on disk hold. */
static void assert_detail_clean(const struct reap_result *r)
{
	size_t len = strnlen(r->detail, sizeof(r->detail));

	assert_true(len < sizeof(r->detail));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)r->detail[i];
		assert_true(c >= 0x20 && c < 0x7f);
	}
}

static void assert_detail_has(const struct reap_result *r, const char *part)
{
	assert_detail_clean(r);
	if (!strstr(r->detail, part))
		fail_msg("detail \"%s\" lacks \"%s\"", r->detail, part);
}

/* A Kudu record: status.xml, log.log, manifest and an Oryx artifact. */
static void make_record(int dep_fd, const char *name)
{
	int fd = mkdir_open(dep_fd, name);
	write_at(fd, "status.xml", "<?xml version=\"1.0\"?><deployment><status>Pending</status></deployment>");
	write_at(fd, "log.log", "2024-01-01T00:00:00.0000000Z,Receiving changes.,guid,0\n");
	write_at(fd, "manifest", "");
	int art = mkdir_open(fd, "artifact");
	write_at(art, "20240101000000.zip", "PK");
	close(art);
	close(fd);
}

/* ---- Fingerprints ------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * UINT64_C(0x100000001b3);
	return h;
}

/* Sums a hash of every entry under dir_fd (order-independent). */
static uint64_t fingerprint_at(int dir_fd, uint64_t path_hash, unsigned long *count)
{
	int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fdopendir(fd);
	struct dirent *de;
	uint64_t sum = 0;

	assert_non_null(d);
	/* The duplicate shares its offset with dir_fd: start from the top. */
	rewinddir(d);
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Fresh attributes: a FUSE mount's cache may still show the
		 * link count of a moment ago. */
		struct statx sx;
		assert_int_equal(statx(dir_fd, de->d_name, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC,
				       STATX_BASIC_STATS, &sx), 0);
		st = (struct stat){ .st_mode = sx.stx_mode, .st_ino = (ino_t)sx.stx_ino,
				    .st_size = (off_t)sx.stx_size, .st_nlink = sx.stx_nlink,
				    .st_mtim = { sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec } };
		uint64_t h = fnv(path_hash, "/", 1);
		h = fnv(h, de->d_name, strlen(de->d_name));
		uint64_t name_h = h;
		int64_t fields[] = { st.st_mode, (int64_t)st.st_ino, st.st_size, (int64_t)st.st_nlink,
				     st.st_mtim.tv_sec, st.st_mtim.tv_nsec };
		h = fnv(h, fields, sizeof(fields));
		if (S_ISREG(st.st_mode)) {
			char buf[4096];
			ssize_t got;
			int ffd = openat(dir_fd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			assert_true(ffd >= 0);
			while ((got = read(ffd, buf, sizeof(buf))) > 0)
				h = fnv(h, buf, (size_t)got);
			close(ffd);
		} else if (S_ISLNK(st.st_mode)) {
			char buf[PATH_MAX];
			ssize_t got = readlinkat(dir_fd, de->d_name, buf, sizeof(buf));
			assert_true(got >= 0);
			h = fnv(h, buf, (size_t)got);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			assert_true(sub >= 0);
			h ^= fingerprint_at(sub, name_h, count);
			close(sub);
		}
		sum += h;
		(*count)++;
	}
	closedir(d);
	return sum;
}

struct fingerprint {
	uint64_t sum;
	unsigned long entries;
};

static struct fingerprint fingerprint(int dir_fd)
{
	struct fingerprint f = { 0, 0 };
	f.sum = fingerprint_at(dir_fd, UINT64_C(0xcbf29ce484222325), &f.entries);
	return f;
}

static void assert_same_fingerprint(struct fingerprint a, struct fingerprint b)
{
	assert_int_equal(a.entries, b.entries);
	assert_true(a.sum == b.sum);
}

/* ---- Removal ------------------------------------------------------------ */

static void test_file_targets_removed(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t[2];
	struct reap_result r[2];
	atomic_bool cancel = false;

	write_at(s->locks_fd, "status.lock", "{ \"OperationName\": \"x\" }");
	write_at(s->dep_fd, "pending", "");
	struct fingerprint outside = fingerprint(s->outside_fd);
	target_judge(&t[0], s->locks_fd, "locks", "status.lock", NULL, 0);
	target_judge(&t[1], s->dep_fd, "deployments", "pending", NULL, 0);

	assert_int_equal(reap_run(s->root, s->root_dev, s->root_ino, TOKEN, t, 2, &cancel, r), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].err, 0);
		assert_int_equal(r[i].files_removed, 1);
		assert_detail_clean(&r[i]);
	}
	assert_false(exists_at(s->locks_fd, "status.lock"));
	assert_false(exists_at(s->dep_fd, "pending"));
	assert_same_fingerprint(outside, fingerprint(s->outside_fd));
}

static void test_folder_with_nested_content_removed(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;

	make_record(s->dep_fd, TEMP_NAME);
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int a = mkdir_open(fd, "a"), b = mkdir_open(a, "b"), c = mkdir_open(b, "c");
	write_at(a, "1", "1");
	write_at(b, "2", "2");
	write_at(c, "3", "3");
	close(mkdir_open(c, "empty"));
	close(a), close(b), close(c), close(fd);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);

	assert_int_equal(reap_one_target(s, &t, &r), 0);
	assert_int_equal(r.err, 0);
	/* status.xml, log.log, manifest, the zip, 1, 2, 3 */
	assert_int_equal(r.files_removed, 7);
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	assert_false(exists_at(s->dep_fd, TRASH(TEMP_NAME)));
	/* deployments/ is empty again */
	struct fingerprint f = fingerprint(s->dep_fd);
	assert_int_equal(f.entries, 0);
}

static void test_lock_folder_removed(void **state)
{
	struct site_tree *s = *state;
	static const char *const inner[] = { "info.lock" };
	struct reap_target t;
	struct reap_result r;

	int fd = mkdir_open(s->locks_fd, "deployment");
	write_at(fd, "info.lock", "{\"lockExpiry\":null}");
	close(fd);
	target_judge(&t, s->locks_fd, "locks", "deployment", inner, 1);
	assert_int_equal(reap_one_target(s, &t, &r), 0);
	assert_int_equal(r.files_removed, 1);
	assert_false(exists_at(s->locks_fd, "deployment"));
	assert_false(exists_at(s->locks_fd, TRASH("deployment")));
}

static void test_leftover_trash_finished(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t[2];
	struct reap_result r[2];
	atomic_bool cancel = false;

	/* As an interrupted run leaves them: already renamed, partly emptied. */
	int fd = mkdir_open(s->dep_fd, TRASH("temp-12345678"));
	int sub = mkdir_open(fd, "artifact");
	write_at(sub, "x.zip", "PK");
	write_at(fd, "log.log", "...");
	close(sub), close(fd);
	fd = mkdir_open(s->locks_fd, TRASH("deployment"));
	close(fd);
	target_judge(&t[0], s->dep_fd, "deployments", TRASH("temp-12345678"), NULL, 0);
	target_judge(&t[1], s->locks_fd, "locks", TRASH("deployment"), NULL, 0);

	assert_int_equal(reap_run(s->root, s->root_dev, s->root_ino, TOKEN, t, 2, &cancel, r), 0);
	assert_int_equal(r[0].files_removed, 2);
	assert_int_equal(r[1].files_removed, 0);
	assert_int_equal(fingerprint(s->dep_fd).entries, 0);
	assert_int_equal(fingerprint(s->locks_fd).entries, 0);
}

static void test_trash_name_taken(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;

	/* An entry that already carries this cleanup's trash name is not this
	 * cleanup's: the move is refused, the record stays, the entry too. */
	int fd = mkdir_open(s->dep_fd, TRASH(TEMP_NAME));
	write_at(fd, "old", "not ours");
	close(fd);
	make_record(s->dep_fd, TEMP_NAME);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);
	int old = openat(s->dep_fd, TRASH(TEMP_NAME), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct fingerprint before = fingerprint(old);

	assert_int_equal(reap_one_target(s, &t, &r), -EEXIST);
	assert_detail_has(&r, "is taken by an entry that is not this cleanup's");
	assert_true(exists_at(s->dep_fd, TEMP_NAME "/status.xml"));
	assert_same_fingerprint(before, fingerprint(old));
	close(old);
}

/* ---- Changed since judged ---------------------------------------------- */

struct change_case {
	const char *what;
	bool folder;                 /* the target is deployments/TEMP_NAME, else locks/status.lock */
	void (*change)(const struct site_tree *s);
	int err;
	const char *detail;
};

static void set_mtime_at(int dir_fd, const char *name, time_t sec)
{
	struct timespec ts[2] = { { sec, 0 }, { sec, 0 } };
	assert_int_equal(utimensat(dir_fd, name, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void change_file_mtime(const struct site_tree *s)
{
	set_mtime_at(s->locks_fd, "status.lock", 1000000000);
}

static void change_file_size(const struct site_tree *s)
{
	append_at(s->locks_fd, "status.lock", "more");
}

static void change_file_replaced(const struct site_tree *s)
{
	write_at(s->locks_fd, "status.lock.new", "{ \"OperationName\": \"x\" }");
	assert_int_equal(renameat(s->locks_fd, "status.lock.new", s->locks_fd, "status.lock"), 0);
}

static void change_file_to_symlink(const struct site_tree *s)
{
	char target[192];
	snprintf(target, sizeof(target), "%s/file.txt", s->outside);
	assert_int_equal(unlinkat(s->locks_fd, "status.lock", 0), 0);
	assert_int_equal(symlinkat(target, s->locks_fd, "status.lock"), 0);
}

static void change_file_to_folder(const struct site_tree *s)
{
	assert_int_equal(unlinkat(s->locks_fd, "status.lock", 0), 0);
	close(mkdir_open(s->locks_fd, "status.lock"));
}

static void change_folder_mtime(const struct site_tree *s)
{
	write_at(s->dep_fd, TEMP_NAME "/new-file", "x");
	set_mtime_at(s->dep_fd, TEMP_NAME, 1000000000);
}

static void change_inner_status_appended(const struct site_tree *s)
{
	/* Appending to a file leaves its folder's mtime alone: only the inner
	 * check can see this one. */
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	append_at(fd, "status.xml", "<!-- more -->");
	close(fd);
}

static void change_inner_manifest_appeared(const struct site_tree *s)
{
	/* manifest was absent when judged; it appears, and the folder's mtime
	 * is put back so that only the inner check can see it. */
	struct stat st;
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(fstat(fd, &st), 0);
	write_at(fd, "manifest", "");
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static void change_folder_replaced(const struct site_tree *s)
{
	assert_int_equal(renameat(s->dep_fd, TEMP_NAME, s->dep_fd, "moved-away"), 0);
	make_record(s->dep_fd, TEMP_NAME);
}

static void change_folder_to_symlink(const struct site_tree *s)
{
	char target[192];
	snprintf(target, sizeof(target), "%s/victim", s->outside);
	assert_int_equal(renameat(s->dep_fd, TEMP_NAME, s->dep_fd, "moved-away"), 0);
	assert_int_equal(symlinkat(target, s->dep_fd, TEMP_NAME), 0);
}

static void change_folder_gone(const struct site_tree *s)
{
	assert_int_equal(renameat(s->dep_fd, TEMP_NAME, s->dep_fd, "moved-away"), 0);
}

static const struct change_case change_cases[] = {
	{ "file mtime", false, change_file_mtime, -ESTALE, "was modified since judged" },
	{ "file size", false, change_file_size, -ESTALE, "was modified since judged" },
	{ "file replaced", false, change_file_replaced, -ESTALE, "was replaced since judged" },
	{ "file now a symlink", false, change_file_to_symlink, -ESTALE, "changed type" },
	{ "file now a folder", false, change_file_to_folder, -ESTALE, "changed type" },
	{ "folder mtime", true, change_folder_mtime, -ESTALE, "was modified since judged" },
	{ "status.xml appended", true, change_inner_status_appended, -ESTALE,
	  "status.xml was modified since judged" },
	{ "manifest appeared", true, change_inner_manifest_appeared, -ESTALE,
	  "had its inode changed since judged" },
	{ "folder replaced", true, change_folder_replaced, -ESTALE, "was replaced since judged" },
	{ "folder now a symlink", true, change_folder_to_symlink, -ESTALE, "changed type" },
	{ "folder gone", true, change_folder_gone, -ENOENT, "already gone" },
};

/* Each case runs as its own test on a fresh tree: *state starts as the
 * case (cmocka's initial state) and setup wraps it with the tree. */
struct change_fixture {
	struct site_tree *tree;
	const struct change_case *c;
};

static int change_setup(void **state)
{
	struct change_fixture *f = calloc(1, sizeof(*f));
	void *tree = NULL;

	if (!f)
		return -1;
	f->c = *state;
	if (site_tree_setup(&tree) < 0) {
		free(f);
		return -1;
	}
	f->tree = tree;
	*state = f;
	return 0;
}

static int change_teardown(void **state)
{
	struct change_fixture *f = *state;
	void *tree = f->tree;
	int rc = site_tree_teardown(&tree);

	free(f);
	return rc;
}

static void test_changed_since_judged(void **state)
{
	struct change_fixture *f = *state;
	const struct change_case *c = f->c;
	struct site_tree *s = f->tree;
	struct reap_target t;
	struct reap_result r;

	if (c->folder) {
		make_record(s->dep_fd, TEMP_NAME);
		if (c->change == change_inner_manifest_appeared)
			assert_int_equal(unlinkat(s->dep_fd, TEMP_NAME "/manifest", 0), 0);
		target_judge_record(&t, s->dep_fd, TEMP_NAME);
	} else {
		write_at(s->locks_fd, "status.lock", "{ \"OperationName\": \"x\" }");
		target_judge(&t, s->locks_fd, "locks", "status.lock", NULL, 0);
	}
	c->change(s);
	int base_fd = open(s->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct fingerprint before = fingerprint(base_fd);

	assert_int_equal(reap_one_target(s, &t, &r), c->err);
	assert_int_equal(r.err, c->err);
	assert_int_equal(r.files_removed, 0);
	assert_detail_has(&r, c->detail);
	/* Nothing at all was touched, not even renamed and put back. */
	assert_same_fingerprint(before, fingerprint(base_fd));
	close(base_fd);
}

/* ---- Links, special files, names --------------------------------------- */

static void test_symlinks_inside_removed_as_links(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	char victim[192], file[192];

	snprintf(victim, sizeof(victim), "%s/victim", s->outside);
	snprintf(file, sizeof(file), "%s/file.txt", s->outside);
	make_record(s->dep_fd, TEMP_NAME);
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(symlinkat(victim, fd, "to-outside-folder"), 0);
	assert_int_equal(symlinkat(file, fd, "to-outside-file"), 0);
	assert_int_equal(symlinkat("../../../outside/victim", fd, "relative"), 0);
	assert_int_equal(symlinkat("/", fd, "to-root"), 0);
	assert_int_equal(symlinkat("dangling-nowhere", fd, "dangling"), 0);
	int art = openat(fd, "artifact", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(symlinkat(victim, art, "nested-link"), 0);
	close(art), close(fd);
	struct fingerprint outside = fingerprint(s->outside_fd);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);

	assert_int_equal(reap_one_target(s, &t, &r), 0);
	assert_int_equal(r.files_removed, 4 + 6);
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	assert_same_fingerprint(outside, fingerprint(s->outside_fd));
}

static void test_hard_link_inside(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	struct stat st;

	struct fingerprint outside = fingerprint(s->outside_fd);
	make_record(s->dep_fd, TEMP_NAME);
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(linkat(s->outside_fd, "file.txt", fd, "hard", 0), 0);
	close(fd);
	assert_int_equal(fstatat(s->outside_fd, "file.txt", &st, 0), 0);
	assert_int_equal(st.st_nlink, 2);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);

	assert_int_equal(reap_one_target(s, &t, &r), 0);
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	/* The fingerprint holds the link count (1 again) and the content. */
	assert_same_fingerprint(outside, fingerprint(s->outside_fd));
}

static void test_special_files_inside(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	unsigned long expected = 4 + 2;

	make_record(s->dep_fd, TEMP_NAME);
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* A FIFO nobody writes: opening it would block for ever. */
	assert_int_equal(mkfifoat(fd, "fifo", 0644), 0);
	/* A listening unix socket. */
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/deployments/%s/sock", s->root, TEMP_NAME);
	assert_true(sock >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	/* A device node, where allowed (root without CAP_MKNOD cannot). */
	if (mknodat(fd, "null-device", S_IFCHR | 0600, makedev(1, 3)) == 0)
		expected++;
	else
		print_message("mknod not permitted (%s): no device node in this run\n", strerror(errno));
	close(fd);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);

	/* If anything opened the FIFO the test would hang: SIGALRM's default
	 * action ends the run instead. */
	alarm(60);
	assert_int_equal(reap_one_target(s, &t, &r), 0);
	alarm(0);
	assert_int_equal(r.files_removed, expected);
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	close(sock);
}

/* Bytes a name can hold: newlines, quotes, shell syntax, escape sequences,
 * invalid UTF-8. They are only ever passed to *at() calls as they are. */
static const char hostile_name[] = "rec\n\"'$(touch pwned)`id`;\xff\xfe\x1b[31m";
static const char *const hostile_inner[] = {
	"a\nb", "$(rm -rf ~)", "\"quoted\" 'single'", "\xc3\x28 invalid", "-rf", " ", "\\x41",
};

static void test_hostile_names(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;

	int fd = mkdir_open(s->dep_fd, hostile_name);
	for (size_t i = 0; i < sizeof(hostile_inner) / sizeof(hostile_inner[0]); i++)
		write_at(fd, hostile_inner[i], hostile_inner[i]);
	int sub = mkdir_open(fd, "dir\nwith\nnewlines");
	write_at(sub, "\xff", "x");
	close(sub), close(fd);
	target_judge(&t, s->dep_fd, "deployments", hostile_name, NULL, 0);

	assert_int_equal(reap_one_target(s, &t, &r), 0);
	assert_int_equal(r.files_removed, 8);
	assert_detail_clean(&r);
	assert_int_equal(fingerprint(s->dep_fd).entries, 0);
}

/* An entry that cannot be removed (immutable, where the filesystem and our
 * capabilities allow setting that) is reported with its name escaped; the
 * rest goes, and the trash folder stays. */
static void test_unremovable_entry_reported(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	int flags;

	make_record(s->dep_fd, TEMP_NAME);
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	write_at(fd, "stuck\nname", "x");
	int ffd = openat(fd, "stuck\nname", O_RDONLY | O_CLOEXEC);
	assert_true(ffd >= 0);
	s->immutable_used = true;
	int rc = ioctl(ffd, FS_IOC_GETFLAGS, &flags);
	if (rc == 0) {
		flags |= FS_IMMUTABLE_FL;
		rc = ioctl(ffd, FS_IOC_SETFLAGS, &flags);
	}
	if (rc < 0) {
		print_message("cannot set the immutable flag here (%s)\n", strerror(errno));
		close(ffd), close(fd);
		skip();
	}
	close(ffd), close(fd);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);

	assert_int_equal(reap_one_target(s, &t, &r), -ENOTEMPTY);
	assert_detail_has(&r, "1 could not be removed (first \"stuck\\x0aname\": Operation not permitted)");
	assert_detail_has(&r, "left as " TRASH(TEMP_NAME));
	assert_int_equal(r.files_removed, 4);
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	assert_true(exists_at(s->dep_fd, TRASH(TEMP_NAME) "/stuck\nname"));
	assert_false(exists_at(s->dep_fd, TRASH(TEMP_NAME) "/status.xml"));
}

/* ---- Depth ----------------------------------------------------------------- */

static void make_deep(int dep_fd, const char *name, unsigned levels)
{
	int fd = mkdir_open(dep_fd, name);
	for (unsigned i = 0; i < levels; i++) {
		int next = mkdir_open(fd, "d");
		if (i % 1000 == 0)
			write_at(fd, "f", "x");
		close(fd);
		fd = next;
	}
	write_at(fd, "bottom", "x");
	close(fd);
}

static void test_deep_nesting(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;

	make_deep(s->dep_fd, TEMP_NAME, 10000);
	target_judge(&t, s->dep_fd, "deployments", TEMP_NAME, NULL, 0);
	assert_int_equal(reap_one_target(s, &t, &r), 0);
	assert_int_equal(r.files_removed, 10 + 1);
	assert_int_equal(fingerprint(s->dep_fd).entries, 0);
}

/* The same with almost no descriptors to spare: the walk has to close
 * folders on the way down and reach them again through ".." on the way up. */
static void test_deep_nesting_few_descriptors(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	struct rlimit rl;
	int highest = 0;

	make_deep(s->dep_fd, TEMP_NAME, 3000);
	target_judge(&t, s->dep_fd, "deployments", TEMP_NAME, NULL, 0);

	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (atoi(de->d_name) > highest)
			highest = atoi(de->d_name);
	closedir(d);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	s->saved_nofile = rl.rlim_cur;
	/* root, area, target, its listing, two folders: the least that works. */
	rl.rlim_cur = (rlim_t)highest + 1 + 6;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);

	int rc = reap_one_target(s, &t, &r);
	rl.rlim_cur = s->saved_nofile;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rc != 0)
		fail_msg("reap: %d %s", rc, r.detail);
	assert_int_equal(r.files_removed, 3 + 1);
	assert_int_equal(fingerprint(s->dep_fd).entries, 0);
}

static void test_many_files(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	struct timespec t0, t1;
	char name[32];
	const unsigned n_files = 100000;

	int fd = mkdir_open(s->dep_fd, TEMP_NAME);
	for (unsigned i = 0; i < n_files; i++) {
		snprintf(name, sizeof(name), "f%06u", i);
		int ffd = openat(fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		assert_true(ffd >= 0);
		close(ffd);
	}
	close(fd);
	target_judge(&t, s->dep_fd, "deployments", TEMP_NAME, NULL, 0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(reap_one_target(s, &t, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r.files_removed, n_files);
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	print_message("removed %u files in %ld ms\n", n_files,
		      (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
}

/* ---- Refusals -------------------------------------------------------------- */

static void test_cancel_before_start(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t[2];
	struct reap_result r[2];
	atomic_bool cancel = true;

	/* Decided: a cancel seen before a target is started leaves it exactly
	 * as it is (no rename to trash either). */
	write_at(s->locks_fd, "status.lock", "{}");
	make_record(s->dep_fd, TEMP_NAME);
	target_judge(&t[0], s->locks_fd, "locks", "status.lock", NULL, 0);
	target_judge_record(&t[1], s->dep_fd, TEMP_NAME);
	int base_fd = open(s->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct fingerprint before = fingerprint(base_fd);

	assert_int_equal(reap_run(s->root, s->root_dev, s->root_ino, TOKEN, t, 2, &cancel, r), -ECANCELED);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].err, -ECANCELED);
		assert_detail_has(&r[i], "cancelled");
	}
	assert_same_fingerprint(before, fingerprint(base_fd));
	close(base_fd);
}

/* Sets the cancel flag as soon as the trash folder appears, i.e. while the
 * removal is under way. */
struct cancel_watch {
	int dep_fd;
	atomic_bool *cancel;
	atomic_bool reap_done;
	bool saw_trash;
};

static void *cancel_watch_main(void *arg)
{
	struct cancel_watch *cw = arg;
	struct timespec now, deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 30;
	while (!atomic_load(&cw->reap_done)) {
		if (exists_at(cw->dep_fd, TRASH(TEMP_NAME))) {
			atomic_store(cw->cancel, true);
			cw->saw_trash = true;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec)
			break;
	}
	return NULL;
}

static void test_cancel_during_removal(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	atomic_bool cancel = false;
	struct cancel_watch cw = { .dep_fd = s->dep_fd, .cancel = &cancel };
	pthread_t thread;
	char name[32];
	const unsigned n_files = 20000;

	int fd = mkdir_open(s->dep_fd, TEMP_NAME);
	for (unsigned i = 0; i < n_files; i++) {
		snprintf(name, sizeof(name), "f%06u", i);
		write_at(fd, name, "");
	}
	close(fd);
	target_judge(&t, s->dep_fd, "deployments", TEMP_NAME, NULL, 0);

	assert_int_equal(pthread_create(&thread, NULL, cancel_watch_main, &cw), 0);
	int rc = reap_run(s->root, s->root_dev, s->root_ino, TOKEN, &t, 1, &cancel, &r);
	atomic_store(&cw.reap_done, true);
	assert_int_equal(pthread_join(thread, NULL), 0);
	if (rc == 0) {
		/* The removal ended before the watcher could cancel it: this
		 * run proves nothing either way. */
		print_message("removal finished before the cancel (saw trash: %d)\n", cw.saw_trash);
		skip();
	}
	assert_int_equal(rc, -ECANCELED);
	assert_detail_has(&r, "cancelled; the rest is left in " TRASH(TEMP_NAME));
	assert_true(r.files_removed < n_files);
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	assert_true(exists_at(s->dep_fd, TRASH(TEMP_NAME)));
	unsigned long first = r.files_removed;

	/* The next cleanup finishes the trash folder. */
	atomic_store(&cancel, false);
	target_judge(&t, s->dep_fd, "deployments", TRASH(TEMP_NAME), NULL, 0);
	assert_int_equal(reap_one_target(s, &t, &r), 0);
	assert_int_equal(first + r.files_removed, n_files);
	assert_int_equal(fingerprint(s->dep_fd).entries, 0);
}

static void test_root_replaced(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t[2];
	struct reap_result r[2];
	atomic_bool cancel = false;
	char old_root[160];

	write_at(s->locks_fd, "status.lock", "{}");
	make_record(s->dep_fd, TEMP_NAME);
	target_judge(&t[0], s->locks_fd, "locks", "status.lock", NULL, 0);
	target_judge_record(&t[1], s->dep_fd, TEMP_NAME);
	/* The site root is moved aside and another one takes its path. */
	snprintf(old_root, sizeof(old_root), "%s/site-old", s->base);
	assert_int_equal(rename(s->root, old_root), 0);
	assert_int_equal(mkdir(s->root, 0755), 0);
	int base_fd = open(s->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct fingerprint before = fingerprint(base_fd);

	assert_int_equal(reap_run(s->root, s->root_dev, s->root_ino, TOKEN, t, 2, &cancel, r), -ESTALE);
	for (int i = 0; i < 2; i++)
		assert_detail_has(&r[i], "site root is no longer");
	assert_same_fingerprint(before, fingerprint(base_fd));

	/* A root that is a symlink (even to the judged folder) is not opened. */
	assert_int_equal(rmdir(s->root), 0);
	assert_int_equal(symlink("site-old", s->root), 0);
	before = fingerprint(base_fd);
	/* O_NOFOLLOW with O_DIRECTORY: Linux answers ENOTDIR (or ELOOP). */
	int rc = reap_run(s->root, s->root_dev, s->root_ino, TOKEN, t, 2, &cancel, r);
	assert_true(rc == -ENOTDIR || rc == -ELOOP);
	assert_int_equal(r[1].err, rc);
	assert_same_fingerprint(before, fingerprint(base_fd));
	close(base_fd);
}

struct refusal_case {
	const char *what;
	const char *area;
	const char *name;
	const char *judge_as;   /* the deployments/ entry whose lstat is "judged" */
	int err;
};

static void test_refusals(void **state)
{
	struct site_tree *s = *state;
	/* Each is judged as a real entry would be, so that the refusal comes
	 * from the name, area or type, never from a mismatch. */
	static const struct refusal_case cases[] = {
		{ "a symlink target", "deployments", "link", "link", -EPERM },
		{ "a FIFO target", "deployments", "fifo", "fifo", -EPERM },
		{ "parent name", "deployments", "..", TEMP_NAME, -EINVAL },
		{ "dot", "deployments", ".", TEMP_NAME, -EINVAL },
		{ "empty name", "deployments", "", TEMP_NAME, -EINVAL },
		{ "a path", "deployments", "../../outside/victim", TEMP_NAME, -EINVAL },
		{ "an area that is a path", "../deployments", TEMP_NAME, TEMP_NAME, -EINVAL },
		{ "the root as area", ".", TEMP_NAME, TEMP_NAME, -EINVAL },
		{ "no area", NULL, TEMP_NAME, TEMP_NAME, -EINVAL },
		{ "absent when judged", "deployments", "absent", "absent", -EINVAL },
	};
	char victim[192];

	snprintf(victim, sizeof(victim), "%s/victim", s->outside);
	assert_int_equal(symlinkat(victim, s->dep_fd, "link"), 0);
	assert_int_equal(mkfifoat(s->dep_fd, "fifo", 0644), 0);
	make_record(s->dep_fd, TEMP_NAME);
	int base_fd = open(s->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct fingerprint before = fingerprint(base_fd);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reap_target t;
		struct reap_result r;

		print_message("case: %s\n", cases[i].what);
		memset(&t, 0, sizeof(t));
		t.area = cases[i].area;
		snprintf(t.name, sizeof(t.name), "%s", cases[i].name);
		judge_at(s->dep_fd, cases[i].judge_as, &t.judged);
		assert_int_equal(reap_one_target(s, &t, &r), cases[i].err);
		assert_int_equal(r.err, cases[i].err);
		assert_detail_clean(&r);
	}
	/* An inner name that is a path is refused too. */
	struct reap_target t;
	struct reap_result r;
	target_judge_record(&t, s->dep_fd, TEMP_NAME);
	snprintf(t.inner_name[0], sizeof(t.inner_name[0]), "../x");
	assert_int_equal(reap_one_target(s, &t, &r), -EINVAL);
	assert_same_fingerprint(before, fingerprint(base_fd));
	close(base_fd);
}

static void test_targets_independent(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t[3];
	struct reap_result r[3];
	atomic_bool cancel = false;

	write_at(s->dep_fd, "pending", "");
	make_record(s->dep_fd, TEMP_NAME);
	write_at(s->locks_fd, "status.lock", "{}");
	target_judge(&t[0], s->dep_fd, "deployments", "pending", NULL, 0);
	target_judge_record(&t[1], s->dep_fd, TEMP_NAME);
	target_judge(&t[2], s->locks_fd, "locks", "status.lock", NULL, 0);
	/* pending is gone, the record is still being written, status.lock is
	 * as judged. */
	assert_int_equal(unlinkat(s->dep_fd, "pending", 0), 0);
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	append_at(fd, "log.log", "still running\n");
	close(fd);

	assert_int_equal(reap_run(s->root, s->root_dev, s->root_ino, TOKEN, t, 3, &cancel, r), -ENOENT);
	assert_int_equal(r[0].err, -ENOENT);
	assert_int_equal(r[1].err, -ESTALE);
	assert_detail_has(&r[1], "log.log was modified since judged");
	assert_int_equal(r[2].err, 0);
	assert_true(exists_at(s->dep_fd, TEMP_NAME "/log.log"));
	assert_false(exists_at(s->locks_fd, "status.lock"));
}

/* ---- Mounts (need root and mount permission) ------------------------------ */

static void mount_or_skip(const char *source, const char *path, const char *fstype,
			  unsigned long flags)
{
	if (mount(source, path, fstype, flags, fstype ? "size=1m" : NULL) < 0) {
		print_message("cannot mount here (%s): test skipped\n", strerror(errno));
		skip();
	}
}

static void test_tmpfs_mount_inside(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	char path[256];

	make_record(s->dep_fd, TEMP_NAME);
	int fd = openat(s->dep_fd, TEMP_NAME "/artifact", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(mkdir_open(fd, "mnt"));
	close(fd);
	snprintf(path, sizeof(path), "%s/deployments/%s/artifact/mnt", s->root, TEMP_NAME);
	mount_or_skip("tmpfs", path, "tmpfs", 0);
	int mnt_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(mnt_fd >= 0);
	write_at(mnt_fd, "on-tmpfs", "must survive");
	struct fingerprint on_mount = fingerprint(mnt_fd);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);

	int rc = reap_one_target(s, &t, &r);
	assert_true(rc == -ENOTEMPTY || rc == -EBUSY);
	assert_detail_has(&r, "1 mount point inside: left");
	assert_same_fingerprint(on_mount, fingerprint(mnt_fd));
	assert_int_equal(r.files_removed, 4);
	/* Kudu's name is gone; what is left is plainly ours. */
	assert_false(exists_at(s->dep_fd, TEMP_NAME));
	assert_true(exists_at(s->dep_fd, TRASH(TEMP_NAME) "/artifact/mnt"));
	close(mnt_fd);
}

/* A bind mount of a folder of the same disk has the same st_dev: only the
 * mount id tells it apart. Nothing in it may go. */
static void test_bind_mount_inside(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	char path[256], file_path[256], victim[192], file[192];
	struct stat st;

	snprintf(victim, sizeof(victim), "%s/victim", s->outside);
	snprintf(file, sizeof(file), "%s/file.txt", s->outside);
	make_record(s->dep_fd, TEMP_NAME);
	int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(mkdir_open(fd, "bound"));
	write_at(fd, "bound-file", "");
	close(fd);
	snprintf(path, sizeof(path), "%s/deployments/%s/bound", s->root, TEMP_NAME);
	snprintf(file_path, sizeof(file_path), "%s/deployments/%s/bound-file", s->root, TEMP_NAME);
	struct fingerprint outside = fingerprint(s->outside_fd);
	mount_or_skip(victim, path, NULL, MS_BIND);
	mount_or_skip(file, file_path, NULL, MS_BIND);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_dev, s->root_dev);
	target_judge_record(&t, s->dep_fd, TEMP_NAME);

	int rc = reap_one_target(s, &t, &r);
	assert_true(rc == -ENOTEMPTY || rc == -EBUSY);
	assert_detail_has(&r, "2 mount points inside: left");
	unmount_under(s->base);
	assert_same_fingerprint(outside, fingerprint(s->outside_fd));
}

/* locks/ itself bind-mounted from elsewhere on the same disk: refused. */
static void test_area_is_a_mount(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	char path[256], other[192];

	snprintf(other, sizeof(other), "%s/other-locks", s->base);
	assert_int_equal(mkdir(other, 0755), 0);
	snprintf(path, sizeof(path), "%s/locks", s->root);
	mount_or_skip(other, path, NULL, MS_BIND);
	int locks = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(locks >= 0);
	write_at(locks, "status.lock", "{}");
	target_judge(&t, locks, "locks", "status.lock", NULL, 0);
	assert_int_equal(t.judged.dev, s->root_dev);

	assert_int_equal(reap_one_target(s, &t, &r), -EXDEV);
	assert_detail_has(&r, "not on the site root's mount");
	assert_true(exists_at(locks, "status.lock"));
	close(locks);
}

/* A FUSE mount (bindfs, as the end-to-end tests use to mimic the share)
 * refuses RENAME_NOREPLACE with EINVAL: the trash rename must still work,
 * and must still not take a name that is in use. */
static void test_on_fuse_without_noreplace(void **state)
{
	struct site_tree *s = *state;
	struct reap_target t;
	struct reap_result r;
	atomic_bool cancel = false;
	char src[160], mnt[160], root[192];
	struct stat base_st, st;

	snprintf(src, sizeof(src), "%s/fuse-src", s->base);
	snprintf(mnt, sizeof(mnt), "%s/fuse-mnt", s->base);
	snprintf(root, sizeof(root), "%s/site", mnt);
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(mnt, 0755), 0);
	char *argv[] = { "bindfs", src, mnt, NULL };
	if (run_command(argv) != 0) {
		print_message("bindfs is not usable here: test skipped\n");
		skip();
	}
	assert_int_equal(stat(s->base, &base_st), 0);
	assert_int_equal(stat(mnt, &st), 0);
	assert_true(st.st_dev != base_st.st_dev);

	assert_int_equal(mkdir(root, 0755), 0);
	int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root_fd >= 0);
	int dep_fd = mkdir_open(root_fd, "deployments");
	write_at(dep_fd, "probe", "");
	if (renameat2(dep_fd, "probe", dep_fd, "probe2", RENAME_NOREPLACE) == 0 || errno != EINVAL)
		print_message("this bindfs supports RENAME_NOREPLACE: the fallback is not exercised\n");
	unlinkat(dep_fd, "probe", 0);
	unlinkat(dep_fd, "probe2", 0);
	make_record(dep_fd, TEMP_NAME);
	/* Another cleanup's trash (another token): never touched. */
	int fd = mkdir_open(dep_fd, REAP_TRASH_PREFIX "1111111111111111-" TEMP_NAME);
	write_at(fd, "old", "older leftover");
	close(fd);
	target_judge_record(&t, dep_fd, TEMP_NAME);
	assert_int_equal(fstat(root_fd, &st), 0);

	assert_int_equal(reap_run(root, st.st_dev, st.st_ino, TOKEN, &t, 1, &cancel, &r), 0);
	assert_int_equal(r.files_removed, 4);
	assert_false(exists_at(dep_fd, TEMP_NAME));
	assert_false(exists_at(dep_fd, TRASH(TEMP_NAME)));
	assert_true(exists_at(dep_fd, REAP_TRASH_PREFIX "1111111111111111-" TEMP_NAME "/old"));
	close(dep_fd);
	close(root_fd);
}

/* ---- A racing writer --------------------------------------------------------- */

/* Swaps deployments/TEMP_NAME with deployments/swap (a symlink to the
 * outside folder) as fast as it can, with pauses the main thread asks for. */
struct racer {
	int dep_fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_wanted, paused, stop;
	unsigned long swaps;
};

static void *racer_main(void *arg)
{
	struct racer *rc = arg;

	pthread_mutex_lock(&rc->lock);
	for (;;) {
		while (rc->pause_wanted && !rc->stop) {
			rc->paused = true;
			pthread_cond_broadcast(&rc->cond);
			pthread_cond_wait(&rc->cond, &rc->lock);
		}
		rc->paused = false;
		if (rc->stop)
			break;
		pthread_mutex_unlock(&rc->lock);
		if (renameat2(rc->dep_fd, TEMP_NAME, rc->dep_fd, "swap", RENAME_EXCHANGE) == 0)
			rc->swaps++;   /* only this thread writes it while running */
		pthread_mutex_lock(&rc->lock);
	}
	pthread_mutex_unlock(&rc->lock);
	return NULL;
}

static void racer_pause(struct racer *rc)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&rc->lock);
	rc->pause_wanted = true;
	while (!rc->paused)
		assert_int_equal(pthread_cond_timedwait(&rc->cond, &rc->lock, &deadline), 0);
	pthread_mutex_unlock(&rc->lock);
}

static void racer_resume(struct racer *rc)
{
	pthread_mutex_lock(&rc->lock);
	rc->pause_wanted = false;
	pthread_cond_broadcast(&rc->cond);
	pthread_mutex_unlock(&rc->lock);
}

/* Puts the record under TEMP_NAME and the symlink under "swap", making a
 * new record if the last round removed it. */
static void race_reset(const struct site_tree *s, const char *victim)
{
	struct stat a, b;
	bool a_ok = fstatat(s->dep_fd, TEMP_NAME, &a, AT_SYMLINK_NOFOLLOW) == 0;
	bool b_ok = fstatat(s->dep_fd, "swap", &b, AT_SYMLINK_NOFOLLOW) == 0;

	if (a_ok && S_ISLNK(a.st_mode)) {
		assert_int_equal(unlinkat(s->dep_fd, TEMP_NAME, 0), 0);
		a_ok = false;
	}
	if (b_ok && S_ISLNK(b.st_mode)) {
		assert_int_equal(unlinkat(s->dep_fd, "swap", 0), 0);
		b_ok = false;
	}
	if (b_ok) {
		assert_false(a_ok);
		assert_int_equal(renameat(s->dep_fd, "swap", s->dep_fd, TEMP_NAME), 0);
		a_ok = true;
	}
	if (!a_ok) {
		make_record(s->dep_fd, TEMP_NAME);
		int fd = openat(s->dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_int_equal(symlinkat(victim, fd, "link-out"), 0);
		close(fd);
	}
	assert_int_equal(symlinkat(victim, s->dep_fd, "swap"), 0);
	/* No trash may be left by a round: a renamed record is finished, and
	 * anything swapped in is put back. */
	assert_false(exists_at(s->dep_fd, TRASH(TEMP_NAME)));
	assert_false(exists_at(s->dep_fd, TRASH("swap")));
}

static void test_race_swap_with_symlink(void **state)
{
	struct site_tree *s = *state;
	struct racer rc = { .dep_fd = s->dep_fd, .lock = PTHREAD_MUTEX_INITIALIZER,
			    .cond = PTHREAD_COND_INITIALIZER };
	unsigned long outcomes[4] = { 0 };   /* removed, stale, refused, gone */
	char victim[192];
	pthread_t thread;
	const unsigned rounds = 3000;

	snprintf(victim, sizeof(victim), "%s/victim", s->outside);
	struct fingerprint outside = fingerprint(s->outside_fd);
	rc.pause_wanted = true;
	assert_int_equal(pthread_create(&thread, NULL, racer_main, &rc), 0);
	racer_pause(&rc);

	for (unsigned round = 0; round < rounds; round++) {
		struct reap_target t;
		struct reap_result r;

		race_reset(s, victim);
		racer_resume(&rc);
		target_judge_record(&t, s->dep_fd, TEMP_NAME);
		int err = reap_one_target(s, &t, &r);
		racer_pause(&rc);

		assert_detail_clean(&r);
		if (err == 0)
			outcomes[0]++;
		else if (err == -ESTALE)
			outcomes[1]++;
		else if (err == -EPERM)
			outcomes[2]++;
		else if (err == -ENOENT)
			outcomes[3]++;
		else
			fail_msg("round %u: unexpected %d (%s)", round, err, r.detail);
		if (round % 500 == 0)
			assert_same_fingerprint(outside, fingerprint(s->outside_fd));
	}
	pthread_mutex_lock(&rc.lock);
	rc.stop = true;
	pthread_cond_broadcast(&rc.cond);
	pthread_mutex_unlock(&rc.lock);
	assert_int_equal(pthread_join(thread, NULL), 0);

	print_message("%u rounds, %lu swaps: %lu removed, %lu changed, %lu refused, %lu gone\n",
		      rounds, rc.swaps, outcomes[0], outcomes[1], outcomes[2], outcomes[3]);
	assert_same_fingerprint(outside, fingerprint(s->outside_fd));
}

/* ---- The transaction: move aside, roll back, commit ---------------------------
 *
 * The test binary defines statx, renameat2 and linkat itself: reap.c and
 * rmtree.c, linked into it, call these, which record what was asked and then
 * make the real system call. So a test sees the order of the put-backs and
 * the flags of every attribute read, without any timing. */

#define CALLS_MAX 256
static struct {
	bool on;
	size_t n;
	char name[CALLS_MAX][NAME_MAX + 1];
	unsigned flags[CALLS_MAX];
	char what[CALLS_MAX];           /* 's' statx, 'r' rename, 'l' link */
} calls;

static void record(char what, const char *name, unsigned flags)
{
	if (!calls.on || calls.n >= CALLS_MAX)
		return;
	calls.what[calls.n] = what;
	calls.flags[calls.n] = flags;
	snprintf(calls.name[calls.n], sizeof(calls.name[0]), "%s", name);
	calls.n++;
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf)
{
	record('s', path, (unsigned)flags);
	long r = syscall(SYS_statx, dirfd, path, flags, mask, buf);
	return r < 0 ? -1 : (int)r;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
	      unsigned int flags)
{
	record('r', newpath, flags);
	long r = syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
	return r < 0 ? -1 : (int)r;
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	record('l', newpath, (unsigned)flags);
	long r = syscall(SYS_linkat, olddirfd, oldpath, newdirfd, newpath, flags);
	return r < 0 ? -1 : (int)r;
}

/* The three targets of a stuck deployment, in the policy's order (the lock
 * folder last), judged under the site root open at root_fd. */
struct txn_site {
	int root_fd, locks_fd, dep_fd;
	struct reap_target t[3];
	struct reap_result r[3];
};

static void txn_site_make(struct txn_site *x, int root_fd)
{
	static const char *const lock_inner[] = { "info.lock" };

	x->root_fd = root_fd;
	x->locks_fd = mkdir_open(root_fd, "locks");
	x->dep_fd = mkdir_open(root_fd, "deployments");
	write_at(x->dep_fd, "pending", "");
	make_record(x->dep_fd, TEMP_NAME);
	int fd = mkdir_open(x->locks_fd, "deployment");
	write_at(fd, "info.lock", "{\"lockExpiry\":null}");
	close(fd);
	target_judge(&x->t[0], x->dep_fd, "deployments", "pending", NULL, 0);
	target_judge_record(&x->t[1], x->dep_fd, TEMP_NAME);
	target_judge(&x->t[2], x->locks_fd, "locks", "deployment", lock_inner, 1);
}

static void txn_site_close(struct txn_site *x)
{
	close(x->locks_fd);
	close(x->dep_fd);
}

static void txn_begin(struct txn_site *x, const char *root, struct reap_txn *txn,
		      atomic_bool *cancel)
{
	struct stat st;
	assert_int_equal(fstat(x->root_fd, &st), 0);
	assert_int_equal(reap_begin(txn, root, st.st_dev, st.st_ino, TOKEN, x->t, 3, cancel, x->r), 0);
}

/* Moved aside, then rolled back with every name free: all three are back
 * under their own names, as they were, the last moved first, and no trash
 * is left. Then the same again, while Kudu made pending (a file) and the
 * temp record (a non-empty folder) again: Kudu's stay, ours are kept
 * beside them; the lock folder, whose name stayed free, is back. */
static void txn_rollback_scenario(const char *root, int root_fd)
{
	struct txn_site x;
	struct reap_txn txn;
	atomic_bool cancel = false;

	txn_site_make(&x, root_fd);
	struct fingerprint dep = fingerprint(x.dep_fd), locks = fingerprint(x.locks_fd);
	txn_begin(&x, root, &txn, &cancel);
	assert_int_equal(reap_move_all(&txn), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(x.r[i].state, REAP_MOVED);
	assert_false(exists_at(x.dep_fd, "pending"));
	assert_true(exists_at(x.dep_fd, TRASH("pending")));
	assert_true(exists_at(x.dep_fd, TRASH(TEMP_NAME) "/status.xml"));
	assert_true(exists_at(x.locks_fd, TRASH("deployment") "/info.lock"));

	calls.n = 0;
	calls.on = true;
	reap_rollback(&txn);
	calls.on = false;
	reap_end(&txn);
	/* The put-backs, in order: the lock folder first, pending last. */
	const char *order[3] = { "deployment", TEMP_NAME, "pending" };
	size_t k = 0;
	for (size_t i = 0; i < calls.n && k < 3; i++)
		if ((calls.what[i] == 'r' || calls.what[i] == 'l') &&
		    strcmp(calls.name[i], order[k]) == 0)
			k++;
	assert_int_equal(k, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(x.r[i].state, REAP_PUT_BACK);
	/* Everything as it was: names, inodes, contents (the folders' own
	 * mtimes moved with the renames, and are not in the fingerprint). */
	assert_same_fingerprint(dep, fingerprint(x.dep_fd));
	assert_same_fingerprint(locks, fingerprint(x.locks_fd));

	/* Again, with Kudu making two of the names while they are aside. */
	target_judge(&x.t[0], x.dep_fd, "deployments", "pending", NULL, 0);
	target_judge_record(&x.t[1], x.dep_fd, TEMP_NAME);
	target_judge(&x.t[2], x.locks_fd, "locks", "deployment", (const char *const[]){ "info.lock" }, 1);
	txn_begin(&x, root, &txn, &cancel);
	assert_int_equal(reap_move_all(&txn), 0);
	write_at(x.dep_fd, "pending", "kudu's new marker");
	int fd = mkdir_open(x.dep_fd, TEMP_NAME);
	write_at(fd, "status.xml", "<deployment><status>Building</status></deployment>");
	close(fd);
	reap_rollback(&txn);
	reap_end(&txn);
	assert_int_equal(x.r[0].state, REAP_KEPT_BESIDE);
	assert_int_equal(x.r[1].state, REAP_KEPT_BESIDE);
	assert_int_equal(x.r[2].state, REAP_PUT_BACK);
	assert_string_equal(x.r[0].kept, KUDU_KEPT_PREFIX TOKEN "-pending");
	assert_string_equal(x.r[1].kept, KUDU_KEPT_PREFIX TOKEN "-" TEMP_NAME);
	fd = openat(x.dep_fd, "pending", O_RDONLY | O_CLOEXEC);
	char buf[64] = "";
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	assert_string_equal(buf, "kudu's new marker");
	assert_true(exists_at(x.dep_fd, TEMP_NAME "/status.xml"));
	assert_false(exists_at(x.dep_fd, TEMP_NAME "/log.log"));
	assert_true(exists_at(x.dep_fd, KUDU_KEPT_PREFIX TOKEN "-" TEMP_NAME "/log.log"));
	assert_true(exists_at(x.dep_fd, KUDU_KEPT_PREFIX TOKEN "-pending"));
	assert_true(exists_at(x.locks_fd, "deployment/info.lock"));
	assert_false(exists_at(x.dep_fd, TRASH("pending")));
	assert_false(exists_at(x.dep_fd, TRASH(TEMP_NAME)));
	txn_site_close(&x);
}

/* On tmpfs, which has RENAME_NOREPLACE and links. */
static void test_txn_rollback(void **state)
{
	struct site_tree *s = *state;
	char root[192];
	snprintf(root, sizeof(root), "%s/txn", s->base);
	assert_int_equal(mkdir(root, 0755), 0);
	mount_or_skip("tmpfs", root, "tmpfs", 0);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	txn_rollback_scenario(root, fd);
	close(fd);
}

/* A bindfs mount answers EINVAL to RENAME_NOREPLACE, as cifs does: the
 * put-back goes by link (files) and by plain rename (folders), and still
 * never replaces what Kudu made. */
static void test_txn_rollback_on_fuse(void **state)
{
	struct site_tree *s = *state;
	char src[160], mnt[160], root[192];

	snprintf(src, sizeof(src), "%s/fuse-src", s->base);
	snprintf(mnt, sizeof(mnt), "%s/fuse-mnt", s->base);
	snprintf(root, sizeof(root), "%s/site", mnt);
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(mnt, 0755), 0);
	char *argv[] = { "bindfs", src, mnt, NULL };
	if (run_command(argv) != 0) {
		print_message("bindfs is not usable here: test skipped\n");
		skip();
	}
	assert_int_equal(mkdir(root, 0755), 0);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	write_at(fd, "probe", "");
	if (renameat2(fd, "probe", fd, "probe2", RENAME_NOREPLACE) == 0 || errno != EINVAL)
		print_message("this bindfs supports RENAME_NOREPLACE: the fallback is not exercised\n");
	unlinkat(fd, "probe", 0);
	unlinkat(fd, "probe2", 0);
	txn_rollback_scenario(root, fd);
	close(fd);
}

/* A commit deletes what was moved; with trash_only a folder is left as
 * trash for the sweep (named with the token), a file goes at once. */
static void test_txn_commit(void **state)
{
	struct site_tree *s = *state;
	struct txn_site x;
	struct reap_txn txn;
	atomic_bool cancel = false;
	char root[192];

	snprintf(root, sizeof(root), "%s/txn", s->base);
	assert_int_equal(mkdir(root, 0755), 0);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	txn_site_make(&x, fd);
	x.t[1].trash_only = true;
	txn_begin(&x, root, &txn, &cancel);
	assert_int_equal(reap_move_all(&txn), 0);
	assert_int_equal(reap_commit(&txn, NULL, NULL), 0);
	reap_end(&txn);
	for (int i = 0; i < 3; i++)
		assert_int_equal(x.r[i].state, REAP_REMOVED);
	assert_false(exists_at(x.dep_fd, "pending"));
	assert_false(exists_at(x.dep_fd, TRASH("pending")));
	assert_false(exists_at(x.dep_fd, TEMP_NAME));
	assert_true(exists_at(x.dep_fd, TRASH(TEMP_NAME) "/status.xml"));
	assert_false(exists_at(x.locks_fd, "deployment"));
	assert_false(exists_at(x.locks_fd, TRASH("deployment")));
	txn_site_close(&x);
	close(fd);
}

/* A target changed between the scan and its move stops the moves: it is
 * left as it is, those moved before it are still aside (for the caller's
 * rollback), those after it untouched. */
static void test_txn_move_stops_at_a_change(void **state)
{
	struct site_tree *s = *state;
	struct txn_site x;
	struct reap_txn txn;
	atomic_bool cancel = false;
	char root[192];

	snprintf(root, sizeof(root), "%s/txn", s->base);
	assert_int_equal(mkdir(root, 0755), 0);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	txn_site_make(&x, fd);
	int rec = openat(x.dep_fd, TEMP_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	append_at(rec, "log.log", "still building\n");
	close(rec);
	txn_begin(&x, root, &txn, &cancel);
	assert_int_equal(reap_move_all(&txn), -ESTALE);
	assert_int_equal(x.r[0].state, REAP_MOVED);
	assert_int_equal(x.r[1].state, REAP_UNTOUCHED);
	assert_int_equal(x.r[2].state, REAP_UNTOUCHED);
	assert_detail_has(&x.r[1], "log.log was modified since judged");
	reap_rollback(&txn);
	reap_end(&txn);
	assert_int_equal(x.r[0].state, REAP_PUT_BACK);
	assert_true(exists_at(x.dep_fd, "pending"));
	assert_true(exists_at(x.locks_fd, "deployment/info.lock"));
	txn_site_close(&x);
	close(fd);
}

/* Every re-check before a move reads attributes from the filesystem, not
 * from a client's attribute cache (a cifs mount answers from its cache for
 * up to actimeo): each statx of a target, of what carries its trash name,
 * and of the judged files inside passes AT_STATX_FORCE_SYNC. */
static void test_rechecks_force_sync(void **state)
{
	struct site_tree *s = *state;
	struct txn_site x;
	struct reap_txn txn;
	atomic_bool cancel = false;
	char root[192];
	const char *const checked[] = { "pending", TEMP_NAME, "status.xml", "log.log",
					 "manifest", "deployment", "info.lock", "" };
	unsigned seen[8] = { 0 };

	snprintf(root, sizeof(root), "%s/txn", s->base);
	assert_int_equal(mkdir(root, 0755), 0);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	txn_site_make(&x, fd);
	txn_begin(&x, root, &txn, &cancel);
	calls.n = 0;
	calls.on = true;
	assert_int_equal(reap_move_all(&txn), 0);
	calls.on = false;
	reap_rollback(&txn);
	reap_end(&txn);
	for (size_t i = 0; i < calls.n; i++) {
		if (calls.what[i] != 's')
			continue;
		for (size_t k = 0; k < 8; k++) {
			if (strcmp(calls.name[i], checked[k]) != 0)
				continue;
			seen[k]++;
			/* "" is the area's own identity too (not a re-check);
			 * the others are. */
			if (k < 7 && !(calls.flags[i] & AT_STATX_FORCE_SYNC))
				fail_msg("statx of %s without AT_STATX_FORCE_SYNC (flags %#x)",
					 calls.name[i], calls.flags[i]);
		}
	}
	for (size_t k = 0; k < 7; k++)
		if (seen[k] == 0)
			fail_msg("no statx of %s", checked[k]);
	/* What carries each trash name, through its descriptor: 3 targets. */
	size_t forced_self = 0;
	for (size_t i = 0; i < calls.n; i++)
		forced_self += calls.what[i] == 's' && calls.name[i][0] == '\0' &&
			       (calls.flags[i] & AT_STATX_FORCE_SYNC);
	assert_true(forced_self >= 3);
	txn_site_close(&x);
	close(fd);
}

/* ---- reap_target_from_entry ------------------------------------------------ */

static void test_target_from_entry(void **state)
{
	static const struct {
		enum site_area area;
		const char *name;
		enum kudu_name kind;
		const char *area_name;
		size_t n_inner;
		const char *inner[REAP_MAX_INNER];
	} cases[] = {
		{ SITE_AREA_LOCKS, "deployment", KUDU_NAME_LOCK_FOLDER, "locks", 1, { "info.lock" } },
		{ SITE_AREA_LOCKS, "status.lock", KUDU_NAME_STATUS_LOCK, "locks", 0, { NULL } },
		{ SITE_AREA_DEPLOYMENTS, "pending", KUDU_NAME_PENDING, "deployments", 0, { NULL } },
		{ SITE_AREA_DEPLOYMENTS, TEMP_NAME, KUDU_NAME_TEMP_RECORD, "deployments", 3,
		  { "status.xml", "log.log", "manifest" } },
		{ SITE_AREA_DEPLOYMENTS, "0123456789abcdef0123456789abcdef", KUDU_NAME_RECORD,
		  "deployments", 3, { "status.xml", "log.log", "manifest" } },
		{ SITE_AREA_DEPLOYMENTS, REAP_TRASH_PREFIX "x", KUDU_NAME_TRASH, "deployments", 0,
		  { NULL } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct site_entry e;
		struct reap_target t;

		memset(&e, 0, sizeof(e));
		e.area = cases[i].area;
		snprintf(e.name, sizeof(e.name), "%s", cases[i].name);
		e.kind = cases[i].kind;
		e.st = (struct site_stat){ .present = true, .type = S_IFDIR, .dev = 1, .ino = 100 + i, .mtime_ns = 5, .ctime_ns = 6 };
		e.info_st = (struct site_stat){ .present = true, .type = S_IFREG, .dev = 1, .ino = 200, .mtime_ns = 7, .ctime_ns = 8 };
		e.status_st = (struct site_stat){ .present = true, .type = S_IFREG, .dev = 1, .ino = 300, .mtime_ns = 9, .ctime_ns = 10 };
		e.log_st = (struct site_stat){ .present = true, .type = S_IFREG, .dev = 1, .ino = 400, .mtime_ns = 11, .ctime_ns = 12 };
		e.manifest_st = (struct site_stat){ .present = false };
		memset(&t, 0xa5, sizeof(t));

		reap_target_from_entry(&t, &e);
		assert_string_equal(t.area, cases[i].area_name);
		assert_string_equal(t.name, cases[i].name);
		assert_memory_equal(&t.judged, &e.st, sizeof(e.st));
		assert_int_equal(t.n_inner, cases[i].n_inner);
		for (size_t j = 0; j < t.n_inner; j++) {
			const struct site_stat *want =
				strcmp(cases[i].inner[j], "info.lock") == 0 ? &e.info_st :
				strcmp(cases[i].inner[j], "status.xml") == 0 ? &e.status_st :
				strcmp(cases[i].inner[j], "log.log") == 0 ? &e.log_st : &e.manifest_st;
			assert_string_equal(t.inner_name[j], cases[i].inner[j]);
			assert_memory_equal(&t.inner[j], want, sizeof(*want));
		}
	}
	(void)state;
}

#define SITE_TEST(fn) cmocka_unit_test_setup_teardown(fn, site_tree_setup, site_tree_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		SITE_TEST(test_file_targets_removed),
		SITE_TEST(test_folder_with_nested_content_removed),
		SITE_TEST(test_lock_folder_removed),
		SITE_TEST(test_leftover_trash_finished),
		SITE_TEST(test_trash_name_taken),
		SITE_TEST(test_symlinks_inside_removed_as_links),
		SITE_TEST(test_hard_link_inside),
		SITE_TEST(test_special_files_inside),
		SITE_TEST(test_hostile_names),
		SITE_TEST(test_unremovable_entry_reported),
		SITE_TEST(test_deep_nesting),
		SITE_TEST(test_deep_nesting_few_descriptors),
		SITE_TEST(test_many_files),
		SITE_TEST(test_cancel_before_start),
		SITE_TEST(test_cancel_during_removal),
		SITE_TEST(test_root_replaced),
		SITE_TEST(test_refusals),
		SITE_TEST(test_targets_independent),
		SITE_TEST(test_tmpfs_mount_inside),
		SITE_TEST(test_bind_mount_inside),
		SITE_TEST(test_area_is_a_mount),
		SITE_TEST(test_on_fuse_without_noreplace),
		SITE_TEST(test_race_swap_with_symlink),
		SITE_TEST(test_txn_rollback),
		SITE_TEST(test_txn_rollback_on_fuse),
		SITE_TEST(test_txn_commit),
		SITE_TEST(test_txn_move_stops_at_a_change),
		SITE_TEST(test_rechecks_force_sync),
		cmocka_unit_test(test_target_from_entry),
	};

	enum { N_CHANGES = sizeof(change_cases) / sizeof(change_cases[0]) };
	struct CMUnitTest changes[N_CHANGES];

	for (size_t i = 0; i < N_CHANGES; i++) {
		changes[i] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
			test_changed_since_judged, change_setup, change_teardown,
			(void *)&change_cases[i]);
		changes[i].name = change_cases[i].what;
	}
	int failed = cmocka_run_group_tests_name("reap", tests, NULL, NULL);
	failed += _cmocka_run_group_tests("reap: changed since judged", changes, N_CHANGES,
					  NULL, NULL);
	return failed;
}
