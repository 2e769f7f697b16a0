"""The individual report shows the stored result and the advice, escaped, in the seven numbered sections."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from reportlab.platypus import Flowable, Paragraph, Table

from sinks.reports import pdf
from sinks.reports.individual import (
    HEADINGS,
    NO_DEVELOPMENT,
    NO_MANSOSKUL,
    NO_POTENTIAL,
    SUBTITLE,
    TITLE,
    gap_text,
    individual_flowables,
    profile_chart,
    write_individual_pdf,
)
from sinks.reports.model import (
    COMPETENCY_NAMES,
    POTENTIAL_NAMES,
    SECTION_NAMES,
    CompetencyLine,
    EarlierVersion,
    IndividualResult,
    ReportMeta,
    SectionLine,
)

HOSTILE = 'A <b>&amp; "x"'
LEVELS = {"M1": (4, 3), "M2": (3, 3), "M3": (2, 4), "M4": (5, 3), "M5": (3, 3), "M6": (1, 3), "M7": (3, 2),
          "M8": (4, 4), "S1": (3, 3)}


@dataclass(frozen=True)
class FakeAdvice:
    recommendation: str = "Memenuhi syarat untuk jabatan yang dituju."
    placement: str = "Dapat ditempatkan pada unit pelayanan."
    development: list[tuple[str, str]] = field(default_factory=lambda: [
        ("M3", "Pelatihan komunikasi efektif <lanjutan> & presentasi"), ("M6", "Coaching dan mentoring")])
    rule_ids: list[str] = field(default_factory=lambda: ["R-MS-01", "R-DEV-02"])


def competencies() -> list[CompetencyLine]:
    return [CompetencyLine(code, lvl, std, lvl - std) for code, (lvl, std) in LEVELS.items()]


def sections() -> list[SectionLine]:
    return [SectionLine("mansoskul", 78.456, 3, 90, 90, "submitted"),
            SectionLine("emerging_skills", 61.0, 2, 28, 30, "timed_out"),
            SectionLine("digital_literacy", 85.5, 4, 20, 20, "submitted")]


def make_result(**changes: Any) -> IndividualResult:
    base = IndividualResult(
        nip="199001012015031001", name="Siti Rahma", activity_id="ACT-2026-017", agency_id="A042",
        agency_name="Kementerian Contoh", purpose="position_filling", position_tier="administrator",
        session_id="SES-0042", host_activity_id=None, organiser_id="ORG-1", blueprint_id="BP-ADM",
        blueprint_version="2.1", result_version=1, created_at=datetime(2026, 12, 1, 7, 5, tzinfo=UTC),
        assessed_on=date(2026, 12, 1), valid_until=date(2029, 12, 1), jpm=81.4815, category="Memenuhi Syarat",
        standing="counted", standing_detail=None, flags=[], competencies=competencies(), sections=sections(),
        potential={"berfikirKritis": 3.25, "intelektual": 2.5, "interpersonal": 3.0, "kesadaranDiri": 4.0,
                   "motivasiKomitmen": 3.75, "total": 3.3},
    )
    return replace(base, **changes)


META = ReportMeta(activity_id="ACT-2026-017", kind="recap", version=1, built_at=datetime(2026, 12, 2, tzinfo=UTC))


def texts(flowables: Sequence[Any]) -> list[str]:
    """The plain text of every Paragraph, tables walked cell by cell, in reading order."""
    out: list[str] = []
    for item in flowables:
        if isinstance(item, Paragraph):
            out.append(item.getPlainText())
        elif isinstance(item, Table):
            for row in item._cellvalues:
                for cell in row:
                    out.extend(texts(cell if isinstance(cell, list | tuple) else [cell]))
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, Flowable) and hasattr(item, "_content"):
            out.extend(texts(item._content))
    return out


def render(result: IndividualResult, advice: FakeAdvice | None = None) -> list[str]:
    return texts(individual_flowables(result, advice or FakeAdvice(), META))


def joined(result: IndividualResult, advice: FakeAdvice | None = None) -> str:
    return "\n".join(render(result, advice))


def test_title_and_the_seven_headings_in_order() -> None:
    lines = render(make_result())
    assert lines[0] == TITLE and lines[1] == SUBTITLE
    positions = [lines.index(h) for h in HEADINGS]
    assert positions == sorted(positions)
    assert HEADINGS[0] == "1. Identitas" and HEADINGS[-1] == "7. Saran Pengembangan"


def test_identity_values() -> None:
    body = joined(make_result())
    for value in ("Siti Rahma", "199001012015031001", "Kementerian Contoh", "Administrator", "Pengisian Jabatan",
                  "ACT-2026-017", "SES-0042", "1 Desember 2026", "1 Desember 2029", "masa berlaku 3 tahun",
                  "BP-ADM versi 2.1"):
        assert value in body, value
    assert "susulan" not in body


def test_identity_fallbacks_and_susulan() -> None:
    body = joined(make_result(name=None, agency_name="", host_activity_id="ACT-2026-009"))
    lines = body.splitlines()
    assert lines[lines.index("Nama") + 1] == "-"
    assert lines[lines.index("Instansi") + 1] == "A042"
    assert "SES-0042 (susulan pada kegiatan ACT-2026-009)" in body


def test_every_competency_level_standard_gap_and_jpm() -> None:
    lines = render(make_result())
    for code, (lvl, std) in LEVELS.items():
        i = lines.index(code)
        assert lines[i:i + 5] == [code, COMPETENCY_NAMES[code], str(lvl), str(std), gap_text(lvl - std)]
    assert "JPM: 81,48 %" in lines
    assert "Kategori: Memenuhi Syarat" in lines
    assert {gap_text(1), gap_text(0), gap_text(-2)} == {"+1", "0", "-2"}


def test_sections_table() -> None:
    lines = render(make_result())
    i = lines.index(SECTION_NAMES["mansoskul"])
    assert lines[i:i + 5] == [SECTION_NAMES["mansoskul"], "78,46", "3", "90/90", "Diserahkan"]
    assert "28/30" in lines


def test_potential_profile() -> None:
    lines = render(make_result())
    for name in POTENTIAL_NAMES.values():
        assert name in lines
    assert lines[lines.index("Berpikir Kritis") + 1] == "3,25"
    assert NO_POTENTIAL not in lines
    assert NO_POTENTIAL in render(make_result(potential=None))


def test_strengths_and_development_areas() -> None:
    body = joined(make_result())
    assert "M1 Integritas (gap +1)" in body
    assert "M2 Kerja Sama (gap 0)" in body
    assert "M3 Komunikasi (gap -2)" in body
    assert "M6 Pengembangan Diri dan Orang Lain (gap -2)" in body


def test_advice_sections() -> None:
    advice = FakeAdvice()
    lines = render(make_result(), advice)
    assert lines.index(advice.recommendation) > lines.index("5. Rekomendasi")
    assert lines.index(advice.placement) > lines.index("6. Saran Penempatan")
    assert "Pelatihan komunikasi efektif <lanjutan> & presentasi" in lines
    assert "Aturan rekomendasi: R-MS-01, R-DEV-02" in lines
    no_dev = render(make_result(), FakeAdvice(development=[]))
    assert NO_DEVELOPMENT in no_dev


def test_no_mansoskul() -> None:
    result = make_result(competencies=[], jpm=None, category=None, sections=sections()[1:])
    lines = render(result, FakeAdvice(development=[]))
    assert NO_MANSOSKUL in lines
    assert not any(line.startswith("JPM:") for line in lines)
    assert SECTION_NAMES["emerging_skills"] in lines
    assert all(h in lines for h in HEADINGS)
    profile_chart(result)  # an empty profile still draws


def test_earlier_versions_shown() -> None:
    earlier = [EarlierVersion(2, "2.1", datetime(2026, 12, 3, 2, 0, tzinfo=UTC), 70.0, "Masih Memenuhi Syarat"),
               EarlierVersion(1, "2.0", datetime(2026, 12, 1, 7, 5, tzinfo=UTC), None, None)]
    body = joined(make_result(result_version=3, earlier=earlier))
    assert "menggantikan versi 2 (dinilai 3 Desember 2026 09:00 WIB; JPM 70,00 %, kategori Masih Memenuhi Syarat)" \
        in body
    assert "menggantikan versi 1 (dinilai 1 Desember 2026 14:05 WIB, blueprint versi 2.0; JPM - %, kategori -)" \
        in body
    assert body.index("versi 2 (") < body.index("versi 1 (")


def test_held_back_standing_is_said() -> None:
    body = joined(make_result(standing="incomplete", standing_detail="bagian Mansoskul belum lengkap"))
    assert "Tidak lengkap (ditahan): bagian Mansoskul belum lengkap" in body
    assert "Status hasil" not in joined(make_result())


def test_hostile_name_escaped_and_pdf_written(tmp_path: Path) -> None:
    result = make_result(name=HOSTILE, agency_name="PT <Satu> & Dua")
    lines = render(result)
    assert HOSTILE in lines
    assert "PT <Satu> & Dua" in lines
    path = tmp_path / "individu.pdf"
    write_individual_pdf(path, result, FakeAdvice(recommendation=HOSTILE), META)
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pages = len(re.findall(rb"/Type /Page\b(?!s)", data))
    assert 1 <= pages <= 2


def test_no_mansoskul_no_potential_pdf(tmp_path: Path) -> None:
    result = make_result(competencies=[], jpm=None, category=None, potential=None)
    path = tmp_path / "kosong.pdf"
    write_individual_pdf(path, result, FakeAdvice(development=[], rule_ids=[]), META)
    assert path.read_bytes().startswith(b"%PDF")


def test_chart_is_small_and_labelled() -> None:
    fig = profile_chart(make_result())
    assert tuple(fig.get_size_inches()) == (6.5, 2.8)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "M1\nIntegritas" and len(labels) == 9
    assert ax.get_ylim()[0] == 0 and list(ax.get_yticks()) == [0, 1, 2, 3, 4, 5]
    gaps = [t.get_text() for t in ax.texts]
    assert gaps == [gap_text(lvl - std) for lvl, std in LEVELS.values()]
    assert pdf.chart(fig, pdf.FRAME_WIDTH * 0.9).drawWidth > 0
