"""A deployment pipeline as CI runs it against Kudu: POST /api/zipdeploy
with isAsync=true, then poll the Location until the deployment completes,
giving up after a deadline (a pipeline's step timeout). Used by the tests,
the bench and the demo."""

import json
import threading
import time
import urllib.error
import urllib.request

POLL_S = 0.1


def request(method, url, body=None, timeout=10):
    """(status, headers, body text); HTTP errors are answers, not raised."""
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/zip")
    # Loopback only: no proxy from the environment may be asked.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def deploy(base_url, poll_timeout_s=30.0, payload=b"PK\x05\x06" + b"\0" * 18):
    """One deploy. Returns ("conflict", 409 body), ("success", record),
    ("failed", record) or ("timeout", last record seen)."""
    status, headers, body = request("POST", base_url + "/api/zipdeploy?isAsync=true", payload)
    if status == 409:
        return "conflict", body
    if status != 202:
        return "error", f"HTTP {status}: {body}"
    location = headers.get("Location")
    deadline = time.monotonic() + poll_timeout_s
    rec = None
    while time.monotonic() < deadline:
        st, _, text = request("GET", location)
        if st == 200:
            rec = json.loads(text)
            if rec.get("complete"):
                return ("success" if rec["status_name"] == "Success" else "failed"), rec
        time.sleep(POLL_S)
    return "timeout", rec


class Pipeline:
    """Deploys in a loop on a thread until stopped, recording every attempt
    as (monotonic start, monotonic end, outcome)."""

    def __init__(self, base_url, retry_s=0.2, poll_timeout_s=30.0, name="pipeline"):
        self.base_url = base_url
        self.retry_s = retry_s
        self.poll_timeout_s = poll_timeout_s
        self.attempts = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                outcome, _ = deploy(self.base_url, self.poll_timeout_s)
            except OSError as e:
                outcome = f"error: {e}"
            with self.lock:
                self.attempts.append((t0, time.monotonic(), outcome))
            self.stop_event.wait(self.retry_s)

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=self.poll_timeout_s + 10)

    def outcomes(self, since=0.0):
        with self.lock:
            return [o for (t0, _, o) in self.attempts if t0 >= since]

    def first(self, outcome, since=0.0):
        """(start, end) of the first attempt begun at or after `since` with
        that outcome, or None."""
        with self.lock:
            for t0, t1, o in self.attempts:
                if t0 >= since and o == outcome:
                    return t0, t1
        return None
