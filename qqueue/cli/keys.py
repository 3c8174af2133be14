"""`qqueue keys create|revoke|ls|webhook-secret`: the API keys and tenants that `qqueue serve --auth` checks, and
the secrets webhooks are signed with, in the database."""

from __future__ import annotations

from typing import Annotated

import typer

from qqueue.cli.common import fail, print_json
from qqueue.cli.connect import Database
from qqueue.cli.options import AsJsonList, with_options

app = typer.Typer(help="API keys, tenants and their webhook secrets (used by `qqueue serve --auth`).",
                  no_args_is_help=True)


@app.command("create")
@with_options
def keys_create(
    tenant: Annotated[str | None, typer.Option(
        help="Tenant the key acts for (created if new); an operator key may have none.")] = None,
    role: Annotated[str, typer.Option(
        help="tenant: sees only its tenant's tasks and jobs; operator: sees every tenant's, and the workers' "
             "hosts.")] = "tenant",
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    max_pending: Annotated[int | None, typer.Option(min=0, help="The tenant's most pending tasks.")] = None,
    rate: Annotated[float | None, typer.Option(help="The tenant's submissions per second.")] = None,
    *,
    database: Database,
) -> None:
    """Make an API key for a tenant (or an operator) and print it once; only its hash is stored.

    Limits given here apply to the tenant (all its keys); unset ones use QQUEUE_API_TENANT_* defaults. What an
    operator key submits belongs to its tenant, or to no tenant when it has none.
    Examples: qqueue keys create --tenant acme --label ci --max-pending 5000 --rate 50;
    qqueue keys create --role operator --label oncall
    """
    from qqueue.store import keys

    if role not in keys.ROLES:
        fail(f"--role is one of {', '.join(keys.ROLES)}, not {role!r}")
    made = database.run(lambda conn: keys.create(conn, tenant, role=role, label=label,
                                                 max_pending=max_pending, submit_rate_per_s=rate))
    typer.echo(made.key)
    owner = f"tenant {made.tenant}" if made.tenant else "no tenant"
    typer.secho(f"{made.role} key {made.prefix} for {owner}: shown once, store it now "
                f"(revoke with: qqueue keys revoke {made.prefix})", err=True)


@app.command("revoke")
@with_options
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix or id (or the key itself).")],
    database: Database,
) -> None:
    """Revoke an API key: requests with it are refused (401) from now on.

    Example: qqueue keys revoke k3x9p2m4q8zt
    """
    from qqueue.store import keys

    revoked = database.run(lambda conn: keys.revoke(conn, key))
    if revoked is None:
        fail(f"no API key with prefix or id {key!r}")
    typer.echo(f"revoked {revoked.role} key {revoked.prefix}"
               + (f" of tenant {revoked.tenant}" if revoked.tenant else ""))


@app.command("ls")
@with_options
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    *,
    database: Database,
    as_json: AsJsonList = False,
) -> None:
    """List API keys (prefixes, tenants, roles, when made and revoked; never the keys).

    Example: qqueue keys ls --tenant acme
    """
    import msgspec

    from qqueue.store import keys

    rows = [msgspec.to_builtins(k) for k in database.run(lambda conn: keys.list_keys(conn, tenant))]
    if as_json:
        print_json(rows)
        return
    from qqueue.console import table

    table(rows, ["prefix", "tenant", "role", "label", "created_at", "revoked_at"], title="API keys")


@app.command("webhook-secret")
@with_options
def keys_webhook_secret(
    tenant: Annotated[str | None, typer.Argument(
        help="The tenant; leave out for the service-wide secret (tasks queued without API keys).")] = None,
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace the secret with a new one first.")] = False,
    *,
    database: Database,
) -> None:
    """Print the secret a tenant's webhooks are signed with (HMAC-SHA256, `X-QQueue-Signature`).

    Every tenant has one from its creation; --rotate replaces it, and every send from then on (retries
    included) is signed with the new one. Example: qqueue keys webhook-secret acme --rotate
    """
    from qqueue.store import webhooks

    value = database.run(lambda conn: (webhooks.rotate_secret if rotate else webhooks.secret)(conn, tenant))
    typer.echo(value)
    if rotate:
        typer.secho(f"new webhook secret for {'tenant ' + tenant if tenant else 'tasks without a tenant'}; "
                    "the old one no longer signs", err=True)
