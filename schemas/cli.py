"""``cact schemas``: the event contract's JSON Schemas, written from the event classes and checked against them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from schemas.errors import CliError

schemas_app = typer.Typer(help="The event contract's JSON Schemas (schemas/json/).", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


@schemas_app.command("export")
def schemas_export(out: Annotated[Path | None, typer.Option(help="Folder to write to")] = None) -> None:
    """Write one JSON Schema per event type (check them in: lab vendors validate against them)."""
    from schemas.export import DEFAULT_DIR, export_schemas, write_doc

    for path in export_schemas(out or DEFAULT_DIR):
        console.print(f"wrote {path}")
    if out is None and write_doc():
        console.print("updated the field tables in docs/events.md")


@schemas_app.command("check")
def schemas_check() -> None:
    """Fail when the checked-in JSON Schemas differ from the event classes."""
    from schemas.export import DEFAULT_DIR, doc_is_stale, stale_schemas

    stale = stale_schemas(DEFAULT_DIR) + (["docs/events.md"] if doc_is_stale() else [])
    if stale:
        raise CliError(f"stale schemas: {', '.join(stale)}; run `cact schemas export`", 1)
    console.print("schemas are up to date")
