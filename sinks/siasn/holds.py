"""Operators' decisions on a result's SI ASN pushes: hold, release, void, each kept in an audit trail.

A push whose result lacks evidence (standing ``incomplete``) is written ``held`` by the store; an operator who
has checked the sheet either releases it (``pending``: the pusher sends it) or voids it (``void``: never sent).
An operator may also hold a counted result's push that has not gone out yet (a dispute, a suspected mix-up).
A ``not_recognised`` result has no pushes at all (its organiser was not accredited): nothing here can send it.

Every decision acts on the pushes of the result's *current* version and is recorded in ``siasn_decisions``
(who, when, why, status before and after) in the same transaction, so the trail and the outbox never disagree.
A decision belongs to the version it was taken on: a rescore's new version is judged by its own standing, and
the old version's held pushes are retired as superseded. Refusals are :class:`DecisionRefused` with one line
naming what to change; NIPs in them are masked (the line may end up in a terminal log).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schemas.nip import mask_nip
from sinks import models as m
from sinks.store import ResultsStore

Action = Literal["hold", "release", "void"]

#: The pushes each action acts on, and the status it gives them. A rejected push can be held or voided too:
#: otherwise ``cact siasn retry --rejected`` would send what an operator meant to stop.
_ACTS_ON: dict[str, tuple[tuple[str, ...], str]] = {
    "hold": (("pending", "rejected"), "held"),
    "release": (("held",), "pending"),
    "void": (("pending", "held", "rejected"), "void"),
}
OPERATOR_CHARS = 100
REASON_CHARS = 500


class DecisionRefused(Exception):
    """A hold, release or void that cannot be taken; the message is one line saying why and what to do."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One recorded decision, as the audit trail lists it."""

    id: int
    nip: str
    activity_id: str
    result_version: int
    action: str
    operator: str
    reason: str
    decided_at: datetime
    previous_status: str
    new_status: str
    pushes: int = 0  # how many pushes it changed (not stored: the trail has one row per decision)


def hold(store: ResultsStore, nip: str, activity_id: str, *, operator: str, reason: str,
         now: datetime | None = None) -> Decision:
    """Stop the current version's unsent pushes until someone releases them."""
    return _decide(store, "hold", nip, activity_id, operator=operator, reason=reason, now=now)


def release(store: ResultsStore, nip: str, activity_id: str, *, operator: str, reason: str,
            now: datetime | None = None) -> Decision:
    """Let the current version's held pushes go to SI ASN (never for a ``not_recognised`` result)."""
    return _decide(store, "release", nip, activity_id, operator=operator, reason=reason, now=now)


def void(store: ResultsStore, nip: str, activity_id: str, *, operator: str, reason: str,
         now: datetime | None = None) -> Decision:
    """Withdraw the current version's unsent pushes for good; a new version (a rescore) is judged afresh."""
    return _decide(store, "void", nip, activity_id, operator=operator, reason=reason, now=now)


def decisions(store: ResultsStore, nip: str | None = None, activity_id: str | None = None) -> list[Decision]:
    """The audit trail, oldest first, optionally of one NIP and/or one activity."""
    d = m.SiasnDecision
    stmt = select(d).order_by(d.decided_at, d.id)
    if nip is not None:
        stmt = stmt.where(d.nip == nip)
    if activity_id is not None:
        stmt = stmt.where(d.activity_id == activity_id)
    with Session(store.engine) as s:
        return [_decision(row) for row in s.scalars(stmt)]


def _text(value: str, name: str, limit: int) -> str:
    """Who and why, as one printable line: required, bounded, without control characters (it is shown in tables)."""
    text = " ".join(value.split())
    if not text:
        raise DecisionRefused(f"say {name}: --{name} must not be empty")
    if len(text) > limit:
        raise DecisionRefused(f"--{name} is {len(text)} characters; at most {limit}")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text):
        raise DecisionRefused(f"--{name} contains control or formatting characters; use plain text")
    return text


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _decide(store: ResultsStore, action: Action, nip: str, activity_id: str, *, operator: str, reason: str,
            now: datetime | None) -> Decision:
    operator, reason = _text(operator, "operator", OPERATOR_CHARS), _text(reason, "reason", REASON_CHARS)
    now = now or datetime.now(UTC)
    r, o = m.Result, m.SiasnOutbox
    who = f"{mask_nip(nip)} in {activity_id}"
    with Session(store.engine) as s, s.begin():
        result = s.scalar(select(r).where(r.nip == nip, r.activity_id == activity_id, r.status == "current")
                          .with_for_update())
        if result is None:
            raise DecisionRefused(f"no result of {who}: check --nip and --activity (`cact siasn decisions` lists "
                                  "earlier decisions)")
        version = f"{who} (version {result.result_version})"
        if result.standing == "not_recognised":
            detail = f" ({result.standing_detail})" if result.standing_detail else ""
            raise DecisionRefused(f"the result of {version} is not_recognised{detail}: its organiser was not "
                                  f"accredited, so it is never sent to SI ASN and cannot be {_past(action)}")
        # Locked like the pusher's claim locks them: a push is either claimed or decided on, never both at once.
        pushes = list(s.scalars(select(o).where(o.nip == nip, o.activity_id == activity_id,
                                                o.result_version == result.result_version)
                                .order_by(o.kind).with_for_update()))
        if not pushes:
            raise DecisionRefused(f"the result of {version} has no SI ASN push (no Mansoskul, no potential profile)")
        sources, target = _ACTS_ON[action]
        acted = [p for p in pushes if p.status in sources]
        if not acted:
            raise DecisionRefused(_nothing_to_do(action, version, pushes))
        sending = [p for p in acted if (lease := _aware(p.claimed_until)) is not None and lease > now]
        if sending:
            raise DecisionRefused(f"a push of {version} is being sent to SI ASN right now: run `cact siasn status` "
                                  "and try again in a few minutes")
        previous = ",".join(sorted({p.status for p in acted}))
        values: dict[str, Any] = {"status": target}
        if action == "release":
            values["next_attempt_at"] = now  # due at once: it has waited for the operator, not for SI ASN
        s.execute(update(o).where(o.nip == nip, o.activity_id == activity_id,
                                  o.result_version == result.result_version, o.kind.in_([p.kind for p in acted]))
                  .values(**values))
        row = m.SiasnDecision(nip=nip, activity_id=activity_id, result_version=result.result_version,
                              action=action, operator=operator, reason=reason, decided_at=now,
                              previous_status=previous, new_status=target)
        s.add(row)
        s.flush()
        return Decision(**_fields(row), pushes=len(acted))


def _past(action: str) -> str:
    return {"hold": "held", "release": "released", "void": "voided"}[action]


def _nothing_to_do(action: Action, version: str, pushes: list[m.SiasnOutbox]) -> str:
    """Why none of the pushes can take the action, and what the operator can do instead."""
    statuses = {p.status for p in pushes}
    listed = ", ".join(f"{p.kind} {p.status}" for p in pushes)
    if action == "release":
        if statuses == {"void"}:
            return (f"nothing to release: the pushes of {version} were voided ({listed}); a void is final, a new "
                    "version (`cact rescore`) is judged afresh")
        return f"nothing to release: the pushes of {version} are not held ({listed})"
    if statuses <= {"delivered"}:
        return (f"the result of {version} was already delivered to SI ASN ({listed}): it cannot be "
                f"{_past(action)}; correct it in SI ASN or rescore")
    if action == "hold" and "held" in statuses:
        return f"the pushes of {version} are already held ({listed}): release or void them"
    if "void" in statuses:
        return f"the pushes of {version} are already void ({listed})"
    return f"nothing to {action}: the pushes of {version} are {listed}"


def _fields(row: m.SiasnDecision) -> dict[str, Any]:
    return {"id": row.id, "nip": row.nip, "activity_id": row.activity_id, "result_version": row.result_version,
            "action": row.action, "operator": row.operator, "reason": row.reason,
            "decided_at": _aware(row.decided_at), "previous_status": row.previous_status,
            "new_status": row.new_status}


def _decision(row: m.SiasnDecision) -> Decision:
    return Decision(**_fields(row))
