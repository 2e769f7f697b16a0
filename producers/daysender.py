"""Sending a simulated day to Kafka as the labs would: the schedule first, then the lab events as they
happen, with the delivery faults of the day applied on the way.

What is a delivery fault and what is not: a lab whose network is down keeps producing events (their
``occurred_at`` is when they happened) but they reach Kafka only when it comes back, after what the other labs
sent meanwhile; an emitter that lost an acknowledgement sends an event again, same ``event_id``; a careless
integration sends malformed messages in the middle of the stream. Clock skew is not delivery (the lab's clock
stamps the events) and is already in the events (``producers/simulator.py``). The plan of what is sent, in
which order, is a pure function (``delivery_plan``) so tests can check each fault without a broker.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from producers.emitter import LabEmitter
from producers.simulator import SimDay
from producers.truth import Outage
from schemas import events as ev
from schemas.settings import Settings

#: Kinds of delivery: an event in its place, one an offline lab held back, a resend, a malformed message.
EVENT, SPOOLED, DUPLICATE, MALFORMED = "event", "spooled", "duplicate", "malformed"


@dataclass(frozen=True)
class Delivery:
    topic: str
    kind: str
    event: ev.Event | None = None
    raw: bytes | None = None
    key: bytes | None = None


def _event(e: ev.Event, kind: str = EVENT) -> Delivery:
    return Delivery(topic=e.topic.name, kind=kind, event=e, key=e.key().encode())


def _true_time(day: SimDay, e: ev.Event) -> datetime:
    """When it really happened: the event's time minus its lab's clock error."""
    return e.occurred_at - timedelta(seconds=day.faults.clock_skew.get(e.lab_id, 0.0))


def _with_outages(day: SimDay, lab: list[ev.Event]) -> list[Delivery]:
    """An offline lab's events from its outage wait in its spool, in their order, and go out when the lab is back:
    as soon as the day's clock (the latest true time sent) reaches the end of the outage."""
    outages: dict[str, Outage] = {o.lab_id: o for o in day.faults.outages}
    spools: dict[str, list[ev.Event]] = {lab_id: [] for lab_id in outages}
    out: list[Delivery] = []
    clock: datetime | None = None
    for e in lab:
        at = _true_time(day, e)
        clock = at if clock is None or at > clock else clock
        for lab_id in [k for k, o in outages.items() if clock >= o.end]:
            out.extend(_event(held, SPOOLED) for held in spools.pop(lab_id))
            del outages[lab_id]
        o = outages.get(e.lab_id)
        if o is not None and o.start <= at < o.end:
            spools[e.lab_id].append(e)
        else:
            out.append(_event(e))
    for held in spools.values():  # outages lasting past the day's last event
        out.extend(_event(e, SPOOLED) for e in held)
    return out


def _with_duplicates(day: SimDay, phase: list[Delivery]) -> list[Delivery]:
    """Each chosen event is sent again ``delay`` deliveries after the original (never before it)."""
    if not day.faults.duplicates:
        return phase
    later: dict[int, list[Delivery]] = {}
    for i, d in enumerate(phase):
        delay = day.faults.duplicates.get(d.event.event_id) if d.event is not None else None
        if delay is not None and d.event is not None:
            copy = Delivery(topic=d.topic, kind=DUPLICATE, raw=d.event.to_bytes(), key=d.key)
            later.setdefault(min(i + delay, len(phase) - 1), []).append(copy)
    out: list[Delivery] = []
    for i, d in enumerate(phase):
        out.append(d)
        out.extend(later.get(i, ()))
    return out


def _with_malformed(day: SimDay, phase: list[Delivery]) -> list[Delivery]:
    out = list(phase)
    spots = day.faults.malformed_at or [1.0] * len(day.malformed)
    placed = sorted(zip(spots, range(len(day.malformed))), reverse=True)  # from the back: indices stay valid
    for spot, n in placed:
        topic, raw = day.malformed[n]
        key = day.deadletters[n].key if n < len(day.deadletters) else None
        out.insert(int(spot * len(phase)), Delivery(topic=topic, kind=MALFORMED, raw=raw,
                                                    key=key.encode() if key else None))
    return out


def delivery_plan(day: SimDay) -> tuple[list[Delivery], list[Delivery]]:
    """What is sent, in order: the schedule phase, then the lab phase (outages, duplicates, malformed)."""
    schedule = _with_duplicates(day, [_event(e) for e in day.schedule])
    lab = _with_malformed(day, _with_duplicates(day, _with_outages(day, day.lab)))
    return schedule, lab


#: ``progress(phase, done, total)``: how far a phase of the day has been sent; the command line draws it.
Progress = Callable[[str, int, int], None]


def send_day(settings: Settings, day: SimDay, progress: Progress | None = None, *,
             rate: float | None = None) -> Counter[str]:
    """Send the schedule first (it exists days before the exam), then the lab events in the order the labs
    deliver them. ``rate``: events per second, paced on the wall clock; None sends as fast as possible.
    Returns how many messages of each kind were sent."""
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive (or None: as fast as possible)")
    phases = delivery_plan(day)
    sent: Counter[str] = Counter()
    report = progress or (lambda phase, done, total: None)
    with LabEmitter(settings) as emitter:
        started, n = time.monotonic(), 0
        for label, batch in zip(("sending schedule", "sending lab events"), phases):
            report(label, 0, len(batch))
            for i, d in enumerate(batch, 1):
                if rate is not None:
                    wait = started + n / rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                if d.raw is not None:
                    emitter.send_raw(d.topic, d.raw, d.key)
                else:
                    assert d.event is not None
                    emitter.send(d.event)
                sent[d.kind] += 1
                n += 1
                if i % 500 == 0 or rate is not None and i % 20 == 0:
                    report(label, i, len(batch))
            emitter.flush()
            report(label, len(batch), len(batch))
    return sent
