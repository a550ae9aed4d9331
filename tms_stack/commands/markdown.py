"""Escaping user values for GitHub-flavoured markdown (the plan comment).

A value from a pull request (a lease name, owner, image, alias, file path, or a check message that
quotes one) must render as the text it is, never as markdown structure, HTML, a mention or a
link: an image value once injected a fake "All checks passed — approved by @org/admins" headline
and an HTML comment that hid the rest of the plan. Two forms:

- `code`: an inline code span. Inside one, markdown, HTML and mentions are inert; we only have to
  pick a backtick fence longer than any run in the value, pad values that start or end with a
  backtick or blank, and turn line breaks into a visible symbol (a code span may span lines, and
  a table row may not). `cell` also escapes `|`, which GFM tables split on even inside code.
- `text`: prose. Line breaks become blanks, ASCII punctuation that markdown reads is
  backslash-escaped, `< > & " '` become entities, and `@` is followed by a zero-width space
  entity so that `@org/admins` mentions nobody.

Both cut very long values (the comment has a size limit; docs/security.md)."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

MAX_CODE = 300
MAX_TEXT = 2000
_BREAKS = re.compile(r"\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# Markdown punctuation that could start structure; `<>&"'` are left to HTML escaping below.
_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=:$^])")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def code(value: Any, *, table: bool = False) -> Markup:
    text = _cut(str(value), MAX_CODE)
    text = _BREAKS.sub("⏎", text)
    text = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)
    if table:
        text = text.replace("|", "\\|")
    if not text:
        return Markup("` `")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text[0] in "` " or text[-1] in "` ":
        text = f" {text} "
    return Markup(f"{fence}{text}{fence}")


def cell(value: Any) -> Markup:
    return code(value, table=True)


def text(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    s = _cut(str(value), MAX_TEXT)
    s = _BREAKS.sub(" ", s)
    s = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", s)
    s = _MD_PUNCT.sub(r"\\\1", s)
    s = str(escape(s))
    return Markup(s.replace("@", "@&#8203;"))
