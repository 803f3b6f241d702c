"""A stand-in for KuduLite, the deployment engine of App Service for Linux,
for the end-to-end tests, the bench and the demo. Loopback HTTP only, the
Python standard library only.

It reproduces the part of Kudu that decides whether a deploy gets 409, and
the files Kudu leaves in the site tree while it deploys. Each rule names the
KuduLite source file (repository Azure-App-Service/KuduLite) it comes from;
where that source could not be found, the rule comes from the project's
notes on Kudu (KUDU.md) and says so. The rules are in kudu_process.py (one
Kudu process, its memory and its deployments) and kudu_records.py (the
files' shapes); this file is the HTTP front end, the restart, and the
program.

The HTTP server (the "front end") outlives the Kudu "process": a restart
throws the process's memory away and builds a new one, as the platform
does when the site restarts, so the port stays the same for the clients.

    POST /api/zipdeploy[?isAsync=true]   202 + Location, or 409
    GET  /api/deployments                every record, newest first
    GET  /api/deployments/latest         the newest record
    GET  /api/deployments/<id>
    GET  /api/isdeploying                {"value": "True"|"False", "msg": ...}

Faults, on the control endpoints (also SIGUSR1, SIGUSR2, SIGHUP when run as
a program):

    POST /control/die       the running deployment (or the next one, once it
                            holds the lock) stops dead, releasing nothing
    POST /control/hang      the same, but its thread stays blocked, silent
    POST /control/restart   the process restarts: memory lost, and on start
                            it deletes locks/deployment
    GET  /control/state     counters: 409s served, deployments, restarts

Run as a program:  kudu_standin.py --site-root DIR [--port N]
    [--port-file F] [--build-s S] [--memory source|reported]
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import http.server
from pathlib import Path

# The process and the files, re-exported for the tests and the bench.
from kudu_process import (LOCK_TIMEOUT_S, MSG_IN_PROGRESS, KuduProcess,  # noqa: F401
                          OP_DEPLOY, VERIFY_GRACE_S)
from kudu_records import Record, kudu_time, parse_kudu_time  # noqa: F401


class KuduStandIn:
    """The front end: an HTTP server on 127.0.0.1 that hands every request
    to the current KuduProcess, and restarts it on demand."""

    def __init__(self, site_root, port=0, log=None, **process_kw):
        self.site_root = Path(site_root)
        self.process_kw = process_kw
        self.log = log or (lambda msg: None)
        self.generation = 0
        self.restarts = 0
        self.conflicts = 0      # 409s served, across restarts
        self.events = []        # (monotonic time, what)
        self.events_lock = threading.Lock()
        self.proc = None
        self._new_process()
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status, headers=None, body=""):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _json(self, obj, status=200):
                self._reply(status, {"Content-Type": "application/json"}, json.dumps(obj))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/api/zipdeploy":
                    is_async = q.get("isAsync", "").lower() == "true"
                    status, headers, text = standin.proc.zipdeploy(body, is_async)
                    standin.note(f"zipdeploy {status}")
                    if status == 409:
                        standin.conflicts += 1
                    if "Location" in headers:
                        headers["Location"] = f"http://{self.headers.get('Host')}" + \
                            headers["Location"]
                    return self._reply(status, headers, text)
                if url.path == "/control/die":
                    standin.proc.fault = "die"
                    return self._json({"fault": "die"})
                if url.path == "/control/hang":
                    standin.proc.fault = "hang"
                    return self._json({"fault": "hang"})
                if url.path == "/control/restart":
                    standin.restart("control")
                    return self._json({"generation": standin.generation})
                self._reply(404, {}, "not found")

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                proc = standin.proc
                if url.path == "/api/isdeploying":
                    held = proc.is_held()
                    return self._json({"value": str(held),
                                       "msg": "Deployment is in progress." if held else ""})
                if url.path == "/api/deployments":
                    active = proc.active_id()
                    return self._json([r.as_json(active) for r in proc.results()])
                m = re.fullmatch(r"/api/deployments/([^/]+)", url.path)
                if m:
                    recs = proc.results()
                    active = proc.active_id()
                    if m.group(1) == "latest":
                        rec = recs[0] if recs else None
                    else:
                        rec = next((r for r in recs if r.v["id"] == m.group(1)), None)
                    if rec is None:
                        return self._reply(404, {}, "no such deployment")
                    return self._json(rec.as_json(active))
                if url.path == "/control/state":
                    return self._json(standin.state())
                self._reply(404, {}, "not found")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = None

    def note(self, what):
        with self.events_lock:
            self.events.append((time.monotonic(), what))

    def first_event(self, prefix, since=0.0):
        """Monotonic time of the first event starting with prefix."""
        with self.events_lock:
            for t, what in self.events:
                if t >= since and what.startswith(prefix):
                    return t
        return None

    def count_events(self, prefix, since=0.0, until=float("inf")):
        with self.events_lock:
            return sum(1 for t, what in self.events
                       if since <= t < until and what.startswith(prefix))

    def _new_process(self):
        self.generation += 1
        self.proc = KuduProcess(self.site_root, generation=self.generation,
                                log=self.log, note=self.note, **self.process_kw)

    def restart(self, why="restart"):
        """The site restarts: the old process and its threads are gone, a
        new one starts with an empty memory and deletes locks/deployment."""
        old = self.proc
        old.stop()
        # The event before the new process and the counter: a deploy the
        # new process serves begins after it, and a test that saw the
        # counter move finds it.
        self.note(f"restart ({why})")
        self._new_process()
        self.restarts += 1
        self.log(f"kudu restarted ({why}), generation {self.generation}")

    def state(self):
        p = self.proc
        return {"generation": self.generation, "restarts": self.restarts,
                "conflicts": self.conflicts, "running": list(p.running),
                "held": p.is_held(), "started": p.started, "succeeded": p.succeeded}

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def close(self):
        self.proc.stop()
        self.server.shutdown()
        self.server.server_close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site-root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--build-s", type=float, default=1.0)
    ap.add_argument("--memory", choices=["source", "reported"], default="source")
    ap.add_argument("--lock-timeout-s", type=float, default=LOCK_TIMEOUT_S)
    args = ap.parse_args(argv)

    def log(msg):
        print(f"kudu: {msg}", flush=True)

    s = KuduStandIn(args.site_root, args.port, log=log, build_s=args.build_s,
                    memory=args.memory, lock_timeout_s=args.lock_timeout_s)
    # Signals only set flags or restart; the work stays on the threads.
    signal.signal(signal.SIGUSR1, lambda *a: setattr(s.proc, "fault", "die"))
    signal.signal(signal.SIGUSR2, lambda *a: setattr(s.proc, "fault", "hang"))
    signal.signal(signal.SIGHUP, lambda *a: s.restart("SIGHUP"))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        Path(tmp).write_text(str(s.port))
        os.rename(tmp, args.port_file)
    log(f"listening on {s.url}, site {args.site_root}")
    try:
        s.server.serve_forever()
    finally:
        s.proc.stop()


if __name__ == "__main__":
    main()
