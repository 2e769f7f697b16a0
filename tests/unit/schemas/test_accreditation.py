"""The accredited-institution registry and the rule that judges results by it (docs/accreditation.md).

The shipped CSV is checked against the report's appendix by a second, independent reading of its verbatim
text, so a slip in the transcription (a digit, a month, a category) fails here rather than unrecognising an
institution's results.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from schemas.accreditation import (
    DEFAULT_BKN_PATTERNS,
    DEFAULT_CATEGORY_TIERS,
    DEFAULT_WARN_DAYS,
    SHIPPED_FILE,
    AccreditationError,
    AccreditationRegistry,
    Verdict,
    installed_path,
    registry_path,
)
from schemas.domain import PositionTier as T
from schemas.events import Id
from schemas.settings import Settings

VERBATIM = SHIPPED_FILE.with_name("lembaga-terakreditasi-2024.source.txt")
SEED = Path(__file__).resolve().parents[3].parent / "shared" / "seeds" / "000_7c9703bca84a4a48.txt"
HEADER = "organiser_id,kind,institution,unit,category,decree,expires_on"
MONTHS = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Mei": 5, "Jun": 6, "Jul": 7, "Agu": 8, "Sept": 9, "Okt": 10,
          "Nov": 11, "Des": 12}
KINDS = {"Pemerintah Pusat": "pusat", "Pemerintah Daerah": "daerah", "Instansi Lainnya": "lainnya"}


@pytest.fixture(scope="module")
def shipped() -> AccreditationRegistry:
    return AccreditationRegistry.shipped()


def appendix_rows(text: str) -> list[tuple[str, str, str, str | None, str | None, date | None]]:
    """The appendix read again, by a regular expression per line rather than the loader's CSV reading:
    (kind, institution, unit, category, decree, expiry)."""
    row = re.compile(r"^(?P<inst>[^\t]+)\t(?P<unit>[^\t]+)\t(?P<cat>[AB-])\t(?P<dec>[^\t]+)\t"
                     r"(?:(?P<d>\d{1,2}) (?P<m>[A-Z][a-z]+) (?P<y>\d{4})|-)\s*$")
    more = re.compile(r"^\t(?P<unit>[^\t]+)\t*$")
    out: list[list] = []
    kind = None
    for line in text.splitlines():
        if line.startswith("Jenis Instansi: "):
            kind = KINDS[line.removeprefix("Jenis Instansi: ").strip()]
        elif m := row.match(line):
            expiry = date(int(m["y"]), MONTHS[m["m"]], int(m["d"])) if m["y"] else None
            out.append([kind, m["inst"].strip(), m["unit"].strip(), None if m["cat"] == "-" else m["cat"],
                        None if m["dec"].strip() == "-" else m["dec"].strip(), expiry])
        elif m := more.match(line):
            out[-1][2] += " " + m["unit"].strip()  # a unit the page break split
        else:
            assert line == "" or line.startswith(("LAMPIRAN", "Data lembaga", "Nama Instansi\t")), line
    return [tuple(r) for r in out]


# ------------------------------------------------------------------------------------------------
# The shipped data
# ------------------------------------------------------------------------------------------------

def test_the_verbatim_appendix_is_the_seeds_own_text() -> None:
    if not SEED.exists():
        pytest.skip(f"the seed text is not on this machine ({SEED})")
    lines = SEED.read_text(encoding="utf-8").split("\n")
    start = lines.index("LAMPIRAN")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Peta wilayah"))
    assert "\n".join(lines[start:end]).rstrip() + "\n" == VERBATIM.read_text(encoding="utf-8")


def test_every_row_of_the_appendix_is_transcribed_exactly(shipped: AccreditationRegistry) -> None:
    expected = appendix_rows(VERBATIM.read_text(encoding="utf-8"))
    got = [(r.kind, r.institution, r.unit, r.category, r.decree, r.expires_on) for r in shipped.rows]
    assert len(expected) == 59
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"row {i + 1} ({shipped.rows[i].organiser_id})"


def test_the_shipped_registry_has_the_reports_counts(shipped: AccreditationRegistry) -> None:
    assert len(shipped.rows) == 59  # "59 lembaga ... 24 instansi pusat, 23 instansi daerah dan 12 instansi lainnya"
    assert Counter(r.kind for r in shipped.rows) == {"pusat": 24, "daerah": 23, "lainnya": 12}
    assert shipped.version == "puspenkom-2024.1"
    assert "Puspenkom ASN" in shipped.provenance and shipped.source == str(SHIPPED_FILE)
    ids = [r.organiser_id for r in shipped.rows]
    assert len(set(ids)) == 59
    for organiser_id in ids:  # what a SessionScheduled may carry, and lowercase ASCII slugs
        assert TypeAdapter(Id).validate_python(organiser_id) == organiser_id
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", organiser_id)


def test_spot_checks_against_the_report(shipped: AccreditationRegistry) -> None:
    kemendagri = shipped.get("kemendagri-ppk")
    assert kemendagri and (kemendagri.institution, kemendagri.category, kemendagri.decree, kemendagri.expires_on) == (
        "Kementerian Dalam Negeri", "A", "211/KEP/2020", date(2025, 10, 19))
    bkkbn = shipped.get("bkkbn-assessment-center")
    assert bkkbn and (bkkbn.unit, bkkbn.decree, bkkbn.expires_on) == (
        "Unit Layanan Assessment Center", "430 Tahun 2024", date(2029, 10, 24))
    sulsel = shipped.get("pemprov-sulsel-upt-ppk")
    assert sulsel and (sulsel.kind, sulsel.category, sulsel.decree, sulsel.expires_on) == ("daerah", "A", None, None)
    uns = shipped.get("uns-ppk-asn")
    assert uns and uns.institution == "Universitas 11 Maret"
    assert uns.unit == "Divisi Penilaian dan Pengembangan Kompetensi Aparatur Sipil Negara Universitas Sebelas Maret"
    jabar = shipped.get("pemprov-jabar-penilaian-kompetensi")
    assert jabar and jabar.expires_on == date(2029, 9, 19)  # "19 Sept 2029"
    # Decree numbers repeat in the appendix; the ids do not.
    assert [r.organiser_id for r in shipped.rows if r.decree == "17/BKN/IX/2021"] == [
        "pemkot-tangerang-upt-penilaian-kompetensi", "pemkot-yogyakarta-upt-pkp"]


def test_defaults_mirror_the_settings() -> None:
    s = Settings()
    assert {k: list(v) for k, v in DEFAULT_CATEGORY_TIERS.items()} == s.accreditation_category_tiers
    assert list(DEFAULT_BKN_PATTERNS) == s.accreditation_bkn_organisers
    assert DEFAULT_WARN_DAYS == s.accreditation_warn_days


# ------------------------------------------------------------------------------------------------
# The rule
# ------------------------------------------------------------------------------------------------

def test_bkn_units_and_sessions_without_organiser_are_recognised(shipped: AccreditationRegistry) -> None:
    for organiser in (None, "bkn", "bkn-pusat-jakarta", "kanreg-iv-makassar", "BKN-Pusat"):
        assert shipped.judge(organiser, T.JPT_UTAMA, date(2030, 1, 1)).recognised
        assert shipped.warning(organiser, date(2030, 1, 1)) is None
    assert not shipped.is_bkn("kemendagri-ppk") and not shipped.is_bkn("upt-makassar")
    narrowed = AccreditationRegistry(shipped.rows, bkn_patterns=["bkn", "upt-*"])
    assert (narrowed.is_bkn("upt-makassar") and not narrowed.is_bkn("bkn-pusat")
            and not narrowed.is_bkn("kanreg-v-jakarta"))


def test_an_unknown_organiser_is_not_recognised(shipped: AccreditationRegistry) -> None:
    verdict = shipped.judge("lembaga-x", T.PELAKSANA, date(2026, 11, 3))
    assert not verdict.recognised
    assert verdict.detail == ("organiser lembaga-x is not in the accreditation registry puspenkom-2024.1: "
                              "not an accredited institution")
    assert "will not be recognised" in shipped.warning("lembaga-x", date(2026, 11, 3))


def test_the_expiry_day_is_still_valid_and_the_next_is_not(shipped: AccreditationRegistry) -> None:
    assert shipped.judge("kemendagri-ppk", T.ADMINISTRATOR, date(2025, 10, 19)) == Verdict(True, None)
    after = shipped.judge("kemendagri-ppk", T.ADMINISTRATOR, date(2025, 10, 20))
    assert not after.recognised
    assert after.detail == ("organiser kemendagri-ppk: accreditation 211/KEP/2020 expired on 2025-10-19, before the "
                            "test date 2025-10-20")
    assert shipped.judge("kemendagri-ppk", T.ADMINISTRATOR, date(2026, 11, 3)).detail.endswith("2026-11-03")


def test_a_row_without_expiry_counts_and_one_without_category_does_not(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"{HEADER}\nnoexp,daerah,Pemprov X,Unit,A,,\nnocat,daerah,Pemprov Y,Unit,,12/2024,2030-01-01\n")
    reg = AccreditationRegistry.load(path)
    assert reg.judge("noexp", T.JPT_PRATAMA, date(2040, 1, 1)).recognised
    assert reg.warning("noexp", date(2040, 1, 1)) is None
    assert reg.state(reg.get("noexp"), date(2040, 1, 1)) == "no expiry on record"
    verdict = reg.judge("nocat", T.PELAKSANA, date(2026, 1, 1))
    assert not verdict.recognised and "no accreditation category on record" in verdict.detail
    assert "no accreditation category" in reg.warning("nocat", date(2026, 1, 1))
    assert reg.state(reg.get("nocat"), date(2026, 1, 1)) == "no category"


def test_a_narrowed_category_mapping_refuses_uncovered_tiers(shipped: AccreditationRegistry) -> None:
    """E.g. B only up to Administrator; A every tier. The default (both every tier) covers all of them."""
    b_tiers = [T.ADMINISTRATOR, T.PENGAWAS, T.PELAKSANA, T.AHLI_MUDA, T.AHLI_PERTAMA, T.TERAMPIL]
    narrowed = AccreditationRegistry.load(SHIPPED_FILE, category_tiers={"A": list(T), "B": b_tiers})
    on = date(2026, 11, 3)
    assert narrowed.judge("kemenag-biro-kepegawaian", T.ADMINISTRATOR, on).recognised
    verdict = narrowed.judge("kemenag-biro-kepegawaian", T.JPT_PRATAMA, on)
    assert not verdict.recognised
    assert verdict.detail == ("organiser kemenag-biro-kepegawaian: accreditation category B does not cover tier "
                              "jpt_pratama (CACT_ACCREDITATION_CATEGORY_TIERS)")
    assert narrowed.judge("bkkbn-assessment-center", T.JPT_PRATAMA, on).recognised
    assert shipped.judge("kemenag-biro-kepegawaian", T.JPT_PRATAMA, on).recognised
    only_a = AccreditationRegistry.load(SHIPPED_FILE, category_tiers={"A": list(T)})  # B covers nothing
    assert not only_a.judge("kemenag-biro-kepegawaian", T.PELAKSANA, on).recognised
    assert narrowed.digest != shipped.digest  # the rule is part of what a result is computed from


def test_expiry_is_judged_before_the_tier(shipped: AccreditationRegistry) -> None:
    only_a = AccreditationRegistry.load(SHIPPED_FILE, category_tiers={"A": list(T)})
    assert "expired on 2025-12-22" in only_a.judge("bps-pusat-penilaian-kompetensi", T.PELAKSANA,
                                                   date(2026, 1, 1)).detail


def test_warnings_for_a_session_near_or_past_expiry(shipped: AccreditationRegistry) -> None:
    # kemensos-adc expires 2026-11-05.
    assert shipped.warning("kemensos-adc", date(2026, 8, 6)) is None  # 91 days before
    assert shipped.warning("kemensos-adc", date(2026, 8, 7)) == (
        "accreditation of kemensos-adc (557.1 Tahun 2023) expires on 2026-11-05, 90 days after this session")
    assert shipped.warning("kemensos-adc", date(2026, 11, 4)).endswith("1 day after this session")
    assert shipped.warning("kemensos-adc", date(2026, 11, 5)).endswith("expires on 2026-11-05, the day of this session")
    past = shipped.warning("kemensos-adc", date(2026, 11, 6))
    assert past == ("accreditation of kemensos-adc (557.1 Tahun 2023) expired on 2026-11-05, before this session "
                    "on 2026-11-06: its results will not be recognised")
    short = AccreditationRegistry.load(SHIPPED_FILE, warn_days=7)
    assert short.warning("kemensos-adc", date(2026, 10, 28)) is None
    assert short.warning("kemensos-adc", date(2026, 10, 29)) is not None
    assert short.digest == shipped.digest  # warnings do not change any result


def test_details_and_warnings_are_one_bounded_line() -> None:
    hostile = "x" * 5000 + "\x1b[2J\nnext"
    reg = AccreditationRegistry.shipped()
    for text in (reg.judge(hostile, T.PELAKSANA, date(2026, 1, 1)).detail, reg.warning(hostile, date(2026, 1, 1))):
        assert text is not None and len(text) <= 500
        assert not re.search(r"[\x00-\x1f\x7f]", text)


def test_the_digest_follows_the_rows_not_the_comments(tmp_path: Path, shipped: AccreditationRegistry) -> None:
    text = SHIPPED_FILE.read_text(encoding="utf-8")
    recommented = tmp_path / "a.csv"
    recommented.write_text("# another comment\n" + text, encoding="utf-8")
    assert AccreditationRegistry.load(recommented).digest == shipped.digest
    edited = tmp_path / "b.csv"
    edited.write_text(text.replace("211/KEP/2020,2025-10-19", "211/KEP/2020,2030-10-19"), encoding="utf-8")
    assert AccreditationRegistry.load(edited).digest != shipped.digest
    unversioned = tmp_path / "c.csv"
    unversioned.write_text(f"{HEADER}\na,pusat,I,U,A,1,2030-01-01\n")
    reg = AccreditationRegistry.load(unversioned)
    assert reg.version == f"sha256:{reg.digest[:12]}"


# ------------------------------------------------------------------------------------------------
# Where the registry comes from
# ------------------------------------------------------------------------------------------------

def test_from_settings_prefers_the_setting_then_the_installed_copy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert registry_path(Settings(), home) == SHIPPED_FILE
    assert installed_path(Settings(), home) == home / "accreditation.csv"
    home.mkdir()
    (home / "accreditation.csv").write_text(f"# version: mine\n{HEADER}\nx,pusat,I,U,B,1,2030-01-01\n")
    reg = AccreditationRegistry.from_settings(Settings(), home)
    assert reg.version == "mine" and [r.organiser_id for r in reg.rows] == ["x"]
    chosen = tmp_path / "chosen.csv"
    chosen.write_text(f"{HEADER}\ny,pusat,I,U,A,1,2030-01-01\n")
    settings = Settings(accreditation_file=chosen, accreditation_category_tiers={"A": [T.PELAKSANA]},
                        accreditation_bkn_organisers=["pusat-*"], accreditation_warn_days=5)
    reg = AccreditationRegistry.from_settings(settings, home)
    assert [r.organiser_id for r in reg.rows] == ["y"]
    assert reg.judge("y", T.PELAKSANA, date(2026, 1, 1)).recognised
    assert not reg.judge("y", T.PENGAWAS, date(2026, 1, 1)).recognised
    assert reg.is_bkn("pusat-jakarta") and not reg.is_bkn("bkn") and reg.warn_days == 5


# ------------------------------------------------------------------------------------------------
# Malformed files
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (f"{HEADER}\na,pusat,I,U,A,1,2030-01-01\na,daerah,J,V,B,2,2030-01-01\n",
     "line 3: field organiser_id: 'a' is already used on line 2; ids must be unique"),
    (f"{HEADER}\na,pusat,I,U,C,1,2030-01-01\n", "line 2: field category: 'C' must be one of A, B or empty"),
    (f"{HEADER}\na,pusat,I,U,A,1,19 Okt 2025\n", "line 2: field expires_on: '19 Okt 2025' is not a date YYYY-MM-DD"),
    (f"{HEADER}\na,pusat,I,U,A,1,2025-02-30\n", "line 2: field expires_on: '2025-02-30' is not a date"),
    (f"# c\n{HEADER}\n\nBad Id,pusat,I,U,A,1,2030-01-01\n", "line 4: field organiser_id: 'Bad Id' must be"),
    (f"{HEADER}\na,swasta,I,U,A,1,2030-01-01\n", "line 2: field kind: 'swasta' must be one of pusat, daerah, lainnya"),
    (f"{HEADER}\na,pusat,,U,A,1,2030-01-01\n", "line 2: field institution: empty"),
    (f"{HEADER}\na,pusat,I,U,A,1\n", "line 2: 6 fields, expected 7"),
    (f"{HEADER}\na,pusat,\"I\nJ\",U,A,1,2030-01-01\n", "line 2: not a CSV record"),
    ("organiser_id,kind,institution\n", "line 1: the header must be"),
    (f"# only comments\n{HEADER}\n", "no rows"),
    ("", "no header line"),
])
def test_malformed_files_are_refused_naming_file_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(AccreditationError) as caught:
        AccreditationRegistry.load(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "\n" not in text


def test_unreadable_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AccreditationError, match="cannot read the accreditation registry"):
        AccreditationRegistry.load(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"{HEADER}\na,pusat,Universit\xe9,U,A,1,2030-01-01\n".encode("latin-1"))
    with pytest.raises(AccreditationError, match="not UTF-8"):
        AccreditationRegistry.load(latin)


def test_a_category_the_tier_setting_names_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"{HEADER}\na,pusat,I,U,C,1,2030-01-01\n")
    reg = AccreditationRegistry.load(path, category_tiers={"A": list(T), "B": list(T), "C": [T.PELAKSANA]})
    assert reg.judge("a", T.PELAKSANA, date(2026, 1, 1)).recognised
    assert not reg.judge("a", T.PENGAWAS, date(2026, 1, 1)).recognised
