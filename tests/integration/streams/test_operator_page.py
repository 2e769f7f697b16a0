"""The operator page in a real headless Chromium, served by a real worker on a real exam day.

Playwright drives Debian's Chromium (`make browser`); it never downloads a browser of its own. The operator
logs in through the page's own form with the operator token; the numbers on the page must equal what the
results store says (`attendance_overview`) and what was simulated, a new event must show up by polling,
without the page being reloaded, and a rotated token sends the page back to the login form.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from producers.simulator import SimConfig, SimDay, build_day
from schemas.blueprint import BlueprintRegistry
from schemas.events import SessionClosed, SessionScheduled
from schemas.settings import Settings
from sinks.attendance_view import attendance_overview
from sinks.store import ResultsStore
from streams.demo import WorkerProcess, consumer_groups, send_day
from streams.kafka import wait_until_consumed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
FIELDS = {"overall": ("scheduled", "checked_in", "no_show", "rescheduled", "no_show_rate"),
          "agency": ("scheduled", "checked_in", "no_show", "rescheduled", "no_show_rate"),
          "lab": ("scheduled", "checked_in", "no_show", "no_show_rate"),
          "session": ("scheduled", "checked_in", "no_show", "no_show_rate")}
LIVE = ("in_progress", "window_closed")
SILENT_AFTER_S = 4
TOKEN = "browser-test-operator-token-5e8f2a"
ROTATED = "browser-test-rotated-token-91c4d7"


def shown(row: dict[str, Any], field: str) -> str:
    """How the page writes a number: counts as they are, the rate as a percentage with one decimal."""
    return f"{row[field] * 100:.1f}%" if field == "no_show_rate" else str(row[field])


def expected_on_page(overview: dict[str, Any]) -> dict[str, str]:
    out = {f"overall-{f}": shown(overview["overall"], f) for f in FIELDS["overall"]}
    for prefix, rows, key in (("agency", overview["by_agency"], "agency_id"), ("lab", overview["by_lab"], "lab_id"),
                              ("session", [s for s in overview["sessions"] if s["state"] in LIVE], "session_id")):
        for row in rows:
            out.update({f"{prefix}-{row[key]}-{f}": shown(row, f) for f in FIELDS[prefix]})
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
        out.update({f"{key}-{f}": shown(row, f) for f in FIELDS[prefix]})
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
                assert {k.split("-")[0] for k in want} == {"overall", "agency", "lab"}  # every session closed
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

                # the running session is listed, with its numbers; closed sessions are not
                live = [s for s in now["sessions"] if s["state"] in LIVE]
                assert [s["session_id"] for s in live] == [k[0] for k in list(second.truth)[:1]]
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
