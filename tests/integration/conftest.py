"""Fixtures for tests that run the pipeline for real: a fresh broker and a fresh PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from producers.simulator import TruthParticipant

import pytest

from bench.faults.harness import fresh_database
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
    each time, and each test's lab emitters spool into its own file. With KAFKA_BOOTSTRAP_SERVERS set, that Kafka is used and must be a dedicated, empty test cluster.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        settings = Settings(app_id=f"cact-test-{uuid.uuid4().hex[:8]}", data_dir=tmp_path / "worker",
                            worker_web_port=free_port(), lab_spool_path=tmp_path / "lab-spool.db")
        asyncio.run(ensure_topics(settings))
        yield settings
        return
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker.log") as broker:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, data_dir=tmp_path / "worker",
                            worker_web_port=free_port(), lab_spool_path=tmp_path / "lab-spool.db")
        asyncio.run(ensure_topics(settings))
        yield settings


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_database(PG_ADMIN_URL, prefix="cact_it") as url:
        yield url


class IndependentScorer:
    """Scoring re-implemented from docs/scoring.md, sharing no code with streams/scoring.py."""
    STANDARD = {"jpt_utama": 5, "jpt_madya": 5, "jpt_pratama": 4, "administrator": 3, "pengawas": 2, "pelaksana": 1,
                "ahli_utama": 4, "ahli_madya": 3, "ahli_muda": 2, "ahli_pertama": 1, "terampil": 1}
    CUTS = [0, 40, 55, 70, 85]

    @staticmethod
    def _level(pct: float) -> int:
        return sum(1 for c in IndependentScorer.CUTS if pct >= c)

    @classmethod
    def reference(cls, bp: dict[str, Any], t: TruthParticipant) -> dict[str, Any]:
        sections, comp = {}, {}
        for sec in bp["sections"]:
            answers = t.sheets[sec["section"]]
            got = top = 0.0
            for sub in sec["subtests"]:
                for item in sub["items"]:
                    w = item["options"].get(answers.get(item["item_id"]), 0) if answers.get(item["item_id"]) else 0
                    got += w
                    top += max(item["options"].values())
                    if "competency" in item:
                        c = comp.setdefault(item["competency"], [0.0, 0.0])
                        c[0] += w
                        c[1] += max(item["options"].values())
            sections[sec["section"]] = round(100 * got / top, 2)
        levels = {c: cls._level(round(100 * v[0] / v[1], 2)) for c, v in comp.items()}
        std = cls.STANDARD[t.tier.value]
        jpm = round(100 * sum(min(lv, std) for lv in levels.values()) / (9 * std), 2)
        bands = ([(90, "Optimal"), (78, "Cukup Optimal"), (0, "Kurang Optimal")] if t.purpose.value == "mapping"
                 else [(80, "MS"), (68, "MMS"), (0, "KMS")])
        return {"levels": levels, "jpm": jpm, "category": next(label for lim, label in bands if jpm >= lim),
                "sections": sections}

    @staticmethod
    def observed(r: dict[str, Any]) -> dict[str, Any]:
        return {"levels": {c["code"]: c["level"] for c in r["competencies"]}, "jpm": r["jpm"], "category": r["category"],
                "sections": {s["section"]: s["score"] for s in r["sections"]}}


@pytest.fixture
def scorer() -> type[IndependentScorer]:
    return IndependentScorer
