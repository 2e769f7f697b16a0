"""Which institutions' CACT results count: BKN's own units, and institutions BKN accredited, on the test date, for
the participant's tier (Perban BKN 26/2019; docs/accreditation.md).

The registry is data, not code: a CSV transcribed from Puspenkom ASN's 2024 report (shipped in
``schemas/accreditation/``), replaced by ``cact accreditation import`` when BKN publishes a new list. Which
accreditation category covers which job levels is not in the seeds, so it is a setting
(``CACT_ACCREDITATION_CATEGORY_TIERS``) rather than a guess baked in here.

Pure apart from reading the file: the processor asks :meth:`AccreditationRegistry.judge` per result and
:meth:`AccreditationRegistry.warning` per scheduled session, and includes :attr:`AccreditationRegistry.digest`
in what a result is computed from, so a changed registry or rule is visible in the result's provenance.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.domain import PositionTier

if TYPE_CHECKING:
    from schemas.settings import Settings

SHIPPED_FILE = Path(__file__).parent / "accreditation" / "lembaga-terakreditasi-2024.csv"
#: Where ``cact accreditation import`` installs a registry when CACT_ACCREDITATION_FILE is not set (relative to
#: DEFAULT_HOME, like the other state the commands keep).
INSTALLED_NAME = "accreditation.csv"
COLUMNS = ("organiser_id", "kind", "institution", "unit", "category", "decree", "expires_on")
KINDS = ("pusat", "daerah", "lainnya")
#: The categories the 2024 appendix uses; a category the tier setting names is accepted too.
CATEGORIES = ("A", "B")
#: Mirrors of the Settings defaults (a unit test keeps them equal) for callers without Settings.
DEFAULT_CATEGORY_TIERS: Mapping[str, Collection[PositionTier]] = {"A": tuple(PositionTier), "B": tuple(PositionTier)}
DEFAULT_BKN_PATTERNS: tuple[str, ...] = ("bkn", "bkn-*", "kanreg-*")
DEFAULT_WARN_DAYS = 90

DETAIL_LIMIT = 500  # ParticipantScored.standing_detail's bound
MAX_FILE_BYTES = 5_000_000
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")  # a subset of the contract's Id: safe in URLs and files
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_META = re.compile(r"^#\s*(version|source|transcribed)\s*:\s*(.*)$")
_TEXT_LIMITS = {"institution": 200, "unit": 300, "decree": 100}


class AccreditationError(ValueError):
    """A registry file that cannot be used; the message is one line naming the file, line and field."""


@dataclass(frozen=True)
class Accreditation:
    organiser_id: str
    kind: str
    institution: str
    unit: str
    category: str | None
    decree: str | None
    expires_on: date | None

    @property
    def name(self) -> str:
        return f"{self.institution} – {self.unit}" if self.unit else self.institution


@dataclass(frozen=True)
class Verdict:
    """Whether a result counts; ``detail`` says why not, in one line an operator can act on (None when it counts)."""

    recognised: bool
    detail: str | None


def one_line(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Printable, single-line, bounded: details travel in events and land on operator pages."""
    s = _CONTROL.sub("?", " ".join(text.split()))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _shown_id(organiser_id: str) -> str:
    return one_line(organiser_id, 80)


class AccreditationRegistry:
    """The accredited institutions by organiser id, with the rule that judges a session's results by them."""

    def __init__(self, rows: Iterable[Accreditation], *,
                 category_tiers: Mapping[str, Collection[PositionTier | str]] = DEFAULT_CATEGORY_TIERS,
                 bkn_patterns: Sequence[str] = DEFAULT_BKN_PATTERNS, warn_days: int = DEFAULT_WARN_DAYS,
                 version: str = "", source: str = "", provenance: str = "") -> None:
        self.rows: tuple[Accreditation, ...] = tuple(rows)
        self._by_id: dict[str, Accreditation] = {}
        for row in self.rows:
            key = row.organiser_id.lower()
            if key in self._by_id:
                raise AccreditationError(f"{source or 'registry'}: organiser_id {row.organiser_id!r} appears twice")
            self._by_id[key] = row
        try:
            self.category_tiers: dict[str, frozenset[PositionTier]] = {
                str(cat): frozenset(PositionTier(t) for t in tiers) for cat, tiers in category_tiers.items()}
        except ValueError as exc:
            raise AccreditationError(f"accreditation category tiers: {exc}") from None
        self.bkn_patterns: tuple[str, ...] = tuple(p.lower() for p in bkn_patterns)
        if warn_days < 0:
            raise AccreditationError(f"accreditation warn days must be 0 or more, not {warn_days}")
        self.warn_days = warn_days
        self.source = source
        self.provenance = provenance
        self.digest = self._digest()
        self.version = version or f"sha256:{self.digest[:12]}"

    # --- building ----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str, *,
             category_tiers: Mapping[str, Collection[PositionTier | str]] = DEFAULT_CATEGORY_TIERS,
             bkn_patterns: Sequence[str] = DEFAULT_BKN_PATTERNS,
             warn_days: int = DEFAULT_WARN_DAYS) -> AccreditationRegistry:
        """Read a registry CSV; any malformed line refuses the whole file (a half-read registry would silently
        stop recognising the institutions it dropped)."""
        path = Path(path)
        rows, meta = parse_registry(path, extra_categories=category_tiers.keys())
        return cls(rows, category_tiers=category_tiers, bkn_patterns=bkn_patterns, warn_days=warn_days,
                   version=meta.get("version", ""), source=str(path), provenance=meta.get("source", ""))

    @classmethod
    def shipped(cls, *, category_tiers: Mapping[str, Collection[PositionTier | str]] = DEFAULT_CATEGORY_TIERS,
                bkn_patterns: Sequence[str] = DEFAULT_BKN_PATTERNS,
                warn_days: int = DEFAULT_WARN_DAYS) -> AccreditationRegistry:
        """The registry transcribed from the 2024 report, as shipped in the package."""
        return cls.load(SHIPPED_FILE, category_tiers=category_tiers, bkn_patterns=bkn_patterns, warn_days=warn_days)

    @classmethod
    def from_settings(cls, settings: Settings, home: Path | None = None) -> AccreditationRegistry:
        """The registry in use: CACT_ACCREDITATION_FILE, else the one ``cact accreditation import`` installed,
        else the shipped one; with the rule settings wired in."""
        return cls.load(registry_path(settings, home), category_tiers=settings.accreditation_category_tiers,
                        bkn_patterns=settings.accreditation_bkn_organisers,
                        warn_days=settings.accreditation_warn_days)

    # --- looking up ----------------------------------------------------------------------------------

    def get(self, organiser_id: str) -> Accreditation | None:
        return self._by_id.get(organiser_id.lower())

    def is_bkn(self, organiser_id: str | None) -> bool:
        """BKN's own units (head office, Kanreg, technical units) organise CACT without accreditation; a session
        that names no organiser is BKN's."""
        if organiser_id is None:
            return True
        key = organiser_id.lower()
        return any(fnmatchcase(key, p) for p in self.bkn_patterns)

    def state(self, row: Accreditation, on: date) -> str:
        """For listings: ``valid``, ``expiring`` (within warn_days after ``on``), ``expired``, ``no category``,
        or ``no expiry on record``."""
        if row.category is None:
            return "no category"
        if row.expires_on is None:
            return "no expiry on record"
        if row.expires_on < on:
            return "expired"
        if (row.expires_on - on).days <= self.warn_days:
            return "expiring"
        return "valid"

    # --- the rule ------------------------------------------------------------------------------------

    def judge(self, organiser_id: str | None, tier: PositionTier, on: date) -> Verdict:
        """Whether a result of ``tier`` from a session this organiser ran on ``on`` counts.

        The expiry date itself is still valid (an accreditation "berakhir" on that day, so it holds through
        it). A row with a category but no expiry on record (the appendix gives none for one row) counts.
        """
        if self.is_bkn(organiser_id):
            return Verdict(True, None)
        assert organiser_id is not None
        shown = _shown_id(organiser_id)
        row = self.get(organiser_id)
        if row is None:
            return Verdict(False, one_line(f"organiser {shown} is not in the accreditation registry "
                                           f"{self.version}: not an accredited institution"))
        if row.category is None:
            return Verdict(False, one_line(f"organiser {shown} ({row.institution}): no accreditation category "
                                           "on record"))
        if row.expires_on is not None and row.expires_on < on:
            return Verdict(False, one_line(f"organiser {shown}: accreditation {row.decree or '(no decree)'} expired "
                                           f"on {row.expires_on.isoformat()}, before the test date {on.isoformat()}"))
        covered = self.category_tiers.get(row.category, frozenset())
        if PositionTier(tier) not in covered:
            return Verdict(False, one_line(f"organiser {shown}: accreditation category {row.category} does not "
                                           f"cover tier {PositionTier(tier).value} "
                                           "(CACT_ACCREDITATION_CATEGORY_TIERS)"))
        return Verdict(True, None)

    def warning(self, organiser_id: str | None, on: date) -> str | None:
        """What to tell the operator when a session is scheduled on ``on`` at this organiser, or None."""
        if self.is_bkn(organiser_id):
            return None
        assert organiser_id is not None
        shown = _shown_id(organiser_id)
        row = self.get(organiser_id)
        if row is None:
            text = (f"organiser {shown} is not in the accreditation registry {self.version}: "
                    "results of this session will not be recognised")
        elif row.category is None:
            text = (f"organiser {shown} ({row.institution}) has no accreditation category on record: results of "
                    "this session will not be recognised")
        elif row.expires_on is None:
            return None
        elif row.expires_on < on:
            text = (f"accreditation of {shown} ({row.decree or 'no decree'}) expired on "
                    f"{row.expires_on.isoformat()}, before this session on {on.isoformat()}: its results will not "
                    "be recognised")
        elif (days := (row.expires_on - on).days) <= self.warn_days:
            when = ("the day of this session" if days == 0
                    else f"{days} day{'s' if days != 1 else ''} after this session")
            text = (f"accreditation of {shown} ({row.decree or 'no decree'}) expires on "
                    f"{row.expires_on.isoformat()}, {when}")
        else:
            return None
        return one_line(text)

    # --- provenance ----------------------------------------------------------------------------------

    def _digest(self) -> str:
        """sha256 over the rows and the judging rules, not the file's bytes: a re-import that changes only
        comments or quoting keeps the digest, one that changes a row or a rule setting does not."""
        canon = {
            "rows": sorted(([r.organiser_id.lower(), r.kind, r.institution, r.unit, r.category, r.decree,
                             r.expires_on.isoformat() if r.expires_on else None] for r in self.rows),
                           key=lambda r: str(r[0])),
            "category_tiers": {c: sorted(t.value for t in tiers) for c, tiers in sorted(self.category_tiers.items())},
            "bkn_patterns": sorted(self.bkn_patterns),
        }
        return hashlib.sha256(json.dumps(canon, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def registry_path(settings: Settings, home: Path | None = None) -> Path:
    """The file :meth:`AccreditationRegistry.from_settings` reads."""
    if settings.accreditation_file is not None:
        return Path(settings.accreditation_file)
    installed = installed_path(settings, home)
    return installed if installed.is_file() else SHIPPED_FILE


def installed_path(settings: Settings, home: Path | None = None) -> Path:
    """Where ``cact accreditation import`` writes: CACT_ACCREDITATION_FILE if set, else DEFAULT_HOME's copy."""
    if settings.accreditation_file is not None:
        return Path(settings.accreditation_file)
    from schemas.settings import DEFAULT_HOME

    return (home if home is not None else DEFAULT_HOME) / INSTALLED_NAME


# ------------------------------------------------------------------------------------------------
# The file format
# ------------------------------------------------------------------------------------------------

def parse_registry(path: Path, extra_categories: Iterable[str] = ()) -> tuple[list[Accreditation], dict[str, str]]:
    """Rows and the ``# key: value`` header lines (version, source, transcribed) of a registry CSV.

    One record per line (a field cannot hold a line break); ``#`` lines and blank lines are skipped; the first
    other line must be the header :data:`COLUMNS`.
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise AccreditationError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes: not a registry file")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise AccreditationError(f"{path}: cannot read the accreditation registry: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AccreditationError(f"{path}: not UTF-8 text (byte {exc.start}): save the registry as UTF-8 CSV") from None
    categories = set(CATEGORIES) | {str(c) for c in extra_categories}
    meta: dict[str, str] = {}
    rows: list[Accreditation] = []
    first_line: dict[str, int] = {}
    header_seen = False
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}: line {number}"
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if (m := _META.match(line.strip())) and m.group(1) not in meta:
                meta[m.group(1)] = m.group(2).strip()
            continue
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise AccreditationError(f"{where}: not a CSV record ({exc}); a field cannot span lines") from None
        if not header_seen:
            if tuple(f.strip() for f in fields) != COLUMNS:
                raise AccreditationError(f"{where}: the header must be {','.join(COLUMNS)}")
            header_seen = True
            continue
        if len(fields) != len(COLUMNS):
            raise AccreditationError(f"{where}: {len(fields)} fields, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
        row = _row(dict(zip(COLUMNS, (f.strip() for f in fields))), where, categories)
        key = row.organiser_id.lower()
        if key in first_line:
            raise AccreditationError(f"{where}: field organiser_id: {row.organiser_id!r} is already used on line "
                                     f"{first_line[key]}; ids must be unique")
        first_line[key] = number
        rows.append(row)
    if not header_seen:
        raise AccreditationError(f"{path}: no header line {','.join(COLUMNS)}: not a registry file")
    if not rows:
        raise AccreditationError(f"{path}: no rows: an empty registry would recognise no institution")
    return rows, meta


def _row(f: dict[str, str], where: str, categories: set[str]) -> Accreditation:
    def bad(field: str, problem: str) -> AccreditationError:
        return AccreditationError(f"{where}: field {field}: {one_line(problem, 300)}")

    if not ID_PATTERN.match(f["organiser_id"]):
        raise bad("organiser_id", f"{f['organiser_id']!r} must be 1-64 of a-z, 0-9 and '-', starting with a letter "
                                  "or digit")
    if f["kind"] not in KINDS:
        raise bad("kind", f"{f['kind']!r} must be one of {', '.join(KINDS)}")
    for name, limit in _TEXT_LIMITS.items():
        if len(f[name]) > limit:
            raise bad(name, f"longer than {limit} characters")
        if _CONTROL.search(f[name]):
            raise bad(name, "contains a control character")
    if not f["institution"]:
        raise bad("institution", "empty: name the institution")
    category = f["category"] or None
    if category is not None and category not in categories:
        raise bad("category", f"{category!r} must be one of {', '.join(sorted(categories))} or empty (none on record)")
    expires: date | None = None
    if f["expires_on"]:
        try:
            if not _ISO_DATE.match(f["expires_on"]):
                raise ValueError
            expires = date.fromisoformat(f["expires_on"])
        except ValueError:
            raise bad("expires_on",
                      f"{f['expires_on']!r} is not a date YYYY-MM-DD (or empty: none on record)") from None
    return Accreditation(organiser_id=f["organiser_id"], kind=f["kind"], institution=f["institution"],
                         unit=f["unit"], category=category, decree=f["decree"] or None, expires_on=expires)
