"""The wire's shared pieces: name and tag rules, the annotated scalar types, simulation options and the
error answer every endpoint may give."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from qqueue.webhooks.targets import MAX_URL_LENGTH

#: Same rule as the CHECK on qqueue.tasks.queue and .kind. The lookahead is for Python, where "$" also matches
#: before a final newline (PostgreSQL's does not): without it "default\n" passes here and fails the INSERT.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$(?!\n)"

#: Tags: anything but NUL, which PostgreSQL text cannot hold.
TAG_PATTERN = r"^[^\x00]+$"
#: What each pattern asks for, in words: validation messages quote these instead of the regular expression,
#: whose backslashes a JSON answer would double again.
PATTERN_WORDS = {NAME_PATTERN: "1-64 characters of A-Z a-z 0-9 _ . : -", TAG_PATTERN: "no NUL character"}

QueueName = Annotated[str, Meta(pattern=NAME_PATTERN, description="Queue name: 1-64 of A-Z a-z 0-9 _ . : -")]
KindName = Annotated[str, Meta(pattern=NAME_PATTERN, description="Task kind: 1-64 of A-Z a-z 0-9 _ . : -")]
Tag = Annotated[str, Meta(min_length=1, max_length=100, pattern=TAG_PATTERN)]
UtcTime = Annotated[datetime, Meta(tz=True, description="ISO 8601 with a UTC offset")]
#: Where a task's or a job's end is POSTed (README, "Webhooks"): http(s), no credentials, and a public address
#: unless the server's allow-list names it (checked at submission, `qqueue.api.submit`).
CallbackUrl = Annotated[str, Meta(min_length=1, max_length=MAX_URL_LENGTH)]


#: Parameter values as sent: nested lists of numbers, or an object of parameter name -> nested lists. Intake
#: checks their shape, their names and that every value is a finite number.
ParameterValues = Annotated[Any, Meta(description="Nested array (last axis: the circuit's parameters in name order) "
                                                  "or an object of parameter name to nested array")]
Observables = Annotated[Any, Meta(description='Pauli-string object such as {"ZZ": 1.0, "XI": -0.5}, a Pauli '
                                              "string, or nested lists of them")]


class SimulationOptions(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """How a circuit is run. Unset fields take the simulator's defaults; intake checks the values."""

    #: Aer simulation method, e.g. "automatic", "statevector", "stabilizer", "matrix_product_state".
    method: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    #: Simulator seed, for reproducible counts.
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] | None = None
    #: A device to transpile for (e.g. a fake backend name); unset runs the circuit as written.
    backend: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    #: Transpiler optimisation level, used only with a backend.
    optimization_level: Annotated[int, Meta(ge=0, le=3)] | None = None
    #: Also return the per-shot measurement outcomes.
    memory: bool = False
    #: Add a measurement of every qubit (for circuits without measurements).
    measure_all: bool = False
    #: kind "convert": "qasm2", "qasm3" or "qir".
    target: Literal["qasm2", "qasm3", "qir"] | None = None
    #: kind "transpile" without a backend: the gate set, and optionally the coupling map, to target.
    basis_gates: Annotated[list[Annotated[str, Meta(min_length=1, max_length=32)]], Meta(max_length=64)] | None = None
    coupling_map: Annotated[list[tuple[int, int]], Meta(max_length=10_000)] | None = None


class ErrorDetail(Struct, kw_only=True, omit_defaults=True):
    """A machine-readable reason: `code`, a message and, for circuits, the 1-based source position."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    details: dict[str, Any] | None = None


class ErrorAnswer(Struct, kw_only=True, omit_defaults=True):
    """Every error answer. No answer ever carries a traceback."""

    status: Literal["error"]
    message: str
    error: ErrorDetail | None = None
    correlation_id: str | None = None
