"""Qiskit's V2 primitives on a qqueue server: `SamplerV2` and `EstimatorV2`.

`run(pubs)` submits one qqueue job (POST /jobs), whose PUBs the server runs with Aer's own V2 primitives, spread
over its workers; `result()` is a `PrimitiveResult` shaped exactly as the local Aer primitives' result for the
same PUBs (the same data fields, shapes and bit arrays). Qiskit code changes only its constructor:

    from qqueue.client import EstimatorV2
    estimator = EstimatorV2("http://localhost:8000")
    evs = estimator.run([(circuit, observable, values)]).result()[0].data.evs

Circuits travel as OpenQASM 3 (`qasm3.dumps`, custom gates included). Their parameters are renamed in order
before the export (`_qq_p00000`, ...), so the server's parameter order, which is by name, is the circuit's own,
and the values travel as one array.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import Parameter
from qiskit.primitives import BaseEstimatorV2, BasePrimitiveJob, BaseSamplerV2, PrimitiveResult
from qiskit.primitives.containers import BitArray, DataBin, PubResult, SamplerPubResult
from qiskit.primitives.containers.bindings_array import BindingsArray
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.providers import JobStatus

from qqueue.api.schemas import JobDetail
from qqueue.client.client import Client
from qqueue.tasks import TERMINAL_STATUSES

__all__ = ["EstimatorV2", "QQueuePrimitiveJob", "SamplerV2", "circuit_source"]

_STATUS = {"pending": JobStatus.QUEUED, "running": JobStatus.RUNNING, "completed": JobStatus.DONE,
           "failed": JobStatus.ERROR, "cancelled": JobStatus.CANCELLED}


def circuit_source(circuit: QuantumCircuit) -> str:
    """OpenQASM 3 of `circuit`, its parameters renamed so that their order by name is their order in the
    circuit (the order of the values' last axis)."""
    params = list(circuit.parameters)
    if params:
        circuit = circuit.assign_parameters({p: Parameter(f"_qq_p{i:05d}") for i, p in enumerate(params)},
                                            inplace=False)
    return qasm3.dumps(circuit)


def _values(circuit: QuantumCircuit, values: BindingsArray) -> list[Any]:
    """The values as one array, last axis in the circuit's parameter order ((*shape, 0) without parameters)."""
    if not circuit.parameters:
        return np.zeros((*values.shape, 0)).tolist()
    return values.as_array(circuit.parameters).tolist()


class QQueuePrimitiveJob(BasePrimitiveJob[PrimitiveResult[Any], JobStatus]):
    """A qqueue job seen as a Qiskit primitive job: `result()` waits for it and builds the PrimitiveResult."""

    def __init__(self, client: Client, job_id: str, build: Any, *, timeout_s: float | None = None) -> None:
        super().__init__(job_id)
        self._client = client
        self._build = build
        self._timeout_s = timeout_s
        self._detail: JobDetail | None = None

    def _refresh(self, wait: float | None = None) -> JobDetail:
        if self._detail is None or self._detail.status not in TERMINAL_STATUSES:
            self._detail = self._client.get_job(self.job_id(), wait=wait)
        return self._detail

    def result(self) -> PrimitiveResult[Any]:
        """Wait for the job; the PrimitiveResult of its PUBs. Raises `RuntimeError` naming every PUB that
        failed or was cancelled."""
        deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
        detail = self._refresh()
        while detail.status not in TERMINAL_STATUSES:
            left = 60.0 if deadline is None else min(60.0, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"job {self.job_id()} is still {detail.status} after {self._timeout_s} s")
            detail = self._refresh(wait=left)
        if detail.status != "completed" or detail.results is None:
            reasons = "; ".join(f"PUB {f.pub} part {f.part}: {f.status}"
                                + (f" ({f.error.get('message')})" if f.error else "") for f in detail.failures)
            raise RuntimeError(f"job {self.job_id()} {detail.status}: {reasons or detail.message}")
        return self._build(detail)

    def status(self) -> JobStatus:
        """The job's status in Qiskit's terms."""
        return _STATUS[self._refresh().status]

    def done(self) -> bool:
        """True once the job completed."""
        return self.status() == JobStatus.DONE

    def running(self) -> bool:
        """True while a task of the job runs."""
        return self.status() == JobStatus.RUNNING

    def cancelled(self) -> bool:
        """True once the job ended cancelled."""
        return self.status() == JobStatus.CANCELLED

    def in_final_state(self) -> bool:
        """True once the job can change no more."""
        return self.status() in (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED)

    def cancel(self) -> None:
        """Cancel every unfinished task of the job."""
        self._client.cancel_job(self.job_id())
        self._detail = None


class _Primitive:
    """What both primitives share: the client and the job's submission fields."""

    def __init__(self, url: str | None, api_key: str | None, *, client: Client | None, seed: int | None,
                 options: dict[str, Any] | None, queue: str, tags: Iterable[str], chunk_size: int | None,
                 timeout_s: float | None) -> None:
        if client is None and url is None:
            raise ValueError("give the server's url (or a Client)")
        self._client = client or Client(url or "", api_key)
        self._seed = seed
        self._options = dict(options or {})
        self._job_fields: dict[str, Any] = {"queue": queue, "tags": list(tags)}
        if chunk_size is not None:
            self._job_fields["chunk_size"] = chunk_size
        if timeout_s is not None:
            self._job_fields["timeout_s"] = timeout_s

    def _submit(self, kind: str, pubs: list[dict[str, Any]], build: Any, **fields: Any) -> QQueuePrimitiveJob:
        options = {**self._options}
        if self._seed is not None:
            options["seed"] = self._seed
        body = {"kind": kind, "pubs": pubs, "options": options, **self._job_fields, **fields}
        answer = self._client.submit_job(body)
        return QQueuePrimitiveJob(self._client, str(answer.job_id), build)


class SamplerV2(_Primitive, BaseSamplerV2):
    """Qiskit's `BaseSamplerV2` on a qqueue server, with Aer's SamplerV2 semantics.

    `options`: simulation options of every PUB (e.g. {"method": "statevector"}); `seed` makes the counts
    reproducible (as Aer's `SamplerV2(seed=...)`).
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, default_shots: int = 1024,
                 seed: int | None = None, options: dict[str, Any] | None = None, client: Client | None = None,
                 queue: str = "default", tags: Iterable[str] = (), chunk_size: int | None = None,
                 timeout_s: float | None = None) -> None:
        super().__init__(url, api_key, client=client, seed=seed, options=options, queue=queue, tags=tags,
                         chunk_size=chunk_size, timeout_s=timeout_s)
        self._default_shots = default_shots
        self._options["memory"] = True  # every shot's bitstring: a BitArray keeps the order of the shots

    @property
    def default_shots(self) -> int:
        """Shots of a PUB that sets none."""
        return self._default_shots

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> QQueuePrimitiveJob:
        """Submit the PUBs as one qqueue job."""
        coerced = [SamplerPub.coerce(pub, self._default_shots if shots is None else shots) for pub in pubs]
        wire = [{"qc": circuit_source(p.circuit), "parameter_values": _values(p.circuit, p.parameter_values),
                 "shots": p.shots} for p in coerced]

        def build(detail: JobDetail) -> PrimitiveResult[SamplerPubResult]:
            return PrimitiveResult([_sample_result(pub, result) for pub, result in zip(coerced, detail.results or [],
                                                                                      strict=True)],
                                   metadata={"version": 2, "job_id": str(detail.job_id)})

        return self._submit("sample", wire, build)


def _sample_result(pub: SamplerPub, result: Any) -> SamplerPubResult:
    shape = tuple(result.shape)
    arrays = {}
    # In the circuit's register order: the server's JSON does not keep the order of a result's keys.
    for register in pub.circuit.cregs:
        data = result.data[register.name]
        sets = [BitArray.from_samples(samples, data["num_bits"]).array for samples in data["samples"]]
        array = np.stack(sets).reshape(*shape, pub.shots, -1) if sets else np.zeros((*shape, pub.shots, 0), np.uint8)
        arrays[register.name] = BitArray(array, data["num_bits"])
    return SamplerPubResult(DataBin(**arrays, shape=shape),
                            metadata={"shots": pub.shots, "circuit_metadata": pub.circuit.metadata})


class EstimatorV2(_Primitive, BaseEstimatorV2):
    """Qiskit's `BaseEstimatorV2` on a qqueue server, with Aer's EstimatorV2 semantics: precision 0 is exact;
    otherwise the exact value plus normal noise of that standard deviation (`seed` makes it reproducible)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, default_precision: float = 0.0,
                 seed: int | None = None, options: dict[str, Any] | None = None, client: Client | None = None,
                 queue: str = "default", tags: Iterable[str] = (), chunk_size: int | None = None,
                 timeout_s: float | None = None) -> None:
        super().__init__(url, api_key, client=client, seed=seed, options=options, queue=queue, tags=tags,
                         chunk_size=chunk_size, timeout_s=timeout_s)
        self._default_precision = default_precision

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> QQueuePrimitiveJob:
        """Submit the PUBs as one qqueue job."""
        coerced = [EstimatorPub.coerce(pub, self._default_precision if precision is None else precision)
                   for pub in pubs]
        wire = [{"qc": circuit_source(p.circuit), "parameter_values": _values(p.circuit, p.parameter_values),
                 "observables": p.observables.tolist(), "precision": p.precision} for p in coerced]

        def build(detail: JobDetail) -> PrimitiveResult[PubResult]:
            out = []
            for pub, result in zip(coerced, detail.results or [], strict=True):
                assert result is not None  # a completed job has every PUB's result
                shape = tuple(result.shape)
                evs = np.array(result.data["evs"], dtype=np.float64).reshape(shape)
                stds = np.array(result.data["stds"], dtype=np.float64).reshape(shape)
                out.append(PubResult(DataBin(evs=evs, stds=stds, shape=shape),
                                     metadata={"target_precision": pub.precision,
                                               "circuit_metadata": pub.circuit.metadata}))
            return PrimitiveResult(out, metadata={"version": 2, "job_id": str(detail.job_id)})

        return self._submit("estimate", wire, build)
