"""deploy/compose/init-secrets.sh, run for real on a copy: it makes every secret compose.yaml names, private,
usable by what reads them (the database URL with PostgreSQL's password, an operator token the worker accepts),
keeps them on a second run, replaces them with --force, and never prints one. Without openssl it falls back to
Python's `secrets`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from streams.web_auth import read_token_file

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_DIR = ROOT / "deploy" / "compose"


def declared() -> set[str]:
    doc = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8"))
    return {Path(s["file"]).name for s in doc["secrets"].values()}


def run(script: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"PATH": path} if path else {})}
    return subprocess.run(["/bin/sh", str(script), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    copy = tmp_path / "compose" / "init-secrets.sh"
    copy.parent.mkdir()
    shutil.copy(COMPOSE_DIR / "init-secrets.sh", copy)
    return copy


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()}


def test_it_makes_every_secret_private_and_usable(script: Path) -> None:
    done = run(script)
    assert done.returncode == 0, done.stderr
    folder = script.parent / "secrets"
    made = contents(folder)
    assert set(made) == declared()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE((folder / n).stat().st_mode) for n in made} == {0o600}
    url = make_url(made["database-url"])
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg", "cact", made["postgres-password"], "postgres", 5432, "cact")
    assert len(made["postgres-password"]) == 48 and len(made["grafana-admin-password"]) == 32
    assert read_token_file(folder / "operator-token") == (made["operator-token"], None)  # the worker's own check
    assert len({made["postgres-password"], made["operator-token"], made["grafana-admin-password"]}) == 3
    for value in (made["postgres-password"], made["operator-token"], made["grafana-admin-password"]):
        assert value not in done.stdout + done.stderr

    again = run(script)
    assert again.returncode == 0 and contents(folder) == made  # a second run keeps them
    assert again.stdout.count("kept") == len(made)

    forced = run(script, "--force")
    assert forced.returncode == 0
    renewed = contents(folder)
    assert renewed["operator-token"] != made["operator-token"]
    assert make_url(renewed["database-url"]).password == renewed["postgres-password"] != made["postgres-password"]


def test_without_openssl_python_makes_them(script: Path, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "cat", "mkdir", "chmod", "mv"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    (tools / "python3").symlink_to(os.path.realpath(sys.executable))  # the interpreter, not a version manager's shim
    assert shutil.which("openssl", path=str(tools)) is None
    done = run(script, path=str(tools))
    assert done.returncode == 0, done.stderr
    token = (script.parent / "secrets" / "operator-token").read_text(encoding="utf-8")
    assert len(token) == 64 and int(token, 16) >= 0


def test_a_wrong_argument_changes_nothing(script: Path) -> None:
    done = run(script, "--frce")
    assert done.returncode == 2 and "usage" in done.stderr
    assert not (script.parent / "secrets").exists()
