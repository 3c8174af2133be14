"""OpenQASM source → QuantumCircuit, with every failure turned into an `IntakeError` a person can act on.

Checks that need no parser come first (size, encoding, includes, nesting, unbounded loops), so hostile input is
refused cheaply and never reaches a recursive parser. OpenQASM 2 goes to `qiskit.qasm2` (fast, Rust). OpenQASM 3
goes to `qiskit.qasm3`; where that importer refuses valid programs (loops, subroutines, `measure q;` without a
target, gates without `include "stdgates.inc"`), pyqasm unrolls the program first and the result is imported.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from qiskit import QuantumCircuit, qasm2, qasm3

from qqueue.errors import IntakeError

STANDARD_INCLUDES = frozenset({"qelib1.inc", "stdgates.inc"})
#: Deeper bracket nesting than this is refused before parsing: real circuits never need it, and recursive
#: parsers would exhaust the stack on it.
MAX_NESTING = 64

_VERSION = re.compile(r"^\s*OPENQASM\s+(\d+)(?:\.(\d+))?\s*;", re.MULTILINE)
#: Every `include` keyword, wherever it stands: a statement may share its line with others ("OPENQASM 2.0;
#: include ..."), and the parsers would open whatever file it names.
_INCLUDE = re.compile(r"\binclude\b")
#: An include statement the static check can read: a quoted name (either quote, as OpenQASM 3 allows), then ';'.
_INCLUDE_STATEMENT = re.compile(r"""include\s*(["'])([^"'\n]*)\1\s*;""")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_POSITION = re.compile(r"^(?:<input>:)?(\d+),(\d+):\s*")
_FOR_RANGE = re.compile(r"\bfor\s+(?:\w+\s+)?\w+\s+in\s+\[\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?\]")
_MEASURE_NO_TARGET = re.compile(r"^(\s*)measure\s+([A-Za-z_]\w*(?:\[\d+\])?)\s*;\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ParsedSource:
    """A parsed circuit and the OpenQASM major version it was written in."""

    circuit: QuantumCircuit
    version: int


def decode(source: str | bytes, *, max_bytes: int) -> str:
    """The source as text; refuses non-UTF-8 bytes, NUL characters and oversized programs."""
    size = len(source.encode() if isinstance(source, str) else source)
    if size > max_bytes:
        raise IntakeError(f"the circuit source is {size} bytes; the limit is {max_bytes}", code="source_too_large",
                          details={"size_bytes": size, "limit_bytes": max_bytes})
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IntakeError(f"the circuit source is not UTF-8 text (invalid byte at offset {exc.start})",
                              code="not_utf8") from None
    if "\x00" in source:
        raise IntakeError("the circuit source contains a NUL character", code="invalid_source")
    if not source.strip():
        raise IntakeError("the circuit source is empty", code="invalid_source")
    return source


def detect_version(source: str) -> int:
    """2 or 3, from the `OPENQASM x.y;` header (which must come first, comments aside)."""
    match = _VERSION.match(_COMMENTS.sub("", source))
    if not match:
        raise IntakeError('the source must start with an OpenQASM header, e.g. "OPENQASM 3.0;"', code="no_header",
                          line=1, column=1)
    major = int(match[1])
    if major not in (2, 3):
        raise IntakeError(f"OpenQASM {major} is not supported; use OpenQASM 2 or 3", code="unsupported_version",
                          line=1, column=1)
    return major


def check_static(source: str, *, max_operations: int) -> None:
    """Refuse, before any parser runs, what must never be parsed: file includes, pathological nesting,
    unbounded or oversized loops."""
    code = _COMMENTS.sub(lambda m: " " * len(m[0]), source)
    for match in _INCLUDE.finditer(code):
        statement = _INCLUDE_STATEMENT.match(code, match.start())
        name = statement[2] if statement else None
        if name not in STANDARD_INCLUDES:
            line = code.count("\n", 0, match.start()) + 1
            column = match.start() - (code.rfind("\n", 0, match.start()) + 1) + 1
            what = f'include "{name}"' if statement else "an include whose file name cannot be read"
            raise IntakeError(f"{what} is not allowed: only the standard gate libraries "
                              f"({', '.join(sorted(STANDARD_INCLUDES))}) can be included", code="include_refused",
                              line=line, column=column)
    depth = deepest = 0
    for char in code:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                raise IntakeError(f"brackets are nested more than {MAX_NESTING} deep", code="nesting_too_deep",
                                  details={"limit": MAX_NESTING})
        elif char in ")]}":
            depth -= 1
    if re.search(r"\bwhile\s*\(", code):
        raise IntakeError("while loops are not supported: the circuit must have a fixed number of operations",
                          code="unsupported_construct")
    iterations = 1
    for match in _FOR_RANGE.finditer(code):
        # OpenQASM ranges are inclusive: [start:stop] or [start:step:stop]. Nested loops multiply; sequential
        # ones are over-counted the same way, which errs on the side of refusing.
        start = int(match[1])
        step, stop = (int(match[2]), int(match[3])) if match[3] else (1, int(match[2]))
        if step == 0:
            raise IntakeError("a for-loop range has a step of 0", code="invalid_source")
        iterations *= max(0, (stop - start) // step + 1)
        if iterations > max_operations:
            raise IntakeError(f"loops would unroll to over {max_operations} iterations", code="too_many_operations",
                              details={"limit": max_operations})


def parse(source: str, version: int) -> ParsedSource:
    """Parse checked source; every failure is an `IntakeError` with line and column where known."""
    try:
        if version == 2:
            return ParsedSource(qasm2.loads(source, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS), 2)
        try:
            return ParsedSource(qasm3.loads(source), 3)
        except (qasm3.QASM3ImporterError, TypeError, NotImplementedError, ValueError) as exc:
            # The importer refuses some valid programs; unrolled, they import. A genuine error stays an error:
            # the first message is the more precise one, so it is the one reported.
            try:
                return ParsedSource(qasm3.loads(_unroll(source)), 3)
            except Exception:
                raise exc  # noqa: B904 - its own cause chain carries the parser's position
    except RecursionError:
        raise IntakeError("the program is nested too deeply to parse", code="nesting_too_deep") from None
    except IntakeError:
        raise
    except Exception as exc:  # parser errors come in many types; all become one clear error
        raise _as_intake_error(exc, source) from None


def _unroll(source: str) -> str:
    """pyqasm's unrolled form of the program, made importable by qiskit: standard gates included, and any
    `measure q;` given bits to write to (Qiskit measurements must have a target)."""
    import pyqasm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = pyqasm.loads(source)
        module.unroll()
        text: str = pyqasm.dumps(module)
    if not _INCLUDE.search(text):
        text = _VERSION.sub(lambda m: m[0] + '\ninclude "stdgates.inc";', text, count=1)
    targets = _MEASURE_NO_TARGET.findall(text)
    if targets:
        counter = iter(range(len(targets)))
        text = _MEASURE_NO_TARGET.sub(lambda m: f"{m[1]}__qq_measured[{next(counter)}] = measure {m[2]};", text)
        text = re.sub(r'(include\s+"stdgates\.inc"\s*;)', rf"\1\nbit[{len(targets)}] __qq_measured;", text, count=1)
    return text


def _as_intake_error(exc: BaseException, source: str) -> IntakeError:
    text = str(exc).strip().strip("'\"").strip()
    line = column = None
    match = _POSITION.match(text)
    if match:
        line, column = int(match[1]), int(match[2]) + 1
        text = text[match.end():]
    if not text:
        text = "the program is not valid OpenQASM"
        line, column = _antlr_position(exc) or (line, column)
    code = "undefined_gate" if "not defined" in text or "undeclared" in text else "syntax_error"
    if "not currently supported" in text or "not supported" in text:
        code = "unsupported_construct"
    where = f" (line {line}, column {column})" if line else ""
    return IntakeError(f"{text}{where}", code=code, line=line, column=column)


def _antlr_position(exc: BaseException) -> tuple[int, int] | None:
    """The OpenQASM 3 parser stops at the first syntax error with an empty message; the position is on the
    ANTLR exception further down the cause chain (the token it could not fit)."""
    seen: BaseException | None = exc
    while seen is not None:
        for candidate in (seen, *seen.args):  # ANTLR's bail-out wraps the RecognitionException in its args
            token = getattr(candidate, "offendingToken", None)
            if token is not None and getattr(token, "line", None) is not None:
                return int(token.line), int(token.column) + 1
        seen = seen.__cause__ or seen.__context__
    return None
