"""What ``cact rescore`` shows: the plan, the outcome, refused sessions and results that did not move.

Apart from cact/rescore.py, which plans, sends and waits, so the checks there return data and only this
module draws.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from schemas.errors import clean
from schemas.nip import mask_nip

if TYPE_CHECKING:  # cact/rescore.py draws its dry run with plan_table
    from cact.rescore import Outcome, RescorePlan

#: Rows of a list shown in full; the rest are counted.
LIST_LIMIT = 50


def plan_table(plan: RescorePlan) -> Table:
    """Per session asked: whose session it is, what must move there, and who else sat there."""
    table = Table(title=f"rescore of activity {plan.activity_id} with {plan.blueprint_id} {plan.version}: "
                        "sessions to ask")
    for column in ("session", "session of", "results to move", "still sitting", "other activities' results"):
        table.add_column(column, overflow="fold")
    moving = Counter(h.session_id for h in plan.targets.values())
    others = Counter(b.session_id for b in plan.bystanders.values())
    for session in plan.sessions:
        table.add_row(session, plan.hosts.get(session, "this activity"), str(moving.get(session, 0)),
                      str(plan.sitting.get(session, 0)), str(others.get(session, 0)))
    return table


def summary_table(outcome: Outcome) -> Table:
    p = outcome.plan
    table = Table(title=f"rescore of activity {p.activity_id} with {p.blueprint_id} {p.version}")
    table.add_column("measure", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")
    rows = [
        (f"results moved to {p.version}", f"{len(outcome.moved)} of {len(p.targets)}"),
        ("  from versions", ", ".join(p.versions_before) or "-"),
        ("results not moved", str(len(outcome.not_moved))),
        ("sessions asked", f"{len(p.sessions)} ({len(p.hosts)} of other activities, where its participants sat "
                           "susulan)"),
        ("sessions refused", str(len(outcome.refused))),
        ("participants still sitting (get the new key)", str(sum(p.sitting.values()))),
        (f"results already on {p.version}", str(p.already)),
        ("results on another blueprint (not affected)",
         ", ".join(f"{bp}: {n}" for bp, n in p.other_blueprints.items()) or "0"),
        ("other activities' results in these sessions", f"{outcome.bystanders_unchanged} untouched"
         + (f", {outcome.bystanders_changed} changed meanwhile" if outcome.bystanders_changed else "")),
        ("waited", f"{outcome.seconds:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def refused_table(outcome: Outcome) -> Table:
    table = Table(title="sessions whose request the worker refused")
    for column in ("session", "reason", "detail", "results left behind"):
        table.add_column(column, overflow="fold")  # a narrow terminal or a log: wrapped, never cut
    behind = Counter(before.session_id for before, _ in outcome.not_moved.values())
    for session, refusal in sorted(outcome.refused.items()):
        table.add_row(session, refusal.reason, clean(refusal.detail, 300), str(behind.get(session, 0)))
    return table


def not_moved_table(outcome: Outcome, limit: int = LIST_LIMIT) -> Table:
    table = Table(title="results not moved")
    for column in ("NIP", "session", "version", "blueprint version", "why"):
        table.add_column(column, overflow="fold")  # a narrow terminal or a log: wrapped, never cut
    rows = sorted(outcome.not_moved.items(), key=lambda item: (item[1][0].session_id, item[0]))
    for nip, (before, now) in rows[:limit]:
        why = (f"session refused ({outcome.refused[before.session_id].reason})" if before.session_id in outcome.refused
               else "no current result any more" if now is None
               else "not rescored in time")
        current = now or before
        table.add_row(mask_nip(nip), before.session_id, str(current.result_version), current.blueprint_version, why)
    if len(rows) > limit:
        table.add_row(f"… and {len(rows) - limit} more", "", "", "", "")
    return table


def failure_line(outcome: Outcome) -> str:
    p = outcome.plan
    parts = [f"{len(outcome.not_moved)} of {len(p.targets)} results not moved to {p.version}"]
    if outcome.refused:
        reasons = ", ".join(sorted({r.reason for r in outcome.refused.values()}))
        parts.append(f"{len(outcome.refused)} session(s) refused ({reasons}): {', '.join(sorted(outcome.refused))}")
    return (f"rescore of {p.activity_id} incomplete: {'; '.join(parts)}; see the tables above and docs/scoring.md §8 "
            "(a fixed cause, then the same command again, asks only what has not moved)")


def report(outcome: Outcome, console: Console) -> None:
    console.print(summary_table(outcome))
    if outcome.refused:
        console.print(refused_table(outcome))
    if outcome.not_moved:
        console.print(not_moved_table(outcome))


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------
