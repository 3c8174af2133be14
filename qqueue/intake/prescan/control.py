"""Control flow: loops unrolled by their constant iteration counts, `while` loops on measured bits charged once,
and the branches of `if`, `switch` and `box` summed."""

from __future__ import annotations

import math

from qqueue.intake.prescan.cursor import split
from qqueue.intake.prescan.evaluator import CONSTANTS, FUNCTIONS, Unknown
from qqueue.intake.prescan.operations import Operations
from qqueue.intake.prescan.state import CAP
from qqueue.intake.prescan.tokens import Token


class ControlFlow(Operations):
    """The statements that hold other statements."""

    def for_loop(self) -> int:
        keyword = self.take()
        while self.peek().kind != "eof" and self.peek().text != "in":
            self.take()
        self.accept("in")
        iterations = self.iterations(keyword)
        body = self.block()
        cost = min(iterations * body, CAP)
        if cost > self.limits.max_operations:
            raise self.fail(keyword, f"this for-loop runs {iterations} iterations of {body} operation"
                                     f"{'s' if body != 1 else ''} each: over {self.limits.max_operations} "
                                     "operations once unrolled, the limit",
                            "too_many_operations", limit=self.limits.max_operations, iterations=iterations)
        return cost

    def iterations(self, keyword: Token) -> int:
        start = self.peek()
        if start.text == "[":
            parts = split(self.skip_balanced("[", "]"), ":")
            try:
                values = [self.evaluate(part) for part in parts]
            except Unknown:
                raise self.fail(start, "a for-loop's range must be made of constant expressions, so that the "
                                       "loop can be unrolled", "unsupported_construct") from None
            step: int | float = 1
            if len(values) == 2:
                first, last = values
            elif len(values) == 3:
                first, step, last = values
            else:
                return 1
            if step == 0:
                raise self.fail(start, "a for-loop range has a step of 0", "invalid_source")
            try:
                count = math.floor((last - first) / step) + 1
            except (OverflowError, ValueError):
                count = CAP
            return max(0, min(count, CAP))
        if start.text == "{":
            return len(split(self.skip_balanced("{", "}"), ","))
        name = self.take()
        size = self.cregs.get(name.text) or self.qregs.get(name.text)
        if size is None:
            raise self.fail(keyword, "a for-loop must run over a constant range, a set or a declared register",
                            "unsupported_construct")
        return size

    def while_loop(self) -> int:
        """A loop Aer runs as it is, while its condition (on measured bits, as in repeat-until-success) holds:
        its body is charged once, and the task's timeout bounds its iterations. A condition made of constants
        alone would never change: refused."""
        keyword = self.take()
        condition = self.skip_balanced("(", ")") if self.peek().text == "(" else []
        if not any(t.kind == "id" and t.text not in CONSTANTS and t.text not in self.consts
                   and t.text not in FUNCTIONS for t in condition):
            raise self.fail(keyword, "this while loop's condition is made of constants: it would never stop (or "
                                     "never run); loop on a measured bit, or use a for loop",
                            "unsupported_construct")
        return min(self.measures(condition) + self.block(), CAP)

    def if_statement(self) -> int:
        self.take()
        condition = self.skip_balanced("(", ")") if self.peek().text == "(" else []
        cost = self.measures(condition) + self.block()
        if self.accept("else"):
            cost = min(cost + self.block(), CAP)
        return cost

    def switch_statement(self) -> int:
        self.take()
        if self.peek().text == "(":
            self.skip_balanced("(", ")")
        if not self.accept("{"):
            return 0
        cost = 0
        while self.peek().kind != "eof" and self.peek().text != "}":
            if self.peek().text in ("case", "default"):
                while self.peek().kind != "eof" and self.peek().text != "{":
                    self.take()
                cost = self.charge(cost, self.block())
            else:
                self.take()
        self.accept("}")
        return cost

    def box(self) -> int:
        self.take()
        if self.peek().text == "[":
            self.skip_balanced("[", "]")
        return self.block()
