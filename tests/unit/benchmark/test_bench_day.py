"""The benchmark's own parts: its fast exam day must be a valid day, and its report must be appended, not lost.

The generator skips pydantic for speed, so these tests put its output through the worker's decoder and processor:
a benchmark of events the worker would dead-letter, or of participants it would not score, would measure nothing.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.generator import DayGenerator
from bench.run import DOC_HEADER, append_doc, count_answers, day_messages
from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event, unpack
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


@pytest.mark.parametrize("batch", [1, 50])
def test_every_generated_event_is_accepted_and_every_participant_is_scored(registry: BlueprintRegistry,
                                                                            batch: int) -> None:
    day = DayGenerator(registry.get("cact-full"), seed=3).day(65)  # type: ignore[arg-type]
    processor = SessionProcessor(registry, ScoringPolicy(), {}, {})
    scored: dict[str, ev.ParticipantScored] = {}
    answers = 0
    messages = day_messages(day, batch)
    for topic, key, raw in messages:
        for _index, e in unpack(decode_event(raw, topic=topic), topic=topic):
            assert not isinstance(e, Rejected), e
            assert e.key() == key
            answers += len(getattr(e.payload, "answers", ()))
            scored |= {o.payload.nip: o for o in processor.handle(e) if isinstance(o, ev.ParticipantScored)}
    assert len(scored) == day.participants == 65
    assert answers == day.answers == sum(count_answers(raw)[1] for _, _, raw in messages)
    assert all(len(r.payload.sections) == 3 and not r.payload.flags for r in scored.values())
    assert len({r.payload.nip for r in scored.values()}) == 65


def test_results_are_appended_to_the_doc_under_one_header(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nWhat the profile showed.\n", encoding="utf-8")
    result = {"at": "2026-11-23T10:00:00+00:00", "commit": "abc1234", "participants": 10000,
              "participants_per_s": 512.3, "answers_per_s": 356000, "raw_consume_answers_per_s": 2500000,
              "ratio_to_raw": 0.142, "p50_latency_ms": 210.0, "p99_latency_ms": 640.5, "worker_peak_rss_mb": 300.1,
              "raw_consume_cpu_ms_per_participant": 0.61,
              "side_by_side": {"project": {"total_cpu_ms_per_participant": 2.1, "total_idle_cpu_ms_per_s": 40.2},
                               "plain_aiokafka": {"total_cpu_ms_per_participant": 1.9, "total_idle_cpu_ms_per_s": 3.1}},
              "identical_rows": {"plain_aiokafka": {"identical": True}},
              "goals": {"total CPU per participant below the best peer's": False, "p99 latency <= 500 ms": True,
                        "worker peak RSS <= 300 MB for 10,000 participants": None}}
    append_doc(result, doc)
    append_doc({**result, "commit": "def5678"}, doc)
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nWhat the profile showed.\n")
    assert text.count(DOC_HEADER.strip()) == 1
    rows = [line for line in text.splitlines() if line.startswith("| 2026-11-23")]
    assert [r.split(" | ")[1] for r in rows] == ["abc1234", "def5678"]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[3:12] == ["512.3", "2.1", "1.9", "–", "0.61", "40.2 / 3.1 / –", "640.5", "300.1", "yes"]
    assert cells[12] == "no: total CPU per participant below the best peer's"  # None (not judged) is not a miss


def test_count_answers_reads_plain_events_and_batches() -> None:
    plain = {"event_type": "SectionSubmitted", "payload": {"answers": [{"item_id": "a", "option": "A"}] * 3}}
    batch = {"event_type": "EventBatch",
             "payload": {"events": [plain, {"event_type": "SectionStarted", "payload": {}}]}}
    assert count_answers(orjson.dumps(plain)) == (1, 3)
    assert count_answers(orjson.dumps(batch)) == (2, 3)


def test_the_domain_only_phase_runs_the_sampled_sessions_whole_and_refuses_a_broken_day(
        registry: BlueprintRegistry) -> None:
    from bench.run import domain_only
    from schemas.settings import Settings

    day = DayGenerator(registry.get("cact-full"), seed=5).day(95)  # type: ignore[arg-type]
    messages = day_messages(day, 50)
    seen: list[int] = []
    out = domain_only(Settings(), day, messages, 60, seen.append)
    assert out["participants"] == 60  # the first two sessions of 30, schedule and lab events alike
    assert (len(seen) == sum(1 for _, key, _ in messages if key in {"B-00001", "B-00002"})
            and out["cpu_ms_per_participant"] > 0)
    topic, key, raw = messages[0]
    broken = [(topic, key, raw.replace(b'"position_tier":"', b'"position_tier":"x'))] + messages[1:]
    with pytest.raises(RuntimeError, match="broke the contract"):
        domain_only(Settings(), day, broken, 60, seen.append)
