"""Refusing expressions too long for a recursive parser, on the text itself, before any token is built."""

from __future__ import annotations

import re

from qqueue.errors import IntakeError

#: Most operators in one expression. Recursive parsers descend once per operator: the OpenQASM 3 importer spent
#: 23 s of CPU on 100,000 unary minus signs before failing. Real programs stay far below this.
MAX_EXPRESSION_OPERATORS = 256

#: Operator-like symbols, longest first; those of expressions are `_OPERATORS` (not `->`, `++`, assignments).
_SYMBOL = re.compile(r"->|\+\+|\*\*=?|<<=?|>>=?|&&|\|\||[-+*/%^&|~<>!=]=|[-+*/%^&|~!<>=]")
_OPERATORS = frozenset({"+", "-", "*", "/", "%", "**", "^", "&", "|", "~", "!", "<<", ">>", "==", "!=", "<", ">",
                        "<=", ">=", "&&", "||"})
#: What ends an expression.
_SEPARATOR = re.compile(r"[,;{}]")


def check_expressions(code: str) -> None:
    """Refuse any expression with more operators than recursive parsers can be trusted with, before the
    tokens are even built: the hostile case is one of 100,000 signs, and its refusal should cost milliseconds."""
    start = 0
    for separator in _SEPARATOR.finditer(code + ";"):
        symbols = _SYMBOL.findall(code, start, separator.start())
        if len(symbols) > MAX_EXPRESSION_OPERATORS and \
                sum(1 for s in symbols if s in _OPERATORS) > MAX_EXPRESSION_OPERATORS:
            operators = (m for m in _SYMBOL.finditer(code, start, separator.start()) if m[0] in _OPERATORS)
            nth = next(m for i, m in enumerate(operators) if i == MAX_EXPRESSION_OPERATORS)
            line = code.count("\n", 0, nth.start()) + 1
            column = nth.start() - (code.rfind("\n", 0, nth.start()) + 1) + 1
            raise IntakeError(f"an expression has over {MAX_EXPRESSION_OPERATORS} operators; the limit is "
                              f"{MAX_EXPRESSION_OPERATORS} (line {line}, column {column})", code="expression_too_long",
                              line=line, column=column, details={"limit": MAX_EXPRESSION_OPERATORS})
        start = separator.end()
