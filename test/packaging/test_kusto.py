"""The Kusto queries of docs/fleet.md over AppServiceConsoleLogs, parsed and analysed
by Microsoft's Kusto language library (npm @kusto/language-service-next,
installed into build/kusto/ on first use) against the table's documented
columns: syntax, column names, functions and types. No workspace is
queried here (docs/fleet.md says what that leaves unchecked)."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLEET_DOC = REPO / "docs" / "fleet.md"
CHECKER = Path(__file__).resolve().parent / "kusto_check.js"
KUSTO_DIR = REPO / "build" / "kusto"
PACKAGE = "@kusto/language-service-next@12.4.1"
MODULE = KUSTO_DIR / "node_modules" / "@kusto" / "language-service-next"


def readme_queries():
    return re.findall(r"```kusto\n(.*?)```", FLEET_DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def kusto():
    """The path holding node_modules, or a skip naming what is missing."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: docs/fleet.md's Kusto queries were not parsed")
    if not MODULE.is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed: cannot fetch " + PACKAGE)
        KUSTO_DIR.mkdir(parents=True, exist_ok=True)
        (KUSTO_DIR / "package.json").write_text('{"name": "kusto-check", "private": true}\n')
        try:
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", PACKAGE],
                               cwd=KUSTO_DIR, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {PACKAGE} did not finish in 300 s")
        if r.returncode != 0 or not MODULE.is_dir():
            pytest.skip(f"npm install {PACKAGE} failed (offline?): {r.stderr.strip()[-300:]}")
    return KUSTO_DIR / "node_modules"


def check(kusto, tmp_path, queries):
    files = []
    for i, q in enumerate(queries):
        f = tmp_path / f"q{i}.kql"
        f.write_text(q)
        files.append(str(f))
    r = subprocess.run(["node", str(CHECKER), *files], capture_output=True, text=True,
                       env=dict(os.environ, NODE_PATH=str(kusto)), timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(line)["diagnostics"] for line in r.stdout.splitlines()]


def test_readme_has_the_operators_queries():
    queries = readme_queries()
    assert len(queries) >= 4, "docs/fleet.md's Kusto queries are missing"
    for q in queries:
        assert q.lstrip().startswith("AppServiceConsoleLogs"), q
        assert "parse_json(ResultDescription)" in q, q


def test_every_readme_query_parses_against_the_table(kusto, tmp_path):
    queries = readme_queries()
    for q, diags in zip(queries, check(kusto, tmp_path, queries)):
        assert diags == [], f"{diags}\nin:\n{q}"


def test_the_checker_catches_mistakes(kusto, tmp_path):
    """A control: a misspelt column, an unknown function and a syntax error
    are each reported, so a clean result above means something."""
    bad = ["AppServiceConsoleLogs | where ResultDescriptio startswith 'x'",
           "AppServiceConsoleLogs | extend e = parse_jsn(ResultDescription)",
           "AppServiceConsoleLogs | summarize count() by | where"]
    for q, diags in zip(bad, check(kusto, tmp_path, bad)):
        assert diags, f"no diagnostic for: {q}"
