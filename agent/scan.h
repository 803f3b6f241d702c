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

#include "clock.h"
#include "site.h"

#define SCAN_FILE_MAX (256 * 1024)

/* Scans root into snap (which must be zeroed). Problems with the tree are
 * recorded in snap (root_err, locks_err, per-entry errors), not returned:
 * returns 0, or -ENOMEM. now (both clocks, read together when the scan
 * began) is stored as snap->scanned_ns and snap->scanned_mono_ms.
 *
 * prev (may be NULL) is the previous scan of the same root. A finished
 * record whose folder and status.xml still have the same inode, mtime and
 * size, and a lock file that is unchanged, are taken from it instead of
 * being read and parsed again: one stat instead of a dozen system calls per
 * record, on a share where each is a network round trip. Unfinished
 * records, the activity signals, are always read afresh. */
/* How long a scan (or a cleanup) may take before the share counts as not
 * answering: max(3 x rescan_interval, 10 s). A share under load is slow
 * for a moment; one that misses three rescans in a row is out. */
#define SCAN_HANG_MIN_MS 10000ULL
uint64_t scan_hang_limit_ms(uint64_t rescan_interval_ms);

int scan_site(const char *root, const struct clock_now *now, const struct site_snapshot *prev,
	      struct site_snapshot *snap);

#endif
