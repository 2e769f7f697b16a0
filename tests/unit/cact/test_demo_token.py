"""`cact demo` guards its worker's operator page like any other: a configured token is used as it is, else a
random one is written to a file only its owner can read, and the demo says where it is, never what it is."""

from __future__ import annotations

import stat
from pathlib import Path

from cact.demo import with_operator_token
from schemas.settings import Settings
from streams.web_auth import OperatorToken

TOKEN = "configured-operator-token-0123456789"


def test_without_a_token_the_demo_makes_a_random_one_in_a_private_file(tmp_path: Path) -> None:
    settings, hint = with_operator_token(Settings(operator_token=None, operator_token_file=None), tmp_path)
    path = settings.operator_token_file
    assert path == tmp_path / "operator-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = OperatorToken.from_settings(settings).current()
    assert token is not None and len(token) >= 32
    assert hint == f"the token in {path}" and token not in hint
    (tmp_path / "again").mkdir()
    other, _ = with_operator_token(Settings(operator_token=None, operator_token_file=None), tmp_path / "again")
    assert OperatorToken.from_settings(other).current() != token


def test_a_configured_token_is_kept(tmp_path: Path) -> None:
    settings, hint = with_operator_token(Settings(operator_token=TOKEN), tmp_path / "a")
    assert settings.operator_token_file is None and TOKEN not in hint and "CACT_OPERATOR_TOKEN" in hint
    file = tmp_path / "mine"
    settings, hint = with_operator_token(Settings(operator_token_file=file), tmp_path / "b")
    assert settings.operator_token_file == file and hint == f"the token in {file}"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
