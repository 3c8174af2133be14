"""Intake's data: what a submission may ask for, what is asked, and what intake hands to the queue.

No Qiskit here: the API imports this without loading any parser; the parsing happens in bounded processes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from qqueue.errors import IntakeError

#: Shots one circuit task may run; the HTTP schema advertises the same bound.
MAX_SHOTS = 100_000
#: The primitives: a PUB (circuit, parameter values, shots or observables and precision) per task.
PRIMITIVE_KINDS = ("sample", "estimate")
CIRCUIT_KINDS = ("simulate", "transpile", "convert", *PRIMITIVE_KINDS)
#: Exact outputs of a simulation with shots 0.
EXACT_OUTPUTS = ("statevector", "probabilities")


#: How a request's hash writes what it hashes, and how intake writes inputs back for it
#: (`IntakeRequest.echo_inputs`): one encoder, so that the two cannot come to differ.
CANONICAL = msgspec.json.Encoder(order="sorted")


class EchoedInputs(NamedTuple):
    """A PUB's inputs as intake read them, as canonical JSON (`CANONICAL`); None for one not given."""

    parameter_values: bytes | None
    observables: bytes | None


class IntakeLimits(msgspec.Struct, kw_only=True, frozen=True):
    """What a single submission may ask for."""

    max_source_bytes: int = 256 * 1024
    max_shots: int = MAX_SHOTS
    #: Operations after every gate definition, loop and register broadcast is expanded.
    max_operations: int = 100_000
    #: Declared qubits (every register together), and declared classical bits.
    max_qubits: int = 1_000
    max_clbits: int = 10_000
    #: Memory one simulation may need (default 4 GiB).
    max_memory_bytes: int = 4 * 1024**3
    #: Parameter sets of one PUB or sweep (estimate: elements of its broadcast shape), numbers in its
    #: parameter values, and Pauli terms over its observables.
    max_parameter_sets: int = 100_000
    max_parameter_values: int = 1_000_000
    max_observable_terms: int = 100_000
    #: Per-shot memory is returned for at most this many shots...
    max_memory_shots: int = 10_000
    #: ...and per-shot memory may be at most this large.
    max_result_bytes: int = 64 * 1024**2


class IntakeRequest(msgspec.Struct, kw_only=True, frozen=True):
    """One submission as intake receives it. `shots` and `options` are checked by intake, not by their types,
    so that every mistake gets intake's own message."""

    qc: str | bytes
    kind: str = "simulate"
    shots: Any = 1024
    options: dict[str, Any] | None = None
    limits: IntakeLimits = msgspec.field(default_factory=IntakeLimits)
    #: The run's time limit: a simulation estimated to take longer is refused. None: not checked.
    timeout_s: float | None = None
    #: simulate, sample, estimate: the circuit's parameter values (see `qqueue.intake.sweeps`). This and
    #: `observables` may be JSON text (`msgspec.Raw`), as the API receives them; they are decoded in the parser.
    parameter_values: Any = None
    #: estimate: observables, and the target precision (None: exact).
    observables: Any = None
    precision: Any = None
    #: simulate: what to return ("counts", or with shots 0 "statevector" / "probabilities").
    outputs: list[str] | None = None
    #: sample, estimate: parameter sets per task; a PUB with more is split into parts. None: never split.
    chunk_size: int | None = None
    #: Hand back parameter_values and observables as read (`PreparedTask.inputs_json`), for the request's hash.
    echo_inputs: bool = False


class PreparedTask(msgspec.Struct, kw_only=True, frozen=True):
    """What intake hands to the queue: the worker's payload, the circuit's profile, and the result-cache key
    (None unless the task is seeded and simulated)."""

    payload: dict[str, Any]
    profile: dict[str, Any]
    cache_key: str | None
    #: A PUB split over several tasks: each part (its payload's "sets" say which elements of the PUB it holds),
    #: in order. None: the PUB is one task, this one.
    parts: list[PreparedTask] | None = None
    #: sample, estimate: the PUB's broadcast shape.
    shape: list[int] | None = None
    #: With `IntakeRequest.echo_inputs`: the parameter_values and observables read, or None when the kind reads
    #: neither.
    inputs_json: EchoedInputs | None = None


def check_size(qc: str | bytes, limits: IntakeLimits) -> None:
    """Refuse a source over the size limit, before anything reads it further (or sends it anywhere)."""
    size = len(qc.encode() if isinstance(qc, str) else qc)
    if size > limits.max_source_bytes:
        raise IntakeError(f"the circuit source is {size} bytes; the limit is {limits.max_source_bytes}",
                          code="source_too_large", details={"size_bytes": size,
                                                            "limit_bytes": limits.max_source_bytes})
