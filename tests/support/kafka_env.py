"""Kafka client settings as a test states them, without the developer's or CI's own Kafka variables."""

from __future__ import annotations

import os

import pytest

from schemas.settings import Settings


def without_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every ``KAFKA_*``/``CACT_KAFKA_*`` variable for the test, so they cannot leak into expectations."""
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "CACT_KAFKA_")):
            monkeypatch.delenv(name)


def bare_settings(**values: object) -> Settings:
    """Settings from ``values`` and the defaults alone: no .env file is read."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
