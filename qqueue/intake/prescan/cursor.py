"""A cursor over a program's tokens: looking ahead, consuming, skipping bracketed runs and statements, and the
line and column of a token for errors. Also the bracket-aware helpers that cut token lists apart."""

from __future__ import annotations

import bisect
import re
from typing import Any

from qqueue.errors import IntakeError
from qqueue.intake.prescan.tokens import Token


class Cursor:
    """The position in a list of tokens; past the last one, every read is an `eof` token at the source's end."""

    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.end = Token("eof", "", len(source))
        self.i = 0
        self.lines = [0] + [m.end() for m in re.finditer("\n", source)]

    def peek(self, ahead: int = 0) -> Token:
        index = self.i + ahead
        return self.tokens[index] if index < len(self.tokens) else self.end

    def take(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek().text == text:
            self.i += 1
            return True
        return False

    def where(self, token: Token) -> tuple[int, int]:
        line = bisect.bisect_right(self.lines, token.pos)
        return line, token.pos - self.lines[line - 1] + 1

    def fail(self, token: Token, message: str, code: str, **details: Any) -> IntakeError:
        line, column = self.where(token)
        return IntakeError(f"{message} (line {line}, column {column})", code=code, line=line, column=column,
                           details=details or None)

    def skip_balanced(self, opening: str, closing: str) -> list[Token]:
        """Tokens from an opening bracket (consumed) to its match (consumed), exclusive."""
        start = self.i
        depth = 0
        while self.peek().kind != "eof":
            text = self.take().text
            if text == opening:
                depth += 1
            elif text == closing:
                depth -= 1
                if depth == 0:
                    return self.tokens[start + 1:self.i - 1]
        return self.tokens[start + 1:self.i]

    def until_semicolon(self) -> list[Token]:
        """Tokens to the next `;` at bracket depth 0 (consumed), exclusive."""
        start = self.i
        depth = 0
        while self.peek().kind != "eof":
            text = self.peek().text
            if text in "([{":
                depth += 1
            elif text in ")]}":
                if depth == 0:
                    break  # a block's closing brace: the statement lacked its semicolon
                depth -= 1
            elif text == ";" and depth == 0:
                self.i += 1
                return self.tokens[start:self.i - 1]
            self.i += 1
        return self.tokens[start:self.i]


def closing(tokens: list[Token]) -> int:
    """Index of the bracket closing tokens[0] (or the last index when it is never closed)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    opening = tokens[0].text
    closer = pairs.get(opening)
    depth = 0
    for index, token in enumerate(tokens):
        if token.text == opening:
            depth += 1
        elif token.text == closer:
            depth -= 1
            if depth == 0:
                return index
    return len(tokens) - 1


def split(tokens: list[Token], separator: str) -> list[list[Token]]:
    """Split at `separator` outside brackets."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.text in "([{":
            depth += 1
        elif token.text in ")]}":
            depth -= 1
        if token.text == separator and depth == 0:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts if any(parts) else []
