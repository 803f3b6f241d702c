/* kudu.h - what Kudu's files in /home/site mean.
 *
 * Pure functions: each takes bytes already read by the caller and fills a
 * struct. None of them reads a clock, a file or the environment, so the unit
 * tests drive them with fixtures. The formats are described in
 * ../shared/KUDU.md; production builds of Kudu differ, so every parser
 * tolerates missing fields, extra fields and odd whitespace, and reports
 * -EINVAL only when the input is not the kind of file it claims to be.
 *
 * Convention: functions return 0 or a negative errno. Times are nanoseconds
 * since the Unix epoch (UTC), parsed by isotime.h; KUDU_TIME_NONE marks a
 * missing or null time. log.log is not parsed: it is an activity signal
 * only (its size and times), and production builds write it in several
 * shapes.
 */
#ifndef LOCKWARDEN_KUDU_H
#define LOCKWARDEN_KUDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "isotime.h"

#define KUDU_TIME_NONE ISOTIME_NONE
#define KUDU_TEXT_MAX 128

/* Kudu's own rule: the deployment lock expires this long after it is taken. */
#define KUDU_LOCK_LIFETIME_S 1500

/* locks/deployment/info.lock: one line of compact JSON. */
struct kudu_info_lock {
	int64_t expiry_ns;      /* lockExpiry; KUDU_TIME_NONE when null, empty or absent */
	bool has_pid;
	long long pid;          /* heldByPID: a process of Kudu's container */
	bool has_tid;
	long long tid;          /* heldByTID */
	char op[KUDU_TEXT_MAX];     /* heldByOp, "" when absent (may be truncated) */
	char worker[KUDU_TEXT_MAX]; /* heldByWorker: the holder's WEBSITE_INSTANCE_ID */
};
/* -EINVAL unless buf holds a JSON object; unknown members are skipped, a
 * member of the wrong type is treated as absent. */
int kudu_parse_info_lock(const char *buf, size_t len, struct kudu_info_lock *out);

/* locks/status.lock, deployments.lock, sshkey.lock, hooks.lock: indented JSON. */
struct kudu_file_lock {
	char operation[KUDU_TEXT_MAX]; /* OperationName */
	int64_t acquired_ns;           /* AcquiredDateTime, KUDU_TIME_NONE when absent */
	char instance[KUDU_TEXT_MAX];  /* InstanceId */
};
/* -EINVAL unless buf holds a JSON object. An empty file (a lock that was
 * opened but never written) is -ENODATA. StackTrace is skipped. */
int kudu_parse_file_lock(const char *buf, size_t len, struct kudu_file_lock *out);

enum kudu_state {
	KUDU_STATE_UNKNOWN = -1,
	KUDU_STATE_PENDING = 0,
	KUDU_STATE_BUILDING = 1,
	KUDU_STATE_DEPLOYING = 2,
	KUDU_STATE_FAILED = 3,
	KUDU_STATE_SUCCESS = 4,
};
const char *kudu_state_name(enum kudu_state state);

/* deployments/<id>/status.xml */
struct kudu_status {
	char id[KUDU_TEXT_MAX];
	enum kudu_state state;          /* <status>: a name or its number */
	char status_text[KUDU_TEXT_MAX];/* <statusText> */
	char author[KUDU_TEXT_MAX];
	char deployer[KUDU_TEXT_MAX];
	char message[KUDU_TEXT_MAX];    /* first line only */
	bool has_complete;
	bool complete;                  /* <complete>True</complete> */
	bool is_temp;                   /* <is_temp>True</is_temp> */
	int64_t received_ns;            /* receivedTime */
	int64_t start_ns;               /* startTime */
	int64_t end_ns;                 /* endTime */
};
/* Accepts a UTF-8 byte-order mark, the XML declaration, comments,
 * self-closing elements (<endTime />), the five predefined entities and
 * numeric character references. -EINVAL unless the root is <deployment>. */
int kudu_parse_status_xml(const char *buf, size_t len, struct kudu_status *out);

/* A record counts as finished when Kudu said so: complete True, or a
 * terminal state (Failed, Success). Everything else, including an unknown
 * state, counts as not finished. */
bool kudu_status_finished(const struct kudu_status *st);

/* What a name in locks/ or deployments/ is. */
enum kudu_name {
	KUDU_NAME_UNKNOWN = 0,      /* not Kudu's: reported, never removed */
	KUDU_NAME_LOCK_FOLDER,      /* locks/deployment */
	KUDU_NAME_STATUS_LOCK,      /* locks/status.lock */
	KUDU_NAME_DEPLOYMENTS_LOCK, /* locks/deployments.lock */
	KUDU_NAME_SSHKEY_LOCK,      /* locks/sshkey.lock */
	KUDU_NAME_HOOKS_LOCK,       /* locks/hooks.lock */
	KUDU_NAME_PENDING,          /* deployments/pending */
	KUDU_NAME_ACTIVE,           /* deployments/active */
	KUDU_NAME_TOOLS,            /* deployments/tools */
	KUDU_NAME_SETTINGS,         /* deployments/settings.xml */
	KUDU_NAME_TEMP_RECORD,      /* deployments/temp-XXXXXXXX: 8 hex digits */
	KUDU_NAME_RECORD,           /* deployments/<32-hex guid, 40- or 64-hex sha> */
	KUDU_NAME_TRASH,            /* a ".lockwarden-trash-*" folder of our own */
};
enum kudu_name kudu_classify_lock(const char *name);
enum kudu_name kudu_classify_deployment(const char *name);
const char *kudu_name_describe(enum kudu_name kind); /* "lock folder", "temp record", ... */

/* What lockwarden renames an entry to before deleting it, out of Kudu's
 * sight in one step: ".lockwarden-trash-<token>-<name>", where the token
 * (KUDU_TOKEN_MIN..KUDU_TOKEN_MAX lowercase hex digits) names the cleanup
 * that made it. The name alone proves nothing (anyone can make one): trash
 * is swept only when an archive note records its token as committed and
 * lists it. Every other name with the prefix is foreign. Defined once here
 * for the policy, removal and the archive. */
#define KUDU_TRASH_PREFIX ".lockwarden-trash-"
#define KUDU_KEPT_PREFIX ".lockwarden-kept-"
#define KUDU_TOKEN_MIN 8
#define KUDU_TOKEN_MAX 16
bool kudu_is_trash(const char *name);
/* The token of a trash name, copied to token (KUDU_TOKEN_MAX + 1 bytes);
 * false when name is not of the form above. */
bool kudu_trash_token(const char *name, char *token);
/* prefix + token + "-" + name, name cut so the result fits NAME_MAX. */
void kudu_token_name(const char *prefix, const char *token, const char *name, char *out,
		     size_t out_size);

#endif
