"""Building dead-letter events that can always be built and always be sent.

A dead letter is the pipeline's answer to input it cannot accept, so it must never be the thing that fails:
whatever the record's bytes, key or timestamp, :func:`dead_letter` returns an event of bounded size (a prefix
of the original, its length and SHA-256, and the source position, which points to the whole record on the
input topic). An unbounded copy once made a dead letter larger than the producer allows, and the send error
then took the whole batch down with it (issue 12).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from schemas import events as ev

PIPELINE_ID = "cact-pipeline"
#: Bytes of the original value kept in a dead letter; the rest stays at the source position.
VALUE_PREFIX_BYTES = 4096
#: Bytes of the original key kept in a dead letter.
KEY_PREFIX_BYTES = 256
DETAIL_MAX_CHARS = 2000


def record_time(timestamp: float | None, now: datetime | None = None) -> datetime:
    """The record's broker timestamp (seconds) when it is a plausible time, else ``now``.

    Kafka timestamps are whatever the producer set: year 82269, negative, or 2**63-1 ms all reach us, and
    ``datetime.fromtimestamp`` raises on them."""
    if isinstance(timestamp, (int, float)):
        try:
            at = datetime.fromtimestamp(timestamp, UTC)
        except (ValueError, OverflowError, OSError):  # NaN, year 0, year 82269 …
            pass
        else:
            if ev.in_contract_range(at):  # the sink decodes our dead letters with the contract's time range
                return at
    return now or datetime.now(UTC)


def dead_letter(*, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                timestamp: float | None, reason: str, detail: str, index: int | None = None) -> ev.DeadLettered:
    """The id is derived from the source position and the bytes there, so re-processing a message dead-letters
    it once, and a lost log rebuilt by the labs' resend (positions handed out again to other messages) cannot
    make a new dead letter look like the old one at its position.

    ``index``: a lab event held until its schedule arrived and refused then (streams/processor.py ``LabTrust``)
    is dead-lettered on its own, after its record was taken; its id names its place in the record too."""
    raw = value if isinstance(value, (bytes, bytearray)) else b""
    digest = hashlib.sha256(raw).hexdigest()
    payload = {
        "reason": reason, "detail": ev.printable(detail, DETAIL_MAX_CHARS), "source_topic": topic,
        "source_partition": partition, "source_offset": offset,
        "key_b64": base64.b64encode(key[:KEY_PREFIX_BYTES]).decode() if isinstance(key, (bytes, bytearray)) else None,
        "value_b64": base64.b64encode(raw[:VALUE_PREFIX_BYTES]).decode(),
        "value_bytes": len(raw), "value_sha256": digest,
        "value_truncated": len(raw) > VALUE_PREFIX_BYTES,
    }
    return ev.new_event(ev.DeadLettered, lab_id=PIPELINE_ID, occurred_at=record_time(timestamp),
                        event_id=ev.derived_id("deadletter", topic, partition, offset, digest,
                                                *(() if index is None else ("held", index))),
                        payload=payload)
