"""One source of truth: the man pages, `lockwarden --help` and the README's
pages must say the same thing where a user relies on it.

  - the removal order: locks/status.lock, locks/deployments.lock,
    deployments/pending, deployments/temp-*, and locks/deployment last;
  - the `run --once` exit codes: every value of agent/agent_options.h's
    enum agent_once_exit, in --help, lockwarden(8) and docs/usage.md;
  - every configuration key and its default, from agent/config.def, in
    docs/configuration.md and lockwarden.ini(5);
  - what the man page's examples recommend, and that every path under
    /usr/share/doc/lockwarden/ the pages name is one the .deb ships.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAN_SRC = REPO / "packaging" / "man" / "lockwarden.man.in"
GENMAN = REPO / "packaging" / "man" / "genman.py"
DOCS = REPO / "docs"
BIN = Path(os.environ.get("LOCKWARDEN_BIN", REPO / "build" / "lockwarden"))

REMOVAL_ORDER = ["locks/status.lock", "locks/deployments.lock", "deployments/pending",
                 "deployments/temp-*", "locks/deployment"]


def once_exit_codes():
    text = (REPO / "agent" / "agent_options.h").read_text()
    enum = re.search(r"enum agent_once_exit \{(.*?)\};", text, re.S).group(1)
    return sorted(int(v) for v in re.findall(r"=\s*(\d+)", enum))


def config_keys():
    """[(section, key, default)] straight from config.def."""
    return re.findall(r'^CONFIG_KEY\(\s*(\w+)\s*,\s*(\w+)\s*,\s*\w+\s*,\s*"([^"]*)"',
                      (REPO / "agent" / "config.def").read_text(), re.M)


def flat(text):
    return " ".join(text.split())


@pytest.fixture(scope="module")
def man_pages(tmp_path_factory):
    """{name: rendered text} of the pages genman.py writes."""
    if shutil.which("man") is None:
        pytest.skip("man is missing (apt-get install man-db groff-base)")
    out = tmp_path_factory.mktemp("man")
    r = subprocess.run(["/usr/bin/python3", str(GENMAN), "--outdir", str(out)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    pages = {}
    for page in out.iterdir():
        r = subprocess.run(["man", "-E", "UTF-8", "-l", str(page)],
                           env=dict(os.environ, MANWIDTH="200"),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        # No overstrikes, no hyphenation (groff's U+2010 at a line end).
        text = re.sub(r"\u2010\n\s*", "", re.sub(r".\x08", "", r.stdout))
        pages[page.name] = text.replace("\u2010", "-")
    return pages


@pytest.fixture(scope="module")
def help_text():
    if not BIN.exists():
        pytest.skip(f"{BIN} is not built (make)")
    r = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    return r.stdout


# ------------------------------------------------------------ removal order

def in_order(text, start_marker):
    """The positions of REMOVAL_ORDER's names in the passage after
    start_marker (up to 600 characters), each the first match."""
    start = text.index(start_marker)
    passage = text[start:start + 600]
    positions = []
    for name in REMOVAL_ORDER:
        # locks/deployment must not match locks/deployments.lock.
        m = re.search(re.escape(name) + (r"(?![\w.])" if name == "locks/deployment" else ""),
                      passage)
        assert m, f"{name} is missing after {start_marker!r}: {passage!r}"
        positions.append(m.start())
    return positions


@pytest.mark.parametrize("where,marker", [
    ("README.md", "Only the named leftovers"),
    ("docs/how-it-decides.md", "Then it removes exactly the leftovers"),
])
def test_the_docs_give_the_removal_order(where, marker):
    positions = in_order(flat((REPO / where).read_text()), marker)
    assert positions == sorted(positions), f"{where}: not in the order {REMOVAL_ORDER}"


def test_the_man_page_gives_the_removal_order(man_pages):
    positions = in_order(flat(man_pages["lockwarden.8"]), "Then it removes, in this order")
    assert positions == sorted(positions), f"lockwarden(8): not in the order {REMOVAL_ORDER}"


def test_the_order_check_catches_the_lock_first():
    text = "Then it removes, in this order, locks/deployment/, locks/status.lock, " \
           "locks/deployments.lock, deployments/pending, every deployments/temp-* record"
    positions = in_order(text, "Then it removes")
    assert positions != sorted(positions)


# ------------------------------------------------------------ --once exit codes

def test_the_enum_is_what_the_docs_expect():
    assert once_exit_codes() == [0, 2, 3, 4, 5, 6, 7]


def test_help_lists_every_once_exit_code(help_text):
    section = help_text[help_text.index("run --once ends with"):]
    listed = sorted(int(c) for c in re.findall(r"^  (\d+) ", section, re.M))
    assert listed == once_exit_codes()


def test_the_man_page_lists_every_once_exit_code(man_pages):
    text = man_pages["lockwarden.8"]
    section = text[text.index("EXIT STATUS"):text.index("\nENVIRONMENT")]
    section = section[section.index("run --once ends with"):]
    listed = sorted(int(c) for c in re.findall(r"^\s+(\d+)\s+\S", section, re.M))
    assert listed == once_exit_codes()


def test_usage_doc_lists_every_once_exit_code():
    text = (DOCS / "usage.md").read_text()
    table = text[text.index("| code | meaning |"):]
    table = table[:table.index("\n\n")]
    listed = sorted(int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M))
    assert listed == once_exit_codes()


# ------------------------------------------------------------ keys and defaults

def shown(default):
    return "(empty)" if default == "" else f"`{default}`"


@pytest.mark.parametrize("section,key,default", config_keys(),
                         ids=[f"{s}.{k}" for s, k, _ in config_keys()])
def test_configuration_doc_gives_the_default(section, key, default):
    text = (DOCS / "configuration.md").read_text()
    row = re.search(rf"^\| `\[{section}\] {key}` \| ([^|]*) \|", text, re.M)
    assert row, f"docs/configuration.md has no row for [{section}] {key}"
    assert row.group(1).strip() == shown(default), \
        f"[{section}] {key}: docs say {row.group(1).strip()}, config.def says {default!r}"


def test_configuration_doc_names_no_key_config_def_lacks():
    text = (DOCS / "configuration.md").read_text()
    rows = set(re.findall(r"^\| `\[(\w+)\] (\w+)` \|", text, re.M))
    assert rows == {(s, k) for s, k, _ in config_keys()}


def test_the_ini_page_gives_every_default(man_pages):
    text = man_pages["lockwarden.ini.5"]
    keys = text[text.index("\nKEYS"):text.index("\nEXAMPLES")]
    for section, key, default in config_keys():
        want = f"(default {default or 'empty'})"
        assert re.search(rf"^\s+{key} = \w+ {re.escape(want)}\s*$", keys, re.M), \
            f"lockwarden.ini(5) does not show [{section}] {want}"


# ------------------------------------------------------------ examples and paths

def test_the_man_page_does_not_recommend_backgrounding_then_exec():
    text = MAN_SRC.read_text()
    examples = text[text.index(".SH EXAMPLES"):]
    assert not re.search(r"lockwarden run &\s*\n\s*exec ", examples), \
        "EXAMPLES recommend `run &` then `exec`: nothing would stop lockwarden cleanly"
    assert "entrypoint.sh" in examples


def test_every_doc_path_the_pages_name_is_shipped():
    """Each /usr/share/doc/lockwarden/X the man page or --help names is a
    file of the tree that debian/docs installs there."""
    shipped = (REPO / "packaging" / "debian" / "docs").read_text().split()
    assert "README.md" in shipped and "docs" in shipped
    sources = MAN_SRC.read_text() + (REPO / "agent" / "main.c").read_text()
    named = set(re.findall(r"/usr/share/doc/lockwarden/([\w./-]*\w)", sources))
    assert named, "the pages point at nothing under /usr/share/doc/lockwarden/"
    for rel in named:
        assert rel.split("/")[0] in shipped, f"{rel} is not in debian/docs"
        assert (REPO / rel).exists(), f"the pages name {rel}, which the tree does not hold"
    assert "README" not in re.sub(r"/usr/share/doc/lockwarden/README\.md", "",
                                  MAN_SRC.read_text()).replace("README.Debian", ""), \
        "the man page names a README by a path the package does not ship"
