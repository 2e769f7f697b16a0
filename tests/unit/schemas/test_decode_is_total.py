"""``decode_event`` and ``unpack`` are total: for any bytes they return events or raise ``Rejected``, and what
they return can be stored and re-sent everywhere downstream.

A worker calls them on every record of its input topics, written by labs nobody here controls: any other
exception stops it on one message (issue 12). This is a property test without a property-testing library: a
seeded fuzzer (so a failure reproduces from its seed and index) over random bytes, byte-level mutations of
valid events, and structural mutations that put hostile values anywhere in a valid event.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from bench.faults.hostile import dumps_raw
from producers.simulator import SimConfig, build_day
from schemas import events as ev
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.decode import DETAIL_MAX_CHARS, Rejected, decode_event, decode_output, unpack
from schemas.reasons import Reason

CASES = 6000  # per strategy; the whole module runs in a few seconds


def _corpus() -> list[dict[str, Any]]:
    day = build_day(SimConfig(participants=30, seats=15, reschedule_share=1.0, attendance=0.5, seed=3),
                    BlueprintRegistry.from_dir())
    by_type: dict[str, dict[str, Any]] = {}
    for e in day.schedule + day.lab:
        by_type.setdefault(e.event_type, orjson.loads(e.to_bytes()))
    checkin = by_type["ParticipantCheckedIn"]
    by_type["EventBatch"] = orjson.loads(ev.new_event(
        ev.EventBatch, lab_id=checkin["lab_id"], occurred_at=datetime.fromisoformat(checkin["occurred_at"]),
        payload={"session_id": checkin["payload"]["session_id"], "events": [checkin, checkin]}).to_bytes())
    return list(by_type.values())


CORPUS = _corpus()
RAW_CORPUS = [orjson.dumps(e) for e in CORPUS]
TOPICS = (topics.LAB.name, topics.SCHEDULE.name, topics.CONTROL.name, None)

#: Values put anywhere in an event; strings starting "#" are written as bare JSON literals.
HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, 2**63 - 1, "#18446744073709551616", "#1" + "0" * 40, "#-1e308", "#1e-400",
    "", " ", "\x00", "a\x00b", "\x1b[2J", "\u202e", "\ud7ff", "\uffff", "🙂", "Ａ", "x" * 70, "x" * 5000,
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-11-03T07:52:10+08:00", "2026-11-03T07:52:10Z",
    "1762131130", "2099-12-31T23:59:59.999999999-12:00", "2000-01-01T00:00:00+14:00", "2026-02-29T00:00:00Z",
    "199001012015031001", "12345", "mansoskul", "SessionClosed", "EventBatch", [], {}, [1, [2, [3]]],
    {"event_type": "EventBatch"}, "#" + "[" * 1100 + "]" * 1100, "#" + "[" * 1000 + "]" * 1000,
    "#" + '{"a":' * 1000 + "1" + "}" * 1000,
)




def byte_mutation(rng: random.Random) -> bytes:
    raw = bytearray(rng.choice(RAW_CORPUS))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(raw) + 1)
        if op == 0 and raw:
            raw[min(i, len(raw) - 1)] = rng.randrange(256)
        elif op == 1:
            raw[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del raw[i:i + rng.randint(1, 16)]
        elif op == 3:
            raw[i:i] = raw[rng.randrange(len(raw) + 1):][: rng.randint(1, 64)]
        elif op == 4:
            raw = raw[:i]
        else:
            raw[i:i] = bytes([rng.choice(b'{}[]",:\\0-e.tfn ')])
    return bytes(raw)


def _nodes(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:5]):
            yield from _nodes(v, (*path, i))


def structural_mutation(rng: random.Random) -> bytes:
    data = orjson.loads(orjson.dumps(rng.choice(CORPUS)))
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _nodes(data) if p]
        path = rng.choice(paths)
        parent = data
        for p in path[:-1]:
            parent = parent[p]
        op = rng.randrange(4)
        if op == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == 1 and isinstance(parent, dict):
            parent[rng.choice(("x", "nip", "session_id", "payload", "\x00", "event_type"))] = rng.choice(HOSTILE_VALUES)
        else:
            parent[path[-1]] = rng.choice(HOSTILE_VALUES)
    return dumps_raw(data)


def random_input(rng: random.Random) -> bytes:
    alphabet = rng.choice((None, b'{}[]",:0123456789.eE+-tfnul \\"abc'))
    n = rng.randint(0, 300)
    return rng.randbytes(n) if alphabet is None else bytes(rng.choice(alphabet) for _ in range(n))


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _walk(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _walk(v)


def assert_storable(event: ev.Event) -> None:
    """What the sink and the worker's state need of an accepted event: UTC times inside what PostgreSQL and
    SQLite hold, text without NUL, and bytes that decode back to the same event."""
    for value in _walk(event.model_dump()):
        if isinstance(value, datetime):
            utc = value.astimezone(UTC)
            assert datetime(1999, 12, 31, tzinfo=UTC) <= utc <= datetime(2100, 1, 2, tzinfo=UTC), value
            assert datetime.fromisoformat(utc.isoformat()) == value
        elif isinstance(value, str):
            assert "\x00" not in value or isinstance(event, ev.EventBatch)
            value.encode("utf-8")
        elif isinstance(value, bool) or isinstance(value, date):
            pass
        elif isinstance(value, int):
            assert -(2**31) <= value < 2**31, value
    if not isinstance(event, ev.EventBatch):  # a batch's raw inner events are only read through unpack
        assert decode_event(event.to_bytes(), topic=event.topic.name) == event


def check(raw: bytes | str | None, rng: random.Random, where: str) -> str:
    """Decode as the worker does; return the outcome. Anything but an event or a Rejected fails the test."""
    topic = rng.choice(TOPICS)
    kwargs: dict[str, Any] = {"topic": topic}
    if rng.random() < 0.5:
        kwargs["key"] = rng.choice((None, b"", b"S1", rng.randbytes(4)))
    if rng.random() < 0.5:
        kwargs["max_bytes"] = rng.choice((64, 1_000_000))
    try:
        event = decode_event(raw, **kwargs)
        items = [item for _, item in unpack(event, topic=topic)]
    except Rejected as exc:
        items = [exc]
    except BaseException as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{where}: {type(exc).__name__}: {exc} on {raw[:200]!r}")
    if raw is not None:  # the sink's decoder of output topics: total as well
        try:
            decode_output(raw, topic=rng.choice(("cact.results.v1", "cact.deadletter.v1", None)))
        except Rejected as exc:
            assert exc.reason != Reason.PROCESSING_ERROR, (where, exc)
        except BaseException as exc:  # noqa: BLE001
            pytest.fail(f"{where}: decode_output raised {type(exc).__name__}: {exc} on {raw[:200]!r}")
    for item in items:
        if isinstance(item, Rejected):
            assert item.reason in Reason.ALL and item.reason != Reason.PROCESSING_ERROR, (where, item, raw[:200])
            assert len(item.detail) <= DETAIL_MAX_CHARS and item.detail.isprintable(), (where, item.detail[:100])
            item.detail.encode("utf-8")
        else:
            assert_storable(item)
    return "rejected" if all(isinstance(i, Rejected) for i in items) else "accepted"


@pytest.mark.parametrize("strategy", [random_input, byte_mutation, structural_mutation], ids=lambda f: f.__name__)
def test_any_input_gives_an_event_or_a_rejected(strategy: Any) -> None:
    outcomes: dict[str, int] = {"accepted": 0, "rejected": 0}
    for n in range(CASES):
        rng = random.Random(f"{strategy.__name__}/{n}")
        outcomes[check(strategy(rng), rng, f"{strategy.__name__} case {n}")] += 1
    assert outcomes["rejected"] > CASES // 2  # the fuzzer reaches the refusals...
    if strategy is not random_input:
        assert outcomes["accepted"] > 0  # ...and, mutating valid events, also the events that still pass


def test_str_input_with_lone_surrogates_and_odd_types_is_rejected() -> None:
    rng = random.Random(1)
    for raw in ('{"event_type": "\ud800"}', "\udcff", RAW_CORPUS[0].decode().replace('"lab_id":"', '"lab_id":"\ud83d'),
                None, b"", bytearray(RAW_CORPUS[0][:-1]), memoryview(b"[]")):
        assert check(raw, rng, repr(raw)[:40]) == "rejected"  # type: ignore[arg-type]


def test_the_corpus_itself_is_accepted() -> None:
    """So the mutations above start from events the decoder takes."""
    for raw, data in zip(RAW_CORPUS, CORPUS):
        cls = ev.EVENT_TYPES[data["event_type"]]
        event = decode_event(raw, topic=cls.topic.name, key=event_key(data, cls))
        assert_storable(event)


def event_key(data: dict[str, Any], cls: type[ev.Event]) -> bytes:
    return str(data["payload"][cls.key_field]).encode()
