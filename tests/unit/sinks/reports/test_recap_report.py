"""The recap (PDF and XLSX) from hand-made records: each participant where the rules put them, the numbers as
counted here by hand, and a hostile name that stays text in the spreadsheet."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from reportlab.platypus import Table

from sinks.reports.model import (
    ATTENDANCE_NAMES,
    STANDING_NAMES,
    ActivityData,
    AttendanceLine,
    CompetencyLine,
    HeldBackLine,
    IndividualResult,
    ReportMeta,
    SessionLine,
)
from sinks.reports.pdf import angka
from sinks.reports.recap import (
    HEADINGS,
    TITLE,
    category_distribution,
    level_distribution,
    recap_flowables,
    write_recap_pdf,
    write_recap_xlsx,
)

CODES = ("M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8", "S1")
DAY1, DAY2 = date(2026, 11, 2), date(2026, 11, 4)
DUE = {"recap": date(2026, 11, 18), "full": date(2026, 12, 2)}
HOSTILE = '=HYPERLINK("http://x")'
META = ReportMeta("ACT-7", "recap", 1, datetime(2026, 11, 5, 3, tzinfo=UTC))

# NIPs by role, so every assertion names who it is about.
A, B, C, D = "198501012010011001", "198501012010011002", "198501012010011003", "198501012010011004"
NO_SHOW_1, NO_SHOW_2, PENDING, WAITING = ("198501012010011005", "198501012010011006", "198501012010011007",
                                          "198501012010011008")
HELD_1, HELD_2 = "198501012010011009", "198501012010011010"


def result(nip: str, levels: list[int] | None, jpm: float | None, category: str | None, *, name: str | None = "Budi",
           host: str | None = None) -> IndividualResult:
    return IndividualResult(
        nip=nip, name=name, activity_id="ACT-7", agency_id="AG-7", agency_name="Kementerian Contoh",
        purpose="position_filling", position_tier="pengawas", session_id="X-1" if host else "S-1",
        host_activity_id=host, organiser_id=None, blueprint_id="cact-full", blueprint_version="2026.1",
        result_version=2 if nip == B else 1, created_at=datetime(2026, 11, 4, 9, tzinfo=UTC),
        assessed_on=DAY2 if host else DAY1, valid_until=date(2029, 11, 2), jpm=jpm, category=category,
        standing="counted", standing_detail=None, flags=[],
        competencies=[CompetencyLine(c, lv, 3, lv - 3) for c, lv in zip(CODES, levels or [])], sections=[],
        potential=None)


RESULTS = [
    result(A, [3, 3, 3, 3, 3, 3, 3, 3, 3], 100.0, "Optimal"),
    result(B, [2, 3, 4, 5, 1, 3, 3, 2, 4], 81.48, "Cukup Optimal", name=HOSTILE),
    result(C, [1, 2, 2, 2, 2, 2, 2, 2, 2], 62.96, "Kurang Optimal", host="ACT-99"),  # a susulan sat elsewhere
    result(D, None, None, None, name=None),  # Mansoskul not taken: no levels, no JPM, no category
]
ATTENDANCE = [
    AttendanceLine(A, "Budi", "S-1", "present", "S-1", None),
    AttendanceLine(B, HOSTILE, "S-1", "present", "S-1", None, late=True),
    AttendanceLine(C, "Budi", "S-1", "present_susulan", "X-1", "X-1"),
    AttendanceLine(D, None, "S-2", "present", "S-2", None),
    AttendanceLine(NO_SHOW_1, "Citra", "S-1", "no_show", None, None),
    AttendanceLine(NO_SHOW_2, "+Dewi", "S-2", "no_show", None, None),
    AttendanceLine(PENDING, "Eko", "S-2", "rescheduled", None, "S-9"),
    AttendanceLine(WAITING, "Fajar", "S-3", "scheduled", None, None),
    AttendanceLine(HELD_1, "Gita", "S-2", "present", "S-2", None),
    AttendanceLine(HELD_2, "Hadi", "S-2", "present", "S-2", None),
]
HELD = [HeldBackLine(HELD_1, "Gita", 1, "incomplete", "answered 10 of 40"),
        HeldBackLine(HELD_2, "Hadi", 3, "not_recognised", "@lembaga kedaluwarsa")]
SESSIONS = [SessionLine("S-1", "lab-1", DAY1, 5, 2, 1, 0, True), SessionLine("S-2", "lab-2", DAY2, 5, 3, 1, 1, True)]


def activity() -> ActivityData:
    return ActivityData(activity_id="ACT-7", agency_id="AG-7", agency_name="Kementerian Contoh",
                        purpose="position_filling", sessions=SESSIONS, first_test_day=DAY1, last_test_day=DAY2,
                        results=RESULTS, held_back=HELD, attendance=ATTENDANCE, open_sessions=0)


def empty() -> ActivityData:
    return ActivityData("ACT-0", "AG-0", "", "", [], None, None, [], [], [], 0)


# Counted by hand from the rows above (not with the code under test).
TALLY = {"Dijadwalkan": 10, "Hadir": 6, "Hadir susulan": 1, "Tidak hadir": 2, "Susulan belum dilaksanakan": 1}
CATEGORIES = {"Optimal": 1, "Cukup Optimal": 1, "Kurang Optimal": 1, "Tanpa kategori": 1}
LEVELS_M1 = {1: 1, 2: 1, 3: 1, 4: 0, 5: 0}
LEVELS_M4 = {1: 0, 2: 1, 3: 1, 4: 0, 5: 1}
LEVELS_M5 = {1: 1, 2: 1, 3: 1, 4: 0, 5: 0}
LEVELS_S1 = {1: 0, 2: 1, 3: 1, 4: 1, 5: 0}


# --- reading the PDF's story and the workbook back ----------------------------------------------------------------


def walk(flowables: list[Any]) -> Iterator[Any]:
    """Every flowable, tables' cells and KeepTogether's content included."""
    for f in flowables:
        yield f
        for row in getattr(f, "_cellvalues", None) or []:
            yield from walk([c for c in row if not isinstance(c, str)])
        yield from walk(getattr(f, "_content", None) or [])


def plain(cell: Any) -> str:
    if isinstance(cell, str):
        return cell
    if hasattr(cell, "getPlainText"):
        return str(cell.getPlainText())
    return " ".join(plain(c) for c in (cell if isinstance(cell, list) else []))


def story_text(flowables: list[Any]) -> str:
    return "\n".join(f.getPlainText() for f in walk(flowables) if hasattr(f, "getPlainText"))


def tables(flowables: list[Any]) -> list[list[list[str]]]:
    return [[[plain(c) for c in row] for row in f._cellvalues] for f in walk(flowables) if isinstance(f, Table)]


def table_headed(flowables: list[Any], *first: str) -> list[list[str]]:
    found = [t for t in tables(flowables) if tuple(t[0][:len(first)]) == first]
    assert len(found) == 1, [t[0] for t in tables(flowables)]
    return found[0]


def sheet(path: Path, name: str) -> list[dict[str, Any]]:
    values = list(load_workbook(path)[name].iter_rows(values_only=True))
    return [dict(zip(values[0], r)) for r in values[1:]]


@pytest.fixture
def xlsx(tmp_path: Path) -> Path:
    path = tmp_path / "rekap-ACT-7.xlsx"
    write_recap_xlsx(path, activity(), META)
    return path


# --- the numbers --------------------------------------------------------------------------------------------------


def test_the_distributions_are_the_hand_counts() -> None:
    assert category_distribution(activity()) == CATEGORIES
    assert list(category_distribution(activity())) == list(CATEGORIES)  # best first, no category last
    levels = level_distribution(activity())
    assert list(levels) == list(CODES) and all(list(v) == [1, 2, 3, 4, 5] for v in levels.values())
    assert (levels["M1"], levels["M4"], levels["M5"], levels["S1"]) == (LEVELS_M1, LEVELS_M4, LEVELS_M5, LEVELS_S1)
    assert all(sum(v.values()) == 3 for v in levels.values())  # D has no levels and is in no level count
    assert category_distribution(empty()) == {}
    assert level_distribution(empty()) == {c: {1: 0, 2: 0, 3: 0, 4: 0, 5: 0} for c in CODES}


# --- the PDF ------------------------------------------------------------------------------------------------------


def test_the_pdf_story_carries_every_section_and_person() -> None:
    story = recap_flowables(activity(), META, due=DUE)
    text = story_text(story)
    for heading in (TITLE, *HEADINGS, "Kementerian Contoh", "Pengisian Jabatan", "Batas laporan rekapitulasi "
                    "(hari kerja ke-11)", "Batas laporan lengkap (hari kerja ke-21)", "Rabu, 18 November 2026",
                    "Senin, 2 November 2026 s.d. Rabu, 4 November 2026", "Laporan Rekapitulasi versi 1"):
        assert heading in text, heading
    assert text.index(HEADINGS[0]) < text.index(HEADINGS[1]) < text.index(HEADINGS[5])
    for nip in (A, B, C, D, NO_SHOW_1, NO_SHOW_2, HELD_1, HELD_2):
        assert nip in text, nip
    assert "tidak termasuk dalam bagian D dan E" in text

    tally = table_headed(story, *TALLY)
    assert tally[1] == [str(n) for n in TALLY.values()]
    per_session = table_headed(story, "Sesi", "Lab", "Tanggal")
    assert per_session[1:] == [["S-1", "lab-1", "2 November 2026", "5", "2", "1", "0"],
                               ["S-2", "lab-2", "4 November 2026", "5", "3", "1", "1"]]
    absent = table_headed(story, "No", "NIP", "Nama", "Sesi asal")
    assert [r[1] for r in absent[1:]] == [NO_SHOW_1, NO_SHOW_2]


def test_the_results_table_holds_the_counted_only_with_their_numbers() -> None:
    story = recap_flowables(activity(), META)
    rows = table_headed(story, "No", "NIP", "Nama", *CODES)
    assert rows[0] == ["No", "NIP", "Nama", *CODES, "JPM", "Kategori", "Keterangan"] and len(rows[0]) == 15
    by_nip = {r[1]: r for r in rows[1:]}
    assert list(by_nip) == [A, B, C, D]  # the held-back are not here
    for r in RESULTS[:3]:
        assert by_nip[r.nip][3:12] == [str(c.level) for c in r.competencies]
        assert by_nip[r.nip][12] == angka(r.jpm)
    assert by_nip[B][2] == HOSTILE and by_nip[B][12] == "81,48"
    assert by_nip[C][14] == "susulan (ACT-99)" and by_nip[A][14] == ""
    assert by_nip[D][3:14] == ["-"] * 11
    held = table_headed(story, "NIP", "Nama", "Versi", "Status")
    assert held[1:] == [[HELD_1, "Gita", "1", STANDING_NAMES["incomplete"], "answered 10 of 40"],
                        [HELD_2, "Hadi", "3", STANDING_NAMES["not_recognised"], "@lembaga kedaluwarsa"]]


def test_the_distribution_tables_repeat_the_charts_numbers() -> None:
    story = recap_flowables(activity(), META)
    assert table_headed(story, "Kategori", "Jumlah")[1:] == [[k, str(v)] for k, v in CATEGORIES.items()]
    levels = {r[0].split()[0]: r[1:] for r in table_headed(story, "Kompetensi", "Level 1")[1:]}
    assert levels["M1"] == [str(LEVELS_M1[n]) for n in range(1, 6)]
    assert levels["S1"] == [str(LEVELS_S1[n]) for n in range(1, 6)]
    assert sum(1 for f in walk(story) if type(f).__name__ == "Image") == 1  # the charts, once


def test_the_pdf_file_is_private_and_a_pdf(tmp_path: Path) -> None:
    path = tmp_path / "rekap-ACT-7.pdf"
    path.write_bytes(b"old")
    path.chmod(0o644)  # a leftover with a loose mode is not trusted
    write_recap_pdf(path, activity(), META, due=DUE)
    assert path.read_bytes().startswith(b"%PDF") and stat.S_IMODE(path.stat().st_mode) == 0o600


# --- the XLSX -----------------------------------------------------------------------------------------------------


def test_the_xlsx_is_private_and_complete(xlsx: Path) -> None:
    assert stat.S_IMODE(xlsx.stat().st_mode) == 0o600
    assert [p.name for p in xlsx.parent.iterdir()] == [xlsx.name]  # no temporary file left behind
    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["Ringkasan", "Peserta", "Kehadiran", "Tidak Hadir", "Distribusi", "Ditahan"]
    assert all(wb[name].freeze_panes == "A2" for name in wb.sheetnames)
    assert wb["Peserta"].column_dimensions["A"].width >= 19  # an 18-digit NIP shows whole


def test_the_participants_sheet_holds_exactly_the_counted_as_numbers_and_dates(xlsx: Path) -> None:
    people = sheet(xlsx, "Peserta")
    assert list(people[0]) == ["NIP", "Nama", "Sesi", "Susulan di kegiatan", *CODES, "JPM", "Kategori",
                               "Tanggal tes", "Berlaku sampai", "Versi hasil"]
    assert [p["NIP"] for p in people] == [A, B, C, D] and all(isinstance(p["NIP"], str) for p in people)
    for row, r in zip(people, RESULTS):
        expected: list[int | None] = [c.level for c in r.competencies] or [None] * 9
        assert [row[c] for c in CODES] == expected
        assert all(isinstance(row[c], int) for c in CODES) or r.nip == D
        assert row["JPM"] == r.jpm and (r.jpm is None or isinstance(row["JPM"], int | float))  # 100.0 reads as 100
        assert row["Kategori"] == r.category and row["Versi hasil"] == r.result_version
        assert isinstance(row["Tanggal tes"], datetime) and row["Tanggal tes"].date() == r.assessed_on
        assert row["Berlaku sampai"].date() == r.valid_until
    assert people[2]["Susulan di kegiatan"] == "ACT-99" and people[2]["Sesi"] == "X-1"
    assert people[0]["Susulan di kegiatan"] is None


def test_attendance_absence_and_held_back_sheets(xlsx: Path) -> None:
    attendance = sheet(xlsx, "Kehadiran")
    assert [(a["NIP"], a["Status"]) for a in attendance] == [(a.nip, ATTENDANCE_NAMES[a.status]) for a in ATTENDANCE]
    assert {a.status for a in ATTENDANCE} == set(ATTENDANCE_NAMES)  # every status is exercised
    by_nip = {a["NIP"]: a for a in attendance}
    assert by_nip[B]["Terlambat"] == "ya" and by_nip[PENDING]["Sesi susulan"] == "S-9"
    assert by_nip[C]["Sesi hadir"] == "X-1" and by_nip[C]["Sesi asal"] == "S-1"
    assert [a["NIP"] for a in sheet(xlsx, "Tidak Hadir")] == [NO_SHOW_1, NO_SHOW_2]
    held = sheet(xlsx, "Ditahan")
    assert [(h["NIP"], h["Versi hasil"], h["Status"]) for h in held] == [
        (HELD_1, 1, STANDING_NAMES["incomplete"]), (HELD_2, 3, STANDING_NAMES["not_recognised"])]
    assert {HELD_1, HELD_2}.isdisjoint(p["NIP"] for p in sheet(xlsx, "Peserta"))


def test_summary_and_distribution_sheets_are_the_hand_counts(xlsx: Path) -> None:
    summary = {r["Butir"]: r["Nilai"] for r in sheet(xlsx, "Ringkasan")}
    assert {k: summary[k] for k in TALLY} == TALLY
    assert summary["Kegiatan"] == "ACT-7" and summary["Instansi"] == "Kementerian Contoh"
    assert summary["Hari tes pertama"].date() == DAY1 and summary["Hari tes terakhir"].date() == DAY2
    assert summary["Hasil diakui"] == 4 and summary["Hasil ditahan"] == 2 and summary["Jumlah sesi"] == 2
    assert str(summary["Laporan"]).startswith("Laporan Rekapitulasi versi 1")
    ws = load_workbook(xlsx)["Distribusi"]
    rows = [r for r in ws.iter_rows(values_only=True) if any(v is not None for v in r)]
    assert {r[0]: r[1] for r in rows[1:1 + len(CATEGORIES)]} == CATEGORIES
    at = next(i for i, r in enumerate(rows) if r[0] == "Kompetensi")
    assert rows[at][:6] == ("Kompetensi", "Level 1", "Level 2", "Level 3", "Level 4", "Level 5")
    levels = {str(r[0]).split()[0]: dict(zip(range(1, 6), r[1:6])) for r in rows[at + 1:at + 10]}
    assert list(levels) == list(CODES)
    assert (levels["M1"], levels["M4"], levels["M5"], levels["S1"]) == (LEVELS_M1, LEVELS_M4, LEVELS_M5, LEVELS_S1)
    assert len(ws._charts) == 1  # the categories' bar chart


def test_text_that_would_run_as_a_formula_stays_text(xlsx: Path) -> None:
    wb = load_workbook(xlsx)
    name = wb["Peserta"].cell(row=3, column=2)  # B's name
    assert name.data_type == "s" and name.value == "'" + HOSTILE
    assert wb["Kehadiran"].cell(row=3, column=2).value == "'" + HOSTILE
    assert wb["Kehadiran"].cell(row=7, column=2).value == "'+Dewi"
    assert wb["Ditahan"].cell(row=3, column=5).value == "'@lembaga kedaluwarsa"
    cells = [c for ws in wb.worksheets for line in ws.iter_rows() for c in line]
    assert not [c.coordinate for c in cells if c.data_type == "f"]  # no formula anywhere in the workbook
    assert all(c.data_type == "s" for c in cells if isinstance(c.value, str))


def test_an_empty_activity_still_renders(tmp_path: Path) -> None:
    story = recap_flowables(empty(), META)
    text = story_text(story)
    for line in ("Tidak ada peserta yang tidak hadir.", "Tidak ada hasil yang ditahan.", *HEADINGS):
        assert line in text
    assert table_headed(story, *TALLY)[1] == ["0"] * 5
    write_recap_pdf(tmp_path / "e.pdf", empty(), META)
    write_recap_xlsx(tmp_path / "e.xlsx", empty(), META)
    assert (tmp_path / "e.pdf").read_bytes().startswith(b"%PDF")
    assert sheet(tmp_path / "e.xlsx", "Peserta") == [] and sheet(tmp_path / "e.xlsx", "Ditahan") == []
    assert {r["Butir"]: r["Nilai"] for r in sheet(tmp_path / "e.xlsx", "Ringkasan")}["Dijadwalkan"] == 0
