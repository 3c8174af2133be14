"""The quantum task kinds: `simulate`, `transpile`, `convert`. Pure functions of the payload intake prepared.

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
from functools import lru_cache
from typing import Any

from qiskit import QuantumCircuit, qasm2, qasm3, transpile

from qqueue.errors import PermanentFailure
from qqueue.execution import backends, runnable
from qqueue.execution.registry import kind
from qqueue.execution.versions import library_versions

#: Most distinct outcomes a result may carry, times their width: a counts histogram past this is refused
#: rather than written (PostgreSQL's jsonb holds 255 MB, and every reader would have to load it).
MAX_RESULT_BYTES = 64 * 1024**2


def load_circuit(circuit: dict[str, str], method: str | None = "automatic") -> QuantumCircuit:
    """Parse the circuit intake normalised (OpenQASM 2 whenever it could, the fastest to parse), with what
    `method` cannot run unrolled (None: as written, for transpile and convert).

    The same circuit is often run many times (other seeds, other shots): a slot keeps the last circuits it
    parsed. Callers must not mutate the circuit they get; simulation does not, and transpile returns a copy.
    """
    try:
        if method is None:
            return _parse(circuit["format"], circuit["source"])
        return _runnable(circuit["format"], circuit["source"], method)
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


@kind("simulate")
def simulate(payload: dict[str, Any]) -> dict[str, Any]:
    """Run a circuit on Aer; counts, shots, method used, seed used (drawn when none was given, so every run can
    be repeated), backend, timings and library versions."""
    started = time.perf_counter()
    method = payload.get("method") or "automatic"
    backend = payload.get("backend")
    circuit = load_circuit(payload["circuit"], "automatic" if backend or method == "stabilizer" else method)
    parsed = time.perf_counter()
    seed = payload.get("seed")
    if seed is None:
        seed = random.randrange(2**31)
    transpile_s = 0.0
    if backend:
        simulator = backends.noisy_simulator(backend, method)
        circuit = transpile(circuit, backend=backends.device(backend),
                            optimization_level=payload.get("optimization_level") or 1, seed_transpiler=seed)
        transpile_s = time.perf_counter() - parsed
    else:
        simulator = backends.ideal_simulator(method)
    ran = time.perf_counter()
    extra = {}
    if payload.get("memory_bytes"):
        # Aer's automatic method choice and its own memory check then agree with what intake charged.
        extra["max_memory_mb"] = max(1, memory_ceiling_bytes(payload) // 2**20)
    try:
        result = simulator.run(circuit, shots=payload["shots"], seed_simulator=seed,
                               memory=bool(payload.get("memory")), **extra).result()
    except MemoryError:
        raise PermanentFailure(f"the simulation needed more than its memory ceiling of "
                               f"{memory_ceiling_bytes(payload) // 2**20} MiB", type="MemoryLimitExceeded") from None
    except Exception as exc:  # Aer reports impossible runs (memory, unsupported instructions) as exceptions
        raise PermanentFailure(f"the simulator could not run the circuit: {exc}", type="SimulationError") from None
    finished = time.perf_counter()
    if not result.success:
        raise PermanentFailure(f"the simulation failed: {result.status}", type="SimulationError")
    experiment = result.results[0]
    counts = result.get_counts(0)
    width = len(next(iter(counts), ""))
    if len(counts) * (width + 12) > MAX_RESULT_BYTES:
        raise PermanentFailure(f"the result holds {len(counts)} distinct outcomes of {width} characters, more than "
                               f"{MAX_RESULT_BYTES // 2**20} MiB; measure fewer bits or run fewer shots",
                               type="ResultTooLarge")
    out: dict[str, Any] = {
        "counts": counts,
        "shots": payload["shots"],
        "success": True,
        "method": experiment.metadata.get("method", method),
        "seed": seed,
        "backend": backend,
        "timings": {"parse_s": parsed - started, "transpile_s": transpile_s, "simulate_s": finished - ran},
        "versions": library_versions(),
    }
    if payload.get("memory"):
        out["memory"] = result.get_memory(0)
    return out


@kind("transpile")
def transpile_circuit(payload: dict[str, Any]) -> dict[str, Any]:
    """Transpile for a device, or for basis gates and a coupling map, at the asked optimisation level; returns
    OpenQASM 3 text and the circuit's shape before and after."""
    circuit = load_circuit(payload["circuit"], None)
    level = payload.get("optimization_level", 1)
    target: dict[str, Any]
    try:
        if payload.get("backend"):
            target = {"backend": backends.device(payload["backend"])}
        else:
            target = {"basis_gates": payload["basis_gates"], "coupling_map": payload.get("coupling_map")}
        out = transpile(circuit, optimization_level=level, seed_transpiler=payload.get("seed"), **target)
    except Exception as exc:  # the transpiler explains what it could not map
        raise PermanentFailure(f"the circuit cannot be transpiled for that target: {exc}",
                               type="TranspileError") from None
    return {"qasm3": qasm3.dumps(out), "optimization_level": level, "backend": payload.get("backend"),
            "before": _shape(circuit), "after": _shape(out), "versions": library_versions()}


@kind("convert")
def convert(payload: dict[str, Any]) -> dict[str, Any]:
    """OpenQASM 2 ↔ 3, and OpenQASM 3 → QIR (LLVM text, through qbraid-qir)."""
    circuit = load_circuit(payload["circuit"], None)
    target = payload["target"]
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


def memory_ceiling_bytes(payload: dict[str, Any]) -> int:
    """Memory a simulation may take beyond what the slot process held before it: what intake charged, with a
    quarter more for Aer's own buffers, plus a fixed headroom."""
    return int(payload.get("memory_bytes") or 0) * 5 // 4 + MEMORY_HEADROOM_BYTES


def _shape(circuit: QuantumCircuit) -> dict[str, Any]:
    return {"depth": circuit.depth(), "size": circuit.size(), "gate_counts": dict(circuit.count_ops())}
