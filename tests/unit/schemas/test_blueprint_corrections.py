"""Workers load the blueprint folder and the corrections folder together; a version never means two keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.blueprint import SAMPLE_DIR, BlueprintError, BlueprintRegistry
from schemas.settings import Settings


def corrected(version: str = "2026.2", weight: float = 4) -> dict[str, Any]:
    data = json.loads((SAMPLE_DIR / "cact-full.json").read_text())
    data["version"] = version
    item = data["sections"][0]["subtests"][0]["items"][0]
    item["options"] = {k: weight for k in item["options"]}
    return data


def put(folder: Path, name: str, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def test_a_missing_corrections_folder_loads_the_shipped_blueprints(tmp_path: Path) -> None:
    reg = BlueprintRegistry.from_settings(Settings(blueprint_corrections_dir=tmp_path / "absent"))
    assert reg.ids() == ["cact-full", "mansoskul-only"]
    assert reg.get("cact-full").version == "2026.1"  # type: ignore[union-attr]
    assert reg.source_of("cact-full", "2026.1") == SAMPLE_DIR / "cact-full.json"


def test_a_correction_beside_the_shipped_folder_is_loaded_and_becomes_the_latest(tmp_path: Path) -> None:
    path = put(tmp_path / "fix", "cact-full-2026.2.json", corrected())
    reg = BlueprintRegistry.from_settings(Settings(blueprint_corrections_dir=tmp_path / "fix"))
    assert reg.get("cact-full", "2026.1") is not None and reg.get("cact-full", "2026.2") is not None
    assert reg.get("cact-full").version == "2026.2"  # type: ignore[union-attr]
    assert reg.source_of("cact-full", "2026.2") == path


def test_reload_reads_both_folders_again(tmp_path: Path) -> None:
    folder = tmp_path / "fix"
    reg = BlueprintRegistry.from_dirs(None, folder)
    assert reg.get("cact-full", "2026.2") is None
    put(folder, "later.json", corrected())
    again = reg.reload()
    assert again.get("cact-full", "2026.2") is not None and again.get("mansoskul-only") is not None


def test_the_same_version_with_other_content_is_refused_naming_both_files(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    for p in SAMPLE_DIR.glob("*.json"):
        (base / p.name).write_text(p.read_text())
    put(base, "cact-full-2026.2.json", corrected(weight=4))
    put(tmp_path / "fix", "cact-full-2026.2.json", corrected(weight=3))
    with pytest.raises(BlueprintError) as exc:
        BlueprintRegistry.from_dirs(base, tmp_path / "fix")
    message = str(exc.value)
    assert "cact-full version 2026.2" in message and str(base) in message and str(tmp_path / "fix") in message
    assert "\n" not in message


def test_the_same_version_with_the_same_content_in_both_folders_is_fine(tmp_path: Path) -> None:
    base = tmp_path / "base"
    put(base, "a.json", corrected())
    put(tmp_path / "fix", "b.json", corrected())
    reg = BlueprintRegistry.from_dirs(base, tmp_path / "fix")
    assert reg.source_of("cact-full", "2026.2") == base / "a.json"


def test_a_corrections_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fix").write_text("")
    with pytest.raises(BlueprintError, match="not a folder"):
        BlueprintRegistry.from_dirs(None, tmp_path / "fix")


def test_a_bad_correction_stops_the_worker_like_a_bad_blueprint(tmp_path: Path) -> None:
    data = corrected()
    del data["sections"][0]["subtests"][0]["items"][0]["competency"]
    put(tmp_path / "fix", "x.json", data)
    with pytest.raises(BlueprintError, match=r"fix/x.json: .*item MSK-M1-001 .*field .competency."):
        BlueprintRegistry.from_dirs(None, tmp_path / "fix")
