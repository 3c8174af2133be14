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

The package, in the order a scan uses it: `tokens` (lexing, comments blanked), `length` (expressions too long for
a recursive parser), `cursor` (walking the tokens), `evaluator` (constant expressions), `state` (totals, limits
and what is declared), `operations`, `declarations` and `control` (what each kind of statement costs), and
`scanner` (the walk).
"""

from __future__ import annotations

from qqueue.intake.prescan.evaluator import eval_comparison
from qqueue.intake.prescan.length import MAX_EXPRESSION_OPERATORS
from qqueue.intake.prescan.operations import CONTROL_FACTOR, MAX_POWER_QUBITS
from qqueue.intake.prescan.scanner import scan
from qqueue.intake.prescan.state import CAP, Scan, ScanLimits
from qqueue.intake.prescan.tokens import Token, blank_comments, locate, unclosed_comment

__all__ = ["CAP", "CONTROL_FACTOR", "MAX_EXPRESSION_OPERATORS", "MAX_POWER_QUBITS", "Scan", "ScanLimits", "Token",
           "blank_comments", "eval_comparison", "locate", "scan", "unclosed_comment"]
