"""BKN's working-day calendar: when an activity's recap and full report are due.

Puspenkom's SOP (../shared/seeds/002) says the recap report goes to the user agency "pada hari ke-11 terhitung
setelah hari terakhir pelaksanaan penilaian kompetensi sesuai perhitungan hari kerja", and the full report on
day 21 counted the same way. So the count starts the day after the last test day: working day 1 is the first
working day after it, and the last test day itself never counts, even when it is a working day. A test held
on a Saturday or a holiday therefore gives the same due dates as one held on the working day before it.

A working day is what it is for a civil servant: not a Saturday or Sunday, not a national holiday (libur
nasional) and not a joint leave day (cuti bersama). Both lists come from the ``holidays`` library ("public"
and "government" categories for Indonesia), loaded per year on first use so a due date late in December
looks into the next year without anyone configuring it.

The government changes those lists by decree during the year (a holiday moved, an extra cuti bersama, one
cancelled), usually before the library catches up. The decree file, named by the reports calendar setting
(CACT_REPORTS_CALENDAR_FILE), records such changes; it wins over the library and over weekends::

    {
      "days_off": [{"date": "2026-12-31", "name": "Cuti bersama tambahan"}],
      "working_days": [{"date": "2026-05-15", "name": "Cuti bersama dibatalkan"}]
    }

Both keys are optional. Each entry needs ``date`` (YYYY-MM-DD) and a non-empty ``name`` (why; shown when a
day off is explained). Unknown keys, bad dates and a date listed twice (in one list or in both) are refused
with one line naming the file, since a calendar that silently ignores part of a decree gives wrong due dates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import holidays

RECAP_WORKING_DAY = 11
FULL_WORKING_DAY = 21
#: Indonesia's categories in the holidays library: "public" are libur nasional, "government" cuti bersama.
HOLIDAY_CATEGORIES = ("public", "government")
WEEKEND_NAMES = {5: "Sabtu", 6: "Minggu"}

_DECREE_KEYS = {"days_off": False, "working_days": True}  # file key → DecreedDay.working
_ENTRY_KEYS = {"date", "name"}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class DecreedDay:
    """A change by decree to the library's calendar."""

    day: date
    name: str
    working: bool  # False: an extra day off; True: a listed holiday (or weekend) that is a working day after all


class CalendarFileError(ValueError):
    """The decree file cannot be used; the message is one line naming the file and the fault."""


class WorkingCalendar:
    """Weekends, the library's Indonesian holidays and the decreed changes, answering day by day."""

    def __init__(self, decreed: Iterable[DecreedDay] = ()) -> None:
        self._decreed: dict[date, DecreedDay] = {}
        for entry in decreed:
            if entry.day in self._decreed:
                raise ValueError(f"{entry.day.isoformat()} is decreed twice")
            self._decreed[entry.day] = entry
        self._years: dict[int, dict[date, str]] = {}

    @classmethod
    def from_file(cls, path: Path | None) -> WorkingCalendar:
        """The calendar with the decree file's changes; ``None`` (no file configured) means the library only."""
        if path is None:
            return cls()
        return cls(read_decree_file(path))

    def day_off(self, d: date) -> str | None:
        """Why ``d`` is not a working day (decree, holiday or weekday name), or None when people work."""
        decreed = self._decreed.get(d)
        if decreed is not None:
            return None if decreed.working else decreed.name
        holiday = self._holidays(d.year).get(d)
        if holiday is not None:
            return holiday
        return WEEKEND_NAMES.get(d.weekday())

    def is_working_day(self, d: date) -> bool:
        return self.day_off(d) is None

    def working_day_after(self, start: date, n: int) -> date:
        """The n-th working day after ``start``; ``start`` itself never counts, so n=1 is the next working day."""
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        d = start
        while n:
            d += timedelta(days=1)
            if self.is_working_day(d):
                n -= 1
        return d

    def working_days_left(self, today: date, due: date) -> int:
        """Working days after ``today`` up to and including ``due``: on the due day itself, 0 are left."""
        days = (due - today).days
        return sum(1 for i in range(1, days + 1) if self.is_working_day(today + timedelta(days=i)))

    def _holidays(self, year: int) -> dict[date, str]:
        if year not in self._years:
            listed = holidays.country_holidays("ID", years=year, categories=HOLIDAY_CATEGORIES, language="id")
            self._years[year] = dict(listed.items())
        return self._years[year]


def due_dates(calendar: WorkingCalendar, last_test_day: date) -> dict[str, date]:
    """When the recap (working day 11) and the full report (working day 21) are due for an activity."""
    return {"recap": calendar.working_day_after(last_test_day, RECAP_WORKING_DAY),
            "full": calendar.working_day_after(last_test_day, FULL_WORKING_DAY)}


def read_decree_file(path: Path) -> list[DecreedDay]:
    """The decree file's entries, checked; any fault raises CalendarFileError naming the file."""
    def fail(what: str) -> CalendarFileError:
        return CalendarFileError(f"reports calendar file {path}: {what}")

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot be read ({type(exc).__name__})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return _parse_decrees(document)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _parse_decrees(document: Any) -> list[DecreedDay]:
    if not isinstance(document, dict):
        raise ValueError("must be a JSON object with 'days_off' and/or 'working_days'")
    unknown = sorted(set(document) - set(_DECREE_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (expected 'days_off', 'working_days')")
    seen: dict[date, str] = {}
    decreed: list[DecreedDay] = []
    for key, working in _DECREE_KEYS.items():
        entries = document.get(key, [])
        if not isinstance(entries, list):
            raise ValueError(f"'{key}' must be a list")
        for number, entry in enumerate(entries, start=1):
            where = f"{key} entry {number}"
            day = _parse_entry(entry, where, working)
            if day.day in seen:
                raise ValueError(f"{where}: {day.day.isoformat()} is already listed in {seen[day.day]}")
            seen[day.day] = key
            decreed.append(day)
    return decreed


def _parse_entry(entry: Any, where: str, working: bool) -> DecreedDay:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be an object with 'date' and 'name'")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected 'date', 'name')")
    raw = entry.get("date")
    if not isinstance(raw, str) or not _ISO_DATE.fullmatch(raw):
        raise ValueError(f"{where}: 'date' must be YYYY-MM-DD")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{where}: 'date' {raw!r} is not a calendar date") from None
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: 'name' must be a non-empty string")
    return DecreedDay(day=day, name=name.strip(), working=working)
