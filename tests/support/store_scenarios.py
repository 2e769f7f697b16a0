"""The results store's behavioural scenarios, and the contract-valid output events they are built from.

One copy of each scenario runs unchanged against SQLite (tests/unit/sinks/test_store_sqlite.py) and PostgreSQL
(tests/integration/sinks/test_store_postgres.py): the store must behave the same on both dialects, and one copy
keeps the two from drifting apart. A scenario is a method of :class:`StoreCases` taking a ``ResultsStore`` with
an empty schema; ``STORE_SCENARIOS`` names them (the ``store_scenario`` parameter of tests/conftest.py). The
builders (``scored``, ``attendance``, ...) make events as the pipeline makes them, for any test that needs one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from schemas import events as ev
from schemas.domain import SIASN_FIELD, AttendanceStatus, Competency, Section
from sinks.store import ResultsStore
from support import database

WIB = timezone(timedelta(hours=7))
WITA = timezone(timedelta(hours=8))
WIT = timezone(timedelta(hours=9))
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=WIB)
NIP_A = "199001012015031001"
NIP_B = "198505122010012002"


def nip(serial: int, gender: int = 1) -> str:
    """A valid PNS NIP: born 1990-01-01, appointed 2015-03, then gender and serial."""
    return f"19900101201503{gender}{serial:03d}"


class StoreCases:
    """Event builders and the store's behavioural scenarios; ``store`` is a ResultsStore with an empty schema."""

    # ---- builders ---------------------------------------------------------------------------------

    @staticmethod
    def scored(nip: str, version: int = 1, *, activity: str = "ACT-2026-11", session: str = "S-JKT-01",
               blueprint_version: str = "2026.1", occurred_at: datetime = T0, level: int = 3) -> ev.ParticipantScored:
        """A ParticipantScored of one version; the event id is derived, as the pipeline derives its own."""
        standard = 3
        comps = [{"code": c.value, "siasn_field": SIASN_FIELD[c], "raw": 10.0 * level, "max_raw": 50.0,
                  "level": level, "standard": standard, "gap": level - standard} for c in Competency]
        return ev.new_event(ev.ParticipantScored, lab_id="kanreg-v", occurred_at=occurred_at,
                            event_id=ev.derived_id("scored", nip, activity, version), payload={
            "result_id": ev.derived_id("result", nip, activity), "result_version": version, "nip": nip,
            "activity_id": activity, "session_id": session, "agency_id": "AG-KEMENKEU", "purpose": "mapping",
            "position_tier": "administrator", "blueprint_id": "cact-full", "blueprint_version": blueprint_version,
            "competencies": comps, "jpm": round(100.0 * min(level, standard) / standard, 2),
            "category": "Optimal" if level >= standard else "Kurang Optimal",
            "strengths": [c.value for c in Competency] if level >= standard else [],
            "development_areas": [] if level >= standard else [c.value for c in Competency],
            "sections": [{"section": s.value, "score": 20.0 * level, "level": level, "answered": 40, "items": 40,
                          "completion": "submitted"} for s in Section],
            "assessed_on": occurred_at.date().isoformat(),
            "valid_until": occurred_at.date().replace(year=occurred_at.year + 3).isoformat(),
            "flags": [] if version == 1 else ["rescored"],
            "provenance": [str(ev.derived_id("lab", nip, version))],
        })

    @staticmethod
    def attendance(nip: str, status: AttendanceStatus | str, occurred_at: datetime, *, session: str = "S-JKT-01",
                   activity: str = "ACT-2026-11", **extra: Any) -> ev.AttendanceChanged:
        return ev.new_event(ev.AttendanceChanged, lab_id="kanreg-v", occurred_at=occurred_at, payload={
            "session_id": session, "activity_id": activity, "agency_id": "AG-KEMENKEU", "lab_id": "kanreg-v",
            "nip": nip, "status": str(status), "previous": None, **extra})

    @staticmethod
    def session_summary(session: str, occurred_at: datetime, *, scheduled: int, no_show: int,
                        final: bool = False) -> ev.SessionSummary:
        return ev.new_event(ev.SessionSummary, lab_id="kanreg-v", occurred_at=occurred_at, payload={
            "session_id": session, "activity_id": "ACT-2026-11", "agency_id": "AG-KEMENKEU", "lab_id": "kanreg-v",
            "starts_at": T0, "checkin_closes_at": T0, "ends_at": T0, "closed": False, "closed_by_wall_clock": False,
            "scheduled": scheduled,
            "checked_in": scheduled - no_show, "no_show": no_show, "rescheduled": 0, "unexpected": 0,
            "no_show_rate": round(no_show / scheduled, 4), "final": final})

    @staticmethod
    def deadletter(offset: int, *, reason: str = "invalid_json", partition: int = 0,
                   topic: str = "cact.lab.v1") -> ev.DeadLettered:
        """A dead letter with a random event id: a reprocessed offset may come back under a new id."""
        return ev.new_event(ev.DeadLettered, lab_id="cact-worker", occurred_at=T0, payload={
            "reason": reason, "detail": f"rejected at offset {offset}", "source_topic": topic,
            "source_partition": partition, "source_offset": offset, "key_b64": None, "value_b64": "e30="})

    #: Every row of every table, in key order (support.database.snapshot).
    snapshot = staticmethod(database.snapshot)
    #: Create the schema and delete every row (support.database.reset).
    reset = staticmethod(database.reset)

    # ---- scenarios --------------------------------------------------------------------------------

    def mixed_batch(self) -> list[ev.Event]:
        """One of everything the sink stores, including in-batch duplicates and out-of-order events."""
        return [
            self.scored(NIP_A, 1), self.scored(NIP_B, 1), self.scored(NIP_A, 1),
            self.attendance(NIP_A, "scheduled", T0), self.attendance(NIP_A, "checked_in", T0 + timedelta(minutes=5)),
            self.attendance(NIP_B, "no_show", T0 + timedelta(minutes=31)),
            self.attendance(NIP_B, "scheduled", T0),
            self.session_summary("S-JKT-01", T0 + timedelta(minutes=31), scheduled=2, no_show=1, final=True),
            self.session_summary("S-JKT-01", T0 + timedelta(minutes=5), scheduled=2, no_show=0),
            self.deadletter(7), self.deadletter(8, reason="unknown_blueprint"),
        ]

    def redelivered_batch_changes_nothing(self, store: ResultsStore) -> None:
        batch = self.mixed_batch()
        store.write_batch(batch)
        first = self.snapshot(store)
        assert {name: len(rows) for name, rows in first.items()} == {
            "results": 2, "competency_results": 18, "section_scores": 6, "attendance": 2,
            "session_summaries": 1, "deadletters": 2, "siasn_outbox": 2, "participants": 2,
            "sink_quarantine": 0, "siasn_decisions": 0, "report_builds": 0, "report_deliveries": 0}
        store.write_batch(batch)
        assert self.snapshot(store) == first
        for e in batch:  # a replay in other batch boundaries, one event at a time, changes nothing either
            store.write_batch([e])
        store.write_batch(list(reversed(batch)))
        assert self.snapshot(store) == first

    def higher_version_supersedes_and_both_are_kept(self, store: ResultsStore) -> None:
        store.write_batch([self.scored(NIP_A, 1), self.scored(NIP_B, 1)])
        store.write_batch([self.scored(NIP_A, 2, blueprint_version="2026.2", level=4)])
        rows = self.snapshot(store)["results"]
        assert [(r["nip"], r["result_version"], r["status"]) for r in rows] == [
            (NIP_B, 1, "current"), (NIP_A, 1, "superseded"), (NIP_A, 2, "current")]
        assert len(self.snapshot(store)["competency_results"]) == 27  # details of every version are kept
        current = {(r["nip"], r["result_version"]): r for r in store.current_results()}
        assert set(current) == {(NIP_A, 2), (NIP_B, 1)}
        assert current[(NIP_A, 2)]["blueprint_version"] == "2026.2" and current[(NIP_A, 2)]["jpm"] == 100.0
        assert current[(NIP_A, 2)] == self.scored(NIP_A, 2, blueprint_version="2026.2", level=4).payload.model_dump(
            mode="json")
        # An older version redelivered late, or a version 3 and 1 in one batch: the highest stays current.
        store.write_batch([self.scored(NIP_A, 1)])
        store.write_batch([self.scored(NIP_B, 3), self.scored(NIP_B, 2)])
        statuses = {(r["nip"], r["result_version"]): r["status"] for r in self.snapshot(store)["results"]}
        assert statuses == {(NIP_A, 1): "superseded", (NIP_A, 2): "current", (NIP_B, 1): "superseded",
                            (NIP_B, 2): "superseded", (NIP_B, 3): "current"}
        assert store.summary()["results_in_store"] == 2
        assert store.current_versions("ACT-2026-11") == {NIP_A: (2, "2026.2"), NIP_B: (3, "2026.1")}
        # Only the current version's push stays pending: SI ASN never receives a superseded result.
        pushes = {(r["nip"], r["result_version"]): r["status"] for r in self.snapshot(store)["siasn_outbox"]}
        assert pushes == {(NIP_A, 1): "superseded", (NIP_A, 2): "pending", (NIP_B, 1): "superseded",
                          (NIP_B, 2): "superseded", (NIP_B, 3): "pending"}

    def attendance_keeps_the_latest_occurred_at(self, store: ResultsStore) -> None:
        # Labs write in their own offsets: 10:00 WIT is 01:00 UTC, earlier than 09:00 WIB (02:00 UTC).
        newer = self.attendance(NIP_A, "checked_in", datetime(2026, 11, 3, 9, 0, tzinfo=WIB), late=True)
        older = self.attendance(NIP_A, "no_show", datetime(2026, 11, 3, 10, 0, tzinfo=WIT))
        kept = [(NIP_A, "checked_in", True, str(newer.event_id))]
        for batch in ([newer], [older], [newer, older]):  # then: older in a later batch, later in the same batch
            store.write_batch(batch)
            rows = self.snapshot(store)["attendance"]
            assert [(r["nip"], r["status"], r["late"], r["last_event_id"]) for r in rows] == kept, batch
        # A genuinely newer event wins in a later batch; an equal time goes to the later event of the batch.
        later = datetime(2026, 11, 3, 11, 30, tzinfo=WITA)  # 03:30 UTC
        moved = self.attendance(NIP_A, "rescheduled", later, rescheduled_to="S-SBY-02")
        tie = self.attendance(NIP_A, "no_show", later.astimezone(WIB))
        store.write_batch([moved, tie])
        row = self.snapshot(store)["attendance"][0]
        assert (row["status"], row["last_event_id"], row["rescheduled_to"]) == ("no_show", str(tie.event_id), None)
        stored = row["updated_at"]  # SQLite hands back naive UTC, PostgreSQL an aware timestamp
        assert (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) == later

    def session_summary_keeps_the_latest(self, store: ResultsStore) -> None:
        final = self.session_summary("S-JKT-01", T0 + timedelta(minutes=31), scheduled=40, no_show=5, final=True)
        early = self.session_summary("S-JKT-01", T0 + timedelta(minutes=10), scheduled=40, no_show=0)
        store.write_batch([final])
        store.write_batch([early])
        row = self.snapshot(store)["session_summaries"][0]
        assert (row["no_show"], row["final"], row["no_show_rate"]) == (5, True, 0.125)

    def deadletters_dedupe_by_source_offset(self, store: ResultsStore) -> None:
        first = self.deadletter(42)
        store.write_batch([first, self.deadletter(42), self.deadletter(42, partition=1)])
        store.write_batch([self.deadletter(42, reason="unknown_blueprint"), first])
        store.write_batch([self.deadletter(2**40)])  # offsets are 64-bit
        rows = self.snapshot(store)["deadletters"]
        assert sorted((r["source_partition"], r["source_offset"], r["reason"]) for r in rows) == [
            (0, 42, "invalid_json"), (0, 2**40, "invalid_json"), (1, 42, "invalid_json")]
        assert next(r for r in rows if (r["source_partition"], r["source_offset"]) == (0, 42))["event_id"] == str(
            first.event_id)
        assert store.summary()["deadletters"] == 3

    def a_rebuilt_log_reusing_positions_loses_nothing(self, store: ResultsStore) -> None:
        """A broker that lost its log hands its positions out again: a different message dead-lettered (or a
        different output record quarantined) at a position already used is a new row; the same one replayed
        is not; a dead letter stored without a digest (before revision 0006) still stands for its position."""
        from schemas import topics
        from sinks.quarantine import Record
        from streams.deadletter import dead_letter

        def letter(offset: int, value: bytes) -> ev.DeadLettered:
            return dead_letter(topic="cact.lab.v1", partition=0, offset=offset, key=b"S-1", value=value,
                               timestamp=T0.timestamp(), reason="bad_json", detail="not valid JSON")

        before, after = letter(7, b'{"event_type": '), letter(7, b"\xff not json")
        assert before.event_id != after.event_id
        store.write_batch([before])
        store.write_batch([after, letter(7, b'{"event_type": ')])
        store.write_batch([self.deadletter(9)])  # no digest: as stored before revision 0006
        store.write_batch([letter(9, b"{")])
        rows = self.snapshot(store)["deadletters"]
        assert sorted((r["source_offset"], r["value_sha256"]) for r in rows) == [
            (7, before.payload.value_sha256), (7, after.payload.value_sha256), (9, "")]
        att = topics.ATTENDANCE.name
        first, second = Record(att, 0, 3, b"\x00not an event", None, "undecodable output (invalid_json): x"), \
            Record(att, 0, 3, b"\x00another one", None, "undecodable output (invalid_json): y")
        assert len(store.write_records([first])) == 1
        assert len(store.write_records([second, first])) == 1
        assert store.write_records([first, second]) == []
        assert sorted((q["source_offset"], q["reason"][-1], q["event_bytes"]) for q in store.quarantined()) == [
            (3, "x", len(first.value)), (3, "y", len(second.value))]
        assert store.summary()["deadletters"] == 3

    def participants_follow_the_latest_event(self, store: ResultsStore) -> None:
        store.write_batch([self.attendance(NIP_A, "scheduled", T0)])
        assert [(r["nip"], r["agency_id"], r["position_tier"]) for r in self.snapshot(store)["participants"]] == [
            (NIP_A, "AG-KEMENKEU", None)]
        moved = self.attendance(NIP_A, "checked_in", T0 + timedelta(days=30), agency_id="AG-KEMENDAGRI",
                                session="S-SBY-09", activity="ACT-2026-12")
        older = self.attendance(NIP_A, "no_show", T0 - timedelta(days=30), agency_id="AG-OLD", session="S-OLD")
        store.write_batch([self.scored(NIP_A, 1)])  # the tier comes with the result
        store.write_batch([moved])
        store.write_batch([older])  # an older fact arriving late changes nothing
        rows = self.snapshot(store)["participants"]
        assert [(r["nip"], r["agency_id"], r["position_tier"]) for r in rows] == [
            (NIP_A, "AG-KEMENDAGRI", "administrator")]
        stored = rows[0]["last_seen_at"]
        assert (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) == T0 + timedelta(days=30)

    def summary_numbers(self, store: ResultsStore) -> None:
        assert store.summary() == {
            "participants_scheduled": 0, "participants_checked_in": 0, "no_shows": 0, "rescheduled": 0,
            "unexpected": 0, "no_show_rate": 0.0, "results_in_store": 0, "deadletters": 0,
            "deadletters_by_reason": {}}
        at = T0 + timedelta(minutes=31)
        statuses = {1: "scheduled", 2: "checked_in", 3: "checked_in", 4: "no_show", 5: "no_show", 6: "no_show",
                    7: "rescheduled", 8: "unexpected", 9: "unscheduled"}
        batch: list[ev.Event] = [self.attendance(nip(n), "scheduled", T0) for n in statuses]
        batch += [self.attendance(nip(n), s, at) for n, s in statuses.items()]
        batch += [self.scored(NIP_A, 1), self.scored(NIP_A, 2), self.scored(NIP_B, 1)]
        batch += [self.deadletter(1), self.deadletter(2), self.deadletter(3, reason="unknown_blueprint"),
                  self.deadletter(3, reason="unknown_blueprint")]
        store.write_batch(batch)
        assert store.summary() == {
            "participants_scheduled": 7, "participants_checked_in": 2, "no_shows": 3, "rescheduled": 1,
            "unexpected": 1, "no_show_rate": 0.4286, "results_in_store": 2, "deadletters": 3,
            "deadletters_by_reason": {"invalid_json": 2, "unknown_blueprint": 1}}
        assert {(r["nip"], r["result_version"]) for r in store.current_results()} == {(NIP_A, 2), (NIP_B, 1)}
        assert store.sessions_of_activity("ACT-2026-11") == ["S-JKT-01"]

    # ---- issue 12: refused rows, order independence -----------------------------------------------

    def refused_rows_are_quarantined_and_the_rest_written(self, store: ResultsStore) -> None:
        """Rows the database (or Python) refuses go to quarantine once per source position; the rest is stored."""
        from schemas import topics
        from sinks.quarantine import Record

        def rec(topic: str, offset: int, e: ev.Event) -> Record:
            return Record(topic, 0, offset, e.to_bytes(), e)

        res, att, dl = topics.RESULTS.name, topics.ATTENDANCE.name, topics.DEADLETTER.name
        a = self.scored(NIP_A, 1)
        clash = self.scored(NIP_B, 1).model_copy(update={"event_id": a.event_id})  # breaks results.event_id
        summary = self.session_summary("S-JKT-02", T0, scheduled=1, no_show=0)
        at = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))  # has no UTC value (the decoder may refuse
        year_one = summary.model_copy(update={"payload": summary.payload.model_copy(  # it: built unvalidated)
            update={"starts_at": at, "checkin_closes_at": at, "ends_at": at})})
        base = self.attendance(NIP_B, "checked_in", T0)  # no INTEGER column holds 2**70 (nor does the contract:
        huge = base.model_copy(update={"payload": base.payload.model_copy(update={"revision": 2**70})})  # unvalidated)
        records = [rec(res, 0, a), rec(res, 1, clash), rec(att, 0, self.attendance(NIP_A, "checked_in", T0)),
                   rec(att, 1, year_one), rec(att, 2, huge), rec(dl, 0, self.deadletter(5)),
                   Record(att, 0, 3, b'\x00{"event_type": "Nope"', None, "undecodable output (invalid_json): x")]
        new = store.write_records(records)
        by_pos = {(q["source_topic"], q["source_offset"]): q for q in new}
        assert sorted(by_pos) == [(att, 1), (att, 2), (att, 3), (res, 1)]
        assert by_pos[(res, 1)]["reason"].split(":")[0] in ("IntegrityError", "UniqueViolation")  # SQLite, PostgreSQL
        assert "event_id" in by_pos[(res, 1)]["reason"]
        assert by_pos[(res, 1)]["event_id"] == str(a.event_id)
        assert by_pos[(att, 1)]["reason"].startswith("starts_at has no UTC value (0001-01-01T00:00:00+14:00)")
        assert by_pos[(att, 1)]["event_type"] == "SessionSummary"
        assert by_pos[(att, 2)]["reason"].split(":")[0] in ("OverflowError", "NumericValueOutOfRange")
        assert (by_pos[(att, 3)]["event_type"], by_pos[(att, 3)]["event_id"]) == ("unknown", None)
        rows = self.snapshot(store)
        stored = rows["sink_quarantine"]
        assert len(stored) == 4 and all("\x00" not in q["event_json"] for q in stored)
        assert {q["source_offset"]: q["event_bytes"] for q in stored if q["source_topic"] == att}[1] == len(
            year_one.to_bytes())
        assert '"starts_at":"0001-01-01T00:00:00+14:00"' in by_pos[(att, 1)]["event_json"]
        assert [(r["nip"], r["result_version"]) for r in rows["results"]] == [(NIP_A, 1)]
        assert [(r["nip"], r["status"]) for r in rows["attendance"]] == [(NIP_A, "checked_in")]
        assert (len(rows["deadletters"]), rows["session_summaries"]) == (1, [])
        assert [(r["nip"], r["agency_id"], r["position_tier"]) for r in rows["participants"]] == [
            (NIP_A, "AG-KEMENKEU", "administrator")]
        assert store.quarantine_count() == 4
        # One batch, one first-seen time: then by source position.
        assert [(q["source_topic"], q["source_offset"]) for q in store.quarantined(limit=2)] == [(att, 1), (att, 2)]
        # Replays quarantine nothing twice and change nothing, whatever the order and batch boundaries.
        assert store.write_records(records) == []
        assert store.write_records(list(reversed(records))) == []
        for r in records:
            assert store.write_records([r]) == []
        assert self.snapshot(store) == rows

    def participants_do_not_depend_on_order(self, store: ResultsStore) -> None:
        """Any order, duplication, batching, with or without the interim facts a restarted worker re-emits."""
        import random

        from schemas.domain import PositionTier

        nip_c, minute = nip(3), timedelta(minutes=1)
        later_tier = self.scored(NIP_A, 1, activity="ACT-2026-12", occurred_at=T0 + timedelta(days=30))
        later_tier = later_tier.model_copy(update={"payload": later_tier.payload.model_copy(
            update={"position_tier": PositionTier.PENGAWAS})})
        final = [
            self.attendance(NIP_A, "checked_in", T0 + 10 * minute, agency_id="AG-HOME", revision=3),
            self.attendance(NIP_A, "checked_in", T0 + timedelta(days=1), session="S-SBY-02", agency_id="AG-MOVED",
                            revision=2),
            self.attendance(NIP_B, "no_show", T0 + 30 * minute, agency_id="AG-B1", revision=2),
            # the same time in another session: the greater session id decides, not the arrival
            self.attendance(NIP_B, "checked_in", T0 + 30 * minute, session="S-SBY-02", agency_id="AG-B2",
                            revision=2),
            self.attendance(nip_c, "checked_in", T0 + 10 * minute, agency_id="AG-HOME", revision=3, late=True),
            self.scored(NIP_A, 2, occurred_at=T0 + timedelta(hours=3)), later_tier,
            self.scored(nip_c, 1, occurred_at=T0 + timedelta(hours=2)),  # a result carries the session's agency
        ]
        interim = [
            self.attendance(nip_c, "no_show", T0 + 30 * minute, agency_id="AG-HOME", revision=2),  # corrected later
            self.attendance(nip_c, "unexpected", T0 + 10 * minute, agency_id="AG-OTHER", revision=1),
            self.scored(NIP_A, 1, occurred_at=T0 + timedelta(hours=4)),  # superseded, triggered later
        ]
        expected = [(NIP_B, "AG-B2", None, T0 + 30 * minute),
                    (NIP_A, "AG-MOVED", "pengawas", T0 + timedelta(days=1)),
                    (nip_c, "AG-HOME", "administrator", T0 + 10 * minute)]
        rng = random.Random(12)
        for trial in range(10):
            seen = final + [e for e in interim if trial == 1 or (trial > 1 and rng.random() < 0.5)]
            seen += rng.sample(seen, 3)  # redelivered
            rng.shuffle(seen)
            self.reset(store)
            while seen:
                cut = rng.randint(1, 4)
                store.write_batch(seen[:cut])
                seen = seen[cut:]
            rows = sorted(self.snapshot(store)["participants"], key=lambda r: r["nip"])
            got = [(r["nip"], r["agency_id"], r["position_tier"],
                    r["last_seen_at"] if r["last_seen_at"].tzinfo else r["last_seen_at"].replace(tzinfo=UTC))
                   for r in rows]
            assert got == sorted(expected), f"trial {trial}"


#: The store scenarios every backend runs (methods of StoreCases taking the store).
STORE_SCENARIOS = ["redelivered_batch_changes_nothing", "higher_version_supersedes_and_both_are_kept",
                   "attendance_keeps_the_latest_occurred_at", "session_summary_keeps_the_latest",
                   "deadletters_dedupe_by_source_offset", "a_rebuilt_log_reusing_positions_loses_nothing",
                   "participants_follow_the_latest_event", "summary_numbers",
                   "refused_rows_are_quarantined_and_the_rest_written", "participants_do_not_depend_on_order"]
