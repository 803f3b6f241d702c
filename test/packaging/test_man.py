"""The man pages lockwarden(8) and lockwarden.ini(5).

Both come from one source, packaging/man/lockwarden.man.in, through
packaging/man/genman.py, which writes the KEYS section of lockwarden.ini(5)
from agent/config.def, the table the configuration parser is built from.
These tests check that `make man` writes pages man(1) renders without a
single warning, that every key of the table is documented exactly once
(and nothing that is not in the table), and that the generator really
follows the table rather than a copy of it.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENMAN = REPO / "packaging" / "man" / "genman.py"
CONFIG_DEF = REPO / "agent" / "config.def"
PAGES = ["lockwarden.8", "lockwarden.ini.5"]

pytestmark = pytest.mark.skipif(shutil.which("man") is None,
                                reason="man is missing (apt-get install man-db groff-base)")


def makefile_version():
    m = re.search(r"^VERSION\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert m, "no VERSION in the Makefile"
    return m.group(1)


def table_keys(path=CONFIG_DEF):
    """[(section, key, type, default)] read straight from config.def, with
    a regular expression of its own (not the generator's parser)."""
    text = Path(path).read_text()
    return re.findall(r'^CONFIG_KEY\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*"([^"]*)"',
                      text, re.M)


def man_warnings(page):
    """What man(1) and groff say on stderr while rendering page."""
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page)],
                       env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)
    return r.returncode, r.stderr


def render(page):
    r = subprocess.run(["man", "-E", "UTF-8", "-l", str(page)],
                       env=dict(os.environ, MANWIDTH="200"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # No bold/underline overstrikes, no hyphenation to trip over.
    return re.sub(r".\x08", "", r.stdout)


def genman(outdir, *extra):
    return subprocess.run(["/usr/bin/python3", str(GENMAN), "--outdir", str(outdir), *extra],
                          capture_output=True, text=True, timeout=30)


def documented_keys(roff):
    """[(section, key, tag line)] of the KEYS section of a page's source:
    each `.TP` tag `\\fBkey\\fR = ...` under its `.SS "[section]"`."""
    out, section = [], None
    lines = roff.splitlines()
    in_keys = False
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            in_keys = line.strip() == ".SH KEYS"
            continue
        if not in_keys:
            continue
        m = re.fullmatch(r'\.SS "\[(\w+)\]"', line)
        if m:
            section = m.group(1)
        elif line == ".TP" and i + 1 < len(lines):
            m = re.match(r"\\fB(\w+)\\fR = ", lines[i + 1])
            if m:
                out.append((section, m.group(1), lines[i + 1]))
    return out


@pytest.fixture(scope="module")
def built_pages():
    """`make man`, the way the package build makes them."""
    r = subprocess.run(["make", "-s", "-C", str(REPO), "man"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"make man failed:\n{r.stdout}{r.stderr}"
    pages = {name: REPO / "build" / "man" / name for name in PAGES}
    for path in pages.values():
        assert path.is_file(), f"make man did not write {path}"
    return pages


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_without_warnings(built_pages, name):
    code, stderr = man_warnings(built_pages[name])
    assert code == 0 and stderr == "", f"man --warnings on {name} (exit {code}):\n{stderr}"


def test_a_broken_page_does_warn(tmp_path):
    """The control: the same check reports a page with an unknown macro and
    an unknown font, so the test above can fail."""
    page = tmp_path / "broken.8"
    page.write_text('.TH BROKEN 8 "2026-01-01" "x" "y"\n.SH NAME\nbroken \\- a page\n'
                    ".SH DESCRIPTION\n.NOSUCHMACRO\n\\fQtext\\fR\n")
    code, stderr = man_warnings(page)
    assert "NOSUCHMACRO" in stderr


def test_every_key_is_documented_exactly_once(built_pages):
    keys = table_keys()
    assert keys, "no keys found in config.def"
    ini5 = built_pages["lockwarden.ini.5"].read_text()
    seen = documented_keys(ini5)
    seen_names = [(section, key) for section, key, _ in seen]
    for section, key, typ, default in keys:
        assert seen_names.count((section, key)) == 1, \
            f"[{section}] {key} is documented {seen_names.count((section, key))} times"
    extra = set(seen_names) - {(s, k) for s, k, _, _ in keys}
    assert not extra, f"documented but not in config.def: {sorted(extra)}"
    # lockwarden(8) points to lockwarden.ini(5) instead of repeating keys.
    assert documented_keys(built_pages["lockwarden.8"].read_text().replace(
        ".SH CONFIGURATION", ".SH KEYS")) == []


def test_each_key_shows_its_default_and_environment_variable(built_pages):
    text = render(built_pages["lockwarden.ini.5"])
    for section, key, typ, default in table_keys():
        shown_default = f"(default {default})" if default else "(default empty)"
        assert re.search(rf"^\s+{key} = \w+ {re.escape(shown_default)}$", text, re.M), \
            f"[{section}] {key}: no '{key} = <type> {shown_default}' line"
        assert f"LOCKWARDEN_{section.upper()}_{key.upper()}" in text


def test_placeholders_are_filled(built_pages):
    version = makefile_version()
    for name, path in built_pages.items():
        roff = path.read_text()
        assert not re.search(r"@[A-Z_]+@", roff), f"{name}: a placeholder is left"
        assert re.match(rf'\.TH \S+ \d "\d{{4}}-\d\d-\d\d" "lockwarden {re.escape(version)}"',
                        roff), f"{name}: unexpected .TH line {roff.splitlines()[0]!r}"
    assert "/etc/lockwarden/lockwarden.ini" in render(built_pages["lockwarden.ini.5"])


def test_the_generator_follows_the_table(tmp_path):
    """A key added to a copy of config.def appears in the page, with bounds
    computed from its C expressions and a doc line full of commas and
    parentheses kept whole; a key dropped from it disappears."""
    text = CONFIG_DEF.read_text()
    first = table_keys()[0]
    text = re.sub(rf"^CONFIG_KEY\(\s*{first[0]}\s*,\s*{first[1]}\s*,.*?\)\n(?=CONFIG_KEY|#undef)",
                  "", text, count=1, flags=re.M | re.S)
    text = text.replace("#undef CONFIG_KEY",
                        'CONFIG_KEY(scan, probe_every, DURATION, "90s", 250, 2 * 24 * 3600 * 1000ULL,\n'
                        '\t"how often (in wall time) to probe, e.g. 1m, 2m, or never")\n'
                        "#undef CONFIG_KEY")
    fake = tmp_path / "config.def"
    fake.write_text(text)
    r = genman(tmp_path / "out", "--config-def", str(fake))
    assert r.returncode == 0, r.stderr
    page = render(tmp_path / "out" / "lockwarden.ini.5")
    assert re.search(r"^\s+probe_every = duration \(default 90s\)$", page, re.M)
    assert "How often (in wall time) to probe, e.g. 1m, 2m, or never." in page
    assert "From 250ms to 2d." in page
    assert "LOCKWARDEN_SCAN_PROBE_EVERY" in page
    assert not re.search(rf"^\s+{first[1]} = ", page, re.M), f"{first[1]} is still documented"


BAD_TABLES = [
    ("six-arguments", 'CONFIG_KEY(site, root, PATH, "/x", 0, "doc")\n', "arguments"),
    ("unknown-type", 'CONFIG_KEY(site, root, NUMBER, "1", 0, 0, "doc")\n', "unknown type"),
    ("twice", 'CONFIG_KEY(log, level, LEVEL, "info", 0, 0, "a")\n'
              'CONFIG_KEY(log, level, LEVEL, "info", 0, 0, "b")\n', "twice"),
    ("bad-bound", 'CONFIG_KEY(scan, x, DURATION, "1s", 0, sizeof(int), "doc")\n',
     "not an integer"),
    ("empty", "/* nothing */\n", "no CONFIG_KEY"),
]


@pytest.mark.parametrize("table,why", [(t, w) for _, t, w in BAD_TABLES],
                         ids=[n for n, _, _ in BAD_TABLES])
def test_the_generator_refuses_a_table_it_cannot_read(tmp_path, table, why):
    fake = tmp_path / "config.def"
    fake.write_text(table)
    r = genman(tmp_path / "out", "--config-def", str(fake))
    assert r.returncode != 0 and why in r.stderr, r.stderr
    assert not (tmp_path / "out" / "lockwarden.ini.5").exists()


BIN = os.environ.get("LOCKWARDEN_BIN", "")


@pytest.mark.skipif(not (BIN and os.access(BIN, os.X_OK)),
                    reason="LOCKWARDEN_BIN is not set or not executable")
def test_every_option_and_command_of_help_is_in_the_page(built_pages):
    """`lockwarden --help` is the binary's own word on its command line; a
    new option or command must reach lockwarden(8) too."""
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b", r.stdout))
    commands = set(re.findall(r"^\s+(run|report|check-config)\s", r.stdout, re.M))
    assert "--help" in options and "run" in commands, r.stdout
    page = render(built_pages["lockwarden.8"])
    missing = sorted(o for o in options | commands
                     if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", page))
    assert not missing, f"in --help but not in lockwarden(8): {missing}"
