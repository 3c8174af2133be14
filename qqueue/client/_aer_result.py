"""Task answers as Aer's results: what `QQueueJob.result()` returns, laid out as `AerSimulator`'s `Result` is.

The server answers counts keyed by the bits of the circuit it parsed; `Clbits` says where those bits land among
the circuit's own classical bits (and which registers the circuit is sent with so that none is lost), and
`experiment` turns one task's answer into one experiment of a `qiskit.result.Result`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.providers.exceptions import JobError
from qiskit.result import Result

from qqueue.api.schemas import TaskDetail


class Clbits:
    """Where the bits of the server's counts keys land among a circuit's classical bits.

    The server answers counts as Aer formats them for the circuit it parsed: every register, the last one
    leftmost, space-separated, and bits in no register left out when there are registers (as Qiskit's own
    formatting does). So the circuit is sent with every classical bit in a register: those of its own registers
    in order, then each bit outside them in a one-bit register of its own (`transport`), and the bits of a key,
    read from the right, are `order`'s clbits."""

    def __init__(self, index: int, circuit: QuantumCircuit) -> None:
        in_registers = [circuit.find_bit(bit).index for register in circuit.cregs for bit in register]
        if len(set(in_registers)) != len(in_registers):
            raise ValueError(f"circuit {index} ({circuit.name!r}) has classical registers that share bits, which "
                             "its OpenQASM 3 form cannot keep apart; give each bit one register")
        self.loose = sorted(set(range(circuit.num_clbits)) - set(in_registers))
        #: Least significant first: the circuit's clbit index of each bit of a key, read from the right.
        self.order = in_registers + self.loose
        self.identity = self.order == list(range(circuit.num_clbits))
        self.index = index

    def transport(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit as it is sent: with a register around each bit outside its registers, so that the
        server keeps (and reports) every bit, after the circuit's own registers."""
        if not self.loose:
            return circuit
        out = circuit.copy()
        taken = {register.name for register in circuit.cregs}
        for position in self.loose:
            name = f"_clbit{position}"
            while name in taken:
                name += "_"
            taken.add(name)
            out.add_register(ClassicalRegister(name=name, bits=[circuit.clbits[position]]))
        return out

    def value(self, key: str) -> int:
        """The outcome as an integer over the circuit's classical bits (bit i: clbit i)."""
        bits = key.replace(" ", "")
        if len(bits) != len(self.order):
            raise JobError(f"circuit {self.index}: the server answered outcomes of {len(bits)} bits for a circuit "
                           f"of {len(self.order)} classical bits")
        if self.identity:
            return int(bits, 2) if bits else 0
        value = 0
        for position, bit in enumerate(reversed(bits)):
            if bit == "1":
                value |= 1 << self.order[position]
        return value


def experiment(job_id: str, clbits: Clbits, circuit: QuantumCircuit, detail: TaskDetail, *, shots: int,
               memory: bool) -> dict[str, Any]:
    """One experiment of the Result, in the layout of Aer's (`AerSimulator().run(...).result().to_dict()`):
    counts (and with `memory`, every shot) in hexadecimal over the circuit's clbits, headers of its registers."""
    index = clbits.index
    answer = detail.result
    if not isinstance(answer, dict) or not isinstance(answer.get("counts"), dict):
        raise JobError(f"job {job_id}: circuit {index} (task {detail.task_id}) has no counts in its result")
    counts: dict[str, int] = {}
    for key, n in answer["counts"].items():
        hex_key = hex(clbits.value(key))
        counts[hex_key] = counts.get(hex_key, 0) + int(n)
    data: dict[str, Any] = {"counts": counts}
    if memory and answer.get("memory") is not None:
        data["memory"] = [hex(clbits.value(shot)) for shot in answer["memory"]]
    timings = answer.get("timings") or {}
    return {
        "shots": answer.get("shots", shots),
        "success": True,
        "status": "DONE",
        "meas_level": 2,
        "seed_simulator": answer.get("seed"),
        "data": data,
        "header": {
            "creg_sizes": [[register.name, register.size] for register in circuit.cregs],
            "global_phase": float(circuit.global_phase),
            "memory_slots": circuit.num_clbits,
            "metadata": circuit.metadata,
            "n_qubits": circuit.num_qubits,
            "name": circuit.name,
            "qreg_sizes": [[register.name, register.size] for register in circuit.qregs],
        },
        "metadata": {"task_id": str(detail.task_id), "method": answer.get("method"),
                     "backend": answer.get("backend"), "cached": detail.cached, "versions": answer.get("versions")},
        "time_taken": timings.get("simulate_s", 0.0),
    }


def run_result(*, backend_name: str, backend_version: str, job_id: str, date: datetime,
               experiments: list[dict[str, Any]]) -> Result:
    """The Result of a run's experiments, with the header fields Aer's carries."""
    return Result.from_dict({
        "backend_name": backend_name, "backend_version": backend_version,
        "qobj_id": job_id, "job_id": job_id, "success": True, "status": "COMPLETED",
        "date": date.isoformat(), "header": None,
        "results": experiments,
    })
