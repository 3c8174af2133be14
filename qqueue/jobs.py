"""Jobs: many PUBs of one primitive under one id. Pure: from prepared PUBs to the tasks that run them, and from
the tasks' results back to one result per PUB, in order.

A PUB is one task, or several parts when it has more parameter sets than the chunk size: each part holds
contiguous elements of the PUB's broadcast shape, flattened row-major, so joining the parts' flat arrays in
part order gives the PUB's arrays.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from qqueue.intake.model import PreparedTask
from qqueue.tasks import TaskSpec

#: Most tasks one job may make (its PUBs' parts together), and the most its results may hold together (every
#: reader of the job loads them: GET /jobs/{id} joins them in one answer).
MAX_JOB_TASKS = 10_000
MAX_JOB_RESULT_BYTES = 64 * 1024**2


class JobPlan(msgspec.Struct, kw_only=True, frozen=True):
    """A job ready to be written: its row's fields and its tasks."""

    id: uuid.UUID
    shapes: list[list[int]]
    sizes: list[int]
    tasks: list[TaskSpec]
    #: Upper bound of the size of all its results, as intake measured each PUB's.
    result_bytes: int


def plan(job_id: uuid.UUID, kind: str, prepared: Sequence[PreparedTask], template: TaskSpec) -> JobPlan:
    """The tasks of a job whose PUBs intake prepared; `template` holds what every task shares (queue, priority,
    attempts, timeout, tags, tenant, correlation id)."""
    tasks: list[TaskSpec] = []
    shapes: list[list[int]] = []
    for pub, task in enumerate(prepared):
        shape = task.shape if task.shape is not None else []
        shapes.append(shape)
        for part, piece in enumerate(task.parts or [task]):
            tasks.append(msgspec.structs.replace(
                template, kind=kind, payload=piece.payload, profile=piece.profile, cache_key=piece.cache_key,
                job_id=job_id, job_pub=pub, job_part=part))
    return JobPlan(id=job_id, shapes=shapes, sizes=[math.prod(s) for s in shapes], tasks=tasks,
                   result_bytes=sum(int(p.profile.get("result_bytes") or 0) for p in prepared))


def row(plan: JobPlan, *, kind: str, queue: str, tenant: str | None, idempotency_key: str | None = None,
        request_hash: str | None = None, correlation_id: str | None = None, tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None, callback_url: str | None = None) -> dict[str, Any]:
    """The parameters of the `job_insert` query for a planned job."""
    return {"id": plan.id, "kind": kind, "queue": queue, "tenant": tenant, "pubs": len(plan.shapes),
            "shapes": msgspec.json.encode(plan.shapes).decode(), "sizes": plan.sizes, "tasks_total": len(plan.tasks),
            "idempotency_key": idempotency_key, "request_hash": request_hash, "correlation_id": correlation_id,
            "tags": list(tags), "metadata": msgspec.json.encode(metadata or {}).decode(), "callback_url": callback_url}


def join(kind: str, shape: list[int], parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One PUB's result from its parts' results, in part order (a PUB of one part is returned as it is, with
    the PUB's shape)."""
    first = parts[0]
    metadata = {k: v for k, v in (first.get("metadata") or {}).items() if k not in ("sets", "simulator_metadata")}
    metadata["seeds"] = [p.get("seed") for p in parts]
    metadata["tasks"] = len(parts)
    if kind == "estimate":
        data: dict[str, Any] = {"evs": [v for p in parts for v in p["data"]["evs"]],
                                "stds": [v for p in parts for v in p["data"]["stds"]]}
    else:
        data = {}
        for name, register in first["data"].items():
            joined: dict[str, Any] = {"num_bits": register["num_bits"],
                                      "counts": [c for p in parts for c in p["data"][name]["counts"]]}
            if "samples" in register:
                joined["samples"] = [s for p in parts for s in p["data"][name]["samples"]]
            data[name] = joined
    return {"shape": shape, "data": data, "metadata": metadata}


def status_message(status: str, done: int, total: int, failed: int, cancelled: int) -> str:
    """The job's state in a sentence."""
    if status == "completed":
        return f"Job completed: all {total} tasks succeeded."
    if status == "failed":
        return f"Job failed: {failed} of {total} tasks failed" + (f", {cancelled} were cancelled." if cancelled
                                                                  else "; the other PUBs' results are kept.")
    if status == "cancelled":
        return f"Job cancelled: {cancelled} of {total} tasks were cancelled."
    if status == "pending":
        return f"Job is queued: {total} tasks wait for a worker."
    return f"Job is running: {done} of {total} tasks finished."
