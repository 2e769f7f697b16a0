"""``CACT_DATABASE_URL_FILE`` and ``CACT_KAFKA_SASL_PASSWORD_FILE``: a mounted secret fills the setting, so a
container's environment (visible to anyone who may describe the pod) never holds the password.

What an operator gets wrong is what these aim at: both sources set, a path that is not there, an empty file, and
a child process (the demo, the tests' workers) handed the secret in its environment instead of the file's name.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from cact import preflight
from schemas.errors import EXIT_CONFIG
from schemas.kafka_config import client_kwargs, kafka_python_kwargs
from schemas.settings import Settings, settings_env

PASSWORD = secrets.token_hex(8)


def mounted(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_database_url_comes_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://cact:{PASSWORD}@db:5432/cact"
    settings = Settings(database_url_file=mounted(tmp_path, "url", url + "\n"))
    assert settings.database_url == url


def test_the_sasl_password_file_reaches_every_kafka_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(mounted(tmp_path, "password", PASSWORD)))
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "cact-pipeline")
    settings = Settings()
    assert client_kwargs(settings)["sasl_plain_password"] == PASSWORD
    assert kafka_python_kwargs(settings)["sasl_plain_password"] == PASSWORD
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize("field", ["database_url", "kafka_sasl_password"])
def test_a_child_process_is_given_the_file_not_the_secret(tmp_path: Path, field: str) -> None:
    path = mounted(tmp_path, "secret", f"postgresql://u:{PASSWORD}@h/db")
    env = settings_env(Settings(**{f"{field}_file": path}))
    assert env == {f"CACT_{field.upper()}_FILE": str(path)}
    assert Settings(**{f"{field}_file": env[f"CACT_{field.upper()}_FILE"]}).model_dump()[field] is not None


def one_line(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(values)
    error = preflight.describe(caught.value)
    assert error is not None and error.code == EXIT_CONFIG
    assert "\n" not in error.message and PASSWORD not in error.message
    return error.message


def test_both_sources_of_one_secret_are_refused_naming_both(tmp_path: Path) -> None:
    path = mounted(tmp_path, "url", f"postgresql://u:{PASSWORD}@h/db")
    assert one_line(database_url=f"postgresql://u:{PASSWORD}@h/db", database_url_file=path) == \
        "invalid settings: set CACT_DATABASE_URL or CACT_DATABASE_URL_FILE, not both"


def test_a_missing_or_empty_file_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert one_line(kafka_sasl_password_file=missing) == \
        f"invalid settings: CACT_KAFKA_SASL_PASSWORD_FILE={missing} cannot be read (No such file or directory)"
    empty = mounted(tmp_path, "empty", "\n")
    assert one_line(database_url_file=empty) == f"invalid settings: CACT_DATABASE_URL_FILE={empty} is empty"
