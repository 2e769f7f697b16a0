"""``cact rescore``: recompute an activity's results after an item key was corrected, and prove it happened.

The answer sheets live in the workers' state, so rescoring is a command to them: one ``RescoreRequested`` per
session on the control topic, keyed by session so the worker that owns it recomputes. A result belongs to its
participant's home activity and names the session it was sat in, which for a susulan is another activity's;
so the sessions asked are those where a result of the activity was sat (plus those where one of its
participants is still sitting), and the worker rescores, in each, only the activity's participants.

The command then checks the store instead of trusting the send: every result it planned to move must reach
the new blueprint version; a request the worker refused is found by its dead letter (the request's own
partition and offset) and reported at once, with the sessions and results it left behind. The corrected
blueprint is a new *version* of the same file, installed in the corrections folder every worker reads; its
keys never travel in an event (docs/scoring.md §8).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from rich.console import Console

from cact import rescore_report
from schemas import events as ev
from schemas.blueprint import Blueprint, BlueprintRegistry
from schemas.errors import clean
from schemas.settings import Settings
from schemas.topics import CONTROL
from sinks.rescore_queries import HeldResult, Refusal

#: Who the requests say sent them: an operator at BKN, through this command.
REQUESTER_ID = "bkn-operator"
#: How often the store is read while waiting.
POLL_SECONDS = 1.0

Position = tuple[int, int]  # (partition, offset) of a request on the control topic


class RescoreError(RuntimeError):
    """The rescore cannot start; the message names what to change."""


class SendError(RescoreError):
    """Kafka did not take every request; the same command again is safe."""


class RescoreStore(Protocol):
    """The store reads the plan and the wait need (sinks/rescore_queries.py; a fake in the unit tests)."""

    def results_of(self, activity_id: str) -> list[HeldResult]: ...

    def results_sat_in(self, session_ids: Collection[str]) -> list[HeldResult]: ...

    def checked_in(self, activity_id: str) -> set[tuple[str, str]]: ...

    def activities_of(self, session_ids: Collection[str]) -> dict[str, str]: ...

    def refusals(self, topic: str, positions: Iterable[Position]) -> dict[Position, Refusal]: ...


# ------------------------------------------------------------------------------------------------
# The plan: which results must move, which sessions to ask
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RescorePlan:
    activity_id: str
    blueprint_id: str
    version: str
    #: nip → the current result that must reach ``version`` (on this blueprint, not on it yet).
    targets: dict[str, HeldResult]
    #: Every session to ask, sorted: where a target was sat, and where a participant is still sitting.
    sessions: tuple[str, ...]
    #: session → participants of the activity checked in there without a result yet (they get the new key).
    sitting: dict[str, int] = field(default_factory=dict)
    #: Sessions asked that belong to another activity (session → its activity): susulan hosts.
    hosts: dict[str, str] = field(default_factory=dict)
    #: Results of the activity already on ``version`` (an earlier run): nothing to do for them.
    already: int = 0
    #: Results of the activity on another blueprint id (a susulan sat another test): this key does not apply.
    other_blueprints: dict[str, int] = field(default_factory=dict)
    #: (nip, activity) → results of other activities sat in the sessions asked: they must not move.
    bystanders: dict[tuple[str, str], HeldResult] = field(default_factory=dict)

    @property
    def versions_before(self) -> list[str]:
        return sorted({h.blueprint_version for h in self.targets.values()})


def select(store: RescoreStore, activity_id: str, blueprint_id: str, version: str) -> RescorePlan:
    """The rescore of ``activity_id`` onto ``blueprint_id`` ``version``, from what the store holds.

    Results are the activity's current ones wherever they were sat; sessions are where those were sat, plus
    where a participant of the activity is checked in without a result yet, unless that session's results
    show it runs another blueprint (the worker would refuse it, and this key does not apply to what is sat
    there). Results already on ``version`` are left alone, so running the command again after a failure
    asks only what has not moved.
    """
    held = store.results_of(activity_id)
    on_blueprint = [h for h in held if h.blueprint_id == blueprint_id]
    other = Counter(h.blueprint_id for h in held if h.blueprint_id != blueprint_id)
    targets = {h.nip: h for h in on_blueprint if h.blueprint_version != version}
    scored = {h.nip for h in held}
    waiting = Counter(session for session, nip in store.checked_in(activity_id) if nip not in scored)
    asked = {h.session_id for h in targets.values()}
    around = store.results_sat_in(asked | set(waiting))
    runs: dict[str, set[str]] = {}
    for r in around:
        runs.setdefault(r.session_id, set()).add(r.blueprint_id)
    sitting = {s: n for s, n in waiting.items() if blueprint_id in runs.get(s, {blueprint_id})}
    sessions = asked | set(sitting)
    if not sessions:
        if not held and not waiting:
            raise RescoreError(f"no result and no checked-in participant of activity {activity_id} in the results "
                               "store: check the activity id (results are filed under the participant's home activity)")
        if not on_blueprint:
            sat = f"its results are on {', '.join(sorted(other))}" if other else "its participants sit another test"
            raise RescoreError(f"activity {activity_id} has no result on blueprint {blueprint_id} ({sat}): the "
                               "corrected file must be a new version of the blueprint they sat")
    hosts = {s: a for s, a in store.activities_of(sessions).items() if a != activity_id}
    bystanders = {(r.nip, r.activity_id): r for r in around
                  if r.session_id in sessions and r.activity_id != activity_id}
    return RescorePlan(activity_id, blueprint_id, version, targets, tuple(sorted(sessions)),
                       dict(sorted(sitting.items())), dict(sorted(hosts.items())), len(on_blueprint) - len(targets),
                       dict(sorted(other.items())), bystanders)


def check_correction(corrected: Blueprint, registry: BlueprintRegistry, versions: Iterable[str]) -> None:
    """A key correction changes weights and cut scores, never which items a section has: the workers read
    each stored sheet by item, and an item the new version lacks would silently score nothing."""
    for version in sorted(set(versions)):
        before = registry.get(corrected.blueprint_id, version)
        if before is None:
            continue  # the workers may still have it; they refuse the request if not
        for spec in before.sections:
            new = corrected.section(spec.section)
            items = set(new.item_ids) if new is not None else set()
            gone, added = sorted(set(spec.item_ids) - items), sorted(items - set(spec.item_ids))
            if gone or added:
                what = "; ".join(part for part in (
                    f"items {', '.join(gone[:3])}{' …' if len(gone) > 3 else ''} missing" if gone else "",
                    f"items {', '.join(added[:3])}{' …' if len(added) > 3 else ''} added" if added else "") if part)
                raise RescoreError(
                    f"{corrected.blueprint_id} {corrected.version} is not a key correction of {version}: section "
                    f"{spec.section.value}: {what}; a correction keeps the items and changes option weights or cut "
                    "scores (a different test is a new blueprint id)")
        extra = sorted(s.value for s in set(corrected.section_names) - set(before.section_names))
        if extra:
            raise RescoreError(f"{corrected.blueprint_id} {corrected.version} adds section {', '.join(extra)} to "
                               f"{version}: a key correction keeps the sections")


# ------------------------------------------------------------------------------------------------
# The corrected file: where the workers read it
# ------------------------------------------------------------------------------------------------

def check_installable(corrected: Blueprint, registry: BlueprintRegistry, path: Path) -> None:
    if registry.get(corrected.blueprint_id) is None:
        raise RescoreError(f"{path}: blueprint {corrected.blueprint_id} is not one the workers load "
                           f"({', '.join(registry.ids())}): a correction keeps the blueprint_id")
    existing = registry.get(corrected.blueprint_id, corrected.version)
    if existing is not None and existing != corrected:
        raise RescoreError(f"{path}: {corrected.blueprint_id} version {corrected.version} already exists with other "
                           f"content ({registry.source_of(corrected.blueprint_id, corrected.version)}): give the "
                           "corrected file a new version")


def install(settings: Settings, path: Path, corrected: Blueprint, registry: BlueprintRegistry) -> tuple[Path, bool]:
    """Put the validated file in the corrections folder (created if needed): the file the workers read, and
    whether it was written now.

    Written beside and renamed into place, so a worker reloading at that moment never reads half a file.
    A version already loaded with the same content is left where it is.
    """
    check_installable(corrected, registry, path)
    source = registry.source_of(corrected.blueprint_id, corrected.version)
    if source is not None:
        return source, False
    folder = settings.blueprint_corrections_dir
    target = folder / file_name(corrected)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise RescoreError(f"{target} already exists and holds another blueprint: move it away, or give the "
                               "corrected file a new version")
        temporary = folder / f".{target.name}.{os.getpid()}.tmp"
        temporary.write_bytes(path.read_bytes())
        os.replace(temporary, target)
    except OSError as exc:
        raise RescoreError(f"cannot install the corrected blueprint in {folder} (CACT_BLUEPRINT_CORRECTIONS_DIR): "
                           f"{exc.strerror or exc}") from None
    return target, True


def file_name(blueprint: Blueprint) -> str:
    """``<blueprint_id>-<version>.json``, with anything that is not a plain file-name character made ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{blueprint.blueprint_id}-{blueprint.version}") + ".json"


# ------------------------------------------------------------------------------------------------
# The requests
# ------------------------------------------------------------------------------------------------

def requests(plan: RescorePlan, reason: str, now: datetime | None = None) -> list[ev.RescoreRequested]:
    at = now or datetime.now(UTC)
    return [ev.new_event(ev.RescoreRequested, lab_id=REQUESTER_ID, occurred_at=at, payload={
        "session_id": session_id, "activity_id": plan.activity_id, "blueprint_id": plan.blueprint_id,
        "blueprint_version": plan.version, "reason": reason}) for session_id in plan.sessions]


def send(settings: Settings, events: list[ev.RescoreRequested], timeout: float = 30.0) -> dict[str, Position]:
    """Each request acknowledged by every in-sync replica, and where it landed: its dead letter, if the worker
    refuses it, names that position. Sent directly (no lab spool): an operator at a terminal sees a failure."""
    return asyncio.run(_send(settings, events, timeout))


async def _send(settings: Settings, events: list[ev.RescoreRequested], timeout: float) -> dict[str, Position]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from schemas.kafka_config import client_kwargs

    producer = AIOKafkaProducer(acks="all", request_timeout_ms=int(timeout * 1000), **client_kwargs(settings))
    landed: dict[str, Position] = {}
    try:
        await asyncio.wait_for(producer.start(), timeout)
        for event in events:
            meta = await asyncio.wait_for(
                producer.send_and_wait(CONTROL.name, value=event.to_bytes(), key=event.key().encode()), timeout)
            landed[event.payload.session_id] = (meta.partition, meta.offset)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise SendError(f"sent {len(landed)} of {len(events)} rescore requests to {CONTROL.name}, then Kafka "
                           f"failed ({type(exc).__name__}: {clean(exc, 200)}): run the command again once Kafka "
                           "answers; results already moved are not asked again") from None
    finally:
        await producer.stop()
    return landed


# ------------------------------------------------------------------------------------------------
# The wait: until every planned result moved, or its session was refused
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    plan: RescorePlan
    #: nip → its current result now, for the targets that reached the new version.
    moved: dict[str, HeldResult]
    #: nip → (planned, current now or None) for the targets that did not.
    not_moved: dict[str, tuple[HeldResult, HeldResult | None]]
    #: session → the dead letter of its request.
    refused: dict[str, Refusal]
    #: Results of other activities sat in the sessions asked that kept their version / got a new one anyway.
    bystanders_unchanged: int
    bystanders_changed: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.not_moved and not self.refused


def has_moved(plan: RescorePlan, before: HeldResult, now: HeldResult | None) -> bool:
    """A new version of the same result, on the corrected key."""
    return (now is not None and now.result_version > before.result_version and now.blueprint_id == plan.blueprint_id
            and now.blueprint_version == plan.version)


def wait(plan: RescorePlan, landed: Mapping[str, Position], store: RescoreStore, *, timeout: float,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         poll: float = POLL_SECONDS, progress: Callable[[int, int, int], None] | None = None) -> Outcome:
    """Read the store until every target moved or sits in a refused session, or ``timeout`` seconds passed.

    A refusal ends the wait for its session's results at once (they will not move), not for the others:
    the report then says exactly which results moved and which did not. ``progress(moved, total, refused)``
    after every read.
    """
    started = clock()
    sessions_at = {position: session for session, position in landed.items()}
    while True:
        refused = {sessions_at[p]: r for p, r in store.refusals(CONTROL.name, sessions_at).items()}
        now = {h.nip: h for h in store.results_of(plan.activity_id)}
        moved = {nip: now[nip] for nip, before in plan.targets.items() if has_moved(plan, before, now.get(nip))}
        if progress is not None:
            progress(len(moved), len(plan.targets), len(refused))
        settled = all(nip in moved or before.session_id in refused for nip, before in plan.targets.items())
        if settled or clock() - started >= timeout:
            break
        sleep(poll)
    not_moved = {nip: (before, now.get(nip)) for nip, before in plan.targets.items() if nip not in moved}
    around = {(r.nip, r.activity_id): r for r in store.results_sat_in(plan.sessions)}
    changed = sum(1 for key, before in plan.bystanders.items()
                  if key in around and around[key].result_version != before.result_version)
    return Outcome(plan, moved, not_moved, refused, len(plan.bystanders) - changed, changed, clock() - started)


# ------------------------------------------------------------------------------------------------
# What the operator reads
# ------------------------------------------------------------------------------------------------

def run(settings: Settings, store: RescoreStore, activity_id: str, path: Path, reason: str, wait_seconds: float,
        console: Console, dry_run: bool = False) -> Outcome | None:
    """Plan, install, ask, wait (``cact rescore``); None when nothing is asked or nothing is waited for.
    ``dry_run``: the plan only, printed; nothing installed, nothing sent.

    The plan comes first, so a wrong activity or file installs nothing and sends nothing; the file is
    installed before the requests go out, because a worker reloads its folders when a request names a
    version it does not know.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from schemas.blueprint import load_blueprint

    registry = BlueprintRegistry.from_settings(settings)
    corrected = load_blueprint(path)
    check_installable(corrected, registry, path)
    plan = select(store, activity_id, corrected.blueprint_id, corrected.version)
    check_correction(corrected, registry, plan.versions_before)
    if not plan.sessions:
        console.print(f"nothing to rescore: the {plan.already} results of {activity_id} on {plan.blueprint_id} are "
                      f"already on {plan.version}")
        return None
    if dry_run:
        Console().print(rescore_report.plan_table(plan))
        console.print(f"dry run: {len(plan.targets)} results of {activity_id} in {len(plan.sessions)} sessions would "
                      f"move to {plan.blueprint_id} {plan.version}; nothing installed, nothing sent")
        return None
    installed, written = install(settings, path, corrected, registry)
    console.print(f"{plan.blueprint_id} {plan.version} {'installed for the workers' if written else 'already there'}: "
                  f"{installed}")
    landed = send(settings, requests(plan, reason))
    console.print(f"asked the workers to rescore {len(plan.targets)} results of {activity_id} in "
                  f"{len(plan.sessions)} sessions with {plan.blueprint_id} {plan.version}")
    if wait_seconds <= 0:
        return None
    with Progress(TextColumn("rescoring"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[refused]} sessions refused"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("rescore", total=len(plan.targets), refused=0)
        return wait(plan, landed, store, timeout=wait_seconds,
                    progress=lambda done, _total, refused: bar.update(task, completed=done, refused=refused))
