"""The invariant checker behind `qqueue check`: asks the database whether every promise of the queue holds.

The rules live in the view qqueue.invariant_violations (sql/migrations/0003_invariants.sql, extended by
0005_invariants_v2.sql, 0008_jobs.sql and 0010_history_without_key_checks.sql), so operators can run the same
check from psql.
"""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg

from qqueue.store import db


class Report(msgspec.Struct, kw_only=True):
    """What the check found: violations (task id and rule broken) and tasks not yet finished."""

    violations: list[dict[str, Any]]
    unfinished: int

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.violations


def check(conn: psycopg.Connection[Any], *, limit: int = 1000) -> Report:
    """Run the invariant checker; at most `limit` violations are listed."""
    rows = db.run(conn, "invariant_violations_list", limit=limit)
    unfinished = db.run(conn, "invariant_unfinished_count")["unfinished"]
    return Report(violations=[{"task_id": str(r["task_id"]) if r["task_id"] else None,
                               "job_id": str(r["job_id"]) if r["job_id"] else None, "violation": r["violation"]}
                              for r in rows],
                  unfinished=unfinished)
