"""Intake of PUBs: parameter values and observables read as Qiskit reads them, every mistake refused with a
precise message, sweeps split into parts that join back in order, and the worker's kinds against Aer's own V2
primitives on the same PUBs (exact estimator values equal, seeded samples identical)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import ParameterVector
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_aer.primitives import SamplerV2 as AerSampler

from qqueue import jobs
from qqueue.errors import IntakeError
from qqueue.execution import registry
from qqueue.intake import IntakeLimits, IntakeRequest, pipeline

registry.load()

ANSATZ = """OPENQASM 3.0;
include "stdgates.inc";
input float a;
input float b;
qubit[2] q;
ry(a) q[0];
rx(b) q[1];
cx q[0], q[1];
"""
MEASURED = ANSATZ + "bit[2] c;\nc = measure q;\n"


def prepared(**fields: Any):
    return pipeline.run(IntakeRequest(**{"qc": ANSATZ, "kind": "estimate", "observables": "ZZ", **fields}))


def refused(**fields: Any) -> IntakeError:
    with pytest.raises(IntakeError) as caught:
        prepared(**fields)
    return caught.value


def hea(qubits: int = 3, layers: int = 2) -> QuantumCircuit:
    theta = ParameterVector("θ", qubits * layers)
    qc = QuantumCircuit(qubits)
    for layer in range(layers):
        for i in range(qubits):
            qc.ry(theta[layer * qubits + i], i)
        for i in range(qubits - 1):
            qc.cx(i, i + 1)
    return qc


@pytest.mark.parametrize(("fields", "code", "words"), [
    ({"parameter_values": None}, "unbound_parameters", "no parameter_values bind them"),
    ({"parameter_values": [[1.0]]}, "parameter_count", "has 1 values, but the circuit has 2 parameters (a, b)"),
    ({"parameter_values": {"a": [1.0]}}, "unbound_parameters", "no value for b"),
    ({"parameter_values": {"a": 1, "b": 2, "c": 3}}, "extra_parameters", "no parameter c"),
    ({"parameter_values": [[1.0, float("nan")]]}, "invalid_parameters", "NaN or infinity"),
    ({"parameter_values": [[1.0, float("inf")]]}, "invalid_parameters", "NaN or infinity"),
    ({"parameter_values": [[1.0, 2.0], [3.0]]}, "invalid_parameters", "not a rectangular array"),
    ({"parameter_values": [[1.0, "x"]]}, "invalid_parameters", "numbers only"),
    ({"parameter_values": [[True, 1.0]]}, "invalid_parameters", "numbers only"),
    ({"parameter_values": {"a": [1, 2, 3], "b": [1, 2]}}, "parameter_shape", "cannot be broadcast"),
    ({"parameter_values": [[1, 2]] * 3, "observables": ["ZZ", "ZI"]}, "parameter_shape", "cannot be broadcast"),
    ({"parameter_values": [1, 2], "observables": "ZZZ"}, "observable_width", "acts on 3 qubits, but the circuit has 2"),
    ({"parameter_values": [1, 2], "observables": "ZQ"}, "invalid_observables", "may hold only I, X, Y and Z"),
    ({"parameter_values": [1, 2], "observables": {"ZZ": "1"}}, "invalid_observables", "finite real number"),
    ({"parameter_values": [1, 2], "observables": {"ZZ": float("nan")}}, "invalid_observables", "finite real"),
    ({"parameter_values": [1, 2], "observables": None}, "invalid_observables", "estimate needs observables"),
    ({"parameter_values": [1, 2], "observables": [["ZZ"], []]}, "invalid_observables", "empty list"),
    ({"parameter_values": [1, 2], "precision": -1}, "invalid_precision", "precision"),
    ({"parameter_values": "DEEP"}, "invalid_parameters", "nested more than"),
    ({"parameter_values": [[0.0, 0.0]] * 200_001}, "too_many_parameter_sets", "the limit is"),
])
def test_each_mistake_in_a_pub_is_refused_with_a_precise_message(fields, code, words):
    if fields["parameter_values"] == "DEEP":
        deep: Any = [1.0, 2.0]
        for _ in range(20):
            deep = [deep]
        fields = {"parameter_values": deep}
    error = refused(**fields)
    assert error.code == code, error.message
    assert words in error.message, error.message


def test_sample_takes_no_observables_and_simulate_no_precision():
    with pytest.raises(IntakeError, match="does not take observables"):
        pipeline.run(IntakeRequest(qc=MEASURED, kind="sample", parameter_values=[1, 2], observables="ZZ"))
    with pytest.raises(IntakeError, match="does not take precision"):
        pipeline.run(IntakeRequest(qc=MEASURED, kind="simulate", parameter_values=[1, 2], precision=0.1))


def test_oversized_sweeps_are_refused_by_their_limit():
    small = IntakeLimits(max_parameter_sets=10)
    with pytest.raises(IntakeError) as caught:
        pipeline.run(IntakeRequest(qc=ANSATZ, kind="estimate", observables="ZZ", limits=small,
                                   parameter_values=[[0.0, 0.0]] * 11))
    assert caught.value.code == "too_many_parameter_sets" and "11 parameter sets" in caught.value.message
    with pytest.raises(IntakeError) as caught:  # the broadcast shape counts, not only the values
        pipeline.run(IntakeRequest(qc=ANSATZ, kind="estimate", limits=small, parameter_values=[[0.0, 0.0]] * 4,
                                   observables=[["ZZ"], ["ZI"], ["IZ"]]))
    assert caught.value.code == "too_many_parameter_sets"


def test_a_mapping_of_names_and_an_array_bind_alike():
    by_array = prepared(parameter_values=[[0.1, 0.5], [0.2, 0.5]])
    by_name = prepared(parameter_values={"b": 0.5, "a": [0.1, 0.2]})
    assert by_array.payload["values"] == by_name.payload["values"] == [[0.1, 0.5], [0.2, 0.5]]
    assert by_array.shape == by_name.shape == [2]


@pytest.mark.parametrize(("values_shape", "observables"), [
    ((), "ZZ"),                                   # one set, one observable
    ((5,), {"ZZ": 1.0, "XI": -0.5}),              # 1-D sweep
    ((3, 4), "ZZ"),                               # 2-D sweep
    ((1, 4), [["ZZ"], ["XX"], [{"YY": 2.0, "IZ": 0.25}]]),  # observables broadcast against the sweep
])
def test_estimate_equals_aers_estimator_exactly(values_shape, observables):
    rng = np.random.default_rng(7)
    circuit = hea(2, 2)
    values = rng.uniform(-np.pi, np.pi, size=(*values_shape, circuit.num_parameters))
    source, names = _named(circuit)
    task = pipeline.run(IntakeRequest(qc=source, kind="estimate", parameter_values=values.tolist(),
                                      observables=observables))
    ours = registry.get("estimate")(task.payload)
    local = AerEstimator().run([(circuit, observables, values)]).result()[0]
    assert ours["shape"] == list(local.data.evs.shape) == task.shape
    np.testing.assert_allclose(np.reshape(ours["data"]["evs"], ours["shape"]), local.data.evs, atol=1e-9, rtol=0)
    assert names == [p.name for p in circuit.parameters]


@pytest.mark.parametrize("values_shape", [(), (4,), (2, 3)])
def test_seeded_samples_are_identical_to_aers_sampler(values_shape):
    circuit = hea(3, 1)
    circuit.measure_all()
    values = np.random.default_rng(3).uniform(0, np.pi, size=(*values_shape, circuit.num_parameters))
    source, _ = _named(circuit)
    task = pipeline.run(IntakeRequest(qc=source, kind="sample", shots=200, parameter_values=values.tolist(),
                                      options={"seed": 11, "memory": True}))
    ours = registry.get("sample")(task.payload)
    local = AerSampler(seed=11).run([(circuit, values, 200)]).result()[0].data.meas
    flat = local.reshape(math.prod(values_shape))
    assert ours["shape"] == list(values_shape)
    assert ours["data"]["meas"]["counts"] == [flat.get_counts(i) for i in range(flat.size)]
    assert ours["data"]["meas"]["samples"] == [flat.get_bitstrings(i) for i in range(flat.size)]


def test_a_split_pub_joins_back_into_the_whole_in_order():
    rng = np.random.default_rng(5)
    circuit = hea(2, 2)
    values = rng.uniform(-np.pi, np.pi, size=(3, 1, circuit.num_parameters))
    observables = [["ZZ", "XX", {"YI": 1.0, "IZ": 0.5}, "ZI"]]  # shape (1, 4): the PUB's shape is (3, 4)
    source, _ = _named(circuit)
    whole = pipeline.run(IntakeRequest(qc=source, kind="estimate", parameter_values=values.tolist(),
                                       observables=observables))
    split = pipeline.run(IntakeRequest(qc=source, kind="estimate", parameter_values=values.tolist(),
                                       observables=observables, chunk_size=5))
    assert whole.parts is None and split.parts is not None
    assert [p.payload["sets"] for p in split.parts] == [[0, 5], [5, 10], [10, 12]]
    joined = jobs.join("estimate", split.shape or [], [registry.get("estimate")(p.payload) for p in split.parts])
    alone = registry.get("estimate")(whole.payload)
    assert joined["shape"] == alone["shape"] == [3, 4]
    np.testing.assert_allclose(joined["data"]["evs"], alone["data"]["evs"], atol=1e-12)


def test_simulate_sweeps_parameter_sets_and_returns_exact_states():
    sweep = pipeline.run(IntakeRequest(qc=MEASURED, kind="simulate", shots=50, parameter_values=[[0, 0], [np.pi, 0]],
                                       options={"seed": 1}))
    out = registry.get("simulate")(sweep.payload)
    assert out["shape"] == [2] and out["counts"] == [{"00": 50}, {"11": 50}]
    exact = pipeline.run(IntakeRequest(qc=MEASURED, kind="simulate", shots=0, parameter_values=[np.pi, 0],
                                       outputs=["statevector", "probabilities"]))
    state = registry.get("simulate")(exact.payload)
    assert state["probabilities"] == {"11": pytest.approx(1.0)}
    assert np.allclose([complex(*a) for a in state["statevector"]], [0, 0, 0, 1])
    with pytest.raises(IntakeError, match="set shots to 0"):
        pipeline.run(IntakeRequest(qc=MEASURED, kind="simulate", shots=10, outputs=["statevector"],
                                   parameter_values=[1, 2]))
    with pytest.raises(IntakeError, match="mid-circuit"):
        pipeline.run(IntakeRequest(qc=MEASURED + "x q[0];\n", kind="simulate", shots=0, outputs=["probabilities"],
                                   parameter_values=[1, 2]))


def _named(circuit: QuantumCircuit) -> tuple[str, list[str]]:
    """OpenQASM 3 of the circuit as the Python client sends it, and its parameter names in order."""
    from qqueue.client.primitives import circuit_source

    source = circuit_source(circuit)
    return source, [p.name for p in circuit.parameters]


def test_the_clients_export_keeps_the_parameter_order():
    circuit = hea(3, 4)  # 12 parameters: θ[10] sorts before θ[2] by plain name, not by the circuit's order
    source, _ = _named(circuit)
    parsed = qasm3.loads(source)
    assert [p.name for p in parsed.parameters] == [f"_qq_p{i:05d}" for i in range(12)]


def test_an_estimate_is_charged_for_every_parameter_set_and_term():
    wide = 'OPENQASM 3.0; include "stdgates.inc"; input float a; qubit[24] q; rx(a) q[0]; h q;'
    terms = {format(i, "024b").replace("0", "X").replace("1", "Z"): 1.0 for i in range(2000)}
    with pytest.raises(IntakeError) as caught:
        pipeline.run(IntakeRequest(qc=wide, kind="estimate", parameter_values=[[0.1]] * 100, observables=terms,
                                   timeout_s=60))
    assert caught.value.code == "too_slow" and "parameter sets, observable terms" in caught.value.message
    one = pipeline.run(IntakeRequest(qc=wide, kind="estimate", parameter_values=[0.1], observables="Z" * 24,
                                     timeout_s=60))
    assert one.profile["estimate_s"] < 60


def test_a_split_pub_is_bounded_and_charged_for_what_its_parts_run():
    one_set = [0.1, 0.2]
    # 100,000 observables against one parameter set: as one task Aer simulates once; split, every part's
    # elements carry their own copy of the set, which is refused past the numbers limit...
    many = ["ZZ"] * 100_000
    small = IntakeLimits(max_parameter_values=50_000)
    with pytest.raises(IntakeError) as caught:
        pipeline.run(IntakeRequest(qc=ANSATZ, kind="estimate", parameter_values=one_set, observables=many,
                                   chunk_size=250, limits=small))
    assert caught.value.code == "too_many_parameter_sets" and "broadcast to 100000 sets" in caught.value.message
    # ...and charged per element, as it runs.
    whole = pipeline.run(IntakeRequest(qc=ANSATZ, kind="estimate", parameter_values=one_set, observables=many[:1000]))
    parts = pipeline.run(IntakeRequest(qc=ANSATZ, kind="estimate", parameter_values=one_set, observables=many[:1000],
                                       chunk_size=250))
    assert parts.profile["estimate_s"] > 100 * whole.profile["estimate_s"]


def test_sets_are_bounded_for_circuits_without_parameters_too():
    with pytest.raises(IntakeError) as caught:
        pipeline.run(IntakeRequest(qc=MEASURED.replace("input float a;\ninput float b;\n", "").replace("(a)", "(0.1)")
                                   .replace("(b)", "(0.2)"), kind="sample", shots=1, parameter_values=[[]] * 100_001))
    assert caught.value.code == "too_many_parameter_sets"


@pytest.mark.parametrize(("fields", "code"), [
    ({"parameter_values": [1, 10**400]}, "invalid_parameters"),
    ({"parameter_values": {"a": 10**400, "b": 1}}, "invalid_parameters"),
    ({"parameter_values": [1, 2], "observables": {"ZZ": 10**400}}, "invalid_observables"),
])
def test_numbers_past_a_double_are_refused_as_such(fields, code):
    assert refused(**fields).code == code


def test_exact_outputs_are_sized_checked_for_the_method_and_an_empty_list_means_counts():
    plain = 'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; c = measure q;'
    counted = pipeline.run(IntakeRequest(qc=plain, kind="simulate", shots=10, outputs=[]))
    assert "outputs" not in counted.payload and counted.payload["shots"] == 10
    with pytest.raises(IntakeError, match="cannot return statevector"):
        pipeline.run(IntakeRequest(qc=plain, kind="simulate", shots=0, outputs=["statevector"],
                                   options={"method": "stabilizer"}))
    wide = 'OPENQASM 3.0; include "stdgates.inc"; qubit[21] q; h q;'
    with pytest.raises(IntakeError) as caught:  # 2^21 probabilities keyed by 21-character bitstrings
        pipeline.run(IntakeRequest(qc=wide, kind="simulate", shots=0, outputs=["probabilities"]))
    assert caught.value.code == "result_too_large"
    assert pipeline.run(IntakeRequest(qc=MEASURED, kind="simulate", shots=0, outputs=["probabilities"],
                                      parameter_values={"a": 0.1, "b": 0.2})).payload["shape"] == []
    empty = pipeline.run(IntakeRequest(qc=plain, kind="sample", shots=5, parameter_values={}))
    assert empty.shape == []
