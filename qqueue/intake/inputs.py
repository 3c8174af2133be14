"""A PUB's (or a simulate sweep's) inputs: its parameter values and observables, read once and checked against
the parsed circuit, both as arrays and as the worker will receive them. Pure."""

from __future__ import annotations

from typing import Any

import msgspec
from qiskit import QuantumCircuit

from qqueue.errors import IntakeError
from qqueue.intake import sweeps
from qqueue.intake.model import CANONICAL, EchoedInputs, IntakeLimits, IntakeRequest


class Inputs(msgspec.Struct, kw_only=True, frozen=True):
    """A PUB's (or a simulate sweep's) inputs, read once: as arrays, and as the worker will receive them."""

    values: Any
    observables: Any
    shape: tuple[int, ...]
    sweep: sweeps.Sweep
    #: With `IntakeRequest.echo_inputs`: parameter_values and observables as read, written as the API's request
    #: hash writes them, so that an Idempotency-Key stored when the API decoded them itself still matches.
    echoed: EchoedInputs | None = None

    @property
    def parameter_sets(self) -> int:
        """Parameter sets the values hold (the PUB's shape may be larger, broadcast against observables)."""
        return sweeps.sets(list(self.values.shape[:-1]))


def bounds(limits: IntakeLimits) -> sweeps.SweepLimits:
    return sweeps.SweepLimits(max_sets=limits.max_parameter_sets, max_values=limits.max_parameter_values,
                              max_terms=limits.max_observable_terms)


def read(request: IntakeRequest, circuit: QuantumCircuit, limits: IntakeLimits) -> Inputs:
    """The PUB's (or a simulate sweep's) inputs, checked against the circuit."""
    limit = bounds(limits)
    parameters = [p.name for p in circuit.parameters]
    given_values = decoded(request.parameter_values, "parameter_values", limits.max_parameter_values,
                           too_many="too_many_parameter_sets", invalid="invalid_parameters")
    given_observables = decoded(request.observables, "observables", limits.max_observable_terms,
                                too_many="too_many_observables", invalid="invalid_observables")
    values = sweeps.read_values(given_values, parameters, limit)
    observables = None
    if request.kind == "estimate":
        observables = sweeps.read_observables(given_observables, circuit.num_qubits, limit)
    shape = sweeps.broadcast(values, observables, limit)
    if request.kind == "simulate":
        if not parameters and shape:
            raise IntakeError("parameter_values were given, but the circuit has no parameters",
                              code="extra_parameters")
        # One task runs every set in order: stored flat, with the sweep's shape beside it.
        n = sweeps.sets(list(shape))
        flat = values.reshape(n, len(parameters)) if parameters else values.reshape(n, 0)
        sweep = sweeps.Sweep(parameters=parameters, values=flat.tolist(), shape=list(shape))
    else:
        sweep = sweeps.whole(parameters, values, observables, shape)
    echoed = None
    if request.echo_inputs:
        echoed = EchoedInputs(_echo(given_values), _echo(given_observables))
    return Inputs(values=values, observables=observables, shape=shape, sweep=sweep, echoed=echoed)


def _echo(given: Any) -> bytes | None:
    return None if given is None else CANONICAL.encode(given)


def decoded(given: Any, field: str, field_limit: int, *, too_many: str, invalid: str) -> Any:
    """A field the API kept as JSON text (`msgspec.Raw`), decoded here, in the parser process; anything else
    as it is.

    Arrays and objects are what costs to decode (a few bytes of text each, some fifty of memory), so their
    number is bounded first, by one count of the text: the innermost arrays of valid parameter values each hold
    a number, those of observables a term (an object holds terms), and they nest at most `sweeps.MAX_DEPTH`
    deep, so twice the field's own limit (`field_limit`) is far more than valid inputs ever hold. `too_many` and
    `invalid` are the codes of the two refusals."""
    if not isinstance(given, msgspec.Raw):
        return given
    text = bytes(given)
    containers, limit = text.count(b"[") + text.count(b"{"), 2 * field_limit
    if containers > limit:
        raise IntakeError(f"{field} holds {containers} arrays and objects; the limit is {limit}", code=too_many,
                          details={"containers": containers, "limit": limit})
    try:
        return msgspec.json.decode(text)
    except RecursionError:
        raise IntakeError(f"{field} is nested more than {sweeps.MAX_DEPTH} levels deep", code=invalid) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise IntakeError(f"{field} cannot be read: {exc}", code=invalid) from None
