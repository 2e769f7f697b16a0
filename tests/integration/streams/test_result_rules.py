"""Issue 14 on the real pipeline (embedded broker, a worker process, PostgreSQL, the SI ASN emulator): where a
result is filed and whether it counts, checked result by result against the simulator's truth and the tests'
own re-implementation of docs/scoring.md and docs/accreditation.md (tests/support/independent_scorer.py).

(a) susulan across agencies and purposes are filed at home, categorised by the home purpose;
(b) a checked-in participant who answers nothing is ``incomplete``: stored, its pushes held, SI ASN untouched
    until an operator releases it;
(c) sessions run by an institution whose accreditation expired before the test date, by one whose category does
    not cover the tier, or by one no registry knows, give ``not_recognised`` results with no push at all, while
    BKN's own sessions (no organiser, or a ``bkn-*`` id) and accredited ones count.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cact.processes import WorkerProcess, consumer_groups, siasn_env, wait_until_pushed
from producers.daysender import send_day
from producers.simulator import SimConfig, SimDay, build_day
from producers.truth import GroundTruth, TruthParticipant
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.domain import PositionTier
from schemas.settings import Settings, settings_env
from sinks import models as m
from sinks.siasn.emulator import EmulatorThread
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed

BLUEPRINTS = {p.stem: json.loads(p.read_text()) for p in SAMPLE_DIR.glob("*.json")}
EVERY_TIER = [t.value for t in PositionTier]
#: The tier setting the accreditation worker runs with: category A every tier, category B Pelaksana only.
CATEGORY_TIERS = {"A": EVERY_TIER, "B": ["pelaksana"]}
#: 31 August 2026: the day several A accreditations of the 2024 registry end (still valid on that day).
TEST_DAY = date(2026, 8, 31)
#: What the organisers of the day's first agencies stand for, by their registry row (schemas/accreditation/).
ORGANISERS = (
    "kemenkeu-assessment-center",  # A, expired 2025-10-19: nothing counts
    "kemenag-biro-kepegawaian",    # B, valid to 2027-10-25: only Pelaksana counts under CATEGORY_TIERS
    "kemenhan-adc",                # A, expires 2026-08-31, the test day itself: everything counts
    "lembaga-tak-terdaftar",       # in no registry: nothing counts
    "bkn-kanreg-viii",             # BKN's own unit by its id: everything counts, registry or not
)


def run_until_done(settings: Settings, worker: WorkerProcess) -> None:
    asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=300, progress=worker.check))


def stored(store: ResultsStore) -> dict[tuple[str, str], dict[str, Any]]:
    """Current results by (session sat, NIP), exactly one each."""
    rows = store.current_results()
    out = {(r["session_id"], r["nip"]): r for r in rows}
    assert len(out) == len(rows)
    return out


def compare_every_result(results: dict[tuple[str, str], dict[str, Any]], truth: GroundTruth, scorer: Any,
                         **rules: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Every stored current result against the truth: the same keys, and each equal to the recomputation."""
    expected = truth.results()
    assert results.keys() == expected.keys()
    references = {}
    for key, t in expected.items():
        references[key] = scorer.reference(BLUEPRINTS[t.blueprint_id], t, **rules)
        assert scorer.observed(results[key]) == references[key], (key, t.tier, results[key].get("standing_detail"))
    return references


@pytest.mark.broker
@pytest.mark.postgres
def test_susulan_results_are_filed_at_home_with_the_home_category(pipeline_kafka: Settings, pg_database: str,
                                                                   tmp_path: Path, scorer: Any) -> None:
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database})
    day: SimDay = build_day(SimConfig(participants=480, seats=20, reschedule_share=0.8, position_filling_share=0.5,
                                      malformed=0, seed=31), BlueprintRegistry.from_dir())
    truth = day.ground_truth()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        send_day(settings, day)
        run_until_done(settings, worker)
    finally:
        worker.stop()
    results = stored(ResultsStore(pg_database))
    compare_every_result(results, truth, scorer)

    # the day really has what the rule is about: susulan sat in another agency's session, both ways across purposes
    susulan = {k: t for k, t in truth.results().items() if t.attended_susulan}
    crossed = Counter((t.purpose.value, truth.sessions[t.scored_session].purpose.value) for t in susulan.values())
    assert crossed[("mapping", "position_filling")] and crossed[("position_filling", "mapping")], crossed
    for key, t in susulan.items():
        r, host = results[key], truth.sessions[t.scored_session]
        assert (r["activity_id"], r["agency_id"]) != (host.activity_id, host.agency_id)
        assert r["category"] in ({"Optimal", "Cukup Optimal", "Kurang Optimal"} if t.purpose.value == "mapping"
                                 else {"MS", "MMS", "KMS"})
    # each activity has exactly the results of its own people, wherever they sat
    assert Counter(r["activity_id"] for r in results.values()) == Counter(
        t.activity_id for t in truth.participants.values() if t.attended_anywhere)
    assert len({(r["nip"], r["activity_id"]) for r in results.values()}) == len(
        {r["result_id"] for r in results.values()})


def _organised_day() -> tuple[SimConfig, SimDay]:
    """A day whose first agencies' sessions are run by the ORGANISERS (in order of their first session); the
    rest by BKN. Organisers do not change the day: the base day tells which agencies there are."""
    cfg = SimConfig(participants=400, seats=20, reschedule_share=0.5, position_filling_share=0.4, malformed=0,
                    blank_sheets=8, seed=1408, day=TEST_DAY)
    base = build_day(cfg, BlueprintRegistry.from_dir())
    agencies = list(dict.fromkeys(p.agency_id for p in sorted(base.sessions.values(), key=lambda p: p.session_id)))
    cfg = replace(cfg, organisers=dict(zip(agencies, ORGANISERS)))
    return cfg, build_day(cfg, BlueprintRegistry.from_dir())


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cact.cli", *args], env={**os.environ, **settings_env(settings)},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.broker
@pytest.mark.postgres
def test_blank_sheets_are_held_and_unaccredited_sessions_never_reach_siasn(pipeline_kafka: Settings, pg_database: str,
                                                                          tmp_path: Path, scorer: Any,
                                                                          accreditation_rule: Any) -> None:
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database, "siasn_push_enabled": True,
                                                 "siasn_retry_base_seconds": 0.2, "siasn_retry_max_seconds": 1.0})
    cfg, day = _organised_day()
    truth = day.ground_truth()
    accreditation = accreditation_rule.read(tiers=CATEGORY_TIERS)
    store = ResultsStore(pg_database)
    with EmulatorThread() as emu:
        # pipeline_kafka names the shipped registry, the one IndependentAccreditation reads
        assert (settings.accreditation_file is not None
                and settings.accreditation_file.samefile(accreditation_rule.SHIPPED))
        worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={
            **siasn_env(emu), "CACT_ACCREDITATION_CATEGORY_TIERS": json.dumps(CATEGORY_TIERS)})
        try:
            send_day(settings, day)
            run_until_done(settings, worker)
            wait_until_pushed(store, timeout=240, progress=worker.check)
            results = stored(store)
            expected = compare_every_result(results, truth, scorer, accreditation=accreditation)
            saved_before_release = emu.stats()["saves_by_nip"]

            # an operator releases one blank sheet: only then does it reach SI ASN, once
            incomplete = sorted(k for k, e in expected.items() if e["standing"] == "incomplete")
            released = truth.results()[incomplete[0]]
            done = cli(settings, "siasn", "release", "--nip", released.nip, "--activity", released.activity_id,
                       "--reason", "paper sheet found and keyed in", "--operator", "test")
            assert done.returncode == 0, done.stderr
            wait_until_pushed(store, timeout=120, progress=worker.check)
            # a not_recognised result cannot be released
            refused_key = next(k for k, e in expected.items() if e["standing"] == "not_recognised")
            refused = truth.results()[refused_key]
            no = cli(settings, "siasn", "release", "--nip", refused.nip, "--activity", refused.activity_id,
                     "--reason", "try", "--operator", "test")
            assert no.returncode == 1 and "not_recognised" in no.stderr, no.stderr
            saved_after_release = emu.stats()["saves_by_nip"]
        finally:
            worker.stop()

    standing = {k: e["standing"] for k, e in expected.items()}
    counts = Counter(standing.values())
    assert counts["counted"] > 100 and counts["incomplete"] >= 2 and counts["not_recognised"] > 20, counts

    # (b) every blank sheet (its organiser aside) is incomplete, and nobody else is
    people: dict[tuple[str, str], TruthParticipant] = truth.results()
    recognised = {k for k, t in people.items() if accreditation.recognised(t.organiser_id, t.tier.value, TEST_DAY)}
    assert {k for k in recognised if people[k].blank} == {k for k, s in standing.items() if s == "incomplete"}
    # both kinds: walked out after check-in (sections not started), sat it out and handed in blank sheets
    assert {c for k in incomplete for c in expected[k]["completion"].values()} >= {"not_started", "submitted"}

    # (c) per organiser, as its registry row and the tier setting say
    by_organiser: dict[str | None, Counter[str]] = {}
    for k, t in people.items():
        by_organiser.setdefault(t.organiser_id, Counter())[standing[k]] += 1
    expired, category_b, last_day, unknown, bkn_unit = ORGANISERS
    for organiser in (expired, unknown):  # blank sheets too: not recognised comes first
        assert set(by_organiser[organiser]) == {"not_recognised"}, (organiser, by_organiser[organiser])
    for organiser in (last_day, bkn_unit, None):  # counted, but for blank sheets (checked above)
        assert "not_recognised" not in by_organiser[organiser] and by_organiser[organiser]["counted"], organiser
    assert any(t.blank and t.organiser_id == expired for t in people.values())
    b_tiers = {(people[k].tier.value, standing[k]) for k in people if people[k].organiser_id == category_b
               and not people[k].blank}
    assert ("pelaksana", "counted") in b_tiers and {s for tier, s in b_tiers if tier != "pelaksana"} == {
        "not_recognised"}, b_tiers
    # a susulan sat at an unrecognised organiser: not recognised, and still filed at home (compared above)
    assert any(t.attended_susulan and standing[k] == "not_recognised" for k, t in people.items())

    # SI ASN: counted results once each; held ones only once released; not_recognised ones have no push at all
    counted = {people[k].nip for k, s in standing.items() if s == "counted"}
    assert saved_before_release == {nip: 1 for nip in counted}
    assert saved_after_release == {**saved_before_release, released.nip: 1}
    status_of: dict[str, set[str]] = {}
    with Session(store.engine) as s:
        for push in s.scalars(select(m.SiasnOutbox)):
            status_of.setdefault(push.nip, set()).add(push.status)
    for k, st in standing.items():
        nip = people[k].nip
        if st == "not_recognised":
            assert nip not in status_of, (k, status_of.get(nip))
        elif st == "incomplete":
            assert status_of[nip] == ({"delivered"} if nip == released.nip else {"held"}), (k, status_of[nip])
        else:
            assert status_of[nip] == {"delivered"}, (k, status_of[nip])
    assert set(cfg.organisers.values()) == set(ORGANISERS)  # every kind of organiser ran a session
