"""Operation accounting: what a gate call, a `measure`, `reset` or `barrier`, or a classical statement costs,
with user-defined definitions, modifiers and register broadcasting multiplied in, and index literals past their
register refused."""

from __future__ import annotations

import math

from qqueue.intake.prescan.cursor import closing, split
from qqueue.intake.prescan.evaluator import Unknown
from qqueue.intake.prescan.state import CAP, ScanState, shown
from qqueue.intake.prescan.tokens import Token

#: A controlled user-defined gate is built by controlling each gate of its definition, each of which becomes a
#: few: charged at this many operations per operation of the definition.
CONTROL_FACTOR = 16
#: `pow(k) @ g` is computed from the unitary matrix of g, 4^n entries for n qubits: refused past this many, and
#: each call charged 4^n operations (the matrix's entries), so that many powers of wide gates add up.
MAX_POWER_QUBITS = 10
ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "**=", "^=", "&=", "|=", "<<=", ">>=", "~="})


class Operations(ScanState):
    """The statements that apply operations, and what operands they broadcast over."""

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
            head = closing(tokens[1:]) + 2
        if head < len(tokens) and tokens[head].text in ASSIGN:
            return self.measures(tokens[head + 1:])  # classical assignment, `c = measure q`, `x = f(q)`
        if first.text in self.subroutines:
            return self.measures(tokens)
        if len(tokens) > 1 and tokens[1].text == "(" and closing(tokens[1:]) + 2 >= len(tokens):
            return self.measures(tokens)  # `f(x);`: a call of something that is no gate (operands follow a gate)
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
                end = nxt + closing(tokens[nxt:])
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
            rest = rest[closing(rest) + 1:]
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
            raise self.fail(name, f"this call of {name.text!r} expands to {shown(total)} operations (its definition "
                                  "calls gates that call others, or it is broadcast over registers); the limit is "
                                  f"{self.limits.max_operations}", "too_many_operations",
                            limit=self.limits.max_operations)
        return total

    def broadcast(self, operands: list[Token]) -> int:
        """How many times an operation applies over its operands: the size of the widest whole register or
        slice among them (OpenQASM broadcasts over registers), or once."""
        widest = 1
        for operand in split(operands, ","):
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
        inner = operand[2:closing(operand[1:]) + 1]
        if inner and inner[0].text == "{":
            return len(split(inner[1:-1], ","))
        parts = split(inner, ":")
        if len(parts) == 1:
            self.check_index(parts[0], name, size)
            return 1
        try:
            values = [self.evaluate(p) if p else None for p in parts]
        except Unknown:
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
        except Unknown:
            return
        if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            return  # the parser explains fractional indices
        if not -size <= value < size:
            shown_index = int(value) if abs(value) < 2**64 else f"{float(value):.3g}"
            raise self.fail(index[0], f"index {shown_index} is out of range for {name.text!r}, which has {size} "
                                      f"{'bit' if name.text in self.cregs else 'qubit'}{'s' if size != 1 else ''}",
                            "index_out_of_range", size=size)

    def hardware_qubit(self, token: Token) -> None:
        index = int(token.text[1:]) if len(token.text) < 30 else CAP
        if index + 1 > self.hardware_qubits:
            self.add_qubits(index + 1 - self.hardware_qubits, token)
            self.hardware_qubits = index + 1

    def measures(self, tokens: list[Token]) -> int:
        """Operations inside a classical statement: `measure` of a register, calls of subroutines."""
        cost = 0
        for index, token in enumerate(tokens):
            if token.text == "measure":
                operand = tokens[index + 1:]
                end = next((k for k, t in enumerate(operand) if t.text in (",", ")", ";")), len(operand))
                cost = min(cost + self.broadcast(operand[:end]), CAP)
            elif token.kind == "id" and token.text in self.subroutines:
                sub = self.subroutines[token.text]
                if sub is None:
                    raise self.fail(token, f"subroutine {token.text!r} calls itself: recursion cannot be unrolled",
                                    "unsupported_construct")
                cost = min(cost + sub, CAP)
        return cost
