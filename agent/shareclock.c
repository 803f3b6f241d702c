/* shareclock.c - measuring this host's clock against the share's (see
 * shareclock.h). */
#include "shareclock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"

static int64_t drift_of(const struct clock_now *now)
{
	int64_t mono_ns;
	if (__builtin_mul_overflow((int64_t)now->mono_ms, CLOCK_NS_PER_MS, &mono_ns))
		return 0;
	return clock_sub_ns(now->wall_ns, mono_ns);
}

/* This host's wall clock jumped since the offset was measured: the offset
 * no longer holds. */
static bool jumped(const struct shareclock *sc, const struct clock_now *now)
{
	int64_t moved = clock_sub_ns(drift_of(now), sc->drift_ns);
	return sc->known && (moved > SHARECLOCK_JUMP_MS * CLOCK_NS_PER_MS ||
			     moved < -SHARECLOCK_JUMP_MS * CLOCK_NS_PER_MS);
}

static int failed(struct shareclock *sc, int err, const char *step, const char *name)
{
	snprintf(sc->what, sizeof(sc->what), "%s%s%s", step, name[0] ? " " : "", name);
	return err;
}

/* Creates the probe, reads the server's time of it, removes it. Returns 0
 * with *offset_ns, or a negative errno (sc->what says which step). */
static int probe(struct shareclock *sc, int dir_fd, const char *name, int64_t *offset_ns)
{
	struct stat st;
	int fd = -1, err = 0;

	for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
		int64_t before_ns = clock_wall_ns();
		/* O_EXCL: never opens what is there, a symlink or a FIFO left
		 * by anyone who can write the folder; a leftover of ours (a
		 * crash between create and unlink) is removed and created anew. */
		fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK |
				O_NOCTTY | O_CLOEXEC, 0640);
		if (fd < 0) {
			err = -errno;
			if (err == -EEXIST && attempt == 0 && unlinkat(dir_fd, name, 0) == 0) {
				err = 0;
				continue;
			}
			return failed(sc, err, "create", name);
		}
		if (fstat(fd, &st) < 0) {
			err = failed(sc, -errno, "stat", name);
			break;
		}
		int64_t after_ns = clock_wall_ns();
		int64_t took_ns = clock_sub_ns(after_ns, before_ns);
		if (took_ns < 0 || took_ns > SHARECLOCK_SLOW_MS * CLOCK_NS_PER_MS) {
			err = failed(sc, -ETIMEDOUT, "create", name);
			break;
		}
		int64_t mid_ns = clock_add_ns(before_ns, took_ns / 2);
		*offset_ns = clock_sub_ns(mid_ns, clock_ns_from(st.st_ctim.tv_sec, st.st_ctim.tv_nsec));
	}
	if (fd >= 0)
		close(fd);
	/* Removed at once: nothing of it stays for pruning, report or anyone
	 * listing the archive to find. */
	if (fd >= 0 && unlinkat(dir_fd, name, 0) < 0 && err == 0)
		err = failed(sc, -errno, "remove", name);
	return err;
}

/* Makes the missing archive folder, but only where it would be on the
 * site's filesystem (a folder is made on its nearest existing parent's):
 * elsewhere nothing is measured, so nothing is made. -EXDEV (in errno
 * too) when it would be elsewhere. */
static int made_beside(const char *archive_dir, dev_t site_dev)
{
	char parent[PATH_MAX];
	struct stat st;

	snprintf(parent, sizeof(parent), "%s", archive_dir);
	for (;;) {
		char *slash = strrchr(parent, '/');
		if (!slash)
			return -ENOENT;
		*slash = '\0';
		if (stat(parent[0] ? parent : "/", &st) == 0)
			break;
		if (errno != ENOENT || slash == parent)
			return -errno;
	}
	if (st.st_dev != site_dev) {
		errno = EXDEV;
		return -EXDEV;
	}
	int r = archive_make_dirs(archive_dir);
	if (r < 0)
		errno = -r;
	return r;
}

void shareclock_update(struct shareclock *sc, const char *archive_dir, const char *instance,
		       dev_t site_dev, bool create_dir, const struct clock_now *now)
{
	char name[64];
	struct stat st;
	int64_t offset_ns = 0;
	int err = 0;

	bool jump = jumped(sc, now);
	if (sc->probed && now->mono_ms - sc->probed_ms < SHARECLOCK_EVERY_MS && !jump)
		return;
	sc->probed = true;
	sc->probed_ms = now->mono_ms;
	sc->what[0] = '\0';
	int dir_fd = open(archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0 && errno == ENOENT && create_dir && made_beside(archive_dir, site_dev) == 0)
		dir_fd = open(archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0 && errno == EXDEV) {
		err = -EXDEV;
	} else if (dir_fd < 0) {
		err = failed(sc, -errno, "open", "");
	} else if (fstat(dir_fd, &st) < 0) {
		err = failed(sc, -errno, "stat", "");
	} else if (st.st_dev != site_dev) {
		err = -EXDEV;
	} else {
		snprintf(name, sizeof(name), "%s%s", CLOCK_PROBE_PREFIX, instance);
		err = probe(sc, dir_fd, name, &offset_ns);
	}
	if (dir_fd >= 0)
		close(dir_fd);
	/* A failed probe leaves the last measure standing while this host's
	 * clock has not jumped since. */
	sc->err = err;
	if (err == 0) {
		sc->known = true;
		sc->offset_ns = offset_ns;
		sc->drift_ns = drift_of(now);
	} else if (err == -EXDEV || jump || !sc->known) {
		sc->known = false;
		sc->offset_ns = 0;
	}
}
