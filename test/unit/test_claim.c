/* test_claim.c - the incident's claim (claim.c): its text, read back from a
 * buffer of exactly its length, and the file operations on a real folder,
 * hostile files included. And what every instance reads back from the
 * archive's notes (incident.c): the ladder's previous cleanup. */
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
	snprintf(c.instance, sizeof(c.instance), "inst0aaaaaaa");
	snprintf(c.incident, sizeof(c.incident), "20261129T044308Z-inst0aaaaaaa-41");
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

	for (int started = 0; started < 2; started++) {
		c.hook_started = started;
		int len = claim_format(&c, buf, sizeof(buf));
		assert_true(len > 0);
		buf[len] = '\0';
		assert_int_equal(parse_exact(buf, &back), 0);
		assert_string_equal(back.instance, c.instance);
		assert_string_equal(back.incident, c.incident);
		assert_true(back.fingerprint == c.fingerprint);
		assert_int_equal(back.hook_started, started);
		assert_true(back.seq == 7);
		assert_true(back.expires_ns == c.expires_ns);
		assert_int_equal(back.n_removed, 2);
		assert_string_equal(back.removed, "locks/status.lock\ndeployments/temp-1a2b3c4d");
	}
}

static void test_not_a_claim(void **state)
{
	static const char *const bad[] = {
		"",
		"lockwarden-claim 2\n",
		"lockwarden-claim 1\ninstance a\n",
		"lockwarden-claim 1\ninstance a b\nincident i\nfingerprint 1\nhook no\nrenewed 1\n"
		"expires -\nremoved 0\nend\n",
		"lockwarden-claim 1\ninstance a\nincident i\nfingerprint zz\nhook no\nrenewed 1\n"
		"expires -\nremoved 0\nend\n",
		"lockwarden-claim 1\ninstance a\nincident i\nfingerprint 1\nhook maybe\nrenewed 1\n"
		"expires -\nremoved 0\nend\n",
		"lockwarden-claim 1\ninstance a\nincident i\nfingerprint 1\nhook no\nrenewed -1\n"
		"expires -\nremoved 0\nend\n",
		"lockwarden-claim 1\ninstance a\nincident i\nfingerprint 1\nhook no\nrenewed 1\n"
		"expires -\nremoved 2\npath locks/x\nend\n",
		"lockwarden-claim 1\ninstance a\nincident i\nfingerprint 1\nhook no\nrenewed 1\n"
		"expires -\nremoved 99\nend\n",
		"lockwarden-claim 1\ninstance a\nincident i\nfingerprint 1\nhook no\nrenewed 1\n"
		"expires -\nremoved 0\n",                     /* no end: torn */
		"lockwarden-claim 1\ninstance \x1b[31m\nincident i\nfingerprint 1\nhook no\n"
		"renewed 1\nexpires -\nremoved 0\nend\n",
	};
	struct claim c;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (parse_exact(bad[i], &c) != -EINVAL)
			fail_msg("case %zu was taken for a claim", i);
	assert_int_equal(parse_exact("lockwarden-claim 1\ninstance a\nincident i\nfingerprint 1\n"
				     "hook no\nrenewed 1\nexpires -\nremoved 0\nend\n", &c), 0);
}

static char dir[PATH_MAX];

static int make_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_claim.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int remove_dir(void **state)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *out, size_t size)
{
	claim_path_for(dir, out, size);
}

static void test_create_once_renew_release(void **state)
{
	char path[PATH_MAX];
	struct claim c = sample();
	struct claim_view v;
	int fd = -1, fd2 = -1;

	path_in(path, sizeof(path));
	claim_look(path, &v);
	assert_int_equal(v.err, -ENOENT);
	assert_int_equal(claim_create(path, &c, &fd), 0);
	assert_int_equal(claim_create(path, &c, &fd2), -EEXIST);
	claim_look(path, &v);
	assert_int_equal(v.err, 0);
	assert_string_equal(v.c.incident, c.incident);
	uint64_t before = v.hash;
	c.seq++;
	assert_int_equal(claim_rewrite(fd, &c), 0);
	claim_look(path, &v);
	assert_true(v.hash != before);
	assert_int_equal(claim_still_ours(path, fd), 0);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	claim_release(path, fd);
	claim_look(path, &v);
	assert_int_equal(v.err, -ENOENT);
}

static void test_hostile_files(void **state)
{
	char path[PATH_MAX], outside[PATH_MAX + 16];
	struct claim_view v;

	path_in(path, sizeof(path));
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	FILE *f = fopen(outside, "w");
	assert_non_null(f);
	fputs("lockwarden-claim 1\n", f);
	fclose(f);

	assert_int_equal(symlink(outside, path), 0);
	claim_look(path, &v);
	assert_int_equal(v.err, -ELOOP);
	assert_true(claim_view_hostile(&v));
	unlink(path);

	assert_int_equal(mkfifo(path, 0600), 0);
	claim_look(path, &v); /* would block forever if it were opened */
	assert_int_equal(v.err, -ENXIO);
	unlink(path);

	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < CLAIM_FILE_MAX + 10; i++)
		fputc('x', f);
	fclose(f);
	claim_look(path, &v);
	assert_int_equal(v.err, -EFBIG);
	unlink(path);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("\xff\xfe garbage\n", f);
	fclose(f);
	claim_look(path, &v);
	assert_int_equal(v.err, -EINVAL);
	unlink(path);
}

static void test_replace_only_what_was_seen(void **state)
{
	char path[PATH_MAX];
	struct claim old = sample(), mine = sample();
	struct claim_view seen, now;
	int fd_old = -1, fd = -1;

	path_in(path, sizeof(path));
	snprintf(mine.instance, sizeof(mine.instance), "inst1bbbbbbb");
	assert_int_equal(claim_create(path, &old, &fd_old), 0);
	claim_look(path, &seen);

	/* The owner renewed after we looked: not replaced. */
	old.seq++;
	assert_int_equal(claim_rewrite(fd_old, &old), 0);
	assert_int_equal(claim_replace(path, &seen, "inst1bbbbbbb", &mine, &fd), -EAGAIN);
	assert_int_equal(claim_still_ours(path, fd_old), 0);

	/* Unchanged since we looked: replaced, and the old owner sees it lost it. */
	claim_look(path, &seen);
	assert_int_equal(claim_replace(path, &seen, "inst1bbbbbbb", &mine, &fd), 0);
	assert_int_equal(claim_still_ours(path, fd_old), -ESTALE);
	assert_int_equal(claim_still_ours(path, fd), 0);
	claim_look(path, &now);
	assert_string_equal(now.c.instance, "inst1bbbbbbb");
	close(fd_old);
	claim_release(path, fd);

	/* Already gone: nothing to take over. */
	assert_int_equal(claim_replace(path, &seen, "inst1bbbbbbb", &mine, &fd), -ENOENT);
	claim_look(path, &now);
	assert_int_equal(now.err, -ENOENT);
}

/* Table: which archive session is "the previous cleanup" the ladder
 * counts. Notes are written by archive.c and read back by incident.c, as
 * every instance reads them from the share. */
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

		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct archive_note_read r = { .want_trash = "locks/.lockwarden-trash-00ff00ff-deployment" };
		assert_int_equal(archive_read_note(dfd, session, &r), 0);
		assert_int_equal(r.state, st);
		assert_string_equal(r.token, "00ff00ff");
		assert_string_equal(r.incident, "I");
		assert_true(r.lists_want);
		struct archive_note_read other = { .want_trash = "locks/.lockwarden-trash-00ff00ff-x" };
		assert_int_equal(archive_read_note(dfd, session, &other), 0);
		assert_false(other.lists_want);
		close(dfd);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test_setup_teardown(test_note_token_state_and_trash, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_last_clear_from_the_notes, make_dir, remove_dir),
		cmocka_unit_test(test_not_a_claim),
		cmocka_unit_test_setup_teardown(test_create_once_renew_release, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_hostile_files, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_replace_only_what_was_seen, make_dir,
						remove_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
