"""Intake and preflight: every hostile or malformed submission gets its own clear, structured error."""

from __future__ import annotations

import pytest

from qqueue.errors import IntakeError
from qqueue.intake import IntakeLimits, prepare

BELL2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
BELL3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n'


def qasm2(n: int, body: str, measure: bool = True) -> str:
    tail = "measure q -> c;\n" if measure else ""
    return f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n{body}{tail}'


def ghz2(n: int) -> str:
    return qasm2(n, "h q[0];\n" + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1)))


HOSTILE = [
    # (name, source, prepare kwargs, expected code, text the message must contain)
    ("syntax error with position", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q\nh q[0];\n', {},
     "syntax_error", "line 4"),
    ("undefined gate", qasm2(2, "foo q[0];\n"), {}, "undefined_gate", "'foo' is not defined"),
    ("unbounded loop", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
     "while (true) { h q[0]; }\nc = measure q;\n", {}, "unsupported_construct", "would never stop"),
    ("loop unrolling past the operation limit", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
     "for int i in [0:100000000] { h q[0]; }\nc = measure q;\n", {}, "too_many_operations", "iterations"),
    ("no measurement", qasm2(2, "h q[0];\n", measure=False), {}, "no_measurement", "measure_all"),
    ("too many qubits for statevector", ghz2(40).replace("h q[0];", "h q[0];\nt q[0];"),
     {"options": {"method": "statevector"}}, "too_much_memory", "16.0 TiB"),
    ("include of a file", 'OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];\n', {}, "include_refused",
     "/etc/passwd"),
    ("relative include", 'OPENQASM 3.0;\ninclude "../secrets.inc";\n', {}, "include_refused", "not allowed"),
    ("include on the header's line", 'OPENQASM 2.0; include "/etc/passwd"; qreg q[1];', {}, "include_refused",
     '"/etc/passwd" is not allowed'),
    ("include in single quotes", "OPENQASM 3.0;\ninclude '/etc/passwd';\nqubit[1] q;\n", {}, "include_refused",
     '"/etc/passwd" is not allowed'),
    ("include split over lines", 'OPENQASM 2.0;\ninclude\n"/etc/passwd"\n;\nqreg q[1];\n', {}, "include_refused",
     '"/etc/passwd" is not allowed'),
    ("include behind a comment", 'OPENQASM 3.0;\ninclude /* x */ "/etc/passwd";\n', {}, "include_refused",
     '"/etc/passwd" is not allowed'),
    ("include without its semicolon", 'OPENQASM 2.0;\ninclude "/etc/passwd"\nqreg q[1];\n', {}, "include_refused",
     "cannot be read"),
    ("non-UTF-8 bytes", b'OPENQASM 2.0;\n\xff\xfe qreg q[1];', {}, "not_utf8", "UTF-8"),
    ("zero shots", BELL2, {"shots": 0}, "invalid_shots", "shots 0 returns exact results"),
    ("negative shots", BELL2, {"shots": -1}, "invalid_shots", "between 1"),
    ("huge shots", BELL2, {"shots": 10**9}, "invalid_shots", "between 1"),
    ("shots not a number", BELL2, {"shots": "many"}, "invalid_shots", "whole number"),
    ("expression nesting built to recurse forever", qasm2(1, "rz(" + "(" * 100_000 + "1" + ")" * 100_000 + ") q[0];\n"),
     {}, "nesting_too_deep", "nested"),
    ("oversized source", "OPENQASM 2.0;\n" + "// padding\n" * 30_000, {}, "source_too_large", "limit"),
    ("a malformed header", "OPENQASM three;\nqubit q;", {}, "no_header", "OPENQASM 3.0"),
    ("unsupported version", "OPENQASM 4.0;\n", {}, "unsupported_version", "OpenQASM 4"),
    ("unknown option", BELL2, {"options": {"sneaky": 1}}, "invalid_options", "sneaky"),
    ("bad method", BELL2, {"options": {"method": "quantum_magic"}}, "invalid_options", "unknown method"),
    ("unknown backend", BELL2, {"options": {"backend": "fake_nowhere"}}, "unknown_backend", "fake_manila"),
    ("per-shot memory past its bound", BELL2, {"shots": 50_000, "options": {"memory": True}}, "invalid_shots",
     "per-shot memory"),
    ("NUL character", "OPENQASM 2.0;\x00", {}, "invalid_source", "NUL"),
    ("87,000 block comments never closed", "/* " * 87_000, {}, "syntax_error", "never closed"),
    ("powers of a wide user gate", 'OPENQASM 3.0;\ngate g a, b, c, d, e, f, h, i, j, k { U(0, 0, 0) a; }\n'
     "qubit[10] q;\n" + "pow(0.5) @ g q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9];\n" * 2, {},
     "too_many_operations", "1048576 operations"),
]


@pytest.mark.parametrize(("name", "source", "kwargs", "code", "fragment"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_or_malformed_input_gets_a_clear_structured_error(name, source, kwargs, code, fragment):
    with pytest.raises(IntakeError) as caught:
        prepare(source, **kwargs)
    error = caught.value
    assert error.code == code
    assert fragment in error.message
    assert "Traceback" not in error.message and "Error(" not in error.message
    assert error.to_dict()["message"] == error.message


def test_syntax_errors_carry_line_and_column():
    with pytest.raises(IntakeError) as caught:
        prepare(qasm2(2, "h q[0]\ncx q[0],q[1];\n"))
    assert (caught.value.line, caught.value.column) == (6, 1)


def test_profile_describes_the_circuit_and_the_memory_it_needs():
    prepared = prepare(BELL2, shots=100, options={"method": "statevector"})
    profile = prepared.profile
    assert (profile["qubits"], profile["clbits"], profile["depth"], profile["size"]) == (2, 2, 3, 4)
    assert profile["gate_counts"] == {"h": 1, "cx": 1, "measure": 2}
    assert profile["memory_bytes"] == 2 ** (2 + 4)


def test_a_100_qubit_clifford_ghz_passes_preflight_with_stabilizer_and_automatic():
    for method in ("stabilizer", "automatic"):
        profile = prepare(ghz2(100), options={"method": method}).profile
        assert profile["qubits"] == 100 and profile["memory_method"] == "stabilizer"


def test_density_matrix_is_charged_as_twice_the_qubits():
    with pytest.raises(IntakeError, match="density_matrix"):
        prepare(ghz2(15), options={"method": "density_matrix"})


def test_limits_are_configurable():
    with pytest.raises(IntakeError, match="limit is 32 B"):
        prepare(BELL2, options={"method": "statevector"}, limits=IntakeLimits(max_memory_bytes=32))
    with pytest.raises(IntakeError, match="3 operations"):
        prepare(qasm2(1, "x q[0];\nx q[0];\n"), limits=IntakeLimits(max_operations=2))


def test_measure_all_adds_measurements():
    payload = prepare(qasm2(2, "x q[0];\n", measure=False), options={"measure_all": True}).payload
    assert "measure" in payload["circuit"]["source"]


def test_openqasm3_is_normalised_to_the_faster_openqasm2_form_when_it_can_be():
    assert prepare(BELL3).payload["circuit"]["format"] == "qasm2"


def test_cache_key_covers_what_the_result_depends_on():
    key = prepare(BELL2, shots=100, options={"seed": 1}).cache_key
    assert key and len(key) == 64
    assert prepare(BELL3, shots=100, options={"seed": 1}).cache_key == key  # same circuit, other dialect
    assert prepare(BELL2, shots=101, options={"seed": 1}).cache_key != key
    assert prepare(BELL2, shots=100, options={"seed": 2}).cache_key != key
    assert prepare(BELL2, shots=100, options={"seed": 1, "method": "statevector"}).cache_key != key
    assert prepare(BELL2, shots=100).cache_key is None  # unseeded tasks always run


def test_kinds_need_their_targets():
    with pytest.raises(IntakeError, match="transpile needs a target"):
        prepare(BELL2, kind="transpile")
    with pytest.raises(IntakeError, match="convert needs a target"):
        prepare(BELL2, kind="convert")
    with pytest.raises(IntakeError, match="unknown circuit kind"):
        prepare(BELL2, kind="teleport")


def test_a_parser_out_of_memory_is_reported_as_memory_not_as_a_syntax_error(monkeypatch):
    """A parser's error recovery may catch a MemoryError and raise an empty error of its own, which would read as
    "not valid OpenQASM"; it reaches the parser process as the MemoryError it was (refused as too_complex)."""
    from qiskit import qasm3

    from qqueue.intake import source

    def exhausted(_text: str) -> None:
        try:
            raise MemoryError
        except MemoryError:
            raise RuntimeError("") from None  # what recovery leaves: no message, no cause, only a context

    monkeypatch.setattr(qasm3, "loads", exhausted)
    monkeypatch.setattr(source, "_native_import", lambda _text: None)
    with pytest.raises(MemoryError):
        source.parse('OPENQASM 3.0;\nqubit q;\nh q;\n', 3)
