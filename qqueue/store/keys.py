"""API keys: make them, store only their hash, check a presented one in constant time, revoke them.

A key reads `qq_<prefix>_<secret>`: the 12-character prefix is public and finds the key's row; the secret is
32 random bytes. Only SHA-256 of the whole key is stored (a key is high-entropy, so a slow password hash would
add nothing but latency), and it is compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
import psycopg

from qqueue.errors import ConfigError
from qqueue.store import db

__all__ = ["ROLES", "KeyInfo", "NewKey", "Role", "create", "hash_key", "parse", "revoke", "list_keys", "verify"]

_KEY = re.compile(r"qq_(?P<prefix>[a-z0-9]{12})_(?P<secret>[A-Za-z0-9_-]{43})")
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

#: A tenant's key sees and changes only its tenant's tasks and jobs; an operator's sees every tenant's, and the
#: workers' hosts. An operator key may have no tenant: its submissions then belong to none.
Role = Literal["tenant", "operator"]
ROLES: tuple[Role, ...] = ("tenant", "operator")


class NewKey(msgspec.Struct, kw_only=True, frozen=True):
    """A key just made: `key` is shown once and never stored."""

    id: uuid.UUID
    key: str
    prefix: str
    tenant: str | None
    role: Role
    created_at: datetime


class KeyInfo(msgspec.Struct, kw_only=True, frozen=True):
    """What is kept about a key: never the key itself."""

    id: uuid.UUID
    prefix: str
    tenant: str | None
    role: Role
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> bytes:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).digest()


def parse(key: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    match = _KEY.fullmatch(key)
    return match["prefix"] if match else None


def verify(presented: str, stored_hash: bytes) -> bool:
    """Whether `presented` is the key whose hash is `stored_hash`; takes the same time wherever they differ."""
    return hmac.compare_digest(hash_key(presented), bytes(stored_hash))


def create(
    conn: psycopg.Connection[Any],
    tenant: str | None,
    *,
    role: Role = "tenant",
    label: str | None = None,
    max_pending: int | None = None,
    submit_rate_per_s: float | None = None,
) -> NewKey:
    """Make a key for `tenant` (creating the tenant, or updating the limits given), store its hash, return it.
    Only an operator key may have no tenant (and then no limits)."""
    if role not in ROLES:
        raise ConfigError(f"a key's role is one of {', '.join(ROLES)}, not {role!r}")
    if tenant is None and role == "tenant":
        raise ConfigError("a tenant key needs --tenant (only an operator key may have none)")
    if tenant is None and (max_pending is not None or submit_rate_per_s is not None):
        raise ConfigError("limits belong to a tenant: give --tenant with --max-pending or --rate")
    if tenant is not None and not TENANT_PATTERN.fullmatch(tenant):
        raise ConfigError("a tenant name is 1-64 characters of letters, digits, '_', '.', ':' or '-'")
    if max_pending is not None and max_pending < 0:
        raise ConfigError("--max-pending must be 0 or more")
    if submit_rate_per_s is not None and submit_rate_per_s <= 0:
        raise ConfigError("--rate must be more than 0")
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(12))
    key = f"qq_{prefix}_{secrets.token_urlsafe(32)}"
    with conn.transaction():
        if tenant is not None:
            db.run(conn, "tenant_upsert", name=tenant, max_pending=max_pending, submit_rate_per_s=submit_rate_per_s)
        row = db.run(conn, "api_key_insert", prefix=prefix, key_hash=hash_key(key), tenant=tenant, label=label,
                      role=role)
    return NewKey(id=row["id"], key=key, prefix=row["prefix"], tenant=row["tenant"], role=row["role"],
                  created_at=row["created_at"])


def revoke(conn: psycopg.Connection[Any], ref: str) -> KeyInfo | None:
    """Revoke the key with this id or prefix (a whole key works too); None when there is no such key."""
    prefix = parse(ref.strip())
    row = db.run(conn, "api_key_revoke", ref=prefix or ref.strip())
    return KeyInfo(**row) if row is not None else None


def list_keys(conn: psycopg.Connection[Any], tenant: str | None = None) -> list[KeyInfo]:
    """Every key (of `tenant`, if given), oldest first."""
    return [KeyInfo(**r) for r in db.run(conn, "api_key_list", tenant=tenant)]
