"""Row-by-row comparison of a faulted run with an uninterrupted reference run of the same seed.

What is compared: every row of every table of the results store (results with every version and its status,
competency and section rows, attendance, session summaries, participants, dead letters, the SI ASN outbox,
and any table added later: the list comes from ``sinks.models``), plus every record the SI ASN emulator saved.
Two runs of one seed must agree on all of it, except for the columns below, which legitimately differ between
two runs because they record *when* or *how often* something happened on this machine, not *what*:

- ``results.created_at``, ``siasn_outbox.created_at``: the sink's wall-clock time of the write;
- ``siasn_outbox.next_attempt_at``, ``claimed_until``, ``delivered_at``: wall-clock retry and lease times of the
  pusher (a kill leaves a lease to expire, an outage pushes the next attempt out);
- ``siasn_outbox.attempts``, ``last_error``: how many tries delivery took and why the last one failed; an SI ASN
  outage or a killed pusher adds tries, the status (delivered / rejected / superseded) must still agree;
- ``deadletters.occurred_at``: the rejected record's Kafka timestamp, the wall-clock moment the lab emitter
  sent it;
- ``deadletters.source_partition``, ``source_offset`` and ``event_id`` (derived from both): a malformed message
  without a key goes to a partition the lab's producer picks at random, which also shifts the offsets of every
  later message of that partition, and a lab outage reorders the log by design. A dead letter's topic, reason
  and detail are still compared (as a multiset: two identical malformed messages are two rows);
- emulator records' ``id`` (a UUID SI ASN draws per save), ``savedAt`` and ``tglUpdate`` (the day it was saved);
- any DateTime column of a table not listed here whose default is the wall clock (``sinks.models._now``).

Everything else, including ``participants.last_seen_at`` and ``participants.agency_id`` and the ``revision``
counters, must be equal whatever the order the events were processed in.

Independently of the reference, :func:`check_outbox` holds the outbox and the emulator to "exactly once": one
delivered push per kind a current result version must send, and exactly one record in SI ASN per delivered push.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, select

from sinks import models
from sinks.store import ResultsStore

Row = dict[str, Any]
Snapshot = dict[str, list[Row]]

WALL_CLOCK: dict[str, dict[str, str]] = {
    "results": {"created_at": "the sink's wall-clock time of the write"},
    "siasn_outbox": {"created_at": "the sink's wall-clock time of the write",
                     "next_attempt_at": "wall-clock time of the next retry",
                     "claimed_until": "wall-clock lease of the pusher that claimed it",
                     "delivered_at": "wall-clock time SI ASN answered",
                     "attempts": "tries it took: outages and kills add tries",
                     "last_error": "why the last failed try failed"},
    "deadletters": {"occurred_at": "Kafka timestamp of the rejected record: when the emitter sent it",
                    "source_partition": "a keyless message's partition is the producer's random pick",
                    "source_offset": "shifted by keyless messages and by outages reordering the log",
                    "event_id": "derived from the source position"},
    "sink_quarantine": {"first_seen_at": "wall clock of the refusal"},
    "siasn_kompetensi": {"id": "a UUID SI ASN draws per save", "savedAt": "wall clock of the save",
                         "tglUpdate": "date of the save"},
    "siasn_potensi": {"id": "a UUID SI ASN draws per save", "savedAt": "wall clock of the save",
                      "tglUpdate": "date of the save"},
}
#: How rows of each table are matched: its business key (the primary key unless said otherwise here).
KEYS: dict[str, tuple[str, ...]] = {
    "deadletters": ("source_topic", "reason", "detail"),
    "siasn_kompetensi": ("nipBaru",),
    "siasn_potensi": ("nipBaru",),
}


def _plain(value: Any) -> Any:
    """Values as JSON would carry them, so two snapshots compare by value and print readably."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def store_snapshot(store: ResultsStore) -> Snapshot:
    """Every row of every table of the results store, in key order."""
    out: Snapshot = {}
    with store.engine.connect() as conn:
        for table in models.Base.metadata.sorted_tables:
            order = list(table.primary_key.columns)
            out[table.name] = [{k: _plain(v) for k, v in r.items()}
                               for r in conn.execute(select(table).order_by(*order)).mappings()]
    return out


def emulator_snapshot(kompetensi: Mapping[str, Sequence[Mapping[str, Any]]],
                      potensi: Mapping[str, Sequence[Mapping[str, Any]]]) -> Snapshot:
    """What the SI ASN emulator saved (its per-NIP record lists), as two pseudo-tables."""
    def rows(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Row]:
        return [{k: _plain(v) for k, v in r.items()} for nip in sorted(records) for r in records[nip]]
    return {"siasn_kompetensi": rows(kompetensi), "siasn_potensi": rows(potensi)}


def _wall_clock_defaults() -> dict[str, dict[str, str]]:
    """DateTime columns of tables nobody listed whose default is the wall clock: new tables are covered too."""
    out: dict[str, dict[str, str]] = {}
    for table in models.Base.metadata.sorted_tables:
        if table.name in WALL_CLOCK:
            continue
        for col in table.columns:
            fn = getattr(col.default, "arg", None)
            if isinstance(col.type, DateTime) and callable(fn) and getattr(fn, "__name__", "") in ("_now", "now"):
                out.setdefault(table.name, {})[col.name] = "defaults to the wall clock"
    return out


def ignored_columns() -> dict[str, dict[str, str]]:
    """Table → column → why it is not compared."""
    out = {t: dict(cols) for t, cols in WALL_CLOCK.items()}
    for t, cols in _wall_clock_defaults().items():
        out.setdefault(t, {}).update(cols)
    return out


def _key_columns(table: str, sample: Row) -> tuple[str, ...]:
    if table in KEYS:
        return KEYS[table]
    for t in models.Base.metadata.sorted_tables:
        if t.name == table:
            return tuple(c.name for c in t.primary_key.columns)
    return tuple(sorted(sample))


def _canon(row: Row) -> str:
    return json.dumps(row, sort_keys=True, default=str)


@dataclass
class TableDiff:
    """How one table of a run differs from the reference. Empty lists: equal."""

    table: str
    reference_rows: int
    observed_rows: int
    lost: list[Row] = field(default_factory=list)  # in the reference, not in the run
    unexpected: list[Row] = field(default_factory=list)  # in the run, not in the reference
    twice: list[Row] = field(default_factory=list)  # in the run more often than in the reference
    wrong: list[tuple[Row, dict[str, tuple[Any, Any]]]] = field(default_factory=list)  # key, column: (ref, run)

    @property
    def differences(self) -> int:
        return len(self.lost) + len(self.unexpected) + len(self.twice) + len(self.wrong)

    def counts(self) -> dict[str, int]:
        return {"reference_rows": self.reference_rows, "observed_rows": self.observed_rows, "lost": len(self.lost),
                "wrong": len(self.wrong), "twice": len(self.twice), "unexpected": len(self.unexpected)}


def compare_table(table: str, reference: Sequence[Row], observed: Sequence[Row], ignored: Iterable[str] = ()
                  ) -> TableDiff:
    """Match rows by key (without ignored columns); per key, rows compare as a multiset of their contents."""
    skip = set(ignored)
    ref = [{k: v for k, v in r.items() if k not in skip} for r in reference]
    got = [{k: v for k, v in r.items() if k not in skip} for r in observed]
    sample = (ref or got or [{}])[0]
    key_cols = tuple(c for c in _key_columns(table, sample) if c not in skip)
    diff = TableDiff(table, len(ref), len(got))

    def grouped(rows: list[Row]) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for r in rows:
            out.setdefault(_canon({c: r.get(c) for c in key_cols}), Counter())[_canon(r)] += 1
        return out

    by_ref, by_got = grouped(ref), grouped(got)
    for key in sorted(set(by_ref) | set(by_got)):
        want, have = by_ref.get(key, Counter()), by_got.get(key, Counter())
        missing = list((want - have).elements())
        extra_same = [c for c in have if c in want and have[c] > want[c] for _ in range(have[c] - want[c])]
        extra = [c for c in (have - want).elements() if c not in want]
        diff.twice += [json.loads(c) for c in extra_same]
        while missing and extra:  # the same key with other contents: a wrong row, shown column by column
            a, b = json.loads(missing.pop(0)), json.loads(extra.pop(0))
            cols = {c: (a.get(c), b.get(c)) for c in sorted(set(a) | set(b)) if a.get(c) != b.get(c)}
            diff.wrong.append(({c: a.get(c) for c in key_cols}, cols))
        diff.lost += [json.loads(c) for c in missing]
        diff.unexpected += [json.loads(c) for c in extra]
    return diff


def compare_snapshots(reference: Snapshot, observed: Snapshot) -> list[TableDiff]:
    """One TableDiff per table present in either snapshot (equal tables included, with no differences)."""
    ignored = ignored_columns()
    return [compare_table(t, reference.get(t, []), observed.get(t, []), ignored.get(t, {}))
            for t in sorted(set(reference) | set(observed))]


def check_outbox(snapshot: Snapshot) -> list[str]:
    """Exactly once to SI ASN, from the run's own rows: what every current result must have caused."""
    problems: list[str] = []
    outbox = {(o["nip"], o["activity_id"], o["result_version"], o["kind"]): o for o in snapshot.get("siasn_outbox", [])}
    for r in snapshot.get("results", []):
        if r["status"] != "current":
            continue
        payload = r["payload"]
        kinds = (["kompetensi"] if payload.get("competencies") else []) + (
            ["potensi"] if payload.get("potential") is not None else [])
        # counted: delivered; incomplete: held for an operator, never sent; not_recognised: no push at all
        standing = payload.get("standing") or "counted"
        for kind in kinds:
            o = outbox.get((r["nip"], r["activity_id"], r["result_version"], kind))
            want = {"counted": "delivered", "incomplete": "held", "not_recognised": None}[standing]
            if want is None:
                if o is not None:
                    problems.append(
                        f"{standing} result {_who(r)} v{r['result_version']}: a {kind} push is in the outbox")
            elif o is None:
                problems.append(f"result {_who(r)} v{r['result_version']}: no {kind} push in the outbox")
            elif o["status"] != want:
                problems.append(f"{standing} result {_who(r)} v{r['result_version']}: {kind} push is {o['status']}")
    for kind, table, content in (("kompetensi", "siasn_kompetensi", _kompetensi_content),
                                 ("potensi", "siasn_potensi", _potensi_content)):
        saved: Counter[str] = Counter(_canon(content(rec)) for rec in snapshot.get(table, []))
        delivered: Counter[str] = Counter(_canon(content(o)) for o in outbox.values()
                                          if o["kind"] == kind and o["status"] == "delivered")
        for c, n in (saved - delivered).items():
            problems.append(f"SI ASN holds {n} {kind} record(s) more than delivered pushes: {_short(c)}")
        for c, n in (delivered - saved).items():
            problems.append(f"{n} delivered {kind} push(es) SI ASN has no record of: {_short(c)}")
    return problems


def _kompetensi_content(rec: Row) -> Row:
    if "payload" in rec:  # an outbox row
        return {"nip": rec["nip"], "tahun": rec["payload"].get("tahun"), **rec["payload"]["levels"]}
    from sinks.siasn.wire import KOMPETENSI_FIELDS

    return {"nip": rec["nipBaru"], "tahun": rec.get("tahun"), **{k: rec[k] for k in KOMPETENSI_FIELDS if k in rec}}


def _potensi_content(rec: Row) -> Row:
    if "payload" in rec:
        return {"nip": rec["nip"], **rec["payload"]["scores"]}
    from sinks.siasn.wire import POTENSI_FIELDS

    return {"nip": rec["nipBaru"], **{k: rec[k] for k in POTENSI_FIELDS if k in rec}}


def _who(r: Row) -> str:
    from schemas.nip import mask_nip

    return f"{mask_nip(r['nip'])}/{r['activity_id']}"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _mask_row(row: Row) -> Row:
    """NIPs masked for printing: diffs go to logs and reports."""
    from schemas.nip import mask_nip

    out = {}
    for k, v in row.items():
        if k in ("nip", "nipBaru") and isinstance(v, str):
            v = mask_nip(v)
        elif k in ("payload", "provenance"):
            v = "…"
        out[k] = v
    return out


def format_diffs(diffs: Sequence[TableDiff], first: int = 5) -> str:
    """The first ``first`` differences of each differing table, NIPs masked; empty when all tables agree."""
    lines: list[str] = []
    for d in diffs:
        if not d.differences:
            continue
        c = d.counts()
        lines.append(f"{d.table}: {c['lost']} lost, {c['wrong']} wrong, {c['twice']} twice, {c['unexpected']} "
                     f"unexpected (reference {c['reference_rows']} rows, run {c['observed_rows']})")
        shown = 0
        for key, cols in d.wrong:
            if shown >= first:
                break
            changes = ", ".join(f"{col}: {_short(repr(a), 60)} → {_short(repr(b), 60)}" for col, (a, b) in cols.items()
                                if col not in ("payload", "provenance"))
            if any(col in ("payload", "provenance") for col in cols):
                changes += (", " if changes else "") + "payload differs"
            lines.append(f"  wrong {_mask_row(key)}: {changes}")
            shown += 1
        for label, rows in (("lost", d.lost), ("twice", d.twice), ("unexpected", d.unexpected)):
            for row in rows[:max(0, first - shown)]:
                lines.append(f"  {label} {_short(str(_mask_row(row)), 240)}")
                shown += 1
    return "\n".join(lines)
