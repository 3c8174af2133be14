"""What the scanner knows as it walks a program: the totals so far and their limits, the registers, constants,
gates and subroutines declared, and the checks that raise the moment a total passes its limit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qqueue.intake.prescan.cursor import Cursor
from qqueue.intake.prescan.evaluator import Unknown, evaluate
from qqueue.intake.prescan.tokens import Token

#: Costs saturate here: far past any limit, and small enough to keep arithmetic cheap.
CAP = 2**62


@dataclass
class Scan:
    """What the program declares and expands to, and where the constructs intake checks after parsing are."""

    qubits: int = 0
    clbits: int = 0
    operations: int = 0
    #: Position (line, column) of the first qubit declaration, for errors about the circuit's width.
    first_qubit_at: tuple[int, int] | None = None
    #: name -> (line, column) of `opaque` declarations.
    opaque: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: name -> (line, column) of `input` declarations (parameters the caller would have to bind).
    inputs: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: name -> (line, column) of user-defined gates.
    gates: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Names of the classical bits and registers declared, in order.
    bit_names: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """The totals a program may reach."""

    max_qubits: int
    max_clbits: int
    max_operations: int


class ScanState(Cursor):
    """The scanner's state and its limit checks; the statements it walks are the subclasses' (`statement`)."""

    def __init__(self, source: str, tokens: list[Token], version: int, limits: ScanLimits) -> None:
        super().__init__(source, tokens)
        self.version = version
        self.limits = limits
        self.result = Scan()
        #: name -> size of quantum registers (and qubit parameters of the subroutine being scanned).
        self.qregs: dict[str, int] = {}
        self.cregs: dict[str, int] = {}
        self.consts: dict[str, int | float] = {}
        #: name -> (operations, qubits) of user-defined gates; subroutines likewise (None while being defined).
        self.gates: dict[str, tuple[int, int]] = {}
        self.subroutines: dict[str, int | None] = {}
        self.hardware_qubits = 0
        #: The name token of the latest declaration.
        self.declared = self.end
        #: The gate or subroutine whose body is being scanned, for errors about its cost.
        self.defining: Token | None = None

    def statement(self) -> int:
        """One statement (consumed): its cost."""
        raise NotImplementedError

    def block(self) -> int:
        """A braced block or a single statement: its cost."""
        if self.peek().text != "{":
            return self.statement()
        self.take()
        total = 0
        while self.peek().kind != "eof" and self.peek().text != "}":
            total = self.charge(total, self.statement())
        self.accept("}")
        return total

    def charge(self, total: int, cost: int, token: Token | None = None) -> int:
        total = min(total + cost, CAP)
        if total > self.limits.max_operations and self.defining is not None:
            self.check_definition(self.defining, total)
        if total > self.limits.max_operations:
            where = token or self.tokens[min(self.i, len(self.tokens)) - 1]
            raise self.fail(where, f"the program has at least {shown(total)} operations once its gate definitions, "
                                   "loops and register broadcasts are expanded; the limit is "
                                   f"{self.limits.max_operations}", "too_many_operations",
                            limit=self.limits.max_operations)
        return total

    def check_definition(self, name: Token, cost: int) -> None:
        if cost > self.limits.max_operations:
            raise self.fail(name, f"{name.text!r} expands to at least {shown(cost)} "
                                  "operations (its definition calls gates that call others); the limit is "
                                  f"{self.limits.max_operations}",
                            "too_many_operations", limit=self.limits.max_operations)

    def add_qubits(self, count: int, token: Token) -> None:
        self.result.qubits = min(self.result.qubits + count, CAP)
        if self.result.first_qubit_at is None:
            self.result.first_qubit_at = self.where(token)
        if self.result.qubits > self.limits.max_qubits:
            raise self.fail(token, f"the program declares {self.result.qubits} qubits; the limit is "
                                   f"{self.limits.max_qubits}", "too_many_qubits",
                            qubits=self.result.qubits, limit=self.limits.max_qubits)

    def add_clbits(self, count: int, token: Token) -> None:
        self.result.clbits = min(self.result.clbits + count, CAP)
        if self.result.clbits > self.limits.max_clbits:
            raise self.fail(token, f"the program declares {self.result.clbits} classical bits; the limit is "
                                   f"{self.limits.max_clbits}", "too_many_clbits",
                            clbits=self.result.clbits, limit=self.limits.max_clbits)

    def evaluate(self, tokens: list[Token]) -> int | float:
        """The value of a constant expression, with the constants declared so far; `Unknown` otherwise."""
        return evaluate(tokens, self.version, self.consts)

    def size(self, tokens: list[Token], at: Token, what: str) -> int:
        """A declared size: a constant whole number (refused otherwise; the parsers would need one too)."""
        try:
            value = self.evaluate(tokens)
        except Unknown:
            raise self.fail(tokens[0] if tokens else at, f"{what} must be a constant whole number",
                            "invalid_source") from None
        if isinstance(value, float):
            if value != value or value in (math.inf, -math.inf) or value > CAP:
                return CAP
            value = int(value)
        return max(value, 0)


def shown(cost: int) -> str:
    """A cost as messages quote it: saturated costs as a bound."""
    return f"over {CAP:.2e}" if cost >= CAP else str(cost)
