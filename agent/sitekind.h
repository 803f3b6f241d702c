/* sitekind.h - does the site root look like Kudu's tree on the share?
 *
 * On App Service /home is the share (SMB) that Kudu writes only where the
 * app setting WEBSITES_ENABLE_APP_SERVICE_STORAGE is not false; the portal
 * creates custom-container apps with false, and then /home is the
 * container's own folder: the agent would watch a tree Kudu never writes,
 * and protect nothing. Two signs, of different strength:
 *   - neither locks/ nor deployments/ under the root: certain, Kudu keeps
 *     both (the daemon warns, report exits 1);
 *   - the root's filesystem is no network or FUSE filesystem (by
 *     /proc/self/mountinfo): a hint only (the daemon warns, report says
 *     so and keeps its exit code). A test tree is a local folder, and a
 *     platform may one day mount /home another way; a health check that
 *     fails on a healthy site is worse than a warning.
 * Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_SITEKIND_H
#define LOCKWARDEN_SITEKIND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The app setting that makes /home the share, for every message. */
#define SITEKIND_SETTING "WEBSITES_ENABLE_APP_SERVICE_STORAGE"

/* cifs, smb3, nfs, nfs4 and every FUSE filesystem (fuse, fuse.*). */
bool sitekind_fstype_is_shared(const char *fstype);

/* The filesystem type of the mount whose device is major:minor, from the
 * text of a mountinfo file, into out; -ENOENT when none is (pure). */
int sitekind_fstype_in(const char *mountinfo, unsigned dev_major, unsigned dev_minor,
		       char *out, size_t size);

/* The same from /proc/self/mountinfo for dev (blocking, but procfs). */
int sitekind_fstype(dev_t dev, char *out, size_t size);

/* One line into why when neither locks/ nor deployments/ exist under root
 * (locks_err and deployments_err both -ENOENT). Returns whether so. */
bool sitekind_not_kudu(const char *root, int locks_err, int deployments_err, char *why,
		       size_t size);

/* One line into why when fstype (root's filesystem, "" when unknown) is
 * not the share's kind. Returns whether so. */
bool sitekind_not_shared(const char *root, const char *fstype, char *why, size_t size);

#endif
