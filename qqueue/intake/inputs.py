"""A PUB's (or a simulate sweep's) inputs: its parameter values and observables, read once and checked against
the parsed circuit, both as arrays and as the worker will receive them. Pure."""

from __future__ import annotations

from typing import Any

import msgspec
from qiskit import QuantumCircuit

from qqueue.errors import IntakeError
from qqueue.intake import sweeps
from qqueue.intake.model import IntakeLimits, IntakeRequest


class Inputs(msgspec.Struct, kw_only=True, frozen=True):
    """A PUB's (or a simulate sweep's) inputs, read once: as arrays, and as the worker will receive them."""

    values: Any
    observables: Any
    shape: tuple[int, ...]
    sweep: sweeps.Sweep

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
    values = sweeps.read_values(request.parameter_values, parameters, limit)
    observables = None
    if request.kind == "estimate":
        observables = sweeps.read_observables(request.observables, circuit.num_qubits, limit)
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
    return Inputs(values=values, observables=observables, shape=shape, sweep=sweep)
