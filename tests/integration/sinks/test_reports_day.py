"""The agencies' reports of a simulated day on PostgreSQL, read back the way an agency would read them.

A day with susulan across agencies, blank sheets (held back as incomplete) and one agency's sessions run by an
unregistered organiser (not recognised) runs through the real worker into PostgreSQL. `cact reports build
--all` (the real command) writes the reports, and each is read back with pdftotext and openpyxl, not with
the generator's data, and compared with the store read by plain SQL here and with the simulator's truth:

- the recap lists exactly the activity's participants, susulan included by home activity, with their levels,
  JPM and category as stored; the held-back results are listed apart and nowhere else; the attendance is the
  simulator's truth, the no-show list its absentees;
- every individual report has all seven elements and its participant's nine levels, standards, gaps and JPM;
- files are 0600 in 0700 directories with the checksums `sha256sum -c` accepts; the worker's web page serves
  them only with the operator token, and in Chromium an operator logs in and downloads one;
- `cact reports due` gives working days 11 and 21 and the states; `cact reports deliver` hands over the latest
  build (a stale one is refused: tests/unit/sinks/reports/test_report_builds.py); `cact rescore` rebuilds the
  reports as version 2, which says so;
- page one of an individual report and of the recap, rendered by pdftoppm, is ink where the text layer says.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import matplotlib.image
import pytest
from openpyxl import load_workbook
from playwright.sync_api import sync_playwright
from sqlalchemy import create_engine, text

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, SimDay, build_day
from schemas import events as ev
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.settings import Settings, settings_env
from streams.kafka import wait_until_consumed

TEST_DAY = date(2026, 11, 3)  # a Tuesday; no holiday in November 2026
RECAP_DUE, FULL_DUE = date(2026, 11, 18), date(2026, 12, 2)  # working days 11 and 21, counted by hand
TOKEN = "reports-test-operator-" + "k" * 24
CHROMIUM = "/usr/bin/chromium"  # Debian's (`make browser`); Playwright never downloads one
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
SEVEN = ("1. Identitas", "2. Profil Potensi", "3. Profil Kompetensi", "4. Kekuatan dan Area Pengembangan",
         "5. Rekomendasi", "6. Saran Penempatan", "7. Saran Pengembangan")
ATTENDANCE_WORDS = {"present": "Hadir", "present_susulan": "Hadir (susulan)", "no_show": "Tidak hadir"}


def _day() -> tuple[SimConfig, SimDay]:
    cfg = SimConfig(participants=140, seats=20, reschedule_share=1.0, blank_sheets=4, malformed=0, seed=1612,
                    day=TEST_DAY, position_filling_share=0.4)
    base = build_day(cfg, BlueprintRegistry.from_dir())
    first = sorted(base.sessions.values(), key=lambda p: p.session_id)[0].agency_id
    cfg = replace(cfg, organisers={first: "lembaga-tak-terdaftar"})
    return cfg, build_day(cfg, BlueprintRegistry.from_dir())


def cact(settings: Settings, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CACT_BLUEPRINT_DIR"}
    environ.update(settings_env(settings), COLUMNS="250", **env)
    return subprocess.run([sys.executable, "-m", "cact.cli", *args], env=environ, capture_output=True, text=True,
                          timeout=timeout)


def pdf_text(path: Path, *, layout: bool = True, page: int | None = None) -> str:
    args = ["pdftotext", *(["-layout"] if layout else []), *(["-f", str(page), "-l", str(page)] if page else []),
            str(path), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]


def angka(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


class Store:
    """The results store read with plain SQL: what every report must show."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def current(self, activity: str) -> dict[str, dict[str, Any]]:
        rows = self.rows("SELECT * FROM results WHERE activity_id = :a AND status = 'current'", a=activity)
        out = {r["nip"]: r for r in rows}
        for c in self.rows("SELECT c.* FROM competency_results c JOIN results r USING (nip, activity_id, "
                           "result_version) WHERE r.activity_id = :a AND r.status = 'current'", a=activity):
            out[c["nip"]].setdefault("levels", {})[c["code"]] = (c["level"], c["standard"], c["gap"])
        return out

    def activities(self) -> list[str]:
        return [r["activity_id"] for r in self.rows("SELECT DISTINCT activity_id FROM attendance ORDER BY 1")]


def truth_status(day: SimDay, activity: str) -> dict[str, str]:
    out = {}
    for t in day.truth.values():
        if t.activity_id == activity:
            out[t.nip] = ("present" if t.attended else "present_susulan" if t.attended_susulan else "no_show")
    return out


def names(day: SimDay) -> dict[str, str]:
    return {e.payload.nip: e.payload.name for e in day.schedule if isinstance(e, ev.ParticipantScheduled)}


def sheet_rows(path: Path, sheet: str) -> list[dict[str, Any]]:
    ws = load_workbook(path, read_only=True)[sheet]
    rows = list(ws.iter_rows(values_only=True))
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, r)) for r in rows[1:] if any(v is not None for v in r)]


def ink_matches_text(pdf: Path, page: int, tmp: Path) -> tuple[float, float]:
    """(share of non-white pixels on the page, share of the text layer's words with ink in their box)."""
    png = tmp / f"{pdf.stem}-p{page}"
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", str(page), "-l", str(page), "-singlefile", str(pdf),
                    str(png)], check=True)
    image = matplotlib.image.imread(str(png) + ".png")[..., :3]
    dark = image.mean(axis=2) < 0.75
    bbox = subprocess.run(["pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    page_box = re.search(r'<page width="([\d.]+)" height="([\d.]+)"', bbox)
    assert page_box is not None
    sx, sy = dark.shape[1] / float(page_box.group(1)), dark.shape[0] / float(page_box.group(2))
    words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', bbox)
    assert len(words) > 50
    inked = 0
    for x0, y0, x1, y1, _ in words:
        box = dark[int(float(y0) * sy):int(float(y1) * sy) + 1, int(float(x0) * sx):int(float(x1) * sx) + 1]
        inked += bool(box.any())
    return float(dark.mean()), inked / len(words)


def corrected(version: str) -> dict[str, Any]:
    data = json.loads((SAMPLE_DIR / "cact-full.json").read_text())
    data["version"] = version
    item = data["sections"][0]["subtests"][0]["items"][0]
    item["options"] = {k: 4 for k in item["options"]}  # every option of MSK-M1-001 earns the most
    return data


@pytest.mark.broker
@pytest.mark.postgres
def test_reports_of_a_day_equal_the_store_and_the_truth(pipeline_kafka: Settings, pg_database: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACT_BLUEPRINT_DIR", raising=False)
    _, day = _day()
    settings = pipeline_kafka.model_copy(update={
        "database_url": pg_database, "operator_token": TOKEN, "reports_dir": tmp_path / "reports",
        "reports_delivery_dir": tmp_path / "to-agencies", "blueprint_corrections_dir": tmp_path / "corrections"})
    store = Store(pg_database)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        send_day(settings, day)
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=300, progress=worker.check))
        built = cact(settings, "reports", "build", "--all")
        assert built.returncode == 0, built.stderr[-3000:] + built.stdout[-3000:]
        activities = store.activities()
        assert len(activities) >= 4 and built.stdout.count("reports v1 built") == len(activities)
        who = names(day)
        susulan_away = held_total = 0
        for activity in activities:
            home = tmp_path / "reports" / activity / "v1"
            current = store.current(activity)
            counted = {n: r for n, r in current.items() if r["standing"] == "counted"}
            held = {n: r for n, r in current.items() if r["standing"] != "counted"}
            held_total += len(held)
            # --- the XLSX: exactly the participants, their numbers as stored ---
            xlsx = home / f"rekap-{activity}.xlsx"
            people = {str(r["NIP"]): r for r in sheet_rows(xlsx, "Peserta")}
            assert people.keys() == counted.keys(), activity
            for nip, row in people.items():
                stored = counted[nip]
                assert row["Nama"] == who[nip] and row["Kategori"] == stored["category"]
                assert row["JPM"] == (round(stored["jpm"], 2) if stored["jpm"] is not None else None)
                for code, (level, _, _) in stored.get("levels", {}).items():
                    assert row[code] == level, (nip, code)
                if stored["host_activity_id"]:
                    assert row["Susulan di kegiatan"] == stored["host_activity_id"]
                    susulan_away += 1
            assert {str(r["NIP"]) for r in sheet_rows(xlsx, "Ditahan")} == held.keys()
            truth = truth_status(day, activity)
            attendance = {str(r["NIP"]): r["Status"] for r in sheet_rows(xlsx, "Kehadiran")}
            assert attendance == {n: ATTENDANCE_WORDS[s] for n, s in truth.items()}, activity
            absent = {str(r["NIP"]) for r in sheet_rows(xlsx, "Tidak Hadir")}
            assert absent == {n for n, s in truth.items() if s == "no_show"}
            # --- the recap PDF: the same, read from its text layer ---
            recap = pdf_text(home / f"rekap-{activity}.pdf")
            held_part = recap.split("F. Hasil yang Ditahan")[-1]
            results_part = recap.split("D. Hasil Peserta")[-1].split("E. Distribusi")[0]
            for nip, r in counted.items():
                line = next(x for x in results_part.splitlines() if nip in x)
                levels = [str(r["levels"][c][0]) for c in ("M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8", "S1")] \
                    if r.get("levels") else []
                assert re.search(r"\s+".join(levels), line) if levels else True, (nip, line)
                if r["jpm"] is not None:
                    assert angka(r["jpm"]) in line, (nip, line)
            assert not any(nip in results_part for nip in held) and all(nip in held_part for nip in held)
            kehadiran = recap.split("B. Kehadiran")[1].split("C. Daftar Tidak Hadir")[0]
            first_numbers = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", kehadiran, re.M)
            assert first_numbers is not None, kehadiran[:800]
            states = list(truth.values())
            assert [int(x) for x in first_numbers.groups()] == [
                len(truth), states.count("present") + states.count("present_susulan"), states.count("present_susulan"),
                states.count("no_show"), 0], activity
            # --- every individual report: seven elements, its numbers ---
            assert sorted(p.stem for p in (home / "individu").glob("*.pdf")) == sorted(counted)
            for nip, r in counted.items():
                body = pdf_text(home / "individu" / f"{nip}.pdf")
                flat = re.sub(r"\s+", " ", body)
                positions = [flat.find(h) for h in SEVEN]
                assert -1 not in positions and positions == sorted(positions), (nip, positions)
                assert nip in body and who[nip] in flat and (r["category"] or "-") in flat
                for code, (level, standard, gap) in r.get("levels", {}).items():
                    sign = f"+{gap}" if gap > 0 else str(gap)
                    assert re.search(rf"^\s*{code}\s+.+?\s{level}\s+{standard}\s+{re.escape(sign)}\s*$", body, re.M), \
                        (nip, code)
                if r["jpm"] is not None:
                    assert f"JPM: {angka(r['jpm'])} %" in flat
            full = home / f"lengkap-{activity}.pdf"
            full_text = re.sub(r"\s+", " ", pdf_text(full))
            assert full_text.count("1. Identitas") == len(counted) and all(n in full_text for n in counted)
            assert pages(full) >= pages(home / f"rekap-{activity}.pdf") + len(counted)
            # --- private files, true checksums ---
            assert stat.S_IMODE(home.stat().st_mode) == 0o700
            assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in home.rglob("*") if p.is_file())
            assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=home).returncode == 0
        assert susulan_away >= 3 and held_total >= 4  # the day had what this test is about

        # --- pictures that match their text ---
        activity = max(activities, key=lambda a: len(store.current(a)))
        home = tmp_path / "reports" / activity / "v1"
        one = sorted((home / "individu").glob("*.pdf"))[0]
        for document in (one, home / f"rekap-{activity}.pdf"):
            ink, matched = ink_matches_text(document, 1, tmp_path)
            assert 0.01 < ink < 0.5 and matched > 0.97, (document.name, ink, matched)

        # --- due dates and states, then a delivery ---
        due = json.loads(cact(settings, "reports", "due", "--json", "--today", "2026-11-10").stdout)
        mine = {r["kind"]: r for r in due if r["activity_id"] == activity}
        assert (mine["recap"]["due"], mine["full"]["due"]) == (RECAP_DUE.isoformat(), FULL_DUE.isoformat())
        assert mine["recap"]["state"] == mine["full"]["state"] == "ready" and mine["recap"]["working_days_left"] == 6
        late = json.loads(cact(settings, "reports", "due", "--json", "--today", "2026-11-19").stdout)
        assert {r["state"] for r in late if r["kind"] == "recap"} == {"late"}
        delivered = cact(settings, "reports", "deliver", "--activity", activity, "--kind", "recap", "--operator", "t")
        assert delivered.returncode == 0, delivered.stderr
        out = tmp_path / "to-agencies" / activity / "v1"
        assert sorted(p.name for p in out.iterdir()) == [f"rekap-{activity}.pdf", f"rekap-{activity}.xlsx"]
        assert (out / f"rekap-{activity}.pdf").read_bytes() == (home / f"rekap-{activity}.pdf").read_bytes()
        after = json.loads(cact(settings, "reports", "due", "--json", "--today", "2026-11-19").stdout)
        mine = {r["kind"]: r for r in after if r["activity_id"] == activity}
        assert mine["recap"]["state"] == "delivered" and mine["full"]["state"] == "ready"

        # --- the operator page serves files only with the token ---
        base = f"http://127.0.0.1:{settings.worker_web_port}"
        url = f"{base}/reports/file?activity={activity}&version=1&name=rekap-{activity}.pdf"
        assert httpx.get(url).status_code == 401
        served = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert served.status_code == 200 and served.content == (home / f"rekap-{activity}.pdf").read_bytes()
        assert httpx.get(f"{base}/reports/file?activity={activity}&version=1&name=../../../etc/passwd",
                         headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
        listed = httpx.get(f"{base}/reports.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert any(f["name"] == f"rekap-{activity}.pdf" for b in listed["builds"] for f in b["files"])

        # --- in a real browser: the operator logs in, sees the due dates and checksums, downloads the recap ---
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(accept_downloads=True)
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                answer = page.goto(f"{base}/operator/reports", wait_until="load")
                assert answer is not None and answer.status == 401  # the login form, nothing of the reports
                page.fill('[data-testid="login-token"]', TOKEN)
                with page.expect_navigation():
                    page.click('[data-testid="login-submit"]')
                row = page.locator(f'[data-testid="due-{activity}-recap"]')
                row.wait_for(timeout=15_000)
                assert "terkirim" in row.inner_text() and RECAP_DUE.isoformat() in row.inner_text()
                link = page.locator(f'[data-testid="file-rekap-{activity}.xlsx"]')
                sums = dict(reversed(x.split("  ")) for x in (home / "SHA256SUMS").read_text().splitlines())
                assert sums[f"rekap-{activity}.xlsx"] in page.locator('[data-testid="reports-files"]').inner_text()
                with page.expect_download() as download:
                    link.click()
                saved = tmp_path / "downloaded.xlsx"
                download.value.save_as(saved)
                assert saved.read_bytes() == (home / f"rekap-{activity}.xlsx").read_bytes() and not errors
            finally:
                browser.close()

        # --- a rescore: version 2, which says so; the old build stays as delivered ---
        rescored_activity = activity
        upload = tmp_path / "cact-full-2026.2.json"
        upload.write_text(json.dumps(corrected("2026.2")))
        before = store.current(rescored_activity)
        proc = cact(settings, "rescore", "--activity", rescored_activity, "--blueprint", str(upload), "--reason",
                    "kunci MSK-M1-001 dikoreksi", "--wait-seconds", "240")
        assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
        assert "rebuilt as v2" in proc.stdout, proc.stdout[-2000:]
        v2 = tmp_path / "reports" / rescored_activity / "v2"
        recap2 = re.sub(r"\s+", " ", pdf_text(v2 / f"rekap-{rescored_activity}.pdf"))
        assert "versi 2" in recap2 and "menggantikan versi 1" in recap2
        moved = [n for n, r in store.current(rescored_activity).items()
                 if r["result_version"] == 2 and r["standing"] == "counted"]
        assert moved and all(before[n]["result_version"] == 1 for n in moved)
        body = re.sub(r"\s+", " ", pdf_text(v2 / "individu" / f"{moved[0]}.pdf"))
        assert "menggantikan versi 1" in body and "2026.2" in body
        assert (home / f"rekap-{activity}.pdf").exists()  # v1 stays, as delivered
        stale = cact(settings, "reports", "deliver", "--activity", rescored_activity, "--kind", "full")
        assert stale.returncode == 0, stale.stderr  # v2 is the current build: it is what goes out
        assert (tmp_path / "to-agencies" / rescored_activity / "v2" / f"lengkap-{rescored_activity}.pdf").exists()
    finally:
        worker.stop()
