/* test_claim.c - the incident's claim (claim.c): its JSON, read back from a
 * buffer of exactly its length, and the protocol's steps on a real folder
 * (the sequence of names, the takeover, a stale look, the hook mark),
 * hostile files included. And what every instance reads back from the
 * archive's notes (incident_notes.c): parsed with json.c, tied to what the
 * agent saw, the ladder's previous cleanup. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "archive.h"
#include "claim.h"
#include "incident.h"


#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int parse_exact(const char *text, struct claim *c)
{
	size_t len = strlen(text);
	char *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	memcpy(buf, text, len);
	int r = claim_parse(buf, len, c);
	free(buf);
	return r;
}

static struct claim sample(void)
{
	struct claim c;
	memset(&c, 0, sizeof(c));
	c.n = 3;
	snprintf(c.instance, sizeof(c.instance), "inst0aaaaaaa");
	snprintf(c.incident, sizeof(c.incident), "20261129T044308Z-inst0aaaaaaa-41.1");
	c.fingerprint = 0x0123456789abcdefULL;
	c.seq = 7;
	c.expires_ns = 1795000000LL * 1000000000LL;
	claim_add_removed(&c, "locks/status.lock");
	claim_add_removed(&c, "deployments/temp-1a2b3c4d");
	claim_add_removed(&c, "locks/status.lock"); /* once */
	return c;
}

static void test_round_trip(void **state)
{
	struct claim c = sample(), back;
	char buf[CLAIM_FILE_MAX];

	for (int k = 0; k < 4; k++) {
		c.began = k & 1;
		c.released = k & 2;
		int len = claim_format(&c, buf, sizeof(buf));
		assert_true(len > 0);
		buf[len] = '\0';
		assert_int_equal(parse_exact(buf, &back), 0);
		assert_true(back.n == 3);
		assert_string_equal(back.instance, c.instance);
		assert_string_equal(back.incident, c.incident);
		assert_true(back.fingerprint == c.fingerprint);
		assert_int_equal(back.began, c.began);
		assert_int_equal(back.released, c.released);
		assert_true(back.seq == 7);
		assert_true(back.expires_ns == c.expires_ns);
		assert_int_equal(back.n_removed, 2);
		assert_string_equal(back.removed, "locks/status.lock\ndeployments/temp-1a2b3c4d");
	}
}

#define OK_HEAD "{\"lockwarden_claim\": 2, \"n\": 1, \"instance\": \"a\", "
static void test_not_a_claim(void **state)
{
	static const char *const bad[] = {
		"",
		"lockwarden-claim 1\ninstance a\nincident i\nfingerprint 1\nhook no\nrenewed 1\n"
		"expires -\nremoved 0\nend\n",                   /* the old text */
		"{\"lockwarden_claim\": 1, \"n\": 1, \"instance\": \"a\", \"incident\": \"i\", "
		"\"state\": \"held\"}",                         /* another version */
		OK_HEAD "\"incident\": \"i\"}",                   /* no state */
		OK_HEAD "\"incident\": \"../../x\", \"state\": \"held\"}", /* a path in an id */
		OK_HEAD "\"incident\": \"i\", \"state\": \"maybe\"}",
		OK_HEAD "\"incident\": \"i\", \"state\": \"held\", \"removed\": \"a b\"}",
		OK_HEAD "\"incident\": \"i\", \"state\": \"held\", \"fingerprint\": \"zz\"}",
		OK_HEAD "\"incident\": \"i\", \"state\": \"held\"",   /* torn */
		"{\"lockwarden_claim\": 2, \"n\": 0, \"instance\": \"a\", \"incident\": \"i\", "
		"\"state\": \"held\"}",
		OK_HEAD "\"incident\": \"\\u001b[31m\", \"state\": \"held\"}",
		OK_HEAD "\"incident\": \"iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii"
		"iiiiiiiiii\", \"state\": \"held\"}",            /* too long: not cut */
	};
	struct claim c;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (parse_exact(bad[i], &c) != -EINVAL)
			fail_msg("case %zu was taken for a claim", i);
	assert_int_equal(parse_exact(OK_HEAD "\"incident\": \"i\", \"state\": \"held\"}   \n", &c),
			 0);
}

static char dir[PATH_MAX];
static int adir = -1;

static int make_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_claim.XXXXXX");
	assert_non_null(mkdtemp(dir));
	adir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return adir < 0 ? -1 : 0;
}

static int remove_dir(void **state)
{
	char cmd[PATH_MAX + 16];
	close(adir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static bool name_exists(unsigned n)
{
	char name[64];
	struct stat st;
	snprintf(name, sizeof(name), CLAIM_NAME "-%u", n);
	return fstatat(adir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static struct claim fresh(const char *instance, const char *incident)
{
	struct claim c;
	memset(&c, 0, sizeof(c));
	snprintf(c.instance, sizeof(c.instance), "%s", instance);
	snprintf(c.incident, sizeof(c.incident), "%s", incident);
	return c;
}

/* claim.create .. claim.check, a renewal, a takeover, the loser fenced out
 * by the share alone, a release, and the next incident over it. */
static void test_sequence_of_names(void **state)
{
	struct claim a = fresh("insta", "A1"), b = fresh("instb", "B1"), other = fresh("instc", "C1");
	struct claim_held ha, hb, hc;
	struct claim_view v;
	bool inherited;

	claim_look(adir, 0, NULL, &v);
	assert_int_equal(v.err, -ENOENT);
	a.began = true;
	assert_int_equal(claim_take(adir, 0, &a, &ha, &inherited), 0);
	assert_false(inherited);
	assert_true(ha.n == 1);
	/* Two agents that saw the same top: exactly one makes the name. */
	assert_int_equal(claim_take(adir, 0, &other, &hc, &inherited), -EEXIST);
	claim_look(adir, 0, NULL, &v);
	assert_int_equal(v.err, 0);
	assert_true(v.top == 1);
	assert_string_equal(v.c.incident, "A1");
	uint64_t seen = v.hash;
	claim_add_removed(&a, "locks/status.lock");
	assert_int_equal(claim_write(adir, &ha, &a), 0);
	claim_look(adir, 1, NULL, &v);
	assert_true(v.hash != seen);            /* a renewal is a change */
	assert_int_equal(claim_check(adir, &ha), 0);

	/* b takes over: the next name; A1 and what it did are inherited. */
	assert_int_equal(claim_take(adir, 1, &b, &hb, &inherited), 0);
	assert_true(inherited);
	assert_true(hb.n == 2);
	assert_string_equal(b.incident, "A1");
	assert_true(b.began);
	assert_string_equal(b.removed, "locks/status.lock");
	assert_false(name_exists(1));           /* claim.prune */
	/* a is out: its check says so, and its write touches nothing. */
	assert_int_equal(claim_check(adir, &ha), -ESTALE);
	assert_int_equal(claim_write(adir, &ha, &a), -ESTALE);
	assert_int_equal(claim_check(adir, &hb), 0);
	char path[PATH_MAX];
	claim_path_for(dir, path, sizeof(path));
	assert_int_equal(claim_still_ours(path, hb.fd), 0);
	assert_int_equal(claim_still_ours(path, ha.fd), -ESTALE);
	claim_leave(&ha);

	/* The release stays as the top; the next incident goes over it. */
	assert_int_equal(claim_release(adir, &hb, &b), 0);
	claim_look(adir, 2, NULL, &v);
	assert_int_equal(v.err, 0);
	assert_true(v.c.released);
	struct claim next = fresh("instc", "C2");
	assert_int_equal(claim_take(adir, 2, &next, &hc, &inherited), 0);
	assert_false(inherited);
	assert_string_equal(next.incident, "C2");
	assert_false(name_exists(2));
	assert_true(name_exists(3));
	claim_leave(&hc);
}

/* A listing that found no claim name is not repeated while the folder's
 * stat stays the same; a name made in it changes that stat, and the next
 * look lists and finds it. */
static void test_absent_not_listed_again(void **state)
{
	struct claim a = fresh("insta", "A1");
	struct claim_held ha;
	struct claim_absent absent = { 0 };
	struct claim_view v;
	bool inherited;

	claim_look(adir, 0, &absent, &v);
	assert_int_equal(v.err, -ENOENT);
	assert_true(absent.known);
	struct claim_absent kept = absent;
	assert_int_equal(claim_take(adir, 0, &a, &ha, &inherited), 0);
	/* Given the folder's stat as it is now, as if a listing had found no
	 * name at it, the look believes it and lists nothing. */
	struct stat st;
	assert_int_equal(fstat(adir, &st), 0);
	struct claim_absent trusted = {
		.known = true, .dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino,
		.size = (uint64_t)st.st_size, .nlink = (uint64_t)st.st_nlink,
		.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
		.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec,
	};
	claim_look(adir, 0, &trusted, &v);
	assert_int_equal(v.err, -ENOENT);
	/* What the earlier listing kept no longer matches: listed again. */
	struct claim_absent stale = kept;
	claim_look(adir, 0, &stale, &v);
	assert_int_equal(v.err, 0);             /* the stat changed: listed */
	assert_true(v.top == 1);
	assert_false(stale.known);              /* a name is there: nothing absent */
	struct claim_absent now = { 0 };
	assert_int_equal(claim_release(adir, &ha, &a), 0);
	claim_look(adir, 0, &now, &v);
	assert_false(now.known);                /* the released name stays the top */
	claim_leave(&ha);
}

/* A look made long ago: the name it would make was pruned and is free
 * again, below the real top. The maker sees the name above and removes
 * its own; it never owns. */
static void test_stale_look(void **state)
{
	struct claim a = fresh("insta", "A1"), b = fresh("instb", "B1");
	struct claim_held ha, hb;
	bool inherited;

	assert_int_equal(claim_take(adir, 0, &a, &ha, &inherited), 0);
	assert_int_equal(claim_take(adir, 1, &a, &hb, &inherited), 0);   /* name 2 */
	claim_leave(&ha);
	assert_false(name_exists(1));
	assert_int_equal(claim_take(adir, 0, &b, &ha, &inherited), -EAGAIN);
	assert_false(name_exists(1));
	assert_int_equal(claim_check(adir, &hb), 0);
	claim_leave(&hb);
}

/* A taker whose predecessor was made and never written (its maker died
 * between claim.create and claim.write) inherits from the one below. */
static void test_inherit_past_an_empty_name(void **state)
{
	struct claim a = fresh("insta", "A1"), c = fresh("instc", "C1");
	struct claim_held ha, hc;
	bool inherited;
	a.began = true;
	assert_int_equal(claim_take(adir, 0, &a, &ha, &inherited), 0);
	/* claim.create's folder made, its file not yet: "not yet written". */
	assert_int_equal(mkdirat(adir, CLAIM_NAME "-2", 0755), 0);
	struct claim_view v;
	claim_look(adir, 1, NULL, &v);
	assert_int_equal(v.err, -EINVAL);
	assert_true(v.top == 2);
	/* Made by another: never made twice. */
	assert_int_equal(claim_take(adir, 1, &c, &hc, &inherited), -EEXIST);
	assert_int_equal(claim_take(adir, 2, &c, &hc, &inherited), 0);
	assert_true(inherited);
	assert_string_equal(c.incident, "A1");
	assert_true(c.began);
	claim_leave(&ha);
	claim_leave(&hc);
}

static void test_rewrite_without_truncate(void **state)
{
	struct claim a = fresh("insta", "A1");
	struct claim_held h;
	struct claim_view v;
	bool inherited;
	assert_int_equal(claim_take(adir, 0, &a, &h, &inherited), 0);
	for (int i = 0; i < 30; i++)
		claim_add_removed(&a, i % 2 ? "deployments/temp-aaaaaaaa" : "locks/x");
	assert_int_equal(claim_write(adir, &h, &a), 0);
	memset(a.removed, 0, sizeof(a.removed));
	a.n_removed = 0;
	assert_int_equal(claim_write(adir, &h, &a), 0); /* shorter: padded */
	claim_look(adir, 0, NULL, &v);
	assert_int_equal(v.err, 0);
	assert_int_equal(v.c.n_removed, 0);
	claim_leave(&h);
}

static void test_hostile_files(void **state)
{
	struct claim_view v;
	char name[64];
	snprintf(name, sizeof(name), CLAIM_NAME "-1");
	assert_int_equal(symlinkat("/etc/passwd", adir, name), 0);
	claim_look(adir, 0, NULL, &v);
	assert_int_equal(v.err, -ELOOP);
	assert_true(v.top == 1);
	snprintf(name, sizeof(name), CLAIM_NAME "-2");
	assert_int_equal(mkfifoat(adir, name, 0600), 0);
	claim_look(adir, 0, NULL, &v);
	assert_int_equal(v.err, -ENXIO);
	snprintf(name, sizeof(name), CLAIM_NAME "-3");
	int fd = openat(adir, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	claim_look(adir, 0, NULL, &v);
	assert_int_equal(v.err, -EFBIG);
	/* Names that are not the sequence's are not counted. */
	fd = openat(adir, CLAIM_NAME "-07", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
	fd = openat(adir, CLAIM_NAME "-9x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
	claim_look(adir, 0, NULL, &v);
	assert_true(v.top == 3);
}

static void test_hook_mark(void **state)
{
	struct claim_mark m;
	int fd, fd2;
	claim_read_mark(adir, "20261129T044308Z-a-1.1", &m);
	assert_int_equal(m.err, -ENOENT);
	assert_int_equal(claim_mark_hook(adir, "20261129T044308Z-a-1.1", "insta", &fd), 0);
	/* However the first maker stalls, nobody makes it again. */
	assert_int_equal(claim_mark_hook(adir, "20261129T044308Z-a-1.1", "instb", &fd2), -EEXIST);
	claim_read_mark(adir, "20261129T044308Z-a-1.1", &m);
	assert_int_equal(m.err, 0);
	assert_string_equal(m.instance, "insta");
	assert_false(m.ended);
	assert_int_equal(claim_mark_end(fd, "20261129T044308Z-a-1.1", "insta", 0), 0);
	claim_read_mark(adir, "20261129T044308Z-a-1.1", &m);
	assert_true(m.ended);
	assert_int_equal(claim_mark_hook(adir, "../escape", "insta", &fd2), -EINVAL);
	/* Pruned with the archive: older than keep by its name's time. */
	assert_int_equal(claim_prune_marks(adir, 1000, (1795000000LL + 1000000) * 1000000000LL), 1);
	claim_read_mark(adir, "20261129T044308Z-a-1.1", &m);
	assert_int_equal(m.err, -ENOENT);
}

#define T0_NS (1800000000LL * 1000000000LL)
#define MIN_NS (60LL * 1000000000LL)

static void write_session(int64_t at_ns, const char *incident, const char *step, bool done,
			  bool complete)
{
	struct archive_session s;
	char err[256];
	assert_int_equal(archive_begin(dir, "inst0aaaaaaa", at_ns, &s, err, sizeof(err)), 0);
	struct archive_note note = {
		.time_ns = at_ns, .instance = "inst0aaaaaaa", .incident = incident,
		.site_root = "/home/site", .reason = "test", .deployment_id = "", .step = step,
		.state = done ? ARCHIVE_DONE : ARCHIVE_MOVING, .complete = complete,
	};
	assert_int_equal(archive_write_note(&s, &note), 0);
	archive_end(&s);
}

/* A note says its token, its state and every trash name, and reads back
 * through the JSON scanner; a rolled-back note is final and never "done". */
static void test_note_token_state_and_trash(void **state)
{
	struct archive_session s;
	char err[256];
	struct reap_target targets[2] = { { .area = "deployments", .name = "temp-0badc0de" },
					  { .area = "locks", .name = "deployment" } };
	struct reap_result results[2] = { { .state = REAP_PUT_BACK },
					  { .state = REAP_KEPT_BESIDE } };
	struct archive_item items[2] = { { .target = &targets[0], .result = &results[0] },
					 { .target = &targets[1], .result = &results[1] } };
	snprintf(results[0].trash, sizeof(results[0].trash), "%s", ".lockwarden-trash-00ff00ff-temp-0badc0de");
	snprintf(results[1].trash, sizeof(results[1].trash), "%s", ".lockwarden-trash-00ff00ff-deployment");
	snprintf(results[1].kept, sizeof(results[1].kept), "%s", ".lockwarden-kept-00ff00ff-deployment");
	for (int st = ARCHIVE_MOVING; st <= ARCHIVE_ROLLED_BACK; st++) {
		assert_int_equal(archive_begin(dir, "inst0aaaaaaa", T0_NS + st * MIN_NS, &s, err,
					       sizeof(err)), 0);
		struct archive_note note = {
			.time_ns = T0_NS, .instance = "inst0aaaaaaa", .incident = "I",
			.site_root = "/home/site", .reason = "a \"quoted\" reason", .deployment_id = "",
			.step = "clear", .token = "00ff00ff", .state = (enum archive_state)st,
			.complete = true, .items = items, .n_items = 2,
		};
		assert_int_equal(archive_write_note(&s, &note), 0);
		char session[96];
		snprintf(session, sizeof(session), "%s", s.name);
		archive_end(&s);

		int note_dir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct archive_note_read r = { .want_trash = "locks/.lockwarden-trash-00ff00ff-deployment" };
		assert_int_equal(archive_read_note(note_dir, session, &r), 0);
		assert_int_equal(r.state, st);
		assert_string_equal(r.token, "00ff00ff");
		assert_string_equal(r.incident, "I");
		assert_true(r.lists_want);
		struct archive_note_read other = { .want_trash = "locks/.lockwarden-trash-00ff00ff-x" };
		assert_int_equal(archive_read_note(note_dir, session, &other), 0);
		assert_false(other.lists_want);
		close(note_dir);
	}
	struct incident_notes notes;
	incident_read_notes(dir, NULL, &notes);
	assert_int_equal(notes.n, 4);
	for (size_t i = 0; i < notes.n; i++) {
		bool done = i == ARCHIVE_COMMITTED || i == ARCHIVE_DONE;
		assert_int_equal(notes.v[i].done, done);
		assert_int_equal(notes.v[i].final, i == ARCHIVE_DONE || i == ARCHIVE_ROLLED_BACK);
		assert_string_equal(notes.v[i].token, "00ff00ff");
	}
	incident_notes_free(&notes);
	(void)state;
}

static void test_last_clear_from_the_notes(void **state)
{
	static const struct {
		int64_t at_min;
		const char *incident, *step;
		bool done, complete;
	} sessions[] = {
		{ 0, "A", "clear", true, true },        /* counts */
		{ 10, "B", "lock", true, true },        /* an expired lock alone: no */
		{ 20, "C", "clear", true, false },      /* partial: no */
		{ 30, "D", "clear", false, false },     /* interrupted: no */
		{ 35, "G", NULL, true, true },          /* an older version's note: no */
		{ 40, "E", "clear", true, true },       /* counts */
		{ 45, "F", "full-clear", true, true },  /* counts */
	};
	static const struct {
		size_t written;          /* the first n sessions above */
		const char *exclude;
		bool found;
		int64_t at_min;
	} rows[] = {
		{ 0, "", false, 0 },
		{ 1, "", true, 0 },
		{ 1, "A", false, 0 },
		{ 5, "", true, 0 },
		{ 6, "", true, 40 },
		{ 6, "E", true, 0 },
		{ 7, "", true, 45 },
		{ 7, "F", true, 40 },
	};
	size_t written = 0;
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		for (; written < rows[i].written; written++)
			write_session(T0_NS + sessions[written].at_min * MIN_NS,
				      sessions[written].incident, sessions[written].step,
				      sessions[written].done, sessions[written].complete);
		struct incident_notes notes;
		int64_t when = 0;
		incident_read_notes(dir, NULL, &notes);
		incident_tie_notes(NULL, &notes);
		bool found = incident_last_clear(&notes, rows[i].exclude, &when);
		if (found != rows[i].found || (found && when != T0_NS + rows[i].at_min * MIN_NS))
			fail_msg("row %zu: found %d at %lld", i, found, (long long)when);
		incident_notes_free(&notes);
	}
	struct incident_notes notes;
	incident_read_notes(dir, NULL, &notes);
	assert_string_equal(incident_hook_step(&notes, "F"), "full-clear");
	assert_string_equal(incident_hook_step(&notes, "E"), "clear");
	assert_string_equal(incident_hook_step(&notes, "nobody"), "clear");
	incident_notes_free(&notes);
}

static void found_note(struct incident *inc, const struct incident_note *note)
{
	(*(int *)inc->tied[15])++;
}

/* Forged notes: valid JSON, cleared incidents nobody saw. An agent that
 * did not see the site stuck learns none of them; one that did learns one
 * (one sight, one incident). */
static void test_forged_notes_start_nothing(void **state)
{
	static struct incident inc;
	struct incident_notes first, fresh;
	memset(&inc, 0, sizeof(inc));
	incident_read_notes(dir, NULL, &first);
	for (int i = 0; i < 3; i++) {
		char id[32];
		snprintf(id, sizeof(id), "forged-%d", i);
		write_session(T0_NS + i * MIN_NS, id, "clear", true, true);
	}
	incident_read_notes(dir, &first, &fresh);
	assert_int_equal(fresh.n, 3);
	int *count = (int *)inc.tied[15];
	*count = 0;
	incident_learn(&inc, &first, &fresh, false, found_note);
	assert_int_equal(*count, 0);
	incident_notes_free(&fresh);
	memset(&inc, 0, sizeof(inc));
	inc.stuck_seen = true;
	incident_read_notes(dir, &first, &fresh);
	incident_learn(&inc, &first, &fresh, false, found_note);
	assert_int_equal(*(int *)inc.tied[15] != 0 ? 1 : 0, 1);
	incident_notes_free(&fresh);
	incident_notes_free(&first);
}

/* Text matched by strstr in older versions, not JSON: nothing believed. */
static void test_note_not_json(void **state)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/20261129T044308Z-x", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/20261129T044308Z-x/note.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("garbage \"state\": \"done\" \"incident\": \"X\", \"complete\": true", f);
	fclose(f);
	struct incident_notes notes;
	incident_read_notes(dir, NULL, &notes);
	assert_int_equal(notes.n, 1);
	assert_false(notes.v[0].done);
	assert_string_equal(notes.v[0].incident, "");
	incident_notes_free(&notes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test_setup_teardown(test_note_token_state_and_trash, make_dir, remove_dir),
		cmocka_unit_test(test_not_a_claim),
		cmocka_unit_test_setup_teardown(test_last_clear_from_the_notes, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_forged_notes_start_nothing, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_note_not_json, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_sequence_of_names, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_stale_look, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_absent_not_listed_again, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_inherit_past_an_empty_name, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_rewrite_without_truncate, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_hostile_files, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_hook_mark, make_dir, remove_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
