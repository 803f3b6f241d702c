"""A loopback stand-in for the managed identity endpoint and Azure Resource
Manager, as the restart-site hook sees them (packaging/hooks/restart-site
takes both addresses from the environment: IDENTITY_ENDPOINT and
LOCKWARDEN_RESTART_ARM_URL). Used by test/packaging/test_hooks.py to check
the hook's requests, and by test/kudu, where a POST .../restart restarts the
Kudu stand-in (on_restart), so the real hook closes the loop.
"""

import http.server
import json
import os
import threading
import urllib.parse

SUBSCRIPTION = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
RESOURCE_GROUP = "rg-shop"
SITE = "shop-web"
TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcm0ifQ.c2lnbmF0dXJl-_x"
IDENTITY_HEADER = "c6f1a0d2-identity-header-secret"
TOKEN_PATH = "/msi/token"
SITE_PATH = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
             f"/providers/Microsoft.Web/sites/{SITE}")
TOKEN_BODY = json.dumps({"access_token": TOKEN, "expires_on": "1767225600",
                         "resource": "https://management.azure.com/",
                         "token_type": "Bearer", "client_id": "5e1b-client"})

# ------------------------------------------------------- the stand-in server

class StandIn:
    """The identity endpoint (GET /msi/token) and ARM (everything else) on
    one ephemeral port. answers maps "token" and "arm" to (status, body), or
    to "hang" for a server that accepts the request and never answers."""

    def __init__(self, on_restart=None):
        self.requests = []
        # Called with the request's path when ARM accepts a POST .../restart
        # (before the answer goes out, as ARM restarts the site before
        # it reports success to the caller of a synchronous restart).
        self.on_restart = on_restart
        self.answers = {"token": (200, TOKEN_BODY), "arm": (200, "")}
        self.release = threading.Event()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                stand_in.requests.append({
                    "method": self.command, "path": url.path, "raw_query": url.query,
                    "query": urllib.parse.parse_qsl(url.query, keep_blank_values=True),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "header_names": [k.lower() for k in self.headers.keys()],
                    "body": body})
                route = "token" if url.path == TOKEN_PATH else "arm"
                answer = stand_in.answers[route]
                if answer == "hang":
                    stand_in.release.wait(60)
                    return
                status, text = answer
                if (route == "arm" and self.command == "POST" and 200 <= status < 300
                        and url.path.endswith("/restart") and stand_in.on_restart):
                    stand_in.on_restart(url.path)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def of(self, route):
        return [r for r in self.requests
                if (r["path"] == TOKEN_PATH) == (route == "token")]



def site_env(stand_in, **extra):
    """The environment App Service gives a container with a managed
    identity, pointed at the stand-in; nothing from the test runner that
    could change the hook's behaviour (proxies, LOCKWARDEN_*)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCKWARDEN_", "WEBSITE_", "IDENTITY_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update({
        "IDENTITY_ENDPOINT": stand_in.url + TOKEN_PATH,
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "WEBSITE_OWNER_NAME": f"{SUBSCRIPTION}+{RESOURCE_GROUP}-WestEuropewebspace-Linux",
        "WEBSITE_RESOURCE_GROUP": RESOURCE_GROUP,
        "WEBSITE_SITE_NAME": SITE,
        "LOCKWARDEN_RESTART_ARM_URL": stand_in.url,
        "LOCKWARDEN_RESTART_TIMEOUT": "5",
    })
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env
