"""The hostile-input generator (bench/faults/hostile.py): what it promises a suite, checked against the
pipeline's own decoder and rules without a broker.

Each record states what the pipeline must do with it; here every record goes through ``decode_event`` and
``unpack`` as the worker calls them (topic, key and size limit included), and the records the decoder must let
through go on through a :class:`SessionProcessor` holding the day's schedule. A record that makes either raise
anything but ``Rejected`` fails the test: this is the "no exception other than Rejected" proof.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from bench.faults import hostile as h
from producers.daysender import delivery_plan
from producers.simulator import SimConfig, SimDay, build_day
from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event, unpack
from schemas.reasons import Reason
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy

REGISTRY = BlueprintRegistry.from_dir()
MAX_BYTES = h.DEFAULT_MAX_MESSAGE_BYTES
COUNT = 600


@pytest.fixture(scope="module")
def day() -> SimDay:
    return build_day(SimConfig(participants=90, seats=30, mansoskul_only_share=0.5, seed=12), REGISTRY)


@pytest.fixture(scope="module")
def records(day: SimDay) -> list[h.HostileRecord]:
    return h.hostile_records(day, COUNT, seed=7, registry=REGISTRY)


def decoded(record: h.HostileRecord) -> list[ev.Event | Rejected]:
    """What the worker's intake makes of a record: its events, or the Rejected of each refused part."""
    try:
        event = decode_event(record.value, topic=record.topic, key=record.key, max_bytes=MAX_BYTES)
    except Rejected as exc:
        return [exc]
    return [item for _, item in unpack(event, topic=record.topic)]


def test_covers_at_least_20_kinds_each_in_the_first_records(records: list[h.HostileRecord]) -> None:
    assert len(h.KINDS) >= 20
    assert [r.kind for r in records[: len(h.KINDS)]] == list(h.KINDS)
    assert set(Counter(r.kind for r in records)) == set(h.KINDS)


def test_every_record_states_a_known_outcome(records: list[h.HostileRecord]) -> None:
    for r in records:
        assert r.topic in (h.LAB, h.SCHEDULE), r.note
        assert r.expect in (h.DEADLETTER, h.ACCEPTED, h.CAPPED), r.note
        assert r.stage in (h.INTAKE, h.DECODE, h.PROCESS), r.note
        assert r.reasons <= set(Reason.ALL), r.note
        assert bool(r.reasons) == (r.expect != h.ACCEPTED), r.note
        if r.expect == h.CAPPED:
            assert r.reasons == {Reason.STATE_LIMIT} and h.STATE_GROWTH in r.tags
        if r.expect == h.ACCEPTED:
            assert h.VALID_HOSTILE in r.tags


def test_every_record_decodes_to_its_expected_outcome(records: list[h.HostileRecord]) -> None:
    for r in records:
        out = decoded(r)
        rejected = [x for x in out if isinstance(x, Rejected)]
        assert all(x.reason != Reason.PROCESSING_ERROR for x in rejected), (r.kind, r.note, rejected)
        if r.stage == h.INTAKE:
            assert r.size > MAX_BYTES and [x.reason for x in out] == [Reason.TOO_LARGE], (r.kind, r.note)
        elif r.stage == h.DECODE:
            assert r.expect == h.DEADLETTER
            assert rejected and rejected[0].reason in r.reasons, (r.kind, r.note, out[:3])
            if r.inner:  # an EventBatch: every inner event refused, each for its own reason
                assert [x.reason if isinstance(x, Rejected) else "accepted" for x in out] == list(r.inner), r.note
            else:
                assert len(out) == 1
        else:  # the decoder lets it through: the worker's rules decide
            assert out and not rejected, (r.kind, r.note, rejected)
            assert all(x.to_bytes() for x in out if isinstance(x, ev.Event))


def test_records_for_the_workers_rules_get_their_outcome_from_the_processor(day: SimDay,
                                                                             records: list[h.HostileRecord]) -> None:
    """Past the decoder: a day's schedule in a processor, then each record alone against a copy of that state."""
    processor = SessionProcessor(REGISTRY, ScoringPolicy(), {}, {})
    for e in day.schedule:
        processor.handle(e)
    base_sessions, base_participants = dict(processor.sessions), dict(processor.participants)
    seen: Counter[str] = Counter()
    for r in (r for r in records if r.stage == h.PROCESS):
        p = SessionProcessor(REGISTRY, ScoringPolicy(), _copy(base_sessions), _copy(base_participants))
        [event] = decoded(r)
        assert isinstance(event, ev.Event)
        try:
            p.handle(event)
            outcome = "accepted"
        except Rejected as exc:
            outcome = exc.reason
        seen[r.kind] += 1
        if r.expect == h.DEADLETTER:
            assert outcome in r.reasons, (r.kind, r.note, outcome)
        else:  # accepted, or state_limit where a cap applies (streams/app.py keeps the caps)
            assert outcome == "accepted" or (r.expect == h.CAPPED and outcome == Reason.STATE_LIMIT), (r.kind, outcome)
    assert {"unknown_item", "unknown_references", "unscheduled_session", "other_lab_checkin",
            "wrong_clock_checkin"} <= set(seen)


def _copy(table: dict[str, Any]) -> dict[str, Any]:
    return {k: orjson.loads(orjson.dumps(v)) for k, v in table.items()}


def test_every_field_of_every_input_event_is_mutated_every_way(day: SimDay) -> None:
    """The whole catalogue once: every field of every input event type missing (when required), of a wrong
    type and out of range, each refused with the reason the contract gives for that field."""
    covered: dict[str, set[tuple[str, ...]]] = {}
    ctx = h._Ctx(h._templates(day, REGISTRY), random.Random(1), MAX_BYTES)
    for m in h.FIELD_MUTATIONS:
        r = h.mutated(ctx, m)
        [out] = decoded(r)
        assert isinstance(out, Rejected) and out.reason in r.reasons, (r.note, out)
        covered.setdefault(m.event_type, set()).add(m.path)
    for cls in (*ev.SCHEDULE_EVENTS, *ev.LAB_EVENTS):
        name = cls.model_fields["event_type"].default
        payload = cls.model_fields["payload"].annotation
        fields = {(f,) for f in ("event_id", "event_type", "schema_version", "occurred_at", "lab_id", "payload")}
        fields |= {("payload", f) for f in payload.model_fields}
        assert fields <= covered[name], (name, fields - covered[name])
    hows = Counter(m.how for m in h.FIELD_MUTATIONS)
    assert set(hows) == {"missing", "wrong_type", "out_of_range", "extra", "cross_rule"}


def test_dead_lettered_records_carry_odd_timestamps_keys_and_headers(records: list[h.HostileRecord]) -> None:
    stamps = {r.timestamp_ms for r in records if r.kind == "odd_timestamp"}
    assert stamps <= set(h.ODD_TIMESTAMPS_MS) and len(stamps) >= 3
    assert all(ev.in_contract_range(_at(r.timestamp_ms)) for r in records if r.kind != "odd_timestamp"
               and r.timestamp_ms is not None)
    keys = [r.key for r in records if r.kind == "odd_key"]
    assert None in keys or b"" in keys or any(k and len(k) >= 10_240 for k in keys)
    assert any(r.headers for r in records if r.kind == "odd_headers")


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_huge_and_oversize_records_are_on_either_side_of_the_limit(day: SimDay) -> None:
    for kind, above in (("oversize", True), ("huge_string", False), ("huge_array", False)):
        recs = h.hostile_records(day, 4, seed=3, kinds=[kind] * 4, registry=REGISTRY)
        for r in recs:
            assert (r.size > MAX_BYTES) is above, (kind, r.size)
        if kind == "huge_string":
            assert all(r.size > 800_000 for r in recs)


def test_the_size_limit_is_a_parameter(day: SimDay) -> None:
    small = h.hostile_records(day, 6, seed=3, kinds=["oversize", "huge_string", "huge_array"] * 2,
                              max_message_bytes=100_000, registry=REGISTRY)
    assert [r.size > 100_000 for r in small] == [True, False, False] * 2


def test_same_seed_same_records_other_seed_other(day: SimDay) -> None:
    a = h.hostile_records(day, 120, seed=5, registry=REGISTRY)
    b = h.hostile_records(day, 120, seed=5, registry=REGISTRY)
    c = h.hostile_records(day, 120, seed=6, registry=REGISTRY)
    assert a == b
    assert [r.value for r in a] != [r.value for r in c]
    assert a[100] == next(r for n, r in enumerate(h.iter_hostile(day, 101, seed=5, registry=REGISTRY)) if n == 100)


def test_day_safe_kinds_leave_the_day_alone(day: SimDay) -> None:
    recs = h.hostile_records(day, 300, seed=9, kinds=h.DAY_SAFE_KINDS, registry=REGISTRY)
    assert not [r for r in recs if h.ALTERS_DAY in r.tags]
    altering = h.hostile_records(day, len(h.KINDS), seed=9, registry=REGISTRY)
    assert {r.kind for r in altering if h.ALTERS_DAY in r.tags} == set(h.KINDS) - set(h.DAY_SAFE_KINDS)


def test_weights_steer_the_draw_after_the_first_of_each_kind(day: SimDay) -> None:
    recs = h.hostile_records(day, 200, seed=2, weights={k: 0 for k in h.KINDS} | {"truncated_json": 1},
                             registry=REGISTRY)
    assert {r.kind for r in recs[len(h.KINDS):]} == {"truncated_json"}


def test_unknown_kind_is_refused_by_name(day: SimDay) -> None:
    with pytest.raises(ValueError, match="no_such_kind"):
        h.hostile_records(day, 1, kinds=["no_such_kind"])


def test_interleave_keeps_both_orders_and_every_item(day: SimDay, records: list[h.HostileRecord]) -> None:
    _, lab = delivery_plan(day)
    mixed = h.interleave(lab, records, seed=4)
    assert len(mixed) == len(lab) + len(records)
    assert [x for x in mixed if not isinstance(x, h.HostileRecord)] == lab
    assert [x for x in mixed if isinstance(x, h.HostileRecord)] == records
    assert mixed == h.interleave(lab, records, seed=4) != h.interleave(lab, records, seed=5)
    first = next(i for i, x in enumerate(mixed) if isinstance(x, h.HostileRecord))
    last = max(i for i, x in enumerate(mixed) if isinstance(x, h.HostileRecord))
    assert first < len(mixed) // 4 and last > 3 * len(mixed) // 4  # spread through the day, not bunched


def test_describe_is_small_and_json_able(records: list[h.HostileRecord]) -> None:
    for r in records:
        text = json.dumps(h.describe(r))
        assert len(text) < 1200
