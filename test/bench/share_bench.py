"""share_bench.py - the idle figures on an SMB share (issue 22), beside
bindfs and a local folder, from one run (bench.py's part "share").

On each kind of tree the same site (300 finished deployments, the archive
folder beside it on the same share, as /home/site and
/home/LogFiles/lockwarden on App Service), everyone at the same pace:

  - lockwarden with its defaults except rescan_interval = the pace: its CPU,
    and the CPU the share costs meanwhile (smbd and this host's smbnetfs,
    or the bindfs daemon), both per minute; and the calls it makes on the
    share per rescan (strace -f -y: metadata calls on paths under the share),
    with where they go;
  - a `find -mmin` loop at the same pace (bench.py's FIND_LOOP): the same.

The ratio is (find loop + what the share spent for it) over (lockwarden +
what the share spent for it). Goal (issue 22): <= 8 calls per idle rescan
on the share, and >= 10x cheaper than the find loop.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import bench

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

CALLS_GOAL = 8
RATIO_GOAL = 10.0
PACE_S = 5


def pids_in_session(sid):
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[3]) == sid:
                        found.append(int(p))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


def cpu_s(pids):
    total = 0.0
    for pid in pids:
        try:
            total += bench.proc_cpu_s(pid, children=False)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


class Local:
    kind = "local folder"

    def __init__(self, work):
        self.root = self.local = os.path.join(work, "local")
        os.makedirs(self.root)

    def server_pids(self):
        return []

    def stop(self):
        pass


class Bind:
    kind = "bindfs"

    def __init__(self, work):
        self.local = os.path.join(work, "bind-backing")
        self.root = os.path.join(work, "bind-mount")
        os.makedirs(self.local)
        os.makedirs(self.root)
        self.proc = subprocess.Popen(["bindfs", "-f", "--no-allow-other", self.local, self.root],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.root) and time.monotonic() < deadline:
            time.sleep(0.05)

    def server_pids(self):
        return [self.proc.pid]

    def stop(self):
        fm = shutil.which("fusermount3") or shutil.which("fusermount")
        subprocess.run([fm, "-u", "-z", self.root], capture_output=True)
        self.proc.terminate()
        self.proc.wait(10)


class Samba:
    kind = "Samba (smbnetfs)"

    def __init__(self, work):
        import smbshare
        self.site = smbshare.SambaSite(os.path.join(work, "samba"))
        why = self.site.start()
        if why:
            self.site.stop()
            raise RuntimeError(why)
        self.root = str(self.site.here)
        self.local = str(self.site.local)

    def server_pids(self):
        return (pids_in_session(self.site.server.proc.pid) +
                pids_in_session(self.site.here_mount.proc.pid))

    def stop(self):
        self.site.stop()


def where_calls(strace_path, root):
    """{"call folder": count} of the metadata calls on the tree, the folder
    named relative to the tree (site/deployments, LogFiles/lockwarden...)."""
    where = {}
    try:
        f = open(strace_path, errors="replace")
    except FileNotFoundError:
        return where
    with f:
        for line in f:
            fields = line.split(None, 1)
            call = fields[-1].split("(", 1)[0] if fields else ""
            if call not in bench.METADATA_SYSCALLS or root not in line:
                continue
            # The path ends at the quote of a name argument or at the ">"
            # strace -y closes a descriptor's path with.
            rest = re.split(r'[">]', line.split(root, 1)[1], 1)[0].strip("/")
            folder = "/".join(rest.split("/")[:2]) or "(the share's top)"
            key = "%s %s" % (call, folder)
            where[key] = where.get(key, 0) + 1
    return where


def measure(b, tree, window_s):
    site, local_site = os.path.join(tree.root, "site"), os.path.join(tree.local, "site")
    bench.make_history_site(local_site, bench.META_RECORDS, seed=322)
    archive = os.path.join(tree.root, "LogFiles", "lockwarden")
    os.makedirs(os.path.join(tree.local, "LogFiles", "lockwarden"), exist_ok=True)
    scale = 60.0 / window_s
    out = {}

    agent = bench.Agent(b, "share-%s-%d" % (tree.kind.split()[0], b.serial), site,
                        {"scan.rescan_interval": "%ds" % PACE_S, "archive.dir": archive},
                        notify=False, verbose=True)
    b.serial += 1
    try:
        agent.wait_ready(30)
        deadline = time.monotonic() + 4 * PACE_S
        while bench.scans_logged(agent) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        s0, a0 = cpu_s(tree.server_pids()), bench.cpu_ns(agent.pid)[1]
        time.sleep(window_s)
        s1, a1 = cpu_s(tree.server_pids()), bench.cpu_ns(agent.pid)[1]
        first = bench.scans_logged(agent)
        strace_out = os.path.join(agent.dir, "share.strace")
        calls = bench.share_calls(agent.pid, window_s, strace_out, tree.root)
        scans = bench.scans_logged(agent) - first
    finally:
        agent.stop()
    out["lw_cpu"] = (a1 - a0) / bench.MS * scale
    out["lw_server"] = max(0.0, s1 - s0) * 1000 * scale
    out["lw_calls"] = calls / scans if calls is not None and scans > 0 else None
    out["where"] = {k: v / scans for k, v in where_calls(strace_out, tree.root).items()} \
        if scans > 0 else {}

    loop = os.path.join(b.work, "share-find-loop.sh")
    bench.write(loop, bench.FIND_LOOP)
    proc = subprocess.Popen(["/bin/sh", loop, site, str(PACE_S)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        time.sleep(1.0)  # a start-up allowance, not a measurement
        s0, f0 = cpu_s(tree.server_pids()), bench.proc_cpu_s(proc.pid)
        time.sleep(window_s)
        s1, f1 = cpu_s(tree.server_pids()), bench.proc_cpu_s(proc.pid)
        calls = bench.share_calls(proc.pid, window_s, os.path.join(b.work, "find.strace"),
                                  tree.root)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    out["find_cpu"] = (f1 - f0) * 1000 * scale
    out["find_server"] = max(0.0, s1 - s0) * 1000 * scale
    out["find_calls"] = (calls or 0) * PACE_S / window_s  # per pass
    return out


def bench_share(b):
    window_s = 20 if b.args.quick else 60
    print("share: %d finished deployments and the archive on the tree, everyone every %d s, "
          "%d s idle windows" % (bench.META_RECORDS, PACE_S, window_s))
    if not shutil.which("strace"):
        print("  skipped: strace is not installed")
        b.row("share", "skipped (no strace)")
        return
    import smbshare
    kinds = [Local, Bind, Samba]
    why = smbshare.unavailable_reason()
    if why:
        print("  Samba skipped: %s" % why)
        kinds.remove(Samba)
    for make in kinds:
        try:
            tree = make(os.path.join(b.work, "share-%d" % b.serial))
        except RuntimeError as e:
            print("  %s skipped: %s" % (make.kind, e))
            continue
        b.serial += 1
        try:
            m = measure(b, tree, window_s)
        finally:
            tree.stop()
        lw_total = m["lw_cpu"] + m["lw_server"]
        calls = m["lw_calls"]
        print("  %-18s lockwarden %6.1f ms CPU/min + share %6.1f ms; %s calls on the tree per "
              "rescan" % (tree.kind, m["lw_cpu"], m["lw_server"],
                          "?" if calls is None else "%.1f" % calls))
        if m["where"]:
            print("  %-18s   per rescan: %s" % ("", ", ".join(
                "%s %.1f" % kv for kv in sorted(m["where"].items(), key=lambda kv: -kv[1]))))
        b.row("share %s: calls per idle rescan" % tree.kind,
              "?" if calls is None else "%.1f" % calls, "<= %d" % CALLS_GOAL,
              "" if calls is None else bench.verdict(calls, CALLS_GOAL))
        b.row("share %s: lockwarden + share CPU per minute" % tree.kind,
              "%.1f + %.1f ms" % (m["lw_cpu"], m["lw_server"]))
        find_total = m["find_cpu"] + m["find_server"]
        ratio = find_total / lw_total if lw_total > 0 else float("inf")
        print("  %-18s find loop  %6.1f ms CPU/min + share %6.1f ms; %.0f calls per pass; "
              "x%.1f lockwarden's" % ("", m["find_cpu"], m["find_server"], m["find_calls"],
                                      ratio))
        b.row("share %s: find loop + share CPU per minute" % tree.kind,
              "%.1f + %.1f ms" % (m["find_cpu"], m["find_server"]))
        b.row("share %s: find loop / lockwarden" % tree.kind, "x%.1f" % ratio,
              ">= x%.0f" % RATIO_GOAL, "within" if ratio >= RATIO_GOAL else "OVER")
