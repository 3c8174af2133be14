"""Declarations and definitions: registers and classical variables (their widths counted against the limits),
`const` values folded for later expressions, `input`s, and gate and subroutine definitions, each costed once from
its body."""

from __future__ import annotations

from qqueue.intake.prescan.cursor import closing, split
from qqueue.intake.prescan.evaluator import Unknown
from qqueue.intake.prescan.operations import Operations
from qqueue.intake.prescan.state import CAP


class Declarations(Operations):
    """The statements that declare names."""

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
                width = self.size(rest[1:closing(rest)], name, "a register size")
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
            except Unknown:
                pass
        return self.measures(rest)

    def array_elements(self) -> int:
        inner = self.skip_balanced("[", "]")
        parts = split(inner, ",")
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
            size = self.size(rest[1:closing(rest)], name, "a register size")
        self.qregs[name.text] = size
        self.add_qubits(size, name)
        return 0

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
        for param in split(params, ","):
            if param and param[0].text == "qubit" and len(param) >= 2:
                inner = param[2:closing(param[1:]) + 1] if param[1].text == "[" else []
                self.qregs[param[-1].text] = self.size(inner, param[0], "a register size") if inner else 1
        self.subroutines[name.text] = None
        try:
            cost = self.block()
        finally:
            self.qregs, self.defining = saved
        self.check_definition(name, cost)
        self.subroutines[name.text] = cost
        return 0
