"""The operator page in a real headless Chromium, served by a real worker on a real exam day.

Playwright drives Debian's Chromium (`make browser`); it never downloads a browser of its own. The operator
logs in through the page's own form with the operator token; the numbers on the page must equal what the
results store says (`attendance_overview`) and what was simulated, a new event must show up by polling,
without the page being reloaded, and a rotated token sends the page back to the login form. Mid-day (a day
sent only up to a cutoff, moved in time so that the cutoff is now): the rates of the sessions whose check-in
window closed equal the simulator's truth computed here, later sessions read "not started", times are the
labs' own with WIB/WITA/WIT, and the freshness line counts the messages the worker has still to read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import CHECKIN_OPENS_MINUTES, SimConfig, SimDay, build_day
from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.events import SessionClosed, SessionScheduled
from schemas.settings import Settings
from sinks.attendance_view import attendance_overview
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
FIELDS = {"overall": ("scheduled", "checked_in", "no_show", "rescheduled", "no_show_rate", "sessions_closed"),
          "agency": ("scheduled", "checked_in", "no_show", "rescheduled", "no_show_rate", "sessions_closed"),
          "lab": ("scheduled", "checked_in", "no_show", "no_show_rate", "sessions_closed"),
          "session": ("scheduled", "checked_in", "no_show", "rescheduled", "no_show_rate")}
SILENT_AFTER_S = 4
TOKEN = "browser-test-operator-token-5e8f2a"
ROTATED = "browser-test-rotated-token-91c4d7"
#: What a rate cell says while no check-in window of its row has closed.
PENDING = {"not_started": "not started", "in_checkin": "in check-in", "no_participants": "–"}


def percent(rate: float) -> str:
    """The page's rounding (half up on the rate's 4 decimals, one decimal shown), the same in every browser."""
    return f"{math.floor(rate * 1000 + 0.5) / 10:.1f}%"


def shown(row: dict[str, Any], field: str, pending: str | None = None) -> str:
    """How the page writes a cell: counts as they are, the rate as a percentage or what it waits for."""
    if field == "no_show_rate":
        return percent(row[field]) if row[field] is not None else PENDING.get(pending or "", "–")
    if field == "sessions_closed":
        return f"{row['sessions_closed']} of {row['sessions']}"
    return str(row[field])


def expected_on_page(overview: dict[str, Any]) -> dict[str, str]:
    o = overview["overall"]
    out = {f"overall-{f}": shown(o, f, o.get("rate_pending")) for f in FIELDS["overall"]}
    for prefix, rows, key in (("agency", overview["by_agency"], "agency_id"), ("lab", overview["by_lab"], "lab_id"),
                              ("session", overview["sessions"], "session_id")):
        for row in rows:
            pending = row["state"] if prefix == "session" else row.get("rate_pending")
            out.update({f"{prefix}-{row[key]}-{f}": shown(row, f, pending) for f in FIELDS[prefix]})
    return out


def expected_from_truth(days: list[SimDay]) -> dict[str, str]:
    """The simulation's ground truth, counted the way the page shows it (no susulan in these days)."""
    counts: dict[str, Counter[str]] = {}
    for day in days:
        # the hosting lab, which the schedule names (BKN's scheduler sends it)
        lab_of = {e.payload.session_id: e.payload.lab_id or e.lab_id for e in day.schedule
                  if isinstance(e, SessionScheduled)}
        for t in day.truth.values():
            for key in ("overall", f"agency-{t.agency_id}", f"lab-{lab_of[t.session_id]}"):
                c = counts.setdefault(key, Counter())
                c["scheduled"] += 1
                c["checked_in"] += t.attended_anywhere
                c["no_show"] += not t.attended_anywhere
                c["rescheduled"] += t.rescheduled_to is not None
    out = {}
    for key, c in counts.items():
        row = {**c, "no_show_rate": round(c["no_show"] / c["scheduled"], 4)}
        prefix = key.split("-", 1)[0]
        out.update({f"{key}-{f}": shown(row, f) for f in FIELDS[prefix] if f != "sessions_closed"})
    return out


def numbers_on_page(page: Page) -> dict[str, str]:
    """Every number cell of the overall headline and the session, agency and lab tables, by data-testid."""
    cells: dict[str, str] = page.eval_on_selector_all(
        "[data-testid][data-value]", "els => Object.fromEntries(els.map(e => [e.dataset.testid, e.textContent]))")
    return {k: v for k, v in cells.items() if k.split("-", 1)[0] in FIELDS}


def wait_until_page_equals(page: Page, want: dict[str, str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while numbers_on_page(page) != want and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert numbers_on_page(page) == want


def consumed(settings: Settings, worker: WorkerProcess, timeout: float = 180) -> None:
    """wait_until_consumed in a thread of its own: the Playwright sync API owns this thread's event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=timeout,
                                            progress=worker.check))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def write_token(path: Path, token: str) -> Path:
    """As an administrator rotates it: a new private file renamed over the old one."""
    aside = path.with_suffix(".new")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    aside.replace(path)
    return path


def log_in(page: Page, token: str) -> None:
    """Through the login form the worker answers in place of the page, as an operator does."""
    page.locator('[data-testid="login-form"]').wait_for(state="visible", timeout=15_000)
    page.fill('[data-testid="login-token"]', token)
    with page.expect_navigation():
        page.click('[data-testid="login-submit"]')


def classes(page: Page, testid: str) -> list[str]:
    return (page.get_attribute(f'[data-testid="{testid}"]', "class") or "").split()


@pytest.mark.broker
@pytest.mark.postgres
def test_operator_page_shows_the_days_numbers_live(pipeline_kafka: Settings, pg_database: str,
                                                   tmp_path: Path) -> None:
    registry = BlueprintRegistry.from_dir()
    day = build_day(SimConfig(participants=90, seats=30, seed=3), registry)
    # A threshold between the agencies' true no-show rates, so the page must highlight some rows and not others.
    rates = sorted(r["no_show"] / r["scheduled"] for r in day.by_agency().values())
    assert rates[0] < rates[-1]
    threshold = round((rates[0] + rates[-1]) / 2, 4)
    token_file = write_token(tmp_path / "operator-token", TOKEN)
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database, "noshow_threshold": threshold,
                                                 "lab_silent_after_seconds": SILENT_AFTER_S,
                                                 "operator_token_file": token_file})
    store = ResultsStore(pg_database)

    def overview() -> dict[str, Any]:
        return attendance_overview(store, threshold=threshold, silent_after_s=SILENT_AFTER_S, lab_last_seen={},
                                   now=datetime.now(UTC))

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        send_day(settings, day)
        consumed(settings, worker)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                base = f"http://127.0.0.1:{settings.worker_web_port}"
                # ---- not logged in: the worker answers 401 with its login form; a wrong token is refused --
                first_answer = page.goto(f"{base}/operator", wait_until="load")
                assert first_answer is not None and first_answer.status == 401
                log_in(page, "not-the-token-at-all-0000")
                assert page.locator('[data-testid="login-message"]').inner_text() == "Token salah / wrong token"
                assert page.url == f"{base}/login"
                log_in(page, TOKEN)
                assert page.url == f"{base}/operator"
                assert page.evaluate("document.cookie") == ""  # HttpOnly: no script on the page can read it
                page.wait_for_function("window.__cactUpdates >= 1", timeout=15_000)  # the page shows data

                # ---- the day as sent: page == results store == simulation ------------------------------
                first = overview()
                want = expected_on_page(first)
                wait_until_page_equals(page, want)
                truth = expected_from_truth([day])
                assert {k: want[k] for k in truth} == truth
                assert {s["state"] for s in first["sessions"]} == {"closed"}  # the day is over
                assert want["overall-sessions_closed"] == f"{len(day.sessions)} of {len(day.sessions)}"
                assert {r["agency_id"] for r in first["by_agency"]} == {t.agency_id for t in day.truth.values()}
                assert page.locator('[data-testid="overall-no_show"]').inner_text() == str(day.scheduled - day.attended)
                assert page.locator('[data-testid="threshold"]').inner_text() == f"{threshold * 100:.1f}%"
                above = {r["agency_id"] for r in first["by_agency"] if r["above_threshold"]}
                assert above and above != {r["agency_id"] for r in first["by_agency"]}
                for r in first["by_agency"]:
                    assert ("above-threshold" in classes(page, f"agency-{r['agency_id']}")) == r["above_threshold"]
                for r in first["by_lab"]:
                    assert ("above-threshold" in classes(page, f"lab-{r['lab_id']}")) == r["above_threshold"]
                    assert "silent" not in classes(page, f"lab-{r['lab_id']}")
                    assert not page.locator(f'[data-testid="lab-{r["lab_id"]}-silent"]').is_visible()
                assert page.locator('[data-testid="connection-lost"]').is_hidden()
                assert page.locator('[data-testid="last-updated"]').get_attribute("data-value")

                # ---- more events: a second, still running session (yesterday's, no SessionClosed) ----------
                marker = f"loaded-once-{time.monotonic_ns()}"
                page.evaluate("m => { window.__testMarker = m; }", marker)
                loaded_at = page.evaluate("window.__cactPageLoadedAt")
                updates = page.evaluate("window.__cactUpdates")
                yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
                second = build_day(SimConfig(participants=30, seats=30, seed=4, malformed=0, day=yesterday), registry)
                second = dataclasses.replace(second, lab=[e for e in second.lab if not isinstance(e, SessionClosed)])
                send_day(settings, second)
                consumed(settings, worker)
                page.wait_for_function(
                    "n => document.querySelector('[data-testid=\"overall-scheduled\"]').dataset.value == n",
                    arg=str(day.scheduled + second.scheduled), timeout=20_000)

                now = overview()
                want = expected_on_page(now)
                wait_until_page_equals(page, want)
                truth = expected_from_truth([day, second])
                assert {k: want[k] for k in truth} == truth
                # updated by polling, not by a reload: same document, same load, several fetches later
                assert page.evaluate("window.__testMarker") == marker
                assert page.evaluate("window.__cactPageLoadedAt") == loaded_at
                assert page.evaluate("window.__cactUpdates") > updates
                assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
                assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"

                # the running session is listed with its numbers, past its check-in window
                live = [s for s in now["sessions"] if s["state"] != "closed"]
                assert [s["session_id"] for s in live] == [k[0] for k in list(second.truth)[:1]]
                assert live[0]["state"] == "window_closed"
                session = live[0]
                assert page.locator(f'[data-testid="session-{session["session_id"]}-checked_in"]').inner_text() == str(
                    second.attended)
                assert ("above-threshold" in classes(page, f"session-{session['session_id']}")) == session[
                    "above_threshold"]

                # its lab has sent nothing for SILENT_AFTER_S seconds while the session runs: marked silent
                lab = session["lab_id"]
                badge = page.locator(f'[data-testid="lab-{lab}-silent"]')
                badge.wait_for(state="visible", timeout=20_000)
                assert badge.inner_text().startswith("silent · last event ")
                assert "silent" in classes(page, f"lab-{lab}")
                assert [r["lab_id"] for r in now["by_lab"] if "silent" in classes(page, f"lab-{r['lab_id']}")] == [lab]
                page.screenshot(path=str(tmp_path / "operator.png"), full_page=True)

                # ---- the token is rotated: the page goes back to the login form, the new token works ----
                write_token(token_file, ROTATED)
                page.wait_for_url(f"{base}/login?next=%2Foperator", timeout=15_000)
                log_in(page, ROTATED)
                assert page.url == f"{base}/operator"
                page.wait_for_function("window.__cactUpdates >= 1", timeout=15_000)

                # ---- the worker goes away: a visible banner, and the page keeps retrying -------------------
                worker.stop()
                failures = page.evaluate("window.__cactFailures")
                page.locator('[data-testid="connection-lost"]').wait_for(state="visible", timeout=15_000)
                page.wait_for_function("n => window.__cactFailures > n + 1", arg=failures, timeout=15_000)
                assert page.locator('[data-testid="overall-scheduled"]').inner_text() == str(
                    day.scheduled + second.scheduled)  # the last numbers stay on screen
                page.screenshot(path=str(tmp_path / "operator-connection-lost.png"), full_page=True)
                assert errors == []
            finally:
                browser.close()
    finally:
        worker.stop()


#: The freshness line's count and the partition table's rows, read in one go (the page refreshes every 2 s).
PARTITION_ROWS = """() => ({
  behind: document.querySelector('[data-testid="freshness"]').getAttribute('data-behind'),
  rows: Array.from(document.querySelectorAll('#partitions tbody tr[data-key]')).map(tr => ({
    topic: tr.querySelector('.t-topic').textContent,
    partition: tr.querySelector('.t-partition').textContent,
    lag: tr.querySelector('[data-testid$="-lag"]').getAttribute('data-value')}))
})"""


# ---- mid-day: rates over closed windows, lab-local times, the freshness line ----------------------------

#: 12:15 WIB, 13:15 WITA, 14:15 WIT: the morning sessions and the WIT afternoon have closed check-in, the WITA
#: afternoon is in check-in (13:00, closes 13:30), the WIB afternoon opens check-in at 12:30. Every boundary is
#: 15 minutes away, far more than the test takes once moved to now.
CUTOFF = datetime(2026, 11, 3, 5, 15, tzinfo=UTC)
#: Seed and size with sessions in all three states, in all three zones, and susulan moves decided before the cutoff.
MID_DAY = SimConfig(participants=240, seats=30, seed=11, malformed=0, reschedule_share=0.5, day=CUTOFF.date())


def shifted(e: ev.Event, by: timedelta) -> ev.Event:
    """The same event ``by`` later: its time and the schedule's times, in the same zone."""
    times = {k: v + by for k, v in e.payload.__dict__.items() if isinstance(v, datetime)}
    return e.model_copy(update={"occurred_at": e.occurred_at + by, "payload": e.payload.model_copy(update=times)})


def until(day: SimDay, cutoff: datetime, by: timedelta) -> SimDay:
    """What the labs and the scheduler had sent by ``cutoff`` (a susulan decided later is not sent), moved ``by``."""
    return dataclasses.replace(day, schedule=[shifted(e, by) for e in day.schedule if e.occurred_at < cutoff],
                               lab=[shifted(e, by) for e in day.lab if e.occurred_at < cutoff], malformed=[])


@dataclasses.dataclass
class MidDayTruth:
    """The simulator's day as known at the cutoff, counted by the rule on the page, written here from the
    simulation alone: a participant counts in the seat they hold at the cutoff (their susulan seat if the move
    was decided by then), once that session's check-in window has been closed by a lab event at or after its
    closing time; the rate is no-shows among them."""

    states: dict[str, str]
    seats: dict[str, list[bool]]  # session -> attended?, per participant holding a seat there
    persons: list[tuple[str, str, str, str, str, bool]]  # (agency, activity, home, seat, seat's lab, attended)

    @classmethod
    def of(cls, day: SimDay, cutoff: datetime) -> MidDayTruth:
        sent = [e for e in day.lab if e.occurred_at < cutoff]
        window_closed = {e.payload.session_id for e in sent
                         if e.occurred_at >= day.sessions[e.payload.session_id].checkin_closes_at}
        lab_closed = {e.payload.session_id for e in sent if isinstance(e, SessionClosed)}
        states = {}
        for sid, plan in day.sessions.items():
            opens = plan.starts_at - timedelta(minutes=CHECKIN_OPENS_MINUTES)
            states[sid] = ("closed" if sid in lab_closed else "window_closed" if sid in window_closed
                           else "in_checkin" if opens <= cutoff else "not_started")
        moves = {(e.payload.from_session_id, e.payload.nip): e.payload.to_session_id for e in day.schedule
                 if isinstance(e, ev.ParticipantRescheduled) and e.occurred_at < cutoff}
        seats: dict[str, list[bool]] = {}
        persons = []
        for t in day.truth.values():
            moved = moves.get((t.session_id, t.nip))
            seat, attended = (moved, t.attended_susulan) if moved else (t.session_id, t.attended)
            if states[seat] in ("window_closed", "closed"):
                seats.setdefault(seat, []).append(attended)
                persons.append((t.agency_id, t.activity_id, t.session_id, seat, day.sessions[seat].lab_id, attended))
        return cls(states, seats, persons)

    def rates(self) -> dict[str, float]:
        """Rate per row key of the page (``session-S1``, ``agency-bps``, ``lab-…``, ``activity-…``, ``overall``)."""
        groups: dict[str, list[bool]] = {f"session-{sid}": attended for sid, attended in self.seats.items()}
        for agency, activity, _, _, lab, attended in self.persons:
            for key in (f"agency-{agency}", f"activity-{activity}", f"lab-{lab}", "overall"):
                groups.setdefault(key, []).append(attended)
        return {k: round(sum(not a for a in v) / len(v), 4) for k, v in groups.items()}


def rate_cells(page: Page) -> dict[str, str]:
    cells: dict[str, str] = page.eval_on_selector_all(
        '[data-testid$="-no_show_rate"]', "els => Object.fromEntries(els.map(e => [e.dataset.testid, e.textContent]))")
    return {k.removesuffix("-no_show_rate"): v for k, v in cells.items()}


@pytest.mark.broker
@pytest.mark.postgres
def test_mid_day_rates_count_closed_windows_and_the_page_says_how_far_behind_it_is(
        pipeline_kafka: Settings, pg_database: str, tmp_path: Path) -> None:
    registry = BlueprintRegistry.from_dir()
    day = build_day(MID_DAY, registry)
    truth = MidDayTruth.of(day, CUTOFF)
    assert set(truth.states.values()) >= {"window_closed", "in_checkin", "not_started"}
    assert {p.starts_at.tzname() for p in day.sessions.values()} == {"WIB", "WITA", "WIT"}
    assert any(home != seat for _, _, home, seat, _, _ in truth.persons)  # a susulan already counts where it sat
    # The cutoff becomes now: the page's clock and the labs' clocks agree, as on a real exam day.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    by = now - CUTOFF
    mid = until(day, CUTOFF, by)
    token_file = write_token(tmp_path / "operator-token", TOKEN)
    settings = pipeline_kafka.model_copy(update={
        "database_url": pg_database, "operator_token_file": token_file,
        # only event time closes windows here: the wall-clock fallback would close the sessions in check-in
        "wall_clock_lag_seconds": 86_400,
        # one message per batch: the worker takes long enough over the morning for the page to watch it catch up
        "batch_max": 1})
    send_day(settings, mid)  # all of it before the worker starts: it starts that far behind
    sent = len(mid.schedule) + len(mid.lab)

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    base = f"http://127.0.0.1:{settings.worker_web_port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1200})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                deadline = time.monotonic() + 60
                while True:  # the worker's web server comes up with the worker
                    worker.check()
                    try:
                        page.goto(f"{base}/operator", wait_until="load")
                        break
                    except Exception:  # noqa: BLE001 - connection refused until it listens
                        assert time.monotonic() < deadline, "the worker's web server did not come up"
                        page.wait_for_timeout(200)
                log_in(page, TOKEN)

                # ---- while it catches up: "N messages behind", N > 0, on the page and on /metrics ----------
                behind: list[int] = []
                lines: set[str] = set()
                per_partition: list[dict[str, Any]] = []
                lagging_metric = 0.0
                deadline = time.monotonic() + 240
                while True:
                    worker.check()
                    value = page.get_attribute('[data-testid="freshness"]', "data-behind")
                    if value not in (None, "unknown"):
                        behind.append(int(value))
                        if int(value) > 0:
                            lines.add(page.locator('[data-testid="freshness"]').inner_text())
                            per_partition.append(page.evaluate(PARTITION_ROWS))
                            if not lagging_metric:
                                metrics = httpx.get(f"{base}/metrics", timeout=10).text
                                lagging_metric = sum(float(v) for v in re.findall(
                                    r'^cact_consumer_lag_messages\{[^}]*\} (\S+)$', metrics, re.M))
                        if behind[-2:] == [0, 0]:
                            break
                    assert time.monotonic() < deadline, f"never caught up; seen {behind[-5:]}"
                    page.wait_for_timeout(250)
                assert max(behind) > 0, f"the page never showed the worker behind: {behind}"
                assert max(behind) <= sent
                # "data as of <time>, N messages behind": complete up to the time of the oldest partition behind
                assert any(re.fullmatch(r"Data per / as of \d\d:\d\d:\d\d \S+, [1-9]\d* messages behind", line)
                           for line in lines), lines
                assert lagging_metric > 0
                # the partition table, read in the same instant as the line: one row per input partition the
                # worker owns, and their lags add up to the line's count whenever every one is known
                summed = [r for r in per_partition if r["behind"] not in (None, "unknown") and r["rows"]
                          and all(row["lag"] != "null" for row in r["rows"])]
                assert summed, f"the partition table never showed every lag while behind: {per_partition[-3:]}"
                for r in summed:
                    assert sum(int(row["lag"]) for row in r["rows"]) == int(r["behind"]), r
                    assert {row["topic"] for row in r["rows"]} <= {"cact.schedule.v1", "cact.lab.v1",
                                                                   "cact.control.v1"}, r
                    assert len(r["rows"]) == len({(row["topic"], row["partition"]) for row in r["rows"]}), r
                assert any(int(row["lag"]) > 0 for r in summed for row in r["rows"]), summed[-1]
                caught_up = page.locator('[data-testid="freshness"]').inner_text()
                assert caught_up.endswith(", 0 messages behind · up to date"), caught_up
                consumed(settings, worker)

                # ---- the rates: closed windows only, equal to the truth; the rest say what they wait for ---
                want = {k: percent(v) for k, v in truth.rates().items()}
                for sid, state in truth.states.items():
                    if f"session-{sid}" not in want:
                        want[f"session-{sid}"] = PENDING[state]
                for prefix, key_of in (("agency", lambda p: p.agency_id), ("lab", lambda p: p.lab_id),
                                       ("activity", lambda p: p.activity_id)):
                    rows: dict[str, set[str]] = {}
                    for sid, plan in day.sessions.items():
                        rows.setdefault(key_of(plan), set()).add(truth.states[sid])
                    for key, states in rows.items():
                        want.setdefault(f"{prefix}-{key}", PENDING["in_checkin" if "in_checkin" in states
                                                                   else "not_started"])
                assert "not started" in want.values() and "in check-in" in want.values()
                assert any(v.endswith("%") for k, v in want.items() if k.startswith("agency-"))
                assert any(not v.endswith("%") for k, v in want.items() if k.startswith("agency-"))
                deadline = time.monotonic() + 60
                while rate_cells(page) != want and time.monotonic() < deadline:
                    page.wait_for_timeout(250)
                assert rate_cells(page) == want

                # ---- states, lab-local times with date and zone, agency names, sessions closed x of y ------
                for sid, plan in day.sessions.items():
                    row = page.locator(f'[data-testid="session-{sid}"]')
                    assert row.locator(f'[data-testid="session-{sid}-state"]').get_attribute("data-state") == \
                        truth.states[sid]
                    start, end = plan.starts_at + by, plan.ends_at + by  # in the lab's zone
                    ends = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
                    assert row.locator(f'[data-testid="session-{sid}-time"]').inner_text() == (
                        f"{start:%Y-%m-%d %H:%M}–{ends} {plan.starts_at.tzname()}")
                    assert row.locator(f'[data-testid="session-{sid}-agency"] .name').inner_text() == plan.agency_name
                for agency in {p.agency_id for p in day.sessions.values()}:
                    plans = [p for p in day.sessions.values() if p.agency_id == agency]
                    closed = sum(truth.states[p.session_id] in ("window_closed", "closed") for p in plans)
                    assert page.locator(f'[data-testid="agency-{agency}-sessions_closed"]').inner_text() == \
                        f"{closed} of {len(plans)}"
                    assert page.locator(f'[data-testid="agency-{agency}-name"] .name').inner_text() == \
                        plans[0].agency_name
                page.screenshot(path=str(tmp_path / "operator-mid-day.png"), full_page=True)

                # ---- filter and sort ------------------------------------------------------------------
                page.select_option('[data-testid="filter-state"]', "not_started")
                listed = page.eval_on_selector_all('#sessions tbody tr[data-key]', "rs => rs.map(r => r.dataset.key)")
                assert set(listed) == {sid for sid, st in truth.states.items() if st == "not_started"}
                page.select_option('[data-testid="filter-state"]', "")
                page.select_option('[data-testid="sort"]', "rate")
                listed = page.eval_on_selector_all('#sessions tbody tr[data-key]', "rs => rs.map(r => r.dataset.key)")
                rated = [sid for sid in listed if f"session-{sid}" in truth.rates()]
                assert listed[:len(rated)] == rated  # rated sessions first, highest rate first
                assert [truth.rates()[f"session-{sid}"] for sid in rated] == sorted(
                    (truth.rates()[f"session-{sid}"] for sid in rated), reverse=True)

                # ---- who is absent from a closed session: the truth's no-shows, behind the token -----------
                sid = max(truth.seats, key=lambda s: sum(not a for a in truth.seats[s]))
                with page.expect_navigation():
                    page.click(f'[data-testid="session-{sid}-link"]')
                assert page.url == f"{base}/operator/absent?session={sid}"
                page.wait_for_selector('#absent tbody tr[data-testid^="absent-"]')
                nips = set(page.eval_on_selector_all('#absent tbody tr[data-testid^="absent-"]',
                                                     "rs => rs.map(r => r.cells[0].textContent)"))
                moves = {(e.payload.from_session_id, e.payload.nip) for e in mid.schedule
                         if isinstance(e, ev.ParticipantRescheduled)}
                expected = {t.nip for t in day.truth.values() if t.session_id == sid and not t.attended} | {
                    t.nip for t in day.truth.values() if t.rescheduled_to == sid and not t.attended_susulan
                    and (t.session_id, t.nip) in moves}
                assert nips == expected
                assert errors == []
            finally:
                browser.close()
    finally:
        worker.stop()
