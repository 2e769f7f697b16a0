"""deploy/compose/prometheus.yml as the Prometheus container loads it: promtool checks the config and the rule
file it names, laid out as compose.yaml mounts them (promtool, like Prometheus, resolves ``rule_files``
beside the config file, so the check runs on a copy of the container's /etc/prometheus rather than on the
repository's layout, where alerts.yml lives elsewhere).

promtool comes from Debian's `prometheus` package (`make promtool`); a missing promtool fails, never skips.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_DIR = ROOT / "deploy" / "compose"


def container_files() -> dict[str, Path]:
    """Container path → repository file, for every file the compose file mounts into Prometheus."""
    spec = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8"))["services"]["prometheus"]
    mounts: dict[str, Path] = {}
    for volume in spec["volumes"]:
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts


def test_promtool_accepts_the_config_and_its_rules_as_mounted(tmp_path: Path) -> None:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: run `make promtool` (Debian package `prometheus`)"
    mounts = container_files()
    assert set(mounts) == {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"}
    for target, source in mounts.items():
        copy = tmp_path / target.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, copy)
    etc = tmp_path / "etc" / "prometheus"
    done = subprocess.run([exe, "check", "config", "prometheus.yml"], cwd=etc, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "SUCCESS: 1 rule files found" in done.stdout and "alerts.yml" in done.stdout
    assert "rules found" in done.stdout


def test_promtool_refuses_the_config_without_its_rules(tmp_path: Path) -> None:
    """The layout above matters: the same config beside no alerts.yml fails, so the check can fail."""
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: run `make promtool` (Debian package `prometheus`)"
    shutil.copy(COMPOSE_DIR / "prometheus.yml", tmp_path / "prometheus.yml")
    done = subprocess.run([exe, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
