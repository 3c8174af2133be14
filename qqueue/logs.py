"""Structured logs: one JSON object per line, carrying task id, correlation id and worker where they exist."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

#: Attributes passed through `extra=` that become top-level JSON fields.
CONTEXT_FIELDS = ("task_id", "job_id", "correlation_id", "worker_id", "attempt", "kind", "queue", "duration_s",
                  "count", "slot", "pid", "error")

_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, event, context fields, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(out).decode()


def setup_logging(level: str = "INFO") -> None:
    """Send qqueue's logs to stderr as JSON lines (idempotent)."""
    root = logging.getLogger("qqueue")
    root.setLevel(level.upper())
    if not any(getattr(h, "_qqueue", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._qqueue = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
