"""What the lab says about a scheduled session: check-ins, sections started, autosaves, sheets, the closing.

Each rule gets an event already judged against the session's schedule (``streams/admission.py``: right lab,
plausible time) and refuses what it refuses (a section or item the blueprint does not have) before it changes
anything. A lab event's time advances the session's clock, and the first one at or after the check-in window's
closing time closes it.
"""

from __future__ import annotations

import operator

from schemas import events as ev
from schemas.blueprint import Blueprint
from schemas.decode import Rejected
from schemas.domain import Section
from schemas.reasons import Reason
from streams import admission, scoring, sheets
from streams.attendance import advance_window, fact, refresh, refresh_session
from streams.session_state import Autosave, ParticipantState, SessionState
from streams.sheets import Answers, PackedSheet
from streams.turn import Turn, at

_item_ids, _options = operator.itemgetter("item_id"), operator.itemgetter("option")


def blueprint_of(t: Turn, s: SessionState) -> Blueprint | None:
    """The blueprint the session was scheduled with (None before its schedule is known)."""
    meta = s["meta"]
    return t.registry.get(meta["blueprint_id"], meta["blueprint_version"]) if meta else None


def _clock(t: Turn, s: SessionState) -> None:
    occurred = t.trigger.occurred_at
    if s["max_at"] is None or occurred > at(s["max_at"]):
        s["max_at"] = occurred.isoformat()


def lab_session(t: Turn, session_id: str) -> SessionState:
    """Load the session a lab event touches (within the caps), and let its time advance the session clock."""
    s = t.state.session(session_id)
    if not t.state.has_session(session_id):
        admission.admit_session(t, session_id)
    _clock(t, s)
    return s


def lab_participant(t: Turn, session_id: str, nip: str) -> tuple[SessionState, ParticipantState]:
    """Load the session and the participant a lab event is about (within the caps), and advance the clock."""
    s = t.state.session(session_id)
    admission.admit(t, s, session_id, nip)
    _clock(t, s)
    part = t.state.participant(session_id, nip)
    admission.track(t, s, session_id, nip)
    return s, part


def checked_in(t: Turn, p: ev.ParticipantCheckedInPayload) -> None:
    s, part = lab_participant(t, p.session_id, p.nip)
    occurred = t.trigger.occurred_at
    fact(t, part)
    if part["checkin"] is None or occurred < at(part["checkin"]["at"]):
        part["checkin"] = {"at": occurred.isoformat(), "event_id": str(t.trigger.event_id)}
    refresh(t, s, part)
    advance_window(t, s, p.session_id)


def _section_of_blueprint(t: Turn, session_id: str, section: Section) -> None:
    blueprint = blueprint_of(t, t.state.session(session_id))
    if blueprint is not None and blueprint.section(section) is None:
        raise Rejected(Reason.UNKNOWN_SECTION, f"section {section.value} is not part of blueprint "
                       f"{blueprint.blueprint_id} of session {session_id}")


def section_started(t: Turn, p: ev.SectionStartedPayload) -> None:
    _section_of_blueprint(t, p.session_id, p.section)
    s = lab_session(t, p.session_id)
    t.state.put_session(p.session_id, s)
    advance_window(t, s, p.session_id)


def _sheet(t: Turn,
           p: ev.AnswersSavedPayload | ev.SectionSubmittedPayload) -> tuple[PackedSheet | None, Answers | None]:
    """Check a sheet against the bank before any state changes: (packed, None) for the common sheet,
    (None, answers) for any other, which ``sheets.pack`` packs as it can."""
    _section_of_blueprint(t, p.session_id, p.section)
    answers_in = p.answers
    if isinstance(answers_in, ev.AnswerList):  # as decoded: the columns were taken out by the check
        items, options = answers_in.item_ids, answers_in.options
    else:
        items, options = list(map(_item_ids, answers_in)), list(map(_options, answers_in))
    packed = sheets.pack_in_order(t.registry, blueprint_of(t, t.state.session(p.session_id)), p.section, items, options)
    if packed is not None:
        return packed, None
    answers = dict(zip(items, options))
    scoring.check_answers(t.registry, p.section, answers)
    return None, answers


def answers_saved(t: Turn, p: ev.AnswersSavedPayload) -> None:
    packed, answers = _sheet(t, p)
    s, part = lab_participant(t, p.session_id, p.nip)
    occurred = t.trigger.occurred_at
    section = p.section.value
    # Autosaves only stand in for a missing sheet: once the section's sheet is in, they are never read.
    if section not in part["sheets"]:
        saved = part["autosave"].setdefault(section, {"answers": "{}", "at": occurred.isoformat(), "event_ids": []})
        eid = str(t.trigger.event_id)
        if eid not in saved["event_ids"]:
            newer = occurred >= at(saved["at"])
            if packed is not None and (saved["answers"] == "{}" or saved.get("layout") == packed["layout"]):
                if saved["answers"] != "{}":  # the first autosave is taken as it is
                    pair = (packed["answers"], saved["answers"])
                    newest, oldest = pair if newer else pair[::-1]
                    assert isinstance(newest, str) and isinstance(oldest, str)  # both packed in one layout
                    packed["answers"] = sheets.merge(newest, oldest)
                saved.update(packed)
            else:
                _merge_unpacked(t, saved, packed, answers, section, newer, blueprint_of(t, s))
            if newer:
                saved["at"] = occurred.isoformat()
            saved["event_ids"].append(eid)
    refresh(t, s, part)
    advance_window(t, s, p.session_id)


def _merge_unpacked(t: Turn, saved: Autosave, packed: PackedSheet | None, answers: Answers | None, section: str,
                    newer: bool, blueprint: Blueprint | None) -> None:
    """Autosaves that cannot be merged packed: merged as item id → option and packed again as they can be."""
    merged = sheets.unpack(t.registry, saved, section)
    if answers is None:
        assert packed is not None  # _sheet returns one of them
        answers = sheets.unpack(t.registry, packed, section)
    if newer:
        merged.update(answers)
    else:  # an older autosave arriving late must not overwrite newer answers
        for item, option in answers.items():
            merged.setdefault(item, option)
    saved.pop("layout", None)
    saved.update(sheets.pack(merged, blueprint, section))


def section_submitted(t: Turn, p: ev.SectionSubmittedPayload) -> None:
    packed, answers = _sheet(t, p)
    s, part = lab_participant(t, p.session_id, p.nip)
    occurred = t.trigger.occurred_at
    eid = str(t.trigger.event_id)
    section = p.section.value
    old = part["sheets"].get(section)
    # A section submitted twice: the later occurred_at wins (event id breaks ties, so replays agree).
    if old is None or (occurred, eid) > (at(old["at"]), old["event_id"]):
        sheet = packed if packed is not None else sheets.pack(answers or {}, blueprint_of(t, s), section)
        part["sheets"][section] = {**sheet, "completion": p.completion, "at": occurred.isoformat(), "event_id": eid}
    part["autosave"].pop(section, None)
    refresh(t, s, part)
    advance_window(t, s, p.session_id)


def session_closed(t: Turn, p: ev.SessionClosedPayload) -> None:
    s = lab_session(t, p.session_id)
    s["closed"] = True
    s["window_closed"] = True
    s["closed_by"] = str(t.trigger.event_id)
    t.state.put_session(p.session_id, s)
    refresh_session(t, p.session_id, s)
    t.summary_due.add(p.session_id)
