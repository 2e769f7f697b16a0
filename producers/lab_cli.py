"""``cact lab``: what a lab integrator or operator runs on a lab machine: send a file of events, see the spool,
send acknowledged events again to a broker that lost them.

``send`` validates each line on its own, so one bad line is reported (line number and reason code, the same
codes the worker dead-letters with) and the good lines still go. Exit codes: 0 all sent and acknowledged;
1 some lines were invalid (the others were sent); 3 the valid events are spooled but Kafka did not
acknowledge them within ``--timeout`` (they are resent by the next emitter on this spool).

``resend --since TIME`` puts the acknowledged events sent since TIME back to pending and sends them again, in
their original order. Exit codes: 0 all of them resent and acknowledged; 1 some could not be resent (their
payload was pruned; the others were resent); 3 not acknowledged within ``--timeout`` (still spooled, resent by
the next emitter); 2 a bad argument.

Everything printed that comes from input (a line's reason and detail, file names, Kafka's errors, what a spool
file holds) goes through :func:`plain`: never read as rich markup (a ``[/]`` in an event type once crashed
``send``), control characters (terminal escape sequences) shown as ``\\x1b``, long texts cut.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from producers.spool import normalize_destination, spool_status
from schemas.settings import Settings, get_settings

lab_app = typer.Typer(help="Lab emitter: send events through the durable spool, see what it holds, resend.",
                      no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # a line stays one line, also in a log or a narrow terminal
EXIT_INVALID_LINES = 1
EXIT_NOT_RESENDABLE = 1
EXIT_NOT_DELIVERED = 3
SEND_CHUNK = 500
TEXT_LIMIT = 300  # characters of an input-derived text printed; the rest is counted, not shown

SpoolOption = Annotated[Path | None, typer.Option("--spool", help="Spool file (default CACT_LAB_SPOOL_PATH)")]

# C0/C1 controls (ESC starts terminal sequences), bidi overrides and zero-width marks, lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def plain(value: object, limit: int = TEXT_LIMIT) -> Text:
    """Input-derived text as rich prints it literally: no markup, no control characters, at most ``limit``."""
    s = str(value)
    cut = f"… ({len(s):,} characters)" if len(s) > limit else ""
    s = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                    s[:limit])
    return Text(s + cut)


@contextlib.contextmanager
def _reported_here() -> Iterator[None]:
    """Outages and retries are reported once by the command, not per retry by kafka-python and the emitter."""
    loggers = [logging.getLogger(name) for name in ("kafka", "producers.emitter")]
    levels = [logger.level for logger in loggers]
    for logger, level in zip(loggers, (logging.CRITICAL, logging.ERROR)):
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@lab_app.command()
def send(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines: one contract-v1 event a line")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Kafka to acknowledge everything")] = 60,
    spool: SpoolOption = None,
) -> None:
    """Validate and send a file of events (one JSON event per line) in the file's order."""
    # Imported here: kafka-python is slow to import, and every other ``cact`` command would pay for it.
    from producers.emitter import DeliveryFailed, DeliveryTimeout, InvalidEvent, LabEmitter
    from schemas.events import Event

    settings = get_settings()
    lines = file.read_bytes().splitlines()
    bad: list[tuple[int, str, str]] = []
    sent = 0
    undelivered: str | None = None
    with _reported_here():
        emitter = LabEmitter(settings, spool_path=spool)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as progress:
                task = progress.add_task("spooling", total=len(lines))
                chunk: list[Event] = []
                for number, line in enumerate(lines, 1):
                    if line.strip():
                        try:
                            chunk.append(emitter.check(line))
                        except InvalidEvent as exc:
                            bad.append((number, exc.reason, exc.detail))
                    if len(chunk) >= SEND_CHUNK or number == len(lines):
                        sent += emitter.send_all(chunk)
                        chunk = []
                        progress.update(task, completed=number)
                progress.add_task("waiting for Kafka to acknowledge", total=None)
                try:
                    emitter.flush(timeout)
                except (DeliveryTimeout, DeliveryFailed) as exc:
                    undelivered = _undelivered(settings, exc)
        finally:  # --timeout is the whole wait: what is left stays spooled for the next emitter
            emitter.close(timeout=0 if undelivered is not None else 30)
    for number, reason, detail in bad:
        console.print(Text.assemble((f"line {number}:", "red"), " ", plain(reason), ": ", plain(detail)))
    console.print(Text.assemble(f"{sent} events spooled from ", plain(file), f", {len(bad)} invalid lines not sent"))
    if undelivered is not None:
        console.print(Text.assemble(("not yet delivered:", "yellow"), " ", plain(undelivered, 1000)))
    else:
        console.print(f"[green]all {sent} events acknowledged by Kafka[/]")
    if bad:
        raise typer.Exit(EXIT_INVALID_LINES)
    if undelivered is not None:
        raise typer.Exit(EXIT_NOT_DELIVERED)


def _undelivered(settings: Settings, exc: Exception) -> str:
    """What was not delivered, and for a Kafka that did not answer, which address and variable were used.

    No pre-flight refusal here, unlike the pipeline's commands: a lab spools through an outage, and its
    events go out with the next emitter on the spool (exit 3)."""
    from producers.emitter import DeliveryTimeout
    from schemas.errors import kafka_address

    return f"{exc}; Kafka: {kafka_address(settings)}" if isinstance(exc, DeliveryTimeout) else str(exc)


_RELATIVE = re.compile(r"^-\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_time(text: str, *, now: float | None = None, option: str = "--since") -> float:
    """``--since``/``--until``: ISO 8601 with a UTC offset (``2026-11-03T10:40+07:00``, ``…Z``) or a time back
    from now (``-2h``, ``-90m``, ``-1d``); unix time. A time without an offset is refused: a lab machine's
    zone (WIB, WITA, WIT) is not something to guess when choosing what to resend."""
    now = time.time() if now is None else now
    s = text.strip()
    m = _RELATIVE.match(s)
    if m:
        return now - float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    try:
        at = datetime.fromisoformat(s)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time: give ISO 8601 with its offset, e.g. "
                                 "2026-11-03T10:40:00+07:00, or a time back from now such as -2h",
                                 param_hint=option) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise typer.BadParameter(f"{text!r} has no UTC offset: add it, e.g. {s}+07:00 (WIB), +08:00 (WITA), "
                                 "+09:00 (WIT)", param_hint=option)
    return at.timestamp()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


@lab_app.command()
def resend(
    since: Annotated[str, typer.Option(help="Resend events acknowledged at or after this time: ISO 8601 with offset, "
                                            "or -2h / -90m / -1d")],
    until: Annotated[str | None, typer.Option(help="…and before this time (default: now)")] = None,
    from_destination: Annotated[str | None, typer.Option(
        "--from-destination", help="Take events acknowledged by this other cluster (bootstrap servers) and send "
                                   "them to the configured one; default: the configured one")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Kafka to acknowledge everything")] = 300,
    spool: SpoolOption = None,
) -> None:
    """Send again, in their original order, the acknowledged events sent since TIME (a broker lost them).

    Safe to overdo: every event keeps its event_id and the pipeline ignores an event id it already has.
    """
    from producers.emitter import DeliveryFailed, DeliveryTimeout, LabEmitter

    now = time.time()
    start = parse_time(since, now=now)
    end = None if until is None else parse_time(until, now=now, option="--until")
    if end is not None and end <= start:
        raise typer.BadParameter("--until must be later than --since", param_hint="--until")
    settings = get_settings()
    path = spool or settings.lab_spool_path
    if not Path(path).exists():
        console.print(Text.assemble("no spool at ", plain(path), ": nothing was sent from this machine with these "
                                    "settings (set --spool or CACT_LAB_SPOOL_PATH)"))
        raise typer.Exit(2)
    destination = normalize_destination(settings.bootstrap_servers)
    deadline = time.monotonic() + timeout
    undelivered: str | None = None
    with _reported_here():
        emitter = LabEmitter(settings, spool_path=path)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as progress:
                requeued = emitter.resend(start, end, from_destination=from_destination)
                total = emitter.pending()  # with any events left unsent in the spool: older, so they go first
                task = progress.add_task("resending", total=total)
                try:
                    while True:
                        try:
                            emitter.flush(min(0.5, max(0.0, deadline - time.monotonic())))
                            break
                        except DeliveryTimeout:
                            progress.update(task, completed=total - emitter.pending())
                            if time.monotonic() >= deadline:
                                raise
                    progress.update(task, completed=total)
                except (DeliveryTimeout, DeliveryFailed) as exc:
                    undelivered = _undelivered(settings, exc)
        finally:
            emitter.close(timeout=0)

    window = f"sent from {_when(start)}" + (f" to {_when(end)}" if end is not None else "")
    source = destination if from_destination is None else normalize_destination(from_destination)
    route = (("for ", plain(destination)) if source == destination
             else ("from ", plain(source), " to ", plain(destination)))
    console.print(Text.assemble(f"{requeued.events} acknowledged events {window} re-queued ", *route,
                                ", in their original order"))
    if requeued.payload_gone:
        console.print(Text.assemble(
            (f"{requeued.payload_gone} events {window} cannot be resent:", "red"),
            f" their payload was pruned (kept {settings.lab_spool_keep_sent_hours:g} h after the acknowledgement, "
            "CACT_LAB_SPOOL_KEEP_SENT_HOURS; counted per minute of send time): only the lab application's own "
            "records can restore them."))
    for other, n in sorted(requeued.other_destinations.items()):
        console.print(Text.assemble((f"{n} acknowledged events {window} were meant for ", "yellow"), plain(other),
                                    " and were left alone; ", ("--from-destination ", "bold"), plain(other),
                                    " sends them to ", plain(destination)))
    if undelivered is not None:
        console.print(Text.assemble(("not yet delivered:", "yellow"), " ", plain(undelivered, 1000)))
    elif requeued.events:
        console.print(f"[green]all {requeued.events} resent events acknowledged by Kafka[/]")
    if requeued.payload_gone:
        raise typer.Exit(EXIT_NOT_RESENDABLE)
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


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@lab_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of a table")] = False,
    spool: SpoolOption = None,
) -> None:
    """What the spool holds: pending, sent and failed events per destination, topic and event type, and how much
    a resend could still send."""
    settings = get_settings()
    path = spool or settings.lab_spool_path
    report: dict[str, Any] = spool_status(path)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    out = Console()
    if not report["exists"]:
        out.print(Text.assemble("no spool at ", plain(path), ": nothing was emitted from this machine with these "
                                "settings"))
        return
    table = Table(title=Text.assemble("lab spool ", plain(path)))
    numbers = ("pending", "sent", "resendable", "failed", "oldest pending")
    for col in ("destination", "topic", "event type", *numbers):
        table.add_column(col, justify="right" if col in numbers else "left")
    for g in report["groups"]:
        table.add_row(plain(g["destination"]), plain(g["topic"]), plain(g["event_type"]), str(g["pending"]),
                      str(g["sent"]), str(g["resendable"]), Text(str(g["failed"]), "red" if g["failed"] else ""),
                      _age(g["oldest_pending_age_seconds"]))
    table.add_section()
    table.add_row("[b]total[/]", "", "", f"[b]{report['pending']}[/]", f"[b]{report['sent']}[/]",
                  f"[b]{report['resendable']}[/]", f"[b]{report['failed']}[/]",
                  _age(report["oldest_pending_age_seconds"]))
    out.print(table)
    out.print(f"autosaved answers waiting to be batched: {report['autosave_buffered']}; "
              f"emitters using the spool: {report['owners']}")
    keep = f"kept {settings.lab_spool_keep_sent_hours:g} h (CACT_LAB_SPOOL_KEEP_SENT_HOURS)"
    if report["resendable"]:
        out.print(f"acknowledged events still resendable (cact lab resend --since): {report['resendable']} "
                  f"({_size(report['resendable_bytes'])}), sent since {report['resendable_since']}; {keep}")
    else:
        out.print(f"acknowledged events still resendable: none; {keep}")
    if report["pruned"]:
        out.print(f"pruned, no longer resendable: {report['pruned']} events sent before "
                  f"{report['pruned_sent_before']}")
    if report["last_error"]:
        out.print(Text.assemble(("last delivery error:", "yellow"), " ", plain(report["last_error"], 1000)))
