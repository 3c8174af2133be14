"""The pre-scan: what a program would make the parsers build, read from its tokens before any parser runs.

Parsers build what they are told to: `qreg q[40000000];` allocates gigabytes inside Qiskit before the circuit's
width can be read, gate definitions that call each other ten times a level expand to 10^8 operations from under
1 KB, and a `const` loop bound is unrolled as readily as a literal one. So the cost of a program is computed here
first, in time and memory linear in the size of its source:

- every register and classical width, and the sums of declared qubits and of declared bits;
- the operations the program expands to: gate calls times the size of their user-defined definitions (computed
  once per definition over the definition graph, never by expanding), times register broadcasting, times the
  iterations of enclosing loops, with `const` expressions folded;
- index literals past their register, and expressions long enough to exhaust a recursive parser.

Each total is checked against its limit the moment it passes it, with the line and column of the construct that
did. The scan is deliberately forgiving about what it does not understand (the real parser reports those
precisely); it is strict only about what costs more than its size. What it cannot bound, the bounded parser
process (`qqueue.intake.pool`) still stops.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qqueue.errors import IntakeError

#: Costs saturate here: far past any limit, and small enough to keep arithmetic cheap.
CAP = 2**62
#: Constant expressions saturate (to infinity) past this, so that `2**10**10` costs nothing to evaluate while
#: every value a message may quote, such as 2^63, is still exact.
_VALUE_CAP = 2**256
#: Most operators in one expression. Recursive parsers descend once per operator: the OpenQASM 3 importer spent
#: 23 s of CPU on 100,000 unary minus signs before failing. Real programs stay far below this.
MAX_EXPRESSION_OPERATORS = 256
#: A controlled user-defined gate is built by controlling each gate of its definition, each of which becomes a
#: few: charged at this many operations per operation of the definition.
CONTROL_FACTOR = 16
#: `pow(k) @ g` is computed from the unitary matrix of g, 4^n entries for n qubits: refused past this many, and
#: each call charged 4^n operations (the matrix's entries), so that many powers of wide gates add up.
MAX_POWER_QUBITS = 10

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
#: Operator-like symbols, longest first; those of expressions are `_OPERATORS` (not `->`, `++`, assignments).
_SYMBOL = re.compile(r"->|\+\+|\*\*=?|<<=?|>>=?|&&|\|\||[-+*/%^&|~<>!=]=|[-+*/%^&|~!<>=]")
_OPERATORS = frozenset({"+", "-", "*", "/", "%", "**", "^", "&", "|", "~", "!", "<<", ">>", "==", "!=", "<", ">",
                        "<=", ">=", "&&", "||"})
#: What ends an expression.
_SEPARATOR = re.compile(r"[,;{}]")
_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "**=", "^=", "&=", "|=", "<<=", ">>=", "~="})
_CLASSICAL_TYPES = frozenset({"int", "uint", "float", "angle", "bool", "duration", "stretch", "complex"})
_SKIPPED_BLOCKS = frozenset({"defcal", "cal"})
_NO_COST = frozenset({"OPENQASM", "include", "extern", "defcalgrammar", "return", "break", "continue", "end",
                      "let", "input", "output"})
_CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau, "euler": math.e, "ℇ": math.e,
              "true": 1, "false": 0}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin, "arccos": math.acos,
    "arctan": math.atan, "exp": math.exp, "ln": math.log, "sqrt": math.sqrt, "floor": math.floor,
    "ceil": math.ceil, "abs": abs, "int": int, "uint": int, "float": float, "mod": lambda a, b: a % b,
}


class _Unknown(Exception):
    """An expression whose value cannot be known before the program runs."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


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


def blank_comments(source: str) -> str:
    """The source with comments replaced by spaces, newlines kept (positions unchanged)."""
    return _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), source)


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


def scan(source: str, version: int, limits: ScanLimits) -> Scan:
    """Measure a program without parsing it; raises `IntakeError` the moment a limit is passed."""
    code = _PRAGMA.sub(lambda m: " " * len(m[0]), blank_comments(source))
    _check_expressions(code)
    tokens = [Token(m.lastgroup or "other", m[0], m.start()) for m in _TOKEN.finditer(code)
              if m.lastgroup != "ws"]
    return _Scanner(source, tokens, version, limits).run()


def _check_expressions(code: str) -> None:
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


class _Scanner:
    """One pass over the tokens, statement by statement, carrying costs upward."""

    def __init__(self, source: str, tokens: list[Token], version: int, limits: ScanLimits) -> None:
        self.tokens = tokens
        self.end = Token("eof", "", len(source))
        self.i = 0
        self.version = version
        self.limits = limits
        self.lines = [0] + [m.end() for m in re.finditer("\n", source)]
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

    # -- tokens ------------------------------------------------------------------------------------------------

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

    # -- the walk ----------------------------------------------------------------------------------------------

    def run(self) -> Scan:
        total = 0
        while self.peek().kind != "eof":
            total = self.charge(total, self.statement())
        self.result.operations = total
        return self.result

    def charge(self, total: int, cost: int, token: Token | None = None) -> int:
        total = min(total + cost, CAP)
        if total > self.limits.max_operations and self.defining is not None:
            self.check_definition(self.defining, total)
        if total > self.limits.max_operations:
            where = token or self.tokens[min(self.i, len(self.tokens)) - 1]
            raise self.fail(where, f"the program has at least {_shown(total)} operations once its gate definitions, "
                                   "loops and register broadcasts are expanded; the limit is "
                                   f"{self.limits.max_operations}", "too_many_operations",
                            limit=self.limits.max_operations)
        return total

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

    # -- declarations ------------------------------------------------------------------------------------------

    def declaration(self) -> int:
        const = self.accept("const")
        type_token = self.take()
        width = 1
        if type_token.text == "array":
            width = self.array_elements()
        elif type_token.text == "complex" and self.peek().text == "[":
            self.skip_balanced("[", "]")  # complex[float[64]]: the width is the float's, bounded by the type
        elif self.peek().text == "[":
            width = self.size(self.skip_balanced("[", "]"), type_token, "a classical width")
        name = self.take()
        self.declared = name
        rest = self.until_semicolon()
        if type_token.text in ("bit", "creg") or type_token.text == "array":
            if type_token.text == "creg" and rest and rest[0].text == "[":
                width = self.size(rest[1:_closing(rest)], name, "a register size")
            self.cregs[name.text] = width
            if type_token.text != "array":
                self.result.bit_names.append(name.text)
            self.add_clbits(width, name)
        elif width > self.limits.max_clbits:
            raise self.fail(type_token, f"a classical width of {width} bits; the limit is {self.limits.max_clbits}",
                            "too_many_clbits", limit=self.limits.max_clbits)
        if const and rest and rest[0].text == "=":
            try:
                self.consts[name.text] = self.evaluate(rest[1:])
            except _Unknown:
                pass
        return _measures(self, rest)

    def array_elements(self) -> int:
        inner = self.skip_balanced("[", "]")
        parts = _split(inner, ",")
        elements = 1
        for dim in parts[1:]:
            elements = min(elements * self.size(dim, inner[0] if inner else self.peek(), "an array dimension"), CAP)
        return elements

    def qubit_declaration(self) -> int:
        keyword = self.take()
        size = 1
        if keyword.text == "qubit" and self.peek().text == "[":
            size = self.size(self.skip_balanced("[", "]"), keyword, "a register size")
        name = self.take()
        self.declared = name
        rest = self.until_semicolon()
        if keyword.text == "qreg" and rest and rest[0].text == "[":
            size = self.size(rest[1:_closing(rest)], name, "a register size")
        self.qregs[name.text] = size
        self.add_qubits(size, name)
        return 0

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

    def size(self, tokens: list[Token], at: Token, what: str) -> int:
        """A declared size: a constant whole number (refused otherwise; the parsers would need one too)."""
        try:
            value = self.evaluate(tokens)
        except _Unknown:
            raise self.fail(tokens[0] if tokens else at, f"{what} must be a constant whole number",
                            "invalid_source") from None
        if isinstance(value, float):
            if value != value or value in (math.inf, -math.inf) or value > CAP:
                return CAP
            value = int(value)
        return max(value, 0)

    def input_declaration(self) -> int:
        keyword = self.take()
        cost = self.qubit_declaration() if self.peek().text == "qubit" else self.declaration()
        if keyword.text == "input":
            self.result.inputs.setdefault(self.declared.text, self.where(self.declared))
        return cost

    # -- definitions -------------------------------------------------------------------------------------------

    def gate_definition(self) -> int:
        self.take()
        name = self.take()
        if self.peek().text == "(":
            self.skip_balanced("(", ")")
        arity = 0
        while self.peek().kind != "eof" and self.peek().text != "{":
            if self.take().kind == "id":
                arity += 1
        saved = self.qregs, self.cregs, self.defining
        self.qregs, self.cregs, self.defining = {}, {}, name  # in a gate body every qubit argument is one qubit
        try:
            cost = self.block()
        finally:
            self.qregs, self.cregs, self.defining = saved
        self.result.gates[name.text] = self.where(name)
        self.check_definition(name, cost)
        self.gates[name.text] = (cost, arity)
        return 0

    def opaque_declaration(self) -> int:
        self.take()
        name = self.take()
        self.until_semicolon()
        self.result.opaque[name.text] = self.where(name)
        self.gates[name.text] = (1, 1)
        return 0

    def subroutine_definition(self) -> int:
        self.take()
        name = self.take()
        params = self.skip_balanced("(", ")") if self.peek().text == "(" else []
        while self.peek().kind != "eof" and self.peek().text != "{":
            self.take()  # -> return type
        saved = self.qregs, self.defining
        self.qregs, self.defining = dict(saved[0]), name
        for param in _split(params, ","):
            if param and param[0].text == "qubit" and len(param) >= 2:
                inner = param[2:_closing(param[1:]) + 1] if param[1].text == "[" else []
                self.qregs[param[-1].text] = self.size(inner, param[0], "a register size") if inner else 1
        self.subroutines[name.text] = None
        try:
            cost = self.block()
        finally:
            self.qregs, self.defining = saved
        self.check_definition(name, cost)
        self.subroutines[name.text] = cost
        return 0

    def check_definition(self, name: Token, cost: int) -> None:
        if cost > self.limits.max_operations:
            raise self.fail(name, f"{name.text!r} expands to at least {_shown(cost)} "
                                  "operations (its definition calls gates that call others); the limit is "
                                  f"{self.limits.max_operations}",
                            "too_many_operations", limit=self.limits.max_operations)

    # -- control flow ------------------------------------------------------------------------------------------

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
            parts = _split(self.skip_balanced("[", "]"), ":")
            try:
                values = [self.evaluate(part) for part in parts]
            except _Unknown:
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
            return len(_split(self.skip_balanced("{", "}"), ","))
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
        if not any(t.kind == "id" and t.text not in _CONSTANTS and t.text not in self.consts
                   and t.text not in _FUNCTIONS for t in condition):
            raise self.fail(keyword, "this while loop's condition is made of constants: it would never stop (or "
                                     "never run); loop on a measured bit, or use a for loop",
                            "unsupported_construct")
        return min(_measures(self, condition) + self.block(), CAP)

    def if_statement(self) -> int:
        self.take()
        condition = self.skip_balanced("(", ")") if self.peek().text == "(" else []
        cost = _measures(self, condition) + self.block()
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

    # -- operations --------------------------------------------------------------------------------------------

    def quantum_operation(self) -> int:
        """measure, reset, barrier, delay, gphase: one operation per qubit they broadcast over."""
        keyword = self.take()
        tokens = self.until_semicolon()
        if keyword.text in ("barrier", "delay", "gphase"):
            return 1
        targets = tokens
        if keyword.text == "measure":
            arrow = next((k for k, t in enumerate(tokens) if t.text == "->"), len(tokens))
            targets = tokens[:arrow]
        return self.broadcast(targets)

    def call_or_assignment(self) -> int:
        first = self.peek()
        tokens = self.until_semicolon()
        if not tokens:
            return 0
        head = 1
        if len(tokens) > 1 and tokens[1].text == "[":
            head = _closing(tokens[1:]) + 2
        if head < len(tokens) and tokens[head].text in _ASSIGN:
            return _measures(self, tokens[head + 1:])  # classical assignment, `c = measure q`, `x = f(q)`
        if first.text in self.subroutines:
            return _measures(self, tokens)
        if len(tokens) > 1 and tokens[1].text == "(" and _closing(tokens[1:]) + 2 >= len(tokens):
            return _measures(self, tokens)  # `f(x);`: a call of something that is no gate (operands follow a gate)
        return self.gate_call(tokens)

    def gate_call(self, tokens: list[Token]) -> int:
        """`ctrl @ inv @ pow(k) @ name(params) qubits`: the definition's cost, per application."""
        factor = 1
        powered: list[Token] | None = None
        k = 0
        while k + 1 < len(tokens):
            word = tokens[k].text
            if word not in ("ctrl", "negctrl", "inv", "pow"):
                break
            nxt = k + 1
            if tokens[nxt].text == "(":
                end = nxt + _closing(tokens[nxt:])
                if word == "pow":
                    powered = tokens[nxt + 1:end]
                nxt = end + 1
            if nxt >= len(tokens) or tokens[nxt].text != "@":
                break
            if word in ("ctrl", "negctrl"):
                factor = min(factor * CONTROL_FACTOR, CAP)  # charged only when the gate is user-defined
            k = nxt + 1
        if k >= len(tokens):
            return 1
        name = tokens[k]
        rest = tokens[k + 1:]
        if rest and rest[0].text == "(":
            rest = rest[_closing(rest) + 1:]
        cost, arity = self.gates.get(name.text, (1, 1))
        if name.text not in self.gates:
            factor = 1  # a standard gate, controlled, is one multi-controlled gate
        if powered is not None:
            if arity > MAX_POWER_QUBITS:
                raise self.fail(name, f"pow() of {name.text!r}, a gate on {arity} qubits, would compute a "
                                      f"{2 ** arity}x{2 ** arity} matrix; the limit is {MAX_POWER_QUBITS} qubits",
                                "too_many_operations", limit=MAX_POWER_QUBITS)
            cost = 4 ** arity if name.text in self.gates else 1  # the matrix computed, not the definition's length
        total = min(cost * factor * self.broadcast(rest), CAP)
        if total > self.limits.max_operations:
            raise self.fail(name, f"this call of {name.text!r} expands to {_shown(total)} operations (its definition "
                                  "calls gates that call others, or it is broadcast over registers); the limit is "
                                  f"{self.limits.max_operations}", "too_many_operations",
                            limit=self.limits.max_operations)
        return total

    def broadcast(self, operands: list[Token]) -> int:
        """How many times an operation applies over its operands: the size of the widest whole register or
        slice among them (OpenQASM broadcasts over registers), or once."""
        widest = 1
        for operand in _split(operands, ","):
            widest = max(widest, self.operand_size(operand))
        return widest

    def operand_size(self, operand: list[Token]) -> int:
        if not operand:
            return 1
        name = operand[0]
        if name.kind == "hw":
            self.hardware_qubit(name)
            return 1
        size = self.qregs.get(name.text)
        if size is None:
            size = self.cregs.get(name.text)
        if size is None or len(operand) == 1:
            return size or 1
        if operand[1].text != "[":
            return 1
        inner = operand[2:_closing(operand[1:]) + 1]
        if inner and inner[0].text == "{":
            return len(_split(inner[1:-1], ","))
        parts = _split(inner, ":")
        if len(parts) == 1:
            self.check_index(parts[0], name, size)
            return 1
        try:
            values = [self.evaluate(p) if p else None for p in parts]
        except _Unknown:
            return size
        first = values[0] if values[0] is not None else 0
        last = values[-1] if values[-1] is not None else size - 1
        step = values[1] if len(values) == 3 and values[1] else 1
        try:
            return max(1, min(size, math.floor((last - first) / step) + 1))
        except (OverflowError, ValueError, TypeError):
            return size

    def check_index(self, index: list[Token], name: Token, size: int) -> None:
        try:
            value = self.evaluate(index)
        except _Unknown:
            return
        if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            return  # the parser explains fractional indices
        if not -size <= value < size:
            shown = int(value) if abs(value) < 2**64 else f"{float(value):.3g}"
            raise self.fail(index[0], f"index {shown} is out of range for {name.text!r}, which has {size} "
                                      f"{'bit' if name.text in self.cregs else 'qubit'}{'s' if size != 1 else ''}",
                            "index_out_of_range", size=size)

    def hardware_qubit(self, token: Token) -> None:
        index = int(token.text[1:]) if len(token.text) < 30 else CAP
        if index + 1 > self.hardware_qubits:
            self.add_qubits(index + 1 - self.hardware_qubits, token)
            self.hardware_qubits = index + 1

    # -- expressions -------------------------------------------------------------------------------------------

    def evaluate(self, tokens: list[Token]) -> int | float:
        """The value of a constant expression; `_Unknown` when it depends on anything but constants."""
        if not tokens:
            raise _Unknown
        try:
            value, end = _Evaluator(self, tokens).expression(0, 0)
        except RecursionError:  # brackets nest at most 64 deep, but a thread's stack may be shallow
            raise _Unknown from None
        if end != len(tokens):
            raise _Unknown
        return value


_STATEMENTS: dict[str, Callable[[_Scanner], int]] = {
    "qreg": _Scanner.qubit_declaration,
    "qubit": _Scanner.qubit_declaration,
    "input": _Scanner.input_declaration,
    "output": _Scanner.input_declaration,
    "gate": _Scanner.gate_definition,
    "opaque": _Scanner.opaque_declaration,
    "def": _Scanner.subroutine_definition,
    "for": _Scanner.for_loop,
    "while": _Scanner.while_loop,
    "if": _Scanner.if_statement,
    "switch": _Scanner.switch_statement,
    "box": _Scanner.box,
    "measure": _Scanner.quantum_operation,
    "reset": _Scanner.quantum_operation,
    "barrier": _Scanner.quantum_operation,
    "delay": _Scanner.quantum_operation,
    "gphase": _Scanner.quantum_operation,
}


def _shown(cost: int) -> str:
    return f"over {CAP:.2e}" if cost >= CAP else str(cost)


def _closing(tokens: list[Token]) -> int:
    """Index of the bracket closing tokens[0] (or the last index when it is never closed)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    opening = tokens[0].text
    closing = pairs.get(opening)
    depth = 0
    for index, token in enumerate(tokens):
        if token.text == opening:
            depth += 1
        elif token.text == closing:
            depth -= 1
            if depth == 0:
                return index
    return len(tokens) - 1


def _split(tokens: list[Token], separator: str) -> list[list[Token]]:
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


def _measures(scanner: _Scanner, tokens: list[Token]) -> int:
    """Operations inside a classical statement: `measure` of a register, calls of subroutines."""
    cost = 0
    for index, token in enumerate(tokens):
        if token.text == "measure":
            operand = tokens[index + 1:]
            end = next((k for k, t in enumerate(operand) if t.text in (",", ")", ";")), len(operand))
            cost = min(cost + scanner.broadcast(operand[:end]), CAP)
        elif token.kind == "id" and token.text in scanner.subroutines:
            sub = scanner.subroutines[token.text]
            if sub is None:
                raise scanner.fail(token, f"subroutine {token.text!r} calls itself: recursion cannot be unrolled",
                                   "unsupported_construct")
            cost = min(cost + sub, CAP)
    return cost


class _Evaluator:
    """Precedence climbing over constant expressions. Recursion is bounded: brackets nest at most 64 deep
    (checked before the scan) and runs of unary operators are folded in a loop."""

    #: Binary operators by precedence, loosest first.
    LEVELS: tuple[frozenset[str], ...] = (
        frozenset({"||"}), frozenset({"&&"}), frozenset({"|"}), frozenset({"^"}), frozenset({"&"}),
        frozenset({"==", "!="}), frozenset({"<", ">", "<=", ">="}), frozenset({"<<", ">>"}),
        frozenset({"+", "-"}), frozenset({"*", "/", "%"}),
    )

    def __init__(self, scanner: _Scanner, tokens: list[Token]) -> None:
        self.scanner = scanner
        self.tokens = tokens
        self.levels = self.LEVELS
        self.power_operator = "**"
        if scanner.version == 2:  # OpenQASM 2: ^ is the power operator, and there is no exclusive or
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
            raise _Unknown
        token = self.tokens[at]
        if token.text == "(":
            value, at = self.expression(at + 1, 0)
            if self.text(at) != ")":
                raise _Unknown
            return value, at + 1
        if token.kind == "num":
            return _number(token.text), at + 1
        if token.kind == "id":
            if self.text(at + 1) == "(" and token.text in _FUNCTIONS:
                args: list[Any] = []
                at += 2
                while self.text(at) != ")":
                    value, at = self.expression(at, 0)
                    args.append(value)
                    if self.text(at) == ",":
                        at += 1
                    elif self.text(at) != ")":
                        raise _Unknown
                try:
                    return _finite(_FUNCTIONS[token.text](*args)), at + 1
                except (ValueError, TypeError, OverflowError, ZeroDivisionError):
                    raise _Unknown from None
            if token.text in self.scanner.consts:
                return self.scanner.consts[token.text], at + 1
            if token.text in _CONSTANTS:
                return _CONSTANTS[token.text], at + 1
        raise _Unknown


def _number(text: str) -> int | float:
    text = text.replace("_", "")
    if re.search(r"(ns|us|µs|ms|s|dt|im)$", text) and not text.lower().startswith(("0x", "0b", "0o")):
        raise _Unknown  # durations and imaginary numbers are no sizes
    try:
        if text[:2].lower() in ("0x", "0b", "0o"):
            return int(text, 0)
        if re.fullmatch(r"\d+", text):
            return int(text)
        return float(text)
    except ValueError:
        raise _Unknown from None


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
            raise _Unknown
        if operator in ("<<", ">>"):
            if right > 256 or right < 0:
                raise _Unknown
            return _finite(left << right if operator == "<<" else left >> right)
        if operator in ("&", "|", "^"):
            return left & right if operator == "&" else left | right if operator == "|" else left ^ right
        if operator in ("&&", "||"):
            return int(bool(left) and bool(right)) if operator == "&&" else int(bool(left) or bool(right))
        return int(eval_comparison(operator, left, right))
    except (ZeroDivisionError, OverflowError, TypeError, ValueError):
        raise _Unknown from None


def eval_comparison(operator: str, left: Any, right: Any) -> bool:
    """`left operator right` for the six comparison operators."""
    return {"==": left == right, "!=": left != right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[operator]
