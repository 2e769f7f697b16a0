"""The side-by-side bench's own rules: a peer runs the project's rules record by record as the worker's intake
does (dead letters included), rows are compared on content, and the goals are judged as issue 18 words them."""

from __future__ import annotations

import orjson
import pytest

from bench.faults.compare import Snapshot
from bench.generator import DayGenerator
from bench.peers import FED_BACK_TOPICS, STORED_TOPICS, apply_message
from bench.run import day_messages, goals
from bench.sidebyside import compare_rows
from schemas import events as ev
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


def test_a_peer_scores_every_participant_and_stores_only_what_the_sink_stores(registry: BlueprintRegistry) -> None:
    day = DayGenerator(registry.get("cact-full"), seed=5).day(40)  # type: ignore[arg-type]
    processor = SessionProcessor(registry, ScoringPolicy(), {}, {})
    out = [o for offset, (topic, key, value) in enumerate(day_messages(day, 50))
           for o in apply_message(processor, topic, 0, offset, key.encode(), value)]
    assert {o.topic.name for o in out} <= STORED_TOPICS | FED_BACK_TOPICS
    scored = {o.payload.nip for o in out if isinstance(o, ev.ParticipantScored)}
    assert len(scored) == day.participants == 40
    assert not [o for o in out if isinstance(o, ev.DeadLettered)]


def test_a_refused_record_gives_one_dead_letter_at_its_position(registry: BlueprintRegistry) -> None:
    processor = SessionProcessor(registry, ScoringPolicy(), {}, {})
    bad = {"event_type": "EventBatch", "schema_version": 1, "payload": {"events": [{"event_type": "Nope"}, {}]}}
    out = list(apply_message(processor, topics.LAB.name, 2, 17, b"S-1", orjson.dumps(bad), 1_700_000_000.0))
    assert len(out) == 1 and isinstance(out[0], ev.DeadLettered)
    assert (out[0].payload.source_partition, out[0].payload.source_offset) == (2, 17)
    out = list(apply_message(processor, topics.LAB.name, 0, 3, None, b"{not json"))
    assert len(out) == 1 and isinstance(out[0], ev.DeadLettered) and out[0].payload.source_offset == 3


def test_rows_are_compared_on_content_not_on_wall_clock_columns() -> None:
    row = {"activity_id": "A", "nip": "1", "version": 1, "jpm": 0.8, "created_at": "2026-12-02T10:00:00"}
    ref: Snapshot = {"results": [row]}
    same: Snapshot = {"results": [{**row, "created_at": "2026-12-02T11:00:00"}]}
    wrong: Snapshot = {"results": [{**row, "jpm": 0.7}]}
    out = compare_rows(ref, {"same": same, "wrong": wrong, "empty": {"results": []}})
    assert out["same"]["identical"] and not out["same"]["differences"]
    assert not out["wrong"]["identical"] and "1 wrong" in out["wrong"]["differences"]
    assert not out["empty"]["identical"] and "1 lost" in out["empty"]["differences"]


def _result(ours: float, peers: dict[str, float], *, idle: float = 5.0, p99: float = 300.0, rss: float = 250.0,
            participants: int = 10_000, identical: bool = True) -> dict:
    side = {"project": {"total_cpu_ms_per_participant": ours, "total_idle_cpu_ms_per_s": idle}}
    side |= {n: {"total_cpu_ms_per_participant": v, "total_idle_cpu_ms_per_s": 1.0} for n, v in peers.items()}
    return {"side_by_side": side, "raw_consume_cpu_ms_per_participant": 1.0, "p99_latency_ms": p99,
            "paced_rate": 200.0, "worker_peak_rss_mb": rss, "participants": participants,
            "identical_rows": {n: {"identical": identical} for n in peers}}


def test_goals_judge_the_project_against_the_best_peer_and_the_raw_limit() -> None:
    g = goals(_result(1.9, {"plain": 2.0, "quix": 2.5}))
    assert all(g.values())
    g = goals(_result(2.1, {"plain": 2.0, "quix": 2.5}, idle=10.5, p99=501, rss=301, identical=False))
    assert not any(g.values())  # above the best peer and 2x raw (2.0), idle, latency, memory, rows
    g = goals(_result(1.5, {}, participants=3000))
    assert g["total CPU per participant below the best peer's"] is None
    assert g["worker peak RSS <= 300 MB for 10,000 participants"] is None
