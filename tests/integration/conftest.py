"""Fixtures for tests that run the pipeline for real: a fresh broker and a fresh PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from schemas.settings import Settings
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import ensure_topics

_ran: dict[str, int] = {"broker": 0, "postgres": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        for marker in _ran:
            if marker in report.keywords:
                _ran[marker] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Lines .ci/run looks for: proof that broker and PostgreSQL tests really ran in CI."""
    for marker, count in _ran.items():
        if count:
            terminalreporter.write_line(f"ran-marker:{marker} {count} passed")


PG_ADMIN_URL = os.environ.get("CACT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pipeline_kafka(tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at a broker with the pipeline's topics and nothing in them.

    The topic names are fixed by the contract, so isolation between tests comes from a fresh embedded broker
    each time. With KAFKA_BOOTSTRAP_SERVERS set, that Kafka is used and must be a dedicated, empty test cluster.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        settings = Settings(app_id=f"cact-test-{uuid.uuid4().hex[:8]}", data_dir=tmp_path / "worker",
                            worker_web_port=free_port())
        asyncio.run(ensure_topics(settings))
        yield settings
        return
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker.log") as broker:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, data_dir=tmp_path / "worker",
                            worker_web_port=free_port())
        asyncio.run(ensure_topics(settings))
        yield settings


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"cact_it_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
