"""The worker and its results-store sink rebuilt on Quix Streams: the project's rules, Quix's plumbing.

``python -m bench.peers.quix_peer`` runs until SIGTERM or SIGINT, with the project's settings from the
environment (``CACT_*``, ``KAFKA_*``: ``schemas/settings.py``). It exists so the benchmark can say what the
worker's plumbing (Faust, the write-behind overlays, the chunked commit protocol, the sink process) costs
against a mainstream alternative a competent user of that library would write, doing the same work.

What is the project's and what is Quix's:

* **The rules are the project's.** Each record is decoded and unpacked with ``schemas.decode`` (the record's
  key checked, the size capped as the worker does) and every event goes through
  ``streams.processor.SessionProcessor.handle``, built from the same settings as the worker's
  (``streams/app.py``: blueprints with their reload, scoring policy, accreditation registry, attendance
  policy, state limits, lab trust). Rows are written by ``sinks.store.ResultsStore.write_batch``, the project's
  sink code, with the Event objects Quix hands the sink (no JSON round trip in between).
* **The plumbing is Quix's.** The three input topics are one ``StreamingDataFrame`` (``concat``), so a session's
  schedule, lab and control records share one state store and Quix's timestamp alignment orders them across
  topics. State is Quix's per-message-key ``State`` (RocksDB, changelog topics: Quix's defaults); the message
  key is the session id, and all of a session's participants are in its partition, so one key's State holds
  both of the processor's maps under the prefixes ``s:`` and ``p:``. Outputs go to a ``BatchingSink``; Quix
  flushes the sinks at each checkpoint and commits the input offsets only after they flushed, which is the
  commit protocol the project's worker implements itself (outputs acknowledged before input is).

Honest deviations from the project's worker:

* **State is read and written per message, not per batch.** The ``State`` views are write-behind for one
  message only (the processor mutates records in place and puts them back, as with the worker's overlays):
  each message deserialises the records it touches from Quix's transaction and serialises the changed ones
  back. Quix itself buffers them until the checkpoint and writes each key's changelog record then.
* **The partition-wide registry of unscheduled sessions is per session here.** The processor keeps the
  sessions that have lab events but no schedule under ``#unscheduled/<partition>`` in the sessions map; Quix
  state is scoped to the message key, so that record lives under each session's own key. The caps it enforces
  (``CACT_UNSCHEDULED_SESSIONS_MAX``, ``CACT_HELD_EVENTS_MAX`` per partition) therefore count per session. The
  generated day never comes near them, so its rows are unaffected.
* **Poisoned events are parked per message.** An event on which the processor fails with anything but
  ``Rejected`` is dead-lettered ``processing_error`` and its message is replayed from the state before it
  (the worker does the same per chunk); nothing of the failed attempt reaches Quix state.
* **Outputs go to the store directly**: there are no output topics and no separate sink consumer group, the
  deployment a Quix user would pick (the worker's ``sink_in_worker``). The events the processor re-keys to an
  input topic (a reschedule's arrival side) are produced back to it by the sink, flushed before the
  checkpoint commits (``StoreSink``).
* **Not ported:** the wall-clock close of check-in windows (``streams/wall_clock.py``), the silent-lab watch,
  the broker-loss check, ``/metrics`` and the operator pages, the sink's quarantine of rows the database
  refuses (a refusal stops the app here; an outage pauses it through ``SinkBackpressureError`` and the
  checkpoint is replayed, which the idempotent store allows).

What Tansu (the embedded broker) needed: its DescribeConfigs returns no entries for topics created without
explicit configs, and Quix derives its changelog topics' retention from the input topics' ``retention.ms``
(KeyError otherwise), so the input topics' broker config is given Kafka's default (seven days) when it is
missing. A waiting fetch lasts ``fetch.wait.max.ms`` in full on Tansu, so it is the worker's
``CACT_FETCH_MAX_WAIT_MS``. Everything else is Quix's default: topic auto-creation (the changelog topics),
changelog topics on, at-least-once, recovery from the changelog (tried: state directory deleted mid-day).
Joining the group takes about ``session.timeout.ms`` on Tansu (10 s by default), before the first message.

Cross-topic order is Quix's: records of one partition number are taken across the three topics in timestamp
order. The project's worker does not align topics, so a schedule event sent after a session's lab events (a
reschedule after the sheets, say) can be applied in a different order by the two, with different rows.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, MutableMapping
from datetime import timedelta
from typing import Any, cast

from quixstreams import Application, State, message_context
from quixstreams.kafka import Producer
from quixstreams.models import Topic
from quixstreams.sinks.base import BatchingSink, SinkBackpressureError, SinkBatch

from schemas import topics
from schemas.accreditation import AccreditationRegistry
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Reason, Rejected, at_index, decode_event, unpack
from schemas.events import Event
from schemas.settings import Settings
from sinks.store import ResultsStore
from streams.deadletter import dead_letter
from streams.policies import AttendancePolicy, LabTrust, StateLimits
from streams.processor import Position, SessionProcessor
from streams.scoring import ScoringPolicy

log = logging.getLogger("cact.quix_peer")

INPUT_NAMES = {t.name for t in topics.INPUT_TOPICS}
#: Apache Kafka's log.retention.hours default (168 h), in ms.
KAFKA_DEFAULT_RETENTION_MS = str(7 * 24 * 3600 * 1000)


class StateView(MutableMapping[str, Any]):
    """One of the processor's two maps over a Quix ``State``, write-behind for one message.

    The processor changes a record it read in place and then puts it back; a second read of the same key in
    the same message must see those changes, which Quix's ``State.get`` (a fresh deserialised copy each time)
    would not. So reads are cached and writes kept until :meth:`flush`, after the whole message succeeded."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.state: State | None = None
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()

    def bind(self, state: State) -> None:
        self.state = state
        self._cache.clear()
        self._dirty.clear()

    def flush(self) -> None:
        assert self.state is not None
        for key in self._dirty:
            self.state.set(self.prefix + key, self._cache[key])
        self._dirty.clear()

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._cache:
            assert self.state is not None, "state is read while processing a message"
            self._cache[key] = self.state.get(self.prefix + key)
        value = self._cache[key]
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: Any) -> None:
        self._cache[key] = value
        self._dirty.add(key)

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("state is never deleted by the processor")

    def __iter__(self) -> Iterator[str]:  # Quix State cannot list a key's entries; the processor never asks
        raise NotImplementedError("a Quix State view cannot be iterated")

    def __len__(self) -> int:
        raise NotImplementedError("a Quix State view has no length")


class StoreSink(BatchingSink):
    """The results store as a Quix sink: each input partition's outputs in one ``write_batch`` transaction.

    The few outputs that are input again (a reschedule's arrival side, re-keyed to its target session) are
    produced back to their topic here and flushed before ``write`` returns, so, like the rows, they are on the
    broker before Quix commits the offsets of the input that made them. Routing them in the sink keeps the
    dataframe a single chain: a second branch (``filter`` … ``to_topic``) makes Quix pickle-copy every output
    event for it (``_resolve_branching``), which cost 14% of the peer's CPU in a profile."""

    def __init__(self, settings: Settings, producer: Producer, inputs: dict[str, Topic]) -> None:
        super().__init__()
        self.settings = settings
        self.producer = producer
        self.inputs = inputs
        self.store: ResultsStore | None = None
        self.rows = 0
        self.fed_back = 0

    def setup(self) -> None:
        self.store = ResultsStore(self.settings.database_url)
        self.store.create_schema()

    def write(self, batch: SinkBatch) -> None:
        assert self.store is not None, "the sink is started before it writes"
        events: list[Event] = []
        again: list[Event] = []
        for item in batch:
            (again if item.value.topic.name in INPUT_NAMES else events).append(item.value)
        if again:
            self._feed_back(again)
        try:
            self.store.write_batch(events)
        except Exception as exc:
            if not self.store.is_outage(exc):
                raise
            log.warning("results store unavailable (%s): pausing", type(exc).__name__)
            self.store.dispose()
            raise SinkBackpressureError(retry_after=self.settings.sink_retry_base_seconds) from exc
        self.rows += len(events)

    def _feed_back(self, events: list[Event]) -> None:
        failed: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))

        for e in events:
            self.producer.produce(topic=self.inputs[e.topic.name].name, key=e.key(), value=e.to_bytes(),
                                  on_delivery=delivered)
        left = self.producer.flush(self.settings.produce_timeout_seconds)
        if left or failed:  # nothing is committed: the checkpoint is replayed by the next worker
            raise RuntimeError(f"{left} re-keyed events not acknowledged, {len(failed)} refused: {failed[:1]}")
        self.fed_back += len(events)


class Peer:
    """The processing of one record: decode, unpack, the processor's rules over the key's Quix State."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        blueprints = BlueprintRegistry.from_settings(settings)
        self.sessions = StateView("s:")
        self.participants = StateView("p:")
        self.processor = SessionProcessor(
            blueprints, ScoringPolicy.load(settings.scoring_policy), self.sessions, self.participants,
            AttendancePolicy(late_admitted=settings.late_checkin_admitted), reload=blueprints.reload,
            limits=StateLimits(unscheduled_sessions=settings.unscheduled_sessions_max,
                               unexpected_participants=settings.unexpected_participants_max,
                               held_events=settings.held_events_max),
            trust=LabTrust(before_start=timedelta(hours=settings.lab_time_before_start_hours),
                           after_end=timedelta(hours=settings.lab_time_after_end_hours)),
            accreditation=AccreditationRegistry.from_settings(settings))
        self.events = 0
        self.rejected = 0
        self.parked = 0

    def __call__(self, value: bytes, key: bytes | None, timestamp: int, _headers: Any, state: State) -> list[Event]:
        ctx = message_context()
        parked: dict[int | None, str] = {}
        while True:  # once, or again from the state before it for each poisoned event of the message
            self.sessions.bind(state)
            self.participants.bind(state)
            try:
                out = self._apply(value, key, ctx.topic, ctx.partition, ctx.offset, timestamp, parked)
            except _Poisoned as poison:
                parked[poison.index] = poison.detail
                self.parked += 1
                continue
            self.sessions.flush()
            self.participants.flush()
            return out

    def _apply(self, value: bytes, key: bytes | None, topic: str, partition: int, offset: int, timestamp: int,
               parked: dict[int | None, str]) -> list[Event]:
        self.processor.scope = str(partition)
        out: list[Event] = []
        failures: list[tuple[str, str]] = []
        try:
            decoded = list(unpack(decode_event(value, topic=topic, key=key,
                                               max_bytes=self.settings.max_message_bytes), topic=topic))
        except Rejected as exc:
            decoded = []
            failures.append((exc.reason, exc.detail))
        for index, event in decoded:
            self.events += 1
            if isinstance(event, Rejected):
                failures.append((event.reason, event.detail))
                continue
            if index in parked:
                failures.append((Reason.PROCESSING_ERROR, at_index(index) + parked[index]))
                continue
            position: Position = (topic, partition, offset, index)
            self.processor.position = position
            try:
                out.extend(self.processor.handle(event))
            except Rejected as exc:
                failures.append((exc.reason, at_index(index) + exc.detail))
            except Exception as exc:
                log.exception("processing failed at %s[%s]@%s %s: the event is parked", topic, partition, offset,
                              at_index(index))
                raise _Poisoned(index, f"{type(exc).__name__}: {exc}") from None
        if failures:
            self.rejected += len(failures)
            out.append(dead_letter(topic=topic, partition=partition, offset=offset, key=key, value=value,
                                   timestamp=timestamp / 1000, reason=failures[0][0],
                                   detail="; ".join(d for _, d in failures)))
        return out


class _Poisoned(Exception):
    def __init__(self, index: int | None, detail: str) -> None:
        super().__init__(detail)
        self.index, self.detail = index, detail


def build_app(settings: Settings) -> tuple[Application, StoreSink, Peer]:
    app = Application(
        broker_address=settings.bootstrap_servers,
        consumer_group=f"{settings.app_id}-quix",
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval_seconds,
        state_dir=settings.data_dir / "quix-state",
        consumer_extra_config={"fetch.wait.max.ms": settings.fetch_max_wait_ms,
                               "session.timeout.ms": int(settings.group_session_timeout_seconds * 1000),
                               "heartbeat.interval.ms": int(settings.group_heartbeat_seconds * 1000),
                               **_security(settings)},
        producer_extra_config={"linger.ms": 5, **_security(settings)},
        loglevel=cast(Any, os.environ.get("CACT_QUIX_LOGLEVEL", "INFO")),
    )
    # Values in as bytes: the decoder wants the record's own bytes (and checks its key).
    inputs = {t.name: app.topic(t.name, value_deserializer="bytes", key_deserializer="bytes")
              for t in topics.INPUT_TOPICS}
    for topic in inputs.values():
        # Tansu answers DescribeConfigs with no entries for a topic created without explicit configs, and Quix
        # derives its changelog topics' retention from the input topics' "retention.ms" (a KeyError without it).
        # What a Kafka broker would report for them: its default, seven days.
        topic.broker_config.extra_config.setdefault("retention.ms", KAFKA_DEFAULT_RETENTION_MS)
    frames = [app.dataframe(topic) for topic in inputs.values()]
    sdf = frames[0]
    for other in frames[1:]:
        sdf = sdf.concat(other)
    peer = Peer(settings)
    sink = StoreSink(settings, app.get_producer(), inputs)
    sdf.apply(peer, stateful=True, metadata=True, expand=True).sink(sink)
    return app, sink, peer


def _security(settings: Settings) -> dict[str, Any]:
    """librdkafka's names for the project's Kafka security settings (schemas/kafka_config.py has the others)."""
    from schemas.kafka_config import is_sasl, sasl_password

    conf: dict[str, Any] = {"security.protocol": settings.kafka_security_protocol.lower()}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        for name, path in (("ssl.ca.location", settings.kafka_ssl_cafile),
                           ("ssl.certificate.location", settings.kafka_ssl_certfile),
                           ("ssl.key.location", settings.kafka_ssl_keyfile)):
            if path is not None:
                conf[name] = str(path)
    if is_sasl(settings):
        conf.update({"sasl.mechanism": settings.kafka_sasl_mechanism or "PLAIN",
                     "sasl.username": settings.kafka_sasl_username, "sasl.password": sasl_password(settings)})
    return conf


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    app, sink, peer = build_app(settings)
    log.info("quix peer: group %s-quix on %s", settings.app_id, settings.bootstrap_servers)
    print("ready", file=sys.stderr, flush=True)  # what the bench waits for before it counts CPU
    app.run()  # Quix installs its own SIGTERM/SIGINT handlers: it stops after the current message and commits
    log.info("quix peer stopped: %d events, %d refused, %d parked, %d rows written, %d re-keyed events sent",
             peer.events, peer.rejected, peer.parked, sink.rows, sink.fed_back)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
