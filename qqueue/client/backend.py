"""`QQueueBackend`: a Qiskit `BackendV2` whose runs are qqueue tasks, so that Qiskit's own tools (`transpile`,
`BackendSamplerV2`, `BackendEstimatorV2`…) run circuits on a qqueue server unchanged.

    backend = QQueueBackend("http://127.0.0.1:8000")                 # the ideal simulator
    counts = backend.run(circuit, shots=1000, seed_simulator=7).result().get_counts()
    device = QQueueBackend("http://127.0.0.1:8000", name="fake_manila")
    job = device.run(transpile(circuit, backend=device))              # the device's noise model

The target comes from GET /backends/{name}. `run` writes each circuit as OpenQASM 3 (`qiskit.qasm3.dumps`, its
gate definitions included) and queues them as one batch of `simulate` tasks; the job's `result()` is a
`qiskit.result.Result` in the form Aer's is: hexadecimal counts and memory over the circuit's classical bits,
headers carrying its registers, so `Result.get_counts` and the primitives read it as they read Aer's.

With `seed_simulator=s`, circuit i of a run gets the seed `s + 2113 * i`, the seeds Aer gives the circuits of one
run: a run here draws the counts a run of the same circuits on `AerSimulator` with the same seed draws (for
circuits whose classical bits all belong to their registers; the others reach the server with their bits in
another order, which Aer's draws follow).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import (
    BreakLoopOp,
    ContinueLoopOp,
    ForLoopOp,
    IfElseOp,
    SwitchCaseOp,
    WhileLoopOp,
)
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.providers.exceptions import JobError, JobTimeoutError
from qiskit.result import Result
from qiskit.transpiler import CouplingMap, Target

import qqueue
from qqueue.api.schemas import MAX_BATCH, BackendInfo, SimulationOptions, TaskDetail, TaskSubmission
from qqueue.client import _aer_result as aer
from qqueue.client.client import Client
from qqueue.client.errors import ApiError, WaitTimeoutError
from qqueue.intake.model import MAX_SHOTS
from qqueue.tasks import TERMINAL_STATUSES

__all__ = ["AER_SIMULATOR", "CircuitRejectedError", "QQueueBackend", "QQueueJob"]

#: The ideal simulator's name: its tasks are sent without `options.backend`.
AER_SIMULATOR = "aer_simulator"

#: Aer's step between the seeds of the circuits of one run (seed, seed + 2113, seed + 4226, … as it reports).
AER_SEED_STEP = 2113

#: Seeds the server takes (`SimulationOptions.seed`).
_SEED_MODULUS = 2**63

#: Control-flow instructions by the names targets list them under; they are classes, not gate instances.
_CONTROL_FLOW = {"if_else": IfElseOp, "while_loop": WhileLoopOp, "for_loop": ForLoopOp,
                 "switch_case": SwitchCaseOp, "break_loop": BreakLoopOp, "continue_loop": ContinueLoopOp}



class CircuitRejectedError(JobError):
    """The server refused a circuit of a run (HTTP 422 at its index of the batch): nothing of that run is left
    queued. `index` is the circuit's position in the run, `code`, `line` and `column` the server's reason."""

    def __init__(self, index: int, name: str, message: str, *, code: str | None, line: int | None,
                 column: int | None) -> None:
        where = f" (line {line}, column {column} of its OpenQASM 3)" if line is not None else ""
        super().__init__(f"circuit {index} ({name!r}) was rejected{where}: {message}")
        self.index = index
        self.code = code
        self.line = line
        self.column = column

    def __str__(self) -> str:
        # QiskitError quotes its message (its repr); this one is read by people.
        return str(self.message)


def target_of(info: BackendInfo) -> Target:
    """A Qiskit `Target` for a backend as GET /backends describes it: its standard gates, measure, reset and
    delay, and control flow, on its coupling map, or between any qubits when it has none (the ideal simulator).

    Instructions that are not standard gates (Aer's `unitary`, `mcx`…) are left out: the transpiler rewrites
    them into standard gates, which every backend runs."""
    standard = get_standard_gate_name_mapping()
    basis = [name for name in info.basis_gates if name in standard or name in _CONTROL_FLOW]
    coupling = None
    if info.coupling_map is not None:
        coupling = CouplingMap(info.coupling_map)
        # A device without two-qubit gates (a single qubit) has qubits that no edge names.
        for qubit in range(info.num_qubits):
            if qubit not in coupling.physical_qubits:
                coupling.add_physical_qubit(qubit)
    return Target.from_configuration(basis, num_qubits=info.num_qubits, coupling_map=coupling,
                                     custom_name_mapping=_CONTROL_FLOW)


class QQueueBackend(BackendV2):
    """A backend of a qqueue server: "aer_simulator" (ideal) or a fake IBM device ("fake_manila"…, noisy).

    `url` and `api_key` make a `qqueue.client.Client`, unless `client` is given (then they are unused and the
    caller closes it). Run options: `shots` (1024), `seed_simulator` (None: the server draws one per circuit and
    reports it), `memory` (per-shot outcomes), `method` (Aer's simulation method; None is "automatic"),
    `optimization_level` (the server's transpilation to a device), `queue`, `priority`, `timeout_s`, and
    `wait_timeout_s`, how long `result()` waits at most (None: as long as it takes).
    """

    def __init__(self, url: str, api_key: str | None = None, name: str = AER_SIMULATOR, *,
                 client: Client | None = None) -> None:
        self._owns_client = client is None
        self._client = client if client is not None else Client(url, api_key)
        try:
            info = self._client.backend(name)
        except BaseException:
            self.close()
            raise
        super().__init__(provider=None, name=info.name, description=info.description,
                         backend_version=qqueue.__version__)
        self._info = info
        self._target = target_of(info)
        self.options.set_validator("shots", (1, MAX_SHOTS))
        self.options.set_validator("optimization_level", [None, 0, 1, 2, 3])

    @classmethod
    def _default_options(cls) -> Options:
        """The run options and their defaults (see the class)."""
        return Options(shots=1024, seed_simulator=None, memory=False, method=None, optimization_level=None,
                       queue="default", priority=0, timeout_s=None, wait_timeout_s=None)

    @property
    def target(self) -> Target:
        """What circuits for this backend may use (from GET /backends/{name})."""
        return self._target

    @property
    def max_circuits(self) -> int:
        """Circuits of one batch submission; `run` splits longer lists into several."""
        return MAX_BATCH

    @property
    def info(self) -> BackendInfo:
        """The server's description of the backend."""
        return self._info

    @property
    def client(self) -> Client:
        """The HTTP client runs go through."""
        return self._client

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> QQueueJob:
        """Queue the circuits (bound: no free parameters) as `simulate` tasks and return their job at once.

        Options override the backend's (see the class). Raises `CircuitRejectedError` when the server refuses a
        circuit (its index and reason), `ValueError` for an unknown option or a circuit that cannot be sent."""
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        if not circuits:
            raise ValueError("run needs at least one circuit")
        defaults = dict(self.options.items())
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(f"unknown run options {unknown}; {self.name} takes {sorted(defaults)}")
        merged = {**defaults, **options}
        if not 1 <= merged["shots"] <= MAX_SHOTS:
            raise ValueError(f"shots must be 1 to {MAX_SHOTS}, not {merged['shots']}")
        job = QQueueJob(self, uuid.uuid4().hex, circuits, merged)
        job.submit()
        return job

    def close(self) -> None:
        """Close the HTTP client if this backend made it."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"<QQueueBackend {self.name!r} at {self._client.url}>"


class QQueueJob(JobV1):
    """The tasks of one `QQueueBackend.run`, one per circuit, in order. `job_id()` is also the Idempotency-Key
    of its batches, so a retried submission never queues a circuit twice."""

    def __init__(self, backend: QQueueBackend, job_id: str, circuits: list[QuantumCircuit],
                 options: dict[str, Any]) -> None:
        super().__init__(backend, job_id)
        self._qq = backend
        self._circuits = circuits
        self._options = options
        self._clbits = [aer.Clbits(i, c) for i, c in enumerate(circuits)]
        self._task_ids: list[uuid.UUID] | None = None
        #: Tasks found finished: they never change again, so they are not asked about twice.
        self._finished: dict[int, TaskDetail] = {}
        self._submitted_at: datetime | None = None

    def submit(self) -> None:
        """Queue the circuits (`run` does). A circuit the server refuses raises `CircuitRejectedError`, and the
        circuits of the run that were queued are cancelled: a run is queued whole or not at all."""
        if self._task_ids is not None:
            raise JobError(f"job {self.job_id()} was already submitted")
        submissions = [self._submission(i, c) for i, c in enumerate(self._circuits)]
        ids: list[uuid.UUID] = []
        rejected: CircuitRejectedError | None = None
        for start in range(0, len(submissions), MAX_BATCH):
            answer = self._qq.client.submit_many(submissions[start:start + MAX_BATCH],
                                                 idempotency_key=f"{self.job_id()}/{start}")
            for item in answer.items:
                if item.task_id is not None:
                    ids.append(item.task_id)
                elif rejected is None:
                    index = start + item.index
                    error = item.error
                    rejected = CircuitRejectedError(
                        index, self._circuits[index].name, error.message if error else answer.message,
                        code=error.code if error else None, line=error.line if error else None,
                        column=error.column if error else None)
            if rejected is not None:
                break
        if rejected is not None:
            self._cancel_ids(ids)
            raise rejected
        self._task_ids = ids
        self._submitted_at = datetime.now(UTC)

    def _submission(self, index: int, circuit: QuantumCircuit) -> TaskSubmission:
        if circuit.parameters:
            names = ", ".join(sorted(p.name for p in circuit.parameters))
            raise ValueError(f"circuit {index} ({circuit.name!r}) has unbound parameters ({names}); bind them "
                             "with assign_parameters, or run it through a sampler or an estimator")
        try:
            source = qasm3.dumps(self._clbits[index].transport(circuit))
        except qasm3.QASM3ExporterError as exc:  # it names what OpenQASM 3 cannot say
            raise ValueError(f"circuit {index} ({circuit.name!r}) cannot be written as OpenQASM 3: {exc}") from None
        opts = self._options
        seed = opts["seed_simulator"]
        backend = self._qq.name
        return TaskSubmission(
            qc=source,
            # int() and float(): the primitives pass numpy numbers, which the JSON encoder refuses.
            shots=int(opts["shots"]),
            queue=opts["queue"],
            priority=int(opts["priority"]),
            timeout_s=None if opts["timeout_s"] is None else float(opts["timeout_s"]),
            metadata={"qiskit_job_id": self.job_id(), "circuit_index": index, "circuit_name": circuit.name},
            options=SimulationOptions(
                seed=None if seed is None else (int(seed) + AER_SEED_STEP * index) % _SEED_MODULUS,
                memory=bool(opts["memory"]),
                method=opts["method"],
                backend=None if backend == AER_SIMULATOR else backend,
                optimization_level=opts["optimization_level"],
            ),
        )

    def task_ids(self) -> list[uuid.UUID]:
        """The task of each circuit, in the run's order."""
        if self._task_ids is None:
            raise JobError(f"job {self.job_id()} was not submitted")
        return list(self._task_ids)

    def _details(self, *, wait_timeout_s: float | None = None, block: bool = False) -> list[TaskDetail]:
        """Every task now, or with `block` once each has ended (`wait_timeout_s` for all of them together)."""
        deadline = None if wait_timeout_s is None else time.monotonic() + wait_timeout_s
        out = []
        for index, task_id in enumerate(self.task_ids()):
            detail = self._finished.get(index)
            if detail is None:
                if block:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        detail = self._qq.client.wait(task_id, timeout=left)
                    except WaitTimeoutError as exc:
                        raise JobTimeoutError(f"job {self.job_id()}: circuit {index} (task {task_id}) is still "
                                              f"{exc.status} after {wait_timeout_s:g} s") from None
                else:
                    detail = self._qq.client.get(task_id)
                if detail.status.value in TERMINAL_STATUSES:
                    self._finished[index] = detail
            out.append(detail)
        return out

    def status(self) -> JobStatus:
        """DONE when every task completed; ERROR as soon as one failed; CANCELLED when every task ended and
        some were cancelled; RUNNING once one runs or ended; QUEUED before."""
        if self._task_ids is None:
            return JobStatus.INITIALIZING
        statuses = {d.status.value for d in self._details()}
        if "failed" in statuses:
            return JobStatus.ERROR
        if statuses <= TERMINAL_STATUSES:
            return JobStatus.CANCELLED if "cancelled" in statuses else JobStatus.DONE
        if statuses & {"running", "completed", "cancelled"}:
            return JobStatus.RUNNING
        return JobStatus.QUEUED

    def cancel(self) -> bool:
        """Cancel every task not yet ended: pending ones at once, running ones stop shortly. True when at least
        one was cancelled or asked to stop; False when all had already ended."""
        return self._cancel_ids([t for i, t in enumerate(self.task_ids()) if i not in self._finished]) > 0

    def _cancel_ids(self, ids: Sequence[uuid.UUID]) -> int:
        cancelled = 0
        for task_id in ids:
            try:
                self._qq.client.cancel(task_id)
                cancelled += 1
            except ApiError as exc:
                if exc.status != 409:  # 409: it had ended meanwhile, which is what was wanted
                    raise
        return cancelled

    def result(self, timeout: float | None = None) -> Result:
        """Wait for every task (at most `timeout` seconds, else the `wait_timeout_s` option) and return the
        results as Aer would. A circuit that failed or was cancelled raises `JobError` naming it and why."""
        wait_s = timeout if timeout is not None else self._options["wait_timeout_s"]
        details = self._details(wait_timeout_s=wait_s, block=True)
        for index, detail in enumerate(details):
            if detail.status.value != "completed":
                raise JobError(f"job {self.job_id()}: circuit {index} ({self._circuits[index].name!r}, task "
                               f"{detail.task_id}) {detail.status.value}: {detail.message}")
        shots, memory = self._options["shots"], self._options["memory"]
        experiments = [aer.experiment(self.job_id(), self._clbits[i], c, d, shots=shots, memory=memory)
                       for i, (c, d) in enumerate(zip(self._circuits, details, strict=True))]
        return aer.run_result(backend_name=self._qq.name, backend_version=self._qq.backend_version,
                              job_id=self.job_id(), date=self._submitted_at or datetime.now(UTC),
                              experiments=experiments)
