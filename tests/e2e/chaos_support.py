"""Helpers for the chaos test: finding a worker's slot processes through /proc, and a client that submits
Bell circuits over HTTP at a steady rate, retrying each submission with its Idempotency-Key until accepted."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.api_support import BELL

_PROC = Path("/proc")


def parent_pids() -> dict[int, int]:
    """Every process on the machine, mapped to its parent's pid (from /proc/PID/stat)."""
    parents: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def slot_pids(supervisor_pid: int) -> list[int]:
    """Slot processes of one worker: children of its forkserver, which is a child of the supervisor. Slots are
    forked by the forkserver, never by the supervisor itself, so they are its grandchildren."""
    parents = parent_pids()
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, ppid in parents.items():
        children[ppid].append(pid)
    return sorted(grandchild for child in children.get(supervisor_pid, []) for grandchild in children.get(child, []))


def is_running(pid: int) -> bool:
    """Whether the process is on a CPU or waiting for one (state R): for a slot, in the middle of a task."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] == "R"


def first_running(pids: Sequence[int], within_s: float, interval_s: float = 0.005) -> int | None:
    """The first of `pids` seen running a task within `within_s`, or None if all stayed idle that long."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for pid in pids:
            if is_running(pid):
                return pid
        time.sleep(interval_s)
    return None


class Submitter(threading.Thread):
    """Submits one Bell circuit every 1/rate seconds. A submission that fails in transit (503, connection reset,
    timeout) stays at the head of a backlog and is sent again with the same Idempotency-Key until the API
    answers with its task id; only then does it count as accepted. New submissions keep their schedule while
    older ones wait, so the offered load stays steady through an outage and the backlog catches up after."""

    #: Answers that mean "not now": the request is sent again with the same key.
    RETRYABLE = frozenset({429, 502, 503, 504})

    def __init__(self, base_url: str, rate_per_s: float, *, shots: Sequence[int] = (100,),
                 key_prefix: str = "chaos") -> None:
        super().__init__(name="chaos-submitter", daemon=True)
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.interval_s = 1.0 / rate_per_s
        #: Submission i asks for shots[i % len(shots)].
        self.shots = tuple(shots)
        self.key_prefix = f"{key_prefix}-{uuid.uuid4().hex[:8]}"
        #: Idempotency key -> task id, for every accepted submission.
        self.accepted: dict[str, str] = {}
        #: Idempotency key -> request body; a retry sends the very same body.
        self.bodies: dict[str, dict[str, Any]] = {}
        self.submitted = 0
        self.requests = 0
        #: HTTP status (or transport error name) of every answer.
        self.answers: Counter[str] = Counter()
        #: Unexpected answers (neither accepted nor retryable), with their bodies: the test fails on any.
        self.unexpected: list[tuple[int, str]] = []
        self.backlog: deque[str] = deque()
        self._lock = threading.Lock()
        self._no_new = threading.Event()
        self._halt = threading.Event()

    # ------------------------------------------------------------------------------------------ control

    def stop_new(self) -> None:
        """Create no further submissions; the backlog is still worked off."""
        self._no_new.set()

    def stop(self) -> None:
        """Stop the thread (the backlog is abandoned) and close the client."""
        self._no_new.set()
        self._halt.set()
        self.join(30)
        self.client.close()

    def pending(self) -> int:
        """Submissions created but not accepted yet."""
        with self._lock:
            return len(self.backlog)

    def accepted_ids(self) -> list[str]:
        """Task ids of every accepted submission."""
        with self._lock:
            return list(self.accepted.values())

    # --------------------------------------------------------------------------------------------- loop

    def run(self) -> None:
        next_due = time.monotonic()
        while not self._halt.is_set():
            now = time.monotonic()
            while not self._no_new.is_set() and now >= next_due:
                key = f"{self.key_prefix}-{self.submitted:06d}"
                with self._lock:
                    self.bodies[key] = {"qc": BELL, "shots": self.shots[self.submitted % len(self.shots)]}
                    self.backlog.append(key)
                    self.submitted += 1
                next_due += self.interval_s
            with self._lock:
                key = self.backlog[0] if self.backlog else None
            if key is None:
                # Nothing to send until the next submission is due.
                self._halt.wait(max(0.0, next_due - time.monotonic()) if not self._no_new.is_set() else 0.05)
                continue
            if self._send(key):
                with self._lock:
                    self.backlog.popleft()
            else:
                # A short pause before the same request again: an outage is not hammered in a tight loop.
                self._halt.wait(0.1)

    def _send(self, key: str) -> bool:
        """One POST; True when the submission is settled (accepted, or refused for good), False to retry."""
        self.requests += 1
        try:
            response = self.client.post("/tasks", json=self.bodies[key], headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            self.answers[type(exc).__name__] += 1
            return False
        self.answers[str(response.status_code)] += 1
        if response.status_code in (200, 201):
            with self._lock:
                self.accepted[key] = response.json()["task_id"]
            return True
        if response.status_code in self.RETRYABLE:
            return False
        # The same request can never succeed later (409, 422, a 500 bug): record it and move on.
        self.unexpected.append((response.status_code, response.text[:500]))
        return True

    def summary(self) -> dict[str, Any]:
        """Counts for the report."""
        with self._lock:
            return {"submitted": self.submitted, "accepted": len(self.accepted), "requests": self.requests,
                    "answers": dict(self.answers)}
