"""The recap's XLSX and PDF from hand-made records: every row where it belongs, nothing where it does not."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime
from pathlib import Path

from openpyxl import load_workbook

from sinks.reports.model import (
    ActivityData,
    AttendanceLine,
    CompetencyLine,
    HeldBackLine,
    IndividualResult,
    ReportMeta,
    SessionLine,
)
from sinks.reports.recap import (
    category_distribution,
    level_distribution,
    recap_flowables,
    write_recap_pdf,
    write_recap_xlsx,
)

DAY = date(2026, 11, 3)
HOSTILE = '=HYPERLINK("http://x","klik")'


def result(nip: str, levels: list[int], category: str, *, name: str = "Siti", host: str | None = None,
           jpm: float = 88.89) -> IndividualResult:
    codes = ("M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8", "S1")
    return IndividualResult(
        nip=nip, name=name, activity_id="ACT-1", agency_id="AG-1", agency_name="Badan Satu", purpose="mapping",
        position_tier="administrator", session_id="S-2" if host else "S-1", host_activity_id=host,
        organiser_id=None, blueprint_id="cact-full", blueprint_version="2026.1", result_version=1,
        created_at=datetime(2026, 11, 3, 5, tzinfo=UTC), assessed_on=DAY, valid_until=date(2029, 11, 3), jpm=jpm,
        category=category, standing="counted", standing_detail=None, flags=[],
        competencies=[CompetencyLine(c, lv, 3, lv - 3) for c, lv in zip(codes, levels)], sections=[],
        potential=None)


def data() -> ActivityData:
    results = [result("199001012015031001", [3] * 9, "Optimal", jpm=100.0),
               result("199001012015031002", [2, 3, 4, 3, 3, 3, 3, 3, 1], "Cukup Optimal", name=HOSTILE),
               result("199001012015031003", [2] * 9, "Kurang Optimal", host="ACT-9", jpm=66.67)]
    attendance = [AttendanceLine("199001012015031001", "Siti", "S-1", "present", "S-1", None),
                  AttendanceLine("199001012015031002", HOSTILE, "S-1", "present", "S-1", None, late=True),
                  AttendanceLine("199001012015031003", "Siti", "S-1", "present_susulan", "S-2", "S-2"),
                  AttendanceLine("199001012015031004", None, "S-1", "no_show", None, None),
                  AttendanceLine("199001012015031005", None, "S-1", "no_show", None, "S-3"),
                  AttendanceLine("199001012015031006", "Ani", "S-1", "present", "S-1", None)]
    return ActivityData(activity_id="ACT-1", agency_id="AG-1", agency_name="Badan Satu", purpose="mapping",
                        sessions=[SessionLine("S-1", "lab-1", DAY, 6, 3, 2, 1, True)], first_test_day=DAY,
                        last_test_day=DAY, results=results,
                        held_back=[HeldBackLine("199001012015031006", "Ani", 1, "incomplete", "answered 0 of 40")],
                        attendance=attendance, open_sessions=0)


META = ReportMeta("ACT-1", "recap", 2, datetime(2026, 11, 3, 12, tzinfo=UTC), 1, datetime(2026, 11, 3, 10, tzinfo=UTC),
                  "hasil peserta dinilai ulang")


def texts(flowables: list[object]) -> str:
    out: list[str] = []

    def walk(x: object) -> None:
        if hasattr(x, "getPlainText"):
            out.append(x.getPlainText())
        for row in getattr(x, "_cellvalues", []) or []:
            for cell in row:
                walk(cell)
        for inner in getattr(x, "_content", []) or []:
            walk(inner)
    for f in flowables:
        walk(f)
    return "\n".join(out)


def rows(path: Path, sheet: str) -> list[dict[str, object]]:
    ws = load_workbook(path)[sheet]
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], r)) for r in values[1:]]


def test_distributions_count_the_counted_results() -> None:
    assert category_distribution(data()) == {"Cukup Optimal": 1, "Kurang Optimal": 1, "Optimal": 1}
    levels = level_distribution(data())
    assert levels["M1"] == {1: 0, 2: 2, 3: 1, 4: 0, 5: 0} and levels["M3"] == {1: 0, 2: 1, 3: 1, 4: 1, 5: 0}
    assert levels["S1"] == {1: 1, 2: 1, 3: 1, 4: 0, 5: 0}


def test_the_xlsx_holds_the_rows_as_numbers_and_hostile_text_as_text(tmp_path: Path) -> None:
    path = tmp_path / "rekap.xlsx"
    write_recap_xlsx(path, data(), META)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not list(tmp_path.glob(".*partial"))
    people = rows(path, "Peserta")
    assert [p["NIP"] for p in people] == ["199001012015031001", "199001012015031002", "199001012015031003"]
    assert [p["M1"] for p in people] == [3, 2, 2] and [p["JPM"] for p in people] == [100.0, 88.89, 66.67]
    assert people[2]["Susulan di kegiatan"] == "ACT-9" and people[0]["Tanggal tes"].date() == DAY  # type: ignore
    assert [p["NIP"] for p in rows(path, "Ditahan")] == ["199001012015031006"]  # apart, and only there
    assert "199001012015031006" not in {p["NIP"] for p in people}
    assert [p["NIP"] for p in rows(path, "Tidak Hadir")] == ["199001012015031004", "199001012015031005"]
    statuses = {p["NIP"]: p["Status"] for p in rows(path, "Kehadiran")}
    assert statuses["199001012015031003"] == "Hadir (susulan)" and statuses["199001012015031004"] == "Tidak hadir"
    ws = load_workbook(path)["Peserta"]
    hostile = ws.cell(row=3, column=2)
    assert hostile.data_type == "s" and hostile.value == "'" + HOSTILE  # never run as a formula


def test_the_pdf_carries_every_section_number_and_nip(tmp_path: Path) -> None:
    d = data()
    text = texts(recap_flowables(d, META, due={"recap": date(2026, 11, 18), "full": date(2026, 12, 2)}))
    for heading in ("A. Ringkasan Kegiatan", "B. Kehadiran", "C. Daftar Tidak Hadir", "D. Hasil Peserta",
                    "E. Distribusi", "F. Hasil yang Ditahan"):
        assert heading in text
    assert all(r.nip in text for r in d.results) and "199001012015031004" in text and "susulan (ACT-9)" in text
    assert "Rabu, 18 November 2026" in text and "versi 2" in text and "menggantikan versi 1" in text
    assert HOSTILE in text and "88,89" in text
    path = tmp_path / "rekap.pdf"
    write_recap_pdf(path, d, META)
    assert path.read_bytes().startswith(b"%PDF") and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_activity_still_renders(tmp_path: Path) -> None:
    empty = ActivityData("ACT-0", "AG-0", "", "", [], None, None, [], [], [], 0)
    text = texts(recap_flowables(empty, META))
    assert "Tidak ada peserta yang tidak hadir." in text and "Tidak ada hasil yang ditahan." in text
    write_recap_xlsx(tmp_path / "e.xlsx", empty, META)
    write_recap_pdf(tmp_path / "e.pdf", empty, META)
