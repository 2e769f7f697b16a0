"""Building an activity's reports from the results store: one version per distinct state of the store.

A build reads the activity in one snapshot (sinks/reports/data.py), and writes, into a directory of its own
(``<reports_dir>/<activity>/v<N>/``, mode 0700, every file 0600):

- ``rekap-<activity>.pdf`` and ``rekap-<activity>.xlsx``: the recap (Laporan Rekapitulasi);
- ``individu/<NIP>.pdf``: one individual report per current, counted result;
- ``lengkap-<activity>.pdf``: the full report (Laporan Lengkap), the recap followed by every individual report;
- ``SHA256SUMS``: every file's checksum, in the format ``sha256sum -c`` checks.

The files are written under a ``.partial`` name of their own, the build is recorded (``report_builds``), and
only then is the folder renamed into place: a crash in between leaves a recorded build whose files are missing,
which the catalog refuses to serve or deliver (their checksums cannot match) and which the next build replaces
with a new version. Building again from a store that has not changed gives the same version back; a store that
changed (a rescore, a late susulan) gives the next version, which names the one it supersedes and why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from reportlab.platypus import Flowable, PageBreak
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sinks import models as m
from sinks.engine import aware
from sinks.reports import pdf
from sinks.reports.calendar import WorkingCalendar, due_dates
from sinks.reports.data import fingerprint, read_activity
from sinks.reports.files import private_dir, private_file, sha256
from sinks.reports.individual import individual_flowables, write_individual_pdf
from sinks.reports.model import ActivityData, ReportMeta
from sinks.reports.recap import recap_flowables, write_recap_pdf, write_recap_xlsx
from sinks.reports.rules import RuleSet
from sinks.store import ResultsStore

#: (phase, done, total): what a long build reports, drawn by the command (rich) or ignored.
Progress = Callable[[str, int, int], None]
RESCORED = "hasil peserta dinilai ulang atau diperbarui (versi hasil baru)"
CHANGED = "data kegiatan bertambah atau berubah (kehadiran, hasil baru)"


class NothingToReport(ValueError):
    """The store knows nothing of the activity: no build, one line for the operator."""


@dataclass(frozen=True)
class Built:
    activity_id: str
    version: int
    directory: Path
    files: list[dict[str, Any]]
    created: bool  # False: the store had not changed since this version was built
    results: int
    reason: str | None
    last_test_day: date


def recap_name(activity_id: str, ext: str) -> str:
    return f"rekap-{activity_id}.{ext}"


def full_name(activity_id: str) -> str:
    return f"lengkap-{activity_id}.pdf"


def _write_sums(directory: Path, files: list[dict[str, Any]]) -> None:
    with private_file(directory / "SHA256SUMS") as handle:
        handle.write("".join(f"{f['sha256']}  {f['name']}\n" for f in files).encode())


class ReportBuilder:
    def __init__(self, store: ResultsStore, *, reports_dir: Path, calendar: WorkingCalendar, rules: RuleSet,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.reports_dir, self.calendar, self.rules, self.clock = (
            store, reports_dir, calendar, rules, clock)

    def latest(self, activity_id: str) -> m.ReportBuild | None:
        b = m.ReportBuild
        with Session(self.store.engine) as s:
            return s.scalars(select(b).where(b.activity_id == activity_id).order_by(b.version.desc()).limit(1)).first()

    def is_current(self, activity_id: str) -> bool:
        """Whether the latest build still shows what the store holds (a delivery must not send a stale one)."""
        latest = self.latest(activity_id)
        return latest is not None and latest.fingerprint == self.fingerprint(read_activity(self.store, activity_id))

    def fingerprint(self, data: ActivityData) -> str:
        """The store's state and the rules' wording: a changed rule set also makes the next version."""
        return hashlib.sha256(f"{fingerprint(data)}:{self.rules.digest}".encode()).hexdigest()

    def build(self, activity_id: str, *, progress: Progress | None = None) -> Built:
        data = read_activity(self.store, activity_id)
        if data.last_test_day is None:
            raise NothingToReport(f"the results store has no session or result of activity {activity_id!r}: "
                                  "nothing to report (check the id with `cact reports due`)")
        digest = self.fingerprint(data)
        previous = self.latest(activity_id)
        if previous is not None and previous.fingerprint == digest and Path(previous.directory).is_dir():
            return Built(activity_id, previous.version, Path(previous.directory), list(previous.files), False,
                         previous.results, previous.reason, previous.last_test_day)
        version = (previous.version if previous else 0) + 1
        built_at = self.clock()
        reason = None
        if previous is not None:
            since = aware(previous.built_at)
            rescored = any(e.created_at > since for r in data.results for e in r.earlier)
            reason = RESCORED if rescored else CHANGED
        meta = ReportMeta(activity_id, "recap", version, built_at, previous.version if previous else None,
                          previous.built_at if previous else None, reason)
        home = private_dir(private_dir(self.reports_dir) / activity_id)
        final = home / f"v{version}"
        # Two builders of one activity may race: each renders into a folder of its own, the database decides
        # who owns the version (its primary key), and only the owner moves its folder into place.
        partial = home / f".v{version}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
        try:
            files = self._render(private_dir(partial), data, meta, progress)
            _write_sums(partial, files)
            row = m.ReportBuild(activity_id=activity_id, version=version, built_at=built_at, fingerprint=digest,
                                last_test_day=data.last_test_day, results=len(data.results),
                                directory=str(final), files=files, reason=reason)
            try:
                with Session(self.store.engine) as s, s.begin():
                    s.add(row)
            except IntegrityError:  # another builder recorded this version first: theirs stands
                return self.build(activity_id, progress=progress)
            if final.exists():  # left by a crash after a rename whose record never committed: not a build
                shutil.rmtree(final)
            partial.rename(final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return Built(activity_id, version, final, files, True, len(data.results), reason, data.last_test_day)

    def _render(self, directory: Path, data: ActivityData, meta: ReportMeta,
                progress: Progress | None) -> list[dict[str, Any]]:
        total = len(data.results) + 3
        done = 0
        say = progress or (lambda phase, done, total: None)
        due = due_dates(self.calendar, data.last_test_day) if data.last_test_day else None
        files: list[tuple[str, str]] = []
        write_recap_pdf(directory / recap_name(data.activity_id, "pdf"), data, meta, due=due)
        write_recap_xlsx(directory / recap_name(data.activity_id, "xlsx"), data, meta)
        files += [("recap", recap_name(data.activity_id, "pdf")), ("recap", recap_name(data.activity_id, "xlsx"))]
        done += 1
        say("recap", done, total)
        individual_meta = ReportMeta(**{**meta.__dict__, "kind": "individual"})
        full_meta = ReportMeta(**{**meta.__dict__, "kind": "full"})
        private_dir(directory / "individu")
        story: list[Flowable] = recap_flowables(data, full_meta, due=due)
        for result in data.results:
            advice = self.rules.advise(purpose=result.purpose, category=result.category,
                                       competencies=result.competencies)
            name = f"individu/{result.nip}.pdf"
            write_individual_pdf(directory / name, result, advice, individual_meta)
            files.append(("individual", name))
            story += [PageBreak(), *individual_flowables(result, advice, full_meta)]
            done += 1
            say("individual reports", done, total)
        pdf.write_pdf(directory / full_name(data.activity_id), story, full_meta,
                      title=f"Laporan Lengkap {data.activity_id}", heading="Laporan Lengkap")
        files.append(("full", full_name(data.activity_id)))
        done += 1
        say("full report", done, total)
        out = []
        for kind, name in files:
            path = directory / name
            out.append({"kind": kind, "name": name, "sha256": sha256(path), "bytes": path.stat().st_size})
        done += 1
        say("checksums", done, total)
        return out
