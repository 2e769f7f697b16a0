"""The results store's tables (SQLAlchemy 2, typed declarative models; PostgreSQL and SQLite).

Business keys are the primary keys (or unique constraints), so every write of the sink can be an idempotent
``INSERT … ON CONFLICT`` and a redelivered batch or a full replay of the output topics changes nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON everywhere, JSONB on PostgreSQL: comparable and indexable there, and key order does not matter.
JsonType = JSON().with_variant(JSONB(), "postgresql")

#: Whether a result counts (schemas.events.Standing): only ``counted`` results are pushed to SI ASN unasked.
RESULT_STANDINGS = ("counted", "incomplete", "not_recognised")
#: ``pending`` → ``delivered`` | ``rejected``; ``superseded`` retired by a newer version; ``held`` waiting for an
#: operator (an incomplete result), ``void`` withdrawn by one: neither is ever claimed by the pusher.
OUTBOX_STATUSES = ("pending", "delivered", "rejected", "superseded", "held", "void")
DECISION_ACTIONS = ("hold", "release", "void")


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base: one ``metadata`` for ``create_all`` now and Alembic's autogenerate later."""

    #: Every model here is mapped to a Table (SQLAlchemy types it as any FromClause), which the store's Core
    #: inserts and upserts take.
    __table__: ClassVar[Table]


class ResultKey:
    """(nip, activity, version): the business key of a result version and of its detail rows."""

    nip: Mapped[str] = mapped_column(String(18), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    result_version: Mapped[int] = mapped_column(Integer, primary_key=True)


def _belongs_to_result(table: str) -> ForeignKeyConstraint:
    """Detail rows are part of one result version: they cannot exist without it and go with it."""
    return ForeignKeyConstraint(
        ["nip", "activity_id", "result_version"],
        ["results.nip", "results.activity_id", "results.result_version"],
        name=f"fk_{table}_result",
        ondelete="CASCADE",
    )


class Result(ResultKey, Base):
    """One row per result version; exactly one ``current`` row per (nip, activity_id), older ones superseded.

    Older versions are kept (not overwritten) because a rescore or resubmission must stay auditable, and the
    domain rule "the latest result is the one to use" is expressed by ``status``, recomputed by the sink.
    """

    __tablename__ = "results"
    __table_args__ = (
        CheckConstraint("status IN ('current', 'superseded')", name="ck_results_status"),
        CheckConstraint("standing IN ('counted', 'incomplete', 'not_recognised')", name="ck_results_standing"),
    )
    result_id: Mapped[str] = mapped_column(String(36), index=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    session_id: Mapped[str] = mapped_column(String(64), index=True)
    agency_id: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    position_tier: Mapped[str] = mapped_column(String(32))
    blueprint_id: Mapped[str] = mapped_column(String(64))
    blueprint_version: Mapped[str] = mapped_column(String(32))
    jpm: Mapped[float | None] = mapped_column(Float)
    category: Mapped[str | None] = mapped_column(String(32))
    assessed_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    flags: Mapped[list[str]] = mapped_column(JsonType)
    provenance: Mapped[list[str]] = mapped_column(JsonType)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="current", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    #: Whether the version counts: ``incomplete`` is held back from SI ASN until an operator decides,
    #: ``not_recognised`` (organiser not accredited) is never pushed. Rows older than the column are counted.
    standing: Mapped[str] = mapped_column(String(16), default="counted", server_default="counted", index=True)
    standing_detail: Mapped[str | None] = mapped_column(String(500))
    #: Where a susulan was sat (``activity_id`` is the participant's home activity); null otherwise.
    host_activity_id: Mapped[str | None] = mapped_column(String(64))
    #: The institution that ran the session (accreditation registry id); null: BKN itself.
    organiser_id: Mapped[str | None] = mapped_column(String(64))
    #: The name as scheduled, for the agencies' reports (docs/reports.md); null for results stored before 0005.
    participant_name: Mapped[str | None] = mapped_column(String(200))


class CompetencyResult(ResultKey, Base):
    """One competency (M1-M8, S1) of one result version, as SI ASN receives it (``siasn_field``)."""

    __tablename__ = "competency_results"
    __table_args__ = (_belongs_to_result("competency_results"),)
    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    siasn_field: Mapped[str] = mapped_column(String(32))
    raw: Mapped[float] = mapped_column(Float)
    level: Mapped[int] = mapped_column(Integer)
    standard: Mapped[int] = mapped_column(Integer)
    gap: Mapped[int] = mapped_column(Integer)


class SectionScore(ResultKey, Base):
    """The score of one section (Mansoskul, emerging skills, digital literacy) of one result version."""

    __tablename__ = "section_scores"
    __table_args__ = (_belongs_to_result("section_scores"),)
    section: Mapped[str] = mapped_column(String(32), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    level: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    items: Mapped[int] = mapped_column(Integer)
    completion: Mapped[str] = mapped_column(String(16))


class Attendance(Base):
    """The latest attendance status of one participant in one session (by the lab's event time)."""

    __tablename__ = "attendance"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Indexed on its own: the participants table is recomputed from a NIP's attendance rows every batch.
    nip: Mapped[str] = mapped_column(String(18), primary_key=True, index=True)
    activity_id: Mapped[str] = mapped_column(String(64), index=True)
    agency_id: Mapped[str] = mapped_column(String(64), index=True)
    lab_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    rescheduled_to: Mapped[str | None] = mapped_column(String(64))
    rescheduled_from: Mapped[str | None] = mapped_column(String(64))
    last_event_id: Mapped[str] = mapped_column(String(36))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    #: ``occurred_at`` of the event the row reflects (UTC): an older event arriving later must not win.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionSummaryRow(Base):
    """The latest counts of one session, so operators see the no-show rate while check-in is still open."""

    __tablename__ = "session_summaries"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(64), index=True)
    agency_id: Mapped[str] = mapped_column(String(64), index=True)
    lab_id: Mapped[str] = mapped_column(String(64), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checkin_closes_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed: Mapped[bool] = mapped_column(Boolean)
    closed_by_wall_clock: Mapped[bool] = mapped_column(Boolean)
    scheduled: Mapped[int] = mapped_column(Integer)
    checked_in: Mapped[int] = mapped_column(Integer)
    no_show: Mapped[int] = mapped_column(Integer)
    rescheduled: Mapped[int] = mapped_column(Integer)
    unexpected: Mapped[int] = mapped_column(Integer)
    no_show_rate: Mapped[float] = mapped_column(Float)
    final: Mapped[bool] = mapped_column(Boolean)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    #: ``occurred_at`` of the summary event (UTC): a stale summary redelivered later must not win.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    agency_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    #: The institution running the session (accreditation registry id); null: BKN itself.
    organiser_id: Mapped[str | None] = mapped_column(String(64))
    accreditation_warning: Mapped[str | None] = mapped_column(String(500))
    #: UTC offset of the payload's ``starts_at`` in minutes (420 WIB, 480 WITA, 540 WIT): the timestamp columns
    #: keep only the instant, and operators read lab-local times.
    utc_offset_minutes: Mapped[int | None] = mapped_column(Integer)


class Participant(Base):
    """A person the pipeline has seen in attendance, once per NIP: home agency and position tier as last known.

    Not folded from the events as they arrive but recomputed from the stored attendance rows and current
    results of the NIP (``ResultsStore._write_participants``): a restarted worker re-emits and re-orders
    events, and interim facts (a no-show later corrected, a result triggered by whichever event came last)
    must not leave a trace, so only rows that are themselves order-independent feed it. Names stay in the
    schedule: the store keeps no more personal data than it needs.
    """

    __tablename__ = "participants"
    nip: Mapped[str] = mapped_column(String(18), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64), index=True)
    position_tier: Mapped[str | None] = mapped_column(String(32))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeadLetter(Base):
    """A rejected input message, once per source position and content: a reprocessed offset must not count
    twice, and a log that was lost and rebuilt (a broker restarted empty, topics recreated) hands its positions
    out again to other messages, which must not be taken for the earlier ones (``value_sha256``; rows stored
    before revision 0006 have ``""`` and still stand for their whole position)."""

    __tablename__ = "deadletters"
    __table_args__ = (
        UniqueConstraint("source_topic", "source_partition", "source_offset", "value_sha256",
                         name="uq_deadletters_source"),
    )
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(String(2000))
    source_topic: Mapped[str] = mapped_column(String(249))  # Kafka's longest topic name
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)  # Kafka offsets are 64-bit
    value_sha256: Mapped[str] = mapped_column(String(64), server_default="")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SiasnOutbox(Base):
    """A push to SI ASN, written in the same transaction as the result version it carries (transactional outbox).

    ``pending`` until delivered or rejected; a pending (or held) push whose result has been superseded is retired
    (``superseded``) so SI ASN only ever receives the latest result. An incomplete result's pushes start ``held``
    and wait for an operator (``release`` → pending, ``void`` → void); see sinks/siasn/holds.py.
    """

    __tablename__ = "siasn_outbox"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'delivered', 'rejected', 'superseded', 'held', 'void')",
            name="ck_siasn_outbox_status"),
    )
    nip: Mapped[str] = mapped_column(String(18), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    result_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # kompetensi | potensi
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SiasnDecision(Base):
    """An operator's hold, release or void of one result version's pushes: who, when, why, and what it changed.

    Append-only: the trail is the answer to "why did (or didn't) this result reach SI ASN".
    """

    __tablename__ = "siasn_decisions"
    __table_args__ = (
        CheckConstraint("action IN ('hold', 'release', 'void')", name="ck_siasn_decisions_action"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nip: Mapped[str] = mapped_column(String(18), index=True)
    activity_id: Mapped[str] = mapped_column(String(64), index=True)
    result_version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: The outbox status of the version's pushes before and after, e.g. ``held`` → ``pending``.
    #: Comma-separated when the version's two pushes differed (``pending,rejected``).
    previous_status: Mapped[str] = mapped_column(String(64))
    new_status: Mapped[str] = mapped_column(String(16))


class QuarantinedRow(Base):
    """An output event the results store refused (a row the database rejects), once per source position.

    The sink must never stop on one row: the refused event is kept here with its reason, the rest of its batch
    is written and the offsets are committed. Keyed by the Kafka position and the record's SHA-256, so replaying
    the same input quarantines nothing twice and a rebuilt log's new record at a reused position is kept too;
    ``event_json`` is the record as received, cut to ``QUARANTINE_JSON_CHARS``
    (the source position points to the full record while the topic retains it).
    """

    __tablename__ = "sink_quarantine"
    source_topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    source_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value_sha256: Mapped[str] = mapped_column(String(64), primary_key=True, server_default="")
    event_id: Mapped[str | None] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    event_json: Mapped[str] = mapped_column(Text)
    event_bytes: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ReportBuild(Base):
    """One build of an activity's reports (recap, full report, individual reports): its files and their checksums.

    A build is a version: rebuilt from a store that changed (a rescore, a late susulan), the activity gets the next
    version and the files of the old one stay where they are, as delivered. ``fingerprint`` identifies what the
    build read (every current result version, attendance and held-back row), so building again from an unchanged
    store makes no new version.
    """

    __tablename__ = "report_builds"
    activity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fingerprint: Mapped[str] = mapped_column(String(64))
    last_test_day: Mapped[date] = mapped_column(Date)
    results: Mapped[int] = mapped_column(Integer)
    directory: Mapped[str] = mapped_column(String(1000))
    #: [{"kind", "name", "sha256", "bytes"}] relative to ``directory``.
    files: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    reason: Mapped[str | None] = mapped_column(String(200))


class ReportDelivery(Base):
    """A recap or full report handed over: which build, when, where to, by whom. Append-only."""

    __tablename__ = "report_deliveries"
    __table_args__ = (CheckConstraint("kind IN ('recap', 'full')", name="ck_report_deliveries_kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    activity_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)
    delivered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    target: Mapped[str] = mapped_column(String(1000))
    operator: Mapped[str] = mapped_column(String(100))
