"""Schema migrations: apply the ordered plain-SQL files of sql/migrations, each in its own transaction,
under an advisory lock and recorded in qqueue.schema_migrations. Running it twice, or from two processes at
once, is safe: the second finds nothing left to do."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

from qqueue.errors import SchemaNotReadyError
from qqueue.store import db

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        """Recorded when applied, so an edited past migration can be spotted."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with this version, in order."""
    found = []
    for path in sorted((db.sql_dir() / "migrations").glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match["version"]), match["name"], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a version number")
    return found


def latest_version() -> int:
    """The schema version this code expects."""
    return max((m.version for m in available()), default=0)


def applied_versions(conn: psycopg.Connection[Any]) -> list[int]:
    """Versions recorded in the database; empty for a database qqueue never touched."""
    if not db.run(conn, "migration_ledger_exists")["present"]:
        return []
    return [row["version"] for row in db.run(conn, "migration_applied_versions")]


def migrate(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply every pending migration; return those applied now (empty when up to date).

    `conn` must be in autocommit mode; each migration runs in its own transaction.
    """
    db.run(conn, "migration_lock")
    try:
        db.run(conn, "migration_bootstrap")
        done = set(applied_versions(conn))
        applied = []
        for migration in available():
            if migration.version in done:
                continue
            with conn.transaction():
                db.run(conn, "migration_unbounded")
                conn.execute(migration.sql.encode())
                db.run(conn, "migration_record", version=migration.version, name=migration.name,
                       checksum=migration.checksum)
            applied.append(migration)
        return applied
    finally:
        db.run(conn, "migration_unlock")


def check_current(conn: psycopg.Connection[Any]) -> None:
    """Raise `SchemaNotReadyError` unless every shipped migration is applied (API and workers call this)."""
    applied = set(applied_versions(conn))
    missing = [m.version for m in available() if m.version not in applied]
    if missing:
        if not applied:
            raise SchemaNotReadyError("the database has no qqueue schema yet; run `qqueue migrate` first")
        raise SchemaNotReadyError(
            f"the database schema is behind (missing migration {', '.join(map(str, missing))}); "
            "run `qqueue migrate` first"
        )
