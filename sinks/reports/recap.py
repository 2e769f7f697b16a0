"""The recap report of one activity (Laporan Rekapitulasi), as PDF and as XLSX, from the store's records.

Everything shown is in :class:`~sinks.reports.model.ActivityData`: participants by home activity (a susulan
sat elsewhere is here, marked), their nine levels, JPM and category as stored, the attendance of each, and
the held-back results apart, in no table or distribution of the counted ones. The XLSX carries the same
rows as numbers and dates; a text cell that a spreadsheet would run as a formula is written as text.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, KeepTogether, Paragraph, Spacer, Table, TableStyle

from sinks.reports import pdf
from sinks.reports.files import private_file
from sinks.reports.model import (
    ATTENDANCE_NAMES,
    COMPETENCY_NAMES,
    PURPOSE_NAMES,
    STANDING_NAMES,
    ActivityData,
    IndividualResult,
    ReportMeta,
)

TITLE = "Laporan Rekapitulasi Hasil Penilaian Kompetensi"
HEADINGS = ("A. Ringkasan Kegiatan", "B. Kehadiran", "C. Daftar Tidak Hadir", "D. Hasil Peserta", "E. Distribusi",
            "F. Hasil yang Ditahan")
CODES = tuple(COMPETENCY_NAMES)
LEVELS = range(1, 6)
NO_CATEGORY = "Tanpa kategori"
NONE_ABSENT = "Tidak ada peserta yang tidak hadir."
NONE_HELD = "Tidak ada hasil yang ditahan."
NONE_COUNTED = "Belum ada hasil yang diakui."
HELD_APART = "Hasil yang ditahan (bagian F) tidak termasuk dalam bagian D dan E."
#: Fifteen columns on a portrait page: 6.5 pt fits an 18-digit NIP on one line (pdftotext reads a row as a line).
_TINY = ParagraphStyle("recap-tiny", parent=pdf.STYLES["cell"], fontSize=6.5, leading=8)
_TINY_BOLD = ParagraphStyle("recap-tiny-bold", parent=_TINY, fontName=pdf.FONT_BOLD)
#: What a spreadsheet would run as a formula when it starts a cell (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LEVEL_SHADES = ("#d64545", "#e08a2c", "#e8c547", "#5fae5f", "#2f7d4a")


# --- the numbers ------------------------------------------------------------------------------------------------


def category_distribution(data: ActivityData) -> dict[str, int]:
    """Counted results per category, best first: ordered by the categories' mean JPM, as the renderer has no
    ranking of the rules' labels and a chart in alphabetical order would put "Cukup" before "Optimal"."""
    counts = Counter(r.category or NO_CATEGORY for r in data.results)
    jpms: dict[str, list[float]] = defaultdict(list)
    for r in data.results:
        if r.jpm is not None:
            jpms[r.category or NO_CATEGORY].append(r.jpm)

    def rank(label: str) -> tuple[bool, float, str]:
        scores = jpms.get(label)
        return label == NO_CATEGORY, -(sum(scores) / len(scores)) if scores else 0.0, label

    return {label: counts[label] for label in sorted(counts, key=rank)}


def level_distribution(data: ActivityData) -> dict[str, dict[int, int]]:
    """Per competency, how many counted results reached each level: every level present, so tables line up."""
    out = {code: dict.fromkeys(LEVELS, 0) for code in CODES}
    for r in data.results:
        for c in r.competencies:
            out[c.code][c.level] += 1
    return out


def _levels(r: IndividualResult) -> list[int | None]:
    by = {c.code: c.level for c in r.competencies}
    return [by.get(code) for code in CODES]


def _note(r: IndividualResult) -> str:
    return f"susulan ({r.host_activity_id})" if r.host_activity_id else ""


def _purpose(data: ActivityData) -> str:
    return PURPOSE_NAMES.get(data.purpose, data.purpose or "-")


def _agency(data: ActivityData) -> str:
    return data.agency_name or data.agency_id or "-"


# --- the PDF ----------------------------------------------------------------------------------------------------


def _days(data: ActivityData) -> str:
    if data.first_test_day is None or data.last_test_day is None:
        return "-"
    if data.first_test_day == data.last_test_day:
        return pdf.hari_tanggal(data.last_test_day)
    return f"{pdf.hari_tanggal(data.first_test_day)} s.d. {pdf.hari_tanggal(data.last_test_day)}"


def _section(heading: str, body: list[Flowable]) -> list[Flowable]:
    """A heading never ends a page alone: it is kept with the first thing under it."""
    return [KeepTogether([pdf.para(heading, "h2"), body[0]]), *body[1:]]


def _cols(*fractions: float) -> list[float]:
    return [pdf.FRAME_WIDTH * f for f in fractions]


def _tiny_grid(rows: Sequence[Sequence[str]], widths: list[float]) -> Table:
    """Small type and narrow padding, the header row bold as in every other table."""
    cells = [[Paragraph(pdf.text(c), _TINY_BOLD if i == 0 else _TINY) for c in row] for i, row in enumerate(rows)]
    table = pdf.grid(cells, widths)
    table.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2)]))
    return table


def _summary(data: ActivityData, meta: ReportMeta, due: dict[str, date] | None) -> list[Flowable]:
    rows = [["Instansi", _agency(data)], ["Kegiatan", data.activity_id], ["Tujuan penilaian", _purpose(data)],
            ["Hari tes", _days(data)], ["Jumlah sesi", str(len(data.sessions))],
            ["Hasil diakui", str(len(data.results))], ["Hasil ditahan", str(len(data.held_back))]]
    if data.open_sessions:
        rows.append(["Sesi yang belum ditutup", f"{data.open_sessions} (kegiatan masih berlangsung)"])
    if due:
        rows += [["Batas laporan rekapitulasi (hari kerja ke-11)", pdf.hari_tanggal(due["recap"])],
                 ["Batas laporan lengkap (hari kerja ke-21)", pdf.hari_tanggal(due["full"])]]
    rows.append(["Versi laporan", pdf.version_line(meta)])
    return [pdf.grid(rows, _cols(0.42, 0.58), header=False)]


def _attendance(data: ActivityData) -> list[Flowable]:
    tally = data.tally()
    numbers = [tally["scheduled_persons"], tally["present"], tally["present_susulan"], tally["no_show"],
               tally["rescheduled_pending"]]
    sessions = [["Sesi", "Lab", "Tanggal", "Dijadwalkan", "Hadir", "Tidak hadir", "Dijadwalkan ulang"]]
    sessions += [[s.session_id, s.lab_id, pdf.tanggal(s.test_day), str(s.scheduled), str(s.checked_in),
                  str(s.no_show), str(s.rescheduled)] for s in data.sessions]
    return [
        pdf.grid([["Dijadwalkan", "Hadir", "Hadir susulan", "Tidak hadir", "Susulan belum dilaksanakan"],
                  [str(n) for n in numbers]], _cols(*[0.2] * 5)),
        Spacer(1, 4),
        pdf.para("Peserta dihitung pada kegiatan asalnya: peserta yang mengikuti susulan di sesi lain tetap "
                 "tercatat di sini; baris per sesi menghitung kursi sesi kegiatan ini.", "small"),
        Spacer(1, 4),
        pdf.grid(sessions, _cols(0.2, 0.12, 0.18, 0.145, 0.1, 0.11, 0.145)),
    ]


def _absent(data: ActivityData) -> list[Flowable]:
    absent = [a for a in data.attendance if a.status == "no_show"]
    if not absent:
        return [pdf.para(NONE_ABSENT)]
    rows = [["No", "NIP", "Nama", "Sesi asal", "Sesi susulan"]]
    rows += [[str(i), a.nip, a.name or "-", a.home_session_id, a.susulan_session_id or "-"]
             for i, a in enumerate(absent, 1)]
    return [pdf.grid(rows, _cols(0.06, 0.25, 0.29, 0.2, 0.2))]


def _results(data: ActivityData) -> list[Flowable]:
    if not data.results:
        return [pdf.para(NONE_COUNTED), pdf.para(HELD_APART, "small")]
    rows = [["No", "NIP", "Nama", *CODES, "JPM", "Kategori", "Keterangan"]]
    rows += [[str(i), r.nip, r.name or "-", *("-" if v is None else str(v) for v in _levels(r)), pdf.angka(r.jpm),
              r.category or "-", _note(r)] for i, r in enumerate(data.results, 1)]
    widths = _cols(0.035, 0.165, 0.17, *[0.037] * len(CODES), 0.07, 0.11, 0.117)
    return [_tiny_grid(rows, widths), Spacer(1, 3), pdf.para(HELD_APART, "small")]


def _charts(cats: dict[str, int], levels: dict[str, dict[int, int]]) -> Figure:
    fig = pdf.new_figure(7.0, 2.6)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.bar(list(cats), list(cats.values()), color="#3b7dd8")
    left.set_title("Kategori", fontsize=9)
    bottom = [0] * len(CODES)
    for n in LEVELS:
        counts = [levels[c][n] for c in CODES]
        right.bar(list(CODES), counts, bottom=bottom, color=_LEVEL_SHADES[n - 1], label=f"Level {n}")
        bottom = [b + x for b, x in zip(bottom, counts)]
    right.set_title("Level per kompetensi", fontsize=9)
    right.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for axes in (left, right):
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=7)
    return fig


def _distribution(data: ActivityData) -> list[Flowable]:
    """The charts for the eye, the same numbers as tables for the text layer (and for anyone checking)."""
    cats = category_distribution(data)
    levels = level_distribution(data)
    out: list[Flowable] = [pdf.chart(_charts(cats, levels), pdf.FRAME_WIDTH)] if data.results else []
    cat_rows = [[k, str(v)] for k, v in cats.items()] or [["-", "0"]]
    out += [pdf.grid([["Kategori", "Jumlah"], *cat_rows], _cols(0.5, 0.2)), Spacer(1, 4),
            pdf.grid([["Kompetensi", *(f"Level {n}" for n in LEVELS)],
                      *[[f"{c} {COMPETENCY_NAMES[c]}", *(str(levels[c][n]) for n in LEVELS)] for c in CODES]],
                     _cols(0.4, *[0.12] * 5))]
    return out


def _held_back(data: ActivityData) -> list[Flowable]:
    if not data.held_back:
        return [pdf.para(NONE_HELD)]
    rows = [["NIP", "Nama", "Versi", "Status", "Keterangan"]]
    rows += [[h.nip, h.name or "-", str(h.result_version), STANDING_NAMES.get(h.standing, h.standing),
              h.standing_detail or "-"] for h in data.held_back]
    return [pdf.para("Hasil berikut belum atau tidak diakui; tidak dihitung dalam bagian D dan E.", "small"),
            Spacer(1, 3), pdf.grid(rows, _cols(0.23, 0.22, 0.08, 0.19, 0.28))]


def recap_flowables(data: ActivityData, meta: ReportMeta, *, due: dict[str, date] | None = None) -> list[Flowable]:
    """The recap's story; the full report sets it first, before the individual reports, in one document."""
    parts = (_summary(data, meta, due), _attendance(data), _absent(data), _results(data), _distribution(data),
             _held_back(data))
    out: list[Flowable] = [pdf.para(TITLE, "title"),
                           pdf.para(f"Kegiatan {data.activity_id} · {_agency(data)} · {_purpose(data)}", "subtitle")]
    for heading, body in zip(HEADINGS, parts):
        out += _section(heading, body)
    return out


def write_recap_pdf(path: Path, data: ActivityData, meta: ReportMeta, *, due: dict[str, date] | None = None) -> None:
    pdf.write_pdf(path, recap_flowables(data, meta, due=due), meta, title=f"{TITLE} {data.activity_id}",
                  heading="Laporan Rekapitulasi")


# --- the XLSX ---------------------------------------------------------------------------------------------------


def safe(value: Any) -> Any:
    """A text cell as text: one a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _sheet(wb: Workbook, title: str, header: list[str], rows: list[list[Any]], widths: dict[str, int]) -> Worksheet:
    ws = wb.create_sheet(title)
    ws.append(header)
    for row in rows:
        ws.append([safe(v) for v in row])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for line in ws.iter_rows():
        for cell in line:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # never a formula, whatever it starts with
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    for column, width in widths.items():
        ws.column_dimensions[column].width = width
    return ws


def _summary_sheet(wb: Workbook, data: ActivityData, meta: ReportMeta) -> None:
    tally = data.tally()
    _sheet(wb, "Ringkasan", ["Butir", "Nilai"], [
        ["Laporan", pdf.version_line(meta)], ["Kegiatan", data.activity_id],
        ["Instansi", data.agency_name or data.agency_id], ["Tujuan", _purpose(data)],
        ["Hari tes pertama", data.first_test_day], ["Hari tes terakhir", data.last_test_day],
        ["Jumlah sesi", len(data.sessions)], ["Sesi yang belum ditutup", data.open_sessions],
        ["Dijadwalkan", tally["scheduled_persons"]], ["Hadir", tally["present"]],
        ["Hadir susulan", tally["present_susulan"]], ["Tidak hadir", tally["no_show"]],
        ["Susulan belum dilaksanakan", tally["rescheduled_pending"]], ["Hasil diakui", len(data.results)],
        ["Hasil ditahan", len(data.held_back)]], {"A": 30, "B": 90})


def _people_sheet(wb: Workbook, data: ActivityData) -> None:
    header = ["NIP", "Nama", "Sesi", "Susulan di kegiatan", *CODES, "JPM", "Kategori", "Tanggal tes",
              "Berlaku sampai", "Versi hasil"]
    rows = [[r.nip, r.name, r.session_id, r.host_activity_id, *_levels(r),
             round(r.jpm, 2) if r.jpm is not None else None, r.category, r.assessed_on, r.valid_until,
             r.result_version] for r in data.results]
    ws = _sheet(wb, "Peserta", header, rows, {"A": 21, "B": 28, "C": 18, "D": 18, "N": 8, "O": 16, "P": 13,
                                              "Q": 14, "R": 11})
    for (jpm,) in ws.iter_rows(min_row=2, min_col=14, max_col=14):
        jpm.number_format = "0.00"
    for line in ws.iter_rows(min_row=2, min_col=16, max_col=17):
        for day in line:
            day.number_format = "dd/mm/yyyy"


def _attendance_sheets(wb: Workbook, data: ActivityData) -> None:
    _sheet(wb, "Kehadiran", ["NIP", "Nama", "Sesi asal", "Status", "Sesi hadir", "Sesi susulan", "Terlambat"],
           [[a.nip, a.name, a.home_session_id, ATTENDANCE_NAMES.get(a.status, a.status), a.sat_session_id,
             a.susulan_session_id, "ya" if a.late else ""] for a in data.attendance],
           {"A": 21, "B": 28, "C": 16, "D": 44, "E": 16, "F": 16})
    _sheet(wb, "Tidak Hadir", ["NIP", "Nama", "Sesi asal", "Sesi susulan"],
           [[a.nip, a.name, a.home_session_id, a.susulan_session_id] for a in data.attendance
            if a.status == "no_show"], {"A": 21, "B": 28, "C": 16, "D": 16})


def _distribution_sheet(wb: Workbook, data: ActivityData) -> None:
    """Categories on top (the chart's source), the level table two rows under them."""
    cats = category_distribution(data)
    levels = level_distribution(data)
    ws = _sheet(wb, "Distribusi", ["Kategori", "Jumlah"], [[k, v] for k, v in cats.items()], {"A": 40})
    start = len(cats) + 3
    for column, title in enumerate(["Kompetensi", *(f"Level {n}" for n in LEVELS)], 1):
        ws.cell(row=start, column=column, value=title).font = Font(bold=True)
    for i, code in enumerate(CODES, 1):
        ws.cell(row=start + i, column=1, value=f"{code} {COMPETENCY_NAMES[code]}")
        for n in LEVELS:
            ws.cell(row=start + i, column=n + 1, value=levels[code][n])
    ws.auto_filter.ref = None  # the sheet holds two tables: a filter over the first would hide the second
    if cats:
        chart = BarChart()
        chart.title = "Kategori"
        chart.legend = None
        chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=len(cats) + 1), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(cats) + 1))
        ws.add_chart(chart, "H2")


def _held_back_sheet(wb: Workbook, data: ActivityData) -> None:
    _sheet(wb, "Ditahan", ["NIP", "Nama", "Versi hasil", "Status", "Keterangan"],
           [[h.nip, h.name, h.result_version, STANDING_NAMES.get(h.standing, h.standing), h.standing_detail]
            for h in data.held_back], {"A": 21, "B": 28, "C": 11, "D": 24, "E": 60})


def write_recap_xlsx(path: Path, data: ActivityData, meta: ReportMeta) -> None:
    """The recap's rows for the agency's own sums; written 0600 under a temporary name, then put in place."""
    wb = Workbook()
    if wb.active is not None:
        wb.remove(wb.active)
    _summary_sheet(wb, data, meta)
    _people_sheet(wb, data)
    _attendance_sheets(wb, data)
    _distribution_sheet(wb, data)
    _held_back_sheet(wb, data)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with private_file(partial) as handle:
            wb.save(handle)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
