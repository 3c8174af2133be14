"""`with_options`: a bundle's fields become the command's options in the bundle parameter's place, and the
command is called with them gathered into the bundle."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from qqueue.cli.connect import Database
from qqueue.cli.options import AsJson, TaskListing, with_options


def test_bundles_expand_in_place_and_gather_back():
    seen = {}

    @with_options
    def show(listing: TaskListing, database: Database, as_json: AsJson = False) -> None:
        seen.update(listing=listing, database=database, as_json=as_json)

    app = typer.Typer()
    app.command()(show)
    app.command("other")(lambda: None)
    run = CliRunner().invoke(app, ["show", "--status", "failed", "--tag", "a", "--tag", "b", "--limit", "5",
                                   "--database-url", "postgresql://x/y", "--json"])
    assert run.exit_code == 0, run.output
    assert seen["listing"] == TaskListing(status=["failed"], tag=["a", "b"], limit=5)
    assert seen["database"].database_url == "postgresql://x/y" and seen["as_json"] is True
    names = [p.name for p in typer.main.get_command(app).commands["show"].params]
    assert names == ["status", "queue", "kind", "tag", "limit", "database_url", "data_dir", "as_json"]
