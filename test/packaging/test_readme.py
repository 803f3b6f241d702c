"""The Dockerfile snippets of README.md and docs/install.md, and packaging/container/Dockerfile, against
Docker's parsing rules.

No Docker engine runs here, so a small checker applies the rules a build
trips over:
  - `#` starts a comment only at the start of a line: after an instruction
    it is part of it (`FROM image # note` names no image, `CMD [...] # note`
    is no longer JSON);
  - a CMD or ENTRYPOINT that starts with `[` must parse as a JSON array of
    strings, else Docker silently runs it through `/bin/sh -c`; ENTRYPOINT
    must be in that JSON (exec) form, or it never gets CMD as its arguments;
  - every instruction is one Docker knows; the first is FROM (ARG aside);
    FROM is `image [AS name]`; COPY --from names an earlier stage.
A control feeds it the snippet as it was before, which must fail.
"""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
INSTALL_DOC = REPO / "docs" / "install.md"
# The front page and the pages its depth moved to, read as one text.
PAGES = [README] + sorted((REPO / "docs").glob("*.md"))
DOCKERFILE = REPO / "packaging" / "container" / "Dockerfile"

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
                "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
                "HEALTHCHECK", "SHELL"}
# An image reference: [registry[:port]/]path[:tag][@digest], lower case path.
IMAGE_RE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
                      r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                      r"(?:@sha256:[0-9a-f]{64})?$")


def unquoted_hash(text):
    """Index of a `#` that follows whitespace outside quotes, or -1."""
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and i > 0 and text[i - 1] in " \t":
            return i
    return -1


def instructions(text):
    """[(line number, INSTRUCTION, arguments)] with continuations joined and
    comment lines dropped, as Docker reads them; plus the errors found on
    the way (a comment after an instruction)."""
    out, errors = [], []
    current, start = None, 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # a comment line, even inside a continuation
        if not stripped and current is None:
            continue
        at = unquoted_hash(raw)
        if at >= 0:
            errors.append(f"line {number}: '#' after an instruction is not a comment: {raw.strip()}")
        continued = raw.rstrip().endswith("\\")
        piece = raw.rstrip()[:-1] if continued else raw
        if current is None:
            current, start = piece, number
        else:
            current += " " + piece.strip()
        if not continued:
            word, _, args = current.strip().partition(" ")
            out.append((start, word, args.strip()))
            current = None
    if current is not None:
        errors.append(f"line {start}: the file ends inside a continuation")
    return out, errors


def check_dockerfile(text):
    """The list of rule violations in a Dockerfile's text (empty: fine)."""
    found, errors = instructions(text)
    stages = []
    seen_from = False
    for number, word, args in found:
        name = word.upper()
        if name not in INSTRUCTIONS:
            errors.append(f"line {number}: unknown instruction {word}")
            continue
        if not seen_from and name not in ("FROM", "ARG"):
            errors.append(f"line {number}: {name} before the first FROM")
        if name == "FROM":
            seen_from = True
            words = [w for w in args.split() if not w.startswith("--platform=")]
            if len(words) == 3 and words[1].lower() == "as":
                stages.append(words[2].lower())
            elif len(words) == 1:
                stages.append(None)
            else:
                errors.append(f"line {number}: FROM takes an image and at most 'AS name': {args}")
                continue
            if not IMAGE_RE.match(words[0]) and words[0].lower() not in stages[:-1]:
                errors.append(f"line {number}: not an image reference: {words[0]}")
        elif name in ("CMD", "ENTRYPOINT", "RUN", "SHELL") and args.startswith("["):
            try:
                value = json.loads(args)
            except ValueError as e:
                errors.append(f"line {number}: {name} starts with '[' but is not JSON ({e}); "
                              "Docker would run it through /bin/sh -c")
                continue
            if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                errors.append(f"line {number}: {name} must be a JSON array of strings")
        elif name in ("COPY", "ADD"):
            m = re.search(r"--from=(\S+)", args)
            if m and not m.group(1).isdigit() and m.group(1).lower() not in stages[:-1] \
                    and ":" not in m.group(1) and "/" not in m.group(1):
                errors.append(f"line {number}: COPY --from={m.group(1)} names no earlier stage")
        if name == "ENTRYPOINT" and not args.startswith("["):
            errors.append(f"line {number}: ENTRYPOINT in shell form never gets CMD as arguments")
        if name == "CMD" and not args.startswith("["):
            errors.append(f"line {number}: CMD is not in JSON form")
    if not seen_from:
        errors.append("no FROM")
    return errors


def readme_snippets():
    text = README.read_text() + INSTALL_DOC.read_text()
    return re.findall(r"^```dockerfile\n(.*?)^```", text, re.M | re.S)


def test_readme_has_a_dockerfile_snippet():
    snippets = readme_snippets()
    assert snippets, "README.md and docs/install.md hold no ```dockerfile block"
    assert any("ENTRYPOINT" in s and "CMD" in s for s in snippets)


@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_dockerfile_snippet_follows_dockerfile_rules(index):
    errors = check_dockerfile(readme_snippets()[index])
    assert errors == [], "\n".join(errors)


STAGE = REPO / "packaging" / "container" / "stage.sh"


def test_readme_snippet_installs_what_the_entrypoint_needs():
    snippet = "\n".join(readme_snippets())
    assert "/usr/lib/lockwarden/container/entrypoint.sh" in snippet
    assert 'ENTRYPOINT ["/usr/lib/lockwarden/container/entrypoint.sh"]' in snippet
    # The build stage stages everything with stage.sh, which installs the
    # entrypoint, the login profile, the hooks and the sshd settings that
    # make the entrypoint's sshd listen on 2222.
    assert "packaging/container/stage.sh" in snippet
    staged = STAGE.read_text()
    for path in ("/usr/bin/lockwarden", "/usr/lib/lockwarden/container/entrypoint.sh",
                 "/etc/profile.d/lockwarden-app-settings.sh",
                 "/etc/ssh/sshd_config.d/app-service.conf",
                 "/usr/lib/lockwarden/hooks/restart-site",
                 "/usr/lib/lockwarden/hooks/restart-container"):
        assert path in staged, path
    assert "build/static/lockwarden" in staged
    assert "Port 2222" in (REPO / "packaging" / "container" / "sshd_config").read_text()


def test_readme_snippet_installs_into_any_base_in_three_lines():
    """The final stage is the user's image plus three instructions: no
    package manager (apt, apk, tdnf differ by base), nothing but the static
    build copied in, the entrypoint, and the app (after the base's own
    entrypoint)."""
    snippet = next(s for s in readme_snippets() if "ENTRYPOINT" in s)
    found, errors = instructions(snippet)
    assert errors == []
    last_from = max(i for i, (_, word, _) in enumerate(found) if word.upper() == "FROM")
    build, final = found[:last_from], found[last_from + 1:]
    assert [word.upper() for _, word, _ in final] == ["COPY", "ENTRYPOINT", "CMD"], final
    assert re.match(r"--from=\S+ /out/ /$", final[0][2])
    assert any("make" in args and "static" in args for _, word, args in build if word == "RUN")
    # The source: a build context path that the README says how to fill.
    assert any(word == "COPY" and args.startswith("lockwarden/") for _, word, args in build)
    text = readme_text()
    assert "git clone --branch" in text
    assert "Keep your base image's own entrypoint" in text


def test_readme_has_the_base_image_table():
    text = INSTALL_DOC.read_text()
    section = text[text.index("## Base images: what to install and what was tested"):]
    section = section[:section.index("\n## ", 5)]
    for base in ("Debian 12", "Debian 13", "Debian 11", "Ubuntu", "Alpine", "Azure Linux"):
        assert f"| {base}" in section, base
    assert "tested, and how" in section


def test_example_dockerfile_follows_dockerfile_rules():
    errors = check_dockerfile(DOCKERFILE.read_text())
    assert errors == [], "\n".join(errors)


# The snippet as the README had it: both trailing comments break the build.
BROKEN_SNIPPET = """\
FROM debian:12-slim AS lockwarden-build
RUN make -C /src && make -C /src install PREFIX=/usr DESTDIR=/out \\
 && install -D -m 0755 /src/packaging/container/entrypoint.sh \\
        /out/usr/lib/lockwarden/container/entrypoint.sh

FROM your-app-image                   # Debian 12 based
COPY --from=lockwarden-build /out/ /
ENTRYPOINT ["/usr/lib/lockwarden/container/entrypoint.sh"]
CMD ["node", "server.js"]             # your app, as before
"""


def test_checker_catches_the_old_snippet():
    errors = check_dockerfile(BROKEN_SNIPPET)
    assert any("line 6" in e and "'#' after an instruction" in e for e in errors), errors
    assert any("line 6" in e and "FROM takes an image" in e for e in errors), errors
    assert any("line 9" in e and "not JSON" in e for e in errors), errors


@pytest.mark.parametrize("text,words", [
    ("FROM debian:12\nENTRYPOINT /bin/entrypoint.sh\n", "shell form"),
    ("FROM debian:12\nCMD node server.js\n", "CMD is not in JSON form"),
    ("FROM debian:12\nCMD ['node']\n", "not JSON"),
    ("FROM debian:12\nCOPPY . /src\n", "unknown instruction COPPY"),
    ("RUN true\nFROM debian:12\n", "before the first FROM"),
    ("FROM debian:12\nCOPY --from=build /out/ /\n", "names no earlier stage"),
    ("FROM Debian:12\n", "not an image reference"),
    ("FROM debian:12\nRUN echo a \\\n", "ends inside a continuation"),
], ids=["shell-entrypoint", "shell-cmd", "single-quotes", "typo", "run-first", "no-stage",
        "upper-case-image", "open-continuation"])
def test_checker_catches(text, words):
    errors = check_dockerfile(text)
    assert any(words in e for e in errors), errors


def test_checker_accepts_comment_lines_inside_a_continuation():
    text = "FROM debian:12\nRUN apt-get update \\\n# a note\n && true\nCMD [\"true\"]\n"
    assert check_dockerfile(text) == []


# ------------------------------------------------------------ what it says

def readme_text():
    # Markdown wraps lines anywhere: compare with single spaces.
    return " ".join(" ".join(p.read_text() for p in PAGES).split())


def test_readme_turns_on_container_logging_for_the_log_stream():
    """A custom container's output reaches the log stream only with
    container logging on."""
    text = readme_text()
    assert "--docker-container-logging filesystem" in text
    assert "Application logging: File System" in text


def test_readme_does_not_overclaim_what_restarts_kudu():
    text = readme_text()
    assert "only a site restart restarts Kudu" not in text
    assert "public reports differ" in text
    assert "leaves Kudu's running" in text


def test_readme_explains_slots_and_scopes_the_role_to_the_site_or_slot():
    text = readme_text()
    assert "never guesses the slot" in text
    assert "LOCKWARDEN_RESTART_SLOT=Production" in text
    assert "deployment slot setting" in text
    assert "defaultHostName" in text and "WEBSITE_HOSTNAME" in text
    assert "on the site or slot itself" in text
    assert "LOCKWARDEN_RESTART_CLIENT_ID" in text
    for path in (*PAGES, REPO / "packaging" / "hooks" / "restart-site",
                 REPO / "packaging" / "debian" / "README.Debian"):
        flat = " ".join(path.read_text().replace("#", " ").split())
        assert "on the site or its resource group" not in flat, path
