"""The results store's tables (SQLAlchemy 2). Business keys are the primary keys, so upserts are idempotent."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ResultKey:
    """(nip, activity, version): the business key of a result version and of its detail rows."""

    nip: Mapped[str] = mapped_column(String(18), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    result_version: Mapped[int] = mapped_column(Integer, primary_key=True)


class Result(ResultKey, Base):
    """One row per result version; exactly one ``current`` row per (nip, activity_id), older ones superseded."""

    __tablename__ = "results"
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
    flags: Mapped[list[str]] = mapped_column(JSON)
    provenance: Mapped[list[str]] = mapped_column(JSON)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="current", index=True)


class CompetencyResult(ResultKey, Base):
    __tablename__ = "competency_results"
    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    siasn_field: Mapped[str] = mapped_column(String(32))
    raw: Mapped[float] = mapped_column(Float)
    level: Mapped[int] = mapped_column(Integer)
    standard: Mapped[int] = mapped_column(Integer)
    gap: Mapped[int] = mapped_column(Integer)


class SectionScore(ResultKey, Base):
    __tablename__ = "section_scores"
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
    nip: Mapped[str] = mapped_column(String(18), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(64), index=True)
    agency_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    rescheduled_to: Mapped[str | None] = mapped_column(String(64))
    rescheduled_from: Mapped[str | None] = mapped_column(String(64))
    last_event_id: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionSummaryRow(Base):
    __tablename__ = "session_summaries"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[str] = mapped_column(String(64))
    scheduled: Mapped[int] = mapped_column(Integer)
    checked_in: Mapped[int] = mapped_column(Integer)
    no_show: Mapped[int] = mapped_column(Integer)
    rescheduled: Mapped[int] = mapped_column(Integer)
    unexpected: Mapped[int] = mapped_column(Integer)
    no_show_rate: Mapped[float] = mapped_column(Float)
    final: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeadLetter(Base):
    __tablename__ = "deadletters"
    __table_args__ = (UniqueConstraint("source_topic", "source_partition", "source_offset"),)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(String(2000))
    source_topic: Mapped[str] = mapped_column(String(128))
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
