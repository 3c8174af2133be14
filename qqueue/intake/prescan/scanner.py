"""The scan itself: one pass over a program's tokens, statement by statement, dispatching each to the part of the
scanner that costs it and carrying the costs upward."""

from __future__ import annotations

from collections.abc import Callable

from qqueue.intake.prescan.control import ControlFlow
from qqueue.intake.prescan.declarations import Declarations
from qqueue.intake.prescan.length import check_expressions
from qqueue.intake.prescan.state import Scan, ScanLimits
from qqueue.intake.prescan.tokens import blank_comments, blank_pragmas, tokenize

_CLASSICAL_TYPES = frozenset({"int", "uint", "float", "angle", "bool", "duration", "stretch", "complex"})
_SKIPPED_BLOCKS = frozenset({"defcal", "cal"})
_NO_COST = frozenset({"OPENQASM", "include", "extern", "defcalgrammar", "return", "break", "continue", "end",
                      "let", "input", "output"})


def scan(source: str, version: int, limits: ScanLimits) -> Scan:
    """Measure a program without parsing it; raises `IntakeError` the moment a limit is passed."""
    code = blank_pragmas(blank_comments(source))
    check_expressions(code)
    return Scanner(source, tokenize(code), version, limits).run()


class Scanner(Declarations, ControlFlow):
    """One pass over the tokens, statement by statement, carrying costs upward."""

    def run(self) -> Scan:
        total = 0
        while self.peek().kind != "eof":
            total = self.charge(total, self.statement())
        self.result.operations = total
        return self.result

    def statement(self) -> int:
        token = self.peek()
        word = token.text
        if token.kind != "id":
            if word == "{":
                return self.block()
            self.take()  # a stray token: the parser will say what is wrong with it
            return 0
        handler = _STATEMENTS.get(word)
        if handler is not None:
            return handler(self)
        if word in _NO_COST:
            self.until_semicolon()
            return 0
        if word in _SKIPPED_BLOCKS:
            while self.peek().kind != "eof" and self.peek().text not in ("{", ";"):
                self.take()
            if self.peek().text == "{":
                self.skip_balanced("{", "}")
            else:
                self.take()
            return 0
        if word in _CLASSICAL_TYPES or word in ("const", "bit", "creg", "array"):
            return self.declaration()
        return self.call_or_assignment()


_STATEMENTS: dict[str, Callable[[Scanner], int]] = {
    "qreg": Scanner.qubit_declaration,
    "qubit": Scanner.qubit_declaration,
    "input": Scanner.input_declaration,
    "output": Scanner.input_declaration,
    "gate": Scanner.gate_definition,
    "opaque": Scanner.opaque_declaration,
    "def": Scanner.subroutine_definition,
    "for": Scanner.for_loop,
    "while": Scanner.while_loop,
    "if": Scanner.if_statement,
    "switch": Scanner.switch_statement,
    "box": Scanner.box,
    "measure": Scanner.quantum_operation,
    "reset": Scanner.quantum_operation,
    "barrier": Scanner.quantum_operation,
    "delay": Scanner.quantum_operation,
    "gphase": Scanner.quantum_operation,
}
