"""One way down: the files of agent/ call each other without a circle
(agent/README.md draws the layers).

A file and its header are one part ("scan" is scan.c with scan.h). Part A
depends on part B when A's .c names a function that B defines (not static;
a static inline one in B's header counts as B's). Where a lower part needs
an upper one to act it sets a request (agent_state.h) or emits an event
(event.h) instead; a call back up would close a circle here, and this test
names the functions that close it.
"""

import os
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(os.environ.get("LOCKWARDEN_LAYERS_REPO", Path(__file__).resolve().parents[2]))
AGENT = REPO / "agent"

COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
STRING = re.compile(r'"(?:\\.|[^"\\\n])*"' + r"|'(?:\\.|[^'\\\n])*'")
# A definition at the start of a line: its type, name, parameters (over
# several lines, if need be), then the body's brace on a line of its own.
DEFINITION = re.compile(r"^((?:[A-Za-z_][\w]*[ \t\*]+)+)([A-Za-z_]\w*)\(([^;{}]*)\)\s*\n\{", re.M)
WORD = re.compile(r"\b[A-Za-z_]\w*\b")


def sources():
    return sorted(p for p in AGENT.iterdir() if p.suffix in (".c", ".h"))


def code_of(path):
    return COMMENT.sub(" ", STRING.sub('""', path.read_text()))


def definitions():
    """{function name: the part that defines it}"""
    owner = {}
    for path in sources():
        code = code_of(path)
        for m in DEFINITION.finditer(code):
            kind = m.group(1).split()
            if path.suffix == ".c" and "static" in kind:
                continue
            if path.suffix == ".h" and "static" not in kind:
                continue
            owner[m.group(2)] = path.stem
    return owner


def dependencies():
    """{part: {part it depends on: [why]}}"""
    parts = {p.stem for p in sources()}
    owner = definitions()
    deps = defaultdict(lambda: defaultdict(set))
    for path in sources():
        if path.suffix != ".c":
            continue  # a header's declarations call nothing
        me = path.stem
        code = code_of(path)
        for word in set(WORD.findall(code)):
            other = owner.get(word)
            if other and other != me:
                deps[me][other].add(word)
    return parts, deps


def circles(parts, deps):
    """Tarjan's strongly connected components of more than one part."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(parts):
        if v not in index:
            visit(v)
    return found


def test_the_agent_has_no_circle():
    parts, deps = dependencies()
    found = circles(parts, deps)
    lines = []
    for comp in found:
        lines.append("circle: " + ", ".join(comp))
        for a in comp:
            for b in comp:
                if b in deps[a]:
                    lines.append(f"  {a} -> {b}: {', '.join(sorted(deps[a][b]))}")
    assert not found, "\n".join(lines)


def test_the_reading_finds_the_daemon():
    """The reading itself works: the top calls down into the decision path."""
    parts, deps = dependencies()
    assert "agent_request_scan" in deps["agent"]["agent_scan"]
    assert "agent_act" in deps["agent_scan"]["agent_cleanup"]
    assert "agent_emit" in deps["agent_scan"]["event"]
