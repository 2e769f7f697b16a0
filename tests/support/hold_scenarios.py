"""A result's standing in the results store and the SI ASN outbox, and operators' decisions on its pushes
(and the session-summary columns the same schema revision added).

Scenarios shared by SQLite (tests/unit/sinks/siasn/test_siasn_holds_sqlite.py) and PostgreSQL
(tests/integration/sinks/test_siasn_holds_postgres.py), like ``StoreCases`` (support/store_scenarios.py): the
outbox must behave the same on both dialects. ``store`` is a migrated, empty ResultsStore (support.database.reset);
the pusher runs against a fake SI ASN on an injected clock, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from schemas import events as ev
from sinks import models as m
from sinks.siasn import holds
from sinks.siasn.errors import SiasnRejected, SiasnUnavailable
from sinks.siasn.push import OutboxPusher, outbox_status, pushed_results, results_by_standing, retry_rejected
from sinks.store import ResultsStore

NIP_A, NIP_B, NIP_C = "199001012015031001", "198505122010012002", "199203032018011003"
ACTIVITY = "ACT-2026-11"
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
OPERATOR = "siti.rahayu"


class Rejected(SiasnRejected):
    """What the fake raises where SI ASN refuses the data: the port's own error."""


class Unavailable(SiasnUnavailable):
    """What the fake raises where SI ASN is away: the port's own error."""


class FakeSiasn:
    """Counts the saves per NIP; a NIP in ``reject`` is refused as SI ASN refuses unknown records."""

    def __init__(self) -> None:
        self.saved: dict[str, int] = {}
        self.reject: set[str] = set()

    async def save_kompetensi(self, nip: str, levels: dict[str, int], *, tahun: int | None = None) -> None:
        if nip in self.reject:
            raise Rejected("pnsId tidak ditemukan")
        self.saved[nip] = self.saved.get(nip, 0) + 1

    async def holds_kompetensi(self, nip: str, levels: dict[str, int], *, tahun: int | None = None) -> bool:
        return nip in self.saved

    async def save_potensi(self, nip: str, potensi: dict[str, float]) -> None:
        raise AssertionError("no potential in these results")

    async def holds_potensi(self, nip: str, potensi: dict[str, float]) -> bool:
        return False


def with_standing(e: ev.ParticipantScored, standing: str, detail: str | None = None,
                  **fields: Any) -> ev.ParticipantScored:
    """The same result event (same event id) with another standing, validated as the contract validates it."""
    payload = ev.ParticipantScoredPayload.model_validate(
        {**e.payload.model_dump(), "standing": standing, "standing_detail": detail, **fields})
    return e.model_copy(update={"payload": payload})


class HoldCases:
    def __init__(self, store_cases: Any) -> None:
        self.sc = store_cases
        # Pushes are due from the moment they were written (the wall clock): the injected clock starts just after.
        self.clock = [datetime.now(UTC) + timedelta(seconds=5)]

    # ---- helpers ----------------------------------------------------------------------------------

    def scored(self, nip: str, standing: str = "counted", version: int = 1, detail: str | None = None,
               **fields: Any) -> ev.ParticipantScored:
        e = self.sc.scored(nip, version, occurred_at=T0, level=3 + (version > 1))
        return with_standing(e, standing, detail, **fields) if standing != "counted" or fields else e

    def pusher(self, store: ResultsStore, fake: FakeSiasn) -> OutboxPusher:
        return OutboxPusher(store, fake, now=lambda: self.clock[0])

    def push_all(self, store: ResultsStore, fake: FakeSiasn, rounds: int = 3) -> None:
        p = self.pusher(store, fake)
        for _ in range(rounds):
            self.clock[0] += timedelta(minutes=10)  # past any lease and backoff
            asyncio.run(p.push_once())

    @staticmethod
    def outbox(store: ResultsStore) -> dict[tuple[str, int], str]:
        o = m.SiasnOutbox
        with store.engine.connect() as conn:
            return {(n, v): s for n, v, s in conn.execute(select(o.nip, o.result_version, o.status))}

    def decide(self, action: str, store: ResultsStore, nip: str, reason: str = "checked the sheet") -> holds.Decision:
        self.clock[0] += timedelta(minutes=1)
        return getattr(holds, action)(store, nip, ACTIVITY, operator=OPERATOR, reason=reason, now=self.clock[0])

    def refused(self, action: str, store: ResultsStore, nip: str, *words: str) -> str:
        before = (self.outbox(store), len(holds.decisions(store)))
        with pytest.raises(holds.DecisionRefused) as info:
            self.decide(action, store, nip)
        message = str(info.value)
        assert "\n" not in message and nip not in message  # one line, the NIP masked
        for word in words:
            assert word in message, message
        assert (self.outbox(store), len(holds.decisions(store))) == before  # a refusal changes nothing
        return message

    # ---- scenarios --------------------------------------------------------------------------------

    def standing_is_stored_with_where_and_by_whom(self, store: ResultsStore) -> None:
        store.write_batch([
            self.scored(NIP_A),
            self.scored(NIP_B, "incomplete", detail="no answered items", host_activity_id="ACT-2026-11-HOST",
                        host_agency_id="AG-HOST", organiser_id="pemkot-samarinda"),
            self.scored(NIP_C, "not_recognised", detail="pemkot-samarinda: accreditation expired 2026-06-30",
                        organiser_id="pemkot-samarinda"),
        ])
        r = m.Result
        with store.engine.connect() as conn:
            rows = {row.nip: row for row in conn.execute(
                select(r.nip, r.standing, r.standing_detail, r.host_activity_id, r.organiser_id))}
        assert tuple(rows[NIP_A])[1:] == ("counted", None, None, None)
        assert tuple(rows[NIP_B])[1:] == ("incomplete", "no answered items", "ACT-2026-11-HOST", "pemkot-samarinda")
        assert tuple(rows[NIP_C])[1:3] == ("not_recognised", "pemkot-samarinda: accreditation expired 2026-06-30")
        assert results_by_standing(store) == {"counted": 1, "incomplete": 1, "not_recognised": 1}

    def incomplete_is_held_and_never_claimed(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_A), self.scored(NIP_B, "incomplete", detail="no answered items")])
        assert self.outbox(store) == {(NIP_A, 1): "pending", (NIP_B, 1): "held"}
        fake = FakeSiasn()
        self.clock[0] += timedelta(days=365)  # however long it waits
        assert [r["nip"] for r in self.pusher(store, fake).claim()] == [NIP_A]
        self.push_all(store, fake)
        assert fake.saved == {NIP_A: 1}
        status = outbox_status(store, self.clock[0])
        assert (status["held"], status["pending"], status["delivered"], status["void"]) == (1, 0, 1, 0)
        assert pushed_results(store) == 1

    def release_sends_it_once_and_is_audited(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_B, "incomplete", detail="no answered items")])
        d = self.decide("release", store, NIP_B, reason="lab confirmed the sheet was lost, BA no. 12")
        assert (d.action, d.previous_status, d.new_status, d.pushes) == ("release", "held", "pending", 1)
        fake = FakeSiasn()
        self.push_all(store, fake)
        assert fake.saved == {NIP_B: 1} and self.outbox(store) == {(NIP_B, 1): "delivered"}
        (row,) = holds.decisions(store)
        assert (row.nip, row.activity_id, row.result_version, row.action, row.operator, row.reason,
                row.decided_at, row.previous_status, row.new_status) == (
            NIP_B, ACTIVITY, 1, "release", OPERATOR, "lab confirmed the sheet was lost, BA no. 12", d.decided_at,
            "held", "pending")
        self.refused("release", store, NIP_B, "nothing to release", "delivered")
        self.refused("hold", store, NIP_B, "already delivered")
        self.refused("void", store, NIP_B, "already delivered")

    def void_is_never_delivered(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_B, "incomplete")])
        d = self.decide("void", store, NIP_B, reason="participant left after 5 minutes")
        assert (d.previous_status, d.new_status) == ("held", "void")
        fake = FakeSiasn()
        self.clock[0] += timedelta(days=30)
        assert self.pusher(store, fake).claim() == []
        self.push_all(store, fake)
        assert fake.saved == {} and retry_rejected(store) == 0
        self.refused("release", store, NIP_B, "voided", "final")
        self.refused("hold", store, NIP_B, "already void")
        assert outbox_status(store, self.clock[0])["void"] == 1 and pushed_results(store) == 0

    def not_recognised_is_never_pushed_nor_releasable(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_C, "not_recognised", detail="organiser not accredited for jpt_pratama")])
        assert self.outbox(store) == {}  # no push at all: nothing can ever send it
        msg = self.refused("release", store, NIP_C, "not_recognised", "accredited", "never sent")
        assert "organiser not accredited for jpt_pratama" in msg
        self.refused("hold", store, NIP_C, "not_recognised")
        self.refused("void", store, NIP_C, "not_recognised")
        fake = FakeSiasn()
        self.push_all(store, fake)
        assert fake.saved == {} and pushed_results(store) == 0 and holds.decisions(store) == []

    def replay_never_undoes_a_decision(self, store: ResultsStore) -> None:
        events = [self.scored(NIP_A, "incomplete"), self.scored(NIP_B, "incomplete"), self.scored(NIP_C)]
        store.write_batch(events)
        self.decide("release", store, NIP_A)
        self.decide("void", store, NIP_B)
        self.decide("hold", store, NIP_C, reason="agency disputes the session")
        after = self.outbox(store)
        assert after == {(NIP_A, 1): "pending", (NIP_B, 1): "void", (NIP_C, 1): "held"}
        store.write_batch(events)  # the sink replays the results topic (a restart, a rebuilt store)
        for e in reversed(events):
            store.write_batch([e])
        assert self.outbox(store) == after
        self.push_all(store, FakeSiasn())
        store.write_batch(events)
        assert self.outbox(store) == {**after, (NIP_A, 1): "delivered"}

    def superseded_held_pushes_are_retired(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_A, "incomplete"), self.scored(NIP_B, "incomplete")])
        # A rescore: the new version is judged by its own standing, the old one's held push is retired.
        store.write_batch([self.scored(NIP_A, "counted", version=2), self.scored(NIP_B, "incomplete", version=2)])
        assert self.outbox(store) == {(NIP_A, 1): "superseded", (NIP_A, 2): "pending",
                                      (NIP_B, 1): "superseded", (NIP_B, 2): "held"}
        d = self.decide("release", store, NIP_B)  # acts on the current version only
        assert d.result_version == 2
        fake = FakeSiasn()
        self.push_all(store, fake)
        assert fake.saved == {NIP_A: 1, NIP_B: 1}
        # Versions arriving out of order end the same way: v2 first, then v1's held push is retired at once.
        store.write_batch([self.scored(NIP_C, "counted", version=2)])
        store.write_batch([self.scored(NIP_C, "incomplete", version=1)])
        assert {k: v for k, v in self.outbox(store).items() if k[0] == NIP_C} == {
            (NIP_C, 1): "superseded", (NIP_C, 2): "pending"}

    def a_decision_belongs_to_its_version(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_A)])
        d = self.decide("hold", store, NIP_A, reason="agency disputes the session")
        assert (d.previous_status, d.new_status) == ("pending", "held")
        self.refused("hold", store, NIP_A, "already held")
        store.write_batch([self.scored(NIP_A, "counted", version=2)])  # rescored after the dispute
        assert self.outbox(store) == {(NIP_A, 1): "superseded", (NIP_A, 2): "pending"}
        self.push_all(store, fake := FakeSiasn())
        assert fake.saved == {NIP_A: 1}

    def hold_and_void_stop_a_rejected_push_from_being_retried(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_A), self.scored(NIP_B)])
        fake = FakeSiasn()
        fake.reject = {NIP_A, NIP_B}
        self.push_all(store, fake)
        assert self.outbox(store) == {(NIP_A, 1): "rejected", (NIP_B, 1): "rejected"}
        assert self.decide("hold", store, NIP_A).previous_status == "rejected"
        assert self.decide("void", store, NIP_B).previous_status == "rejected"
        assert retry_rejected(store) == 0
        fake.reject.clear()
        self.decide("release", store, NIP_A)
        self.push_all(store, fake)
        assert fake.saved == {NIP_A: 1}

    def refusals_are_one_line_and_change_nothing(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_A)])
        self.refused("hold", store, NIP_B, "no result", "--nip")
        self.refused("release", store, NIP_A, "nothing to release", "not held", "kompetensi pending")
        with pytest.raises(holds.DecisionRefused, match="--reason must not be empty"):
            holds.hold(store, NIP_A, ACTIVITY, operator=OPERATOR, reason="  \n ", now=self.clock[0])
        with pytest.raises(holds.DecisionRefused, match="--operator"):
            holds.hold(store, NIP_A, ACTIVITY, operator="", reason="x", now=self.clock[0])
        with pytest.raises(holds.DecisionRefused, match="control"):
            holds.hold(store, NIP_A, ACTIVITY, operator=OPERATOR, reason="ok\x1b[31m", now=self.clock[0])
        with pytest.raises(holds.DecisionRefused, match="at most 500"):
            holds.hold(store, NIP_A, ACTIVITY, operator=OPERATOR, reason="x" * 501, now=self.clock[0])
        # A push the pusher has claimed is on its way to SI ASN: deciding now would lose its outcome.
        (claimed,) = self.pusher(store, FakeSiasn()).claim()
        msg = self.refused("hold", store, NIP_A, "being sent to SI ASN right now")
        assert "try again" in msg
        # Its lease ran out (the worker died): the hold is taken; a later release reads SI ASN back first.
        self.clock[0] += timedelta(minutes=5)
        self.decide("hold", store, NIP_A)
        assert claimed["nip"] == NIP_A and holds.decisions(store)[0].action == "hold"

    def decisions_are_listed_oldest_first_and_filtered(self, store: ResultsStore) -> None:
        other = "ACT-2026-12"
        store.write_batch([self.scored(NIP_A, "incomplete"), self.scored(NIP_B, "incomplete"),
                           self.sc.scored(NIP_A, activity=other)])
        self.decide("release", store, NIP_B)
        self.decide("void", store, NIP_A)
        self.clock[0] += timedelta(minutes=1)
        holds.hold(store, NIP_A, other, operator="budi", reason="wait for the BA", now=self.clock[0])
        holds.release(store, NIP_A, other, operator="budi", reason="BA received", now=self.clock[0])  # same instant
        assert [(d.nip, d.activity_id, d.action) for d in holds.decisions(store)] == [
            (NIP_B, ACTIVITY, "release"), (NIP_A, ACTIVITY, "void"), (NIP_A, other, "hold"), (NIP_A, other, "release")]
        assert [(d.activity_id, d.action, d.operator) for d in holds.decisions(store, nip=NIP_A)] == [
            (ACTIVITY, "void", OPERATOR), (other, "hold", "budi"), (other, "release", "budi")]
        assert [d.action for d in holds.decisions(store, nip=NIP_A, activity_id=ACTIVITY)] == ["void"]
        assert [d.nip for d in holds.decisions(store, activity_id=ACTIVITY)] == [NIP_B, NIP_A]
        assert all(d.decided_at.tzinfo is not None for d in holds.decisions(store))


    def session_summary_keeps_organiser_names_and_lab_offset(self, store: ResultsStore) -> None:
        """Not a hold, but the same revision: what the operator page reads beside a result's standing."""
        wit = timezone(timedelta(hours=9))
        starts = datetime(2026, 11, 3, 7, 30, tzinfo=wit)  # 07:30 WIT, stored as 22:30 UTC the day before
        first = self.sc.session_summary("S-JYP-01", T0, scheduled=10, no_show=0)
        first = first.model_copy(update={"payload": ev.SessionSummaryPayload.model_validate({
            **first.payload.model_dump(), "starts_at": starts, "checkin_closes_at": starts + timedelta(minutes=30),
            "ends_at": starts + timedelta(hours=3), "agency_name": "Pemerintah Provinsi Papua",
            "organiser_id": "pemprov-papua", "accreditation_warning": "accreditation expires 2026-12-31"})})
        later = first.model_copy(update={"occurred_at": T0 + timedelta(hours=1), "payload": first.payload.model_copy(
            update={"accreditation_warning": None, "no_show": 2, "checked_in": 8, "no_show_rate": 0.2})})
        s = m.SessionSummaryRow
        cols = (s.agency_name, s.organiser_id, s.accreditation_warning, s.utc_offset_minutes, s.starts_at)
        store.write_batch([first])
        with store.engine.connect() as conn:
            name, organiser, warning, offset, at = conn.execute(select(*cols)).one()
        assert (name, organiser, warning, offset) == (
            "Pemerintah Provinsi Papua", "pemprov-papua", "accreditation expires 2026-12-31", 540)
        assert (at if at.tzinfo else at.replace(tzinfo=UTC)) == starts
        assert (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(timezone(timedelta(minutes=offset))).hour == 7
        store.write_batch([later, first])  # the newer summary wins, also over its older twin in the same batch
        with store.engine.connect() as conn:
            assert conn.execute(select(*cols[:4])).one() == ("Pemerintah Provinsi Papua", "pemprov-papua", None, 540)


#: The scenarios every backend runs (methods of HoldCases taking the store).
HOLD_SCENARIOS = [name for name in vars(HoldCases) if not name.startswith("_") and name not in {
    "scored", "pusher", "push_all", "outbox", "decide", "refused"}]

