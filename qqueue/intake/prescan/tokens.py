"""Tokens of an OpenQASM program, and the text helpers that keep every position pointing into the source.

Comments become blanks of the same length and `#pragma` and annotation lines are blanked too, so the tokens'
positions are the source's; `locate` and `unclosed_comment` answer position questions for errors raised after
parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
            |(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)
            (?:ns|us|µs|ms|s|dt|im)?)
  | (?P<hw>\$\d+)
  | (?P<id>[^\W\d]\w*)
  | (?P<str>"[^"\n]*"|'[^'\n]*')
  | (?P<op>->|\*\*=?|<<=?|>>=?|==|!=|<=|>=|&&|\|\||\+\+|[-+*/%&|^~]=|[-+*/%^&|~!<>=()\[\]{},;:@.])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
#: Comments become blanks of the same length (newlines kept), so every position still points into the source.
#: An unterminated block comment runs to the end: without the `\Z`, every `/*` of `/* /* /* …` would scan to the
#: end of the source in turn, quadratic time on 250 KiB of them.
_COMMENT = re.compile(r"//[^\n]*|/\*.*?(?:\*/|\Z)", re.DOTALL)
#: `#pragma` lines and `@annotation` lines carry no operations.
_PRAGMA = re.compile(r"^[ \t]*(?:#pragma\b|@[^\W\d][\w.]*)[^\n]*", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind (the pattern's group: num, id, op, …; "eof" past the end), text and offset."""

    kind: str
    text: str
    pos: int


def blank_comments(source: str) -> str:
    """The source with comments replaced by spaces, newlines kept (positions unchanged)."""
    return _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), source)


def blank_pragmas(code: str) -> str:
    """`code` (comments already blanked) with `#pragma` and annotation lines replaced by spaces."""
    return _PRAGMA.sub(lambda m: " " * len(m[0]), code)


def tokenize(code: str) -> list[Token]:
    """The tokens of `code`, whitespace left out."""
    return [Token(m.lastgroup or "other", m[0], m.start()) for m in _TOKEN.finditer(code) if m.lastgroup != "ws"]


def unclosed_comment(source: str) -> int | None:
    """Where a block comment that is never closed opens, or None."""
    last = None
    for match in _COMMENT.finditer(source):
        last = match
    closed = last is not None and len(last[0]) >= 4 and last[0].endswith("*/")
    return last.start() if last is not None and last[0].startswith("/*") and not closed else None


def locate(source: str, name: str) -> tuple[int, int] | None:
    """(line, column) of the first use of the identifier `name` after any definition of it, for errors about
    an instruction found only after parsing; None when it is not written in the source."""
    code = blank_comments(source)
    found = None
    for match in re.finditer(rf"(?<![\w$]){re.escape(name)}(?!\w)", code):
        before = code[max(0, match.start() - 16):match.start()]
        if re.search(r"\b(gate|opaque|def)\s+$", before):
            continue
        found = match.start()
        break
    if found is None:
        return None
    line = code.count("\n", 0, found) + 1
    return line, found - (code.rfind("\n", 0, found) + 1) + 1
