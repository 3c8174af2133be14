"""Constant expressions: their values, folded before the program runs, or `Unknown` when they depend on anything
else. Values saturate to infinity far past any limit, so that no expression costs more than its length."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from qqueue.intake.prescan.tokens import Token

#: Constant expressions saturate (to infinity) past this, so that `2**10**10` costs nothing to evaluate while
#: every value a message may quote, such as 2^63, is still exact.
_VALUE_CAP = 2**256
CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau, "euler": math.e, "ℇ": math.e,
             "true": 1, "false": 0}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin, "arccos": math.acos,
    "arctan": math.atan, "exp": math.exp, "ln": math.log, "sqrt": math.sqrt, "floor": math.floor,
    "ceil": math.ceil, "abs": abs, "int": int, "uint": int, "float": float, "mod": lambda a, b: a % b,
}


class Unknown(Exception):
    """An expression whose value cannot be known before the program runs."""


def evaluate(tokens: list[Token], version: int, consts: Mapping[str, int | float]) -> int | float:
    """The value of a constant expression; `Unknown` when it depends on anything but constants."""
    if not tokens:
        raise Unknown
    try:
        value, end = Evaluator(version, consts, tokens).expression(0, 0)
    except RecursionError:  # brackets nest at most 64 deep, but a thread's stack may be shallow
        raise Unknown from None
    if end != len(tokens):
        raise Unknown
    return value


class Evaluator:
    """Precedence climbing over constant expressions. Recursion is bounded: brackets nest at most 64 deep
    (checked before the scan) and runs of unary operators are folded in a loop."""

    #: Binary operators by precedence, loosest first.
    LEVELS: tuple[frozenset[str], ...] = (
        frozenset({"||"}), frozenset({"&&"}), frozenset({"|"}), frozenset({"^"}), frozenset({"&"}),
        frozenset({"==", "!="}), frozenset({"<", ">", "<=", ">="}), frozenset({"<<", ">>"}),
        frozenset({"+", "-"}), frozenset({"*", "/", "%"}),
    )

    def __init__(self, version: int, consts: Mapping[str, int | float], tokens: list[Token]) -> None:
        self.consts = consts
        self.tokens = tokens
        self.levels = self.LEVELS
        self.power_operator = "**"
        if version == 2:  # OpenQASM 2: ^ is the power operator, and there is no exclusive or
            self.levels = tuple(level for level in self.LEVELS if level != frozenset({"^"}))
            self.power_operator = "^"

    def text(self, at: int) -> str:
        return self.tokens[at].text if at < len(self.tokens) else ""

    def expression(self, at: int, level: int) -> tuple[Any, int]:
        if level == len(self.levels):
            return self.power(at)
        left, at = self.expression(at, level + 1)
        while self.text(at) in self.levels[level]:
            operator = self.text(at)
            right, at = self.expression(at + 1, level + 1)
            left = _binary(operator, left, right)
        return left, at

    def power(self, at: int) -> tuple[Any, int]:
        signs: list[str] = []
        while self.text(at) in ("-", "+", "~", "!"):
            signs.append(self.text(at))
            at += 1
        base, at = self.primary(at)
        if self.text(at) == self.power_operator:  # right-associative, binds tighter than a unary minus before it
            exponent, at = self.power(at + 1)
            base = _binary("**", base, exponent)
        for sign in reversed(signs):
            base = _unary(sign, base)
        return base, at

    def primary(self, at: int) -> tuple[Any, int]:
        if at >= len(self.tokens):
            raise Unknown
        token = self.tokens[at]
        if token.text == "(":
            value, at = self.expression(at + 1, 0)
            if self.text(at) != ")":
                raise Unknown
            return value, at + 1
        if token.kind == "num":
            return _number(token.text), at + 1
        if token.kind == "id":
            if self.text(at + 1) == "(" and token.text in FUNCTIONS:
                args: list[Any] = []
                at += 2
                while self.text(at) != ")":
                    value, at = self.expression(at, 0)
                    args.append(value)
                    if self.text(at) == ",":
                        at += 1
                    elif self.text(at) != ")":
                        raise Unknown
                try:
                    return _finite(FUNCTIONS[token.text](*args)), at + 1
                except (ValueError, TypeError, OverflowError, ZeroDivisionError):
                    raise Unknown from None
            if token.text in self.consts:
                return self.consts[token.text], at + 1
            if token.text in CONSTANTS:
                return CONSTANTS[token.text], at + 1
        raise Unknown


def _number(text: str) -> int | float:
    text = text.replace("_", "")
    if re.search(r"(ns|us|µs|ms|s|dt|im)$", text) and not text.lower().startswith(("0x", "0b", "0o")):
        raise Unknown  # durations and imaginary numbers are no sizes
    try:
        if text[:2].lower() in ("0x", "0b", "0o"):
            return int(text, 0)
        if re.fullmatch(r"\d+", text):
            return int(text)
        return float(text)
    except ValueError:
        raise Unknown from None


def _finite(value: Any) -> Any:
    if isinstance(value, int) and abs(value) > _VALUE_CAP:
        return math.inf if value > 0 else -math.inf
    return value


def _unary(sign: str, value: Any) -> Any:
    if sign == "-":
        return -value
    if sign in ("~",) and isinstance(value, int):
        return ~value
    if sign == "!":
        return int(not value)
    return value


def _binary(operator: str, left: Any, right: Any) -> Any:
    try:
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right >= 0:
                if abs(left) > 1 and right > 256:
                    return math.inf if left > 0 or right % 2 == 0 else -math.inf
                return _finite(left**right)
            return float(left) ** float(right)
        if operator in ("+", "-", "*"):
            result = left + right if operator == "+" else left - right if operator == "-" else left * right
            return _finite(result)
        if operator == "/":
            if isinstance(left, int) and isinstance(right, int) and left % right == 0:
                return left // right
            return left / right
        if operator == "%":
            return left % right
        if isinstance(left, float) or isinstance(right, float):
            if operator in ("==", "!=", "<", ">", "<=", ">="):
                return int(eval_comparison(operator, left, right))
            raise Unknown
        if operator in ("<<", ">>"):
            if right > 256 or right < 0:
                raise Unknown
            return _finite(left << right if operator == "<<" else left >> right)
        if operator in ("&", "|", "^"):
            return left & right if operator == "&" else left | right if operator == "|" else left ^ right
        if operator in ("&&", "||"):
            return int(bool(left) and bool(right)) if operator == "&&" else int(bool(left) or bool(right))
        return int(eval_comparison(operator, left, right))
    except (ZeroDivisionError, OverflowError, TypeError, ValueError):
        raise Unknown from None


def eval_comparison(operator: str, left: Any, right: Any) -> bool:
    """`left operator right` for the six comparison operators."""
    return {"==": left == right, "!=": left != right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[operator]
