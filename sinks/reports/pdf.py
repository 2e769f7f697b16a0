"""The reports' page furniture on ReportLab: fonts, styles, header and footer, charts as images, Indonesian dates.

One place for it so the individual report and the recap look like one family and the full report can set
both in one document. DejaVu Sans (shipped with matplotlib) is embedded instead of the PDF base fonts: names
of participants may carry any letter, and the text layer must read back exactly (pdftotext) for the checks.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib

matplotlib.use("Agg")  # no display here or on a server

from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from reportlab.lib import colors  # noqa: E402
from reportlab.lib.enums import TA_CENTER  # noqa: E402
from reportlab.lib.pagesizes import A4  # noqa: E402
from reportlab.lib.styles import ParagraphStyle, StyleSheet1  # noqa: E402
from reportlab.lib.units import mm  # noqa: E402
from reportlab.pdfbase import pdfmetrics  # noqa: E402
from reportlab.pdfbase.ttfonts import TTFont  # noqa: E402
from reportlab.platypus import Flowable, Image, Paragraph, SimpleDocTemplate, Table, TableStyle  # noqa: E402

from sinks.reports.files import private_file  # noqa: E402
from sinks.reports.model import KIND_NAMES, WIB, ReportMeta  # noqa: E402

FONT, FONT_BOLD = "DejaVuSans", "DejaVuSans-Bold"
PAGE = A4
MARGIN = 18 * mm
#: What every page says at its foot: the document carries personal data.
CONFIDENTIAL = "RAHASIA: memuat data pribadi. Hanya untuk instansi pengguna yang berwenang."
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")


def _register_fonts() -> None:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    for name, weight in ((FONT, "normal"), (FONT_BOLD, "bold")):
        path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight=weight),
                                     fallback_to_default=False)
        pdfmetrics.registerFont(TTFont(name, path))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)


_register_fonts()


def styles() -> StyleSheet1:
    sheet = StyleSheet1()
    sheet.add(ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5))
    sheet.add(ParagraphStyle("small", parent=sheet["body"], fontSize=8, leading=10))
    sheet.add(ParagraphStyle("title", parent=sheet["body"], fontName=FONT_BOLD, fontSize=15, leading=19,
                             alignment=TA_CENTER, spaceAfter=4))
    sheet.add(ParagraphStyle("subtitle", parent=sheet["body"], alignment=TA_CENTER, spaceAfter=8))
    sheet.add(ParagraphStyle("h2", parent=sheet["body"], fontName=FONT_BOLD, fontSize=11.5, leading=15,
                             spaceBefore=8, spaceAfter=4))
    sheet.add(ParagraphStyle("cell", parent=sheet["body"], fontSize=8.5, leading=10.5))
    sheet.add(ParagraphStyle("cellbold", parent=sheet["cell"], fontName=FONT_BOLD))
    return sheet


STYLES = styles()


def text(value: object) -> str:
    """Anything shown in a Paragraph: escaped, as names and details may hold markup characters."""
    return escape("" if value is None else str(value))


def para(value: object, style: str = "body") -> Paragraph:
    return Paragraph(text(value), STYLES[style])


def rich(markup: str, style: str = "body") -> Paragraph:
    """A Paragraph from trusted markup (the caller escaped every value with :func:`text`)."""
    return Paragraph(markup, STYLES[style])


def tanggal(day: date | datetime | None) -> str:
    """``1 Desember 2026``; ``-`` for nothing."""
    if day is None:
        return "-"
    if isinstance(day, datetime):
        day = day.astimezone(WIB).date() if day.tzinfo else day.date()
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def hari_tanggal(day: date) -> str:
    """``Selasa, 1 Desember 2026``."""
    return f"{DAYS[day.weekday()]}, {tanggal(day)}"


def waktu(at: datetime) -> str:
    """``1 Desember 2026 14:05 WIB``."""
    local = at.astimezone(WIB) if at.tzinfo else at.replace(tzinfo=WIB)
    return f"{tanggal(local.date())} {local:%H:%M} WIB"


def angka(value: float | None, digits: int = 2) -> str:
    """Numbers the Indonesian way (decimal comma); ``-`` for none. Reports and tests read them back with this."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}".replace(".", ",")


def grid(rows: Sequence[Sequence[Any]], widths: Sequence[float] | None = None, *, header: bool = True,
         zebra: bool = True, align_right_from: int | None = None) -> Table:
    """A ruled table; string cells become wrapped paragraphs (escaped), flowables pass through."""
    body = [[c if isinstance(c, Flowable) else Paragraph(text(c), STYLES["cellbold" if header and i == 0 else "cell"])
             for c in row] for i, row in enumerate(rows)]
    table = Table(body, colWidths=widths, repeatRows=1 if header else 0)
    style: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5ee")))
    if zebra:
        for i in range(1 if header else 0, len(rows)):
            if i % 2 == 0:
                style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#f4f7fa")))
    if align_right_from is not None:
        style.append(("ALIGN", (align_right_from, 0), (-1, -1), "RIGHT"))
    table.setStyle(TableStyle(style))
    return table


def chart_png(figure: Figure, *, dpi: int = 150) -> tuple[bytes, float]:
    """A matplotlib figure as PNG bytes and its height/width ratio: rendered once, placed as often as needed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)  # the figure's tight layout engine already trims it
    fig_w, fig_h = figure.get_size_inches()
    return buffer.getvalue(), fig_h / fig_w


def image(png: tuple[bytes, float], width: float) -> Image:
    """A fresh flowable of a rendered chart ``width`` points wide (a flowable belongs to one document)."""
    data, ratio = png
    return Image(io.BytesIO(data), width=width, height=width * ratio)


def chart(figure: Figure, width: float, *, dpi: int = 150) -> Image:
    """A matplotlib figure as an image of ``width`` points on the page (its aspect kept)."""
    return image(chart_png(figure, dpi=dpi), width)


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure not registered with pyplot: nothing global, so reports can be built from threads."""
    fig = Figure(figsize=(width_in, height_in))
    fig.set_layout_engine("tight")
    return fig


def version_line(meta: ReportMeta) -> str:
    """``Laporan Rekapitulasi versi 2, dibuat 1 Desember 2026 14:05 WIB, menggantikan versi 1 (…)``."""
    line = f"{KIND_NAMES.get(meta.kind, meta.kind)} versi {meta.version}, dibuat {waktu(meta.built_at)}"
    if meta.supersedes is not None:
        line += f"; menggantikan versi {meta.supersedes}"
        if meta.supersedes_built_at is not None:
            line += f" ({waktu(meta.supersedes_built_at)})"
        if meta.reason:
            line += f": {meta.reason}"
    return line


def footer_line(meta: ReportMeta) -> str:
    """The version on every page, short enough for one line; the full line (why, and when the superseded one was
    built) is in the document's body."""
    line = f"{KIND_NAMES.get(meta.kind, meta.kind)} versi {meta.version}, dibuat {waktu(meta.built_at)}"
    return line + (f"; menggantikan versi {meta.supersedes}" if meta.supersedes is not None else "")


def _furniture(meta: ReportMeta, heading: str) -> Callable[[Any, Any], None]:
    def draw(canvas: Any, doc: Any) -> None:
        width, height = PAGE
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.drawString(MARGIN, height - 11 * mm, f"BKN · Pusat Penilaian Kompetensi ASN · {heading}")
        canvas.drawRightString(width - MARGIN, height - 11 * mm, f"Kegiatan {meta.activity_id}")
        canvas.drawString(MARGIN, 11 * mm, CONFIDENTIAL)
        canvas.drawRightString(width - MARGIN, 11 * mm, f"Halaman {doc.page}")
        canvas.drawString(MARGIN, 7.5 * mm, footer_line(meta))
        canvas.restoreState()
    return draw


def write_pdf(path: Path, flowables: list[Flowable], meta: ReportMeta, *, title: str, heading: str) -> None:
    """Set ``flowables`` on A4 pages with the header and footer, into ``path`` (created 0600)."""
    doc = SimpleDocTemplate(str(path), pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=17 * mm,
                            bottomMargin=18 * mm, title=title, author="BKN Pusat Penilaian Kompetensi ASN",
                            subject=heading, creator="cact-pipeline")
    draw = _furniture(meta, heading)
    with private_file(path) as handle:
        doc.filename = handle  # ReportLab writes to a file object as well as to a name
        doc.build(flowables, onFirstPage=draw, onLaterPages=draw)


#: The usable width of a page between the margins, for tables and charts.
FRAME_WIDTH = PAGE[0] - 2 * MARGIN
