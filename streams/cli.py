"""``cact``: the one command for operators, lab integrators and developers."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from producers.lab_cli import lab_app
from schemas.settings import Settings, get_settings
from streams import errors
from streams.accreditation_cli import accreditation_app
from streams.errors import CliError

if TYPE_CHECKING:
    from sinks.store import ResultsStore


class OneLineErrors(TyperGroup):
    """Every command's known failures (streams/errors.py) as one line and an exit code; anything else is a bug
    and keeps its traceback. Here, around the whole command tree, because settings are read lazily in many
    commands; and inside click's main, so ``typer.Exit`` gives the code both to ``cact`` and to a CliRunner."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            error = errors.describe(exc)
            if error is None:
                raise
            errors.report(error)
            raise typer.Exit(error.code) from None


app = typer.Typer(cls=OneLineErrors, help="cact-pipeline: CACT exam events from the labs to SI ASN, on Kafka.",
                  no_args_is_help=True, add_completion=False)
siasn_app = typer.Typer(help="The automated push to SI ASN: backlog, retries, holds and their audit trail.",
                        no_args_is_help=True)
attendance_app = typer.Typer(help="Attendance: no-show lists for rescheduling.", no_args_is_help=True)
schemas_app = typer.Typer(help="The event contract's JSON Schemas (schemas/json/).", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(attendance_app, name="attendance")
app.add_typer(siasn_app, name="siasn")
app.add_typer(lab_app, name="lab")
app.add_typer(accreditation_app, name="accreditation")
console = Console(stderr=True, soft_wrap=True)  # a line stays one line, also in a log or a narrow terminal


@app.command()
def worker(loglevel: Annotated[str, typer.Option(help="Faust log level")] = "warning",
           accept_broker_loss: Annotated[bool, typer.Option(
               "--accept-broker-loss", help="The broker lost its data and the labs resend: start processing again "
               "(docs/operations.md)")] = False) -> None:
    """Run a stream worker: score sections, track attendance, write results. Stop with Ctrl-C.

    Uses the Kafka in KAFKA_BOOTSTRAP_SERVERS (else the embedded broker's address) and the results store in
    CACT_DATABASE_URL. Run several on different machines to share the partitions.
    """
    from schemas.accreditation import AccreditationError, AccreditationRegistry
    from schemas.blueprint import BlueprintError, BlueprintRegistry
    from sinks.siasn_client import SiasnConfig, SiasnConfigError
    from streams.app import run_worker

    settings = get_settings()
    # What can never work stops the worker now, in one line; a database that is down is waited for instead.
    errors.check_database_url(settings.database_url)
    errors.check_port_free(settings.worker_web_host, settings.worker_web_port, "CACT_WORKER_WEB_PORT",
                           "CACT_WORKER_WEB_HOST")
    try:
        BlueprintRegistry.from_settings(settings)  # before the banner: a bad blueprint is one line
        AccreditationRegistry.from_settings(settings)  # and a bad accreditation registry
        if settings.siasn_push_enabled:
            SiasnConfig.from_env()
        errors.check_kafka(settings)
        for line in worker_banner(settings):
            print(line, file=sys.stderr, flush=True)
        run_worker(settings, loglevel=loglevel, accept_broker_loss=accept_broker_loss)
    except BlueprintError as exc:
        raise CliError(f"blueprint rejected: {exc}") from None
    except AccreditationError as exc:
        raise CliError(f"accreditation registry rejected: {exc} (CACT_ACCREDITATION_FILE, docs/accreditation.md)") from None
    except SiasnConfigError as exc:
        raise CliError(f"SI ASN push enabled (CACT_SIASN_PUSH_ENABLED) but not configured: {exc}") from None


def _http_base(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):  # every interface: name the machine, a browser cannot open 0.0.0.0
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def worker_banner(settings: Settings) -> list[str]:
    """What a starting worker tells its operator: where its pages are, which Kafka and store it uses."""
    base = _http_base(settings.worker_web_host, settings.worker_web_port)
    writes = ("written by this worker's sink" if settings.sink_in_worker
              else "read for the pages; `cact sink` writes it (CACT_SINK_IN_WORKER=false)")
    store = errors.clean(errors.mask_url(settings.database_url), 300)
    token = ("the operator token" if settings.operator_token or settings.operator_token_file
             else "CACT_OPERATOR_TOKEN or _FILE, unset: they answer 401")
    return [f"cact worker: operator page {base}/operator, attendance {base}/attendance.json (both need {token}), "
            f"metrics {base}/metrics",
            f"  Kafka: {errors.kafka_address(settings)}",
            f"  results store: {store} (CACT_DATABASE_URL), {writes}"]


sink_app = typer.Typer(invoke_without_command=True)  # `cact sink` runs it; its subcommands look at it
app.add_typer(sink_app, name="sink")


@sink_app.callback()
def sink(ctx: typer.Context) -> None:
    """Run the results-store sink on its own, until Ctrl-C (workers then run with CACT_SINK_IN_WORKER=false).

    Output topics → results store, one transaction per batch; several sinks share the partitions. Its own
    process means its own interpreter lock: the workers' agents and the database writes no longer take turns.
    A database outage is waited out; a row the database refuses is quarantined (`cact sink quarantine`).
    """
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import logging
    import signal

    from sinks.runner import run_sink

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    errors.check_database_url(settings.database_url)  # unusable: stop now; unreachable: the sink waits for it
    port, host = settings.sink_metrics_port, settings.sink_metrics_host
    if port:
        errors.check_port_free(host, port, "CACT_SINK_METRICS_PORT", "CACT_SINK_METRICS_HOST")
    errors.check_kafka(settings)
    if port:  # a sink of its own has no worker web server: /metrics on a port of its own, if asked for
        from prometheus_client import start_http_server

        try:
            start_http_server(port, addr=host)
        except OSError as exc:  # taken since the check
            raise errors.listen_error(host, port, "CACT_SINK_METRICS_PORT", "CACT_SINK_METRICS_HOST", exc) from None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_sink(settings, stop)

    asyncio.run(serve())


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


@app.command()
def broker(
    port: Annotated[Optional[int], typer.Option(help="Port to listen on (default CACT_BROKER_PORT)")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on")] = None,
    create_topics: Annotated[bool, typer.Option(help="Create the pipeline's topics once it is up")] = True,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory storage) until Ctrl-C."""
    from streams.broker import run_broker_forever

    s = get_settings()
    errors.check_port_free(host or s.broker_host, port or s.broker_port, "--port" if port else "CACT_BROKER_PORT",
                           "--host" if host else "CACT_BROKER_HOST")
    run_broker_forever(host or s.broker_host, port or s.broker_port, create_topics=create_topics)


@app.command()
def simulate(
    participants: Annotated[int, typer.Option(help="Participants scheduled")] = 120,
    seats: Annotated[int, typer.Option(help="Seats per session")] = 30,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same day")] = 2024,
    rate: Annotated[Optional[float], typer.Option(help="Events per second on the wall clock (default: as fast as possible)")] = None,
    truth: Annotated[Optional[Path], typer.Option(help="Write the ground truth (JSON, docs/simulator.md) here")] = None,
    malformed: Annotated[int, typer.Option(help="Malformed events to inject (each must end as a dead letter)")] = 0,
    reschedule: Annotated[float, typer.Option(help="Share of no-shows moved into another agency's later session (susulan)")] = 0.3,
    mansoskul_only: Annotated[float, typer.Option(help="Share of sessions with the Mansoskul-only blueprint")] = 0.1,
    offline_lab: Annotated[Optional[list[str]], typer.Option(help="Lab that loses its network (repeatable)")] = None,
    offline_minutes: Annotated[float, typer.Option(help="How long an offline lab stays offline")] = 30.0,
    offline_at: Annotated[str, typer.Option(help="Lab-local time the outage starts (HH:MM)")] = "07:50",
    clock_skew: Annotated[Optional[list[str]], typer.Option(help="LAB=SECONDS: that lab's clock is ahead (+) or behind (-) (repeatable)")] = None,
    duplicates: Annotated[float, typer.Option(help="Share of events sent twice with the same event_id")] = 0.0,
    blank_sheets: Annotated[int, typer.Option(help="Participants who check in and answer nothing (results: incomplete)")] = 0,
    organiser: Annotated[Optional[list[str]], typer.Option(
        help="AGENCY=ORGANISER: that agency's sessions are run by an institution of the accreditation registry "
             "(repeatable; docs/accreditation.md)")] = None,
) -> None:
    """Simulate a CACT exam day (2024 figures, domain.md §2) and send it to the configured Kafka.

    Faults change how the day is delivered, never what happened: --truth is what the pipeline must show.
    """
    from datetime import time as clock_time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from producers.daysender import send_day
    from producers.exam_network import AGENCY_BY_ID, LAB_BY_ID
    from producers.simulator import SimConfig, build_day
    from schemas.blueprint import BlueprintRegistry

    skews: dict[str, float] = {}
    for item in clock_skew or []:
        lab_id, _, value = item.partition("=")
        try:
            skews[lab_id] = float(value)
        except ValueError:
            raise typer.BadParameter(f"expected LAB=SECONDS, got {item!r}", param_hint="--clock-skew") from None
    organisers: dict[str, str] = {}
    for item in organiser or []:
        agency_id, _, organiser_id = item.partition("=")
        if not agency_id or not organiser_id:
            raise typer.BadParameter(f"expected AGENCY=ORGANISER, got {item!r}", param_hint="--organiser")
        organisers[agency_id] = organiser_id
    strangers = sorted(set(organisers) - set(AGENCY_BY_ID))
    if strangers:
        raise typer.BadParameter(f"unknown agency(ies) {', '.join(strangers)} (producers/exam_network.py lists them)",
                                 param_hint="--organiser")
    unknown = sorted((set(skews) | set(offline_lab or [])) - set(LAB_BY_ID))
    if unknown:
        raise typer.BadParameter(f"unknown lab(s) {', '.join(unknown)}; labs are {', '.join(LAB_BY_ID)}")
    try:
        starts = clock_time.fromisoformat(offline_at)
    except ValueError:
        raise typer.BadParameter(f"expected HH:MM, got {offline_at!r}", param_hint="--offline-at") from None
    cfg = SimConfig(participants=participants, seats=seats, seed=seed, malformed=malformed, reschedule_share=reschedule,
                    mansoskul_only_share=mansoskul_only, offline_labs=tuple(offline_lab or ()),
                    offline_minutes=offline_minutes, offline_at=starts, clock_skew=skews, duplicate_share=duplicates,
                    blank_sheets=blank_sheets, organisers=organisers)
    s = get_settings()
    errors.check_kafka(s)  # before the day is built: the emitter would otherwise retry an absent Kafka for ever
    registry = BlueprintRegistry.from_settings(s)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("simulating participants' sittings", total=None)
        day = build_day(cfg, registry, progress=lambda done, total: progress.update(task, completed=done, total=total))
    if truth:
        day.write_truth(truth)
    started = time.monotonic()
    sent = send_day(s, day, console, rate=rate)
    seconds = time.monotonic() - started
    summary = day.summary()
    table = Table(title=f"simulated exam day {cfg.day} (seed {seed})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("sessions", summary["sessions"]),
        ("labs / agencies", f"{len({p.lab_id for p in day.sessions.values()})} / "
                            f"{len({p.agency_id for p in day.sessions.values()})}"),
        ("participants scheduled", summary["participants_scheduled"]),
        ("checked in (incl. susulan)", summary["participants_checked_in"]),
        ("no-shows", f"{summary['no_shows']} ({summary['no_shows'] / max(1, summary['participants_scheduled']):.1%})"),
        ("rescheduled (susulan)", summary["rescheduled"]),
        ("events sent", sum(sent.values())),
        ("  held by an offline lab", sent["spooled"]),
        ("  duplicates", sent["duplicate"]),
        ("  malformed", sent["malformed"]),
        ("clock skew", ", ".join(f"{k} {v:+g}s" for k, v in day.faults.clock_skew.items()) or "none"),
        ("send time", f"{seconds:.1f} s ({sum(sent.values()) / max(seconds, 1e-9):,.0f}/s)"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    Console().print(table)
    if truth:
        console.print(f"ground truth written to {truth}")


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object")] = False,
    participants: Annotated[int, typer.Option(help="Participants scheduled")] = 120,
    seed: Annotated[int, typer.Option(help="Seed of the simulated day")] = 2024,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its store and logs")] = Path(".cact/demo"),
) -> None:
    """Run a small exam day end to end on embedded defaults and print what reached the results store."""
    from producers.simulator import SimConfig
    from streams.demo import render, run_demo

    try:
        summary = run_demo(get_settings(), SimConfig(participants=participants, seed=seed), console=console,
                           workdir=workdir)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopped the worker and the broker the demo had started[/]")
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(summary, indent=None))
    else:
        render(summary, Console())
    if summary["mismatches"]:
        raise typer.Exit(1)


@app.command()
def rescore(
    activity: Annotated[str, typer.Option(help="Activity (kegiatan) whose results to recompute")],
    blueprint: Annotated[Path, typer.Option(help="The corrected blueprint file (a new version)")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail")] = "item key corrected",
    wait_seconds: Annotated[float, typer.Option(help="How long to wait for the new versions (0: don't)")] = 300,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the sessions and results it would rescore; "
                                                            "install and send nothing")] = False,
) -> None:
    """Recompute an activity's results with a corrected blueprint, wherever they were sat, and check each one.

    The corrected file (a new version) is installed in CACT_BLUEPRINT_CORRECTIONS_DIR, which every worker must
    read. Exits 0 when every result of the activity on that blueprint has a new version on the corrected key;
    else 1, with the results not moved and the sessions whose request was refused (docs/scoring.md §8).
    Older versions stay, marked superseded.
    """
    from schemas.blueprint import BlueprintError
    from sinks.rescore_queries import RescoreQueries
    from streams import rescore as rs

    s = get_settings()
    errors.check_database_url(s.database_url)
    errors.check_kafka(s)  # before the blueprint is installed: nothing happens when the request cannot go out
    store = migrated_store()
    try:
        outcome = rs.run(s, RescoreQueries(store.engine), activity, blueprint, reason, wait_seconds, console, dry_run)
    except rs.SendError as exc:
        raise CliError(str(exc), errors.EXIT_UNAVAILABLE) from None
    except (BlueprintError, rs.RescoreError) as exc:
        raise CliError(f"cannot rescore: {exc}") from None
    if outcome is None:
        return
    rs.report(outcome, Console())
    if not outcome.ok:
        raise CliError(rs.failure_line(outcome), 1)


@attendance_app.command("no-shows")
def attendance_no_shows(
    agency: Annotated[str, typer.Option(help="Agency (instansi) id")],
    out: Annotated[Optional[Path], typer.Option(help="Write the CSV here instead of standard output")] = None,
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


@app.command("siasn-emulator")
def siasn_emulator(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8243,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    latency_ms: Annotated[int, typer.Option(help="Delay every answer by this much")] = 0,
    fail_rate: Annotated[float, typer.Option(help="Share of API calls answered with a 5xx")] = 0.0,
) -> None:
    """Run the SI ASN emulator (tokens, data-utama, save and read-back endpoints) until Ctrl-C.

    Faults can also be changed while it runs: POST /_emulator/faults; counts at GET /_emulator/stats.
    """
    from sinks.siasn_emulator import EmulatorConfig, Faults, run_emulator

    errors.check_port_free(host, port, "--port", "--host")

    def ready(url: str) -> None:
        console.print(f"[green]SI ASN emulator on {url}[/]; a worker pushes to it with:")
        for k, v in EmulatorConfig().client_env(url).items():
            console.print(f"export {k}={v}")

    run_emulator(host, port, Faults(latency_ms=latency_ms, fail_rate=fail_rate), on_ready=ready)


def migrated_store() -> "ResultsStore":
    """The configured results store, or one line saying why not: an unusable URL, a database that does not
    answer, or one no worker has created its tables in yet."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError

    from sinks.store import ResultsStore

    url = get_settings().database_url
    errors.check_database_url(url)
    store = ResultsStore(url)
    try:
        tables = inspect(store.engine).get_table_names()
    except OperationalError as exc:
        raise errors.database_unreachable(url, exc) from None
    if "siasn_outbox" not in tables:
        raise CliError(f"the results store at {errors.clean(errors.mask_url(url), 300)} has no tables yet: start a "
                       "worker (`cact worker` migrates it) or check CACT_DATABASE_URL")
    return store


@siasn_app.command("status")
def siasn_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Pushes by status (held: waiting for an operator, void: withdrawn), the age of the oldest pending one, and
    current results by standing."""
    from rich.table import Table

    from sinks.siasn_push import outbox_status, results_by_standing

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
    from sinks import siasn_holds

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
_OperatorOpt = Annotated[Optional[str], typer.Option("--operator", help="Who decides (default: the OS user)")]


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
    nip: Annotated[Optional[str], typer.Option("--nip", help="Only this NIP")] = None,
    activity: Annotated[Optional[str], typer.Option("--activity", help="Only this activity")] = None,
    full_nip: Annotated[bool, typer.Option("--full-nip", help="Show NIPs unmasked")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The audit trail of holds, releases and voids: who, when, why, and what each changed."""
    from datetime import UTC

    from rich.table import Table

    from schemas.nip import mask_nip
    from sinks.siasn_holds import decisions

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


@siasn_app.command("retry")
def siasn_retry(rejected: Annotated[bool, typer.Option("--rejected", help="Send rejected pushes again")] = False) -> None:
    """Send SI ASN pushes again, e.g. after the rejected records were fixed in SI ASN."""
    from sinks.siasn_push import retry_rejected

    if not rejected:
        raise CliError("nothing to do: say which pushes, e.g. --rejected")
    n = retry_rejected(migrated_store())
    console.print(f"{n} rejected pushes are pending again")


@schemas_app.command("export")
def schemas_export(out: Annotated[Optional[Path], typer.Option(help="Folder to write to")] = None) -> None:
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
