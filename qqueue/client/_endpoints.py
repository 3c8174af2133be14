"""Every endpoint of the qqueue HTTP API, defined once for both clients.

Each endpoint is a function of the `Operations` that returns the `Exchange` (or, for the iterators, the `Paging`)
it runs; its parameters, type hints and docstring are those of the client method. `Endpoint` and `Pages`
(`qqueue.client._methods`) turn one into a method of `Client` (blocking) and of `AsyncClient` (awaited), so the
two clients cannot drift apart: `qqueue.client.client` lists the endpoints once, and each client only says how it
sends a request and sleeps.
"""

from __future__ import annotations

import builtins
import inspect
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec

from qqueue.api.schemas import (
    BackendInfo,
    BatchAnswer,
    BulkRetryAnswer,
    CancelAnswer,
    Health,
    JobCancelAnswer,
    JobDetail,
    JobPage,
    JobSubmission,
    JobSubmitAnswer,
    JobSummary,
    QueueControls,
    QueueLimit,
    QueueStats,
    RetryAnswer,
    SimulationOptions,
    SubmitAnswer,
    TaskDetail,
    TaskPage,
    TaskSubmission,
    TaskSummary,
    WebhookDelivery,
)
from qqueue.client._protocol import (
    RETRY_STATUSES,
    Call,
    Exchange,
    Operations,
    Paging,
    Params,
    encode,
    query,
    segment,
)

P = ParamSpec("P")
T = TypeVar("T")

TaskId = uuid.UUID | str
Statuses = str | Sequence[str] | None


# --- tasks ----------------------------------------------------------------------------------------------------

def submit(
    ops: Operations,
    /,
    qc: str | None,
    *,
    kind: str = "simulate",
    shots: int = 1024,
    options: SimulationOptions | Mapping[str, Any] | None = None,
    queue: str = "default",
    priority: int = 0,
    tags: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
    run_at: datetime | None = None,
    delay_s: float | None = None,
    max_attempts: int = 3,
    timeout_s: float | None = None,
    parameter_values: Any = None,
    observables: Any = None,
    precision: float | None = None,
    outputs: Sequence[str] | None = None,
    idempotency_key: str | None = None,
    payload: Mapping[str, Any] | None = None,
    callback_url: str | None = None,
) -> Exchange[SubmitAnswer]:
    """Queue one task (POST /tasks); fields left None are not sent, so the server's defaults apply.

    The Idempotency-Key is `idempotency_key`, or one made for this call and sent on every retry, so a
    submit whose answer was lost is never queued twice. `payload` is for the test kinds without a circuit.
    `callback_url` is POSTed a signed `WebhookEvent` when the task ends (`qqueue.webhooks.verify` checks it).
    Raises `ApiError` (422 with `code`, `line`, `column` for a circuit preflight refuses).
    """
    # Unset fields (None, or no tags) are left out so that the server's defaults apply; `TaskSubmission`
    # checks the values at the server.
    fields: dict[str, Any] = {
        "qc": qc, "kind": kind, "shots": shots, "options": options, "queue": queue, "priority": priority,
        "tags": builtins.list(tags) or None, "metadata": metadata, "run_at": run_at, "delay_s": delay_s,
        "max_attempts": max_attempts, "timeout_s": timeout_s, "parameter_values": parameter_values,
        "observables": observables, "precision": precision, "outputs": builtins.list(outputs) if outputs else None,
        "payload": payload, "callback_url": callback_url,
    }
    body = {name: value for name, value in fields.items() if value is not None}
    return ops.submitting("/tasks", SubmitAnswer, body, idempotency_key)


def submit_many(
    ops: Operations, /, submissions: Sequence[TaskSubmission | Mapping[str, Any]], *,
    idempotency_key: str | None = None
) -> Exchange[BatchAnswer]:
    """Queue up to 1,000 tasks in one transaction (POST /tasks/batch). Items are `TaskSubmission`s or dicts
    of the same fields. An item the server refuses has its `error` at its index of `items` while the
    others are queued; when every item is refused the answer's status is "error" (HTTP 422)."""
    # That 422 is still a BatchAnswer, each item's reason at its index, as the partial answers are.
    return ops.submitting("/tasks/batch", BatchAnswer, {"tasks": builtins.list(submissions)}, idempotency_key,
                          ok=frozenset({200, 201, 422}))


def get(ops: Operations, /, task_id: TaskId, *, wait: float | None = None) -> Exchange[TaskDetail]:
    """The task (GET /tasks/{id}); with `wait` (0-60 s), answered as soon as it ends, or after `wait`."""
    return ops.exchange(Call("GET", f"/tasks/{segment(task_id)}", TaskDetail, params=query(wait=wait),
                             extra_timeout_s=wait or 0.0))


def wait(ops: Operations, /, task_id: TaskId, *, timeout: float | None = None) -> Exchange[TaskDetail]:
    """The task once completed, failed or cancelled, by long-polls of at most 60 s each. Raises
    `WaitTimeoutError` (a `TimeoutError` naming the task and its last status) after `timeout` seconds."""
    return ops.waiting("task", task_id, lambda s: get(ops, task_id, wait=s), lambda d: d.status.value, timeout)


def cancel(ops: Operations, /, task_id: TaskId) -> Exchange[CancelAnswer]:
    """Cancel a task (POST /tasks/{id}/cancel): status "cancelled" when it was pending, "cancel_requested"
    when it runs (its worker stops it). A finished task raises `ApiError` 409."""
    return ops.exchange(Call("POST", f"/tasks/{segment(task_id)}/cancel", CancelAnswer, ok=frozenset({200, 202})))


def webhooks(ops: Operations, /, task_id: TaskId) -> Exchange[builtins.list[WebhookDelivery]]:
    """The task's webhook deliveries, newest first (GET /tasks/{id}/webhooks): each notice of its end sent to its
    `callback_url`, with its sends so far and how the last went."""
    return ops.exchange(Call("GET", f"/tasks/{segment(task_id)}/webhooks", builtins.list[WebhookDelivery]))


def retry(ops: Operations, /, task_id: TaskId, *, reason: str | None = None) -> Exchange[RetryAnswer]:
    """Send a failed or cancelled task back to 'pending' (POST /tasks/{id}/retry) with as many attempts again
    as it was submitted with; `reason` goes into its history. Any other state raises `ApiError` 409."""
    return ops.exchange(Call("POST", f"/tasks/{segment(task_id)}/retry", RetryAnswer,
                             body=encode({"reason": reason} if reason else {}),
                             headers={"Content-Type": "application/json"}))


def retry_many(
    ops: Operations,
    /,
    *,
    status: Statuses = "failed",
    queue: str | None = None,
    kind: str | None = None,
    tags: Sequence[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    dry_run: bool = False,
    limit: int = 1000,
    reason: str | None = None,
) -> Exchange[BulkRetryAnswer]:
    """Retry the failed (or cancelled: `status`) tasks matching the filters of `list` (POST /tasks/retry),
    oldest first, at most `limit` (at most 1,000) per call; call again while the answer's `more` is true.
    `dry_run` changes nothing and answers what would be retried."""
    fields: dict[str, Any] = {
        "status": [status] if isinstance(status, str) else status, "queue": queue, "kind": kind,
        "tags": builtins.list(tags) if tags else None, "created_after": created_after,
        "created_before": created_before, "dry_run": dry_run, "limit": limit, "reason": reason}
    body = {name: value for name, value in fields.items() if value is not None}
    return ops.exchange(Call("POST", "/tasks/retry", BulkRetryAnswer, body=encode(body),
                             headers={"Content-Type": "application/json"}))


# --- listings: GET /tasks and GET /jobs take the same filters -------------------------------------------------

def filters(
    *,
    status: Statuses = None,
    queue: str | None = None,
    kind: str | None = None,
    tags: Sequence[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Params:
    """The query of a listing: any of `status`, every one of `tags`, created in the range, a page of `limit`
    from `cursor` (a page's `next_cursor`)."""
    return query(status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
                 created_before=created_before, limit=limit, cursor=cursor)


def listing(name: str, path: str, page: type[T], shape: Callable[P, Params], doc: str
            ) -> Callable[Concatenate[Operations, P], Exchange[T]]:
    """The endpoint `name`: one `page` of GET `path`, taking the parameters of `shape` (`filters`)."""
    def endpoint(ops: Operations, /, *args: P.args, **kwargs: P.kwargs) -> Exchange[T]:
        return ops.exchange(Call("GET", path, page, params=shape(*args, **kwargs)))
    return _described(endpoint, name, doc, shape, f"Exchange[{page.__name__}]")


def paged(name: str, pages: Callable[Concatenate[Operations, P], Exchange[Any]], item: type[T], doc: str
          ) -> Callable[Concatenate[Operations, P], Paging[T]]:
    """The endpoint `name`: every `item` of the listing `pages`, from its `cursor` on, page after page."""
    page: Callable[..., Exchange[Any]] = pages
    signature = inspect.signature(pages)

    def endpoint(ops: Operations, /, *args: Any, **kwargs: Any) -> Paging[T]:
        signature.bind(ops, *args, **kwargs)  # a wrong argument fails at the call, as it would on `pages`
        cursor = kwargs.pop("cursor", None)
        return ops.paging(lambda c: page(ops, *args, cursor=c, **kwargs), cursor)
    return _described(endpoint, name, doc, pages, f"Paging[{item.__name__}]")


def _described(endpoint: Callable[..., Any], name: str, doc: str, like: Callable[..., Any], returns: str) -> Any:
    """`endpoint` named `name`, documented by `doc`, with the parameters of `like` (after the operations, which
    it takes first or not) and the return annotation `returns`."""
    signature = inspect.signature(like)
    parameters = builtins.list(signature.parameters.values())
    if not parameters or parameters[0].name != "ops":
        parameters.insert(0, inspect.Parameter("ops", inspect.Parameter.POSITIONAL_ONLY, annotation="Operations"))
    vars(endpoint)["__signature__"] = signature.replace(parameters=parameters, return_annotation=returns)
    endpoint.__annotations__ = {"ops": "Operations", **like.__annotations__, "return": returns}
    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = doc
    return endpoint


#: The method `list` (the builtin keeps its name in this module).
list_tasks = listing(
    "list", "/tasks", TaskPage, filters,
    """One page of tasks, newest first (GET /tasks): any of `status`, every one of `tags`. Pass the page's
    `next_cursor` as `cursor` for the next one, or use `iter_tasks`.""")
iter_tasks = paged(
    "iter_tasks", list_tasks, TaskSummary,
    "Every task matching the filters of `list`, newest first, fetched `limit` per page as it is read.")
list_jobs = listing("list_jobs", "/jobs", JobPage, filters,
                    "One page of jobs, newest first (GET /jobs), filtered as `list`.")
iter_jobs = paged("iter_jobs", list_jobs, JobSummary, "Every job matching the filters, newest first, page after page.")


# --- jobs -----------------------------------------------------------------------------------------------------

def submit_job(ops: Operations, /, job: JobSubmission | Mapping[str, Any], *, idempotency_key: str | None = None
               ) -> Exchange[JobSubmitAnswer]:
    """Queue a primitive job of many PUBs (POST /jobs), under an Idempotency-Key as `submit`."""
    return ops.submitting("/jobs", JobSubmitAnswer, job, idempotency_key)


def get_job(ops: Operations, /, job_id: TaskId, *, wait: float | None = None) -> Exchange[JobDetail]:
    """The job (GET /jobs/{id}); with `wait` (0-60 s), answered as soon as it ends, or after `wait`."""
    return ops.exchange(Call("GET", f"/jobs/{segment(job_id)}", JobDetail, params=query(wait=wait),
                             extra_timeout_s=wait or 0.0))


def wait_job(ops: Operations, /, job_id: TaskId, *, timeout: float | None = None) -> Exchange[JobDetail]:
    """The job once completed, failed or cancelled; `WaitTimeoutError` after `timeout` seconds."""
    return ops.waiting("job", job_id, lambda s: get_job(ops, job_id, wait=s), lambda d: d.status, timeout)


def job_webhooks(ops: Operations, /, job_id: TaskId) -> Exchange[builtins.list[WebhookDelivery]]:
    """The job's webhook deliveries, newest first (GET /jobs/{id}/webhooks), as `webhooks` for a task."""
    return ops.exchange(Call("GET", f"/jobs/{segment(job_id)}/webhooks", builtins.list[WebhookDelivery]))


def cancel_job(ops: Operations, /, job_id: TaskId) -> Exchange[JobCancelAnswer]:
    """Cancel a job (POST /jobs/{id}/cancel): its pending tasks at once, its running ones asked to stop."""
    return ops.exchange(Call("POST", f"/jobs/{segment(job_id)}/cancel", JobCancelAnswer, ok=frozenset({200, 202})))


# --- the service ----------------------------------------------------------------------------------------------

def backends(ops: Operations, /) -> Exchange[builtins.list[BackendInfo]]:
    """The simulators and fake devices runs may target (GET /backends)."""
    return ops.exchange(Call("GET", "/backends", builtins.list[BackendInfo]))


def backend(ops: Operations, /, name: str) -> Exchange[BackendInfo]:
    """One backend by name (GET /backends/{name}); `ApiError` 404 for an unknown one."""
    return ops.exchange(Call("GET", f"/backends/{segment(name)}", BackendInfo))


def queues(ops: Operations, /) -> Exchange[builtins.list[QueueStats]]:
    """Every queue's counts and controls (GET /queues); a tenant's key counts its own tasks only."""
    return ops.exchange(Call("GET", "/queues", builtins.list[QueueStats]))


def pause_queue(ops: Operations, /, name: str) -> Exchange[QueueControls]:
    """Pause a queue (POST /queues/{name}/pause): no worker claims its tasks until it is resumed. Operators
    only: a tenant's key raises `ApiError` 403."""
    return ops.exchange(Call("POST", f"/queues/{segment(name)}/pause", QueueControls))


def resume_queue(ops: Operations, /, name: str) -> Exchange[QueueControls]:
    """Resume a paused queue (POST /queues/{name}/resume). Operators only."""
    return ops.exchange(Call("POST", f"/queues/{segment(name)}/resume", QueueControls))


def limit_queue(ops: Operations, /, name: str, max_running: int | None) -> Exchange[QueueControls]:
    """Let at most `max_running` of a queue's tasks run at once over every worker; None removes the limit
    (POST /queues/{name}/limit). Operators only."""
    body = msgspec.json.encode(QueueLimit(max_running=max_running))
    return ops.exchange(Call("POST", f"/queues/{segment(name)}/limit", QueueControls, body=body,
                             headers={"Content-Type": "application/json"}))


def health(ops: Operations, /) -> Exchange[Health]:
    """GET /health; an unhealthy server's answer (HTTP 503) is returned too, with status "unhealthy"."""
    # The 503 is an answer (status "unhealthy", and why), so it is returned, not retried.
    return ops.exchange(Call("GET", "/health", Health, ok=frozenset({200, 503}), retry_on=RETRY_STATUSES - {503}))
