"""One Kudu process, for the Kudu stand-in (kudu_standin.py): what it
remembers (the deployment lock's cached expiry), the deployments it runs,
and the rules by which it answers and writes the site tree, each citing the
KuduLite source file (repository Azure-App-Service/KuduLite) it follows.
A restart replaces the whole object, so its memory is lost."""

import json
import os
import random
import shutil
import threading
import time
import uuid
from pathlib import Path

from kudu_records import Record, _write, kudu_time, parse_kudu_time

# Kudu.Core/Resources (Resources.Error_DeploymentInProgress), the body of
# the 409 that Kudu.Services/Deployment/PushDeploymentController.cs returns
# for FetchDeploymentRequestResult.ConflictDeploymentInProgress.
MSG_IN_PROGRESS = ("There is a deployment currently in progress. "
                   "Please try again when it completes.")

# Kudu.Core/AllSafeLinuxLock.cs: defaultLockTimeout = 1500 (seconds); the
# expiry is written once when the lock is taken and never renewed.
LOCK_TIMEOUT_S = 1500.0

# Kudu.Core/Deployment/DeploymentManager.cs: MaxSuccessDeploymentResults.
MAX_SUCCESS_RESULTS = 10

# KUDU.md ("Kudu's own housekeeping"): an incomplete record is marked Failed
# on a GET only while the lock is free and more than 180 s after it was
# received. The DeploymentManager.cs version read for this stand-in marks it
# at once; newer builds wait, so the wait is a parameter.
VERIFY_GRACE_S = 180.0

# The operation name FetchDeploymentManager.PerformBackgroundDeployment
# (Kudu.Core/Deployment/FetchDeploymentManager.cs) takes the lock with.
OP_DEPLOY = "Performing continuous deployment"


class Died(Exception):
    """Raised inside a deployment thread when its fault fires: the thread
    ends with nothing released, as when the worker doing it is gone."""


class KuduProcess:
    """What one running Kudu process knows: the in-memory lock expiry, the
    deployments it runs. A restart replaces the whole object."""

    def __init__(self, site_root, build_s=1.0, step_s=0.25, memory="source",
                 lock_timeout_s=LOCK_TIMEOUT_S, verify_grace_s=VERIFY_GRACE_S,
                 instance_id="a1b2c3d4e5f6", generation=1, log=None, note=None):
        self.root = Path(site_root)
        self.locks = self.root / "locks"
        self.deployments = self.root / "deployments"
        self.build_s = build_s
        self.step_s = step_s
        self.memory = memory
        self.lock_timeout_s = lock_timeout_s
        self.verify_grace_s = verify_grace_s
        self.instance_id = instance_id
        self.generation = generation
        self.log = log or (lambda msg: None)
        self.note = note or (lambda what: None)
        self.mutex = threading.RLock()
        # Kudu.Core/AllSafeLinuxLock.cs: the static LockExpiry, a cache of
        # the expiry read from info.lock. While it lies in the future the
        # process answers "held" without reading the file again.
        self.cached_expiry = 0.0
        # The users' report (KUDU.md, microsoft/vscode-azureappservice#1691):
        # deleting info.lock did not end the 409s. With memory="reported"
        # the process believes it holds the lock it took until it releases
        # it or restarts, whatever the files say.
        self.believed_until = 0.0
        self.alive = True
        self.fault = None           # "die" or "hang", for the next step
        self.hang_release = threading.Event()
        self.running = []           # deployment ids being deployed
        self.conflicts = 0
        self.started = 0
        self.succeeded = 0
        self.died = 0
        self.start_cleanup()

    # ---------------------------------------------------------- start, stop

    def start_cleanup(self):
        """On start Kudu deletes locks/deployment (KUDU.md: "deletes the
        folder at Kudu start and shutdown"; the call was not found in the
        stored KuduLite source)."""
        shutil.rmtree(self.locks / "deployment", ignore_errors=True)
        self.locks.mkdir(parents=True, exist_ok=True)
        self.deployments.mkdir(parents=True, exist_ok=True)

    def stop(self):
        """The process is gone: its threads do nothing more. A hung thread
        is let go so that it can end."""
        self.alive = False
        self.hang_release.set()

    # ------------------------------------------------- the deployment lock

    def _lock_dir(self):
        return self.locks / "deployment"

    def _info(self):
        return self._lock_dir() / "info.lock"

    def _is_lock_valid(self):
        # Kudu.Core/AllSafeLinuxLock.cs, IsLockValid(): no info.lock means
        # not held, checked before the cache; a cached expiry in the future
        # means held without reading; an empty expiry or a past one deletes
        # the folder and means free.
        if not self._info().is_file():
            return False
        if self.cached_expiry > time.time():
            return True
        info = json.loads(self._info().read_text(encoding="utf-8-sig"))
        exp_text = info.get("lockExpiry")
        if not exp_text:
            shutil.rmtree(self._lock_dir(), ignore_errors=True)
            return False
        exp = parse_kudu_time(str(exp_text))
        self.cached_expiry = exp
        if exp > time.time():
            return True
        shutil.rmtree(self._lock_dir(), ignore_errors=True)
        return False

    def is_held(self):
        with self.mutex:
            if self.memory == "reported" and self.believed_until > time.time():
                return True
            # Kudu.Core/AllSafeLinuxLock.cs, IsHeld: only while the folder
            # exists; an unreadable info.lock is read again once (Kudu waits
            # a second first), and if it still fails the folder is deleted.
            if not self._lock_dir().is_dir():
                return False
            try:
                return self._is_lock_valid()
            except (ValueError, OSError, AttributeError):
                try:
                    if self._is_lock_valid():
                        return True
                except (ValueError, OSError, AttributeError):
                    pass
                shutil.rmtree(self._lock_dir(), ignore_errors=True)
                return False

    def try_lock(self, op):
        """Kudu.Core/AllSafeLinuxLock.cs, Lock(): tried once, no wait
        (LockOperation with TimeSpan.Zero in FetchDeploymentManager.cs)."""
        with self.mutex:
            if self._lock_dir().is_dir() and self.is_held():
                return False
            if self.memory == "reported" and self.believed_until > time.time():
                return False
            # CreateLockInfoFile: the folder, then info.lock as compact JSON
            # in LinuxLockInfo's field order.
            self._lock_dir().mkdir(parents=True, exist_ok=True)
            expiry = time.time() + self.lock_timeout_s
            _write(self._info(), json.dumps(
                {"lockExpiry": kudu_time(expiry), "heldByPID": os.getpid(),
                 "heldByTID": threading.get_ident() % 1000,
                 "heldByOp": op, "heldByWorker": self.instance_id},
                separators=(",", ":")))
            self.believed_until = expiry
            return True

    def release(self):
        """Kudu.Core/AllSafeLinuxLock.cs, Release(): forget the cached
        expiry, delete the whole folder."""
        with self.mutex:
            self.cached_expiry = 0.0
            self.believed_until = 0.0
            # A thread of a process that has been restarted is gone in
            # Kudu; here it must not free the new process's lock.
            if self.alive:
                shutil.rmtree(self._lock_dir(), ignore_errors=True)

    def status_lock(self, op):
        """locks/status.lock, taken around every status.xml write
        (Kudu.Core/Deployment/DeploymentStatusFile.cs, _statusLock). The
        holder's details are written as indented JSON (the shape of
        OperationLockInfo in Kudu.Core/Infrastructure/LinuxLockFile.cs,
        WriteLockInfo); on Linux the file is never deleted (KUDU.md)."""
        _write(self.locks / "status.lock", json.dumps({
            "OperationName": op, "AcquiredDateTime": kudu_time(),
            "StackTrace": "   at Kudu.Core.Infrastructure.LockFile.LockOperation()\n"
                          "   at Kudu.Core.Deployment.DeploymentStatusFile.Save()",
            "InstanceId": self.instance_id[:6]}, indent=2))

    # ----------------------------------------------------------- records

    def save(self, rec):
        """DeploymentStatusFile.Save (Kudu.Core/Deployment/
        DeploymentStatusFile.cs): status.xml rewritten under the status
        lock, then `active` touched for the ETag, or created empty."""
        # Open and Save both run under the status lock, so a reader never
        # sees a status.xml half rewritten (which Open would take for a
        # corrupt one and delete); in one process the mutex is that lock.
        with self.mutex:
            self.status_lock("Updating deployment status")
            _write(self.deployments / rec.v["id"] / "status.xml", rec.xml())
            active = self.deployments / "active"
            if active.exists():
                os.utime(active)
            else:
                _write(active, "")

    def open(self, rid):
        path = self.deployments / rid / "status.xml"
        try:
            with self.mutex:
                text = path.read_text(encoding="utf-8-sig")
        except (FileNotFoundError, NotADirectoryError):
            return None
        # Reads take the status lock too, but do not write its file: in the
        # KuduLite read, status.lock is a LockFile (Kudu.Core/Infrastructure/
        # LockFile.cs) over a NoOpLock, and a GET that rewrote it would look
        # like activity to every observer of the share.
        rec = Record.parse(text)
        if not rec.v["id"]:
            # DeploymentStatusFile.Open: a corrupt status.xml removes its
            # folder and the record is not listed.
            shutil.rmtree(path.parent, ignore_errors=True)
            return None
        return rec

    def log_line(self, rid, message, kind=0, child=False):
        """log.log (Kudu.Core/Deployment/StructuredTextLogger.cs): time,
        message with commas written as &comma;, an id for a top-level
        entry, and the kind."""
        entry_id = "" if child else str(uuid.uuid4())
        line = ("\t" if child else "") + \
            f"{kudu_time()},{message.replace(',', '&comma;')},{entry_id},{kind}\n"
        path = self.deployments / rid / "log.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)

    def active_id(self):
        try:
            return (self.deployments / "active").read_text().strip()
        except FileNotFoundError:
            return ""

    def results(self):
        """DeploymentManager.PurgeAndGetDeployments (Kudu.Core/Deployment/
        DeploymentManager.cs): every record, verified, newest first, then
        the purge. The version of DeploymentManager.cs read purges on every
        listing; KUDU.md records that builds since purge only while the
        lock is free, which is what this stand-in does (a record of a
        deployment that died holding the lock stays for the agent to see)."""
        held = self.is_held()
        recs = []
        for d in sorted(self.deployments.iterdir()) if self.deployments.is_dir() else []:
            if not d.is_dir():
                continue
            rec = self.verify(d.name, held)
            if rec is not None:
                recs.append(rec)
        recs.sort(key=lambda r: r.v["receivedTime"], reverse=True)
        return recs if held else self.purge(recs)

    def verify(self, rid, held):
        """DeploymentManager.VerifyDeployment: an incomplete record while
        the lock is free means something died; it is marked Failed (after
        VERIFY_GRACE_S, see above) with an "unexpected error" log entry."""
        rec = self.open(rid)
        if rec is None or rec.v["complete"] == "True" or held:
            return rec
        try:
            received = parse_kudu_time(rec.v["receivedTime"])
        except ValueError:
            received = 0.0
        if time.time() - received >= self.verify_grace_s:
            self.log_line(rid, "Deployment Lock Failure: an unexpected error occurred", 2)
            self.mark_complete(rec, success=False, purge=False)
        return rec

    def purge(self, recs):
        """DeploymentManager.PurgeDeployments, its three rules, on results
        sorted newest first."""
        if not recs:
            return recs
        delete = []
        # GetPurgeTemporaryDeployments: more than one unfinished record.
        pend = [r for r in recs if r.v["status"] not in ("Failed", "Success")]
        if len(pend) > 1:
            if any(r.v["is_temp"] != "True" for r in pend):
                delete += [r for r in pend if r.v["is_temp"] == "True"]
            else:
                if pend[0].v["id"] == recs[0].v["id"]:
                    pend = pend[1:]
                delete += pend
        # GetPurgeFailedDeployments: failures that never succeeded, keeping
        # the newest when it is the newest of all.
        fails = [r for r in recs if r.v["status"] == "Failed" and not r.v["lastSuccessEndTime"]]
        if fails:
            if fails[0].v["id"] == recs[0].v["id"]:
                fails = fails[1:]
            delete += fails
        # GetPurgeObsoleteDeployments: at most MaxSuccessDeploymentResults
        # ever-successful records, never the active one.
        succeeded = [r for r in recs if r.v["lastSuccessEndTime"]]
        if len(succeeded) > MAX_SUCCESS_RESULTS:
            active = self.active_id()
            delete += [r for r in succeeded[MAX_SUCCESS_RESULTS:]
                       if r.v["id"] != active and r.v["status"] in ("Failed", "Success")]
        gone = set()
        for r in delete:
            if r.v["id"] not in gone:
                shutil.rmtree(self.deployments / r.v["id"], ignore_errors=True)
                gone.add(r.v["id"])
        return [r for r in recs if r.v["id"] not in gone]

    def mark_complete(self, rec, success, purge=True):
        """DeploymentManager.MarkStatusComplete with DeploymentStatusFile's
        MarkSuccess/MarkFailed, then the purge of old records."""
        now = kudu_time()
        rec.v.update(status="Success" if success else "Failed", complete="True",
                     endTime=now, progress="", statusText="")
        if success:
            rec.v["lastSuccessEndTime"] = now
        self.save(rec)
        if purge:
            self.results()

    # ------------------------------------------------------- a deployment

    def _step(self):
        """A fault set from outside fires at the next step of a running
        deployment: die ends the thread, hang blocks it silently."""
        if not self.alive:
            raise Died()
        fault = self.fault
        if fault == "die":
            self.fault = None
            self.died += 1
            self.note("died")
            self.log(f"fault: deployment died holding the lock (gen {self.generation})")
            raise Died()
        if fault == "hang":
            self.fault = None
            self.died += 1
            self.note("hung")
            self.log(f"fault: deployment hung holding the lock (gen {self.generation})")
            self.hang_release.wait()
            raise Died()

    def zipdeploy(self, body, is_async):
        """PushDeploymentController.ZipPushDeploy to FetchDeploymentManager.
        FetchDeploy and PerformBackgroundDeployment. Returns (status,
        headers, body)."""
        # FetchDeploymentManager's constructor creates the empty `pending`
        # marker when it is missing; zip deploy does not allow deferral, so
        # a conflict never touches it.
        pending = self.deployments / "pending"
        if not pending.exists():
            _write(pending, "")
        if not self.try_lock(OP_DEPLOY):
            self.conflicts += 1
            return 409, {}, MSG_IN_PROGRESS
        self.started += 1
        # Noted here, with the lock taken and before the deployment's thread
        # starts: the HTTP layer notes "zipdeploy 202" only once this returns,
        # by which time a deployment made to die at its first step is dead.
        self.note("zipdeploy accepted")
        # CreateTemporaryDeployment (DeploymentManager.cs): temp- and 8
        # characters of "0123456789abcdfe" (sic), Pending, "Receiving
        # changes.", is_temp True, saved before the request returns.
        temp_id = "temp-" + "".join(random.choice("0123456789abcdfe") for _ in range(8))
        temp = Record(temp_id, author="N/A", deployer="Push-Deployer",
                      authorEmail="N/A", message="N/A", status="Pending",
                      statusText="Receiving changes.", is_temp="True")
        self.save(temp)
        done = threading.Event()
        outcome = {}
        t = threading.Thread(target=self._deploy, args=(temp, body, done, outcome),
                             daemon=True, name=f"deploy-{temp_id}")
        t.start()
        if is_async:
            return 202, {"Location": "/api/deployments/latest?deployer=Push-Deployer&time="
                         + time.strftime("%Y-%m-%d_%H-%M-%SZ", time.gmtime())}, ""
        done.wait()
        return (200 if outcome.get("ok") else 500), {}, ""

    def _deploy(self, temp, body, done, outcome):
        rid = uuid.uuid4().hex
        try:
            self.running.append(rid)
            self._step()
            # FetchDeploymentManager.PerformDeployment: "Fetching changes."
            # into the temp record's log, then the zip is unpacked.
            self.log_line(temp.v["id"], "Fetching changes.")
            self.log_line(temp.v["id"], "Cleaning up temp folders from previous zip "
                          f"deployments and extracting pushed zip file ({len(body)} bytes)",
                          child=True)
            self._step()
            # DeployAsync: a new record for the commit (a 32-hex GUID for a
            # zip deploy), its old log removed, MarkPending.
            rec = Record(rid, author="N/A", deployer="Push-Deployer", authorEmail="N/A",
                         message="Created via a push deployment", status="Pending")
            self.save(rec)
            # Build: "Preparing deployment", Building, then the builder.
            self.log_line(rid, f"Preparing deployment for commit id '{rid[:10]}'.")
            rec.v.update(status="Building", startTime=kudu_time(),
                         statusText=f"Building and Deploying '{rid}'.")
            self.save(rec)
            deadline = time.monotonic() + self.build_s
            n = 0
            while True:
                self._step()
                n += 1
                # ProgressLogger (Kudu.Core/Deployment/ProgressLogger.cs):
                # each top-level log entry also becomes the record's
                # progress.
                msg = f"Running build step {n}."
                self.log_line(rid, msg)
                rec.v["progress"] = msg
                self.save(rec)
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(self.step_s, max(0.0, deadline - time.monotonic())))
            self._step()
            # KuduSync writes the next manifest (DeploymentContext.
            # NextManifestFilePath); FinishDeployment logs success, marks
            # the record, makes it active.
            _write(self.deployments / rid / "manifest", "index.html\n")
            self.log_line(rid, "Deployment successful.")
            self.mark_complete(rec, success=True)
            _write(self.deployments / "active", rid)
            # PerformDeployment: "only clean up temp deployment if
            # successful".
            shutil.rmtree(self.deployments / temp.v["id"], ignore_errors=True)
            self.release()
            self.succeeded += 1
            outcome["ok"] = True
        except Died:
            outcome["ok"] = False
        finally:
            if rid in self.running:
                self.running.remove(rid)
            done.set()
