"""The uninterrupted reference run of a seed, checked against the simulator's ground truth, and the verdict
of a faulted run against it.

A reference is only worth comparing with when it is right itself, so before use it is held to the ground truth
on exactly what issue 12 saw go wrong: every attendee has one current result, each section counts the answers
the participant really gave with the completion the lab reported (not an autosave's), everyone who sat checked
in, nobody else did, and each malformed message is one dead letter. A reference that fails this fails every
scenario that uses it, with the reason, rather than making two wrong runs agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.faults.compare import TableDiff, check_outbox, compare_snapshots, format_diffs, ignored_columns
from bench.faults.harness import ORGANISER_STANDING, RunResult, Size, run_day, simulated_day
from bench.faults.killer import Kill
from producers.simulator import SimDay
from schemas.nip import mask_nip


def check_against_truth(day: SimDay, snapshot: dict[str, list[dict[str, Any]]]) -> list[str]:
    """What the ground truth says the store must hold; one line per disagreement (NIPs masked)."""
    problems: list[str] = []
    truth = {t.nip: t for t in day.truth.values()}
    current = {r["nip"]: r for r in snapshot.get("results", []) if r["status"] == "current"}
    sat = {nip for nip, t in truth.items() if t.attended_anywhere and t.scored_session not in day.silent_sessions}
    for nip in sorted(sat - set(current)):
        problems.append(f"{mask_nip(nip)} sat the test and has no current result")
    for nip in sorted(set(current) - sat):
        problems.append(f"{mask_nip(nip)} has a result but did not sit")
    sections = {(s["nip"], s["result_version"], s["section"]): s for s in snapshot.get("section_scores", [])}
    for nip, r in sorted(current.items()):
        t = truth.get(nip)
        if t is None or nip not in sat:
            continue
        for section, sheet in t.sheets.items():
            s = sections.get((nip, r["result_version"], str(section)))
            answered = sum(v is not None for v in sheet.values())
            if s is None:
                problems.append(f"{mask_nip(nip)}: no {section} score")
            elif (s["answered"], s["completion"]) != (answered, t.completion[section]):
                problems.append(f"{mask_nip(nip)} {section}: {s['answered']} answered ({s['completion']}), "
                                f"truth {answered} ({t.completion[section]})")
    for nip, r in sorted(current.items()):
        t = truth.get(nip)
        if t is None or nip not in sat:
            continue
        want = ORGANISER_STANDING.get(t.organiser_id or "", "counted")
        if want == "counted" and t.blank:
            want = "incomplete"
        got = (r.get("payload") or {}).get("standing", "counted")
        if got != want:
            problems.append(f"{mask_nip(nip)}: result is {got}, truth {want}")
    checked_in = {a["nip"] for a in snapshot.get("attendance", []) if a["status"] == "checked_in"}
    attended = {nip for nip, t in truth.items() if t.attended_anywhere}
    for nip in sorted(attended - checked_in):
        problems.append(f"{mask_nip(nip)} attended and is not checked in anywhere")
    for nip in sorted(checked_in - attended):
        problems.append(f"{mask_nip(nip)} is checked in but did not attend")
    if len(snapshot.get("deadletters", [])) != len(day.malformed):
        problems.append(f"{len(snapshot.get('deadletters', []))} dead letters, {len(day.malformed)} malformed sent")
    return problems


@dataclass
class Reference:
    run: RunResult
    problems: list[str]  # against the ground truth and the outbox rules: must be empty


class References:
    """One uninterrupted run per (size, seed), made on first use and shared by every scenario of that seed."""

    def __init__(self, workdir: Path, console: Console | None = None) -> None:
        self.workdir, self.console = workdir, console
        self._runs: dict[tuple[Size, int], Reference] = {}

    def made(self) -> list[tuple[int, Reference]]:
        """(seed, reference) of every reference run so far, in the order they were made."""
        return [(seed, ref) for (_, seed), ref in self._runs.items()]

    def get(self, size: Size, seed: int) -> Reference:
        # The drain timeout is how long to wait, not what the day is: a scenario that waits longer (hostile
        # records) still compares with the same reference.
        key = (replace(size, drain_timeout_s=0.0), seed)
        if key not in self._runs:
            run = run_day("reference", size, seed, self.workdir / f"reference-{size.participants}-{seed}",
                          console=self.console)
            problems = [f"reference: {p}" for p in check_against_truth(simulated_day(size, seed), run.snapshot)]
            problems += [f"reference: {p}" for p in check_outbox(run.snapshot)]
            problems += [f"reference: {e.describe()}" for e in run.unexpected_exits]
            if run.drain_error:
                problems.append(f"reference did not finish: {run.drain_error}")
            self._runs[key] = Reference(run, problems)
        return self._runs[key]


@dataclass
class ScenarioResult:
    """A faulted run against its reference: ok when every list here is empty."""

    scenario: str
    seed: int
    participants: int
    diffs: list[TableDiff]
    outbox_problems: list[str]
    reference_problems: list[str]
    unexpected_exits: list[str]
    drain_error: str | None
    kills: list[Kill] = field(default_factory=list)
    faults: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    reference_seconds: float = 0.0
    workdir: str = ""
    checks: list[str] = field(default_factory=list)  # the scenario's own assertions that failed

    @property
    def differences(self) -> int:
        return sum(d.differences for d in self.diffs)

    @property
    def ok(self) -> bool:
        return not (self.differences or self.outbox_problems or self.reference_problems or self.unexpected_exits
                    or self.drain_error or self.checks)

    def explain(self, first: int = 5) -> str:
        """Everything that went wrong, readable in a test failure or the soak's log; '' when ok."""
        if self.ok:
            return ""
        parts = [f"scenario {self.scenario} (seed {self.seed}, {self.participants} participants, "
                 f"{len(self.kills)} kills; logs in {self.workdir}):"]
        parts += [f"  {p}" for p in self.reference_problems[:first]]
        if self.drain_error:
            parts.append(f"  did not finish: {self.drain_error}")
        parts += [f"  unexpected exit: {e}" for e in self.unexpected_exits]
        parts += [f"  {c}" for c in self.checks]
        parts += [f"  outbox/SI ASN: {p}" for p in self.outbox_problems[:first]]
        if len(self.outbox_problems) > first:
            parts.append(f"  … {len(self.outbox_problems) - first} more outbox/SI ASN problems")
        diff = format_diffs(self.diffs, first)
        if diff:
            parts.append(f"  differences from the reference (first {first} per table):")
            parts += ["    " + line for line in diff.splitlines()]
        return "\n".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "seed": self.seed, "participants": self.participants, "ok": self.ok,
            "seconds": round(self.seconds, 1), "reference_seconds": round(self.reference_seconds, 1),
            "differences": self.differences,
            "tables": {d.table: d.counts() for d in self.diffs},
            "outbox_problems": self.outbox_problems, "reference_problems": self.reference_problems,
            "unexpected_exits": self.unexpected_exits, "drain_error": self.drain_error, "checks": self.checks,
            "kills": [k.as_json() for k in self.kills], "faults": self.faults,
            "not_compared": ignored_columns(),
            "first_differences": format_diffs(self.diffs, 5).splitlines(), "workdir": self.workdir,
        }


def verdict(scenario: str, size: Size, reference: Reference, run: RunResult, *,
            kills: Sequence[Kill] = (), checks: Sequence[str] = ()) -> ScenarioResult:
    return ScenarioResult(
        scenario=scenario, seed=run.seed, participants=size.participants,
        diffs=compare_snapshots(reference.run.snapshot, run.snapshot),
        outbox_problems=check_outbox(run.snapshot), reference_problems=list(reference.problems),
        unexpected_exits=[e.describe() + (f"\n      {e.log_tail[-600:]!r}" if e.log_tail else "")
                          for e in run.unexpected_exits],
        drain_error=run.drain_error, kills=list(kills), faults=run.faults, seconds=run.seconds,
        reference_seconds=reference.run.seconds, workdir=run.workdir,
        checks=list(checks))
