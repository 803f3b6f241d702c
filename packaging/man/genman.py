#!/usr/bin/python3
"""genman.py - writes lockwarden(8) and lockwarden.ini(5) from their one
source, packaging/man/lockwarden.man.in, and fills the KEYS section from
agent/config.def, the table the configuration parser is built from. A key
is documented there once, and nowhere else.

    genman.py [--template FILE] [--config-def FILE] [--outdir DIR]
              [--version V] [--sysconfdir DIR] [--hookdir DIR]

Writes DIR/<name>.<section> for each "@PAGE name section" in the template.
Standard library only: it runs in a Debian package build.
"""

import argparse
import ast
import datetime
import operator
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent

PAGE_RE = re.compile(r'^\.\\"\s*@PAGE\s+(\S+)\s+(\d)\s*$')
PLACEHOLDER_RE = re.compile(r"@[A-Z_]+@")

# The config.def types, as the man page names them (see the SYNTAX section).
TYPE_NAMES = {
    "STRING": "string",
    "PATH": "path",
    "DURATION": "duration",
    "AUTO_DURATION": "duration",  # or auto: said in the key's bounds line
    "BOOL": "boolean",
    "LEVEL": "level",
}

DURATION_UNITS_MS = [("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)]


class DefError(Exception):
    pass


# ------------------------------------------------------------ config.def

def strip_c_comments(text):
    """Removes /* */ and // comments, leaving string literals alone."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise DefError("unterminated comment")
            out.append(" ")
            i = end + 2
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_args(text, start):
    """The comma-separated arguments of a macro call whose '(' is at start,
    split only at top-level commas (not inside strings or parentheses).
    Returns (args, index after the closing parenthesis)."""
    args, cur, depth = [], [], 0
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                args.append("".join(cur).strip())
                return args, i + 1
            depth -= 1
        elif c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    raise DefError("unterminated CONFIG_KEY(")


C_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def c_string(expr):
    """The value of one or more adjacent C string literals."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', expr)
    if not parts or re.sub(r'"((?:[^"\\]|\\.)*)"', "", expr).strip():
        raise DefError(f"not a string literal: {expr}")
    out = []
    for part in parts:
        out.append(re.sub(r"\\(.)", lambda m: C_ESCAPES.get(m.group(1), m.group(1)), part))
    return "".join(out)


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.floordiv, ast.FloorDiv: operator.floordiv}


def c_integer(expr):
    """The value of an integer constant expression such as
    `7 * 24 * 3600 * 1000ULL` (+ - * / and parentheses only)."""
    py = re.sub(r"\b(\d+)[uUlL]+\b", r"\1", expr)

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise DefError(f"not an integer constant expression: {expr}")

    try:
        return ev(ast.parse(py, mode="eval"))
    except SyntaxError as e:
        raise DefError(f"not an integer constant expression: {expr}") from e


def read_config_def(path):
    """[{section, key, type, default, min, max, doc}] in table order."""
    text = strip_c_comments(Path(path).read_text(encoding="utf-8"))
    keys = []
    for m in re.finditer(r"\bCONFIG_KEY\s*\(", text):
        # "#define CONFIG_KEY(section, key, ...)" lines are the macro, not a key.
        line_start = text.rfind("\n", 0, m.start()) + 1
        if text[line_start:m.start()].strip().startswith("#"):
            continue
        args, _ = split_args(text, m.end() - 1)
        if len(args) != 7:
            raise DefError(f"CONFIG_KEY with {len(args)} arguments, not 7: {args}")
        section, key, typ, default, lo, hi, doc = args
        if typ not in TYPE_NAMES:
            raise DefError(f"[{section}] {key}: unknown type {typ}")
        keys.append({"section": section, "key": key, "type": typ,
                     "default": c_string(default), "min": c_integer(lo),
                     "max": c_integer(hi), "doc": c_string(doc)})
    if not keys:
        raise DefError(f"{path}: no CONFIG_KEY entries")
    seen = set()
    for k in keys:
        name = (k["section"], k["key"])
        if name in seen:
            raise DefError(f"[{k['section']}] {k['key']} is in the table twice")
        seen.add(name)
    return keys


# ------------------------------------------------------------------ roff

def roff_text(text):
    """Plain text as roff running text: backslashes escaped, a hyphen that
    starts a word written as a minus sign (options like -c), and no line
    starting with a control character."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(^|(?<=[\s(]))-", r"\\-", text)
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def sentence(doc):
    doc = doc.strip()
    if doc and doc[0].islower():
        doc = doc[0].upper() + doc[1:]
    if doc and doc[-1] not in ".!?":
        doc += "."
    return doc


def format_duration(ms):
    """Milliseconds the way the file would say them: 15m, 90s, 1h30m, 250ms."""
    if ms == 0:
        return "0s"
    out = []
    for unit, size in DURATION_UNITS_MS:
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def key_entry(k):
    """One key as a .TP paragraph: name, type and default, its doc line,
    the bounds, and the environment variable that sets it."""
    typ = TYPE_NAMES[k["type"]]
    default = (f"default \\fB{roff_text(k['default'])}\\fR" if k["default"]
               else "default empty")
    env = f"LOCKWARDEN_{k['section'].upper()}_{k['key'].upper()}"
    lines = [
        ".TP",
        f"\\fB{k['key']}\\fR = \\fI{typ}\\fR ({default})",
        roff_text(sentence(k["doc"])),
    ]
    if k["type"] in ("DURATION", "AUTO_DURATION"):
        lines += [".br", f"From \\fB{format_duration(k['min'])}\\fR "
                  f"to \\fB{format_duration(k['max'])}\\fR"
                  + (", or \\fBauto\\fR (see \\fBlockwarden\\fR(8))."
                     if k["type"] == "AUTO_DURATION" else ".")]
    # \% keeps the long variable name from being hyphenated.
    lines += [".br", f"Environment: \\fB\\%{roff_text(env)}\\fR."]
    return lines


def keys_section(keys):
    """The KEYS section body: one subsection per ini section, in table
    order, each key once."""
    lines = []
    sections = []
    for k in keys:
        if k["section"] not in sections:
            sections.append(k["section"])
    for section in sections:
        lines.append(f'.SS "[{section}]"')
        for k in keys:
            if k["section"] == section:
                lines.extend(key_entry(k))
    return "\n".join(lines)


# ----------------------------------------------------------------- pages

def split_pages(template):
    """[(name, section, text)] for each @PAGE marker, in order."""
    pages = []
    current = None
    for line in template.splitlines(keepends=True):
        m = PAGE_RE.match(line.rstrip("\n"))
        if m:
            current = [m.group(1), m.group(2), []]
            pages.append(current)
        elif current is not None:
            current[2].append(line)
    if not pages:
        raise DefError("the template has no @PAGE line")
    return [(name, sec, "".join(body)) for name, sec, body in pages]


def page_date(inputs):
    """SOURCE_DATE_EPOCH (set by dpkg-buildpackage, for reproducible
    builds), else the newest input's modification time, as YYYY-MM-DD."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = int(epoch) if epoch else max(int(Path(p).stat().st_mtime) for p in inputs)
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%d")


def generate(template_path, config_def_path, version, sysconfdir, hookdir):
    """{filename: text} for every page."""
    keys = read_config_def(config_def_path)
    values = {
        "@VERSION@": version,
        "@DATE@": page_date([template_path, config_def_path]),
        "@SYSCONFDIR@": roff_text(sysconfdir),
        "@HOOKDIR@": roff_text(hookdir),
        "@CONFIG_KEYS@": keys_section(keys),
    }
    out = {}
    for name, section, body in split_pages(Path(template_path).read_text(encoding="utf-8")):
        text = PLACEHOLDER_RE.sub(lambda m: values.get(m.group(0), m.group(0)), body)
        left = sorted(set(PLACEHOLDER_RE.findall(text)))
        if left:
            raise DefError(f"{name}.{section}: unknown placeholder(s) {', '.join(left)}")
        out[f"{name}.{section}"] = text
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", default=str(HERE / "lockwarden.man.in"))
    ap.add_argument("--config-def", default=str(TOP / "agent" / "config.def"))
    ap.add_argument("--outdir", default=str(TOP / "build" / "man"))
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--sysconfdir", default="/etc")
    ap.add_argument("--hookdir", default="/usr/lib/lockwarden/hooks")
    a = ap.parse_args(argv)
    try:
        pages = generate(a.template, a.config_def, a.version, a.sysconfdir, a.hookdir)
    except (DefError, OSError) as e:
        print(f"genman: {e}", file=sys.stderr)
        return 1
    outdir = Path(a.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for filename, text in pages.items():
        tmp = outdir / (filename + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(outdir / filename)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
