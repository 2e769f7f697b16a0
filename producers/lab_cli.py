"""``cact lab``: what a lab integrator or operator runs on a lab machine: send a file of events, see the spool.

``send`` validates each line on its own, so one bad line is reported (line number and reason code, the same
codes the worker dead-letters with) and the good lines still go. Exit codes: 0 all sent and acknowledged;
1 some lines were invalid (the others were sent); 3 the valid events are spooled but Kafka did not
acknowledge them within ``--timeout`` (they are resent by the next emitter on this spool).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.spool import spool_status
from schemas.settings import get_settings

lab_app = typer.Typer(help="Lab emitter: send events through the durable spool, and see what it holds.",
                      no_args_is_help=True)
console = Console(stderr=True)
EXIT_INVALID_LINES = 1
EXIT_NOT_DELIVERED = 3
SEND_CHUNK = 500

SpoolOption = Annotated[Optional[Path], typer.Option("--spool", help="Spool file (default CACT_LAB_SPOOL_PATH)")]


@lab_app.command()
def send(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines: one contract-v1 event a line")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Kafka to acknowledge everything")] = 60,
    spool: SpoolOption = None,
) -> None:
    """Validate and send a file of events (one JSON event per line) in the file's order."""
    # Imported here: kafka-python is slow to import, and every other ``cact`` command would pay for it.
    from producers.emitter import DeliveryFailed, DeliveryTimeout, InvalidEvent, LabEmitter, validate
    from schemas.events import Event

    settings = get_settings()
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # an outage is reported below, once, not per retry
    lines = file.read_bytes().splitlines()
    bad: list[tuple[int, str, str]] = []
    sent = 0
    with LabEmitter(settings, spool_path=spool) as emitter:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task(f"spooling {file.name}", total=len(lines))
            chunk: list[Event] = []
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        chunk.append(validate(line))
                    except InvalidEvent as exc:
                        bad.append((number, exc.reason, exc.detail))
                if len(chunk) >= SEND_CHUNK or number == len(lines):
                    sent += emitter.send_all(chunk)
                    chunk = []
                    progress.update(task, completed=number)
            progress.add_task("waiting for Kafka to acknowledge", total=None)
            try:
                emitter.flush(timeout)
                undelivered: str | None = None
            except (DeliveryTimeout, DeliveryFailed) as exc:
                undelivered = str(exc)
    for number, reason, detail in bad:
        console.print(f"[red]line {number}:[/] {reason}: {detail}", markup=True, highlight=False)
    console.print(f"{sent} events spooled from {file}, {len(bad)} invalid lines not sent")
    if undelivered is not None:
        console.print(f"[yellow]not yet delivered:[/] {undelivered}")
    else:
        console.print(f"[green]all {sent} events acknowledged by Kafka[/]")
    if bad:
        raise typer.Exit(EXIT_INVALID_LINES)
    if undelivered is not None:
        raise typer.Exit(EXIT_NOT_DELIVERED)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@lab_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of a table")] = False,
    spool: SpoolOption = None,
) -> None:
    """What the spool holds: pending, sent and failed events per destination, topic and event type."""
    path = spool or get_settings().lab_spool_path
    report: dict[str, Any] = spool_status(path)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    out = Console()
    if not report["exists"]:
        out.print(f"no spool at {path}: nothing was emitted from this machine with these settings")
        return
    table = Table(title=f"lab spool {path}")
    for col in ("destination", "topic", "event type", "pending", "sent", "failed", "oldest pending"):
        table.add_column(col, justify="right" if col in ("pending", "sent", "failed", "oldest pending") else "left")
    for g in report["groups"]:
        table.add_row(g["destination"], g["topic"], g["event_type"], str(g["pending"]), str(g["sent"]),
                      f"[red]{g['failed']}[/]" if g["failed"] else "0", _age(g["oldest_pending_age_seconds"]))
    table.add_section()
    table.add_row("[b]total[/]", "", "", f"[b]{report['pending']}[/]", f"[b]{report['sent']}[/]",
                  f"[b]{report['failed']}[/]", _age(report["oldest_pending_age_seconds"]))
    out.print(table)
    out.print(f"autosaved answers waiting to be batched: {report['autosave_buffered']}; "
              f"emitters using the spool: {report['owners']}")
    if report["last_error"]:
        out.print(f"[yellow]last delivery error:[/] {report['last_error']}", highlight=False)
