"""The results store: idempotent, batched upserts of the pipeline's output events (SQLite or PostgreSQL).

A batch is one transaction; every row is keyed by its business key, so redelivering a batch or replaying
the topics from the start changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from schemas import events as ev
from schemas.domain import AttendanceStatus as St
from sinks import models as m

SCHEDULED_STATUSES = (St.SCHEDULED, St.CHECKED_IN, St.NO_SHOW, St.RESCHEDULED)


def _utc(at: datetime) -> datetime:
    """Stored in UTC: SQLite compares timestamps as text, and labs write in three offsets."""
    return at.astimezone(UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _: Any) -> None:  # WAL: the operator page reads while the sink writes
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

        return engine
    return create_engine(url, pool_pre_ping=True)


class ResultsStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert

    def create_schema(self) -> None:
        m.Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------------------------------------
    # Writes
    # ---------------------------------------------------------------------------------------------

    def _upsert(self, session: Session, table: Any, rows: list[dict[str, Any]], keys: Sequence[str],
                update_cols: Iterable[str] | None = None, where: Any = None) -> None:
        """INSERT … ON CONFLICT (keys) DO UPDATE/NOTHING; the one place that knows both dialects."""
        if not rows:
            return
        stmt = self._insert(table)
        if update_cols is None:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        else:
            stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                              set_={c: stmt.excluded[c] for c in update_cols}, where=where)
        session.execute(stmt, rows)

    def write_batch(self, batch: Sequence[ev.Event]) -> None:
        results: dict[tuple[str, str, int], ev.ParticipantScored] = {}
        attendance: dict[tuple[str, str], ev.AttendanceChanged] = {}
        summaries: dict[str, ev.SessionSummary] = {}
        deadletters: dict[str, ev.DeadLettered] = {}
        for e in batch:
            if isinstance(e, ev.ParticipantScored):
                p = e.payload
                results[(p.nip, p.activity_id, p.result_version)] = e
            elif isinstance(e, ev.AttendanceChanged):
                k = (e.payload.session_id, e.payload.nip)
                if k not in attendance or e.occurred_at >= attendance[k].occurred_at:
                    attendance[k] = e
            elif isinstance(e, ev.SessionSummary):
                k2 = e.payload.session_id
                if k2 not in summaries or e.occurred_at >= summaries[k2].occurred_at:
                    summaries[k2] = e
            elif isinstance(e, ev.DeadLettered):
                deadletters[str(e.event_id)] = e
        with Session(self.engine) as session, session.begin():
            self._write_results(session, list(results.values()))
            self._upsert(session, m.Attendance.__table__, [self._attendance_row(e) for e in attendance.values()],
                         ["session_id", "nip"],
                         ["activity_id", "agency_id", "status", "late", "rescheduled_to", "rescheduled_from",
                          "last_event_id", "updated_at"],
                         where=m.Attendance.__table__.c.updated_at <= self._excluded_updated_at())
            self._upsert(session, m.SessionSummaryRow.__table__, [
                {**e.payload.model_dump(mode="python"), "updated_at": _utc(e.occurred_at)} for e in summaries.values()
            ], ["session_id"], ["activity_id", "agency_id", "scheduled", "checked_in", "no_show", "rescheduled",
                                "unexpected", "no_show_rate", "final", "updated_at"],
                where=m.SessionSummaryRow.__table__.c.updated_at <= self._excluded_updated_at())
            self._upsert(session, m.DeadLetter.__table__, [
                {"event_id": str(e.event_id), "occurred_at": _utc(e.occurred_at),
                 **e.payload.model_dump(include={"reason", "detail", "source_topic", "source_partition", "source_offset"})}
                for e in deadletters.values()], ["event_id"])

    @staticmethod
    def _excluded_updated_at() -> Any:
        return text("excluded.updated_at")

    @staticmethod
    def _attendance_row(e: ev.AttendanceChanged) -> dict[str, Any]:
        p = e.payload
        return {"session_id": p.session_id, "nip": p.nip, "activity_id": p.activity_id, "agency_id": p.agency_id,
                "status": p.status.value, "late": p.late, "rescheduled_to": p.rescheduled_to,
                "rescheduled_from": p.rescheduled_from, "last_event_id": str(e.event_id), "updated_at": _utc(e.occurred_at)}

    def _write_results(self, session: Session, batch: list[ev.ParticipantScored]) -> None:
        if not batch:
            return
        rows, comps, secs = [], [], []
        for e in batch:
            p = e.payload
            key = {"nip": p.nip, "activity_id": p.activity_id, "result_version": p.result_version}
            payload = p.model_dump(mode="json")
            rows.append({**key, "result_id": str(p.result_id), "event_id": str(e.event_id), "session_id": p.session_id,
                         "agency_id": p.agency_id, "purpose": p.purpose.value, "position_tier": p.position_tier.value,
                         "blueprint_id": p.blueprint_id, "blueprint_version": p.blueprint_version, "jpm": p.jpm,
                         "category": p.category, "assessed_on": p.assessed_on, "valid_until": p.valid_until,
                         "flags": payload["flags"], "provenance": payload["provenance"], "payload": payload,
                         "status": "current"})
            comps += [{**key, "code": c.code.value, "siasn_field": c.siasn_field, "raw": c.raw, "level": c.level,
                       "standard": c.standard, "gap": c.gap} for c in p.competencies]
            secs += [{**key, "section": s.section.value, "score": s.score, "level": s.level, "answered": s.answered,
                      "items": s.items, "completion": s.completion} for s in p.sections]
        self._upsert(session, m.Result.__table__, rows, ["nip", "activity_id", "result_version"])
        self._upsert(session, m.CompetencyResult.__table__, comps, ["nip", "activity_id", "result_version", "code"])
        self._upsert(session, m.SectionScore.__table__, secs, ["nip", "activity_id", "result_version", "section"])
        # Exactly one current version per (nip, activity): the highest; older ones are kept, superseded.
        r = m.Result
        for nip, activity in {(e.payload.nip, e.payload.activity_id) for e in batch}:
            top = select(func.max(r.result_version)).where(r.nip == nip, r.activity_id == activity).scalar_subquery()
            session.execute(update(r).where(r.nip == nip, r.activity_id == activity, r.result_version < top,
                                            r.status != "superseded").values(status="superseded"))

    # ---------------------------------------------------------------------------------------------
    # Reads
    # ---------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        a = m.Attendance
        with Session(self.engine) as s:
            by_status = dict(s.execute(select(a.status, func.count()).group_by(a.status)).all())
            results = s.scalar(select(func.count()).select_from(m.Result).where(m.Result.status == "current")) or 0
            dl = dict(s.execute(select(m.DeadLetter.reason, func.count()).group_by(m.DeadLetter.reason)).all())
        scheduled = sum(by_status.get(x.value, 0) for x in SCHEDULED_STATUSES)
        no_shows = by_status.get(St.NO_SHOW.value, 0)
        return {
            "participants_scheduled": scheduled,
            "participants_checked_in": by_status.get(St.CHECKED_IN.value, 0),
            "no_shows": no_shows,
            "rescheduled": by_status.get(St.RESCHEDULED.value, 0),
            "unexpected": by_status.get(St.UNEXPECTED.value, 0),
            "no_show_rate": round(no_shows / scheduled, 4) if scheduled else 0.0,
            "results_in_store": results,
            "deadletters": sum(dl.values()),
            "deadletters_by_reason": dict(sorted(dl.items())),
        }

    def current_results(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [row.payload for row in s.scalars(select(m.Result).where(m.Result.status == "current"))]
