"""The primitive kinds, `sample` and `estimate`: one PUB (or one part of a PUB) per task, run by Aer's own V2
primitives, so binding, broadcasting and results follow Qiskit's semantics exactly.

The payload carries the circuit (parameters as OpenQASM 3 inputs), the parameter names in the order of the
value array's last axis, the values, and for estimate the observables; intake checked all of it. Results are
JSON: arrays flat in row-major order of `shape` (see `qqueue.api.schemas.PubResult`).
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from qqueue.execution import backends
from qqueue.execution.quantum import load_circuit, simulation_errors, simulator_memory_mb
from qqueue.execution.registry import kind
from qqueue.execution.versions import library_versions
from qqueue.payloads import EstimatePayload, PubPayload, SamplePayload, read

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.primitives.containers.bindings_array import BindingsArray
    from qiskit_aer import AerSimulator

# Aer's primitives are imported by the first task that needs them, not when a slot starts: every worker's
# forkserver imports the kind modules, and a worker's slots should be up before its first claim.


def bindings(payload: PubPayload) -> BindingsArray:
    """The payload's parameter values as Qiskit binds them: by name, whatever order the parsed circuit has."""
    from qiskit.primitives.containers.bindings_array import BindingsArray

    names = payload.parameters
    values = np.asarray(payload.values, dtype=float)
    if not names:
        return BindingsArray(shape=values.shape[:-1] if values.ndim > 1 else ())
    return BindingsArray(data={tuple(names): values})


def _prepared(payload: PubPayload) -> tuple[QuantumCircuit, AerSimulator, dict[str, Any], int, float]:
    """The circuit, the simulator, its run options (the task's memory ceiling, the seed), the seed, parse time."""
    started = time.perf_counter()
    method = payload.method or "automatic"
    circuit = load_circuit(payload.circuit, method)
    seed = payload.seed
    if seed is None:
        seed = random.randrange(2**31)
    run_options: dict[str, Any] = {"seed_simulator": seed}
    if (limit := simulator_memory_mb(payload.memory_bytes)) is not None:
        run_options["max_memory_mb"] = limit
    return circuit, backends.ideal_simulator(method), run_options, seed, time.perf_counter() - started


def _metadata(result_metadata: dict[str, Any], payload: PubPayload) -> dict[str, Any]:
    simulator = result_metadata.get("simulator_metadata") or {}
    out = {k: v for k, v in result_metadata.items() if k != "simulator_metadata"}
    out["simulator_metadata"] = {k: simulator[k] for k in ("time_taken", "omp_enabled", "parallel_experiments")
                                 if k in simulator}
    out["sets"] = payload.sets
    return out


@kind("sample")
def sample(payload: dict[str, Any]) -> dict[str, Any]:
    """Aer's SamplerV2 on one PUB: per classical register, counts for every parameter set (and bitstrings
    with option memory), flat in row-major order of the PUB's shape."""
    from qiskit_aer.primitives import SamplerV2

    task = read(SamplePayload, payload)
    circuit, simulator, run_options, seed, parse_s = _prepared(task)
    sampler = SamplerV2.from_backend(simulator, seed=seed, options={"run_options": run_options})
    started = time.perf_counter()
    with simulation_errors(task.memory_bytes):
        pub = sampler.run(
            [(circuit, bindings(task), task.shots)]).result()[0]
    ran = time.perf_counter()
    size = int(np.prod(task.shape, dtype=np.int64))
    data: dict[str, Any] = {}
    for name, bits in pub.data.items():
        flat = bits.reshape(size)
        register: dict[str, Any] = {"num_bits": bits.num_bits,
                                    "counts": [flat.get_counts(i) for i in range(size)]}
        if task.memory:
            register["samples"] = [flat.get_bitstrings(i) for i in range(size)]
        data[name] = register
    return {"shape": task.shape, "data": data, "metadata": _metadata(dict(pub.metadata), task),
            "seed": seed, "timings": {"parse_s": parse_s, "simulate_s": ran - started,
                                      "convert_s": time.perf_counter() - ran},
            "versions": library_versions()}


@kind("estimate")
def estimate(payload: dict[str, Any]) -> dict[str, Any]:
    """Aer's EstimatorV2 on one PUB: expectation values and their standard deviations, flat in row-major order
    of the PUB's broadcast shape. Precision 0 is exact; otherwise, as Aer does, the exact value plus normal
    noise of that standard deviation."""
    from qiskit_aer.primitives import EstimatorV2

    task = read(EstimatePayload, payload)
    circuit, simulator, run_options, seed, parse_s = _prepared(task)
    estimator = EstimatorV2.from_backend(simulator, options={"run_options": run_options})
    started = time.perf_counter()
    with simulation_errors(task.memory_bytes):
        pub = estimator.run([(circuit, task.observables, bindings(task), task.precision)]).result()[0]
    evs = np.asarray(pub.data.evs, dtype=float)
    return {"shape": list(evs.shape), "data": {"evs": evs.ravel().tolist(),
                                                "stds": np.asarray(pub.data.stds, dtype=float).ravel().tolist()},
            "metadata": _metadata(dict(pub.metadata), task), "seed": seed,
            "timings": {"parse_s": parse_s, "simulate_s": time.perf_counter() - started},
            "versions": library_versions()}
