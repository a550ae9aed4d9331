"""YAML in and out.

Reading for validation uses libyaml's composer (PyYAML's C binding): it is ~35x faster than
ruamel's round-trip loader (0.09 ms vs 3.3 ms per lease file, which decides whether
`tms check` on 10,000 leases takes 1 s or 33 s) and gives a position for every node, scalars
included. Scalars are resolved here with the YAML 1.2 core schema, as ruamel does, so `no`
stays a string and `0x1F` is not an int. Writing user files (the tmsctl verbs, prune) uses
ruamel.yaml round-trip so comments and formatting survive.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from ruamel.yaml import YAML

from tms_stack.models.diagnostics import Diagnostic, UnreadableInput

try:  # libyaml is bundled in PyYAML wheels; the pure-Python loader is the fallback
    _Base: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader

_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_PLAIN = "tag:tms-stack,2026:plain"  # an untagged plain scalar, resolved by _resolve_plain (YAML 1.2)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """PyYAML's resolver is YAML 1.1 (`010` is octal, `1e3` a string) and costs a regex cascade per
    node; we only need to know plain from quoted, and resolve plain scalars ourselves."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

MAX_DEPTH = 50
MAX_NODES = 200_000
MAX_BYTES = 4 * 1024 * 1024
# libyaml's composer recurses in C: a document nested ~100,000 deep overflows the C stack and kills
# the process (exit 139) before Python can raise. Every nesting level needs one of these indicator
# characters, so their count bounds the depth; above SCAN_OVER the (iterative, cheap) event parser
# measures the real depth before anything is composed. Ordinary files stay far below SCAN_OVER.
_NESTING_INDICATORS = "[{-:?"
SCAN_OVER = 1000

Path_ = tuple[str | int, ...]


class Pos(NamedTuple):
    """1-based line and column of a node. A named tuple: one is made for every key and value of
    every file, and a frozen dataclass cost three times as much to make (issue 27)."""

    line: int
    col: int


@dataclass
class Document:
    """A parsed YAML file: plain Python data plus the position of every key and value."""

    file: str
    data: Any
    values: dict[Path_, Pos] = field(default_factory=dict)
    keys: dict[Path_, Pos] = field(default_factory=dict)
    # Scalars written as something other than a plain or quoted value, by path: "anchor", "alias",
    # "tag" or "block" (`|`/`>`). Only such scalars are recorded (ordinary files add nothing); a
    # rule that rewrites a value in place (prune's `expires`) must refuse these forms.
    forms: dict[Path_, str] = field(default_factory=dict)

    def pos(self, path: Path_, *, key: bool = False) -> Pos:
        """Position of `path`, or of its nearest existing ancestor (for missing fields)."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if not key and p in self.keys:
                return self.keys[p]
            p = p[:-1]
        return self.values.get((), Pos(1, 1))

    def key_pos(self, path: Path_) -> Pos:
        """Where the key of `path` is written (falls back to its value, then ancestors)."""
        p = tuple(path)
        if p in self.keys:
            return self.keys[p]
        return self.pos(p)


_INT_RE = re.compile(r"^[-+]?[0-9]+$")  # YAML 1.2 core: 010 is ten, not octal eight
_OCT_RE = re.compile(r"^0o[0-7]+$")
_HEX_RE = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT_RE = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF_RE = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN_RE = re.compile(r"^\.(?:nan|NaN|NAN)$")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TS_RE = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::?[0-9]{2})?))?$"
)


# The first characters a plain scalar that is not a string can start with (null, ~, true, false,
# numbers, .inf/.nan, dates): anything else is a string without trying the patterns below. Most
# scalars of a fleet (names, URIs, units) are decided by this one look-up (issue 27).
_NOT_ONLY_TEXT = frozenset("0123456789+-.~nNtTfF")


def _resolve_plain(text: str) -> Any:
    """YAML 1.2 core schema (plus timestamps, which ruamel also resolves)."""
    if text and text[0] not in _NOT_ONLY_TEXT:
        return text
    return _resolve_remembered(text)


def _resolve_patterns(text: str) -> Any:
    """_resolve_plain without the first-character short cut: the definition it must agree with."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT_RE.match(text):
        if len(text) > 40:
            return text  # absurd numbers stay strings; validation says what is allowed
        return int(text)
    if _OCT_RE.match(text):
        return int(text[2:], 8)
    if _HEX_RE.match(text):
        return int(text[2:], 16)
    if _FLOAT_RE.match(text) and len(text) <= 64:
        return float(text)
    if _INF_RE.match(text):
        return float("-inf") if text.startswith("-") else float("inf")
    if _NAN_RE.match(text):
        return float("nan")
    if _DATE_RE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            return text
    if _TS_RE.match(text):
        try:
            norm = re.sub(r"[ \t]+", "T", text, count=1).replace("t", "T")
            norm = re.sub(r"[ \t]+", "", norm)
            if norm.endswith("Z"):
                norm = norm[:-1] + "+00:00"
            ts = datetime.fromisoformat(norm)
            return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        except ValueError:
            return text
    return text


# The rest are mostly quantities, counts and dates a fleet writes in every lease (`8Gi`, `2`,
# `false`): the cascade remembers its last few thousand texts (issue 27). Its results are immutable.
_resolve_remembered = lru_cache(maxsize=8192)(_resolve_patterns)


_ScalarNode, _SequenceNode, _MappingNode = yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode
_QUOTED_OR_BLOCK = frozenset(("'", '"', "|", ">"))


class _Builder:
    """Plain data and positions from libyaml's node tree. This walk is most of what `tms check`
    spends beyond libyaml itself, so it is written for speed (issue 27): one call per collection,
    scalars handled in the loop of their parent, the slow forms (anchors, tags, block scalars,
    non-core tags) only looked at when the text can contain them."""

    def __init__(self, file: str, text: str = "", inline: bool = True):
        self.doc = Document(file=file, data=None)
        # False: every node through build(), the plain definition the inlined loops must equal
        # (tests/unit/test_yamlio.py compares the two).
        self.inline = inline
        self.count = 0
        self.text = text
        self.anchored: set[int] = set()   # ids of anchored scalar nodes already built
        # An anchor or a tag starts with `&` or `!`; a text without either has neither.
        self.marked = "&" in text or "!" in text

    def _form(self, node: yaml.ScalarNode, path: Path_) -> None:
        # The composer hands an alias back as the anchored node itself, and a node's span starts at
        # its anchor or tag (libyaml's marks count characters): the first character tells them apart.
        first = self.text[node.start_mark.index:node.start_mark.index + 1]
        if first == "&":
            self.doc.forms[path] = "alias" if id(node) in self.anchored else "anchor"
            self.anchored.add(id(node))
        elif first == "!":
            self.doc.forms[path] = "tag"
        elif node.style in ("|", ">"):
            self.doc.forms[path] = "block"

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        """A scalar's value (its position is already recorded)."""
        style = node.style
        if style == "|" or style == ">" or (
                self.marked and self.text[node.start_mark.index:node.start_mark.index + 1] in ("&", "!")):
            self._form(node, path)
        tag = node.tag
        if tag == _PLAIN:
            return _resolve_plain(node.value)
        if tag == _STR or style in _QUOTED_OR_BLOCK:
            return node.value
        if tag.startswith("tag:yaml.org,2002:") and tag != "tag:yaml.org,2002:binary":
            return _resolve_plain(node.value)
        raise self._fail(node, f"unsupported YAML tag {tag}")

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._fail(node, f"document has more than {MAX_NODES} nodes (alias expansion?)")
        if depth > MAX_DEPTH:
            raise self._fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        mark = node.start_mark
        values = self.doc.values
        values[path] = Pos(mark.line + 1, mark.column + 1)
        kind = type(node)
        if kind is _ScalarNode:
            return self._scalar(node, path)
        # Children that are scalars are counted, placed and read here (no call per scalar); the
        # checks run in the same order as for any other node, so the same limit fails first.
        inner = depth + 1
        if kind is _SequenceNode:
            items: list[Any] = []
            for i, item in enumerate(node.value):
                sub = path + (i,)
                if self.inline and type(item) is _ScalarNode and inner <= MAX_DEPTH and self.count < MAX_NODES:
                    self.count += 1
                    m = item.start_mark
                    values[sub] = Pos(m.line + 1, m.column + 1)
                    if item.tag == _PLAIN and not self.marked:
                        items.append(_resolve_plain(item.value))
                    else:
                        items.append(self._scalar(item, sub))
                else:
                    items.append(self.build(item, sub, inner))
            return items
        if kind is _MappingNode:
            out: dict[Any, Any] = {}
            keys = self.doc.keys
            for key_node, value_node in node.value:
                key_tag = key_node.tag
                if key_tag == "tag:yaml.org,2002:merge" or (key_tag == _PLAIN and key_node.value == "<<"):
                    raise self._fail(key_node, "merge keys (<<) are not supported: write the keys out")
                if type(key_node) is not _ScalarNode:
                    raise self._fail(key_node, "mapping keys must be plain strings")
                key = key_node.value
                if key in out:
                    raise self._fail(key_node, f"duplicate key {key!r}")
                sub = path + (key,)
                m = key_node.start_mark
                keys[sub] = Pos(m.line + 1, m.column + 1)
                if self.inline and type(value_node) is _ScalarNode and inner <= MAX_DEPTH and self.count < MAX_NODES:
                    self.count += 1
                    m = value_node.start_mark
                    values[sub] = Pos(m.line + 1, m.column + 1)
                    if value_node.tag == _PLAIN and not self.marked:
                        out[key] = _resolve_plain(value_node.value)
                    else:
                        out[key] = self._scalar(value_node, sub)
                else:
                    out[key] = self.build(value_node, sub, inner)
            return out
        raise self._fail(node, "unsupported YAML node")  # pragma: no cover

    def _fail(self, node: yaml.Node, message: str) -> UnreadableInput:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        return UnreadableInput(
            f"{self.doc.file}:{line}:{col}: {message}",
            [Diagnostic(self.doc.file, line, col, "yaml", message)],
        )


def parse(text: str | bytes, file: str, *, _inline: bool = True) -> Document:
    """Parse one YAML document with positions. Raises UnreadableInput with file:line:col."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise _unreadable(file, 1, 1, f"file is larger than {MAX_BYTES // 1024 // 1024} MiB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _unreadable(file, 1, 1, f"not UTF-8 text (byte {exc.start})") from None
    if len(text) > MAX_BYTES:
        raise _unreadable(file, 1, 1, f"file is larger than {MAX_BYTES // 1024 // 1024} MiB")
    try:
        if sum(text.count(ch) for ch in _NESTING_INDICATORS) > SCAN_OVER:
            _refuse_deep(text, file)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise _unreadable(file, line, col, f"invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise _unreadable(file, 1, 1, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _unreadable(file, 1, 1, f"nesting deeper than {MAX_DEPTH} levels") from None
    if not nodes:
        raise _unreadable(file, 1, 1, "file is empty: expected a YAML mapping with apiVersion and kind")
    if len(nodes) > 1:
        mark = nodes[1].start_mark
        raise _unreadable(file, mark.line + 1, mark.column + 1,
                          "more than one YAML document: put one object per file")
    builder = _Builder(file, text, _inline)
    try:
        builder.doc.data = builder.build(nodes[0], (), 0)
    except RecursionError:
        raise _unreadable(file, 1, 1, f"nesting deeper than {MAX_DEPTH} levels") from None
    return builder.doc


def _refuse_deep(text: str, file: str) -> None:
    """Raise UnreadableInput at the first collection nested deeper than MAX_DEPTH (events only:
    libyaml's parser keeps its own stack, so this never recurses)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise _unreadable(file, mark.line + 1, mark.column + 1, f"nesting deeper than {MAX_DEPTH} levels")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        # libyaml >= 0.2.5 (PyYAML 6.0.3+ wheels) stops at 1,000 flow levels in its scanner, which
        # reads ahead of the events above: the same refusal, said the same way.
        if "nesting depth" not in str(exc.problem):
            raise
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _unreadable(file, line, col, f"nesting deeper than {MAX_DEPTH} levels") from None


def parse_file(path: Path, display: str | None = None) -> Document:
    name = display or str(path)
    # A link in a pull request may point anywhere on the machine that reviews it (its contents
    # would be quoted in error excerpts); folders refuse links by name (files.layout), this is the
    # backstop for every other file (stack files, the lock).
    if path.is_symlink():
        raise _unreadable(name, 0, 0, "is a symbolic link: not read (commit the file itself)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _unreadable(name, 0, 0, f"cannot read file: {exc.strerror}") from None
    return parse(raw, name)


def _unreadable(file: str, line: int, col: int, message: str) -> UnreadableInput:
    where = f"{file}:{line}:{col}" if line else file
    return UnreadableInput(f"{where}: {message}", [Diagnostic(file, line, col, "yaml", message)])


# ---- round-trip editing (comment- and format-preserving) -------------------------------

def round_trip() -> YAML:
    """A ruamel.yaml instance that writes files back as people wrote them."""
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    return rt


def detect_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as used in `text`, so a rewrite keeps the file's style."""
    mapping, sequence, offset = 2, 4, 2
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.lstrip(" ")
        if stripped.startswith("- ") and i > 0:
            prev = lines[i - 1]
            prev_indent = len(prev) - len(prev.lstrip(" "))
            dash = len(line) - len(stripped)
            if prev.rstrip().endswith(":"):
                offset = max(dash - prev_indent, 0)
                sequence = offset + 2
                break
    for line in lines:
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if indent and not stripped.startswith(("-", "#")) and stripped:
            mapping = indent
            break
    return mapping, sequence, offset


def load_rt(path: Path) -> tuple[Any, YAML]:
    """Load a file for editing; returns (data, yaml) so `dump_rt` writes it in the same style.

    The file goes through `parse` first: ruamel's composer recurses in Python and expands
    nothing lazily, so hostile input (depth, size, aliases) is refused here with UnreadableInput."""
    raw = path.read_bytes()
    parse(raw, str(path))
    text = raw.decode("utf-8")
    rt = round_trip()
    mapping, sequence, offset = detect_indent(text)
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    return rt.load(text), rt


def dump_rt(data: Any, rt: YAML) -> str:
    buf = io.StringIO()
    rt.dump(data, buf)
    return buf.getvalue()
