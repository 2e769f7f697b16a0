"""The reports that exist: their builds and files (with checksums), their deliveries, and handing one over.

What the operator page lists and serves (behind the operator token), and what `cact reports deliver` does.
A file is served or delivered only when it is one the build recorded, under the build's own directory, and
its bytes still have the recorded checksum: a path from a request never reaches the file system as given.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sinks import models as m
from sinks.engine import aware
from sinks.reports.files import private_dir, private_file, sha256
from sinks.store import ResultsStore

#: What each deliverable consists of: the recap's PDF and XLSX; the full report (which holds the recap) and the
#: recap's XLSX, the spreadsheet an agency works from.
DELIVERED_KINDS = ("recap", "full")


def _delivered(kind: str, entry: dict[str, Any]) -> bool:
    return entry["kind"] == kind or (kind == "full" and entry["kind"] == "recap" and entry["name"].endswith(".xlsx"))
CONTENT_TYPES = {".pdf": "application/pdf",
                 ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class DeliveryRefused(ValueError):
    """One line for the operator: what is missing and what to do."""


@dataclass(frozen=True)
class ReportFile:
    path: Path
    name: str
    sha256: str
    content_type: str


def builds(store: ResultsStore) -> list[dict[str, Any]]:
    """Every build, newest first per activity, with its files and deliveries: the page's and the CLI's list."""
    b, d = m.ReportBuild, m.ReportDelivery
    with Session(store.engine) as s:
        rows = list(s.scalars(select(b).order_by(b.activity_id, b.version.desc())))
        deliveries: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for x in s.scalars(select(d).order_by(d.delivered_at)):
            deliveries.setdefault((x.activity_id, x.version), []).append(
                {"kind": x.kind, "delivered_at": aware(x.delivered_at).isoformat(), "operator": x.operator})
    return [{"activity_id": r.activity_id, "version": r.version, "built_at": aware(r.built_at).isoformat(),
             "results": r.results, "reason": r.reason, "last_test_day": r.last_test_day.isoformat(),
             "files": [{k: f[k] for k in ("kind", "name", "sha256", "bytes")} for f in r.files],
             "deliveries": deliveries.get((r.activity_id, r.version), [])} for r in rows]


def report_file(store: ResultsStore, activity_id: str, version: int, name: str) -> ReportFile | None:
    """The recorded file ``name`` of a build, if it is one and is intact; None otherwise (the page says 404)."""
    with Session(store.engine) as s:
        row = s.get(m.ReportBuild, (activity_id, version))
    if row is None:
        return None
    entry = next((f for f in row.files if f["name"] == name), None)
    if entry is None:
        return None
    root = Path(row.directory).resolve()
    path = (root / entry["name"]).resolve()
    if root not in path.parents or not path.is_file() or sha256(path) != entry["sha256"]:
        return None
    return ReportFile(path, Path(entry["name"]).name, entry["sha256"],
                      CONTENT_TYPES.get(path.suffix, "application/octet-stream"))


def deliver(store: ResultsStore, activity_id: str, kind: str, *, target_dir: Path | None, operator: str,
            current: bool, now: datetime | None = None) -> tuple[int, Path, list[str]]:
    """Copy the latest build's ``kind`` files to ``target_dir/<activity>/v<N>/`` and record the delivery.

    ``current`` is whether that build still shows the store (ReportBuilder.is_current): a stale build is refused,
    so an agency never receives a report the store has since corrected. Returns (version, directory, files)."""
    if kind not in DELIVERED_KINDS:
        raise DeliveryRefused(f"unknown report kind {kind!r}: use recap or full")
    if target_dir is None:
        raise DeliveryRefused("no delivery folder: set CACT_REPORTS_DELIVERY_DIR to where reports for the agencies go")
    b = m.ReportBuild
    with Session(store.engine) as s:
        row = s.scalars(select(b).where(b.activity_id == activity_id).order_by(b.version.desc()).limit(1)).first()
    if row is None:
        raise DeliveryRefused(f"activity {activity_id!r} has no report yet: run `cact reports build --activity "
                              f"{activity_id}` first")
    if not current:
        raise DeliveryRefused(f"the results of {activity_id} changed since report version {row.version} was built: "
                              f"run `cact reports build --activity {activity_id}` and deliver the new version")
    wanted = [f for f in row.files if _delivered(kind, f)]
    out = private_dir(target_dir / activity_id / f"v{row.version}")
    copied = []
    for f in wanted:
        source = report_file(store, activity_id, row.version, f["name"])
        if source is None:
            raise DeliveryRefused(f"report file {f['name']} of {activity_id} v{row.version} is missing or changed on "
                                  f"disk: rebuild with `cact reports build --activity {activity_id}`")
        dest = out / source.name
        with private_file(dest) as handle, source.path.open("rb") as src:
            shutil.copyfileobj(src, handle)
        if sha256(dest) != f["sha256"]:
            raise DeliveryRefused(f"copy of {source.name} to {out} does not match its checksum: check the disk")
        copied.append(source.name)
    with Session(store.engine) as s, s.begin():
        s.add(m.ReportDelivery(activity_id=activity_id, kind=kind, version=row.version,
                               delivered_at=now or datetime.now(UTC), target=str(out), operator=operator[:100]))
    return row.version, out, copied
