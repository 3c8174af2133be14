"""The quantum task kinds: `simulate`, `transpile`, `convert` (the primitives are in `primitives`). Pure functions
of the payload intake prepared.

A circuit is transpiled only when a device backend is asked for: Aer runs the standard gates directly, and
transpiling a small circuit costs ~70 times its simulation. Intake stores circuits in instructions Aer runs; where
writing them out turned some back into gate definitions, the slot unrolls those once per parsed circuit.

Failures that the same payload would meet again (a circuit that cannot be parsed or run, a result too large to
keep, memory past the task's ceiling) are permanent: retrying cannot help.

Counts use Qiskit's bit order: in a key such as "01", the rightmost character is classical bit 0.
"""

from __future__ import annotations

import hashlib
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, qasm2, qasm3, transpile

from qqueue.errors import PermanentFailure
from qqueue.execution import backends, runnable
from qqueue.execution.registry import kind
from qqueue.execution.versions import library_versions
from qqueue.payloads import ConvertPayload, SimulatePayload, StoredCircuit, TranspilePayload, read

#: Most distinct outcomes a result may carry, times their width: a counts histogram past this is refused
#: rather than written (PostgreSQL's jsonb holds 255 MB, and every reader would have to load it).
MAX_RESULT_BYTES = 64 * 1024**2


def load_circuit(circuit: StoredCircuit, method: str | None = "automatic") -> QuantumCircuit:
    """Parse the circuit intake normalised (OpenQASM 2 whenever it could, the fastest to parse), with what
    `method` cannot run unrolled (None: as written, for transpile and convert).

    The same circuit is often run many times (other seeds, other shots): a slot keeps the last circuits it
    parsed. Callers must not mutate the circuit they get; simulation does not, and transpile returns a copy.
    """
    try:
        if method is None:
            return _parse(circuit.format, circuit.source)
        return _runnable(circuit.format, circuit.source, method)
    except RecursionError:
        raise PermanentFailure("the stored circuit is nested too deeply to parse", type="InvalidCircuit") from None
    except Exception as exc:  # a payload that does not parse will never parse
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise PermanentFailure(f"the stored circuit cannot be run: {message}", type="InvalidCircuit") from None


@lru_cache(maxsize=64)
def _parse(fmt: str, text: str) -> QuantumCircuit:
    if fmt == "qasm2":
        return qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    return qasm3.loads(text)


@lru_cache(maxsize=64)
def _runnable(fmt: str, text: str, method: str) -> QuantumCircuit:
    return runnable.make_runnable(_parse(fmt, text), method)


@contextmanager
def simulation_errors(memory_bytes: int) -> Iterator[None]:
    """Aer's failures as the permanent failures they are: the same payload would meet them again."""
    try:
        yield
    except MemoryError:
        raise PermanentFailure(f"the simulation needed more than its memory ceiling of "
                               f"{memory_ceiling_bytes(memory_bytes) // 2**20} MiB",
                               type="MemoryLimitExceeded") from None
    except PermanentFailure:
        raise
    except Exception as exc:  # Aer reports impossible runs (memory, unsupported instructions) as exceptions
        raise PermanentFailure(f"the simulator could not run the circuit: {exc}", type="SimulationError") from None


def simulator_memory_mb(memory_bytes: int) -> int | None:
    """Aer's own memory limit for a task intake charged `memory_bytes`, so that its automatic method choice and
    its memory check agree with what intake charged; None when intake charged nothing."""
    if not memory_bytes:
        return None
    return max(1, memory_ceiling_bytes(memory_bytes) // 2**20)


@kind("simulate")
def simulate(payload: dict[str, Any]) -> dict[str, Any]:
    """Run a circuit on Aer; counts, shots, method used, seed used (drawn when none was given, so every run can
    be repeated), backend, timings and library versions. With parameter values, one run per set (counts become
    a list, in the sweep's row-major order); with outputs, the exact statevector or probabilities."""
    started = time.perf_counter()
    task = read(SimulatePayload, payload)
    method = task.method or "automatic"
    backend = task.backend
    circuit = load_circuit(task.circuit, "automatic" if backend or method == "stabilizer" else method)
    parsed = time.perf_counter()
    seed = task.seed
    if seed is None:
        seed = random.randrange(2**31)
    transpile_s = 0.0
    if backend:
        simulator = backends.noisy_simulator(backend, method)
        circuit = transpile(circuit, backend=backends.device(backend),
                            optimization_level=task.optimization_level or 1, seed_transpiler=seed)
        transpile_s = time.perf_counter() - parsed
    else:
        simulator = backends.ideal_simulator(method)
    outputs = task.outputs or None
    if outputs:
        circuit = circuit.copy()
        if "statevector" in outputs:
            circuit.save_statevector()
        if "probabilities" in outputs:
            circuit.save_probabilities()
    extra: dict[str, Any] = {}
    if (limit := simulator_memory_mb(task.memory_bytes)) is not None:
        extra["max_memory_mb"] = limit
    if task.parameters:
        extra["parameter_binds"] = [_binds(circuit, task.parameters, task.values or [])]
    # A sweep of shape [] (one set of values) answers like a circuit without parameters: one result, not a list.
    shape = task.shape or None
    ran, ran_cpu = time.perf_counter(), time.process_time()
    with simulation_errors(task.memory_bytes):
        result = simulator.run(circuit, shots=task.shots or 1, seed_simulator=seed, memory=task.memory,
                               **extra).result()
    finished, finished_cpu = time.perf_counter(), time.process_time()
    if not result.success:
        raise PermanentFailure(f"the simulation failed: {result.status}", type="SimulationError")
    runs = range(len(result.results))
    out: dict[str, Any] = {"shots": task.shots, "success": True,
                           "method": result.results[0].metadata.get("method", method), "seed": seed,
                           "backend": backend}
    if outputs:
        out.update(_exact(result, outputs, circuit.num_qubits, shape is not None))
    else:
        counts = [result.get_counts(i) for i in runs]
        _check_result_size(counts)
        out["counts"] = counts if shape is not None else counts[0]
        if task.memory:
            memory = [result.get_memory(i) for i in runs]
            out["memory"] = memory if shape is not None else memory[0]
    if shape is not None:
        out["shape"] = shape
    out["timings"] = {"parse_s": parsed - started, "transpile_s": transpile_s, "simulate_s": finished - ran,
                     # CPU beside wall time: on a busy machine the two differ, and benchmarks count CPU.
                     "simulate_cpu_s": finished_cpu - ran_cpu}
    out["versions"] = library_versions()
    return out


def _binds(circuit: QuantumCircuit, parameters: list[str], values: list[list[float]]) -> dict[Any, list[float]]:
    """Aer's parameter_binds for a sweep: each of the circuit's parameters, by name, to its values."""
    by_name = {p.name: p for p in circuit.parameters}
    return {by_name[name]: [row[i] for row in values] for i, name in enumerate(parameters)}


def _exact(result: Any, outputs: list[str], qubits: int, sweep: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in outputs:
        per_run: list[Any] = []
        for i in range(len(result.results)):
            data = result.data(i)
            if name == "statevector":
                vector = np.asarray(data["statevector"])
                per_run.append([[float(a.real), float(a.imag)] for a in vector])
            else:
                # Rounding leaves ~1e-33 where the probability is 0: such outcomes are left out.
                per_run.append({format(k, f"0{qubits}b"): float(p)
                                for k, p in enumerate(np.asarray(data["probabilities"])) if p > PROBABILITY_FLOOR})
        out[name] = per_run if sweep else per_run[0]
    return out


#: Probabilities below this are rounding, not outcomes.
PROBABILITY_FLOOR = 1e-15


def _check_result_size(counts: list[dict[str, int]]) -> None:
    outcomes = sum(len(c) for c in counts)
    width = len(next(iter(counts[0]), "")) if counts else 0
    if outcomes * (width + 12) > MAX_RESULT_BYTES:
        raise PermanentFailure(f"the result holds {outcomes} distinct outcomes of {width} characters, more than "
                               f"{MAX_RESULT_BYTES // 2**20} MiB; measure fewer bits or run fewer shots",
                               type="ResultTooLarge")


@kind("transpile")
def transpile_circuit(payload: dict[str, Any]) -> dict[str, Any]:
    """Transpile for a device, or for basis gates and a coupling map, at the asked optimisation level; returns
    OpenQASM 3 text and the circuit's shape before and after."""
    task = read(TranspilePayload, payload)
    circuit = load_circuit(task.circuit, None)
    level = task.optimization_level
    target: dict[str, Any]
    try:
        if task.backend:
            target = {"backend": backends.device(task.backend)}
        else:
            target = {"basis_gates": task.basis_gates, "coupling_map": task.coupling_map}
        out = transpile(circuit, optimization_level=level, seed_transpiler=task.seed, **target)
    except Exception as exc:  # the transpiler explains what it could not map
        raise PermanentFailure(f"the circuit cannot be transpiled for that target: {exc}",
                               type="TranspileError") from None
    return {"qasm3": qasm3.dumps(out), "optimization_level": level, "backend": task.backend,
            "before": _shape(circuit), "after": _shape(out), "versions": library_versions()}


@kind("convert")
def convert(payload: dict[str, Any]) -> dict[str, Any]:
    """OpenQASM 2 ↔ 3, and OpenQASM 3 → QIR (LLVM text, through qbraid-qir)."""
    task = read(ConvertPayload, payload)
    circuit = load_circuit(task.circuit, None)
    target = task.target
    try:
        if target == "qasm2":
            return {"target": target, "source": qasm2.dumps(circuit)}
        if target == "qasm3":
            return {"target": target, "source": qasm3.dumps(circuit)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from qbraid_qir.qasm3 import qasm3_to_qir

            text = qasm3.dumps(circuit)
            # Named by content: qbraid-qir's default module id is a uuid1, which carries the host's MAC address
            # and the time, so the same circuit would convert differently on every run.
            module = qasm3_to_qir(text, name="qqueue_" + hashlib.sha256(text.encode()).hexdigest()[:16])
        return {"target": target, "source": str(module)}
    except Exception as exc:  # e.g. OpenQASM 3 control flow has no OpenQASM 2 form
        raise PermanentFailure(f"the circuit cannot be converted to {target}: {exc}", type="ConvertError") from None


#: Memory a slot may use beyond its task's charge: the interpreter, Qiskit, Aer and their buffers.
MEMORY_HEADROOM_BYTES = 2 * 1024**3


def memory_ceiling_bytes(memory_bytes: int) -> int:
    """Memory a simulation may take beyond what the slot process held before it: what intake charged it
    (`memory_bytes`), with a quarter more for Aer's own buffers, plus a fixed headroom."""
    return memory_bytes * 5 // 4 + MEMORY_HEADROOM_BYTES


def _shape(circuit: QuantumCircuit) -> dict[str, Any]:
    return {"depth": circuit.depth(), "size": circuit.size(), "gate_counts": dict(circuit.count_ops())}
