"""The Kudu stand-in itself, without the agent: each rule it reproduces from
KuduLite (see kudu_standin.py for the source file of each) answers and
writes what Kudu would."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lwtest import wait_for
from conftest import wait_idle
from kudu_standin import LOCK_TIMEOUT_S, MSG_IN_PROGRESS, Record, kudu_time, parse_kudu_time
from pipeline import deploy, request

HERE = Path(__file__).resolve().parent
TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z"


def die_now(kudu):
    """A deploy whose deployment dies at its first step, holding the lock."""
    kudu.proc.fault = "die"
    assert deploy(kudu.url, poll_timeout_s=0.5)[0] == "timeout"
    wait_for(lambda: kudu.first_event("died"), 10, "the death")


def test_zipdeploy_async_answers_202_with_location_and_writes_kudus_files(kudu_factory):
    kudu = kudu_factory(build_s=1.0)
    site = kudu.site_root
    st, headers, _ = request("POST", kudu.url + "/api/zipdeploy?isAsync=true", b"zip")
    assert st == 202
    assert re.match(re.escape(kudu.url) + r"/api/deployments/latest\?deployer=Push-Deployer&time=",
                    headers["Location"])
    # Before the answer: the lock, pending, and the temp record.
    info = (site / "locks" / "deployment" / "info.lock").read_text()
    assert list(json.loads(info)) == ["lockExpiry", "heldByPID", "heldByTID", "heldByOp",
                                      "heldByWorker"]
    assert ", " not in info and ": " not in info  # compact JSON
    lock = json.loads(info)
    assert re.fullmatch(TIME_RE, lock["lockExpiry"])
    assert abs(parse_kudu_time(lock["lockExpiry"]) - time.time() - LOCK_TIMEOUT_S) < 10
    assert lock["heldByOp"] == "Performing continuous deployment"
    assert (site / "deployments" / "pending").read_bytes() == b""
    temps = list((site / "deployments").glob("temp-*"))
    assert len(temps) == 1 and re.fullmatch(r"temp-[0-9abcdef]{8}", temps[0].name)
    temp = Record.parse((temps[0] / "status.xml").read_text())
    assert (temp.v["status"], temp.v["statusText"], temp.v["is_temp"], temp.v["complete"]) == \
        ("Pending", "Receiving changes.", "True", "False")

    # A second deploy while it runs: Kudu's 409, and it is deploying.
    st, _, body = request("POST", kudu.url + "/api/zipdeploy?isAsync=true", b"zip")
    assert (st, body) == (409, MSG_IN_PROGRESS)
    st, _, body = request("GET", kudu.url + "/api/isdeploying")
    assert json.loads(body)["value"] == "True"

    rec = wait_for(lambda: _complete(kudu), 20, "the deployment to complete")
    wait_idle(kudu)
    rid = rec["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid) and rec["status_name"] == "Success"
    # After success: the temp record and the lock are gone, status.lock stays.
    assert not list((site / "deployments").glob("temp-*"))
    assert not (site / "locks" / "deployment").exists()
    status_lock = json.loads((site / "locks" / "status.lock").read_text())
    assert list(status_lock) == ["OperationName", "AcquiredDateTime", "StackTrace", "InstanceId"]
    assert (site / "deployments" / "active").read_text() == rid
    assert (site / "deployments" / rid / "manifest").exists()
    xml = (site / "deployments" / rid / "status.xml").read_text()
    assert re.findall(r"<(\w+)[ />]", xml)[1:] == Record.FIELDS
    assert "<complete>True</complete>" in xml and "<progress />" in xml
    for line in (site / "deployments" / rid / "log.log").read_text().splitlines():
        assert re.fullmatch(r"\t?" + TIME_RE + r",[^,]*,[0-9a-f-]*,[012]", line), line
    st, _, body = request("GET", kudu.url + "/api/isdeploying")
    assert json.loads(body)["value"] == "False"


def _complete(kudu):
    st, _, body = request("GET", kudu.url + "/api/deployments/latest")
    rec = json.loads(body) if st == 200 else {}
    return rec if rec.get("complete") else None


def test_synchronous_zipdeploy_answers_200(kudu_factory):
    kudu = kudu_factory(build_s=0.2)
    st, _, _ = request("POST", kudu.url + "/api/zipdeploy", b"zip")
    assert st == 200


def test_the_cached_expiry_outlives_a_rewritten_info_lock(kudu_factory):
    """AllSafeLinuxLock.IsLockValid: while the cached expiry is in the
    future, an info.lock rewritten with a past expiry is not read."""
    kudu = kudu_factory()
    die_now(kudu)
    assert deploy(kudu.url)[0] == "conflict"  # reads and caches the expiry
    info = kudu.site_root / "locks" / "deployment" / "info.lock"
    lock = json.loads(info.read_text())
    lock["lockExpiry"] = kudu_time(time.time() - 60)
    info.write_text(json.dumps(lock, separators=(",", ":")))
    assert deploy(kudu.url)[0] == "conflict"
    # But no info.lock means free, checked before the cache.
    info.unlink()
    assert deploy(kudu.url)[0] == "success"


def test_an_expired_or_empty_lock_is_free_and_its_folder_deleted(kudu_factory):
    kudu = kudu_factory(build_s=0.2)
    lock_dir = kudu.site_root / "locks" / "deployment"
    for expiry in (kudu_time(time.time() - 1), ""):
        lock_dir.mkdir()
        (lock_dir / "info.lock").write_text(json.dumps(
            {"lockExpiry": expiry, "heldByPID": 1, "heldByTID": 1,
             "heldByOp": "Performing deployment", "heldByWorker": "x"}, separators=(",", ":")))
        st, _, body = request("GET", kudu.url + "/api/isdeploying")
        assert json.loads(body)["value"] == "False"
        assert not lock_dir.exists()
        assert deploy(kudu.url)[0] == "success"
        wait_idle(kudu)


def test_kudus_own_expiry_frees_a_dead_deployments_lock(kudu_factory):
    # Long enough that the death and a first 409 fit in it on a busy machine.
    kudu = kudu_factory(build_s=0.2, lock_timeout_s=5.0)
    die_now(kudu)
    assert deploy(kudu.url)[0] == "conflict"
    wait_for(lambda: deploy(kudu.url)[0] == "success", 15, "the lock to expire")


def test_a_restart_forgets_the_lock_and_deletes_the_lock_folder(kudu_factory):
    kudu = kudu_factory(build_s=0.2, memory="reported")
    die_now(kudu)
    (kudu.site_root / "locks" / "deployment" / "info.lock").unlink()
    assert deploy(kudu.url)[0] == "conflict"  # the memory of the report
    kudu.restart()
    assert not (kudu.site_root / "locks" / "deployment").exists()
    assert deploy(kudu.url)[0] == "success"


def test_a_hung_build_goes_silent_holding_the_lock_until_a_restart(kudu_factory):
    kudu = kudu_factory(build_s=30, step_s=0.1)
    st, _, _ = request("POST", kudu.url + "/api/zipdeploy?isAsync=true", b"zip")
    assert st == 202
    rid = wait_for(lambda: kudu.proc.running and kudu.proc.running[0], 10, "the build")
    log = kudu.site_root / "deployments" / rid / "log.log"
    wait_for(log.exists, 10, "the build's log")
    kudu.proc.fault = "hang"
    wait_for(lambda: kudu.first_event("hung"), 10, "the hang")
    size = log.stat().st_size
    assert deploy(kudu.url)[0] == "conflict"
    assert log.stat().st_size == size  # silent: nothing written since
    kudu.restart()
    kudu.proc.build_s = 0.2
    assert deploy(kudu.url)[0] == "success"


def test_an_unfinished_record_is_marked_failed_once_the_lock_is_free(kudu_factory):
    """DeploymentManager.VerifyDeployment, with no grace period."""
    kudu = kudu_factory(build_s=0.2, verify_grace_s=0)
    die_now(kudu)
    shutil.rmtree(kudu.site_root / "locks" / "deployment")
    st, _, body = request("GET", kudu.url + "/api/deployments/latest")
    rec = json.loads(body)
    assert (rec["status_name"], rec["complete"]) == ("Failed", True)


def test_purge_keeps_ten_successes_and_the_newest_failure(kudu_factory):
    """DeploymentManager.PurgeDeployments."""
    kudu = kudu_factory(build_s=0)
    ids = []
    for _ in range(12):
        wait_idle(kudu)
        outcome, rec = deploy(kudu.url)
        assert outcome == "success"
        ids.append(rec["id"])
    # The last deploy may still hold the lock for a moment after its status
    # says Success; Kudu purges only while the lock is free.
    wait_idle(kudu)
    st, _, body = request("GET", kudu.url + "/api/deployments")
    listed = [r["id"] for r in json.loads(body)]
    assert listed == list(reversed(ids))[:10]
    assert not (kudu.site_root / "deployments" / ids[0]).exists()


def test_faults_and_restart_by_signal_when_run_as_a_program(tmp_path):
    site = tmp_path / "site"
    port_file = tmp_path / "port"
    out_path = tmp_path / "standin.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / "kudu_standin.py"), "--site-root",
                                 str(site), "--port-file", str(port_file), "--build-s", "0.2"],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(port_file.exists, 10, "the port file")
        url = f"http://127.0.0.1:{port_file.read_text()}"
        assert deploy(url)[0] == "success"
        wait_for(lambda: '"held": false' in request("GET", url + "/control/state")[2], 10,
                 "the lock released")
        proc.send_signal(signal.SIGUSR1)
        # A live deployment completes within the poll; a dead one never does.
        wait_for(lambda: deploy(url, poll_timeout_s=3)[0] == "timeout", 20, "a death")
        assert deploy(url)[0] == "conflict"
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: not (site / "locks" / "deployment").exists(), 10, "the restart")
        assert deploy(url)[0] == "success"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "restarted (SIGHUP)" in out_path.read_text()


@pytest.mark.parametrize("memory", ["source", "reported"])
def test_control_endpoints(kudu_factory, memory):
    kudu = kudu_factory(build_s=0.2, memory=memory)
    st, _, body = request("POST", kudu.url + "/control/die", b"")
    assert st == 200
    assert deploy(kudu.url, poll_timeout_s=0.5)[0] == "timeout"
    st, _, body = request("GET", kudu.url + "/control/state")
    assert json.loads(body)["held"] is True
    st, _, body = request("POST", kudu.url + "/control/restart", b"")
    assert json.loads(body)["generation"] == 2
    assert deploy(kudu.url)[0] == "success"
    assert os.path.exists(kudu.site_root / "locks" / "status.lock")
