"""Building dead-letter events: the original bytes and where they came from, so nothing is silently dropped."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from schemas import events as ev
from streams import metrics

PIPELINE_ID = "cact-pipeline"


def dead_letter(*, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                timestamp: float | None, reason: str, detail: str) -> ev.DeadLettered:
    """The id is derived from the source position, so re-processing a message dead-letters it once."""
    metrics.DEADLETTERS.labels(reason=reason, source_topic=topic).inc()
    occurred = datetime.fromtimestamp(timestamp, UTC) if timestamp else datetime.now(UTC)
    return ev.new_event(
        ev.DeadLettered, lab_id=PIPELINE_ID, occurred_at=occurred,
        event_id=ev.derived_id("deadletter", topic, partition, offset),
        payload={
            "reason": reason, "detail": detail[:2000], "source_topic": topic, "source_partition": partition,
            "source_offset": offset, "key_b64": base64.b64encode(key).decode() if key is not None else None,
            "value_b64": base64.b64encode(value or b"").decode(),
        },
    )
