"""The lab emitter: how exam labs put contract-v1 events on Kafka (kafka-python).

Every event is validated against the contract before it is sent, so an invalid event is an error for the
caller and never reaches the broker. ``acks=all`` and the contract's key (the session id) give durable,
correctly partitioned delivery; ``event_id`` makes a resend harmless downstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from kafka import KafkaProducer
from pydantic import ValidationError

from schemas.decode import Rejected, decode_event
from schemas.events import Event
from schemas.settings import Settings
from streams.kafka import kafka_python_kwargs


class InvalidEvent(ValueError):
    """The event breaks contract v1; ``reason`` is the same code the worker would dead-letter it with."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def validate(event: Event | dict[str, Any] | bytes | str) -> Event:
    """Accept a built event, a dict or raw JSON; return the validated event or raise InvalidEvent."""
    if isinstance(event, Event):
        return event
    try:
        raw = event if isinstance(event, (bytes, str)) else orjson.dumps(event, default=str)
        return decode_event(raw)
    except Rejected as exc:
        raise InvalidEvent(exc.reason, exc.detail) from None
    except (TypeError, ValidationError) as exc:
        raise InvalidEvent("invalid_field", str(exc)) from None


class LabEmitter:
    def __init__(self, settings: Settings, *, linger_ms: int = 20, **producer_options: Any) -> None:
        self._producer = KafkaProducer(
            acks="all", linger_ms=linger_ms, retries=10, max_in_flight_requests_per_connection=1,
            **kafka_python_kwargs(settings), **producer_options,
        )

    def send(self, event: Event | dict[str, Any] | bytes | str) -> None:
        checked = validate(event)
        self._producer.send(checked.topic.name, key=checked.key().encode(), value=checked.to_bytes())

    def send_all(self, events: Iterable[Event]) -> int:
        n = 0
        for e in events:
            self.send(e)
            n += 1
        return n

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Bypass validation: only the simulator uses it, to inject malformed input on purpose."""
        self._producer.send(topic, key=key, value=value)

    def flush(self, timeout: float | None = 60) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> "LabEmitter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
