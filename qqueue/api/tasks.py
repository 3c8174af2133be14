"""Task endpoints: submit (one or a batch), read (with long-poll), list, cancel, retry (one or many), and the
record of a task's webhooks.

The submit path is kept lean for throughput: intake runs in the parser processes (the event loop only awaits
their answer) and the task is queued with one INSERT, whose trigger writes the history and wakes the workers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from qqueue.api import bodies, correlation, limits, submit
from qqueue.api.auth import principal_of, tenant_of, visible_tenant
from qqueue.api.context import ApiContext
from qqueue.api.errors import documented, worded
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
    MAX_RETRY_BATCH,
    BatchAnswer,
    BatchItem,
    BatchSubmission,
    BulkRetryAnswer,
    BulkRetryRequest,
    CancelAnswer,
    ErrorDetail,
    RetryAnswer,
    RetryRequest,
    SubmitAnswer,
    TaskDetail,
    TaskPage,
    TaskSubmission,
    WebhookDelivery,
    decode_item,
)
from qqueue.errors import IntakeError
from qqueue.store import reads
from qqueue.store.queue import Submitted, cancel_async, enqueue_many_async, retry_many_async
from qqueue.store.retries import RetryFilter, RetryResult, bulk_answer
from qqueue.tasks import TERMINAL_STATUSES, TaskSpec, TaskStatus

log = logging.getLogger("qqueue.api")


def _log_extra(task_id: uuid.UUID | None, cid: str, **more: Any) -> dict[str, Any]:
    extra = {"correlation_id": cid, **more}
    if task_id is not None:
        extra["task_id"] = str(task_id)
    return extra


async def _specs(
    subs: list[TaskSubmission | IntakeError], api: ApiContext, cid: str, key: str | None,
    hashed: Callable[[list[Any], submit.HashDecoder], Any], *, batch: bool, tenant: str | None,
) -> list[TaskSpec | IntakeError]:
    """Check submissions; their circuits are parsed by the API's parser processes while the loop serves others."""
    return await submit.to_specs(subs, api.intake, raw_kinds=api.settings.api_raw_kinds,
                                 default_timeout_s=api.settings.default_timeout_s, correlation_id=cid,
                                 idempotency_key=key, hashed=hashed, per_item_keys=batch, tenant=tenant,
                                 callback_allow=api.callback_allow)


class TaskController(Controller):
    """POST/GET /tasks, GET /tasks/{task_id} and its /webhooks, POST /tasks/{task_id}/cancel and /retry."""

    path = "/tasks"
    tags = ["tasks"]

    @post("/", status_code=201, summary="Submit a circuit",
          responses=submit_responses(SubmitAnswer, "the task"), opt={bodies.LAYOUT_OPT: bodies.TASK})
    async def submit_task(
        self, request: Request[Any, Any, Any], data: JSONBody[TaskSubmission], api: Api,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubmitAnswer]:
        """Preflight the circuit and queue it. Answers 201 with the task id and a Location header; 200 with
        the same task for a replay of an earlier request with the same Idempotency-Key."""
        cid, tenant = submit.caller(request.scope)
        [spec] = await _specs([data], api, cid, idempotency_key, lambda read, _: read[0], batch=False, tenant=tenant)
        if isinstance(spec, IntakeError):
            log.info("task rejected: %s", spec.message, extra=_log_extra(None, cid, kind=data.kind, error=spec.code))
            raise spec
        async with api.connection() as conn, limits.admitted(conn, api.settings, tenant, 1):
            [done] = await enqueue_many_async(conn, [spec])
        if done.created:
            log.info("task submitted", extra=_log_extra(done.id, cid, kind=spec.kind, queue=spec.queue))
            message = "Task submitted successfully."
        else:
            log.info("task submission replayed (Idempotency-Key)", extra=_log_extra(done.id, cid))
            message = "Task already submitted with this Idempotency-Key."
        answer = SubmitAnswer(task_id=done.id, status=TaskStatus(done.status), message=message,
                              submitted_at=done.created_at, correlation_id=done.correlation_id)
        return Response(answer, status_code=201 if done.created else 200, headers={"Location": f"/tasks/{done.id}"})

    @get("/{task_id:str}", summary="A task: status, result, history, queue position",
         responses=documented("400", "401", "404", "503"))
    async def get_task(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        api: Api,
        wait: Annotated[float | None, long_poll("the task ends", zero="; 0 answers at once")] = None,
    ) -> TaskDetail:
        """The task now, or with `wait`, the moment it ends (or when `wait` runs out, whichever is first)."""
        tenant = visible_tenant(request.scope)
        if not wait:
            return await _detail(api, task_id, tenant)
        # Watch before reading: an end between the read and the wait would otherwise be missed.
        with api.waiters.watch(task_id) as ended:
            detail = await _detail(api, task_id, tenant)
            if detail.status in TERMINAL_STATUSES:
                return detail
            await asyncio.wait([ended], timeout=wait)
        return await _detail(api, task_id, tenant)

    @get("/{task_id:str}/webhooks", summary="A task's webhook deliveries, newest first",
         responses=documented("400", "401", "404", "503"))
    async def task_webhooks(
        self, request: Request[Any, Any, Any], task_id: FromPath[uuid.UUID], api: Api
    ) -> list[WebhookDelivery]:
        """The notices of the task's ends sent to its `callback_url` (one per end: a retried task ends again),
        each with its sends so far and how the last went. Another tenant's task is a 404, as in GET
        /tasks/{task_id}."""
        return await api.read(reads.task_webhooks(task_id, visible_tenant(request.scope)))

    @get("/", summary="List tasks, newest first", responses=documented("400", "401", "503"))
    async def list_tasks(
        self, request: Request[Any, Any, Any], api: Api, status: Annotated[list[TaskStatus] | None, ANY_STATUS] = None,
        queue: NameFilter = None, kind: NameFilter = None,
        tags: TagFilter = None,
        created_after: CreatedFilter = None, created_before: CreatedFilter = None, limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> TaskPage:
        """Tasks matching every filter given, newest first, `limit` per page (keyset pagination)."""
        return await api.read(reads.task_page(reads.ListFilter(
            tenant=visible_tenant(request.scope), statuses=[s.value for s in status] if status else None, queue=queue,
            kind=kind, tags=tags, created_after=created_after, created_before=created_before, limit=limit,
            cursor=cursor)))

    @post("/{task_id:str}/cancel", status_code=200, summary="Cancel a task",
          responses={202: ResponseSpec(data_container=CancelAnswer, description="Running: asked to stop"),
                     **documented("400", "401", "404", "409", "503")})
    async def cancel_task(
        self, request: Request[Any, Any, Any], task_id: FromPath[uuid.UUID], api: Api
    ) -> Response[CancelAnswer]:
        """A pending task is cancelled at once (200); a running one is asked to stop (202) and ends
        'cancelled' shortly. A finished task cannot be cancelled (409)."""
        cid = correlation.from_scope(request.scope)
        async with api.connection() as conn:
            outcome = await cancel_async(conn, task_id, tenant=visible_tenant(request.scope))
        log.info("task %s", outcome.replace("_", " "), extra=_log_extra(task_id, cid))
        if outcome == "cancelled":
            return Response(CancelAnswer(task_id=task_id, status="cancelled", message="Task cancelled."))
        answer = CancelAnswer(task_id=task_id, status="cancel_requested",
                              message="Cancellation requested; the running task will stop shortly.")
        return Response(answer, status_code=202)


    @post("/{task_id:str}/retry", status_code=200, summary="Retry a failed or cancelled task",
          responses=documented("400", "401", "404", "409", "429", "503"))
    async def retry_task(
        self, request: Request[Any, Any, Any], task_id: FromPath[uuid.UUID], api: Api,
        data: JSONBody[RetryRequest | None] = None,
    ) -> RetryAnswer:
        """Send a failed or cancelled task back to 'pending', due now, its error cleared, with as many attempts
        again as it was submitted with (its attempt counter keeps counting). Its history keeps every row and
        gains one saying who retried it, and why (`reason`). A task in any other state: 409. A task of a job
        re-opens the job, which then finishes again with its tasks."""
        cid = correlation.from_scope(request.scope)
        result = await retry_as_caller(request, api, RetryFilter(ids=[task_id]), data.reason if data else None)
        previous = result.outcome_of(task_id)
        log.info("task retried (was %s)", previous, extra=_log_extra(task_id, cid))
        return RetryAnswer(task_id=task_id, status="pending", previous_status=previous,
                           message=f"Task queued again (it was {previous}).")

    @post("/retry", status_code=200, summary="Retry the failed or cancelled tasks matching the listing's filters",
          responses=documented("400", "401", "429", "503"))
    async def retry_tasks(
        self, request: Request[Any, Any, Any], data: JSONBody[BulkRetryRequest], api: Api
    ) -> BulkRetryAnswer:
        """Retry, as POST /tasks/{task_id}/retry does, the caller's tasks matching every filter given, oldest
        first, at most `limit` (1,000 at most) per request: while `more` is true, send it again. With `dry_run`
        nothing changes and the answer says what would be retried."""
        cid = correlation.from_scope(request.scope)
        where = RetryFilter(statuses=data.status, queue=data.queue, kind=data.kind, tags=data.tags or None,
                            created_after=data.created_after, created_before=data.created_before)
        result = await retry_as_caller(request, api, where, data.reason, dry_run=data.dry_run, limit=data.limit)
        answer = bulk_answer(result, data.limit)
        if not data.dry_run:
            log.info("bulk retry: %d tasks queued again", answer.retried,
                     extra={"correlation_id": cid, "count": answer.retried})
        return answer


async def retry_as_caller(
    request: Request[Any, Any, Any], api: ApiContext, where: RetryFilter, reason: str | None, *,
    dry_run: bool = False, limit: int = MAX_RETRY_BATCH,
) -> RetryResult:
    """Retry the caller's tasks `where` selects, the history noting who asked and why. A tenant's retry is
    undone (429) if it leaves the tenant over its pending limit: the tasks it re-queues wait like submissions."""
    principal = principal_of(request.scope)
    note = f"retried by {principal.describe()}" + (f": {reason}" if reason else "")
    tenant = visible_tenant(request.scope)
    async with api.connection() as conn, conn.transaction():
        result = await retry_many_async(conn, where, note=note, tenant=tenant, dry_run=dry_run, limit=limit)
        if result.retried and not dry_run:
            await limits.check_pending(conn, api.settings, tenant)
    return result


class BatchController(Controller):
    """POST /tasks/batch, under its own (larger) body limit."""

    path = "/tasks/batch"
    tags = ["tasks"]

    @post("/", status_code=201, summary="Submit up to 1,000 circuits at once",
          responses=submit_responses(BatchAnswer, "every valid item is a task", refused="No item was valid"),
          opt={bodies.LAYOUT_OPT: bodies.BATCH})
    async def submit_batch(
        self, request: Request[Any, Any, Any], data: JSONBody[BatchSubmission], api: Api,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[BatchAnswer]:
        """Preflight every item and queue the valid ones in one statement (one transaction).

        `items` follows the request order: a task id, or the item's preflight error. Answers 201 when new
        tasks were queued (some items may still be rejected: status "partial"), 200 when every valid item was
        an Idempotency-Key replay, 422 (same body) when no item was valid. With an Idempotency-Key, item i is keyed
        "{key}/{i}": replaying the batch returns the same ids; a different body with the same key is a 409.
        """
        cid = correlation.from_scope(request.scope)
        tenant = tenant_of(request.scope)
        subs: list[TaskSubmission | IntakeError] = []
        decoding = bodies.Decoding(api.settings.api_max_body_bytes)
        for index, item in enumerate(data.tasks):
            try:
                if isinstance(item, msgspec.Raw):
                    item = await decoding.decode(item, bodies.TASK, where=f"$.tasks[{index}]")
                subs.append(decode_item(index, item))
            except msgspec.ValidationError as exc:
                subs.append(IntakeError(f"Invalid request: {worded(str(exc))}", code="invalid_request"))
            except (msgspec.DecodeError, bodies.BodyTooLarge) as exc:
                subs.append(IntakeError(f"Invalid request: {exc}", code="invalid_request"))
            except RecursionError:
                subs.append(IntakeError(f"Invalid request: tasks[{index}] is nested too deeply",
                                        code="invalid_request"))
        # Over what was asked: the items that decoded as submissions (defaults filled in, however spelt), and
        # the others as plain JSON.
        prepared = await _specs(subs, api, cid, idempotency_key, lambda read, decoder: [
            s if isinstance(s, TaskSubmission) else decoder.decoded(item)
            for s, item in zip(read, data.tasks, strict=True)], batch=True, tenant=tenant)
        specs = [p for p in prepared if isinstance(p, TaskSpec)]
        done: list[Submitted] = []
        if specs:
            async with api.connection() as conn, limits.admitted(conn, api.settings, tenant, len(specs)):
                done = await enqueue_many_async(conn, specs)
        results = iter(done)
        items = []
        for index, item in enumerate(prepared):
            if isinstance(item, IntakeError):
                items.append(BatchItem(index=index, error=ErrorDetail(
                    code=item.code, message=item.message, line=item.line, column=item.column,
                    details=item.details or None)))
            else:
                result = next(results)
                items.append(BatchItem(index=index, task_id=result.id, created=result.created))
        queued, rejected = len(specs), len(prepared) - len(specs)
        created = sum(1 for d in done if d.created)
        log.info("batch submitted: %d queued (%d new), %d rejected", queued, created, rejected,
                 extra={"correlation_id": cid, "count": queued})
        if log.isEnabledFor(logging.DEBUG):
            for d in done:
                log.debug("task submitted in a batch", extra=_log_extra(d.id, cid))
        code = 201 if created else 200
        status: Literal["ok", "partial", "error"]
        if not queued:
            status, code, message = "error", 422, "No task was queued: every item was rejected."
        elif rejected:
            status, message = "partial", f"{queued} tasks queued; {rejected} rejected."
        else:
            status, message = "ok", f"{queued} tasks queued."
        answer = BatchAnswer(status=status, message=message, queued=queued, rejected=rejected, correlation_id=cid,
                             items=items)
        return Response(answer, status_code=code)


async def _detail(api: ApiContext, task_id: uuid.UUID, tenant: str | None) -> TaskDetail:
    return await api.read(reads.task_detail(task_id, tenant))
