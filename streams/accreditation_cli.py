"""``cact accreditation import|list|check``: the accredited-institution registry the workers judge results by.

``import`` validates a new registry with the same loader the workers use before anything is replaced, then
installs it in one rename (a worker starting meanwhile reads the old file or the new one, never half of
one) and says what changed, so an operator sees that the new list dropped an institution before a session
there produces unrecognised results. ``check`` answers the question an agency asks before booking a session:
would results of this tier from this organiser count on that day (exit 0 yes, 1 no).

Everything shown that comes from the file (names, decrees) is printed as text, never as rich markup.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from schemas.accreditation import Accreditation, AccreditationError, AccreditationRegistry, installed_path, one_line
from schemas.domain import PositionTier
from schemas.errors import CliError
from schemas.settings import Settings, get_settings

accreditation_app = typer.Typer(help="Accredited institutions (organisers): import a new registry, list it, "
                                     "check an organiser for a tier and date.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # a line stays one line, also in a log or a narrow terminal
EXIT_NOT_RECOGNISED = 1

OnOption = Annotated[str | None, typer.Option("--on", help="Date YYYY-MM-DD (default: today)")]


def _date(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"--on {one_line(value, 40)!r} is not a date: give YYYY-MM-DD, e.g. 2026-11-03") from None


def _tier(value: str) -> PositionTier:
    try:
        return PositionTier(value.strip().lower())
    except ValueError:
        raise CliError(f"--tier {one_line(value, 40)!r} is not a position tier: give one of "
                       f"{', '.join(t.value for t in PositionTier)}") from None


def registry_in_use(settings: Settings) -> AccreditationRegistry:
    """The registry the workers would load now, or one line naming the file and what to change."""
    try:
        return AccreditationRegistry.from_settings(settings)
    except AccreditationError as exc:
        hint = ("correct it or CACT_ACCREDITATION_FILE" if settings.accreditation_file is not None
                else "correct it, or install a valid one with `cact accreditation import FILE`")
        raise CliError(f"accreditation registry unusable: {exc}; {hint}") from None


def _load_candidate(path: Path, settings: Settings) -> AccreditationRegistry:
    try:
        return AccreditationRegistry.load(path, category_tiers=settings.accreditation_category_tiers,
                                          bkn_patterns=settings.accreditation_bkn_organisers,
                                          warn_days=settings.accreditation_warn_days)
    except AccreditationError as exc:
        raise CliError(f"registry not imported: {exc}") from None


def _install(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically: a temporary file in the target's folder, synced, renamed."""
    data = source.read_bytes()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise CliError(f"cannot install the registry in {target.parent}: {exc.strerror or exc}; "
                       "set CACT_ACCREDITATION_FILE to a writable path") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CliError(f"cannot install the registry as {target}: {exc.strerror or exc}") from None
    try:  # the rename itself survives a power cut only once the folder is synced
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def changes(old: AccreditationRegistry | None, new: AccreditationRegistry) -> dict[str, list[str]]:
    """Ids added, removed, and changed (with the fields that changed) from ``old`` to ``new``."""
    before = {r.organiser_id.lower(): r for r in (old.rows if old else ())}
    after = {r.organiser_id.lower(): r for r in new.rows}
    changed = []
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        fields = [f for f in ("kind", "institution", "unit", "category", "decree", "expires_on")
                  if getattr(a, f) != getattr(b, f)]
        if fields:
            changed.append(f"{b.organiser_id} ({', '.join(_change(f, getattr(a, f), getattr(b, f)) for f in fields)})")
    return {"added": [after[k].organiser_id for k in sorted(after.keys() - before.keys())],
            "removed": [before[k].organiser_id for k in sorted(before.keys() - after.keys())],
            "changed": changed}


def _change(field: str, old: object, new: object) -> str:
    if field in ("institution", "unit"):
        return field
    return f"{field} {old or '-'} -> {new or '-'}"


@accreditation_app.command("import")
def accreditation_import(file: Annotated[Path, typer.Argument(help="Registry CSV (docs/accreditation.md)")]) -> None:
    """Validate a registry CSV and install it as the one the workers use (restart them to apply it)."""
    settings = get_settings()
    new = _load_candidate(file, settings)
    try:
        current = AccreditationRegistry.from_settings(settings)
        old: AccreditationRegistry | None = current
        old_note = f"{current.version} from {current.source}"
    except AccreditationError as exc:  # the file in use is broken: importing a good one is the fix
        old, old_note = None, f"none usable ({exc})"
    target = installed_path(settings)
    _install(file, target)
    diff = changes(old, new)
    print(one_line(f"installed accreditation registry {new.version} ({len(new.rows)} rows, digest "
                   f"{new.digest[:12]}) as {target}; replaced {old_note}", 1000))
    for what, ids in diff.items():
        print(one_line(f"{what} ({len(ids)}): {', '.join(ids) if ids else '-'}", 4000))
    if not any(diff.values()):
        print("no row changed")
    console.print("workers read the registry when they start: restart them to judge new sessions by it")


def _row_json(row: Accreditation, state: str) -> dict[str, object]:
    return {"organiser_id": row.organiser_id, "kind": row.kind, "institution": row.institution, "unit": row.unit,
            "category": row.category, "decree": row.decree,
            "expires_on": row.expires_on.isoformat() if row.expires_on else None, "state": state}


_STATE_STYLE = {"valid": "green", "expiring": "yellow", "expired": "red", "no category": "red",
                "no expiry on record": "cyan"}


@accreditation_app.command("list")
def accreditation_list(on: OnOption = None,
                       as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Every accredited institution and its state on a date: valid, expiring, expired, no category."""
    day = _date(on)
    registry = registry_in_use(get_settings())
    states = [(row, registry.state(row, day)) for row in registry.rows]
    if as_json:
        print(json.dumps({"version": registry.version, "digest": registry.digest, "source": registry.source,
                          "on": day.isoformat(), "warn_days": registry.warn_days,
                          "rows": [_row_json(r, s) for r, s in states]}, ensure_ascii=False))
        return
    table = Table(title=Text(f"Accreditation registry {registry.version} on {day.isoformat()} "
                             f"({len(registry.rows)} rows, {registry.source})"))
    # What an operator scans for (id, state, expiry) first and whole; the long names last, wrapping.
    for col, width in (("id", 14), ("state", 8), ("expires", 10), ("cat", 3), ("kind", 7), ("decree", 8),
                       ("institution", 10), ("unit", 10)):
        table.add_column(col, min_width=width, overflow="fold")
    for row, state in states:
        table.add_row(Text(row.organiser_id), Text(state, style=_STATE_STYLE.get(state, "")),
                      row.expires_on.isoformat() if row.expires_on else "-", row.category or "-", row.kind,
                      Text(row.decree or "-"), Text(row.institution), Text(row.unit))
    Console().print(table)
    counts = {s: sum(1 for _, st in states if st == s) for s in _STATE_STYLE}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))


@accreditation_app.command("check")
def accreditation_check(
    organiser: Annotated[str, typer.Option("--organiser", help="Organiser id (registry id, or a BKN unit)")],
    tier: Annotated[str, typer.Option("--tier", help="Position tier, e.g. administrator, jpt_pratama")],
    on: OnOption = None,
) -> None:
    """Would results of this tier from a session this organiser runs on that day count? Exit 0 yes, 1 no."""
    day, position = _date(on), _tier(tier)
    registry = registry_in_use(get_settings())
    verdict = registry.judge(organiser, position, day)
    shown = one_line(organiser, 80)
    if not verdict.recognised:
        print(f"not recognised: {verdict.detail}")
        raise typer.Exit(EXIT_NOT_RECOGNISED)
    row = registry.get(organiser)
    if registry.is_bkn(organiser) or row is None:
        print(f"recognised: organiser {shown} is a BKN unit (CACT_ACCREDITATION_BKN_ORGANISERS); tier "
              f"{position.value} on {day.isoformat()}")
    else:
        until = f"valid until {row.expires_on.isoformat()}" if row.expires_on else "no expiry on record"
        print(one_line(f"recognised: organiser {shown} ({row.name}), category {row.category}, decree "
                       f"{row.decree or '-'}, {until}; covers tier {position.value} on {day.isoformat()}", 1000))
    if (warning := registry.warning(organiser, day)) is not None:
        print(f"warning: {warning}")
