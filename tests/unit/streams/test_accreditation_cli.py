"""`cact accreditation import|list|check` as an operator runs them: exit codes, one-line errors, what changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cact.cli import app
from schemas.accreditation import SHIPPED_FILE
from schemas.settings import get_settings

HEADER = "organiser_id,kind,institution,unit,category,decree,expires_on"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory of its own (DEFAULT_HOME is relative to it) and fresh settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CACT_ACCREDITATION_FILE", raising=False)
    monkeypatch.setenv("COLUMNS", "240")  # rich's width: a table row stays one line, assertions read whole cells
    get_settings.cache_clear()
    yield tmp_path / ".cact"
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["accreditation", *args])
    return result.exit_code, result.output


def next_year_registry(tmp_path: Path) -> Path:
    """The shipped registry with one renewal, one institution gone and one new."""
    text = SHIPPED_FILE.read_text(encoding="utf-8")
    text = text.replace("# version: puspenkom-2024.1", "# version: puspenkom-2025.1")
    text = text.replace("A,211/KEP/2020,2025-10-19", "A,12 Tahun 2025,2030-10-19")
    text = "".join(ln + "\n" for ln in text.splitlines() if not ln.startswith("klhk-pusat-perencanaan-sdm,"))
    text += ("unm-psikologi,lainnya,Fakultas Psikologi Universitas Negeri Makassar,Pusat Layanan,B,5 Tahun 2025,"
             "2028-01-31\n")
    path = tmp_path / "2025.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_installs_the_file_and_says_what_changed(tmp_path: Path, home: Path) -> None:
    new = next_year_registry(tmp_path)
    code, out = run("import", str(new))
    assert code == 0, out
    assert (home / "accreditation.csv").read_bytes() == new.read_bytes()
    assert "installed accreditation registry puspenkom-2025.1 (59 rows" in out
    assert f"as {Path('.cact') / 'accreditation.csv'}" in out and "replaced puspenkom-2024.1 from" in out
    assert "added (1): unm-psikologi" in out
    assert "removed (1): klhk-pusat-perencanaan-sdm" in out
    assert ("changed (1): kemendagri-ppk (decree 211/KEP/2020 -> 12 Tahun 2025, expires_on 2025-10-19 -> "
            "2030-10-19)") in out
    assert not list(home.glob("*.tmp"))
    # The installed registry is now the one in use.
    code, out = run("check", "--organiser", "kemendagri-ppk", "--tier", "pengawas", "--on", "2026-11-03")
    assert code == 0, out
    assert "valid until 2030-10-19" in out
    code, out = run("import", str(new))
    assert code == 0 and "no row changed" in out and "replaced puspenkom-2025.1" in out


def test_import_refuses_a_malformed_file_and_keeps_the_one_in_use(tmp_path: Path, home: Path) -> None:
    good = next_year_registry(tmp_path)
    assert run("import", str(good))[0] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\na,pusat,I,U,A,1,2030-01-01\nb,pusat,I,U,A+,1,2030-01-01\n", encoding="utf-8")
    code, out = run("import", str(bad))
    assert code == 2
    assert out.strip() == (f"registry not imported: {bad}: line 3: field category: 'A+' must be one of A, B or "
                           "empty (none on record)")
    assert (home / "accreditation.csv").read_bytes() == good.read_bytes()
    code, out = run("import", str(tmp_path / "missing.csv"))
    assert code == 2 and len(out.strip().splitlines()) == 1 and "cannot read" in out


def test_import_writes_where_the_setting_says(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "etc" / "registry.csv"
    monkeypatch.setenv("CACT_ACCREDITATION_FILE", str(target))
    get_settings.cache_clear()
    code, out = run("import", str(SHIPPED_FILE))  # the set file does not exist yet: nothing usable to compare
    assert code == 0, out
    assert target.read_bytes() == SHIPPED_FILE.read_bytes() and not home.exists()
    assert "replaced none usable" in out and "added (59)" in out


def test_import_replaces_a_broken_installed_registry(tmp_path: Path, home: Path) -> None:
    home.mkdir()
    (home / "accreditation.csv").write_text("not a registry\n")
    code, out = run("list")
    assert code == 2
    assert out.strip().startswith("accreditation registry unusable: ")
    assert "line 1: the header must be" in out and "cact accreditation import FILE" in out
    assert len(out.strip().splitlines()) == 1
    code, out = run("import", str(SHIPPED_FILE))
    assert code == 0 and "replaced none usable" in out
    assert run("list", "--json")[0] == 0


def test_list_json_states_on_a_date() -> None:
    code, out = run("list", "--json", "--on", "2026-09-01")
    assert code == 0, out
    data = json.loads(out)
    assert data["version"] == "puspenkom-2024.1" and data["on"] == "2026-09-01" and len(data["rows"]) == 59
    by_id = {r["organiser_id"]: r for r in data["rows"]}
    assert by_id["kemendagri-ppk"]["state"] == "expired"
    assert by_id["kemensos-adc"]["state"] == "expiring"  # 2026-11-05: 65 days later
    assert by_id["bkkbn-assessment-center"] == {
        "organiser_id": "bkkbn-assessment-center", "kind": "pusat",
        "institution": "Badan Kependudukan dan Keluarga Berencana Nasional", "unit": "Unit Layanan Assessment Center",
        "category": "A", "decree": "430 Tahun 2024", "expires_on": "2029-10-24", "state": "valid"}
    assert by_id["pemprov-sulsel-upt-ppk"]["state"] == "no expiry on record"
    assert by_id["pemprov-sulsel-upt-ppk"]["decree"] is None and by_id["pemprov-sulsel-upt-ppk"]["expires_on"] is None


def test_list_table_prints_names_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"{HEADER}\nmarkup,lainnya,[red]Lembaga[/] X,Unit,,,\nok,pusat,I,U,A,1,2026-01-01\n")
    monkeypatch.setenv("CACT_ACCREDITATION_FILE", str(path))
    get_settings.cache_clear()
    code, out = run("list", "--on", "2026-01-02")
    assert code == 0, out
    assert "[red]Lembaga[/] X" in out
    lines = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.startswith("│")}
    assert "no category" in lines["markup"] and "expired" in lines["ok"]
    assert out.strip().splitlines()[-1] == "1 expired, 1 no category"


def test_check_exit_codes_and_verdicts() -> None:
    code, out = run("check", "--organiser", "kemendagri-ppk", "--tier", "administrator", "--on", "2026-11-03")
    assert code == 1
    assert out.strip() == ("not recognised: organiser kemendagri-ppk: accreditation 211/KEP/2020 expired on "
                           "2025-10-19, before the test date 2026-11-03")
    code, out = run("check", "--organiser", "kemendagri-ppk", "--tier", "administrator", "--on", "2025-10-19")
    assert code == 0 and out.startswith("recognised: organiser kemendagri-ppk")
    assert "warning: accreditation of kemendagri-ppk (211/KEP/2020) expires on 2025-10-19, the day of this session" \
        in out
    code, out = run("check", "--organiser", "bkn-kanreg-iv", "--tier", "jpt_utama", "--on", "2026-11-03")
    assert code == 0 and "BKN unit" in out
    code, out = run("check", "--organiser", "lembaga-x", "--tier", "pelaksana", "--on", "2026-11-03")
    assert code == 1 and "not in the accreditation registry" in out


def test_check_narrowed_categories_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACT_ACCREDITATION_CATEGORY_TIERS", json.dumps({"A": ["jpt_pratama"], "B": ["pelaksana"]}))
    get_settings.cache_clear()
    code, out = run("check", "--organiser", "kemenag-biro-kepegawaian", "--tier", "pengawas", "--on", "2026-11-03")
    assert code == 1 and "category B does not cover tier pengawas" in out
    assert run("check", "--organiser", "kemenag-biro-kepegawaian", "--tier", "pelaksana", "--on", "2026-11-03")[0] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["check", "--organiser", "bkn", "--tier", "eselon-2"], "--tier 'eselon-2' is not a position tier: give one of "),
    (["check", "--organiser", "bkn", "--tier", "pelaksana", "--on", "03/11/2026"],
     "--on '03/11/2026' is not a date: give YYYY-MM-DD"),
    (["list", "--on", "tomorrow"], "--on 'tomorrow' is not a date"),
])
def test_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    code, out = run(*args)
    assert code == 2
    assert len(out.strip().splitlines()) == 1 and out.startswith(message), out
