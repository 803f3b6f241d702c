/* policy_plan.h - a decision's content: a verdict per entry, the removals
 * in order, and the step they amount to; and step 2 of policy_decide, the
 * plan made from the assessed facts. Pure (policy.h says the rule). */
#ifndef LOCKWARDEN_POLICY_PLAN_H
#define LOCKWARDEN_POLICY_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "site.h"

enum policy_verdict {
	POLICY_LIVE,      /* part of a deployment that is running or may be */
	POLICY_STUCK,     /* part of a stuck deployment */
	POLICY_LEFTOVER,  /* a harmless leftover of a finished operation */
	POLICY_KEPT,      /* Kudu's, never removed (history, active, tools, ...) */
	POLICY_FOREIGN,   /* not Kudu's, or not of the shape Kudu makes */
	POLICY_CLEARED,   /* Kudu's deployment state, removed by the full clear only */
};
const char *policy_verdict_name(enum policy_verdict v); /* "live", ..., "not Kudu's" */

/* Which step of the manual procedure a cleanup takes. */
enum policy_step {
	POLICY_STEP_NONE,       /* nothing of Kudu's is removed */
	POLICY_STEP_CLEAR,      /* the usual step: locks, pending, temp-* */
	POLICY_STEP_FULL_CLEAR, /* the last step: deployments/ but tools/ and settings.xml */
};
/* "none", "clear", "full-clear": the archive note's words. */
const char *policy_step_name(enum policy_step s);
/* The hook's LOCKWARDEN_STEP: "full-clear" for the last step, "clear"
 * otherwise. */
const char *policy_step_hook_name(enum policy_step s);

struct policy_entry {
	enum policy_verdict verdict;
	bool remove;              /* removed by the cleanup this decision calls for */
	char reason[192];
};

struct policy_decision {
	bool blocked;             /* the site root is unusable: nothing may be removed */
	bool claims_running;
	/* The lock folder's lockExpiry has passed by this host's clock: shown,
	 * never acted on. A missing, null or unreadable lockExpiry is unknown,
	 * not expired. */
	bool lock_expired;
	bool stuck;               /* claims to run, watched unchanged for stuck_after */
	bool act;                 /* remove the entries marked remove, now */
	/* A stuck deployment found again within escalate_within of the
	 * previous cleanup (policy_params); the cleanup takes the last step
	 * only with allow_full_clear. */
	bool recurred;
	enum policy_step step;    /* what the removals amount to */
	int64_t since_clear_ms;   /* age of the previous cleanup when recurred, else -1 */
	/* The newest file time's age by this host's clock, for a person to
	 * read (report); never evidence. -1 when nothing tells. */
	int64_t activity_age_ms;
	uint64_t quiet_ms;        /* watched without a change (0 before the first scan) */
	/* How long until the decision could change with nothing new on disk:
	 * the agent re-scans then. UINT64_MAX: not by time alone. */
	uint64_t next_check_ms;
	/* The record that claims to run, else the unfinished record the
	 * cleanup removes (the newest by activity), "" when none. */
	char deployment_id[KUDU_TEXT_MAX];
	char reason[320];         /* one line, also the hook's LOCKWARDEN_REASON */

	struct policy_entry *entries;   /* one per snapshot entry, same order */
	size_t n_entries;
	size_t *removals;         /* indexes into entries, in removal order */
	size_t n_removals;
};

#define NO_INDEX ((size_t)-1)

/* The facts of one decision, from which the plan, the reason and the next
 * check follow. */
struct policy_assessment {
	const struct site_snapshot *snap;
	bool observing;           /* a history with at least one scan */
	bool blocked;             /* the tree cannot be seen whole */
	size_t lock_folder;       /* index of locks/deployment as a folder, or NO_INDEX */
	size_t newest;            /* index of the newest record with a readable status */
	bool newest_running;      /* that record is not finished */
	bool claims;              /* a deployment claims to be running (and not blocked) */
	bool lock_expired;        /* shown only (policy_decision) */
	int64_t activity_age_ms;  /* the newest file time's age, shown only; -1 when none */
	uint64_t quiet_ms;        /* watched without a change */
	bool stuck;               /* claims, watched unchanged for stuck_after */
	bool recurred;            /* stuck within escalate_within of the last cleanup */
	int64_t since_clear_ms;   /* the previous cleanup's age when recurred, else -1 */
	bool full_clear;          /* recurred and allow_full_clear: the last step */
	char age[32];             /* activity age, formatted */
};

/* The record's id (or its name) escaped for a message. */
void policy_record_label(const struct site_entry *e, char *out, size_t size);

/* Step 2 of a decision: a verdict per entry, the removals in order, act,
 * deployment_id. out->entries and out->removals are allocated. */
void policy_plan(const struct policy_assessment *a, struct policy_decision *out);

#endif
