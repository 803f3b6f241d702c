/* kudu.c - what Kudu's files in /home/site mean: info.lock, the file
 * locks, status.xml and the names in locks/ and deployments/.
 *
 * The scanners underneath (json.c, xml.c, isotime.c, text.c) know nothing of
 * Kudu; this file knows which members and elements matter and what a missing
 * or odd one means. Pure: nothing reads a clock, a file or the environment.
 */
#include "kudu.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "json.h"
#include "text.h"
#include "xml.h"

/* ---- info.lock ----------------------------------------------------------- */

static int info_lock_member(struct json *j, unsigned depth, const char *key, void *ctx)
{
	struct kudu_info_lock *info = ctx;

	if (json_key_is(key, "lockExpiry")) {
		char when[64];
		struct text t;
		int r;

		/* Kudu treats a null or empty lockExpiry as a lock not held, so
		 * those are ISOTIME_NONE. Anything else that is not a time
		 * (another type, a string we cannot parse or that is too long)
		 * refuses the whole file: read as "no expiry" it would make a
		 * lock we do not understand look free, the dangerous way round. */
		if (json_peek(j) == JSON_NULL) {
			info->expiry_ns = ISOTIME_NONE;
			return json_literal(j, "null");
		}
		if (json_peek(j) != JSON_STRING)
			return -EINVAL;
		text_init(&t, when, sizeof(when));
		r = json_string(j, &t);
		if (r < 0)
			return r;
		if (t.truncated)
			return -EINVAL;
		if (t.len == 0) {
			info->expiry_ns = ISOTIME_NONE;
			return 0;
		}
		return isotime_parse(when, t.len, &info->expiry_ns) < 0 ? -EINVAL : 0;
	}
	if (json_key_is(key, "heldByPID"))
		return json_member_integer(j, depth, &info->has_pid, &info->pid);
	if (json_key_is(key, "heldByTID"))
		return json_member_integer(j, depth, &info->has_tid, &info->tid);
	if (json_key_is(key, "heldByOp"))
		return json_member_string(j, depth, info->op, sizeof(info->op));
	if (json_key_is(key, "heldByWorker"))
		return json_member_string(j, depth, info->worker, sizeof(info->worker));
	return json_skip_value(j, depth);
}

static void info_lock_clear(struct kudu_info_lock *info)
{
	memset(info, 0, sizeof(*info));
	info->expiry_ns = ISOTIME_NONE;
}

/* Parsed into a copy so that a refused file leaves *out as "nothing known"
 * rather than half filled. An empty (or whitespace-only) file is -ENODATA,
 * as for the file locks: it is what a read between Kudu's create and write
 * sees, which is worth telling apart from a file that is not JSON. */
int kudu_parse_info_lock(const char *buf, size_t len, struct kudu_info_lock *out)
{
	struct kudu_info_lock info;
	int r;

	info_lock_clear(out);
	info_lock_clear(&info);
	r = json_document(buf, len, info_lock_member, &info);
	if (r < 0)
		return r;
	*out = info;
	return 0;
}


/* ---- status.lock and the other file locks ------------------------------- */

static int file_lock_member(struct json *j, unsigned depth, const char *key, void *ctx)
{
	struct kudu_file_lock *lock = ctx;

	if (json_key_is(key, "OperationName"))
		return json_member_string(j, depth, lock->operation, sizeof(lock->operation));
	if (json_key_is(key, "InstanceId"))
		return json_member_string(j, depth, lock->instance, sizeof(lock->instance));
	if (json_key_is(key, "AcquiredDateTime")) {
		char when[64];
		struct text t;
		int r;

		/* Only informational: a file lock's existence means nothing on
		 * Linux, so an odd time (or another type) is just "unknown". */
		lock->acquired_ns = ISOTIME_NONE;
		if (json_peek(j) != JSON_STRING)
			return json_skip_value(j, depth);
		text_init(&t, when, sizeof(when));
		r = json_string(j, &t);
		if (r < 0)
			return r;
		if (t.truncated || isotime_parse(when, t.len, &lock->acquired_ns) < 0)
			lock->acquired_ns = ISOTIME_NONE;
		return 0;
	}
	return json_skip_value(j, depth);
}

static void file_lock_clear(struct kudu_file_lock *lock)
{
	memset(lock, 0, sizeof(*lock));
	lock->acquired_ns = ISOTIME_NONE;
}

int kudu_parse_file_lock(const char *buf, size_t len, struct kudu_file_lock *out)
{
	struct kudu_file_lock lock;
	int r;

	file_lock_clear(out);
	file_lock_clear(&lock);
	r = json_document(buf, len, file_lock_member, &lock);
	if (r < 0)
		return r;
	*out = lock;
	return 0;
}


/* ---- status.xml ------------------------------------------------------ */

const char *kudu_state_name(enum kudu_state state)
{
	switch (state) {
	case KUDU_STATE_PENDING:
		return "Pending";
	case KUDU_STATE_BUILDING:
		return "Building";
	case KUDU_STATE_DEPLOYING:
		return "Deploying";
	case KUDU_STATE_FAILED:
		return "Failed";
	case KUDU_STATE_SUCCESS:
		return "Success";
	case KUDU_STATE_UNKNOWN:
		break;
	}
	return "Unknown";
}

enum status_field_kind {
	FIELD_TEXT,        /* a string kept as is, trimmed */
	FIELD_FIRST_LINE,  /* a string of which only the first line is kept */
	FIELD_STATE,
	FIELD_COMPLETE,
	FIELD_IS_TEMP,
	FIELD_TIME,
};

static const struct status_field {
	const char *name;
	enum status_field_kind kind;
	size_t offset;
} status_fields[] = {
	{ "id", FIELD_TEXT, offsetof(struct kudu_status, id) },
	{ "author", FIELD_TEXT, offsetof(struct kudu_status, author) },
	{ "deployer", FIELD_TEXT, offsetof(struct kudu_status, deployer) },
	{ "message", FIELD_FIRST_LINE, offsetof(struct kudu_status, message) },
	{ "status", FIELD_STATE, offsetof(struct kudu_status, state) },
	{ "statusText", FIELD_TEXT, offsetof(struct kudu_status, status_text) },
	{ "receivedTime", FIELD_TIME, offsetof(struct kudu_status, received_ns) },
	{ "startTime", FIELD_TIME, offsetof(struct kudu_status, start_ns) },
	{ "endTime", FIELD_TIME, offsetof(struct kudu_status, end_ns) },
	{ "complete", FIELD_COMPLETE, offsetof(struct kudu_status, complete) },
	{ "is_temp", FIELD_IS_TEMP, offsetof(struct kudu_status, is_temp) },
};

static enum kudu_state parse_state(const char *s, size_t len)
{
	static const enum kudu_state states[] = {
		KUDU_STATE_PENDING, KUDU_STATE_BUILDING, KUDU_STATE_DEPLOYING,
		KUDU_STATE_FAILED, KUDU_STATE_SUCCESS,
	};

	/* The enum's numeric value, as some serializers write it. */
	if (len == 1 && s[0] >= '0' && s[0] <= '4')
		return states[s[0] - '0'];
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (text_equal_nocase(s, len, kudu_state_name(states[i])))
			return states[i];
	return KUDU_STATE_UNKNOWN;
}

/* "True"/"False" in any case, or "1"/"0". -EINVAL for anything else. */
static int parse_bool(const char *s, size_t len, bool *out)
{
	if (text_equal_nocase(s, len, "true") || text_equal_exact(s, len, "1")) {
		*out = true;
		return 0;
	}
	if (text_equal_nocase(s, len, "false") || text_equal_exact(s, len, "0")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

static void status_apply(const struct status_field *f, struct text *t, struct kudu_status *st)
{
	char *field = (char *)st + f->offset;
	bool b;

	text_trim_end(t);
	switch (f->kind) {
	case FIELD_TEXT:
		break;
	case FIELD_FIRST_LINE:
		t->len = strcspn(t->buf, "\r\n");
		t->buf[t->len] = '\0';
		text_trim_end(t);
		break;
	case FIELD_STATE:
		st->state = t->truncated ? KUDU_STATE_UNKNOWN : parse_state(t->buf, t->len);
		break;
	case FIELD_COMPLETE:
		st->has_complete = !t->truncated && parse_bool(t->buf, t->len, &b) == 0;
		st->complete = st->has_complete && b;
		break;
	case FIELD_IS_TEMP:
		st->is_temp = !t->truncated && parse_bool(t->buf, t->len, &b) == 0 && b;
		break;
	case FIELD_TIME: {
		int64_t *when = (int64_t *)(void *)field;

		/* Times in status.xml are only informational (activity is judged
		 * from mtimes), so an empty or odd one is just "unknown". */
		if (t->truncated || isotime_parse(t->buf, t->len, when) < 0)
			*when = ISOTIME_NONE;
		break;
	}
	}
}

static int status_child(struct xml *x, unsigned depth, const char *name, size_t name_len,
			bool empty, void *ctx)
{
	struct kudu_status *st = ctx;
	const struct status_field *f = NULL;
	char value[64];
	struct text t;
	int r;

	/* XML names are case-sensitive, and Kudu's are fixed. */
	for (size_t i = 0; i < sizeof(status_fields) / sizeof(status_fields[0]); i++) {
		if (text_equal_exact(name, name_len, status_fields[i].name)) {
			f = &status_fields[i];
			break;
		}
	}
	if (!f)
		return xml_skip_child(x, depth, name, name_len, empty, NULL);

	if (f->kind == FIELD_TEXT || f->kind == FIELD_FIRST_LINE)
		text_init(&t, (char *)st + f->offset, KUDU_TEXT_MAX);
	else
		text_init(&t, value, sizeof(value));
	t.skip_leading_space = true;
	if (!empty) {
		r = xml_content(x, depth, name, name_len, &t, NULL, NULL);
		if (r < 0)
			return r;
	}
	status_apply(f, &t, st);
	return 0;
}

static void status_clear(struct kudu_status *st)
{
	memset(st, 0, sizeof(*st));
	st->state = KUDU_STATE_UNKNOWN;
	st->received_ns = ISOTIME_NONE;
	st->start_ns = ISOTIME_NONE;
	st->end_ns = ISOTIME_NONE;
}

int kudu_parse_status_xml(const char *buf, size_t len, struct kudu_status *out)
{
	struct kudu_status st;
	int r;

	status_clear(out);
	status_clear(&st);
	r = xml_document(buf, len, "deployment", status_child, &st);
	if (r < 0)
		return r;
	*out = st;
	return 0;
}

bool kudu_status_finished(const struct kudu_status *st)
{
	return (st->has_complete && st->complete) || st->state == KUDU_STATE_FAILED ||
	       st->state == KUDU_STATE_SUCCESS;
}

/* ---- Names in locks/ and deployments/ ---------------------------------- */

bool kudu_is_trash(const char *name)
{
	return strncmp(name, KUDU_TRASH_PREFIX, strlen(KUDU_TRASH_PREFIX)) == 0;
}

bool kudu_trash_token(const char *name, char *token)
{
	size_t plen = strlen(KUDU_TRASH_PREFIX), n = 0;

	if (!kudu_is_trash(name))
		return false;
	name += plen;
	while (n <= KUDU_TOKEN_MAX && ((name[n] >= '0' && name[n] <= '9') ||
				       (name[n] >= 'a' && name[n] <= 'f')))
		n++;
	if (n < KUDU_TOKEN_MIN || n > KUDU_TOKEN_MAX || name[n] != '-' || name[n + 1] == '\0')
		return false;
	memcpy(token, name, n);
	token[n] = '\0';
	return true;
}

void kudu_token_name(const char *prefix, const char *token, const char *name, char *out,
		     size_t out_size)
{
	size_t fixed = strlen(prefix) + strlen(token) + 1;
	int room = fixed < NAME_MAX ? (int)(NAME_MAX - fixed) : 0;

	snprintf(out, out_size, "%s%s-%.*s", prefix, token, room, name);
}

/* Names are compared byte for byte: the share is case-sensitive for Linux
 * Kudu, so "Status.lock" is not Kudu's. */
enum kudu_name kudu_classify_lock(const char *name)
{
	static const struct {
		const char *name;
		enum kudu_name kind;
	} locks[] = {
		{ "deployment", KUDU_NAME_LOCK_FOLDER },
		{ "status.lock", KUDU_NAME_STATUS_LOCK },
		{ "deployments.lock", KUDU_NAME_DEPLOYMENTS_LOCK },
		{ "sshkey.lock", KUDU_NAME_SSHKEY_LOCK },
		{ "hooks.lock", KUDU_NAME_HOOKS_LOCK },
	};

	if (!name)
		return KUDU_NAME_UNKNOWN;
	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++)
		if (strcmp(name, locks[i].name) == 0)
			return locks[i].kind;
	return kudu_is_trash(name) ? KUDU_NAME_TRASH : KUDU_NAME_UNKNOWN;
}

/* Only the shapes Kudu makes count as records: "temp-" and 8 hex digits,
 * a 32-hex GUID (zip deploy), a 40-hex git SHA-1 or a 64-hex SHA-256. Any
 * other name is not Kudu's, so it is reported and never removed. */
enum kudu_name kudu_classify_deployment(const char *name)
{
	static const struct {
		const char *name;
		enum kudu_name kind;
	} fixed[] = {
		{ "pending", KUDU_NAME_PENDING },
		{ "active", KUDU_NAME_ACTIVE },
		{ "tools", KUDU_NAME_TOOLS },
		{ "settings.xml", KUDU_NAME_SETTINGS },
	};
	size_t len;

	if (!name)
		return KUDU_NAME_UNKNOWN;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(name, fixed[i].name) == 0)
			return fixed[i].kind;
	if (kudu_is_trash(name))
		return KUDU_NAME_TRASH;
	len = strlen(name);
	if (len == 13 && strncmp(name, "temp-", 5) == 0 && text_all_hex(name + 5, 8))
		return KUDU_NAME_TEMP_RECORD;
	if ((len == 32 || len == 40 || len == 64) && text_all_hex(name, len))
		return KUDU_NAME_RECORD;
	return KUDU_NAME_UNKNOWN;
}

const char *kudu_name_describe(enum kudu_name kind)
{
	switch (kind) {
	case KUDU_NAME_LOCK_FOLDER:
		return "lock folder";
	case KUDU_NAME_STATUS_LOCK:
		return "status lock file";
	case KUDU_NAME_DEPLOYMENTS_LOCK:
		return "deployments lock file";
	case KUDU_NAME_SSHKEY_LOCK:
		return "ssh key lock file";
	case KUDU_NAME_HOOKS_LOCK:
		return "hooks lock file";
	case KUDU_NAME_PENDING:
		return "pending marker";
	case KUDU_NAME_ACTIVE:
		return "active id";
	case KUDU_NAME_TOOLS:
		return "tools folder";
	case KUDU_NAME_SETTINGS:
		return "settings file";
	case KUDU_NAME_TEMP_RECORD:
		return "temp record";
	case KUDU_NAME_RECORD:
		return "deployment record";
	case KUDU_NAME_TRASH:
		return "lockwarden trash";
	case KUDU_NAME_UNKNOWN:
		break;
	}
	return "unknown";
}

