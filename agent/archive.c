/* archive.c - copies of what a cleanup removes, and a note of it. */
#include "archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "jsonw.h"
#include "kudu.h"
#include "log.h"
#include "rmtree.h"

#define ARCHIVE_LIST_MAX 4096

static void fmt_stamp(int64_t ns, char *out, size_t size)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, size, "%Y%m%dT%H%M%SZ", &tm) == 0)
		snprintf(out, size, "00000000T000000Z");
}

void archive_instance_id(const char *website_instance_id, const char *hostname, char *out,
			 size_t out_size)
{
	const char *src = website_instance_id && *website_instance_id ? website_instance_id
			  : hostname && *hostname ? hostname : "unknown";
	size_t o = 0;
	for (const char *p = src; *p && o + 1 < out_size && o < 12; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-';
		out[o++] = ok ? c : '_';
	}
	out[o] = '\0';
}

int archive_make_dirs(const char *dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(path, 0750) < 0 && errno != EEXIST)
				return -errno;
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	return 0;
}

int archive_begin(const char *dir, const char *instance, int64_t now_ns,
		  struct archive_session *s, char *err, size_t err_size)
{
	char stamp[32], name[96];
	int r, dir_fd;

	s->dir_fd = -1;
	s->parent_fd = -1;
	r = archive_make_dirs(dir);
	if (r < 0) {
		snprintf(err, err_size, "cannot create archive folder %s: %s", dir, strerror(-r));
		return r;
	}
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		r = -errno;
		snprintf(err, err_size, "cannot open archive folder %s: %s", dir, strerror(-r));
		return r;
	}
	fmt_stamp(now_ns, stamp, sizeof(stamp));
	for (unsigned n = 1; n < 1000; n++) {
		snprintf(name, sizeof(name), "%s-%s-%u", stamp, instance, n);
		if (mkdirat(dir_fd, name, 0750) == 0) {
			s->dir_fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = s->dir_fd < 0 ? -errno : 0;
			snprintf(s->path, sizeof(s->path), "%s/%s", dir, name);
			snprintf(s->name, sizeof(s->name), "%s", name);
			s->parent_fd = dir_fd;
			if (r < 0) {
				snprintf(err, err_size, "cannot open %s: %s", s->path, strerror(-r));
				unlinkat(dir_fd, name, AT_REMOVEDIR);
				close(dir_fd);
				s->parent_fd = -1;
			}
			return r;
		}
		if (errno != EEXIST) {
			r = -errno;
			snprintf(err, err_size, "cannot create a session in %s: %s", dir, strerror(-r));
			close(dir_fd);
			return r;
		}
	}
	close(dir_fd);
	snprintf(err, err_size, "cannot create a session in %s: too many in one second", dir);
	return -EEXIST;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Copies name of src_dir into dst_dir, if it is still the judged file. A
 * file is never opened in a way that could block (FIFO) or follow a link. */
static int copy_verified(int src_dir, const char *name, const struct site_stat *judged,
			 int dst_dir, bool *truncated)
{
	struct stat st;
	char buf[65536];
	int r = 0, out = -1;
	int in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (in < 0)
		return -errno;
	if (fstat(in, &st) < 0) {
		r = -errno;
		goto done;
	}
	int64_t mtime_ns = clock_ns_from(st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	if (!S_ISREG(st.st_mode) || st.st_ino != judged->ino || mtime_ns != judged->mtime_ns ||
	    st.st_size != judged->size) {
		r = -ESTALE;
		goto done;
	}
	out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (out < 0) {
		r = -errno;
		goto done;
	}
	/* The end of a log says how a deployment died; keep that part. */
	if (st.st_size > ARCHIVE_FILE_MAX) {
		*truncated = true;
		if (lseek(in, st.st_size - ARCHIVE_FILE_MAX, SEEK_SET) < 0) {
			r = -errno;
			goto done;
		}
	}
	for (off_t left = st.st_size > ARCHIVE_FILE_MAX ? ARCHIVE_FILE_MAX : st.st_size; left > 0;) {
		ssize_t n = read(in, buf, (size_t)left < sizeof(buf) ? (size_t)left : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto done;
		}
		if (n == 0)
			break;
		r = write_all(out, buf, (size_t)n);
		if (r < 0)
			goto done;
		left -= n;
	}
	if (fsync(out) < 0)
		r = -errno;
done:
	if (out >= 0 && close(out) < 0 && r == 0)
		r = -errno;
	close(in);
	return r;
}

/* Opens dir_fd/name as a folder (creating it) inside the session. */
static int session_subdir(int dir_fd, const char *name)
{
	if (mkdirat(dir_fd, name, 0750) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int archive_copy_target(struct archive_session *s, const char *site_root, dev_t root_dev,
			ino_t root_ino, struct archive_item *item)
{
	const struct reap_target *t = item->target;
	struct stat st;
	int root_fd = -1, area_fd = -1, src_fd = -1, dst_area = -1, dst_fd = -1, r = 0;

	item->files_archived = 0;
	item->truncated = false;
	/* Our own trash was archived before it was renamed. */
	if (strncmp(t->name, REAP_TRASH_PREFIX, strlen(REAP_TRASH_PREFIX)) == 0)
		goto done;
	root_fd = open(site_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0 || fstat(root_fd, &st) < 0) {
		r = -errno;
		goto done;
	}
	if (st.st_dev != root_dev || st.st_ino != root_ino) {
		r = -ESTALE;
		goto done;
	}
	area_fd = openat(root_fd, t->area, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (area_fd < 0) {
		r = -errno;
		goto done;
	}
	dst_area = session_subdir(s->dir_fd, t->area);
	if (dst_area < 0) {
		r = dst_area;
		goto done;
	}
	if (t->judged.type != S_IFDIR) {
		r = copy_verified(area_fd, t->name, &t->judged, dst_area, &item->truncated);
		if (r == 0)
			item->files_archived++;
		goto done;
	}
	src_fd = openat(area_fd, t->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (src_fd < 0 || fstat(src_fd, &st) < 0) {
		r = -errno;
		goto done;
	}
	if (st.st_ino != t->judged.ino) {
		r = -ESTALE;
		goto done;
	}
	dst_fd = session_subdir(dst_area, t->name);
	if (dst_fd < 0) {
		r = dst_fd;
		goto done;
	}
	for (size_t i = 0; i < t->n_inner && r == 0; i++) {
		if (!t->inner[i].present || t->inner[i].type != S_IFREG)
			continue;
		r = copy_verified(src_fd, t->inner_name[i], &t->inner[i], dst_fd, &item->truncated);
		if (r == 0)
			item->files_archived++;
	}
	if (r == 0 && fsync(dst_fd) < 0)
		r = -errno;
done:
	if (dst_fd >= 0)
		close(dst_fd);
	if (dst_area >= 0)
		close(dst_area);
	if (src_fd >= 0)
		close(src_fd);
	if (area_fd >= 0)
		close(area_fd);
	if (root_fd >= 0)
		close(root_fd);
	item->archive_err = r;
	return r;
}

const char *archive_state_name(enum archive_state state)
{
	switch (state) {
	case ARCHIVE_MOVING: return "moving";
	case ARCHIVE_COMMITTED: return "committed";
	case ARCHIVE_DONE: return "done";
	case ARCHIVE_ROLLED_BACK: return "rolled-back";
	}
	return "?";
}

static void item_outcome(const struct archive_item *it, char *out, size_t size)
{
	const struct reap_result *r = it->result;
	char kept[NAME_MAX * 4 + 1];

	if (it->archive_err) {
		snprintf(out, size, "kept: could not archive it (%s)",
			 it->archive_err == -ESTALE ? "changed since it was judged"
						    : strerror(-it->archive_err));
		return;
	}
	switch (r ? r->state : REAP_UNTOUCHED) {
	case REAP_UNTOUCHED:
		snprintf(out, size, "%s", r && r->err ? r->detail : "about to be removed");
		break;
	case REAP_MOVED:
		snprintf(out, size, "moved aside, not committed");
		break;
	case REAP_REMOVED:
		if (r->err)
			snprintf(out, size, "committed; the deletion failed, left as trash: %s",
				 r->detail);
		else if (r->detail[0])
			snprintf(out, size, "removed (%s)", r->detail);
		else
			snprintf(out, size, "removed (%lu %s)", r->files_removed,
				 r->files_removed == 1 ? "entry" : "entries");
		break;
	case REAP_PUT_BACK:
		snprintf(out, size, "put back under its own name");
		break;
	case REAP_KEPT_BESIDE:
		log_escape(r->kept, kept, sizeof(kept));
		snprintf(out, size, "kept as %s: its name was made again meanwhile", kept);
		break;
	case REAP_LEFT_AS_TRASH:
		snprintf(out, size, "could not be put back: left under its trash name");
		break;
	}
}

static void print_note_json(FILE *f, const struct archive_note *n)
{
	fprintf(f, "{\n  \"lockwarden\": \"%s\",\n  \"state\": \"%s\",\n  \"time\": ",
		LOCKWARDEN_VERSION, archive_state_name(n->state));
	jsonw_time(f, n->time_ns);
	fputs(",\n  \"instance\": ", f);
	jsonw_string(f, n->instance);
	fputs(",\n  \"incident\": ", f);
	jsonw_string(f, n->incident ? n->incident : "");
	fputs(",\n  \"token\": ", f);
	jsonw_string(f, n->token ? n->token : "");
	fputs(",\n  \"step\": ", f);
	jsonw_string(f, n->step ? n->step : "");
	fprintf(f, ",\n  \"complete\": %s", n->complete ? "true" : "false");
	fputs(",\n  \"site_root\": ", f);
	jsonw_string(f, n->site_root);
	fputs(",\n  \"deployment_id\": ", f);
	jsonw_string(f, n->deployment_id);
	fputs(",\n  \"reason\": ", f);
	jsonw_string(f, n->reason);
	/* Every trash name this cleanup makes, written before the first move:
	 * the sweep removes a trash name only when a committed note lists it. */
	fputs(",\n  \"trash\": [", f);
	for (size_t i = 0; i < n->n_items; i++) {
		char path[NAME_MAX * 2 + 2];
		const struct reap_result *r = n->items[i].result;
		snprintf(path, sizeof(path), "%s/%s", n->items[i].target->area, r ? r->trash : "");
		fputs(i ? ", " : "", f);
		jsonw_string(f, path);
	}
	fputs("],\n  \"entries\": [", f);
	for (size_t i = 0; i < n->n_items; i++) {
		const struct archive_item *it = &n->items[i];
		const struct reap_result *r = it->result;
		char path[NAME_MAX + 32], outcome[640];
		snprintf(path, sizeof(path), "%s/%s", it->target->area, it->target->name);
		item_outcome(it, outcome, sizeof(outcome));
		fputs(i ? ",\n    {\"path\": " : "\n    {\"path\": ", f);
		jsonw_string(f, path);
		fputs(", \"what\": ", f);
		jsonw_string(f, it->what ? it->what : "");
		fprintf(f, ", \"files_archived\": %u, \"truncated\": %s, \"removed\": %s, \"kept_as\": ",
			it->files_archived, it->truncated ? "true" : "false",
			r && r->state == REAP_REMOVED && r->err == 0 ? "true" : "false");
		jsonw_string(f, r && r->state == REAP_KEPT_BESIDE ? r->kept : "");
		fputs(", \"outcome\": ", f);
		jsonw_string(f, outcome);
		fputs("}", f);
	}
	fputs("\n  ]\n}\n", f);
}

static void print_note_text(FILE *f, const struct archive_note *n)
{
	char when[40], esc[1024];
	isotime_format(n->time_ns, "?", when, sizeof(when));
	log_escape(n->reason, esc, sizeof(esc));
	fprintf(f, "%s on %s%s%s: %s\n", when, n->instance,
		n->state == ARCHIVE_MOVING ? " (interrupted)"
		: n->state == ARCHIVE_ROLLED_BACK ? " (abandoned, rolled back)" : "",
		n->step && strcmp(n->step, "full-clear") == 0 ? " (full clear)" : "", esc);
	for (size_t i = 0; i < n->n_items; i++) {
		char path[NAME_MAX + 32], outcome[640];
		snprintf(path, sizeof(path), "%s/%s", n->items[i].target->area, n->items[i].target->name);
		log_escape(path, esc, sizeof(esc));
		item_outcome(&n->items[i], outcome, sizeof(outcome));
		fprintf(f, "  %s: %s\n", esc, outcome);
	}
}

/* ---- reading a note back ---------------------------------------------------- */

static int read_trash_item(struct json *j, unsigned depth, void *ctx)
{
	struct archive_note_read *out = ctx;
	char path[NAME_MAX * 2 + 2] = "";
	int r = json_member_string(j, depth, path, sizeof(path));
	if (r == 0 && out->want_trash && strcmp(path, out->want_trash) == 0)
		out->lists_want = true;
	return r;
}

static int read_note_member(struct json *j, unsigned depth, const char *key, void *ctx)
{
	struct archive_note_read *out = ctx;
	char word[16];

	if (strcmp(key, "incident") == 0)
		return json_member_string(j, depth, out->incident, sizeof(out->incident));
	if (strcmp(key, "instance") == 0)
		return json_member_string(j, depth, out->instance, sizeof(out->instance));
	if (strcmp(key, "step") == 0)
		return json_member_string(j, depth, out->step, sizeof(out->step));
	if (strcmp(key, "token") == 0)
		return json_member_string(j, depth, out->token, sizeof(out->token));
	if (strcmp(key, "complete") == 0) {
		out->complete = j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0;
		return json_skip_value(j, depth);
	}
	if (strcmp(key, "trash") == 0)
		return json_array(j, depth, read_trash_item, out);
	if (strcmp(key, "state") == 0) {
		int r = json_member_string(j, depth, word, sizeof(word));
		static const struct { const char *word; enum archive_state state; } states[] = {
			{ "moving", ARCHIVE_MOVING }, { "removing", ARCHIVE_MOVING },
			{ "committed", ARCHIVE_COMMITTED }, { "done", ARCHIVE_DONE },
			{ "rolled-back", ARCHIVE_ROLLED_BACK },
		};
		for (size_t i = 0; r == 0 && i < sizeof(states) / sizeof(states[0]); i++)
			if (strcmp(word, states[i].word) == 0) {
				out->state = states[i].state;
				out->has_state = true;
			}
		return r;
	}
	return json_skip_value(j, depth);
}

#define ARCHIVE_NOTE_READ_MAX (1024 * 1024)

int archive_read_note(int dir_fd, const char *session, struct archive_note_read *out)
{
	const char *want = out->want_trash;
	struct stat st;
	char *buf = NULL;
	ssize_t got = -1;
	int r;

	*out = (struct archive_note_read){ .want_trash = want };
	int sfd = openat(dir_fd, session, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	int fd = openat(sfd, "note.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	close(sfd);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= ARCHIVE_NOTE_READ_MAX &&
	    (buf = malloc((size_t)st.st_size + 1)) != NULL)
		got = pread(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	r = got < 0 ? -EINVAL : json_document(buf, (size_t)got, read_note_member, out);
	free(buf);
	if (r == 0 && !out->has_state)
		r = -EINVAL;
	return r;
}

/* Writes name through a temporary name and a rename, so a reader (or a
 * crash) never sees half a note. */
static int write_atomically(int dir_fd, const char *name, const struct archive_note *n,
			    void (*print)(FILE *, const struct archive_note *))
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int r = -errno;
		close(fd);
		return r;
	}
	print(f, n);
	int r = 0;
	if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) < 0)
		r = -(errno ? errno : EIO);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dir_fd, tmp, 0);
	return r;
}

int archive_write_note(struct archive_session *s, const struct archive_note *note)
{
	int r = write_atomically(s->dir_fd, "note.json", note, print_note_json);
	if (r == 0)
		r = write_atomically(s->dir_fd, "note.txt", note, print_note_text);
	if (r == 0 && fsync(s->dir_fd) < 0)
		r = -errno;
	return r;
}

void archive_end(struct archive_session *s)
{
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	if (s->parent_fd >= 0)
		close(s->parent_fd);
	s->dir_fd = -1;
	s->parent_fd = -1;
}

void archive_discard(struct archive_session *s)
{
	if (s->dir_fd >= 0 && s->parent_fd >= 0) {
		/* The same remover as every other removal: the session holds
		 * only what this session wrote, but the archive folder may be
		 * on the share too. */
		struct rmtree_stat st;
		struct rmtree_mount mount;
		struct rmtree_outcome outcome;
		if (rmtree_stat_at(s->dir_fd, "", &st) == 0) {
			rmtree_mount_of(&st, &mount);
			rmtree_empty(s->dir_fd, &st, &mount, NULL, &outcome);
		}
		unlinkat(s->parent_fd, s->name, AT_REMOVEDIR);
	}
	archive_end(s);
}

bool archive_session_time(const char *name, int64_t *ns)
{
	char iso[32];
	if (strlen(name) < ARCHIVE_SESSION_PREFIX_LEN + 1 || name[ARCHIVE_SESSION_PREFIX_LEN] != '-')
		return false;
	snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", name, name + 4, name + 6,
		 name + 9, name + 11, name + 13);
	return name[8] == 'T' && isotime_parse(iso, strlen(iso), ns) == 0;
}

struct session_name {
	char name[NAME_MAX + 1];
};

static int compare_desc(const void *a, const void *b)
{
	return strcmp(((const struct session_name *)b)->name, ((const struct session_name *)a)->name);
}

/* The session folders of dir, newest first. */
static int list_sessions(const char *dir, struct session_name **out, size_t *n_out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct session_name *names = NULL;
	size_t n = 0;
	int64_t ignored;

	*out = NULL;
	*n_out = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL && n < ARCHIVE_LIST_MAX) {
		if (!archive_session_time(de->d_name, &ignored))
			continue;
		struct session_name *grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown) {
			free(names);
			closedir(d);
			return -ENOMEM;
		}
		names = grown;
		snprintf(names[n++].name, sizeof(names[0].name), "%s", de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), compare_desc);
	*out = names;
	*n_out = n;
	return 0;
}

int archive_prune(const char *dir, uint64_t keep_ms, int64_t now_ns, unsigned *pruned)
{
	struct session_name *names;
	size_t n;
	char parent[PATH_MAX];
	const char *base;
	struct stat root_st;
	int r, first_err = 0;

	*pruned = 0;
	r = list_sessions(dir, &names, &n);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	/* The archive's parent plays the site root and the archive folder the
	 * area, so old sessions go through the very same safe removal. */
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (!slash || slash[1] == '\0') {
		free(names);
		return -EINVAL;
	}
	base = dir + (slash - parent) + 1;
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (lstat(parent, &root_st) < 0) {
		r = -errno;
		free(names);
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t t;
		struct stat st;
		char path[PATH_MAX + NAME_MAX + 2];
		if (!archive_session_time(names[i].name, &t) || now_ns - t < (int64_t)keep_ms * 1000000LL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i].name);
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		struct reap_target target = { .area = base };
		struct reap_result result = { 0 };
		atomic_bool never = false;
		snprintf(target.name, sizeof(target.name), "%s", names[i].name);
		target.judged = (struct site_stat){
			.present = true, .type = S_IFDIR, .dev = st.st_dev, .ino = st.st_ino,
			.mtime_ns = clock_ns_from(st.st_mtim.tv_sec, st.st_mtim.tv_nsec),
			.ctime_ns = clock_ns_from(st.st_ctim.tv_sec, st.st_ctim.tv_nsec),
			.size = (int64_t)st.st_size,
		};
		char token[REAP_TOKEN_SIZE];
		reap_new_token(token);
		r = reap_run(parent, root_st.st_dev, root_st.st_ino, token, &target, 1, &never,
			     &result);
		if (r == 0)
			(*pruned)++;
		else if (first_err == 0)
			first_err = r;
	}
	free(names);
	return first_err;
}

int archive_list(const char *dir, FILE *out, bool json, size_t max)
{
	struct session_name *names;
	size_t n;
	int printed = 0;
	int r = list_sessions(dir, &names, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n && (size_t)printed < max; i++) {
		char path[PATH_MAX + 2 * NAME_MAX], buf[65536];
		snprintf(path, sizeof(path), "%s/%s/%s", dir, names[i].name,
			 json ? "note.json" : "note.txt");
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		if (json && printed)
			fputs(",\n", out);
		fputs(buf, out);
		printed++;
	}
	free(names);
	return printed;
}

int archive_last_lock(const char *dir, struct kudu_info_lock *lock, char *session,
		      size_t session_size)
{
	struct session_name *names;
	size_t n;
	int r = list_sessions(dir, &names, &n);

	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n && r == -ENOENT; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s/locks/deployment/info.lock", dir, names[i].name);
		/* Written by lockwarden itself, but read as carefully as the
		 * share: no link followed, size-capped. */
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		char buf[4096];
		ssize_t got = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (got <= 0)
			continue;
		buf[got] = '\0';
		if (kudu_parse_info_lock(buf, (size_t)got, lock) == 0) {
			snprintf(session, session_size, "%s", names[i].name);
			r = 0;
		}
	}
	free(names);
	return r;
}
