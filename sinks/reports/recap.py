"""The recap report of one activity (Laporan Rekapitulasi), as PDF and as XLSX, from the store's records.

Everything shown is in :class:`~sinks.reports.model.ActivityData`: participants by home activity (a susulan
sat elsewhere is here, marked), their nine levels, JPM and category as stored, the attendance of each, and
the held-back results apart, in no table or distribution of the counted ones. The XLSX carries the same
rows as numbers and dates; a text cell that a spreadsheet would run as a formula is written as text.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, Paragraph, Spacer, TableStyle

from sinks.reports import pdf
from sinks.reports.files import private_file
from sinks.reports.model import (
    ATTENDANCE_NAMES,
    COMPETENCY_NAMES,
    PURPOSE_NAMES,
    STANDING_NAMES,
    ActivityData,
    ReportMeta,
)

TITLE = "Laporan Rekapitulasi Hasil Penilaian Kompetensi"
HEADINGS = ("A. Ringkasan Kegiatan", "B. Kehadiran", "C. Daftar Tidak Hadir", "D. Hasil Peserta", "E. Distribusi",
            "F. Hasil yang Ditahan")
CODES = tuple(COMPETENCY_NAMES)
NO_CATEGORY = "Tanpa kategori"
_TINY = ParagraphStyle("tiny", parent=pdf.STYLES["cell"], fontSize=6.5, leading=8)
#: What a spreadsheet would run as a formula when it starts a cell (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def category_distribution(data: ActivityData) -> dict[str, int]:
    counts = Counter(r.category or NO_CATEGORY for r in data.results)
    return dict(sorted(counts.items()))


def level_distribution(data: ActivityData) -> dict[str, dict[int, int]]:
    out = {code: dict.fromkeys(range(1, 6), 0) for code in CODES}
    for r in data.results:
        for c in r.competencies:
            out[c.code][c.level] += 1
    return out


def _levels(r: Any) -> list[str]:
    by = {c.code: c.level for c in r.competencies}
    return [str(by[c]) if c in by else "-" for c in CODES]


def _note(r: Any) -> str:
    return f"susulan ({r.host_activity_id})" if r.host_activity_id else ""


def _tiny_grid(rows: list[list[str]], widths: list[float]) -> Any:
    """Fifteen columns on a portrait page: small type, narrow padding, an 18-digit NIP on one line."""
    table = pdf.grid([[Paragraph(pdf.text(c), _TINY) for c in row] for row in rows], widths)
    table.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2)]))
    return table


def _days(data: ActivityData) -> str:
    if data.first_test_day is None or data.last_test_day is None:
        return "-"
    if data.first_test_day == data.last_test_day:
        return pdf.hari_tanggal(data.last_test_day)
    return f"{pdf.hari_tanggal(data.first_test_day)} s.d. {pdf.hari_tanggal(data.last_test_day)}"


def recap_flowables(data: ActivityData, meta: ReportMeta, *, due: dict[str, date] | None = None) -> list[Flowable]:
    w = pdf.FRAME_WIDTH
    tally = data.tally()
    out: list[Flowable] = [
        pdf.para(TITLE, "title"),
        pdf.para(f"Kegiatan {data.activity_id} · {data.agency_name or data.agency_id} · "
                 f"{PURPOSE_NAMES.get(data.purpose, data.purpose or '-')}", "subtitle"),
        pdf.para(HEADINGS[0], "h2"),
    ]
    summary = [["Instansi", data.agency_name or data.agency_id or "-"], ["Kegiatan", data.activity_id],
               ["Tujuan penilaian", PURPOSE_NAMES.get(data.purpose, data.purpose or "-")],
               ["Hari tes", _days(data)], ["Jumlah sesi", str(len(data.sessions))],
               ["Hasil diakui", str(len(data.results))], ["Hasil ditahan", str(len(data.held_back))]]
    if due:
        summary += [["Batas laporan rekapitulasi (hari kerja ke-11)", pdf.hari_tanggal(due["recap"])],
                    ["Batas laporan lengkap (hari kerja ke-21)", pdf.hari_tanggal(due["full"])]]
    summary.append(["Versi laporan", pdf.version_line(meta)])
    out.append(pdf.grid(summary, [w * 0.38, w * 0.62], header=False))
    out += [pdf.para(HEADINGS[1], "h2"), pdf.grid([
        ["Dijadwalkan", "Hadir", "Hadir susulan", "Tidak hadir", "Susulan belum dilaksanakan"],
        [str(tally["scheduled_persons"]), str(tally["present"]), str(tally["present_susulan"]),
         str(tally["no_show"]), str(tally["rescheduled_pending"])]], [w / 5] * 5),
        Spacer(1, 4),
        pdf.para("Peserta dihitung pada kegiatan asalnya: peserta yang mengikuti susulan di sesi lain tetap "
                 "tercatat di sini; baris per sesi menghitung kursi sesi kegiatan ini.", "small"),
        Spacer(1, 4)]
    sessions = [["Sesi", "Lab", "Tanggal", "Dijadwalkan", "Hadir", "Tidak hadir", "Dijadwalkan ulang"]]
    sessions += [[s.session_id, s.lab_id, pdf.tanggal(s.test_day), str(s.scheduled), str(s.checked_in),
                  str(s.no_show), str(s.rescheduled)] for s in data.sessions]
    out.append(pdf.grid(sessions, [w * 0.22, w * 0.16, w * 0.16, w * 0.12, w * 0.1, w * 0.12, w * 0.12]))
    out.append(pdf.para(HEADINGS[2], "h2"))
    absent = [a for a in data.attendance if a.status == "no_show"]
    if absent:
        rows = [["No", "NIP", "Nama", "Sesi asal", "Sesi susulan"]]
        rows += [[str(i), a.nip, a.name or "-", a.home_session_id, a.susulan_session_id or "-"]
                 for i, a in enumerate(absent, 1)]
        out.append(pdf.grid(rows, [w * 0.06, w * 0.25, w * 0.29, w * 0.2, w * 0.2]))
    else:
        out.append(pdf.para("Tidak ada peserta yang tidak hadir."))
    out.append(pdf.para(HEADINGS[3], "h2"))
    if data.results:
        rows = [["No", "NIP", "Nama", *CODES, "JPM", "Kategori", "Keterangan"]]
        rows += [[str(i), r.nip, r.name or "-", *_levels(r), pdf.angka(r.jpm), r.category or "-", _note(r)]
                 for i, r in enumerate(data.results, 1)]
        lvl = w * 0.037
        out.append(_tiny_grid(rows, [w * 0.035, w * 0.165, w * 0.17, *[lvl] * 9, w * 0.07, w * 0.11, w * 0.117]))
    else:
        out.append(pdf.para("Belum ada hasil yang diakui."))
    out.append(pdf.para("Hasil yang ditahan (bagian F) tidak termasuk dalam bagian D dan E.", "small"))
    out.append(pdf.para(HEADINGS[4], "h2"))
    cats = category_distribution(data)
    levels = level_distribution(data)
    if data.results:
        out.append(pdf.chart(_charts(cats, levels), w))
    out.append(pdf.grid([["Kategori", "Jumlah"], *[[k, str(v)] for k, v in cats.items()]] if cats else
                        [["Kategori", "Jumlah"], ["-", "0"]], [w * 0.5, w * 0.2]))
    out.append(Spacer(1, 4))
    out.append(pdf.grid([["Kompetensi", "Level 1", "Level 2", "Level 3", "Level 4", "Level 5"],
                         *[[f"{c} {COMPETENCY_NAMES[c]}", *(str(levels[c][n]) for n in range(1, 6))]
                           for c in CODES]], [w * 0.4] + [w * 0.12] * 5))
    out.append(pdf.para(HEADINGS[5], "h2"))
    if data.held_back:
        rows = [["NIP", "Nama", "Versi", "Status", "Keterangan"]]
        rows += [[h.nip, h.name or "-", str(h.result_version), STANDING_NAMES.get(h.standing, h.standing),
                  h.standing_detail or "-"] for h in data.held_back]
        out.append(pdf.grid(rows, [w * 0.25, w * 0.19, w * 0.07, w * 0.17, w * 0.32]))
    else:
        out.append(pdf.para("Tidak ada hasil yang ditahan."))
    return out


def _charts(cats: dict[str, int], levels: dict[str, dict[int, int]]) -> Any:
    fig = pdf.new_figure(7.0, 2.6)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.bar(list(cats), list(cats.values()), color="#3b7dd8")
    left.set_title("Kategori", fontsize=9)
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.tick_params(labelsize=7)
    bottom = [0] * len(CODES)
    shades = ("#d64545", "#e08a2c", "#e8c547", "#5fae5f", "#2f7d4a")
    for n in range(1, 6):
        counts = [levels[c][n] for c in CODES]
        right.bar(list(CODES), counts, bottom=bottom, color=shades[n - 1], label=f"Level {n}")
        bottom = [b + x for b, x in zip(bottom, counts)]
    right.set_title("Level per kompetensi", fontsize=9)
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.tick_params(labelsize=7)
    right.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def write_recap_pdf(path: Path, data: ActivityData, meta: ReportMeta, *, due: dict[str, date] | None = None) -> None:
    pdf.write_pdf(path, recap_flowables(data, meta, due=due), meta, title=f"{TITLE} {data.activity_id}",
                  heading="Laporan Rekapitulasi")


def safe(value: Any) -> Any:
    """A text cell as text: one a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _sheet(wb: Workbook, title: str, header: list[str], rows: list[list[Any]], widths: dict[str, int]) -> Any:
    ws = wb.create_sheet(title)
    ws.append(header)
    for row in rows:
        ws.append([safe(v) for v in row])
    for cell in ws[1]:
        cell.data_type = "s"
    ws.freeze_panes = "A2"
    for column, width in widths.items():
        ws.column_dimensions[column].width = width
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # never a formula, whatever it starts with
    return ws


def write_recap_xlsx(path: Path, data: ActivityData, meta: ReportMeta) -> None:
    wb = Workbook()
    assert wb.active is not None
    wb.remove(wb.active)
    tally = data.tally()
    _sheet(wb, "Ringkasan", ["Butir", "Nilai"], [
        ["Laporan", pdf.version_line(meta)], ["Kegiatan", data.activity_id],
        ["Instansi", data.agency_name or data.agency_id], ["Tujuan", PURPOSE_NAMES.get(data.purpose, data.purpose)],
        ["Hari tes pertama", data.first_test_day], ["Hari tes terakhir", data.last_test_day],
        ["Dijadwalkan", tally["scheduled_persons"]], ["Hadir", tally["present"]],
        ["Hadir susulan", tally["present_susulan"]], ["Tidak hadir", tally["no_show"]],
        ["Susulan belum dilaksanakan", tally["rescheduled_pending"]], ["Hasil diakui", len(data.results)],
        ["Hasil ditahan", len(data.held_back)]], {"A": 30, "B": 70})
    _sheet(wb, "Peserta", ["NIP", "Nama", "Sesi", "Susulan di kegiatan", *CODES, "JPM", "Kategori", "Tanggal tes",
                           "Berlaku sampai", "Versi hasil"],
           [[r.nip, r.name, r.session_id, r.host_activity_id,
             *[{c.code: c.level for c in r.competencies}.get(code) for code in CODES],
             round(r.jpm, 2) if r.jpm is not None else None, r.category, r.assessed_on, r.valid_until,
             r.result_version] for r in data.results], {"A": 21, "B": 28, "C": 18, "D": 18})
    _sheet(wb, "Kehadiran", ["NIP", "Nama", "Sesi asal", "Status", "Sesi hadir", "Sesi susulan", "Terlambat"],
           [[a.nip, a.name, a.home_session_id, ATTENDANCE_NAMES.get(a.status, a.status), a.sat_session_id,
             a.susulan_session_id, "ya" if a.late else ""] for a in data.attendance], {"A": 21, "B": 28, "D": 24})
    _sheet(wb, "Tidak Hadir", ["NIP", "Nama", "Sesi asal", "Sesi susulan"],
           [[a.nip, a.name, a.home_session_id, a.susulan_session_id] for a in data.attendance
            if a.status == "no_show"], {"A": 21, "B": 28})
    cats = category_distribution(data)
    levels = level_distribution(data)
    ws = _sheet(wb, "Distribusi", ["Kategori", "Jumlah"], [[k, v] for k, v in cats.items()], {"A": 34})
    start = len(cats) + 3
    ws.cell(row=start, column=1, value="Kompetensi")
    for n in range(1, 6):
        ws.cell(row=start, column=n + 1, value=f"Level {n}")
    for i, code in enumerate(CODES, 1):
        ws.cell(row=start + i, column=1, value=f"{code} {COMPETENCY_NAMES[code]}")
        for n in range(1, 6):
            ws.cell(row=start + i, column=n + 1, value=levels[code][n])
    if cats:
        chart = BarChart()
        chart.title = "Kategori"
        chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=len(cats) + 1), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(cats) + 1))
        ws.add_chart(chart, "H2")
    _sheet(wb, "Ditahan", ["NIP", "Nama", "Versi hasil", "Status", "Keterangan"],
           [[h.nip, h.name, h.result_version, STANDING_NAMES.get(h.standing, h.standing), h.standing_detail]
            for h in data.held_back], {"A": 21, "B": 28, "D": 24, "E": 60})
    partial = path.with_name(f".{path.name}.partial")
    with private_file(partial) as handle:
        wb.save(handle)
    os.replace(partial, path)
