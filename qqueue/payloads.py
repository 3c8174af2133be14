"""The payloads of the circuit task kinds: what intake writes into a task, and what the worker slot reads back.

One struct per kind (`simulate`, `sample`, `estimate`, `transpile`, `convert`). Intake builds the struct and
stores `to_stored(payload)`; the kind function running in the slot decodes the stored object once, with
`read(kind, payload)`, into the struct of the task's kind. A field intake writes only in some cases (a sweep's
parameters, exact outputs) is `UNSET` otherwise and left out of the stored object; every other field is always
written, `None` as null, so the stored JSON, and the result-cache key hashed from it, are what they always were.

A stored payload that does not decode for its kind fails its task permanently (`InvalidPayload`): the same payload
would fail the same way on every retry. Fields a payload carries beyond its kind's are ignored. No Qiskit here.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from qqueue.errors import PermanentFailure

__all__ = ["UNSET", "CircuitPayload", "ConvertPayload", "EstimatePayload", "SamplePayload", "SimulatePayload",
           "StoredCircuit", "TranspilePayload", "UnsetType", "read", "to_stored"]


class StoredCircuit(msgspec.Struct, kw_only=True, frozen=True):
    """A circuit as stored: OpenQASM 2 text whenever the circuit can be written in it (the fastest to parse), else
    OpenQASM 3."""

    format: str
    source: str


class CircuitPayload(msgspec.Struct, kw_only=True):
    """What every circuit kind's payload carries."""

    #: The task kind whose payload this is.
    KIND: ClassVar[str] = ""

    circuit: StoredCircuit
    #: The memory intake charged the task (0 for transpile and convert): the slot's memory ceiling derives from it.
    memory_bytes: int = 0


class SimulatePayload(CircuitPayload, kw_only=True):
    """`simulate`: one circuit run for counts (or, with `outputs`, its exact final state), over a sweep of
    parameter values when `parameters` is set."""

    KIND = "simulate"

    shots: int
    method: str | None = None
    seed: int | None = None
    backend: str | None = None
    optimization_level: int | None = None
    memory: bool = False
    #: A sweep: the circuit's parameters, one row of values per set, and the sweep's shape.
    parameters: list[str] | UnsetType = UNSET
    values: list[list[float]] | UnsetType = UNSET
    shape: list[int] | UnsetType = UNSET
    #: Exact outputs ("statevector", "probabilities") of a run with shots 0.
    outputs: list[str] | UnsetType = UNSET


class PubPayload(CircuitPayload, kw_only=True):
    """What a primitive's payload carries: one PUB, or one part of one."""

    method: str | None = None
    seed: int | None = None
    #: Parameter names in the order of the last axis of `values`, an array of shape (*shape, parameters).
    parameters: list[str] = msgspec.field(default_factory=list)
    values: Any = msgspec.field(default_factory=list)
    #: The PUB's (or the part's) broadcast shape.
    shape: list[int]
    #: [start, stop): which elements of the PUB's flattened shape this task holds.
    sets: list[int] | None = None


class SamplePayload(PubPayload, kw_only=True):
    """`sample`: Aer's SamplerV2 on one PUB."""

    KIND = "sample"

    shots: int
    memory: bool = False


class EstimatePayload(PubPayload, kw_only=True):
    """`estimate`: Aer's EstimatorV2 on one PUB."""

    KIND = "estimate"

    precision: float
    #: An array of observables (Pauli term -> coefficient), broadcast against the values.
    observables: Any


class TranspilePayload(CircuitPayload, kw_only=True):
    """`transpile`: for a device backend, or for basis gates and a coupling map."""

    KIND = "transpile"

    backend: str | None = None
    basis_gates: list[str] | None = None
    coupling_map: list[list[int]] | None = None
    optimization_level: int | None = 1
    seed: int | None = None


class ConvertPayload(CircuitPayload, kw_only=True):
    """`convert`: to OpenQASM 2, OpenQASM 3 or QIR."""

    KIND = "convert"

    target: str


P = TypeVar("P", bound=CircuitPayload)


def read(kind: type[P], payload: dict[str, Any] | P) -> P:
    """The stored `payload` as the struct `kind`; a `PermanentFailure` of type `InvalidPayload` when it does not
    decode as one."""
    if isinstance(payload, kind):
        return payload
    try:
        return msgspec.convert(payload, kind)
    except msgspec.ValidationError as exc:
        raise PermanentFailure(f"the task's payload is not a valid {kind.KIND} payload: {exc}",
                               type="InvalidPayload") from None


def to_stored(payload: CircuitPayload) -> dict[str, Any]:
    """The payload as the JSON object stored with its task (fields that are `UNSET` left out)."""
    stored: dict[str, Any] = msgspec.to_builtins(payload)
    return stored
