/* report.c - one scan, one decision with nothing watched, printed for a
 * person (a table) or a program (--json). Changes nothing. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "claim.h"
#include "incident.h"
#include "clock.h"
#include "fmt.h"
#include "jsonw.h"
#include "log.h"
#include "verify.h"
#include "policy.h"
#include "scan.h"
#include "site.h"
#include "silence.h"
#include "silence_read.h"
#include "sitekind.h"

/* The entry's own last activity: for a record, the newest of the folder,
 * status.xml and log.log; for the lock folder, info.lock too. */
static int64_t entry_mtime_ns(const struct site_entry *e)
{
	int64_t t = e->st.mtime_ns;
	const struct site_stat *more[] = { &e->info_st, &e->status_st, &e->log_st };
	for (size_t i = 0; i < 3; i++)
		if (more[i]->present && more[i]->mtime_ns > t)
			t = more[i]->mtime_ns;
	return t;
}

/* How long ago the entry was last written by its file times and this
 * host's clock, for a person to read (never evidence); a time in the
 * future shows as 0. Saturated: the share's times can be anything. */
static int64_t entry_age_ms(const struct site_snapshot *snap, const struct site_entry *e)
{
	int64_t age_ms = clock_ns_to_ms(clock_sub_ns(snap->scanned_ns, entry_mtime_ns(e)));
	return age_ms < 0 ? 0 : age_ms;
}

/* What the entry holds, in a few words: lock holder, or record status. */
static void entry_details(const struct site_entry *e, char *out, size_t size)
{
	char a[KUDU_TEXT_MAX * 4], b[KUDU_TEXT_MAX * 4], when[40];

	out[0] = '\0';
	if (e->kind == KUDU_NAME_LOCK_FOLDER && e->info_err == 0) {
		log_escape(e->info.op, a, sizeof(a));
		log_escape(e->info.worker, b, sizeof(b));
		isotime_format(e->info.expiry_ns, "-", when, sizeof(when));
		snprintf(out, size, "op '%s', worker %s, expires %s", a, b[0] ? b : "?", when);
	} else if ((e->kind == KUDU_NAME_RECORD || e->kind == KUDU_NAME_TEMP_RECORD) &&
		   e->status_err == 0) {
		log_escape(e->status.status_text, a, sizeof(a));
		isotime_format(e->status.received_ns, "-", when, sizeof(when));
		snprintf(out, size, "%s%s%s%s, received %s", kudu_state_name(e->status.state),
			 a[0] ? " (" : "", a, a[0] ? ")" : "", when);
	} else if (e->lock_err == 0 && e->kind >= KUDU_NAME_STATUS_LOCK &&
		   e->kind <= KUDU_NAME_HOOKS_LOCK) {
		log_escape(e->lock.operation, a, sizeof(a));
		isotime_format(e->lock.acquired_ns, "-", when, sizeof(when));
		snprintf(out, size, "last '%s' at %s", a, when);
	}
}

/* Report lines fit the portal's SSH console: at most this many columns,
 * a longer line wrapped at spaces. */
#define REPORT_COLUMNS 100

/* Writes each line of text wrapped at REPORT_COLUMNS, a continuation line
 * indented 4 more than its line. */
static void wrap_text(FILE *out, const char *text, size_t size)
{
	const char *stop = text + size;

	while (text < stop) {
		const char *nl = memchr(text, '\n', (size_t)(stop - text));
		size_t len = nl ? (size_t)(nl - text) : (size_t)(stop - text), lead = 0, room;

		while (lead < len && text[lead] == ' ')
			lead++;
		int hang = (int)(lead + 4 < 40 ? lead + 4 : 40);
		room = REPORT_COLUMNS;
		while (len > room) {
			size_t cut = room;

			while (cut > lead && text[cut] != ' ')
				cut--;
			/* A word longer than a line (a long path) is left whole,
			 * on a line of its own. */
			for (cut = cut > lead ? cut : room; cut < len && text[cut] != ' '; cut++)
				;
			if (cut >= len)
				break;
			fprintf(out, "%.*s\n%*s", (int)cut, text, hang, "");
			text += cut + 1;
			len -= cut + 1;
			room = REPORT_COLUMNS - (size_t)hang;
			lead = 0;
		}
		fprintf(out, "%.*s\n", (int)len, text);
		text += len + (nl ? 1 : 0);
	}
}

/* How many past cleanups report lists. */
#define REPORT_HISTORY_MAX 10

/* The session whose removed lock is back, unchanged (the restart that
 * followed did not end it), into session; false when none. */
static bool lock_came_back(const struct config *cfg, const struct site_snapshot *snap,
			   char *session, size_t session_size)
{
	struct kudu_info_lock removed;
	return archive_last_lock(cfg->archive_dir, &removed, session, session_size) == 0 &&
	       verify_same_lock(snap, &removed) != NULL;
}

/* The incident's claim (claim.h): who is at work on an incident now, and
 * its hook mark. A mark without an end whose maker does not hold the
 * incident any more is a restart that may have been lost (incident.h). */
struct report_claim {
	struct claim_view v;
	struct claim_mark mark;
	bool lost;
};

static void report_look(const struct config *cfg, struct report_claim *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->mark.err = -ENOENT;
	int dfd = incident_open_archive(cfg->archive_dir, false);
	if (dfd < 0) {
		rc->v.err = dfd;
		return;
	}
	claim_look(dfd, 0, NULL, &rc->v);
	if (rc->v.err == 0)
		claim_read_mark(dfd, rc->v.c.incident, &rc->mark);
	close(dfd);
	bool marked = rc->mark.err == 0 || rc->mark.err == -EINVAL;
	rc->lost = rc->v.err == 0 && marked && !rc->mark.ended &&
		   (rc->v.c.released || strcmp(rc->mark.instance, rc->v.c.instance) != 0);
}

static const char *hook_word(const struct report_claim *rc)
{
	if (rc->mark.err == -ENOENT)
		return "not started";
	return rc->mark.ended ? "ended" : "started";
}

static void print_claim_text(const struct config *cfg, int64_t now_ns, FILE *out)
{
	struct report_claim rc;
	char expires[40], age[16];

	report_look(cfg, &rc);
	fprintf(out, "\nincident claim (%s/%s-%llu): ", cfg->archive_dir, CLAIM_NAME,
		(unsigned long long)rc.v.top);
	if (rc.v.err == -ENOENT) {
		fprintf(out, "none\n");
		return;
	}
	if (rc.v.err < 0) {
		fprintf(out, "%s; not trusted, superseded by an agent once it saw it unchanged for "
			"[site] claim_expiry\n", claim_describe(&rc.v));
		return;
	}
	fmt_age(clock_ns_to_ms(clock_sub_ns(now_ns, rc.v.mtime_ns)), age, sizeof(age));
	isotime_format(rc.v.c.expires_ns, "-", expires, sizeof(expires));
	fprintf(out, "incident %s, owner %s, %s %s ago (%llu renewals), expires %s by the "
		"owner's clock; %u removal%s, site hook %s\n", rc.v.c.incident, rc.v.c.instance,
		rc.v.c.released ? "released" : "renewed", age, (unsigned long long)rc.v.c.seq,
		expires, rc.v.c.n_removed, rc.v.c.n_removed == 1 ? "" : "s", hook_word(&rc));
	if (rc.lost)
		fprintf(out, "warning: incident %s: its restart may have been lost: instance %s "
			"marked its hook started, no end was recorded, and it no longer holds the "
			"incident\n", rc.v.c.incident, rc.mark.err == 0 ? rc.mark.instance : "?");
}

static void print_claim_json(const struct config *cfg, FILE *out)
{
	struct report_claim rc;

	report_look(cfg, &rc);
	if (rc.v.err == -ENOENT) {
		fputs("null", out);
		return;
	}
	if (rc.v.err < 0) {
		fputs("{\"trusted\": false, \"why\": ", out);
		jsonw_string(out, claim_describe(&rc.v));
		fputs("}", out);
		return;
	}
	fputs("{\"trusted\": true, \"incident\": ", out);
	jsonw_string(out, rc.v.c.incident);
	fputs(", \"owner\": ", out);
	jsonw_string(out, rc.v.c.instance);
	fputs(", \"renewed\": ", out);
	jsonw_time(out, rc.v.mtime_ns);
	fputs(", \"expires\": ", out);
	jsonw_time(out, rc.v.c.expires_ns);
	fprintf(out, ", \"renewals\": %llu, \"removed\": %u, \"released\": %s, "
		"\"hook_started\": %s, \"restart_maybe_lost\": %s}",
		(unsigned long long)rc.v.c.seq, rc.v.c.n_removed, rc.v.c.released ? "true" : "false",
		rc.mark.err == -ENOENT ? "false" : "true", rc.lost ? "true" : "false");
}

/* stuck_after as this report judges with it, and the site's history of
 * silences behind it (silence.h). */
struct report_timing {
	struct silence_history h;
	uint64_t stuck_after_ms;   /* in effect: the configured value or auto's */
	bool is_auto;
	char stuck_label[48];      /* "15m" or "auto (6m30s)" */
	char auto_why[400];        /* auto only: why that value */
	char line[512];            /* "10 completed deployments; longest silence ..." */
};

/* Whether the site root looks like Kudu's tree on the share (sitekind.h). */
struct report_site {
	bool not_kudu;             /* neither locks/ nor deployments/: exit 1 */
	char problem[640];         /* why not, or why it is not on a share; "" */
};

/* Reads every completed record's log.log of snap (a one-shot command can
 * afford it) and works out stuck_after as the agent would. */
static void report_timing(const struct config *cfg, const struct site_snapshot *snap,
			  struct report_timing *t)
{
	struct silence_cache cache = { 0 };
	struct silence_auto au = { .stuck_after_ms = CONFIG_STUCK_AFTER_DEFAULT_MS,
				   .basis = SILENCE_UNREAD };
	char value[32];

	memset(t, 0, sizeof(*t));
	if (silence_cache_update(cfg->site_root, snap, NULL, SIZE_MAX, &cache) == 0)
		silence_cache_history(&cache, &t->h);
	silence_cache_free(&cache);
	t->is_auto = cfg->policy_stuck_after == CONFIG_DURATION_AUTO;
	t->stuck_after_ms = cfg->policy_stuck_after;
	if (t->is_auto) {
		silence_auto_compute(&t->h, cfg->policy_auto_floor, CONFIG_STUCK_AFTER_DEFAULT_MS, &au);
		silence_auto_explain(&t->h, &au, cfg->policy_auto_floor,
				     CONFIG_STUCK_AFTER_DEFAULT_MS, t->auto_why, sizeof(t->auto_why));
		t->stuck_after_ms = au.stuck_after_ms;
	}
	config_format_duration(t->stuck_after_ms, value, sizeof(value));
	snprintf(t->stuck_label, sizeof(t->stuck_label), t->is_auto ? "auto (%s)" : "%s", value);
	silence_report_line(&t->h, t->stuck_label, t->stuck_after_ms, t->line, sizeof(t->line));
}

static void print_timing_json(const struct report_timing *t, FILE *out)
{
	const struct silence_history *h = &t->h;

	fprintf(out, ",\n  \"timing\": {\"stuck_after_s\": %llu, \"stuck_after_auto\": %s, "
		"\"completed\": %zu, \"usable\": %zu, \"longest_silence_s\": ",
		(unsigned long long)(t->stuck_after_ms / 1000), t->is_auto ? "true" : "false",
		h->completed, h->usable);
	if (h->usable)
		fprintf(out, "%llu", (unsigned long long)(h->longest_gap_ms / 1000));
	else
		fputs("null", out);
	fputs(", \"longest_silence_in\": ", out);
	jsonw_string(out, h->longest_gap_id);
	fputs(", \"longest_deployment_s\": ", out);
	if (h->usable)
		fprintf(out, "%llu", (unsigned long long)(h->longest_run_ms / 1000));
	else
		fputs("null", out);
	fputs(", \"longest_deployment_in\": ", out);
	jsonw_string(out, h->longest_run_id);
	fputs(", \"auto\": ", out);
	if (t->is_auto)
		jsonw_string(out, t->auto_why);
	else
		fputs("null", out);
	fputs("}", out);
}

/* One entry of report --json's "entries", with what its kind carries. */
static void print_entry_json(const struct site_snapshot *snap, const struct site_entry *e,
			     const struct policy_entry *p, bool would_remove, FILE *out)
{
	char path[NAME_MAX + 32];

	site_entry_path(e, path, sizeof(path));
	fputs("\"path\": ", out);
	jsonw_string(out, path);
	fputs(", \"kind\": ", out);
	jsonw_string(out, kudu_name_describe(e->kind));
	fprintf(out, ", \"type\": \"%s\", \"age_s\": %lld, \"verdict\": ",
		fmt_type_name(e->st.type), (long long)(entry_age_ms(snap, e) / 1000));
	jsonw_string(out, policy_verdict_name(p->verdict));
	fprintf(out, ", \"would_remove\": %s, \"reason\": ", would_remove ? "true" : "false");
	jsonw_string(out, p->reason);
	if (e->kind == KUDU_NAME_LOCK_FOLDER && e->info_err == 0) {
		fputs(", \"lock\": {\"expiry\": ", out);
		jsonw_time(out, e->info.expiry_ns);
		fputs(", \"held_by_op\": ", out);
		jsonw_string(out, e->info.op);
		fputs(", \"held_by_worker\": ", out);
		jsonw_string(out, e->info.worker);
		fputs("}", out);
	}
	if (e->lock_err == 0 && e->kind >= KUDU_NAME_STATUS_LOCK && e->kind <= KUDU_NAME_HOOKS_LOCK) {
		fputs(", \"lock\": {\"operation\": ", out);
		jsonw_string(out, e->lock.operation);
		fputs(", \"acquired\": ", out);
		jsonw_time(out, e->lock.acquired_ns);
		fputs(", \"instance\": ", out);
		jsonw_string(out, e->lock.instance);
		fputs("}", out);
	}
	if ((e->kind == KUDU_NAME_RECORD || e->kind == KUDU_NAME_TEMP_RECORD) && e->status_err == 0) {
		fputs(", \"status\": {\"id\": ", out);
		jsonw_string(out, e->status.id);
		fputs(", \"state\": ", out);
		jsonw_string(out, kudu_state_name(e->status.state));
		fprintf(out, ", \"complete\": %s, \"received\": ",
			e->status.complete ? "true" : "false");
		jsonw_time(out, e->status.received_ns);
		fputs(", \"status_text\": ", out);
		jsonw_string(out, e->status.status_text);
		fputs("}", out);
	}
}

static void print_json(const struct config *cfg, const struct site_snapshot *snap,
		       const struct policy_decision *d, const struct policy_decision *w,
		       const struct report_timing *t, bool silent, const struct report_site *site,
		       FILE *out)
{
	/* "schema" changes only when a field changes meaning or goes away
	 * (README "report --json"); new fields may appear within a schema. */
	fprintf(out, "{\n  \"schema\": %d,\n  \"version\": \"%s\",\n  \"site_root\": ",
		REPORT_JSON_SCHEMA, LOCKWARDEN_VERSION);
	jsonw_string(out, cfg->site_root);
	fputs(",\n  \"scanned_at\": ", out);
	jsonw_time(out, snap->scanned_ns);
	fprintf(out, ",\n  \"readable\": %s,\n  \"claims_running\": %s,\n  \"stuck\": %s,\n"
		"  \"silent_by_file_times\": %s,\n  \"lock_expired\": %s,\n  \"activity_age_s\": ",
		d->blocked ? "false" : "true", d->claims_running ? "true" : "false",
		d->stuck ? "true" : "false", silent ? "true" : "false",
		d->lock_expired ? "true" : "false");
	if (d->activity_age_ms < 0)
		fputs("null", out);
	else
		fprintf(out, "%lld", (long long)(d->activity_age_ms / 1000));
	fputs(",\n  \"site_problem\": ", out);
	if (site->problem[0])
		jsonw_string(out, site->problem);
	else
		fputs("null", out);
	fputs(",\n  \"deployment_id\": ", out);
	jsonw_string(out, d->deployment_id);
	fprintf(out, ",\n  \"recurred\": %s,\n  \"step\": ", w->recurred ? "true" : "false");
	jsonw_string(out, policy_step_name(w->step));
	fputs(",\n  \"reason\": ", out);
	jsonw_string(out, d->reason);
	fputs(",\n  \"would_remove\": [", out);
	for (size_t i = 0; i < w->n_removals; i++) {
		char path[NAME_MAX + 32];
		site_entry_path(&snap->entries[w->removals[i]], path, sizeof(path));
		fputs(i ? ", " : "", out);
		jsonw_string(out, path);
	}
	fputs("],\n  \"entries\": [", out);
	for (size_t i = 0; i < snap->n_entries; i++) {
		fputs(i ? ",\n    {" : "\n    {", out);
		print_entry_json(snap, &snap->entries[i], &d->entries[i], w->entries[i].remove, out);
		fputs("}", out);
	}
	char session[NAME_MAX + 1];
	fprintf(out, "\n  ],\n  \"foreign_count\": %zu,\n  \"lock_came_back_after\": ",
		snap->n_foreign);
	if (lock_came_back(cfg, snap, session, sizeof(session)))
		jsonw_string(out, session);
	else
		fputs("null", out);
	print_timing_json(t, out);
	fputs(",\n  \"claim\": ", out);
	print_claim_json(cfg, out);
	fputs(",\n  \"history\": [\n", out);
	archive_list(cfg->archive_dir, out, true, REPORT_HISTORY_MAX);
	fputs("  ]\n}\n", out);
}

static void print_text(const struct config *cfg, const struct site_snapshot *snap,
		       const struct policy_decision *d, const struct policy_decision *w,
		       const struct report_timing *t, bool silent, const struct report_site *site,
		       FILE *out)
{
	char when[40];

	isotime_format(snap->scanned_ns, "-", when, sizeof(when));
	fprintf(out, "lockwarden report for %s at %s\n", cfg->site_root, when);
	if (snap->root_err) {
		fprintf(out, "cannot read the site root: %s\n", strerror(-snap->root_err));
		return;
	}
	if (snap->locks_err)
		fprintf(out, "locks/: %s\n", strerror(-snap->locks_err));
	if (snap->deployments_err)
		fprintf(out, "deployments/: %s\n", strerror(-snap->deployments_err));
	/* The ENTRY column fits the longest path (a git SHA record is 52); the
	 * reason and the details follow on lines of their own. */
	int width = 20;
	for (size_t i = 0; i < snap->n_entries; i++) {
		char path[NAME_MAX + 32], escaped[sizeof(path) * 4];
		site_entry_path(&snap->entries[i], path, sizeof(path));
		log_escape(path, escaped, sizeof(escaped));
		int len = (int)strlen(escaped);
		if (len > width)
			width = len < 52 ? len : 52;
	}
	fprintf(out, "\n%-*s %-22s %9s  %s\n", width, "ENTRY", "WHAT", "FILE AGE", "VERDICT, WHY");
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		const struct policy_entry *p = &d->entries[i];
		char path[NAME_MAX + 32], escaped[sizeof(path) * 4], age[16], details[600];
		site_entry_path(e, path, sizeof(path));
		log_escape(path, escaped, sizeof(escaped));
		fmt_age(entry_age_ms(snap, e), age, sizeof(age));
		fprintf(out, "%-*s %-22s %9s  %s\n    %s\n", width, escaped,
			kudu_name_describe(e->kind), age, policy_verdict_name(p->verdict), p->reason);
		entry_details(e, details, sizeof(details));
		if (details[0])
			fprintf(out, "    %s\n", details);
	}
	if (snap->n_entries == 0)
		fprintf(out, "(no entries)\n");
	if (snap->n_foreign > SITE_FOREIGN_KEPT)
		fprintf(out, "... and %zu more entries that are not Kudu's (counted, not listed)\n",
			snap->n_foreign - SITE_FOREIGN_KEPT);

	fprintf(out, "(FILE AGE: by the newest file time and this host's clock, for a person to "
		"read; never evidence that a deployment is dead)\n");
	if (site->not_kudu)
		fprintf(out, "\nNOT KUDU'S SITE: %s\n", site->problem);
	else
		fprintf(out, "\n%s: %s\n", d->blocked ? "UNREADABLE" : silent ? "SILENT BY FILE TIMES"
			: d->claims_running ? "RUNNING" : "OK", d->reason);
	if (site->problem[0] && !site->not_kudu)
		fprintf(out, "NOT ON THE SHARE? %s\n", site->problem);
	fprintf(out, "history: %s\n", t->line);
	if (t->is_auto)
		fprintf(out, "stuck_after auto: %s\n", t->auto_why);
	char session[NAME_MAX + 1];
	if (lock_came_back(cfg, snap, session, sizeof(session)))
		fprintf(out, "THE RESTART DID NOT END THE LOCK: locks/deployment is the very lock the "
			"cleanup %s removed (same holder and lockExpiry), so Kudu still holds it; restart "
			"the site with its Kudu (scm) container by hand, or wait for its lockExpiry.\n",
			session);
	if (w->n_removals) {
		fprintf(out, "once stuck_after (%s) has been watched unchanged, a cleanup would remove, "
			"in this order:\n", t->stuck_label);
		for (size_t i = 0; i < w->n_removals; i++) {
			char path[NAME_MAX + 32], escaped[sizeof(path) * 4];
			site_entry_path(&snap->entries[w->removals[i]], path, sizeof(path));
			log_escape(path, escaped, sizeof(escaped));
			fprintf(out, "  %s\n", escaped);
		}
		fprintf(out, "a report watches nothing: only the running agent, having itself seen none "
			"of this change for stuck_after, removes it.\n");
	}
	print_claim_text(cfg, snap->scanned_ns, out);
	fprintf(out, "\npast cleanups, newest first (from %s):\n", cfg->archive_dir);
	int listed = archive_list(cfg->archive_dir, out, false, REPORT_HISTORY_MAX);
	if (listed == 0 || listed == -ENOENT)
		fprintf(out, "  none\n");
	else if (listed < 0)
		fprintf(out, "  cannot read the archive: %s\n", strerror(-listed));
}

/* The ladder, as the running agent sees it: the previous cleanup from the
 * archive's notes, the incident in progress (its claim) left out. */
static void report_ladder(const struct config *cfg, struct policy_params *params)
{
	struct incident_notes notes;
	struct report_claim rc;

	report_look(cfg, &rc);
	const struct claim_view *v = &rc.v;
	incident_read_notes(cfg->archive_dir, NULL, &notes);
	incident_tie_notes(NULL, &notes); /* one look: every note counts as the agents' do */
	params->allow_full_clear = cfg->policy_allow_full_clear;
	params->escalate_within_ms = cfg->policy_escalate_within;
	params->previous_clear_known = incident_last_clear(&notes, v->err == 0 && !v->c.released ? v->c.incident : "",
							   &params->previous_clear_ns);
	incident_notes_free(&notes);
}

static int report_body(const struct config *cfg, bool json, FILE *out)
{
	struct site_snapshot snap = { 0 };
	struct policy_decision d, w;
	struct report_timing timing;
	struct policy_params params = { 0 };
	struct clock_now now;
	int rc;

	report_ladder(cfg, &params);
	clock_read(&now);
	rc = scan_site(cfg->site_root, &now, NULL, true, &snap);
	if (rc == 0) {
		report_timing(cfg, &snap, &timing);
		params.stuck_after_ms = timing.stuck_after_ms;
	}
	/* What the report says: nothing watched, so never stuck. */
	if (rc < 0 || policy_decide(&snap, NULL, &params, now.wall_ns, 0, &d) < 0) {
		fprintf(stderr, "lockwarden: out of memory\n");
		site_snapshot_free(&snap);
		return 1;
	}
	/* What a cleanup would take once the agent had watched this very tree
	 * unchanged for stuck_after: the same decision with that history. */
	struct policy_history watched = { .started = true };
	if (policy_decide(&snap, &watched, &params, now.wall_ns, params.stuck_after_ms, &w) < 0) {
		fprintf(stderr, "lockwarden: out of memory\n");
		policy_decision_free(&d);
		site_snapshot_free(&snap);
		return 1;
	}
	/* A hint for a person, and for a health check (exit 2): the file
	 * times say nothing was written for stuck_after. */
	bool silent = !d.blocked && d.claims_running && d.activity_age_ms >= 0 &&
		      (uint64_t)d.activity_age_ms >= params.stuck_after_ms;
	/* Not Kudu's tree is certain and fails the report; a local filesystem
	 * is a hint, said only (sitekind.h). */
	struct report_site site = { 0 };
	char fstype[64] = "";
	site.not_kudu = snap.root_err == 0 &&
			sitekind_not_kudu(cfg->site_root, snap.locks_err, snap.deployments_err,
					  site.problem, sizeof(site.problem));
	if (!site.not_kudu && snap.root_err == 0 && sitekind_fstype(snap.root.dev, fstype,
								      sizeof(fstype)) == 0)
		sitekind_not_shared(cfg->site_root, fstype, site.problem, sizeof(site.problem));
	if (json)
		print_json(cfg, &snap, &d, &w, &timing, silent, &site, out);
	else
		print_text(cfg, &snap, &d, &w, &timing, silent, &site, out);
	int code = d.blocked || site.not_kudu ? 1 : silent ? 2 : 0;
	policy_decision_free(&w);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
	return code;
}

/* The report runs in a child process while this one waits with a deadline.
 * On a share that does not answer (a storage failover) every call blocks in
 * the kernel, and a health check that hangs is worse than one that fails.
 * A process, not a thread: a thread blocked in a call the share's client
 * has already taken cannot be ended, and a process does not end before all
 * its threads have, so `report` would outlive its own limit by as long as
 * the client takes to give up (20 s and more through smbnetfs). The child
 * is left to end when the client answers; nothing the caller waits on (our
 * exit, our stdout or stderr) waits for it. */

/* In the child: the report's exit code as one byte, then its text, on
 * result_fd; its messages to stderr go through err_fd. */
static void report_child(const struct config *cfg, bool json, int result_fd, int err_fd)
{
	char *text = NULL;
	size_t len = 0;
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (null_fd < 0 || dup2(null_fd, STDOUT_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0)
		_exit(1);
	FILE *mem = open_memstream(&text, &len);
	unsigned char code = 1;
	if (!mem)
		fprintf(stderr, "lockwarden: out of memory\n");
	else
		code = (unsigned char)report_body(cfg, json, mem);
	if (mem)
		fclose(mem);
	fflush(stderr);
	if (write(result_fd, &code, 1) == 1) {
		for (size_t off = 0; off < len;) {
			ssize_t n = write(result_fd, text + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
	}
	_exit(0);
}

static uint64_t mono_ms(void)
{
	struct clock_now now;
	clock_read(&now);
	return now.mono_ms;
}

/* Reads what is there on fd into *buf (grown as needed): 1 read, 0 at the
 * end, -errno. */
static int drain(int fd, char **buf, size_t *len, size_t *cap)
{
	if (*cap - *len < 4096) {
		size_t want = *cap ? *cap * 2 : 8192;
		char *b = realloc(*buf, want);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = want;
	}
	ssize_t n = read(fd, *buf + *len, *cap - *len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	*len += (size_t)n;
	return n > 0;
}

int report_run(const struct config *cfg, bool json, FILE *out)
{
	uint64_t limit_ms = scan_hang_limit_ms(cfg->scan_rescan_interval);
	int result[2], err[2];
	char *res = NULL, *msg = NULL;
	size_t res_len = 0, res_cap = 0, msg_len = 0, msg_cap = 0;

	if (pipe2(result, O_CLOEXEC) < 0)
		goto cannot_start;
	if (pipe2(err, O_CLOEXEC) < 0) {
		close(result[0]);
		close(result[1]);
		goto cannot_start;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		close(result[0]);
		close(err[0]);
		report_child(cfg, json, result[1], err[1]);
	}
	close(result[1]);
	close(err[1]);
	if (pid < 0) {
		close(result[0]);
		close(err[0]);
		goto cannot_start;
	}

	/* Both pipes to their end (the child has written everything and
	 * exited, or died), or the deadline. */
	uint64_t deadline_ms = mono_ms() + limit_ms;
	struct pollfd fds[2] = { { .fd = result[0], .events = POLLIN },
				 { .fd = err[0], .events = POLLIN } };
	int open_fds = 2, r = 0;
	while (open_fds > 0 && r >= 0) {
		uint64_t now_ms = mono_ms();
		if (now_ms >= deadline_ms)
			break;
		uint64_t wait_ms = deadline_ms - now_ms;
		if (poll(fds, 2, wait_ms > INT32_MAX ? INT32_MAX : (int)wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		for (int i = 0; i < 2 && r >= 0; i++) {
			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			r = i == 0 ? drain(fds[i].fd, &res, &res_len, &res_cap) :
				     drain(fds[i].fd, &msg, &msg_len, &msg_cap);
			if (r == 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			}
			if (i == 1 && msg_len) {
				/* The child's messages as they come. */
				fwrite(msg, 1, msg_len, stderr);
				msg_len = 0;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	free(msg);
	if (open_fds > 0 || r < 0) {
		char limit[32];
		/* It may be blocked in the kernel and end only when the client
		 * gives up; SIGKILL ends it then, and nothing waits for it. It
		 * changed nothing and printed nothing to out. */
		kill(pid, SIGKILL);
		free(res);
		if (r < 0) {
			fprintf(stderr, "lockwarden: the report failed: %s\n", strerror(-r));
			return 1;
		}
		config_format_duration(limit_ms, limit, sizeof(limit));
		fprintf(stderr, "lockwarden: site root %s is not answering: no reply within %s; "
			"nothing judged\n", cfg->site_root, limit);
		return 1;
	}
	waitpid(pid, NULL, 0);
	int code = 1;
	if (res_len == 0)
		fprintf(stderr, "lockwarden: the report ended without a result\n");
	else {
		code = (unsigned char)res[0];
		if (json)
			fwrite(res + 1, 1, res_len - 1, out);
		else
			wrap_text(out, res + 1, res_len - 1);
	}
	free(res);
	return code;

cannot_start:
	fprintf(stderr, "lockwarden: cannot start the report: %s\n", strerror(errno));
	return 1;
}
