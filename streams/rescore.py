"""``cact rescore``: recompute an activity's results after an item key was corrected.

The answer sheets live in the workers' state, so rescoring is a command to them: one RescoreRequested per
session of the activity, keyed by session so the worker that owns it recomputes. The corrected blueprint is
a new *version* of the same blueprint file; its keys stay on disk, never in an event.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producers.emitter import LabEmitter
from schemas import events as ev
from schemas.blueprint import SAMPLE_DIR, Blueprint, load_blueprint
from schemas.settings import Settings
from sinks.store import ResultsStore


class RescoreError(RuntimeError):
    pass


@dataclass
class RescorePlan:
    blueprint: Blueprint
    sessions: list[str]
    before: dict[str, tuple[int, str]]


def install_blueprint(settings: Settings, path: Path) -> Blueprint:
    """Validate the corrected file and put it where the workers load blueprints from."""
    blueprint = load_blueprint(path)
    folder = settings.blueprint_dir
    if folder is None or folder.resolve() == SAMPLE_DIR.resolve():
        raise RescoreError("set CACT_BLUEPRINT_DIR to the blueprint folder the workers load: the corrected file goes there")
    target = folder / f"{blueprint.blueprint_id}-{blueprint.version}.json"
    if path.resolve().parent != folder.resolve():
        shutil.copyfile(path, target)
    return blueprint


def plan(settings: Settings, activity_id: str, path: Path) -> RescorePlan:
    blueprint = install_blueprint(settings, path)
    store = ResultsStore(settings.database_url)
    sessions = store.sessions_of_activity(activity_id)
    if not sessions:
        raise RescoreError(f"no session of activity {activity_id} in the results store")
    return RescorePlan(blueprint, sessions, store.current_versions(activity_id))


def request(settings: Settings, activity_id: str, p: RescorePlan, reason: str) -> None:
    with LabEmitter(settings) as emitter:
        for session_id in p.sessions:
            emitter.send(ev.new_event(ev.RescoreRequested, lab_id="bkn-operator", occurred_at=datetime.now(UTC), payload={
                "session_id": session_id, "activity_id": activity_id, "blueprint_id": p.blueprint.blueprint_id,
                "blueprint_version": p.blueprint.version, "reason": reason}))


def wait(settings: Settings, activity_id: str, p: RescorePlan, console: Console, timeout: float) -> dict[str, tuple[int, str]]:
    """Until every result that existed has a current version on the corrected blueprint."""
    store = ResultsStore(settings.database_url)
    deadline = time.monotonic() + timeout
    with Progress(TextColumn("rescoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("rescore", total=len(p.before))
        while True:
            now = store.current_versions(activity_id)
            done = sum(1 for nip in p.before if now.get(nip, (0, ""))[1] == p.blueprint.version)
            progress.update(task, completed=done)
            if done == len(p.before):
                return now
            if time.monotonic() > deadline:
                raise RescoreError(f"{len(p.before) - done} results not rescored after {timeout:.0f} s")
            time.sleep(0.5)
