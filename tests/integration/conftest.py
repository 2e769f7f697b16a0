"""Fixtures for tests that run the pipeline for real: a broker, a fresh PostgreSQL database per test, and the
independent re-implementation of the scoring rules the results are checked against (support/independent_scorer.py).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.settings import Settings
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import ensure_topics
from support.database import fresh_database
from support.independent_scorer import IndependentAccreditation, IndependentScorer

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


def _isolated(tmp_path: Path) -> dict[str, Any]:
    """What a developer's own ``.cact/`` would otherwise lend every test worker: corrected blueprints, an
    imported accreditation registry."""
    from schemas.accreditation import SHIPPED_FILE
    return {"blueprint_corrections_dir": tmp_path / "blueprint-corrections", "accreditation_file": SHIPPED_FILE}


@pytest.fixture(scope="session")
def kafka_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a Kafka-protocol broker that has the pipeline's topics, shared by the session.

    With KAFKA_BOOTSTRAP_SERVERS (or CACT_KAFKA_BOOTSTRAP_SERVERS) set, that cluster and its security
    settings are used as they are; otherwise an embedded Tansu broker is started on a free port and stopped
    at the end. Shared, so tests using it must use their own topic names or consumer groups; tests that
    need an empty pipeline use the function-scoped ``pipeline_kafka`` below.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("CACT_KAFKA_BOOTSTRAP_SERVERS"):
        settings = Settings()
        asyncio.run(ensure_topics(settings))
        yield settings
        return
    log_path = tmp_path_factory.mktemp("kafka") / "broker.log"
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=log_path) as broker:
        # Field names work as keyword arguments (populate_by_name) and win over the environment; the
        # embedded broker is plaintext, so any SASL/TLS settings from the environment are dropped too.
        settings = broker.settings(Settings(kafka_bootstrap_servers=broker.bootstrap,
                                            lab_spool_path=log_path.parent / "lab-spool.db"))
        asyncio.run(ensure_topics(settings))
        yield settings


@pytest.fixture
def pipeline_kafka(tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at a broker with the pipeline's topics and nothing in them.

    The topic names are fixed by the contract, so isolation between tests comes from a fresh embedded broker
    each time, and each test's lab emitters spool into its own file. With KAFKA_BOOTSTRAP_SERVERS set, that
    Kafka is used and must be a dedicated, empty test cluster.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        settings = Settings(app_id=f"cact-test-{uuid.uuid4().hex[:8]}", data_dir=tmp_path / "worker",
                            worker_web_port=free_port(), lab_spool_path=tmp_path / "lab-spool.db",
                            **_isolated(tmp_path))
        asyncio.run(ensure_topics(settings))
        yield settings
        return
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker.log") as broker:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, data_dir=tmp_path / "worker",
                            worker_web_port=free_port(), lab_spool_path=tmp_path / "lab-spool.db",
                            **_isolated(tmp_path))
        asyncio.run(ensure_topics(settings))
        yield settings


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_database("cact_it") as url:
        yield url


@pytest.fixture
def scorer() -> type[IndependentScorer]:
    return IndependentScorer


@pytest.fixture
def accreditation_rule() -> type[IndependentAccreditation]:
    return IndependentAccreditation
