"""OpenQASM source → QuantumCircuit, with every failure turned into an `IntakeError` a person can act on.

Checks that need no parser come first (size, encoding, includes, nesting), so hostile input is refused cheaply and
never reaches a recursive parser; `qqueue.intake.prescan` then bounds what the program expands to. OpenQASM 2 goes
to `qiskit.qasm2` (fast, Rust). OpenQASM 3 goes to `qiskit.qasm3`; where that importer refuses valid programs
(loops, subroutines, `measure q;` without a target, gates without `include "stdgates.inc"`), pyqasm unrolls the
program first and the result is imported.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from qiskit import QuantumCircuit, qasm2, qasm3

from qqueue.errors import IntakeError
from qqueue.intake.model import IntakeLimits, check_size
from qqueue.intake.prescan import blank_comments, unclosed_comment

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
_POSITION = re.compile(r"^(?:<input>:)?(\d+),(\d+):\s*")
#: Where pyqasm says an error is: it logs the position rather than putting it in the exception.
_PYQASM_POSITION = re.compile(r"Error at line (\d+), column (\d+)")
#: Messages of the OpenQASM 3 importer that mean "valid, but not mine to import": pyqasm's verdict is the real one.
_IMPORTER_REFUSALS = ("not supported", "not currently supported", "index must be int")
_MEASURE_NO_TARGET = re.compile(r"^(\s*)measure\s+([A-Za-z_]\w*(?:\[\d+\])?)\s*;\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ParsedSource:
    """A parsed circuit and the OpenQASM major version it was written in."""

    circuit: QuantumCircuit
    version: int


def decode(source: str | bytes, limits: IntakeLimits) -> str:
    """The source as text; refuses non-UTF-8 bytes, NUL characters and oversized programs."""
    check_size(source, limits)
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
    """2 or 3, from the `OPENQASM x.y;` header (which must come first, comments aside). The header is optional
    in OpenQASM 3 (a program without one is OpenQASM 3) and required in OpenQASM 2."""
    match = _VERSION.match(blank_comments(source))
    if not match:
        if re.match(r"\s*OPENQASM\b", blank_comments(source)):
            raise IntakeError('the OpenQASM header must read like "OPENQASM 3.0;"', code="no_header",
                              line=1, column=1)
        return 3
    major = int(match[1])
    if major not in (2, 3):
        raise IntakeError(f"OpenQASM {major} is not supported; use OpenQASM 2 or 3", code="unsupported_version",
                          line=1, column=1)
    return major


def has_header(source: str) -> bool:
    """Whether the program starts with its `OPENQASM x.y;` line."""
    return bool(_VERSION.match(blank_comments(source)))


def check_static(source: str) -> None:
    """Refuse, before any parser runs, what must never be parsed: file includes, pathological nesting, and a
    block comment never closed (whose every `/*` the parsers' lexers would rescan to the end)."""
    unclosed = unclosed_comment(source)
    if unclosed is not None:
        line = source.count("\n", 0, unclosed) + 1
        column = unclosed - (source.rfind("\n", 0, unclosed) + 1) + 1
        raise IntakeError(f"a block comment opened here is never closed with */ (line {line}, column {column})",
                          code="syntax_error", line=line, column=column)
    code = blank_comments(source)
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


def parse(source: str, version: int) -> ParsedSource:
    """Parse checked source; every failure is an `IntakeError` with line and column where known."""
    try:
        if version == 2:
            return ParsedSource(qasm2.loads(source, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS), 2)
        fast = _native_import(source)
        if fast is not None:
            return ParsedSource(fast, 3)
        try:
            return ParsedSource(qasm3.loads(source), 3)
        except (qasm3.QASM3ImporterError, TypeError, NotImplementedError, ValueError, IndexError) as exc:
            # The importer refuses some valid programs; unrolled by pyqasm, they import. When the importer only
            # said "not supported", pyqasm's verdict on a program it cannot unroll either is the precise one
            # (a wrong register width, not "SubroutineDefinition is not supported"); otherwise the importer's.
            try:
                return ParsedSource(qasm3.loads(_unroll(source)), 3)
            except IntakeError as unrolled:
                if _importer_refusal(exc):
                    raise unrolled from None
                raise exc  # noqa: B904 - its own cause chain carries the parser's position
            except MemoryError:
                raise
            except Exception:
                raise exc  # noqa: B904
    except RecursionError:
        raise IntakeError("the program is nested too deeply to parse", code="nesting_too_deep") from None
    except IntakeError:
        raise
    except Exception as exc:  # parser errors come in many types; all become one clear error
        if _ran_out_of_memory(exc):
            # Not the program's syntax: the parser process's memory ceiling, which intake reports as such.
            raise MemoryError from exc
        raise _as_intake_error(exc, source) from None


def _ran_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is, or was raised while handling, a MemoryError: parsers' error recovery can turn one into
    an error of their own (or an empty one that would read as a syntax error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MemoryError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _native_import(source: str) -> QuantumCircuit | None:
    """Qiskit's native (Rust) OpenQASM 3 importer, ~50x faster than the ANTLR-based one (15,000 statements:
    0.3 s against 18 s), for the programs it handles: standard gates, registers, measurements. None for
    anything else (user-defined gates, loops, inputs…), which the full importer then reads. It prints its
    diagnostics straight to the process's stderr, so they are sent to /dev/null: the full importer's are the
    ones reported."""
    with warnings.catch_warnings(), _silenced_stderr():
        warnings.simplefilter("ignore")
        try:
            return qasm3.loads_experimental(source)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - not a program it reads; on some it panics (pyo3 PanicException)
            return None


@contextmanager
def _silenced_stderr() -> Iterator[None]:
    """Standard output and error sent to /dev/null (file descriptors 1 and 2: native code writes there)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _importer_refusal(exc: BaseException) -> bool:
    return isinstance(exc, (TypeError, NotImplementedError)) or any(t in str(exc) for t in _IMPORTER_REFUSALS)


def _unroll(source: str) -> str:
    """pyqasm's unrolled form of the program, made importable by qiskit: standard gates included, and any
    `measure q;` given bits to write to (Qiskit measurements must have a target). Its failures are an
    `IntakeError` at the position pyqasm reports."""
    import pyqasm

    prefix = "" if has_header(source) else "OPENQASM 3.0;"  # pyqasm needs the header the language does not
    with warnings.catch_warnings(), _pyqasm_positions() as positions:
        warnings.simplefilter("ignore")
        try:
            module = pyqasm.loads(prefix + source)
            module.unroll()
            text: str = pyqasm.dumps(module)
        except (RecursionError, MemoryError):
            raise
        except Exception as exc:  # pyqasm's errors: ValidationError and whatever its parser raises
            if _ran_out_of_memory(exc):
                raise MemoryError from exc
            message = str(exc).strip().split("\n\nUsage:")[0].strip() or "the program is not valid OpenQASM"
            line, column = positions[-1] if positions else (None, None)
            if line == 1 and column is not None:
                column = max(1, column - len(prefix))
            where = f" (line {line}, column {column})" if line else ""
            code = "undefined_gate" if "undeclared" in message else "invalid_source"
            raise IntakeError(f"{message}{where}", code=code, line=line, column=column) from None
    if not _INCLUDE.search(text):
        text = _VERSION.sub(lambda m: m[0] + '\ninclude "stdgates.inc";', text, count=1)
    targets = _MEASURE_NO_TARGET.findall(text)
    if targets:
        counter = iter(range(len(targets)))
        text = _MEASURE_NO_TARGET.sub(lambda m: f"{m[1]}__qq_measured[{next(counter)}] = measure {m[2]};", text)
        text = re.sub(r'(include\s+"stdgates\.inc"\s*;)', rf"\1\nbit[{len(targets)}] __qq_measured;", text, count=1)
    return text


class _PositionHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.positions: list[tuple[int, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = _PYQASM_POSITION.search(record.getMessage())
        if match:
            self.positions.append((int(match[1]), int(match[2]) + 1))


@contextmanager
def _pyqasm_positions() -> Iterator[list[tuple[int, int]]]:
    """Collect the positions pyqasm logs with its errors, keep its log lines out of ours, and undo the
    `sys.tracebacklimit = 0` it sets on every error (which would hide every later traceback in this process)."""
    logger = logging.getLogger("pyqasm")
    handler = _PositionHandler()
    saved = logger.handlers[:], logger.propagate, getattr(sys, "tracebacklimit", None)
    logger.handlers = [handler]
    logger.propagate = False
    try:
        yield handler.positions
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        if saved[2] is None:
            if hasattr(sys, "tracebacklimit"):
                del sys.tracebacklimit
        else:
            sys.tracebacklimit = saved[2]


def _as_intake_error(exc: BaseException, source: str) -> IntakeError:
    text = str(exc).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()  # the message as repr() quoted it, not a quote that belongs to it
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
    hint = ""
    if text.startswith("unhandled binary operator"):
        # Valid OpenQASM 3 that neither importer evaluates (in a condition above all).
        code = "unsupported_construct"
        hint = "; the OpenQASM 3 importer cannot evaluate this operator here: for single bits, a != b is a ^ b"
    where = f" (line {line}, column {column})" if line else ""
    return IntakeError(f"{text}{where}{hint}", code=code, line=line, column=column)


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
