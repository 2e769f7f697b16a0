"""The sinks' commands: the results store's quarantine, attendance lists, SI ASN backlog, holds and retries,
the SI ASN pusher on its own, and the SI ASN emulator. Mounted by the ``cact`` command (cact/cli.py), which adds
``cact sink`` itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from schemas import errors
from schemas.errors import CliError
from schemas.settings import get_settings
from sinks.store_checks import check_database_url, database_unreachable

if TYPE_CHECKING:
    from sinks.store import ResultsStore

#: ``cact sink``: runs the sink (its callback is the composition root's), its subcommands look at the store.
sink_app = typer.Typer(invoke_without_command=True)
siasn_app = typer.Typer(help="The automated push to SI ASN: backlog, retries, holds and their audit trail.",
                        no_args_is_help=True)
attendance_app = typer.Typer(help="Attendance: no-show lists for rescheduling.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # a line stays one line, also in a log or a narrow terminal


@sink_app.command("quarantine")
def sink_quarantine(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per line")] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first (0: all)")] = 50,
    payload: Annotated[bool, typer.Option("--payload", help="With --json: include the record as received "
                                          "(personal data: handle with care)")] = False,
) -> None:
    """Records the results store refused: where they came from, why, and when the sink first met them."""
    from sqlalchemy import inspect

    store = migrated_store()
    if "sink_quarantine" not in inspect(store.engine).get_table_names():
        raise CliError("the results store has no quarantine table yet: start `cact sink` or a worker of this "
                       "version once (they migrate the store)")
    rows = store.quarantined(limit or None)
    total = store.quarantine_count()
    if as_json:
        for row in rows:
            if not payload:
                row.pop("event_json")
            print(json.dumps({**row, "first_seen_at": row["first_seen_at"].isoformat()}))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"results store quarantine: {total} record(s)"
                        + (f", newest {len(rows)} shown" if len(rows) < total else ""))
    for col in ("first seen (UTC)", "source", "event type", "event id", "bytes", "reason"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["first_seen_at"].strftime("%Y-%m-%d %H:%M:%S"),
                      escape(f"{row['source_topic']}[{row['source_partition']}]@{row['source_offset']}"),
                      escape(row["event_type"]), escape(row["event_id"] or "-"), str(row["event_bytes"]),
                      escape(row["reason"]))
    Console().print(table)
    if not rows:
        console.print("nothing in quarantine")


@attendance_app.command("no-shows")
def attendance_no_shows(
    agency: Annotated[str, typer.Option(help="Agency (instansi) id")],
    out: Annotated[Path | None, typer.Option(help="Write the CSV here instead of standard output")] = None,
) -> None:
    """The agency's no-shows as CSV, to reschedule them (contains full NIPs: handle as personal data)."""
    import csv

    from sinks.attendance_view import no_shows

    rows = no_shows(migrated_store(), agency)
    fields = ["session_id", "lab_id", "activity_id", "nip", "status", "rescheduled_to"]
    handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    try:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if out:
            handle.close()
    console.print(f"{len(rows)} no-shows for agency {agency}" + (f" written to {out}" if out else ""))


def siasn_emulator(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8243,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    latency_ms: Annotated[int, typer.Option(help="Delay every answer by this much")] = 0,
    fail_rate: Annotated[float, typer.Option(help="Share of API calls answered with a 5xx")] = 0.0,
) -> None:
    """Run the SI ASN emulator (tokens, data-utama, save and read-back endpoints) until Ctrl-C.

    Faults can also be changed while it runs: POST /_emulator/faults; counts at GET /_emulator/stats.
    """
    from sinks.siasn.emulator import EmulatorConfig, Faults, run_emulator

    errors.check_port_free(host, port, "--port", "--host")

    def ready(url: str) -> None:
        console.print(f"[green]SI ASN emulator on {url}[/]; a worker pushes to it with:")
        for k, v in EmulatorConfig().client_env(url).items():
            console.print(f"export {k}={v}")

    run_emulator(host, port, Faults(latency_ms=latency_ms, fail_rate=fail_rate), on_ready=ready)


def migrated_store() -> ResultsStore:
    """The configured results store, or one line saying why not: an unusable URL, a database that does not
    answer, or one no worker has created its tables in yet."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError

    from sinks.store import ResultsStore

    url = get_settings().database_url
    check_database_url(url)
    store = ResultsStore(url)
    try:
        tables = inspect(store.engine).get_table_names()
    except OperationalError as exc:
        raise database_unreachable(url, exc) from None
    if "siasn_outbox" not in tables:
        raise CliError(f"the results store at {errors.clean(errors.mask_url(url), 300)} has no tables yet: start a "
                       "worker (`cact worker` migrates it) or check CACT_DATABASE_URL")
    return store


@siasn_app.command("status")
def siasn_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Pushes by status (held: waiting for an operator, void: withdrawn), the age of the oldest pending one, and
    current results by standing."""
    from rich.table import Table

    from sinks.siasn.push import outbox_status, results_by_standing

    store = migrated_store()
    status, standing = outbox_status(store), results_by_standing(store)
    if as_json:
        print(json.dumps({**status, "results_by_standing": standing}))
        return
    out = Console()
    for title, row in (("SI ASN push", status), ("current results by standing", standing)):
        table = Table(title=title)
        for key in row:
            table.add_column(key.replace("_", " "), justify="right")
        table.add_row(*(str(v) for v in row.values()))
        out.print(table)


def _operator(name: str | None) -> str:
    """Who decides: as given, else the OS user (the shell account is the authenticated operator)."""
    import getpass

    if name is not None:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise CliError("cannot tell who you are from the OS: say --operator NAME") from None


def _siasn_decide(action: str, nip: str, activity: str, reason: str, operator: str | None) -> None:
    from schemas.nip import mask_nip
    from sinks.siasn import holds as siasn_holds

    decide = {"hold": siasn_holds.hold, "release": siasn_holds.release, "void": siasn_holds.void}[action]
    try:
        d = decide(migrated_store(), nip, activity, operator=_operator(operator), reason=reason)
    except siasn_holds.DecisionRefused as exc:
        raise CliError(errors.clean(exc), 1) from None
    console.print(f"{action}: {d.pushes} push(es) of {mask_nip(d.nip)} in {errors.clean(d.activity_id, 100)} "
                  f"version {d.result_version}: {d.previous_status} → {d.new_status} (decision {d.id})")


_NipOpt = Annotated[str, typer.Option("--nip", help="The participant's NIP")]
_ActivityOpt = Annotated[str, typer.Option("--activity", help="The activity the result is filed under (home)")]
_ReasonOpt = Annotated[str, typer.Option("--reason", help="Why: kept in the audit trail")]
_OperatorOpt = Annotated[str | None, typer.Option("--operator", help="Who decides (default: the OS user)")]


@siasn_app.command("hold")
def siasn_hold(nip: _NipOpt, activity: _ActivityOpt, reason: _ReasonOpt, operator: _OperatorOpt = None) -> None:
    """Stop a result's unsent SI ASN pushes until someone releases them (audited)."""
    _siasn_decide("hold", nip, activity, reason, operator)


@siasn_app.command("release")
def siasn_release(nip: _NipOpt, activity: _ActivityOpt, reason: _ReasonOpt, operator: _OperatorOpt = None) -> None:
    """Send a held result (e.g. an incomplete one an operator checked) to SI ASN (audited)."""
    _siasn_decide("release", nip, activity, reason, operator)


@siasn_app.command("void")
def siasn_void(nip: _NipOpt, activity: _ActivityOpt, reason: _ReasonOpt, operator: _OperatorOpt = None) -> None:
    """Never send a result's unsent pushes to SI ASN (audited; a rescore's new version is judged afresh)."""
    _siasn_decide("void", nip, activity, reason, operator)


@siasn_app.command("decisions")
def siasn_decisions(
    nip: Annotated[str | None, typer.Option("--nip", help="Only this NIP")] = None,
    activity: Annotated[str | None, typer.Option("--activity", help="Only this activity")] = None,
    full_nip: Annotated[bool, typer.Option("--full-nip", help="Show NIPs unmasked")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The audit trail of holds, releases and voids: who, when, why, and what each changed."""
    from datetime import UTC

    from rich.table import Table

    from schemas.nip import mask_nip
    from sinks.siasn.holds import decisions

    rows = decisions(migrated_store(), nip=nip, activity_id=activity)
    shown = (lambda n: n) if full_nip else mask_nip
    if as_json:
        print(json.dumps([{"id": d.id, "nip": shown(d.nip), "activity_id": d.activity_id,
                           "result_version": d.result_version, "action": d.action, "operator": d.operator,
                           "reason": d.reason, "decided_at": d.decided_at.isoformat(),
                           "previous_status": d.previous_status, "new_status": d.new_status} for d in rows]))
        return
    table = Table(title=f"SI ASN decisions ({len(rows)})")
    for col in ("decided (UTC)", "NIP", "result", "decision", "by", "reason"):
        table.add_column(col, no_wrap=col in ("decided (UTC)", "NIP"))
    for d in rows:
        table.add_row(d.decided_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), shown(d.nip),
                      f"{errors.clean(d.activity_id, 64)} v{d.result_version}",
                      f"{d.action}: {d.previous_status} → {d.new_status}", errors.clean(d.operator, 100),
                      errors.clean(d.reason, 500))
    Console().print(table)


@siasn_app.command("push")
def siasn_push() -> None:
    """Push the SI ASN outbox on its own, until Ctrl-C or SIGTERM (the workers then run without
    CACT_SIASN_PUSH_ENABLED).

    Several pushers may run side by side: each claims pushes with a lease. On a stop the push in flight is
    finished and the rest of the claim handed back at once. /metrics and /healthz on CACT_PUSHER_METRICS_PORT
    (at CACT_PUSHER_METRICS_HOST) when it is set. A database outage is waited out.
    """
    import asyncio
    import logging

    from sinks.metrics_http import Heartbeat, start_metrics_server, until_signalled
    from sinks.siasn.client import SiasnClient
    from sinks.siasn.config import SiasnConfig
    from sinks.siasn.errors import SiasnConfigError
    from sinks.siasn.push import OutboxPusher
    from sinks.siasn.pusher_loop import PusherLoop
    from sinks.store import ResultsStore

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    check_database_url(settings.database_url)  # unusable: stop now; unreachable: the pusher waits for it
    try:
        config = SiasnConfig.from_settings(settings)
    except SiasnConfigError as exc:
        raise CliError(f"cannot push to SI ASN: {exc}") from None
    port, host = settings.pusher_metrics_port, settings.pusher_metrics_host
    heartbeat = Heartbeat()
    server = None
    if port:
        server = start_metrics_server(host, port, health=heartbeat, port_var="CACT_PUSHER_METRICS_PORT",
                                      host_var="CACT_PUSHER_METRICS_HOST")
    where = f", metrics http://{host}:{port}/metrics and /healthz" if port else ""
    console.print(f"cact siasn push: SI ASN {errors.clean(config.base_url, 300)}, results store "
                  f"{errors.clean(errors.mask_url(settings.database_url), 300)}{where}", highlight=False)
    store = ResultsStore(settings.database_url)

    async def push(stop: asyncio.Event) -> int:
        async with SiasnClient(config) as client:
            pusher = PusherLoop(OutboxPusher.from_settings(store, client, settings), stop=stop)
            await pusher.run()
            return pusher.released

    try:
        released = asyncio.run(until_signalled(push, heartbeat))
    finally:
        store.dispose()
        if server is not None:
            server.close()
    console.print(f"cact siasn push stopped: {released} claimed push(es) handed back to the outbox", highlight=False)


@siasn_app.command("retry")
def siasn_retry(
        rejected: Annotated[bool, typer.Option("--rejected", help="Send rejected pushes again")] = False) -> None:
    """Send SI ASN pushes again, e.g. after the rejected records were fixed in SI ASN."""
    from sinks.siasn.push import retry_rejected

    if not rejected:
        raise CliError("nothing to do: say which pushes, e.g. --rejected")
    n = retry_rejected(migrated_store())
    console.print(f"{n} rejected pushes are pending again")
