"""The whole of intake for one submission, in the order that keeps every step bounded. Pure: no I/O.

1. Cheap checks on the text: size, encoding, header, includes, nesting.
2. The pre-scan (`prescan`): declared qubits and bits, and the operations the program expands to, each against its
   limit, before any parser allocates anything.
3. The parse, then what only a parsed circuit shows: no qubits, unbound parameters, opaque gates, a circuit wider
   than its backend or its coupling map.
4. Instructions Aer cannot run are unrolled (`runnable`), once; the method Aer will use and its memory and time
   are charged (`preflight`).
5. The payload (`stored`): the circuit in the form that parses fastest (OpenQASM 2 text whenever the circuit can
   be written in it: `qasm2.loads` is ~25x faster than the OpenQASM 3 importer), and the kind's fields, built as
   the kind's struct of `qqueue.payloads`; a PUB's inputs (`inputs`) are read once, and a large PUB is split.

This runs inside the bounded parser processes of `qqueue.intake.pool`, never on the API's event loop.
"""

from __future__ import annotations

import re

from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.circuit import ControlFlowOp

from qqueue.errors import IntakeError
from qqueue.execution import runnable
from qqueue.execution.backends import device, resolve_backend
from qqueue.intake import preflight, prescan, source, stored, sweeps
from qqueue.intake.inputs import read as read_inputs
from qqueue.intake.model import CIRCUIT_KINDS, EXACT_OUTPUTS, PRIMITIVE_KINDS, IntakeLimits, IntakeRequest, PreparedTask
from qqueue.payloads import EstimatePayload, SamplePayload, to_stored

#: An estimate's result per element of its shape: a value and its standard deviation, as JSON.
ESTIMATE_BYTES_PER_ELEMENT = 50


def run(request: IntakeRequest) -> PreparedTask:
    """Validate a submission and normalise it for the worker; raises `IntakeError` with a clear message."""
    limits = request.limits
    kind = request.kind
    if kind not in CIRCUIT_KINDS:
        raise IntakeError(f"unknown circuit kind {kind!r}; use one of {', '.join(CIRCUIT_KINDS)}",
                          code="unsupported_kind")
    opts = preflight.read_options(request.options, limits)
    _check_kind_fields(request)
    text = source.decode(request.qc, limits)
    version = source.detect_version(text)
    source.check_static(text)
    scan = prescan.scan(text, version, prescan.ScanLimits(
        max_qubits=limits.max_qubits, max_clbits=limits.max_clbits, max_operations=limits.max_operations))
    circuit = _registered(source.parse(text, version).circuit, scan)
    bindable = kind in PRIMITIVE_KINDS or (kind == "simulate" and request.parameter_values is not None)
    _check_parsed(circuit, scan, text, bindable=bindable)
    inputs = read_inputs(request, circuit, limits) if bindable else None
    sweep = inputs.sweep if inputs is not None else None
    runs = sweeps.sets(sweep.shape) if sweep is not None else 1
    outputs = _outputs(request) if kind == "simulate" else None
    shots = 0
    # An upper bound of the result's size, for what a job may ask for in all.
    result_bytes = runs * ESTIMATE_BYTES_PER_ELEMENT
    if kind in ("simulate", "sample") and outputs is None:
        shots = preflight.check_shots(request.shots, limits, memory=opts.memory)
        circuit = _measured(circuit, measure_all=opts.measure_all)
        result_bytes = preflight.check_result_size(circuit.num_clbits, shots, limits, memory=opts.memory, runs=runs)
    elif outputs is not None:
        _check_exact_method(outputs, opts.method)
        circuit, result_bytes = _exact_circuit(circuit, outputs, runs, limits)
    if opts.backend is not None:
        _check_backend_width(circuit, resolve_backend(opts.backend), scan)
    if kind == "transpile" and opts.coupling_map:
        _check_coupling_width(circuit, opts.coupling_map, scan)
    cost = preflight.Charge(method=opts.method, memory_bytes=0, estimate_s=0.0, shot_by_shot=False)
    if kind in ("simulate", *PRIMITIVE_KINDS):
        circuit, cost = _runnable(circuit, opts, max(shots, 1), limits, scan, text)
        if inputs is not None and inputs.observables is not None:
            # Aer runs each parameter set once, then takes every distinct Pauli term's expectation value; a PUB
            # split into parts gives every element of its shape a parameter set of its own, run once each.
            split = bool(request.chunk_size) and runs > (request.chunk_size or 0)
            simulated = runs if split else inputs.parameter_sets
            cost = preflight.repeated(cost, simulated)
            cost = preflight.with_observables(cost, circuit.num_qubits, sweeps.distinct_terms(inputs.sweep.observables),
                                              simulated)
        else:
            cost = preflight.repeated(cost, runs)
        if outputs is not None:
            cost = preflight.with_exact_outputs(cost, circuit.num_qubits, runs)
    else:
        _refuse_opaque(circuit, scan)
    timed = kind in ("simulate", *PRIMITIVE_KINDS)
    preflight.check_limits(circuit, cost, limits, timeout_s=request.timeout_s if timed else None)
    # What the slot's memory ceiling is derived from (memory_bytes): the charge of a simulation; for transpile and
    # convert, the ceiling's fixed headroom alone.
    built = stored.build(kind, stored.fastest_form(circuit, kind), opts, shots, request, sweep=sweep,
                         outputs=outputs, memory_bytes=cost.memory_bytes)
    parts = None
    if inputs is not None and isinstance(built, (SamplePayload, EstimatePayload)):
        parts = stored.parts(built, request, inputs, limits)
    payload = to_stored(built)
    profile = preflight.profile(circuit, opts.method, cost)
    profile["result_bytes"] = result_bytes
    if sweep is not None:
        profile["parameters"] = len(sweep.parameters)
        profile["parameter_sets"] = runs
    shape = sweep.shape if sweep is not None and kind in PRIMITIVE_KINDS else None
    return PreparedTask(payload=payload, profile=profile, cache_key=stored.cache_key(kind, payload), shape=shape,
                        inputs_json=inputs.echoed if inputs is not None else None,
                        parts=[PreparedTask(payload=part, profile=profile, cache_key=key, shape=shape)
                               for part, key in parts] if parts else None)


def _check_kind_fields(request: IntakeRequest) -> None:
    """Fields that belong to other kinds are refused, not ignored: a user who sends observables to a sampler
    has misunderstood something, and should hear it."""
    kind = request.kind
    wrong = []
    if request.observables is not None and kind != "estimate":
        wrong.append("observables (kind estimate)")
    if request.precision is not None and kind != "estimate":
        wrong.append("precision (kind estimate)")
    if request.outputs is not None and kind != "simulate":
        wrong.append("outputs (kind simulate)")
    if request.parameter_values is not None and kind not in ("simulate", *PRIMITIVE_KINDS):
        wrong.append("parameter_values (kinds simulate, sample, estimate)")
    if wrong:
        raise IntakeError(f"kind {kind!r} does not take {', '.join(wrong)}", code="invalid_request")


def _outputs(request: IntakeRequest) -> list[str] | None:
    """Exact outputs asked for (shots 0), or None for counts."""
    outputs = request.outputs
    if not outputs or outputs == ["counts"]:
        if request.shots == 0:
            raise IntakeError('shots 0 returns exact results: ask for them with outputs ["statevector"] or '
                              '["probabilities"]', code="invalid_shots")
        return None
    unknown = [o for o in outputs if o not in EXACT_OUTPUTS and o != "counts"]
    if unknown or not isinstance(outputs, list):
        raise IntakeError(f"unknown outputs {unknown}; use counts, statevector or probabilities",
                          code="invalid_request")
    if "counts" in outputs:
        raise IntakeError("counts come from shots and statevector or probabilities from shots 0: ask for one "
                          "or the other", code="invalid_request")
    if request.shots != 0:
        raise IntakeError(f"outputs {', '.join(outputs)} are exact: set shots to 0", code="invalid_shots")
    return sorted(set(outputs))


#: The exact outputs each method can save (Aer: stabilizer has no statevector, extended stabilizer neither).
_EXACT_BY_METHOD = {"stabilizer": ("probabilities",), "extended_stabilizer": ()}


def _check_exact_method(outputs: list[str], method: str) -> None:
    allowed = _EXACT_BY_METHOD.get(method, EXACT_OUTPUTS)
    refused = [o for o in outputs if o not in allowed]
    if refused:
        raise IntakeError(f"method {method} cannot return {', '.join(refused)}; use method automatic or "
                          "statevector", code="invalid_options", details={"outputs": refused, "method": method})


def _exact_circuit(circuit: QuantumCircuit, outputs: list[str], runs: int,
                   limits: IntakeLimits) -> tuple[QuantumCircuit, int]:
    """The circuit whose final state is returned, and the result's size: final measurements dropped; any other
    measurement, reset or classical control refused (the state would then be one random branch, not the
    circuit's)."""
    bare = circuit.remove_final_measurements(inplace=False)
    names = runnable.operation_names(bare)
    if {"measure", "reset"} & names or any(isinstance(i.operation, ControlFlowOp) for i in bare.data):
        raise IntakeError("exact outputs need a circuit without mid-circuit measurements, resets or classical "
                          "control: its final state would be one random branch", code="not_exact")
    # As JSON: an amplitude is a pair of doubles; a probability is keyed by its n-character bitstring.
    size = runs * 2**bare.num_qubits * (50 if "statevector" in outputs else 0)
    size += runs * 2**bare.num_qubits * (bare.num_qubits + 30 if "probabilities" in outputs else 0)
    if size > limits.max_result_bytes:
        raise IntakeError(f"{', '.join(outputs)} of {bare.num_qubits} qubits over {runs} parameter sets would be "
                          f"{preflight.human_bytes(size)}; the limit is "
                          f"{preflight.human_bytes(limits.max_result_bytes)}",
                          code="result_too_large", details={"result_bytes": size,
                                                            "limit_bytes": limits.max_result_bytes})
    return bare, size


def _registered(circuit: QuantumCircuit, scan: prescan.Scan) -> QuantumCircuit:
    """The circuit with each classical bit that belongs to no register (Qiskit's importer reads `bit m;` so) in
    a one-bit register of its own, in declaration order: Aer leaves such bits out of the counts, and pyqasm's
    path (which reads `bit m;` as `bit[1] m;`) would shape the same program's counts differently."""
    loose = [bit for bit in circuit.clbits if not circuit.find_bit(bit).registers]
    if not loose:
        return circuit
    taken = {reg.name for reg in circuit.cregs} | {reg.name for reg in circuit.qregs}
    names = iter([n for n in scan.bit_names if n not in taken] + [f"c{i}" for i in range(len(loose))])
    added = [ClassicalRegister(name=next(names), bits=[bit]) for bit in loose]
    registers = sorted([*circuit.cregs, *added], key=lambda reg: circuit.find_bit(reg[0]).index)
    out = QuantumCircuit(*circuit.qregs, *registers, name=circuit.name, global_phase=circuit.global_phase)
    if len(out.qubits) != len(circuit.qubits) or list(out.clbits) != list(circuit.clbits):
        for reg in added:  # qubits outside registers, or registers not contiguous: keep the bit order as it is
            circuit.add_register(reg)
        return circuit
    out.compose(circuit, qubits=out.qubits, clbits=out.clbits, inplace=True)
    return out


def _check_parsed(circuit: QuantumCircuit, scan: prescan.Scan, text: str, *, bindable: bool) -> None:
    """`bindable`: the circuit's parameters get values from the request (sweeps and primitives); its other
    inputs never can."""
    if circuit.num_qubits == 0:
        raise IntakeError("the program declares no qubits, so there is nothing to run; declare some, e.g. "
                          '"qubit[2] q;" in OpenQASM 3 or "qreg q[2];" in OpenQASM 2', code="no_qubits")
    params = [] if bindable else [p.name for p in circuit.parameters]
    unbound = params + [v.name for v in circuit.iter_input_vars()]
    if unbound:
        line, column = next((scan.inputs[n] for n in unbound if n in scan.inputs), (None, None))
        where = f" (line {line}, column {column})" if line else ""
        raise IntakeError(f"the circuit has inputs that no value binds: {', '.join(map(repr, unbound[:10]))}{where}. "
                          "Give them values in the source (e.g. \"const float theta = 0.5;\"), or with "
                          "parameter_values (float inputs only)",
                          code="unbound_parameters", line=line, column=column, details={"parameters": unbound})


def _check_backend_width(circuit: QuantumCircuit, backend: str, scan: prescan.Scan) -> None:
    width = device(backend).num_qubits
    if circuit.num_qubits > width:
        line, column = scan.first_qubit_at or (None, None)
        raise IntakeError(f"the circuit has {circuit.num_qubits} qubits, more than the {width} of {backend}",
                          code="too_wide_for_backend", line=line, column=column,
                          details={"qubits": circuit.num_qubits, "backend_qubits": width})


def _check_coupling_width(circuit: QuantumCircuit, edges: list[tuple[int, int]], scan: prescan.Scan) -> None:
    width = 1 + max(max(edge) for edge in edges)
    if circuit.num_qubits > width:
        line, column = scan.first_qubit_at or (None, None)
        raise IntakeError(f"the circuit has {circuit.num_qubits} qubits, more than the {width} its coupling_map "
                          "joins", code="too_wide_for_backend", line=line, column=column,
                          details={"qubits": circuit.num_qubits, "coupling_map_qubits": width})


def _refuse_opaque(circuit: QuantumCircuit, scan: prescan.Scan) -> None:
    used = [name for name in scan.opaque if name in runnable.operation_names(circuit)]
    if used:
        line, column = scan.opaque[used[0]]
        raise IntakeError(f"gate {used[0]!r} is declared opaque (line {line}, column {column}): it has no "
                          "definition, so no simulator or transpiler can run it; define it with "
                          "`gate name(params) qubits { … }`", code="opaque_gate", line=line, column=column,
                          details={"gates": used})


def _runnable(
    circuit: QuantumCircuit, opts: preflight.Options, shots: int, limits: IntakeLimits, scan: prescan.Scan, text: str,
) -> tuple[QuantumCircuit, preflight.Charge]:
    """The circuit in instructions Aer runs, and what running it costs."""
    _refuse_opaque(circuit, scan)
    unrolled = runnable.make_runnable(circuit, "automatic" if opts.method == "stabilizer" else opts.method)
    noisy = opts.backend is not None
    if opts.method == "stabilizer" and not runnable.is_aer_clifford(unrolled):
        rewritten = runnable.as_stabilizer_gates(unrolled)
        if rewritten is None:
            gates = runnable.non_clifford(unrolled)
            line, column = prescan.locate(text, re.sub(r"\(.*", "", gates[0])) or (None, None)
            where = f" (line {line}, column {column})" if line else ""
            raise IntakeError(f"method stabilizer runs only Clifford circuits, and this one uses "
                              f"{', '.join(gates[:5])}{where}; use method automatic or statevector",
                              code="not_clifford", line=line, column=column, details={"gates": gates})
        unrolled = rewritten
    cost = preflight.charge(unrolled, opts.method, shots=shots, noisy=noisy, budget_bytes=limits.max_memory_bytes)
    if opts.method == "automatic" and not noisy and cost.memory_bytes > limits.max_memory_bytes:
        # A Clifford circuit written with gates the stabilizer method does not know by name (p(pi/2), u(…),
        # rx(pi)…) is still Clifford: rewritten, Aer's automatic choice runs it on the stabilizer simulator.
        rewritten = runnable.as_stabilizer_gates(unrolled)
        if rewritten is not None:
            unrolled = rewritten
            cost = preflight.charge(unrolled, "automatic", shots=shots, noisy=False,
                                    budget_bytes=limits.max_memory_bytes)
    return unrolled, cost


def _measured(circuit: QuantumCircuit, *, measure_all: bool) -> QuantumCircuit:
    measures = "measure" in runnable.operation_names(circuit)
    if measure_all:
        if measures:
            raise IntakeError("measure_all was asked for, but the circuit already measures qubits",
                              code="invalid_options")
        measured = circuit.copy()
        measured.measure_all()
        return measured
    if not measures:
        raise IntakeError("the circuit measures nothing, so it would return no counts. Add measurements "
                          '(e.g. "measure q -> c;" in OpenQASM 2, "c = measure q;" in OpenQASM 3) or set the '
                          'option "measure_all": true', code="no_measurement")
    return circuit
