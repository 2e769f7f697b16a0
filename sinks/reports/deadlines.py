"""When each activity's reports are due, and where they stand: not yet due, ready, delivered or late.

Puspenkom ASN promises the agency the recap on working day 11 after the activity's last test day and the full
report on working day 21 (../shared/seeds/002; sinks/reports/calendar.py counts the days). The pipeline can
have both the evening of the test day, but the promise is what the agency holds BKN to, so it is tracked:

- **delivered**: the latest build of the activity has been delivered as this kind;
- **late**: not delivered, and the due date has passed;
- **ready**: not delivered, built, and the activity is over (every session's check-in closed, nobody still
  waiting for a susulan): an operator can deliver it now;
- **not_yet_due**: the activity is still running, or nothing has been built yet.

A report *at risk* is one not delivered with at most ``at_risk_working_days`` working days left (late ones
included): the metric ``cact_reports_at_risk`` and the alert CactReportAtRisk are for it.

The numbers come from light queries (days, builds, deliveries), so the worker's /metrics can read them at
every scrape; the full snapshot is read only to build.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schemas.domain import AttendanceStatus as St
from sinks import models as m
from sinks.engine import aware
from sinks.reports.calendar import WorkingCalendar, due_dates
from sinks.reports.data import last_test_day, local_day
from sinks.reports.model import REPORT_KINDS, WIB
from sinks.store import ResultsStore

STATES = ("not_yet_due", "ready", "delivered", "late")


@dataclass(frozen=True)
class DueRow:
    activity_id: str
    agency_id: str
    agency_name: str
    kind: str
    last_test_day: date
    due: date
    working_days_left: int
    state: str
    running: bool
    built_version: int | None
    delivered_version: int | None
    delivered_at: datetime | None
    at_risk: bool

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("last_test_day", "due", "delivered_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


def state_of(*, today: date, due: date, built: int | None, delivered: int | None, running: bool) -> str:
    """The rules of the module docstring, on plain values (unit-tested)."""
    if built is not None and delivered == built:
        return "delivered"
    if today > due:
        return "late"
    if built is not None and not running:
        return "ready"
    return "not_yet_due"


def due_rows(store: ResultsStore, calendar: WorkingCalendar, *, today: date, at_risk_working_days: int) -> list[DueRow]:
    """One row per activity and report kind, by due date."""
    summaries, r, a, b, d = m.SessionSummaryRow, m.Result, m.Attendance, m.ReportBuild, m.ReportDelivery
    session_days: dict[str, list[date]] = defaultdict(list)
    running: set[str] = set()
    agency: dict[str, tuple[str, str]] = {}
    with Session(store.engine) as s:
        for activity, agency_id, agency_name, starts_at, offset, final in s.execute(
                select(summaries.activity_id, summaries.agency_id, summaries.agency_name,
                       summaries.starts_at, summaries.utc_offset_minutes, summaries.final)):
            session_days[activity].append(local_day(starts_at, offset))
            agency.setdefault(activity, (agency_id, agency_name or ""))
            if not final:
                running.add(activity)
        assessed = {activity: day for activity, day in s.execute(
            select(r.activity_id, func.max(r.assessed_on)).where(r.status == "current").group_by(r.activity_id))}
        for activity, agency_id in s.execute(select(r.activity_id, r.agency_id).distinct()):
            agency.setdefault(activity, (agency_id, ""))
        # Someone of the activity still scheduled somewhere (a susulan seat not yet sat): not over yet.
        running |= set(s.scalars(select(a.activity_id).where(a.status == St.SCHEDULED.value).distinct()))
        built = {activity: v for activity, v in s.execute(select(b.activity_id, func.max(b.version))
                                                          .group_by(b.activity_id))}
        delivered: dict[tuple[str, str], tuple[int, datetime]] = {}
        for x in s.scalars(select(d).order_by(d.delivered_at)):
            delivered[(x.activity_id, x.kind)] = (x.version, x.delivered_at)
    rows = []
    for activity in sorted(set(session_days) | set(assessed)):
        last = last_test_day(session_days.get(activity, []), [assessed[activity]] if activity in assessed else [])
        assert last is not None
        dues = due_dates(calendar, last)
        for kind in REPORT_KINDS:
            version, at = delivered.get((activity, kind), (None, None))
            state = state_of(today=today, due=dues[kind], built=built.get(activity), delivered=version,
                             running=activity in running)
            left = calendar.working_days_left(today, dues[kind])
            rows.append(DueRow(
                activity_id=activity, agency_id=agency.get(activity, ("", ""))[0],
                agency_name=agency.get(activity, ("", ""))[1], kind=kind, last_test_day=last, due=dues[kind],
                working_days_left=left, state=state, running=activity in running, built_version=built.get(activity),
                delivered_version=version, delivered_at=None if at is None else aware(at),
                at_risk=state != "delivered" and left <= at_risk_working_days))
    return sorted(rows, key=lambda x: (x.due, x.activity_id, x.kind))


def today_in_jakarta(now: datetime | None = None) -> date:
    """Working days are Jakarta's: BKN counts them from its own offices."""
    return (now or datetime.now(UTC)).astimezone(WIB).date()


class ReportsCollector(Collector):
    """``cact_reports{kind,state}`` and ``cact_reports_at_risk{kind}``, read at scrape time: bounded labels (two
    kinds, four states), whatever the number of activities."""

    def __init__(self, rows: Callable[[], list[DueRow]]) -> None:
        self._rows = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            rows = self._rows()
        except Exception:  # the store is down or not migrated yet: no series rather than wrong ones
            return
        by_state = GaugeMetricFamily("cact_reports", "Activities' recap and full reports by state (docs/reports.md)",
                                     labels=["kind", "state"])
        at_risk = GaugeMetricFamily("cact_reports_at_risk", "Reports not delivered with few working days left "
                                    "before their due date (late ones included)", labels=["kind"])
        for kind in REPORT_KINDS:
            for state in STATES:
                by_state.add_metric([kind, state], sum(1 for x in rows if x.kind == kind and x.state == state))
            at_risk.add_metric([kind], sum(1 for x in rows if x.kind == kind and x.at_risk))
        yield by_state
        yield at_risk
