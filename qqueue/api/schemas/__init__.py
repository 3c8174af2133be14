"""Every type on the wire of the HTTP API, defined once as msgspec Structs.

Litestar decodes request bodies into these and generates the OpenAPI document from them. They are separate
from the domain records (`qqueue.tasks`): the wire may rename or hide, the domain never bends to HTTP.
Constraints mirror the CHECKs of qqueue.tasks, so a bad value is a 400 at the door, not a database error.

By concern: `common` (name rules, annotated scalars, simulation options, errors), `tasks`, `jobs`, `events`,
`service` (health, queues, workers, backends), `webhooks` (what a callback receives, and the record of its sends)
and `dashboard` (the web dashboard's figures). Every name is importable from here.
"""

from qqueue.api.schemas.common import (
    NAME_PATTERN,
    PATTERN_WORDS,
    TAG_PATTERN,
    CallbackUrl,
    ErrorAnswer,
    ErrorDetail,
    KindName,
    Observables,
    ParameterValues,
    QueueName,
    SimulationOptions,
    Tag,
    UtcTime,
)
from qqueue.api.schemas.dashboard import (
    DurationHistogram,
    Durations,
    FailureGroup,
    TaskSource,
    ThroughputMinute,
)
from qqueue.api.schemas.events import JobEvent, TaskEvent
from qqueue.api.schemas.jobs import (
    MAX_JOB_PUBS,
    JobCancelAnswer,
    JobDetail,
    JobFailure,
    JobPage,
    JobProgress,
    JobStatus,
    JobSubmission,
    JobSubmitAnswer,
    JobSummary,
    JobTask,
    PubResult,
    PubSubmission,
)
from qqueue.api.schemas.service import (
    MAX_RUNNING,
    BackendInfo,
    Health,
    QueueControls,
    QueueLimit,
    QueueStats,
    WorkerInfo,
)
from qqueue.api.schemas.tasks import (
    MAX_BATCH,
    MAX_RETRY_BATCH,
    BatchAnswer,
    BatchItem,
    BatchSubmission,
    BulkRetryAnswer,
    BulkRetryRequest,
    CancelAnswer,
    RetryAnswer,
    RetryRequest,
    StatusChange,
    SubmitAnswer,
    TaskDetail,
    TaskPage,
    TaskSubmission,
    TaskSummary,
    Timings,
    decode_item,
)
from qqueue.api.schemas.webhooks import JobWebhookEvent, WebhookDelivery, WebhookError, WebhookEvent

__all__ = [
    "MAX_BATCH", "MAX_JOB_PUBS", "MAX_RETRY_BATCH", "MAX_RUNNING", "NAME_PATTERN", "PATTERN_WORDS", "TAG_PATTERN",
    "BackendInfo", "BatchAnswer", "BatchItem", "BatchSubmission", "BulkRetryAnswer", "BulkRetryRequest",
    "CallbackUrl", "CancelAnswer", "DurationHistogram", "Durations", "ErrorAnswer", "ErrorDetail", "FailureGroup",
    "Health", "JobCancelAnswer", "JobDetail", "JobEvent", "JobFailure", "JobPage", "JobProgress", "JobStatus",
    "JobSubmission", "JobSubmitAnswer", "JobSummary", "JobTask", "JobWebhookEvent", "KindName", "Observables",
    "ParameterValues", "PubResult", "PubSubmission", "QueueControls", "QueueLimit", "QueueName", "QueueStats",
    "RetryAnswer", "RetryRequest", "SimulationOptions", "StatusChange", "SubmitAnswer", "Tag", "TaskDetail",
    "TaskEvent", "TaskPage", "TaskSource", "TaskSubmission", "TaskSummary", "ThroughputMinute", "Timings", "UtcTime",
    "WebhookDelivery", "WebhookError", "WebhookEvent", "WorkerInfo", "decode_item",
]
