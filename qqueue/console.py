"""Terminal rendering for the CLI: tables, a task's details, its webhooks, and counts as a histogram. No database
here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()

_STATUS_STYLE = {"pending": "yellow", "running": "cyan", "completed": "green", "failed": "red", "cancelled": "dim"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """Print rows as a table of the given columns (a status column is coloured)."""
    out = Table(title=title, header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        cells = []
        for column in columns:
            text = _cell(row.get(column))
            style = _STATUS_STYLE.get(text) if column == "status" else None
            cells.append(f"[{style}]{text}[/{style}]" if style else text)
        out.add_row(*cells)
    console.print(out)


def histogram(counts: Mapping[str, int], *, width: int = 40, limit: int = 32) -> None:
    """Print measurement counts as horizontal bars, most frequent first (at most `limit` outcomes)."""
    if not counts:
        console.print("(no counts)")
        return
    total = sum(counts.values())
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    peak = top[0][1]
    label_width = max(len(k) for k, _ in top)
    for outcome, n in top:
        bar = "█" * max(1, round(width * n / peak))
        console.print(f"{outcome:>{label_width}} [cyan]{bar}[/cyan] {n} ({100 * n / total:.1f}%)")
    if len(counts) > limit:
        console.print(f"… {len(counts) - limit} more outcomes")


def task_details(task: Mapping[str, Any]) -> None:
    """Print one task: its facts, history, error and, for circuits, the counts as a histogram."""
    status = str(task["status"])
    style = _STATUS_STYLE.get(status, "")
    console.print(f"[bold]{task['id']}[/bold]  [{style}]{status}[/{style}]  kind={task['kind']} "
                  f"queue={task['queue']} attempt={task['attempt']}/{task['max_attempts']}")
    if task.get("queue_position"):
        console.print(f"position in queue: {task['queue_position']}")
    if task.get("error"):
        console.print(f"[red]error[/red]: {task['error'].get('type')}: {task['error'].get('message')}")
    history = task.get("status_history") or []
    if history:
        table(history, ["status", "transitioned_at", "attempt", "worker_id", "notes"], title="history")
    result = task.get("result")
    if isinstance(result, Mapping) and isinstance(result.get("counts"), Mapping):
        histogram(result["counts"])
    elif result is not None:
        console.print_json(data=result)


def webhooks(callback_url: str | None, deliveries: Sequence[Mapping[str, Any]]) -> None:
    """Print where a task's (or job's) end is POSTed and each notice of it (`WebhookDelivery`, newest first): its
    sends so far, the last answer, and whether it was delivered, abandoned, or when it is tried next."""
    if callback_url is None:
        return
    console.print(f"callback: {callback_url}")
    if not deliveries:
        console.print("no webhook sent yet: one is sent when it ends")
        return
    rows = [{**d, "outcome": f"delivered {_cell(d['delivered_at'])}" if d.get("delivered_at")
             else f"abandoned {_cell(d['abandoned_at'])}" if d.get("abandoned_at")
             else f"next try {_cell(d.get('next_attempt_at'))}"} for d in deliveries]
    table(rows, ["delivery_id", "status", "attempt", "attempts", "last_status_code", "last_error", "outcome",
                 "created_at"], title="webhooks")
