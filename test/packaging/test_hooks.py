"""The restart hooks in packaging/hooks/.

restart-site is run against a stand-in for the managed identity endpoint, the
instance metadata service and Azure Resource Manager: one HTTP server on
127.0.0.1 that records every request and answers as each test tells it.
Every request is checked exactly, with curl and with the python3 fallback,
and so is every error path: the slot is never guessed, a target whose
defaultHostName is not this container's is refused, user-assigned
identities are named, and the settings an SSH session lacks are read from
the entrypoint's root-only file or PID 1's environment. restart-container is run against a stand-in process. Last, the real
agent runs restart-site as its hook after a cleanup.
"""

import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from lwtest import wait_for

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "packaging" / "hooks"
RESTART_SITE = HOOKS / "restart-site"
RESTART_CONTAINER = HOOKS / "restart-container"
BIN = os.environ.get("LOCKWARDEN_BIN", "")


SUBSCRIPTION = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
RESOURCE_GROUP = "rg-shop"
SITE = "shop-web"
TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcm0ifQ.c2lnbmF0dXJl-_x"
IDENTITY_HEADER = "c6f1a0d2-identity-header-secret"
TOKEN_PATH = "/msi/token"
IMDS_PATH = "/metadata/identity/oauth2/token"
HOST = f"{SITE}.azurewebsites.net"
CLIENT_ID = "5e1b7c2d-0000-4000-8000-00000000c11e"
PRINCIPAL_ID = "9a8b7c6d-0000-4000-8000-0000000000b1"
MI_RES_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers"
             "/Microsoft.ManagedIdentity/userAssignedIdentities/shop-restarter")
SITE_PATH = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
             f"/providers/Microsoft.Web/sites/{SITE}")
TOKEN_BODY = json.dumps({"access_token": TOKEN, "expires_on": "1767225600",
                         "resource": "https://management.azure.com/",
                         "token_type": "Bearer", "client_id": "5e1b-client"})

# The tools restart-site uses besides the HTTP client, for PATHs that leave
# curl (or curl and python3) out.
SCRIPT_TOOLS = ["sh", "sed", "tr", "cut", "mktemp", "rm", "cat", "grep", "stat", "id"]


# ------------------------------------------------------- the stand-in server

def site_body(path):
    """What ARM answers to a GET of a site or slot: its defaultHostName is
    <site>.azurewebsites.net, or <site>-<slot>.azurewebsites.net for a slot."""
    parts = path.strip("/").split("/")
    name = parts[parts.index("sites") + 1]
    host = f"{name}.azurewebsites.net"
    if "slots" in parts:
        host = f"{name}-{parts[parts.index('slots') + 1]}.azurewebsites.net"
    return json.dumps({"id": path, "name": name, "type": "Microsoft.Web/sites",
                       "location": "West Europe",
                       "properties": {"state": "Running", "hostNames": [host],
                                      "enabledHostNames": [host, host.replace(".", ".scm.", 1)],
                                      "defaultHostName": host}})


class StandIn:
    """The identity endpoint (GET /msi/token), the instance metadata
    service (GET /metadata/identity/oauth2/token), ARM's GET of the site
    ("site") and the POST of the restart ("arm"), on one ephemeral port.
    answers maps each route to (status, body), to "hang" for a server that
    accepts the request and never answers, or (for "site") to None: the
    site as ARM shows it, from the path."""

    def __init__(self):
        self.requests = []
        self.answers = {"token": (200, TOKEN_BODY), "imds": (200, TOKEN_BODY),
                        "site": None, "arm": (200, "")}
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
                route = stand_in.route(self.command, url.path)
                answer = stand_in.answers[route]
                if answer is None:
                    answer = (200, site_body(url.path))
                if answer == "hang":
                    stand_in.release.wait(60)
                    return
                status, text = answer
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

    @staticmethod
    def route(method, path):
        if path == TOKEN_PATH:
            return "token"
        if path == IMDS_PATH:
            return "imds"
        return "site" if method == "GET" else "arm"

    def of(self, route):
        return [r for r in self.requests if self.route(r["method"], r["path"]) == route]


@pytest.fixture
def stand_in():
    s = StandIn()
    yield s
    s.close()


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
        # The platform does not always set WEBSITE_SLOT_NAME; where it does,
        # production says Production. Tests of its absence remove it.
        "WEBSITE_SLOT_NAME": "Production",
        "WEBSITE_HOSTNAME": HOST,
        "LOCKWARDEN_RESTART_ARM_URL": stand_in.url,
        "LOCKWARDEN_RESTART_TIMEOUT": "5",
        # Nothing read from this machine's /run or PID 1; the tests of that
        # name their own file or /proc.
        "LOCKWARDEN_ENV_FILE": "",
    })
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def toolbox(tmp_path, with_python):
    """A PATH folder holding the script's tools, python3 if asked, never
    curl: how an image without curl looks to the script."""
    d = tmp_path / ("bin-python" if with_python else "bin-bare")
    d.mkdir()
    tools = SCRIPT_TOOLS + (["python3"] if with_python else [])
    for tool in tools:
        found = "/usr/bin/python3" if tool == "python3" else shutil.which(tool)
        assert found, f"{tool} is needed for this test"
        (d / tool).symlink_to(found)
    return str(d)


@pytest.fixture(params=["curl", "python3"])
def client(request, tmp_path):
    """The PATH for each HTTP client restart-site can use."""
    if request.param == "curl":
        assert shutil.which("curl"), "curl is in packaging/deps-container.txt"
        return os.environ["PATH"]
    return toolbox(tmp_path, with_python=True)


def run_site(env, *args, timeout=30):
    return subprocess.run(["/bin/sh", str(RESTART_SITE), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_secrets_hidden(proc):
    for secret in (TOKEN, IDENTITY_HEADER):
        assert secret not in proc.stdout + proc.stderr


def assert_token_request(req):
    assert req["method"] == "GET"
    assert req["path"] == TOKEN_PATH
    assert req["query"] == [("resource", "https://management.azure.com/"),
                            ("api-version", "2019-08-01")]
    assert req["headers"]["x-identity-header"] == IDENTITY_HEADER
    assert "authorization" not in req["headers"]


# ------------------------------------------------------------ restart-site

def test_restart_site_sends_the_two_documented_requests(stand_in, client):
    proc = run_site(site_env(stand_in, PATH=client))
    assert proc.returncode == 0, proc.stderr
    assert f"ARM accepted the restart of site {SITE}" in proc.stdout
    assert_secrets_hidden(proc)

    # The token, the target read back (its host name checked), the restart.
    assert [r["method"] for r in stand_in.requests] == ["GET", "GET", "POST"]
    assert_token_request(stand_in.requests[0])
    get = stand_in.requests[1]
    assert (get["path"], get["query"]) == (SITE_PATH, [("api-version", "2025-05-01")])
    assert get["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert get["header_names"].count("authorization") == 1
    post = stand_in.requests[2]
    assert post["path"] == SITE_PATH + "/restart"
    assert post["query"] == [("api-version", "2025-05-01")]
    assert post["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert post["headers"]["content-length"] == "0"
    assert post["body"] == b""
    assert "x-identity-header" not in post["headers"]
    # Each header once: a doubled Authorization would be refused by ARM.
    assert post["header_names"].count("authorization") == 1
    assert post["header_names"].count("content-length") == 1


@pytest.mark.parametrize("extra,path,api", [
    ({"WEBSITE_SLOT_NAME": "staging", "WEBSITE_HOSTNAME": f"{SITE}-staging.azurewebsites.net"},
     SITE_PATH + "/slots/staging/restart", "2025-05-01"),
    ({"WEBSITE_SLOT_NAME": "Production"}, SITE_PATH + "/restart", "2025-05-01"),
    ({"WEBSITE_SLOT_NAME": "staging", "LOCKWARDEN_RESTART_SLOT": ""},
     SITE_PATH + "/restart", "2025-05-01"),
    ({"LOCKWARDEN_RESTART_SUBSCRIPTION": "11111111-2222-3333-4444-555555555555",
      "LOCKWARDEN_RESTART_RESOURCE_GROUP": "rg-other", "LOCKWARDEN_RESTART_SITE": "other-app",
      "LOCKWARDEN_RESTART_API_VERSION": "2024-04-01",
      "WEBSITE_HOSTNAME": "other-app.azurewebsites.net"},
     "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-other"
     "/providers/Microsoft.Web/sites/other-app/restart", "2024-04-01"),
    ({"WEBSITE_OWNER_NAME": None, "LOCKWARDEN_RESTART_SUBSCRIPTION": SUBSCRIPTION},
     SITE_PATH + "/restart", "2025-05-01"),
], ids=["slot", "production-slot", "slot-overridden", "names-overridden", "no-owner-name"])
def test_restart_site_names_come_from_the_platform_or_the_overrides(stand_in, extra, path, api):
    proc = run_site(site_env(stand_in, **extra))
    assert proc.returncode == 0, proc.stderr
    post = stand_in.of("arm")
    assert len(post) == 1
    assert (post[0]["method"], post[0]["path"], post[0]["query"]) == \
        ("POST", path, [("api-version", api)])


def test_restart_site_check_reads_the_site_and_restarts_nothing(stand_in, client):
    proc = run_site(site_env(stand_in, PATH=client), "--check")
    assert proc.returncode == 0, proc.stderr
    assert "ok: the managed identity got a token and can read site" in proc.stdout
    assert_secrets_hidden(proc)
    assert [r["method"] for r in stand_in.requests] == ["GET", "GET"]
    assert_token_request(stand_in.requests[0])
    get = stand_in.requests[1]
    assert (get["path"], get["query"]) == (SITE_PATH, [("api-version", "2025-05-01")])
    assert get["headers"]["authorization"] == f"Bearer {TOKEN}"


ARM_ERROR = json.dumps({"error": {"code": "AuthorizationFailed", "message":
                                  "The client does not have authorization to perform action"}})

# (what the stand-in answers, exit code, words the error must hold, whether
# the POST was made)
ERROR_CASES = {
    "arm-401": ({"arm": (401, ARM_ERROR)}, 3,
                ["HTTP 401", "Microsoft.Web/sites/restart/Action", "Website Contributor"], True),
    "arm-403": ({"arm": (403, ARM_ERROR)}, 3,
                ["HTTP 403", "Microsoft.Web/sites/restart/Action", "Website Contributor",
                 "AuthorizationFailed"], True),
    "arm-404": ({"arm": (404, '{"error":{"code":"ResourceNotFound"}}')}, 4,
                ["HTTP 404", f"no site {SITE}", RESOURCE_GROUP, SUBSCRIPTION,
                 "ResourceNotFound"], True),
    "arm-409": ({"arm": (409, '{"error":{"code":"Conflict"}}')}, 5,
                ["409 Conflict", "another operation"], True),
    "arm-500": ({"arm": (500, "upstream failure")}, 1, ["HTTP 500", "upstream failure"], True),
    "token-400": ({"token": (400, '{"error":"invalid_request","error_description":'
                                  '"Identity not found"}')}, 2,
                  ["HTTP 400", "token request", "Identity not found"], False),
    "token-without-access-token": ({"token": (200, '{"token_type":"Bearer"}')}, 2,
                                   ["no access_token"], False),
    "arm-never-answers": ({"arm": "hang"}, 6, ["timed out after 1 s"], True),
    "token-never-answers": ({"token": "hang"}, 6, ["token request", "timed out after 1 s"], False),
    # The GET of the target, before any POST.
    "site-403": ({"site": (403, ARM_ERROR)}, 3,
                 ["HTTP 403", "Microsoft.Web/sites/read", "Website Contributor",
                  "on the site or slot itself", "AuthorizationFailed"], False),
    "site-404": ({"site": (404, '{"error":{"code":"ResourceNotFound"}}')}, 4,
                 ["HTTP 404", f"no site {SITE}", "ResourceNotFound"], False),
    "site-never-answers": ({"site": "hang"}, 6, ["GET", "timed out after 1 s"], False),
    "site-of-another-host": ({"site": (200, site_body(SITE_PATH).replace(
        HOST, "shop-web-staging.azurewebsites.net"))}, 7,
        ["has the host name shop-web-staging.azurewebsites.net", HOST,
         "refusing to restart another site or slot"], False),
    "site-without-host-name": ({"site": (200, '{"id":"x","properties":{}}')}, 7,
                               ["no properties.defaultHostName"], False),
    "site-with-two-host-names": ({"site": (200, json.dumps(
        {"properties": {"defaultHostName": HOST},
         "extra": {"defaultHostName": "elsewhere.azurewebsites.net"}}))}, 7,
        ["elsewhere.azurewebsites.net"], False),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_restart_site_error_paths(stand_in, client, case):
    answers, code, words, posted = ERROR_CASES[case]
    stand_in.answers.update(answers)
    started = time.monotonic()
    proc = run_site(site_env(stand_in, PATH=client, LOCKWARDEN_RESTART_TIMEOUT=1))
    elapsed = time.monotonic() - started
    assert proc.returncode == code, proc.stderr
    for w in words:
        assert w in proc.stderr, f"{w!r} not in {proc.stderr!r}"
    assert_secrets_hidden(proc)
    assert_token_request(stand_in.of("token")[0])
    assert len(stand_in.of("arm")) == (1 if posted else 0)
    if "hang" in answers.values():
        # It waited for its timeout, and not much longer.
        assert 0.9 <= elapsed < 10, elapsed


def test_restart_site_says_when_the_identity_is_missing(stand_in):
    proc = run_site(site_env(stand_in, IDENTITY_ENDPOINT=None, IDENTITY_HEADER=None))
    assert proc.returncode == 78
    assert "IDENTITY_ENDPOINT is not set: the app has no managed identity" in proc.stderr
    assert stand_in.requests == []


@pytest.mark.parametrize("extra,words", [
    ({"WEBSITE_SITE_NAME": None}, "no site name"),
    ({"WEBSITE_RESOURCE_GROUP": None}, "no resource group"),
    ({"WEBSITE_OWNER_NAME": None}, "no subscription id"),
    ({"IDENTITY_HEADER": None}, "IDENTITY_HEADER is not"),
    ({"LOCKWARDEN_RESTART_SITE": "shop/../../other"}, "characters Azure names never do"),
    ({"LOCKWARDEN_RESTART_TIMEOUT": "ten"}, "not a number of seconds"),
    ({"LOCKWARDEN_RESTART_TIMEOUT": "0"}, "more than 0"),
])
def test_restart_site_refuses_a_bad_configuration(stand_in, extra, words):
    proc = run_site(site_env(stand_in, **extra))
    assert proc.returncode == 78
    assert words in proc.stderr
    assert stand_in.requests == []


def test_restart_site_cannot_connect(stand_in):
    # A port that was just free: nothing listens there.
    probe = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    proc = run_site(site_env(stand_in, LOCKWARDEN_RESTART_ARM_URL=f"http://127.0.0.1:{port}"))
    assert proc.returncode == 6
    assert "failed" in proc.stderr
    assert_secrets_hidden(proc)


def test_restart_site_without_curl_or_python(stand_in, tmp_path):
    proc = run_site(site_env(stand_in, PATH=toolbox(tmp_path, with_python=False)))
    assert proc.returncode == 69
    assert "no HTTP client: neither curl, python3 nor wget is installed" in proc.stderr
    assert stand_in.requests == []


@pytest.mark.parametrize("stage", ["token", "imds", "site", "arm"])
def test_restart_site_puts_no_secret_on_a_command_line(stand_in, client, stage, tmp_path):
    """While each request hangs in turn (the token request, on App Service
    and from the instance metadata service, the GET of the site, the POST),
    no process's command line holds the token or the identity header
    (command lines are readable by everyone in ps). The App Service case
    takes its identity from the entrypoint's file, as from SSH."""
    stand_in.answers[stage] = "hang"
    if stage == "imds":
        env = imds_env(stand_in, PATH=client, LOCKWARDEN_RESTART_TIMEOUT=20)
    else:
        env = ssh_env(stand_in, PATH=client, LOCKWARDEN_RESTART_TIMEOUT=20,
                      LOCKWARDEN_ENV_FILE=write_env_file(tmp_path / "run", stand_in))
    proc = subprocess.Popen(["/bin/sh", str(RESTART_SITE)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_for(lambda: stand_in.of(stage), 10, f"the {stage} request")
        seen = 0
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                cmdline = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"restart" in cmdline or b"curl" in cmdline:
                seen += 1
            assert TOKEN.encode() not in cmdline
            assert IDENTITY_HEADER.encode() not in cmdline
        assert seen >= 2  # the script and its HTTP client were looked at
    finally:
        # The whole group: curl holds the output pipes open.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


# ------------------------------------------- the slot and the target's host

def test_restart_site_never_guesses_the_slot(stand_in):
    """A staging slot's container where the platform did not set
    WEBSITE_SLOT_NAME: it used to restart production. Now it refuses,
    before any request."""
    proc = run_site(site_env(stand_in, WEBSITE_SLOT_NAME=None,
                             WEBSITE_HOSTNAME=f"{SITE}-staging.azurewebsites.net"))
    assert proc.returncode == 78, proc.stderr
    assert "cannot tell whether this is the production site or a deployment slot" in proc.stderr
    assert "LOCKWARDEN_RESTART_SLOT=Production" in proc.stderr
    assert stand_in.requests == []


@pytest.mark.parametrize("slot,host,path", [
    ("Production", HOST, SITE_PATH),
    ("", HOST, SITE_PATH),
    ("staging", f"{SITE}-staging.azurewebsites.net", SITE_PATH + "/slots/staging"),
], ids=["production", "empty", "staging"])
def test_restart_site_slot_named_by_the_setting(stand_in, slot, host, path):
    proc = run_site(site_env(stand_in, WEBSITE_SLOT_NAME=None, WEBSITE_HOSTNAME=host,
                             LOCKWARDEN_RESTART_SLOT=slot))
    assert proc.returncode == 0, proc.stderr
    assert [(r["method"], r["path"]) for r in stand_in.requests[1:]] == \
        [("GET", path), ("POST", path + "/restart")]


def test_restart_site_refuses_a_target_that_is_not_this_container(stand_in):
    """A slot swapped with its non-sticky LOCKWARDEN_RESTART_SLOT=Production:
    the staging container would name production. The GET shows production's
    host name, which is not this container's: nothing is restarted."""
    proc = run_site(site_env(stand_in, WEBSITE_SLOT_NAME=None,
                             WEBSITE_HOSTNAME=f"{SITE}-staging.azurewebsites.net",
                             LOCKWARDEN_RESTART_SLOT="Production"))
    assert proc.returncode == 7, proc.stderr
    assert f"has the host name {HOST}" in proc.stderr
    assert f"{SITE}-staging.azurewebsites.net (WEBSITE_HOSTNAME)" in proc.stderr
    assert [r["method"] for r in stand_in.requests] == ["GET", "GET"]
    assert stand_in.of("arm") == []
    assert_secrets_hidden(proc)


def test_restart_site_compares_host_names_without_case(stand_in):
    proc = run_site(site_env(stand_in, WEBSITE_HOSTNAME=HOST.upper()))
    assert proc.returncode == 0, proc.stderr
    assert len(stand_in.of("arm")) == 1


def test_restart_site_check_refuses_another_host_too(stand_in):
    proc = run_site(site_env(stand_in, WEBSITE_HOSTNAME="other.azurewebsites.net"), "--check")
    assert proc.returncode == 7
    assert stand_in.of("arm") == []


@pytest.mark.parametrize("extra,words", [
    ({"WEBSITE_HOSTNAME": None}, "no host name to check the target against"),
    ({"WEBSITE_HOSTNAME": "shop web/../x"}, "is not a DNS name"),
    ({"LOCKWARDEN_RESTART_CLIENT_ID": CLIENT_ID, "LOCKWARDEN_RESTART_MI_RES_ID": MI_RES_ID},
     "set at most one of"),
    ({"LOCKWARDEN_RESTART_CLIENT_ID": "abc&resource=x"}, "is not an id"),
    ({"LOCKWARDEN_RESTART_MI_RES_ID": "shop-restarter"}, "is not an Azure resource id"),
    ({"LOCKWARDEN_RESTART_MI_RES_ID": MI_RES_ID + "&x=1"}, "is not an Azure resource id"),
], ids=["no-host", "bad-host", "two-identities", "bad-client-id", "bare-mi-name",
        "mi-res-id-injection"])
def test_restart_site_refuses_bad_target_or_identity_settings(stand_in, extra, words):
    proc = run_site(site_env(stand_in, **extra))
    assert proc.returncode == 78, proc.stderr
    assert words in proc.stderr
    assert stand_in.requests == []


def test_restart_site_hostname_setting_overrides(stand_in):
    proc = run_site(site_env(stand_in, WEBSITE_HOSTNAME=None, LOCKWARDEN_RESTART_HOSTNAME=HOST))
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------- user-assigned identities

@pytest.mark.parametrize("setting,value,param", [
    ("LOCKWARDEN_RESTART_CLIENT_ID", CLIENT_ID, "client_id"),
    ("LOCKWARDEN_RESTART_MI_RES_ID", MI_RES_ID, "mi_res_id"),
    ("LOCKWARDEN_RESTART_PRINCIPAL_ID", PRINCIPAL_ID, "principal_id"),
])
def test_restart_site_names_a_user_assigned_identity(stand_in, client, setting, value, param):
    """App Service's protocol: without client_id, mi_res_id or principal_id
    the endpoint answers for the system-assigned identity."""
    proc = run_site(site_env(stand_in, PATH=client, **{setting: value}))
    assert proc.returncode == 0, proc.stderr
    req = stand_in.of("token")[0]
    assert req["query"] == [("resource", "https://management.azure.com/"),
                            ("api-version", "2019-08-01"), (param, value)]
    assert req["headers"]["x-identity-header"] == IDENTITY_HEADER
    if param == "mi_res_id":
        assert "%2F" in req["raw_query"]  # the resource id's slashes, encoded
    assert len(stand_in.of("arm")) == 1


# ------------------------------------------- a VM: instance metadata service

def imds_env(stand_in, **extra):
    """An Azure VM: no App Service variables at all, the names set by hand,
    the metadata endpoint pointed at the stand-in."""
    env = site_env(stand_in, IDENTITY_ENDPOINT=None, IDENTITY_HEADER=None,
                   WEBSITE_OWNER_NAME=None, WEBSITE_RESOURCE_GROUP=None,
                   WEBSITE_SITE_NAME=None, WEBSITE_SLOT_NAME=None, WEBSITE_HOSTNAME=None,
                   LOCKWARDEN_RESTART_SUBSCRIPTION=SUBSCRIPTION,
                   LOCKWARDEN_RESTART_RESOURCE_GROUP=RESOURCE_GROUP,
                   LOCKWARDEN_RESTART_SITE=SITE, LOCKWARDEN_RESTART_SLOT="Production",
                   LOCKWARDEN_RESTART_HOSTNAME=HOST,
                   LOCKWARDEN_RESTART_IMDS_ENDPOINT=stand_in.url + IMDS_PATH)
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


@pytest.mark.parametrize("setting,value,param", [
    (None, None, None),
    ("LOCKWARDEN_RESTART_CLIENT_ID", CLIENT_ID, "client_id"),
    ("LOCKWARDEN_RESTART_MI_RES_ID", MI_RES_ID, "msi_res_id"),
    ("LOCKWARDEN_RESTART_PRINCIPAL_ID", PRINCIPAL_ID, "object_id"),
], ids=["system-assigned", "client-id", "resource-id", "object-id"])
def test_restart_site_on_a_vm_asks_the_instance_metadata_service(stand_in, client, setting,
                                                                 value, param):
    extra = {setting: value} if setting else {}
    proc = run_site(imds_env(stand_in, PATH=client, **extra))
    assert proc.returncode == 0, proc.stderr
    assert_secrets_hidden(proc)
    assert stand_in.of("token") == []
    req = stand_in.of("imds")[0]
    assert (req["method"], req["path"]) == ("GET", IMDS_PATH)
    want = [("api-version", "2018-02-01"), ("resource", "https://management.azure.com/")]
    if param:
        want.append((param, value))
    assert req["query"] == want
    assert req["headers"]["metadata"] == "true"
    assert "x-identity-header" not in req["headers"]
    assert "authorization" not in req["headers"]
    assert [(r["method"], r["path"]) for r in stand_in.requests[1:]] == \
        [("GET", SITE_PATH), ("POST", SITE_PATH + "/restart")]
    assert stand_in.of("arm")[0]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_restart_site_on_a_vm_says_when_no_metadata_service_answers(stand_in):
    probe = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    proc = run_site(imds_env(stand_in, LOCKWARDEN_RESTART_IMDS_ENDPOINT=f"http://127.0.0.1:{port}"
                             + IMDS_PATH))
    assert proc.returncode == 6
    assert "no IDENTITY_ENDPOINT, so this is taken for an Azure VM" in proc.stderr


def test_restart_site_on_a_vm_token_refused(stand_in):
    stand_in.answers["imds"] = (400, '{"error":"invalid_request","error_description":'
                                     '"Identity not found"}')
    proc = run_site(imds_env(stand_in))
    assert proc.returncode == 2
    assert "the instance metadata service answered HTTP 400" in proc.stderr
    assert "Identity not found" in proc.stderr
    assert stand_in.of("site") == [] and stand_in.of("arm") == []


def test_restart_site_default_metadata_endpoint_is_the_documented_one():
    text = RESTART_SITE.read_text()
    assert ("imds_endpoint=${LOCKWARDEN_RESTART_IMDS_ENDPOINT:-"
            "http://169.254.169.254/metadata/identity/oauth2/token}") in text


# --------------------------------------- from SSH: the entrypoint's env file

def environ_bytes(entries):
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in entries.items())


def container_environ(stand_in):
    """What the platform gives the container's main process."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
            "IDENTITY_ENDPOINT": stand_in.url + TOKEN_PATH, "IDENTITY_HEADER": IDENTITY_HEADER,
            "WEBSITE_OWNER_NAME": f"{SUBSCRIPTION}+{RESOURCE_GROUP}-WestEuropewebspace-Linux",
            "WEBSITE_RESOURCE_GROUP": RESOURCE_GROUP, "WEBSITE_SITE_NAME": SITE,
            "WEBSITE_SLOT_NAME": "Production", "WEBSITE_HOSTNAME": HOST,
            "LOCKWARDEN_RESTART_ARM_URL": stand_in.url, "LOCKWARDEN_RESTART_TIMEOUT": "5",
            "DATABASE_PASSWORD": "not-for-the-hook"}


def write_env_file(folder, stand_in, entries=None, mode=0o600):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"environ-{len(list(folder.iterdir()))}"
    path.write_bytes(environ_bytes(entries or container_environ(stand_in)))
    path.chmod(mode)
    return str(path)


def ssh_env(stand_in, **extra):
    """An SSH login's environment: none of the app settings."""
    env = {k: v for k, v in site_env(stand_in).items()
           if not k.startswith(("LOCKWARDEN_", "WEBSITE_", "IDENTITY_"))}
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def test_restart_site_from_ssh_reads_the_entrypoints_file(stand_in, client, tmp_path):
    env_file = write_env_file(tmp_path / "run", stand_in)
    proc = run_site(ssh_env(stand_in, PATH=client, LOCKWARDEN_ENV_FILE=env_file), "--check")
    assert proc.returncode == 0, proc.stderr
    assert_token_request(stand_in.of("token")[0])
    assert stand_in.of("site")[0]["path"] == SITE_PATH


def test_restart_site_own_environment_beats_the_file(stand_in, tmp_path):
    entries = container_environ(stand_in)
    entries.update({"WEBSITE_SLOT_NAME": "staging",
                    "WEBSITE_HOSTNAME": f"{SITE}-staging.azurewebsites.net"})
    env_file = write_env_file(tmp_path / "run", stand_in, entries)
    proc = run_site(ssh_env(stand_in, LOCKWARDEN_ENV_FILE=env_file,
                            WEBSITE_SLOT_NAME="Production", WEBSITE_HOSTNAME=HOST))
    assert proc.returncode == 0, proc.stderr
    assert stand_in.of("arm")[0]["path"] == SITE_PATH + "/restart"


def test_restart_site_takes_only_its_own_variables_from_the_file(stand_in, tmp_path):
    """A multi-line value cannot smuggle in an entry of its own."""
    entries = container_environ(stand_in)
    entries["NOTES"] = "line one\nLOCKWARDEN_RESTART_SITE=victim\nline three"
    env_file = write_env_file(tmp_path / "run", stand_in, entries)
    proc = run_site(ssh_env(stand_in, LOCKWARDEN_ENV_FILE=env_file))
    assert proc.returncode == 0, proc.stderr
    assert stand_in.of("arm")[0]["path"] == SITE_PATH + "/restart"


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_restart_site_ignores_a_file_others_can_write(stand_in, tmp_path, mode):
    env_file = write_env_file(tmp_path / "run", stand_in, mode=mode)
    proc = run_site(ssh_env(stand_in, LOCKWARDEN_ENV_FILE=env_file))
    assert f"ignoring {env_file}: writable by others" in proc.stderr
    assert proc.returncode == 78  # no identity then
    assert stand_in.requests == []


def test_restart_site_ignores_a_symlinked_file(stand_in, tmp_path):
    real = write_env_file(tmp_path / "run", stand_in)
    link = tmp_path / "link"
    link.symlink_to(real)
    proc = run_site(ssh_env(stand_in, LOCKWARDEN_ENV_FILE=str(link)))
    assert "not a regular file" in proc.stderr
    assert proc.returncode == 78


def test_restart_site_falls_back_to_pid1_environment(stand_in, client, tmp_path):
    """No entrypoint file (supervisord or another init as PID 1): PID 1's
    environment holds the app settings."""
    fake_proc = tmp_path / "proc"
    (fake_proc / "1").mkdir(parents=True)
    (fake_proc / "1" / "environ").write_bytes(environ_bytes(container_environ(stand_in)))
    proc = run_site(ssh_env(stand_in, PATH=client,
                            LOCKWARDEN_ENV_FILE=str(tmp_path / "no-such-file"),
                            LOCKWARDEN_PROC=str(fake_proc)))
    assert proc.returncode == 0, proc.stderr
    assert_token_request(stand_in.of("token")[0])
    assert len(stand_in.of("arm")) == 1


def test_restart_site_empty_env_file_setting_reads_nothing(stand_in, tmp_path):
    fake_proc = tmp_path / "proc"
    (fake_proc / "1").mkdir(parents=True)
    (fake_proc / "1" / "environ").write_bytes(environ_bytes(container_environ(stand_in)))
    proc = run_site(ssh_env(stand_in, LOCKWARDEN_ENV_FILE="", LOCKWARDEN_PROC=str(fake_proc)))
    assert proc.returncode == 78
    assert stand_in.requests == []


# -------------------------------------------------------- restart-container

def run_container_hook(env_extra, timeout=30):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWARDEN_")}
    env.update(env_extra)
    return subprocess.run(["/bin/sh", str(RESTART_CONTAINER)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_restart_container_ends_its_target():
    target = subprocess.Popen(["sleep", "300"])
    try:
        proc = run_container_hook({"LOCKWARDEN_RESTART_PID": str(target.pid)})
        assert proc.returncode == 0, proc.stderr
        assert f"sending SIGTERM to pid {target.pid} (sleep)" in proc.stdout
        assert f"pid {target.pid} (sleep) has ended" in proc.stdout
        # Ended by SIGTERM, before the hook said so (it is a zombie now).
        assert target.wait(timeout=5) == -signal.SIGTERM
    finally:
        target.kill()
        target.wait()


def test_restart_container_says_when_the_target_ignores_sigterm():
    target = subprocess.Popen(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    try:
        started = time.monotonic()
        proc = run_container_hook({"LOCKWARDEN_RESTART_PID": str(target.pid),
                                   "LOCKWARDEN_RESTART_WAIT": "1"})
        assert proc.returncode == 3
        assert "still running 1 s after SIGTERM" in proc.stderr
        assert "ignores signals it has no handler for" in proc.stderr
        assert time.monotonic() - started < 10
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()


@pytest.mark.parametrize("extra,code,words", [
    ({"LOCKWARDEN_RESTART_PID": "abc"}, 78, "is not a process id"),
    ({"LOCKWARDEN_RESTART_PID": "0"}, 78, "is not a process id"),
    ({"LOCKWARDEN_RESTART_WAIT": "soon"}, 78, "whole number of seconds"),
])
def test_restart_container_refuses_bad_settings(extra, code, words):
    proc = run_container_hook(extra)
    assert proc.returncode == code
    assert words in proc.stderr


def test_restart_container_no_such_process():
    gone = subprocess.Popen(["true"])
    gone.wait()
    proc = run_container_hook({"LOCKWARDEN_RESTART_PID": str(gone.pid)})
    assert proc.returncode == 1
    assert f"cannot signal pid {gone.pid}" in proc.stderr


@pytest.mark.parametrize("comm,exe", [("systemd", None), ("init", "/lib/systemd/systemd")],
                         ids=["comm", "exe"])
def test_restart_container_refuses_when_pid1_is_systemd(tmp_path, comm, exe):
    """On a systemd host (the .deb ships this hook) SIGTERM to PID 1 makes
    systemd re-execute itself and restarts nothing: the hook must refuse
    before it signals anything. /proc is a stand-in whose PID 1 is systemd."""
    proc_dir = tmp_path / "proc"
    (proc_dir / "1").mkdir(parents=True)
    (proc_dir / "1" / "comm").write_text(comm + "\n")
    if exe:
        (proc_dir / "1" / "exe").symlink_to(exe)
    target = subprocess.Popen(["sleep", "300"])
    try:
        proc = run_container_hook({"LOCKWARDEN_RESTART_PID": str(target.pid),
                                   "LOCKWARDEN_PROC": str(proc_dir)})
        assert proc.returncode == 4, proc.stderr
        assert "PID 1 is systemd" in proc.stderr
        assert "Nothing was signalled" in proc.stderr
        assert "sending SIGTERM" not in proc.stdout
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()


# --------------------------------------------- the real agent runs the hook

def kudu_time(seconds_from_now):
    t = time.gmtime(time.time() + seconds_from_now)
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", t)


def build_stuck_site(root):
    """A deployment that died holding the lock an hour ago (as test/demo.sh
    builds it): locks/deployment/info.lock, status.lock, pending and a temp
    record still Pending."""
    temp = root / "deployments" / "temp-1a2b3c4d"
    (root / "locks" / "deployment").mkdir(parents=True)
    temp.mkdir(parents=True)
    (root / "locks" / "deployment" / "info.lock").write_text(json.dumps(
        {"lockExpiry": kudu_time(20 * 60), "heldByPID": 83, "heldByTID": 45,
         "heldByOp": "Performing deployment", "heldByWorker": "abc123"},
        separators=(",", ":")))
    (root / "locks" / "status.lock").write_text(json.dumps(
        {"OperationName": "Performing deployment", "AcquiredDateTime": kudu_time(-3600),
         "StackTrace": "   at Kudu.Core.Infrastructure.LockFile.TryLockOperation()",
         "InstanceId": "abc123"}, indent=2))
    (root / "deployments" / "pending").write_text("")
    (temp / "status.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<deployment>\n'
        '  <id>temp-1a2b3c4d</id>\n  <author>N/A</author>\n  <deployer>Push-Deployer</deployer>\n'
        '  <authorEmail>N/A</authorEmail>\n  <message>Fetching changes.</message>\n'
        '  <progress />\n  <status>Pending</status>\n  <statusText>Receiving changes.</statusText>\n'
        f'  <lastSuccessEndTime />\n  <receivedTime>{kudu_time(-3600)}</receivedTime>\n'
        f'  <startTime>{kudu_time(-3600)}</startTime>\n  <endTime />\n'
        '  <complete>False</complete>\n  <is_temp>True</is_temp>\n'
        '  <is_readonly>False</is_readonly>\n</deployment>\n')
    (temp / "log.log").write_text(f"{kudu_time(-3600)},Fetching changes.,"
                                  "c5b1a2d4-0000-4000-8000-000000000000,0\n")
    old = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (old, old))
    os.utime(root, (old, old))


@pytest.mark.skipif(not (BIN and os.access(BIN, os.X_OK)),
                    reason="LOCKWARDEN_BIN is not set (run `make packaging-check`)")
def test_agent_runs_restart_site_after_a_cleanup(stand_in, tmp_path):
    site = tmp_path / "site"
    build_stuck_site(site)
    cfg = tmp_path / "lockwarden.ini"
    cfg.write_text(f"[site]\nroot = {site}\n"
                   "[policy]\nstuck_after = 2s\nquiet_period = 1s\n"
                   "[scan]\nrescan_interval = 500ms\n"
                   f"[hook]\ncommand = {RESTART_SITE}\ntimeout = 20s\ncooldown = 0s\n"
                   # Never the default /home/LogFiles of the machine running the tests.
                   f"[archive]\ndir = {tmp_path / 'archive'}\n")
    log_path = tmp_path / "agent.log"
    with open(log_path, "wb") as log:
        agent = subprocess.Popen([BIN, "run", "-c", str(cfg)], env=site_env(stand_in),
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_for(lambda: stand_in.of("arm"), 30, "the restart POST from the agent's hook")
        wait_for(lambda: "hook exited with status 0" in log_path.read_text(), 10,
                 "the agent to log the hook's exit")
        post = stand_in.of("arm")[0]
        assert (post["method"], post["path"]) == ("POST", SITE_PATH + "/restart")
        assert post["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert_token_request(stand_in.of("token")[0])
        assert not (site / "locks" / "deployment").exists()
        assert TOKEN not in log_path.read_text()
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, log_path.read_text()
