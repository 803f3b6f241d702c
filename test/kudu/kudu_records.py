"""What Kudu's files look like, for the Kudu stand-in (kudu_standin.py):
its times, a deployment record's status.xml, and how it writes them."""

import datetime
import re
import time
from pathlib import Path


def kudu_time(t=None):
    """.NET's round-trip UTC format: 7 fractional digits and Z."""
    when = datetime.datetime.fromtimestamp(time.time() if t is None else t,
                                           datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}0Z"


def parse_kudu_time(text):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z?$", text.strip())
    if not m:
        raise ValueError(f"not a time: {text!r}")
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base + frac


def _write(path, data):
    """Kudu writes in place (FileSystemHelpers.WriteAllText): no rename, so
    a reader can see the file being rewritten, as on the share."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)


class Record:
    """One deployments/<id>/status.xml, the fields in the order
    DeploymentStatusFile.Save writes them
    (Kudu.Core/Deployment/DeploymentStatusFile.cs)."""

    FIELDS = ["id", "author", "deployer", "authorEmail", "message", "progress",
              "status", "statusText", "lastSuccessEndTime", "receivedTime",
              "startTime", "endTime", "complete", "is_temp", "is_readonly"]

    def __init__(self, rid, **kw):
        now = kudu_time()
        self.v = {f: "" for f in self.FIELDS}
        self.v.update(id=rid, receivedTime=now, startTime=now, complete="False",
                      is_temp="False", is_readonly="False", status="Pending")
        self.v.update(kw)

    def xml(self):
        lines = ['<?xml version="1.0" encoding="utf-8"?>', "<deployment>"]
        for f in self.FIELDS:
            val = self.v[f]
            # XElement writes a null value as an empty element.
            lines.append(f"  <{f} />" if val == "" else f"  <{f}>{_esc(val)}</{f}>")
        lines.append("</deployment>")
        return "\n".join(lines)

    @classmethod
    def parse(cls, text):
        rec = cls("")
        for f in cls.FIELDS:
            m = re.search(rf"<{f}>(.*?)</{f}>", text, re.S)
            rec.v[f] = _unesc(m.group(1)) if m else ""
        return rec

    def as_json(self, active_id):
        """The shape of Kudu's DeployResult as GET /api/deployments shows it."""
        v = self.v
        status_num = {"Pending": 0, "Building": 1, "Deploying": 2, "Failed": 3,
                      "Success": 4}.get(v["status"], 0)
        return {"id": v["id"], "status": status_num, "status_text": v["statusText"],
                "author": v["author"], "deployer": v["deployer"],
                "message": v["message"], "progress": v["progress"],
                "received_time": v["receivedTime"] or None,
                "start_time": v["startTime"] or None, "end_time": v["endTime"] or None,
                "last_success_end_time": v["lastSuccessEndTime"] or None,
                "complete": v["complete"] == "True", "active": v["id"] == active_id,
                "is_temp": v["is_temp"] == "True", "is_readonly": v["is_readonly"] == "True",
                "status_name": v["status"]}


def _esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _unesc(s):
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
