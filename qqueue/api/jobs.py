"""Job endpoints: submit many PUBs of one primitive under one id, read (with long-poll and the assembled
result), list, cancel, and the record of its webhooks.

A job is written in one transaction: its row and every task of its PUBs (one per PUB, or one per part of a PUB
with more parameter sets than the chunk size). Each PUB goes through intake in the parser processes first;
one refused PUB refuses the job, and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from qqueue import jobs
from qqueue.api import bodies, correlation, limits, submit
from qqueue.api.auth import visible_tenant
from qqueue.api.context import ApiContext
from qqueue.api.errors import documented
from qqueue.api.params import (
    ANY_STATUS,
    Api,
    CreatedFilter,
    IdempotencyKey,
    NameFilter,
    PageCursor,
    PageLimit,
    TagFilter,
    long_poll,
    submit_responses,
)
from qqueue.api.schemas import (
    JobCancelAnswer,
    JobDetail,
    JobFailure,
    JobPage,
    JobProgress,
    JobStatus,
    JobSubmission,
    JobSubmitAnswer,
    JobTask,
    PubResult,
    WebhookDelivery,
)
from qqueue.errors import IdempotencyConflictError, IntakeError, JobNotFoundError
from qqueue.intake import IntakeRequest, PreparedTask
from qqueue.store import db, job_reads, reads
from qqueue.store.queue import enqueue_many_async
from qqueue.tasks import TERMINAL_STATUSES, TaskSpec, new_task_id

log = logging.getLogger("qqueue.api")

#: Shots of a sample PUB when neither it nor its job says (Qiskit's default).
DEFAULT_SHOTS = 1024
#: Joins of large results at once per API process: each holds its job's results as Python objects (several
#: times their JSON size), so they wait for each other rather than add up.
_LARGE_JOINS = asyncio.Semaphore(1)
_decoder = msgspec.json.Decoder()


def _requests(data: JobSubmission, api: ApiContext, *, echo_inputs: bool) -> list[IntakeRequest]:
    """One intake request per PUB; a PUB's own shots or precision win over the job's."""
    options = msgspec.to_builtins(data.options)
    chunk = data.chunk_size or api.settings.job_chunk_size
    timeout = data.timeout_s or api.settings.default_timeout_s
    if data.kind == "sample" and data.precision is not None:
        raise IntakeError("a sample job takes shots, not a precision", code="invalid_request")
    if data.kind == "estimate" and data.shots is not None:
        raise IntakeError("an estimate job takes a precision, not shots", code="invalid_request")
    out = []
    for index, pub in enumerate(data.pubs):
        if "\x00" in pub.qc:
            raise _refusal(index, IntakeError("qc contains a NUL character", code="invalid_request"))
        if data.kind == "sample":
            shots, precision = pub.shots or data.shots or DEFAULT_SHOTS, pub.precision
        else:
            if pub.shots is not None:
                raise _refusal(index, IntakeError("an estimate PUB takes a precision, not shots",
                                                  code="invalid_request"))
            shots = DEFAULT_SHOTS
            precision = pub.precision if pub.precision is not None else data.precision or 0.0
        out.append(IntakeRequest(qc=pub.qc, kind=data.kind, shots=shots, options=options,
                                 parameter_values=pub.parameter_values, observables=pub.observables,
                                 precision=precision, timeout_s=timeout, chunk_size=chunk, echo_inputs=echo_inputs))
    return out


def _refusal(index: int, exc: IntakeError) -> IntakeError:
    """A PUB's refusal as the job's, naming the PUB."""
    return IntakeError(f"pubs[{index}]: {exc.message}", code=exc.code, line=exc.line, column=exc.column,
                       details={**(exc.details or {}), "pub": index})


async def _replayed(api: ApiContext, key: str, tenant: str | None, digest: str) -> JobSubmitAnswer | None:
    row = await api.read(job_reads.job_by_key(key, tenant))
    if row is None:
        return None
    if row.request_hash != digest:
        raise IdempotencyConflictError(key)
    return JobSubmitAnswer(job_id=row.id, status=row.status, message="Job already submitted with this "
                           "Idempotency-Key.", pubs=row.pubs, tasks_total=row.tasks_total,
                           submitted_at=row.created_at, correlation_id=row.correlation_id)


class JobController(Controller):
    """POST/GET /jobs, GET /jobs/{job_id} and its /webhooks, POST /jobs/{job_id}/cancel."""

    path = "/jobs"
    tags = ["jobs"]

    @post("/", status_code=201, summary="Submit a primitive job (many PUBs)",
          responses=submit_responses(JobSubmitAnswer, "the job"), opt={bodies.LAYOUT_OPT: bodies.JOB})
    async def submit_job(
        self, request: Request[Any, Any, Any], data: JSONBody[JobSubmission], api: Api,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[JobSubmitAnswer]:
        """Preflight every PUB and queue the job: one task per PUB, or per chunk of its parameter sets. Answers
        201 with the job id; 200 with the same job for a replay with the same Idempotency-Key. One PUB refused
        refuses the job (422, its index in `error.details.pub`), and nothing is queued."""
        cid, tenant = submit.caller(request.scope)
        prepared = await api.intake.prepare_many_async(_requests(data, api, echo_inputs=bool(idempotency_key)))
        for index, item in enumerate(prepared):
            if isinstance(item, IntakeError):
                log.info("job rejected: pubs[%d]: %s", index, item.message,
                         extra={"correlation_id": cid, "error": item.code})
                raise _refusal(index, item)
        # The hash needs the PUBs' inputs as intake read them, so a replay is found after intake; before the
        # other checks, which the first submission passed (a callback's host need not resolve again).
        digest = submit.request_hash(msgspec.structs.replace(data, pubs=[
            submit.as_read(pub, item) for pub, item in zip(data.pubs, prepared, strict=True)])) \
            if idempotency_key else None
        if idempotency_key and digest and (earlier := await _replayed(api, idempotency_key, tenant, digest)):
            return Response(earlier, status_code=200, headers={"Location": f"/jobs/{earlier.job_id}"})
        submit.check_metadata(data.metadata)
        if data.callback_url is not None:
            await submit.check_callback(data.callback_url, api.callback_allow)
        template = TaskSpec(kind=data.kind, queue=data.queue, priority=data.priority,
                            max_attempts=data.max_attempts, timeout_s=data.timeout_s, correlation_id=cid,
                            tags=data.tags, tenant=tenant, job_callback=True if data.callback_url else None)
        plan = jobs.plan(new_task_id(), data.kind, [p for p in prepared if isinstance(p, PreparedTask)], template)
        if plan.result_bytes > jobs.MAX_JOB_RESULT_BYTES:
            raise IntakeError(f"the job's results could reach {plan.result_bytes // 2**20} MiB; the limit is "
                              f"{jobs.MAX_JOB_RESULT_BYTES // 2**20} MiB: split it into several jobs, or ask for fewer "
                              "shots or parameter sets", code="result_too_large",
                              details={"result_bytes": plan.result_bytes, "limit_bytes": jobs.MAX_JOB_RESULT_BYTES})
        if len(plan.tasks) > jobs.MAX_JOB_TASKS:
            raise IntakeError(f"the job would make {len(plan.tasks)} tasks; the limit is {jobs.MAX_JOB_TASKS}: use "
                              "a larger chunk_size or fewer PUBs", code="too_many_tasks",
                              details={"tasks": len(plan.tasks), "limit": jobs.MAX_JOB_TASKS})
        async with api.connection() as conn, limits.admitted(conn, api.settings, tenant, len(plan.tasks)):
            async with conn.transaction():
                row = await db.run_async(conn, "job_insert", **jobs.row(
                    plan, kind=data.kind, queue=data.queue, tenant=tenant, idempotency_key=idempotency_key,
                    request_hash=digest, correlation_id=cid, tags=data.tags, metadata=data.metadata,
                    callback_url=data.callback_url))
                if row is not None:
                    await enqueue_many_async(conn, plan.tasks)
        if row is None:
            # A concurrent request with the same key won the insert.
            assert idempotency_key and digest
            earlier = await _replayed(api, idempotency_key, tenant, digest)
            if earlier is None:
                raise IdempotencyConflictError(idempotency_key)
            return Response(earlier, status_code=200, headers={"Location": f"/jobs/{earlier.job_id}"})
        log.info("job submitted: %d PUBs in %d tasks", len(data.pubs), len(plan.tasks),
                 extra={"correlation_id": cid, "job_id": str(plan.id), "kind": data.kind})
        answer = JobSubmitAnswer(job_id=plan.id, status="pending", message="Job submitted successfully.",
                                 pubs=len(data.pubs), tasks_total=len(plan.tasks), submitted_at=row["created_at"],
                                 correlation_id=cid)
        return Response(answer, status_code=201, headers={"Location": f"/jobs/{plan.id}"})

    @get("/{job_id:str}", summary="A job: status, progress, failures and the assembled result",
         responses=documented("400", "401", "404", "503"))
    async def get_job(
        self, request: Request[Any, Any, Any], job_id: FromPath[uuid.UUID], api: Api,
        wait: Annotated[float | None, long_poll("every task of the job has ended")] = None,
        results: Annotated[
            bool, QueryParameter(required=False, description="false leaves the results out (status only).")
        ] = True,
    ) -> JobDetail:
        """The job now, or with `wait`, the moment it ends (or when `wait` runs out)."""
        tenant = visible_tenant(request.scope)
        deadline = time.monotonic() + (wait or 0)
        while True:
            detail = await _detail(api, job_id, tenant, results=results)
            remaining = deadline - time.monotonic()
            if detail.status in TERMINAL_STATUSES or remaining <= 0:
                return detail
            ids = await api.read(job_reads.job_unfinished(job_id))
            with contextlib.ExitStack() as stack:
                ended = [stack.enter_context(api.waiters.watch(i)) for i in ids]
                # Watched before re-reading: a task ending in between would otherwise be missed.
                again = await api.read(job_reads.job_unfinished(job_id))
                if again:
                    await asyncio.wait(ended, timeout=remaining)

    @get("/{job_id:str}/webhooks", summary="A job's webhook deliveries, newest first",
         responses=documented("400", "401", "404", "503"))
    async def job_webhooks(
        self, request: Request[Any, Any, Any], job_id: FromPath[uuid.UUID], api: Api
    ) -> list[WebhookDelivery]:
        """The notices of the job's end sent to its `callback_url` (one per end: a job re-opened by a retry ends
        again), each with its sends so far and how the last went. Another tenant's job is a 404, as in GET
        /jobs/{job_id}."""
        return await api.read(reads.job_webhooks(job_id, visible_tenant(request.scope)))

    @get("/", summary="List jobs, newest first", responses=documented("400", "401", "503"))
    async def list_jobs(
        self, request: Request[Any, Any, Any], api: Api, status: Annotated[list[JobStatus] | None, ANY_STATUS] = None,
        queue: NameFilter = None, kind: NameFilter = None,
        tags: TagFilter = None,
        created_after: CreatedFilter = None, created_before: CreatedFilter = None, limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> JobPage:
        """Jobs matching every filter given, newest first, `limit` per page (keyset pagination)."""
        return await api.read(job_reads.job_page(reads.ListFilter(
            tenant=visible_tenant(request.scope), statuses=status, queue=queue, kind=kind, tags=tags,
            created_after=created_after, created_before=created_before, limit=limit, cursor=cursor)))

    @post("/{job_id:str}/cancel", status_code=200, summary="Cancel every unfinished task of a job",
          responses=documented("400", "401", "404", "503"))
    async def cancel_job(
        self, request: Request[Any, Any, Any], job_id: FromPath[uuid.UUID], api: Api
    ) -> JobCancelAnswer:
        """Pending tasks are cancelled at once, running ones asked to stop; finished ones keep their results.
        Cancelling a finished job changes nothing (and says so)."""
        async with api.connection() as conn:
            row = await db.run_async(conn, "job_cancel", id=job_id, tenant=visible_tenant(request.scope))
        if not row["found"]:
            raise JobNotFoundError(job_id)
        log.info("job cancel: %d cancelled, %d asked to stop", row["cancelled"], row["cancel_requested"],
                 extra={"correlation_id": correlation.from_scope(request.scope), "job_id": str(job_id)})
        if not row["cancelled"] and not row["cancel_requested"]:
            message = "Nothing to cancel: every task of the job had already finished."
        else:
            message = (f"{row['cancelled']} pending tasks cancelled; {row['cancel_requested']} running tasks asked "
                       "to stop.")
        return JobCancelAnswer(job_id=job_id, cancelled=row["cancelled"], cancel_requested=row["cancel_requested"],
                               message=message)


async def _detail(api: ApiContext, job_id: uuid.UUID, tenant: str | None, *, results: bool) -> JobDetail:
    job = await api.read(job_reads.job_state(job_id, tenant))
    finished = job.status in TERMINAL_STATUSES
    # Results are read only once there is a whole job to join.
    rows = await api.read(job_reads.job_tasks(job_id, results=results and finished))
    if finished and job.seen_finished_at is None:
        async with api.connection() as conn:
            await db.run_async(conn, "job_mark_finished", id=job_id, finished_at=job.finished_at)
    failures = [JobFailure(pub=r.job_pub, part=r.job_part, task_id=r.id, status=r.status, error=r.error)
                for r in rows if r.status in ("failed", "cancelled")]
    progress = JobProgress(tasks_done=job.tasks_done, tasks_total=job.tasks_total, pending=job.pending,
                           running=job.running, completed=job.completed, failed=job.failed, cancelled=job.cancelled)
    return JobDetail(
        job_id=job.id, kind=job.kind, status=job.status,
        message=jobs.status_message(job.status, job.tasks_done, job.tasks_total, job.failed, job.cancelled),
        pubs=job.pubs, progress=progress, queue=job.queue, tags=job.tags, metadata=job.metadata,
        correlation_id=job.correlation_id, callback_url=job.callback_url, created_at=job.created_at,
        finished_at=job.finished_at,
        cancel_requested_at=job.cancel_requested_at, failures=failures,
        results=await _joined(job, rows) if results and finished else None,
        tasks=[JobTask(task_id=r.id, pub=r.job_pub, part=r.job_part, start=r.start, stop=r.stop, status=r.status,
                       worker_id=r.worker_id) for r in rows])


#: Results larger than this, as JSON, are decoded and joined off the event loop.
_JOIN_INLINE_BYTES = 256 * 1024


async def _joined(job: job_reads.JobRow, rows: list[job_reads.JobTaskRow]) -> list[PubResult | None]:
    size = sum(len(r.result_json or "") for r in rows)
    if size <= _JOIN_INLINE_BYTES:
        return _results(job, rows)
    async with _LARGE_JOINS:
        return await asyncio.to_thread(_results, job, rows)


def _results(job: job_reads.JobRow, rows: list[job_reads.JobTaskRow]) -> list[PubResult | None]:
    """Each PUB's result joined from its parts; None for a PUB with a part that did not complete."""
    by_pub: dict[int, list[job_reads.JobTaskRow]] = {}
    for r in rows:
        by_pub.setdefault(r.job_pub, []).append(r)
    out: list[PubResult | None] = []
    for pub, shape in enumerate(job.shapes):
        parts = by_pub.get(pub, [])
        if not parts or any(p.result_json is None for p in parts):
            out.append(None)
            continue
        joined = jobs.join(job.kind, shape, [_decoder.decode(p.result_json) for p in parts if p.result_json])
        out.append(PubResult(shape=joined["shape"], data=joined["data"], metadata=joined["metadata"]))
    return out
