"""``cact``: the one command for operators, lab integrators and developers."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from cact import preflight
from producers.lab_cli import lab_app
from schemas import errors
from schemas.cli import schemas_app
from schemas.errors import CliError
from schemas.settings import Settings, get_settings
from sinks import store_checks
from sinks.cli import attendance_app, migrated_store, siasn_app, siasn_emulator, sink_app
from sinks.reports.cli import rebuild_reports, reports_app
from streams.accreditation_cli import accreditation_app
from streams.cli import broker


class OneLineErrors(TyperGroup):
    """Every command's known failures (schemas/errors.py) as one line and an exit code; anything else is a bug
    and keeps its traceback. Here, around the whole command tree, because settings are read lazily in many
    commands; and inside click's main, so ``typer.Exit`` gives the code both to ``cact`` and to a CliRunner."""

    def invoke(self, ctx: Any) -> object:  # typer's vendored click.Context, which typer does not export
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):  # typer's own (it carries its own click): they say what they mean
            raise
        except Exception as exc:
            error = preflight.describe(exc)
            if error is None:
                raise
            errors.report(error)
            raise typer.Exit(error.code) from None


app = typer.Typer(cls=OneLineErrors, help="cact-pipeline: CACT exam events from the labs to SI ASN, on Kafka.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(schemas_app, name="schemas")
app.add_typer(attendance_app, name="attendance")
app.add_typer(siasn_app, name="siasn")
app.add_typer(lab_app, name="lab")
app.add_typer(accreditation_app, name="accreditation")
app.add_typer(sink_app, name="sink")
app.add_typer(reports_app, name="reports")
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
    from cact.worker import run_worker
    from schemas.accreditation import AccreditationError, AccreditationRegistry
    from schemas.blueprint import BlueprintError, BlueprintRegistry
    from sinks.siasn.config import SiasnConfig
    from sinks.siasn.errors import SiasnConfigError

    settings = get_settings()
    # What can never work stops the worker now, in one line; a database that is down is waited for instead.
    store_checks.check_database_url(settings.database_url)
    errors.check_port_free(settings.worker_web_host, settings.worker_web_port, "CACT_WORKER_WEB_PORT",
                           "CACT_WORKER_WEB_HOST")
    try:
        BlueprintRegistry.from_settings(settings)  # before the banner: a bad blueprint is one line
        AccreditationRegistry.from_settings(settings)  # and a bad accreditation registry
        if settings.siasn_push_enabled:
            SiasnConfig.from_settings(settings)
        preflight.check_kafka(settings)
        for line in worker_banner(settings):
            print(line, file=sys.stderr, flush=True)
        run_worker(settings, loglevel=loglevel, accept_broker_loss=accept_broker_loss)
    except BlueprintError as exc:
        raise CliError(f"blueprint rejected: {exc}") from None
    except AccreditationError as exc:
        raise CliError(
            f"accreditation registry rejected: {exc} (CACT_ACCREDITATION_FILE, docs/accreditation.md)") from None
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

    from cact.gc_tuning import settle_heap
    from sinks.metrics_http import Heartbeat, start_metrics_server, until_signalled
    from sinks.runner import run_sink

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    store_checks.check_database_url(settings.database_url)  # unusable: stop now; unreachable: the sink waits for it
    port, host = settings.sink_metrics_port, settings.sink_metrics_host
    if port:
        errors.check_port_free(host, port, "CACT_SINK_METRICS_PORT", "CACT_SINK_METRICS_HOST")
    preflight.check_kafka(settings)
    heartbeat = Heartbeat()
    if port:  # a sink of its own has no worker web server: /metrics and /healthz on a port of its own, if asked for
        start_metrics_server(host, port, health=heartbeat, port_var="CACT_SINK_METRICS_PORT",
                             host_var="CACT_SINK_METRICS_HOST")

    settle_heap()  # cact/gc_tuning.py: the sink decodes a model per output, as the worker decodes its input
    asyncio.run(until_signalled(lambda stop: run_sink(settings, stop), heartbeat))


@app.command()
def simulate(
    participants: Annotated[int, typer.Option(help="Participants scheduled")] = 120,
    seats: Annotated[int, typer.Option(help="Seats per session")] = 30,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same day")] = 2024,
    rate: Annotated[float | None, typer.Option(
        help="Events per second on the wall clock (default: as fast as possible)")] = None,
    truth: Annotated[Path | None, typer.Option(help="Write the ground truth (JSON, docs/simulator.md) here")] = None,
    malformed: Annotated[int, typer.Option(help="Malformed events to inject (each must end as a dead letter)")] = 0,
    reschedule: Annotated[float, typer.Option(
        help="Share of no-shows moved into another agency's later session (susulan)")] = 0.3,
    mansoskul_only: Annotated[float, typer.Option(help="Share of sessions with the Mansoskul-only blueprint")] = 0.1,
    offline_lab: Annotated[list[str] | None, typer.Option(help="Lab that loses its network (repeatable)")] = None,
    offline_minutes: Annotated[float, typer.Option(help="How long an offline lab stays offline")] = 30.0,
    offline_at: Annotated[str, typer.Option(help="Lab-local time the outage starts (HH:MM)")] = "07:50",
    clock_skew: Annotated[list[str] | None, typer.Option(
        help="LAB=SECONDS: that lab's clock is ahead (+) or behind (-) (repeatable)")] = None,
    duplicates: Annotated[float, typer.Option(help="Share of events sent twice with the same event_id")] = 0.0,
    blank_sheets: Annotated[int, typer.Option(
        help="Participants who check in and answer nothing (results: incomplete)")] = 0,
    organiser: Annotated[list[str] | None, typer.Option(
        help="AGENCY=ORGANISER: that agency's sessions are run by an institution of the accreditation registry "
             "(repeatable; docs/accreditation.md)")] = None,
) -> None:
    """Simulate a CACT exam day (2024 figures, domain.md §2) and send it to the configured Kafka.

    Faults change how the day is delivered, never what happened: --truth is what the pipeline must show.
    """
    from datetime import time as clock_time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from cact.progress import phases
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
    preflight.check_kafka(s)  # before the day is built: the emitter would otherwise retry an absent Kafka for ever
    registry = BlueprintRegistry.from_settings(s)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("simulating participants' sittings", total=None)
        day = build_day(cfg, registry, progress=lambda done, total: progress.update(task, completed=done, total=total))
    if truth:
        day.write_truth(truth)
    started = time.monotonic()
    with phases(console) as progress:
        sent = send_day(s, day, progress, rate=rate)
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
    from cact.demo import render, run_demo
    from producers.simulator import SimConfig

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
    from cact import rescore as rs
    from cact import rescore_report
    from schemas.blueprint import BlueprintError
    from sinks.rescore_queries import RescoreQueries

    s = get_settings()
    store_checks.check_database_url(s.database_url)
    preflight.check_kafka(s)  # before the blueprint is installed: nothing happens when the request cannot go out
    store = migrated_store()
    try:
        outcome = rs.run(s, RescoreQueries(store.engine), activity, blueprint, reason, wait_seconds, console, dry_run)
    except rs.SendError as exc:
        raise CliError(str(exc), errors.EXIT_UNAVAILABLE) from None
    except (BlueprintError, rs.RescoreError) as exc:
        raise CliError(f"cannot rescore: {exc}") from None
    if outcome is None:
        return
    rescore_report.report(outcome, Console())
    rebuild_reports(activity, Console())  # reports already built show the old results: they get a new version
    if not outcome.ok:
        raise CliError(rescore_report.failure_line(outcome), 1)


# Commands of one package each, after the composition root's own (the order `cact --help` lists them in).
app.command()(broker)
app.command("siasn-emulator")(siasn_emulator)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

