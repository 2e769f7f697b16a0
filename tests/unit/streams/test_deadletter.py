"""Dead letters (streams/deadletter.py) can always be built and always be sent: bounded whatever the record, with
a time the contract accepts, an id fixed by the source position, and decodable by the sink that stores them."""

from __future__ import annotations

import base64
import hashlib
import math
from datetime import UTC, datetime

import pytest

from schemas import events as ev
from schemas import topics
from schemas.decode import decode_output
from streams.deadletter import DETAIL_MAX_CHARS, KEY_PREFIX_BYTES, VALUE_PREFIX_BYTES, dead_letter, record_time

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
LAB = topics.LAB.name


def letter(**changes: object) -> ev.DeadLettered:
    values: dict[str, object] = {"topic": LAB, "partition": 3, "offset": 41, "key": b"S1", "value": b"{not json",
                                 "timestamp": NOW.timestamp(), "reason": "malformed_json", "detail": "expected value"}
    return dead_letter(**{**values, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("timestamp", [None, "1.8e9", math.nan, math.inf, -1e12, 2**63 / 1000, 8e13, 1e20])
def test_an_implausible_record_time_becomes_now(timestamp: object) -> None:
    assert record_time(timestamp, NOW) == NOW  # type: ignore[arg-type]


def test_a_plausible_record_time_is_kept() -> None:
    assert record_time(NOW.timestamp() + 0.5, datetime(2030, 1, 1, tzinfo=UTC)) == datetime.fromtimestamp(
        NOW.timestamp() + 0.5, UTC)


def test_a_dead_letter_keeps_a_bounded_prefix_and_the_whole_records_fingerprint() -> None:
    value = bytes(range(256)) * 100  # 25,600 bytes, not UTF-8
    key = b"k" * 1000
    d = letter(value=value, key=key).payload
    assert base64.b64decode(d.value_b64) == value[:VALUE_PREFIX_BYTES] and d.value_truncated
    assert d.value_bytes == len(value) and d.value_sha256 == hashlib.sha256(value).hexdigest()
    assert d.key_b64 is not None and base64.b64decode(d.key_b64) == key[:KEY_PREFIX_BYTES]
    assert (d.source_topic, d.source_partition, d.source_offset) == (LAB, 3, 41)


def test_a_small_record_is_kept_whole() -> None:
    d = letter().payload
    assert base64.b64decode(d.value_b64) == b"{not json" and not d.value_truncated


@pytest.mark.parametrize("value, key", [(None, None), ("text, not bytes", 12), (bytearray(b"xy"), bytearray(b"k"))])
def test_a_missing_or_odd_value_or_key_still_makes_a_letter(value: object, key: object) -> None:
    d = letter(value=value, key=key).payload
    if isinstance(value, bytearray):
        assert base64.b64decode(d.value_b64) == bytes(value) and d.key_b64 == base64.b64encode(b"k").decode()
    else:
        assert d.value_b64 == "" and d.value_bytes == 0 and d.key_b64 is None


def test_the_detail_is_bounded_and_printable() -> None:
    d = letter(detail="\x1b[31mred\x00" + "x" * 10_000).payload
    assert len(d.detail) <= DETAIL_MAX_CHARS and "\x1b" not in d.detail and "\x00" not in d.detail


def test_the_id_is_the_source_position_so_a_replay_dead_letters_once() -> None:
    a, b = letter(), letter(timestamp=None, detail="other words")
    assert a.event_id == b.event_id
    assert letter(offset=42).event_id != a.event_id != letter(partition=4).event_id
    held = letter(index=2)
    assert held.event_id not in {a.event_id, letter(index=3).event_id}  # a held event: its place in the record too


def test_the_record_time_is_the_letters_time_when_plausible_so_a_replay_stamps_it_the_same() -> None:
    assert letter().occurred_at == NOW
    assert letter(timestamp=1e20).occurred_at != NOW  # now, at building time


def test_the_worst_record_makes_a_letter_the_sink_decodes_and_the_producer_accepts() -> None:
    worst = letter(value=b"\xff" * 2_000_000, key=b"\x00" * 100_000, timestamp=math.nan, detail="\u202e" * 50_000,
                   offset=2**53 - 1)  # the largest offset the contract holds
    raw = worst.to_bytes()
    assert len(raw) < 16_000  # far below any broker's message limit
    decoded = decode_output(raw, topic=topics.DEADLETTER.name)
    assert isinstance(decoded, ev.DeadLettered) and decoded.event_id == worst.event_id
