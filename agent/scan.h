/* scan.h - reading the site tree into a site_snapshot.
 *
 * All I/O of judging happens here, relative to directory file descriptors
 * opened with O_NOFOLLOW: a symlink is recorded as a symlink, never followed.
 * Files are read with a size cap (SCAN_FILE_MAX); anything larger is not
 * Kudu's. The meaning of what was read is left to kudu.c and policy.c.
 * Blocking: the agent runs it off the loop, report runs it directly.
 */
#ifndef LOCKWARDEN_SCAN_H
#define LOCKWARDEN_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "site.h"

#define SCAN_FILE_MAX (256 * 1024)

/* Scans root into snap (which must be zeroed). Problems with the tree are
 * recorded in snap (root_err, locks_err, per-entry errors), not returned:
 * returns 0, or -ENOMEM. now (both clocks, read together when the scan
 * began) is stored as snap->scanned_ns and snap->scanned_mono_ms.
 *
 * prev (may be NULL) is the previous scan of the same root. On the share
 * every lstat is a network round trip, so a scan re-reads only what can
 * have changed since prev (snap->memo says what was done):
 *  - locks/ or deployments/ is listed again only when its folder's lstat
 *    changed (an entry created, removed or renamed changes the folder's
 *    mtime and ctime) or the last listing has not settled (it was taken
 *    less than SCAN_SETTLE_MS after that lstat was first seen: a change in
 *    the same tick of the share's clock leaves the same mtime);
 *  - in a kept listing, what Kudu rewrites in place is looked at every
 *    scan: the lock folder and its info.lock, the lock files, pending,
 *    active, and the folder, status.xml and log.log of every unfinished
 *    record, and everything inside it (a bounded walk, recordwalk.h: a
 *    write below the top level changes neither the folder nor those files);
 *  - a finished record changes again only when it is redeployed: its
 *    status.xml is rewritten in place, and every status.xml save bumps
 *    deployments/active. So finished records' status.xml are checked only
 *    when active's lstat changed (or has not settled);
 *  - with full, without prev, or SCAN_FULL_EVERY_MS after the last full
 *    scan, everything is re-checked (the previous rule: one lstat of each
 *    entry, and status.xml of each finished record). The agent acts only
 *    on a full scan.
 * A lock file, or a record whose lstats are all unchanged, is taken from
 * prev instead of being read and parsed again. */
#define SCAN_SETTLE_MS 2000ULL
#define SCAN_FULL_EVERY_MS (10 * 60 * 1000ULL)
int scan_site(const char *root, const struct clock_now *now, const struct site_snapshot *prev,
	      bool full, struct site_snapshot *snap);

/* How long a scan (or a cleanup) may take before the share counts as not
 * answering: max(3 x rescan_interval, 10 s). A share under load is slow
 * for a moment; one that misses three rescans in a row is out. */
#define SCAN_HANG_MIN_MS 10000ULL
uint64_t scan_hang_limit_ms(uint64_t rescan_interval_ms);

#endif
