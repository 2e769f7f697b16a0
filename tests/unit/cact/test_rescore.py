"""`cact rescore` without a broker: which sessions it asks, and how it decides the rescore happened.

The store is a fake with the four reads the command makes, the clock a counter that ``sleep`` advances, so
a five-minute wait runs in no time and "the worker did it at t=3 s" is an event in the fake's timeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cact import rescore as rs
from cact import rescore_report
from schemas import events as ev
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry, load_blueprint
from schemas.settings import Settings
from schemas.topics import CONTROL
from sinks.rescore_queries import HeldResult, Refusal

A, B, C = "ACT-202611-kemenpora", "ACT-202611-pemkot-samarinda", "ACT-202611-pemprov-papua-barat"
NIPS = [f"1990010120150310{n:02d}" for n in range(1, 40)]


def held(n: int, session: str, activity: str = A, version: int = 1, blueprint: str = "cact-full",
         bpv: str = "2026.1") -> HeldResult:
    return HeldResult(NIPS[n], activity, session, version, blueprint, bpv)


class FakeStore:
    """The results store as the command sees it; ``at`` schedules what the worker and the sink do, by time."""

    def __init__(self, results: Iterable[HeldResult], checked_in: Iterable[tuple[str, str]] = (),
                 activities: dict[str, str] | None = None) -> None:
        self.results = {(r.nip, r.activity_id): r for r in results}
        self.attendance = set(checked_in)
        self.activities = activities or {}
        self.deadletters: dict[tuple[str, int, int], Refusal] = {}
        self.timeline: list[tuple[float, Callable[[], None]]] = []

    def results_of(self, activity_id: str) -> list[HeldResult]:
        return [r for r in self.results.values() if r.activity_id == activity_id]

    def results_sat_in(self, session_ids: Collection[str]) -> list[HeldResult]:
        return [r for r in self.results.values() if r.session_id in session_ids]

    def checked_in(self, activity_id: str) -> set[tuple[str, str]]:
        return {(s, n) for s, n, a in self.attendance if a == activity_id}  # type: ignore[misc]

    def activities_of(self, session_ids: Collection[str]) -> dict[str, str]:
        return {s: a for s, a in self.activities.items() if s in session_ids}

    def refusals(self, topic: str, positions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Refusal]:
        wanted = set(positions)
        return {(p, o): r for (t, p, o), r in self.deadletters.items() if t == topic and (p, o) in wanted}

    # ---- what the worker does ------------------------------------------------------------------

    def rescore(self, session: str, activity: str = A, bpv: str = "2026.2") -> None:
        for key, r in list(self.results.items()):
            if r.session_id == session and r.activity_id == activity:
                self.results[key] = replace(r, result_version=r.result_version + 1, blueprint_version=bpv)

    def refuse(self, position: tuple[int, int], reason: str = "unknown_session", detail: str = "") -> None:
        self.deadletters[(CONTROL.name, *position)] = Refusal(reason, detail)


class FakeClock:
    def __init__(self, store: FakeStore) -> None:
        self.now = 0.0
        self.store = store
        self.slept = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += 1
        self.now += seconds
        due = [(t, f) for t, f in self.store.timeline if t <= self.now]
        self.store.timeline = [(t, f) for t, f in self.store.timeline if t > self.now]
        for _, act in due:
            act()


def kemenpora_day() -> FakeStore:
    """The issue's day: kemenpora (A) sits S1 and S2 at home; two of its participants sat susulan in S3, a
    samarinda (B) session; a papua-barat (C) participant sat susulan in S1; one A participant sat mansoskul-only
    in S4 (B's), another test; B's own participants in S3."""
    return FakeStore(
        [held(0, "S1"), held(1, "S1"), held(2, "S2"), held(3, "S2"), held(4, "S3"), held(5, "S3"),
         held(6, "S1", activity=C), held(7, "S3", activity=B), held(8, "S3", activity=B),
         held(9, "S4", blueprint="mansoskul-only"), held(10, "S4", activity=B, blueprint="mansoskul-only"),
         held(11, "S9", activity=B)],
        activities={"S1": A, "S2": A, "S3": B, "S4": B, "S9": B})


def positions(plan: rs.RescorePlan) -> dict[str, tuple[int, int]]:
    return {s: (n % 4, 100 + n) for n, s in enumerate(plan.sessions)}


# ------------------------------------------------------------------------------------------------
# Which sessions
# ------------------------------------------------------------------------------------------------

def test_the_sessions_are_where_the_activitys_results_were_sat_not_the_activitys_own() -> None:
    plan = rs.select(kemenpora_day(), A, "cact-full", "2026.2")
    assert plan.sessions == ("S1", "S2", "S3")
    assert set(plan.targets) == {NIPS[n] for n in range(6)}
    assert plan.hosts == {"S3": B}
    assert plan.other_blueprints == {"mansoskul-only": 1}  # S4 runs another test: not asked, not waited for
    # Others sat in those sessions, which must keep their version: C's susulan in S1, B's own in S3.
    assert set(plan.bystanders) == {(NIPS[6], C), (NIPS[7], B), (NIPS[8], B)}


def test_a_session_where_a_participant_is_still_sitting_is_asked_unless_it_runs_another_test() -> None:
    store = kemenpora_day()
    store.attendance |= {("S5", NIPS[20], A), ("S4", NIPS[21], A), ("S1", NIPS[0], A), ("S3", NIPS[22], B)}
    plan = rs.select(store, A, "cact-full", "2026.2")
    assert plan.sessions == ("S1", "S2", "S3", "S5")  # S5: no result yet, so its test is unknown: asked
    assert plan.sitting == {"S5": 1}  # S1's checked-in participant has a result; S4 runs mansoskul-only
    assert set(plan.targets) == {NIPS[n] for n in range(6)}  # nothing to wait for in S5


def test_a_second_run_asks_only_for_what_has_not_moved() -> None:
    store = kemenpora_day()
    store.rescore("S1")
    store.rescore("S2")
    plan = rs.select(store, A, "cact-full", "2026.2")
    assert plan.sessions == ("S3",) and set(plan.targets) == {NIPS[4], NIPS[5]} and plan.already == 4
    store.rescore("S3")
    done = rs.select(store, A, "cact-full", "2026.2")
    assert done.sessions == () and done.targets == {} and done.already == 6


def test_an_activity_with_nothing_in_the_store_is_refused_naming_the_activity() -> None:
    with pytest.raises(rs.RescoreError, match="no result and no checked-in participant of activity ACT-X"):
        rs.select(kemenpora_day(), "ACT-X", "cact-full", "2026.2")


def test_a_correction_of_a_blueprint_the_activity_did_not_sit_is_refused() -> None:
    with pytest.raises(rs.RescoreError,
                       match=r"no result on blueprint mansoskul-only \(its results are on cact-full\)"):
        rs.select(FakeStore([held(0, "S1")]), A, "mansoskul-only", "2026.2")


def test_the_requests_are_one_per_session_on_the_control_topic_keyed_by_session() -> None:
    plan = rs.select(kemenpora_day(), A, "cact-full", "2026.2")
    reqs = rs.requests(plan, "key of MSK-M1-001 corrected")
    assert [r.key() for r in reqs] == ["S1", "S2", "S3"]
    assert all(type(r).topic is CONTROL for r in reqs)
    assert {(r.payload.activity_id, r.payload.blueprint_id, r.payload.blueprint_version) for r in reqs} == {
        (A, "cact-full", "2026.2")}
    assert len({r.event_id for r in reqs}) == 3


# ------------------------------------------------------------------------------------------------
# The wait
# ------------------------------------------------------------------------------------------------

def test_done_when_every_result_moved_and_others_kept_their_version() -> None:
    store = kemenpora_day()
    plan = rs.select(store, A, "cact-full", "2026.2")
    clock = FakeClock(store)
    store.timeline = [(2, lambda: store.rescore("S1")), (3, lambda: store.rescore("S3")),
                      (5, lambda: store.rescore("S2"))]
    seen: list[tuple[int, int, int]] = []
    out = rs.wait(plan, positions(plan), store, timeout=300, clock=clock, sleep=clock.sleep,
                  progress=lambda *a: seen.append(a))
    assert out.ok and set(out.moved) == set(plan.targets) and out.not_moved == {} and out.refused == {}
    assert out.seconds == 5 and clock.slept == 5  # stops at the last move, not at the timeout
    assert seen[0] == (0, 6, 0) and seen[-1] == (6, 6, 0)
    assert (out.bystanders_unchanged, out.bystanders_changed) == (3, 0)


def test_a_refused_session_ends_the_wait_for_its_results_and_is_reported_with_its_dead_letter() -> None:
    store = kemenpora_day()
    plan = rs.select(store, A, "cact-full", "2026.2")
    at = positions(plan)
    clock = FakeClock(store)
    store.timeline = [(1, lambda: store.refuse(at["S3"], "unknown_session", "session S3 is not scheduled")),
                      (4, lambda: store.rescore("S1")), (6, lambda: store.rescore("S2"))]
    store.deadletters[("cact.lab.v1", *at["S2"])] = Refusal("bad_json", "")  # S2's position on another topic
    out = rs.wait(plan, at, store, timeout=300, clock=clock, sleep=clock.sleep)
    assert not out.ok and out.seconds == 6  # fast: S1 and S2 finished, S3's results will not move
    assert out.refused == {"S3": Refusal("unknown_session", "session S3 is not scheduled")}
    assert set(out.not_moved) == {NIPS[4], NIPS[5]} and len(out.moved) == 4
    line = rescore_report.failure_line(out)
    assert line.startswith(f"rescore of {A} incomplete: 2 of 6 results not moved to 2026.2")
    assert "1 session(s) refused (unknown_session): S3" in line and "\n" not in line


def test_every_session_refused_ends_at_once() -> None:
    store = kemenpora_day()
    plan = rs.select(store, A, "cact-full", "2026.2")
    at = positions(plan)
    for session in plan.sessions:
        store.refuse(at[session], "unknown_blueprint", "blueprint cact-full version 2026.2 is not loaded")
    clock = FakeClock(store)
    out = rs.wait(plan, at, store, timeout=300, clock=clock, sleep=clock.sleep)
    assert out.seconds == 0 and clock.slept == 0 and set(out.refused) == {"S1", "S2", "S3"}
    assert len(out.not_moved) == 6


def test_results_still_on_the_old_key_at_the_timeout_are_listed() -> None:
    store = kemenpora_day()
    plan = rs.select(store, A, "cact-full", "2026.2")
    clock = FakeClock(store)
    # S1 got a new version, but on the old key (a late sheet, not the rescore); C's bystander changed too.
    store.timeline = [(2, lambda: store.rescore("S1", bpv="2026.1")), (3, lambda: store.rescore("S2")),
                      (4, lambda: store.rescore("S1", activity=C, bpv="2026.2"))]
    out = rs.wait(plan, positions(plan), store, timeout=30, clock=clock, sleep=clock.sleep)
    assert not out.ok and out.seconds == 30 and out.refused == {}
    assert set(out.not_moved) == {NIPS[0], NIPS[1], NIPS[4], NIPS[5]}
    assert out.not_moved[NIPS[0]][1] is not None and out.not_moved[NIPS[0]][1].result_version == 2
    assert (out.bystanders_unchanged, out.bystanders_changed) == (2, 1)
    assert rescore_report.failure_line(out).startswith(
        f"rescore of {A} incomplete: 4 of 6 results not moved to 2026.2;")


def test_the_report_masks_nips_and_names_refused_sessions_and_untouched_others() -> None:
    store = kemenpora_day()
    plan = rs.select(store, A, "cact-full", "2026.2")
    at = positions(plan)
    store.refuse(at["S3"], "unknown_session", "session S3 has no participant of activity " + A)
    store.rescore("S1")
    store.rescore("S2")
    clock = FakeClock(store)
    out = rs.wait(plan, at, store, timeout=10, clock=clock, sleep=clock.sleep)
    console = Console(record=True, width=200)
    rescore_report.report(out, console)
    text = console.export_text()
    assert NIPS[4] not in text and "19900101********05" in text and "session refused (unknown_session)" in text
    assert "sessions whose request the worker refused" in text and "has no participant of activity" in text
    assert "3 untouched" in text and "mansoskul-only: 1" in text
    assert "1 of other activities" in text  # S3 is samarinda's: kemenpora's susulan sat there


# ------------------------------------------------------------------------------------------------
# The corrected file
# ------------------------------------------------------------------------------------------------

def fixed_file(tmp_path: Path, version: str = "2026.2", mutate: Callable[[dict[str, Any]], None] | None = None) -> Path:
    data = json.loads((SAMPLE_DIR / "cact-full.json").read_text())
    data["version"] = version
    item = data["sections"][0]["subtests"][0]["items"][0]
    item["options"] = {k: 4 for k in item["options"]}
    if mutate:
        mutate(data)
    path = tmp_path / f"upload-{version}-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(data))
    return path


def test_the_corrected_file_goes_to_the_corrections_folder_the_workers_read(tmp_path: Path) -> None:
    settings = Settings(blueprint_corrections_dir=tmp_path / "shared" / "corrections")
    path = fixed_file(tmp_path)
    corrected = load_blueprint(path)
    target, written = rs.install(settings, path, corrected, BlueprintRegistry.from_settings(settings))
    assert written and target == tmp_path / "shared" / "corrections" / "cact-full-2026.2.json"
    assert target.read_bytes() == path.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left behind
    reg = BlueprintRegistry.from_settings(settings)  # what a worker (re)loads
    assert reg.get("cact-full", "2026.2") == corrected and reg.get("cact-full", "2026.1") is not None
    # The same file again (a second activity, a re-run): already there, nothing written twice.
    assert rs.install(settings, fixed_file(tmp_path), corrected, reg) == (target, False)


def test_a_version_that_exists_with_other_content_is_refused(tmp_path: Path) -> None:
    settings = Settings(blueprint_corrections_dir=tmp_path / "corrections")
    path = fixed_file(tmp_path, version="2026.1")  # the shipped version number, with another key
    with pytest.raises(rs.RescoreError, match="cact-full version 2026.1 already exists with other content .*"
                                              "cact-full.json.*new version"):
        rs.install(settings, path, load_blueprint(path), BlueprintRegistry.from_settings(settings))
    assert not (tmp_path / "corrections").exists()


def test_a_blueprint_id_the_workers_do_not_know_is_refused(tmp_path: Path) -> None:
    path = fixed_file(tmp_path, mutate=lambda d: d.update(blueprint_id="cact-ful"))
    with pytest.raises(rs.RescoreError, match="blueprint cact-ful is not one the workers load"):
        rs.check_installable(load_blueprint(path), BlueprintRegistry.from_dir(), path)


def test_a_correction_that_changes_the_items_is_refused(tmp_path: Path) -> None:
    def drop(d: dict[str, Any]) -> None:
        d["sections"][1]["subtests"][0]["items"].pop(0)

    path = fixed_file(tmp_path, mutate=drop)
    with pytest.raises(rs.RescoreError,
                       match="not a key correction of 2026.1: section emerging_skills: items ES-01-001 "
                             "missing"):
        rs.check_correction(load_blueprint(path), BlueprintRegistry.from_dir(), ["2026.1"])
    rs.check_correction(load_blueprint(fixed_file(tmp_path)), BlueprintRegistry.from_dir(), ["2026.1"])


def test_run_plans_before_it_installs_or_sends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(blueprint_corrections_dir=tmp_path / "corrections")
    monkeypatch.setenv("COLUMNS", "200")
    sent: list[list[ev.RescoreRequested]] = []
    monkeypatch.setattr(rs, "send", lambda _s, events: sent.append(events) or {})
    console = Console(record=True)
    with pytest.raises(rs.RescoreError, match="activity ACT-X"):
        rs.run(settings, kemenpora_day(), "ACT-X", fixed_file(tmp_path), "fix", 0, console)
    assert sent == [] and not (tmp_path / "corrections").exists()
    assert rs.run(settings, kemenpora_day(), A, fixed_file(tmp_path), "fix", 0, console, dry_run=True) is None
    assert sent == [] and not (tmp_path / "corrections").exists()
    assert f"dry run: 6 results of {A} in 3 sessions would move" in " ".join(console.export_text().split())
    table = capsys.readouterr().out
    assert all(session in table for session in ("S1", "S2", "S3")) and B in table and "S4" not in table
    assert rs.run(settings, kemenpora_day(), A, fixed_file(tmp_path), "fix", 0, console) is None
    assert [[r.key() for r in batch] for batch in sent] == [["S1", "S2", "S3"]]
    assert (tmp_path / "corrections" / "cact-full-2026.2.json").exists()
