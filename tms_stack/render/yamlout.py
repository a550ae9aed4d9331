"""YAML for rendered objects: block style, keys in the order rendered, multi-line strings as
readable `|` blocks.

A small emitter for the only shapes rendering produces (dicts with string keys, lists, str, int,
float, bool, None). PyYAML's representer spent ~1.3 ms per object (77 s for the 52,000 objects of
10,000 leases); this takes a tenth of that. Strings are written plain only when no YAML 1.1 or 1.2
reader could take them for anything else; otherwise they are JSON-quoted, which is valid YAML.
A property test checks that yaml.safe_load(dump_object(x)) == x.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*(?::[A-Za-z0-9_./@+-]+)*")
_RESERVED = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}
_NUMBERISH = re.compile(r"[-+]?(\.?[0-9]|\.(inf|nan))", re.IGNORECASE)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        # YAML 1.1 readers need a dot in the mantissa to see a float (1.0e-05, not 1e-05).
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if exponent else text
    return _string(str(value))


# The same keys and values recur across every object of a fleet (`apiVersion`, label keys, image
# names): remembering each string's YAML form saves ~30 % of a 10,000-lease render (issue 27).
@lru_cache(maxsize=1 << 16)
def _string(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not _NUMBERISH.match(text):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    if quoted.isprintable():
        return quoted
    # YAML forbids raw non-printable characters; its \U escape covers all of Unicode.
    return "".join(c if c.isprintable() else f"\\U{ord(c):08x}" for c in quoted)


def _block(text: str, indent: str) -> str | None:
    """A `|` block for multi-line text that round-trips exactly, else None."""
    if not text.endswith("\n") or text.endswith("\n\n") or text.startswith((" ", "\n")):
        return None
    lines = text[:-1].split("\n")
    if any(line != line.rstrip() or not line.isprintable() for line in lines):
        return None
    return "|\n" + "\n".join(f"{indent}{line}" if line else "" for line in lines)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Append the lines of a block collection at `indent` (any type; the loops below handle the
    exact dicts, lists and scalars rendering makes, and come back here for anything else)."""
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{_scalar(key)}:"
            _emit_item(head, item, indent, out)
    else:
        for item in value:
            head = f"{indent}-"
            if isinstance(item, dict) and item:
                # `- key: value` with the rest of the mapping aligned under the first key.
                sub: list[str] = []
                _emit(item, indent + "  ", sub)
                sub[0] = f"{indent}- " + sub[0][len(indent) + 2:]
                out.extend(sub)
            else:
                _emit_item(head, item, indent, out)


def _emit_item(head: str, item: Any, indent: str, out: list[str]) -> None:
    if isinstance(item, dict):
        if not item:
            out.append(f"{head} {{}}")
        else:
            out.append(head)
            _emit(item, indent + "  ", out)
    elif isinstance(item, list):
        if not item:
            out.append(f"{head} []")
        else:
            out.append(head)
            _emit(item, indent + ("" if head.rstrip().endswith(":") else "  "), out)
    elif isinstance(item, str) and "\n" in item and (block := _block(item, indent + "  ")) is not None:
        out.append(f"{head} {block}")
    else:
        out.append(f"{head} {_scalar(item)}")


# The fast path (issue 27: the emitter was most of a 10,000-lease render, 4.6M calls per 78,000
# objects). Same output as _emit above, which stays the definition: tests/render/test_yamlout.py
# compares the two on random objects. One call per collection, type(x) is ... instead of
# isinstance chains, strings straight to the cached _string; anything that is not an exact
# dict, list, str, int, bool or None goes back to _emit/_emit_item.
_SIMPLE: dict[type, Callable[[Any], str]] = {int: str, bool: lambda v: "true" if v else "false", type(None): lambda _v: "null"}


def _map(value: dict[Any, Any], indent: str, out: list[str]) -> None:
    inner = indent + "  "
    append = out.append
    for key, item in value.items():
        head = f"{indent}{_string(key) if type(key) is str else _scalar(key)}:"
        kind = type(item)
        if kind is str:
            if "\n" in item and (block := _block(item, inner)) is not None:
                append(f"{head} {block}")
            else:
                append(f"{head} {_string(item)}")
        elif kind is dict:
            if item:
                append(head)
                _map(item, inner, out)
            else:
                append(f"{head} {{}}")
        elif kind is list:
            if item:
                append(head)
                _seq(item, indent, out)
            else:
                append(f"{head} []")
        elif kind in _SIMPLE:
            append(f"{head} {_SIMPLE[kind](item)}")
        else:
            _emit_item(head, item, indent, out)


def _seq(value: list[Any], indent: str, out: list[str]) -> None:
    inner = indent + "  "
    dash = indent + "- "
    append = out.append
    for item in value:
        kind = type(item)
        if kind is dict and item:
            first = len(out)
            _map(item, inner, out)
            out[first] = dash + out[first][len(inner):]
        elif kind is str:
            if "\n" in item and (block := _block(item, inner)) is not None:
                append(f"{dash}{block}")
            else:
                append(f"{dash}{_string(item)}")
        elif kind in _SIMPLE:
            append(f"{dash}{_SIMPLE[kind](item)}")
        else:
            _emit([item], indent, out)  # what the definition does with this one item


def dump_object(obj: dict[str, Any]) -> str:
    out: list[str] = []
    if type(obj) is dict:
        _map(obj, "", out)
    else:
        _emit(obj, "", out)
    return "\n".join(out) + "\n"


def dump_object_reference(obj: dict[str, Any]) -> str:
    """dump_object through the definition only (_emit): what the fast path must equal."""
    out: list[str] = []
    _emit(obj, "", out)
    return "\n".join(out) + "\n"
