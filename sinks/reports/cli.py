"""``cact reports``: due dates and states, building, listing and delivering the agencies' reports."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from schemas import errors
from schemas.errors import CliError
from schemas.settings import Settings, get_settings

if TYPE_CHECKING:
    from sinks.reports.builder import ReportBuilder
    from sinks.reports.calendar import WorkingCalendar

reports_app = typer.Typer(help="Reports for the agencies: recap (working day 11), full report (working day 21), "
                               "individual reports (docs/reports.md).", no_args_is_help=True)
_STATE_STYLE = {"late": "bold red", "ready": "yellow", "delivered": "green", "not_yet_due": "dim"}


def _calendar(settings: Settings) -> WorkingCalendar:
    from sinks.reports.calendar import CalendarFileError, WorkingCalendar

    try:
        return WorkingCalendar.from_file(settings.reports_calendar_file)
    except CalendarFileError as exc:
        raise CliError(f"{errors.clean(exc, 400)} (CACT_REPORTS_CALENDAR_FILE)") from None


def _builder(settings: Settings) -> ReportBuilder:
    from sinks.cli import migrated_store
    from sinks.reports.builder import ReportBuilder
    from sinks.reports.rules import RuleSet, RuleSetError

    store = migrated_store()
    store.create_schema()  # the report tables arrived with migration 0005: a store migrated before has none
    try:
        rules = RuleSet.load(settings.reports_rules_file)
    except RuleSetError as exc:
        raise CliError(f"{errors.clean(exc, 400)} (CACT_REPORTS_RULES_FILE)") from None
    return ReportBuilder(store, reports_dir=settings.reports_dir, calendar=_calendar(settings), rules=rules)


@reports_app.command("due")
def reports_due(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    today: Annotated[str | None, typer.Option("--today", help="Count as of this day (YYYY-MM-DD), e.g. to plan "
                                                               "ahead; default: today in Jakarta")] = None,
) -> None:
    """Every activity's recap and full report: due date by the working-day calendar, days left and state."""
    from datetime import date

    from rich.table import Table

    from sinks.reports.deadlines import due_rows, today_in_jakarta

    settings = get_settings()
    try:
        day = date.fromisoformat(today) if today else today_in_jakarta()
    except ValueError:
        raise CliError(f"--today {str(today)[:40]!r} is not a date: write YYYY-MM-DD") from None
    builder = _builder(settings)
    rows = due_rows(builder.store, builder.calendar, today=day,
                    at_risk_working_days=settings.reports_at_risk_working_days)
    if as_json:
        print(json.dumps([r.to_json() for r in rows]))
        return
    table = Table(title=f"Reports due (as of {day.isoformat()}, Jakarta)")
    for column in ("activity", "agency", "report", "last test day", "due", "working days left", "state", "built",
                   "delivered"):
        table.add_column(column, justify="right" if column in ("working days left", "built") else "left")
    for r in rows:
        style = _STATE_STYLE.get(r.state, "")
        state = r.state.replace("_", " ") + (" · at risk" if r.at_risk and r.state != "late" else "")
        table.add_row(escape(r.activity_id), escape(r.agency_name or r.agency_id), r.kind, r.last_test_day.isoformat(),
                      r.due.isoformat(), str(r.working_days_left), f"[{style}]{state}[/]" if style else state,
                      f"v{r.built_version}" if r.built_version else "-",
                      f"v{r.delivered_version} {r.delivered_at:%Y-%m-%d}" if r.delivered_at else "-")
    Console().print(table)


@reports_app.command("build")
def reports_build(
    activity: Annotated[list[str] | None, typer.Option("--activity", help="Activity id (repeatable)")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every activity the store knows")] = False,
) -> None:
    """Build (or rebuild) an activity's reports from the results store; a changed store gives a new version."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from sinks.reports.builder import NothingToReport
    from sinks.reports.data import activities

    settings = get_settings()
    builder = _builder(settings)
    wanted = activities(builder.store) if every else list(activity or [])
    if not wanted:
        raise CliError("say which reports: --activity ID (repeatable) or --all")
    out = Console()
    for name in wanted:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=out, transient=True) as bar:
            task = bar.add_task(f"{escape(name)}: reading the store", total=None)

            def show(phase: str, done: int, total: int, task: TaskID = task, name: str = name) -> None:
                bar.update(task, description=f"{escape(name)}: {phase}", completed=done, total=total)

            try:
                built = builder.build(name, progress=show)
            except NothingToReport as exc:
                raise CliError(str(exc)) from None
        what = "built" if built.created else "unchanged (the store has not changed since it was built)"
        reason = f" ({built.reason})" if built.created and built.reason else ""
        out.print(f"[green]✓[/] {escape(name)} reports v{built.version} {what}{escape(reason)}: {built.results} "
                  f"individual reports, {len(built.files)} files in {escape(str(built.directory))}")


def rebuild_reports(activity_id: str, out: Console) -> None:
    """After a rescore: an activity whose reports were built gets them rebuilt as a new version, which says
    which version it supersedes and why; an activity never built is left for `cact reports build`."""
    settings = get_settings()
    builder = _builder(settings)
    if builder.latest(activity_id) is None:
        return
    built = builder.build(activity_id)
    if built.created:
        out.print(f"[green]✓[/] reports of {escape(activity_id)} rebuilt as v{built.version} "
                  f"({escape(built.reason or '')}) in {escape(str(built.directory))}: deliver them again with "
                  "`cact reports deliver`")


@reports_app.command("list")
def reports_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The builds with their files, sizes and SHA-256 checksums, and their deliveries."""
    from rich.table import Table

    from sinks.reports.catalog import builds

    rows = builds(_builder(get_settings()).store)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="Report builds")
    for column in ("activity", "version", "built", "individual", "recap/full files (sha256)", "delivered"):
        table.add_column(column)
    for b in rows:
        files = "\n".join(f"{f['name']}  {f['sha256'][:16]}…" for f in b["files"] if f["kind"] != "individual")
        table.add_row(escape(b["activity_id"]), f"v{b['version']}", b["built_at"][:16], str(b["results"]),
                      escape(files), ", ".join(f"{d['kind']} {d['delivered_at'][:10]}" for d in b["deliveries"]) or "-")
    Console().print(table)


@reports_app.command("deliver")
def reports_deliver(
    activity: Annotated[str, typer.Option("--activity", help="Activity id")],
    kind: Annotated[str, typer.Option("--kind", help="recap or full")],
    operator: Annotated[str | None, typer.Option("--operator", help="Who delivers (default: the OS user)")] = None,
) -> None:
    """Place the latest build's recap (PDF + XLSX) or full report where CACT_REPORTS_DELIVERY_DIR says, checked
    against its checksums, and record the delivery; a build the store has since changed is refused."""
    from sinks.cli import _operator
    from sinks.reports.catalog import DeliveryRefused, deliver

    settings = get_settings()
    builder = _builder(settings)
    try:
        version, where, files = deliver(builder.store, activity, kind, target_dir=settings.reports_delivery_dir,
                                        operator=_operator(operator), current=builder.is_current(activity))
    except DeliveryRefused as exc:
        raise CliError(str(exc)) from None
    Console().print(f"[green]✓[/] {kind} report v{version} of {escape(activity)} delivered to {escape(str(where))}: "
                    f"{escape(', '.join(files))}")
