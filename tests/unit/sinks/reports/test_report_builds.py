"""Builds, versions, the catalog and deliveries on a SQLite results store (no broker, no subprocess).

What a builder must never do: make a new version from an unchanged store, keep the old version number for a
changed one, leave a readable file, offer a file that was changed on disk, or deliver a build the store has
since corrected.
"""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from schemas.domain import AttendanceStatus as St
from sinks.reports import catalog
from sinks.reports.builder import NothingToReport, ReportBuilder
from sinks.reports.calendar import WorkingCalendar
from sinks.reports.data import read_activity
from sinks.reports.deadlines import due_rows, state_of
from sinks.reports.rules import RuleSet
from sinks.store import ResultsStore
from support.store_scenarios import T0, StoreCases, nip

ACTIVITY = "ACT-2026-11"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    s.create_schema()
    c = StoreCases
    s.write_batch([c.session_summary("S-JKT-01", T0, scheduled=3, no_show=1, final=True),
                   c.attendance(nip(1), St.CHECKED_IN, T0), c.attendance(nip(2), St.CHECKED_IN, T0),
                   c.attendance(nip(3), St.NO_SHOW, T0), c.scored(nip(1)), c.scored(nip(2), level=2)])
    return s


@pytest.fixture
def builder(store: ResultsStore, tmp_path: Path) -> ReportBuilder:
    return ReportBuilder(store, reports_dir=tmp_path / "reports", calendar=WorkingCalendar(), rules=RuleSet.load(None),
                         clock=Clock())


def test_the_activity_is_read_as_stored(store: ResultsStore) -> None:
    data = read_activity(store, ACTIVITY)
    assert [r.nip for r in data.results] == [nip(1), nip(2)]
    assert {a.nip: a.status for a in data.attendance} == {nip(1): "present", nip(2): "present", nip(3): "no_show"}
    assert [c.level for c in data.results[1].competencies] == [2] * 9 and data.results[1].category == "Kurang Optimal"
    assert data.last_test_day == T0.date() and data.open_sessions == 0


def test_a_build_is_private_checksummed_and_not_repeated_for_an_unchanged_store(builder: ReportBuilder) -> None:
    first = builder.build(ACTIVITY)
    assert first.created and first.version == 1 and first.results == 2
    assert stat.S_IMODE(first.directory.stat().st_mode) == 0o700
    files = [p for p in first.directory.rglob("*") if p.is_file()]
    assert len(files) == 2 + 2 + 1 + 1  # recap pdf + xlsx, two individual, full, SHA256SUMS
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    sums = dict(reversed(line.split("  ")) for line in (first.directory / "SHA256SUMS").read_text().splitlines())
    assert sums.keys() == {f["name"] for f in first.files}
    again = builder.build(ACTIVITY)
    assert not again.created and again.version == 1 and builder.is_current(ACTIVITY)


def test_a_changed_store_gives_the_next_version_naming_the_one_it_supersedes(builder: ReportBuilder,
                                                                              store: ResultsStore) -> None:
    builder.build(ACTIVITY)
    store.write_batch([StoreCases.scored(nip(2), 2, blueprint_version="2026.2", level=4)])
    assert not builder.is_current(ACTIVITY)
    second = builder.build(ACTIVITY)
    assert (second.version, second.created) == (2, True) and second.reason and "dinilai ulang" in second.reason
    assert (second.directory.parent / "v1").is_dir()  # the old build stays, as it may have been delivered
    rescored = next(r for r in read_activity(store, ACTIVITY).results if r.nip == nip(2))
    assert rescored.result_version == 2 and [e.result_version for e in rescored.earlier] == [1]


def test_a_recorded_build_whose_files_are_gone_is_not_offered_and_is_replaced(builder: ReportBuilder,
                                                                               store: ResultsStore) -> None:
    first = builder.build(ACTIVITY)
    shutil.rmtree(first.directory)  # a crash between the record and the rename, or a lost disk
    assert catalog.report_file(store, ACTIVITY, 1, f"rekap-{ACTIVITY}.pdf") is None
    again = builder.build(ACTIVITY)
    assert (again.version, again.created) == (2, True) and again.directory.is_dir()
    assert not list(again.directory.parent.glob(".*partial"))


def test_the_catalog_serves_only_recorded_intact_files(builder: ReportBuilder, store: ResultsStore) -> None:
    built = builder.build(ACTIVITY)
    name = f"rekap-{ACTIVITY}.pdf"
    found = catalog.report_file(store, ACTIVITY, 1, name)
    assert found is not None and found.content_type == "application/pdf"
    assert catalog.report_file(store, ACTIVITY, 1, "../../results.db") is None
    assert catalog.report_file(store, ACTIVITY, 2, name) is None
    assert catalog.report_file(store, ACTIVITY, 1, "SHA256SUMS") is None  # not a report the build recorded
    (built.directory / name).write_bytes(b"%PDF-1.4 tampered")
    assert catalog.report_file(store, ACTIVITY, 1, name) is None


def test_delivery_copies_the_latest_build_and_refuses_a_stale_one(builder: ReportBuilder, store: ResultsStore,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(catalog.DeliveryRefused, match="no report yet"):
        catalog.deliver(store, ACTIVITY, "recap", target_dir=tmp_path / "out", operator="op", current=False)
    builder.build(ACTIVITY)
    with pytest.raises(catalog.DeliveryRefused, match="CACT_REPORTS_DELIVERY_DIR"):
        catalog.deliver(store, ACTIVITY, "recap", target_dir=None, operator="op", current=True)
    version, where, files = catalog.deliver(store, ACTIVITY, "full", target_dir=tmp_path / "out", operator="op",
                                            current=builder.is_current(ACTIVITY))
    assert version == 1 and sorted(files) == [f"lengkap-{ACTIVITY}.pdf", f"rekap-{ACTIVITY}.xlsx"]
    assert all(stat.S_IMODE((where / f).stat().st_mode) == 0o600 for f in files)
    store.write_batch([StoreCases.scored(nip(1), 2, level=5)])
    with pytest.raises(catalog.DeliveryRefused, match="changed since report version 1"):
        catalog.deliver(store, ACTIVITY, "recap", target_dir=tmp_path / "out", operator="op",
                        current=builder.is_current(ACTIVITY))
    assert [d["kind"] for b in catalog.builds(store) for d in b["deliveries"]] == ["full"]


def test_nothing_to_report_for_an_unknown_activity(builder: ReportBuilder) -> None:
    with pytest.raises(NothingToReport, match="ACT-nope"):
        builder.build("ACT-nope")


@pytest.mark.parametrize(("today", "built", "delivered", "running", "state"), [
    (date(2026, 11, 10), None, None, False, "not_yet_due"),   # over, nothing built yet
    (date(2026, 11, 10), 1, None, True, "not_yet_due"),       # built, but a susulan is still to come
    (date(2026, 11, 10), 1, None, False, "ready"),
    (date(2026, 11, 18), 1, None, False, "ready"),            # the due date itself is still on time
    (date(2026, 11, 19), 1, None, False, "late"),
    (date(2026, 11, 19), None, None, True, "late"),
    (date(2026, 11, 19), 2, 1, False, "late"),                # v1 went out, v2 (a rescore) has not
    (date(2026, 11, 30), 2, 2, False, "delivered"),
])
def test_report_states(today: date, built: int | None, delivered: int | None, running: bool, state: str) -> None:
    assert state_of(today=today, due=date(2026, 11, 18), built=built, delivered=delivered, running=running) == state


def test_due_rows_and_at_risk(builder: ReportBuilder, store: ResultsStore) -> None:
    # T0's day: the recap is due on working day 11 after it, the full report on day 21
    rows = {r.kind: r for r in due_rows(store, WorkingCalendar(), today=T0.date(), at_risk_working_days=2)}
    cal = WorkingCalendar()
    assert rows["recap"].due == cal.working_day_after(T0.date(), 11) and rows["full"].due == cal.working_day_after(
        T0.date(), 21)
    assert rows["recap"].state == "not_yet_due" and not rows["recap"].at_risk
    builder.build(ACTIVITY)
    near = cal.working_day_after(T0.date(), 9)  # two working days left before the recap is due
    rows = {r.kind: r for r in due_rows(store, cal, today=near, at_risk_working_days=2)}
    assert rows["recap"].state == "ready" and rows["recap"].working_days_left == 2 and rows["recap"].at_risk
    assert not rows["full"].at_risk
