"""``cact demo``: a small exam day through the whole pipeline on embedded defaults, then a summary.

Starts what it needs (the embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set, a worker process, a fresh
SQLite results store), simulates the day, waits until every event has been processed and stored, checks the
store against what was simulated, and stops everything it started, on Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cact.processes import WorkerProcess, consumer_groups, siasn_env, wait_until_pushed
from cact.progress import phases
from producers.daysender import send_day
from producers.simulator import SimConfig, SimDay, build_day
from schemas.blueprint import BlueprintRegistry
from schemas.settings import Settings
from sinks.siasn.emulator import EmulatorThread
from sinks.siasn.push import outbox_status, pushed_results
from sinks.store import ResultsStore
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import ensure_topics, wait_until_consumed


def compare(day: SimDay, stored: dict[str, Any]) -> list[str]:
    """What the store must show for this day; each line that does not hold is a failure."""
    expected = {"participants_scheduled": day.scheduled, "participants_checked_in": day.attended,
                "no_shows": day.scheduled - day.attended, "participants_scored": day.attended,
                "results_in_store": day.attended, "results_pushed_to_siasn": day.attended,
                "siasn_records_saved": day.attended, "deadletters": len(day.malformed)}
    return [f"{k}: expected {v}, store has {stored.get(k)}" for k, v in expected.items() if stored.get(k) != v]


def with_operator_token(settings: Settings, workdir: Path) -> tuple[Settings, str]:
    """The configured operator token, else a new random one in ``workdir/operator-token`` (mode 0600, created
    here, never printed); returns the settings the worker gets and where an operator finds the token."""
    if settings.operator_token_file is not None:
        return settings, f"the token in {settings.operator_token_file}"
    if settings.operator_token is not None:
        return settings, "the token in CACT_OPERATOR_TOKEN"
    path = workdir / "operator-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return settings.model_copy(update={"operator_token_file": path}), f"the token in {path}"


@contextmanager
def remembered_interrupts() -> Iterator[Callable[..., None]]:
    """Ctrl-C raises KeyboardInterrupt as usual and is also remembered; the check it yields raises it again.

    Python drops a KeyboardInterrupt that lands while a finalizer runs ("Exception ignored in ...") or inside
    a library's catch-all (kafka-python 3's I/O kernel logs and swallows BaseException), and the demo then ran
    the whole day and exited 0 (a CI failure). The demo checks between steps and in every progress callback.
    """
    hits: list[int] = []

    def handler(signum: int, frame: object) -> None:
        hits.append(signum)
        raise KeyboardInterrupt

    def check(*_args: object) -> None:
        if hits:
            raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


def run_demo(settings: Settings, cfg: SimConfig, *, console: Console, workdir: Path,
             timeout: float = 240) -> dict[str, Any]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.monotonic()
    with ExitStack() as stack:
        interrupted = stack.enter_context(remembered_interrupts())
        if not settings.uses_external_kafka:
            port = free_port()
            broker = stack.enter_context(EmbeddedBroker(settings.broker_host, port, log_path=workdir / "broker.log"))
            settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap})
            console.print(f"[green]✓[/] embedded Kafka-compatible broker (Tansu) on {broker.bootstrap}")
        settings = settings.model_copy(update={
            "database_url": f"sqlite:///{workdir / 'results.db'}", "data_dir": workdir / "worker",
            "lab_spool_path": workdir / "lab-spool.db",
            "worker_web_port": free_port(),
        })
        settings, token_hint = with_operator_token(settings, workdir)
        asyncio.run(ensure_topics(settings))
        siasn = stack.enter_context(EmulatorThread())
        console.print(f"[green]✓[/] SI ASN emulator on {siasn.url} (the worker pushes every result to it)")
        settings = settings.model_copy(update={"siasn_push_enabled": True})
        worker = WorkerProcess(settings, workdir / "worker.log", extra_env=siasn_env(siasn))
        stack.callback(worker.stop)
        console.print(f"[green]✓[/] worker started (pid {worker.proc.pid}, metrics on "
                      f"http://{settings.worker_web_host}:{settings.worker_web_port}/metrics)")
        console.print(f"[green]✓[/] operator page, while the demo runs: http://{settings.worker_web_host}:"
                      f"{settings.worker_web_port}/operator (log in with {escape(token_hint)})")
        interrupted()
        registry = BlueprintRegistry.from_settings(settings)
        day = build_day(cfg, registry)
        interrupted()
        console.print(f"[green]✓[/] simulated exam day: {day.scheduled} participants in "
                      f"{len({k[0] for k in day.truth})} sessions, {len(day.schedule) + len(day.lab)} events, "
                      f"{len(day.malformed)} malformed on purpose")
        with phases(console) as progress:

            def sending(phase: str, done: int, total: int) -> None:
                interrupted()
                progress(phase, done, total)

            send_day(settings, day, sending)
        interrupted()

        def watch(lag: int) -> None:
            interrupted()
            worker.check(lag)

        with console.status("processing: waiting until every event is in the results store…"):
            asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=timeout, progress=watch))
        if not worker.alive():
            raise RuntimeError(f"the worker died; see {workdir / 'worker.log'}")
        store = ResultsStore(settings.database_url)
        with console.status("pushing: waiting until SI ASN has acknowledged every result…"):
            wait_until_pushed(store, timeout=timeout, progress=watch)
        stored = store.summary()
        summary = {
            "participants_scheduled": stored["participants_scheduled"],
            "participants_checked_in": stored["participants_checked_in"],
            "no_shows": stored["no_shows"],
            "no_show_rate": stored["no_show_rate"],
            "participants_scored": stored["results_in_store"],
            "results_in_store": stored["results_in_store"],
            "results_pushed_to_siasn": pushed_results(store),
            "siasn_outbox": outbox_status(store),
            "siasn_records_saved": siasn.stats()["saves_total"],
            "deadletters": stored["deadletters"],
            "deadletters_by_reason": stored["deadletters_by_reason"],
            "simulated": day.summary(),
            "seconds": round(time.monotonic() - started, 1),
        }
        summary["mismatches"] = compare(day, summary)
        interrupted()
        summary["reports"] = build_reports(store, settings, workdir / "reports", console)
        interrupted()
        return summary


def build_reports(store: ResultsStore, settings: Settings, reports_dir: Path, console: Console) -> list[dict[str, Any]]:
    """Every activity's reports of the demo day, as `cact reports build --all` writes them (docs/reports.md)."""
    from sinks.reports.builder import ReportBuilder
    from sinks.reports.calendar import WorkingCalendar
    from sinks.reports.data import activities
    from sinks.reports.rules import RuleSet

    builder = ReportBuilder(store, reports_dir=reports_dir, calendar=WorkingCalendar.from_file(
        settings.reports_calendar_file), rules=RuleSet.load(settings.reports_rules_file))
    out = []
    with phases(console) as progress:
        for activity in activities(store):
            def show(phase: str, done: int, total: int, activity: str = activity) -> None:
                progress(f"reports {activity}: {phase}", done, total)

            built = builder.build(activity, progress=show)
            out.append({"activity_id": activity, "version": built.version, "individual_reports": built.results,
                        "directory": str(built.directory)})
    return out


def render(summary: dict[str, Any], console: Console) -> None:
    table = Table(title="CACT demo: exam day summary", show_header=True)
    table.add_column("measure")
    table.add_column("in the results store", justify="right")
    table.add_column("simulated", justify="right")
    sim = summary["simulated"]
    rows = [
        ("participants scheduled", summary["participants_scheduled"], sim["participants_scheduled"]),
        ("checked in", summary["participants_checked_in"], sim["participants_checked_in"]),
        ("no-shows", summary["no_shows"], sim["no_shows"]),
        ("no-show rate", f"{summary['no_show_rate']:.1%}",
         f"{sim['no_shows'] / max(1, sim['participants_scheduled']):.1%}"),
        ("participants scored", summary["participants_scored"], sim["participants_checked_in"]),
        ("results pushed to SI ASN", summary["results_pushed_to_siasn"], sim["participants_checked_in"]),
        ("dead letters", summary["deadletters"], sim["malformed_events"]),
    ]
    for name, got, want in rows:
        table.add_row(name, str(got), str(want))
    console.print(table)
    if summary["deadletters_by_reason"]:
        console.print("dead letters by reason: "
                      + ", ".join(f"{k}={v}" for k, v in summary["deadletters_by_reason"].items()))
    if summary.get("reports"):
        reports = Table(title="Reports for the agencies (recap, full report, individual reports)")
        for column in ("activity", "version", "individual reports", "folder"):
            reports.add_column(column, overflow="fold")
        for r in summary["reports"]:
            reports.add_row(escape(r["activity_id"]), f"v{r['version']}", str(r["individual_reports"]),
                            escape(f"{r['activity_id']}/v{r['version']}"))
        console.print(reports)
        root = Path(summary["reports"][0]["directory"]).parent.parent
        console.print(f"reports written to {escape(str(root))} (rekap-*.pdf|xlsx, lengkap-*.pdf, individu/, "
                      "SHA256SUMS); they carry personal data: files 0600 in folders 0700 (docs/reports.md)")
    if summary["mismatches"]:
        console.print("[red]✗ the pipeline disagrees with the simulation:[/]\n  " + "\n  ".join(summary["mismatches"]))
    else:
        console.print(f"[green]✓ every number agrees with the simulation[/] ({summary['seconds']} s)")
