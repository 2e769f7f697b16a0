"""The individual CACT report: one participant's current result, as stored, with the advice derived from it.

It renders only what :class:`~sinks.reports.model.IndividualResult` carries and what the rules gave as advice
(sinks/reports/rules.py), so two builds of the same stored result read the same. The NIP is printed in full:
the report goes to the authorised agency, not to the public. Every value from the data is escaped on its way
into a Paragraph, since names and details may hold markup characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from matplotlib.figure import Figure
from reportlab.platypus import Flowable, KeepTogether, Spacer, Table

from sinks.reports import pdf
from sinks.reports.model import (
    COMPETENCY_NAMES,
    KIND_NAMES,
    POTENTIAL_NAMES,
    PURPOSE_NAMES,
    STANDING_NAMES,
    TIER_NAMES,
    CompetencyLine,
    EarlierVersion,
    IndividualResult,
    ReportMeta,
    SectionLine,
)

TITLE = "Laporan Hasil Penilaian Kompetensi Individu"
SUBTITLE = "Computer Assisted Competency Test (CACT)"
#: The numbered section headings, in order: tests and the full report's integrator look for them verbatim.
HEADINGS = (
    "1. Identitas", "2. Profil Potensi", "3. Profil Kompetensi", "4. Kekuatan dan Area Pengembangan",
    "5. Rekomendasi", "6. Saran Penempatan", "7. Saran Pengembangan",
)
NO_POTENTIAL = "Blueprint tes ini tidak mendefinisikan profil potensi."
NO_MANSOSKUL = "Mansoskul tidak diujikan: profil kompetensi dan JPM tidak tersedia."
NO_DEVELOPMENT = "Tidak ada area pengembangan: seluruh kompetensi memenuhi standar."
VALIDITY_NOTE = "masa berlaku 3 tahun"
#: Chart labels: the full names do not fit under nine bars on a third of a page.
SHORT_NAMES: dict[str, str] = {
    "M1": "Integritas", "M2": "Kerja Sama", "M3": "Komunikasi", "M4": "Orientasi\nHasil",
    "M5": "Pelayanan\nPublik", "M6": "Pengembangan\nDiri", "M7": "Mengelola\nPerubahan",
    "M8": "Pengambilan\nKeputusan", "S1": "Perekat\nBangsa",
}
COMPLETION_NAMES: dict[str, str] = {
    "submitted": "Diserahkan", "timed_out": "Waktu habis", "autosave": "Tersimpan otomatis",
    "not_started": "Tidak dimulai",
}
MAX_LEVEL = 5
_MET, _SHORT, _STANDARD = "#3b7dd8", "#e08a2c", "#1f2933"


class AdviceLike(Protocol):
    """What the report needs of the rules' advice (sinks/reports/rules.py ``Advice``), read-only."""

    @property
    def recommendation(self) -> str: ...

    @property
    def placement(self) -> str: ...

    @property
    def development(self) -> Sequence[tuple[str, str]]: ...  # (competency code, suggestion)

    @property
    def rule_ids(self) -> Sequence[str]: ...


def gap_text(gap: int) -> str:
    """``+1``, ``0``, ``-2``: a zero gap has no sign, so it does not read as a surplus."""
    return "0" if gap == 0 else f"{gap:+d}"


def _competency_name(code: str) -> str:
    return COMPETENCY_NAMES.get(code, code)


def _left(table: Table) -> Table:
    """A table narrower than the frame sits under its heading, not centred."""
    table.hAlign = "LEFT"
    return table


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


# --- 1. Identitas ---------------------------------------------------------------------------------------------


def session_text(result: IndividualResult) -> str:
    if result.host_activity_id:
        return f"{result.session_id} (susulan pada kegiatan {result.host_activity_id})"
    return result.session_id


def earlier_text(earlier: EarlierVersion, current_blueprint_version: str) -> str:
    line = f"menggantikan versi {earlier.result_version} (dinilai {pdf.waktu(earlier.created_at)}"
    if earlier.blueprint_version != current_blueprint_version:
        line += f", blueprint versi {earlier.blueprint_version}"
    return line + f"; JPM {pdf.angka(earlier.jpm)} %, kategori {_dash(earlier.category)})"


def version_text(result: IndividualResult) -> str:
    """The result version and every one it replaced, newest first: a reader holding an older copy sees why."""
    parts = [str(result.result_version)]
    parts += [earlier_text(e, result.blueprint_version) for e in result.earlier]
    return "; ".join(parts)


def identity_rows(result: IndividualResult) -> list[list[str]]:
    rows = [
        ["Nama", _dash(result.name)],
        ["NIP", result.nip],
        ["Instansi", result.agency_name or result.agency_id],
        ["Jenjang jabatan", TIER_NAMES.get(result.position_tier, result.position_tier)],
        ["Tujuan penilaian", PURPOSE_NAMES.get(result.purpose, result.purpose)],
        ["Kegiatan", result.activity_id],
        ["Sesi", session_text(result)],
        ["Tanggal tes", pdf.tanggal(result.assessed_on)],
        ["Berlaku sampai", f"{pdf.tanggal(result.valid_until)} ({VALIDITY_NOTE})"],
        ["Versi hasil", version_text(result)],
        ["Blueprint", f"{result.blueprint_id} versi {result.blueprint_version}"],
    ]
    if result.standing != "counted":  # a held-back result must not pass for a recognised one
        standing = STANDING_NAMES.get(result.standing, result.standing)
        rows.append(["Status hasil", f"{standing}: {result.standing_detail}" if result.standing_detail else standing])
    return rows


def identity_flowables(result: IndividualResult) -> list[Flowable]:
    width = pdf.FRAME_WIDTH
    return [pdf.grid(identity_rows(result), [width * 0.25, width * 0.75], header=False, zebra=True)]


# --- 2. Profil Potensi ----------------------------------------------------------------------------------------


def potential_rows(potential: dict[str, float]) -> list[list[str]]:
    rows = [["Aspek potensi", "Skor"]]
    rows += [[name, pdf.angka(potential.get(key))] for key, name in POTENTIAL_NAMES.items()]
    rows += [[key, pdf.angka(value)] for key, value in potential.items() if key not in POTENTIAL_NAMES]
    return rows


def potential_flowables(result: IndividualResult) -> list[Flowable]:
    if not result.potential:
        return [pdf.para(NO_POTENTIAL)]
    width = pdf.FRAME_WIDTH * 0.6
    return [_left(pdf.grid(potential_rows(result.potential), [width * 0.7, width * 0.3]))]


# --- 3. Profil Kompetensi -------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _profile_png(lines: tuple[CompetencyLine, ...]) -> tuple[bytes, float]:
    """The chart depends on the nine lines only: drawn once per distinct profile, for the individual report and
    again for the full report (the costliest step of a build: ~0.2 s of CPU a chart)."""
    return pdf.chart_png(profile_chart(lines))


def profile_chart(result: IndividualResult | Sequence[CompetencyLine]) -> Figure:
    """Levels as bars against each competency's standard, the gap written over the bar: shortfalls at a glance."""
    fig = pdf.new_figure(6.5, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    lines = list(result.competencies if isinstance(result, IndividualResult) else result)
    xs = list(range(len(lines)))
    ax.bar(xs, [c.level for c in lines], width=0.6, color=[_MET if c.gap >= 0 else _SHORT for c in lines],
           label="Level", zorder=2)
    ax.hlines([c.standard for c in lines], [x - 0.38 for x in xs], [x + 0.38 for x in xs], colors=_STANDARD,
              linewidth=2, label="Standar", zorder=3)
    for x, line in zip(xs, lines, strict=True):
        ax.annotate(gap_text(line.gap), (x, max(line.level, line.standard) + 0.12), ha="center", va="bottom",
                    fontsize=7, color="#b42318" if line.gap < 0 else _STANDARD)
    ax.set_xticks(xs, [f"{c.code}\n{SHORT_NAMES.get(c.code, _competency_name(c.code))}" for c in lines],
                  fontsize=6)
    ax.set_ylim(0, MAX_LEVEL + 0.8)  # room for the gap over a level-5 bar
    ax.set_yticks(range(MAX_LEVEL + 1))
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("Level", fontsize=7.5)
    ax.grid(axis="y", linewidth=0.4, alpha=0.5, zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    if lines:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    return fig


def competency_rows(lines: Sequence[CompetencyLine]) -> list[list[str]]:
    rows = [["Kode", "Kompetensi", "Level", "Standar", "Gap"]]
    rows += [[c.code, _competency_name(c.code), str(c.level), str(c.standard), gap_text(c.gap)] for c in lines]
    return rows


def section_rows(sections: Sequence[SectionLine]) -> list[list[str]]:
    rows = [["Bagian tes", "Skor", "Level", "Dijawab", "Status"]]
    rows += [[s.name, pdf.angka(s.score), str(s.level), f"{s.answered}/{s.items}",
              COMPLETION_NAMES.get(s.completion, s.completion)] for s in sections]
    return rows


def competency_flowables(result: IndividualResult) -> list[Flowable]:
    width = pdf.FRAME_WIDTH
    out: list[Flowable] = []
    if result.competencies:
        out.append(pdf.image(_profile_png(tuple(result.competencies)), width * 0.9))
        table = pdf.grid(competency_rows(result.competencies), [width * f for f in (0.1, 0.54, 0.12, 0.12, 0.12)])
        out.append(KeepTogether([table, Spacer(1, 4), pdf.para(f"JPM: {pdf.angka(result.jpm)} %"),
                                 pdf.para(f"Kategori: {_dash(result.category)}")]))
    else:
        out.append(pdf.para(NO_MANSOSKUL))
    out.append(Spacer(1, 4))
    if result.sections:
        out.append(pdf.grid(section_rows(result.sections), [width * f for f in (0.42, 0.13, 0.1, 0.13, 0.22)]))
    else:
        out.append(pdf.para("Tidak ada skor bagian tes."))
    return out


# --- 4. Kekuatan dan Area Pengembangan ------------------------------------------------------------------------


def strength_item(line: CompetencyLine) -> str:
    return f"{line.code} {_competency_name(line.code)} (gap {gap_text(line.gap)})"


def _item_list(lines: Sequence[CompetencyLine]) -> Flowable:
    markup = "<br/>".join(pdf.text(strength_item(c)) for c in lines) if lines else "-"
    return pdf.rich(markup, "cell")


def strengths_flowables(result: IndividualResult) -> list[Flowable]:
    if not result.competencies:
        return [pdf.para("-")]
    half = pdf.FRAME_WIDTH / 2
    rows: list[list[object]] = [["Kekuatan (memenuhi standar)", "Area pengembangan (di bawah standar)"],
                                [_item_list(result.strengths), _item_list(result.development_areas)]]
    return [pdf.grid(rows, [half, half], zebra=False)]


# --- 5-7. Advice ----------------------------------------------------------------------------------------------


def text_flowables(value: str) -> list[Flowable]:
    """Advice text by its lines, each an escaped paragraph; ``-`` for none."""
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    return [pdf.para(line) for line in lines] if lines else [pdf.para("-")]


def development_rows(development: Sequence[tuple[str, str]]) -> list[list[str]]:
    rows = [["Kode", "Kompetensi", "Saran pengembangan"]]
    rows += [[code, _competency_name(code), suggestion] for code, suggestion in development]
    return rows


def development_flowables(advice: AdviceLike) -> list[Flowable]:
    width = pdf.FRAME_WIDTH
    out: list[Flowable] = []
    if advice.development:
        out.append(pdf.grid(development_rows(advice.development), [width * 0.08, width * 0.27, width * 0.65]))
    else:
        out.append(pdf.para(NO_DEVELOPMENT))
    out.append(Spacer(1, 6))
    out.append(pdf.para(f"Aturan rekomendasi: {', '.join(advice.rule_ids) or '-'}", "small"))
    return out


# --- The document ---------------------------------------------------------------------------------------------


def individual_flowables(result: IndividualResult, advice: AdviceLike, meta: ReportMeta) -> list[Flowable]:
    """The report as flowables, so the full report can set it inside its own document."""
    sections: list[list[Flowable]] = [
        identity_flowables(result), potential_flowables(result), competency_flowables(result),
        strengths_flowables(result), text_flowables(advice.recommendation), text_flowables(advice.placement),
        development_flowables(advice),
    ]
    out: list[Flowable] = [pdf.para(TITLE, "title"), pdf.para(SUBTITLE, "subtitle"),
                           pdf.para(f"Dokumen dibuat {pdf.waktu(meta.built_at)}", "small")]
    for heading, body in zip(HEADINGS, sections, strict=True):
        out.append(pdf.para(heading, "h2"))
        out.extend(body)
    return out


def write_individual_pdf(path: Path, result: IndividualResult, advice: AdviceLike, meta: ReportMeta) -> None:
    pdf.write_pdf(path, individual_flowables(result, advice, meta), meta, title=TITLE,
                  heading=KIND_NAMES["individual"])
