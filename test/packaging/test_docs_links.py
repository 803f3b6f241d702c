"""Every relative link and anchor in README.md and docs/*.md resolves.

The README is a front page and the depth lives under docs/, so a section
moved or renamed breaks links silently; this test reads every page, makes
each heading's anchor as GitHub does, and checks each link against them."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def without_code(text):
    """The text with fenced blocks and inline code blanked out: a link
    inside code is not a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "``", text)


def anchors(path):
    """GitHub's anchors: lower case, punctuation dropped, spaces as hyphens,
    a repeated heading numbered -1, -2..."""
    seen, out = {}, set()
    for line in re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S).splitlines():
        m = re.match(r"#{1,6} (.*)", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links():
    for page in PAGES:
        for target in LINK.findall(without_code(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            yield page, target


def test_every_page_is_reachable_from_the_front_page():
    front = {(REPO / t.split("#")[0]).resolve()
             for p, t in links() if p.name == "README.md" and p.parent == REPO}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in front]
    assert missing == [], f"docs pages the front page does not link: {missing}"


@pytest.mark.parametrize("page,target", list(links()),
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.name}: {target}: no such file"
    if anchor:
        assert dest.suffix == ".md", f"{page.name}: {target}: an anchor into a non-page"
        assert anchor in anchors(dest), f"{page.name}: {target}: no such heading in {dest.name}"


def test_the_checker_sees_a_broken_anchor(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A title\n\n## Same\n\n## Same\n")
    assert anchors(page) == {"a-title", "same", "same-1"}
    assert "a-missing-one" not in anchors(page)
